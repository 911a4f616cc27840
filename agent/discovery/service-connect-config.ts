/**
 * The Service Connect document's rules are configuration: they live in agent/config/service-connect.ts and readConfig
 * checks them with everything else. These names stay here for snapshot.ts and bootstrap/render-resources.ts, which
 * another branch (issue 13) is editing; once they import from agent/config/index.ts this file goes.
 */
export { DNS_NAME, DNS_NAME_RULE, MAX_TIMEOUT, NAME, NAME_RULE, DEFAULT_INGRESS_PORT_BASE, validateServiceConnectConfig } from '../config/index.ts';
export type { AppProtocol, ServiceConnectConfig as ScConfig, ServiceConnectService as ScService } from '../config/index.ts';
