/* pds/src/actor_store.c: per-account SQLite files, their LRU of open handles, and the
 * transactional record write path (see actor_store.h). */
#include "actor_store.h"
#include "actor_store_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "atp/blockstore_sqlite.h"
#include "atp/car.h"
#include "atp/log.h"
#include "atp/sha256.h"
#include "atp/sqlwal.h"
#include "atp/syntax.h"
#include "atp/tid.h"
#include "bgthread.h"
#include "clock.h"
#include "pending.h"
#include "sqlx.h"

#define FLUSH_WAIT_MS   10000 /* longest wait for a commit's event to be sequenced */
#define CKPT_FRAMES     1000  /* the flusher checkpoints an account's WAL past this */
#define CKPT_LIMIT      20000 /* past this a flush checkpoints itself (the flusher fell behind) */
/* How often the flusher fsyncs an account's WAL. Not on every round: each fsync is a device
 * flush, which the sequencer's own fsync (the one every write waits for) would queue behind.
 * Only the redo after a crash gets longer (it starts at the oldest unsynced commit). */
#define SYNC_EVERY_MS 1000

/* flush_locked's flags */
enum {
    FL_WAIT = 1 << 0,    /* first wait until every pending commit is sequenced */
    FL_DURABLE = 1 << 1, /* a FULL commit: durable on return (else the flusher fsyncs later) */
};

#define PDS_STMT_CACHE 24

typedef struct pds_actor {
    char *did;
    sqlite3 *db;
    atp_blockstore *bs; /* the file's blocks */
    atp_repo *repo;     /* NULL until the account's first commit; over pend's store view */
    pds_pending pend;   /* commits applied but not yet in the file (pending.h) */
    atp_sqlwal wal;     /* its WAL's size (checkpoints are the flusher's, off the lock) */
    /* seqs of commits written with a NORMAL commit whose WAL is not fsynced yet, and of those
     * whose fsync is under way: the flush watermark must not pass them */
    int64_t unsynced_min, syncing_min;
    int64_t synced_at; /* monotonic ms of the last fsync of its WAL (the flusher's) */
    pthread_mutex_t lock;
    unsigned refs; /* guarded by the store's lock */
    uint64_t used;
    bool dirty; /* pending commits for the flusher (store lock) */
    struct pds_actor *next;
    /* prepared statements, keyed by their SQL literal's address (one per call site) */
    const char *stmt_sql[PDS_STMT_CACHE];
    sqlite3_stmt *stmt[PDS_STMT_CACHE];
} pds_actor;

struct pds_actor_store {
    char *dir;
    size_t max_open;
    const atp_lexicon *lex;
    pds_commit_hook hook;
    pds_commit_done done;
    void *hook_ctx;
    pthread_mutex_t lock;
    pds_actor *list;
    size_t n_open;
    uint64_t tick;
    atomic_ullong n_commits, n_txns, n_flushed;
    /* the flusher thread: writes sequenced commits into their files every flush_ms */
    unsigned flush_ms;
    pthread_t flusher;
    pthread_cond_t fcv;
    bool flusher_on, stop;
};

/* The account tables besides repo_block (which the block store creates). CIDs are stored in
 * binary (compact; never parsed back from text). */
static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS repo_root (did TEXT PRIMARY KEY, cid BLOB NOT NULL,"
    " rev TEXT NOT NULL, indexedAt TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS record (uri TEXT PRIMARY KEY, cid BLOB NOT NULL,"
    " collection TEXT NOT NULL, rkey TEXT NOT NULL, repoRev TEXT NOT NULL,"
    " indexedAt TEXT NOT NULL, takedownRef TEXT);"
    "CREATE UNIQUE INDEX IF NOT EXISTS record_collection_rkey ON record (collection, rkey);"
    /* "does any record still use this CID?" when a commit may have orphaned a record block */
    "CREATE INDEX IF NOT EXISTS record_cid ON record (cid);"
    "CREATE TABLE IF NOT EXISTS blob (cid BLOB PRIMARY KEY, mimeType TEXT NOT NULL,"
    " size INTEGER NOT NULL, temp INTEGER NOT NULL, createdAt TEXT NOT NULL,"
    " takedownRef TEXT);"
    "CREATE TABLE IF NOT EXISTS record_blob (blobCid BLOB NOT NULL, recordUri TEXT NOT NULL,"
    " PRIMARY KEY (blobCid, recordUri)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS record_blob_uri ON record_blob (recordUri);"
    /* events made in this file's transactions, waiting for the service-wide sequence
     * (sequencer.h): written by the commit hook, moved and deleted by the sequencer */
    "CREATE TABLE IF NOT EXISTS seq_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " eventType TEXT NOT NULL, event BLOB NOT NULL, createdAt TEXT NOT NULL);";

/* ---- small helpers ---- */

