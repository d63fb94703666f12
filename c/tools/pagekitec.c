/* pagekitec.c - the PageKite connector: expose local servers through a relay.
 *
 * Usage: pagekitec [options] LPORT PROTO NAME PPORT SECRET [...]
 *
 * A thin program over the public API (pagekite.h): parse flags, configure a
 * manager, run it, print status.  A drop-in for libpagekite's pagekitec:
 * same option letters, exit codes and signals (doc/CLI.md lists what still
 * differs), plus long options of our own.
 */
#include "cli_common.h"

#include <strings.h>
#include <time.h>

#define PROG "pagekitec"
#define KITE_ARGS 5
#define HOST_MAX 256
#define DDNS_MAX 512 /* pagekite_init() takes dyndns_url shorter than this */
#define WHITELABEL_MAX 200
/* Without status changes, the -Y file is still rewritten this often (s). */
#define STATUS_FILE_MIN_INTERVAL 240

/* Exit codes of libpagekite's pagekitec (2 is CLI_EXIT_USAGE; the library
 * itself exits 100 for -B).  6 (a listener) is never used by a connector. */
#define EXIT_MANAGER_INIT 1
#define EXIT_ADD_KITE 3
#define EXIT_FRONTENDS 4
#define EXIT_START_THREAD 5
#define EXIT_STATUS_FILE 7

static void usage(FILE *out) {
  fprintf(out,
          "Usage: " PROG " [options] LPORT PROTO NAME PPORT SECRET [LPORT PROTO NAME PPORT SECRET ...]\n"
          "\n"
          "Expose local servers as kites on a PageKite relay.  Each group of five\n"
          "arguments is one kite: LPORT is the origin port (or HOST:PORT, [V6]:PORT),\n"
          "PROTO is http, https, raw or websocket, NAME is the kite's DNS name,\n"
          "PPORT the public port (0 = default) and SECRET the kite's shared secret\n"
          "(@FILE: FILE's first line; FILE mode 600, ours or root's; a SECRET on\n"
          "the command line works but shows in ps, and is warned about).\n"
          "\n"
          "Relays (default: the pagekite.net service):\n"
          "  -F NAME      use NAME (a DNS name or address) as the frontend pool\n"
          "  -P PORT      frontend port for -F and for kite-name relays (default %d)\n"
          "  --frontend HOST:PORT  use this relay (repeatable); no DDNS, no service relays\n"
          "  -w DOMAIN    white-label configuration using DOMAIN\n"
          "  -S           static setup: no DDNS updates, no DNS refresh of relays\n"
          "  -N           do not re-check DNS for relay changes\n"
          "  -C           do not add each kite name's DNS address as a relay\n"
          "  -n N         always connect to N spare frontends (default 0)\n"
          "  -R           choose frontends at random (fake pings) instead of pinging\n"
          "  -4           disable IPv4 frontends\n"
          "  -6           disable IPv6 frontends\n"
          "  -V 46        request DNS visibility on IPv4 and/or IPv6 (DDNS updates)\n"
          "  --ddns-url FORMAT  dynamic DNS update URL (three %%s: name, addresses, signature)\n"
          "\n"
          "TLS (on by default for the service, -F and -w; off with --frontend alone):\n"
          "  --tls        wrap tunnels in TLS\n"
          "  -I           connect without TLS\n"
          "  --ca-file F  verify the relay against the CA certificates in F (implies --tls)\n"
          "  --insecure   do not verify the relay's certificate (implies --tls)\n"
          "  --ca_certs F     the same as --ca-file (pagekite.py's name)\n"
          "  --proxy URL  reach relays through http://[user:pass@]host:port (CONNECT) or\n"
          "               socks5://, socks5h:// (default: $https_proxy, $all_proxy,\n"
          "               unless $no_proxy names the relay)\n"
          "  --fe_certname N  also accept a relay certificate for N (repeatable; \"\" clears;\n"
          "               the service and -w add their names themselves)\n"
          "\n"
          "Connections and origins:\n"
          "  -l HOST      origin host for bare LPORTs (default localhost)\n"
          "  -c N         max connections (default 1024)\n"
          "  -E N         allow eviction of streams idle for more than N seconds\n"
          "  -H           do not add X-Forwarded-Proto and X-Forwarded-For\n"
          "  -r URL       custom rejection URL (the page shown when an origin is down)\n"
          "  --kite-access NAME:+ip/ADDR | NAME:+password/USER=PASS\n"
          "               pagekite.py's kite flags: only these addresses (ADDR or a /24\n"
          "               as 1.2.3) or HTTP basic auth for kite NAME (repeatable)\n"
          "  --proxyproto NAME[=V]  send kite NAME's streams to its origin behind a PROXY\n"
          "               protocol header, V 1 (text, the default) or 2 (binary), carrying\n"
          "               the visitor's address (pagekite.py's +proxyproto; repeatable)\n"
          "\n"
          "Running:\n"
          "  -a NAME      app name for logging and syslog (default " PROG ")\n"
          "  -s           log to syslog instead of to stderr\n"
          "  -q           less log output (errors only)\n"
          "  -v           more log output (-vv: everything)\n"
          "  -B N         bail out (exit 100) after too many errors (see doc/CLI.md)\n"
          "  -W           enable the watchdog thread (dumps core if we lock up)\n"
          "  -Y [json:|text:]FILE  keep a status summary in FILE\n"
          "  -Y status:FILE / metrics:FILE  keep the full status JSON / Prometheus text\n"
          "  --admin=[HOST:]PORT  serve GET /metrics and /status.json (HOST: 127.0.0.1)\n"
          "  -h, --help   show this help and exit\n"
          "  --version    show the version and exit\n"
          "\n"
          "Signals: SIGUSR1 logs everything, SIGUSR2 dumps the state to the log,\n"
          "SIGINT, SIGQUIT and SIGTERM stop.  Exit codes: 0 stopped, 1 setup failed,\n"
          "2 bad usage, 3 kite refused, 4 relay refused, 5 no thread, 7 -Y file, 100 -B.\n"
          "\n"
          "Example: a web server on port 8000 as demo.example.test, through a relay\n"
          "on this machine without TLS (-I); the relay, the connector, a visitor:\n"
          "  pagekiter --listen=127.0.0.1 --ports=9080 --domain=http:demo.example.test:SECRET\n"
          "\n"
          "  " PROG " -I -F 127.0.0.1 -P 9080 8000 http demo.example.test 0 SECRET\n"
          "\n"
          "  curl -H 'Host: demo.example.test' http://127.0.0.1:9080/\n",
          PAGEKITE_NET_FRONTEND_PORT);
}

