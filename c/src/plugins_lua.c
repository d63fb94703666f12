/* plugins_lua.c - the Lua 5.4 plugin host (experimental API).
 *
 * One lua_State per manager, created on the loop thread in pk_plugins_start
 * and closed in pk_plugins_stop; every hook runs on that thread.  Scripts
 * register hooks through the global `pk` table.  Each call into Lua gets an
 * instruction budget (a count hook raises an error when it runs out) and the
 * state has a memory ceiling; unless the setting unsafe=1 is given, scripts
 * see a reduced standard library (no processes, no writing files, no C
 * modules, no bytecode).  A failing hook is logged and disabled; the other
 * hooks, and the traffic, go on.
 *
 * pk.http_listen() gives plugins a tiny HTTP/1.x server on the manager's
 * loop: one request head (8 KiB, 5 s) per connection, one answer, close.
 */
#include <ctype.h>
#include <dlfcn.h>
#include <limits.h>
#include <sys/stat.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "internal.h"
#include "pk_names.h"

#ifndef PK_LUA_PLUGIN_DIR
#define PK_LUA_PLUGIN_DIR "lua/plugins"
#endif

#define PK_LUA_BUDGET 1000000LL        /* instructions per hook call */
#define PK_LUA_LOAD_BUDGET_FACTOR 10   /* running a script's main chunk */
#define PK_LUA_HOOK_STEP 1000          /* count-hook granularity */
#define PK_LUA_MEMORY (64u << 20)      /* bytes per Lua state */
#define PK_LUA_MAX_SETTINGS 256
#define PK_LUA_SETTING_MAX 1024
#define PK_LUA_HTTP_HEAD_MAX 8192
#define PK_LUA_HTTP_TIMEOUT_MS 5000
#define PK_LUA_HTTP_MAX_CLIENTS 64

enum { HK_STREAM, HK_TUNNEL, HK_STATUS, HK_TICK, HK_N };
static const char *const hook_names[HK_N] = {"on_stream", "on_tunnel", "on_status", "on_tick"};

typedef struct {
  int ref;
  int disabled;
  char script[64];
} pk_lua_hook;

typedef struct pk_lua pk_lua;
typedef struct pk_lua_http pk_lua_http;
typedef struct pk_lua_client pk_lua_client;

struct pk_lua_http {
  uv_tcp_t tcp;
  pk_lua *p;
  int ref; /* handler in the registry */
  char script[64];
  pk_lua_http *next;
};

struct pk_lua_client {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wreq;
  pk_lua *p;
  pk_lua_http *srv;
  pk_lua_client *next;
  int handles; /* open handles; freed when both closed */
  int closing;
  int answered;
  char *out;
  size_t len;
  char buf[PK_LUA_HTTP_HEAD_MAX];
};

struct pk_lua {
  pk_mgr *m;
  lua_State *L;
  uv_thread_t thread;
  int enable_defaults;
  char **settings;
  int nsettings;
  char **scripts;
  int nscripts;
  int unsafe;
  long long budget;      /* configured instructions per hook call */
  long long limit, used; /* the running call's limit and count */
  int over_budget;
  size_t mem_limit, mem_used;
  pk_lua_hook *hooks[HK_N];
  int nhooks[HK_N], caphooks[HK_N];
  char current[64]; /* script whose code runs now (for log lines) */
  char last_error[256]; /* call_lua's last failure, for pk_fail at load */
  pk_lua_http *servers;
  pk_lua_client *clients;
  int nclients;
  int pending_status; /* status change seen off the loop thread, or -1 */
};

static pk_lua *P(lua_State *L) { return *(pk_lua **)lua_getextraspace(L); }

/* ---------------------------------------------------------------- settings */

static const char *setting(pk_lua *p, const char *name) {
  size_t n = strlen(name);
  const char *v = NULL;
  for (int i = 0; i < p->nsettings; i++)
    if (strncmp(p->settings[i], name, n) == 0 && p->settings[i][n] == '=') v = p->settings[i] + n + 1;
  return v;
}

static int has_setting_prefix(pk_lua *p, const char *prefix) {
  size_t n = strlen(prefix);
  for (int i = 0; i < p->nsettings; i++)
    if (strncmp(p->settings[i], prefix, n) == 0) return 1;
  return 0;
}

static long long setting_int(pk_lua *p, const char *name, long long dflt, long long lo,
                             long long hi) {
  const char *v = setting(p, name);
  if (!v || !*v) return dflt;
  char *end;
  long long n = strtoll(v, &end, 10);
  if (*end || n < lo || n > hi) {
    pk_log(p->m, PK_LOG_ERROR, "Lua: bad setting %s=%s, using %lld", name, v, dflt);
    return dflt;
  }
  return n;
}

static pk_lua *plugins_of(pk_mgr *m) {
  if (m->plugins) return m->plugins;
  pk_lua *p = calloc(1, sizeof(*p));
  if (!p) return NULL;
  p->m = m;
  p->pending_status = -1;
  m->plugins = p;
  return p;
}

static int append_str(char ***list, int *n, const char *s) {
  char **nl = realloc(*list, sizeof(char *) * (size_t)(*n + 1));
  if (!nl) return -1;
  *list = nl;
  if (!(nl[*n] = strdup(s))) return -1;
  (*n)++;
  return 0;
}

