/* test_jwt.c: JWT signing and verification (ES256K, ES256, HS256), every rejection rule, and
 * fixed tokens made outside this project (HS256 with `openssl dgst -sha256 -hmac`, ES256K and
 * ES256 with Python's `cryptography` package) during development. */
#include "atp/jwt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "atp/multibase.h"
#include "t.h"

#define NOW     1900000000
#define VEC_NOW 1999999950 /* between iat and exp of the external EC vectors */

/* Made by hand: header {"typ":"JWT","alg":"HS256"}, payload
 * {"iss":"did:plc:abc","exp":2000000000}, secret "test-secret". */
#define HS_VECTOR                                                                                  \
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9."                                                        \
    "eyJpc3MiOiJkaWQ6cGxjOmFiYyIsImV4cCI6MjAwMDAwMDAwMH0."                                         \
    "5K532LledRtTLBlpmTUAcZguqcjuCUcmsO0CBMZYTho"

/* Service-auth style tokens signed by Python's cryptography (random nonces, low-S), claims
 * {iss: did:plc:issuer, aud: did:web:svc.example, exp: 2000000000, iat: 1999999940,
 *  lxm: com.atproto.repo.getRecord, jti: abc123}. */
static const char K256_PRIV[] = "9085d2bef69286a6cbb51623c8fa258629945cd55ca705cc4e66700396894e0c";
static const char K256_VECTOR[] =
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NksifQ."
    "eyJpc3MiOiJkaWQ6cGxjOmlzc3VlciIsImF1ZCI6ImRpZDp3ZWI6c3ZjLmV4YW1wbGUiLCJleHAiOjIwMDAwMDAwMD"
    "AsImlhdCI6MTk5OTk5OTk0MCwibHhtIjoiY29tLmF0cHJvdG8ucmVwby5nZXRSZWNvcmQiLCJqdGkiOiJhYmMxMjMi"
    "fQ.ZZUA9-tEuJkh_4oijpY7xtcUQVDVaW8w-r-Td37YQzEO6lkShoPx4M8eN5Z4_C1eYeKLSjYYpfPPuGD8FDvpLA";
static const char P256_PRIV[] = "780437017d08a32d28137c55e1e1a34e90c8908034bf4e9bafb764c15d0232f6";
static const char P256_VECTOR[] =
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9."
    "eyJpc3MiOiJkaWQ6cGxjOmlzc3VlciIsImF1ZCI6ImRpZDp3ZWI6c3ZjLmV4YW1wbGUiLCJleHAiOjIwMDAwMDAwMD"
    "AsImlhdCI6MTk5OTk5OTk0MCwibHhtIjoiY29tLmF0cHJvdG8ucmVwby5nZXRSZWNvcmQiLCJqdGkiOiJhYmMxMjMi"
    "fQ.70MyJyNifs-8zWksxv2a1Y5iADPaGucVWk39IqTg9bhh_6e0rbxf7xZ6moXwkclBVXIi0iKv01jVDsmWM3Am_Q";

static atp_key *k256, *p256, *k256_pub, *p256_pub;
#define SECRET ATP_SLICE_LIT("test-secret")

static atp_key *pub_of(const atp_key *k)
{
    uint8_t pub[33];
    atp_key *p = NULL;
    atp_key_export_public(k, pub);
    T_OK(atp_key_import_public(atp_key_curve(k), atp_slice_make(pub, 33), &p, NULL));
    return p;
}

static void setup(void)
{
    T_OK(atp_key_import_private_hex(ATP_CURVE_K256, atp_slice_str(K256_PRIV), &k256, NULL));
    T_OK(atp_key_import_private_hex(ATP_CURVE_P256, atp_slice_str(P256_PRIV), &p256, NULL));
    k256_pub = pub_of(k256);
    p256_pub = pub_of(p256);
}

static atp_jwt_key ec(const atp_key *k)
{
    return (atp_jwt_key){k, {NULL, 0}};
}

static atp_jwt_key hs(atp_slice secret)
{
    return (atp_jwt_key){NULL, secret};
}

static void opts_for(atp_jwt_verify_opts *o, atp_jwt_key key)
{
    atp_jwt_verify_opts_init(o, NOW);
    o->key = key;
}

