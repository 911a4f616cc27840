/**
 * Benchmark: the memory of the single executable (dist/agent) in the scenarios a sidecar lives in, next to a bare
 * Node 24 process listening on a socket, measured in the same run. Prints, per scenario, private memory (RssAnon
 * from /proc/PID/status), PSS (from /proc/PID/smaps_rollup) and RSS, and the ratios the targets are stated in.
 * Asserts nothing.
 *   npm run bench:memory                      (builds dist/agent first)
 *   BENCH_SCENARIOS=idle,clusters node bench/memory.ts    (a subset: idle, clusters, cloudmap, wrk)
 *   BENCH_CLOUDMAP_SERVICES=1000 node bench/memory.ts      (Cloud Map mode with these numbers of services; default 200,1000)
 *   BENCH_SMAPS=script.py node bench/memory.ts   (diagnostics: runs `python3 script.py PID` at every figure and prints its output)
 *   BENCH_BINARY=/tmp/before/dist/agent node bench/memory.ts   (another executable, such as the one before a change)
 * The executable ignores NODE_OPTIONS (scripts/build-binary.ts): V8 settings to try go into scripts/v8-flags.ts.
 *
 * RSS alone misleads: the agent's file-backed pages (the 120 MiB executable) count in RSS as far as they are in
 * the page cache, so the same binary shows different RSS from run to run. RssAnon is the process's own memory; PSS
 * shares file pages among the processes that map them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { largeEnvoyBootstrap } from './large-envoy.ts';
import { findEnvoy, repoRoot } from '../test/helpers/envoy.ts';
import { freePort, startApp } from '../test/helpers/apps.ts';
import { httpRequest } from '../test/helpers/http.ts';

const binary = process.env['BENCH_BINARY'] ?? `${repoRoot}/dist/agent`;
const envoy = findEnvoy();
if (envoy === null) throw new Error('Envoy not found: run npm run setup');
const only = new Set((process.env['BENCH_SCENARIOS'] ?? 'idle,clusters,cloudmap,wrk').split(','));
/** Which stats each round asks for: both (the default), or one of them to see which one costs what. */
const which = process.env['BENCH_STATS'] ?? 'both';
const SETTLE_MS = Number(process.env['BENCH_SETTLE_MS'] ?? 3000);
const dir = mkdtempSync(join(tmpdir(), 'bench-memory-'));
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

// ── Measuring ─────────────────────────────────────────────────────────────────────────────────────────────────
interface Mem {
  readonly rssAnon: number;
  readonly pss: number;
  readonly rss: number;
}
function kib(text: string, key: string): number {
  return Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
}
function memOf(pid: number): Mem {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return { rssAnon: kib(status, 'RssAnon'), pss: kib(rollup, 'Pss'), rss: kib(status, 'VmRSS') };
}
/** The agent's V8 heap in use, from its own /metrics (diagnostic output only). */
const sockets = new Map<number, string>();
async function heapOf(pid: number): Promise<string> {
  const sock = sockets.get(pid);
  if (sock === undefined) return 'n/a';
  const body = (await httpRequest({ socketPath: sock }, '/metrics').catch(() => ({ body: '' }))).body;
  const used = Number(/^appnet_agent_heap_used_bytes (\S+)/m.exec(body)?.[1] ?? NaN);
  return `${(used / 1048576).toFixed(1)} MiB`;
}
const mib = (k: number) => (k / 1024).toFixed(1);
const rows: Array<{ name: string; mem: Mem; note?: string }> = [];
async function record(name: string, pid: number, note?: string): Promise<Mem> {
  const mem = memOf(pid);
  const heap = await heapOf(pid);
  rows.push({ name, mem, ...(note ? { note } : {}) });
  process.stderr.write(`  ${name}: V8 heap used ${heap}, RssAnon ${mib(mem.rssAnon)} MiB, PSS ${mib(mem.pss)} MiB, RSS ${mib(mem.rss)} MiB\n`);
  if (process.env['BENCH_SMAPS']) process.stderr.write(spawnSync('python3', [process.env['BENCH_SMAPS'], String(pid)], { encoding: 'utf8' }).stdout);
  return mem;
}

