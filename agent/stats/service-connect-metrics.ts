/**
 * The Service Connect metrics (what `/stats/prometheus?filter=metrics_extension` serves), derived from Envoy's own
 * stats. Pure.
 *
 * Two sources:
 * - families Envoy itself names `envoy_appmesh_<Metric>` (an Envoy build with AWS's metrics extension, driven by
 *   the ECS control plane): kept with the prefix removed, as the reference agent does;
 * - Envoy's standard listener and cluster stats, for listeners and clusters named by this agent's convention
 *   (the Cloud Map renderer follows it; so can a user's static bootstrap):
 *     inbound HTTP connection manager stat_prefix  `scin_<protocol>_<discoveryName>`
 *     inbound tcp_proxy stat_prefix                `scin_tcp_<discoveryName>`
 *     outbound cluster name                        `scout_<protocol>_<targetDiscoveryName>`
 *   where <protocol> is http, http2, grpc or tcp. Envoy's default tag extractors turn those into labels; the table
 *   below renames them to the ECS names with `Direction`, `DiscoveryName` / `TargetDiscoveryName`, and, when known,
 *   `ServiceName` and `ClusterName`.
 */
import { escapeLabelValue, type Family, type HistogramSample } from './prometheus-text.ts';

export const APPMESH_FAMILY_PREFIX = 'envoy_appmesh_';

export const NAMING = {
  inboundPrefix: (protocol: string, discoveryName: string) => `scin_${protocol}_${discoveryName}`,
  outboundCluster: (protocol: string, targetDiscoveryName: string) => `scout_${protocol}_${targetDiscoveryName}`,
} as const;

type Side = 'in' | 'out';
type Protocol = 'http' | 'http2' | 'grpc' | 'tcp';

interface Rule {
  readonly metric: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly side: Side;
  /** Envoy families summed into the metric. */
  readonly sources: readonly string[];
  readonly protocols?: readonly Protocol[];
  /** Only samples of this response code class (envoy_response_code_class: 2 for 2xx, ...). */
  readonly codeClass?: '2' | '3' | '4' | '5';
}

const HTTP: readonly Protocol[] = ['http', 'http2', 'grpc'];

/** The ECS Service Connect metrics and the Envoy stats each comes from. docs/metrics.md is generated from this. */
export const SERVICE_CONNECT_METRICS: readonly Rule[] = [
  { metric: 'RequestCount', type: 'counter', side: 'in', sources: ['envoy_http_downstream_rq_total'], protocols: HTTP },
  { metric: 'GrpcRequestCount', type: 'counter', side: 'in', sources: ['envoy_http_downstream_rq_total'], protocols: ['grpc'] },
  { metric: 'NewConnectionCount', type: 'counter', side: 'in', sources: ['envoy_http_downstream_cx_total', 'envoy_tcp_downstream_cx_total'] },
  { metric: 'ActiveConnectionCount', type: 'gauge', side: 'in', sources: ['envoy_http_downstream_cx_active'] },
  {
    metric: 'ProcessedBytes',
    type: 'counter',
    side: 'in',
    sources: ['envoy_http_downstream_cx_rx_bytes_total', 'envoy_http_downstream_cx_tx_bytes_total', 'envoy_tcp_downstream_cx_rx_bytes_total', 'envoy_tcp_downstream_cx_tx_bytes_total'],
  },
  { metric: 'TargetResponseTime', type: 'histogram', side: 'in', sources: ['envoy_http_downstream_rq_time'], protocols: HTTP },
  { metric: 'RequestCountPerTarget', type: 'counter', side: 'out', sources: ['envoy_cluster_upstream_rq_total'], protocols: HTTP },
  ...(['2', '3', '4', '5'] as const).map(
    (c): Rule => ({ metric: `HTTPCode_Target_${c}XX_Count`, type: 'counter', side: 'out', sources: ['envoy_cluster_upstream_rq_xx'], protocols: ['http', 'http2'], codeClass: c }),
  ),
  { metric: 'TargetProcessedBytes', type: 'counter', side: 'out', sources: ['envoy_cluster_upstream_cx_rx_bytes_total', 'envoy_cluster_upstream_cx_tx_bytes_total'] },
  { metric: 'TargetResponseTime', type: 'histogram', side: 'out', sources: ['envoy_cluster_upstream_rq_time'], protocols: HTTP },
];

