/**
 * The two credential sources an ECS task uses, for Cloud Map mode's own signed calls: the environment
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and the ECS container credentials endpoint (the task
 * role: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI under http://169.254.170.2, or AWS_CONTAINER_CREDENTIALS_FULL_URI with
 * the token of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or AWS_CONTAINER_AUTHORIZATION_TOKEN).
 *
 * Only where the AWS SDK's default chain would pick the same source: the environment comes first in that chain;
 * the container endpoint is taken only when nothing the chain reads before it is set (a profile, a web identity
 * token, a shared credentials or config file). Anything else returns null, and the caller uses the SDK.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fetchJson } from '../system/index.ts';
import type { AwsCredentials } from './aws-sigv4.ts';

export interface CredentialSource {
  /** Which source: 'environment' or 'container'. */
  readonly kind: 'environment' | 'container';
  get(signal?: AbortSignal): Promise<AwsCredentials>;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Container credentials are fetched again this long before they expire (the SDK refreshes 5 minutes ahead too). */
const REFRESH_BEFORE_MS = 5 * 60_000;
const ECS_CREDENTIALS_HOST = 'http://169.254.170.2';
/** Hosts AWS_CONTAINER_CREDENTIALS_FULL_URI may name over plain http, as the SDK allows: loopback and ECS/EKS's. */
const PLAIN_HTTP_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '169.254.170.2', '169.254.170.23', '[fd00:ec2::23]']);

export function credentialSource(env: Env, opts: { now?: () => number } = {}): CredentialSource | null {
  const id = env['AWS_ACCESS_KEY_ID'];
  const secret = env['AWS_SECRET_ACCESS_KEY'];
  if (id && secret) {
    const token = env['AWS_SESSION_TOKEN'];
    const credentials: AwsCredentials = { accessKeyId: id, secretAccessKey: secret, ...(token ? { sessionToken: token } : {}) };
    return { kind: 'environment', get: async () => credentials };
  }
  const home = env['HOME'] ?? homedir();
  const sharedFiles = [env['AWS_SHARED_CREDENTIALS_FILE'] ?? join(home, '.aws', 'credentials'), env['AWS_CONFIG_FILE'] ?? join(home, '.aws', 'config')];
  if (env['AWS_PROFILE'] || env['AWS_WEB_IDENTITY_TOKEN_FILE'] || sharedFiles.some((f) => existsSync(f))) return null;
  const relative = env['AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'];
  const full = env['AWS_CONTAINER_CREDENTIALS_FULL_URI'];
  let url: string;
  if (relative) url = `${ECS_CREDENTIALS_HOST}${relative}`;
  else if (full) {
    const u = new URL(full);
    // Only plain http to the hosts the SDK accepts; anything else (https included) is left to the SDK.
    if (u.protocol !== 'http:' || !PLAIN_HTTP_HOSTS.has(u.hostname)) return null;
    url = full;
  } else return null;
  const now = opts.now ?? Date.now;
  let cached: { credentials: AwsCredentials; expiresAtMs: number } | null = null;
  let inFlight: Promise<AwsCredentials> | null = null;
  const load = async (signal?: AbortSignal): Promise<AwsCredentials> => {
    const tokenFile = env['AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE'];
    const authorization = relative ? undefined : tokenFile ? readFileSync(tokenFile, 'utf8').trim() : env['AWS_CONTAINER_AUTHORIZATION_TOKEN'];
    const body = (await fetchJson(url, 2000, signal, authorization ? { authorization } : {})) as { AccessKeyId?: string; SecretAccessKey?: string; Token?: string; Expiration?: string };
    if (!body.AccessKeyId || !body.SecretAccessKey) throw new Error(`container credentials from ${url}: no AccessKeyId and SecretAccessKey in the answer`);
    const credentials: AwsCredentials = { accessKeyId: body.AccessKeyId, secretAccessKey: body.SecretAccessKey, ...(body.Token ? { sessionToken: body.Token } : {}) };
    const expires = body.Expiration ? Date.parse(body.Expiration) : NaN;
    cached = { credentials, expiresAtMs: Number.isNaN(expires) ? now() + 15 * 60_000 : expires };
    return credentials;
  };
  return {
    kind: 'container',
    get: (signal) => {
      if (cached !== null && now() < cached.expiresAtMs - REFRESH_BEFORE_MS) return Promise.resolve(cached.credentials);
      inFlight ??= load(signal).finally(() => {
        inFlight = null;
      });
      return inFlight;
    },
  };
}
