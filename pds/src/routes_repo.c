/* pds/src/routes_repo.c: com.atproto.repo record endpoints over the actor store (issue 5):
 * createRecord, putRecord, deleteRecord, applyWrites, getRecord, listRecords, describeRepo.
 *
 * Every handler runs on the worker pool (ATP_ROUTE_BLOCKING): they hit SQLite. Statuses follow
 * issue 5's list (404 RecordNotFound/RepoNotFound, 409 InvalidSwap, 400 for bad input and
 * invalid records); clients key on the error name, which is the reference's. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/json.h"
#include "atp/syntax.h"

#include "acct_cache.h"
#include "actor_store.h"
#include "crawlers.h"
#include "db.h"
#include "pds.h"
#include "sequencer.h"

/* ---- errors ---- */

static int status_of(int rc, const char *name)
{
    if (name && strcmp(name, "InvalidSwap") == 0) {
        return 409;
    }
    if (name && (strcmp(name, "RecordNotFound") == 0 || strcmp(name, "RepoNotFound") == 0)) {
        return 404;
    }
    return rc == ATP_EIO || rc == ATP_EINTERNAL || rc == ATP_ENOTFOUND ? 500 : 400;
}

/* Sends the store's failure as an XRPC error. */
static void send_store_error(atp_req *r, int rc, const char *name, const atp_err *err)
{
    int status = status_of(rc, name);
    if (status == 500) {
        atp_req_error_status(r, 500, "InternalServerError", err->msg);
        return;
    }
    atp_req_error_status(r, status, name ? name : "InvalidRequest", err->msg);
}

static void bad_request(atp_req *r, const char *msg)
{
    atp_req_error_status(r, 400, "InvalidRequest", msg);
}

/* ---- resolving the `repo` parameter ---- */

/* A local account by DID or handle (case-insensitive). False if none. */
static bool local_account(pds_ctx *ctx, atp_slice repo, pds_account *out)
{
    char ident[PDS_DID_MAX + 1];
    if (repo.len == 0 || repo.len > PDS_DID_MAX) {
        return false;
    }
    if (atp_syntax_is_did(repo)) {
        memcpy(ident, repo.ptr, repo.len);
        ident[repo.len] = '\0';
    } else if (atp_syntax_normalize_handle(repo, ident, sizeof ident, NULL) != 0) {
        return false;
    }
    return pds_db_account_get(ctx->db, ident, out) == 0 && out->status != PDS_ST_DELETED;
}

/* ---- the write preamble: auth, body, repo, account state, key, common fields ---- */

typedef struct write_req {
    pds_auth auth;
    cJSON *body;
    atp_key *key;
    pds_validate validate;
    bool has_swap_commit;
    atp_cid swap_commit;
} write_req;

static void write_req_done(write_req *w)
{
    cJSON_Delete(w->body);
    atp_key_destroy(w->key);
}

/* The writer's account: its status and signing key (w->key, an owned reference), from the
 * account cache when there is one. ATP_ENOTFOUND: no such live account. */
static int writer_account(pds_ctx *ctx, write_req *w, pds_status *st)
{
    if (ctx->acct_cache) {
        return pds_acct_cache_get(ctx->acct_cache, w->auth.did, st, &w->key);
    }
    pds_account a;
    int rc = pds_db_account_get(ctx->db, w->auth.did, &a);
    if (rc == 0) {
        *st = a.status;
        if (pds_account_signing_key(ctx, w->auth.did, &w->key) != 0) {
            w->key = NULL; /* check_owner answers 500 */
        }
    }
    return rc;
}

/* `repo` must name the caller's own account (by DID, or by a handle of that account). */
static bool is_own_repo(pds_ctx *ctx, const write_req *w, const char *repo)
{
    if (strncmp(repo, "did:", 4) == 0) {
        return strcmp(repo, w->auth.did) == 0;
    }
    pds_account a;
    return local_account(ctx, atp_slice_str(repo), &a) && strcmp(a.did, w->auth.did) == 0;
}

/* The caller must be the repo's owner, the account active, and its signing key at hand
 * (w->key). Sends the error. */
