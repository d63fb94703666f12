'use strict';
// Lifecycle: processes exit by themselves after stop(), unref(), state
// errors, start failures, raw lifecycle calls while events run, misuse of the
// idiomatic layer.
const assert = require('assert/strict');
const { spawn } = require('child_process');
const path = require('path');
const net = require('net');
const { test } = require('node:test');

const { Connector, Relay, PageKiteError, binding } = require('..');
const { DOMAIN, SECRET, freePort } = require('../test-support/helpers');

const PKG = path.join(__dirname, '..');

/** Run `code` in a child node (cwd: the package, so require('pagekite') works). */
function runChild(code, { killAfterMs = 20000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-'], { cwd: PKG, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const marks = {};
    child.stdout.on('data', (d) => {
      stdout += d;
      for (const m of stdout.matchAll(/^MARK (\w+)$/gm)) marks[m[1]] = marks[m[1]] || Date.now();
    });
    child.stderr.on('data', (d) => { stderr += d; });
    const killer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr, marks, exitedAt: Date.now() });
    });
    child.stdin.end(code);
  });
}

test('a child that starts and stops a relay and a connector exits by itself within 5 s', async () => {
  const port = await freePort();
  const r = await runChild(`
    const http = require('http');
    const { Connector, Flags, Relay } = require('pagekite');
    (async () => {
      const origin = http.createServer((q, s) => s.end('ok'));
      await new Promise((res) => origin.listen(0, '127.0.0.1', res));
      const relay = new Relay();
      relay.addListener('127.0.0.1', ${port}).addDomain('http', '*.${DOMAIN}', '${SECRET}');
      await relay.start();
      const c = new Connector({ flags: Flags.WITH_IPV4 | Flags.WITH_IPV6 }); // a plain relay
      c.addKite({ name: 'child.${DOMAIN}', secret: '${SECRET}', originHost: '127.0.0.1',
                  originPort: origin.address().port });
      c.addFrontend('127.0.0.1', ${port});
      await c.start();
      await c.waitFor('FLYING', 15000);
      console.log('MARK flying');
      await c.stop();
      await relay.stop();
      origin.close();
      console.log('MARK stopped');
    })().catch((e) => { console.error(e); process.exitCode = 3; });
  `);
  assert.equal(r.signal, null, 'killed: ' + r.stderr);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.marks.flying, r.stdout + r.stderr);
  assert.ok(r.marks.stopped, r.stdout + r.stderr);
  assert.ok(r.exitedAt - r.marks.stopped < 5000,
    `exited ${r.exitedAt - r.marks.stopped} ms after stop()`);
});

test('a running manager keeps the process alive unless unref()ed', async () => {
  const port = await freePort(); // nothing listens: the connector keeps retrying
  const script = (unref) => `
    const { Connector } = require('pagekite');
    const c = new Connector();
    c.addKite({ name: 'alone.${DOMAIN}', secret: 'x', originHost: '127.0.0.1', originPort: 9 });
    c.addFrontend('127.0.0.1', ${port});
    c.start().then(() => { ${unref ? 'c.unref();' : ''} console.log('MARK started'); });
  `;
  const unrefed = await runChild(script(true), { killAfterMs: 10000 });
  assert.equal(unrefed.signal, null, 'an unref()ed manager kept the process alive');
  assert.equal(unrefed.code, 0, unrefed.stderr);
  assert.ok(unrefed.marks.started);
  const refed = await runChild(script(false), { killAfterMs: 2500 });
  assert.equal(refed.signal, 'SIGKILL', 'a running manager did not keep the process alive');
  assert.ok(refed.marks.started, refed.stderr);
});

test('start twice, stop twice, calls after stop', async () => {
  const c = new Connector();
  c.addKite({ name: 'state.' + DOMAIN, secret: 'x', originPort: 9 });
  assert.equal(c.state, 'configuring');
  assert.equal(c.status, 'STARTUP');
  await c.start();
  assert.equal(c.state, 'running');
  assert.ok(c.running);
  await assert.rejects(c.start(), PageKiteError);
  const closed = new Promise((resolve) => c.once('close', resolve));
  const p1 = c.stop();
  const p2 = c.stop();
  assert.equal(p1, p2);
  assert.equal(c.state, 'stopping');
  await p1;
  await closed;
  assert.equal(c.state, 'stopped');
  assert.ok(!c.running);
  await c.stop(); // still fine
  assert.deepEqual(c.log, []);
  assert.throws(() => c.counter('TUNNELS'), PageKiteError);
  assert.throws(() => c.setLogMask(0), PageKiteError);
  assert.throws(() => c.addKite({ name: 'late.' + DOMAIN, secret: 'x', originPort: 9 }), PageKiteError);
  await assert.rejects(c.start(), PageKiteError);
});

