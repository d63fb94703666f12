/* pagekiter.c - a PageKite relay (front-end): accept tunnels and clients.
 *
 * Usage: pagekiter [pagekite.py front-end flags]
 *        pagekiter [options] PROTO NAME SECRET ...   (libpagekite's syntax)
 *
 * A thin program over the public API (pagekite.h).  pagekiter_opts.c reads
 * the command line and rc files; this file runs the process (log file,
 * daemon, pid file, user) and makes the API calls; doc/CLI.md maps options
 * onto calls.
 */
#define _DEFAULT_SOURCE /* setgroups */
#include "cli_common.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>

#include "pagekiter_opts.h"

#define PROG PKR_PROG

typedef struct {
  pkr_cfg *cfg;           /* as started: what needs a restart is compared with it */
  char logpath[PATH_MAX]; /* --logfile as an absolute path ("" if none) */
  int daemon_fd;          /* --daemonize: the pipe to the waiting parent, else -1 */
  int argc;               /* the command line, read again on SIGHUP */
  char **argv;
  pkr_cfg live;           /* the configuration applied last (after a SIGHUP) */
  int has_live;
  int use_syslog;
  pagekite_mgr mgr;
} run_ctx;

static volatile sig_atomic_t reopen_log = 0;

/* SIGHUP: reopen the --logfile (logrotate, as pagekite.py) and reload the
 * configuration; the run loop acts on it (status_hook). */
static void on_sighup(int sig) {
  (void)sig;
  reopen_log = 1;
}

static void install_sighup(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_sighup;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGHUP, &sa, NULL);
}

/* stdout and stderr to the --logfile (appended), as pagekite.py's LogTo. */
static int log_to(const char *path) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  fflush(stdout);
  fflush(stderr);
  dup2(fd, STDOUT_FILENO);
  dup2(fd, STDERR_FILENO);
  close(fd);
  return 0;
}

/* --logfile before the library is touched: a file that cannot be opened is
 * a bad value (exit 2).  Returns 1 for syslog. */
static int setup_log(run_ctx *r) {
  const char *lf = r->cfg->logfile;
  if (!lf) return 0;
  if (strcmp(lf, "syslog") == 0) {
    openlog(PROG, LOG_PID, LOG_DAEMON);
    return 1;
  }
  if (strcmp(lf, "stdio") == 0 || strcmp(lf, "stdout") == 0) {
    fflush(stderr);
    dup2(STDOUT_FILENO, STDERR_FILENO);
    return 0;
  }
  char cwd[PATH_MAX];
  if (lf[0] != '/' && getcwd(cwd, sizeof(cwd)))
    snprintf(r->logpath, sizeof(r->logpath), "%.2000s/%.2000s", cwd, lf);
  else
    snprintf(r->logpath, sizeof(r->logpath), "%s", lf);
  /* A file we create for --runas is that user's, so that a SIGHUP reopens
   * it after the switch (an existing file keeps its owner). */
  const pkr_cfg *c = r->cfg;
  if (c->runas && geteuid() == 0) {
    int fd = open(r->logpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      int failed = fchown(fd, (uid_t)c->runas_uid, (gid_t)c->runas_gid) != 0;
      int err = errno;
      close(fd);
      if (failed)
        cli_usage_error(PROG, "cannot give --logfile %s to --runas=%s: %s", lf, c->runas,
                        strerror(err));
    }
  }
  if (log_to(r->logpath) != 0)
    cli_usage_error(PROG, "cannot open --logfile %s: %s", lf, strerror(errno));
  return 0;
}

static void status_hook(void *ctx, int status);

