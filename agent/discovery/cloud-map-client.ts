/**
 * The Cloud Map calls the agent makes.
 *
 * - The calls discovery makes on every poll (ListNamespaces, GetNamespace, ListServices, GetService,
 *   DiscoverInstances, DiscoverInstancesRevision, ListInstances) go through a small signed JSON client
 *   (cloud-map-json-client.ts) when the credentials come from the environment or the ECS container credentials
 *   endpoint, as they do in an ECS task. Through the AWS SDK, 1,000 services cost the agent tens of megabytes
 *   (docs/benchmarks.md, "Memory").
 * - Everything else (registration: CreateService, DeleteService, RegisterInstance, DeregisterInstance), and every
 *   call when the credentials come from another source, goes through the AWS SDK v3 client, loaded on its first use
 *   (it is the largest dependency). With the SDK, credentials and region come from its default chain; the endpoint
 *   from AWS_ENDPOINT_URL_SERVICEDISCOVERY when set (moto, LocalStack), with the SDK's `data-` host prefix disabled
 *   so that DiscoverInstances reaches such an endpoint.
 */
import { collectGarbage, dependency } from '../system/index.ts';
import { credentialSource } from './aws-credentials.ts';
import { createCloudMapJsonClient, type CloudMapJsonClient, type CloudMapOperation } from './cloud-map-json-client.ts';
import type { CloudMapInstance } from './snapshot.ts';

export interface NamespaceRef {
  readonly id: string;
  readonly name: string;
  readonly arn: string;
}

/** Every call takes an optional signal: a stop during start-up or a deadline aborts the request in flight. */
export interface CloudMap {
  findNamespace(nameOrArn: string, signal?: AbortSignal): Promise<NamespaceRef | null>;
  /** false only when Cloud Map says the namespace does not exist (NamespaceNotFound). */
  namespaceExists(namespaceId: string, signal?: AbortSignal): Promise<boolean>;
  /**
   * The namespace's services, in the order Cloud Map lists them (creation order), with Cloud Map's InstanceCount
   * when it gives one (AWS does; moto does not).
   */
  listServices(namespaceId: string, signal?: AbortSignal): Promise<Array<{ id: string; name: string; instanceCount?: number }>>;
  /** Creates the service, or returns the id of the one that exists already (Cloud Map's ServiceAlreadyExists). */
  createService(namespaceId: string, name: string, signal?: AbortSignal): Promise<string>;
  deleteService(serviceId: string, signal?: AbortSignal): Promise<void>;
  registerInstance(serviceId: string, instanceId: string, attributes: Record<string, string>, signal?: AbortSignal): Promise<void>;
  deregisterInstance(serviceId: string, instanceId: string, signal?: AbortSignal): Promise<void>;
  discoverRevision(namespaceName: string, serviceName: string, signal?: AbortSignal): Promise<number>;
  /**
   * The service's instances and the revision they are at. DiscoverInstances returns at most 1,000 instances and
   * has no pagination; a full page is read again with ListInstances, page by page, so a service with more
   * instances is seen whole (ListInstances does not filter by health).
   */
  discoverInstances(namespaceName: string, serviceName: string, serviceId: string, signal?: AbortSignal): Promise<{ instances: CloudMapInstance[]; revision: number | null }>;
  /** Calls made so far, by operation (for the steady-state benchmark and /metrics). */
  readonly calls: ReadonlyMap<string, number>;
  close(): void;
}

/** Cloud Map's "does not exist" answers: ServiceNotFound, NamespaceNotFound, InstanceNotFound. */
export function isNotFound(err: unknown, what: 'Service' | 'Namespace' | 'Instance'): boolean {
  return (err as { name?: string }).name === `${what}NotFound`;
}

/** DiscoverInstances' page size (its maximum). */
export const DISCOVER_MAX_RESULTS = 1000;

/** Throttling and overload answers, after which the poll backs off further. */
export function isThrottling(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return ['ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException'].includes(e.name ?? '') || e.$metadata?.httpStatusCode === 429 || e.$metadata?.httpStatusCode === 503;
}

/**
 * A burst of calls: at least BURST_CALLS, each within QUIET_MS of the one before. The start-up discovery is one (a
 * call per service), so is a change that reaches many services at once. Such a burst, and the rendering of the xDS
 * files that follows it, grows V8's heap by tens of megabytes of short-lived objects; V8 collects them but keeps
 * the pages they filled in its pool, and its own memory reducer waits for the agent to allocate slowly, which a
 * polling agent seldom does (at 1,000 services: 42 MiB of private memory 3 s after discovery; 19 to 20 MiB after one
 * memory-reducing collection). So once a burst is over (QUIET_MS without a call), one memory-reducing collection.
 */
