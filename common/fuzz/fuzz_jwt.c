/* fuzz_jwt.c: the JWT parser and verifier on arbitrary tokens, and sign/verify round trips of
 * arbitrary claims. The first input byte picks the mode.
 *
 * Invariants checked (abort on violation):
 *  - verification returns only 0, ATP_ETOKEN or ATP_EEXPIRED;
 *  - a token that verifies also decodes unverified, its header alg is the key's alg, and the
 *    unverified iss (when a string) equals the verified one;
 *  - a JSON object given as claims (with no duplicate member names and no time claims) signed
 *    with each of the three algs verifies and gives back the same claims. */
#include <stdlib.h>
#include <string.h>

#include "atp/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define SECRET ATP_SLICE_LIT("fuzz-secret")

static atp_key *keys[2]; /* k256, p256: made once, shared by every run */

static void init_keys(void)
{
    static const uint8_t d[32] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6,
                                  7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2};
    if (!keys[0]) {
        CHECK(atp_key_import_private(ATP_CURVE_K256, atp_slice_make(d, 32), &keys[0], NULL) == 0);
        CHECK(atp_key_import_private(ATP_CURVE_P256, atp_slice_make(d, 32), &keys[1], NULL) == 0);
    }
}

static atp_jwt_key key_n(int i)
{
    atp_jwt_key k = {NULL, {NULL, 0}};
    if (i < 2) {
        k.key = keys[i];
    } else {
        k.secret = SECRET;
    }
    return k;
}

static void check_verified(atp_slice tok, const atp_jwt_key *k, const cJSON *claims)
{
    cJSON *hdr = NULL, *pay = NULL;
    CHECK(atp_jwt_decode_unverified(tok, NULL, &hdr, &pay, NULL) == 0);
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
    CHECK(cJSON_IsString(alg) && strcmp(alg->valuestring, atp_jwt_key_alg(k)) == 0);
    char *p1 = cJSON_PrintUnformatted(pay), *p2 = cJSON_PrintUnformatted(claims);
    CHECK(p1 && p2 && strcmp(p1, p2) == 0);
    cJSON_free(p1);
    cJSON_free(p2);
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(claims, "iss");
    if (cJSON_IsString(iss)) {
        atp_buf b;
        atp_buf_init(&b, 1 << 16);
        CHECK(atp_jwt_unverified_iss(tok, NULL, &b, NULL) == 0);
        CHECK(atp_slice_eq_str(atp_buf_slice(&b), iss->valuestring));
        atp_buf_release(&b);
    }
    cJSON_Delete(hdr);
    cJSON_Delete(pay);
}

static void fuzz_token(atp_slice tok, uint8_t flags)
{
    for (int i = 0; i < 3; i++) {
        atp_jwt_verify_opts o;
        cJSON *claims = NULL;
        atp_jwt_verify_opts_init(&o, 1700000000);
        o.key = key_n(i);
        o.exp_optional = flags & 1;
        o.allow_high_s = flags & 2;
        o.aud = (flags & 4) ? "did:web:a" : NULL;
        o.lxm = (flags & 8) ? "com.example.m" : NULL;
        o.typ = (flags & 16) ? "JWT" : NULL;
        int rc = atp_jwt_verify(tok, &o, NULL, &claims, NULL);
        CHECK(rc == 0 || rc == ATP_ETOKEN || rc == ATP_EEXPIRED);
        if (rc == 0) {
            check_verified(tok, &o.key, claims);
        }
        cJSON_Delete(claims);
    }
    cJSON *h = NULL;
    if (atp_jwt_decode_unverified(tok, NULL, &h, NULL, NULL) == 0) {
        CHECK(cJSON_IsObject(h));
    }
    cJSON_Delete(h);
}

static bool top_level_unique(const cJSON *o)
{
    for (const cJSON *a = o->child; a; a = a->next) {
        for (const cJSON *b = a->next; b; b = b->next) {
            if (strcmp(a->string, b->string) == 0) {
                return false;
            }
        }
    }
    return true;
}

static void roundtrip(const cJSON *claims, int i)
{
    atp_jwt_key k = key_n(i);
    atp_jwt_verify_opts o;
    atp_jwt_limits lim = {1 << 20, 2000, 1 << 20};
    cJSON *back = NULL;
    atp_buf b;
    atp_buf_init(&b, 1 << 20);
    CHECK(atp_jwt_sign(&b, &k, NULL, claims, NULL) == 0);
    atp_jwt_verify_opts_init(&o, 1700000000);
    o.key = k;
    o.exp_optional = true;
    o.typ = "JWT";
    CHECK(atp_jwt_verify(atp_buf_slice(&b), &o, &lim, &back, NULL) == 0);
    /* Printed forms compare exactly, including numbers cJSON prints as null. */
    char *p1 = cJSON_PrintUnformatted(claims), *p2 = cJSON_PrintUnformatted(back);
    CHECK(p1 && p2 && strcmp(p1, p2) == 0);
    cJSON_free(p1);
    cJSON_free(p2);
    cJSON_Delete(back);
    atp_buf_release(&b);
}

static void fuzz_claims(atp_slice in, int which)
{
    cJSON *c = cJSON_ParseWithLength((const char *)in.ptr, in.len);
    if (cJSON_IsObject(c) && top_level_unique(c) && !cJSON_GetObjectItemCaseSensitive(c, "exp") &&
        !cJSON_GetObjectItemCaseSensitive(c, "nbf") &&
        !cJSON_GetObjectItemCaseSensitive(c, "iat")) {
        roundtrip(c, which);
    }
    cJSON_Delete(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    init_keys();
    atp_slice in = atp_slice_make(data + 1, size - 1);
    if (data[0] >= 0xf0) {
        fuzz_claims(in, data[0] % 3);
    } else {
        fuzz_token(in, data[0]);
    }
    return 0;
}
