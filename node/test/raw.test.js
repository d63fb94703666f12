'use strict';
// The raw binding against spec/pagekite.toml: every function and constant is
// there, failure values with a NULL manager, TypeError for wrong argument
// types (the library is never reached with them).
const assert = require('assert/strict');
const { execFileSync } = require('child_process');
const path = require('path');
const { test } = require('node:test');

const pk = require('..');

const { binding } = pk;
const SPEC = path.join(__dirname, '..', '..', 'spec', 'pagekite.toml');
const spec = JSON.parse(execFileSync('python3', ['-c', [
  'import json, sys, tomllib',
  'd = tomllib.load(open(sys.argv[1], "rb"))',
  'print(json.dumps({"functions": d["functions"], "constants": d["constants"]}))',
].join('\n'), SPEC], { encoding: 'utf8' }));
const HAND_WRITTEN = ['start', 'stop', 'ref', 'unref'];

const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
const nullable = (a) => (a.type === 'const char *' || a.type === 'char **') && a.doc.includes('NULL');
// An out-array of a spec struct is not a JS argument (the call returns the
// array); the int after it is its length (1..1024).
const isOut = (a) => a.type.startsWith('pagekite_') && a.type.endsWith(' *');
function jsArgs(f) {
  const args = f.args || [];
  return args.filter((a) => !isOut(a)).map((a) => {
    const i = args.indexOf(a);
    return i > 0 && isOut(args[i - 1]) ? { ...a, length: true } : a;
  });
}

function validArg(a, mgr) {
  switch (a.type) {
    case 'pagekite_mgr': return mgr;
    case 'int': return a.length ? 1 : 0;
    case 'long long': return 0;
    case 'const char *': return nullable(a) ? null : 'x';
    case 'char **': return nullable(a) ? null : [];
    default: throw new Error('type not covered by this test: ' + a.type);
  }
}

function badArgs(a) {
  switch (a.type) {
    case 'pagekite_mgr': return [undefined, 0, 'mgr', {}, [], () => {}, Object.freeze({})];
    case 'int': case 'long long':
      return [undefined, null, '1', 1.5, NaN, Infinity, {}, true, 10n, [1]];
    case 'const char *': return [5, {}, ['x'], true, Symbol('x'), 'a\0b']
      .concat(nullable(a) ? [] : [undefined, null]);
    case 'char **': return ['x', [1], [null], ['a', 2], {}, 5, 'a\0b']
      .concat(nullable(a) ? [] : [undefined, null]);
    default: throw new Error('type not covered by this test: ' + a.type);
  }
}

const fresh = () => binding.init('node-raw-test', 2, 2, 8, null, binding.PK_WITH_DEFAULTS, 0);

test('the spec lists functions and constants', () => {
  assert.ok(spec.functions.length >= 35, 'spec has ' + spec.functions.length + ' functions');
  assert.ok(spec.constants.length >= 50);
});

test('every spec function is on the binding under its node name, and nothing else', () => {
  for (const f of spec.functions) {
    assert.equal(typeof binding[f.node], 'function', `${f.c} -> binding.${f.node} missing`);
  }
  const fns = Object.keys(binding).filter((k) => typeof binding[k] === 'function').sort();
  assert.deepEqual(fns, [...spec.functions.map((f) => f.node), ...HAND_WRITTEN].sort());
});

test('every spec constant has its value, read-only', () => {
  for (const c of spec.constants) {
    assert.ok(c.name in binding, c.name + ' missing');
    assert.equal(binding[c.name], c.value, c.name);
    assert.equal(typeof binding[c.name], c.type === 'int' ? 'number' : 'string', c.name);
  }
  assert.throws(() => { binding.PK_STATUS_FLYING = 1; }, TypeError);
  assert.equal(binding.PK_STATUS_FLYING, 40);
  const consts = Object.keys(binding).filter((k) => typeof binding[k] !== 'function').sort();
  assert.deepEqual(consts, spec.constants.map((c) => c.name).sort());
});

test('the idiomatic constant tables come from the binding', () => {
  assert.equal(pk.Status.FLYING, binding.PK_STATUS_FLYING);
  assert.equal(pk.Status.REJECTED, binding.PK_STATUS_REJECTED);
  assert.equal(pk.Flags.AS_FRONTEND_RELAY, binding.PK_AS_FRONTEND_RELAY);
  assert.equal(pk.LogMask.NORMAL, binding.PK_LOG_NORMAL);
  assert.equal(pk.Counter.STREAMS_TOTAL, binding.PK_COUNTER_STREAMS_TOTAL);
  assert.equal(pk.TlsVerify.PEER, binding.PK_TLS_VERIFY_PEER);
  assert.equal(pk.VERSION, binding.PK_VERSION);
  assert.equal(pk.libraryVersionNumber, binding.PK_VERSION_NUMBER);
  assert.equal(binding.versionNumber(), binding.PK_VERSION_NUMBER);
  const statusConsts = spec.constants.filter((c) => c.name.startsWith('PK_STATUS_'));
  assert.equal(Object.keys(pk.Status).length, statusConsts.length);
  for (const c of statusConsts) assert.equal(pk.statusName(c.value), c.name.slice(10));
});

