/* test_api_misuse.c - the public API refuses misuse with its documented
 * failure value and leaves a reason in pagekite_last_error().
 *
 * Loopback only: the connector's relay is 127.0.0.1:<closed port>.
 */
#include <stdlib.h>

#include "test_api_util.h"

/* Clear the per-thread reason, run a call that must fail with `fail`, and
 * check a reason was recorded. */
#define EXPECT_FAIL(expr, fail)                  \
  do {                                           \
    pk_fail(PK_OK, "%s", "");                      \
    CHECK_INT((expr), (fail));                   \
    CHECK(pagekite_last_error() != NULL);        \
    CHECK(pagekite_last_error()[0] != '\0');     \
  } while (0)

#define EXPECT_NULL(expr)                        \
  do {                                           \
    pk_fail(PK_OK, "%s", "");                      \
    CHECK((expr) == NULL);                       \
    CHECK(pagekite_last_error()[0] != '\0');     \
  } while (0)

#define CONNECTOR_FLAGS (PK_WITHOUT_DEFAULTS | PK_WITH_IPV4)

TEST(null_manager) {
  pagekite_mgr n = NULL;
  EXPECT_FAIL(pagekite_add_kite(n, "http", "a.test", 0, "s", "127.0.0.1", 80), -1);
  EXPECT_FAIL(pagekite_add_service_frontends(n, PK_WITH_IPV4), -1);
  EXPECT_FAIL(pagekite_add_whitelabel_frontends(n, PK_WITH_IPV4, "example.org"), -1);
  EXPECT_FAIL(pagekite_lookup_and_add_frontend(n, "127.0.0.1", 80, 0), -1);
  EXPECT_FAIL(pagekite_add_frontend(n, "127.0.0.1", 80), -1);
  EXPECT_FAIL(pagekite_set_log_mask(n, PK_LOG_ALL), -1);
  EXPECT_FAIL(pagekite_set_housekeeping_min_interval(n, 30), -1);
  EXPECT_FAIL(pagekite_set_housekeeping_max_interval(n, 30), -1);
  EXPECT_FAIL(pagekite_enable_http_forwarding_headers(n, 1), -1);
  EXPECT_FAIL(pagekite_enable_fake_ping(n, 1), -1);
  EXPECT_FAIL(pagekite_enable_watchdog(n, 1), -1);
  EXPECT_FAIL(pagekite_enable_tick_timer(n, 1), -1);
  EXPECT_FAIL(pagekite_set_conn_eviction_idle_s(n, 5), -1);
  EXPECT_FAIL(pagekite_set_openssl_ciphers(n, "HIGH"), -1);
  EXPECT_FAIL(pagekite_want_spare_frontends(n, 1), -1);
  EXPECT_FAIL(pagekite_thread_start(n), -1);
  EXPECT_FAIL(pagekite_thread_wait(n), -1);
  EXPECT_FAIL(pagekite_thread_stop(n), -1);
  EXPECT_FAIL(pagekite_free(n), -1);
  EXPECT_FAIL(pagekite_get_status(n), -1);
  EXPECT_NULL(pagekite_get_log(n));
  EXPECT_FAIL(pagekite_poll(n, 0), -1);
  EXPECT_FAIL(pagekite_tick(n), -1);
  EXPECT_FAIL(pagekite_set_bail_on_errors(n, 3), -1);
  EXPECT_FAIL(pagekite_set_tls_verify(n, PK_TLS_VERIFY_NONE, NULL), -1);
  EXPECT_FAIL(pagekite_add_relay_listener(n, "127.0.0.1", 0), -1);
  EXPECT_FAIL(pagekite_add_relay_domain(n, "http", "*.test", "s"), -1);
  EXPECT_FAIL(pagekite_set_relay_tls(n, "/nonexistent.pem", "/nonexistent.key"), -1);
  EXPECT_FAIL(pagekite_get_counter(n, PK_COUNTER_ERRORS), -1);
  EXPECT_FAIL(pagekite_set_kite_proxy_protocol(n, "raw", "a.test", 1), -1);
  EXPECT_FAIL(pagekite_add_relay_proxy_source(n, "10.0.0.0/8"), -1);
  /* perror with a NULL manager (and NULL prefix) must not crash. */
  pagekite_perror(n, "null manager");
  pagekite_perror(n, NULL);
  CHECK(pagekite_last_error() != NULL);
  CHECK_INT(pagekite_version_number(), PK_VERSION_NUMBER);
}

