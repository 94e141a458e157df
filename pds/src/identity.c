/* pds/src/identity.c: com.atproto.identity.* (resolveHandle, updateHandle, the PLC operation
 * flow, getRecommendedDidCredentials), com.atproto.server.getServiceAuth and reserveSigningKey,
 * and the /.well-known documents. The PLC logic itself is in plc_ops.c. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/plc.h"
#include "atp/syntax.h"

#include "account.h"
#include "db.h"
#include "mailer.h"
#include "pds.h"
#include "plc_ops.h"
#include "sequencer.h"
#include "service_auth.h"

#define SERVICE_JWT_MAX 4096
#define SERVICE_AUTH_MAX_TTL 3600 /* the reference: at most an hour ahead */
#define SERVICE_AUTH_NO_LXM_TTL 60 /* a token for any method: at most a minute */

/* Local accounts first; any other handle through the resolver (DNS/HTTPS, verified). */
static void resolve_handle(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    atp_slice h;
    pds_account a;
    char handle[PDS_HANDLE_MAX + 1];
    cJSON *o;
    if (!atp_req_query(r, "handle", &h) || h.len > PDS_HANDLE_MAX ||
        !atp_syntax_is_handle(h)) {
        atp_req_error_status(r, 400, "InvalidRequest", "handle must be a valid handle");
        return;
    }
    for (size_t i = 0; i < h.len; i++) {
        handle[i] = (char)tolower(h.ptr[i]);
    }
    handle[h.len] = '\0';
    o = cJSON_CreateObject();
    if (pds_db_account_get(ctx->db, handle, &a) == 0) {
        cJSON_AddStringToObject(o, "did", a.did);
    } else {
        atp_buf did;
        atp_buf_init(&did, PDS_DID_MAX);
        if (ctx->resolver &&
            atp_resolve_handle(ctx->resolver, atp_slice_str(handle), &did, NULL) == 0) {
            atp_buf_append_byte(&did, 0);
            cJSON_AddStringToObject(o, "did", (const char *)did.ptr);
        }
        atp_buf_release(&did);
    }
    if (!cJSON_GetObjectItem(o, "did")) {
        atp_req_error_status(r, 400, "HandleNotFound", "Unable to resolve handle");
    } else {
        pds_respond_json(r, o);
    }
    cJSON_Delete(o);
}

/* Host header without port, lowercased, into out. False if missing or too long. */
static bool host_of(atp_req *r, char *out, size_t cap)
{
    atp_slice h;
    size_t n = 0;
    if (!atp_req_header(r, "host", &h)) {
        return false;
    }
    while (n < h.len && h.ptr[n] != ':') {
        n++;
    }
    if (n == 0 || n >= cap) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = (char)tolower(h.ptr[i]);
    }
    out[n] = '\0';
    return true;
}

static void well_known_atproto_did(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    char host[PDS_HANDLE_MAX + 1];
    pds_account a;
    if (!host_of(r, host, sizeof host) || pds_db_account_get(ctx->db, host, &a) < 0 ||
        a.status != PDS_ST_ACTIVE) {
        atp_req_respond(r, 404, "text/plain; charset=utf-8", atp_slice_str("User not found"));
        return;
    }
    atp_req_respond(r, 200, "text/plain; charset=utf-8", atp_slice_str(a.did));
}

