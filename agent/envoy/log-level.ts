/**
 * Envoy's log level at run time (/enableLogging). A temporary change reverts to the baseline after the reset
 * timeout; a permanent one becomes the baseline. The supervisor starts a restarted Envoy at the current level, so a
 * level in force survives an Envoy restart (the reference restarted Envoy at the start-up level).
 */
import type { EnvoyLogLevel } from '../config/index.ts';
import type { Logger } from '../logger.ts';

export class LogLevelController {
  #baseline: EnvoyLogLevel;
  #current: EnvoyLogLevel;
  #timer: NodeJS.Timeout | null = null;
  #revertsAtMs: number | null = null;
  readonly #apply: (level: EnvoyLogLevel) => Promise<void>;
  readonly #resetAfterMs: number;
  readonly #logger: Logger;

  constructor(opts: { initial: EnvoyLogLevel; resetAfterMs: number; apply: (level: EnvoyLogLevel) => Promise<void>; logger: Logger }) {
    this.#baseline = opts.initial;
    this.#current = opts.initial;
    this.#apply = opts.apply;
    this.#resetAfterMs = opts.resetAfterMs;
    this.#logger = opts.logger;
  }

  get current(): EnvoyLogLevel {
    return this.#current;
  }
  get baseline(): EnvoyLogLevel {
    return this.#baseline;
  }
  get revertsAtMs(): number | null {
    return this.#revertsAtMs;
  }

  async set(level: EnvoyLogLevel, permanent: boolean): Promise<{ from: EnvoyLogLevel; to: EnvoyLogLevel; revertsInMs: number | null }> {
    await this.#apply(level);
    const from = this.#current;
    this.#current = level;
    this.#clearTimer();
    if (permanent) {
      this.#baseline = level;
      return { from, to: level, revertsInMs: null };
    }
    if (level !== this.#baseline) {
      this.#revertsAtMs = Date.now() + this.#resetAfterMs;
      this.#timer = setTimeout(() => void this.#revert(), this.#resetAfterMs);
      this.#timer.unref();
      return { from, to: level, revertsInMs: this.#resetAfterMs };
    }
    return { from, to: level, revertsInMs: null };
  }

  async #revert(): Promise<void> {
    this.#timer = null;
    this.#revertsAtMs = null;
    const level = this.#baseline;
    try {
      await this.#apply(level);
      this.#logger.info('Envoy log level reverted', { level });
    } catch (err) {
      this.#logger.warn('reverting the Envoy log level failed; a restarted Envoy starts at the baseline', { level, err });
    }
    this.#current = level;
  }

  #clearTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#revertsAtMs = null;
  }

  close(): void {
    this.#clearTimer();
  }
}
