/* pds/src/server.c: com.atproto.server.* (accounts, sessions, app passwords, invites). */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "actor_store_import.h"
#include "atp/didoc.h"
#include "atp/log.h"
#include "atp/syntax.h"
#include "db.h"
#include "lifecycle.h"
#include "password.h"
#include "pds.h"
#include "plc_ops.h"
#include "ratelimit.h"
#include "sequencer.h"

#ifdef PDS_HAVE_ACTOR_STORE
#include "actor_store.h"
#endif

#define JSON_TYPE "application/json; charset=utf-8"

static void lower(char *s)
{
    for (; *s; s++) {
        *s = (char)tolower((unsigned char)*s);
    }
}

/* Copies a string member into dst (lowercased when asked); false if absent or too long. */
static bool get_str(const cJSON *body, const char *name, char *dst, size_t cap, bool lc)
{
    const char *v = pds_json_str(body, name);
    size_t n = v ? strlen(v) : 0;
    if (!v || n >= cap) {
        return false;
    }
    memcpy(dst, v, n + 1);
    if (lc) {
        lower(dst);
    }
    return true;
}

static void describe_server(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    cJSON *o = cJSON_CreateObject(), *doms = cJSON_AddArrayToObject(o, "availableUserDomains");
    for (unsigned i = 0; i < ctx->cfg->n_handle_domains; i++) {
        cJSON_AddItemToArray(doms, cJSON_CreateString(ctx->cfg->handle_domains[i]));
    }
    cJSON_AddStringToObject(o, "did", ctx->service_did);
    cJSON_AddBoolToObject(o, "inviteCodeRequired", ctx->cfg->invite_required);
    cJSON_AddBoolToObject(o, "phoneVerificationRequired", false);
    cJSON_AddObjectToObject(o, "links");
    cJSON_AddObjectToObject(o, "contact");
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

/* Adds active/status as the lexicon's session output has them. */
static void add_status(cJSON *o, pds_status st)
{
    cJSON_AddBoolToObject(o, "active", st == PDS_ST_ACTIVE);
    if (st != PDS_ST_ACTIVE) {
        cJSON_AddStringToObject(o, "status", pds_status_name(st));
    }
}

/* Issues a session for `a` (refresh id stored) and sends it. */
static void send_session(pds_ctx *ctx, atp_req *r, const pds_account *a, pds_scope scope,
                         const char *app_pass)
{
    char access[PDS_TOKEN_MAX], refresh[PDS_TOKEN_MAX], jti[PDS_JTI_MAX + 1];
    int64_t exp;
    cJSON *o;
    if (pds_tokens_create(ctx, a->did, scope, NULL, access, refresh, jti, &exp) < 0 ||
        pds_db_refresh_add(ctx->db, jti, a->did, app_pass, exp) < 0) {
        atp_req_error(r, ATP_EINTERNAL, "could not create session");
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "accessJwt", access);
    cJSON_AddStringToObject(o, "refreshJwt", refresh);
    cJSON_AddStringToObject(o, "handle", a->handle);
    cJSON_AddStringToObject(o, "did", a->did);
    if (a->email[0]) {
        cJSON_AddStringToObject(o, "email", a->email);
        cJSON_AddBoolToObject(o, "emailConfirmed", false);
    }
    add_status(o, a->status);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

/* ---- createAccount ---- */

typedef struct new_account {
    char handle[PDS_HANDLE_MAX + 1];
    char email[PDS_EMAIL_MAX + 1];
    char password[PDS_PASSWORD_MAX + 1];
    char invite[128];
    char did[PDS_DID_MAX + 1]; /* migration: the account's existing DID, else "" */
} new_account;

/* Reads and checks the createAccount input; on failure the error is sent. */
static int read_new_account(pds_ctx *ctx, atp_req *r, const cJSON *b, new_account *na)
{
    atp_err err;
    atp_err_clear(&err);
    if (!get_str(b, "handle", na->handle, sizeof na->handle, true)) {
        atp_req_error_status(r, 400, "InvalidHandle", "Handle is required");
        return ATP_EINVAL;
    }
    na->did[0] = '\0';
    if (pds_json_str(b, "did") &&
        (!get_str(b, "did", na->did, sizeof na->did, false) ||
         atp_syntax_check_did(atp_slice_str(na->did), NULL) < 0)) {
        atp_req_error_status(r, 400, "InvalidRequest", "Invalid DID");
        return ATP_EINVAL;
    }
    if (!get_str(b, "email", na->email, sizeof na->email, true) || !strchr(na->email, '@') ||
        na->email[0] == '@') {
        atp_req_error_status(r, 400, "InvalidRequest", "A valid email is required");
        return ATP_EINVAL;
    }
    if (!get_str(b, "password", na->password, sizeof na->password, false) ||
        na->password[0] == '\0') {
        atp_req_error_status(r, 400, "InvalidPassword", "Password is required (1-256 bytes)");
        return ATP_EINVAL;
    }
    na->invite[0] = '\0';
    if (ctx->cfg->invite_required &&
        (!get_str(b, "inviteCode", na->invite, sizeof na->invite, false) || !na->invite[0])) {
        atp_req_error_status(r, 400, "InvalidInviteCode", "No invite code provided");
        return ATP_EINVAL;
    }
    if (pds_handle_check(ctx->cfg, na->handle, &err) < 0) {
        bool dom = strstr(err.msg, "domain") != NULL;
        atp_req_error_status(r, 400, dom ? "UnsupportedDomain" : "InvalidHandle", err.msg);
        return ATP_EINVAL;
    }
    return 0;
}

/* Refuses taken handles/emails before a DID is created on the PLC directory. */
static int check_available(pds_ctx *ctx, atp_req *r, const new_account *na)
{
    pds_account a;
    if (pds_db_account_get(ctx->db, na->handle, &a) == 0) {
        atp_req_error_status(r, 400, "HandleNotAvailable", "Handle already taken");
        return ATP_ECONFLICT;
    }
    if (pds_db_account_get(ctx->db, na->email, &a) == 0) {
        atp_req_error_status(r, 400, "InvalidRequest", "Email already taken");
        return ATP_ECONFLICT;
    }
    return 0;
}

static void insert_failed(atp_req *r, int rc, const atp_err *err)
{
    if (rc == ATP_EFORBIDDEN) {
        atp_req_error_status(r, 400, "InvalidInviteCode", "Provided invite code not available");
    } else if (rc == ATP_ECONFLICT && strcmp(err->msg, "did") == 0) {
        atp_req_error_status(r, 400, "InvalidRequest", "Account already exists");
    } else if (rc == ATP_ECONFLICT && strcmp(err->msg, "handle") == 0) {
        atp_req_error_status(r, 400, "HandleNotAvailable", "Handle already taken");
    } else if (rc == ATP_ECONFLICT) {
        atp_req_error_status(r, 400, "InvalidRequest", "Email already taken");
    } else {
        atp_req_error(r, ATP_EINTERNAL, "could not store the account");
    }
}

/* Stores the account with its signing key; the error is sent on failure. */
static int store_account(pds_ctx *ctx, atp_req *r, const new_account *na, const char *did,
                         const atp_key *key)
{
    pds_account a;
    uint8_t priv[ATP_KEY_PRIV_LEN];
    char hex[65];
    atp_err err;
    int rc;
    atp_err_clear(&err);
    memset(&a, 0, sizeof a);
    snprintf(a.did, sizeof a.did, "%s", did);
    memcpy(a.handle, na->handle, sizeof a.handle);
    memcpy(a.email, na->email, sizeof a.email);
    pds_now_iso(ctx, a.created_at);
    if (pds_password_hash(na->password, strlen(na->password), a.password_hash) < 0 ||
        atp_key_export_private(key, priv, NULL) < 0) {
        atp_req_error(r, ATP_EINTERNAL, "could not hash the password");
        return ATP_EINTERNAL;
    }
    for (int i = 0; i < ATP_KEY_PRIV_LEN; i++) {
        snprintf(hex + 2 * i, 3, "%02x", priv[i]);
    }
    rc = pds_db_account_create(ctx->db, &a, na->invite[0] ? na->invite : NULL, &err);
    if (rc == 0) {
        rc = pds_db_account_set_key(ctx->db, did, hex);
    }
    if (rc < 0) {
        insert_failed(r, rc, &err);
    }
    return rc;
}

/* The account's empty repo, through the actor store when it is built in. */
static int create_repo(pds_ctx *ctx, atp_req *r, const char *did, const atp_key *key)
{
#ifdef PDS_HAVE_ACTOR_STORE
    pds_commit_info ci;
    atp_err err;
    atp_err_clear(&err);
    pds_account a;
    /* The reference's order: #identity, #account (active), then the first #commit and #sync.
     * Sequenced before the repo exists: once its commit is queued, another writer's
     * after_write may sequence it at any moment. */
    if (pds_db_account_get(ctx->db, did, &a) == 0 &&
        (pds_seq_identity(ctx->seq, did, a.handle, &err) < 0 ||
         pds_seq_account(ctx->seq, did, PDS_ST_ACTIVE, &err) < 0)) {
        atp_logf(ATP_LOG_ERROR, "account", "sequencing %s: %s", did, err.msg);
    }
    if (ctx->actors &&
        pds_actor_store_create_repo(ctx->actors, atp_slice_str(did), key, &ci, &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "account", "repo for %s: %s", did, err.msg);
        atp_req_error(r, ATP_EINTERNAL, "could not create the repository");
        return ATP_EIO;
    }
    pds_seq_after_write(ctx->seq, did);
#else
    /* HOOK: the actor store (pds/src/actor_store.h) creates the empty repo here. */
    (void)ctx, (void)r, (void)did, (void)key;
#endif
    return 0;
}

/* The key is the account's now: its reservation (if any) is dropped. */
static void unreserve(pds_ctx *ctx, const atp_key *key, const char *did)
{
    char key_did[ATP_DIDKEY_MAX_LEN + 1];
    pds_didkey_format(key, key_did);
    if (pds_signing_key_unreserve(ctx, key_did, did) < 0) {
        atp_logf(ATP_LOG_WARN, "account", "could not drop the key reservation of %s", did);
    }
}

/* Migration (createAccount with `did`): the caller proves control of the DID with a service
 * JWT from it (lxm createAccount, aud us); the account is made deactivated with no PLC operation
 * and no repo (importRepo brings it, activateAccount finishes). The repo key is the one
 * reserveSigningKey set aside for the DID, else a new one. */
static void create_migrated(pds_ctx *ctx, atp_req *r, const new_account *na)
{
    char iss[PDS_DID_MAX + 1];
    atp_key *key = NULL;
    pds_account a;
    if (pds_service_auth_check(ctx, r, "com.atproto.server.createAccount", iss) < 0) {
        return;
    }
    if (strcmp(iss, na->did) != 0) {
        atp_req_error_status(r, 401, "AuthenticationRequired",
                             "Missing auth to create account with did");
        return;
    }
    if (pds_signing_key_reserved(ctx, na->did, &key) < 0 &&
        atp_key_generate(ATP_CURVE_K256, &key, NULL) < 0) {
        atp_req_error(r, ATP_EINTERNAL, "key generation failed");
    } else if (store_account(ctx, r, na, na->did, key) == 0) {
        unreserve(ctx, key, na->did);
        if (pds_db_account_set_status(ctx->db, na->did, PDS_ST_DEACTIVATED) < 0 ||
            pds_db_account_get(ctx->db, na->did, &a) < 0) {
            atp_req_error(r, ATP_EINTERNAL, NULL);
        } else {
            atomic_fetch_add(&ctx->metrics.accounts_created, 1);
            send_session(ctx, r, &a, PDS_SCOPE_ACCESS, NULL);
        }
    }
    atp_key_destroy(key);
}

static void create_account_body(pds_ctx *ctx, atp_req *r, const cJSON *b)
{
    new_account na;
    atp_key *key = NULL;
    char did[PDS_DID_MAX + 1];
    pds_account a;
    atp_err err;
    atp_err_clear(&err);
    if (read_new_account(ctx, r, b, &na) < 0 || check_available(ctx, r, &na) < 0) {
        return;
    }
    if (na.did[0]) {
        create_migrated(ctx, r, &na);
        return;
    }
    if (atp_key_generate(ATP_CURVE_K256, &key, &err) < 0) {
        atp_req_error(r, ATP_EINTERNAL, "key generation failed");
        return;
    }
    if (pds_plc_create_did(ctx, na.handle, key, did, &err) < 0) {
        atp_logf(ATP_LOG_WARN, "account", "plc: %s", err.msg);
        atp_req_error_status(r, 502, "UpstreamFailure", "PLC directory refused the DID");
    } else if (store_account(ctx, r, &na, did, key) == 0 && create_repo(ctx, r, did, key) == 0) {
        if (pds_db_account_get(ctx->db, did, &a) == 0) {
            atomic_fetch_add(&ctx->metrics.accounts_created, 1);
            send_session(ctx, r, &a, PDS_SCOPE_ACCESS, NULL);
        } else {
            atp_req_error(r, ATP_EINTERNAL, NULL);
        }
    }
    atp_key_destroy(key);
}

static void create_account(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    cJSON *b = NULL;
    if (pds_ratelimit_check(ctx->rl_account, r) < 0) {
        atomic_fetch_add(&ctx->metrics.rate_limited, 1);
        return;
    }
    if (pds_body_json(r, &b) < 0) {
        return;
    }
    create_account_body(ctx, r, b);
    cJSON_Delete(b);
}

/* ---- createSession ---- */

typedef struct app_pw_check {
    const char *pw;
    size_t len;
} app_pw_check;

static bool app_pw_match(const char *hash, void *ud)
{
    const app_pw_check *c = ud;
    return pds_password_verify(c->pw, c->len, hash);
}

/* Which scope `pw` grants for `a`: 0 + scope, or ATP_EAUTH. */
static int check_login(pds_ctx *ctx, const pds_account *a, const char *pw, pds_scope *scope,
                       char app_name[PDS_APP_PASS_NAME_MAX + 1])
{
    size_t n = strlen(pw);
    app_pw_check c = {pw, n};
    bool priv = false;
    app_name[0] = '\0';
    if (pds_password_verify(pw, n, a->password_hash)) {
        *scope = PDS_SCOPE_ACCESS;
        return 0;
    }
    if (pds_app_password_shape(pw, n) &&
        pds_db_app_pass_find(ctx->db, a->did, app_pw_match, &c, app_name, &priv) == 1) {
        *scope = priv ? PDS_SCOPE_APP_PASS_PRIV : PDS_SCOPE_APP_PASS;
        return 0;
    }
    return ATP_EAUTH;
}

/* A fixed hash to spend the same time when the identifier is unknown (no user probing). */
static char dummy[PDS_PW_HASH_LEN];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_init(void)
{
    if (pds_password_hash("dummy", 5, dummy) < 0) {
        dummy[0] = '\0'; /* verify then fails fast; only timing is lost */
    }
}

static const char *dummy_hash(void)
{
    pthread_once(&dummy_once, dummy_init);
    return dummy;
}

static void login(pds_ctx *ctx, atp_req *r, const char *ident, const char *pw,
                  bool allow_takendown)
{
    pds_account a;
    pds_scope scope;
    char app_name[PDS_APP_PASS_NAME_MAX + 1];
    if (pds_db_account_get(ctx->db, ident, &a) < 0) {
        (void)pds_password_verify(pw, strlen(pw), dummy_hash());
        goto bad;
    }
    if (check_login(ctx, &a, pw, &scope, app_name) < 0) {
        goto bad;
    }
    if (a.status == PDS_ST_TAKENDOWN) {
        if (!allow_takendown) {
            atp_req_error_status(r, 401, "AccountTakedown", "Account has been taken down");
            return;
        }
        scope = PDS_SCOPE_TAKENDOWN;
    }
    atomic_fetch_add(&ctx->metrics.sessions_created, 1);
    send_session(ctx, r, &a, scope, app_name);
    return;
bad:
    atomic_fetch_add(&ctx->metrics.logins_failed, 1);
    atp_req_error_status(r, 401, "AuthenticationRequired", "Invalid identifier or password");
}

static void create_session(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    cJSON *b = NULL;
    char ident[PDS_DID_MAX + 1];
    const char *pw;
    if (pds_ratelimit_check(ctx->rl_session, r) < 0) {
        atomic_fetch_add(&ctx->metrics.rate_limited, 1);
        return;
    }
    if (pds_body_json(r, &b) < 0) {
        return;
    }
    pw = pds_json_str(b, "password");
    if (!get_str(b, "identifier", ident, sizeof ident, true) || !pw || !pw[0]) {
        atp_req_error_status(r, 400, "InvalidRequest", "identifier and password are required");
    } else {
        login(ctx, r, ident, pw, cJSON_IsTrue(cJSON_GetObjectItem(b, "allowTakendown")));
    }
    cJSON_Delete(b);
}

static void get_session(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    pds_account a;
    cJSON *o;
    if (pds_auth_access(ctx, r, &au) < 0) {
        return;
    }
    if (pds_db_account_get(ctx->db, au.did, &a) < 0) {
        atp_req_error_status(r, 400, "InvalidRequest", "Could not find user info for account");
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "handle", a.handle);
    cJSON_AddStringToObject(o, "did", a.did);
    if (a.email[0] && au.scope == PDS_SCOPE_ACCESS) {
        cJSON_AddStringToObject(o, "email", a.email);
        cJSON_AddBoolToObject(o, "emailConfirmed", false);
    }
    add_status(o, a.status);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

/* Scope the refreshed access token carries: from the app password it came from, if any.
 * ATP_ENOTFOUND if that app password has since been revoked. */
static int refreshed_scope(pds_ctx *ctx, const pds_refresh *t, const pds_account *a,
                           pds_scope *out)
{
    cJSON *list = NULL, *it;
    int rc = ATP_ENOTFOUND;
    if (a->status == PDS_ST_TAKENDOWN) {
        *out = PDS_SCOPE_TAKENDOWN;
        return 0;
    }
    if (!t->app_pass[0]) {
        *out = PDS_SCOPE_ACCESS;
        return 0;
    }
    if (pds_db_app_pass_list(ctx->db, a->did, &list) < 0) {
        return ATP_EIO;
    }
    cJSON_ArrayForEach(it, list)
    {
        const char *n = pds_json_str(it, "name");
        if (n && strcmp(n, t->app_pass) == 0) {
            bool priv = cJSON_IsTrue(cJSON_GetObjectItem(it, "privileged"));
            *out = priv ? PDS_SCOPE_APP_PASS_PRIV : PDS_SCOPE_APP_PASS;
            rc = 0;
        }
    }
    cJSON_Delete(list);
    return rc;
}

/* Sends the pair for a rotated refresh id (new row stored by the rotation already). */
static void send_refreshed(pds_ctx *ctx, atp_req *r, const pds_account *a, pds_scope scope,
                           const char *jti)
{
    char access[PDS_TOKEN_MAX], refresh[PDS_TOKEN_MAX];
    cJSON *o;
    if (pds_tokens_create(ctx, a->did, scope, jti, access, refresh, NULL, NULL) < 0) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "accessJwt", access);
    cJSON_AddStringToObject(o, "refreshJwt", refresh);
    cJSON_AddStringToObject(o, "handle", a->handle);
    cJSON_AddStringToObject(o, "did", a->did);
    add_status(o, a->status);
    atomic_fetch_add(&ctx->metrics.sessions_refreshed, 1);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

static void refresh_session(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    pds_refresh t;
    pds_account a;
    pds_scope scope;
    char next[PDS_JTI_MAX + 1];
    int64_t now = ctx->now();
    int rc;
    if (pds_auth_refresh(ctx, r, &au) < 0) {
        return;
    }
    if (pds_db_refresh_get(ctx->db, au.jti, &t) < 0 || t.expires_at <= now ||
        strcmp(t.did, au.did) != 0 || pds_db_account_get(ctx->db, au.did, &a) < 0 ||
        refreshed_scope(ctx, &t, &a, &scope) < 0) {
        atp_req_error_status(r, 400, "ExpiredToken", "Token has been revoked");
        return;
    }
    pds_random_token(next, 32);
    rc = pds_db_refresh_rotate(ctx->db, au.jti, next, now + ctx->cfg->refresh_ttl,
                               now + ctx->cfg->refresh_grace, next);
    if (rc < 0 && rc != ATP_ECONFLICT) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
        return;
    }
    /* ATP_ECONFLICT: a retry within the grace period gets the same successor id. */
    send_refreshed(ctx, r, &a, scope, next);
}

static void delete_session(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    if (pds_auth_refresh(ctx, r, &au) < 0) {
        return;
    }
    if (pds_db_refresh_delete(ctx->db, au.jti) < 0) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
        return;
    }
    atp_req_respond(r, 200, NULL, atp_slice_make(NULL, 0));
}

/* ---- app passwords ---- */

static void create_app_password_body(pds_ctx *ctx, atp_req *r, const pds_auth *au,
                                     const cJSON *b)
{
    char name[PDS_APP_PASS_NAME_MAX + 1], pw[PDS_APP_PASS_LEN + 1], hash[PDS_PW_HASH_LEN];
    char now[32];
    bool priv = cJSON_IsTrue(cJSON_GetObjectItem(b, "privileged"));
    cJSON *o;
    int rc;
    if (!get_str(b, "name", name, sizeof name, false) || !name[0]) {
        atp_req_error_status(r, 400, "InvalidRequest", "name is required (1-128 bytes)");
        return;
    }
    pds_app_password_generate(pw);
    pds_now_iso(ctx, now);
    rc = pds_password_hash(pw, PDS_APP_PASS_LEN, hash);
    rc = rc < 0 ? rc : pds_db_app_pass_add(ctx->db, au->did, name, hash, now, priv);
    if (rc == ATP_ECONFLICT) {
        atp_req_error_status(r, 400, "DuplicateAppPassword", "An app password with this name "
                                                              "already exists");
        return;
    }
    if (rc < 0) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "password", pw);
    cJSON_AddStringToObject(o, "createdAt", now);
    cJSON_AddBoolToObject(o, "privileged", priv);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

static void create_app_password(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    cJSON *b = NULL;
    if (pds_auth_access_full(ctx, r, &au) < 0 || pds_body_json(r, &b) < 0) {
        return;
    }
    create_app_password_body(ctx, r, &au, b);
    cJSON_Delete(b);
}

/* Answers {"<key>": list}; consumes `list`. */
static void respond_list(atp_req *r, const char *key, cJSON *list)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, key, list);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

