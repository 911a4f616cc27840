/**
 * The Envoy admin client: one keep-alive HTTP agent to Envoy's admin interface, over its Unix socket or TCP. Every
 * call has a deadline covering headers and body, so nothing the agent serves can hang on a hung Envoy. Calls that
 * change Envoy (drain, logging) retry connection errors and 5xx/429 four times with 100/200/400 ms waits, as the
 * reference does.
 *
 * Requests go through the agent's one HTTP client (agent/system/http.ts, node:http with deadlines); this client adds
 * the keep-alive agent, the retries, the streaming of large answers and Envoy's endpoints.
 */
import { Agent, type IncomingMessage } from 'node:http';
import { pipeline, Transform, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AdminAddress } from '../config/index.ts';
import { collectGarbage, deadlinePassed, deadlineSignal, openRequest, requestText, type HttpTarget } from '../system/index.ts';

export interface AdminResponse {
  readonly status: number;
  readonly body: string;
  readonly contentType: string | null;
}

export interface AdminCallObserver {
  (path: string, seconds: number, outcome: 'ok' | 'error'): void;
}

export class EnvoyAdminError extends Error {
  readonly path: string;
  constructor(message: string, path: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EnvoyAdminError';
    this.path = path;
  }
}

/**
 * Each chunk of a streamed answer is a 64 KiB buffer outside the JavaScript heap, freed only when the small object
 * that holds it is collected; V8 counts such memory but collects for it only past 64 MiB. So a 14 MiB stats answer
 * streamed through left tens of megabytes of freed-late buffers in the C heap, which never gave them back (measured
 * with bench/memory.ts: 34 MiB more private memory after 5 answers of a 1,000-cluster Envoy): a scavenge every
 * SCAVENGE_EVERY_BYTES frees them.
 *
 * After a large answer streamed through (Envoy's full stats: 14 MiB at 1,000 clusters), one memory-reducing
 * collection once the answer is sent: what each answer left in V8's old space (its short-lived objects promoted by
 * the small young generation) is otherwise collected only when the heap has grown, and the pages it freed stay in
 * V8's pool. With a plain full collection there, the agent's memory still grew by 15 % from the 5th to the 50th
 * answer (docs/benchmarks.md, "Memory").
 */
const COLLECT_ALL_AFTER_BYTES = 4 << 20;

/** Bytes streamed between scavenges: the C heap then holds about this much of Envoy's answer at any time. */
const SCAVENGE_EVERY_BYTES = 1 << 20;

export interface EnvoyStat {
  readonly name: string;
  /** The counter's or gauge's value; NaN for a text readout. */
  readonly value: number;
  /** A text readout's value (`cluster_manager.cds.version_text`, say); absent for counters and gauges. */
  readonly text?: string;
}

