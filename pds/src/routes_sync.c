/* pds/src/routes_sync.c: com.atproto.sync.* of the PDS (issue 6): getRepo (streamed CAR, full
 * or `since` a rev), getLatestCommit, getRecord (proof CAR), getBlocks, listRepos,
 * getRepoStatus; requestCrawl and notifyOfUpdate are relay methods (501). getBlob/listBlobs are
 * the blob slice's (routes_blob.c).
 *
 * Statuses and error names are the reference PDS's: its account checks throw
 * InvalidRequestError, so RepoNotFound, RepoTakendown and RepoDeactivated are 400. A taken-down
 * or deactivated repo stays readable by its owner (Bearer token) and the admin (Basic).
 * Every handler runs on the worker pool (SQLite); getRepo then streams from the loop thread in
 * bounded batches read from a snapshot (actor_store_sync.h), so memory stays flat for any size
 * of repo and the loop never waits long on SQLite. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/log.h"
#include "atp/syntax.h"

#include "actor_store.h"
#include "actor_store_sync.h"
#include "db.h"
#include "pds.h"
#include "sqlx.h"

#define SYNC_BATCH       (256u << 10) /* bytes read from SQLite per loop turn */
#define SYNC_STREAMS_MAX 64           /* getRepo streams at once (each holds a connection) */
#define CAR_TYPE         "application/vnd.ipld.car"

static atomic_int n_streams;

static void bad_request(atp_req *r, const char *msg)
{
    atp_req_error_status(r, 400, "InvalidRequest", msg);
}

static void internal_error(atp_req *r, const atp_err *err)
{
    atp_req_error_status(r, 500, "InternalServerError", err->msg);
}

/* ---- parameters ---- */

/* A required string parameter. Sends the error (the reference's wording). */
static int q_required(atp_req *r, const char *name, atp_slice *out)
{
    char msg[96];
    if (!atp_req_query(r, name, out) || out->len == 0) {
        snprintf(msg, sizeof msg, "Params must have the property \"%s\"", name);
        bad_request(r, msg);
        return ATP_EINVAL;
    }
    return 0;
}

/* The `did` parameter: present and a valid DID. Sends the error. */
static int q_did(atp_req *r, atp_slice *did)
{
    int rc = q_required(r, "did", did);
    if (rc == 0 && (did->len > PDS_DID_MAX || !atp_syntax_is_did(*did))) {
        bad_request(r, "did must be a valid did");
        rc = ATP_EINVAL;
    }
    return rc;
}

/* ---- account availability ---- */

/* Optional auth as the reference's authorizationOrAdminTokenOptional: no header = public; a
 * header that does not verify is refused (the helper sends the error). *priv = the caller is
 * the repo's owner or the admin. */
static int optional_auth(pds_ctx *ctx, atp_req *r, atp_slice did, bool *priv)
{
    atp_slice h;
    pds_auth a;
    *priv = false;
    if (!atp_req_header(r, "authorization", &h)) {
        return 0;
    }
    bool basic = h.len >= 6 && strncmp((const char *)h.ptr, "Basic ", 6) == 0;
    int rc = basic ? pds_auth_admin(ctx, r, &a) : pds_auth_access(ctx, r, &a);
    if (rc == 0) {
        *priv = a.admin || atp_slice_eq_str(did, a.did);
    }
    return rc;
}

static void did_copy(atp_slice did, char out[PDS_DID_MAX + 1])
{
    memcpy(out, did.ptr, did.len);
    out[did.len] = '\0';
}

/* The reference's assertRepoAvailability: unknown -> RepoNotFound; unless `priv`, taken down
 * -> RepoTakendown, deactivated -> RepoDeactivated. Sends the error. */
