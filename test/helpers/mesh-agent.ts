/** An agent with the real Envoy and a static bootstrap: an app, an inbound listener for `web` and an outbound one. */
import type { TestContext } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
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

export interface MeshOptions {
  /**
   * Each request on its own upstream connection (the `web` clusters' max_requests_per_connection: 1), for tests
   * that hang Envoy about as long as the app keeps an idle connection open (Node 24: 6 s). Otherwise Envoy, running again,
   * may send a queued request on a pooled connection the app is closing at that moment: the app never sees it and
   * Envoy answers 503 (reset before headers), the keep-alive race of any pooled proxy without retries.
   */
  readonly freshUpstreamConnections?: boolean;
}

export async function startMeshAgent(t: TestContext, env: Record<string, string> = {}, opts: MeshOptions = {}): Promise<MeshAgent | null> {
  const envoy = requireEnvoy(t);
  if (envoy === null) return null;
  const dir = tempDir(t);
  const app = await startApp('container 1');
  t.after(() => app.close());
  const mesh = writeStaticMesh(dir, { app: app.port, inbound: await freePort(), outbound: await freePort() });
  if (opts.freshUpstreamConnections === true) oneRequestPerConnection(mesh.path);
  const agent = startAgent(t, { dir, env: { ENVOY_BINARY: envoy, ENVOY_CONFIG_FILE: mesh.path, ...env } });
  return { agent, app, mesh, envoy };
}

function oneRequestPerConnection(bootstrapPath: string): void {
  const bootstrap = parse(readFileSync(bootstrapPath, 'utf8')) as { static_resources: { clusters: Array<Record<string, unknown>> } };
  for (const cluster of bootstrap.static_resources.clusters) {
    cluster['typed_extension_protocol_options'] = {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http_protocol_options: {} },
        common_http_protocol_options: { max_requests_per_connection: 1 },
      },
    };
  }
  writeFileSync(bootstrapPath, stringify(bootstrap));
}
