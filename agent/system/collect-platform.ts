/**
 * Collects what the bootstrap's node metadata says about the machine and the task: network interfaces, kernel,
 * and the ECS task metadata endpoint v4. Effects live here so renderBootstrap stays pure.
 *
 * Unlike the reference agent, task metadata requests have a deadline (reference issue #155: TMDS i/o timeouts
 * stalled start-up), and a missing field is left out rather than crashing.
 */
import { machine, networkInterfaces, release } from 'node:os';
import { deadlinePassed, deadlineSignal, httpUrlTarget, requestText, type HttpTextResponse } from './http.ts';

/** What the bootstrap's node metadata says about the machine and the task (renderBootstrap's second input). */
export interface Platform {
  /** Interface name → addresses with prefix (`10.0.0.5/24`), by family. */
  readonly interfaces: { readonly ipv4: Readonly<Record<string, readonly string[]>>; readonly ipv6: Readonly<Record<string, readonly string[]>> };
  readonly kernelVersion: string | null;
  readonly machine: string | null;
  /** From the ECS task metadata endpoint v4, when there is one. */
  readonly task: {
    readonly clusterArn: string | null;
    readonly taskArn: string | null;
    readonly availabilityZone: string | null;
    readonly availabilityZoneId: string | null;
    readonly supportedIpFamilies: 'ALL' | 'IPv4_ONLY' | 'IPv6_ONLY' | null;
    readonly cpu: string | null;
    readonly memory: string | null;
  } | null;
}

export interface TaskMetadata {
  readonly Cluster?: string;
  readonly TaskARN?: string;
  readonly AvailabilityZone?: string;
  readonly AvailabilityZoneID?: string;
  readonly Containers?: ReadonlyArray<{
    readonly Name?: string;
    readonly Type?: string;
    readonly Networks?: ReadonlyArray<{ readonly NetworkMode?: string; readonly IPv4Addresses?: readonly string[]; readonly IPv6Addresses?: readonly string[] }>;
  }>;
  readonly Limits?: { readonly CPU?: number; readonly Memory?: number };
}

/**
 * GET a JSON document over plain HTTP (the task metadata endpoint, ECS's container credentials) with a deadline
 * covering headers and body.
 */
export async function fetchJson(url: string, timeoutMs: number, signal?: AbortSignal, headers: Readonly<Record<string, string>> = {}): Promise<unknown> {
  const deadline = deadlineSignal(timeoutMs, signal);
  const { target, path } = httpUrlTarget(url);
  let res: HttpTextResponse;
  try {
    res = await requestText(target, { path, headers: { 'user-agent': 'appnetClient/1.0', ...headers } }, deadline);
  } catch (err) {
    throw deadlinePassed(deadline, signal) ? new Error(`GET ${url}: no answer within ${timeoutMs} ms`, { cause: err }) : err;
  }
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}`);
  try {
    return JSON.parse(res.body);
  } catch (err) {
    throw new Error(`GET ${url}: not JSON`, { cause: err });
  }
}

export function localInterfaces(): Platform['interfaces'] {
  const ipv4: Record<string, string[]> = {};
  const ipv6: Record<string, string[]> = {};
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) {
      const target = a.family === 'IPv4' ? ipv4 : ipv6;
      (target[name] ??= []).push(a.cidr ?? a.address);
    }
  }
  return { ipv4, ipv6 };
}

/** IP families of the task, from the task metadata: awsvpc uses the first container, bridge the CNI pause one. */
export function supportedIpFamilies(task: TaskMetadata): 'ALL' | 'IPv4_ONLY' | 'IPv6_ONLY' | null {
  const containers = task.Containers ?? [];
  const mode = containers.flatMap((c) => c.Networks ?? []).map((n) => n.NetworkMode).find((m) => m === 'awsvpc' || m === 'bridge');
  const source = mode === 'bridge' ? containers.find((c) => c.Type === 'CNI_PAUSE') : containers[0];
  const net = source?.Networks?.[0];
  if (net === undefined) return null;
  const v4 = (net.IPv4Addresses ?? []).length > 0;
  const v6 = (net.IPv6Addresses ?? []).length > 0;
  return v4 && v6 ? 'ALL' : v4 ? 'IPv4_ONLY' : v6 ? 'IPv6_ONLY' : null;
}

/** The task metadata endpoint v4's documents: the task (`/task`) and, when asked for, this container (the endpoint itself). */
export interface TaskDocuments {
  readonly task: TaskMetadata;
  /** Empty when not asked for or when it could not be read (only its Limits are used). */
  readonly container: TaskMetadata;
}

/**
 * One read of the task metadata endpoint at start (run shares it between the bootstrap's node metadata and Cloud
 * Map's task identity). Throws when the task document cannot be read within the deadline.
 */
export async function fetchTaskMetadata(metadataUri: string, opts: { readonly timeoutMs?: number; readonly signal?: AbortSignal; readonly container?: boolean } = {}): Promise<TaskDocuments> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const [task, container] = await Promise.all([
    fetchJson(`${metadataUri}/task`, timeoutMs, opts.signal) as Promise<TaskMetadata>,
    opts.container === false ? ({} as TaskMetadata) : (fetchJson(metadataUri, timeoutMs, opts.signal).catch(() => ({})) as Promise<TaskMetadata>),
  ]);
  return { task, container };
}

/** The machine's facts, and the task's from its metadata documents when there are any. */
export function platformOf(docs: TaskDocuments | null): Platform {
  let machineName: string | null = null;
  try {
    machineName = machine();
  } catch {
    machineName = null;
  }
  const task: Platform['task'] =
    docs === null
      ? null
      : {
          clusterArn: docs.task.Cluster ?? null,
          taskArn: docs.task.TaskARN ?? null,
          availabilityZone: docs.task.AvailabilityZone ?? null,
          availabilityZoneId: docs.task.AvailabilityZoneID ?? null,
          supportedIpFamilies: supportedIpFamilies(docs.task),
          cpu: docs.container.Limits?.CPU === undefined ? null : String(docs.container.Limits.CPU),
          memory: docs.container.Limits?.Memory === undefined ? null : String(docs.container.Limits.Memory),
        };
  return { interfaces: localInterfaces(), kernelVersion: release(), machine: machineName, task };
}

export interface CollectOptions {
  readonly metadataUri: string | null;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Called with a message when a part cannot be collected; the bootstrap then leaves that part out. */
  readonly warn: (message: string, err: unknown) => void;
}

/** platformOf after one read of the task metadata endpoint, when there is one (`agent render`). */
export async function collectPlatform(opts: CollectOptions): Promise<Platform> {
  let docs: TaskDocuments | null = null;
  if (opts.metadataUri !== null) {
    try {
      docs = await fetchTaskMetadata(opts.metadataUri, { ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
    } catch (err) {
      opts.warn('task metadata unavailable; node metadata leaves it out', err);
    }
  }
  return platformOf(docs);
}
