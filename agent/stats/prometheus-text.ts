/**
 * Prometheus text format 0.0.4: a parser for Envoy's /stats/prometheus output and a strict renderer.
 * Pure. Built for speed on large outputs (an Envoy with thousands of clusters prints hundreds of thousands of
 * lines): lines outside the kept prefix are skipped before any label is parsed.
 */

export type ScalarType = 'counter' | 'gauge' | 'untyped';

export interface Histogram {
  /** Upper bounds as printed (`0.5`, `+Inf`) and cumulative counts, in order. */
  readonly buckets: Array<[le: string, count: number]>;
  sum: number;
  count: number;
}

export type Family =
  | { readonly name: string; readonly type: ScalarType; readonly samples: Map<string, number> }
  | { readonly name: string; readonly type: 'histogram'; readonly samples: Map<string, Histogram> };

export interface ParseOptions {
  /** Keep only families whose name starts with this prefix. */
  readonly prefix?: string;
  /** Remove the prefix from kept family names (metrics_extension: `envoy_appmesh_RequestCount` → `RequestCount`). */
  readonly stripPrefix?: boolean;
}

export class PrometheusParseError extends Error {
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.name = 'PrometheusParseError';
  }
}

/** Parses `name="v",...` into pairs; values stay in their escaped text form. */
export function parseLabels(raw: string, line = 0): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  let i = 0;
  const n = raw.length;
  while (i < n) {
    while (i < n && (raw.charCodeAt(i) === 44 || raw.charCodeAt(i) === 32)) i++; // , and space
    if (i >= n) break;
    const eq = raw.indexOf('=', i);
    if (eq < 0 || raw.charCodeAt(eq + 1) !== 34) throw new PrometheusParseError(line, `malformed labels {${raw}}`);
    const name = raw.slice(i, eq).trim();
    let j = eq + 2;
    while (j < n && raw.charCodeAt(j) !== 34) j += raw.charCodeAt(j) === 92 ? 2 : 1; // skip escapes
    if (j >= n) throw new PrometheusParseError(line, `unterminated label value in {${raw}}`);
    pairs.push([name, raw.slice(eq + 2, j)]);
    i = j + 1;
  }
  return pairs;
}

function findLabelsEnd(line: string, open: number): number {
  let inQuotes = false;
  for (let i = open + 1; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (inQuotes) {
      if (c === 92) i++;
      else if (c === 34) inQuotes = false;
    } else if (c === 34) inQuotes = true;
    else if (c === 125) return i;
  }
  return -1;
}

