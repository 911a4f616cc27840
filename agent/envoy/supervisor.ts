/**
 * The Envoy supervisor: an explicit state machine that runs one Envoy process at a time.
 *
 *   idle ──start()──► running ──exit──► backoff ──timer──► running ...
 *                        │                 │
 *                        └──stop()──► stopping ──exit──► stopped        (done: { kind: 'stopped' })
 *   running ──exit, budget spent──► failed                              (done: { kind: 'failed', lastExit })
 *
 * Exit paths, and what the agent does with them (agent/commands/run.ts):
 * - stop() (SIGTERM, SIGINT, SIGQUIT after draining): /quitquitquit, then SIGTERM, then SIGKILL at the deadline;
 *   the agent exits 0.
 * - Envoy exits or is killed (any code or signal) with restarts left: restarted after 250 ms × 2^n (cap 5 s).
 * - Envoy exits with the budget (APPNET_ENVOY_RESTART_COUNT) spent: `failed`; the agent exits 5
 *   (AGENT_ERR_ENVOY_EXITED) naming how Envoy last ended.
 * - The agent itself dies: Envoy is spawned under `setpriv --pdeathsig SIGKILL` where setpriv exists, so the kernel
 *   kills Envoy even when the agent is SIGKILLed; on any orderly exit, killNow() runs from the process exit hook.
 * stop() and killNow() are idempotent.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger.ts';

export type SupervisorState = 'idle' | 'running' | 'backoff' | 'stopping' | 'stopped' | 'failed';

export interface ExitRecord {
  readonly pid: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly at: Date;
  /** Set when the process could not be spawned at all. */
  readonly error?: string;
}

export type SupervisorOutcome = { readonly kind: 'stopped' } | { readonly kind: 'failed'; readonly lastExit: ExitRecord };

export interface SupervisorOptions {
  readonly binary: string;
  /** Built before every start, so a restarted Envoy gets the current log level. */
  readonly args: () => string[];
  readonly restartBudget: number;
  readonly logger: Logger;
  /** Envoy's stdout and stderr: inherited, or a file descriptor (the rotated log file). */
  readonly output: 'inherit' | number;
  /** Envoy's environment: the agent's, handed in by run (main.ts reads it); unset, the child inherits the process's. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  /** Called after each spawn and each exit, for health and metrics. */
  readonly onSpawn?: (pid: number, restartCount: number) => void;
  readonly onExit?: (exit: ExitRecord) => void;
  /** Prefix that makes the kernel kill Envoy when the agent dies; null to disable. Default: setpriv if present. */
  readonly deathSignalWrapper?: readonly string[] | null;
  /** Starts the process; node:child_process's spawn unless a test gives a fake. */
  readonly spawn?: typeof spawn;
}

export function describeExit(exit: ExitRecord): string {
  if (exit.error !== undefined) return `could not be started (${exit.error})`;
  if (exit.signal !== null) return `was killed by ${exit.signal}`;
  return `exited with code ${exit.code}`;
}

const SETPRIV = '/usr/bin/setpriv';

export class EnvoySupervisor {
  #state: SupervisorState = 'idle';
  #child: ChildProcess | null = null;
  #restarts = 0;
  readonly #exits: ExitRecord[] = [];
  readonly #opts: SupervisorOptions;
  readonly #backoffAbort = new AbortController();
  readonly #done: Promise<SupervisorOutcome>;
  #settle!: (outcome: SupervisorOutcome) => void;
  #stopping: Promise<void> | null = null;
  #shuttingDown = false;
  readonly #wrapper: readonly string[];

