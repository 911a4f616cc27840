/**
 * Writes the agent's block into the hosts file in place. In a container /etc/hosts is a bind mount: it cannot be
 * replaced by a rename, so it is rewritten through the same inode. A reader (a resolver) may read while a write is
 * under way and see any mix of old and new bytes of it, so every write is made such that any such mix is still a
 * hosts file with every user line and no wrong entry: at every instant a reader sees all the lines outside the block,
 * and of the block's entries some of the old ones or some of the new ones (never a line cut and joined to another,
 * never the file empty). A reader whose view spans several passes (several reads of a large file, or one read the
 * kernel preempts mid-copy while two updates go by) can see one block line cut where its view moves to a later
 * state; the lines outside the block are whole whatever it does.
 *
 * 1. Writers of the agent's kind take turns: a lock held by listening on an abstract Unix socket named after the
 *    file's device and inode. The kernel frees it when its holder dies, so a crash never leaves a stale lock.
 * 2. The new content is computed from the file as read; right before writing, the file's size and modification time
 *    are checked again, and a change in between (a writer of another kind) starts over.
 * 3. The block's region is rewritten in four passes, each a single write whose bytes may show in any mix:
 *    comment out every line (only line-start bytes change); make the region one comment line; write the new lines,
 *    each still commented; uncomment them (only line-start bytes change). The region keeps its length: a shorter
 *    block is followed by a padding comment line (of '#' only), which a later, longer block may use. While the
 *    agent runs the file never shrinks (a reader that read to the end and reads on would join lines of two states).
 * 4. A block that outgrows its region gets a new one at the end of the file, and the old region becomes a comment
 *    line (`# ecs-service-connect-agent: unused ###`). Room is taken by appending a comment line first: on a full
 *    disk the append fails, the file is truncated back to its old length, it is as it was, and the error names the
 *    file. On stop, a block at the end of the file is removed by truncating, with the unused lines that end the file
 *    after it is gone; elsewhere its region becomes an unused line.
 * 5. The file is read back and compared with what was meant; a writer of another kind in between starts over.
 */
import { createServer, type Server } from 'node:net';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentError } from '../errors.ts';
import { applyHostsBlock, fileEol, findHostsBlocks, withEol, type BlockSpan } from './hosts-block.ts';

/** Tries before giving up when writers of another kind keep changing the file under the agent. */
const ATTEMPTS = 5;
/** The longest the agent waits for another agent's write to the same file. */
const LOCK_WAIT_MS = 10_000;

function failure(path: string, what: string, err?: unknown): AgentError {
  const reason = err === undefined ? '' : ` (${(err as NodeJS.ErrnoException).code ?? ''}${(err as NodeJS.ErrnoException).code ? ': ' : ''}${(err as Error).message.replace(/^[A-Z]+: /, '')})`;
  return new AgentError('AGENT_ERR_WRITE', `APPNET_HOSTS_FILE="${path}": ${what}${reason}`, err === undefined ? {} : { cause: err });
}

// ── The lock ──────────────────────────────────────────────────────────────────────────────────────────────────
const inProcess = new Map<string, Promise<unknown>>();

async function lockKey(path: string): Promise<string> {
  const st = await stat(path).catch(() => null);
  return st === null ? `path:${resolve(path)}` : `inode:${st.dev}:${st.ino}`;
}

async function holdSocketLock(key: string, path: string): Promise<Server | null> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    const server = createServer((s) => s.destroy());
    const outcome = await new Promise<'held' | 'busy' | 'unavailable'>((done) => {
      server.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'EADDRINUSE' ? 'busy' : 'unavailable'));
      server.listen(`\0ecs-service-connect-agent/hosts/${key}`, () => done('held'));
    });
    if (outcome === 'held') {
      server.unref();
      return server;
    }
    // Where abstract sockets do not exist, writers of the agent's kind are not serialised; each write still checks
    // for changes under it.
    if (outcome === 'unavailable') return null;
    if (Date.now() > deadline) throw failure(path, `another agent has held its lock for over ${LOCK_WAIT_MS / 1000} s`);
    await sleep(5 + Math.floor(Math.random() * 20));
  }
}

async function withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const key = await lockKey(path);
  const previous = inProcess.get(key) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(async () => {
    const lock = await holdSocketLock(key, path);
    try {
      return await fn();
    } finally {
      lock?.close();
    }
  });
  inProcess.set(key, run);
  try {
    return await run;
  } finally {
    if (inProcess.get(key) === run) inProcess.delete(key);
  }
}

