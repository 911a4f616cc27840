export { renderRelay } from './render-relay.ts';
export { fillTemplate, templateText, templateNames, declaredPlaceholders } from './templates.ts';
export type { TemplateName } from './templates.ts';
export { relayMode } from './mode.ts';
export { readRelaySection, CA_BUNDLES } from './config.ts';
export type { RelaySettings, RelayVariables, ProblemSink } from './config.ts';
export type { RelayBootstrapInput } from './render-relay.ts';
