/**
 * The V8 settings the agent runs with: in the single executable's execArgv (scripts/build-binary.ts), and given by
 * bench/management.ts to the bundle it runs, so that benchmarks measure what ships. Each one measured with
 * bench/memory.ts (docs/benchmarks.md, "Memory"):
 * - `--max-semi-space-size=1`: V8 grows the young generation up to 32 MiB a semi-space under a burst of
 *   allocation (Cloud Map's start-up discovery: a call per service) and keeps it: 64 MiB of the 117 MiB private
 *   memory of an agent discovering 1,000 services were an empty young generation.
 * - `--single-threaded`: V8's compiler and garbage collector threads each left their own C heap (malloc arena)
 *   grown after that burst, 16 MiB together; on the main thread the same work reuses one heap.
 */
export const AGENT_V8_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--single-threaded'];
