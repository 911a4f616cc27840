/**
 * The compose mesh (container/compose.yaml) as a person runs it on a laptop: moto as Cloud Map, two `web` tasks,
 * a backend and a frontend, each task a namespace owner, a sidecar in Cloud Map mode and an app. The requests are
 * made from inside a task (the app image carries /app/fetch.mjs, a curl stand-in), so they go through that task's
 * sidecar as an app's would: http://web/ from the web-2 task (namespace demo.local), the backend from the frontend
 * task (namespace local).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/wait.ts';
import { COMPOSE, DOCKER, docker, health, inspect, ok, run } from './engine.ts';

const project = 'sc-container-test';
const composeArgs = ['-p', project, '-f', 'container/compose.yaml'];
const compose = (args: readonly string[], timeoutMs = 120_000) => ok(COMPOSE, [...composeArgs, ...args], { timeoutMs });
let upMs = 0;
let firstAnswerMs = 0;
let downDone = false;

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The container of a compose service. */
async function containerOf(service: string): Promise<string> {
  const id = (await compose(['ps', '-q', service])).trim();
  assert.ok(id, `${service} has a container`);
  return id;
}

/** GET url from inside a task (its app container), through that task's sidecar. */
async function fetchFrom(task: string, url: string): Promise<Answer> {
  const r = await run(DOCKER, ['exec', await containerOf(`${task}-app`), 'node', '/app/fetch.mjs', url], { timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`GET ${url} from the ${task} task: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as Answer;
}
const fetchFromFrontend = (url: string) => fetchFrom('frontend', url);
const fetchWeb = () => fetchFrom('web-2', 'http://web/');

async function dumpLogs(): Promise<void> {
  const r = await run(COMPOSE, [...composeArgs, 'logs', '--no-color', '--tail', '40'], { timeoutMs: 30_000 }).catch((err: Error) => ({ stdout: '', stderr: err.message }));
  process.stderr.write(`── compose logs ──\n${r.stdout}${r.stderr}\n`);
  const ps = await run(COMPOSE, [...composeArgs, 'ps', '-a'], { timeoutMs: 30_000 }).catch((err: Error) => ({ stdout: '', stderr: err.message }));
  process.stderr.write(`── compose ps -a ──\n${ps.stdout}${ps.stderr}\n`);
}

/** Runs fn; on failure, prints the mesh's logs. */
async function withLogs(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    await dumpLogs();
    throw err;
  }
}

describe('the compose mesh', { concurrency: false }, () => {
  before(async () => {
    await run(COMPOSE, [...composeArgs, 'down', '--timeout', '5', '--remove-orphans'], { timeoutMs: 60_000 });
    await withLogs(async () => {
      const t0 = performance.now();
      await compose(['up', '-d', '--no-build', '--wait', '--wait-timeout', '120'], 300_000);
      upMs = performance.now() - t0;
      await waitFor('the first answer from http://web/ in the web-2 task', async () => (await fetchWeb()).status === 200, { timeoutMs: 30_000, everyMs: 100 });
      firstAnswerMs = performance.now() - t0;
    });
    process.stdout.write(`# compose up returned in ${(upMs / 1000).toFixed(1)} s; first answer ${(firstAnswerMs / 1000).toFixed(1)} s after up started\n`);
  });

  after(async () => {
    if (!downDone) await run(COMPOSE, [...composeArgs, 'down', '--timeout', '5', '--remove-orphans'], { timeoutMs: 120_000 });
  });

  test('sidecars run as uid 20000 with no capability, and every sidecar is healthy', async () => {
    await withLogs(async () => {
      for (const task of ['web-1', 'web-2', 'backend', 'frontend']) {
        const sidecar = await containerOf(`${task}-sidecar`);
        assert.equal(await health(sidecar), 'healthy', `${task}-sidecar is healthy`);
        const ids = await docker(['exec', sidecar, 'sh', '-c', 'id -u; grep CapEff /proc/self/status']);
        assert.match(ids, /^20000\nCapEff:\s+0000000000000000\n$/, `${task}-sidecar: uid and effective capabilities`);
      }
    });
  });

  test('names resolve to virtual IPs in 127.255.0.0/16: web 127.255.0.1 in a web task, backend-container.local 127.255.0.1 in the frontend task', async () => {
    await withLogs(async () => {
      // The agent gives virtual IPs from APPNET_VIP_CIDR (default 127.255.0.0/16), first address first, in the
      // order of the discovery names it first sees; each namespace here has one service, so each gets the first.
      // ahostsv4: an IPv4 lookup, answered by /etc/hosts (a plain `hosts` lookup asks DNS for IPv6 first).
      const lookup = async (task: string, name: string) => (await docker(['exec', await containerOf(`${task}-app`), 'getent', 'ahostsv4', name])).split(/\s/)[0];
      assert.equal(await lookup('web-2', 'web'), '127.255.0.1');
      assert.equal(await lookup('frontend', 'backend-container.local'), '127.255.0.1');
    });
  });

  test('both web tasks answer http://web/ in turn, and every answer comes from Envoy', async () => {
    await withLogs(async () => {
      const bodies = new Set<string>();
      for (let i = 0; i < 20 && bodies.size < 2; i++) {
        const a = await fetchWeb();
        assert.equal(a.status, 200, a.body);
        assert.equal(a.headers['server'], 'envoy');
        bodies.add(a.body.trim());
      }
      assert.deepEqual([...bodies].sort(), ['container 1', 'container 2']);
    });
  });

  test("the frontend gets the backend's answer by its Service Connect name backend-container.local:5000", async () => {
    await withLogs(async () => {
      const direct = await fetchFromFrontend('http://backend-container.local:5000/api/message');
      assert.equal(direct.status, 200, direct.body);
      assert.equal(direct.headers['server'], 'envoy');
      assert.deepEqual(JSON.parse(direct.body), { message: 'hello from the backend', task: 'backend-1' });
      const page = await fetchFromFrontend('http://localhost:3000/');
      assert.equal(page.status, 200, page.body);
      assert.deepEqual(JSON.parse(page.body), { frontend: 'frontend-1', backend: { message: 'hello from the backend', task: 'backend-1' }, backendStatus: 200, via: 'envoy' });
    });
  });

  test('a restarted sidecar is back in service without its app being restarted', async () => {
    await withLogs(async () => {
      const sidecar = await containerOf('web-1-sidecar');
      const app = await containerOf('web-1-app');
      const appStartedAt = await inspect(app, '{{.State.StartedAt}}');
      const sidecarStartedAt = await inspect(sidecar, '{{.State.StartedAt}}');
      await docker(['restart', '-t', '30', sidecar], { timeoutMs: 60_000 });
      assert.notEqual(await inspect(sidecar, '{{.State.StartedAt}}'), sidecarStartedAt, 'the sidecar was restarted');
      await waitFor('web-1-sidecar to be healthy again', async () => (await health(sidecar)) === 'healthy', { timeoutMs: 60_000, everyMs: 250 });
      // web-1 answers again through its new sidecar (registered again, and found by web-2's sidecar).
      await waitFor('"container 1" in the web round robin', async () => {
        for (let i = 0; i < 6; i++) if ((await fetchWeb()).body.trim() === 'container 1') return true;
        return false;
      }, { timeoutMs: 30_000, everyMs: 250 });
      assert.equal(await inspect(app, '{{.State.StartedAt}}'), appStartedAt, 'the app was not restarted');
      assert.equal(await inspect(app, '{{.State.Running}}'), 'true');
      assert.equal(await inspect(app, '{{.RestartCount}}'), '0');
    });
  });

  test('compose down stops and removes the whole mesh in under 5 s', async () => {
    await withLogs(async () => {
      const t0 = performance.now();
      await compose(['down', '--remove-orphans'], 60_000);
      const downMs = performance.now() - t0;
      downDone = true;
      process.stdout.write(`# compose down took ${(downMs / 1000).toFixed(1)} s\n`);
      assert.ok(downMs < 5000, `compose down took ${Math.round(downMs)} ms`);
      assert.equal((await docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])).trim(), '');
    });
  });
});
