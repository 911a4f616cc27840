/**
 * The Envoy admin client: one undici Client to Envoy's admin interface, over its Unix socket or TCP. Every call has
 * a deadline (headers and body), so nothing the agent serves can hang on a hung Envoy. Calls that change Envoy
 * (drain, logging) retry connection errors and 5xx/429 four times with 100/200/400 ms waits, as the reference does.
 */
import { Client } from 'undici';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AdminAddress } from '../config/index.ts';

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

export interface EnvoyStat {
  readonly name: string;
  readonly value: number;
}

export class EnvoyAdminClient {
  readonly address: AdminAddress;
  readonly #client: Client;
  readonly #observe: AdminCallObserver | undefined;

  constructor(address: AdminAddress, opts: { observe?: AdminCallObserver } = {}) {
    this.address = address;
    this.#observe = opts.observe;
    const common = { headersTimeout: 10_000, bodyTimeout: 10_000, keepAliveTimeout: 4_000, connect: { timeout: 1_000 } };
    this.#client =
      address.kind === 'uds'
        ? new Client('http://localhost', { ...common, socketPath: address.path })
        : new Client(`http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`, common);
  }

  describe(): string {
    return this.address.kind === 'uds' ? `unix:${this.address.path}` : `${this.address.host}:${this.address.port}`;
  }

  /** One request with a deadline; rejects with EnvoyAdminError on transport errors and timeouts. */
  async request(method: 'GET' | 'POST', path: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<AdminResponse> {
    const timeoutMs = opts.timeoutMs ?? 2000;
    const signal = opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs);
    const started = performance.now();
    try {
      const res = await this.#client.request({ method, path, signal, headers: { 'user-agent': 'appnetClient/1.0' } });
      const body = await res.body.text();
      const ct = res.headers['content-type'];
      this.#observe?.(path.split('?')[0] ?? path, (performance.now() - started) / 1000, 'ok');
      return { status: res.statusCode, body, contentType: typeof ct === 'string' ? ct : null };
    } catch (err) {
      this.#observe?.(path.split('?')[0] ?? path, (performance.now() - started) / 1000, 'error');
      const reason = signal.aborted && !(opts.signal?.aborted ?? false) ? `timed out after ${timeoutMs} ms` : (err as Error).message;
      throw new EnvoyAdminError(`Envoy admin ${method} ${path} at ${this.describe()}: ${reason}`, path, { cause: err });
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

  /** Stats by regex, in Envoy's JSON format (counters and gauges). */
  async stats(filterRegex: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<EnvoyStat[]> {
    const res = await this.request('GET', `/stats?format=json&filter=${encodeURIComponent(filterRegex)}`, opts);
    if (res.status !== 200) throw new EnvoyAdminError(`Envoy admin GET /stats: HTTP ${res.status}`, '/stats');
    const parsed = JSON.parse(res.body) as { stats?: Array<{ name?: string; value?: unknown }> };
    return (parsed.stats ?? [])
      .filter((s): s is { name: string; value: unknown } => typeof s.name === 'string' && s.value !== undefined)
      .map((s) => ({ name: s.name, value: Number(s.value) }));
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
    await this.#client.destroy();
  }
}
