export { renderBootstrap, nodeIdentity, serviceConnectStatsTags, cloudMapXdsFiles } from './render-bootstrap.ts';
export type { Platform, RenderedBootstrap, SideFile } from './render-bootstrap.ts';
export { envoyArgs } from './envoy-args.ts';
export { mergeCustomFiles } from './merge.ts';