static int check_available(pds_ctx *ctx, atp_req *r, atp_slice did, bool priv, pds_account *acc)
{
    char ident[PDS_DID_MAX + 1], msg[PDS_DID_MAX + 64];
    did_copy(did, ident);
    if (pds_db_account_get(ctx->db, ident, acc) != 0) {
        snprintf(msg, sizeof msg, "Could not find repo for DID: %s", ident);
        atp_req_error_status(r, 400, "RepoNotFound", msg);
        return ATP_ENOTFOUND;
    }
    if (priv || acc->status == PDS_ST_ACTIVE) {
        return 0;
    }
    bool td = acc->status == PDS_ST_TAKENDOWN;
    snprintf(msg, sizeof msg, "Repo has been %s: %s", td ? "takendown" : "deactivated", ident);
    atp_req_error_status(r, 400, td ? "RepoTakendown" : "RepoDeactivated", msg);
    return ATP_EFORBIDDEN;
}

/* did parameter, optional auth, availability: the preamble of the repo reads. */
static int repo_preamble(pds_ctx *ctx, atp_req *r, atp_slice *did)
{
    pds_account acc;
    bool priv;
    int rc = q_did(r, did);
    rc = rc ? rc : optional_auth(ctx, r, *did, &priv);
    return rc ? rc : check_available(ctx, r, *did, priv, &acc);
}

/* ---- getRepo: a CAR streamed from a snapshot ---- */

typedef struct repo_stream {
    pds_sync_export *x;
    atp_buf buf;
} repo_stream;

static void repo_stream_free(repo_stream *st)
{
    pds_sync_export_close(st->x);
    atp_buf_release(&st->buf);
    free(st);
    atomic_fetch_sub(&n_streams, 1);
}

/* Loop thread: the output drained; one bounded batch more, or the end. */
static void repo_writable(atp_req *r, void *arg)
{
    repo_stream *st = arg;
    bool done = false;
    atp_err err;
    atp_buf_reset(&st->buf);
    int rc = pds_sync_export_next(st->x, &st->buf, SYNC_BATCH, &done, &err);
    if (rc != 0) {
        /* the head is out: all we can do is cut the CAR short (it then fails to verify) */
        atp_logf(ATP_LOG_ERROR, "sync", "getRepo stream failed: %s", err.msg);
    } else if (atp_req_stream_write(r, atp_slice_make(st->buf.ptr, st->buf.len)) != 0) {
        rc = ATP_EIO; /* the client went away */
    }
    if (rc != 0 || done) {
        atp_req_stream_end(r);
        repo_stream_free(st);
    }
}

static int open_export(pds_ctx *ctx, atp_req *r, atp_slice did, atp_slice since,
                       pds_sync_export **x)
{
    atp_err err;
    char msg[PDS_DID_MAX + 64];
    int rc = pds_sync_export_open(ctx->actors, did, since, x, NULL, &err);
    if (rc == ATP_ENOTFOUND) {
        snprintf(msg, sizeof msg, "Could not find repo for DID: %.*s", (int)did.len,
                 (const char *)did.ptr);
        bad_request(r, msg);
    } else if (rc != 0) {
        internal_error(r, &err);
    }
    return rc;
}

static void get_repo(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    atp_slice did, since = {0};
    atp_err err;
    if (repo_preamble(ctx, r, &did) != 0) {
        return;
    }
    if (atp_req_query(r, "since", &since) && pds_sync_check_since(since, &err) != 0) {
        bad_request(r, err.msg);
        return;
    }
    if (atomic_fetch_add(&n_streams, 1) >= SYNC_STREAMS_MAX) {
        atomic_fetch_sub(&n_streams, 1);
        atp_req_error_status(r, 429, "RateLimitExceeded", "Too many repo exports at once");
        return;
    }
    pds_sync_export *x;
    if (open_export(ctx, r, did, since, &x) != 0) {
        atomic_fetch_sub(&n_streams, 1);
        return;
    }
    repo_stream *st = atp_xcalloc(1, sizeof *st);
    st->x = x;
    atp_buf_init(&st->buf, (size_t)8 << 20); /* a batch plus one block of at most 2 MiB */
    atp_req_stream_start(r, 200, CAR_TYPE, repo_writable, st);
}

/* ---- getLatestCommit, getRepoStatus ---- */

