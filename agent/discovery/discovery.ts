/**
 * Discovery: keeps a snapshot of every service in the namespace and its endpoints, and reports changes.
 *
 * The call model (docs/cloud-map.md, "Scale"):
 * - The budget: this agent's share of the account's quotas, `quotaShare` × quota ÷ the fleet, where the fleet is
 *   estimated as the number of instances in the namespace (one a task and service). Two token buckets at those
 *   rates (DiscoverInstances, DiscoverInstancesRevision), each holding at most two polls' worth; with a small fleet,
 *   the natural rate (`revisionChecksPerPoll` a poll) is the ceiling.
 * - Services in use (the mode tells which from Envoy's per-cluster traffic, setInUse) are checked on a schedule of
 *   their own: h services in use get one check every I ÷ h, the least recently checked first, so each is checked
 *   every I = max(poll, h ÷ (0.9 × (R + D))), evenly spread, at the moment it is due (the loop wakes then, not at
 *   its next poll). A check is a DiscoverInstances when that bucket has a token (the instances directly), else a
 *   DiscoverInstancesRevision, and the instances when the revision changed. Checks of services in use may take
 *   their buckets below zero, down to minus one bucket (a debt the other checks pay back): so the others never
 *   make a service in use wait, and a burst of changes never makes it wait longer than a bucket.
 * - The other services are checked round robin at each poll, at most `revisionChecksPerPoll`, with the tokens
 *   left (never below zero).
 * - A fetch that a change calls for (a changed revision of a service not in use, the InstanceCount signal below)
 *   waits for a DiscoverInstances token: never made over the budget. A service in use goes first, and may take
 *   the bucket down to one fetch per service in use below its floor (#takeFetchToken).
 * - The service list (ListServices) is read every `listEveryMs`, to find services that appeared or went; where
 *   Cloud Map gives each service's InstanceCount (AWS does, moto does not), a service whose count moved since the
 *   last list is fetched as soon as the budget allows: the namespace-wide change signal for instances registered
 *   or deregistered.
 * - The polls are jittered (±20 %; the first one uniform over a poll interval), so agents started together do not
 *   poll in step; the checks of services in use start at a random point of their spacing.
 * - Services never fetched (start-up cut short by throttling, new services) are fetched first at each poll, at
 *   most `revisionChecksPerPoll` a poll, outside the budget (Cloud Map's own throttling paces them).
 *
 * Failures stay where they happen:
 * - A service Cloud Map no longer knows (ServiceNotFound) keeps its last known endpoints, is reported once, and
 *   the service list is read again at the next poll; every other service is polled as usual. A service the list
 *   no longer has is removed (its instances were deregistered first, as Cloud Map requires).
 * - A namespace that is gone (NamespaceNotFound) keeps every service as last known, is reported in warnings(), and
 *   is looked up by name at every poll until it exists again (possibly with a new id).
 * - Any other error (throttling, timeouts, Cloud Map down) keeps the last known endpoints, and the wait doubles
 *   (with jitter) up to 30 s until a call succeeds again; throttling also empties the budget's buckets (to their
 *   floor: the next check of a service in use waits for a token).
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
  /** Called with the snapshot when it changed: one at a time, beside the checks (run()). */
  readonly onChange: (snapshot: DiscoverySnapshot) => Promise<void>;
  /** After a poll, changed or not (retries of what could not be applied, self-healing): one at a time, beside the checks. */
  readonly afterPoll?: (snapshot: DiscoverySnapshot) => Promise<void>;
  readonly revisionChecksPerPoll?: number;
  /** How often the service list is read; default 10 polls. */
  readonly listEveryMs?: number;
  readonly refetchEveryPolls?: number;
  readonly maxBackoffMs?: number;
  /** The share of the account's quotas the whole fleet may use, 0 to 1; default DEFAULT_QUOTA_SHARE. */
  readonly quotaShare?: number;
  /** How long the start-up discovery retries throttled calls before going on with what it has; default 20 s. */
  readonly startDeadlineMs?: number;
  readonly now?: () => number;
  readonly random?: () => number;
}

