'use strict';
// Relay options from pagekite.py's front-end: TLS endpoints per name (and the
// name for clients without SNI), raw ports, port aliases, the message of the
// day.  A Relay on 127.0.0.1 terminates TLS with each name's certificate
// (checked with node:tls); bad values and calls after start() throw
// PageKiteError with the library's message.
const assert = require('assert/strict');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const tls = require('tls');
const { after, before, describe, test } = require('node:test');

const { Connector, PageKiteError, Relay } = require('..');
const { DOMAIN, SECRET, plainFlags, freePort, dump, makePki } = require('../test-support/helpers');

const ONE = 'one.' + DOMAIN;
const TWO = 'two.' + DOMAIN;

/** The certificate the relay presents for servername (null: no SNI), verified against ca. */
function servedCert(port, servername, ca) {
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port, ca: fs.readFileSync(ca), timeout: 10000 };
    // Without SNI there is no name to check the certificate against (127.0.0.1 is not in it).
    if (servername) opts.servername = servername;
    else opts.checkServerIdentity = () => undefined;
    const s = tls.connect(opts, () => {
      const raw = s.getPeerCertificate().raw;
      s.destroy();
      resolve(raw);
    });
    s.on('error', reject);
    s.on('timeout', () => s.destroy(new Error('TLS handshake timed out')));
  });
}

const der = (file) => new crypto.X509Certificate(fs.readFileSync(file)).raw;

const byLibrary = (call, pattern) => (err) => {
  assert.ok(err instanceof PageKiteError, String(err));
  assert.equal(err.call, call);
  assert.match(err.reason, pattern);
  return true;
};

