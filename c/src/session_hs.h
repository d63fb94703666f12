/* session_hs.h - between session.c and handshake.c only: the two halves of
 * one session (chunks; handshake and kite authentication). */
#ifndef PK_SESSION_HS_H
#define PK_SESSION_HS_H

#include "session.h"

/* Connector in HANDSHAKE: bytes of the relay's head.  Returns how many of
 * data it took (when the head is complete the session is OPEN and s->in
 * holds the bytes that followed it), or -1 (DEAD). */
long pk_session_hs_head(pk_session *s, const char *data, size_t n);
/* A NOOP chunk with kite requests (relay) or answers (connector): 1 when
 * the handshake took it, 0 when it is not the handshake's. */
int pk_session_hs_control(pk_session *s, const pk_chunk *ch);

#endif
