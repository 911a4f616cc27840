/**
 * Discovery's poll loop over minutes of Cloud Map time (issues 11 and 12): which services it checks, when, and at
 * what cost. FAKE: a Cloud Map in memory and node:test's mock timers (test/unit/discovery-fake.ts), because moto
 * never throttles and a real clock would make these minutes take minutes; the real Discovery runs its real loop.
 * The fleet: 100 services × 10 instances (a 1,000-task fleet as each agent estimates it), the account quotas scaled
 * to one agent's part of it (1/1,000), the default 40 % share and a 1 s poll: R = 1.2 revision checks/s and
 * D = 0.4 instance fetches/s, so 3 services in use are each checked every I = 3 / (0.9 × 1.6) = 2.08 s.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeCloudMap, fakeClock, startDiscovery } from './discovery-fake.ts';

const IN_USE = ['svc0', 'svc1', 'svc2'];
const I_MS = 3000 / (0.9 * 1.6);

/** Advances the clock until the service has `want` endpoints applied; the ms it took (or Infinity after `limitMs`). */
async function until(clock: { advance: (ms: number) => Promise<void> }, applied: { endpoints: Map<string, number> }, name: string, want: number, limitMs: number): Promise<number> {
  const t0 = Date.now();
  while (applied.endpoints.get(name) !== want) {
    if (Date.now() - t0 > limitMs) return Infinity;
    await clock.advance(10);
  }
  return Date.now() - t0;
}

test('a deployment that moves the instance count of 30 services at once (the InstanceCount signal, AWS) does not hold up a change to a service in use, and nothing is throttled', async (t) => {
  // Pins down: the fetches the signal calls for were made at once "whatever the budget": 30 DiscoverInstances
  // against a bucket of 2 got RequestLimitExceeded, the loop backed off (doubling), and the checks of the services
  // in use, which come after those fetches in a wake, waited behind them for half a minute.
  const clock = fakeClock(t);
  const cm = new FakeCloudMap(100, 10);
  cm.counts = true;
  const { d, applied } = await startDiscovery(cm);
  cm.limit(1 / 1000); // after the start-up (its retries wait on the fake clock)
  d.setInUse(IN_USE);
  await clock.advance(15_000);
  for (let s = 40; s < 70; s++) cm.register(`svc${s}`);
  await clock.advance(10_000); // the next list has seen the 30 counts move
  cm.register('svc1');
  const ms = await until(clock, applied, 'svc1', 11, 30_000);
  assert.ok(ms <= I_MS + 100, `the change to svc1 (in use) reached the snapshot after ${ms} ms; a service in use is checked every ${Math.round(I_MS)} ms`);
  assert.equal(cm.calls.filter((c) => c.throttled).length, 0, 'no call over the account quota');
  // The 30 are fetched with what the services in use leave of the budget (10 %: 0.16 calls/s), not dropped.
  await clock.advance(200_000, 50);
  assert.deepEqual([...Array(30).keys()].filter((i) => applied.endpoints.get(`svc${40 + i}`) !== 11).map((i) => `svc${40 + i}`), [], 'every counted change fetched within 200 s');
});

test('each service in use is checked every I (2.08 s at a 1,000-task fleet), evenly spread, and a change to one reaches Envoy within I', async (t) => {
  const clock = fakeClock(t);
  const cm = new FakeCloudMap(100, 10);
  const { d, applied } = await startDiscovery(cm);
  d.setInUse(IN_USE);
  await clock.advance(5_000);
  const from = cm.calls.length;
  await clock.advance(30_000, 20);
  const checks = cm.calls.slice(from).filter((c) => IN_USE.includes(c.service ?? ''));
  // A check is one call (a fetch after a changed revision is a second one; nothing changes here).
  for (const name of IN_USE) {
    const at = checks.filter((c) => c.service === name).map((c) => c.atMs);
    const gaps = at.slice(1).map((x, i) => x - (at[i] as number));
    assert.ok(Math.max(...gaps) <= I_MS + 40 && Math.min(...gaps) >= I_MS - 40, `${name}: checks ${gaps.join(', ')} ms apart; I = ${Math.round(I_MS)} ms`);
  }
  const spacing = checks.slice(1).map((c, i) => c.atMs - (checks[i] as { atMs: number }).atMs);
  assert.ok(Math.min(...spacing) >= I_MS / 3 - 40, `checks of services in use ${Math.min(...spacing)} ms apart at the closest: not spread evenly (I / 3 = ${Math.round(I_MS / 3)} ms)`);
  // Changes at 12 moments spread over a check interval: each is seen within I.
  let worst = 0;
  for (let i = 0; i < 12; i++) {
    await clock.advance(1000 + Math.round((i * I_MS) / 12));
    const name = IN_USE[i % 3] as string;
    cm.register(name);
    worst = Math.max(worst, await until(clock, applied, name, cm.services.get(name)?.instances.length as number, 10_000));
  }
  assert.ok(worst <= I_MS + 20, `a change to a service in use reached Envoy after ${worst} ms; I = ${Math.round(I_MS)} ms`);
});