/* ---- -Y status summary file ---- */

typedef struct {
  FILE *fp;
  int json;
  int last_status;
  time_t last_write;
  /* "status:" or "metrics:": the library's full texts
   * (pagekite_get_status_json / pagekite_get_metrics), replaced whole */
  int full_metrics, full_status;
  const char *path;
  pagekite_mgr mgr;
} status_file;

/* Without status changes, "status:" and "metrics:" files are rewritten this
 * often (s): a Prometheus textfile collector reads them at any time. */
#define FULL_FILE_INTERVAL 10

/* FILE.tmp, then rename(): a reader sees the old text or the new, whole. */
static void full_file_put(status_file *sf) {
  const char *text = sf->full_metrics ? pagekite_get_metrics(sf->mgr)
                                      : pagekite_get_status_json(sf->mgr);
  if (!text) return;
  char tmp[PATH_MAX + 8];
  snprintf(tmp, sizeof(tmp), "%s.tmp", sf->path);
  FILE *fp = fopen(tmp, "w");
  if (!fp) return;
  int ok = fputs(text, fp) >= 0;
  if (fclose(fp) != 0) ok = 0;
  if (!ok || rename(tmp, sf->path) != 0) unlink(tmp);
}

/* Rewrites the file with one status, in libpagekite's fields. */
static void status_file_put(status_file *sf, const char *name, int code, time_t now) {
  rewind(sf->fp);
  if (sf->json)
    fprintf(sf->fp,
            "{\n  \"pagekitec_version\": \"%s\",\n  \"pagekitec_status\": \"%s\",\n"
            "  \"pagekitec_status_code\": %d,\n  \"pagekitec_pid\": %ld,\n"
            "  \"pagekitec_update_min_interval\": %d,\n  \"pagekitec_update_ts\": %lld\n}\n",
            PK_VERSION, name, code, (long)getpid(), STATUS_FILE_MIN_INTERVAL, (long long)now);
  else
    fprintf(sf->fp,
            "pagekitec_version: %s\npagekitec_status: %s\npagekitec_status_code: %d\n"
            "pagekitec_pid: %ld\npagekitec_update_min_interval: %d\npagekitec_update_ts: %lld\n",
            PK_VERSION, name, code, (long)getpid(), STATUS_FILE_MIN_INTERVAL, (long long)now);
  fflush(sf->fp);
  if (ftruncate(fileno(sf->fp), ftell(sf->fp)) != 0) { /* stale tail is harmless */
  }
  sf->last_write = now;
}

