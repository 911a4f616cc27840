/**
 * The agent's logger: JSON lines on stdout, one object per line with time, level, component, msg, and fields
 * beside them; errors under `err`. Built once in main; components get a child. Envoy's own output is not touched.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  readonly level: Level;
  readonly write: (line: string) => void;
  readonly now?: () => Date;
}

export function serializeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: String(err) };
  const out: Record<string, unknown> = { type: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out['code'] = code;
  if (err.cause !== undefined) out['cause'] = serializeError(err.cause);
  return out;
}

export function createLogger(opts: LoggerOptions, bindings: Record<string, unknown> = {}): Logger {
  const now = opts.now ?? (() => new Date());
  const log = (level: Level) => (msg: string, fields: Record<string, unknown> = {}) => {
    if (ORDER[level] < ORDER[opts.level]) return;
    const record: Record<string, unknown> = { time: now().toISOString(), level, ...bindings, msg };
    for (const [k, v] of Object.entries(fields)) record[k] = k === 'err' ? serializeError(v) : v;
    opts.write(`${JSON.stringify(record)}\n`);
  };
  return {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    child: (more) => createLogger(opts, { ...bindings, ...more }),
  };
}

/** The agent's own level follows Envoy's, as in the reference (warning/critical/off map to the nearest). */
export function agentLevelFor(envoyLevel: string): Level {
  switch (envoyLevel) {
    case 'trace':
    case 'debug':
      return 'debug';
    case 'warn':
    case 'warning':
      return 'warn';
    case 'error':
    case 'critical':
      return 'error';
    default:
      return 'info';
  }
}
