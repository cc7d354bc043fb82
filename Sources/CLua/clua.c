#include "clua.h"
#include <string.h>

static sl_dispatch_fn g_dispatch;
static sl_release_fn g_release;

void sl_install(sl_dispatch_fn dispatch, sl_release_fn release) {
    g_dispatch = dispatch;
    g_release = release;
}

static int sl_trampoline(lua_State *L) {
    int n = g_dispatch(L);
    if (n == SL_RAISE) return lua_error(L); /* the only place a Swift-reported error is raised */
    return n;
}

void sl_pushtrampoline(lua_State *L) { lua_pushcclosure(L, sl_trampoline, 1); }

/* A frame of sftplua's own: a trampoline, or a function of the embedded Lua library. */
static int sl_own_frame(lua_State *L, lua_Debug *ar) {
    int own;
    lua_getinfo(L, "Sf", ar);
    own = lua_tocfunction(L, -1) == sl_trampoline
       || (ar->source != NULL && ar->source[0] == '='
           && strncmp(ar->source + 1, SL_LIBRARY_CHUNK, strlen(SL_LIBRARY_CHUNK)) == 0);
    lua_pop(L, 1);
    return own;
}

int sl_callinfo(lua_State *L, const char **name) {
    lua_Debug ar;
    int entry = 0, level = 1;
    *name = NULL;
    /* The call the user's code made: the outermost of sftplua's own frames below it (a
       library wrapper such as the retry wrapper of get/put calls the trampoline on the user's
       behalf); C frames between them (pcall) are passed over. */
    for (; level < 200 && lua_getstack(L, level, &ar); level++) {
        if (sl_own_frame(L, &ar)) { entry = level; continue; }
        if (strcmp(ar.what, "C") != 0) break; /* the user's code */
    }
    if (entry + 1 != level || !lua_getstack(L, entry, &ar)) return 0; /* called from C (pcall) */
    lua_getinfo(L, "n", &ar);
    *name = ar.name;
    return ar.namewhat != NULL && strcmp(ar.namewhat, "method") == 0;
}

static int sl_index(lua_State *L) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1; /* a method */
    lua_pop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(2)); /* a field, or an unknown name */
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 1); /* a trampoline: errors are raised in its own C frame */
    return 1;
}

void sl_pushindex(lua_State *L) { lua_pushcclosure(L, sl_index, 2); }

static int sl_box_gc(lua_State *L) {
    void **slot = (void **)lua_touserdata(L, 1);
    if (slot && *slot) {
        void *object = *slot;
        *slot = NULL; /* clear before releasing: idempotent */
        g_release(object);
    }
    return 0;
}

void sl_newboxmeta(lua_State *L, const char *mt) {
    if (luaL_newmetatable(L, mt)) {
        lua_pushcfunction(L, sl_box_gc);
        lua_setfield(L, -2, "__gc");
    }
}

void sl_newbox(lua_State *L, void *object, const char *mt) {
    void **slot = (void **)lua_newuserdatauv(L, sizeof(void *), 0);
    *slot = NULL; /* a consistent (empty) box first */
    sl_newboxmeta(L, mt);
    lua_setmetatable(L, -2);
    *slot = object;
}

void *sl_testbox(lua_State *L, int idx, const char *mt) {
    void **slot = (void **)luaL_testudata(L, idx, mt);
    return slot ? *slot : NULL;
}

static int sl_msgh(lua_State *L) {
    lua_Debug ar;
    int level;
    int found = 0;
    /* Where the error happened, as the user sees it: the first frame with a line that is not
       in sftplua's own embedded Lua library ("=[sftplua ...]"), else the first frame with a line. */
    for (level = 1; level < 200 && lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (ar.currentline > 0 && !(ar.source[0] == '=' && strncmp(ar.source + 1, SL_LIBRARY_CHUNK, strlen(SL_LIBRARY_CHUNK)) == 0)) {
            lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
            found = 1;
            break;
        }
    }
    for (level = 1; !found && level < 200 && lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (ar.currentline > 0) {
            lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
            found = 1;
        }
    }
    if (!found) lua_pushliteral(L, "?");
    lua_setfield(L, LUA_REGISTRYINDEX, "sftplua.errwhere");
    luaL_traceback(L, L, NULL, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "sftplua.errtrace");
    lua_settop(L, 1);
    return 1; /* the error value itself, unchanged */
}

int sl_pcall(lua_State *L, int nargs, int nresults) { return lua_pcall(L, nargs, nresults, 0); }

int sl_pcall_traced(lua_State *L, int nargs, int nresults) {
    int base = lua_gettop(L) - nargs; /* function index */
    int status;
    lua_pushcfunction(L, sl_msgh);
    lua_insert(L, base);
    status = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    return status;
}

static int sl_tostring_k(lua_State *L) {
    luaL_tolstring(L, 1, NULL);
    return 1;
}

const char *sl_safe_tostring(lua_State *L, int idx, size_t *len) {
    idx = lua_absindex(L, idx);
    lua_pushcfunction(L, sl_tostring_k);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        lua_pushfstring(L, "(%s value)", luaL_typename(L, idx));
    }
    return lua_tolstring(L, -1, len);
}

static int sl_getfield_k(lua_State *L) {
    lua_gettable(L, 1);
    return 1;
}

