/** The reference pages generated from the code's tables: docs/configuration.md and docs/errors.md. */
import { renderConfigurationDoc } from './config/index.ts';
import { errorCatalog } from './errors.ts';
import { renderEndpointsDoc } from './server/index.ts';
import { renderMetricsDoc } from './stats/index.ts';

export function renderErrorsDoc(): string {
  const lines = [
    '# Errors and exit codes',
    '',
    '<!-- Generated from agent/errors.ts by `npm run docs`. A test fails when this file is stale. -->',
    '',
    'A failure the user can fix ends in one message on stderr, `agent: <CODE>: <what and why>`, with one indented line',
    'per problem when there are several, and the exit code below. No stack trace, except for `AGENT_ERR_INTERNAL`.',
    '`0` is a clean stop (SIGTERM, SIGINT or SIGQUIT, after draining).',
    '',
    '| Code | Exit code | Meaning |',
    '|---|---|---|',
  ];
  for (const [code, kind] of Object.entries(errorCatalog)) lines.push(`| \`${code}\` | ${kind.exitCode} | ${kind.summary} |`);
  lines.push('');
  return lines.join('\n');
}

export function generatedDocs(): Record<string, string> {
  return {
    'docs/configuration.md': renderConfigurationDoc(),
    'docs/errors.md': renderErrorsDoc(),
    'docs/endpoints.md': renderEndpointsDoc(),
    'docs/metrics.md': renderMetricsDoc(),
  };
}
