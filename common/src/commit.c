/* commit.c: v3 commit objects: build, sign, encode, decode strictly, verify. See atp/commit.h.
 *
 * The unsigned and signed encodings come from one emitter writing to a "sink" that either
 * appends to a buffer or feeds SHA-256: hashing for sign/verify then needs no allocation, and
 * the bytes that are signed can never drift from the bytes that are stored. */
#include "atp/commit.h"

#include <string.h>

#include "atp/cbor.h"
#include "atp/sha256.h"
#include "atp/syntax.h"
#include "atp/tid.h"

/* ---- emitter ---- */

typedef struct sink {
    atp_buf *buf;        /* append here when non-NULL */
    atp_sha256_ctx *sha; /* else hash */
} sink;

static void sink_write(sink *s, const void *p, size_t n)
{
    if (s->buf) {
        atp_buf_append(s->buf, p, n);
    } else {
        atp_sha256_update(s->sha, atp_slice_make(p, n));
    }
}

/* A canonical (shortest) CBOR head. */
static void sink_head(sink *s, unsigned major, uint64_t arg)
{
    uint8_t h[9];
    size_t n = 1, width = 0;
    uint8_t m = (uint8_t)(major << 5);
    if (arg < 24) {
        h[0] = (uint8_t)(m | arg);
    } else {
        width = arg <= 0xff ? 1 : arg <= 0xffff ? 2 : arg <= 0xffffffffu ? 4 : 8;
        h[0] = (uint8_t)(m | (width == 1 ? 24 : width == 2 ? 25 : width == 4 ? 26 : 27));
        for (size_t i = 0; i < width; i++) {
            h[1 + i] = (uint8_t)(arg >> (8 * (width - 1 - i)));
        }
        n += width;
    }
    sink_write(s, h, n);
}

static void sink_text(sink *s, atp_slice t)
{
    sink_head(s, 3, t.len);
    sink_write(s, t.ptr, t.len);
}

static void sink_key(sink *s, const char *k)
{
    sink_text(s, atp_slice_str(k));
}

/* Tag 42 over a byte string holding 0x00 (identity multibase) then the binary CID. */
static void sink_link(sink *s, const atp_cid *c)
{
    static const uint8_t zero = 0;
    sink_head(s, 6, 42);
    sink_head(s, 2, (uint64_t)c->len + 1);
    sink_write(s, &zero, 1);
    sink_write(s, c->bytes, c->len);
}

/* Canonical key order: did, rev, sig (3 bytes), data, prev (4), version (7). */
static void emit_commit(sink *s, const atp_commit *c, bool with_sig)
{
    sink_head(s, 5, with_sig ? 6 : 5);
    sink_key(s, "did");
    sink_text(s, c->did);
    sink_key(s, "rev");
    sink_text(s, c->rev);
    if (with_sig) {
        sink_key(s, "sig");
        sink_head(s, 2, ATP_SIG_LEN);
        sink_write(s, c->sig, ATP_SIG_LEN);
    }
    sink_key(s, "data");
    sink_link(s, &c->data);
    sink_key(s, "prev");
    if (c->has_prev) {
        sink_link(s, &c->prev);
    } else {
        sink_head(s, 7, 22); /* null */
    }
    sink_key(s, "version");
    sink_head(s, 0, ATP_COMMIT_VERSION);
}

void atp_commit_hash_unsigned(const atp_commit *c, uint8_t out[ATP_HASH_LEN])
{
    atp_sha256_ctx ctx;
    sink s = {NULL, &ctx};
    atp_sha256_init(&ctx);
    emit_commit(&s, c, false);
    atp_sha256_final(&ctx, out);
}

void atp_commit_encode_unsigned(atp_buf *out, const atp_commit *c)
{
    sink s = {out, NULL};
    emit_commit(&s, c, false);
}

void atp_commit_encode(atp_buf *out, const atp_commit *c)
{
    sink s = {out, NULL};
    emit_commit(&s, c, true);
}

void atp_commit_cid(atp_slice signed_bytes, atp_cid *out)
{
    atp_cid_compute(out, ATP_CODEC_DAG_CBOR, signed_bytes);
}

/* ---- field rules ---- */

static bool is_dagcbor_sha256(const atp_cid *c)
{
    return atp_cid_is_blessed(c) && atp_cid_codec(c) == ATP_CODEC_DAG_CBOR;
}

