/* pagekitec.c - the PageKite connector: expose local servers through a relay.
 *
 * Usage: pagekitec [options] LPORT PROTO NAME PPORT SECRET [...]
 *
 * A thin program over the public API (pagekite.h): parse flags, configure a
 * manager, run it, print status.  Option letters follow libpagekite's
 * pagekitec; see doc/CLI.md for the mapping onto API calls.
 */
#include "cli_common.h"

#include <strings.h>
#include <time.h>

#define PROG "pagekitec"
#define KITE_ARGS 5
#define HOST_MAX 256
/* Without status changes, the -Y file is still rewritten this often (s). */
#define STATUS_FILE_MIN_INTERVAL 240

static void usage(FILE *out) {
  fprintf(out,
          "Usage: " PROG " [options] LPORT PROTO NAME PPORT SECRET [LPORT PROTO NAME PPORT SECRET ...]\n"
          "\n"
          "Expose local servers as kites on a PageKite relay.  Each group of five\n"
          "arguments is one kite: LPORT is the origin port (or HOST:PORT, [V6]:PORT),\n"
          "PROTO is http, https, raw or websocket, NAME is the kite's DNS name,\n"
          "PPORT the public port (0 = default) and SECRET the kite's shared secret.\n"
          "\n"
          "Relays (default: the pagekite.net service):\n"
          "  --frontend HOST:PORT  use this relay (repeatable); no DDNS, no service relays\n"
          "  -F NAME      use NAME (a DNS name) as the frontend pool\n"
          "  -P PORT      frontend port for -F and for kite-name relays (default %d)\n"
          "  -w DOMAIN    white-label configuration using DOMAIN\n"
          "  -S           static setup: no DDNS updates, no DNS refresh of relays\n"
          "  -N           do not re-check DNS for relay changes\n"
          "  -C           do not add each kite name's DNS address as a relay\n"
          "  -n N         always connect to N spare frontends (default 0)\n"
          "  -R           choose frontends at random (fake pings) instead of pinging\n"
          "  -4           disable IPv4 frontends\n"
          "  -6           disable IPv6 frontends\n"
          "\n"
          "TLS (on by default for the service, off by default with --frontend):\n"
          "  -s, --tls    wrap tunnels in TLS\n"
          "  -I           connect without TLS\n"
          "  --ca-file F  verify the relay against the CA certificates in F (implies --tls)\n"
          "  --insecure   do not verify the relay's certificate (implies --tls)\n"
          "\n"
          "Connections and origins:\n"
          "  -l HOST      origin host for bare LPORTs (default localhost)\n"
          "  -c N         max connections (default 25)\n"
          "  -E N         allow eviction of streams idle for more than N seconds\n"
          "  -H           do not add X-Forwarded-Proto and X-Forwarded-For\n"
          "  -r URL       custom rejection URL (accepted; not supported by this library)\n"
          "\n"
          "Running:\n"
          "  -a NAME      app name for logging (default " PROG ")\n"
          "  -q           less log output (errors only)\n"
          "  -v           more log output (-vv: everything)\n"
          "  -B N         bail out (exit) after N logged errors\n"
          "  -W           enable the watchdog thread (dumps core if we lock up)\n"
          "  -Y [json:|text:]FILE  keep a status summary in FILE\n"
          "  -h, --help   show this help and exit\n"
          "  --version    show the version and exit\n"
          "\n"
          "Example (a relay on this machine, see pagekiter):\n"
          "  " PROG " --frontend 127.0.0.1:9080 8000 http demo.example.test 0 SECRET\n",
          PAGEKITE_NET_FRONTEND_PORT);
}

/* ---- -Y status summary file ---- */

typedef struct {
  FILE *fp;
  int json;
  int last_status;
  time_t last_write;
} status_file;

static void status_file_write(void *ctx, int status) {
  status_file *sf = ctx;
  time_t now = time(NULL);
  if (!sf->fp) return;
  if (status == sf->last_status && now - sf->last_write < STATUS_FILE_MIN_INTERVAL) return;
  /* Lower-case names, as libpagekite's pagekitec wrote them. */
  char name[16];
  size_t i = 0;
  for (const char *n = pagekite_status_name(status); *n && i + 1 < sizeof(name); n++)
    name[i++] = (char)(*n >= 'A' && *n <= 'Z' ? *n - 'A' + 'a' : *n);
  name[i] = '\0';
  rewind(sf->fp);
  if (sf->json)
    fprintf(sf->fp,
            "{\n  \"pagekitec_version\": \"%s\",\n  \"pagekitec_status\": \"%s\",\n"
            "  \"pagekitec_status_code\": %d,\n  \"pagekitec_pid\": %ld,\n"
            "  \"pagekitec_update_min_interval\": %d,\n  \"pagekitec_update_ts\": %lld\n}\n",
            PK_VERSION, name, status, (long)getpid(),
            STATUS_FILE_MIN_INTERVAL, (long long)now);
  else
    fprintf(sf->fp,
            "pagekitec_version: %s\npagekitec_status: %s\npagekitec_status_code: %d\n"
            "pagekitec_pid: %ld\npagekitec_update_min_interval: %d\npagekitec_update_ts: %lld\n",
            PK_VERSION, name, status, (long)getpid(),
            STATUS_FILE_MIN_INTERVAL, (long long)now);
  fflush(sf->fp);
  if (ftruncate(fileno(sf->fp), ftell(sf->fp)) != 0) { /* stale tail is harmless */
  }
  sf->last_status = status;
  sf->last_write = now;
}

