/**
 * Cloud Map mode's own signed JSON client against moto: every call discovery makes reads what the SDK wrote into
 * the namespace, and Cloud Map's errors arrive with the names the poll reads (ServiceNotFound, NamespaceNotFound). moto checks signatures loosely; test/unit/aws-sigv4.test.ts checks the signature itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CreateServiceCommand, ListNamespacesCommand, RegisterInstanceCommand } from '@aws-sdk/client-servicediscovery';
import { createCloudMapClient, isNotFound } from '../../agent/discovery/cloud-map-client.ts';
import { startMoto } from '../helpers/moto.ts';

test('the JSON client reads a namespace, its services and instances from moto, and gets its not-found errors by name', async (t) => {
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
  t.after(() => json.close());
  const ns = await json.findNamespace('json.local');
  assert.deepEqual(ns, { id: nsId, name: 'json.local', arn: (await moto.client.send(new ListNamespacesCommand({}))).Namespaces?.find((n) => n.Id === nsId)?.Arn });
  const services = await json.listServices(nsId);
  assert.deepEqual(services.map((s) => s.name).sort(), ['orders', 'users']);
  const orders = services.find((s) => s.name === 'orders');
  assert.ok(orders !== undefined);
  const found = await json.discoverInstances('json.local', 'orders', orders.id);
  assert.deepEqual(
    found.instances.map((i) => [i.InstanceId, i.Attributes]).sort(),
    [1, 2].map((i) => [`orders-${i}`, { AWS_INSTANCE_IPV4: `10.0.0.${i}`, AWS_INSTANCE_PORT: '8080', SC_APP_PROTOCOL: 'http' }]),
  );
  assert.equal(typeof (await json.discoverRevision('json.local', 'orders')), 'number');
  assert.equal(await json.namespaceExists(nsId), true);
  assert.equal(await json.namespaceExists('ns-doesnotexist000'), false, 'GetNamespace of a missing namespace: NamespaceNotFound');
  const notFound = await json.discoverInstances('json.local', 'nosuchservice', 'srv-x').catch((err: unknown) => err);
  assert.ok(isNotFound(notFound, 'Service'), `DiscoverInstances of a missing service: ServiceNotFound, got ${String(notFound)}`);
  assert.deepEqual(Object.fromEntries(json.calls), { ListNamespaces: 1, ListServices: 1, GetService: 2, DiscoverInstances: 2, DiscoverInstancesRevision: 1, GetNamespace: 2 });
});