/* The relay's configuration calls; returns the failed call or NULL. */
static const char *configure_tls(pagekite_mgr m, const pkr_cfg *c, char *what, size_t n) {
  if (c->cert && pagekite_set_relay_tls(m, c->cert, c->key) < 0) return "pagekite_set_relay_tls";
  for (int i = 0; i < c->endpoints.n; i++) {
    const char *arg = c->endpoints.v[i], *colon = strchr(arg, ':');
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)(colon - arg), arg);
    if (pagekite_add_relay_tls_endpoint(m, name, colon + 1, NULL) < 0) {
      snprintf(what, n, "pagekite_add_relay_tls_endpoint(%s, %.200s)", name, colon + 1);
      return what;
    }
  }
  if (c->tls_default && pagekite_set_relay_tls_default(m, c->tls_default) < 0)
    return "pagekite_set_relay_tls_default";
  return NULL;
}

static const char *configure_ports(pagekite_mgr m, const pkr_cfg *c, char *what, size_t n) {
  for (int i = 0; i < c->n_ports; i++) {
    if (pagekite_add_relay_listener(m, c->host, c->ports[i]) < 0) {
      snprintf(what, n, "pagekite_add_relay_listener(%.200s, %d)", c->host, c->ports[i]);
      return what;
    }
  }
  for (int i = 0; i < c->n_aliases; i++) {
    if (pagekite_add_relay_port_alias(m, c->aliases[i][0], c->aliases[i][1]) < 0) {
      snprintf(what, n, "pagekite_add_relay_port_alias(%d, %d)", c->aliases[i][0],
               c->aliases[i][1]);
      return what;
    }
  }
  if (c->rawports && pagekite_set_relay_raw_ports(m, c->rawports) < 0)
    return "pagekite_set_relay_raw_ports";
  for (int i = 0; i < c->proxy_from.n; i++) {
    if (pagekite_add_relay_proxy_source(m, c->proxy_from.v[i]) < 0) {
      snprintf(what, n, "pagekite_add_relay_proxy_source(%.200s)", c->proxy_from.v[i]);
      return what;
    }
  }
  return NULL;
}

static const char *configure(pagekite_mgr m, const pkr_cfg *c, char *what, size_t n) {
  const char *failed = configure_ports(m, c, what, n);
  if (!failed) failed = configure_tls(m, c, what, n);
  if (failed) return failed;
  if (c->dups && pagekite_set_relay_duplicates(m, 1) < 0) return "pagekite_set_relay_duplicates";
  if (c->motd && pagekite_set_relay_motd(m, c->motd) < 0) return "pagekite_set_relay_motd";
  if (c->errorurl && pagekite_set_rejection_url(m, c->errorurl) < 0)
    return "pagekite_set_rejection_url";
  if (c->watchdog && pagekite_enable_watchdog(m, 1) < 0) return "pagekite_enable_watchdog";
  if (c->admin_port && pagekite_set_admin_listener(m, c->admin_host, c->admin_port) < 0) {
    snprintf(what, n, "pagekite_set_admin_listener(%s, %d)", c->admin_host, c->admin_port);
    return what;
  }
  char protos[256], pattern[256];
  for (int i = 0; i < c->domains.n; i++) {
    const char *secret =
        pkr_split_domain(c->domains.v[i], c->protos, protos, pattern, sizeof(protos));
    if (pagekite_add_relay_domain(m, protos, pattern, secret) < 0) {
      snprintf(what, n, "pagekite_add_relay_domain(%s, %s)", protos, pattern);
      return what;
    }
  }
  return NULL;
}

/* ---- SIGHUP: reload ---- */

/* A line of the tool's own, as the log's other lines (cli_log_line). */
CLI_PRINTF(3, 4) static void note(const run_ctx *r, cli_level level, const char *fmt, ...) {
  char msg[1600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  cli_log_out out = {r->use_syslog, isatty(STDOUT_FILENO)};
  cli_log_line(&out, level, msg);
}

static int str_eq(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : "") == 0; }

/* The domain (protos, pattern) of entry i of c, and its secret. */
typedef struct {
  char protos[256], pattern[256];
  const char *secret;
} dom_key;

