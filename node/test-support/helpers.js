'use strict';
// Shared by the tests: loopback ports, an origin web server, HTTP through
// a relay.  (Outside test/ so that node --test does not run it as a test file.)
const crypto = require('crypto');
const http = require('http');
const net = require('net');

const DOMAIN = 'example.test';
const SECRET = 'node-test-secret';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

/** An origin: GET / (index page), GET /big (bigSize random bytes),
 *  POST /upload (answers {length, sha256} of the body), GET /echo/... */
async function startOrigin({ bigSize = 20 * 1024 * 1024 } = {}) {
  const index = Buffer.from('<html><body><h1>It flies (node)!</h1></body></html>\n');
  const big = crypto.randomBytes(bigSize);
  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/upload') {
      const hash = crypto.createHash('sha256');
      let length = 0;
      req.on('data', (chunk) => {
        length += chunk.length;
        hash.update(chunk);
      });
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ length, sha256: hash.digest('hex') }));
      });
      return;
    }
    if (req.url === '/') {
      res.setHeader('content-type', 'text/html');
      res.end(index);
    } else if (req.url === '/big') {
      res.setHeader('content-type', 'application/octet-stream');
      res.setHeader('content-length', big.length);
      res.end(big);
    } else if (req.url.startsWith('/echo/')) {
      res.end(req.url.slice(6));
    } else {
      res.statusCode = 404;
      res.end('not found');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: server.address().port,
    index,
    big,
    bigSha256: sha256(big),
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** One HTTP request to the relay for kite `host`: {status, headers, body}. */
function request(relayPort, host, path, { method = 'GET', body = null, timeout = 60000,
  agent = false } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: relayPort, path, method, agent,
      headers: { Host: host, ...(body ? { 'content-length': body.length } : {}) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
        body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`timeout after ${timeout} ms: ${path}`)));
    req.on('error', reject);
    req.end(body || undefined);
  });
}

function dump(...managers) {
  return managers.map((m) => `--- ${m.constructor.name} (${m.state}, ${m.status})\n` +
    m.log.slice(-30).join('\n')).join('\n');
}

module.exports = { DOMAIN, SECRET, freePort, sha256, startOrigin, request, dump };
