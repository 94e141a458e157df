/* pds/src/routes_blob.c: blob endpoints (issues 5 and 6): com.atproto.repo.uploadBlob and
 * listMissingBlobs, com.atproto.sync.getBlob and listBlobs. Bytes are in blobstore.h, rows in
 * actor_store_blob.h. Every handler hits SQLite or the disk: ATP_ROUTE_BLOCKING.
 *
 * Status codes: the reference answers 400 for every failure here; clients key on the error
 * name, and we use the lexicon's names with 404 for what is missing (BlobNotFound,
 * RepoNotFound, as routes_repo.c), 400 RepoTakendown/RepoDeactivated (the reference's), 413
 * PayloadTooLarge past PDS_BLOB_UPLOAD_LIMIT (the reference's xrpc-server answer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "atp/cid.h"
#include "atp/log.h"
#include "atp/syntax.h"

#include "actor_store_blob.h"
#include "blobstore.h"
#include "db.h"
#include "pds.h"

#define LIST_DEFAULT 500
#define LIST_MAX 1000

static void bad_request(atp_req *r, const char *msg)
{
    atp_req_error_status(r, 400, "InvalidRequest", msg);
}

static void internal_error(atp_req *r, const atp_err *err)
{
    atp_logf(ATP_LOG_ERROR, "blobs", "%s", err->msg);
    atp_req_error_status(r, 500, "InternalServerError", "Internal Server Error");
}

/* ---- parameters ---- */

/* `limit`: absent = LIST_DEFAULT, else an integer in 1..LIST_MAX. Sends the error. */
static int param_limit(atp_req *r, size_t *out)
{
    atp_slice v;
    *out = LIST_DEFAULT;
    if (!atp_req_query(r, "limit", &v)) {
        return 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9' || n > LIST_MAX) {
            bad_request(r, "limit must be an integer");
            return ATP_EINVAL;
        }
        n = n * 10 + (size_t)(v.ptr[i] - '0');
    }
    if (v.len == 0 || n < 1 || n > LIST_MAX) {
        bad_request(r, v.len && n < 1 ? "limit can not be less than 1"
                                      : "limit can not be greater than 1000");
        return ATP_EINVAL;
    }
    *out = n;
    return 0;
}

/* Optional `cursor`: a CID string. *has says whether one was given. Sends the error. */
static int param_cursor(atp_req *r, atp_cid *out, bool *has)
{
    atp_slice v;
    *has = atp_req_query(r, "cursor", &v) && v.len > 0;
    if (*has && atp_cid_parse(v, 0, out, NULL) != 0) {
        bad_request(r, "cursor must be a cid");
        return ATP_EINVAL;
    }
    return 0;
}

/* Required `did` (DID syntax). Sends the error. */
static int param_did(atp_req *r, atp_slice *out)
{
    if (!atp_req_query(r, "did", out) || out->len == 0) {
        bad_request(r, "Error: Params must have the property \"did\"");
        return ATP_EINVAL;
    }
    if (out->len > PDS_DID_MAX || !atp_syntax_is_did(*out)) {
        bad_request(r, "Error: did must be a valid did");
        return ATP_EINVAL;
    }
    return 0;
}

/* ---- repo availability (sync reads) ---- */

/* The owner (or the admin) still sees a deactivated or taken-down repo, as the reference's
 * isUserOrAdmin. Returns 1 when allowed, 0 when not, <0 when the auth failed (error sent). */
static int owner_or_admin(pds_ctx *ctx, atp_req *r, const char *did)
{
    atp_slice h;
    pds_auth auth;
    if (!atp_req_header(r, "authorization", &h)) {
        return 0;
    }
    if (h.len > 6 && memcmp(h.ptr, "Basic ", 6) == 0) {
        return pds_auth_admin(ctx, r, &auth) == 0 ? 1 : -1;
    }
    if (pds_auth_access(ctx, r, &auth) != 0) {
        return -1;
    }
    return strcmp(auth.did, did) == 0;
}

/* The account must exist here and be active (or the caller its owner/admin). Sends the
 * error. */
