/**
 * Prometheus text format 0.0.4: a parser for Envoy's /stats/prometheus output and a strict renderer.
 * Pure. Built for speed on large outputs (an Envoy with thousands of clusters prints hundreds of thousands of
 * lines): lines outside the kept prefix are skipped before any label is parsed.
 */

export type ScalarType = 'counter' | 'gauge' | 'untyped';

export interface HistogramSample {
  /** Upper bounds as printed (`0.5`, `+Inf`), in order; the array is shared by the series of a family. */
  readonly les: readonly string[];
  /** Cumulative counts, one per bound. */
  readonly counts: number[];
  sum: number;
  count: number;
}

/**
 * `canonical`: every key is `name="value",...` with names sorted and the same names at each position across the
 * family, as the agent builds the Service Connect metrics; the renderer then uses keys as they are.
 */
export type Family =
  | { readonly name: string; readonly type: ScalarType; readonly samples: Map<string, number>; readonly canonical?: boolean }
  | { readonly name: string; readonly type: 'histogram'; readonly samples: Map<string, HistogramSample>; readonly canonical?: boolean };

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

/** A label value escaped for the text format: backslash, double quote and newline. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
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

/**
 * `text.startsWith(needle, at)`, as a loop: on a string of megabytes V8 runs startsWith with a position through a
 * slow path, and this is the parser's innermost test.
 */
function matchesAt(text: string, needle: string, at: number): boolean {
  const n = needle.length;
  for (let i = 0; i < n; i++) if (text.charCodeAt(at + i) !== needle.charCodeAt(i)) return false;
  return true;
}

/** Reads a sample value between offsets: integers directly from the text, anything else through Number. */
function readValue(text: string, from: number, to: number, lineNo: number): number {
  let i = from;
  while (i < to && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 9)) i++;
  // Integers (nearly every Envoy value) are read in place, stopping at the line end or a timestamp.
  let n = 0;
  let j = i;
  for (; j < to && j - i < 16; j++) {
    const c = text.charCodeAt(j) - 48;
    if (c < 0 || c > 9) break;
    n = n * 10 + c;
  }
  if (j > i && (j === to || text.charCodeAt(j) === 32)) return n;
  let stop = text.indexOf(' ', i);
  if (stop < 0 || stop > to) stop = to;
  const v = text.slice(i, stop); // an optional timestamp may follow the value
  if (v === '+Inf' || v === 'Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  if (v === 'NaN') return NaN;
  const num = Number(v);
  if (v === '' || Number.isNaN(num)) throw new PrometheusParseError(lineNo, `bad sample value ${JSON.stringify(v)}`);
  return num;
}

/**
 * Envoy's text, parsed as it arrives: write() takes chunks as they come off the socket (a line may be split across
 * two), end() parses what is left and returns the families. The whole answer is never held as one string: only the
 * chunk being read and the samples kept. Lines are numbered across chunks for errors.
 */
export class PrometheusParser {
  readonly #prefix: string;
  readonly #strip: boolean;
  readonly #families = new Map<string, Family>();
  #current: Family | null = null;
  #currentRawName = '';
  /** The bounds of the last finished series of the current histogram family, shared when the next one matches. */
  #sharedLes: string[] | null = null;
  #lastKey: string | null = null;
  #lastHistogram: { les: string[]; counts: number[]; sum: number; count: number } | undefined;
  #lineNo = 0;
  /** The start of a line whose end has not arrived yet. */
  #carry = '';

  constructor(opts: ParseOptions = {}) {
    this.#prefix = opts.prefix ?? '';
    this.#strip = opts.stripPrefix === true;
  }

  write(chunk: string): void {
    const text = this.#carry === '' ? chunk : this.#carry + chunk;
    const last = text.lastIndexOf('\n');
    if (last < 0) {
      this.#carry = text;
      return;
    }
    this.#parse(text, last + 1);
    this.#carry = text.slice(last + 1);
  }

