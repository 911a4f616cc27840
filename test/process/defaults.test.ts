/**
 * Two agents on one host, started as users start them: the single executable with every path left at its default.
 * Each must have its own runtime directory and Envoy admin socket (the fixed defaults made one agent load the
 * other's listeners and stop the other's Envoy); a path given to both, or the management socket the ECS agent's
 * contract fixes, is refused with one line naming the variable, and never taken over.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { agentCommand, isAlive, startAgent, tempDir, waitHealthy, type AgentProcess } from '../helpers/agent.ts';
import { requireEnvoy } from '../helpers/envoy.ts';
import { httpRequest } from '../helpers/http.ts';
import { waitFor } from '../helpers/wait.ts';

/** ECS-managed mode, the sidecar's: only the mode's own variables, no path. The relay socket does not exist. */
const sidecar = (envoy: string): Record<string, string> => ({
  ENVOY_BINARY: envoy,
  APPMESH_XDS_ENDPOINT: 'unix:///var/run/ecs/relay/no-relay-here.sock',
  APPMESH_RESOURCE_ARN: 'arn:aws:ecs:us-west-2:123456789012:task-set/prod/web/ecs-svc/1',
  ENVOY_LOG_LEVEL: 'critical',
  APPNET_AGENT_LOG_LEVEL: 'info',
});

async function envoyOf(agent: AgentProcess): Promise<{ pid: number; bootstrap: string; adminSocket: string }> {
  const started = await agent.waitForLog('Envoy started', (l) => l['msg'] === 'Envoy started');
  const argv = (await agent.waitForLog('starting Envoy', (l) => l['msg'] === 'starting Envoy'))['argv'] as string[];
  const bootstrap = argv[argv.indexOf('-c') + 1] ?? '';
  const doc = JSON.parse(readFileSync(bootstrap, 'utf8')) as { admin: { address: { pipe: { path: string } } } };
  return { pid: Number(started['pid']), bootstrap, adminSocket: doc.admin.address.pipe.path };
}

function run(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const [command, ...prefix] = agentCommand();
  return new Promise((resolve) =>
    execFile(command, [...prefix, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code), stdout, stderr }),
    ),
  );
}

test('two agents with every path at its default each get their own runtime directory and Envoy admin socket, and stopping one leaves the other running', async (t) => {
  const envoy = requireEnvoy(t);
  if (envoy === null) return;
  const a = startAgent(t, { defaults: true, env: sidecar(envoy) });
  const b = startAgent(t, { defaults: true, env: sidecar(envoy) });
  const [ea, eb] = await Promise.all([envoyOf(a), envoyOf(b)]);
  assert.notEqual(ea.bootstrap, eb.bootstrap, 'each agent has its own bootstrap');
  assert.notEqual(ea.adminSocket, eb.adminSocket, 'each Envoy has its own admin socket');
  const dirA = ea.bootstrap.slice(0, ea.bootstrap.lastIndexOf('/'));
  assert.match(dirA, /^\/tmp\/appnet-agent-[a-z2-7]{12}$/);
  assert.equal(statSync(dirA).mode & 0o777, 0o700);
  // Both Envoys answer on their own sockets.
  for (const e of [ea, eb]) await waitFor('Envoy admin answers', async () => (await httpRequest({ socketPath: e.adminSocket }, '/ready')).status > 0);

  a.child.kill('SIGTERM');
  assert.equal((await a.exited).code, 0, a.stderr());
  assert.equal(isAlive(ea.pid), false, "the stopped agent's Envoy is gone");
  assert.equal(existsSync(dirA), false, 'the runtime directory the agent chose is removed when it stops');
  assert.equal(isAlive(eb.pid), true, "the other agent's Envoy still runs");
  assert.ok((await httpRequest({ socketPath: eb.adminSocket }, '/ready')).status > 0, "the other Envoy's admin still answers");
  assert.equal(b.child.exitCode, null, 'the other agent still runs');
});