test('stop() before start() frees the manager', async () => {
  const r = new Relay();
  await r.stop();
  assert.equal(r.state, 'stopped');
  await assert.rejects(r.start(), PageKiteError);
});

test('a busy listening port makes start() reject with PageKiteError', async () => {
  const blocker = net.createServer();
  await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const r = new Relay();
  try {
    r.addListener('127.0.0.1', blocker.address().port);
    r.addDomain('http', '*.' + DOMAIN, SECRET);
    await assert.rejects(r.start(), (err) => {
      assert.ok(err instanceof PageKiteError);
      assert.equal(err.call, 'start');
      assert.ok(err.reason.length > 0);
      return true;
    });
    assert.equal(r.state, 'configuring');
  } finally {
    await r.stop();
    blocker.close();
  }
});

test('waitFor times out with a PageKiteError and rejects on stop', async () => {
  const c = new Connector();
  c.addKite({ name: 'wait.' + DOMAIN, secret: 'x', originPort: 9 });
  c.addFrontend('127.0.0.1', await freePort());
  await c.start();
  await assert.rejects(c.waitFor('FLYING', 300), PageKiteError);
  const pending = c.waitFor(['FLYING', 'REJECTED'], 20000);
  await c.stop();
  await assert.rejects(pending, /stopped/);
  assert.throws(() => c.waitFor('SOARING'), TypeError);
});

test('raw lifecycle calls while events run stop the event thread first', async () => {
  const port = await freePort();
  const h = binding.init('raw-events', 1, 2, 16, null, binding.PK_AS_FRONTEND_RELAY, 0);
  assert.equal(binding.addRelayListener(h, '127.0.0.1', port), 0);
  const events = [];
  assert.equal(binding.start(h, (ev) => events.push(ev)), 0);
  assert.throws(() => binding.start(h, () => {}), /already started/);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(events[0].kind, binding.PK_EVENT_STATUS);
  assert.equal(events[0].code, binding.PK_STATUS_STARTUP);
  assert.equal(events[0].seq, 0); // the status before the thread ran
  assert.ok(events.some((e) => e.kind === binding.PK_EVENT_STATUS &&
    e.code === binding.PK_STATUS_FLYING), JSON.stringify(events));
  assert.ok(events.some((e) => e.kind === binding.PK_EVENT_LOG && e.seq > 0 && e.text));
  const t0 = Date.now();
  assert.equal(binding.threadStop(h), 0);
  assert.ok(Date.now() - t0 < 3000);
  assert.equal(binding.free(h), 0);
  assert.equal(binding.getStatus(h), -1);
  await binding.stop(h); // already freed: resolves
});

test('idiomatic arguments are type-checked', () => {
  assert.throws(() => new Connector('x'), TypeError);
  assert.throws(() => new Connector({ maxConns: '10' }), TypeError);
  assert.throws(() => new Relay({ appId: 5 }), TypeError);
  assert.throws(() => new Connector({ verbosity: 1.5 }), TypeError);
  const c = new Connector();
  const r = new Relay();
  try {
    assert.throws(() => c.addKite(), TypeError);
    assert.throws(() => c.addKite({ name: 'n', secret: 's' }), TypeError); // no port
    assert.throws(() => c.addKite({ name: 5, secret: 's', originPort: 80 }), TypeError);
    assert.throws(() => c.addKite({ name: 'n', secret: 's', originPort: 70000 }), RangeError);
    assert.throws(() => c.addFrontend(null, 80), TypeError);
    assert.throws(() => c.addFrontend('127.0.0.1', '80'), TypeError);
    assert.throws(() => c.enableHttpForwardingHeaders(1), TypeError);
    assert.throws(() => c.counter('NOPE'), TypeError);
    assert.throws(() => c.setLogMask('all'), TypeError);
    assert.throws(() => r.addListener(5, 80), TypeError);
    assert.throws(() => r.addDomain('http', null, 's'), TypeError);
    assert.throws(() => r.setTls('cert.pem'), TypeError);
    assert.throws(() => r.enableLuaPlugins({ settings: 'a=b' }), TypeError);
    // A library error is a PageKiteError with the library's reason.
    assert.throws(() => r.setTls('/nonexistent/cert.pem', '/nonexistent/key.pem'), (err) => {
      assert.ok(err instanceof PageKiteError);
      assert.equal(err.call, 'setTls');
      assert.ok(err.message.includes(err.reason));
      return true;
    });
    // Relay.addListener with a function is still EventEmitter's.
    const onStatus = () => {};
    assert.equal(r.addListener('status', onStatus), r);
    assert.equal(r.listenerCount('status'), 1);
    assert.equal(c.enableHttpForwardingHeaders(true), c);
    assert.equal(typeof c.setHousekeepingInterval({ min: 30, max: 600 }).max, 'number');
  } finally {
    c.stop();
    r.stop();
  }
});
