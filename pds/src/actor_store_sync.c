/* pds/src/actor_store_sync.c: sync reads over the actor store (see actor_store_sync.h): the
 * streamed repo export on a snapshot connection, record proofs, raw blocks, and the pure
 * parsers of the sync endpoints' parameters. */
#include "actor_store_sync.h"
#include "actor_store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/blockstore_sqlite.h"
#include "atp/car.h"
#include "atp/tid.h"
#include "sqlx.h"

/* ---- parameters ---- */

int pds_sync_check_since(atp_slice since, atp_err *err)
{
    uint64_t micros;
    unsigned clock_id;
    if (atp_tid_decode(since, &micros, &clock_id, NULL) != 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "since must be a valid tid");
    }
    return 0;
}

int pds_sync_parse_cid(atp_slice s, atp_cid *out, atp_err *err)
{
    /* bounded before parsing: a query value can be as long as the request head allows */
    if (s.len == 0 || s.len >= ATP_CID_STR_MAX) {
        return atp_err_set(err, ATP_EINVAL, 0, "cids must be cid strings");
    }
    if (atp_cid_parse(s, 0, out, NULL) != 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "cids must be cid strings");
    }
    return 0;
}

static const uint8_t *find_sep(atp_slice s, size_t from)
{
    for (size_t i = from; i + 1 < s.len; i++) {
        if (s.ptr[i] == ':' && s.ptr[i + 1] == ':') {
            return s.ptr + i;
        }
    }
    return NULL;
}

int pds_sync_cursor_parse(atp_slice s, pds_sync_cursor *out, atp_err *err)
{
    const uint8_t *sep = find_sep(s, 0);
    size_t n_ms = sep ? (size_t)(sep - s.ptr) : 0;
    size_t did_off = n_ms + 2;
    /* the reference splits on "::" and wants exactly two non-empty parts */
    if (!sep || n_ms == 0 || n_ms > 15 || did_off >= s.len || find_sep(s, did_off) ||
        s.len - did_off > PDS_SYNC_CURSOR_DID_MAX) {
        return atp_err_set(err, ATP_EINVAL, 0, "Malformed cursor");
    }
    int64_t ms = 0;
    for (size_t i = 0; i < n_ms; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9') {
            return atp_err_set(err, ATP_EINVAL, i, "Malformed cursor");
        }
        ms = ms * 10 + (s.ptr[i] - '0');
    }
    for (size_t i = did_off; i < s.len; i++) {
        if (s.ptr[i] <= ' ' || s.ptr[i] == 0x7f) { /* no DID holds these (nor NULs) */
            return atp_err_set(err, ATP_EINVAL, i, "Malformed cursor");
        }
    }
    out->ms = ms;
    memcpy(out->did, s.ptr + did_off, s.len - did_off);
    out->did[s.len - did_off] = '\0';
    return 0;
}

