/**
 * The agent's error catalog. Every failure that reaches the user carries one of these codes, a message that names
 * the bad input, and the exit code the process ends with. docs/errors.md is generated from this table and a test
 * fails when it is stale.
 */

export interface ErrorKind {
  readonly exitCode: number;
  readonly summary: string;
}

export const errorCatalog = {
  AGENT_ERR_USAGE: { exitCode: 2, summary: 'The command line is not understood: an unknown command or flag.' },
  AGENT_ERR_CONFIG: {
    exitCode: 2,
    summary:
      'The configuration is invalid. One line per problem names the variable, the value received and the rule.',
  },
  AGENT_ERR_ENVOY_NOT_FOUND: {
    exitCode: 3,
    summary: 'The Envoy binary named by ENVOY_BINARY does not exist or cannot be run.',
  },
  AGENT_ERR_BOOTSTRAP_INVALID: {
    exitCode: 4,
    summary: 'Envoy rejected the bootstrap (`agent render --validate`, or Envoy exiting at once on start).',
  },
  AGENT_ERR_ENVOY_EXITED: {
    exitCode: 5,
    summary:
      'Envoy kept exiting: the restart budget (APPNET_ENVOY_RESTART_COUNT) is spent. The message says how Envoy last ended.',
  },
  AGENT_ERR_LISTEN: {
    exitCode: 6,
    summary:
      "A socket, port or directory the agent must have to itself is taken or unusable: the management interface could not listen, or another live agent (or its Envoy) holds the runtime directory, Envoy's admin socket or port, the relay socket or the management socket, or a file that is not a socket is at a socket path. The message names the variable.",
  },
  AGENT_ERR_WRITE: {
    exitCode: 7,
    summary: 'A file the agent must write (bootstrap, runtime directory, hosts file) could not be written.',
  },
  AGENT_ERR_CLOUD_MAP: {
    exitCode: 8,
    summary: 'Cloud Map could not be used at start: the namespace does not exist, or registration failed.',
  },
  AGENT_ERR_UNHEALTHY: {
    exitCode: 1,
    summary: '`agent healthcheck`: the running agent is not HEALTHY, or cannot be reached.',
  },
  AGENT_ERR_INTERNAL: { exitCode: 70, summary: 'A bug in the agent. The message and stack trace go to the log.' },
} as const satisfies Record<string, ErrorKind>;

export type ErrorCode = keyof typeof errorCatalog;

export class AgentError extends Error {
  readonly code: ErrorCode;
  /** Individual problems, one line each, for errors that collect several (configuration). */
  readonly problems: readonly string[];

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; problems?: readonly string[] } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.code = code;
    this.problems = options.problems ?? [];
  }

  get exitCode(): number {
    return errorCatalog[this.code].exitCode;
  }
}

/** The text a user sees for an error: one line per problem, never a stack trace for an AgentError. */
export function formatError(error: unknown): string {
  if (error instanceof AgentError) {
    if (error.problems.length === 0) return `agent: ${error.code}: ${error.message}`;
    return [`agent: ${error.code}: ${error.message}`, ...error.problems.map((p) => `  ${p}`)].join('\n');
  }
  const err = error instanceof Error ? error : new Error(String(error));
  return `agent: AGENT_ERR_INTERNAL: ${err.message}\n${err.stack ?? ''}`;
}
