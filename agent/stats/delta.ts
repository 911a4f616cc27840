/**
 * computeDelta(previous, next): the change between two stats snapshots. Pure.
 *
 * - Counters subtract, with reset detection: a counter that went down (Envoy restarted, or /reset_counters) counts
 *   from zero, so the delta is its new value. Never negative, never wrapped (reference bug: uint64 wrap).
 * - Gauges and untyped values pass through.
 * - Histograms subtract bucket by bucket, with _sum and _count; any decrease means a reset: the new values.
 * - A snapshot of a different Envoy process (epoch) than the previous one is compared with zero: counters restart
 *   at zero in a new Envoy.
 * - With no previous snapshot the delta is the snapshot itself: the change since Envoy started.
 */
import type { Family, HistogramSample } from './prometheus-text.ts';

export interface Snapshot {
  /** Identifies the Envoy process the values came from (its start count). */
  readonly epoch: number;
  readonly takenAtMs: number;
  readonly families: ReadonlyMap<string, Family>;
}

export function computeDelta(previous: Snapshot | null, next: Snapshot): Family[] {
  if (previous === null || previous.epoch !== next.epoch) return [...next.families.values()];
  const out: Family[] = [];
  for (const fam of next.families.values()) {
    const old = previous.families.get(fam.name);
    if (old === undefined || old.type !== fam.type || fam.type === 'gauge' || fam.type === 'untyped') {
      out.push(fam);
      continue;
    }
    if (fam.type === 'counter') {
      const oldSamples = old.samples as Map<string, number>;
      const samples = new Map<string, number>();
      for (const [labels, value] of fam.samples) {
        const before = oldSamples.get(labels);
        samples.set(labels, before === undefined || value < before ? value : value - before);
      }
      out.push({ name: fam.name, type: 'counter', samples, ...(fam.canonical ? { canonical: true } : {}) });
      continue;
    }
    const oldSamples = old.samples as Map<string, HistogramSample>;
    const samples = new Map<string, HistogramSample>();
    for (const [labels, h] of fam.samples as Map<string, HistogramSample>) {
      samples.set(labels, histogramDelta(oldSamples.get(labels), h));
    }
    out.push({ name: fam.name, type: 'histogram', samples, ...(fam.canonical ? { canonical: true } : {}) });
  }
  return out;
}

function histogramDelta(before: HistogramSample | undefined, after: HistogramSample): HistogramSample {
  if (before === undefined || before.counts.length !== after.counts.length || after.count < before.count) return after;
  const counts: number[] = new Array<number>(after.counts.length);
  for (let i = 0; i < after.counts.length; i++) {
    const now = after.counts[i] as number;
    const then = before.counts[i] as number;
    if (after.les[i] !== before.les[i] || now < then) return after;
    counts[i] = now - then;
  }
  return { les: after.les, counts, sum: Math.max(0, after.sum - before.sum), count: after.count - before.count };
}