static void well_known_did_json(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    cJSON *o = cJSON_CreateObject(), *ctxs = cJSON_AddArrayToObject(o, "@context");
    cJSON *svcs, *svc;
    cJSON_AddItemToArray(ctxs, cJSON_CreateString("https://www.w3.org/ns/did/v1"));
    cJSON_AddStringToObject(o, "id", ctx->service_did);
    svcs = cJSON_AddArrayToObject(o, "service");
    svc = cJSON_CreateObject();
    cJSON_AddStringToObject(svc, "id", "#atproto_pds");
    cJSON_AddStringToObject(svc, "type", "AtprotoPersonalDataServer");
    cJSON_AddStringToObject(svc, "serviceEndpoint", ctx->public_url);
    cJSON_AddItemToArray(svcs, svc);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

/* ---- shared helpers ---- */

/* The account's repo key as did:key; false if it has none. */
static bool account_didkey(pds_ctx *ctx, const char *did, char out[ATP_DIDKEY_MAX_LEN + 1])
{
    atp_key *k = NULL;
    if (pds_account_signing_key(ctx, did, &k) < 0) {
        return false;
    }
    pds_didkey_format(k, out);
    atp_key_destroy(k);
    return true;
}

static void respond_empty(atp_req *r)
{
    atp_req_respond(r, 200, NULL, atp_slice_make(NULL, 0));
}

/* Sends the error of a failed PLC directory call. */
static void plc_failed(atp_req *r, int rc, const atp_err *err)
{
    if (rc == ATP_EINVAL) {
        atp_req_error_status(r, 400, "InvalidRequest", err->msg);
    } else if (rc == ATP_ENOTFOUND) {
        atp_req_error_status(r, 400, "InvalidRequest", "DID not found on the PLC directory");
    } else {
        atp_logf(ATP_LOG_WARN, "identity", "plc: %s", err->msg);
        atp_req_error_status(r, 502, "UpstreamFailure", "PLC directory unavailable");
    }
}

/* ---- updateHandle ---- */

/* Validates a new handle for `did` as the reference's normalizeAndValidateHandle; *same tells
 * that the account already has it. The error is sent on failure. */
static int check_new_handle(pds_ctx *ctx, atp_req *r, const char *did, const char *handle,
                            bool *same)
{
    atp_slice h = atp_slice_str(handle);
    pds_account a;
    atp_err err;
    atp_err_clear(&err);
    if (atp_syntax_check_handle(h, &err) < 0 || !atp_syntax_handle_tld_allowed(h)) {
        atp_req_error_status(r, 400, "InvalidHandle", "Invalid handle or disallowed TLD");
        return ATP_EINVAL;
    }
    if (pds_handle_check(ctx->cfg, handle, &err) < 0) {
        if (!strstr(err.msg, "domain")) {
            atp_req_error_status(r, 400, "InvalidHandle", err.msg);
            return ATP_EINVAL;
        }
        /* Not under a service domain: it must already resolve to the account. */
        atp_buf got;
        bool ok;
        atp_buf_init(&got, PDS_DID_MAX);
        ok = ctx->resolver && atp_resolve_handle(ctx->resolver, h, &got, NULL) == 0 &&
             atp_slice_eq_str(atp_buf_slice(&got), did);
        atp_buf_release(&got);
        if (!ok) {
            atp_req_error_status(r, 400, "InvalidRequest",
                                 "External handle did not resolve to DID");
            return ATP_EINVAL;
        }
    }
    *same = false;
    if (pds_db_account_get(ctx->db, handle, &a) == 0) {
        if (strcmp(a.did, did) != 0) {
            char msg[PDS_HANDLE_MAX + 32];
            snprintf(msg, sizeof msg, "Handle already taken: %s", handle);
            atp_req_error_status(r, 400, "HandleNotAvailable", msg);
            return ATP_ECONFLICT;
        }
        *same = true;
    }
    return 0;
}

/* did:web: the document must already claim the handle (we cannot change it). */
static int web_has_handle(pds_ctx *ctx, const char *did, const char *handle)
{
    atp_arena *a = atp_arena_create(0);
    atp_identity id;
    int rc;
    atp_resolver_purge(ctx->resolver, atp_slice_str(did));
    rc = atp_resolve_identity(ctx->resolver, atp_slice_str(did), a, &id, NULL);
    if (rc == 0 && !atp_slice_eq_str(id.handle, handle)) {
        rc = ATP_EINVAL;
    }
    atp_arena_destroy(a);
    return rc < 0 ? ATP_EINVAL : 0;
}

static void apply_handle(pds_ctx *ctx, atp_req *r, const char *did, const char *handle)
{
    atp_err err;
    int rc;
    atp_err_clear(&err);
    if (strncmp(did, "did:plc:", 8) == 0) {
        rc = pds_plc_update_handle(ctx, did, handle, &err);
        if (rc < 0) {
            plc_failed(r, rc, &err);
            return;
        }
    } else if (web_has_handle(ctx, did, handle) < 0) {
        atp_req_error_status(r, 400, "InvalidRequest", "DID is not properly configured for handle");
        return;
    }
    rc = pds_seq_set_handle(ctx->seq, did, handle, &err);
    if (rc == ATP_ECONFLICT) {
        atp_req_error_status(r, 400, "HandleNotAvailable", "Handle already taken");
        return;
    }
    if (rc < 0) {
        atp_req_error(r, ATP_EINTERNAL, "could not store the handle");
        return;
    }
    atp_resolver_purge(ctx->resolver, atp_slice_str(did));
    respond_empty(r);
}

static void update_handle(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    cJSON *b = NULL;
    char handle[PDS_HANDLE_MAX + 1];
    const char *h;
    bool same = false;
    atp_err err;
    atp_err_clear(&err);
    if (pds_auth_access_full(ctx, r, &au) < 0 || pds_body_json(r, &b) < 0) {
        return;
    }
    h = pds_json_str(b, "handle");
    if (!h || atp_syntax_normalize_handle(atp_slice_str(h), handle, sizeof handle, NULL) < 0) {
        cJSON_Delete(b);
        atp_req_error_status(r, 400, "InvalidHandle", "Invalid handle");
        return;
    }
    cJSON_Delete(b);
    if (check_new_handle(ctx, r, au.did, handle, &same) < 0) {
        return;
    }
    if (same) {
        /* Already ours: the reference just announces it again. */
        if (pds_seq_identity(ctx->seq, au.did, handle, &err) < 0) {
            atp_logf(ATP_LOG_ERROR, "identity", "sequencing %s: %s", au.did, err.msg);
        }
        respond_empty(r);
        return;
    }
    apply_handle(ctx, r, au.did, handle);
}

/* ---- getRecommendedDidCredentials ---- */

static void recommended_credentials(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    pds_account acc;
    char sk[ATP_DIDKEY_MAX_LEN + 1], rk[ATP_DIDKEY_MAX_LEN + 1], aka[PDS_HANDLE_MAX + 8];
    cJSON *o, *vm, *svc;
    if (pds_auth_access(ctx, r, &au) < 0) {
        return;
    }
    if (!account_didkey(ctx, au.did, sk)) {
        atp_req_error_status(r, 400, "InvalidRequest", "Account has no signing key");
        return;
    }
    pds_didkey_format(ctx->plc_rotation_key, rk);
    o = cJSON_CreateObject();
    if (pds_db_account_get(ctx->db, au.did, &acc) == 0 && acc.handle[0]) {
        snprintf(aka, sizeof aka, "at://%s", acc.handle);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "alsoKnownAs"), cJSON_CreateString(aka));
    }
    vm = cJSON_AddObjectToObject(o, "verificationMethods");
    cJSON_AddStringToObject(vm, "atproto", sk);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "rotationKeys"), cJSON_CreateString(rk));
    svc = cJSON_AddObjectToObject(cJSON_AddObjectToObject(o, "services"), "atproto_pds");
    cJSON_AddStringToObject(svc, "type", "AtprotoPersonalDataServer");
    cJSON_AddStringToObject(svc, "endpoint", ctx->public_url);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

