/* cid.c: binary and string CIDs. The binary form is kept byte for byte; parsing checks the
 * structure (version, codec, multihash code and digest length) without interpreting codecs, so
 * that records linking to unusual CIDs survive a round trip. Only blessed CIDs are produced. */
#include "atp/cid.h"

#include <string.h>

#include "atp/multibase.h"
#include "atp/sha256.h"
#include "atp/varint.h"

#define CID_V0_LEN 34 /* 0x12 0x20 + 32-byte sha2-256 digest */
/* Longest string accepted with ATP_CID_ANY_BASE: base16 of ATP_CID_MAX bytes plus prefix. */
#define CID_ANY_STR_MAX (2 * ATP_CID_MAX + 1)

static int read_varint(atp_slice in, size_t *pos, uint64_t *v, const char *what, atp_err *err)
{
    size_t used;
    atp_err e;
    int rc = atp_varint_decode(atp_slice_sub(in, *pos, in.len - *pos), 0, v, &used, &e);
    if (rc < 0) {
        return atp_err_set(err, rc, *pos + e.off, "CID %s: %s", what, e.msg);
    }
    *pos += used;
    return 0;
}

static bool is_blessed_parts(uint64_t ver, uint64_t codec, uint64_t hash, uint64_t dlen)
{
    return ver == 1 && (codec == ATP_CODEC_DAG_CBOR || codec == ATP_CODEC_RAW) &&
           hash == ATP_MH_SHA256 && dlen == ATP_SHA256_LEN;
}

/* Reads the multihash (code, digest length, digest) starting at *pos. */
static int read_multihash(atp_slice in, size_t *pos, uint64_t *hash, uint64_t *dlen,
                          atp_err *err)
{
    int rc = read_varint(in, pos, hash, "multihash code", err);
    if (rc == 0) {
        rc = read_varint(in, pos, dlen, "digest length", err);
    }
    if (rc < 0) {
        return rc;
    }
    if (*hash == ATP_MH_SHA256 && *dlen != ATP_SHA256_LEN) {
        return atp_err_set(err, ATP_EINVAL, *pos, "sha2-256 digest length %llu, not 32",
                           (unsigned long long)*dlen);
    }
    if (*dlen > ATP_CID_MAX || *pos + *dlen > ATP_CID_MAX) {
        return atp_err_set(err, ATP_ELIMIT, *pos, "CID longer than %d bytes", ATP_CID_MAX);
    }
    if (in.len - *pos < *dlen) {
        return atp_err_set(err, ATP_ETRUNC, in.len, "CID digest truncated: %llu bytes needed",
                           (unsigned long long)*dlen);
    }
    *pos += (size_t)*dlen;
    return 0;
}

static int decode_v0(atp_slice in, atp_cid *out, size_t *used, atp_err *err)
{
    if (in.len < CID_V0_LEN) {
        return atp_err_set(err, ATP_ETRUNC, in.len, "CIDv0 truncated");
    }
    memcpy(out->bytes, in.ptr, CID_V0_LEN);
    out->len = CID_V0_LEN;
    *used = CID_V0_LEN;
    return 0;
}

int atp_cid_decode(atp_slice in, unsigned flags, atp_cid *out, size_t *used, atp_err *err)
{
    uint64_t ver, codec, hash, dlen;
    size_t pos = 0;
    bool v0 = in.len >= 2 && in.ptr[0] == ATP_MH_SHA256 && in.ptr[1] == ATP_SHA256_LEN;
    if (v0 && (flags & ATP_CID_ALLOW_V0) && !(flags & ATP_CID_BLESSED_ONLY)) {
        return decode_v0(in, out, used, err);
    }
    int rc = read_varint(in, &pos, &ver, "version", err);
    if (rc < 0) {
        return rc;
    }
    if (ver != 1) {
        return atp_err_set(err, ATP_EINVAL, 0, "unsupported CID version %llu",
                           (unsigned long long)ver);
    }
    if ((rc = read_varint(in, &pos, &codec, "codec", err)) < 0 ||
        (rc = read_multihash(in, &pos, &hash, &dlen, err)) < 0) {
        return rc;
    }
    if ((flags & ATP_CID_BLESSED_ONLY) && !is_blessed_parts(ver, codec, hash, dlen)) {
        return atp_err_set(err, ATP_EINVAL, 0,
                           "CID is not v1 dag-cbor/raw sha2-256 (codec 0x%llx, hash 0x%llx)",
                           (unsigned long long)codec, (unsigned long long)hash);
    }
    memcpy(out->bytes, in.ptr, pos);
    out->len = (uint8_t)pos;
    *used = pos;
    return 0;
}

/* Multibase-decodes `str` into bin[ATP_CID_MAX], enforcing the base rules of the flags. */
static int parse_base(atp_slice str, unsigned flags, uint8_t *bin, size_t *n, atp_base *base,
                      atp_err *err)
{
    bool v0 = (flags & ATP_CID_ALLOW_V0) && str.len == 46 && str.ptr[0] == 'Q' &&
              str.ptr[1] == 'm';
    if (str.len == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "empty CID string");
    }
    if (str.len > CID_ANY_STR_MAX) {
        return atp_err_set(err, ATP_ELIMIT, 0, "CID string over %d characters", CID_ANY_STR_MAX);
    }
    if (v0) {
        *base = ATP_BASE58BTC;
        return atp_base_decode(ATP_BASE58BTC, str, bin, ATP_CID_MAX, n, err);
    }
    if (str.ptr[0] != ATP_BASE32 && !(flags & ATP_CID_ANY_BASE)) {
        return atp_err_set(err, ATP_EINVAL, 0, "CID string must start with 'b' (base32)");
    }
    return atp_multibase_decode(str, bin, ATP_CID_MAX, n, base, err);
}

