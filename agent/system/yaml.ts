/**
 * The YAML library, loaded on first use. Most agents never read YAML (ECS-managed mode writes its bootstrap as JSON,
 * which is YAML too), and not loading it keeps the idle agent's memory down. It is not in the main bundle at all
 * (agent/system/dependencies.ts).
 */
import type * as YamlModule from 'yaml';
import { dependency } from './dependencies.ts';

export function yaml(): typeof YamlModule {
  return dependency('yaml');
}
