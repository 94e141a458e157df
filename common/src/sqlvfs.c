/* sqlvfs.c: the write-gathering SQLite VFS. See atp/sqlvfs.h.
 *
 * A WAL file gets a wrapper (struct vfile) holding the default VFS's file right after it; every
 * other file is opened in place as the default VFS's own object. A wrapper keeps one pending
 * run: bytes [off, off + len) not yet written, always contiguous.
 *
 * When a WAL run is written out: a commit frame is the last thing a commit writes before it
 * publishes the frames (synced or not), and its 24-byte frame header says so (bytes 4..7, the
 * database size after the commit, are non-zero only there: the WAL format is fixed since SQLite
 * 3.7.0). So the run is written right after the page that follows a commit frame's header, in
 * that same xWrite call, whose result reports any error to SQLite as the commit's own write
 * error. Everything else that could observe the file (sync, read, size, truncate, file controls,
 * close) writes the run first as well.
 */
#include "atp/sqlvfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "atp/buf.h"

#define FRAME_HEADER 24
#define RUN_FIRST    (64 * 1024)
#define RUN_RETAIN   (128 * 1024) /* a thread keeps a spare run buffer up to this size */

typedef struct vfile {
    sqlite3_file base; /* base.pMethods = &wal_methods */
    sqlite3_file *real;
    bool commit_next; /* the next write ends a commit frame */
    uint8_t *buf;
    size_t len, cap;
    sqlite3_int64 off;
} vfile;

static sqlite3_vfs g_vfs;
static sqlite3_vfs *g_parent;
static atomic_ullong g_runs, g_absorbed;

/* ---- run buffers: one spare per thread, freed with the thread ---- */

static pthread_key_t spare_key;

static void spare_free(void *p)
{
    free(p);
}

/* A buffer of at least `need` bytes (RUN_FIRST or more), the thread's spare if big enough. */
static uint8_t *buf_take(size_t need, size_t *cap)
{
    uint8_t *spare = pthread_getspecific(spare_key);
    size_t spare_cap = spare ? *(size_t *)spare : 0;
    if (spare && spare_cap >= need) {
        (void)pthread_setspecific(spare_key, NULL);
        *cap = spare_cap;
        return spare + sizeof(size_t);
    }
    size_t c = RUN_FIRST;
    while (c < need) {
        c *= 2;
    }
    uint8_t *p = atp_xmalloc(sizeof(size_t) + c);
    *(size_t *)p = c;
    *cap = c;
    return p + sizeof(size_t);
}

/* Gives a buffer back: kept as the thread's spare if small enough and none is kept yet. */
static void buf_give(uint8_t *buf)
{
    uint8_t *p = buf - sizeof(size_t);
    if (*(size_t *)p <= RUN_RETAIN && !pthread_getspecific(spare_key)) {
        (void)pthread_setspecific(spare_key, p);
        return;
    }
    free(p);
}

/* ---- the pending run ---- */

/* Writes the pending run, if any, and gives its buffer back. */
static int run_flush(vfile *f)
{
    if (f->len == 0) {
        return SQLITE_OK;
    }
    int rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->len, f->off);
    atomic_fetch_add_explicit(&g_runs, 1, memory_order_relaxed);
    f->len = 0;
    buf_give(f->buf);
    f->buf = NULL;
    f->cap = 0;
    return rc;
}

/* Adds a write to the run (flushing first when it does not extend the run or would pass
 * ATP_SQLVFS_RUN_MAX); a write as large as the maximum goes straight through. */
static int run_add(vfile *f, const void *data, int n, sqlite3_int64 at)
{
    size_t amt = (size_t)n;
    if (f->len > 0 && (at != f->off + (sqlite3_int64)f->len || f->len + amt > ATP_SQLVFS_RUN_MAX)) {
        int rc = run_flush(f);
        if (rc != SQLITE_OK) {
            return rc;
        }
    }
    if (amt >= ATP_SQLVFS_RUN_MAX) {
        return f->real->pMethods->xWrite(f->real, data, n, at);
    }
    if (f->len == 0) {
        f->off = at;
    } else {
        atomic_fetch_add_explicit(&g_absorbed, 1, memory_order_relaxed);
    }
    if (f->len + amt > f->cap) {
        size_t cap;
        uint8_t *nb = buf_take(f->len + amt, &cap);
        if (f->len > 0) {
            memcpy(nb, f->buf, f->len);
        }
        if (f->buf) {
            buf_give(f->buf);
        }
        f->buf = nb;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, data, amt);
    f->len += amt;
    return SQLITE_OK;
}

