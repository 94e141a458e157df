/* pds/src/admin.c: com.atproto.admin.*, behind HTTP Basic "admin:<PDS_ADMIN_PASSWORD>".
 *
 * Account state lives in the service database (account.takedown_ref, deactivated_at, status,
 * invites_disabled; invite_code.disabled); record and blob takedowns in the account's own file
 * (actor_store_admin.h). An account status change and its #account event commit in one
 * service-db transaction (pds_seq_account_in). Where the reference answers 200 for a subject
 * that does not exist (updateSubjectStatus, deleteAccount, updateAccountPassword...), so do we:
 * harnesses written for it drive us unchanged.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/log.h"
#include "atp/syntax.h"

#include "account.h"
#include "actor_store_admin.h"
#include "db.h"
#include "mailer.h"
#include "password.h"
#include "pds.h"
#include "plc_ops.h"
#include "sequencer.h"
#include "sqlx.h"

#define ADMIN_MAX_DIDS 100   /* getAccountInfos: dids per call */
#define ADMIN_MAX_CODES 1000 /* disableInviteCodes: codes and accounts per call */
#define INVITE_COLS "code, available, disabled, for_account, created_by, created_at"
#define ACCOUNT_COLS                                                                               \
    "did, handle, email, created_at, email_confirmed_at, invites_disabled, deactivated_at"

static bool is_admin(pds_ctx *ctx, atp_req *r)
{
    pds_auth a;
    return pds_auth_admin(ctx, r, &a) == 0;
}

static void bad_request(atp_req *r, const char *msg)
{
    atp_req_error_status(r, 400, "InvalidRequest", msg);
}

static void respond_empty(atp_req *r)
{
    atp_req_respond(r, 200, NULL, atp_slice_make(NULL, 0));
}

static void respond_failure(atp_req *r, const atp_err *e)
{
    atp_req_error_status(r, 500, "InternalServerError", e->msg[0] ? e->msg : "admin failure");
}

/* Runs a statement that returns no row. */
static int exec1(sqlite3 *c, const char *sql, int n, const char *const *args, atp_err *err)
{
    sqlite3_stmt *st = pds_sqlx_prepare_texts(c, sql, n, args);
    int rc = st && sqlite3_step(st) == SQLITE_DONE ? 0 : pds_sqlx_fail(c, err, "sqlite");
    sqlite3_finalize(st);
    return rc;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static void add_opt(cJSON *o, const char *name, const char *v)
{
    if (v) {
        cJSON_AddStringToObject(o, name, v);
    }
}

/* ---- invite codes as com.atproto.server.defs#inviteCode ---- */

static cJSON *invite_uses(sqlite3 *c, const char *code)
{
    cJSON *arr = cJSON_CreateArray();
    sqlite3_stmt *st =
        pds_sqlx_prepare_texts(c,
                               "SELECT used_by, used_at FROM invite_code_use WHERE code = ?1"
                               " ORDER BY used_at",
                               1, &code);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        cJSON *u = cJSON_CreateObject();
        cJSON_AddStringToObject(u, "usedBy", col_text(st, 0));
        cJSON_AddStringToObject(u, "usedAt", col_text(st, 1));
        cJSON_AddItemToArray(arr, u);
    }
    sqlite3_finalize(st);
    return arr;
}

/* One inviteCode from a row of INVITE_COLS. */
static cJSON *invite_obj(sqlite3 *c, sqlite3_stmt *st)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "code", col_text(st, 0));
    cJSON_AddNumberToObject(o, "available", sqlite3_column_int(st, 1));
    cJSON_AddBoolToObject(o, "disabled", sqlite3_column_int(st, 2) != 0);
    cJSON_AddStringToObject(o, "forAccount", col_text(st, 3));
    cJSON_AddStringToObject(o, "createdBy", col_text(st, 4));
    cJSON_AddStringToObject(o, "createdAt", col_text(st, 5));
    cJSON_AddItemToObject(o, "uses", invite_uses(c, col_text(st, 0)));
    return o;
}

/* Appends the inviteCode of each row of `sql` (?1 = arg) to arr. */
static int invites_append(sqlite3 *c, const char *sql, const char *arg, cJSON *arr, atp_err *err)
{
    sqlite3_stmt *st = pds_sqlx_prepare_texts(c, sql, 1, &arg);
    int step;
    if (!st) {
        return pds_sqlx_fail(c, err, "sqlite");
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON_AddItemToArray(arr, invite_obj(c, st));
    }
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? 0 : pds_sqlx_fail(c, err, "sqlite");
}

/* ---- getAccountInfo(s) ---- */

