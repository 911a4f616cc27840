/**
 * `agent` (run): render the bootstrap, start and supervise Envoy, serve the management interface, and stop
 * gracefully. The configuration and the bootstrap are checked before anything is written or started, so bad input
 * leaves no file behind.
 *
 * Shutdown on SIGTERM, SIGINT or SIGQUIT (whichever comes first; a second one skips the wait):
 *   1. hooks that must run before draining (Cloud Map: deregister this task's instances, at most 3 s);
 *   2. drain inbound listeners gracefully (Envoy /drain_listeners?inboundonly&graceful);
 *   3. wait until Envoy reports no active downstream connections, or LISTENER_DRAIN_WAIT_TIME_S;
 *   4. stop Envoy: /quitquitquit, SIGTERM after 3 s, SIGKILL after 2 s more;
 *   5. close the management interface, remove its socket, exit 0.
 * With the defaults this ends within 28 s, inside ECS's 30 s stop timeout. A signal during start-up ends the
 * start-up (the mode extension gets the stop signal), undoes it, and exits 0. Once the mode extension exists, every
 * way out (a signal, the restart budget spent, an error) closes it: Cloud Map mode deregisters this task.
 */
import { effectiveConfiguration, readConfig, type Config, type ConfigIo, type Env } from '../config/index.ts';
import { cloudMapXdsFiles, envoyArgs, renderBootstrap } from '../bootstrap/index.ts';
import { AgentError } from '../errors.ts';
import { EnvoyAdminClient } from '../envoy/admin-client.ts';
import { checkEnvoyBinary, envoyVersion } from '../envoy/envoy-binary.ts';
import { openEnvoyLogFile, type EnvoyLogFile } from '../envoy/log-file.ts';
import { LogLevelController } from '../envoy/log-level.ts';
import { EnvoySupervisor, describeExit } from '../envoy/supervisor.ts';
import { runStopSequence, stoppableEnvoy, STOP_TIMINGS } from '../envoy/index.ts';
import { HealthMonitor } from '../health/health-monitor.ts';
import { agentLevelFor, createLogger, type Logger } from '../logger.ts';
import { startManagementServer, type ManagementServer } from '../server/management-server.ts';
import { createAgentMetrics, type AgentMetrics } from '../stats/agent-metrics.ts';
import { StatsSnapshotter } from '../stats/stats-snapshotter.ts';
import type { MetricLabels } from '../stats/service-connect-metrics.ts';
import { collectPlatform } from '../system/collect-platform.ts';
import { claimRuntime } from '../system/claims.ts';
import { writeFileAtomic } from '../system/files.ts';
import { agentVersion } from '../version.ts';
import { writeSideFiles } from './render.ts';

export interface RunIo extends ConfigIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Aborted on the first SIGTERM, SIGINT or SIGQUIT. */
  readonly stopSignal: AbortSignal;
  /** Aborted on a second signal: skip the remaining drain wait. */
  readonly hurrySignal: AbortSignal;
  /** Registers a synchronous hook for process exit (kills Envoy whatever the exit path). */
  readonly onProcessExit: (hook: () => void) => void;
}

/**
 * A mode's extra parts (Cloud Map discovery) plug in here: created before Envoy, started after it, stopped before
 * draining. Once created, it is closed on every exit path of runAgent (close() also does what beforeDrain() does,
 * when it has not run: Cloud Map mode deregisters this task whatever the way out).
 */
export interface ModeExtension {
  /** ServiceName and ClusterName for the Service Connect metrics. */
  readonly metricLabels: MetricLabels;
  start(signal: AbortSignal, envoy: { admin: EnvoyAdminClient; healthChanged: () => void }): Promise<void>;
  /** What makes the agent UNHEALTHY (problems) and what /status reports without changing health (warnings). */
  health(): { problems: readonly string[]; warnings: readonly string[] };
  beforeDrain(): Promise<void>;
  close(): Promise<void>;
}

export interface ModeExtensionDeps {
  readonly logger: Logger;
  readonly metrics?: AgentMetrics;
  /** The stop signal: a stop during the mode's start-up ends it (it cleans up and throws an AbortError). */
  readonly signal?: AbortSignal;
}

export type ModeExtensionFactory = (config: Config, deps: ModeExtensionDeps) => Promise<ModeExtension | null>;

