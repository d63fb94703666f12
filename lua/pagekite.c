/* pagekite.c - `require "pagekite"` for Lua 5.4, over libpagekite's public API.
 *
 *   local pagekite = require "pagekite"
 *   local c = pagekite.connector{app_id = "demo", max_kites = 1, max_conns = 25}
 *   assert(c:add_kite{proto = "http", name = "demo.test", secret = "s",
 *                     origin_port = 8080})
 *   assert(c:add_frontend("127.0.0.1", 9080))
 *   assert(c:start())
 *   assert(c:wait_until("flying", 30))  -- or: ... c:poll(1); print(c:status()) ...
 *   for _, ev in ipairs(c:next_events(0, 64, 1000)) do print(ev.seq, ev.kind, ev.text) end
 *   c:stop()
 *
 * Methods return true (or a value) on success and nil, err, code on failure,
 * with err from pagekite_last_error() and code a PK_E* constant
 * (pagekite_last_error_code(); PK_ESTATE for "not running", PK_EREJECTED when
 * wait_until gives up on a rejection).  Connectors default to PK_WITH_DEFAULTS
 * (TLS to relays, verified); pass flags = PK_WITH_IPV4 | PK_WITH_IPV6 for a
 * relay without a certificate.  A manager is stopped and freed by __gc and
 * __close (`local c <close> = pagekite.relay{...}`) or explicitly with :free().
 * Lua argument errors (wrong types) raise, as in the standard library.
 *
 * pagekite.raw is the C API one to one, generated (pagekite_raw.c, from
 * spec/pagekite.json); methods that are one C call go through it
 * (thin_methods below), the others are written here.
 */
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "../c/src/pk_names.h" /* generated: names of the status, counter and event codes */
#include "pagekite.h"
#include "pagekite_lua.h"

#define MT "pagekite.manager"

typedef struct {
  pagekite_mgr mgr;
  int running;
  int relay;
  long long poll_after; /* the last event seq m:poll() saw */
} lpk_mgr;

/* nil, message, code: the calling thread's failure (a PK_E* code). */
static int fail(lua_State *L) {
  lua_pushnil(L);
  lua_pushstring(L, pagekite_last_error());
  lua_pushinteger(L, pagekite_last_error_code());
  return 3;
}

/* nil, message, code for a failure this module finds itself. */
static int fail_with(lua_State *L, const char *msg, int code) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushinteger(L, code);
  return 3;
}

static int result(lua_State *L, int rc) {
  if (rc < 0) return fail(L);
  lua_pushboolean(L, 1);
  return 1;
}

static lpk_mgr *check(lua_State *L) {
  lpk_mgr *u = luaL_checkudata(L, 1, MT);
  if (!u->mgr) luaL_error(L, "pagekite manager already freed");
  return u;
}

/* Field of the options table at idx, or a default. */
static const char *opt_str(lua_State *L, int idx, const char *k, const char *dflt) {
  lua_getfield(L, idx, k);
  const char *s = lua_isnil(L, -1) ? dflt : luaL_checkstring(L, -1);
  lua_pop(L, 1); /* strings stay alive: they are referenced by the table */
  return s;
}

static int opt_int(lua_State *L, int idx, const char *k, int dflt) {
  lua_getfield(L, idx, k);
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (!ok && !lua_isnil(L, -1)) luaL_error(L, "option %s must be an integer", k);
  lua_pop(L, 1);
  return ok ? (int)v : dflt;
}

