/* pds/src/actor_store_blob.c: the blob rows of an account's file (actor_store_blob.h).
 *
 * Statements are prepared per call (these are not hot paths next to the record writes, and
 * the handle's statement cache belongs to actor_store.c). CIDs are stored in binary, as
 * actor_store.c does, so listings page in binary CID order. */
#include "actor_store_blob.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "actor_store_int.h"
#include "sqlx.h"

/* ---- small helpers ---- */

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, atp_err *err)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(db, err, "sqlite prepare");
    }
    return 0;
}

/* Steps a statement that returns no row, then finalizes it. */
static int run_done(sqlite3 *db, sqlite3_stmt *st, atp_err *err)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : pds_sqlx_fail(db, err, "sqlite step");
}

/* ---- one row ---- */

static int row_read(sqlite3 *db, const atp_cid *cid, pds_blob_row *out, bool *found,
                    atp_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db,
                  "SELECT mimeType, size, temp, takedownRef IS NOT NULL, createdAt FROM blob"
                  " WHERE cid = ?1",
                  &st, err);
    if (rc != 0) {
        return rc;
    }
    pds_sqlx_bind_cid(st, 1, cid);
    int step = sqlite3_step(st);
    *found = step == SQLITE_ROW;
    if (*found && out) {
        const char *m = (const char *)sqlite3_column_text(st, 0);
        const char *c = (const char *)sqlite3_column_text(st, 4);
        memset(out, 0, sizeof *out);
        out->cid = *cid;
        snprintf(out->mime, sizeof out->mime, "%s", m ? m : "");
        out->size = (uint64_t)sqlite3_column_int64(st, 1);
        out->temp = sqlite3_column_int(st, 2) != 0;
        out->takendown = sqlite3_column_int(st, 3) != 0;
        snprintf(out->created_at, sizeof out->created_at, "%s", c ? c : "");
    }
    sqlite3_finalize(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        return pds_sqlx_fail(db, err, "blob lookup");
    }
    return 0;
}

static int linked(sqlite3 *db, const atp_cid *cid, bool *out, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, "SELECT 1 FROM record_blob WHERE blobCid = ?1 LIMIT 1", &st, err);
    if (rc != 0) {
        return rc;
    }
    pds_sqlx_bind_cid(st, 1, cid);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        return pds_sqlx_fail(db, err, "record_blob lookup");
    }
    *out = step == SQLITE_ROW;
    return 0;
}

/* ---- track (uploadBlob) ---- */

typedef struct track_ctx {
    const atp_cid *cid;
    atp_slice mime;
    uint64_t size;
    pds_blob_locked_fn place;
    void *ctx;
    bool permanent;
} track_ctx;

/* Insert, or refresh a temporary row; a permanent row is left as it is. */
static int track_upsert(sqlite3 *db, const track_ctx *t, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int rc = prep(db,
                  "INSERT INTO blob (cid, mimeType, size, temp, createdAt) VALUES (?1, ?2, ?3,"
                  " ?4, ?5) ON CONFLICT (cid) DO UPDATE SET mimeType = excluded.mimeType,"
                  " size = excluded.size, createdAt = excluded.createdAt, temp = excluded.temp"
                  " WHERE blob.temp = 1",
                  &st, err);
    if (rc != 0) {
        return rc;
    }
    pds_sqlx_time_now(now);
    pds_sqlx_bind_cid(st, 1, t->cid);
    pds_sqlx_bind_slice(st, 2, t->mime);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)t->size);
    sqlite3_bind_int(st, 4, t->permanent ? 0 : 1);
    sqlite3_bind_text(st, 5, now, -1, SQLITE_TRANSIENT);
    return run_done(db, st, err);
}

static int track_fn(void *ctx, pds_actor_view *v, atp_err *err)
{
    track_ctx *t = ctx;
    pds_blob_row row;
    bool found = false;
    int rc = row_read(v->db, t->cid, &row, &found, err);
    if (rc != 0) {
        return rc;
    }
    if (found && row.takendown) {
        return atp_err_set(err, ATP_EFORBIDDEN, 0, "Blob has been takendown, cannot re-upload");
    }
    /* Linked already (records imported before the bytes came) or permanent: straight to the
     * permanent place, as the reference's verifyBlobAndMakePermanent on upload. */
    rc = linked(v->db, t->cid, &t->permanent, err);
    if (rc != 0) {
        return rc;
    }
    t->permanent = t->permanent || (found && !row.temp);
    rc = t->place(t->ctx, t->cid, t->permanent, err);
    return rc ? rc : track_upsert(v->db, t, err);
}