static void list_app_passwords(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    cJSON *list = NULL;
    if (pds_auth_access_full(ctx, r, &au) < 0) {
        return;
    }
    if (pds_db_app_pass_list(ctx->db, au.did, &list) < 0) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
        return;
    }
    respond_list(r, "passwords", list);
}

static void revoke_app_password(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    cJSON *b = NULL;
    const char *name;
    if (pds_auth_access_full(ctx, r, &au) < 0 || pds_body_json(r, &b) < 0) {
        return;
    }
    name = pds_json_str(b, "name");
    if (!name || !name[0]) {
        atp_req_error_status(r, 400, "InvalidRequest", "name is required");
    } else if (pds_db_app_pass_delete(ctx->db, au.did, name) < 0) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
    } else {
        atp_req_respond(r, 200, NULL, atp_slice_make(NULL, 0));
    }
    cJSON_Delete(b);
}

/* ---- invite codes ---- */

/* "<hostname with '-' for '.'>-xxxxx-xxxxx" as the reference's codes. */
static void invite_code_new(pds_ctx *ctx, char *out, size_t cap)
{
    char rnd[PDS_APP_PASS_LEN + 1];
    pds_app_password_generate(rnd);
    snprintf(out, cap, "%s-%.5s-%.5s", ctx->cfg->hostname, rnd, rnd + 10);
    for (char *p = out; *p && p < out + strlen(ctx->cfg->hostname); p++) {
        if (*p == '.') {
            *p = '-';
        }
    }
}

