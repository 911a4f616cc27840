/**
 * Relay mode as `agent run` sees it: the same binary and command with relay/'s bootstrap (render-relay.ts). Its
 * Envoy is the management connection for the instance's sidecars, so its health is LIVE alone; it has no parts of
 * its own beside Envoy.
 */
import type { RunMode } from '../agent/modes/index.ts';

export const relayMode: RunMode = { watchesManagementServer: false, open: async () => null };