/**
 * Stat-name regex for Envoy's `filter` parameter, built from the table: exactly the stats the metrics read, so a
 * snapshot of an Envoy with thousands of clusters carries a few lines per service, not every cluster stat.
 */
export const METRICS_EXTENSION_STATS_FILTER: string = (() => {
  const bySubsystem = new Map<string, Set<string>>();
  for (const rule of SERVICE_CONNECT_METRICS) {
    for (const source of rule.sources) {
      const m = /^envoy_(http|tcp|cluster)_(.+)$/.exec(source);
      if (m === null) throw new Error(`metrics table: ${source} is not an http, tcp or cluster family`);
      const stat = (m[2] ?? '').replace(/_xx$/, '_[2-5]xx'); // upstream_rq_xx is the tag-extracted upstream_rq_2xx ...
      const set = bySubsystem.get(m[1] ?? '') ?? new Set<string>();
      set.add(stat);
      bySubsystem.set(m[1] ?? '', set);
    }
  }
  const parts = [...bySubsystem].map(([sub, stats]) => `${sub}\\.${sub === 'cluster' ? 'scout' : 'scin'}_[^.]+\\.(${[...stats].join('|')})$`);
  return `^(appmesh\\.|${parts.join('|')})`;
})();

const IDENTITY_LABELS = ['envoy_http_conn_manager_prefix', 'envoy_tcp_prefix', 'envoy_cluster_name'];
const NAME_PATTERN = /^sc(in|out)_(http2|http|grpc|tcp)_(.+)$/;

export interface MetricLabels {
  readonly ServiceName?: string;
  readonly ClusterName?: string;
}


/** The escaped value of label `name` in a raw label string, without parsing the others. */
function labelValue(raw: string, name: string): string | null {
  let at = raw.indexOf(`${name}="`);
  while (at > 0 && raw.charCodeAt(at - 1) !== 44) at = raw.indexOf(`${name}="`, at + 1);
  if (at < 0) return null;
  const start = at + name.length + 2;
  let end = start;
  while (end < raw.length && raw.charCodeAt(end) !== 34) end += raw.charCodeAt(end) === 92 ? 2 : 1;
  return raw.slice(start, end);
}

interface Identity {
  readonly side: Side;
  readonly protocol: Protocol;
  readonly name: string;
}

/** Identity of a sample: direction, protocol and discovery name, from its prefix or cluster label. */
function identify(raw: string): Identity | null {
  for (const label of IDENTITY_LABELS) {
    const v = labelValue(raw, label);
    if (v === null) continue;
    const m = NAME_PATTERN.exec(v);
    if (m !== null) return { side: m[1] === 'in' ? 'in' : 'out', protocol: m[2] as Protocol, name: m[3] ?? '' };
  }
  return null;
}

/** The output label set for an identity: names in sorted order, so the renderer need not sort them. */
function identityKey(id: Identity | null, extra: ReadonlyArray<[string, string]>): { id: Identity; key: string } | null {
  if (id === null) return null;
  const pairs: Array<[string, string]> = [
    ['Direction', id.side === 'in' ? 'ingress' : 'egress'],
    [id.side === 'in' ? 'DiscoveryName' : 'TargetDiscoveryName', id.name],
    ...extra.map(([k, v]): [string, string] => [k, escapeLabelValue(v)]),
  ];
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return { id, key: pairs.map(([k, v]) => `${k}="${v}"`).join(',') };
}

/** Rules by the Envoy family they read, so each family is walked once however many metrics it feeds. */
const RULES_BY_SOURCE: ReadonlyMap<string, readonly Rule[]> = (() => {
  const m = new Map<string, Rule[]>();
  for (const rule of SERVICE_CONNECT_METRICS) for (const source of rule.sources) m.set(source, [...(m.get(source) ?? []), rule]);
  return m;
})();