/* The accountView of the ACCOUNT_COLS row `st` (the reference's formatAccountInfo). */
static cJSON *account_view(sqlite3 *c, sqlite3_stmt *st, atp_err *err)
{
    cJSON *o = cJSON_CreateObject(), *invites = cJSON_CreateArray(), *by = cJSON_CreateArray();
    const char *did = col_text(st, 0);
    int rc;
    cJSON_AddStringToObject(o, "did", did);
    cJSON_AddStringToObject(o, "handle", col_text(st, 1));
    add_opt(o, "email", col_text(st, 2));
    cJSON_AddStringToObject(o, "indexedAt", col_text(st, 3));
    add_opt(o, "emailConfirmedAt", col_text(st, 4));
    rc = invites_append(c, "SELECT " INVITE_COLS " FROM invite_code WHERE code ="
                           " (SELECT code FROM invite_code_use WHERE used_by = ?1 LIMIT 1)",
                        did, by, err);
    if (rc == 0) {
        rc = invites_append(c, "SELECT " INVITE_COLS " FROM invite_code WHERE for_account = ?1"
                               " ORDER BY created_at, code", did, invites, err);
    }
    if (cJSON_GetArraySize(by) > 0) {
        cJSON_AddItemToObject(o, "invitedBy", cJSON_DetachItemFromArray(by, 0));
    }
    cJSON_Delete(by);
    cJSON_AddItemToObject(o, "invites", invites);
    cJSON_AddBoolToObject(o, "invitesDisabled", sqlite3_column_int(st, 5) != 0);
    add_opt(o, "deactivatedAt", col_text(st, 6));
    if (rc < 0) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

typedef struct views_job {
    const char *const *dids;
    size_t n;
    cJSON *out; /* array of accountView */
} views_job;

static int views_fn(void *vctx, sqlite3 *c, atp_err *err)
{
    views_job *j = vctx;
    for (size_t i = 0; i < j->n; i++) {
        sqlite3_stmt *st =
            pds_sqlx_prepare_texts(c,
                                   "SELECT " ACCOUNT_COLS " FROM account WHERE did = ?1"
                                   " AND status != 'deleted'",
                                   1, &j->dids[i]);
        int step = st ? sqlite3_step(st) : SQLITE_ERROR;
        cJSON *v = step == SQLITE_ROW ? account_view(c, st, err) : NULL;
        sqlite3_finalize(st);
        if ((step != SQLITE_ROW && step != SQLITE_DONE) || (step == SQLITE_ROW && !v)) {
            return step == SQLITE_ROW ? ATP_EIO : pds_sqlx_fail(c, err, "sqlite");
        }
        if (v) {
            cJSON_AddItemToArray(j->out, v);
        }
    }
    return 0;
}

/* Account views of `dids` (unknown ones left out) into a new array *out. */
static int account_views(pds_ctx *ctx, const char *const *dids, size_t n, cJSON **out,
                         atp_err *err)
{
    views_job j = {dids, n, cJSON_CreateArray()};
    int rc = pds_db_read(ctx->db, views_fn, &j, err);
    if (rc < 0) {
        cJSON_Delete(j.out);
        return rc;
    }
    *out = j.out;
    return 0;
}

/* Query parameter `name` as a DID (NUL-terminated in the request arena). Error sent. */
static bool did_param(atp_req *r, const char *name, const char **out)
{
    atp_slice v;
    if (!atp_req_query(r, name, &v)) {
        atp_req_error_status(r, 400, "InvalidRequest", "Params must have the property \"did\"");
        return false;
    }
    if (v.len > PDS_DID_MAX || !atp_syntax_is_did(v)) {
        bad_request(r, "did must be a valid did");
        return false;
    }
    *out = (const char *)v.ptr;
    return true;
}

static void get_account_info(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    const char *did;
    cJSON *views = NULL;
    atp_err e = {0};
    if (!is_admin(ctx, r) || !did_param(r, "did", &did)) {
        return;
    }
    if (account_views(ctx, &did, 1, &views, &e) < 0) {
        respond_failure(r, &e);
    } else if (cJSON_GetArraySize(views) == 0) {
        atp_req_error_status(r, 400, "NotFound", "Account not found");
    } else {
        pds_respond_json(r, cJSON_GetArrayItem(views, 0));
    }
    cJSON_Delete(views);
}

/* The repeated `dids` parameter: 1..ADMIN_MAX_DIDS valid DIDs. Error sent. */
static bool dids_param(atp_req *r, const char *dids[ADMIN_MAX_DIDS], size_t *n)
{
    atp_req_query_iter it;
    atp_slice v;
    *n = 0;
    atp_req_query_iter_init(r, &it, "dids");
    while (atp_req_query_next(r, &it, &v)) {
        if (*n == ADMIN_MAX_DIDS) {
            bad_request(r, "dids: at most 100 per call");
            return false;
        }
        if (v.len > PDS_DID_MAX || !atp_syntax_is_did(v)) {
            bad_request(r, "dids must be valid dids");
            return false;
        }
        dids[(*n)++] = (const char *)v.ptr;
    }
    if (*n == 0) {
        bad_request(r, "Params must have the property \"dids\"");
        return false;
    }
    return true;
}

static void get_account_infos(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    const char *dids[ADMIN_MAX_DIDS];
    size_t n;
    cJSON *views = NULL, *o;
    atp_err e = {0};
    if (!is_admin(ctx, r) || !dids_param(r, dids, &n)) {
        return;
    }
    if (account_views(ctx, dids, n, &views, &e) < 0) {
        respond_failure(r, &e);
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "infos", views);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

/* ---- updateSubjectStatus / getSubjectStatus ---- */

typedef struct status_job {
    pds_ctx *ctx;
    const pds_status_update *u;
    char now[32];
    bool found;
} status_job;

static pds_status status_read(sqlite3 *c, const char *did, bool *found)
{
    sqlite3_stmt *st =
        pds_sqlx_prepare_texts(c, "SELECT status FROM account WHERE did = ?1", 1, &did);
    pds_status s = PDS_ST_ACTIVE;
    *found = st && sqlite3_step(st) == SQLITE_ROW;
    if (*found) {
        const char *name = col_text(st, 0);
        s = strcmp(name, "takendown") == 0     ? PDS_ST_TAKENDOWN
            : strcmp(name, "deactivated") == 0 ? PDS_ST_DEACTIVATED
            : strcmp(name, "deleted") == 0     ? PDS_ST_DELETED
                                               : PDS_ST_ACTIVE;
    }
    sqlite3_finalize(st);
    return s;
}

/* The takedown and deactivation columns as the change asks. A takedown also revokes the
 * account's refresh tokens (the reference: a taken-down account keeps no session). */
static int status_columns(sqlite3 *c, const status_job *j, atp_err *err)
{
    const pds_status_update *u = j->u;
    const char *ref = u->takedown.ref[0] ? u->takedown.ref : j->now;
    const char *a[] = {u->subject.did, ref, j->now};
    int rc = 0;
    if (u->has_takedown) {
        rc = exec1(c, u->takedown.applied ? "UPDATE account SET takedown_ref = ?2 WHERE did = ?1"
                                          : "UPDATE account SET takedown_ref = NULL WHERE did = ?1",
                   u->takedown.applied ? 2 : 1, a, err);
    }
    if (rc == 0 && u->has_takedown && u->takedown.applied) {
        rc = exec1(c, "DELETE FROM refresh_token WHERE did = ?1", 1, a, err);
    }
    if (rc == 0 && u->has_deactivated) {
        const char *sql = u->deactivated
                              ? "UPDATE account SET deactivated_at = coalesce(deactivated_at, ?3)"
                                " WHERE did = ?1"
                              : "UPDATE account SET deactivated_at = NULL, delete_after = NULL"
                                " WHERE did = ?1";
        rc = exec1(c, sql, 3, a, err);
    }
    return rc;
}

/* Takedown and deactivation, the derived status and its #account event: one transaction. */
static int status_fn(void *vctx, sqlite3 *c, atp_err *err)
{
    status_job *j = vctx;
    const char *a[] = {j->u->subject.did, j->now};
    pds_status st = status_read(c, a[0], &j->found);
    int rc;
    if (!j->found || st == PDS_ST_DELETED) {
        j->found = false;
        return 0;
    }
    /* A deactivation made before deactivated_at was kept: give it one, so the status derived
     * below (takendown > deactivated > active, as the reference's) keeps it. */
    rc = exec1(c, "UPDATE account SET deactivated_at = ?2 WHERE did = ?1 AND"
                  " status = 'deactivated' AND deactivated_at IS NULL", 2, a, err);
    if (rc == 0) {
        rc = status_columns(c, j, err);
    }
    if (rc == 0) {
        rc = exec1(c, "UPDATE account SET status = CASE WHEN takedown_ref IS NOT NULL THEN"
                      " 'takendown' WHEN deactivated_at IS NOT NULL THEN 'deactivated' ELSE"
                      " 'active' END WHERE did = ?1", 1, a, err);
    }
    if (rc == 0) {
        st = status_read(c, a[0], &j->found);
        rc = pds_seq_account_in(j->ctx->seq, c, a[0], st, err);
    }
    return rc;
}

static int repo_status_apply(pds_ctx *ctx, const pds_status_update *u, atp_err *err)
{
    status_job j = {.ctx = ctx, .u = u};
    int rc;
    pds_now_iso(ctx, j.now);
    rc = pds_db_txn(ctx->db, status_fn, &j, err);
    if (rc == 0 && j.found) {
        pds_seq_after_commit(ctx->seq);
    }
    return rc;
}

/* Record or blob takedown in the account's file; a missing one changes nothing (200, as the
 * reference). */
static int file_status_apply(pds_ctx *ctx, const pds_status_update *u, const char *now,
                             atp_err *err)
{
    const pds_subject *s = &u->subject;
    const char *ref = !u->takedown.applied ? NULL : u->takedown.ref[0] ? u->takedown.ref : now;
    atp_slice did = atp_slice_str(s->did);
    int rc;
    if (!u->has_takedown) {
        return 0;
    }
    if (s->kind == PDS_SUBJECT_RECORD) {
        rc = pds_actor_store_record_takedown(ctx->actors, did, atp_slice_str(s->collection),
                                             atp_slice_str(s->rkey), ref, err);
    } else {
        rc = pds_actor_store_blob_takedown(ctx->actors, did, &s->cid, ref, err);
    }
    return rc == ATP_ENOTFOUND ? 0 : rc;
}

/* The reference echoes the input's subject and takedown as they came. */
static void respond_update(atp_req *r, const cJSON *body)
{
    cJSON *o = cJSON_CreateObject();
    const cJSON *td = cJSON_GetObjectItemCaseSensitive(body, "takedown");
    cJSON_AddItemToObject(o, "subject",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(body, "subject"), 1));
    if (td) {
        cJSON_AddItemToObject(o, "takedown", cJSON_Duplicate(td, 1));
    }
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

static void update_subject_status(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    cJSON *body = NULL;
    pds_status_update *u;
    char now[32];
    atp_err e = {0};
    int rc;
    if (!is_admin(ctx, r) || pds_body_json(r, &body) < 0) {
        return;
    }
    u = atp_xmalloc(sizeof *u); /* ~6 KiB: off the worker's stack */
    if (pds_status_update_parse(body, u, &e) < 0) {
        bad_request(r, e.msg);
    } else {
        pds_now_iso(ctx, now);
        rc = u->subject.kind == PDS_SUBJECT_REPO ? repo_status_apply(ctx, u, &e)
             : ctx->actors                       ? file_status_apply(ctx, u, now, &e)
                                                 : atp_err_set(&e, ATP_EINTERNAL, 0, "no store");
        if (rc < 0) {
            respond_failure(r, &e);
        } else {
            respond_update(r, body);
        }
    }
    free(u);
    cJSON_Delete(body);
}

static cJSON *attr_json(const pds_takedown *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "applied", t->applied);
    if (t->applied && t->ref[0]) {
        cJSON_AddStringToObject(o, "ref", t->ref);
    }
    return o;
}

typedef struct repo_status {
    bool found;
    pds_takedown takedown;
    bool deactivated;
} repo_status;

static int repo_status_fn(void *vctx, sqlite3 *c, atp_err *err)
{
    repo_status *out = ((void **)vctx)[0];
    const char *did = ((void **)vctx)[1];
    sqlite3_stmt *st =
        pds_sqlx_prepare_texts(c,
                               "SELECT takedown_ref, deactivated_at, status FROM account"
                               " WHERE did = ?1 AND status != 'deleted'",
                               1, &did);
    int step = st ? sqlite3_step(st) : SQLITE_ERROR;
    memset(out, 0, sizeof *out);
    out->found = step == SQLITE_ROW;
    if (out->found) {
        const char *ref = col_text(st, 0);
        out->takedown.applied = ref != NULL;
        snprintf(out->takedown.ref, sizeof out->takedown.ref, "%s", ref ? ref : "");
        out->deactivated = col_text(st, 1) || strcmp(col_text(st, 2), "deactivated") == 0;
    }
    sqlite3_finalize(st);
    return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : pds_sqlx_fail(c, err, "sqlite");
}

/* The status of `s` into o (subject and takedown, deactivated for accounts). ATP_ENOTFOUND
 * when the subject does not exist. */
static int subject_status(pds_ctx *ctx, pds_subject *s, cJSON *o, atp_err *err)
{
    repo_status rs = {0};
    atp_slice did = atp_slice_str(s->did);
    void *args[2] = {&rs, s->did};
    int rc;
    if (s->kind == PDS_SUBJECT_REPO) {
        rc = pds_db_read(ctx->db, repo_status_fn, args, err);
        rc = rc == 0 && !rs.found ? ATP_ENOTFOUND : rc;
    } else if (!ctx->actors) {
        rc = ATP_ENOTFOUND;
    } else if (s->kind == PDS_SUBJECT_RECORD) {
        rc = pds_actor_store_record_status(ctx->actors, did, atp_slice_str(s->collection),
                                           atp_slice_str(s->rkey), &s->cid, &rs.takedown, err);
        s->has_cid = rc == 0;
    } else {
        rc = pds_actor_store_blob_status(ctx->actors, did, &s->cid, &rs.takedown, err);
    }
    if (rc == 0) {
        cJSON_AddItemToObject(o, "subject", pds_subject_to_json(s));
        cJSON_AddItemToObject(o, "takedown", attr_json(&rs.takedown));
    }
    if (rc == 0 && s->kind == PDS_SUBJECT_REPO) {
        pds_takedown d = {.applied = rs.deactivated};
        cJSON_AddItemToObject(o, "deactivated", attr_json(&d));
    }
    return rc;
}

static atp_slice opt_param(atp_req *r, const char *name)
{
    atp_slice v;
    return atp_req_query(r, name, &v) ? v : atp_slice_make(NULL, 0);
}

static void get_subject_status(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_subject *s;
    cJSON *o;
    atp_err e = {0};
    int rc;
    if (!is_admin(ctx, r)) {
        return;
    }
    s = atp_xmalloc(sizeof *s);
    rc = pds_subject_from_params(opt_param(r, "did"), opt_param(r, "uri"), opt_param(r, "blob"),
                                 s, &e);
    o = cJSON_CreateObject();
    if (rc == 0) {
        rc = subject_status(ctx, s, o, &e);
    }
    if (rc == 0) {
        pds_respond_json(r, o);
    } else if (rc == ATP_ENOTFOUND) {
        /* The store says which: no file for the DID at all, or no such row in it. */
        bool no_repo = strncmp(e.msg, "Could not find repo", 19) == 0;
        atp_req_error_status(r, 400, "NotFound", no_repo ? "Repo not found" : "Subject not found");
    } else if (rc == ATP_EINVAL) {
        bad_request(r, e.msg);
    } else {
        respond_failure(r, &e);
    }
    cJSON_Delete(o);
    free(s);
}

/* ---- account management ---- */

/* String member `name` of body, present and at most max bytes. Error sent. */
static const char *body_str(atp_req *r, const cJSON *b, const char *name, size_t max)
{
    const char *v = pds_json_str(b, name);
    char msg[96];
    if (!v || strlen(v) > max) {
        snprintf(msg, sizeof msg, "Input must have the property \"%s\" (a string)", name);
        bad_request(r, msg);
        return NULL;
    }
    return v;
}

static const char *body_did(atp_req *r, const cJSON *b, const char *name)
{
    const char *v = body_str(r, b, name, PDS_DID_MAX);
    if (v && !atp_syntax_is_did(atp_slice_str(v))) {
        bad_request(r, "Input must be a valid did");
        return NULL;
    }
    return v;
}

static void delete_account(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    cJSON *b = NULL;
    const char *did;
    atp_err e = {0};
    if (!is_admin(ctx, r) || pds_body_json(r, &b) < 0) {
        return;
    }
    did = body_did(r, b, "did");
    if (did) {
        int rc = pds_account_delete(ctx, did, &e);
        if (rc < 0 && rc != ATP_ENOTFOUND) {
            respond_failure(r, &e);
        } else {
            respond_empty(r);
        }
    }
    cJSON_Delete(b);
}

/* The admin's handle rules (the reference's allowAnyValid): any valid handle with an allowed
 * TLD; under a service domain also that domain's constraints. Lowercased into out. */
static bool admin_handle(pds_ctx *ctx, atp_req *r, const char *in, char out[PDS_HANDLE_MAX + 1])
{
    atp_err e = {0};
    size_t n = strlen(in);
    bool service = false;
    if (atp_syntax_normalize_handle(atp_slice_make(in, n), out, PDS_HANDLE_MAX + 1, &e) < 0) {
        bad_request(r, "Invalid handle"); /* the lexicon's format check, as the reference */
        return false;
    }
    if (!atp_syntax_handle_tld_allowed(atp_slice_str(out))) {
        atp_req_error_status(r, 400, "InvalidHandle", "Handle TLD is invalid or disallowed");
        return false;
    }
    for (unsigned i = 0; i < ctx->cfg->n_handle_domains; i++) {
        const char *d = ctx->cfg->handle_domains[i];
        size_t dn = strlen(d);
        service = service || (n > dn && strcmp(out + n - dn, d) == 0);
    }
    if (service && pds_handle_check(ctx->cfg, out, &e) < 0) {
        atp_req_error_status(r, 400, "InvalidHandle", e.msg);
        return false;
    }
    return true;
}

/* The handle change itself: the did:plc document first (a refusal there changes nothing
 * here), then the db row and the #identity event in one transaction. */
static void set_handle(pds_ctx *ctx, atp_req *r, const char *did, const char *handle)
{
    pds_account cur;
    atp_err e = {0};
    char msg[PDS_HANDLE_MAX + 40];
    int rc;
    bool taken = pds_db_account_get(ctx->db, handle, &cur) == 0;
    if (!taken && strncmp(did, "did:plc:", 8) == 0 && pds_db_account_get(ctx->db, did, &cur) == 0 &&
        (rc = pds_plc_update_handle(ctx, did, handle, &e)) < 0) {
        atp_logf(ATP_LOG_WARN, "admin", "plc: %s", e.msg);
        atp_req_error_status(r, rc == ATP_EINVAL ? 400 : 502,
                             rc == ATP_EINVAL ? "InvalidRequest" : "UpstreamFailure", e.msg);
        return;
    }
    if (taken) {
        if (strcmp(cur.did, did) != 0) {
            snprintf(msg, sizeof msg, "Handle already taken: %s", handle);
            bad_request(r, msg);
            return;
        }
        rc = pds_seq_identity(ctx->seq, did, handle, &e); /* unchanged: announce it again */
    } else {
        rc = pds_seq_set_handle(ctx->seq, did, handle, &e);
    }
    if (rc == ATP_ECONFLICT) {
        snprintf(msg, sizeof msg, "Handle already taken: %s", handle);
        bad_request(r, msg);
    } else if (rc == ATP_ENOTFOUND) {
        bad_request(r, "Account not found");
    } else if (rc < 0) {
        respond_failure(r, &e);
    } else {
        respond_empty(r);
    }
}

static void update_account_handle(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    cJSON *b = NULL;
    const char *did, *h = NULL;
    pds_account a;
    char handle[PDS_HANDLE_MAX + 1];
    if (!is_admin(ctx, r) || pds_body_json(r, &b) < 0) {
        return;
    }
    did = body_did(r, b, "did");
    if (did) {
        h = body_str(r, b, "handle", PDS_HANDLE_MAX);
    }
    if (h && admin_handle(ctx, r, h, handle)) {
        if (pds_db_account_get(ctx->db, did, &a) < 0) {
            bad_request(r, "Account not found");
        } else {
            set_handle(ctx, r, did, handle);
        }
    }
    cJSON_Delete(b);
}

typedef struct email_job {
    const char *did, *email;
} email_job;

static int email_fn(void *vctx, sqlite3 *c, atp_err *err)
{
    email_job *j = vctx;
    const char *a[] = {j->did, j->email};
    sqlite3_stmt *st =
        pds_sqlx_prepare_texts(c,
                               "UPDATE account SET email = ?2, email_confirmed_at = NULL"
                               " WHERE did = ?1",
                               2, a);
    int step = st ? sqlite3_step(st) : SQLITE_ERROR;
    sqlite3_finalize(st);
    if (step == SQLITE_CONSTRAINT) {
        return atp_err_set(err, ATP_ECONFLICT, 0, "email taken");
    }
    if (step != SQLITE_DONE) {
        return pds_sqlx_fail(c, err, "sqlite");
    }
    /* Tokens mailed to the old address must not work any more (the reference drops them). */
    return exec1(c, "DELETE FROM email_token WHERE did = ?1", 1, a, err);
}

/* Lowercase copy of an email (the reference stores them lowercased). */
static bool email_norm(const char *in, char out[PDS_EMAIL_MAX + 1])
{
    size_t n = strlen(in);
    if (n == 0 || n > PDS_EMAIL_MAX || !strchr(in, '@')) {
        return false;
    }
    for (size_t i = 0; i <= n; i++) {
        out[i] = (char)tolower((unsigned char)in[i]);
    }
    return true;
}

/* An at-identifier as the account lookup wants it: handles lowercased, DIDs as they are. */
static const char *ident_norm(const char *in, char out[PDS_DID_MAX + 1])
{
    size_t n = strlen(in);
    bool did = strncmp(in, "did:", 4) == 0;
    for (size_t i = 0; i <= n && i <= PDS_DID_MAX; i++) {
        out[i] = did ? in[i] : (char)tolower((unsigned char)in[i]);
    }
    out[PDS_DID_MAX] = '\0';
    return out;
}

static void update_account_email(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    cJSON *b = NULL;
    const char *who, *email = NULL;
    char norm[PDS_EMAIL_MAX + 1], msg[PDS_HANDLE_MAX + 40], ident[PDS_DID_MAX + 1];
    pds_account a;
    atp_err e = {0};
    if (!is_admin(ctx, r) || pds_body_json(r, &b) < 0) {
        return;
    }
    who = body_str(r, b, "account", PDS_DID_MAX);
    if (who) {
        email = body_str(r, b, "email", PDS_EMAIL_MAX);
    }
    if (!email) {
        cJSON_Delete(b);
        return;
    }
    if (!email_norm(email, norm)) {
        bad_request(r, "email must be an email address");
    } else if (!atp_syntax_is_atidentifier(atp_slice_str(who)) ||
               pds_db_account_get(ctx->db, ident_norm(who, ident), &a) < 0) {
        snprintf(msg, sizeof msg, "Account does not exist: %.*s", PDS_HANDLE_MAX, who);
        bad_request(r, msg);
    } else {
        email_job j = {a.did, norm};
        int rc = pds_db_txn(ctx->db, email_fn, &j, &e);
        if (rc == ATP_ECONFLICT) {
            bad_request(r, "This email address is already in use, please use a different one.");
        } else if (rc < 0) {
            respond_failure(r, &e);
        } else {
            respond_empty(r);
        }
    }
    cJSON_Delete(b);
}

typedef struct password_job {
    const char *did, *hash;
} password_job;

/* New hash, reset tokens dropped and every session revoked (the reference's
 * updateAccountPassword), together. */
static int password_fn(void *vctx, sqlite3 *c, atp_err *err)
{
    password_job *j = vctx;
    const char *a[] = {j->did, j->hash};
    int rc = exec1(c, "UPDATE account SET password_hash = ?2 WHERE did = ?1", 2, a, err);
    if (rc == 0) {
        rc = exec1(c, "DELETE FROM email_token WHERE did = ?1 AND purpose = 'reset_password'", 1,
                   a, err);
    }
    if (rc == 0) {
        rc = exec1(c, "DELETE FROM refresh_token WHERE did = ?1", 1, a, err);
    }
    return rc;
}

static void update_account_password(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    cJSON *b = NULL;
    const char *did, *pw = NULL;
    char hash[PDS_PW_HASH_LEN];
    atp_err e = {0};
    if (!is_admin(ctx, r) || pds_body_json(r, &b) < 0) {
        return;
    }
    did = body_did(r, b, "did");
    if (did) {
        pw = body_str(r, b, "password", (size_t)1 << 20);
    }
    if (pw) {
        size_t n = strlen(pw);
        if (n == 0 || n > PDS_PASSWORD_MAX || pds_password_hash(pw, n, hash) < 0) {
            bad_request(r, "Invalid password length.");
        } else {
            password_job j = {did, hash};
            if (pds_db_txn(ctx->db, password_fn, &j, &e) < 0) {
                respond_failure(r, &e);
            } else {
                respond_empty(r);
            }
        }
    }
    cJSON_Delete(b);
}

/* ---- invites ---- */

typedef struct codes_job {
    const cJSON *codes, *accounts; /* arrays of strings, or NULL */
} codes_job;

static int codes_fn(void *vctx, sqlite3 *c, atp_err *err)
{
    codes_job *j = vctx;
    const cJSON *it;
    int rc = 0;
    cJSON_ArrayForEach(it, j->codes)
    {
        const char *a = it->valuestring;
        rc = rc ? rc : exec1(c, "UPDATE invite_code SET disabled = 1 WHERE code = ?1", 1, &a, err);
    }
    cJSON_ArrayForEach(it, j->accounts)
    {
        const char *a = it->valuestring;
        rc = rc ? rc
                : exec1(c, "UPDATE invite_code SET disabled = 1 WHERE for_account = ?1", 1, &a,
                        err);
    }
    return rc;
}

/* Member `name`: absent, or an array of at most ADMIN_MAX_CODES strings. */
static bool str_array(const cJSON *b, const char *name, const cJSON **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(b, name), *it;
    *out = v;
    if (!v) {
        return true;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > ADMIN_MAX_CODES) {
        return false;
    }
    cJSON_ArrayForEach(it, v)
    {
        if (!cJSON_IsString(it)) {
            return false;
        }
    }
    return true;
}

static bool has_string(const cJSON *arr, const char *s)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (strcmp(it->valuestring, s) == 0) {
            return true;
        }
    }
    return false;
}

