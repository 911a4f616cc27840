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

export interface CloudMap {
  findNamespace(nameOrArn: string): Promise<NamespaceRef | null>;
  listServices(namespaceId: string): Promise<Array<{ id: string; name: string }>>;
  /** Creates the service, or returns the id of the one that exists already (Cloud Map's ServiceAlreadyExists). */
  createService(namespaceId: string, name: string): Promise<string>;
  deleteService(serviceId: string): Promise<void>;
  registerInstance(serviceId: string, instanceId: string, attributes: Record<string, string>): Promise<void>;
  deregisterInstance(serviceId: string, instanceId: string): Promise<void>;
  discoverRevision(namespaceName: string, serviceName: string): Promise<number>;
  /** The service's instances and the revision they are at. */
  discoverInstances(namespaceName: string, serviceName: string): Promise<{ instances: CloudMapInstance[]; revision: number | null }>;
  /** Calls made so far, by operation (for the steady-state benchmark and /metrics). */
  readonly calls: ReadonlyMap<string, number>;
  close(): void;
}

/** Throttling and overload answers, after which the poll backs off further. */
export function isThrottling(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return ['ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException'].includes(e.name ?? '') || e.$metadata?.httpStatusCode === 429 || e.$metadata?.httpStatusCode === 503;
}

export async function createCloudMapClient(opts: { region: string }): Promise<CloudMap> {
  const sdk = dependency('cloud-map-sdk');
  // Deadlines on every call: a Cloud Map that stops answering must fail the poll, not hang it.
  const client = new sdk.ServiceDiscoveryClient({ region: opts.region, disableHostPrefix: true, maxAttempts: 2, requestHandler: { connectionTimeout: 2000, requestTimeout: 5000, throwOnRequestTimeout: true } });
  const calls = new Map<string, number>();
  const namespaceOf = new Map<string, string>();
  const count = <T>(name: string, call: () => Promise<T>): Promise<T> => {
    calls.set(name, (calls.get(name) ?? 0) + 1);
    return call();
  };
  return {
    calls,
    async findNamespace(nameOrArn) {
      let token: string | undefined;
      do {
        const page = await count('ListNamespaces', () => client.send(new sdk.ListNamespacesCommand({ NextToken: token })));
        const found = page.Namespaces?.find((n) => n.Name === nameOrArn || n.Arn === nameOrArn);
        if (found?.Id && found.Name && found.Arn) return { id: found.Id, name: found.Name, arn: found.Arn };
        token = page.NextToken;
      } while (token);
      return null;
    },
    async listServices(namespaceId) {
      const out: Array<{ id: string; name: string }> = [];
      let token: string | undefined;
      do {
        const page = await count('ListServices', () =>
          client.send(new sdk.ListServicesCommand({ NextToken: token, MaxResults: 100, Filters: [{ Name: 'NAMESPACE_ID', Values: [namespaceId], Condition: 'EQ' }] })),
        );
        for (const s of page.Services ?? []) if (s.Id && s.Name) out.push({ id: s.Id, name: s.Name });
        token = page.NextToken;
      } while (token);
      // Some emulators ignore the filter. A service seen for the first time is checked once with GetService (its
      // namespace never changes), so the steady state costs nothing extra.
      const kept: Array<{ id: string; name: string }> = [];
      for (const s of out) {
        let ns = namespaceOf.get(s.id);
        if (ns === undefined) {
          const got = await count('GetService', () => client.send(new sdk.GetServiceCommand({ Id: s.id })));
          ns = got.Service?.NamespaceId ?? '';
          namespaceOf.set(s.id, ns);
        }
        if (ns === namespaceId) kept.push(s);
      }
      return kept;
    },
    async createService(namespaceId, name) {
      try {
        const res = await count('CreateService', () =>
          client.send(new sdk.CreateServiceCommand({ Name: name, NamespaceId: namespaceId, Description: 'ECS Service Connect (ecs-service-connect-agent)' })),
        );
        if (!res.Service?.Id) throw new Error(`CreateService ${name}: no service id in the answer`);
        return res.Service.Id;
      } catch (err) {
        const existing = (err as { name?: string; ServiceId?: string }).ServiceId;
        if ((err as { name?: string }).name === 'ServiceAlreadyExists' && existing) return existing;
        throw err;
      }
    },
    async deleteService(serviceId) {
      await count('DeleteService', () => client.send(new sdk.DeleteServiceCommand({ Id: serviceId })));
    },
    async registerInstance(serviceId, instanceId, attributes) {
      await count('RegisterInstance', () => client.send(new sdk.RegisterInstanceCommand({ ServiceId: serviceId, InstanceId: instanceId, Attributes: attributes })));
    },
    async deregisterInstance(serviceId, instanceId) {
      await count('DeregisterInstance', () => client.send(new sdk.DeregisterInstanceCommand({ ServiceId: serviceId, InstanceId: instanceId })));
    },
    async discoverRevision(namespaceName, serviceName) {
      const res = await count('DiscoverInstancesRevision', () => client.send(new sdk.DiscoverInstancesRevisionCommand({ NamespaceName: namespaceName, ServiceName: serviceName })));
      return Number(res.InstancesRevision ?? 0);
    },
    async discoverInstances(namespaceName, serviceName) {
      const res = await count('DiscoverInstances', () =>
        client.send(new sdk.DiscoverInstancesCommand({ NamespaceName: namespaceName, ServiceName: serviceName, HealthStatus: 'HEALTHY_OR_ELSE_ALL', MaxResults: 1000 })),
      );
      return {
        instances: (res.Instances ?? []).map((i) => ({ ...(i.InstanceId ? { InstanceId: i.InstanceId } : {}), ...(i.Attributes ? { Attributes: i.Attributes } : {}) })),
        revision: res.InstancesRevision === undefined ? null : Number(res.InstancesRevision),
      };
    },
    close: () => client.destroy(),
  };
}