static cJSON *claims_std(void)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "iss", "did:plc:issuer");
    cJSON_AddStringToObject(c, "aud", "did:web:svc.example");
    cJSON_AddNumberToObject(c, "exp", NOW + 60);
    cJSON_AddNumberToObject(c, "iat", NOW);
    cJSON_AddStringToObject(c, "lxm", "com.atproto.repo.getRecord");
    return c;
}

/* Signs `claims` into a malloc'ed C string. */
static char *sign_str(atp_jwt_key key, const char *typ, const cJSON *claims)
{
    atp_buf b;
    atp_err e;
    atp_buf_init(&b, 16384);
    int rc = atp_jwt_sign(&b, &key, typ, claims, &e);
    T_OKE(rc, &e);
    atp_buf_append_byte(&b, 0);
    char *s = (char *)atp_buf_take(&b, NULL);
    atp_buf_release(&b);
    return s;
}

static int verify_str(const char *tok, const atp_jwt_verify_opts *o, atp_err *e)
{
    cJSON *claims = NULL;
    int rc = atp_jwt_verify(atp_slice_str(tok), o, NULL, &claims, e);
    if (rc == 0) {
        T_TRUE(cJSON_IsObject(claims));
    } else {
        T_TRUE(claims == NULL);
        T_EQ(e->code, rc);
        T_TRUE(e->msg[0] != '\0');
    }
    cJSON_Delete(claims);
    return rc;
}

/* A token from raw JSON texts, signed correctly with `key` (EC or HMAC), so that the claim and
 * header rules are tested behind a valid signature. */
static char *raw_token(const char *hdr, const char *pay, atp_jwt_key key)
{
    atp_buf b;
    uint8_t sig[64];
    size_t n = 64;
    atp_buf_init(&b, 16384);
    atp_base_encode(&b, ATP_BASE64URL, atp_slice_str(hdr));
    atp_buf_append_byte(&b, '.');
    atp_base_encode(&b, ATP_BASE64URL, atp_slice_str(pay));
    if (key.key) {
        T_OK(atp_key_sign(key.key, atp_buf_slice(&b), sig, NULL));
    } else {
        unsigned int len = 0;
        HMAC(EVP_sha256(), key.secret.ptr, (int)key.secret.len, b.ptr, b.len, sig, &len);
        n = len;
    }
    atp_buf_append_byte(&b, '.');
    atp_base_encode(&b, ATP_BASE64URL, atp_slice_make(sig, n));
    atp_buf_append_byte(&b, 0);
    char *s = (char *)atp_buf_take(&b, NULL);
    atp_buf_release(&b);
    return s;
}

/* ---- round trips and fixed vectors ---- */

static void roundtrip(atp_jwt_key signer, atp_jwt_key verifier, const char *alg)
{
    cJSON *c = claims_std(), *out = NULL, *hdr = NULL;
    char *tok = sign_str(signer, NULL, c);
    atp_jwt_verify_opts o;
    atp_err e;
    opts_for(&o, verifier);
    o.typ = "JWT";
    o.aud = "did:web:svc.example";
    o.lxm = "com.atproto.repo.getRecord";
    T_OKE(atp_jwt_verify(atp_slice_str(tok), &o, NULL, &out, &e), &e);
    T_TRUE(cJSON_Compare(out, c, true));
    T_OK(atp_jwt_decode_unverified(atp_slice_str(tok), NULL, &hdr, NULL, NULL));
    T_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(hdr, "alg")), alg);
    T_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(hdr, "typ")), "JWT");
    T_STREQ(atp_jwt_key_alg(&signer), alg);
    cJSON_Delete(hdr);
    cJSON_Delete(out);
    cJSON_Delete(c);
    free(tok);
}

static void test_roundtrips(void)
{
    roundtrip(ec(k256), ec(k256_pub), "ES256K");
    roundtrip(ec(p256), ec(p256_pub), "ES256");
    roundtrip(hs(SECRET), hs(SECRET), "HS256");
}

