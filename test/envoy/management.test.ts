/**
 * The management interface with the real Envoy: the ECS agent's exact requests over the Unix socket, stats in every
 * shape checked by promtool, deltas across an Envoy restart, and /enableLogging.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { waitHealthy } from '../helpers/agent.ts';
import { httpRequest } from '../helpers/http.ts';
import { promtoolCheck } from '../helpers/promtool.ts';
import { waitFor } from '../helpers/wait.ts';
import { startMeshAgent } from '../helpers/mesh-agent.ts';

/** The ECS agent's stats request, byte for byte (ecs-agent-contract.md section 4.1). */
const ECS_STATS = '/stats/prometheus?usedonly&filter=metrics_extension&delta';
const ECS_DRAIN = '/drain_listeners?inboundonly';

function sample(text: string, metric: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${metric}{`) && l.includes(labels));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

test("the ECS agent's stats request answers over the Unix socket with Service Connect metrics that promtool parses", async (t) => {
  const m = await startMeshAgent(t, { APPNET_STATS_SNAPSHOT_INTERVAL_S: '1' });
  if (m === null) return;
  await waitHealthy(m.agent);
  for (let i = 0; i < 4; i++) await httpRequest({ host: '127.0.0.1', port: m.mesh.outboundPort }, '/');
  const res = await waitFor('a delta with the 4 requests', async () => {
    const r = await m.agent.request(ECS_STATS);
    return sample(r.body, 'RequestCount', 'DiscoveryName="web"') === 4 ? r : undefined;
  });
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  assert.match(res.body, /^\n# TYPE RequestCount counter\nRequestCount\{Direction="ingress",DiscoveryName="web"\} 4\n/m);
  assert.equal(sample(res.body, 'RequestCountPerTarget', 'TargetDiscoveryName="web"'), 4);
  assert.equal(sample(res.body, 'HTTPCode_Target_2XX_Count', 'TargetDiscoveryName="web"'), 4);
  assert.equal(promtoolCheck(res.body).parseError, null);
});

test('every /stats/prometheus variant, and /metrics, is valid Prometheus text for promtool', async (t) => {
  const m = await startMeshAgent(t, { APPNET_STATS_SNAPSHOT_INTERVAL_S: '1' });
  if (m === null) return;
  await waitHealthy(m.agent);
  for (let i = 0; i < 3; i++) await httpRequest({ host: '127.0.0.1', port: m.mesh.outboundPort }, '/');
  // Histograms reach Envoy's stats at its 1 s flush; wait for TargetResponseTime so every shape is covered.
  await waitFor('TargetResponseTime', async () => (await m.agent.request('/stats/prometheus?filter=metrics_extension')).body.includes('TargetResponseTime_bucket'));
  for (const path of ['/stats/prometheus', '/stats/prometheus?usedonly', '/stats/prometheus?filter=metrics_extension', '/stats/prometheus?usedonly&filter=metrics_extension', ECS_STATS, '/metrics']) {
    const res = await m.agent.request(path);
    assert.equal(res.status, 200, path);
    // A delta over an interval in which nothing moved is empty (valid Prometheus text); a snapshot taken after the
    // requests above makes that so on a slow machine. Anything else ends in a newline.
    assert.ok(res.body.endsWith('\n') || (path === ECS_STATS && res.body === ''), `${path}: ends in a newline`);
    assert.ok(!/[ \t]\n/.test(res.body), `${path}: no trailing spaces`);
    assert.equal(promtoolCheck(res.body).parseError, null, `${path}: promtool parse error`);
  }
});

test('the delta across an Envoy restart has no negative or wrapped counter', async (t) => {
  const m = await startMeshAgent(t, { APPNET_STATS_SNAPSHOT_INTERVAL_S: '1' });
  if (m === null) return;
  const first = await waitHealthy(m.agent);
  for (let i = 0; i < 5; i++) await httpRequest({ host: '127.0.0.1', port: m.mesh.outboundPort }, '/');
  await waitFor('the 5 requests in a delta', async () => sample((await m.agent.request(ECS_STATS)).body, 'RequestCount', 'web') === 5);
  process.kill(Number(first['envoyPid']), 'SIGKILL');
  await waitHealthy(m.agent, 15_000, (s) => s['envoyRestartCount'] === '1');
  await httpRequest({ host: '127.0.0.1', port: m.mesh.outboundPort }, '/');
  const after = await waitFor('a delta from the restarted Envoy', async () => {
    const body = (await m.agent.request(ECS_STATS)).body;
    return sample(body, 'RequestCount', 'web') === 1 ? body : undefined;
  });
  const values = after
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => Number(l.slice(l.lastIndexOf(' ') + 1)));
  assert.ok(values.length > 5);
  for (const v of values) assert.ok(v >= 0 && v < 1e12, `every value is a sane non-negative count, got ${v}`);
  // The next interval with no traffic is zero, not a negative jump.
  const quiet = await waitFor('a quiet interval', async () => {
    const body = (await m.agent.request(ECS_STATS)).body;
    return sample(body, 'RequestCount', 'web') === 0 ? body : undefined;
  });
  assert.equal(promtoolCheck(quiet).parseError, null);
});

test("the ECS agent's GET /drain_listeners?inboundonly drains inbound listeners only, and answers at once", async (t) => {
  const m = await startMeshAgent(t, { LISTENER_DRAIN_WAIT_TIME_S: '5' });
  if (m === null) return;
  await waitHealthy(m.agent);
  const res = await m.agent.request(ECS_DRAIN);
  assert.equal(res.status, 200);
  assert.equal(res.body, 'OK\n');
  assert.equal(res.headers['connection'], 'close', 'no pooled keep-alive connection across tasks (ECS agent client hazard)');
  // Graceful: inbound keeps serving during the drain time, then stops accepting; outbound is untouched.
  assert.equal((await httpRequest({ host: '127.0.0.1', port: m.mesh.inboundPort }, '/')).status, 200);
  await waitFor('the inbound listener to close after the drain time', async () => {
    try {
      await httpRequest({ host: '127.0.0.1', port: m.mesh.inboundPort }, '/', { timeoutMs: 1000 });
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
    }
  }, { timeoutMs: 15_000 });
  // The outbound listener still accepts; its request reaches the (now closed) inbound side, so Envoy answers 503.
  const outbound = await httpRequest({ host: '127.0.0.1', port: m.mesh.outboundPort }, '/');
  assert.equal(outbound.headers['server'], 'envoy');
  const post = await m.agent.request(ECS_DRAIN, { method: 'POST' });
  assert.equal(post.status, 200, 'POST works as well');
  const bad = await m.agent.request('/drain_listeners');
  assert.equal(bad.status, 400);
  assert.match(bad.body, /inboundonly/);
});

test('/enableLogging sets every Envoy logger, reverts after the timeout, and a restarted Envoy keeps a permanent level', async (t) => {
  const m = await startMeshAgent(t, { APPNET_AGENT_LOGGING_RESET_TIMEOUT: '2' });
  if (m === null) return;
  const status = await waitHealthy(m.agent);
  const envoyLevels = async () => (await httpRequest({ socketPath: m.mesh.adminSocket }, '/logging', { method: 'POST' })).body;
  const set = await m.agent.request('/enableLogging?level=debug', { method: 'POST' });
  assert.equal(set.status, 200);
  assert.match(set.body, /from \[warning\] to \[debug\]; reverts to warning in 2 s/);
  assert.match(await envoyLevels(), /admin: debug/);
  await waitFor('the level to revert', async () => /admin: warning/.test(await envoyLevels()), { timeoutMs: 10_000 });

  const critical = await m.agent.request('/enableLogging?level=critical&permanent=true', { method: 'POST' });
  assert.equal(critical.status, 200, 'critical is accepted (the reference rejected levels longer than 5 letters)');
  process.kill(Number(status['envoyPid']), 'SIGKILL');
  const restarted = await waitHealthy(m.agent, 15_000, (s) => s['envoyRestartCount'] === '1');
  const argv = readFileSync(`/proc/${String(restarted['envoyPid'])}/cmdline`, 'utf8').split('\0');
  assert.equal(argv[argv.indexOf('-l') + 1], 'critical');

  const get = await m.agent.request('/enableLogging?level=debug');
  assert.equal(get.status, 405);
  assert.equal(get.headers['allow'], 'POST');
  const bad = await m.agent.request('/enableLogging?level=loud', { method: 'POST' });
  assert.equal(bad.status, 400);
  assert.match(bad.body, /level="loud": must be one of trace, debug, info, warn, warning, error, critical, off/);
});
