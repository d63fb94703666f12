'use strict';
// pagekite - Node.js binding for libpagekite (reborn).
//
// The raw binding (one function per C call, generated from spec/pagekite.toml)
// is exported as `binding`; this file adds the idiomatic layer: Connector and
// Relay classes with option objects, promises for start/stop, 'status' and
// 'log' events, and PageKiteError carrying pagekite_last_error().

const { EventEmitter } = require('events');
const path = require('path');

function loadBinding() {
  const tried = [];
  for (const type of ['Release', 'Debug']) {
    const file = path.join(__dirname, 'build', type, 'pagekite.node');
    try {
      return require(file);
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') throw e;
      tried.push(file);
    }
  }
  throw new Error('pagekite: the native addon is not built (looked for ' + tried.join(', ') +
    '); run `npm run build` in ' + __dirname);
}

const binding = loadBinding();

function constantsWithPrefix(prefix) {
  const out = {};
  for (const [key, value] of Object.entries(binding)) {
    if (key.startsWith(prefix) && typeof value === 'number') out[key.slice(prefix.length)] = value;
  }
  return Object.freeze(out);
}

/** Status codes by name: STARTUP, CONNECTING, FLYING, ... */
const Status = constantsWithPrefix('PK_STATUS_');
/** Log mask bits by name: ERRORS, NORMAL, DEBUG, ALL, ... */
const LogMask = constantsWithPrefix('PK_LOG_');
/** States of one kite by name: WAITING, FLYING, REJECTED, DUPLICATE. */
const KiteStatus = constantsWithPrefix('PK_KITE_STATUS_');
/** Counters by name: KITES_LIVE, TUNNELS, ... */
const Counter = constantsWithPrefix('PK_COUNTER_');
/** TLS verification modes: NONE, PEER. */
const TlsVerify = constantsWithPrefix('PK_TLS_VERIFY_');
/** Init flags by name: WITH_DEFAULTS, WITH_SSL, AS_FRONTEND_RELAY, ... */
const Flags = Object.freeze(Object.fromEntries(Object.entries(binding)
  .filter(([k, v]) => typeof v === 'number' && /^PK_(WITH|WITHOUT|AS)_/.test(k))
  .map(([k, v]) => [k.slice(3), v])));

/** Kinds of events by name: STATUS, LOG, KITE, TUNNEL, STREAMS, LOST, EXIT. */
const EventKind = Object.freeze(Object.fromEntries(Object.entries(constantsWithPrefix('PK_EVENT_'))
  .filter(([name]) => name !== 'VERSION')));
const EVENT_KIND_NAMES = new Map(Object.entries(EventKind)
  .map(([name, code]) => [code, name.toLowerCase()]));

const KITE_STATUS_NAMES = new Map(Object.entries(KiteStatus).map(([name, code]) => [code, name]));

/** The name of a status code ('FLYING' for 40, 'UNKNOWN' for no status): pagekite_status_name(). */
function statusName(code) {
  return binding.statusName(int(code, 'code'));
}

function counterKey(name) {
  return name.toLowerCase().replace(/_([a-z])/g, (_, c) => c.toUpperCase());
}

/** Error code names by number: PK_EINVAL, PK_ESTATE, ... (the spec's error group). */
const ERROR_NAMES = new Map(Object.keys(binding).filter((k) => /^PK_E[A-Z]+$/.test(k))
  .map((k) => [binding[k], k]));

/**
 * An error reported by libpagekite; message is pagekite_last_error().  code
 * is the name of its PK_E* code ('PK_EINVAL', ...) and errno the number
 * (pagekite_last_error_code()); 'ERR_PAGEKITE' and undefined for a code this
 * module does not know.
 */
class PageKiteError extends Error {
  constructor(message, call, errno) {
    super(call ? call + ': ' + message : message);
    this.name = 'PageKiteError';
    this.code = ERROR_NAMES.get(errno) || 'ERR_PAGEKITE';
    this.errno = ERROR_NAMES.has(errno) ? errno : undefined;
    this.call = call || null;
    this.reason = message;
  }
}

/** The error of the library call that just failed on this thread. */
function libraryError(call) {
  return new PageKiteError(binding.lastError(), call, binding.lastErrorCode());
}

// ---- argument checks with the idiomatic names (TypeError, like the raw layer)