static void test_hs256_vector(void)
{
    cJSON *c = cJSON_CreateObject(), *out = NULL;
    cJSON_AddStringToObject(c, "iss", "did:plc:abc");
    cJSON_AddNumberToObject(c, "exp", 2000000000);
    char *tok = sign_str(hs(SECRET), "JWT", c);
    T_STREQ(tok, HS_VECTOR);
    atp_jwt_verify_opts o;
    atp_err e;
    opts_for(&o, hs(SECRET));
    T_OKE(atp_jwt_verify(atp_slice_str(HS_VECTOR), &o, NULL, &out, &e), &e);
    T_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(out, "iss")), "did:plc:abc");
    o.key = hs(ATP_SLICE_LIT("test-secreT"));
    T_EQ(verify_str(HS_VECTOR, &o, &e), ATP_ETOKEN);
    cJSON_Delete(out);
    cJSON_Delete(c);
    free(tok);
}

/* HS256 with secrets of every length around SHA-256's 64-byte block (a longer one is hashed
 * first), checked against OpenSSL's HMAC (raw_token): ours must accept each token and refuse
 * it under a secret one byte different. */
static void test_hs256_key_lengths(void)
{
    static const size_t lens[] = {1, 31, 32, 33, 63, 64, 65, 100, 200};
    uint8_t key[200];
    for (size_t i = 0; i < sizeof key; i++) {
        key[i] = (uint8_t)(i * 7 + 1);
    }
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        atp_slice sk = atp_slice_make(key, lens[i]);
        char *tok = raw_token("{\"alg\":\"HS256\"}", "{\"exp\":1900000060}", hs(sk));
        atp_jwt_verify_opts o;
        atp_err e;
        opts_for(&o, hs(sk));
        T_OKE(verify_str(tok, &o, &e), &e);
        key[lens[i] - 1] ^= 1;
        T_EQ(verify_str(tok, &o, &e), ATP_ETOKEN);
        key[lens[i] - 1] ^= 1;
        free(tok);
    }
}

static void test_external_ec_vectors(void)
{
    atp_jwt_verify_opts o;
    atp_err e;
    cJSON *out = NULL;
    opts_for(&o, ec(k256_pub));
    o.now = VEC_NOW;
    o.aud = "did:web:svc.example";
    o.lxm = "com.atproto.repo.getRecord";
    o.typ = "JWT";
    T_OKE(atp_jwt_verify(atp_slice_str(K256_VECTOR), &o, NULL, &out, &e), &e);
    T_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(out, "jti")), "abc123");
    cJSON_Delete(out);
    o.key = ec(p256_pub);
    T_OKE(atp_jwt_verify(atp_slice_str(P256_VECTOR), &o, NULL, NULL, &e), &e);
    /* Crossed: each token against the other curve's key. */
    T_EQ(verify_str(K256_VECTOR, &o, &e), ATP_ETOKEN);
    o.key = ec(k256_pub);
    T_EQ(verify_str(P256_VECTOR, &o, &e), ATP_ETOKEN);
    /* After expiry (2000000000 + leeway). */
    o.now = 2000000000 + ATP_JWT_LEEWAY_DEFAULT;
    T_EQ(verify_str(K256_VECTOR, &o, &e), ATP_EEXPIRED);
    o.now = 2000000000 + ATP_JWT_LEEWAY_DEFAULT - 1;
    T_EQ(verify_str(K256_VECTOR, &o, &e), 0);
    /* The unverified issuer. */
    atp_buf b;
    atp_buf_init(&b, 64);
    T_OK(atp_jwt_unverified_iss(atp_slice_str(P256_VECTOR), NULL, &b, &e));
    T_MEMEQ(b.ptr, b.len, "did:plc:issuer", 14);
    atp_buf_release(&b);
}

static void test_session_typ(void)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "scope", "com.atproto.access");
    cJSON_AddNumberToObject(c, "exp", NOW + 7200);
    char *access = sign_str(hs(SECRET), "at+jwt", c);
    char *refresh = sign_str(hs(SECRET), "refresh+jwt", c);
    T_TRUE(strncmp(access, "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJIUzI1NiJ9.", 41) == 0);
    atp_jwt_verify_opts o;
    atp_err e;
    opts_for(&o, hs(SECRET));
    o.typ = "at+jwt";
    T_EQ(verify_str(access, &o, &e), 0);
    T_EQ(verify_str(refresh, &o, &e), ATP_ETOKEN);
    T_TRUE(strstr(e.msg, "typ") != NULL);
    o.typ = "refresh+jwt";
    T_EQ(verify_str(refresh, &o, &e), 0);
    T_EQ(verify_str(access, &o, &e), ATP_ETOKEN);
    cJSON_Delete(c);
    free(access);
    free(refresh);
}