/** Cloud Map's documented account quotas per Region (calls/s): DiscoverInstances 1,000 (bucket 2,000), DiscoverInstancesRevision 3,000. */
export const CLOUD_MAP_QUOTAS = { discoverInstances: 1000, discoverInstancesRevision: 3000 } as const;
export const DEFAULT_QUOTA_SHARE = 0.4;
/** The part of an agent's budget that services in use may take; the rest keeps the others checked. */
export const IN_USE_SHARE = 0.9;

/**
 * A token bucket at a rate that changes with the fleet estimate, holding at most `capacity` tokens. Services in use
 * may take it below zero, down to a floor: a debt that the other checks pay back.
 */
class Tokens {
  tokens = 1;
  capacity = 1;
  ratePerS = 1;
  #at: number;
  constructor(now: number) {
    this.#at = now;
  }
  refill(ratePerS: number, capacity: number, now: number): void {
    this.ratePerS = ratePerS;
    this.capacity = Math.max(capacity, 1);
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.#at) / 1000) * ratePerS);
    this.#at = now;
  }
  /** A token above zero (the other services, fetches that wait). */
  take(): boolean {
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
  /** A token down to the floor, -capacity - `deeper` (services in use). */
  takeInUse(deeper = 0): boolean {
    if (this.tokens - 1 < -this.capacity - deeper) return false;
    this.tokens -= 1;
    return true;
  }
  /** Empty, to the floor (after throttling). */
  drain(): void {
    this.tokens = -this.capacity;
  }
  /** ms until take() (or takeInUse(deeper)) would succeed. */
  msUntil(inUse: boolean, deeper = 0): number {
    const need = (inUse ? 1 - this.capacity - deeper : 1) - this.tokens;
    return need <= 0 ? 0 : this.ratePerS <= 0 ? Infinity : (need / this.ratePerS) * 1000;
  }
}

/** The budget a fleet of `fleet` agents gives each one (calls/s), capped by the natural rate. */
export function perAgentBudget(fleet: number, share: number, naturalPerS: number): { revisionPerS: number; instancesPerS: number } {
  const n = Math.max(1, fleet);
  return {
    revisionPerS: Math.min(naturalPerS, (share * CLOUD_MAP_QUOTAS.discoverInstancesRevision) / n),
    instancesPerS: Math.min(naturalPerS, (share * CLOUD_MAP_QUOTAS.discoverInstances) / n),
  };
}

interface Tracked {
  id: string;
  revision: number | null;
  service: DiscoveredService;
  /** Every instance Cloud Map returned, valid or not: id → SC_TASK_ID (stale registrations of this task). */
  instances: Map<string, string | null>;
  /** Since when Cloud Map answers ServiceNotFound for it (epoch ms), or null. */
  missingSinceMs: number | null;
  /** Whether its instances were fetched at least once. */
  fetched: boolean;
  /** When it was last checked while in use (epoch ms; 0: not since it came into use). */
  lastCheckMs: number;
  /** Cloud Map's InstanceCount at the last list (AWS gives it; moto does not), or null. */
  listedCount: number | null;
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
  /** Fetched at the next wake, whatever the budget (the mode asked: this task re-registered in it). */
  readonly #refetchSoon = new Set<string>();
  /** Fetched as DiscoverInstances tokens allow, services in use first (a change was seen). */
  readonly #fetchQueue = new Set<string>();
  /** When the next check of a service in use is due, and when the next poll (epoch ms). */
  #nextInUseMs = 0;
  #nextPollMs = 0;
  readonly #random: () => number;
  #inUse = new Set<string>();
  #lastListMs = 0;
  readonly #revisionTokens: Tokens;
  readonly #instanceTokens: Tokens;
  /** While run() runs: starts the update of Envoy at once when a call in a wake changed the snapshot. */
  #announce: (() => void) | null = null;
  /** Whether the current wake announced a change already. */
  #announced = false;

  constructor(opts: DiscoveryOptions) {
    this.#opts = opts;
    this.#namespace = opts.namespace;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#problems = opts.problems ?? new ProblemLog({ logger: opts.logger });
    this.#revisionTokens = new Tokens(this.#now());
    this.#instanceTokens = new Tokens(this.#now());
  }

