/**
 * A small HTTP app on loopback that stands in for a task's container: it answers "<name>\n", can delay
 * (/slow?ms=N), can fail with 503 on request (/flaky answers 503 the first time), and reports each request it
 * receives so tests can await events instead of sleeping.
 */
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

export interface App {
  readonly name: string;
  readonly port: number;
  readonly host: string;
  readonly requests: string[];
  /** Resolves at the next request that arrives. */
  nextRequest(): Promise<string>;
  close(): Promise<void>;
}

export async function startApp(name: string, host = '127.0.0.1', port = 0): Promise<App> {
  const requests: string[] = [];
  let waiters: Array<(path: string) => void> = [];
  let flakyServed = false;
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(url.pathname);
    for (const w of waiters) w(url.pathname);
    waiters = [];
    const answer = () => {
      if (url.pathname === '/flaky' && !flakyServed) {
        flakyServed = true;
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end(`${name} unavailable\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`${name}\n`);
    };
    if (url.pathname === '/slow') setTimeout(answer, Number(url.searchParams.get('ms') ?? 2000));
    else answer();
  });
  server.listen(port, host);
  await once(server, 'listening');
  return {
    name,
    host,
    port: (server.address() as AddressInfo).port,
    requests,
    nextRequest: () => new Promise((resolve) => waiters.push(resolve)),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A free TCP port on loopback (bound and released; good enough for tests on one machine). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const s = createServer();
  s.listen(0, host);
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}
