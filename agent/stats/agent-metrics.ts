/**
 * The agent's own metrics, served at /metrics in Prometheus text format 0.0.4.
 *
 * A small registry of its own rather than prom-client (which the design names): README, "Dependencies", has the
 * measured cost. One registry per agent, never a global one.
 */
import { cpuUsage, memoryUsage, uptime } from 'node:process';
import { escapeLabelValue } from './prometheus-text.ts';

type Labels<L extends string> = Partial<Record<L, string>>;

function labelText(pairs: Array<[string, string]>): string {
  return pairs.length === 0 ? '' : `{${pairs.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}
function keyOf<L extends string>(names: readonly L[], labels: Labels<L>): string {
  return JSON.stringify(names.map((n) => labels[n] ?? ''));
}
function pairsOf(names: readonly string[], key: string): Array<[string, string]> {
  const values = JSON.parse(key) as string[];
  return names.map((n, i): [string, string] => [n, values[i] ?? '']).filter(([, v]) => v !== '');
}

interface Metric {
  readonly name: string;
  render(): string;
}

export class Counter<L extends string = never> implements Metric {
  readonly #values = new Map<string, number>();
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  constructor(name: string, help: string, labelNames: readonly L[] = []) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }
  inc(labels: Labels<L> = {}, by = 1): void {
    const k = keyOf(this.labelNames, labels);
    this.#values.set(k, (this.#values.get(k) ?? 0) + by);
  }
  get(labels: Labels<L> = {}): number {
    return this.#values.get(keyOf(this.labelNames, labels)) ?? 0;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    if (this.labelNames.length === 0 && this.#values.size === 0) out += `${this.name} 0\n`;
    for (const [k, v] of this.#values) out += `${this.name}${labelText(pairsOf(this.labelNames, k))} ${v}\n`;
    return out;
  }
}

export class Gauge implements Metric {
  #value = 0;
  readonly name: string;
  readonly help: string;
  readonly collect: (() => number) | undefined;
  constructor(name: string, help: string, collect?: () => number) {
    this.name = name;
    this.help = help;
    this.collect = collect;
  }
  set(v: number): void {
    this.#value = v;
  }
  render(): string {
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n${this.name} ${this.collect ? this.collect() : this.#value}\n`;
  }
}

export class Histogram<L extends string = never> implements Metric {
  readonly #series = new Map<string, { counts: number[]; sum: number; count: number }>();
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly buckets: readonly number[];
  constructor(name: string, help: string, labelNames: readonly L[], buckets: readonly number[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    this.buckets = buckets;
  }
  observe(labels: Labels<L>, value: number): void {
    const k = keyOf(this.labelNames, labels);
    let s = this.#series.get(k);
    if (s === undefined) {
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.#series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= (this.buckets[i] as number)) s.counts[i] = (s.counts[i] ?? 0) + 1;
    s.sum += value;
    s.count += 1;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    for (const [k, s] of this.#series) {
      const pairs = pairsOf(this.labelNames, k);
      this.buckets.forEach((b, i) => {
        out += `${this.name}_bucket${labelText([...pairs, ['le', String(b)]])} ${s.counts[i]}\n`;
      });
      out += `${this.name}_bucket${labelText([...pairs, ['le', '+Inf']])} ${s.count}\n`;
      out += `${this.name}_sum${labelText(pairs)} ${s.sum}\n${this.name}_count${labelText(pairs)} ${s.count}\n`;
    }
    return out;
  }
}

export class Registry {
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  readonly #metrics: Metric[] = [];
  register<M extends Metric>(m: M): M {
    this.#metrics.push(m);
    return m;
  }
  metrics(): string {
    return this.#metrics.map((m) => m.render()).join('');
  }
}

export interface AgentMetrics {
  readonly registry: Registry;
  readonly envoyRestarts: Counter;
  readonly envoyExits: Counter<'how'>;
  readonly healthTransitions: Counter<'to'>;
  readonly healthy: Gauge;
  readonly adminCallSeconds: Histogram<'path' | 'outcome'>;
  readonly statsSnapshots: Counter<'outcome'>;
  readonly managementRequests: Counter<'path' | 'code'>;
  /** Cloud Map mode: records skipped (once per distinct problem), and how many are skipped now. */
  readonly cloudMapSkippedRecords: Counter<'attribute'>;
  readonly cloudMapSkippedNow: Gauge;
  /** Cloud Map mode: updates that could not be applied (and are retried), by reason. */
  readonly cloudMapApplyFailures: Counter<'reason'>;
  readonly cloudMapServicesWithoutVip: Gauge;
  readonly cloudMapRegistrations: Counter<'event'>;
}

export function createAgentMetrics(): AgentMetrics {
  const registry = new Registry();
  const startCpu = cpuUsage();
  const metrics: AgentMetrics = {
    registry,
    envoyRestarts: registry.register(new Counter('appnet_agent_envoy_restarts_total', 'Envoy restarts after an exit.')),
    envoyExits: registry.register(new Counter('appnet_agent_envoy_exits_total', 'Envoy exits, by how Envoy ended (exit code or signal).', ['how'])),
    healthTransitions: registry.register(new Counter('appnet_agent_health_transitions_total', 'Health status changes, by the new status.', ['to'])),
    healthy: registry.register(new Gauge('appnet_agent_healthy', '1 when the agent reports HEALTHY, else 0.')),
    adminCallSeconds: registry.register(
      new Histogram('appnet_agent_envoy_admin_request_duration_seconds', "Latency of the agent's calls to Envoy's admin interface.", ['path', 'outcome'], [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]),
    ),
    statsSnapshots: registry.register(new Counter('appnet_agent_stats_snapshots_total', 'Stats snapshots for delta, by outcome.', ['outcome'])),
    managementRequests: registry.register(new Counter('appnet_agent_management_requests_total', 'Requests to the management interface, by route and status code.', ['path', 'code'])),
    cloudMapSkippedRecords: registry.register(
      new Counter('appnet_agent_cloud_map_skipped_records_total', 'Cloud Map records skipped because a value breaks a rule, once per distinct problem, by attribute.', ['attribute']),
    ),
    cloudMapSkippedNow: registry.register(new Gauge('appnet_agent_cloud_map_skipped_records', 'Cloud Map records skipped now because a value breaks a rule.')),
    cloudMapApplyFailures: registry.register(
      new Counter('appnet_agent_cloud_map_apply_failures_total', 'Cloud Map updates that could not be applied and are retried, by reason (write, hosts, rejected).', ['reason']),
    ),
    cloudMapServicesWithoutVip: registry.register(new Gauge('appnet_agent_cloud_map_services_without_vip', 'Cloud Map services left without a virtual IP (APPNET_VIP_CIDR exhausted).')),
    cloudMapRegistrations: registry.register(
      new Counter('appnet_agent_cloud_map_registration_events_total', "This task's Cloud Map registrations: registered, reregistered, stale_removed, deregistered, deregister_failed.", ['event']),
    ),
  };
  registry.register(new Gauge('appnet_agent_resident_memory_bytes', "The agent process's resident memory.", () => memoryUsage.rss()));
  registry.register(new Gauge('appnet_agent_heap_used_bytes', "The agent's JavaScript heap in use.", () => memoryUsage().heapUsed));
  registry.register(
    new Gauge('appnet_agent_cpu_seconds', 'CPU time the agent has used (user and system).', () => {
      const u = cpuUsage(startCpu);
      return (u.user + u.system) / 1e6;
    }),
  );
  registry.register(new Gauge('appnet_agent_uptime_seconds', 'Seconds since the agent started.', () => Math.round(uptime())));
  return metrics;
}