/* Creates `n` codes for `account` into arr; false on a database error. */
static bool make_codes(pds_ctx *ctx, const char *account, int uses, int n, cJSON *arr)
{
    char now[32], code[400];
    pds_now_iso(ctx, now);
    for (int i = 0; i < n; i++) {
        invite_code_new(ctx, code, sizeof code);
        if (pds_db_invite_create(ctx->db, code, uses, account, "admin", now) < 0) {
            return false;
        }
        cJSON_AddItemToArray(arr, cJSON_CreateString(code));
    }
    return true;
}

/* Integer member in [lo, hi], else false. */
static bool get_int(const cJSON *b, const char *name, int lo, int hi, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(b, name);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble ||
        v->valueint < lo || v->valueint > hi) {
        return false;
    }
    *out = v->valueint;
    return true;
}

static void create_invite_code(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    cJSON *b = NULL, *codes = NULL, *o;
    const char *acct;
    int uses;
    if (pds_auth_admin(ctx, r, &au) < 0 || pds_body_json(r, &b) < 0) {
        return;
    }
    acct = pds_json_str(b, "forAccount");
    codes = cJSON_CreateArray();
    if (!get_int(b, "useCount", 1, 1000000, &uses)) {
        atp_req_error_status(r, 400, "InvalidRequest", "useCount must be a positive integer");
    } else if (!make_codes(ctx, acct ? acct : "admin", uses, 1, codes)) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
    } else {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "code", cJSON_GetArrayItem(codes, 0)->valuestring);
        pds_respond_json(r, o);
        cJSON_Delete(o);
    }
    cJSON_Delete(codes);
    cJSON_Delete(b);
}

