/**
 * Cloud Map mode against hostile data, failures, and every way a task ends (issue 9), with moto as Cloud Map (real
 * SDK, real protocol), the built agent and the real Envoy. One moto serves every case; each namespace is used by one
 * group of cases. Addresses of their own: tasks on 127.0.2.x, VIP ranges 127.252.x and 127.253.x (the other Cloud
 * Map test file uses 127.0.1.x, 127.254.x and 127.255.x and may run at the same time).
 *
 * Cloud Map that hangs on one operation is produced by a small HTTP proxy in front of moto (test/helpers/moto.ts):
 * moto cannot hang one call while answering the others.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import {
  CreateHttpNamespaceCommand,
  CreateServiceCommand,
  DeleteNamespaceCommand,
  DeleteServiceCommand,
  DeregisterInstanceCommand,
  DiscoverInstancesCommand,
  ListInstancesCommand,
  ListNamespacesCommand,
  ListServicesCommand,
  RegisterInstanceCommand,
} from '@aws-sdk/client-servicediscovery';
import { startAgent, tempDir, waitHealthy, type AgentProcess, type Cleanup } from '../helpers/agent.ts';
import { findEnvoy } from '../helpers/envoy.ts';
import { startCloudMapProxy, startMoto, type Moto } from '../helpers/moto.ts';
import { waitFor } from '../helpers/wait.ts';
import type { Logger } from '../../agent/logger.ts';

const cleanups: Array<() => unknown> = [];
const ctx: Cleanup = { after: (fn) => void cleanups.push(fn as () => unknown) };
let moto: Moto;
let envoy: string;

type Attrs = Record<string, string>;
const httpAttrs = (ip: string, alias: string, port = '8080'): Attrs => ({ AWS_INSTANCE_IPV4: ip, AWS_INSTANCE_PORT: '15000', SC_APP_PROTOCOL: 'http', SC_CLIENT_ALIAS_DNS_NAME: alias, SC_CLIENT_ALIAS_PORT: port });

async function namespaceId(name: string): Promise<string> {
  const found = (await moto.client.send(new ListNamespacesCommand({}))).Namespaces?.find((n) => n.Name === name)?.Id;
  if (found === undefined) throw new Error(`no namespace ${name}`);
  return found;
}
async function createService(namespace: string, name: string): Promise<string> {
  const id = (await moto.client.send(new CreateServiceCommand({ Name: name, NamespaceId: await namespaceId(namespace) }))).Service?.Id;
  if (id === undefined) throw new Error('no service id');
  return id;
}
async function register(serviceId: string, instanceId: string, attributes: Attrs): Promise<void> {
  await moto.client.send(new RegisterInstanceCommand({ ServiceId: serviceId, InstanceId: instanceId, Attributes: attributes }));
}
async function discover(namespace: string, service: string): Promise<string[]> {
  const res = await moto.client.send(new DiscoverInstancesCommand({ NamespaceName: namespace, ServiceName: service, MaxResults: 1000 })).catch(() => null);
  return (res?.Instances ?? []).map((i) => i.InstanceId ?? '');
}
/** Every instance with this id in any service of any namespace: what "no registration of this task" checks. */
async function registrationsOf(instanceId: string): Promise<string[]> {
  const found: string[] = [];
  for (const s of (await moto.client.send(new ListServicesCommand({}))).Services ?? []) {
    const list = await moto.client.send(new ListInstancesCommand({ ServiceId: s.Id })).catch(() => null);
    for (const i of list?.Instances ?? []) if (i.Id === instanceId || i.Attributes?.['SC_TASK_ID'] === instanceId) found.push(`${s.Name}/${i.Id}`);
  }
  return found;
}

function hostsBlock(path: string): Map<string, string> {
  const names = new Map<string, string>();
  const text = readFileSync(path, 'utf8');
  const begin = text.indexOf('# BEGIN ecs-service-connect-agent');
  const end = text.indexOf('# END ecs-service-connect-agent');
  if (begin < 0 || end < 0) return names;
  for (const line of text.slice(begin, end).split('\n').slice(1)) {
    if (line === '') continue;
    assert.match(line, /^127\.25[23]\.\d+\.\d+\t[a-z0-9_.-]+( [a-z0-9_.-]+)*$/, `a hosts line the agent wrote: ${JSON.stringify(line)}`);
    const [ip, ...rest] = line.split(/[\t ]/);
    for (const n of rest) names.set(n, ip as string);
  }
  return names;
}