static int opt_bool(lua_State *L, int idx, const char *k, int dflt) {
  lua_getfield(L, idx, k);
  int v = lua_isnil(L, -1) ? dflt : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* A new manager object (no C manager yet) on the stack. */
static lpk_mgr *new_object(lua_State *L) {
  lpk_mgr *u = lua_newuserdatauv(L, sizeof(*u), 1);
  memset(u, 0, sizeof(*u));
  luaL_setmetatable(L, MT);
  lua_newtable(L); /* user value 1: the kites added, {proto = "http[-port]", name = ...} */
  lua_setiuservalue(L, -2, 1);
  return u;
}

/* ---- the helpers of the generated raw layer (pagekite_lua.h) ---- */

pagekite_mgr lpk_arg_mgr(lua_State *L, int idx) {
  if (lua_isnil(L, idx)) return NULL;
  lpk_mgr *u = luaL_checkudata(L, idx, MT);
  return u->mgr;
}

int lpk_arg_int(lua_State *L, int idx) {
  lua_Integer v = luaL_checkinteger(L, idx);
  luaL_argcheck(L, v >= INT_MIN && v <= INT_MAX, idx, "out of the range of a C int");
  return (int)v;
}

char **lpk_arg_strv(lua_State *L, int idx, int nullable) {
  if (nullable && lua_isnoneornil(L, idx)) return NULL;
  luaL_checktype(L, idx, LUA_TTABLE);
  size_t n = (size_t)lua_rawlen(L, idx);
  luaL_argcheck(L, n < 4096, idx, "too many strings");
  /* The array lives on the stack (as userdata) until the C function returns;
   * the strings are the table's own. */
  const char **v = lua_newuserdatauv(L, (n + 1) * sizeof(*v), 0);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, idx, "must be a table of strings");
    v[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  v[n] = NULL;
  return (char **)v;
}

int lpk_push_mgr(lua_State *L, pagekite_mgr m) {
  if (!m) {
    lua_pushnil(L);
    return 1;
  }
  new_object(L)->mgr = m;
  return 1;
}

void lpk_after_call(lua_State *L, int idx, const char *fn, int rc) {
  lpk_mgr *u = luaL_testudata(L, idx, MT);
  if (!u) return; /* nil: the NULL manager */
  if (strcmp(fn, "pagekite_thread_start") == 0) {
    if (rc == 0) u->running = 1;
  } else if (strcmp(fn, "pagekite_thread_stop") == 0 || strcmp(fn, "pagekite_thread_wait") == 0) {
    u->running = 0;
  } else if (strcmp(fn, "pagekite_free") == 0 && rc == 0) {
    u->mgr = NULL;
    u->running = 0;
  }
}

/* ---- the idiomatic layer ---- */

static int new_mgr(lua_State *L, int relay) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *app_id = opt_str(L, 1, "app_id", relay ? "pagekite-lua-relay" : "pagekite-lua");
  int max_kites = opt_int(L, 1, "max_kites", relay ? 64 : 8);
  int max_fe = opt_int(L, 1, relay ? "max_listeners" : "max_frontends", relay ? 8 : 4);
  int max_conns = opt_int(L, 1, "max_conns", 1024);
  const char *ddns = opt_str(L, 1, "dyndns_url", NULL);
  int flags = opt_int(L, 1, "flags", PK_WITH_DEFAULTS);
  int verbosity = opt_int(L, 1, "verbosity", 0);
  if (relay) flags |= PK_AS_FRONTEND_RELAY;
  lpk_mgr *u = new_object(L);
  u->relay = relay;
  u->mgr = pagekite_init(app_id, max_kites, max_fe, max_conns, ddns, flags, verbosity);
  if (!u->mgr) return fail(L);
  if (!opt_bool(L, 1, "tls_verify", 1) && pagekite_set_tls_verify(u->mgr, PK_TLS_VERIFY_NONE, NULL))
    return fail(L);
  return 1;
}

static int l_connector(lua_State *L) { return new_mgr(L, 0); }
static int l_relay(lua_State *L) { return new_mgr(L, 1); }

