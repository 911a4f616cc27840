/**
 * Takes a snapshot of the metrics-extension stats every interval (ECS scrapes once a minute) and keeps the delta
 * between the last two: what /stats/prometheus?delta serves, the same to every caller for that interval.
 *
 * Each interval's change is served in one interval only, so that the ECS agent, which publishes every delta it
 * reads, never counts a request twice:
 * - A delta is served until the next snapshot is due (its time plus the interval). When that snapshot fails
 *   (Envoy hung, restarting, its admin not answering), or has not come yet, the delta is empty, never the previous
 *   one again.
 * - The next good snapshot is compared with the last good one, so its delta covers the whole gap: nothing is lost.
 * - Snapshots keep a fixed rate: they are due at start + n × interval, whatever each one took; one that overruns
 *   skips the ticks it missed instead of shifting every later one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { EnvoyAdminClient } from '../envoy/index.ts';
import type { Logger } from '../logger.ts';
import { computeDelta, type Snapshot } from './delta.ts';
import type { Family } from './prometheus-text.ts';
import type { MetricLabels } from './service-connect-metrics.ts';
import { fetchMetricsExtension } from './metrics-extension.ts';

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
  readonly #now: () => number;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<unknown>;

  constructor(opts: { admin: EnvoyAdminClient; intervalMs: number; epoch: () => number; logger: Logger; onSnapshot?: (outcome: 'ok' | 'error') => void; labels?: MetricLabels; now?: () => number; sleep?: (ms: number, signal: AbortSignal) => Promise<unknown> }) {
    this.#now = opts.now ?? Date.now;
    this.#sleep = opts.sleep ?? ((ms, signal) => sleep(ms, undefined, { signal }));
    this.#labels = opts.labels ?? {};
    this.#admin = opts.admin;
    this.#intervalMs = opts.intervalMs;
    this.#epoch = opts.epoch;
    this.#logger = opts.logger;
    this.#onSnapshot = opts.onSnapshot;
  }

  /**
   * The delta over the last completed interval, or null before the first snapshot. Once the next snapshot is due
   * and has not replaced it, an empty delta: that interval's change comes with the next good snapshot.
   */
  get delta(): Delta | null {
    const d = this.#delta;
    if (d === null || this.#now() <= d.toMs + this.#intervalMs) return d;
    return { families: [], fromMs: d.toMs, toMs: d.toMs + this.#intervalMs };
  }

  /**
   * The first snapshot is taken as soon as Envoy answers (retrying every second until then), then one every
   * interval: a scrape in the first minute gets a real delta, not nothing.
   */
  async run(signal: AbortSignal): Promise<void> {
    let first = true;
    let startMs = this.#now();
    while (!signal.aborted) {
      const ok = await this.take(signal, { quiet: first });
      let waitMs: number;
      if (first) {
        waitMs = Math.min(1000, this.#intervalMs);
        if (ok) {
          first = false;
          startMs = this.#now();
          waitMs = this.#intervalMs;
        }
      } else {
        const elapsed = this.#now() - startMs;
        waitMs = this.#intervalMs - (elapsed % this.#intervalMs);
      }
      try {
        await this.#sleep(waitMs, signal);
      } catch {
        return;
      }
    }
  }

  async take(signal?: AbortSignal, opts: { quiet?: boolean } = {}): Promise<boolean> {
    const epoch = this.#epoch();
    try {
      // At most 5 s: a snapshot that overruns its interval makes the run loop skip the ticks it missed.
      const families = await fetchMetricsExtension(this.#admin, { usedOnly: true, timeoutMs: 5000, labels: this.#labels, ...(signal ? { signal } : {}) });
      const snapshot: Snapshot = { epoch, takenAtMs: this.#now(), families };
      const previous = this.#last;
      this.#delta = { families: computeDelta(previous, snapshot), fromMs: previous?.epoch === epoch ? previous.takenAtMs : null, toMs: snapshot.takenAtMs };
      this.#last = snapshot;
      this.#onSnapshot?.('ok');
      return true;
    } catch (err) {
      if (signal?.aborted) return false;
      // The last good snapshot stays the base: the next good one covers this interval too. The delta served
      // meanwhile turns empty when its interval is over (see delta), so it is never served twice.
      if (opts.quiet) this.#logger.debug('Envoy not ready for the first stats snapshot', { err });
      else this.#logger.warn('stats snapshot failed; the next one will cover this interval', { err });
      this.#onSnapshot?.('error');
      return false;
    }
  }
}