static int check_repo(pds_ctx *ctx, atp_req *r, const char *did)
{
    pds_account a;
    char msg[PDS_DID_MAX + 64];
    if (pds_db_account_get(ctx->db, did, &a) != 0 || a.status == PDS_ST_DELETED) {
        snprintf(msg, sizeof msg, "Could not find repo for DID: %s", did);
        atp_req_error_status(r, 404, "RepoNotFound", msg);
        return ATP_ENOTFOUND;
    }
    if (a.status == PDS_ST_ACTIVE) {
        return 0;
    }
    int who = owner_or_admin(ctx, r, did);
    if (who != 0) {
        return who > 0 ? 0 : ATP_EFORBIDDEN;
    }
    bool td = a.status == PDS_ST_TAKENDOWN;
    snprintf(msg, sizeof msg, "Repo has been %s: %s", td ? "takendown" : "deactivated", did);
    atp_req_error_status(r, 400, td ? "RepoTakendown" : "RepoDeactivated", msg);
    return ATP_EFORBIDDEN;
}

/* ---- uploadBlob ---- */

typedef struct place_ctx {
    pds_blobstore *bs;
    const char *stage;
    atp_slice did;
} place_ctx;

/* Runs with the account locked: the staged file gets its name together with the row. */
static int place_blob(void *ctx, const atp_cid *cid, bool permanent, atp_err *err)
{
    place_ctx *p = ctx;
    char tmp[PDS_BLOB_PATH_MAX];
    int rc = pds_blobstore_commit_stage(p->bs, p->stage, p->did, cid,
                                        permanent ? PDS_BLOB_PERM : PDS_BLOB_TEMP, err);
    /* A copy left in tempt/ by the first upload is now redundant. */
    if (rc == 0 && permanent &&
        pds_blobstore_path(p->bs, PDS_BLOB_TEMP, p->did, cid, tmp, sizeof tmp, NULL) == 0) {
        unlink(tmp);
    }
    return rc;
}

static void send_blob_ref(atp_req *r, const atp_cid *cid, const char *mime, size_t size)
{
    char cs[ATP_CID_STR_MAX];
    atp_cid_format_to(cid, cs, sizeof cs);
    cJSON *body = cJSON_CreateObject();
    cJSON *blob = cJSON_AddObjectToObject(body, "blob");
    cJSON_AddStringToObject(blob, "$type", "blob");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(blob, "ref"), "$link", cs);
    cJSON_AddStringToObject(blob, "mimeType", mime);
    cJSON_AddNumberToObject(blob, "size", (double)size);
    pds_respond_json(r, body);
    cJSON_Delete(body);
}

static void upload_store_error(atp_req *r, int rc, const atp_err *err)
{
    if (rc == ATP_EFORBIDDEN) {
        bad_request(r, err->msg);
    } else if (rc == ATP_ENOTFOUND) {
        atp_req_error_status(r, 404, "RepoNotFound", "Could not find repo for the account");
    } else {
        internal_error(r, err);
    }
}

static void h_upload_blob(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth auth;
    atp_slice body = atp_req_body(r), ct = {NULL, 0};
    char mime[PDS_MIME_MAX + 1], stage[PDS_BLOB_PATH_MAX] = "";
    atp_cid cid;
    atp_err err;
    if (pds_auth_access(ctx, r, &auth) != 0) {
        return;
    }
    if (body.len > ctx->cfg->blob_upload_limit) {
        atp_req_error_status(r, 413, "PayloadTooLarge", "request entity too large");
        return;
    }
    if (!atp_req_header(r, "content-type", &ct) || ct.len == 0) {
        bad_request(r, "Request encoding (Content-Type) required but not provided");
        return;
    }
    pds_blob_mime_choose(ct, body, mime);
    atp_cid_compute(&cid, ATP_CODEC_RAW, body);
    atp_slice did = atp_slice_str(auth.did);
    /* The slow part (write + fsync) happens before the account lock is taken. */
    int rc = pds_blobstore_stage(ctx->blobs, did, body, stage, sizeof stage, &err);
    if (rc == 0) {
        place_ctx p = {ctx->blobs, stage, did};
        rc = pds_actor_blob_track(ctx->actors, did, &cid, atp_slice_str(mime), body.len,
                                  place_blob, &p, NULL, &err);
    }
    if (rc != 0) {
        pds_blobstore_drop_stage(stage);
        upload_store_error(r, rc, &err);
        return;
    }
    send_blob_ref(r, &cid, mime, body.len);
}

