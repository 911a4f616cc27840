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
 * start-up (the mode's session gets the stop signal), undoes it, and exits 0. Once the mode's session exists, every
 * way out (a signal, the restart budget spent, an error) closes it: Cloud Map mode deregisters this task.
 *
 * The modes plug in through one contract (agent/modes/contract.ts: RunMode, ModeSession), handed in by main.ts.
 */
import { effectiveConfiguration, readConfig, type Config, type ConfigIo, type Env } from '../config/index.ts';
import { envoyArgs, renderBootstrap } from '../bootstrap/index.ts';
import { AgentError } from '../errors.ts';
import { EnvoyAdminClient, EnvoySupervisor, LogLevelController, STOP_TIMINGS, checkEnvoyBinary, describeExit, envoyVersion, openEnvoyLogFile, runStopSequence, stoppableEnvoy, type EnvoyLogFile } from '../envoy/index.ts';
import { HealthMonitor } from '../health/index.ts';
import { agentLevelFor, createLogger, type Logger } from '../logger.ts';
import type { ModeSession, RunModes } from '../modes/index.ts';
import { startManagementServer, type ManagementServer } from '../server/index.ts';
import { StatsSnapshotter, createAgentMetrics, type AgentMetrics } from '../stats/index.ts';
import { claimRuntime, fetchTaskMetadata, platformOf, writeFileAtomic, type TaskDocuments } from '../system/index.ts';
import { agentVersion } from '../version.ts';
import { writeSideFiles } from './render.ts';

export interface RunIo extends ConfigIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Aborted on the first SIGTERM, SIGINT or SIGQUIT. */
  readonly stopSignal: AbortSignal;
  /** Aborted on a second signal: skip the remaining drain wait. */
  readonly secondStopSignal: AbortSignal;
  /** Registers a synchronous hook for process exit (kills Envoy whatever the exit path). */
  readonly onProcessExit: (hook: () => void) => void;
}

/** What reading the task metadata failed to give, in the words of the mode that wanted it. */
const WITHOUT_TASK_METADATA: Partial<Record<Config['mode'], string>> = {
  ecs: 'task metadata unavailable; node metadata leaves it out',
  cloudmap: 'task metadata unavailable; using APPNET_TASK_ID, APPNET_TASK_IPV4, APPNET_AVAILABILITY_ZONE',
};

/**
 * The task metadata endpoint, read once at start: ECS-managed mode puts the task into Envoy's node metadata, Cloud
 * Map mode takes the task's identity from it. Other modes do not read it; an endpoint that does not answer in time is
 * a warning.
 */
async function readTaskMetadata(config: Config, logger: Logger): Promise<TaskDocuments | null> {
  const warning = WITHOUT_TASK_METADATA[config.mode];
  if (config.ecs.metadataUri === null || warning === undefined) return null;
  try {
    return await fetchTaskMetadata(config.ecs.metadataUri, { container: config.mode === 'ecs' });
  } catch (err) {
    logger.warn(warning, { err });
    return null;
  }
}

/** `agent run`: the mode (one of `modes`, chosen by the configuration) plugs in through its RunMode. */
export async function runAgent(env: Env, io: RunIo, modes: RunModes): Promise<number> {
  const config = readConfig(env, io);
  const logger = createLogger({ level: config.agentLogLevel ?? agentLevelFor(config.envoyLogLevel), write: io.stdout }, { component: 'agent' });
  logger.info('agent starting', { version: agentVersion, mode: config.mode, configuration: effectiveConfiguration(env) });
  if (config.unknownVariables.length > 0) logger.warn('ignoring variables the agent does not know (typos?)', { variables: config.unknownVariables });

  const mode = modes[config.mode];
  const taskMetadata = await readTaskMetadata(config, logger);
  const platform = platformOf(config.mode === 'ecs' ? taskMetadata : null);
  const rendered = config.userBootstrap === null ? renderBootstrap(config, platform) : null;
  // A missing binary is caught here at once (exit 3, nothing started); `envoy --version` runs once Envoy is spawned
  // (startVersionCheck).
  checkEnvoyBinary(config.envoyBinary);
  const metrics = createAgentMetrics();
  // The runtime directory and Envoy's admin socket are claimed before anything is written (another live agent's are
  // refused), and released at exit. The mode writes its own files into that directory only after its checks.
  const claim = await claimRuntime(config);
  io.onProcessExit(() => claim.releaseSync());
  let session: ModeSession | null = null;
  try {
    session = await mode.open(config, { logger: logger.child({ component: config.mode }), metrics, signal: io.stopSignal, task: taskMetadata?.task ?? null, env });
  } catch (err) {
    // A stop signal during the mode's start-up: it has undone what it did (deregistered); a clean stop.
    if (io.stopSignal.aborted) {
      logger.info('stopped during start-up', { reason: String(io.stopSignal.reason ?? 'signal'), err });
      return 0;
    }
    throw err;
  }
  // From here on every way out closes the mode's session (Cloud Map: deregisters this task).
  try {
    if (io.stopSignal.aborted) {
      logger.info('stopped during start-up', { reason: String(io.stopSignal.reason ?? 'signal') });
      return 0;
    }
    return await runWithSession(config, env, io, logger, metrics, rendered, { watchesManagementServer: mode.watchesManagementServer, session });
  } finally {
    await session?.close().catch((err: unknown) => logger.warn("closing the mode's session failed", { err }));
  }
}

/** How long `envoy --version` waits after Envoy's spawn (see startVersionCheck). */
const VERSION_CHECK_DELAY_MS = 250;

