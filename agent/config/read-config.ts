/**
 * readConfig(env, io): the environment (and the files it names) → one deep-frozen, typed configuration, or one
 * AgentError listing every problem as `NAME="value": rule`. Never falls back to a default on a bad value.
 *
 * Rows are typed by the table (agent/config/table.ts: ValueOf<'NAME'>); each part of the configuration has its
 * section reader below, over one Reader that parses every row once and collects every problem. Relay mode's section
 * rules are relay/'s (relay/config.ts); the Service Connect document's are in service-connect.ts.
 */
import { yaml, randomName } from '../system/index.ts';
import { readRelaySection, type RelaySettings } from '../../relay/index.ts';
import { configurationError, problem } from './problems.ts';
import { identityProblems, validateServiceConnectConfig, type ServiceConnectConfig } from './service-connect.ts';
import { envTable, envTableByName, type EnvoyLogLevel, type ValueOf, type VarName } from './table.ts';

export type Mode = 'ecs' | 'cloudmap' | 'relay' | 'static';

export type AdminAddress = { readonly kind: 'uds'; readonly path: string } | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

export type Tracing =
  | {
      readonly kind: 'xray';
      readonly daemonAddress: string;
      readonly daemonPort: number;
      readonly segmentName: string;
      /** A user manifest path, or a rate for which the agent writes a rules file; null: X-Ray's default. */
      readonly sampling: { readonly manifestPath: string } | { readonly rate: number } | null;
    }
  | { readonly kind: 'datadog'; readonly address: string; readonly port: number; readonly serviceName: string }
  | { readonly kind: 'zipkin'; readonly address: string; readonly port: number; readonly encoding: 'HTTP_PROTO' | 'HTTP_JSON' };

export interface CustomFile {
  readonly variable: 'ENVOY_TRACING_CFG_FILE' | 'ENVOY_STATS_CONFIG_FILE' | 'ENVOY_STATS_SINKS_CFG_FILE' | 'ENVOY_RESOURCES_CONFIG_FILE';
  readonly path: string;
  readonly document: Readonly<Record<string, unknown>>;
}

export interface Config {
  readonly mode: Mode;
  readonly envoyBinary: string;
  readonly runtimeDir: string;
  /**
   * True when APPNET_RUNTIME_DIR is unset and the agent chose a directory of its own (/tmp/appnet-agent-<random>):
   * the agent removes it when it stops. A configured directory is only held (agent.lock) and never removed.
   */
  readonly runtimeDirOwned: boolean;
  /** The file Envoy is started with. */
  readonly bootstrapPath: string;
  /**
   * A user bootstrap used as given (ENVOY_CONFIG_FILE, non-empty); null when the agent renders one. Only its path is
   * kept: the agent reads its admin address from it at start and never needs the rest (a large bootstrap held for
   * the agent's lifetime was most of its idle memory).
   */
  readonly userBootstrap: { readonly path: string } | null;
  readonly envoyLogLevel: EnvoyLogLevel;
  /** The agent's own level; null: follow envoyLogLevel. */
  readonly agentLogLevel: 'debug' | 'info' | 'warn' | 'error' | null;
  readonly concurrency: number | null;
  readonly drainTimeS: number;
  readonly disableHotRestart: boolean;
  readonly skipDeprecatedLogs: boolean;
  readonly restartCount: number;
  readonly envoyAdmin: { readonly address: AdminAddress; readonly accessLogPath: string; readonly ipv4Compat: boolean };
  readonly agentAdmin: AdminAddress | null;
  readonly loggingResetTimeoutMs: number;
  readonly health: { readonly pollIntervalMs: number; readonly disconnectedTimeoutMs: number };
  readonly readinessProbe: { readonly intervalMs: number; readonly timeoutMs: number };
  readonly stats: { readonly snapshotEnabled: boolean; readonly snapshotIntervalMs: number };
  readonly envoyLog: { readonly dir: string; readonly name: string; readonly maxBytes: number; readonly retention: number } | null;
  readonly region: string | null;
  readonly node: { readonly id: string; readonly cluster: string } | null;
  readonly ecs: {
    readonly xdsSocketUri: string | null;
    readonly listenerPortMapping: Readonly<Record<string, number>> | null;
    readonly containerIpMapping: Readonly<Record<string, string>> | null;
    readonly namespaceName: string | null;
    readonly namespaceArn: string | null;
    readonly executionEnv: string | null;
    readonly containerInstanceArn: string | null;
    readonly metadataUri: string | null;
    readonly fipsModeEnabled: boolean;
    readonly metricExtension: boolean;
    readonly fixedStatsTags: boolean;
    readonly initialFetchTimeoutS: number;
    readonly sdsSocketPath: string | null;
  };
  readonly runtime: {
    readonly setTracingDecision: boolean;
    readonly noExtensionLookupByName: boolean;
    readonly useHttpClientForAwsCredentials: boolean;
    readonly maxRequestsPerIoCycle: number | null;
  };
  readonly outlierEventLogPath: string | null;
  readonly tracing: Tracing | null;
  readonly statsFlushIntervalMs: number | null;
  readonly dogStatsd: { readonly pipe: string } | { readonly address: string; readonly port: number } | null;
  readonly customFiles: readonly CustomFile[];
  /** Relay mode's section (relay/config.ts). */
  readonly relay: RelaySettings | null;
  readonly cloudMap: {
    /** The Service Connect document as given (JSON), and as checked by ECS's rules (agent/config/service-connect.ts). */
    readonly document: unknown;
    readonly serviceConnect: ServiceConnectConfig;
    readonly source: ServiceConnectSource;
    /** AWS_REGION: the Cloud Map client's region (required in this mode). */
    readonly region: string;
    readonly hostsFile: string;
    readonly taskIpv4: string | null;
    readonly taskId: string | null;
    readonly availabilityZone: string | null;
    readonly pollIntervalMs: number;
    /** APPNET_CLOUD_MAP_QUOTA_PERCENT as a fraction. */
    readonly quotaShare: number;
    readonly vipCidr: string;
  } | null;
  /** Variables with the agent's prefixes that are not in the table (likely typos); logged as a warning. */
  readonly unknownVariables: readonly string[];
}