TEST(bad_init) {
  EXPECT_NULL(pagekite_init("t", -1, 1, 16, NULL, CONNECTOR_FLAGS, -1));
  EXPECT_NULL(pagekite_init("t", 1, -1, 16, NULL, CONNECTOR_FLAGS, -1));
  EXPECT_NULL(pagekite_init("t", 1, 1, 0, NULL, CONNECTOR_FLAGS, -1));
  EXPECT_NULL(pagekite_init("t", 1, 1, -5, NULL, CONNECTOR_FLAGS, -1));
  /* A connector with no room for a single relay cannot work. */
  EXPECT_NULL(pagekite_init("t", 1, 0, 16, NULL, CONNECTOR_FLAGS, -1));
  EXPECT_NULL(pagekite_init("t", 1, 1, 0, NULL, PK_AS_FRONTEND_RELAY, -1));
  EXPECT_NULL(pagekite_init("t", -3, 1, 8, NULL, PK_AS_FRONTEND_RELAY, -1));
  /* dyndns_url: exactly three %s (host, ip, sign). */
  EXPECT_NULL(pagekite_init("t", 1, 1, 16, "http://x.test/?h=%s&ip=%d&s=%s", CONNECTOR_FLAGS, -1));
  EXPECT_NULL(pagekite_init("t", 1, 1, 16, "http://x.test/?h=%s&ip=%s", CONNECTOR_FLAGS, -1));
  EXPECT_NULL(pagekite_init("t", 1, 1, 16, "http://x.test/?h=%s&i=%s&s=%s&x=%s", CONNECTOR_FLAGS,
                            -1));
  EXPECT_NULL(pagekite_init("t", 1, 1, 16, "http://x.test/?h=%s&i=%s&s=%n", CONNECTOR_FLAGS, -1));
  EXPECT_NULL(pagekite_init_whitelabel("t", 1, 16, PK_WITHOUT_SERVICE_FRONTENDS, -1, NULL));
  EXPECT_NULL(pagekite_init_whitelabel("t", 1, 16, PK_WITHOUT_SERVICE_FRONTENDS, -1, ""));
  /* A %s smuggled in through the domain would make a four-%s URL. */
  EXPECT_NULL(pagekite_init_whitelabel("t", 1, 16, PK_WITHOUT_SERVICE_FRONTENDS, -1, "e%s.org"));

  /* The good cases do work, so the NULLs above are not a broken init. */
  pagekite_mgr m = pagekite_init("t", 1, 1, 16, "http://x.test/?h=%s&i=%s&s=%s&pct=%%",
                                 CONNECTOR_FLAGS, -1);
  CHECK(m != NULL);
  if (m) CHECK_INT(pagekite_free(m), 0);
  m = pagekite_init(NULL, 0, 0, 1, NULL, PK_AS_FRONTEND_RELAY, -1);
  CHECK(m != NULL);
  if (m) CHECK_INT(pagekite_free(m), 0);
}