/* {codes: [{account, codes: [...]}]} for every account asked (or "admin"). */
static cJSON *invite_codes_for(pds_ctx *ctx, const cJSON *accounts, int n, int uses)
{
    cJSON *out = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(out, "codes"), *acct;
    cJSON *admin = cJSON_CreateString("admin"), *one = cJSON_CreateArray();
    cJSON_AddItemToArray(one, admin);
    if (!cJSON_IsArray(accounts) || cJSON_GetArraySize(accounts) == 0) {
        accounts = one;
    }
    cJSON_ArrayForEach(acct, accounts)
    {
        cJSON *e = cJSON_CreateObject(), *arr;
        const char *name = cJSON_IsString(acct) ? acct->valuestring : "admin";
        cJSON_AddStringToObject(e, "account", name);
        arr = cJSON_AddArrayToObject(e, "codes");
        cJSON_AddItemToArray(list, e);
        if (!make_codes(ctx, name, uses, n, arr)) {
            cJSON_Delete(out);
            out = NULL;
            break;
        }
    }
    cJSON_Delete(one);
    return out;
}

static void create_invite_codes(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    cJSON *b = NULL, *o;
    int n, uses;
    if (pds_auth_admin(ctx, r, &au) < 0 || pds_body_json(r, &b) < 0) {
        return;
    }
    if (!get_int(b, "codeCount", 1, 100, &n) || !get_int(b, "useCount", 1, 1000000, &uses)) {
        atp_req_error_status(r, 400, "InvalidRequest", "codeCount (1-100) and useCount required");
    } else if (!(o = invite_codes_for(ctx, cJSON_GetObjectItem(b, "forAccounts"), n, uses))) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
    } else {
        pds_respond_json(r, o);
        cJSON_Delete(o);
    }
    cJSON_Delete(b);
}

