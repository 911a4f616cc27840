/** One-shot runs of the Envoy binary: its version, and `--mode validate` on a bootstrap. */
import { execFile } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { AgentError } from '../errors.ts';

interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runEnvoy(binary: string, args: readonly string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = (err as NodeJS.ErrnoException | null)?.code;
      if (code === 'ENOENT' || code === 'EACCES') {
        reject(new AgentError('AGENT_ERR_ENVOY_NOT_FOUND', `ENVOY_BINARY="${binary}": cannot be run (${code}); set ENVOY_BINARY to Envoy's path`, { cause: err }));
        return;
      }
      resolve({ code: err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null, stdout, stderr });
    });
  });
}

/**
 * Whether ENVOY_BINARY names an executable file: checked at once, before anything is written or started, so that a
 * missing Envoy stops the agent (exit 3) without waiting for `envoy --version`, which runs beside Envoy's start.
 */
export function checkEnvoyBinary(binary: string): void {
  let problem: string | null = null;
  try {
    accessSync(binary, constants.X_OK);
    if (!statSync(binary).isFile()) problem = 'not a file';
  } catch (err) {
    problem = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
  if (problem !== null) throw new AgentError('AGENT_ERR_ENVOY_NOT_FOUND', `ENVOY_BINARY="${binary}": cannot be run (${problem}); set ENVOY_BINARY to Envoy's path`);
}

/** `envoy --version` → the version text after "version: ", e.g. `<sha>/1.40.0/Clean/RELEASE/BoringSSL`. */
export async function envoyVersion(binary: string): Promise<string> {
  const result = await runEnvoy(binary, ['--version'], 10_000);
  const match = /version:\s*(\S+)/.exec(result.stdout);
  if (result.code !== 0 || match === null) {
    throw new AgentError('AGENT_ERR_ENVOY_NOT_FOUND', `ENVOY_BINARY="${binary}": \`--version\` did not print a version (exit ${result.code})`);
  }
  return match[1] ?? '';
}

/** Runs `envoy --mode validate`; returns Envoy's verdict and, when it rejects, its own words. */
export async function validateBootstrap(binary: string, bootstrapPath: string): Promise<{ ok: boolean; output: string }> {
  const result = await runEnvoy(binary, ['--mode', 'validate', '-c', bootstrapPath, '-l', 'error', '--disable-hot-restart'], 60_000);
  return { ok: result.code === 0, output: `${result.stdout}${result.stderr}`.trim() };
}