TEST(bad_kites_and_frontends) {
  pagekite_mgr m = pagekite_init("t", 2, 2, 16, NULL, CONNECTOR_FLAGS, -1);
  CHECK(m != NULL);
  if (!m) return;
  EXPECT_FAIL(pagekite_add_kite(m, NULL, "a.test", 0, "s", "127.0.0.1", 80), -1);
  EXPECT_FAIL(pagekite_add_kite(m, "", "a.test", 0, "s", "127.0.0.1", 80), -1);
  EXPECT_FAIL(pagekite_add_kite(m, "http", NULL, 0, "s", "127.0.0.1", 80), -1);
  EXPECT_FAIL(pagekite_add_kite(m, "http", "", 0, "s", "127.0.0.1", 80), -1);
  EXPECT_FAIL(pagekite_add_kite(m, "http", "a.test:80", 0, "s", "127.0.0.1", 80), -1);
  EXPECT_FAIL(pagekite_add_kite(m, "ht:tp", "a.test", 0, "s", "127.0.0.1", 80), -1);
  /* A protocol typo is refused up front, and the error names the choices. */
  EXPECT_FAIL(pagekite_add_kite(m, "htp", "a.test", 0, "s", "127.0.0.1", 80), -1);
  CHECK(strstr(pagekite_last_error(), "proto 'htp' is not http") != NULL);
  CHECK(strstr(pagekite_last_error(), "websocket") != NULL);
  EXPECT_FAIL(pagekite_add_kite(m, "http", "a.test", 0, NULL, "127.0.0.1", 80), -1);
  EXPECT_FAIL(pagekite_add_kite(m, "http", "a.test", 0, "", "127.0.0.1", 80), -1);
  EXPECT_FAIL(pagekite_add_kite(m, "raw", "a.test", 0, "s", "127.0.0.1", 22), -1);
  EXPECT_FAIL(pagekite_add_kite(m, "RAW", "a.test", 0, "s", "127.0.0.1", 22), -1);
  EXPECT_FAIL(pagekite_add_kite(m, "http", "a.test", 0, "s", "127.0.0.1", 0), -1);
  EXPECT_FAIL(pagekite_add_kite(m, "http", "a.test", 0, "s", "127.0.0.1", 70000), -1);
  EXPECT_FAIL(pagekite_add_kite(m, "http", "a.test", 0, "s", "127.0.0.1", -1), -1);
  EXPECT_FAIL(pagekite_add_kite(m, "http", "a.test", 70000, "s", "127.0.0.1", 80), -1);
  EXPECT_FAIL(pagekite_add_kite(m, "http", "a.test", -1, "s", "127.0.0.1", 80), -1);
  CHECK_INT(((pk_mgr *)(void *)m)->nkites, 0);

  CHECK_INT(pagekite_add_kite(m, "http", "a.test", 0, "s", "127.0.0.1", 80), 0);
  /* Same proto, name and port: a duplicate, also when spelled differently. */
  EXPECT_FAIL(pagekite_add_kite(m, "http", "a.test", 0, "s", "127.0.0.1", 81), -1);
  EXPECT_FAIL(pagekite_add_kite(m, "HTTP", "A.Test", 0, "s", "127.0.0.1", 81), -1);
  /* Different public port: allowed, and that fills max_kites (2). */
  CHECK_INT(pagekite_add_kite(m, "http", "a.test", 8080, "s", "127.0.0.1", 80), 0);
  EXPECT_FAIL(pagekite_add_kite(m, "raw", "b.test", 22, "s", "127.0.0.1", 22), -1);
  CHECK_INT(((pk_mgr *)(void *)m)->nkites, 2);

  EXPECT_FAIL(pagekite_lookup_and_add_frontend(m, "127.0.0.1", 0, 0), -1);
  EXPECT_FAIL(pagekite_lookup_and_add_frontend(m, "127.0.0.1", -1, 1), -1);
  EXPECT_FAIL(pagekite_lookup_and_add_frontend(m, "127.0.0.1", 65536, 0), -1);
  EXPECT_FAIL(pagekite_lookup_and_add_frontend(m, NULL, 443, 0), -1);
  EXPECT_FAIL(pagekite_lookup_and_add_frontend(m, "", 443, 0), -1);
  EXPECT_FAIL(pagekite_add_frontend(m, "127.0.0.1", 0), -1);
  CHECK_INT(((pk_mgr *)(void *)m)->nfes, 0);
  CHECK_INT(pagekite_add_frontend(m, "127.0.0.1", 443), 1);
  CHECK_INT(pagekite_add_frontend(m, "127.0.0.1", 444), 1);
  /* max_frontends (2) reached. */
  EXPECT_FAIL(pagekite_add_frontend(m, "127.0.0.1", 445), -1);

  EXPECT_FAIL(pagekite_set_tls_verify(m, 7, NULL), -1);
  EXPECT_FAIL(pagekite_get_counter(m, 0), -1);
  EXPECT_FAIL(pagekite_get_counter(m, 9999), -1);
  CHECK_INT(pagekite_get_counter(m, PK_COUNTER_STREAMS), 0);

  /* Relay-only calls on a connector. */
  EXPECT_FAIL(pagekite_add_relay_listener(m, "127.0.0.1", 0), -1);
  EXPECT_FAIL(pagekite_add_relay_domain(m, "http", "*.test", "s"), -1);
  EXPECT_FAIL(pagekite_set_relay_tls(m, "/nonexistent.pem", "/nonexistent.key"), -1);

  /* Lifecycle calls that need a running thread. */
  EXPECT_FAIL(pagekite_poll(m, 0), -1);
  EXPECT_FAIL(pagekite_tick(m), -1);
  EXPECT_FAIL(pagekite_thread_wait(m), -1);
  EXPECT_FAIL(pagekite_thread_stop(m), -1);
  /* perror with a real manager must not crash either. */
  pagekite_perror(m, "misuse");
  CHECK_INT(pagekite_free(m), 0);
}

