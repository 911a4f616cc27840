/** An agent with the real Envoy and a static bootstrap: an app, an inbound listener for `web` and an outbound one. */
import type { TestContext } from 'node:test';
import { requireEnvoy } from './envoy.ts';
import { startAgent, tempDir, type AgentProcess } from './agent.ts';
import { freePort, startApp, type App } from './apps.ts';
import { writeStaticMesh, type StaticMesh } from './static-envoy.ts';

export interface MeshAgent {
  readonly agent: AgentProcess;
  readonly app: App;
  readonly mesh: StaticMesh;
  readonly envoy: string;
}

export async function startMeshAgent(t: TestContext, env: Record<string, string> = {}): Promise<MeshAgent | null> {
  const envoy = requireEnvoy(t);
  if (envoy === null) return null;
  const dir = tempDir(t);
  const app = await startApp('container 1');
  t.after(() => app.close());
  const mesh = writeStaticMesh(dir, { app: app.port, inbound: await freePort(), outbound: await freePort() });
  const agent = startAgent(t, { dir, env: { ENVOY_BINARY: envoy, ENVOY_CONFIG_FILE: mesh.path, ...env } });
  return { agent, app, mesh, envoy };
}

