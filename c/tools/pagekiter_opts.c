/* pagekiter_opts.c - pagekiter's option table, argv and rc-file parsing.
 *
 * pagekite.py reads its rc files by turning each line into "--line" (spaces
 * around '=' and ':' removed) and feeding them to the same option parser as
 * the command line (pk.py ConfigureFromFile); so do we, through one table.
 */
#include "cli_common.h"

#include <ctype.h>
#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>

#include "pagekiter_opts.h"

#define PROG PKR_PROG
#define RC_DEPTH_MAX 25 /* pagekite.py's rcfile_recursion limit */
#define MOTD_MAX 1024   /* the library's PK_MOTD_MAX */

/* "FILE:LINE: " while an rc file is read, for every message. */
static char where[PATH_MAX + 32];
/* Reading a --secretsfile: an unknown "option" there may be a bare secret. */
static int in_secrets;

/* pkr_reload: a bad value jumps back there with the message instead of
 * exiting; what was taken meanwhile is on the scratch stack, released
 * then (LIFO; popped on the normal path). */
static jmp_buf *reload_env;
static char reload_why[PATH_MAX + 1100];

enum { SC_FILE, SC_FREE, SC_STRV };
static struct {
  int kind;
  void *p; /* FILE *, char ** (freed *p), pkr_strv * */
} scratch[2 * 25 + 8];
static int nscratch;

static void scratch_push(int kind, void *p) {
  if (nscratch < (int)(sizeof(scratch) / sizeof(scratch[0]))) {
    scratch[nscratch].kind = kind;
    scratch[nscratch].p = p;
  }
  nscratch++;
}

static void scratch_pop(int n) { nscratch -= n; }

static void strv_free(pkr_strv *l);

static void scratch_release(void) {
  int top = nscratch < (int)(sizeof(scratch) / sizeof(scratch[0]))
                ? nscratch
                : (int)(sizeof(scratch) / sizeof(scratch[0]));
  while (top-- > 0) {
    if (scratch[top].kind == SC_FILE) fclose(scratch[top].p);
    if (scratch[top].kind == SC_FREE) {
      free(*(char **)scratch[top].p);
      *(char **)scratch[top].p = NULL;
    }
    if (scratch[top].kind == SC_STRV) strv_free(scratch[top].p);
  }
  nscratch = 0;
}

/* Released here, while the frames that own the scratch are still alive. */
CLI_NORETURN static void reload_abort(void) {
  scratch_release();
  where[0] = '\0';
  longjmp(*reload_env, 1);
}

CLI_NORETURN CLI_PRINTF(1, 2) static void bad(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (reload_env) {
    snprintf(reload_why, sizeof(reload_why), "%s%s", where, msg);
    reload_abort();
  }
  cli_usage_error(PROG, "%s%s", where, msg);
}

CLI_NORETURN static void unsupported(const char *flag, const char *why) {
  if (reload_env) {
    snprintf(reload_why, sizeof(reload_why), "%snot supported: %s (%s)", where, flag, why);
    reload_abort();
  }
  fprintf(stderr, "%s: %snot supported: %s (%s)\n", PROG, where, flag, why);
  exit(PKR_EXIT_UNSUPPORTED);
}

static char *xstrdup(const char *s) {
  char *d = strdup(s ? s : "");
  if (!d) {
    fprintf(stderr, "%s: out of memory\n", PROG);
    exit(CLI_EXIT_FAIL);
  }
  return d;
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fprintf(stderr, "%s: out of memory\n", PROG);
    exit(CLI_EXIT_FAIL);
  }
  return q;
}

static void strv_push(pkr_strv *l, const char *s) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    l->v = xrealloc(l->v, (size_t)l->cap * sizeof(*l->v));
  }
  l->v[l->n++] = xstrdup(s);
}

static void strv_free(pkr_strv *l) {
  for (int i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof(*l));
}

/* Replaces *slot with a copy of s (the last value given wins). */
static void set_str(char **slot, const char *s) {
  free(*slot);
  *slot = xstrdup(s);
}

/* ---- the option table ---- */

enum {
  O_UNSUP, O_NOOP, O_HELP, O_VERSION, O_ISFRONTEND, O_HOST, O_PORTS, O_PROTOS, O_RAWPORTS,
  O_DOMAIN, O_TLS_ENDPOINT, O_TLS_DEFAULT, O_CERT, O_KEY, O_DUPS, O_LOGFILE, O_OPTFILE,
  O_OPTDIR, O_ERRORURL, O_PORTALIAS, O_MOTD, O_DAEMONIZE, O_NODAEMONIZE, O_PIDFILE, O_RUNAS,
  O_CONNS, O_KITES, O_QUIET, O_VERBOSE, O_WATCHDOG, O_HELP_OR_HOST, O_CLIENT_ACL, O_TUNNEL_ACL,
  O_RATELIMIT, O_REQUIRE_TLS, O_AUTHDOMAIN, O_AUTHFAIL_CLOSED, O_SECRETSFILE, O_PROXYFROM, O_ADMIN
};

/* arg: 0 none, 1 required, 2 optional (taken when the next word looks like a
 * value: h, I, L mean different things to pagekite.py and libpagekite). */
typedef struct {
  const char *name;
  char letter;
  char arg;
  int id;
  const char *why; /* O_UNSUP: the reason */
} opt_def;

#define WHY_CONNECTOR "a connector option; pagekiter is a relay, use pagekitec"
#define WHY_LOCAL "relay-local back-ends; pagekiter only relays to tunnels"
#define WHY_SERVICE "pagekite.net service settings are for connectors"
#define WHY_UI "pagekite.py's built-in HTTP server and UI; pagekiter has none"
#define WHY_KITES "editing saved kites is pagekite.py's connector UI; edit the rc file instead"
#define WHY_OVERLOAD "the library has no overload reporting; -c limits connections"
#define WHY_PYTHON "a setting of pagekite.py's Python internals, without an equivalent"
#define WHY_LOG "use -q, -v or -vv"
#define WHY_OLD "deprecated in pagekite.py (ignored there); remove it"