/* The run loop's hook: on a change, and at least every 240 s. */
static void status_file_write(void *ctx, int status) {
  status_file *sf = ctx;
  time_t now = time(NULL);
  if (sf->full_metrics || sf->full_status) {
    if (status == sf->last_status && now - sf->last_write < FULL_FILE_INTERVAL) return;
    full_file_put(sf);
    sf->last_status = status;
    sf->last_write = now;
    return;
  }
  if (!sf->fp) return;
  if (status == sf->last_status && now - sf->last_write < STATUS_FILE_MIN_INTERVAL) return;
  /* Lower-case names, as libpagekite's pagekitec wrote them. */
  char name[16];
  size_t i = 0;
  for (const char *n = pagekite_status_name(status); *n && i + 1 < sizeof(name); n++)
    name[i++] = (char)(*n >= 'A' && *n <= 'Z' ? *n - 'A' + 'a' : *n);
  name[i] = '\0';
  status_file_put(sf, name, status, now);
  sf->last_status = status;
}

/* Opens the -Y file ("json:" or "text:" prefix, JSON by default) and writes
 * "startup" into it, as libpagekite did; exit 7 if it cannot be opened. */
static void status_file_open(status_file *sf, const char *spec) {
  const char *path = spec;
  sf->json = 1;
  if (strncasecmp(path, "json:", 5) == 0) {
    path += 5;
  } else if (strncasecmp(path, "text:", 5) == 0) {
    sf->json = 0;
    path += 5;
  } else if (strncasecmp(path, "status:", 7) == 0) {
    sf->full_status = 1;
    path += 7;
  } else if (strncasecmp(path, "metrics:", 8) == 0) {
    sf->full_metrics = 1;
    path += 8;
  }
  sf->path = path;
  sf->fp = fopen(path, "w");
  if (!sf->fp) {
    fprintf(stderr, PROG ": cannot open status file %s: %s\n", path, strerror(errno));
    exit(EXIT_STATUS_FILE);
  }
  if (sf->full_metrics || sf->full_status) {
    fclose(sf->fp); /* checked that it can be written; filled once the manager runs */
    sf->fp = NULL;
    return;
  }
  status_file_put(sf, "startup", 0, time(NULL));
}

/* ---- options ---- */

enum {
  OPT_FRONTEND = 256,
  OPT_TLS,
  OPT_CA_FILE,
  OPT_INSECURE,
  OPT_DDNS_URL,
  OPT_VERSION,
  OPT_CERTNAME,
  OPT_HK_MIN,
  OPT_PROXY,
  OPT_KITE_ACCESS,
  OPT_ADMIN,
  OPT_PROXYPROTO
};

typedef struct {
  const char *app_name;
  const char *origin_host;
  const char *whitelabel;
  const char *fe_pool; /* -F */
  const char *status_path;
  const char *ddns_url;
  const char *rejection_url;
  const char **frontends; /* --frontend values */
  int n_frontends;
  const char **certnames; /* --fe_certname values */
  int n_certnames;
  const char **access; /* --kite-access values, NAME:RULE */
  int n_access;
  const char *proxy;      /* --proxy, else https_proxy / all_proxy */
  char admin_host[64];    /* --admin (admin_port 0: off) */
  int admin_port;
  const char **proxyproto; /* --proxyproto NAME[=VERSION] values */
  int n_proxyproto;
  int hk_min;
  const char *ca_file;
  int insecure;
  int tls; /* -1 unset, 0 off (-I), 1 on (--tls) */
  int use_syslog;
  int dns_v4, dns_v6; /* -V */
  int verbosity;
  int static_setup;
  int dynamic_fe;
  int use_current;
  int fake_ping;
  int watchdog;
  int fwd_headers;
  int ipv4, ipv6;
  int fe_port;
  int max_conns;
  int spares;
  int bail;
  int evict_s;
} options;

/* -V: libpagekite looks for the digits 4 and 6 in the value. */
static void parse_visibility(const char *v, options *o) {
  if (!*v || strspn(v, "46") != strlen(v))
    cli_usage_error(PROG, "invalid value for -V: '%s' (expected 4, 6 or 46)", v);
  if (strchr(v, '4')) o->dns_v4 = 1;
  if (strchr(v, '6')) o->dns_v6 = 1;
}

