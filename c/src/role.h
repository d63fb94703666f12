/* role.h - what makes a manager a relay or a connector: one table of
 * operations each (relay.c, connector.c).  Shared code (manager, tunnel,
 * stream) calls through the table and never asks which role it serves.
 * Model: curl's connection filter types (struct Curl_cftype). */
#ifndef PK_ROLE_H
#define PK_ROLE_H

#include "kiteauth.h"
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
  /* The handshake's events (the session does the protocol, handshake.c);
   * each role fills in its own and leaves the other's NULL. */
  /* Relay: the kite policy for one request (see pk_session_cb.policy). */
  void (*auth_policy)(pk_tunnel *t, pk_slice replace, pk_auth_relay *a);
  /* Relay: one kite request's verdict, for logs and counters. */
  void (*kite_verdict)(pk_tunnel *t, const pk_kite_req *k, pk_auth_verdict v, const char *why);
  /* Connector: the relay's answer about one kite, or its session id. */
  void (*kite_answer)(pk_tunnel *t, const pk_auth_answer *a);
  /* Connector: challenges only a new tunnel can answer (old relays). */
  void (*resign)(pk_tunnel *t);
  /* Connector: the relay accepted the tunnel. */
  void (*opened)(pk_tunnel *t);
  /* The tunnel ended: its kites and references go. */
  void (*tunnel_closed)(pk_tunnel *t);
  /* The configuration changed from another thread (pk_mgr.reconfigured):
   * apply it to what is live.  May be NULL. */
  void (*reconfigure)(pk_mgr *m);
  /* Who is at the other end, for plugins and logs. */
  const char *(*peer_name)(pk_tunnel *t);
} pk_role_ops;

extern const pk_role_ops pk_relay_role, pk_connector_role;

#endif
