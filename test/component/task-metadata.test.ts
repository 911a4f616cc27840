/**
 * The ECS task metadata endpoint v4: the task identity in Cloud Map mode and the node metadata in ECS-managed mode.
 * FAKE: the real endpoint exists only inside ECS; a local HTTP server answers with task metadata as ECS does.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { readConfig } from '../../agent/config/index.ts';
import { taskIdentity } from '../../agent/modes/index.ts';
import { collectPlatform, fetchTaskMetadata } from '../../agent/system/index.ts';

const taskDoc = {
  Cluster: 'arn:aws:ecs:us-west-2:123456789012:cluster/prod',
  TaskARN: 'arn:aws:ecs:us-west-2:123456789012:task/prod/39ddaf309a0641dfb623ae5385ad1800',
  AvailabilityZone: 'us-west-2b',
  AvailabilityZoneID: 'usw2-az2',
  Containers: [{ Name: 'web', Type: 'NORMAL', Networks: [{ NetworkMode: 'awsvpc', IPv4Addresses: ['10.0.1.15'], IPv6Addresses: ['2600:1f14::15'] }] }],
};

async function fakeMetadata(t: TestContext, opts: { hang?: boolean } = {}): Promise<string> {
  const server = createServer((req, res) => {
    if (opts.hang) return; // never answers
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(req.url?.endsWith('/task') ? taskDoc : { Limits: { CPU: 0.25, Memory: 512 } }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v4/abc`;
}

test('Cloud Map mode takes the task id, address and zone from the task metadata endpoint when there is one', async (t) => {
  const uri = await fakeMetadata(t);
  const config = readConfig({ APPNET_SERVICE_CONNECT_CONFIG: '{"namespace":"demo.local"}', AWS_REGION: 'us-west-2', ECS_CONTAINER_METADATA_URI_V4: uri }, { readFile: () => '' });
  assert.deepEqual(taskIdentity(config, (await fetchTaskMetadata(uri, { container: false })).task), { taskId: '39ddaf309a0641dfb623ae5385ad1800', ipv4: '10.0.1.15', availabilityZone: 'us-west-2b' });
});

test('ECS-managed mode puts the task metadata into node metadata: cluster, task, zone, IP families, limits', async (t) => {
  const uri = await fakeMetadata(t);
  const platform = await collectPlatform({ metadataUri: uri, warn: () => undefined });
  assert.deepEqual(platform.task, {
    clusterArn: taskDoc.Cluster,
    taskArn: taskDoc.TaskARN,
    availabilityZone: 'us-west-2b',
    availabilityZoneId: 'usw2-az2',
    supportedIpFamilies: 'ALL',
    cpu: '0.25',
    memory: '512',
  });
});

test('a task metadata endpoint that does not answer costs at most its deadline and leaves the task facts out (reference issue #155)', async (t) => {
  const uri = await fakeMetadata(t, { hang: true });
  const warnings: string[] = [];
  const started = Date.now();
  const platform = await collectPlatform({ metadataUri: uri, timeoutMs: 300, warn: (m) => warnings.push(m) });
  assert.equal(platform.task, null);
  assert.ok(Date.now() - started < 2000);
  assert.deepEqual(warnings, ['task metadata unavailable; node metadata leaves it out']);
});
