/* pds/src/auth.c: session tokens (HS256 JWTs) and the per-request auth checks. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "atp/jwt.h"

#include "db.h"
#include "password.h"
#include "pds.h"

static const char *const scope_names[] = {"com.atproto.access", "com.atproto.appPass",
                                          "com.atproto.appPassPrivileged",
                                          "com.atproto.takendown", "com.atproto.refresh"};

const char *pds_scope_name(pds_scope s)
{
    return (unsigned)s < 5 ? scope_names[s] : scope_names[0];
}

static int scope_parse(const char *s, pds_scope *out)
{
    for (int i = 0; i < 5; i++) {
        if (s && strcmp(s, scope_names[i]) == 0) {
            *out = (pds_scope)i;
            return 0;
        }
    }
    return ATP_ETOKEN;
}

static int sign(pds_ctx *ctx, const char *typ, const cJSON *claims, char out[PDS_TOKEN_MAX])
{
    atp_jwt_key k = {.key = NULL, .secret = ctx->jwt_secret};
    atp_buf b;
    int rc = 0;
    atp_buf_init(&b, PDS_TOKEN_MAX - 1);
    if (atp_jwt_sign(&b, &k, typ, claims, NULL) < 0) {
        rc = ATP_EINTERNAL;
    } else {
        memcpy(out, b.ptr, b.len);
        out[b.len] = '\0';
    }
    atp_buf_release(&b);
    return rc;
}

static cJSON *base_claims(pds_ctx *ctx, const char *did, const char *scope, int64_t now,
                          int64_t exp)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "scope", scope);
    cJSON_AddStringToObject(c, "sub", did);
    cJSON_AddStringToObject(c, "aud", ctx->service_did);
    cJSON_AddNumberToObject(c, "iat", (double)now);
    cJSON_AddNumberToObject(c, "exp", (double)exp);
    return c;
}

int pds_tokens_create(pds_ctx *ctx, const char *did, pds_scope scope, const char *jti,
                      char access[PDS_TOKEN_MAX], char refresh[PDS_TOKEN_MAX],
                      char jti_out[PDS_JTI_MAX + 1], int64_t *refresh_exp)
{
    int64_t now = ctx->now();
    char id[PDS_JTI_MAX + 1];
    cJSON *a = base_claims(ctx, did, pds_scope_name(scope), now, now + ctx->cfg->access_ttl);
    cJSON *r = base_claims(ctx, did, "com.atproto.refresh", now, now + ctx->cfg->refresh_ttl);
    int rc;
    if (jti && jti[0]) {
        snprintf(id, sizeof id, "%s", jti);
    } else {
        pds_random_token(id, 32);
    }
    cJSON_AddStringToObject(r, "jti", id);
    rc = sign(ctx, "at+jwt", a, access);
    if (rc == 0) {
        rc = sign(ctx, "refresh+jwt", r, refresh);
    }
    cJSON_Delete(a);
    cJSON_Delete(r);
    if (rc == 0 && jti_out) {
        memcpy(jti_out, id, strlen(id) + 1);
    }
    if (rc == 0 && refresh_exp) {
        *refresh_exp = now + ctx->cfg->refresh_ttl;
    }
    return rc;
}

/* The token after "Bearer ", or an error response sent. */
static int bearer(atp_req *r, atp_slice *tok)
{
    atp_slice h;
    if (!atp_req_header(r, "authorization", &h)) {
        atp_req_error_status(r, 401, "AuthMissing", "Authentication Required");
        return ATP_EAUTH;
    }
    if (h.len < 8 || strncasecmp((const char *)h.ptr, "Bearer ", 7) != 0) {
        atp_req_error_status(r, 401, "InvalidToken", "Unexpected authorization type");
        return ATP_EAUTH;
    }
    tok->ptr = h.ptr + 7;
    tok->len = h.len - 7;
    return 0;
}

/* Claims our tokens must carry: sub a DID, no lxm/cnf (those belong to other token kinds). */
static int claims_ok(const cJSON *c, pds_auth *out)
{
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(c, "sub");
    const cJSON *scope = cJSON_GetObjectItemCaseSensitive(c, "scope");
    const cJSON *jti = cJSON_GetObjectItemCaseSensitive(c, "jti");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(c, "exp");
    if (!cJSON_IsString(sub) || strncmp(sub->valuestring, "did:", 4) != 0 ||
        strlen(sub->valuestring) > PDS_DID_MAX || cJSON_GetObjectItem(c, "lxm") ||
        cJSON_GetObjectItem(c, "cnf") || !cJSON_IsString(scope) ||
        scope_parse(scope->valuestring, &out->scope) < 0) {
        return ATP_ETOKEN;
    }
    if (jti && (!cJSON_IsString(jti) || strlen(jti->valuestring) > PDS_JTI_MAX)) {
        return ATP_ETOKEN;
    }
    snprintf(out->did, sizeof out->did, "%s", sub->valuestring);
    snprintf(out->jti, sizeof out->jti, "%s", jti ? jti->valuestring : "");
    out->exp = cJSON_IsNumber(exp) ? (int64_t)exp->valuedouble : 0;
    out->admin = false;
    return 0;
}