/* m:add_kite{proto=, name=, secret=, origin_port=, origin_host="localhost", port=0} */
static int m_add_kite(lua_State *L) {
  lpk_mgr *u = check(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *proto = opt_str(L, 2, "proto", "http");
  const char *name = opt_str(L, 2, "name", NULL);
  const char *secret = opt_str(L, 2, "secret", NULL);
  const char *host = opt_str(L, 2, "origin_host", "localhost");
  /* public_port, as Python's and Node's; "port" is its old, deprecated name. */
  int port = opt_int(L, 2, "public_port", 0), old_port = opt_int(L, 2, "port", -1);
  int lport = opt_int(L, 2, "origin_port", 0);
  if (!name || !secret) return luaL_error(L, "add_kite: name and secret are required");
  if (old_port >= 0 && port) return luaL_error(L, "add_kite: give public_port, not also port");
  if (old_port >= 0) port = old_port;
  if (pagekite_add_kite(u->mgr, proto, name, port, secret, host, lport) < 0) return fail(L);
  /* Remembered for kites() and wait_until()'s rejection message. */
  lua_getiuservalue(L, 1, 1);
  lua_createtable(L, 0, 2);
  if (port) lua_pushfstring(L, "%s-%d", proto, port);
  else lua_pushstring(L, proto);
  lua_setfield(L, -2, "proto");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
  lua_pushboolean(L, 1);
  return 1;
}

/* m:add_frontend(host, port) or m:add_frontend{host=, port=, lookup=true} */
static int m_add_frontend(lua_State *L) {
  lpk_mgr *u = check(L);
  const char *host;
  int port, lookup = 0;
  if (lua_istable(L, 2)) {
    host = opt_str(L, 2, "host", NULL);
    port = opt_int(L, 2, "port", 443);
    lookup = opt_bool(L, 2, "lookup", 0);
    if (!host) return luaL_error(L, "add_frontend: host is required");
  } else {
    host = luaL_checkstring(L, 2);
    port = (int)luaL_optinteger(L, 3, 443);
  }
  int rc = lookup ? pagekite_lookup_and_add_frontend(u->mgr, host, port, 0)
                  : pagekite_add_frontend(u->mgr, host, port);
  if (rc < 0) return fail(L);
  lua_pushinteger(L, rc);
  return 1;
}

/* m:add_domain(protos, pattern, secret) or m:add_domain{protos=, pattern=, secret=} */
static int m_add_domain(lua_State *L) {
  lpk_mgr *u = check(L);
  const char *protos, *pattern, *secret;
  if (lua_istable(L, 2)) {
    protos = opt_str(L, 2, "protos", "http");
    pattern = opt_str(L, 2, "pattern", NULL);
    secret = opt_str(L, 2, "secret", NULL);
    if (!pattern || !secret) return luaL_error(L, "add_domain: pattern and secret are required");
  } else {
    protos = luaL_checkstring(L, 2);
    pattern = luaL_checkstring(L, 3);
    secret = luaL_checkstring(L, 4);
  }
  return result(L, pagekite_add_relay_domain(u->mgr, protos, pattern, secret));
}

/* m:enable_lua_plugins(enable_defaults, {"name=value", ...} | {name = value}) */
static int m_enable_lua_plugins(lua_State *L) {
  lpk_mgr *u = check(L);
  int defaults = lua_toboolean(L, 2);
  const char *list[257];
  int n = 0;
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3) != 0 && n < 256) {
      if (lua_type(L, -2) == LUA_TSTRING) { /* name = value */
        lua_pushvalue(L, -2);
        lua_pushliteral(L, "=");
        lua_pushvalue(L, -3);
        lua_concat(L, 3);
      } else {
        lua_pushvalue(L, -1);
      }
      list[n++] = luaL_checkstring(L, -1);
      lua_insert(L, 4); /* keep the string alive below the iteration state */
      lua_pop(L, 1);
    }
  }
  list[n] = NULL;
  return result(L, pagekite_enable_lua_plugins(u->mgr, defaults, (char **)list));
}

static int m_start(lua_State *L) {
  lpk_mgr *u = check(L);
  if (pagekite_thread_start(u->mgr) < 0) return fail(L);
  u->running = 1;
  lua_pushboolean(L, 1);
  return 1;
}