function parseValue(text: string, lineNo: number): number {
  const t = text.trim();
  const space = t.indexOf(' ');
  const v = space < 0 ? t : t.slice(0, space); // an optional timestamp may follow
  if (v === '+Inf' || v === 'Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  if (v === 'NaN') return NaN;
  const num = Number(v);
  if (v === '' || Number.isNaN(num)) throw new PrometheusParseError(lineNo, `bad sample value ${JSON.stringify(v)}`);
  return num;
}

export function parsePrometheus(text: string, opts: ParseOptions = {}): Map<string, Family> {
  const prefix = opts.prefix ?? '';
  const families = new Map<string, Family>();
  let current: Family | null = null;
  let currentRawName = '';
  let lineNo = 0;
  let pos = 0;
  const len = text.length;
  while (pos < len) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = len;
    const line = text.slice(pos, end);
    pos = end + 1;
    lineNo++;
    if (line.length === 0) continue;
    if (line.charCodeAt(0) === 35) {
      // '#'
      if (line.startsWith('# TYPE ')) {
        const rest = line.slice(7);
        const sp = rest.indexOf(' ');
        const rawName = sp < 0 ? rest : rest.slice(0, sp);
        const type = (sp < 0 ? 'untyped' : rest.slice(sp + 1).trim().toLowerCase()) as Family['type'] | 'summary';
        if (!rawName.startsWith(prefix) || type === 'summary') {
          current = null;
          currentRawName = rawName;
          continue;
        }
        if (type !== 'counter' && type !== 'gauge' && type !== 'untyped' && type !== 'histogram') throw new PrometheusParseError(lineNo, `unknown type ${type}`);
        const name = opts.stripPrefix ? rawName.slice(prefix.length) : rawName;
        current = type === 'histogram' ? { name, type, samples: new Map<string, Histogram>() } : { name, type, samples: new Map<string, number>() };
        currentRawName = rawName;
        families.set(name, current);
      }
      continue;
    }
    if (!line.startsWith(prefix)) continue;
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    const nameEnd = brace >= 0 && (space < 0 || brace < space) ? brace : space;
    if (nameEnd < 0) throw new PrometheusParseError(lineNo, 'sample without a value');
    const sampleName = line.slice(0, nameEnd);
    let labels = '';
    let valueStart = nameEnd;
    if (nameEnd === brace) {
      const close = findLabelsEnd(line, brace);
      if (close < 0) throw new PrometheusParseError(lineNo, 'unterminated labels');
      labels = line.slice(brace + 1, close);
      valueStart = close + 1;
    }
    const value = parseValue(line.slice(valueStart), lineNo);
    if (current === null || !sampleName.startsWith(currentRawName)) {
      // A sample with no TYPE line: an untyped family of its own.
      const name = opts.stripPrefix ? sampleName.slice(prefix.length) : sampleName;
      let fam = families.get(name);
      if (fam === undefined) {
        fam = { name, type: 'untyped', samples: new Map<string, number>() };
        families.set(name, fam);
      }
      if (fam.type !== 'histogram') fam.samples.set(labels, value);
      continue;
    }
    if (current.type !== 'histogram') {
      current.samples.set(labels, value);
      continue;
    }
    const suffix = sampleName.slice(currentRawName.length);
    let key = labels;
    let le: string | null = null;
    if (suffix === '_bucket') {
      const pairs = parseLabels(labels, lineNo);
      const idx = pairs.findIndex(([k]) => k === 'le');
      if (idx < 0) throw new PrometheusParseError(lineNo, 'histogram bucket without le');
      le = pairs[idx]?.[1] ?? '';
      pairs.splice(idx, 1);
      key = pairs.map(([k, v]) => `${k}="${v}"`).join(',');
    }
    let h = current.samples.get(key);
    if (h === undefined) {
      h = { buckets: [], sum: 0, count: 0 };
      current.samples.set(key, h);
    }
    if (suffix === '_bucket' && le !== null) h.buckets.push([le, value]);
    else if (suffix === '_sum') h.sum = value;
    else if (suffix === '_count') h.count = value;
    else throw new PrometheusParseError(lineNo, `unexpected histogram sample ${sampleName}`);
  }
  return families;
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function sortedLabelPairs(raw: string): Array<[string, string]> {
  if (raw === '') return [];
  return parseLabels(raw).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function compareLabelValues(a: Array<[string, string]>, b: Array<[string, string]>): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i]?.[1] ?? '';
    const y = b[i]?.[1] ?? '';
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

function labelText(pairs: Array<[string, string]>, extra?: [string, string]): string {
  const all = extra ? [...pairs, extra] : pairs;
  return all.length === 0 ? '' : `{${all.map(([k, v]) => `${k}="${v}"`).join(',')}}`;
}

/**
 * Renders families in the metrics_extension output format: families sorted by name, each after a blank line with
 * its `# TYPE` line; label pairs sorted by name, series sorted by label values; histograms with every bucket
 * (+Inf added when missing), then _sum and _count. Every line ends in a newline; no trailing spaces.
 */
export function renderPrometheus(families: Iterable<Family>): string {
  const sorted = [...families].filter((f) => f.samples.size > 0).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const fam of sorted) {
    out.push(`\n# TYPE ${fam.name} ${fam.type}\n`);
    const series = [...fam.samples.keys()].map((raw) => ({ raw, pairs: sortedLabelPairs(raw) })).sort((a, b) => compareLabelValues(a.pairs, b.pairs));
    if (fam.type === 'histogram') {
      for (const { raw, pairs } of series) {
        const h = fam.samples.get(raw) as Histogram;
        let hasInf = false;
        for (const [le, count] of h.buckets) {
          if (le === '+Inf') hasInf = true;
          out.push(`${fam.name}_bucket${labelText(pairs, ['le', le])} ${formatValue(count)}\n`);
        }
        if (!hasInf) out.push(`${fam.name}_bucket${labelText(pairs, ['le', '+Inf'])} ${formatValue(h.count)}\n`);
        out.push(`${fam.name}_sum${labelText(pairs)} ${formatValue(h.sum)}\n`);
        out.push(`${fam.name}_count${labelText(pairs)} ${formatValue(h.count)}\n`);
      }
    } else {
      for (const { raw, pairs } of series) out.push(`${fam.name}${labelText(pairs)} ${formatValue(fam.samples.get(raw) as number)}\n`);
    }
  }
  return out.join('');
}