static void get_account_invite_codes(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    cJSON *list = NULL;
    if (pds_auth_access(ctx, r, &au) < 0) {
        return;
    }
    if (pds_db_invite_list(ctx->db, au.did, &list) < 0) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
        return;
    }
    respond_list(r, "codes", list);
}

/* ---- account status ---- */

/* Adds the repo head fields of checkAccountStatus. */
static void add_repo_state(pds_ctx *ctx, const char *did, cJSON *o)
{
    const char *commit = "", *rev = "";
#ifdef PDS_HAVE_ACTOR_STORE
    pds_commit_info ci;
    char cid[128];
    if (ctx->actors && pds_actor_store_root(ctx->actors, atp_slice_str(did), &ci, NULL) == 0) {
        if (atp_cid_format_to(&ci.cid, cid, sizeof cid) > 0) {
            commit = cid;
        }
        rev = ci.rev;
    }
    cJSON_AddStringToObject(o, "repoCommit", commit);
    cJSON_AddStringToObject(o, "repoRev", rev);
#else
    (void)ctx, (void)did;
    cJSON_AddStringToObject(o, "repoCommit", commit);
    cJSON_AddStringToObject(o, "repoRev", rev);
#endif
}

/* validDid: the DID document names this PDS as its #atproto_pds (what a migration must reach
 * before activation). */
