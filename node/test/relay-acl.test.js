'use strict';
// Relay access rules (issue 17, item 5): addClientAcl, addTunnelAcl,
// addRatelimitIps, setRequireTls.  Over loopback: a visitor bound to
// 127.0.0.2 is another address than one on 127.0.0.1.  Rules that cannot
// apply throw PageKiteError with the library's reason.
const assert = require('assert/strict');
const net = require('net');
const { after, describe, test } = require('node:test');

const { PageKiteError, Relay } = require('..');
const { DOMAIN, SECRET, freePort } = require('../test-support/helpers');

function firstLine(port, localAddress, request) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress }, () => s.write(request));
    let data = '';
    s.setTimeout(10000, () => { s.destroy(); reject(new Error('timeout')); });
    s.on('data', (b) => {
      data += b.toString('latin1');
      if (data.includes('\r\n')) { s.destroy(); resolve(data.split('\r\n')[0]); }
    });
    s.on('error', reject);
    s.on('close', () => resolve(data.split('\r\n')[0]));
  });
}

describe('relay access rules', () => {
  const managers = [];
  after(async () => { for (const m of managers) await m.stop().catch(() => {}); });

  test('client ACL: 127.0.0.2 refused (403), 127.0.0.1 routed (503, no kite)', async () => {
    const r = new Relay({ appId: 'node-acl' });
    managers.push(r);
    const port = await freePort();
    r.addListener('127.0.0.1', port).addDomain('http', '*.' + DOMAIN, SECRET)
      .addClientAcl('allow:127\\.0\\.0\\.1').addTunnelAcl('allow:localhost')
      .addRatelimitIps('5/60').setRequireTls(false);
    await r.start();
    const get = `GET / HTTP/1.1\r\nHost: nokite.${DOMAIN}\r\n\r\n`;
    assert.match(await firstLine(port, '127.0.0.1', get), / 503 /);
    assert.match(await firstLine(port, '127.0.0.2', get), / 403 /);
  });

  test('rules that cannot apply throw with the reason', () => {
    const r = new Relay();
    managers.push(r);
    assert.throws(() => r.addClientAcl('deny:\\d+'), (e) => e instanceof PageKiteError &&
      /Python regexp syntax/.test(e.message));
    assert.throws(() => r.addTunnelAcl('allow:('), (e) => e instanceof PageKiteError &&
      /bad regexp/.test(e.message));
    assert.throws(() => r.addRatelimitIps('lots'), (e) => e instanceof PageKiteError &&
      /IPS\/SECONDS/.test(e.message));
    assert.throws(() => r.addClientAcl(5), TypeError);
  });
});

test('Connector.addKiteAccess: rules for a known kite; typos and bad rules throw', async () => {
  const { Connector } = require('..');
  const c = new Connector({ appId: 'node-kite-access' });
  c.addKite({ proto: 'http', name: 'k.' + DOMAIN, secret: SECRET, originPort: 9, originHost: '127.0.0.1' });
  c.addKiteAccess('k.' + DOMAIN, '+password/alice=pw').addKiteAccess('k.' + DOMAIN, 'ip/127.0.0.1');
  assert.throws(() => c.addKiteAccess('typo.' + DOMAIN, 'ip/127.0.0.1'),
    (e) => e instanceof PageKiteError && /no such kite/.test(e.message));
  assert.throws(() => c.addKiteAccess('k.' + DOMAIN, 'password/alice'),
    (e) => e instanceof PageKiteError && /USER=PASSWORD/.test(e.message));
  await c.stop();
});
