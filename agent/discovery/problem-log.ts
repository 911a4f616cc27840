/**
 * The records the agent skipped, by scope (a service's instances, the service list, the names): each distinct
 * problem is logged once, with the service, the instance, the attribute, the value and the rule, and counted once;
 * the same problem seen on the next poll is not logged again. A problem that goes away and comes back is new again.
 */
import type { Logger } from '../logger.ts';
import { problemKey, type RecordProblem } from './snapshot.ts';

export class ProblemLog {
  readonly #byScope = new Map<string, Map<string, RecordProblem>>();
  readonly #logger: Logger;
  readonly #onNew: (p: RecordProblem) => void;

  constructor(opts: { logger: Logger; onNew?: (p: RecordProblem) => void }) {
    this.#logger = opts.logger;
    this.#onNew = opts.onNew ?? (() => undefined);
  }

  /** The problems a scope has now; new ones are logged and counted. */
  set(scope: string, problems: readonly RecordProblem[]): void {
    const before = this.#byScope.get(scope) ?? new Map<string, RecordProblem>();
    const now = new Map<string, RecordProblem>();
    for (const p of problems) {
      const key = problemKey(p);
      now.set(key, p);
      if (!before.has(key)) {
        this.#logger.warn('skipping a Cloud Map record that breaks a rule', { service: p.service, instance: p.instance, attribute: p.attribute, value: p.value, rule: p.rule });
        this.#onNew(p);
      }
    }
    if (now.size === 0) this.#byScope.delete(scope);
    else this.#byScope.set(scope, now);
  }

  clear(scope: string): void {
    this.#byScope.delete(scope);
  }

  /** How many records are skipped now. */
  get size(): number {
    let n = 0;
    for (const m of this.#byScope.values()) n += m.size;
    return n;
  }
}
