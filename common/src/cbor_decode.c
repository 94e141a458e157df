/* cbor_decode.c: the strict DAG-CBOR (DRISL) decoder and its validate-only twin.
 *
 * One recursive descent serves both: with an arena it builds the tree, without one it writes
 * every node into a scratch slot on the stack, so the two cannot disagree on what they accept.
 * Recursion is bounded by lim->max_depth, checked before entering each array or map. Every
 * count or length read from the input is checked against the bytes left and the limits before
 * anything sized by it is allocated; containers get one arena block for all their children.
 */
#include "atp/cbor.h"

#include <string.h>

typedef struct dec {
    const uint8_t *p;    /* next byte to read */
    const uint8_t *end;  /* end of the readable window */
    const uint8_t *base; /* start of the input, for error offsets */
    atp_arena *a;        /* NULL: validate only */
    size_t nodes_left;   /* budget from max_total */
    size_t max_items;
    size_t max_key;
    uint32_t max_depth;
    bool clamped; /* the window was cut at max_len: running off it is a limit, not truncation */
    atp_err *err;
} dec;

static int fail(const dec *d, int code, const uint8_t *at, const char *what)
{
    return atp_err_set(d->err, code, (size_t)(at - d->base), "%s", what);
}

static int truncated(const dec *d, const uint8_t *at)
{
    if (d->clamped) {
        return fail(d, ATP_ELIMIT, at, "item runs past the input size limit");
    }
    return fail(d, ATP_ETRUNC, at, "truncated item");
}

/* ---- UTF-8 ---- */

/* A shift-based DFA over UTF-8 (RFC 3629's table of well-formed sequences): each state is a
 * bit offset, and row[byte] holds at that offset the next state. One load and one shift per
 * byte and no branches on the data, so mixed scripts cost no mispredictions. The E0/ED/F0/F4
 * states narrow the second byte, which excludes overlongs, surrogates and values above
 * U+10FFFF. ERROR is 0, so every transition left out of a row goes there and stays. */
enum { U8_ERROR = 0, U8_ACCEPT = 6, U8_C1 = 12, U8_C2 = 18, U8_C3 = 24, U8_E0 = 30,
       U8_ED = 36, U8_F0 = 42, U8_F4 = 48 };

#define U8_T(from, to) ((uint64_t)(to) << (from))
#define U8_ASCII U8_T(U8_ACCEPT, U8_ACCEPT)
#define U8_CONT U8_T(U8_C1, U8_ACCEPT) | U8_T(U8_C2, U8_C1) | U8_T(U8_C3, U8_C2)
#define U8_80 (U8_CONT | U8_T(U8_ED, U8_C1) | U8_T(U8_F4, U8_C2)) /* 80..8F */
#define U8_90 (U8_CONT | U8_T(U8_ED, U8_C1) | U8_T(U8_F0, U8_C2)) /* 90..9F */
#define U8_A0 (U8_CONT | U8_T(U8_E0, U8_C1) | U8_T(U8_F0, U8_C2)) /* A0..BF */
#define U8_LEAD(st) U8_T(U8_ACCEPT, st)
#define R2(x) x, x
#define R4(x) R2(x), R2(x)
#define R8(x) R4(x), R4(x)
#define R16(x) R8(x), R8(x)
#define R32(x) R16(x), R16(x)
#define R64(x) R32(x), R32(x)

static const uint64_t u8_row[256] = {
    R64(U8_ASCII), R64(U8_ASCII),                        /* 00..7F */
    R16(U8_80), R16(U8_90), R32(U8_A0),                  /* 80..BF */
    R2(0),                                               /* C0..C1 */
    R16(U8_LEAD(U8_C1)), R8(U8_LEAD(U8_C1)), R4(U8_LEAD(U8_C1)), R2(U8_LEAD(U8_C1)), /* C2..DF */
    U8_LEAD(U8_E0), R8(U8_LEAD(U8_C2)), R4(U8_LEAD(U8_C2)), /* E0, E1..EC */
    U8_LEAD(U8_ED), R2(U8_LEAD(U8_C2)),                  /* ED, EE..EF */
    U8_LEAD(U8_F0), R2(U8_LEAD(U8_C3)), U8_LEAD(U8_C3), U8_LEAD(U8_F4), /* F0, F1..F3, F4 */
    R8(0), R2(0), 0,                                     /* F5..FF */
};

