/**
 * Every environment variable the agent reads, one row each. This table is the single source for readConfig's
 * parsing, `agent --help`, docs/configuration.md and the redacted effective-configuration log line.
 *
 * Names, defaults and ranges follow the reference agent (aws/amazon-ecs-service-connect-agent), so the binary is a
 * drop-in for what the ECS agent sets. The difference: a bad value is an error naming the variable, never a silent
 * fallback to the default.
 */
import {
  absolutePath,
  boolean,
  decimal,
  duration,
  host,
  integer,
  ipAddress,
  ipv4Address,
  isIpString,
  isPort,
  jsonObjectOf,
  oneOf,
  text,
  type Parser,
} from './parsers.ts';
import { CA_BUNDLES } from '../../relay/index.ts';

/** Where a variable applies. `all` is every mode. */
export type Scope = 'all' | 'ecs' | 'relay' | 'cloudmap' | 'ecs+cloudmap';

export interface EnvVar {
  readonly name: string;
  readonly parser: Parser<unknown>;
  /** The default as the user would write it; undefined when unset means "not used". */
  readonly default?: string;
  /** For docs and --help: a default the agent works out at start (no fixed value), in words. */
  readonly defaultDoc?: string;
  readonly unit?: string;
  readonly scope: Scope;
  readonly doc: string;
  /** How this row differs from the reference agent, when it does. */
  readonly vsReference?: string;
  readonly secret?: boolean;
}

/** Relay mode's CA bundles (relay/config.ts), for the APPNET_RELAY_CA_FILE row's text. */
export { CA_BUNDLES };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'warning', 'error', 'critical', 'off'] as const;
export type EnvoyLogLevel = (typeof LOG_LEVELS)[number];

const port = integer(1, 65535);

