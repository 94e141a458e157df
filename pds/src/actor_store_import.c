/* pds/src/actor_store_import.c: importRepo's storage side, account file counts and wipe (see
 * actor_store_import.h). The CAR is verified block by block while it is fed, outside the
 * account's lock; the tree walk, the store and the index run under the lock in one
 * transaction, so a crash leaves either the old repo or the whole new one. */
#include "actor_store_import.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "actor_store_int.h"
#include "atp/cbor.h"
#include "sqlx.h"

#define IMPORT_CHUNK (64 * 1024) /* feed size: blocks are hashed as each one completes */

typedef struct import_job {
    atp_repo_importer *im;
    pds_import_hook hook;
    void *hook_ctx;
    atp_arena *a;       /* commit fields (finish) */
    atp_arena *scratch; /* one record at a time */
    atp_repo_info info;
    pds_import_result res;
    sqlite3 *db;
    sqlite3_stmt *ins_record, *ins_link;
    atp_blockstore *bs;
    atp_slice did;
} import_job;

/* ---- the record index ---- */

/* Links every blob ref ({"$type": "blob", "ref": link}) in a record to it. Depth is bounded
 * by the decoder's limits. */
static int link_blobs(import_job *j, atp_slice uri, const atp_cbor *v, atp_err *err)
{
    int rc = 0;
    if (v->type == ATP_CBOR_ARRAY) {
        for (size_t i = 0; i < v->u.arr.n && rc == 0; i++) {
            rc = link_blobs(j, uri, &v->u.arr.items[i], err);
        }
        return rc;
    }
    if (v->type != ATP_CBOR_MAP) {
        return 0;
    }
    const atp_cbor *t = atp_cbor_map_get_str(v, "$type");
    const atp_cbor *ref = atp_cbor_map_get_str(v, "ref");
    atp_cid cid;
    if (t && t->type == ATP_CBOR_STRING && atp_slice_eq_str(t->u.str, "blob") && ref &&
        atp_cbor_get_cid(ref, &cid) == 0) {
        pds_sqlx_bind_cid(j->ins_link, 1, &cid);
        sqlite3_bind_text(j->ins_link, 2, (const char *)uri.ptr, (int)uri.len, SQLITE_STATIC);
        rc = pds_sqlx_step_done(j->db, j->ins_link, err);
        j->res.n_blob_refs += rc == 0 && sqlite3_changes(j->db) > 0 ? 1 : 0;
        return rc;
    }
    for (size_t i = 0; i < v->u.map.n && rc == 0; i++) {
        rc = link_blobs(j, uri, &v->u.map.pairs[i].val, err);
    }
    return rc;
}