/* True if the 8-byte word at p is all ASCII. */
static inline bool ascii8(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return (w & 0x8080808080808080ull) == 0;
}

/* One DFA step. The state is kept unmasked: only its low 6 bits are a state, and shifting by
 * (st & 63) compiles to a bare shift on x86-64 and AArch64, which mask the count themselves, so
 * the loop-carried chain is a single shift per byte. */
#define U8_STEP(st, byte) ((st) = u8_row[(byte)] >> ((st) & 63))

static inline bool u8_run(const uint8_t *p, const uint8_t *end, uint64_t st)
{
    while (p < end) {
        U8_STEP(st, *p++);
    }
    return (st & 63) == U8_ACCEPT;
}

/* Validates [p, end), which starts on a character boundary. Mixed-script text switches between
 * ASCII and multi-byte every few characters, so rather than branching on each switch the whole
 * rest goes through the DFA; long enough runs are cut in two at a character boundary and the two
 * halves run as independent chains, which the CPU overlaps. */
static bool u8_rest(const uint8_t *p, const uint8_t *end)
{
    const uint8_t *mid, *q;
    uint64_t a = U8_ACCEPT, b = U8_ACCEPT;
    size_t n = (size_t)(end - p);
    if (n < 32) {
        return u8_run(p, end, U8_ACCEPT);
    }
    mid = p + n / 2;
    /* A character has at most 3 continuation bytes: a 4th in a row is already invalid. */
    for (int k = 0; k < 3 && (*mid & 0xc0) == 0x80; k++) {
        mid++;
    }
    if ((*mid & 0xc0) == 0x80) {
        return false;
    }
    q = mid;
    while (p < mid && q < end) {
        U8_STEP(a, *p++);
        U8_STEP(b, *q++);
    }
    return u8_run(p, mid, a) && u8_run(q, end, b);
}

bool atp_cbor_is_utf8(atp_slice s)
{
    const uint8_t *p = s.ptr, *end;
    if (!p) {
        return s.len == 0;
    }
    end = p + s.len;
    /* Most atproto text is ASCII: skip it eight bytes at a time up to the first other byte. */
    while (end - p >= 8 && ascii8(p)) {
        p += 8;
    }
    while (p < end && *p < 0x80) {
        p++;
    }
    return p == end || u8_rest(p, end);
}

/* ---- heads ---- */