async function stat(agent: AgentProcess, pattern: RegExp): Promise<number | null> {
  const body = (await agent.request('/stats/prometheus')).body;
  const line = body.split('\n').find((l) => pattern.test(l));
  return line === undefined ? null : Number(line.slice(line.lastIndexOf(' ') + 1));
}
const membership = (agent: AgentProcess, cluster: string) => stat(agent, new RegExp(`^envoy_cluster_membership_total\\{envoy_cluster_name="${cluster}"\\}`));
async function metric(agent: AgentProcess, line: RegExp): Promise<number | null> {
  const body = (await agent.request('/metrics')).body;
  const found = body.split('\n').find((l) => line.test(l));
  return found === undefined ? null : Number(found.slice(found.lastIndexOf(' ') + 1));
}
const skipWarnings = (agent: AgentProcess) => agent.logs.filter((r) => r['msg'] === 'skipping a Cloud Map record that breaks a rule');

function clientAgent(namespace: string, taskId: string, extra: Record<string, string> = {}, dir = tempDir(ctx, `${taskId}-`)): { agent: AgentProcess; hosts: string; dir: string } {
  const hosts = join(dir, 'hosts');
  writeFileSync(hosts, '127.0.0.1 localhost\n');
  const agent = startAgent(ctx, {
    dir,
    env: {
      ...moto.env,
      ENVOY_BINARY: envoy,
      APPNET_CLOUD_MAP_POLL_INTERVAL_MS: '300',
      APPNET_SERVICE_CONNECT_CONFIG: JSON.stringify({ namespace, services: [], portMappings: [] }),
      APPNET_TASK_ID: taskId,
      APPNET_HOSTS_FILE: hosts,
      ...extra,
    },
  });
  return { agent, hosts, dir };
}

function serverEnv(namespace: string, taskId: string, ip: string, dir: string, services: string[] = ['exitsvc']): Record<string, string> {
  writeFileSync(join(dir, 'hosts'), '127.0.0.1 localhost\n');
  return {
    ...moto.env,
    ENVOY_BINARY: envoy,
    APPNET_CLOUD_MAP_POLL_INTERVAL_MS: '300',
    APPNET_SERVICE_CONNECT_CONFIG: JSON.stringify({
      namespace,
      services: services.map((name, i) => ({ portName: `p${i}`, discoveryName: name, clientAliases: [{ port: 8080, dnsName: name }] })),
      portMappings: services.map((_, i) => ({ name: `p${i}`, containerPort: 9000 + i, appProtocol: 'http' })),
    }),
    APPNET_TASK_ID: taskId,
    APPNET_TASK_IPV4: ip,
    APPNET_HOSTS_FILE: join(dir, 'hosts'),
    APPNET_VIP_CIDR: '127.252.9.0/24',
  };
}

before(async () => {
  const found = findEnvoy();
  if (found === null) throw new Error('Envoy not found: run npm run setup');
  envoy = found;
  const m = await startMoto(null);
  if (m === null) throw new Error('moto not found: run npm run setup');
  moto = m;
  ctx.after(() => moto.stop());
  for (const ns of ['trust.local', 'vips.local', 'own.local', 'exits.local', 'race.local']) await moto.client.send(new CreateHttpNamespaceCommand({ Name: ns }));
});

after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

