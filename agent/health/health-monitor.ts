/**
 * The health monitor: polls Envoy's /ready and its control-plane and listener stats, and keeps the state /status
 * reports. It polls every 250 ms until Envoy is first LIVE (so a task turns HEALTHY within a second of Envoy being
 * ready, not after the first 10 s poll as in the reference), then every HC_POLL_INTERVAL_MS, and at once whenever
 * Envoy starts or exits.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { EnvoyAdminClient } from '../envoy/index.ts';
import type { Logger } from '../logger.ts';
import { computeHealth, type HealthVerdict } from './compute-health.ts';

export interface EnvoyProcessInfo {
  readonly pid: number | null;
  readonly restartCount: number;
}

/** The two admin calls the monitor makes (EnvoyAdminClient has them). */
export type HealthAdmin = Pick<EnvoyAdminClient, 'serverState' | 'stats'>;

export interface HealthMonitorOptions {
  /** ECS-managed mode: Envoy's connection to the management server counts (RunMode.watchesManagementServer). */
  readonly watchesManagementServer: boolean;
  readonly admin: HealthAdmin;
  readonly envoy: () => EnvoyProcessInfo;
  readonly pollIntervalMs: number;
  readonly startupPollIntervalMs?: number;
  readonly disconnectedTimeoutMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
  readonly onTransition?: (to: HealthVerdict['status'], reasons: readonly string[]) => void;
  /** The mode's own state (Cloud Map: an update Envoy rejected, a write that fails; warnings that leave health as is). */
  readonly modeHealth?: () => { problems: readonly string[]; warnings: readonly string[] };
}

/** The /status document. Keys and string values as in the reference agent, plus `reasons`. */
export interface StatusDocument {
  healthStatus: string;
  agentUptime: string;
  envoyPid: string;
  envoyState: string;
  envoyRestartCount: string;
  managementServerConnectionStatus?: string;
  managementServerDisconnectedTimestamp?: string;
  envoyReadinessState: string;
  initialConfigUpdateStatus?: string;
  reasons: string[];
  /** What is wrong without making the agent UNHEALTHY (Cloud Map: a namespace gone, records skipped); only when any. */
  warnings?: string[];
}

export class HealthMonitor {
  readonly #opts: HealthMonitorOptions;
  readonly #now: () => number;
  readonly #startedAtMs: number;
  #verdict: HealthVerdict | null = null;
  #envoyState = '';
  #connected: boolean | null = null;
  #disconnectedSinceMs: number | null = null;
  #readiness: 'NOT_INITIALIZED' | 'INITIALIZED' = 'NOT_INITIALIZED';
  #initialConfig: 'UPDATE_SUCCESSFUL' | 'UPDATE_FAILED' | null = null;
  #initialFailures = 0;
  /** Pid of the Envoy whose initial configuration has been judged. */
  #judgedPid: number | null = null;
  #wake: (() => void) | null = null;
  #pending = false;

  constructor(opts: HealthMonitorOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#startedAtMs = this.#now();
  }

  get verdict(): HealthVerdict | null {
    return this.#verdict;
  }

  /** Recompute now (Envoy started or exited). */
  trigger(): void {
    this.#pending = true;
    this.#wake?.();
  }

  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      this.#pending = false;
      await this.poll(signal);
      if (this.#pending) continue;
      const fast = this.#judgedPid === null || this.#judgedPid !== this.#opts.envoy().pid;
      const waitMs = fast ? (this.#opts.startupPollIntervalMs ?? 250) : this.#opts.pollIntervalMs;
      const woken = new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      await Promise.race([sleep(waitMs, undefined, { signal }).catch(() => undefined), woken]);
      this.#wake = null;
    }
  }

  async poll(signal?: AbortSignal): Promise<HealthVerdict> {
    const envoy = this.#opts.envoy();
    const callOpts = { timeoutMs: 2000, ...(signal ? { signal } : {}) };
    if (envoy.pid === null) {
      this.#envoyState = 'NOT_RUNNING';
    } else {
      try {
        this.#envoyState = await this.#opts.admin.serverState(callOpts);
      } catch {
        this.#envoyState = 'UNREACHABLE';
      }
    }
    if (this.#envoyState === 'LIVE') {
      try {
        const stats = await this.#opts.admin.stats('^(control_plane\\.connected_state|listener_manager\\.listener_create_failure)$', callOpts);
        const failures = stats.find((s) => s.name === 'listener_manager.listener_create_failure')?.value ?? 0;
        if (this.#opts.watchesManagementServer) {
          const connected = stats.find((s) => s.name === 'control_plane.connected_state')?.value === 1;
          if (connected !== this.#connected) {
            this.#disconnectedSinceMs = connected ? null : this.#now();
            this.#connected = connected;
          }
        }
        if (this.#judgedPid !== envoy.pid) {
          this.#judgedPid = envoy.pid;
          this.#initialFailures = failures;
          this.#initialConfig = failures > 0 ? 'UPDATE_FAILED' : 'UPDATE_SUCCESSFUL';
          this.#readiness = 'INITIALIZED';
        }
      } catch (err) {
        this.#opts.logger.debug('reading Envoy stats for health failed', { err });
      }
    }
    const verdict = computeHealth({
      watchesManagementServer: this.#opts.watchesManagementServer,
      envoyState: this.#envoyState,
      connected: this.#connected,
      disconnectedSinceMs: this.#disconnectedSinceMs,
      listenerCreateFailures: this.#judgedPid === envoy.pid ? this.#initialFailures : 0,
      modeProblems: this.#opts.modeHealth?.().problems ?? [],
      nowMs: this.#now(),
      disconnectedTimeoutMs: this.#opts.disconnectedTimeoutMs,
    });
    if (verdict.status !== this.#verdict?.status || verdict.reasons.join() !== this.#verdict.reasons.join()) {
      if (verdict.status !== this.#verdict?.status) this.#opts.onTransition?.(verdict.status, verdict.reasons);
      this.#opts.logger.info('health changed', { healthStatus: verdict.status, reasons: verdict.reasons, envoyState: this.#envoyState });
    }
    this.#verdict = verdict;
    return verdict;
  }

  status(): StatusDocument {
    const envoy = this.#opts.envoy();
    const doc: StatusDocument = {
      healthStatus: this.#verdict?.status ?? '',
      agentUptime: `${Math.round((this.#now() - this.#startedAtMs) / 1000)}s`,
      envoyPid: envoy.pid === null ? '-1' : String(envoy.pid),
      envoyState: this.#envoyState,
      envoyRestartCount: String(envoy.restartCount),
      envoyReadinessState: this.#readiness,
      reasons: this.#verdict === null ? ['the first health check has not finished'] : [...this.#verdict.reasons],
    };
    if (this.#opts.watchesManagementServer && this.#connected !== null) {
      doc.managementServerConnectionStatus = this.#connected ? 'CONNECTED' : 'NOT_CONNECTED';
      if (!this.#connected && this.#disconnectedSinceMs !== null) doc.managementServerDisconnectedTimestamp = new Date(this.#disconnectedSinceMs).toISOString();
    }
    if (this.#initialConfig !== null) doc.initialConfigUpdateStatus = this.#initialConfig;
    // Keep the reference's key order: readiness and initial config after the connection fields.
    const { reasons, envoyReadinessState, initialConfigUpdateStatus, ...rest } = doc;
    const warnings = this.#opts.modeHealth?.().warnings ?? [];
    return { ...rest, envoyReadinessState, ...(initialConfigUpdateStatus ? { initialConfigUpdateStatus } : {}), reasons, ...(warnings.length > 0 ? { warnings: [...warnings] } : {}) };
  }
}
