/**
 * `npm run demo`: ECS Service Connect on this machine, with no AWS account and no Docker.
 *
 * Starts moto as Cloud Map, two tasks of a `web` service (an app answering "container N" behind an agent and Envoy
 * each) and a client task (an agent and Envoy). The client's agent writes `web` into the client's hosts file;
 * curl, resolving through that file, calls http://web/ at 127.255.0.1:80, and the two containers answer in turn.
 * Then it shows the metrics for those requests and stops everything cleanly.
 *   npm run demo            run, show, stop
 *   npm run demo -- --keep  leave the mesh running and print how to call it (Ctrl-C stops it)
 * Tasks share this machine's network, so each has its own loopback address (127.0.1.N) and the web tasks their own
 * virtual-IP ranges; on ECS every task has a network of its own.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { createServer as netServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateHttpNamespaceCommand, ServiceDiscoveryClient } from '@aws-sdk/client-servicediscovery';

const keep = process.argv.includes('--keep');
const root = new URL('..', import.meta.url).pathname;
const say = (s = '') => process.stdout.write(`${s}\n`);
const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);

// Always build: a second, and never a stale bundle.
if (spawnSync(process.execPath, [join(root, 'scripts/build.ts')], { stdio: ['ignore', 'ignore', 'inherit'] }).status !== 0) throw new Error('build failed');
const envoy = readFileSync(join(root, '.venv/envoy-binary'), 'utf8').trim();
const dir = mkdtempSync(join(tmpdir(), 'sc-demo-'));
const children: ChildProcess[] = [];
const servers: Server[] = [];

async function freePort(): Promise<number> {
  const s = netServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  s.close();
  return port;
}

function get(target: { socketPath: string } | { host: string; port: number }, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...target, path, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function stopAll(): Promise<void> {
  for (const c of children.reverse()) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? once(c, 'exit') : undefined)));
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
}

process.on('uncaughtException', (err) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  void stopAll().then(() => process.exit(1));
});
process.on('unhandledRejection', (err) => {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  void stopAll().then(() => process.exit(1));
});

// Cloud Map: moto's server mode.
const motoPort = await freePort();
const moto = spawn(join(root, '.venv/bin/moto_server'), ['-H', '127.0.0.1', '-p', String(motoPort)], { stdio: 'ignore' });
children.push(moto);
const cloudMapUrl = `http://127.0.0.1:${motoPort}`;
await until('moto', async () => (await get({ host: '127.0.0.1', port: motoPort }, '/moto-api/')).status === 200);
const aws = { AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'demo', AWS_SECRET_ACCESS_KEY: 'demo', AWS_ENDPOINT_URL_SERVICEDISCOVERY: cloudMapUrl };
const sd = new ServiceDiscoveryClient({ region: aws.AWS_REGION, endpoint: cloudMapUrl, credentials: { accessKeyId: 'demo', secretAccessKey: 'demo' } });
await sd.send(new CreateHttpNamespaceCommand({ Name: 'demo.local' }));
sd.destroy();
say(`Cloud Map (moto) at ${cloudMapUrl}, namespace demo.local`);

function agent(name: string, env: Record<string, string>): { socket: string; hosts: string; envoyAdmin: string; process: ChildProcess } {
  const taskDir = join(dir, name);
  const hosts = join(taskDir, 'hosts');
  spawnSync('mkdir', ['-p', taskDir]);
  writeFileSync(hosts, '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n');
  const socket = join(taskDir, 'agent.sock');
  const child = spawn(process.execPath, [join(root, 'dist/agent.js')], {
    env: {
      PATH: process.env['PATH'] ?? '',
      ...aws,
      ENVOY_BINARY: envoy,
      ENVOY_LOG_LEVEL: 'error',
      APPNET_AGENT_LOG_LEVEL: 'warn',
      APPNET_AGENT_ADMIN_MODE: 'uds',
      APPNET_AGENT_ADMIN_UDS_PATH: socket,
      APPNET_RUNTIME_DIR: join(taskDir, 'runtime'),
      ENVOY_ADMIN_UDS_PATH: join(taskDir, 'envoy-admin.sock'),
      ENVOY_ADMIN_ACCESS_LOG_FILE: join(taskDir, 'envoy-admin-access.log'),
      APPNET_HOSTS_FILE: hosts,
      APPNET_STATS_SNAPSHOT_INTERVAL_S: '5',
      ENVOY_STATS_FLUSH_INTERVAL: '1s',
      ...env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  children.push(child);
  return { socket, hosts, envoyAdmin: join(taskDir, 'envoy-admin.sock'), process: child };
}

const webConfig = JSON.stringify({
  namespace: 'demo.local',
  services: [{ portName: 'http', discoveryName: 'web', clientAliases: [{ port: 80, dnsName: 'web' }] }],
  portMappings: [{ name: 'http', containerPort: 8080, appProtocol: 'http' }],
  serviceName: 'web',
  clusterName: 'demo',
});
const webs: Array<{ socket: string }> = [];
for (const n of [1, 2]) {
  const ip = `127.0.1.${n}`;
  const app = createServer((_req, res) => res.end(`container ${n}\n`));
  app.listen(8080, ip);
  await once(app, 'listening');
  servers.push(app);
  webs.push(agent(`web-${n}`, { APPNET_SERVICE_CONNECT_CONFIG: webConfig, APPNET_TASK_ID: `web-${n}`, APPNET_TASK_IPV4: ip, APPNET_CONTAINER_IP_MAPPING: JSON.stringify({ app: ip }), APPNET_VIP_CIDR: `127.254.${n}.0/24` }));
  say(`task web-${n}: app "container ${n}" on ${ip}:8080, agent + Envoy, registered in Cloud Map at ${ip}:15000`);
}
const client = agent('client', {
  APPNET_SERVICE_CONNECT_CONFIG: JSON.stringify({ namespace: 'demo.local', services: [], portMappings: [] }),
  APPNET_TASK_ID: 'client-1',
  ENVOY_CONCURRENCY: '1',
});
say('task client: agent + Envoy (client only: it calls the namespace\'s services)');

const healthy = (socket: string) => until(`${socket} HEALTHY`, async () => JSON.parse((await get({ socketPath: socket }, '/status')).body).healthStatus === 'HEALTHY');
await Promise.all([...webs.map((w) => healthy(w.socket)), healthy(client.socket)]);
const vip = await until('web in the client hosts file', async () => /^(\S+)\tweb\b/m.exec(readFileSync(client.hosts, 'utf8'))?.[1]);
await until('both web endpoints', async () => (await get({ socketPath: client.envoyAdmin }, '/stats?filter=scout_http_web.membership_total')).body.includes('membership_total: 2'));

say();
say(`$ cat ${client.hosts}   ${dim('# the client task\'s /etc/hosts')}`);
process.stdout.write(readFileSync(client.hosts, 'utf8'));
for (let i = 0; i < 4; i++) {
  say();
  say(`$ curl -v http://web/   ${dim(`# resolving web through the client's hosts file (--resolve web:80:${vip})`)}`);
  // Asynchronously: the apps answering curl run in this process.
  const curl = await new Promise<{ stdout: string; stderr: string }>((resolve) =>
    execFile('curl', ['-sS', '-v', '--resolve', `web:80:${vip}`, 'http://web/'], { encoding: 'utf8' }, (_err, stdout, stderr) => resolve({ stdout, stderr })),
  );
  const lines = `${curl.stderr}${curl.stdout}`.split('\n').filter((l) => /^(\*\s+(Trying|Connected)|> GET|> Host|< HTTP|< server|< x-envoy-upstream-service-time)|^container/.test(l));
  for (const l of lines) say(l.replace(/\r$/, ''));
}

await sleep(1500); // Envoy's stats flush (1 s here) puts the latency histograms in
say();
say(`$ agent /stats/prometheus?usedonly&filter=metrics_extension   ${dim('# the client task: egress metrics')}`);
const clientMetrics = (await get({ socketPath: client.socket }, '/stats/prometheus?usedonly&filter=metrics_extension')).body;
say(clientMetrics.split('\n').filter((l) => /^(RequestCountPerTarget|HTTPCode_Target_2XX_Count|TargetResponseTime_count)/.test(l)).join('\n'));
say();
say(`$ agent /stats/prometheus?usedonly&filter=metrics_extension&delta   ${dim('# task web-1: ingress metrics, the ECS agent\'s request')}`);
// The delta is the change over the last completed snapshot interval: wait for the one holding the requests.
const webMetrics = await until('a delta with the requests', async () => {
  const body = (await get({ socketPath: webs[0]?.socket ?? '' }, '/stats/prometheus?usedonly&filter=metrics_extension&delta')).body;
  return /^RequestCount\{[^}]*\} [1-9]/m.test(body) ? body : undefined;
}, 15_000);
say(webMetrics.split('\n').filter((l) => /^(RequestCount|NewConnectionCount|TargetResponseTime_count)\{/.test(l)).join('\n'));

if (keep) {
  say();
  say('The mesh keeps running. Try:');
  say(`  curl -v --resolve web:80:${vip} http://web/`);
  say(`  curl --unix-socket ${client.socket} http://localhost/status`);
  say(`  curl --unix-socket ${webs[0]?.socket} 'http://localhost/stats/prometheus?usedonly&filter=metrics_extension&delta'`);
  say(`  cat ${client.hosts}`);
  say('Ctrl-C stops it.');
  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
}
say();
say('Stopping: each agent deregisters from Cloud Map, drains, stops Envoy and removes its hosts block.');
const agents = children.filter((c) => c !== moto);
for (const c of agents) c.kill('SIGTERM');
const codes = await Promise.all(agents.map(async (c) => (c.exitCode !== null ? c.exitCode : ((await once(c, 'exit')) as [number | null])[0])));
moto.kill('SIGTERM');
await once(moto, 'exit');
for (const s of servers) s.close();
rmSync(dir, { recursive: true, force: true });
say(`Agents exited with ${codes.join(', ')}.`);
process.exit(codes.every((c) => c === 0) ? 0 : 1);
