/**
 * Benchmark: Cloud Map mode at fleet scale, scaled down. Prints figures; asserts nothing.
 *   npm run build:binary && node bench/cloud-map-fleet.ts [--agents 10] [--services 100] [--instances-per-service 10] [--steady-s 60]
 *     [--in-use 3] [--singles 10] [--quota-scale K/fleet] [--not-in-use-timeout-s 60]
 *
 * K real agents (the single executable, each with its own Envoy) discover one namespace of N services in moto,
 * through a small proxy that plays Cloud Map's account-wide throttling, scaled to K/1,000 of the real quotas
 * (docs: DiscoverInstances 1,000/s steady with a 2,000 burst, DiscoverInstancesRevision 3,000/s; the revision
 * bucket's size is not documented and is taken as one second of its rate). A call over its bucket gets the
 * `RequestLimitExceeded` answer Cloud Map gives. Other operations are counted, not limited (Cloud Map documents no
 * quota for them).
 *
 * The namespace holds N services × --instances-per-service (10) instances: with 100 services, the 1,000 instances of a
 * fleet of 1,000 tasks, which is the fleet F each agent estimates and budgets for (docs/cloud-map.md, "Scale"). The
 * quotas are scaled to K/F by default (the K agents are K of F tasks); --instances-per-service 6 plays a fleet of 600.
 *
 * Every agent calls the same --in-use (3) services ("in use": a request to each every 500 ms through its own Envoy);
 * the rest are "not in use". Propagation is timed from RegisterInstance returning to the new endpoint showing in each
 * agent's Envoy (its cluster's membership_total on the admin socket), for single changes and for a burst of 20 at once.
 * One sampler per agent reads every pending service's membership_total in one request every 50 ms, however many
 * changes are pending (a loop per change and agent made 20 × K requests a 50 ms in the burst and loaded the 2
 * cores enough to triple the figures). The latency is split where the proxy sees it: from the registration to the
 * end of the agent's first DiscoverInstances of that service made after it (the wait for a check, and the calls),
 * and from there to the endpoint in Envoy (the agent's xDS write, Envoy's update, the sampling).
 * Calls are told apart per agent by the access key each one signs with.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateServiceCommand, ListNamespacesCommand, RegisterInstanceCommand } from '@aws-sdk/client-servicediscovery';
import { startMoto } from '../test/helpers/moto.ts';
import { findEnvoy, repoRoot } from '../test/helpers/envoy.ts';
import { freePort } from '../test/helpers/apps.ts';

const { values: args } = parseArgs({
  options: { agents: { type: 'string', default: '10' }, services: { type: 'string', default: '100' }, 'instances-per-service': { type: 'string', default: '10' }, 'steady-s': { type: 'string', default: '60' }, 'quota-scale': { type: 'string' }, 'not-in-use-timeout-s': { type: 'string', default: '60' }, 'in-use': { type: 'string', default: '3' }, singles: { type: 'string', default: '10' } },
});
const K = Number(args.agents);
const N = Number(args.services);
const steadyS = Number(args['steady-s']);
const IN_USE = Number(args['in-use']);
const SINGLES = Number(args.singles);
if (!Number.isInteger(IN_USE) || IN_USE < 1) throw new Error(`--in-use must be an integer of at least 1: got ${args['in-use']}`);
if (!(N > IN_USE) || !(K >= 1)) throw new Error(`--services must be more than --in-use (${IN_USE}) and --agents at least 1: got --services ${args.services} --agents ${args.agents}`);
/** Instances per service: 100 services × 10 is the namespace of a fleet of 1,000 tasks, the fleet the agents estimate (and the quotas are scaled to). */
const PER_SERVICE = Number(args['instances-per-service']);