const BURST_CALLS = 200;
const QUIET_MS = 1000;

/** Calls the JSON client makes; the rest go through the SDK. */
const JSON_OPERATIONS: ReadonlySet<string> = new Set<CloudMapOperation>(['ListNamespaces', 'GetNamespace', 'ListServices', 'GetService', 'ListInstances', 'DiscoverInstances', 'DiscoverInstancesRevision']);

/** Cloud Map's JSON answers (the SDK returns the same shapes). */
type Answer = Record<string, any>;

/**
 * `env` is the environment the credentials and the endpoint come from (the agent's, which the AWS SDK reads too).
 * Without it, or with `useSdkOnly` (tests and benchmarks compare the two), every call goes through the SDK.
 */
export async function createCloudMapClient(settings: { region: string; env?: Readonly<Record<string, string | undefined>>; useSdkOnly?: boolean }): Promise<CloudMap> {
  const env = settings.env ?? {};
  const credentials = settings.useSdkOnly || settings.env === undefined ? null : credentialSource(env);
  // Read once, here: the SDK client, made at its first call, goes to the same endpoint as the JSON client.
  const endpointUrl = env['AWS_ENDPOINT_URL_SERVICEDISCOVERY'] || env['AWS_ENDPOINT_URL'] || null;
  const json: CloudMapJsonClient | null = credentials === null ? null : createCloudMapJsonClient({ region: settings.region, endpointUrl, credentials });
  let sdkClient: { sdk: ReturnType<typeof dependency<'cloud-map-sdk'>>; client: InstanceType<ReturnType<typeof dependency<'cloud-map-sdk'>>['ServiceDiscoveryClient']> } | null = null;
  const sdkSend = (operation: string, input: Answer, signal?: AbortSignal): Promise<Answer> => {
    if (sdkClient === null) {
      const sdk = dependency('cloud-map-sdk');
      // Deadlines on every call: a Cloud Map that stops answering must fail the poll, not hang it.
      const client = new sdk.ServiceDiscoveryClient({
        region: settings.region,
        ...(endpointUrl !== null ? { endpoint: endpointUrl } : {}),
        disableHostPrefix: true,
        maxAttempts: 2,
        requestHandler: { connectionTimeout: 2000, requestTimeout: 5000, throwOnRequestTimeout: true },
      });
      sdkClient = { sdk, client };
    }
    const Command = (sdkClient.sdk as unknown as Record<string, new (input: Answer) => never>)[`${operation}Command`];
    if (Command === undefined) throw new Error(`the AWS SDK has no ${operation}Command`);
    return sdkClient.client.send(new Command(input), signal ? { abortSignal: signal } : {}) as Promise<Answer>;
  };
  const calls = new Map<string, number>();
  const namespaceOf = new Map<string, string>();
  let burst = 0;
  let lastCallMs = 0;
  let afterBurst: NodeJS.Timeout | null = null;
  const called = () => {
    const now = Date.now();
    burst = now - lastCallMs > QUIET_MS ? 1 : burst + 1;
    lastCallMs = now;
    if (burst < BURST_CALLS) return;
    if (afterBurst !== null) afterBurst.refresh();
    else {
      afterBurst = setTimeout(() => {
        afterBurst = null;
        burst = 0;
        collectGarbage('reduce-memory');
      }, QUIET_MS).unref();
    }
  };
  const send = (operation: string, input: Answer, signal?: AbortSignal): Promise<Answer> => {
    calls.set(operation, (calls.get(operation) ?? 0) + 1);
    const answer = json !== null && JSON_OPERATIONS.has(operation) ? json.call(operation as CloudMapOperation, input, signal) : sdkSend(operation, input, signal);
    return answer.finally(called);
  };
  return {
    calls,
    async findNamespace(nameOrArn, signal) {
      let token: string | undefined;
      do {
        const page = await send('ListNamespaces', token ? { NextToken: token } : {}, signal);
        const found = (page['Namespaces'] as Answer[] | undefined)?.find((n) => n['Name'] === nameOrArn || n['Arn'] === nameOrArn);
        if (found?.['Id'] && found['Name'] && found['Arn']) return { id: String(found['Id']), name: String(found['Name']), arn: String(found['Arn']) };
        token = page['NextToken'];
      } while (token);
      return null;
    },
    async namespaceExists(namespaceId, signal) {
      try {
        await send('GetNamespace', { Id: namespaceId }, signal);
        return true;
      } catch (err) {
        if (isNotFound(err, 'Namespace')) return false;
        throw err;
      }
    },
    async listServices(namespaceId, signal) {
      const out: Array<{ id: string; name: string; instanceCount?: number }> = [];
      let token: string | undefined;
      do {
        const page = await send('ListServices', { ...(token ? { NextToken: token } : {}), MaxResults: 100, Filters: [{ Name: 'NAMESPACE_ID', Values: [namespaceId], Condition: 'EQ' }] }, signal);
        for (const s of (page['Services'] as Answer[] | undefined) ?? []) {
          if (s['Id'] && s['Name']) out.push({ id: String(s['Id']), name: String(s['Name']), ...(typeof s['InstanceCount'] === 'number' ? { instanceCount: s['InstanceCount'] } : {}) });
        }
        token = page['NextToken'];
      } while (token);
      // Some emulators ignore the filter. A service seen for the first time is checked once with GetService (its
      // namespace never changes), so the steady state costs nothing extra.
      const kept: Array<{ id: string; name: string; instanceCount?: number }> = [];
      for (const s of out) {
        let ns = namespaceOf.get(s.id);
        if (ns === undefined) {
          try {
            const got = await send('GetService', { Id: s.id }, signal);
            ns = String(got['Service']?.['NamespaceId'] ?? '');
            namespaceOf.set(s.id, ns);
          } catch (err) {
            // Deleted between the list and this call (another task removing a duplicate it made): not there.
            if (isNotFound(err, 'Service')) continue;
            throw err;
          }
        }
        if (ns === namespaceId) kept.push(s);
      }
      return kept;
    },
    async createService(namespaceId, name, signal) {
      try {
        const res = await send('CreateService', { Name: name, NamespaceId: namespaceId, Description: 'ECS Service Connect (ecs-service-connect-agent)' }, signal);
        if (!res['Service']?.['Id']) throw new Error(`CreateService ${name}: no service id in the answer`);
        return String(res['Service']['Id']);
      } catch (err) {
        const existing = (err as { name?: string; ServiceId?: string }).ServiceId;
        if ((err as { name?: string }).name === 'ServiceAlreadyExists' && existing) return existing;
        throw err;
      }
    },
    async deleteService(serviceId, signal) {
      await send('DeleteService', { Id: serviceId }, signal);
    },
    async registerInstance(serviceId, instanceId, attributes, signal) {
      await send('RegisterInstance', { ServiceId: serviceId, InstanceId: instanceId, Attributes: attributes }, signal);
    },
    async deregisterInstance(serviceId, instanceId, signal) {
      await send('DeregisterInstance', { ServiceId: serviceId, InstanceId: instanceId }, signal);
    },
    async discoverRevision(namespaceName, serviceName, signal) {
      const res = await send('DiscoverInstancesRevision', { NamespaceName: namespaceName, ServiceName: serviceName }, signal);
      return Number(res['InstancesRevision'] ?? 0);
    },
    async discoverInstances(namespaceName, serviceName, serviceId, signal) {
      const res = await send('DiscoverInstances', { NamespaceName: namespaceName, ServiceName: serviceName, HealthStatus: 'HEALTHY_OR_ELSE_ALL', MaxResults: DISCOVER_MAX_RESULTS }, signal);
      const revision = res['InstancesRevision'] === undefined ? null : Number(res['InstancesRevision']);
      // Only the id and the attributes are kept: not the rest of the answer (namespace and service names, health).
      const pick = (id: unknown, attributes: unknown): CloudMapInstance => ({
        ...(typeof id === 'string' ? { InstanceId: id } : {}),
        ...(attributes !== null && typeof attributes === 'object' ? { Attributes: attributes as Record<string, string> } : {}),
      });
      const found = (res['Instances'] as Answer[] | undefined) ?? [];
      if (found.length < DISCOVER_MAX_RESULTS) return { instances: found.map((i) => pick(i['InstanceId'], i['Attributes'])), revision };
      const instances: CloudMapInstance[] = [];
      let token: string | undefined;
      do {
        const page = await send('ListInstances', { ServiceId: serviceId, MaxResults: 100, ...(token ? { NextToken: token } : {}) }, signal);
        for (const i of (page['Instances'] as Answer[] | undefined) ?? []) instances.push(pick(i['Id'], i['Attributes']));
        token = page['NextToken'];
      } while (token);
      return { instances, revision };
    },
    close: () => {
      if (afterBurst !== null) clearTimeout(afterBurst);
      json?.close();
      sdkClient?.client.destroy();
    },
  };
}
