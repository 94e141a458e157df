/* atp/cbor.h: DAG-CBOR as atproto uses it (DRISL): a strict decoder into a value tree, a
 * canonical encoder from it, and low-level writers for hot paths that build bytes directly.
 *
 * The tree is a value type (fields visible, like cJSON's): consumers walk it a lot. Nodes live
 * in an arena; strings, bytes and links are zero-copy slices into the decoded input, so the
 * input must outlive the tree. Maps are always in canonical key order (length first, then
 * bytewise) with no duplicates: the decoder guarantees it, builders call atp_cbor_map_finish().
 */
#ifndef ATP_CBOR_H
#define ATP_CBOR_H

#include "atp/buf.h"
#include "atp/cid.h"

typedef enum atp_cbor_type {
    ATP_CBOR_NULL,
    ATP_CBOR_BOOL,
    ATP_CBOR_INT,
    ATP_CBOR_STRING,
    ATP_CBOR_BYTES,
    ATP_CBOR_LINK,
    ATP_CBOR_ARRAY,
    ATP_CBOR_MAP,
} atp_cbor_type;

typedef struct atp_cbor atp_cbor;
typedef struct atp_cbor_pair atp_cbor_pair;

struct atp_cbor {
    atp_cbor_type type;
    union {
        bool b;
        int64_t i;
        atp_slice str;  /* STRING (valid UTF-8) and BYTES */
        atp_slice link; /* LINK: the binary CID, without the 0x00 prefix byte */
        struct {
            atp_cbor *items;
            size_t n;
        } arr;
        struct {
            atp_cbor_pair *pairs;
            size_t n;
        } map;
    } u;
};

struct atp_cbor_pair {
    atp_slice key; /* text */
    atp_cbor val;
};

/* Decoder limits. Checked before anything sized by the input is allocated. */
typedef struct atp_cbor_limits {
    size_t max_len;     /* bytes of input */
    uint32_t max_depth; /* nesting of arrays/maps (a scalar at top level is depth 0) */
    size_t max_items;   /* elements of one array or pairs of one map */
    size_t max_key;     /* bytes of one map key */
    size_t max_total;   /* nodes in the whole tree */
} atp_cbor_limits;

/* 5 MiB, depth 32, 131072 items, 8192-byte keys, 1M nodes (spec data-model §2.9). */
extern const atp_cbor_limits atp_cbor_limits_default;

/* Decodes exactly one item spanning all of `in` (trailing bytes are an error). On failure `err`
 * holds the offset and reason; *out is untouched. NULL `lim` means the defaults. Allocates
 * from `a`. */
ATP_NODISCARD int atp_cbor_decode(atp_arena *a, atp_slice in, const atp_cbor_limits *lim,
                                  atp_cbor **out, atp_err *err);

/* Decodes one item at the start of `in` and reports the bytes used (firehose frames hold two
 * items back to back). */
ATP_NODISCARD int atp_cbor_decode_prefix(atp_arena *a, atp_slice in, const atp_cbor_limits *lim,
                                         atp_cbor **out, size_t *used, atp_err *err);

/* Checks that `in` is exactly one valid item under the same rules, without building a tree
 * (no allocation). */
ATP_NODISCARD int atp_cbor_validate(atp_slice in, const atp_cbor_limits *lim, atp_err *err);

/* Appends the canonical encoding of `v`. A map out of canonical order, a duplicate key, or
 * invalid UTF-8 in a string sets out->err = ATP_EINVAL. */
void atp_cbor_encode(atp_buf *out, const atp_cbor *v);

/* ---- reading helpers ---- */

/* Value of `key` in a map (binary search in canonical order), or NULL if absent or `m` is not a
 * map. */
const atp_cbor *atp_cbor_map_get(const atp_cbor *m, atp_slice key);
const atp_cbor *atp_cbor_map_get_str(const atp_cbor *m, const char *key);
/* Link value as a CID; ATP_EINVAL if `v` is not a link or the CID does not parse. */
ATP_NODISCARD int atp_cbor_get_cid(const atp_cbor *v, atp_cid *out);

/* Canonical key order: shorter first, then bytewise. */
int atp_cbor_key_cmp(atp_slice a, atp_slice b);

/* True if `s` is valid UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF, no truncated
 * sequence). The rule the decoder and encoder apply to every string and key; exported for the
 * JSON layer, whose parser does not check. */
bool atp_cbor_is_utf8(atp_slice s);

/* ---- building trees (all nodes from the arena) ---- */

atp_cbor *atp_cbor_new_null(atp_arena *a);
atp_cbor *atp_cbor_new_bool(atp_arena *a, bool b);
atp_cbor *atp_cbor_new_int(atp_arena *a, int64_t i);
/* The slice is borrowed, not copied: keep it alive as long as the tree. */
atp_cbor *atp_cbor_new_string(atp_arena *a, atp_slice s);
atp_cbor *atp_cbor_new_bytes(atp_arena *a, atp_slice s);
/* Copies the CID's bytes into the arena. */
atp_cbor *atp_cbor_new_link(atp_arena *a, const atp_cid *c);
/* Array or map with room for `n` elements, all initialised to null; fill u.arr.items[i] or
 * u.map.pairs[i] directly. */
atp_cbor *atp_cbor_new_array(atp_arena *a, size_t n);
atp_cbor *atp_cbor_new_map(atp_arena *a, size_t n);
/* Sorts a built map's pairs into canonical order; ATP_EINVAL on a duplicate key. */
ATP_NODISCARD int atp_cbor_map_finish(atp_cbor *m, atp_err *err);

/* ---- low-level writers (canonical heads; maps must be written in key order by the caller) ---- */

void atp_cbor_put_head(atp_buf *b, unsigned major, uint64_t arg);
void atp_cbor_put_int(atp_buf *b, int64_t i);
void atp_cbor_put_text(atp_buf *b, atp_slice s);
void atp_cbor_put_cstr(atp_buf *b, const char *s);
void atp_cbor_put_bytes(atp_buf *b, atp_slice s);
void atp_cbor_put_link(atp_buf *b, const atp_cid *c);
void atp_cbor_put_bool(atp_buf *b, bool v);
void atp_cbor_put_null(atp_buf *b);
void atp_cbor_put_array(atp_buf *b, size_t n);
void atp_cbor_put_map(atp_buf *b, size_t n);

#endif
