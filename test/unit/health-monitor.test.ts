/**
 * The health monitor: what /status says as Envoy starts, fails a listener, loses the management server, restarts.
 * FAKE: an Envoy admin that answers from a script, a clock the test moves, and node:test's mock timers, because
 * the cases (30 days disconnected, a listener that failed at start, the poll cadence) cannot be produced on demand
 * with real Envoy in a unit's time; test/envoy and test/process cover the monitor with real Envoy.
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { fakeTimers } from './fake-timers.ts';
import { ecsManagedMode } from '../../agent/modes/index.ts';
import { relayMode } from '../../relay/index.ts';
import { HealthMonitor, type HealthAdmin, type HealthMonitorOptions } from '../../agent/health/index.ts';
import { createLogger } from '../../agent/logger.ts';

const silent = createLogger({ level: 'error', write: () => undefined });
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

interface FakeEnvoyState {
  state: string | Error;
  connected: number;
  listenerFailures: number;
  pid: number | null;
  calls: number;
}

function monitor(opts: Partial<HealthMonitorOptions> = {}, nowMs = { value: 1_000_000 }): { m: HealthMonitor; envoy: FakeEnvoyState; clock: { value: number } } {
  const envoy: FakeEnvoyState = { state: 'LIVE', connected: 1, listenerFailures: 0, pid: 100, calls: 0 };
  const admin: HealthAdmin = {
    serverState: async () => {
      envoy.calls++;
      if (envoy.state instanceof Error) throw envoy.state;
      return envoy.state;
    },
    stats: async () => [
      { name: 'control_plane.connected_state', value: envoy.connected },
      { name: 'listener_manager.listener_create_failure', value: envoy.listenerFailures },
    ],
  };
  const m = new HealthMonitor({
    watchesManagementServer: ecsManagedMode.watchesManagementServer,
    admin,
    envoy: () => ({ pid: envoy.pid, restartCount: 0 }),
    pollIntervalMs: 10_000,
    disconnectedTimeoutMs: 3_600_000,
    logger: silent,
    now: () => nowMs.value,
    ...opts,
  });
  return { m, envoy, clock: nowMs };
}

test('an ECS task cut off from the management server stays HEALTHY until HC_DISCONNECTED_TIMEOUT_S, then turns UNHEALTHY, and HEALTHY again on reconnect', async () => {
  const { m, envoy, clock } = monitor();
  assert.equal((await m.poll()).status, 'HEALTHY');
  envoy.connected = 0;
  await m.poll();
  clock.value += 3_599_000;
  assert.equal((await m.poll()).status, 'HEALTHY', 'one second before the timeout');
  assert.equal(m.status().managementServerConnectionStatus, 'NOT_CONNECTED');
  clock.value += 1000;
  const verdict = await m.poll();
  assert.equal(verdict.status, 'UNHEALTHY');
  assert.match(verdict.reasons.join(), /disconnected from the management server for 3600 s \(HC_DISCONNECTED_TIMEOUT_S is 3600 s\)/);
  envoy.connected = 1;
  assert.equal((await m.poll()).status, 'HEALTHY');
});

test('relay mode ignores the management-server connection: a relay is healthy when its Envoy is LIVE', async () => {
  const { m, envoy, clock } = monitor({ watchesManagementServer: relayMode.watchesManagementServer });
  envoy.connected = 0;
  await m.poll();
  clock.value += 30 * 86_400_000;
  assert.deepEqual(await m.poll(), { status: 'HEALTHY', reasons: [] });
});

test('a listener that failed at start makes that Envoy UNHEALTHY; a restarted Envoy is judged afresh', async () => {
  const { m, envoy } = monitor();
  envoy.listenerFailures = 1;
  const verdict = await m.poll();
  assert.equal(verdict.status, 'UNHEALTHY');
  assert.equal(m.status().initialConfigUpdateStatus, 'UPDATE_FAILED');
  envoy.pid = 101;
  envoy.listenerFailures = 0;
  assert.equal((await m.poll()).status, 'HEALTHY');
  assert.equal(m.status().initialConfigUpdateStatus, 'UPDATE_SUCCESSFUL');
});

test('an admin interface that does not answer, and Envoy between restarts, are UNHEALTHY with a reason each', async () => {
  const { m, envoy } = monitor();
  envoy.state = new Error('connect ECONNREFUSED');
  assert.deepEqual((await m.poll()).reasons, ["Envoy's admin interface does not answer"]);
  envoy.pid = null;
  assert.deepEqual((await m.poll()).reasons, ['Envoy is not running (restarting)']);
  assert.equal(m.status().envoyPid, '-1');
});

test('until Envoy is first LIVE the monitor polls every 250 ms, then every HC_POLL_INTERVAL_MS; trigger() polls at once', async (t) => {
  fakeTimers(t);
  const { m, envoy } = monitor();
  envoy.state = 'INITIALIZING';
  const stop = new AbortController();
  const running = m.run(stop.signal);
  await settle();
  assert.equal(envoy.calls, 1);
  mock.timers.tick(250);
  await settle();
  assert.equal(envoy.calls, 2, 'a fast poll while Envoy starts');
  envoy.state = 'LIVE';
  mock.timers.tick(250);
  await settle();
  assert.equal(envoy.calls, 3);
  assert.equal(m.verdict?.status, 'HEALTHY');
  mock.timers.tick(9_999);
  await settle();
  assert.equal(envoy.calls, 3, 'no poll before the interval once LIVE');
  m.trigger();
  await settle();
  assert.equal(envoy.calls, 4, 'trigger polls at once');
  mock.timers.tick(10_000);
  await settle();
  assert.equal(envoy.calls, 5);
  stop.abort();
  await running;
});
