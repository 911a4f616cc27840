/**
 * A Cloud Map fake and a fake clock for Discovery's poll loop: the timing of checks, the budget and throttling
 * cannot be produced on time by moto (it never throttles, and a real clock makes minutes of polls take minutes).
 * The fake keeps Cloud Map's semantics the loop relies on: a revision per service that changes with every
 * registration, DiscoverInstances returning the instances at that revision, ListServices without InstanceCount
 * (as moto) unless counts are turned on, and RequestLimitExceeded when a call is over its token bucket.
 */
import { mock, type TestContext } from 'node:test';
import { syncBuiltinESMExports } from 'node:module';
import { Discovery, type DiscoveryOptions } from '../../agent/discovery/discovery.ts';
import type { CloudMap } from '../../agent/discovery/cloud-map-client.ts';
import type { CloudMapInstance } from '../../agent/discovery/snapshot.ts';
import type { Logger } from '../../agent/logger.ts';

export const quietLogger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined } as unknown as Logger;

/** A token bucket like Cloud Map's account quota (rate/s, size). */
class Quota {
  tokens: number;
  at: number;
  readonly rate: number;
  readonly size: number;
  constructor(rate: number, size: number, now: number) {
    this.rate = rate;
    this.size = size;
    this.tokens = size;
    this.at = now;
  }
  take(now: number): boolean {
    this.tokens = Math.min(this.size, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export interface FakeService {
  id: string;
  revision: number;
  instances: CloudMapInstance[];
}

export class FakeCloudMap {
  readonly services = new Map<string, FakeService>();
  readonly calls: Array<{ op: string; service: string | null; atMs: number; throttled: boolean }> = [];
  /** Account quotas (calls/s, bucket); null: none. */
  quotas: { revision: Quota; instances: Quota } | null = null;
  /** Give ListServices' InstanceCount (AWS does, moto does not). */
  counts = false;
  /** Every call fails with RequestLimitExceeded while true. */
  throttleAll = false;
  /** How long each discovery call takes (ms, on the fake clock). */
  latencyMs = 0;

  constructor(services: number, instancesEach: number) {
    for (let s = 0; s < services; s++) {
      const name = `svc${s}`;
      this.services.set(name, { id: `srv-${s}`, revision: 1, instances: Array.from({ length: instancesEach }, (_, i) => instance(name, i)) });
    }
  }

  /** Account quotas scaled like bench/cloud-map-fleet.ts: `scale` of DiscoverInstances 1,000/s (bucket 2,000) and DiscoverInstancesRevision 3,000/s. */
  limit(scale: number): void {
    this.quotas = { revision: new Quota(3000 * scale, 3000 * scale, Date.now()), instances: new Quota(1000 * scale, 2000 * scale, Date.now()) };
  }

  /** Registers one more instance in a service: its revision moves. */
  register(name: string): void {
    const s = this.services.get(name) as FakeService;
    s.instances.push(instance(name, s.instances.length));
    s.revision += 1;
  }

  addService(name: string, instancesEach: number): void {
    this.services.set(name, { id: `srv-${name}`, revision: 1, instances: Array.from({ length: instancesEach }, (_, i) => instance(name, i)) });
  }

  count(op: string, service: string | null = null): number {
    return this.calls.filter((c) => c.op === op && (service === null || c.service === service) && !c.throttled).length;
  }

  readonly #byOp = new Map<string, number>();

  async #call(op: string, service: string | null, quota: Quota | undefined): Promise<void> {
    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
    this.#byOp.set(op, (this.#byOp.get(op) ?? 0) + 1);
    const throttled = this.throttleAll || (quota !== undefined && !quota.take(Date.now()));
    this.calls.push({ op, service, atMs: Date.now(), throttled });
    if (throttled) throw Object.assign(new Error('The operation can’t be completed because you’ve reached the quota for the number of requests.'), { name: 'RequestLimitExceeded', $metadata: { httpStatusCode: 400 } });
  }

  readonly client: CloudMap = {
    calls: this.#byOp,
    findNamespace: async () => ({ id: 'ns-1', name: 'demo.local', arn: 'arn' }),
    namespaceExists: async () => true,
    listServices: async () => {
      await this.#call('ListServices', null, undefined);
      return [...this.services].map(([name, s]) => ({ id: s.id, name, ...(this.counts ? { instanceCount: s.instances.length } : {}) }));
    },
    createService: async () => 'x',
    deleteService: async () => undefined,
    registerInstance: async () => undefined,
    deregisterInstance: async () => undefined,
    discoverRevision: async (_ns, name) => {
      await this.#call('DiscoverInstancesRevision', name, this.quotas?.revision);
      return (this.services.get(name) as FakeService).revision;
    },
    discoverInstances: async (_ns, name) => {
      await this.#call('DiscoverInstances', name, this.quotas?.instances);
      const s = this.services.get(name) as FakeService;
      return { revision: s.revision, instances: [...s.instances] };
    },
    close: () => undefined,
  };
}

function instance(name: string, i: number): CloudMapInstance {
  return { InstanceId: `i-${i}`, Attributes: { AWS_INSTANCE_IPV4: `10.${Math.floor(i / 250)}.${i % 250}.1`, AWS_INSTANCE_PORT: '8080', SC_CLIENT_ALIAS_DNS_NAME: name, SC_CLIENT_ALIAS_PORT: '80' } } as CloudMapInstance;
}

const stoppers: Array<() => Promise<void>> = [];

/** Fake time: node:test's mock timers for setTimeout (the ESM binding of node:timers/promises too) and Date. */
export function fakeClock(t: TestContext, startMs = 1_000_000): { advance: (ms: number, stepMs?: number) => Promise<void> } {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: startMs });
  syncBuiltinESMExports();
  t.after(async () => {
    // The loops started on this clock stop first (their sleeps are on it), then the real timers are back.
    for (const stop of stoppers.splice(0)) await stop();
    mock.timers.reset();
    syncBuiltinESMExports();
  });
  const flush = () => new Promise<void>((r) => setImmediate(r));
  return {
    /** Moves the clock on in steps, letting the loop's promises settle at each. */
    advance: async (ms: number, stepMs = 10) => {
      for (let done = 0; done < ms; done += stepMs) {
        mock.timers.tick(Math.min(stepMs, ms - done));
        await flush();
      }
    },
  };
}