TEST(bad_relay_config) {
  pagekite_mgr r = pagekite_init("t", 2, 1, 16, NULL, PK_AS_FRONTEND_RELAY, -1);
  CHECK(r != NULL);
  if (!r) return;
  EXPECT_FAIL(pagekite_add_relay_listener(r, "127.0.0.1", -1), -1);
  EXPECT_FAIL(pagekite_add_relay_listener(r, "127.0.0.1", 65536), -1);
  EXPECT_FAIL(pagekite_add_relay_domain(r, NULL, "*.test", "s"), -1);
  EXPECT_FAIL(pagekite_add_relay_domain(r, "http", NULL, "s"), -1);
  EXPECT_FAIL(pagekite_add_relay_domain(r, "http", "*.test", NULL), -1);
  EXPECT_FAIL(pagekite_add_relay_domain(r, "http", "*.test", ""), -1);
  EXPECT_FAIL(pagekite_set_relay_tls(r, NULL, NULL), -1);
  EXPECT_FAIL(pagekite_set_relay_tls(r, "/nonexistent.pem", "/nonexistent.key"), -1);
  /* A relay without listeners cannot start. */
  EXPECT_FAIL(pagekite_thread_start(r), -1);
  CHECK_INT(pagekite_add_relay_listener(r, "127.0.0.1", 0), 0);
  /* max_frontends (1) bounds the listeners. */
  EXPECT_FAIL(pagekite_add_relay_listener(r, "127.0.0.1", 0), -1);
  CHECK_INT(pagekite_free(r), 0);
}