  constructor(opts: SupervisorOptions) {
    this.#opts = opts;
    this.#wrapper = opts.deathSignalWrapper === undefined ? (existsSync(SETPRIV) ? [SETPRIV, '--pdeathsig', 'SIGKILL', '--'] : []) : (opts.deathSignalWrapper ?? []);
    this.#done = new Promise((resolve) => {
      this.#settle = resolve;
    });
  }

  get state(): SupervisorState {
    return this.#state;
  }
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }
  get restartCount(): number {
    return this.#restarts;
  }
  get exits(): readonly ExitRecord[] {
    return this.#exits;
  }
  /** Settles when the supervisor is finished: stopped on request, or failed with the budget spent. */
  get done(): Promise<SupervisorOutcome> {
    return this.#done;
  }

  /** The agent is shutting down: an Envoy exit from now on ends supervision instead of restarting. */
  beginShutdown(): void {
    this.#shuttingDown = true;
  }

  start(): void {
    if (this.#state !== 'idle') return;
    this.#spawn();
  }

  #spawn(): void {
    const args = this.#opts.args();
    const [command, ...prefix] = this.#wrapper.length > 0 ? this.#wrapper : [this.#opts.binary];
    const argv = this.#wrapper.length > 0 ? [...prefix, this.#opts.binary, ...args] : args;
    const stdio: StdioOptions = this.#opts.output === 'inherit' ? ['ignore', 'inherit', 'inherit'] : ['ignore', this.#opts.output, this.#opts.output];
    this.#opts.logger.info('starting Envoy', { argv: [this.#opts.binary, ...args], restartCount: this.#restarts });
    // detached: Envoy gets its own process group, so a signal sent to the agent's group (Ctrl-C in a terminal,
    // `timeout`, a process manager) reaches only the agent, which then drains before stopping Envoy.
    const child = (this.#opts.spawn ?? spawn)(command ?? this.#opts.binary, argv, { stdio, ...(this.#opts.env !== undefined ? { env: this.#opts.env } : {}), detached: true });
    this.#child = child;
    this.#state = 'running';
    let reported = false;
    const onGone = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
      if (reported) return;
      reported = true;
      const exit: ExitRecord = { pid: child.pid ?? -1, code, signal, at: new Date(), ...(error ? { error: error.message } : {}) };
      this.#onExit(child, exit);
    };
    child.once('error', (err) => onGone(null, null, err));
    child.once('exit', (code, signal) => onGone(code, signal));
    if (child.pid !== undefined) this.#opts.onSpawn?.(child.pid, this.#restarts);
  }

  #onExit(child: ChildProcess, exit: ExitRecord): void {
    if (this.#child === child) this.#child = null;
    this.#exits.push(exit);
    this.#opts.onExit?.(exit);
    if (this.#state === 'stopping' || this.#shuttingDown) {
      this.#state = 'stopped';
      this.#settle({ kind: 'stopped' });
      return;
    }
    if (this.#restarts >= this.#opts.restartBudget) {
      this.#opts.logger.error('Envoy exited and the restart budget is spent', { pid: exit.pid, exit: describeExit(exit), restarts: this.#restarts });
      this.#state = 'failed';
      this.#settle({ kind: 'failed', lastExit: exit });
      return;
    }
    const { baseMs, maxMs } = this.#opts.backoff ?? { baseMs: 250, maxMs: 5000 };
    const delayMs = Math.min(baseMs * 2 ** this.#restarts, maxMs);
    this.#restarts += 1;
    this.#state = 'backoff';
    this.#opts.logger.warn('Envoy exited; restarting', { pid: exit.pid, exit: describeExit(exit), restart: this.#restarts, of: this.#opts.restartBudget, delayMs });
    sleep(delayMs, undefined, { signal: this.#backoffAbort.signal }).then(
      () => {
        if (this.#state === 'backoff') this.#spawn();
      },
      () => undefined,
    );
  }

  /**
   * Stops Envoy: `quit` (Envoy's /quitquitquit) and up to quitWaitMs for it to exit, then SIGTERM and up to
   * termWaitMs, then SIGKILL. Idempotent: every caller gets the same promise.
   */
  stop(opts: { quit: () => Promise<void>; quitWaitMs: number; termWaitMs: number }): Promise<void> {
    this.#stopping ??= this.#stop(opts);
    return this.#stopping;
  }

  async #stop(opts: { quit: () => Promise<void>; quitWaitMs: number; termWaitMs: number }): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'failed') return;
    const wasRunning = this.#state === 'running';
    this.#state = 'stopping';
    this.#backoffAbort.abort();
    const child = this.#child;
    if (!wasRunning || child === null || child.exitCode !== null || child.signalCode !== null) {
      if (child === null) {
        this.#state = 'stopped';
        this.#settle({ kind: 'stopped' });
      }
      await this.#done;
      return;
    }
    const exited = once(child, 'exit').then(() => true);
    // The timer is cancelled once Envoy exits, so it never holds the agent's event loop open.
    const within = async (ms: number): Promise<boolean> => {
      const timer = new AbortController();
      try {
        return await Promise.race([exited, sleep(ms, false, { signal: timer.signal })]);
      } finally {
        timer.abort();
      }
    };
    await opts.quit().catch((err: unknown) => this.#opts.logger.warn('Envoy did not take /quitquitquit', { err }));
    if (!(await within(opts.quitWaitMs))) {
      this.#opts.logger.warn('Envoy still running after /quitquitquit; sending SIGTERM', { pid: child.pid });
      child.kill('SIGTERM');
      if (!(await within(opts.termWaitMs))) {
        this.#opts.logger.warn('Envoy still running after SIGTERM; sending SIGKILL', { pid: child.pid });
        child.kill('SIGKILL');
      }
    }
    await this.#done;
  }

  /** Synchronous last resort for process exit hooks: SIGKILL whatever Envoy is running. */
  killNow(): void {
    this.#backoffAbort.abort();
    const child = this.#child;
    if (child !== null && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}