test('a second agent on the default management socket (/var/run/ecs/appnet_admin.sock) is refused with one line naming APPNET_AGENT_ADMIN_UDS_PATH; healthcheck still finds the first', async (t) => {
  const envoy = requireEnvoy(t);
  if (envoy === null) return;
  const dir = tempDir(t);
  const mesh = join(dir, 'envoy.yaml');
  writeFileSync(mesh, `admin: { address: { pipe: { path: ${join(dir, 'first-admin.sock')} } } }\n`);
  const first = startAgent(t, { defaults: true, env: { ENVOY_BINARY: envoy, ENVOY_CONFIG_FILE: mesh, APPNET_AGENT_ADMIN_MODE: 'uds' } });
  await waitHealthy(first);
  const second = await run([], { ...sidecar(envoy), APPNET_AGENT_ADMIN_MODE: 'uds' });
  assert.equal(second.code, 6, second.stderr);
  assert.equal(second.stderr, 'agent: AGENT_ERR_LISTEN: APPNET_AGENT_ADMIN_UDS_PATH="/var/run/ecs/appnet_admin.sock": another agent is serving on this socket; give each agent its own path\n');
  assert.equal((await first.status())['healthStatus'], 'HEALTHY', 'the first agent still serves on its socket');
  const hc = await run(['healthcheck'], { APPNET_AGENT_ADMIN_MODE: 'uds' });
  assert.equal(hc.code, 0, `agent healthcheck with the default socket reaches the first agent: ${hc.stderr}`);
  first.child.kill('SIGTERM');
  assert.equal((await first.exited).code, 0);
  assert.equal(existsSync('/var/run/ecs/appnet_admin.sock'), false, 'the socket is removed at a clean stop');
});

test('a runtime directory given to two agents: the second is refused naming APPNET_RUNTIME_DIR and writes nothing into it; after the first is killed the lock is stale and taken over', async (t) => {
  const envoy = requireEnvoy(t);
  if (envoy === null) return;
  const dir = tempDir(t);
  const runtime = join(dir, 'shared-runtime');
  const first = startAgent(t, { defaults: true, env: { ...sidecar(envoy), APPNET_RUNTIME_DIR: runtime } });
  const e1 = await envoyOf(first);
  assert.equal(e1.adminSocket, join(runtime, 'envoy_admin.sock'), "Envoy's admin socket defaults into the runtime directory");
  const before = readFileSync(e1.bootstrap, 'utf8');
  const second = await run([], { ...sidecar(envoy), APPNET_RUNTIME_DIR: runtime, ENVOY_LOG_LEVEL: 'debug' });
  assert.equal(second.code, 6, second.stderr);
  assert.equal(second.stderr, `agent: AGENT_ERR_LISTEN: APPNET_RUNTIME_DIR="${runtime}": another agent is running with this directory; give each agent its own, or leave it unset for one of its own\n`);
  assert.equal(readFileSync(e1.bootstrap, 'utf8'), before, "the first agent's bootstrap is untouched");
  assert.ok(isAlive(e1.pid), "the first agent's Envoy still runs");

  first.child.kill('SIGKILL');
  await first.exited;
  process.kill(e1.pid, 'SIGKILL');
  await waitFor('the killed Envoy to go', async () => !isAlive(e1.pid));
  const third = startAgent(t, { defaults: true, env: { ...sidecar(envoy), APPNET_RUNTIME_DIR: runtime } });
  const e3 = await envoyOf(third);
  assert.equal(e3.adminSocket, e1.adminSocket, 'the stale lock and admin socket are replaced');
  third.child.kill('SIGTERM');
  assert.equal((await third.exited).code, 0, third.stderr());
  assert.ok(existsSync(runtime), 'a runtime directory the user gave is never removed');
  assert.equal(existsSync(join(runtime, 'agent.lock')), false, 'its lock is released');
});

test('an Envoy admin socket path another Envoy serves on is refused naming ENVOY_ADMIN_UDS_PATH, so the agent never stops the other Envoy', async (t) => {
  const envoy = requireEnvoy(t);
  if (envoy === null) return;
  const dir = tempDir(t);
  const admin = join(dir, 'envoy_admin.sock');
  const first = startAgent(t, { defaults: true, env: { ...sidecar(envoy), ENVOY_ADMIN_UDS_PATH: admin } });
  const e1 = await envoyOf(first);
  await waitFor('Envoy admin answers', async () => (await httpRequest({ socketPath: admin }, '/ready')).status > 0);
  const second = await run([], { ...sidecar(envoy), ENVOY_ADMIN_UDS_PATH: admin });
  assert.equal(second.code, 6, second.stderr);
  assert.equal(second.stderr, `agent: AGENT_ERR_LISTEN: ENVOY_ADMIN_UDS_PATH="${admin}": another Envoy is serving on this socket; give each agent its own path, or leave it unset for one in its own runtime directory\n`);
  assert.ok(isAlive(e1.pid), "the first agent's Envoy was not stopped");
  assert.ok((await httpRequest({ socketPath: admin }, '/ready')).status > 0);
});

