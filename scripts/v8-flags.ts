/**
 * The V8 settings the agent runs with: in the single executable's execArgv (scripts/build-binary.ts), and given by
 * bench/management.ts to the bundle it runs, so that benchmarks measure what ships. Each one measured with
 * bench/memory.ts (docs/benchmarks.md, "Memory"):
 * - `--max-semi-space-size=1`: V8 grows the young generation up to 32 MiB a semi-space under a burst of
 *   allocation (Cloud Map's start-up discovery: a call per service) and keeps it: 64 MiB of the 117 MiB private
 *   memory of an agent discovering 1,000 services were an empty young generation.
 *
 * Tried and left out: `--single-threaded` (V8's compiler and garbage collector work on the main thread). Their worker
 * threads each keep a C heap (malloc arena) grown by that burst, 16 MiB together at 1,000 services, and with it the
 * agent discovering 1,000 services held 36 MiB instead of 65 in one diagnostic run; but it made exec → Envoy spawned
 * 30 to 40 ms slower (bench/binary-start.ts, medians of 10, twice), and that target is 100 ms.
 */
export const AGENT_V8_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