function typeError(name, what, value) {
  const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
  const err = new TypeError(`${name} must be ${what}, got ${got}`);
  err.code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

function int(value, name) {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw typeError(name, 'an integer', value);
  if (value < -2147483648 || value > 2147483647) {
    const err = new RangeError(`${name} must be a 32-bit signed integer, got ${value}`);
    err.code = 'ERR_OUT_OF_RANGE';
    throw err;
  }
  return value;
}

function port(value, name) {
  int(value, name);
  if (value < 0 || value > 65535) {
    const err = new RangeError(`${name} must be a port number (0-65535), got ${value}`);
    err.code = 'ERR_OUT_OF_RANGE';
    throw err;
  }
  return value;
}

function str(value, name, nullable = false) {
  if (nullable && (value === null || value === undefined)) return null;
  if (typeof value !== 'string') throw typeError(name, nullable ? 'a string or null' : 'a string', value);
  return value;
}

function bool(value, name) {
  if (typeof value !== 'boolean') throw typeError(name, 'a boolean', value);
  return value ? 1 : 0;
}

function options(value, name) {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw typeError(name, 'an object', value);
  }
  return value;
}

function opt(o, key, fallback) {
  return o[key] === undefined ? fallback : o[key];
}

const kHandle = Symbol('handle');

const warnedRenames = new Set();

// o[key], or else the deprecated o[oldKey] (warning once per process), or fallback.
function renamed(o, key, oldKey, fallback) {
  if (o[oldKey] === undefined) return opt(o, key, fallback);
  if (o[key] !== undefined) {
    throw typeError(oldKey, `left out when ${key} is given (it is ${key}'s deprecated name)`,
      o[oldKey]);
  }
  if (!warnedRenames.has(oldKey)) {
    warnedRenames.add(oldKey);
    process.emitWarning(`addKite({ ${oldKey} }) is deprecated: use ${key}`,
      { type: 'DeprecationWarning', code: 'PAGEKITE_DEP_KITE_' + oldKey.toUpperCase() });
  }
  return o[oldKey];
}

// A pagekite_event as the 'event' events and nextEvents() carry it.
function eventObject(raw) {
  return { kind: EVENT_KIND_NAMES.get(raw.kind) || 'kind' + raw.kind, seq: raw.seq,
    timeMs: raw.timeMs, code: raw.code, proto: raw.proto, name: raw.name, text: raw.text };
}

/**
 * What Connector and Relay share: the manager's lifecycle (configure, start,
 * stop), its status and log as events, counters and the settings allowed at
 * any time.
 */
class Manager extends EventEmitter {
  constructor(opts, defaults, roleFlags) {
    super();
    const o = options(opts, 'options');
    const appId = str(opt(o, 'appId', defaults.appId), 'options.appId');
    const maxKites = int(opt(o, 'maxKites', defaults.maxKites), 'options.maxKites');
    const maxFrontends = int(opt(o, 'maxFrontends', opt(o, 'maxListeners', defaults.maxFrontends)),
      'options.maxFrontends');
    const maxConns = int(opt(o, 'maxConns', defaults.maxConns), 'options.maxConns');
    const flags = int(opt(o, 'flags', defaults.flags), 'options.flags');
    const verbosity = int(opt(o, 'verbosity', 0), 'options.verbosity');
    const dyndnsUrl = str(opt(o, 'dyndnsUrl', null), 'options.dyndnsUrl', true);
    const h = binding.init(appId, maxKites, maxFrontends, maxConns, dyndnsUrl, flags | roleFlags,
      verbosity);
    if (!h) throw libraryError('init');
    this[kHandle] = h;
    this._state = 'configuring';
    this._status = binding.getStatus(h);
    this._refed = true;
    this._stopping = null;
  }

  /** 'configuring', 'running', 'stopping' or 'stopped'. */
  get state() {
    return this._state;
  }

  /** True between a successful start() and stop(). */
  get running() {
    return this._state === 'running';
  }

  /** Current status name ('STARTUP', 'CONNECTING', 'FLYING', ...). */
  get status() {
    return statusName(this.statusCode);
  }

  /** Current status as a PK_STATUS_* number. */
  get statusCode() {
    if (this._state === 'configuring' || this._state === 'running') {
      const s = binding.getStatus(this[kHandle]);
      if (s >= 0) return s;
    }
    return this._status;
  }

  /** The recent in-memory log, oldest first ("<seq> t=<time> <text>" lines). */
  get log() {
    if (this._state === 'stopped' || this._state === 'stopping') return [];
    const text = binding.getLog(this[kHandle]);
    return text ? text.split('\n').filter((l) => l) : [];
  }

  _check(call, r) {
    if (r < 0) throw libraryError(call);
    return r;
  }

