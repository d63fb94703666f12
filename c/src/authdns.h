/* authdns.h - pagekite.py's --authdomain, with no sockets.
 *
 * A relay configured with "--authdomain=[kite-domain:]DNS-suffix" does not
 * keep the secrets of the kites that suffix covers: for each signed kite
 * request it resolves
 *     bsalt.token.sign.protoport.name.DNS-suffix.
 * (a '*' of a wildcard kite name written "_any_") and the answer's address
 * says the quota (KB, the four octets as one number) or an error
 * (255.255.255.x: .0 user unknown, .1 invalid, others errors), while a CNAME
 * answer's canonical name "error[-ipc-ips].gb.days.conns.rest" carries the
 * reason and the extended quotas.  The authority recomputes the signature
 * with the secret it keeps, so the relay never sees that secret.  Every
 * detail here follows pagekite.py's Config.GetDomainQuota and
 * LookupDomainQuota (pk.py); tests/c/authdns_vectors.py checks these
 * functions against pagekite.py's own code.
 */
#ifndef PK_AUTHDNS_H
#define PK_AUTHDNS_H

#include <stddef.h>

#include "wire.h"

#define PK_AUTHDNS_NAME_MAX 254 /* a DNS name: 253 characters and the final dot */

/* "--authdomain=ARG": "kite-domain:target" or a bare "target" (the default
 * for names no kite-domain covers; kite_domain gets "").  kite_domain is
 * lower-cased.  The target is a DNS suffix, or an auth app's path when it
 * holds a '/'.  -1 when ARG has more than one ':' (pagekite.py's
 * arg.split(':') fails too), an empty part, or does not fit. */
int pk_authdomain_split(const char *arg, char *kite_domain, size_t kn, char *target, size_t tn);

/* 1 when a target names an auth app (it holds a '/'), else 0. */
int pk_authdomain_is_app(const char *target);

typedef struct {
  const char *kite_domain; /* lower case, no leading dot */
  const char *target;
} pk_authdomain_rule;

/* The target covering a kite name: the rule with the longest kite_domain the
 * name ends with as ".kite_domain" (the kite domain itself is not covered,
 * as in pagekite.py), else dflt (NULL or "" when there is no default). */
const char *pk_authdomain_select(const pk_authdomain_rule *rules, int n, const char *dflt,
                                 const char *name);

/* Appends s to out (n bytes) at *o, with '*' written "_any_" when any;
 * keeps out terminated.  0, or -1 when it does not fit. */
int pk_authdns_put(char *out, size_t n, size_t *o, const char *s, int any);

/* "bsalt.token.sign.protoport.name.last." ('*' in name as "_any_"), with no
 * check that it is a valid DNS name (an auth app's --zk-auth argument ends
 * in the app's path).  0, or -1 when it does not fit in n. */
int pk_authdns_join(const char *bsalt, const char *token, const char *sign, const char *protoport,
                    const char *name, const char *last, char *out, size_t n);

/* The name to resolve, with its final dot: "bsalt.token.sign.protoport.
 * name.adom." with '*' in name written "_any_".  -1 when it would not be a
 * valid DNS name (a label over 63 characters, over 253 in all, an empty
 * label) or does not fit in n. */
int pk_authdns_query(const char *bsalt, const char *token, const char *sign, const char *protoport,
                     const char *name, const char *adom, char *out, size_t n);

/* What one answer says, as pagekite.py's LookupDomainQuota returns it. */
typedef struct {
  long long quota; /* KB from the address; -1: user unknown (255.255.255.0);
                    * 0: refused (pagekite.py's None) */
  long days, conns; /* from a CNAME, -1 when absent */
  long ipc, ips;    /* an IP rate limit "ipc per ips seconds", -1 when absent */
  char error[64];   /* the reason, "" for none */
} pk_authdns_answer;

/* Decodes the first address of an answer (four octets in network order)
 * and, when the answer was a CNAME, its canonical name (NULL or "" when
 * there was none).  0, or -1 when the CNAME is not "a.b.c.d.e..." with hex
 * c and d: pagekite.py raises there, which is a lookup failure (fail-open
 * or fail-closed, --authfail_closed decides). */
int pk_authdns_decode(const unsigned char addr[4], const char *cname, pk_authdns_answer *out);

/* The relay's verdict on an answer: NULL to accept the kite, else the
 * reason it is refused with (X-PageKite-Invalid-Why).  pagekite.py accepts
 * "user unknown" (-1, its local test already failed); we refuse it with
 * "unauthorized" (doc/OPERATIONS.md says why). */
const char *pk_authdns_refusal(const pk_authdns_answer *a);

/* Quotas of the kites accepted in one reply, told to the connector as
 * pagekite.py tells them: the smallest positive quota (X-PageKite-Quota),
 * the smallest non-zero conns and days (-QConns, -QDays) and the strictest
 * IP rate limit (-IPsPerSec: "ipc/ips"). */
typedef struct {
  long long quota;
  long conns, days, ipc, ips;
} pk_authdns_quotas;

void pk_authdns_quotas_init(pk_authdns_quotas *q);
void pk_authdns_quotas_add(pk_authdns_quotas *q, const pk_authdns_answer *a);
/* Appends the header lines (none when there is nothing to tell). */
void pk_authdns_quotas_headers(const pk_authdns_quotas *q, pk_wbuf *out);

#endif