int atp_commit_check_fields(const atp_commit *c, atp_err *err)
{
    atp_err sub = {0};
    if (atp_syntax_check_did(c->did, &sub) != 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "commit did: %s", sub.msg);
    }
    if (atp_syntax_check_tid(c->rev, &sub) != 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "commit rev: %s", sub.msg);
    }
    if (!is_dagcbor_sha256(&c->data)) {
        return atp_err_set(err, ATP_EINVAL, 0, "commit data is not a dag-cbor sha2-256 CID");
    }
    if (c->has_prev && !is_dagcbor_sha256(&c->prev)) {
        return atp_err_set(err, ATP_EINVAL, 0, "commit prev is not a dag-cbor sha2-256 CID");
    }
    return 0;
}

/* ---- signing and verification ---- */

int atp_commit_sign(atp_commit *c, const atp_key *key, atp_err *err)
{
    uint8_t hash[ATP_HASH_LEN], sig[ATP_SIG_LEN];
    int rc = atp_commit_check_fields(c, err);
    if (rc != 0) {
        return rc;
    }
    atp_commit_hash_unsigned(c, hash);
    rc = atp_key_sign_prehash(key, hash, sig, err);
    if (rc != 0) {
        return rc;
    }
    memcpy(c->sig, sig, sizeof sig);
    return 0;
}

int atp_commit_create(atp_buf *out, atp_slice did, atp_slice rev, const atp_cid *data,
                      const atp_key *key, atp_commit *commit_out, atp_cid *cid_out, atp_err *err)
{
    atp_commit c = {.did = did, .rev = rev, .data = *data, .has_prev = false};
    size_t start = out->len;
    int rc = atp_commit_sign(&c, key, err);
    if (rc != 0) {
        return rc;
    }
    atp_commit_encode(out, &c);
    if (out->err) {
        rc = out->err;
        /* Leave the buffer as it was; the error stays sticky as the buffer contract says. */
        out->len = start;
        return atp_err_set(err, rc, 0, "commit does not fit the output buffer");
    }
    if (cid_out) {
        atp_commit_cid(atp_slice_make(out->ptr + start, out->len - start), cid_out);
    }
    if (commit_out) {
        *commit_out = c;
    }
    return 0;
}

int atp_commit_verify(const atp_commit *c, const atp_key *key, atp_err *err)
{
    uint8_t hash[ATP_HASH_LEN];
    atp_err sub = {0};
    int rc;
    atp_commit_hash_unsigned(c, hash);
    rc = atp_key_verify_prehash(key, hash, atp_slice_make(c->sig, ATP_SIG_LEN), &sub);
    if (rc != 0) {
        return atp_err_set(err, rc, 0, "commit signature: %s", sub.msg);
    }
    return 0;
}

/* ---- decoding ---- */

static const atp_cbor_limits commit_cbor_limits = {
    .max_len = ATP_COMMIT_MAX_BYTES,
    .max_depth = 1,
    .max_items = 8,
    .max_key = 16,
    .max_total = 16,
};

static int get_field(const atp_cbor *m, const char *key, atp_cbor_type type, const atp_cbor **out,
                     atp_err *err)
{
    const atp_cbor *v = atp_cbor_map_get_str(m, key);
    if (!v) {
        return atp_err_set(err, ATP_EINVAL, 0, "commit has no '%s' field", key);
    }
    if (v->type != type) {
        return atp_err_set(err, ATP_EINVAL, 0, "commit field '%s' has the wrong type", key);
    }
    *out = v;
    return 0;
}

static int get_link(const atp_cbor *v, const char *key, atp_cid *out, atp_err *err)
{
    if (atp_cbor_get_cid(v, out) != 0 || !is_dagcbor_sha256(out)) {
        return atp_err_set(err, ATP_EINVAL, 0, "commit field '%s' is not a dag-cbor sha2-256 CID",
                           key);
    }
    return 0;
}

