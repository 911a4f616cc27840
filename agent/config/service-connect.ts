/**
 * The Service Connect configuration for Cloud Map mode: ECS's `serviceConnectConfiguration` (namespace, services,
 * accessLogConfiguration) and the task definition's `portMappings`, in one JSON document, as users copy them from
 * their ECS definitions. validateServiceConnectConfig checks it by ECS's rules and returns one message per
 * violation; readConfig lists them with the rest of the configuration's problems, before anything starts. Pure.
 */
import { isPort } from './parsers.ts';

export type AppProtocol = 'http' | 'http2' | 'grpc' | 'tcp';

export interface ServiceConnectService {
  readonly portName: string;
  readonly discoveryName: string;
  /** The alias clients use; null when the entry has none (clients then use discoveryName.namespace). */
  readonly alias: { readonly dnsName: string; readonly port: number } | null;
  readonly containerPort: number;
  readonly protocol: AppProtocol;
  /** The port this task's inbound listener takes: ingressPortOverride, else 15000 + the entry's index. */
  readonly ingressPort: number;
  readonly perRequestTimeoutS: number | null;
  readonly idleTimeoutS: number | null;
}

export interface ServiceConnectConfig {
  readonly namespace: string;
  readonly services: readonly ServiceConnectService[];
  readonly accessLog: { readonly format: 'TEXT' | 'JSON'; readonly includeQueryParameters: boolean } | null;
  /** ECS service and cluster names, for the ServiceName and ClusterName metric labels. */
  readonly serviceName: string | null;
  readonly clusterName: string | null;
}

/** The default inbound port of services[i] without ingressPortOverride. */
export const DEFAULT_INGRESS_PORT_BASE = 15000;

/** The rules names, DNS names and timeouts follow, here and in what Cloud Map returns (snapshot.ts). */
export const NAME = /^[a-z0-9_][a-z0-9_-]{0,63}$/;
export const NAME_RULE = 'must be 1 to 64 characters of a-z, 0-9, _ and -, not starting with -';
export const DNS_NAME = /^[a-z0-9_][a-z0-9_.-]{0,126}$/;
export const DNS_NAME_RULE = 'must be 1 to 127 characters of a-z, 0-9, _, . and -, not starting with -';
export const MAX_TIMEOUT = 2147483647;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

