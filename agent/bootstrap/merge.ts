/**
 * Merges the user's custom files (ENVOY_TRACING_CFG_FILE, ENVOY_STATS_CONFIG_FILE, ENVOY_STATS_SINKS_CFG_FILE,
 * ENVOY_RESOURCES_CONFIG_FILE, in that order) into a rendered bootstrap.
 *
 * Keys are normalised to snake_case (Envoy accepts both; one spelling lets the merge see collisions). Lists of named
 * items (runtime layers) merge item by item by name. Lists of
 * static listeners, clusters and secrets, and stats_sinks, are concatenated; everything else merges as a tree. A
 * conflict is a setting that the agent or an earlier file already gave a different value: it is reported by its
 * path and both origins, never silently replaced or dropped (the reference replaced whole sections with a warning,
 * and dropped unknown static_resources keys).
 */
import { type CustomFile, problem } from '../config/index.ts';

/** Maps whose keys are data (runtime keys, metadata), not proto field names: never renamed. */
const OPAQUE_KEYS = new Set(['static_layer', 'metadata', 'filter_metadata', 'typed_filter_metadata', 'fields', 'typed_extension_protocol_options', 'typed_per_filter_config']);
/** Maps that are protobuf oneofs: only one key may be set. */
const ONEOF_KEYS = new Set(['address']);
const CONCATENATED = new Set(['static_resources.listeners', 'static_resources.clusters', 'static_resources.secrets', 'stats_sinks', 'stats_config.stats_tags']);

export function snakeCase(key: string): string {
  if (key.startsWith('@') || key.includes('.') || !/^[a-z][a-zA-Z0-9]*$/.test(key)) return key;
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

export function normaliseKeys(node: unknown, origin: string, path: string, problems: string[]): unknown {
  if (Array.isArray(node)) return node.map((v, i) => normaliseKeys(v, origin, `${path}[${i}]`, problems));
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    const name = snakeCase(key);
    const childPath = path === '' ? name : `${path}.${name}`;
    if (name in out) {
      problems.push(`${origin}: sets ${childPath} twice, once as ${key}; use one spelling`);
      continue;
    }
    out[name] = OPAQUE_KEYS.has(name) ? value : normaliseKeys(value, origin, childPath, problems);
  }
  return out;
}

export function mergeCustomFiles(bootstrap: Record<string, unknown>, files: readonly CustomFile[]): { merged: Record<string, unknown>; problems: string[] } {
  const problems: string[] = [];
  const merged = structuredClone(bootstrap);
  /** Which file set each path, for conflict messages; unset paths came from the agent. */
  const origins = new Map<string, string>();
  for (const file of files) {
    const origin = problem(file.variable, file.path, '').replace(/: $/, '');
    const doc = normaliseKeys(file.document, origin, '', problems) as Record<string, unknown>;
    mergeInto(merged, doc, '', origin, origins, problems);
  }
  return { merged, problems };
}

function mergeInto(dst: Record<string, unknown>, src: Record<string, unknown>, path: string, origin: string, origins: Map<string, string>, problems: string[]): void {
  for (const [key, value] of Object.entries(src)) {
    const childPath = path === '' ? key : `${path}.${key}`;
    const existing = dst[key];
    if (existing === undefined) {
      dst[key] = structuredClone(value);
      origins.set(childPath, origin);
      continue;
    }
    if (CONCATENATED.has(childPath) && Array.isArray(existing) && Array.isArray(value)) {
      const names = new Set(existing.map((e) => (e as Record<string, unknown>)?.['name']).filter((n) => typeof n === 'string'));
      for (const item of value) {
        const name = (item as Record<string, unknown>)?.['name'];
        if (typeof name === 'string' && names.has(name)) {
          problems.push(`${origin}: adds ${childPath}[name=${name}], which ${origins.get(`${childPath}[name=${name}]`) ?? 'the agent'} already defines`);
          continue;
        }
        if (typeof name === 'string') {
          names.add(name);
          origins.set(`${childPath}[name=${name}]`, origin);
        }
        existing.push(structuredClone(item));
      }
      continue;
    }
    if (isNamedList(existing) && isNamedList(value)) {
      // Lists of named items (runtime layers, filters): items merge by name; new names are appended.
      for (const item of value) {
        const name = item['name'] as string;
        const match = existing.find((e) => e['name'] === name);
        if (match === undefined) existing.push(structuredClone(item));
        else mergeInto(match, item, `${childPath}[name=${name}]`, origin, origins, problems);
      }
      continue;
    }
    if (ONEOF_KEYS.has(key) && isMap(existing) && isMap(value)) {
      // An address is a protobuf oneof (pipe, socket_address, ...): a different branch replaces, never adds.
      const mine = Object.keys(existing);
      const theirs = Object.keys(value).filter((k) => !mine.includes(k));
      if (theirs.length > 0) {
        problems.push(`${origin}: sets ${childPath}.${theirs[0]}, which ${ownerOf(childPath, origins)} already sets as ${childPath}.${mine[0]}`);
        continue;
      }
    }
    if (isMap(existing) && isMap(value) && !OPAQUE_KEYS.has(key)) {
      mergeInto(existing, value, childPath, origin, origins, problems);
      continue;
    }
    if (isMap(existing) && isMap(value)) {
      // Opaque maps (runtime layers, metadata) merge key by key, one level.
      for (const [k, v] of Object.entries(value)) {
        if (k in existing && JSON.stringify(existing[k]) !== JSON.stringify(v)) {
          problems.push(`${origin}: sets ${childPath}.${k}, which ${origins.get(`${childPath}.${k}`) ?? 'the agent'} already sets to ${JSON.stringify(existing[k])}`);
        } else {
          existing[k] = structuredClone(v);
          origins.set(`${childPath}.${k}`, origin);
        }
      }
      continue;
    }
    if (JSON.stringify(existing) === JSON.stringify(value)) continue;
    problems.push(`${origin}: sets ${childPath}, which ${ownerOf(childPath, origins)} already sets${isMap(existing) || Array.isArray(existing) ? '' : ` to ${JSON.stringify(existing)}`}`);
  }
}

function ownerOf(path: string, origins: Map<string, string>): string {
  for (let p = path; p !== ''; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    const o = origins.get(p);
    if (o !== undefined) return o;
  }
  return 'the agent';
}

function isNamedList(v: unknown): v is Array<Record<string, unknown>> {
  return Array.isArray(v) && v.length > 0 && v.every((i) => isMap(i) && typeof i['name'] === 'string');
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
