/**
 * The Cloud Map calls the agent makes, over the real AWS SDK v3 client. The SDK is loaded only in Cloud Map mode
 * (it is the largest dependency). Credentials and region come from the default chain; the endpoint from
 * AWS_ENDPOINT_URL_SERVICEDISCOVERY when set (moto, LocalStack), with the SDK's `data-` host prefix disabled so that
 * DiscoverInstances reaches such an endpoint.
 */
import { dependency } from '../system/dependencies.ts';
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

export async function createCloudMapClient(settings: { region: string }): Promise<CloudMap> {
  const sdk = dependency('cloud-map-sdk');
  // Deadlines on every call: a Cloud Map that stops answering must fail the poll, not hang it.
  const client = new sdk.ServiceDiscoveryClient({ region: settings.region, disableHostPrefix: true, maxAttempts: 2, requestHandler: { connectionTimeout: 2000, requestTimeout: 5000, throwOnRequestTimeout: true } });
  const calls = new Map<string, number>();
  const namespaceOf = new Map<string, string>();
  const count = <T>(name: string, call: () => Promise<T>): Promise<T> => {
    calls.set(name, (calls.get(name) ?? 0) + 1);
    return call();
  };
  const opts = (signal?: AbortSignal) => (signal ? { abortSignal: signal } : {});
  return {
    calls,
    async findNamespace(nameOrArn, signal) {
      let token: string | undefined;
      do {
        const page = await count('ListNamespaces', () => client.send(new sdk.ListNamespacesCommand({ NextToken: token }), opts(signal)));
        const found = page.Namespaces?.find((n) => n.Name === nameOrArn || n.Arn === nameOrArn);
        if (found?.Id && found.Name && found.Arn) return { id: found.Id, name: found.Name, arn: found.Arn };
        token = page.NextToken;
      } while (token);
      return null;
    },
    async namespaceExists(namespaceId, signal) {
      try {
        await count('GetNamespace', () => client.send(new sdk.GetNamespaceCommand({ Id: namespaceId }), opts(signal)));
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
        const page = await count('ListServices', () =>
          client.send(new sdk.ListServicesCommand({ NextToken: token, MaxResults: 100, Filters: [{ Name: 'NAMESPACE_ID', Values: [namespaceId], Condition: 'EQ' }] }), opts(signal)),
        );
        for (const s of page.Services ?? []) if (s.Id && s.Name) out.push({ id: s.Id, name: s.Name, ...(typeof s.InstanceCount === 'number' ? { instanceCount: s.InstanceCount } : {}) });
        token = page.NextToken;
      } while (token);
      // Some emulators ignore the filter. A service seen for the first time is checked once with GetService (its
      // namespace never changes), so the steady state costs nothing extra.
      const kept: Array<{ id: string; name: string; instanceCount?: number }> = [];
      for (const s of out) {
        let ns = namespaceOf.get(s.id);
        if (ns === undefined) {
          try {
            const got = await count('GetService', () => client.send(new sdk.GetServiceCommand({ Id: s.id }), opts(signal)));
            ns = got.Service?.NamespaceId ?? '';
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
        const res = await count('CreateService', () =>
          client.send(new sdk.CreateServiceCommand({ Name: name, NamespaceId: namespaceId, Description: 'ECS Service Connect (ecs-service-connect-agent)' }), opts(signal)),
        );
        if (!res.Service?.Id) throw new Error(`CreateService ${name}: no service id in the answer`);
        return res.Service.Id;
      } catch (err) {
        const existing = (err as { name?: string; ServiceId?: string }).ServiceId;
        if ((err as { name?: string }).name === 'ServiceAlreadyExists' && existing) return existing;
        throw err;
      }
    },
    async deleteService(serviceId, signal) {
      await count('DeleteService', () => client.send(new sdk.DeleteServiceCommand({ Id: serviceId }), opts(signal)));
    },
    async registerInstance(serviceId, instanceId, attributes, signal) {
      await count('RegisterInstance', () => client.send(new sdk.RegisterInstanceCommand({ ServiceId: serviceId, InstanceId: instanceId, Attributes: attributes }), opts(signal)));
    },
    async deregisterInstance(serviceId, instanceId, signal) {
      await count('DeregisterInstance', () => client.send(new sdk.DeregisterInstanceCommand({ ServiceId: serviceId, InstanceId: instanceId }), opts(signal)));
    },
    async discoverRevision(namespaceName, serviceName, signal) {
      const res = await count('DiscoverInstancesRevision', () => client.send(new sdk.DiscoverInstancesRevisionCommand({ NamespaceName: namespaceName, ServiceName: serviceName }), opts(signal)));
      return Number(res.InstancesRevision ?? 0);
    },
    async discoverInstances(namespaceName, serviceName, serviceId, signal) {
      const res = await count('DiscoverInstances', () =>
        client.send(new sdk.DiscoverInstancesCommand({ NamespaceName: namespaceName, ServiceName: serviceName, HealthStatus: 'HEALTHY_OR_ELSE_ALL', MaxResults: DISCOVER_MAX_RESULTS }), opts(signal)),
      );
      const revision = res.InstancesRevision === undefined ? null : Number(res.InstancesRevision);
      const pick = (i: { InstanceId?: string | undefined; Attributes?: Record<string, string> | undefined }): CloudMapInstance => ({ ...(i.InstanceId ? { InstanceId: i.InstanceId } : {}), ...(i.Attributes ? { Attributes: i.Attributes } : {}) });
      if ((res.Instances ?? []).length < DISCOVER_MAX_RESULTS) return { instances: (res.Instances ?? []).map(pick), revision };
      const instances: CloudMapInstance[] = [];
      let token: string | undefined;
      do {
        const page = await count('ListInstances', () => client.send(new sdk.ListInstancesCommand({ ServiceId: serviceId, MaxResults: 100, NextToken: token }), opts(signal)));
        for (const i of page.Instances ?? []) instances.push(pick({ InstanceId: i.Id, Attributes: i.Attributes }));
        token = page.NextToken;
      } while (token);
      return { instances, revision };
    },
    close: () => client.destroy(),
  };
}