static int m_stop(lua_State *L) {
  lpk_mgr *u = check(L);
  if (!u->running) return fail_with(L, "not running", PK_ESTATE);
  u->running = 0;
  return result(L, pagekite_thread_stop(u->mgr));
}

typedef struct {
  int code;
  const char *name;
} lpk_name;

/* The names Lua sees, in lower case, from the spec's tables (pk_names.h). */
#define LPK_ROW(code, NAME, name) {code, name},
static const lpk_name status_names[] = {PK_STATUS_NAMES(LPK_ROW){0, NULL}};
static const lpk_name kite_status_names[] = {PK_KITE_STATUS_NAMES(LPK_ROW){0, NULL}};
static const lpk_name counter_names[] = {PK_COUNTER_NAMES(LPK_ROW){0, NULL}};
static const lpk_name event_kinds[] = {PK_EVENT_NAMES(LPK_ROW){0, NULL}};
#undef LPK_ROW

static const char *name_of(const lpk_name *t, int code) {
  for (; t->name; t++)
    if (t->code == code) return t->name;
  return NULL;
}

/* Pushes the name of code in t, or PREFIX_CODE ("status_99") when t has none. */
static void push_name(lua_State *L, const lpk_name *t, int code, const char *prefix) {
  const char *n = name_of(t, code);
  if (n)
    lua_pushstring(L, n);
  else
    lua_pushfstring(L, "%s_%d", prefix, code);
}

static void push_status(lua_State *L, int s) { push_name(L, status_names, s, "status"); }

/* m:status() -> code, name */
static int m_status(lua_State *L) {
  lpk_mgr *u = check(L);
  int s = pagekite_get_status(u->mgr);
  if (s < 0) return fail(L);
  lua_pushinteger(L, s);
  push_status(L, s);
  return 2;
}

static void push_kite_status(lua_State *L, int s) {
  push_name(L, kite_status_names, s, "kite_status");
}

/* m:kite_status(proto, name) -> code, name ("waiting", "flying", "rejected", "duplicate") */
static int m_kite_status(lua_State *L) {
  lpk_mgr *u = check(L);
  int s = pagekite_get_kite_status(u->mgr, luaL_checkstring(L, 2), luaL_checkstring(L, 3));
  if (s < 0) return fail(L);
  lua_pushinteger(L, s);
  push_kite_status(L, s);
  return 2;
}

/* m:kite_reason(proto, name) -> the relay's reason ("signature", ...) or "" */
static int m_kite_reason(lua_State *L) {
  lpk_mgr *u = check(L);
  char *r = pagekite_get_kite_reason(u->mgr, luaL_checkstring(L, 2), luaL_checkstring(L, 3));
  if (!r) return fail(L);
  lua_pushstring(L, r);
  return 1;
}

/* Pushes {{proto=, name=, status=, reason=}, ...} for the kites added with
 * add_kite; with refused_only, only those a relay refused. */
static void push_kites(lua_State *L, lpk_mgr *u, int refused_only) {
  lua_newtable(L);
  int out = lua_gettop(L), n = 0;
  lua_getiuservalue(L, 1, 1);
  lua_Integer count = (lua_Integer)lua_rawlen(L, -1);
  for (lua_Integer i = 1; i <= count; i++) {
    lua_rawgeti(L, -1, i);
    lua_getfield(L, -1, "proto");
    lua_getfield(L, -2, "name");
    const char *proto = lua_tostring(L, -2), *name = lua_tostring(L, -1);
    int s = pagekite_get_kite_status(u->mgr, proto, name);
    char *r = pagekite_get_kite_reason(u->mgr, proto, name);
    /* s < 0: removed since (m:remove_kite) */
    if (s >= 0 && (!refused_only || s == PK_KITE_STATUS_REJECTED || s == PK_KITE_STATUS_DUPLICATE)) {
      lua_createtable(L, 0, 4);
      lua_pushvalue(L, -3);
      lua_setfield(L, -2, "proto");
      lua_pushvalue(L, -2);
      lua_setfield(L, -2, "name");
      push_kite_status(L, s);
      lua_setfield(L, -2, "status");
      lua_pushstring(L, r ? r : "");
      lua_setfield(L, -2, "reason");
      lua_rawseti(L, out, ++n);
    }
    lua_pop(L, 3);
  }
  lua_pop(L, 1);
}