export async function runAgent(env: Env, io: RunIo, extension?: ModeExtensionFactory): Promise<number> {
  const config = readConfig(env, io);
  const logger = createLogger({ level: config.agentLogLevel ?? agentLevelFor(config.envoyLogLevel), write: io.stdout }, { component: 'agent' });
  logger.info('agent starting', { version: agentVersion, mode: config.mode, configuration: effectiveConfiguration(env) });
  if (config.unknownVariables.length > 0) logger.warn('ignoring variables the agent does not know (typos?)', { variables: config.unknownVariables });

  const platform = await collectPlatform({
    metadataUri: config.mode === 'ecs' ? config.ecs.metadataUri : null,
    warn: (msg, err) => logger.warn(msg, { err }),
  });
  const rendered = config.userBootstrap === null ? renderBootstrap(config, platform) : null;
  // `envoy --version` (~70 ms) runs beside the start instead of before it: a missing binary is caught here at once
  // (exit 3); a binary that is not Envoy stops the agent with the same error as soon as --version answers.
  checkEnvoyBinary(config.envoyBinary);
  const versionCheck = envoyVersion(config.envoyBinary).then(
    (version) => {
      logger.info('found Envoy', { binary: config.envoyBinary, version });
      return null;
    },
    (err: unknown) => (err instanceof AgentError ? err : new AgentError('AGENT_ERR_ENVOY_NOT_FOUND', `ENVOY_BINARY="${config.envoyBinary}": ${String(err)}`)),
  );
  const notEnvoy = versionCheck.then((err) => (err === null ? new Promise<never>(() => undefined) : Promise.reject(err)));
  notEnvoy.catch(() => undefined);
  const metrics = createAgentMetrics();
  // The runtime directory and Envoy's admin socket are claimed before anything is written (another live agent's are
  // refused), and released at exit. The mode writes its own files into that directory only after its checks.
  const claim = await claimRuntime(config);
  io.onProcessExit(() => claim.releaseSync());
  let ext: ModeExtension | null = null;
  try {
    ext = extension ? await extension(config, { logger: logger.child({ component: 'cloudmap' }), metrics, signal: io.stopSignal }) : null;
  } catch (err) {
    // A stop signal during the mode's start-up: it has undone what it did (deregistered); a clean stop.
    if (io.stopSignal.aborted) {
      logger.info('stopped during start-up', { reason: String(io.stopSignal.reason ?? 'signal'), err });
      return 0;
    }
    throw err;
  }
  // From here on every way out closes the mode extension (Cloud Map: deregisters this task).
  try {
    if (io.stopSignal.aborted) {
      logger.info('stopped during start-up', { reason: String(io.stopSignal.reason ?? 'signal') });
      return 0;
    }
    return await runWithExtension(config, io, logger, metrics, rendered, ext, { versionCheck, notEnvoy });
  } finally {
    await ext?.close().catch((err: unknown) => logger.warn('closing the mode extension failed', { err }));
  }
}

/** `envoy --version`'s verdict, running beside the start: null when the binary is Envoy, else the error to exit with. */
interface EnvoyCheck {
  readonly versionCheck: Promise<AgentError | null>;
  /** Rejects with the error when the binary is not Envoy; never resolves otherwise. */
  readonly notEnvoy: Promise<never>;
}