  end(): Map<string, Family> {
    if (this.#carry !== '') this.#parse(this.#carry, this.#carry.length);
    this.#carry = '';
    return this.#families;
  }

  /** Parses the lines of text[0, len); a line without its newline ends at len. */
  #parse(text: string, len: number): void {
    const prefix = this.#prefix;
    const families = this.#families;
    const opts = { stripPrefix: this.#strip };
    // The state lives in locals while a chunk is parsed (the loop is the hot path), and is stored back after.
    let current = this.#current;
    let currentRawName = this.#currentRawName;
    let sharedLes = this.#sharedLes;
    let lastKey = this.#lastKey;
    let lastHistogram = this.#lastHistogram;
    let lineNo = this.#lineNo;
    let pos = 0;
    while (pos < len) {
      let end = text.indexOf('\n', pos);
      if (end < 0 || end > len) end = len;
      lineNo++;
      const lineStart = pos;
      pos = end + 1;
      if (end === lineStart) continue;
      if (text.charCodeAt(lineStart) === 35) {
        // '#'
        if (text.startsWith('# TYPE ', lineStart)) {
          const rest = text.slice(lineStart + 7, end);
          const sp = rest.indexOf(' ');
          const rawName = sp < 0 ? rest : rest.slice(0, sp);
          const type = (sp < 0 ? 'untyped' : rest.slice(sp + 1).trim().toLowerCase()) as Family['type'] | 'summary';
          lastKey = null;
          sharedLes = null;
          currentRawName = rawName;
          if (!rawName.startsWith(prefix) || type === 'summary') {
            current = null;
            continue;
          }
          if (type !== 'counter' && type !== 'gauge' && type !== 'untyped' && type !== 'histogram') throw new PrometheusParseError(lineNo, `unknown type ${type}`);
          const name = opts.stripPrefix ? rawName.slice(prefix.length) : rawName;
          current = type === 'histogram' ? { name, type, samples: new Map<string, HistogramSample>() } : { name, type, samples: new Map<string, number>() };
          families.set(name, current);
        }
        continue;
      }
      if (!matchesAt(text, prefix, lineStart)) continue;
      let brace = text.indexOf('{', lineStart);
      if (brace >= end) brace = -1;
      let space = text.indexOf(' ', lineStart);
      if (space >= end) space = -1;
      const nameEnd = brace >= 0 && (space < 0 || brace < space) ? brace : space;
      if (nameEnd < 0) throw new PrometheusParseError(lineNo, 'sample without a value');
      let valueStart = nameEnd;
      let close = -1;
      if (nameEnd === brace) {
        // The value after the labels never contains '}', so the last one closes the labels, whatever the values hold.
        close = text.lastIndexOf('}', end - 1);
        if (close < brace) throw new PrometheusParseError(lineNo, 'unterminated labels');
        valueStart = close + 1;
      }
      const value = readValue(text, valueStart, end, lineNo);
      const nameLen = nameEnd - lineStart;
      const isHistogramLine = current !== null && current.type === 'histogram' && nameLen > currentRawName.length && matchesAt(text, currentRawName, lineStart);
      if (isHistogramLine && close > brace && nameLen === currentRawName.length + 7) {
        // A bucket line: compare in place with the series and bounds seen last, slicing only when they differ.
        const at = text.lastIndexOf('le="', close);
        if (at > brace && (at === brace + 1 || text.charCodeAt(at - 1) === 44) && text.charCodeAt(close - 1) === 34 && text.indexOf('"', at + 4) === close - 1) {
          const keyLen = at === brace + 1 ? 0 : at - 1 - (brace + 1);
          let h: typeof lastHistogram;
          if (lastKey !== null && lastKey.length === keyLen && matchesAt(text, lastKey, brace + 1)) h = lastHistogram;
          else {
            const key = text.slice(brace + 1, brace + 1 + keyLen);
            h = (current as Extract<Family, { type: 'histogram' }>).samples.get(key) as typeof lastHistogram;
            if (h === undefined) {
              h = { les: sharedLes ?? [], counts: [], sum: 0, count: 0 };
              (current as Extract<Family, { type: 'histogram' }>).samples.set(key, h);
            }
            lastKey = key;
          }
          lastHistogram = h as NonNullable<typeof lastHistogram>;
          const series = lastHistogram;
          const i = series.counts.length;
          const leLen = close - 1 - (at + 4);
          if (series.les === sharedLes) {
            const expected = sharedLes[i];
            if (expected === undefined || expected.length !== leLen || !matchesAt(text, expected, at + 4)) {
              series.les = sharedLes.slice(0, i);
              series.les.push(text.slice(at + 4, close - 1));
            }
          } else series.les.push(text.slice(at + 4, close - 1));
          series.counts.push(value);
          continue;
        }
      }
      const labels = close > brace ? text.slice(brace + 1, close) : '';
      const inFamily = current !== null && nameLen >= currentRawName.length && matchesAt(text, currentRawName, lineStart);
      if (!inFamily || current === null) {
        // A sample with no TYPE line: an untyped family of its own.
        const sampleName = text.slice(lineStart, nameEnd);
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
        if (nameLen !== currentRawName.length) throw new PrometheusParseError(lineNo, `sample ${text.slice(lineStart, nameEnd)} inside family ${currentRawName}`);
        current.samples.set(labels, value);
        continue;
      }
      const suffix = text.slice(lineStart + currentRawName.length, nameEnd);
      let key = labels;
      let le: string | null = null;
      if (suffix === '_bucket') {
        // Fast path: Envoy (like most exporters) prints le last: `a="x",le="0.5"`.
        const at = labels.lastIndexOf('le="');
        if (at >= 0 && (at === 0 || labels.charCodeAt(at - 1) === 44) && labels.charCodeAt(labels.length - 1) === 34 && labels.indexOf('"', at + 4) === labels.length - 1) {
          le = labels.slice(at + 4, labels.length - 1);
          key = at === 0 ? '' : labels.slice(0, at - 1);
        } else {
          const pairs = parseLabels(labels, lineNo);
          const idx = pairs.findIndex(([k]) => k === 'le');
          if (idx < 0) throw new PrometheusParseError(lineNo, 'histogram bucket without le');
          le = pairs[idx]?.[1] ?? '';
          pairs.splice(idx, 1);
          key = pairs.map(([k, v]) => `${k}="${v}"`).join(',');
        }
      }
      // Consecutive lines of one series (its buckets, sum, count) reuse the last lookup.
      let h = key === lastKey ? lastHistogram : (current.samples.get(key) as typeof lastHistogram);
      if (h === undefined) {
        // Series of a family nearly always have the same bounds: share the first complete series' list.
        h = { les: sharedLes ?? [], counts: [], sum: 0, count: 0 };
        current.samples.set(key, h);
      }
      lastKey = key;
      lastHistogram = h;
      if (suffix === '_bucket' && le !== null) {
        const i = h.counts.length;
        if (h.les === sharedLes) {
          // Only a series' own list is ever appended to; the shared one is copied when a series departs from it.
          if (sharedLes[i] !== le) {
            h.les = sharedLes.slice(0, i);
            h.les.push(le);
          }
        } else h.les.push(le);
        h.counts.push(value);
      } else if (suffix === '_sum') h.sum = value;
      else if (suffix === '_count') {
        h.count = value;
        if (sharedLes === null && h.les.length > 0) sharedLes = h.les;
      } else throw new PrometheusParseError(lineNo, `unexpected histogram sample ${text.slice(lineStart, nameEnd)}`);
    }
    this.#current = current;
    this.#currentRawName = currentRawName;
    this.#sharedLes = sharedLes;
    this.#lastKey = lastKey;
    this.#lastHistogram = lastHistogram;
    this.#lineNo = lineNo;
  }
}

export function parsePrometheus(text: string, opts: ParseOptions = {}): Map<string, Family> {
  const parser = new PrometheusParser(opts);
  parser.write(text);
  return parser.end();
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function sortedLabelPairs(raw: string): Array<[string, string]> {
  if (raw === '') return [];
  const pairs = parseLabels(raw);
  for (let i = 1; i < pairs.length; i++) {
    if ((pairs[i - 1]?.[0] ?? '') > (pairs[i]?.[0] ?? '')) return pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }
  return pairs; // already in order, as the Service Connect metrics are built
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
    const series = fam.canonical
      ? [...fam.samples.keys()].sort().map((raw) => ({ raw, base: raw }))
      : [...fam.samples.keys()]
          .map((raw) => ({ raw, pairs: sortedLabelPairs(raw) }))
          .sort((a, b) => compareLabelValues(a.pairs, b.pairs))
          .map(({ raw, pairs }) => ({ raw, base: pairs.map(([k, v]) => `${k}="${v}"`).join(',') }));
    if (fam.type === 'histogram') {
      const bucketName = `${fam.name}_bucket{`;
      for (const { raw, base } of series) {
        const h = fam.samples.get(raw) as HistogramSample;
        const open = base === '' ? bucketName : `${bucketName}${base},`;
        const plain = base === '' ? '' : `{${base}}`;
        let hasInf = false;
        let text = '';
        for (let i = 0; i < h.counts.length; i++) {
          const le = h.les[i];
          if (le === '+Inf') hasInf = true;
          text += `${open}le="${le}"} ${formatValue(h.counts[i] as number)}\n`;
        }
        if (!hasInf) text += `${open}le="+Inf"} ${formatValue(h.count)}\n`;
        out.push(`${text}${fam.name}_sum${plain} ${formatValue(h.sum)}\n${fam.name}_count${plain} ${formatValue(h.count)}\n`);
      }
    } else {
      for (const { raw, base } of series) out.push(`${fam.name}${base === '' ? '' : `{${base}}`} ${formatValue(fam.samples.get(raw) as number)}\n`);
    }
  }
  return out.join('');
}
