// A small HTTP app for the local mesh, in the role APP_ROLE gives it, listening on APP_LISTEN (host:port):
//   web       GET /                answers APP_TEXT (the round robin shows which task answered)
//   backend   GET /api/message     answers JSON with a message and the task that served it
//   frontend  GET /                calls BACKEND_URL (http://backend-container.local:5000/api/message, the backend's
//                                  Service Connect name, as on ECS) and answers what the backend said
// It stops at once on SIGTERM or SIGINT (as PID 1 in a container, a process without handlers ignores them).
import { createServer } from 'node:http';

const role = process.env.APP_ROLE ?? 'web';
const [host, port] = (process.env.APP_LISTEN ?? '127.0.0.1:8080').split(/:(?=\d+$)/);
const taskId = process.env.TASK_ID ?? 'local';

async function answer(req, res) {
  if (role === 'web') return send(res, 200, 'text/plain', `${process.env.APP_TEXT ?? taskId}\n`);
  if (role === 'backend') {
    if (req.url !== '/api/message') return send(res, 404, 'text/plain', 'not found\n');
    return send(res, 200, 'application/json', JSON.stringify({ message: 'hello from the backend', task: taskId }));
  }
  if (role === 'frontend') {
    const url = process.env.BACKEND_URL ?? 'http://backend-container.local:5000/api/message';
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
      const body = await r.json();
      return send(res, 200, 'application/json', JSON.stringify({ frontend: taskId, backend: body, backendStatus: r.status, via: r.headers.get('server') }));
    } catch (err) {
      return send(res, 502, 'application/json', JSON.stringify({ frontend: taskId, error: `${url}: ${err.cause?.code ?? err.message}` }));
    }
  }
  return send(res, 500, 'text/plain', `unknown APP_ROLE ${role}\n`);
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, connection: 'close' });
  res.end(body);
}

const server = createServer((req, res) => void answer(req, res));
server.listen(Number(port), host, () => console.log(`${role} listening on ${host}:${port}`));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