static int config_ok(pagekite_mgr h, const char *fn) {
  pk_mgr *m = (pk_mgr *)(void *)h;
  if (!m) {
    pk_fail(PK_EINVAL, "%s: mgr is NULL", fn);
    return 0;
  }
  if (m->started) {
    pk_fail(PK_ESTATE, "%s: only allowed before pagekite_thread_start", fn);
    return 0;
  }
  return 1;
}

PK_API int pagekite_enable_lua_plugins(pagekite_mgr mgr, int enable_defaults, char **settings) {
  if (!config_ok(mgr, "pagekite_enable_lua_plugins")) return -1;
  pk_mgr *m = (pk_mgr *)(void *)mgr;
  int n = 0;
  for (char **s = settings; s && *s; s++, n++) {
    const char *eq = strchr(*s, '=');
    if (!eq || eq == *s || strlen(*s) >= PK_LUA_SETTING_MAX) {
      pk_fail(PK_EINVAL, "pagekite_enable_lua_plugins: settings: \"%.60s\" is not name=value", *s);
      return -1;
    }
  }
  pk_lua *p = plugins_of(m);
  if (!p) return pk_fail(PK_ENOMEM, "pagekite_enable_lua_plugins: out of memory");
  if (p->nsettings + n > PK_LUA_MAX_SETTINGS)
    return pk_fail(PK_ELIMIT, "pagekite_enable_lua_plugins: settings: too many (at most %d)",
                   PK_LUA_MAX_SETTINGS);
  for (char **s = settings; s && *s; s++)
    if (append_str(&p->settings, &p->nsettings, *s)) {
      pk_fail(PK_ENOMEM, "pagekite_enable_lua_plugins: out of memory");
      return -1;
    }
  if (enable_defaults) p->enable_defaults = 1;
  return 0;
}