int sl_safe_getfield(lua_State *L, int idx, const char *k) {
    idx = lua_absindex(L, idx);
    lua_pushcfunction(L, sl_getfield_k);
    lua_pushvalue(L, idx);
    lua_pushstring(L, k);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return 1;
    }
    return 0;
}

int sl_upvalueindex(int i) { return lua_upvalueindex(i); }
int sl_registryindex(void) { return LUA_REGISTRYINDEX; }
void sl_pop(lua_State *L, int n) { lua_pop(L, n); }
void sl_newtable(lua_State *L) { lua_newtable(L); }
int sl_isnoneornil(lua_State *L, int idx) { return lua_isnoneornil(L, idx); }
int sl_ref(lua_State *L) { return luaL_ref(L, LUA_REGISTRYINDEX); }
void sl_unref(lua_State *L, int ref) { luaL_unref(L, LUA_REGISTRYINDEX, ref); }
void sl_getref(lua_State *L, int ref) { lua_rawgeti(L, LUA_REGISTRYINDEX, ref); }
void sl_getregistryfield(lua_State *L, const char *k) { lua_getfield(L, LUA_REGISTRYINDEX, k); }
void sl_setregistryfield(lua_State *L, const char *k) { lua_setfield(L, LUA_REGISTRYINDEX, k); }
int sl_loadbuffer(lua_State *L, const char *buf, size_t len, const char *name) {
    return luaL_loadbufferx(L, buf, len, name, "t");
}
void sl_insert(lua_State *L, int idx) { lua_insert(L, idx); }
void sl_remove(lua_State *L, int idx) { lua_remove(L, idx); }
lua_Integer sl_tointeger(lua_State *L, int idx, int *isnum) { return lua_tointegerx(L, idx, isnum); }
lua_Number sl_tonumber(lua_State *L, int idx, int *isnum) { return lua_tonumberx(L, idx, isnum); }
void sl_pushlstring(lua_State *L, const char *s, size_t len) { lua_pushlstring(L, s, len); }
void sl_pushstring(lua_State *L, const char *s) { lua_pushstring(L, s); }
void sl_requiref(lua_State *L, const char *name, int tableidx) {
    /* package.loaded[name] = value at tableidx */
    tableidx = lua_absindex(L, tableidx);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushvalue(L, tableidx);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

/* Ctrl-C ------------------------------------------------------------------------------------ */
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>

/* The request. Set by the handler; read and cleared only by sl_interrupt_clear (an atomic
   exchange, so a Ctrl-C that lands while it runs is never lost), which every clear goes
   through: the hook's and Swift's (Interrupt.consume). Lock-free atomics are async-signal-safe. */
static atomic_int sl_intr_flag = 0;
/* Requests taken so far (by the hook or by Swift): a worker thread compares it with the count
   when it started, so a request the Lua thread took still stops it (SFTPCore's Interrupt). */
static atomic_long sl_intr_taken = 0;
static lua_State *sl_intr_state = NULL;
static pthread_t sl_intr_owner;
static char sl_intr_meta[64];

static void sl_intr_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    if (!sl_interrupt_clear()) return;   /* armed by a request a Swift checkpoint took first */
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "Interrupted");
    lua_setfield(L, -2, "kind");
    lua_pushliteral(L, "interrupted (Ctrl-C)");
    lua_setfield(L, -2, "message");
    luaL_setmetatable(L, sl_intr_meta);
    lua_error(L);
}

/* Runs on the thread that runs Lua: every worker thread blocks SIGINT (Pool.swift, workerThread),
   so lua_sethook never races the Lua thread's own use of the state, and a blocking call there
   (sftp.sleep's nanosleep, the REPL's read) returns EINTR. A thread we did not create that
   still takes the signal hands it on to the Lua thread (pthread_kill is async-signal-safe). */
static void sl_intr_handler(int sig) {
    if (!pthread_equal(pthread_self(), sl_intr_owner)) {
        pthread_kill(sl_intr_owner, sig);
        return;
    }
    atomic_store(&sl_intr_flag, 1);
    if (sl_intr_state) /* lua_sethook is async-signal-safe (lua.c relies on it) */
        lua_sethook(sl_intr_state, sl_intr_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

void sl_interrupt_install(lua_State *L, const char *errmeta) {
    struct sigaction sa;
    sl_intr_state = L;
    sl_intr_owner = pthread_self();
    strncpy(sl_intr_meta, errmeta, sizeof sl_intr_meta - 1);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sl_intr_handler;
    sa.sa_flags = 0;   /* no SA_RESTART: a read or a sleep on the Lua thread returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    /* A parent may have left SIGINT blocked (the mask is inherited across exec). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

int sl_interrupt_pending(void) { return atomic_load(&sl_intr_flag) != 0; }

int sl_interrupt_clear(void) {
    /* Disarm first, then take the flag: a signal in between re-arms the hook, which then finds
       the flag taken and only disarms (above); a signal after the exchange stays pending. */
    if (sl_intr_state) lua_sethook(sl_intr_state, NULL, 0, 0);
    int had = atomic_exchange(&sl_intr_flag, 0);
    if (had) atomic_fetch_add(&sl_intr_taken, 1);
    return had;
}

long sl_interrupt_taken(void) { return atomic_load(&sl_intr_taken); }
