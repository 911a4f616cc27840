#!/usr/bin/env -S node --disable-sigusr1
/**
 * The agent's composition root: the only module that reads process.env and argv, installs signal handlers and
 * calls process.exit. Everything else receives what it needs as arguments.
 *
 * Signals (docs/operations.md): SIGTERM, SIGINT and SIGQUIT stop the agent gracefully (a second one skips the
 * drain wait); SIGHUP and SIGUSR2 are logged and ignored; SIGUSR1 never opens Node's inspector: the single
 * executable runs with --disable-sigusr1 (scripts/build-binary.ts), under which Node keeps the signal blocked, and
 * when the bundle runs on a plain `node` the handler below replaces Node's inspector trigger. A closed stdout or
 * stderr (the reader went away: EPIPE) never crashes the agent; its lines are dropped.
 */
import { readFileSync } from 'node:fs';
import { AgentError, formatError } from './errors.ts';
import { renderHelp } from './config/index.ts';
import { healthcheckCommand, renderCommand, runAgent, type CommandIo } from './commands/index.ts';
import { envoyVersion } from './envoy/index.ts';
import { cloudMapMode, ecsManagedMode, userBootstrapMode, type RunModes } from './modes/index.ts';
import { relayMode } from '../relay/index.ts';
import { agentLevelFor, createLogger, type Level } from './logger.ts';
import { randomName } from './system/index.ts';
import { agentVersion } from './version.ts';

/**
 * Writes to stdout or stderr that survive the reader going away: the first EPIPE (or any write error) marks the
 * stream closed and later lines are dropped instead of crashing the agent with an unhandled 'error' event.
 */
function guardedWriter(stream: NodeJS.WriteStream, onClosed: (err: NodeJS.ErrnoException) => void): (text: string) => void {
  let closed = false;
  const close = (err: NodeJS.ErrnoException) => {
    if (closed) return;
    closed = true;
    onClosed(err);
  };
  stream.on('error', close);
  return (text) => {
    if (closed) return;
    try {
      stream.write(text);
    } catch (err) {
      close(err as NodeJS.ErrnoException);
    }
  };
}

const stderrWrite = guardedWriter(process.stderr, () => undefined);
const stdoutWrite = guardedWriter(process.stdout, (err) =>
  stderrWrite(`agent: stdout is closed (${err.code ?? err.message}); the agent keeps running and drops its log lines\n`),
);

/** The modes `agent run` knows, as peers: each plugs in through the one contract (agent/modes/contract.ts). */
const MODES: RunModes = { ecs: ecsManagedMode, cloudmap: cloudMapMode, relay: relayMode, static: userBootstrapMode };

const io: CommandIo = {
  readFile: (path) => readFileSync(path, 'utf8'),
  stdout: stdoutWrite,
  stderr: stderrWrite,
  randomName,
};

/** Signals a sidecar is sent by mistake or by habit: logged and ignored (Node's default would end the agent). */
const IGNORED_SIGNALS = {
  SIGHUP: 'the agent does not reload its configuration; restart the container to change it',
  SIGUSR1: "Node's inspector stays closed",
  SIGUSR2: 'the agent gives SIGUSR2 no meaning',
} as const;

function agentLevel(env: Record<string, string | undefined>): Level {
  const own = env['APPNET_AGENT_LOG_LEVEL']?.trim().toLowerCase();
  if (own === 'debug' || own === 'info' || own === 'warn' || own === 'error') return own;
  return agentLevelFor(env['ENVOY_LOG_LEVEL']?.trim().toLowerCase() || 'info');
}

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
      const secondStop = new AbortController();
      for (const signal of ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const) {
        process.on(signal, () => (stop.signal.aborted ? secondStop.abort(signal) : stop.abort(signal)));
      }
      const signals = createLogger({ level: agentLevel(env), write: io.stdout }, { component: 'agent' });
      for (const [signal, meaning] of Object.entries(IGNORED_SIGNALS)) {
        process.on(signal, () => signals.warn(`${signal} ignored: ${meaning}`, { signal }));
      }
      return runAgent(env, { ...io, stopSignal: stop.signal, secondStopSignal: secondStop.signal, onProcessExit: (hook) => process.on('exit', hook) }, MODES);
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
    io.stderr(`${formatError(err)}\n`);
    process.exitCode = err instanceof AgentError ? err.exitCode : 70;
  },
);