/* ---- getBlob ---- */

static void unmap_body(const void *body, size_t len, void *arg)
{
    (void)body;
    munmap(arg, len);
}

static void blob_not_found(atp_req *r)
{
    atp_req_error_status(r, 404, "BlobNotFound", "Blob not found");
}

/* The served row: present, referenced by a record, not taken down. Sends the error. */
static int servable(pds_ctx *ctx, atp_req *r, atp_slice did, const atp_cid *cid,
                    pds_blob_row *row)
{
    bool found = false;
    atp_err err;
    int rc = pds_actor_blob_get(ctx->actors, did, cid, row, &found, &err);
    if (rc == ATP_ENOTFOUND || (rc == 0 && (!found || row->temp || row->takendown))) {
        blob_not_found(r);
        return ATP_ENOTFOUND;
    }
    if (rc != 0) {
        internal_error(r, &err);
    }
    return rc;
}

/* Sends the bytes straight from the page cache: the mapping lives until the server has
 * written them, so a large blob is never copied into the heap. */
static void send_file(atp_req *r, int fd, uint64_t size, const char *mime)
{
    if (size == 0) {
        atp_req_respond(r, 200, mime, (atp_slice){NULL, 0});
        return;
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        atp_req_error_status(r, 500, "InternalServerError", "Internal Server Error");
        return;
    }
    atp_req_respond_ref(r, 200, mime, map, (size_t)size, unmap_body, map);
}

static void blob_headers(atp_req *r, const atp_cid *cid)
{
    char cs[ATP_CID_STR_MAX], disp[ATP_CID_STR_MAX + 32];
    atp_cid_format_to(cid, cs, sizeof cs);
    snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", cs);
    atp_req_add_header(r, "x-content-type-options", "nosniff");
    atp_req_add_header(r, "content-disposition", disp);
    atp_req_add_header(r, "content-security-policy", "default-src 'none'; sandbox");
    atp_req_add_header(r, "cache-control", "private"); /* what the reference sends */
}

static void h_get_blob(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    atp_slice did, cs;
    atp_cid cid;
    pds_blob_row row;
    atp_err err;
    if (param_did(r, &did) != 0) {
        return;
    }
    if (!atp_req_query(r, "cid", &cs) || cs.len == 0) {
        bad_request(r, "Error: Params must have the property \"cid\"");
        return;
    }
    if (atp_cid_parse(cs, 0, &cid, NULL) != 0) {
        bad_request(r, "Invalid com.atproto.sync.getBlob params: Invalid CID string");
        return;
    }
    if (check_repo(ctx, r, (const char *)did.ptr) != 0 || servable(ctx, r, did, &cid, &row) != 0) {
        return;
    }
    int fd = -1;
    uint64_t size = 0;
    int rc = pds_blobstore_open_read(ctx->blobs, did, &cid, &fd, &size, &err);
    if (rc != 0) {
        rc == ATP_ENOTFOUND ? blob_not_found(r) : internal_error(r, &err);
        return;
    }
    blob_headers(r, &cid);
    send_file(r, fd, size, row.mime[0] ? row.mime : "application/octet-stream");
    close(fd); /* the mapping stays valid without the descriptor */
}

/* ---- listBlobs / listMissingBlobs ---- */

typedef struct list_out {
    cJSON *arr;
    atp_cid last;
    bool missing;
} list_out;