static void disable_invite_codes(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    cJSON *b = NULL;
    codes_job j;
    atp_err e = {0};
    if (!is_admin(ctx, r) || pds_body_json(r, &b) < 0) {
        return;
    }
    if (!str_array(b, "codes", &j.codes) || !str_array(b, "accounts", &j.accounts)) {
        bad_request(r, "codes and accounts must be arrays of at most 1000 strings");
    } else if (has_string(j.accounts, "admin")) {
        bad_request(r, "cannot disable admin invite codes");
    } else if (pds_db_txn(ctx->db, codes_fn, &j, &e) < 0) {
        respond_failure(r, &e);
    } else {
        respond_empty(r);
    }
    cJSON_Delete(b);
}

typedef struct stmt_job {
    const char *sql;
    const char *args[2];
} stmt_job;

static int stmt_fn(void *vctx, sqlite3 *c, atp_err *err)
{
    stmt_job *j = vctx;
    return exec1(c, j->sql, 2, j->args, err);
}

/* enable/disableAccountInvites: an unknown account changes nothing (200, as the reference). */
static void set_account_invites(atp_req *r, pds_ctx *ctx, bool disabled)
{
    cJSON *b = NULL;
    const char *did;
    atp_err e = {0};
    if (!is_admin(ctx, r) || pds_body_json(r, &b) < 0) {
        return;
    }
    did = body_did(r, b, "account");
    if (did) {
        stmt_job j = {"UPDATE account SET invites_disabled = CAST(?2 AS INTEGER) WHERE did = ?1",
                      {did, disabled ? "1" : "0"}};
        if (pds_db_txn(ctx->db, stmt_fn, &j, &e) < 0) {
            respond_failure(r, &e);
        } else {
            respond_empty(r);
        }
    }
    cJSON_Delete(b);
}

