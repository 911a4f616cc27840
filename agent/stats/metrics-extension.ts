/**
 * The metrics extension's view of Envoy: only the stats it reads, fetched from Envoy's admin and presented under
 * the ECS names. Used by the snapshotter (the delta) and by /stats/prometheus?usedonly&filter=metrics_extension.
 */
import type { EnvoyAdminClient } from '../envoy/index.ts';
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