int pds_sync_cursor_format(int64_t ms, atp_slice did, char *out, size_t cap)
{
    if (ms < 0 || did.len == 0 || did.len > PDS_SYNC_CURSOR_DID_MAX) {
        return ATP_EINVAL;
    }
    int n = snprintf(out, cap, "%lld::%.*s", (long long)ms, (int)did.len, (const char *)did.ptr);
    return n < 0 || (size_t)n >= cap ? ATP_ELIMIT : 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = y / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse: y/m/d of a day count (>= 0 here). */
static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    z += 719468;
    int64_t era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

/* n decimal digits at p, or -1. */
static int64_t digits(const uint8_t *p, size_t n)
{
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static bool iso_shape_ok(atp_slice s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    if (s.len < 20 || s.ptr[s.len - 1] != 'Z') {
        return false;
    }
    for (size_t i = 0; i < 19; i++) {
        bool want_digit = shape[i] == 'd';
        bool is_digit = s.ptr[i] >= '0' && s.ptr[i] <= '9';
        if (want_digit ? !is_digit : s.ptr[i] != (uint8_t)shape[i]) {
            return false;
        }
    }
    return true;
}

/* The fraction ".f{1,9}" between the seconds and 'Z' as ms (truncated); -1 if malformed. */
static int64_t iso_fraction_ms(atp_slice s)
{
    size_t n = s.len - 20; /* bytes between seconds and Z */
    if (n == 0) {
        return 0;
    }
    if (s.ptr[19] != '.' || n < 2 || n > 10 || digits(s.ptr + 20, n - 1) < 0) {
        return -1;
    }
    int64_t ms = 0;
    for (size_t i = 0; i < 3; i++) {
        ms = ms * 10 + (i < n - 1 ? s.ptr[20 + i] - '0' : 0);
    }
    return ms;
}

int pds_sync_iso_to_ms(atp_slice iso, int64_t *ms)
{
    if (!iso_shape_ok(iso)) {
        return ATP_EINVAL;
    }
    int64_t y = digits(iso.ptr, 4), mo = digits(iso.ptr + 5, 2), d = digits(iso.ptr + 8, 2);
    int64_t h = digits(iso.ptr + 11, 2), mi = digits(iso.ptr + 14, 2);
    int64_t sec = digits(iso.ptr + 17, 2), frac = iso_fraction_ms(iso);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59 ||
        frac < 0) {
        return ATP_EINVAL;
    }
    int64_t days = days_from_civil(y, mo, d);
    int64_t cy, cm, cd;
    civil_from_days(days, &cy, &cm, &cd);
    if (cd != d) { /* 31 April and the like */
        return ATP_EINVAL;
    }
    *ms = ((days * 24 + h) * 60 + mi) * 60000 + sec * 1000 + frac;
    return 0;
}

int pds_sync_ms_to_iso(int64_t ms, char out[32])
{
    if (ms < 0 || ms > INT64_C(253402300799999)) {
        return ATP_EINVAL;
    }
    int64_t y, m, d, days = ms / 86400000, rest = ms % 86400000;
    civil_from_days(days, &y, &m, &d);
    /* the range check above keeps this at 24 characters; the wide buffer only quiets gcc's
     * format-truncation analysis, which cannot see that */
    char tmp[96];
    int n = snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y, (int)m,
                     (int)d, (int)(rest / 3600000), (int)(rest / 60000 % 60),
                     (int)(rest / 1000 % 60), (int)(rest % 1000));
    if (n < 0 || n >= 32) {
        return ATP_EINVAL;
    }
    memcpy(out, tmp, (size_t)n + 1);
    return 0;
}

/* ---- the streamed export ---- */

struct pds_sync_export {
    sqlite3 *db;
    sqlite3_stmt *st; /* the block scan; NULL once finished */
    atp_car_writer w;
    atp_buf *cur; /* where the writer appends during one next() call */
    atp_cid head;
    bool header_done, done;
    uint64_t n_blocks;
};

static int x_err(pds_sync_export *x, atp_err *err, const char *what)
{
    return pds_sqlx_fail(x->db, err, what);
}

static int x_append(void *ctx, atp_slice bytes)
{
    pds_sync_export *x = ctx;
    atp_buf_append(x->cur, bytes.ptr, bytes.len);
    return x->cur->err ? ATP_ELIMIT : 0;
}

void pds_sync_export_close(pds_sync_export *x)
{
    if (!x) {
        return;
    }
    sqlite3_finalize(x->st);
    if (x->db) {
        (void)sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL); /* ends the snapshot */
        sqlite3_close(x->db);
    }
    free(x);
}

/* A connection of our own, in a read transaction that the head query pins to one snapshot.
 * Read-write open (never used to write): a read-only connection cannot always attach to a WAL
 * file whose -shm is absent. Small page cache: the export reads each page about once. */
static int x_open_db(pds_sync_export *x, const char *path, atp_err *err)
{
    if (sqlite3_open_v2(path, &x->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        return x_err(x, err, "open account file");
    }
    sqlite3_busy_timeout(x->db, 5000);
    if (sqlite3_exec(x->db, "PRAGMA cache_size=-512; BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        return x_err(x, err, "begin snapshot");
    }
    return 0;
}

static int x_read_head(pds_sync_export *x, atp_slice did, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(x->db, "SELECT cid FROM repo_root LIMIT 1", -1, &st, NULL) !=
        SQLITE_OK) {
        /* no repo_root table: the file was made but never got a commit */
        return atp_err_set(err, ATP_ENOTFOUND, 0, "Could not find repo for DID: %.*s",
                           (int)did.len, (const char *)did.ptr);
    }
    int step = sqlite3_step(st);
    int rc = 0;
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = x_err(x, err, "read repo_root");
    } else if (step != SQLITE_ROW || pds_sqlx_column_cid(st, 0, &x->head) != 0) {
        rc = atp_err_set(err, ATP_ENOTFOUND, 0, "Could not find repo for DID: %.*s", (int)did.len,
                         (const char *)did.ptr);
    }
    sqlite3_finalize(st);
    return rc;
}

