/**
 * `npm run build:binary`: /usr/bin/agent as one file, a Node single executable application: the Node 24 runtime
 * the project pins, with dist/agent.js (the bundle, templates inlined) injected. Runs where there is no Node.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dependencyPackages, dependencyScript, runDependencyScript } from '../agent/system/dependencies.ts';
import type * as YamlModule from 'yaml';
import { AGENT_V8_FLAGS } from './v8-flags.ts';

/** A small Envoy bootstrap in the shapes users write: what the YAML library's code cache is made by reading. */
const SAMPLE_BOOTSTRAP = `admin:
  address:
    pipe:
      path: /tmp/envoy-admin.sock
      mode: 384
stats_flush_interval: 1s
node: { id: "sample", cluster: 'sample' }
static_resources:
  listeners:
    - name: inbound_web
      traffic_direction: INBOUND
      address:
        socket_address:
          address: 127.0.0.1
          port_value: 15000
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: scin_http_web
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes: [{ match: { prefix: / }, route: { cluster: web, timeout: 15s } }]
                http_filters:
                  - name: envoy.filters.http.router
  clusters:
    - name: web # the app
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: web
        endpoints:
          - lb_endpoints:
              - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }
`;

/** What each dependency's code cache is made after (beyond loading it): the calls the agent makes at start-up. */
const TRAINING: { readonly [K in keyof typeof dependencyPackages]?: (exports: unknown) => void } = {
  yaml: (exports) => {
    const lib = exports as typeof YamlModule;
    lib.parse(SAMPLE_BOOTSTRAP);
    // Relay mode reads its template at start-up (relay/templates.ts).
    for (const file of readdirSync('bootstrap-templates')) if (file.endsWith('.yaml')) lib.parse(readFileSync(`bootstrap-templates/${file}`, 'utf8'));
  },
};

if (process.argv[2] === '--code-cache') {
  // A child of the build, run under the executable's V8 settings (a code cache made under other flags is rejected):
  // the dependency's code cache, made after the dependency was loaded and used as at start-up, so that it holds the
  // functions compiled by then (a cache made before running holds only the top-level code).
  const name = process.argv[3] as keyof typeof dependencyPackages;
  const script = dependencyScript(name, readFileSync(`dist/deps/${name}.js`, 'utf8'));
  TRAINING[name]?.(runDependencyScript(name, script, createRequire(import.meta.url)));
  writeFileSync(`dist/deps/${name}.cache`, script.createCachedData());
  process.exit(0);
}

execFileSync(process.execPath, ['scripts/build.ts'], { stdio: 'inherit' });
for (const name of Object.keys(dependencyPackages)) {
  execFileSync(process.execPath, [...AGENT_V8_FLAGS, 'scripts/build-binary.ts', '--code-cache', name], { stdio: 'inherit' });
}
// Hardening (docs/operations.md): `--disable-sigusr1` keeps Node's inspector closed whatever signal the agent is
// sent (Node then keeps SIGUSR1 blocked: it is ignored); execArgvExtension "none" ignores NODE_OPTIONS, so the
// environment cannot open an inspector (--inspect) or load code (--require) into the agent either.
// Memory: the V8 settings of scripts/v8-flags.ts.
const hardening = { execArgv: ['--disable-sigusr1', ...AGENT_V8_FLAGS], execArgvExtension: 'none' };
writeFileSync(
  'dist/sea-config.json',
  JSON.stringify({
    main: 'dist/agent.js',
    output: 'dist/agent.blob',
    disableExperimentalSEAWarning: true,
    useSnapshot: false,
    useCodeCache: true,
    // Memory (docs/benchmarks.md): the large dependencies as assets, loaded only by the agents that use them
    // (agent/system/dependencies.ts), each with its code cache (`<name>.cache`).
    assets: Object.fromEntries(readdirSync('dist/deps').map((f) => [f, `dist/deps/${f}`])),
    ...hardening,
  }),
);
// The code cache is made under the V8 settings the executable runs with: V8 rejects a cache made under other flags
// (a warning on every start, and the whole bundle compiled again: exec → first /status 200 went from 85 to 232 ms).
execFileSync(process.execPath, [...AGENT_V8_FLAGS, '--experimental-sea-config', 'dist/sea-config.json'], { stdio: ['ignore', 'ignore', 'inherit'] });
rmSync('dist/agent', { force: true });
copyFileSync(process.execPath, 'dist/agent');
chmodSync('dist/agent', 0o755);
// postject warns about ELF note sections it does not name; its output is shown only when it fails.
try {
  execFileSync(process.execPath, ['node_modules/postject/dist/cli.js', 'dist/agent', 'NODE_SEA_BLOB', 'dist/agent.blob', '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'], { stdio: 'pipe' });
} catch (err) {
  process.stderr.write(String((err as { stderr?: Buffer }).stderr ?? err));
  process.exit(1);
}
rmSync('dist/agent.blob', { force: true });
process.stdout.write(`dist/agent: ${(statSync('dist/agent').size / 1048576).toFixed(1)} MiB (Node ${process.version})\n`);
