/**
 * Bad input, run as the user runs it: the built agent with a bad environment exits 2 with one line per problem
 * naming the variable, the value and the rule, prints no stack trace, and writes no file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { agentCommand, tempDir } from '../helpers/agent.ts';
import { repoRoot } from '../helpers/envoy.ts';

const fixtures = `${repoRoot}/test/fixtures`;
const ecs = {
  APPMESH_XDS_ENDPOINT: 'unix:///var/run/ecs/relay/envoy_xds.sock',
  APPMESH_RESOURCE_ARN: 'arn:aws:ecs:us-west-2:123456789012:task-set/prod/web/ecs-svc/1',
};

/** Each case: the environment, and the problem lines expected (as regexes), one per problem. */
const cases: Array<{ name: string; env: Record<string, string>; problems: RegExp[] }> = [
  { name: 'drain time not a number', env: { ...ecs, LISTENER_DRAIN_WAIT_TIME_S: 'abc' }, problems: [/^LISTENER_DRAIN_WAIT_TIME_S="abc": must be an integer from 5 to 110$/] },
  { name: 'drain time above range', env: { ...ecs, LISTENER_DRAIN_WAIT_TIME_S: '111' }, problems: [/^LISTENER_DRAIN_WAIT_TIME_S="111": must be an integer from 5 to 110$/] },
  { name: 'drain time below range', env: { ...ecs, LISTENER_DRAIN_WAIT_TIME_S: '4' }, problems: [/^LISTENER_DRAIN_WAIT_TIME_S="4": must be an integer from 5 to 110$/] },
  { name: 'restart count above 10', env: { ...ecs, APPNET_ENVOY_RESTART_COUNT: '11' }, problems: [/^APPNET_ENVOY_RESTART_COUNT="11": must be an integer from 0 to 10$/] },
  { name: 'negative restart count', env: { ...ecs, APPNET_ENVOY_RESTART_COUNT: '-1' }, problems: [/^APPNET_ENVOY_RESTART_COUNT="-1": must be an integer from 0 to 10$/] },
  { name: 'health poll interval too small', env: { ...ecs, HC_POLL_INTERVAL_MS: '100' }, problems: [/^HC_POLL_INTERVAL_MS="100": must be an integer from 2000 to 30000$/] },
  { name: 'disconnected timeout a float', env: { ...ecs, HC_DISCONNECTED_TIMEOUT_S: '3600.5' }, problems: [/^HC_DISCONNECTED_TIMEOUT_S="3600.5": must be an integer from 3600 to 604800$/] },
  { name: 'agent port out of range', env: { ...ecs, APPNET_AGENT_ADMIN_MODE: 'tcp', APPNET_AGENT_HTTP_PORT: '70000' }, problems: [/^APPNET_AGENT_HTTP_PORT="70000": must be an integer from 1 to 65535$/] },
  { name: 'admin port not a number', env: { ...ecs, ENVOY_ADMIN_MODE: 'tcp', ENVOY_ADMIN_ACCESS_PORT: '99o1' }, problems: [/^ENVOY_ADMIN_ACCESS_PORT="99o1": must be an integer from 1 to 65535$/] },
  { name: 'bad boolean', env: { ...ecs, DISABLE_HOT_RESTART: 'yes' }, problems: [/^DISABLE_HOT_RESTART="yes": must be a boolean: true, false, 1, 0, t, f/] },
  { name: 'bad relay boolean', env: { APPNET_ENABLE_RELAY_MODE_FOR_XDS: 'on' }, problems: [/^APPNET_ENABLE_RELAY_MODE_FOR_XDS="on": must be a boolean/, /^APPMESH_XDS_ENDPOINT="": no mode selected/] },
  { name: 'unknown log level', env: { ...ecs, ENVOY_LOG_LEVEL: 'verbose' }, problems: [/^ENVOY_LOG_LEVEL="verbose": must be one of trace, debug, info, warn, warning, error, critical, off \(any case\)$/] },
  { name: 'unknown admin mode', env: { ...ecs, APPNET_AGENT_ADMIN_MODE: 'http' }, problems: [/^APPNET_AGENT_ADMIN_MODE="http": must be one of tcp, uds \(any case\)$/] },
  { name: 'listener port mapping not JSON', env: { ...ecs, APPNET_LISTENER_PORT_MAPPING: '{egress:1}' }, problems: [/^APPNET_LISTENER_PORT_MAPPING="\{egress:1\}": must be a JSON object mapping names to ports from 1 to 65535 \(/] },
  { name: 'listener port mapping with a string port', env: { ...ecs, APPNET_LISTENER_PORT_MAPPING: '{"egress":"38221"}' }, problems: [/^APPNET_LISTENER_PORT_MAPPING=.*: must be a JSON object mapping names to ports from 1 to 65535; "egress" is "38221"$/] },
  { name: 'container IP mapping with a bad IP', env: { ...ecs, APPNET_CONTAINER_IP_MAPPING: '{"web":"10.0.0.300"}' }, problems: [/^APPNET_CONTAINER_IP_MAPPING=.*: must be a JSON object mapping names to IP addresses; "web" is "10.0.0.300"$/] },
  { name: 'container IP mapping an array', env: { ...ecs, APPNET_CONTAINER_IP_MAPPING: '["10.0.0.1"]' }, problems: [/^APPNET_CONTAINER_IP_MAPPING=.*: must be a JSON object mapping names to IP addresses$/] },
  {
    name: 'two tracers',
    env: { ...ecs, ENABLE_ENVOY_XRAY_TRACING: '1', ENABLE_ENVOY_DATADOG_TRACING: 'true' },
    problems: [/^ENABLE_ENVOY_XRAY_TRACING="1": only one tracer can be enabled/, /^ENABLE_ENVOY_DATADOG_TRACING="true": only one tracer can be enabled/],
  },
  { name: 'no node id in ECS-managed mode', env: { APPMESH_XDS_ENDPOINT: ecs.APPMESH_XDS_ENDPOINT }, problems: [/^APPMESH_RESOURCE_ARN="": must be set in ECS-managed mode/] },
  { name: 'App Mesh regional endpoint', env: { ...ecs, APPMESH_XDS_ENDPOINT: 'appmesh-envoy-management.us-west-2.amazonaws.com:443' }, problems: [/^APPMESH_XDS_ENDPOINT=".*": must be unix:\/\/<path of the relay socket>/] },
  { name: 'no mode at all', env: {}, problems: [/^APPMESH_XDS_ENDPOINT="": no mode selected/] },
  { name: 'unreadable custom file', env: { ...ecs, ENVOY_RESOURCES_CONFIG_FILE: '/nonexistent/resources.yaml' }, problems: [/^ENVOY_RESOURCES_CONFIG_FILE="\/nonexistent\/resources.yaml": must name a readable file \(ENOENT\)$/] },
  { name: 'malformed custom file', env: { ...ecs, ENVOY_STATS_CONFIG_FILE: `${fixtures}/custom/malformed.yaml` }, problems: [/^ENVOY_STATS_CONFIG_FILE=".*malformed.yaml": must contain YAML or JSON \(/] },
  { name: 'empty tracing file', env: { ...ecs, ENVOY_TRACING_CFG_FILE: `${fixtures}/custom/empty.yaml` }, problems: [/^ENVOY_TRACING_CFG_FILE=".*empty.yaml": must name a file that is not empty$/] },
  { name: 'sinks file without stats_sinks', env: { ...ecs, ENVOY_STATS_SINKS_CFG_FILE: `${fixtures}/custom/sinks-without-sinks.yaml` }, problems: [/^ENVOY_STATS_SINKS_CFG_FILE=".*": must define stats_sinks$/] },
  {
    name: 'custom tracing file conflicting with a built-in tracer',
    env: { ...ecs, ENABLE_ENVOY_XRAY_TRACING: 'true', ENVOY_RESOURCES_CONFIG_FILE: `${fixtures}/custom/conflicting-tracing.yaml` },
    problems: [/^ENVOY_RESOURCES_CONFIG_FILE=".*conflicting-tracing.yaml": sets tracing.http.name, which the agent already sets to "envoy.tracers.xray"$/],
  },
  {
    name: 'custom file conflicting with the admin address',
    env: { ...ecs, ENVOY_RESOURCES_CONFIG_FILE: `${fixtures}/custom/conflicting-admin.yaml` },
    problems: [/^ENVOY_RESOURCES_CONFIG_FILE=".*conflicting-admin.yaml": sets admin.address.socket_address, which the agent already sets as admin.address.pipe$/],
  },
  { name: 'X-Ray address a host name', env: { ...ecs, ENABLE_ENVOY_XRAY_TRACING: 'true', AWS_XRAY_DAEMON_ADDRESS: 'xray.local:2000' }, problems: [/^AWS_XRAY_DAEMON_ADDRESS="xray.local:2000": must be an IP address/] },
  { name: 'sampling rate above 1', env: { ...ecs, ENABLE_ENVOY_XRAY_TRACING: 'true', XRAY_SAMPLING_RATE: '1.5' }, problems: [/^XRAY_SAMPLING_RATE="1.5": must be a number from 0 to 1$/] },
  { name: 'stats flush interval not a duration', env: { ...ecs, ENVOY_STATS_FLUSH_INTERVAL: '5 seconds' }, problems: [/^ENVOY_STATS_FLUSH_INTERVAL="5 seconds": must be a duration such as 500ms, 15s, 1m30s or 1h/] },
  { name: 'relay without a region', env: { APPNET_ENABLE_RELAY_MODE_FOR_XDS: 'true' }, problems: [/^AWS_REGION="": must be set in relay mode/] },
  { name: 'relay CA file missing', env: { APPNET_ENABLE_RELAY_MODE_FOR_XDS: 'true', AWS_REGION: 'us-west-2', APPNET_RELAY_CA_FILE: '/nonexistent/ca.pem' }, problems: [/^APPNET_RELAY_CA_FILE="\/nonexistent\/ca.pem": must name a readable CA bundle \(ENOENT\)$/] },
  { name: 'relative path', env: { ...ecs, ENVOY_ADMIN_UDS_PATH: 'envoy.sock' }, problems: [/^ENVOY_ADMIN_UDS_PATH="envoy.sock": must be an absolute path$/] },
  { name: 'Service Connect config not JSON', env: { APPNET_SERVICE_CONNECT_CONFIG: '{namespace: demo}' }, problems: [/^APPNET_SERVICE_CONNECT_CONFIG="\{namespace: demo\}": must be a JSON document \(/] },
  { name: 'Service Connect config given twice', env: { APPNET_SERVICE_CONNECT_CONFIG: '{}', APPNET_SERVICE_CONNECT_CONFIG_FILE: '/tmp/sc.json' }, problems: [/^APPNET_SERVICE_CONNECT_CONFIG_FILE="\/tmp\/sc.json": must not be set together with APPNET_SERVICE_CONNECT_CONFIG/] },
  {
    name: 'several problems at once, each on its own line',
    env: { ...ecs, LISTENER_DRAIN_WAIT_TIME_S: '0', ENVOY_LOG_LEVEL: 'loud', APPNET_ENVOY_RESTART_COUNT: 'many' },
    problems: [/^ENVOY_LOG_LEVEL="loud"/, /^APPNET_ENVOY_RESTART_COUNT="many"/, /^LISTENER_DRAIN_WAIT_TIME_S="0"/],
  },
];

function runAgent(env: Record<string, string>, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const [command, ...prefix] = agentCommand();
    execFile(command, prefix, { env: { PATH: process.env['PATH'] ?? '', ...env }, cwd, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code), stdout, stderr });
    });
  });
}

