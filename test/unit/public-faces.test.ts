/**
 * The layout's rules, by a static scan of every source file's import specifiers: every folder of the agent
 * (agent/<folder>/ and relay/) has a public face, its index.ts, and code in one folder imports another only
 * through it; no folder imports a command; no two folders import each other; only agent/main.ts reads process.env.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = `${dir}/${name}`;
    if (statSync(join(root, path)).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** agent/<folder> or relay for a file in a folder; null for the composition root's own files (agent/main.ts ...). */
function folderOf(file: string): string | null {
  const parts = file.split('/');
  if (parts[0] === 'relay') return 'relay';
  return parts.length >= 3 ? `${parts[0]}/${parts[1]}` : null;
}

function specifiers(text: string): string[] {
  const found = [...text.matchAll(/(?:^|\s)(?:import|export)\b[^'";]*?\bfrom\s*'([^']+)'/g), ...text.matchAll(/\bimport\s*\(\s*'([^']+)'\s*\)/g)];
  return found.map((m) => m[1] ?? '');
}

const files = [...sourceFiles('agent'), ...sourceFiles('relay')];
const folders = [...new Set(files.map(folderOf).filter((f): f is string => f !== null))].sort();

/** Every import between two different folders: [file, the file it imports]. */
function crossFolderImports(): Array<[string, string]> {
  const found: Array<[string, string]> = [];
  for (const file of files) {
    for (const spec of specifiers(readFileSync(join(root, file), 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = relative(root, resolve(root, dirname(file), spec));
      const from = folderOf(file);
      const to = folderOf(target);
      if (from !== null && to !== null && from !== to) found.push([file, target]);
    }
  }
  return found;
}

function bypasses(): Array<[string, string]> {
  const found: Array<[string, string]> = [];
  for (const file of files) {
    const from = folderOf(file);
    for (const spec of specifiers(readFileSync(join(root, file), 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = relative(root, resolve(root, dirname(file), spec));
      const to = folderOf(target);
      if (to === null || to === from) continue;
      if (target !== `${to}/index.ts`) found.push([file, spec]);
    }
  }
  return found;
}

test('every folder of the agent and relay/ has a public face (index.ts)', () => {
  const missing = folders.filter((f) => !existsSync(join(root, f, 'index.ts')));
  assert.deepEqual(missing, []);
});

test('no import reaches into another folder past its index.ts', () => {
  // Pins down the layout rule: a folder's inside is its own; others use what its index.ts exports.
  assert.deepEqual(bypasses().map(([f, s]) => `${f} → ${s}`), [], 'import these through the folder’s index.ts');
});

test('the scan sees what it must: a bypass in a specifier is reported', () => {
  assert.deepEqual(specifiers("import { a } from '../envoy/supervisor.ts';\nexport type { B } from './x.ts';\nconst m = await import('../system/yaml.ts');"), [
    '../envoy/supervisor.ts',
    './x.ts',
    '../system/yaml.ts',
  ]);
  assert.ok(folders.includes('relay') && folders.includes('agent/envoy'), `folders found: ${folders.join(', ')}`);
});

test('no folder imports a command: modes plug into run through agent/modes/contract.ts', () => {
  const found = crossFolderImports()
    .filter(([, target]) => folderOf(target) === 'agent/commands')
    .map(([file, target]) => `${file} → ${target}`);
  assert.deepEqual([...new Set(found)].sort(), []);
});

test('no two folders import each other', () => {
  const edges = new Set(crossFolderImports().map(([file, target]) => `${folderOf(file)} → ${folderOf(target)}`));
  const mutual = [...edges]
    .map((e) => e.split(' → ') as [string, string])
    .filter(([a, b]) => a < b && edges.has(`${b} → ${a}`))
    .map(([a, b]) => `${a} ⇄ ${b}`);
  assert.deepEqual(mutual.sort(), []);
});

test('only agent/main.ts reads process.env: the others are handed what they need', () => {
  const readers = files.filter((f) => f !== 'agent/main.ts' && /\bprocess\.env\b/.test(readFileSync(join(root, f), 'utf8')));
  assert.deepEqual(readers.sort(), []);
});
