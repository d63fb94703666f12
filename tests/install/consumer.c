/* A program built only against the installed header and library. */
#include <pagekite.h>
#include <stdio.h>

int main(void) {
  if (pagekite_version_number() != PK_VERSION_NUMBER) {
    fprintf(stderr, "header/library version mismatch\n");
    return 1;
  }
  pagekite_mgr m = pagekite_init("consumer", 1, 1, 4, NULL, PK_WITH_DEFAULTS, -1);
  if (!m) return 1;
  int rv = pagekite_add_kite(m, "http", "c.example.test", 0, "s", "127.0.0.1", 80);
  pagekite_free(m);
  printf("consumer ok %s\n", PK_VERSION);
  return rv == 0 ? 0 : 1;
}