static int x_prepare_scan(pds_sync_export *x, atp_slice since, atp_err *err)
{
    /* rev > '' is every block; the (rev) index holds cid too, so this walks it backwards */
    if (sqlite3_prepare_v2(x->db,
                           "SELECT cid, data FROM repo_block WHERE rev > ?1"
                           " ORDER BY rev DESC, cid DESC",
                           -1, &x->st, NULL) != SQLITE_OK) {
        return x_err(x, err, "prepare block scan");
    }
    /* never NULL: rev > NULL matches nothing */
    sqlite3_bind_text(x->st, 1, since.ptr ? (const char *)since.ptr : "", (int)since.len,
                      SQLITE_TRANSIENT);
    return 0;
}

int pds_sync_export_open(pds_actor_store *s, atp_slice did, atp_slice since,
                         pds_sync_export **out, pds_commit_info *head, atp_err *err)
{
    char path[4096];
    int rc = pds_actor_store_path(s, did, path, sizeof path, err);
    if (rc != 0) {
        return rc;
    }
    if (!pds_actor_store_exists(s, did)) {
        return atp_err_set(err, ATP_ENOTFOUND, 0, "Could not find repo for DID: %.*s",
                           (int)did.len, (const char *)did.ptr);
    }
    /* the snapshot is of the file: it must hold every acknowledged commit first */
    rc = pds_actor_store_flush(s, did, err);
    if (rc != 0) {
        return rc;
    }
    pds_sync_export *x = atp_xcalloc(1, sizeof *x);
    atp_car_writer_init_fn(&x->w, x_append, x);
    rc = x_open_db(x, path, err);
    rc = rc ? rc : x_read_head(x, did, err);
    rc = rc ? rc : x_prepare_scan(x, since, err);
    if (rc != 0) {
        pds_sync_export_close(x);
        return rc;
    }
    if (head) {
        memset(head, 0, sizeof *head);
        head->cid = x->head;
    }
    *out = x;
    return 0;
}

/* One row of the scan into the CAR. */
static int x_row(pds_sync_export *x, atp_err *err)
{
    atp_cid cid;
    if (pds_sqlx_column_cid(x->st, 0, &cid) != 0) {
        return atp_err_set(err, ATP_EIO, 0, "bad block row");
    }
    const void *d = sqlite3_column_blob(x->st, 1);
    size_t dn = (size_t)sqlite3_column_bytes(x->st, 1);
    int rc = atp_car_write_block(&x->w, &cid, atp_slice_make(d ? d : "", dn));
    x->n_blocks += rc == 0;
    return rc ? atp_err_set(err, rc, 0, "CAR output over its limit") : 0;
}

/* The scan is over: release the statement and the snapshot early (the WAL can checkpoint). */
static void x_finish(pds_sync_export *x)
{
    sqlite3_finalize(x->st);
    x->st = NULL;
    (void)sqlite3_exec(x->db, "COMMIT", NULL, NULL, NULL);
    x->done = true;
}

int pds_sync_export_next(pds_sync_export *x, atp_buf *out, size_t budget, bool *done,
                         atp_err *err)
{
    size_t start = out->len;
    x->cur = out;
    if (!x->header_done) {
        x->header_done = true;
        if (atp_car_write_header(&x->w, &x->head, 1) != 0) {
            return atp_err_set(err, ATP_ELIMIT, 0, "CAR output over its limit");
        }
    }
    int rc = 0;
    while (rc == 0 && !x->done && out->len - start < budget) {
        int step = sqlite3_step(x->st);
        if (step == SQLITE_DONE) {
            x_finish(x);
        } else if (step == SQLITE_ROW) {
            rc = x_row(x, err);
        } else {
            rc = x_err(x, err, "block scan");
        }
    }
    if (rc == 0) {
        *done = x->done;
    }
    return rc;
}

uint64_t pds_sync_export_blocks(const pds_sync_export *x)
{
    return x->n_blocks;
}

/* ---- small reads through the locked view ---- */

typedef struct proof_ctx {
    atp_slice coll, rkey;
    atp_buf *out;
} proof_ctx;

static int no_repo(pds_actor_view *v, atp_err *err)
{
    return atp_err_set(err, ATP_ENOTFOUND, 0, "Could not find repo for DID: %.*s",
                       (int)v->did.len, (const char *)v->did.ptr);
}

