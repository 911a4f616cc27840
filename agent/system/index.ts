export { RUNTIME_LOCK, isSocketLive, freeSocketPath, claimRuntime } from './claims.ts';
export type { Claim, ClaimedPaths } from './claims.ts';
export { fetchJson, fetchTaskMetadata, localInterfaces, platformOf, supportedIpFamilies, collectPlatform } from './collect-platform.ts';
export type { Platform, TaskMetadata, TaskDocuments, CollectOptions } from './collect-platform.ts';
export { dependencyPackages, dependency } from './dependencies.ts';
export { writeFileAtomic, ensureDirectory, randomName } from './files.ts';
export { yaml } from './yaml.ts';
export { deadlineSignal, deadlinePassed, httpUrlTarget, openRequest, requestText } from './http.ts';
export type { HttpTarget, HttpRequest, HttpTextResponse } from './http.ts';