/* ---- requestPlcOperationSignature / signPlcOperation / submitPlcOperation ---- */

static void request_plc_signature(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    pds_account acc;
    char token[PDS_EMAIL_TOKEN_LEN + 1], body[256];
    atp_err err;
    atp_err_clear(&err);
    if (pds_auth_access_full(ctx, r, &au) < 0) {
        return;
    }
    if (pds_db_account_get(ctx->db, au.did, &acc) < 0) {
        atp_req_error_status(r, 400, "InvalidRequest", "account not found");
        return;
    }
    if (!acc.email[0]) {
        atp_req_error_status(r, 400, "InvalidRequest", "account does not have an email address");
        return;
    }
    if (pds_email_token_create(ctx, au.did, PDS_PLC_PURPOSE, token, &err) < 0) {
        atp_req_error(r, ATP_EINTERNAL, "could not create a token");
        return;
    }
    snprintf(body, sizeof body,
             "We received a request to update your account's identity (PLC operation). "
             "Your token: %s (valid 15 minutes).",
             token);
    if (ctx->mailer->send(ctx->mailer->ud, acc.email, "PLC Update Operation Requested", body) <
        0) {
        atp_req_error(r, ATP_EINTERNAL, "could not send the email");
        return;
    }
    respond_empty(r);
}

/* Sends {"operation": <op JSON>}. */
static void respond_op(atp_req *r, const atp_plc_op *op)
{
    atp_buf b;
    atp_buf_init(&b, 256 * 1024);
    atp_buf_append_str(&b, "{\"operation\":");
    atp_plc_op_encode_json(&b, op, 0);
    atp_buf_append_byte(&b, '}');
    if (b.err) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
    } else {
        atp_req_respond(r, 200, "application/json; charset=utf-8", atp_buf_slice(&b));
    }
    atp_buf_release(&b);
}

