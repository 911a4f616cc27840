/**
 * The paths an agent must have to itself while it runs, claimed before anything is written into them:
 *
 * - the runtime directory: held through a lock socket `agent.lock` inside it, which the agent listens on. Another
 *   agent finds it live (connect succeeds) and stops; a lock left by an agent that was killed refuses connections
 *   and is replaced. A socket works across PID namespaces (containers sharing a volume), where a pid file does not.
 * - Envoy's admin socket or port, and the relay's listener socket: a socket or port something already serves on is
 *   another Envoy (the agent would read its health and, on stop, send it /quitquitquit), so the agent stops; a stale
 *   socket file is removed for Envoy to bind; any other file is an error and is left as it was.
 *
 * Each refusal is one AGENT_ERR_LISTEN line naming the variable, the path and what holds it.
 *
 * The file-system calls are synchronous: a few local syscalls on the way to Envoy's start, each of which would
 * otherwise be a round trip through libuv's thread pool (started on first use); the claim took 6.7 ms (median) of an
 * agent's start-up that way.
 */
import { createServer, connect, type Server } from 'node:net';
import { lstatSync, rmSync, unlinkSync, type Stats } from 'node:fs';
import { AgentError } from '../errors.ts';
import { ensureDirectory } from './files.ts';

export const RUNTIME_LOCK = 'agent.lock';

export interface Claim {
  /** Releases what the agent holds: closes the lock, and removes a runtime directory the agent chose itself. */
  releaseSync(): void;
}

/** Whether something accepts connections on the Unix socket at `path` (false: refused, missing, not a socket). */
export function isSocketLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ path });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

function isPortLive(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    sock.setTimeout(1000, () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

function held(variable: string, value: string, what: string): AgentError {
  return new AgentError('AGENT_ERR_LISTEN', `${variable}="${value}": ${what}`);
}

/**
 * Makes `path` free for a Unix socket the agent or its Envoy will bind: nothing there, or a stale socket (removed).
 * A live socket, or a file that is not a socket, is an error naming `variable`.
 */
export async function freeSocketPath(
  variable: string,
  path: string,
  holder: string,
  opts: { shown?: string; advice?: string } = {},
): Promise<void> {
  const shown = opts.shown ?? `${variable}="${path}"`;
  const advice = opts.advice ?? 'give each agent its own path';
  const fail = (what: string) => new AgentError('AGENT_ERR_LISTEN', `${shown}: ${what}`);
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw fail(`cannot be checked (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!st.isSocket()) throw fail(`is a ${describeFile(st)}, not a socket; the agent does not delete it: remove it or choose another path`);
  if (await isSocketLive(path)) throw fail(`${holder} is serving on this socket; ${advice}`);
  rmSync(path, { force: true });
}

function describeFile(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): string {
  return st.isFile() ? 'regular file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symbolic link' : 'special file';
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function lockRuntimeDir(config: ClaimedPaths): Promise<Server> {
  const variable = 'APPNET_RUNTIME_DIR';
  const lock = `${config.runtimeDir}/${RUNTIME_LOCK}`;
  const server = createServer((sock) => sock.destroy());
  server.unref();
  try {
    await listen(server, lock);
    return server;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw held(variable, config.runtimeDir, `cannot be locked (${(err as Error).message})`);
  }
  const st = lstatSync(lock, { throwIfNoEntry: false }) ?? null;
  if (st !== null && !st.isSocket()) throw held(variable, config.runtimeDir, `holds ${lock}, a ${describeFile(st)} the agent does not delete`);
  if (await isSocketLive(lock)) throw held(variable, config.runtimeDir, 'another agent is running with this directory; give each agent its own, or leave it unset for one of its own');
  // A lock left by an agent that was killed: nobody answers on it.
  rmSync(lock, { force: true });
  try {
    await listen(server, lock);
  } catch (err) {
    throw held(variable, config.runtimeDir, `cannot be locked (${(err as Error).message})`);
  }
  return server;
}

/** Claims the runtime directory and checks Envoy's admin address and the relay socket are free. */
/** What claimRuntime reads of the configuration (a Config has it): the paths to claim. */
export interface ClaimedPaths {
  readonly runtimeDir: string;
  readonly runtimeDirOwned: boolean;
  readonly bootstrapPath: string;
  readonly userBootstrap: { readonly path: string } | null;
  readonly envoyAdmin: { readonly address: { readonly kind: 'uds'; readonly path: string } | { readonly kind: 'tcp'; readonly host: string; readonly port: number } };
  readonly relay: { readonly listenerPath: string } | null;
}

export async function claimRuntime(config: ClaimedPaths): Promise<Claim> {
  await ensureDirectory(config.runtimeDir);
  const lock = await lockRuntimeDir(config);
  const lockPath = `${config.runtimeDir}/${RUNTIME_LOCK}`;
  const lockIno = lstatSync(lockPath).ino;
  let released = false;
  const claim: Claim = {
    releaseSync: () => {
      if (released) return;
      released = true;
      lock.close();
      if (config.runtimeDirOwned) {
        rmSync(config.runtimeDir, { recursive: true, force: true });
        return;
      }
      try {
        // Only the agent's own lock: a later agent may have replaced it.
        if (lstatSync(lockPath).ino === lockIno) unlinkSync(lockPath);
      } catch {
        // already gone
      }
    },
  };
  try {
    const admin = config.envoyAdmin.address;
    const variable = config.userBootstrap !== null ? 'ENVOY_CONFIG_FILE' : admin.kind === 'uds' ? 'ENVOY_ADMIN_UDS_PATH' : 'ENVOY_ADMIN_ACCESS_PORT';
    if (admin.kind === 'uds') {
      const shown = variable === 'ENVOY_CONFIG_FILE' ? `ENVOY_CONFIG_FILE="${config.bootstrapPath}" (admin.address.pipe.path "${admin.path}")` : undefined;
      await freeSocketPath(variable, admin.path, 'another Envoy', {
        ...(shown === undefined ? {} : { shown }),
        advice: variable === 'ENVOY_CONFIG_FILE' ? 'give each bootstrap its own admin path' : 'give each agent its own path, or leave it unset for one in its own runtime directory',
      });
    } else if (await isPortLive(admin.host, admin.port)) {
      const value = variable === 'ENVOY_CONFIG_FILE' ? config.bootstrapPath : String(admin.port);
      throw held(variable, value, `something already listens on ${admin.host.includes(':') ? `[${admin.host}]` : admin.host}:${admin.port} (another Envoy?); the agent would drive it as its own Envoy`);
    }
    if (config.relay !== null && config.userBootstrap === null) await freeSocketPath('APPNET_RELAY_LISTENER_UDS_PATH', config.relay.listenerPath, 'another relay');
  } catch (err) {
    claim.releaseSync();
    throw err;
  }
  return claim;
}
