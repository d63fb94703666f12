/* buffers.c - the block pool: reserved once at init, refcounted blocks. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int pk_pool_init(pk_pool *p, size_t count) {
  memset(p, 0, sizeof(*p));
  /* One reservation; pages are only touched (and count in RSS) when used. */
  p->mem = malloc(count * sizeof(pk_block));
  if (!p->mem) return -1;
  p->count = count;
  return 0;
}

void pk_pool_free(pk_pool *p) {
  free(p->mem);
  memset(p, 0, sizeof(*p));
}

pk_block *pk_block_get(pk_mgr *m) {
  pk_pool *p = &m->blocks;
  pk_block *b = p->free_list;
  if (b) {
    p->free_list = b->next_free;
  } else if (p->used < p->count) {
    b = (pk_block *)(p->mem + p->used * sizeof(pk_block));
    p->used++;
  } else {
    return NULL;
  }
  b->next_free = NULL;
  b->refs = 1;
  b->len = 0;
  p->in_use++;
  if (p->in_use > p->high_water) p->high_water = p->in_use;
  return b;
}

void pk_block_ref(pk_block *b) { b->refs++; }

void pk_block_unref(pk_mgr *m, pk_block *b) {
  if (!b || --b->refs > 0) return;
  pk_pool *p = &m->blocks;
  b->next_free = p->free_list;
  p->free_list = b;
  p->in_use--;
  if (p->on_free) p->on_free(p->on_free_ctx);
}
