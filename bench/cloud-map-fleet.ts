/**
 * Benchmark: Cloud Map mode at fleet scale, scaled down. Prints figures; asserts nothing.
 *   npm run build:binary && node bench/cloud-map-fleet.ts [--agents 10] [--services 100] [--instances-per-service 10] [--steady-s 60]
 *     [--in-use 3] [--singles 10] [--quota-scale K/fleet] [--not-in-use-timeout-s 60] [--sample-ms 500]
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
 * the rest are "not in use". Propagation is timed from RegisterInstance returning to the Envoy of each agent having the
 * new endpoint, as Envoy itself dates it: one sampler per agent reads, every --sample-ms (500), the membership_total of
 * every pending service's cluster together with Envoy's `cluster_manager.cds.update_time` (ms since the epoch at which
 * Envoy finished its last CDS update, on the machine's clock) in one /stats request. Once the membership has the new
 * instance, that update_time is at or after the update that brought it: an upper bound of the arrival, whatever the
 * sampling interval. (Each /stats read is a regex over all 23,000 stats of an Envoy with 100 clusters, 12-16 ms of its
 * main thread, the thread that applies the updates: the previous sampler read every Envoy every 50 ms, 200 reads a
 * second on 2 cores, and loaded the machine it measured.) The latency of the services in use is split at the end of
 * the agent's first DiscoverInstances of that service after the registration (the proxy sees it), at cds.yaml renamed
 * into place (an inotify watch on each agent's runtime directory) and at update_time: the wait for a check and the
 * calls; the agent's render, write, fsync and rename; Envoy's update. It also prints the gaps between the checks of
 * each service in use (the formula's I), moto's answer times, and the CPU of agents, Envoys, moto and the bench.
 * Calls are told apart per agent by the access key each one signs with.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, watch } from 'node:fs';
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
  options: { agents: { type: 'string', default: '10' }, services: { type: 'string', default: '100' }, 'instances-per-service': { type: 'string', default: '10' }, 'steady-s': { type: 'string', default: '60' }, 'quota-scale': { type: 'string' }, 'not-in-use-timeout-s': { type: 'string', default: '60' }, 'in-use': { type: 'string', default: '3' }, singles: { type: 'string', default: '10' }, 'sample-ms': { type: 'string', default: '500' } },
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
/** DiscoverInstances answered, by agent and service: [request arrived, answer sent] (Date.now() ms, the clock Envoy's update_time is on). */
const fetches = new Map<string, Array<[number, number]>>();
/** Every DiscoverInstances(Revision) that reached moto, by agent and service: when it arrived (Date.now() ms). */
const checks = new Map<string, number[]>();
/** moto's answer time per forwarded discovery call (ms), by phase. */
const motoMs = { steady: [] as number[], single: [] as number[], burst: [] as number[] };
let motoPhase: keyof typeof motoMs | null = null;
const motoUrl = new URL(moto.url);

/** The ServiceName of a Cloud Map request body, or '?'. */
function serviceNameOf(body: Buffer): string {
  try {
    return (JSON.parse(body.toString('utf8')) as { ServiceName?: string }).ServiceName ?? '?';
  } catch {
    return '?'; // not JSON
  }
}

