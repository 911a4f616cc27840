/**
 * The Cloud Map emulator: moto's server mode from the project's .venv, started on loopback, spoken to over the real
 * AWS protocol with the real SDK client. In CI a missing moto fails the test; locally it is skipped loudly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { CreateHttpNamespaceCommand, ServiceDiscoveryClient } from '@aws-sdk/client-servicediscovery';
import { repoRoot } from './envoy.ts';
import { freePort } from './apps.ts';
import { waitFor } from './wait.ts';

export interface Moto {
  readonly url: string;
  readonly process: ChildProcess;
  readonly env: Record<string, string>;
  readonly client: ServiceDiscoveryClient;
  createNamespace(name: string): Promise<void>;
  stop(): Promise<void>;
}

export const awsTestEnv = { AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' };

export async function startMoto(t: TestContext | null): Promise<Moto | null> {
  const binary = `${repoRoot}/.venv/bin/moto_server`;
  if (!existsSync(binary)) {
    const message = 'moto_server not found: run `npm run setup`. This test needs the Cloud Map emulator.';
    if (process.env['CI'] || t === null) throw new Error(message);
    process.stderr.write(`\n!!! SKIPPED: ${message}\n`);
    t.skip(message);
    return null;
  }
  const port = await freePort();
  const child = spawn(binary, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  const env = { ...awsTestEnv, AWS_ENDPOINT_URL_SERVICEDISCOVERY: url };
  const client = new ServiceDiscoveryClient({ region: awsTestEnv.AWS_REGION, endpoint: url, disableHostPrefix: true, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    client.destroy();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  t?.after(stop);
  await waitFor('moto to answer', async () => (await fetch(`${url}/moto-api/`).catch(() => null))?.ok === true, { timeoutMs: 30_000 });
  return {
    url,
    process: child,
    env,
    client,
    createNamespace: async (name) => {
      await client.send(new CreateHttpNamespaceCommand({ Name: name }));
    },
    stop,
  };
}
