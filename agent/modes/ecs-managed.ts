/**
 * ECS-managed mode (ADS over the relay socket the ECS agent serves) and a user bootstrap used as given: their whole
 * difference lives in the bootstrap (agent/bootstrap) and, for ECS-managed mode, in the health rule; neither has
 * parts of its own beside Envoy.
 */
import type { RunMode } from './contract.ts';

export const ecsManagedMode: RunMode = { watchesManagementServer: true, open: async () => null };

/** ENVOY_CONFIG_FILE with no mode variable: Envoy runs the user's bootstrap; LIVE is enough. */
export const userBootstrapMode: RunMode = { watchesManagementServer: false, open: async () => null };
