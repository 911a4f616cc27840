/**
 * Where Cloud Map mode's own client takes its credentials from (agent/discovery/aws-credentials.ts): the
 * environment, or the ECS container credentials endpoint, and only where the AWS SDK's chain would pick the same
 * source. The container endpoint is a loopback server playing ECS's (the real one exists only inside a task); its
 * answer has the documented fields AccessKeyId, SecretAccessKey, Token and Expiration.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentialSource } from '../../agent/discovery/aws-credentials.ts';

/** A home without ~/.aws, so a developer's own files do not change the outcome. */
function emptyHome(t: TestContext): string {
  const home = mkdtempSync(join(tmpdir(), 'creds-home-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  return home;
}

async function credentialsEndpoint(t: TestContext, expiration: () => string): Promise<{ url: string; requests: Array<{ path: string; authorization: string | undefined }> }> {
  const requests: Array<{ path: string; authorization: string | undefined }> = [];
  let n = 0;
  const server = createServer((req, res) => {
    requests.push({ path: req.url ?? '', authorization: req.headers.authorization });
    n += 1;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ AccessKeyId: `ASIA${n}`, SecretAccessKey: `secret${n}`, Token: `token${n}`, Expiration: expiration() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

test('credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY come first, with AWS_SESSION_TOKEN', async (t) => {
  const source = credentialSource({ HOME: emptyHome(t), AWS_ACCESS_KEY_ID: 'AKID', AWS_SECRET_ACCESS_KEY: 'secret', AWS_SESSION_TOKEN: 'tok', AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/x' });
  assert.equal(source?.kind, 'environment');
  assert.deepEqual(await source?.get(), { accessKeyId: 'AKID', secretAccessKey: 'secret', sessionToken: 'tok' });
});

test('container credentials are fetched with the authorization token file, kept until 5 minutes before they expire, then fetched again', async (t) => {
  let nowMs = Date.parse('2026-12-02T12:00:00Z');
  const endpoint = await credentialsEndpoint(t, () => new Date(nowMs + 60 * 60_000).toISOString());
  const home = emptyHome(t);
  const tokenFile = join(home, 'token');
  writeFileSync(tokenFile, 'secret-token\n');
  const source = credentialSource({ HOME: home, AWS_CONTAINER_CREDENTIALS_FULL_URI: `${endpoint.url}/creds`, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile }, { now: () => nowMs });
  assert.equal(source?.kind, 'container');
  assert.deepEqual(await source?.get(), { accessKeyId: 'ASIA1', secretAccessKey: 'secret1', sessionToken: 'token1' });
  nowMs += 54 * 60_000;
  assert.equal((await source?.get())?.accessKeyId, 'ASIA1', 'still valid for 6 minutes: the cached credentials');
  nowMs += 2 * 60_000;
  assert.equal((await source?.get())?.accessKeyId, 'ASIA2', 'within 5 minutes of expiring: fetched again');
  assert.deepEqual(endpoint.requests, [
    { path: '/creds', authorization: 'secret-token' },
    { path: '/creds', authorization: 'secret-token' },
  ]);
});

test('concurrent calls share one fetch of the container credentials', async (t) => {
  const endpoint = await credentialsEndpoint(t, () => new Date(Date.now() + 3_600_000).toISOString());
  const source = credentialSource({ HOME: emptyHome(t), AWS_CONTAINER_CREDENTIALS_FULL_URI: endpoint.url, AWS_CONTAINER_AUTHORIZATION_TOKEN: 'tok' });
  const all = await Promise.all([source?.get(), source?.get(), source?.get()]);
  assert.deepEqual(new Set(all.map((c) => c?.accessKeyId)), new Set(['ASIA1']));
  assert.equal(endpoint.requests.length, 1);
});

test('sources the AWS SDK chain reads before the container endpoint leave every call to the SDK', (t) => {
  const home = emptyHome(t);
  const container = { HOME: home, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/x' };
  assert.equal(credentialSource(container)?.kind, 'container');
  assert.equal(credentialSource({ ...container, AWS_PROFILE: 'dev' }), null);
  assert.equal(credentialSource({ ...container, AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/token' }), null);
  const shared = join(home, 'credentials');
  writeFileSync(shared, '[default]\n');
  assert.equal(credentialSource({ ...container, AWS_SHARED_CREDENTIALS_FILE: shared }), null);
  assert.equal(credentialSource({ HOME: home }), null, 'no source at all (the instance metadata service): the SDK');
  assert.equal(credentialSource({ HOME: home, AWS_CONTAINER_CREDENTIALS_FULL_URI: 'https://creds.example.com/x' }), null, 'https or another host: the SDK');
});