static void enable_account_invites(atp_req *r, void *ud)
{
    set_account_invites(r, ud, false);
}

static void disable_account_invites(atp_req *r, void *ud)
{
    set_account_invites(r, ud, true);
}

/* getInviteCodes pages by a text key per code, newest (sort=recent: createdAt) or most used
 * (sort=usage: the use count, zero-padded so text order is numeric order) first, ties by
 * code; the cursor is "<key>::<code>" of the last row given. */
#define CURSOR_MAX 512

typedef struct codes_page {
    bool usage;
    const char *after_key, *after_code; /* NULL: from the start */
    int limit;
    cJSON *codes;
    char cursor[CURSOR_MAX * 2 + 4];
} codes_page;

static const char PAGE_SQL[] =
    "SELECT " INVITE_COLS ", k FROM (SELECT " INVITE_COLS ", CASE WHEN ?4 THEN"
    " printf('%010d', (SELECT count(*) FROM invite_code_use u WHERE u.code = invite_code.code))"
    " ELSE created_at END AS k FROM invite_code) WHERE ?1 IS NULL OR k < ?1 OR"
    " (k = ?1 AND code < ?2) ORDER BY k DESC, code DESC LIMIT ?3";

static int page_fn(void *vctx, sqlite3 *c, atp_err *err)
{
    codes_page *p = vctx;
    sqlite3_stmt *st =
        pds_sqlx_prepare_texts(c, PAGE_SQL, 2, (const char *const[]){p->after_key, p->after_code});
    int step;
    if (!st) {
        return pds_sqlx_fail(c, err, "sqlite");
    }
    sqlite3_bind_int(st, 3, p->limit);
    sqlite3_bind_int(st, 4, p->usage);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON_AddItemToArray(p->codes, invite_obj(c, st));
        snprintf(p->cursor, sizeof p->cursor, "%.*s::%.*s", CURSOR_MAX, col_text(st, 6),
                 CURSOR_MAX, col_text(st, 0));
    }
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? 0 : pds_sqlx_fail(c, err, "sqlite");
}

