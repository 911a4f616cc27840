export { renderBootstrap, durationString, nodeIdentity, serviceConnectStatsTags, cloudMapXdsFiles } from './render-bootstrap.ts';
export type { Platform, RenderedBootstrap, SideFile } from './render-bootstrap.ts';
export { envoyArgs } from './envoy-args.ts';
export { mergeCustomFiles } from './merge.ts';
export { fillTemplate, templateText, templateNames, declaredPlaceholders } from './templates.ts';