  _configure(call) {
    if (this._state !== 'configuring') {
      throw new PageKiteError('only allowed before start()', call, binding.PK_ESTATE);
    }
  }

  _alive(call) {
    if (this._state === 'stopped' || this._state === 'stopping') {
      throw new PageKiteError('the manager was stopped', call, binding.PK_ESTATE);
    }
  }

  /**
   * Start the manager's thread; 'event' (and 'status', 'log', 'kite',
   * 'tunnel', 'streams', 'lost') events follow.
   */
  async start() {
    if (this._state !== 'configuring') {
      throw new PageKiteError('already started', 'start', binding.PK_ESTATE);
    }
    const rc = binding.start(this[kHandle], (ev) => this._event(ev));
    if (rc !== 0) throw libraryError('start');
    this._state = 'running';
    if (!this._refed) binding.unref(this[kHandle]);
    return this;
  }

  // One pagekite_event from the addon's event thread (a pagekite_next_events
  // reader), in seq order; seq 0 is the status before the thread ran.
  _event(raw) {
    const ev = eventObject(raw);
    const kind = ev.kind;
    if (ev.seq > 0) this.emit('event', ev);
    if (kind === 'status') {
      this._statusEvent(ev.code);
    } else if (kind === 'log') {
      this.emit('log', ev.text, { seq: ev.seq, time: Math.floor(ev.timeMs / 1000),
        timeMs: ev.timeMs, mask: ev.code });
    } else if (kind === 'kite') {
      this.emit('kite', { ...ev, status: KITE_STATUS_NAMES.get(ev.code) || 'KITE_STATUS_' + ev.code });
    } else if (kind === 'tunnel') {
      this.emit('tunnel', { ...ev, up: ev.code === 1 });
    } else if (kind === 'streams' || kind === 'lost') {
      this.emit(kind, ev);
      // Status changes may be among the events lost: look at the status now.
      if (kind === 'lost' && this.running) this._statusEvent(this.statusCode);
    }
  }

  _statusEvent(code) {
    if (code === this._emittedStatus) return;
    this._emittedStatus = code;
    this._status = code;
    this.emit('status', statusName(code), code);
  }

  /** Stop the thread, close every connection and free the manager. */
  stop() {
    if (this._stopping) return this._stopping;
    if (this._state === 'stopped') return Promise.resolve();
    this._status = this.statusCode;
    this._state = 'stopping';
    this._stopping = binding.stop(this[kHandle]).then(
      () => {
        this._state = 'stopped';
        this.emit('close');
      },
      (err) => {
        this._state = 'stopped';
        this.emit('close');
        throw new PageKiteError(err && err.message ? err.message : String(err), 'stop');
      });
    return this._stopping;
  }

  /** Let the running manager keep the process alive (the default). */
  ref() {
    this._refed = true;
    if (this._state === 'running') binding.ref(this[kHandle]);
    return this;
  }

  /** Let the process exit even though the manager runs. */
  unref() {
    this._refed = false;
    if (this._state === 'running') binding.unref(this[kHandle]);
    return this;
  }

  /**
   * Resolve once a 'status' event reported one of `statuses` (a name or an
   * array of names); reject with a PageKiteError after timeoutMs or when
   * stopped, and at once when the status becomes REJECTED while waiting for
   * other statuses (a relay refused a kite: waiting would not change that).
   * That error has `status` 'REJECTED' and `kites` (the kites a relay
   * refused, from a Connector's kites(), with the relay's reasons).
   */
  waitFor(statuses, timeoutMs = 30000) {
    const wanted = new Set(Array.isArray(statuses) ? statuses : [statuses]);
    for (const s of wanted) {
      if (!(s in Status)) throw typeError('statuses', 'status names (' + Object.keys(Status).join(', ') + ')', s);
    }
    int(timeoutMs, 'timeoutMs');
    // The status as delivered by 'status' events, so that once this resolves
    // every event up to that status has been emitted.
    const current = statusName(this._status);
    if (wanted.has(current) && this.running) return Promise.resolve(current);
    if (current === 'REJECTED' && this.running) return Promise.reject(this._rejected(wanted));
    return new Promise((resolve, reject) => {
      const done = (fn, value) => {
        clearTimeout(timer);
        this.off('status', onStatus);
        this.off('close', onClose);
        fn(value);
      };
      const onStatus = (name) => {
        if (wanted.has(name)) done(resolve, name);
        else if (name === 'REJECTED') done(reject, this._rejected(wanted));
      };
      const onClose = () => done(reject, new PageKiteError('stopped before reaching ' +
        [...wanted].join('/'), 'waitFor'));
      const timer = setTimeout(() => done(reject, new PageKiteError(
        `status is ${this.status}, not ${[...wanted].join('/')}, after ${timeoutMs} ms\n` +
        this.log.slice(-20).join('\n'), 'waitFor')), timeoutMs);
      this.on('status', onStatus);
      this.on('close', onClose);
    });
  }

