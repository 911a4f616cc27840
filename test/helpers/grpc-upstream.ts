/**
 * The relay's upstream in tests: an HTTPS HTTP/2 server on 127.0.0.1 with a server certificate for localhost from a
 * test CA made for the run (openssl), standing in for the Service Connect management server, which tests cannot
 * reach. Every gRPC stream gets an answer with no messages (headers, then OK trailers); the request headers are
 * kept, for the relay's SigV4 signature and host rewrite.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createSecureServer, type IncomingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface GrpcUpstream {
  readonly port: number;
  /** The test CA's certificate (PEM file), for the relay's APPNET_RELAY_CA_FILE or /etc/pki. */
  readonly caFile: string;
  /** The headers of every stream received, in order. */
  readonly seen: IncomingHttpHeaders[];
  close(): Promise<void>;
}

/** A CA and a server certificate for localhost and 127.0.0.1, written into `at`. */
function makeCertificates(at: string, caName: string): { ca: string; key: string; cert: string } {
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: at, stdio: 'pipe' });
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', `/CN=${caName}`]);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(at, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext']);
  return { ca: join(at, 'ca.pem'), key: readFileSync(join(at, 'server.key'), 'utf8'), cert: readFileSync(join(at, 'server.pem'), 'utf8') };
}

/** Makes the certificates in `certDir` (created if missing) and starts the server; the caller closes it. */
export async function startGrpcUpstream(certDir: string, caName: string): Promise<GrpcUpstream> {
  mkdirSync(certDir, { recursive: true });
  const certs = makeCertificates(certDir, caName);
  const seen: IncomingHttpHeaders[] = [];
  const server = createSecureServer({ key: certs.key, cert: certs.cert, allowHTTP1: false });
  server.on('stream', (stream, headers) => {
    seen.push(headers);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    caFile: certs.ca,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