export interface ConfigIo {
  /** Reads a file; throws a Node error (with `code`) when it cannot. */
  readFile(path: string): string;
  /** A fresh random name for the agent's own runtime directory; default: 12 characters from /dev/urandom. */
  randomName?(): string;
}

export type Env = Readonly<Record<string, string | undefined>>;

/** The variable the Service Connect document came from. */
export type ServiceConnectSource = 'APPNET_SERVICE_CONNECT_CONFIG' | 'APPNET_SERVICE_CONNECT_CONFIG_FILE';

/**
 * What every section reader gets: the rows' parsed values (typed by the table), the raw environment, the files it
 * names, and the one list of problems. A row that breaks its rule is listed once, here, and reads as undefined.
 */
interface Reader {
  readonly env: Env;
  readonly io: ConfigIo;
  /** The variable's trimmed value; undefined when unset or blank. */
  given(name: string): string | undefined;
  /** The row's parsed value, its default when unset; undefined when unset without a default, or when it broke its rule. */
  get<N extends VarName>(name: N): ValueOf<N> | undefined;
  /** get() for rows with a default: the value is there unless it broke its rule (listed: readConfig then throws). */
  need<N extends VarName>(name: N): ValueOf<N>;
  isSet(name: VarName): boolean;
  /** Lists one problem: `NAME="value": rule`. */
  problem(name: string, value: string | undefined, rule: string): void;
  /** A file the configuration names, read and parsed (YAML or JSON, a mapping); null after listing why not. */
  readDocument(variable: string, path: string, opts: { allowEmpty: boolean }): Record<string, unknown> | null;
  /** parseDocument for text already read. */
  parseDocument(variable: string, path: string, textContent: string, opts: { allowEmpty: boolean }): Record<string, unknown> | null;
  readonly problems: readonly string[];
}