  _rejected(wanted) {
    let kites = [];
    try {
      if (typeof this.kites === 'function') {
        kites = this.kites().filter((k) => k.status === 'REJECTED' || k.status === 'DUPLICATE');
      }
    } catch (e) {
      // stopped meanwhile: no kite details
    }
    const which = kites.length ? ': ' + kites.map((k) =>
      `${k.proto}:${k.name} ${k.status}${k.reason ? ' (' + k.reason + ')' : ''}`).join(', ') : '';
    const err = new PageKiteError(`a relay rejected kites, not ${[...wanted].join('/')}${which}`,
      'waitFor', binding.PK_EREJECTED);
    err.status = 'REJECTED';
    err.kites = kites;
    return err;
  }

  /**
   * The events numbered after `after` that the manager still keeps (at most
   * `max`, oldest first; 0: from the oldest), without waiting: the same
   * objects as the 'event' events, for a reader that keeps its own place.
   * A reader more than 512 events behind gets a 'lost' event first.
   */
  nextEvents(after = 0, max = 64) {
    this._alive('nextEvents');
    if (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0) {
      throw typeError('after', 'a seq (an integer >= 0)', after);
    }
    const r = binding.nextEvents(this[kHandle], after, int(max, 'max'), 0);
    if (typeof r === 'number') this._check('nextEvents', r);
    return Array.isArray(r) ? r.map(eventObject) : [];
  }

  /** One counter, by name ('KITES_LIVE', ...) or PK_COUNTER_* number. */
  counter(which) {
    const code = typeof which === 'string' ? Counter[which] : which;
    if (typeof code !== 'number') {
      throw typeError('counter', 'a counter name (' + Object.keys(Counter).join(', ') + ') or number', which);
    }
    this._alive('counter');
    return this._check('counter', binding.getCounter(this[kHandle], int(code, 'counter')));
  }

  /** Every counter: { kitesLive, tunnels, streams, bytesIn, ... }. */
  counters() {
    const out = {};
    for (const [name, code] of Object.entries(Counter)) out[counterKey(name)] = this.counter(code);
    return out;
  }

  /**
   * Serve GET /metrics and GET /status.json over HTTP on host:port (host
   * null: 127.0.0.1; port 0: off).  Before start().
   */
  setAdminListener(host, adminPort) {
    this._configure('setAdminListener');
    this._check('setAdminListener', binding.setAdminListener(this[kHandle], str(host, 'host', true),
      int(adminPort, 'port')));
    return this;
  }

  /** The metrics in the Prometheus text format 0.0.4 (what GET /metrics serves). */
  metrics() {
    this._alive('metrics');
    const text = binding.getMetrics(this[kHandle]);
    if (typeof text !== 'string') throw libraryError('metrics');
    return text;
  }

  /** The status as JSON text (what GET /status.json serves); JSON.parse it for an object. */
  statusJson() {
    this._alive('statusJson');
    const text = binding.getStatusJson(this[kHandle]);
    if (typeof text !== 'string') throw libraryError('statusJson');
    return text;
  }

  /** Choose what is logged (a mask of LogMask bits). */
  setLogMask(mask) {
    this._alive('setLogMask');
    this._check('setLogMask', binding.setLogMask(this[kHandle], int(mask, 'mask')));
    return this;
  }

  /** Housekeeping interval bounds in seconds; returns the ones in effect. */
  setHousekeepingInterval({ min, max } = {}) {
    this._alive('setHousekeepingInterval');
    const out = {};
    if (min !== undefined) {
      out.min = this._check('setHousekeepingInterval',
        binding.setHousekeepingMinInterval(this[kHandle], int(min, 'min')));
    }
    if (max !== undefined) {
      out.max = this._check('setHousekeepingInterval',
        binding.setHousekeepingMaxInterval(this[kHandle], int(max, 'max')));
    }
    return out;
  }

  /** Add X-Forwarded-For / X-Forwarded-Proto to requests passed to origins. */
  enableHttpForwardingHeaders(enable = true) {
    this._alive('enableHttpForwardingHeaders');
    this._check('enableHttpForwardingHeaders',
      binding.enableHttpForwardingHeaders(this[kHandle], bool(enable, 'enable')));
    return this;
  }

