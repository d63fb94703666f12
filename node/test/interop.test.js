'use strict';
// Our Node connector behind Debian's pagekite.py relay.
const assert = require('assert/strict');
const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { test } = require('node:test');

const { Connector } = require('..');
const { DOMAIN, SECRET, plainFlags, freePort, sha256, startOrigin, request, dump } = require('../test-support/helpers');

function findPagekite() {
  const r = spawnSync('sh', ['-c', 'command -v pagekite'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

const PAGEKITE = findPagekite();

function waitForPort(port, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error('pagekite exited: ' + child.exitCode));
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(); });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`port ${port} not open after ${timeoutMs} ms`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

test('our Node connector flies behind pagekite.py (--isfrontend)',
  { skip: PAGEKITE ? false : 'pagekite (pagekite.py) is not installed: apt-get install pagekite' },
  async () => {
    const origin = await startOrigin({ bigSize: 2 * 1024 * 1024 });
    const port = await freePort();
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'pk-node-interop-'));
    const logFile = path.join(home, 'relay.log');
    const out = fs.openSync(logFile, 'w');
    const relay = spawn(PAGEKITE, ['--clean', '--isfrontend', '--host=127.0.0.1',
      `--ports=${port}`, '--protos=http', `--domain=http:*.${DOMAIN}:${SECRET}`, '--nullui',
      '--nocrashreport', '--logfile=stdio'],
    { env: { ...process.env, HOME: home, PYTHONUNBUFFERED: '1' }, stdio: ['ignore', out, out] });
    const relayLog = () => fs.readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n');
    const c = new Connector({ appId: 'node-interop', flags: plainFlags }); // pagekite.py: plain
    const seen = [];
    c.on('status', (n) => seen.push(n));
    try {
      await waitForPort(port, relay, 20000);
      const name = 'interop.' + DOMAIN;
      c.addKite({ name, secret: SECRET, originHost: '127.0.0.1', originPort: origin.port });
      c.addFrontend('127.0.0.1', port);
      await c.start();
      await c.waitFor('FLYING', 30000).catch((e) => {
        throw new Error(e.message + '\n' + dump(c) + '\n--- pagekite.py\n' + relayLog());
      });
      assert.deepEqual(seen.slice(0, 3), ['STARTUP', 'CONNECTING', 'FLYING']);
      let page = null;
      for (let i = 0; i < 50 && !(page && page.status === 200); i++) {
        page = await request(port, name, '/', { timeout: 10000 });
        if (page.status !== 200) await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(page.status, 200, relayLog());
      assert.deepEqual(page.body, origin.index);
      const big = await request(port, name, '/big', { timeout: 30000 });
      assert.equal(big.status, 200);
      assert.equal(sha256(big.body), origin.bigSha256);
      assert.equal(c.counter('KITES_LIVE'), 1);
    } finally {
      await c.stop();
      relay.kill('SIGTERM');
      const killer = setTimeout(() => relay.kill('SIGKILL'), 5000);
      if (relay.exitCode === null) await new Promise((r) => relay.once('exit', r));
      clearTimeout(killer);
      fs.closeSync(out);
      fs.rmSync(home, { recursive: true, force: true });
      await origin.close();
    }
  });
