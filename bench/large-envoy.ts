/**
 * The Envoy bootstrap the benchmarks give the agent as ENVOY_CONFIG_FILE (a YAML user bootstrap): `count` static
 * clusters named as the agent's own (`scapp_http_web`, then `scout_http_svcN`), all pointing at one app, and one
 * inbound listener `scin_http_web` that routes to the first. Shared by bench/management.ts and bench/memory.ts.
 */
import { stringify } from 'yaml';

export function largeEnvoyBootstrap(opts: { count: number; appPort: number; inboundPort: number; adminSocket: string }): string {
  const router = { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' };
  const clusters = Array.from({ length: opts.count }, (_, i) => {
    const name = i === 0 ? 'scapp_http_web' : `scout_http_svc${i}`;
    return { name, type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: opts.appPort } } } }] }] } };
  });
  return stringify({
    admin: { address: { pipe: { path: opts.adminSocket } } },
    stats_flush_interval: '1s',
    static_resources: {
      clusters,
      listeners: [
        {
          name: 'inbound_web',
          traffic_direction: 'INBOUND',
          address: { socket_address: { address: '127.0.0.1', port_value: opts.inboundPort } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'scin_http_web',
                    route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'scapp_http_web' } }] }] },
                    http_filters: [{ name: 'envoy.filters.http.router', typed_config: router }],
                  },
                },
              ],
            },
          ],
        },
      ],
    },
  });
}
