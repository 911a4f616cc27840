/**
 * Cloud Map mode's fleet budget and its answer to throttling (issue 12). Moto never throttles, so the Cloud Map
 * here is a fake that answers RequestLimitExceeded as Cloud Map does (its documented error code) when told to: the
 * one case the real part cannot produce. Everything else is the real Discovery.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Discovery, perAgentBudget } from '../../agent/discovery/discovery.ts';
import type { CloudMap } from '../../agent/discovery/cloud-map-client.ts';
import type { Logger } from '../../agent/logger.ts';

const logs: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
const logger: Logger = { debug: () => undefined, info: () => undefined, warn: (msg: string, fields?: Record<string, unknown>) => void logs.push({ msg, ...(fields ? { fields } : {}) }), error: () => undefined } as unknown as Logger;

function fakeCloudMap(services: number, instancesEach: number) {
  const calls = new Map<string, number>();
  const state = { throttle: false, throttleDiscoverAfter: Infinity, counts: null as number[] | null, instancesOf: new Map<string, number>() };
  const throttled = () => Object.assign(new Error('reached the quota for the number of requests'), { name: 'RequestLimitExceeded', $metadata: { httpStatusCode: 400 } });
  const count = (op: string) => calls.set(op, (calls.get(op) ?? 0) + 1);
  const cm: CloudMap = {
    calls,
    findNamespace: async () => ({ id: 'ns-1', name: 'demo.local', arn: 'arn' }),
    namespaceExists: async () => true,
    listServices: async () => {
      count('ListServices');
      if (state.throttle) throw throttled();
      return Array.from({ length: services }, (_, i) => ({ id: `srv-${i}`, name: `svc${i}`, ...(state.counts ? { instanceCount: state.counts[i] as number } : {}) }));
    },
    createService: async () => 'x',
    deleteService: async () => undefined,
    registerInstance: async () => undefined,
    deregisterInstance: async () => undefined,
    discoverRevision: async () => {
      count('DiscoverInstancesRevision');
      if (state.throttle) throw throttled();
      return 1;
    },
    discoverInstances: async (_ns, name) => {
      count('DiscoverInstances');
      if (state.throttle || (calls.get('DiscoverInstances') ?? 0) > state.throttleDiscoverAfter) throw throttled();
      return {
        revision: 1,
        instances: Array.from({ length: state.instancesOf.get(name) ?? instancesEach }, (_, i) => ({ InstanceId: `i-${i}`, Attributes: { AWS_INSTANCE_IPV4: `10.0.0.${i + 1}`, AWS_INSTANCE_PORT: '8080', SC_CLIENT_ALIAS_DNS_NAME: name, SC_CLIENT_ALIAS_PORT: '80' } })),
      };
    },
    close: () => undefined,
  };
  return { cm, state };
}

test('the fleet budget: a fleet of 1,000 tasks at the default 40 % stays under 40 % of both quotas; a small fleet is capped at the natural rate', () => {
  const big = perAgentBudget(1000, 0.4, 5);
  assert.ok(big.revisionPerS * 1000 <= 0.4 * 3000 + 1e-9, `DiscoverInstancesRevision: ${big.revisionPerS}/s per agent`);
  assert.ok(big.instancesPerS * 1000 <= 0.4 * 1000 + 1e-9, `DiscoverInstances: ${big.instancesPerS}/s per agent`);
  assert.deepEqual(perAgentBudget(10, 0.4, 5), { revisionPerS: 5, instancesPerS: 5 });
});

test('a start-up discovery that Cloud Map throttles goes on with what it has instead of failing, and the polls fetch the rest', async () => {
  const { cm, state } = fakeCloudMap(20, 2);
  state.throttleDiscoverAfter = 5;
  let now = Date.now();
  const d = new Discovery({ cloudMap: cm, namespace: { id: 'ns-1', name: 'demo.local', arn: 'arn' }, pollIntervalMs: 1000, logger, onChange: async () => undefined, startDeadlineMs: 300, random: () => 0.5, now: () => now });
  const snapshot = await d.initial();
  assert.equal(snapshot.services.size, 20, 'every service is known by name');
  const withEndpoints = [...snapshot.services.values()].filter((s) => s.endpoints.length > 0).length;
  assert.ok(withEndpoints >= 5 && withEndpoints < 20, `${withEndpoints} services fetched before the deadline`);
  assert.ok(logs.some((l) => l.msg.startsWith('Cloud Map throttled the start-up discovery')), 'the throttling is logged');
  state.throttleDiscoverAfter = Infinity;
  for (let i = 0; i < 4; i++) {
    now += 1000; // a poll interval: 5 a poll
    await d.pollOnce();
  }
  assert.equal([...d.snapshot().services.values()].filter((s) => s.endpoints.length > 0).length, 20, 'the polls fetched the services the start-up left');
});

test('throttled polls keep every endpoint, and the budget shrinks as the namespace (the fleet estimate) grows', async () => {
  const { cm, state } = fakeCloudMap(10, 50);
  let now = 1_000_000;
  const d = new Discovery({ cloudMap: cm, namespace: { id: 'ns-1', name: 'demo.local', arn: 'arn' }, pollIntervalMs: 1000, logger, onChange: async () => undefined, now: () => now, random: () => 0.5 });
  await d.initial();
  assert.equal(d.fleetEstimate(), 500);
  const b = d.budget();
  assert.ok(b.revisionPerS <= (0.4 * 3000) / 500 + 1e-9 && b.instancesPerS <= (0.4 * 1000) / 500 + 1e-9, JSON.stringify(b));
  // Throttled: the poll fails, nothing is lost.
  state.throttle = true;
  now += 5000;
  await assert.rejects(d.pollOnce(), { name: 'RequestLimitExceeded' });
  assert.equal([...d.snapshot().services.values()].reduce((n, s) => n + s.endpoints.length, 0), 500, 'every endpoint kept');
  // Within the budget over a minute of polls: at most rate × time (+ the bucket's start), whatever the poll count.
  state.throttle = false;
  const before = cm.calls.get('DiscoverInstancesRevision') ?? 0;
  d.setInUse(['svc1']);
  for (let i = 0; i < 600; i++) {
    now += 100;
    await d.pollOnce();
  }
  const revisions = (cm.calls.get('DiscoverInstancesRevision') ?? 0) - before;
  assert.ok(revisions <= b.revisionPerS * 60 + 3, `${revisions} DiscoverInstancesRevision calls in 60 s at ${b.revisionPerS}/s`);
});

test("a service whose InstanceCount moved in the service list is fetched at the next list, not at its turn in the round robin (AWS's ListServices gives InstanceCount; moto does not)", async () => {
  const { cm, state } = fakeCloudMap(100, 10);
  state.counts = Array.from({ length: 100 }, () => 10);
  let now = 1_000_000;
  const d = new Discovery({ cloudMap: cm, namespace: { id: 'ns-1', name: 'demo.local', arn: 'arn' }, pollIntervalMs: 1000, logger, onChange: async () => undefined, now: () => now, random: () => 0.5 });
  await d.initial();
  // svc73 gets an 11th instance; its revision is not checked in the next polls (the round robin is at svc0..).
  state.counts[73] = 11;
  state.instancesOf.set('svc73', 11);
  for (let i = 0; i < 10 && d.snapshot().services.get('svc73')?.endpoints.length !== 11; i++) {
    now += 1000;
    await d.pollOnce();
  }
  assert.equal(d.snapshot().services.get('svc73')?.endpoints.length, 11, 'seen within one list interval (10 polls)');
});