static const opt_def k_opts[] = {
    /* supported pagekite.py flags */
    {"isfrontend", 'f', 0, O_ISFRONTEND, NULL},
    {"host", 0, 1, O_HOST, NULL},
    {"ports", 'p', 1, O_PORTS, NULL},
    {"protos", 0, 1, O_PROTOS, NULL},
    {"rawports", 0, 1, O_RAWPORTS, NULL},
    {"domain", 0, 1, O_DOMAIN, NULL},
    {"tls_endpoint", 0, 1, O_TLS_ENDPOINT, NULL},
    {"tls_default", 0, 1, O_TLS_DEFAULT, NULL},
    {"portalias", 0, 1, O_PORTALIAS, NULL},
    {"motd", 0, 1, O_MOTD, NULL},
    {"errorurl", 'E', 1, O_ERRORURL, NULL},
    {"logfile", 'L', 2, O_LOGFILE, NULL},
    {"optfile", 'o', 1, O_OPTFILE, NULL},
    {"optdir", 'O', 1, O_OPTDIR, NULL},
    {"daemonize", 'Z', 0, O_DAEMONIZE, NULL},
    {"nodaemonize", 0, 0, O_NODAEMONIZE, NULL},
    {"pidfile", 'I', 2, O_PIDFILE, NULL},
    {"runas", 'U', 1, O_RUNAS, NULL},
    {"clean", 0, 0, O_NOOP, NULL},
    {"nullui", 0, 0, O_NOOP, NULL},
    {"nocrashreport", 0, 0, O_NOOP, NULL},
    {"noloop", 0, 0, O_NOOP, NULL},
    {"help", 0, 0, O_HELP, NULL},
    {"client_acl", 0, 1, O_CLIENT_ACL, NULL},
    {"tunnel_acl", 0, 1, O_TUNNEL_ACL, NULL},
    {"ratelimit_ips", 0, 1, O_RATELIMIT, NULL},
    /* ours */
    {"require-tls", 0, 0, O_REQUIRE_TLS, NULL},
    {"listen", 0, 1, O_HOST, NULL},
    {"tls-cert", 0, 1, O_CERT, NULL},
    {"tls-key", 0, 1, O_KEY, NULL},
    {"allow-duplicates", 0, 0, O_DUPS, NULL},
    {"admin", 0, 1, O_ADMIN, NULL},
    {"secretsfile", 0, 1, O_SECRETSFILE, NULL},
    {"proxy_protocol_from", 0, 1, O_PROXYFROM, NULL},
    {"version", 0, 0, O_VERSION, NULL},
    {NULL, 'c', 1, O_CONNS, NULL},
    {NULL, 'k', 1, O_KITES, NULL},
    {NULL, 'q', 0, O_QUIET, NULL},
    {NULL, 'v', 0, O_VERBOSE, NULL},
    {NULL, 'h', 2, O_HELP_OR_HOST, NULL},
    /* libpagekite's pagekiter */
    {NULL, 'W', 0, O_WATCHDOG, NULL},
    {NULL, '6', 0, O_NOOP, NULL},
    {NULL, '4', 0, O_UNSUP, "pagekiter listens on one --host; --host=:: listens on IPv6 (and IPv4)"},
    /* pagekite.py flags that are not for a relay, or not in the library */
    {"frontend", 0, 1, O_UNSUP, WHY_CONNECTOR},
    {"frontends", 0, 1, O_UNSUP, WHY_CONNECTOR},
    {"nofrontend", 0, 1, O_UNSUP, WHY_CONNECTOR},
    {"service_on", 0, 1, O_UNSUP, WHY_CONNECTOR " (or " WHY_LOCAL ")"},
    {"service_off", 0, 1, O_UNSUP, WHY_CONNECTOR " (or " WHY_LOCAL ")"},
    {"backend", 0, 1, O_UNSUP, WHY_CONNECTOR " (or " WHY_LOCAL ")"},
    {"define_backend", 0, 1, O_UNSUP, WHY_CONNECTOR " (or " WHY_LOCAL ")"},
    {"service_cfg", 0, 1, O_UNSUP, WHY_CONNECTOR},
    {"be_config", 0, 1, O_UNSUP, WHY_CONNECTOR},
    {"kitename", 0, 1, O_UNSUP, WHY_CONNECTOR},
    {"kitesecret", 0, 1, O_UNSUP, WHY_CONNECTOR},
    {"fe_certname", 0, 1, O_UNSUP, WHY_CONNECTOR},
    {"fe_nocertcheck", 0, 0, O_UNSUP, WHY_CONNECTOR},
    {"ca_certs", 0, 1, O_UNSUP, WHY_CONNECTOR},
    {"dyndns", 'D', 1, O_UNSUP, WHY_CONNECTOR},
    {"keepalive", 0, 1, O_UNSUP, WHY_CONNECTOR},
    {"all", 'a', 0, O_UNSUP, WHY_CONNECTOR},
    {"noall", 0, 0, O_UNSUP, WHY_CONNECTOR},
    {"new", 'N', 0, O_UNSUP, WHY_CONNECTOR},
    {"noprobes", 0, 0, O_UNSUP, WHY_CONNECTOR},
    {"proxy", 0, 1, O_UNSUP, WHY_CONNECTOR},
    {"socksify", 0, 1, O_UNSUP, WHY_CONNECTOR},
    {"torify", 0, 1, O_UNSUP, WHY_CONNECTOR},
    {"noproxy", 0, 0, O_UNSUP, WHY_CONNECTOR},
    {"local", 0, 1, O_UNSUP, WHY_CONNECTOR},
    {"insecure", 0, 0, O_UNSUP, WHY_CONNECTOR " (request firewall of local back-ends)"},
    {"defaults", 0, 0, O_UNSUP, WHY_SERVICE},
    {"whitelabel", 0, 1, O_UNSUP, WHY_SERVICE},
    {"whitelabels", 0, 1, O_UNSUP, WHY_SERVICE},
    {"signup", 0, 0, O_UNSUP, WHY_SERVICE},
    {"register", 0, 1, O_UNSUP, WHY_SERVICE},
    {"service_xmlrpc", 0, 1, O_UNSUP, WHY_SERVICE},
    {"list", 0, 0, O_UNSUP, WHY_KITES},
    {"add", 0, 0, O_UNSUP, WHY_KITES},
    {"only", 0, 0, O_UNSUP, WHY_KITES},
    {"disable", 0, 0, O_UNSUP, WHY_KITES},
    {"remove", 0, 0, O_UNSUP, WHY_KITES},
    {"save", 0, 0, O_UNSUP, WHY_KITES},
    {"savefile", 'S', 1, O_UNSUP, WHY_KITES},
    {"settings", 0, 0, O_UNSUP, "pagekiter does not print its settings; write the rc file by hand"},
    {"shell", 0, 0, O_UNSUP, "pagekite.py's interactive shell; pagekiter has none"},
    {"friendly", 0, 0, O_UNSUP, "pagekite.py's interactive shell; pagekiter has none"},
    {"controlpanel", 0, 0, O_UNSUP, WHY_UI},
    {"controlpass", 0, 0, O_UNSUP, WHY_UI},
    {"httpd", 'H', 1, O_UNSUP, WHY_UI},
    {"httppass", 'X', 1, O_UNSUP, WHY_UI},
    {"pemfile", 'P', 1, O_UNSUP, WHY_UI},
    {"selfsign", 0, 0, O_UNSUP, WHY_UI},
    {"webpath", 0, 1, O_UNSUP, WHY_UI},
    {"remoteui", 0, 0, O_UNSUP, WHY_UI},
    {"uiport", 0, 1, O_UNSUP, WHY_UI},
    {"noisfrontend", 0, 0, O_UNSUP, "pagekiter is always a relay; use pagekitec as a connector"},
    {"authdomain", 'A', 1, O_AUTHDOMAIN, NULL},
    {"auththreads", 0, 1, O_NOOP, NULL}, /* lookups run on libuv's thread pool */
    {"authfail_closed", 0, 0, O_AUTHFAIL_CLOSED, NULL},
    {"accept_acl_file", 0, 1, O_UNSUP,
     "pagekite.py lets every address in when this file is missing or unreadable; use "
     "--client_acl and --tunnel_acl, which fail closed"},
    {"overload", 0, 1, O_UNSUP, WHY_OVERLOAD},
    {"overload_cpu", 0, 1, O_UNSUP, WHY_OVERLOAD},
    {"overload_mem", 0, 1, O_UNSUP, WHY_OVERLOAD},
    {"overload_file", 0, 1, O_UNSUP, WHY_OVERLOAD},
    {"upgradeinfo", 0, 1, O_UNSUP, "the relay sends no upgrade information to connectors"},
    {"noupgradeinfo", 0, 0, O_UNSUP, "the relay sends no upgrade information to connectors"},
    {"tls_legacy", 0, 0, O_UNSUP, "TLS versions are OpenSSL's defaults (TLS 1.2 and up)"},
    {"nozchunks", 0, 0, O_UNSUP, "the library has no switch for tunnel compression"},
    {"sslzlib", 0, 0, O_UNSUP, "OpenSSL compression stays off"},
    {"wschunks", 0, 0, O_UNSUP, WHY_PYTHON},
    {"buffers", 0, 1, O_UNSUP, "the library's buffers are sized by -c"},
    {"max_read_bytes", 0, 1, O_UNSUP, WHY_PYTHON},
    {"select_loop_min_ms", 0, 1, O_UNSUP, WHY_PYTHON},
    {"nopyopenssl", 0, 0, O_UNSUP, WHY_PYTHON},
    {"nossl", 0, 0, O_UNSUP, WHY_PYTHON},
    {"debugio", 0, 0, O_UNSUP, WHY_LOG},
    {"watch", 0, 1, O_UNSUP, WHY_LOG},
    {"loglevel", 0, 1, O_UNSUP, WHY_LOG},
    {"watchdog", 0, 1, O_UNSUP, "use -W (libpagekite's watchdog, a fixed 30 s)"},
    {"reloadfile", 0, 1, O_UNSUP, WHY_OLD},
    {"autosave", 0, 0, O_UNSUP, WHY_OLD},
    {"noautosave", 0, 0, O_UNSUP, WHY_OLD},
    {"webroot", 0, 1, O_UNSUP, WHY_OLD},
    {"webaccess", 0, 1, O_UNSUP, WHY_OLD},
    {"webindexes", 0, 1, O_UNSUP, WHY_OLD},
    {"delete_backend", 0, 1, O_UNSUP, WHY_OLD},
    {NULL, 0, 0, 0, NULL},
};

