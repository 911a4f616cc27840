/**
 * The image built from container/Dockerfile, run the ways users run it: a plain `docker run`, and the relay and a
 * sidecar in ECS-managed mode exactly as the ECS agent starts them (uid 20000, the socket directories it mounts,
 * its variables, the relay's health check). Cloud Map mode runs in the compose mesh (mesh.docker.ts).
 * The management server behind the relay is an HTTPS HTTP/2 test server on the host, with a CA made for the run,
 * given to the relay where ECS gives the host's CAs in isolated regions (/etc/pki).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGrpcUpstream, type GrpcUpstream } from '../helpers/grpc-upstream.ts';
import { waitFor } from '../helpers/wait.ts';
import { AGENT_IMAGE, DOCKER, docker, getOverSocket, health, inspect, run } from './engine.ts';

const APPNET_UID = 20000;
const prefix = `sc-image-test-${process.pid}`;
const containers: string[] = [];
let dir: string;

async function logsOf(name: string): Promise<string> {
  const r = await run(DOCKER, ['logs', '--tail', '60', name]).catch((err: Error) => ({ stdout: '', stderr: err.message }));
  return `── ${name} ──\n${r.stdout}${r.stderr}`;
}

/** Runs fn; on failure, prints the logs of the containers named. */
async function withLogs(names: readonly string[], fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    for (const n of names) process.stderr.write(`${await logsOf(n)}\n`);
    throw err;
  }
}

async function start(name: string, args: readonly string[]): Promise<string> {
  containers.push(name);
  await docker(['run', '-d', '--name', name, ...args]);
  return name;
}

/** A host directory the way the ECS agent makes it: owned by 20000, mode 0700. */
function ecsDir(path: string): string {
  mkdirSync(path, { recursive: true });
  chownSync(path, APPNET_UID, 0);
  chmodSync(path, 0o700);
  return path;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sc-image-test-'));
});

after(async () => {
  if (containers.length > 0) await run(DOCKER, ['rm', '-f', ...containers], { timeoutMs: 60_000 });
  rmSync(dir, { recursive: true, force: true });
});

