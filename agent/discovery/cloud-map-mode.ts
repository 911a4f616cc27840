/**
 * Cloud Map mode: the agent as its own Service Connect control plane.
 *
 * At start (before Envoy): validate the Service Connect configuration, find the task's identity, find the
 * namespace, create the Cloud Map services of this task's services[] entries when missing (as ECS does), register
 * one instance per entry, discover the namespace, and write Envoy's xDS files and the hosts block.
 * While running: poll Cloud Map and rewrite only what changed; Envoy applies it without a restart.
 * On stop: deregister this task's instances before the listeners drain; on a clean exit, remove the hosts block.
 */
import { join } from 'node:path';
import type { Config } from '../config/index.ts';
import { cloudMapXdsFiles } from '../bootstrap/index.ts';
import { renderResources, type SelfTask } from '../bootstrap/render-resources.ts';
import { AgentError } from '../errors.ts';
import { renderHostsBlock, type HostsEntry } from '../hosts/hosts-block.ts';
import { writeHostsBlock } from '../hosts/hosts-file.ts';
import type { Logger } from '../logger.ts';
import type { ModeExtension } from '../commands/run.ts';
import { fetchJson, type TaskMetadata } from '../system/collect-platform.ts';
import { ensureDirectory, writeFileAtomic } from '../system/files.ts';
import { createCloudMapClient, type CloudMap } from './cloud-map-client.ts';
import { Discovery } from './discovery.ts';
import { validateServiceConnectConfig, type ScConfig } from './service-connect-config.ts';
import { ATTRIBUTES, callTarget, VipAllocator, type DiscoverySnapshot } from './snapshot.ts';

export interface TaskIdentity {
  readonly taskId: string | null;
  readonly ipv4: string | null;
  readonly availabilityZone: string | null;
}

/** The task's identity: from the task metadata endpoint v4 when there is one, else from APPNET_TASK_*. */
export async function taskIdentity(config: Config, logger: Logger): Promise<TaskIdentity> {
  const env = { taskId: config.cloudMap?.taskId ?? null, ipv4: config.cloudMap?.taskIpv4 ?? null, availabilityZone: config.cloudMap?.availabilityZone ?? null };
  if (config.ecs.metadataUri === null) return env;
  try {
    const task = (await fetchJson(`${config.ecs.metadataUri}/task`, 2000)) as TaskMetadata;
    const ip = task.Containers?.flatMap((c) => c.Networks ?? []).flatMap((n) => n.IPv4Addresses ?? [])[0] ?? null;
    return {
      taskId: task.TaskARN?.split('/').pop() ?? env.taskId,
      ipv4: env.ipv4 ?? ip,
      availabilityZone: task.AvailabilityZone ?? env.availabilityZone,
    };
  } catch (err) {
    logger.warn('task metadata unavailable; using APPNET_TASK_ID, APPNET_TASK_IPV4, APPNET_AVAILABILITY_ZONE', { err });
    return env;
  }
}

export function instanceAttributes(s: ScConfig['services'][number], identity: TaskIdentity): Record<string, string> {
  const a: Record<string, string> = {
    [ATTRIBUTES.ipv4]: identity.ipv4 ?? '',
    [ATTRIBUTES.port]: String(s.ingressPort),
    [ATTRIBUTES.protocol]: s.protocol,
  };
  if (identity.availabilityZone) a[ATTRIBUTES.zone] = identity.availabilityZone;
  if (identity.taskId) a[ATTRIBUTES.taskId] = identity.taskId;
  if (s.alias) {
    a[ATTRIBUTES.aliasDnsName] = s.alias.dnsName;
    a[ATTRIBUTES.aliasPort] = String(s.alias.port);
  }
  if (s.perRequestTimeoutS !== null) a[ATTRIBUTES.perRequestTimeout] = String(s.perRequestTimeoutS);
  if (s.idleTimeoutS !== null) a[ATTRIBUTES.idleTimeout] = String(s.idleTimeoutS);
  return a;
}

export function hostsEntries(snapshot: DiscoverySnapshot, vips: VipAllocator): HostsEntry[] {
  const entries: HostsEntry[] = [];
  for (const [name, service] of snapshot.services) {
    const target = callTarget(service, snapshot.namespace);
    if (target !== null) entries.push({ ip: vips.vipFor(name), names: target.names });
  }
  return entries;
}