test('Envoy answering slowly (a 1.5 s update, 0.8 s for the traffic counters) does not hold up the checks of the services in use: each still checked every I', async (t) => {
  // Pins down the extra latency measured by bench/cloud-map-fleet.ts on a busy host: the loop awaited the xDS
  // update (written, then Envoy's verdict) and the read of Envoy's traffic counters before its next check.
  const clock = fakeClock(t);
  const cm = new FakeCloudMap(100, 10);
  const { d } = await startDiscovery(cm, { afterPoll: () => new Promise((r) => setTimeout(r, 800)) }, 1500);
  d.setInUse(IN_USE);
  await clock.advance(5_000);
  const from = cm.calls.length;
  for (let i = 0; i < 6; i++) {
    // A change every 8 s: the fetches they need stay within what the checks leave of the budget (0.16/s).
    cm.register(IN_USE[i % 3] as string);
    await clock.advance(8000, 20);
  }
  const checks = cm.calls.slice(from).filter((c) => c.service === 'svc1' && c.op.startsWith('DiscoverInstances'));
  // A check, and the fetch right after it when it found a change: the checks are the calls more than 0.5 s apart.
  const at = checks.map((c) => c.atMs).filter((x, i, all) => i === 0 || x - (all[i - 1] as number) > 500);
  const gaps = at.slice(1).map((x, i) => x - (at[i] as number));
  assert.ok(Math.max(...gaps) <= I_MS + 40, `svc1 checked ${gaps.join(', ')} ms apart while Envoy was slow; I = ${Math.round(I_MS)} ms`);
});

test('the services not in use are checked round robin with what is left: each once before any twice, all within (N - h) / 5 polls at a small fleet', async (t) => {
  const clock = fakeClock(t);
  const cm = new FakeCloudMap(51, 1); // a fleet of 51 tasks: the natural rate (5 checks a 1 s poll) is the ceiling
  const { d } = await startDiscovery(cm);
  d.setInUse(['svc0']);
  const from = cm.calls.length;
  await clock.advance(13_000, 20); // 50 others at 5 a poll: 10 polls, each at most 1.2 s (jitter) after the last
  const others = cm.calls.slice(from).filter((c) => c.service !== null && c.service !== 'svc0').map((c) => c.service);
  assert.ok(others.length >= 50, `${others.length} checks of the 50 services not in use in 13 s`);
  assert.equal(new Set(others.slice(0, 50)).size, 50, `the first 50 checks of services not in use are of 50 different services: ${others.slice(0, 50).join(' ')}`);
});

test('within the budget over 2 minutes of changes: calls at most rate × time plus the bucket and its floor, and none over the account quota', async (t) => {
  const clock = fakeClock(t);
  const cm = new FakeCloudMap(100, 10);
  const { d, applied } = await startDiscovery(cm);
  cm.limit(1 / 1000);
  d.setInUse(IN_USE);
  const from = cm.calls.length;
  const t0 = Date.now();
  for (let i = 0; i < 120; i++) {
    cm.register(i % 3 === 0 ? (IN_USE[(i / 3) % 3] as string) : `svc${3 + ((i * 37) % 97)}`); // a change a second, one in three to a service in use
    await clock.advance(1000, 100);
  }
  await clock.advance(I_MS + 100, 100); // the last change to a service in use is seen
  const s = (Date.now() - t0) / 1000;
  const calls = cm.calls.slice(from);
  const n = (op: string) => calls.filter((c) => c.op === op).length;
  // Buckets of two polls' worth (at least 1); services in use may go one bucket below zero, fetches after a change one more per service in use.
  assert.ok(n('DiscoverInstancesRevision') <= 1.2 * s + 2 * 2.4 + 1, `${n('DiscoverInstancesRevision')} DiscoverInstancesRevision in ${s} s at 1.2/s`);
  assert.ok(n('DiscoverInstances') <= 0.4 * s + 2 + 3 + 1, `${n('DiscoverInstances')} DiscoverInstances in ${s} s at 0.4/s`);
  assert.equal(calls.filter((c) => c.throttled).length, 0, 'no call over the account quota');
  assert.equal(applied.endpoints.get('svc0'), cm.services.get('svc0')?.instances.length, 'the services in use are up to date');
});

