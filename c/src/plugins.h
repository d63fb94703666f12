/* plugins.h - hooks the core calls at well-defined points.  With Lua
 * (plugins_lua.c) they run plugin scripts on the loop thread; without it
 * (plugins_none.c) they are no-ops that allow everything. */
#ifndef PK_PLUGINS_H
#define PK_PLUGINS_H

#include <stddef.h>

typedef struct pk_mgr pk_mgr;

/* A new incoming stream, before it reaches the origin (connector) or the
 * tunnel (relay).  head is the HTTP request head (request line + headers +
 * blank line) for http/websocket streams when it was complete in the first
 * bytes, else NULL. */
typedef struct {
  int is_relay;
  const char *proto;
  const char *kite;
  int port;
  const char *remote_ip;
  int remote_port;
  const char *head;
  size_t head_len;
} pk_stream_info;

#define PK_HOOK_ALLOW 0
#define PK_HOOK_REJECT 1  /* answer with status + body, close the stream */
#define PK_HOOK_REWRITE 2 /* forward, with the header edits below */

typedef struct {
  int action;
  int status;               /* REJECT: HTTP status code (non-HTTP streams are just closed) */
  char reason[64];          /* REJECT: reason phrase */
  char body[2048];          /* REJECT: body (text/html) */
  char extra_headers[1024]; /* REJECT: extra "Name: value\r\n" lines (e.g. WWW-Authenticate) */
  char add_headers[2048];   /* REWRITE: "Name: value\r\n" lines to add */
  char del_headers[512];    /* REWRITE: comma-separated header names to remove */
} pk_hook_result;

/* In pagekite_thread_start, before the loop thread runs: 0, or -1 with the
 * reason recorded (a plugin that cannot load refuses service). */
int pk_plugins_start(pk_mgr *m);
void pk_plugins_adopt_thread(pk_mgr *m); /* loop thread, first thing */
void pk_plugins_stop(pk_mgr *m);   /* loop thread, on shutdown */
void pk_plugins_free(pk_mgr *m);   /* pagekite_free */
int pk_plugins_on_stream(pk_mgr *m, const pk_stream_info *info, pk_hook_result *out);
void pk_plugins_on_tunnel(pk_mgr *m, int up, const char *peer);
void pk_plugins_on_status(pk_mgr *m, int status);
void pk_plugins_on_tick(pk_mgr *m);

#endif