const envoy = findEnvoy();
if (envoy === null) throw new Error('Envoy not found: run npm run setup');
const started = await startMoto(null);
if (started === null) throw new Error('moto not found: run npm run setup');
const moto = started;
const dir = mkdtempSync(join(tmpdir(), 'bench-fleet-'));
// Killed at exit whatever happened, moto included (a run that throws must not leave an emulator behind).
const children: ChildProcess[] = [moto.process];
const servers: Server[] = [];
for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => process.exit(130));
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});
const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
const pct = (xs: number[], p: number) => (xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!);

// ── The throttling proxy ────────────────────────────────────────────────────────────────────────────────────
class Bucket {
  private tokens: number;
  private at = performance.now();
  private readonly rate: number;
  private readonly size: number;
  constructor(rate: number, size: number) {
    this.rate = rate;
    this.size = size;
    this.tokens = size;
  }
  take(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.size, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
/** The share of the account's quotas this fleet gets: K/F (a fleet of F = N × instances-per-service tasks scaled down), or --quota-scale. */
const FLEET = N * PER_SERVICE;
const scale = args['quota-scale'] === undefined ? K / FLEET : Number(args['quota-scale']);
const buckets = new Map<string, Bucket>([
  ['DiscoverInstances', new Bucket(1000 * scale, 2000 * scale)],
  ['DiscoverInstancesRevision', new Bucket(3000 * scale, 3000 * scale)],
]);
interface Tally {
  calls: Map<string, number>;
  throttled: number;
}
const tallies = new Map<string, Tally>();
const tally = (who: string) => {
  let t = tallies.get(who);
  if (t === undefined) tallies.set(who, (t = { calls: new Map(), throttled: 0 }));
  return t;
};
/** DiscoverInstances answered, by agent and service: [request arrived, answer sent] (performance.now() ms). */
const fetches = new Map<string, Array<[number, number]>>();
const motoUrl = new URL(moto.url);
const proxy = createServer((req: IncomingMessage, res) => {
  const op = String(req.headers['x-amz-target'] ?? '').split('.').pop() ?? '?';
  const who = /Credential=([^/]+)\//.exec(String(req.headers['authorization'] ?? ''))?.[1] ?? '?';
  const arrived = performance.now();
  const t = tally(who);
  t.calls.set(op, (t.calls.get(op) ?? 0) + 1);
  if (buckets.get(op)?.take() === false) {
    t.throttled += 1;
    req.resume();
    res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': 'RequestLimitExceeded' });
    res.end(JSON.stringify({ __type: 'RequestLimitExceeded', Message: 'The operation can’t be completed because you’ve reached the quota for the number of requests.' }));
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const up = request({ host: motoUrl.hostname, port: motoUrl.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
      if (op !== 'DiscoverInstances' || r.statusCode !== 200) return;
      r.on('end', () => {
        let service = '?';
        try {
          service = (JSON.parse(body.toString('utf8')) as { ServiceName?: string }).ServiceName ?? '?';
        } catch {
          /* not JSON */
        }
        const key = `${who} ${service}`;
        let list = fetches.get(key);
        if (list === undefined) fetches.set(key, (list = []));
        list.push([arrived, performance.now()]);
      });
    });
    up.on('error', () => res.destroy());
    up.end(body);
  });
});
proxy.listen(0, '127.0.0.1');
await once(proxy, 'listening');
const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;

// ── The namespace: N services, two instances each, answered by two loopback apps ───────────────────────────
async function app(ip: string, port: number): Promise<void> {
  const s = createServer((_q, r) => r.end('ok'));
  s.listen(port, ip);
  await once(s, 'listening');
  servers.push(s);
}
const appPort = await freePort();
for (let i = 1; i <= PER_SERVICE; i++) await app(`127.0.5.${i}`, appPort);
await moto.createNamespace('fleet.local');
const ns = (await moto.client.send(new ListNamespacesCommand({}))).Namespaces?.find((n) => n.Name === 'fleet.local');
if (!ns?.Id) throw new Error('no namespace');
const attrs = (name: string, ip: string) => ({ AWS_INSTANCE_IPV4: ip, AWS_INSTANCE_PORT: String(appPort), SC_CLIENT_ALIAS_DNS_NAME: name, SC_CLIENT_ALIAS_PORT: '80', SC_APP_PROTOCOL: 'http' });
const serviceIds: string[] = [];
for (let s = 0; s < N; s++) {
  const id = (await moto.client.send(new CreateServiceCommand({ Name: `svc${s}`, NamespaceId: ns.Id }))).Service?.Id;
  if (!id) throw new Error('no service');
  serviceIds.push(id);
  for (let i = 1; i <= PER_SERVICE; i++) await moto.client.send(new RegisterInstanceCommand({ ServiceId: id, InstanceId: `base-${i}`, Attributes: attrs(`svc${s}`, `127.0.5.${i}`) }));
}
log(`namespace fleet.local: ${N} services × ${PER_SERVICE} instances`);

// ── K agents, each a pure client of the namespace ───────────────────────────────────────────────────────────
interface FleetAgent {
  readonly id: string;
  readonly dir: string;
  readonly child: ChildProcess;
  readonly vipPrefix: string;
}
const agents: FleetAgent[] = [];
for (let k = 0; k < K; k++) {
  const id = `agent${String(k).padStart(3, '0')}`;
  const adir = join(dir, id);
  mkdirSync(adir);
  const logFd = openSync(join(adir, 'agent.log'), 'w');
  const child = spawn(`${repoRoot}/dist/agent`, [], {
    env: {
      PATH: process.env['PATH'] ?? '',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: id,
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_ENDPOINT_URL_SERVICEDISCOVERY: proxyUrl,
      ENVOY_BINARY: envoy,
      ENVOY_LOG_LEVEL: 'error',
      ENVOY_CONCURRENCY: '1',
      APPNET_SERVICE_CONNECT_CONFIG: JSON.stringify({ namespace: 'fleet.local', services: [], portMappings: [] }),
      APPNET_TASK_ID: id,
      APPNET_HOSTS_FILE: join(adir, 'hosts'),
      APPNET_VIP_CIDR: `127.${200 + Math.floor(k / 250)}.${k % 250}.0/24`,
      // The bench reads each Envoy's /clusters and /status through these paths; everything else is left at its default.
      ENVOY_ADMIN_UDS_PATH: join(adir, 'envoy.sock'),
      APPNET_RUNTIME_DIR: join(adir, 'rt'),
      APPNET_AGENT_ADMIN_MODE: 'uds',
      APPNET_AGENT_ADMIN_UDS_PATH: join(adir, 'agent.sock'),
    },
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  children.push(child);
  agents.push({ id, dir: adir, child, vipPrefix: `127.${200 + Math.floor(k / 250)}.${k % 250}.` });
}

const get = (opts: { socketPath?: string; host?: string; port?: number; path: string }, timeoutMs = 2000) =>
  new Promise<{ status: number; body: string }>((resolve) => {
    const req = request({ ...opts, timeout: timeoutMs }, (res) => {
      let b = '';
      res.setEncoding('utf8').on('data', (c: string) => (b += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.on('timeout', () => req.destroy());
    req.end();
  });
const vipOf = (a: FleetAgent, name: string): string | null => {
  try {
    for (const line of readFileSync(join(a.dir, 'hosts'), 'utf8').split('\n')) {
      const [ip, ...names] = line.trim().split(/\s+/);
      if (ip && names.includes(name)) return ip;
    }
  } catch {
    /* not written yet */
  }
  return null;
};

const startedAt = performance.now();
log(`starting ${K} agents at once`);
const ready = new Set<string>();
/** Agents that exited during start-up, with their last line: a finding in itself (they would be restarted by ECS). */
const failedAtStart = new Map<string, string>();
while (ready.size + failedAtStart.size < K) {
  if (performance.now() - startedAt > 180_000) {
    const a = agents.find((x) => !ready.has(x.id) && !failedAtStart.has(x.id));
    const status = a ? (await get({ socketPath: join(a.dir, 'agent.sock'), path: '/status' })).body : '';
    throw new Error(`only ${ready.size} of ${K} agents got every name in 180 s; ${a?.id}: ${status}\n${a ? readFileSync(join(a.dir, 'agent.log'), 'utf8').slice(-1500) : ''}`);
  }
  for (const a of agents) {
    if (ready.has(a.id) || failedAtStart.has(a.id)) continue;
    if (a.child.exitCode !== null) {
      const lines = readFileSync(join(a.dir, 'agent.log'), 'utf8').trim().split('\n');
      failedAtStart.set(a.id, `exit ${a.child.exitCode}: ${lines[lines.length - 1] ?? ''}`);
      continue;
    }
    const status = await get({ socketPath: join(a.dir, 'agent.sock'), path: '/status' });
    if (status.status === 200 && JSON.parse(status.body).healthStatus === 'HEALTHY' && vipOf(a, `svc${N - 1}`) !== null) ready.add(a.id);
  }
  await sleep(200);
}
const startS = (performance.now() - startedAt) / 1000;
const startCalls = [...tallies.values()].reduce((n, t) => n + [...t.calls.values()].reduce((a, b) => a + b, 0), 0);
const startThrottled = [...tallies.values()].reduce((n, t) => n + t.throttled, 0);
log(`${ready.size} of ${K} agents HEALTHY with all ${N} names after ${startS.toFixed(1)} s; ${failedAtStart.size} exited`);
const failedSummary = [...new Set(failedAtStart.values())].map((m) => `  ${[...failedAtStart.values()].filter((x) => x === m).length}× ${m}`);
agents.splice(0, agents.length, ...agents.filter((a) => ready.has(a.id)));
if (agents.length === 0) {
  process.stdout.write([`fleet: ${K} agents, ${N} services: every agent exited at start`, ...failedSummary, ''].join('\n'));
  await moto.stop();
  process.exit(0);
}
const live = agents.length;

// Traffic to the services in use, through each agent's Envoy.
const traffic = new AbortController();
const trafficLoop = (async () => {
  while (!traffic.signal.aborted) {
    await Promise.all(
      agents.flatMap((a) =>
        Array.from({ length: IN_USE }, async (_, s) => {
          const vip = vipOf(a, `svc${s}`);
          if (vip !== null) await get({ host: vip, port: 80, path: '/' });
        }),
      ),
    );
    await sleep(500, undefined, { signal: traffic.signal }).catch(() => undefined);
  }
})();

// ── Steady state ────────────────────────────────────────────────────────────────────────────────────────────
const snapshotTallies = () => new Map([...tallies].map(([who, t]) => [who, { calls: new Map(t.calls), throttled: t.throttled }]));
const before = snapshotTallies();
log(`steady state: ${steadyS} s`);
await sleep(steadyS * 1000);
const after = snapshotTallies();
const perOp = new Map<string, number>();
let steadyThrottled = 0;
const perAgentRate: number[] = [];
for (const a of agents) {
  const b = before.get(a.id);
  const x = after.get(a.id);
  if (x === undefined) continue;
  let n = 0;
  for (const [op, c] of x.calls) {
    const d = c - (b?.calls.get(op) ?? 0);
    perOp.set(op, (perOp.get(op) ?? 0) + d);
    n += d;
  }
  steadyThrottled += x.throttled - (b?.throttled ?? 0);
  perAgentRate.push(n / steadyS);
}
const totalRate = perAgentRate.reduce((s, x) => s + x, 0);

// ── Propagation ─────────────────────────────────────────────────────────────────────────────────────────────
let nextIp = 1;
/** Instances of each service whose RegisterInstance returned. */
const registered = new Map<number, number>();
interface Pending {
  readonly s: number;
  readonly expected: number;
  readonly t0: number;
  readonly seen: Map<string, number>;
}
const pending = new Set<Pending>();
/** Per agent: the time between its sampler's reads (the sampling's own granularity). */
const sampleGaps: number[] = [];
/**
 * One sampler per agent: while changes are pending, reads Envoy's `cluster.scout_http_svcS.membership_total` of
 * every pending service in one /stats request (a small answer), every 50 ms. Once it reaches the instances
 * registered when a change returned, the agent fetched after that registration, so the new instance is in.
 */
const sampling = new AbortController();
const samplers = agents.map(async (a) => {
  let last = 0;
  while (!sampling.signal.aborted) {
    const wanted = [...pending].filter((p) => !p.seen.has(a.id));
    if (wanted.length === 0) {
      last = 0;
      await sleep(20);
      continue;
    }
    const services = [...new Set(wanted.map((p) => p.s))];
    const stats = await get({ socketPath: join(a.dir, 'envoy.sock'), path: `/stats?filter=${encodeURIComponent(`^cluster\\.scout_http_svc(${services.join('|')})\\.membership_total$`)}` });
    const at = performance.now();
    if (last !== 0) sampleGaps.push(at - last);
    last = at;
    for (const p of wanted) {
      const value = Number(new RegExp(`scout_http_svc${p.s}\\.membership_total: (\\d+)`).exec(stats.body)?.[1] ?? 0);
      if (value >= p.expected) p.seen.set(a.id, at - p.t0);
    }
    await sleep(50);
  }
});
/** Per change and agent: ms from the registration to the end of the agent's first DiscoverInstances of it after, and on to Envoy. */
const splits = { single: { fetch: [] as number[], apply: [] as number[] }, burst: { fetch: [] as number[], apply: [] as number[] } };
let phase: keyof typeof splits = 'single';
/** Registers a new instance of svcS; resolves with, per agent, ms until its Envoy has it (NaN: not within the timeout). */
async function change(s: number, timeoutMs: number): Promise<number[]> {
  const ip = `127.0.6.${nextIp++}`;
  await app(ip, appPort);
  await moto.client.send(new RegisterInstanceCommand({ ServiceId: serviceIds[s], InstanceId: `new-${ip}`, Attributes: attrs(`svc${s}`, ip) }));
  const t0 = performance.now();
  const expected = (registered.get(s) ?? PER_SERVICE) + 1;
  registered.set(s, expected);
  const p: Pending = { s, expected, t0, seen: new Map() };
  pending.add(p);
  while (p.seen.size < live && performance.now() - t0 < timeoutMs) await sleep(20);
  pending.delete(p);
  const split = splits[phase];
  for (const a of agents) {
    if (s >= IN_USE) break; // split for the services in use only
    const seen = p.seen.get(a.id);
    const fetched = (fetches.get(`${a.id} svc${s}`) ?? []).find(([arrived]) => arrived > t0)?.[1];
    if (seen === undefined || fetched === undefined) continue;
    split.fetch.push(fetched - t0);
    split.apply.push(seen - (fetched - t0));
  }
  return agents.map((a) => p.seen.get(a.id) ?? NaN);
}
const single = { inUse: [] as number[], notInUse: [] as number[] };
let missed = 0;
for (let i = 0; i < SINGLES; i++) {
  log(`single change ${i + 1} of ${SINGLES}`);
  const inUse = await change(i % IN_USE, 60_000);
  const notInUse = await change(IN_USE + ((i * 7) % (N - IN_USE)), Number(args['not-in-use-timeout-s']) * 1000);
  missed += [...inUse, ...notInUse].filter((x) => Number.isNaN(x)).length;
  single.inUse.push(...inUse.filter((x) => !Number.isNaN(x)));
  single.notInUse.push(...notInUse.filter((x) => !Number.isNaN(x)));
}
log('burst: 20 changes at once');
phase = 'burst';
const burstBefore = snapshotTallies();
const burstResults = await Promise.all(Array.from({ length: 20 }, (_, i) => change(i < 10 ? i % IN_USE : IN_USE + ((i * 11) % (N - IN_USE)), i < 10 ? 90_000 : Number(args['not-in-use-timeout-s']) * 1000).then((r) => ({ inUse: i < 10, r }))));
const burstAfter = snapshotTallies();
const burst = { inUse: [] as number[], notInUse: [] as number[] };
for (const { inUse, r } of burstResults) {
  missed += r.filter((x) => Number.isNaN(x)).length;
  (inUse ? burst.inUse : burst.notInUse).push(...r.filter((x) => !Number.isNaN(x)));
}
let burstThrottled = 0;
for (const [who, x] of burstAfter) burstThrottled += x.throttled - (burstBefore.get(who)?.throttled ?? 0);

traffic.abort();
await trafficLoop;
sampling.abort();
await Promise.all(samplers);
await Promise.all(
  agents.map(async (a) => {
    a.child.kill('SIGTERM');
    if (a.child.exitCode === null) await once(a.child, 'exit');
  }),
);
for (const s of servers) s.close();
proxy.close();
await moto.stop();

const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(0)} ms, p99 ${pct(xs, 99).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms (n=${xs.length})`;
const quotaRevision = 3000;
const quotaInstances = 1000;
const scaledUp = (totalRate / live) * 1000;
process.stdout.write(
  [
    `fleet: ${K} agents, namespace of ${N} services × ${PER_SERVICE} instances (fleet estimate ${FLEET}), ${IN_USE} in use by every agent; proxy quotas × ${scale}`,
    `start: ${live} of ${K} HEALTHY with every name in ${startS.toFixed(1)} s; calls until then ${startCalls}, throttled ${startThrottled}; exited at start: ${failedAtStart.size}`,
    ...failedSummary,
    `steady state (${steadyS} s): ${totalRate.toFixed(1)} calls/s in total, per agent p50 ${pct(perAgentRate, 50).toFixed(2)}/s max ${Math.max(...perAgentRate).toFixed(2)}/s; throttled ${steadyThrottled}`,
    `  by operation (calls/s, all agents): ${[...perOp].filter(([, n]) => n > 0).map(([op, n]) => `${op} ${(n / steadyS).toFixed(2)}`).join(', ')}`,
    `  scaled to 1,000 tasks: ${scaledUp.toFixed(0)} calls/s; DiscoverInstancesRevision ${(((perOp.get('DiscoverInstancesRevision') ?? 0) / steadyS / live) * 1000).toFixed(0)}/s of ${quotaRevision}, DiscoverInstances ${(((perOp.get('DiscoverInstances') ?? 0) / steadyS / live) * 1000).toFixed(0)}/s of ${quotaInstances}`,
    `propagation, single changes, in use:     ${fmt(single.inUse)}`,
    `propagation, single changes, not in use: ${fmt(single.notInUse)}`,
    `propagation, burst of 20, in use:        ${fmt(burst.inUse)}`,
    `propagation, burst of 20, not in use:    ${fmt(burst.notInUse)}`,
    `  in use, single changes, split: registration → the agent's DiscoverInstances answered ${fmt(splits.single.fetch)}; → in Envoy (xDS write, Envoy, sampling) ${fmt(splits.single.apply)}`,
    `  in use, burst, split: registration → the agent's DiscoverInstances answered ${fmt(splits.burst.fetch)}; → in Envoy ${fmt(splits.burst.apply)}`,
    `  sampling: one read per agent every ${fmt(sampleGaps)}`,
    `throttled during the burst: ${burstThrottled}; endpoints never seen within the timeout: ${missed}`,
    '',
  ].join('\n'),
);
process.exit(0);
