/* proxyproto.h - HAProxy's PROXY protocol, versions 1 (text) and 2 (binary),
 * as in haproxy's doc/proxy-protocol.txt.  Fed with bytes; no sockets, no
 * allocation, no globals (tests/c/test_proxyproto.c, fuzzed by
 * tests/fuzz/fuzz_proxyproto.c).
 *
 * Sending (connector -> origin, pagekite.py's +proxyproto): pk_pp_encode()
 * writes the header that goes before a stream's first byte, carrying the
 * visitor's address as the relay reported it (RIP/RPort) and the relay's
 * address and public port as destination.
 *
 * Receiving (load balancer -> relay listener): pk_pp_parse() reads a header
 * at the start of a connection, a piece at a time: NEED_MORE until it has
 * all of it, then DONE with the addresses and the header's length (the bytes
 * after it are the client's), or ERROR with a reason.  Whether a source may
 * send one at all is the caller's business (pk_pp_cidr_*).
 */
#ifndef PK_PROXYPROTO_H
#define PK_PROXYPROTO_H

#include <stddef.h>

#define PK_PP_NEED_MORE 0
#define PK_PP_DONE 1
#define PK_PP_ERROR (-1)

/* The longest v1 line, CRLF included (the spec's 107). */
#define PK_PP_V1_MAX 107
/* The longest v2 header we accept: the 16-byte fixed part and up to 512
 * bytes of addresses and TLVs (a UNIX pair is 216; haproxy's own TLVs fit). */
#define PK_PP_V2_MAX (16 + 512)
/* Room for any header pk_pp_encode() writes. */
#define PK_PP_ENCODE_MAX 108

/* The 12-byte v2 signature: \r\n\r\n\0\r\nQUIT\n. */
extern const unsigned char pk_pp_v2_sig[12];

typedef struct {
  int version; /* 1 or 2 */
  int local;   /* 1: no client address in it (v1 UNKNOWN, v2 LOCAL, v2
                  UNSPEC or UNIX): use the connection's own */
  int family;  /* 4 or 6 when !local, else 0 */
  char src_ip[46], dst_ip[46];
  int src_port, dst_port;
  size_t len;  /* bytes the header took */
} pk_pp_info;

/* A header of version (1 or 2) for a connection from src_ip:src_port to
 * dst_ip:dst_port.  src_ip may be IPv4, IPv6 or IPv4-mapped IPv6 (written as
 * IPv4); anything else (NULL, "", a name, a port outside 0-65535) makes an
 * address-less header (v1 "PROXY UNKNOWN", v2 PROXY command, family
 * UNSPEC).  A dst_ip that is missing or of the other family becomes the
 * unspecified address of src's family (0.0.0.0 or ::), as pagekite.py
 * writes.  Returns the length written, or -1 (bad version, or cap < the
 * header). */
int pk_pp_encode(int version, const char *src_ip, int src_port, const char *dst_ip, int dst_port,
                 char *out, size_t cap);

/* Parse the header at the start of buf[0..n).  PK_PP_NEED_MORE while
 * everything so far could still be a header (then more bytes are needed),
 * PK_PP_DONE with *info filled (info->len bytes were the header), or
 * PK_PP_ERROR with why (at most whyn bytes, never NULL-terminated short of
 * whyn 0) saying what is wrong.  Never reads past buf[n-1]. */
int pk_pp_parse(const char *buf, size_t n, pk_pp_info *info, char *why, size_t whyn);

/* A CIDR network ("10.0.0.0/8", "::1/128", or one address). */
typedef struct {
  int family; /* 4 or 6 */
  int bits;
  unsigned char addr[16];
} pk_pp_cidr;

/* 0, or -1 with why. */
int pk_pp_cidr_parse(const char *text, pk_pp_cidr *out, char *why, size_t whyn);
/* Does ip (text, IPv4, IPv6 or IPv4-mapped IPv6) fall in net? */
int pk_pp_cidr_match(const pk_pp_cidr *net, const char *ip);

#endif
