/**
 * Cloud Map's JSON API (AWS JSON 1.1, `X-Amz-Target: Route53AutoNaming_v20170314.<Operation>`), signed with SigV4,
 * over node:http(s): the calls discovery makes on every poll. The AWS SDK client made each of those calls through
 * its middleware stack and left megabytes behind per thousand calls (docs/benchmarks.md, "Memory"); this client is
 * a POST of a JSON body and a JSON answer.
 *
 * Endpoints: AWS_ENDPOINT_URL_SERVICEDISCOVERY (or AWS_ENDPOINT_URL) when set (moto, LocalStack), as is; else
 * servicediscovery.<region>.amazonaws.com, and its data plane data-servicediscovery.<region>.amazonaws.com for
 * DiscoverInstances and DiscoverInstancesRevision (the `data-` host prefix the API model gives those two).
 *
 * Errors carry Cloud Map's error type as `name` (ServiceNotFound, ThrottlingException, ...) and the HTTP status as
 * `$metadata.httpStatusCode`, as the SDK's do, so isNotFound and isThrottling read both alike. A connection error,
 * a 5xx or a throttling answer is tried once more after 100 to 300 ms (the SDK client was set to 2 attempts).
 */
import type { Agent } from 'node:http';
import { deadlineSignal, deadlinePassed, requestText, type HttpTarget } from '../system/index.ts';
import { signRequest } from './aws-sigv4.ts';
import type { CredentialSource } from './aws-credentials.ts';

export type CloudMapOperation = 'ListNamespaces' | 'GetNamespace' | 'ListServices' | 'GetService' | 'ListInstances' | 'DiscoverInstances' | 'DiscoverInstancesRevision';

export interface CloudMapJsonClient {
  call(operation: CloudMapOperation, input: Record<string, unknown>, signal?: AbortSignal): Promise<Record<string, unknown>>;
  close(): void;
}

/** An error Cloud Map answered, shaped as the SDK's service exceptions are. */
export class CloudMapServiceError extends Error {
  readonly $metadata: { readonly httpStatusCode: number };
  constructor(name: string, message: string, status: number) {
    super(message);
    this.name = name;
    this.$metadata = { httpStatusCode: status };
  }
}

const DATA_PLANE: ReadonlySet<CloudMapOperation> = new Set(['DiscoverInstances', 'DiscoverInstancesRevision']);
/** Per attempt: the SDK client had a 2 s connection timeout and a 5 s request timeout. */
const ATTEMPT_TIMEOUT_MS = 5000;

interface Endpoint {
  readonly target: HttpTarget;
  readonly host: string;
}

function endpointOf(url: string): Endpoint {
  const u = new URL(url);
  const tls = u.protocol === 'https:';
  if (!tls && u.protocol !== 'http:') throw new Error(`${url}: the Cloud Map endpoint must be an http:// or https:// URL`);
  const port = u.port === '' ? (tls ? 443 : 80) : Number(u.port);
  return { target: { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port, ...(tls ? { tls: true } : {}) }, host: u.host };
}

/** The error type from a JSON error answer: `com.amazonaws...#ServiceNotFound:` → ServiceNotFound. */
function errorName(type: string | undefined, status: number): string {
  const name = (type ?? '').split('#').pop()?.split(':')[0] ?? '';
  return name !== '' ? name : `HTTP${status}`;
}

export function createCloudMapJsonClient(settings: { region: string; endpointUrl: string | null; credentials: CredentialSource; now?: () => number }): CloudMapJsonClient {
  const suffix = settings.region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  const control = endpointOf(settings.endpointUrl ?? `https://servicediscovery.${settings.region}.${suffix}`);
  const data = settings.endpointUrl !== null ? control : endpointOf(`https://data-servicediscovery.${settings.region}.${suffix}`);
  const now = settings.now ?? Date.now;
  const agents = new Map<Endpoint, Agent>();
  const agentFor = (e: Endpoint): Agent => {
    let agent = agents.get(e);
    if (agent === undefined) {
      const opts = { keepAlive: true, maxSockets: 4 };
      agent = 'tls' in e.target && e.target.tls ? new (process.getBuiltinModule('node:https').Agent)(opts) : new (process.getBuiltinModule('node:http').Agent)(opts);
      agents.set(e, agent);
    }
    return agent;
  };

  const attempt = async (operation: CloudMapOperation, body: string, signal?: AbortSignal): Promise<Record<string, unknown>> => {
    const endpoint = DATA_PLANE.has(operation) ? data : control;
    const credentials = await settings.credentials.get(signal);
    const headers = signRequest({
      method: 'POST',
      host: endpoint.host,
      path: '/',
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `Route53AutoNaming_v20170314.${operation}` },
      body,
      region: settings.region,
      service: 'servicediscovery',
      credentials,
      date: new Date(now()),
    });
    const deadline = deadlineSignal(ATTEMPT_TIMEOUT_MS, signal);
    let res;
    try {
      res = await requestText(endpoint.target, { method: 'POST', path: '/', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, body, agent: agentFor(endpoint) }, deadline);
    } catch (err) {
      throw deadlinePassed(deadline, signal) ? new Error(`Cloud Map ${operation} at ${endpoint.host}: no answer within ${ATTEMPT_TIMEOUT_MS} ms`, { cause: err }) : err;
    }
    let parsed: Record<string, unknown> = {};
    try {
      parsed = res.body === '' ? {} : (JSON.parse(res.body) as Record<string, unknown>);
    } catch {
      if (res.status < 300) throw new Error(`Cloud Map ${operation} at ${endpoint.host}: the answer is not JSON (HTTP ${res.status})`);
    }
    if (res.status >= 300) {
      const type = typeof parsed['__type'] === 'string' ? parsed['__type'] : undefined;
      const message = [parsed['Message'], parsed['message']].find((m) => typeof m === 'string') as string | undefined;
      throw new CloudMapServiceError(errorName(type, res.status), message ?? `Cloud Map ${operation}: HTTP ${res.status}`, res.status);
    }
    return parsed;
  };

  const transient = (err: unknown): boolean => {
    if (!(err instanceof CloudMapServiceError)) return true; // connection errors and timeouts
    const s = err.$metadata.httpStatusCode;
    return s >= 500 || s === 429 || ['ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException'].includes(err.name);
  };

  return {
    async call(operation, input, signal) {
      const body = JSON.stringify(input);
      try {
        return await attempt(operation, body, signal);
      } catch (err) {
        if (signal?.aborted || !transient(err)) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 200));
        if (signal?.aborted) throw err;
        return attempt(operation, body, signal);
      }
    },
    close() {
      for (const agent of agents.values()) agent.destroy();
      agents.clear();
    },
  };
}
