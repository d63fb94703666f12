/* kiteauth.h - kite authentication, both sides, with no sockets.
 *
 * Relay: an "X-PageKite: proto[-port]:name:bsalt:token:sign" request is
 * answered with a challenge (X-PageKite-SignThis) when it carries no token,
 * else checked: the relay's own timestamped token, the kite's signature with
 * the secret the relay's policy names, single use of the challenge
 * (replay.c), then the policy's claim (duplicates, quota).  Connector: signed
 * request lines, and the relay's answers read back.  pagekite.py's
 * signToken/checkSignature formulas are in sign.h.
 */
#ifndef PK_KITEAUTH_H
#define PK_KITEAUTH_H

#include "bounds.h"
#include "replay.h"
#include "sign.h"
#include "wire.h"

typedef struct {
  char protoport[40]; /* "http" or "http-8080", lower case */
  char proto[40];     /* "http" */
  int port;           /* 0: any port; -1: not a number */
  char name[PK_NAME_MAX];
  char bsalt[PK_TOKEN_LEN + 8];
  char token[PK_TOKEN_LEN + 8];
  char sign[PK_TOKEN_LEN + 8];
  char what[PK_NAME_MAX + 100]; /* "protoport:name:bsalt", how answers name it */
} pk_kite_req;

/* Parses a request line (name and proto lower-cased).  0, or -1 when it is
 * not five colon-separated fields of sane lengths. */
int pk_kite_req_parse(pk_slice v, pk_kite_req *out);

typedef enum {
  PK_AUTH_CHALLENGED = 0, /* a SignThis went out */
  PK_AUTH_OK,
  PK_AUTH_INVALID,   /* with a reason: signature, replay, unknown, port, proto, quota */
  PK_AUTH_DUPLICATE, /* live on another tunnel */
  PK_AUTH_IGNORED,   /* a malformed line, or no more challenges for this tunnel */
  PK_AUTH_PENDING    /* asked of a remote authority (--authdomain): answered later */
} pk_auth_verdict;

/* secret() sets *reason to this (and returns NULL) for a kite that no static
 * secret signs but a remote authority vouches for (--authdomain). */
extern const char pk_auth_remote[];

/* What the relay's policy says; the relay role supplies it. */
typedef struct {
  const char *relay_secret;
  pk_replay *replay;
  long long now; /* seconds */
  void *ctx;
  /* The secret that signs this kite (the most specific --domain), or NULL
   * with *reason set ("unknown", "port", "proto"). */
  const char *(*secret)(void *ctx, const pk_kite_req *k, const char **reason);
  /* Every check passed: take the kite.  PK_AUTH_OK, PK_AUTH_DUPLICATE, or
   * PK_AUTH_INVALID with *reason ("quota"). */
  pk_auth_verdict (*claim)(void *ctx, const pk_kite_req *k, const char **reason);
  /* A kite secret() called remote, once the relay's own token and the
   * replay check passed (the signature is the authority's to check):
   * PK_AUTH_PENDING when the authority was asked (pk_auth_relay_finish
   * follows), PK_AUTH_OK to claim it now, PK_AUTH_INVALID with *reason.
   * NULL: remote kites are refused ("unknown"). */
  pk_auth_verdict (*remote)(void *ctx, const pk_kite_req *k, const char **reason);
} pk_auth_relay;

/* Answers one request into out (the header lines of the reply); returns the
 * verdict and, for PK_AUTH_INVALID, *reason.  may_challenge: 0 when this
 * tunnel has asked for too many challenges already. */
pk_auth_verdict pk_auth_relay_request(const pk_auth_relay *a, const pk_kite_req *k,
                                      int may_challenge, pk_wbuf *out, const char **reason);

/* The authority's answer for a request left PENDING: ok claims the kite
 * (OK or DUPLICATE lines), else it is refused with reason.  The lines go to
 * out; returns the verdict, *why the reason of an INVALID. */
pk_auth_verdict pk_auth_relay_finish(const pk_auth_relay *a, const pk_kite_req *k, int ok,
                                     const char *reason, pk_wbuf *out, const char **why);

/* Connector: the request line for one of our kites.  fsalt: the relay's
 * challenge token, or NULL/"" to ask for one. */
int pk_auth_sign_request(pk_wbuf *out, const char *protoport, const char *name,
                         const char *bsalt, const char *fsalt, const char *secret);

typedef enum {
  PK_ANS_NONE = 0,
  PK_ANS_OK,
  PK_ANS_INVALID,
  PK_ANS_WHY,       /* detail: the reason */
  PK_ANS_DUPLICATE,
  PK_ANS_SIGNTHIS,  /* detail: the token to sign */
  PK_ANS_SESSION,   /* detail: the session id */
  PK_ANS_FEATURE,   /* detail: the feature name */
  PK_ANS_MOTD       /* detail: the relay's message of the day, decoded */
} pk_answer_kind;

typedef struct {
  pk_answer_kind kind;
  char protoport[40];
  char name[PK_NAME_MAX];
  char detail[PK_MOTD_MAX + 1]; /* a token, a reason, a feature or the MOTD */
} pk_auth_answer;

/* Reads one header of a relay's answer (handshake head or NOOP chunk).
 * Returns the kind (PK_ANS_NONE for headers that are not answers). */
pk_answer_kind pk_auth_parse_answer(pk_slice name, pk_slice value, pk_auth_answer *out);

#endif
