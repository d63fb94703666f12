/* pagekiter.c - a PageKite relay (front-end): accept tunnels and clients.
 *
 * Usage: pagekiter --ports=P1[,P2...] --domain=PROTOS:PATTERN:SECRET [...]
 *
 * A thin program over the public API (pagekite.h), with pagekite.py-like
 * flags; see doc/CLI.md for the mapping onto API calls.
 */
#include "cli_common.h"

#define PROG "pagekiter"
#define ALL_PROTOS "http,https,raw,websocket"
#define PROTOS_MAX 256

static void usage(FILE *out) {
  fputs("Usage: " PROG " --ports=P1[,P2...] --domain=PROTOS:PATTERN:SECRET [options]\n"
        "\n"
        "Run a PageKite relay: connectors (pagekitec, pagekite.py) open tunnels to\n"
        "it and clients reach their kites through it, routed by HTTP Host, TLS SNI\n"
        "or HTTP CONNECT.  Every listening port takes tunnels and clients alike.\n"
        "\n"
        "Options (--opt=value and --opt value are the same):\n"
        "  --ports=P1[,P2...]   listen on these ports (repeatable; required)\n"
        "  --listen=HOST        listen address (default 0.0.0.0)\n"
        "  --protos=LIST        protocols served (default " ALL_PROTOS ")\n"
        "  --domain=PROTOS:PATTERN:SECRET\n"
        "                       accept kites matching PATTERN (*.example.com or an\n"
        "                       exact name) for PROTOS (comma-separated, or * for all\n"
        "                       of --protos), signed with SECRET (may contain ':');\n"
        "                       repeatable, at least one required\n"
        "  --tls-cert=FILE      PEM certificate for TLS-wrapped tunnels\n"
        "  --tls-key=FILE       PEM private key for --tls-cert\n"
        "  --allow-duplicates   several tunnels may fly one kite; streams take turns\n"
        "  -c N                 max connections (default 2000)\n"
        "  -k N                 max kites (default 1000)\n"
        "  -q                   less log output (errors only)\n"
        "  -v                   more log output (-vv: everything)\n"
        "  -h, --help           show this help and exit\n"
        "  --version            show the version and exit\n"
        "\n"
        "Example:\n"
        "  " PROG " --ports=9080 --domain=http,raw:*.example.test:SECRET\n",
        out);
}

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

/* --protos: every name known, none empty. */
static void check_protos(const char *protos) {
  size_t pl = strlen(protos);
  if (pl == 0 || protos[pl - 1] == ',') cli_usage_error(PROG, "invalid --protos '%s'", protos);
  for (const char *p = protos; *p;) {
    size_t len = strcspn(p, ",");
    if (len == 0 || !in_list(ALL_PROTOS, p, len))
      cli_usage_error(PROG, "unknown protocol '%.*s' in --protos (known: " ALL_PROTOS ")",
                      (int)len, p);
    p += len;
    if (*p == ',') p++;
  }
}

/* Splits a --domain value on its first two colons; the protos field is
 * checked against --protos ("*" or empty means all of them) and copied to
 * protos_buf.  The pattern is written, NUL-terminated, to pattern_buf. */
