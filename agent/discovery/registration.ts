/**
 * This task's registrations in Cloud Map: one instance per services[] entry, in the Cloud Map service named by its
 * discoveryName, created when missing (as ECS does).
 *
 * Tasks of one service starting at the same instant race to create that service. Cloud Map refuses the second
 * CreateService (ServiceAlreadyExists, whose id the loser then uses); an emulator may accept it, so every task
 * registers in the first service of that name that ListServices returns (the oldest) and deletes a duplicate it
 * made. A service that disappears between the list and the registration (another task deleting its duplicate) is
 * looked up again: up to 4 attempts, so concurrent starts converge instead of failing.
 *
 * Deregistration runs for every instance at once, bounded by one deadline, so that a slow or hung Cloud Map cannot
 * hold the task's stop past ECS's 30 s.
 */
import type { Logger } from '../logger.ts';
import { isNotFound, type CloudMap, type NamespaceRef } from './cloud-map-client.ts';

export interface Registration {
  serviceId: string;
  readonly instanceId: string;
  readonly name: string;
  readonly attributes: Record<string, string>;
}

const ATTEMPTS = 4;

/** The first service of this name in the namespace, or null. */
async function findService(cloudMap: CloudMap, namespaceId: string, name: string, signal?: AbortSignal): Promise<string | null> {
  return (await cloudMap.listServices(namespaceId, signal)).find((s) => s.name === name)?.id ?? null;
}

/** The service to register in: the existing one, else one this task creates (its duplicate deleted when it lost a race). */
export async function ensureService(cloudMap: CloudMap, namespaceId: string, name: string, logger: Logger, signal?: AbortSignal): Promise<string> {
  const existing = await findService(cloudMap, namespaceId, name, signal);
  if (existing !== null) return existing;
  const created = await cloudMap.createService(namespaceId, name, signal);
  const first = (await findService(cloudMap, namespaceId, name, signal)) ?? created;
  if (first !== created) {
    await cloudMap.deleteService(created, signal).catch((err: unknown) => logger.warn('deleting a duplicate Cloud Map service failed', { service: name, serviceId: created, err }));
  }
  return first;
}

/** Registers one instance, looking the service up again when it went away in between. */
export async function registerOne(cloudMap: CloudMap, namespace: NamespaceRef, r: Omit<Registration, 'serviceId'>, logger: Logger, signal?: AbortSignal): Promise<Registration> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    signal?.throwIfAborted();
    const serviceId = await ensureService(cloudMap, namespace.id, r.name, logger, signal);
    try {
      await cloudMap.registerInstance(serviceId, r.instanceId, r.attributes, signal);
      return { ...r, serviceId };
    } catch (err) {
      if (!isNotFound(err, 'Service')) throw err;
      lastError = err;
      logger.info('the Cloud Map service went away while registering; looking it up again', { service: r.name, serviceId, attempt });
    }
  }
  throw lastError;
}

/**
 * Registers every entry, in order. Each success is pushed to `registered` as it happens, so that a failure or a
 * stop half-way leaves the caller a complete list of what to deregister.
 */
export async function registerTask(
  cloudMap: CloudMap,
  namespace: NamespaceRef,
  entries: ReadonlyArray<Omit<Registration, 'serviceId'>>,
  registered: Registration[],
  logger: Logger,
  signal?: AbortSignal,
): Promise<void> {
  for (const e of entries) {
    const r = await registerOne(cloudMap, namespace, e, logger, signal);
    registered.push(r);
    logger.info('registered in Cloud Map', { service: r.name, serviceId: r.serviceId, instanceId: r.instanceId, address: `${e.attributes['AWS_INSTANCE_IPV4']}:${e.attributes['AWS_INSTANCE_PORT']}` });
  }
}

/**
 * Deregisters one instance until Cloud Map says it is not there (an emulator may hold a re-registered id twice;
 * Cloud Map itself answers InstanceNotFound the second time). True when it is gone.
 */
export async function deregisterOne(cloudMap: CloudMap, serviceId: string, instanceId: string, signal: AbortSignal): Promise<void> {
  for (let i = 0; i < 3; i++) {
    try {
      await cloudMap.deregisterInstance(serviceId, instanceId, signal);
    } catch (err) {
      if (isNotFound(err, 'Instance') || isNotFound(err, 'Service')) return;
      throw err;
    }
  }
}

/** Deregisters every registration at once, within deadlineMs; returns how many are left registered. */
export async function deregisterAll(cloudMap: CloudMap, registered: readonly Registration[], opts: { deadlineMs: number; logger: Logger; onResult?: (outcome: 'ok' | 'error' | 'timeout') => void }): Promise<number> {
  const deadline = AbortSignal.timeout(opts.deadlineMs);
  const results = await Promise.all(
    registered.map(async (r) => {
      try {
        await deregisterOne(cloudMap, r.serviceId, r.instanceId, deadline);
        opts.logger.info('deregistered from Cloud Map', { service: r.name, instanceId: r.instanceId });
        opts.onResult?.('ok');
        return true;
      } catch (err) {
        const timedOut = deadline.aborted;
        opts.logger.warn(timedOut ? 'deregistering from Cloud Map did not finish within the deadline; the instance stays registered' : 'deregistering from Cloud Map failed; the instance stays registered', {
          service: r.name,
          serviceId: r.serviceId,
          instanceId: r.instanceId,
          deadlineMs: opts.deadlineMs,
          ...(timedOut ? {} : { err }),
        });
        opts.onResult?.(timedOut ? 'timeout' : 'error');
        return false;
      }
    }),
  );
  return results.filter((ok) => !ok).length;
}