// ── Starting the agent ────────────────────────────────────────────────────────────────────────────────────────
interface Agent {
  readonly child: ChildProcess;
  readonly sock: string;
  readonly logs: string[];
  stop(): Promise<void>;
}
function startAgent(name: string, env: Record<string, string>): Agent {
  const home = join(dir, name);
  mkdirSync(home, { recursive: true });
  const sock = join(home, 'agent.sock');
  const child = spawn(binary, [], {
    env: {
      PATH: '/usr/bin:/bin',
      ENVOY_BINARY: envoy ?? '',
      APPNET_RUNTIME_DIR: join(home, 'rt'),
      APPNET_AGENT_ADMIN_MODE: 'uds',
      APPNET_AGENT_ADMIN_UDS_PATH: sock,
      ENVOY_ADMIN_UDS_PATH: join(home, 'envoy.sock'),
      ENVOY_LOG_LEVEL: 'error',
      APPNET_AGENT_LOG_LEVEL: 'info',
      ENVOY_CONCURRENCY: '1',
      ...env,
    },
    cwd: home,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  sockets.set(child.pid ?? 0, sock);
  const logs: string[] = [];
  child.stdout?.setEncoding('utf8').on('data', (c: string) => logs.push(c));
  return {
    child,
    sock,
    logs,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(30_000)]);
      child.kill('SIGKILL');
    },
  };
}
async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 120_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
async function status(a: Agent): Promise<Record<string, unknown>> {
  return JSON.parse((await httpRequest({ socketPath: a.sock }, '/status')).body) as Record<string, unknown>;
}
/** Reads a whole answer and drops it, as a scraper does (the bench keeps no copy). */
function fetchDiscard(sock: string, path: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, path, agent: false, timeout: 30_000 }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${path}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}
function envoyStat(adminSock: string, name: string): Promise<number> {
  return httpRequest({ socketPath: adminSock }, `/stats?filter=${encodeURIComponent(`^${name}$`)}`).then((r) => Number(new RegExp(`${name}: (\\d+)`).exec(r.body)?.[1] ?? 0));
}
/** 50 rounds of the full stats and the filtered stats; memory after the 5th and the 50th. */
async function statsRounds(label: string, a: Agent): Promise<{ at5: Mem; at50: Mem; peak: Mem; fullBytes: number }> {
  let at5: Mem | null = null;
  let peak = memOf(a.child.pid ?? 0);
  let fullBytes = 0;
  for (let i = 1; i <= 50; i++) {
    const full = which === 'filtered' ? { status: 200, bytes: 0 } : await fetchDiscard(a.sock, '/stats/prometheus');
    const filtered = which === 'full' ? { status: 200, bytes: 0 } : await fetchDiscard(a.sock, '/stats/prometheus?usedonly&filter=metrics_extension');
    if (full.status !== 200 || filtered.status !== 200) throw new Error(`${label}: stats answered ${full.status}/${filtered.status}`);
    fullBytes = full.bytes;
    const m = memOf(a.child.pid ?? 0);
    if (m.rssAnon > peak.rssAnon) peak = m;
    if (i === 5) at5 = await record(`${label}, after the 5th request for the full and filtered stats`, a.child.pid ?? 0);
    await sleep(100); // the rate limit: 10 a second on the routes that call Envoy
  }
  const at50 = await record(`${label}, after the 50th`, a.child.pid ?? 0);
  rows.push({ name: `${label}, peak during the 50 rounds`, mem: peak });
  return { at5: at5 ?? at50, at50, peak, fullBytes };
}

// ── The bare Node process: the baseline ───────────────────────────────────────────────────────────────────────
// Run from its own copy of the Node binary: sharing the file with this process would halve its PSS, and the agent
// shares its executable with no one.
const nodeBinary = join(dir, 'node');
copyFileSync(process.execPath, nodeBinary);
chmodSync(nodeBinary, 0o755);
const barePort = await freePort();
const bare = spawn(nodeBinary, ['-e', `require('node:net').createServer().listen(${barePort}, '127.0.0.1')`], { stdio: 'ignore' });
children.push(bare);
await sleep(SETTLE_MS);
const bareMem = await record(`a bare Node ${process.version} process listening on a socket`, bare.pid ?? 0);
const results: string[] = [];
const ratio = (a: number, b: number) => (a / b).toFixed(2);

