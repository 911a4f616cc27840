/**
 * Envoy's log file (APPNET_ENVOY_LOG_DESTINATION): opened append-only and handed to Envoy as stdout and stderr.
 * When it grows past the limit it is copied to `<name>.<epoch ms>` and truncated; with O_APPEND, Envoy's next write
 * lands at the new end. Unlike the reference, the file is not truncated at start (history survives restarts) and
 * rotated names do not collide within a second.
 */
import { openSync, closeSync } from 'node:fs';
import { copyFile, readdir, rm, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../logger.ts';

export interface EnvoyLogFile {
  readonly fd: number;
  readonly path: string;
  /** Checks the size and rotates when needed; returns whether it rotated. */
  check(): Promise<boolean>;
  close(): void;
}

export async function pruneRotated(dir: string, name: string, keep: number): Promise<void> {
  const rotated = (await readdir(dir))
    .filter((f) => f.startsWith(`${name}.`) && /^\d+$/.test(f.slice(name.length + 1)))
    .sort((a, b) => Number(b.slice(name.length + 1)) - Number(a.slice(name.length + 1)));
  for (const old of rotated.slice(keep)) await rm(join(dir, old), { force: true });
}

export function openEnvoyLogFile(opts: { dir: string; name: string; maxBytes: number; retention: number; logger: Logger; checkEveryMs?: number }): EnvoyLogFile {
  const path = join(opts.dir, opts.name);
  const fd = openSync(path, 'a', 0o644);
  let busy = false;
  const check = async (): Promise<boolean> => {
    if (busy) return false;
    busy = true;
    try {
      const { size } = await stat(path);
      if (size <= opts.maxBytes) return false;
      await copyFile(path, `${path}.${Date.now()}`);
      await truncate(path, 0);
      await pruneRotated(opts.dir, opts.name, opts.retention);
      return true;
    } catch (err) {
      opts.logger.warn('rotating the Envoy log file failed', { path, err });
      return false;
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void check(), opts.checkEveryMs ?? 1000);
  timer.unref();
  return {
    fd,
    path,
    check,
    close: () => {
      clearInterval(timer);
      closeSync(fd);
    },
  };
}
