/**
 * The agent's one HTTP client: plain HTTP over a Unix socket or TCP, on node:http (whose parser is the native one
 * the management server already loads; undici's WebAssembly parser cost 27 MiB: README, "Dependencies"). Every
 * request has a deadline covering the connection, the headers and the whole body: a peer that stops answering
 * halfway cannot hold the caller. Used by Envoy's admin client, the task metadata fetch, `agent healthcheck` and
 * Cloud Map mode's signed calls (over TLS: node:https, loaded only then).
 */
import { request, type Agent, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';

export type HttpTarget = { readonly socketPath: string } | { readonly host: string; readonly port: number; readonly tls?: boolean };

export interface HttpRequest {
  readonly method?: 'GET' | 'POST';
  readonly path: string;
  readonly headers?: OutgoingHttpHeaders;
  /** A keep-alive agent (an https.Agent for a TLS target); without one, each request has its own connection. */
  readonly agent?: Agent;
  readonly body?: string;
}

export interface HttpTextResponse {
  readonly status: number;
  readonly body: string;
  readonly contentType: string | null;
}

/** The request's deadline: its own timeout, and the caller's signal when there is one. */
export function deadlineSignal(timeoutMs: number, signal?: AbortSignal): AbortSignal {
  return signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs);
}

/** True when a request failed because its own deadline passed (not because the caller aborted it). */
export function deadlinePassed(deadline: AbortSignal, signal?: AbortSignal): boolean {
  return deadline.aborted && !(signal?.aborted ?? false);
}

/** The target and path of a plain `http://` URL; anything else is refused. */
export function httpUrlTarget(url: string): { target: HttpTarget; path: string } {
  const u = new URL(url);
  if (u.protocol !== 'http:') throw new Error(`${url}: only http:// URLs are supported`);
  return { target: { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port === '' ? 80 : Number(u.port) }, path: `${u.pathname}${u.search}` };
}

/** Opens a request; resolves with the response once its headers arrive. Aborting `signal` destroys the body too. */
export function openRequest(target: HttpTarget, req: HttpRequest, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const tls = 'tls' in target && target.tls === true;
    // servername '' for plain HTTP: Node's http.Agent otherwise works out a TLS server name for every request, by
    // net.isIP on the host; the first isIPv6 compiles a large regular expression (5 ms on an idle core, 12 ms at
    // start-up with Envoy starting beside it), on the way to the first health poll and the first /status. Plain HTTP
    // never uses the name.
    const options = { ...('socketPath' in target ? { socketPath: target.socketPath } : { host: target.host, port: target.port }), ...(tls ? {} : { servername: '' }), method: req.method ?? 'GET', path: req.path, signal, ...(req.agent ? { agent: req.agent } : {}), ...(req.headers ? { headers: req.headers } : {}) };
    const r = tls ? process.getBuiltinModule('node:https').request(options, resolve) : request(options, resolve);
    r.on('error', reject);
    r.end(req.body);
  });
}

/** A whole response as text, headers and body within the deadline `signal` carries. */
export async function requestText(target: HttpTarget, req: HttpRequest, signal: AbortSignal): Promise<HttpTextResponse> {
  const res = await openRequest(target, req, signal);
  res.setEncoding('utf8');
  let body = '';
  for await (const chunk of res) body += chunk as string;
  const ct = res.headers['content-type'];
  return { status: res.statusCode ?? 0, body, contentType: typeof ct === 'string' ? ct : null };
}