const proxy = createServer((req: IncomingMessage, res) => {
  const op = String(req.headers['x-amz-target'] ?? '').split('.').pop() ?? '?';
  const who = /Credential=([^/]+)\//.exec(String(req.headers['authorization'] ?? ''))?.[1] ?? '?';
  const arrived = Date.now();
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
    const forwarded = performance.now();
    const key = `${who} ${op.startsWith('DiscoverInstances') ? serviceNameOf(body) : '?'}`;
    if (op.startsWith('DiscoverInstances')) {
      let list = checks.get(key);
      if (list === undefined) checks.set(key, (list = []));
      list.push(arrived);
    }
    const up = request({ host: motoUrl.hostname, port: motoUrl.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
      if (motoPhase !== null && op.startsWith('Discover')) r.on('end', () => motoMs[motoPhase as keyof typeof motoMs].push(performance.now() - forwarded));
      if (op !== 'DiscoverInstances' || r.statusCode !== 200) return;
      r.on('end', () => {
        let list = fetches.get(key);
        if (list === undefined) fetches.set(key, (list = []));
        list.push([arrived, Date.now()]);
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
/** CPU time (ms) of a process from /proc/PID/stat (utime + stime, clock ticks of 10 ms). */
const cpuMs = (pid: number | undefined): number => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
};
/** Each agent's Envoy: the agent's child process. */
const envoyPid = (a: FleetAgent): number | undefined => {
  try {
    return Number(readFileSync(`/proc/${a.child.pid}/task/${a.child.pid}/children`, 'utf8').trim().split(/\s+/)[0]) || undefined;
  } catch {
    return undefined;
  }
};
const cpuNow = () => ({ agents: agents.reduce((n, a) => n + cpuMs(a.child.pid), 0), envoys: agents.reduce((n, a) => n + cpuMs(envoyPid(a)), 0), moto: cpuMs(moto.process.pid), bench: process.cpuUsage().user / 1000 + process.cpuUsage().system / 1000, at: performance.now() });
const cpuShare = (from: ReturnType<typeof cpuNow>, to: ReturnType<typeof cpuNow>) => {
  const s = (to.at - from.at) / 1000;
  const f = (x: number) => `${(x / 10 / s).toFixed(0)} %`;
  return `agents ${f(to.agents - from.agents)} (all ${live}), Envoys ${f(to.envoys - from.envoys)}, moto ${f(to.moto - from.moto)}, the bench (proxy, traffic, sampler) ${f(to.bench - from.bench)} of one core`;
};
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const snapshotTallies = () => new Map([...tallies].map(([who, t]) => [who, { calls: new Map(t.calls), throttled: t.throttled }]));
const before = snapshotTallies();
log(`steady state: ${steadyS} s; load ${loadavg()}`);
motoPhase = 'steady';
const steadyFrom = Date.now();
const cpuBefore = cpuNow();
await sleep(steadyS * 1000);
const cpuSteady = cpuShare(cpuBefore, cpuNow());
const steadyTo = Date.now();
const loadSteady = loadavg();
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
/** The time between two checks of the same service in use by the same agent at steady state (the formula's I). */
const checkGaps: number[] = [];
for (const a of agents) {
  for (let s = 0; s < IN_USE; s++) {
    const at = (checks.get(`${a.id} svc${s}`) ?? []).filter((x) => x >= steadyFrom && x <= steadyTo);
    // A check that found a changed revision makes a fetch right after it: one check, not two.
    const starts = at.filter((x, i) => i === 0 || x - (at[i - 1] as number) > 150);
    for (let i = 1; i < starts.length; i++) checkGaps.push((starts[i] as number) - (starts[i - 1] as number));
  }
}

// ── Propagation ─────────────────────────────────────────────────────────────────────────────────────────────
let nextIp = 1;
/** Instances of each service whose RegisterInstance returned. */
const registered = new Map<number, number>();
interface Seen {
  /** ms from the registration to the sampler's read that found the endpoint. */
  readonly read: number;
  /** ms from the registration to Envoy's cluster_manager.cds.update_time at that read: when Envoy finished the last CDS update before the read, so at or after the one that brought the endpoint (an upper bound). */
  readonly envoy: number;
}
interface Pending {
  readonly s: number;
  readonly expected: number;
  /** When RegisterInstance returned (Date.now() ms: Envoy's update_time is on the same clock). */
  readonly t0: number;
  readonly seen: Map<string, Seen>;
  /** The new instance's address, and per agent when a cds.yaml carrying it was renamed into place (Date.now() ms). */
  readonly ip: string;
  readonly carried: Map<string, number>;
}
const pending = new Set<Pending>();
/** Per agent: the time between its sampler's reads (the sampling's own granularity). */
const sampleGaps: number[] = [];
/** Per agent: when each cds.yaml was renamed into place (the bench's inotify event, Date.now() ms) and its mtime (the write of the temporary file). */
const cdsWrites = new Map<string, Array<{ seen: number; mtime: number }>>();
const watchers = agents.map((a) => {
  const list: Array<{ seen: number; mtime: number }> = [];
  cdsWrites.set(a.id, list);
  return watch(join(a.dir, 'rt'), (_event, file) => {
    if (file !== 'cds.yaml') return;
    const seen = Date.now();
    try {
      list.push({ seen, mtime: statSync(join(a.dir, 'rt', 'cds.yaml')).mtimeMs });
      // Which pending changes this file carries (the sampler asks Envoy only after that): the new address as a JSON string.
      const text = readFileSync(join(a.dir, 'rt', 'cds.yaml'), 'utf8');
      for (const p of pending) if (!p.carried.has(a.id) && text.includes(`"${p.ip}"`)) p.carried.set(a.id, seen);
    } catch {
      /* between writes */
    }
  });
});
const SAMPLE_MS = Number(args['sample-ms']);
/**
 * One sampler per agent: once its agent wrote a cds.yaml with a pending change (and 200 ms passed), reads Envoy's
 * cluster_manager.cds.update_time and the membership_total of every such pending service's cluster in one /stats
 * request, then every SAMPLE_MS until Envoy has it. Once the membership
 * reaches the instances registered when a change returned, the agent fetched after that registration and Envoy has
 * the new instance; the update_time read with it is when Envoy finished its last CDS update before the read, at or
 * after the update that brought the instance: an upper bound of the arrival that does not depend on how often the
 * sampler reads (a faster sampler only loads the Envoys it measures).
 */
const sampling = new AbortController();
const samplers = agents.map(async (a) => {
  let last = 0;
  while (!sampling.signal.aborted) {
    // Envoy is asked once the agent wrote a file with the change and Envoy had 200 ms to take it (or, should the
    // watch miss a write, 5 s after the registration): about two reads a change instead of one every SAMPLE_MS.
    const now = Date.now();
    const wanted = [...pending].filter((p) => !p.seen.has(a.id) && (now - (p.carried.get(a.id) ?? Infinity) >= 200 || now - p.t0 > 5000));
    if (wanted.length === 0) {
      last = 0;
      await sleep(20);
      continue;
    }
    const services = [...new Set(wanted.map((p) => p.s))];
    const stats = await get({ socketPath: join(a.dir, 'envoy.sock'), path: `/stats?filter=${encodeURIComponent(`^cluster_manager\\.cds\\.update_time$|^cluster\\.scout_http_svc(${services.join('|')})\\.membership_total$`)}` });
    const at = Date.now();
    if (last !== 0) sampleGaps.push(at - last);
    last = at;
    const updateTime = Number(/cluster_manager\.cds\.update_time: (\d+)/.exec(stats.body)?.[1] ?? NaN);
    for (const p of wanted) {
      const value = Number(new RegExp(`scout_http_svc${p.s}\\.membership_total: (\\d+)`).exec(stats.body)?.[1] ?? 0);
      if (value >= p.expected) p.seen.set(a.id, { read: at - p.t0, envoy: (Number.isNaN(updateTime) ? at : updateTime) - p.t0 });
    }
    await sleep(SAMPLE_MS);
  }
});
/** Per change and agent (services in use): ms from the registration to each step. */
const splits = {
  single: { fetch: [] as number[], write: [] as number[], envoy: [] as number[], read: [] as number[], fsync: [] as number[] },
  burst: { fetch: [] as number[], write: [] as number[], envoy: [] as number[], read: [] as number[], fsync: [] as number[] },
};
let phase: keyof typeof splits = 'single';
/** Registers a new instance of svcS; resolves with, per agent, ms until its Envoy has it, by update_time and by the read (NaN: not within the timeout). */
async function change(s: number, timeoutMs: number): Promise<{ envoy: number[]; read: number[] }> {
  const ip = `127.0.6.${nextIp++}`;
  await app(ip, appPort);
  await moto.client.send(new RegisterInstanceCommand({ ServiceId: serviceIds[s], InstanceId: `new-${ip}`, Attributes: attrs(`svc${s}`, ip) }));
  const t0 = Date.now();
  const expected = (registered.get(s) ?? PER_SERVICE) + 1;
  registered.set(s, expected);
  const p: Pending = { s, expected, t0, seen: new Map(), ip, carried: new Map() };
  pending.add(p);
  while (p.seen.size < live && Date.now() - t0 < timeoutMs) await sleep(20);
  pending.delete(p);
  const split = splits[phase];
  for (const a of agents) {
    if (s >= IN_USE) break; // split for the services in use only
    const seen = p.seen.get(a.id);
    const fetched = (fetches.get(`${a.id} svc${s}`) ?? []).find(([arrived]) => arrived > t0)?.[1];
    if (seen === undefined || fetched === undefined) continue;
    const written = (cdsWrites.get(a.id) ?? []).find((w) => w.mtime >= fetched - 5);
    split.fetch.push(fetched - t0);
    split.read.push(seen.read - seen.envoy);
    if (written === undefined) continue;
    split.write.push(written.seen - fetched);
    split.fsync.push(written.seen - written.mtime);
    split.envoy.push(t0 + seen.envoy - written.seen);
  }
  return { envoy: agents.map((a) => p.seen.get(a.id)?.envoy ?? NaN), read: agents.map((a) => p.seen.get(a.id)?.read ?? NaN) };
}
const single = { inUse: [] as number[], notInUse: [] as number[], inUseRead: [] as number[] };
let missed = 0;
const loads: string[] = [];
motoPhase = 'single';
for (let i = 0; i < SINGLES; i++) {
  log(`single change ${i + 1} of ${SINGLES}; load ${loadavg()}`);
  if (i % 3 === 0) loads.push(loadavg().split(' ')[0] as string);
  const inUse = await change(i % IN_USE, 60_000);
  const notInUse = await change(IN_USE + ((i * 7) % (N - IN_USE)), Number(args['not-in-use-timeout-s']) * 1000);
  missed += [...inUse.envoy, ...notInUse.envoy].filter((x) => Number.isNaN(x)).length;
  single.inUse.push(...inUse.envoy.filter((x) => !Number.isNaN(x)));
  single.inUseRead.push(...inUse.read.filter((x) => !Number.isNaN(x)));
  single.notInUse.push(...notInUse.envoy.filter((x) => !Number.isNaN(x)));
}
log(`burst: 20 changes at once; load ${loadavg()}`);
phase = 'burst';
motoPhase = 'burst';
const burstBefore = snapshotTallies();
const burstResults = await Promise.all(Array.from({ length: 20 }, (_, i) => change(i < 10 ? i % IN_USE : IN_USE + ((i * 11) % (N - IN_USE)), i < 10 ? 90_000 : Number(args['not-in-use-timeout-s']) * 1000).then((r) => ({ inUse: i < 10, r }))));
const burstAfter = snapshotTallies();
loads.push(loadavg().split(' ')[0] as string);
const burst = { inUse: [] as number[], notInUse: [] as number[] };
for (const { inUse, r } of burstResults) {
  missed += r.envoy.filter((x) => Number.isNaN(x)).length;
  (inUse ? burst.inUse : burst.notInUse).push(...r.envoy.filter((x) => !Number.isNaN(x)));
}
let burstThrottled = 0;
for (const [who, x] of burstAfter) burstThrottled += x.throttled - (burstBefore.get(who)?.throttled ?? 0);
for (const w of watchers) w.close();

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
    `  steady state: checks of each service in use by each agent ${fmt(checkGaps)} apart; moto answered discovery calls in ${fmt(motoMs.steady)}`,
    `  CPU at steady state: ${cpuSteady}; load average ${loadSteady}`,
    `propagation (registration → Envoy's cds.update_time read with the new endpoint):`,
    `propagation, single changes, in use:     ${fmt(single.inUse)}`,
    `  the same, timed at the sampler's read:  ${fmt(single.inUseRead)}`,
    `propagation, single changes, not in use: ${fmt(single.notInUse)}`,
    `propagation, burst of 20, in use:        ${fmt(burst.inUse)}`,
    `propagation, burst of 20, not in use:    ${fmt(burst.notInUse)}`,
    ...(['single', 'burst'] as const).flatMap((k) => [
      `  in use, ${k}, split: registration → the agent's DiscoverInstances answered ${fmt(splits[k].fetch)}`,
      `    → cds.yaml renamed into place (render, write, fsync, rename) ${fmt(splits[k].write)} (of which write → rename ${fmt(splits[k].fsync)})`,
      `    → Envoy's cds.update_time ${fmt(splits[k].envoy)}; (update_time → the sampler's read ${fmt(splits[k].read)})`,
    ]),
    `  moto answered discovery calls in: single changes ${fmt(motoMs.single)}; burst ${fmt(motoMs.burst)}`,
    `  sampling: one read per agent every ${fmt(sampleGaps)}; load average (1 min) during the changes: ${loads.join(', ')}`,
    `throttled during the burst: ${burstThrottled}; endpoints never seen within the timeout: ${missed}`,
    '',
  ].join('\n'),
);
process.exit(0);
