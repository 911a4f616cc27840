export { renderBootstrap, nodeIdentity, serviceConnectStatsTags, cloudMapXdsFiles } from './render-bootstrap.ts';
export type { RenderedBootstrap, SideFile } from './render-bootstrap.ts';
export { renderResources, resourceFileDigest, resourceFilePieces, resourceFileText, resourceFileWithDigest } from './render-resources.ts';
export type { ResourceFiles, SelfTask, VipSource } from './render-resources.ts';
export type { Platform } from '../system/index.ts';
export { envoyArgs } from './envoy-args.ts';
export { mergeCustomFiles } from './merge.ts';