PK_API int pagekite_load_lua_plugin(pagekite_mgr mgr, const char *path) {
  if (!config_ok(mgr, "pagekite_load_lua_plugin")) return -1;
  if (!path || !*path) {
    pk_fail(PK_EINVAL, "pagekite_load_lua_plugin: path is NULL or empty");
    return -1;
  }
  FILE *f = fopen(path, "r");
  if (!f) {
    pk_fail(PK_EIO, "pagekite_load_lua_plugin: cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  fclose(f);
  pk_lua *p = plugins_of((pk_mgr *)(void *)mgr);
  if (!p || append_str(&p->scripts, &p->nscripts, path)) {
    pk_fail(PK_ENOMEM, "pagekite_load_lua_plugin: out of memory");
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------- budget and memory */

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  pk_lua *p = ud;
  if (!ptr) osize = 0; /* osize is a type tag then */
  if (nsize == 0) {
    free(ptr);
    p->mem_used -= osize;
    return NULL;
  }
  if (nsize > osize && p->mem_used + (nsize - osize) > p->mem_limit) return NULL;
  void *n = realloc(ptr, nsize);
  if (n) p->mem_used = p->mem_used - osize + nsize;
  return n;
}

static void count_hook(lua_State *L, lua_Debug *ar) {
  pk_lua *p = P(L);
  p->used += PK_LUA_HOOK_STEP;
  if (p->used > p->limit) {
    p->over_budget = 1;
    luaL_error(L, "instruction budget (%I) exceeded", (lua_Integer)p->limit);
  }
}

/* pcall/xpcall/coroutine.resume that do not let a script swallow the
 * budget error: once over budget, the error goes on up to the host. */
static int finish_pcall(lua_State *L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {
    if (P(L)->over_budget) return lua_error(L);
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - (int)extra;
}

static int l_pcall(lua_State *L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);
  lua_insert(L, 1);
  int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
  return finish_pcall(L, status, 0);
}

static int l_xpcall(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);
  int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
  return finish_pcall(L, status, 2);
}

static int l_resume(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  if (P(L)->over_budget) return luaL_error(L, "instruction budget exceeded");
  return lua_gettop(L);
}

/* ---------------------------------------------------------------- sandbox */

static int l_io_open_ro(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const char *mode = luaL_optstring(L, 2, "r");
  if (strcmp(mode, "r") != 0 && strcmp(mode, "rb") != 0)
    return luaL_error(L, "io.open: plugins may only read files (mode \"%s\")", mode);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushstring(L, path);
  lua_pushstring(L, mode);
  lua_call(L, 2, LUA_MULTRET);
  return lua_gettop(L) - 2;
}

static int l_load_text(lua_State *L) {
  /* load(chunk [, chunkname [, mode [, env]]]) with mode forced to text */
  luaL_checkany(L, 1);
  if (lua_gettop(L) < 3) lua_settop(L, 3);
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* Keep only the listed fields of global table `lib`. */
static void keep_fields(lua_State *L, const char *lib, const char *const *keep) {
  if (lua_getglobal(L, lib) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_newtable(L);
  for (const char *const *k = keep; *k; k++) {
    lua_getfield(L, -2, *k);
    lua_setfield(L, -2, *k);
  }
  lua_getglobal(L, "package"); /* require "os" must not find the full one */
  lua_getfield(L, -1, "loaded");
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, lib);
  lua_pop(L, 2);
  lua_setglobal(L, lib);
  lua_pop(L, 1);
}

static void sandbox(pk_lua *p, const char *plugin_dir) {
  lua_State *L = p->L;
  /* Budget-aware pcall in every mode. */
  lua_pushcfunction(L, l_pcall);
  lua_setglobal(L, "pcall");
  lua_pushcfunction(L, l_xpcall);
  lua_setglobal(L, "xpcall");
  lua_getglobal(L, "coroutine");
  lua_getfield(L, -1, "resume");
  lua_pushcclosure(L, l_resume, 1);
  lua_setfield(L, -2, "resume");
  lua_pop(L, 1);
  /* Modules: plugin dir first, never C modules unless unsafe. */
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", plugin_dir, plugin_dir);
  if (p->unsafe) {
    lua_getfield(L, -2, "path");
    lua_pushliteral(L, ";");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
  lua_setfield(L, -2, "path");
  if (p->unsafe) {
    lua_pop(L, 1);
    return;
  }
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pushnil(L);
  lua_setfield(L, -2, "loadlib");
  lua_getfield(L, -1, "searchers"); /* keep preload + Lua searchers only */
  lua_pushnil(L);
  lua_rawseti(L, -2, 4);
  lua_pushnil(L);
  lua_rawseti(L, -2, 3);
  lua_pop(L, 2);
  static const char *const os_keep[] = {"clock", "date", "difftime", "time", NULL};
  keep_fields(L, "os", os_keep);
  static const char *const io_keep[] = {"lines", "type", "open", NULL};
  lua_getglobal(L, "io");
  lua_getfield(L, -1, "open");
  lua_pushcclosure(L, l_io_open_ro, 1);
  lua_setfield(L, -2, "open");
  lua_pop(L, 1);
  keep_fields(L, "io", io_keep);
  static const char *const debug_keep[] = {"traceback", NULL};
  keep_fields(L, "debug", debug_keep);
  lua_pushnil(L);
  lua_setglobal(L, "dofile");
  lua_pushnil(L);
  lua_setglobal(L, "loadfile");
  lua_getglobal(L, "load");
  lua_pushcclosure(L, l_load_text, 1);
  lua_setglobal(L, "load");
}

/* ---------------------------------------------------------------- calling Lua */

/* Lua sees status names in lower case ("flying"), from the library's table. */
static void push_status(lua_State *L, int s) {
  char b[16];
  const char *n = pagekite_status_name(s);
  size_t i = 0;
  for (; n[i] && i < sizeof(b); i++) b[i] = (char)tolower((unsigned char)n[i]);
  lua_pushlstring(L, b, i);
}

/* Calls the function below nargs arguments with a fresh budget.  Returns 0
 * with nres results on the stack, or -1 with nothing (error logged). */
static int call_lua(pk_lua *p, const char *script, int nargs, int nres, long long budget,
                    const char *what) {
  lua_State *L = p->L;
  snprintf(p->current, sizeof(p->current), "%s", script);
  p->used = 0;
  p->over_budget = 0;
  p->limit = budget;
  int rc = lua_pcall(L, nargs, nres, 0);
  p->over_budget = 0;
  if (rc == LUA_OK) return 0;
  const char *msg = lua_tostring(L, -1);
  snprintf(p->last_error, sizeof(p->last_error), "%s",
           msg ? msg : (rc == LUA_ERRMEM ? "out of memory" : "(error object is not a string)"));
  pk_log(p->m, PK_LOG_ERROR, "Lua %s: %s failed: %s", script, what, p->last_error);
  lua_pop(L, 1);
  return -1;
}

static int on_loop(pk_lua *p) {
  uv_thread_t self = uv_thread_self();
  return p && p->L && uv_thread_equal(&self, &p->thread);
}

/* Runs every live hook of one kind; push_args pushes its arguments. */
static void run_hooks(pk_lua *p, int kind, void (*push_args)(lua_State *, const void *),
                      const void *arg, int nargs) {
  for (int i = 0; i < p->nhooks[kind] && p->L; i++) {
    pk_lua_hook *h = &p->hooks[kind][i];
    if (h->disabled) continue;
    lua_rawgeti(p->L, LUA_REGISTRYINDEX, h->ref);
    push_args(p->L, arg);
    if (call_lua(p, h->script, nargs, 0, p->budget, hook_names[kind]) != 0) {
      h->disabled = 1;
      pk_log(p->m, PK_LOG_ERROR, "Lua %s: %s hook disabled", h->script, hook_names[kind]);
    }
  }
}

/* ---------------------------------------------------------------- the pk table */

static int l_register(lua_State *L) {
  pk_lua *p = P(L);
  int kind = (int)lua_tointeger(L, lua_upvalueindex(1));
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (p->nhooks[kind] == p->caphooks[kind]) {
    int cap = p->caphooks[kind] ? p->caphooks[kind] * 2 : 4;
    pk_lua_hook *nh = realloc(p->hooks[kind], sizeof(pk_lua_hook) * (size_t)cap);
    if (!nh) return luaL_error(L, "out of memory");
    p->hooks[kind] = nh;
    p->caphooks[kind] = cap;
  }
  lua_pushvalue(L, 1);
  pk_lua_hook *h = &p->hooks[kind][p->nhooks[kind]++];
  h->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  h->disabled = 0;
  snprintf(h->script, sizeof(h->script), "%s", p->current);
  return 0;
}

static int l_log(lua_State *L) {
  pk_lua *p = P(L);
  int bits = (int)lua_tointeger(L, lua_upvalueindex(1));
  if (!(PK_GET(p->m->log_mask) & bits)) return 0;
  int n = lua_gettop(L); /* before luaL_buffinit, which may push a box */
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, ' ');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  pk_log(p->m, bits, "lua %s: %s", p->current, lua_tostring(L, -1));
  return 0;
}

static const struct {
  const char *name;
  int id;
} counter_names[] = {
#define PK_COUNTER_ROW(code, NAME, name) {name, code},
    PK_COUNTER_NAMES(PK_COUNTER_ROW)
#undef PK_COUNTER_ROW
};

static int l_counters(lua_State *L) {
  pk_mgr *m = P(L)->m;
  lua_newtable(L);
  for (size_t i = 0; i < sizeof(counter_names) / sizeof(counter_names[0]); i++) {
    lua_pushinteger(L, pagekite_get_counter((pagekite_mgr)(void *)m, counter_names[i].id));
    lua_setfield(L, -2, counter_names[i].name);
  }
  return 1;
}

static const char *kite_state(int s) {
  switch (s) {
    case PK_KITE_LIVE: return "live";
    case PK_KITE_REJECTED: return "rejected";
    case PK_KITE_DUPLICATE: return "duplicate";
    default: return "dead";
  }
}

static int l_status(lua_State *L) {
  pk_mgr *m = P(L)->m;
  int st = pagekite_get_status((pagekite_mgr)(void *)m);
  lua_newtable(L);
  lua_pushinteger(L, st);
  lua_setfield(L, -2, "code");
  push_status(L, st);
  lua_setfield(L, -2, "name");
  lua_pushboolean(L, pk_is_relay(m));
  lua_setfield(L, -2, "is_relay");
  lua_pushstring(L, m->app_id);
  lua_setfield(L, -2, "app_id");
  lua_pushstring(L, PK_VERSION);
  lua_setfield(L, -2, "version");
  lua_newtable(L);
  if (pk_is_relay(m)) {
    const pk_relay_kite *k = NULL;
    for (int i = 1; (k = pk_reg_next(&m->rkites, k)) != NULL; i++) {
      lua_newtable(L);
      lua_pushstring(L, k->proto);
      lua_setfield(L, -2, "proto");
      lua_pushstring(L, k->name);
      lua_setfield(L, -2, "name");
      lua_pushinteger(L, k->port);
      lua_setfield(L, -2, "port");
      lua_pushstring(L, k->tunnel ? "live" : "dead");
      lua_setfield(L, -2, "state");
      lua_rawseti(L, -2, i);
    }
  } else {
    for (int i = 0; i < m->nkites; i++) {
      pk_kite *k = &m->kites[i];
      lua_newtable(L);
      lua_pushstring(L, k->proto);
      lua_setfield(L, -2, "proto");
      lua_pushstring(L, k->name);
      lua_setfield(L, -2, "name");
      lua_pushinteger(L, k->pport);
      lua_setfield(L, -2, "port");
      lua_pushstring(L, kite_state(k->state));
      lua_setfield(L, -2, "state");
      lua_pushfstring(L, "%s:%d", k->backend, k->lport);
      lua_setfield(L, -2, "origin");
      lua_rawseti(L, -2, i + 1);
    }
  }
  lua_setfield(L, -2, "kites");
  return 1;
}

/* pk.setting_list(name): every value given for name, in order. */
static int l_setting_list(lua_State *L) {
  pk_lua *p = P(L);
  size_t n;
  const char *name = luaL_checklstring(L, 1, &n);
  lua_newtable(L);
  int j = 0;
  for (int i = 0; i < p->nsettings; i++)
    if (strncmp(p->settings[i], name, n) == 0 && p->settings[i][n] == '=') {
      lua_pushstring(L, p->settings[i] + n + 1);
      lua_rawseti(L, -2, ++j);
    }
  return 1;
}

static int l_now_ms(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)pk_now_ms(P(L)->m));
  return 1;
}

/* ---------------------------------------------------------------- pk.http_listen */

static void client_closed(uv_handle_t *h) {
  pk_lua_client *c = h->data;
  if (--c->handles == 0) {
    free(c->out);
    free(c);
  }
}

static void client_close(pk_lua_client *c) {
  if (c->closing) return;
  c->closing = 1;
  pk_lua *p = c->p;
  for (pk_lua_client **pp = &p->clients; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      p->nclients--;
      break;
    }
  uv_close((uv_handle_t *)&c->tcp, client_closed);
  uv_close((uv_handle_t *)&c->timer, client_closed);
}

static void client_written(uv_write_t *req, int status) { client_close(req->data); }

static const char *reason_phrase(int s) {
  switch (s) {
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

static int header_safe(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == 0) return 0;
  return 1;
}

static void client_respond(pk_lua_client *c, int status, const char *ctype, const char *body,
                           size_t blen, int head_only) {
  if (c->answered || c->closing) return;
  c->answered = 1;
  uv_read_stop((uv_stream_t *)&c->tcp);
  if (!ctype || !header_safe(ctype, strlen(ctype))) ctype = "text/plain";
  if (status < 100 || status > 999) status = 500;
  char head[512];
  pk_wbuf hb;
  pk_wbuf_init(&hb, head, sizeof(head));
  pk_wire_http_response_head(&hb, status, reason_phrase(status), ctype,
                             "Cache-Control: no-store\r\n", blen);
  size_t hn = pk_wbuf_ok(&hb) ? hb.len : 0;
  size_t total = (size_t)hn + (head_only ? 0 : blen);
  c->out = malloc(total ? total : 1);
  if (!c->out) {
    client_close(c);
    return;
  }
  memcpy(c->out, head, (size_t)hn);
  if (!head_only && blen) memcpy(c->out + hn, body, blen);
  uv_buf_t b = uv_buf_init(c->out, (unsigned)total);
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, client_written) != 0) client_close(c);
}

