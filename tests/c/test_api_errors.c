/* test_api_errors.c - every failure records a PK_E* code with its message
 * (pagekite_last_error_code(), per thread), the calls keep their documented
 * failure values, and invalid arguments are named in the message.
 *
 * Loopback only.  PK_EREJECTED comes from a relay refusing a kite, which no
 * call waits for: the bindings' waits for FLYING report it (their tests).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "test_api_util.h"

/* A failure may allocate more than a small RLIMIT_AS leaves: under ASan,
 * return NULL instead of aborting (no_memory below). */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

/* Each NULL-terminated word must be in the thread's last message. */
static void expect_words(const char *what, ...) {
  va_list ap;
  va_start(ap, what);
  for (const char *w = va_arg(ap, const char *); w; w = va_arg(ap, const char *)) {
    pk_test_checks++;
    if (!strstr(pagekite_last_error(), w)) {
      fprintf(stderr, "%s: message \"%s\" lacks \"%s\"\n", what, pagekite_last_error(), w);
      pk_test_failures++;
    }
  }
  va_end(ap);
}

/* Clear the thread's error, run a call that must return `fail`, then check
 * the code and the words of the message. */
#define EXPECT_CODE(expr, fail, code, ...)                   \
  do {                                                       \
    pk_fail(PK_OK, "%s", "");                                \
    CHECK_INT((expr), (fail));                               \
    CHECK_INT(pagekite_last_error_code(), (code));           \
    expect_words(#expr, __VA_ARGS__, (const char *)NULL);    \
  } while (0)

#define CONNECTOR_FLAGS (PK_WITHOUT_DEFAULTS | PK_WITH_IPV4)
#define RELAY_FLAGS (PK_AS_FRONTEND_RELAY | PK_WITHOUT_DEFAULTS)

static pagekite_mgr connector(int max_kites) {
  return pagekite_init("t", max_kites, 1, 16, NULL, CONNECTOR_FLAGS, -1);
}

static pagekite_mgr relay(void) { return pagekite_init("t", 1, 1, 16, NULL, RELAY_FLAGS, -1); }

TEST(invalid_argument) {
  pagekite_event ev[1] = {PAGEKITE_EVENT_INIT};
  EXPECT_CODE(pagekite_get_status(NULL), -1, PK_EINVAL, "pagekite_get_status", "mgr");
  EXPECT_CODE(pagekite_init("t", 1, 1, 0, NULL, CONNECTOR_FLAGS, -1) == NULL, 1, PK_EINVAL,
              "pagekite_init", "max_conns 0");
  EXPECT_CODE(pagekite_init("t", 1, 1, 8, "http://x/%s", CONNECTOR_FLAGS, -1) == NULL, 1,
              PK_EINVAL, "dyndns_url");
  EXPECT_CODE(pagekite_init_whitelabel("t", 1, 8, 0, -1, "") == NULL, 1, PK_EINVAL,
              "whitelabel_tld");
  pagekite_mgr c = connector(2), r = relay();
  CHECK(c != NULL && r != NULL);
  if (!c || !r) return;
  EXPECT_CODE(pagekite_add_relay_listener(r, "127.0.0.1", 70000), -1, PK_EINVAL,
              "pagekite_add_relay_listener: port 70000 is not 0-65535");
  EXPECT_CODE(pagekite_add_kite(c, "http", "a.test", 0, "s", "127.0.0.1", 0), -1, PK_EINVAL,
              "pagekite_add_kite", "lport 0");
  EXPECT_CODE(pagekite_add_kite(c, "http", "a.test", 0, "", "127.0.0.1", 80), -1, PK_EINVAL,
              "secret");
  EXPECT_CODE(pagekite_add_kite(c, "http", "a b", 0, "s", "127.0.0.1", 80), -1, PK_EINVAL,
              "kitename");
  EXPECT_CODE(pagekite_add_kite(c, "gopher", "a.test", 0, "s", "127.0.0.1", 80), -1, PK_EINVAL,
              "proto", "gopher");
  EXPECT_CODE(pagekite_add_frontend(c, "127.0.0.1", 0), -1, PK_EINVAL, "port 0");
  EXPECT_CODE(pagekite_add_relay_domain(r, "http", "a b", "s"), -1, PK_EINVAL, "pattern");
  EXPECT_CODE(pagekite_set_tls_verify(c, 7, NULL), -1, PK_EINVAL, "mode 7");
  EXPECT_CODE(pagekite_set_openssl_ciphers(c, NULL), -1, PK_EINVAL, "ciphers");
  EXPECT_CODE(pagekite_next_events(c, 0, ev, 0, 0), -1, PK_EINVAL, "max");
  EXPECT_CODE(pagekite_add_relay_port_alias(r, 80, 80), -1, PK_EINVAL, "alias_of");
  EXPECT_CODE(pagekite_get_counter(c, 99), -1, PK_EINVAL, "counter 99");
  EXPECT_CODE(pagekite_set_proxy(c, "http://"), -1, PK_EINVAL, "pagekite_set_proxy");
  EXPECT_CODE(pagekite_set_rejection_url(c, "ftp://x"), -1, PK_EINVAL, "url");
  EXPECT_CODE(pagekite_add_frontend_certname(c, "a b"), -1, PK_EINVAL, "name");
  pagekite_free(c);
  pagekite_free(r);
}

TEST(wrong_state) {
  pagekite_mgr c = connector(1);
  CHECK(c != NULL);
  if (!c) return;
  EXPECT_CODE(pagekite_thread_wait(c), -1, PK_ESTATE, "pagekite_thread_wait", "not running");
  EXPECT_CODE(pagekite_thread_stop(c), -1, PK_ESTATE, "not running");
  EXPECT_CODE(pagekite_poll(c, 0), -1, PK_ESTATE, "pagekite_poll");
  EXPECT_CODE(pagekite_tick(c), -1, PK_ESTATE, "pagekite_tick");
  EXPECT_CODE(pagekite_add_relay_domain(c, "http", "*.test", "s"), -1, PK_ESTATE,
              "PK_AS_FRONTEND_RELAY");
  pagekite_free(c);
  pagekite_mgr r = t_start_relay(1, 8, NULL, NULL, NULL);
  CHECK(r != NULL);
  if (!r) return;
  EXPECT_CODE(pagekite_add_relay_listener(r, "127.0.0.1", 0), -1, PK_ESTATE,
              "only allowed before pagekite_thread_start");
  EXPECT_CODE(pagekite_remove_relay_domain(r, "http", "*.never"), -1, PK_ENOTFOUND,
              "no domain http:*.never");
  EXPECT_CODE(pagekite_remove_relay_tls_endpoint(r, "never.test"), -1, PK_ENOTFOUND,
              "never.test has no endpoint");
  EXPECT_CODE(pagekite_thread_start(r), -1, PK_ESTATE, "pagekite_thread_start");
  CHECK_INT(pagekite_thread_stop(r), 0);
  pagekite_free(r);
}

TEST(not_found_and_exists) {
  pagekite_mgr c = connector(2), r = relay();
  CHECK(c != NULL && r != NULL);
  if (!c || !r) return;
  EXPECT_CODE(pagekite_get_kite_status(c, "http", "nobody.test"), -1, PK_ENOTFOUND,
              "nobody.test");
  EXPECT_CODE(pagekite_get_kite_reason(c, "http", "nobody.test") == NULL, 1, PK_ENOTFOUND,
              "pagekite_get_kite_reason", "nobody.test");
  CHECK_INT(pagekite_add_kite(c, "http", "a.test", 0, "s", "127.0.0.1", 80), 0);
  EXPECT_CODE(pagekite_add_kite(c, "http", "a.test", 0, "s", "127.0.0.1", 80), -1, PK_EEXIST,
              "a.test", "already");
  CHECK_INT(pagekite_add_relay_port_alias(r, 8080, 80), 0);
  EXPECT_CODE(pagekite_add_relay_port_alias(r, 8080, 81), -1, PK_EEXIST, "8080");
  pagekite_free(c);
  pagekite_free(r);
}

TEST(limits) {
  pagekite_mgr c = connector(1), r = relay();
  CHECK(c != NULL && r != NULL);
  if (!c || !r) return;
  CHECK_INT(pagekite_add_kite(c, "http", "a.test", 0, "s", "127.0.0.1", 80), 0);
  EXPECT_CODE(pagekite_add_kite(c, "http", "b.test", 0, "s", "127.0.0.1", 80), -1, PK_ELIMIT,
              "max_kites");
  CHECK_INT(pagekite_add_frontend(c, "127.0.0.1", 1), 1);
  EXPECT_CODE(pagekite_add_frontend(c, "127.0.0.1", 2), -1, PK_ELIMIT, "max_frontends");
  CHECK_INT(pagekite_add_relay_listener(r, "127.0.0.1", 0), 0);
  EXPECT_CODE(pagekite_add_relay_listener(r, "127.0.0.1", 0), -1, PK_ELIMIT, "listeners");
  pagekite_free(c);
  pagekite_free(r);
}

/* The pools a connector reserves for a million connections do not fit in
 * what is left under a low RLIMIT_AS. */
TEST(no_memory) {
  struct rlimit saved;
  CHECK_INT(getrlimit(RLIMIT_AS, &saved), 0);
  long pages = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  CHECK(f != NULL && fscanf(f, "%ld", &pages) == 1);
  if (f) fclose(f);
  struct rlimit low = saved;
  low.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (64u << 20);
  CHECK_INT(setrlimit(RLIMIT_AS, &low), 0);
  pk_fail(PK_OK, "%s", "");
  pagekite_mgr h = pagekite_init("t", 1, 1, 1000000, NULL, CONNECTOR_FLAGS, -1);
  int code = pagekite_last_error_code();
  CHECK_INT(setrlimit(RLIMIT_AS, &saved), 0);
  CHECK(h == NULL);
  if (h) pagekite_free(h);
  CHECK_INT(code, PK_ENOMEM);
  expect_words("init under RLIMIT_AS", "pagekite_init", "out of memory", (const char *)NULL);
}

/* A relay cannot listen on a port another socket holds. */
TEST(network) {
  int port = 0, fd = t_listen(&port);
  CHECK(fd >= 0);
  if (fd < 0) return;
  pagekite_mgr r = relay();
  CHECK(r != NULL);
  if (r) {
    CHECK_INT(pagekite_add_relay_listener(r, "127.0.0.1", port), 0);
    char where[64];
    snprintf(where, sizeof(where), "127.0.0.1:%d", port);
    EXPECT_CODE(pagekite_thread_start(r) != 0, 1, PK_ENETWORK, "cannot listen", where);
    pagekite_free(r);
  }
  close(fd);
}

TEST(tls_and_files) {
  char path[] = "/tmp/pk-errors-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  CHECK(write(fd, "not a certificate\n", 18) == 18);
  close(fd);
  pagekite_mgr r = relay();
  CHECK(r != NULL);
  if (r) {
    EXPECT_CODE(pagekite_set_relay_tls(r, path, path), -1, PK_ETLS, "pagekite_set_relay_tls",
                path);
    EXPECT_CODE(pagekite_set_relay_tls(r, "/nonexistent/c.pem", path), -1, PK_EIO,
                "/nonexistent/c.pem");
    EXPECT_CODE(pagekite_add_relay_tls_endpoint(r, "a.test", path, "/nonexistent/k.pem"), -1,
                PK_EIO, "/nonexistent/k.pem");
    pagekite_free(r);
  }
  unlink(path);
  pagekite_mgr c = pagekite_init("t", 1, 1, 8, NULL, CONNECTOR_FLAGS | PK_WITH_SSL, -1);
  CHECK(c != NULL);
  if (!c) return;
  CHECK_INT(pagekite_set_openssl_ciphers(c, "NO-SUCH-CIPHER"), 0);
  EXPECT_CODE(pagekite_thread_start(c) != 0, 1, PK_ETLS, "pagekite_thread_start", "TLS");
  /* The build has Lua plugins when enabling them works. */
  if (pagekite_enable_lua_plugins(c, 0, NULL) == 0)
    EXPECT_CODE(pagekite_load_lua_plugin(c, "/nonexistent/p.lua"), -1, PK_EIO,
                "/nonexistent/p.lua");
  else
    EXPECT_CODE(pagekite_load_lua_plugin(c, "/nonexistent/p.lua"), -1, PK_EUNSUPPORTED, "Lua");
  pagekite_free(c);
}

TEST(unsupported) {
  pagekite_mgr c = connector(1);
  CHECK(c != NULL);
  if (!c) return;
  EXPECT_CODE(pagekite_set_proxy(c, "ftp://proxy.test:21"), -1, PK_EUNSUPPORTED,
              "pagekite_set_proxy", "ftp");
  pagekite_free(c);
}

static void *other_thread(void *arg) {
  *(int *)arg = pagekite_last_error_code();
  return NULL;
}

/* The code outlives successful calls, is per thread, and perror resets it. */
TEST(code_lifetime) {
  pagekite_mgr c = connector(1);
  CHECK(c != NULL);
  if (!c) return;
  CHECK_INT(pagekite_tick(c), -1);
  CHECK_INT(pagekite_last_error_code(), PK_ESTATE);
  CHECK_INT(pagekite_set_log_mask(c, PK_LOG_ERRORS), 0);
  CHECK(pagekite_get_status(c) >= 0);
  CHECK_INT(pagekite_last_error_code(), PK_ESTATE);
  int seen = 1;
  pthread_t t;
  CHECK_INT(pthread_create(&t, NULL, other_thread, &seen), 0);
  pthread_join(t, NULL);
  CHECK_INT(seen, PK_OK);
  pagekite_perror(NULL, "expected");
  CHECK_INT(pagekite_last_error_code(), PK_OK);
  pagekite_free(c);
}

int main(void) {
  alarm(30);
  RUN(invalid_argument);
  RUN(wrong_state);
  RUN(not_found_and_exists);
  RUN(limits);
  RUN(no_memory);
  RUN(network);
  RUN(tls_and_files);
  RUN(unsupported);
  RUN(code_lifetime);
  return TEST_DONE();
}