describe('the image', { concurrency: false }, () => {
  test('reports the agent version and carries Envoy 1.40 at /usr/bin/envoy', async () => {
    const version = await docker(['run', '--rm', AGENT_IMAGE, '--version']);
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.match(version, new RegExp(pkg.version.replaceAll('.', '\\.')));
    const envoy = await docker(['run', '--rm', '--entrypoint', '/usr/bin/envoy', AGENT_IMAGE, '--version']);
    assert.match(envoy, /version: [0-9a-f]+\/1\.40\.\d+\//);
    const bytes = Number(await inspect(AGENT_IMAGE, '{{.Size}}'));
    process.stdout.write(`# ${AGENT_IMAGE}: ${(bytes / 1048576).toFixed(0)} MiB\n`);
  });

  test('runs as uid 20000, the user the ECS agent sets, with tini as PID 1', async () => {
    assert.equal(await inspect(AGENT_IMAGE, '{{.Config.User}}'), String(APPNET_UID));
    assert.equal((await docker(['run', '--rm', '--entrypoint', 'id', AGENT_IMAGE, '-u'])).trim(), String(APPNET_UID));
    assert.deepEqual(JSON.parse(await inspect(AGENT_IMAGE, '{{json .Config.Entrypoint}}')), ['/usr/bin/tini', '--', '/usr/bin/agent']);
  });

  test('a plain docker run (relay mode, only the mode variables) becomes healthy and stops at once with exit 0', async () => {
    // Host network, as ECS runs the relay: CI's engine runs without NAT, so a bridge container resolves no name, and
    // the relay's Envoy would wait for the management server's DNS lookup to time out before it is LIVE.
    const name = await start(`${prefix}-plain`, ['--network', 'host', '-e', 'APPNET_ENABLE_RELAY_MODE_FOR_XDS=1', '-e', 'AWS_REGION=us-east-1', AGENT_IMAGE]);
    await withLogs([name], async () => {
      await waitFor('Docker to report the plain container healthy', async () => (await health(name)) === 'healthy', { timeoutMs: 60_000, everyMs: 500 });
      const stopped = await run(DOCKER, ['stop', '-t', '30', name], { timeoutMs: 40_000 });
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.equal(await inspect(name, '{{.State.ExitCode}}'), '0');
    });
  });

  describe('relay and ECS-managed sidecar, as the ECS agent starts them', { concurrency: false }, () => {
    let upstream: GrpcUpstream | undefined;
    let relayDir: string;
    let taskDir: string;
    const relay = `${prefix}-relay`;
    const sidecar = `${prefix}-sidecar`;
    const taskId = '39ddaf309a0641dfb623ae5385ad1800';

    before(async () => {
      upstream = await startGrpcUpstream(join(dir, 'certs'), 'container test CA');
      const port = upstream.port;
      // /etc/pki as ECS mounts it in isolated regions: here, the test CA where the relay template looks.
      mkdirSync(join(dir, 'pki/tls'), { recursive: true });
      writeFileSync(join(dir, 'pki/tls/cert.pem'), readFileSync(upstream.caFile));
      relayDir = ecsDir(join(dir, 'run/service_connect/relay'));
      taskDir = ecsDir(join(dir, 'run/service_connect', taskId));
      const relayLog = ecsDir(join(dir, 'log/service_connect/relay'));
      // The relay: host network, user 20000, ECS's variables, mounts and health check (CMD-SHELL /health_check.sh,
      // 5 s / 2 s / 3 retries).
      await start(relay, [
        '--network', 'host', '--user', String(APPNET_UID),
        '--health-cmd', '/health_check.sh', '--health-interval', '5s', '--health-timeout', '2s', '--health-retries', '3',
        '-v', `${relayDir}:/var/run/ecs/`, '-v', `${relayDir}/:/var/run/ecs/relay/`, '-v', `${join(dir, 'pki')}:/etc/pki`, '-v', `${relayLog}:/var/log/`,
        '-e', 'APPNET_AGENT_ADMIN_UDS_PATH=/var/run/ecs/appnet_admin.sock', '-e', 'APPNET_RELAY_LISTENER_UDS_PATH=/var/run/ecs/relay/envoy_xds.sock',
        '-e', 'AWS_REGION=us-east-1', '-e', 'ENVOY_ADMIN_MODE=uds', '-e', 'APPNET_AGENT_ADMIN_MODE=uds', '-e', 'APPNET_ENABLE_RELAY_MODE_FOR_XDS=1',
        '-e', `APPMESH_XDS_ENDPOINT=https://localhost:${port}`, '-e', 'APPNET_ENVOY_LOG_DESTINATION=/var/log/',
        '-e', 'AWS_ACCESS_KEY_ID=AKIDCONTAINERTEST', '-e', 'AWS_SECRET_ACCESS_KEY=container-test-secret',
        AGENT_IMAGE,
      ]);
    });

    after(() => upstream?.close());

    test('the relay becomes healthy by its ECS health check, with its sockets in the host directory owned by 20000', async () => {
      await withLogs([relay], async () => {
        await waitFor('the relay to be healthy', async () => (await health(relay)) === 'healthy', { timeoutMs: 60_000, everyMs: 500 });
        for (const socket of ['appnet_admin.sock', 'envoy_xds.sock']) {
          const st = statSync(join(relayDir, socket));
          assert.ok(st.isSocket(), `${socket} is a socket`);
          assert.equal(st.uid, APPNET_UID, `${socket} is owned by 20000`);
        }
        assert.ok(statSync(join(dir, 'log/service_connect/relay/appnet_envoy.log')).size > 0, "Envoy's log is in the host's log directory");
      });
    });

    test("an ECS-managed sidecar opens ADS through the relay's socket and answers the ECS agent on the task's socket", async () => {
      await start(sidecar, [
        '--user', String(APPNET_UID),
        '-v', `${taskDir}:/var/run/ecs/`, '-v', `${relayDir}/:/var/run/ecs/relay/`,
        '-e', 'APPMESH_XDS_ENDPOINT=unix:///var/run/ecs/relay/envoy_xds.sock', '-e', 'APPNET_AGENT_ADMIN_UDS_PATH=/var/run/ecs/appnet_admin.sock',
        '-e', 'APPNET_AGENT_ADMIN_MODE=uds', '-e', 'ENVOY_ENABLE_IAM_AUTH_FOR_XDS=0',
        '-e', 'ECS_CONTAINER_INSTANCE_ARN=arn:aws:ecs:us-east-1:123456789012:container-instance/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0',
        '-e', 'APPNET_LISTENER_PORT_MAPPING={"egress":42304}', '-e', 'APPMESH_METRIC_EXTENSION_VERSION=1',
        '-e', 'APPMESH_RESOURCE_ARN=arn:aws:ecs:us-east-1:123456789012:task-set/prod/web/ecs-svc/1', '-e', 'AWS_EXECUTION_ENV=AWS_ECS_EC2',
        AGENT_IMAGE,
      ]);
      await withLogs([sidecar, relay], async () => {
        const ads = await waitFor('the sidecar ADS stream at the management server', async () =>
          upstream?.seen.find((h) => h[':path'] === '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources'),
        { timeoutMs: 60_000, everyMs: 250 });
        assert.match(String(ads['authorization']), /^AWS4-HMAC-SHA256 Credential=AKIDCONTAINERTEST\/\d{8}\/us-east-1\/appmesh\/aws4_request/, 'signed by the relay');
        // The ECS agent's view of the admin socket: /var/run/ecs/service_connect/<taskId>/appnet_admin.sock.
        const socket = join(taskDir, 'appnet_admin.sock');
        const st = statSync(socket);
        assert.equal(st.uid, APPNET_UID);
        assert.equal(st.mode & 0o777, 0o600);
        const status = await getOverSocket(socket, '/status');
        assert.equal(status.status, 200);
        assert.match((JSON.parse(status.body) as { envoyState: string }).envoyState, /^[A-Z_]+$/);
        const stats = await getOverSocket(socket, '/stats/prometheus?usedonly&filter=metrics_extension&delta');
        assert.equal(stats.status, 200, stats.body);
        const drain = await getOverSocket(socket, '/drain_listeners?inboundonly');
        assert.equal(drain.status, 200, drain.body);
        const stopped = await run(DOCKER, ['stop', '-t', '30', sidecar], { timeoutMs: 40_000 });
        assert.equal(stopped.code, 0, stopped.stderr);
        assert.equal(await inspect(sidecar, '{{.State.ExitCode}}'), '0');
      });
    });
  });
});
