/**
 * Cloud Map mode's own signed JSON client against moto: every call discovery makes gives what the AWS SDK client
 * gives for the same namespace, and Cloud Map's errors arrive with the names the poll reads (ServiceNotFound,
 * NamespaceNotFound). moto checks signatures loosely; test/unit/aws-sigv4.test.ts checks the signature itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CreateServiceCommand, ListNamespacesCommand, RegisterInstanceCommand } from '@aws-sdk/client-servicediscovery';
import { createCloudMapClient, isNotFound } from '../../agent/discovery/cloud-map-client.ts';
import { startMoto } from '../helpers/moto.ts';

test('the JSON client reads a namespace in moto as the AWS SDK client does, without loading the SDK', async (t) => {
  const moto = await startMoto(t);
  if (moto === null) return;
  await moto.createNamespace('json.local');
  const nsId = (await moto.client.send(new ListNamespacesCommand({}))).Namespaces?.find((n) => n.Name === 'json.local')?.Id as string;
  for (const name of ['orders', 'users']) {
    const id = (await moto.client.send(new CreateServiceCommand({ Name: name, NamespaceId: nsId }))).Service?.Id;
    for (const i of [1, 2]) {
      await moto.client.send(new RegisterInstanceCommand({ ServiceId: id, InstanceId: `${name}-${i}`, Attributes: { AWS_INSTANCE_IPV4: `10.0.0.${i}`, AWS_INSTANCE_PORT: '8080', SC_APP_PROTOCOL: 'http' } }));
    }
  }
  const env = { ...moto.env, HOME: '/nonexistent' };
  const json = await createCloudMapClient({ region: 'us-east-1', env });
  const sdk = await createCloudMapClient({ region: 'us-east-1', env, useSdkOnly: true });
  t.after(() => {
    json.close();
    sdk.close();
  });
  const read = async (c: typeof json) => {
    const ns = await c.findNamespace('json.local');
    assert.ok(ns !== null);
    const services = await c.listServices(ns.id);
    const instances = [];
    for (const s of services) instances.push({ name: s.name, ...(await c.discoverInstances(ns.name, s.name, s.id)), revision: await c.discoverRevision(ns.name, s.name) });
    return { ns, services, instances, exists: await c.namespaceExists(ns.id), missing: await c.namespaceExists('ns-doesnotexist000') };
  };
  const viaJson = await read(json);
  assert.deepEqual(viaJson, await read(sdk));
  assert.deepEqual(viaJson.services.map((s) => s.name).sort(), ['orders', 'users']);
  assert.equal(viaJson.instances[0]?.instances.length, 2);
  assert.equal(viaJson.missing, false);
  assert.equal(json.calls.get('DiscoverInstances'), 2);

  const notFound = await json.discoverInstances('json.local', 'nosuchservice', 'srv-x').catch((err: unknown) => err);
  assert.ok(isNotFound(notFound, 'Service'), `DiscoverInstances of a missing service: ServiceNotFound, got ${String(notFound)}`);
});