static void push_head_table(lua_State *L, const pk_http_head *h) {
  lua_newtable(L);
  lua_pushlstring(L, h->method.p, h->method.n);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, h->path.p, h->path.n);
  lua_setfield(L, -2, "path");
  lua_newtable(L);
  for (int i = 0; i < h->nheaders; i++) {
    char name[128];
    size_t n = h->names[i].n < sizeof(name) - 1 ? h->names[i].n : sizeof(name) - 1;
    for (size_t j = 0; j < n; j++) {
      char ch = h->names[i].p[j];
      name[j] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    name[n] = 0;
    if (lua_getfield(L, -1, name) == LUA_TSTRING) { /* repeated: join with ", " */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, h->values[i].p, h->values[i].n);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, h->values[i].p, h->values[i].n);
    }
    lua_setfield(L, -2, name);
  }
  lua_setfield(L, -2, "headers");
}

static void client_request(pk_lua_client *c, const pk_http_head *h) {
  pk_lua *p = c->p;
  lua_State *L = p->L;
  int head_only = h->method.n == 4 && memcmp(h->method.p, "HEAD", 4) == 0;
  if (!L) {
    client_respond(c, 503, "text/plain", "stopping\n", 9, head_only);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->srv->ref);
  push_head_table(L, h);
  if (call_lua(p, c->srv->script, 1, 3, p->budget, "http handler") != 0) {
    client_respond(c, 500, "text/plain", "plugin error\n", 13, head_only);
    return;
  }
  int status = lua_isinteger(L, -3) ? (int)lua_tointeger(L, -3) : 200;
  const char *ctype = lua_isstring(L, -2) ? lua_tostring(L, -2) : "text/plain";
  size_t blen = 0;
  const char *body = lua_isstring(L, -1) ? lua_tolstring(L, -1, &blen) : "";
  client_respond(c, status, ctype, body, blen, head_only);
  lua_pop(L, 3);
}