describe('records other principals registered are untrusted input', { concurrency: false, timeout: 180_000 }, () => {
  let client: { agent: AgentProcess; hosts: string };
  let good: string;
  let evil: string;
  const bad: Array<[string, Attrs, string]> = [
    ['e1-spaces', httpAttrs('127.0.2.11', 'evil extra-name'), 'SC_CLIENT_ALIAS_DNS_NAME'],
    ['e2-newline', httpAttrs('127.0.2.12', 'evil\n127.0.0.1 bank'), 'SC_CLIENT_ALIAS_DNS_NAME'],
    ['e3-port', { ...httpAttrs('127.0.2.13', 'evil'), AWS_INSTANCE_PORT: '70000' }, 'AWS_INSTANCE_PORT'],
    ['e4-timeout', { ...httpAttrs('127.0.2.14', 'evil'), SC_PER_REQUEST_TIMEOUT_S: '99999999999999999999' }, 'SC_PER_REQUEST_TIMEOUT_S'],
    ['e5-huge', { ...httpAttrs('127.0.2.15', 'evil'), SC_APP_PROTOCOL: 'h'.repeat(200_000) }, 'SC_APP_PROTOCOL'],
  ];

  before(async () => {
    good = await createService('trust.local', 'good');
    await register(good, 'g1', httpAttrs('127.0.2.1', 'good'));
    evil = await createService('trust.local', 'evil');
    for (const [id, attrs] of bad) await register(evil, id, attrs);
    await register(evil, 'e6-fine', httpAttrs('127.0.2.16', 'evil'));
    await register(await createService('trust.local', 'Bad Name'), 'b1', httpAttrs('127.0.2.17', 'badname'));
    client = clientAgent('trust.local', 'trust-client', { APPNET_VIP_CIDR: '127.253.0.0/24' });
    await waitHealthy(client.agent, 30_000);
  });

  test('hostile attributes (spaces, a newline, out-of-range numbers, a 200 kB value) never reach the hosts file or Envoy: each bad instance is skipped with one warning naming service, instance, attribute and rule, and counted', async () => {
    await waitFor('good and evil in the hosts file', async () => hostsBlock(client.hosts).has('evil') && hostsBlock(client.hosts).has('good'));
    const names = hostsBlock(client.hosts);
    assert.deepEqual([...names.keys()].sort(), ['evil', 'evil.trust.local', 'good', 'good.trust.local']);
    assert.ok(!readFileSync(client.hosts, 'utf8').includes('bank'), 'a newline in an attribute adds no line');
    assert.equal(await membership(client.agent, 'scout_http_evil'), 1, 'only the valid instance of evil is an endpoint');
    assert.equal(await membership(client.agent, 'scout_http_good'), 1);
    for (const [id, , attribute] of bad) {
      const lines = skipWarnings(client.agent).filter((r) => r['instance'] === id);
      assert.equal(lines.length, 1, `one warning for ${id}: ${JSON.stringify(lines)}`);
      assert.equal(lines[0]?.['service'], 'evil');
      assert.equal(lines[0]?.['attribute'], attribute);
      assert.match(String(lines[0]?.['rule']), /^must /);
      assert.ok(String(lines[0]?.['value']).length <= 80, 'the value is cut for the log');
    }
    const badName = skipWarnings(client.agent).filter((r) => r['attribute'] === 'ServiceName');
    assert.equal(badName.length, 1);
    assert.equal(badName[0]?.['service'], 'Bad Name');
    assert.equal(await metric(client.agent, /^appnet_agent_cloud_map_skipped_records /), 6);
    assert.equal(await metric(client.agent, /^appnet_agent_cloud_map_skipped_records_total\{attribute="SC_CLIENT_ALIAS_DNS_NAME"\}/), 2);
    const status = await client.agent.status();
    assert.equal(status['healthStatus'], 'HEALTHY');
    assert.match(JSON.stringify(status['warnings']), /6 Cloud Map record\(s\) skipped/);
  });

  test('a bad record is logged once, not at every poll, and a service claiming another service\'s name does not take it', async () => {
    await register(evil, 'e7-fine', httpAttrs('127.0.2.18', 'evil'));
    await register(await createService('trust.local', 'aaa-hijack'), 'h1', httpAttrs('127.0.2.19', 'good'));
    await waitFor('the new evil instance', async () => (await membership(client.agent, 'scout_http_evil')) === 2);
    await waitFor('the hijacker in the hosts file under its own name', async () => hostsBlock(client.hosts).has('aaa-hijack.trust.local'));
    const names = hostsBlock(client.hosts);
    assert.equal(names.get('good'), names.get('good.trust.local'), '"good" still resolves to the good service');
    assert.notEqual(names.get('good'), names.get('aaa-hijack.trust.local'));
    for (const [id] of bad) assert.equal(skipWarnings(client.agent).filter((r) => r['instance'] === id).length, 1, `still one warning for ${id}`);
    assert.equal(skipWarnings(client.agent).filter((r) => r['service'] === 'aaa-hijack').length, 1);
    assert.equal(await stat(client.agent, /^envoy_listener_manager_lds_update_rejected\{/), 0, 'Envoy never rejected an update');
    assert.equal((await client.agent.status())['healthStatus'], 'HEALTHY');
  });

  test('thousands of instances: a service with 1,500 instances is used whole, not cut at the 1,000 DiscoverInstances returns', async () => {
    const big = await createService('trust.local', 'big');
    for (let i = 0; i < 1500; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, k) => register(big, `big-${String(i + k).padStart(4, '0')}`, httpAttrs(`10.9.${(i + k) >> 8}.${(i + k) & 255}`, 'big'))));
    }
    await waitFor('1,500 endpoints in the client Envoy', async () => (await membership(client.agent, 'scout_http_big')) === 1500, { timeoutMs: 60_000 });
  });

  test('a deleted service does not hold up discovery of the others: a new instance elsewhere is seen at once, the deleted one is dropped with a warning', async () => {
    const doomed = await createService('trust.local', 'doomed');
    await register(doomed, 'd1', httpAttrs('127.0.2.20', 'doomed'));
    await waitFor('doomed in the hosts file', async () => hostsBlock(client.hosts).has('doomed'));
    await moto.client.send(new DeleteServiceCommand({ Id: doomed }));
    await register(good, 'g2', httpAttrs('127.0.2.2', 'good'));
    await waitFor('the new good instance, within seconds', async () => (await membership(client.agent, 'scout_http_good')) === 2, { timeoutMs: 15_000 });
    await waitFor('doomed dropped', async () => !hostsBlock(client.hosts).has('doomed'), { timeoutMs: 15_000 });
    assert.ok(client.agent.logs.some((r) => r['level'] === 'warn' && r['service'] === 'doomed'), 'a warning names the deleted service');
  });

  test('an update Envoy rejects (its listener address is taken) makes the agent UNHEALTHY with the reason, and is retried until Envoy takes it', async () => {
    const used = [...hostsBlock(client.hosts).values()].map((ip) => Number(ip.split('.')[3]));
    const next = Math.max(...used) + 1;
    const squatters: Server[] = [];
    for (let i = next; i < next + 8; i++) {
      const s = createServer();
      await new Promise<void>((resolve) => s.listen(8081, `127.253.0.${i}`, () => resolve()));
      squatters.push(s);
    }
    try {
      await register(await createService('trust.local', 'blocked'), 'k1', httpAttrs('127.0.2.21', 'blocked', '8081'));
      const status = await waitFor('UNHEALTHY for the rejected update', async () => {
        const s = await client.agent.status();
        return s['healthStatus'] === 'UNHEALTHY' ? s : undefined;
      }, { timeoutMs: 20_000 });
      assert.match(JSON.stringify(status['reasons']), /Envoy rejected the listeners/);
      assert.ok((await stat(client.agent, /^envoy_listener_manager_lds_update_rejected\{/) ?? 0) >= 1);
    } finally {
      for (const s of squatters) await new Promise<void>((resolve) => s.close(() => resolve()));
    }
    await waitHealthy(client.agent, 30_000);
    const vip = hostsBlock(client.hosts).get('blocked');
    assert.ok(vip !== undefined);
    await new Promise<void>((resolve, reject) => {
      const sock = connect({ host: vip, port: 8081 }, () => {
        sock.destroy();
        resolve();
      });
      sock.on('error', reject);
    });
  });
});

