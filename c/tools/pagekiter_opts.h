/* pagekiter_opts.h - pagekiter's configuration: command line and rc files.
 *
 * Three syntaxes fill one pkr_cfg: pagekite.py's front-end flags (and its
 * pagekite.rc files, --optfile/--optdir), our own spellings (--listen,
 * --tls-cert, ...) and libpagekite pagekiter's (-p PORT, PROTO NAME SECRET
 * triples).  Nothing here touches the library: pkr_parse() and pkr_check()
 * exit with a message on any bad value, so main() only calls the library
 * with a configuration that is known to be well-formed.
 */
#ifndef PKR_OPTS_H
#define PKR_OPTS_H

#include <stddef.h>

#define PKR_PROG "pagekiter"
#define PKR_ALL_PROTOS "http,https,raw,websocket"
#define PKR_EXIT_UNSUPPORTED 3 /* a pagekite.py flag or value pagekiter does not do */

/* A growable list of owned strings. */
typedef struct {
  char **v;
  int n, cap;
} pkr_strv;

typedef struct {
  char *host;            /* --host / --listen (default 0.0.0.0) */
  int *ports, n_ports, cap_ports;
  char *protos;          /* --protos (default PKR_ALL_PROTOS) */
  pkr_strv domains;      /* --domain values and libpagekite triples, as PROTOS:PATTERN:SECRET */
  pkr_strv endpoints;    /* --tls_endpoint values, NAME:PEMFILE */
  pkr_strv client_acls, tunnel_acls; /* allow|deny:REGEXP, in order */
  pkr_strv ratelimits;   /* --ratelimit_ips values */
  int require_tls;       /* --require-tls */
  pkr_strv authdomains;  /* --authdomain values, [KITE-DOMAIN:]DNS-SUFFIX or /PATH/TO/APP */
  int authfail_closed;   /* --authfail_closed */
  pkr_strv argv_secrets; /* what has its secret on the command line (warned by pkr_check) */
  pkr_strv proxy_from;   /* --proxy_protocol_from values, CIDR */
  char *tls_default;
  char *rawports;        /* --rawports, checked */
  int (*aliases)[2];     /* --portalias PORT:ALIAS */
  int n_aliases;
  char *motd_file, *errorurl, *logfile, *pidfile, *runas, *cert, *key;
  char *motd;            /* the --motd file's text, read by pkr_check */
  char admin_host[64];   /* --admin (admin_port 0: off) */
  int admin_port;
  unsigned runas_uid, runas_gid; /* resolved by pkr_check */
  char *secrets_owned;   /* as root: a --secretsfile owned by another user, */
  unsigned secrets_owner; /* allowed by pkr_check if it is the --runas user */
  int isfrontend, daemonize, dups, watchdog, max_conns, max_kites, verbosity;
  int legacy;            /* libpagekite syntax seen: default port 9443 */
  int depth;             /* rc file nesting */
} pkr_cfg;

/* Parses argv (options, rc files they name, libpagekite triples); exits 0
 * for --help/--version, 2 on bad usage, 3 on an unsupported flag. */
void pkr_parse(pkr_cfg *cfg, int argc, char **argv);

/* Checks what depends on several options and on files (PEMs, MOTD, user
 * names); exits 2 with a message naming the value on any problem. */
void pkr_check(pkr_cfg *cfg);

/* Splits a checked --domain value; protos_buf gets the expanded protocols. */
const char *pkr_split_domain(const char *arg, const char *server_protos, char *protos_buf,
                             char *pattern_buf, size_t buf_len);

/* pkr_parse() and pkr_check() again, for SIGHUP: the same argv (and the rc
 * files it names, read afresh); on a bad value nothing exits: -1 with the
 * message in why (and *cfg freed), else 0. */
int pkr_reload(pkr_cfg *cfg, int argc, char **argv, char *why, size_t n);

void pkr_cfg_free(pkr_cfg *cfg);

#endif /* PKR_OPTS_H */
