/** The one shape of a configuration problem and the one error that lists them (exit 2, AGENT_ERR_CONFIG). */
import { AgentError } from '../errors.ts';

/** `NAME="value": rule`, the one shape of every configuration problem. */
export function problem(name: string, value: string | undefined, rule: string): string {
  return `${name}=${JSON.stringify(value ?? '')}: ${rule}`;
}

/** `<subject> has N problem(s):` followed by one line per problem, as the agent prints it. */
export function configurationError(problems: readonly string[], subject = 'the configuration'): AgentError {
  return new AgentError('AGENT_ERR_CONFIG', `${subject} has ${problems.length} problem${problems.length === 1 ? '' : 's'}:`, { problems: [...problems] });
}