test('with a NULL manager every call fails with its documented value and a reason', () => {
  let checked = 0;
  for (const f of spec.functions) {
    const args = jsArgs(f);
    if (!args.some((a) => a.type === 'pagekite_mgr')) continue;
    const r = binding[f.node](...args.map((a) => validArg(a, null)));
    const failure = f.returns.failure || '';
    if (failure.startsWith('-1')) assert.equal(r, -1, f.c);
    else if (failure.startsWith('NULL')) assert.equal(r, null, f.c);
    else if (failure.startsWith('nonzero')) assert.notEqual(r, 0, f.c);
    else if (f.returns.type === 'void') assert.equal(r, undefined, f.c);
    else assert.fail(`${f.c}: failure value ${JSON.stringify(failure)} not covered`);
    if (f.returns.type !== 'void') {
      assert.match(binding.lastError(), /\S/, f.c + ' left no reason');
      assert.notEqual(binding.lastError(), 'no error', f.c);
    }
    checked++;
  }
  assert.ok(checked >= 30, 'only ' + checked + ' functions take a manager');
});

test('init calls return handles that free() releases once', () => {
  const handles = [
    fresh(),
    binding.init('relay', 2, 2, 8, null, binding.PK_AS_FRONTEND_RELAY, -1),
    binding.initPagekitenet('t', 1, 8, binding.PK_WITHOUT_SERVICE_FRONTENDS, -1),
    binding.initWhitelabel('t', 1, 8, binding.PK_WITHOUT_SERVICE_FRONTENDS, -1, 'example.test'),
  ];
  for (const h of handles) {
    assert.equal(typeof h, 'object');
    assert.ok(h !== null, binding.lastError());
    assert.ok(Object.isFrozen(h));
    assert.equal(binding.getStatus(h), binding.PK_STATUS_STARTUP);
    assert.equal(binding.free(h), 0);
    // A freed handle is a NULL manager from now on: failure values, no crash.
    assert.equal(binding.free(h), -1);
    assert.equal(binding.getStatus(h), -1);
    assert.equal(binding.getLog(h), null);
    assert.equal(binding.addFrontend(h, '127.0.0.1', 1), -1);
    assert.equal(binding.threadStart(h), -1);
    assert.equal(binding.getCounter(h, binding.PK_COUNTER_TUNNELS), -1);
  }
  assert.equal(binding.initWhitelabel('t', 1, 8, 0, -1, ''), null);
  assert.match(binding.lastError(), /whitelabel/);
});

test('configuration calls reach the library and report through lastError', () => {
  const h = fresh();
  try {
    assert.equal(binding.addKite(h, 'http', 'raw.example.test', 0, 's', '127.0.0.1', 80), 0);
    assert.equal(binding.addKite(h, 'bogus-proto', 'raw.example.test', 0, 's', 'x', 80), -1);
    assert.notEqual(binding.lastError(), '');
    assert.equal(binding.setLogMask(h, binding.PK_LOG_ALL), 0);
    assert.equal(binding.enableHttpForwardingHeaders(h, 1), 0);
    assert.ok(binding.setHousekeepingMinInterval(h, 60) > 0);
    assert.ok(binding.setHousekeepingMaxInterval(h, 900) > 0);
    assert.equal(binding.setTlsVerify(h, binding.PK_TLS_VERIFY_NONE, null), 0);
    assert.equal(binding.poll(h, 0), -1, 'poll before start');
    assert.equal(binding.tick(h), -1, 'tick before start');
    assert.match(binding.getLog(h), /initialized/);
    assert.equal(binding.getCounter(h, binding.PK_COUNTER_KITES_LIVE), 0);
  } finally {
    assert.equal(binding.free(h), 0);
  }
});

test('wrong argument types throw TypeError for every argument of every function', () => {
  const h = fresh();
  let cases = 0;
  try {
    for (const f of spec.functions) {
      const args = jsArgs(f);
      const valid = args.map((a) => validArg(a, h));
      args.forEach((a, i) => {
        for (const bad of badArgs(a)) {
          const argv = valid.slice();
          argv[i] = bad;
          assert.throws(() => binding[f.node](...argv), (err) => {
            assert.ok(err instanceof TypeError, `${f.node} arg ${i}: ${err}`);
            assert.ok(err.message.includes(f.node), err.message);
            assert.ok(err.message.includes(camel(a.name)), err.message);
            return true;
          }, `${f.node}(${a.name} = ${String(bad)}) did not throw`);
          cases++;
        }
      });
      // One argument too many is a TypeError too.
      assert.throws(() => binding[f.node](...valid, 0), TypeError, f.node + ' with extra arg');
      cases++;
    }
    // The handle survived all of it, still configuring.
    assert.equal(binding.getStatus(h), binding.PK_STATUS_STARTUP);
  } finally {
    binding.free(h);
  }
  assert.ok(cases > 250, cases + ' cases');
});

test('integers outside 32 bits throw RangeError', () => {
  assert.throws(() => binding.setLogMask(null, 2 ** 31), RangeError);
  assert.throws(() => binding.setLogMask(null, -(2 ** 31) - 1), RangeError);
  assert.equal(binding.setLogMask(null, -(2 ** 31)), -1);
});

test('the hand-written calls check their arguments too', () => {
  const h = fresh();
  try {
    for (const fn of HAND_WRITTEN) {
      assert.throws(() => binding[fn](), TypeError, fn);
      assert.throws(() => binding[fn](null), TypeError, fn);
      assert.throws(() => binding[fn]({}), TypeError, fn);
      assert.throws(() => binding[fn]('x'), TypeError, fn);
    }
    assert.throws(() => binding.start(h), TypeError);
    assert.throws(() => binding.start(h, 'not a function'), TypeError);
    assert.throws(() => binding.start(h, () => {}, 1), TypeError);
  } finally {
    binding.free(h);
  }
});