static void send_commit(atp_req *r, const pds_commit_info *ci)
{
    char cs[ATP_CID_STR_MAX];
    atp_cid_format_to(&ci->cid, cs, sizeof cs);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "cid", cs);
    cJSON_AddStringToObject(o, "rev", ci->rev);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

static void get_latest_commit(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    atp_slice did;
    pds_commit_info ci;
    atp_err err;
    char msg[PDS_DID_MAX + 64];
    if (repo_preamble(ctx, r, &did) != 0) {
        return;
    }
    int rc = pds_actor_store_root(ctx->actors, did, &ci, &err);
    if (rc == ATP_ENOTFOUND || rc == ATP_EINVAL) {
        snprintf(msg, sizeof msg, "Could not find root for DID: %.*s", (int)did.len,
                 (const char *)did.ptr);
        atp_req_error_status(r, 400, "RepoNotFound", msg);
    } else if (rc != 0) {
        internal_error(r, &err);
    } else {
        send_commit(r, &ci);
    }
}

static void get_repo_status(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    atp_slice did;
    pds_account acc;
    pds_commit_info ci;
    if (q_did(r, &did) != 0 || check_available(ctx, r, did, true, &acc) != 0) {
        return;
    }
    bool active = acc.status == PDS_ST_ACTIVE;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "did", acc.did);
    cJSON_AddBoolToObject(o, "active", active);
    if (!active) {
        cJSON_AddStringToObject(o, "status", pds_status_name(acc.status));
    } else if (pds_actor_store_root(ctx->actors, did, &ci, NULL) == 0) {
        cJSON_AddStringToObject(o, "rev", ci.rev);
    }
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

/* ---- getRecord: the proof CAR ---- */

static void get_record(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    atp_slice did, coll, rkey;
    atp_err err;
    atp_buf b;
    if (repo_preamble(ctx, r, &did) != 0 || q_required(r, "collection", &coll) != 0 ||
        q_required(r, "rkey", &rkey) != 0) {
        return;
    }
    atp_buf_init(&b, PDS_SYNC_PROOF_MAX);
    int rc = pds_sync_record_proof(ctx->actors, did, coll, rkey, &b, &err);
    if (rc == 0) {
        atp_req_respond(r, 200, CAR_TYPE, atp_slice_make(b.ptr, b.len));
    } else if (rc == ATP_EIO || rc == ATP_EINTERNAL) {
        internal_error(r, &err);
    } else {
        bad_request(r, err.msg); /* no repo, bad collection/rkey */
    }
    atp_buf_release(&b);
}

/* ---- getBlocks ---- */

/* Every `cids` value parsed into the request arena. Sends the error. */
static int q_cids(atp_req *r, atp_cid **out, size_t *n_out)
{
    atp_req_query_iter it;
    atp_slice v;
    size_t n = 0;
    atp_req_query_iter_init(r, &it, "cids");
    while (atp_req_query_next(r, &it, &v)) {
        if (++n > PDS_SYNC_MAX_CIDS) {
            bad_request(r, "Too many cids (max 1000)");
            return ATP_ELIMIT;
        }
    }
    if (n == 0) {
        bad_request(r, "Params must have the property \"cids\"");
        return ATP_EINVAL;
    }
    atp_cid *cids = atp_arena_calloc(atp_req_arena(r), n, sizeof *cids);
    atp_req_query_iter_init(r, &it, "cids");
    for (size_t i = 0; i < n && atp_req_query_next(r, &it, &v); i++) {
        if (pds_sync_parse_cid(v, &cids[i], NULL) != 0) {
            bad_request(r, "cids must be cid strings");
            return ATP_EINVAL;
        }
    }
    *out = cids;
    *n_out = n;
    return 0;
}

