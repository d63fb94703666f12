'use strict';
// Events from pagekite_next_events (issue 16): the addon's event thread
// waits in pagekite_next_events and the manager emits 'event' for each, plus
// 'status', 'log', 'kite', 'tunnel', 'streams' and 'lost'.  Log lines are
// driven from JS: a raw setTlsVerify() after start() fails and logs one line.
const assert = require('assert/strict');
const { test } = require('node:test');

const { Connector, Relay, binding } = require('..');
const { DOMAIN, SECRET, freePort, plainFlags, startOrigin } = require('../test-support/helpers');

const N_LOGGED = 10000;

function handleOf(m) {
  return m[Object.getOwnPropertySymbols(m).find((s) => s.description === 'handle')];
}

/** One failing raw call after start(): one PK_EVENT_LOG line. */
function logOne(m, i) {
  assert.equal(binding.setTlsVerify(handleOf(m), i % 2, null), -1);
}

function until(pred, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const check = () => {
      if (pred()) return resolve();
      if (Date.now() - t0 > timeoutMs) return reject(new Error('timed out'));
      setTimeout(check, 2);
    };
    check();
  });
}

test('10,000 log events arrive in order, without gaps, as event and log', async () => {
  const c = new Connector({ flags: plainFlags });
  c.setLogMask(binding.PK_LOG_ERRORS);
  const events = [];
  const logs = [];
  const kinds = new Set();
  c.on('event', (ev) => events.push(ev));
  c.on('log', (text, meta) => logs.push({ text, meta }));
  c.on('lost', () => kinds.add('lost'));
  await c.start();
  const ours = () => logs.filter((l) => l.text.startsWith('pagekite_set_tls_verify')).length;
  for (let i = 0; i < N_LOGGED; i++) {
    logOne(c, i);
    if (i % 200 === 199) await until(() => ours() === i + 1); // the ring keeps 512
  }
  await until(() => ours() === N_LOGGED);
  await c.stop();
  const seqs = events.map((e) => e.seq);
  assert.deepEqual(seqs, seqs.map((_, i) => seqs[0] + i), 'gap or reorder in seq');
  assert.ok(!kinds.has('lost'));
  const logEvents = events.filter((e) => e.kind === 'log');
  assert.equal(logEvents.length, logs.length);
  logs.forEach((l, i) => {
    assert.equal(l.text, logEvents[i].text);
    assert.equal(l.meta.seq, logEvents[i].seq);
    assert.equal(l.meta.time, Math.floor(logEvents[i].timeMs / 1000));
  });
  assert.ok(Math.abs(logs[logs.length - 1].meta.time - Date.now() / 1000) < 60);
});

test('a relay and a connector emit status, kite, tunnel and streams events', async () => {
  const origin = await startOrigin({ bigSize: 1024 });
  const port = await freePort();
  const relay = new Relay();
  relay.addListener('127.0.0.1', port).addDomain('http', `*.${DOMAIN}`, SECRET);
  const c = new Connector({ flags: plainFlags });
  const name = `ev.${DOMAIN}`;
  c.addKite({ name, secret: SECRET, originHost: '127.0.0.1', originPort: origin.port });
  c.addFrontend('127.0.0.1', port);
  const seen = { status: [], kite: [], tunnel: [], relayKite: [] };
  c.on('status', (n, code) => seen.status.push([n, code]));
  c.on('kite', (ev) => seen.kite.push(ev));
  c.on('tunnel', (ev) => seen.tunnel.push(ev));
  relay.on('kite', (ev) => seen.relayKite.push(ev));
  try {
    await relay.start();
    await c.start();
    await c.waitFor('FLYING', 15000);
    await until(() => seen.kite.length && seen.tunnel.length && seen.relayKite.length);
  } finally {
    await c.stop();
    await relay.stop();
    await origin.close();
  }
  assert.deepEqual(seen.status[seen.status.length - 1], ['FLYING', binding.PK_STATUS_FLYING]);
  assert.equal(seen.status[0][0], 'STARTUP');
  const k = seen.kite.find((e) => e.status === 'FLYING');
  assert.ok(k, JSON.stringify(seen.kite));
  assert.equal(k.name, name);
  assert.equal(k.proto, 'http');
  assert.ok(seen.tunnel.some((e) => e.up === true && e.code === 1), JSON.stringify(seen.tunnel));
  assert.ok(seen.relayKite.some((e) => e.name === name && e.status === 'FLYING'));
});

test('a reader that falls behind gets a lost event with the count', async () => {
  const c = new Connector({ flags: plainFlags });
  c.setLogMask(binding.PK_LOG_ERRORS);
  const events = [];
  c.on('event', (ev) => events.push(ev));
  await c.start();
  await until(() => events.some((e) => e.kind === 'status'));
  // The event thread reads on its own: a second, raw reader falls behind.
  const h = handleOf(c);
  const first = binding.nextEvents(h, 0, 1, 0)[0].seq;
  for (let i = 0; i < 600; i++) logOne(c, i);
  const evs = binding.nextEvents(h, first, 4, 0);
  await c.stop();
  assert.equal(evs[0].kind, binding.PK_EVENT_LOST);
  assert.ok(evs[0].code > 0 && evs[0].code === evs[1].seq - first - 1);
});
