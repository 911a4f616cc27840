/**
 * The YAML library, loaded on first use. Most agents never read YAML (ECS-managed mode writes its bootstrap as JSON,
 * which is YAML too), and not loading it keeps the idle agent's memory down. In the bundle, esbuild turns the
 * literal require('yaml') into a lazily evaluated module; run from sources (tests), createRequire finds it.
 */
import { createRequire } from 'node:module';
import type * as YamlModule from 'yaml';

let loaded: typeof YamlModule | undefined;

export function yaml(): typeof YamlModule {
  loaded ??= (typeof require === 'function' ? require('yaml') : createRequire(import.meta.url)('yaml')) as typeof YamlModule;
  return loaded;
}
