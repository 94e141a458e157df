/* blockstore_sqlite.c: the SQLite backing of the block store. See atp/blockstore_sqlite.h.
 *
 * Every statement is prepared once at create time and reset after each use, so the steady
 * state neither parses SQL nor allocates beyond SQLite's own page cache. */
#include "atp/blockstore_sqlite.h"

#include <stdlib.h>

enum {
    S_GET,
    S_HAS,
    S_PUT,
    S_SINCE,
    S_DEL,
    S_COUNT,
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S__N
};

static const char *const sql_text[S__N] = {
    [S_GET] = "SELECT data FROM repo_block WHERE cid = ?1",
    [S_HAS] = "SELECT 1 FROM repo_block WHERE cid = ?1",
    /* OR IGNORE: a block already present keeps the rev that first wrote it. */
    [S_PUT] = "INSERT OR IGNORE INTO repo_block (cid, rev, data) VALUES (?1, ?2, ?3)",
    /* cid breaks ties so that the order is total and repeatable. */
    [S_SINCE] = "SELECT cid, data FROM repo_block WHERE rev > ?1 ORDER BY rev, cid",
    [S_DEL] = "DELETE FROM repo_block WHERE cid = ?1",
    [S_COUNT] = "SELECT count(*), coalesce(sum(length(data)), 0) FROM repo_block",
    /* IMMEDIATE takes the write lock up front: the busy timeout applies there, instead of a
     * deferred transaction failing with SQLITE_BUSY when it upgrades from read to write. */
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT atp_blockstore",
    [S_RELEASE] = "RELEASE atp_blockstore",
    [S_ROLLBACK_TO] = "ROLLBACK TO atp_blockstore",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS repo_block ("
    " cid BLOB PRIMARY KEY NOT NULL, rev TEXT NOT NULL, data BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS repo_block_rev ON repo_block (rev);";

typedef struct sqlbs {
    atp_blockstore base; /* first: the store handle points here */
    sqlite3 *db;
    sqlite3_stmt *st[S__N];
} sqlbs;

static int db_fail(sqlite3 *db, const char *what, atp_err *err)
{
    return atp_err_set(err, ATP_EIO, 0, "sqlite %s: %s", what, sqlite3_errmsg(db));
}

/* Runs a statement that returns no rows, then resets it. */
static int run(sqlbs *s, int which, atp_err *err)
{
    int rc = sqlite3_step(s->st[which]);
    sqlite3_reset(s->st[which]);
    if (rc != SQLITE_DONE) {
        return db_fail(s->db, sql_text[which], err);
    }
    return 0;
}

/* Binds a byte range through SQLite's 64-bit API (the one checked edge for sizes). */
static int bind_blob(sqlbs *s, sqlite3_stmt *st, int idx, atp_slice v, atp_err *err)
{
    /* SQLITE_STATIC: the bytes outlive the step, which happens before we return. */
    if (sqlite3_bind_blob64(st, idx, v.len ? (const void *)v.ptr : "", (sqlite3_uint64)v.len,
                            SQLITE_STATIC) != SQLITE_OK) {
        return db_fail(s->db, "bind", err);
    }
    return 0;
}

static int bind_text(sqlbs *s, sqlite3_stmt *st, int idx, atp_slice v, atp_err *err)
{
    if (sqlite3_bind_text64(st, idx, v.len ? (const char *)v.ptr : "", (sqlite3_uint64)v.len,
                            SQLITE_STATIC, SQLITE_UTF8) != SQLITE_OK) {
        return db_fail(s->db, "bind", err);
    }
    return 0;
}

/* The bytes of a BLOB column as a slice (valid until the statement steps or resets). */
static atp_slice column_slice(sqlite3_stmt *st, int col)
{
    const void *p = sqlite3_column_blob(st, col);
    int n = sqlite3_column_bytes(st, col);
    return atp_slice_make(p, p && n > 0 ? (size_t)n : 0);
}

/* ---- transactions ---- */

/* Opens our own transaction, or a savepoint inside the caller's. */
static int tx_begin(sqlbs *s, bool *nested, atp_err *err)
{
    *nested = sqlite3_get_autocommit(s->db) == 0;
    return run(s, *nested ? S_SAVEPOINT : S_BEGIN, err);
}

/* Commits on rc == 0, else undoes everything since tx_begin; returns rc or the commit's error. */
static int tx_end(sqlbs *s, bool nested, int rc, atp_err *err)
{
    if (rc == 0) {
        rc = run(s, nested ? S_RELEASE : S_COMMIT, err);
        if (rc == 0) {
            return 0;
        }
    }
    /* Errors while undoing are ignored: SQLite may already have rolled the whole transaction
     * back (SQLITE_FULL, IOERR), and the first error is the one to report. */
    if (nested) {
        (void)run(s, S_ROLLBACK_TO, NULL);
        (void)run(s, S_RELEASE, NULL);
    } else if (sqlite3_get_autocommit(s->db) == 0) {
        (void)run(s, S_ROLLBACK, NULL);
    }
    return rc;
}

/* ---- operations ---- */

static int sq_get(atp_blockstore *bs, const atp_cid *cid, atp_arena *a, atp_slice *out,
                  atp_err *err)
{
    sqlbs *s = (sqlbs *)bs;
    sqlite3_stmt *st = s->st[S_GET];
    int rc = bind_blob(s, st, 1, atp_cid_slice(cid), err);
    if (rc != 0) {
        return rc;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        atp_slice d = column_slice(st, 0);
        *out = atp_slice_make(atp_arena_dup(a, d.ptr, d.len), d.len);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        char str[ATP_CID_STR_MAX];
        atp_cid_format_to(cid, str, sizeof str);
        rc = atp_err_set(err, ATP_ENOTFOUND, 0, "block %s not found", str);
    } else {
        rc = db_fail(s->db, "get", err);
    }
    sqlite3_reset(st);
    return rc;
}

static int sq_has(atp_blockstore *bs, const atp_cid *cid, bool *out, atp_err *err)
{
    sqlbs *s = (sqlbs *)bs;
    sqlite3_stmt *st = s->st[S_HAS];
    int rc = bind_blob(s, st, 1, atp_cid_slice(cid), err);
    if (rc != 0) {
        return rc;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        *out = rc == SQLITE_ROW;
        rc = 0;
    } else {
        rc = db_fail(s->db, "has", err);
    }
    sqlite3_reset(st);
    return rc;
}

static int put_one(sqlbs *s, const atp_block *b, atp_slice rev, atp_err *err)
{
    sqlite3_stmt *st = s->st[S_PUT];
    int rc = bind_blob(s, st, 1, atp_cid_slice(&b->cid), err);
    rc = rc ? rc : bind_text(s, st, 2, rev, err);
    rc = rc ? rc : bind_blob(s, st, 3, b->data, err);
    return rc ? rc : run(s, S_PUT, err);
}

static int sq_put_batch(atp_blockstore *bs, const atp_block *blocks, size_t n, atp_slice rev,
                        atp_err *err)
{
    sqlbs *s = (sqlbs *)bs;
    bool nested;
    int rc;
    for (size_t i = 0; i < n; i++) {
        if (blocks[i].cid.len == 0) {
            return atp_err_set(err, ATP_EINVAL, 0, "block %zu has an empty CID", i);
        }
    }
    rc = tx_begin(s, &nested, err);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = put_one(s, &blocks[i], rev, err);
    }
    return tx_end(s, nested, rc, err);
}

static int sq_remove_batch(atp_blockstore *bs, const atp_cid *cids, size_t n, atp_err *err)
{
    sqlbs *s = (sqlbs *)bs;
    bool nested;
    int rc = tx_begin(s, &nested, err);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = bind_blob(s, s->st[S_DEL], 1, atp_cid_slice(&cids[i]), err);
        rc = rc ? rc : run(s, S_DEL, err);
    }
    return tx_end(s, nested, rc, err);
}