static bool did_points_here(pds_ctx *ctx, const char *did)
{
    atp_arena *a = atp_arena_create(0);
    atp_didoc doc;
    bool ok = false;
    if (atp_resolve_did(ctx->resolver, atp_slice_str(did), a, &doc, NULL) == 0) {
        size_t n = strlen(ctx->public_url);
        atp_slice p = doc.pds;
        if (p.len && p.ptr[p.len - 1] == '/') {
            p.len--;
        }
        ok = p.len == n && memcmp(p.ptr, ctx->public_url, n) == 0;
    }
    atp_arena_destroy(a);
    return ok;
}

typedef struct pref_count {
    const char *did;
    int64_t n;
} pref_count;

static int count_prefs_fn(void *ctx, sqlite3 *c, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    pref_count *pc = ctx;
    if (sqlite3_prepare_v2(c, "SELECT count(*) FROM account_pref WHERE did = ?1", -1, &st, NULL)
        != SQLITE_OK) {
        return atp_err_set(err, ATP_EIO, 0, "sqlite prepare");
    }
    sqlite3_bind_text(st, 1, pc->did, -1, SQLITE_STATIC);
    pc->n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return 0;
}

/* Repo blocks, indexed records, blob counts (actor store) and stored preferences. */
static void add_counts(pds_ctx *ctx, const char *did, cJSON *o)
{
    pds_repo_counts c;
    pref_count prefs = {did, 0};
    memset(&c, 0, sizeof c);
    if (ctx->actors && pds_actor_store_counts(ctx->actors, atp_slice_str(did), &c, NULL) < 0) {
        memset(&c, 0, sizeof c);
    }
    if (pds_db_read(ctx->db, count_prefs_fn, &prefs, NULL) < 0) {
        prefs.n = 0;
    }
    cJSON_AddNumberToObject(o, "repoBlocks", (double)c.blocks);
    cJSON_AddNumberToObject(o, "indexedRecords", (double)c.records);
    cJSON_AddNumberToObject(o, "privateStateValues", (double)prefs.n);
    cJSON_AddNumberToObject(o, "expectedBlobs", (double)c.expected_blobs);
    cJSON_AddNumberToObject(o, "importedBlobs", (double)c.imported_blobs);
}

