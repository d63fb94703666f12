'use strict';
// The idiomatic wrappers of calls that only the raw layer had (spec
// idiomatic.node, tests/spec/test_idiomatic_coverage.py): Relay.setDuplicates
// lets two connectors fly one kite, nextEvents reads kept events, statusName
// is pagekite_status_name; addKite's origin is originPort/originHost as in
// every binding, with port/host as deprecated aliases.
const assert = require('assert/strict');
const { spawnSync } = require('child_process');
const path = require('path');
const { after, describe, test } = require('node:test');

const { Connector, PageKiteError, Relay, Status, statusName } = require('..');
const { DOMAIN, SECRET, plainFlags, freePort, dump } = require('../test-support/helpers');

describe('wrappers', () => {
  const managers = [];
  after(async () => {
    await Promise.all(managers.map((m) => m.stop()));
  });

  function connector(port, name, kite = {}) {
    const c = new Connector({ appId: 'node-wrappers', maxFrontends: 1, flags: plainFlags });
    managers.push(c);
    c.addKite({ name, secret: SECRET, originHost: '127.0.0.1', originPort: 9, ...kite });
    assert.equal(c.addFrontend('127.0.0.1', port), 1);
    return c;
  }

  test('setDuplicates(true) lets two connectors fly one kite', async () => {
    const r = new Relay({ appId: 'node-dups' });
    managers.push(r);
    const port = await freePort();
    r.addListener('127.0.0.1', port).addDomain('http', '*.' + DOMAIN, SECRET);
    assert.equal(r.setDuplicates(true), r);
    assert.throws(() => r.setDuplicates('yes'), TypeError);
    await r.start();
    assert.throws(() => r.setDuplicates(false), (e) => e instanceof PageKiteError &&
      e.code === 'PK_ESTATE' && e.call === 'setDuplicates');
    const name = 'shared.' + DOMAIN;
    const first = connector(port, name);
    const second = connector(port, name);
    await first.start();
    await first.waitFor('FLYING', 20000).catch((e) => assert.fail(e.message + dump(first, r)));
    await second.start();
    await second.waitFor('FLYING', 20000).catch((e) => assert.fail(e.message + dump(second, r)));
    assert.equal(second.kiteStatus('http', name), 'FLYING');
    assert.equal(first.kiteStatus('http', name), 'FLYING');
  });

  test('nextEvents returns the kept events in order, as the event objects', async () => {
    const c = connector(await freePort(), 'events.' + DOMAIN);
    const seen = [];
    c.on('event', (ev) => seen.push(ev));
    await c.start();
    const deadline = Date.now() + 10000;
    while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const got = c.nextEvents(0, 512);
    assert.ok(got.length >= 2, JSON.stringify(got));
    assert.deepEqual(got.map((e) => e.seq), got.map((_, i) => got[0].seq + i));
    assert.deepEqual(got.slice(0, seen.length), seen.slice(0, got.length));
    assert.deepEqual(c.nextEvents(got[0].seq, 1), [got[1]]);
    assert.deepEqual(c.nextEvents(got[got.length - 1].seq + 1000), []);
    assert.throws(() => c.nextEvents(-1), TypeError);
    assert.throws(() => c.nextEvents(0, 'x'), TypeError);
    await c.stop();
    assert.throws(() => c.nextEvents(), (e) => e instanceof PageKiteError && e.code === 'PK_ESTATE');
  });

  test('statusName is pagekite_status_name', () => {
    for (const [name, code] of Object.entries(Status)) assert.equal(statusName(code), name);
    assert.equal(statusName(12345), 'UNKNOWN');
    assert.equal(statusName(-1), 'UNKNOWN');
    assert.throws(() => statusName('FLYING'), TypeError);
  });

  test('addKite: originPort/originHost, as in every binding', () => {
    const c = new Connector({ appId: 'node-names', flags: plainFlags });
    managers.push(c);
    c.addKite({ name: 'new.' + DOMAIN, secret: SECRET, originHost: '127.0.0.1',
      originPort: 8080, publicPort: 8081 });
    assert.throws(() => c.addKite({ name: 'both.' + DOMAIN, secret: SECRET, port: 1,
      originPort: 2 }), TypeError);
    assert.throws(() => c.addKite({ name: 'none.' + DOMAIN, secret: SECRET }),
      /kite\.originPort must be an integer/);
    assert.deepEqual(c.kites().map((k) => [k.proto, k.name]), [['http-8081', 'new.' + DOMAIN]]);
    assert.match(c.log.join('\n'), /new\.example\.test.*127\.0\.0\.1:8080/);
  });

  test('addKite: port and host still work, with one DeprecationWarning each', () => {
    // In a child process, so that the warnings it prints are checked, not shown.
    const code = `
      const { Connector, Flags } = require('.');
      const c = new Connector({ flags: Flags.WITH_IPV4 });
      c.addKite({ name: 'old.${DOMAIN}', secret: 's', host: '127.0.0.1', port: 8080 });
      c.addKite({ name: 'old2.${DOMAIN}', secret: 's', port: 8081 });
      console.log(c.log.filter((l) => /Kite http:/.test(l)).join('\\n'));
      c.stop();`;
    const r = spawnSync(process.execPath, ['-e', code], { cwd: path.join(__dirname, '..'),
      encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /old\.example\.test\S* -> 127\.0\.0\.1:8080/);
    assert.match(r.stdout, /old2\.example\.test\S* -> localhost:8081/);
    const warnings = r.stderr.match(/\[PAGEKITE_DEP_KITE_\w+\] DeprecationWarning[^\n]*/g);
    assert.deepEqual(warnings.sort(), [
      '[PAGEKITE_DEP_KITE_HOST] DeprecationWarning: addKite({ host }) is deprecated: use originHost',
      '[PAGEKITE_DEP_KITE_PORT] DeprecationWarning: addKite({ port }) is deprecated: use originPort']);
  });
});