  /** Randomize relay ping times (testing aid). */
  enableFakePing(enable = true) {
    this._alive('enableFakePing');
    this._check('enableFakePing', binding.enableFakePing(this[kHandle], bool(enable, 'enable')));
    return this;
  }

  /** Crash the process (for a core dump) if the loop hangs; before start(). */
  enableWatchdog(enable = true) {
    this._configure('enableWatchdog');
    this._check('enableWatchdog', binding.enableWatchdog(this[kHandle], bool(enable, 'enable')));
    return this;
  }

  /** Turn the internal tick timer on or off (then call tick() yourself). */
  enableTickTimer(enable = true) {
    this._alive('enableTickTimer');
    this._check('enableTickTimer', binding.enableTickTimer(this[kHandle], bool(enable, 'enable')));
    return this;
  }

  /** Fire the internal tick by hand (running managers only). */
  tick() {
    this._alive('tick');
    this._check('tick', binding.tick(this[kHandle]));
    return this;
  }

  /** Let new connections evict ones idle this long (0: never). */
  setConnEvictionIdle(seconds) {
    this._alive('setConnEvictionIdle');
    this._check('setConnEvictionIdle',
      binding.setConnEvictionIdleS(this[kHandle], int(seconds, 'seconds')));
    return this;
  }

  /** OpenSSL cipher list for TLS. */
  setOpensslCiphers(ciphers) {
    this._alive('setOpensslCiphers');
    this._check('setOpensslCiphers',
      binding.setOpensslCiphers(this[kHandle], str(ciphers, 'ciphers')));
    return this;
  }

  /** Exit the process (code 100) after errors*10 problems; 0 disables. */
  setBailOnErrors(errors) {
    this._alive('setBailOnErrors');
    this._check('setBailOnErrors', binding.setBailOnErrors(this[kHandle], int(errors, 'errors')));
    return this;
  }

  /** Experimental: host Lua plugins (libraries built with Lua only); before start(). */
  enableLuaPlugins({ enableDefaults = false, settings = null } = {}) {
    this._configure('enableLuaPlugins');
    if (settings !== null && !Array.isArray(settings)) {
      throw typeError('settings', 'an array of "name=value" strings or null', settings);
    }
    this._check('enableLuaPlugins', binding.enableLuaPlugins(this[kHandle],
      bool(enableDefaults, 'enableDefaults'), settings));
    return this;
  }

  /** Experimental: load a Lua plugin script when the manager starts; before start(). */
  loadLuaPlugin(file) {
    this._configure('loadLuaPlugin');
    this._check('loadLuaPlugin', binding.loadLuaPlugin(this[kHandle], str(file, 'path')));
    return this;
  }
}

if (typeof Symbol.asyncDispose === 'symbol') {
  Manager.prototype[Symbol.asyncDispose] = function asyncDispose() {
    return this.stop();
  };
}

/** A connector: publishes local servers (kites) through front-end relays. */
class Connector extends Manager {
  constructor(opts) {
    super(opts, { appId: 'pagekite-node', maxKites: 8, maxFrontends: 4, maxConns: 1024,
      flags: binding.PK_WITH_DEFAULTS }, 0);
    this._kites = [];
  }

  /**
   * Serve kite `name` (proto: http, https, raw, websocket) from the origin
   * server originHost:originPort, proving ownership with `secret`;
   * publicPort 0 means the protocol's default.  The names are those of every
   * binding (Python's origin_port, origin_host, public_port); `port` and
   * `host`, this method's first names for the origin, still work but are
   * deprecated (a DeprecationWarning, once).
   */
  addKite(kite) {
    const k = options(kite, 'kite');
    this._alive('addKite');
    const proto = str(opt(k, 'proto', 'http'), 'kite.proto');
    const name = str(k.name, 'kite.name');
    const secret = str(k.secret, 'kite.secret');
    const publicPort = port(opt(k, 'publicPort', 0), 'kite.publicPort');
    const host = str(renamed(k, 'originHost', 'host', 'localhost'), 'kite.originHost');
    const localPort = port(renamed(k, 'originPort', 'port'), 'kite.originPort');
    this._check('addKite', binding.addKite(this[kHandle], proto, name, publicPort, secret, host,
      localPort));
    this._kites.push({ proto: publicPort ? `${proto}-${publicPort}` : proto, name });
    return this;
  }

