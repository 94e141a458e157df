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
#include "atp/sha256.h"
#include "atp/syntax.h"
#include "atp/tid.h"
#include "sqlx.h"

struct apply_job;

#define PDS_STMT_CACHE 24

typedef struct pds_actor {
    char *did;
    sqlite3 *db;
    atp_blockstore *bs;
    atp_repo *repo; /* NULL until the account's first commit */
    pthread_mutex_t lock;
    unsigned refs; /* guarded by the store's lock */
    uint64_t used;
    struct pds_actor *next;
    /* group commit: writers queue jobs; one of them (the leader) runs every queued job in one
     * transaction, so concurrent writes to the account share one fsync */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    struct apply_job *qhead, **qtail;
    bool leader;
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
    atomic_ullong n_commits, n_txns;
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

/* Hands what the commit hook staged to the done callback, once the outcome is known. */
static void staged_end(pds_actor_store *s, pds_actor *act, void **staged, bool durable)
{
    if (*staged && s->done) {
        s->done(s->hook_ctx, atp_slice_str(act->did), *staged, durable);
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
    atp_blockstore_destroy(act->bs);
    if (act->db) {
        sqlite3_close(act->db);
    }
    pthread_mutex_destroy(&act->lock);
    pthread_mutex_destroy(&act->qlock);
    pthread_cond_destroy(&act->qcond);
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
    return atp_repo_open(act->bs, &head, NULL, NULL, &act->repo, err);
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
    pthread_mutex_init(&act->qlock, NULL);
    pthread_cond_init(&act->qcond, NULL);
    act->qtail = &act->qhead;
    rc = atp_blockstore_sqlite_open_file(path, 0, &act->db, err);
    rc = rc ? rc : pds_sqlx_exec(act->db, SCHEMA, err);
    rc = rc ? rc : atp_blockstore_sqlite_create(act->db, &act->bs, err);
    rc = rc ? rc : actor_load_root(act, err);
    if (rc != 0) {
        actor_close(act);
        return rc;
    }
    *out = act;
    return 0;
}

/* ---- the LRU ---- */

/* Closes least recently used idle handles while more than max_open are open. Store lock held. */
static void lru_evict(pds_actor_store *s)
{
    while (s->n_open > s->max_open) {
        pds_actor **victim = NULL;
        for (pds_actor **pp = &s->list; *pp; pp = &(*pp)->next) {
            if ((*pp)->refs == 0 && (!victim || (*pp)->used < (*victim)->used)) {
                victim = pp;
            }
        }
        if (!victim) {
            return; /* everything is busy: over the bound until released */
        }
        pds_actor *act = *victim;
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

static void actor_unref(pds_actor_store *s, pds_actor *act)
{
    pthread_mutex_lock(&s->lock);
    act->refs--;
    lru_evict(s);
    pthread_mutex_unlock(&s->lock);
}

/* The account's handle, referenced and locked. */
static int actor_acquire(pds_actor_store *s, atp_slice did, bool create, pds_actor **out,
                         atp_err *err)
{
    int rc = actor_ref(s, did, create, out, err);
    if (rc == 0) {
        pthread_mutex_lock(&(*out)->lock);
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
    pthread_mutex_init(&s->lock, NULL);
    *out = s;
    return 0;
}

void pds_actor_store_destroy(pds_actor_store *s)
{
    if (!s) {
        return;
    }
    while (s->list) {
        pds_actor *act = s->list;
        s->list = act->next;
        actor_close(act);
    }
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

/* A write after preparation: what the index and blob links need. */
typedef struct prep_write {
    atp_repo_action action;
    atp_slice collection, rkey, uri;
    const atp_cbor *record; /* create/update */
    atp_cid cid;
} prep_write;

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

/* Checks one blob ref of a record against the uploaded blob and links it. */
static int blob_link_one(pds_actor *act, atp_slice uri, const atp_cbor *ref, const char **errname,
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
    int rc = blob_check(act, &cid, mime, size, errname, err);
    return rc ? rc : blob_link_cid(act, uri, &cid, err);
}

/* Every blob ref ({"$type": "blob", ...} map) anywhere in the record, depth-first. The tree's
 * depth is bounded by the JSON/CBOR decoder limits. */
static int blobs_link(pds_actor *act, atp_slice uri, const atp_cbor *v, const char **errname,
                      atp_err *err)
{
    int rc = 0;
    if (v->type == ATP_CBOR_ARRAY) {
        for (size_t i = 0; i < v->u.arr.n && rc == 0; i++) {
            rc = blobs_link(act, uri, &v->u.arr.items[i], errname, err);
        }
        return rc;
    }
    if (v->type != ATP_CBOR_MAP) {
        return 0;
    }
    const atp_cbor *t = atp_cbor_map_get_str(v, "$type");
    if (t && t->type == ATP_CBOR_STRING && atp_slice_eq_str(t->u.str, "blob")) {
        return blob_link_one(act, uri, v, errname, err);
    }
    for (size_t i = 0; i < v->u.map.n && rc == 0; i++) {
        rc = blobs_link(act, uri, &v->u.map.pairs[i].val, errname, err);
    }
    return rc;
}

static int index_put(pds_actor *act, const prep_write *w, const char *rev, atp_err *err)
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
    pds_sqlx_bind_slice(st, 1, w->uri);
    pds_sqlx_bind_cid(st, 2, &w->cid);
    pds_sqlx_bind_slice(st, 3, w->collection);
    pds_sqlx_bind_slice(st, 4, w->rkey);
    sqlite3_bind_text(st, 5, rev, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
    return pds_sqlx_step_done(act->db, st, err);
}

static int index_write(pds_actor *act, const prep_write *w, const char *rev, const char **errname,
                       atp_err *err)
{
    int rc = 0;
    if (w->action != ATP_REPO_CREATE) {
        rc = blobs_unlink(act, w->uri, err);
    }
    if (rc == 0 && w->action == ATP_REPO_DELETE) {
        sqlite3_stmt *st = NULL;
        rc = db_prep(act, "DELETE FROM record WHERE uri = ?1", &st, err);
        if (rc == 0) {
            pds_sqlx_bind_slice(st, 1, w->uri);
            rc = pds_sqlx_step_done(act->db, st, err);
        }
        return rc;
    }
    rc = rc ? rc : index_put(act, w, rev, err);
    return rc ? rc : blobs_link(act, w->uri, w->record, errname, err);
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
static int gc_blocks(pds_actor *act, const atp_repo_commit *c, atp_arena *a, atp_err *err)
{
    int rc = atp_blockstore_remove_batch(act->bs, c->removed, c->n_removed, err);
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

/* Blocks, index, blob links, root and hook of one commit, inside the caller's transaction. */
static int persist_body(pds_actor_store *s, pds_actor *act, const prep_write *pw, size_t n,
                        const atp_repo_commit *c, atp_arena *a, void **staged, const char **errname,
                        atp_err *err)
{
    int rc = atp_blockstore_put_batch(act->bs, c->blocks, c->n_blocks, atp_slice_str(c->rev), err);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = index_write(act, &pw[i], c->rev, errname, err);
        if (rc != 0 && err) {
            err->off = i;
        }
    }
    rc = rc ? rc : gc_blocks(act, c, a, err);
    rc = rc ? rc : root_update(act, c, err);
    if (rc == 0 && s->hook) {
        rc = s->hook(s->hook_ctx, act->db, atp_slice_str(act->did), c, staged, err);
    }
    return rc;
}

/* persist_body in a transaction of its own: all of it or nothing. */
static int persist(pds_actor_store *s, pds_actor *act, const prep_write *pw, size_t n,
                   const atp_repo_commit *c, atp_arena *a, const char **errname, atp_err *err)
{
    void *staged = NULL;
    int rc = db_run(act, "BEGIN IMMEDIATE", err);
    if (rc != 0) {
        return rc;
    }
    rc = persist_body(s, act, pw, n, c, a, &staged, errname, err);
    rc = rc ? rc : db_run(act, "COMMIT", err);
    if (rc != 0) {
        (void)db_run(act, "ROLLBACK", NULL);
    }
    staged_end(s, act, &staged, rc == 0);
    atomic_fetch_add(&s->n_txns, 1);
    return rc;
}

/* ---- repo creation ---- */

static int create_locked(pds_actor_store *s, pds_actor *act, const atp_key *key,
                         pds_commit_info *out, atp_err *err)
{
    atp_repo *repo;
    int rc = atp_repo_create(act->bs, atp_slice_str(act->did), key, NULL, &repo, err);
    if (rc != 0) {
        return rc;
    }
    atp_arena *a = atp_arena_create(0);
    atp_repo_commit c;
    rc = atp_repo_apply(repo, NULL, 0, a, &c, err);
    rc = rc ? rc : persist(s, act, NULL, 0, &c, a, NULL, err);
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
    void **staged; /* the commit hook's, for its job */
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
    rc = persist_body(x->s, x->act, pw, k, &c, x->a, x->staged, x->errname, err);
    rc = rc ? rc : atp_repo_accept(repo, &c, err);
    if (rc == 0) {
        out->commit.cid = c.cid;
        memcpy(out->commit.rev, c.rev, sizeof out->commit.rev);
    }
    return rc;
}

/* One pds_actor_store_apply call waiting in its account's queue. */
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
    bool done;
    void *staged; /* what the commit hook left for after COMMIT */
    struct apply_job *next;
} apply_job;

/* Runs one job inside the batch transaction, in a savepoint of its own: a refused job leaves
 * no trace and does not disturb the others. Account lock held. */
static void run_job(pds_actor_store *s, pds_actor *act, apply_job *j)
{
    if (!act->repo) {
        j->name = "RepoNotFound";
        j->rc = atp_err_set(&j->err, ATP_ENOTFOUND, 0, "Could not find repo for DID: %s", act->did);
        return;
    }
    j->rc = db_run(act, "SAVEPOINT job", &j->err);
    if (j->rc != 0) {
        return;
    }
    prep_ctx x = {s, act, j->validate, j->a, &j->name, &j->staged};
    j->rc = apply_locked(&x, j->key, j->writes, j->n, j->swap_commit, &j->out, &j->err);
    if (j->rc != 0) {
        (void)db_run(act, "ROLLBACK TO job", NULL);
        staged_end(s, act, &j->staged, false);
    } else if (j->out.committed) {
        atomic_fetch_add(&s->n_commits, 1);
    }
    (void)db_run(act, "RELEASE job", NULL);
}

/* A failed COMMIT undid commits the handle already accepted: every job fails, and the handle
 * goes back to the stored head. */
static void batch_failed(pds_actor_store *s, pds_actor *act, apply_job *batch, const atp_err *why)
{
    (void)db_run(act, "ROLLBACK", NULL);
    for (apply_job *j = batch; j; j = j->next) {
        staged_end(s, act, &j->staged, false);
        if (j->rc == 0) {
            j->rc = ATP_EIO;
            j->name = "InternalServerError";
            j->err = *why;
        }
    }
    atp_repo_destroy(act->repo);
    act->repo = NULL;
    atp_err e;
    if (actor_load_root(act, &e) != 0) {
        act->repo = NULL; /* the next write reports RepoNotFound rather than a stale head */
    }
}

/* Every job of the batch, then one COMMIT (one fsync) for all. */
static void run_batch(pds_actor_store *s, pds_actor *act, apply_job *batch)
{
    atp_err e;
    pthread_mutex_lock(&act->lock);
    if (db_run(act, "BEGIN IMMEDIATE", &e) != 0) {
        for (apply_job *j = batch; j; j = j->next) {
            j->rc = ATP_EIO;
            j->err = e;
        }
        pthread_mutex_unlock(&act->lock);
        return;
    }
    for (apply_job *j = batch; j; j = j->next) {
        run_job(s, act, j);
    }
    if (db_run(act, "COMMIT", &e) != 0) {
        batch_failed(s, act, batch, &e);
    } else {
        for (apply_job *j = batch; j; j = j->next) {
            staged_end(s, act, &j->staged, true);
        }
    }
    atomic_fetch_add(&s->n_txns, 1);
    pthread_mutex_unlock(&act->lock);
}

/* Queues the job; the first writer to find no leader leads, running batches until the queue is
 * empty, the others wait for their job to be done. */
static void group_submit(pds_actor_store *s, pds_actor *act, apply_job *j)
{
    pthread_mutex_lock(&act->qlock);
    *act->qtail = j;
    act->qtail = &j->next;
    if (act->leader) {
        while (!j->done) {
            pthread_cond_wait(&act->qcond, &act->qlock);
        }
        pthread_mutex_unlock(&act->qlock);
        return;
    }
    act->leader = true;
    while (act->qhead) {
        apply_job *batch = act->qhead;
        act->qhead = NULL;
        act->qtail = &act->qhead;
        pthread_mutex_unlock(&act->qlock);
        run_batch(s, act, batch);
        pthread_mutex_lock(&act->qlock);
        while (batch) { /* jobs belong to their waiting threads: read next first */
            apply_job *next = batch->next;
            batch->done = true;
            batch = next;
        }
        pthread_cond_broadcast(&act->qcond);
    }
    act->leader = false;
    pthread_mutex_unlock(&act->qlock);
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
    group_submit(s, act, &j);
    actor_unref(s, act);
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
