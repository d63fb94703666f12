'use strict';
// PROXY protocol through the Node bindings: Connector.setKiteProxyProtocol
// (before and after start: the next stream follows it), checked by a raw
// origin recording the exact v1/v2 bytes; Relay.addProxySource's checks.
const assert = require('assert/strict');
const net = require('net');
const { after, describe, test } = require('node:test');

const { Connector, PageKiteError, Relay } = require('..');
const { DOMAIN, SECRET, plainFlags, freePort, dump } = require('../test-support/helpers');

const V2_SIG = Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1');

const byLibrary = (call, pattern) => (err) => {
  assert.ok(err instanceof PageKiteError, String(err));
  assert.equal(err.call, call);
  assert.match(err.reason, pattern);
  return true;
};

/** A raw origin: keeps each connection's bytes up to "hello\n", answers "ok\n". */
function captureOrigin() {
  const got = [];
  const server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.includes('hello\n')) {
        got.push(buf);
        sock.end('ok\n');
      }
    });
    sock.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, got })));
}

/** CONNECT name:pport through the relay and say hello; our source port once answered. */
function hello(relayPort, name, pport) {
  return new Promise((resolve, reject) => {
    const s = net.connect(relayPort, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let connected = false;
    s.setTimeout(10000, () => s.destroy(new Error('timed out')));
    s.on('connect', () => s.write(`CONNECT ${name}:${pport} HTTP/1.1\r\n\r\n`));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!connected && buf.includes('\r\n\r\n')) {
        if (!buf.toString('latin1').startsWith('HTTP/1.0 200') &&
            !buf.toString('latin1').startsWith('HTTP/1.1 200')) {
          s.destroy();
          resolve(null);
          return;
        }
        connected = true;
        buf = buf.subarray(buf.indexOf('\r\n\r\n') + 4);
        s.write('hello\n');
      }
      if (connected && buf.toString() === 'ok\n') {
        const port = s.localPort;
        s.destroy();
        resolve(port);
      }
    });
    s.on('error', reject);
    s.on('close', () => resolve(null));
  });
}

async function helloRetry(relayPort, name, pport) {
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    const port = await hello(relayPort, name, pport).catch(() => null);
    if (port) return port;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`raw kite ${name} never answered`);
}

describe('PROXY protocol', () => {
  const managers = [];
  let origin;

  after(async () => {
    for (const m of managers.reverse()) await m.stop();
    if (origin) origin.server.close();
  });

  test('setKiteProxyProtocol: v1, then v2 and off while running', async () => {
    origin = await captureOrigin();
    const oport = origin.server.address().port;
    const r = new Relay({ appId: 'node-pp' });
    managers.push(r);
    const port = await freePort();
    r.addListener('127.0.0.1', port).addDomain(['raw'], '*.' + DOMAIN, SECRET).setRawPorts('virtual');
    await r.start();
    const name = 'pp.' + DOMAIN;
    const c = new Connector({ appId: 'node-pp', maxFrontends: 1, flags: plainFlags });
    managers.push(c);
    c.addKite({ proto: 'raw', name, secret: SECRET, originHost: '127.0.0.1', originPort: oport,
      publicPort: port }).setKiteProxyProtocol('raw', name, 1);
    c.addFrontend('127.0.0.1', port);
    await c.start();
    let sport = await helloRetry(port, name, port);
    assert.equal(origin.got.at(-1).toString('latin1'),
      `PROXY TCP4 127.0.0.1 127.0.0.1 ${sport} ${port}\r\nhello\n`, dump(c, r));
    c.setKiteProxyProtocol('raw', name, 2);
    sport = await helloRetry(port, name, port);
    const ports = Buffer.alloc(4);
    ports.writeUInt16BE(sport, 0);
    ports.writeUInt16BE(port, 2);
    assert.deepEqual(origin.got.at(-1), Buffer.concat([V2_SIG, Buffer.from([0x21, 0x11, 0, 12,
      127, 0, 0, 1, 127, 0, 0, 1]), ports, Buffer.from('hello\n')]));
    c.setKiteProxyProtocol('raw', name, 0);
    await helloRetry(port, name, port);
    assert.equal(origin.got.at(-1).toString(), 'hello\n');
    assert.throws(() => c.setKiteProxyProtocol('raw', name, 3),
      byLibrary('setKiteProxyProtocol', /version 3 is not 0/));
    assert.throws(() => c.setKiteProxyProtocol('raw', 'nope', 1),
      byLibrary('setKiteProxyProtocol', /no kite raw:nope/));
    assert.throws(() => c.setKiteProxyProtocol('raw', name, '1'), TypeError);
  });

  test('addProxySource checks its network', () => {
    const r = new Relay();
    r.addProxySource('10.0.0.0/8').addProxySource('::1');
    assert.throws(() => r.addProxySource('10.0.0.0/33'),
      byLibrary('addProxySource', /prefix length 33 is over 32/));
    assert.throws(() => r.addProxySource('lb.example'),
      byLibrary('addProxySource', /not an IPv4 or IPv6 network/));
    assert.throws(() => r.addProxySource(5), TypeError);
    assert.equal(typeof new Connector().addProxySource, 'undefined');
  });
});
