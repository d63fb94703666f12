'use strict';
// Status and metrics through the Node binding: metrics(), statusJson() and
// setAdminListener(), with a relay and a connector flying a kite in one process.
const assert = require('assert/strict');
const { after, before, describe, test } = require('node:test');
const http = require('http');

const { Connector, Relay, PageKiteError } = require('..');
const { DOMAIN, SECRET, plainFlags, freePort, startOrigin, request, dump } = require('../test-support/helpers');

function adminGet(port, path) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
        body: Buffer.concat(chunks).toString() }));
    });
    req.setTimeout(10000, () => req.destroy(new Error('admin request timed out')));
    req.on('error', reject);
  });
}

describe('metrics and status', () => {
  let origin, relay, relayPort, connector, adminPort;
  const name = 'metrics.' + DOMAIN;

  before(async () => {
    origin = await startOrigin();
    relayPort = await freePort();
    adminPort = await freePort();
    relay = new Relay({ appId: 'node-test-relay' });
    relay.addListener('127.0.0.1', relayPort);
    relay.addDomain('http', '*.' + DOMAIN, SECRET);
    relay.setAdminListener(null, adminPort);
    await relay.start();
    connector = new Connector({ appId: 'node-test-connector', flags: plainFlags });
    connector.addKite({ proto: 'http', name, secret: SECRET, originHost: '127.0.0.1',
      originPort: origin.port });
    connector.addFrontend('127.0.0.1', relayPort);
    await connector.start();
    await connector.waitFor('FLYING', 20000);
  });

  after(async () => {
    if (connector) await connector.stop();
    if (relay) await relay.stop();
    if (origin) await origin.close();
  });

  test('metrics() and statusJson() follow a live kite', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await request(relayPort, name, '/')).status, 200);
    const m = connector.metrics();
    assert.match(m, new RegExp('^pagekite_kite_up\\{kite="' + name.replace(/\./g, '\\.') +
      '",proto="http",port="0"\\} 1$', 'm'), m);
    const opened = Number(/^pagekite_streams_opened_total (\d+)$/m.exec(m)[1]);
    assert.ok(opened >= 3, m);
    const doc = JSON.parse(relay.statusJson());
    assert.equal(doc.role, 'relay');
    assert.deepEqual(doc.tunnels.flatMap((t) => t.kites.map((k) => k.name)), [name], dump(relay));
    assert.ok(!m.includes(SECRET) && !relay.statusJson().includes(SECRET));
  });

  test('the relay serves the same over its admin listener', async () => {
    const r = await adminGet(adminPort, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    assert.match(r.body, /^pagekite_kites_live 1$/m);
    const s = await adminGet(adminPort, '/status.json');
    assert.equal(JSON.parse(s.body).kites[0].name, name);
    assert.equal((await adminGet(adminPort, '/nope')).status, 404);
  });

  test('setAdminListener refuses bad values and calls after start()', async () => {
    const c = new Connector({ appId: 'node-bad-admin' });
    assert.throws(() => c.setAdminListener('not-an-ip', 8080), PageKiteError);
    assert.throws(() => c.setAdminListener(null, 70000), PageKiteError);
    assert.throws(() => relay.setAdminListener(null, 1234), PageKiteError);
    await c.stop();
  });
});
