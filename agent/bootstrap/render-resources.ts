/**
 * renderResources: what discovery knows → Envoy's listeners, clusters and endpoints for Cloud Map mode, as the
 * filesystem xDS files Envoy watches (LDS, and CDS with the endpoints inline). Pure.
 *
 * - Outbound, per service in the namespace that has a virtual IP: a listener on that IP and its alias port. http, http2 and grpc get
 *   an HTTP connection manager with a per-request timeout (default 15 s), an idle timeout (default 300 s) and 2
 *   retries on connect failure, refused stream, reset and 503, each to another host; TCP gets tcp_proxy with a
 *   3600 s idle timeout. Its cluster `scout_<protocol>_<name>` balances round robin with outlier detection and
 *   circuit breakers; its endpoints are inline. (One EDS file per cluster would give Envoy one inotify watcher
 *   per cluster, and past fs.inotify.max_user_instances, 128 by default, Envoy aborts. An endpoint change updates
 *   the cluster instead: Envoy warms the new one and drains the old one's upstream connections, finishing their
 *   requests; listeners, and the apps' connections to them, are untouched.)
 * - Inbound, per services[] entry of this task: a listener on the task address and ingress port that forwards to
 *   the app's containerPort, with stat prefix `scin_<protocol>_<name>` (the metrics convention).
 * - Access logs, per accessLogConfiguration, to stdout.
 */
import type { AppProtocol, ServiceConnectConfig } from '../config/index.ts';
import { callTarget, type DiscoverySnapshot } from '../discovery/index.ts';
import { NAMING } from '../stats/index.ts';

/**
 * One xDS file's text: JSON (which Envoy reads as YAML), unindented. Indented, the listeners of 1,000 services
 * were 2 MiB of text instead of 1.1 MiB.
 */
export function resourceFileText(doc: Record<string, unknown>): string {
  return `${JSON.stringify(doc)}\n`;
}

/** Characters a piece of resourceFilePieces holds at most, but for a single resource longer than that. */
const PIECE_CHARS = 16 * 1024;

/**
 * The same text as resourceFileText, in pieces of at most PIECE_CHARS characters (a resource never cut), for the
 * file to be written piece by piece. Written whole, a file's text became one buffer of a megabyte or more (the
 * listeners of 1,000 services), which glibc serves from a mapping of its own; freeing it raises glibc's threshold
 * for such mappings, and for giving the main C heap's free top back, to that size: after the first xDS files were
 * written, the agent's C heap kept megabytes of freed memory. Pieces of 48 KiB or less (three bytes a character
 * at most) stay under glibc's default threshold of 128 KiB.
 */
export function resourceFilePieces(doc: { readonly version_info?: string; readonly resources: readonly unknown[] }): string[] {
  // The opening is a piece of its own, so that resourceFileWithDigest can put the version in without a second rendering.
  const pieces: string[] = [resourceFileOpening(doc.version_info)];
  let piece = '';
  doc.resources.forEach((resource, i) => {
    const json = `${i === 0 ? '' : ','}${JSON.stringify(resource)}`;
    if (piece.length > 0 && piece.length + json.length > PIECE_CHARS) {
      pieces.push(piece);
      piece = '';
    }
    piece += json;
  });
  pieces.push(`${piece}]}\n`);
  return pieces;
}

function resourceFileOpening(versionInfo: string | undefined): string {
  return `{${versionInfo === undefined ? '' : `"version_info":${JSON.stringify(versionInfo)},`}"resources":[`;
}

/**
 * The file's pieces with its own digest as version_info (Envoy reports it back as version_text), rendered once. The
 * digest is that of the file without version_info: what tells whether a rendering differs from the file written last.
 */
export function resourceFileWithDigest(doc: { readonly resources: readonly unknown[] }): { readonly digest: string; readonly pieces: readonly string[] } {
  const pieces = resourceFilePieces(doc);
  const digest = resourceFileDigest(pieces);
  pieces[0] = resourceFileOpening(digest);
  return { digest, pieces };
}

