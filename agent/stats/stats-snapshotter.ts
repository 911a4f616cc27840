/**
 * Takes a snapshot of the metrics-extension stats every interval (ECS scrapes once a minute) and keeps the delta
 * between the last two: what /stats/prometheus?delta serves, the same to every caller for that interval.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { EnvoyAdminClient } from '../envoy/admin-client.ts';
import type { Logger } from '../logger.ts';
import { computeDelta, type Snapshot } from './delta.ts';
import { parsePrometheus, type Family } from './prometheus-text.ts';
import { deriveServiceConnectMetrics, METRICS_EXTENSION_STATS_FILTER, type MetricLabels } from './service-connect-metrics.ts';

/** Fetches only the Envoy stats the metrics extension reads, and presents them under the ECS names. */
export async function fetchMetricsExtension(
  admin: EnvoyAdminClient,
  opts: { usedOnly: boolean; timeoutMs: number; signal?: AbortSignal; labels?: MetricLabels },
): Promise<Map<string, Family>> {
  const res = await admin.request('GET', `/stats/prometheus?${opts.usedOnly ? 'usedonly&' : ''}filter=${encodeURIComponent(METRICS_EXTENSION_STATS_FILTER)}`, {
    timeoutMs: opts.timeoutMs,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  if (res.status !== 200) throw new Error(`Envoy /stats/prometheus answered HTTP ${res.status}`);
  return deriveServiceConnectMetrics(parsePrometheus(res.body, { prefix: 'envoy_' }), opts.labels);
}

export interface Delta {
  readonly families: readonly Family[];
  readonly fromMs: number | null;
  readonly toMs: number;
}

export class StatsSnapshotter {
  readonly #admin: EnvoyAdminClient;
  readonly #intervalMs: number;
  readonly #epoch: () => number;
  readonly #logger: Logger;
  readonly #onSnapshot: ((outcome: 'ok' | 'error') => void) | undefined;
  readonly #labels: MetricLabels;
  #last: Snapshot | null = null;
  #delta: Delta | null = null;

  constructor(opts: { admin: EnvoyAdminClient; intervalMs: number; epoch: () => number; logger: Logger; onSnapshot?: (outcome: 'ok' | 'error') => void; labels?: MetricLabels }) {
    this.#labels = opts.labels ?? {};
    this.#admin = opts.admin;
    this.#intervalMs = opts.intervalMs;
    this.#epoch = opts.epoch;
    this.#logger = opts.logger;
    this.#onSnapshot = opts.onSnapshot;
  }

  /** The delta over the last completed interval, or null before the first snapshot. */
  get delta(): Delta | null {
    return this.#delta;
  }

  /**
   * The first snapshot is taken as soon as Envoy answers (retrying every second until then), then one every
   * interval: a scrape in the first minute gets a real delta, not nothing.
   */
  async run(signal: AbortSignal): Promise<void> {
    let first = true;
    while (!signal.aborted) {
      const ok = await this.take(signal, { quiet: first });
      if (ok) first = false;
      try {
        await sleep(first ? Math.min(1000, this.#intervalMs) : this.#intervalMs, undefined, { signal });
      } catch {
        return;
      }
    }
  }

  async take(signal?: AbortSignal, opts: { quiet?: boolean } = {}): Promise<boolean> {
    const epoch = this.#epoch();
    try {
      const families = await fetchMetricsExtension(this.#admin, { usedOnly: true, timeoutMs: 5000, labels: this.#labels, ...(signal ? { signal } : {}) });
      const snapshot: Snapshot = { epoch, takenAtMs: Date.now(), families };
      const previous = this.#last;
      this.#delta = { families: computeDelta(previous, snapshot), fromMs: previous?.epoch === epoch ? previous.takenAtMs : null, toMs: snapshot.takenAtMs };
      this.#last = snapshot;
      this.#onSnapshot?.('ok');
      return true;
    } catch (err) {
      if (signal?.aborted) return false;
      // Keep the last delta: a failed fetch must not turn into zero traffic.
      if (opts.quiet) this.#logger.debug('Envoy not ready for the first stats snapshot', { err });
      else this.#logger.warn('stats snapshot failed; keeping the previous delta', { err });
      this.#onSnapshot?.('error');
      return false;
    }
  }
}
