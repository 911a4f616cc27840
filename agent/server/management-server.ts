/**
 * The management interface server: plain HTTP/1.1 over a Unix socket or TCP, dispatching from the route table.
 * Every request is answered within a deadline; a stale socket file is replaced, but a socket another agent is
 * still serving on is an error, not silently stolen (reference bug), and any other file at the path is an error
 * and is left as it was.
 *
 * Hostile callers: request headers must arrive within HEADERS_TIMEOUT_MS, an idle kept-alive connection is closed
 * after IDLE_TIMEOUT_MS, and at most MAX_CONNECTIONS are open: a new one beyond that closes the oldest idle one
 * (or itself, when every other is busy), so idle connections can neither starve the agent of file descriptors nor
 * keep /status from answering. Each rate-limited route has a bucket of its own; health and drain are never refused.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { chmod, mkdir, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AdminAddress } from '../config/index.ts';
import { AgentError } from '../errors.ts';
import { freeSocketPath } from '../system/index.ts';
import type { Logger } from '../logger.ts';
import { TokenBucket } from './rate-limiter.ts';
import { EnvoyAdminError } from '../envoy/index.ts';
import { PrometheusParseError } from '../stats/index.ts';
import { MAX_CONNECTIONS, routes, type Reply, type Route, type RouteContext } from './routes.ts';

const TEXT = 'text/plain; charset=utf-8';
export const REQUEST_DEADLINE_MS = 5000;
export const HEADERS_TIMEOUT_MS = 5000;
export const IDLE_TIMEOUT_MS = 5000;

export interface ManagementServer {
  readonly describe: string;
  close(): Promise<void>;
}

/** One token bucket per rate-limited route. */
export type Buckets = ReadonlyMap<Route, TokenBucket>;

export function routeBuckets(): Buckets {
  const buckets = new Map<Route, TokenBucket>();
  for (const r of routes) if (r.rateLimit !== null) buckets.set(r, new TokenBucket(r.rateLimit.perSecond, r.rateLimit.burst));
  return buckets;
}

/** The request target as a URL, or null when it is not a path that parses (`*`, `//`, an absolute URL). */
function parseTarget(target: string | undefined): URL | null {
  if (target === undefined || !target.startsWith('/') || target.startsWith('//')) return null;
  try {
    return new URL(`http://localhost${target}`);
  } catch {
    return null;
  }
}

export async function handleRequest(ctx: RouteContext, buckets: Buckets, req: IncomingMessage): Promise<Reply & { path: string }> {
  const url = parseTarget(req.url);
  if (url === null) return { path: 'malformed', status: 400, body: `malformed request target ${JSON.stringify(req.url ?? '').slice(0, 200)}: must be a path such as /status\n`, contentType: TEXT };
  const route = routes.find((r) => r.path === url.pathname);
  if (route === undefined) return { path: 'unknown', status: 404, body: '404 page not found\n', contentType: TEXT };
  const method = req.method ?? 'GET';
  if (!(route.methods as readonly string[]).includes(method)) {
    return { path: route.path, status: 405, body: `${method} is not allowed on ${route.path}; use ${route.methods.join(' or ')}\n`, contentType: TEXT, headers: { allow: route.methods.join(', ') } };
  }
  const contentLength = Number(req.headers['content-length'] ?? 0);
  if (contentLength > 0) return { path: route.path, status: 400, body: `${route.path} takes no request body; got ${contentLength} bytes\n`, contentType: TEXT };
  for (const key of url.searchParams.keys()) {
    if (!route.query.includes(key)) {
      return {
        path: route.path,
        status: 400,
        body: `unsupported query parameter ${JSON.stringify(key)} for ${route.path}; ${route.query.length === 0 ? 'it takes none' : `accepted: ${route.query.join(', ')}`}\n`,
        contentType: TEXT,
      };
    }
  }
  const bucket = buckets.get(route);
  if (bucket !== undefined && !bucket.take()) return { path: route.path, status: 429, body: 'Too Many Requests\n', contentType: TEXT };
  if (!route.callsEnvoy) {
    // Routes that do not call Envoy answer from the agent's own state at once: no deadline timer per request.
    return { ...(await route.handle(ctx, url.searchParams, NEVER)), path: route.path };
  }
  // One timer per Envoy-calling request, cleared when it ends (AbortSignal.timeout would keep each one alive for
  // the whole deadline: at thousands of requests a second, that was hundreds of megabytes).
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no answer from Envoy within ${REQUEST_DEADLINE_MS} ms`)), REQUEST_DEADLINE_MS);
  const deadline = controller.signal;
  try {
    const reply = await Promise.race([
      route.handle(ctx, url.searchParams, deadline),
      new Promise<never>((_, reject) => deadline.addEventListener('abort', () => reject(deadline.reason as Error), { once: true })),
    ]);
    return { ...reply, path: route.path };
  } catch (err) {
    if (err instanceof EnvoyAdminError || deadline.aborted) {
      return { path: route.path, status: 503, body: `Envoy is not answering: ${(err as Error).message}\n`, contentType: TEXT };
    }
    if (err instanceof PrometheusParseError) {
      return { path: route.path, status: 502, body: `Envoy's stats could not be parsed: ${err.message}\n`, contentType: TEXT };
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

const NEVER = new AbortController().signal;

/** Concurrent callers share one in-flight call: a burst of drain requests makes one call to Envoy. */
function coalesce(fn: () => Promise<void>): () => Promise<void> {
  let inFlight: Promise<void> | null = null;
  return () => {
    inFlight ??= fn().finally(() => {
      inFlight = null;
    });
    return inFlight;
  };
}

/**
 * Keeps at most `max` connections: a new one beyond the cap closes the oldest connection with no request in
 * progress, or itself when every other connection is busy.
 */
function capConnections(server: Server, max: number): void {
  const open = new Set<Socket>();
  const busy = new Map<Socket, number>();
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => {
      open.delete(socket);
      busy.delete(socket);
    });
    if (open.size <= max) return;
    for (const s of open) {
      if (s !== socket && (busy.get(s) ?? 0) === 0) {
        s.destroy();
        return;
      }
    }
    socket.destroy();
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
    res.once('close', () => {
      const n = (busy.get(socket) ?? 1) - 1;
      if (n <= 0) busy.delete(socket);
      else busy.set(socket, n);
    });
  });
}