static void client_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *buf) {
  pk_lua_client *c = h->data;
  *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  pk_lua_client *c = s->data;
  if (n < 0) {
    client_close(c);
    return;
  }
  if (n == 0 || c->answered) return;
  c->len += (size_t)n;
  pk_http_head h;
  int r = pk_wire_parse_http_head(c->buf, c->len, sizeof(c->buf), &h);
  if (r == 1 && !h.is_response) {
    client_request(c, &h);
  } else if (r == PK_WIRE_ETOOBIG || c->len >= sizeof(c->buf)) {
    client_respond(c, 431, "text/plain", "request head too large\n", 23, 0);
  } else if (r != PK_WIRE_NEED_MORE) {
    client_respond(c, 400, "text/plain", "bad request\n", 12, 0);
  }
}

static void client_timeout(uv_timer_t *t) {
  pk_lua_client *c = t->data;
  if (!c->answered) client_close(c);
}

static void server_closed(uv_handle_t *h) { free(h->data); }

static void server_accept(uv_stream_t *s, int status) {
  pk_lua_http *srv = s->data;
  pk_lua *p = srv->p;
  if (status < 0) return;
  pk_lua_client *c = calloc(1, sizeof(*c));
  if (!c) return;
  c->p = p;
  c->srv = srv;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  c->next = p->clients;
  p->clients = c;
  p->nclients++;
  if (uv_accept(s, (uv_stream_t *)&c->tcp) != 0 || p->nclients > PK_LUA_HTTP_MAX_CLIENTS) {
    client_close(c);
    return;
  }
  uv_timer_start(&c->timer, client_timeout, PK_LUA_HTTP_TIMEOUT_MS, 0);
  if (uv_read_start((uv_stream_t *)&c->tcp, client_alloc, client_read) != 0) client_close(c);
}

/* pk.http_listen(host, port, handler) -> port | nil, err */
static int l_http_listen(lua_State *L) {
  pk_lua *p = P(L);
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port out of range");
  struct sockaddr_storage ss;
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "not an IP address: %s", host);
    return 2;
  }
  pk_lua_http *srv = calloc(1, sizeof(*srv));
  if (!srv) return luaL_error(L, "out of memory");
  srv->p = p;
  uv_tcp_init(&p->m->loop, &srv->tcp);
  srv->tcp.data = srv;
  int rc = uv_tcp_bind(&srv->tcp, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&srv->tcp, 32, server_accept);
  if (rc != 0) {
    uv_close((uv_handle_t *)&srv->tcp, server_closed);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot listen on %s:%d: %s", host, (int)port, uv_strerror(rc));
    return 2;
  }
  struct sockaddr_storage bound;
  int blen = sizeof(bound);
  int bport = (int)port;
  if (uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&bound, &blen) == 0)
    pk_addr_str((struct sockaddr *)&bound, (char[64]){0}, 64, &bport);
  lua_pushvalue(L, 3);
  srv->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  snprintf(srv->script, sizeof(srv->script), "%s", p->current);
  srv->next = p->servers;
  p->servers = srv;
  lua_pushinteger(L, bport);
  return 1;
}