/* Returns a cached statement to its idle state (NULL is a no-op). */
static void stmt_release(sqlite3_stmt *st)
{
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

static void set_name(const char **errname, const char *name)
{
    if (errname) {
        *errname = name;
    }
}

/* The account's prepared statement for `sql` (a string literal: its address is the key), made
 * once per open handle: re-preparing cost more than a write's SQL itself. Release it with
 * stmt_release, never finalize it. */
static int db_prep(pds_actor *act, const char *sql, sqlite3_stmt **st, atp_err *err)
{
    size_t i = 0;
    while (i < PDS_STMT_CACHE && act->stmt_sql[i] && act->stmt_sql[i] != sql) {
        i++;
    }
    if (i == PDS_STMT_CACHE) {
        return atp_err_set(err, ATP_EINTERNAL, 0, "statement cache full");
    }
    if (!act->stmt_sql[i]) {
        if (sqlite3_prepare_v3(act->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &act->stmt[i], NULL) !=
            SQLITE_OK) {
            return pds_sqlx_fail(act->db, err, "sqlite prepare");
        }
        act->stmt_sql[i] = sql;
    }
    *st = act->stmt[i];
    return 0;
}

/* Runs one cached statement that returns no row: the transaction control of every write
 * (BEGIN, SAVEPOINT, COMMIT...), which sqlite3_exec would parse again each time. */
static int db_run(pds_actor *act, const char *sql, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prep(act, sql, &st, err);
    if (rc != 0) {
        return rc;
    }
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    return step == SQLITE_DONE ? 0 : pds_sqlx_fail(act->db, err, sql);
}

/* Hands what the commit hook staged to the done callback, once the outcome is known; seq_out
 * (nullable): where the sequencer stores the event's seq (a commit the file does not hold yet). */
static void staged_end(pds_actor_store *s, pds_actor *act, void **staged, bool durable,
                       _Atomic int64_t *seq_out)
{
    if (*staged && s->done) {
        s->done(s->hook_ctx, atp_slice_str(act->did), *staged, durable, seq_out);
    }
    *staged = NULL;
}

/* ---- paths ---- */

int pds_actor_store_path(const pds_actor_store *s, atp_slice did, char *out, size_t cap,
                         atp_err *err)
{
    /* A DID has no '/', so it is one safe path component (it starts with "did:"). */
    if (atp_syntax_check_did(did, err) != 0 || memchr(did.ptr, '/', did.len)) {
        return atp_err_set(err, ATP_EINVAL, 0, "invalid DID");
    }
    uint8_t h[ATP_SHA256_LEN];
    atp_sha256(did, h);
    int n = snprintf(out, cap, "%s/%02x/%.*s/store.sqlite", s->dir, h[0], (int)did.len,
                     (const char *)did.ptr);
    if (n < 0 || (size_t)n >= cap) {
        return atp_err_set(err, ATP_ELIMIT, 0, "path too long");
    }
    return 0;
}

bool pds_actor_store_exists(const pds_actor_store *s, atp_slice did)
{
    char path[4096];
    struct stat st;
    if (pds_actor_store_path(s, did, path, sizeof path, NULL) != 0) {
        return false;
    }
    return stat(path, &st) == 0;
}

/* ---- opening an account file ---- */

static void actor_close(pds_actor *act)
{
    for (size_t i = 0; i < PDS_STMT_CACHE && act->stmt_sql[i]; i++) {
        sqlite3_finalize(act->stmt[i]);
    }
    atp_repo_destroy(act->repo);
    pds_pending_release(&act->pend);
    atp_blockstore_destroy(act->bs);
    if (act->db) {
        sqlite3_close(act->db);
    }
    pthread_mutex_destroy(&act->lock);
    free(act->did);
    free(act);
}

/* Reads repo_root and opens the repo handle at that head (no root: no handle). */
static int actor_load_root(pds_actor *act, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prep(act, "SELECT cid FROM repo_root LIMIT 1", &st, err);
    if (rc != 0) {
        return rc;
    }
    atp_cid head;
    int step = sqlite3_step(st);
    bool have = step == SQLITE_ROW && pds_sqlx_column_cid(st, 0, &head) == 0;
    stmt_release(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        return pds_sqlx_fail(act->db, err, "read repo_root");
    }
    if (!have) {
        return step == SQLITE_ROW ? atp_err_set(err, ATP_EIO, 0, "bad repo_root row") : 0;
    }
    return atp_repo_open(pds_pending_store(&act->pend), &head, NULL, NULL, &act->repo, err);
}

static int actor_open(pds_actor_store *s, atp_slice did, bool create, pds_actor **out, atp_err *err)
{
    char path[4096];
    int rc = pds_actor_store_path(s, did, path, sizeof path, err);
    if (rc != 0) {
        return rc;
    }
    if (!create && !pds_actor_store_exists(s, did)) {
        return atp_err_set(err, ATP_ENOTFOUND, 0, "Could not find repo for DID: %.*s", (int)did.len,
                           (const char *)did.ptr);
    }
    if (create) {
        char *slash = strrchr(path, '/');
        *slash = '\0';
        rc = pds_sqlx_mkdir_p(path, 0700, err);
        *slash = '/';
        if (rc != 0) {
            return rc;
        }
    }
    pds_actor *act = atp_xcalloc(1, sizeof *act);
    act->did = atp_xstrndup((const char *)did.ptr, did.len);
    pthread_mutex_init(&act->lock, NULL);
    rc = atp_blockstore_sqlite_open_file(path, 0, &act->db, err);
    rc = rc ? rc : pds_sqlx_exec(act->db, SCHEMA, err);
    rc = rc ? rc : atp_blockstore_sqlite_create(act->db, &act->bs, err);
    if (rc == 0) {
        pds_pending_init(&act->pend, act->bs);
        act->unsynced_min = act->syncing_min = INT64_MAX;
        atp_sqlwal_watch(act->db, &act->wal, CKPT_LIMIT);
    }
    rc = rc ? rc : actor_load_root(act, err);
    if (rc != 0) {
        actor_close(act);
        return rc;
    }
    *out = act;
    return 0;
}

static int flush_locked(pds_actor_store *s, pds_actor *act, unsigned flags, atp_err *err);
static int sync_wal(const pds_actor_store *s, const char *did, atp_err *err);

/* ---- the LRU ---- */

/* A handle nobody uses (every lock holder holds a reference) and whose pending commits, if
 * any, are all sequenced, so they can be written out before it closes. Store lock held. */
static bool evictable(const pds_actor *act)
{
    return act->refs == 0 && pds_pending_ready(&act->pend) == act->pend.n;
}

/* Closes least recently used idle handles while more than max_open are open, writing their
 * pending commits out first. Store lock held. */
static void lru_evict(pds_actor_store *s)
{
    while (s->n_open > s->max_open) {
        pds_actor **victim = NULL;
        for (pds_actor **pp = &s->list; *pp; pp = &(*pp)->next) {
            if (evictable(*pp) && (!victim || (*pp)->used < (*victim)->used)) {
                victim = pp;
            }
        }
        if (!victim) {
            return; /* everything is busy: over the bound until released */
        }
        pds_actor *act = *victim;
        if (act->pend.n > 0) {
            pthread_mutex_lock(&act->lock);
            int rc = flush_locked(s, act, FL_DURABLE, NULL);
            pthread_mutex_unlock(&act->lock);
            if (rc != 0) {
                return; /* kept open: the flusher tries again */
            }
        }
        *victim = act->next;
        s->n_open--;
        actor_close(act);
    }
}

static pds_actor *lru_find(pds_actor_store *s, atp_slice did)
{
    for (pds_actor *act = s->list; act; act = act->next) {
        if (atp_slice_eq_str(did, act->did)) {
            return act;
        }
    }
    return NULL;
}

/* The account's handle, referenced (not locked). Opening happens under the store lock, so two
 * threads never open the same file twice. */
static int actor_ref(pds_actor_store *s, atp_slice did, bool create, pds_actor **out, atp_err *err)
{
    pthread_mutex_lock(&s->lock);
    pds_actor *act = lru_find(s, did);
    if (!act) {
        int rc = actor_open(s, did, create, &act, err);
        if (rc != 0) {
            pthread_mutex_unlock(&s->lock);
            return rc;
        }
        act->next = s->list;
        s->list = act;
        s->n_open++;
    }
    act->refs++;
    act->used = ++s->tick;
    lru_evict(s);
    pthread_mutex_unlock(&s->lock);
    *out = act;
    return 0;
}

/* Drops a reference; `dirty`: the caller left pending commits for the flusher. */
static void actor_unref_dirty(pds_actor_store *s, pds_actor *act, bool dirty)
{
    pthread_mutex_lock(&s->lock);
    act->refs--;
    act->dirty = act->dirty || dirty;
    lru_evict(s);
    pthread_mutex_unlock(&s->lock);
}

static void actor_unref(pds_actor_store *s, pds_actor *act)
{
    actor_unref_dirty(s, act, false);
}

/* The account's handle, referenced and locked, its file holding every sequenced commit (a
 * read sees what was acknowledged). A failure to write them is logged and the read goes on. */
static int actor_acquire(pds_actor_store *s, atp_slice did, bool create, pds_actor **out,
                         atp_err *err)
{
    int rc = actor_ref(s, did, create, out, err);
    if (rc == 0) {
        pthread_mutex_lock(&(*out)->lock);
        (void)flush_locked(s, *out, 0, NULL);
    }
    return rc;
}

static void actor_release(pds_actor_store *s, pds_actor *act)
{
    pthread_mutex_unlock(&act->lock);
    actor_unref(s, act);
}

/* Acquires an account that must have a repo. */
static int actor_acquire_repo(pds_actor_store *s, atp_slice did, pds_actor **out,
                              const char **errname, atp_err *err)
{
    int rc = actor_acquire(s, did, false, out, err);
    if (rc == 0 && !(*out)->repo) {
        actor_release(s, *out);
        rc = atp_err_set(err, ATP_ENOTFOUND, 0, "Could not find repo for DID: %.*s", (int)did.len,
                         (const char *)did.ptr);
    }
    if (rc == ATP_ENOTFOUND) {
        set_name(errname, "RepoNotFound");
    }
    return rc;
}

/* ---- extension access (actor_store_int.h) ---- */

int pds_actor_store_with(pds_actor_store *s, atp_slice did, bool create, pds_actor_view_fn fn,
                         void *ctx, atp_err *err)
{
    pds_actor *act;
    int rc = actor_acquire(s, did, create, &act, err);
    if (rc != 0) {
        return rc;
    }
    /* the view works on the file: it must hold the whole in-memory state */
    rc = flush_locked(s, act, FL_WAIT | FL_DURABLE, err);
    if (rc != 0) {
        actor_release(s, act);
        return rc;
    }
    pds_actor_view v = {atp_slice_str(act->did), act->db, act->bs, act->repo, act};
    rc = fn(ctx, &v, err);
    act->repo = v.repo; /* a reload handed over a new handle */
    actor_release(s, act);
    return rc;
}

int pds_actor_view_reload(pds_actor_view *v, atp_err *err)
{
    pds_actor *act = v->priv;
    atp_repo_destroy(act->repo);
    act->repo = NULL;
    int rc = actor_load_root(act, err);
    v->repo = act->repo;
    return rc;
}

void pds_actor_store_hook(const pds_actor_store *s, pds_commit_hook *hook, void **hook_ctx)
{
    *hook = s->hook;
    *hook_ctx = s->hook_ctx;
}

int pds_actor_store_forget(pds_actor_store *s, atp_slice did)
{
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    for (pds_actor **pp = &s->list; *pp; pp = &(*pp)->next) {
        pds_actor *act = *pp;
        if (!atp_slice_eq_str(did, act->did)) {
            continue;
        }
        if (act->refs > 0) {
            rc = ATP_ECONFLICT;
        } else {
            *pp = act->next;
            s->n_open--;
            actor_close(act);
        }
        break;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- the flusher ---- */

/* The open handles, referenced (store lock held); *n of them. `dirty_only`: only those the
 * flusher must visit, their flags cleared. */
static pds_actor **take_handles(pds_actor_store *s, bool dirty_only, size_t *n)
{
    size_t k = 0, cap = 0;
    pds_actor **v = NULL;
    for (pds_actor *act = s->list; act; act = act->next) {
        if (dirty_only && !act->dirty) {
            continue;
        }
        if (k == cap) {
            cap = cap ? cap * 2 : 16;
            v = atp_xrealloc(v, cap * sizeof *v);
        }
        act->dirty = dirty_only ? false : act->dirty;
        act->refs++;
        v[k++] = act;
    }
    *n = k;
    return v;
}

/* One account's share of a round: its sequenced commits written (NORMAL commit, under its
 * lock), then (at most every SYNC_EVERY_MS) its WAL fsynced and, when large, checkpointed
 * from a connection of our own, both without its lock, so its writers never wait for the disk.
 * Returns whether it still needs the flusher (commits not sequenced yet, or a failure). */
static bool flush_one(pds_actor_store *s, pds_actor *act)
{
    pthread_mutex_lock(&act->lock);
    (void)flush_locked(s, act, 0, NULL);
    int64_t now = pds_mono_ms(), syncing = INT64_MAX;
    if (now - act->synced_at >= SYNC_EVERY_MS) {
        syncing = act->unsynced_min;
        act->syncing_min = syncing;
        act->unsynced_min = INT64_MAX;
        act->synced_at = now;
    }
    bool ckpt = atp_sqlwal_frames(&act->wal) >= CKPT_FRAMES;
    pthread_mutex_unlock(&act->lock);
    atp_err err;
    bool synced = syncing == INT64_MAX || sync_wal(s, act->did, &err) == 0;
    if (!synced) {
        atp_logf(ATP_LOG_ERROR, "actors", "%s", err.msg);
    }
    char path[4096];
    if (ckpt && (pds_actor_store_path(s, atp_slice_str(act->did), path, sizeof path, &err) != 0 ||
                 atp_sqlwal_checkpoint_file(path, &err) != 0)) {
        atp_logf(ATP_LOG_WARN, "actors", "checkpoint: %s", err.msg);
    }
    pthread_mutex_lock(&act->lock);
    if (!synced && syncing < act->unsynced_min) {
        act->unsynced_min = syncing;
    }
    act->syncing_min = INT64_MAX;
    bool left = act->pend.n > 0 || act->unsynced_min != INT64_MAX;
    pthread_mutex_unlock(&act->lock);
    return left;
}

/* One round over every dirty account. */
static void flush_round(pds_actor_store *s)
{
    size_t n;
    pthread_mutex_lock(&s->lock);
    pds_actor **v = take_handles(s, true, &n);
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        actor_unref_dirty(s, v[i], flush_one(s, v[i]));
    }
    free(v);
}

static void *flusher_main(void *arg)
{
    pds_actor_store *s = arg;
    pds_thread_background();
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        struct timespec until = pds_deadline_ms(s->flush_ms);
        (void)pthread_cond_timedwait(&s->fcv, &s->lock, &until);
        if (!s->stop) {
            pthread_mutex_unlock(&s->lock);
            flush_round(s);
            pthread_mutex_lock(&s->lock);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int pds_actor_store_flush(pds_actor_store *s, atp_slice did, atp_err *err)
{
    pds_actor *act;
    int rc = actor_ref(s, did, false, &act, err);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&act->lock);
    rc = flush_locked(s, act, 0, err);
    actor_release(s, act);
    return rc;
}

int pds_actor_store_flush_all(pds_actor_store *s, atp_err *err)
{
    size_t n = 0;
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    pds_actor **v = take_handles(s, false, &n);
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&v[i]->lock);
        int r = flush_locked(s, v[i], FL_WAIT | FL_DURABLE, err);
        rc = rc ? rc : r;
        pthread_mutex_unlock(&v[i]->lock);
        actor_unref(s, v[i]);
    }
    free(v);
    return rc;
}

int64_t pds_actor_store_min_unflushed(pds_actor_store *s)
{
    int64_t min = INT64_MAX;
    size_t n = 0;
    pthread_mutex_lock(&s->lock); /* referenced, then locked one by one without the store lock */
    pds_actor **v = take_handles(s, false, &n);
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&v[i]->lock);
        int64_t m = pds_pending_min_seq(&v[i]->pend);
        m = v[i]->unsynced_min < m ? v[i]->unsynced_min : m;
        m = v[i]->syncing_min < m ? v[i]->syncing_min : m;
        pthread_mutex_unlock(&v[i]->lock);
        min = m < min ? m : min;
        actor_unref(s, v[i]);
    }
    free(v);
    return min;
}