/* One row of each_since: decodes the CID and calls fn. */
static int since_row(sqlite3_stmt *st, int (*fn)(void *, const atp_cid *, atp_slice), void *ctx,
                     atp_err *err)
{
    atp_cid cid;
    size_t used = 0;
    atp_slice key = column_slice(st, 0);
    if (atp_cid_decode(key, 0, &cid, &used, NULL) != 0 || used != key.len) {
        return atp_err_set(err, ATP_EIO, 0, "repo_block holds a row whose cid is not a CID");
    }
    return fn(ctx, &cid, column_slice(st, 1));
}

static int sq_each_since(atp_blockstore *bs, atp_slice rev,
                         int (*fn)(void *ctx, const atp_cid *cid, atp_slice data), void *ctx,
                         atp_err *err)
{
    sqlbs *s = (sqlbs *)bs;
    sqlite3_stmt *st = s->st[S_SINCE];
    int rc = bind_text(s, st, 1, rev, err), step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = since_row(st, fn, ctx, err);
    }
    if (rc == 0 && step != SQLITE_DONE) {
        rc = db_fail(s->db, "each_since", err);
    }
    sqlite3_reset(st);
    /* Unbind: the rev slice is the caller's and may not outlive the call. */
    sqlite3_clear_bindings(st);
    return rc;
}