/* ---- rejections ---- */

static void test_alg_rules(void)
{
    atp_jwt_verify_opts o;
    atp_err e;
    const char *pay = "{\"exp\":1900000060}";
    char *none = raw_token("{\"alg\":\"none\"}", pay, hs(SECRET));
    char *hs_tok = raw_token("{\"alg\":\"HS256\"}", pay, hs(SECRET));
    char *k_tok = raw_token("{\"alg\":\"ES256K\"}", pay, ec(k256));
    char *noalg = raw_token("{\"typ\":\"JWT\"}", pay, hs(SECRET));
    char *numalg = raw_token("{\"alg\":5}", pay, hs(SECRET));
    opts_for(&o, hs(SECRET));
    T_EQ(verify_str(none, &o, &e), ATP_ETOKEN);
    T_TRUE(strstr(e.msg, "none") != NULL);
    T_EQ(verify_str(noalg, &o, &e), ATP_ETOKEN);
    T_EQ(verify_str(numalg, &o, &e), ATP_ETOKEN);
    T_EQ(verify_str(hs_tok, &o, &e), 0);
    T_EQ(verify_str(k_tok, &o, &e), ATP_ETOKEN); /* ES256K token, secret given */
    /* alg "none" with an empty signature segment is malformed before anything else. */
    char *bare = raw_token("{\"alg\":\"none\"}", pay, hs(SECRET));
    *strrchr(bare, '.') = '\0';
    size_t bl = strlen(bare);
    bare[bl] = '.';
    bare[bl + 1] = '\0';
    T_EQ(verify_str(bare, &o, &e), ATP_ETOKEN);
    /* HS256 token checked against public keys: alg confusion refused. */
    o.key = ec(k256_pub);
    T_EQ(verify_str(hs_tok, &o, &e), ATP_ETOKEN);
    T_TRUE(strstr(e.msg, "does not match") != NULL);
    T_EQ(verify_str(none, &o, &e), ATP_ETOKEN);
    T_EQ(verify_str(k_tok, &o, &e), 0);
    o.key = ec(p256_pub);
    T_EQ(verify_str(hs_tok, &o, &e), ATP_ETOKEN);
    T_EQ(verify_str(k_tok, &o, &e), ATP_ETOKEN);
    /* Wrong key choices in the options. */
    o.key = (atp_jwt_key){k256_pub, SECRET};
    T_EQ(verify_str(k_tok, &o, &e), ATP_EINVAL);
    o.key = (atp_jwt_key){NULL, {NULL, 0}};
    T_EQ(verify_str(k_tok, &o, &e), ATP_EINVAL);
    free(none);
    free(hs_tok);
    free(k_tok);
    free(noalg);
    free(numalg);
    free(bare);
}

