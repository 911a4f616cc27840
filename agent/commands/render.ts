/**
 * `agent render [--format yaml|json] [--validate]`: prints the bootstrap for the current environment to stdout and
 * Envoy's command line to stderr. Starts nothing and writes nothing, except that --validate writes the bootstrap
 * to a temporary directory for Envoy to read, and creates the runtime directory Envoy opens files in (with
 * APPNET_RUNTIME_DIR unset, a runtime directory inside that temporary directory stands for the one the agent would
 * choose at start).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { yaml, collectPlatform, writeFileAtomic, ensureDirectory } from '../system/index.ts';
import { readConfig, type ConfigIo, type Env } from '../config/index.ts';
import { envoyArgs, renderBootstrap, type SideFile } from '../bootstrap/index.ts';
import { AgentError } from '../errors.ts';
import { validateBootstrap, envoyVersion } from '../envoy/index.ts';
import { dirname } from 'node:path';

export interface CommandIo extends ConfigIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

export function serializeBootstrap(bootstrap: unknown, format: 'yaml' | 'json'): string {
  return format === 'json' ? `${JSON.stringify(bootstrap, null, 2)}\n` : yaml().stringify(bootstrap, { lineWidth: 0, aliasDuplicateObjects: false });
}

export function parseRenderArgs(args: readonly string[]): { format: 'yaml' | 'json'; validate: boolean } {
  let format: 'yaml' | 'json' = 'yaml';
  let validate = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    if (a === '--validate') validate = true;
    else if (a === '--format' || a.startsWith('--format=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : args[++i];
      if (v !== 'yaml' && v !== 'json') throw new AgentError('AGENT_ERR_USAGE', `--format ${JSON.stringify(v ?? '')}: must be yaml or json`);
      format = v;
    } else throw new AgentError('AGENT_ERR_USAGE', `render: unknown argument ${JSON.stringify(a)}; usage: agent render [--format yaml|json] [--validate]`);
  }
  return { format, validate };
}

export async function writeSideFiles(files: readonly SideFile[]): Promise<void> {
  for (const f of files) {
    await ensureDirectory(dirname(f.path));
    await writeFileAtomic(f.path, f.content);
  }
}

export async function renderCommand(env: Env, args: readonly string[], io: CommandIo): Promise<number> {
  const opts = parseRenderArgs(args);
  if (!opts.validate) return render(env, opts, io, null);
  const dir = await mkdtemp(join(tmpdir(), 'agent-render-'));
  try {
    const runtimeDirSet = (env['APPNET_RUNTIME_DIR'] ?? '').trim() !== '';
    return await render(runtimeDirSet ? env : { ...env, APPNET_RUNTIME_DIR: join(dir, 'runtime') }, opts, io, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function render(env: Env, opts: { format: 'yaml' | 'json'; validate: boolean }, io: CommandIo, dir: string | null): Promise<number> {
  const config = readConfig(env, io);
  const platform = await collectPlatform({
    metadataUri: config.mode === 'ecs' ? config.ecs.metadataUri : null,
    warn: (msg, err) => io.stderr(`agent: warning: ${msg}: ${(err as Error).message}\n`),
  });
  // A user bootstrap is shown as given (its own text when the format is the file's own).
  const userText = config.userBootstrap === null ? null : io.readFile(config.userBootstrap.path);
  const { bootstrap, files } =
    userText === null ? renderBootstrap(config, platform) : { bootstrap: yaml().parse(userText) as Record<string, unknown>, files: [] };
  const text = userText !== null && opts.format === 'yaml' ? userText : serializeBootstrap(bootstrap, opts.format);
  io.stdout(text);
  io.stderr(`envoy command: ${[config.envoyBinary, ...envoyArgs(config)].join(' ')}\n`);
  if (dir === null) return 0;

  const version = await envoyVersion(config.envoyBinary);
  const path = join(dir, `bootstrap.${opts.format}`);
  await writeFile(path, text);
  await ensureDirectory(config.runtimeDir);
  await writeSideFiles(files);
  const verdict = await validateBootstrap(config.envoyBinary, path);
  if (!verdict.ok) {
    throw new AgentError('AGENT_ERR_BOOTSTRAP_INVALID', `Envoy ${version} rejected the bootstrap:\n${verdict.output}`);
  }
  io.stderr(`envoy ${version}: the bootstrap is valid\n`);
  return 0;
}
