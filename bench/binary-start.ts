/**
 * Benchmark: the single executable (dist/agent): its size, and over 10 starts the time from exec to the first
 * `/status` 200, to Envoy spawned and to HEALTHY, with a small static bootstrap. Prints figures; asserts nothing.
 * `/status` is polled every 2 ms, so the first-answer figure is at most 2 ms late.
 *   npm run build:binary && node bench/binary-start.ts
 * Two executables back to back (starts alternate, figures for each), for example the one before a change:
 *   BENCH_BINARY=/tmp/before/agent,dist/agent node bench/binary-start.ts
 * The load average and a bare `node -e 0` (the same Node binary, 10 runs) are printed with the figures.
 */
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findEnvoy, repoRoot } from '../test/helpers/envoy.ts';
import { freePort, startApp } from '../test/helpers/apps.ts';
import { httpRequest } from '../test/helpers/http.ts';
import { writeStaticMesh } from '../test/helpers/static-envoy.ts';

const envoy = findEnvoy();
if (envoy === null) throw new Error('Envoy not found: run npm run setup');
const binaries = (process.env['BENCH_BINARY'] ?? `${repoRoot}/dist/agent`).split(',').map((b) => resolve(b));
const app = await startApp('bench');
const figures = binaries.map(() => ({ spawned: [] as number[], healthy: [] as number[], firstStatus: [] as number[] }));
const loadBefore = loadavg()[0] ?? 0;
for (let i = 0; i < 10; i++) for (const [b, binary] of binaries.entries()) {
  const { spawned, healthy, firstStatus } = figures[b] ?? { spawned: [], healthy: [], firstStatus: [] };
  const dir = mkdtempSync(join(tmpdir(), 'bench-bin-'));
  const mesh = writeStaticMesh(dir, { app: app.port, inbound: await freePort(), outbound: await freePort() });
  const t0 = performance.now();
  const agent = spawn(binary, [], {
    env: { PATH: '/usr/bin:/bin', ENVOY_BINARY: envoy, ENVOY_CONFIG_FILE: mesh.path, APPNET_RUNTIME_DIR: join(dir, 'rt'), APPNET_AGENT_ADMIN_MODE: 'uds', APPNET_AGENT_ADMIN_UDS_PATH: join(dir, 'agent.sock'), ENVOY_LOG_LEVEL: 'error', APPNET_AGENT_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let spawnedAt = 0;
  agent.stdout?.setEncoding('utf8').on('data', (c: string) => {
    if (spawnedAt === 0 && c.includes('"msg":"Envoy started"')) spawnedAt = performance.now();
  });
  let answeredAt = 0;
  for (;;) {
    const r = await httpRequest({ socketPath: join(dir, 'agent.sock') }, '/status').catch(() => null);
    if (r?.status === 200 && answeredAt === 0) answeredAt = performance.now();
    if (r !== null && JSON.parse(r.body).healthStatus === 'HEALTHY') break;
    await sleep(answeredAt === 0 ? 2 : 10);
  }
  firstStatus.push(answeredAt - t0);
  healthy.push(performance.now() - t0);
  spawned.push(spawnedAt - t0);
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
await app.close();
const nodeE0: number[] = [];
for (let i = 0; i < 10; i++) {
  const t0 = performance.now();
  execFileSync(process.execPath, ['-e', '0']);
  nodeE0.push(performance.now() - t0);
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
process.stdout.write(`load average (1 min) ${loadBefore.toFixed(2)} before, ${(loadavg()[0] ?? 0).toFixed(2)} after; bare \`node -e 0\` (${process.version}): median ${med(nodeE0).toFixed(0)} ms (min ${Math.min(...nodeE0).toFixed(0)}, max ${Math.max(...nodeE0).toFixed(0)})\n`);
for (const [b, binary] of binaries.entries()) {
  const { spawned, healthy, firstStatus } = figures[b] ?? { spawned: [], healthy: [], firstStatus: [] };
  process.stdout.write(
    `${binaries.length > 1 ? binary : 'dist/agent'}: ${(statSync(binary).size / 1048576).toFixed(1)} MiB\n` +
    `exec → first /status 200: median ${med(firstStatus).toFixed(0)} ms (min ${Math.min(...firstStatus).toFixed(0)}, max ${Math.max(...firstStatus).toFixed(0)}) over 10 starts\n` +
    `exec → Envoy spawned: median ${med(spawned).toFixed(0)} ms (min ${Math.min(...spawned).toFixed(0)}, max ${Math.max(...spawned).toFixed(0)}) over 10 starts\n` +
    `exec → HEALTHY: median ${med(healthy).toFixed(0)} ms (min ${Math.min(...healthy).toFixed(0)}, max ${Math.max(...healthy).toFixed(0)})\n`,
  );
}