/* The options that are not single letters, and getopt's complaints. */
static void parse_other(int c, char **argv, options *o) {
  switch (c) {
    case OPT_FRONTEND: o->frontends[o->n_frontends++] = optarg; break;
    case OPT_TLS: o->tls = 1; break;
    case OPT_CA_FILE: o->ca_file = optarg; break;
    case OPT_INSECURE: o->insecure = 1; break;
    case OPT_DDNS_URL: o->ddns_url = optarg; break;
    case OPT_CERTNAME: o->certnames[o->n_certnames++] = optarg; break;
    case OPT_HK_MIN: o->hk_min = cli_int_arg(PROG, "--housekeeping-min", optarg, 1, 3600); break;
    case OPT_PROXY: o->proxy = optarg; break;
    case OPT_ADMIN:
      if (cli_split_host_port(optarg, "127.0.0.1", o->admin_host, sizeof(o->admin_host), 1,
                              &o->admin_port) != 0)
        cli_usage_error(PROG, "invalid --admin '%s' (expected PORT, HOST:PORT or [V6ADDR]:PORT)",
                        optarg);
      break;
    case OPT_KITE_ACCESS:
      if (!strchr(optarg, ':') || optarg[0] == ':')
        cli_usage_error(PROG, "invalid --kite-access '%s' (expected NAME:+ip/ADDR or "
                        "NAME:+password/USER=PASS)", optarg);
      o->access[o->n_access++] = optarg;
      break;
    case OPT_PROXYPROTO: o->proxyproto[o->n_proxyproto++] = optarg; break;
    case OPT_VERSION: cli_print_version(PROG); exit(CLI_EXIT_OK);
    case ':': cli_usage_error(PROG, "option '%s' needs a value", argv[optind - 1]);
    default:
      if (optopt && optopt < 256) cli_usage_error(PROG, "unknown option '-%c'", optopt);
      if (optopt >= 256) cli_usage_error(PROG, "option '%s' takes no value", argv[optind - 1]);
      cli_usage_error(PROG, "unknown option '%s'", argv[optind - 1]);
  }
}

static void parse_options(int argc, char **argv, options *o) {
  static const struct option longopts[] = {
      {"frontend", required_argument, NULL, OPT_FRONTEND},
      {"tls", no_argument, NULL, OPT_TLS},
      {"ca-file", required_argument, NULL, OPT_CA_FILE},
      {"ca_certs", required_argument, NULL, OPT_CA_FILE}, /* pagekite.py's name */
      {"fe_certname", required_argument, NULL, OPT_CERTNAME},
      {"fe-certname", required_argument, NULL, OPT_CERTNAME},
      {"housekeeping-min", required_argument, NULL, OPT_HK_MIN},
      {"proxy", required_argument, NULL, OPT_PROXY},
      {"admin", required_argument, NULL, OPT_ADMIN},
      {"proxyproto", required_argument, NULL, OPT_PROXYPROTO},
      {"insecure", no_argument, NULL, OPT_INSECURE},
      {"ddns-url", required_argument, NULL, OPT_DDNS_URL},
      {"kite-access", required_argument, NULL, OPT_KITE_ACCESS},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, OPT_VERSION},
      {NULL, 0, NULL, 0},
  };
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":46a:B:c:CE:F:hHIl:Nn:P:qr:RsSvV:Ww:Y:", longopts,
                          NULL)) != -1) {
    switch (c) {
      case '4': o->ipv4 = 0; break;
      case '6': o->ipv6 = 0; break;
      case 'a': o->app_name = optarg; break;
      case 'B': o->bail = cli_int_arg(PROG, "-B", optarg, 0, INT_MAX); break;
      case 'c': o->max_conns = cli_int_arg(PROG, "-c", optarg, 1, 1000000); break;
      case 'C': o->use_current = 0; break;
      case 'E': o->evict_s = cli_int_arg(PROG, "-E", optarg, 0, INT_MAX); break;
      case 'F': o->fe_pool = optarg; break;
      case 'h': usage(stdout); exit(CLI_EXIT_OK);
      case 'H': o->fwd_headers = 0; break;
      case 'I': o->tls = 0; break;
      case 'l': o->origin_host = optarg; break;
      case 'N': o->dynamic_fe = 0; break;
      case 'n': o->spares = cli_int_arg(PROG, "-n", optarg, 0, PAGEKITE_NET_FE_MAX); break;
      case 'P': o->fe_port = cli_int_arg(PROG, "-P", optarg, 1, 65535); break;
      case 'q': o->verbosity--; break;
      case 'r': o->rejection_url = optarg; break;
      case 'R': o->fake_ping = 1; break;
      case 's': o->use_syslog = 1; break;
      case 'S': o->static_setup = 1; break;
      case 'v': o->verbosity++; break;
      case 'V': parse_visibility(optarg, o); break;
      case 'W': o->watchdog = 1; break;
      case 'w': o->whitelabel = optarg; break;
      case 'Y': o->status_path = optarg; break;
      default: parse_other(c, argv, o);
    }
  }
}

/* A dynamic DNS format: http://, exactly three %s, no other conversions. */
static int ddns_format_ok(const char *f) {
  int n = 0;
  if (strncmp(f, "http://", 7) != 0 || strlen(f) >= DDNS_MAX - 16) return 0;
  for (const char *p = strchr(f, '%'); p; p = strchr(p + 2, '%')) {
    if (p[1] == 's')
      n++;
    else if (p[1] != '%')
      return 0;
  }
  return n == 3;
}

