/** Envoy's value formats that more than one bootstrap needs (the sidecar's and the relay's). */
import type { AdminAddress } from '../config/index.ts';

/** Envoy's duration text: whole seconds as `20s`, otherwise with milliseconds (`0.001s`). */
export function durationString(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(3).replace(/0+$/, '')}s`;
}

/** The admin interface's address as Envoy's `Address` message: a pipe (mode 0600) or a socket address. */
export function adminAddressObject(address: AdminAddress, ipv4Compat: boolean): Record<string, unknown> {
  if (address.kind === 'uds') return { pipe: { path: address.path, mode: 0o600 } };
  return { socket_address: { address: address.host, port_value: address.port, ...(ipv4Compat ? { ipv4_compat: true } : {}) } };
}
