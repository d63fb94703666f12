'use strict';
// Typed errors: each PK_E* code reaches a PageKiteError with code 'PK_E...'
// and errno the number (pagekite_last_error_code()); the module's own state
// checks say PK_ESTATE.  Loopback only.
const assert = require('assert/strict');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { test } = require('node:test');

const { Connector, PageKiteError, Relay, binding } = require('..');
const { plainFlags } = require('../test-support/helpers');

/** fn() throws a PageKiteError with code name, its errno, and a message matching re. */
function throwsCode(fn, name, re) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof PageKiteError, String(err));
    assert.equal(err.code, name);
    assert.equal(err.errno, binding[name]);
    assert.match(err.message, re);
    return true;
  });
}

test('every code has a negative number in the binding', () => {
  const names = ['PK_EINVAL', 'PK_ESTATE', 'PK_ENOTFOUND', 'PK_EEXIST', 'PK_ENOMEM', 'PK_ENETWORK',
    'PK_ETLS', 'PK_EREJECTED', 'PK_ELIMIT', 'PK_EIO', 'PK_EUNSUPPORTED'];
  for (const n of names) assert.ok(binding[n] < 0, n);
  assert.equal(new Set(names.map((n) => binding[n])).size, names.length);
  assert.equal(new PageKiteError('x', 'c', binding.PK_EREJECTED).code, 'PK_EREJECTED');
  const unknown = new PageKiteError('x', 'c', -999);
  assert.equal(unknown.code, 'ERR_PAGEKITE');
  assert.equal(unknown.errno, undefined);
});

test('library failures carry their code', async () => {
  throwsCode(() => new Connector({ maxConns: 0 }), 'PK_EINVAL', /max_conns 0/);
  const c = new Connector({ maxKites: 1, flags: plainFlags });
  throwsCode(() => c.setProxy('ftp://p.test:21'), 'PK_EUNSUPPORTED', /ftp/);
  throwsCode(() => c.kiteStatus('http', 'nobody.test'), 'PK_ENOTFOUND', /nobody\.test/);
  c.addKite({ name: 'a.example.test', secret: 's', originPort: 8000 });
  throwsCode(() => c.addKite({ name: 'b.example.test', secret: 's', originPort: 8000 }), 'PK_ELIMIT',
    /max_kites/);
  throwsCode(() => c.tick(), 'PK_ESTATE', /not running/);
  await c.stop();
  const r = new Relay({ maxKites: 1, maxFrontends: 1 });
  throwsCode(() => r.addDomain('http', 'a b', 's'), 'PK_EINVAL', /pattern/);
  throwsCode(() => r.setTls('/nonexistent/c.pem', '/nonexistent/k.pem'), 'PK_EIO',
    /\/nonexistent\/c\.pem/);
  const junk = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pk-')), 'junk.pem');
  fs.writeFileSync(junk, 'not a certificate\n');
  throwsCode(() => r.setTls(junk, junk), 'PK_ETLS', /junk\.pem/);
  r.addPortAlias(8080, 80);
  throwsCode(() => r.addPortAlias(8080, 81), 'PK_EEXIST', /8080/);
  await r.stop();
});

test('a busy port is PK_ENETWORK; calls after start are PK_ESTATE', async () => {
  const busy = net.createServer();
  await new Promise((resolve) => busy.listen(0, '127.0.0.1', resolve));
  const r = new Relay({ maxKites: 1, maxFrontends: 1 });
  r.addListener('127.0.0.1', busy.address().port);
  await assert.rejects(r.start(), (err) => err.code === 'PK_ENETWORK' &&
    err.errno === binding.PK_ENETWORK && /cannot listen/.test(err.message));
  await r.stop();
  busy.close();
  const ok = new Relay({ maxKites: 1, maxFrontends: 1 });
  ok.addListener('127.0.0.1', 0);
  await ok.start();
  try {
    throwsCode(() => ok.setDuplicates(true), 'PK_ESTATE', /before start/);
    ok.addDomain('http', '*.late.test', 's'); // domains change at any time
    ok.removeDomain('http', '*.late.test');
    throwsCode(() => ok.removeDomain('http', '*.late.test'), 'PK_ENOTFOUND', /no domain/);
  } finally {
    await ok.stop();
  }
});