/* m:kites() -> {{proto=, name=, status=, reason=}, ...} */
static int m_kites(lua_State *L) {
  lpk_mgr *u = check(L);
  push_kites(L, u, 0);
  return 1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

#define LPK_EVENTS_MAX 64 /* m:next_events()' default max */
#define LPK_WAIT_BATCH 16  /* events read at a time while only waiting */

/* Waits up to ms for events after *after and moves *after past all of them;
 * returns how many there were, or -1 (last error set). */
static int wait_events(pagekite_mgr mgr, long long *after, int ms) {
  pagekite_event ev[LPK_WAIT_BATCH];
  int total = 0, n;
  do {
    ev[0] = (pagekite_event)PAGEKITE_EVENT_INIT;
    n = pagekite_next_events(mgr, *after, ev, LPK_WAIT_BATCH, total ? 0 : ms);
    if (n < 0) return -1;
    if (n > 0) *after = ev[n - 1].seq;
    total += n;
  } while (n == LPK_WAIT_BATCH);
  return total;
}

/* The seq of the newest event so far (0 if none). */
static long long newest_seq(pagekite_mgr mgr) {
  long long after = 0;
  wait_events(mgr, &after, 0);
  return after;
}

/* The status code for a name ("flying", any case) or a code. */
static int status_arg(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER) return (int)luaL_checkinteger(L, idx);
  const char *want = luaL_checkstring(L, idx);
  for (const lpk_name *s = status_names; s->name; s++)
    if (strcasecmp(want, s->name) == 0) return s->code;
  return luaL_argerror(L, idx, "unknown status name");
}

/* m:wait_until(status, timeout_s) -> true once the status (a name such as
 * "flying", or a code) is reached; nil, "timeout: status is ..." after
 * timeout_s; nil, "rejected: a relay refused PROTO:NAME STATE (REASON), ..."
 * at once when the status becomes rejected while waiting for another one;
 * nil, "not running" before start() or after stop(). */
static int m_wait_until(lua_State *L) {
  lpk_mgr *u = check(L);
  int want = status_arg(L, 2);
  double timeout = luaL_checknumber(L, 3);
  double deadline = now_s() + (timeout > 0 ? timeout : 0);
  long long after = newest_seq(u->mgr); /* a change after it is an event */
  if (!u->running) return fail_with(L, "not running", PK_ESTATE);
  for (;;) {
    int s = pagekite_get_status(u->mgr);
    if (s < 0) return fail(L);
    if (s == want) {
      lua_pushboolean(L, 1);
      return 1;
    }
    if (s == PK_STATUS_REJECTED) {
      push_kites(L, u, 1);
      int refused = lua_gettop(L);
      lua_pushliteral(L, "rejected: a relay refused");
      lua_Integer n = (lua_Integer)lua_rawlen(L, refused);
      for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, refused, i);
        lua_getfield(L, -1, "proto");
        lua_getfield(L, -2, "name");
        lua_getfield(L, -3, "status");
        lua_getfield(L, -4, "reason");
        const char *reason = lua_tostring(L, -1);
        lua_pushfstring(L, "%s %s:%s %s%s%s%s", i > 1 ? "," : "", lua_tostring(L, -4),
                        lua_tostring(L, -3), lua_tostring(L, -2), *reason ? " (" : "", reason,
                        *reason ? ")" : "");
        lua_replace(L, -6);
        lua_pop(L, 4);
        lua_concat(L, 2);
      }
      if (!n) {
        lua_pushliteral(L, " kites");
        lua_concat(L, 2);
      }
      lua_pushnil(L);
      lua_insert(L, -2);
      lua_pushinteger(L, PK_EREJECTED);
      return 3;
    }
    double left = deadline - now_s();
    if (left <= 0) {
      lua_pushnil(L);
      lua_pushliteral(L, "timeout: status is ");
      push_status(L, s);
      lua_concat(L, 2);
      return 2;
    }
    if (wait_events(u->mgr, &after, left > 1 ? 1000 : (int)(left * 1000) + 1) < 0) return fail(L);
  }
}