/** `envoy --version`'s verdict, running beside the start: null when the binary is Envoy, else the error to exit with. */
interface EnvoyCheck {
  readonly versionCheck: Promise<AgentError | null>;
  /** Rejects with the error when the binary is not Envoy; never resolves otherwise. */
  readonly notEnvoy: Promise<never>;
}

/**
 * `envoy --version` (about 70 ms: Envoy is a 100 MiB binary) runs beside Envoy's start, never before it: a binary that
 * is not Envoy stops the agent with exit 3 as soon as --version answers. It is started once Envoy is spawned, not
 * before: spawning it forks the agent (5 to 8 ms at start-up on a 2-core machine), which delayed Envoy's spawn and
 * the management interface by as much (docs/benchmarks.md, "The single executable"). It then waits `after`
 * (VERSION_CHECK_DELAY_MS, or Envoy's exit if sooner): the fork and exec of a second 100 MiB binary right beside
 * Envoy's own exec took the CPU from the first answers of the management interface (exec -> first `/status` 200
 * 108 -> 81 ms median, back to back on 2 cores); a binary that is not Envoy is still refused within a second.
 */
function startVersionCheck(binary: string, logger: Logger, after: Promise<unknown>): EnvoyCheck {
  const versionCheck = after.then(() => envoyVersion(binary)).then(
    (version) => {
      logger.info('found Envoy', { binary, version });
      return null;
    },
    (err: unknown) => (err instanceof AgentError ? err : new AgentError('AGENT_ERR_ENVOY_NOT_FOUND', `ENVOY_BINARY="${binary}": ${String(err)}`)),
  );
  const notEnvoy = versionCheck.then((err) => (err === null ? new Promise<never>(() => undefined) : Promise.reject(err)));
  notEnvoy.catch(() => undefined);
  return { versionCheck, notEnvoy };
}

/** The parts of the mode run needs once Envoy is to start. */
interface ModeParts {
  readonly watchesManagementServer: boolean;
  readonly session: ModeSession | null;
}

async function runWithSession(config: Config, env: Env, io: RunIo, logger: Logger, metrics: AgentMetrics, rendered: ReturnType<typeof renderBootstrap> | null, { watchesManagementServer, session }: ModeParts): Promise<number> {
  // Nothing above wrote a file but the mode's own (Cloud Map: its xDS files and hosts block, after its checks): bad
  // input stops the agent with the disk as it was.
  if (rendered !== null) {
    // JSON is YAML too: Envoy reads it whatever the file is called, and the agent need not load a YAML library.
    await writeFileAtomic(config.bootstrapPath, `${JSON.stringify(rendered.bootstrap, null, 1)}\n`, 0o600);
    await writeSideFiles(rendered.files);
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
  const supervisor = new EnvoySupervisor({
    binary: config.envoyBinary,
    args: () => envoyArgs(config, logLevel.current),
    restartBudget: config.restartCount,
    logger: logger.child({ component: 'supervisor' }),
    output: logFile === null ? 'inherit' : logFile.fd,
    env,
    onSpawn: (pid, restarts) => {
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
    watchesManagementServer,
    admin,
    envoy: () => ({ pid: supervisor.state === 'running' ? supervisor.pid : null, restartCount: supervisor.restartCount }),
    pollIntervalMs: config.health.pollIntervalMs,
    disconnectedTimeoutMs: config.health.disconnectedTimeoutMs,
    logger: logger.child({ component: 'health' }),
    ...(session !== null ? { modeHealth: () => session.health() } : {}),
    onTransition: (to) => {
      metrics.healthTransitions.inc({ to });
      metrics.healthy.set(to === 'HEALTHY' ? 1 : 0);
    },
  });
  const snapshotter = config.stats.snapshotEnabled
    ? new StatsSnapshotter({
        admin,
        intervalMs: config.stats.snapshotIntervalMs,
        // A new Envoy starts its counters from zero: each restart is a new epoch for the deltas.
        epoch: () => supervisor.restartCount,
        logger: logger.child({ component: 'stats' }),
        onSnapshot: (outcome) => metrics.statsSnapshots.inc({ outcome }),
        labels: session?.metricLabels ?? {},
      })
    : null;

  let server: ManagementServer | null = null;
  const cleanup = async () => {
    loops.abort();
    logLevel.close();
    await session?.close().catch((err: unknown) => logger.warn("closing the mode's session failed", { err }));
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
          metricLabels: session?.metricLabels ?? {},
          drainInbound: async () => {
            await admin.drainListeners({ inboundOnly: true });
            logger.info('draining inbound listeners (management interface)');
          },
        },
      });
    }
    supervisor.start();
    const delay = new Promise<void>((resolve) => setTimeout(resolve, VERSION_CHECK_DELAY_MS).unref());
    const { versionCheck, notEnvoy } = startVersionCheck(config.envoyBinary, logger, Promise.race([delay, supervisor.done]));
    const loopsDone = Promise.all([health.run(loops.signal), snapshotter?.run(AbortSignal.any([loops.signal, snapshots.signal])), session?.start(loops.signal, { admin, healthChanged: () => health?.trigger() })]);
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
      hooks: { stopping: () => snapshots.abort(), ...(session !== null ? { beforeDrain: () => session.beforeDrain() } : {}), close: cleanup },
      timings: { ...STOP_TIMINGS, drainWaitMs: config.drainTimeS * 1000 },
      reason: String(io.stopSignal.reason ?? 'signal'),
      secondStop: io.secondStopSignal,
      logger,
    });
    return 0;
  } catch (err) {
    supervisor.killNow();
    await cleanup();
    throw err;
  }
}