static uint64_t be_read(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* The slow half of head_arg: 1- to 8-byte arguments and the invalid additional infos. */
static int head_arg_long(dec *d, const uint8_t *at, unsigned info, uint64_t *arg)
{
    static const uint64_t min_for[4] = {24, 256, 65536, 0x100000000ull};
    size_t n;
    uint64_t v;
    if (info == 31) {
        return fail(d, ATP_EINVAL, at, "indefinite length or break not allowed");
    }
    if (info > 27) {
        return fail(d, ATP_EINVAL, at, "reserved additional info 28-30");
    }
    n = (size_t)1 << (info - 24);
    if ((size_t)(d->end - d->p) < n) {
        return truncated(d, at);
    }
    v = be_read(d->p, n);
    if (v < min_for[info - 24]) {
        return fail(d, ATP_EINVAL, at, "non-shortest head encoding");
    }
    d->p += n;
    *arg = v;
    return 0;
}

/* Reads the argument that follows an initial byte with additional info `info` (d->p is just
 * past the initial byte at `at`). Rejects indefinite lengths, reserved values and any argument
 * that a shorter head could have carried. Most heads carry their value in the initial byte, so
 * that case is inlined into every caller. */
static inline int head_arg(dec *d, const uint8_t *at, unsigned info, uint64_t *arg)
{
    if (info < 24) {
        *arg = info;
        return 0;
    }
    return head_arg_long(d, at, info, arg);
}

/* ---- items ---- */

static int decode_item(dec *d, atp_cbor *node, uint32_t depth);

static int decode_simple(dec *d, const uint8_t *at, unsigned info, atp_cbor *node)
{
    switch (info) {
    case 20:
    case 21:
        node->type = ATP_CBOR_BOOL;
        node->u.b = info == 21;
        return 0;
    case 22:
        node->type = ATP_CBOR_NULL;
        return 0;
    case 25:
    case 26:
    case 27:
        return fail(d, ATP_EINVAL, at, "floats are not allowed");
    case 31:
        return fail(d, ATP_EINVAL, at, "break outside an indefinite item");
    default:
        return fail(d, ATP_EINVAL, at, "simple value other than false/true/null");
    }
}

/* A string or byte string of `len` bytes at d->p. */
static int decode_span(dec *d, const uint8_t *at, uint64_t len, atp_slice *out)
{
    if (len > (uint64_t)(d->end - d->p)) {
        return truncated(d, at);
    }
    out->ptr = d->p;
    out->len = (size_t)len;
    d->p += len;
    return 0;
}

/* True if every byte is ASCII. Keys and most values are short ASCII: OR-ing the bytes together
 * with no early exit is branch-free and avoids the DFA call, which profiles showed to be half of
 * decode time when taken for every string. `limit` is the end of the readable input: a string
 * of at most 8 bytes with 8 readable bytes at its start is checked with one masked word load. */
static inline bool all_ascii(atp_slice s, const uint8_t *limit)
{
    /* high[8 - len .. 15 - len] is a mask of 0x80 over the first len bytes of a word, in
     * memory order, so this works whatever the byte order. */
    static const uint8_t high[16] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80};
    uint64_t acc = 0, w, m;
    uint8_t tail = 0;
    if (s.len >= 8) {
        /* Whole words, then the last 8 bytes (overlapping): no byte loop for the tail. */
        for (size_t i = 0; i + 8 < s.len; i += 8) {
            memcpy(&w, s.ptr + i, 8);
            acc |= w;
        }
        memcpy(&w, s.ptr + s.len - 8, 8);
        return ((acc | w) & 0x8080808080808080ull) == 0;
    }
    if (limit - s.ptr >= 8) {
        memcpy(&w, s.ptr, 8);
        memcpy(&m, high + 8 - s.len, 8);
        return (w & m) == 0;
    }
    for (size_t i = 0; i < s.len; i++) {
        tail |= s.ptr[i];
    }
    return (tail & 0x80u) == 0;
}

static int decode_text(dec *d, const uint8_t *at, uint64_t len, atp_slice *out)
{
    int rc = decode_span(d, at, len, out);
    if (rc == 0 && !all_ascii(*out, d->end) && !atp_cbor_is_utf8(*out)) {
        return fail(d, ATP_EINVAL, at, "invalid UTF-8 in text string");
    }
    return rc;
}

/* The byte string under tag 42, at d->p. */
static int link_bytes(dec *d, const uint8_t *at, atp_slice *b)
{
    const uint8_t *bat = d->p;
    uint64_t len;
    int rc;
    if (bat >= d->end) {
        return truncated(d, at);
    }
    if ((*bat >> 5) != 2) {
        return fail(d, ATP_EINVAL, bat, "tag 42 must wrap a byte string");
    }
    d->p++;
    rc = head_arg(d, bat, *bat & 31u, &len);
    rc = rc ? rc : decode_span(d, bat, len, b);
    if (rc == 0 && (b->len == 0 || b->ptr[0] != 0)) {
        return fail(d, ATP_EINVAL, bat, "CID link lacks the 0x00 prefix");
    }
    return rc;
}

/* Tag 42 over a byte string holding 0x00 then a binary CID that decodes exactly. Other codecs
 * and hashes are kept: records may link to them. */
static int decode_link(dec *d, const uint8_t *at, uint64_t tag, atp_cbor *node)
{
    atp_slice b;
    atp_cid cid;
    atp_err cerr;
    size_t used = 0;
    int rc;
    if (tag != 42) {
        return fail(d, ATP_EINVAL, at, "tag other than 42");
    }
    rc = link_bytes(d, at, &b);
    if (rc) {
        return rc;
    }
    b = atp_slice_make(b.ptr + 1, b.len - 1);
    if (atp_cid_decode(b, 0, &cid, &used, &cerr) != 0) {
        return atp_err_set(d->err, ATP_EINVAL, (size_t)(at + 2 - d->base),
                           "invalid CID in link: %s", cerr.msg);
    }
    if (used != b.len) {
        return fail(d, ATP_EINVAL, at + 2, "trailing bytes after the CID in a link");
    }
    node->type = ATP_CBOR_LINK;
    node->u.link = b;
    return 0;
}