test('the bad-input table has at least 25 environments', () => {
  assert.ok(cases.length >= 25, `${cases.length}`);
});

for (const c of cases) {
  test(`bad input: ${c.name} → exit 2, one line per problem, no stack trace, no file written`, async (t) => {
    const dir = tempDir(t, 'bad-input-');
    const runtime = join(dir, 'runtime');
    const socket = join(dir, 'agent.sock');
    const r = await runAgent({ APPNET_RUNTIME_DIR: runtime, APPNET_AGENT_ADMIN_MODE: 'uds', APPNET_AGENT_ADMIN_UDS_PATH: socket, ENVOY_BINARY: '/bin/true', ...c.env }, dir);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^agent: AGENT_ERR_CONFIG: the (configuration has \d+ problems?|custom bootstrap files have \d+ conflicts?):$/);
    const problems = lines.slice(1).map((l) => l.replace(/^ {2}/, ''));
    assert.equal(problems.length, c.problems.length, `one line per problem:\n${r.stderr}`);
    for (const re of c.problems) assert.ok(problems.some((p) => re.test(p)), `expected a line matching ${re}:\n${r.stderr}`);
    for (const p of problems) assert.match(p, /^[A-Z][A-Z0-9_]+=".*": .+/, 'each line names the variable, the value and the rule');
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.doesNotMatch(r.stdout, /"level":"error"|Envoy started/, 'nothing was started');
    assert.equal(existsSync(runtime), false, 'no runtime directory written');
    assert.deepEqual(readdirSync(dir), [], 'no file written');
  });
}