static const char *split_domain(const char *arg, const char *server_protos, char *protos_buf,
                                char *pattern_buf, size_t buf_len) {
  const char *c1 = strchr(arg, ':');
  const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  if (!c2) cli_usage_error(PROG, "invalid --domain '%s' (expected PROTOS:PATTERN:SECRET)", arg);
  size_t pl = (size_t)(c1 - arg), dl = (size_t)(c2 - c1 - 1);
  if (dl == 0) cli_usage_error(PROG, "empty PATTERN in --domain '%s'", arg);
  if (!c2[1]) cli_usage_error(PROG, "empty SECRET in --domain for '%.*s'", (int)dl, c1 + 1);
  if (pl >= buf_len || dl >= buf_len) cli_usage_error(PROG, "--domain '%s' is too long", arg);
  if (pl == 0 || (pl == 1 && arg[0] == '*')) {
    snprintf(protos_buf, buf_len, "%s", server_protos);
  } else {
    if (c1[-1] == ',') cli_usage_error(PROG, "empty protocol in --domain '%s'", arg);
    for (const char *p = arg; p < c1;) {
      size_t len = strcspn(p, ",:");
      if (len == 0 || !in_list(server_protos, p, len))
        cli_usage_error(PROG, "protocol '%.*s' in --domain for '%.*s' is not in --protos (%s)",
                        (int)len, p, (int)dl, c1 + 1, server_protos);
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

/* Appends the ports of one --ports value to ports[*n]. */
static void add_ports(const char *arg, int *ports, int *n, int max) {
  size_t al = strlen(arg);
  if (al == 0 || arg[al - 1] == ',') cli_usage_error(PROG, "invalid --ports '%s'", arg);
  for (const char *p = arg; *p;) {
    size_t len = strcspn(p, ",");
    char tmp[16];
    int port;
    if (len == 0 || len >= sizeof(tmp)) cli_usage_error(PROG, "invalid --ports '%s'", arg);
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    if (cli_parse_int(tmp, 1, 65535, &port) != 0)
      cli_usage_error(PROG, "invalid port '%s' in --ports (expected 1..65535)", tmp);
    for (int i = 0; i < *n; i++)
      if (ports[i] == port) cli_usage_error(PROG, "port %d given twice in --ports", port);
    if (*n >= max) cli_usage_error(PROG, "too many ports");
    ports[(*n)++] = port;
    p += len;
    if (*p == ',') p++;
  }
}

enum { OPT_PORTS = 256, OPT_LISTEN, OPT_PROTOS, OPT_DOMAIN, OPT_CERT, OPT_KEY, OPT_VERSION, OPT_DUPS };

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"ports", required_argument, NULL, OPT_PORTS},
      {"listen", required_argument, NULL, OPT_LISTEN},
      {"protos", required_argument, NULL, OPT_PROTOS},
      {"domain", required_argument, NULL, OPT_DOMAIN},
      {"tls-cert", required_argument, NULL, OPT_CERT},
      {"tls-key", required_argument, NULL, OPT_KEY},
      {"allow-duplicates", no_argument, NULL, OPT_DUPS},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, OPT_VERSION},
      {NULL, 0, NULL, 0},
  };
  const char *listen_host = "0.0.0.0";
  const char *protos = ALL_PROTOS;
  const char *cert = NULL, *key = NULL;
  int max_conns = 2000, max_kites = 1000, verbosity = 0, dups = 0;
  int n_ports = 0, n_domains = 0;
  /* Every port costs at least two characters of argv, so argc bounds both. */
  int max_ports = 0;
  for (int i = 0; i < argc; i++) max_ports += (int)strlen(argv[i]) / 2 + 1;
  int *ports = calloc((size_t)max_ports, sizeof(*ports));
  const char **domains = calloc((size_t)argc + 1, sizeof(*domains));
  if (!ports || !domains) return CLI_EXIT_FAIL;

  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":c:hk:qv", longopts, NULL)) != -1) {
    switch (c) {
      case 'c': max_conns = cli_int_arg(PROG, "-c", optarg, 1, 1000000); break;
      case 'k': max_kites = cli_int_arg(PROG, "-k", optarg, 1, 1000000); break;
      case 'q': verbosity--; break;
      case 'v': verbosity++; break;
      case 'h': usage(stdout); exit(CLI_EXIT_OK);
      case OPT_VERSION: cli_print_version(PROG); exit(CLI_EXIT_OK);
      case OPT_PORTS: add_ports(optarg, ports, &n_ports, max_ports); break;
      case OPT_LISTEN: listen_host = optarg; break;
      case OPT_PROTOS: protos = optarg; break;
      case OPT_DOMAIN: domains[n_domains++] = optarg; break;
      case OPT_CERT: cert = optarg; break;
      case OPT_KEY: key = optarg; break;
      case OPT_DUPS: dups = 1; break;
      case ':': cli_usage_error(PROG, "option '%s' needs a value", argv[optind - 1]);
      default:
        if (optopt && optopt < 256) cli_usage_error(PROG, "unknown option '-%c'", optopt);
        if (optopt >= 256) cli_usage_error(PROG, "option '%s' takes no value", argv[optind - 1]);
        cli_usage_error(PROG, "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) cli_usage_error(PROG, "unexpected argument '%s'", argv[optind]);
  if (n_ports == 0) cli_usage_error(PROG, "--ports is required");
  if (!*listen_host) cli_usage_error(PROG, "--listen needs a host");
  check_protos(protos);
  if (n_domains == 0)
    cli_usage_error(PROG, "no --domain given: the relay would reject every kite");
  if ((cert == NULL) != (key == NULL))
    cli_usage_error(PROG, "--tls-cert and --tls-key go together");
  char dprotos[PROTOS_MAX], pattern[PROTOS_MAX];
  for (int i = 0; i < n_domains; i++) /* validate all before touching the library */
    split_domain(domains[i], protos, dprotos, pattern, sizeof(dprotos));

  int mask = cli_log_mask(verbosity);
  pagekite_mgr m = pagekite_init(PROG, max_kites, n_ports, max_conns, NULL,
                                 PK_WITH_DEFAULTS | PK_AS_FRONTEND_RELAY, mask);
  if (!m) return cli_fail(PROG, "pagekite_init");
  pagekite_set_log_mask(m, mask);

  char what[PROTOS_MAX * 2 + 64];
  const char *failed = NULL;
  for (int i = 0; !failed && i < n_ports; i++) {
    if (pagekite_add_relay_listener(m, listen_host, ports[i]) < 0) {
      snprintf(what, sizeof(what), "pagekite_add_relay_listener(%.*s, %d)", PROTOS_MAX,
               listen_host, ports[i]);
      failed = what;
    }
  }
  if (!failed && cert && pagekite_set_relay_tls(m, cert, key) < 0) failed = "pagekite_set_relay_tls";
  if (!failed && dups && pagekite_set_relay_duplicates(m, 1) < 0) failed = "pagekite_set_relay_duplicates";
  for (int i = 0; !failed && i < n_domains; i++) {
    const char *secret = split_domain(domains[i], protos, dprotos, pattern, sizeof(dprotos));
    if (pagekite_add_relay_domain(m, dprotos, pattern, secret) < 0) {
      snprintf(what, sizeof(what), "pagekite_add_relay_domain(%s, %s)", dprotos, pattern);
      failed = what;
    }
  }

  int rc;
  if (failed) {
    rc = cli_fail(PROG, failed);
    pagekite_free(m);
  } else {
    rc = cli_run(m, PROG, NULL, NULL);
  }
  free(ports);
  free(domains);
  return rc;
}
