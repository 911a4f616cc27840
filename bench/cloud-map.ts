/**
 * Benchmarks for Cloud Map mode, with moto as Cloud Map and the real Envoy. Prints figures; asserts nothing.
 *   npm run build && node bench/cloud-map.ts
 * 1. Propagation: from RegisterInstance returning to the first request served by the new endpoint through a
 *    client agent, p50 and p99 over 20 changes, at the default poll interval.
 * 2. Render and apply: 1,000 services × 10 endpoints rendered and written as xDS files, then accepted by Envoy.
 * 3. Cloud Map calls per minute at steady state (nothing changes) for namespaces of 1, 10 and 100 services.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, Agent } from 'node:http';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateServiceCommand, ListNamespacesCommand, RegisterInstanceCommand } from '@aws-sdk/client-servicediscovery';
import { startMoto } from '../test/helpers/moto.ts';
import { findEnvoy, repoRoot } from '../test/helpers/envoy.ts';
import { readConfig } from '../agent/config/index.ts';
import { renderBootstrap } from '../agent/bootstrap/index.ts';
import { renderResources } from '../agent/bootstrap/render-resources.ts';
import { validateServiceConnectConfig } from '../agent/config/index.ts';
import { serviceFromInstances, VipAllocator, type DiscoverySnapshot } from '../agent/discovery/snapshot.ts';
import { createCloudMapClient } from '../agent/discovery/cloud-map-client.ts';
import { Discovery } from '../agent/discovery/discovery.ts';
import { createLogger } from '../agent/logger.ts';
import { writeFileAtomic } from '../agent/system/files.ts';

const envoy = findEnvoy();
if (envoy === null) throw new Error('Envoy not found: run npm run setup');
const moto = await startMoto(null);
if (moto === null) throw new Error('moto not found: run npm run setup');
const dir = mkdtempSync(join(tmpdir(), 'bench-cloudmap-'));
const killers: Array<() => void> = [];
process.on('exit', () => {
  for (const k of killers) k();
  rmSync(dir, { recursive: true, force: true });
});
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? 0;
const silent = createLogger({ level: 'error', write: () => undefined });

await moto.createNamespace('bench.local');
const ns = (await moto.client.send(new ListNamespacesCommand({}))).Namespaces?.[0];
if (!ns?.Id) throw new Error('no namespace');
const web = (await moto.client.send(new CreateServiceCommand({ Name: 'web', NamespaceId: ns.Id }))).Service;
if (!web?.Id) throw new Error('no service');
const attrs = (ip: string) => ({ AWS_INSTANCE_IPV4: ip, AWS_INSTANCE_PORT: '15000', SC_CLIENT_ALIAS_DNS_NAME: 'web', SC_CLIENT_ALIAS_PORT: '80', SC_APP_PROTOCOL: 'http' });

// ── 1. Propagation ──────────────────────────────────────────────────────────────────────────────────────────
const apps: Array<{ close: () => void }> = [];
async function app(ip: string, name: string) {
  const s = createServer((_q, r) => r.end(name));
  s.listen(15000, ip);
  await once(s, 'listening');
  apps.push({ close: () => s.close() });
}
await app('127.0.3.1', 'app 0');
await moto.client.send(new RegisterInstanceCommand({ ServiceId: web.Id, InstanceId: 'i-0', Attributes: attrs('127.0.3.1') }));
const clientDir = join(dir, 'client');
mkdirSync(clientDir);
const agent = spawn(process.execPath, [`${repoRoot}/dist/agent.js`], {
  env: {
    PATH: process.env['PATH'] ?? '',
    ...moto.env,
    ENVOY_BINARY: envoy,
    ENVOY_LOG_LEVEL: 'error',
    ENVOY_CONCURRENCY: '1',
    APPNET_SERVICE_CONNECT_CONFIG: JSON.stringify({ namespace: 'bench.local', services: [], portMappings: [] }),
    APPNET_TASK_ID: 'bench-client',
    APPNET_HOSTS_FILE: join(clientDir, 'hosts'),
    APPNET_RUNTIME_DIR: join(clientDir, 'rt'),
    ENVOY_ADMIN_UDS_PATH: join(clientDir, 'envoy.sock'),
    APPNET_VIP_CIDR: '127.253.0.0/16',
  },
  stdio: ['ignore', 'ignore', 'inherit'],
});
killers.push(() => agent.kill('SIGKILL'));
const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
const get = () =>
  new Promise<string>((resolve) => {
    const req = request({ host: '127.253.0.1', port: 80, path: '/', agent: keepAlive, timeout: 2000 }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c.toString()));
      res.on('end', () => resolve(b));
    });
    req.on('error', () => resolve(''));
    req.on('timeout', () => req.destroy());
    req.end();
  });
process.stderr.write('waiting for the client agent to route to app 0\n');
while ((await get()) !== 'app 0') await sleep(50);
process.stderr.write('measuring propagation\n');
const propagation: number[] = [];
for (let i = 1; i <= 20; i++) {
  const ip = `127.0.3.${i + 1}`;
  await app(ip, `app ${i}`);
  await moto.client.send(new RegisterInstanceCommand({ ServiceId: web.Id, InstanceId: `i-${i}`, Attributes: attrs(ip) }));
  const registeredAt = performance.now();
  for (;;) {
    if ((await get()) === `app ${i}`) break;
    await sleep(5);
  }
  propagation.push(performance.now() - registeredAt);
}
agent.kill('SIGTERM');
await once(agent, 'exit');
keepAlive.destroy();
for (const a of apps) a.close();

process.stderr.write('render and apply\n');
// ── 2. Render and apply 1,000 services × 10 endpoints ───────────────────────────────────────────────────────
const services = new Map<string, ReturnType<typeof serviceFromInstances>>();
for (let s = 0; s < 1000; s++) {
  const instances = Array.from({ length: 10 }, (_, e) => ({
    InstanceId: `s${s}-e${e}`,
    Attributes: { AWS_INSTANCE_IPV4: `10.${(s >> 8) & 255}.${s & 255}.${e + 1}`, AWS_INSTANCE_PORT: '15000', SC_CLIENT_ALIAS_DNS_NAME: `svc${s}`, SC_CLIENT_ALIAS_PORT: '80', SC_APP_PROTOCOL: 'http' },
  }));
  services.set(`svc${s}`, serviceFromInstances(`svc${s}`, instances));
}
const snapshot: DiscoverySnapshot = { namespace: 'bench.local', services };
const runtime = join(dir, 'big');
mkdirSync(runtime, { recursive: true });
const sc = validateServiceConnectConfig({ namespace: 'bench.local', services: [], portMappings: [] }).config;
if (sc === null) throw new Error('config');
const t0 = performance.now();
const files = renderResources(snapshot, new VipAllocator(), { config: sc, taskIp: '127.0.0.1', appIp: '127.0.0.1' });
const t1 = performance.now();
await writeFileAtomic(join(runtime, 'cds.yaml'), `${JSON.stringify(files.cds)}\n`);
await writeFileAtomic(join(runtime, 'lds.yaml'), `${JSON.stringify(files.lds)}\n`);
const t2 = performance.now();
const config = readConfig({ APPNET_SERVICE_CONNECT_CONFIG: '{"namespace":"bench.local"}', AWS_REGION: 'us-east-1', APPNET_TASK_ID: 'big', APPNET_RUNTIME_DIR: runtime, ENVOY_ADMIN_UDS_PATH: join(runtime, 'admin.sock') }, { readFile: () => '' });
writeFileSync(join(runtime, 'bootstrap.json'), JSON.stringify(renderBootstrap(config, { interfaces: { ipv4: {}, ipv6: {} }, kernelVersion: null, machine: null, task: null }).bootstrap));
const envoyStart = performance.now();
const big = spawn(envoy, ['-c', join(runtime, 'bootstrap.json'), '-l', 'error', '--disable-hot-restart', '--concurrency', '1'], { stdio: ['ignore', 'ignore', 'inherit'] });
killers.push(() => big.kill('SIGKILL'));
const admin = (path: string) =>
  new Promise<string>((resolve) => {
    const req = request({ socketPath: join(runtime, 'admin.sock'), path }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c.toString()));
      res.on('end', () => resolve(b));
    });
    req.on('error', () => resolve(''));
    req.end();
  });
let accepted = 0;
for (;;) {
  const stats = await admin(`/stats?filter=${encodeURIComponent('^(cluster_manager.active_clusters|listener_manager.total_listeners_active)$')}`);
  if (performance.now() - envoyStart > 60_000) throw new Error(`Envoy did not take the resources in 60 s; last stats: ${stats}`);
  const clusters = Number(/active_clusters: (\d+)/.exec(stats)?.[1] ?? 0);
  const listeners = Number(/total_listeners_active: (\d+)/.exec(stats)?.[1] ?? 0);
  if (clusters >= 1000 && listeners >= 1000) {
    accepted = performance.now() - envoyStart;
    break;
  }
  await sleep(20);
}
big.kill('SIGKILL');

process.stderr.write('steady state\n');
// ── 3. Calls per minute at steady state ─────────────────────────────────────────────────────────────────────
process.env['AWS_ENDPOINT_URL_SERVICEDISCOVERY'] = moto.url;
Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
const steady: string[] = [];
for (const count of [1, 10, 100]) {
  const name = `steady${count}.local`;
  await moto.createNamespace(name);
  const nsId = (await moto.client.send(new ListNamespacesCommand({}))).Namespaces?.find((n) => n.Name === name)?.Id;
  for (let s = 0; s < count; s++) {
    const id = (await moto.client.send(new CreateServiceCommand({ Name: `s${s}`, NamespaceId: nsId }))).Service?.Id;
    await moto.client.send(new RegisterInstanceCommand({ ServiceId: id, InstanceId: 'i', Attributes: attrs(`10.1.${s >> 8}.${s & 255}`) }));
  }
  const cm = await createCloudMapClient({ region: 'us-east-1' });
  const ref = await cm.findNamespace(name);
  if (ref === null) throw new Error('namespace');
  const d = new Discovery({ cloudMap: cm, namespace: ref, pollIntervalMs: 1000, logger: silent, onChange: async () => undefined });
  await d.initial();
  const before = new Map(cm.calls);
  const stop = new AbortController();
  const running = d.run(stop.signal);
  const windowMs = 30_000;
  await sleep(windowMs);
  stop.abort();
  await running;
  const perMinute = [...cm.calls]
    .map(([op, n]) => [op, ((n - (before.get(op) ?? 0)) * 60_000) / windowMs] as const)
    .filter(([, n]) => n > 0);
  const total = perMinute.reduce((s, [, n]) => s + n, 0);
  steady.push(`${count} service(s): ${total.toFixed(0)} calls/min (${perMinute.map(([op, n]) => `${op} ${n.toFixed(0)}`).join(', ')})`);
  cm.close();
}

process.stdout.write(
  [
    `propagation (register → first request served by the new endpoint, poll interval 1000 ms, 20 changes): p50 ${pct(propagation, 50).toFixed(0)} ms, p99 ${pct(propagation, 99).toFixed(0)} ms, max ${Math.max(...propagation).toFixed(0)} ms`,
    `render 1,000 services × 10 endpoints: ${(t1 - t0).toFixed(0)} ms; write the 2 files: ${(t2 - t1).toFixed(0)} ms; render + write ${(t2 - t0).toFixed(0)} ms`,
    `Envoy start to 1,000 clusters and 1,000 listeners active from those files: ${accepted.toFixed(0)} ms`,
    'Cloud Map calls per minute at steady state (poll interval 1000 ms, nothing changing):',
    ...steady.map((l) => `  ${l}`),
    '',
  ].join('\n'),
);
await moto.stop();
process.exit(0);