/* Verifies a bearer token of type `typ`; on failure sends the error the client expects. */
static int verify(pds_ctx *ctx, atp_req *r, const char *typ, pds_auth *out)
{
    atp_jwt_verify_opts o;
    atp_slice tok;
    cJSON *claims = NULL;
    int rc = bearer(r, &tok);
    if (rc < 0) {
        return rc;
    }
    atp_jwt_verify_opts_init(&o, ctx->now());
    o.key.secret = ctx->jwt_secret;
    o.leeway = 0; /* our own tokens, our own clock */
    o.typ = typ;
    o.aud = ctx->service_did;
    rc = atp_jwt_verify(tok, &o, NULL, &claims, NULL);
    if (rc == 0) {
        rc = claims_ok(claims, out);
    }
    cJSON_Delete(claims);
    if (rc == ATP_EEXPIRED) {
        /* 400, as the reference: @atproto/api refreshes on 400 ExpiredToken. */
        atp_req_error_status(r, 400, "ExpiredToken", "Token has expired");
    } else if (rc < 0) {
        atp_req_error_status(r, 401, "InvalidToken", "Token could not be verified");
    }
    return rc < 0 ? rc : 0;
}

int pds_auth_access(pds_ctx *ctx, atp_req *r, pds_auth *out)
{
    pds_auth a;
    int rc = verify(ctx, r, "at+jwt", &a);
    if (rc < 0) {
        return rc;
    }
    if (a.scope == PDS_SCOPE_REFRESH) {
        atp_req_error_status(r, 401, "InvalidToken", "Bad token scope");
        return ATP_ETOKEN;
    }
    if (a.scope == PDS_SCOPE_TAKENDOWN) {
        atp_req_error_status(r, 401, "AccountTakedown", "Account has been taken down");
        return ATP_EFORBIDDEN;
    }
    *out = a;
    return 0;
}

static bool taken_down(pds_ctx *ctx, const char *did)
{
    pds_account acc;
    return pds_db_account_get(ctx->db, did, &acc) == 0 && acc.status == PDS_ST_TAKENDOWN;
}

int pds_auth_access_full(pds_ctx *ctx, atp_req *r, pds_auth *out)
{
    pds_auth a;
    int rc = pds_auth_access(ctx, r, &a);
    if (rc < 0) {
        return rc;
    }
    if (a.scope != PDS_SCOPE_ACCESS) {
        atp_req_error_status(r, 401, "InvalidToken", "Bad token scope");
        return ATP_EFORBIDDEN;
    }
    /* An access token issued before a takedown stays valid until it expires; account
     * management refuses it at once, as the reference's checkTakedown routes do. */
    if (taken_down(ctx, a.did)) {
        atp_req_error_status(r, 401, "AccountTakedown", "Account has been taken down");
        return ATP_EFORBIDDEN;
    }
    *out = a;
    return 0;
}

int pds_auth_refresh(pds_ctx *ctx, atp_req *r, pds_auth *out)
{
    pds_auth a;
    int rc = verify(ctx, r, "refresh+jwt", &a);
    if (rc < 0) {
        return rc;
    }
    if (a.scope != PDS_SCOPE_REFRESH || a.jti[0] == '\0') {
        atp_req_error_status(r, 401, "InvalidToken", "Bad token scope");
        return ATP_ETOKEN;
    }
    *out = a;
    return 0;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 (padding optional) of at most cap - 1 bytes into out, NUL-terminated. */
static bool b64_decode(atp_slice in, char *out, size_t cap)
{
    size_t o = 0, bits = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < in.len && in.ptr[i] != '='; i++) {
        int v = b64_value((char)in.ptr[i]);
        if (v < 0) {
            return false;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= cap) {
                return false;
            }
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    return true;
}

int pds_auth_admin(pds_ctx *ctx, atp_req *r, pds_auth *out)
{
    atp_slice h;
    char cred[640], want[640];
    int n;
    if (!atp_req_header(r, "authorization", &h)) {
        atp_req_error_status(r, 401, "AuthMissing", "Authentication Required");
        return ATP_EAUTH;
    }
    n = snprintf(want, sizeof want, "admin:%s", ctx->cfg->admin_password);
    if (h.len < 7 || strncasecmp((const char *)h.ptr, "Basic ", 6) != 0 ||
        !b64_decode(atp_slice_make(h.ptr + 6, h.len - 6), cred, sizeof cred) || n < 0 ||
        strlen(cred) != (size_t)n || CRYPTO_memcmp(cred, want, (size_t)n) != 0) {
        atp_req_error_status(r, 401, "AuthenticationRequired", "Invalid admin credentials");
        return ATP_EAUTH;
    }
    memset(out, 0, sizeof *out);
    out->admin = true;
    return 0;
}