export async function createCloudMapMode(config: Config, deps: { logger: Logger; cloudMap?: CloudMap }): Promise<ModeExtension | null> {
  const cm = config.cloudMap;
  if (config.mode !== 'cloudmap' || cm === null) return null;
  const { logger } = deps;
  const { config: sc, problems } = validateServiceConnectConfig(cm.document);
  if (sc === null) {
    throw new AgentError('AGENT_ERR_CONFIG', `${cm.source} has ${problems.length} problem${problems.length === 1 ? '' : 's'}:`, { problems: problems.map((p) => `${cm.source}: ${p}`) });
  }
  const identity = await taskIdentity(config, logger);
  if (sc.services.length > 0) {
    const missing: string[] = [];
    if (identity.ipv4 === null) missing.push('APPNET_TASK_IPV4="": must be set when services[] is not empty (no task metadata endpoint): instances are registered with it');
    if (identity.taskId === null) missing.push('APPNET_TASK_ID="": must be set when services[] is not empty (no task metadata endpoint): it names the instances');
    if (missing.length > 0) throw new AgentError('AGENT_ERR_CONFIG', `the configuration has ${missing.length} problem${missing.length === 1 ? '' : 's'}:`, { problems: missing });
  }
  if (config.region === null) {
    throw new AgentError('AGENT_ERR_CONFIG', 'the configuration has 1 problem:', { problems: ['AWS_REGION="": must be set in Cloud Map mode: the Cloud Map client needs a region'] });
  }

  const cloudMap = deps.cloudMap ?? (await createCloudMapClient({ region: config.region }));
  const fail = (what: string, err: unknown) =>
    new AgentError('AGENT_ERR_CLOUD_MAP', `${what}: ${(err as Error).message} (endpoint ${process.env['AWS_ENDPOINT_URL_SERVICEDISCOVERY'] ?? 'AWS'}, region ${config.region})`, { cause: err });
  let namespace;
  try {
    namespace = await cloudMap.findNamespace(sc.namespace);
  } catch (err) {
    cloudMap.close();
    throw fail(`cannot list Cloud Map namespaces to find "${sc.namespace}"`, err);
  }
  if (namespace === null) {
    cloudMap.close();
    throw new AgentError('AGENT_ERR_CLOUD_MAP', `namespace "${sc.namespace}" does not exist in Cloud Map (region ${config.region}); create it, or fix "namespace" in ${cm.source}`);
  }

  // Register this task: one instance per services[] entry, in a Cloud Map service created when missing.
  const registered: Array<{ serviceId: string; instanceId: string; name: string }> = [];
  try {
    const firstByName = (list: Array<{ id: string; name: string }>) => {
      const m = new Map<string, string>();
      for (const x of list) if (!m.has(x.name)) m.set(x.name, x.id);
      return m;
    };
    let existing = firstByName(await cloudMap.listServices(namespace.id));
    for (const s of sc.services) {
      let serviceId = existing.get(s.discoveryName);
      if (serviceId === undefined) {
        // Tasks starting together may each create the service. Cloud Map refuses the second (and we use the
        // first); an emulator may accept it, so every task registers in the first service of that name and a
        // duplicate this task made is deleted.
        const created = await cloudMap.createService(namespace.id, s.discoveryName);
        existing = firstByName(await cloudMap.listServices(namespace.id));
        serviceId = existing.get(s.discoveryName) ?? created;
        if (serviceId !== created) await cloudMap.deleteService(created).catch((err: unknown) => logger.warn('deleting a duplicate Cloud Map service failed', { err }));
      }
      const instanceId = identity.taskId as string;
      await cloudMap.registerInstance(serviceId, instanceId, instanceAttributes(s, identity));
      registered.push({ serviceId, instanceId, name: s.discoveryName });
      logger.info('registered in Cloud Map', { service: s.discoveryName, instanceId, address: `${identity.ipv4}:${s.ingressPort}` });
    }
  } catch (err) {
    cloudMap.close();
    throw fail('cannot register this task in Cloud Map', err);
  }

  const vips = new VipAllocator(cm.vipCidr);
  const appIp = Object.values(config.ecs.containerIpMapping ?? {})[0] ?? '127.0.0.1';
  const self: SelfTask = { config: sc, taskIp: identity.ipv4 ?? '127.0.0.1', appIp };
  const written = new Map<string, string>();
  const writeIfChanged = async (path: string, doc: unknown) => {
    const text = `${JSON.stringify(doc, null, 1)}\n`;
    if (written.get(path) === text) return false;
    await writeFileAtomic(path, text);
    written.set(path, text);
    return true;
  };
  await ensureDirectory(config.runtimeDir);

  /** Writes what changed: clusters first, then the listeners that use them, then the names apps resolve. */
  const apply = async (snapshot: DiscoverySnapshot) => {
    const files = renderResources(snapshot, vips, self);
    let changed = 0;
    if (await writeIfChanged(join(config.runtimeDir, cloudMapXdsFiles.cds), files.cds)) changed++;
    if (await writeIfChanged(join(config.runtimeDir, cloudMapXdsFiles.lds), files.lds)) changed++;
    const hostsChanged = await writeHostsBlock(cm.hostsFile, renderHostsBlock(hostsEntries(snapshot, vips)));
    const summary = [...snapshot.services.values()].map((s) => `${s.discoveryName}:${s.endpoints.length}`).join(' ');
    if (changed > 0 || hostsChanged) logger.info('applied Cloud Map changes', { files: changed, hostsFile: hostsChanged, endpoints: summary });
  };

  const discovery = new Discovery({
    cloudMap,
    namespace,
    pollIntervalMs: cm.pollIntervalMs,
    logger,
    onChange: (snapshot) =>
      apply(snapshot).catch((err: unknown) => {
        logger.error('writing Envoy resources failed; Envoy keeps the previous ones', { err });
      }),
  });
  try {
    await apply(await discovery.initial());
  } catch (err) {
    if (err instanceof AgentError) throw err;
    throw fail(`cannot discover namespace "${namespace.name}"`, err);
  }

  let deregistered = false;
  return {
    metricLabels: { ...(sc.serviceName ? { ServiceName: sc.serviceName } : {}), ...(sc.clusterName ? { ClusterName: sc.clusterName } : {}) },
    start: (signal) => discovery.run(signal),
    beforeDrain: async () => {
      if (deregistered) return;
      deregistered = true;
      for (const r of registered) {
        try {
          await cloudMap.deregisterInstance(r.serviceId, r.instanceId);
          logger.info('deregistered from Cloud Map', { service: r.name, instanceId: r.instanceId });
        } catch (err) {
          logger.warn('deregistering from Cloud Map failed', { service: r.name, err });
        }
      }
    },
    close: async () => {
      await writeHostsBlock(cm.hostsFile, null).catch((err: unknown) => logger.warn('removing the hosts block failed', { err }));
      cloudMap.close();
    },
  };
}