  /** An access rule for a kite: 'ip/1.2.3.4', 'ip/1.2.3' (a /24) or 'password/USER=PASS' (pagekite.py's kite flags). */
  addKiteAccess(name, rule, publicPort = 0) {
    this._configure('addKiteAccess');
    this._check('addKiteAccess', binding.addKiteAccess(this[kHandle], str(name, 'name'),
      port(publicPort, 'publicPort'), str(rule, 'rule')));
    return this;
  }

  /**
   * Stop serving a kite added with addKite() (same proto, name, publicPort),
   * at any time, without a restart: its tunnel closes if it carried nothing
   * else.  Throws a PageKiteError (PK_ENOTFOUND) when there is no such kite.
   */
  removeKite(proto, name, publicPort = 0) {
    this._alive('removeKite');
    const pp = port(publicPort, 'publicPort');
    this._check('removeKite', binding.removeKite(this[kHandle], str(proto, 'proto'),
      str(name, 'name'), pp));
    const key = pp ? `${proto}-${pp}` : proto;
    this._kites = this._kites.filter((k) => !(k.proto === key && k.name === name));
    return this;
  }

  /**
   * Use the relay(s) that `host` resolves to; returns how many addresses.
   * With updateFromDns (the default) the name is re-resolved from time to time.
   */
  addFrontend(host, relayPort, { updateFromDns = true } = {}) {
    this._alive('addFrontend');
    return this._check('addFrontend', binding.lookupAndAddFrontend(this[kHandle],
      str(host, 'host'), port(relayPort, 'port'), bool(updateFromDns, 'updateFromDns')));
  }

  /** Forget a relay added with addFrontend(), at any time: its tunnels close. */
  removeFrontend(host, relayPort) {
    this._alive('removeFrontend');
    this._check('removeFrontend', binding.removeFrontend(this[kHandle], str(host, 'host'),
      port(relayPort, 'port')));
    return this;
  }

  /** Use the pagekite.net service's relay pool. */
  addServiceFrontends(flags = binding.PK_WITH_DEFAULTS) {
    this._configure('addServiceFrontends');
    return this._check('addServiceFrontends',
      binding.addServiceFrontends(this[kHandle], int(flags, 'flags')));
  }

  /** Use the relays of a white-label domain of the service. */
  addWhitelabelFrontends(whitelabelTld, flags = binding.PK_WITH_DEFAULTS) {
    this._configure('addWhitelabelFrontends');
    return this._check('addWhitelabelFrontends', binding.addWhitelabelFrontends(this[kHandle],
      int(flags, 'flags'), str(whitelabelTld, 'whitelabelTld')));
  }

  /** Verify relay certificates (against caFile or the system store), or not. */
  setTlsVerify(verify = true, caFile = null) {
    this._configure('setTlsVerify');
    this._check('setTlsVerify', binding.setTlsVerify(this[kHandle],
      bool(verify, 'verify') ? binding.PK_TLS_VERIFY_PEER : binding.PK_TLS_VERIFY_NONE,
      str(caFile, 'caFile', true)));
    return this;
  }

  /**
   * Also accept a relay certificate issued for `name` (pagekite.py's
   * --fe_certname); '' forgets the names added so far.  Before start().
   */
  addFrontendCertname(name) {
    this._configure('addFrontendCertname');
    this._check('addFrontendCertname',
      binding.addFrontendCertname(this[kHandle], str(name, 'name')));
    return this;
  }

  /**
   * Reach relays (and DDNS) through an outgoing proxy: http://[user:pass@]host[:port]
   * (CONNECT), socks5://... or socks5h://...; null or '' for none.  Before start().
   */
  setProxy(url) {
    this._configure('setProxy');
    this._check('setProxy', binding.setProxy(this[kHandle], str(url, 'url', true)));
    return this;
  }

  /** Frame url in the 503 page sent when an origin is down; null or '' for none. */
  setRejectionUrl(url) {
    this._check('setRejectionUrl', binding.setRejectionUrl(this[kHandle], str(url, 'url', true)));
    return this;
  }

  /**
   * Send each stream of a kite to its origin behind a PROXY protocol header
   * (pagekite.py's +proxyproto): version 1 (text), 2 (binary) or 0 (none).
   * For streams opened after the call; any time.
   */
  setKiteProxyProtocol(proto, name, version) {
    this._check('setKiteProxyProtocol', binding.setKiteProxyProtocol(this[kHandle],
      str(proto, 'proto'), str(name, 'name'), int(version, 'version')));
    return this;
  }