static void dom_at(const pkr_cfg *c, int i, dom_key *k) {
  k->secret = pkr_split_domain(c->domains.v[i], c->protos, k->protos, k->pattern,
                               sizeof(k->protos));
}

/* The last entry of c for (protos, pattern) (the one in force), or NULL. */
static const char *dom_secret(const pkr_cfg *c, const dom_key *want) {
  const char *found = NULL;
  dom_key k;
  for (int i = 0; i < c->domains.n; i++) {
    dom_at(c, i, &k);
    if (strcasecmp(k.protos, want->protos) == 0 && strcasecmp(k.pattern, want->pattern) == 0)
      found = k.secret;
  }
  return found;
}

static const char *ep_file(const pkr_cfg *c, const char *name, size_t nl) {
  const char *found = NULL;
  for (int i = 0; i < c->endpoints.n; i++) {
    const char *e = c->endpoints.v[i];
    if (strncasecmp(e, name, nl) == 0 && e[nl] == ':') found = e + nl + 1;
  }
  return found;
}

/* The domains of `from` that `to` no longer has: removed. */
static void remove_gone_domains(pagekite_mgr m, const pkr_cfg *from, const pkr_cfg *to,
                                int *changes) {
  dom_key k;
  for (int i = 0; i < from->domains.n; i++) {
    dom_at(from, i, &k);
    if (!dom_secret(to, &k) && pagekite_remove_relay_domain(m, k.protos, k.pattern) == 0)
      (*changes)++;
  }
}

/* From configuration `from` (in force) to `to`, for what can change while
 * running: certificates (always loaded again: rotation), then domains
 * (added or re-keyed, then removed), then the MOTD, the TLS default name,
 * the error URL and the log level.  Returns NULL, or the call that failed
 * (written into what). */
static const char *apply_changes(pagekite_mgr m, const pkr_cfg *from, const pkr_cfg *to,
                                 char *what, size_t n, int *changes) {
  if (to->cert && pagekite_set_relay_tls(m, to->cert, to->key) < 0) {
    snprintf(what, n, "pagekite_set_relay_tls(%.200s, %.200s): %s", to->cert, to->key,
             pagekite_last_error());
    return what;
  }
  for (int i = 0; i < to->endpoints.n; i++) {
    const char *arg = to->endpoints.v[i], *colon = strchr(arg, ':');
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)(colon - arg), arg);
    if (pagekite_add_relay_tls_endpoint(m, name, colon + 1, NULL) < 0) {
      snprintf(what, n, "pagekite_add_relay_tls_endpoint(%s, %.200s): %s", name, colon + 1,
               pagekite_last_error());
      return what;
    }
    (*changes)++;
  }
  for (int i = 0; i < from->endpoints.n; i++) {
    const char *arg = from->endpoints.v[i], *colon = strchr(arg, ':');
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)(colon - arg), arg);
    if (!ep_file(to, name, strlen(name)) && pagekite_remove_relay_tls_endpoint(m, name) == 0)
      (*changes)++;
  }
  /* Domains are added (or re-keyed) before the gone ones are removed, so
   * a kite that both the old and the new table allow is never re-checked
   * against a table holding neither; but when the table is full, the gone
   * ones make room first (the final table fits, or the add fails). */
  dom_key k;
  int removed = 0;
  for (int i = 0; i < to->domains.n; i++) {
    dom_at(to, i, &k);
    const char *old = dom_secret(from, &k);
    if (old && strcmp(old, k.secret) == 0) continue;
    int rv = pagekite_add_relay_domain(m, k.protos, k.pattern, k.secret);
    if (rv < 0 && pagekite_last_error_code() == PK_ELIMIT && !removed) {
      removed = 1;
      remove_gone_domains(m, from, to, changes);
      rv = pagekite_add_relay_domain(m, k.protos, k.pattern, k.secret);
    }
    if (rv < 0) {
      snprintf(what, n, "pagekite_add_relay_domain(%s, %s): %s", k.protos, k.pattern,
               pagekite_last_error());
      return what;
    }
    (*changes)++;
  }
  if (!removed) remove_gone_domains(m, from, to, changes);
  if (!str_eq(from->motd, to->motd) && pagekite_set_relay_motd(m, to->motd) < 0)
    return "pagekite_set_relay_motd";
  if (!str_eq(from->tls_default, to->tls_default) &&
      pagekite_set_relay_tls_default(m, to->tls_default) < 0)
    return "pagekite_set_relay_tls_default";
  if (!str_eq(from->errorurl, to->errorurl) && pagekite_set_rejection_url(m, to->errorurl) < 0)
    return "pagekite_set_rejection_url";
  if (from->verbosity != to->verbosity) pagekite_set_log_mask(m, cli_log_mask(to->verbosity));
  return NULL;
}

