/**
 * ENVOY_BINARY that names no Envoy, with `envoy --version` no longer on the start-up path: the agent still exits 3
 * with one clear line naming the variable and the value, and no stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentCommand, tempDir } from '../helpers/agent.ts';

function runAgent(env: Record<string, string>, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const [command, ...prefix] = agentCommand();
    execFile(command, prefix, { env: { PATH: process.env['PATH'] ?? '', ...env }, cwd, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code), stdout, stderr });
    });
  });
}

const staticEnv = (dir: string) => ({
  ENVOY_CONFIG_FILE: join(dir, 'envoy.json'),
  APPNET_RUNTIME_DIR: join(dir, 'runtime'),
  APPNET_AGENT_ADMIN_MODE: 'uds',
  APPNET_AGENT_ADMIN_UDS_PATH: join(dir, 'agent.sock'),
});

test('a missing Envoy binary: exit 3 with one line naming ENVOY_BINARY, and Envoy is never started', async (t) => {
  const dir = tempDir(t, 'envoy-missing-');
  writeFileSync(join(dir, 'envoy.json'), JSON.stringify({ admin: { address: { pipe: { path: join(dir, 'envoy.sock') } } } }));
  const r = await runAgent({ ...staticEnv(dir), ENVOY_BINARY: join(dir, 'no-such-envoy') }, dir);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /^agent: AGENT_ERR_ENVOY_NOT_FOUND: ENVOY_BINARY=".*no-such-envoy": cannot be run \(ENOENT\); set ENVOY_BINARY to Envoy's path\n$/);
  assert.doesNotMatch(r.stdout, /Envoy started/);
});

test('a binary that is not Envoy (no version from --version): exit 3 naming ENVOY_BINARY, not a restart loop', async (t) => {
  const dir = tempDir(t, 'envoy-not-envoy-');
  writeFileSync(join(dir, 'envoy.json'), JSON.stringify({ admin: { address: { pipe: { path: join(dir, 'envoy.sock') } } } }));
  const r = await runAgent({ ...staticEnv(dir), ENVOY_BINARY: '/bin/true', APPNET_ENVOY_RESTART_COUNT: '0' }, dir);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /^agent: AGENT_ERR_ENVOY_NOT_FOUND: ENVOY_BINARY="\/bin\/true": `--version` did not print a version \(exit 0\)\n$/);
});