export function deriveServiceConnectMetrics(envoyFamilies: ReadonlyMap<string, Family>, labels: MetricLabels = {}): Map<string, Family> {
  const out = new Map<string, Family>();
  for (const fam of envoyFamilies.values()) {
    if (fam.name.startsWith(APPMESH_FAMILY_PREFIX)) {
      const name = fam.name.slice(APPMESH_FAMILY_PREFIX.length);
      out.set(name, { ...fam, name } as Family);
    }
  }
  const extra = Object.entries(labels).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== '');
  /** Each raw label set is identified once, however many families and rules see it. */
  const identities = new Map<string, { id: Identity; key: string } | null>();
  const targetFor = (rule: Rule): Family => {
    let target = out.get(rule.metric);
    if (target === undefined) {
      target =
        rule.type === 'histogram'
          ? { name: rule.metric, type: 'histogram', samples: new Map(), canonical: true }
          : { name: rule.metric, type: rule.type, samples: new Map(), canonical: true };
      out.set(rule.metric, target);
    }
    return target;
  };
  for (const [source, rules] of RULES_BY_SOURCE) {
    const fam = envoyFamilies.get(source);
    if (fam === undefined) continue;
    for (const [raw, value] of fam.samples) {
      let seen = identities.get(raw);
      if (seen === undefined) {
        seen = identityKey(identify(raw), extra);
        identities.set(raw, seen);
      }
      if (seen === null) continue;
      const { id, key } = seen;
      let codeClass: string | null | undefined;
      for (const rule of rules) {
        if (id.side !== rule.side || (rule.protocols !== undefined && !rule.protocols.includes(id.protocol))) continue;
        if (rule.codeClass !== undefined) {
          codeClass ??= labelValue(raw, 'envoy_response_code_class');
          if (codeClass !== rule.codeClass) continue;
        }
        const target = targetFor(rule);
        if (target.type === 'histogram') {
          // Shared, not copied: snapshots are never mutated after they are taken.
          if (typeof value !== 'number') target.samples.set(key, value as HistogramSample);
        } else if (typeof value === 'number') {
          const samples = target.samples as Map<string, number>;
          samples.set(key, (samples.get(key) ?? 0) + value);
        }
      }
    }
  }
  return out;
}

export function renderMetricsDoc(): string {
  const lines = [
    '# Service Connect metrics',
    '',
    '<!-- Generated from agent/stats/service-connect-metrics.ts by `npm run docs`. A test fails when this file is stale. -->',
    '',
    '`/stats/prometheus?filter=metrics_extension` (and the ECS agent\'s `...&usedonly&delta`) serves these families,',
    'named as in CloudWatch\'s `AWS/ECS` namespace, in strict Prometheus text 0.0.4. Inbound (server-side) series carry',
    '`Direction="ingress"` and `DiscoveryName`; outbound (client-side) series carry `Direction="egress"` and',
    '`TargetDiscoveryName`; `ServiceName` and `ClusterName` are added when the agent knows them. Families that an Envoy',
    'names `envoy_appmesh_<Metric>` itself are passed through with the prefix removed.',
    '',
    'They are derived from Envoy\'s own stats of the listeners and clusters named by the agent\'s convention: inbound',
    'HTTP connection manager or tcp_proxy `stat_prefix` `scin_<protocol>_<discoveryName>`, outbound cluster',
    '`scout_<protocol>_<targetDiscoveryName>`, with `<protocol>` one of http, http2, grpc, tcp.',
    '',
    '| Metric | Type | Direction | Protocols | From Envoy stats |',
    '|---|---|---|---|---|',
  ];
  for (const r of SERVICE_CONNECT_METRICS) {
    const where = r.codeClass ? ` where envoy_response_code_class="${r.codeClass}"` : '';
    lines.push(`| \`${r.metric}\` | ${r.type} | ${r.side === 'in' ? 'ingress' : 'egress'} | ${(r.protocols ?? ['all']).join(', ')} | ${r.sources.map((s) => `\`${s}\``).join(' + ')}${where} |`);
  }
  lines.push('');
  return lines.join('\n');
}
