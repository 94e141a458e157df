/* atp/cid.h: content identifiers. CIDv1 with a multihash; atproto's "blessed" form is
 * version 1, codec dag-cbor (0x71) or raw (0x55), sha2-256 (0x12) with a 32-byte digest:
 * 36 binary bytes, 59 characters as 'b' + base32. Other codecs and hashes are read and kept
 * byte for byte (records may link to them); only blessed CIDs are ever produced.
 *
 * atp_cid is a value type: the binary CID (without the 0x00 multibase byte used in CBOR). */
#ifndef ATP_CID_H
#define ATP_CID_H

#include "atp/buf.h"

#define ATP_CID_MAX 100      /* longest binary CID accepted (Go reference constant) */
#define ATP_CID_STR_MAX 164  /* 'b' + base32 of 100 bytes, plus NUL */
#define ATP_CID_BLESSED_LEN 36
#define ATP_CID_BLESSED_STR_LEN 59

#define ATP_CODEC_DAG_CBOR 0x71
#define ATP_CODEC_RAW      0x55
#define ATP_MH_SHA256      0x12

typedef struct atp_cid {
    uint8_t len;
    uint8_t bytes[ATP_CID_MAX];
} atp_cid;

/* Flags for the parsers. */
enum {
    ATP_CID_BLESSED_ONLY = 1 << 0, /* reject anything but v1 + (0x71|0x55) + sha2-256/32 */
    ATP_CID_ALLOW_V0 = 1 << 1,     /* accept a bare sha2-256 multihash (binary) / "Qm..." */
    ATP_CID_ANY_BASE = 1 << 2,     /* string form: accept any multibase, not only 'b' */
};

/* Decodes a binary CID at the start of `in` (trailing bytes are left for the caller: *used
 * tells how many were read). Version 1 only unless ATP_CID_ALLOW_V0. The multihash digest
 * length must match the bytes present. */
ATP_NODISCARD int atp_cid_decode(atp_slice in, unsigned flags, atp_cid *out, size_t *used,
                                 atp_err *err);

/* Parses the string form ('b' + base32 unless ATP_CID_ANY_BASE); the whole string must be
 * one CID. */
ATP_NODISCARD int atp_cid_parse(atp_slice str, unsigned flags, atp_cid *out, atp_err *err);

/* Writes the string form ('b' + base32) NUL-terminated into dst[cap]; returns its length, or 0
 * if cap is too small. ATP_CID_STR_MAX always suffices. */
size_t atp_cid_format_to(const atp_cid *c, char *dst, size_t cap);
/* Appends the string form to `out`. */
void atp_cid_format(atp_buf *out, const atp_cid *c);

/* CIDv1 sha2-256 of `data` with the given codec (ATP_CODEC_DAG_CBOR or ATP_CODEC_RAW). */
void atp_cid_compute(atp_cid *out, unsigned codec, atp_slice data);

/* True if `data` hashes to `c` (sha2-256 CIDs only; false for any other hash). */
bool atp_cid_matches(const atp_cid *c, atp_slice data);
/* True if the multihash of `c` is sha2-256 with a 32-byte digest (v1 or v0), i.e. if
 * atp_cid_matches can verify it. */
bool atp_cid_is_sha256(const atp_cid *c);

bool atp_cid_eq(const atp_cid *a, const atp_cid *b);
/* Bytewise order of the binary forms. */
int atp_cid_cmp(const atp_cid *a, const atp_cid *b);
bool atp_cid_is_blessed(const atp_cid *c);
/* Codec of a v1 CID (0x70 dag-pb for v0). */
uint64_t atp_cid_codec(const atp_cid *c);
static inline atp_slice atp_cid_slice(const atp_cid *c)
{
    return (atp_slice){c->bytes, c->len};
}

#endif
