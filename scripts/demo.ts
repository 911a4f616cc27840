/**
 * `npm run demo`: renders the bootstrap the ECS agent's environment produces for a Service Connect sidecar, and has
 * the real Envoy 1.40 validate it. (The local mesh demo, with Cloud Map and traffic, replaces this once Cloud Map
 * mode lands.)
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const envoy = readFileSync('.venv/envoy-binary', 'utf8').trim();
const env = {
  PATH: process.env['PATH'] ?? '',
  ENVOY_BINARY: envoy,
  APPMESH_XDS_ENDPOINT: 'unix:///var/run/ecs/relay/envoy_xds.sock',
  APPMESH_RESOURCE_ARN: 'arn:aws:ecs:us-west-2:123456789012:task-set/demo/web/ecs-svc/1',
  APPMESH_METRIC_EXTENSION_VERSION: '1',
  APPNET_AGENT_ADMIN_MODE: 'uds',
  APPNET_LISTENER_PORT_MAPPING: '{"egress":38221,"ingress-http":42106}',
  AWS_REGION: 'us-west-2',
  AWS_EXECUTION_ENV: 'AWS_ECS_EC2',
  APPNET_RUNTIME_DIR: '/tmp/agent-demo',
};
process.stdout.write('$ agent render --validate   # with the environment the ECS agent gives a sidecar\n');
const r = spawnSync(process.execPath, ['agent/main.ts', 'render', '--validate'], { env, stdio: 'inherit' });
process.exit(r.status ?? 1);
