/* test_registry.c - the relay's kite registry (registry.c), no sockets:
 * keys, pagekite.py's routing precedence, duplicates, owners, capacity. */
#include <stdlib.h>

#include "pk_test.h"
#include "registry.h"

/* A stand-in tunnel: the registry only keeps its address and its list. */
typedef struct {
  pk_reg_list l;
  int id;
} tun;

static pk_reg_entry *add(pk_reg *r, tun *t, const char *proto, int port, const char *name) {
  return pk_reg_add(r, &t->l, t, proto, port, name);
}

/* The id of the tunnel a request routes to (protos: "ws" for websocket then
 * http, else the one proto), 0 when none. */
static int route(pk_reg *r, const char *proto, int port, const char *name) {
  static const char *const ws[] = {"websocket", "http"};
  const char *one[] = {proto};
  int isws = strcmp(proto, "ws") == 0;
  pk_reg_entry *e = pk_reg_route(r, isws ? ws : one, isws ? 2 : 1, port, name, 1);
  return e ? ((tun *)e->tunnel)->id : 0;
}

TEST(exact_and_case) {
  pk_reg r;
  tun a = {{0, 0}, 1};
  CHECK_INT(pk_reg_init(&r, 8, 42), 0);
  pk_reg_entry *e = add(&r, &a, "HTTP", 0, "Foo.Example.TEST");
  CHECK(e != NULL);
  CHECK(e && strcmp(e->name, "foo.example.test") == 0 && strcmp(e->proto, "http") == 0);
  CHECK_INT(route(&r, "http", 80, "foo.example.test"), 1);
  CHECK_INT(route(&r, "http", 80, "FOO.EXAMPLE.test"), 1);
  CHECK_INT(route(&r, "HTTP", 80, "foo.example.test"), 1);
  CHECK_INT(route(&r, "https", 443, "foo.example.test"), 0); /* another proto */
  CHECK_INT(route(&r, "http", 80, "bar.example.test"), 0);
  CHECK(pk_reg_get(&r, "http", 0, "FOO.example.test", NULL, 0) == e);
  CHECK(pk_reg_get(&r, "http", 0, "foo.example.test", &a, 0) == e);
  CHECK(pk_reg_get(&r, "http", 0, "foo.example.test", &r, 0) == NULL); /* other tunnel */
  CHECK(pk_reg_get(&r, "http", 80, "foo.example.test", NULL, 0) == NULL); /* other port */
  CHECK_INT(pk_reg_count(&r), 1);
  CHECK_INT(a.l.n, 1);
  pk_reg_free(&r);
}

TEST(wildcards_most_specific_first) {
  pk_reg r;
  tun cd = {{0, 0}, 1}, bcd = {{0, 0}, 2}, d = {{0, 0}, 3}, exact = {{0, 0}, 4};
  CHECK_INT(pk_reg_init(&r, 16, 7), 0);
  CHECK(add(&r, &cd, "http", 0, "*.c.d") != NULL);
  CHECK(add(&r, &bcd, "http", 0, "*.b.c.d") != NULL);
  CHECK(add(&r, &d, "http", 0, "*.d") != NULL);
  CHECK(add(&r, &exact, "http", 0, "x.b.c.d") != NULL);
  CHECK_INT(route(&r, "http", 80, "a.b.c.d"), 2);
  CHECK_INT(route(&r, "http", 80, "x.b.c.d"), 4); /* exact beats every wildcard */
  CHECK_INT(route(&r, "http", 80, "b.c.d"), 1);
  CHECK_INT(route(&r, "http", 80, "z.y.b.c.d"), 2); /* several labels */
  CHECK_INT(route(&r, "http", 80, "c.d"), 0);       /* not its own base name */
  /* pagekite.py never tries a one-label wildcard: *.d serves nothing but
   * a request for "*.d" itself. */
  CHECK_INT(route(&r, "http", 80, "x.d"), 0);
  CHECK_INT(route(&r, "http", 80, "x.y.d"), 0);
  CHECK_INT(route(&r, "http", 80, "*.d"), 3);
  CHECK_INT(route(&r, "http", 80, "*.C.D"), 1);
  pk_reg_free(&r);
}

