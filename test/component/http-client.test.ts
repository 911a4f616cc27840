/**
 * The agent's one HTTP client (agent/system/http.ts) as its three users see it: `agent healthcheck`, Envoy's admin
 * client and the task metadata fetch. FAKE: a local HTTP server that sends its headers and then trickles the body
 * one byte every 50 ms, forever: a peer stuck halfway, which neither Envoy nor ECS produces on demand.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { getStatus } from '../../agent/commands/healthcheck.ts';
import { EnvoyAdminClient } from '../../agent/envoy/index.ts';
import { fetchJson } from '../../agent/system/index.ts';

async function tricklingServer(t: TestContext): Promise<number> {
  const open = new Set<ServerResponse>();
  const server = createServer((_req, res) => {
    open.add(res);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{');
    const timer = setInterval(() => res.write(' '), 50);
    res.on('close', () => clearInterval(timer));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

test('agent healthcheck gives up at its deadline on an agent that sends headers and then trickles its body (an idle timeout never fired)', async (t) => {
  const port = await tricklingServer(t);
  await assert.rejects(getStatus({ host: '127.0.0.1', port }, 300), /no answer within 300 ms/);
});

test("Envoy's admin client and the task metadata fetch give up at their deadline on a trickled body and say so", async (t) => {
  const port = await tricklingServer(t);
  const admin = new EnvoyAdminClient({ kind: 'tcp', host: '127.0.0.1', port });
  t.after(() => admin.close());
  await assert.rejects(admin.request('GET', '/ready', { timeoutMs: 300 }), /Envoy admin GET \/ready at 127\.0\.0\.1:\d+: timed out after 300 ms/);
  await assert.rejects(fetchJson(`http://127.0.0.1:${port}/v4/abc/task`, 300), /GET http:\/\/127\.0\.0\.1:\d+\/v4\/abc\/task: no answer within 300 ms/);
});

test('the task metadata fetch refuses a URL that is not plain http:// with a message naming it', async () => {
  await assert.rejects(fetchJson('https://169.254.170.2/v4/abc', 300), /https:\/\/169\.254\.170\.2\/v4\/abc: only http:\/\/ URLs are supported/);
});
