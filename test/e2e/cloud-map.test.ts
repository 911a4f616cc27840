/**
 * Cloud Map mode end to end, on this machine: moto as Cloud Map (real AWS protocol, real SDK), the built agent with
 * the real Envoy for every task, small apps on loopback. Tasks share the machine's network namespace, so each has
 * its own loopback address (127.0.1.N) and the server tasks their own VIP range; the client has the default one
 * (127.255.0.0/16), so `web` is at 127.255.0.1 as on ECS. The client's Envoy runs one worker, so round robin
 * alternates strictly.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { DeregisterInstanceCommand, ListServicesCommand, RegisterInstanceCommand } from '@aws-sdk/client-servicediscovery';
import { isAlive, startAgent, tempDir, waitHealthy, type AgentProcess } from '../helpers/agent.ts';
import { startApp, type App } from '../helpers/apps.ts';
import { repoRoot } from '../helpers/envoy.ts';
import { httpRequest } from '../helpers/http.ts';
import { startEnvoyAndMoto, type Moto } from '../helpers/moto.ts';
import { promtoolCheck } from '../helpers/promtool.ts';
import { suiteCleanups } from '../helpers/suite-cleanups.ts';
import { waitFor } from '../helpers/wait.ts';

const NAMESPACE = 'demo.local';
const { ctx, run: runCleanups } = suiteCleanups();

let moto: Moto;
let envoy: string;
const webs = new Map<number, { agent: AgentProcess; app: App }>();
let client: AgentProcess;
let clientHosts: string;

function webConfig(): string {
  return JSON.stringify({
    namespace: NAMESPACE,
    services: [{ portName: 'http', discoveryName: 'web', clientAliases: [{ port: 80, dnsName: 'web' }] }],
    portMappings: [{ name: 'http', containerPort: 8080, appProtocol: 'http' }],
    serviceName: 'web-service',
    clusterName: 'local',
  });
}

function baseEnv(): Record<string, string> {
  return { ...moto.env, ENVOY_BINARY: envoy, APPNET_CLOUD_MAP_POLL_INTERVAL_MS: '500' };
}

async function startWeb(n: number): Promise<{ agent: AgentProcess; app: App }> {
  const ip = `127.0.1.${n}`;
  const app = await startApp(`container ${n}`, ip, 8080);
  ctx.after(() => app.close());
  const dir = tempDir(ctx, `web${n}-`);
  writeFileSync(join(dir, 'hosts'), '127.0.0.1 localhost\n');
  const agent = startAgent(ctx, {
    dir,
    env: {
      ...baseEnv(),
      APPNET_SERVICE_CONNECT_CONFIG: webConfig(),
      APPNET_TASK_IPV4: ip,
      APPNET_TASK_ID: `web-${n}`,
      APPNET_CONTAINER_IP_MAPPING: JSON.stringify({ app: ip }),
      APPNET_HOSTS_FILE: join(dir, 'hosts'),
      APPNET_VIP_CIDR: `127.254.${n}.0/24`,
      APPNET_STATS_SNAPSHOT_INTERVAL_S: '1',
      ENVOY_STATS_FLUSH_INTERVAL: '1s',
    },
  });
  await waitHealthy(agent, 20_000);
  const web = { agent, app };
  webs.set(n, web);
  return web;
}

/** The client's view: resolve names through its hosts file, as the app in the task would. */
function resolveFromHosts(name: string): string | null {
  for (const line of readFileSync(clientHosts, 'utf8').split('\n')) {
    const [ip, ...names] = line.split(/\s+/);
    if (ip && !ip.startsWith('#') && names.includes(name)) return ip;
  }
  return null;
}

const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });

