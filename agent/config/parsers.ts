/**
 * Value parsers for environment variables. Each takes the trimmed raw string and either returns the typed value or
 * the rule the value broke. The rule text is what the user reads: `NAME="value": <rule>`.
 */
import { isIP } from 'node:net';

export type Parsed<T> = { ok: true; value: T } | { ok: false; rule: string };

export interface Parser<T> {
  /** Short type name for docs and --help. */
  readonly type: string;
  /** The rule, as one phrase: "an integer from 5 to 110". */
  readonly rule: string;
  parse(raw: string): Parsed<T>;
}

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });

export function integer(min: number, max: number): Parser<number> {
  const rule = `must be an integer from ${min} to ${max}`;
  return {
    type: 'integer',
    rule,
    parse(raw) {
      if (!/^[+-]?\d+$/.test(raw)) return { ok: false, rule };
      const n = Number(raw);
      if (!Number.isSafeInteger(n) || n < min || n > max) return { ok: false, rule };
      return ok(n);
    },
  };
}

export function decimal(min: number, max: number, opts: { exclusiveMin?: boolean } = {}): Parser<number> {
  const rule = `must be a number ${opts.exclusiveMin ? 'greater than' : 'from'} ${min}${opts.exclusiveMin ? ' and at most' : ' to'} ${max}`;
  return {
    type: 'number',
    rule,
    parse(raw) {
      if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) return { ok: false, rule };
      const n = Number(raw);
      if (!Number.isFinite(n) || n > max || (opts.exclusiveMin ? n <= min : n < min)) return { ok: false, rule };
      return ok(n);
    },
  };
}

/** Go's strconv.ParseBool set, which the reference agent accepts and ECS sends ("1", "true"). */
const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);
export const boolean: Parser<boolean> = {
  type: 'boolean',
  rule: 'must be a boolean: true, false, 1, 0, t, f (any case of true/false)',
  parse(raw) {
    if (TRUE.has(raw)) return ok(true);
    if (FALSE.has(raw)) return ok(false);
    return { ok: false, rule: boolean.rule };
  },
};

export function oneOf<const T extends string>(values: readonly T[], opts: { caseInsensitive?: boolean } = {}): Parser<T> {
  const rule = `must be one of ${values.join(', ')}${opts.caseInsensitive ? ' (any case)' : ''}`;
  return {
    type: 'enum',
    rule,
    parse(raw) {
      const v = opts.caseInsensitive ? raw.toLowerCase() : raw;
      const found = values.find((x) => x === v);
      return found === undefined ? { ok: false, rule } : ok(found);
    },
  };
}

export const text: Parser<string> = { type: 'string', rule: 'any text', parse: (raw) => ok(raw) };

export const absolutePath: Parser<string> = {
  type: 'path',
  rule: 'must be an absolute path',
  parse(raw) {
    return raw.startsWith('/') && !raw.includes('\0') ? ok(raw) : { ok: false, rule: absolutePath.rule };
  },
};

/** A host: an IP literal (IPv6 with or without brackets) or a DNS name. */
export const host: Parser<string> = {
  type: 'host',
  rule: 'must be an IP address or a DNS name',
  parse(raw) {
    const bare = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : raw;
    if (isIP(bare) !== 0) return ok(bare);
    if (/^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/.test(bare)) {
      return ok(bare);
    }
    return { ok: false, rule: host.rule };
  },
};

export const ipAddress: Parser<string> = {
  type: 'ip',
  rule: 'must be an IPv4 or IPv6 address',
  parse(raw) {
    const bare = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : raw;
    return isIP(bare) !== 0 ? ok(bare) : { ok: false, rule: ipAddress.rule };
  },
};

export const ipv4Address: Parser<string> = {
  type: 'ipv4',
  rule: 'must be an IPv4 address',
  parse: (raw) => (isIP(raw) === 4 ? ok(raw) : { ok: false, rule: ipv4Address.rule }),
};

/**
 * A Go-style duration (`5000ms`, `15s`, `1m30s`, `1h`), as the reference agent accepts for ENVOY_STATS_FLUSH_INTERVAL.
 * Returns milliseconds.
 */
export function duration(minMs: number, maxMs: number): Parser<number> {
  const rule = `must be a duration such as 500ms, 15s, 1m30s or 1h, from ${formatMs(minMs)} to ${formatMs(maxMs)}`;
  return {
    type: 'duration',
    rule,
    parse(raw) {
      if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(raw)) return { ok: false, rule };
      const unitMs: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
      let total = 0;
      for (const m of raw.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * (unitMs[m[2] ?? ''] ?? 0);
      if (total < minMs || total > maxMs) return { ok: false, rule };
      return ok(total);
    },
  };
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** A JSON object whose values all pass `value`. Used for APPNET_LISTENER_PORT_MAPPING and APPNET_CONTAINER_IP_MAPPING. */
export function jsonObjectOf<T>(valueName: string, value: (v: unknown) => v is T): Parser<Readonly<Record<string, T>>> {
  const rule = `must be a JSON object mapping names to ${valueName}`;
  return {
    type: 'json',
    rule,
    parse(raw) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch (err) {
        return { ok: false, rule: `${rule} (${(err as Error).message})` };
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { ok: false, rule };
      for (const [k, v] of Object.entries(parsed)) {
        if (!value(v)) return { ok: false, rule: `${rule}; "${k}" is ${JSON.stringify(v)}` };
      }
      return ok(parsed as Record<string, T>);
    },
  };
}

export const isPort = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;
export const isIpString = (v: unknown): v is string => typeof v === 'string' && isIP(v) !== 0;
