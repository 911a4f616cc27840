/**
 * Cloud Map mode: the agent as its own Service Connect control plane.
 *
 * At start (before Envoy), in this order, so that nothing is registered that a later step would leave behind:
 *   1. find the task's identity and the namespace (readConfig has checked the Service Connect configuration);
 *   2. check that the hosts file and the runtime directory can be written (a container user that cannot write
 *      Docker's root-owned /etc/hosts fails here, exit 7, before registering);
 *   3. register one instance per services[] entry (registration.ts);
 *   4. discover the namespace, remove instances of this task id that an earlier run left in other services;
 *   5. write Envoy's xDS files and the hosts block.
 * A failure or a stop signal after step 3 deregisters what was registered before the error is thrown.
 *
 * While running: poll Cloud Map and apply what changed. An update that could not be applied (a write failed,
 * Envoy rejected the files) is retried until it is, with backoff, and makes the agent UNHEALTHY meanwhile. Envoy's
 * verdict on each file comes from its update_rejected counters. This task's own instances are registered again
 * when they disappear from Cloud Map. Virtual IPs of departed services are released.
 *
 * On stop (and on every other exit the agent controls): deregister this task's instances, all at once, within
 * DEREGISTER_DEADLINE_MS; on close, remove the hosts block.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { configurationError, DNS_NAME, identityProblems, type Config, type ServiceConnectService } from '../config/index.ts';
import { cloudMapXdsFiles, renderResources, resourceFileWithDigest, type ResourceFiles, type SelfTask } from '../bootstrap/index.ts';
import {
  ATTRIBUTES,
  callTarget,
  createCloudMapClient,
  deregisterAll,
  deregisterOne,
  Discovery,
  hostsEntries,
  ProblemLog,
  registerOne,
  registerTask,
  VipAllocator,
  type CloudMap,
  type DiscoverySnapshot,
  type NamespaceRef,
  type Registration,
} from '../discovery/index.ts';
import type { EnvoyStat } from '../envoy/index.ts';
import { AgentError } from '../errors.ts';
import { renderHostsBlock, writeHostsBlock } from '../hosts/index.ts';
import { NAMING } from '../stats/index.ts';
import { ensureDirectory, writeFileAtomic, type TaskMetadata } from '../system/index.ts';
import type { EnvoyAccess, ModeDeps, ModeSession, RunMode } from './contract.ts';

/** The whole deregistration at stop, every instance at once. With drain (20 s) and Envoy's stop (5 s), inside ECS's 30 s. */
export const DEREGISTER_DEADLINE_MS = 3000;
/** How long the agent waits for Envoy to take a written file (its update_attempt counter) before judging. */
const VERDICT_WAIT_MS = 5000;
/** Retries of an update that could not be applied: 1 s, doubling, at most this. */
const MAX_RETRY_DELAY_MS = 15_000;
/** A service is in use while Envoy saw a request or connection to it in this time. */
const IN_USE_WINDOW_MS = 60_000;
/** How often Envoy's per-cluster traffic counters are read to tell which services are in use. */
const IN_USE_READ_EVERY_MS = 1000;
/** At most one re-registration of the same instance in this time (Cloud Map's reads may lag its writes). */
const REREGISTER_MIN_INTERVAL_MS = 5000;

export interface TaskIdentity {
  readonly taskId: string | null;
  readonly ipv4: string | null;
  readonly availabilityZone: string | null;
}

/**
 * The task's identity: from the task metadata (endpoint v4, fetched once at start by run) when there is one, else
 * from APPNET_TASK_ID, APPNET_TASK_IPV4 and APPNET_AVAILABILITY_ZONE. APPNET_TASK_IPV4 wins over the metadata's address.
 */
export function taskIdentity(config: Config, task: TaskMetadata | null): TaskIdentity {
  const env = { taskId: config.cloudMap?.taskId ?? null, ipv4: config.cloudMap?.taskIpv4 ?? null, availabilityZone: config.cloudMap?.availabilityZone ?? null };
  if (task === null) return env;
  const ip = task.Containers?.flatMap((c) => c.Networks ?? []).flatMap((n) => n.IPv4Addresses ?? [])[0] ?? null;
  return {
    taskId: task.TaskARN?.split('/').pop() ?? env.taskId,
    ipv4: env.ipv4 ?? ip,
    availabilityZone: task.AvailabilityZone ?? env.availabilityZone,
  };
}