/* Combinations that cannot work, found before the library is touched. */
static void check_options(options *o) {
  if (o->ca_file && o->insecure) cli_usage_error(PROG, "--ca-file and --insecure conflict");
  if ((o->ca_file || o->insecure) && o->tls == 0)
    cli_usage_error(PROG, "-I (no TLS) conflicts with %s", o->ca_file ? "--ca-file" : "--insecure");
  if (o->ca_file || o->insecure) o->tls = 1;
  if (!o->ipv4 && !o->ipv6) cli_usage_error(PROG, "-4 and -6 together disable every frontend");
  if (o->whitelabel && (!*o->whitelabel || strlen(o->whitelabel) > WHITELABEL_MAX))
    cli_usage_error(PROG, "-w needs a domain of 1..%d characters", WHITELABEL_MAX);
  if (o->fe_pool && !*o->fe_pool) cli_usage_error(PROG, "-F needs a DNS name");
  if (!*o->origin_host) cli_usage_error(PROG, "-l needs a host name");
  if (!*o->app_name) cli_usage_error(PROG, "-a needs a name");
  if (o->ddns_url && !ddns_format_ok(o->ddns_url))
    cli_usage_error(PROG, "invalid --ddns-url '%s' (expected http://... with exactly three %%s)",
                    o->ddns_url);
  if (o->ddns_url && o->static_setup) cli_usage_error(PROG, "-S (no DDNS) conflicts with --ddns-url");
  for (int i = 0; i < o->n_frontends; i++) {
    char host[HOST_MAX];
    int port = 0;
    if (cli_split_host_port(o->frontends[i], NULL, host, sizeof(host), 1, &port) != 0)
      cli_usage_error(PROG, "invalid --frontend '%s' (expected HOST:PORT)", o->frontends[i]);
  }
}

/* SECRET as @FILE: argv[at] becomes FILE's first line (FILE checked as a
 * secret file: mode 600, ours or root's; exit 2 if not).  A secret given
 * as it is works, with a warning that it shows in ps. */
static void secret_arg(char **argv, int at, const char *name) {
  if (argv[at][0] != '@') {
    char what[HOST_MAX + 16];
    snprintf(what, sizeof(what), "kite %.*s", HOST_MAX, name);
    cli_warn_argv_secret(PROG, what, "@FILE as SECRET");
    return;
  }
  static char secret[CLI_SECRET_MAX + 2];
  char why[PATH_MAX * 2 + 128];
  if (cli_read_secret_file(argv[at] + 1, secret, sizeof(secret), why, sizeof(why)) != 0)
    cli_usage_error(PROG, "SECRET for kite '%s': %s", name, why);
  argv[at] = strdup(secret); /* lives as long as argv; freed at exit */
  memset(secret, 0, sizeof(secret));
  if (!argv[at]) {
    fprintf(stderr, PROG ": out of memory\n");
    exit(EXIT_MANAGER_INIT);
  }
}

/* Validates every kite group before the manager exists, so bad usage never
 * half-configures anything. */
static void check_kites(int argc, char **argv, int first) {
  int n = argc - first;
  if (n == 0) cli_usage_error(PROG, "no kites given");
  if (n % KITE_ARGS != 0)
    cli_usage_error(PROG, "kites take %d arguments each (LPORT PROTO NAME PPORT SECRET), got %d",
                    KITE_ARGS, n);
  for (int i = first; i < argc; i += KITE_ARGS) {
    char host[HOST_MAX];
    int port = 0;
    if (cli_split_host_port(argv[i], "localhost", host, sizeof(host), 1, &port) != 0)
      cli_usage_error(PROG, "invalid LPORT '%s' (expected PORT or HOST:PORT)", argv[i]);
    if (!*argv[i + 1]) cli_usage_error(PROG, "empty PROTO for kite '%s'", argv[i + 2]);
    if (!*argv[i + 2]) cli_usage_error(PROG, "empty kite NAME");
    if (cli_parse_int(argv[i + 3], 0, 65535, &port) != 0)
      cli_usage_error(PROG, "invalid PPORT '%s' for kite '%s'", argv[i + 3], argv[i + 2]);
    if (!*argv[i + 4]) cli_usage_error(PROG, "empty SECRET for kite '%s'", argv[i + 2]);
  }
  for (int i = first; i < argc; i += KITE_ARGS) secret_arg(argv, i + 4, argv[i + 2]);
}

/* --proxyproto NAME[=V]: the version (1 or 2) and the name's length, or exit 2. */
static int proxyproto_arg(const char *v, size_t *namelen) {
  const char *eq = strchr(v, '=');
  *namelen = eq ? (size_t)(eq - v) : strlen(v);
  int ver = 1;
  if (*namelen == 0 || (eq && cli_parse_int(eq + 1, 1, 2, &ver) != 0))
    cli_usage_error(PROG, "invalid --proxyproto '%s' (expected NAME, NAME=1 or NAME=2)", v);
  return ver;
}

