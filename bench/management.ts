/**
 * Benchmark: the built agent with the real Envoy carrying 1,000 clusters (a large stats output).
 * Prints: /stats/prometheus latency (plain, filtered, delta), the agent's private memory (RssAnon) and RSS idle and under that load
 * next to a bare Node 24 process that only listens on a socket, /status throughput with wrk, and the time from
 * agent start to Envoy spawned and to HEALTHY. Asserts nothing.
 *   npm run build && node bench/management.ts
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AGENT_V8_FLAGS } from '../scripts/v8-flags.ts';
import { largeEnvoyBootstrap } from './large-envoy.ts';
import { findEnvoy, repoRoot } from '../test/helpers/envoy.ts';
import { freePort, startApp } from '../test/helpers/apps.ts';
import { httpRequest } from '../test/helpers/http.ts';

const CLUSTERS = Number(process.env['BENCH_CLUSTERS'] ?? 1000);
const envoy = findEnvoy();
if (envoy === null) throw new Error('Envoy not found: run npm run setup');
const dir = mkdtempSync(join(tmpdir(), 'bench-mgmt-'));
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Private memory (RssAnon) and RSS in KiB. RSS alone misleads: it counts the executable's pages in the page cache. */
function memKiB(pid: number): { anon: number; rss: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { anon: Number(/RssAnon:\s+(\d+) kB/.exec(status)?.[1] ?? 0), rss: Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) };
}
const mib = (m: { anon: number; rss: number }) => `${(m.anon / 1024).toFixed(1)} MiB private (RSS ${(m.rss / 1024).toFixed(1)} MiB)`;
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

const app = await startApp('bench app');
const inbound = await freePort();
writeFileSync(join(dir, 'envoy.yaml'), largeEnvoyBootstrap({ count: CLUSTERS, appPort: app.port, inboundPort: inbound, adminSocket: join(dir, 'envoy-admin.sock') }));

// A bare Node 24 process that only listens on a socket: the memory baseline.
const barePort = await freePort();
const bare = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${barePort}, '127.0.0.1')`], { stdio: 'ignore' });
children.push(bare);

const agentPort = await freePort();
const startedAt = Date.now();
// With the V8 settings the single executable has (scripts/v8-flags.ts), so the figures are those of what ships.
const agent = spawn(process.execPath, [...(process.env['BENCH_NO_V8_FLAGS'] ? [] : AGENT_V8_FLAGS), `${repoRoot}/dist/agent.js`], {
  env: {
    PATH: process.env['PATH'] ?? '',
    ENVOY_BINARY: envoy,
    ENVOY_CONFIG_FILE: join(dir, 'envoy.yaml'),
    APPNET_RUNTIME_DIR: join(dir, 'runtime'),
    APPNET_AGENT_ADMIN_MODE: 'tcp',
    APPNET_AGENT_HTTP_BIND_ADDRESS: '127.0.0.1',
    APPNET_AGENT_HTTP_PORT: String(agentPort),
    ENVOY_LOG_LEVEL: 'error',
    APPNET_AGENT_LOG_LEVEL: 'info',
  },
  stdio: ['ignore', 'pipe', 'inherit'],
});
children.push(agent);
let spawnedAt = 0;
agent.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
  if (spawnedAt === 0 && chunk.includes('"msg":"Envoy started"')) spawnedAt = Date.now();
});
const target = { host: '127.0.0.1', port: agentPort };
let healthyAt = 0;
for (;;) {
  try {
    if (JSON.parse((await httpRequest(target, '/status')).body).healthStatus === 'HEALTHY') {
      healthyAt = Date.now();
      break;
    }
  } catch {
    // not listening yet
  }
  await sleep(20);
}
await sleep(3000); // the first stats snapshot is taken and Node has settled: this is the idle agent
const idleAgent = memKiB(agent.pid ?? 0);
const idleBare = memKiB(bare.pid ?? 0);
for (let i = 0; i < 20; i++) await httpRequest({ host: '127.0.0.1', port: inbound }, '/');
const lines = (await httpRequest(target, '/stats/prometheus')).body.split('\n').length;

const variants = {
  plain: '/stats/prometheus',
  'plain usedonly': '/stats/prometheus?usedonly',
  filtered: '/stats/prometheus?usedonly&filter=metrics_extension',
  delta: '/stats/prometheus?usedonly&filter=metrics_extension&delta',
};
const latency: Record<string, string> = {};
let peakAgent = idleAgent;
for (const [name, path] of Object.entries(variants)) {
  const times: number[] = [];
  for (let i = 0; i < 40; i++) {
    // The rate limit allows 10 a second on these routes; stay under it.
    const t0 = performance.now();
    const res = await httpRequest(target, path, { timeoutMs: 30_000 });
    times.push(performance.now() - t0);
    if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status}`);
    const now = memKiB(agent.pid ?? 0);
    if (now.anon > peakAgent.anon) peakAgent = now;
    await sleep(100);
  }
  latency[name] = `p50 ${percentile(times, 50).toFixed(1)} ms, p99 ${percentile(times, 99).toFixed(1)} ms`;
}

const wrk = spawnSync('wrk', ['-t2', '-c16', '-d10s', `http://127.0.0.1:${agentPort}/status`], { encoding: 'utf8' });
const rps = /Requests\/sec:\s+([\d.]+)/.exec(wrk.stdout)?.[1] ?? 'n/a';
const wrkLatency = /Latency\s+(\S+)/.exec(wrk.stdout)?.[1] ?? 'n/a';
const afterWrk = memKiB(agent.pid ?? 0);

process.stdout.write(
  [
    `agent with Envoy ${CLUSTERS} clusters: Envoy's /stats/prometheus is ${lines} lines`,
    `start: Envoy spawned ${spawnedAt - startedAt} ms after the agent process started; HEALTHY after ${healthyAt - startedAt} ms`,
    ...Object.entries(latency).map(([k, v]) => `/stats/prometheus ${k}: ${v} (40 requests)`),
    `memory: agent idle ${mib(idleAgent)} (Envoy with ${CLUSTERS} clusters, first snapshot taken), bare Node 24 listener ${mib(idleBare)} (private memory ratio ${(idleAgent.anon / idleBare.anon).toFixed(2)}, RSS ratio ${(idleAgent.rss / idleBare.rss).toFixed(2)}); agent peak under the stats requests ${mib(peakAgent)}; after wrk ${mib(afterWrk)}`,
    `/status with wrk -t2 -c16 -d10s: ${rps} requests/s, mean latency ${wrkLatency}`,
    '',
  ].join('\n'),
);
agent.kill('SIGTERM');
await new Promise((r) => agent.once('exit', r));
await app.close();
process.exit(0);
