/**
 * V8's garbage collector, called where the agent knows a burst of work has just left garbage behind
 * (docs/benchmarks.md, "Memory"). By way of V8's own gc(), exposed in a separate context: the agent's global scope
 * gets no `gc`.
 *
 * - `young`: a scavenge, well under a millisecond on the agent's heap. A streamed answer's 64 KiB chunks are memory
 *   outside the JavaScript heap that V8 frees only when it collects their small wrappers.
 * - `reduce-memory`: the collection V8 makes under memory pressure ("last resort": full collections until nothing
 *   more is freed, compacting). Unlike a plain full collection it also gives back the pages V8 keeps in its pool
 *   for reuse: after Cloud Map's start-up discovery of 1,000 services, 12 to 20 MiB of pages that held only garbage.
 *   30 to 50 ms on the heap of an agent with 1,000 services, on the main thread: for the end of a burst, not for a
 *   request path.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type V8Gc = (opts: { type: 'minor' | 'major'; flavor?: 'regular' | 'last-resort' }) => void;
let gc: V8Gc | null | undefined;

export function collectGarbage(kind: 'young' | 'reduce-memory'): void {
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as V8Gc;
    } catch {
      gc = null;
    }
  }
  if (kind === 'young') gc?.({ type: 'minor' });
  else gc?.({ type: 'major', flavor: 'last-resort' });
}
