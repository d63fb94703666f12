/* role.h - what makes a manager a relay or a connector: one table of
 * operations each (relay.c, connector.c).  Shared code (manager, tunnel,
 * stream) calls through the table and never asks which role it serves.
 * Model: curl's connection filter types (struct Curl_cftype). */
#ifndef PK_ROLE_H
#define PK_ROLE_H

#include "wire.h"

typedef struct pk_mgr pk_mgr;
typedef struct pk_tunnel pk_tunnel;

typedef struct {
  const char *tunnel_name; /* for logs: "from connector" / "to relay" */
  /* Runs on the loop thread when it starts; 0 or -1 (the reason set). */
  int (*start)(pk_mgr *m);
  /* Before thread_start returns: what must fail thread_start (listeners). */
  int (*bind)(pk_mgr *m);
  void (*stop)(pk_mgr *m);
  void (*housekeep)(pk_mgr *m);
  /* Data for a SID the tunnel does not know: a new stream, or one gone. */
  void (*on_new_stream)(pk_tunnel *t, const pk_chunk *ch);
  /* A NOOP chunk's headers: kite requests (relay) or results (connector). */
  void (*on_control)(pk_tunnel *t, const pk_slice *names, const pk_slice *values, int n);
  /* The tunnel ended: its kites and references go. */
  void (*tunnel_closed)(pk_tunnel *t);
  /* Who is at the other end, for plugins and logs. */
  const char *(*peer_name)(pk_tunnel *t);
} pk_role_ops;

extern const pk_role_ops pk_relay_role, pk_connector_role;

#endif