async function runWithExtension(config: Config, io: RunIo, logger: Logger, metrics: AgentMetrics, rendered: ReturnType<typeof renderBootstrap> | null, ext: ModeExtension | null, { versionCheck, notEnvoy }: EnvoyCheck): Promise<number> {
  // Nothing above wrote a file but the mode's own (Cloud Map: its xDS files and hosts block, after its checks): bad
  // input stops the agent with the disk as it was.
  if (rendered !== null) {
    // JSON is YAML too: Envoy reads it whatever the file is called, and the agent need not load a YAML library.
    await writeFileAtomic(config.bootstrapPath, `${JSON.stringify(rendered.bootstrap, null, 1)}\n`, 0o600);
    await writeSideFiles(rendered.files);
  }
  if (config.mode === 'cloudmap' && ext === null && rendered !== null) {
    // Without discovery, Envoy still needs its xDS files to exist.
    await writeFileAtomic(`${config.runtimeDir}/${cloudMapXdsFiles.lds}`, 'resources: []\n');
    await writeFileAtomic(`${config.runtimeDir}/${cloudMapXdsFiles.cds}`, 'resources: []\n');
  }

  const admin = new EnvoyAdminClient(config.envoyAdmin.address, { observe: (path, s, outcome) => metrics.adminCallSeconds.observe({ path, outcome }, s) });
  const loops = new AbortController();
  /** Stats snapshots stop as soon as shutdown starts: a snapshot racing Envoy's exit would only log noise. */
  const snapshots = new AbortController();
  const logLevel = new LogLevelController({
    initial: config.envoyLogLevel,
    resetAfterMs: config.loggingResetTimeoutMs,
    apply: (level) => admin.setLogLevel(level),
    logger,
  });
  let logFile: EnvoyLogFile | null = null;
  if (config.envoyLog !== null) {
    try {
      logFile = openEnvoyLogFile({ ...config.envoyLog, logger });
    } catch (err) {
      throw new AgentError('AGENT_ERR_WRITE', `APPNET_ENVOY_LOG_DESTINATION="${config.envoyLog.dir}": cannot open ${config.envoyLog.name} (${(err as Error).message})`, { cause: err });
    }
  }

  let health: HealthMonitor | null = null;
  let starts = 0;
  const supervisor = new EnvoySupervisor({
    binary: config.envoyBinary,
    args: () => envoyArgs(config, logLevel.current),
    restartBudget: config.restartCount,
    logger: logger.child({ component: 'supervisor' }),
    output: logFile === null ? 'inherit' : logFile.fd,
    onSpawn: (pid, restarts) => {
      starts += 1;
      if (restarts > 0) metrics.envoyRestarts.inc();
      logger.info('Envoy started', { pid, restartCount: restarts });
      health?.trigger();
    },
    onExit: (exit) => {
      metrics.envoyExits.inc({ how: exit.signal ?? (exit.error !== undefined ? 'spawn-error' : `code-${exit.code}`) });
      health?.trigger();
    },
  });
  io.onProcessExit(() => supervisor.killNow());

  health = new HealthMonitor({
    mode: config.mode,
    admin,
    envoy: () => ({ pid: supervisor.state === 'running' ? supervisor.pid : null, restartCount: supervisor.restartCount }),
    pollIntervalMs: config.health.pollIntervalMs,
    disconnectedTimeoutMs: config.health.disconnectedTimeoutMs,
    logger: logger.child({ component: 'health' }),
    ...(ext !== null ? { extension: () => ext.health() } : {}),
    onTransition: (to) => {
      metrics.healthTransitions.inc({ to });
      metrics.healthy.set(to === 'HEALTHY' ? 1 : 0);
    },
  });
  const snapshotter = config.stats.snapshotEnabled
    ? new StatsSnapshotter({
        admin,
        intervalMs: config.stats.snapshotIntervalMs,
        epoch: () => starts,
        logger: logger.child({ component: 'stats' }),
        onSnapshot: (outcome) => metrics.statsSnapshots.inc({ outcome }),
        labels: ext?.metricLabels ?? {},
      })
    : null;

  let server: ManagementServer | null = null;
  const cleanup = async () => {
    loops.abort();
    logLevel.close();
    await ext?.close().catch((err: unknown) => logger.warn('closing the mode extension failed', { err }));
    await server?.close().catch((err: unknown) => logger.warn('closing the management interface failed', { err }));
    await admin.close().catch(() => undefined);
    logFile?.close();
  };

  try {
    if (config.agentAdmin !== null) {
      server = await startManagementServer({
        address: config.agentAdmin,
        logger: logger.child({ component: 'management' }),
        context: {
          health,
          admin,
          logLevel,
          snapshotter,
          metrics,
          metricLabels: ext?.metricLabels ?? {},
          drainInbound: async () => {
            await admin.drainListeners({ inboundOnly: true });
            logger.info('draining inbound listeners (management interface)');
          },
        },
      });
    }
    supervisor.start();
    const loopsDone = Promise.all([health.run(loops.signal), snapshotter?.run(AbortSignal.any([loops.signal, snapshots.signal])), ext?.start(loops.signal, { admin, healthChanged: () => health?.trigger() })]);
    loopsDone.catch((err: unknown) => logger.error('a background loop failed', { err }));

    const stopped = new Promise<'signal'>((resolve) => {
      if (io.stopSignal.aborted) resolve('signal');
      io.stopSignal.addEventListener('abort', () => resolve('signal'), { once: true });
    });
    const first = await Promise.race([supervisor.done, stopped, notEnvoy]);
    if (first !== 'signal' && first.kind === 'failed') {
      const versionError = await versionCheck;
      await cleanup();
      if (versionError !== null) throw versionError;
      throw new AgentError(
        'AGENT_ERR_ENVOY_EXITED',
        `Envoy ${describeExit(first.lastExit)} (pid ${first.lastExit.pid}) and the restart budget is spent: ${supervisor.restartCount} restart(s) of APPNET_ENVOY_RESTART_COUNT=${config.restartCount}. Exits: ${supervisor.exits.map(describeExit).join('; ')}`,
      );
    }

    await runStopSequence({
      envoy: stoppableEnvoy(supervisor, admin),
      hooks: { stopping: () => snapshots.abort(), ...(ext !== null ? { beforeDrain: () => ext.beforeDrain() } : {}), close: cleanup },
      timings: { ...STOP_TIMINGS, drainWaitMs: config.drainTimeS * 1000 },
      reason: String(io.stopSignal.reason ?? 'signal'),
      hurry: io.hurrySignal,
      logger,
    });
    return 0;
  } catch (err) {
    supervisor.killNow();
    await cleanup();
    throw err;
  }
}