/* The new op from the latest one and the request's fields, signed with our rotation key. */
static void sign_and_send(pds_ctx *ctx, atp_req *r, const char *did)
{
    atp_arena *a = atp_arena_create(0);
    atp_plc_op last, op;
    char prev[ATP_CID_STR_MAX];
    atp_err err;
    int rc;
    atp_err_clear(&err);
    rc = pds_plc_last_op(ctx, did, a, &last, prev, &err);
    if (rc < 0) {
        plc_failed(r, rc, &err);
    } else if (last.type == ATP_PLC_TOMBSTONE) {
        atp_req_error_status(r, 400, "InvalidRequest", "Did is tombstoned");
    } else if (pds_plc_update_build(a, &last, atp_req_body(r), atp_slice_str(prev), NULL, &op,
                                    &err) < 0) {
        atp_req_error_status(r, 400, "InvalidRequest", err.msg);
    } else if (atp_plc_op_sign(a, &op, ctx->plc_rotation_key, NULL, &err) < 0) {
        atp_req_error_status(r, 400, "InvalidRequest", err.msg);
    } else {
        respond_op(r, &op);
    }
    atp_arena_destroy(a);
}

static void sign_plc_operation(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    cJSON *b = NULL;
    const char *token;
    atp_err err;
    int rc;
    atp_err_clear(&err);
    if (pds_auth_access_full(ctx, r, &au) < 0 || pds_body_json(r, &b) < 0) {
        return;
    }
    token = pds_json_str(b, "token");
    if (!token || !token[0]) {
        atp_req_error_status(r, 400, "InvalidRequest",
                             "email confirmation token required to sign PLC operations");
        cJSON_Delete(b);
        return;
    }
    rc = pds_email_token_consume(ctx, au.did, PDS_PLC_PURPOSE, token, &err);
    cJSON_Delete(b);
    if (rc == ATP_ETOKEN || rc == ATP_EEXPIRED) {
        atp_req_error_status(r, 400, rc == ATP_ETOKEN ? "InvalidToken" : "ExpiredToken",
                             err.msg);
        return;
    }
    if (rc < 0) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
        return;
    }
    sign_and_send(ctx, r, au.did);
}

/* What a submitted op must keep for `did`; strings in the caller's buffers. */
static bool expect_for(pds_ctx *ctx, const char *did, pds_plc_expect *w,
                       char rk[ATP_DIDKEY_MAX_LEN + 1], char sk[ATP_DIDKEY_MAX_LEN + 1],
                       pds_account *acc)
{
    if (!account_didkey(ctx, did, sk) || pds_db_account_get(ctx->db, did, acc) < 0) {
        return false;
    }
    pds_didkey_format(ctx->plc_rotation_key, rk);
    w->rotation_key = atp_slice_str(rk);
    w->signing_key = atp_slice_str(sk);
    w->endpoint = atp_slice_str(ctx->public_url);
    w->handle = atp_slice_str(acc->handle);
    return true;
}

/* Checks the op, sends it to the directory and announces the change. */
static void submit_op(pds_ctx *ctx, atp_req *r, const char *did, atp_slice json)
{
    atp_arena *a = atp_arena_create(0);
    char rk[ATP_DIDKEY_MAX_LEN + 1], sk[ATP_DIDKEY_MAX_LEN + 1];
    pds_account acc;
    pds_plc_expect want;
    atp_plc_op op;
    atp_err err;
    int rc;
    atp_err_clear(&err);
    if (!expect_for(ctx, did, &want, rk, sk, &acc)) {
        atp_req_error_status(r, 400, "InvalidRequest", "Account has no signing key");
    } else if (pds_plc_submit_parse(a, json, &want, NULL, &op, &err) < 0) {
        atp_req_error_status(r, 400, "InvalidRequest", err.msg);
    } else if ((rc = pds_plc_post_op(ctx, did, &op, NULL, &err)) < 0) {
        plc_failed(r, rc, &err);
    } else {
        if (pds_seq_identity(ctx->seq, did, NULL, &err) < 0) {
            atp_logf(ATP_LOG_ERROR, "identity", "sequencing %s: %s", did, err.msg);
        }
        atp_resolver_purge(ctx->resolver, atp_slice_str(did));
        respond_empty(r);
    }
    atp_arena_destroy(a);
}