export function instanceAttributes(s: ServiceConnectService, identity: TaskIdentity): Record<string, string> {
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

/** Opens the file for writing without changing it: EACCES, EROFS, EISDIR surface here, before anything is registered. */
async function checkWritable(path: string): Promise<void> {
  try {
    const handle = await open(path, 'r+').catch(async (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return open(path, 'a');
      throw err;
    });
    await handle.close();
  } catch (err) {
    throw new AgentError('AGENT_ERR_WRITE', `APPNET_HOSTS_FILE="${path}": cannot be written (${(err as Error).message}); the agent writes the names apps call into it. Run the agent as a user that may write it, or point APPNET_HOSTS_FILE at a writable file`, { cause: err });
  }
}

const abortError = (signal: AbortSignal) => (signal.reason instanceof Error ? signal.reason : new DOMException(`stopped by ${String(signal.reason ?? 'a signal')} during start-up`, 'AbortError'));

/** Cloud Map mode: the agent is its own control plane (filesystem xDS); LIVE is enough for health. */
export const cloudMapMode: RunMode = { watchesManagementServer: false, open: (config, deps) => openCloudMapSession(config, deps) };

export async function openCloudMapSession(config: Config, deps: ModeDeps & { cloudMap?: CloudMap }): Promise<ModeSession | null> {
  // readConfig has checked the Service Connect document, the region and, without a task metadata endpoint, the
  // identity; with one, the identity is known only now, from what the endpoint answered.
  const settings = config.cloudMap;
  if (config.mode !== 'cloudmap' || settings === null) return null;
  const { logger, metrics } = deps;
  const signal = deps.signal ?? new AbortController().signal;
  const serviceConnect = settings.serviceConnect;
  const identity = taskIdentity(config, deps.task);
  const missing = identityProblems(serviceConnect, identity);
  if (missing.length > 0) throw configurationError(missing);

  const cloudMap = deps.cloudMap ?? (await createCloudMapClient({ region: settings.region, env: deps.env }));
  const fail = (what: string, err: unknown) =>
    err instanceof AgentError
      ? err
      : new AgentError('AGENT_ERR_CLOUD_MAP', `${what}: ${(err as Error).message} (endpoint ${deps.env['AWS_ENDPOINT_URL_SERVICEDISCOVERY'] ?? 'AWS'}, region ${settings.region})`, { cause: err });
  const registered: Registration[] = [];
  let deregistered = false;
  const deregister = async () => {
    if (deregistered) return;
    deregistered = true;
    if (registered.length === 0) return;
    const left = await deregisterAll(cloudMap, registered, {
      deadlineMs: DEREGISTER_DEADLINE_MS,
      logger,
      onResult: (outcome) => metrics?.cloudMapRegistrations.inc({ event: outcome === 'ok' ? 'deregistered' : 'deregister_failed' }),
    });
    if (left > 0) logger.warn('instances of this task stay registered in Cloud Map; peers eject them on connection failures (docs/cloud-map.md, "What cannot be cleaned up")', { left });
  };

  // 1-3: namespace, writability, registration. Any failure or a stop signal deregisters what was registered.
  let namespace: NamespaceRef | null;
  let discovery: Discovery;
  const problemLog = new ProblemLog({
    logger,
    onNew: (p) => metrics?.cloudMapSkippedRecords.inc({ attribute: p.attribute }),
  });
  try {
    try {
      namespace = await cloudMap.findNamespace(serviceConnect.namespace, signal);
    } catch (err) {
      if (signal.aborted) throw abortError(signal);
      throw fail(`cannot list Cloud Map namespaces to find "${serviceConnect.namespace}"`, err);
    }
    if (namespace === null) {
      throw new AgentError('AGENT_ERR_CLOUD_MAP', `namespace "${serviceConnect.namespace}" does not exist in Cloud Map (region ${settings.region}); create it, or fix "namespace" in ${settings.source}`);
    }
    if (!DNS_NAME.test(namespace.name)) {
      throw new AgentError('AGENT_ERR_CLOUD_MAP', `namespace "${namespace.name}" (found for "${serviceConnect.namespace}") cannot be used in names apps resolve: its name must be 1 to 127 characters of a-z, 0-9, _, . and -`);
    }
    await checkWritable(settings.hostsFile);
    await ensureDirectory(config.runtimeDir);

    const entries = serviceConnect.services.map((s) => ({ name: s.discoveryName, instanceId: identity.taskId as string, attributes: instanceAttributes(s, identity) }));
    try {
      await registerTask(cloudMap, namespace, entries, registered, logger, signal);
      metrics?.cloudMapRegistrations.inc({ event: 'registered' }, registered.length);
    } catch (err) {
      if (signal.aborted) throw abortError(signal);
      throw fail('cannot register this task in Cloud Map', err);
    }

    // 4: discovery, and instances of this task id that an earlier run left in services this run does not use.
    discovery = new Discovery({
      cloudMap,
      namespace,
      pollIntervalMs: settings.pollIntervalMs,
      quotaShare: settings.quotaShare,
      logger,
      problems: problemLog,
      onChange: (snapshot) => apply(snapshot),
      afterPoll: (snapshot) => afterPoll(snapshot),
    });
    try {
      await discovery.initial(signal);
    } catch (err) {
      if (signal.aborted) throw abortError(signal);
      throw fail(`cannot discover namespace "${namespace.name}"`, err);
    }
    if (identity.taskId !== null) {
      const mine = new Set(registered.map((r) => r.name));
      for (const name of discovery.snapshot().services.keys()) {
        if (mine.has(name)) continue;
        for (const [instanceId, taskId] of discovery.instancesOf(name)) {
          if (instanceId !== identity.taskId && taskId !== identity.taskId) continue;
          const serviceId = discovery.serviceId(name) as string;
          try {
            await deregisterOne(cloudMap, serviceId, instanceId, AbortSignal.any([signal, AbortSignal.timeout(DEREGISTER_DEADLINE_MS)]));
            metrics?.cloudMapRegistrations.inc({ event: 'stale_removed' });
            logger.warn('removed an instance of this task that an earlier run left in Cloud Map', { service: name, instanceId });
            discovery.refetchSoon(name);
          } catch (err) {
            if (signal.aborted) throw abortError(signal);
            logger.warn('removing an instance an earlier run of this task left in Cloud Map failed', { service: name, instanceId, err });
          }
        }
      }
    }
  } catch (err) {
    await deregister();
    cloudMap.close();
    throw err;
  }

  // 5: apply, now and whenever discovery sees a change.
  const vips = new VipAllocator(settings.vipCidr);
  const appIp = Object.values(config.ecs.containerIpMapping ?? {})[0] ?? '127.0.0.1';
  const self: SelfTask = { config: serviceConnect, taskIp: identity.ipv4 ?? '127.0.0.1', appIp };
  /** The digest of each xDS file as last written (memory: not its text). */
  const written = new Map<string, string>();
  let filesWritten = 0;
  let envoy: EnvoyAccess | null = null;
  let nameOwners = new Map<string, string>();
  let withoutVip: string[] = [];
  /** The update that could not be applied, retried until it is; null when Envoy has what discovery knows. */
  let pending: { reason: string; since: number; failures: number; nextAtMs: number } | null = null;
  let applying: Promise<void> = Promise.resolve();
  let stopping = false;
  let closing: Promise<void> | null = null;
  const lastReregisterMs = new Map<string, number>();

  /** Stats by regex, as name → stat; null when Envoy does not answer. */
  const readStats = async (filterRegex: string, type?: 'Counters'): Promise<Map<string, EnvoyStat> | null> => {
    if (envoy === null) return null;
    try {
      const stats = await envoy.admin.stats(filterRegex, { timeoutMs: 1000, ...(type === undefined ? {} : { type }) });
      return new Map(stats.map((st) => [st.name, st]));
    } catch {
      return null;
    }
  };

  /**
   * Envoy's view of one xDS file: its update_attempt and update_rejected counters and the version_info of the file
   * it took last (version_text). One /stats read, a regex over every stat: about 12 ms of Envoy's main thread at
   * 100 services (23,000 stats), the thread that also applies the updates, so it is read as little as the verdict
   * allows.
   */
  const xdsState = async (prefix: string): Promise<{ attempt: number; rejected: number; version: string | null } | null> => {
    const stats = await readStats(`^${prefix.replace(/\./g, '\\.')}\\.(update_attempt|update_rejected|version_text)$`);
    if (stats === null) return null;
    const attempt = stats.get(`${prefix}.update_attempt`)?.value ?? Number.NaN;
    const rejected = stats.get(`${prefix}.update_rejected`)?.value ?? Number.NaN;
    const version = stats.get(`${prefix}.version_text`)?.text ?? null;
    return Number.isFinite(attempt) && Number.isFinite(rejected) ? { attempt, rejected, version } : null;
  };
  /**
   * Per xDS file, Envoy's counters at the last read: the "before" of the next write, so that no admin round trip
   * stands between a change and its file. A rejection counted after that read (Envoy reloading the previous file,
   * rejected too, after that read) would be
   * taken for this file's; the retry then writes it again and judges it afresh.
   */
  const lastState = new Map<string, { attempt: number; rejected: number }>();

  /**
   * Writes one xDS file when it changed, and returns Envoy's verdict: null (taken, or cannot tell) or why not. The
   * file carries its digest as version_info: Envoy took it when its version_text is that digest; it rejected it when
   * update_rejected moved first. Envoy is asked 50 ms after the write, then at doubling intervals up to 400 ms (an
   * update takes Envoy 50 to 150 ms at 100 services on an idle host, seconds on a busy one).
   */
  const writeXds = async (kind: 'cds' | 'lds', doc: ResourceFiles['lds']): Promise<string | null> => {
    const path = join(config.runtimeDir, cloudMapXdsFiles[kind]);
    // In pieces, never as one string and one buffer (render-resources.ts, resourceFilePieces).
    const { digest, pieces } = resourceFileWithDigest(doc);
    if (written.get(path) === digest) return null;
    const prefix = kind === 'lds' ? 'listener_manager.lds' : 'cluster_manager.cds';
    let before = lastState.get(prefix) ?? (await xdsState(prefix));
    await writeFileAtomic(path, pieces);
    written.set(path, digest);
    filesWritten += 1;
    if (before === null) return null;
    const deadline = Date.now() + VERDICT_WAIT_MS;
    for (let waitMs = 50; ; waitMs = Math.min(waitMs * 2, 400)) {
      await new Promise((r) => setTimeout(r, waitMs));
      const now = await xdsState(prefix);
      if (now === null) {
        // Envoy does not answer (stopping, restarting: a new Envoy reads the file at its start, and
        // judgeInitialFiles judges it then): cannot tell, as when the counters could not be read before the write.
        // Waiting out VERDICT_WAIT_MS here held the agent's stop for 5 s (the stop's deregistration is a change
        // whose update found Envoy already gone): compose down 1.9 -> 6.8 s in the container stage.
        lastState.delete(prefix);
        return null;
      } else {
        lastState.set(prefix, now);
        if (now.version === digest) return null;
        // Envoy restarted (its counters start again): it read this file at its start, judged from zero.
        if (now.attempt < before.attempt || now.rejected < before.rejected) before = { attempt: 0, rejected: 0 };
        if (now.rejected > before.rejected) {
          written.delete(path); // rewrite it at the retry, so Envoy tries it again
          return `Envoy rejected the ${kind === 'lds' ? 'listeners' : 'clusters'} in ${path} (${prefix}.update_rejected went from ${before.rejected} to ${now.rejected}; Envoy's log says why)`;
        }
      }
      if (Date.now() > deadline) {
        logger.debug('Envoy did not report reading an xDS file in time; not judging it', { path });
        return null;
      }
    }
  };

  const applyNow = async (snapshot: DiscoverySnapshot) => {
    // Virtual IPs: departed services release theirs; services without one (range exhausted) are left out.
    const callable = [...snapshot.services].filter(([, s]) => callTarget(s, snapshot.namespace) !== null).map(([name]) => name);
    const exhausted = vips.assign(callable);
    if (exhausted.join() !== withoutVip.join()) {
      if (exhausted.length > 0) logger.warn('virtual IPs exhausted: services left without a listener and a name until another service leaves', { services: exhausted, vipCidr: settings.vipCidr, capacity: vips.capacity });
      else if (withoutVip.length > 0) logger.info('every service has a virtual IP again');
    }
    withoutVip = exhausted;
    metrics?.cloudMapServicesWithoutVip.set(exhausted.length);
    const lookup = { vipOf: (name: string) => vips.lookup(name) };
    const files = renderResources(snapshot, lookup, self);
    const names = hostsEntries(snapshot, lookup.vipOf, nameOwners);
    nameOwners = names.owners;
    problemLog.set('names', names.problems);
    metrics?.cloudMapSkippedNow.set(problemLog.size);
    let reason: string | null = null;
    let failure: 'write' | 'hosts' | 'rejected' = 'write';
    const before = filesWritten;
    try {
      // Clusters first, then the listeners that use them, then the names apps resolve.
      reason = (await writeXds('cds', files.cds)) ?? (await writeXds('lds', files.lds));
      if (reason !== null) failure = 'rejected';
      else {
        failure = 'hosts';
        const hostsChanged = await writeHostsBlock(settings.hostsFile, renderHostsBlock(names.entries));
        if (hostsChanged || filesWritten > before) {
          logger.info('applied Cloud Map changes', { files: filesWritten - before, hostsFile: hostsChanged, endpoints: [...snapshot.services.values()].map((s) => `${s.discoveryName}:${s.endpoints.length}`).join(' ') });
        }
      }
    } catch (err) {
      reason = `cannot apply the Cloud Map update: ${(err as Error).message}`;
    }
    if (reason === null) {
      if (pending !== null) logger.info('the Cloud Map update is applied after failing', { failures: pending.failures, since: new Date(pending.since).toISOString() });
      pending = null;
    } else {
      metrics?.cloudMapApplyFailures.inc({ reason: failure });
      const failures = (pending?.failures ?? 0) + 1;
      const delayMs = Math.min(1000 * 2 ** (failures - 1), MAX_RETRY_DELAY_MS);
      if (pending?.reason !== reason) logger.error('a Cloud Map update could not be applied; Envoy keeps the previous state; retrying', { reason, retryInMs: delayMs });
      pending = { reason, since: pending?.since ?? Date.now(), failures, nextAtMs: Date.now() + delayMs };
    }
    envoy?.healthChanged();
  };
  /** One apply at a time, in order. */
  const apply = (snapshot: DiscoverySnapshot): Promise<void> => {
    applying = applying.then(() => applyNow(snapshot)).catch((err: unknown) => logger.error('applying Cloud Map changes failed', { err }));
    return applying;
  };

  /**
   * The services this task calls: those whose outbound cluster's upstream_rq_total or upstream_cx_total moved in
   * the last IN_USE_WINDOW_MS (Envoy's admin, local, no Cloud Map call).
   */
  const trafficSeen = new Map<string, { value: number; atMs: number }>();
  let lastTrafficReadMs = 0;
  const readInUse = async (snapshot: DiscoverySnapshot) => {
    if (envoy === null || Date.now() - lastTrafficReadMs < IN_USE_READ_EVERY_MS) return;
    lastTrafficReadMs = Date.now();
    // Counters only: a quarter cheaper for Envoy than every type (13 against 17 ms at 100 services).
    const stats = await readStats('^cluster\\.scout_.*\\.upstream_(rq|cx)_total$', 'Counters');
    if (stats === null) return; // Envoy not answering: keep the last view
    const byCluster = new Map<string, number>();
    for (const [name, { value }] of stats) {
      const m = /^cluster\.(.+)\.upstream_(?:rq|cx)_total$/.exec(name);
      if (m !== null) byCluster.set(m[1] as string, (byCluster.get(m[1] as string) ?? 0) + value);
    }
    const now = Date.now();
    const inUse: string[] = [];
    for (const [name, service] of snapshot.services) {
      const value = byCluster.get(NAMING.outboundCluster(service.protocol, name));
      if (value === undefined) continue;
      const seen = trafficSeen.get(name);
      // A counter that moved (or went back to zero with a new Envoy) is traffic; the first reading of a non-zero one too.
      if (seen === undefined ? value > 0 : value !== seen.value) trafficSeen.set(name, { value, atMs: now });
      else if (seen === undefined) trafficSeen.set(name, { value, atMs: 0 });
      if (now - (trafficSeen.get(name)?.atMs ?? 0) < IN_USE_WINDOW_MS) inUse.push(name);
    }
    for (const name of trafficSeen.keys()) if (!snapshot.services.has(name)) trafficSeen.delete(name);
    discovery.setInUse(inUse);
  };

  /** Every poll: retry what could not be applied; register this task's instances again when they went. */
  const afterPoll = async (snapshot: DiscoverySnapshot) => {
    metrics?.cloudMapSkippedNow.set(problemLog.size);
    await readInUse(snapshot);
    if (pending !== null && Date.now() >= pending.nextAtMs) await apply(snapshot);
    if (stopping) return;
    for (const r of registered) {
      if (discovery.warnings().some((w) => w.startsWith('Cloud Map namespace'))) return;
      const serviceId = discovery.serviceId(r.name);
      if (serviceId !== null && discovery.instancesOf(r.name).has(r.instanceId)) continue;
      if (Date.now() - (lastReregisterMs.get(r.name) ?? 0) < REREGISTER_MIN_INTERVAL_MS) continue;
      lastReregisterMs.set(r.name, Date.now());
      try {
        const again = await registerOne(cloudMap, discovery.namespace, r, logger);
        if (stopping) {
          await deregisterOne(cloudMap, again.serviceId, again.instanceId, AbortSignal.timeout(DEREGISTER_DEADLINE_MS)).catch(() => undefined);
          return;
        }
        r.serviceId = again.serviceId;
        metrics?.cloudMapRegistrations.inc({ event: 'reregistered' });
        logger.warn("this task's instance was missing from Cloud Map; registered it again", { service: r.name, serviceId: r.serviceId, instanceId: r.instanceId, serviceWasMissing: serviceId === null });
        discovery.listSoon();
        discovery.refetchSoon(r.name);
      } catch (err) {
        logger.warn("registering this task's missing instance again failed; retrying", { service: r.name, instanceId: r.instanceId, err });
      }
    }
  };

  /** Envoy read the first files at its start: once it answers, a rejection then is retried like any other. */
  const judgeInitialFiles = async (loopSignal: AbortSignal) => {
    for (let i = 0; i < 120 && !loopSignal.aborted; i++) {
      const lds = await xdsState('listener_manager.lds');
      const cds = await xdsState('cluster_manager.cds');
      if (lds !== null && cds !== null) {
        const rejected = [lds.rejected > 0 ? cloudMapXdsFiles.lds : null, cds.rejected > 0 ? cloudMapXdsFiles.cds : null].filter((x) => x !== null);
        if (rejected.length > 0 && pending === null) {
          written.clear();
          const reason = `Envoy rejected ${rejected.join(' and ')} in ${config.runtimeDir} at its start (update_rejected; Envoy's log says why)`;
          logger.error('a Cloud Map update could not be applied; Envoy keeps the previous state; retrying', { reason });
          metrics?.cloudMapApplyFailures.inc({ reason: 'rejected' });
          pending = { reason, since: Date.now(), failures: 1, nextAtMs: Date.now() + 1000 };
          envoy?.healthChanged();
        }
        return;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  };

  try {
    await applyNow(discovery.snapshot());
    if (pending !== null) throw new AgentError('AGENT_ERR_WRITE', (pending as { reason: string }).reason);
  } catch (err) {
    await deregister();
    cloudMap.close();
    throw err;
  }

  return {
    metricLabels: { ...(serviceConnect.serviceName ? { ServiceName: serviceConnect.serviceName } : {}), ...(serviceConnect.clusterName ? { ClusterName: serviceConnect.clusterName } : {}) },
    start: async (loopSignal, envoyAccess) => {
      envoy = envoyAccess;
      void judgeInitialFiles(loopSignal);
      await discovery.run(loopSignal);
    },
    health: () => {
      const warnings = [...discovery.warnings()];
      if (withoutVip.length > 0) warnings.push(`virtual IPs exhausted (APPNET_VIP_CIDR=${settings.vipCidr}, ${vips.capacity} addresses): no listener or name for ${withoutVip.join(', ')}`);
      if (problemLog.size > 0) warnings.push(`${problemLog.size} Cloud Map record(s) skipped because a value breaks a rule (each logged once)`);
      return { problems: pending === null ? [] : [`${pending.reason} (failing since ${new Date(pending.since).toISOString()}, retrying)`], warnings };
    },
    beforeDrain: async () => {
      stopping = true;
      await deregister();
    },
    close: () => {
      closing ??= (async () => {
        stopping = true;
        await deregister();
        await applying;
        await writeHostsBlock(settings.hostsFile, null).catch((err: unknown) => logger.warn('removing the hosts block failed', { err }));
        cloudMap.close();
      })();
      return closing;
    },
  };
}
