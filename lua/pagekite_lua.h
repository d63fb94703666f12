/* pagekite_lua.h - what the generated raw layer (pagekite_raw.c) and the
 * hand-written module (pagekite.c) share. */
#ifndef PAGEKITE_LUA_H
#define PAGEKITE_LUA_H

#include <lauxlib.h>
#include <lua.h>

#include "pagekite.h"

/* pagekite_raw.c (generated): pagekite.raw's functions, by Lua name. */
extern const luaL_Reg lpk_raw_functions[];
/* Sets every spec constant (integers and strings) in the table at idx. */
void lpk_set_constants(lua_State *L, int idx);
void lpk_push_pagekite_event(lua_State *L, const pagekite_event *e);

/* pagekite.c (hand-written): the helpers the raw layer calls. */
/* A manager object (its C manager, NULL once freed) or nil (NULL); raises otherwise. */
pagekite_mgr lpk_arg_mgr(lua_State *L, int idx);
/* An integer that fits a C int; raises otherwise. */
int lpk_arg_int(lua_State *L, int idx);
/* A table of strings as a NULL-terminated array that lives on the Lua stack
 * until the call returns; nil gives NULL when nullable; raises otherwise. */
char **lpk_arg_strv(lua_State *L, int idx, int nullable);
/* Pushes a new manager object for m, or nil for NULL; returns 1. */
int lpk_push_mgr(lua_State *L, pagekite_mgr m);
/* After a lifecycle call (fn) on the manager object at idx returned rc:
 * keeps the object's running/freed state in step with the C manager. */
void lpk_after_call(lua_State *L, int idx, const char *fn, int rc);

#endif /* PAGEKITE_LUA_H */
