/* registry_bench.c - the relay's routing cost per connection against the
 * number of registered kites: the registry (c/src/registry.c) next to the
 * linear scan it replaced (find_rkite before issue 15, copied below as the
 * baseline).  Built and run by bench/registry_bench.sh.
 *
 * For N = 10, 1000, 100000 kites (half exact names kI.dI.test, half
 * wildcards *.dI.test, all port-less http, as a relay holds them) it times
 * routing of exact hits, wildcard hits and misses (which end at the
 * catch-all lookup), and prints ns per lookup and the ratio to N = 10.  The
 * old scan could not route wildcards: its row for them is the cost of the
 * scan that finds nothing. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "registry.h"

#define NLOOK 4096 /* lookup names, cycled */

/* ---- the baseline: relay.c's array and find_rkite before the registry ---- */
typedef struct {
  char proto[32];
  int port;
  char name[PK_NAME_MAX];
  void *tunnel;
} old_kite;

static old_kite *old_find(old_kite *ks, int n, unsigned *rr, const char *proto, const char *name,
                          int port) {
  old_kite *exact[16], *any[16];
  int ne = 0, na = 0;
  for (int i = 0; i < n; i++) {
    old_kite *k = &ks[i];
    if (strcasecmp(k->proto, proto) != 0 || strcasecmp(k->name, name) != 0) continue;
    if (k->port == port && ne < 16) exact[ne++] = k;
    if (k->port == 0 && na < 16) any[na++] = k;
  }
  old_kite **set = ne ? exact : any;
  int m = ne ? ne : na;
  if (!m) return NULL;
  return m == 1 ? set[0] : set[(*rr)++ % (unsigned)m];
}

/* ---- set-up ---- */
typedef struct {
  pk_reg reg;
  pk_reg_list list;
  old_kite *old;
  int n;
  char (*look)[64]; /* [3][NLOOK]: exact hits, wildcard hits, misses */
} world;

static void kite_name(char *out, size_t n, int i) {
  if (i % 2)
    snprintf(out, n, "*.d%d.test", i);
  else
    snprintf(out, n, "k%d.d%d.test", i, i);
}

static int build(world *w, int n) {
  static int owner;
  memset(w, 0, sizeof(*w));
  w->n = n;
  w->old = calloc((size_t)n, sizeof(*w->old));
  w->look = calloc(3 * NLOOK, sizeof(*w->look));
  if (!w->old || !w->look || pk_reg_init(&w->reg, (uint32_t)n * 4, 0x5eed) != 0) return -1;
  for (int i = 0; i < n; i++) {
    old_kite *k = &w->old[i];
    kite_name(k->name, sizeof(k->name), i);
    snprintf(k->proto, sizeof(k->proto), "http");
    k->tunnel = &owner;
    if (!pk_reg_add(&w->reg, &w->list, &owner, "http", 0, k->name)) return -1;
  }
  srand(7);
  for (int j = 0; j < NLOOK; j++) {
    int i = (rand() % ((n + 1) / 2)) * 2; /* an exact kite; i + 1 is a wildcard */
    snprintf(w->look[j], 64, "k%d.d%d.test", i, i);
    snprintf(w->look[NLOOK + j], 64, "x%d.d%d.test", j, i + 1 < n ? i + 1 : 1);
    snprintf(w->look[2 * NLOOK + j], 64, "k%d.nowhere%d.test", i, j);
  }
  return 0;
}

static void drop(world *w) {
  pk_reg_free(&w->reg);
  free(w->old);
  free(w->look);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ns per lookup of the names of one kind; *hits: the share found (a wrong
 * table shows in the output instead of being timed). */
static double g_seconds = 0.3; /* timing per row; argv[1] overrides */

static double time_lookups(world *w, int kind, int old, double *hits) {
  static const char *const http[] = {"http"};
  unsigned rr = 0;
  long ops = 0, found = 0;
  double t0 = now_s(), t;
  do {
    for (int j = 0; j < 256; j++, ops++) {
      const char *name = w->look[kind * NLOOK + (ops % NLOOK)];
      const void *hit = old ? (const void *)old_find(w->old, w->n, &rr, "http", name, 80)
                            : (const void *)pk_reg_route(&w->reg, http, 1, 80, name, 0);
      found += hit != NULL;
    }
    t = now_s() - t0;
  } while (t < g_seconds);
  *hits = 100.0 * (double)found / (double)ops;
  return t * 1e9 / (double)ops;
}

static void report(world *w, int size, double base[2][3]) {
  static const char *const kinds[] = {"exact hit", "wildcard hit", "miss"};
  for (int k = 0; k < 3; k++) {
    double hits, ohits;
    double ns = time_lookups(w, k, 0, &hits);
    double ons = time_lookups(w, k, 1, &ohits);
    if (size == 10) base[0][k] = ns, base[1][k] = ons;
    printf("%-13s %7d | %11.1f %7.2f %5.0f%% | %11.1f %8.2f %5.0f%%\n", kinds[k], size, ns,
           ns / base[0][k], hits, ons, ons / base[1][k], ohits);
  }
}

int main(int argc, char **argv) {
  static const int sizes[] = {10, 1000, 100000};
  if (argc > 1) {
    g_seconds = atof(argv[1]);
    if (!(g_seconds > 0.0 && g_seconds <= 60.0)) {
      fprintf(stderr, "usage: registry_bench [seconds per row, 0 < s <= 60]\n");
      return 2;
    }
  }
  double base[2][3] = {{0}};
  printf("%-13s %7s | %11s %7s %6s | %11s %8s %6s\n", "lookup", "kites", "registry ns",
         "x N=10", "found", "old scan ns", "x N=10", "found");
  for (int s = 0; s < 3; s++) {
    world w;
    if (build(&w, sizes[s]) != 0) {
      fprintf(stderr, "set-up failed for %d kites\n", sizes[s]);
      return 1;
    }
    report(&w, sizes[s], base);
    drop(&w);
  }
  return 0;
}
