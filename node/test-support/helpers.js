'use strict';
// Shared by the tests: loopback ports, an origin web server, HTTP through
// a relay.  (Outside test/ so that node --test does not run it as a test file.)
const { execFileSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');

const { Flags } = require('..');

const DOMAIN = 'example.test';
const SECRET = 'node-test-secret';
const RELAY_CERT_NAME = 'relay.example.test';

/** Connector flags for a relay without a certificate (the tests' usual relay):
 *  both address families, no WITH_SSL.  The default, WITH_DEFAULTS, turns TLS
 *  on, and a plain relay then fails the handshake ("the relay does not speak TLS"). */
const plainFlags = Flags.WITH_IPV4 | Flags.WITH_IPV6;

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

/** Resolve with the first line of manager.log containing text; reject after timeoutMs. */
async function waitLog(manager, text, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = manager.log.find((l) => l.includes(text));
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`${JSON.stringify(text)} not logged in ${timeoutMs} ms\n` + dump(manager));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A throwaway CA and relay certificates it signed (openssl CLI, in a temp dir):
 *  { dir, ca, both: {cert, key} (relay.example.test + 127.0.0.1),
 *    named: {cert, key} (relay.example.test only), cert(label, san, cn), remove() }. */
function makePki() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pk-node-pki-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '3',
    '-subj', '/CN=pagekite Node binding test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const cert = (label, san, cn = RELAY_CERT_NAME) => {
    openssl('req', ...ec, '-keyout', label + '.key', '-out', label + '.csr',
      '-subj', '/CN=' + cn);
    fs.writeFileSync(path.join(dir, label + '.ext'), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\n` +
      'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
    openssl('x509', '-req', '-in', label + '.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
      '-CAcreateserial', '-out', label + '.pem', '-days', '3', '-extfile', label + '.ext');
    return { cert: path.join(dir, label + '.pem'), key: path.join(dir, label + '.key') };
  };
  return {
    dir,
    ca: path.join(dir, 'ca.pem'),
    both: cert('both', `DNS:${RELAY_CERT_NAME},IP:127.0.0.1`),
    named: cert('named', `DNS:${RELAY_CERT_NAME}`),
    /** cert(label, san, cn) -> {cert, key}: one more certificate the CA signed. */
    cert,
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

module.exports = { DOMAIN, SECRET, RELAY_CERT_NAME, plainFlags, freePort, sha256, startOrigin,
  request, dump, waitLog, makePki };
