/**
 * The management interface against a fake Envoy admin server, for what the real Envoy cannot be made to do on
 * demand: hang, or print malformed stats. Also the HTTP error contract (404, 405, 400, 429).
 * FAKE: the admin socket here is a test server, not Envoy; every other test uses the real Envoy.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import { join } from 'node:path';
import { EnvoyAdminClient } from '../../agent/envoy/admin-client.ts';
import { LogLevelController } from '../../agent/envoy/log-level.ts';
import { HealthMonitor } from '../../agent/health/health-monitor.ts';
import { createLogger } from '../../agent/logger.ts';
import { startManagementServer, REQUEST_DEADLINE_MS } from '../../agent/server/management-server.ts';
import { createAgentMetrics } from '../../agent/stats/agent-metrics.ts';
import { StatsSnapshotter } from '../../agent/stats/stats-snapshotter.ts';
import { tempDir } from '../helpers/agent.ts';
import { httpRequest } from '../helpers/http.ts';

const silent = createLogger({ level: 'error', write: () => undefined });

async function fakeAdmin(t: TestContext, dir: string, handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const path = join(dir, 'fake-envoy-admin.sock');
  const server = createServer(handler);
  server.listen(path);
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return path;
}

async function agentServer(t: TestContext, adminPath: string) {
  const dir = tempDir(t);
  const admin = new EnvoyAdminClient({ kind: 'uds', path: adminPath });
  const health = new HealthMonitor({ watchesManagementServer: false, admin, envoy: () => ({ pid: 4242, restartCount: 0 }), pollIntervalMs: 10_000, disconnectedTimeoutMs: 3_600_000, logger: silent });
  const logLevel = new LogLevelController({ initial: 'info', resetAfterMs: 300_000, apply: (l) => admin.setLogLevel(l), logger: silent });
  const snapshotter = new StatsSnapshotter({ admin, intervalMs: 60_000, epoch: () => 1, logger: silent });
  const socket = join(dir, 'agent.sock');
  const server = await startManagementServer({
    address: { kind: 'uds', path: socket },
    logger: silent,
    context: { health, admin, logLevel, snapshotter, metrics: createAgentMetrics(), metricLabels: {}, drainInbound: () => admin.drainListeners({ inboundOnly: true }).then(() => undefined) },
  });
  t.after(async () => {
    logLevel.close();
    await server.close();
    await admin.close();
  });
  return { target: { socketPath: socket }, health };
}

test('with a hung Envoy every answer still comes within the deadline: /status at once, stats 503, drain 500', async (t) => {
  const dir = tempDir(t);
  const adminPath = await fakeAdmin(t, dir, () => {
    // Never answers: the case of an Envoy whose admin thread is stuck.
  });
  const { target, health } = await agentServer(t, adminPath);
  await health.poll();
  const status = await httpRequest(target, '/status', { timeoutMs: 1000 });
  assert.equal(status.status, 200);
  const doc = JSON.parse(status.body) as { healthStatus: string; envoyState: string; reasons: string[] };
  assert.equal(doc.healthStatus, 'UNHEALTHY');
  assert.equal(doc.envoyState, 'UNREACHABLE');
  assert.deepEqual(doc.reasons, ["Envoy's admin interface does not answer"]);

  const started = Date.now();
  const stats = await httpRequest(target, '/stats/prometheus?usedonly&filter=metrics_extension&delta', { timeoutMs: REQUEST_DEADLINE_MS + 3000 });
  assert.equal(stats.status, 503);
  assert.match(stats.body, /^Envoy is not answering: /);
  assert.ok(Date.now() - started <= REQUEST_DEADLINE_MS + 1000, 'bounded by the request deadline');

  const drain = await httpRequest(target, '/drain_listeners?inboundonly', { timeoutMs: REQUEST_DEADLINE_MS + 3000 });
  assert.equal(drain.status, 500);
  assert.match(drain.body, /^Unable to drain Envoy listeners: .*timed out/);
});

test("malformed stats from Envoy give a 502 naming the parse error; the unfiltered pass-through is Envoy's own text", async (t) => {
  const dir = tempDir(t);
  const garbage = '# TYPE envoy_http_downstream_rq_total counter\nenvoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="scin_http_web" 5\n';
  const adminPath = await fakeAdmin(t, dir, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8' });
    res.end(garbage);
  });
  const { target } = await agentServer(t, adminPath);
  const filtered = await httpRequest(target, '/stats/prometheus?usedonly&filter=metrics_extension');
  assert.equal(filtered.status, 502);
  assert.match(filtered.body, /^Envoy's stats could not be parsed: line 2: unterminated labels/);
  const raw = await httpRequest(target, '/stats/prometheus');
  assert.equal(raw.status, 200);
  assert.equal(raw.body, garbage);
});

test('the management interface answers 404 for unknown paths, 405 with Allow for wrong methods, 400 naming a bad query key', async (t) => {
  const dir = tempDir(t);
  const adminPath = await fakeAdmin(t, dir, (_req, res) => res.end('LIVE\n'));
  const { target } = await agentServer(t, adminPath);
  assert.deepEqual(await httpRequest(target, '/nope').then((r) => [r.status, r.body]), [404, '404 page not found\n']);
  assert.deepEqual(await httpRequest(target, '/status/').then((r) => r.status), 404);
  const post = await httpRequest(target, '/stats/prometheus', { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers['allow'], 'GET');
  const badKey = await httpRequest(target, '/stats/prometheus?usedonly&bogus=1');
  assert.equal(badKey.status, 400);
  assert.equal(badKey.body, 'unsupported query parameter "bogus" for /stats/prometheus; accepted: usedonly, filter, delta\n');
  const badFilter = await httpRequest(target, '/stats/prometheus?filter=everything');
  assert.equal(badFilter.status, 400);
  assert.match(badFilter.body, /filter="everything": the only filter is metrics_extension/);
  const deltaAlone = await httpRequest(target, '/stats/prometheus?delta');
  assert.equal(deltaAlone.status, 400);
  assert.match(deltaAlone.body, /delta needs usedonly and filter=metrics_extension/);
});

test('routes that call Envoy are rate limited (burst 20) with 429, while /status is not', async (t) => {
  const dir = tempDir(t);
  const adminPath = await fakeAdmin(t, dir, (_req, res) => res.end(''));
  const { target } = await agentServer(t, adminPath);
  const codes: number[] = [];
  for (let i = 0; i < 25; i++) codes.push((await httpRequest(target, '/stats/prometheus?filter=metrics_extension')).status);
  assert.ok(codes.slice(0, 20).every((c) => c === 200), `first 20 allowed: ${codes.join(',')}`);
  assert.ok(codes.slice(20).includes(429), `then 429: ${codes.join(',')}`);
  for (let i = 0; i < 30; i++) assert.equal((await httpRequest(target, '/status')).status, 200);
});

test('after a scrape burst has emptied the stats bucket, drain and health are still answered; concurrent drains make one call to Envoy', async (t) => {
  const dir = tempDir(t);
  let drainCalls = 0;
  const adminPath = await fakeAdmin(t, dir, (req, res) => {
    if (req.url?.startsWith('/drain_listeners')) {
      drainCalls++;
      // Envoy takes a moment: requests that arrive meanwhile share this call.
      setTimeout(() => res.end('OK\n'), 200);
      return;
    }
    res.end('');
  });
  const { target } = await agentServer(t, adminPath);
  const burst = await Promise.all(Array.from({ length: 40 }, () => httpRequest(target, '/stats/prometheus?filter=metrics_extension').then((r) => r.status)));
  assert.ok(burst.includes(429), burst.join(','));
  const [drains, status, ready] = await Promise.all([
    Promise.all(Array.from({ length: 10 }, () => httpRequest(target, '/drain_listeners?inboundonly').then((r) => r.status))),
    httpRequest(target, '/status').then((r) => r.status),
    httpRequest(target, '/ready').then((r) => r.status),
  ]);
  assert.deepEqual(drains, Array(10).fill(200));
  assert.equal(status, 200);
  assert.ok(ready === 200 || ready === 503, 'ready answers (its verdict is not what is tested here)');
  assert.equal(drainCalls, 1, 'one call to Envoy for ten concurrent drain requests');
  // /enableLogging has a bucket of its own: the stats burst did not empty it.
  assert.equal((await httpRequest(target, '/enableLogging?level=info', { method: 'POST' })).status, 200);
});