static int proof_fn(void *ctx, pds_actor_view *v, atp_err *err)
{
    proof_ctx *p = ctx;
    char path[ATP_REPO_MAX_PATH + 1];
    if (!v->repo) {
        return no_repo(v, err);
    }
    if (p->coll.len + 1 + p->rkey.len > ATP_REPO_MAX_PATH) {
        return atp_err_set(err, ATP_EINVAL, 0, "record path too long");
    }
    memcpy(path, p->coll.ptr, p->coll.len);
    path[p->coll.len] = '/';
    memcpy(path + p->coll.len + 1, p->rkey.ptr, p->rkey.len);
    atp_car_writer w;
    atp_car_writer_init_buf(&w, p->out);
    return atp_repo_write_proof(v->repo, atp_slice_make(path, p->coll.len + 1 + p->rkey.len), &w,
                                err);
}

int pds_sync_record_proof(pds_actor_store *s, atp_slice did, atp_slice collection,
                          atp_slice rkey, atp_buf *out, atp_err *err)
{
    proof_ctx p = {collection, rkey, out};
    return pds_actor_store_with(s, did, false, proof_fn, &p, err);
}

typedef struct blocks_ctx {
    const atp_cid *cids;
    size_t n;
    atp_buf *out;
    bool *missing;
} blocks_ctx;

static bool seen_before(const atp_cid *cids, size_t i)
{
    for (size_t j = 0; j < i; j++) {
        if (atp_cid_eq(&cids[j], &cids[i])) {
            return true;
        }
    }
    return false;
}

/* Writes each block (while none is missing) and flags the missing ones. */
static int blocks_each(blocks_ctx *b, pds_actor_view *v, atp_car_writer *w, atp_arena *a,
                       bool *any_missing, atp_err *err)
{
    for (size_t i = 0; i < b->n; i++) {
        atp_slice data;
        if (seen_before(b->cids, i)) {
            continue;
        }
        int rc = atp_blockstore_get(v->bs, &b->cids[i], a, &data, err);
        if (rc == ATP_ENOTFOUND) {
            b->missing[i] = *any_missing = true;
            continue;
        }
        rc = rc ? rc : *any_missing ? 0 : atp_car_write_block(w, &b->cids[i], data);
        atp_arena_reset(a);
        if (rc != 0) {
            return rc == ATP_ELIMIT ? atp_err_set(err, rc, 0, "blocks over the size limit") : rc;
        }
    }
    return 0;
}

static int blocks_fn(void *ctx, pds_actor_view *v, atp_err *err)
{
    blocks_ctx *b = ctx;
    atp_car_writer w;
    bool any = false;
    atp_car_writer_init_buf(&w, b->out);
    if (atp_car_write_header(&w, NULL, 0) != 0) {
        return atp_err_set(err, ATP_ELIMIT, 0, "blocks over the size limit");
    }
    atp_arena *a = atp_arena_create(0);
    int rc = blocks_each(b, v, &w, a, &any, err);
    atp_arena_destroy(a);
    if (rc == 0 && any) {
        rc = atp_err_set(err, ATP_ENOTFOUND, 0, "Could not find cids");
    }
    return rc;
}

int pds_sync_blocks(pds_actor_store *s, atp_slice did, const atp_cid *cids, size_t n,
                    atp_buf *out, bool *missing, atp_err *err)
{
    if (n > PDS_SYNC_MAX_CIDS) {
        return atp_err_set(err, ATP_ELIMIT, 0, "too many cids (max %d)", PDS_SYNC_MAX_CIDS);
    }
    memset(missing, 0, n * sizeof *missing);
    blocks_ctx b = {cids, n, out, missing};
    return pds_actor_store_with(s, did, false, blocks_fn, &b, err);
}

typedef struct count_ctx {
    uint64_t blocks, bytes;
} count_ctx;

static int count_fn(void *ctx, pds_actor_view *v, atp_err *err)
{
    count_ctx *c = ctx;
    return atp_blockstore_sqlite_count(v->bs, &c->blocks, &c->bytes, err);
}

int pds_sync_block_count(pds_actor_store *s, atp_slice did, uint64_t *blocks, uint64_t *bytes,
                         atp_err *err)
{
    count_ctx c = {0, 0};
    int rc = pds_actor_store_with(s, did, false, count_fn, &c, err);
    if (rc == 0) {
        *blocks = c.blocks;
        if (bytes) {
            *bytes = c.bytes;
        }
    }
    return rc;
}