/* An exact long name, else a unique prefix of one (as getopt_long and
 * Python's getopt allow). */
static const opt_def *find_long(const char *name, size_t len) {
  const opt_def *hit = NULL;
  int n = 0;
  for (const opt_def *d = k_opts; d->name || d->letter; d++) {
    if (!d->name || strncmp(d->name, name, len) != 0) continue;
    if (d->name[len] == '\0') return d;
    hit = d;
    n++;
  }
  if (n > 1) bad("option '--%.*s' is ambiguous", (int)len, name);
  return n == 1 ? hit : NULL;
}

static const opt_def *find_short(char letter) {
  for (const opt_def *d = k_opts; d->name || d->letter; d++)
    if (d->letter == letter) return d;
  return NULL;
}

/* ---- values ---- */

/* 1 if tok (length n) is one of the comma-separated names in list. */
static int in_list(const char *list, const char *tok, size_t n) {
  for (const char *p = list; *p;) {
    size_t len = strcspn(p, ",");
    if (len == n && strncmp(p, tok, n) == 0) return 1;
    p += len;
    if (*p == ',') p++;
  }
  return 0;
}

/* Protocols pagekite.py knows that the library does not relay. */
#define PKPY_ONLY_PROTOS "http2,http3,irc,xmpp,finger,httpfinger,minecraft"

/* --protos: every name known, none empty; pagekite.py-only names are
 * "not supported". */
static void check_protos(const char *flag, const char *protos) {
  size_t pl = strlen(protos);
  if (pl == 0 || protos[pl - 1] == ',') bad("invalid --protos '%s'", protos);
  for (const char *p = protos; *p;) {
    size_t len = strcspn(p, ",");
    if (len > 0 && in_list(PKPY_ONLY_PROTOS, p, len))
      unsupported(flag, "the relay serves http, https, raw and websocket kites");
    if (len == 0 || !in_list(PKR_ALL_PROTOS, p, len))
      bad("unknown protocol '%.*s' in --protos (known: " PKR_ALL_PROTOS ")", (int)len, p);
    p += len;
    if (*p == ',') p++;
  }
}

/* Appends the ports of one --ports value. */
static void add_ports(pkr_cfg *c, const char *arg) {
  size_t al = strlen(arg);
  if (al == 0 || arg[al - 1] == ',') bad("invalid --ports '%s'", arg);
  for (const char *p = arg; *p;) {
    size_t len = strcspn(p, ",");
    char tmp[16];
    int port;
    if (len == 0 || len >= sizeof(tmp)) bad("invalid --ports '%s'", arg);
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    if (cli_parse_int(tmp, 1, 65535, &port) != 0)
      bad("invalid port '%s' in --ports (expected 1..65535)", tmp);
    for (int i = 0; i < c->n_ports; i++)
      if (c->ports[i] == port) bad("port %d given twice in --ports", port);
    if (c->n_ports == c->cap_ports) {
      c->cap_ports = c->cap_ports ? c->cap_ports * 2 : 8;
      c->ports = xrealloc(c->ports, (size_t)c->cap_ports * sizeof(*c->ports));
    }
    c->ports[c->n_ports++] = port;
    p += len;
    if (*p == ',') p++;
  }
}

/* --rawports: ports 1..65535 and/or "virtual", comma-separated. */
static void check_rawports(const char *arg) {
  size_t al = strlen(arg);
  int ok = al > 0 && arg[al - 1] != ',';
  for (const char *p = arg; ok && *p;) {
    size_t len = strcspn(p, ",");
    char tmp[16];
    int port;
    ok = len > 0 && len < sizeof(tmp);
    if (ok) {
      memcpy(tmp, p, len);
      tmp[len] = '\0';
      ok = strcmp(tmp, "virtual") == 0 || cli_parse_int(tmp, 1, 65535, &port) == 0;
    }
    p += len;
    if (*p == ',') p++;
  }
  if (!ok) bad("invalid --rawports '%s' (expected ports 1..65535 and/or 'virtual')", arg);
}