/* Reads the fields out of a decoded map whose shape (six pairs) was checked. */
static int read_fields(const atp_cbor *m, atp_commit *c, atp_err *err)
{
    /* NULL until found: get_field's error path returns atp_err_set()'s code, which the
     * compiler cannot see is non-zero, so every pointer gets a defined value up front. */
    const atp_cbor *did = NULL, *rev = NULL, *sig = NULL, *data = NULL, *prev = NULL,
                   *ver = NULL;
    int rc = get_field(m, "did", ATP_CBOR_STRING, &did, err);
    rc = rc ? rc : get_field(m, "rev", ATP_CBOR_STRING, &rev, err);
    rc = rc ? rc : get_field(m, "sig", ATP_CBOR_BYTES, &sig, err);
    rc = rc ? rc : get_field(m, "data", ATP_CBOR_LINK, &data, err);
    rc = rc ? rc : get_field(m, "version", ATP_CBOR_INT, &ver, err);
    if (rc != 0 || !did || !rev || !sig || !data || !ver) {
        return rc ? rc : ATP_EINTERNAL;
    }
    prev = atp_cbor_map_get_str(m, "prev");
    if (!prev || (prev->type != ATP_CBOR_NULL && prev->type != ATP_CBOR_LINK)) {
        return atp_err_set(err, ATP_EINVAL, 0, "commit 'prev' must be present, null or a link");
    }
    if (ver->u.i != ATP_COMMIT_VERSION) {
        return atp_err_set(err, ATP_EINVAL, 0, "commit version %lld is not 3", (long long)ver->u.i);
    }
    if (sig->u.str.len != ATP_SIG_LEN) {
        return atp_err_set(err, ATP_EINVAL, 0, "commit sig is %zu bytes, not 64", sig->u.str.len);
    }
    c->did = did->u.str;
    c->rev = rev->u.str;
    memcpy(c->sig, sig->u.str.ptr, ATP_SIG_LEN);
    c->has_prev = prev->type == ATP_CBOR_LINK;
    rc = get_link(data, "data", &c->data, err);
    if (rc == 0 && c->has_prev) {
        rc = get_link(prev, "prev", &c->prev, err);
    }
    return rc;
}

int atp_commit_decode(atp_arena *a, atp_slice in, atp_commit *out, atp_err *err)
{
    atp_cbor *m;
    atp_commit c;
    atp_err sub = {0};
    int rc;
    if (in.len > ATP_COMMIT_MAX_BYTES) {
        return atp_err_set(err, ATP_ELIMIT, 0, "commit block of %zu bytes (max %d)", in.len,
                           ATP_COMMIT_MAX_BYTES);
    }
    /* The tight limits reject anything nested or oversized early; to the caller any of
     * those is simply "not a commit". */
    rc = atp_cbor_decode(a, in, &commit_cbor_limits, &m, &sub);
    if (rc != 0) {
        return atp_err_set(err, ATP_EINVAL, sub.off, "commit block: %s", sub.msg);
    }
    if (m->type != ATP_CBOR_MAP) {
        return atp_err_set(err, ATP_EINVAL, 0, "commit is not a map");
    }
    memset(&c, 0, sizeof c);
    rc = read_fields(m, &c, err);
    if (rc == 0 && m->u.map.n != 6) {
        rc = atp_err_set(err, ATP_EINVAL, 0, "commit has %zu fields, not 6 (unknown field)",
                         m->u.map.n);
    }
    rc = rc ? rc : atp_commit_check_fields(&c, err);
    if (rc == 0) {
        *out = c;
    }
    return rc;
}

/* ---- revs ---- */

void atp_commit_next_rev(atp_slice prev_rev, char out[14])
{
    atp_tid_next_after(prev_rev, out);
}

int atp_commit_check_rev(atp_slice rev, atp_slice last_rev, uint64_t now_us, uint64_t max_future_us,
                         atp_err *err)
{
    uint64_t us;
    unsigned clock;
    atp_err sub = {0};
    if (atp_tid_decode(rev, &us, &clock, &sub) != 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "rev: %s", sub.msg);
    }
    if (last_rev.len > 0 && atp_tid_compare(rev, last_rev) <= 0) {
        return atp_err_set(err, ATP_ECONFLICT, 0, "rev %.*s is not after %.*s", (int)rev.len,
                           (const char *)rev.ptr, (int)(last_rev.len > 64 ? 64 : last_rev.len),
                           (const char *)last_rev.ptr);
    }
    if (us > now_us && us - now_us > max_future_us) {
        return atp_err_set(err, ATP_ELIMIT, 0, "rev %.*s is %llu s in the future", (int)rev.len,
                           (const char *)rev.ptr, (unsigned long long)((us - now_us) / 1000000));
    }
    return 0;
}
