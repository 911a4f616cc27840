/**
 * The management interface of the single executable, with the real Envoy, against hostile or careless callers:
 * a scrape burst must not cost the ECS agent its drain (it counts any answer, 429 included, as done); idle
 * connections are closed; a flood of them neither starves the agent of file descriptors nor keeps /status from
 * answering; a malformed request target is a 400 with no error log; TCP mode binds loopback unless told otherwise.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { agentCommand, startAgent, tempDir, waitHealthy } from '../helpers/agent.ts';
import { freePort, startApp } from '../helpers/apps.ts';
import { writeStaticMesh } from '../helpers/static-envoy.ts';
import { requireEnvoy } from '../helpers/envoy.ts';
import { httpRequest } from '../helpers/http.ts';
import { startMeshAgent } from '../helpers/mesh-agent.ts';
import { waitFor } from '../helpers/wait.ts';

const SCRAPE = '/stats/prometheus?usedonly&filter=metrics_extension&delta';

test('a burst of /stats/prometheus scrapes is limited with 429, and the drain request right after it is answered 200 and drains', async (t) => {
  const m = await startMeshAgent(t);
  if (m === null) return;
  await waitHealthy(m.agent);
  const codes = await Promise.all(Array.from({ length: 60 }, () => m.agent.request(SCRAPE).then((r) => r.status)));
  assert.ok(codes.includes(429), `the burst was rate limited: ${codes.join(',')}`);
  assert.equal((await m.agent.request('/status')).status, 200, '/status is never refused');
  assert.equal((await m.agent.request('/ready')).status, 200, '/ready is never refused');
  const drains = await Promise.all(Array.from({ length: 5 }, () => m.agent.request('/drain_listeners?inboundonly')));
  assert.deepEqual(drains.map((r) => r.status), [200, 200, 200, 200, 200], drains.map((r) => r.body).join(''));
  // The agent asked Envoy to drain (that the inbound listener then closes is in test/envoy/management.test.ts).
  assert.ok(m.agent.logs.some((l) => l['msg'] === 'draining inbound listeners (management interface)'));
});

/** Opens a raw connection to the agent's socket and waits until it is connected. */
async function rawConnection(path: string): Promise<Socket> {
  const sock = connect({ path });
  await once(sock, 'connect');
  sock.on('error', () => undefined);
  sock.resume(); // read what the agent sends, so that its close is seen
  return sock;
}

test('a connection that sends nothing, and a kept-alive connection left idle, are closed by the agent', async (t) => {
  const m = await startMeshAgent(t);
  if (m === null) return;
  await waitHealthy(m.agent);
  const silent = await rawConnection(m.agent.adminSocket);
  const idle = await rawConnection(m.agent.adminSocket);
  idle.write('GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n');
  let answer = '';
  let silentGot = '';
  idle.setEncoding('utf8').on('data', (c: string) => (answer += c));
  silent.setEncoding('utf8').on('data', (c: string) => (silentGot += c));
  // Bounded waits for the server's close (the reference never closed either).
  await Promise.race([once(silent, 'close'), waitFor('never', async () => false, { timeoutMs: 20_000 })]);
  await Promise.race([once(idle, 'close'), waitFor('never', async () => false, { timeoutMs: 20_000 })]);
  assert.match(answer, /^HTTP\/1\.1 200 OK/, 'the kept-alive connection got its answer first');
  assert.match(silentGot, /^HTTP\/1\.1 408 Request Timeout/);
});

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

test('1,100 idle connections neither make /status unreachable nor use up the file descriptors of an agent limited to 1,024', async (t) => {
  const envoy = requireEnvoy(t);
  if (envoy === null) return;
  const dir = tempDir(t);
  const app = await startApp('container 1');
  t.after(() => app.close());
  const mesh = writeStaticMesh(dir, { app: app.port, inbound: await freePort(), outbound: await freePort() });
  // A file-descriptor limit of 1,024, soft and hard (Node raises a soft limit to the hard one), as in many containers.
  const agent = startAgent(t, { dir, env: { ENVOY_BINARY: envoy, ENVOY_CONFIG_FILE: mesh.path }, wrapper: ['prlimit', '--nofile=1024:1024', '--'] });
  await waitHealthy(agent);
  const pid = agent.child.pid ?? 0;
  const conns: Socket[] = [];
  t.after(() => conns.forEach((c) => c.destroy()));
  // One after another: a burst of connects overflows the listen backlog (EAGAIN), which is not what is tested here.
  for (let i = 0; i < 1100; i++) conns.push(await rawConnection(agent.adminSocket));
  const status = await agent.request('/status', { timeoutMs: 5000 });
  assert.equal(status.status, 200);
  assert.equal(JSON.parse(status.body).healthStatus, 'HEALTHY');
  assert.ok(openFds(pid) < 300, `the agent holds ${openFds(pid)} file descriptors`);
  assert.deepEqual(agent.logs.filter((l) => l['level'] === 'error'), [], 'no error log line');
});

test('a request target that is not a path gets 400 and writes no error log line', async (t) => {
  const m = await startMeshAgent(t);
  if (m === null) return;
  await waitHealthy(m.agent);
  for (const target of ['//', '*', 'http://[::1', '//status']) {
    const sock = await rawConnection(m.agent.adminSocket);
    let answer = '';
    sock.setEncoding('utf8').on('data', (c: string) => (answer += c));
    sock.write(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    await once(sock, 'close');
    assert.match(answer, /^HTTP\/1\.1 400 /, `${target}: ${answer}`);
  }
  assert.equal((await m.agent.request('/status')).status, 200);
  assert.deepEqual(m.agent.logs.filter((l) => l['level'] === 'error'), [], 'no error log line');
});

/** The local addresses LISTEN sockets on `port` are bound to, from /proc/net/tcp and tcp6. */
function listenAddresses(port: number): string[] {
  const out: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const [addr, p] = (f[1] ?? '').split(':');
      if (f[3] === '0A' && p !== undefined && parseInt(p, 16) === port) out.push(addr ?? '');
    }
  }
  return out;
}

test('in TCP mode the management interface binds loopback by default, and agent healthcheck finds it with the same variables', async (t) => {
  const envoy = requireEnvoy(t);
  if (envoy === null) return;
  const port = await freePort();
  const m = await startMeshAgent(t, { APPNET_AGENT_ADMIN_MODE: 'tcp', APPNET_AGENT_HTTP_PORT: String(port) });
  if (m === null) return;
  await waitFor('HEALTHY over TCP', async () => (await httpRequest({ host: '127.0.0.1', port }, '/ready')).status === 200);
  assert.deepEqual(listenAddresses(port), ['0100007F'], 'bound to 127.0.0.1 only, not every interface');
  const [command, ...prefix] = agentCommand();
  const hc = await new Promise<{ code: number; stdout: string }>((resolve) =>
    execFile(command, [...prefix, 'healthcheck'], { env: { PATH: process.env['PATH'] ?? '', APPNET_AGENT_ADMIN_MODE: 'tcp', APPNET_AGENT_HTTP_PORT: String(port) } }, (err, stdout) =>
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code), stdout }),
    ),
  );
  assert.deepEqual(hc, { code: 0, stdout: 'HEALTHY\n' });
});