static void add_alias(pkr_cfg *c, const char *arg) {
  const char *colon = strchr(arg, ':');
  char tmp[16];
  int port, alias;
  size_t pl = colon ? (size_t)(colon - arg) : 0;
  if (!colon || pl == 0 || pl >= sizeof(tmp)) bad("invalid --portalias '%s' (expected PORT:ALIAS)", arg);
  memcpy(tmp, arg, pl);
  tmp[pl] = '\0';
  if (cli_parse_int(tmp, 1, 65535, &port) != 0 || cli_parse_int(colon + 1, 1, 65535, &alias) != 0)
    bad("invalid --portalias '%s' (expected PORT:ALIAS, both 1..65535)", arg);
  c->aliases = xrealloc(c->aliases, (size_t)(c->n_aliases + 1) * sizeof(*c->aliases));
  c->aliases[c->n_aliases][0] = port;
  c->aliases[c->n_aliases][1] = alias;
  c->n_aliases++;
}

/* A DNS name or "*.name": letters, digits, '-', '_', '.'. */
static int valid_name(const char *s) {
  if (!s || !*s || strlen(s) > 253) return 0;
  if (s[0] == '*' && s[1] == '.') s += 2;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_') return 0;
  return 1;
}

static void add_endpoint(pkr_cfg *c, const char *arg) {
  const char *colon = strchr(arg, ':');
  if (!colon || colon == arg || !colon[1])
    bad("invalid --tls_endpoint '%s' (expected NAME:PEMFILE)", arg);
  char name[256];
  snprintf(name, sizeof(name), "%.*s", (int)(colon - arg), arg);
  if (!valid_name(name)) bad("invalid name '%s' in --tls_endpoint", name);
  strv_push(&c->endpoints, arg);
}

/* pagekite.py: "--errorurl=URL", or "--errorurl=DOMAIN:URL" when the value
 * holds ":http" (pk.py's test). */
static void set_errorurl(pkr_cfg *c, const char *flag, const char *arg) {
  if (strstr(arg, ":http"))
    unsupported(flag, "per-domain error URLs (DOMAIN:URL); the library has one URL for all");
  if ((strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0) || strlen(arg) > 400)
    bad("invalid --errorurl '%s' (expected an http:// or https:// URL, at most 400 bytes)", arg);
  set_str(&c->errorurl, arg);
}


/* ---- help ---- */

static void usage_pkpy(FILE *out) {
  fputs("Usage: " PROG " [options]                      (pagekite.py's front-end flags)\n"
        "   or: " PROG " [options] PROTO NAME SECRET ...  (libpagekite's pagekiter)\n"
        "\n"
        "Run a PageKite relay: connectors (pagekitec, pagekite.py) open tunnels to\n"
        "it and clients reach their kites through it, routed by HTTP Host, TLS SNI\n"
        "or HTTP CONNECT.  Every listening port takes tunnels and clients alike.\n"
        "--opt=value and --opt value are the same; pagekite.py's short letters work.\n"
        "\n"
        "pagekite.py's front-end flags (our own spelling after the slash):\n"
        "  --isfrontend, -f         run as a relay (always so; without --ports: port 80)\n"
        "  --host=HOST / --listen   listen address (default 0.0.0.0)\n"
        "  --ports=P1[,P2...], -p   listen on these ports (repeatable)\n"
        "  --protos=LIST            protocols served (default " PKR_ALL_PROTOS ")\n"
        "  --domain=PROTOS:PATTERN:SECRET\n"
        "                           accept kites matching PATTERN (*.example.com or a\n"
        "                           name) for PROTOS (comma-separated; * or empty: all of\n"
        "                           --protos), signed with SECRET (may contain ':');\n"
        "                           repeatable, at least one required; SECRET as @FILE:\n"
        "                           FILE's first line (FILE mode 600, ours or root's)\n"
        "  --rawports=LIST          ports raw kites may claim, and/or 'virtual' (any)\n"
        "  --tls_endpoint=NAME:PEM  terminate TLS for NAME (or *.domain) with PEM (key\n"
        "                           and certificate in one file); repeatable\n"
        "  --tls_default=NAME       name assumed for TLS clients without SNI\n"
        "  --portalias=PORT:ALIAS   visitors on PORT count as on ALIAS (kites for ALIAS)\n"
        "  --motd=FILE              message of the day for connectors (1024 bytes max)\n"
        "  --proxy_protocol_from=CIDR\n"
        "                           a load balancer (ADDRESS or ADDRESS/BITS) whose\n"
        "                           connections start with a PROXY v1/v2 header; the\n"
        "                           client address in it is used; repeatable\n"
        "  --errorurl=URL, -E       rejection URL (pagekite_set_rejection_url)\n"
        "  --logfile=FILE, -L       log to FILE (appended; SIGHUP reopens), 'stdio'\n"
        "                           (stdout) or 'syslog'\n"
        "  --optfile=FILE, -o       read options from a pagekite.rc file\n"
        "  --optdir=DIR, -O         read DIR/*.rc in name order (as /etc/pagekite.d)\n"
        "  --daemonize, -Z          run in the background once listening\n"
        "  --nodaemonize            stay in the foreground (the default)\n"
        "  --pidfile=FILE, -I       write the process id to FILE\n"
        "  --runas=USER[:GROUP], -U switch user (and group) once listening (root only)\n"
        "  --client_acl=allow|deny:REGEXP\n"
        "                           visitors' addresses, checked in order (first match\n"
        "                           decides, none: refused); repeatable\n"
        "  --tunnel_acl=allow|deny:REGEXP  the same for connectors' tunnels\n"
        "  --ratelimit_ips=[KITE:]IPS/SECONDS\n"
        "                           at most IPS new clients per SECONDS on a tunnel\n"
        "  --authdomain=[KITE-DOMAIN:]DNS-SUFFIX, -A\n"
        "                           kites no --domain signs are vouched for by that DNS\n"
        "                           authority (pagekite.py's zero-knowledge scheme)\n"
        "  --authdomain=[KITE-DOMAIN:]/PATH/TO/APP\n"
        "                           ... or by that auth app (pagekite.py's protocol:\n"
        "                           --capabilities, --server, --auth, --zk-auth); each\n"
        "                           query gets 5 s, then fails as a lookup failure\n"
        "  --authfail_closed        refuse them when it cannot be asked (default: accept)\n"
        "  --clean, --nullui, --nocrashreport, --noloop\n"
        "                           accepted, no effect (pagekiter reads no default rc\n"
        "                           file, has no UI and never restarts itself)\n"
        "  -h HOST                  pagekite.py's --host (-h alone: this help)\n",
        out);
}

