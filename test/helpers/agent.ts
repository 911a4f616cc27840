/**
 * Runs the built agent (dist/agent.js, on Node 24) as a process, the way a container does: env in, signals, exit
 * code, files, JSON log lines. Everything it started is killed and its temp dir removed in t.after().
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { repoRoot } from './envoy.ts';
import { httpRequest, type Response } from './http.ts';
import { waitFor } from './wait.ts';
import { isSocketLive } from '../../agent/system/claims.ts';

export const bundlePath = `${repoRoot}/dist/agent.js`;
export const binaryPath = `${repoRoot}/dist/agent`;
export const nodeBinary = process.execPath;

let built = false;
/**
 * The command that runs the agent: the single executable dist/agent, as the container runs it, when it is there
 * and current (npm test builds it first); else Node with the bundle, built here when missing.
 */
export function agentCommand(): [string, ...string[]] {
  ensureBuilt();
  const binaryCurrent = existsSync(binaryPath) && statSync(binaryPath).mtimeMs >= statSync(bundlePath).mtimeMs;
  return binaryCurrent ? [binaryPath] : [nodeBinary, bundlePath];
}

export function ensureBuilt(): void {
  if (built || existsSync(bundlePath)) {
    built = true;
    return;
  }
  execFileSync(nodeBinary, [`${repoRoot}/scripts/build.ts`], { cwd: repoRoot, stdio: 'ignore' });
  built = true;
}

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly adminSocket: string;
  readonly logs: Array<Record<string, unknown>>;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; atMs: number }>;
  waitForLog(what: string, pred: (rec: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  request(path: string, opts?: { method?: string; timeoutMs?: number }): Promise<Response>;
  status(): Promise<Record<string, unknown>>;
}

/** What the helpers need of a test context: somewhere to register cleanup. */
export type Cleanup = Pick<TestContext, 'after'>;

export function tempDir(t: Cleanup, prefix = 'agent-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Pids of live processes whose command line mentions `needle` (Envoy started with a bootstrap in a test dir). */
export function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const state = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.[0];
      if (cmdline.includes(needle) && state !== 'Z') pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/** The runtime directories agents chose themselves, by name in /tmp. */
function ownRuntimeDirs(): string[] {
  return readdirSync('/tmp').filter((n) => /^appnet-agent-[a-z2-7]{12}$/.test(n));
}

/**
 * The command as a user other than root can run it. A checkout may sit in a directory only root can enter
 * (`mktemp -d` makes it 0700), so the single executable is copied once into a directory anyone may read.
 */
let sharedExecutable: string | null = null;
function commandForAnyUser(command: string, prefix: string[]): [string, ...string[]] {
  if (prefix.length > 0) return [command, ...prefix];
  if (sharedExecutable === null) {
    const dir = mkdtempSync(join(tmpdir(), 'agent-exe-'));
    chmodSync(dir, 0o755);
    sharedExecutable = join(dir, 'agent');
    copyFileSync(command, sharedExecutable);
    chmodSync(sharedExecutable, 0o755);
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return [sharedExecutable];
}

/**
 * Starts the agent. By default every path is set inside a temp dir; `defaults: true` sets only PATH and opts.env,
 * so the agent picks every path itself, as it does where users run it.
 */
export function startAgent(t: Cleanup, opts: { env: Record<string, string>; dir?: string; args?: string[]; defaults?: boolean; wrapper?: string[]; uid?: number }): AgentProcess {
  const built = agentCommand();
  const [command, ...prefix] = opts.uid === undefined ? built : commandForAnyUser(built[0], built.slice(1));
  const dir = opts.dir ?? tempDir(t);
  const adminSocket = opts.env['APPNET_AGENT_ADMIN_UDS_PATH'] ?? (opts.defaults === true ? '/var/run/ecs/appnet_admin.sock' : join(dir, 'agent.sock'));
  const env: Record<string, string> =
    opts.defaults === true
      ? { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...opts.env }
      : {
          PATH: process.env['PATH'] ?? '/usr/bin:/bin',
          APPNET_RUNTIME_DIR: join(dir, 'runtime'),
          APPNET_AGENT_ADMIN_MODE: 'uds',
          APPNET_AGENT_ADMIN_UDS_PATH: adminSocket,
          ENVOY_ADMIN_UDS_PATH: join(dir, 'envoy-admin.sock'),
          ENVOY_ADMIN_ACCESS_LOG_FILE: join(dir, 'envoy-admin-access.log'),
          ENVOY_LOG_LEVEL: 'warning',
          APPNET_AGENT_LOG_LEVEL: 'info',
          ...opts.env,
        };
  const before = new Set(opts.defaults === true ? ownRuntimeDirs() : []);
  // A wrapper (prlimit ...) must exec the agent, so that the child's pid is the agent's.
  const argv = [...(opts.wrapper ?? []), command, ...prefix, ...(opts.args ?? [])];
  const child = spawn(argv[0] ?? command, argv.slice(1), { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}) });
  let out = '';
  let err = '';
  const logs: Array<Record<string, unknown>> = [];
  let pending = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line.startsWith('{')) {
        try {
          logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // Envoy's own output can interleave; only whole JSON lines are the agent's
        }
      }
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; atMs: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, atMs: Date.now() })),
  );
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    // Envoys the agent started (with default paths their command line does not mention the test's dir).
    const envoys = logs.filter((l) => l['msg'] === 'Envoy started').map((l) => Number(l['pid']));
    for (const pid of [...processesMentioning(dir), ...envoys]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    // Runtime directories agents chose themselves (/tmp/appnet-agent-<random>) since this one started, and left
    // when they were killed: their lock no longer answers. A live agent's is kept, and so is any that was there before.
    if (opts.defaults === true) {
      for (const name of ownRuntimeDirs().filter((n) => !before.has(n))) {
        if (!(await isSocketLive(`/tmp/${name}/agent.lock`))) rmSync(`/tmp/${name}`, { recursive: true, force: true });
      }
    }
  });
  const target = { socketPath: adminSocket };
  return {
    child,
    dir,
    adminSocket,
    logs,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForLog: (what, pred, timeoutMs = 15_000) => waitFor(`agent log: ${what}`, async () => logs.find(pred), { timeoutMs }),
    request: (path, o = {}) => httpRequest(target, path, o),
    status: async () => JSON.parse((await httpRequest(target, '/status')).body) as Record<string, unknown>,
  };
}

/** Waits until /status says HEALTHY and returns the status document. */
export function waitHealthy(agent: AgentProcess, timeoutMs = 15_000, extra: (s: Record<string, unknown>) => boolean = () => true): Promise<Record<string, unknown>> {
  return waitFor('HEALTHY', async () => {
    const s = await agent.status();
    return s['healthStatus'] === 'HEALTHY' && extra(s) ? s : undefined;
  }, { timeoutMs });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== 'Z';
  } catch {
    return false;
  }
}
