/* pds/src/lifecycle.c: account lifecycle. requestAccountDelete / deleteAccount and the deletion
 * itself (pds_account_delete), status changes with their firehose events, and the service-JWT
 * check that lets a migrating account be created with its existing DID.
 *
 * Deletion order, so that a crash at any point leaves a consistent state: the status "deleted"
 * and its #account event commit first, in one service-db transaction (from then on the account
 * is gone for every lookup); then the account's rows in one transaction; then its files and
 * blobs. A restart finishes any deletion left with status "deleted" (pds_account_delete_sweep).
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "actor_store_import.h"
#include "actor_store_int.h"
#include "atp/didoc.h"
#include "atp/jwt.h"
#include "atp/log.h"
#include "atp/resolve.h"
#include "atp/syntax.h"
#include "blobstore.h"
#include "db.h"
#include "lifecycle.h"
#include "mailer.h"
#include "password.h"
#include "pds.h"
#include "sequencer.h"
#include "sqlx.h"

#define SWEEP_MAX 1000 /* interrupted deletions finished per start */

/* Runs `sql` with text parameters ?1.. (NULL binds NULL); *changes (nullable) gets the count. */
static int run_sql(sqlite3 *c, const char *sql, const char *const *args, int n, int *changes,
                   atp_err *err)
{
    sqlite3_stmt *st = pds_sqlx_prepare_texts(c, sql, n, args);
    int rc;
    if (!st) {
        return pds_sqlx_fail(c, err, "sqlite");
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return pds_sqlx_fail(c, err, "sqlite");
    }
    if (changes) {
        *changes = sqlite3_changes(c);
    }
    return 0;
}

/* ---- status changes ---- */

typedef struct status_job {
    const char *did, *deactivated_at, *delete_after;
} status_job;

static int status_cols_fn(void *ctx, sqlite3 *c, atp_err *err)
{
    const status_job *j = ctx;
    const char *args[3] = {j->did, j->deactivated_at, j->delete_after};
    int n = 0;
    int rc = run_sql(c, "UPDATE account SET deactivated_at = ?2, delete_after = ?3 WHERE did = ?1",
                     args, 3, &n, err);
    return rc ? rc : n == 0 ? atp_err_set(err, ATP_ENOTFOUND, 0, "account not found") : 0;
}

int pds_account_set_status(pds_ctx *ctx, const char *did, pds_status st, const char *delete_after,
                           atp_err *err)
{
    char now[32];
    pds_account a;
    status_job j = {did, NULL, NULL};
    pds_now_iso(ctx, now);
    if (st == PDS_ST_DEACTIVATED) {
        j.deactivated_at = now;
        j.delete_after = delete_after;
    }
    int rc = pds_db_txn(ctx->db, status_cols_fn, &j, err);
    rc = rc ? rc : pds_seq_set_status(ctx->seq, did, st, err);
    /* a sequencer that stored no status (its stub) must not leave the change undone */
    if (rc == 0 && st != PDS_ST_DELETED && pds_db_account_get(ctx->db, did, &a) == 0 &&
        a.status != st) {
        rc = pds_db_account_set_status(ctx->db, did, st);
    }
    return rc;
}

int pds_account_activate(pds_ctx *ctx, const char *did, atp_err *err)
{
    pds_account a;
    if (pds_db_account_get(ctx->db, did, &a) < 0) {
        return atp_err_set(err, ATP_ENOTFOUND, 0, "user not found");
    }
    /* pds_seq_set_status(ACTIVE) sequences the reference's #account, #identity and #sync */
    return pds_account_set_status(ctx, did, PDS_ST_ACTIVE, NULL, err);
}

/* ---- service auth (migration's createAccount) ---- */

static int auth_fail(atp_req *r, int rc, const char *error, const char *msg)
{
    atp_req_error_status(r, 401, error, msg);
    return rc < 0 ? rc : ATP_EAUTH;
}

/* The #atproto key of `did` from its document (fresh when `refresh`). */
static int did_key(pds_ctx *ctx, const char *did, bool refresh, atp_key **out, atp_err *err)
{
    atp_arena *a = atp_arena_create(0);
    atp_didoc doc;
    if (refresh) {
        atp_resolver_purge(ctx->resolver, atp_slice_str(did));
    }
    int rc = atp_resolve_did(ctx->resolver, atp_slice_str(did), a, &doc, err);
    rc = rc ? rc : atp_didoc_key_get(&doc.signing, out, err);
    atp_arena_destroy(a);
    return rc;
}

static const char *jwt_error_name(int rc, const char *msg)
{
    if (rc == ATP_EEXPIRED) {
        return "JwtExpired";
    }
    if (strstr(msg, "aud")) {
        return "BadJwtAudience";
    }
    if (strstr(msg, "lxm")) {
        return "BadJwtLexiconMethod";
    }
    return strstr(msg, "signature") ? "BadJwtSignature" : "BadJwt";
}

