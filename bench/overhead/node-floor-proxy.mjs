// The floor for any Node.js gateway: node:http in, one undici Pool out, the body forwarded and
// the answer piped back, with no validation, routing, logging or accounting. The overhead
// benchmark runs it beside nginx and Switchyard so that the cost of Node's own HTTP stack on
// this machine is visible next to what Switchyard adds on top of it.
//
// Run: node bench/overhead/node-floor-proxy.mjs <port> <upstream origin>

import http from 'node:http';
import { Pool } from 'undici';

const [port, upstream] = process.argv.slice(2);
const pool = new Pool(upstream);

http
  .createServer((request, response) => {
    if (request.url === '/readyz') {
      response.end('ready\n');
      return;
    }
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      pool.request(
        {
          method: request.method,
          path: request.url,
          headers: { 'content-type': request.headers['content-type'] ?? 'application/json' },
          body: Buffer.concat(chunks),
        },
        (error, answer) => {
          if (error) {
            response.writeHead(502).end(String(error));
            return;
          }
          const headers = { 'content-type': answer.headers['content-type'] };
          if (answer.headers['content-length']) headers['content-length'] = answer.headers['content-length'];
          response.writeHead(answer.statusCode, headers);
          answer.body.pipe(response);
        },
      );
    });
  })
  .listen(Number(port), '127.0.0.1');
