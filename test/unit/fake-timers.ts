/** node:test's mock timers for setTimeout, including the ESM binding of node:timers/promises the agent imports. */
import { mock, type TestContext } from 'node:test';
import { syncBuiltinESMExports } from 'node:module';

export function fakeTimers(t: TestContext): void {
  mock.timers.enable({ apis: ['setTimeout'] });
  // An ESM import of a built-in module is a copy of its exports: sync it so that the agent's
  // `import { setTimeout } from 'node:timers/promises'` sees the mock, and the real one again afterwards.
  syncBuiltinESMExports();
  t.after(() => {
    mock.timers.reset();
    syncBuiltinESMExports();
  });
}
