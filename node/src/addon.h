/* addon.h - helpers shared by the hand-written addon (addon.c) and the glue
 * generated from the spec (glue_generated.c). */
#ifndef PKN_ADDON_H
#define PKN_ADDON_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stddef.h>

#include "pagekite.h"

/* The native side of a manager handle (a JS object tagged as ours). */
typedef struct pkn_handle pkn_handle;

/* Argument checks: each returns 0, or throws (TypeError/RangeError) and
 * returns -1.  fn and name only make the message. */
int pkn_argv(napi_env env, napi_callback_info info, const char *fn, size_t n, napi_value *argv);
int pkn_arg_mgr(napi_env env, napi_value v, const char *fn, const char *name, pkn_handle **h,
                pagekite_mgr *mgr);
int pkn_arg_int(napi_env env, napi_value v, const char *fn, const char *name, int *out);
int pkn_arg_int64(napi_env env, napi_value v, const char *fn, const char *name, long long *out);
void *pkn_out_array(napi_env env, const char *fn, const char *name, int count, int max,
                    size_t size);
int pkn_arg_str(napi_env env, napi_value v, const char *fn, const char *name, int nullable,
                char **out);
int pkn_arg_strv(napi_env env, napi_value v, const char *fn, const char *name, int nullable,
                 char ***out);
void pkn_free_strv(char **v);

/* Results. */
napi_value pkn_ret_undefined(napi_env env);
napi_value pkn_ret_int(napi_env env, int r);
napi_value pkn_ret_int64(napi_env env, long long r);
napi_value pkn_ret_str(napi_env env, const char *r);
napi_value pkn_ret_mgr(napi_env env, pagekite_mgr r);

/* The manager's library-owned buffers (pagekite_get_log) are shared with the
 * handle's event thread: hold this lock while calling and copying. */
void pkn_lock_buffer(pkn_handle *h);
void pkn_unlock_buffer(pkn_handle *h);

/* Lifecycle hooks: before thread_wait/thread_stop/free, stop the handle's
 * event thread; after a successful free, forget the manager. */
void pkn_quiesce(napi_env env, pkn_handle *h);
void pkn_forget(napi_env env, pkn_handle *h, int rc);

/* Registration. */
int pkn_define(napi_env env, napi_value exports, const char *name, napi_callback cb);
int pkn_const_int(napi_env env, napi_value exports, const char *name, long long value);
int pkn_const_str(napi_env env, napi_value exports, const char *name, const char *value);
int pkn_register_generated(napi_env env, napi_value exports);

#endif /* PKN_ADDON_H */