describe('virtual IPs and the disk', { concurrency: false, timeout: 120_000 }, () => {
  let client: { agent: AgentProcess; hosts: string; dir: string };
  const ids = new Map<string, string>();
  let runtime: string;

  before(async () => {
    for (const name of ['a', 'b']) {
      ids.set(name, await createService('vips.local', name));
      await register(ids.get(name) as string, `${name}1`, httpAttrs(`127.0.2.${name === 'a' ? 31 : 32}`, name));
    }
    const dir = tempDir(ctx, 'vips-');
    runtime = join(dir, 'runtime');
    mkdirSync(runtime);
    // The runtime directory on a small tmpfs of its own, so that the disk can be filled and freed.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', runtime]);
    ctx.after(() => execFileSync('umount', ['-l', runtime]));
    client = clientAgent('vips.local', 'vips-client', { APPNET_VIP_CIDR: '127.252.0.0/30' }, dir);
    await waitHealthy(client.agent, 30_000);
  });

  test('VIPs exhausted: the service left without one is reported, other services keep updating, and it gets the VIP a departed service releases', async () => {
    await waitFor('a and b with the two VIPs', async () => hostsBlock(client.hosts).get('a') === '127.252.0.1' && hostsBlock(client.hosts).get('b') === '127.252.0.2');
    ids.set('c', await createService('vips.local', 'c'));
    await register(ids.get('c') as string, 'c1', httpAttrs('127.0.2.33', 'c'));
    await client.agent.waitForLog('VIPs exhausted', (r) => r['msg'] === 'virtual IPs exhausted: services left without a listener and a name until another service leaves' && JSON.stringify(r['services']) === '["c"]');
    const status = await client.agent.status();
    assert.equal(status['healthStatus'], 'HEALTHY');
    assert.match(JSON.stringify(status['warnings']), /virtual IPs exhausted.*no listener or name for c/);
    assert.equal(await metric(client.agent, /^appnet_agent_cloud_map_services_without_vip /), 1);
    await register(ids.get('a') as string, 'a2', httpAttrs('127.0.2.34', 'a'));
    await waitFor('a keeps updating', async () => (await membership(client.agent, 'scout_http_a')) === 2);
    await moto.client.send(new DeregisterInstanceCommand({ ServiceId: ids.get('b'), InstanceId: 'b1' }));
    await moto.client.send(new DeleteServiceCommand({ Id: ids.get('b') }));
    await waitFor('c gets the VIP b released', async () => hostsBlock(client.hosts).get('c') === '127.252.0.2', { timeoutMs: 15_000 });
    assert.equal(hostsBlock(client.hosts).get('a'), '127.252.0.1', "a live service's VIP never changes");
    assert.equal(hostsBlock(client.hosts).has('b'), false);
    assert.equal(await metric(client.agent, /^appnet_agent_cloud_map_services_without_vip /), 0);
    await waitFor('the c listener', async () => (await membership(client.agent, 'scout_http_c')) === 1);
  });

  test('disk full: the update that cannot be written makes the agent UNHEALTHY, and is applied as soon as space is freed, with no further change in Cloud Map', async () => {
    const filler = join(runtime, 'filler');
    const fs = statfsSync(runtime);
    writeFileSync(filler, Buffer.alloc(Number(fs.bavail) * Number(fs.bsize)));
    try {
      await register(ids.get('a') as string, 'a3', httpAttrs('127.0.2.35', 'a'));
      const status = await waitFor('UNHEALTHY for the failed write', async () => {
        const s = await client.agent.status();
        return s['healthStatus'] === 'UNHEALTHY' ? s : undefined;
      }, { timeoutMs: 20_000 });
      assert.match(JSON.stringify(status['reasons']), /ENOSPC|no space/i);
      assert.ok(((await metric(client.agent, /^appnet_agent_cloud_map_apply_failures_total\{reason="write"\}/)) ?? 0) >= 1);
      assert.equal(await membership(client.agent, 'scout_http_a'), 2, 'Envoy keeps the previous state');
    } finally {
      rmSync(filler, { force: true });
    }
    await waitFor('the update applied after the disk is freed', async () => (await membership(client.agent, 'scout_http_a')) === 3, { timeoutMs: 30_000 });
    await waitHealthy(client.agent, 10_000);
  });
});