test('render --validate exits 4 with Envoy\'s own words when Envoy rejects a bootstrap given as is', async (t) => {
  const dir = tempDir(t, 'render-invalid-');
  const bad = join(dir, 'envoy.yaml');
  writeFileSync(bad, 'admin: { address: { pipe: { path: /tmp/x.sock } } }\nstatic_resources: { clusters: [ { name: a, connect_timeout: -1s } ] }\n');
  const fakeEnvoy = join(dir, 'envoy');
  // FAKE: an "Envoy" that rejects every bootstrap, so this test needs no real Envoy; the real verdicts are in
  // test/unit/bootstrap-golden.test.ts.
  writeFileSync(fakeEnvoy, '#!/bin/sh\nif [ "$1" = --version ]; then echo "envoy  version: abc/1.40.0/Clean/RELEASE/BoringSSL"; exit 0; fi\necho "error initializing configuration: bad duration" >&2\nexit 1\n');
  chmodSync(fakeEnvoy, 0o755);
  const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
    execFile(agentCommand()[0], [...agentCommand().slice(1), 'render', '--validate'], { env: { ENVOY_BINARY: fakeEnvoy, ENVOY_CONFIG_FILE: bad } }, (err, _o, stderr) => resolve({ code: err === null ? 0 : Number((err as { code?: number }).code), stderr })),
  );
  assert.equal(r.code, 4);
  assert.match(r.stderr, /AGENT_ERR_BOOTSTRAP_INVALID: Envoy abc\/1.40.0\/Clean\/RELEASE\/BoringSSL rejected the bootstrap:\nerror initializing configuration: bad duration/);
});