/** The rows with their literal types (names, parsers), from which VarName and ValueOf are derived. */
const rows = [
  // ── Process and Envoy ────────────────────────────────────────────────────────────────────────────────────────
  {
    name: 'ENVOY_BINARY',
    parser: absolutePath,
    default: '/usr/bin/envoy',
    scope: 'all',
    doc: 'The Envoy binary the agent runs. The container image has it at /usr/bin/envoy.',
    vsReference: 'new (the reference hard-codes /usr/bin/envoy)',
  },
  {
    name: 'ENVOY_CONFIG_FILE',
    parser: absolutePath,
    scope: 'all',
    doc: "A bootstrap file. When it exists and is not empty it is used as given and never rewritten, in every mode, and the agent reaches Envoy's admin at the address it names; when it is empty or missing, the rendered bootstrap is written there. Unset: the agent writes the bootstrap into APPNET_RUNTIME_DIR. YAML files over 256 KiB are read for their admin block only; Envoy checks the rest.",
    vsReference: 'relay mode no longer deletes and overwrites a user file',
  },
  {
    name: 'APPNET_RUNTIME_DIR',
    parser: absolutePath,
    defaultDoc: '/tmp/appnet-agent-<random>',
    scope: 'all',
    doc: "Directory for files the agent writes for Envoy: the bootstrap, Envoy's admin socket and access log (unless set), X-Ray sampling rules, and in Cloud Map mode the LDS and CDS files. Created with mode 0700. Unset: a new directory for each agent, removed when it stops, so two agents on one host never share files. Set: the agent holds it while it runs (a lock socket `agent.lock` inside); an agent started with a directory another live agent holds stops with AGENT_ERR_LISTEN.",
    vsReference: 'new',
  },
  {
    name: 'ENVOY_LOG_LEVEL',
    parser: oneOf(LOG_LEVELS, { caseInsensitive: true }),
    default: 'info',
    scope: 'all',
    doc: "Envoy's log level (-l) and the baseline that /enableLogging returns to.",
    vsReference: 'an unknown level is an error instead of falling back to info',
  },
  {
    name: 'APPNET_AGENT_LOG_LEVEL',
    parser: oneOf(['debug', 'info', 'warn', 'error'], { caseInsensitive: true }),
    scope: 'all',
    doc: "The agent's own log level (JSON lines on stdout). Unset: follows ENVOY_LOG_LEVEL as the reference does (trace and debug: debug; warn and warning: warn; error and critical: error; otherwise info).",
    vsReference: 'new',
  },
  {
    name: 'ENVOY_CONCURRENCY',
    parser: integer(-1, 1024),
    default: '-1',
    scope: 'all',
    doc: 'Envoy worker threads (--concurrency). 0 or -1: Envoy decides, except in relay mode, where it is 1.',
  },
  {
    name: 'DISABLE_HOT_RESTART',
    parser: boolean,
    default: 'true',
    scope: 'all',
    doc: 'Pass --disable-hot-restart to Envoy.',
  },
  {
    name: 'ENVOY_SKIP_DEPRECATED_LOGS',
    parser: boolean,
    default: 'true',
    scope: 'all',
    doc: 'Pass --skip-deprecated-logs to Envoy.',
  },
  {
    name: 'APPNET_ENVOY_RESTART_COUNT',
    parser: integer(0, 10),
    default: '3',
    scope: 'all',
    doc: 'How many times Envoy is restarted after it exits, with exponential backoff. When spent, the agent exits non-zero.',
    vsReference: 'backoff between restarts; a spent budget exits non-zero instead of 0',
  },
  {
    name: 'PID_POLL_INTERVAL_MS',
    parser: integer(100, 1000),
    default: '100',
    unit: 'ms',
    scope: 'all',
    doc: "Accepted for compatibility. The agent learns of Envoy's exit from the process exit event at once, so it does not poll the pid.",
  },
  {
    name: 'LISTENER_DRAIN_WAIT_TIME_S',
    parser: integer(5, 110),
    default: '20',
    unit: 's',
    scope: 'all',
    doc: "Envoy's --drain-time-s, and the longest the agent waits on SIGTERM for connections to close before stopping Envoy.",
    vsReference: 'the wait ends early when Envoy reports no active connections',
  },
  // ── Health ───────────────────────────────────────────────────────────────────────────────────────────────────
  {
    name: 'HC_POLL_INTERVAL_MS',
    parser: integer(2000, 30000),
    default: '10000',
    unit: 'ms',
    scope: 'all',
    doc: "How often the agent polls Envoy's readiness and control-plane connection. Until Envoy is first LIVE it polls every 250 ms. Unset: APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S × 1000 when that is set.",
  },
  {
    name: 'HC_DISCONNECTED_TIMEOUT_S',
    parser: integer(3600, 604800),
    default: '604800',
    unit: 's',
    scope: 'ecs',
    doc: 'How long Envoy may be disconnected from the management server before the agent reports UNHEALTHY.',
  },
  {
    name: 'APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S',
    parser: integer(1, 30),
    default: '5',
    unit: 's',
    scope: 'all',
    doc: '`agent healthcheck --wait`: time between checks. Also the health poll interval when HC_POLL_INTERVAL_MS is unset.',
  },
  {
    name: 'APPNET_AGENT_POLL_ENVOY_READINESS_TIMEOUT_S',
    parser: integer(0, 3600),
    default: '180',
    unit: 's',
    scope: 'all',
    doc: '`agent healthcheck --wait`: give up after this long. 0: check once.',
  },
  // ── Management interface ─────────────────────────────────────────────────────────────────────────────────────
  {
    name: 'APPNET_AGENT_ADMIN_MODE',
    parser: oneOf(['tcp', 'uds'], { caseInsensitive: true }),
    scope: 'all',
    doc: 'Serve the management interface (/status, /ready, /drain_listeners, /enableLogging, /stats/prometheus) over tcp or uds. Unset: no management interface, as in the reference.',
    vsReference: 'an unknown mode is an error instead of tcp',
  },
  {
    name: 'APPNET_AGENT_HTTP_PORT',
    parser: port,
    default: '9902',
    scope: 'all',
    doc: 'Management interface TCP port (tcp mode).',
  },
  {
    name: 'APPNET_AGENT_HTTP_BIND_ADDRESS',
    parser: ipAddress,
    default: '127.0.0.1',
    scope: 'all',
    doc: 'Management interface bind address (tcp mode). IPv6 with or without brackets. `::` is every interface, dual-stack: set it to be reached from outside the task.',
    vsReference: 'default loopback instead of every interface ([::]); a bare IPv6 address works',
  },
  {
    name: 'APPNET_AGENT_ADMIN_UDS_PATH',
    parser: absolutePath,
    default: '/var/run/ecs/appnet_admin.sock',
    scope: 'all',
    doc: "Management interface socket (uds mode), where the ECS agent and `agent healthcheck` find the agent. Created with mode 0600. A socket another live agent serves on is an error (AGENT_ERR_LISTEN), a stale socket file is replaced, and any other file at the path is an error and is left as it was.",
  },
  {
    name: 'APPNET_AGENT_LOGGING_RESET_TIMEOUT',
    parser: integer(1, 86400),
    default: '300',
    unit: 's',
    scope: 'all',
    doc: "/enableLogging: the level reverts after this long unless permanent=true.",
  },
  {
    name: 'ENABLE_STATS_SNAPSHOT',
    parser: boolean,
    default: 'true',
    scope: 'all',
    doc: 'Take a stats snapshot every APPNET_STATS_SNAPSHOT_INTERVAL_S for /stats/prometheus?delta.',
    vsReference: 'default true: the reference silently answered delta with cumulative values when this was off',
  },
  {
    name: 'APPNET_STATS_SNAPSHOT_INTERVAL_S',
    parser: integer(1, 3600),
    default: '60',
    unit: 's',
    scope: 'all',
    doc: 'Interval between stats snapshots; delta is the change over the last completed interval. ECS scrapes every 60 s.',
    vsReference: 'new (fixed at 60 s in the reference)',
  },
  // ── Envoy admin ──────────────────────────────────────────────────────────────────────────────────────────────
  {
    name: 'ENVOY_ADMIN_MODE',
    parser: oneOf(['tcp', 'uds'], { caseInsensitive: true }),
    default: 'uds',
    scope: 'all',
    doc: "Envoy's admin interface on a Unix socket (mode 0600) or on TCP.",
    vsReference: 'default uds: the reference default exposes admin, /quitquitquit included, on 0.0.0.0',
  },
  {
    name: 'ENVOY_ADMIN_UDS_PATH',
    parser: absolutePath,
    defaultDoc: '<APPNET_RUNTIME_DIR>/envoy_admin.sock',
    scope: 'all',
    doc: "Envoy's admin socket (uds mode). A socket another live Envoy serves on is an error (AGENT_ERR_LISTEN): the agent would otherwise drive the other agent's Envoy; a stale one is replaced; any other file is an error.",
    vsReference: 'new (fixed at /tmp/envoy_admin.sock in the reference)',
  },
  {
    name: 'ENVOY_ADMIN_ACCESS_PORT',
    parser: port,
    default: '9901',
    scope: 'all',
    doc: "Envoy's admin port (tcp mode). A port something already listens on is an error (AGENT_ERR_LISTEN): the agent would otherwise drive that process as its Envoy.",
  },
  {
    name: 'ENVOY_ADMIN_ACCESS_ADDRESS',
    parser: ipAddress,
    default: '127.0.0.1',
    scope: 'all',
    doc: "Envoy's admin bind address (tcp mode).",
    vsReference: 'new; the reference binds 0.0.0.0',
  },
  {
    name: 'ENVOY_ADMIN_ACCESS_ENABLE_IPV6',
    parser: boolean,
    default: 'false',
    scope: 'all',
    doc: 'tcp mode: bind admin on `::` with IPv4 compatibility (all interfaces), as the reference does.',
  },
  {
    name: 'ENVOY_ADMIN_ACCESS_LOG_FILE',
    parser: absolutePath,
    defaultDoc: '<APPNET_RUNTIME_DIR>/envoy_admin_access.log',
    scope: 'all',
    doc: "Envoy's admin access log.",
    vsReference: 'default inside the runtime directory instead of /tmp/envoy_admin_access.log',
  },
  // ── Logs ─────────────────────────────────────────────────────────────────────────────────────────────────────
  {
    name: 'APPNET_ENVOY_LOG_DESTINATION',
    parser: absolutePath,
    scope: 'all',
    doc: "Directory for Envoy's log file, rotated by size. Unset: Envoy's output goes to the agent's stdout and stderr.",
  },
  {
    name: 'APPNET_ENVOY_LOG_NAME',
    parser: { ...text, rule: 'must be a file name without /', parse: (r) => (r.includes('/') ? { ok: false, rule: 'must be a file name without /' } : { ok: true, value: r }) },
    default: 'appnet_envoy.log',
    scope: 'all',
    doc: 'Log file name inside APPNET_ENVOY_LOG_DESTINATION.',
  },
  {
    name: 'APPNET_AGENT_MAX_LOG_FILE_SIZE',
    parser: decimal(0, 1024, { exclusiveMin: true }),
    default: '1',
    unit: 'MiB',
    scope: 'all',
    doc: 'Rotate the log file when it grows past this size.',
  },
  {
    name: 'APPNET_AGENT_MAX_RETENTION_COUNT',
    parser: integer(1, 100),
    default: '5',
    scope: 'all',
    doc: 'Rotated log files kept.',
  },
  // ── Mode selection and xDS ───────────────────────────────────────────────────────────────────────────────────
  {
    name: 'APPMESH_XDS_ENDPOINT',
    parser: text,
    scope: 'ecs+cloudmap',
    doc: 'ECS-managed mode: `unix://<path>` of the relay socket that carries ADS. Relay mode: the management server URL (`https://host[:port]`).',
    vsReference: 'App Mesh regional endpoints are not supported (App Mesh ended 2026-09-30)',
  },
  {
    name: 'APPNET_ENABLE_RELAY_MODE_FOR_XDS',
    parser: boolean,
    default: 'false',
    scope: 'all',
    doc: 'Run as the per-instance xDS relay.',
  },
  {
    name: 'APPNET_SERVICE_CONNECT_CONFIG',
    parser: text,
    scope: 'cloudmap',
    doc: "Cloud Map mode: the Service Connect configuration as JSON (ECS's serviceConnectConfiguration plus the task definition's portMappings).",
    vsReference: 'new',
  },
  {
    name: 'APPNET_SERVICE_CONNECT_CONFIG_FILE',
    parser: absolutePath,
    scope: 'cloudmap',
    doc: 'Cloud Map mode: a file with the same JSON document as APPNET_SERVICE_CONNECT_CONFIG.',
    vsReference: 'new',
  },
  {
    name: 'APPNET_HOSTS_FILE',
    parser: absolutePath,
    default: '/etc/hosts',
    scope: 'cloudmap',
    doc: 'Cloud Map mode: the hosts file that gets the managed block of alias names. Rewritten in place (it is a bind mount).',
    vsReference: 'new',
  },
  {
    name: 'APPNET_TASK_IPV4',
    parser: ipv4Address,
    scope: 'cloudmap',
    doc: "Cloud Map mode: the task's IPv4 address, where there is no task metadata endpoint. Inbound listeners bind it and instances are registered with it. Required then when the Service Connect document has services.",
    vsReference: 'new',
  },
  {
    name: 'APPNET_TASK_ID',
    parser: { ...text, rule: 'must be 1 to 64 letters, digits, - or _', parse: (r) => (/^[A-Za-z0-9_-]{1,64}$/.test(r) ? { ok: true, value: r } : { ok: false, rule: 'must be 1 to 64 letters, digits, - or _' }) },
    scope: 'cloudmap',
    doc: "Cloud Map mode: the task's id, used in instance ids, where there is no task metadata endpoint. Required then when the Service Connect document has services.",
    vsReference: 'new',
  },
  {
    name: 'APPNET_AVAILABILITY_ZONE',
    parser: text,
    scope: 'cloudmap',
    doc: "Cloud Map mode: the task's availability zone, where there is no task metadata endpoint.",
    vsReference: 'new',
  },
  {
    name: 'APPNET_VIP_CIDR',
    parser: {
      type: 'cidr',
      rule: 'must be an IPv4 CIDR inside 127.0.0.0/8 with a prefix from 8 to 30, such as 127.255.0.0/16',
      parse: (raw) => {
        const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(raw);
        const rule = 'must be an IPv4 CIDR inside 127.0.0.0/8 with a prefix from 8 to 30, such as 127.255.0.0/16';
        if (m === null || m.slice(1, 4).some((o) => Number(o) > 255) || Number(m[4]) < 8 || Number(m[4]) > 30) return { ok: false, rule };
        return { ok: true, value: raw };
      },
    },
    default: '127.255.0.0/16',
    scope: 'cloudmap',
    doc: "Cloud Map mode: the range virtual IPs come from, the first one first (127.255.0.1). ECS gives each task this range as egressConfig.vip.ipv4Cidr; tasks sharing one network namespace (a local mesh) need ranges of their own.",
    vsReference: 'new',
  },
  {
    name: 'APPNET_CLOUD_MAP_POLL_INTERVAL_MS',
    parser: integer(200, 300000),
    default: '1000',
    unit: 'ms',
    scope: 'cloudmap',
    doc: 'Cloud Map mode: the poll interval. Services the task calls are checked at most once a poll, others up to 5 a poll round robin, both within the fleet budget (APPNET_CLOUD_MAP_QUOTA_PERCENT); instances are fetched only when a revision changed (docs/cloud-map.md, "Scale").',
    vsReference: 'new',
  },
  {
    name: 'APPNET_CLOUD_MAP_QUOTA_PERCENT',
    parser: integer(1, 100),
    default: '40',
    unit: '%',
    scope: 'cloudmap',
    doc: "Cloud Map mode: the share of the account's Cloud Map quotas (DiscoverInstances 1,000/s, DiscoverInstancesRevision 3,000/s per Region) the whole fleet of agents may use. Each agent takes this share divided by the fleet, which it estimates as the number of instances in the namespace (docs/cloud-map.md, \"Scale\").",
    vsReference: 'new',
  },
  {
    name: 'APPNET_CONTAINER_IP_MAPPING',
    parser: jsonObjectOf('IP addresses', isIpString),
    scope: 'ecs+cloudmap',
    doc: 'JSON object container name → IP (bridge mode, or ::1 in IPv6-only awsvpc). Node metadata aws.ecs.serviceconnect.ClusterIPMapping; in Cloud Map mode the address inbound listeners forward to.',
    vsReference: 'malformed JSON is an error instead of being dropped with a warning',
  },
  {
    name: 'APPNET_LISTENER_PORT_MAPPING',
    parser: jsonObjectOf('ports from 1 to 65535', isPort),
    scope: 'ecs',
    doc: 'JSON object listener name → port, set by the ECS agent. Node metadata aws.ecs.serviceconnect.ListenerPortMapping.',
    vsReference: 'malformed JSON is an error instead of being dropped with a warning',
  },
  // ── Node identity ────────────────────────────────────────────────────────────────────────────────────────────
  {
    name: 'APPMESH_RESOURCE_ARN',
    parser: text,
    scope: 'ecs',
    doc: "Envoy's node id (ECS sets the task set ARN). Required in ECS-managed mode; falls back to APPMESH_RESOURCE_NAME, then APPMESH_VIRTUAL_NODE_NAME.",
  },
  { name: 'APPMESH_RESOURCE_NAME', parser: text, scope: 'ecs', doc: 'Node id when APPMESH_RESOURCE_ARN is unset.' },
  { name: 'APPMESH_VIRTUAL_NODE_NAME', parser: text, scope: 'ecs', doc: 'Node id when the two above are unset.' },
  {
    name: 'APPMESH_RESOURCE_CLUSTER',
    parser: text,
    scope: 'ecs',
    doc: "Envoy's node cluster; default: the node id. Falls back to APPMESH_VIRTUAL_NODE_CLUSTER.",
  },
  { name: 'APPMESH_VIRTUAL_NODE_CLUSTER', parser: text, scope: 'ecs', doc: 'Node cluster when APPMESH_RESOURCE_CLUSTER is unset.' },
  {
    name: 'AWS_REGION',
    parser: { ...text, rule: 'must be an AWS region such as us-west-2', parse: (r) => (/^[a-z]{2}(-[a-z]+)+-\d+$/.test(r) ? { ok: true, value: r } : { ok: false, rule: 'must be an AWS region such as us-west-2' }) },
    scope: 'all',
    doc: 'Region for node locality, relay SigV4 signing and the default relay endpoint, and the Cloud Map client\'s region. Required in relay and Cloud Map modes.',
    vsReference: 'never looked up through IMDS',
  },
  {
    name: 'APPMESH_SIGNING_NAME',
    parser: text,
    default: 'appmesh',
    scope: 'relay',
    doc: 'Relay mode: the SigV4 service name.',
  },
  { name: 'NAMESPACE_NAME', parser: text, scope: 'ecs', doc: 'Node metadata aws.ecs.serviceconnect.ServiceDiscovery.NamespaceName.' },
  { name: 'NAMESPACE_ARN', parser: text, scope: 'ecs', doc: 'Node metadata aws.ecs.serviceconnect.ServiceDiscovery.NamespaceArn.' },
  {
    name: 'AWS_EXECUTION_ENV',
    parser: text,
    scope: 'ecs',
    doc: 'ECS launch type (AWS_ECS_EC2, AWS_ECS_FARGATE). Its presence adds ecsPlatformInfo to node metadata.',
  },
  { name: 'ECS_CONTAINER_INSTANCE_ARN', parser: text, scope: 'ecs', doc: 'Node metadata ecsPlatformInfo.ecsContainerInstanceArn.' },
  {
    name: 'ECS_CONTAINER_METADATA_URI_V4',
    parser: { ...text, rule: 'must be an http:// URL', parse: (r) => (/^https?:\/\/[^\s]+$/.test(r) ? { ok: true, value: r.replace(/\/+$/, '') } : { ok: false, rule: 'must be an http:// URL' }) },
    scope: 'ecs+cloudmap',
    doc: 'Task metadata endpoint v4: cluster, task ARN, availability zone and IP families for node metadata, and the task identity in Cloud Map mode. Read with a 2 s timeout.',
    vsReference: 'requests have a timeout',
  },
  {
    name: 'APPNET_FIPS_MODE_ENABLED',
    parser: boolean,
    default: 'false',
    scope: 'ecs',
    doc: 'Adds fipsModeEnabled to node metadata platformInfo.',
    vsReference: 'an invalid value is an error instead of dropping all platform info',
  },
  {
    name: 'ENVOY_ENABLE_IAM_AUTH_FOR_XDS',
    parser: boolean,
    default: 'false',
    scope: 'ecs',
    doc: 'Accepted because ECS sets it to 0. Sidecars never sign: the relay does.',
  },
  // ── Bootstrap details ────────────────────────────────────────────────────────────────────────────────────────
  {
    name: 'ENVOY_INITIAL_FETCH_TIMEOUT',
    parser: integer(0, 3600),
    default: '0',
    unit: 's',
    scope: 'ecs',
    doc: 'LDS and CDS initial fetch timeout. 0: wait for ever.',
    vsReference: 'negative values are an error',
  },
  {
    name: 'APPMESH_SET_TRACING_DECISION',
    parser: boolean,
    default: 'true',
    scope: 'all',
    doc: 'Runtime envoy.reloadable_features.http_set_tracing_decision_in_request_id. Envoy 1.40 removed this guard and behaves as true; false is still passed on.',
  },
  {
    name: 'ENVOY_NO_EXTENSION_LOOKUP_BY_NAME',
    parser: boolean,
    default: 'true',
    scope: 'all',
    doc: 'Runtime envoy.reloadable_features.no_extension_lookup_by_name. Envoy 1.40 removed this guard and behaves as true; false is still passed on.',
  },
  {
    name: 'ENVOY_USE_HTTP_CLIENT_TO_FETCH_AWS_CREDENTIALS',
    parser: boolean,
    default: 'false',
    scope: 'all',
    doc: 'Runtime envoy.reloadable_features.use_http_client_to_fetch_aws_credentials. Envoy 1.40 removed this guard and behaves as false; true is still passed on.',
  },
  {
    name: 'MAX_REQUESTS_PER_IO_CYCLE',
    parser: integer(-1, 1_000_000),
    default: '-1',
    scope: 'all',
    doc: 'Runtime http.max_requests_per_io_cycle when greater than 0.',
  },
  {
    name: 'ENVOY_OUTLIER_DETECTION_EVENT_LOG_PATH',
    parser: absolutePath,
    scope: 'all',
    doc: 'Outlier detection event log, e.g. /dev/stdout in a container. Unset: no event log.',
    vsReference: 'unset by default: the reference default /dev/stdout cannot be opened when stdout is a socket (systemd, Node pipes), and Envoy then refuses to start',
  },
  {
    name: 'APPMESH_SDS_SOCKET_PATH',
    parser: absolutePath,
    scope: 'ecs',
    doc: 'Adds the static cluster static_cluster_sds_unix_socket over this socket.',
  },
  // ── Tracing ──────────────────────────────────────────────────────────────────────────────────────────────────
  { name: 'ENABLE_ENVOY_XRAY_TRACING', parser: boolean, default: 'false', scope: 'ecs+cloudmap', doc: 'X-Ray tracer. At most one tracer.' },
  { name: 'ENABLE_ENVOY_DATADOG_TRACING', parser: boolean, default: 'false', scope: 'ecs+cloudmap', doc: 'Datadog tracer. At most one tracer.' },
  { name: 'ENABLE_ENVOY_JAEGER_TRACING', parser: boolean, default: 'false', scope: 'ecs+cloudmap', doc: 'Zipkin/Jaeger tracer. At most one tracer.' },
  { name: 'XRAY_DAEMON_PORT', parser: port, default: '2000', scope: 'ecs+cloudmap', doc: 'X-Ray daemon UDP port.' },
  {
    name: 'AWS_XRAY_DAEMON_ADDRESS',
    parser: text,
    scope: 'ecs+cloudmap',
    doc: 'X-Ray daemon: an IP (`127.0.0.1`, `::1`), `ip:port`, `[ipv6]:port`, or the SDK form `tcp:ip:port udp:ip:port` (the UDP part is used). Default 127.0.0.1 and XRAY_DAEMON_PORT.',
    vsReference: 'bare IPv6 and the two-address SDK form work',
  },
  { name: 'XRAY_SAMPLING_RATE', parser: decimal(0, 1), scope: 'ecs+cloudmap', doc: 'X-Ray sampling rate, rounded to 2 decimals; 0.05 is X-Ray\'s default and adds no rules file.' },
  { name: 'XRAY_SAMPLING_RULE_MANIFEST', parser: absolutePath, scope: 'ecs+cloudmap', doc: 'X-Ray sampling rules file (version 2); wins over XRAY_SAMPLING_RATE.' },
  { name: 'XRAY_SEGMENT_NAME', parser: text, scope: 'ecs+cloudmap', doc: 'X-Ray segment name. Default: the node cluster.' },
  { name: 'DATADOG_TRACER_ADDRESS', parser: host, default: '127.0.0.1', scope: 'ecs+cloudmap', doc: 'Datadog agent host.' },
  { name: 'DATADOG_TRACER_PORT', parser: port, default: '8126', scope: 'ecs+cloudmap', doc: 'Datadog agent port.' },
  { name: 'DD_SERVICE', parser: text, scope: 'ecs+cloudmap', doc: 'Datadog service name. Default: envoy-<node cluster>.' },
  { name: 'JAEGER_TRACER_ADDRESS', parser: host, default: '127.0.0.1', scope: 'ecs+cloudmap', doc: 'Zipkin/Jaeger collector host.' },
  { name: 'JAEGER_TRACER_PORT', parser: port, default: '9411', scope: 'ecs+cloudmap', doc: 'Zipkin/Jaeger collector port.' },
  {
    name: 'JAEGER_TRACER_VERSION',
    parser: oneOf(['proto', 'json'], { caseInsensitive: true }),
    default: 'proto',
    scope: 'ecs+cloudmap',
    doc: 'Zipkin collector encoding: HTTP_PROTO or HTTP_JSON.',
    vsReference: 'only proto or json; the reference took anything containing "json"',
  },
  // ── Stats ────────────────────────────────────────────────────────────────────────────────────────────────────
  {
    name: 'APPMESH_METRIC_EXTENSION_VERSION',
    parser: oneOf(['0', '1']),
    default: '0',
    scope: 'ecs',
    doc: '1: the Service Connect stats tags (ServiceName, ClusterName, Direction, DiscoveryName, TargetDiscoveryName) and node metadata aws.appmesh.metric_filter. Cloud Map mode always tags.',
  },
  {
    name: 'ENABLE_ENVOY_STATS_TAGS',
    parser: boolean,
    default: 'false',
    scope: 'ecs',
    doc: 'Fixed tags appmesh.mesh and appmesh.<resource type> from a node id of the form mesh/<mesh>/<type>/<name>.',
  },
  {
    name: 'ENVOY_STATS_FLUSH_INTERVAL',
    parser: duration(1, 3_600_000),
    scope: 'all',
    doc: "Envoy's stats_flush_interval. Unset: Envoy's default (5 s).",
  },
  { name: 'ENABLE_ENVOY_DOG_STATSD', parser: boolean, default: 'false', scope: 'all', doc: 'DogStatsD stats sink.' },
  { name: 'STATSD_SOCKET_PATH', parser: absolutePath, scope: 'all', doc: 'DogStatsD over this Unix socket; wins over address and port.' },
  { name: 'STATSD_ADDRESS', parser: ipAddress, default: '127.0.0.1', scope: 'all', doc: 'DogStatsD UDP address.' },
  { name: 'STATSD_PORT', parser: port, default: '8125', scope: 'all', doc: 'DogStatsD UDP port.' },
  // ── Custom files merged into the bootstrap ───────────────────────────────────────────────────────────────────
  { name: 'ENVOY_TRACING_CFG_FILE', parser: absolutePath, scope: 'ecs+cloudmap', doc: 'YAML merged into the bootstrap; replaces the built-in tracer.' },
  { name: 'ENVOY_STATS_CONFIG_FILE', parser: absolutePath, scope: 'ecs+cloudmap', doc: 'YAML merged into the bootstrap; replaces the built-in stats tags.' },
  { name: 'ENVOY_STATS_SINKS_CFG_FILE', parser: absolutePath, scope: 'ecs+cloudmap', doc: 'YAML merged into the bootstrap; replaces DogStatsD and must define stats_sinks.' },
  { name: 'ENVOY_RESOURCES_CONFIG_FILE', parser: absolutePath, scope: 'ecs+cloudmap', doc: 'YAML merged into the bootstrap: static listeners, clusters and secrets are added; any other setting is added where the agent sets nothing.' },
  // ── Relay ────────────────────────────────────────────────────────────────────────────────────────────────────
  {
    name: 'APPNET_RELAY_LISTENER_UDS_PATH',
    parser: absolutePath,
    default: '/tmp/relay_xds.sock',
    scope: 'relay',
    doc: 'Relay mode: the socket sidecars send ADS to (mode 0600). A socket another live relay serves on is an error (AGENT_ERR_LISTEN), a stale one is replaced, any other file is an error.',
  },
  {
    name: 'APPNET_MANAGEMENT_DOMAIN_NAME',
    parser: host,
    scope: 'relay',
    doc: 'Relay mode: the management server host (TLS SNI, SigV4 host). Default: from APPMESH_XDS_ENDPOINT, else ecs-sc.<region>.api.aws.',
    vsReference: 'honoured when set (the reference always overwrote it)',
  },
  {
    name: 'APPNET_MANAGEMENT_PORT',
    parser: port,
    default: '443',
    scope: 'relay',
    doc: 'Relay mode: the management server port. A port in APPMESH_XDS_ENDPOINT wins.',
    vsReference: 'a port in APPMESH_XDS_ENDPOINT is used as the port, not kept in the domain',
  },
  {
    name: 'APPNET_RELAY_CA_FILE',
    parser: absolutePath,
    defaultDoc: '/etc/pki/tls/cert.pem, else the system CA bundle',
    scope: 'relay',
    doc: `Relay mode: CA bundle (PEM) that verifies the management server. Unset: the first of ${CA_BUNDLES.join(', ')} that exists. Set: it must be a readable PEM file; a missing one is a configuration error.`,
    vsReference: 'new (fixed at /etc/pki/tls/cert.pem, an Amazon Linux path, in the reference)',
  },
  {
    name: 'RELAY_STREAM_IDLE_TIMEOUT',
    parser: duration(1000, 86_400_000),
    default: '2400s',
    scope: 'relay',
    doc: 'Relay mode: stream idle timeout.',
    vsReference: 'validated',
  },
  {
    name: 'RELAY_BUFFER_LIMIT_BYTES',
    parser: integer(1024, 2_147_483_647),
    default: '10485760',
    unit: 'bytes',
    scope: 'relay',
    doc: 'Relay mode: per-connection buffer limit, listener and cluster.',
  },
] as const satisfies readonly EnvVar[];

export const envTable: readonly EnvVar[] = rows;

export const envTableByName: ReadonlyMap<string, EnvVar> = new Map(envTable.map((row) => [row.name, row]));

/** The name of a row of the table. */
export type VarName = (typeof rows)[number]['name'];
/** A row's parsed value, by its name: the rows are typed, so readers need no casts. */
export type ValueOf<N extends VarName> = Extract<(typeof rows)[number], { readonly name: N }>['parser'] extends Parser<infer T> ? T : never;
