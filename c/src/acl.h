/* acl.h - access rules for the relay, with no sockets.
 *
 * pk_acl: pagekite.py's --client_acl / --tunnel_acl, "allow:REGEXP" or
 * "deny:REGEXP" (shorthands "localhost" and "any"), checked in order; the
 * first rule whose pattern matches the whole address decides; with rules
 * and no match the address is refused; with no rules all are allowed.
 * Patterns are POSIX extended regexps; Python-only syntax (\d, (?...), lazy
 * quantifiers) is refused rather than misread, so a rule never silently
 * fails to apply.
 *
 * pk_ipwindow: pagekite.py's --ratelimit_ips "[KITE:]IPS/SECONDS": at most
 * IPS different clients per SECONDS window on one tunnel; a client seen
 * within the window is always let back in.
 */
#ifndef PK_ACL_H
#define PK_ACL_H

#include <regex.h>

#include "bounds.h"
#include <stddef.h>
#include <stdint.h>

#define PK_ACL_MAX_RULES 256

typedef struct {
  int allow;
  char *pattern; /* as given (for log lines) */
  regex_t re;
} pk_acl_rule;

typedef struct {
  pk_acl_rule *rules;
  int n;
} pk_acl;

/* Parses and appends one rule.  0, or -1 with why (a sentence) filled. */
int pk_acl_add(pk_acl *a, const char *rule, char *why, size_t whylen);
/* 1: allowed, 0: refused.  *rule: the deciding rule's index, or -1 (no
 * rules, or none matched).  ip: as printed; "::ffff:1.2.3.4" is also
 * matched as "1.2.3.4". */
int pk_acl_check(const pk_acl *a, const char *ip, int *rule);
void pk_acl_free(pk_acl *a);

/* "[KITE:]IPS/SECONDS" -> name ("*" when absent), ips >= 1, secs >= 1.
 * 0, or -1 with why. */
int pk_ratelimit_parse(const char *spec, char *name, size_t namelen, int *ips, int *secs,
                       char *why, size_t whylen);

/* Which of the rule names applies to kite: kite itself, else its parent
 * domains (never a bare top-level name), else "*"; -1 for none. */
int pk_ratelimit_rule_for(const char *const *names, int n, const char *kite);

#define PK_RATELIMIT_MAX_IPS 100000

typedef struct {
  uint64_t key;  /* a hash of the client */
  uint64_t seen; /* ms */
} pk_rl_slot;

typedef struct {
  int ips, secs;
  pk_rl_slot *slots; /* cap of them, n in use (n <= ips) */
  int n, cap;
} pk_ipwindow;

/* Sets (or tightens: the lower IPS/SECONDS rate wins, as pagekite.py's
 * "strictest kite") the limit.  0, or -1 out of memory. */
int pk_ratelimit_set(pk_ipwindow *r, int ips, int secs);
/* 1: admitted (and remembered at now_ms), 0: a new client over the limit. */
int pk_ratelimit_admit(pk_ipwindow *r, uint64_t key, uint64_t now_ms);
void pk_ratelimit_free(pk_ipwindow *r);
/* The client key: FNV-1a over the parts (address, User-Agent, ...). */
uint64_t pk_ratelimit_key(const char *const *parts, int n);

/* pagekite.py's per-kite flags, enforced where pagekite.py does: on the
 * connector, for each new stream of the kite.  "ip/1.2.3.4" or "ip/1.2.3"
 * (that /24): once a kite has any, only those addresses get in (others: 503,
 * as pagekite.py).  "password/USER=PASS": HTTP basic auth, 401 with
 * WWW-Authenticate until a listed user gives its password (compared in
 * constant time); non-HTTP streams of such a kite are refused. */
enum { PK_KA_IP = 1, PK_KA_PASSWORD = 2 };
enum { PK_KA_OK = 0, PK_KA_IP_DENIED = 1, PK_KA_AUTH_NEEDED = 2 };

#define PK_KA_FIELD 256

typedef struct {
  char name[PK_NAME_MAX]; /* the kite, lower case */
  int pport;              /* 0: every port of name */
  int kind;
  char ip[64];
  char user[PK_KA_FIELD];
  char pass[PK_KA_FIELD];
} pk_kite_rule;

/* rule: "ip/ADDR" or "password/USER=PASS" (a leading '+' is allowed, as
 * pagekite.py writes it).  0, or -1 with why. */
int pk_kite_rule_parse(const char *rule, pk_kite_rule *out, char *why, size_t whylen);
/* The verdict for a new stream of kite (name, pport) from rip; head: the
 * stream's first bytes (an HTTP request head for HTTP kites), is_http set
 * for http/websocket streams. */
int pk_kite_access_check(const pk_kite_rule *rules, int n, const char *name, int pport,
                         const char *rip, int is_http, const char *head, size_t head_len);

#endif