/* pagekite.py front-end options: raw ports, port aliases, MOTD, endpoints. */
TEST(relay_dropin_config) {
  pagekite_mgr r = pagekite_init("t", 2, 1, 16, NULL, PK_AS_FRONTEND_RELAY, -1);
  CHECK(r != NULL);
  if (!r) return;
  pk_mgr *m = (pk_mgr *)(void *)r;
  const char *bad_raw[] = {",", "22,", ",22", "0", "65536", "22x", "virt", "-1", "22,,23",
                           "12345678901234567"};
  for (size_t i = 0; i < sizeof(bad_raw) / sizeof(bad_raw[0]); i++)
    EXPECT_FAIL(pagekite_set_relay_raw_ports(r, bad_raw[i]), -1);
  CHECK(strstr(pagekite_last_error(), "virtual") != NULL);
  CHECK_INT(pagekite_set_relay_raw_ports(r, "22,2222"), 0);
  CHECK(pk_relay_raw_port_ok(m, 22) && pk_relay_raw_port_ok(m, 2222));
  CHECK(!pk_relay_raw_port_ok(m, 23) && !pk_relay_raw_port_ok(m, 0) && !pk_relay_raw_port_ok(m, 65536));
  CHECK_INT(pagekite_set_relay_raw_ports(r, "VIRTUAL,65535"), 0); /* any port */
  CHECK(pk_relay_raw_port_ok(m, 23) && pk_relay_raw_port_ok(m, 65535) && !pk_relay_raw_port_ok(m, 0));
  CHECK_INT(pagekite_set_relay_raw_ports(r, ""), 0); /* none: a failed call changed nothing */
  CHECK(!pk_relay_raw_port_ok(m, 23) && !pk_relay_raw_port_ok(m, 22));
  CHECK_INT(pagekite_set_relay_raw_ports(r, "22"), 0);
  EXPECT_FAIL(pagekite_set_relay_raw_ports(r, "23,x"), -1);
  CHECK(pk_relay_raw_port_ok(m, 22) && !pk_relay_raw_port_ok(m, 23));
  CHECK_INT(pagekite_set_relay_raw_ports(r, NULL), 0);
  CHECK(!pk_relay_raw_port_ok(m, 22));

  EXPECT_FAIL(pagekite_add_relay_port_alias(r, 0, 80), -1);
  EXPECT_FAIL(pagekite_add_relay_port_alias(r, 80, 80), -1);
  EXPECT_FAIL(pagekite_add_relay_port_alias(r, 80, 65536), -1);
  CHECK_INT(pagekite_add_relay_port_alias(r, 8081, 80), 0);
  EXPECT_FAIL(pagekite_add_relay_port_alias(r, 8081, 81), -1);
  CHECK_INT(pk_relay_port_alias(m, 8081), 80);
  CHECK_INT(pk_relay_port_alias(m, 8082), 8082);

  char big[PK_MOTD_MAX + 2];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = 0;
  EXPECT_FAIL(pagekite_set_relay_motd(r, big), -1);
  EXPECT_FAIL(pagekite_set_relay_motd(r, "bell\a"), -1);
  CHECK_INT(pagekite_set_relay_motd(r, "two\nlines\twith tab"), 0);
  CHECK_INT(pagekite_set_relay_motd(r, NULL), 0);

  EXPECT_FAIL(pagekite_add_relay_proxy_source(r, NULL), -1);
  EXPECT_FAIL(pagekite_add_relay_proxy_source(r, ""), -1);
  EXPECT_FAIL(pagekite_add_relay_proxy_source(r, "::/129"), -1);
  EXPECT_FAIL(pagekite_add_relay_proxy_source(r, "::ffff:10.0.0.0/104"), -1);
  CHECK_INT(pagekite_add_relay_proxy_source(r, "10.0.0.0/8"), 0);
  CHECK_INT(pagekite_add_relay_proxy_source(r, "2001:db8::/32"), 0);
  CHECK(pk_relay_proxy_source(m, "10.1.2.3") && pk_relay_proxy_source(m, "::ffff:10.1.2.3"));
  CHECK(pk_relay_proxy_source(m, "2001:db8::1") && !pk_relay_proxy_source(m, "11.0.0.1"));
  CHECK(!pk_relay_proxy_source(m, "2001:db9::1"));

  const char *bad_names[] = {"", "*", "*.", "*.com", "*.*.example.com", "a:b", "a b", "x*.example.com",
                             "*example.com"};
  for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
    EXPECT_FAIL(pagekite_add_relay_tls_endpoint(r, bad_names[i], "/nonexistent.pem", NULL), -1);
  EXPECT_FAIL(pagekite_add_relay_tls_endpoint(r, "a.example.com", "/nonexistent.pem", NULL), -1);
  CHECK(strstr(pagekite_last_error(), "/nonexistent.pem") != NULL);
  EXPECT_FAIL(pagekite_set_relay_tls_default(r, "a b"), -1);
  CHECK_INT(pagekite_set_relay_tls_default(r, "A.Example.com"), 0);
  CHECK(!pk_relay_has_tls(m, NULL)); /* no endpoint, no catch-all */
  CHECK(pk_relay_tls_ctx_ref(m, NULL) == NULL);
  CHECK_INT(pagekite_free(r), 0);

  /* Relay-only. */
  pagekite_mgr c = pagekite_init("t", 2, 1, 16, NULL, CONNECTOR_FLAGS, -1);
  CHECK(c != NULL);
  if (!c) return;
  EXPECT_FAIL(pagekite_set_relay_raw_ports(c, "virtual"), -1);
  EXPECT_FAIL(pagekite_add_relay_port_alias(c, 8081, 80), -1);
  EXPECT_FAIL(pagekite_set_relay_motd(c, "hi"), -1);
  EXPECT_FAIL(pagekite_add_relay_proxy_source(c, "10.0.0.0/8"), -1);
  /* Per kite: a kite that exists, versions 0-2 only. */
  EXPECT_FAIL(pagekite_set_kite_proxy_protocol(c, "raw", "a.test", 1), -1);
  CHECK_INT(pagekite_add_kite(c, "raw", "a.test", 22, "s", "127.0.0.1", 22), 0);
  CHECK_INT(pagekite_set_kite_proxy_protocol(c, "raw", "a.test", 2), 0);
  CHECK_INT(pagekite_set_kite_proxy_protocol(c, "raw-22", "A.TEST", 1), 0);
  CHECK_INT(((pk_mgr *)(void *)c)->kites[0].proxy_proto, 1);
  CHECK_INT(pagekite_set_kite_proxy_protocol(c, "raw", "a.test", 0), 0);
  EXPECT_FAIL(pagekite_set_kite_proxy_protocol(c, "raw", "a.test", 3), -1);
  EXPECT_FAIL(pagekite_set_kite_proxy_protocol(c, "raw", "a.test", -1), -1);
  EXPECT_FAIL(pagekite_set_kite_proxy_protocol(c, "raw-23", "a.test", 1), -1);
  EXPECT_FAIL(pagekite_set_kite_proxy_protocol(c, NULL, "a.test", 1), -1);
  EXPECT_FAIL(pagekite_set_kite_proxy_protocol(c, "raw", NULL, 1), -1);
  CHECK_INT(((pk_mgr *)(void *)c)->kites[0].proxy_proto, 0);
  EXPECT_FAIL(pagekite_set_relay_tls_default(c, "a.test"), -1);
  CHECK_INT(pagekite_free(c), 0);
}

