/** The agent's own metrics, in one prom-client Registry (never the global one), served at /metrics. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface AgentMetrics {
  readonly registry: Registry;
  readonly envoyRestarts: Counter;
  readonly envoyExits: Counter<'how'>;
  readonly healthTransitions: Counter<'to'>;
  readonly healthy: Gauge;
  readonly adminCallSeconds: Histogram<'path' | 'outcome'>;
  readonly statsSnapshots: Counter<'outcome'>;
  readonly managementRequests: Counter<'path' | 'code'>;
}

export function createAgentMetrics(): AgentMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'appnet_agent_' });
  return {
    registry,
    envoyRestarts: new Counter({ name: 'appnet_agent_envoy_restarts_total', help: 'Envoy restarts after an exit.', registers: [registry] }),
    envoyExits: new Counter({ name: 'appnet_agent_envoy_exits_total', help: 'Envoy exits, by how Envoy ended (exit code or signal).', labelNames: ['how'], registers: [registry] }),
    healthTransitions: new Counter({ name: 'appnet_agent_health_transitions_total', help: 'Health status changes, by the new status.', labelNames: ['to'], registers: [registry] }),
    healthy: new Gauge({ name: 'appnet_agent_healthy', help: '1 when the agent reports HEALTHY, else 0.', registers: [registry] }),
    adminCallSeconds: new Histogram({
      name: 'appnet_agent_envoy_admin_request_duration_seconds',
      help: "Latency of the agent's calls to Envoy's admin interface.",
      labelNames: ['path', 'outcome'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    statsSnapshots: new Counter({ name: 'appnet_agent_stats_snapshots_total', help: 'Stats snapshots for delta, by outcome.', labelNames: ['outcome'], registers: [registry] }),
    managementRequests: new Counter({ name: 'appnet_agent_management_requests_total', help: 'Requests to the management interface, by route and status code.', labelNames: ['path', 'code'], registers: [registry] }),
  };
}
