/**
 * The supervisor's state machine: restart backoff, the restart budget, and stop's quit → SIGTERM → SIGKILL.
 * FAKE: a child process object in place of Envoy, and node:test's mock timers for the waits, because the cases
 * (an Envoy that ignores /quitquitquit and SIGTERM, a sixth crash in a row) take seconds of real time each with
 * real Envoy; test/envoy/supervisor.test.ts runs the same machine with real Envoy.
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { fakeTimers } from './fake-timers.ts';
import { EnvoySupervisor, describeExit, type SupervisorOptions } from '../../agent/envoy/index.ts';
import { createLogger } from '../../agent/logger.ts';

class FakeEnvoy extends EventEmitter {
  readonly pid: number | undefined;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly signals: string[] = [];
  /** Signals this Envoy dies of; the others it ignores. */
  diesOf: readonly string[] = ['SIGKILL'];
  constructor(pid: number | undefined) {
    super();
    this.pid = pid;
  }
  kill(signal: NodeJS.Signals): boolean {
    this.signals.push(signal);
    if (this.diesOf.includes(signal)) this.exit(null, signal);
    return true;
  }
  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    this.exitCode = code;
    this.signalCode = signal;
    this.emit('exit', code, signal);
  }
}

const silent = createLogger({ level: 'error', write: () => undefined });
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function supervisor(opts: Partial<SupervisorOptions> = {}): { sup: EnvoySupervisor; children: FakeEnvoy[] } {
  const children: FakeEnvoy[] = [];
  const spawn = (() => {
    const child = new FakeEnvoy(1000 + children.length);
    children.push(child);
    return child;
  }) as unknown as NonNullable<SupervisorOptions['spawn']>;
  const sup = new EnvoySupervisor({ binary: 'envoy', args: () => [], restartBudget: 10, logger: silent, output: 'inherit', deathSignalWrapper: null, spawn, ...opts });
  return { sup, children };
}

const last = (children: FakeEnvoy[]): FakeEnvoy => children[children.length - 1] as FakeEnvoy;

test('an Envoy that keeps crashing is restarted after 250, 500, 1000 ms ... capped at 5 s, never sooner', async (t) => {
  fakeTimers(t);
  const { sup, children } = supervisor();
  sup.start();
  for (const delayMs of [250, 500, 1000, 2000, 4000, 5000, 5000]) {
    const before = children.length;
    last(children).exit(1);
    assert.equal(sup.state, 'backoff');
    mock.timers.tick(delayMs - 1);
    await settle();
    assert.equal(children.length, before, `no restart before ${delayMs} ms`);
    mock.timers.tick(1);
    await settle();
    assert.equal(children.length, before + 1, `restarted after ${delayMs} ms`);
    assert.equal(sup.state, 'running');
  }
  assert.equal(sup.restartCount, 7);
});

test('with the restart budget spent, the next crash ends supervision as failed, naming how Envoy last ended', async (t) => {
  fakeTimers(t);
  const { sup, children } = supervisor({ restartBudget: 1 });
  sup.start();
  last(children).exit(1);
  mock.timers.tick(250);
  await settle();
  assert.equal(children.length, 2);
  last(children).exit(null, 'SIGSEGV');
  const outcome = await sup.done;
  assert.equal(outcome.kind, 'failed');
  assert.equal(outcome.kind === 'failed' ? describeExit(outcome.lastExit) : '', 'was killed by SIGSEGV');
  mock.timers.tick(60_000);
  await settle();
  assert.equal(children.length, 2, 'no start after failing');
});

test('an Envoy binary that cannot be spawned counts as an exit and fails once the budget is spent', async (t) => {
  fakeTimers(t);
  const { sup, children } = supervisor({ restartBudget: 0 });
  sup.start();
  const child = last(children);
  child.emit('error', Object.assign(new Error('spawn envoy ENOENT'), { code: 'ENOENT' }));
  const outcome = await sup.done;
  assert.equal(outcome.kind === 'failed' ? describeExit(outcome.lastExit) : outcome.kind, 'could not be started (spawn envoy ENOENT)');
});

test('stop asks /quitquitquit and sends no signal to an Envoy that takes it', async (t) => {
  fakeTimers(t);
  const { sup, children } = supervisor();
  sup.start();
  const child = last(children);
  await sup.stop({ quit: async () => child.exit(0), quitWaitMs: 5000, termWaitMs: 5000 });
  assert.deepEqual(child.signals, []);
  assert.deepEqual(await sup.done, { kind: 'stopped' });
});

test('an Envoy that ignores /quitquitquit gets SIGTERM after the quit wait, and one that ignores SIGTERM gets SIGKILL after the term wait', async (t) => {
  fakeTimers(t);
  const { sup, children } = supervisor();
  sup.start();
  const child = last(children);
  child.diesOf = ['SIGKILL'];
  let quits = 0;
  const stopped = sup.stop({ quit: async () => void quits++, quitWaitMs: 3000, termWaitMs: 2000 });
  assert.equal(sup.stop({ quit: async () => void quits++, quitWaitMs: 1, termWaitMs: 1 }), stopped, 'stop is idempotent');
  await settle();
  mock.timers.tick(2999);
  await settle();
  assert.deepEqual(child.signals, [], 'no signal before the quit wait is over');
  mock.timers.tick(1);
  await settle();
  assert.deepEqual(child.signals, ['SIGTERM']);
  mock.timers.tick(1999);
  await settle();
  assert.deepEqual(child.signals, ['SIGTERM'], 'no SIGKILL before the term wait is over');
  mock.timers.tick(1);
  await stopped;
  assert.deepEqual(child.signals, ['SIGTERM', 'SIGKILL']);
  assert.equal(quits, 1);
  assert.equal(sup.state, 'stopped');
});

test('stop during the backoff wait starts no new Envoy', async (t) => {
  fakeTimers(t);
  const { sup, children } = supervisor();
  sup.start();
  last(children).exit(1);
  assert.equal(sup.state, 'backoff');
  await sup.stop({ quit: async () => undefined, quitWaitMs: 1000, termWaitMs: 1000 });
  mock.timers.tick(60_000);
  await settle();
  assert.equal(children.length, 1);
  assert.deepEqual(await sup.done, { kind: 'stopped' });
});

test('an Envoy exit after beginShutdown ends supervision instead of restarting', async (t) => {
  fakeTimers(t);
  const { sup, children } = supervisor();
  sup.start();
  sup.beginShutdown();
  last(children).exit(0);
  assert.deepEqual(await sup.done, { kind: 'stopped' });
  mock.timers.tick(60_000);
  await settle();
  assert.equal(children.length, 1);
});
