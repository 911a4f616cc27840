/** readConfig, the health rules, templates and the generated docs. Pure; no Envoy. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { configurationError, readConfig, envTable } from '../../agent/config/index.ts';
import { renderBootstrap } from '../../agent/bootstrap/index.ts';
import { relayMode } from '../../relay/index.ts';
import { computeHealth } from '../../agent/health/compute-health.ts';
import { declaredPlaceholders, fillTemplate, templateText } from '../../relay/index.ts';
import { generatedDocs } from '../../agent/docs.ts';
import { AgentError } from '../../agent/errors.ts';
import { repoRoot } from '../helpers/envoy.ts';

const io = { readFile: (p: string) => readFileSync(p, 'utf8') };
const ecs = { APPMESH_XDS_ENDPOINT: 'unix:///var/run/ecs/relay/envoy_xds.sock', APPMESH_RESOURCE_ARN: 'arn:aws:ecs:us-west-2:1:task-set/c/s/ecs-svc/1' };

test('readConfig applies the reference defaults and returns a deep-frozen, typed configuration', () => {
  const c = readConfig(ecs, io);
  assert.equal(c.mode, 'ecs');
  assert.equal(c.drainTimeS, 20);
  assert.equal(c.restartCount, 3);
  assert.equal(c.health.pollIntervalMs, 10_000);
  assert.equal(c.health.disconnectedTimeoutMs, 604_800_000);
  assert.equal(c.envoyLogLevel, 'info');
  assert.match(c.runtimeDir, /^\/tmp\/appnet-agent-[a-z2-7]{12}$/, 'unset: a runtime directory of its own');
  assert.equal(c.runtimeDirOwned, true);
  assert.deepEqual(c.envoyAdmin.address, { kind: 'uds', path: `${c.runtimeDir}/envoy_admin.sock` });
  assert.equal(c.envoyAdmin.accessLogPath, `${c.runtimeDir}/envoy_admin_access.log`);
  assert.equal(c.agentAdmin, null, 'no management interface unless APPNET_AGENT_ADMIN_MODE is set');
  assert.equal(Object.isFrozen(c), true);
  assert.equal(Object.isFrozen(c.envoyAdmin.address), true);
  assert.throws(() => {
    (c as { drainTimeS: number }).drainTimeS = 1;
  }, TypeError);
});

test('readConfig reads values as ECS sends them: UDS in capitals, 1 for true, surrounding spaces', () => {
  const c = readConfig({ ...ecs, ENVOY_ADMIN_MODE: 'UDS', APPNET_AGENT_ADMIN_MODE: 'uds', ENVOY_CONCURRENCY: ' 2 ', ENABLE_ENVOY_DOG_STATSD: '1' }, io);
  assert.equal(c.envoyAdmin.address.kind, 'uds');
  assert.deepEqual(c.agentAdmin, { kind: 'uds', path: '/var/run/ecs/appnet_admin.sock' });
  assert.equal(c.concurrency, 2);
  assert.deepEqual(c.dogStatsd, { address: '127.0.0.1', port: 8125 });
});

test('APPNET_AGENT_ADMIN_MODE present but empty starts the management interface on TCP 127.0.0.1:9902 (loopback, not every interface as in the reference)', () => {
  assert.deepEqual(readConfig({ ...ecs, APPNET_AGENT_ADMIN_MODE: '' }, io).agentAdmin, { kind: 'tcp', host: '127.0.0.1', port: 9902 });
  assert.deepEqual(readConfig({ ...ecs, APPNET_AGENT_ADMIN_MODE: 'tcp', APPNET_AGENT_HTTP_BIND_ADDRESS: '[::1]' }, io).agentAdmin, { kind: 'tcp', host: '::1', port: 9902 });
});

test('HC_POLL_INTERVAL_MS falls back to APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S when only that is set', () => {
  assert.equal(readConfig({ ...ecs, APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S: '3' }, io).health.pollIntervalMs, 3000);
  assert.equal(readConfig({ ...ecs, APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S: '3', HC_POLL_INTERVAL_MS: '4000' }, io).health.pollIntervalMs, 4000);
});

test('relay mode: the domain and port come from APPMESH_XDS_ENDPOINT, the curve from the partition', () => {
  const c = readConfig({ APPNET_ENABLE_RELAY_MODE_FOR_XDS: 'true', AWS_REGION: 'eu-isoe-west-1', APPMESH_XDS_ENDPOINT: 'https://ecs-sc.example:8443' }, io);
  assert.equal(c.relay?.domain, 'ecs-sc.example');
  assert.equal(c.relay?.port, 8443);
  assert.equal(c.relay?.tlsCurve, 'P-384');
  assert.equal(readConfig({ APPNET_ENABLE_RELAY_MODE_FOR_XDS: '1', AWS_REGION: 'cn-north-1' }, io).relay?.domain, 'ecs-sc.cn-north-1.api.amazonwebservices.com.cn');
});

test('readConfig collects every problem into one error instead of stopping at the first', () => {
  const err = (() => {
    try {
      readConfig({ ...ecs, LISTENER_DRAIN_WAIT_TIME_S: 'x', HC_POLL_INTERVAL_MS: 'y' }, io);
    } catch (e) {
      return e;
    }
    return null;
  })();
  assert.ok(err instanceof AgentError);
  assert.equal(err.code, 'AGENT_ERR_CONFIG');
  assert.equal(err.exitCode, 2);
  assert.equal(err.problems.length, 2);
});

test('variables with the agent prefixes that it does not know are reported (likely typos)', () => {
  assert.deepEqual(readConfig({ ...ecs, APPNET_AGENT_ADMIN_MOD: 'uds', HOME: '/root' }, io).unknownVariables, ['APPNET_AGENT_ADMIN_MOD']);
});

test('every table row has a default its own parser accepts', () => {
  for (const row of envTable) {
    if (row.default === undefined) continue;
    assert.equal(row.parser.parse(row.default).ok, true, `${row.name} default ${row.default}`);
  }
});

test('health: LIVE is HEALTHY; anything else is UNHEALTHY with a reason (reference cases)', () => {
  const base = { watchesManagementServer: true, connected: true, disconnectedSinceMs: null, listenerCreateFailures: 0, nowMs: 0, disconnectedTimeoutMs: 3_600_000 };
  assert.deepEqual(computeHealth({ ...base, envoyState: 'LIVE' }), { status: 'HEALTHY', reasons: [] });
  assert.equal(computeHealth({ ...base, envoyState: 'UNREACHABLE' }).status, 'UNHEALTHY');
  assert.deepEqual(computeHealth({ ...base, envoyState: 'INITIALIZING' }).reasons, ['Envoy is INITIALIZING, not LIVE']);
  assert.equal(computeHealth({ ...base, envoyState: 'LIVE', listenerCreateFailures: 1 }).status, 'UNHEALTHY');
  const day = 86_400_000;
  const disconnected = { ...base, envoyState: 'LIVE', connected: false, nowMs: 31 * day, disconnectedTimeoutMs: 7 * day };
  assert.equal(computeHealth({ ...disconnected, disconnectedSinceMs: 31 * day - 30 * 60_000 }).status, 'HEALTHY', 'disconnected 30 min');
  assert.equal(computeHealth({ ...disconnected, disconnectedSinceMs: day }).status, 'UNHEALTHY', 'disconnected 30 days');
  assert.equal(computeHealth({ ...disconnected, watchesManagementServer: relayMode.watchesManagementServer, disconnectedSinceMs: day }).status, 'HEALTHY', 'relay ignores the control plane');
  assert.equal(computeHealth({ ...disconnected, connected: null, disconnectedSinceMs: null }).status, 'HEALTHY', 'never observed: disconnected since now, no crash');
});

test('the relay template declares exactly the placeholders it uses, and filling it leaves none', () => {
  const text = templateText('relay');
  const values = Object.fromEntries(declaredPlaceholders(text).map((k) => [k, `value-of-${k}`]));
  const filled = JSON.stringify(fillTemplate('relay', values));
  assert.doesNotMatch(filled, /\$\{/);
  assert.throws(() => fillTemplate('relay', { ...values, EXTRA: 1 }), /undeclared placeholder \$\{EXTRA\}/);
  const { REGION: _omitted, ...missing } = values;
  assert.throws(() => fillTemplate('relay', missing), /no value for placeholder \$\{REGION\}/);
});

test('docs/ reference pages match the code that generates them (run `npm run docs` when this fails)', () => {
  for (const [path, content] of Object.entries(generatedDocs())) {
    assert.ok(readFileSync(`${repoRoot}/${path}`, 'utf8') === content, `${path} is stale: run npm run docs`);
  }
});

test('a large YAML bootstrap given as is is read for its admin block only', async () => {
  const { topLevelBlock } = await import('../../agent/config/read-config.ts');
  const text = 'static_resources:\n  clusters: []\nadmin:\n  address:\n    pipe:\n      path: /tmp/a.sock\n# comment\n\nlayered_runtime: {}\n';
  assert.equal(topLevelBlock(text, 'admin'), 'admin:\n  address:\n    pipe:\n      path: /tmp/a.sock\n# comment\n');
  assert.equal(topLevelBlock('{"admin": {}}', 'admin'), null);
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const dir = mkdtempSync('/tmp/large-bootstrap-');
  try {
    const clusters = Array.from({ length: 3000 }, (_, i) => `    - name: c${i}\n      type: STATIC\n      connect_timeout: 1s\n`).join('');
    writeFileSync(`${dir}/envoy.yaml`, `static_resources:\n  clusters:\n${clusters}admin:\n  address:\n    socket_address: { address: 127.0.0.1, port_value: 19000 }\n`);
    const c = readConfig({ ENVOY_CONFIG_FILE: `${dir}/envoy.yaml` }, io);
    assert.deepEqual(c.envoyAdmin.address, { kind: 'tcp', host: '127.0.0.1', port: 19000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the README links to every generated reference page, and its commands are npm scripts', () => {
  const readme = readFileSync(`${repoRoot}/README.md`, 'utf8');
  for (const path of Object.keys(generatedDocs())) assert.ok(readme.includes(`](${path})`), `README links ${path}`);
  const scripts = Object.keys((JSON.parse(readFileSync(`${repoRoot}/package.json`, 'utf8')) as { scripts: Record<string, string> }).scripts);
  for (const m of readme.matchAll(/npm run ([a-z:]+)/g)) assert.ok(scripts.includes(m[1] ?? ''), `npm run ${m[1]} exists`);
  const ci = readFileSync(`${repoRoot}/.ci/run`, 'utf8');
  assert.match(ci, /^npm test$/m, '.ci/run runs the README test command');
  assert.match(readme, /^npm test /m);
});

test('two agents reading the same environment get different runtime directories; a configured one is shared and not owned', () => {
  const a = readConfig(ecs, io);
  const b = readConfig(ecs, io);
  assert.notEqual(a.runtimeDir, b.runtimeDir);
  assert.notEqual(a.envoyAdmin.address, b.envoyAdmin.address);
  const fixed = readConfig({ ...ecs, APPNET_RUNTIME_DIR: '/run/appnet', ENVOY_ADMIN_ACCESS_LOG_FILE: '/dev/null' }, { ...io, randomName: () => 'unused' });
  assert.equal(fixed.runtimeDir, '/run/appnet');
  assert.equal(fixed.runtimeDirOwned, false);
  assert.deepEqual(fixed.envoyAdmin.address, { kind: 'uds', path: '/run/appnet/envoy_admin.sock' });
  assert.equal(fixed.envoyAdmin.accessLogPath, '/dev/null');
});

test('relay mode: APPNET_RELAY_CA_FILE unset takes the first system CA bundle that is one; none found is a problem naming the variable', () => {
  const relay = { APPNET_ENABLE_RELAY_MODE_FOR_XDS: 'true', AWS_REGION: 'us-west-2' };
  const pem = '-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n';
  const only = (files: Record<string, string>) => ({
    readFile: (p: string) => {
      if (p in files) return files[p] ?? '';
      throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
    },
  });
  assert.equal(readConfig(relay, only({ '/etc/ssl/certs/ca-certificates.crt': pem })).relay?.caFile, '/etc/ssl/certs/ca-certificates.crt');
  assert.equal(readConfig(relay, only({ '/etc/pki/tls/cert.pem': pem, '/etc/ssl/certs/ca-certificates.crt': pem })).relay?.caFile, '/etc/pki/tls/cert.pem');
  assert.equal(readConfig(relay, only({ '/etc/pki/tls/cert.pem': 'not a bundle', '/etc/ssl/cert.pem': pem })).relay?.caFile, '/etc/ssl/cert.pem');
  assert.throws(
    () => readConfig(relay, only({})),
    (err: AgentError) => err.problems.length === 1 && /^APPNET_RELAY_CA_FILE="": must be set in relay mode on this system: none of \/etc\/pki\/tls\/cert.pem, /.test(err.problems[0] ?? ''),
  );
});

// Issue 11: the Service Connect document, AWS_REGION and APPNET_TASK_* were checked only when Cloud Map mode opened,
// after Envoy's version had been probed and the runtime directory claimed. readConfig checks them now, so
// `agent render` and `agent run` refuse the same configuration before anything is probed or written.
const serviceConnect = (services: unknown[]) =>
  JSON.stringify({ namespace: 'demo.local', services, portMappings: [{ name: 'web', containerPort: 8080, appProtocol: 'http' }] });

test('readConfig refuses a Service Connect document that breaks ECS rules, under its own name, before anything runs', () => {
  assert.throws(
    () => readConfig({ AWS_REGION: 'us-west-2', APPNET_SERVICE_CONNECT_CONFIG: JSON.stringify({ namespace: 'demo.local', services: [{ portName: 'nope' }] }) }, io),
    (err: AgentError) =>
      err.code === 'AGENT_ERR_CONFIG' &&
      err.message === 'APPNET_SERVICE_CONNECT_CONFIG has 1 problem:' &&
      /^APPNET_SERVICE_CONNECT_CONFIG: services\[0\]\.portName="nope": must name one of portMappings/.test(err.problems[0] ?? ''),
  );
});

test('readConfig in Cloud Map mode lists a missing AWS_REGION and missing APPNET_TASK_ID and APPNET_TASK_IPV4 together', () => {
  assert.throws(
    () => readConfig({ APPNET_SERVICE_CONNECT_CONFIG: serviceConnect([{ portName: 'web' }]) }, io),
    (err: AgentError) =>
      err.message === 'the configuration has 3 problems:' &&
      err.problems.join('\n') ===
        [
          'APPNET_TASK_IPV4="": must be set when services[] is not empty (no task metadata endpoint): instances are registered with it',
          'APPNET_TASK_ID="": must be set when services[] is not empty (no task metadata endpoint): it names the instances',
          'AWS_REGION="": must be set in Cloud Map mode: the Cloud Map client needs a region',
        ].join('\n'),
  );
});

test('readConfig in Cloud Map mode: a client-only task, or one with a task metadata endpoint, needs no APPNET_TASK_*', () => {
  const clientOnly = readConfig({ AWS_REGION: 'us-west-2', APPNET_SERVICE_CONNECT_CONFIG: serviceConnect([]) }, io);
  assert.equal(clientOnly.cloudMap?.serviceConnect.namespace, 'demo.local');
  assert.equal(clientOnly.cloudMap?.region, 'us-west-2');
  const withMetadata = readConfig({ AWS_REGION: 'us-west-2', ECS_CONTAINER_METADATA_URI_V4: 'http://169.254.170.2/v4/abc', APPNET_SERVICE_CONNECT_CONFIG: serviceConnect([{ portName: 'web' }]) }, io);
  assert.deepEqual(withMetadata.cloudMap?.serviceConnect.services.map((s) => s.discoveryName), ['web']);
});

test('relay mode reads its section through relay/: no region and no domain is one problem naming AWS_REGION', () => {
  assert.throws(
    () => readConfig({ APPNET_ENABLE_RELAY_MODE_FOR_XDS: 'true' }, io),
    (err: AgentError) => err.problems.length === 1 && /^AWS_REGION="": must be set in relay mode/.test(err.problems[0] ?? ''),
  );
});

test('custom bootstrap files that clash with the agent fail as a configuration error: "the custom bootstrap files have N conflict(s):", exit 2, one line per clash', () => {
  // Pins the wording and exit code the custom-file check had before it went through configurationError.
  const bare = { interfaces: { ipv4: {}, ipv6: {} }, kernelVersion: null, machine: null, task: null };
  const failure = (env: Record<string, string>): AgentError => {
    try {
      renderBootstrap(readConfig(env, io), bare);
    } catch (e) {
      assert.ok(e instanceof AgentError);
      return e;
    }
    assert.fail('renderBootstrap accepted a conflicting custom file');
  };
  const one = failure({ ...ecs, ENVOY_RESOURCES_CONFIG_FILE: `${repoRoot}/test/fixtures/custom/conflicting-admin.yaml` });
  assert.equal(one.code, 'AGENT_ERR_CONFIG');
  assert.equal(one.exitCode, 2);
  assert.equal(one.message, 'the custom bootstrap files have 1 conflict:');
  assert.match(one.problems[0] ?? '', /^ENVOY_RESOURCES_CONFIG_FILE=".*conflicting-admin.yaml": sets admin\.address\.socket_address/);
  assert.equal(configurationError(['a', 'b'], { subject: 'the custom bootstrap files', plural: true, noun: 'conflict' }).message, 'the custom bootstrap files have 2 conflicts:');
  assert.equal(configurationError(['a']).message, 'the configuration has 1 problem:');
});

test('the reference says what readConfig requires: AWS_REGION in relay and Cloud Map modes, APPNET_TASK_* when the document has services', () => {
  // Pins the help text against the checks: AWS_REGION's doc once said "Required in relay mode" only.
  const doc = (name: string) => envTable.find((row) => row.name === name)?.doc ?? '';
  assert.match(doc('AWS_REGION'), /Required in relay and Cloud Map modes/);
  for (const name of ['APPNET_TASK_ID', 'APPNET_TASK_IPV4']) assert.match(doc(name), /Required then when the Service Connect document has services/);
  assert.throws(() => readConfig({ APPNET_SERVICE_CONNECT_CONFIG: '{"namespace":"n","services":[],"portMappings":[]}' }, io), /has 1 problem/);
});
