export { EnvoyAdminClient, EnvoyAdminError } from './admin-client.ts';
export type { AdminResponse, AdminCallObserver, EnvoyStat } from './admin-client.ts';
export { checkEnvoyBinary, envoyVersion, validateBootstrap } from './envoy-binary.ts';
export { openEnvoyLogFile, pruneRotated } from './log-file.ts';
export type { EnvoyLogFile } from './log-file.ts';
export { LogLevelController } from './log-level.ts';
export { EnvoySupervisor, describeExit } from './supervisor.ts';
export type { SupervisorState, ExitRecord, SupervisorOutcome, SupervisorOptions } from './supervisor.ts';
export { durationString, adminAddressObject } from './values.ts';
