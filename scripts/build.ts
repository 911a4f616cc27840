/**
 * Bundles agent/main.ts into dist/agent.js (one CommonJS file, source map beside it) with the bootstrap templates
 * inlined, so the bundle and the single executable need no files beside them.
 */
import { build } from 'esbuild';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';

const templates: Record<string, string> = {};
for (const file of readdirSync('bootstrap-templates')) {
  if (file.endsWith('.yaml')) templates[file.replace(/\.yaml$/, '')] = readFileSync(`bootstrap-templates/${file}`, 'utf8');
}

const result = await build({
  entryPoints: ['agent/main.ts'],
  outfile: 'dist/agent.js',
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'cjs',
  sourcemap: true,
  minifySyntax: true,
  legalComments: 'none',
  define: { __AGENT_TEMPLATES__: JSON.stringify(templates) },
  // templates.ts reads from disk via import.meta.url only when the templates are not inlined, as in tests.
  logOverride: { 'empty-import-meta': 'silent' },
  metafile: true,
});
// The repository is "type": "module"; the bundle is CommonJS (what a Node single executable runs), so dist/ says so.
mkdirSync('dist', { recursive: true });
writeFileSync('dist/package.json', '{ "type": "commonjs" }\n');
const bytes = Object.values(result.metafile.outputs).find((o) => o.entryPoint !== undefined)?.bytes ?? 0;
process.stdout.write(`dist/agent.js: ${(bytes / 1024).toFixed(0)} KiB\n`);