test('while Cloud Map throttles every call for 20 s, no endpoint is dropped and the loop backs off; afterwards a change to a service in use is seen again', async (t) => {
  const clock = fakeClock(t);
  const cm = new FakeCloudMap(100, 10);
  const { d, applied } = await startDiscovery(cm);
  d.setInUse(IN_USE);
  await clock.advance(5_000);
  cm.throttleAll = true;
  const from = cm.calls.length;
  for (let i = 0; i < 20; i++) {
    await clock.advance(1000, 20);
    const total = [...d.snapshot().services.values()].reduce((x, s) => x + s.endpoints.length, 0);
    assert.equal(total, 1000, `${total} endpoints after ${i + 1} s of throttling`);
  }
  const during = cm.calls.length - from;
  assert.ok(during <= 8, `${during} calls in 20 s of throttling: the waits did not double`);
  cm.throttleAll = false;
  cm.register('svc2');
  const ms = await until(clock, applied, 'svc2', 11, 60_000);
  assert.ok(ms <= 30_000 + I_MS, `the change reached Envoy ${ms} ms after the throttling ended (at most the 30 s backoff and a check interval)`);
  assert.equal([...applied.endpoints.values()].reduce((x, y) => x + y, 0), 1001, 'every endpoint in what was applied');
});

test('a service that appears in the namespace gets its endpoints within a list interval and a poll (10 P + 1.2 P)', async (t) => {
  const clock = fakeClock(t);
  const cm = new FakeCloudMap(100, 10);
  const { d, applied } = await startDiscovery(cm);
  d.setInUse(IN_USE);
  let worst = 0;
  for (let i = 0; i < 5; i++) {
    await clock.advance(1000 + i * 2300);
    cm.addService(`new${i}`, 2);
    worst = Math.max(worst, await until(clock, applied, `new${i}`, 2, 30_000));
  }
  assert.ok(worst <= 11_200 + 20, `a new service reached Envoy after ${worst} ms`);
});

test('a change to a service in use goes to Envoy as soon as its instances are fetched, not after the rest of the wake\'s calls', async (t) => {
  // Pins down a delay measured by bench/cloud-map-fleet.ts: the update started only when the whole wake was done,
  // so a change seen by the check of a service in use waited for the round robin's calls that came after it in the
  // same wake (here 5 checks of 100 ms each; against moto on a busy host, each can take as long).
  const clock = fakeClock(t);
  const cm = new FakeCloudMap(51, 1); // a fleet of 51: the natural rate, 5 round-robin checks a poll
  // No jitter: every poll's wake is also the wake of the check of svc0 (both every 1 s from the same moment).
  const { d, applied } = await startDiscovery(cm, { random: () => 0.5 });
  cm.latencyMs = 100; // after the start-up (its calls would wait on the fake clock)
  d.setInUse(['svc0']);
  let worst = 0;
  for (let i = 0; i < 5; i++) {
    const want = (cm.services.get('svc0')?.instances.length as number) + 1;
    cm.register('svc0');
    await until(clock, applied, 'svc0', want, 5000);
    const fetched = cm.calls.filter((c) => c.op === 'DiscoverInstances' && c.service === 'svc0').at(-1)?.atMs as number;
    const started = applied.started.find((u) => u.endpoints.get('svc0') === want)?.atMs as number;
    worst = Math.max(worst, started - fetched);
  }
  assert.ok(worst <= 20, `the update with a change to svc0 started up to ${worst} ms after the DiscoverInstances that saw it returned`);
});
