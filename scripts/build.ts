/**
 * Bundles agent/main.ts into dist/agent.js (one CommonJS file, source map beside it) with the bootstrap templates
 * inlined, so the bundle and the single executable need no files beside them but the two large dependencies: the
 * AWS SDK's Cloud Map client and the YAML library are bundled on their own into dist/deps/ (the single executable
 * carries them as assets) and loaded only by the agents that use them (agent/system/dependencies.ts).
 *
 * The output is whitespace-minified and ASCII only: V8 keeps a script's whole source in the heap for as long as the
 * script lives, and a source with a single character beyond Latin-1 is stored at two bytes a character.
 */
import { build, type BuildOptions } from 'esbuild';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dependencyPackages } from '../agent/system/dependencies.ts';

const templates: Record<string, string> = {};
for (const file of readdirSync('bootstrap-templates')) {
  if (file.endsWith('.yaml')) templates[file.replace(/\.yaml$/, '')] = readFileSync(`bootstrap-templates/${file}`, 'utf8');
}

const common: BuildOptions = {
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'cjs',
  minifySyntax: true,
  minifyWhitespace: true,
  charset: 'ascii',
  legalComments: 'none',
  write: false,
};

/** esbuild's ASCII charset leaves a regular expression's literal characters as they are; escape what is left. */
function asciiOnly(text: string): string {
  return text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

rmSync('dist/deps', { recursive: true, force: true });
mkdirSync('dist/deps', { recursive: true });
const result = await build({
  ...common,
  entryPoints: ['agent/main.ts'],
  outfile: 'dist/agent.js',
  sourcemap: true,
  define: { __AGENT_TEMPLATES__: JSON.stringify(templates), __AGENT_BUNDLED_DEPENDENCIES__: 'true' },
  // relay/templates.ts and agent/system/dependencies.ts use import.meta.url only when run from sources, as in tests.
  logOverride: { 'empty-import-meta': 'silent' },
});
let bytes = 0;
for (const out of result.outputFiles ?? []) {
  const text = out.path.endsWith('.js') ? asciiOnly(out.text) : out.text;
  writeFileSync(out.path, text);
  if (out.path.endsWith('.js')) bytes = Buffer.byteLength(text);
}
for (const [name, pkg] of Object.entries(dependencyPackages)) {
  const dep = await build({ ...common, stdin: { contents: `module.exports = require(${JSON.stringify(pkg)});`, resolveDir: '.', loader: 'js' }, outfile: `dist/deps/${name}.js` });
  for (const out of dep.outputFiles ?? []) writeFileSync(out.path, asciiOnly(out.text));
}
// The repository is "type": "module"; the bundle is CommonJS (what a Node single executable runs), so dist/ says so.
writeFileSync('dist/package.json', '{ "type": "commonjs" }\n');
process.stdout.write(`dist/agent.js: ${(bytes / 1024).toFixed(0)} KiB\n`);