static int check_owner(pds_ctx *ctx, atp_req *r, write_req *w)
{
    const char *repo = pds_json_str(w->body, "repo");
    pds_status st = PDS_ST_ACTIVE;
    if (!repo) {
        bad_request(r, "Input must have the property \"repo\"");
        return ATP_EINVAL;
    }
    if (!is_own_repo(ctx, w, repo) || writer_account(ctx, w, &st) != 0) {
        atp_req_error_status(r, 403, "InvalidRequest",
                             "Can not write to a repo other than your own");
        return ATP_EFORBIDDEN;
    }
    if (st != PDS_ST_ACTIVE) {
        bool td = st == PDS_ST_TAKENDOWN;
        atp_req_error_status(r, 401, td ? "AccountTakedown" : "AccountDeactivated",
                             td ? "Account has been taken down" : "Account is deactivated");
        return ATP_EFORBIDDEN;
    }
    if (!w->key) {
        atp_req_error_status(r, 500, "InternalServerError", "no signing key for the account");
        return ATP_EINTERNAL;
    }
    return 0;
}

/* `validate` (boolean or absent) and `swapCommit` (CID string or absent). Sends the error. */
static int parse_common(atp_req *r, write_req *w)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(w->body, "validate");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(w->body, "swapCommit");
    w->validate = PDS_VALIDATE_UNSET;
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsBool(v)) {
            bad_request(r, "validate must be a boolean");
            return ATP_EINVAL;
        }
        w->validate = cJSON_IsTrue(v) ? PDS_VALIDATE_TRUE : PDS_VALIDATE_FALSE;
    }
    if (sc && !cJSON_IsNull(sc)) {
        if (!cJSON_IsString(sc) ||
            atp_cid_parse(atp_slice_str(sc->valuestring), 0, &w->swap_commit, NULL) != 0) {
            bad_request(r, "swapCommit must be a cid");
            return ATP_EINVAL;
        }
        w->has_swap_commit = true;
    }
    return 0;
}

static int write_begin(pds_ctx *ctx, atp_req *r, write_req *w)
{
    memset(w, 0, sizeof *w);
    if (!ctx->actors) {
        atp_req_error_status(r, 501, "MethodNotImplemented", "no repository storage");
        return ATP_EUNSUPPORTED;
    }
    int rc = pds_auth_access(ctx, r, &w->auth);
    rc = rc ? rc : pds_body_json(r, &w->body);
    rc = rc ? rc : check_owner(ctx, r, w);
    rc = rc ? rc : parse_common(r, w);
    return rc;
}

/* ---- one write from JSON ---- */

/* collection (NSID), rkey (optional unless `need_rkey`), and for create/update the record
 * object `value_key` converted to the data model. Sends the error. */
static int parse_write(atp_req *r, const cJSON *o, const char *value_key, bool need_rkey,
                       pds_write *out)
{
    const char *coll = pds_json_str(o, "collection");
    const char *rkey = pds_json_str(o, "rkey");
    if (!coll || !atp_syntax_is_nsid(atp_slice_str(coll))) {
        bad_request(r, "collection must be a valid NSID");
        return ATP_EINVAL;
    }
    if ((need_rkey && !rkey) || (rkey && !atp_syntax_is_rkey(atp_slice_str(rkey)))) {
        bad_request(r, "rkey must be a valid record key");
        return ATP_EINVAL;
    }
    out->collection = atp_slice_str(coll);
    out->rkey = atp_slice_str(rkey);
    if (!value_key) {
        return 0;
    }
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(o, value_key);
    atp_cbor *rec = NULL;
    atp_err e;
    if (!cJSON_IsObject(val)) {
        bad_request(r, "record must be an object");
        return ATP_EINVAL;
    }
    if (atp_json_from_cjson(atp_req_arena(r), val, ATP_JSON_DATA, NULL, &rec, &e) != 0) {
        atp_req_error_status(r, 400, "InvalidRecord", e.msg);
        return ATP_EINVAL;
    }
    out->record = rec;
    return 0;
}