function createReader(env: Env, io: ConfigIo): Reader {
  const problems: string[] = [];
  const values = new Map<string, unknown>();
  const given = (name: string): string | undefined => {
    const raw = env[name];
    return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
  };
  const add = (name: string, value: string | undefined, rule: string) => problems.push(problem(name, value, rule));
  for (const row of envTable) {
    const raw = given(row.name) ?? row.default;
    if (raw === undefined) continue;
    const parsed = row.parser.parse(raw);
    if (parsed.ok) values.set(row.name, parsed.value);
    else add(row.name, env[row.name] ?? raw, parsed.rule);
  }
  const get = <N extends VarName>(name: N) => values.get(name) as ValueOf<N> | undefined;
  const parseDocument: Reader['parseDocument'] = (variable, path, textContent, opts) => {
    if (textContent.trim() === '') {
      if (!opts.allowEmpty) add(variable, path, 'must name a file that is not empty');
      return null;
    }
    let doc: unknown;
    try {
      // JSON is YAML too, and far cheaper to parse; only real YAML goes through the YAML library.
      doc = textContent.trimStart().startsWith('{') ? parseJsonOrYaml(textContent) : yaml().parse(textContent);
    } catch (err) {
      add(variable, path, `must contain YAML or JSON (${firstLine((err as Error).message)})`);
      return null;
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
      add(variable, path, 'must contain a YAML or JSON mapping');
      return null;
    }
    return doc as Record<string, unknown>;
  };
  return {
    env,
    io,
    given,
    get,
    need: <N extends VarName>(name: N) => get(name) as ValueOf<N>,
    isSet: (name) => given(name) !== undefined,
    problem: add,
    parseDocument,
    readDocument: (variable, path, opts) => {
      let textContent: string;
      try {
        textContent = io.readFile(path);
      } catch (err) {
        add(variable, path, `must name a readable file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
        return null;
      }
      return parseDocument(variable, path, textContent, opts);
    },
    problems,
  };
}

/**
 * The whole configuration, checked before anything is probed or written: every row, every file it names, relay's
 * section, then what sound variables describe (the Service Connect document, Cloud Map's region and identity). One
 * AgentError lists the problems found.
 */
export function readConfig(env: Env, io: ConfigIo): Config {
  const r = createReader(env, io);
  const configuredRuntimeDir = r.get('APPNET_RUNTIME_DIR');
  // Unset: a directory of this agent's own, so that two agents on one host (a shared /tmp, a local mesh, tests)
  // never read each other's listeners or drive each other's Envoy.
  const runtimeDir = configuredRuntimeDir ?? `/tmp/appnet-agent-${(io.randomName ?? randomName)()}`;
  const user = readUserBootstrap(r);
  const mode = readMode(r, user.bootstrap !== null);
  const envoyAdmin = readEnvoyAdmin(r, runtimeDir, user);
  const agentAdmin = readAgentAdmin(r);
  const node = readNode(r, mode, user.bootstrap !== null);
  const tracing = readTracing(r, node.cluster);
  const customFiles = readCustomFiles(r);
  const dogStatsd = readDogStatsd(r);
  const region = r.get('AWS_REGION') ?? null;
  const relay = mode === 'relay' ? readRelay(r, region) : null;
  const cloudMapDocument = mode === 'cloudmap' ? readServiceConnectDocument(r) : null;
  const envoyLog = readEnvoyLog(r);
  if (r.problems.length > 0) throw configurationError(r.problems);
  // The variables are sound; what they describe is checked next, before anything is probed or written.
  const cloudMap = cloudMapDocument === null ? null : checkCloudMap(r, cloudMapDocument, region);

  const { get, need, isSet } = r;
  const hcInterval = isSet('HC_POLL_INTERVAL_MS')
    ? need('HC_POLL_INTERVAL_MS')
    : isSet('APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S')
      ? need('APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S') * 1000
      : need('HC_POLL_INTERVAL_MS');
  const concurrency = need('ENVOY_CONCURRENCY');
  const maxRequests = need('MAX_REQUESTS_PER_IO_CYCLE');
  const configFile = get('ENVOY_CONFIG_FILE');

  const config: Config = {
    mode,
    envoyBinary: need('ENVOY_BINARY'),
    runtimeDir,
    runtimeDirOwned: configuredRuntimeDir === undefined,
    bootstrapPath: configFile ?? `${runtimeDir}/envoy-bootstrap.yaml`,
    userBootstrap: user.bootstrap,
    envoyLogLevel: need('ENVOY_LOG_LEVEL'),
    agentLogLevel: get('APPNET_AGENT_LOG_LEVEL') ?? null,
    concurrency: concurrency > 0 ? concurrency : mode === 'relay' ? 1 : null,
    drainTimeS: need('LISTENER_DRAIN_WAIT_TIME_S'),
    disableHotRestart: need('DISABLE_HOT_RESTART'),
    skipDeprecatedLogs: need('ENVOY_SKIP_DEPRECATED_LOGS'),
    restartCount: need('APPNET_ENVOY_RESTART_COUNT'),
    envoyAdmin,
    agentAdmin,
    loggingResetTimeoutMs: need('APPNET_AGENT_LOGGING_RESET_TIMEOUT') * 1000,
    health: { pollIntervalMs: hcInterval, disconnectedTimeoutMs: need('HC_DISCONNECTED_TIMEOUT_S') * 1000 },
    readinessProbe: {
      intervalMs: need('APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S') * 1000,
      timeoutMs: need('APPNET_AGENT_POLL_ENVOY_READINESS_TIMEOUT_S') * 1000,
    },
    stats: { snapshotEnabled: need('ENABLE_STATS_SNAPSHOT'), snapshotIntervalMs: need('APPNET_STATS_SNAPSHOT_INTERVAL_S') * 1000 },
    envoyLog,
    region,
    node: node.id === undefined ? null : { id: node.id, cluster: node.cluster ?? node.id },
    ecs: {
      xdsSocketUri: mode === 'ecs' ? (r.given('APPMESH_XDS_ENDPOINT') ?? null) : null,
      listenerPortMapping: get('APPNET_LISTENER_PORT_MAPPING') ?? null,
      containerIpMapping: get('APPNET_CONTAINER_IP_MAPPING') ?? null,
      namespaceName: get('NAMESPACE_NAME') ?? null,
      namespaceArn: get('NAMESPACE_ARN') ?? null,
      executionEnv: get('AWS_EXECUTION_ENV') ?? null,
      containerInstanceArn: get('ECS_CONTAINER_INSTANCE_ARN') ?? null,
      metadataUri: get('ECS_CONTAINER_METADATA_URI_V4') ?? null,
      fipsModeEnabled: need('APPNET_FIPS_MODE_ENABLED'),
      metricExtension: need('APPMESH_METRIC_EXTENSION_VERSION') === '1',
      fixedStatsTags: node.fixedStatsTags,
      initialFetchTimeoutS: need('ENVOY_INITIAL_FETCH_TIMEOUT'),
      sdsSocketPath: get('APPMESH_SDS_SOCKET_PATH') ?? null,
    },
    runtime: {
      setTracingDecision: need('APPMESH_SET_TRACING_DECISION'),
      noExtensionLookupByName: need('ENVOY_NO_EXTENSION_LOOKUP_BY_NAME'),
      useHttpClientForAwsCredentials: need('ENVOY_USE_HTTP_CLIENT_TO_FETCH_AWS_CREDENTIALS'),
      maxRequestsPerIoCycle: maxRequests > 0 ? maxRequests : null,
    },
    outlierEventLogPath: get('ENVOY_OUTLIER_DETECTION_EVENT_LOG_PATH') ?? null,
    tracing,
    statsFlushIntervalMs: get('ENVOY_STATS_FLUSH_INTERVAL') ?? null,
    dogStatsd,
    customFiles,
    relay,
    cloudMap,
    unknownVariables: Object.keys(env)
      .filter((k) => /^(APPNET_|APPMESH_|ENVOY_)/.test(k) && !envTableByName.has(k))
      .sort(),
  };
  return deepFreeze(config);
}

/** Reads one variable by its row, outside readConfig (`agent healthcheck` reads only the few it needs). */
export function readVariable<N extends VarName>(env: Env, name: N): ValueOf<N> | undefined {
  const r = createReader({ [name]: env[name] }, { readFile: () => '' });
  if (r.problems.length > 0) throw configurationError(r.problems);
  return r.get(name);
}

// ── Sections ──────────────────────────────────────────────────────────────────────────────────────────────────

interface UserBootstrap {
  readonly bootstrap: Config['userBootstrap'];
  /** What the agent read of it: the whole document, or only its admin block when it is large. */
  readonly document: Record<string, unknown> | null;
}

/** ENVOY_CONFIG_FILE: a bootstrap used as given when the file exists and is not empty. */
function readUserBootstrap(r: Reader): UserBootstrap {
  const configFile = r.get('ENVOY_CONFIG_FILE');
  if (configFile === undefined) return { bootstrap: null, document: null };
  let content = '';
  try {
    content = r.io.readFile(configFile);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') r.problem('ENVOY_CONFIG_FILE', configFile, `must name a readable file or a path to write (${code ?? (err as Error).message})`);
  }
  if (content.trim() === '') return { bootstrap: null, document: null };
  let document: Record<string, unknown> | null = null;
  const block = content.length > LARGE_BOOTSTRAP_BYTES && !content.trimStart().startsWith('{') ? topLevelBlock(content, 'admin') : null;
  if (block !== null) {
    // A large YAML bootstrap: only its admin block is read here (Envoy checks the whole file when it starts).
    // Parsing all of it with the YAML library grew the agent's heap for good by tens of megabytes.
    try {
      document = yaml().parse(block) as Record<string, unknown>;
    } catch (err) {
      r.problem('ENVOY_CONFIG_FILE', configFile, `must contain YAML or JSON (${firstLine((err as Error).message)})`);
    }
  } else {
    document = r.parseDocument('ENVOY_CONFIG_FILE', configFile, content, { allowEmpty: false });
  }
  return document === null ? { bootstrap: null, document: null } : { bootstrap: { path: configFile }, document };
}

/** The mode, from the variables that select one; their conflicts. */
function readMode(r: Reader, hasUserBootstrap: boolean): Mode {
  const scInline = r.given('APPNET_SERVICE_CONNECT_CONFIG');
  const scFile = r.get('APPNET_SERVICE_CONNECT_CONFIG_FILE');
  const xdsEndpoint = r.given('APPMESH_XDS_ENDPOINT');
  if (r.get('APPNET_ENABLE_RELAY_MODE_FOR_XDS') === true) {
    if (scInline !== undefined || scFile !== undefined) {
      r.problem('APPNET_SERVICE_CONNECT_CONFIG', scInline ?? scFile, 'must not be set in relay mode (APPNET_ENABLE_RELAY_MODE_FOR_XDS=true)');
    }
    return 'relay';
  }
  if (scInline !== undefined || scFile !== undefined) {
    if (scInline !== undefined && scFile !== undefined) {
      r.problem('APPNET_SERVICE_CONNECT_CONFIG_FILE', scFile, 'must not be set together with APPNET_SERVICE_CONNECT_CONFIG; give one');
    }
    if (xdsEndpoint !== undefined) r.problem('APPMESH_XDS_ENDPOINT', xdsEndpoint, 'must not be set in Cloud Map mode: the agent is its own control plane');
    return 'cloudmap';
  }
  if (xdsEndpoint !== undefined) {
    if (!xdsEndpoint.startsWith('unix://') || xdsEndpoint.length <= 'unix://'.length) {
      r.problem('APPMESH_XDS_ENDPOINT', xdsEndpoint, 'must be unix://<path of the relay socket>; App Mesh regional endpoints are not supported (App Mesh ended on 2026-09-30)');
    }
    return 'ecs';
  }
  if (!hasUserBootstrap) {
    r.problem(
      'APPMESH_XDS_ENDPOINT',
      undefined,
      'no mode selected: set APPMESH_XDS_ENDPOINT=unix://<relay socket> (ECS-managed), APPNET_SERVICE_CONNECT_CONFIG (Cloud Map), APPNET_ENABLE_RELAY_MODE_FOR_XDS=true (relay), or ENVOY_CONFIG_FILE to a bootstrap to use as given',
    );
  }
  return 'static';
}

/** Envoy's admin address: derived from the bootstrap Envoy will actually run (reference bug: configured separately). */
function readEnvoyAdmin(r: Reader, runtimeDir: string, user: UserBootstrap): Config['envoyAdmin'] {
  const envoyAdminMode = r.get('ENVOY_ADMIN_MODE') ?? 'uds';
  const ipv6Admin = r.get('ENVOY_ADMIN_ACCESS_ENABLE_IPV6') === true;
  let address: AdminAddress =
    envoyAdminMode === 'uds'
      ? { kind: 'uds', path: r.get('ENVOY_ADMIN_UDS_PATH') ?? `${runtimeDir}/envoy_admin.sock` }
      : { kind: 'tcp', host: ipv6Admin ? '::' : r.need('ENVOY_ADMIN_ACCESS_ADDRESS'), port: r.need('ENVOY_ADMIN_ACCESS_PORT') };
  if (user.bootstrap !== null && user.document !== null) {
    const fromFile = adminAddressOf(user.document);
    if (fromFile === null) {
      r.problem('ENVOY_CONFIG_FILE', user.bootstrap.path, "must configure admin.address (a pipe or a socket_address): the agent needs Envoy's admin interface");
    } else {
      address = fromFile;
    }
  }
  return { address, accessLogPath: r.get('ENVOY_ADMIN_ACCESS_LOG_FILE') ?? `${runtimeDir}/envoy_admin_access.log`, ipv4Compat: ipv6Admin && envoyAdminMode === 'tcp' };
}

/** The management interface: as in the reference, the variable's presence starts the server; empty means tcp. */
function readAgentAdmin(r: Reader): AdminAddress | null {
  if (r.env['APPNET_AGENT_ADMIN_MODE'] === undefined) return null;
  const m = r.get('APPNET_AGENT_ADMIN_MODE') ?? 'tcp';
  return m === 'uds'
    ? { kind: 'uds', path: r.need('APPNET_AGENT_ADMIN_UDS_PATH') }
    : { kind: 'tcp', host: r.need('APPNET_AGENT_HTTP_BIND_ADDRESS'), port: r.need('APPNET_AGENT_HTTP_PORT') };
}

/** Envoy's node id and cluster, and the fixed stats tags that need a mesh resource as the id. */
function readNode(r: Reader, mode: Mode, hasUserBootstrap: boolean): { id: string | undefined; cluster: string | undefined; fixedStatsTags: boolean } {
  const id = r.given('APPMESH_RESOURCE_ARN') ?? r.given('APPMESH_RESOURCE_NAME') ?? r.given('APPMESH_VIRTUAL_NODE_NAME');
  const cluster = r.given('APPMESH_RESOURCE_CLUSTER') ?? r.given('APPMESH_VIRTUAL_NODE_CLUSTER') ?? id;
  if (mode === 'ecs' && !hasUserBootstrap && id === undefined) {
    r.problem('APPMESH_RESOURCE_ARN', undefined, "must be set in ECS-managed mode: it is Envoy's node id (or set APPMESH_RESOURCE_NAME or APPMESH_VIRTUAL_NODE_NAME)");
  }
  const fixedStatsTags = r.get('ENABLE_ENVOY_STATS_TAGS') === true;
  if (fixedStatsTags && id !== undefined && parseMeshResource(id) === null) {
    r.problem('ENABLE_ENVOY_STATS_TAGS', r.env['ENABLE_ENVOY_STATS_TAGS'], `needs a node id of the form mesh/<mesh>/<type>/<name>; APPMESH_RESOURCE_ARN is ${JSON.stringify(id)}`);
  }
  return { id, cluster, fixedStatsTags };
}

/** One tracer at most; its settings (unless ENVOY_TRACING_CFG_FILE gives the whole tracing block). */
function readTracing(r: Reader, nodeCluster: string | undefined): Tracing | null {
  const tracerFlags = (['ENABLE_ENVOY_XRAY_TRACING', 'ENABLE_ENVOY_DATADOG_TRACING', 'ENABLE_ENVOY_JAEGER_TRACING'] as const).filter((n) => r.get(n) === true);
  if (tracerFlags.length > 1) {
    for (const n of tracerFlags) r.problem(n, r.env[n], `only one tracer can be enabled; ${tracerFlags.join(' and ')} are both true`);
    return null;
  }
  if (tracerFlags.length !== 1 || r.get('ENVOY_TRACING_CFG_FILE') !== undefined) return null;
  const clusterName = nodeCluster ?? 'envoy';
  if (tracerFlags[0] === 'ENABLE_ENVOY_XRAY_TRACING') {
    const daemon = parseXrayAddress(r.given('AWS_XRAY_DAEMON_ADDRESS'), r.need('XRAY_DAEMON_PORT'));
    if ('rule' in daemon) r.problem('AWS_XRAY_DAEMON_ADDRESS', r.env['AWS_XRAY_DAEMON_ADDRESS'], daemon.rule);
    const manifest = r.get('XRAY_SAMPLING_RULE_MANIFEST');
    let sampling: Extract<Tracing, { kind: 'xray' }>['sampling'] = null;
    if (manifest !== undefined) {
      const doc = r.readDocument('XRAY_SAMPLING_RULE_MANIFEST', manifest, { allowEmpty: false });
      if (doc !== null) {
        const rule = checkSamplingManifest(doc);
        if (rule !== null) r.problem('XRAY_SAMPLING_RULE_MANIFEST', manifest, rule);
      }
      sampling = { manifestPath: manifest };
    } else {
      const rate = r.get('XRAY_SAMPLING_RATE');
      if (rate !== undefined) {
        const rounded = Math.round(rate * 100) / 100;
        sampling = rounded === 0.05 ? null : { rate: rounded };
      }
    }
    if ('rule' in daemon) return null;
    return { kind: 'xray', daemonAddress: daemon.address, daemonPort: daemon.port, segmentName: r.given('XRAY_SEGMENT_NAME') ?? clusterName, sampling };
  }
  if (tracerFlags[0] === 'ENABLE_ENVOY_DATADOG_TRACING') {
    return { kind: 'datadog', address: r.need('DATADOG_TRACER_ADDRESS'), port: r.need('DATADOG_TRACER_PORT'), serviceName: r.given('DD_SERVICE') ?? `envoy-${clusterName}` };
  }
  return {
    kind: 'zipkin',
    address: r.need('JAEGER_TRACER_ADDRESS'),
    port: r.need('JAEGER_TRACER_PORT'),
    encoding: r.need('JAEGER_TRACER_VERSION') === 'json' ? 'HTTP_JSON' : 'HTTP_PROTO',
  };
}

/** The custom files merged into the bootstrap, each read and parsed now. */
function readCustomFiles(r: Reader): CustomFile[] {
  const customFiles: CustomFile[] = [];
  for (const variable of ['ENVOY_TRACING_CFG_FILE', 'ENVOY_STATS_CONFIG_FILE', 'ENVOY_STATS_SINKS_CFG_FILE', 'ENVOY_RESOURCES_CONFIG_FILE'] as const) {
    const path = r.get(variable);
    if (path === undefined) continue;
    const doc = r.readDocument(variable, path, { allowEmpty: variable === 'ENVOY_RESOURCES_CONFIG_FILE' });
    if (doc === null) continue;
    if (variable === 'ENVOY_STATS_SINKS_CFG_FILE' && !('stats_sinks' in doc) && !('statsSinks' in doc)) {
      r.problem(variable, path, 'must define stats_sinks');
      continue;
    }
    customFiles.push({ variable, path, document: doc });
  }
  return customFiles;
}

/** The DogStatsD sink, unless a sinks file replaces it. */
function readDogStatsd(r: Reader): Config['dogStatsd'] {
  if (r.get('ENABLE_ENVOY_DOG_STATSD') !== true || r.get('ENVOY_STATS_SINKS_CFG_FILE') !== undefined) return null;
  const pipe = r.get('STATSD_SOCKET_PATH');
  return pipe !== undefined ? { pipe } : { address: r.need('STATSD_ADDRESS'), port: r.need('STATSD_PORT') };
}

/** Relay mode's section: its rules are relay/'s (relay/config.ts); the variables are parsed by the table here. */
function readRelay(r: Reader, region: string | null): RelaySettings | null {
  return readRelaySection(
    {
      region,
      regionAsGiven: r.env['AWS_REGION'],
      xdsEndpoint: r.given('APPMESH_XDS_ENDPOINT'),
      domain: r.get('APPNET_MANAGEMENT_DOMAIN_NAME'),
      port: r.need('APPNET_MANAGEMENT_PORT'),
      portSet: r.isSet('APPNET_MANAGEMENT_PORT'),
      listenerPath: r.need('APPNET_RELAY_LISTENER_UDS_PATH'),
      caFile: r.get('APPNET_RELAY_CA_FILE'),
      signingName: r.need('APPMESH_SIGNING_NAME'),
      streamIdleTimeoutMs: r.need('RELAY_STREAM_IDLE_TIMEOUT'),
      bufferLimitBytes: r.need('RELAY_BUFFER_LIMIT_BYTES'),
    },
    (path) => r.io.readFile(path),
    r.problem,
  );
}

/** The Service Connect document as given: inline or in a file, JSON. */
function readServiceConnectDocument(r: Reader): { source: ServiceConnectSource; document: unknown } {
  const scInline = r.given('APPNET_SERVICE_CONNECT_CONFIG');
  const scFile = r.get('APPNET_SERVICE_CONNECT_CONFIG_FILE');
  let document: unknown = undefined;
  let source: ServiceConnectSource = 'APPNET_SERVICE_CONNECT_CONFIG';
  let textContent: string | undefined = scInline;
  if (scInline === undefined && scFile !== undefined) {
    source = 'APPNET_SERVICE_CONNECT_CONFIG_FILE';
    try {
      textContent = r.io.readFile(scFile);
    } catch (err) {
      r.problem(source, scFile, `must name a readable file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  if (textContent !== undefined) {
    try {
      document = JSON.parse(textContent);
    } catch (err) {
      r.problem(source, scInline ?? scFile, `must be a JSON document (${(err as Error).message})`);
    }
  }
  return { source, document };
}

/**
 * Cloud Map mode's section, once its variables are sound: the Service Connect document by ECS's rules (its problems
 * under its own name, `<source> has N problems:`), then the region and, without a task metadata endpoint, the
 * identity instances are registered with (APPNET_TASK_*), listed together.
 */
function checkCloudMap(r: Reader, { source, document }: { source: ServiceConnectSource; document: unknown }, region: string | null): NonNullable<Config['cloudMap']> {
  const checked = validateServiceConnectConfig(document);
  if (checked.config === null) throw configurationError(checked.problems.map((p) => `${source}: ${p}`), source);
  const serviceConnect = checked.config;
  const taskIpv4 = r.get('APPNET_TASK_IPV4') ?? null;
  const taskId = r.get('APPNET_TASK_ID') ?? null;
  const problems = r.get('ECS_CONTAINER_METADATA_URI_V4') === undefined ? identityProblems(serviceConnect, { ipv4: taskIpv4, taskId }) : [];
  if (region === null) problems.push(problem('AWS_REGION', undefined, 'must be set in Cloud Map mode: the Cloud Map client needs a region'));
  if (problems.length > 0) throw configurationError(problems);
  return {
    document,
    serviceConnect,
    source,
    region: region as string,
    hostsFile: r.need('APPNET_HOSTS_FILE'),
    taskIpv4,
    taskId,
    availabilityZone: r.get('APPNET_AVAILABILITY_ZONE') ?? null,
    pollIntervalMs: r.need('APPNET_CLOUD_MAP_POLL_INTERVAL_MS'),
    quotaShare: r.need('APPNET_CLOUD_MAP_QUOTA_PERCENT') / 100,
    vipCidr: r.need('APPNET_VIP_CIDR'),
  };
}

/** The Envoy log file and its rotation; null: Envoy logs to the agent's stdout. */
function readEnvoyLog(r: Reader): Config['envoyLog'] {
  const dir = r.get('APPNET_ENVOY_LOG_DESTINATION');
  if (dir === undefined) return null;
  return {
    dir,
    name: r.need('APPNET_ENVOY_LOG_NAME'),
    maxBytes: Math.round(r.need('APPNET_AGENT_MAX_LOG_FILE_SIZE') * 1_048_576),
    retention: r.need('APPNET_AGENT_MAX_RETENTION_COUNT'),
  };
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Above this size a YAML user bootstrap is read for its admin block only. */
const LARGE_BOOTSTRAP_BYTES = 256 * 1024;

/**
 * The lines of a top-level block mapping key (`admin:` at column 0 up to the next line at column 0), as text; null
 * when the document does not have one in block style.
 */
export function topLevelBlock(text: string, key: string): string | null {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`${key}:`));
  if (start < 0) return null;
  let end = start + 1;
  while (end < lines.length) {
    const l = lines[end] ?? '';
    if (l !== '' && !/^[\s#]/.test(l)) break;
    end++;
  }
  return lines.slice(start, end).join('\n');
}

function parseJsonOrYaml(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return yaml().parse(text);
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

/** `mesh/<mesh>/<type>/<name>` or `arn:...:mesh/<mesh>/<type>/<name>`; Service Connect task-set ARNs do not count. */
export function parseMeshResource(nodeId: string): { mesh: string; type: string; name: string } | null {
  if (nodeId.includes(':task-set/')) return null;
  const parts = nodeId.split('/');
  if (parts.length < 4 || !(parts[0] ?? '').endsWith('mesh')) return null;
  const [, mesh, type, name] = parts as [string, string, string, string];
  if (mesh === '' || type === '' || name === '') return null;
  return { mesh, type, name };
}

function adminAddressOf(doc: Readonly<Record<string, unknown>>): AdminAddress | null {
  const admin = doc['admin'] as Record<string, unknown> | undefined;
  const address = admin?.['address'] as Record<string, unknown> | undefined;
  if (address === undefined) return null;
  const pipe = address['pipe'] as Record<string, unknown> | undefined;
  if (pipe !== undefined && typeof pipe['path'] === 'string') return { kind: 'uds', path: pipe['path'] };
  const sock = (address['socket_address'] ?? address['socketAddress']) as Record<string, unknown> | undefined;
  const portValue = sock?.['port_value'] ?? sock?.['portValue'];
  if (sock !== undefined && typeof sock['address'] === 'string' && portValue !== undefined) {
    const host = sock['address'] === '0.0.0.0' ? '127.0.0.1' : sock['address'] === '::' ? '::1' : sock['address'];
    return { kind: 'tcp', host, port: Number(portValue) };
  }
  return null;
}

/** AWS_XRAY_DAEMON_ADDRESS: `ip`, `ip:port`, `[ipv6]:port`, bare IPv6, or the SDK's `tcp:ip:port udp:ip:port`. */
function parseXrayAddress(raw: string | undefined, defaultPort: number): { address: string; port: number } | { rule: string } {
  const rule = 'must be an IP address, ip:port, [ipv6]:port, or tcp:ip:port udp:ip:port';
  if (raw === undefined) return { address: '127.0.0.1', port: defaultPort };
  let value = raw;
  const udp = /(?:^|\s)udp:(\S+)/.exec(raw);
  if (udp !== null) value = udp[1] ?? '';
  else if (/^tcp:/.test(raw)) return { rule };
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(value);
  if (bracketed !== null) {
    const port = bracketed[2] === undefined ? defaultPort : Number(bracketed[2]);
    return isIpLiteral(bracketed[1] ?? '') && port >= 1 && port <= 65535 ? { address: bracketed[1] ?? '', port } : { rule };
  }
  if (isIpLiteral(value)) return { address: value, port: defaultPort };
  const hostPort = /^([0-9.]+):(\d{1,5})$/.exec(value);
  if (hostPort !== null && isIpLiteral(hostPort[1] ?? '')) {
    const port = Number(hostPort[2]);
    return port >= 1 && port <= 65535 ? { address: hostPort[1] ?? '', port } : { rule };
  }
  return { rule };
}

function isIpLiteral(s: string): boolean {
  return /^(\d{1,3}\.){3}\d{1,3}$/.test(s) ? s.split('.').every((o) => Number(o) <= 255) : /^[0-9a-fA-F:]+$/.test(s) && s.includes(':');
}

/** X-Ray sampling manifest rules as X-Ray enforces them (version 2, a default rule, non-negative numbers). */
function checkSamplingManifest(doc: Record<string, unknown>): string | null {
  if (doc['version'] !== 2) return 'must be an X-Ray sampling manifest with "version": 2';
  const def = doc['default'] as Record<string, unknown> | undefined;
  if (def === undefined || typeof def !== 'object') return 'must have a "default" rule';
  for (const k of ['fixed_target', 'rate']) {
    if (typeof def[k] !== 'number' || (def[k] as number) < 0) return `must have a non-negative number default.${k}`;
  }
  const rules = doc['rules'];
  if (rules !== undefined) {
    if (!Array.isArray(rules)) return 'must have a list of "rules"';
    for (const [i, r] of rules.entries()) {
      const rule = r as Record<string, unknown>;
      for (const k of ['host', 'http_method', 'url_path']) if (typeof rule[k] !== 'string') return `rules[${i}] must have ${k}`;
      if (typeof rule['fixed_target'] !== 'number' || typeof rule['rate'] !== 'number') return `rules[${i}] must have fixed_target and rate`;
    }
  }
  return null;
}
