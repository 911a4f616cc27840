/**
 * The container engine as the container tests drive it: the docker CLI and Docker Compose v2, each call bounded.
 * scripts/container-stage.sh sets DOCKER, COMPOSE and the base images (NODE_IMAGE, ENVOY_IMAGE, PYTHON_IMAGE,
 * DEBIAN_IMAGE) and builds the images these tests run.
 */
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { repoRoot } from '../helpers/envoy.ts';

export const DOCKER = process.env['DOCKER'] ?? 'docker';
export const COMPOSE = process.env['COMPOSE'] ?? 'docker-compose';
export const AGENT_IMAGE = 'ecs-service-connect-agent:interface-v1';
export { repoRoot };

export interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command; resolves with its exit code and output (never rejects on a non-zero exit). */
export function run(file: string, args: readonly string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: repoRoot, timeout: opts.timeoutMs ?? 60_000, killSignal: 'SIGKILL', maxBuffer: 64 << 20, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new Error(`${file} ${args.join(' ')}: ${err.killed ? `no end within ${opts.timeoutMs ?? 60_000} ms` : err.message}\n${stderr}`));
        return;
      }
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
  });
}

/** Runs a command that must succeed; returns its stdout. */
export async function ok(file: string, args: readonly string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await run(file, args, opts);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

export const docker = (args: readonly string[], opts: { timeoutMs?: number } = {}) => ok(DOCKER, args, opts);

/** `docker inspect -f FORMAT NAME`, trimmed. */
export const inspect = async (name: string, format: string) => (await docker(['inspect', '-f', format, name])).trim();

/** Docker's own health status of a container: starting, healthy, unhealthy. */
export const health = (name: string) => inspect(name, '{{.State.Health.Status}}');

/** GET over a Unix socket, as the ECS agent asks the sidecar (Host: localhost). */
export function getOverSocket(socketPath: string, path: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, host: 'localhost', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${socketPath}${path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
