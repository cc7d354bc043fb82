#ifndef SFTPLUA_CLUA_H
#define SFTPLUA_CLUA_H
/*
 * Lua 5.4 for Swift. lua_error is a longjmp, so it is only ever called from C in
 * this file's trampoline: Swift functions called by Lua return a status (a count
 * of results, or SL_RAISE with the error value on top of the stack) and the C
 * side raises. Macros that Swift cannot import are wrapped as functions.
 */
#include <lua5.4/lua.h>
#include <lua5.4/lauxlib.h>
#include <lua5.4/lualib.h>

#define SL_RAISE (-1)

/* The chunk names of sftplua's own Lua library start so ("=[sftplua mirror.lua]"): error
   positions and tracebacks skip those frames. The one definition (LuaHost exposes it). */
#define SL_LIBRARY_CHUNK "[sftplua "

typedef int (*sl_dispatch_fn)(lua_State *L);
typedef void (*sl_release_fn)(void *object);

/* Installed once by Swift: the function every trampoline calls, and the releaser of boxed objects. */
void sl_install(sl_dispatch_fn dispatch, sl_release_fn release);

/* Pops the box userdata on top of the stack and pushes a C closure that calls the dispatcher with it as upvalue 1. */
void sl_pushtrampoline(lua_State *L);
/* New full userdata holding one retained Swift object pointer, with metatable `mt` (created if missing, with __gc releasing it). */
void sl_newbox(lua_State *L, void *object, const char *mt);
/* The object held by the box at idx if it has metatable `mt`, else NULL. Never raises. */
void *sl_testbox(lua_State *L, int idx, const char *mt);
/* Sets the __gc of metatable `mt` (creating it) to release the boxed object; leaves the metatable on the stack. */
void sl_newboxmeta(lua_State *L, const char *mt);

/* What luaL_argerror asks of the running C function, through lua_getinfo, about the call the
   user's code made (the outermost frame of sftplua's own below it: a library wrapper may have
   made the call on the user's behalf): the name it was called by (NULL when unknown: copy it at
   once), and 1 when it was called as a method (`obj:f(...)`), whose self positions do not count. */
int sl_callinfo(lua_State *L, const char **name);
/* Pops a methods table and a fallback function and pushes an __index for them: a method is a
   plain lookup in the table; any other key calls fallback(obj, key) (fields, unknown names). */
void sl_pushindex(lua_State *L);

/* Protected calls. sl_pcall_traced records where the error happened and a traceback in the registry. */
int sl_pcall(lua_State *L, int nargs, int nresults);
int sl_pcall_traced(lua_State *L, int nargs, int nresults);
/* Protected luaL_tolstring (honours __tostring); pushes the string; never raises. */
const char *sl_safe_tostring(lua_State *L, int idx, size_t *len);
/* Protected t[k] with metamethods: pushes the value; returns 0 on success. */
int sl_safe_getfield(lua_State *L, int idx, const char *k);

/* Macro wrappers */
int sl_upvalueindex(int i);
int sl_registryindex(void);
void sl_pop(lua_State *L, int n);
void sl_newtable(lua_State *L);
int sl_isnoneornil(lua_State *L, int idx);
int sl_ref(lua_State *L);
void sl_unref(lua_State *L, int ref);
void sl_getref(lua_State *L, int ref);
void sl_getregistryfield(lua_State *L, const char *k);
void sl_setregistryfield(lua_State *L, const char *k);
int sl_loadbuffer(lua_State *L, const char *buf, size_t len, const char *name);
void sl_insert(lua_State *L, int idx);
void sl_remove(lua_State *L, int idx);
lua_Integer sl_tointeger(lua_State *L, int idx, int *isnum);
lua_Number sl_tonumber(lua_State *L, int idx, int *isnum);
void sl_pushlstring(lua_State *L, const char *s, size_t len);
void sl_pushstring(lua_State *L, const char *s);
void sl_requiref(lua_State *L, const char *name, int tableidx);

/* Ctrl-C. sl_interrupt_install(L) makes SIGINT set a flag and arm a Lua hook that raises an
   error object {kind="Interrupted"} (metatable `errmeta`) at the next Lua instruction, as lua.c
   does; Swift code polls sl_interrupt_pending() in its long loops. sl_interrupt_clear() takes the
   request (returns whether there was one) and disarms the hook: the only place the flag is
   cleared, called on the thread that runs Lua (by the hook, and by Swift's Interrupt.consume). */
void sl_interrupt_install(lua_State *L, const char *errmeta);
int sl_interrupt_pending(void);
int sl_interrupt_clear(void);
/* How many requests sl_interrupt_clear has taken so far (any thread may read it). */
long sl_interrupt_taken(void);

#endif
