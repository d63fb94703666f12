/* plugins_none.c - the plugin hooks when the library is built without Lua. */
#include "internal.h"
#include "plugins.h"

int pk_plugins_start(pk_mgr *m) { return 0; }
void pk_plugins_adopt_thread(pk_mgr *m) {}
void pk_plugins_stop(pk_mgr *m) {}
void pk_plugins_free(pk_mgr *m) {}
int pk_plugins_on_stream(pk_mgr *m, const pk_stream_info *info, pk_hook_result *out) {
  out->action = PK_HOOK_ALLOW;
  return PK_HOOK_ALLOW;
}
void pk_plugins_on_tunnel(pk_mgr *m, int up, const char *peer) {}
void pk_plugins_on_status(pk_mgr *m, int status) {}
void pk_plugins_on_tick(pk_mgr *m) {}

/* The experimental plugin API fails cleanly in a build without Lua. */
PK_API int pagekite_enable_lua_plugins(pagekite_mgr mgr, int enable_defaults, char **settings) {
  pk_fail(PK_EUNSUPPORTED, "pagekite_enable_lua_plugins: built without Lua plugins");
  return -1;
}

PK_API int pagekite_load_lua_plugin(pagekite_mgr mgr, const char *path) {
  pk_fail(PK_EUNSUPPORTED, "pagekite_load_lua_plugin: built without Lua plugins");
  return -1;
}
