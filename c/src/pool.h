/* pool.h - the block pool (buffers.c): refcounted 32 KiB blocks reserved at init.
 * Part of the core's private headers: included through internal.h, which
 * declares the shared types first. */
#ifndef PK_POOL_H
#define PK_POOL_H

/* ---- buffers.c: refcounted fixed-size blocks from a pool reserved at init ---- */
struct pk_block {
  pk_block *next_free;
  int refs;
  size_t len;
  char data[PK_BLOCK_SIZE];
};

typedef struct {
  char *mem;
  size_t count, used;
  pk_block *free_list;
  size_t in_use, high_water;
  /* Told when a block comes back, so that readers waiting for one resume;
   * the pool itself knows nothing of its users. */
  void (*on_free)(void *ctx);
  void *on_free_ctx;
} pk_pool;

int pk_pool_init(pk_pool *p, size_t count);
void pk_pool_free(pk_pool *p);
pk_block *pk_block_get(pk_mgr *m);
void pk_block_ref(pk_block *b);
void pk_block_unref(pk_mgr *m, pk_block *b);

#endif