describe("this task's own registration heals itself", { concurrency: false, timeout: 120_000 }, () => {
  let web: AgentProcess;
  let hosts: string;

  before(async () => {
    const dir = tempDir(ctx, 'own-');
    hosts = join(dir, 'hosts');
    web = startAgent(ctx, { dir, env: { ...serverEnv('own.local', 'own-1', '127.0.2.40', dir, ['web']), APPNET_VIP_CIDR: '127.252.1.0/24' } });
    await waitHealthy(web, 30_000);
  });

  test('own instance removed behind the agent\'s back: it is registered again', async () => {
    assert.deepEqual(await discover('own.local', 'web'), ['own-1']);
    const serviceId = (await moto.client.send(new ListServicesCommand({}))).Services?.find((s) => s.Name === 'web')?.Id;
    await moto.client.send(new DeregisterInstanceCommand({ ServiceId: serviceId, InstanceId: 'own-1' }));
    await web.waitForLog('registered again', (r) => r['msg'] === "this task's instance was missing from Cloud Map; registered it again");
    assert.deepEqual(await discover('own.local', 'web'), ['own-1']);
    await waitFor('its endpoint back in Envoy', async () => (await membership(web, 'scout_http_web')) === 1);
  });

  test('namespace removed: the last known services stay, /status says why while HEALTHY; when it is back the task registers again', async () => {
    await moto.client.send(new DeleteNamespaceCommand({ Id: await namespaceId('own.local') }));
    await web.waitForLog('namespace gone', (r) => r['msg'] === 'the Cloud Map namespace does not exist any more; keeping the last known services and looking for it at every poll');
    const status = await waitFor('the warning in /status', async () => {
      const s = await web.status();
      return JSON.stringify(s['warnings'] ?? []).includes('does not exist') ? s : undefined;
    });
    assert.equal(status['healthStatus'], 'HEALTHY');
    assert.ok(readFileSync(hosts, 'utf8').includes('\tweb web.own.local'), 'names stay');
    assert.equal(await membership(web, 'scout_http_web'), 1, 'listeners and endpoints stay');
    await moto.client.send(new CreateHttpNamespaceCommand({ Name: 'own.local' }));
    await web.waitForLog('namespace back', (r) => r['msg'] === 'the Cloud Map namespace exists again', 20_000);
    await waitFor('own-1 registered in the new namespace', async () => (await discover('own.local', 'web')).includes('own-1'), { timeoutMs: 20_000 });
    await waitFor('no warning left', async () => (await web.status())['warnings'] === undefined);
  });
});

