/* authapp_proto.h - pagekite.py's auth app protocol, with no processes or
 * sockets: what the relay sends an auth app and how it reads the answers.
 *
 * An "--authdomain=[kite-domain:]/path/to/app" hands kite requests to an
 * external program (pagekite.py's AuthApp and LookupDomainQuota, manual.py's
 * MAN_TUNNEL_AUTH):
 *   app --capabilities       prints words: SERVER, AUTH, ZK-AUTH (any case)
 *   app --auth NAME          prints a JSON object: "secret" (the kite's
 *                            shared secret: the relay checks the signature)
 *                            or "error", and optional "quota_kb",
 *                            "quota_days", "quota_conns", "ips_per_sec-ips",
 *                            "ips_per_sec-secs", "reason"
 *   app --zk-auth QUERY      prints {"hostname", "alias", "ips"}: what a DNS
 *                            lookup of QUERY would say (authdns.h decodes it);
 *                            the app checks the signature itself
 *   app --server             reads such queries, one a line ("--auth NAME"),
 *                            and answers each with one line
 * An app that lists ZK-AUTH is asked --zk-auth, any other --auth, as
 * pagekite.py chooses; SERVER means one long-lived child.  authapp.c runs
 * the processes; this module only builds and parses bytes, so that it can
 * be unit-tested (tests/c/test_authapp.c) and fuzzed (fuzz_authapp.c).
 */
#ifndef PK_AUTHAPP_PROTO_H
#define PK_AUTHAPP_PROTO_H

#include <stddef.h>

#include "authdns.h"
#include "bounds.h"

#define PK_AUTHAPP_LINE_MAX 4096 /* one answer (or --capabilities output), bytes */
#define PK_AUTHAPP_ARG_MAX 1024  /* one query argument */
#define PK_JSON_STR_MAX 1024     /* one decoded JSON string value */
#define PK_JSON_KEY_MAX 64       /* one JSON key */

/* ---- capabilities ---- */
#define PK_AUTHAPP_CAP_SERVER 1
#define PK_AUTHAPP_CAP_AUTH 2
#define PK_AUTHAPP_CAP_ZK 4
/* The capability bits of an app's --capabilities output (words split on
 * whitespace, compared without case; unknown words are ignored). */
int pk_authapp_caps(const char *out, size_t n);

/* ---- queries ---- */
/* The argument of a query: for --auth the kite name with '*' written
 * "_any_"; for --zk-auth pagekite.py's lookup name
 * "bsalt.token.sign.protoport.name.APP." (the app's path in place of a DNS
 * suffix, a final dot added).  -1 when it does not fit, holds a byte
 * outside 0x21..0x7e (a server reads whitespace-separated words) or starts
 * with '-' (the app would read an option). */
int pk_authapp_arg(int zk, const char *bsalt, const char *token, const char *sign,
                   const char *protoport, const char *name, const char *app, char *out, size_t n);

/* ---- a minimal strict JSON reader for one flat object ---- */
typedef enum {
  PK_JV_STR = 1,
  PK_JV_INT,   /* a number with no fraction or exponent that fits a long long */
  PK_JV_NUM,   /* any other number */
  PK_JV_TRUE,
  PK_JV_FALSE,
  PK_JV_NULL,
  PK_JV_ARRAY  /* of scalars only: items counts them, str holds the first string item */
} pk_json_type;

typedef struct {
  pk_json_type type;
  char str[PK_JSON_STR_MAX + 1]; /* PK_JV_STR (or an array's first item when a string) */
  size_t len;
  long long i;  /* PK_JV_INT */
  int items;    /* PK_JV_ARRAY */
  int first_is_str;
} pk_json_val;

/* Calls cb for each member of the object in s[0..n) (surrounding whitespace
 * allowed); cb returns 0 to go on, else that value is returned.  Returns 0,
 * or -1 with *why (a static message; never the input's bytes, which may
 * hold a secret) when s is not one object of strings, numbers, true, false,
 * null and arrays of those, when a key repeats, a string holds a NUL
 * (\u0000), a raw control character or is over PK_JSON_STR_MAX bytes, or
 * nesting goes deeper. */
int pk_json_flat(const char *s, size_t n, int (*cb)(void *ctx, const char *key, const pk_json_val *v),
                 void *ctx, const char **why);

/* ---- answers ---- */
/* An --auth answer. */
typedef struct {
  char secret[PK_SECRET_MAX]; /* "" when none */
  char error[64];             /* "error", else "" */
  char reason[64];            /* "reason", else "" */
  int quota_state;            /* 0 absent, 1 a number (quota_kb), 2 null */
  long long quota_kb;
  long days, conns, ipc, ips; /* -1 when absent */
} pk_authapp_auth;

/* Parses an --auth answer line.  0, or -1 with *why when it is not such an
 * object or a known member has the wrong type (numbers must be integers;
 * strings must fit). */
int pk_authapp_parse_auth(const char *s, size_t n, pk_authapp_auth *out, const char **why);

/* The relay's verdict on a parsed --auth answer, sig_ok saying whether the
 * kite's signature checks with its secret.  Follows pagekite.py's
 * LookupDomainQuota: a bad signature is refused "signature"; quota_kb
 * absent or negative accepts with no quota, 0 or null refuses with the
 * reason (else "quota"), positive accepts with that quota.  Unlike
 * pagekite.py, an answer with no secret but an "error" refuses the kite
 * with that error as reason (pagekite.py raises and so fails open).
 * Returns 0 with *out filled and *refusal NULL (accept) or the reason, or
 * -1 for an answer with neither secret nor error (a lookup failure). */
int pk_authapp_auth_verdict(const pk_authapp_auth *a, int sig_ok, pk_authdns_answer *out,
                            const char **refusal);

/* A --zk-auth answer: its "ips"'s first address and, when "alias" is
 * non-empty (a non-empty string or array), "hostname" as the CNAME to
 * decode (cname "" otherwise).  0, or -1 with *why. */
int pk_authapp_parse_zk(const char *s, size_t n, unsigned char addr[4], char *cname, size_t cn,
                        const char **why);

/* ---- a server's answers, one a line ---- */
typedef struct {
  char buf[PK_AUTHAPP_LINE_MAX + 1];
  size_t len;
  int done; /* a whole line is in buf (without its "\n", a "\r" before it dropped) */
} pk_authapp_linebuf;

/* Takes bytes up to the end of the first line; *used says how many.
 * Returns 1 when the line is complete, 0 when more is needed, -1 when the
 * line is over PK_AUTHAPP_LINE_MAX bytes. */
int pk_authapp_line_feed(pk_authapp_linebuf *lb, const char *p, size_t n, size_t *used);
void pk_authapp_line_reset(pk_authapp_linebuf *lb);

#endif