function callWeb(path = '/'): Promise<{ status: number; body: string; headers: Record<string, unknown>; remote: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: 'web',
        port: 80,
        path,
        agent: keepAlive,
        timeout: 20_000,
        lookup: (hostname, _opts, cb) => {
          const ip = resolveFromHosts(hostname);
          if (ip === null) (cb as (e: Error) => void)(Object.assign(new Error(`${hostname} is not in ${clientHosts}`), { code: 'ENOTFOUND' }));
          else (cb as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address: ip, family: 4 }]);
        },
      },
      (res) => {
        const remote = `${res.socket.remoteAddress}:${res.socket.remotePort}`;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, remote }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer')));
    req.on('error', reject);
    req.end();
  });
}

async function clientStat(pattern: RegExp): Promise<number | null> {
  const body = (await client.request('/stats/prometheus')).body;
  const line = body.split('\n').find((l) => pattern.test(l));
  return line === undefined ? null : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('Cloud Map mode with moto and real Envoy', { concurrency: false, timeout: 240_000 }, () => {
  before(async () => {
    ({ envoy, moto } = await startEnvoyAndMoto(ctx, [NAMESPACE]));
    await Promise.all([startWeb(1), startWeb(2)]);
    const dir = tempDir(ctx, 'client-');
    clientHosts = join(dir, 'hosts');
    writeFileSync(clientHosts, '127.0.0.1\tlocalhost\n# a line the user wrote\n10.1.2.3 db.internal\n');
    client = startAgent(ctx, {
      dir,
      env: {
        ...baseEnv(),
        APPNET_SERVICE_CONNECT_CONFIG: JSON.stringify({ namespace: NAMESPACE, services: [], portMappings: [] }),
        APPNET_TASK_ID: 'client-1',
        APPNET_HOSTS_FILE: clientHosts,
        ENVOY_CONCURRENCY: '1',
      },
    });
    await waitHealthy(client, 20_000);
  });

  after(async () => {
    keepAlive.destroy();
    await runCleanups();
  });

  test('round robin: the client resolves web through its hosts file to 127.255.0.1:80, and the two containers answer in turn', async () => {
    await waitFor('web in the hosts file', async () => resolveFromHosts('web') === '127.255.0.1');
    const hosts = readFileSync(clientHosts, 'utf8');
    assert.ok(hosts.startsWith('127.0.0.1\tlocalhost\n# a line the user wrote\n10.1.2.3 db.internal\n'), 'lines outside the block are kept byte for byte');
    assert.match(hosts, /^127\.255\.0\.1\tweb web\.demo\.local$/m);
    await waitFor('both endpoints', async () => (await clientStat(/^envoy_cluster_membership_total\{envoy_cluster_name="scout_http_web"\}/)) === 2);
    const bodies: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await callWeb();
      assert.equal(res.status, 200);
      assert.equal(res.remote, '127.255.0.1:80');
      assert.equal(res.headers['server'], 'envoy');
      assert.ok(res.headers['x-envoy-upstream-service-time'] !== undefined);
      bodies.push(res.body.trim());
    }
    for (let i = 1; i < bodies.length; i++) assert.notEqual(bodies[i], bodies[i - 1], `responses alternate: ${bodies.join(', ')}`);
    assert.deepEqual([...new Set(bodies)].sort(), ['container 1', 'container 2']);
  });

  test("metrics: the server task's delta shows ingress RequestCount and TargetResponseTime for the requests, valid for promtool", async () => {
    const web1 = webs.get(1);
    assert.ok(web1);
    for (let i = 0; i < 4; i++) await callWeb();
    // Counters move in the interval of the requests; histograms at Envoy's next stats flush (1 s here).
    const delta = () => web1.agent.request('/stats/prometheus?usedonly&filter=metrics_extension&delta').then((r) => r.body);
    const requests = await waitFor('ingress RequestCount in a delta', async () => {
      const b = await delta();
      return /^RequestCount\{ClusterName="local",Direction="ingress",DiscoveryName="web",ServiceName="web-service"\} [1-9]/m.test(b) ? b : undefined;
    }, { timeoutMs: 20_000 });
    assert.equal(promtoolCheck(requests).parseError, null);
    const latency = await waitFor('ingress TargetResponseTime in a delta', async () => {
      const b = await delta();
      return /^TargetResponseTime_count\{ClusterName="local",Direction="ingress",DiscoveryName="web",ServiceName="web-service"\} [1-9]/m.test(b) ? b : undefined;
    }, { timeoutMs: 20_000 });
    assert.match(latency, /^# TYPE TargetResponseTime histogram$/m);
    assert.equal(promtoolCheck(latency).parseError, null);
    const clientSide = (await client.request('/stats/prometheus?usedonly&filter=metrics_extension')).body;
    assert.match(clientSide, /^HTTPCode_Target_2XX_Count\{Direction="egress",TargetDiscoveryName="web"\} [1-9]/m);
  });

  test('an app that answers 503 once: the client still gets 200 (retried on another host)', async () => {
    const res = await callWeb('/flaky');
    assert.equal(res.status, 200);
    assert.match(res.body, /^container \d$/m);
  });

  test('TCP: an alias with no app protocol works end to end', async () => {
    const ip = '127.0.1.9';
    const echo = spawn(process.execPath, [`${repoRoot}/test/fixtures/tcp-echo.ts`, ip, '5432', 'db-1'], { stdio: ['ignore', 'pipe', 'inherit'] });
    ctx.after(() => echo.kill('SIGKILL'));
    await once(echo.stdout as NodeJS.ReadableStream, 'data');
    const dir = tempDir(ctx, 'db-');
    const db = startAgent(ctx, {
      dir,
      env: {
        ...baseEnv(),
        APPNET_SERVICE_CONNECT_CONFIG: JSON.stringify({
          namespace: NAMESPACE,
          services: [{ portName: 'pg', discoveryName: 'db', clientAliases: [{ port: 5432, dnsName: 'db' }] }],
          portMappings: [{ name: 'pg', containerPort: 5432 }],
        }),
        APPNET_TASK_IPV4: ip,
        APPNET_TASK_ID: 'db-1',
        APPNET_CONTAINER_IP_MAPPING: JSON.stringify({ app: ip }),
        APPNET_HOSTS_FILE: join(dir, 'hosts'),
        APPNET_VIP_CIDR: '127.254.9.0/24',
      },
    });
    await waitHealthy(db, 20_000);
    const vip = await waitFor('db in the client hosts file', async () => resolveFromHosts('db'));
    await waitFor('the db listener on the client', async () => (await clientStat(/^envoy_cluster_membership_total\{envoy_cluster_name="scout_tcp_db"\}/)) === 1);
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = connect({ host: vip, port: 5432 }, () => sock.write('ping'));
      let data = '';
      sock.setEncoding('utf8');
      sock.on('data', (c: string) => {
        data += c;
        if (data === 'db-1:ping') {
          sock.end();
          resolve(data);
        }
      });
      sock.on('error', reject);
      setTimeout(() => reject(new Error(`no echo; got ${JSON.stringify(data)}`)), 5000).unref();
    });
    assert.equal(reply, 'db-1:ping');
  });

  test('scale out: a third web task registers and gets traffic within seconds; the client Envoy is not restarted', async () => {
    const pidBefore = (await client.status())['envoyPid'];
    const started = Date.now();
    await startWeb(3);
    await waitFor('container 3 to answer through the client', async () => {
      for (let i = 0; i < 3; i++) if ((await callWeb()).body.trim() === 'container 3') return true;
      return false;
    }, { timeoutMs: 15_000 });
    assert.equal((await client.status())['envoyPid'], pidBefore, 'Envoy applied the change without a restart');
    assert.ok(Date.now() - started < 30_000);
  });

  test('scale in: a stopping task deregisters, finishes its in-flight request, and gets no more traffic', async () => {
    const web3 = webs.get(3);
    assert.ok(web3);
    const arrived = web3.app.nextRequest();
    const inFlight = httpRequest({ host: '127.0.1.3', port: 15000 }, '/slow?ms=2000', { timeoutMs: 20_000 });
    await arrived;
    web3.agent.child.kill('SIGTERM');
    const res = await inFlight;
    assert.equal(res.status, 200, 'the in-flight request finished');
    assert.equal(res.body, 'container 3\n');
    assert.equal((await web3.agent.exited).code, 0);
    await waitFor('the client to stop sending to container 3', async () => {
      for (let i = 0; i < 6; i++) if ((await callWeb()).body.trim() === 'container 3') return false;
      return true;
    }, { timeoutMs: 15_000 });
    const services = await moto.client.send(new ListServicesCommand({}));
    assert.ok(services.Services?.some((s) => s.Name === 'web'));
    webs.delete(3);
  });

  test('Cloud Map outage: traffic keeps flowing to the last known endpoints, and changes are picked up when it is back', async () => {
    const failuresBefore = client.logs.filter((r) => r['msg'] === 'Cloud Map call failed; keeping the last known endpoints and backing off').length;
    moto.process.kill('SIGSTOP');
    try {
      await client.waitForLog('a failed Cloud Map call', () => client.logs.filter((r) => r['msg'] === 'Cloud Map call failed; keeping the last known endpoints and backing off').length > failuresBefore, 20_000);
      const bodies = new Set<string>();
      for (let i = 0; i < 6; i++) {
        const res = await callWeb();
        assert.equal(res.status, 200);
        bodies.add(res.body.trim());
      }
      assert.deepEqual([...bodies].sort(), ['container 1', 'container 2'], 'both endpoints still in use');
    } finally {
      moto.process.kill('SIGCONT');
    }
    await client.waitForLog('Cloud Map to answer again', (r) => r['msg'] === 'Cloud Map answers again', 40_000);
    // A change made after the outage reaches the client: an extra instance for web (an address of its own: Envoy
    // merges endpoints with the same address).
    const serviceId = (await moto.client.send(new ListServicesCommand({}))).Services?.find((s) => s.Name === 'web')?.Id;
    await moto.client.send(new RegisterInstanceCommand({ ServiceId: serviceId, InstanceId: 'extra', Attributes: { AWS_INSTANCE_IPV4: '127.0.1.1', AWS_INSTANCE_PORT: '15999', SC_APP_PROTOCOL: 'http' } }));
    await waitFor('three endpoints', async () => (await clientStat(/^envoy_cluster_membership_total\{envoy_cluster_name="scout_http_web"\}/)) === 3, { timeoutMs: 40_000 });
    await moto.client.send(new DeregisterInstanceCommand({ ServiceId: serviceId, InstanceId: 'extra' }));
    await waitFor('two endpoints again', async () => (await clientStat(/^envoy_cluster_membership_total\{envoy_cluster_name="scout_http_web"\}/)) === 2, { timeoutMs: 40_000 });
  });

  test('an app that is down: its endpoint is ejected and the client keeps getting 200', async () => {
    const web2 = webs.get(2);
    assert.ok(web2);
    await web2.app.close();
    for (let i = 0; i < 10; i++) {
      const res = await callWeb();
      assert.equal(res.status, 200, `request ${i}: ${res.body}`);
      assert.equal(res.body, 'container 1\n');
    }
    assert.equal(await clientStat(/^envoy_cluster_outlier_detection_ejections_active\{envoy_cluster_name="scout_http_web"\}/), 1, 'the failing endpoint is ejected');
    assert.equal(isAlive(Number((await client.status())['envoyPid'])), true);
  });

  test('on a clean stop the client removes its hosts block and keeps every other line', async () => {
    keepAlive.destroy(); // the app's connections go before the sidecar stops, as ECS orders it
    client.child.kill('SIGTERM');
    assert.equal((await client.exited).code, 0);
    assert.equal(readFileSync(clientHosts, 'utf8'), '127.0.0.1\tlocalhost\n# a line the user wrote\n10.1.2.3 db.internal\n');
  });
});
