/** The single executable (npm run build:binary) as the container runs it: --version, --help and render, no Node needed. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { binaryPath } from '../helpers/agent.ts';
import { repoRoot, requireEnvoy } from '../helpers/envoy.ts';

test('the single executable runs without Node on PATH: --version names the agent and the Envoy it finds', (t) => {
  const envoy = requireEnvoy(t);
  if (envoy === null) return;
  if (!existsSync(binaryPath)) execFileSync(process.execPath, [`${repoRoot}/scripts/build-binary.ts`], { cwd: repoRoot, stdio: 'ignore' });
  const out = execFileSync(binaryPath, ['--version'], { env: { PATH: '/usr/bin:/bin', ENVOY_BINARY: envoy }, encoding: 'utf8' });
  assert.match(out, /^agent \d+\.\d+\.\d+\nenvoy [0-9a-f]+\/1\.40\.\d+\/Clean\/RELEASE\/BoringSSL \(.+\)\n$/);
  assert.match(execFileSync(binaryPath, ['--help'], { env: { PATH: '/usr/bin:/bin' }, encoding: 'utf8' }), /LISTENER_DRAIN_WAIT_TIME_S \[20 s\]/);
});

test('the single executable renders the relay bootstrap from the template inside it, with no files beside it', (t) => {
  const envoy = requireEnvoy(t);
  if (envoy === null) return;
  if (!existsSync(binaryPath)) execFileSync(process.execPath, [`${repoRoot}/scripts/build-binary.ts`], { cwd: repoRoot, stdio: 'ignore' });
  const out = execFileSync(binaryPath, ['render', '--format', 'json'], {
    cwd: '/',
    env: { PATH: '/usr/bin:/bin', ENVOY_BINARY: envoy, APPNET_ENABLE_RELAY_MODE_FOR_XDS: '1', AWS_REGION: 'us-west-2' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const bootstrap = JSON.parse(out) as { static_resources: { clusters: Array<{ transport_socket: { typed_config: { sni: string } } }> } };
  assert.equal(bootstrap.static_resources.clusters[0]?.transport_socket.typed_config.sni, 'ecs-sc.us-west-2.api.aws');
});
