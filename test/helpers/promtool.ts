/**
 * `promtool check metrics` (Debian's prometheus package). Parse errors fail a test; the naming lint about the ECS
 * names (camelCase, no _total suffix, no HELP) is expected and returned separately.
 */
import { spawnSync } from 'node:child_process';

export function promtoolCheck(text: string): { parseError: string | null; lint: string[] } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool cannot run (${r.error.message}): run npm run setup, or apt-get install prometheus`);
  const output = `${r.stdout}${r.stderr}`;
  const parseError = output.split('\n').find((l) => l.includes('error while linting') || l.includes('parsing error')) ?? null;
  if (r.status === 1 && parseError === null) return { parseError: output.trim() || `promtool exited 1`, lint: [] };
  return { parseError, lint: output.split('\n').filter((l) => l.trim() !== '' && l !== parseError) };
}