/**
 * A digest of a file's text (whole or in pieces), to tell whether a rendering differs from the file written last
 * without keeping that file's text (3 MiB at 1,000 services, held for the agent's life). node:crypto is loaded here,
 * on first use, not at the agent's start: only Cloud Map mode needs it, and it signs its requests with it already.
 */
export function resourceFileDigest(text: string | readonly string[]): string {
  const hash = process.getBuiltinModule('node:crypto').createHash('sha256');
  for (const piece of typeof text === 'string' ? [text] : text) hash.update(piece);
  return hash.digest('base64');
}

export interface ResourceFiles {
  readonly lds: { readonly resources: Record<string, unknown>[] };
  readonly cds: { readonly resources: Record<string, unknown>[] };
}

/** Where each service's listener binds: its virtual IP, or null when it has none (the range is exhausted). */
export interface VipSource {
  vipOf(discoveryName: string): string | null;
}

export interface SelfTask {
  readonly config: ServiceConnectConfig;
  /** The address inbound listeners bind (the task's IPv4). */
  readonly taskIp: string;
  /** Where the app listens: loopback in awsvpc, the container's IP in bridge mode. */
  readonly appIp: string;
}

const LISTENER = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const CLUSTER = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };

const DEFAULT_PER_REQUEST_TIMEOUT_S = 15;
const DEFAULT_HTTP_IDLE_TIMEOUT_S = 300;
const DEFAULT_TCP_IDLE_TIMEOUT_S = 3600;

function accessLog(config: ServiceConnectConfig): Record<string, unknown>[] {
  const log = config.accessLog;
  if (log === null) return [];
  const path = log.includeQueryParameters ? '%REQ(:PATH)%' : '%REQ_WITHOUT_QUERY(:PATH)%';
  const fields: Record<string, string> = {
    start_time: '%START_TIME%',
    method: '%REQ(:METHOD)%',
    path,
    protocol: '%PROTOCOL%',
    response_code: '%RESPONSE_CODE%',
    response_flags: '%RESPONSE_FLAGS%',
    bytes_received: '%BYTES_RECEIVED%',
    bytes_sent: '%BYTES_SENT%',
    duration: '%DURATION%',
    upstream_service_time: '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%',
    forwarded_for: '%REQ(X-FORWARDED-FOR)%',
    user_agent: '%REQ(USER-AGENT)%',
    request_id: '%REQ(X-REQUEST-ID)%',
    authority: '%REQ(:AUTHORITY)%',
    upstream_host: '%UPSTREAM_HOST%',
  };
  const formatters = [{ name: 'envoy.formatter.req_without_query', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery' } }];
  const logFormat =
    log.format === 'JSON'
      ? { json_format: fields, formatters }
      : {
          text_format_source: {
            inline_string: `[%START_TIME%] "%REQ(:METHOD)% ${path} %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n`,
          },
          formatters,
        };
  return [{ name: 'envoy.access_loggers.stdout', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog', log_format: logFormat } }];
}

function http2Options(protocol: AppProtocol): Record<string, unknown> {
  if (protocol !== 'http2' && protocol !== 'grpc') return {};
  return {
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
  };
}

function httpFilter(statPrefix: string, cluster: string, opts: { perRequestTimeoutS: number | null; idleTimeoutS: number | null; retries: boolean; log: Record<string, unknown>[] }): Record<string, unknown> {
  const route: Record<string, unknown> = { cluster, timeout: `${opts.perRequestTimeoutS ?? DEFAULT_PER_REQUEST_TIMEOUT_S}s` };
  if (opts.retries) {
    route['retry_policy'] = {
      retry_on: 'connect-failure,refused-stream,reset,retriable-status-codes',
      retriable_status_codes: [503],
      num_retries: 2,
      retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } }],
      host_selection_retry_max_attempts: 3,
    };
  }
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': HCM,
      stat_prefix: statPrefix,
      common_http_protocol_options: { idle_timeout: `${opts.idleTimeoutS ?? DEFAULT_HTTP_IDLE_TIMEOUT_S}s` },
      route_config: { name: statPrefix, virtual_hosts: [{ name: statPrefix, domains: ['*'], routes: [{ match: { prefix: '/' }, route }] }] },
      http_filters: [ROUTER],
      ...(opts.log.length > 0 ? { access_log: opts.log } : {}),
    },
  };
}

