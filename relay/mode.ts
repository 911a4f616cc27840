/**
 * Relay mode as `agent run` sees it: the same binary and command with relay/'s bootstrap (render-relay.ts). Its
 * Envoy is the management connection for the instance's sidecars, so its health is LIVE alone; it has no parts of
 * its own beside Envoy. It is a RunMode (agent/modes/contract.ts), checked against the contract where main.ts hands
 * the modes to run: relay/ does not import agent/modes/, which imports the configuration, which reads relay's section.
 */
export const relayMode = { watchesManagementServer: false, open: async () => null } as const;
