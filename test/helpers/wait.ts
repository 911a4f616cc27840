/** Waits for a condition the test can observe, polling it; fails with the last observation at the deadline. */
import { setTimeout as sleep } from 'node:timers/promises';

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>, opts: { timeoutMs?: number; everyMs?: number } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last observation: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await sleep(opts.everyMs ?? 100);
  }
}
