/**
 * The management interface's routes: the API the ECS agent calls (stats, drain) and the health check uses (status,
 * ready). One table: the server dispatches from it and docs/endpoints.md is generated from it.
 */
import { LOG_LEVELS, type EnvoyLogLevel } from '../config/index.ts';
import type { EnvoyAdminClient, LogLevelController } from '../envoy/index.ts';
import type { HealthMonitor } from '../health/index.ts';
import { type AgentMetrics, renderPrometheus, fetchMetricsExtension, type StatsSnapshotter, type MetricLabels } from '../stats/index.ts';

export interface Reply {
  readonly status: number;
  readonly body: string;
  /** Streamed after the headers instead of `body` (Envoy's full stats pass through without buffering). */
  readonly stream?: NodeJS.ReadableStream & { destroy(error?: Error): void };
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface RouteContext {
  readonly health: HealthMonitor;
  readonly admin: EnvoyAdminClient;
  readonly logLevel: LogLevelController;
  /** Null when ENABLE_STATS_SNAPSHOT is false. */
  readonly snapshotter: StatsSnapshotter | null;
  readonly metrics: AgentMetrics;
  /** Starts draining inbound listeners (Envoy /drain_listeners?inboundonly&graceful). */
  readonly drainInbound: () => Promise<void>;
  /** ServiceName and ClusterName labels for the Service Connect metrics, when known. */
  readonly metricLabels: MetricLabels;
}

export interface Route {
  readonly path: string;
  readonly methods: readonly ('GET' | 'POST')[];
  /** Query keys accepted; any other key is a 400. */
  readonly query: readonly string[];
  /**
   * This route's own token bucket (requests a second, burst), so a caller cannot flood Envoy's admin; null: never
   * refused. The drain and health routes are never refused: the ECS agent counts any answer to its drain request as
   * done, so a 429 there lost the drain.
   */
  readonly rateLimit: { readonly perSecond: number; readonly burst: number } | null;
  /** The route calls Envoy's admin: its answer is bounded by the request deadline (503 when Envoy hangs). */
  readonly callsEnvoy: boolean;
  readonly doc: string;
  readonly handle: (ctx: RouteContext, query: URLSearchParams, signal: AbortSignal) => Promise<Reply>;
}

const TEXT = 'text/plain; charset=utf-8';
/** The most connections the management interface keeps open; the oldest idle one is closed beyond it. */
export const MAX_CONNECTIONS = 100;
export const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8';

export function badRequest(message: string): Reply {
  return { status: 400, body: `${message}\n`, contentType: TEXT };
}

export const routes: readonly Route[] = [
  {
    path: '/status',
    methods: ['GET'],
    query: [],
    rateLimit: null,
    callsEnvoy: false,
    doc: "The health snapshot as JSON: the reference agent's keys (healthStatus, agentUptime, envoyPid, envoyState, envoyRestartCount, managementServerConnectionStatus, managementServerDisconnectedTimestamp, envoyReadinessState, initialConfigUpdateStatus) and `reasons`, the reasons for UNHEALTHY; in Cloud Map mode, `warnings` when something is wrong that leaves health as it is (a namespace gone, records skipped, virtual IPs exhausted). Always 200.",
    handle: async (ctx) => ({ status: 200, body: `${JSON.stringify(ctx.health.status(), null, 2)}\n`, contentType: 'application/json' }),
  },
  {
    path: '/ready',
    methods: ['GET'],
    query: [],
    rateLimit: null,
    callsEnvoy: false,
    doc: '200 `HEALTHY` when healthy; 503 `UNHEALTHY` with one reason per line otherwise.',
    handle: async (ctx) => {
      const v = ctx.health.verdict;
      if (v?.status === 'HEALTHY') return { status: 200, body: 'HEALTHY\n', contentType: TEXT };
      const reasons = v === null ? ['the first health check has not finished'] : v.reasons;
      return { status: 503, body: `UNHEALTHY\n${reasons.map((r) => `${r}\n`).join('')}`, contentType: TEXT };
    },
  },
  {
    path: '/drain_listeners',
    methods: ['GET', 'POST'],
    query: ['inboundonly'],
    rateLimit: null,
    callsEnvoy: true,
    doc: 'Requires `?inboundonly`. Starts a graceful drain of the inbound listeners and answers as soon as Envoy has begun it: `200 OK`, or 500 if Envoy cannot be reached. Never rate limited (the ECS agent counts any answer as done); requests that arrive while a drain request to Envoy is in flight share its answer. GET and POST both work: the ECS agent sends GET (the reference rejected it). Answers with `Connection: close`.',
    handle: async (ctx, query) => {
      if (!query.has('inboundonly')) return badRequest('drain_listeners needs the query parameter inboundonly: /drain_listeners?inboundonly');
      try {
        await ctx.drainInbound();
        return { status: 200, body: 'OK\n', contentType: TEXT, headers: { connection: 'close' } };
      } catch (err) {
        return { status: 500, body: `Unable to drain Envoy listeners: ${(err as Error).message}\n`, contentType: TEXT, headers: { connection: 'close' } };
      }
    },
  },
  {
    path: '/enableLogging',
    methods: ['POST'],
    query: ['level', 'permanent'],
    rateLimit: { perSecond: 1, burst: 5 },
    callsEnvoy: true,
    doc: `\`?level=<${LOG_LEVELS.join('|')}>[&permanent=true|false]\`. Sets every Envoy logger to the level. Unless permanent, it reverts after APPNET_AGENT_LOGGING_RESET_TIMEOUT; a permanent level becomes the one a restarted Envoy starts with.`,
    handle: async (ctx, query) => {
      const level = query.get('level');
      if (level === null || !(LOG_LEVELS as readonly string[]).includes(level)) {
        return badRequest(`level=${JSON.stringify(level ?? '')}: must be one of ${LOG_LEVELS.join(', ')}`);
      }
      const permanentRaw = query.get('permanent');
      if (permanentRaw !== null && permanentRaw !== 'true' && permanentRaw !== 'false') return badRequest(`permanent=${JSON.stringify(permanentRaw)}: must be true or false`);
      try {
        const r = await ctx.logLevel.set(level as EnvoyLogLevel, permanentRaw === 'true');
        const tail = r.revertsInMs === null ? (permanentRaw === 'true' ? '; permanent' : '') : `; reverts to ${ctx.logLevel.baseline} in ${Math.round(r.revertsInMs / 1000)} s`;
        return { status: 200, body: `Setting logging level from [${r.from}] to [${r.to}]${tail}\n`, contentType: TEXT };
      } catch (err) {
        return { status: 500, body: `Unable to set logging level to [${level}]: ${(err as Error).message}\n`, contentType: TEXT };
      }
    },
  },
  {
    path: '/stats/prometheus',
    methods: ['GET'],
    query: ['usedonly', 'filter', 'delta'],
    rateLimit: { perSecond: 10, burst: 20 },
    callsEnvoy: true,
    doc: "Envoy's stats in Prometheus text format 0.0.4. `usedonly`: only stats that changed. `filter=metrics_extension`: only the Service Connect families (RequestCount, TargetResponseTime, ...) with the `envoy_appmesh_` prefix removed, sorted, every family typed. `delta` (needs usedonly and filter): the change over the last completed snapshot interval (APPNET_STATS_SNAPSHOT_INTERVAL_S); counters never go negative across Envoy restarts; before the first snapshot, the change since Envoy started. This is the ECS agent's request: `/stats/prometheus?usedonly&filter=metrics_extension&delta`.",
    handle: async (ctx, query, signal) => {
      const filter = query.get('filter');
      if (filter !== null && filter !== 'metrics_extension') return badRequest(`filter=${JSON.stringify(filter)}: the only filter is metrics_extension`);
      const usedOnly = query.has('usedonly');
      if (query.has('delta')) {
        if (!usedOnly || filter === null) return badRequest('delta needs usedonly and filter=metrics_extension: /stats/prometheus?usedonly&filter=metrics_extension&delta');
        if (ctx.snapshotter === null) return badRequest('delta needs stats snapshots, and ENABLE_STATS_SNAPSHOT is false');
        const delta = ctx.snapshotter.delta;
        if (delta !== null) return { status: 200, body: renderPrometheus(delta.families), contentType: PROMETHEUS_TEXT, headers: { 'x-appnet-delta-to': new Date(delta.toMs).toISOString() } };
      }
      if (filter !== null) {
        const families = await fetchMetricsExtension(ctx.admin, { usedOnly, timeoutMs: 4000, signal, labels: ctx.metricLabels });
        return { status: 200, body: renderPrometheus(families.values()), contentType: PROMETHEUS_TEXT };
      }
      const res = await ctx.admin.stream(`/stats/prometheus${usedOnly ? '?usedonly' : ''}`, { timeoutMs: 10_000, signal });
      if (res.status !== 200) {
        res.body.destroy();
        return { status: 502, body: `Envoy answered HTTP ${res.status} for its stats\n`, contentType: TEXT };
      }
      return { status: 200, body: '', stream: res.body, contentType: res.contentType ?? PROMETHEUS_TEXT };
    },
  },
  {
    path: '/metrics',
    methods: ['GET'],
    query: [],
    rateLimit: { perSecond: 10, burst: 20 },
    callsEnvoy: false,
    doc: "The agent's own metrics in Prometheus format: Envoy restarts and exits, health transitions, Envoy admin call latency, stats snapshots, management requests, in Cloud Map mode skipped records, updates that could not be applied, services without a virtual IP and registration events (docs/cloud-map.md), and the process (memory, CPU, event loop).",
    handle: async (ctx) => ({ status: 200, body: await ctx.metrics.registry.metrics(), contentType: ctx.metrics.registry.contentType }),
  },
];

export function renderEndpointsDoc(): string {
  const lines = [
    '# Management interface',
    '',
    '<!-- Generated from agent/server/routes.ts by `npm run docs`. A test fails when this file is stale. -->',
    '',
    'Served when `APPNET_AGENT_ADMIN_MODE` is set: on the Unix socket `APPNET_AGENT_ADMIN_UDS_PATH` (mode 0600; a',
    'stale socket file is replaced, a live one is an error) or on `APPNET_AGENT_HTTP_BIND_ADDRESS`:`APPNET_AGENT_HTTP_PORT`.',
    '',
    'Unknown paths get 404, a wrong method 405 with `Allow`, an unknown query key 400 naming it, a request target',
    'that is not a path (or cannot be parsed) 400. Each rate-limited route has a token bucket of its own and answers',
    '429 beyond it; `/status`, `/ready` and `/drain_listeners` are never refused. Every answer comes within about 5',
    'seconds even when Envoy hangs (the ECS agent\'s client has no timeout): a hung Envoy gives 503.',
    '',
    'Connections: request headers must arrive within 5 s of connecting, a kept-alive connection is closed after 5 s',
    `without a request, and at most ${MAX_CONNECTIONS} connections are open at once: beyond that the oldest idle connection`,
    'is closed to make room, so a flood of idle connections never makes `/status` unreachable or uses up the',
    "agent's file descriptors.",
    '',
    '| Path | Methods | Query | Rate limit | What it does |',
    '|---|---|---|---|---|',
  ];
  for (const r of routes) {
    const limit = r.rateLimit === null ? 'never refused' : `${r.rateLimit.perSecond}/s, burst ${r.rateLimit.burst}`;
    lines.push(`| \`${r.path}\` | ${r.methods.join(', ')} | ${r.query.map((q) => `\`${q}\``).join(', ')} | ${limit} | ${r.doc.replace(/\|/g, '\\|')} |`);
  }
  lines.push('');
  return lines.join('\n');
}