/* swapRecord: absent, null ("must not exist") or a CID. Sends the error. */
static int parse_swap_record(atp_req *r, const cJSON *body, pds_write *w)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(body, "swapRecord");
    if (!s) {
        return 0;
    }
    w->has_swap = true;
    if (cJSON_IsNull(s)) {
        w->swap_null = true;
        return 0;
    }
    if (!cJSON_IsString(s) || atp_cid_parse(atp_slice_str(s->valuestring), 0, &w->swap, NULL)) {
        bad_request(r, "swapRecord must be a cid or null");
        return ATP_EINVAL;
    }
    return 0;
}

/* ---- responses ---- */

static void add_cid(cJSON *o, const char *name, const atp_cid *c)
{
    char s[ATP_CID_STR_MAX];
    atp_cid_format_to(c, s, sizeof s);
    cJSON_AddStringToObject(o, name, s);
}

static void add_commit(cJSON *o, const pds_apply_out *out)
{
    if (!out->committed) {
        return;
    }
    cJSON *c = cJSON_AddObjectToObject(o, "commit");
    add_cid(c, "cid", &out->commit.cid);
    cJSON_AddStringToObject(c, "rev", out->commit.rev);
}

static void add_result(cJSON *o, const pds_write_result *res)
{
    cJSON_AddStringToObject(o, "uri", res->uri);
    add_cid(o, "cid", &res->cid);
    if (res->status) {
        cJSON_AddStringToObject(o, "validationStatus", res->status);
    }
}

/* Runs the writes and sends the store's error, or returns 0 with *out filled. */
static int run_writes(pds_ctx *ctx, atp_req *r, write_req *w, const pds_write *ws, size_t n,
                      pds_apply_out *out)
{
    const char *name = NULL;
    atp_err e;
    atp_err_clear(&e);
    int rc = pds_actor_store_apply(ctx->actors, atp_slice_str(w->auth.did), w->key, ws, n,
                                   w->validate, w->has_swap_commit ? &w->swap_commit : NULL,
                                   atp_req_arena(r), out, &name, &e);
    if (rc != 0) {
        send_store_error(r, rc, name, &e);
    } else if (out->committed) {
        pds_crawlers_poke(ctx->crawlers);
    }
    return rc;
}

/* A write's answer, held until its events are in repo_seq (the durability point: the
 * reference answers after sequencing too). */
typedef struct held_answer {
    atp_req *r;
    char *json;
} held_answer;

static void free_json(const void *body, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    cJSON_free((void *)(uintptr_t)body);
}

static void send_held(void *arg)
{
    held_answer *h = arg;
    atp_req_respond_ref(h->r, 200, "application/json; charset=utf-8", h->json, strlen(h->json),
                        free_json, NULL);
    free(h);
}

/* Answers `o` once everything the write queued is sequenced, without holding this worker:
 * the sequencer thread sends it (pds_seq_when_durable). */
static void answer_when_durable(pds_ctx *ctx, atp_req *r, const cJSON *o)
{
    char *json = cJSON_PrintUnformatted(o);
    if (!json) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
        return;
    }
    held_answer *h = atp_xmalloc(sizeof *h);
    h->r = r;
    h->json = json;
    atp_req_defer(r);
    pds_seq_when_durable(ctx->seq, send_held, h);
}

/* ---- createRecord / putRecord / deleteRecord ---- */

static void create_or_put(pds_ctx *ctx, atp_req *r, bool put)
{
    write_req w;
    pds_write pw = {.action = put ? ATP_REPO_UPDATE : ATP_REPO_CREATE, .upsert = put};
    pds_apply_out out;
    if (write_begin(ctx, r, &w) == 0 && parse_write(r, w.body, "record", put, &pw) == 0 &&
        (!put || parse_swap_record(r, w.body, &pw) == 0) &&
        run_writes(ctx, r, &w, &pw, 1, &out) == 0) {
        cJSON *o = cJSON_CreateObject();
        add_result(o, &out.results[0]);
        add_commit(o, &out);
        answer_when_durable(ctx, r, o);
        cJSON_Delete(o);
    }
    write_req_done(&w);
}

static void create_record(atp_req *r, void *ud)
{
    create_or_put(ud, r, false);
}

static void put_record(atp_req *r, void *ud)
{
    create_or_put(ud, r, true);
}