static int m_log(lua_State *L) {
  lpk_mgr *u = check(L);
  char *log = pagekite_get_log(u->mgr);
  if (!log) return fail(L);
  lua_pushstring(L, log);
  return 1;
}

/* m:metrics() -> the Prometheus text; m:status_json() -> the JSON text
 * (what the admin listener serves); nil, err, code on failure. */
static int m_metrics(lua_State *L) {
  lpk_mgr *u = check(L);
  char *text = pagekite_get_metrics(u->mgr);
  if (!text) return fail(L);
  lua_pushstring(L, text);
  return 1;
}

static int m_status_json(lua_State *L) {
  lpk_mgr *u = check(L);
  char *text = pagekite_get_status_json(u->mgr);
  if (!text) return fail(L);
  lua_pushstring(L, text);
  return 1;
}

/* m:poll(timeout_s) -> true when events happened since the last poll (at
 * once if they did), false after timeout_s (fractions allowed) without. */
static int m_poll(lua_State *L) {
  lpk_mgr *u = check(L);
  double t = luaL_optnumber(L, 2, 1);
  int ms = t <= 0 ? 0 : t >= 2e6 ? 2000000000 : (int)(t * 1000 + 0.5);
  int n = wait_events(u->mgr, &u->poll_after, ms);
  if (n < 0) return fail(L);
  lua_pushboolean(L, n > 0);
  return 1;
}

static void push_event(lua_State *L, const pagekite_event *e) {
  lua_createtable(L, 0, 7);
  const char *kind = name_of(event_kinds, e->kind);
  if (kind)
    lua_pushstring(L, kind);
  else
    lua_pushinteger(L, e->kind);
  lua_setfield(L, -2, "kind");
  lua_pushinteger(L, e->seq);
  lua_setfield(L, -2, "seq");
  lua_pushinteger(L, e->time_ms);
  lua_setfield(L, -2, "time_ms");
  lua_pushinteger(L, e->code);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, e->proto);
  lua_setfield(L, -2, "proto");
  lua_pushstring(L, e->name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, e->text);
  lua_setfield(L, -2, "text");
}

/* m:next_events(after = 0, max = 64, timeout_ms = 0) -> {event, ...} (each
 * {kind = "status"|"log"|"kite"|"tunnel"|"streams"|"lost", seq, time_ms,
 * code, proto, name, text}), oldest first; {} on timeout; nil, err. */
