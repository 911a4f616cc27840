/**
 * The agent's graceful stop, after the first SIGTERM, SIGINT or SIGQUIT:
 *   1. the before-drain hook (Cloud Map mode: deregister this task's instances), at most `beforeDrainMaxMs`;
 *   2. drain inbound listeners gracefully (Envoy's /drain_listeners?inboundonly&graceful), when Envoy is running;
 *   3. wait until Envoy reports no active downstream connections, or `drainWaitMs` (LISTENER_DRAIN_WAIT_TIME_S), or
 *      a second signal (`secondStop`), whichever comes first;
 *   4. stop Envoy: the supervisor's /quitquitquit, SIGTERM after `quitWaitMs`, SIGKILL after `termWaitMs` more;
 *   5. close what the agent serves (the management interface, its socket).
 * A failing step is logged and the next one runs: Envoy is stopped whatever the hook or the drain did. With ECS's
 * defaults (3 s + 20 s + 3 s + 2 s) the stop ends within 28 s, inside ECS's 30 s stop timeout.
 *
 * Every wait is a `node:timers/promises` timer, so tests drive the sequence with `mock.timers`
 * (test/unit/stop-sequence.test.ts); no clock is read.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger.ts';
import type { EnvoyAdminClient } from './admin-client.ts';
import type { EnvoySupervisor } from './supervisor.ts';

/** The Envoy the sequence stops: the supervisor and the admin client behind a narrow face. */
export interface StoppableEnvoy {
  /** From here on an exit of Envoy is not restarted. */
  beginShutdown(): void;
  /** Whether Envoy runs now (not between restarts, not gone): only then are its listeners drained. */
  isRunning(): boolean;
  /** Envoy's /drain_listeners?inboundonly&graceful. */
  drainInbound(): Promise<void>;
  /** Envoy's active downstream connections over its listeners (the admin listener excluded). */
  activeConnections(opts: { timeoutMs: number; signal: AbortSignal }): Promise<number>;
  /** /quitquitquit, SIGTERM after quitWaitMs, SIGKILL after termWaitMs more; settles once Envoy has exited. */
  stop(timings: { quitWaitMs: number; termWaitMs: number }): Promise<void>;
  /** For the last log line. */
  restartCount(): number;
}

/** The agent's Envoy as the sequence sees it: the supervisor for its process, the admin client for its listeners. */
export function stoppableEnvoy(supervisor: EnvoySupervisor, admin: EnvoyAdminClient): StoppableEnvoy {
  return {
    beginShutdown: () => supervisor.beginShutdown(),
    isRunning: () => supervisor.state === 'running',
    drainInbound: async () => void (await admin.drainListeners({ inboundOnly: true })),
    activeConnections: (opts) => admin.activeDownstreamConnections(opts),
    stop: (timings) => supervisor.stop({ quit: () => admin.quit(), ...timings }),
    restartCount: () => supervisor.restartCount,
  };
}

export interface StopHooks {
  /** Called at once, before any await: what must not race Envoy's exit stops here (stats snapshots). */
  readonly stopping?: () => void;
  /** Step 1 (Cloud Map: deregister), capped at timings.beforeDrainMaxMs; a failure is logged and the drain runs. */
  readonly beforeDrain?: () => Promise<void>;
  /** Step 5: close the management interface and whatever else the agent still holds. Must not throw. */
  readonly close: () => Promise<void>;
}

export interface StopTimings {
  readonly beforeDrainMaxMs: number;
  /** LISTENER_DRAIN_WAIT_TIME_S in ms: the longest wait for downstream connections to close. */
  readonly drainWaitMs: number;
  /** How often Envoy's active connections are read during the wait. */
  readonly pollIntervalMs: number;
  /** The deadline of each read of the active connections. */
  readonly readTimeoutMs: number;
  readonly quitWaitMs: number;
  readonly termWaitMs: number;
}

/** The agent's timings; drainWaitMs comes from LISTENER_DRAIN_WAIT_TIME_S. */
export const STOP_TIMINGS: Omit<StopTimings, 'drainWaitMs'> = { beforeDrainMaxMs: 3000, pollIntervalMs: 250, readTimeoutMs: 1000, quitWaitMs: 3000, termWaitMs: 2000 };

export interface StopSequenceOptions {
  readonly envoy: StoppableEnvoy;
  readonly hooks: StopHooks;
  readonly timings: StopTimings;
  /** What stopped the agent (the signal's name), for the first log line. */
  readonly reason: string;
  /** Aborted on a second stop signal: the wait for connections ends at once. */
  readonly secondStop: AbortSignal;
  readonly logger: Logger;
}

/** Runs the whole stop; settles once Envoy has exited and the hooks' close has finished. */
export async function runStopSequence({ envoy, hooks, timings, reason, secondStop, logger }: StopSequenceOptions): Promise<void> {
  logger.info('stopping', { reason });
  envoy.beginShutdown();
  hooks.stopping?.();
  if (hooks.beforeDrain) await runBeforeDrain(hooks.beforeDrain, timings.beforeDrainMaxMs, logger);
  if (envoy.isRunning()) {
    try {
      await envoy.drainInbound();
      logger.info('draining inbound listeners', { drainTimeS: timings.drainWaitMs / 1000 });
      await waitForConnectionsToClose(envoy, timings, secondStop, logger);
    } catch (err) {
      logger.warn('draining failed; stopping Envoy now', { err });
    }
  }
  await envoy.stop({ quitWaitMs: timings.quitWaitMs, termWaitMs: timings.termWaitMs });
  logger.info('Envoy stopped; agent exiting', { restarts: envoy.restartCount() });
  await hooks.close();
}

async function runBeforeDrain(hook: () => Promise<void>, maxMs: number, logger: Logger): Promise<void> {
  // The hook starts before the cap's timer, so a hook whose own deadline is the same (Cloud Map's deregistration,
  // 3 s) reports its own timeout first; the cap only cuts a hook that overruns it.
  const done = (async () => hook())().then(
    () => 'done' as const,
    (err: unknown) => {
      logger.warn('before-drain step failed', { err });
      return 'done' as const;
    },
  );
  const cap = new AbortController();
  const over = sleep(maxMs, 'over' as const, { signal: cap.signal }).catch(() => 'done' as const);
  try {
    if ((await Promise.race([done, over])) === 'over') logger.warn('before-drain step did not finish in time; draining anyway', { maxMs });
  } finally {
    cap.abort();
  }
}

async function waitForConnectionsToClose(envoy: StoppableEnvoy, timings: StopTimings, secondStop: AbortSignal, logger: Logger): Promise<void> {
  const drainTime = new AbortController();
  const timer = new AbortController();
  sleep(timings.drainWaitMs, undefined, { signal: timer.signal }).then(
    () => drainTime.abort(),
    () => undefined,
  );
  const signal = AbortSignal.any([secondStop, drainTime.signal]);
  try {
    while (!signal.aborted) {
      try {
        const active = await envoy.activeConnections({ timeoutMs: timings.readTimeoutMs, signal });
        if (active === 0) {
          logger.info('no active downstream connections left');
          return;
        }
        logger.debug('waiting for downstream connections to close', { active });
      } catch (err) {
        if (signal.aborted) break;
        logger.warn('cannot read active connections from Envoy; stopping it', { err });
        return;
      }
      await sleep(timings.pollIntervalMs, undefined, { signal }).catch(() => undefined);
    }
  } finally {
    timer.abort();
  }
  logger.info(secondStop.aborted ? 'second stop signal: not waiting for connections' : 'drain time is over');
}
