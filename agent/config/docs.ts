/** `agent --help`, docs/configuration.md and the effective-configuration log line, all from the one table. */
import { envTable, type EnvVar, type Scope } from './table.ts';
import type { Env } from './read-config.ts';

const SCOPE_TEXT: Record<Scope, string> = {
  all: 'all',
  ecs: 'ECS-managed',
  relay: 'relay',
  cloudmap: 'Cloud Map',
  'ecs+cloudmap': 'ECS-managed, Cloud Map',
};

function defaultText(row: EnvVar): string {
  if (row.defaultDoc !== undefined) return row.defaultDoc;
  return row.default === undefined ? 'unset' : row.default === '' ? '""' : row.default;
}

export function renderHelp(version: string): string {
  const lines = [
    `agent ${version}: the Amazon ECS Service Connect agent.`,
    '',
    'Usage:',
    '  agent                      run: render the bootstrap, start and supervise Envoy, serve the management interface',
    '  agent render [--format yaml|json] [--validate]',
    '                             print the bootstrap and the Envoy command line for this environment; start nothing.',
    '                             --validate: also run `envoy --mode validate` on it',
    '  agent healthcheck [--wait] exit 0 when the running agent reports HEALTHY, 1 otherwise',
    '  agent --version            print the agent version and the version of the Envoy it finds',
    '  agent --help               this text',
    '',
    'Environment variables (default in brackets; see docs/configuration.md):',
  ];
  for (const row of envTable) {
    lines.push(`  ${row.name} [${defaultText(row)}${row.unit ? ` ${row.unit}` : ''}]`);
    lines.push(`      ${row.doc}`);
    lines.push(`      ${capitalise(row.parser.rule)}. Modes: ${SCOPE_TEXT[row.scope]}.`);
  }
  return `${lines.join('\n')}\n`;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

export function renderConfigurationDoc(): string {
  const out = [
    '# Configuration',
    '',
    '<!-- Generated from agent/config/table.ts by `npm run docs`. A test fails when this file is stale. -->',
    '',
    'The agent is configured by environment variables only. Every value is checked at start; a bad value stops the',
    'agent with one line per problem, naming the variable, the value and the rule, and exit code 2',
    '(`AGENT_ERR_CONFIG`). Unlike the reference agent, nothing falls back to a default silently. Values are trimmed;',
    'an empty value counts as unset.',
    '',
    'Modes: **ECS-managed** (`APPMESH_XDS_ENDPOINT=unix://…`), **Cloud Map** (`APPNET_SERVICE_CONNECT_CONFIG` or its',
    '`_FILE` form), **relay** (`APPNET_ENABLE_RELAY_MODE_FOR_XDS=true`), or **static**, a bootstrap given in',
    '`ENVOY_CONFIG_FILE` and used as is.',
    '',
    '| Variable | Default | Unit | Rule | Modes | What it does | Compared with the reference agent |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const row of envTable) {
    out.push(
      `| \`${row.name}\` | ${row.defaultDoc !== undefined ? `\`${row.defaultDoc}\`` : row.default === undefined ? 'unset' : `\`${row.default}\``} | ${row.unit ?? ''} | ${cell(capitalise(row.parser.rule))} | ${SCOPE_TEXT[row.scope]} | ${cell(row.doc)} | ${cell(row.vsReference ?? 'same')} |`,
    );
  }
  out.push('');
  return out.join('\n');
}

/** The variables the agent reads that are set, for the start-up log line; secrets are redacted. */
export function effectiveConfiguration(env: Env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const row of envTable) {
    const v = env[row.name];
    if (v !== undefined && v.trim() !== '') out[row.name] = row.secret ? '<redacted>' : v;
  }
  return out;
}