static void usage(FILE *out) {
  usage_pkpy(out);
  fputs("\n"
        "Our own flags:\n"
        "  --tls-cert=FILE          PEM certificate for TLS-wrapped tunnels\n"
        "  --tls-key=FILE           PEM private key for --tls-cert\n"
        "  --allow-duplicates       several tunnels may fly one kite; streams take turns\n"
        "  --admin=[HOST:]PORT      serve GET /metrics and /status.json (HOST: 127.0.0.1)\n"
        "  --require-tls            refuse tunnels not inside TLS (needs a certificate)\n"
        "  --secretsfile=FILE       an rc file for secrets (domain = ... lines), refused\n"
        "                           unless mode 600 (no group/other bits), ours or root's\n"
        "                           (or the --runas user's)\n"
        "  -c N                     max connections (default 2000)\n"
        "  -k N                     max kites (default 1000)\n"
        "  -q / -v                  less / more log output (-vv: everything)\n"
        "  -h, --help               show this help and exit\n"
        "  --version                show the version and exit\n"
        "\n"
        "libpagekite's pagekiter (with PROTO NAME SECRET ...; also -k N, -q, -v):\n"
        "  -p PORT                  listen on PORT (default 9443)\n"
        "  -W                       enable the watchdog\n"
        "  -I                       no TLS (none without --tls-cert)\n"
        "  -L                       no default Lua plugins (none are loaded)\n"
        "  -6                       listen on IPv4 only (the default)\n"
        "\n"
        "Every other pagekite.py flag stops with \"not supported: FLAG (why)\";\n"
        "doc/CLI.md lists them all.\n"
        "\n"
        "Exit codes:\n"
        "  0  --help, --version, a clean stop (SIGINT, SIGQUIT, SIGTERM), or --daemonize\n"
        "     once the daemon listens\n"
        "  1  a library call failed (e.g. a port cannot be bound), or --pidfile/--runas\n"
        "  2  bad usage or a bad value (the library is not touched)\n"
        "  3  not supported: a pagekite.py flag or value pagekiter does not do\n"
        "\n"
        "Examples:\n"
        "  " PROG " --isfrontend --ports=80,443 --protos=http,https,raw --rawports=virtual --domain=http,https,raw:*.example.com:SECRET\n"
        "\n"
        "  " PROG " --clean --optdir=/etc/pagekite.d\n"
        "\n"
        "  " PROG " -p 9443 http www.example.com SECRET\n",
        out);
}

/* ---- parsing ---- */

static void read_rc(pkr_cfg *c, const char *path, int secrets);
static void read_dir(pkr_cfg *c, const char *dir);

static int int_value(const char *flag, const char *s, int min, int max) {
  int v = 0;
  if (cli_parse_int(s, min, max, &v) != 0)
    bad("invalid value for %s: '%s' (expected %d..%d)", flag, s ? s : "", min, max);
  return v;
}

/* A word that is a value, not an option or libpagekite's PROTO (for the
 * letters h, I and L, whose value is optional). */
static int looks_like_value(const char *s) {
  if (!s || !*s || s[0] == '-') return 0;
  return !in_list(PKR_ALL_PROTOS, s, strcspn(s, "-"));
}

/* -o FILE is pagekite.py's --optfile; libpagekite's -o NAME=VALUE set a Lua
 * plugin.  An existing file wins. */
static void optfile(pkr_cfg *c, const char *flag, const char *v) {
  if (flag[1] == 'o' && access(v, F_OK) != 0 && strchr(v, '='))
    unsupported(flag, "libpagekite's Lua plugin settings; pagekiter enables no Lua plugins");
  read_rc(c, v, 0);
}

/* A --domain on the command line with its secret in it (not @FILE): a
 * warning naming the pattern, never the secret. */
static void warn_argv_secret(pkr_cfg *c, const char *v) {
  const char *c1 = strchr(v, ':');
  const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  if (!c2 || !c2[1] || c2[1] == '@') return; /* malformed ones are reported later */
  char what[300];
  snprintf(what, sizeof(what), "--domain %.*s", (int)(c2 - v), v);
  strv_push(&c->argv_secrets, what);
}

static void set_logfile(pkr_cfg *c, const char *flag, const char *v) {
  if (!v) return; /* libpagekite's -L: no default Lua plugins; none are loaded */
  if (strcmp(v, "memory") == 0) unsupported(flag, "pagekite.py's in-memory log for its UI");
  if (!*v) bad("--logfile needs a file name, 'stdio' or 'syslog'");
  set_str(&c->logfile, v);
}

/* Options about what is served. */
static int apply_relay(pkr_cfg *c, const opt_def *d, const char *flag, const char *v) {
  switch (d->id) {
    case O_ISFRONTEND: c->isfrontend = 1; break;
    case O_HOST:
      if (!*v) bad("%s needs a host", flag);
      set_str(&c->host, v);
      break;
    case O_PORTS: add_ports(c, v); break;
    case O_PROTOS: check_protos(flag, v); set_str(&c->protos, v); break;
    case O_RAWPORTS: check_rawports(v); set_str(&c->rawports, v); break;
    case O_DOMAIN:
      if (c->depth == 0) warn_argv_secret(c, v);
      strv_push(&c->domains, v);
      break;
    case O_TLS_ENDPOINT: add_endpoint(c, v); break;
    case O_TLS_DEFAULT:
      if (!valid_name(v)) bad("invalid --tls_default '%s' (expected a DNS name)", v);
      set_str(&c->tls_default, v);
      break;
    case O_CERT: set_str(&c->cert, v); break;
    case O_KEY: set_str(&c->key, v); break;
    case O_DUPS: c->dups = 1; break;
    case O_PORTALIAS: add_alias(c, v); break;
    case O_MOTD: set_str(&c->motd_file, v); break;
    case O_PROXYFROM: strv_push(&c->proxy_from, v); break;
    case O_ERRORURL: set_errorurl(c, flag, v); break;
    case O_ADMIN:
      if (cli_split_host_port(v, "127.0.0.1", c->admin_host, sizeof(c->admin_host), 1,
                              &c->admin_port) != 0)
        bad("invalid --admin '%s' (expected PORT, HOST:PORT or [V6ADDR]:PORT)", v);
      break;
    default: return 0;
  }
  return 1;
}

