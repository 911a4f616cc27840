/**
 * Relay mode on a machine without Amazon Linux's CA path (this Debian machine): APPNET_RELAY_CA_FILE defaulted to
 * /etc/pki/tls/cert.pem and Envoy rejected the relay bootstrap with `Invalid path`, naming no variable. Unset, the
 * agent now uses the system CA bundle it finds; set to a file that is missing, it is a configuration error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { agentCommand } from '../helpers/agent.ts';
import { requireEnvoy } from '../helpers/envoy.ts';
import { CA_BUNDLES } from '../../agent/config/table.ts';

function run(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const [command, ...prefix] = agentCommand();
  return new Promise((resolve) =>
    execFile(command, [...prefix, ...args], { cwd: '/', env: { PATH: '/usr/bin:/bin', ...env }, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code), stdout, stderr }),
    ),
  );
}

const relay = { APPNET_ENABLE_RELAY_MODE_FOR_XDS: 'true', AWS_REGION: 'us-west-2' };

test('agent render --validate in relay mode passes with no CA variable set, using the system CA bundle', async (t) => {
  const envoy = requireEnvoy(t);
  if (envoy === null) return;
  const expected = CA_BUNDLES.find((p) => existsSync(p));
  assert.ok(expected !== undefined, `this machine has a system CA bundle: ${CA_BUNDLES.join(', ')}`);
  const r = await run(['render', '--validate', '--format', 'json'], { ...relay, ENVOY_BINARY: envoy });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /: the bootstrap is valid\n$/);
  const doc = JSON.parse(r.stdout) as { static_resources: { clusters: Array<{ transport_socket: { typed_config: { common_tls_context: { validation_context: { trusted_ca: { filename: string } } } } } }> } };
  assert.equal(doc.static_resources.clusters[0]?.transport_socket.typed_config.common_tls_context.validation_context.trusted_ca.filename, expected);
});

test('a missing APPNET_RELAY_CA_FILE is a configuration error naming the variable, before Envoy is asked', async (t) => {
  const envoy = requireEnvoy(t);
  if (envoy === null) return;
  const r = await run(['render', '--validate'], { ...relay, ENVOY_BINARY: envoy, APPNET_RELAY_CA_FILE: '/etc/pki/tls/no-such-bundle.pem' });
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr, 'agent: AGENT_ERR_CONFIG: the configuration has 1 problem:\n  APPNET_RELAY_CA_FILE="/etc/pki/tls/no-such-bundle.pem": must name a readable CA bundle (ENOENT)\n');
  const notPem = await run(['render'], { ...relay, ENVOY_BINARY: envoy, APPNET_RELAY_CA_FILE: '/etc/hostname' });
  assert.equal(notPem.code, 2);
  assert.match(notPem.stderr, /APPNET_RELAY_CA_FILE="\/etc\/hostname": must name a CA bundle: PEM certificates/);
});
