/**
 * The agent's two large dependencies, the AWS SDK's Cloud Map client (Cloud Map mode only) and the YAML library
 * (YAML input only), live outside the agent's main bundle and are loaded on first use. V8 keeps a script's whole
 * source text in the heap: when they were inside the bundle, every agent carried their 1.1 MiB of text in every
 * mode, used or not.
 *
 * Where they come from:
 * - the single executable: assets inside it (scripts/build-binary.ts), compiled on first use from a V8 code cache
 *   made at build time (an asset beside each, `<name>.cache`): the YAML library read a small bootstrap in 25 to 30 ms
 *   when compiled from its source at start-up, most of it compiling the functions a parse calls;
 * - the bundle run by Node (dist/agent.js): the files scripts/build.ts writes beside it (dist/deps/);
 * - the sources (tests): node_modules.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';
import type * as YamlModule from 'yaml';
import type * as CloudMapSdk from '@aws-sdk/client-servicediscovery';

/** Defined as true by scripts/build.ts in the bundle. */
declare const __AGENT_BUNDLED_DEPENDENCIES__: boolean | undefined;

interface Dependencies {
  readonly yaml: typeof YamlModule;
  readonly 'cloud-map-sdk': typeof CloudMapSdk;
}
/** The package each dependency bundle is built from. */
export const dependencyPackages: Readonly<Record<keyof Dependencies, string>> = { yaml: 'yaml', 'cloud-map-sdk': '@aws-sdk/client-servicediscovery' };

const loaded = new Map<string, unknown>();

/**
 * A dependency bundle as a script: its source in a CommonJS wrapper. The build makes the code cache of exactly this
 * script (scripts/build-binary.ts), so the executable and the build must wrap it the same way.
 */
export function dependencyScript(name: string, source: string, cachedData?: Buffer): Script {
  return new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: `agent:${name}.js`, ...(cachedData === undefined ? {} : { cachedData }) });
}

/** Runs a dependency script (its module's code); the dependency bundles require only Node's builtins. */
export function runDependencyScript(name: string, script: Script, req: NodeJS.Require): unknown {
  const module = { exports: {} as unknown };
  (script.runInThisContext() as (...args: unknown[]) => void)(module.exports, req, module, `agent:${name}.js`, '/');
  return module.exports;
}

function fromSea(name: string): unknown {
  // node:sea exists only in Node's own builtins; required here, not imported, so sources and tests need nothing.
  const sea = require('node:sea') as { isSea(): boolean; getAsset(key: string, encoding: string): string; getRawAsset(key: string): ArrayBuffer };
  if (!sea.isSea()) return undefined;
  const source = sea.getAsset(`${name}.js`, 'utf8');
  // Read in place (getRawAsset: no copy). A cache V8 rejects (made under other V8 flags) costs only the compile.
  let cache: Buffer | undefined;
  try {
    cache = Buffer.from(sea.getRawAsset(`${name}.cache`));
  } catch {
    cache = undefined;
  }
  return runDependencyScript(name, dependencyScript(name, source, cache), require);
}

export function dependency<K extends keyof Dependencies>(name: K): Dependencies[K] {
  let mod = loaded.get(name);
  if (mod === undefined) {
    if (typeof __AGENT_BUNDLED_DEPENDENCIES__ !== 'undefined') {
      mod = fromSea(name) ?? require(join(__dirname, 'deps', `${name}.js`));
    } else {
      mod = createRequire(import.meta.url)(dependencyPackages[name]);
    }
    loaded.set(name, mod);
  }
  return mod as Dependencies[K];
}