TEST(port_specific_before_any_port) {
  pk_reg r;
  tun any = {{0, 0}, 1}, p80 = {{0, 0}, 2}, wild80 = {{0, 0}, 3}, p8080 = {{0, 0}, 4};
  CHECK_INT(pk_reg_init(&r, 16, 1), 0);
  CHECK(add(&r, &any, "http", 0, "a.example.test") != NULL);
  CHECK(add(&r, &p80, "http", 80, "b.example.test") != NULL);
  CHECK(add(&r, &any, "http", 0, "b.example.test") != NULL);
  CHECK(add(&r, &wild80, "http", 80, "*.w.example.test") != NULL);
  CHECK(add(&r, &any, "http", 0, "x.w.example.test") != NULL);
  CHECK(add(&r, &p8080, "http", 8080, "c.example.test") != NULL);
  CHECK_INT(route(&r, "http", 80, "a.example.test"), 1);
  CHECK_INT(route(&r, "http", 80, "b.example.test"), 2);
  CHECK_INT(route(&r, "http", 443, "b.example.test"), 1);
  /* A port-specific wildcard beats a port-less exact name (pagekite.py
   * tries proto-PORT with wildcards before proto alone). */
  CHECK_INT(route(&r, "http", 80, "x.w.example.test"), 3);
  CHECK_INT(route(&r, "http", 81, "x.w.example.test"), 1);
  CHECK_INT(route(&r, "http", 80, "c.example.test"), 0);
  CHECK_INT(route(&r, "http", 8080, "c.example.test"), 4);
  CHECK_INT(route(&r, "http", 0, "c.example.test"), 0); /* port 0 asks for port-less only */
  pk_reg_free(&r);
}

TEST(websocket_falls_back_to_http) {
  pk_reg r;
  tun h = {{0, 0}, 1}, w = {{0, 0}, 2}, hu = {{0, 0}, 3}, hx = {{0, 0}, 4};
  CHECK_INT(pk_reg_init(&r, 16, 3), 0);
  CHECK(add(&r, &h, "http", 0, "a.example.test") != NULL);
  CHECK_INT(route(&r, "ws", 80, "a.example.test"), 1);
  CHECK(add(&r, &w, "websocket", 0, "*.example.test") != NULL);
  /* Every websocket step comes first, wildcards included. */
  CHECK_INT(route(&r, "ws", 80, "a.example.test"), 2);
  CHECK_INT(route(&r, "http", 80, "a.example.test"), 1);
  CHECK(add(&r, &hx, "http", 80, "b.example.test") != NULL);
  CHECK_INT(route(&r, "ws", 80, "b.example.test"), 2);
  /* The catch-all is only the first proto's: an http "unknown" does not
   * take websocket requests. */
  CHECK(add(&r, &hu, "http", 0, "unknown") != NULL);
  CHECK_INT(route(&r, "ws", 80, "other.test"), 0);
  CHECK_INT(route(&r, "http", 80, "other.test"), 3);
  pk_reg_free(&r);
}

TEST(catchall_unknown) {
  pk_reg r;
  tun u = {{0, 0}, 1}, u80 = {{0, 0}, 2}, exact = {{0, 0}, 3}, us = {{0, 0}, 4};
  CHECK_INT(pk_reg_init(&r, 16, 5), 0);
  CHECK(add(&r, &u80, "http", 80, "unknown") != NULL);
  CHECK_INT(route(&r, "http", 80, "other.test"), 0); /* a port-specific one is not the catch-all */
  CHECK_INT(route(&r, "http", 80, "unknown"), 2);    /* though it is a kite of that name */
  CHECK(add(&r, &u, "http", 0, "UNKNOWN") != NULL);
  CHECK(add(&r, &exact, "http", 0, "a.example.test") != NULL);
  CHECK(add(&r, &us, "https", 0, "unknown") != NULL);
  CHECK_INT(route(&r, "http", 80, "a.example.test"), 3);
  CHECK_INT(route(&r, "http", 80, "b.example.test"), 1);
  CHECK_INT(route(&r, "http", 80, "example.test"), 1);
  CHECK_INT(route(&r, "http", 80, ""), 1);
  CHECK_INT(route(&r, "https", 443, "b.example.test"), 4);
  CHECK_INT(route(&r, "raw", 22, "b.example.test"), 0);
  pk_reg_free(&r);
}