export function validateServiceConnectConfig(doc: unknown): { config: ServiceConnectConfig | null; problems: string[] } {
  const problems: string[] = [];
  const bad = (path: string, value: unknown, rule: string) => problems.push(`${path}=${JSON.stringify(value)}: ${rule}`);
  if (!isObject(doc)) {
    bad('(document)', doc, 'must be a JSON object with namespace, services and portMappings');
    return { config: null, problems };
  }
  for (const key of Object.keys(doc)) {
    if (!['namespace', 'services', 'accessLogConfiguration', 'portMappings', 'serviceName', 'clusterName'].includes(key)) {
      bad(key, doc[key], 'is not a field of the Service Connect configuration (namespace, services, accessLogConfiguration, portMappings, serviceName, clusterName)');
    }
  }
  const namespace = doc['namespace'];
  if (typeof namespace !== 'string' || namespace.trim() === '') bad('namespace', namespace, 'must be a Cloud Map namespace name or ARN');

  // portMappings
  const mappings = new Map<string, { containerPort: number; protocol: AppProtocol }>();
  const rawMappings = doc['portMappings'] ?? [];
  if (!Array.isArray(rawMappings)) bad('portMappings', rawMappings, 'must be a list');
  else {
    rawMappings.forEach((m: unknown, i) => {
      const p = `portMappings[${i}]`;
      if (!isObject(m)) return bad(p, m, 'must be an object with name and containerPort');
      const name = m['name'];
      if (typeof name !== 'string' || !NAME.test(name)) bad(`${p}.name`, name, NAME_RULE);
      const port = m['containerPort'];
      if (!isPort(port)) bad(`${p}.containerPort`, port, 'must be an integer from 1 to 65535');
      const proto = m['appProtocol'];
      if (proto !== undefined && proto !== 'http' && proto !== 'http2' && proto !== 'grpc') bad(`${p}.appProtocol`, proto, 'must be http, http2 or grpc, or absent for TCP');
      if (typeof name === 'string') {
        if (mappings.has(name)) bad(`${p}.name`, name, 'must be unique among portMappings');
        mappings.set(name, { containerPort: Number(port), protocol: (typeof proto === 'string' ? proto : 'tcp') as AppProtocol });
      }
    });
  }

  // services
  const services: ServiceConnectService[] = [];
  const rawServices = doc['services'] ?? [];
  const seenDiscovery = new Set<string>();
  const seenIngress = new Set<number>();
  let withoutDiscoveryName = 0;
  if (!Array.isArray(rawServices)) bad('services', rawServices, 'must be a list (empty for a client-only service)');
  else {
    rawServices.forEach((s: unknown, i) => {
      const p = `services[${i}]`;
      if (!isObject(s)) return bad(p, s, 'must be an object with portName');
      const portName = s['portName'];
      const mapping = typeof portName === 'string' ? mappings.get(portName) : undefined;
      if (typeof portName !== 'string' || mapping === undefined) {
        bad(`${p}.portName`, portName, `must name one of portMappings${mappings.size > 0 ? `: ${[...mappings.keys()].join(', ')}` : ' (there are none)'}`);
      }
      let discoveryName = s['discoveryName'];
      if (discoveryName === undefined) {
        withoutDiscoveryName += 1;
        if (withoutDiscoveryName === 2) bad(`${p}.discoveryName`, discoveryName, 'may be omitted in only one services entry');
        discoveryName = portName;
      } else if (typeof discoveryName !== 'string' || !NAME.test(discoveryName)) {
        bad(`${p}.discoveryName`, discoveryName, NAME_RULE);
      }
      if (typeof discoveryName === 'string') {
        if (seenDiscovery.has(discoveryName)) bad(`${p}.discoveryName`, discoveryName, 'must be unique in the configuration');
        seenDiscovery.add(discoveryName);
      }
      let alias: ServiceConnectService['alias'] = null;
      const aliases = s['clientAliases'] ?? [];
      if (!Array.isArray(aliases) || aliases.length > 1) bad(`${p}.clientAliases`, aliases, 'must have one element (or be absent)');
      else if (aliases.length === 1) {
        const a = aliases[0] as unknown;
        if (!isObject(a)) bad(`${p}.clientAliases[0]`, a, 'must be an object with port and dnsName');
        else {
          const port = a['port'];
          if (!isPort(port)) bad(`${p}.clientAliases[0].port`, port, 'must be an integer from 1 to 65535');
          const dnsName = a['dnsName'] ?? (typeof discoveryName === 'string' && typeof namespace === 'string' ? `${discoveryName}.${namespace}` : undefined);
          if (typeof dnsName !== 'string' || !DNS_NAME.test(dnsName)) bad(`${p}.clientAliases[0].dnsName`, dnsName, DNS_NAME_RULE);
          else alias = { dnsName, port: Number(port) };
        }
      }
      const override = s['ingressPortOverride'];
      if (override !== undefined && !isPort(override)) {
        bad(`${p}.ingressPortOverride`, override, 'must be an integer from 1 to 65535');
      }
      const ingressPort = typeof override === 'number' ? override : DEFAULT_INGRESS_PORT_BASE + i;
      if (seenIngress.has(ingressPort)) bad(`${p}.ingressPortOverride`, override ?? ingressPort, 'must differ from the other entries\' ingress ports');
      seenIngress.add(ingressPort);
      let perRequestTimeoutS: number | null = null;
      let idleTimeoutS: number | null = null;
      const timeout = s['timeout'];
      if (timeout !== undefined) {
        if (!isObject(timeout)) bad(`${p}.timeout`, timeout, 'must be an object with idleTimeoutSeconds and perRequestTimeoutSeconds');
        else {
          for (const [key, set] of [
            ['idleTimeoutSeconds', (v: number) => (idleTimeoutS = v)],
            ['perRequestTimeoutSeconds', (v: number) => (perRequestTimeoutS = v)],
          ] as const) {
            const v = timeout[key];
            if (v === undefined) continue;
            if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > MAX_TIMEOUT) bad(`${p}.timeout.${key}`, v, `must be an integer from 0 to ${MAX_TIMEOUT}`);
            else set(v as number);
          }
          if (timeout['perRequestTimeoutSeconds'] !== undefined && mapping?.protocol === 'tcp') {
            bad(`${p}.timeout.perRequestTimeoutSeconds`, timeout['perRequestTimeoutSeconds'], 'is not allowed when the port mapping has no appProtocol (TCP)');
          }
        }
      }
      if (mapping !== undefined && typeof discoveryName === 'string' && typeof portName === 'string') {
        services.push({ portName, discoveryName, alias, containerPort: mapping.containerPort, protocol: mapping.protocol, ingressPort, perRequestTimeoutS, idleTimeoutS });
      }
    });
  }

  // accessLogConfiguration
  let accessLog: ServiceConnectConfig['accessLog'] = null;
  const log = doc['accessLogConfiguration'];
  if (log !== undefined) {
    if (!isObject(log)) bad('accessLogConfiguration', log, 'must be an object with format');
    else {
      const format = log['format'];
      if (format !== 'TEXT' && format !== 'JSON') bad('accessLogConfiguration.format', format, 'must be TEXT or JSON');
      const q = log['includeQueryParameters'] ?? 'DISABLED';
      if (q !== 'DISABLED' && q !== 'ENABLED') bad('accessLogConfiguration.includeQueryParameters', q, 'must be DISABLED or ENABLED');
      if (format === 'TEXT' || format === 'JSON') accessLog = { format, includeQueryParameters: q === 'ENABLED' };
    }
  }
  for (const key of ['serviceName', 'clusterName'] as const) {
    const v = doc[key];
    if (v !== undefined && (typeof v !== 'string' || v === '')) bad(key, v, 'must be a non-empty string');
  }
  if (problems.length > 0 || typeof namespace !== 'string') return { config: null, problems };
  return {
    config: {
      namespace,
      services,
      accessLog,
      serviceName: typeof doc['serviceName'] === 'string' ? doc['serviceName'] : null,
      clusterName: typeof doc['clusterName'] === 'string' ? doc['clusterName'] : null,
    },
    problems,
  };
}

/**
 * APPNET_TASK_IPV4 and APPNET_TASK_ID when services[] registers instances and no task metadata gives them: one line
 * per variable missing.
 */
export function identityProblems(sc: ServiceConnectConfig, identity: { readonly ipv4: string | null; readonly taskId: string | null }): string[] {
  if (sc.services.length === 0) return [];
  const missing: string[] = [];
  if (identity.ipv4 === null) missing.push('APPNET_TASK_IPV4="": must be set when services[] is not empty (no task metadata endpoint): instances are registered with it');
  if (identity.taskId === null) missing.push('APPNET_TASK_ID="": must be set when services[] is not empty (no task metadata endpoint): it names the instances');
  return missing;
}
