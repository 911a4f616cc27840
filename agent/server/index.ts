export { startManagementServer, handleRequest, routeBuckets, REQUEST_DEADLINE_MS, HEADERS_TIMEOUT_MS, IDLE_TIMEOUT_MS } from './management-server.ts';
export type { ManagementServer, Buckets } from './management-server.ts';
export { TokenBucket } from './rate-limiter.ts';
export { routes, renderEndpointsDoc, badRequest, MAX_CONNECTIONS, PROMETHEUS_TEXT } from './routes.ts';
export type { Reply, RouteContext, Route } from './routes.ts';