static void test_time_claims(void)
{
    atp_jwt_verify_opts o;
    atp_err e;
    const char *h = "{\"alg\":\"HS256\"}";
    struct {
        const char *pay;
        int leeway_rc, strict_rc; /* with default leeway, with leeway 0 */
    } cases[] = {
        {"{\"exp\":1900000060}", 0, 0},
        {"{\"exp\":1899999999}", 0, ATP_EEXPIRED},
        {"{\"exp\":1900000000}", 0, ATP_EEXPIRED},
        {"{\"exp\":1899999990}", ATP_EEXPIRED, ATP_EEXPIRED},
        {"{\"exp\":1800000000}", ATP_EEXPIRED, ATP_EEXPIRED},
        {"{\"iat\":1900000000}", ATP_ETOKEN, ATP_ETOKEN},     /* no exp */
        {"{\"exp\":\"1900000060\"}", ATP_ETOKEN, ATP_ETOKEN}, /* exp not a number */
        {"{\"exp\":1900000060,\"iat\":1900000000}", 0, 0},
        {"{\"exp\":1900000600,\"iat\":1900000060}", 0, ATP_ETOKEN},
        {"{\"exp\":1900000600,\"iat\":1900000061}", ATP_ETOKEN, ATP_ETOKEN},
        {"{\"exp\":1900000600,\"iat\":1900000500}", ATP_ETOKEN, ATP_ETOKEN},
        {"{\"exp\":1900000600,\"iat\":true}", ATP_ETOKEN, ATP_ETOKEN},
        {"{\"exp\":1900000600,\"nbf\":1900000005}", 0, ATP_ETOKEN},
        {"{\"exp\":1900000600,\"nbf\":1900000100}", ATP_ETOKEN, ATP_ETOKEN},
        {"{\"exp\":1900000600,\"nbf\":1899999000}", 0, 0},
        {"{\"exp\":1900000060.5}", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *tok = raw_token(h, cases[i].pay, hs(SECRET));
        opts_for(&o, hs(SECRET));
        o.iat_skew = 60;
        int rc = verify_str(tok, &o, &e);
        if (rc != cases[i].leeway_rc) {
            T_FAILF("case %zu (%s): rc %d, want %d", i, cases[i].pay, rc, cases[i].leeway_rc);
        }
        o.leeway = 0;
        o.iat_skew = 0;
        rc = verify_str(tok, &o, &e);
        if (rc != cases[i].strict_rc) {
            T_FAILF("case %zu (%s) strict: rc %d, want %d", i, cases[i].pay, rc,
                    cases[i].strict_rc);
        }
        free(tok);
    }
    /* exp optional on request. */
    char *noexp = raw_token(h, "{\"sub\":\"did:plc:x\"}", hs(SECRET));
    opts_for(&o, hs(SECRET));
    T_EQ(verify_str(noexp, &o, &e), ATP_ETOKEN);
    T_TRUE(strstr(e.msg, "exp") != NULL);
    o.exp_optional = true;
    T_EQ(verify_str(noexp, &o, &e), 0);
    free(noexp);
}

static void test_aud_lxm(void)
{
    atp_jwt_verify_opts o;
    atp_err e;
    cJSON *c = claims_std();
    char *tok = sign_str(ec(k256), NULL, c);
    char *frag =
        raw_token("{\"alg\":\"ES256K\"}",
                  "{\"exp\":1900000060,\"aud\":\"did:web:svc.example#bsky_appview\"}", ec(k256));
    char *arr = raw_token("{\"alg\":\"ES256K\"}",
                          "{\"exp\":1900000060,\"aud\":[\"did:web:svc.example\"]}", ec(k256));
    opts_for(&o, ec(k256_pub));
    o.aud = "did:web:svc.example";
    T_EQ(verify_str(tok, &o, &e), 0);
    T_EQ(verify_str(frag, &o, &e), ATP_ETOKEN);
    T_EQ(verify_str(arr, &o, &e), ATP_ETOKEN);
    o.aud_alt = "did:web:svc.example#bsky_appview";
    T_EQ(verify_str(frag, &o, &e), 0);
    T_EQ(verify_str(tok, &o, &e), 0);
    o.aud = "did:web:other.example";
    o.aud_alt = NULL;
    T_EQ(verify_str(tok, &o, &e), ATP_ETOKEN);
    T_TRUE(strstr(e.msg, "audience") != NULL);
    o.aud = NULL;
    o.lxm = "com.atproto.repo.getRecord";
    T_EQ(verify_str(tok, &o, &e), 0);
    o.lxm = "com.atproto.repo.putRecord";
    T_EQ(verify_str(tok, &o, &e), ATP_ETOKEN);
    T_TRUE(strstr(e.msg, "lxm") != NULL);
    T_EQ(verify_str(frag, &o, &e), ATP_ETOKEN); /* lxm missing */
    cJSON_Delete(c);
    free(tok);
    free(frag);
    free(arr);
}

static void test_malformed(void)
{
    atp_jwt_verify_opts o;
    atp_err e;
    char buf[9000];
    opts_for(&o, hs(SECRET));
    const char *bad[] = {
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "..",
        HS_VECTOR ".",
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9..5K532LledRtTLBlpmTUAcZguqcjuCUcmsO0CBMZYTho",
        /* bad base64url characters, padding, standard alphabet */
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9*.eyJpc3MiOiJkaWQ6cGxjOmFiYyIsImV4cCI6MjAwMDAwMDAwMH0."
        "5K532LledRtTLBlpmTUAcZguqcjuCUcmsO0CBMZYTho",
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJkaWQ6cGxjOmFiYyIsImV4cCI6MjAwMDAwMDAwMH0."
        "5K532LledRtTLBlpmTUAcZguqcjuCUcmsO0CBMZYTho=",
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJkaWQ6cGxjOmFiYyIsImV4cCI6MjAwMDAwMDAwMH0."
        "5K532LledRtTLBlpmTUAcZguqcjuCUcmsO0CBMZYTh+",
        /* non-canonical last character of the signature (trailing bits set): o -> p */
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJkaWQ6cGxjOmFiYyIsImV4cCI6MjAwMDAwMDAwMH0."
        "5K532LledRtTLBlpmTUAcZguqcjuCUcmsO0CBMZYThp",
        /* tampered payload: exp 2000000000 -> 2000000001 keeps the old signature */
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJkaWQ6cGxjOmFiYyIsImV4cCI6MjAwMDAwMDAwMX0."
        "5K532LledRtTLBlpmTUAcZguqcjuCUcmsO0CBMZYTho",
        /* tampered signature */
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJkaWQ6cGxjOmFiYyIsImV4cCI6MjAwMDAwMDAwMH0."
        "6K532LledRtTLBlpmTUAcZguqcjuCUcmsO0CBMZYTho",
        /* truncated signature */
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJkaWQ6cGxjOmFiYyIsImV4cCI6MjAwMDAwMDAwMH0."
        "5K532LledRtTLBlpmTUAcZguqcjuCUcmsO0CBMZYTg",
        /* a space inside */
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9 .eyJpc3MiOiJkaWQ6cGxjOmFiYyIsImV4cCI6MjAwMDAwMDAwMH0."
        "5K532LledRtTLBlpmTUAcZguqcjuCUcmsO0CBMZYTho",
    };
    T_EQ(verify_str(HS_VECTOR, &o, &e), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = verify_str(bad[i], &o, &e);
        if (rc != ATP_ETOKEN) {
            T_FAILF("bad[%zu]: rc %d (%s)", i, rc, e.msg);
        }
    }
    /* Oversized: a valid token padded past 8 KiB through a long claim. */
    memset(buf, 'a', 6200);
    memcpy(buf, "{\"exp\":1900000060,\"x\":\"", 23);
    memcpy(buf + 6200, "\"}", 3);
    char *big = raw_token("{\"alg\":\"HS256\"}", buf, hs(SECRET));
    T_TRUE(strlen(big) > ATP_JWT_MAX_LEN_DEFAULT);
    T_EQ(verify_str(big, &o, &e), ATP_ETOKEN);
    T_TRUE(strstr(e.msg, "too long") != NULL);
    atp_jwt_limits lim = {16384, 0, 0};
    T_EQ(atp_jwt_verify(atp_slice_str(big), &o, &lim, NULL, &e), 0);
    lim.max_len = 50;
    T_EQ(atp_jwt_verify(atp_slice_str(HS_VECTOR), &o, &lim, NULL, &e), ATP_ETOKEN);
    free(big);
}

static void test_json_rules(void)
{
    atp_jwt_verify_opts o;
    atp_err e;
    const char *h = "{\"alg\":\"HS256\"}";
    struct {
        const char *hdr, *pay;
    } bad[] = {
        {h, "[1]"},
        {h, "\"str\""},
        {h, "{\"exp\":1900000060"},
        {h, "{\"exp\":1900000060} x"},
        {h, "{\"exp\":1900000060,\"exp\":1900000060}"},
        {h, "{\"exp\":1900000060,\"aud\":\"a\",\"aud\":\"b\"}"},
        {h, "{\"exp\":1900000060,\"a\":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}"},
        {h, "{\"exp\":1900000060,\"aud\":\"did:web:a\\u0000x\"}"},
        {h, "{\"exp\":1900000060,\"aud\":\"did:web:a\tx\"}"},
        {"{\"alg\":\"HS256\",\"crit\":[\"b64\"]}", "{\"exp\":1900000060}"},
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "{\"exp\":1900000060}"},
        {"[\"HS256\"]", "{\"exp\":1900000060}"},
        {"{\"alg\":\"HS256\"", "{\"exp\":1900000060}"},
    };
    opts_for(&o, hs(SECRET));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *tok = raw_token(bad[i].hdr, bad[i].pay, hs(SECRET));
        int rc = verify_str(tok, &o, &e);
        if (rc != ATP_ETOKEN) {
            T_FAILF("json case %zu: rc %d (%s)", i, rc, e.msg);
        }
        free(tok);
    }
    /* Within limits: depth 16 and whitespace around the JSON are fine. */
    char *ok =
        raw_token(" {\"alg\":\"HS256\"} ",
                  "{\"exp\":1900000060,\"a\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}\n", hs(SECRET));
    T_EQ(verify_str(ok, &o, &e), 0);
    atp_jwt_limits lim = {0, 4, 0};
    T_EQ(atp_jwt_verify(atp_slice_str(ok), &o, &lim, NULL, &e), ATP_ETOKEN);
    free(ok);
    /* Member count limit. */
    char pay[1024] = "{\"exp\":1900000060";
    for (int i = 0; i < 70; i++) {
        size_t l = strlen(pay);
        snprintf(pay + l, sizeof pay - l, ",\"k%d\":%d", i, i);
    }
    strncat(pay, "}", sizeof pay - strlen(pay) - 1);
    char *many = raw_token(h, pay, hs(SECRET));
    T_EQ(verify_str(many, &o, &e), ATP_ETOKEN);
    lim = (atp_jwt_limits){0, 0, 100};
    T_EQ(atp_jwt_verify(atp_slice_str(many), &o, &lim, NULL, &e), 0);
    free(many);
}

