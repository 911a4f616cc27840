/**
 * The one contract through which a mode plugs into `agent run` (agent/commands/run.ts). The modes are peers:
 * ECS-managed and a user bootstrap (agent/modes/ecs-managed.ts), Cloud Map (agent/modes/cloud-map.ts) and relay
 * (relay/mode.ts). main.ts hands run one per Mode; run knows none of them by name.
 *
 * A mode says which health rule applies to it and may open a session: parts of its own that run beside Envoy. A
 * session is opened after the configuration is read and the runtime directory claimed, before Envoy starts; it is
 * started once Envoy runs, asked for its health, told before the drain, and closed on every way out of run (close()
 * also does what beforeDrain() does when that has not run: Cloud Map mode deregisters this task whatever the way out).
 */
import type { Config, Env } from '../config/index.ts';
import type { EnvoyAdminClient } from '../envoy/index.ts';
import type { Logger } from '../logger.ts';
import type { AgentMetrics, MetricLabels } from '../stats/index.ts';
import type { TaskMetadata } from '../system/index.ts';

export interface RunMode {
  /**
   * Whether Envoy's connection to a management server counts for health: true in ECS-managed mode, where a
   * disconnection longer than HC_DISCONNECTED_TIMEOUT_S makes the agent UNHEALTHY; elsewhere LIVE is enough.
   */
  readonly watchesManagementServer: boolean;
  /** The mode's own parts beside Envoy; null when it has none. A stop signal during the opening ends it (AbortError). */
  open(config: Config, deps: ModeDeps): Promise<ModeSession | null>;
}

export interface ModeDeps {
  readonly logger: Logger;
  readonly metrics?: AgentMetrics;
  /** The stop signal: a stop during the opening ends it (the mode undoes what it did and throws an AbortError). */
  readonly signal?: AbortSignal;
  /** The ECS task metadata (endpoint v4, `/task`), fetched once at start; null without an endpoint or an answer. */
  readonly task: TaskMetadata | null;
  /** The agent's environment, for what the configuration does not hold (the AWS SDK's endpoint variables). */
  readonly env: Env;
}

/** What Envoy's side gives a session when it starts. */
export interface EnvoyAccess {
  readonly admin: EnvoyAdminClient;
  /** Tells the health monitor to judge again now (the session's health changed). */
  readonly healthChanged: () => void;
}

export interface ModeSession {
  /** ServiceName and ClusterName for the Service Connect metrics. */
  readonly metricLabels: MetricLabels;
  start(signal: AbortSignal, envoy: EnvoyAccess): Promise<void>;
  /** What makes the agent UNHEALTHY (problems) and what /status reports without changing health (warnings). */
  health(): ModeHealth;
  beforeDrain(): Promise<void>;
  close(): Promise<void>;
}

export interface ModeHealth {
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
}

/** One RunMode per Mode: what main.ts hands run. */
export type RunModes = Readonly<Record<Config['mode'], RunMode>>;