/* "Could not find cids: a,b,..." (bounded: the first few, then "..."). */
static void send_missing(atp_req *r, const atp_cid *cids, const bool *missing, size_t n)
{
    char msg[1024], cs[ATP_CID_STR_MAX];
    size_t len = (size_t)snprintf(msg, sizeof msg, "Could not find cids: ");
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (!missing[i]) {
            continue;
        }
        atp_cid_format_to(&cids[i], cs, sizeof cs);
        if (len + strlen(cs) + 5 >= sizeof msg) {
            snprintf(msg + len, sizeof msg - len, ",...");
            break;
        }
        len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s", first ? "" : ",", cs);
        first = false;
    }
    bad_request(r, msg);
}

static void get_blocks(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    atp_slice did;
    atp_cid *cids;
    size_t n;
    atp_err err;
    atp_buf b;
    if (repo_preamble(ctx, r, &did) != 0 || q_cids(r, &cids, &n) != 0) {
        return;
    }
    bool *missing = atp_arena_calloc(atp_req_arena(r), n, sizeof *missing);
    atp_buf_init(&b, PDS_SYNC_BLOCKS_MAX);
    int rc = pds_sync_blocks(ctx->actors, did, cids, n, &b, missing, &err);
    bool any_missing = false;
    for (size_t i = 0; i < n; i++) {
        any_missing = any_missing || missing[i];
    }
    if (rc == 0) {
        atp_req_respond(r, 200, CAR_TYPE, atp_slice_make(b.ptr, b.len));
    } else if (any_missing) {
        send_missing(r, cids, missing, n);
    } else if (rc == ATP_ENOTFOUND || rc == ATP_ELIMIT) {
        bad_request(r, err.msg);
    } else {
        internal_error(r, &err);
    }
    atp_buf_release(&b);
}

/* ---- listRepos ---- */

typedef struct repo_row {
    char *did;
    char created_at[32];
    pds_status status;
} repo_row;

typedef struct list_q {
    bool has_cursor;
    char after_iso[32];
    const char *after_did;
    int limit;
    atp_arena *a;
    repo_row *rows;
    size_t n;
} list_q;

static pds_status status_of_text(const char *s)
{
    if (s && strcmp(s, "takendown") == 0) {
        return PDS_ST_TAKENDOWN;
    }
    if (s && strcmp(s, "deactivated") == 0) {
        return PDS_ST_DEACTIVATED;
    }
    return PDS_ST_ACTIVE;
}

