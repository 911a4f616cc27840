export { computeHealth } from './compute-health.ts';
export type { HealthObservation, HealthVerdict } from './compute-health.ts';
export { HealthMonitor } from './health-monitor.ts';
export type { EnvoyProcessInfo, HealthAdmin, HealthMonitorOptions, StatusDocument } from './health-monitor.ts';