// ── The write ─────────────────────────────────────────────────────────────────────────────────────────────────
const HASH = 0x23;
const NL = 0x0a;

async function readAll(fh: FileHandle): Promise<{ bytes: Buffer; mtimeMs: number }> {
  const st = await fh.stat();
  const bytes = Buffer.alloc(st.size);
  let got = 0;
  while (got < bytes.length) {
    const { bytesRead } = await fh.read(bytes, got, bytes.length - got, got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return { bytes: bytes.subarray(0, got), mtimeMs: st.mtimeMs };
}

async function writeAt(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** `lines` (complete lines) with the first byte of every non-empty line set to '#'. */
function commented(lines: Buffer): Buffer {
  const out = Buffer.from(lines);
  for (let i = 0; i < out.length; i++) {
    if ((i === 0 || out[i - 1] === NL) && out[i] !== NL && out[i] !== 0x0d) out[i] = HASH;
  }
  return out;
}

/** One comment line of `length` bytes: '#'s and a newline. */
function commentLine(length: number): Buffer {
  const out = Buffer.alloc(length, HASH);
  out[length - 1] = NL;
  return out;
}

/** How a place the block left reads: a comment line the agent recognises and removes when it is at the end. */
const UNUSED = Buffer.from('# ecs-service-connect-agent: unused ', 'latin1');

/** A comment line of `length` bytes marking a place the block left (plain '#'s when too short for the words). */
function unusedLine(length: number): Buffer {
  const out = commentLine(length);
  if (length > UNUSED.length + 1) UNUSED.copy(out, 0);
  return out;
}

/** Where the run of unused lines that ends the file begins (a user's own comment lines are never taken for one). */
function trailingUnusedStart(bytes: Buffer): number {
  let start = bytes.length;
  while (start > 0) {
    const lineStart = bytes.lastIndexOf(NL, start - 2) + 1;
    const line = bytes.subarray(lineStart, start);
    const text = line.toString('latin1');
    if (!text.startsWith(UNUSED.toString('latin1')) || !/^[^\n]*#\n$/.test(text)) break;
    start = lineStart;
  }
  return start;
}

/**
 * The file as the agent lays it out in place. `bytes` is what it holds; each step writes it and keeps `bytes` in step.
 */
class InPlace {
  bytes: Buffer;
  readonly #fh: FileHandle;
  readonly #path: string;
  constructor(fh: FileHandle, path: string, bytes: Buffer) {
    this.#fh = fh;
    this.#path = path;
    this.bytes = bytes;
  }

  private async put(at: number, data: Buffer): Promise<void> {
    const current = this.bytes.subarray(at, at + data.length);
    if (current.equals(data)) return;
    await writeAt(this.#fh, data, at);
    this.bytes = Buffer.concat([this.bytes.subarray(0, at), data, this.bytes.subarray(at + data.length)]);
  }

  /** Rewrites the region [at, at + target.length) (complete lines, after a newline) in the four passes. */
  async rewrite(at: number, target: Buffer): Promise<void> {
    const current = this.bytes.subarray(at, at + target.length);
    await this.put(at, commented(current));
    await this.put(at, commentLine(target.length));
    await this.put(at, commented(target));
    await this.put(at, target);
  }

  /** Appends a comment line of `length` bytes; on a full disk, truncates back and throws: the file is as it was. */
  async extend(length: number): Promise<void> {
    const before = this.bytes.length;
    const tail = before > 0 && this.bytes[before - 1] !== NL ? Buffer.concat([Buffer.from('\n'), length > 1 ? commentLine(length - 1) : Buffer.alloc(0)]) : commentLine(length);
    try {
      await writeAt(this.#fh, tail, before);
    } catch (err) {
      await this.#fh.truncate(before).catch(() => undefined);
      throw failure(this.#path, 'cannot be written; it is left as it was', err);
    }
    this.bytes = Buffer.concat([this.bytes, tail]);
  }

  async truncate(length: number): Promise<void> {
    await this.#fh.truncate(length);
    this.bytes = this.bytes.subarray(0, length);
  }
}

/**
 * Where the block's region ends: after the block, the padding comment lines the agent left there (lines of '#'
 * only), which a later block may use.
 */
function regionEnd(bytes: Buffer, blockEnd: number): number {
  let end = blockEnd;
  for (;;) {
    let i = end;
    while (i < bytes.length && bytes[i] === HASH) i++;
    if (i === end) return end;
    if (bytes[i] === 0x0d) i++;
    if (bytes[i] !== NL) return end;
    end = i + 1;
  }
}

/** Padding so that `block` fills `length` bytes: a comment line after it (or a newline when one byte is left). */
function padded(block: Buffer, length: number): Buffer {
  const rest = length - block.length;
  if (rest <= 0) return block;
  return Buffer.concat([block, rest === 1 ? Buffer.from('\n') : commentLine(rest)]);
}

/** One read-compute-write pass. 'changed': the file changed under it (a writer of another kind); try again. */
async function writeOnce(path: string, block: string | null): Promise<boolean | 'changed'> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r+');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && block === null) return false;
    if (code !== 'ENOENT') throw failure(path, 'cannot be opened for writing', err);
    try {
      fh = await open(path, 'wx+', 0o644);
    } catch (err2) {
      if ((err2 as NodeJS.ErrnoException).code === 'EEXIST') return 'changed';
      throw failure(path, 'cannot be created', err2);
    }
  }
  try {
    const { bytes: old, mtimeMs } = await readAll(fh).catch((err: unknown) => {
      throw failure(path, 'cannot be read', err);
    });
    // latin1: one character per byte, so string offsets are file offsets; the agent's lines are ASCII.
    const oldText = old.toString('latin1');
    if (applyHostsBlock(oldText, block) === oldText) return false;

    // A writer of another kind between the read and here: start over from what it wrote.
    const now = await fh.stat();
    if (now.size !== old.length || now.mtimeMs !== mtimeMs) return 'changed';

    const file = new InPlace(fh, path, old);
    const blocks = findHostsBlocks(oldText);
    const eol = blocks[0]?.eol ?? fileEol(oldText);
    const wanted = block === null ? null : Buffer.from(withEol(block, eol), 'latin1');
    let placed = wanted === null;
    try {
      // Later blocks first, so that earlier offsets stay put when the file is truncated.
      for (let i = blocks.length - 1; i >= 0; i--) {
        const b = blocks[i] as BlockSpan;
        const end = regionEnd(file.bytes, b.end);
        const length = end - b.start;
        if (i === 0 && wanted !== null && wanted.length <= length) {
          // In its region, padded to the region's length: no line after it moves, and the file never shrinks while
          // the agent runs (a reader that has read to the end and reads on would join lines of two states).
          await file.rewrite(b.start, padded(wanted, length));
          placed = true;
        } else if (end === file.bytes.length && wanted === null) {
          await file.truncate(b.start);
        } else {
          await file.rewrite(b.start, unusedLine(length));
        }
      }
      if (wanted === null) {
        // On stop, places the block left at the end of the file go too: the file is as it was before the agent.
        const start = trailingUnusedStart(file.bytes);
        if (start < file.bytes.length && (start === 0 || file.bytes[start - 1] === NL)) await file.truncate(start);
      }
      if (!placed && wanted !== null) {
        // A new region at the end: it starts where the file ended, on a line of its own, in every state a reader sees.
        const needsNewline = file.bytes.length > 0 && file.bytes[file.bytes.length - 1] !== NL;
        const at = file.bytes.length + (needsNewline ? 1 : 0);
        await file.extend(wanted.length + (needsNewline ? 1 : 0));
        await file.rewrite(at, wanted);
      }
      await fh.datasync();
    } catch (err) {
      if (err instanceof AgentError) throw err;
      throw failure(path, 'cannot be written', err);
    }
    const check = await readAll(fh);
    return check.bytes.equals(file.bytes) ? true : 'changed';
  } finally {
    await fh.close();
  }
}

/**
 * Sets the agent's block in the hosts file at `path` (null removes it). Returns whether the file changed. Throws
 * AGENT_ERR_WRITE naming APPNET_HOSTS_FILE and the path when it cannot; the file is then as it was.
 */
export async function writeHostsBlock(path: string, block: string | null): Promise<boolean> {
  return withLock(path, async () => {
    let changed = false;
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const outcome = await writeOnce(path, block);
      if (outcome !== 'changed') return outcome || changed;
      changed = true;
    }
    throw failure(path, `kept changing while the agent wrote its block (${ATTEMPTS} attempts); another program is rewriting it`);
  });
}
