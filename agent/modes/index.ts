export type { RunMode, RunModes, ModeDeps, ModeSession, ModeHealth, EnvoyAccess } from './contract.ts';
export { ecsManagedMode, userBootstrapMode } from './ecs-managed.ts';
export { cloudMapMode, openCloudMapSession, taskIdentity, instanceAttributes, DEREGISTER_DEADLINE_MS } from './cloud-map.ts';
export type { TaskIdentity } from './cloud-map.ts';