/* Options about the process. */
static void apply(pkr_cfg *c, const opt_def *d, const char *flag, const char *v) {
  if (apply_relay(c, d, flag, v)) return;
  switch (d->id) {
    case O_UNSUP: unsupported(flag, d->why);
    case O_NOOP: break;
    case O_HELP_OR_HOST:
      if (v) {
        set_str(&c->host, v);
        break;
      }
    /* fall through */
    case O_HELP:
      if (reload_env) bad("%s has no place in a configuration being reloaded", flag);
      usage(stdout);
      exit(CLI_EXIT_OK);
    case O_VERSION:
      if (reload_env) bad("%s has no place in a configuration being reloaded", flag);
      cli_print_version(PROG);
      exit(CLI_EXIT_OK);
    case O_LOGFILE: set_logfile(c, flag, v); break;
    case O_OPTFILE: optfile(c, flag, v); break;
    case O_OPTDIR: read_dir(c, v); break;
    case O_SECRETSFILE: read_rc(c, v, 1); break;
    case O_DAEMONIZE: c->daemonize = 1; break;
    case O_NODAEMONIZE: c->daemonize = 0; break;
    case O_PIDFILE:
      if (v) set_str(&c->pidfile, v); /* without: libpagekite's -I (no TLS) */
      break;
    case O_RUNAS: set_str(&c->runas, v); break;
    case O_CONNS: c->max_conns = int_value(flag, v, 1, 1000000); break;
    case O_KITES: c->max_kites = int_value(flag, v, 1, 1000000); break;
    case O_QUIET: c->verbosity--; break;
    case O_VERBOSE: c->verbosity++; break;
    case O_WATCHDOG: c->watchdog = 1; break;
    case O_CLIENT_ACL: strv_push(&c->client_acls, v); break;
    case O_TUNNEL_ACL: strv_push(&c->tunnel_acls, v); break;
    case O_RATELIMIT: strv_push(&c->ratelimits, v); break;
    case O_REQUIRE_TLS: c->require_tls = 1; break;
    case O_AUTHDOMAIN: strv_push(&c->authdomains, v); break; /* checked by the library */
    case O_AUTHFAIL_CLOSED: c->authfail_closed = 1; break;
    default: bad("internal error: option %s", flag);
  }
}

/* "--name[=value]" at argv[i]; returns the index of the last word used. */
static int parse_long(pkr_cfg *c, int argc, char **argv, int i) {
  const char *s = argv[i] + 2;
  const char *eq = strchr(s, '=');
  size_t len = eq ? (size_t)(eq - s) : strlen(s);
  const opt_def *d = find_long(s, len);
  /* Named up to a space or ':' only: what follows may be a secret (an rc
   * line "domain http:NAME:SECRET" that lacks its '='). */
  size_t shown = strcspn(s, " \t:");
  if (!d && in_secrets)
    bad("not an option (the line is not shown: it may be a secret; a line is KEY = VALUE)");
  if (!d && shown < len)
    bad("unknown option '--%.*s' (the rest of it is not shown; a line is KEY = VALUE)",
        (int)shown, s);
  if (!d) bad("unknown option '--%.*s'", (int)len, s);
  char flag[64];
  snprintf(flag, sizeof(flag), "--%s", d->name);
  if (d->id == O_UNSUP) unsupported(flag, d->why);
  const char *v = NULL;
  if (eq && d->arg == 0) bad("option '%s' takes no value", flag);
  if (eq) {
    v = eq + 1;
  } else if (d->arg != 0) {
    if (i + 1 >= argc) bad("option '%s' needs a value", flag);
    v = argv[++i];
  }
  apply(c, d, flag, v);
  return i;
}

/* "-abc", "-pVALUE" or "-p VALUE" at argv[i]. */
static int parse_short(pkr_cfg *c, int argc, char **argv, int i) {
  for (const char *p = argv[i] + 1; *p; p++) {
    const opt_def *d = find_short(*p);
    char flag[3] = {'-', *p, '\0'};
    if (!d) bad("unknown option '-%c'", *p);
    if (d->id == O_UNSUP) unsupported(flag, d->why);
    if (d->arg == 0) {
      apply(c, d, flag, NULL);
      continue;
    }
    const char *v = NULL;
    if (p[1])
      v = p + 1;
    else if (i + 1 < argc && (d->arg == 1 || looks_like_value(argv[i + 1])))
      v = argv[++i];
    if (d->arg == 1 && !v) bad("option '%s' needs a value", flag);
    apply(c, d, flag, v);
    break;
  }
  return i;
}

/* Options from argv[from..]; words that are not options go to pos. */
static void parse_words(pkr_cfg *c, int argc, char **argv, int from, pkr_strv *pos) {
  for (int i = from; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      while (++i < argc) strv_push(pos, argv[i]);
    } else if (a[0] == '-' && a[1] == '-') {
      i = parse_long(c, argc, argv, i);
    } else if (a[0] == '-' && a[1]) {
      i = parse_short(c, argc, argv, i);
    } else if (pos) {
      strv_push(pos, a);
    } else {
      bad("unexpected word '%s'", a);
    }
  }
}

/* ---- rc files (pk.py ConfigureFromFile, ConfigureFromDirectory) ---- */

/* Drops white space around '=' and ':' and at both ends, in place. */
static void normalize(char *s) {
  char *out = s;
  const char *p = s;
  while (isspace((unsigned char)*p)) p++;
  while (*p) {
    if (isspace((unsigned char)*p)) {
      const char *q = p;
      while (isspace((unsigned char)*q)) q++;
      if (*q != '=' && *q != ':' && *q) *out++ = ' ';
      p = q;
      continue;
    }
    *out++ = *p;
    if (*p == '=' || *p == ':')
      while (isspace((unsigned char)p[1])) p++;
    p++;
  }
  *out = '\0';
}

/* One line: "key = value", "key", "--key=value" or "-k value"; 0 at END. */
static int rc_line(pkr_cfg *c, char *line) {
  normalize(line);
  if (!*line || line[0] == '#') return 1;
  if (strncmp(line, "END", 3) == 0) return 0;
  if (line[0] == '-' && line[1] != '-') { /* "-o file": letter, then its value */
    char *sp = strchr(line, ' ');
    char *words[2] = {line, sp ? sp + 1 : NULL};
    if (sp) *sp = '\0';
    parse_short(c, sp ? 2 : 1, words, 0);
    return 1;
  }
  size_t n = strlen(line) + 3;
  char *opt = xrealloc(NULL, n);
  scratch_push(SC_FREE, &opt);
  snprintf(opt, n, "%s%s", line[0] == '-' ? "" : "--", line);
  char *words[1] = {opt};
  parse_long(c, 1, words, 0);
  scratch_pop(1);
  free(opt);
  return 1;
}

/* An rc file; secrets: --secretsfile, whose mode and owner are checked
 * first (cli_secret_file_ok). */