  /**
   * One kite's state: 'WAITING', 'FLYING', 'REJECTED' or 'DUPLICATE'.  proto
   * and name as given to addKite(); proto may carry the public port
   * ('http-8080').  Throws PageKiteError for a kite that was never added.
   */
  kiteStatus(proto, name) {
    this._alive('kiteStatus');
    const code = this._check('kiteStatus',
      binding.getKiteStatus(this[kHandle], str(proto, 'proto'), str(name, 'name')));
    return KITE_STATUS_NAMES.get(code) || 'KITE_STATUS_' + code;
  }

  /**
   * Why a relay refused a kite: 'signature' (wrong secret), 'unknown' (no
   * domain of the relay takes the name), 'port', 'proto', 'quota',
   * 'duplicate', 'invalid' (no reason given); '' while nothing was refused.
   * Throws PageKiteError for a kite that was never added.
   */
  kiteReason(proto, name) {
    this._alive('kiteReason');
    const r = binding.getKiteReason(this[kHandle], str(proto, 'proto'), str(name, 'name'));
    if (r === null) throw libraryError('kiteReason');
    return r;
  }

  /** Every kite added with addKite(): [{ proto, name, status, reason }]. */
  kites() {
    return this._kites.map(({ proto, name }) => ({ proto, name,
      status: this.kiteStatus(proto, name), reason: this.kiteReason(proto, name) }));
  }

  /** Stay connected to this many spare relays. */
  wantSpareFrontends(spares) {
    this._alive('wantSpareFrontends');
    this._check('wantSpareFrontends',
      binding.wantSpareFrontends(this[kHandle], int(spares, 'spares')));
    return this;
  }
}

/** A front-end relay (PK_AS_FRONTEND_RELAY): accepts tunnels and visitors. */
class Relay extends Manager {
  constructor(opts) {
    super(opts, { appId: 'pagekite-node-relay', maxKites: 16, maxFrontends: 8, maxConns: 2000,
      flags: 0 }, binding.PK_AS_FRONTEND_RELAY);
  }

  /**
   * Listen on host:port (host null: all addresses) for tunnels and visitors.
   * (Called with a listener function it is EventEmitter's addListener.)
   */
  addListener(host, listenPort) {
    if (typeof listenPort === 'function') return super.addListener(host, listenPort);
    this._configure('addListener');
    this._check('addListener', binding.addRelayListener(this[kHandle], str(host, 'host', true),
      port(listenPort, 'port')));
    return this;
  }

  /** Accept kites matching pattern ("name" or "*.domain") for protos, signed with secret. */
  addDomain(protos, pattern, secret) {
    this._alive('addDomain');
    const p = Array.isArray(protos) ? protos.join(',') : protos;
    this._check('addDomain', binding.addRelayDomain(this[kHandle], str(p, 'protos'),
      str(pattern, 'pattern'), str(secret, 'secret')));
    return this;
  }

  /**
   * Stop accepting kites of a domain added with addDomain() (same protos and
   * pattern), at any time: live kites it no longer allows are dropped.
   */
  removeDomain(protos, pattern) {
    this._alive('removeDomain');
    const p = Array.isArray(protos) ? protos.join(',') : protos;
    this._check('removeDomain', binding.removeRelayDomain(this[kHandle], str(p, 'protos'),
      str(pattern, 'pattern')));
    return this;
  }

  /**
   * Accept every correctly signed tunnel for a kite that already flies and
   * share its new streams between them in turn (false, the default: a
   * second tunnel is refused as a duplicate).  Before start().
   */
  setDuplicates(allow = true) {
    this._configure('setDuplicates');
    this._check('setDuplicates', binding.setRelayDuplicates(this[kHandle], bool(allow, 'allow')));
    return this;
  }

  /** PEM certificate chain and key: the catch-all for TLS the relay terminates. */
  setTls(certFile, keyFile) {
    this._alive('setTls');
    this._check('setTls', binding.setRelayTls(this[kHandle], str(certFile, 'certFile'),
      str(keyFile, 'keyFile')));
    return this;
  }

  /**
   * Terminate TLS for name ('host' or '*.domain') with this PEM certificate
   * chain and key (keyFile null: the key is in certFile), when no https kite
   * takes the name (pagekite.py's --tls_endpoint).  The files are read now.
   */
  addTlsEndpoint(name, certFile, keyFile = null) {
    this._alive('addTlsEndpoint');
    this._check('addTlsEndpoint', binding.addRelayTlsEndpoint(this[kHandle], str(name, 'name'),
      str(certFile, 'certFile'), str(keyFile, 'keyFile', true)));
    return this;
  }

  /** Forget the certificate of name (as added), at any time. */
  removeTlsEndpoint(name) {
    this._alive('removeTlsEndpoint');
    this._check('removeTlsEndpoint', binding.removeRelayTlsEndpoint(this[kHandle],
      str(name, 'name')));
    return this;
  }

