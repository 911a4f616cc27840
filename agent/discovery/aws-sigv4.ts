/**
 * AWS Signature Version 4 for one request: the Authorization header and the headers it signs. Pure but for the
 * hashing (node:crypto, loaded on first use: only Cloud Map mode signs).
 *
 * The algorithm as AWS documents it ("Create a signed AWS API request"): a canonical request (method, URI, query,
 * the signed headers lower-cased and sorted, the payload's SHA-256), a string to sign over its SHA-256 with the
 * date and the credential scope, and a key derived from the secret by HMAC-SHA256 through the date, the region,
 * the service and "aws4_request". test/unit/aws-sigv4.test.ts checks it against AWS's published test vectors.
 */

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface SignInput {
  readonly method: string;
  readonly host: string;
  /** The URI path, already URI-encoded (Cloud Map's JSON API always uses `/`). */
  readonly path: string;
  /** The canonical query string (already sorted and encoded); '' for none. */
  readonly query?: string;
  /** Headers to sign besides host and x-amz-date (names in any case). */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly region: string;
  readonly service: string;
  readonly credentials: AwsCredentials;
  readonly date: Date;
}

function crypto(): typeof import('node:crypto') {
  return process.getBuiltinModule('node:crypto');
}
const sha256Hex = (data: string): string => crypto().createHash('sha256').update(data, 'utf8').digest('hex');
const hmac = (key: string | Buffer, data: string): Buffer => crypto().createHmac('sha256', key).update(data, 'utf8').digest();

/** `20150830T123600Z` */
export function amzDate(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/** The request's headers with x-amz-date, x-amz-security-token (when the credentials have one) and authorization. */
export function signRequest(input: SignInput): Record<string, string> {
  const stamp = amzDate(input.date);
  const day = stamp.slice(0, 8);
  const headers: Record<string, string> = { host: input.host, 'x-amz-date': stamp };
  for (const [name, value] of Object.entries(input.headers)) headers[name.toLowerCase()] = value;
  if (input.credentials.sessionToken !== undefined) headers['x-amz-security-token'] = input.credentials.sessionToken;
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => `${n}:${(headers[n] as string).trim().replace(/\s+/g, ' ')}\n`).join('');
  const signedHeaders = names.join(';');
  const canonicalRequest = [input.method, input.path, input.query ?? '', canonicalHeaders, signedHeaders, sha256Hex(input.body)].join('\n');
  const scope = `${day}/${input.region}/${input.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', stamp, scope, sha256Hex(canonicalRequest)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${input.credentials.secretAccessKey}`, day), input.region), input.service), 'aws4_request');
  const signature = crypto().createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex');
  headers['authorization'] = `AWS4-HMAC-SHA256 Credential=${input.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return headers;
}
