/** Cloud Map mode's pure parts: configuration rules, instances → endpoints, VIPs, the hosts block, and resources Envoy accepts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateServiceConnectConfig } from '../../agent/config/index.ts';
import { hostsEntries, LIMITS, readService, serviceFromInstances, VipAllocator, type DiscoverySnapshot } from '../../agent/discovery/snapshot.ts';
import { ProblemLog } from '../../agent/discovery/problem-log.ts';
import { applyHostsBlock, renderHostsBlock, BEGIN_MARKER } from '../../agent/hosts/hosts-block.ts';
import { renderResources } from '../../agent/bootstrap/render-resources.ts';
import { instanceAttributes } from '../../agent/modes/index.ts';
import { validateBootstrap } from '../../agent/envoy/envoy-binary.ts';
import { requireEnvoy } from '../helpers/envoy.ts';
import { assertGolden } from '../helpers/golden.ts';

const web = {
  namespace: 'demo.local',
  services: [{ portName: 'http', discoveryName: 'web', clientAliases: [{ port: 80, dnsName: 'web' }], timeout: { perRequestTimeoutSeconds: 30 } }],
  portMappings: [{ name: 'http', containerPort: 8080, appProtocol: 'http' }],
  accessLogConfiguration: { format: 'JSON', includeQueryParameters: 'DISABLED' },
};

test('a Service Connect configuration copied from ECS is accepted, with defaults filled in', () => {
  const { config, problems } = validateServiceConnectConfig(web);
  assert.deepEqual(problems, []);
  assert.deepEqual(config?.services[0], {
    portName: 'http',
    discoveryName: 'web',
    alias: { dnsName: 'web', port: 80 },
    containerPort: 8080,
    protocol: 'http',
    ingressPort: 15000,
    perRequestTimeoutS: 30,
    idleTimeoutS: null,
  });
  const defaults = validateServiceConnectConfig({ namespace: 'demo.local', services: [{ portName: 'db', clientAliases: [{ port: 5432 }] }], portMappings: [{ name: 'db', containerPort: 5432 }] });
  assert.equal(defaults.config?.services[0]?.discoveryName, 'db', 'discoveryName defaults to portName');
  assert.equal(defaults.config?.services[0]?.alias?.dnsName, 'db.demo.local', 'dnsName defaults to discoveryName.namespace');
  assert.equal(defaults.config?.services[0]?.protocol, 'tcp', 'no appProtocol is TCP');
  assert.deepEqual(validateServiceConnectConfig({ namespace: 'demo.local' }).config?.services, [], 'a client-only service');
});

test('a Service Connect configuration that breaks ECS rules gets one message per violation, naming path, value and rule', () => {
  const { config, problems } = validateServiceConnectConfig({
    namespace: '',
    services: [
      { portName: 'htp', discoveryName: 'Web!', clientAliases: [{ port: 0, dnsName: '-web' }, { port: 81 }] },
      { portName: 'db', timeout: { perRequestTimeoutSeconds: 5, idleTimeoutSeconds: -1 }, ingressPortOverride: 70000 },
      { portName: 'db' },
    ],
    portMappings: [{ name: 'http', containerPort: 8080, appProtocol: 'HTTP' }, { name: 'db', containerPort: 5432 }],
    accessLogConfiguration: { format: 'XML' },
    extra: 1,
  });
  assert.equal(config, null);
  const expected = [
    /^extra=1: is not a field/,
    /^namespace="": must be a Cloud Map namespace name or ARN$/,
    /^portMappings\[0\]\.appProtocol="HTTP": must be http, http2 or grpc, or absent for TCP$/,
    /^services\[0\]\.portName="htp": must name one of portMappings: http, db$/,
    /^services\[0\]\.discoveryName="Web!": must be 1 to 64 characters/,
    /^services\[0\]\.clientAliases=.*: must have one element/,
    /^services\[1\]\.timeout\.idleTimeoutSeconds=-1: must be an integer from 0 to 2147483647$/,
    /^services\[1\]\.timeout\.perRequestTimeoutSeconds=5: is not allowed when the port mapping has no appProtocol \(TCP\)$/,
    /^services\[1\]\.ingressPortOverride=70000: must be an integer from 1 to 65535$/,
    /^services\[2\]\.discoveryName=undefined: may be omitted in only one services entry$/,
    /^accessLogConfiguration\.format="XML": must be TEXT or JSON$/,
  ];
  for (const re of expected) assert.ok(problems.some((p) => re.test(p)), `expected ${re} in:\n${problems.join('\n')}`);
});

test('instances become endpoints; alias, protocol and timeouts come from their attributes, and are kept when the last instance goes', () => {
  const attrs = instanceAttributes(validateServiceConnectConfig(web).config!.services[0]!, { taskId: 'web-1', ipv4: '10.0.0.5', availabilityZone: 'us-east-1a' });
  const s = serviceFromInstances('web', [{ InstanceId: 'web-1', Attributes: attrs }, { InstanceId: 'bad', Attributes: { AWS_INSTANCE_IPV4: 'nope', AWS_INSTANCE_PORT: '1' } }]);
  assert.deepEqual(s, { discoveryName: 'web', alias: { dnsName: 'web', port: 80 }, protocol: 'http', perRequestTimeoutS: 30, idleTimeoutS: null, endpoints: [{ instanceId: 'web-1', ip: '10.0.0.5', port: 15000, zone: 'us-east-1a' }] });
  const empty = serviceFromInstances('web', [], s);
  assert.deepEqual(empty.endpoints, []);
  assert.deepEqual(empty.alias, s.alias);
});

test('virtual IPs start at 127.255.0.1 and stay with their service', () => {
  const v = new VipAllocator();
  assert.equal(v.vipFor('web'), '127.255.0.1');
  assert.equal(v.vipFor('db'), '127.255.0.2');
  assert.equal(v.vipFor('web'), '127.255.0.1');
  for (let i = 0; i < 300; i++) v.vipFor(`s${i}`);
  assert.equal(v.vipFor('s253'), '127.255.1.0');
  assert.equal(new VipAllocator('127.254.3.0/24').vipFor('web'), '127.254.3.1');
  const small = new VipAllocator('127.1.1.0/30');
  small.vipFor('a');
  small.vipFor('b');
  assert.throws(() => small.vipFor('c'), /exhausted/);
});

test('the hosts block keeps every other byte, is replaced in place, and is removed cleanly', () => {
  const original = '127.0.0.1 localhost\n# comment\n10.0.0.1\tdb.internal'; // no final newline on purpose
  const block = renderHostsBlock([{ ip: '127.255.0.2', names: ['db'] }, { ip: '127.255.0.1', names: ['web', 'web.demo.local'] }]);
  assert.equal(block, `${BEGIN_MARKER}\n127.255.0.2\tdb\n127.255.0.1\tweb web.demo.local\n# END ecs-service-connect-agent\n`);
  const once = applyHostsBlock(original, block);
  assert.equal(once, `${original}\n${block}`);
  const after = `${once}192.168.1.1 printer\n`;
  const replaced = applyHostsBlock(after, renderHostsBlock([{ ip: '127.255.0.1', names: ['web'] }]));
  assert.ok(replaced.startsWith(`${original}\n${BEGIN_MARKER}\n127.255.0.1\tweb\n`));
  assert.ok(replaced.endsWith('# END ecs-service-connect-agent\n192.168.1.1 printer\n'), 'a line after the block stays after it');
  assert.equal(applyHostsBlock(replaced, null), `${original}\n192.168.1.1 printer\n`);
  assert.equal(applyHostsBlock(applyHostsBlock(original, block), block), applyHostsBlock(original, block), 'idempotent');
});

function snapshotOf(): DiscoverySnapshot {
  return {
    namespace: 'demo.local',
    services: new Map([
      ['web', serviceFromInstances('web', [1, 2].map((i) => ({ InstanceId: `web-${i}`, Attributes: { AWS_INSTANCE_IPV4: `10.0.0.${i}`, AWS_INSTANCE_PORT: '15000', SC_CLIENT_ALIAS_DNS_NAME: 'web', SC_CLIENT_ALIAS_PORT: '80', SC_APP_PROTOCOL: 'http' } })))],
      ['orders', serviceFromInstances('orders', [{ InstanceId: 'o-1', Attributes: { AWS_INSTANCE_IPV4: '10.0.1.1', AWS_INSTANCE_PORT: '15000', SC_CLIENT_ALIAS_DNS_NAME: 'orders', SC_CLIENT_ALIAS_PORT: '9090', SC_APP_PROTOCOL: 'grpc', SC_PER_REQUEST_TIMEOUT_S: '0' } }])],
      ['db', serviceFromInstances('db', [{ InstanceId: 'd-1', Attributes: { AWS_INSTANCE_IPV4: '10.0.2.1', AWS_INSTANCE_PORT: '15432' } }])],
    ]),
  };
}

for (const format of ['TEXT', 'JSON'] as const) {
  test(`rendered Cloud Map resources (access logs ${format}) match their golden file and Envoy 1.40 accepts them`, async (t) => {
    const sc = validateServiceConnectConfig({ ...web, accessLogConfiguration: { format, includeQueryParameters: format === 'TEXT' ? 'ENABLED' : 'DISABLED' } }).config!;
    const files = renderResources(snapshotOf(), new VipAllocator(), { config: sc, taskIp: '127.0.0.1', appIp: '127.0.0.1' });
    const text = `${JSON.stringify({ lds: files.lds, cds: files.cds }, null, 1)}\n`;
    assertGolden(`resources/cloudmap-${format.toLowerCase()}.json`, text);
    const envoy = requireEnvoy(t);
    if (envoy === null) return;
    // Envoy validates the listeners and clusters given statically.
    const dir = mkdtempSync(join(tmpdir(), 'resources-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const strip = (r: Record<string, unknown>) => Object.fromEntries(Object.entries(r).filter(([k]) => k !== '@type'));
    const clusters = (files.cds['resources'] as Array<Record<string, unknown>>).map(strip);
    const bootstrap = { admin: { address: { pipe: { path: join(dir, 'admin.sock') } } }, static_resources: { listeners: (files.lds['resources'] as Array<Record<string, unknown>>).map(strip), clusters } };
    writeFileSync(join(dir, 'bootstrap.json'), JSON.stringify(bootstrap));
    const verdict = await validateBootstrap(envoy, join(dir, 'bootstrap.json'));
    assert.ok(verdict.ok, verdict.output);
  });
}

const ok = { AWS_INSTANCE_IPV4: '10.0.0.1', AWS_INSTANCE_PORT: '15000', SC_APP_PROTOCOL: 'http', SC_CLIENT_ALIAS_DNS_NAME: 'web', SC_CLIENT_ALIAS_PORT: '80' };

test('an instance attribute that breaks the rule of its configuration field skips the whole instance, naming service, instance, attribute and rule', () => {
  const cases: Array<[Record<string, string>, string, RegExp]> = [
    [{ SC_CLIENT_ALIAS_DNS_NAME: 'web extra' }, 'SC_CLIENT_ALIAS_DNS_NAME', /^must be 1 to 127 characters of a-z/],
    [{ SC_CLIENT_ALIAS_DNS_NAME: 'web\n10.0.0.9 bank' }, 'SC_CLIENT_ALIAS_DNS_NAME', /^must be 1 to 127/],
    [{ AWS_INSTANCE_PORT: '70000' }, 'AWS_INSTANCE_PORT', /^must be an integer from 1 to 65535$/],
    [{ AWS_INSTANCE_PORT: ' 80' }, 'AWS_INSTANCE_PORT', /^must be an integer from 1 to 65535$/],
    [{ AWS_INSTANCE_IPV4: '10.0.0.256' }, 'AWS_INSTANCE_IPV4', /^must be an IPv4 address$/],
    [{ SC_PER_REQUEST_TIMEOUT_S: '99999999999999999999' }, 'SC_PER_REQUEST_TIMEOUT_S', /^must be an integer from 0 to 2147483647$/],
    [{ SC_IDLE_TIMEOUT_S: '-1' }, 'SC_IDLE_TIMEOUT_S', /^must be an integer from 0 to 2147483647$/],
    [{ SC_APP_PROTOCOL: 'h'.repeat(100_000) }, 'SC_APP_PROTOCOL', /^must be one of http, http2, grpc, tcp$/],
    [{ AVAILABILITY_ZONE: 'us-east-1a; rm' }, 'AVAILABILITY_ZONE', /^must be 1 to 64 characters/],
    [{ SC_CLIENT_ALIAS_PORT: '' }, 'SC_CLIENT_ALIAS_PORT', /^must be an integer/],
  ];
  for (const [attrs, attribute, rule] of cases) {
    const { service, problems } = readService('web', [{ InstanceId: 'bad', Attributes: { ...ok, ...attrs } }, { InstanceId: 'good', Attributes: ok }]);
    assert.deepEqual(service.endpoints.map((e) => e.instanceId), ['good'], `${attribute}: only the good instance`);
    assert.equal(problems.length, 1);
    assert.equal(problems[0]?.service, 'web');
    assert.equal(problems[0]?.instance, 'bad');
    assert.equal(problems[0]?.attribute, attribute);
    assert.match(problems[0]?.rule ?? '', rule);
    assert.ok((problems[0]?.value ?? '').length <= 80);
  }
  const missing = readService('web', [{ InstanceId: 'x', Attributes: { AWS_INSTANCE_IPV4: '10.0.0.1' } }]).problems[0];
  assert.deepEqual([missing?.attribute, missing?.rule], ['AWS_INSTANCE_PORT', 'must be set (an integer from 1 to 65535)']);
  const half = readService('web', [{ InstanceId: 'x', Attributes: { AWS_INSTANCE_IPV4: '10.0.0.1', AWS_INSTANCE_PORT: '1', SC_CLIENT_ALIAS_DNS_NAME: 'web' } }]).problems[0];
  assert.equal(half?.attribute, 'SC_CLIENT_ALIAS_PORT');
  const badId = readService('web', [{ InstanceId: 'a b', Attributes: ok }]).problems[0];
  assert.equal(badId?.attribute, 'InstanceId');
});

test("a bad instance's settings never reach the service: alias, protocol and timeouts come from valid instances only, in instance-id order", () => {
  const { service } = readService('web', [
    { InstanceId: 'b', Attributes: { ...ok, SC_CLIENT_ALIAS_DNS_NAME: 'second' } },
    { InstanceId: 'a', Attributes: { ...ok, SC_CLIENT_ALIAS_DNS_NAME: 'evil name', SC_APP_PROTOCOL: 'tcp' } },
    { InstanceId: 'c', Attributes: { ...ok, SC_CLIENT_ALIAS_DNS_NAME: 'third' } },
  ]);
  assert.deepEqual(service.alias, { dnsName: 'second', port: 80 });
  assert.equal(service.protocol, 'http');
  const dup = readService('web', [{ InstanceId: 'a', Attributes: { ...ok, AWS_INSTANCE_IPV4: '10.0.0.1' } }, { InstanceId: 'a', Attributes: { ...ok, AWS_INSTANCE_IPV4: '10.0.0.2' } }]);
  assert.deepEqual(dup.service.endpoints.map((e) => e.ip), ['10.0.0.2'], 'one endpoint per instance id, the last one');
});

test('past the instance limit the first instances by id are kept and the cut is reported, never silent', () => {
  const n = LIMITS.instancesPerService + 3;
  const instances = Array.from({ length: n }, (_, i) => ({ InstanceId: `i${String(i).padStart(5, '0')}`, Attributes: { ...ok, AWS_INSTANCE_IPV4: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}` } }));
  const { service, problems } = readService('big', instances);
  assert.equal(service.endpoints.length, LIMITS.instancesPerService);
  assert.equal(problems.length, 1);
  assert.equal(problems[0]?.attribute, 'Instances');
  assert.equal(problems[0]?.value, String(n));
});

test('VIPs: departed services release theirs, reused only once the fresh ones run out; live services keep theirs; the exhausted are reported', () => {
  const v = new VipAllocator('127.1.1.0/29'); // 6 addresses
  assert.deepEqual(v.assign(['a', 'b', 'c']), []);
  assert.equal(v.lookup('b'), '127.1.1.2');
  assert.deepEqual(v.assign(['a', 'c', 'd']), [], 'b leaves, d arrives');
  assert.equal(v.lookup('d'), '127.1.1.4', 'a fresh address before a released one');
  assert.equal(v.lookup('b'), null);
  assert.deepEqual(v.assign(['a', 'c', 'd', 'e', 'f', 'g', 'h']), ['h'], 'e, f fresh; g gets b\'s; h has none');
  assert.equal(v.lookup('g'), '127.1.1.2');
  assert.equal(v.lookup('a'), '127.1.1.1');
  assert.deepEqual(v.assign(['a', 'd', 'e', 'f', 'g', 'h']), [], 'c leaves: h gets its address');
  assert.equal(v.lookup('h'), '127.1.1.3');
});

test('a name two services claim stays with the service that had it; a newcomer claiming it is reported and keeps only its own name', () => {
  const svc = (name: string, alias: string) => readService(name, [{ InstanceId: `${name}-1`, Attributes: { ...ok, SC_CLIENT_ALIAS_DNS_NAME: alias } }]).service;
  const v = new VipAllocator('127.1.2.0/24');
  const first: DiscoverySnapshot = { namespace: 'ns', services: new Map([['web', svc('web', 'web')]]) };
  v.assign(first.services.keys());
  const one = hostsEntries(first, (n) => v.lookup(n));
  assert.deepEqual(one.entries, [{ ip: '127.1.2.1', names: ['web', 'web.ns'] }]);
  const second: DiscoverySnapshot = { namespace: 'ns', services: new Map([['aaa', svc('aaa', 'web')], ['web', svc('web', 'web')]]) };
  v.assign(second.services.keys());
  const two = hostsEntries(second, (n) => v.lookup(n), one.owners);
  assert.deepEqual(two.entries, [{ ip: '127.1.2.2', names: ['aaa.ns'] }, { ip: '127.1.2.1', names: ['web', 'web.ns'] }]);
  assert.equal(two.problems.length, 1);
  assert.equal(two.problems[0]?.service, 'aaa');
  const other = hostsEntries(second, (n) => v.lookup(n), new Map([['web.ns', 'web']]));
  assert.equal(other.entries.find((e) => e.names.includes('web.ns'))?.ip, '127.1.2.1', "a service's own discoveryName.namespace is never taken");
});

test('a skipped record is logged once while it stays, and again when it comes back after going', () => {
  const lines: string[] = [];
  const logger = { debug() {}, info() {}, warn: (msg: string, f?: Record<string, unknown>) => lines.push(`${msg} ${JSON.stringify(f)}`), error() {}, child: () => logger };
  const log = new ProblemLog({ logger });
  const p = { service: 'web', instance: 'bad', attribute: 'AWS_INSTANCE_PORT', value: '"0"', rule: 'must be an integer from 1 to 65535' };
  log.set('service web', [p]);
  log.set('service web', [p]);
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? '', /"service":"web","instance":"bad","attribute":"AWS_INSTANCE_PORT","value":"\\"0\\"","rule":"must be an integer from 1 to 65535"/);
  assert.equal(log.size, 1);
  log.set('service web', []);
  assert.equal(log.size, 0);
  log.set('service web', [p]);
  assert.equal(lines.length, 2);
});