/* Verifies `tok` with iss's key; on a bad signature retries once with a fresh document (the
 * key may just have been rotated), as the reference does. */
static int verify_with_did(pds_ctx *ctx, atp_slice tok, const char *iss, const char *lxm,
                           atp_err *err)
{
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        atp_key *key = NULL;
        atp_jwt_verify_opts o;
        rc = did_key(ctx, iss, attempt > 0, &key, err);
        if (rc < 0) {
            return rc;
        }
        atp_jwt_verify_opts_init(&o, ctx->now());
        o.key.key = key;
        o.aud = ctx->service_did;
        o.lxm = lxm;
        o.allow_high_s = true;
        rc = atp_jwt_verify(tok, &o, NULL, NULL, err);
        atp_key_destroy(key);
        if (rc == 0 || !strstr(err->msg, "signature")) {
            break;
        }
    }
    return rc;
}

/* The token of "Authorization: Bearer <token>", or an empty slice. */
static atp_slice bearer(atp_req *r)
{
    atp_slice h;
    if (!atp_req_header(r, "authorization", &h) || h.len <= 7 ||
        strncasecmp((const char *)h.ptr, "Bearer ", 7) != 0 ||
        h.len > 7 + ATP_JWT_MAX_LEN_DEFAULT) {
        return atp_slice_make(NULL, 0);
    }
    return atp_slice_make(h.ptr + 7, h.len - 7);
}

int pds_service_auth_check(pds_ctx *ctx, atp_req *r, const char *lxm, char iss[PDS_DID_MAX + 1])
{
    atp_slice tok = bearer(r);
    atp_err err;
    atp_buf b;
    char did[PDS_DID_MAX + 1];
    atp_err_clear(&err);
    if (!tok.len) {
        return auth_fail(r, ATP_EAUTH, "AuthenticationRequired", "Authentication Required");
    }
    atp_buf_init(&b, PDS_DID_MAX + 64);
    int rc = atp_jwt_unverified_iss(tok, NULL, &b, &err);
    snprintf(did, sizeof did, "%.*s", rc == 0 ? (int)b.len : 0, (const char *)b.ptr);
    atp_buf_release(&b);
    char *hash = strchr(did, '#');
    if (hash) {
        *hash = '\0'; /* "did#service" issuers: the key is the DID's own */
    }
    if (rc < 0 || atp_syntax_check_did(atp_slice_str(did), NULL) < 0) {
        return auth_fail(r, rc, "BadJwt", "jwt issuer is not a DID");
    }
    rc = verify_with_did(ctx, tok, did, lxm, &err);
    if (rc < 0) {
        return auth_fail(r, rc, jwt_error_name(rc, err.msg), err.msg);
    }
    memcpy(iss, did, strlen(did) + 1);
    return 0;
}

/* ---- deletion ---- */

static int delete_rows_fn(void *ctx, sqlite3 *c, atp_err *err)
{
    static const char *const sql[] = {
        "DELETE FROM refresh_token WHERE did = ?1",
        "DELETE FROM app_password WHERE did = ?1",
        "DELETE FROM account_pref WHERE did = ?1",
        "DELETE FROM email_token WHERE did = ?1",
        "DELETE FROM reserved_signing_key WHERE did = ?1",
        "DELETE FROM account WHERE did = ?1",
    };
    const char *const *did = ctx;
    const char *args[1] = {*did};
    int rc = 0;
    for (size_t i = 0; i < sizeof sql / sizeof sql[0] && rc == 0; i++) {
        rc = run_sql(c, sql[i], args, 1, NULL, err);
    }
    return rc;
}

/* Removes the account's folder (its store.sqlite and SQLite's side files); the store handle was
 * emptied first, so nothing reads it meanwhile. */
static void remove_folder(pds_ctx *ctx, const char *did)
{
    char path[4096], file[4096 + 260];
    struct dirent *e;
    DIR *d;
    if (pds_actor_store_path(ctx->actors, atp_slice_str(did), path, sizeof path, NULL) < 0) {
        return;
    }
    *strrchr(path, '/') = '\0';
    if (!(d = opendir(path))) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(file, sizeof file, "%s/%s", path, e->d_name);
            (void)unlink(file);
        }
    }
    closedir(d);
    if (rmdir(path) != 0) {
        atp_logf(ATP_LOG_WARN, "lifecycle", "could not remove %s", path);
    }
}

