/**
 * The stop sequence: before-drain hook (at most 3 s), drain, wait for zero connections or the drain time (a second
 * signal ends the wait), stop Envoy, close the management interface.
 * FAKE: an Envoy and hooks that answer from a script, and node:test's mock timers, because the cases (a Cloud Map
 * that hangs, connections that never close, an Envoy that ignores /quitquitquit and SIGTERM) take seconds to tens
 * of seconds each in real time; test/envoy/supervisor.test.ts, test/process and test/e2e/cloud-map-exits.test.ts
 * run the same sequence with real Envoy and moto.
 */
import { test, mock, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { fakeTimers } from './fake-timers.ts';
import { EnvoySupervisor, runStopSequence, stoppableEnvoy, STOP_TIMINGS, type EnvoyAdminClient, type StopHooks, type StoppableEnvoy, type SupervisorOptions } from '../../agent/envoy/index.ts';
import { createLogger } from '../../agent/logger.ts';

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
/**
 * Moves the mock clock by `ms` in small steps, letting what runs before each step (and each timer's continuation)
 * schedule its next timer first.
 */
async function advance(ms: number, stepMs = 50): Promise<void> {
  for (let left = ms; left > 0; left -= stepMs) {
    await settle();
    mock.timers.tick(Math.min(stepMs, left));
    await settle();
  }
}

const TIMINGS = { ...STOP_TIMINGS, drainWaitMs: 20_000 };

interface Scene {
  /** Every step the sequence took, in order. */
  readonly steps: string[];
  readonly logs: Array<Record<string, unknown>>;
  readonly envoy: StoppableEnvoy & { running: boolean; connections: () => Promise<number>; drain: () => Promise<void> };
  readonly hooks: StopHooks & { beforeDrain: () => Promise<void> };
  readonly secondStop: AbortController;
  /** Starts the sequence; settles when it has. */
  run(): Promise<void>;
  messages(): string[];
}

function scene(t: TestContext): Scene {
  fakeTimers(t);
  const steps: string[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'debug', write: (line) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const envoy = {
    running: true,
    connections: async () => 0,
    drain: async () => undefined,
    beginShutdown: () => void steps.push('beginShutdown'),
    isRunning: () => envoy.running,
    drainInbound: async () => {
      steps.push('drain');
      await envoy.drain();
    },
    activeConnections: async () => {
      steps.push('activeConnections');
      return envoy.connections();
    },
    stop: async (timings: { quitWaitMs: number; termWaitMs: number }) => void steps.push(`stop(quit ${timings.quitWaitMs} ms, term ${timings.termWaitMs} ms)`),
    restartCount: () => 2,
  };
  const hooks = {
    stopping: () => void steps.push('stopping'),
    beforeDrain: async () => void steps.push('beforeDrain'),
    close: async () => void steps.push('close'),
  };
  const secondStop = new AbortController();
  return {
    steps,
    logs,
    envoy,
    hooks,
    secondStop,
    run: () => runStopSequence({ envoy, hooks, timings: TIMINGS, reason: 'SIGTERM', secondStop: secondStop.signal, logger }),
    messages: () => logs.map((l) => String(l['msg'])),
  };
}

/** Steps after the drain's polls, without repeating each poll. */
const withoutPolls = (steps: readonly string[]) => steps.filter((s, i) => s !== 'activeConnections' || steps[i - 1] !== 'activeConnections');

test('the stop deregisters before draining, drains before stopping Envoy, and closes the management interface last', async (t) => {
  // Pins down the order ECS relies on: peers stop choosing this task (deregistration) before its listeners drain,
  // connections are given their time before Envoy quits, and /status answers until Envoy is gone.
  const s = scene(t);
  await s.run();
  assert.deepEqual(s.steps, ['beginShutdown', 'stopping', 'beforeDrain', 'drain', 'activeConnections', 'stop(quit 3000 ms, term 2000 ms)', 'close']);
  assert.deepEqual(s.messages(), ['stopping', 'draining inbound listeners', 'no active downstream connections left', 'Envoy stopped; agent exiting']);
  assert.equal(s.logs[0]?.['reason'], 'SIGTERM');
  assert.equal(s.logs[1]?.['drainTimeS'], 20);
  assert.equal(s.logs[3]?.['restarts'], 2);
});

test('a before-drain hook that hangs (Cloud Map not answering) delays the drain by 3 s, not more', async (t) => {
  // Pins down the cap that keeps the stop inside ECS's 30 s: without it a hung deregistration holds the drain forever.
  const s = scene(t);
  s.hooks.beforeDrain = () => new Promise<void>(() => undefined);
  const done = s.run();
  await advance(2950);
  assert.deepEqual(s.steps, ['beginShutdown', 'stopping'], 'no drain while the hook runs, inside its 3 s');
  await advance(50);
  await done;
  assert.deepEqual(s.steps, ['beginShutdown', 'stopping', 'drain', 'activeConnections', 'stop(quit 3000 ms, term 2000 ms)', 'close']);
  assert.ok(s.logs.some((l) => l['msg'] === 'before-drain step did not finish in time; draining anyway' && l['maxMs'] === 3000));
});

test('the wait ends as soon as Envoy reports zero active connections, not at the drain time', async (t) => {
  // Pins down that a task with no traffic left stops in about a second instead of LISTENER_DRAIN_WAIT_TIME_S.
  const s = scene(t);
  const counts = [3, 1, 0];
  s.envoy.connections = async () => counts.shift() ?? 0;
  let stopped = false;
  const done = s.run().then(() => void (stopped = true));
  await advance(450);
  assert.equal(stopped, false, 'still two connections at 250 ms');
  await advance(50);
  await done;
  assert.equal(s.steps.filter((x) => x === 'activeConnections').length, 3, 'read at 0, 250 and 500 ms');
  assert.ok(s.messages().includes('no active downstream connections left'));
  assert.ok(!s.messages().includes('drain time is over'));
});

test('connections that never close hold Envoy for the drain time (LISTENER_DRAIN_WAIT_TIME_S) and no longer', async (t) => {
  // Pins down both ends of the wait: in-flight requests get the whole drain time, and the stop goes on after it.
  const s = scene(t);
  s.envoy.connections = async () => 4;
  const done = s.run();
  await advance(19_950);
  assert.ok(!s.steps.some((x) => x.startsWith('stop(')), 'Envoy not stopped inside the drain time');
  await advance(50);
  await done;
  assert.deepEqual(withoutPolls(s.steps), ['beginShutdown', 'stopping', 'beforeDrain', 'drain', 'activeConnections', 'stop(quit 3000 ms, term 2000 ms)', 'close']);
  assert.equal(s.messages().at(-2), 'drain time is over');
});

test('a second stop signal ends the wait at once and stops Envoy', async (t) => {
  // Pins down the operator's way out of a long drain (a second Ctrl-C or docker stop).
  const s = scene(t);
  s.envoy.connections = async () => 4;
  const done = s.run();
  await advance(1000);
  assert.ok(!s.steps.some((x) => x.startsWith('stop(')));
  s.secondStop.abort();
  await settle();
  await done;
  assert.ok(s.steps.includes('stop(quit 3000 ms, term 2000 ms)'));
  assert.ok(s.messages().includes('second stop signal: not waiting for connections'));
});

test('a second signal during the before-drain hook still drains, then skips the wait', async (t) => {
  // Pins down that a second stop signal never skips the drain itself (new connections are refused before Envoy quits).
  const s = scene(t);
  s.envoy.connections = async () => 4;
  s.hooks.beforeDrain = async () => void s.secondStop.abort();
  await s.run();
  assert.deepEqual(s.steps, ['beginShutdown', 'stopping', 'drain', 'stop(quit 3000 ms, term 2000 ms)', 'close']);
  assert.ok(s.messages().includes('second stop signal: not waiting for connections'));
});

/** Steps that fail, each with the failure it pins down: none of them may leave Envoy running or hold the stop. */
const failingSteps: ReadonlyArray<{ name: string; pinsDown: string; fail: (s: Scene) => void; log: string; steps: string[] }> = [
  {
    name: 'a before-drain hook that fails is logged, and the drain and the stop of Envoy still happen',
    pinsDown: 'a Cloud Map error at stop leaving Envoy running',
    fail: (s) => (s.hooks.beforeDrain = () => Promise.reject(new Error('ThrottlingException'))),
    log: 'before-drain step failed',
    steps: ['beginShutdown', 'stopping', 'drain', 'activeConnections', 'stop(quit 3000 ms, term 2000 ms)', 'close'],
  },
  {
    name: 'a drain Envoy refuses is logged, and Envoy is stopped at once without waiting',
    pinsDown: 'an admin error at stop (Envoy hung, HTTP 500) keeping the agent or Envoy alive',
    fail: (s) => (s.envoy.drain = () => Promise.reject(new Error('HTTP 500'))),
    log: 'draining failed; stopping Envoy now',
    steps: ['beginShutdown', 'stopping', 'beforeDrain', 'drain', 'stop(quit 3000 ms, term 2000 ms)', 'close'],
  },
  {
    name: 'active connections that cannot be read end the wait and stop Envoy',
    pinsDown: 'a broken admin read turning into the whole drain time',
    fail: (s) => (s.envoy.connections = () => Promise.reject(new Error('connect ECONNREFUSED'))),
    log: 'cannot read active connections from Envoy; stopping it',
    steps: ['beginShutdown', 'stopping', 'beforeDrain', 'drain', 'activeConnections', 'stop(quit 3000 ms, term 2000 ms)', 'close'],
  },
];

for (const f of failingSteps) {
  test(f.name, async (t) => {
    const s = scene(t);
    f.fail(s);
    await s.run();
    assert.deepEqual(s.steps, f.steps, `pins down: ${f.pinsDown}`);
    assert.ok(s.messages().includes(f.log), `logged: ${f.log}`);
  });
}

test('an Envoy between restarts is not drained, and its stop still runs', async (t) => {
  // Pins down that the stop does not wait on listeners of an Envoy that is not running.
  const s = scene(t);
  s.envoy.running = false;
  await s.run();
  assert.deepEqual(s.steps, ['beginShutdown', 'stopping', 'beforeDrain', 'stop(quit 3000 ms, term 2000 ms)', 'close']);
});

/** A child process in place of Envoy that exits only on the signals it dies of. */
class FakeEnvoyProcess extends EventEmitter {
  readonly pid = 4242;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly signals: Array<{ signal: string; atMs: number }> = [];
  readonly #clock: { ms: number };
  constructor(clock: { ms: number }) {
    super();
    this.#clock = clock;
  }
  kill(signal: NodeJS.Signals): boolean {
    this.signals.push({ signal, atMs: this.#clock.ms });
    if (signal === 'SIGKILL') {
      this.signalCode = signal;
      this.emit('exit', null, signal);
    }
    return true;
  }
}

test('with every step hanging, the default stop sends SIGTERM at 26 s and SIGKILL at 28 s, inside ECS\'s 30 s', async (t) => {
  // Pins down the whole budget with the real supervisor: hook 3 s + drain time 20 s + /quitquitquit 3 s + SIGTERM 2 s.
  // An Envoy that ignores /quitquitquit and SIGTERM, connections that never close, a Cloud Map that never answers.
  fakeTimers(t);
  const clock = { ms: 0 };
  const child = new FakeEnvoyProcess(clock);
  const supervisor = new EnvoySupervisor({
    binary: 'envoy',
    args: () => [],
    restartBudget: 3,
    logger: createLogger({ level: 'error', write: () => undefined }),
    output: 'inherit',
    deathSignalWrapper: null,
    spawn: (() => child) as unknown as NonNullable<SupervisorOptions['spawn']>,
  });
  supervisor.start();
  const quits: number[] = [];
  const admin = {
    drainListeners: async () => ({ status: 200, body: '' }),
    activeDownstreamConnections: async () => 7,
    quit: async () => void quits.push(clock.ms),
  } as unknown as EnvoyAdminClient;
  let closedAtMs: number | null = null;
  const done = runStopSequence({
    envoy: stoppableEnvoy(supervisor, admin),
    hooks: { beforeDrain: () => new Promise<void>(() => undefined), close: async () => void (closedAtMs = clock.ms) },
    timings: TIMINGS,
    reason: 'SIGTERM',
    secondStop: new AbortController().signal,
    logger: createLogger({ level: 'error', write: () => undefined }),
  });
  while (closedAtMs === null && clock.ms < 60_000) {
    clock.ms += 50;
    await advance(50);
  }
  await done;
  assert.deepEqual(quits, [23_000], '/quitquitquit after the hook (3 s) and the drain time (20 s)');
  assert.deepEqual(child.signals, [
    { signal: 'SIGTERM', atMs: 26_000 },
    { signal: 'SIGKILL', atMs: 28_000 },
  ]);
  assert.equal(closedAtMs, 28_000);
  assert.deepEqual(await supervisor.done, { kind: 'stopped' });
});