/* Checks a container's count against the limits and the bytes left (each element takes at
 * least `min_bytes`), then charges it to the node budget. */
static int check_count(dec *d, const uint8_t *at, uint64_t n, size_t min_bytes, uint32_t depth)
{
    if (depth >= d->max_depth) {
        return fail(d, ATP_EDEPTH, at, "nesting deeper than max_depth");
    }
    if (n > d->max_items) {
        return fail(d, ATP_ELIMIT, at, "more elements than max_items");
    }
    if (n > (uint64_t)(d->end - d->p) / min_bytes) {
        return truncated(d, at);
    }
    if (n > d->nodes_left) {
        return fail(d, ATP_ELIMIT, at, "more nodes than max_total");
    }
    d->nodes_left -= (size_t)n;
    return 0;
}

static int decode_array(dec *d, const uint8_t *at, uint64_t n, atp_cbor *node, uint32_t depth)
{
    atp_cbor scratch;
    atp_cbor *items = NULL;
    int rc = check_count(d, at, n, 1, depth);
    if (rc) {
        return rc;
    }
    if (d->a && n) {
        items = atp_arena_alloc(d->a, (size_t)n * sizeof *items);
    }
    for (size_t i = 0; i < (size_t)n; i++) {
        rc = decode_item(d, items ? &items[i] : &scratch, depth + 1);
        if (rc) {
            return rc;
        }
    }
    node->type = ATP_CBOR_ARRAY;
    node->u.arr.items = items;
    node->u.arr.n = (size_t)n;
    return 0;
}

/* A map key: a text string no longer than max_key, strictly after `prev` in canonical order. */
static int decode_key(dec *d, const atp_slice *prev, atp_slice *key)
{
    const uint8_t *at = d->p;
    uint64_t len;
    int rc;
    if (d->p >= d->end) {
        return truncated(d, at);
    }
    if ((*at >> 5) != 3) {
        return fail(d, ATP_EINVAL, at, "map key is not a text string");
    }
    d->p++;
    rc = head_arg(d, at, *at & 31u, &len);
    if (rc == 0 && len > d->max_key) {
        return fail(d, ATP_ELIMIT, at, "map key longer than max_key");
    }
    rc = rc ? rc : decode_text(d, at, len, key);
    /* Canonical order is length first: bytes are compared only between keys of equal length. */
    if (rc == 0 && prev && prev->len >= key->len) {
        int c = prev->len > key->len ? 1 : memcmp(prev->ptr, key->ptr, key->len);
        if (c >= 0) {
            return fail(d, ATP_EINVAL, at, c == 0 ? "duplicate map key" : "map keys out of order");
        }
    }
    return rc;
}

static int decode_map(dec *d, const uint8_t *at, uint64_t n, atp_cbor *node, uint32_t depth)
{
    atp_cbor_pair scratch[2];
    atp_cbor_pair *pairs = NULL;
    int rc = check_count(d, at, n, 2, depth);
    if (rc) {
        return rc;
    }
    if (d->a && n) {
        pairs = atp_arena_alloc(d->a, (size_t)n * sizeof *pairs);
    }
    for (size_t i = 0; i < (size_t)n; i++) {
        /* Without a tree, alternate two scratch pairs so the previous key stays readable. */
        atp_cbor_pair *pr = pairs ? &pairs[i] : &scratch[i & 1];
        const atp_cbor_pair *prev = i == 0 ? NULL : pairs ? &pairs[i - 1] : &scratch[(i - 1) & 1];
        rc = decode_key(d, prev ? &prev->key : NULL, &pr->key);
        rc = rc ? rc : decode_item(d, &pr->val, depth + 1);
        if (rc) {
            return rc;
        }
    }
    node->type = ATP_CBOR_MAP;
    node->u.map.pairs = pairs;
    node->u.map.n = (size_t)n;
    return 0;
}

static int decode_int(dec *d, const uint8_t *at, unsigned major, uint64_t arg, atp_cbor *node)
{
    if (arg > (uint64_t)INT64_MAX) {
        return fail(d, ATP_EINVAL, at, "integer outside the int64 range");
    }
    node->type = ATP_CBOR_INT;
    /* Major 1 carries -1 - n; with n <= INT64_MAX the result is at least INT64_MIN. */
    node->u.i = major == 0 ? (int64_t)arg : -1 - (int64_t)arg;
    return 0;
}

