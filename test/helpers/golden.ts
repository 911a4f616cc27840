/** Golden files: compare text with test/golden/<name>; UPDATE_GOLDEN=1 rewrites them. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { repoRoot } from './envoy.ts';

export function goldenPath(name: string): string {
  return `${repoRoot}/test/golden/${name}`;
}

export function assertGolden(name: string, actual: string): void {
  const path = goldenPath(name);
  if (process.env['UPDATE_GOLDEN'] === '1' || !existsSync(path)) {
    if (process.env['CI'] && !existsSync(path)) assert.fail(`golden file ${path} is missing; run UPDATE_GOLDEN=1 npm test locally and commit it`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  assert.equal(actual, readFileSync(path, 'utf8'), `${name} differs from its golden file; if the change is intended, run UPDATE_GOLDEN=1 npm test`);
}