function tcpFilter(statPrefix: string, cluster: string, idleTimeoutS: number | null, log: Record<string, unknown>[]): Record<string, unknown> {
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
      stat_prefix: statPrefix,
      cluster,
      idle_timeout: `${idleTimeoutS ?? DEFAULT_TCP_IDLE_TIMEOUT_S}s`,
      ...(log.length > 0 ? { access_log: log } : {}),
    },
  };
}

export function renderResources(snapshot: DiscoverySnapshot, vips: VipSource, self: SelfTask): ResourceFiles {
  const listeners: Record<string, unknown>[] = [];
  const clusters: Record<string, unknown>[] = [];
  const log = accessLog(self.config);

  const names = [...snapshot.services.keys()].sort();
  for (const name of names) {
    const service = snapshot.services.get(name);
    if (service === undefined) continue;
    const target = callTarget(service, snapshot.namespace);
    if (target === null) continue;
    const vip = vips.vipOf(name);
    if (vip === null) continue;
    const cluster = NAMING.outboundCluster(service.protocol, name);
    const filter =
      service.protocol === 'tcp'
        ? tcpFilter(`egress_${name}`, cluster, service.idleTimeoutS, log)
        : httpFilter(`egress_${name}`, cluster, { perRequestTimeoutS: service.perRequestTimeoutS, idleTimeoutS: service.idleTimeoutS, retries: true, log });
    listeners.push({
      '@type': LISTENER,
      name: `out_${name}`,
      traffic_direction: 'OUTBOUND',
      address: { socket_address: { address: vip, port_value: target.port } },
      filter_chains: [{ filters: [filter] }],
    });
    clusters.push({
      '@type': CLUSTER,
      name: cluster,
      type: 'STATIC',
      connect_timeout: '2s',
      lb_policy: 'ROUND_ROBIN',
      load_assignment: {
        cluster_name: cluster,
        endpoints: [{ lb_endpoints: service.endpoints.map((e) => ({ endpoint: { address: { socket_address: { address: e.ip, port_value: e.port } } } })) }],
      },
      // Passive health: hosts that fail (5xx or connection failures) are ejected; up to half the hosts may be.
      outlier_detection: { consecutive_5xx: 3, consecutive_gateway_failure: 3, interval: '2s', base_ejection_time: '30s', max_ejection_percent: 50 },
      circuit_breakers: { thresholds: [{ priority: 'DEFAULT', max_connections: 1024, max_pending_requests: 1024, max_requests: 1024, max_retries: 10 }] },
      ...http2Options(service.protocol),
    });
  }

  for (const s of self.config.services) {
    const appCluster = `scapp_${s.protocol}_${s.discoveryName}`;
    const statPrefix = NAMING.inboundPrefix(s.protocol, s.discoveryName);
    const filter =
      s.protocol === 'tcp'
        ? tcpFilter(statPrefix, appCluster, s.idleTimeoutS, log)
        : httpFilter(statPrefix, appCluster, { perRequestTimeoutS: s.perRequestTimeoutS, idleTimeoutS: s.idleTimeoutS, retries: false, log });
    listeners.push({
      '@type': LISTENER,
      name: `in_${s.discoveryName}`,
      traffic_direction: 'INBOUND',
      address: { socket_address: { address: self.taskIp, port_value: s.ingressPort } },
      filter_chains: [{ filters: [filter] }],
    });
    clusters.push({
      '@type': CLUSTER,
      name: appCluster,
      type: 'STATIC',
      connect_timeout: '1s',
      load_assignment: { cluster_name: appCluster, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: self.appIp, port_value: s.containerPort } } } }] }] },
      ...http2Options(s.protocol),
    });
  }
  return { lds: { resources: listeners }, cds: { resources: clusters } };
}