describe("every way a task ends leaves no registration of it", { concurrency: false, timeout: 180_000 }, () => {
  test('Envoy exits and the restart budget is spent (exit 5): deregistered', async () => {
    const dir = tempDir(ctx, 'exit5-');
    const agent = startAgent(ctx, { dir, env: { ...serverEnv('exits.local', 'exit-budget', '127.0.2.50', dir), APPNET_ENVOY_RESTART_COUNT: '0' } });
    const s = await waitHealthy(agent, 30_000);
    assert.deepEqual(await registrationsOf('exit-budget'), ['exitsvc/exit-budget']);
    process.kill(Number(s['envoyPid']), 'SIGKILL');
    assert.equal((await agent.exited).code, 5);
    assert.deepEqual(await registrationsOf('exit-budget'), []);
  });

  test('Envoy cannot start (exit 5): deregistered', async () => {
    const dir = tempDir(ctx, 'noenvoy-');
    const fake = join(dir, 'envoy');
    writeFileSync(fake, `#!/bin/sh\nif [ "$1" = "--version" ]; then exec ${envoy} --version; fi\necho "cannot start" >&2\nexit 1\n`, { mode: 0o755 });
    const agent = startAgent(ctx, { dir, env: { ...serverEnv('exits.local', 'exit-noenvoy', '127.0.2.51', dir), ENVOY_BINARY: fake, APPNET_ENVOY_RESTART_COUNT: '1' } });
    assert.equal((await agent.exited).code, 5);
    assert.ok(agent.logs.some((r) => r['msg'] === 'registered in Cloud Map'), 'it had registered');
    assert.deepEqual(await registrationsOf('exit-noenvoy'), []);
  });

  test('the hosts file cannot be written by the container user (exit 7): it fails before registering', async () => {
    const dir = tempDir(ctx, 'hosts-');
    chmodSync(dir, 0o777);
    const env = serverEnv('exits.local', 'exit-hosts', '127.0.2.52', dir);
    chmodSync(join(dir, 'hosts'), 0o644); // root's, as Docker's /etc/hosts
    const agent = startAgent(ctx, { dir, env, uid: 65534 });
    assert.equal((await agent.exited).code, 7);
    assert.match(agent.stderr(), /AGENT_ERR_WRITE: APPNET_HOSTS_FILE=".*\/hosts": cannot be written \(EACCES/);
    assert.ok(!agent.logs.some((r) => r['msg'] === 'registered in Cloud Map'));
    assert.deepEqual(await registrationsOf('exit-hosts'), []);
  });

  test('an error after registering (the management interface cannot listen, exit 6): deregistered', async () => {
    const dir = tempDir(ctx, 'listen-');
    const socket = join(dir, 'agent.sock');
    const squatter = createServer((c) => c.destroy());
    await new Promise<void>((resolve) => squatter.listen(socket, () => resolve()));
    ctx.after(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
    const agent = startAgent(ctx, { dir, env: serverEnv('exits.local', 'exit-listen', '127.0.2.53', dir) });
    assert.equal((await agent.exited).code, 6);
    assert.ok(agent.logs.some((r) => r['msg'] === 'registered in Cloud Map'), 'it had registered');
    assert.deepEqual(await registrationsOf('exit-listen'), []);
  });

  test('SIGTERM during a long start-up (Cloud Map hangs in the first discovery) stops the start-up and deregisters (exit 0)', async () => {
    const proxy = await startCloudMapProxy(moto.url);
    ctx.after(() => proxy.close());
    proxy.hang((op) => op === 'DiscoverInstances');
    const dir = tempDir(ctx, 'slowstart-');
    const agent = startAgent(ctx, { dir, env: { ...serverEnv('exits.local', 'exit-slow', '127.0.2.54', dir), ...proxy.env } });
    await proxy.held('DiscoverInstances');
    assert.deepEqual(await registrationsOf('exit-slow'), ['exitsvc/exit-slow']);
    agent.child.kill('SIGTERM');
    assert.equal((await agent.exited).code, 0);
    assert.ok(agent.logs.some((r) => r['msg'] === 'stopped during start-up'));
    assert.deepEqual(await registrationsOf('exit-slow'), []);
  });

  test('SIGTERM while registering many services (Cloud Map hangs on the second) stops the start-up and deregisters the first (exit 0)', async () => {
    const proxy = await startCloudMapProxy(moto.url);
    ctx.after(() => proxy.close());
    proxy.hang((op, n) => op === 'RegisterInstance' && n >= 1);
    const dir = tempDir(ctx, 'slowreg-');
    const agent = startAgent(ctx, { dir, env: { ...serverEnv('exits.local', 'exit-many', '127.0.2.55', dir, ['many-a', 'many-b', 'many-c']), ...proxy.env } });
    await proxy.held('RegisterInstance');
    assert.deepEqual(await registrationsOf('exit-many'), ['many-a/exit-many']);
    agent.child.kill('SIGTERM');
    assert.equal((await agent.exited).code, 0);
    assert.deepEqual(await registrationsOf('exit-many'), []);
  });

  test('Cloud Map hangs during stop: the stop still ends inside 30 s (exit 0), and the log says the instance stays registered', async () => {
    const proxy = await startCloudMapProxy(moto.url);
    ctx.after(() => proxy.close());
    const dir = tempDir(ctx, 'hungstop-');
    const agent = startAgent(ctx, { dir, env: { ...serverEnv('exits.local', 'exit-hung', '127.0.2.56', dir, ['hung-a', 'hung-b', 'hung-c']), ...proxy.env } });
    await waitHealthy(agent, 30_000);
    proxy.hang((op) => op === 'DeregisterInstance');
    const sent = Date.now();
    agent.child.kill('SIGTERM');
    const exit = await agent.exited;
    assert.equal(exit.code, 0);
    assert.ok(exit.atMs - sent < 30_000, `stopped in ${exit.atMs - sent} ms, inside ECS's 30 s`);
    assert.equal(agent.logs.filter((r) => r['msg'] === 'deregistering from Cloud Map did not finish within the deadline; the instance stays registered').length, 3, 'all three at once, each reported');
    proxy.release();
  });

  test('an instance of this task id that an earlier (crashed) run left in another service is removed at start', async () => {
    await register(await createService('exits.local', 'old-svc'), 'exit-stale', { ...httpAttrs('127.0.2.57', 'old-svc'), SC_TASK_ID: 'exit-stale' });
    const dir = tempDir(ctx, 'stale-');
    const agent = startAgent(ctx, { dir, env: serverEnv('exits.local', 'exit-stale', '127.0.2.57', dir) });
    await waitHealthy(agent, 30_000);
    assert.ok(agent.logs.some((r) => r['msg'] === 'removed an instance of this task that an earlier run left in Cloud Map' && r['service'] === 'old-svc'));
    assert.deepEqual(await registrationsOf('exit-stale'), ['exitsvc/exit-stale']);
    agent.child.kill('SIGTERM');
    assert.equal((await agent.exited).code, 0);
    assert.deepEqual(await registrationsOf('exit-stale'), []);
  });
});

describe('tasks of one service starting at the same instant', { timeout: 120_000 }, () => {
  test('two tasks registering a new service at once both succeed and end in one service, 20 trials out of 20 (through the registration code, not 40 agents)', async () => {
    // The race is in registration (create the service, list, delete a duplicate, register); running it directly
    // against moto 20 times tests it without starting 40 Envoys. Task 0 sees Cloud Map through a proxy that answers
    // its GetService calls 30 ms late, as a task on a busier host would: that opens the window in which the other
    // task deletes a duplicate task 0 has listed but not looked at yet.
    const { createCloudMapClient } = await import('../../agent/discovery/cloud-map-client.ts');
    const { registerTask } = await import('../../agent/discovery/registration.ts');
    const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
    const proxy = await startCloudMapProxy(moto.url);
    ctx.after(() => proxy.close());
    proxy.slow((op) => op === 'GetService', 30);
    // The SDK reads its endpoint from the environment when a client makes its first call.
    Object.assign(process.env, proxy.env);
    const slowTask = await createCloudMapClient({ region: 'us-east-1' });
    await slowTask.findNamespace('race.local');
    Object.assign(process.env, moto.env);
    const fastTask = await createCloudMapClient({ region: 'us-east-1' });
    await fastTask.findNamespace('race.local');
    const tasks = [slowTask, fastTask];
    ctx.after(() => tasks.forEach((t) => t.close()));
    assert.equal(proxy.seen.get('ListNamespaces'), 1, 'only the slow task goes through the proxy');
    const namespace = await tasks[0]?.findNamespace('race.local');
    assert.ok(namespace);
    const failures: string[] = [];
    for (let trial = 0; trial < 20; trial++) {
      const name = `race-${trial}`;
      const results = await Promise.allSettled(
        tasks.map(async (cm, i) => {
          // The second task a few milliseconds behind the first, a different amount each trial, so that the 20
          // trials cover different interleavings of create, list, delete and register.
          if (i === 1) await new Promise((r) => setTimeout(r, trial % 5));
          await registerTask(cm, namespace, [{ name, instanceId: `task-${i}`, attributes: httpAttrs(`127.0.3.${i + 1}`, name) }], [], silent);
        }),
      );
      for (const r of results) if (r.status === 'rejected') failures.push(`${name}: ${(r.reason as Error).message}`);
      assert.deepEqual(failures, [], 'every start succeeds');
      assert.deepEqual((await discover('race.local', name)).sort(), ['task-0', 'task-1'], `${name}: both tasks in the service the name resolves to`);
      const services = ((await moto.client.send(new ListServicesCommand({}))).Services ?? []).filter((s) => s.Name === name);
      assert.equal(services.length, 1, `${name}: one service left`);
    }
  });
});
