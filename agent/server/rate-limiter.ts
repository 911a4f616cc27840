/** A token bucket: `ratePerSecond` tokens a second, at most `burst` saved. The clock is injectable. */
export class TokenBucket {
  #tokens: number;
  #lastMs: number;
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;

  constructor(ratePerSecond: number, burst: number, now: () => number = () => performance.now()) {
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#tokens = burst;
    this.#now = now;
    this.#lastMs = now();
  }

  take(): boolean {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#lastMs) / 1000) * this.#rate);
    this.#lastMs = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