/* sort, limit and cursor of getInviteCodes into p (cursor parts in buf). Error sent. */
static bool page_params(atp_req *r, codes_page *p, char buf[CURSOR_MAX + 1])
{
    atp_slice v;
    char *sep;
    if (atp_req_query(r, "sort", &v) && strcmp((const char *)v.ptr, "recent") != 0) {
        p->usage = strcmp((const char *)v.ptr, "usage") == 0;
        if (!p->usage) {
            bad_request(r, "sort must be recent or usage");
            return false;
        }
    }
    if (atp_req_query(r, "limit", &v)) {
        char *end = NULL;
        long n = strtol((const char *)v.ptr, &end, 10);
        if (v.len == 0 || v.len > 4 || *end != '\0' || n < 1 || n > 500) {
            bad_request(r, "limit must be an integer from 1 to 500");
            return false;
        }
        p->limit = (int)n;
    }
    if (atp_req_query(r, "cursor", &v)) {
        sep = v.len <= CURSOR_MAX ? strstr((const char *)v.ptr, "::") : NULL;
        if (!sep) {
            bad_request(r, "Malformed cursor");
            return false;
        }
        memcpy(buf, v.ptr, v.len + 1);
        buf[sep - (const char *)v.ptr] = '\0';
        p->after_key = buf;
        p->after_code = buf + (sep - (const char *)v.ptr) + 2;
    }
    return true;
}