static int add_listed(void *ctx, const atp_cid *cid, atp_slice uri)
{
    list_out *o = ctx;
    char cs[ATP_CID_STR_MAX];
    atp_cid_format_to(cid, cs, sizeof cs);
    o->last = *cid;
    if (!o->missing) {
        cJSON_AddItemToArray(o->arr, cJSON_CreateString(cs));
        return 0;
    }
    cJSON *item = cJSON_CreateObject();
    cJSON_AddStringToObject(item, "cid", cs);
    /* cJSON wants a C string; the URI is borrowed for the call only. */
    char *text = atp_xmalloc(uri.len + 1);
    memcpy(text, uri.ptr, uri.len);
    text[uri.len] = '\0';
    cJSON_AddStringToObject(item, "recordUri", text);
    free(text);
    cJSON_AddItemToArray(o->arr, item);
    return 0;
}

/* {cursor?, <name>: [...]}: the cursor is the last CID given, as the reference. */
static void send_list(atp_req *r, list_out *o, size_t n, const char *name)
{
    cJSON *body = cJSON_CreateObject();
    if (n > 0) {
        char cs[ATP_CID_STR_MAX];
        atp_cid_format_to(&o->last, cs, sizeof cs);
        cJSON_AddStringToObject(body, "cursor", cs);
    }
    cJSON_AddItemToObject(body, name, o->arr);
    pds_respond_json(r, body);
    cJSON_Delete(body);
}

static void list_error(atp_req *r, int rc, const atp_err *err)
{
    if (rc == ATP_ENOTFOUND) {
        atp_req_error_status(r, 404, "RepoNotFound", "Could not find repo");
    } else if (rc == ATP_EINVAL) {
        bad_request(r, err->msg);
    } else {
        internal_error(r, err);
    }
}

static void h_list_blobs(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    atp_slice did, since = {NULL, 0};
    atp_cid cursor;
    bool has_cursor = false;
    size_t limit, n = 0;
    atp_err err;
    if (param_did(r, &did) != 0 || param_limit(r, &limit) != 0 ||
        param_cursor(r, &cursor, &has_cursor) != 0) {
        return;
    }
    if (atp_req_query(r, "since", &since) && since.len > 0 && !atp_syntax_is_tid(since)) {
        bad_request(r, "Error: since must be a valid tid");
        return;
    }
    if (check_repo(ctx, r, (const char *)did.ptr) != 0) {
        return;
    }
    list_out o = {cJSON_CreateArray(), {0, {0}}, false};
    int rc = pds_actor_blob_list(ctx->actors, did, since, has_cursor ? &cursor : NULL, limit,
                                 add_listed, &o, &n, &err);
    if (rc != 0) {
        cJSON_Delete(o.arr);
        list_error(r, rc, &err);
        return;
    }
    send_list(r, &o, n, "cids");
}

static void h_list_missing(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth auth;
    atp_cid cursor;
    bool has_cursor = false;
    size_t limit, n = 0;
    atp_err err;
    if (pds_auth_access(ctx, r, &auth) != 0 || param_limit(r, &limit) != 0 ||
        param_cursor(r, &cursor, &has_cursor) != 0) {
        return;
    }
    list_out o = {cJSON_CreateArray(), {0, {0}}, true};
    int rc = pds_actor_blob_list_missing(ctx->actors, atp_slice_str(auth.did),
                                         has_cursor ? &cursor : NULL, limit, add_listed, &o, &n,
                                         &err);
    if (rc != 0) {
        cJSON_Delete(o.arr);
        list_error(r, rc, &err);
        return;
    }
    send_list(r, &o, n, "blobs");
}

/* ---- registration ---- */

void pds_routes_blob(atp_server *s, pds_ctx *ctx)
{
    if (!ctx->blobs || !ctx->actors) {
        return;
    }
    atp_server_route(s, "POST", "/xrpc/com.atproto.repo.uploadBlob", h_upload_blob, ctx,
                     ATP_ROUTE_BLOCKING);
    atp_server_route(s, "GET", "/xrpc/com.atproto.repo.listMissingBlobs", h_list_missing, ctx,
                     ATP_ROUTE_BLOCKING);
    atp_server_route(s, "GET", "/xrpc/com.atproto.sync.getBlob", h_get_blob, ctx,
                     ATP_ROUTE_BLOCKING);
    atp_server_route(s, "GET", "/xrpc/com.atproto.sync.listBlobs", h_list_blobs, ctx,
                     ATP_ROUTE_BLOCKING);
}
