/**
 * The SigV4 signer of Cloud Map mode's own client (agent/discovery/aws-sigv4.ts): AWS's published test vectors,
 * and the same Cloud Map request signed by the AWS SDK's own signer. A wrong signature is refused by AWS (moto
 * checks signatures loosely, so the end-to-end tests cannot catch one).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { amzDate, signRequest } from '../../agent/discovery/aws-sigv4.ts';

// AWS's Signature Version 4 test suite (docs.aws.amazon.com, "Signature Version 4 test suite"): these credentials,
// region, service and date are the suite's.
const suite = {
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
  region: 'us-east-1',
  service: 'service',
  date: new Date('2015-08-30T12:36:00Z'),
};

test('amzDate formats the date as SigV4 wants it', () => {
  assert.equal(amzDate(suite.date), '20150830T123600Z');
});

test('signRequest gives the signature of the test suite case get-vanilla', () => {
  const headers = signRequest({ ...suite, method: 'GET', host: 'example.amazonaws.com', path: '/', headers: {}, body: '' });
  assert.equal(
    headers['authorization'],
    'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
  );
  assert.equal(headers['x-amz-date'], '20150830T123600Z');
});

test('signRequest gives the signature of the test suite case post-vanilla', () => {
  const headers = signRequest({ ...suite, method: 'POST', host: 'example.amazonaws.com', path: '/', headers: {}, body: '' });
  assert.equal(
    headers['authorization'],
    'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b',
  );
});

const bytes = (d: string | ArrayBuffer | ArrayBufferView): string | Uint8Array =>
  typeof d === 'string' ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/** node:crypto behind the hash interface the SDK's signer takes. */
class Sha256 {
  readonly #hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
}

for (const sessionToken of [undefined, 'FwoGZXIvYXdzEXAMPLETOKEN==']) {
  test(`a Cloud Map DiscoverInstances request is signed as the AWS SDK signs it (${sessionToken ? 'with' : 'without'} a session token)`, async () => {
    const credentials = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', ...(sessionToken ? { sessionToken } : {}) };
    const body = JSON.stringify({ NamespaceName: 'prod.local', ServiceName: 'orders', HealthStatus: 'HEALTHY_OR_ELSE_ALL', MaxResults: 1000 });
    const date = new Date('2026-12-02T11:22:33Z');
    const host = 'data-servicediscovery.eu-west-1.amazonaws.com';
    const target = { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'Route53AutoNaming_v20170314.DiscoverInstances' };
    const ours = signRequest({ method: 'POST', host, path: '/', headers: target, body, region: 'eu-west-1', service: 'servicediscovery', credentials, date });
    const sdk = new SignatureV4({ credentials, region: 'eu-west-1', service: 'servicediscovery', sha256: Sha256, applyChecksum: false });
    const signed = await sdk.sign({ method: 'POST', protocol: 'https:', hostname: host, path: '/', headers: { host, ...target }, body }, { signingDate: date });
    assert.equal(ours['authorization'], signed.headers['authorization']);
    assert.equal(ours['x-amz-security-token'], signed.headers['x-amz-security-token']);
  });
}
