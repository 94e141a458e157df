/* jwt.c: compact JWS (JWT) signing and strict verification for ES256K, ES256 and HS256. */
#include "atp/jwt.h"

#include <math.h>
#include <string.h>

#include <openssl/crypto.h>

#include "atp/multibase.h"
#include "atp/sha256.h"

#define HS256_LEN 32

/* The three base64url segments of a token and where each starts (for error offsets). */
typedef struct jwt_parts {
    atp_slice seg[3];
    size_t off[3];
    atp_slice signing_input; /* header "." payload: the bytes the signature covers */
} jwt_parts;

/* ---- keys and options ---- */

const char *atp_jwt_key_alg(const atp_jwt_key *key)
{
    if (key->key && key->secret.len == 0) {
        return atp_curve_jwt_alg(atp_key_curve(key->key));
    }
    if (!key->key && key->secret.len > 0 && key->secret.ptr) {
        return "HS256";
    }
    return NULL;
}

void atp_jwt_verify_opts_init(atp_jwt_verify_opts *o, int64_t now)
{
    memset(o, 0, sizeof *o);
    o->now = now;
    o->leeway = ATP_JWT_LEEWAY_DEFAULT;
    o->iat_skew = ATP_JWT_IAT_SKEW_DEFAULT;
}

static atp_jwt_limits lim_resolve(const atp_jwt_limits *lim)
{
    atp_jwt_limits l = {ATP_JWT_MAX_LEN_DEFAULT, ATP_JWT_MAX_DEPTH_DEFAULT,
                        ATP_JWT_MAX_ITEMS_DEFAULT};
    if (lim && lim->max_len) {
        l.max_len = lim->max_len;
    }
    if (lim && lim->max_depth > 0) {
        l.max_depth = lim->max_depth;
    }
    if (lim && lim->max_items > 0) {
        l.max_items = lim->max_items;
    }
    return l;
}

/* ---- splitting and base64url ---- */

static int split(atp_slice t, size_t max_len, jwt_parts *p, atp_err *err)
{
    size_t dots[2], nd = 0;
    if (t.len > max_len) {
        return atp_err_set(err, ATP_ETOKEN, 0, "token too long (%zu > %zu bytes)", t.len, max_len);
    }
    for (size_t i = 0; i < t.len; i++) {
        if (t.ptr[i] != '.') {
            continue;
        }
        if (nd == 2) {
            return atp_err_set(err, ATP_ETOKEN, i, "token has more than 3 segments");
        }
        dots[nd++] = i;
    }
    if (nd != 2) {
        return atp_err_set(err, ATP_ETOKEN, 0, "token must have 3 dot-separated segments");
    }
    p->off[0] = 0;
    p->off[1] = dots[0] + 1;
    p->off[2] = dots[1] + 1;
    p->seg[0] = atp_slice_sub(t, 0, dots[0]);
    p->seg[1] = atp_slice_sub(t, p->off[1], dots[1] - p->off[1]);
    p->seg[2] = atp_slice_sub(t, p->off[2], t.len - p->off[2]);
    p->signing_input = atp_slice_sub(t, 0, dots[1]);
    for (int i = 0; i < 3; i++) {
        if (p->seg[i].len == 0) {
            return atp_err_set(err, ATP_ETOKEN, p->off[i], "empty token segment");
        }
    }
    return 0;
}

static unsigned b64url_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z') {
        return (unsigned)(c - 'A');
    }
    if (c >= 'a' && c <= 'z') {
        return (unsigned)(c - 'a') + 26;
    }
    if (c >= '0' && c <= '9') {
        return (unsigned)(c - '0') + 52;
    }
    return c == '-' ? 62 : 63;
}

/* base64url as JWS requires it: no padding, and unused trailing bits zero, so that each value
 * has exactly one encoding (the shared decoder is lenient on both for other formats). */