static void delete_record(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    write_req w;
    pds_write pw = {.action = ATP_REPO_DELETE, .missing_ok = true};
    pds_apply_out out;
    if (write_begin(ctx, r, &w) == 0 && parse_write(r, w.body, NULL, true, &pw) == 0 &&
        parse_swap_record(r, w.body, &pw) == 0 && run_writes(ctx, r, &w, &pw, 1, &out) == 0) {
        cJSON *o = cJSON_CreateObject();
        add_commit(o, &out);
        answer_when_durable(ctx, r, o);
        cJSON_Delete(o);
    }
    write_req_done(&w);
}

/* ---- applyWrites ---- */

static const char *const WRITE_TYPES[3] = {"com.atproto.repo.applyWrites#create",
                                           "com.atproto.repo.applyWrites#update",
                                           "com.atproto.repo.applyWrites#delete"};
static const char *const RESULT_TYPES[3] = {"com.atproto.repo.applyWrites#createResult",
                                            "com.atproto.repo.applyWrites#updateResult",
                                            "com.atproto.repo.applyWrites#deleteResult"};

static int parse_apply_one(atp_req *r, const cJSON *o, pds_write *out)
{
    const char *t = pds_json_str(o, "$type");
    int k = -1;
    for (int i = 0; t && i < 3; i++) {
        k = strcmp(t, WRITE_TYPES[i]) == 0 ? i : k;
    }
    if (k < 0) {
        bad_request(r, "each write needs a $type: applyWrites#create, #update or #delete");
        return ATP_EINVAL;
    }
    memset(out, 0, sizeof *out);
    out->action = (atp_repo_action)(k + 1);
    return parse_write(r, o, k == 2 ? NULL : "value", k != 0, out);
}