/* Everything after the status change: rows, then files and blobs. */
static int finish_delete(pds_ctx *ctx, const char *did, atp_err *err)
{
    int rc = pds_db_txn(ctx->db, delete_rows_fn, &did, err);
    if (rc < 0) {
        return rc;
    }
    if (ctx->actors) {
        atp_err e2;
        if (pds_actor_store_wipe(ctx->actors, atp_slice_str(did), &e2) < 0 &&
            e2.code != ATP_ENOTFOUND) {
            atp_logf(ATP_LOG_WARN, "lifecycle", "wipe %s: %s", did, e2.msg);
        }
        remove_folder(ctx, did);
        if (pds_actor_store_forget(ctx->actors, atp_slice_str(did)) < 0) {
            atp_logf(ATP_LOG_WARN, "lifecycle", "%s: store handle still in use", did);
        }
    }
    if (ctx->blobs && pds_blobstore_delete_account(ctx->blobs, did, err) < 0) {
        atp_logf(ATP_LOG_WARN, "lifecycle", "blobs of %s: %s", did, err->msg);
    }
    return 0;
}

int pds_account_delete(pds_ctx *ctx, const char *did, atp_err *err)
{
    pds_account a;
    if (pds_db_account_get(ctx->db, did, &a) < 0) {
        return atp_err_set(err, ATP_ENOTFOUND, 0, "account not found");
    }
    int rc = pds_seq_set_status(ctx->seq, did, PDS_ST_DELETED, err);
    if (rc < 0) {
        return rc;
    }
    if (pds_db_account_get(ctx->db, did, &a) == 0) {
        /* a stub sequencer stored nothing: mark it so a crash below is finished at start */
        rc = pds_db_account_set_status(ctx->db, did, PDS_ST_DELETED);
    }
    rc = rc ? rc : finish_delete(ctx, did, err);
    if (rc == 0) {
        atp_logf(ATP_LOG_INFO, "lifecycle", "account %s deleted", did);
    }
    return rc;
}

typedef struct sweep_job {
    char (*dids)[PDS_DID_MAX + 1];
    int n;
} sweep_job;

static int sweep_fn(void *ctx, sqlite3 *c, atp_err *err)
{
    sweep_job *j = ctx;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c, "SELECT did FROM account WHERE status = 'deleted' LIMIT ?1", -1, &st,
                           NULL) != SQLITE_OK) {
        return pds_sqlx_fail(c, err, "sqlite");
    }
    sqlite3_bind_int(st, 1, SWEEP_MAX);
    while (j->n < SWEEP_MAX && sqlite3_step(st) == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(st, 0);
        snprintf(j->dids[j->n++], PDS_DID_MAX + 1, "%s", d ? d : "");
    }
    sqlite3_finalize(st);
    return 0;
}

int pds_account_delete_sweep(pds_ctx *ctx)
{
    sweep_job j = {atp_xcalloc(SWEEP_MAX, sizeof *j.dids), 0};
    atp_err err;
    int done = 0;
    if (pds_db_read(ctx->db, sweep_fn, &j, &err) == 0) {
        for (int i = 0; i < j.n; i++) {
            done += j.dids[i][0] && finish_delete(ctx, j.dids[i], &err) == 0;
        }
    }
    free(j.dids);
    if (done > 0) {
        atp_logf(ATP_LOG_INFO, "lifecycle", "finished %d interrupted account deletions", done);
    }
    return done;
}

/* ---- email tokens ---- */

typedef struct token_job {
    const char *did, *token, *now;
    char stored[64], requested_at[40];
    bool found;
} token_job;

static int token_put_fn(void *ctx, sqlite3 *c, atp_err *err)
{
    const token_job *j = ctx;
    const char *args[3] = {j->did, j->token, j->now};
    return run_sql(c,
                   "INSERT OR REPLACE INTO email_token(purpose, did, token, requested_at)"
                   " VALUES('delete_account', ?1, ?2, ?3)",
                   args, 3, NULL, err);
}

static int token_get_fn(void *ctx, sqlite3 *c, atp_err *err)
{
    token_job *j = ctx;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c,
                           "SELECT token, requested_at FROM email_token"
                           " WHERE purpose = 'delete_account' AND did = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(c, err, "sqlite");
    }
    sqlite3_bind_text(st, 1, j->did, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        const char *at = (const char *)sqlite3_column_text(st, 1);
        j->found = t && at;
        snprintf(j->stored, sizeof j->stored, "%s", t ? t : "");
        snprintf(j->requested_at, sizeof j->requested_at, "%s", at ? at : "");
    }
    sqlite3_finalize(st);
    return 0;
}