/* ---- methods: each writes the run out before the default VFS's file sees the call ---- */

static vfile *vf(sqlite3_file *p)
{
    return (vfile *)p;
}

static int m_close(sqlite3_file *p)
{
    vfile *f = vf(p);
    int rc = run_flush(f);
    int rc2 = f->real->pMethods->xClose(f->real);
    return rc != SQLITE_OK ? rc : rc2;
}

static int m_read(sqlite3_file *p, void *out, int n, sqlite3_int64 at)
{
    vfile *f = vf(p);
    int rc = run_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, out, n, at);
}

static int m_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    vfile *f = vf(p);
    int rc = run_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int m_sync(sqlite3_file *p, int flags)
{
    vfile *f = vf(p);
    int rc = run_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int m_size(sqlite3_file *p, sqlite3_int64 *out)
{
    vfile *f = vf(p);
    int rc = run_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, out);
}

static int m_lock(sqlite3_file *p, int level)
{
    vfile *f = vf(p);
    int rc = run_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xLock(f->real, level);
}

static int m_unlock(sqlite3_file *p, int level)
{
    vfile *f = vf(p);
    int rc = run_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xUnlock(f->real, level);
}

static int m_reserved(sqlite3_file *p, int *out)
{
    return vf(p)->real->pMethods->xCheckReservedLock(vf(p)->real, out);
}

static int m_sector(sqlite3_file *p)
{
    return vf(p)->real->pMethods->xSectorSize(vf(p)->real);
}

static int m_caps(sqlite3_file *p)
{
    return vf(p)->real->pMethods->xDeviceCharacteristics(vf(p)->real);
}

static int m_shm_map(sqlite3_file *p, int pg, int pgsz, int extend, void volatile **out)
{
    vfile *f = vf(p);
    int rc = run_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, out);
}

static int m_shm_lock(sqlite3_file *p, int ofs, int n, int flags)
{
    vfile *f = vf(p);
    int rc = run_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xShmLock(f->real, ofs, n, flags);
}

static void m_shm_barrier(sqlite3_file *p)
{
    vf(p)->real->pMethods->xShmBarrier(vf(p)->real);
}

static int m_shm_unmap(sqlite3_file *p, int del)
{
    vfile *f = vf(p);
    int rc = run_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xShmUnmap(f->real, del);
}

static int m_fetch(sqlite3_file *p, sqlite3_int64 at, int n, void **out)
{
    vfile *f = vf(p);
    int rc = run_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch(f->real, at, n, out);
}

static int m_unfetch(sqlite3_file *p, sqlite3_int64 at, void *ptr)
{
    return vf(p)->real->pMethods->xUnfetch(vf(p)->real, at, ptr);
}

static int wal_write(sqlite3_file *p, const void *data, int n, sqlite3_int64 at)
{
    vfile *f = vf(p);
    bool ends_commit = f->commit_next;
    f->commit_next = false;
    int rc = run_add(f, data, n, at);
    if (rc != SQLITE_OK) {
        return rc;
    }
    if (ends_commit) {
        return run_flush(f);
    }
    if (n == FRAME_HEADER) {
        const uint8_t *h = data;
        f->commit_next = (h[4] | h[5] | h[6] | h[7]) != 0;
    }
    return SQLITE_OK;
}