test('a regular file at the management socket path is an error naming APPNET_AGENT_ADMIN_UDS_PATH, and the file is kept byte for byte', async (t) => {
  const envoy = requireEnvoy(t);
  if (envoy === null) return;
  const dir = tempDir(t);
  const path = join(dir, 'appnet_admin.sock');
  writeFileSync(path, 'not a socket: a file the user keeps\n');
  const r = await run([], { ...sidecar(envoy), APPNET_AGENT_ADMIN_MODE: 'uds', APPNET_AGENT_ADMIN_UDS_PATH: path });
  assert.equal(r.code, 6, r.stderr);
  assert.equal(r.stderr, `agent: AGENT_ERR_LISTEN: APPNET_AGENT_ADMIN_UDS_PATH="${path}": is a regular file, not a socket; the agent does not delete it: remove it or choose another path\n`);
  assert.equal(readFileSync(path, 'utf8'), 'not a socket: a file the user keeps\n');
  rmSync(path);
});

test('a second relay on the default relay socket (/tmp/relay_xds.sock) is refused with one line naming APPNET_RELAY_LISTENER_UDS_PATH, and the first keeps its socket', async (t) => {
  const envoy = requireEnvoy(t);
  if (envoy === null) return;
  const relayEnv = { ENVOY_BINARY: envoy, APPNET_ENABLE_RELAY_MODE_FOR_XDS: 'true', AWS_REGION: 'us-west-2', ENVOY_LOG_LEVEL: 'critical', APPNET_AGENT_LOG_LEVEL: 'info' };
  const first = startAgent(t, { defaults: true, env: relayEnv });
  await envoyOf(first);
  await waitFor('the relay socket to answer', async () => (await httpRequest({ socketPath: '/tmp/relay_xds.sock' }, '/').catch(() => null)) !== null);
  const second = await run([], relayEnv);
  assert.equal(second.code, 6, second.stderr);
  assert.equal(second.stderr, 'agent: AGENT_ERR_LISTEN: APPNET_RELAY_LISTENER_UDS_PATH="/tmp/relay_xds.sock": another relay is serving on this socket; give each agent its own path\n');
  assert.ok((await httpRequest({ socketPath: '/tmp/relay_xds.sock' }, '/').catch(() => null)) !== null, "the first relay's socket still answers");
  first.child.kill('SIGTERM');
  assert.equal((await first.exited).code, 0, first.stderr());
});

test("an Envoy admin port something already listens on is refused naming ENVOY_ADMIN_ACCESS_PORT: the agent would read that process's health and send it /quitquitquit", async (t) => {
  const envoy = requireEnvoy(t);
  if (envoy === null) return;
  const squatter = createServer((s) => s.destroy());
  squatter.listen(0, '127.0.0.1');
  await once(squatter, 'listening');
  t.after(() => squatter.close());
  const port = (squatter.address() as AddressInfo).port;
  const r = await run([], { ...sidecar(envoy), ENVOY_ADMIN_MODE: 'tcp', ENVOY_ADMIN_ACCESS_PORT: String(port) });
  assert.equal(r.code, 6, r.stderr);
  assert.equal(r.stderr, `agent: AGENT_ERR_LISTEN: ENVOY_ADMIN_ACCESS_PORT="${port}": something already listens on 127.0.0.1:${port} (another Envoy?); the agent would drive it as its own Envoy\n`);
  assert.doesNotMatch(r.stdout, /Envoy started/);
});

test('a management socket left by a killed agent is stale: the next agent on the same path replaces it and serves', async (t) => {
  const envoy = requireEnvoy(t);
  if (envoy === null) return;
  const dir = tempDir(t);
  const socket = join(dir, 'appnet_admin.sock');
  const bootstrap = (name: string) => {
    const path = join(dir, `${name}.yaml`);
    writeFileSync(path, `admin: { address: { pipe: { path: ${join(dir, `${name}-admin.sock`)} } } }\n`);
    return path;
  };
  const first = startAgent(t, { defaults: true, env: { ENVOY_BINARY: envoy, ENVOY_CONFIG_FILE: bootstrap('first'), APPNET_AGENT_ADMIN_MODE: 'uds', APPNET_AGENT_ADMIN_UDS_PATH: socket } });
  await waitHealthy(first);
  first.child.kill('SIGKILL');
  await first.exited;
  assert.ok(existsSync(socket), 'the killed agent left its socket file');
  const second = startAgent(t, { defaults: true, env: { ENVOY_BINARY: envoy, ENVOY_CONFIG_FILE: bootstrap('second'), APPNET_AGENT_ADMIN_MODE: 'uds', APPNET_AGENT_ADMIN_UDS_PATH: socket } });
  await waitHealthy(second);
  second.child.kill('SIGTERM');
  assert.equal((await second.exited).code, 0, second.stderr());
});
