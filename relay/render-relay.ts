/**
 * Relay mode's bootstrap: the template bootstrap-templates/relay.yaml filled from the configuration. Pure: no I/O
 * beyond reading the template (inlined in the bundle), no clock, no env.
 */
import { adminAddressObject, durationString } from '../agent/envoy/index.ts';
import type { RelaySettings } from './config.ts';
import { fillTemplate } from './templates.ts';

/** What the relay bootstrap reads from the configuration (agent/config's Config has it). */
export interface RelayBootstrapInput {
  readonly relay: RelaySettings | null;
  readonly envoyAdmin: { readonly address: Parameters<typeof adminAddressObject>[0]; readonly ipv4Compat: boolean; readonly accessLogPath: string };
  readonly runtime: { readonly useHttpClientForAwsCredentials: boolean };
}

export function renderRelay(config: RelayBootstrapInput): Record<string, unknown> {
  const relay = config.relay;
  if (relay === null) throw new Error('renderRelay: relay mode without relay settings');
  return fillTemplate('relay', {
    RELAY_LISTENER_PATH: relay.listenerPath,
    RELAY_BUFFER_LIMIT_BYTES: relay.bufferLimitBytes,
    RELAY_STREAM_IDLE_TIMEOUT: durationString(relay.streamIdleTimeoutMs),
    SIGNING_NAME: relay.signingName,
    REGION: relay.region,
    MANAGEMENT_DOMAIN: relay.domain,
    MANAGEMENT_PORT: relay.port,
    CA_FILE: relay.caFile,
    TLS_CURVE: relay.tlsCurve,
    ADMIN_ADDRESS: adminAddressObject(config.envoyAdmin.address, config.envoyAdmin.ipv4Compat),
    ADMIN_ACCESS_LOG_PATH: config.envoyAdmin.accessLogPath,
    STATIC_RUNTIME: {
      're2.max_program_size.error_level': 1000,
      ...(config.runtime.useHttpClientForAwsCredentials ? { 'envoy.reloadable_features.use_http_client_to_fetch_aws_credentials': true } : {}),
    },
  });
}
