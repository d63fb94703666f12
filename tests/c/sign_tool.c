/* sign_tool.c - command-line front end to sign.c for sign_vectors.py.
 *
 *   sign_tool sha1 PART...                   -> sha1hex of the concatenation
 *   sign_tool sign SECRET PAYLOAD TOKEN TS   -> pk_sign_token (TOKEN "-" = NULL)
 *   sign_tool check SIGN SECRET PAYLOAD NOW  -> 1 or 0
 *   sign_tool randhex N                      -> pk_random_hex
 * Prints "ERR" and exits 1 when the library call reports failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sign.h"

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "sha1") == 0) {
    char out[41];
    pk_sha1hex_parts((const char *const *)(argv + 2), argc - 2, out);
    printf("%s\n", out);
    return 0;
  }
  if (argc == 6 && strcmp(argv[1], "sign") == 0) {
    char out[PK_TOKEN_LEN + 1];
    const char *token = strcmp(argv[4], "-") == 0 ? NULL : argv[4];
    if (pk_sign_token(argv[2], argv[3], token, strtoll(argv[5], NULL, 10), out) != 0) {
      printf("ERR\n");
      return 1;
    }
    printf("%s\n", out);
    return 0;
  }
  if (argc == 6 && strcmp(argv[1], "check") == 0) {
    printf("%d\n", pk_check_signature(argv[2], argv[3], argv[4], strtoll(argv[5], NULL, 10)));
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "randhex") == 0) {
    size_t n = (size_t)strtoul(argv[2], NULL, 10);
    char *out = malloc(n + 1);
    if (out == NULL || pk_random_hex(out, n) != 0) {
      printf("ERR\n");
      free(out);
      return 1;
    }
    printf("%s\n", out);
    free(out);
    return 0;
  }
  fprintf(stderr, "usage: sign_tool sha1|sign|check|randhex ...\n");
  return 2;
}
