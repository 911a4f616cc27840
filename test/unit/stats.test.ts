/** Prometheus text parsing and rendering, deltas, and the Service Connect metrics mapping. Pure; promtool checks. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePrometheus, renderPrometheus, type Family } from '../../agent/stats/prometheus-text.ts';
import { computeDelta, type Snapshot } from '../../agent/stats/delta.ts';
import { deriveServiceConnectMetrics } from '../../agent/stats/service-connect-metrics.ts';
import { promtoolCheck } from '../helpers/promtool.ts';

const envoyText = `# TYPE envoy_appmesh_GrpcRequestCount counter
envoy_appmesh_GrpcRequestCount{VirtualNode="client_b",Mesh="howto-k8s-http2"} 0
envoy_appmesh_GrpcRequestCount{Mesh="howto-k8s-http1",VirtualNode="client_a"} 0
# TYPE envoy_appmesh_NewConnectionCount counter
envoy_appmesh_NewConnectionCount{Mesh="howto-k8s-http2",VirtualNode="client_b"} 0
# TYPE envoy_cluster_default_total_match_count counter
envoy_cluster_default_total_match_count{envoy_cluster_name="x"} 3
# TYPE envoy_appmesh_TargetResponseTime histogram
envoy_appmesh_TargetResponseTime_bucket{Direction="egress",le="0.5"} 1
envoy_appmesh_TargetResponseTime_bucket{Direction="egress",le="+Inf"} 1
envoy_appmesh_TargetResponseTime_sum{Direction="egress"} 1.0
envoy_appmesh_TargetResponseTime_count{Direction="egress"} 1
`;

test('the metrics_extension filter keeps envoy_appmesh_ families, strips the prefix, and sorts as the reference does', () => {
  const families = parsePrometheus(envoyText, { prefix: 'envoy_appmesh_', stripPrefix: true });
  assert.deepEqual([...families.keys()], ['GrpcRequestCount', 'NewConnectionCount', 'TargetResponseTime']);
  assert.equal(
    renderPrometheus(families.values()),
    [
      '',
      '# TYPE GrpcRequestCount counter',
      'GrpcRequestCount{Mesh="howto-k8s-http1",VirtualNode="client_a"} 0',
      'GrpcRequestCount{Mesh="howto-k8s-http2",VirtualNode="client_b"} 0',
      '',
      '# TYPE NewConnectionCount counter',
      'NewConnectionCount{Mesh="howto-k8s-http2",VirtualNode="client_b"} 0',
      '',
      '# TYPE TargetResponseTime histogram',
      'TargetResponseTime_bucket{Direction="egress",le="0.5"} 1',
      'TargetResponseTime_bucket{Direction="egress",le="+Inf"} 1',
      'TargetResponseTime_sum{Direction="egress"} 1',
      'TargetResponseTime_count{Direction="egress"} 1',
      '',
    ].join('\n'),
  );
});

test('rendering adds a missing +Inf bucket and escapes nothing twice', () => {
  const fams = parsePrometheus('# TYPE x histogram\nx_bucket{a="q\\"uote",le="1"} 2\nx_sum{a="q\\"uote"} 3\nx_count{a="q\\"uote"} 2\n');
  const text = renderPrometheus(fams.values());
  assert.match(text, /x_bucket\{a="q\\"uote",le="\+Inf"\} 2\n/);
  assert.equal(promtoolCheck(text).parseError, null);
});

test('label values with braces, commas and escapes survive a parse and render round trip', () => {
  const fams = parsePrometheus('# TYPE c counter\nc{path="/a{b},c",q="x\\\\y"} 1e+06\n');
  assert.equal(renderPrometheus(fams.values()), '\n# TYPE c counter\nc{path="/a{b},c",q="x\\\\y"} 1000000\n');
});

function snapshot(epoch: number, text: string): Snapshot {
  return { epoch, takenAtMs: 0, families: parsePrometheus(text) };
}
function value(families: Family[], name: string, labels = ''): unknown {
  const f = families.find((x) => x.name === name);
  return f?.samples.get(labels);
}

test('delta: counters subtract; gauges pass through; a new series counts in full (reference test vectors)', () => {
  const before = snapshot(1, '# TYPE c counter\nc{v="1"} 0\n# TYPE g gauge\ng 1\n');
  const after = snapshot(1, '# TYPE c counter\nc{v="1"} 5\nc{v="2"} 5\n# TYPE g gauge\ng 5\n');
  const d = computeDelta(before, after);
  assert.equal(value(d, 'c', 'v="1"'), 5);
  assert.equal(value(d, 'c', 'v="2"'), 5);
  assert.equal(value(d, 'g'), 5);
});

test('delta: histograms subtract bucket by bucket with sum and count (reference test vector)', () => {
  const h = (a: number, s: number) => `# TYPE h histogram\nh_bucket{le="0.5"} ${a}\nh_bucket{le="+Inf"} ${a}\nh_sum ${s}\nh_count ${a}\n`;
  const d = computeDelta(snapshot(1, h(1, 1.0)), snapshot(1, h(3, 13.5)));
  assert.deepEqual(value(d, 'h'), { les: ['0.5', '+Inf'], counts: [2, 2], sum: 12.5, count: 2 });
});

test('delta: a counter that went down (reset_counters) counts from zero instead of going negative', () => {
  const d = computeDelta(snapshot(1, '# TYPE c counter\nc 20\n'), snapshot(1, '# TYPE c counter\nc 5\n'));
  assert.equal(value(d, 'c'), 5);
});

test('delta: a histogram whose counts went down is a reset, never a wrapped uint64', () => {
  const h = (a: number) => `# TYPE h histogram\nh_bucket{le="1"} ${a}\nh_bucket{le="+Inf"} ${a}\nh_sum ${a}\nh_count ${a}\n`;
  const d = computeDelta(snapshot(1, h(10)), snapshot(1, h(2)));
  assert.deepEqual(value(d, 'h'), { les: ['1', '+Inf'], counts: [2, 2], sum: 2, count: 2 });
});

test('delta: a snapshot from a new Envoy process is compared with zero, even when its counters are higher', () => {
  const d = computeDelta(snapshot(1, '# TYPE c counter\nc 5\n'), snapshot(2, '# TYPE c counter\nc 7\n'));
  assert.equal(value(d, 'c'), 7);
});

test('delta: with no previous snapshot the delta is the change since Envoy started', () => {
  assert.equal(value(computeDelta(null, snapshot(1, '# TYPE c counter\nc 9\n')), 'c'), 9);
});

const standardStats = `# TYPE envoy_http_downstream_rq_total counter
envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="scin_http_web"} 3
envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="scin_grpc_orders"} 7
envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="admin"} 99
# TYPE envoy_http_downstream_cx_rx_bytes_total counter
envoy_http_downstream_cx_rx_bytes_total{envoy_http_conn_manager_prefix="scin_http_web"} 100
# TYPE envoy_http_downstream_cx_tx_bytes_total counter
envoy_http_downstream_cx_tx_bytes_total{envoy_http_conn_manager_prefix="scin_http_web"} 23
# TYPE envoy_tcp_downstream_cx_total counter
envoy_tcp_downstream_cx_total{envoy_tcp_prefix="scin_tcp_db"} 2
# TYPE envoy_cluster_upstream_rq_xx counter
envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="scout_http_web"} 4
envoy_cluster_upstream_rq_xx{envoy_response_code_class="5",envoy_cluster_name="scout_http_web"} 1
envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="other_cluster"} 50
# TYPE envoy_cluster_upstream_rq_time histogram
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="scout_http_web",le="5"} 4
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="scout_http_web",le="+Inf"} 5
envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="scout_http_web"} 31
envoy_cluster_upstream_rq_time_count{envoy_cluster_name="scout_http_web"} 5
# TYPE envoy_appmesh_RequestCount counter
envoy_appmesh_RequestCount{Direction="ingress",DiscoveryName="native"} 8
`;

test("Service Connect metrics come from Envoy's own stats of scin_/scout_ listeners and clusters, with ECS names and labels", () => {
  const m = deriveServiceConnectMetrics(parsePrometheus(standardStats, { prefix: 'envoy_' }), { ServiceName: 'shop', ClusterName: 'prod' });
  const text = renderPrometheus(m.values());
  assert.match(text, /^RequestCount\{ClusterName="prod",Direction="ingress",DiscoveryName="web",ServiceName="shop"\} 3$/m);
  assert.match(text, /^RequestCount\{ClusterName="prod",Direction="ingress",DiscoveryName="orders",ServiceName="shop"\} 7$/m);
  assert.match(text, /^GrpcRequestCount\{ClusterName="prod",Direction="ingress",DiscoveryName="orders",ServiceName="shop"\} 7$/m);
  assert.doesNotMatch(text, /GrpcRequestCount\{[^}]*DiscoveryName="web"/, 'GrpcRequestCount only for grpc');
  assert.match(text, /^ProcessedBytes\{[^}]*DiscoveryName="web"[^}]*\} 123$/m, 'rx + tx');
  assert.match(text, /^NewConnectionCount\{[^}]*DiscoveryName="db"[^}]*\} 2$/m, 'tcp ingress');
  assert.match(text, /^HTTPCode_Target_2XX_Count\{ClusterName="prod",Direction="egress",ServiceName="shop",TargetDiscoveryName="web"\} 4$/m);
  assert.match(text, /^HTTPCode_Target_5XX_Count\{[^}]*TargetDiscoveryName="web"\} 1$/m);
  assert.match(text, /^TargetResponseTime_count\{[^}]*TargetDiscoveryName="web"\} 5$/m);
  assert.match(text, /^RequestCount\{Direction="ingress",DiscoveryName="native"\} 8$/m, 'envoy_appmesh_ families pass through');
  assert.doesNotMatch(text, /other_cluster|admin/, 'stats outside the convention are not metrics');
  assert.equal(promtoolCheck(text).parseError, null);
});

test('an empty metrics_extension answer is valid Prometheus text', () => {
  assert.equal(renderPrometheus([]), '');
  assert.equal(promtoolCheck('').parseError, null);
});

test('histogram series with different bounds in one family keep their own bounds', () => {
  const text = [
    '# TYPE h histogram',
    'h_bucket{s="a",le="1"} 1', 'h_bucket{s="a",le="+Inf"} 1', 'h_sum{s="a"} 1', 'h_count{s="a"} 1',
    'h_bucket{s="b",le="1"} 2', 'h_bucket{s="b",le="5"} 3', 'h_bucket{s="b",le="+Inf"} 4', 'h_sum{s="b"} 9', 'h_count{s="b"} 4',
    'h_bucket{s="c",le="1"} 5', 'h_bucket{s="c",le="+Inf"} 5', 'h_sum{s="c"} 5', 'h_count{s="c"} 5',
    '',
  ].join('\n');
  const h = parsePrometheus(text).get('h');
  assert.ok(h?.type === 'histogram');
  assert.deepEqual(h.samples.get('s="a"')?.les, ['1', '+Inf']);
  assert.deepEqual(h.samples.get('s="b"')?.les, ['1', '5', '+Inf']);
  assert.deepEqual(h.samples.get('s="c"')?.les, ['1', '+Inf']);
  assert.equal(renderPrometheus(parsePrometheus(renderPrometheus([h])).values()), renderPrometheus([h]));
});
