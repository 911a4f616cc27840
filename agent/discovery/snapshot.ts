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
 */
import { isIP } from 'node:net';
import { isPort } from '../config/parsers.ts';
import type { AppProtocol } from './service-connect-config.ts';

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

function port(v: string | undefined): number | null {
  const n = Number(v);
  return isPort(n) ? n : null;
}
function seconds(v: string | undefined): number | null {
  const n = Number(v);
  return v !== undefined && Number.isInteger(n) && n >= 0 ? n : null;
}

/**
 * A service from its instances. Instances without a usable address are skipped. The alias, protocol and timeouts
 * come from the first instance that states them; `previous` keeps them when the service has no instance left.
 */
export function serviceFromInstances(discoveryName: string, instances: readonly CloudMapInstance[], previous?: DiscoveredService): DiscoveredService {
  const endpoints: Endpoint[] = [];
  let alias: DiscoveredService['alias'] = null;
  let protocol: AppProtocol | null = null;
  let perRequestTimeoutS: number | null = null;
  let idleTimeoutS: number | null = null;
  for (const inst of instances) {
    const a = inst.Attributes ?? {};
    const ip = a[ATTRIBUTES.ipv4];
    const p = port(a[ATTRIBUTES.port]);
    if (ip !== undefined && isIP(ip) === 4 && p !== null && inst.InstanceId !== undefined) {
      endpoints.push({ instanceId: inst.InstanceId, ip, port: p, zone: a[ATTRIBUTES.zone] ?? null });
    }
    const aliasPort = port(a[ATTRIBUTES.aliasPort]);
    if (alias === null && a[ATTRIBUTES.aliasDnsName] && aliasPort !== null) alias = { dnsName: a[ATTRIBUTES.aliasDnsName] as string, port: aliasPort };
    const proto = a[ATTRIBUTES.protocol];
    if (protocol === null && (proto === 'http' || proto === 'http2' || proto === 'grpc' || proto === 'tcp')) protocol = proto;
    perRequestTimeoutS ??= seconds(a[ATTRIBUTES.perRequestTimeout]);
    idleTimeoutS ??= seconds(a[ATTRIBUTES.idleTimeout]);
  }
  endpoints.sort((x, y) => (x.instanceId < y.instanceId ? -1 : x.instanceId > y.instanceId ? 1 : 0));
  return {
    discoveryName,
    alias: alias ?? previous?.alias ?? null,
    protocol: protocol ?? previous?.protocol ?? 'tcp',
    perRequestTimeoutS: perRequestTimeoutS ?? previous?.perRequestTimeoutS ?? null,
    idleTimeoutS: idleTimeoutS ?? previous?.idleTimeoutS ?? null,
    endpoints,
  };
}

/** The name and port clients call: the alias, else discoveryName.namespace on the endpoints' port. */
export function callTarget(service: DiscoveredService, namespace: string): { names: string[]; port: number } | null {
  const fallbackName = `${service.discoveryName}.${namespace}`;
  if (service.alias !== null) return { names: [...new Set([service.alias.dnsName, fallbackName])], port: service.alias.port };
  const p = service.endpoints[0]?.port;
  return p === undefined ? null : { names: [fallbackName], port: p };
}

/** Virtual IPs from a loopback range (default 127.255.0.0/16), first address first, one per service, stable for the life of the agent. */
export class VipAllocator {
  readonly #byService = new Map<string, string>();
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

  vipFor(discoveryName: string): string {
    let vip = this.#byService.get(discoveryName);
    if (vip === undefined) {
      if (this.#next >= this.#size - 1) throw new Error(`virtual IPs exhausted: more than ${this.#size - 2} services`);
      const n = this.#base + this.#next;
      vip = `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
      this.#next += 1;
      this.#byService.set(discoveryName, vip);
    }
    return vip;
  }

  get assigned(): ReadonlyMap<string, string> {
    return this.#byService;
  }
}
