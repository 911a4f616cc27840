/**
 * Relay mode with the real Envoy: the per-instance relay takes sidecars' gRPC (HTTP/2) streams on its Unix socket,
 * signs them with SigV4 and forwards them over TLS to the management server. Here the management server is an HTTPS
 * HTTP/2 test server with a certificate from a test CA made for the run.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as http2Connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { startAgent, tempDir, waitHealthy, type AgentProcess } from '../helpers/agent.ts';
import { findEnvoy } from '../helpers/envoy.ts';
import { startGrpcUpstream, type GrpcUpstream } from '../helpers/grpc-upstream.ts';
import { suiteCleanups } from '../helpers/suite-cleanups.ts';
import { waitFor } from '../helpers/wait.ts';

const { ctx, run: runCleanups } = suiteCleanups();
let upstream: GrpcUpstream;
let relay: AgentProcess;
let relaySocket: string;
let envoy: string;
let dir: string;

describe('relay mode with real Envoy', { concurrency: false, timeout: 120_000 }, () => {
  before(async () => {
    const found = findEnvoy();
    if (found === null) throw new Error('Envoy not found: run npm run setup');
    envoy = found;
    dir = tempDir(ctx, 'relay-');
    upstream = await startGrpcUpstream(dir, 'relay test CA');
    ctx.after(() => upstream.close());
    relaySocket = join(dir, 'relay_xds.sock');
    relay = startAgent(ctx, {
      dir,
      env: {
        ENVOY_BINARY: envoy,
        APPNET_ENABLE_RELAY_MODE_FOR_XDS: '1',
        AWS_REGION: 'eu-west-1',
        AWS_ACCESS_KEY_ID: 'AKIDRELAYTEST',
        AWS_SECRET_ACCESS_KEY: 'relay-test-secret',
        APPMESH_XDS_ENDPOINT: `https://localhost:${upstream.port}`,
        APPNET_RELAY_CA_FILE: upstream.caFile,
        APPNET_RELAY_LISTENER_UDS_PATH: relaySocket,
      },
    });
    await waitHealthy(relay, 20_000);
  });

  after(async () => {
    await runCleanups();
  });

  test('a gRPC request into the relay socket reaches the HTTPS upstream signed with SigV4 and with the host rewritten', async () => {
    const session = http2Connect('http://localhost', { createConnection: () => netConnect(relaySocket) });
    try {
      const req = session.request({
        ':method': 'POST',
        ':path': '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      req.end(Buffer.from([0, 0, 0, 0, 0]));
      const [response] = (await once(req, 'response')) as [Record<string, string>];
      assert.equal(response[':status'], 200);
      req.resume();
      await once(req, 'end');
    } finally {
      session.close();
    }
    const headers = upstream.seen.at(-1);
    assert.ok(headers, 'the upstream saw the request');
    assert.equal(headers[':path'], '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources');
    assert.equal(headers[':authority'], 'localhost', 'host rewritten to the management domain');
    assert.match(String(headers['authorization']), /^AWS4-HMAC-SHA256 Credential=AKIDRELAYTEST\/\d{8}\/eu-west-1\/appmesh\/aws4_request, SignedHeaders=[^,]+, Signature=[0-9a-f]{64}$/);
    assert.ok(headers['x-amz-date'] !== undefined);
    assert.equal(headers['content-type'], 'application/grpc');
  });

  test("relay health is Envoy being LIVE: /status is HEALTHY without any control-plane connection stat", async () => {
    const status = await relay.status();
    assert.equal(status['healthStatus'], 'HEALTHY');
    assert.equal(status['managementServerConnectionStatus'], undefined);
    const argv = readFileSync(`/proc/${String(status['envoyPid'])}/cmdline`, 'utf8').split('\0');
    assert.deepEqual(argv.slice(argv.indexOf('--concurrency'), argv.indexOf('--concurrency') + 2), ['--concurrency', '1']);
  });

  test("a sidecar in ECS-managed mode opens its ADS stream through the relay, and the upstream sees it", async () => {
    const before = upstream.seen.length;
    const sidecarDir = tempDir(ctx, 'sidecar-');
    const sidecar = startAgent(ctx, {
      dir: sidecarDir,
      env: {
        ENVOY_BINARY: envoy,
        APPMESH_XDS_ENDPOINT: `unix://${relaySocket}`,
        APPMESH_RESOURCE_ARN: 'arn:aws:ecs:eu-west-1:123456789012:task-set/prod/web/ecs-svc/1',
        APPMESH_METRIC_EXTENSION_VERSION: '1',
        ENVOY_INITIAL_FETCH_TIMEOUT: '1',
      },
    });
    const ads = await waitFor('the sidecar ADS request at the upstream', async () =>
      upstream.seen.slice(before).find((h) => h[':path'] === '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources'),
    { timeoutMs: 30_000 });
    assert.match(String(ads['authorization']), /\/eu-west-1\/appmesh\/aws4_request/, 'signed by the relay, not the sidecar');
    assert.equal(ads[':authority'], 'localhost');
    // ECS-managed health reads Envoy's control-plane connection; the test server ends each stream at once, so the
    // sidecar is between reconnects, which stays HEALTHY well inside HC_DISCONNECTED_TIMEOUT_S.
    const status = await waitFor('the control-plane connection in /status', async () => {
      const s = await sidecar.status();
      return s['managementServerConnectionStatus'] !== undefined ? s : undefined;
    });
    assert.match(String(status['managementServerConnectionStatus']), /^(CONNECTED|NOT_CONNECTED)$/);
    if (status['managementServerConnectionStatus'] === 'NOT_CONNECTED') assert.match(String(status['managementServerDisconnectedTimestamp']), /^\d{4}-\d\d-\d\dT/);
    assert.equal(status['healthStatus'], 'HEALTHY');
    sidecar.child.kill('SIGTERM');
    assert.equal((await sidecar.exited).code, 0);
  });
});