TEST(duplicates_take_turns) {
  pk_reg r;
  tun t[3] = {{{0, 0}, 1}, {{0, 0}, 2}, {{0, 0}, 3}};
  CHECK_INT(pk_reg_init(&r, 16, 9), 0);
  for (int i = 0; i < 3; i++) CHECK(add(&r, &t[i], "http", 0, "d.example.test") != NULL);
  int seen[4] = {0};
  for (int i = 0; i < 30; i++) seen[route(&r, "http", 80, "d.example.test")]++;
  CHECK_INT(seen[0], 0);
  CHECK_INT(seen[1], 10);
  CHECK_INT(seen[2], 10);
  CHECK_INT(seen[3], 10);
  /* Without turns, always the same one. */
  const char *p[] = {"http"};
  pk_reg_entry *first = pk_reg_route(&r, p, 1, 80, "d.example.test", 0);
  CHECK(first != NULL);
  for (int i = 0; i < 5; i++) CHECK(pk_reg_route(&r, p, 1, 80, "d.example.test", 0) == first);
  /* Each tunnel's own entry. */
  for (int i = 0; i < 3; i++) {
    pk_reg_entry *e = pk_reg_get(&r, "http", 0, "d.example.test", &t[i], 0);
    CHECK(e && e->tunnel == &t[i]);
  }
  /* Turns among wildcards too. */
  for (int i = 0; i < 2; i++) CHECK(add(&r, &t[i], "http", 0, "*.w.test") != NULL);
  memset(seen, 0, sizeof(seen));
  for (int i = 0; i < 10; i++) seen[route(&r, "http", 80, "x.w.test")]++;
  CHECK(seen[1] == 5 && seen[2] == 5);
  pk_reg_free(&r);
}

static int ngone;
static void count_gone(void *ctx, const pk_reg_entry *e) {
  ngone++;
  CHECK(e->tunnel == ctx);
}

TEST(remove_by_tunnel) {
  pk_reg r;
  tun a = {{0, 0}, 1}, b = {{0, 0}, 2};
  CHECK_INT(pk_reg_init(&r, 16, 11), 0);
  CHECK(add(&r, &a, "http", 0, "a1.test.x") != NULL);
  CHECK(add(&r, &b, "http", 0, "b1.test.x") != NULL);
  CHECK(add(&r, &a, "https", 0, "a1.test.x") != NULL);
  CHECK(add(&r, &a, "http", 0, "*.test.x") != NULL);
  CHECK(add(&r, &b, "http", 0, "shared.test.x") != NULL);
  CHECK(add(&r, &a, "http", 0, "shared.test.x") != NULL);
  CHECK_INT(a.l.n, 4);
  CHECK_INT(b.l.n, 2);
  ngone = 0;
  pk_reg_remove_list(&r, &a.l, count_gone, &a);
  CHECK_INT(ngone, 4);
  CHECK_INT(a.l.n, 0);
  CHECK_INT(a.l.head, 0);
  CHECK_INT(pk_reg_count(&r), 2);
  CHECK_INT(route(&r, "http", 80, "a1.test.x"), 0);
  CHECK_INT(route(&r, "http", 80, "b1.test.x"), 2);
  CHECK_INT(route(&r, "http", 80, "shared.test.x"), 2);
  /* One entry alone, from the middle of a list. */
  pk_reg_entry *m = add(&r, &b, "raw", 22, "m.test.x");
  CHECK(add(&r, &b, "raw", 23, "n.test.x") != NULL);
  pk_reg_remove(&r, &b.l, pk_reg_get(&r, "http", 0, "shared.test.x", NULL, 0));
  pk_reg_remove(&r, &b.l, m);
  CHECK_INT(b.l.n, 2);
  CHECK(pk_reg_get(&r, "raw", 23, "n.test.x", NULL, 0) != NULL);
  CHECK(pk_reg_get(&r, "raw", 22, "m.test.x", NULL, 0) == NULL);
  ngone = 0;
  pk_reg_remove_list(&r, &b.l, count_gone, &b);
  CHECK_INT(ngone, 2);
  CHECK_INT(pk_reg_count(&r), 0);
  CHECK(pk_reg_next(&r, NULL) == NULL);
  pk_reg_remove_list(&r, &b.l, count_gone, &b); /* empty: nothing */
  CHECK_INT(ngone, 2);
  pk_reg_free(&r);
}