describe('relay TLS endpoints, raw ports, port aliases, MOTD', () => {
  let pki, one, two, combined;
  const managers = [];

  before(() => {
    pki = makePki();
    one = pki.cert('one', 'DNS:' + ONE, ONE);
    two = pki.cert('two', 'DNS:' + TWO, TWO);
    combined = path.join(pki.dir, 'two-combined.pem');
    fs.writeFileSync(combined, fs.readFileSync(two.cert) + fs.readFileSync(two.key));
  });

  after(async () => {
    for (const m of managers.reverse()) await m.stop();
    if (pki) pki.remove();
  });

  test('each name gets its certificate; no SNI gets the setTlsDefault name\'s', async () => {
    const r = new Relay({ appId: 'node-endpoints' });
    managers.push(r);
    const port = await freePort();
    const same = r.addListener('127.0.0.1', port)
      .addDomain('http', '*.' + DOMAIN, SECRET)
      .addTlsEndpoint(ONE, one.cert, one.key)
      .addTlsEndpoint(TWO, combined) // the key is in the certificate's file
      .setTlsDefault(TWO);
    assert.equal(same, r);
    await r.start();
    assert.deepEqual(await servedCert(port, ONE, pki.ca), der(one.cert));
    assert.deepEqual(await servedCert(port, TWO, pki.ca), der(two.cert));
    assert.notDeepEqual(der(one.cert), der(two.cert));
    assert.deepEqual(await servedCert(port, null, pki.ca), der(two.cert));
    // A name without an endpoint (and no setTls()): a TLS alert.
    await assert.rejects(servedCert(port, 'nobody.' + DOMAIN, pki.ca));

    // Ports are fixed once started; endpoints, the default name, the MOTD
    // and domains change at any time.
    for (const [call, fn] of [
      ['setRawPorts', () => r.setRawPorts('virtual')],
      ['addPortAlias', () => r.addPortAlias(port, 80)],
    ]) {
      assert.throws(fn, (err) => err instanceof PageKiteError && err.call === call, call);
    }
    r.addTlsEndpoint(ONE, combined); // TWO's certificate for ONE now (rotation)
    assert.deepEqual(await servedCert(port, TWO, pki.ca), der(two.cert));
    await assert.rejects(servedCert(port, ONE, pki.ca)); // it does not name ONE
    r.removeTlsEndpoint(ONE);
    assert.throws(() => r.removeTlsEndpoint(ONE),
      (err) => err instanceof PageKiteError && err.code === 'PK_ENOTFOUND');
    r.setTlsDefault(ONE).setMotd('later');
    r.addDomain('http', 'late.' + DOMAIN, SECRET).removeDomain('http', 'late.' + DOMAIN);
    assert.throws(() => r.removeDomain('http', 'late.' + DOMAIN),
      (err) => err instanceof PageKiteError && err.code === 'PK_ENOTFOUND' &&
        err.call === 'removeDomain');
  });

  test('addTlsEndpoint and setTlsDefault: the library\'s errors, TypeError for wrong types', () => {
    const r = new Relay();
    managers.push(r);
    r.addTlsEndpoint('*.wild.' + DOMAIN, one.cert, one.key);
    r.addTlsEndpoint('*.WILD.' + DOMAIN, one.cert, one.key); // the same name again: replaced
    const missing = path.join(pki.dir, 'missing.pem');
    assert.throws(() => r.addTlsEndpoint(ONE, missing), byLibrary('addTlsEndpoint', /missing\.pem/));
    assert.throws(() => r.addTlsEndpoint(ONE, one.cert), PageKiteError); // no key in that file
    assert.throws(() => r.addTlsEndpoint('not a name', one.cert, one.key),
      byLibrary('addTlsEndpoint', /is not a host name or/));
    assert.throws(() => r.addTlsEndpoint(null, one.cert, one.key), TypeError);
    assert.throws(() => r.addTlsEndpoint(ONE, 5), TypeError);
    assert.throws(() => r.addTlsEndpoint(ONE, one.cert, 5), TypeError);
    r.addTlsEndpoint(ONE, one.cert, one.key).setTlsDefault(ONE).setTlsDefault(null);
    assert.throws(() => r.setTlsDefault('bad name'), byLibrary('setTlsDefault', /not a valid name/));
    assert.throws(() => r.setTlsDefault(5), TypeError);
  });

  test('setRawPorts, addPortAlias, setMotd: accepted and refused values', () => {
    const r = new Relay();
    managers.push(r);
    r.setRawPorts('virtual').setRawPorts('22,2222,virtual').setRawPorts([22, 2222, 'virtual'])
      .setRawPorts(null);
    assert.throws(() => r.setRawPorts('bogus'),
      byLibrary('setRawPorts', /expected ports \(1-65535\) and\/or "virtual".*'bogus'/));
    assert.throws(() => r.setRawPorts([70000]), PageKiteError);
    assert.throws(() => r.setRawPorts(22), TypeError);
    assert.throws(() => r.setRawPorts([22.5]), TypeError);

    r.addPortAlias(8443, 443);
    for (const [p, a] of [[0, 80], [80, 80], [80, 65536]]) {
      assert.throws(() => r.addPortAlias(p, a), (err) =>
        err instanceof PageKiteError || err instanceof RangeError, `${p}:${a}`);
    }
    assert.throws(() => r.addPortAlias(80, 80),
      byLibrary('addPortAlias', /is not 1-65535/));
    assert.throws(() => r.addPortAlias(8443, 444), byLibrary('addPortAlias', /aliased already/));
    assert.throws(() => r.addPortAlias('8080', 80), TypeError);

    r.setMotd('Welcome to the test relay.\nBe nice.').setMotd('x'.repeat(1024)).setMotd(null);
    assert.throws(() => r.setMotd('x'.repeat(1025)), byLibrary('setMotd', /1025 bytes, at most 1024/));
    assert.throws(() => r.setMotd('bell\x07'), byLibrary('setMotd', /control character/));
    assert.throws(() => r.setMotd(5), TypeError);
  });

  test('a virtual raw port and a port alias let raw-2222 and http-8080 kites fly', async () => {
    const r = new Relay({ appId: 'node-raw-alias' });
    managers.push(r);
    const port = await freePort();
    r.addListener('127.0.0.1', port).addDomain(['http', 'raw'], '*.' + DOMAIN, SECRET)
      .setRawPorts('virtual').addPortAlias(port, 8080).setMotd('hello from the Node relay test');
    await r.start();
    const name = 'ports.' + DOMAIN;
    const c = new Connector({ appId: 'node-raw-alias', maxFrontends: 1, flags: plainFlags });
    managers.push(c);
    c.addKite({ proto: 'raw', name, secret: SECRET, originHost: '127.0.0.1', originPort: 9, publicPort: 2222 })
      .addKite({ proto: 'http', name, secret: SECRET, originHost: '127.0.0.1', originPort: 9, publicPort: 8080 });
    c.addFrontend('127.0.0.1', port);
    await c.start();
    const deadline = Date.now() + 20000;
    while (c.kites().some((k) => k.status === 'WAITING') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(c.kites(), [
      { proto: 'raw-2222', name, status: 'FLYING', reason: '' },
      { proto: 'http-8080', name, status: 'FLYING', reason: '' },
    ], dump(c, r));
  });
});
