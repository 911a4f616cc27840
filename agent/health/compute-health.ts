/**
 * computeHealth: Envoy's observed state → HEALTHY or UNHEALTHY with reasons. Pure (the clock is an argument).
 *
 * HEALTHY when Envoy is LIVE, its initial configuration applied (no listener failed to be created), and, when the
 * mode watches the management server (ECS-managed mode: RunMode.watchesManagementServer), it has not been
 * disconnected from it for longer than HC_DISCONNECTED_TIMEOUT_S. In relay, Cloud Map and user-bootstrap modes, LIVE
 * is enough; the mode's own problems are reasons too (Cloud Map: an update that could not be applied, until a retry
 * applies it). Every UNHEALTHY has a reason.
 */
export interface HealthObservation {
  /** ECS-managed mode: the management-server connection counts (RunMode.watchesManagementServer). */
  readonly watchesManagementServer: boolean;
  /** Envoy's /ready body (LIVE, INITIALIZING, ...), UNREACHABLE when the call failed, NOT_RUNNING between restarts. */
  readonly envoyState: string;
  /** ECS-managed mode: null until the first successful stats read. */
  readonly connected: boolean | null;
  /** When the agent first saw the disconnection (epoch ms); null while connected. */
  readonly disconnectedSinceMs: number | null;
  readonly listenerCreateFailures: number;
  /** Problems the mode reports (Cloud Map: an update Envoy rejected or that cannot be written); each is a reason. */
  readonly modeProblems?: readonly string[];
  readonly nowMs: number;
  readonly disconnectedTimeoutMs: number;
}

export interface HealthVerdict {
  readonly status: 'HEALTHY' | 'UNHEALTHY';
  readonly reasons: readonly string[];
}

export function computeHealth(o: HealthObservation): HealthVerdict {
  const reasons: string[] = [];
  if (o.envoyState !== 'LIVE') {
    reasons.push(o.envoyState === 'UNREACHABLE' ? "Envoy's admin interface does not answer" : o.envoyState === 'NOT_RUNNING' ? 'Envoy is not running (restarting)' : `Envoy is ${o.envoyState}, not LIVE`);
  }
  if (o.listenerCreateFailures > 0) reasons.push(`Envoy failed to create ${o.listenerCreateFailures} listener(s) from its configuration`);
  reasons.push(...(o.modeProblems ?? []));
  if (o.watchesManagementServer && o.envoyState === 'LIVE' && o.connected !== true) {
    const since = o.disconnectedSinceMs ?? o.nowMs;
    const forMs = o.nowMs - since;
    if (forMs >= o.disconnectedTimeoutMs) {
      reasons.push(`disconnected from the management server for ${Math.round(forMs / 1000)} s (HC_DISCONNECTED_TIMEOUT_S is ${o.disconnectedTimeoutMs / 1000} s)`);
    }
  }
  return { status: reasons.length === 0 ? 'HEALTHY' : 'UNHEALTHY', reasons };
}
