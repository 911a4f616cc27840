/** File effects: atomic replace for files the agent owns; directories with restrictive modes. */
import { closeSync, mkdirSync, openSync, readSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { AgentError } from '../errors.ts';

/**
 * Writes to a temporary file in the same directory, fsyncs, and renames it into place (readers never see half). The
 * content may come in pieces, written one after the other (no buffer of the whole file).
 */
let sequence = 0;

export async function writeFileAtomic(path: string, content: string | readonly string[], mode = 0o644): Promise<void> {
  // pid + sequence is unique among this directory's writers, and avoids initialising OpenSSL for random bytes
  // (a measurable part of the idle agent's memory).
  const tmp = join(dirname(path), `.${process.pid}.${++sequence}.tmp`);
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new AgentError('AGENT_ERR_WRITE', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export async function ensureDirectory(path: string, mode = 0o700): Promise<void> {
  try {
    // Synchronous: one local syscall, at start-up (the runtime directory), where a thread-pool round trip cost more.
    mkdirSync(path, { recursive: true, mode });
  } catch (err) {
    throw new AgentError('AGENT_ERR_WRITE', `cannot create directory ${path}: ${(err as Error).message}`, { cause: err });
  }
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/**
 * A random name of 12 characters (60 bits) for a directory of the agent's own. Read from /dev/urandom rather than
 * node:crypto, which would load OpenSSL into the idle agent's memory.
 */
export function randomName(): string {
  const bytes = Buffer.alloc(12);
  const fd = openSync('/dev/urandom', 'r');
  try {
    readSync(fd, bytes, 0, bytes.length, null);
  } finally {
    closeSync(fd);
  }
  return [...bytes].map((b) => ALPHABET[b & 31]).join('');
}
