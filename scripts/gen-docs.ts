/** Writes the generated reference pages in docs/ from the tables in the code. `npm run docs`. */
import { writeFileSync } from 'node:fs';
import { generatedDocs } from '../agent/docs.ts';

for (const [path, content] of Object.entries(generatedDocs())) {
  writeFileSync(path, content);
  process.stdout.write(`wrote ${path}\n`);
}
