export { createCloudMapClient, isNotFound, isThrottling, DISCOVER_MAX_RESULTS } from './cloud-map-client.ts';
export type { CloudMap, NamespaceRef } from './cloud-map-client.ts';
export { Discovery, perAgentBudget, CLOUD_MAP_QUOTAS, DEFAULT_QUOTA_SHARE } from './discovery.ts';
export type { DiscoveryOptions } from './discovery.ts';
export { ProblemLog } from './problem-log.ts';
export { registerTask, registerOne, deregisterOne, deregisterAll, ensureService } from './registration.ts';
export type { Registration } from './registration.ts';
export { ATTRIBUTES, LIMITS, VipAllocator, callTarget, hostsEntries, readService, serviceFromInstances, serviceNameProblem } from './snapshot.ts';
export type { CloudMapInstance, DiscoveredService, DiscoverySnapshot, Endpoint, RecordProblem } from './snapshot.ts';
