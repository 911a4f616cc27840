/**
 * The snapshotter's delta never serves an interval's change twice (issue 9): a delta is served only until the next
 * snapshot is due; a failed snapshot leaves the last good one as the base, so the next good delta covers the gap;
 * snapshots are due at a fixed rate. Envoy's admin interface is faked here (the real-Envoy case, with Envoy hung
 * by SIGSTOP, is test/e2e/stats-delta-gap.test.ts); the clock is injected.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EnvoyAdminClient } from '../../agent/envoy/admin-client.ts';
import { StatsSnapshotter } from '../../agent/stats/stats-snapshotter.ts';
import { renderPrometheus } from '../../agent/stats/prometheus-text.ts';
import type { Logger } from '../../agent/logger.ts';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

/** The admin client's two ways of reading stats (whole, and streamed to a consumer) over one fake answer. */
function fakeAdmin(fake: { request: () => Promise<{ status: number; contentType: string; body: string }> }): EnvoyAdminClient {
  return {
    request: fake.request,
    consume: async (_path: string, _opts: unknown, consume: (text: string) => void) => {
      const res = await fake.request();
      if (res.status === 200) consume(res.body);
      return res.status;
    },
  } as unknown as EnvoyAdminClient;
}

function fakeEnvoy() {
  const state = { requests: 0, hung: false, calls: [] as number[], now: 0 };
  const admin = fakeAdmin({
    request: async () => {
      state.calls.push(state.now);
      if (state.hung) throw new Error('Envoy admin GET /stats/prometheus: timed out after 1000 ms');
      return { status: 200, contentType: 'text/plain', body: `# TYPE envoy_appmesh_RequestCount counter\nenvoy_appmesh_RequestCount{Direction="ingress"} ${state.requests}\n` };
    },
  });
  return { state, admin };
}

const count = (s: StatsSnapshotter) => {
  const text = renderPrometheus(s.delta?.families ?? []);
  const line = text.split('\n').find((l) => l.startsWith('RequestCount{'));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
};

test('a delta is served for one interval only; while Envoy cannot be read it is empty, and the next good snapshot covers the whole gap', async () => {
  const { state, admin } = fakeEnvoy();
  const s = new StatsSnapshotter({ admin, intervalMs: 60_000, epoch: () => 1, logger: silent, now: () => state.now });
  assert.equal(await s.take(), true);
  state.requests = 3;
  state.now = 60_000;
  await s.take();
  assert.equal(count(s), 3);
  state.now = 119_000;
  assert.equal(count(s), 3, 'the same delta to every reader within its interval');
  state.hung = true;
  state.now = 120_000;
  assert.equal(await s.take(), false);
  state.now = 120_001;
  assert.equal(count(s), 0, "the snapshot due at 120 s failed: the 0-60 s interval's 3 requests are not served again");
  state.requests = 10;
  state.now = 180_000;
  await s.take();
  state.now = 180_500;
  assert.equal(count(s), 0);
  state.hung = false;
  state.now = 240_000;
  assert.equal(await s.take(), true);
  assert.equal(count(s), 7, 'the first good snapshot after the gap has every request since the last good one');
  assert.equal(s.delta?.fromMs, 60_000);
});

test('snapshots are due at a fixed rate: one that takes longer than the interval skips the ticks it missed instead of shifting the later ones', async () => {
  let clock = 0;
  const calls: number[] = [];
  const stop = new AbortController();
  const admin = fakeAdmin({
    request: async () => {
      calls.push(clock);
      if (calls.length === 3) clock += 2500; // the snapshot at 2 s takes 2.5 s
      if (calls.length === 6) stop.abort();
      return { status: 200, contentType: 'text/plain', body: '# TYPE envoy_appmesh_RequestCount counter\nenvoy_appmesh_RequestCount{Direction="ingress"} 0\n' };
    },
  });
  const s = new StatsSnapshotter({
    admin,
    intervalMs: 1000,
    epoch: () => 1,
    logger: silent,
    now: () => clock,
    sleep: async (ms, signal) => {
      signal.throwIfAborted();
      clock += ms;
    },
  });
  await s.run(stop.signal);
  assert.deepEqual(calls, [0, 1000, 2000, 5000, 6000, 7000], 'not 5500, 6500, ...: the rate does not drift');
});