TEST(lifecycle_order) {
  int closed = t_closed_port();
  CHECK(closed > 0);
  pagekite_mgr m = pagekite_init("t", 2, 1, 16, NULL, CONNECTOR_FLAGS, -1);
  CHECK(m != NULL);
  if (!m || closed <= 0) return;
  CHECK_INT(pagekite_add_kite(m, "http", "a.test", 0, "s", "127.0.0.1", closed), 0);
  CHECK_INT(pagekite_add_frontend(m, "127.0.0.1", closed), 1);
  CHECK_INT(pagekite_get_status(m), PK_STATUS_STARTUP);
  CHECK_INT(pagekite_thread_start(m), 0);

  /* "Before start" calls now refuse. */
  EXPECT_FAIL(pagekite_thread_start(m), -1);
  /* Kites and relays change at any time (the loop applies them). */
  CHECK_INT(pagekite_add_kite(m, "http", "b.test", 0, "s", "127.0.0.1", closed), 0);
  EXPECT_FAIL(pagekite_add_kite(m, "http", "b.test", 0, "s", "127.0.0.1", closed), -1);
  CHECK_INT(pagekite_remove_kite(m, "http", "b.test", 0), 0);
  EXPECT_FAIL(pagekite_remove_kite(m, "http", "b.test", 0), -1);
  EXPECT_FAIL(pagekite_add_frontend(m, "127.0.0.1", closed), -1); /* there already */
  EXPECT_FAIL(pagekite_lookup_and_add_frontend(m, "127.0.0.1", closed, 1), -1);
  EXPECT_FAIL(pagekite_remove_frontend(m, "127.0.0.2", closed), -1);
  EXPECT_FAIL(pagekite_add_service_frontends(m, PK_WITH_IPV4), -1);
  EXPECT_FAIL(pagekite_add_whitelabel_frontends(m, PK_WITH_IPV4, "example.org"), -1);
  EXPECT_FAIL(pagekite_enable_watchdog(m, 1), -1);
  EXPECT_FAIL(pagekite_set_tls_verify(m, PK_TLS_VERIFY_NONE, NULL), -1);
  /* "Any time" calls still work. */
  CHECK_INT(pagekite_set_log_mask(m, PK_LOG_NORMAL), 0);
  CHECK_INT(pagekite_enable_http_forwarding_headers(m, 1), 0);
  CHECK_INT(pagekite_enable_fake_ping(m, 0), 0);
  CHECK_INT(pagekite_enable_tick_timer(m, 1), 0);
  CHECK_INT(pagekite_set_conn_eviction_idle_s(m, 30), 0);
  CHECK_INT(pagekite_set_openssl_ciphers(m, "HIGH:!aNULL"), 0);
  CHECK_INT(pagekite_want_spare_frontends(m, 0), 0);
  CHECK_INT(pagekite_set_bail_on_errors(m, 0), 0);
  CHECK_INT(pagekite_set_housekeeping_min_interval(m, 20), 20);
  CHECK_INT(pagekite_set_housekeeping_max_interval(m, 200), 200);
  CHECK_INT(pagekite_tick(m), 0);
  CHECK_INT(pagekite_poll(m, 0), 0);
  int st = pagekite_get_status(m);
  CHECK(st >= PK_STATUS_STARTUP && st <= PK_STATUS_NO_NETWORK);
  CHECK(pagekite_get_log(m) != NULL);
  CHECK(pagekite_get_counter(m, PK_COUNTER_TUNNELS) >= 0);
  EXPECT_FAIL(pagekite_get_counter(m, 12345), -1);

  CHECK_INT(pagekite_thread_stop(m), 0);
  EXPECT_FAIL(pagekite_thread_stop(m), -1);
  EXPECT_FAIL(pagekite_thread_wait(m), -1);
  EXPECT_FAIL(pagekite_tick(m), -1);
  EXPECT_FAIL(pagekite_thread_start(m), -1);
  CHECK_INT(pagekite_free(m), 0);
}