static int m_next_events(lua_State *L) {
  lpk_mgr *u = check(L);
  lua_Integer after = luaL_optinteger(L, 2, 0);
  lua_Integer max = luaL_optinteger(L, 3, LPK_EVENTS_MAX);
  lua_Integer ms = luaL_optinteger(L, 4, 0);
  luaL_argcheck(L, max >= 1 && max <= 4096, 3, "must be 1..4096");
  luaL_argcheck(L, ms >= 0 && ms <= 2000000000, 4, "must be 0..2000000000");
  pagekite_event *ev = lua_newuserdatauv(L, sizeof(*ev) * (size_t)max, 0);
  ev[0] = (pagekite_event)PAGEKITE_EVENT_INIT;
  int n = pagekite_next_events(u->mgr, (long long)after, ev, (int)max, (int)ms);
  if (n < 0) return fail(L);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    push_event(L, &ev[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* m:counters() -> {name = value} ; m:counter("bytes_in") -> value */
static int m_counters(lua_State *L) {
  lpk_mgr *u = check(L);
  lua_newtable(L);
  for (const lpk_name *c = counter_names; c->name; c++) {
    lua_pushinteger(L, pagekite_get_counter(u->mgr, c->code));
    lua_setfield(L, -2, c->name);
  }
  return 1;
}

static int m_counter(lua_State *L) {
  lpk_mgr *u = check(L);
  const char *name = luaL_checkstring(L, 2);
  for (const lpk_name *c = counter_names; c->name; c++)
    if (strcmp(name, c->name) == 0) {
      lua_pushinteger(L, pagekite_get_counter(u->mgr, c->code));
      return 1;
    }
  lua_pushnil(L);
  lua_pushfstring(L, "unknown counter %s", name);
  return 2;
}

static int m_free(lua_State *L) {
  lpk_mgr *u = luaL_checkudata(L, 1, MT);
  if (u->mgr) {
    if (u->running) pagekite_thread_stop(u->mgr);
    pagekite_free(u->mgr);
    u->mgr = NULL;
    u->running = 0;
  }
  return 0;
}

static int m_tostring(lua_State *L) {
  lpk_mgr *u = luaL_checkudata(L, 1, MT);
  lua_pushfstring(L, "pagekite.%s (%s)", u->relay ? "relay" : "connector",
                  !u->mgr ? "freed" : u->running ? "running" : "stopped");
  return 1;
}

static const luaL_Reg methods[] = {
    {"add_kite", m_add_kite},
    {"add_frontend", m_add_frontend},
    {"add_domain", m_add_domain},
    {"enable_lua_plugins", m_enable_lua_plugins},
    {"kite_status", m_kite_status},
    {"kite_reason", m_kite_reason},
    {"get_kite_status", m_kite_status}, /* the spec's raw names, as methods */
    {"get_kite_reason", m_kite_reason},
    {"kites", m_kites},
    {"wait_until", m_wait_until},
    {"start", m_start},
    {"stop", m_stop},
    {"status", m_status},
    {"log", m_log},
    {"poll", m_poll},
    {"next_events", m_next_events},
    {"counters", m_counters},
    {"counter", m_counter},
    {"metrics", m_metrics},
    {"status_json", m_status_json},
    {"free", m_free},
    {NULL, NULL},
};

/* Methods that are one raw call: m:METHOD(args) is pagekite.raw.RAW(m, args),
 * with true or nil, err, code for the C result.  bool: a boolean first
 * argument is passed as 1 or 0. */
static const struct {
  const char *method, *raw;
  int bool_arg;
} thin_methods[] = {
    {"add_listener", "add_relay_listener", 0},
    {"load_lua_plugin", "load_lua_plugin", 0},
    {"set_log_mask", "set_log_mask", 0},
    {"set_tls_verify", "set_tls_verify", 0},
    {"set_tls", "set_relay_tls", 0},
    {"add_tls_endpoint", "add_relay_tls_endpoint", 0},
    {"remove_tls_endpoint", "remove_relay_tls_endpoint", 0},
    {"remove_domain", "remove_relay_domain", 0},
    {"remove_kite", "remove_kite", 0},
    {"remove_frontend", "remove_frontend", 0},
    {"set_tls_default", "set_relay_tls_default", 0},
    {"set_raw_ports", "set_relay_raw_ports", 0},
    {"add_port_alias", "add_relay_port_alias", 0},
    {"set_motd", "set_relay_motd", 0},
    {"set_admin_listener", "set_admin_listener", 0},
    {"add_kite_access", "add_kite_access", 0},
    {"add_client_acl", "add_relay_client_acl", 0},
    {"add_tunnel_acl", "add_relay_tunnel_acl", 0},
    {"set_require_tls", "set_relay_require_tls", 1},
    {"add_ratelimit_ips", "add_relay_ratelimit_ips", 0},
    {"add_authdomain", "add_relay_authdomain", 0},
    {"set_authfail_closed", "set_relay_authfail_closed", 1},
    {"add_proxy_source", "add_relay_proxy_source", 0},
    {"set_duplicates", "set_relay_duplicates", 1},
    {"add_frontend_certname", "add_frontend_certname", 0},
    {"set_proxy", "set_proxy", 0},
    {"set_rejection_url", "set_rejection_url", 0},
    {"set_kite_proxy_protocol", "set_kite_proxy_protocol", 0},
    {"tick", "tick", 0},
    {"wait", "thread_wait", 0},
    {"add_service_frontends", "add_service_frontends", 0},
    {"add_whitelabel_frontends", "add_whitelabel_frontends", 0},
    {"set_housekeeping_min_interval", "set_housekeeping_min_interval", 0},
    {"set_housekeeping_max_interval", "set_housekeeping_max_interval", 0},
    {"enable_http_forwarding_headers", "enable_http_forwarding_headers", 1},
    {"enable_fake_ping", "enable_fake_ping", 1},
    {"enable_watchdog", "enable_watchdog", 1},
    {"enable_tick_timer", "enable_tick_timer", 1},
    {"set_conn_eviction_idle", "set_conn_eviction_idle_s", 0},
    {"set_openssl_ciphers", "set_openssl_ciphers", 0},
    {"want_spare_frontends", "want_spare_frontends", 0},
    {"set_bail_on_errors", "set_bail_on_errors", 0},
};

/* upvalue 1: the raw function; upvalue 2: bool_arg. */
static int m_thin(lua_State *L) {
  check(L);
  if (lua_toboolean(L, lua_upvalueindex(2)) && lua_isboolean(L, 2)) {
    lua_pushinteger(L, lua_toboolean(L, 2));
    lua_replace(L, 2);
  }
  lua_CFunction raw = lua_tocfunction(L, lua_upvalueindex(1));
  int top = lua_gettop(L);
  raw(L);
  return result(L, (int)lua_tointeger(L, top + 1));
}

static lua_CFunction raw_function(const char *name) {
  for (const luaL_Reg *r = lpk_raw_functions; r->name; r++)
    if (strcmp(r->name, name) == 0) return r->func;
  return NULL;
}

static int l_last_error(lua_State *L) {
  lua_pushstring(L, pagekite_last_error());
  return 1;
}

static int l_last_error_code(lua_State *L) {
  lua_pushinteger(L, pagekite_last_error_code());
  return 1;
}

__attribute__((visibility("default"))) int luaopen_pagekite(lua_State *L) {
  if (luaL_newmetatable(L, MT)) {
    luaL_newlib(L, methods);
    for (size_t i = 0; i < sizeof(thin_methods) / sizeof(thin_methods[0]); i++) {
      lua_CFunction raw = raw_function(thin_methods[i].raw);
      if (!raw) return luaL_error(L, "pagekite: no raw function %s", thin_methods[i].raw);
      lua_pushcfunction(L, raw);
      lua_pushboolean(L, thin_methods[i].bool_arg);
      lua_pushcclosure(L, m_thin, 2);
      lua_setfield(L, -2, thin_methods[i].method);
    }
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, m_free);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, m_free);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, m_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, l_connector);
  lua_setfield(L, -2, "connector");
  lua_pushcfunction(L, l_relay);
  lua_setfield(L, -2, "relay");
  lua_pushcfunction(L, l_last_error);
  lua_setfield(L, -2, "last_error");
  lua_pushcfunction(L, l_last_error_code);
  lua_setfield(L, -2, "last_error_code");
  lua_pushstring(L, PK_VERSION);
  lua_setfield(L, -2, "version");
  lua_newtable(L);
  lpk_set_constants(L, -1);
  lua_setfield(L, -2, "constants");
  /* pagekite.raw: every C call and constant of the spec, one to one. */
  lua_newtable(L);
  luaL_setfuncs(L, lpk_raw_functions, 0);
  lpk_set_constants(L, -1);
  lua_setfield(L, -2, "raw");
  return 1;
}
