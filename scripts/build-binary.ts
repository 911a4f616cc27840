/**
 * `npm run build:binary`: /usr/bin/agent as one file, a Node single executable application: the Node 24 runtime
 * the project pins, with dist/agent.js (the bundle, templates inlined) injected. Runs where there is no Node.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { AGENT_V8_FLAGS } from './v8-flags.ts';

execFileSync(process.execPath, ['scripts/build.ts'], { stdio: 'inherit' });
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
    // (agent/system/dependencies.ts).
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