static void read_rc(pkr_cfg *c, const char *path, int secrets) {
  if (c->depth >= RC_DEPTH_MAX)
    bad("rc files nested too deep (more than %d): %s", RC_DEPTH_MAX, path);
  FILE *f = secrets ? cli_open_secret(path) : fopen(path, "r");
  if (!f) bad("cannot read %s file %s: %s", secrets ? "--secretsfile" : "rc", path,
              strerror(errno));
  char why[PATH_MAX * 2 + 128];
  /* As root the owner may be the --runas user, known once every option is
   * read: pkr_check checks it then. */
  uid_t owner = 0;
  if (secrets && (cli_secret_file_check(path, f, why, sizeof(why),
                                        geteuid() == 0 ? &owner : NULL) != 0 ||
                  (owner != 0 && c->secrets_owned && owner != c->secrets_owner &&
                   cli_secret_owner_ok(path, owner, (uid_t)-1, why, sizeof(why)) != 0))) {
    fclose(f);
    bad("--secretsfile: %s", why);
  }
  if (owner != 0 && !c->secrets_owned) {
    set_str(&c->secrets_owned, path);
    c->secrets_owner = owner;
  }
  char saved[sizeof(where)];
  memcpy(saved, where, sizeof(where));
  c->depth++;
  char *line = NULL;
  size_t cap = 0;
  int lineno = 0;
  scratch_push(SC_FILE, f);
  scratch_push(SC_FREE, &line);
  int was_secrets = in_secrets;
  in_secrets = secrets;
  while (getline(&line, &cap, f) >= 0) {
    snprintf(where, sizeof(where), "%s:%d: ", path, ++lineno);
    if (!rc_line(c, line)) break;
  }
  in_secrets = was_secrets;
  scratch_pop(2);
  free(line);
  fclose(f);
  c->depth--;
  memcpy(where, saved, sizeof(where));
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files named *.rc in dir, in name order, hidden files skipped. */
static void read_dir(pkr_cfg *c, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) bad("cannot read directory %s: %s", dir, strerror(errno));
  pkr_strv names = {0};
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (e->d_name[0] != '.' && n > 3 && strcmp(e->d_name + n - 3, ".rc") == 0)
      strv_push(&names, e->d_name);
  }
  closedir(d);
  if (names.n) qsort(names.v, (size_t)names.n, sizeof(*names.v), cmp_names);
  scratch_push(SC_STRV, &names);
  for (int i = 0; i < names.n; i++) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, names.v[i]) >= (int)sizeof(path))
      bad("path too long: %s/%s", dir, names.v[i]);
    read_rc(c, path, 0);
  }
  scratch_pop(1);
  strv_free(&names);
}

void pkr_parse(pkr_cfg *c, int argc, char **argv) {
  memset(c, 0, sizeof(*c));
  in_secrets = 0; /* a refused reload may have jumped out of a --secretsfile */
  c->max_conns = 2000;
  c->max_kites = 1000;
  c->host = xstrdup("0.0.0.0");
  c->protos = xstrdup(PKR_ALL_PROTOS);
  pkr_strv pos = {0};
  scratch_push(SC_STRV, &pos);
  parse_words(c, argc, argv, 1, &pos);
  where[0] = '\0';
  if (pos.n % 3 != 0)
    bad("expected PROTO NAME SECRET triples (libpagekite's syntax), got %d word%s: '%s'", pos.n,
        pos.n == 1 ? "" : "s", pos.v[0]);
  for (int i = 0; i < pos.n; i += 3) {
    size_t n = strlen(pos.v[i]) + strlen(pos.v[i + 1]) + strlen(pos.v[i + 2]) + 3;
    char *dom = xrealloc(NULL, n);
    snprintf(dom, n, "%s:%s:%s", pos.v[i], pos.v[i + 1], pos.v[i + 2]);
    if (pos.v[i + 2][0] != '@') {
      char what[300];
      snprintf(what, sizeof(what), "%.100s %.180s", pos.v[i], pos.v[i + 1]);
      strv_push(&c->argv_secrets, what);
    }
    strv_push(&c->domains, dom);
    free(dom);
    c->legacy = 1;
  }
  scratch_pop(1);
  strv_free(&pos);
}

/* ---- checks that need the whole configuration ---- */

/* "8080" of "http-8080": digits only, 1..65535. */
static int valid_port_suffix(const char *s, size_t n) {
  int v = 0;
  if (n == 0 || n > 5) return 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (s[i] - '0');
  }
  return v >= 1 && v <= 65535;
}

const char *pkr_split_domain(const char *arg, const char *server_protos, char *protos_buf,
                             char *pattern_buf, size_t buf_len) {
  const char *c1 = strchr(arg, ':');
  const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  /* Messages name PROTOS and PATTERN at most, never the value whole: the
   * secret is in it (and --secretsfile exists to keep it out of logs). */
  if (!c2)
    bad("invalid --domain (expected PROTOS:PATTERN:SECRET; the value is not shown, it may "
        "hold the secret)");
  size_t pl = (size_t)(c1 - arg), dl = (size_t)(c2 - c1 - 1);
  if (dl == 0) bad("empty PATTERN in --domain '%.*s::...'", (int)(pl < 128 ? pl : 128), arg);
  if (!c2[1]) bad("empty SECRET in --domain for '%.*s'", (int)dl, c1 + 1);
  if (pl >= buf_len || dl >= buf_len)
    bad("--domain for '%.*s...' is too long (PROTOS or PATTERN over %zu bytes)",
        (int)(dl < 64 ? dl : 64), c1 + 1, buf_len - 1);
  if (pl == 0 || (pl == 1 && arg[0] == '*')) {
    snprintf(protos_buf, buf_len, "%s", server_protos);
  } else {
    if (c1[-1] == ',') bad("empty protocol in --domain for '%.*s'", (int)dl, c1 + 1);
    for (const char *p = arg; p < c1;) {
      size_t len = strcspn(p, ",:"), base = strcspn(p, ",:-");
      if (len == 0 || !in_list(server_protos, p, base))
        bad("protocol '%.*s' in --domain for '%.*s' is not in --protos (%s)", (int)len, p,
            (int)dl, c1 + 1, server_protos);
      if (base < len && !valid_port_suffix(p + base + 1, len - base - 1))
        bad("invalid port in protocol '%.*s' of --domain (expected PROTO-PORT, 1..65535)",
            (int)len, p);
      p += len;
      if (*p == ',') p++;
    }
    memcpy(protos_buf, arg, pl);
    protos_buf[pl] = '\0';
  }
  memcpy(pattern_buf, c1 + 1, dl);
  pattern_buf[dl] = '\0';
  return c2 + 1;
}

/* The whole of a (small) text file, or NULL with errno set. */
static char *slurp(const char *path, size_t max) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = xrealloc(NULL, max + 1);
  size_t n = fread(buf, 1, max, f);
  int err = ferror(f) ? EIO : 0;
  fclose(f);
  if (err) {
    free(buf);
    errno = err;
    return NULL;
  }
  buf[n] = '\0';
  return buf;
}

/* pagekite.py's --tls_endpoint PEM: certificate and key in one file.  The
 * library checks that they match; this says which file is unusable. */
static void check_pem(const char *pem) {
  char *text = slurp(pem, 1 << 20);
  if (!text) bad("cannot read --tls_endpoint file %s: %s", pem, strerror(errno));
  int has_cert = strstr(text, "-----BEGIN CERTIFICATE-----") != NULL;
  int has_key = strstr(text, "PRIVATE KEY-----") != NULL;
  free(text);
  if (!has_cert) bad("%s: no PEM certificate in this --tls_endpoint file", pem);
  if (!has_key)
    bad("%s: no private key in this --tls_endpoint file (key and certificate go in one file)",
        pem);
}

static void check_readable(const char *opt, const char *path) {
  if (access(path, R_OK) != 0) bad("cannot read %s file %s: %s", opt, path, strerror(errno));
}

