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
 * grow. On any error the last known endpoints stay in place (never an empty cluster because Cloud Map failed), and
 * the poll interval doubles up to 30 s until a call succeeds again.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger.ts';
import { isThrottling, type CloudMap, type NamespaceRef } from './cloud-map-client.ts';
import { serviceFromInstances, type DiscoveredService, type DiscoverySnapshot } from './snapshot.ts';

export interface DiscoveryOptions {
  readonly cloudMap: CloudMap;
  readonly namespace: NamespaceRef;
  readonly pollIntervalMs: number;
  readonly logger: Logger;
  readonly onChange: (snapshot: DiscoverySnapshot) => Promise<void>;
  readonly revisionChecksPerPoll?: number;
  readonly listEveryPolls?: number;
  readonly refetchEveryPolls?: number;
  readonly maxBackoffMs?: number;
}

interface Tracked {
  readonly id: string;
  revision: number | null;
  service: DiscoveredService;
}

export class Discovery {
  readonly #opts: DiscoveryOptions;
  readonly #tracked = new Map<string, Tracked>();
  #cursor = 0;
  #poll = 0;
  #failing = false;

  constructor(opts: DiscoveryOptions) {
    this.#opts = opts;
  }

  snapshot(): DiscoverySnapshot {
    return { namespace: this.#opts.namespace.name, services: new Map([...this.#tracked].map(([name, t]) => [name, t.service])) };
  }

  /** Lists the namespace and fetches every service's instances once. */
  async initial(): Promise<DiscoverySnapshot> {
    await this.#list();
    for (const name of [...this.#tracked.keys()]) await this.#fetch(name);
    return this.snapshot();
  }

  async #list(): Promise<boolean> {
    const services = await this.#opts.cloudMap.listServices(this.#opts.namespace.id);
    let changed = false;
    const names = new Set(services.map((s) => s.name));
    for (const s of services) {
      // With duplicate names (an emulator may allow them), the first service is the one the name resolves to.
      if (!this.#tracked.has(s.name)) {
        this.#tracked.set(s.name, { id: s.id, revision: null, service: serviceFromInstances(s.name, []) });
        await this.#fetch(s.name);
        changed = true;
      }
    }
    for (const name of [...this.#tracked.keys()]) {
      if (!names.has(name)) {
        this.#tracked.delete(name);
        changed = true;
      }
    }
    return changed;
  }

  /** Fetches a service's instances; true when its endpoints or settings changed. */
  async #fetch(name: string): Promise<boolean> {
    const t = this.#tracked.get(name);
    if (t === undefined) return false;
    const { instances, revision } = await this.#opts.cloudMap.discoverInstances(this.#opts.namespace.name, name);
    // The revision the instances are at, so the next revision check compares with what was fetched.
    t.revision = revision;
    const next = serviceFromInstances(name, instances, t.service);
    const changed = JSON.stringify(next) !== JSON.stringify(t.service);
    t.service = next;
    return changed;
  }

  async pollOnce(): Promise<boolean> {
    this.#poll += 1;
    const listEvery = this.#opts.listEveryPolls ?? 10;
    const refetchEvery = this.#opts.refetchEveryPolls ?? 30;
    let changed = false;
    if (this.#poll % listEvery === 0) changed = (await this.#list()) || changed;
    const names = [...this.#tracked.keys()].sort();
    const batch = Math.min(this.#opts.revisionChecksPerPoll ?? 5, names.length);
    const refetch = this.#poll % refetchEvery === 0;
    for (let i = 0; i < batch; i++) {
      const name = names[(this.#cursor + i) % names.length] as string;
      const t = this.#tracked.get(name);
      if (t === undefined) continue;
      if (refetch) {
        changed = (await this.#fetch(name)) || changed;
        continue;
      }
      const revision = await this.#opts.cloudMap.discoverRevision(this.#opts.namespace.name, name);
      if (revision !== t.revision) changed = (await this.#fetch(name)) || changed;
    }
    this.#cursor = names.length === 0 ? 0 : (this.#cursor + batch) % names.length;
    return changed;
  }

  async run(signal: AbortSignal): Promise<void> {
    let waitMs = this.#opts.pollIntervalMs;
    while (!signal.aborted) {
      try {
        await sleep(waitMs, undefined, { signal });
      } catch {
        return;
      }
      try {
        const changed = await this.pollOnce();
        if (this.#failing) this.#opts.logger.info('Cloud Map answers again');
        this.#failing = false;
        waitMs = this.#opts.pollIntervalMs;
        if (changed) await this.#opts.onChange(this.snapshot());
      } catch (err) {
        if (signal.aborted) return;
        waitMs = Math.min(waitMs * 2, this.#opts.maxBackoffMs ?? 30_000);
        if (!this.#failing) {
          this.#opts.logger.warn('Cloud Map call failed; keeping the last known endpoints and backing off', { err, throttled: isThrottling(err), nextPollMs: waitMs });
        }
        this.#failing = true;
      }
    }
  }
}
