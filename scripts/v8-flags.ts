/**
 * The V8 settings the agent runs with: in the single executable's execArgv (scripts/build-binary.ts), and given by
 * bench/management.ts to the bundle it runs, so that benchmarks measure what ships. Each one measured with
 * bench/memory.ts (docs/benchmarks.md, "Memory"):
 * - `--max-semi-space-size=1`: V8 grows the young generation up to 32 MiB a semi-space under a burst of
 *   allocation (Cloud Map's start-up discovery: a call per service) and keeps it: 64 MiB of the 117 MiB private
 *   memory of an agent discovering 1,000 services were an empty young generation.
 * - `--no-concurrent-recompilation`: V8 optimizes hot functions (Maglev, Turbofan) on the main thread instead of on
 *   its worker threads. Each worker thread has its own C heap (malloc arena), which the compilers' scratch memory
 *   grew and which glibc does not give back: 11 to 13 MiB at 1,000 Cloud Map services (V8's peak_malloced_memory
 *   11.8 MiB, and 1.9 with the flag), about 3 MiB over 50 rounds of a 1,000-cluster Envoy's stats. Exec → Envoy
 *   spawned and the stats latency stayed within the noise, back to back (the agent optimizes little at start).
 *
 * Tried and left out: `--single-threaded` (the garbage collector on the main thread as well): no less memory than
 * `--no-concurrent-recompilation` alone, and exec → Envoy spawned 30 to 40 ms slower (bench/binary-start.ts, medians of
 * 10, twice). `--single-threaded-gc`: no gain.
 */
export const AGENT_V8_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--no-concurrent-recompilation'];
