/**
 * Deltas are never counted twice (issue 9): the ECS agent publishes every delta it reads, so a delta served again
 * while Envoy cannot be read would publish the same requests again. Envoy is hung for real with SIGSTOP (its admin
 * interface accepts connections and never answers), across several 1 s snapshot intervals.
 *
 * The hang (4 to 6 s) is as long as the app keeps an idle connection (Node 24: 5 s keep-alive plus a 1 s buffer), so
 * the app closes Envoy's pooled connection to it about when Envoy runs again. A close landing just after SIGCONT races
 * a queued request onto a connection the app is closing: Envoy answers 503 (reset before headers; the static mesh has
 * no retry policy, unlike the agent's Cloud Map routes), and the test failed once so under load. The mesh here opens
 * one upstream connection per request, so the requests of the gap never meet a closing one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitHealthy } from '../helpers/agent.ts';
import { httpRequest } from '../helpers/http.ts';
import { startMeshAgent } from '../helpers/mesh-agent.ts';
import { waitFor } from '../helpers/wait.ts';

const ECS_STATS = '/stats/prometheus?usedonly&filter=metrics_extension&delta';

function requestCount(body: string): number {
  const line = body.split('\n').find((l) => l.startsWith('RequestCount{') && l.includes('Direction="ingress"'));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('Envoy hung across snapshot intervals: the last delta is not served again, and the next good snapshot covers the whole gap', async (t) => {
  const m = await startMeshAgent(t, { APPNET_STATS_SNAPSHOT_INTERVAL_S: '1' }, { freshUpstreamConnections: true });
  if (m === null) return;
  const { envoyPid } = await waitHealthy(m.agent);
  const pid = Number(envoyPid);
  t.after(() => {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // gone already
    }
  });

  // Every delta the ECS agent could read, by the interval it covers (x-appnet-delta-to).
  const byInterval = new Map<string, number>();
  let collecting = true;
  const collector = (async () => {
    while (collecting) {
      const res = await m.agent.request(ECS_STATS).catch(() => null);
      // Before the first snapshot the answer is live (no x-appnet-delta-to); deltas proper carry the header.
      if (res?.status === 200 && res.headers['x-appnet-delta-to'] !== undefined) {
        const key = String(res.headers['x-appnet-delta-to']);
        const n = requestCount(res.body);
        const known = byInterval.get(key);
        assert.ok(known === undefined || known === n, `the delta to ${key} is the same for every reader (${known} then ${n})`);
        byInterval.set(key, n);
      }
      await new Promise((r) => setTimeout(r, 250)); // inside the management interface's rate limit
    }
  })();
  t.after(() => {
    collecting = false;
  });

  for (let i = 0; i < 3; i++) await httpRequest({ host: '127.0.0.1', port: m.mesh.outboundPort }, '/');
  const total = () => [...byInterval.values()].reduce((a, b) => a + b, 0);
  await waitFor('the 3 requests in the deltas', async () => total() === 3);
  process.kill(pid, 'SIGSTOP');
  const failedBefore = m.agent.logs.filter((r) => r['msg'] === 'stats snapshot failed; the next one will cover this interval').length;
  // Two requests while Envoy is hung: the kernel queues them; Envoy serves them when it runs again.
  const during = [0, 1].map(() => httpRequest({ host: '127.0.0.1', port: m.mesh.outboundPort }, '/', { timeoutMs: 60_000 }));
  // The snapshot in flight fails at its 5 s deadline: by then several 1 s intervals have passed with Envoy hung.
  await m.agent.waitForLog('a failed snapshot', () => m.agent.logs.filter((r) => r['msg'] === 'stats snapshot failed; the next one will cover this interval').length > failedBefore, 20_000);
  const whileHung = await waitFor('a delta while Envoy is hung', async () => {
    const r = await m.agent.request(ECS_STATS);
    return r.status === 200 ? r : undefined;
  });
  assert.equal(requestCount(whileHung.body), 0, "while Envoy is hung the delta is empty, not the last interval's 3 again");

  process.kill(pid, 'SIGCONT');
  // Answered by the app once Envoy runs again (a 503 here is Envoy's, not the app's: see the header).
  for (const r of await Promise.all(during)) assert.deepEqual([r.status, r.body], [200, 'container 1\n'], `a request of the gap: ${r.status} ${r.body}`);
  await waitFor('the requests of the gap in the deltas', async () => total() === 5, { timeoutMs: 20_000 });
  // One more interval, so that nothing after the gap is counted again either.
  const keysNow = byInterval.size;
  await waitFor('a later interval', async () => byInterval.size > keysNow + 1, { timeoutMs: 20_000 });
  collecting = false;
  await collector;
  assert.equal(total(), 5, `every request counted once over all intervals: ${JSON.stringify([...byInterval])}`);
});