static void push_pk_table(pk_lua *p) {
  lua_State *L = p->L;
  lua_newtable(L);
  for (int k = 0; k < HK_N; k++) {
    lua_pushinteger(L, k);
    lua_pushcclosure(L, l_register, 1);
    lua_setfield(L, -2, hook_names[k]);
  }
  lua_pushinteger(L, PK_LOG_LUA_INFO);
  lua_pushcclosure(L, l_log, 1);
  lua_setfield(L, -2, "log_info");
  lua_pushinteger(L, PK_LOG_LUA_DEBUG);
  lua_pushcclosure(L, l_log, 1);
  lua_setfield(L, -2, "log_debug");
  lua_pushcfunction(L, l_status);
  lua_setfield(L, -2, "status");
  lua_pushcfunction(L, l_counters);
  lua_setfield(L, -2, "counters");
  lua_pushcfunction(L, l_http_listen);
  lua_setfield(L, -2, "http_listen");
  lua_pushcfunction(L, l_setting_list);
  lua_setfield(L, -2, "setting_list");
  lua_pushcfunction(L, l_now_ms);
  lua_setfield(L, -2, "now_ms");
  lua_pushstring(L, PK_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushboolean(L, pk_is_relay(p->m));
  lua_setfield(L, -2, "is_relay");
  lua_pushboolean(L, p->unsafe);
  lua_setfield(L, -2, "unsafe");
  lua_newtable(L);
  for (int i = 0; i < p->nsettings; i++) {
    const char *eq = strchr(p->settings[i], '=');
    lua_pushlstring(L, p->settings[i], (size_t)(eq - p->settings[i]));
    lua_pushstring(L, eq + 1);
    lua_settable(L, -3);
  }
  lua_setfield(L, -2, "settings");
  lua_setglobal(L, "pk");
}

/* ---------------------------------------------------------------- lifecycle */

/* A plugin that was asked for and cannot run is an error, never a skip:
 * its rules (access control...) would silently not apply. */
static int load_script(pk_lua *p, const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  snprintf(p->current, sizeof(p->current), "%s", base);
  if (luaL_loadfilex(p->L, path, "t") != LUA_OK) {
    pk_fail(PK_EIO, "pagekite_thread_start: Lua plugin %s cannot load: %s", path,
            lua_tostring(p->L, -1));
    pk_log(p->m, PK_LOG_ERROR, "Lua %s: cannot load: %s", base, lua_tostring(p->L, -1));
    lua_pop(p->L, 1);
    return -1;
  }
  if (call_lua(p, base, 0, 0, p->budget * PK_LUA_LOAD_BUDGET_FACTOR, "loading") != 0) {
    pk_fail(PK_EIO, "pagekite_thread_start: Lua plugin %s failed to load: %s", path,
            p->last_error);
    return -1;
  }
  pk_log(p->m, PK_LOG_MANAGER_INFO, "Lua plugin %s loaded", base);
  return 0;
}

/* Where the default plugins are: the plugin_dir setting, else the install
 * prefix of the library in use (its directory plus the configured relative
 * path, so a relocated prefix works), else the configured absolute path.
 * The source tree only for the library as built, in its build tree. */
static void default_plugin_dir(char *out, size_t n) {
  snprintf(out, n, "%s", PK_LUA_PLUGIN_DIR);
#if defined(PK_LUA_PLUGIN_RELDIR) && defined(PK_LUA_BUILD_LIBDIR) && defined(PK_LUA_SOURCE_PLUGIN_DIR)
  Dl_info info;
  if (!dladdr((void *)&pagekite_enable_lua_plugins, &info) || !info.dli_fname) return;
  char lib[PATH_MAX], libdir[PATH_MAX], built[PATH_MAX];
  if (!realpath(info.dli_fname, lib)) return;
  char *slash = strrchr(lib, '/');
  if (!slash) return;
  *slash = '\0';
  snprintf(libdir, sizeof(libdir), "%s", lib);
  if (realpath(PK_LUA_BUILD_LIBDIR, built) && strcmp(built, libdir) == 0) {
    snprintf(out, n, "%s", PK_LUA_SOURCE_PLUGIN_DIR);
    return;
  }
  char rel[PATH_MAX + 64];
  snprintf(rel, sizeof(rel), "%s/%s", libdir, PK_LUA_PLUGIN_RELDIR);
  struct stat st;
  if (stat(rel, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(out, n, "%s", rel);
#endif
}

int pk_plugins_start(pk_mgr *m) {
  pk_lua *p = m->plugins;
  if (!p) return 0;
  p->thread = uv_thread_self();
  p->unsafe = setting_int(p, "unsafe", 0, 0, 1) != 0;
  p->budget = setting_int(p, "lua_budget", PK_LUA_BUDGET, 10000, 1000000000LL);
  p->mem_limit = (size_t)setting_int(p, "lua_memory_mb", PK_LUA_MEMORY >> 20, 1, 4096) << 20;
  p->mem_used = 0;
  for (int k = 0; k < HK_N; k++) p->nhooks[k] = 0;
  p->L = lua_newstate(l_alloc, p);
  if (!p->L) {
    pk_fail(PK_ENOMEM, "cannot create a Lua state");
    return -1;
  }
  *(pk_lua **)lua_getextraspace(p->L) = p;
  luaL_openlibs(p->L);
  char dirbuf[PATH_MAX];
  const char *dir = setting(p, "plugin_dir");
  if (!dir || !*dir) {
    default_plugin_dir(dirbuf, sizeof(dirbuf));
    dir = dirbuf;
  }
  sandbox(p, dir);
  push_pk_table(p);
  lua_sethook(p->L, count_hook, LUA_MASKCOUNT, PK_LUA_HOOK_STEP);
  static const char *const defaults[][2] = {{"web_ui", "web_ui="}, {"access", "access."}};
  for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
    if (!p->enable_defaults && !has_setting_prefix(p, defaults[i][1])) continue;
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s.lua", dir, defaults[i][0]);
    if (load_script(p, path) != 0) return -1;
  }
  for (int i = 0; i < p->nscripts && p->L; i++)
    if (load_script(p, p->scripts[i]) != 0) return -1;
  lua_gc(p->L, LUA_GCCOLLECT);
  return 0;
}

void pk_plugins_adopt_thread(pk_mgr *m) {
  pk_lua *p = m->plugins;
  if (p) p->thread = uv_thread_self();
}

void pk_plugins_stop(pk_mgr *m) {
  pk_lua *p = m->plugins;
  if (!p || !p->L) return;
  while (p->clients) client_close(p->clients);
  for (pk_lua_http *s = p->servers, *next; s; s = next) {
    next = s->next;
    uv_close((uv_handle_t *)&s->tcp, server_closed);
  }
  p->servers = NULL;
  lua_close(p->L);
  p->L = NULL;
}

void pk_plugins_free(pk_mgr *m) {
  pk_lua *p = m->plugins;
  if (!p) return;
  if (p->L) lua_close(p->L); /* never started, or the loop died */
  for (int i = 0; i < p->nsettings; i++) free(p->settings[i]);
  for (int i = 0; i < p->nscripts; i++) free(p->scripts[i]);
  free(p->settings);
  free(p->scripts);
  for (int k = 0; k < HK_N; k++) free(p->hooks[k]);
  free(p);
  m->plugins = NULL;
}

/* ---------------------------------------------------------------- hooks */

static void push_stream_info(lua_State *L, const pk_stream_info *info) {
  lua_newtable(L);
  lua_pushstring(L, info->proto ? info->proto : "");
  lua_setfield(L, -2, "proto");
  lua_pushstring(L, info->kite ? info->kite : "");
  lua_setfield(L, -2, "kite");
  lua_pushinteger(L, info->port);
  lua_setfield(L, -2, "port");
  lua_pushstring(L, info->remote_ip ? info->remote_ip : "");
  lua_setfield(L, -2, "remote_ip");
  lua_pushinteger(L, info->remote_port);
  lua_setfield(L, -2, "remote_port");
  lua_pushboolean(L, info->is_relay);
  lua_setfield(L, -2, "is_relay");
  pk_http_head h;
  if (info->head && info->head_len &&
      pk_wire_parse_http_head(info->head, info->head_len, info->head_len, &h) == 1 &&
      !h.is_response) {
    lua_pushlstring(L, h.method.p, h.method.n);
    lua_setfield(L, -2, "method");
    lua_pushlstring(L, h.path.p, h.path.n);
    lua_setfield(L, -2, "path");
    push_head_table(L, &h); /* borrow its headers field */
    lua_getfield(L, -1, "headers");
    lua_setfield(L, -3, "headers");
    lua_pop(L, 1);
  } else {
    lua_newtable(L);
    lua_setfield(L, -2, "headers");
  }
}

static int valid_token(const char *s, size_t n) {
  if (n == 0 || n > 100) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?={}", c)) return 0;
  }
  return 1;
}

/* Appends "Name: value\r\n" for each pair of the table at idx. */
static void add_header_lines(pk_lua *p, int idx, char *dst, size_t dsz, const char *what) {
  lua_State *L = p->L;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    size_t nn = 0, vn = 0;
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nn) : NULL;
    const char *val = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER
                          ? lua_tolstring(L, -1, &vn)
                          : NULL;
    size_t used = strlen(dst);
    if (!name || !val || !valid_token(name, nn) || !header_safe(val, vn)) {
      pk_log(p->m, PK_LOG_LUA_DEBUG, "lua %s: %s: skipped a bad header", p->current, what);
    } else if (used + nn + vn + 4 < dsz) {
      snprintf(dst + used, dsz - used, "%s: %s\r\n", name, val);
    } else {
      pk_log(p->m, PK_LOG_LUA_DEBUG, "lua %s: %s: no room for header %s", p->current, what, name);
    }
    lua_pop(L, 1);
  }
}