/* r||s with s replaced by n - s: still a valid ECDSA signature, but high-S. */
static char *make_high_s(const char *tok, atp_curve c)
{
    static const uint8_t k_n[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
                                    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b,
                                    0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};
    static const uint8_t p_n[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
                                    0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
    const uint8_t *n = c == ATP_CURVE_K256 ? k_n : p_n;
    const char *dot = strrchr(tok, '.');
    uint8_t sig[64];
    size_t len = 0;
    T_OK(atp_base_decode(ATP_BASE64URL, atp_slice_str(dot + 1), sig, 64, &len, NULL));
    int borrow = 0;
    for (int i = 31; i >= 0; i--) {
        int d = (int)n[i] - (int)sig[32 + i] - borrow;
        borrow = d < 0;
        sig[32 + i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
    atp_buf b;
    atp_buf_init(&b, 16384);
    atp_buf_append(&b, tok, (size_t)(dot + 1 - tok));
    atp_base_encode(&b, ATP_BASE64URL, atp_slice_make(sig, 64));
    atp_buf_append_byte(&b, 0);
    char *s = (char *)atp_buf_take(&b, NULL);
    atp_buf_release(&b);
    return s;
}

static void test_high_s(void)
{
    atp_jwt_verify_opts o;
    atp_err e;
    char *k = make_high_s(K256_VECTOR, ATP_CURVE_K256);
    char *p = make_high_s(P256_VECTOR, ATP_CURVE_P256);
    opts_for(&o, ec(k256_pub));
    o.now = VEC_NOW;
    T_EQ(verify_str(k, &o, &e), ATP_ETOKEN);
    T_TRUE(strstr(e.msg, "high-S") != NULL);
    o.allow_high_s = true;
    T_EQ(verify_str(k, &o, &e), 0);
    opts_for(&o, ec(p256_pub));
    o.now = VEC_NOW;
    T_EQ(verify_str(p, &o, &e), ATP_ETOKEN);
    o.allow_high_s = true;
    T_EQ(verify_str(p, &o, &e), 0);
    free(k);
    free(p);
}

/* ---- signing errors and unverified helpers ---- */

static void test_sign_errors(void)
{
    cJSON *c = claims_std(), *arr = cJSON_CreateArray();
    atp_buf b;
    atp_err e;
    atp_jwt_key both = {k256, SECRET}, neither = {NULL, {NULL, 0}}, pub = ec(k256_pub);
    atp_jwt_key k = ec(k256);
    atp_buf_init(&b, 64);
    atp_buf_append_str(&b, "Bearer ");
    T_EQ(atp_jwt_sign(&b, &both, NULL, c, &e), ATP_EINVAL);
    T_EQ(atp_jwt_sign(&b, &neither, NULL, c, &e), ATP_EINVAL);
    T_EQ(atp_jwt_sign(&b, &k, NULL, arr, &e), ATP_EINVAL);
    T_EQ(atp_jwt_sign(&b, &pub, NULL, c, &e), ATP_EKEY);
    T_EQ(b.len, 7);
    /* Too small an output: ELIMIT and the buffer keeps its old length. */
    T_EQ(atp_jwt_sign(&b, &k, NULL, c, &e), ATP_ELIMIT);
    T_EQ(b.len, 7);
    T_EQ(b.err, ATP_ELIMIT);
    atp_buf_release(&b);
    /* Appends after existing content. */
    atp_buf_init(&b, 4096);
    atp_buf_append_str(&b, "Bearer ");
    T_OK(atp_jwt_sign(&b, &k, NULL, c, &e));
    atp_jwt_verify_opts o;
    opts_for(&o, pub);
    T_OKE(atp_jwt_verify(atp_slice_sub(atp_buf_slice(&b), 7, b.len), &o, NULL, NULL, &e), &e);
    atp_buf_release(&b);
    cJSON_Delete(c);
    cJSON_Delete(arr);
}

static void test_unverified(void)
{
    atp_buf b;
    atp_err e;
    cJSON *h = NULL, *p = NULL;
    atp_buf_init(&b, 64);
    T_OK(atp_jwt_unverified_iss(atp_slice_str(K256_VECTOR), NULL, &b, &e));
    T_MEMEQ(b.ptr, b.len, "did:plc:issuer", 14);
    atp_buf_reset(&b);
    T_EQ(atp_jwt_unverified_iss(atp_slice_str(HS_VECTOR "x.y"), NULL, &b, &e), ATP_ETOKEN);
    char *noiss = raw_token("{\"alg\":\"HS256\"}", "{\"iss\":5}", hs(SECRET));
    T_EQ(atp_jwt_unverified_iss(atp_slice_str(noiss), NULL, &b, &e), ATP_ETOKEN);
    T_EQ(b.len, 0);
    atp_buf_release(&b);
    atp_buf_init(&b, 4);
    T_EQ(atp_jwt_unverified_iss(atp_slice_str(K256_VECTOR), NULL, &b, &e), ATP_ELIMIT);
    T_EQ(b.len, 0);
    atp_buf_release(&b);
    /* Decoding does not need a valid signature. */
    char *forged = raw_token("{\"alg\":\"ES256K\"}", "{\"iss\":\"did:plc:who\"}", hs(SECRET));
    T_OK(atp_jwt_decode_unverified(atp_slice_str(forged), NULL, &h, &p, &e));
    T_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(p, "iss")), "did:plc:who");
    T_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(h, "alg")), "ES256K");
    cJSON_Delete(h);
    cJSON_Delete(p);
    free(forged);
    free(noiss);
}

int main(void)
{
    setup();
    T_RUN(test_roundtrips);
    T_RUN(test_hs256_vector);
    T_RUN(test_hs256_key_lengths);
    T_RUN(test_external_ec_vectors);
    T_RUN(test_session_typ);
    T_RUN(test_alg_rules);
    T_RUN(test_time_claims);
    T_RUN(test_aud_lxm);
    T_RUN(test_malformed);
    T_RUN(test_json_rules);
    T_RUN(test_high_s);
    T_RUN(test_sign_errors);
    T_RUN(test_unverified);
    atp_key_destroy(k256);
    atp_key_destroy(p256);
    atp_key_destroy(k256_pub);
    atp_key_destroy(p256_pub);
    return t_done();
}