  /** The name assumed for TLS clients that send no SNI (--tls_default); null or '' for none. */
  setTlsDefault(name) {
    this._alive('setTlsDefault');
    this._check('setTlsDefault', binding.setRelayTlsDefault(this[kHandle], str(name, 'name', true)));
    return this;
  }

  /**
   * Ports raw kites may claim besides the listening ones (--rawports):
   * '22,2222', 'virtual' (any port) or an array such as [22, 'virtual'];
   * null or '' for none.
   */
  setRawPorts(ports) {
    this._configure('setRawPorts');
    let p = ports;
    if (Array.isArray(ports)) {
      for (const item of ports) {
        if (typeof item !== 'string' && !Number.isInteger(item)) {
          throw typeError('ports items', 'integers or strings', item);
        }
      }
      p = ports.join(',');
    }
    this._check('setRawPorts', binding.setRelayRawPorts(this[kHandle], str(p, 'ports', true)));
    return this;
  }

  /** Route visitors on listening port as if they came to aliasOf, and accept its kites (--portalias). */
  addPortAlias(listenPort, aliasOf) {
    this._configure('addPortAlias');
    this._check('addPortAlias', binding.addRelayPortAlias(this[kHandle], port(listenPort, 'port'),
      port(aliasOf, 'aliasOf')));
    return this;
  }

  /**
   * A load balancer in front of the relay ('10.0.0.0/8', '::1'): its
   * connections must start with a PROXY v1/v2 header, whose client address
   * then stands for the connection.  Before start().
   */
  addProxySource(cidr) {
    this._configure('addProxySource');
    this._check('addProxySource', binding.addRelayProxySource(this[kHandle], str(cidr, 'cidr')));
    return this;
  }

  /** A message of the day for connectors, at most 1024 bytes (--motd); null or '' for none. */
  setMotd(motd) {
    this._alive('setMotd');
    this._check('setMotd', binding.setRelayMotd(this[kHandle], str(motd, 'motd', true)));
    return this;
  }

  /** A visitor access rule, 'allow:REGEXP' or 'deny:REGEXP' (--client_acl): first match decides, none refuses. */
  addClientAcl(rule) {
    this._configure('addClientAcl');
    this._check('addClientAcl', binding.addRelayClientAcl(this[kHandle], str(rule, 'rule')));
    return this;
  }

  /** A connector (tunnel) access rule, 'allow:REGEXP' or 'deny:REGEXP' (--tunnel_acl). */
  addTunnelAcl(rule) {
    this._configure('addTunnelAcl');
    this._check('addTunnelAcl', binding.addRelayTunnelAcl(this[kHandle], str(rule, 'rule')));
    return this;
  }

  /** Accept tunnels only inside TLS (needs a certificate). */
  setRequireTls(require = true) {
    this._configure('setRequireTls');
    this._check('setRequireTls', binding.setRelayRequireTls(this[kHandle], bool(require, 'require')));
    return this;
  }

  /** DNS-based kite authentication: 'SUFFIX' or 'KITE-DOMAIN:SUFFIX' (pagekite.py's --authdomain). */
  addAuthdomain(spec) {
    this._configure('addAuthdomain');
    this._check('addAuthdomain', binding.addRelayAuthdomain(this[kHandle], str(spec, 'spec')));
    return this;
  }

  /** Refuse kites when the auth domain cannot be asked (--authfail_closed); default: accept. */
  setAuthfailClosed(closed = true) {
    this._configure('setAuthfailClosed');
    this._check('setAuthfailClosed', binding.setRelayAuthfailClosed(this[kHandle], bool(closed, 'closed')));
    return this;
  }

  /** At most IPS new clients per SECONDS on a tunnel: 'IPS/SECONDS' or 'KITE:IPS/SECONDS' (--ratelimit_ips). */
  addRatelimitIps(limit) {
    this._configure('addRatelimitIps');
    this._check('addRatelimitIps', binding.addRelayRatelimitIps(this[kHandle], str(limit, 'limit')));
    return this;
  }
}

module.exports = {
  Connector,
  Relay,
  PageKiteError,
  Status,
  Flags,
  LogMask,
  Counter,
  KiteStatus,
  EventKind,
  TlsVerify,
  VERSION: binding.PK_VERSION,
  VERSION_NUMBER: binding.PK_VERSION_NUMBER,
  libraryVersionNumber: binding.versionNumber(),
  statusName,
  binding,
};