static int strv_differ(const pkr_strv *a, const pkr_strv *b) {
  if (a->n != b->n) return 1;
  for (int i = 0; i < a->n; i++)
    if (strcmp(a->v[i], b->v[i]) != 0) return 1;
  return 0;
}

static int ports_differ(const pkr_cfg *a, const pkr_cfg *b) {
  if (a->n_ports != b->n_ports || a->n_aliases != b->n_aliases) return 1;
  for (int i = 0; i < a->n_ports; i++) {
    int found = 0;
    for (int j = 0; j < b->n_ports; j++) found |= a->ports[i] == b->ports[j];
    if (!found) return 1;
  }
  for (int i = 0; i < a->n_aliases; i++)
    if (a->aliases[i][0] != b->aliases[i][0] || a->aliases[i][1] != b->aliases[i][1]) return 1;
  return 0;
}

/* What only a restart changes: named in a log line, and left as it runs. */
static void note_restart_only(const run_ctx *r, const pkr_cfg *boot, const pkr_cfg *c) {
  char list[512] = "";
  size_t o = 0;
#define RESTART_IF(cond, flag) \
  if ((cond) && o < sizeof(list) - 32) o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", o ? ", " : "", flag)
  RESTART_IF(!str_eq(boot->host, c->host), "--host");
  RESTART_IF(ports_differ(boot, c), "--ports");
  RESTART_IF(!str_eq(boot->rawports, c->rawports), "--rawports");
  RESTART_IF(!str_eq(boot->runas, c->runas), "--runas");
  RESTART_IF(!str_eq(boot->pidfile, c->pidfile), "--pidfile");
  RESTART_IF(!str_eq(boot->logfile, c->logfile), "--logfile");
  RESTART_IF(boot->daemonize != c->daemonize, "--daemonize");
  RESTART_IF(boot->dups != c->dups, "--allow-duplicates");
  RESTART_IF(boot->watchdog != c->watchdog, "-W");
  RESTART_IF(boot->max_conns != c->max_conns, "-c");
  RESTART_IF(boot->max_kites != c->max_kites, "-k");
  RESTART_IF(boot->cert && !c->cert, "--tls-cert (removed)");
  RESTART_IF(strv_differ(&boot->client_acls, &c->client_acls), "--client_acl");
  RESTART_IF(strv_differ(&boot->tunnel_acls, &c->tunnel_acls), "--tunnel_acl");
  RESTART_IF(strv_differ(&boot->ratelimits, &c->ratelimits), "--ratelimit_ips");
  RESTART_IF(boot->require_tls != c->require_tls, "--require-tls");
  RESTART_IF(strv_differ(&boot->authdomains, &c->authdomains), "--authdomain");
  RESTART_IF(boot->authfail_closed != c->authfail_closed, "--authfail_closed");
  RESTART_IF(strv_differ(&boot->proxy_from, &c->proxy_from), "--proxy_protocol_from");
  RESTART_IF(boot->admin_port != c->admin_port || strcmp(boot->admin_host, c->admin_host) != 0,
             "--admin");
#undef RESTART_IF
  if (o) note(r, CLI_LL_WARN, "Reload: needs a restart: %s (left as it runs)", list);
}