/* "XXXXX-XXXXX" in upper-case base32, as the reference's email tokens. */
static void new_token(char out[12])
{
    char pw[PDS_APP_PASS_LEN + 1], alnum[20];
    size_t n = 0;
    pds_app_password_generate(pw);
    for (const char *p = pw; *p && n < 10; p++) {
        if (*p != '-') {
            alnum[n++] = (char)toupper((unsigned char)*p);
        }
    }
    snprintf(out, 12, "%.5s-%.5s", alnum, alnum + 5);
}

/* Unix seconds of an RFC 3339 UTC timestamp as pds_now_iso writes it; -1 if malformed. */
static int64_t iso_seconds(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6) {
        return -1;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

/* ---- routes ---- */

static void request_account_delete(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    pds_account a;
    char token[12], now[32], body[256];
    atp_err err;
    atp_err_clear(&err);
    if (pds_auth_access_full(ctx, r, &au) < 0) {
        return;
    }
    if (pds_db_account_get(ctx->db, au.did, &a) < 0) {
        atp_req_error_status(r, 400, "InvalidRequest", "account not found");
        return;
    }
    if (!a.email[0]) {
        atp_req_error_status(r, 400, "InvalidRequest", "account does not have an email address");
        return;
    }
    new_token(token);
    pds_now_iso(ctx, now);
    token_job j = {a.did, token, now, "", "", false};
    snprintf(body, sizeof body, "Your account deletion token is %s (valid 15 minutes).", token);
    if (pds_db_txn(ctx->db, token_put_fn, &j, &err) < 0 ||
        ctx->mailer->send(ctx->mailer->ud, a.email, "Account Deletion Request", body) < 0) {
        atp_req_error(r, ATP_EINTERNAL, "could not send the token");
        return;
    }
    atp_req_respond(r, 200, NULL, atp_slice_make(NULL, 0));
}

/* Checks the deletion token of `did` (case-insensitive, as the reference upper-cases input).
 * Sends the error; 0 if valid. */
static int check_delete_token(pds_ctx *ctx, atp_req *r, const char *did, const char *token)
{
    token_job j;
    atp_err err;
    memset(&j, 0, sizeof j);
    j.did = did;
    if (pds_db_read(ctx->db, token_get_fn, &j, &err) < 0) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
        return ATP_EIO;
    }
    if (!j.found || strlen(token) != strlen(j.stored) || strcasecmp(token, j.stored) != 0) {
        atp_req_error_status(r, 400, "InvalidToken", "Token is invalid");
        return ATP_ETOKEN;
    }
    int64_t at = iso_seconds(j.requested_at);
    if (at < 0 || ctx->now() - at > PDS_DELETE_TOKEN_TTL) {
        atp_req_error_status(r, 400, "ExpiredToken", "Token is expired");
        return ATP_EEXPIRED;
    }
    return 0;
}

static void delete_account_body(pds_ctx *ctx, atp_req *r, const cJSON *b)
{
    const char *did = pds_json_str(b, "did"), *pw = pds_json_str(b, "password");
    const char *token = pds_json_str(b, "token");
    pds_account a;
    atp_err err;
    atp_err_clear(&err);
    if (!did || !pw || !token || !did[0]) {
        atp_req_error_status(r, 400, "InvalidRequest", "did, password and token are required");
    } else if (strlen(did) > PDS_DID_MAX || pds_db_account_get(ctx->db, did, &a) < 0) {
        atp_req_error_status(r, 400, "InvalidRequest", "account not found");
    } else if (strlen(pw) > PDS_PASSWORD_MAX ||
               !pds_password_verify(pw, strlen(pw), a.password_hash)) {
        atp_req_error_status(r, 401, "AuthenticationRequired", "Invalid did or password");
    } else if (check_delete_token(ctx, r, a.did, token) == 0) {
        if (pds_account_delete(ctx, a.did, &err) < 0) {
            atp_logf(ATP_LOG_ERROR, "lifecycle", "delete %s: %s", a.did, err.msg);
            atp_req_error(r, ATP_EINTERNAL, "could not delete the account");
        } else {
            atp_req_respond(r, 200, NULL, atp_slice_make(NULL, 0));
        }
    }
}

static void delete_account(atp_req *r, void *ud)
{
    cJSON *b = NULL;
    if (pds_body_json(r, &b) < 0) {
        return;
    }
    delete_account_body(ud, r, b);
    cJSON_Delete(b);
}

void pds_routes_lifecycle(atp_server *s, pds_ctx *ctx)
{
    if (ctx->db) {
        (void)pds_account_delete_sweep(ctx);
    }
    atp_server_route(s, "POST", "/xrpc/com.atproto.server.requestAccountDelete",
                     request_account_delete, ctx, ATP_ROUTE_BLOCKING);
    atp_server_route(s, "POST", "/xrpc/com.atproto.server.deleteAccount", delete_account, ctx,
                     ATP_ROUTE_BLOCKING);
}
