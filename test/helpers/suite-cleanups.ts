/**
 * Cleanups for a whole describe() block: node:test's t.after() belongs to one test, while an e2e suite starts its
 * moto, agents and servers once in before(). What is registered through `ctx` runs last-first from `run()`, which
 * the suite calls from its after().
 */
import type { Cleanup } from './agent.ts';

export interface SuiteCleanups {
  readonly ctx: Cleanup;
  run(): Promise<void>;
}

export function suiteCleanups(): SuiteCleanups {
  const cleanups: Array<() => unknown> = [];
  return {
    ctx: { after: (fn) => void cleanups.push(fn as () => unknown) },
    run: async () => {
      for (const fn of cleanups.splice(0).reverse()) await fn();
    },
  };
}