static void submit_plc_operation(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    cJSON *b = NULL;
    const cJSON *op;
    char *json;
    if (pds_auth_access_full(ctx, r, &au) < 0 || pds_body_json(r, &b) < 0) {
        return;
    }
    op = cJSON_GetObjectItemCaseSensitive(b, "operation");
    json = cJSON_IsObject(op) ? cJSON_PrintUnformatted(op) : NULL;
    cJSON_Delete(b);
    if (!json) {
        atp_req_error_status(r, 400, "InvalidRequest", "Invalid operation");
        return;
    }
    submit_op(ctx, r, au.did, atp_slice_str(json));
    cJSON_free(json);
}

/* ---- getServiceAuth ---- */

/* Methods no service token may be minted for (the reference's PROTECTED_METHODS). */
static bool lxm_protected(atp_slice lxm)
{
    static const char *const names[] = {
        "com.atproto.admin.sendEmail",
        "com.atproto.identity.requestPlcOperationSignature",
        "com.atproto.identity.signPlcOperation",
        "com.atproto.identity.updateHandle",
        "com.atproto.server.activateAccount",
        "com.atproto.server.confirmEmail",
        "com.atproto.server.createAppPassword",
        "com.atproto.server.deactivateAccount",
        "com.atproto.server.getAccountInviteCodes",
        "com.atproto.server.getSession",
        "com.atproto.server.listAppPasswords",
        "com.atproto.server.requestAccountDelete",
        "com.atproto.server.requestEmailConfirmation",
        "com.atproto.server.requestEmailUpdate",
        "com.atproto.server.revokeAppPassword",
        "com.atproto.server.updateEmail",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (atp_slice_eq_str(lxm, names[i])) {
            return true;
        }
    }
    return false;
}

/* Methods that need a privileged app password (the reference's PRIVILEGED_METHODS: the
 * chat.bsky methods and createAccount). */
static bool lxm_privileged(atp_slice lxm)
{
    return atp_slice_has_prefix(lxm, atp_slice_str("chat.bsky.")) ||
           atp_slice_eq_str(lxm, "com.atproto.server.createAccount");
}

/* Parses ?exp= (decimal Unix seconds). */
static bool parse_exp(atp_slice s, int64_t *out)
{
    int64_t v = 0;
    if (s.len == 0 || s.len > 15) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9') {
            return false;
        }
        v = v * 10 + (s.ptr[i] - '0');
    }
    *out = v;
    return true;
}

typedef struct svc_params {
    char aud[PDS_DID_MAX + 1];
    char lxm[320]; /* NSIDs are at most 317 characters */
    bool has_lxm, has_exp;
    int64_t exp;
} svc_params;

/* Reads aud, lxm?, exp? from the query; the error is sent on failure. */
static int read_svc_params(atp_req *r, svc_params *p)
{
    atp_slice aud, lxm, exp;
    memset(p, 0, sizeof *p);
    if (!atp_req_query(r, "aud", &aud) || aud.len > PDS_DID_MAX || !atp_syntax_is_did(aud)) {
        atp_req_error_status(r, 400, "InvalidRequest", "aud must be a DID");
        return ATP_EINVAL;
    }
    memcpy(p->aud, aud.ptr, aud.len);
    if (atp_req_query(r, "lxm", &lxm)) {
        if (lxm.len >= sizeof p->lxm || !atp_syntax_is_nsid(lxm)) {
            atp_req_error_status(r, 400, "InvalidRequest", "lxm must be an NSID");
            return ATP_EINVAL;
        }
        memcpy(p->lxm, lxm.ptr, lxm.len);
        p->has_lxm = true;
    }
    if (atp_req_query(r, "exp", &exp)) {
        if (!parse_exp(exp, &p->exp)) {
            atp_req_error_status(r, 400, "InvalidRequest", "exp must be an integer");
            return ATP_EINVAL;
        }
        p->has_exp = true;
    }
    return 0;
}