static void sq_destroy(atp_blockstore *bs)
{
    sqlbs *s = (sqlbs *)bs;
    for (int i = 0; i < S__N; i++) {
        sqlite3_finalize(s->st[i]);
    }
    free(s);
}

static const atp_blockstore_ops sqlbs_ops = {
    .get = sq_get,
    .has = sq_has,
    .put_batch = sq_put_batch,
    .each_since = sq_each_since,
    .remove_batch = sq_remove_batch,
    .destroy = sq_destroy,
};

/* ---- construction ---- */

int atp_blockstore_sqlite_create(sqlite3 *db, atp_blockstore **out, atp_err *err)
{
    sqlbs *s;
    if (sqlite3_db_readonly(db, "main") != 1 &&
        sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
        return db_fail(db, "create table", err);
    }
    s = atp_xcalloc(1, sizeof *s);
    s->base.ops = &sqlbs_ops;
    s->db = db;
    for (int i = 0; i < S__N; i++) {
        if (sqlite3_prepare_v3(db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
            SQLITE_OK) {
            int rc = db_fail(db, sql_text[i], err);
            sq_destroy(&s->base);
            return rc;
        }
    }
    *out = &s->base;
    return 0;
}

sqlite3 *atp_blockstore_sqlite_db(atp_blockstore *bs)
{
    return bs && bs->ops == &sqlbs_ops ? ((sqlbs *)bs)->db : NULL;
}

int atp_blockstore_sqlite_count(atp_blockstore *bs, uint64_t *blocks, uint64_t *bytes, atp_err *err)
{
    sqlbs *s = (sqlbs *)bs;
    sqlite3_stmt *st = s->st[S_COUNT];
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *blocks = (uint64_t)sqlite3_column_int64(st, 0);
        *bytes = (uint64_t)sqlite3_column_int64(st, 1);
        rc = 0;
    } else {
        rc = db_fail(s->db, "count", err);
    }
    sqlite3_reset(st);
    return rc;
}

int atp_blockstore_sqlite_open_file(const char *path, unsigned flags, sqlite3 **out, atp_err *err)
{
    bool ro = (flags & ATP_BS_SQLITE_READONLY) != 0;
    int oflags = ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    const char *pragmas = (flags & ATP_BS_SQLITE_RELAXED)
                              ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                " PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
                              : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                " PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;";
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, oflags, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        /* A read-only connection cannot switch the journal mode; the writer set it. */
        rc = ro ? SQLITE_OK : sqlite3_exec(db, pragmas, NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        rc = atp_err_set(err, ATP_EIO, 0, "sqlite open %s: %s", path,
                         db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return 0;
}