/* Every --proxyproto names a kite given on the command line. */
static void check_proxyproto(const options *o, int argc, char **argv, int first) {
  for (int j = 0; j < o->n_proxyproto; j++) {
    size_t nl;
    proxyproto_arg(o->proxyproto[j], &nl);
    int found = 0;
    for (int i = first; i < argc; i += KITE_ARGS)
      if (strlen(argv[i + 2]) == nl && strncasecmp(argv[i + 2], o->proxyproto[j], nl) == 0) found = 1;
    if (!found) cli_usage_error(PROG, "--proxyproto '%s' names no kite given", o->proxyproto[j]);
  }
}

/* ---- setting up the manager ---- */

/* What the options decide about relays, TLS and dynamic DNS. */
typedef struct {
  int explicit_fe;   /* --frontend or -F: no service or white-label pool */
  int private_relay; /* --frontend alone: no DDNS, no TLS by default */
  int flags;
  int n_kites;
  char ddns[DDNS_MAX];
  int have_ddns;
} plan;

/* The dynamic DNS update URL: --ddns-url, the white-label or the service
 * one; none with -S or a private relay.  -V appends "&ipv=4", "6" or "46". */
static void plan_ddns(const options *o, plan *p) {
  p->have_ddns = !o->static_setup && (o->ddns_url || !p->private_relay);
  if (!p->have_ddns) return;
  if (o->ddns_url)
    snprintf(p->ddns, sizeof(p->ddns), "%s", o->ddns_url);
  else if (o->whitelabel)
    snprintf(p->ddns, sizeof(p->ddns), PAGEKITE_NET_WL_DDNS, o->whitelabel);
  else
    snprintf(p->ddns, sizeof(p->ddns), "%s", PAGEKITE_NET_DDNS);
  if (o->dns_v4 || o->dns_v6) {
    size_t n = strlen(p->ddns);
    snprintf(p->ddns + n, sizeof(p->ddns) - n, "&ipv=%s%s", o->dns_v4 ? "4" : "",
             o->dns_v6 ? "6" : "");
  }
}

static void make_plan(options *o, int n_kites, plan *p) {
  memset(p, 0, sizeof(*p));
  p->n_kites = n_kites;
  p->explicit_fe = o->n_frontends > 0 || o->fe_pool != NULL;
  p->private_relay = o->n_frontends > 0 && !o->fe_pool && !o->whitelabel;
  if (o->static_setup) o->dynamic_fe = 0;
  if (p->private_relay) o->use_current = 0; /* kite names need not resolve */
  if (o->tls < 0) o->tls = p->private_relay ? 0 : 1;
  if (o->static_setup && !p->explicit_fe && !o->whitelabel && !o->use_current)
    cli_usage_error(PROG, "-S with -C and no -F/--frontend leaves no relay to connect to");
  p->flags = (o->tls ? PK_WITH_SSL : 0) | (o->ipv4 ? PK_WITH_IPV4 : 0) |
             (o->ipv6 ? PK_WITH_IPV6 : 0) | (o->dynamic_fe ? PK_WITH_DYNAMIC_FE_LIST : 0);
  plan_ddns(o, p);
}

/* A failed library call: the reason on stderr (and in syslog with -s). */
static int fail(const options *o, int code, const char *what) {
  fprintf(stderr, PROG ": %s failed: %s\n", what, pagekite_last_error());
  if (o->use_syslog) syslog(LOG_ERR, "%s failed: %s", what, pagekite_last_error());
  return code;
}

/* Whether host is listed in no_proxy / NO_PROXY ("*", a name, or a
 * domain suffix with or without its leading dot). */
static int no_proxy_for(const char *host) {
  const char *list = getenv("no_proxy");
  if (!list) list = getenv("NO_PROXY");
  for (const char *p = list; p && *p;) {
    p += strspn(p, ", ");
    size_t n = strcspn(p, ", ");
    const char *e = p + n;
    if (n && *p == '.') p++, n--;
    size_t hl = strlen(host);
    if ((n == 1 && *p == '*') ||
        (n && n <= hl && strncasecmp(host + hl - n, p, n) == 0 &&
         (n == hl || host[hl - n - 1] == '.')))
      return 1;
    p = e;
  }
  return 0;
}

/* --proxy, else https_proxy / all_proxy from the environment (as curl reads
 * them), unless no_proxy names a relay we were given. */
static const char *choose_proxy(const options *o) {
  if (o->proxy) return o->proxy;
  static const char *const vars[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
  const char *env = NULL;
  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]) && !env; i++)
    if (getenv(vars[i]) && *getenv(vars[i])) env = getenv(vars[i]);
  for (int i = 0; env && i < o->n_frontends; i++) {
    char host[HOST_MAX];
    int port;
    if (cli_split_host_port(o->frontends[i], NULL, host, sizeof(host), 1, &port) == 0 &&
        no_proxy_for(host))
      return NULL;
  }
  return env;
}