/* SIGHUP: the command line and its rc files again; the whole new
 * configuration or, if anything in it is bad, none of it. */
static void reload(run_ctx *r) {
  pkr_cfg next;
  char why[PATH_MAX + 1200];
  if (pkr_reload(&next, r->argc, r->argv, why, sizeof(why)) != 0) {
    note(r, CLI_LL_WARN, "Reload refused: %s; the running configuration stays", why);
    return;
  }
  pkr_cfg *cur = r->has_live ? &r->live : r->cfg;
  char what[800];
  int changes = 0;
  const char *failed = apply_changes(r->mgr, cur, &next, what, sizeof(what), &changes);
  if (failed) {
    int ignored = 0;
    char what2[800];
    apply_changes(r->mgr, &next, cur, what2, sizeof(what2), &ignored); /* back, best effort */
    note(r, CLI_LL_WARN, "Reload refused: %s; the running configuration stays", failed);
    pkr_cfg_free(&next);
    return;
  }
  note_restart_only(r, r->cfg, &next);
  if (r->has_live) pkr_cfg_free(&r->live);
  r->live = next;
  r->has_live = 1;
  note(r, CLI_LL_INFO, "Reloaded the configuration: %d domain(s), %d TLS endpoint(s)", next.domains.n,
       next.endpoints.n);
}

static void status_hook(void *ctx, int status) {
  run_ctx *r = ctx;
  (void)status;
  if (!reopen_log) return;
  reopen_log = 0;
  if (r->logpath[0] && log_to(r->logpath) != 0)
    fprintf(stderr, "%s: cannot reopen %s: %s\n", PROG, r->logpath, strerror(errno));
  reload(r);
}

/* --daemonize: fork twice (as pagekite.py) before the thread starts; the
 * first parent waits until the daemon says it listens (one byte on a pipe)
 * and exits 0, or 1 if the daemon fails first.  Returns the pipe in the
 * daemon. */
static int daemonize(void) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid > 0) {
    char b = 1;
    close(fds[1]);
    ssize_t n;
    while ((n = read(fds[0], &b, 1)) < 0 && errno == EINTR) {
    }
    _exit(n == 1 && b == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL);
  }
  close(fds[0]);
  setsid();
  pid = fork();
  if (pid < 0) _exit(CLI_EXIT_FAIL);
  if (pid > 0) _exit(CLI_EXIT_OK);
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    close(null);
  }
  return fds[1];
}

/* --runas: supplementary groups, group, then user (pagekite.py sets only
 * the last two, keeping root's groups). */
static int drop_privileges(const pkr_cfg *c) {
  gid_t gid = (gid_t)c->runas_gid;
  if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid((uid_t)c->runas_uid) != 0) {
    fprintf(stderr, "%s: --runas=%s: %s\n", PROG, c->runas, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  return CLI_EXIT_OK;
}

/* Once listening, in pagekite.py's order: pid file, chdir, user; then the
 * daemon lets its parent go and leaves the terminal. */
static int after_start(void *ctx) {
  run_ctx *r = ctx;
  const pkr_cfg *c = r->cfg;
  if (c->pidfile) {
    FILE *f = fopen(c->pidfile, "w");
    if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
      fprintf(stderr, "%s: cannot write --pidfile %s: %s\n", PROG, c->pidfile, strerror(errno));
      return CLI_EXIT_FAIL;
    }
  }
  if (r->daemon_fd >= 0 && chdir("/") != 0) return CLI_EXIT_FAIL;
  if (c->runas && drop_privileges(c) != CLI_EXIT_OK) return CLI_EXIT_FAIL;
  if (r->daemon_fd >= 0) {
    int keep = r->logpath[0] || (c->logfile && strcmp(c->logfile, "syslog") != 0);
    int null = keep ? -1 : open("/dev/null", O_WRONLY);
    if (null >= 0) {
      fflush(stdout);
      fflush(stderr);
      dup2(null, STDOUT_FILENO);
      dup2(null, STDERR_FILENO);
      close(null);
    }
    char ok = 0;
    if (write(r->daemon_fd, &ok, 1) != 1) return CLI_EXIT_FAIL;
    close(r->daemon_fd);
    r->daemon_fd = -1;
  }
  return CLI_EXIT_OK;
}