int pds_actor_blob_track(pds_actor_store *s, atp_slice did, const atp_cid *cid, atp_slice mime,
                         uint64_t size, pds_blob_locked_fn place, void *ctx, bool *permanent,
                         atp_err *err)
{
    track_ctx t = {cid, mime, size, place, ctx, false};
    int rc = pds_actor_store_with(s, did, false, track_fn, &t, err);
    if (rc == 0 && permanent) {
        *permanent = t.permanent;
    }
    return rc;
}

/* ---- get ---- */

typedef struct get_ctx {
    const atp_cid *cid;
    pds_blob_row row;
    bool found;
} get_ctx;

static int get_fn(void *ctx, pds_actor_view *v, atp_err *err)
{
    get_ctx *g = ctx;
    return row_read(v->db, g->cid, &g->row, &g->found, err);
}

int pds_actor_blob_get(pds_actor_store *s, atp_slice did, const atp_cid *cid, pds_blob_row *out,
                       bool *found, atp_err *err)
{
    get_ctx g;
    memset(&g, 0, sizeof g);
    g.cid = cid;
    int rc = pds_actor_store_with(s, did, false, get_fn, &g, err);
    if (rc == 0) {
        *found = g.found;
        if (g.found) {
            *out = g.row;
        }
    }
    return rc;
}

/* ---- listings ---- */

typedef struct list_ctx {
    atp_slice since;
    const atp_cid *cursor;
    size_t limit;
    bool missing;
    pds_blob_list_fn fn;
    void *ctx;
    size_t n;
} list_ctx;

static const char LIST_SQL[] =
    "SELECT DISTINCT blobCid, '' FROM record_blob WHERE (?1 IS NULL OR blobCid > ?1)"
    " ORDER BY blobCid LIMIT ?2";
static const char LIST_SINCE_SQL[] =
    "SELECT DISTINCT rb.blobCid, '' FROM record_blob rb JOIN record r ON r.uri = rb.recordUri"
    " WHERE r.repoRev > ?3 AND (?1 IS NULL OR rb.blobCid > ?1) ORDER BY rb.blobCid LIMIT ?2";
/* One record per CID, as the reference's GROUP BY blobCid. */
static const char MISSING_SQL[] =
    "SELECT blobCid, MIN(recordUri) FROM record_blob WHERE (?1 IS NULL OR blobCid > ?1)"
    " AND NOT EXISTS (SELECT 1 FROM blob WHERE blob.cid = record_blob.blobCid)"
    " GROUP BY blobCid ORDER BY blobCid LIMIT ?2";

static int list_fn(void *ctx, pds_actor_view *v, atp_err *err)
{
    list_ctx *l = ctx;
    const char *sql = l->missing ? MISSING_SQL : l->since.len ? LIST_SINCE_SQL : LIST_SQL;
    sqlite3_stmt *st = NULL;
    int rc = prep(v->db, sql, &st, err);
    if (rc != 0) {
        return rc;
    }
    if (l->cursor) {
        pds_sqlx_bind_cid(st, 1, l->cursor);
    }
    sqlite3_bind_int64(st, 2, (sqlite3_int64)l->limit);
    if (!l->missing && l->since.len) {
        pds_sqlx_bind_slice(st, 3, l->since);
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        atp_cid cid;
        const char *uri = (const char *)sqlite3_column_text(st, 1);
        if (pds_sqlx_column_cid(st, 0, &cid) != 0) {
            continue; /* a malformed row: skip it rather than fail the whole listing */
        }
        l->n++;
        if (l->fn(l->ctx, &cid, atp_slice_str(uri ? uri : "")) != 0) {
            break;
        }
    }
    sqlite3_finalize(st);
    return step == SQLITE_ROW || step == SQLITE_DONE ? 0
                                                     : pds_sqlx_fail(v->db, err, "blob listing");
}

static int list_run(pds_actor_store *s, atp_slice did, list_ctx *l, size_t *n_out, atp_err *err)
{
    if (l->limit < 1 || l->limit > 1000) {
        return atp_err_set(err, ATP_EINVAL, 0, "limit must be between 1 and 1000");
    }
    int rc = pds_actor_store_with(s, did, false, list_fn, l, err);
    if (rc == 0 && n_out) {
        *n_out = l->n;
    }
    return rc;
}