/* Reads the hook's result (top of stack) into out; returns the action. */
/* The names in the "del_headers" list on top of the stack, comma-joined.
 * Returns 1 when any was taken. */
static int del_header_names(lua_State *L, pk_hook_result *out) {
  int any = 0;
  lua_Integer n = luaL_len(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    size_t len;
    lua_geti(L, -1, i);
    const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    size_t used = strlen(out->del_headers);
    if (name && valid_token(name, len) && used + len + 2 < sizeof(out->del_headers)) {
      snprintf(out->del_headers + used, sizeof(out->del_headers) - used, "%s%s", used ? "," : "",
               name);
      any = 1;
    }
    lua_pop(L, 1);
  }
  return any;
}

static int stream_result(pk_lua *p, pk_hook_result *out) {
  lua_State *L = p->L;
  int t = lua_gettop(L);
  if (lua_isnil(L, t) || (lua_isboolean(L, t) && lua_toboolean(L, t))) return PK_HOOK_ALLOW;
  if (lua_type(L, t) == LUA_TSTRING) {
    const char *s = lua_tostring(L, t);
    if (strcmp(s, "allow") == 0) return PK_HOOK_ALLOW;
    if (strcmp(s, "reject") == 0) {
      out->status = 403;
      return PK_HOOK_REJECT;
    }
    pk_log(p->m, PK_LOG_LUA_DEBUG, "lua %s: on_stream: unknown answer \"%s\"", p->current, s);
    return PK_HOOK_ALLOW;
  }
  if (lua_isboolean(L, t)) { /* false */
    out->status = 403;
    return PK_HOOK_REJECT;
  }
  if (!lua_istable(L, t)) return PK_HOOK_ALLOW;
  int rt = lua_getfield(L, t, "reject");
  if (rt != LUA_TNIL && !(rt == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
    out->status = rt == LUA_TNUMBER ? (int)lua_tointeger(L, -1) : 403;
    lua_pop(L, 1);
    if (lua_getfield(L, t, "reason") == LUA_TSTRING) {
      size_t n;
      const char *s = lua_tolstring(L, -1, &n);
      if (header_safe(s, n)) snprintf(out->reason, sizeof(out->reason), "%s", s);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, t, "body") == LUA_TSTRING)
      snprintf(out->body, sizeof(out->body), "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    if (lua_getfield(L, t, "headers") == LUA_TTABLE)
      add_header_lines(p, lua_gettop(L), out->extra_headers, sizeof(out->extra_headers),
                       "reject headers");
    lua_pop(L, 1);
    return PK_HOOK_REJECT;
  }
  lua_pop(L, 1);
  int action = PK_HOOK_ALLOW;
  if (lua_getfield(L, t, "add_headers") == LUA_TTABLE) {
    add_header_lines(p, lua_gettop(L), out->add_headers, sizeof(out->add_headers), "add_headers");
    action = PK_HOOK_REWRITE;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, t, "del_headers") == LUA_TTABLE && del_header_names(L, out))
    action = PK_HOOK_REWRITE;
  lua_pop(L, 1);
  return action;
}