static int parse_apply_writes(atp_req *r, const cJSON *body, pds_write **ws, size_t *n)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(body, "writes");
    int count = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || count > ATP_REPO_MAX_WRITES) {
        bad_request(r, "writes must be an array of at most 200 writes");
        return ATP_EINVAL;
    }
    *ws = atp_arena_calloc(atp_req_arena(r), (size_t)count + 1, sizeof **ws);
    *n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        int rc = parse_apply_one(r, it, &(*ws)[(*n)++]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static cJSON *apply_results(const pds_apply_out *out, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        const pds_write_result *res = &out->results[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "$type", RESULT_TYPES[res->action - 1]);
        if (res->action != ATP_REPO_DELETE) {
            add_result(o, res);
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static void apply_writes(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    write_req w;
    pds_write *ws = NULL;
    size_t n = 0;
    pds_apply_out out;
    if (write_begin(ctx, r, &w) == 0 && parse_apply_writes(r, w.body, &ws, &n) == 0 &&
        run_writes(ctx, r, &w, ws, n, &out) == 0) {
        cJSON *o = cJSON_CreateObject();
        add_commit(o, &out);
        cJSON_AddItemToObject(o, "results", apply_results(&out, n));
        answer_when_durable(ctx, r, o);
        cJSON_Delete(o);
    }
    write_req_done(&w);
}

/* ---- reads ---- */

/* The JSON form of a record's DAG-CBOR. NULL if it does not decode (a corrupt store). */
static cJSON *record_json(atp_arena *a, atp_slice bytes)
{
    atp_cbor *v;
    if (atp_cbor_decode(a, bytes, NULL, &v, NULL) != 0) {
        return NULL;
    }
    return atp_json_to_cjson(v);
}

/* repo + collection query parameters of a read: a local account and a valid NSID. */
static bool read_params(pds_ctx *ctx, atp_req *r, pds_account *acct, atp_slice *coll)
{
    atp_slice repo;
    if (!ctx->actors) {
        atp_req_error_status(r, 501, "MethodNotImplemented", "no repository storage");
        return false;
    }
    if (!atp_req_query(r, "repo", &repo) || !atp_syntax_is_atidentifier(repo)) {
        bad_request(r, "repo must be a handle or DID");
        return false;
    }
    if (coll && (!atp_req_query(r, "collection", coll) || !atp_syntax_is_nsid(*coll))) {
        bad_request(r, "collection must be a valid NSID");
        return false;
    }
    if (!local_account(ctx, repo, acct)) {
        atp_req_error_status(r, 404, "RepoNotFound", "Could not find repo");
        return false;
    }
    return true;
}

static void send_record(atp_req *r, const char *uri, const atp_cid *cid, atp_slice bytes)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *v = record_json(atp_req_arena(r), bytes);
    if (!v) {
        cJSON_Delete(o);
        atp_req_error(r, ATP_EINTERNAL, "stored record does not decode");
        return;
    }
    cJSON_AddStringToObject(o, "uri", uri);
    add_cid(o, "cid", cid);
    cJSON_AddItemToObject(o, "value", v);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

static void get_record(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_account acct;
    atp_slice coll, rkey, cs;
    atp_cid want, cid;
    bool has_want = atp_req_query(r, "cid", &cs);
    if (!read_params(ctx, r, &acct, &coll)) {
        return;
    }
    if (!atp_req_query(r, "rkey", &rkey) || !atp_syntax_is_rkey(rkey)) {
        bad_request(r, "rkey must be a valid record key");
        return;
    }
    if (has_want && atp_cid_parse(cs, 0, &want, NULL) != 0) {
        bad_request(r, "cid must be a CID");
        return;
    }
    atp_slice bytes;
    const char *name = NULL;
    atp_err e;
    int rc = pds_actor_store_get_record(ctx->actors, atp_slice_str(acct.did), coll, rkey,
                                        has_want ? &want : NULL, atp_req_arena(r), &cid, &bytes,
                                        &name, &e);
    if (rc != 0) {
        send_store_error(r, rc, name, &e);
        return;
    }
    char uri[PDS_URI_MAX];
    snprintf(uri, sizeof uri, "at://%s/%.*s/%.*s", acct.did, (int)coll.len, (const char *)coll.ptr,
             (int)rkey.len, (const char *)rkey.ptr);
    send_record(r, uri, &cid, bytes);
}

typedef struct list_ctx {
    cJSON *records;
    const char *did;
    atp_slice coll;
    char last[ATP_REPO_MAX_PATH + 1];
    atp_arena *a;
} list_ctx;

static int list_one(void *p, atp_slice rkey, const atp_cid *cid, atp_slice bytes)
{
    list_ctx *l = p;
    char uri[PDS_URI_MAX];
    cJSON *v = record_json(l->a, bytes);
    if (!v) {
        return ATP_EIO;
    }
    cJSON *o = cJSON_CreateObject();
    snprintf(uri, sizeof uri, "at://%s/%.*s/%.*s", l->did, (int)l->coll.len,
             (const char *)l->coll.ptr, (int)rkey.len, (const char *)rkey.ptr);
    cJSON_AddStringToObject(o, "uri", uri);
    add_cid(o, "cid", cid);
    cJSON_AddItemToObject(o, "value", v);
    cJSON_AddItemToArray(l->records, o);
    snprintf(l->last, sizeof l->last, "%.*s", (int)rkey.len, (const char *)rkey.ptr);
    atp_arena_reset(l->a);
    return 0;
}

/* limit (1..100, default 50) and reverse ("true"/"false"). Sends the error. */
static bool list_params(atp_req *r, size_t *limit, bool *reverse, atp_slice *cursor)
{
    atp_slice s;
    *limit = 50;
    *reverse = false;
    *cursor = (atp_slice){0};
    if (atp_req_query(r, "limit", &s)) {
        size_t v = 0;
        for (size_t i = 0; i < s.len && v <= 100; i++) {
            v = s.ptr[i] >= '0' && s.ptr[i] <= '9' ? v * 10 + (size_t)(s.ptr[i] - '0') : 1000;
        }
        if (s.len == 0 || v < 1 || v > 100) {
            bad_request(r, "limit must be an integer between 1 and 100");
            return false;
        }
        *limit = v;
    }
    if (atp_req_query(r, "reverse", &s)) {
        *reverse = atp_slice_eq_str(s, "true");
        if (!*reverse && !atp_slice_eq_str(s, "false")) {
            bad_request(r, "reverse must be a boolean");
            return false;
        }
    }
    (void)atp_req_query(r, "cursor", cursor);
    return true;
}

static void list_records(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_account acct;
    atp_slice coll, cursor;
    size_t limit, n = 0;
    bool reverse;
    if (!read_params(ctx, r, &acct, &coll) || !list_params(r, &limit, &reverse, &cursor)) {
        return;
    }
    list_ctx l = {cJSON_CreateArray(), acct.did, coll, "", atp_arena_create(0)};
    atp_err e;
    int rc = pds_actor_store_list_records(ctx->actors, atp_slice_str(acct.did), coll, limit, cursor,
                                          reverse, list_one, &l, &n, &e);
    atp_arena_destroy(l.a);
    if (rc != 0) {
        cJSON_Delete(l.records);
        send_store_error(r, rc, rc == ATP_ENOTFOUND ? "RepoNotFound" : NULL, &e);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (n == limit) {
        cJSON_AddStringToObject(o, "cursor", l.last);
    }
    cJSON_AddItemToObject(o, "records", l.records);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

static int add_collection(void *p, atp_slice coll)
{
    char buf[ATP_REPO_MAX_PATH + 1];
    snprintf(buf, sizeof buf, "%.*s", (int)coll.len, (const char *)coll.ptr);
    cJSON_AddItemToArray(p, cJSON_CreateString(buf));
    return 0;
}

/* The DID document through the resolver, and whether it claims the account's handle. */
static cJSON *did_doc(pds_ctx *ctx, const pds_account *acct, bool *handle_ok)
{
    atp_buf b;
    cJSON *doc = NULL;
    char want[PDS_HANDLE_MAX + 8];
    *handle_ok = false;
    atp_buf_init(&b, 1 << 20);
    if (ctx->resolver &&
        atp_resolve_did_json(ctx->resolver, atp_slice_str(acct->did), &b, NULL) == 0) {
        doc = cJSON_ParseWithLength((const char *)b.ptr, b.len);
    }
    atp_buf_release(&b);
    snprintf(want, sizeof want, "at://%s", acct->handle);
    const cJSON *aka = cJSON_GetObjectItemCaseSensitive(doc, "alsoKnownAs"), *it;
    cJSON_ArrayForEach(it, aka)
    {
        if (cJSON_IsString(it) && strcmp(it->valuestring, want) == 0) {
            *handle_ok = true;
        }
    }
    return doc ? doc : cJSON_CreateObject();
}

static void describe_repo(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_account acct;
    atp_err e;
    bool handle_ok;
    if (!read_params(ctx, r, &acct, NULL)) {
        return;
    }
    cJSON *colls = cJSON_CreateArray();
    int rc = pds_actor_store_collections(ctx->actors, atp_slice_str(acct.did), add_collection,
                                         colls, &e);
    if (rc != 0) {
        cJSON_Delete(colls);
        send_store_error(r, rc, rc == ATP_ENOTFOUND ? "RepoNotFound" : NULL, &e);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *doc = did_doc(ctx, &acct, &handle_ok);
    cJSON_AddStringToObject(o, "handle", acct.handle);
    cJSON_AddStringToObject(o, "did", acct.did);
    cJSON_AddItemToObject(o, "didDoc", doc);
    cJSON_AddItemToObject(o, "collections", colls);
    cJSON_AddBoolToObject(o, "handleIsCorrect", handle_ok);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

/* ---- registration ---- */

void pds_routes_repo(atp_server *s, pds_ctx *ctx)
{
    static const struct {
        const char *method, *nsid;
        atp_handler_fn fn;
    } routes[] = {
        {"POST", "createRecord", create_record}, {"POST", "putRecord", put_record},
        {"POST", "deleteRecord", delete_record}, {"POST", "applyWrites", apply_writes},
        {"GET", "getRecord", get_record},        {"GET", "listRecords", list_records},
        {"GET", "describeRepo", describe_repo},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        char path[96];
        snprintf(path, sizeof path, "/xrpc/com.atproto.repo.%s", routes[i].nsid);
        atp_server_route(s, routes[i].method, path, routes[i].fn, ctx, ATP_ROUTE_BLOCKING);
    }
}