static int b64url_strict(atp_slice in, size_t off, uint8_t *dst, size_t cap, size_t *n,
                         atp_err *err)
{
    atp_err sub;
    const void *pad = memchr(in.ptr, '=', in.len);
    if (pad) {
        return atp_err_set(err, ATP_ETOKEN, off + (size_t)((const uint8_t *)pad - in.ptr),
                           "padding is not allowed in a JWT");
    }
    if (atp_base_decode(ATP_BASE64URL, in, dst, cap, n, &sub) != 0) {
        return atp_err_set(err, ATP_ETOKEN, off + sub.off, "bad base64url: %s", sub.msg);
    }
    unsigned spare = (unsigned)((in.len * 6 - *n * 8) & 7);
    if (b64url_value(in.ptr[in.len - 1]) & ((1u << spare) - 1)) {
        return atp_err_set(err, ATP_ETOKEN, off + in.len - 1, "non-canonical base64url tail");
    }
    return 0;
}

/* ---- bounded JSON ---- */

/* One pass before cJSON: nesting depth (brackets outside strings, an upper bound of the real
 * depth), raw control characters and NULs, and the \u0000 escape, which cJSON would turn into
 * a C string silently cut short (an "aud" of "did:x\u0000y" must not compare equal to
 * "did:x"). */
static int json_prescan(const uint8_t *p, size_t n, int max_depth)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c < 0x20 && (in_str || c == 0)) {
            return -1;
        }
        if (in_str) {
            if (c == '\\') {
                if (n - i > 5 && memcmp(p + i + 1, "u0000", 5) == 0) {
                    return -1;
                }
                i++;
            } else if (c == '"') {
                in_str = false;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth) {
                return -1;
            }
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return 0;
}

/* Object with at most max_items members and no duplicate names (a verifier and an
 * application reading different copies of "aud" is a classic confusion). */
static bool members_ok(const cJSON *o, int max_items)
{
    int count = 0;
    for (const cJSON *a = o->child; a; a = a->next) {
        if (++count > max_items) {
            return false;
        }
        for (const cJSON *b = a->next; b; b = b->next) {
            if (strcmp(a->string, b->string) == 0) {
                return false;
            }
        }
    }
    return true;
}

