/**
 * envoyArgs(config, logLevel): Envoy's argument vector, without the binary. Order as in the reference agent, whose
 * ECS default is `-c <file> -l info --drain-time-s 20 --disable-hot-restart --skip-deprecated-logs`.
 * The log level is a parameter so that a restarted Envoy keeps a level set through /enableLogging.
 */
import type { Config, EnvoyLogLevel } from '../config/index.ts';

export function envoyArgs(config: Config, logLevel: EnvoyLogLevel = config.envoyLogLevel): string[] {
  const args = ['-c', config.bootstrapPath, '-l', logLevel];
  if (config.concurrency !== null) args.push('--concurrency', String(config.concurrency));
  args.push('--drain-time-s', String(config.drainTimeS));
  if (config.disableHotRestart) args.push('--disable-hot-restart');
  if (config.skipDeprecatedLogs) args.push('--skip-deprecated-logs');
  return args;
}
