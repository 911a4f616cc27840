/**
 * Cloud Map mode against hostile data and failures (issue 9), with moto as Cloud Map (real SDK, real protocol), the
 * built agent and the real Envoy. One moto serves every case of this file; each namespace is used by one group of
 * cases. Addresses of their own: tasks on 127.0.2.x, VIP ranges 127.252.x and 127.253.x (the other Cloud Map test
 * files use 127.0.1.x, 127.254.x and 127.255.x, or 127.252.9.x, and may run at the same time).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { CreateHttpNamespaceCommand, DeleteNamespaceCommand, DeleteServiceCommand, DeregisterInstanceCommand, ListServicesCommand } from '@aws-sdk/client-servicediscovery';
import { startAgent, tempDir, waitHealthy, type AgentProcess } from '../helpers/agent.ts';
import { waitFor } from '../helpers/wait.ts';
import {
  clientAgent,
  createService,
  ctx,
  discover,
  hostsBlock,
  httpAttrs,
  membership,
  metric,
  moto,
  namespaceId,
  register,
  serverEnv,
  skipWarnings,
  startWorld,
  stat,
  stopWorld,
  type Attrs,
} from './cloud-map-world.ts';

before(() => startWorld(['trust.local', 'vips.local', 'own.local']));
after(() => stopWorld());

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
    for (let i = 0; i < 1500; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, k) => register(big, `big-${String(i + k).padStart(4, '0')}`, httpAttrs(`10.9.${(i + k) >> 8}.${(i + k) & 255}`, 'big'))));
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