TEST(capacity_is_fixed) {
  pk_reg r;
  tun a = {{0, 0}, 1};
  char name[32];
  CHECK_INT(pk_reg_init(&r, 4, 13), 0);
  for (int i = 0; i < 4; i++) {
    snprintf(name, sizeof(name), "k%d.test.x", i);
    CHECK(add(&r, &a, "http", 0, name) != NULL);
  }
  CHECK(add(&r, &a, "http", 0, "k4.test.x") == NULL);
  CHECK_INT(pk_reg_count(&r), 4);
  pk_reg_remove(&r, &a.l, pk_reg_get(&r, "http", 0, "k1.test.x", NULL, 0));
  CHECK(add(&r, &a, "http", 0, "k4.test.x") != NULL); /* the freed slot */
  CHECK(add(&r, &a, "http", 0, "k5.test.x") == NULL);
  CHECK_INT(route(&r, "http", 80, "k4.test.x"), 1);
  CHECK_INT(route(&r, "http", 80, "k1.test.x"), 0);
  CHECK_INT(r.used, 4);
  pk_reg_free(&r);
  CHECK_INT(pk_reg_init(&r, 0, 13), -1);
}

TEST(odd_input) {
  pk_reg r;
  tun a = {{0, 0}, 1}, b = {{0, 0}, 2}, c = {{0, 0}, 3};
  char longname[PK_NAME_MAX + 8];
  memset(longname, 'a', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = 0;
  CHECK_INT(pk_reg_init(&r, 16, 17), 0);
  CHECK(pk_reg_add(&r, &a.l, NULL, "http", 0, "a.test") == NULL); /* no owner */
  CHECK(add(&r, &a, "http", 0, "") == NULL);
  CHECK(add(&r, &a, "", 0, "a.test") == NULL);
  CHECK(add(&r, &a, "http", -1, "a.test") == NULL);
  CHECK(add(&r, &a, "http", 0, longname) == NULL);
  CHECK(add(&r, &a, "a-protocol-name-far-too-long-to-keep", 0, "a.test") == NULL);
  longname[PK_NAME_MAX - 1] = 0; /* the longest name that fits */
  CHECK(add(&r, &a, "http", 0, longname) != NULL);
  CHECK_INT(route(&r, "http", 80, longname), 1);
  CHECK_INT(pk_reg_count(&r), 1);
  /* A trailing dot is part of the name, as in pagekite.py. */
  CHECK(add(&r, &b, "http", 0, "*.example.test") != NULL);
  CHECK_INT(route(&r, "http", 80, "foo.example.test."), 0);
  CHECK(add(&r, &c, "http", 0, "*.example.test.") != NULL);
  CHECK_INT(route(&r, "http", 80, "foo.example.test."), 3);
  CHECK_INT(route(&r, "http", 80, "foo.example.test"), 2);
  /* Empty labels, lone dots and stars: no match, no crash. */
  CHECK_INT(route(&r, "http", 80, "."), 0);
  CHECK_INT(route(&r, "http", 80, "..."), 0);
  CHECK_INT(route(&r, "http", 80, "a..example.test"), 2); /* "*..example.test", then this */
  CHECK_INT(route(&r, "http", 80, ".example.test"), 2); /* an empty first label */
  CHECK_INT(route(&r, "http", 80, "*"), 0);
  CHECK_INT(route(&r, "http", 80, "*.*.example.test"), 2);
  longname[PK_NAME_MAX - 1] = 'a'; /* too long to be any kite: the catch-all */
  CHECK_INT(route(&r, "http", 80, longname), 0);
  CHECK(add(&r, &c, "http", 0, "unknown") != NULL);
  CHECK_INT(route(&r, "http", 80, longname), 3);
  const char *none[] = {"http"};
  CHECK(pk_reg_route(&r, none, 0, 80, "a.test", 1) == NULL);
  CHECK(pk_reg_route(&r, none, 1, 80, NULL, 1) == NULL);
  CHECK(pk_reg_get(&r, "http", 0, longname, NULL, 0) == NULL);
  pk_reg_free(&r);
}

TEST(iterator_visits_each_once) {
  pk_reg r;
  tun a = {{0, 0}, 1}, b = {{0, 0}, 2};
  char name[32];
  CHECK_INT(pk_reg_init(&r, 64, 19), 0);
  for (int i = 0; i < 40; i++) {
    snprintf(name, sizeof(name), "i%d.test.x", i);
    CHECK(add(&r, i % 2 ? &a : &b, "http", 0, name) != NULL);
  }
  pk_reg_remove_list(&r, &a.l, NULL, NULL);
  int n = 0, bad = 0;
  for (const pk_reg_entry *e = pk_reg_next(&r, NULL); e; e = pk_reg_next(&r, e)) {
    n++;
    bad += e->tunnel != &b;
  }
  CHECK_INT(n, 20);
  CHECK_INT(bad, 0);
  pk_reg_free(&r);
}

/* A public relay's load: 100,000 kites on 1,563 tunnels of 64, plus a
 * wildcard per tunnel; every one routes, and dropping tunnels drops theirs. */
TEST(hundred_thousand_kites) {
  enum { N = 100000, PER = 64, NT = (N + PER - 1) / PER };
  pk_reg r;
  tun *t = calloc(NT, sizeof(*t));
  char name[64];
  CHECK(t != NULL);
  if (!t) return;
  CHECK_INT(pk_reg_init(&r, N * 4, 23), 0);
  for (int i = 0; i < NT; i++) t[i].id = i + 1;
  int fails = 0;
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof(name), "k%d.t%d.example.test", i, i / PER);
    fails += add(&r, &t[i / PER], "http", 0, name) == NULL;
  }
  for (int i = 0; i < NT; i++) {
    snprintf(name, sizeof(name), "*.t%d.example.test", i);
    fails += add(&r, &t[i], "http", 0, name) == NULL;
  }
  CHECK_INT(fails, 0);
  CHECK_INT(pk_reg_count(&r), N + NT);
  int wrong = 0;
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof(name), "K%d.t%d.example.test", i, i / PER);
    wrong += route(&r, "http", 80, name) != i / PER + 1;
    snprintf(name, sizeof(name), "other%d.t%d.example.test", i, i / PER);
    wrong += route(&r, "http", 80, name) != i / PER + 1;
    snprintf(name, sizeof(name), "k%d.nowhere.test", i);
    wrong += route(&r, "http", 80, name) != 0;
  }
  CHECK_INT(wrong, 0);
  for (int i = 0; i < NT; i += 2) pk_reg_remove_list(&r, &t[i].l, NULL, NULL);
  wrong = 0;
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof(name), "k%d.t%d.example.test", i, i / PER);
    wrong += route(&r, "http", 80, name) != ((i / PER) % 2 ? i / PER + 1 : 0);
  }
  CHECK_INT(wrong, 0);
  CHECK_INT(pk_reg_count(&r), (NT / 2) * (PER + 1)); /* the odd tunnels, all full */
  pk_reg_free(&r);
  free(t);
}

int main(void) {
  RUN(exact_and_case);
  RUN(wildcards_most_specific_first);
  RUN(port_specific_before_any_port);
  RUN(websocket_falls_back_to_http);
  RUN(catchall_unknown);
  RUN(duplicates_take_turns);
  RUN(remove_by_tunnel);
  RUN(capacity_is_fixed);
  RUN(odd_input);
  RUN(iterator_visits_each_once);
  RUN(hundred_thousand_kites);
  return TEST_DONE();
}