/* pagekite.py strips the MOTD and keeps 8192 bytes; the library takes 1024
 * of text (newlines and tabs allowed), so that is the cap here. */
static char *read_motd(const char *path) {
  char *text = slurp(path, 1 << 16);
  if (!text) bad("cannot read --motd file %s: %s", path, strerror(errno));
  scratch_push(SC_FREE, &text);
  char *s = text, *out = text;
  while (isspace((unsigned char)*s)) s++;
  for (; *s; s++) {
    if (*s == '\r') continue;
    if ((unsigned char)*s < ' ' && *s != '\n' && *s != '\t')
      bad("--motd file %s: control character (byte %d)", path, (int)(unsigned char)*s);
    *out++ = *s;
  }
  while (out > text && isspace((unsigned char)out[-1])) out--;
  size_t n = (size_t)(out - text);
  if (n > MOTD_MAX) { /* keep whole UTF-8 characters */
    n = MOTD_MAX;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) n--;
  }
  text[n] = '\0';
  scratch_pop(1);
  return text;
}

/* --runas=USER[:GROUP]: pagekite.py uses the user's id and the group's (or
 * none). */
static void resolve_runas(pkr_cfg *c) {
  char user[256];
  const char *colon = strchr(c->runas, ':');
  snprintf(user, sizeof(user), "%.*s", colon ? (int)(colon - c->runas) : 255, c->runas);
  const struct passwd *pw = getpwnam(user);
  if (!pw) bad("--runas: unknown user '%s'", user);
  c->runas_uid = pw->pw_uid;
  c->runas_gid = pw->pw_gid;
  if (colon) {
    const struct group *gr = getgrnam(colon + 1);
    if (!gr) bad("--runas: unknown group '%s'", colon + 1);
    c->runas_gid = gr->gr_gid;
  }
  if (geteuid() != 0 && geteuid() != c->runas_uid)
    bad("--runas=%s needs root (pagekiter runs as uid %u)", c->runas, (unsigned)geteuid());
}

/* --domain=PROTOS:PATTERN:@FILE: the secret is FILE's first line (the file
 * checked as a secret file); *dom becomes PROTOS:PATTERN:SECRET. */
static void resolve_secret(char **dom, const char *at, const char *pattern, uid_t runas) {
  char secret[CLI_SECRET_MAX + 2], why[PATH_MAX * 2 + 128];
  if (cli_read_secret_file_as(at + 1, secret, sizeof(secret), runas, why, sizeof(why)) != 0)
    bad("--domain for '%s': %s", pattern, why);
  size_t head = (size_t)(at - *dom), n = head + strlen(secret) + 1;
  char *out = xrealloc(NULL, n);
  memcpy(out, *dom, head);
  memcpy(out + head, secret, strlen(secret) + 1);
  memset(secret, 0, sizeof(secret));
  free(*dom);
  *dom = out;
}

static void check_files(pkr_cfg *c) {
  for (int i = 0; i < c->endpoints.n; i++) check_pem(strchr(c->endpoints.v[i], ':') + 1);
  if (c->cert) check_readable("--tls-cert", c->cert);
  if (c->key) check_readable("--tls-key", c->key);
  if (c->motd_file) c->motd = read_motd(c->motd_file);
}

void pkr_check(pkr_cfg *c) {
  where[0] = '\0';
  check_protos("--protos", c->protos);
  if (c->n_ports == 0 && (c->legacy || c->isfrontend)) /* libpagekite: 9443, pagekite.py: 80 */
    add_ports(c, c->legacy ? "9443" : "80");
  if (c->n_ports == 0) bad("--ports is required");
  if (c->domains.n == 0 && c->authdomains.n == 0)
    bad("no --domain or --authdomain given: the relay would reject every kite");
  if ((c->cert == NULL) != (c->key == NULL)) bad("--tls-cert and --tls-key go together");
  /* Secret files may be the --runas user's (read as root now, as that user
   * on a reload). */
  if (c->runas) resolve_runas(c);
  uid_t runas = c->runas ? (uid_t)c->runas_uid : (uid_t)-1;
  char why[PATH_MAX * 2 + 128];
  if (c->secrets_owned &&
      cli_secret_owner_ok(c->secrets_owned, c->secrets_owner, runas, why, sizeof(why)) != 0)
    bad("--secretsfile: %s", why);
  char protos[256], pattern[256];
  for (int i = 0; i < c->domains.n; i++) {
    const char *secret =
        pkr_split_domain(c->domains.v[i], c->protos, protos, pattern, sizeof(protos));
    if (secret[0] == '@') resolve_secret(&c->domains.v[i], secret, pattern, runas);
  }
  for (int i = 0; i < c->n_aliases; i++) {
    int found = 0;
    for (int j = 0; j < c->n_ports; j++) found |= c->ports[j] == c->aliases[i][0];
    if (!found) bad("--portalias: port %d is not in --ports", c->aliases[i][0]);
  }
  if (c->require_tls && !c->cert && c->endpoints.n == 0)
    bad("--require-tls needs --tls-cert/--tls-key or a --tls_endpoint: without a certificate "
        "no tunnel could connect");
  check_files(c);
  /* Only a configuration that will run is warned about, once (not again on
   * each SIGHUP reload). */
  for (int i = 0; i < c->argv_secrets.n && !reload_env; i++)
    cli_warn_argv_secret(PROG, c->argv_secrets.v[i],
                         strncmp(c->argv_secrets.v[i], "--domain", 8) == 0
                             ? "--domain=PROTOS:PATTERN:@FILE or --secretsfile=FILE"
                             : "@FILE as SECRET or --secretsfile=FILE");
}

void pkr_cfg_free(pkr_cfg *c) {
  char **strs[] = {&c->host, &c->protos, &c->tls_default, &c->rawports, &c->motd_file,
                   &c->errorurl, &c->logfile, &c->pidfile, &c->runas, &c->cert, &c->key,
                   &c->motd, &c->secrets_owned};
  for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
    free(*strs[i]);
    *strs[i] = NULL;
  }
  strv_free(&c->domains);
  strv_free(&c->endpoints);
  strv_free(&c->client_acls);
  strv_free(&c->tunnel_acls);
  strv_free(&c->ratelimits);
  strv_free(&c->authdomains);
  strv_free(&c->argv_secrets);
  strv_free(&c->proxy_from);
  free(c->ports);
  free(c->aliases);
  c->ports = NULL;
  c->aliases = NULL;
}

int pkr_reload(pkr_cfg *c, int argc, char **argv, char *why, size_t n) {
  jmp_buf env;
  volatile int ok = 0;
  nscratch = 0;
  reload_env = &env;
  if (setjmp(env) == 0) {
    pkr_parse(c, argc, argv);
    pkr_check(c);
    ok = 1;
  } else {
    pkr_cfg_free(c);
    snprintf(why, n, "%s", reload_why);
  }
  reload_env = NULL;
  where[0] = '\0';
  return ok ? 0 : -1;
}