/** A Discovery on the fake, started (initial + run) on the fake clock (stopped with it), with what Envoy would have: the endpoints of the last snapshot applied. */
export async function startDiscovery(cm: FakeCloudMap, opts: Partial<DiscoveryOptions> = {}, applyMs = 0) {
  /** What Envoy would have; `startedAtMs`: when each update (onChange) started, with the endpoints it carried. */
  const applied: { endpoints: Map<string, number>; applies: number; started: Array<{ atMs: number; endpoints: Map<string, number> }> } = { endpoints: new Map(), applies: 0, started: [] };
  const d = new Discovery({
    cloudMap: cm.client,
    namespace: { id: 'ns-1', name: 'demo.local', arn: 'arn' },
    pollIntervalMs: 1000,
    logger: quietLogger,
    now: () => Date.now(),
    onChange: async (snapshot) => {
      applied.started.push({ atMs: Date.now(), endpoints: new Map([...snapshot.services].map(([name, s]) => [name, s.endpoints.length])) });
      // Envoy taking the update (the agent waits for its verdict): applyMs on the fake clock.
      if (applyMs > 0) await new Promise((r) => setTimeout(r, applyMs));
      applied.applies += 1;
      for (const [name, s] of snapshot.services) applied.endpoints.set(name, s.endpoints.length);
    },
    ...opts,
  });
  const first = await d.initial();
  for (const [name, s] of first.services) applied.endpoints.set(name, s.endpoints.length);
  const stop = new AbortController();
  const running = d.run(stop.signal);
  stoppers.push(async () => {
    stop.abort();
    // An update or afterPoll still in flight waits on the fake clock: move it on until the loop is done.
    let done = false;
    void running.then(() => (done = true));
    for (let i = 0; i < 1000 && !done; i++) {
      mock.timers.tick(100);
      await new Promise<void>((r) => setImmediate(r));
    }
    await running;
  });
  return { d, applied };
}
