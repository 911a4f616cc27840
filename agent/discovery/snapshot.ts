/**
 * What discovery knows about the namespace: every service and its endpoints, built from Cloud Map instances and
 * their attributes. Pure.
 *
 * Instance attributes this agent writes, and reads from any instance (docs/cloud-map.md):
 *   AWS_INSTANCE_IPV4, AWS_INSTANCE_PORT, AVAILABILITY_ZONE   Cloud Map's standard attributes
 *   SC_CLIENT_ALIAS_DNS_NAME, SC_CLIENT_ALIAS_PORT            the name and port clients call (clientAliases)
 *   SC_APP_PROTOCOL                                           http, http2, grpc or tcp
 *   SC_PER_REQUEST_TIMEOUT_S, SC_IDLE_TIMEOUT_S               the service's timeouts, when set
 *   SC_TASK_ID                                                the task that registered the instance
 * Instances registered by others need only the standard attributes; they are then treated as TCP, called at
 * discoveryName.namespace on the instances' port.
 *
 * Everything read from Cloud Map is untrusted: any principal allowed to register in the namespace reaches every
 * task. Each value is checked by the rule the agent's own configuration follows for the same field (names and DNS
 * names as in config/service-connect.ts, ports, timeouts and addresses with the parsers of config/parsers.ts). An
 * instance with one bad value is skipped whole, and the problem is returned (the caller logs it once and counts
 * it); a service whose name breaks the rule is skipped. Nothing one record holds reaches another service.
 */
import { DNS_NAME, DNS_NAME_RULE, MAX_TIMEOUT, NAME, NAME_RULE, integer, ipv4Address, oneOf, type AppProtocol, type Parser } from '../config/index.ts';
import type { HostsEntry } from '../hosts/index.ts';

export interface Endpoint {
  readonly instanceId: string;
  readonly ip: string;
  readonly port: number;
  readonly zone: string | null;
}

export interface DiscoveredService {
  readonly discoveryName: string;
  readonly alias: { readonly dnsName: string; readonly port: number } | null;
  readonly protocol: AppProtocol;
  readonly perRequestTimeoutS: number | null;
  readonly idleTimeoutS: number | null;
  readonly endpoints: readonly Endpoint[];
}

export interface DiscoverySnapshot {
  readonly namespace: string;
  /** By discovery name (the Cloud Map service name). */
  readonly services: ReadonlyMap<string, DiscoveredService>;
}

export interface CloudMapInstance {
  readonly InstanceId?: string;
  readonly Attributes?: Readonly<Record<string, string>>;
}

export const ATTRIBUTES = {
  ipv4: 'AWS_INSTANCE_IPV4',
  port: 'AWS_INSTANCE_PORT',
  zone: 'AVAILABILITY_ZONE',
  aliasDnsName: 'SC_CLIENT_ALIAS_DNS_NAME',
  aliasPort: 'SC_CLIENT_ALIAS_PORT',
  protocol: 'SC_APP_PROTOCOL',
  perRequestTimeout: 'SC_PER_REQUEST_TIMEOUT_S',
  idleTimeout: 'SC_IDLE_TIMEOUT_S',
  taskId: 'SC_TASK_ID',
} as const;


/** Limits on what is read from Cloud Map; each is reported when reached, never applied silently. */
export const LIMITS = {
  /** Endpoints per service. Cloud Map's default quota is 1,000 instances per service; raised quotas fit. */
  instancesPerService: 5000,
} as const;

/** One record the agent skipped: which service, which instance (null: the service itself), which value, which rule. */
export interface RecordProblem {
  readonly service: string;
  readonly instance: string | null;
  readonly attribute: string;
  /** The value as received, quoted and cut to 80 characters (it goes into a log line). */
  readonly value: string;
  readonly rule: string;
}

/** The key a problem is logged and counted under: the same problem seen on every poll is one problem. */
export function problemKey(p: RecordProblem): string {
  return JSON.stringify([p.service, p.instance, p.attribute, p.rule]);
}

export function quoteValue(v: string | undefined): string {
  if (v === undefined) return '(absent)';
  const q = JSON.stringify(v);
  return q.length > 80 ? `${q.slice(0, 77)}...` : q;
}

