/**
 * Discovery: keeps a snapshot of every service in the namespace and its endpoints, and reports changes.
 *
 * Each poll makes a bounded number of Cloud Map calls, whatever the size of the namespace:
 * - the revisions (DiscoverInstancesRevision) of at most `revisionChecksPerPoll` services, round robin, and the
 *   instances (DiscoverInstances) of those whose revision changed;
 * - every `listEveryPolls` polls, ListServices (one call per 100 services), to find services that appeared or went;
 * - every `refetchEveryPolls` polls, the round-robin batch fetches instances instead of revisions, so a change that
 *   leaves the revision equal (possible with some emulators) is still seen.
 * With more services than fit in one poll, a change takes proportionally longer to be seen; the call rate does not
 * grow.
 *
 * Failures stay where they happen:
 * - A service Cloud Map no longer knows (ServiceNotFound) keeps its last known endpoints, is reported once, and
 *   the service list is read again at the next poll; every other service is polled as usual. A service the list
 *   no longer has is removed (its instances were deregistered first, as Cloud Map requires).
 * - A namespace that is gone (NamespaceNotFound) keeps every service as last known, is reported in warnings(), and
 *   is looked up by name at every poll until it exists again (possibly with a new id).
 * - Any other error (throttling, timeouts, Cloud Map down) keeps the last known endpoints, and the poll interval
 *   doubles up to 30 s until a call succeeds again.
 * Never an empty cluster because Cloud Map failed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger.ts';
import { isNotFound, isThrottling, type CloudMap, type NamespaceRef } from './cloud-map-client.ts';
import { ProblemLog } from './problem-log.ts';
import { ATTRIBUTES, readService, serviceNameProblem, type CloudMapInstance, type DiscoveredService, type DiscoverySnapshot, type RecordProblem } from './snapshot.ts';

export interface DiscoveryOptions {
  readonly cloudMap: CloudMap;
  readonly namespace: NamespaceRef;
  readonly pollIntervalMs: number;
  readonly logger: Logger;
  /** Where skipped records are reported; default: a log of its own. */
  readonly problems?: ProblemLog;
  readonly onChange: (snapshot: DiscoverySnapshot) => Promise<void>;
  /** After every poll, changed or not (retries of what could not be applied, self-healing). */
  readonly afterPoll?: (snapshot: DiscoverySnapshot) => Promise<void>;
  readonly revisionChecksPerPoll?: number;
  readonly listEveryPolls?: number;
  readonly refetchEveryPolls?: number;
  readonly maxBackoffMs?: number;
  readonly now?: () => number;
}

interface Tracked {
  id: string;
  revision: number | null;
  service: DiscoveredService;
  /** Every instance Cloud Map returned, valid or not: id → SC_TASK_ID (stale registrations of this task). */
  instances: Map<string, string | null>;
  /** Since when Cloud Map answers ServiceNotFound for it (epoch ms), or null. */
  missingSinceMs: number | null;
}

class NamespaceGone extends Error {
  constructor() {
    super('the namespace does not exist (NamespaceNotFound)');
  }
}

export class Discovery {
  readonly #opts: DiscoveryOptions;
  readonly #tracked = new Map<string, Tracked>();
  readonly #now: () => number;
  readonly #problems: ProblemLog;
  #namespace: NamespaceRef;
  #cursor = 0;
  #poll = 0;
  #failingSinceMs: number | null = null;
  #namespaceMissingSinceMs: number | null = null;
  #listSoon = false;
  readonly #refetchSoon = new Set<string>();

  constructor(opts: DiscoveryOptions) {
    this.#opts = opts;
    this.#namespace = opts.namespace;
    this.#now = opts.now ?? Date.now;
    this.#problems = opts.problems ?? new ProblemLog({ logger: opts.logger });
  }

  get namespace(): NamespaceRef {
    return this.#namespace;
  }