/* The per-manager settings; 0, or an exit code after reporting. */
static int configure(pagekite_mgr m, const options *o) {
  if ((o->ca_file || o->insecure) &&
      pagekite_set_tls_verify(m, o->insecure ? PK_TLS_VERIFY_NONE : PK_TLS_VERIFY_PEER,
                              o->ca_file) < 0)
    return fail(o, EXIT_MANAGER_INIT, "pagekite_set_tls_verify");
  for (int i = 0; i < o->n_certnames; i++)
    if (pagekite_add_frontend_certname(m, o->certnames[i]) < 0)
      return fail(o, EXIT_MANAGER_INIT, "pagekite_add_frontend_certname");
  if (o->hk_min) pagekite_set_housekeeping_min_interval(m, o->hk_min);
  const char *proxy = choose_proxy(o);
  if (proxy && pagekite_set_proxy(m, proxy) < 0) return fail(o, EXIT_MANAGER_INIT, "pagekite_set_proxy");
  pagekite_want_spare_frontends(m, o->spares);
  pagekite_enable_watchdog(m, o->watchdog);
  pagekite_enable_http_forwarding_headers(m, o->fwd_headers);
  pagekite_enable_fake_ping(m, o->fake_ping);
  pagekite_set_bail_on_errors(m, o->bail);
  pagekite_set_conn_eviction_idle_s(m, o->evict_s);
  if (o->rejection_url) {
    /* libpagekite frames URL?&where=BE&v=..&proto=..&domain=..&relay_ip=..
     * in the 503 page the connector sends when an origin is unreachable. */
    if (pagekite_set_rejection_url(m, o->rejection_url) < 0)
      return fail(o, EXIT_MANAGER_INIT, "pagekite_set_rejection_url");
  }
  if (o->admin_port && pagekite_set_admin_listener(m, o->admin_host, o->admin_port) < 0)
    return fail(o, EXIT_MANAGER_INIT, "pagekite_set_admin_listener");
  return 0;
}

/* --kite-access NAME:RULE (pagekite.py's +ip/ and +password/ kite flags):
 * one that cannot apply is a usage error (exit 2) saying why. */
static int add_kite_access(pagekite_mgr m, const options *o) {
  for (int i = 0; i < o->n_access; i++) {
    const char *colon = strchr(o->access[i], ':');
    char name[HOST_MAX];
    snprintf(name, sizeof(name), "%.*s", (int)(colon - o->access[i]), o->access[i]);
    if (pagekite_add_kite_access(m, name, 0, colon + 1) < 0) {
      fprintf(stderr, "%s: --kite-access for %s: %s\n", PROG, name, pagekite_last_error());
      return CLI_EXIT_USAGE;
    }
  }
  return 0;
}

/* Each kite, and (unless -C) its name's DNS address as a relay; a name that
 * does not resolve is only skipped, as in libpagekite.  0 or exit 3. */
static int add_kites(pagekite_mgr m, const options *o, int argc, char **argv, int first) {
  char what[HOST_MAX + 64];
  for (int i = first; i < argc; i += KITE_ARGS) {
    char host[HOST_MAX];
    int lport = 0, pport = 0;
    cli_split_host_port(argv[i], o->origin_host, host, sizeof(host), 1, &lport);
    cli_parse_int(argv[i + 3], 0, 65535, &pport);
    if (pagekite_add_kite(m, argv[i + 1], argv[i + 2], pport, argv[i + 4], host, lport) < 0) {
      snprintf(what, sizeof(what), "pagekite_add_kite(%s, %s)", argv[i + 1], argv[i + 2]);
      return fail(o, EXIT_ADD_KITE, what);
    }
    for (int j = 0; j < o->n_proxyproto; j++) {
      size_t nl;
      int ver = proxyproto_arg(o->proxyproto[j], &nl);
      if (strlen(argv[i + 2]) != nl || strncasecmp(argv[i + 2], o->proxyproto[j], nl) != 0) continue;
      if (pagekite_set_kite_proxy_protocol(m, argv[i + 1], argv[i + 2], ver) < 0) {
        snprintf(what, sizeof(what), "pagekite_set_kite_proxy_protocol(%s, %s)", argv[i + 1], argv[i + 2]);
        return fail(o, EXIT_ADD_KITE, what);
      }
    }
    if (o->use_current &&
        pagekite_add_frontend(m, argv[i + 2], pport ? pport : o->fe_port) < 0) {
      snprintf(what, sizeof(what), "pagekite_add_frontend(%s)", argv[i + 2]);
      return fail(o, EXIT_ADD_KITE, what);
    }
  }
  return 0;
}

/* --frontend relays, the -F pool, else the white-label or service pool.
 * 0 or exit 4. */