const pattern = (re: RegExp, rule: string): Parser<string> => ({ type: 'string', rule, parse: (raw) => (re.test(raw) ? { ok: true, value: raw } : { ok: false, rule }) });

/** Cloud Map's own instance id rule, and the rules of the agent's configuration for each attribute. */
const INSTANCE_ID = pattern(/^[A-Za-z0-9_/:.@-]{1,64}$/, 'must be 1 to 64 characters of A-Z, a-z, 0-9, _, /, :, ., @ and - (a Cloud Map instance id)');
const RULES = {
  [ATTRIBUTES.ipv4]: ipv4Address,
  [ATTRIBUTES.port]: integer(1, 65535),
  [ATTRIBUTES.zone]: pattern(/^[a-z0-9-]{1,64}$/, 'must be 1 to 64 characters of a-z, 0-9 and - (an availability zone such as us-east-1a)'),
  [ATTRIBUTES.aliasDnsName]: pattern(DNS_NAME, DNS_NAME_RULE),
  [ATTRIBUTES.aliasPort]: integer(1, 65535),
  [ATTRIBUTES.protocol]: oneOf(['http', 'http2', 'grpc', 'tcp'] as const),
  [ATTRIBUTES.perRequestTimeout]: integer(0, MAX_TIMEOUT),
  [ATTRIBUTES.idleTimeout]: integer(0, MAX_TIMEOUT),
  [ATTRIBUTES.taskId]: pattern(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, - or _ (as APPNET_TASK_ID)'),
} as const;

/** A Cloud Map service name that breaks the discoveryName rule, or null when it is fine. */
export function serviceNameProblem(name: string): RecordProblem | null {
  return NAME.test(name) ? null : { service: name, instance: null, attribute: 'ServiceName', value: quoteValue(name), rule: NAME_RULE };
}

interface InstanceReading {
  readonly endpoint: Endpoint;
  readonly alias: DiscoveredService['alias'];
  readonly protocol: AppProtocol | null;
  readonly perRequestTimeoutS: number | null;
  readonly idleTimeoutS: number | null;
}

/** One instance, checked attribute by attribute: its reading, or the first rule it breaks. */
export function readInstance(service: string, inst: CloudMapInstance): { reading: InstanceReading | null; problem: RecordProblem | null } {
  const id = inst.InstanceId;
  const fail = (attribute: string, value: string | undefined, rule: string) => ({ reading: null, problem: { service, instance: id === undefined ? null : quoteValue(id).slice(1, -1), attribute, value: quoteValue(value), rule } });
  if (id === undefined || !INSTANCE_ID.parse(id).ok) return fail('InstanceId', id, INSTANCE_ID.rule);
  const a = inst.Attributes ?? {};
  const values: Record<string, string | number | undefined> = {};
  for (const [name, parser] of Object.entries(RULES)) {
    const raw = a[name];
    if (raw === undefined) continue;
    const parsed = (parser as Parser<string | number>).parse(raw);
    if (!parsed.ok) return fail(name, raw, parsed.rule);
    values[name] = parsed.value;
  }
  for (const required of [ATTRIBUTES.ipv4, ATTRIBUTES.port]) {
    if (values[required] === undefined) return fail(required, undefined, `must be set (${RULES[required].rule.replace(/^must be /, '')})`);
  }
  const aliasName = values[ATTRIBUTES.aliasDnsName] as string | undefined;
  const aliasPort = values[ATTRIBUTES.aliasPort] as number | undefined;
  if ((aliasName === undefined) !== (aliasPort === undefined)) {
    const missing = aliasName === undefined ? ATTRIBUTES.aliasDnsName : ATTRIBUTES.aliasPort;
    return fail(missing, undefined, `must be set together with ${missing === ATTRIBUTES.aliasDnsName ? ATTRIBUTES.aliasPort : ATTRIBUTES.aliasDnsName}`);
  }
  return {
    problem: null,
    reading: {
      endpoint: { instanceId: id, ip: values[ATTRIBUTES.ipv4] as string, port: values[ATTRIBUTES.port] as number, zone: (values[ATTRIBUTES.zone] as string | undefined) ?? null },
      alias: aliasName !== undefined && aliasPort !== undefined ? { dnsName: aliasName, port: aliasPort } : null,
      protocol: (values[ATTRIBUTES.protocol] as AppProtocol | undefined) ?? null,
      perRequestTimeoutS: (values[ATTRIBUTES.perRequestTimeout] as number | undefined) ?? null,
      idleTimeoutS: (values[ATTRIBUTES.idleTimeout] as number | undefined) ?? null,
    },
  };
}

/**
 * A service from its instances, and the instances it skipped. Instances are taken in instance-id order (one entry
 * per id: an emulator may return a re-registered id twice, the last one wins); the alias, protocol and timeouts
 * come from the first valid instance that states them; `previous` keeps them when the service has no instance left.
 * Past LIMITS.instancesPerService, the first ones by id are kept and the cut is reported.
 */
export function readService(discoveryName: string, instances: readonly CloudMapInstance[], previous?: DiscoveredService): { service: DiscoveredService; problems: RecordProblem[] } {
  const problems: RecordProblem[] = [];
  const byId = new Map<string, CloudMapInstance>();
  const anonymous: CloudMapInstance[] = [];
  for (const inst of instances) {
    if (typeof inst.InstanceId === 'string') byId.set(inst.InstanceId, inst);
    else anonymous.push(inst);
  }
  const ordered = [...anonymous, ...[...byId.keys()].sort().map((id) => byId.get(id) as CloudMapInstance)];
  const endpoints: Endpoint[] = [];
  let alias: DiscoveredService['alias'] = null;
  let protocol: AppProtocol | null = null;
  let perRequestTimeoutS: number | null = null;
  let idleTimeoutS: number | null = null;
  let valid = 0;
  for (const inst of ordered) {
    const { reading, problem } = readInstance(discoveryName, inst);
    if (problem !== null) problems.push(problem);
    if (reading === null) continue;
    valid += 1;
    if (endpoints.length >= LIMITS.instancesPerService) continue;
    endpoints.push(reading.endpoint);
    alias ??= reading.alias;
    protocol ??= reading.protocol;
    perRequestTimeoutS ??= reading.perRequestTimeoutS;
    idleTimeoutS ??= reading.idleTimeoutS;
  }
  if (valid > LIMITS.instancesPerService) {
    problems.push({ service: discoveryName, instance: null, attribute: 'Instances', value: String(valid), rule: `at most ${LIMITS.instancesPerService} instances per service are used; the first ${LIMITS.instancesPerService} by instance id are kept` });
  }
  return {
    service: {
      discoveryName,
      alias: alias ?? previous?.alias ?? null,
      protocol: protocol ?? previous?.protocol ?? 'tcp',
      perRequestTimeoutS: perRequestTimeoutS ?? previous?.perRequestTimeoutS ?? null,
      idleTimeoutS: idleTimeoutS ?? previous?.idleTimeoutS ?? null,
      endpoints,
    },
    problems,
  };
}

/** readService without the problems (benchmarks, tests). */
export function serviceFromInstances(discoveryName: string, instances: readonly CloudMapInstance[], previous?: DiscoveredService): DiscoveredService {
  return readService(discoveryName, instances, previous).service;
}

/** The name and port clients call: the alias, else discoveryName.namespace on the endpoints' port. */
export function callTarget(service: DiscoveredService, namespace: string): { names: string[]; port: number } | null {
  const fallbackName = `${service.discoveryName}.${namespace}`;
  if (service.alias !== null) return { names: [...new Set([service.alias.dnsName, fallbackName])], port: service.alias.port };
  const p = service.endpoints[0]?.port;
  return p === undefined ? null : { names: [fallbackName], port: p };
}

/**
 * The names apps resolve, one owner each. A name two services claim (an alias equal to another service's alias or
 * to its discoveryName.namespace) stays with the service that had it before (`owners`, carried from the previous
 * call), else goes to the service whose own fallback name it is, else to the first by name; the other service loses
 * that name, reported as a problem. So a record registered in another service can never take a name away.
 */
export function hostsEntries(
  snapshot: DiscoverySnapshot,
  vipOf: (name: string) => string | null,
  owners: ReadonlyMap<string, string> = new Map(),
): { entries: HostsEntry[]; owners: Map<string, string>; problems: RecordProblem[] } {
  const claims = new Map<string, string[]>();
  const targets = new Map<string, string[]>();
  for (const [name, service] of [...snapshot.services].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (vipOf(name) === null) continue;
    const target = callTarget(service, snapshot.namespace);
    if (target === null) continue;
    targets.set(name, target.names);
    for (const n of target.names) claims.set(n, [...(claims.get(n) ?? []), name]);
  }
  const next = new Map<string, string>();
  const problems: RecordProblem[] = [];
  for (const [hostName, claimants] of claims) {
    const previous = owners.get(hostName);
    const winner =
      claimants.length === 1
        ? (claimants[0] as string)
        : previous !== undefined && claimants.includes(previous)
          ? previous
          : (claimants.find((c) => `${c}.${snapshot.namespace}` === hostName) ?? (claimants[0] as string));
    next.set(hostName, winner);
    for (const loser of claimants) {
      if (loser !== winner) problems.push({ service: loser, instance: null, attribute: ATTRIBUTES.aliasDnsName, value: quoteValue(hostName), rule: `must not be a name another service has: "${hostName}" stays with service ${winner}` });
    }
  }
  const entries: HostsEntry[] = [];
  for (const [name, names] of targets) {
    const mine = names.filter((n) => next.get(n) === name);
    const ip = vipOf(name);
    if (mine.length > 0 && ip !== null) entries.push({ ip, names: mine });
  }
  return { entries, owners: next, problems };
}

/**
 * Virtual IPs from a loopback range (default 127.255.0.0/16), first address first, one per live service and
 * stable while the service lives. A service that leaves gives its address back; released addresses are reused
 * only once the never-used ones run out, oldest first, so a departed service's address is not handed to another
 * one soon after. When every address is taken, the services without one are reported by assign(), and get one as
 * soon as another service leaves.
 */
export class VipAllocator {
  readonly #byService = new Map<string, string>();
  readonly #released: string[] = [];
  readonly #base: number;
  readonly #size: number;
  #next = 1;

  constructor(cidr = '127.255.0.0/16') {
    const [addr, bits] = cidr.split('/');
    const octets = (addr ?? '').split('.').map(Number);
    const prefix = Number(bits);
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    this.#base = ((((octets[0] ?? 0) << 24) | ((octets[1] ?? 0) << 16) | ((octets[2] ?? 0) << 8) | (octets[3] ?? 0)) & mask) >>> 0;
    this.#size = 2 ** (32 - prefix);
  }

  /** Addresses in the range (network and broadcast addresses excluded). */
  get capacity(): number {
    return this.#size - 2;
  }

  /** The service's address, allocated when it has none; null when the range is exhausted. */
  vipOf(discoveryName: string): string | null {
    let vip = this.#byService.get(discoveryName) ?? null;
    if (vip !== null) return vip;
    if (this.#next < this.#size - 1) {
      const n = this.#base + this.#next;
      vip = `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
      this.#next += 1;
    } else {
      vip = this.#released.shift() ?? null;
    }
    if (vip !== null) this.#byService.set(discoveryName, vip);
    return vip;
  }

  /** As vipOf, but throws when the range is exhausted. */
  vipFor(discoveryName: string): string {
    const vip = this.vipOf(discoveryName);
    if (vip === null) throw new Error(`virtual IPs exhausted: more than ${this.capacity} services`);
    return vip;
  }

  /** The address a service has, without allocating. */
  lookup(discoveryName: string): string | null {
    return this.#byService.get(discoveryName) ?? null;
  }

  /** Releases the addresses of services not in `live`, then gives every live service one; returns those left without. */
  assign(live: Iterable<string>): string[] {
    const names = [...live].sort();
    const keep = new Set(names);
    for (const [name, vip] of this.#byService) {
      if (!keep.has(name)) {
        this.#byService.delete(name);
        this.#released.push(vip);
      }
    }
    return names.filter((name) => this.vipOf(name) === null);
  }

  get assigned(): ReadonlyMap<string, string> {
    return this.#byService;
  }
}