static void check_account_status(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    pds_account a;
    cJSON *o;
    if (pds_auth_access(ctx, r, &au) < 0) {
        return;
    }
    if (pds_db_account_get(ctx->db, au.did, &a) < 0) {
        atp_req_error_status(r, 400, "InvalidRequest", "Account not found");
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "activated", a.status == PDS_ST_ACTIVE);
    cJSON_AddBoolToObject(o, "validDid", did_points_here(ctx, a.did));
    add_repo_state(ctx, a.did, o);
    add_counts(ctx, a.did, o);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

/* Status changes go through lifecycle.c: the change and its #account event in one
 * transaction (activation adds #identity and #sync as the reference does). */
static void status_done(atp_req *r, int rc, const atp_err *err)
{
    if (rc == ATP_ENOTFOUND) {
        atp_req_error_status(r, 400, "AccountNotFound", "user not found");
    } else if (rc < 0) {
        atp_logf(ATP_LOG_ERROR, "account", "status change: %s", err->msg);
        atp_req_error(r, ATP_EINTERNAL, NULL);
    } else {
        atp_req_respond(r, 200, NULL, atp_slice_make(NULL, 0));
    }
}

static void activate_account(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    atp_err err;
    atp_err_clear(&err);
    if (pds_auth_access_full(ctx, r, &au) < 0) {
        return;
    }
    status_done(r, pds_account_activate(ctx, au.did, &err), &err);
}

/* deleteAfter (optional): a datetime, kept with the deactivation as the reference does. */
static void deactivate_account(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    cJSON *b = NULL;
    const char *after = NULL;
    atp_err err;
    atp_err_clear(&err);
    if (pds_auth_access_full(ctx, r, &au) < 0) {
        return;
    }
    if (atp_req_body(r).len > 0 && pds_body_json(r, &b) < 0) {
        return;
    }
    after = pds_json_str(b, "deleteAfter");
    if ((after || cJSON_GetObjectItem(b, "deleteAfter")) &&
        (!after || atp_syntax_check_datetime(atp_slice_str(after), NULL) < 0)) {
        atp_req_error_status(r, 400, "InvalidRequest", "deleteAfter must be a datetime");
    } else {
        status_done(r, pds_account_set_status(ctx, au.did, PDS_ST_DEACTIVATED, after, &err), &err);
    }
    cJSON_Delete(b);
}

void pds_routes_server(atp_server *s, pds_ctx *ctx)
{
    static const struct {
        const char *method, *nsid;
        atp_handler_fn fn;
    } routes[] = {
        {"POST", "createAccount", create_account},
        {"POST", "createSession", create_session},
        {"GET", "getSession", get_session},
        {"POST", "refreshSession", refresh_session},
        {"POST", "deleteSession", delete_session},
        {"POST", "createAppPassword", create_app_password},
        {"GET", "listAppPasswords", list_app_passwords},
        {"POST", "revokeAppPassword", revoke_app_password},
        {"POST", "createInviteCode", create_invite_code},
        {"POST", "createInviteCodes", create_invite_codes},
        {"GET", "getAccountInviteCodes", get_account_invite_codes},
        {"GET", "checkAccountStatus", check_account_status},
        {"POST", "activateAccount", activate_account},
        {"POST", "deactivateAccount", deactivate_account},
    };
    char path[128];
    atp_server_route(s, "GET", "/xrpc/com.atproto.server.describeServer", describe_server, ctx,
                     0);
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        snprintf(path, sizeof path, "/xrpc/com.atproto.server.%s", routes[i].nsid);
        /* SQLite and scrypt: off the loop thread. */
        atp_server_route(s, routes[i].method, path, routes[i].fn, ctx, ATP_ROUTE_BLOCKING);
    }
}
