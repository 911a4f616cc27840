/** The one shape of a configuration problem and the one error that lists them (exit 2, AGENT_ERR_CONFIG). */
import { AgentError } from '../errors.ts';

/** `NAME="value": rule`, the one shape of every configuration problem. */
export function problem(name: string, value: string | undefined, rule: string): string {
  return `${name}=${JSON.stringify(value ?? '')}: ${rule}`;
}

/**
 * What the problems are problems of: `subject` names it, `plural` says it is several things (the custom bootstrap
 * files "have"), `noun` names one problem (a custom-file clash is a "conflict").
 */
export interface ProblemSubject {
  readonly subject: string;
  readonly plural?: boolean;
  readonly noun?: string;
}

/**
 * `<subject> has N problem(s):` (or `<subjects> have N <noun>(s):`) followed by one line per problem, as the agent
 * prints it. A string is the subject, singular, whose problems are "problems".
 */
export function configurationError(problems: readonly string[], about: string | ProblemSubject = 'the configuration'): AgentError {
  const { subject, plural = false, noun = 'problem' } = typeof about === 'string' ? { subject: about } : about;
  const count = `${problems.length} ${noun}${problems.length === 1 ? '' : 's'}`;
  return new AgentError('AGENT_ERR_CONFIG', `${subject} ${plural ? 'have' : 'has'} ${count}:`, { problems: [...problems] });
}
