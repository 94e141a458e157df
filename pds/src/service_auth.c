/* pds/src/service_auth.c: inter-service JWTs (xrpc-auth §5) signed with an account's repo key.
 * One token per proxied request and per getServiceAuth call: nothing is cached, the key is
 * loaded, used and destroyed here so no private key outlives the call. */
#include <string.h>

#include <openssl/rand.h>

#include "atp/jwt.h"

#include "service_auth.h"

#define JTI_BYTES 16 /* the reference: 16 random bytes, hex */

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* iss, aud, exp, iat, lxm?, jti: the reference's member order, so tokens look alike. */
static cJSON *claims_build(const char *did, const char *aud, const char *lxm, int64_t exp,
                           int64_t iat, const char *jti)
{
    cJSON *c = cJSON_CreateObject();
    if (!c) {
        return NULL;
    }
    if (!cJSON_AddStringToObject(c, "iss", did) || !cJSON_AddStringToObject(c, "aud", aud) ||
        !cJSON_AddNumberToObject(c, "exp", (double)exp) ||
        !cJSON_AddNumberToObject(c, "iat", (double)iat) ||
        (lxm && !cJSON_AddStringToObject(c, "lxm", lxm)) ||
        !cJSON_AddStringToObject(c, "jti", jti)) {
        cJSON_Delete(c);
        return NULL;
    }
    return c;
}

static int sign_with(atp_key *key, const cJSON *claims, char *out, size_t cap, atp_err *err)
{
    atp_buf b;
    atp_jwt_key jk;
    int rc;
    memset(&jk, 0, sizeof jk);
    jk.key = key;
    atp_buf_init(&b, cap - 1); /* room for the NUL */
    rc = atp_jwt_sign(&b, &jk, "JWT", claims, err);
    if (rc == 0) {
        memcpy(out, b.ptr, b.len);
        out[b.len] = '\0';
    }
    atp_buf_release(&b);
    return rc;
}

int pds_service_jwt(pds_ctx *ctx, const char *did, const char *aud, const char *lxm, int64_t exp,
                    char *out, size_t cap, atp_err *err)
{
    uint8_t rnd[JTI_BYTES];
    char jti[2 * JTI_BYTES + 1];
    atp_key *key = NULL;
    cJSON *claims;
    int rc;
    if (!did || !aud || !out || cap < 2) {
        return atp_err_set(err, cap < 2 ? ATP_ELIMIT : ATP_EINVAL, 0, "service jwt: bad arguments");
    }
    if (RAND_bytes(rnd, (int)sizeof rnd) != 1) {
        return atp_err_set(err, ATP_EINTERNAL, 0, "service jwt: no randomness");
    }
    hex_encode(rnd, sizeof rnd, jti);
    rc = pds_account_signing_key(ctx, did, &key);
    if (rc < 0) {
        return atp_err_set(err, rc, 0, "no signing key for %.200s", did);
    }
    claims = claims_build(did, aud, lxm, exp, ctx->now(), jti);
    if (!claims) {
        atp_key_destroy(key);
        return atp_err_set(err, ATP_EINTERNAL, 0, "service jwt: out of memory");
    }
    rc = sign_with(key, claims, out, cap, err);
    cJSON_Delete(claims);
    atp_key_destroy(key);
    return rc;
}