/* ---- store lifecycle ---- */

int pds_actor_store_open(const pds_actor_store_opts *opts, pds_actor_store **out, atp_err *err)
{
    if (!opts || !opts->dir || !opts->dir[0]) {
        return atp_err_set(err, ATP_EINVAL, 0, "no actor store directory");
    }
    int rc = pds_sqlx_mkdir_p(opts->dir, 0700, err);
    if (rc != 0) {
        return rc;
    }
    pds_actor_store *s = atp_xcalloc(1, sizeof *s);
    s->dir = atp_xstrndup(opts->dir, strlen(opts->dir));
    s->max_open = opts->max_open ? opts->max_open : PDS_ACTOR_MAX_OPEN_DEFAULT;
    s->lex = opts->lex;
    s->hook = opts->hook;
    s->done = opts->done;
    s->hook_ctx = opts->hook_ctx;
    s->flush_ms = opts->flush_ms ? opts->flush_ms : PDS_ACTOR_FLUSH_MS_DEFAULT;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->fcv, NULL);
    s->flusher_on = pthread_create(&s->flusher, NULL, flusher_main, s) == 0;
    if (!s->flusher_on) {
        pds_actor_store_destroy(s);
        return atp_err_set(err, ATP_EIO, 0, "actor store flusher thread");
    }
    *out = s;
    return 0;
}

void pds_actor_store_destroy(pds_actor_store *s)
{
    if (!s) {
        return;
    }
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->fcv);
    pthread_mutex_unlock(&s->lock);
    if (s->flusher_on) {
        pthread_join(s->flusher, NULL);
    }
    while (s->list) {
        pds_actor *act = s->list;
        s->list = act->next;
        /* what is sequenced goes to the file; anything else was never acknowledged */
        (void)flush_locked(s, act, FL_DURABLE, NULL);
        if (act->pend.n > 0) {
            atp_logf(ATP_LOG_WARN, "actors", "%zu unsequenced commits of %s dropped at close",
                     act->pend.n, act->did);
        }
        actor_close(act);
    }
    pthread_cond_destroy(&s->fcv);
    pthread_mutex_destroy(&s->lock);
    free(s->dir);
    free(s);
}