/* One record row: uri, cid, collection, rkey, repoRev, indexedAt. */
static int insert_record(import_job *j, atp_slice uri, atp_slice key, const atp_cid *cid,
                         const char *now, atp_err *err)
{
    const uint8_t *slash = memchr(key.ptr, '/', key.len);
    size_t cl = slash ? (size_t)(slash - key.ptr) : key.len;
    sqlite3_stmt *st = j->ins_record;
    sqlite3_bind_text(st, 1, (const char *)uri.ptr, (int)uri.len, SQLITE_STATIC);
    pds_sqlx_bind_cid(st, 2, cid);
    sqlite3_bind_text(st, 3, (const char *)key.ptr, (int)cl, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, slash ? (const char *)slash + 1 : "",
                      slash ? (int)(key.len - cl - 1) : 0, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, (const char *)j->info.commit.rev.ptr, (int)j->info.commit.rev.len,
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
    return pds_sqlx_step_done(j->db, st, err);
}

/* atp_mst_list callback: indexes one record and its blob refs. */
static int index_one(void *ctx, atp_slice key, const atp_cid *cid)
{
    import_job *j = ctx;
    char uri[PDS_URI_MAX], now[32];
    atp_slice bytes;
    atp_cbor *rec;
    atp_err *err = NULL; /* failures surface through the walk's own error */
    int n = snprintf(uri, sizeof uri, "at://%.*s/%.*s", (int)j->did.len, (const char *)j->did.ptr,
                     (int)key.len, (const char *)key.ptr);
    if (n < 0 || (size_t)n >= sizeof uri) {
        return ATP_ELIMIT;
    }
    atp_arena_reset(j->scratch);
    pds_sqlx_time_now(now);
    int rc = insert_record(j, atp_slice_make((const uint8_t *)uri, (size_t)n), key, cid, now, err);
    rc = rc ? rc : atp_blockstore_get(j->bs, cid, j->scratch, &bytes, err);
    rc = rc ? rc : atp_cbor_decode(j->scratch, bytes, NULL, &rec, err);
    rc = rc ? rc : link_blobs(j, atp_slice_make((const uint8_t *)uri, (size_t)n), rec, err);
    j->res.n_records += rc == 0;
    return rc;
}

static int prepare_index(import_job *j, atp_err *err)
{
    if (sqlite3_prepare_v2(j->db,
                           "INSERT OR REPLACE INTO record (uri, cid, collection, rkey, repoRev,"
                           " indexedAt) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           -1, &j->ins_record, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(j->db,
                           "INSERT OR IGNORE INTO record_blob (blobCid, recordUri) VALUES (?1, ?2)",
                           -1, &j->ins_link, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(j->db, err, "prepare index");
    }
    return 0;
}

/* Walks the imported tree (every key, in order) and writes the index. */
static int index_records(import_job *j, atp_err *err)
{
    atp_repo *repo = NULL;
    atp_mst_list_opts lo;
    memset(&lo, 0, sizeof lo);
    int rc = prepare_index(j, err);
    rc = rc ? rc : atp_repo_open(j->bs, &j->info.head, NULL, NULL, &repo, err);
    if (rc == 0) {
        rc = atp_mst_list(atp_repo_tree(repo), &lo, index_one, j, err);
        if (rc != 0 && err && !err->msg[0]) {
            atp_err_set(err, rc, 0, "indexing the imported records failed");
        }
    }
    atp_repo_destroy(repo);
    sqlite3_finalize(j->ins_record);
    sqlite3_finalize(j->ins_link);
    j->ins_record = j->ins_link = NULL;
    return rc;
}

/* ---- the transaction ---- */

static int put_root(import_job *j, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    if (sqlite3_prepare_v2(
            j->db, "INSERT INTO repo_root (did, cid, rev, indexedAt) VALUES (?1, ?2, ?3, ?4)", -1,
            &st, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(j->db, err, "prepare root");
    }
    pds_sqlx_time_now(now);
    sqlite3_bind_text(st, 1, (const char *)j->did.ptr, (int)j->did.len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, j->info.head.bytes, j->info.head.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, (const char *)j->info.commit.rev.ptr, (int)j->info.commit.rev.len,
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : pds_sqlx_fail(j->db, err, "repo_root");
    sqlite3_finalize(st);
    return rc;
}

/* The result and the hook, once blocks, index and root are in. */
static int finish_result(import_job *j, atp_err *err)
{
    atp_slice block;
    pds_commit_info *ci = &j->res.commit;
    size_t rl =
        j->info.commit.rev.len < sizeof ci->rev - 1 ? j->info.commit.rev.len : sizeof ci->rev - 1;
    ci->cid = j->info.head;
    memset(ci->rev, 0, sizeof ci->rev);
    memcpy(ci->rev, j->info.commit.rev.ptr, rl);
    j->res.n_blocks = j->info.n_blocks;
    if (!j->hook) {
        return 0;
    }
    int rc = atp_blockstore_get(j->bs, &j->info.head, j->a, &block, err);
    return rc ? rc : j->hook(j->hook_ctx, j->db, j->did, &ci->cid, block, ci->rev, err);
}

/* Everything of the import inside the open transaction. The old repo goes first: blocks are
 * shared by CID, so clearing after the put could drop blocks of the new tree. */
static int import_body(import_job *j, atp_err *err)
{
    int rc = pds_sqlx_exec(j->db,
                           "DELETE FROM repo_block; DELETE FROM record; DELETE FROM record_blob;"
                           " DELETE FROM repo_root;",
                           err);
    rc = rc ? rc : atp_repo_importer_finish(j->im, j->bs, j->a, &j->info, err);
    rc = rc ? rc : index_records(j, err);
    rc = rc ? rc : put_root(j, err);
    return rc ? rc : finish_result(j, err);
}

static int import_fn(void *ctx, pds_actor_view *v, atp_err *err)
{
    import_job *j = ctx;
    j->db = v->db;
    j->bs = v->bs;
    j->did = v->did;
    int rc = pds_sqlx_exec(v->db, "BEGIN IMMEDIATE", err);
    if (rc != 0) {
        return rc;
    }
    rc = import_body(j, err);
    rc = rc ? rc : pds_sqlx_exec(v->db, "COMMIT", err);
    if (rc != 0) {
        (void)sqlite3_exec(v->db, "ROLLBACK", NULL, NULL, NULL);
    }
    /* the handle must follow the stored head, whichever it is now */
    int rl = pds_actor_view_reload(v, rc ? NULL : err);
    return rc ? rc : rl;
}

/* Feeds the whole CAR in chunks: a bad block stops it early, before the account is locked. */
static int feed_all(atp_repo_importer *im, atp_slice car, atp_err *err)
{
    int rc = 0;
    for (size_t off = 0; off < car.len && rc == 0; off += IMPORT_CHUNK) {
        size_t n = car.len - off < IMPORT_CHUNK ? car.len - off : IMPORT_CHUNK;
        rc = atp_repo_importer_feed(im, atp_slice_make(car.ptr + off, n), err);
    }
    return rc;
}

int pds_actor_store_import(pds_actor_store *s, atp_slice did, atp_slice car, const atp_key *key,
                           pds_import_hook hook, void *hook_ctx, pds_import_result *out,
                           atp_err *err)
{
    if (!key) {
        return atp_err_set(err, ATP_EINVAL, 0, "a verification key is required");
    }
    atp_repo_import_opts o;
    memset(&o, 0, sizeof o);
    o.key = key;
    o.did = did;
    import_job j;
    memset(&j, 0, sizeof j);
    j.hook = hook;
    j.hook_ctx = hook_ctx;
    j.im = atp_repo_importer_create(&o);
    j.a = atp_arena_create(0);
    j.scratch = atp_arena_create(0);
    int rc = feed_all(j.im, car, err);
    rc = rc ? rc : pds_actor_store_with(s, did, true, import_fn, &j, err);
    if (rc == 0) {
        *out = j.res;
    }
    atp_repo_importer_destroy(j.im);
    atp_arena_destroy(j.scratch);
    atp_arena_destroy(j.a);
    return rc;
}

/* ---- counts and wipe ---- */

static int64_t count_of(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

static int counts_fn(void *ctx, pds_actor_view *v, atp_err *err)
{
    pds_repo_counts *c = ctx;
    (void)err;
    c->blocks = count_of(v->db, "SELECT count(*) FROM repo_block");
    c->records = count_of(v->db, "SELECT count(*) FROM record");
    c->expected_blobs = count_of(v->db, "SELECT count(DISTINCT blobCid) FROM record_blob");
    c->imported_blobs = count_of(v->db, "SELECT count(*) FROM blob");
    return 0;
}

int pds_actor_store_counts(pds_actor_store *s, atp_slice did, pds_repo_counts *out, atp_err *err)
{
    pds_repo_counts c;
    memset(&c, 0, sizeof c);
    int rc = pds_actor_store_with(s, did, false, counts_fn, &c, err);
    if (rc == 0) {
        *out = c;
    }
    return rc;
}

static int wipe_fn(void *ctx, pds_actor_view *v, atp_err *err)
{
    (void)ctx;
    int rc = pds_sqlx_exec(v->db,
                           "BEGIN IMMEDIATE; DELETE FROM repo_block; DELETE FROM record;"
                           " DELETE FROM record_blob; DELETE FROM blob; DELETE FROM repo_root;"
                           " DELETE FROM seq_outbox; COMMIT;",
                           err);
    if (rc != 0) {
        (void)sqlite3_exec(v->db, "ROLLBACK", NULL, NULL, NULL);
    }
    int rl = pds_actor_view_reload(v, rc ? NULL : err);
    return rc ? rc : rl;
}

int pds_actor_store_wipe(pds_actor_store *s, atp_slice did, atp_err *err)
{
    return pds_actor_store_with(s, did, false, wipe_fn, NULL, err);
}
