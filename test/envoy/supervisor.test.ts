/**
 * The built agent supervising the real Envoy 1.40 with a static bootstrap (ENVOY_CONFIG_FILE): health, restarts,
 * the restart budget, graceful stop with a request in flight, and log rotation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentCommand, isAlive, processesMentioning, tempDir, waitHealthy } from '../helpers/agent.ts';
import { httpRequest } from '../helpers/http.ts';
import { startMeshAgent } from '../helpers/mesh-agent.ts';
import { repoRoot } from '../helpers/envoy.ts';
import { waitFor } from '../helpers/wait.ts';

function envoyPidOf(status: Record<string, unknown>): number {
  return Number(status['envoyPid']);
}

test('the agent reports HEALTHY soon after start, and envoyPid is the real Envoy process', async (t) => {
  const m = await startMeshAgent(t);
  if (m === null) return;
  const status = await waitHealthy(m.agent, 5000);
  assert.equal(status['envoyState'], 'LIVE');
  assert.equal(status['envoyReadinessState'], 'INITIALIZED');
  assert.equal(status['initialConfigUpdateStatus'], 'UPDATE_SUCCESSFUL');
  assert.deepEqual(status['reasons'], []);
  assert.equal(readlinkSync(`/proc/${envoyPidOf(status)}/exe`), m.envoy, 'envoyPid is the Envoy binary itself, not a wrapper');
  const res = await httpRequest({ host: '127.0.0.1', port: m.mesh.outboundPort }, '/');
  assert.equal(res.status, 200);
  assert.equal(res.body, 'container 1\n');
  assert.equal(res.headers['server'], 'envoy');
  const ready = await m.agent.request('/ready');
  assert.equal(ready.status, 200);
});

test('kill -9 of Envoy: the agent restarts it, envoyRestartCount goes up, and health and traffic return', async (t) => {
  const m = await startMeshAgent(t);
  if (m === null) return;
  const before = await waitHealthy(m.agent);
  const oldPid = envoyPidOf(before);
  process.kill(oldPid, 'SIGKILL');
  const after = await waitHealthy(m.agent, 15_000, (s) => s['envoyRestartCount'] === '1' && envoyPidOf(s) !== oldPid);
  assert.notEqual(envoyPidOf(after), oldPid);
  assert.equal(isAlive(envoyPidOf(after)), true);
  const res = await httpRequest({ host: '127.0.0.1', port: m.mesh.outboundPort }, '/');
  assert.equal(res.body, 'container 1\n');
  const exitLog = await m.agent.waitForLog('restart warning', (r) => r['msg'] === 'Envoy exited; restarting');
  assert.equal(exitLog['exit'], 'was killed by SIGKILL');
  const metrics = (await m.agent.request('/metrics')).body;
  assert.match(metrics, /appnet_agent_envoy_restarts_total 1/);
  assert.match(metrics, /appnet_agent_envoy_exits_total\{how="SIGKILL"\} 1/);
});

test('when the restart budget is spent the agent exits non-zero, names the last exit, and leaves no Envoy', async (t) => {
  const m = await startMeshAgent(t, { APPNET_ENVOY_RESTART_COUNT: '1' });
  if (m === null) return;
  const first = envoyPidOf(await waitHealthy(m.agent));
  process.kill(first, 'SIGKILL');
  const second = envoyPidOf(await waitHealthy(m.agent, 15_000, (s) => s['envoyRestartCount'] === '1' && envoyPidOf(s) !== first));
  process.kill(second, 'SIGKILL');
  const exit = await m.agent.exited;
  assert.equal(exit.code, 5);
  assert.match(m.agent.stderr(), /AGENT_ERR_ENVOY_EXITED: Envoy was killed by SIGKILL/);
  assert.doesNotMatch(m.agent.stderr(), /\n\s+at /, 'no stack trace');
  assert.deepEqual(processesMentioning(m.agent.dir), [], 'no Envoy process remains');
});

test('SIGTERM with a slow request in flight: the request completes, the agent exits 0 well inside 30 s, no Envoy remains', async (t) => {
  const m = await startMeshAgent(t);
  if (m === null) return;
  const envoyPid = envoyPidOf(await waitHealthy(m.agent));
  const arrived = m.app.nextRequest();
  const inFlight = httpRequest({ host: '127.0.0.1', port: m.mesh.inboundPort }, '/slow?ms=2500', { timeoutMs: 20_000 });
  assert.equal(await arrived, '/slow');
  const sentAt = Date.now();
  m.agent.child.kill('SIGTERM');
  const res = await inFlight;
  assert.equal(res.status, 200);
  assert.equal(res.body, 'container 1\n');
  const exit = await m.agent.exited;
  assert.equal(exit.code, 0, m.agent.stderr());
  assert.ok(exit.atMs - sentAt < 30_000, `stopped within ECS's 30 s stop timeout (took ${exit.atMs - sentAt} ms)`);
  assert.ok(exit.atMs >= sentAt, 'exit came after the signal');
  assert.equal(isAlive(envoyPid), false, 'Envoy is gone');
  assert.deepEqual(processesMentioning(m.agent.dir), []);
  assert.ok(m.agent.logs.some((r) => r['msg'] === 'no active downstream connections left'), 'the agent waited for the in-flight request, not the whole drain time');
});

test('SIGINT and SIGQUIT stop the agent gracefully too (the reference died on SIGINT)', async (t) => {
  for (const signal of ['SIGINT', 'SIGQUIT'] as const) {
    const m = await startMeshAgent(t);
    if (m === null) return;
    const envoyPid = envoyPidOf(await waitHealthy(m.agent));
    m.agent.child.kill(signal);
    const exit = await m.agent.exited;
    assert.equal(exit.code, 0, `${signal}: ${m.agent.stderr()}`);
    assert.equal(isAlive(envoyPid), false);
    assert.ok(m.agent.logs.some((r) => r['msg'] === 'stopping' && r['reason'] === signal));
  }
});

test('a signal to the whole process group (Ctrl-C) reaches only the agent, which still drains Envoy', async (t) => {
  const m = await startMeshAgent(t);
  if (m === null) return;
  const envoyPid = envoyPidOf(await waitHealthy(m.agent));
  // The agent is its own child of the test; Envoy must not be in the agent's process group.
  const envoyPgid = Number(readFileSync(`/proc/${envoyPid}/stat`, 'utf8').split(') ')[1]?.split(' ')[2]);
  assert.notEqual(envoyPgid, m.agent.child.pid, 'Envoy runs in a process group of its own');
  m.agent.child.kill('SIGINT');
  assert.equal((await m.agent.exited).code, 0);
  assert.ok(m.agent.logs.some((r) => r['msg'] === 'draining inbound listeners'));
});

test('agent healthcheck exits 0 against a HEALTHY agent and 1 when the agent cannot be reached', async (t) => {
  const m = await startMeshAgent(t);
  if (m === null) return;
  await waitHealthy(m.agent);
  const run = (socket: string) =>
    new Promise<{ code: number; out: string }>((resolve) => {
      execFile(agentCommand()[0], [...agentCommand().slice(1), 'healthcheck'], { env: { APPNET_AGENT_ADMIN_MODE: 'uds', APPNET_AGENT_ADMIN_UDS_PATH: socket } }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : Number((err as { code?: number }).code), out: `${stdout}${stderr}` });
      });
    });
  const healthy = await run(m.agent.adminSocket);
  assert.deepEqual(healthy, { code: 0, out: 'HEALTHY\n' });
  const missing = await run(join(m.agent.dir, 'nobody.sock'));
  assert.equal(missing.code, 1);
  assert.match(missing.out, /AGENT_ERR_UNHEALTHY: UNREACHABLE/);

  // container/health_check.sh, as Docker runs it, calls the same command.
  const wrapper = join(m.agent.dir, 'agent');
  writeFileSync(wrapper, `#!/bin/sh\nexec ${agentCommand().map((a) => `"${a}"`).join(' ')} "$@"\n`, { mode: 0o755 });
  const script = await new Promise<number>((resolve) =>
    execFile(`${repoRoot}/container/health_check.sh`, [], { env: { AGENT_BINARY: wrapper, APPNET_AGENT_ADMIN_MODE: 'uds', APPNET_AGENT_ADMIN_UDS_PATH: m.agent.adminSocket } }, (err) =>
      resolve(err === null ? 0 : Number((err as { code?: number }).code)),
    ),
  );
  assert.equal(script, 0);
});

test("Envoy's output goes to APPNET_ENVOY_LOG_DESTINATION and is rotated by size, keeping APPNET_AGENT_MAX_RETENTION_COUNT files", async (t) => {
  const logDir = tempDir(t, 'agent-logs-');
  const m = await startMeshAgent(t, {
    APPNET_ENVOY_LOG_DESTINATION: logDir,
    APPNET_AGENT_MAX_LOG_FILE_SIZE: '0.002',
    APPNET_AGENT_MAX_RETENTION_COUNT: '2',
    ENVOY_LOG_LEVEL: 'debug',
  });
  if (m === null) return;
  await waitHealthy(m.agent);
  const rotated = () => readdirSync(logDir).filter((f) => /^appnet_envoy\.log\.\d+$/.test(f));
  for (let i = 0; i < 20 && rotated().length < 3; i++) await httpRequest({ host: '127.0.0.1', port: m.mesh.outboundPort }, '/');
  await waitFor('two rotated log files', async () => rotated().length >= 2);
  await waitFor('pruning to the retention count', async () => rotated().length <= 2);
  assert.ok(readdirSync(logDir).includes('appnet_envoy.log'));
  assert.doesNotMatch(m.agent.stdout(), /\[debug\]/, "Envoy's debug output went to the file, not to stdout");
});