int pds_actor_blob_list(pds_actor_store *s, atp_slice did, atp_slice since, const atp_cid *cursor,
                        size_t limit, pds_blob_list_fn fn, void *ctx, size_t *n_out, atp_err *err)
{
    list_ctx l = {since, cursor, limit, false, fn, ctx, 0};
    return list_run(s, did, &l, n_out, err);
}

int pds_actor_blob_list_missing(pds_actor_store *s, atp_slice did, const atp_cid *cursor,
                                size_t limit, pds_blob_list_fn fn, void *ctx, size_t *n_out,
                                atp_err *err)
{
    list_ctx l = {{NULL, 0}, cursor, limit, true, fn, ctx, 0};
    return list_run(s, did, &l, n_out, err);
}

/* ---- garbage collection ---- */

typedef struct gc_ctx {
    const char *cutoff;
    const atp_cid *check;
    size_t n_check;
    pds_blob_locked_fn drop, keep;
    void *ctx;
    size_t deleted;
} gc_ctx;

/* Deletes one expired temporary row (still unlinked: checked again in the statement) and its
 * bytes. A drop failure is not fatal: the row is gone, and the file pass of a later sweep
 * finds the bytes rowless. */
static int gc_delete(sqlite3 *db, gc_ctx *g, const atp_cid *cid, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db,
                  "DELETE FROM blob WHERE cid = ?1 AND temp = 1 AND NOT EXISTS"
                  " (SELECT 1 FROM record_blob WHERE blobCid = blob.cid)",
                  &st, err);
    if (rc != 0) {
        return rc;
    }
    pds_sqlx_bind_cid(st, 1, cid);
    rc = run_done(db, st, err);
    if (rc != 0 || sqlite3_changes(db) == 0) {
        return rc;
    }
    g->deleted++;
    atp_err e;
    (void)g->drop(g->ctx, cid, false, &e);
    return 0;
}

/* The expired rows, collected first (a statement must not stay open across the deletes). */
static int gc_rows(sqlite3 *db, gc_ctx *g, atp_err *err)
{
    enum { BATCH = 256 };
    atp_cid cids[BATCH];
    size_t n = 0;
    sqlite3_stmt *st = NULL;
    int rc = prep(db,
                  "SELECT cid FROM blob WHERE temp = 1 AND takedownRef IS NULL AND createdAt < ?1"
                  " ORDER BY cid LIMIT 256",
                  &st, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_bind_text(st, 1, g->cutoff, -1, SQLITE_TRANSIENT);
    while (n < BATCH && sqlite3_step(st) == SQLITE_ROW) {
        n += pds_sqlx_column_cid(st, 0, &cids[n]) == 0 ? 1 : 0;
    }
    sqlite3_finalize(st);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = gc_delete(db, g, &cids[i], err);
    }
    return rc;
}

/* Files found in the temporary area: move referenced ones, drop rowless ones. */
static int gc_files(sqlite3 *db, gc_ctx *g, atp_err *err)
{
    for (size_t i = 0; i < g->n_check; i++) {
        pds_blob_row row;
        bool found = false;
        int rc = row_read(db, &g->check[i], &row, &found, err);
        if (rc != 0) {
            return rc;
        }
        if (found && !row.temp) {
            rc = g->keep(g->ctx, &g->check[i], true, err);
        } else if (!found) {
            rc = g->drop(g->ctx, &g->check[i], false, err);
        }
        if (rc != 0 && rc != ATP_ENOTFOUND) {
            return rc;
        }
    }
    return 0;
}

static int gc_fn(void *ctx, pds_actor_view *v, atp_err *err)
{
    gc_ctx *g = ctx;
    int rc = gc_rows(v->db, g, err);
    return rc ? rc : gc_files(v->db, g, err);
}

int pds_actor_blob_gc(pds_actor_store *s, atp_slice did, const char *cutoff_iso,
                      const atp_cid *check, size_t n_check, pds_blob_locked_fn drop,
                      pds_blob_locked_fn keep, void *ctx, size_t *n_deleted, atp_err *err)
{
    gc_ctx g = {cutoff_iso, check, n_check, drop, keep, ctx, 0};
    int rc = pds_actor_store_with(s, did, false, gc_fn, &g, err);
    if (rc == 0 && n_deleted) {
        *n_deleted = g.deleted;
    }
    return rc;
}
