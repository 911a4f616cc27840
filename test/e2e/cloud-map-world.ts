/**
 * The shared set-up of the Cloud Map failure tests (cloud-map-trust.test.ts, cloud-map-exits.test.ts): one moto per
 * test file, the real Envoy, and helpers that read Cloud Map and the agent the way an operator would. Each file
 * runs in its own process, so each has its own moto.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateServiceCommand,
  DiscoverInstancesCommand,
  ListInstancesCommand,
  ListNamespacesCommand,
  ListServicesCommand,
  RegisterInstanceCommand,
} from '@aws-sdk/client-servicediscovery';
import { startAgent, tempDir, type AgentProcess } from '../helpers/agent.ts';
import { startEnvoyAndMoto, type Moto } from '../helpers/moto.ts';
import { suiteCleanups } from '../helpers/suite-cleanups.ts';

const cleanups = suiteCleanups();
export const ctx = cleanups.ctx;
export let moto: Moto;
export let envoy: string;

export type Attrs = Record<string, string>;
export const httpAttrs = (ip: string, alias: string, port = '8080'): Attrs => ({ AWS_INSTANCE_IPV4: ip, AWS_INSTANCE_PORT: '15000', SC_APP_PROTOCOL: 'http', SC_CLIENT_ALIAS_DNS_NAME: alias, SC_CLIENT_ALIAS_PORT: port });

export async function namespaceId(name: string): Promise<string> {
  const found = (await moto.client.send(new ListNamespacesCommand({}))).Namespaces?.find((n) => n.Name === name)?.Id;
  if (found === undefined) throw new Error(`no namespace ${name}`);
  return found;
}
export async function createService(namespace: string, name: string): Promise<string> {
  const id = (await moto.client.send(new CreateServiceCommand({ Name: name, NamespaceId: await namespaceId(namespace) }))).Service?.Id;
  if (id === undefined) throw new Error('no service id');
  return id;
}
export async function register(serviceId: string, instanceId: string, attributes: Attrs): Promise<void> {
  await moto.client.send(new RegisterInstanceCommand({ ServiceId: serviceId, InstanceId: instanceId, Attributes: attributes }));
}
export async function discover(namespace: string, service: string): Promise<string[]> {
  const res = await moto.client.send(new DiscoverInstancesCommand({ NamespaceName: namespace, ServiceName: service, MaxResults: 1000 })).catch(() => null);
  return (res?.Instances ?? []).map((i) => i.InstanceId ?? '');
}
/** Every instance with this id in any service of any namespace: what "no registration of this task" checks. */
export async function registrationsOf(instanceId: string): Promise<string[]> {
  const found: string[] = [];
  for (const s of (await moto.client.send(new ListServicesCommand({}))).Services ?? []) {
    const list = await moto.client.send(new ListInstancesCommand({ ServiceId: s.Id })).catch(() => null);
    for (const i of list?.Instances ?? []) if (i.Id === instanceId || i.Attributes?.['SC_TASK_ID'] === instanceId) found.push(`${s.Name}/${i.Id}`);
  }
  return found;
}

export function hostsBlock(path: string): Map<string, string> {
  const names = new Map<string, string>();
  const text = readFileSync(path, 'utf8');
  const begin = text.indexOf('# BEGIN ecs-service-connect-agent');
  const end = text.indexOf('# END ecs-service-connect-agent');
  if (begin < 0 || end < 0) return names;
  for (const line of text.slice(begin, end).split('\n').slice(1)) {
    if (line === '') continue;
    assert.match(line, /^127\.25[23]\.\d+\.\d+\t[a-z0-9_.-]+( [a-z0-9_.-]+)*$/, `a hosts line the agent wrote: ${JSON.stringify(line)}`);
    const [ip, ...rest] = line.split(/[\t ]/);
    for (const n of rest) names.set(n, ip as string);
  }
  return names;
}

export async function stat(agent: AgentProcess, pattern: RegExp): Promise<number | null> {
  const body = (await agent.request('/stats/prometheus')).body;
  const line = body.split('\n').find((l) => pattern.test(l));
  return line === undefined ? null : Number(line.slice(line.lastIndexOf(' ') + 1));
}
export const membership = (agent: AgentProcess, cluster: string) => stat(agent, new RegExp(`^envoy_cluster_membership_total\\{envoy_cluster_name="${cluster}"\\}`));
export async function metric(agent: AgentProcess, line: RegExp): Promise<number | null> {
  const body = (await agent.request('/metrics')).body;
  const found = body.split('\n').find((l) => line.test(l));
  return found === undefined ? null : Number(found.slice(found.lastIndexOf(' ') + 1));
}
export const skipWarnings = (agent: AgentProcess) => agent.logs.filter((r) => r['msg'] === 'skipping a Cloud Map record that breaks a rule');

export function clientAgent(namespace: string, taskId: string, extra: Record<string, string> = {}, dir = tempDir(ctx, `${taskId}-`)): { agent: AgentProcess; hosts: string; dir: string } {
  const hosts = join(dir, 'hosts');
  writeFileSync(hosts, '127.0.0.1 localhost\n');
  const agent = startAgent(ctx, {
    dir,
    env: {
      ...moto.env,
      ENVOY_BINARY: envoy,
      APPNET_CLOUD_MAP_POLL_INTERVAL_MS: '300',
      APPNET_SERVICE_CONNECT_CONFIG: JSON.stringify({ namespace, services: [], portMappings: [] }),
      APPNET_TASK_ID: taskId,
      APPNET_HOSTS_FILE: hosts,
      ...extra,
    },
  });
  return { agent, hosts, dir };
}

export function serverEnv(namespace: string, taskId: string, ip: string, dir: string, services: string[] = ['exitsvc']): Record<string, string> {
  writeFileSync(join(dir, 'hosts'), '127.0.0.1 localhost\n');
  return {
    ...moto.env,
    ENVOY_BINARY: envoy,
    APPNET_CLOUD_MAP_POLL_INTERVAL_MS: '300',
    APPNET_SERVICE_CONNECT_CONFIG: JSON.stringify({
      namespace,
      services: services.map((name, i) => ({ portName: `p${i}`, discoveryName: name, clientAliases: [{ port: 8080, dnsName: name }] })),
      portMappings: services.map((_, i) => ({ name: `p${i}`, containerPort: 9000 + i, appProtocol: 'http' })),
    }),
    APPNET_TASK_ID: taskId,
    APPNET_TASK_IPV4: ip,
    APPNET_HOSTS_FILE: join(dir, 'hosts'),
    APPNET_VIP_CIDR: '127.252.9.0/24',
  };
}

/** Starts moto with these namespaces (call from before()). */
export async function startWorld(namespaces: readonly string[]): Promise<void> {
  ({ envoy, moto } = await startEnvoyAndMoto(ctx, namespaces));
}

/** Stops everything started, last first (call from after()). */
export async function stopWorld(): Promise<void> {
  await cleanups.run();
}