/* Access rules: one that cannot be applied is a usage error (exit 2) that
 * names the flag and says why; the relay never runs without it. */
static int configure_access(pagekite_mgr m, const pkr_cfg *c) {
  const struct {
    const pkr_strv *l;
    const char *flag;
    int (*add)(pagekite_mgr, const char *);
  } lists[] = {{&c->client_acls, "--client_acl", pagekite_add_relay_client_acl},
               {&c->tunnel_acls, "--tunnel_acl", pagekite_add_relay_tunnel_acl},
               {&c->ratelimits, "--ratelimit_ips", pagekite_add_relay_ratelimit_ips},
               {&c->authdomains, "--authdomain", pagekite_add_relay_authdomain}};
  for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++)
    for (int i = 0; i < lists[k].l->n; i++)
      if (lists[k].add(m, lists[k].l->v[i]) < 0) {
        fprintf(stderr, "%s: %s=%s: %s\n", PROG, lists[k].flag, lists[k].l->v[i],
                pagekite_last_error());
        return CLI_EXIT_USAGE;
      }
  if (c->require_tls && pagekite_set_relay_require_tls(m, 1) < 0)
    return cli_fail(PROG, "pagekite_set_relay_require_tls");
  if (c->authfail_closed && pagekite_set_relay_authfail_closed(m, 1) < 0)
    return cli_fail(PROG, "pagekite_set_relay_authfail_closed");
  return CLI_EXIT_OK;
}

static int run(pkr_cfg *c, run_ctx *r, int use_syslog) {
  int mask = cli_log_mask(c->verbosity);
  pagekite_mgr m = pagekite_init(PROG, c->max_kites, c->n_ports, c->max_conns, NULL,
                                 PK_WITH_DEFAULTS | PK_AS_FRONTEND_RELAY, mask);
  if (!m) return cli_fail(PROG, "pagekite_init");
  pagekite_set_log_mask(m, mask);
  char what[600];
  const char *failed = configure(m, c, what, sizeof(what));
  if (failed) {
    int rc = cli_fail(PROG, failed);
    pagekite_free(m);
    return rc;
  }
  int arc = configure_access(m, c);
  if (arc != CLI_EXIT_OK) {
    pagekite_free(m);
    return arc;
  }
  if (c->daemonize && (r->daemon_fd = daemonize()) < 0) {
    pagekite_free(m);
    fprintf(stderr, "%s: --daemonize: %s\n", PROG, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  r->mgr = m;
  r->use_syslog = use_syslog;
  cli_run_opts o = {status_hook, r, use_syslog, CLI_EXIT_FAIL, after_start};
  return cli_run_with(m, PROG, &o);
}

int main(int argc, char **argv) {
  pkr_cfg cfg;
  pkr_parse(&cfg, argc, argv);
  pkr_check(&cfg); /* everything is valid before the library is touched */
  run_ctx r;
  memset(&r, 0, sizeof(r));
  r.cfg = &cfg;
  r.daemon_fd = -1;
  r.argc = argc;
  r.argv = argv;
  int use_syslog = setup_log(&r);
  install_sighup(); /* never the default action (exit 129): reload */
  int rc = run(&cfg, &r, use_syslog);
  if (r.has_live) pkr_cfg_free(&r.live);
  pkr_cfg_free(&cfg);
  return rc;
}
