/**
 * The Cloud Map emulator: moto's server mode from the project's .venv, started on loopback, spoken to over the real
 * AWS protocol with the real SDK client. In CI a missing moto fails the test; locally it is skipped loudly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { CreateHttpNamespaceCommand, ServiceDiscoveryClient } from '@aws-sdk/client-servicediscovery';
import type { Cleanup } from './agent.ts';
import { findEnvoy, repoRoot } from './envoy.ts';
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

/**
 * The real Envoy and a moto with these namespaces, for an e2e suite's before(): either one missing fails the suite
 * (an e2e test without them would test nothing). Moto stops with the suite's cleanups.
 */
export async function startEnvoyAndMoto(ctx: Cleanup, namespaces: readonly string[]): Promise<{ envoy: string; moto: Moto }> {
  const envoy = findEnvoy();
  if (envoy === null) throw new Error('Envoy not found: run npm run setup');
  const moto = await startMoto(null);
  if (moto === null) throw new Error('moto not found: run npm run setup');
  ctx.after(() => moto.stop());
  for (const name of namespaces) await moto.createNamespace(name);
  return { envoy, moto };
}

/**
 * A small HTTP proxy in front of moto that can hang chosen Cloud Map operations (by the X-Amz-Target header), to
 * produce a Cloud Map that stops answering at a chosen step: the SIGTERM-during-start-up and the
 * hang-during-stop tests. A hung request is held open, never answered, until release() or close(). Moto itself
 * cannot hang one operation while answering the others; SIGSTOP of moto hangs everything.
 */
export interface CloudMapProxy {
  readonly url: string;
  readonly env: Record<string, string>;
  /** Requests seen so far, by operation. */
  readonly seen: Map<string, number>;
  /** Operations matching `pred` (the operation and how many of it came before) hang from now on. */
  hang(pred: (operation: string, before: number) => boolean): void;
  /** Operations matching `pred` are forwarded `ms` late from now on (a slow task's view of Cloud Map). */
  slow(pred: (operation: string) => boolean, ms: number): void;
  /** Resolves when a request for `operation` is being held. */
  held(operation: string): Promise<void>;
  release(): void;
  close(): Promise<void>;
}

export async function startCloudMapProxy(target: string): Promise<CloudMapProxy> {
  const seen = new Map<string, number>();
  let pred: (operation: string, before: number) => boolean = () => false;
  let slowPred: (operation: string) => boolean = () => false;
  let slowMs = 0;
  let holding: Array<{ operation: string; res: ServerResponse }> = [];
  let waiters: Array<{ operation: string; resolve: () => void }> = [];
  const server = createServer((req, res) => {
    const operation = String(req.headers['x-amz-target'] ?? '').split('.').pop() ?? '';
    const before = seen.get(operation) ?? 0;
    seen.set(operation, before + 1);
    if (pred(operation, before)) {
      req.resume();
      holding.push({ operation, res });
      for (const w of waiters.filter((x) => x.operation === operation)) w.resolve();
      waiters = waiters.filter((x) => x.operation !== operation);
      return;
    }
    const forward = () => {
      const upstream = request(`${target}${req.url ?? '/'}`, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    };
    if (slowPred(operation)) setTimeout(forward, slowMs);
    else forward();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const release = () => {
    for (const h of holding) h.res.destroy();
    holding = [];
  };
  return {
    url,
    env: { ...awsTestEnv, AWS_ENDPOINT_URL_SERVICEDISCOVERY: url },
    seen,
    hang: (p) => {
      pred = p;
    },
    slow: (p, ms) => {
      slowPred = p;
      slowMs = ms;
    },
    held: (operation) =>
      holding.some((h) => h.operation === operation)
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            waiters.push({ operation, resolve });
          }),
    release: () => {
      pred = () => false;
      release();
    },
    close: async () => {
      pred = () => false;
      release();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
