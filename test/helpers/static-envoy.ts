/**
 * A static Envoy bootstrap for tests that need no control plane (used through ENVOY_CONFIG_FILE): an inbound
 * listener for service `web` in front of an app, and an outbound listener with a `web` cluster that targets the
 * inbound listener, named by the agent's metrics convention (scin_/scout_ prefixes).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

export interface StaticMesh {
  readonly path: string;
  readonly adminSocket: string;
  readonly inboundPort: number;
  readonly outboundPort: number;
}

function hcm(statPrefix: string, cluster: string): Record<string, unknown> {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      stat_prefix: statPrefix,
      route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster, timeout: '15s' } }] }] },
      http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
    },
  };
}

function cluster(name: string, port: number): Record<string, unknown> {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
  };
}

export function writeStaticMesh(dir: string, ports: { app: number; inbound: number; outbound: number }): StaticMesh {
  const adminSocket = join(dir, 'envoy-admin.sock');
  const bootstrap = {
    admin: { address: { pipe: { path: adminSocket, mode: 0o600 } } },
    stats_flush_interval: '1s',
    static_resources: {
      listeners: [
        {
          name: 'inbound_web',
          traffic_direction: 'INBOUND',
          address: { socket_address: { address: '127.0.0.1', port_value: ports.inbound } },
          filter_chains: [{ filters: [hcm('scin_http_web', 'scapp_http_web')] }],
        },
        {
          name: 'outbound_web',
          traffic_direction: 'OUTBOUND',
          address: { socket_address: { address: '127.0.0.1', port_value: ports.outbound } },
          filter_chains: [{ filters: [hcm('egress_web', 'scout_http_web')] }],
        },
      ],
      clusters: [cluster('scapp_http_web', ports.app), cluster('scout_http_web', ports.inbound)],
    },
  };
  const path = join(dir, 'envoy.yaml');
  writeFileSync(path, stringify(bootstrap));
  return { path, adminSocket, inboundPort: ports.inbound, outboundPort: ports.outbound };
}
