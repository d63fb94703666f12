'use strict';
// node/README.md's example, run exactly as written.
const assert = require('assert/strict');
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { test } = require('node:test');

const PKG = path.join(__dirname, '..');

test('the README example runs as written', () => {
  const readme = fs.readFileSync(path.join(PKG, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.equal(blocks.length, 1, 'expected one js block in README.md');
  const t0 = Date.now();
  // cwd is the package, so require('pagekite') resolves to it (package self-reference).
  const r = spawnSync(process.execPath, ['-'], { cwd: PKG, input: blocks[0], encoding: 'utf8',
    timeout: 30000 });
  assert.equal(r.error, undefined);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /connector status: STARTUP\nconnector status: CONNECTING\nconnector status: FLYING\n/);
  assert.match(r.stdout, /through the kite: Hello from the origin!/);
  assert.match(r.stdout, /kitesLive: 1/);
  assert.ok(Date.now() - t0 < 20000, 'the example took too long to exit');
});
