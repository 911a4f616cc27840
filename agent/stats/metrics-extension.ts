/**
 * The metrics extension's view of Envoy: only the stats it reads, fetched from Envoy's admin and presented under
 * the ECS names. Used by the snapshotter (the delta) and by /stats/prometheus?usedonly&filter=metrics_extension.
 */
import type { EnvoyAdminClient } from '../envoy/index.ts';
import { PrometheusParser, type Family } from './prometheus-text.ts';
import { deriveServiceConnectMetrics, METRICS_EXTENSION_STATS_FILTER, type MetricLabels } from './service-connect-metrics.ts';

/**
 * Fetches only the Envoy stats the metrics extension reads, and presents them under the ECS names. Envoy's answer is
 * parsed as it arrives (a 1,000-service namespace gives megabytes of it when every stat is wanted): only the samples
 * are kept, never the whole text.
 */
export async function fetchMetricsExtension(
  admin: EnvoyAdminClient,
  opts: { usedOnly: boolean; timeoutMs: number; signal?: AbortSignal; labels?: MetricLabels },
): Promise<Map<string, Family>> {
  const parser = new PrometheusParser({ prefix: 'envoy_' });
  const status = await admin.consume(
    `/stats/prometheus?${opts.usedOnly ? 'usedonly&' : ''}filter=${encodeURIComponent(METRICS_EXTENSION_STATS_FILTER)}`,
    { timeoutMs: opts.timeoutMs, ...(opts.signal ? { signal: opts.signal } : {}) },
    (text) => parser.write(text),
  );
  if (status !== 200) throw new Error(`Envoy /stats/prometheus answered HTTP ${status}`);
  return deriveServiceConnectMetrics(parser.end(), opts.labels);
}