// ── 1. Idle ECS-managed sidecar (Envoy's ADS stream goes to a relay socket that nobody serves) ───────────────────
let idleMem: Mem | null = null;
if (only.has('idle') || only.has('wrk')) {
  process.stderr.write('idle ECS-managed sidecar\n');
  const a = startAgent('ecs', {
    APPMESH_XDS_ENDPOINT: `unix://${join(dir, 'relay.sock')}`,
    APPMESH_RESOURCE_ARN: 'arn:aws:ecs:us-west-2:123456789012:task-set/prod/web/ecs-svc/1',
    APPMESH_METRIC_EXTENSION_VERSION: '1',
    ENVOY_INITIAL_FETCH_TIMEOUT: '1',
  });
  await until('the ECS-managed sidecar to answer /status', async () => (await status(a))['envoyPid'] !== undefined);
  await sleep(SETTLE_MS);
  idleMem = await record('idle ECS-managed sidecar', a.child.pid ?? 0);
  results.push(`idle ECS-managed sidecar / bare Node: RssAnon ${ratio(idleMem.rssAnon, bareMem.rssAnon)}, PSS ${ratio(idleMem.pss, bareMem.pss)}, RSS ${ratio(idleMem.rss, bareMem.rss)} (target: private at most 1.5)`);
  if (only.has('wrk')) {
    process.stderr.write('wrk on /status\n');
    // wrk speaks TCP: a small proxy would add its own costs, so this agent gets a TCP management interface.
    await a.stop();
    const port = await freePort();
    const b = startAgent('ecs-tcp', {
      APPMESH_XDS_ENDPOINT: `unix://${join(dir, 'relay.sock')}`,
      APPMESH_RESOURCE_ARN: 'arn:aws:ecs:us-west-2:123456789012:task-set/prod/web/ecs-svc/1',
      APPMESH_METRIC_EXTENSION_VERSION: '1',
      ENVOY_INITIAL_FETCH_TIMEOUT: '1',
      APPNET_AGENT_ADMIN_MODE: 'tcp',
      APPNET_AGENT_HTTP_BIND_ADDRESS: '127.0.0.1',
      APPNET_AGENT_HTTP_PORT: String(port),
    });
    await until('the TCP sidecar to answer', async () => (await httpRequest({ host: '127.0.0.1', port }, '/status')).status === 200);
    await sleep(SETTLE_MS);
    const before = await record('idle ECS-managed sidecar, TCP management interface', b.child.pid ?? 0);
    const wrk = spawnSync('wrk', ['-t2', '-c16', '-d10s', `http://127.0.0.1:${port}/status`], { encoding: 'utf8' });
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(wrk.stdout)?.[1] ?? 'n/a';
    const after = await record(`the same after 10 s of wrk -t2 -c16 on /status (${rps} requests/s)`, b.child.pid ?? 0);
    await sleep(SETTLE_MS);
    const later = await record(`the same ${SETTLE_MS / 1000} s later`, b.child.pid ?? 0);
    results.push(`wrk on /status: RssAnon ${mib(before.rssAnon)} → ${mib(after.rssAnon)} → ${mib(later.rssAnon)} MiB (${ratio(later.rssAnon, before.rssAnon)}× the idle figure), ${rps} requests/s`);
    await b.stop();
  } else {
    await a.stop();
  }
}

// ── 2. ENVOY_CONFIG_FILE with 1,000 clusters (a YAML user bootstrap) ────────────────────────────────────────────
if (only.has('clusters')) {
  process.stderr.write('ENVOY_CONFIG_FILE with 1,000 clusters\n');
  const app = await startApp('bench app');
  const home = join(dir, 'clusters');
  mkdirSync(home, { recursive: true });
  const adminSock = join(home, 'envoy-admin.sock');
  const inbound = await freePort();
  writeFileSync(join(home, 'envoy.yaml'), largeEnvoyBootstrap({ count: 1000, appPort: app.port, inboundPort: inbound, adminSocket: adminSock }));
  const a = startAgent('clusters', { ENVOY_CONFIG_FILE: join(home, 'envoy.yaml') });
  await until('the agent with 1,000 clusters to be HEALTHY', async () => (await status(a))['healthStatus'] === 'HEALTHY');
  for (let i = 0; i < 20; i++) await httpRequest({ host: '127.0.0.1', port: inbound }, '/');
  await sleep(SETTLE_MS);
  const started = await record('ENVOY_CONFIG_FILE with 1,000 clusters, just started', a.child.pid ?? 0);
  const r = await statsRounds('ENVOY_CONFIG_FILE with 1,000 clusters', a);
  process.stderr.write(`  (the full stats: ${(r.fullBytes / 1048576).toFixed(1)} MiB a request)\n`);
  const base = idleMem ?? started;
  results.push(
    `1,000 clusters: just started ${ratio(started.rssAnon, base.rssAnon)}× the idle RssAnon; after the 50th request ${ratio(r.at50.rssAnon, base.rssAnon)}× (target: at most 1.5); 5th → 50th request ${mib(r.at5.rssAnon)} → ${mib(r.at50.rssAnon)} MiB RssAnon (${((r.at50.rssAnon / r.at5.rssAnon - 1) * 100).toFixed(1)}%, target: within 10%)`,
  );
  await a.stop();
  await app.close();
}

