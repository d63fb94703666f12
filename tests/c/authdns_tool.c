/* authdns_tool.c - command-line front end to authdns.c for
 * authdns_vectors.py (which runs pagekite.py's own functions beside it).
 *
 *   authdns_tool query BSALT TOKEN SIGN PROTOPORT NAME ADOM  -> the name
 *   authdns_tool decode A.B.C.D [CNAME]   -> "quota days conns ipc ips error"
 *   authdns_tool select DEFAULT NAME [KITEDOMAIN:TARGET...]  -> the target
 *     (DEFAULT "-" for none; prints "-" when nothing covers NAME)
 * Prints "ERR" and exits 1 when the library call reports failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authdns.h"

int main(int argc, char **argv) {
  if (argc == 8 && strcmp(argv[1], "query") == 0) {
    char q[PK_AUTHDNS_NAME_MAX + 1];
    if (pk_authdns_query(argv[2], argv[3], argv[4], argv[5], argv[6], argv[7], q, sizeof(q))) {
      printf("ERR\n");
      return 1;
    }
    printf("%s\n", q);
    return 0;
  }
  if ((argc == 3 || argc == 4) && strcmp(argv[1], "decode") == 0) {
    unsigned a[4];
    unsigned char b[4];
    pk_authdns_answer ans;
    if (sscanf(argv[2], "%u.%u.%u.%u", &a[0], &a[1], &a[2], &a[3]) != 4) return 2;
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)a[i];
    if (pk_authdns_decode(b, argc == 4 ? argv[3] : NULL, &ans) != 0) {
      printf("ERR\n");
      return 1;
    }
    printf("%lld %ld %ld %ld %ld %s\n", ans.quota, ans.days, ans.conns, ans.ipc, ans.ips,
           ans.error[0] ? ans.error : "-");
    return 0;
  }
  if (argc >= 4 && strcmp(argv[1], "select") == 0) {
    pk_authdomain_rule rules[16];
    static char kd[16][256], t[16][256];
    int n = 0;
    for (int i = 4; i < argc && n < 16; i++, n++) {
      if (pk_authdomain_split(argv[i], kd[n], sizeof(kd[n]), t[n], sizeof(t[n])) != 0) {
        printf("ERR\n");
        return 1;
      }
      rules[n].kite_domain = kd[n];
      rules[n].target = t[n];
    }
    const char *dflt = strcmp(argv[2], "-") == 0 ? NULL : argv[2];
    const char *r = pk_authdomain_select(rules, n, dflt, argv[3]);
    printf("%s\n", r ? r : "-");
    return 0;
  }
  fprintf(stderr, "usage: authdns_tool query|decode|select ...\n");
  return 2;
}
