#!/usr/bin/env node
/**
 * The agent's composition root: the only module that reads process.env and argv, installs signal handlers and
 * calls process.exit. Everything else receives what it needs as arguments.
 */
import { readFileSync } from 'node:fs';
import { AgentError, formatError } from './errors.ts';
import { renderHelp } from './config/index.ts';
import { renderCommand, type CommandIo } from './commands/render.ts';
import { envoyVersion } from './envoy/envoy-binary.ts';
import { healthcheckCommand } from './commands/healthcheck.ts';
import { runAgent } from './commands/run.ts';
import { createCloudMapMode } from './discovery/cloud-map-mode.ts';
import { agentVersion } from './version.ts';

const io: CommandIo = {
  readFile: (path) => readFileSync(path, 'utf8'),
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/**
 * The reference agent's Go flags (-envoyConfigPath, -logLevel, -envoyReadiness) still work, so scripts written for
 * it keep working. They map onto the environment and the healthcheck command.
 */
function translateLegacyFlags(argv: string[], env: Record<string, string | undefined>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (flag === '-envoyConfigPath' || flag === '--envoyConfigPath') env['ENVOY_CONFIG_FILE'] = inline ?? argv[++i] ?? '';
    else if (flag === '-logLevel' || flag === '--logLevel') env['ENVOY_LOG_LEVEL'] = inline ?? argv[++i] ?? '';
    else if (flag === '-envoyReadiness' || flag === '--envoyReadiness') out.unshift('healthcheck', '--wait');
    else out.push(a);
  }
  return out;
}

async function main(): Promise<number> {
  const env: Record<string, string | undefined> = { ...process.env };
  const [command, ...rest] = translateLegacyFlags(process.argv.slice(2), env);
  switch (command) {
    case undefined:
    case 'run': {
      const stop = new AbortController();
      const hurry = new AbortController();
      for (const signal of ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const) {
        process.on(signal, () => (stop.signal.aborted ? hurry.abort(signal) : stop.abort(signal)));
      }
      return runAgent(env, { ...io, stopSignal: stop.signal, hurrySignal: hurry.signal, onProcessExit: (hook) => process.on('exit', hook) }, createCloudMapMode);
    }
    case 'render':
      return renderCommand(env, rest, io);
    case 'healthcheck':
      return healthcheckCommand(env, rest, io);
    case '--version':
    case '-v':
    case 'version': {
      io.stdout(`agent ${agentVersion}\n`);
      const binary = env['ENVOY_BINARY']?.trim() || '/usr/bin/envoy';
      io.stdout(`envoy ${await envoyVersion(binary)} (${binary})\n`);
      return 0;
    }
    case '--help':
    case '-h':
    case '-help':
    case 'help':
      io.stdout(renderHelp(agentVersion));
      return 0;
    default:
      throw new AgentError('AGENT_ERR_USAGE', `unknown command ${JSON.stringify(command)}; run \`agent --help\``);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${formatError(err)}\n`);
    process.exitCode = err instanceof AgentError ? err.exitCode : 70;
  },
);