int pk_plugins_on_stream(pk_mgr *m, const pk_stream_info *info, pk_hook_result *out) {
  pk_lua *p = m->plugins;
  out->action = PK_HOOK_ALLOW;
  if (!on_loop(p) || p->nhooks[HK_STREAM] == 0) return PK_HOOK_ALLOW;
  lua_State *L = p->L;
  int base = lua_gettop(L);
  push_stream_info(L, info);
  int action = PK_HOOK_ALLOW;
  for (int i = 0; i < p->nhooks[HK_STREAM] && action != PK_HOOK_REJECT; i++) {
    pk_lua_hook *h = &p->hooks[HK_STREAM][i];
    if (h->disabled) continue;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref);
    lua_pushvalue(L, base + 1);
    if (call_lua(p, h->script, 1, 1, p->budget, "on_stream") != 0) {
      h->disabled = 1;
      pk_log(m, PK_LOG_ERROR, "Lua %s: on_stream hook disabled", h->script);
      continue;
    }
    int a = stream_result(p, out);
    if (a == PK_HOOK_REJECT || (a == PK_HOOK_REWRITE && action == PK_HOOK_ALLOW)) action = a;
    lua_settop(L, base + 1);
  }
  lua_settop(L, base);
  out->action = action;
  return action;
}

static void push_tunnel_args(lua_State *L, const void *arg) {
  const void *const *a = arg;
  lua_pushboolean(L, *(const int *)a[0]);
  lua_pushstring(L, a[1] ? (const char *)a[1] : "");
}

void pk_plugins_on_tunnel(pk_mgr *m, int up, const char *peer) {
  pk_lua *p = m->plugins;
  if (!on_loop(p) || p->nhooks[HK_TUNNEL] == 0) return;
  const void *args[2] = {&up, peer};
  run_hooks(p, HK_TUNNEL, push_tunnel_args, args, 2);
}

static void push_status_args(lua_State *L, const void *arg) {
  int s = *(const int *)arg;
  lua_pushinteger(L, s);
  push_status(L, s);
}

void pk_plugins_on_status(pk_mgr *m, int status) {
  pk_lua *p = m->plugins;
  if (!p || !p->L) return;
  if (!on_loop(p)) { /* delivered by the next tick, on the loop thread */
    p->pending_status = status;
    return;
  }
  if (p->nhooks[HK_STATUS]) run_hooks(p, HK_STATUS, push_status_args, &status, 2);
}

static void push_tick_args(lua_State *L, const void *arg) {
  lua_pushinteger(L, (lua_Integer) * (const uint64_t *)arg);
}

void pk_plugins_on_tick(pk_mgr *m) {
  pk_lua *p = m->plugins;
  if (!on_loop(p)) return;
  if (p->pending_status >= 0) {
    int s = p->pending_status;
    p->pending_status = -1;
    pk_plugins_on_status(m, s);
  }
  if (p->nhooks[HK_TICK] == 0 || !p->L) return;
  uint64_t now = pk_now_ms(m);
  run_hooks(p, HK_TICK, push_tick_args, &now, 1);
  if (p->L) {
    p->used = 0;
    lua_gc(p->L, LUA_GCSTEP, 0);
  }
}