static int wal_fcntl(sqlite3_file *p, int op, void *arg)
{
    vfile *f = vf(p);
    int rc = run_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static const sqlite3_io_methods wal_methods = {
    3,          m_close,       m_read,      wal_write, m_truncate, m_sync, m_size,
    m_lock,     m_unlock,      m_reserved,  wal_fcntl, m_sector,   m_caps, m_shm_map,
    m_shm_lock, m_shm_barrier, m_shm_unmap, m_fetch,   m_unfetch,
};

/* ---- the VFS ---- */

static size_t real_offset(void)
{
    return (sizeof(vfile) + 15) & ~(size_t)15;
}

static int v_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                  int *out_flags)
{
    (void)vfs;
    if (!(flags & SQLITE_OPEN_WAL)) {
        return g_parent->xOpen(g_parent, name, file, flags, out_flags);
    }
    vfile *f = (vfile *)file;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)((uint8_t *)file + real_offset());
    int rc = g_parent->xOpen(g_parent, name, f->real, flags, out_flags);
    /* Version 3 methods are passed through: a default VFS with fewer is used as it is. */
    if (rc != SQLITE_OK || !f->real->pMethods || f->real->pMethods->iVersion < 3) {
        if (rc == SQLITE_OK && f->real->pMethods) {
            (void)f->real->pMethods->xClose(f->real);
            rc = g_parent->xOpen(g_parent, name, file, flags, out_flags);
        }
        return rc;
    }
    f->base.pMethods = &wal_methods;
    return SQLITE_OK;
}

/* Everything but xOpen is the default VFS's own. */
#define PARENT_CALL(fn, ...) g_parent->fn(g_parent, __VA_ARGS__)

static int v_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    (void)v;
    return PARENT_CALL(xDelete, name, sync_dir);
}

static int v_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    (void)v;
    return PARENT_CALL(xAccess, name, flags, out);
}

static int v_fullpath(sqlite3_vfs *v, const char *name, int n, char *out)
{
    (void)v;
    return PARENT_CALL(xFullPathname, name, n, out);
}

static void *v_dlopen(sqlite3_vfs *v, const char *name)
{
    (void)v;
    return PARENT_CALL(xDlOpen, name);
}

static void v_dlerror(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    PARENT_CALL(xDlError, n, out);
}

static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    (void)v;
    return PARENT_CALL(xDlSym, h, sym);
}

static void v_dlclose(sqlite3_vfs *v, void *h)
{
    (void)v;
    PARENT_CALL(xDlClose, h);
}

static int v_random(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return PARENT_CALL(xRandomness, n, out);
}

static int v_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return PARENT_CALL(xSleep, us);
}

static int v_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return PARENT_CALL(xCurrentTime, out);
}

static int v_lasterr(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return g_parent->xGetLastError ? PARENT_CALL(xGetLastError, n, out) : 0;
}

static int v_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    return PARENT_CALL(xCurrentTimeInt64, out);
}

static int g_register_rc = SQLITE_OK;

static void register_once(void)
{
    g_parent = sqlite3_vfs_find(NULL);
    if (!g_parent || g_parent->iVersion < 2 || pthread_key_create(&spare_key, spare_free) != 0) {
        g_register_rc = SQLITE_ERROR;
        return;
    }
    size_t sz = real_offset() + (size_t)g_parent->szOsFile;
    g_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sz,
        .mxPathname = g_parent->mxPathname,
        .zName = ATP_SQLVFS_NAME,
        .xOpen = v_open,
        .xDelete = v_delete,
        .xAccess = v_access,
        .xFullPathname = v_fullpath,
        .xDlOpen = v_dlopen,
        .xDlError = v_dlerror,
        .xDlSym = v_dlsym,
        .xDlClose = v_dlclose,
        .xRandomness = v_random,
        .xSleep = v_sleep,
        .xCurrentTime = v_time,
        .xGetLastError = v_lasterr,
        .xCurrentTimeInt64 = v_time64,
    };
    g_register_rc = sqlite3_vfs_register(&g_vfs, 0);
}

int atp_sqlvfs_register(bool make_default, atp_err *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_once(&once, register_once);
    pthread_mutex_lock(&mu);
    int rc = g_register_rc;
    if (rc == SQLITE_OK && make_default) {
        rc = sqlite3_vfs_register(&g_vfs, 1);
    }
    pthread_mutex_unlock(&mu);
    if (rc != SQLITE_OK) {
        return atp_err_set(err, ATP_EIO, 0, "sqlite: cannot register the %s VFS", ATP_SQLVFS_NAME);
    }
    return 0;
}

void atp_sqlvfs_get_stats(atp_sqlvfs_stats *out)
{
    out->runs = atomic_load_explicit(&g_runs, memory_order_relaxed);
    out->absorbed = atomic_load_explicit(&g_absorbed, memory_order_relaxed);
}