/* A relay that was started and stopped can be freed; free of a running
 * manager stops it first. */
TEST(relay_lifecycle) {
  pagekite_mgr r = t_start_relay(2, 16, "http", "*.test", "s");
  CHECK(r != NULL);
  if (!r) return;
  CHECK(t_relay_port(r) > 0);
  EXPECT_FAIL(pagekite_add_relay_listener(r, "127.0.0.1", 0), -1);
  CHECK_INT(pagekite_add_relay_domain(r, "http", "*.late", "s"), 0); /* any time */
  CHECK_INT(pagekite_remove_relay_domain(r, "http", "*.late"), 0);
  EXPECT_FAIL(pagekite_remove_relay_domain(r, "http", "*.late"), -1);
  EXPECT_FAIL(pagekite_set_relay_tls(r, "/nonexistent.pem", "/nonexistent.key"), -1);
  CHECK_INT(pagekite_thread_stop(r), 0);
  EXPECT_FAIL(pagekite_thread_wait(r), -1);
  CHECK_INT(pagekite_free(r), 0);

  r = t_start_relay(2, 16, "http", "*.test", "s");
  CHECK(r != NULL);
  if (r) CHECK_INT(pagekite_free(r), 0);
}

/* Two relays cannot share one port: the second thread_start fails. */
TEST(busy_port) {
  pagekite_mgr a = t_start_relay(1, 8, NULL, NULL, NULL);
  CHECK(a != NULL);
  if (!a) return;
  pagekite_mgr b = pagekite_init("t", 1, 1, 8, NULL, PK_AS_FRONTEND_RELAY, -1);
  CHECK(b != NULL);
  if (b) {
    CHECK_INT(pagekite_add_relay_listener(b, "127.0.0.1", t_relay_port(a)), 0);
    pk_fail(PK_OK, "%s", "");
    CHECK(pagekite_thread_start(b) != 0);
    CHECK(pagekite_last_error()[0] != '\0');
    EXPECT_FAIL(pagekite_thread_stop(b), -1);
    CHECK_INT(pagekite_free(b), 0);
  }
  CHECK_INT(pagekite_thread_stop(a), 0);
  CHECK_INT(pagekite_free(a), 0);
}

int main(void) {
  alarm(20);
  RUN(null_manager);
  RUN(bad_init);
  RUN(bad_kites_and_frontends);
  RUN(bad_relay_config);
  RUN(relay_dropin_config);
  RUN(lifecycle_order);
  RUN(relay_lifecycle);
  RUN(busy_port);
  return TEST_DONE();
}