size_t pds_actor_store_open_count(pds_actor_store *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->n_open;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- the write transaction ---- */

static int root_update(pds_actor *act, const atp_repo_commit *c, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int rc = db_prep(act,
                     "INSERT INTO repo_root (did, cid, rev, indexedAt) VALUES (?1, ?2, ?3, ?4)"
                     " ON CONFLICT (did) DO UPDATE SET cid = ?2, rev = ?3, indexedAt = ?4",
                     &st, err);
    if (rc != 0) {
        return rc;
    }
    pds_sqlx_time_now(now);
    sqlite3_bind_text(st, 1, act->did, -1, SQLITE_STATIC);
    pds_sqlx_bind_cid(st, 2, &c->cid);
    sqlite3_bind_text(st, 3, c->rev, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
    return pds_sqlx_step_done(act->db, st, err);
}

/* Drops the blob links of a record; blobs left without any link go back to temporary, so that
 * the blob garbage collector (blob slice) deletes them after its grace period. */
static int blobs_unlink(pds_actor *act, atp_slice uri, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prep(act, "DELETE FROM record_blob WHERE recordUri = ?1", &st, err);
    if (rc != 0) {
        return rc;
    }
    pds_sqlx_bind_slice(st, 1, uri);
    rc = pds_sqlx_step_done(act->db, st, err);
    if (rc != 0) {
        return rc;
    }
    return pds_sqlx_exec(act->db,
                         "UPDATE blob SET temp = 1 WHERE temp = 0 AND NOT EXISTS"
                         " (SELECT 1 FROM record_blob WHERE blobCid = blob.cid)",
                         err);
}

/* The uploaded blob `cid` must exist with exactly the ref's MIME type and size. */
static int blob_check(pds_actor *act, const atp_cid *cid, const atp_cbor *mime,
                      const atp_cbor *size, const char **errname, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    /* a taken-down blob cannot be linked again (as the reference) */
    int rc = db_prep(act, "SELECT mimeType, size FROM blob WHERE cid = ?1 AND takedownRef IS NULL",
                     &st, err);
    if (rc != 0) {
        return rc;
    }
    pds_sqlx_bind_cid(st, 1, cid);
    if (sqlite3_step(st) != SQLITE_ROW) {
        char cs[ATP_CID_STR_MAX];
        stmt_release(st);
        atp_cid_format_to(cid, cs, sizeof cs);
        set_name(errname, "BlobNotFound");
        return atp_err_set(err, ATP_EINVAL, 0, "Could not find blob: %s", cs);
    }
    const char *m = (const char *)sqlite3_column_text(st, 0);
    bool mime_ok = m && atp_slice_eq_str(mime->u.str, m);
    bool size_ok = sqlite3_column_int64(st, 1) == size->u.i;
    stmt_release(st);
    if (!mime_ok || !size_ok) {
        set_name(errname, mime_ok ? "InvalidSize" : "InvalidMimeType");
        return atp_err_set(err, ATP_EINVAL, 0, "blob ref %s does not match the uploaded blob",
                           mime_ok ? "size" : "mimeType");
    }
    return 0;
}

/* Links blob `cid` to the record and makes it permanent. */
static int blob_link_cid(pds_actor *act, atp_slice uri, const atp_cid *cid, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prep(act, "INSERT OR IGNORE INTO record_blob (blobCid, recordUri) VALUES (?1, ?2)",
                     &st, err);
    if (rc != 0) {
        return rc;
    }
    pds_sqlx_bind_cid(st, 1, cid);
    pds_sqlx_bind_slice(st, 2, uri);
    rc = pds_sqlx_step_done(act->db, st, err);
    if (rc != 0) {
        return rc;
    }
    rc = db_prep(act, "UPDATE blob SET temp = 0 WHERE cid = ?1", &st, err);
    if (rc != 0) {
        return rc;
    }
    pds_sqlx_bind_cid(st, 1, cid);
    return pds_sqlx_step_done(act->db, st, err);
}

/* The blob refs of a record, checked against the uploaded blobs when `check` (a write coming
 * in; a redo only lists them). */
typedef struct blob_refs {
    atp_arena *a;
    bool check;
    atp_cid *v;
    size_t n, cap;
} blob_refs;

/* Checks one blob ref ({"$type": "blob", ref, mimeType, size}) and adds its CID. */
static int blob_ref_one(pds_actor *act, blob_refs *refs, const atp_cbor *ref, const char **errname,
                        atp_err *err)
{
    const atp_cbor *link = atp_cbor_map_get_str(ref, "ref");
    const atp_cbor *mime = atp_cbor_map_get_str(ref, "mimeType");
    const atp_cbor *size = atp_cbor_map_get_str(ref, "size");
    atp_cid cid;
    if (!link || atp_cbor_get_cid(link, &cid) != 0 || !mime || mime->type != ATP_CBOR_STRING ||
        !size || size->type != ATP_CBOR_INT) {
        set_name(errname, "InvalidRecord");
        return atp_err_set(err, ATP_EINVAL, 0, "invalid blob ref");
    }
    int rc = refs->check ? blob_check(act, &cid, mime, size, errname, err) : 0;
    if (rc != 0) {
        return rc;
    }
    if (refs->n == refs->cap) {
        size_t cap = refs->cap ? refs->cap * 2 : 4;
        atp_cid *v = atp_arena_calloc(refs->a, cap, sizeof *v);
        if (refs->n) {
            memcpy(v, refs->v, refs->n * sizeof *v);
        }
        refs->v = v;
        refs->cap = cap;
    }
    refs->v[refs->n++] = cid;
    return 0;
}

/* Every blob ref anywhere in the record, depth-first (the tree's depth is bounded by the
 * JSON/CBOR decoder limits). */
static int blob_refs_collect(pds_actor *act, blob_refs *refs, const atp_cbor *v,
                             const char **errname, atp_err *err)
{
    int rc = 0;
    if (v->type == ATP_CBOR_ARRAY) {
        for (size_t i = 0; i < v->u.arr.n && rc == 0; i++) {
            rc = blob_refs_collect(act, refs, &v->u.arr.items[i], errname, err);
        }
        return rc;
    }
    if (v->type != ATP_CBOR_MAP) {
        return 0;
    }
    const atp_cbor *t = atp_cbor_map_get_str(v, "$type");
    if (t && t->type == ATP_CBOR_STRING && atp_slice_eq_str(t->u.str, "blob")) {
        return blob_ref_one(act, refs, v, errname, err);
    }
    for (size_t i = 0; i < v->u.map.n && rc == 0; i++) {
        rc = blob_refs_collect(act, refs, &v->u.map.pairs[i].val, errname, err);
    }
    return rc;
}

static int index_put(pds_actor *act, const pds_index_op *op, const char *rev, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int rc = db_prep(act,
                     "INSERT OR REPLACE INTO record (uri, cid, collection, rkey, repoRev,"
                     " indexedAt) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                     &st, err);
    if (rc != 0) {
        return rc;
    }
    pds_sqlx_time_now(now);
    pds_sqlx_bind_slice(st, 1, op->uri);
    pds_sqlx_bind_cid(st, 2, &op->cid);
    pds_sqlx_bind_slice(st, 3, op->collection);
    pds_sqlx_bind_slice(st, 4, op->rkey);
    sqlite3_bind_text(st, 5, rev, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
    return pds_sqlx_step_done(act->db, st, err);
}

/* One record-index change and its blob links (the refs were checked when the write came). */
static int index_apply(pds_actor *act, const pds_index_op *op, const char *rev, atp_err *err)
{
    int rc = 0;
    if (op->action != ATP_REPO_CREATE) {
        rc = blobs_unlink(act, op->uri, err);
    }
    if (rc == 0 && op->action == ATP_REPO_DELETE) {
        sqlite3_stmt *st = NULL;
        rc = db_prep(act, "DELETE FROM record WHERE uri = ?1", &st, err);
        if (rc == 0) {
            pds_sqlx_bind_slice(st, 1, op->uri);
            rc = pds_sqlx_step_done(act->db, st, err);
        }
        return rc;
    }
    rc = rc ? rc : index_put(act, op, rev, err);
    for (size_t i = 0; i < op->n_blobs && rc == 0; i++) {
        rc = blob_link_cid(act, op->uri, &op->blobs[i], err);
    }
    return rc;
}

/* Whether any record of the index still has CID `cid` (after this commit's index writes). */
static int record_cid_used(pds_actor *act, const atp_cid *cid, bool *used, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = db_prep(act, "SELECT 1 FROM record WHERE cid = ?1 LIMIT 1", &st, err);
    if (rc != 0) {
        return rc;
    }
    pds_sqlx_bind_cid(st, 1, cid);
    int step = sqlite3_step(st);
    stmt_release(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        return pds_sqlx_fail(act->db, err, "record cid lookup");
    }
    *used = step == SQLITE_ROW;
    return 0;
}

/* Removes what the commit made unreachable (spec: the PDS keeps only the current tree): the
 * old commit and MST nodes for certain, and each maybe-orphaned record block that no path of
 * the index maps to any more (identical records share one block). Runs after the index writes,
 * inside the commit's transaction, so blocks and index never disagree on disk. */
static int gc_blocks(pds_actor *act, const atp_repo_commit *c, const atp_cid *removed,
                     size_t n_removed, atp_arena *a, atp_err *err)
{
    int rc = atp_blockstore_remove_batch(act->bs, removed, n_removed, err);
    if (rc != 0 || c->n_removed_records_maybe == 0) {
        return rc;
    }
    atp_cid *gone = atp_arena_calloc(a, c->n_removed_records_maybe, sizeof *gone);
    size_t n = 0;
    for (size_t i = 0; i < c->n_removed_records_maybe && rc == 0; i++) {
        bool used = true;
        rc = record_cid_used(act, &c->removed_records_maybe[i], &used, err);
        if (rc == 0 && !used) {
            gone[n++] = c->removed_records_maybe[i];
        }
    }
    return rc ? rc : atp_blockstore_remove_batch(act->bs, gone, n, err);
}

/* A commit's blocks and certain garbage as a transaction must write them: all of them alone;
 * within a flush (net non-NULL, the commit is entry `idx`) less what another entry of it undoes. */
typedef struct commit_io {
    atp_block *blocks;
    size_t n_blocks;
    atp_cid *removed;
    size_t n_removed;
} commit_io;

static commit_io commit_io_of(const atp_repo_commit *c, const pds_pending_net *net, size_t idx,
                              atp_arena *a)
{
    commit_io io = {c->blocks, c->n_blocks, c->removed, c->n_removed};
    if (!net) {
        return io;
    }
    io.blocks = atp_arena_calloc(a, c->n_blocks + 1, sizeof *io.blocks);
    io.removed = atp_arena_calloc(a, c->n_removed + 1, sizeof *io.removed);
    io.n_blocks = io.n_removed = 0;
    for (size_t i = 0; i < c->n_blocks; i++) {
        if (pds_pending_net_put(net, idx, &c->blocks[i].cid)) {
            io.blocks[io.n_blocks++] = c->blocks[i];
        }
    }
    for (size_t i = 0; i < c->n_removed; i++) {
        if (pds_pending_net_del(net, idx, &c->removed[i])) {
            io.removed[io.n_removed++] = c->removed[i];
        }
    }
    return io;
}

/* One commit's blocks, index changes and garbage, inside the caller's transaction on the file.
 * Blocks go in before anything is removed, so the file never misses a block it needs. */
static int persist_commit(pds_actor *act, const pds_index_op *ops, size_t n,
                          const atp_repo_commit *c, const pds_pending_net *net, size_t idx,
                          atp_arena *a, atp_err *err)
{
    commit_io io = commit_io_of(c, net, idx, a);
    int rc = atp_blockstore_put_batch(act->bs, io.blocks, io.n_blocks, atp_slice_str(c->rev), err);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = index_apply(act, &ops[i], c->rev, err);
        if (rc != 0 && err) {
            err->off = i;
        }
    }
    return rc ? rc : gc_blocks(act, c, io.removed, io.n_removed, a, err);
}

/* A commit written straight into the file in a transaction of its own (a new repo, a redo):
 * blocks, index, garbage, root and the commit hook's outbox row, all or nothing. */
static int persist(pds_actor_store *s, pds_actor *act, const pds_index_op *ops, size_t n,
                   const atp_repo_commit *c, atp_arena *a, bool hook, atp_err *err)
{
    void *staged = NULL;
    int rc = db_run(act, "BEGIN IMMEDIATE", err);
    if (rc != 0) {
        return rc;
    }
    rc = persist_commit(act, ops, n, c, NULL, 0, a, err);
    rc = rc ? rc : root_update(act, c, err);
    if (rc == 0 && hook && s->hook) {
        rc = s->hook(s->hook_ctx, act->db, atp_slice_str(act->did), c, &staged, err);
    }
    rc = rc ? rc : db_run(act, "COMMIT", err);
    if (rc != 0) {
        (void)db_run(act, "ROLLBACK", NULL);
    }
    staged_end(s, act, &staged, rc == 0, NULL);
    atomic_fetch_add(&s->n_txns, 1);
    return rc;
}

/* ---- writing sequenced commits into the file ---- */

/* The first k pending commits (all sequenced) in one transaction: the MST nodes one commit
 * makes and the next removes never reach the file's pages. `durable`: a FULL commit (fsync);
 * else NORMAL, and the flusher fsyncs the WAL later, off the account's lock. On failure they
 * stay pending. */
static int flush_entries(pds_actor_store *s, pds_actor *act, size_t k, bool durable, atp_err *err)
{
    atp_arena *a = atp_arena_create(0), *scratch = atp_arena_create(0);
    const pds_pending_commit *last = NULL;
    const pds_pending_net *net = pds_pending_net_make(&act->pend, k, a);
    int rc = durable ? 0 : db_run(act, "PRAGMA synchronous=NORMAL", err);
    rc = rc ? rc : db_run(act, "BEGIN IMMEDIATE", err);
    size_t idx = 0;
    for (pds_pending_commit *e = act->pend.head; e && idx < k && rc == 0; e = e->next, idx++) {
        rc = persist_commit(act, e->ops, e->n_ops, &e->c, net, idx, scratch, err);
        last = e;
        atp_arena_reset(scratch);
    }
    rc = rc ? rc : root_update(act, &last->c, err);
    rc = rc ? rc : db_run(act, "COMMIT", err);
    if (rc != 0) {
        (void)db_run(act, "ROLLBACK", NULL);
    }
    if (!durable) {
        (void)db_run(act, "PRAGMA synchronous=FULL", NULL); /* every other commit stays FULL */
    }
    atp_arena_destroy(scratch);
    atp_arena_destroy(a);
    atomic_fetch_add(&s->n_txns, 1);
    return rc;
}

/* The account's WAL file, fsynced (any descriptor of a file reaches its pages). No WAL file:
 * the last connection closed it after a checkpoint, which synced the database file. */
static int sync_wal(const pds_actor_store *s, const char *did, atp_err *err)
{
    char path[4096];
    int rc = pds_actor_store_path(s, atp_slice_str(did), path, sizeof path - 4, err);
    if (rc != 0) {
        return rc;
    }
    memcpy(path + strlen(path), "-wal", 5);
    return pds_sqlx_sync_file(path, err);
}

/* Writes the account's sequenced commits into its file (account lock held). FL_WAIT: first
 * waits (lock let go meanwhile) until every pending commit is sequenced, so the file then holds
 * the whole in-memory state. FL_DURABLE: on return the file is durable up to here (its WAL
 * fsynced), earlier NORMAL commits included. */
static int flush_locked(pds_actor_store *s, pds_actor *act, unsigned flags, atp_err *err)
{
    for (int waited = 0; (flags & FL_WAIT) && pds_pending_ready(&act->pend) < act->pend.n;
         waited++) {
        if (waited >= FLUSH_WAIT_MS) {
            return atp_err_set(err, ATP_EIO, 0, "commits of %s are not sequenced", act->did);
        }
        pthread_mutex_unlock(&act->lock);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
        pthread_mutex_lock(&act->lock);
    }
    bool durable = (flags & FL_DURABLE) != 0;
    size_t k = pds_pending_ready(&act->pend);
    atp_err e;
    atp_err *ep = err ? err : &e;
    int rc = 0;
    if (k > 0) {
        int64_t low = pds_pending_min_seq(&act->pend);
        rc = flush_entries(s, act, k, durable, ep);
        if (rc == 0) {
            pds_pending_drop(&act->pend, k);
            atomic_fetch_add(&s->n_flushed, k);
            act->unsynced_min = durable ? INT64_MAX : (low < act->unsynced_min ? low : act->unsynced_min);
        }
    } else if (durable && act->unsynced_min != INT64_MAX) {
        rc = sync_wal(s, act->did, ep);
        act->unsynced_min = rc == 0 ? INT64_MAX : act->unsynced_min;
    }
    if (rc != 0) {
        atp_logf(ATP_LOG_ERROR, "actors", "writing %zu commits of %s: %s", k, act->did, ep->msg);
    }
    return rc;
}

/* ---- repo creation ---- */

static int create_locked(pds_actor_store *s, pds_actor *act, const atp_key *key,
                         pds_commit_info *out, atp_err *err)
{
    atp_repo *repo;
    int rc = atp_repo_create(pds_pending_store(&act->pend), atp_slice_str(act->did), key, NULL,
                             &repo, err);
    if (rc != 0) {
        return rc;
    }
    atp_arena *a = atp_arena_create(0);
    atp_repo_commit c;
    rc = atp_repo_apply(repo, NULL, 0, a, &c, err);
    rc = rc ? rc : persist(s, act, NULL, 0, &c, a, true, err);
    rc = rc ? rc : atp_repo_accept(repo, &c, err);
    if (rc == 0) {
        atp_repo_set_key(repo, NULL); /* the key is only borrowed for this call */
        act->repo = repo;
        out->cid = c.cid;
        memcpy(out->rev, c.rev, sizeof out->rev);
    } else {
        atp_repo_destroy(repo);
    }
    atp_arena_destroy(a);
    return rc;
}

int pds_actor_store_create_repo(pds_actor_store *s, atp_slice did, const atp_key *key,
                                pds_commit_info *out, atp_err *err)
{
    pds_actor *act;
    int rc = actor_acquire(s, did, true, &act, err);
    if (rc != 0) {
        return rc;
    }
    if (act->repo) {
        rc = atp_err_set(err, ATP_ECONFLICT, 0, "repo already exists for %s", act->did);
    } else {
        rc = create_locked(s, act, key, out, err);
    }
    actor_release(s, act);
    return rc;
}

static void commit_info_of(const atp_repo *r, pds_commit_info *out)
{
    atp_slice rev = atp_repo_rev(r);
    out->cid = *atp_repo_head(r);
    memset(out->rev, 0, sizeof out->rev);
    memcpy(out->rev, rev.ptr, rev.len < 13 ? rev.len : 13);
}

int pds_actor_store_root(pds_actor_store *s, atp_slice did, pds_commit_info *out, atp_err *err)
{
    pds_actor *act;
    int rc = actor_acquire_repo(s, did, &act, NULL, err);
    if (rc != 0) {
        return rc;
    }
    commit_info_of(act->repo, out);
    actor_release(s, act);
    return 0;
}

/* ---- write preparation ---- */

/* A write after preparation: what the index and blob links need. */
typedef struct prep_write {
    atp_repo_action action;
    atp_slice collection, rkey, uri;
    const atp_cbor *record; /* create/update */
    atp_cid cid;
} prep_write;

/* The record with `$type` = collection: added when missing (a copy with one more pair), refused
 * when different. */
static int ensure_type(atp_arena *a, const atp_cbor *rec, atp_slice coll, const atp_cbor **out,
                       atp_err *err)
{
    if (!rec || rec->type != ATP_CBOR_MAP) {
        return atp_err_set(err, ATP_EINVAL, 0, "record must be an object");
    }
    const atp_cbor *t = atp_cbor_map_get_str(rec, "$type");
    if (t) {
        if (t->type != ATP_CBOR_STRING || !atp_slice_eq(t->u.str, coll)) {
            return atp_err_set(err, ATP_EINVAL, 0, "Invalid $type: expected %.*s", (int)coll.len,
                               (const char *)coll.ptr);
        }
        *out = rec;
        return 0;
    }
    atp_cbor *m = atp_cbor_new_map(a, rec->u.map.n + 1);
    for (size_t i = 0; i < rec->u.map.n; i++) {
        m->u.map.pairs[i] = rec->u.map.pairs[i];
    }
    m->u.map.pairs[rec->u.map.n].key = ATP_SLICE_LIT("$type");
    m->u.map.pairs[rec->u.map.n].val = *atp_cbor_new_string(a, coll);
    int rc = atp_cbor_map_finish(m, err);
    if (rc == 0) {
        *out = m;
    }
    return rc;
}

/* Lexicon validation by mode; *status is the validationStatus to report. */
static int validate_record(const pds_actor_store *s, const pds_write *w, atp_slice rkey,
                           const atp_cbor *rec, pds_validate mode, const char **status,
                           atp_err *err)
{
    *status = NULL;
    if (mode == PDS_VALIDATE_FALSE) {
        return 0;
    }
    int rc = s->lex ? atp_lexicon_validate_record(s->lex, w->collection, rec, err) : ATP_ENOTFOUND;
    if (rc == ATP_ENOTFOUND) {
        if (mode == PDS_VALIDATE_TRUE) {
            return atp_err_set(err, ATP_EINVAL, 0, "Lexicon not found: lex:%.*s",
                               (int)w->collection.len, (const char *)w->collection.ptr);
        }
        *status = "unknown";
        return 0;
    }
    rc = rc ? rc : atp_lexicon_check_rkey(s->lex, w->collection, rkey, err);
    if (rc != 0) {
        return rc;
    }
    *status = "valid";
    return 0;
}

/* The record path and its at:// URI; a fresh TID when a create gives no rkey. */
static int prep_path(atp_arena *a, atp_slice did, const pds_write *w, prep_write *p,
                     atp_slice *path, atp_err *err)
{
    atp_slice rkey = w->rkey;
    if (rkey.len == 0 && w->action == ATP_REPO_CREATE) {
        char tid[14];
        atp_tid_now(tid);
        rkey = atp_slice_make(atp_arena_dup(a, tid, 13), 13);
    }
    size_t plen = w->collection.len + 1 + rkey.len;
    char *buf = atp_arena_alloc(a, 5 + did.len + 1 + plen + 1);
    memcpy(buf, "at://", 5);
    memcpy(buf + 5, did.ptr, did.len);
    buf[5 + did.len] = '/';
    char *pp = buf + 5 + did.len + 1;
    memcpy(pp, w->collection.ptr, w->collection.len);
    pp[w->collection.len] = '/';
    memcpy(pp + w->collection.len + 1, rkey.ptr, rkey.len);
    pp[plen] = '\0';
    *path = atp_slice_make(pp, plen);
    p->collection = w->collection;
    p->rkey = rkey;
    p->uri = atp_slice_make(buf, 5 + did.len + 1 + plen);
    return atp_repo_check_path(*path, err);
}

/* Applies swapRecord and the missing/existing rules; may turn the write into a create (upsert)
 * or a no-op (missing_ok). */
static int prep_existing(atp_repo *repo, const pds_write *w, atp_slice path, prep_write *p,
                         bool *noop, const char **errname, atp_err *err)
{
    atp_cid cur;
    bool found = false;
    int rc = atp_repo_get(repo, path, NULL, &cur, NULL, &found, err);
    if (rc != 0) {
        return rc;
    }
    if (w->has_swap && (w->swap_null ? found : (!found || !atp_cid_eq(&cur, &w->swap)))) {
        set_name(errname, "InvalidSwap");
        return atp_err_set(err, ATP_ECONFLICT, 0, "Record was at %s",
                           found ? "another CID" : "null");
    }
    p->action = w->action;
    if (found && w->action == ATP_REPO_CREATE) {
        return atp_err_set(err, ATP_EINVAL, 0, "Record already exists: %.*s", (int)path.len,
                           (const char *)path.ptr);
    }
    if (!found && w->action == ATP_REPO_UPDATE && w->upsert) {
        p->action = ATP_REPO_CREATE;
    } else if (!found && w->action == ATP_REPO_DELETE && w->missing_ok) {
        *noop = true;
    } else if (!found && w->action != ATP_REPO_CREATE) {
        return atp_err_set(err, ATP_EINVAL, 0, "Record does not exist: %.*s", (int)path.len,
                           (const char *)path.ptr);
    }
    p->cid = cur; /* the old CID: an identical put becomes a no-op below */
    return 0;
}

/* The record's DAG-CBOR (<= ATP_REPO_MAX_RECORD bytes) into the arena and its CID. */
static int prep_encode(atp_arena *a, const atp_cbor *rec, atp_slice *bytes, atp_cid *cid,
                       atp_err *err)
{
    atp_buf b;
    atp_buf_init(&b, ATP_REPO_MAX_RECORD);
    atp_cbor_encode(&b, rec);
    if (b.err != 0) {
        int e = b.err;
        atp_buf_release(&b);
        return atp_err_set(err, e, 0, "record too large or not encodable");
    }
    *bytes = atp_slice_make(atp_arena_dup(a, b.ptr, b.len), b.len);
    atp_buf_release(&b);
    atp_cid_compute(cid, ATP_CODEC_DAG_CBOR, *bytes);
    return 0;
}

typedef struct prep_ctx {
    pds_actor_store *s;
    pds_actor *act;
    pds_validate mode;
    atp_arena *a;
    const char **errname;
    void **staged;              /* the commit hook's, for its job */
    pds_pending_commit *entry; /* the commit, once applied */
} prep_ctx;

static int prep_record(prep_ctx *x, const pds_write *w, prep_write *p, atp_repo_write *rw,
                       pds_write_result *res, atp_err *err)
{
    const atp_cbor *rec = NULL;
    int rc = ensure_type(x->a, w->record, w->collection, &rec, err);
    rc = rc ? rc : validate_record(x->s, w, p->rkey, rec, x->mode, &res->status, err);
    if (rc != 0) {
        set_name(x->errname, "InvalidRecord");
        return rc;
    }
    atp_cid old = p->cid;
    rc = prep_encode(x->a, rec, &rw->record_bytes, &p->cid, err);
    if (rc != 0) {
        set_name(x->errname, rc == ATP_ELIMIT ? "InvalidRequest" : "InvalidRecord");
        return rc;
    }
    p->record = rec;
    res->has_cid = true;
    res->cid = p->cid;
    res->noop = w->upsert && p->action == ATP_REPO_UPDATE && atp_cid_eq(&old, &p->cid);
    return 0;
}

static int prep_one(prep_ctx *x, const pds_write *w, prep_write *p, atp_repo_write *rw,
                    pds_write_result *res, atp_err *err)
{
    atp_slice path;
    int rc = prep_path(x->a, atp_slice_str(x->act->did), w, p, &path, err);
    if (rc == 0 && w->action != ATP_REPO_DELETE && !w->record) {
        rc = atp_err_set(err, ATP_EINVAL, 0, "missing record");
    }
    rc = rc ? rc : prep_existing(x->act->repo, w, path, p, &res->noop, x->errname, err);
    if (rc == 0 && p->action != ATP_REPO_DELETE) {
        rc = prep_record(x, w, p, rw, res, err);
    }
    if (rc != 0) {
        return rc;
    }
    rw->action = p->action;
    rw->path = path;
    res->action = p->action;
    res->uri = (const char *)p->uri.ptr;
    return 0;
}

/* Prepares all writes; *k = the ones that are not no-ops (packed at the front of pw/rw). */
static int prep_all(prep_ctx *x, const pds_write *writes, size_t n, prep_write *pw,
                    atp_repo_write *rw, pds_write_result *res, size_t *k, atp_err *err)
{
    *k = 0;
    for (size_t i = 0; i < n; i++) {
        if (writes[i].action < ATP_REPO_CREATE || writes[i].action > ATP_REPO_DELETE) {
            return atp_err_set(err, ATP_EINVAL, i, "bad action");
        }
        memset(&pw[*k], 0, sizeof pw[*k]);
        memset(&rw[*k], 0, sizeof rw[*k]);
        int rc = prep_one(x, &writes[i], &pw[*k], &rw[*k], &res[i], err);
        if (rc != 0) {
            if (err) {
                err->off = i;
            }
            return rc;
        }
        if (!res[i].noop) {
            (*k)++;
        }
    }
    return 0;
}

/* The record-index changes of the prepared writes, each record's blob refs checked against
 * the uploaded blobs and listed. */
static int index_ops(prep_ctx *x, const prep_write *pw, size_t n, pds_index_op **out,
                     atp_err *err)
{
    pds_index_op *ops = atp_arena_calloc(x->a, n ? n : 1, sizeof *ops);
    for (size_t i = 0; i < n; i++) {
        ops[i] = (pds_index_op){pw[i].action, pw[i].collection, pw[i].rkey, pw[i].uri,
                                pw[i].cid,    NULL,             0};
        if (pw[i].action == ATP_REPO_DELETE) {
            continue;
        }
        blob_refs refs = {x->a, true, NULL, 0, 0};
        int rc = blob_refs_collect(x->act, &refs, pw[i].record, x->errname, err);
        if (rc != 0) {
            if (err) {
                err->off = i;
            }
            return rc;
        }
        ops[i].blobs = refs.v;
        ops[i].n_blobs = refs.n;
    }
    *out = ops;
    return 0;
}

/* The #commit event of this commit must stay under the firehose's frame budget (spec: refuse
 * when its blocks would exceed 2,000,000 bytes). */
static int check_commit_size(const atp_repo_commit *c, atp_err *err)
{
    size_t total = 0;
    for (size_t i = 0; i < c->n_blocks; i++) {
        total += c->blocks[i].data.len;
    }
    for (size_t i = 0; i < c->n_proof; i++) {
        total += c->proof[i].data.len;
    }
    if (total > PDS_COMMIT_MAX_BYTES) {
        return atp_err_set(err, ATP_ELIMIT, 0, "Too many writes: commit of %zu bytes", total);
    }
    return 0;
}

static const char *repo_errname(int rc)
{
    return rc == ATP_ECONFLICT ? "InvalidSwap" : "InvalidRequest";
}

static int apply_locked(prep_ctx *x, const atp_key *key, const pds_write *writes, size_t n,
                        const atp_cid *swap_commit, pds_apply_out *out, atp_err *err)
{
    atp_repo *repo = x->act->repo;
    if (swap_commit && !atp_cid_eq(swap_commit, atp_repo_head(repo))) {
        set_name(x->errname, "InvalidSwap");
        return atp_err_set(err, ATP_ECONFLICT, 0, "Commit was at another CID");
    }
    prep_write *pw = atp_arena_calloc(x->a, n + 1, sizeof *pw);
    atp_repo_write *rw = atp_arena_calloc(x->a, n + 1, sizeof *rw);
    pds_write_result *res = atp_arena_calloc(x->a, n + 1, sizeof *res);
    size_t k;
    int rc = prep_all(x, writes, n, pw, rw, res, &k, err);
    if (rc != 0) {
        return rc;
    }
    out->results = res;
    out->committed = k > 0 || n == 0;
    if (!out->committed) {
        commit_info_of(repo, &out->commit);
        return 0;
    }
    atp_repo_commit c;
    atp_repo_set_key(repo, key);
    rc = atp_repo_apply(repo, rw, k, x->a, &c, err);
    atp_repo_set_key(repo, NULL);
    rc = rc ? rc : check_commit_size(&c, err);
    if (rc != 0) {
        set_name(x->errname, repo_errname(rc));
        return rc;
    }
    pds_index_op *ops = NULL;
    rc = index_ops(x, pw, k, &ops, err);
    /* the event goes to the sequencer, not into the file (db NULL): the file follows it */
    if (rc == 0 && x->s->hook) {
        rc = x->s->hook(x->s->hook_ctx, NULL, atp_slice_str(x->act->did), &c, x->staged, err);
    }
    rc = rc ? rc : atp_repo_accept(repo, &c, err);
    if (rc == 0) {
        x->entry = pds_pending_add(&x->act->pend, &c, ops, k);
        out->commit.cid = c.cid;
        memcpy(out->commit.rev, c.rev, sizeof out->commit.rev);
    }
    return rc;
}

/* One pds_actor_store_apply call. */
typedef struct apply_job {
    const atp_key *key;
    const pds_write *writes;
    size_t n;
    pds_validate validate;
    const atp_cid *swap_commit;
    atp_arena *a;
    pds_apply_out out;
    const char *name;
    atp_err err;
    int rc;
    void *staged; /* what the commit hook left for the sequencer */
} apply_job;

/* Without a sequencer nothing else makes a commit durable: it goes into the file before the
 * call returns. If that fails the handle goes back to the file's head. */
static void write_through(pds_actor_store *s, pds_actor *act, pds_pending_commit *e,
                          apply_job *j)
{
    atomic_store_explicit(&e->seq, -1, memory_order_release);
    j->rc = flush_locked(s, act, FL_DURABLE, &j->err);
    if (j->rc == 0) {
        return;
    }
    j->name = "InternalServerError";
    pds_pending_release(&act->pend);
    atp_repo_destroy(act->repo);
    act->repo = NULL;
    atp_err e2;
    if (actor_load_root(act, &e2) != 0) {
        act->repo = NULL; /* the next write reports RepoNotFound rather than a stale head */
    }
}

/* Runs a write call under the account's lock: prepared, applied and accepted in memory, queued
 * for the file, its event handed on (staged_end). The lock is held for CPU work only: no file
 * I/O but blob-ref lookups and the loading of MST nodes not in memory yet. */
static void run_job(pds_actor_store *s, pds_actor *act, apply_job *j)
{
    pthread_mutex_lock(&act->lock);
    if (!act->repo) {
        j->name = "RepoNotFound";
        j->rc = atp_err_set(&j->err, ATP_ENOTFOUND, 0, "Could not find repo for DID: %s", act->did);
        pthread_mutex_unlock(&act->lock);
        return;
    }
    prep_ctx x = {s, act, j->validate, j->a, &j->name, &j->staged, NULL};
    j->rc = apply_locked(&x, j->key, j->writes, j->n, j->swap_commit, &j->out, &j->err);
    if (j->rc != 0) {
        staged_end(s, act, &j->staged, false, NULL);
    } else if (x.entry) {
        atomic_fetch_add(&s->n_commits, 1);
        bool alone = !j->staged || !s->done;
        staged_end(s, act, &j->staged, true, &x.entry->seq);
        if (alone) {
            write_through(s, act, x.entry, j);
        }
    }
    pthread_mutex_unlock(&act->lock);
}

int pds_actor_store_apply(pds_actor_store *s, atp_slice did, const atp_key *key,
                          const pds_write *writes, size_t n, pds_validate validate,
                          const atp_cid *swap_commit, atp_arena *a, pds_apply_out *out,
                          const char **errname, atp_err *err)
{
    set_name(errname, "InvalidRequest");
    if (n > ATP_REPO_MAX_WRITES) {
        return atp_err_set(err, ATP_ELIMIT, 0, "Too many writes. Max: %d", ATP_REPO_MAX_WRITES);
    }
    pds_actor *act;
    int rc = actor_ref(s, did, false, &act, err);
    if (rc != 0) {
        set_name(errname, rc == ATP_ENOTFOUND ? "RepoNotFound" : "InvalidRequest");
        return rc;
    }
    apply_job j = {.key = key,
                   .writes = writes,
                   .n = n,
                   .validate = validate,
                   .swap_commit = swap_commit,
                   .a = a,
                   .name = "InvalidRequest"};
    atp_err_clear(&j.err);
    run_job(s, act, &j);
    actor_unref_dirty(s, act, j.rc == 0 && j.out.committed);
    if (j.rc != 0) {
        set_name(errname, j.name);
        if (err) {
            *err = j.err;
        }
        return j.rc;
    }
    *out = j.out;
    return 0;
}

/* ---- redo after a crash ---- */

/* The writes and index changes of a stored commit: records from its blocks, blob refs listed
 * from the records (they were checked when the write came). */
static int redo_writes(pds_actor *act, const pds_redo *r, atp_arena *a, atp_repo_write *w,
                       pds_index_op *ops, atp_err *err)
{
    for (size_t i = 0; i < r->n_ops; i++) {
        const atp_repo_op *op = &r->ops[i];
        const uint8_t *slash = memchr(op->path.ptr, '/', op->path.len);
        size_t cl = slash ? (size_t)(slash - op->path.ptr) : 0;
        if (!slash) {
            return atp_err_set(err, ATP_EINVAL, i, "bad path in a stored commit");
        }
        char *uri = atp_arena_alloc(a, 5 + r->did.len + 1 + op->path.len + 1);
        int un = snprintf(uri, 5 + r->did.len + 1 + op->path.len + 1, "at://%.*s/%.*s",
                          (int)r->did.len, (const char *)r->did.ptr, (int)op->path.len,
                          (const char *)op->path.ptr);
        w[i] = (atp_repo_write){op->action, op->path, NULL, {NULL, 0}, NULL};
        ops[i] = (pds_index_op){op->action, atp_slice_make(op->path.ptr, cl),
                                atp_slice_make(slash + 1, op->path.len - cl - 1),
                                atp_slice_make(uri, (size_t)un), op->cid, NULL, 0};
        if (op->action == ATP_REPO_DELETE) {
            continue;
        }
        const atp_block *b = NULL;
        for (size_t k = 0; k < r->n_blocks && !b; k++) {
            b = atp_cid_eq(&r->blocks[k].cid, &op->cid) ? &r->blocks[k] : NULL;
        }
        atp_slice bytes;
        atp_cbor *tree;
        int rc = b ? 0 : atp_blockstore_get(act->bs, &op->cid, a, &bytes, err);
        if (rc != 0) {
            return rc;
        }
        w[i].record_bytes = b ? b->data : bytes;
        rc = atp_cbor_decode(a, w[i].record_bytes, NULL, &tree, err);
        blob_refs refs = {a, false, NULL, 0, 0};
        rc = rc ? rc : blob_refs_collect(act, &refs, tree, NULL, err);
        if (rc != 0) {
            return rc;
        }
        ops[i].blobs = refs.v;
        ops[i].n_blobs = refs.n;
    }
    return 0;
}

/* r's commit onto the file's head (account lock held, nothing pending). */
static int redo_locked(pds_actor_store *s, pds_actor *act, const pds_redo *r, bool *applied,
                       atp_err *err)
{
    atp_slice rev = atp_repo_rev(act->repo);
    if (r->rev.len != 13 || (rev.len == 13 && memcmp(rev.ptr, r->rev.ptr, 13) >= 0)) {
        return 0; /* the file has it (or a later one) */
    }
    if (!atp_slice_eq(rev, r->since)) {
        return atp_err_set(err, ATP_EINVAL, 0, "stored commit %.*s of %s follows %.*s, not %.*s",
                           (int)r->rev.len, (const char *)r->rev.ptr, act->did, (int)r->since.len,
                           (const char *)r->since.ptr, (int)rev.len, (const char *)rev.ptr);
    }
    atp_arena *a = atp_arena_create(0);
    atp_repo_write *w = atp_arena_calloc(a, r->n_ops + 1, sizeof *w);
    pds_index_op *ops = atp_arena_calloc(a, r->n_ops + 1, sizeof *ops);
    atp_repo_commit c;
    int rc = redo_writes(act, r, a, w, ops, err);
    rc = rc ? rc : atp_repo_apply_signed(act->repo, w, r->n_ops, r->commit_bytes, a, &c, err);
    rc = rc ? rc : persist(s, act, ops, r->n_ops, &c, a, false, err);
    rc = rc ? rc : atp_repo_accept(act->repo, &c, err);
    *applied = rc == 0;
    atp_arena_destroy(a);
    return rc;
}

int pds_actor_store_redo(pds_actor_store *s, const pds_redo *r, bool *applied, atp_err *err)
{
    pds_actor *act;
    *applied = false;
    int rc = actor_acquire_repo(s, r->did, &act, NULL, err);
    if (rc != 0) {
        return rc;
    }
    rc = flush_locked(s, act, FL_WAIT | FL_DURABLE, err);
    rc = rc ? rc : redo_locked(s, act, r, applied, err);
    actor_release(s, act);
    return rc;
}

void pds_actor_store_counters(pds_actor_store *s, uint64_t *commits, uint64_t *transactions)
{
    *commits = atomic_load(&s->n_commits);
    *transactions = atomic_load(&s->n_txns);
}

/* ---- blobs ---- */

int pds_actor_store_blob_add(pds_actor_store *s, atp_slice did, const atp_cid *cid, atp_slice mime,
                             uint64_t size, atp_err *err)
{
    pds_actor *act;
    int rc = actor_acquire_repo(s, did, &act, NULL, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st = NULL;
    char now[32];
    pds_sqlx_time_now(now);
    rc = db_prep(act,
                 "INSERT OR IGNORE INTO blob (cid, mimeType, size, temp, createdAt)"
                 " VALUES (?1, ?2, ?3, 1, ?4)",
                 &st, err);
    if (rc == 0) {
        pds_sqlx_bind_cid(st, 1, cid);
        pds_sqlx_bind_slice(st, 2, mime);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)size);
        sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
        rc = pds_sqlx_step_done(act->db, st, err);
    }
    actor_release(s, act);
    return rc;
}

int pds_actor_store_blob_state(pds_actor_store *s, atp_slice did, const atp_cid *cid, bool *found,
                               bool *temp, atp_err *err)
{
    pds_actor *act;
    int rc = actor_acquire_repo(s, did, &act, NULL, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st = NULL;
    rc = db_prep(act, "SELECT temp FROM blob WHERE cid = ?1", &st, err);
    if (rc == 0) {
        pds_sqlx_bind_cid(st, 1, cid);
        int step = sqlite3_step(st);
        *found = step == SQLITE_ROW;
        *temp = *found && sqlite3_column_int(st, 0) != 0;
        stmt_release(st);
    }
    actor_release(s, act);
    return rc;
}

/* ---- reads ---- */

static int lookup_cid(pds_actor *act, atp_slice coll, atp_slice rkey, atp_cid *out, bool *found,
                      atp_err *err)
{
    sqlite3_stmt *st = NULL;
    /* a record under a takedown (takedownRef set by the admin slice) reads as absent, as with
     * the reference; the repo and its proofs still hold it */
    int rc = db_prep(act,
                     "SELECT cid FROM record WHERE collection = ?1 AND rkey = ?2"
                     " AND takedownRef IS NULL",
                     &st, err);
    if (rc != 0) {
        return rc;
    }
    pds_sqlx_bind_slice(st, 1, coll);
    pds_sqlx_bind_slice(st, 2, rkey);
    int step = sqlite3_step(st);
    *found = step == SQLITE_ROW && pds_sqlx_column_cid(st, 0, out) == 0;
    stmt_release(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        return pds_sqlx_fail(act->db, err, "record lookup");
    }
    return 0;
}

int pds_actor_store_get_record(pds_actor_store *s, atp_slice did, atp_slice collection,
                               atp_slice rkey, const atp_cid *want, atp_arena *a, atp_cid *cid,
                               atp_slice *bytes, const char **errname, atp_err *err)
{
    pds_actor *act;
    int rc = actor_acquire_repo(s, did, &act, errname, err);
    if (rc != 0) {
        return rc;
    }
    atp_cid c;
    bool found;
    atp_slice data = {0};
    rc = lookup_cid(act, collection, rkey, &c, &found, err);
    if (rc == 0 && (!found || (want && !atp_cid_eq(want, &c)))) {
        set_name(errname, "RecordNotFound");
        rc = atp_err_set(err, ATP_ENOTFOUND, 0, "Could not locate record: at://%s/%.*s/%.*s",
                         act->did, (int)collection.len, (const char *)collection.ptr, (int)rkey.len,
                         (const char *)rkey.ptr);
    }
    if (rc == 0 && bytes) {
        rc = atp_blockstore_get(act->bs, &c, a, &data, err);
    }
    actor_release(s, act);
    if (rc == 0) {
        if (cid) {
            *cid = c;
        }
        if (bytes) {
            *bytes = data;
        }
    }
    return rc;
}

/* The four listing queries: [reverse][has cursor]. */
static const char *const LIST_SQL[2][2] = {
    {"SELECT rkey, cid FROM record WHERE collection = ?1 AND takedownRef IS NULL"
     " ORDER BY rkey DESC LIMIT ?3",
     "SELECT rkey, cid FROM record WHERE collection = ?1 AND rkey < ?2"
     " AND takedownRef IS NULL ORDER BY rkey DESC LIMIT ?3"},
    {"SELECT rkey, cid FROM record WHERE collection = ?1 AND takedownRef IS NULL"
     " ORDER BY rkey ASC LIMIT ?3",
     "SELECT rkey, cid FROM record WHERE collection = ?1 AND rkey > ?2"
     " AND takedownRef IS NULL ORDER BY rkey ASC LIMIT ?3"},
};

static int list_rows(pds_actor *act, sqlite3_stmt *st, pds_record_fn fn, void *ctx, size_t *n,
                     atp_err *err)
{
    atp_arena *a = atp_arena_create(0);
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        atp_cid cid;
        atp_slice data;
        atp_slice rkey =
            atp_slice_make(sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        rc = pds_sqlx_column_cid(st, 1, &cid) ? atp_err_set(err, ATP_EIO, 0, "bad cid row") : 0;
        rc = rc ? rc : atp_blockstore_get(act->bs, &cid, a, &data, err);
        rc = rc ? rc : fn(ctx, rkey, &cid, data);
        *n += rc == 0;
        atp_arena_reset(a);
    }
    atp_arena_destroy(a);
    if (rc == 0 && step != SQLITE_DONE) {
        rc = pds_sqlx_fail(act->db, err, "list records");
    }
    return rc;
}

int pds_actor_store_list_records(pds_actor_store *s, atp_slice did, atp_slice collection,
                                 size_t limit, atp_slice cursor, bool reverse, pds_record_fn fn,
                                 void *ctx, size_t *n_out, atp_err *err)
{
    if (limit < 1 || limit > 100) {
        return atp_err_set(err, ATP_EINVAL, 0, "limit must be 1..100");
    }
    pds_actor *act;
    int rc = actor_acquire_repo(s, did, &act, NULL, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    rc = db_prep(act, LIST_SQL[reverse][cursor.len > 0], &st, err);
    if (rc == 0) {
        pds_sqlx_bind_slice(st, 1, collection);
        if (cursor.len > 0) {
            pds_sqlx_bind_slice(st, 2, cursor);
        }
        sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
        rc = list_rows(act, st, fn, ctx, &n, err);
        stmt_release(st);
    }
    actor_release(s, act);
    if (rc == 0 && n_out) {
        *n_out = n;
    }
    return rc;
}

int pds_actor_store_collections(pds_actor_store *s, atp_slice did,
                                int (*fn)(void *ctx, atp_slice collection), void *ctx, atp_err *err)
{
    pds_actor *act;
    int rc = actor_acquire_repo(s, did, &act, NULL, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st = NULL;
    rc = db_prep(act, "SELECT DISTINCT collection FROM record ORDER BY collection", &st, err);
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        rc = fn(ctx,
                atp_slice_make(sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0)));
    }
    if (st) {
        stmt_release(st);
    }
    actor_release(s, act);
    return rc;
}

int pds_actor_store_export(pds_actor_store *s, atp_slice did, atp_buf *out, atp_err *err)
{
    pds_actor *act;
    int rc = actor_acquire_repo(s, did, &act, NULL, err);
    if (rc != 0) {
        return rc;
    }
    atp_car_writer w;
    atp_car_writer_init_buf(&w, out);
    rc = atp_repo_export(act->repo, &w, err);
    actor_release(s, act);
    return rc;
}
