/** Plain HTTP requests for tests, over TCP or a Unix socket, with a deadline. */
import { request } from 'node:http';

export interface Response {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

export function httpRequest(
  target: { socketPath: string } | { host: string; port: number },
  path: string,
  opts: { method?: string; timeoutMs?: number; headers?: Record<string, string>; agent?: false } = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request({ ...target, path, method: opts.method ?? 'GET', headers: opts.headers ?? {}, agent: false, timeout: opts.timeoutMs ?? 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${path}: no answer within ${opts.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end();
  });
}