/* The string must be the one canonical spelling of its bytes in its base (lower case, zero
 * trailing bits, no padding), so that parse then format gives the input back. */
static bool is_canonical(atp_slice str, atp_base base, atp_slice bin, bool v0)
{
    uint8_t tmp[CID_ANY_STR_MAX * 2];
    size_t skip = v0 ? 0 : 1;
    size_t n = atp_base_encode_to(base, bin, tmp, sizeof tmp);
    return n == str.len - skip && memcmp(tmp, str.ptr + skip, n) == 0;
}

int atp_cid_parse(atp_slice str, unsigned flags, atp_cid *out, atp_err *err)
{
    uint8_t bin[ATP_CID_MAX];
    size_t n = 0, used;
    atp_base base = ATP_BASE32;
    atp_cid c;
    int rc = parse_base(str, flags, bin, &n, &base, err);
    if (rc < 0) {
        return rc;
    }
    bool v0 = base == ATP_BASE58BTC && str.ptr[0] == 'Q';
    if (!is_canonical(str, base, atp_slice_make(bin, n), v0)) {
        return atp_err_set(err, ATP_EINVAL, 0, "CID string is not in canonical form");
    }
    if (v0 && !(n == CID_V0_LEN && bin[0] == ATP_MH_SHA256 && bin[1] == ATP_SHA256_LEN)) {
        return atp_err_set(err, ATP_EINVAL, 0, "invalid CIDv0");
    }
    unsigned bflags = v0 ? flags : (flags & ~(unsigned)ATP_CID_ALLOW_V0);
    if ((rc = atp_cid_decode(atp_slice_make(bin, n), bflags, &c, &used, err)) < 0) {
        return rc;
    }
    if (used != n) {
        return atp_err_set(err, ATP_EINVAL, 0, "%zu trailing bytes after the CID", n - used);
    }
    *out = c;
    return 0;
}

size_t atp_cid_format_to(const atp_cid *c, char *dst, size_t cap)
{
    size_t need = 1 + atp_base_encoded_max(ATP_BASE32, c->len) + 1;
    if (cap < need || c->len == 0) {
        return 0;
    }
    dst[0] = 'b';
    size_t n = atp_base_encode_to(ATP_BASE32, atp_cid_slice(c), (uint8_t *)dst + 1, cap - 2);
    dst[n + 1] = '\0';
    return n + 1;
}

void atp_cid_format(atp_buf *out, const atp_cid *c)
{
    atp_buf_append_byte(out, 'b');
    atp_base_encode(out, ATP_BASE32, atp_cid_slice(c));
}

void atp_cid_compute(atp_cid *out, unsigned codec, atp_slice data)
{
    size_t n = 0;
    out->bytes[n++] = 1;
    n += atp_varint_encode(codec, out->bytes + n);
    out->bytes[n++] = ATP_MH_SHA256;
    out->bytes[n++] = ATP_SHA256_LEN;
    atp_sha256(data, out->bytes + n);
    out->len = (uint8_t)(n + ATP_SHA256_LEN);
}

/* Offset of a sha2-256 digest in `c`, or 0 if `c` is not a sha2-256 CID. */
static size_t sha256_digest_off(const atp_cid *c)
{
    atp_slice s = atp_cid_slice(c);
    size_t pos = 0;
    uint64_t ver, codec;
    if (c->len == CID_V0_LEN && c->bytes[0] == ATP_MH_SHA256 && c->bytes[1] == ATP_SHA256_LEN) {
        return 2;
    }
    if (read_varint(s, &pos, &ver, "version", NULL) < 0 || ver != 1 ||
        read_varint(s, &pos, &codec, "codec", NULL) < 0) {
        return 0;
    }
    if (c->len != pos + 2 + ATP_SHA256_LEN || c->bytes[pos] != ATP_MH_SHA256 ||
        c->bytes[pos + 1] != ATP_SHA256_LEN) {
        return 0;
    }
    return pos + 2;
}

bool atp_cid_matches(const atp_cid *c, atp_slice data)
{
    uint8_t d[ATP_SHA256_LEN];
    size_t off = sha256_digest_off(c);
    if (off == 0) {
        return false;
    }
    atp_sha256(data, d);
    return memcmp(d, c->bytes + off, ATP_SHA256_LEN) == 0;
}

bool atp_cid_is_sha256(const atp_cid *c)
{
    return sha256_digest_off(c) != 0;
}

bool atp_cid_eq(const atp_cid *a, const atp_cid *b)
{
    return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

int atp_cid_cmp(const atp_cid *a, const atp_cid *b)
{
    return atp_slice_cmp(atp_cid_slice(a), atp_cid_slice(b));
}

bool atp_cid_is_blessed(const atp_cid *c)
{
    return c->len == ATP_CID_BLESSED_LEN && c->bytes[0] == 1 &&
           (c->bytes[1] == ATP_CODEC_DAG_CBOR || c->bytes[1] == ATP_CODEC_RAW) &&
           c->bytes[2] == ATP_MH_SHA256 && c->bytes[3] == ATP_SHA256_LEN;
}

uint64_t atp_cid_codec(const atp_cid *c)
{
    atp_slice s = atp_cid_slice(c);
    size_t pos = 0;
    uint64_t ver, codec;
    if (c->len == CID_V0_LEN && c->bytes[0] == ATP_MH_SHA256) {
        return 0x70; /* CIDv0 is implicitly dag-pb */
    }
    if (read_varint(s, &pos, &ver, "version", NULL) < 0 ||
        read_varint(s, &pos, &codec, "codec", NULL) < 0) {
        return 0;
    }
    return codec;
}
