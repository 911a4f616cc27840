export { runAgent } from './run.ts';
export type { RunIo } from './run.ts';
export { renderCommand, serializeBootstrap, parseRenderArgs, writeSideFiles } from './render.ts';
export type { CommandIo } from './render.ts';
export { healthcheckCommand, getStatus } from './healthcheck.ts';