static void get_invite_codes(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    codes_page p = {.limit = 100};
    char buf[CURSOR_MAX + 1];
    cJSON *o;
    atp_err e = {0};
    if (!is_admin(ctx, r) || !page_params(r, &p, buf)) {
        return;
    }
    p.codes = cJSON_CreateArray();
    if (pds_db_read(ctx->db, page_fn, &p, &e) < 0) {
        cJSON_Delete(p.codes);
        respond_failure(r, &e);
        return;
    }
    o = cJSON_CreateObject();
    if (p.cursor[0]) {
        cJSON_AddStringToObject(o, "cursor", p.cursor);
    }
    cJSON_AddItemToObject(o, "codes", p.codes);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

/* ---- sendEmail ---- */

static void send_mail(pds_ctx *ctx, atp_req *r, const char *did, const char *subject,
                      const char *content)
{
    pds_account a;
    cJSON *o;
    if (pds_db_account_get(ctx->db, did, &a) < 0) {
        bad_request(r, "Recipient not found");
        return;
    }
    if (!a.email[0]) {
        bad_request(r, "account does not have an email address");
        return;
    }
    if (!ctx->mailer || ctx->mailer->send(ctx->mailer->ud, a.email, subject, content) < 0) {
        atp_req_error_status(r, 500, "InternalServerError", "could not send the email");
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "sent", true);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

static void send_email(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    cJSON *b = NULL;
    const char *did, *content = NULL, *subject;
    const cJSON *sj;
    if (!is_admin(ctx, r) || pds_body_json(r, &b) < 0) {
        return;
    }
    did = body_did(r, b, "recipientDid");
    if (did && body_did(r, b, "senderDid")) {
        content = body_str(r, b, "content", PDS_JSON_MAX);
    }
    sj = cJSON_GetObjectItemCaseSensitive(b, "subject");
    subject = cJSON_IsString(sj) ? sj->valuestring : "Message via your PDS";
    if (content && sj && !cJSON_IsString(sj)) {
        bad_request(r, "subject must be a string");
    } else if (content) {
        send_mail(ctx, r, did, subject, content);
    }
    cJSON_Delete(b);
}

void pds_routes_admin(atp_server *s, pds_ctx *ctx)
{
    static const struct {
        const char *method, *nsid;
        atp_handler_fn fn;
    } routes[] = {
        {"GET", "getAccountInfo", get_account_info},
        {"GET", "getAccountInfos", get_account_infos},
        {"POST", "updateSubjectStatus", update_subject_status},
        {"GET", "getSubjectStatus", get_subject_status},
        {"POST", "deleteAccount", delete_account},
        {"POST", "updateAccountHandle", update_account_handle},
        {"POST", "updateAccountEmail", update_account_email},
        {"POST", "updateAccountPassword", update_account_password},
        {"POST", "disableInviteCodes", disable_invite_codes},
        {"POST", "enableAccountInvites", enable_account_invites},
        {"POST", "disableAccountInvites", disable_account_invites},
        {"GET", "getInviteCodes", get_invite_codes},
        {"POST", "sendEmail", send_email},
    };
    char path[96];
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        snprintf(path, sizeof path, "/xrpc/com.atproto.admin.%s", routes[i].nsid);
        atp_server_route(s, routes[i].method, path, routes[i].fn, ctx, ATP_ROUTE_BLOCKING);
    }
}