// ── 3. Cloud Map mode with 200 and 1,000 services, against moto ────────────────────────────────────────────────
if (only.has('cloudmap')) {
  const { startMoto } = await import('../test/helpers/moto.ts');
  const sdk = await import('@aws-sdk/client-servicediscovery');
  const moto = await startMoto(null);
  if (moto === null) throw new Error('moto not found: run npm run setup');
  for (const count of (process.env['BENCH_CLOUDMAP_SERVICES'] ?? '200,1000').split(',').map(Number)) {
    process.stderr.write(`Cloud Map mode, ${count} services (creating them in moto)\n`);
    const nsName = `mem${count}.local`;
    await moto.createNamespace(nsName);
    const nsId = (await moto.client.send(new sdk.ListNamespacesCommand({}))).Namespaces?.find((n) => n.Name === nsName)?.Id;
    if (!nsId) throw new Error('no namespace');
    const work = Array.from({ length: count }, (_, s) => s);
    await Promise.all(
      Array.from({ length: Math.max(2, cpus().length * 2) }, async () => {
        for (let s = work.shift(); s !== undefined; s = work.shift()) {
          const id = (await moto.client.send(new sdk.CreateServiceCommand({ Name: `svc${s}`, NamespaceId: nsId }))).Service?.Id;
          await moto.client.send(
            new sdk.RegisterInstanceCommand({
              ServiceId: id,
              InstanceId: `i-${s}`,
              Attributes: { AWS_INSTANCE_IPV4: `10.9.${s >> 8}.${s & 255}`, AWS_INSTANCE_PORT: '8080', SC_CLIENT_ALIAS_DNS_NAME: `svc${s}`, SC_CLIENT_ALIAS_PORT: '80', SC_APP_PROTOCOL: 'http' },
            }),
          );
        }
      }),
    );
    const name = `cloudmap${count}`;
    const a = startAgent(name, {
      ...moto.env,
      APPNET_SERVICE_CONNECT_CONFIG: JSON.stringify({ namespace: nsName, services: [], portMappings: [] }),
      APPNET_TASK_ID: name,
      APPNET_HOSTS_FILE: join(dir, `${name}-hosts`),
      APPNET_VIP_CIDR: '127.252.0.0/16',
    });
    const adminSock = join(dir, name, 'envoy.sock');
    const t0 = Date.now();
    await until(`Envoy to have ${count} clusters`, async () => (await envoyStat(adminSock, 'cluster_manager.active_clusters')) >= count);
    process.stderr.write(`  (${count} clusters active ${Date.now() - t0} ms after start)\n`);
    await sleep(SETTLE_MS);
    const started = await record(`Cloud Map mode, ${count} services, discovered`, a.child.pid ?? 0);
    const r = await statsRounds(`Cloud Map mode, ${count} services`, a);
    const base = idleMem ?? started;
    results.push(
      `Cloud Map ${count} services: discovered ${ratio(started.rssAnon, base.rssAnon)}× the idle RssAnon; after the 50th request ${ratio(r.at50.rssAnon, base.rssAnon)}×; 5th → 50th ${mib(r.at5.rssAnon)} → ${mib(r.at50.rssAnon)} MiB RssAnon (${((r.at50.rssAnon / r.at5.rssAnon - 1) * 100).toFixed(1)}%)`,
    );
    await a.stop();
  }
  await moto.stop();
}

const width = Math.max(...rows.map((r) => r.name.length));
process.stdout.write(
  [
    `memory of ${binary} (MiB)`,
    `${'scenario'.padEnd(width)}  RssAnon      PSS      RSS`,
    ...rows.map((r) => `${r.name.padEnd(width)}  ${mib(r.mem.rssAnon).padStart(7)}  ${mib(r.mem.pss).padStart(7)}  ${mib(r.mem.rss).padStart(7)}`),
    '',
    ...results,
    '',
  ].join('\n'),
);
process.exit(0);