  /** The services this task calls (Envoy saw traffic to them): checked first and most often. */
  setInUse(names: Iterable<string>): void {
    const next = new Set(names);
    // The first service in use: its checks start at a random point of their spacing, so agents do not check in step.
    if (this.#inUse.size === 0 && next.size > 0) this.#nextInUseMs = this.#now() + this.#random() * this.#inUseSpacingMs(next.size);
    for (const name of next) {
      const t = this.#tracked.get(name);
      if (t !== undefined && !this.#inUse.has(name)) t.lastCheckMs = 0; // checked first (least recently checked)
    }
    this.#inUse = next;
  }

  /** The services in use that are known and fetched. */
  #inUseTracked(): Array<[string, Tracked]> {
    const out: Array<[string, Tracked]> = [];
    for (const name of this.#inUse) {
      const t = this.#tracked.get(name);
      if (t !== undefined && t.fetched) out.push([name, t]);
    }
    return out;
  }

  /** The time between two checks of services in use (ms): I ÷ h. */
  #inUseSpacingMs(h: number): number {
    return this.budget().inUseEveryMs / Math.max(1, h);
  }

  /** The fleet as this agent estimates it: the instances in the namespace (one a task and service it serves). */
  fleetEstimate(): number {
    let n = 0;
    for (const t of this.#tracked.values()) n += t.instances.size;
    return Math.max(1, n);
  }

  /** What this agent may spend now (calls/s), and how often a service in use is checked (ms). */
  budget(): { fleet: number; revisionPerS: number; instancesPerS: number; inUseEveryMs: number } {
    const fleet = this.fleetEstimate();
    const poll = this.#opts.pollIntervalMs;
    const b = perAgentBudget(fleet, this.#opts.quotaShare ?? DEFAULT_QUOTA_SHARE, ((this.#opts.revisionChecksPerPoll ?? 5) * 1000) / poll);
    const inUse = [...this.#inUse].filter((n) => this.#tracked.has(n)).length;
    // Services in use get at most 90 % of the budget, so the others are still checked, slowly.
    const inUseEveryMs = inUse === 0 ? poll : Math.max(poll, (inUse * 1000) / (IN_USE_SHARE * (b.revisionPerS + b.instancesPerS)));
    return { fleet, ...b, inUseEveryMs };
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

  /**
   * Lists the namespace and fetches every service's instances once. Throttled calls are retried with jittered
   * backoff until `startDeadlineMs`; then it goes on with what it has (services not fetched yet are fetched first
   * by the polls, and the list is read at the first poll when it could not be). Other errors are thrown.
   */
  async initial(signal?: AbortSignal): Promise<DiscoverySnapshot> {
    const deadline = this.#now() + (this.#opts.startDeadlineMs ?? 20_000);
    let waitMs = 250;
    let throttled = 0;
    const retrying = async <T>(call: () => Promise<T>): Promise<T | undefined> => {
      for (;;) {
        try {
          return await call();
        } catch (err) {
          if (!isThrottling(err) || signal?.aborted) throw err;
          throttled += 1;
          if (this.#now() + waitMs > deadline) return undefined;
          await sleep(waitMs * (0.5 + this.#random() / 2), undefined, signal ? { signal } : {});
          waitMs = Math.min(waitMs * 2, 4000);
        }
      }
    };
    const listed = await retrying(() => this.#list(signal, false));
    if (listed === undefined) this.#listSoon = true;
    for (const name of [...this.#tracked.keys()]) {
      if ((await retrying(() => this.#fetch(name, signal))) === undefined) break;
      waitMs = Math.max(250, waitMs / 2);
    }
    const missing = [...this.#tracked.values()].filter((t) => !t.fetched).length;
    if (throttled > 0) {
      this.#opts.logger.warn('Cloud Map throttled the start-up discovery; going on with what it has and fetching the rest in the polls', { throttled, services: this.#tracked.size, notFetchedYet: missing, listed: listed !== undefined });
    }
    this.#lastListMs = this.#now();
    return this.snapshot();
  }

  async #list(signal?: AbortSignal, fetchNew = false): Promise<boolean> {
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
        this.#tracked.set(s.name, { id: s.id, revision: null, service: readService(s.name, []).service, instances: new Map(), missingSinceMs: null, fetched: false, lastCheckMs: 0, listedCount: s.instanceCount ?? null });
        if (fetchNew) await this.#fetch(s.name, signal);
        changed = true;
      } else if (t.id !== s.id) {
        // Deleted and created again (or the namespace was): fetch from the new one.
        t.id = s.id;
        t.listedCount = s.instanceCount ?? null;
        changed = (await this.#fetch(s.name, signal)) || changed;
      } else if (s.instanceCount !== undefined) {
        // The namespace-wide change signal: a service whose InstanceCount moved since the last list had instances
        // registered or deregistered; fetch it as soon as the budget allows instead of waiting for its turn.
        // (Same-count replacements and attribute changes are left to the revision checks.)
        if (t.listedCount !== null && t.listedCount !== s.instanceCount && t.fetched) this.#fetchQueue.add(s.name);
        t.listedCount = s.instanceCount;
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
    this.#fetchQueue.delete(name);
    t.fetched = true;
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
   * A DiscoverInstances token for the fetch a change calls for. A service in use may take the bucket down to one
   * fetch per service in use below its floor: a burst that changes every service in use is fetched at once, and
   * the debt is paid back (its checks are revision checks meanwhile). Any other service waits for a token.
   */
  #takeFetchToken(name: string): boolean {
    return this.#inUse.has(name) ? this.#instanceTokens.takeInUse(this.#inUse.size) : this.#instanceTokens.take();
  }

  /**
   * A revision check of one service, and its instances when the revision changed: at once when the DiscoverInstances
   * bucket has a token (down to its floor for a service in use), else queued for the next token.
   */
  async #check(name: string, signal?: AbortSignal): Promise<boolean> {
    const t = this.#tracked.get(name);
    if (t === undefined) return false;
    if (t.missingSinceMs !== null) return this.#fetch(name, signal);
    let revision: number | null;
    try {
      revision = await this.#opts.cloudMap.discoverRevision(this.#namespace.name, name, signal);
    } catch (err) {
      if (isNotFound(err, 'Namespace')) throw new NamespaceGone();
      if (!isNotFound(err, 'Service')) throw err;
      revision = null; // #fetch reports it and keeps the last known endpoints
    }
    if (revision !== null && revision === t.revision) return false;
    if (!this.#takeFetchToken(name)) {
      this.#fetchQueue.add(name);
      return false;
    }
    return this.#fetch(name, signal);
  }

  /**
   * One wake of the loop (docs at the top): the list when due, fetches asked for, services never fetched, the
   * checks of services in use that are due, fetches waiting for a token, and, once a poll interval, other services
   * round robin with what the budget leaves. A service Cloud Map does not find is handled in #fetch and does not
   * stop the others; any other error (throttling, a timeout, Cloud Map down) is Cloud Map's as a whole and ends the
   * wake (backoff), keeping what it changed so far.
   */
  async pollOnce(signal?: AbortSignal): Promise<boolean> {
    if (this.#namespaceMissingSinceMs !== null) {
      this.#poll += 1;
      return this.#lookForNamespace(signal);
    }
    const now = this.#now();
    const poll = this.#opts.pollIntervalMs;
    const perPoll = this.#opts.revisionChecksPerPoll ?? 5;
    const budget = this.budget();
    this.#revisionTokens.refill(budget.revisionPerS, budget.revisionPerS * (poll / 1000) * 2, now);
    this.#instanceTokens.refill(budget.instancesPerS, budget.instancesPerS * (poll / 1000) * 2, now);
    const pollDue = now >= this.#nextPollMs;
    if (pollDue) {
      this.#poll += 1;
      this.#nextPollMs = now + poll * (0.8 + 0.4 * this.#random());
    }
    let changed = false;
    this.#announced = false;
    const attempt = async (what: () => Promise<boolean>) => {
      try {
        if (!(await what())) return;
        changed = true;
        // The update starts now, beside the rest of the wake: a change to a service in use does not wait for the
        // calls after it (the round robin, queued fetches), each a round trip to Cloud Map.
        if (this.#announce !== null) {
          this.#announced = true;
          this.#announce();
        }
      } catch (err) {
        if (err instanceof NamespaceGone) throw err;
        throw Object.assign(err as Error, { changed });
      }
    };
    try {
      const listDue = now - this.#lastListMs >= (this.#opts.listEveryMs ?? poll * 10) || this.#listSoon;
      if (listDue) {
        this.#listSoon = false;
        this.#lastListMs = now;
        await attempt(() => this.#list(signal));
      }
      for (const name of [...this.#refetchSoon]) {
        this.#refetchSoon.delete(name);
        this.#instanceTokens.tokens = Math.max(-this.#instanceTokens.capacity, this.#instanceTokens.tokens - 1);
        await attempt(() => this.#fetch(name, signal));
      }
      // Services never fetched (new, or left by a throttled start-up), a few a poll, and at once after a list.
      if (pollDue || listDue) {
        const unfetched = [...this.#tracked].filter(([, t]) => !t.fetched).map(([name]) => name).sort((x, y) => Number(this.#inUse.has(y)) - Number(this.#inUse.has(x)));
        for (const name of unfetched.slice(0, perPoll)) await attempt(() => this.#fetch(name, signal));
      }

      // Services in use: the checks that are due, the least recently checked service first.
      const inUse = this.#inUseTracked();
      if (inUse.length === 0) this.#nextInUseMs = now;
      else {
        const spacing = this.#inUseSpacingMs(inUse.length);
        // After a stall (Envoy slow to take an update, a backoff), every service in use that is overdue is checked
        // now, once: the schedule lags by at most one round.
        this.#nextInUseMs = Math.max(this.#nextInUseMs, now - spacing * inUse.length + spacing);
        while (this.#nextInUseMs <= now) {
          const [name, t] = inUse.reduce((a, b) => (b[1].lastCheckMs < a[1].lastCheckMs ? b : a));
          // The instances directly while that bucket has a token, unless fetches wait for one and a revision check
          // can be had without debt.
          const queued = this.#fetchQueue.size > 0 && this.#revisionTokens.tokens >= 1;
          if (!queued && this.#instanceTokens.take()) await attempt(() => this.#fetch(name, signal));
          else if (this.#revisionTokens.takeInUse()) await attempt(() => this.#check(name, signal));
          else break; // both at their floor: the next wake is when a token is back
          t.lastCheckMs = now;
          this.#nextInUseMs += spacing;
        }
      }

      // Fetches that wait for a token: services in use first (down to the floor), then the others.
      const queued = [...this.#fetchQueue].sort((x, y) => Number(this.#inUse.has(y)) - Number(this.#inUse.has(x)));
      for (const name of queued) {
        if (!this.#tracked.has(name)) {
          this.#fetchQueue.delete(name);
          continue;
        }
        if (!this.#takeFetchToken(name)) break;
        await attempt(() => this.#fetch(name, signal));
      }

      // The others, round robin, with the tokens left.
      if (pollDue) {
        const names = [...this.#tracked.keys()].filter((n) => !this.#inUse.has(n) && !this.#fetchQueue.has(n)).sort();
        const refetch = this.#poll % (this.#opts.refetchEveryPolls ?? 30) === 0;
        let checked = 0;
        while (checked < Math.min(perPoll, names.length) && this.#revisionTokens.tokens >= 1) {
          const name = names[(this.#cursor + checked) % names.length] as string;
          checked += 1;
          if (refetch && this.#instanceTokens.take()) await attempt(() => this.#fetch(name, signal));
          else {
            this.#revisionTokens.take();
            await attempt(() => this.#check(name, signal));
          }
        }
        this.#cursor = names.length === 0 ? 0 : (this.#cursor + checked) % names.length;
      }
    } catch (err) {
      if (!(err instanceof NamespaceGone)) throw err;
      this.#namespaceMissingSinceMs = this.#now();
      this.#opts.logger.warn('the Cloud Map namespace does not exist any more; keeping the last known services and looking for it at every poll', { namespace: this.#namespace.name, id: this.#namespace.id, services: this.#tracked.size });
      return changed;
    }
    return changed;
  }

  /**
   * When the loop wakes next (ms from now): at the next poll (jittered when it was set), or earlier when a check of
   * a service in use is due (exactly then, or when a token is back), or a fetch waits for a token.
   */
  #nextWakeMs(): number {
    const now = this.#now();
    let next = this.#nextPollMs - now;
    if (this.#inUseTracked().length > 0) {
      const tokenMs = Math.min(this.#instanceTokens.msUntil(false), this.#revisionTokens.msUntil(true));
      next = Math.min(next, Math.max(this.#nextInUseMs - now, tokenMs));
    }
    if (this.#fetchQueue.size > 0) {
      const first = [...this.#fetchQueue].some((n) => this.#inUse.has(n));
      next = Math.min(next, this.#instanceTokens.msUntil(first, this.#inUse.size));
    }
    return Math.max(5, next);
  }

  async #lookForNamespace(signal?: AbortSignal): Promise<boolean> {
    const found = await this.#opts.cloudMap.findNamespace(this.#namespace.name, signal);
    if (found === null) return false;
    this.#opts.logger.info('the Cloud Map namespace exists again', { namespace: found.name, id: found.id, previousId: this.#namespace.id });
    this.#namespace = found;
    this.#namespaceMissingSinceMs = null;
    return this.#list(signal);
  }

  /**
   * The loop. onChange and afterPoll run beside the checks, not in their way: both talk to Envoy (a file update
   * and its verdict, the traffic counters), which takes a second or more on a busy host, and awaiting them held up
   * the next checks of the services in use by as much. onChange starts as soon as a call of a wake changed the
   * snapshot, not when the wake is done (pollOnce's calls are one after the other). One onChange at a time: changes
   * seen while one is in flight go in one more, with the latest snapshot, once it is done. One afterPoll at a time: a wake while one is in
   * flight does without.
   */
  async run(signal: AbortSignal): Promise<void> {
    const report = (what: string) => (err: unknown) => this.#opts.logger.error(what, { err });
    let applying: Promise<void> | null = null;
    let again = false;
    const applyChanges = () => {
      if (applying !== null) {
        again = true;
        return;
      }
      applying = (async () => {
        do {
          again = false;
          await this.#opts.onChange(this.snapshot());
        } while (again && !signal.aborted);
      })()
        .catch(report('applying Cloud Map changes failed'))
        .finally(() => {
          applying = null;
        });
    };
    let afterPolling: Promise<void> | null = null;
    const afterPoll = () => {
      if (afterPolling !== null || this.#opts.afterPoll === undefined) return;
      afterPolling = this.#opts
        .afterPoll(this.snapshot())
        .catch(report('the work after a Cloud Map poll failed'))
        .finally(() => {
          afterPolling = null;
        });
    };
    this.#announce = applyChanges;
    try {
      await this.#loop(signal, applyChanges, afterPoll);
    } finally {
      this.#announce = null;
      await applying;
      await afterPolling;
    }
  }

  async #loop(signal: AbortSignal, applyChanges: () => void, afterPoll: () => void): Promise<void> {
    // The first wait is uniform over a poll interval: agents started together spread out.
    let waitMs = this.#opts.pollIntervalMs * this.#random();
    this.#nextPollMs = this.#now() + waitMs;
    let backoffMs = this.#opts.pollIntervalMs;
    while (!signal.aborted) {
      try {
        await sleep(waitMs, undefined, { signal });
      } catch {
        return;
      }
      let changed = false;
      this.#announced = false;
      try {
        changed = await this.pollOnce(signal);
        if (this.#failingSinceMs !== null) this.#opts.logger.info('Cloud Map answers again');
        this.#failingSinceMs = null;
        backoffMs = this.#opts.pollIntervalMs;
        // While the namespace is gone, looking it up (one ListNamespaces) backs off to 5 s at most.
        waitMs = this.#namespaceMissingSinceMs === null ? this.#nextWakeMs() : Math.min(Math.max(waitMs, 500) * 2, 5000);
      } catch (err) {
        if (signal.aborted) return;
        changed = (err as { changed?: boolean }).changed === true;
        const throttled = isThrottling(err);
        if (throttled) {
          // The account is over its quota: spend nothing for a while.
          this.#revisionTokens.drain();
          this.#instanceTokens.drain();
        }
        backoffMs = Math.min(backoffMs * 2, this.#opts.maxBackoffMs ?? 30_000);
        // Jittered ("equal jitter"): half the backoff fixed, half random, so throttled agents do not retry in step.
        waitMs = backoffMs / 2 + (backoffMs / 2) * this.#random();
        if (this.#failingSinceMs === null) {
          this.#opts.logger.warn('Cloud Map call failed; keeping the last known endpoints and backing off', { err, throttled, nextPollMs: Math.round(waitMs) });
          this.#failingSinceMs = this.#now();
        }
      }
      if (signal.aborted) return;
      // A change the wake announced as it came is being applied; one it did not (the namespace found again) goes now.
      if (changed && !this.#announced) applyChanges();
      afterPoll();
    }
  }
}
