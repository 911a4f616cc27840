/**
 * `agent healthcheck [--wait]`: asks the running agent's /status over its socket or port. Exit 0 when HEALTHY,
 * 1 otherwise. --wait polls every APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S up to ..._TIMEOUT_S (the
 * reference's -envoyReadiness). Reads only the variables it needs: no bootstrap rendering, no files written.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { configurationError, problem, readVariable, type Env, type ValueOf, type VarName } from '../config/index.ts';
import { AgentError } from '../errors.ts';
import { deadlinePassed, deadlineSignal, requestText, type HttpTarget, type HttpTextResponse } from '../system/index.ts';
import type { CommandIo } from './render.ts';

/** A row with a default, read by the table's parser: its value, or the configuration error naming it. */
function need<N extends VarName>(env: Env, name: N): ValueOf<N> {
  return readVariable(env, name) as ValueOf<N>;
}

/** GET /status from the running agent; the deadline covers the connection, the headers and the body. */
export async function getStatus(target: HttpTarget, timeoutMs: number): Promise<{ healthStatus?: string; reasons?: string[] }> {
  const deadline = deadlineSignal(timeoutMs);
  let res: HttpTextResponse;
  try {
    res = await requestText(target, { path: '/status', headers: { connection: 'close' } }, deadline);
  } catch (err) {
    throw deadlinePassed(deadline) ? new Error(`no answer within ${timeoutMs} ms`, { cause: err }) : err;
  }
  try {
    return JSON.parse(res.body) as { healthStatus?: string; reasons?: string[] };
  } catch (err) {
    throw new Error(`/status answered something that is not JSON (HTTP ${res.status})`, { cause: err });
  }
}

export async function healthcheckCommand(env: Env, args: readonly string[], io: CommandIo): Promise<number> {
  const wait = args.includes('--wait');
  const unknown = args.filter((a) => a !== '--wait');
  if (unknown.length > 0) throw new AgentError('AGENT_ERR_USAGE', `healthcheck: unknown argument ${JSON.stringify(unknown[0])}; usage: agent healthcheck [--wait]`);
  if (env['APPNET_AGENT_ADMIN_MODE'] === undefined) {
    throw configurationError([problem('APPNET_AGENT_ADMIN_MODE', undefined, 'must be set (tcp or uds) for the agent to serve /status, which healthcheck asks')]);
  }
  const mode = readVariable(env, 'APPNET_AGENT_ADMIN_MODE') ?? 'tcp';
  // The agent is found through the same variables it was started with (their defaults included): no other setting.
  let target: HttpTarget;
  let where: string;
  if (mode === 'uds') {
    target = { socketPath: need(env, 'APPNET_AGENT_ADMIN_UDS_PATH') };
    where = `unix:${target.socketPath} (APPNET_AGENT_ADMIN_UDS_PATH)`;
  } else {
    const bind = need(env, 'APPNET_AGENT_HTTP_BIND_ADDRESS');
    const host = bind === '::' ? '::1' : bind === '0.0.0.0' ? '127.0.0.1' : bind;
    target = { host, port: need(env, 'APPNET_AGENT_HTTP_PORT') };
    where = `${host.includes(':') ? `[${host}]` : host}:${target.port} (APPNET_AGENT_HTTP_BIND_ADDRESS, APPNET_AGENT_HTTP_PORT)`;
  }
  const intervalMs = need(env, 'APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S') * 1000;
  const deadline = Date.now() + (wait ? need(env, 'APPNET_AGENT_POLL_ENVOY_READINESS_TIMEOUT_S') * 1000 : 0);
  for (;;) {
    let line: string;
    try {
      const status = await getStatus(target, 2000);
      if (status.healthStatus === 'HEALTHY') {
        io.stdout('HEALTHY\n');
        return 0;
      }
      line = `${status.healthStatus || 'UNKNOWN'}: ${(status.reasons ?? []).join('; ')}`;
    } catch (err) {
      line = `UNREACHABLE at ${where}: ${(err as Error).message}`;
    }
    if (Date.now() + intervalMs > deadline) {
      io.stderr(`agent: AGENT_ERR_UNHEALTHY: ${line}\n`);
      return 1;
    }
    await sleep(intervalMs);
  }
}