export class EnvoyAdminClient {
  readonly address: AdminAddress;
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 8, keepAliveMsecs: 1000 });
  readonly #observe: AdminCallObserver | undefined;

  constructor(address: AdminAddress, opts: { observe?: AdminCallObserver } = {}) {
    this.address = address;
    this.#observe = opts.observe;
  }

  describe(): string {
    return this.address.kind === 'uds' ? `unix:${this.address.path}` : `${this.address.host}:${this.address.port}`;
  }

  #target(): HttpTarget {
    return this.address.kind === 'uds' ? { socketPath: this.address.path } : { host: this.address.host, port: this.address.port };
  }

  #request(method: 'GET' | 'POST', path: string) {
    return { method, path, agent: this.#agent, headers: { 'user-agent': 'appnetClient/1.0', host: 'localhost' } };
  }

  #failure(method: string, path: string, timeoutMs: number, signal: AbortSignal, outer: AbortSignal | undefined, err: unknown): EnvoyAdminError {
    const reason = deadlinePassed(signal, outer) ? `timed out after ${timeoutMs} ms` : (err as Error).message;
    return new EnvoyAdminError(`Envoy admin ${method} ${path} at ${this.describe()}: ${reason}`, path, { cause: err });
  }

  /** One request with a deadline; rejects with EnvoyAdminError on transport errors and timeouts. */
  async request(method: 'GET' | 'POST', path: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<AdminResponse> {
    const timeoutMs = opts.timeoutMs ?? 2000;
    const signal = deadlineSignal(timeoutMs, opts.signal);
    const started = performance.now();
    try {
      const res = await requestText(this.#target(), this.#request(method, path), signal);
      this.#observe?.(path.split('?')[0] ?? path, (performance.now() - started) / 1000, 'ok');
      return res;
    } catch (err) {
      this.#observe?.(path.split('?')[0] ?? path, (performance.now() - started) / 1000, 'error');
      throw this.#failure(method, path, timeoutMs, signal, opts.signal, err);
    }
  }

  /**
   * A GET whose body is passed on as it arrives (Envoy's full stats can be tens of megabytes). The deadline covers
   * the whole transfer: a stalled body is destroyed. Every megabyte passed on, a scavenge frees the buffers already
   * sent, so that the agent's memory stays flat however often the stats are read.
   */
  async stream(path: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<{ status: number; contentType: string | null; body: Readable }> {
    const signal = deadlineSignal(opts.timeoutMs, opts.signal);
    try {
      const res: IncomingMessage = await openRequest(this.#target(), this.#request('GET', path), signal);
      const ct = res.headers['content-type'];
      let since = 0;
      let total = 0;
      const relay = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          since += chunk.length;
          total += chunk.length;
          if (since >= SCAVENGE_EVERY_BYTES) {
            since = 0;
            collectGarbage('young');
          }
          done(null, chunk);
        },
        flush(done) {
          if (total >= COLLECT_ALL_AFTER_BYTES) setImmediate(() => collectGarbage('reduce-memory'));
          done();
        },
      });
      pipeline(res, relay, () => undefined);
      return { status: res.statusCode ?? 0, contentType: typeof ct === 'string' ? ct : null, body: relay };
    } catch (err) {
      throw this.#failure('GET', path, opts.timeoutMs, signal, opts.signal, err);
    }
  }

  /**
   * A GET whose body is handed to `consume` as text, chunk by chunk as it comes off the socket, so that no answer is
   * held whole (a chunk may end inside a line or a character: the decoder keeps a split character whole). Resolves
   * with the status; a status other than 200 discards the body. Transport errors and the deadline (which covers the
   * whole transfer) reject with EnvoyAdminError; an error thrown by `consume` rejects as it is.
   */
  async consume(path: string, opts: { timeoutMs: number; signal?: AbortSignal }, consume: (text: string) => void): Promise<number> {
    const signal = deadlineSignal(opts.timeoutMs, opts.signal);
    const started = performance.now();
    const observed = path.split('?')[0] ?? path;
    let consumerError: { error: unknown } | null = null;
    try {
      const res = await openRequest(this.#target(), this.#request('GET', path), signal);
      if (res.statusCode !== 200) {
        res.resume();
        this.#observe?.(observed, (performance.now() - started) / 1000, 'ok');
        return res.statusCode ?? 0;
      }
      res.setEncoding('utf8');
      let since = 0;
      for await (const chunk of res) {
        try {
          consume(chunk as string);
        } catch (error) {
          consumerError = { error };
          res.destroy();
          break;
        }
        since += (chunk as string).length;
        if (since >= SCAVENGE_EVERY_BYTES) {
          since = 0;
          collectGarbage('young');
        }
      }
      if (consumerError !== null) throw consumerError.error;
      this.#observe?.(observed, (performance.now() - started) / 1000, 'ok');
      return 200;
    } catch (err) {
      this.#observe?.(observed, (performance.now() - started) / 1000, 'error');
      if (consumerError !== null) throw err;
      throw this.#failure('GET', path, opts.timeoutMs, signal, opts.signal, err);
    }
  }

  /** Retries connection errors, 5xx (but 501) and 429: 4 attempts, waits of 100, 200, 400 ms. */
  async requestWithRetries(method: 'GET' | 'POST', path: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<AdminResponse> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 4; attempt++) {
      if (attempt > 0) await sleep(Math.min(100 * 2 ** (attempt - 1), 1000), undefined, opts.signal ? { signal: opts.signal } : undefined);
      try {
        const res = await this.request(method, path, opts);
        if (res.status === 429 || (res.status >= 500 && res.status !== 501)) {
          lastError = new EnvoyAdminError(`Envoy admin ${method} ${path}: HTTP ${res.status}`, path);
          continue;
        }
        return res;
      } catch (err) {
        lastError = err;
        if (opts.signal?.aborted) break;
      }
    }
    throw lastError;
  }

  /** Envoy's server state from /ready: LIVE, PRE_INITIALIZING, INITIALIZING, DRAINING. */
  async serverState(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<string> {
    const res = await this.request('GET', '/ready', opts);
    return res.body.trim();
  }

  /**
   * Stats by regex, in Envoy's JSON format (counters, gauges and text readouts; `type` asks for one kind only, which
   * costs Envoy less: a regex read goes over every stat).
   */
  async stats(filterRegex: string, opts: { timeoutMs?: number; signal?: AbortSignal; type?: 'Counters' | 'Gauges' } = {}): Promise<EnvoyStat[]> {
    const res = await this.request('GET', `/stats?format=json${opts.type === undefined ? '' : `&type=${opts.type}`}&filter=${encodeURIComponent(filterRegex)}`, opts);
    if (res.status !== 200) throw new EnvoyAdminError(`Envoy admin GET /stats: HTTP ${res.status}`, '/stats');
    const parsed = JSON.parse(res.body) as { stats?: Array<{ name?: string; value?: unknown }> };
    return (parsed.stats ?? [])
      .filter((s): s is { name: string; value: unknown } => typeof s.name === 'string' && s.value !== undefined)
      .map((s) => (typeof s.value === 'string' ? { name: s.name, value: Number.NaN, text: s.value } : { name: s.name, value: Number(s.value) }));
  }

  /** Active downstream connections on every listener but admin. */
  async activeDownstreamConnections(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<number> {
    const stats = await this.stats('^listener\\..*\\.downstream_cx_active$', opts);
    return stats.filter((s) => !s.name.startsWith('listener.admin.')).reduce((sum, s) => sum + s.value, 0);
  }

  async drainListeners(opts: { inboundOnly: boolean; signal?: AbortSignal }): Promise<AdminResponse> {
    const res = await this.requestWithRetries('POST', `/drain_listeners?${opts.inboundOnly ? 'inboundonly&' : ''}graceful`, { timeoutMs: 1000, ...(opts.signal ? { signal: opts.signal } : {}) });
    if (res.status !== 200) throw new EnvoyAdminError(`Envoy admin POST /drain_listeners: HTTP ${res.status}: ${res.body.trim()}`, '/drain_listeners');
    return res;
  }

  /** Sets every Envoy logger to `level` (Envoy's names: warning, not warn). */
  async setLogLevel(level: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const envoyLevel = level === 'warn' ? 'warning' : level;
    const res = await this.requestWithRetries('POST', `/logging?level=${encodeURIComponent(envoyLevel)}`, { timeoutMs: 1000, ...(opts.signal ? { signal: opts.signal } : {}) });
    if (res.status !== 200) throw new EnvoyAdminError(`Envoy admin POST /logging?level=${envoyLevel}: HTTP ${res.status}: ${res.body.trim()}`, '/logging');
  }

  async quit(opts: { signal?: AbortSignal } = {}): Promise<void> {
    await this.request('POST', '/quitquitquit', { timeoutMs: 1000, ...(opts.signal ? { signal: opts.signal } : {}) });
  }

  async close(): Promise<void> {
    this.#agent.destroy();
  }
}
