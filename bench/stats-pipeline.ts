/**
 * Benchmark: the metrics_extension delta pipeline on 100,000 stat lines — parse Envoy's Prometheus text, derive the
 * Service Connect metrics, compute the delta against the previous snapshot, render. Prints figures; asserts nothing.
 *   node bench/stats-pipeline.ts [lines]
 */
import { parsePrometheus, renderPrometheus } from '../agent/stats/prometheus-text.ts';
import { computeDelta } from '../agent/stats/delta.ts';
import { deriveServiceConnectMetrics } from '../agent/stats/service-connect-metrics.ts';

const target = Number(process.argv[2] ?? 100_000);

/** Envoy-shaped text for N services, inbound and outbound, counters and histograms, about `target` lines. */
function envoyStats(scale: number, bump: number): string {
  const out: string[] = [];
  const counters = ['envoy_http_downstream_rq_total', 'envoy_http_downstream_cx_total', 'envoy_http_downstream_cx_rx_bytes_total', 'envoy_http_downstream_cx_tx_bytes_total'];
  const clusterCounters = ['envoy_cluster_upstream_rq_total', 'envoy_cluster_upstream_cx_rx_bytes_total', 'envoy_cluster_upstream_cx_tx_bytes_total', 'envoy_cluster_upstream_cx_total'];
  for (const name of counters) {
    out.push(`# TYPE ${name} counter`);
    for (let i = 0; i < scale; i++) out.push(`${name}{envoy_http_conn_manager_prefix="scin_http_svc${i}"} ${i * 10 + bump}`);
  }
  for (const name of clusterCounters) {
    out.push(`# TYPE ${name} counter`);
    for (let i = 0; i < scale; i++) out.push(`${name}{envoy_cluster_name="scout_http_svc${i}"} ${i * 7 + bump}`);
  }
  out.push('# TYPE envoy_cluster_upstream_rq_xx counter');
  for (let i = 0; i < scale; i++) for (const c of ['2', '4', '5']) out.push(`envoy_cluster_upstream_rq_xx{envoy_response_code_class="${c}",envoy_cluster_name="scout_http_svc${i}"} ${i + bump}`);
  const bounds = ['0.5', '1', '5', '10', '25', '50', '100', '250', '500', '1000', '2500', '5000', '10000', '30000', '60000', '300000', '600000', '1800000', '3600000', '+Inf'];
  for (const [name, label, prefix] of [
    ['envoy_cluster_upstream_rq_time', 'envoy_cluster_name', 'scout_http_svc'],
    ['envoy_http_downstream_rq_time', 'envoy_http_conn_manager_prefix', 'scin_http_svc'],
  ] as const) {
    out.push(`# TYPE ${name} histogram`);
    for (let i = 0; i < scale; i++) {
      let cum = 0;
      for (const b of bounds) {
        cum += bump;
        out.push(`${name}_bucket{${label}="${prefix}${i}",le="${b}"} ${cum}`);
      }
      out.push(`${name}_sum{${label}="${prefix}${i}"} ${cum * 3.5}`);
      out.push(`${name}_count{${label}="${prefix}${i}"} ${cum}`);
    }
  }
  return `${out.join('\n')}\n`;
}

// Lines per service: 8 counters + 3 code classes + 2 histograms × 22 lines = 55.
const scale = Math.max(1, Math.round(target / 55));
const before = envoyStats(scale, 1);
const after = envoyStats(scale, 3);
const lines = after.split('\n').length - 1;

const previous = { epoch: 1, takenAtMs: 0, families: deriveServiceConnectMetrics(parsePrometheus(before, { prefix: 'envoy_' })) };
const phases = { parse: [] as number[], derive: [] as number[], delta: [] as number[], render: [] as number[] };

/** One snapshot as the agent takes it (parse, derive), its delta against the previous one, and the rendered answer. */
function once(): { ms: number; bytes: number } {
  const t0 = performance.now();
  const parsed = parsePrometheus(after, { prefix: 'envoy_' });
  const t1 = performance.now();
  const next = { epoch: 1, takenAtMs: 1, families: deriveServiceConnectMetrics(parsed) };
  const t2 = performance.now();
  const delta = computeDelta(previous, next);
  const t3 = performance.now();
  const text = renderPrometheus(delta);
  const t4 = performance.now();
  phases.parse.push(t1 - t0);
  phases.derive.push(t2 - t1);
  phases.delta.push(t3 - t2);
  phases.render.push(t4 - t3);
  return { ms: t4 - t0, bytes: text.length };
}

for (let i = 0; i < 5; i++) once(); // warm up
for (const k of Object.keys(phases) as Array<keyof typeof phases>) phases[k].length = 0;
const runs: number[] = [];
let bytes = 0;
for (let i = 0; i < 30; i++) {
  const r = once();
  runs.push(r.ms);
  bytes = r.bytes;
}
runs.sort((a, b) => a - b);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const pct = (p: number) => runs[Math.min(runs.length - 1, Math.floor((p / 100) * runs.length))]?.toFixed(1);
process.stdout.write(
  `stats pipeline: ${lines} Envoy stat lines (${scale} services), parse + derive + delta + render of one snapshot against the previous\n` +
    `  p50 ${pct(50)} ms, p90 ${pct(90)} ms, max ${runs.at(-1)?.toFixed(1)} ms over ${runs.length} runs; output ${(bytes / 1024).toFixed(0)} KiB\n` +
    `  median by phase: ${(Object.keys(phases) as Array<keyof typeof phases>).map((k) => `${k} ${median(phases[k]).toFixed(1)} ms`).join(', ')}\n`,
);
