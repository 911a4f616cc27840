/**
 * readConfig(env, io): the environment (and the files it names) → one deep-frozen, typed configuration, or one
 * AgentError listing every problem as `NAME="value": rule`. Never falls back to a default on a bad value.
 */
import { yaml, randomName } from '../system/index.ts';
import { AgentError } from '../errors.ts';
import { CA_BUNDLES, envTable, envTableByName, type EnvoyLogLevel } from './table.ts';

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
  readonly relay: {
    readonly listenerPath: string;
    readonly domain: string;
    readonly port: number;
    readonly caFile: string;
    readonly signingName: string;
    readonly region: string;
    readonly streamIdleTimeoutMs: number;
    readonly bufferLimitBytes: number;
    readonly tlsCurve: 'P-256' | 'P-384';
  } | null;
  readonly cloudMap: {
    /** The Service Connect document as given; validated by the Cloud Map layer. */
    readonly document: unknown;
    readonly source: string;
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

/** `NAME="value": rule`, the one shape of every configuration problem. */
export function problem(name: string, value: string | undefined, rule: string): string {
  return `${name}=${JSON.stringify(value ?? '')}: ${rule}`;
}

export function readConfig(env: Env, io: ConfigIo): Config {
  const problems: string[] = [];
  const values = new Map<string, unknown>();
  const given = (name: string): string | undefined => {
    const raw = env[name];
    return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
  };

  for (const row of envTable) {
    const raw = given(row.name) ?? row.default;
    if (raw === undefined) continue;
    const parsed = row.parser.parse(raw);
    if (parsed.ok) values.set(row.name, parsed.value);
    else problems.push(problem(row.name, env[row.name] ?? raw, parsed.rule));
  }
  const get = <T>(name: string): T | undefined => {
    if (!envTableByName.has(name)) throw new Error(`readConfig: ${name} is not in the configuration table`);
    return values.get(name) as T | undefined;
  };
  const need = <T>(name: string): T => get<T>(name) as T;
  const isSet = (name: string): boolean => given(name) !== undefined;

  /** Parses a file's text already read: YAML or JSON, a mapping; problems name the variable and the path. */
  const parseDocument = (variable: string, path: string, textContent: string, opts: { allowEmpty: boolean }): Record<string, unknown> | null => {
    if (textContent.trim() === '') {
      if (!opts.allowEmpty) problems.push(problem(variable, path, 'must name a file that is not empty'));
      return null;
    }
    let doc: unknown;
    try {
      // JSON is YAML too, and far cheaper to parse; only real YAML goes through the YAML library.
      const trimmed = textContent.trimStart();
      doc = trimmed.startsWith('{') ? parseJsonOrYaml(textContent) : yaml().parse(textContent);
    } catch (err) {
      problems.push(problem(variable, path, `must contain YAML or JSON (${firstLine((err as Error).message)})`));
      return null;
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
      problems.push(problem(variable, path, 'must contain a YAML or JSON mapping'));
      return null;
    }
    return doc as Record<string, unknown>;
  };
  const readDocument = (variable: string, path: string, opts: { allowEmpty: boolean }): Record<string, unknown> | null => {
    let textContent: string;
    try {
      textContent = io.readFile(path);
    } catch (err) {
      problems.push(problem(variable, path, `must name a readable file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`));
      return null;
    }
    return parseDocument(variable, path, textContent, opts);
  };

  // ── Mode ────────────────────────────────────────────────────────────────────────────────────────────────────
  const relayOn = get<boolean>('APPNET_ENABLE_RELAY_MODE_FOR_XDS') === true;
  const scInline = given('APPNET_SERVICE_CONNECT_CONFIG');
  const scFile = get<string>('APPNET_SERVICE_CONNECT_CONFIG_FILE');
  const xdsEndpoint = given('APPMESH_XDS_ENDPOINT');
  const configFile = get<string>('ENVOY_CONFIG_FILE');
  const configuredRuntimeDir = get<string>('APPNET_RUNTIME_DIR');
  // Unset: a directory of this agent's own, so that two agents on one host (a shared /tmp, a local mesh, tests)
  // never read each other's listeners or drive each other's Envoy.
  const runtimeDir = configuredRuntimeDir ?? `/tmp/appnet-agent-${(io.randomName ?? randomName)()}`;

  let userBootstrap: Config['userBootstrap'] = null;
  let userDocument: Record<string, unknown> | null = null;
  if (configFile !== undefined) {
    let content = '';
    try {
      content = io.readFile(configFile);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') problems.push(problem('ENVOY_CONFIG_FILE', configFile, `must name a readable file or a path to write (${code ?? (err as Error).message})`));
    }
    if (content.trim() !== '') {
      const block = content.length > LARGE_BOOTSTRAP_BYTES && !content.trimStart().startsWith('{') ? topLevelBlock(content, 'admin') : null;
      if (block !== null) {
        // A large YAML bootstrap: only its admin block is read here (Envoy checks the whole file when it starts).
        // Parsing all of it with the YAML library grew the agent's heap for good by tens of megabytes.
        try {
          userDocument = yaml().parse(block) as Record<string, unknown>;
        } catch (err) {
          problems.push(problem('ENVOY_CONFIG_FILE', configFile, `must contain YAML or JSON (${firstLine((err as Error).message)})`));
        }
      } else {
        userDocument = parseDocument('ENVOY_CONFIG_FILE', configFile, content, { allowEmpty: false });
      }
      if (userDocument !== null) userBootstrap = { path: configFile };
    }
  }

  let mode: Mode = 'static';
  if (relayOn) {
    mode = 'relay';
    if (scInline !== undefined || scFile !== undefined) {
      problems.push(problem('APPNET_SERVICE_CONNECT_CONFIG', scInline ?? scFile, 'must not be set in relay mode (APPNET_ENABLE_RELAY_MODE_FOR_XDS=true)'));
    }
  } else if (scInline !== undefined || scFile !== undefined) {
    mode = 'cloudmap';
    if (scInline !== undefined && scFile !== undefined) {
      problems.push(problem('APPNET_SERVICE_CONNECT_CONFIG_FILE', scFile, 'must not be set together with APPNET_SERVICE_CONNECT_CONFIG; give one'));
    }
    if (xdsEndpoint !== undefined) {
      problems.push(problem('APPMESH_XDS_ENDPOINT', xdsEndpoint, 'must not be set in Cloud Map mode: the agent is its own control plane'));
    }
  } else if (xdsEndpoint !== undefined) {
    mode = 'ecs';
    if (!xdsEndpoint.startsWith('unix://') || xdsEndpoint.length <= 'unix://'.length) {
      problems.push(
        problem('APPMESH_XDS_ENDPOINT', xdsEndpoint, 'must be unix://<path of the relay socket>; App Mesh regional endpoints are not supported (App Mesh ended on 2026-09-30)'),
      );
    }
  } else if (userBootstrap === null) {
    problems.push(
      problem(
        'APPMESH_XDS_ENDPOINT',
        undefined,
        'no mode selected: set APPMESH_XDS_ENDPOINT=unix://<relay socket> (ECS-managed), APPNET_SERVICE_CONNECT_CONFIG (Cloud Map), APPNET_ENABLE_RELAY_MODE_FOR_XDS=true (relay), or ENVOY_CONFIG_FILE to a bootstrap to use as given',
      ),
    );
  }

  // ── Envoy admin: derived from the bootstrap Envoy will actually run (reference bug: configured separately) ──
  const envoyAdminMode = get<'tcp' | 'uds'>('ENVOY_ADMIN_MODE') ?? 'uds';
  const ipv6Admin = get<boolean>('ENVOY_ADMIN_ACCESS_ENABLE_IPV6') === true;
  let envoyAdminAddress: AdminAddress =
    envoyAdminMode === 'uds'
      ? { kind: 'uds', path: get<string>('ENVOY_ADMIN_UDS_PATH') ?? `${runtimeDir}/envoy_admin.sock` }
      : { kind: 'tcp', host: ipv6Admin ? '::' : need<string>('ENVOY_ADMIN_ACCESS_ADDRESS'), port: need<number>('ENVOY_ADMIN_ACCESS_PORT') };
  if (userBootstrap !== null && userDocument !== null) {
    const fromFile = adminAddressOf(userDocument);
    if (fromFile === null) {
      problems.push(problem('ENVOY_CONFIG_FILE', userBootstrap.path, "must configure admin.address (a pipe or a socket_address): the agent needs Envoy's admin interface"));
    } else {
      envoyAdminAddress = fromFile;
    }
  }

  // ── Management interface ────────────────────────────────────────────────────────────────────────────────────
  let agentAdmin: AdminAddress | null = null;
  if (env['APPNET_AGENT_ADMIN_MODE'] !== undefined) {
    // As in the reference, the variable's presence starts the server; empty means tcp.
    const m = get<'tcp' | 'uds'>('APPNET_AGENT_ADMIN_MODE') ?? 'tcp';
    agentAdmin =
      m === 'uds'
        ? { kind: 'uds', path: need<string>('APPNET_AGENT_ADMIN_UDS_PATH') }
        : { kind: 'tcp', host: need<string>('APPNET_AGENT_HTTP_BIND_ADDRESS'), port: need<number>('APPNET_AGENT_HTTP_PORT') };
  }

  // ── Node identity and region ────────────────────────────────────────────────────────────────────────────────
  const region = get<string>('AWS_REGION') ?? null;
  const nodeId = given('APPMESH_RESOURCE_ARN') ?? given('APPMESH_RESOURCE_NAME') ?? given('APPMESH_VIRTUAL_NODE_NAME');
  const nodeCluster = given('APPMESH_RESOURCE_CLUSTER') ?? given('APPMESH_VIRTUAL_NODE_CLUSTER') ?? nodeId;
  if (mode === 'ecs' && userBootstrap === null && nodeId === undefined) {
    problems.push(problem('APPMESH_RESOURCE_ARN', undefined, "must be set in ECS-managed mode: it is Envoy's node id (or set APPMESH_RESOURCE_NAME or APPMESH_VIRTUAL_NODE_NAME)"));
  }
  const fixedStatsTags = get<boolean>('ENABLE_ENVOY_STATS_TAGS') === true;
  if (fixedStatsTags && nodeId !== undefined && parseMeshResource(nodeId) === null) {
    problems.push(problem('ENABLE_ENVOY_STATS_TAGS', env['ENABLE_ENVOY_STATS_TAGS'], `needs a node id of the form mesh/<mesh>/<type>/<name>; APPMESH_RESOURCE_ARN is ${JSON.stringify(nodeId)}`));
  }

  // ── Tracing ─────────────────────────────────────────────────────────────────────────────────────────────────
  const tracerFlags = (['ENABLE_ENVOY_XRAY_TRACING', 'ENABLE_ENVOY_DATADOG_TRACING', 'ENABLE_ENVOY_JAEGER_TRACING'] as const).filter((n) => get<boolean>(n) === true);
  let tracing: Tracing | null = null;
  const tracingFile = get<string>('ENVOY_TRACING_CFG_FILE');
  if (tracerFlags.length > 1) {
    for (const n of tracerFlags) problems.push(problem(n, env[n], `only one tracer can be enabled; ${tracerFlags.join(' and ')} are both true`));
  } else if (tracerFlags.length === 1 && tracingFile === undefined) {
    const clusterName = nodeCluster ?? 'envoy';
    if (tracerFlags[0] === 'ENABLE_ENVOY_XRAY_TRACING') {
      const daemon = parseXrayAddress(given('AWS_XRAY_DAEMON_ADDRESS'), need<number>('XRAY_DAEMON_PORT'));
      if ('rule' in daemon) problems.push(problem('AWS_XRAY_DAEMON_ADDRESS', env['AWS_XRAY_DAEMON_ADDRESS'], daemon.rule));
      const manifest = get<string>('XRAY_SAMPLING_RULE_MANIFEST');
      let sampling: Extract<Tracing, { kind: 'xray' }>['sampling'] = null;
      if (manifest !== undefined) {
        const doc = readDocument('XRAY_SAMPLING_RULE_MANIFEST', manifest, { allowEmpty: false });
        if (doc !== null) {
          const rule = checkSamplingManifest(doc);
          if (rule !== null) problems.push(problem('XRAY_SAMPLING_RULE_MANIFEST', manifest, rule));
        }
        sampling = { manifestPath: manifest };
      } else {
        const rate = get<number>('XRAY_SAMPLING_RATE');
        if (rate !== undefined) {
          const rounded = Math.round(rate * 100) / 100;
          sampling = rounded === 0.05 ? null : { rate: rounded };
        }
      }
      if (!('rule' in daemon)) {
        tracing = { kind: 'xray', daemonAddress: daemon.address, daemonPort: daemon.port, segmentName: given('XRAY_SEGMENT_NAME') ?? clusterName, sampling };
      }
    } else if (tracerFlags[0] === 'ENABLE_ENVOY_DATADOG_TRACING') {
      tracing = { kind: 'datadog', address: need('DATADOG_TRACER_ADDRESS'), port: need('DATADOG_TRACER_PORT'), serviceName: given('DD_SERVICE') ?? `envoy-${clusterName}` };
    } else {
      tracing = {
        kind: 'zipkin',
        address: need('JAEGER_TRACER_ADDRESS'),
        port: need('JAEGER_TRACER_PORT'),
        encoding: need<string>('JAEGER_TRACER_VERSION') === 'json' ? 'HTTP_JSON' : 'HTTP_PROTO',
      };
    }
  }

  // ── Custom files ────────────────────────────────────────────────────────────────────────────────────────────
  const customFiles: CustomFile[] = [];
  for (const variable of ['ENVOY_TRACING_CFG_FILE', 'ENVOY_STATS_CONFIG_FILE', 'ENVOY_STATS_SINKS_CFG_FILE', 'ENVOY_RESOURCES_CONFIG_FILE'] as const) {
    const path = get<string>(variable);
    if (path === undefined) continue;
    const doc = readDocument(variable, path, { allowEmpty: variable === 'ENVOY_RESOURCES_CONFIG_FILE' });
    if (doc === null) continue;
    if (variable === 'ENVOY_STATS_SINKS_CFG_FILE' && !('stats_sinks' in doc) && !('statsSinks' in doc)) {
      problems.push(problem(variable, path, 'must define stats_sinks'));
      continue;
    }
    customFiles.push({ variable, path, document: doc });
  }

  // ── Stats sinks ─────────────────────────────────────────────────────────────────────────────────────────────
  let dogStatsd: Config['dogStatsd'] = null;
  if (get<boolean>('ENABLE_ENVOY_DOG_STATSD') === true && get<string>('ENVOY_STATS_SINKS_CFG_FILE') === undefined) {
    const pipe = get<string>('STATSD_SOCKET_PATH');
    dogStatsd = pipe !== undefined ? { pipe } : { address: need('STATSD_ADDRESS'), port: need('STATSD_PORT') };
  }

  // ── Relay ───────────────────────────────────────────────────────────────────────────────────────────────────
  let relay: Config['relay'] = null;
  if (mode === 'relay') {
    if (region === null) problems.push(problem('AWS_REGION', env['AWS_REGION'], 'must be set in relay mode: it signs requests and names the default endpoint'));
    let domain = get<string>('APPNET_MANAGEMENT_DOMAIN_NAME');
    let port = need<number>('APPNET_MANAGEMENT_PORT');
    if (domain === undefined && xdsEndpoint !== undefined) {
      const parsed = parseEndpointUrl(xdsEndpoint);
      if (parsed === null) {
        problems.push(problem('APPMESH_XDS_ENDPOINT', xdsEndpoint, 'must be a URL such as https://ecs-sc.us-west-2.api.aws or host[:port] in relay mode'));
      } else {
        domain = parsed.host;
        if (parsed.port !== null && !isSet('APPNET_MANAGEMENT_PORT')) port = parsed.port;
      }
    }
    if (domain === undefined && region !== null) {
      domain = `ecs-sc.${region}.${region.startsWith('cn-') ? 'api.amazonwebservices.com.cn' : 'api.aws'}`;
    }
    if (region !== null && domain !== undefined) {
      relay = {
        listenerPath: need('APPNET_RELAY_LISTENER_UDS_PATH'),
        domain,
        port,
        caFile: relayCaFile(get<string>('APPNET_RELAY_CA_FILE'), io, problems),
        signingName: need('APPMESH_SIGNING_NAME'),
        region,
        streamIdleTimeoutMs: need('RELAY_STREAM_IDLE_TIMEOUT'),
        bufferLimitBytes: need('RELAY_BUFFER_LIMIT_BYTES'),
        // Isolated partitions require P-384 (reference commit 4b21099).
        tlsCurve: /^(us-isof-|eu-isoe-)/.test(region) ? 'P-384' : 'P-256',
      };
    }
  }

  // ── Cloud Map ───────────────────────────────────────────────────────────────────────────────────────────────
  let cloudMap: Config['cloudMap'] = null;
  if (mode === 'cloudmap') {
    let document: unknown = undefined;
    let source = 'APPNET_SERVICE_CONNECT_CONFIG';
    let textContent: string | undefined = scInline;
    if (scInline === undefined && scFile !== undefined) {
      source = 'APPNET_SERVICE_CONNECT_CONFIG_FILE';
      try {
        textContent = io.readFile(scFile);
      } catch (err) {
        problems.push(problem(source, scFile, `must name a readable file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`));
      }
    }
    if (textContent !== undefined) {
      try {
        document = JSON.parse(textContent);
      } catch (err) {
        problems.push(problem(source, scInline ?? scFile, `must be a JSON document (${(err as Error).message})`));
      }
    }
    cloudMap = {
      document,
      source,
      hostsFile: need('APPNET_HOSTS_FILE'),
      taskIpv4: get<string>('APPNET_TASK_IPV4') ?? null,
      taskId: get<string>('APPNET_TASK_ID') ?? null,
      availabilityZone: get<string>('APPNET_AVAILABILITY_ZONE') ?? null,
      pollIntervalMs: need('APPNET_CLOUD_MAP_POLL_INTERVAL_MS'),
      quotaShare: need<number>('APPNET_CLOUD_MAP_QUOTA_PERCENT') / 100,
      vipCidr: need('APPNET_VIP_CIDR'),
    };
  }

  // ── Logs ────────────────────────────────────────────────────────────────────────────────────────────────────
  const logDir = get<string>('APPNET_ENVOY_LOG_DESTINATION');
  const envoyLog: Config['envoyLog'] =
    logDir === undefined
      ? null
      : {
          dir: logDir,
          name: need('APPNET_ENVOY_LOG_NAME'),
          maxBytes: Math.round(need<number>('APPNET_AGENT_MAX_LOG_FILE_SIZE') * 1_048_576),
          retention: need('APPNET_AGENT_MAX_RETENTION_COUNT'),
        };

  if (problems.length > 0) {
    throw new AgentError('AGENT_ERR_CONFIG', `the configuration has ${problems.length} problem${problems.length === 1 ? '' : 's'}:`, { problems });
  }

  const hcInterval = isSet('HC_POLL_INTERVAL_MS')
    ? need<number>('HC_POLL_INTERVAL_MS')
    : isSet('APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S')
      ? need<number>('APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S') * 1000
      : need<number>('HC_POLL_INTERVAL_MS');
  const concurrency = need<number>('ENVOY_CONCURRENCY');
  const maxRequests = need<number>('MAX_REQUESTS_PER_IO_CYCLE');
  const usedMode: Mode = mode;

  const config: Config = {
    mode: usedMode,
    envoyBinary: need('ENVOY_BINARY'),
    runtimeDir,
    runtimeDirOwned: configuredRuntimeDir === undefined,
    bootstrapPath: configFile ?? `${runtimeDir}/envoy-bootstrap.yaml`,
    userBootstrap,
    envoyLogLevel: need('ENVOY_LOG_LEVEL'),
    agentLogLevel: get('APPNET_AGENT_LOG_LEVEL') ?? null,
    concurrency: concurrency > 0 ? concurrency : usedMode === 'relay' ? 1 : null,
    drainTimeS: need('LISTENER_DRAIN_WAIT_TIME_S'),
    disableHotRestart: need('DISABLE_HOT_RESTART'),
    skipDeprecatedLogs: need('ENVOY_SKIP_DEPRECATED_LOGS'),
    restartCount: need('APPNET_ENVOY_RESTART_COUNT'),
    envoyAdmin: { address: envoyAdminAddress, accessLogPath: get<string>('ENVOY_ADMIN_ACCESS_LOG_FILE') ?? `${runtimeDir}/envoy_admin_access.log`, ipv4Compat: ipv6Admin && envoyAdminMode === 'tcp' },
    agentAdmin,
    loggingResetTimeoutMs: need<number>('APPNET_AGENT_LOGGING_RESET_TIMEOUT') * 1000,
    health: { pollIntervalMs: hcInterval, disconnectedTimeoutMs: need<number>('HC_DISCONNECTED_TIMEOUT_S') * 1000 },
    readinessProbe: {
      intervalMs: need<number>('APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S') * 1000,
      timeoutMs: need<number>('APPNET_AGENT_POLL_ENVOY_READINESS_TIMEOUT_S') * 1000,
    },
    stats: { snapshotEnabled: need('ENABLE_STATS_SNAPSHOT'), snapshotIntervalMs: need<number>('APPNET_STATS_SNAPSHOT_INTERVAL_S') * 1000 },
    envoyLog,
    region,
    node: nodeId === undefined ? null : { id: nodeId, cluster: nodeCluster ?? nodeId },
    ecs: {
      xdsSocketUri: usedMode === 'ecs' ? (xdsEndpoint ?? null) : null,
      listenerPortMapping: get('APPNET_LISTENER_PORT_MAPPING') ?? null,
      containerIpMapping: get('APPNET_CONTAINER_IP_MAPPING') ?? null,
      namespaceName: get('NAMESPACE_NAME') ?? null,
      namespaceArn: get('NAMESPACE_ARN') ?? null,
      executionEnv: get('AWS_EXECUTION_ENV') ?? null,
      containerInstanceArn: get('ECS_CONTAINER_INSTANCE_ARN') ?? null,
      metadataUri: get('ECS_CONTAINER_METADATA_URI_V4') ?? null,
      fipsModeEnabled: need('APPNET_FIPS_MODE_ENABLED'),
      metricExtension: need<string>('APPMESH_METRIC_EXTENSION_VERSION') === '1',
      fixedStatsTags,
      initialFetchTimeoutS: need('ENVOY_INITIAL_FETCH_TIMEOUT'),
      sdsSocketPath: get('APPMESH_SDS_SOCKET_PATH') ?? null,
    },
    runtime: {
      setTracingDecision: need('APPMESH_SET_TRACING_DECISION'),
      noExtensionLookupByName: need('ENVOY_NO_EXTENSION_LOOKUP_BY_NAME'),
      useHttpClientForAwsCredentials: need('ENVOY_USE_HTTP_CLIENT_TO_FETCH_AWS_CREDENTIALS'),
      maxRequestsPerIoCycle: maxRequests > 0 ? maxRequests : null,
    },
    outlierEventLogPath: get<string>('ENVOY_OUTLIER_DETECTION_EVENT_LOG_PATH') ?? null,
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

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * APPNET_RELAY_CA_FILE: a configured file must be a readable PEM bundle; unset, the first system bundle that is
 * one (Amazon Linux's /etc/pki/tls/cert.pem first). Without a CA bundle Envoy would reject the relay bootstrap
 * with `Invalid path`, naming no variable.
 */
function relayCaFile(configured: string | undefined, io: ConfigIo, problems: string[]): string {
  const check = (path: string): string | null => {
    let content: string;
    try {
      content = io.readFile(path);
    } catch (err) {
      return `must name a readable CA bundle (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
    return content.includes('-----BEGIN CERTIFICATE-----') ? null : 'must name a CA bundle: PEM certificates (-----BEGIN CERTIFICATE-----)';
  };
  if (configured !== undefined) {
    const rule = check(configured);
    if (rule !== null) problems.push(problem('APPNET_RELAY_CA_FILE', configured, rule));
    return configured;
  }
  const found = CA_BUNDLES.find((path) => check(path) === null);
  if (found === undefined) {
    problems.push(problem('APPNET_RELAY_CA_FILE', undefined, `must be set in relay mode on this system: none of ${CA_BUNDLES.join(', ')} is a readable CA bundle`));
    return CA_BUNDLES[0];
  }
  return found;
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

function parseEndpointUrl(raw: string): { host: string; port: number | null } | null {
  const withScheme = /^[a-z]+:\/\//.test(raw) ? raw : `https://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return null;
  }
  if (url.hostname === '' || (url.pathname !== '/' && url.pathname !== '')) return null;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { host, port: url.port === '' ? null : Number(url.port) };
}