  snapshot(): DiscoverySnapshot {
    return { namespace: this.#namespace.name, services: new Map([...this.#tracked].map(([name, t]) => [name, t.service])) };
  }

  /** Every instance of a service as Cloud Map returned it (valid or not): id → SC_TASK_ID. */
  instancesOf(name: string): ReadonlyMap<string, string | null> {
    return this.#tracked.get(name)?.instances ?? new Map();
  }

  /** The Cloud Map service id of a tracked service. */
  serviceId(name: string): string | null {
    return this.#tracked.get(name)?.id ?? null;
  }

  /** Fetch this service's instances at the next poll (after the agent re-registered in it). */
  refetchSoon(name: string): void {
    this.#refetchSoon.add(name);
  }

  /** Read the service list at the next poll. */
  listSoon(): void {
    this.#listSoon = true;
  }

  /** What /status says about discovery while something is wrong; empty when all is well. */
  warnings(): string[] {
    const out: string[] = [];
    const since = (ms: number) => new Date(ms).toISOString();
    if (this.#namespaceMissingSinceMs !== null) {
      out.push(`Cloud Map namespace "${this.#namespace.name}" does not exist (since ${since(this.#namespaceMissingSinceMs)}); keeping the last known ${this.#tracked.size} service(s)`);
    }
    for (const [name, t] of this.#tracked) {
      if (t.missingSinceMs !== null) out.push(`Cloud Map service "${name}" is not found (since ${since(t.missingSinceMs)}); keeping its last known ${t.service.endpoints.length} endpoint(s)`);
    }
    if (this.#failingSinceMs !== null && this.#namespaceMissingSinceMs === null) out.push(`Cloud Map calls fail (since ${since(this.#failingSinceMs)}); keeping the last known endpoints`);
    return out;
  }

  /** Lists the namespace and fetches every service's instances once. */
  async initial(signal?: AbortSignal): Promise<DiscoverySnapshot> {
    await this.#list(signal);
    for (const name of [...this.#tracked.keys()]) await this.#fetch(name, signal);
    return this.snapshot();
  }

  async #list(signal?: AbortSignal): Promise<boolean> {
    const services = await this.#opts.cloudMap.listServices(this.#namespace.id, signal).catch((err: unknown) => {
      throw isNotFound(err, 'Namespace') ? new NamespaceGone() : err;
    });
    if (services.length === 0 && this.#tracked.size > 0 && !(await this.#opts.cloudMap.namespaceExists(this.#namespace.id, signal))) throw new NamespaceGone();
    let changed = false;
    const names = new Set<string>();
    const problems: RecordProblem[] = [];
    for (const s of services) {
      // With duplicate names (an emulator may allow them), the first service listed (the oldest) is the one the
      // name resolves to.
      if (names.has(s.name)) continue;
      const problem = serviceNameProblem(s.name);
      if (problem !== null) {
        problems.push(problem);
        continue;
      }
      names.add(s.name);
      const t = this.#tracked.get(s.name);
      if (t === undefined) {
        this.#tracked.set(s.name, { id: s.id, revision: null, service: readService(s.name, []).service, instances: new Map(), missingSinceMs: null });
        await this.#fetch(s.name, signal);
        changed = true;
      } else if (t.id !== s.id) {
        // Deleted and created again (or the namespace was): fetch from the new one.
        t.id = s.id;
        changed = (await this.#fetch(s.name, signal)) || changed;
      }
    }
    this.#problems.set('service list', problems);
    for (const [name, t] of [...this.#tracked]) {
      if (names.has(name)) continue;
      this.#tracked.delete(name);
      this.#problems.clear(`service ${name}`);
      const fields = { service: name, endpoints: t.service.endpoints.length };
      if (t.service.endpoints.length > 0) this.#opts.logger.warn('a Cloud Map service was deleted while it had instances; removing its listener and name', fields);
      else this.#opts.logger.info('a Cloud Map service was deleted; removing its listener and name', fields);
      changed = true;
    }
    return changed;
  }

  /** Fetches a service's instances; true when its endpoints or settings changed. */
  async #fetch(name: string, signal?: AbortSignal): Promise<boolean> {
    const t = this.#tracked.get(name);
    if (t === undefined) return false;
    let result: { instances: CloudMapInstance[]; revision: number | null };
    try {
      result = await this.#opts.cloudMap.discoverInstances(this.#namespace.name, name, t.id, signal);
    } catch (err) {
      if (isNotFound(err, 'Namespace')) throw new NamespaceGone();
      if (!isNotFound(err, 'Service')) throw err;
      if (t.missingSinceMs === null) {
        t.missingSinceMs = this.#now();
        this.#opts.logger.warn('a Cloud Map service is not found; keeping its last known endpoints and reading the service list again', { service: name, endpoints: t.service.endpoints.length });
      }
      this.#listSoon = true;
      return false;
    }
    if (t.missingSinceMs !== null) this.#opts.logger.info('a Cloud Map service is found again', { service: name });
    t.missingSinceMs = null;
    // The revision the instances are at, so the next revision check compares with what was fetched.
    t.revision = result.revision;
    t.instances = new Map(result.instances.filter((i) => typeof i.InstanceId === 'string').map((i) => [i.InstanceId as string, i.Attributes?.[ATTRIBUTES.taskId] ?? null]));
    const { service: next, problems } = readService(name, result.instances, t.service);
    this.#problems.set(`service ${name}`, problems);
    const changed = JSON.stringify(next) !== JSON.stringify(t.service);
    t.service = next;
    return changed;
  }

  /**
   * One poll. A service Cloud Map does not find is handled in #fetch and does not stop the others; any other error
   * (throttling, a timeout, Cloud Map down) is Cloud Map's as a whole and ends the poll (backoff), keeping what
   * this poll changed so far.
   */
  async pollOnce(signal?: AbortSignal): Promise<boolean> {
    this.#poll += 1;
    if (this.#namespaceMissingSinceMs !== null) return this.#lookForNamespace(signal);
    const listEvery = this.#opts.listEveryPolls ?? 10;
    const refetchEvery = this.#opts.refetchEveryPolls ?? 30;
    let changed = false;
    const attempt = async (what: () => Promise<boolean>) => {
      try {
        changed = (await what()) || changed;
      } catch (err) {
        if (err instanceof NamespaceGone) throw err;
        throw Object.assign(err as Error, { changed });
      }
    };
    try {
      if (this.#poll % listEvery === 0 || this.#listSoon) {
        this.#listSoon = false;
        await attempt(() => this.#list(signal));
      }
      for (const name of [...this.#refetchSoon]) {
        this.#refetchSoon.delete(name);
        await attempt(() => this.#fetch(name, signal));
      }
      const names = [...this.#tracked.keys()].sort();
      const batch = Math.min(this.#opts.revisionChecksPerPoll ?? 5, names.length);
      const refetch = this.#poll % refetchEvery === 0;
      for (let i = 0; i < batch; i++) {
        const name = names[(this.#cursor + i) % names.length] as string;
        const t = this.#tracked.get(name);
        if (t === undefined) continue;
        await attempt(async () => {
          if (refetch || t.missingSinceMs !== null) return this.#fetch(name, signal);
          let revision: number | null;
          try {
            revision = await this.#opts.cloudMap.discoverRevision(this.#namespace.name, name, signal);
          } catch (err) {
            if (isNotFound(err, 'Namespace')) throw new NamespaceGone();
            if (!isNotFound(err, 'Service')) throw err;
            revision = null; // #fetch reports it and keeps the last known endpoints
          }
          return revision === null || revision !== t.revision ? this.#fetch(name, signal) : false;
        });
      }
      this.#cursor = names.length === 0 ? 0 : (this.#cursor + batch) % names.length;
    } catch (err) {
      if (!(err instanceof NamespaceGone)) throw err;
      this.#namespaceMissingSinceMs = this.#now();
      this.#opts.logger.warn('the Cloud Map namespace does not exist any more; keeping the last known services and looking for it at every poll', { namespace: this.#namespace.name, id: this.#namespace.id, services: this.#tracked.size });
      return changed;
    }
    return changed;
  }

  async #lookForNamespace(signal?: AbortSignal): Promise<boolean> {
    const found = await this.#opts.cloudMap.findNamespace(this.#namespace.name, signal);
    if (found === null) return false;
    this.#opts.logger.info('the Cloud Map namespace exists again', { namespace: found.name, id: found.id, previousId: this.#namespace.id });
    this.#namespace = found;
    this.#namespaceMissingSinceMs = null;
    return this.#list(signal);
  }

  async run(signal: AbortSignal): Promise<void> {
    let waitMs = this.#opts.pollIntervalMs;
    while (!signal.aborted) {
      try {
        await sleep(waitMs, undefined, { signal });
      } catch {
        return;
      }
      let changed = false;
      try {
        changed = await this.pollOnce(signal);
        if (this.#failingSinceMs !== null) this.#opts.logger.info('Cloud Map answers again');
        this.#failingSinceMs = null;
        // While the namespace is gone, looking it up (one ListNamespaces) backs off to 5 s at most.
        waitMs = this.#namespaceMissingSinceMs === null ? this.#opts.pollIntervalMs : Math.min(waitMs * 2, 5000);
      } catch (err) {
        if (signal.aborted) return;
        changed = (err as { changed?: boolean }).changed === true;
        waitMs = Math.min(waitMs * 2, this.#opts.maxBackoffMs ?? 30_000);
        if (this.#failingSinceMs === null) {
          this.#opts.logger.warn('Cloud Map call failed; keeping the last known endpoints and backing off', { err, throttled: isThrottling(err), nextPollMs: waitMs });
          this.#failingSinceMs = this.#now();
        }
      }
      if (signal.aborted) return;
      if (changed) await this.#opts.onChange(this.snapshot());
      await this.#opts.afterPoll?.(this.snapshot());
    }
  }
}