/* The page of accounts in (createdAt, did) order after the cursor: the reference's keyset. */
static int list_read(void *vctx, sqlite3 *conn, atp_err *err)
{
    list_q *q = vctx;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(conn,
                           "SELECT did, created_at, status FROM account WHERE status != 'deleted'"
                           " AND (?1 IS NULL OR created_at > ?1 OR (created_at = ?1 AND did > ?2))"
                           " ORDER BY created_at, did LIMIT ?3",
                           -1, &st, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(conn, err, "listRepos");
    }
    if (q->has_cursor) {
        sqlite3_bind_text(st, 1, q->after_iso, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, q->after_did, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int(st, 3, q->limit);
    while (q->n < (size_t)q->limit && sqlite3_step(st) == SQLITE_ROW) {
        repo_row *row = &q->rows[q->n++];
        const char *d = (const char *)sqlite3_column_text(st, 0);
        const char *c = (const char *)sqlite3_column_text(st, 1);
        row->did = atp_arena_dup(q->a, d ? d : "", d ? strlen(d) + 1 : 1);
        snprintf(row->created_at, sizeof row->created_at, "%s", c ? c : "");
        row->status = status_of_text((const char *)sqlite3_column_text(st, 2));
    }
    sqlite3_finalize(st);
    return 0;
}

/* limit (1..1000, default 500) and cursor. Sends the error. */
static int list_params(atp_req *r, list_q *q, pds_sync_cursor *cur)
{
    atp_slice v;
    q->limit = 500;
    if (atp_req_query(r, "limit", &v)) {
        long n = 0;
        bool ok = v.len > 0 && v.len <= 4;
        for (size_t i = 0; ok && i < v.len; i++) {
            ok = v.ptr[i] >= '0' && v.ptr[i] <= '9';
            n = n * 10 + (v.ptr[i] - '0');
        }
        if (!ok || n < 1 || n > 1000) {
            bad_request(r, "limit must be an integer from 1 to 1000");
            return ATP_EINVAL;
        }
        q->limit = (int)n;
    }
    if (atp_req_query(r, "cursor", &v) && v.len > 0) {
        if (pds_sync_cursor_parse(v, cur, NULL) != 0 ||
            pds_sync_ms_to_iso(cur->ms, q->after_iso) != 0) {
            bad_request(r, "Malformed cursor");
            return ATP_EINVAL;
        }
        q->has_cursor = true;
        q->after_did = cur->did;
    }
    return 0;
}

/* One repos[] entry; false when the account has no repo (the reference's inner join). */
static bool list_entry(pds_ctx *ctx, const repo_row *row, cJSON *arr)
{
    pds_commit_info ci;
    char cs[ATP_CID_STR_MAX];
    if (pds_actor_store_root(ctx->actors, atp_slice_str(row->did), &ci, NULL) != 0) {
        return false;
    }
    atp_cid_format_to(&ci.cid, cs, sizeof cs);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "did", row->did);
    cJSON_AddStringToObject(o, "head", cs);
    cJSON_AddStringToObject(o, "rev", ci.rev);
    cJSON_AddBoolToObject(o, "active", row->status == PDS_ST_ACTIVE);
    if (row->status != PDS_ST_ACTIVE) {
        cJSON_AddStringToObject(o, "status", pds_status_name(row->status));
    }
    cJSON_AddItemToArray(arr, o);
    return true;
}

static void add_cursor(cJSON *o, const repo_row *last)
{
    int64_t ms;
    char cur[PDS_SYNC_CURSOR_MAX];
    if (pds_sync_iso_to_ms(atp_slice_str(last->created_at), &ms) == 0 &&
        pds_sync_cursor_format(ms, atp_slice_str(last->did), cur, sizeof cur) == 0) {
        cJSON_AddStringToObject(o, "cursor", cur);
    }
}

static void list_repos(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_sync_cursor *cur = atp_arena_calloc(atp_req_arena(r), 1, sizeof *cur);
    list_q q = {.a = atp_req_arena(r)};
    atp_err err;
    if (list_params(r, &q, cur) != 0) {
        return;
    }
    q.rows = atp_arena_calloc(q.a, (size_t)q.limit, sizeof *q.rows);
    if (pds_db_read(ctx->db, list_read, &q, &err) != 0) {
        internal_error(r, &err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "repos");
    for (size_t i = 0; i < q.n; i++) {
        (void)list_entry(ctx, &q.rows[i], arr);
    }
    if (q.n > 0) {
        /* from the last account read, so a page of accounts without repos still advances */
        add_cursor(o, &q.rows[q.n - 1]);
    }
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

/* ---- relay methods ---- */

static void relay_only(atp_req *r, void *ud)
{
    (void)ud;
    atp_req_error_status(r, 501, "MethodNotImplemented",
                         "Method Not Implemented: this is a relay method, not served by a PDS");
}

void pds_routes_sync(atp_server *s, pds_ctx *ctx)
{
    static const struct {
        const char *method, *name;
        atp_handler_fn fn;
    } R[] = {
        {"GET", "getRepo", get_repo},
        {"GET", "getLatestCommit", get_latest_commit},
        {"GET", "getRecord", get_record},
        {"GET", "getBlocks", get_blocks},
        {"GET", "listRepos", list_repos},
        {"GET", "getRepoStatus", get_repo_status},
        {"POST", "requestCrawl", relay_only},
        {"POST", "notifyOfUpdate", relay_only},
    };
    char path[96];
    if (!ctx->actors) {
        return; /* no actor store in this build */
    }
    for (size_t i = 0; i < sizeof R / sizeof R[0]; i++) {
        snprintf(path, sizeof path, "/xrpc/com.atproto.sync.%s", R[i].name);
        atp_server_route(s, R[i].method, path, R[i].fn, ctx, ATP_ROUTE_BLOCKING);
    }
}