export async function startManagementServer(opts: { address: AdminAddress; context: RouteContext; logger: Logger }): Promise<ManagementServer> {
  const buckets = routeBuckets();
  const { address, logger } = opts;
  const context: RouteContext = { ...opts.context, drainInbound: coalesce(opts.context.drainInbound) };
  // headersTimeout also closes a connection that sends nothing (408). connectionsCheckingInterval: how often the
  // header and request timeouts are enforced (Node's default, 30 s, let such a connection stay 35 s).
  const server: Server = createServer({ connectionsCheckingInterval: 1000, headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_DEADLINE_MS * 2, keepAliveTimeout: IDLE_TIMEOUT_MS }, (req: IncomingMessage, res: ServerResponse) => {
    handleRequest(context, buckets, req).then(
      (reply) => {
        context.metrics.managementRequests.inc({ path: reply.path, code: String(reply.status) });
        res.writeHead(reply.status, { 'content-type': reply.contentType ?? TEXT, 'x-content-type-options': 'nosniff', ...(reply.headers ?? {}) });
        if (reply.stream === undefined) {
          res.end(reply.body);
          return;
        }
        const source = reply.stream;
        source.on('error', (err: Error) => {
          logger.warn('streaming from Envoy failed', { err, url: req.url });
          res.destroy(err);
        });
        res.on('close', () => source.destroy());
        source.pipe(res);
      },
      (err: unknown) => {
        logger.error('management request failed', { err, url: req.url });
        res.writeHead(500, { 'content-type': TEXT });
        res.end('internal error\n');
      },
    );
  });
  capConnections(server, MAX_CONNECTIONS);
  // A request Node's parser rejects (a bad request line or header, headers too large, too slow): an answer, no log.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable || socket.bytesWritten > 0) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy());
  });

  let describe: string;
  let socketIno: number | undefined;
  try {
    if (address.kind === 'uds') {
      await mkdir(dirname(address.path), { recursive: true, mode: 0o700 });
      await freeSocketPath('APPNET_AGENT_ADMIN_UDS_PATH', address.path, 'another agent');
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(address.path, () => resolve());
      });
      await chmod(address.path, 0o600);
      socketIno = (await stat(address.path)).ino;
      describe = `unix:${address.path}`;
    } else {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: address.host, port: address.port, ipv6Only: false }, () => resolve());
      });
      describe = `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
    }
  } catch (err) {
    if (err instanceof AgentError) throw err;
    const where = address.kind === 'uds' ? `APPNET_AGENT_ADMIN_UDS_PATH="${address.path}"` : `APPNET_AGENT_HTTP_BIND_ADDRESS="${address.host}" APPNET_AGENT_HTTP_PORT="${address.port}"`;
    throw new AgentError('AGENT_ERR_LISTEN', `${where}: cannot listen (${(err as Error).message})`, { cause: err });
  }
  logger.info('management interface listening', { address: describe });
  return {
    describe,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      // Only the agent's own socket: another agent may have taken the path since.
      if (address.kind === 'uds' && (await stat(address.path).catch(() => null))?.ino === socketIno) await rm(address.path, { force: true });
    },
  };
}