static cJSON *json_parse_exact(const uint8_t *p, size_t n)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts((const char *)p, n, &end, false);
    if (!j) {
        return NULL;
    }
    while (end < (const char *)p + n &&
           (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) {
        end++;
    }
    if (end != (const char *)p + n) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static int parse_object(const uint8_t *p, size_t n, size_t off, const atp_jwt_limits *l,
                        const char *what, cJSON **out, atp_err *err)
{
    if (json_prescan(p, n, l->max_depth) != 0) {
        return atp_err_set(err, ATP_ETOKEN, off,
                           "%s JSON too deep or has control characters or \\u0000", what);
    }
    cJSON *j = json_parse_exact(p, n);
    if (!j) {
        return atp_err_set(err, ATP_ETOKEN, off, "%s is not valid JSON", what);
    }
    if (!cJSON_IsObject(j) || !members_ok(j, l->max_items)) {
        cJSON_Delete(j);
        return atp_err_set(err, ATP_ETOKEN, off,
                           "%s must be a JSON object of at most %d distinct members", what,
                           l->max_items);
    }
    *out = j;
    return 0;
}

/* Decodes segment i of the token and parses it as a JSON object. */
static int decode_segment(const jwt_parts *pt, int i, const atp_jwt_limits *l, cJSON **out,
                          atp_err *err)
{
    const char *what = i == 0 ? "header" : "payload";
    size_t cap = atp_base_decoded_max(ATP_BASE64URL, pt->seg[i].len) + 1, n = 0;
    uint8_t *buf = atp_xmalloc(cap);
    int rc = b64url_strict(pt->seg[i], pt->off[i], buf, cap, &n, err);
    if (rc == 0) {
        rc = parse_object(buf, n, pt->off[i], l, what, out, err);
    }
    free(buf);
    return rc;
}

/* ---- signatures ---- */

/* HMAC-SHA256 (RFC 2104) over the low-level SHA-256 (atp/sha256.h): OpenSSL 3's one-shot
 * HMAC() fetches the algorithm from its provider on every call, which made it most of a
 * token check's cost on the pds write path (about 2.5 % of the server's samples at c16). */
enum { HMAC_BLOCK = 64 };

static int hs256(atp_slice secret, atp_slice msg, uint8_t mac[HS256_LEN])
{
    uint8_t k[HMAC_BLOCK] = {0}, pad[HMAC_BLOCK], inner[HS256_LEN];
    if (secret.len > HMAC_BLOCK) {
        atp_sha256(secret, k); /* a longer key is replaced by its hash */
    } else if (secret.len > 0) {
        memcpy(k, secret.ptr, secret.len);
    }
    atp_sha256_ctx c;
    for (size_t i = 0; i < HMAC_BLOCK; i++) {
        pad[i] = k[i] ^ 0x36;
    }
    atp_sha256_init(&c);
    atp_sha256_update(&c, atp_slice_make(pad, HMAC_BLOCK));
    atp_sha256_update(&c, msg);
    atp_sha256_final(&c, inner);
    for (size_t i = 0; i < HMAC_BLOCK; i++) {
        pad[i] = k[i] ^ 0x5c;
    }
    atp_sha256_init(&c);
    atp_sha256_update(&c, atp_slice_make(pad, HMAC_BLOCK));
    atp_sha256_update(&c, atp_slice_make(inner, HS256_LEN));
    atp_sha256_final(&c, mac);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(&c, sizeof c);
    return 0;
}

static int sign_input(const atp_jwt_key *key, atp_slice in, uint8_t sig[ATP_SIG_LEN], size_t *n,
                      atp_err *err)
{
    if (key->key) {
        *n = ATP_SIG_LEN;
        return atp_key_sign(key->key, in, sig, err);
    }
    *n = HS256_LEN;
    int rc = hs256(key->secret, in, sig);
    return rc ? atp_err_set(err, rc, 0, "HMAC-SHA256 failed") : 0;
}

static int check_sig(const jwt_parts *pt, const atp_jwt_verify_opts *o, atp_err *err)
{
    uint8_t sig[ATP_SIG_LEN + 1], mac[HS256_LEN];
    size_t n = 0, want = o->key.key ? ATP_SIG_LEN : HS256_LEN;
    int rc = b64url_strict(pt->seg[2], pt->off[2], sig, sizeof sig, &n, err);
    if (rc != 0) {
        return rc;
    }
    if (n != want) {
        return atp_err_set(err, ATP_ETOKEN, pt->off[2], "signature must be %zu bytes, got %zu",
                           want, n);
    }
    if (o->key.key) {
        atp_err sub;
        uint8_t hash[ATP_HASH_LEN];
        atp_sha256(pt->signing_input, hash);
        unsigned flags = o->allow_high_s ? ATP_SIG_ALLOW_HIGH_S : 0;
        if (atp_key_verify_prehash_ex(o->key.key, hash, atp_slice_make(sig, n), flags, &sub)) {
            return atp_err_set(err, ATP_ETOKEN, pt->off[2], "bad signature: %s", sub.msg);
        }
        return 0;
    }
    if (hs256(o->key.secret, pt->signing_input, mac) != 0) {
        return atp_err_set(err, ATP_ETOKEN, 0, "HMAC-SHA256 failed");
    }
    if (CRYPTO_memcmp(mac, sig, HS256_LEN) != 0) {
        return atp_err_set(err, ATP_ETOKEN, pt->off[2], "bad signature: HMAC mismatch");
    }
    return 0;
}

/* ---- header and claims ---- */

static const char *str_member(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int check_header(const cJSON *h, const atp_jwt_verify_opts *o, atp_err *err)
{
    const char *alg = str_member(h, "alg");
    const char *want = atp_jwt_key_alg(&o->key);
    if (!alg) {
        return atp_err_set(err, ATP_ETOKEN, 0, "header has no string \"alg\"");
    }
    if (strcmp(alg, "none") == 0) {
        return atp_err_set(err, ATP_ETOKEN, 0, "alg \"none\" is not accepted");
    }
    if (strcmp(alg, want) != 0) {
        return atp_err_set(err, ATP_ETOKEN, 0, "token alg does not match the key (expected %s)",
                           want);
    }
    if (cJSON_GetObjectItemCaseSensitive(h, "crit")) {
        return atp_err_set(err, ATP_ETOKEN, 0, "critical header extensions are not supported");
    }
    if (o->typ) {
        const char *typ = str_member(h, "typ");
        if (!typ || strcmp(typ, o->typ) != 0) {
            return atp_err_set(err, ATP_ETOKEN, 0, "token typ is not \"%s\"", o->typ);
        }
    }
    return 0;
}

/* Reads an optional NumericDate claim: 1 present (value in *v), 0 absent, <0 malformed. */
static int time_claim(const cJSON *c, const char *name, double *v, atp_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(c, name);
    if (!j) {
        return 0;
    }
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) {
        return atp_err_set(err, ATP_ETOKEN, 0, "claim \"%s\" must be a number", name);
    }
    *v = j->valuedouble;
    return 1;
}

static int check_times(const cJSON *c, const atp_jwt_verify_opts *o, atp_err *err)
{
    double exp = 0, nbf = 0, iat = 0, now = (double)o->now;
    int has_exp = time_claim(c, "exp", &exp, err);
    int has_nbf = has_exp < 0 ? 0 : time_claim(c, "nbf", &nbf, err);
    int has_iat = has_exp < 0 || has_nbf < 0 ? 0 : time_claim(c, "iat", &iat, err);
    if (has_exp < 0 || has_nbf < 0 || has_iat < 0) {
        return ATP_ETOKEN;
    }
    if (!has_exp && !o->exp_optional) {
        return atp_err_set(err, ATP_ETOKEN, 0, "token has no \"exp\" claim");
    }
    if (has_exp && now >= exp + (double)o->leeway) {
        return atp_err_set(err, ATP_EEXPIRED, 0, "token has expired");
    }
    if (has_nbf && nbf > now + (double)o->leeway) {
        return atp_err_set(err, ATP_ETOKEN, 0, "token is not valid yet (nbf in the future)");
    }
    if (has_iat && iat > now + (double)o->iat_skew) {
        return atp_err_set(err, ATP_ETOKEN, 0, "token issued in the future (iat)");
    }
    return 0;
}

static int check_claims(const cJSON *c, const atp_jwt_verify_opts *o, atp_err *err)
{
    int rc = check_times(c, o, err);
    if (rc != 0) {
        return rc;
    }
    if (o->aud) {
        const char *aud = str_member(c, "aud");
        if (!aud || (strcmp(aud, o->aud) != 0 && (!o->aud_alt || strcmp(aud, o->aud_alt) != 0))) {
            return atp_err_set(err, ATP_ETOKEN, 0, "token audience is not \"%s\"", o->aud);
        }
    }
    if (o->lxm) {
        const char *lxm = str_member(c, "lxm");
        if (!lxm || strcmp(lxm, o->lxm) != 0) {
            return atp_err_set(err, ATP_ETOKEN, 0, "token lxm is not \"%s\"", o->lxm);
        }
    }
    return 0;
}

/* ---- public entry points ---- */

int atp_jwt_verify(atp_slice token, const atp_jwt_verify_opts *o, const atp_jwt_limits *lim,
                   cJSON **claims, atp_err *err)
{
    atp_jwt_limits l = lim_resolve(lim);
    jwt_parts pt;
    cJSON *hdr = NULL, *pay = NULL;
    if (!atp_jwt_key_alg(&o->key)) {
        return atp_err_set(err, ATP_EINVAL, 0, "give exactly one of an EC key or a secret");
    }
    /* Header first (it names the alg), then the signature, and only then the claims: nothing
     * from an unauthenticated payload is looked at. */
    int rc = split(token, l.max_len, &pt, err);
    if (rc == 0) {
        rc = decode_segment(&pt, 0, &l, &hdr, err);
    }
    if (rc == 0) {
        rc = check_header(hdr, o, err);
    }
    if (rc == 0) {
        rc = check_sig(&pt, o, err);
    }
    if (rc == 0) {
        rc = decode_segment(&pt, 1, &l, &pay, err);
    }
    if (rc == 0) {
        rc = check_claims(pay, o, err);
    }
    cJSON_Delete(hdr);
    if (rc == 0 && claims) {
        *claims = pay;
        pay = NULL;
    }
    cJSON_Delete(pay);
    return rc;
}

static char *header_json(const char *typ, const char *alg)
{
    cJSON *h = cJSON_CreateObject();
    char *s = NULL;
    if (h && cJSON_AddStringToObject(h, "typ", typ) && cJSON_AddStringToObject(h, "alg", alg)) {
        s = cJSON_PrintUnformatted(h);
    }
    cJSON_Delete(h);
    return s;
}

static void append_b64url(atp_buf *out, const char *s)
{
    atp_base_encode(out, ATP_BASE64URL, atp_slice_str(s));
}

/* Appends header "." payload "." signature; the caller rolls back on error. */
static int sign_into(atp_buf *out, size_t start, const atp_jwt_key *key, const char *hdr,
                     const char *pay, atp_err *err)
{
    uint8_t sig[ATP_SIG_LEN];
    size_t n = 0;
    append_b64url(out, hdr);
    atp_buf_append_byte(out, '.');
    append_b64url(out, pay);
    if (out->err) {
        return atp_err_set(err, out->err, 0, "token does not fit in the output buffer");
    }
    int rc = sign_input(key, atp_slice_make(out->ptr + start, out->len - start), sig, &n, err);
    if (rc != 0) {
        return rc;
    }
    atp_buf_append_byte(out, '.');
    atp_base_encode(out, ATP_BASE64URL, atp_slice_make(sig, n));
    if (out->err) {
        return atp_err_set(err, out->err, 0, "token does not fit in the output buffer");
    }
    return 0;
}

int atp_jwt_sign(atp_buf *out, const atp_jwt_key *key, const char *typ, const cJSON *claims,
                 atp_err *err)
{
    const char *alg = atp_jwt_key_alg(key);
    if (!alg) {
        return atp_err_set(err, ATP_EINVAL, 0, "give exactly one of an EC key or a secret");
    }
    if (!cJSON_IsObject(claims)) {
        return atp_err_set(err, ATP_EINVAL, 0, "claims must be a JSON object");
    }
    if (key->key && !atp_key_has_private(key->key)) {
        return atp_err_set(err, ATP_EKEY, 0, "cannot sign with a public-only key");
    }
    if (out->err) {
        return atp_err_set(err, out->err, 0, "output buffer already in error");
    }
    char *hdr = header_json(typ ? typ : "JWT", alg);
    char *pay = cJSON_PrintUnformatted(claims);
    size_t start = out->len;
    int rc = hdr && pay ? sign_into(out, start, key, hdr, pay, err)
                        : atp_err_set(err, ATP_EINTERNAL, 0, "cJSON could not print");
    if (rc != 0) {
        out->len = start;
    }
    cJSON_free(hdr);
    cJSON_free(pay);
    return rc;
}

int atp_jwt_decode_unverified(atp_slice token, const atp_jwt_limits *lim, cJSON **header,
                              cJSON **payload, atp_err *err)
{
    atp_jwt_limits l = lim_resolve(lim);
    jwt_parts pt;
    cJSON *hdr = NULL, *pay = NULL;
    int rc = split(token, l.max_len, &pt, err);
    if (rc == 0) {
        rc = decode_segment(&pt, 0, &l, &hdr, err);
    }
    if (rc == 0) {
        rc = decode_segment(&pt, 1, &l, &pay, err);
    }
    if (rc == 0 && header) {
        *header = hdr;
        hdr = NULL;
    }
    if (rc == 0 && payload) {
        *payload = pay;
        pay = NULL;
    }
    cJSON_Delete(hdr);
    cJSON_Delete(pay);
    return rc;
}

int atp_jwt_unverified_iss(atp_slice token, const atp_jwt_limits *lim, atp_buf *out, atp_err *err)
{
    cJSON *pay = NULL;
    int rc = atp_jwt_decode_unverified(token, lim, NULL, &pay, err);
    if (rc != 0) {
        return rc;
    }
    const char *iss = str_member(pay, "iss");
    if (!iss) {
        rc = atp_err_set(err, ATP_ETOKEN, 0, "token has no string \"iss\"");
    } else {
        size_t start = out->len;
        atp_buf_append_str(out, iss);
        if (out->err) {
            out->len = start;
            rc = atp_err_set(err, out->err, 0, "iss does not fit in the output buffer");
        }
    }
    cJSON_Delete(pay);
    return rc;
}
