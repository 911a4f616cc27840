/**
 * Relay mode's bootstrap template: a data file in bootstrap-templates/. The bundle inlines them (scripts/build.ts defines
 * __AGENT_TEMPLATES__), so the single binary needs no files beside it; from sources they are read from disk.
 */
import { readFileSync } from 'node:fs';
import { yaml } from '../agent/system/index.ts';

declare const __AGENT_TEMPLATES__: Readonly<Record<string, string>> | undefined;

export const templateNames = ['relay'] as const;
export type TemplateName = (typeof templateNames)[number];

export function templateText(name: TemplateName): string {
  if (typeof __AGENT_TEMPLATES__ !== 'undefined') {
    const inlined = __AGENT_TEMPLATES__[name];
    if (inlined !== undefined) return inlined;
  }
  return readFileSync(new URL(`../bootstrap-templates/${name}.yaml`, import.meta.url), 'utf8');
}

/** Placeholder names a template declares in its header comment (`#   ${NAME} ...`). */
export function declaredPlaceholders(text: string): string[] {
  return [...text.matchAll(/^#\s+\$\{([A-Z0-9_]+)\}/gm)].map((m) => m[1] ?? '');
}

const PLACEHOLDER = /\$\{([A-Z0-9_]+)\}/g;

/**
 * Fills a template: parses the YAML first, then replaces placeholders in the object. A scalar that is exactly one
 * placeholder takes the value with its type (a number, a boolean, an object); a placeholder inside a longer string
 * is replaced by the value's text. Every declared placeholder must be given a value and used; no unknown ones.
 */
export function fillTemplate(name: TemplateName, values: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const text = templateText(name);
  const declared = new Set(declaredPlaceholders(text));
  const used = new Set<string>();
  for (const key of declared) {
    if (!(key in values)) throw new Error(`template ${name}: no value for placeholder \${${key}}`);
  }
  for (const key of Object.keys(values)) {
    if (!declared.has(key)) throw new Error(`template ${name}: value given for undeclared placeholder \${${key}}`);
  }
  const substitute = (node: unknown): unknown => {
    if (typeof node === 'string') {
      const whole = /^\$\{([A-Z0-9_]+)\}$/.exec(node);
      if (whole !== null) {
        const key = whole[1] ?? '';
        if (!declared.has(key)) throw new Error(`template ${name}: placeholder \${${key}} is not declared in its header`);
        used.add(key);
        return values[key];
      }
      return node.replace(PLACEHOLDER, (_m, key: string) => {
        if (!declared.has(key)) throw new Error(`template ${name}: placeholder \${${key}} is not declared in its header`);
        used.add(key);
        return String(values[key]);
      });
    }
    if (Array.isArray(node)) return node.map(substitute);
    if (node !== null && typeof node === 'object') {
      return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, substitute(v)]));
    }
    return node;
  };
  const filled = substitute(yaml().parse(text)) as Record<string, unknown>;
  for (const key of declared) {
    if (!used.has(key)) throw new Error(`template ${name}: placeholder \${${key}} is declared but not used`);
  }
  return filled;
}
