/* internal.h - private structures shared by the core modules.
 *
 * Ownership: the manager owns every pool.  A pk_conn is one socket (tunnel,
 * stream to an origin or from a client, relay connection being classified,
 * relay ping, DDNS request); it is taken from the conn pool by pk_conn_new()
 * and goes back only in the uv_close callback (one teardown path).
 */
#ifndef PK_INTERNAL_H
#define PK_INTERNAL_H

#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>
#include <zlib.h>

#include "pagekite.h"
#include "sign.h"
#include "wire.h"
#include "plugins.h"
#include "iplimit.h"
#include "acl.h"
#include "registry.h"
#include "domains.h"
#include "replay.h"
#include "httpfwd.h"
#include "proxy.h"
#include "proxyproto.h"
#include "session.h"
#include "kiteauth.h"
#include "role.h"
#include "admin.h"
#include "authdns.h"

#define PK_API __attribute__((visibility("default")))

#include "bounds.h"

typedef struct pk_mgr pk_mgr;
typedef struct pk_conn pk_conn;
typedef struct pk_tunnel pk_tunnel;
typedef struct pk_block pk_block;

/* The private headers, one per module; the order follows what each uses. */
#include "pool.h"
#include "connector.h"
#include "relay.h"
#include "conn.h"
#include "tunnel.h"
#include "manager.h"

#endif