/* The reference's rules, in its order; the error is sent on failure. */
static int check_svc_params(pds_ctx *ctx, atp_req *r, const pds_auth *au, const svc_params *p)
{
    char msg[400];
    atp_slice lxm = atp_slice_str(p->lxm);
    int64_t diff = p->exp - ctx->now();
    if (p->has_lxm && au->scope == PDS_SCOPE_APP_PASS && lxm_privileged(lxm)) {
        snprintf(msg, sizeof msg,
                 "insufficient access to request a service auth token for the following "
                 "method: %s", p->lxm);
        atp_req_error_status(r, 400, "InvalidRequest", msg);
        return ATP_EFORBIDDEN;
    }
    if (p->has_exp && (diff < 0 || diff > SERVICE_AUTH_MAX_TTL ||
                       (!p->has_lxm && diff > SERVICE_AUTH_NO_LXM_TTL))) {
        atp_req_error_status(r, 400, "BadExpiration",
                             diff < 0 ? "expiration is in past"
                             : p->has_lxm || diff > SERVICE_AUTH_MAX_TTL
                                 ? "cannot request a token with an expiration more than an "
                                   "hour in the future"
                                 : "cannot request a method-less token with an expiration "
                                   "more than a minute in the future");
        return ATP_EINVAL;
    }
    if (p->has_lxm && lxm_protected(lxm)) {
        snprintf(msg, sizeof msg,
                 "cannot request a service auth token for the following protected method: %s",
                 p->lxm);
        atp_req_error_status(r, 400, "InvalidRequest", msg);
        return ATP_EFORBIDDEN;
    }
    return 0;
}

static void get_service_auth(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    svc_params p;
    char token[SERVICE_JWT_MAX];
    cJSON *o;
    atp_err err;
    atp_err_clear(&err);
    if (pds_auth_access(ctx, r, &au) < 0 || read_svc_params(r, &p) < 0 ||
        check_svc_params(ctx, r, &au, &p) < 0) {
        return;
    }
    if (!p.has_exp) {
        p.exp = ctx->now() + SERVICE_AUTH_NO_LXM_TTL; /* the reference's default lifetime */
    }
    if (pds_service_jwt(ctx, au.did, p.aud, p.has_lxm ? p.lxm : NULL, p.exp, token, sizeof token,
                        &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "identity", "service jwt for %s: %s", au.did, err.msg);
        atp_req_error(r, ATP_EINTERNAL, "could not sign the token");
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "token", token);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

/* ---- reserveSigningKey ---- */

static void reserve_signing_key(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    cJSON *b = NULL, *o;
    const cJSON *did;
    char key[ATP_DIDKEY_MAX_LEN + 1];
    atp_err err;
    int rc;
    atp_err_clear(&err);
    /* The lexicon's input is an object whose members are optional: a body is still required
     * (the reference answers an empty one with 400). */
    if (atp_req_body(r).len == 0) {
        atp_req_error_status(r, 400, "InvalidRequest",
                             "A request body is expected but none was provided");
        return;
    }
    if (pds_body_json(r, &b) < 0) {
        return;
    }
    did = cJSON_GetObjectItemCaseSensitive(b, "did");
    if (did && (!cJSON_IsString(did) || strlen(did->valuestring) > PDS_DID_MAX ||
                !atp_syntax_is_did(atp_slice_str(did->valuestring)))) {
        cJSON_Delete(b);
        atp_req_error_status(r, 400, "InvalidRequest", "did must be a DID");
        return;
    }
    rc = pds_signing_key_reserve(ctx, did ? did->valuestring : NULL, key, &err);
    cJSON_Delete(b);
    if (rc < 0) {
        atp_req_error(r, ATP_EINTERNAL, "could not reserve a key");
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "signingKey", key);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

void pds_routes_identity(atp_server *s, pds_ctx *ctx)
{
    static const struct {
        const char *method, *nsid;
        atp_handler_fn fn;
    } routes[] = {
        {"GET", "com.atproto.identity.resolveHandle", resolve_handle},
        {"POST", "com.atproto.identity.updateHandle", update_handle},
        {"GET", "com.atproto.identity.getRecommendedDidCredentials", recommended_credentials},
        {"POST", "com.atproto.identity.requestPlcOperationSignature", request_plc_signature},
        {"POST", "com.atproto.identity.signPlcOperation", sign_plc_operation},
        {"POST", "com.atproto.identity.submitPlcOperation", submit_plc_operation},
        {"GET", "com.atproto.server.getServiceAuth", get_service_auth},
        {"POST", "com.atproto.server.reserveSigningKey", reserve_signing_key},
    };
    char path[128];
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        snprintf(path, sizeof path, "/xrpc/%s", routes[i].nsid);
        /* SQLite, the PLC directory and key generation: off the loop thread. */
        atp_server_route(s, routes[i].method, path, routes[i].fn, ctx, ATP_ROUTE_BLOCKING);
    }
    atp_server_route(s, "GET", "/.well-known/atproto-did", well_known_atproto_did, ctx,
                     ATP_ROUTE_BLOCKING);
    atp_server_route(s, "GET", "/.well-known/did.json", well_known_did_json, ctx, 0);
}
