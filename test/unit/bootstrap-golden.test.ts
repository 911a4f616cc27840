/**
 * Golden bootstraps for the environments users run: each is rendered from env + a fixed platform, compared with
 * test/golden/bootstrap/<name>.yaml, and checked by the real Envoy (`envoy --mode validate`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { readConfig, type Env } from '../../agent/config/index.ts';
import { envoyArgs, renderBootstrap, type Platform } from '../../agent/bootstrap/index.ts';
import { serializeBootstrap } from '../../agent/commands/render.ts';
import { validateBootstrap } from '../../agent/envoy/envoy-binary.ts';
import { assertGolden } from '../helpers/golden.ts';
import { yaml } from '../../agent/system/yaml.ts';
import { repoRoot, requireEnvoy } from '../helpers/envoy.ts';

const fixtures = `${repoRoot}/test/fixtures`;
const io = { readFile: (p: string) => readFileSync(p, 'utf8') };

const taskSetArn = 'arn:aws:ecs:us-west-2:123456789012:task-set/prod/web/ecs-svc/4811590123456789';
const ecsBase: Env = {
  APPMESH_XDS_ENDPOINT: 'unix:///var/run/ecs/relay/envoy_xds.sock',
  APPMESH_RESOURCE_ARN: taskSetArn,
  APPMESH_METRIC_EXTENSION_VERSION: '1',
  APPNET_AGENT_ADMIN_MODE: 'uds',
  APPNET_AGENT_ADMIN_UDS_PATH: '/var/run/ecs/appnet_admin.sock',
  ENVOY_ADMIN_MODE: 'UDS',
  ENVOY_CONCURRENCY: '2',
  ENVOY_ENABLE_IAM_AUTH_FOR_XDS: '0',
  AWS_REGION: 'us-west-2',
  AWS_EXECUTION_ENV: 'AWS_ECS_EC2',
  ECS_CONTAINER_INSTANCE_ARN: 'arn:aws:ecs:us-west-2:123456789012:container-instance/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0',
  APPNET_LISTENER_PORT_MAPPING: '{"egress":38221,"ingress-http":42106}',
  NAMESPACE_NAME: 'prod.local',
  APPNET_RUNTIME_DIR: '/tmp/agent-golden/ecs',
  ENVOY_ADMIN_UDS_PATH: '/tmp/agent-golden/ecs/envoy_admin.sock',
};

const task = {
  clusterArn: 'arn:aws:ecs:us-west-2:123456789012:cluster/prod',
  taskArn: 'arn:aws:ecs:us-west-2:123456789012:task/prod/39ddaf309a0641dfb623ae5385ad1800',
  availabilityZone: 'us-west-2a',
  availabilityZoneId: 'usw2-az1',
  supportedIpFamilies: 'IPv4_ONLY' as const,
  cpu: '2',
  memory: '0',
};
const awsvpc: Platform = {
  interfaces: { ipv4: { eth0: ['10.0.1.15/24'], lo: ['127.0.0.1/8'] }, ipv6: {} },
  kernelVersion: '6.1.0-31-cloud-amd64',
  machine: 'x86_64',
  task,
};
const bridge: Platform = {
  interfaces: { ipv4: { eth0: ['172.17.0.3/16'], lo: ['127.0.0.1/8'] }, ipv6: {} },
  kernelVersion: '6.1.0-31-cloud-amd64',
  machine: 'x86_64',
  task: { ...task, supportedIpFamilies: 'ALL' },
};
const ipv6Only: Platform = {
  interfaces: { ipv4: {}, ipv6: { eth0: ['2600:1f14:abc:de00::15/64'], lo: ['::1/128'] } },
  kernelVersion: '6.1.0-31-cloud-amd64',
  machine: 'aarch64',
  task: { ...task, supportedIpFamilies: 'IPv6_ONLY' },
};
const bare: Platform = { interfaces: { ipv4: {}, ipv6: {} }, kernelVersion: null, machine: null, task: null };

const relayBase: Env = {
  APPNET_ENABLE_RELAY_MODE_FOR_XDS: '1',
  APPNET_RELAY_LISTENER_UDS_PATH: '/var/run/ecs/relay/envoy_xds.sock',
  AWS_REGION: 'us-west-2',
  ENVOY_ADMIN_MODE: 'uds',
  ENVOY_ADMIN_UDS_PATH: '/tmp/agent-golden/relay/envoy_admin.sock',
  APPNET_AGENT_ADMIN_MODE: 'uds',
  APPMESH_XDS_ENDPOINT: 'https://ecs-sc.us-west-2.api.aws',
  APPNET_RELAY_CA_FILE: `${fixtures}/relay-ca.pem`,
  APPNET_RUNTIME_DIR: '/tmp/agent-golden/relay',
};

const cloudMapDocument = {
  namespace: 'demo.local',
  services: [{ portName: 'http', discoveryName: 'web', clientAliases: [{ port: 80, dnsName: 'web' }] }],
  portMappings: [{ name: 'http', containerPort: 8080, appProtocol: 'http' }],
};

const cases: Array<{ name: string; env: Env; platform: Platform }> = [
  { name: 'ecs-awsvpc-ipv4', env: ecsBase, platform: awsvpc },
  {
    name: 'ecs-bridge',
    env: { ...ecsBase, APPNET_CONTAINER_IP_MAPPING: '{"ecs-service-connect-nconQf":"172.17.0.3","web":"172.17.0.4"}', APPNET_LISTENER_PORT_MAPPING: '{"egress":42304}' },
    platform: bridge,
  },
  { name: 'ecs-ipv6-only', env: { ...ecsBase, APPNET_CONTAINER_IP_MAPPING: '{"sc-container":"::1","web":"::1"}' }, platform: ipv6Only },
  { name: 'ecs-fips', env: { ...ecsBase, APPNET_FIPS_MODE_ENABLED: 'true' }, platform: awsvpc },
  { name: 'relay', env: relayBase, platform: bare },
  {
    name: 'relay-isolated-region-custom-endpoint',
    env: { ...relayBase, AWS_REGION: 'us-isof-south-1', APPMESH_XDS_ENDPOINT: 'https://ecs-sc.us-isof-south-1.csp.hci.ic.gov:8443', ENVOY_CONCURRENCY: '2', RELAY_STREAM_IDLE_TIMEOUT: '1h' },
    platform: bare,
  },
  {
    name: 'tracing-xray',
    env: { ...ecsBase, ENABLE_ENVOY_XRAY_TRACING: 'true', AWS_XRAY_DAEMON_ADDRESS: '[::1]:2001', XRAY_SAMPLING_RATE: '0.1451' },
    platform: awsvpc,
  },
  {
    name: 'tracing-xray-manifest',
    env: { ...ecsBase, ENABLE_ENVOY_XRAY_TRACING: '1', XRAY_SAMPLING_RULE_MANIFEST: `${fixtures}/xray-sampling.json`, XRAY_SEGMENT_NAME: 'web-frontend' },
    platform: awsvpc,
  },
  { name: 'tracing-datadog', env: { ...ecsBase, ENABLE_ENVOY_DATADOG_TRACING: 'true', DATADOG_TRACER_ADDRESS: 'datadog-agent.local', DD_SERVICE: 'web' }, platform: awsvpc },
  { name: 'tracing-jaeger', env: { ...ecsBase, ENABLE_ENVOY_JAEGER_TRACING: 'true', JAEGER_TRACER_VERSION: 'JSON', JAEGER_TRACER_PORT: '9412' }, platform: awsvpc },
  { name: 'dogstatsd-udp', env: { ...ecsBase, ENABLE_ENVOY_DOG_STATSD: 'true', STATSD_PORT: '8126', ENVOY_STATS_FLUSH_INTERVAL: '1m30s' }, platform: awsvpc },
  { name: 'dogstatsd-socket', env: { ...ecsBase, ENABLE_ENVOY_DOG_STATSD: 'true', STATSD_SOCKET_PATH: '/var/run/datadog/dsd.socket' }, platform: awsvpc },
  {
    name: 'stats-tags-mesh',
    env: { ...ecsBase, APPMESH_RESOURCE_ARN: 'mesh/shop/virtualNode/web', APPMESH_RESOURCE_CLUSTER: 'shop-web', ENABLE_ENVOY_STATS_TAGS: 'true', MAX_REQUESTS_PER_IO_CYCLE: '1' },
    platform: awsvpc,
  },
  { name: 'custom-tracing-file', env: { ...ecsBase, ENVOY_TRACING_CFG_FILE: `${fixtures}/custom/tracing.yaml`, ENABLE_ENVOY_XRAY_TRACING: 'true' }, platform: awsvpc },
  { name: 'custom-stats-config-file', env: { ...ecsBase, ENVOY_STATS_CONFIG_FILE: `${fixtures}/custom/stats-config.yaml` }, platform: awsvpc },
  { name: 'custom-stats-sinks-file', env: { ...ecsBase, ENVOY_STATS_SINKS_CFG_FILE: `${fixtures}/custom/stats-sinks.yaml`, ENABLE_ENVOY_DOG_STATSD: 'true' }, platform: awsvpc },
  { name: 'custom-resources-file', env: { ...ecsBase, ENVOY_RESOURCES_CONFIG_FILE: `${fixtures}/custom/resources.yaml`, APPMESH_SDS_SOCKET_PATH: '/var/run/sds.sock' }, platform: awsvpc },
  { name: 'envoy-config-file-as-given', env: { ...ecsBase, ENVOY_CONFIG_FILE: `${fixtures}/bootstrap/static.yaml` }, platform: awsvpc },
  {
    name: 'admin-tcp',
    env: { ...ecsBase, ENVOY_ADMIN_MODE: 'tcp', ENVOY_ADMIN_ACCESS_PORT: '19901', ENVOY_ADMIN_ACCESS_LOG_FILE: '/tmp/agent-golden/admin-access.log', ENVOY_INITIAL_FETCH_TIMEOUT: '30' },
    platform: awsvpc,
  },
  { name: 'admin-tcp-ipv6-all-interfaces', env: { ...ecsBase, ENVOY_ADMIN_MODE: 'tcp', ENVOY_ADMIN_ACCESS_ENABLE_IPV6: 'true' }, platform: awsvpc },
  { name: 'admin-uds', env: { ...ecsBase, ENVOY_ADMIN_MODE: 'uds', ENVOY_ADMIN_UDS_PATH: '/tmp/agent-golden/admin/envoy.sock', ENVOY_OUTLIER_DETECTION_EVENT_LOG_PATH: '/tmp/agent-golden/outlier.log' }, platform: awsvpc },
  {
    name: 'cloudmap',
    env: { APPNET_SERVICE_CONNECT_CONFIG: JSON.stringify(cloudMapDocument), AWS_REGION: 'us-west-2', APPNET_TASK_ID: 'web-1', APPNET_TASK_IPV4: '127.0.0.1', APPNET_RUNTIME_DIR: '/tmp/agent-golden/cloudmap', ENVOY_ADMIN_UDS_PATH: '/tmp/agent-golden/cloudmap/admin.sock' },
    platform: bare,
  },
];

function renderCase(env: Env, platform: Platform) {
  const config = readConfig(env, io);
  const rendered =
    config.userBootstrap === null ? renderBootstrap(config, platform) : { bootstrap: yaml().parse(readFileSync(config.userBootstrap.path, 'utf8')) as Record<string, unknown>, files: [] };
  const text = `# envoy ${envoyArgs(config).join(' ')}\n${serializeBootstrap(rendered.bootstrap, 'yaml')}`;
  return { config, rendered, text };
}

test('there are golden bootstraps for at least 15 environments', () => {
  assert.ok(cases.length >= 15, `${cases.length} cases`);
});

for (const c of cases) {
  test(`renderBootstrap for ${c.name} matches its golden file and Envoy 1.40 accepts it`, async (t) => {
    const { config, rendered, text } = renderCase(c.env, c.platform);
    assertGolden(`bootstrap/${c.name}.yaml`, text.replaceAll(repoRoot, '<repo>'));

    const envoy = requireEnvoy(t);
    if (envoy === null) return;
    const dir = mkdtempSync(join(tmpdir(), 'golden-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // The agent creates its runtime directory before it starts Envoy (the admin access log is opened there).
    mkdirSync(config.runtimeDir, { recursive: true });
    for (const f of rendered.files) {
      mkdirSync(dirname(f.path), { recursive: true });
      writeFileSync(f.path, f.content);
    }
    if (c.name === 'cloudmap') {
      // Filesystem xDS: Envoy reads these files at start; the Cloud Map layer writes them in a running agent.
      mkdirSync('/tmp/agent-golden/cloudmap', { recursive: true });
      writeFileSync('/tmp/agent-golden/cloudmap/lds.yaml', 'resources: []\n');
      writeFileSync('/tmp/agent-golden/cloudmap/cds.yaml', 'resources: []\n');
    }
    const path = join(dir, 'bootstrap.yaml');
    writeFileSync(path, text);
    const verdict = await validateBootstrap(envoy, path);
    assert.ok(verdict.ok, `Envoy rejected ${c.name}:\n${verdict.output}`);
  });
}

test('the same environment always renders the same bootstrap', () => {
  assert.equal(renderCase(ecsBase, awsvpc).text, renderCase(ecsBase, awsvpc).text);
});

test('an X-Ray sampling rate rounds to 2 decimals and is written as a version 2 rules file', () => {
  const { rendered } = renderCase({ ...ecsBase, ENABLE_ENVOY_XRAY_TRACING: 'true', XRAY_SAMPLING_RATE: '0.1451' }, awsvpc);
  assert.equal(rendered.files.length, 1);
  assert.deepEqual(JSON.parse(rendered.files[0]?.content ?? ''), { version: 2, default: { fixed_target: 1, rate: 0.15 }, rules: [] });
});

test('an X-Ray sampling rate of 0.05 (the X-Ray default) writes no rules file', () => {
  const { rendered } = renderCase({ ...ecsBase, ENABLE_ENVOY_XRAY_TRACING: 'true', XRAY_SAMPLING_RATE: '0.05' }, awsvpc);
  assert.equal(rendered.files.length, 0);
});

test('the ECS default argument vector matches the reference agent with concurrency from ENVOY_CONCURRENCY', () => {
  const config = readConfig({ ...ecsBase, ENVOY_CONCURRENCY: undefined }, io);
  assert.deepEqual(envoyArgs(config), ['-c', '/tmp/agent-golden/ecs/envoy-bootstrap.yaml', '-l', 'info', '--drain-time-s', '20', '--disable-hot-restart', '--skip-deprecated-logs']);
});

test('relay mode runs Envoy with concurrency 1 unless ENVOY_CONCURRENCY is set', () => {
  assert.deepEqual(envoyArgs(readConfig(relayBase, io)).slice(4, 6), ['--concurrency', '1']);
  assert.deepEqual(envoyArgs(readConfig({ ...relayBase, ENVOY_CONCURRENCY: '3' }, io)).slice(4, 6), ['--concurrency', '3']);
});

test('a user ENVOY_CONFIG_FILE is used as given in relay mode, and the admin address comes from it', () => {
  const config = readConfig({ ...relayBase, ENVOY_CONFIG_FILE: `${fixtures}/bootstrap/static.yaml` }, io);
  assert.equal(config.bootstrapPath, `${fixtures}/bootstrap/static.yaml`);
  assert.deepEqual(config.envoyAdmin.address, { kind: 'uds', path: '/tmp/agent-golden/static-admin.sock' });
  assert.deepEqual(config.userBootstrap, { path: `${fixtures}/bootstrap/static.yaml` });
});

test('an empty ENVOY_CONFIG_FILE is where the rendered bootstrap goes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'empty-config-'));
  try {
    writeFileSync(join(dir, 'envoy.yaml'), '');
    const config = readConfig({ ...ecsBase, ENVOY_CONFIG_FILE: join(dir, 'envoy.yaml') }, io);
    assert.equal(config.userBootstrap, null);
    assert.equal(config.bootstrapPath, join(dir, 'envoy.yaml'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
