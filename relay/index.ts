export { renderRelay } from './render-relay.ts';
export { fillTemplate, templateText, templateNames, declaredPlaceholders } from './templates.ts';
export type { TemplateName } from './templates.ts';
export { relayMode } from './mode.ts';
