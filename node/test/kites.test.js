'use strict';
// TLS by default (WITH_DEFAULTS), kite states and reasons, waitFor giving up
// at once on REJECTED, and addFrontendCertname.  Relays run in this process
// (Relay, with setTls for TLS tunnels); certificates come from a throwaway CA.
const assert = require('assert/strict');
const { after, before, describe, test } = require('node:test');

const { Connector, KiteStatus, PageKiteError, Relay, Status, binding } = require('..');
const { DOMAIN, SECRET, RELAY_CERT_NAME, plainFlags, freePort, request, dump, waitLog,
  makePki } = require('../test-support/helpers');

const WAIT_MS = 30000; // a timeout the rejection must not wait out

describe('kites, TLS and certificate names', () => {
  let pki;
  const managers = [];

  async function relay({ tls = null } = {}) {
    const r = new Relay({ appId: 'node-kites-relay' });
    managers.push(r);
    r.port = await freePort();
    r.addListener('127.0.0.1', r.port);
    r.addDomain('http', '*.' + DOMAIN, SECRET);
    if (tls) r.setTls(tls.cert, tls.key);
    await r.start();
    return r;
  }

  function connector(port, name, { secret = SECRET, host = '127.0.0.1', ...opts } = {}) {
    const c = new Connector({ appId: 'node-kites', maxFrontends: 1, ...opts });
    managers.push(c);
    c.addKite({ name, secret, originHost: '127.0.0.1', originPort: 9 });
    assert.ok(c.addFrontend(host, port) >= 1);
    return c;
  }

  /**
   * Start c and wait for FLYING, which a rejection must cut short.  A 1 ms
   * poll of the status (pagekite_get_status) notes the last time it was not
   * yet REJECTED: the status turned REJECTED after that, so waitFor
   * returning less than 1 s after it returned less than 1 s after REJECTED.
   */
  async function waitRejected(c, r) {
    let notYet = Date.now();
    const poll = setInterval(() => {
      if (c.statusCode !== Status.REJECTED) notYet = Date.now();
    }, 1);
    const t0 = Date.now();
    try {
      await c.start();
      const err = await c.waitFor('FLYING', WAIT_MS).then(
        () => assert.fail('flew:\n' + dump(c, r)), (e) => e);
      const returned = Date.now();
      assert.ok(err instanceof PageKiteError, String(err));
      assert.equal(err.status, 'REJECTED', err.message);
      assert.equal(c.status, 'REJECTED');
      assert.equal(c.statusCode, Status.REJECTED);
      assert.ok(returned - notYet < 1000, `waitFor gave up up to ${returned - notYet} ms after REJECTED`);
      assert.ok(returned - t0 < 10000, `waitFor took ${returned - t0} ms`);
      return err;
    } finally {
      clearInterval(poll);
    }
  }

  before(() => {
    pki = makePki();
  });

  after(async () => {
    for (const m of managers.reverse()) await m.stop();
    if (pki) pki.remove();
  });

  test('KiteStatus constants', () => {
    assert.deepEqual({ ...KiteStatus }, { WAITING: 0, FLYING: 1, REJECTED: 2, DUPLICATE: 3 });
    assert.equal(KiteStatus.REJECTED, binding.PK_KITE_STATUS_REJECTED);
  });

  test('the defaults fly over TLS with the relay verified', async () => {
    const r = await relay({ tls: pki.both });
    const name = 'tls.' + DOMAIN;
    const c = connector(r.port, name); // flags: WITH_DEFAULTS
    c.setTlsVerify(true, pki.ca);
    await c.start();
    await c.waitFor('FLYING', 20000);
    assert.ok(c.log.some((l) => l.includes('with TLS')), dump(c));
    assert.equal(c.kiteStatus('http', name), 'FLYING');
    assert.equal(c.kiteReason('http', name), '');
    assert.equal(r.counter('KITES_LIVE'), 1);
    // visitors still speak plain HTTP to the relay; nothing listens on the origin port
    const page = await request(r.port, name, '/', { timeout: 10000 });
    assert.equal(page.status, 503);
  });

  test('the defaults verify the relay: an untrusted CA does not fly', async () => {
    const r = await relay({ tls: pki.both });
    const c = connector(r.port, 'untrusted.' + DOMAIN);
    await c.start();
    const line = await waitLog(c, 'certificate verify failed');
    assert.match(line, /TLS handshake failed/);
    assert.notEqual(c.status, 'FLYING');
    assert.equal(c.kiteStatus('http', 'untrusted.' + DOMAIN), 'WAITING');
  });

  test('the defaults against a plain relay say it does not speak TLS', async () => {
    const r = await relay();
    const c = connector(r.port, 'noplain.' + DOMAIN);
    await c.start();
    await waitLog(c, 'the relay does not speak TLS');
    assert.equal(r.counter('KITES_LIVE'), 0);
  });

  test('kiteStatus, kiteReason and kites() before start and when flying', async () => {
    const r = await relay();
    const name = 'states.' + DOMAIN;
    const c = connector(r.port, name, { flags: plainFlags });
    c.addKite({ name, secret: SECRET, originHost: '127.0.0.1', originPort: 9, publicPort: 8080 });
    assert.equal(c.kiteStatus('http', name), 'WAITING');
    assert.equal(c.kiteStatus('http-8080', name), 'WAITING');
    assert.equal(c.kiteReason('http', name), '');
    assert.deepEqual(c.kites(), [
      { proto: 'http', name, status: 'WAITING', reason: '' },
      { proto: 'http-8080', name, status: 'WAITING', reason: '' }]);
    assert.throws(() => c.kiteStatus('http', 'nobody.' + DOMAIN), (err) => {
      assert.ok(err instanceof PageKiteError);
      assert.equal(err.call, 'kiteStatus');
      assert.match(err.reason, /no kite/);
      return true;
    });
    assert.throws(() => c.kiteReason('raw', name), (err) => err instanceof PageKiteError &&
      err.call === 'kiteReason' && /no kite/.test(err.reason));
    assert.throws(() => c.kiteStatus(5, name), TypeError);
    assert.throws(() => c.kiteReason('http', null), TypeError);
    await c.start();
    // The relay listens on one port only: the kite for public port 8080 is refused.
    await c.waitFor(['PROBLEMS', 'REJECTED'], 20000);
    const deadline = Date.now() + 20000;
    while (c.kites().some((k) => k.status === 'WAITING') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(c.kites(), [
      { proto: 'http', name, status: 'FLYING', reason: '' },
      { proto: 'http-8080', name, status: 'REJECTED', reason: 'port' }], dump(c, r));
    await c.stop();
    assert.throws(() => c.kiteStatus('http', name), PageKiteError);
  });

  test('a wrong secret: waitFor gives up at once, the reason is "signature"', async () => {
    const r = await relay();
    const name = 'badsecret.' + DOMAIN;
    const c = connector(r.port, name, { flags: plainFlags, secret: 'not-the-secret' });
    const err = await waitRejected(c, r);
    assert.deepEqual(err.kites, [{ proto: 'http', name, status: 'REJECTED', reason: 'signature' }]);
    assert.match(err.message, /badsecret\.example\.test REJECTED \(signature\)/);
    assert.equal(c.kiteStatus('http', name), 'REJECTED');
    assert.equal(c.kiteReason('http', name), 'signature');
    assert.ok(c.log.some((l) => l.includes('rejected by relay: signature')), dump(c));
    // Already REJECTED: waiting for another status rejects at once, for REJECTED resolves.
    const t0 = Date.now();
    await assert.rejects(c.waitFor(['FLYING', 'PROBLEMS'], WAIT_MS), (e) => e.status === 'REJECTED');
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(await c.waitFor('REJECTED', 1000), 'REJECTED');
    assert.equal(r.counter('KITES_LIVE'), 0);
  });

  test('a name outside the relay\'s domains: the reason is "unknown"', async () => {
    const r = await relay();
    const name = 'kite.elsewhere.test';
    const c = connector(r.port, name, { flags: plainFlags });
    const err = await waitRejected(c, r);
    assert.equal(err.kites[0].reason, 'unknown');
    assert.equal(c.kiteStatus('http', name), 'REJECTED');
    assert.equal(c.kiteReason('http', name), 'unknown');
  });

  test('a second connector for a flying kite is a DUPLICATE', async () => {
    const r = await relay();
    const name = 'twice.' + DOMAIN;
    const first = connector(r.port, name, { flags: plainFlags });
    await first.start();
    await first.waitFor('FLYING', 20000);
    const second = connector(r.port, name, { flags: plainFlags });
    await second.start();
    const deadline = Date.now() + 20000;
    while (second.kiteStatus('http', name) !== 'DUPLICATE' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(second.kiteStatus('http', name), 'DUPLICATE', dump(second, r));
    assert.equal(second.kiteReason('http', name), 'duplicate');
    assert.equal(first.kiteStatus('http', name), 'FLYING');
  });

  test('addFrontendCertname: a certificate for another name than the one dialled', async () => {
    // The certificate names only relay.example.test; the relay is dialled as 127.0.0.1.
    const r = await relay({ tls: pki.named });
    const name = 'certname.' + DOMAIN;
    const without = connector(r.port, name);
    without.setTlsVerify(true, pki.ca);
    await without.start();
    await waitLog(without, "the relay's certificate is for");
    assert.notEqual(without.status, 'FLYING');
    await without.stop();

    const withName = connector(r.port, name);
    withName.setTlsVerify(true, pki.ca);
    assert.equal(withName.addFrontendCertname(RELAY_CERT_NAME), withName);
    await withName.start();
    await withName.waitFor('FLYING', 20000);
    assert.equal(withName.kiteStatus('http', name), 'FLYING');
  });

  test('a refused certificate is logged with its names and the expected ones', async () => {
    const r = await relay({ tls: pki.named });
    const name = 'byname.' + DOMAIN;
    const c = connector(r.port, name, { host: 'localhost' });
    c.setTlsVerify(true, pki.ca);
    c.addFrontendCertname('other.example.test');
    await c.start();
    const line = await waitLog(c, "the relay's certificate is for");
    assert.ok(line.includes(`the relay's certificate is for ${RELAY_CERT_NAME}; ` +
      'expected one of: localhost, other.example.test'), line);
    await c.stop();
    const ok = connector(r.port, name, { host: 'localhost' });
    ok.setTlsVerify(true, pki.ca);
    ok.addFrontendCertname('other.example.test').addFrontendCertname(RELAY_CERT_NAME);
    await ok.start();
    await ok.waitFor('FLYING', 20000);
  });

  test('dialled as 127.0.0.1, a refused certificate is logged with its names too', async () => {
    const r = await relay({ tls: pki.named });
    const c = connector(r.port, 'ipname.' + DOMAIN);
    c.setTlsVerify(true, pki.ca);
    await c.start();
    await waitLog(c, "the relay's certificate is for");
    const text = c.log.join('\n');
    assert.ok(text.includes(`the relay's certificate is for ${RELAY_CERT_NAME}; ` +
      'expected one of: 127.0.0.1'), text);
  });

  test('setProxy: a bad URL throws; a proxy that is down is named, password masked', async () => {
    const r = await relay();
    const c = connector(r.port, 'proxied.' + DOMAIN, { flags: plainFlags });
    assert.throws(() => c.setProxy('ftp://127.0.0.1:21'), (err) =>
      err instanceof PageKiteError && /scheme/.test(err.reason));
    const port = await freePort();
    c.setProxy(`socks5h://joe:pw123@127.0.0.1:${port}`).setRejectionUrl('https://offline.example.test/');
    await c.start();
    const line = await waitLog(c, `connecting to proxy socks5h://joe:***@127.0.0.1:${port} failed`);
    assert.ok(!c.log.join('\n').includes('pw123'), line);
  });

  test('addFrontendCertname checks its argument and runs before start() only', async () => {
    const r = await relay();
    const c = connector(r.port, 'args.' + DOMAIN, { flags: plainFlags });
    c.addFrontendCertname('a.example.test').addFrontendCertname(''); // '' forgets the list
    assert.throws(() => c.addFrontendCertname('not a name'), (err) =>
      err instanceof PageKiteError && /invalid name/.test(err.reason));
    assert.throws(() => c.addFrontendCertname(null), TypeError);
    await c.start();
    assert.throws(() => c.addFrontendCertname('late.example.test'), PageKiteError);
  });
});