static int decode_item(dec *d, atp_cbor *node, uint32_t depth)
{
    const uint8_t *at = d->p;
    unsigned major, info;
    uint64_t arg;
    int rc;
    if (at >= d->end) {
        return truncated(d, at);
    }
    major = *at >> 5;
    info = *at & 31u;
    d->p++;
    if (major == 7) {
        return decode_simple(d, at, info, node);
    }
    rc = head_arg(d, at, info, &arg);
    if (rc) {
        return rc;
    }
    switch (major) {
    case 0:
    case 1:
        return decode_int(d, at, major, arg, node);
    case 2:
        node->type = ATP_CBOR_BYTES;
        return decode_span(d, at, arg, &node->u.str);
    case 3:
        node->type = ATP_CBOR_STRING;
        return decode_text(d, at, arg, &node->u.str);
    case 4:
        return decode_array(d, at, arg, node, depth);
    case 5:
        return decode_map(d, at, arg, node, depth);
    default:
        return decode_link(d, at, arg, node);
    }
}

/* ---- entry points ---- */

static void dec_init(dec *d, atp_arena *a, atp_slice in, const atp_cbor_limits *lim, atp_err *err)
{
    static const uint8_t empty[1];
    if (!lim) {
        lim = &atp_cbor_limits_default;
    }
    if (!in.ptr) {
        /* Pointer arithmetic on NULL is undefined even with a zero offset. */
        in = atp_slice_make(empty, 0);
    }
    d->base = in.ptr;
    d->p = in.ptr;
    d->clamped = in.len > lim->max_len;
    d->end = in.ptr + (d->clamped ? lim->max_len : in.len);
    d->a = a;
    /* The root is a node too: one less for the rest of the tree. */
    d->nodes_left = lim->max_total ? lim->max_total - 1 : 0;
    d->max_items = lim->max_items;
    d->max_key = lim->max_key;
    d->max_depth = lim->max_depth;
    d->err = err;
}

/* Runs the decoder over one item; `node` receives it. */
static int run(dec *d, atp_cbor *node, size_t *used)
{
    int rc = decode_item(d, node, 0);
    if (rc == 0) {
        *used = (size_t)(d->p - d->base);
    }
    return rc;
}

int atp_cbor_decode_prefix(atp_arena *a, atp_slice in, const atp_cbor_limits *lim,
                           atp_cbor **out, size_t *used, atp_err *err)
{
    dec d;
    size_t n = 0;
    atp_cbor *root = atp_arena_alloc(a, sizeof *root);
    int rc;
    dec_init(&d, a, in, lim, err);
    rc = run(&d, root, &n);
    if (rc == 0) {
        *out = root;
        *used = n;
    }
    return rc;
}

int atp_cbor_decode(atp_arena *a, atp_slice in, const atp_cbor_limits *lim, atp_cbor **out,
                    atp_err *err)
{
    const atp_cbor_limits *l = lim ? lim : &atp_cbor_limits_default;
    atp_cbor *root;
    size_t used = 0;
    int rc;
    if (in.len > l->max_len) {
        return atp_err_set(err, ATP_ELIMIT, 0, "input of %zu bytes is over max_len %zu", in.len,
                           l->max_len);
    }
    rc = atp_cbor_decode_prefix(a, in, l, &root, &used, err);
    if (rc == 0 && used != in.len) {
        return atp_err_set(err, ATP_EINVAL, used, "trailing bytes after the item");
    }
    if (rc == 0) {
        *out = root;
    }
    return rc;
}

int atp_cbor_validate(atp_slice in, const atp_cbor_limits *lim, atp_err *err)
{
    const atp_cbor_limits *l = lim ? lim : &atp_cbor_limits_default;
    dec d;
    atp_cbor scratch;
    size_t used = 0;
    int rc;
    if (in.len > l->max_len) {
        return atp_err_set(err, ATP_ELIMIT, 0, "input of %zu bytes is over max_len %zu", in.len,
                           l->max_len);
    }
    dec_init(&d, NULL, in, l, err);
    rc = run(&d, &scratch, &used);
    if (rc == 0 && used != in.len) {
        return atp_err_set(err, ATP_EINVAL, used, "trailing bytes after the item");
    }
    return rc;
}
