export { readConfig, problem, deepFreeze, parseMeshResource } from './read-config.ts';
export type { Config, ConfigIo, Env, Mode, AdminAddress, Tracing, CustomFile } from './read-config.ts';
export { envTable, envTableByName, LOG_LEVELS } from './table.ts';
export type { EnvVar, Scope, EnvoyLogLevel } from './table.ts';
export { renderHelp, renderConfigurationDoc, effectiveConfiguration } from './docs.ts';
export { isPort, isIpString, integer, ipv4Address, oneOf } from './parsers.ts';
export type { Parser, Parsed } from './parsers.ts';