static int add_relays(pagekite_mgr m, const options *o, const plan *p) {
  char what[HOST_MAX + 64];
  for (int i = 0; i < o->n_frontends; i++) {
    char host[HOST_MAX];
    int port = 0;
    cli_split_host_port(o->frontends[i], NULL, host, sizeof(host), 1, &port);
    if (pagekite_lookup_and_add_frontend(m, host, port, o->dynamic_fe) < 0) {
      snprintf(what, sizeof(what), "pagekite_lookup_and_add_frontend(%s)", o->frontends[i]);
      return fail(o, EXIT_FRONTENDS, what);
    }
  }
  if (o->fe_pool && pagekite_lookup_and_add_frontend(m, o->fe_pool, o->fe_port, o->dynamic_fe) < 0) {
    snprintf(what, sizeof(what), "pagekite_lookup_and_add_frontend(%s)", o->fe_pool);
    return fail(o, EXIT_FRONTENDS, what);
  }
  if (p->explicit_fe) return 0;
  if (o->whitelabel && pagekite_add_whitelabel_frontends(m, p->flags, o->whitelabel) < 0)
    return fail(o, EXIT_FRONTENDS, "pagekite_add_whitelabel_frontends");
  /* Like libpagekite: -S (no DDNS) also means no service pool. */
  if (!o->whitelabel && !o->static_setup && pagekite_add_service_frontends(m, p->flags) < 0)
    return fail(o, EXIT_FRONTENDS, "pagekite_add_service_frontends");
  return 0;
}

/* ---- main ---- */

static pagekite_mgr init_manager(const options *o, const plan *p) {
  /* Room for the service pools, each --frontend and each kite name. */
  int max_fes = PAGEKITE_NET_FE_MAX + o->n_frontends + p->n_kites;
  if (max_fes > 1000) max_fes = 1000;
  return pagekite_init(o->app_name, p->n_kites, max_fes, o->max_conns,
                       p->have_ddns ? p->ddns : NULL, p->flags, cli_log_mask(o->verbosity));
}

static int run(options *o, int argc, char **argv, int first) {
  plan p;
  make_plan(o, (argc - first) / KITE_ARGS, &p);
  status_file sf = {NULL, 1, -1, 0, 0, 0, NULL, NULL};
  if (o->status_path) status_file_open(&sf, o->status_path);
  if (o->use_syslog) openlog(o->app_name, 0, LOG_USER);

  int rc;
  pagekite_mgr m = init_manager(o, &p);
  if (!m) {
    rc = fail(o, EXIT_MANAGER_INIT, "pagekite_init");
  } else {
    pagekite_set_log_mask(m, cli_log_mask(o->verbosity));
    rc = configure(m, o);
    if (!rc) rc = add_kites(m, o, argc, argv, first);
    if (!rc) rc = add_kite_access(m, o);
    if (!rc) rc = add_relays(m, o, &p);
    if (rc) {
      pagekite_free(m);
    } else {
      sf.mgr = m;
      int hooked = sf.fp || sf.full_metrics || sf.full_status;
      cli_run_opts ro = {hooked ? status_file_write : NULL, &sf, o->use_syslog, EXIT_START_THREAD,
                         NULL};
      rc = cli_run_with(m, PROG, &ro);
    }
  }
  if (sf.fp) {
    status_file_put(&sf, "shutdown", 0, time(NULL));
    fclose(sf.fp);
  }
  /* A stopped connector has no metrics: none are left for a collector. */
  if (sf.full_metrics || sf.full_status) unlink(sf.path);
  if (o->use_syslog) closelog();
  return rc;
}

int main(int argc, char **argv) {
  options o = {
      .app_name = PROG,
      .origin_host = "localhost",
      .tls = -1,
      .dynamic_fe = 1,
      .use_current = 1,
      .fwd_headers = 1,
      .ipv4 = 1,
      .ipv6 = 1,
      .fe_port = PAGEKITE_NET_FRONTEND_PORT,
      .max_conns = 1024,
  };
  o.frontends = calloc((size_t)argc + 1, sizeof(*o.frontends));
  o.certnames = calloc((size_t)argc + 1, sizeof(*o.certnames));
  o.access = calloc((size_t)argc + 1, sizeof(*o.access));
  o.proxyproto = calloc((size_t)argc + 1, sizeof(*o.proxyproto));
  if (!o.frontends || !o.certnames || !o.access || !o.proxyproto) {
    fprintf(stderr, PROG ": out of memory\n");
    return EXIT_MANAGER_INIT;
  }
  parse_options(argc, argv, &o);
  check_options(&o);
  check_kites(argc, argv, optind);
  check_proxyproto(&o, argc, argv, optind);
  int rc = run(&o, argc, argv, optind);
  free(o.frontends);
  free(o.certnames);
  free(o.access);
  free(o.proxyproto);
  return rc;
}
