/**
 * Envoy's stats parsed as they come off the socket (PrometheusParser): a chunk boundary can fall anywhere (inside a
 * name, a label value, an escape, a number), and the families must be those of the whole text; an error names the
 * line counted over every chunk. Pins down the streaming parse of /stats/prometheus?filter=metrics_extension.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePrometheus, PrometheusParser, PrometheusParseError } from '../../agent/stats/prometheus-text.ts';

const text = `# HELP ignored
# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{envoy_cluster_name="scout_http_svc1"} 12
envoy_cluster_upstream_rq_total{envoy_cluster_name="scout_http_svc2"} 1234567
# TYPE envoy_cluster_upstream_rq_time histogram
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="scout_http_svc1",le="0.5"} 1
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="scout_http_svc1",le="+Inf"} 3
envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="scout_http_svc1"} 17.5
envoy_cluster_upstream_rq_time_count{envoy_cluster_name="scout_http_svc1"} 3
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="scout_http_svc2",le="0.5"} 0
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="scout_http_svc2",le="+Inf"} 2
envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="scout_http_svc2"} 4
envoy_cluster_upstream_rq_time_count{envoy_cluster_name="scout_http_svc2"} 2
# TYPE envoy_http_downstream_cx_active gauge
envoy_http_downstream_cx_active{envoy_http_conn_manager_prefix="scin_http_web",path="/a{b},c\\"q"} 2
envoy_server_uptime 99
`;

function chunked(parts: string[]): ReturnType<typeof parsePrometheus> {
  const p = new PrometheusParser({ prefix: 'envoy_' });
  for (const part of parts) p.write(part);
  return p.end();
}

test('a text split in two at any position parses to the same families as the whole text', () => {
  const whole = parsePrometheus(text, { prefix: 'envoy_' });
  assert.equal(whole.size, 4);
  for (let at = 0; at <= text.length; at++) {
    assert.deepStrictEqual(chunked([text.slice(0, at), text.slice(at)]), whole, `split at ${at}: ${JSON.stringify(text.slice(Math.max(0, at - 10), at))}|`);
  }
});

test('a text in chunks of 1 to 7 characters, as a slow socket delivers it, parses to the same families', () => {
  const whole = parsePrometheus(text, { prefix: 'envoy_' });
  for (let size = 1; size <= 7; size++) {
    const parts: string[] = [];
    for (let i = 0; i < text.length; i += size) parts.push(text.slice(i, i + size));
    assert.deepStrictEqual(chunked(parts), whole, `chunks of ${size}`);
  }
});

test('the last line is parsed at the end even without its newline', () => {
  const families = chunked(['envoy_a 1\nenvoy_b', ' 2']);
  assert.deepStrictEqual([...families.values()].map((f) => [f.name, [...f.samples.values()]]), [
    ['envoy_a', [1]],
    ['envoy_b', [2]],
  ]);
});

test('a malformed line is reported with its line number counted across chunks', () => {
  const p = new PrometheusParser();
  p.write('# TYPE c counter\nc{a="1"} 1\n');
  p.write('c{a="2"} 2\nc{a="3');
  assert.throws(() => {
    p.write('"} notanumber\n');
  }, (err: unknown) => err instanceof PrometheusParseError && /^line 4: bad sample value "notanumber"/.test(err.message));
  const q = new PrometheusParser();
  q.write('# TYPE c counter\nc{a="1"');
  assert.throws(() => q.end(), (err: unknown) => err instanceof PrometheusParseError && /^line 2: /.test(err.message), 'a line cut off at the end of the answer');
});