/* ---- options ---- */

enum { OPT_FRONTEND = 256, OPT_TLS, OPT_CA_FILE, OPT_INSECURE, OPT_VERSION };

typedef struct {
  const char *app_name;
  const char *origin_host;
  const char *whitelabel;
  const char *fe_pool; /* -F */
  const char *status_path;
  const char **frontends; /* --frontend values */
  int n_frontends;
  const char *ca_file;
  int insecure;
  int tls; /* -1 unset, 0 off (-I), 1 on (-s/--tls) */
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

static void parse_options(int argc, char **argv, options *o) {
  static const struct option longopts[] = {
      {"frontend", required_argument, NULL, OPT_FRONTEND},
      {"tls", no_argument, NULL, OPT_TLS},
      {"ca-file", required_argument, NULL, OPT_CA_FILE},
      {"insecure", no_argument, NULL, OPT_INSECURE},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, OPT_VERSION},
      {NULL, 0, NULL, 0},
  };
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":46a:B:c:CE:F:hHIl:Nn:P:qr:RsSvWw:Y:", longopts, NULL)) !=
         -1) {
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
      case 'r':
        fprintf(stderr, PROG ": warning: -r %s ignored (no rejection URL support)\n", optarg);
        break;
      case 'R': o->fake_ping = 1; break;
      case 's':
      case OPT_TLS: o->tls = 1; break;
      case 'S': o->static_setup = 1; break;
      case 'v': o->verbosity++; break;
      case 'W': o->watchdog = 1; break;
      case 'w': o->whitelabel = optarg; break;
      case 'Y': o->status_path = optarg; break;
      case OPT_FRONTEND: o->frontends[o->n_frontends++] = optarg; break;
      case OPT_CA_FILE: o->ca_file = optarg; break;
      case OPT_INSECURE: o->insecure = 1; break;
      case OPT_VERSION: cli_print_version(PROG); exit(CLI_EXIT_OK);
      case ':': cli_usage_error(PROG, "option '%s' needs a value", argv[optind - 1]);
      default:
        if (optopt && optopt < 256)
          cli_usage_error(PROG, "unknown option '-%c'", optopt);
        if (optopt >= 256) cli_usage_error(PROG, "option '%s' takes no value", argv[optind - 1]);
        cli_usage_error(PROG, "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (o->ca_file && o->insecure) cli_usage_error(PROG, "--ca-file and --insecure conflict");
  if ((o->ca_file || o->insecure) && o->tls == 0)
    cli_usage_error(PROG, "-I (no TLS) conflicts with %s", o->ca_file ? "--ca-file" : "--insecure");
  if (o->ca_file || o->insecure) o->tls = 1;
  if (!o->ipv4 && !o->ipv6) cli_usage_error(PROG, "-4 and -6 together disable every frontend");
  if (o->whitelabel && !*o->whitelabel) cli_usage_error(PROG, "-w needs a domain");
  if (o->fe_pool && !*o->fe_pool) cli_usage_error(PROG, "-F needs a DNS name");
  if (!*o->origin_host) cli_usage_error(PROG, "-l needs a host name");
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
}

/* ---- main ---- */

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
      .max_conns = 25,
  };
  o.frontends = calloc((size_t)argc + 1, sizeof(*o.frontends));
  if (!o.frontends) return CLI_EXIT_FAIL;
  parse_options(argc, argv, &o);
  check_kites(argc, argv, optind);
  for (int i = 0; i < o.n_frontends; i++) {
    char host[HOST_MAX];
    int port = 0;
    if (cli_split_host_port(o.frontends[i], NULL, host, sizeof(host), 1, &port) != 0)
      cli_usage_error(PROG, "invalid --frontend '%s' (expected HOST:PORT)", o.frontends[i]);
  }

  /* Which relays: explicit ones (--frontend, -F) replace the service pool.
   * A private relay (--frontend alone) gets no DDNS and no TLS by default. */
  int explicit_fe = o.n_frontends > 0 || o.fe_pool != NULL;
  int private_relay = o.n_frontends > 0 && !o.fe_pool && !o.whitelabel;
  if (o.static_setup) o.dynamic_fe = 0;
  if (private_relay) o.use_current = 0; /* kite names need not resolve */
  if (o.tls < 0) o.tls = private_relay ? 0 : 1;
  if (o.static_setup && !explicit_fe && !o.whitelabel && !o.use_current)
    cli_usage_error(PROG, "-S with -C and no -F/--frontend leaves no relay to connect to");

  int flags = (o.tls ? PK_WITH_SSL : 0) | (o.ipv4 ? PK_WITH_IPV4 : 0) |
              (o.ipv6 ? PK_WITH_IPV6 : 0) | (o.dynamic_fe ? PK_WITH_DYNAMIC_FE_LIST : 0);
  int n_kites = (argc - optind) / KITE_ARGS;
  int mask = cli_log_mask(o.verbosity);

  status_file sf = {NULL, 1, -1, 0};
  if (o.status_path) {
    const char *path = o.status_path;
    if (strncasecmp(path, "json:", 5) == 0) {
      path += 5;
    } else if (strncasecmp(path, "text:", 5) == 0) {
      sf.json = 0;
      path += 5;
    }
    sf.fp = fopen(path, "w");
    if (!sf.fp) {
      fprintf(stderr, PROG ": cannot open status file %s: %s\n", path, strerror(errno));
      return CLI_EXIT_FAIL;
    }
  }

  pagekite_mgr m;
  const char *init_call;
  if (o.static_setup || private_relay || (o.fe_pool && !o.whitelabel)) {
    /* Static setups and private relays never send DDNS updates; a custom
     * pool (-F) on the service does, as libpagekite's pagekitec did. */
    const char *ddns = (o.static_setup || private_relay) ? NULL : PAGEKITE_NET_DDNS;
    init_call = "pagekite_init";
    m = pagekite_init(o.app_name, n_kites, PAGEKITE_NET_FE_MAX + o.n_frontends, o.max_conns, ddns,
                      flags, mask);
  } else if (o.whitelabel) {
    init_call = "pagekite_init_whitelabel";
    m = pagekite_init_whitelabel(o.app_name, n_kites, o.max_conns,
                                 flags | (explicit_fe ? PK_WITHOUT_SERVICE_FRONTENDS : 0), mask,
                                 o.whitelabel);
  } else {
    init_call = "pagekite_init_pagekitenet";
    m = pagekite_init_pagekitenet(o.app_name, n_kites, o.max_conns, flags, mask);
  }
  if (!m) return cli_fail(PROG, init_call);

  int rc = CLI_EXIT_OK;
  const char *failed = NULL;
  char what[HOST_MAX + 64];
  pagekite_set_log_mask(m, mask);
  if ((o.ca_file || o.insecure) &&
      pagekite_set_tls_verify(m, o.insecure ? PK_TLS_VERIFY_NONE : PK_TLS_VERIFY_PEER,
                              o.ca_file) < 0)
    failed = "pagekite_set_tls_verify";
  pagekite_want_spare_frontends(m, o.spares);
  pagekite_enable_watchdog(m, o.watchdog);
  pagekite_enable_http_forwarding_headers(m, o.fwd_headers);
  pagekite_enable_fake_ping(m, o.fake_ping);
  pagekite_set_bail_on_errors(m, o.bail);
  pagekite_set_conn_eviction_idle_s(m, o.evict_s);

  for (int i = optind; !failed && i < argc; i += KITE_ARGS) {
    char host[HOST_MAX];
    int lport = 0, pport = 0;
    cli_split_host_port(argv[i], o.origin_host, host, sizeof(host), 1, &lport);
    cli_parse_int(argv[i + 3], 0, 65535, &pport);
    if (pagekite_add_kite(m, argv[i + 1], argv[i + 2], pport, argv[i + 4], host, lport) < 0) {
      snprintf(what, sizeof(what), "pagekite_add_kite(%s, %s)", argv[i + 1], argv[i + 2]);
      failed = what;
    } else if (o.use_current &&
               pagekite_add_frontend(m, argv[i + 2], pport ? pport : o.fe_port) < 0) {
      /* The kite's own DNS address is only a hint; it may not exist yet. */
      if (o.verbosity > 0)
        fprintf(stderr, PROG ": note: %s is not usable as a relay: %s\n", argv[i + 2],
                pagekite_last_error());
    }
  }
  for (int i = 0; !failed && i < o.n_frontends; i++) {
    char host[HOST_MAX];
    int port = 0;
    cli_split_host_port(o.frontends[i], NULL, host, sizeof(host), 1, &port);
    if (pagekite_lookup_and_add_frontend(m, host, port, o.dynamic_fe) < 0) {
      snprintf(what, sizeof(what), "pagekite_lookup_and_add_frontend(%s)", o.frontends[i]);
      failed = what;
    }
  }
  if (!failed && o.fe_pool &&
      pagekite_lookup_and_add_frontend(m, o.fe_pool, o.fe_port, o.dynamic_fe) < 0) {
    snprintf(what, sizeof(what), "pagekite_lookup_and_add_frontend(%s)", o.fe_pool);
    failed = what;
  }
  if (!failed && o.whitelabel && o.static_setup && !explicit_fe &&
      pagekite_add_whitelabel_frontends(m, flags, o.whitelabel) < 0)
    failed = "pagekite_add_whitelabel_frontends";

  if (failed) {
    rc = cli_fail(PROG, failed);
    pagekite_free(m);
  } else {
    rc = cli_run(m, PROG, sf.fp ? status_file_write : NULL, &sf);
  }
  if (sf.fp) fclose(sf.fp);
  free(o.frontends);
  return rc;
}
