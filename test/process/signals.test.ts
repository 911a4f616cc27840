/**
 * Signals and a broken stdout, sent to the single executable with the real Envoy: SIGUSR1 used to open Node's
 * inspector on 127.0.0.1:9229 (code sent to it runs inside the agent, whose environment holds credentials, and every
 * container of an awsvpc task shares that loopback); SIGHUP and SIGUSR2 killed the agent with no cleanup; a stdout
 * whose reader went away crashed it with an unhandled EPIPE on the next log line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { startMeshAgent } from '../helpers/mesh-agent.ts';
import { isAlive, waitHealthy } from '../helpers/agent.ts';

/** Whether anything accepts a TCP connection on 127.0.0.1:9229, Node's inspector port. */
function inspectorListening(): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port: 9229 });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

test('SIGUSR1 never opens an inspector: nothing listens on 127.0.0.1:9229 and the agent keeps serving', async (t) => {
  const m = await startMeshAgent(t);
  if (m === null) return;
  await waitHealthy(m.agent);
  assert.equal(await inspectorListening(), false, 'nothing on 9229 before the signal');
  const envoyPid = (await m.agent.status())['envoyPid'];
  m.agent.child.kill('SIGUSR1');
  // The inspector, when it opens, does so within milliseconds of the signal: watch the port for a second, while the
  // agent keeps answering.
  const until = Date.now() + 1000;
  while (Date.now() < until) {
    assert.equal(await inspectorListening(), false, 'an inspector opened on 127.0.0.1:9229');
    assert.equal((await m.agent.request('/status')).status, 200);
  }
  assert.doesNotMatch(m.agent.stderr(), /Debugger listening/);
  assert.equal(m.agent.child.exitCode, null, 'the agent still runs');
  // From its first instant, not only once the agent's own handler is installed: the executable runs with
  // --disable-sigusr1, under which Node keeps SIGUSR1 (bit 10, mask 0x200) blocked.
  const sigBlk = /^SigBlk:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${m.agent.child.pid}/status`, 'utf8'))?.[1] ?? '0';
  assert.equal(BigInt(`0x${sigBlk}`) & 0x200n, 0x200n, `SIGUSR1 is blocked (SigBlk ${sigBlk})`);
  assert.equal((await m.agent.status())['envoyPid'], envoyPid, 'Envoy was not restarted');
});

test('NODE_OPTIONS=--inspect in the environment opens no inspector in the single executable', async (t) => {
  const m = await startMeshAgent(t, { NODE_OPTIONS: '--inspect=127.0.0.1:9229' });
  if (m === null) return;
  await waitHealthy(m.agent);
  assert.equal(await inspectorListening(), false);
  assert.doesNotMatch(m.agent.stderr(), /Debugger listening/);
});

for (const signal of ['SIGHUP', 'SIGUSR2'] as const) {
  test(`${signal} is logged and ignored: the agent and its Envoy keep running and serving`, async (t) => {
    const m = await startMeshAgent(t);
    if (m === null) return;
    await waitHealthy(m.agent);
    const envoyPid = Number((await m.agent.status())['envoyPid']);
    m.agent.child.kill(signal);
    const line = await m.agent.waitForLog(`${signal} logged`, (l) => l['signal'] === signal);
    assert.equal(line['level'], 'warn');
    assert.match(String(line['msg']), new RegExp(`^${signal} ignored: `));
    assert.equal((await m.agent.status())['healthStatus'], 'HEALTHY');
    assert.ok(isAlive(envoyPid), 'Envoy still runs');
    assert.equal(m.agent.child.exitCode, null);
    // And SIGTERM still stops it cleanly afterwards.
    m.agent.child.kill('SIGTERM');
    assert.equal((await m.agent.exited).code, 0, m.agent.stderr());
  });
}

test('a stdout whose reader went away (EPIPE) never crashes the agent: it keeps serving and still stops cleanly', async (t) => {
  const m = await startMeshAgent(t);
  if (m === null) return;
  await waitHealthy(m.agent);
  const envoyPid = Number((await m.agent.status())['envoyPid']);
  m.agent.child.stdout?.destroy();
  // Each of these makes the agent write log lines into the closed pipe.
  m.agent.child.kill('SIGHUP');
  const level = await m.agent.request('/enableLogging?level=debug', { method: 'POST' });
  assert.equal(level.status, 200);
  m.agent.child.kill('SIGUSR2');
  assert.equal((await m.agent.request('/enableLogging?level=info', { method: 'POST' })).status, 200);
  assert.equal((await m.agent.status())['healthStatus'], 'HEALTHY');
  assert.equal(m.agent.child.exitCode, null, `the agent is alive: ${m.agent.stderr()}`);
  assert.ok(isAlive(envoyPid));
  assert.match(m.agent.stderr(), /agent: stdout is closed \(EPIPE\); the agent keeps running and drops its log lines/);
  m.agent.child.kill('SIGTERM');
  const exit = await m.agent.exited;
  assert.equal(exit.code, 0, m.agent.stderr());
  assert.doesNotMatch(m.agent.stderr(), /AGENT_ERR_INTERNAL|Unhandled 'error' event/);
});
