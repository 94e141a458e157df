/* mst.c: MST nodes (allocation, reference counts), key rules, the node decoder and validator,
 * the encoder and hashing, and the handle functions. Editing is in mst_edit.c, reading in
 * mst_read.c.
 *
 * Strictness of the decoder: the node is parsed head by head into its logical content, checked
 * (layers, order, ranges, prefix compression, limits), then re-encoded canonically and compared
 * byte for byte with the input. Any non-minimal head, non-maximal prefix compression, extra or
 * misordered field therefore fails, with no separate check that could drift from the encoder. */
#include <stdlib.h>
#include <string.h>

#include "atp/sha256.h"
#include "mst_int.h"

const atp_mst_limits atp_mst_limits_default = {
    .max_key = 1024,
    .max_entries = 4096,
    .max_height = 128,
    .max_node = 1u << 20,
};

/* ---- keys ---- */

unsigned atp_mst_key_height(atp_slice key)
{
    uint8_t h[ATP_SHA256_LEN];
    unsigned zeros = 0;
    atp_sha256(key, h);
    for (size_t i = 0; i < sizeof h; i++) {
        if (h[i] == 0) {
            zeros += 8;
            continue;
        }
        /* Leading zero bits of a non-zero byte. */
        for (uint8_t b = h[i]; !(b & 0x80); b = (uint8_t)(b << 1)) {
            zeros++;
        }
        break;
    }
    return zeros / 2;
}

size_t atp_mst_common_prefix(atp_slice a, atp_slice b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    size_t i = 0;
    while (i < n && a.ptr[i] == b.ptr[i]) {
        i++;
    }
    return i;
}

static bool key_char_ok(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '-' || c == '_' || c == '~' || c == ':';
}

static bool segment_ok(atp_slice s)
{
    if (s.len == 0 || (s.len == 1 && s.ptr[0] == '.') ||
        (s.len == 2 && s.ptr[0] == '.' && s.ptr[1] == '.')) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        if (!key_char_ok(s.ptr[i])) {
            return false;
        }
    }
    return true;
}

bool atp_mst_key_is_valid(atp_slice key)
{
    const uint8_t *slash = key.len ? memchr(key.ptr, '/', key.len) : NULL;
    if (!slash) {
        return false;
    }
    size_t a = (size_t)(slash - key.ptr);
    return segment_ok(atp_slice_make(key.ptr, a)) &&
           segment_ok(atp_slice_make(slash + 1, key.len - a - 1));
}

/* ---- nodes ---- */

mst_range atp__mst_slot_range(const mst_node *n, size_t i, mst_range rg)
{
    mst_range r = rg;
    if (i > 0) {
        r.lo = atp__mst_key(&n->ents[i - 1]);
    }
    if (i < n->n) {
        r.hi = atp__mst_key(&n->ents[i]);
    }
    return r;
}

size_t atp__mst_lower_bound(const mst_node *n, atp_slice key)
{
    size_t lo = 0, hi = n->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (atp_slice_cmp(atp__mst_key(&n->ents[mid]), key) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

void atp__mst_unref(mst_node *n)
{
    if (!n || --n->refs > 0) {
        return;
    }
    if (n->flags & MST_LOADED) {
        atp__mst_unref(n->left);
        for (size_t i = 0; i < n->n; i++) {
            atp__mst_unref(n->ents[i].t);
        }
    }
    if ((void *)n->ents != (void *)(n + 1)) {
        free(n->ents); /* a loaded stub's separate body */
    }
    free(n->bytes);
    free(n);
}

mst_node *atp__mst_node_alloc(unsigned layer, size_t n, size_t pool)
{
    mst_node *nd = atp_xmalloc(sizeof *nd + n * sizeof(mst_ent) + pool);
    memset(nd, 0, sizeof *nd);
    nd->refs = 1;
    nd->n = (uint32_t)n;
    nd->layer = (uint8_t)layer;
    nd->flags = MST_LOADED | MST_NEW;
    nd->ents = (mst_ent *)(nd + 1);
    return nd;
}

void atp__mst_node_set(mst_node *nd, size_t i, atp_slice key, atp_slice val, mst_node *t)
{
    uint8_t *p = (uint8_t *)(nd->ents + nd->n);
    if (i > 0) {
        const mst_ent *prev = &nd->ents[i - 1];
        p += (size_t)(prev->key - p) + prev->klen + prev->vlen;
    }
    memcpy(p, key.ptr, key.len);
    memcpy(p + key.len, val.ptr, val.len);
    nd->ents[i] = (mst_ent){.t = t, .key = p, .klen = (uint32_t)key.len, .vlen = (uint8_t)val.len};
}

size_t atp__mst_pool_size(const mst_node *n, size_t from, size_t to)
{
    size_t s = 0;
    for (size_t i = from; i < to; i++) {
        s += n->ents[i].klen + n->ents[i].vlen;
    }
    return s;
}

mst_node *atp__mst_node_empty(unsigned layer)
{
    return atp__mst_node_alloc(layer, 0, 0);
}

static mst_node *node_stub(const uint8_t digest[32], unsigned layer)
{
    mst_node *nd = atp_xcalloc(1, sizeof *nd);
    nd->refs = 1;
    nd->layer = (uint8_t)layer;
    nd->flags = MST_HASHED;
    memcpy(nd->digest, digest, 32);
    return nd;
}

static const uint8_t cid_prefix[4] = {0x01, ATP_CODEC_DAG_CBOR, ATP_MH_SHA256, 0x20};

void atp__mst_node_cid(const mst_node *n, atp_cid *out)
{
    out->len = ATP_CID_BLESSED_LEN;
    memcpy(out->bytes, cid_prefix, 4);
    memcpy(out->bytes + 4, n->digest, 32);
}

/* ---- encoding ---- */

static uint8_t *put_head(uint8_t *p, unsigned major, uint64_t v)
{
    uint8_t m = (uint8_t)(major << 5);
    int nb = v < 24 ? 0 : v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
    if (nb == 0) {
        *p++ = (uint8_t)(m | v);
        return p;
    }
    *p++ = (uint8_t)(m | (nb == 1 ? 24 : nb == 2 ? 25 : nb == 4 ? 26 : 27));
    for (int i = nb - 1; i >= 0; i--) {
        *p++ = (uint8_t)(v >> (8 * i));
    }
    return p;
}

static uint8_t *put_key1(uint8_t *p, char k)
{
    *p++ = 0x61;
    *p++ = (uint8_t)k;
    return p;
}

static uint8_t *put_node_link(uint8_t *p, const mst_node *c)
{
    if (!c) {
        *p++ = 0xf6;
        return p;
    }
    static const uint8_t head[9] = {0xd8, 0x2a, 0x58, 0x25, 0x00, 0x01, 0x71, 0x12, 0x20};
    memcpy(p, head, sizeof head);
    memcpy(p + sizeof head, c->digest, 32);
    return p + sizeof head + 32;
}

static uint8_t *put_entry(uint8_t *p, const mst_ent *e, const mst_ent *prev)
{
    size_t pre = prev ? atp_mst_common_prefix(atp__mst_key(prev), atp__mst_key(e)) : 0;
    p = put_head(p, 5, 4);
    p = put_key1(p, 'k');
    p = put_head(p, 2, e->klen - pre);
    memcpy(p, e->key + pre, e->klen - pre);
    p += e->klen - pre;
    p = put_key1(p, 'p');
    p = put_head(p, 0, pre);
    p = put_key1(p, 't');
    p = put_node_link(p, e->t);
    p = put_key1(p, 'v');
    *p++ = 0xd8;
    *p++ = 0x2a;
    p = put_head(p, 2, (uint64_t)e->vlen + 1);
    *p++ = 0x00;
    memcpy(p, e->key + e->klen, e->vlen);
    return p + e->vlen;
}

/* Canonical bytes of a loaded node whose children are all hashed, into t->enc. */
static void encode_node(atp_mst *t, const mst_node *n)
{
    size_t cap = 64;
    for (size_t i = 0; i < n->n; i++) {
        cap += 96 + (size_t)n->ents[i].klen + n->ents[i].vlen;
    }
    atp_buf_reset(&t->enc);
    uint8_t *start = atp_buf_reserve(&t->enc, cap);
    if (!start) {
        return; /* t->enc.err is set; callers check it */
    }
    uint8_t *p = put_head(start, 5, 2);
    p = put_key1(p, 'e');
    p = put_head(p, 4, n->n);
    for (size_t i = 0; i < n->n; i++) {
        p = put_entry(p, &n->ents[i], i ? &n->ents[i - 1] : NULL);
    }
    p = put_key1(p, 'l');
    p = put_node_link(p, n->left);
    atp_buf_commit(&t->enc, (size_t)(p - start));
}

void atp__mst_hash(atp_mst *t, mst_node *n)
{
    if (!n || (n->flags & MST_HASHED)) {
        return;
    }
    atp__mst_hash(t, n->left);
    for (size_t i = 0; i < n->n; i++) {
        atp__mst_hash(t, n->ents[i].t);
    }
    encode_node(t, n);
    atp_sha256(atp_buf_slice(&t->enc), n->digest);
    n->flags |= MST_HASHED;
    /* Unhashed nodes are always built ones, so not yet stored: keep the bytes for
     * each_new_block instead of encoding twice. */
    n->nbytes = t->enc.len;
    n->bytes = atp_xmalloc(n->nbytes ? n->nbytes : 1);
    memcpy(n->bytes, t->enc.ptr, n->nbytes);
}

/* ---- decoding ---- */

typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
} rd;

typedef struct tmp_ent {
    atp_slice k, t, v;
    uint64_t p;
} tmp_ent;

static int rd_head(rd *r, unsigned major, uint64_t *arg, atp_err *err)
{
    if (r->pos >= r->len) {
        return atp_err_set(err, ATP_ETRUNC, r->pos, "MST node truncated");
    }
    uint8_t b = r->p[r->pos];
    unsigned ai = b & 31u;
    if ((unsigned)(b >> 5) != major || ai > 27) {
        return atp_err_set(err, ATP_EINVAL, r->pos, "MST node: unexpected CBOR item 0x%02x", b);
    }
    r->pos++;
    uint64_t v = ai;
    if (ai >= 24) {
        size_t nb = (size_t)1 << (ai - 24);
        if (r->len - r->pos < nb) {
            return atp_err_set(err, ATP_ETRUNC, r->pos, "MST node truncated");
        }
        v = 0;
        for (size_t i = 0; i < nb; i++) {
            v = (v << 8) | r->p[r->pos++];
        }
    }
    *arg = v;
    return 0;
}

static int rd_key(rd *r, char k, atp_err *err)
{
    uint64_t n = 0; /* 0 fails the check below should rd_head ever fail without setting it */
    int rc = rd_head(r, 3, &n, err);
    if (rc < 0) {
        return rc;
    }
    if (r->pos >= r->len) {
        return atp_err_set(err, ATP_ETRUNC, r->pos, "MST node truncated");
    }
    if (n != 1 || r->p[r->pos] != (uint8_t)k) {
        return atp_err_set(err, ATP_EINVAL, r->pos, "MST node: expected field \"%c\"", k);
    }
    r->pos += 1;
    return 0;
}

static int rd_bytes(rd *r, size_t max, atp_slice *out, atp_err *err)
{
    uint64_t n = 0;
    int rc = rd_head(r, 2, &n, err);
    if (rc < 0) {
        return rc;
    }
    if (n > r->len - r->pos || n > max) {
        return atp_err_set(err, n > max ? ATP_ELIMIT : ATP_ETRUNC, r->pos,
                           "MST node: byte string too long");
    }
    *out = atp_slice_make(r->p + r->pos, (size_t)n);
    r->pos += (size_t)n;
    return 0;
}

/* A link (tag 42, bytes 0x00 + CID) or, if `nullable`, null (empty *out). */
static int rd_link(rd *r, bool nullable, atp_slice *out, atp_err *err)
{
    uint64_t tag = 0; /* not 42: rejected unless rd_head read a real tag */
    if (nullable && r->pos < r->len && r->p[r->pos] == 0xf6) {
        r->pos++;
        *out = atp_slice_make(NULL, 0);
        return 0;
    }
    int rc = rd_head(r, 6, &tag, err);
    if (rc == 0 && tag != 42) {
        return atp_err_set(err, ATP_EINVAL, r->pos, "MST node: tag %llu, not 42",
                           (unsigned long long)tag);
    }
    if (rc == 0) {
        rc = rd_bytes(r, ATP_CID_MAX + 1, out, err);
    }
    if (rc < 0) {
        return rc;
    }
    if (out->len < 2 || out->ptr[0] != 0x00) {
        return atp_err_set(err, ATP_EINVAL, r->pos, "MST node: malformed link");
    }
    out->ptr++;
    out->len--;
    return 0;
}

static int rd_entry(rd *r, const atp_mst_limits *lim, tmp_ent *e, atp_err *err)
{
    uint64_t n = 0;
    int rc = rd_head(r, 5, &n, err);
    if (rc == 0 && n != 4) {
        rc = atp_err_set(err, ATP_EINVAL, r->pos, "MST entry: %llu fields, not 4",
                         (unsigned long long)n);
    }
    rc = rc ? rc : rd_key(r, 'k', err);
    rc = rc ? rc : rd_bytes(r, lim->max_key, &e->k, err);
    rc = rc ? rc : rd_key(r, 'p', err);
    rc = rc ? rc : rd_head(r, 0, &e->p, err);
    rc = rc ? rc : rd_key(r, 't', err);
    rc = rc ? rc : rd_link(r, true, &e->t, err);
    rc = rc ? rc : rd_key(r, 'v', err);
    rc = rc ? rc : rd_link(r, false, &e->v, err);
    return rc;
}

/* Parses the node's fields; *ents is from t->arena. */
static int parse_node(atp_mst *t, atp_slice in, tmp_ent **ents, size_t *n_out, atp_slice *l,
                      atp_err *err)
{
    rd r = {in.ptr, in.len, 0};
    uint64_t n = 0;
    int rc = rd_head(&r, 5, &n, err);
    if (rc == 0 && n != 2) {
        rc = atp_err_set(err, ATP_EINVAL, 0, "MST node: %llu fields, not 2",
                         (unsigned long long)n);
    }
    rc = rc ? rc : rd_key(&r, 'e', err);
    rc = rc ? rc : rd_head(&r, 4, &n, err);
    if (rc < 0) {
        return rc;
    }
    /* Each entry takes well over one byte: bound the allocation by the input too. */
    if (n > t->lim.max_entries || n > r.len - r.pos) {
        return atp_err_set(err, ATP_ELIMIT, r.pos, "MST node: %llu entries",
                           (unsigned long long)n);
    }
    tmp_ent *e = atp_arena_alloc(t->arena, (size_t)n * sizeof *e + 1);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = rd_entry(&r, &t->lim, &e[i], err);
    }
    rc = rc ? rc : rd_key(&r, 'l', err);
    rc = rc ? rc : rd_link(&r, true, l, err);
    if (rc == 0 && r.pos != r.len) {
        rc = atp_err_set(err, ATP_EINVAL, r.pos, "MST node: trailing bytes");
    }
    if (rc == 0) {
        *ents = e;
        *n_out = (size_t)n;
    }
    return rc;
}

/* Links between nodes must be CIDv1 dag-cbor sha2-256. */
static int check_node_link(atp_slice c, size_t i, atp_err *err)
{
    if (c.len && (c.len != ATP_CID_BLESSED_LEN || memcmp(c.ptr, cid_prefix, 4) != 0)) {
        return atp_err_set(err, ATP_EINVAL, i, "MST node: child link is not a dag-cbor sha2-256 "
                                               "CID");
    }
    return 0;
}

/* Rebuilds full keys, checking prefix compression, key syntax, value CIDs and node links;
 * returns the pool size in *pool. */
static int check_entries(const atp_mst *t, const tmp_ent *e, size_t n, size_t *pool,
                         atp_err *err)
{
    size_t prev_len = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        atp_cid c;
        size_t used;
        if (e[i].p > prev_len) {
            return atp_err_set(err, ATP_EINVAL, i, "MST entry %zu: prefix %llu > previous key",
                               i, (unsigned long long)e[i].p);
        }
        prev_len = (size_t)e[i].p + e[i].k.len;
        if (prev_len > t->lim.max_key) {
            return atp_err_set(err, ATP_ELIMIT, i, "MST entry %zu: key too long", i);
        }
        if (atp_cid_decode(e[i].v, 0, &c, &used, NULL) < 0 || used != e[i].v.len) {
            return atp_err_set(err, ATP_EINVAL, i, "MST entry %zu: bad value CID", i);
        }
        int rc = check_node_link(e[i].t, i, err);
        if (rc < 0) {
            return rc;
        }
        total += prev_len + e[i].v.len;
    }
    *pool = total;
    return 0;
}

/* Copies keys and values into a new body (ents + pool) without child links yet. */
static mst_ent *build_body(const tmp_ent *e, size_t n, size_t pool)
{
    mst_ent *ents = atp_xmalloc(n * sizeof *ents + pool + 1);
    uint8_t *p = (uint8_t *)(ents + n);
    for (size_t i = 0; i < n; i++) {
        size_t pre = (size_t)e[i].p;
        if (pre) {
            memcpy(p, ents[i - 1].key, pre);
        }
        memcpy(p + pre, e[i].k.ptr, e[i].k.len);
        memcpy(p + pre + e[i].k.len, e[i].v.ptr, e[i].v.len);
        ents[i] = (mst_ent){.t = NULL, .key = p, .klen = (uint32_t)(pre + e[i].k.len),
                            .vlen = (uint8_t)e[i].v.len};
        p += pre + e[i].k.len + e[i].v.len;
    }
    return ents;
}

/* Key syntax, order, range and layer of every entry. *layer is MST_LAYER_ANY for a root. */
static int check_keys(const mst_ent *ents, size_t n, mst_range rg, unsigned *layer,
                      atp_err *err)
{
    for (size_t i = 0; i < n; i++) {
        atp_slice k = atp__mst_key(&ents[i]);
        if (!atp_mst_key_is_valid(k)) {
            return atp_err_set(err, ATP_EINVAL, i, "MST entry %zu: invalid key", i);
        }
        if (i > 0 ? atp_slice_cmp(atp__mst_key(&ents[i - 1]), k) >= 0
                  : (rg.lo.len && atp_slice_cmp(rg.lo, k) >= 0)) {
            return atp_err_set(err, ATP_EINVAL, i, "MST entry %zu: key out of order", i);
        }
        unsigned h = atp_mst_key_height(k);
        if (*layer == MST_LAYER_ANY) {
            *layer = h;
        }
        if (h != *layer) {
            return atp_err_set(err, ATP_EINVAL, i, "MST entry %zu: key height %u in layer %u",
                               i, h, *layer);
        }
    }
    if (n && rg.hi.len && atp_slice_cmp(atp__mst_key(&ents[n - 1]), rg.hi) >= 0) {
        return atp_err_set(err, ATP_EINVAL, n - 1, "MST node: key outside its subtree's range");
    }
    return 0;
}

/* Shape rules that depend on the layer: no links below layer 0, no empty non-root node, no
 * untrimmed root, height limit. */
static int check_shape(const atp_mst *t, const tmp_ent *e, size_t n, atp_slice l, bool root,
                       unsigned layer, atp_err *err)
{
    if (layer >= t->lim.max_height) {
        return atp_err_set(err, ATP_ELIMIT, 0, "MST: layer %u over the height limit", layer);
    }
    if (n == 0 && root && l.len) {
        return atp_err_set(err, ATP_EINVAL, 0, "MST root has no entries (top not trimmed)");
    }
    if (n == 0 && !root && !l.len) {
        return atp_err_set(err, ATP_EINVAL, 0, "MST: empty non-root node");
    }
    bool links = l.len != 0;
    for (size_t i = 0; i < n; i++) {
        links = links || e[i].t.len;
    }
    if (layer == 0 && links) {
        return atp_err_set(err, ATP_EINVAL, 0, "MST: layer-0 node with a subtree link");
    }
    return check_node_link(l, 0, err);
}

static void attach_children(mst_node *nd, const tmp_ent *e, atp_slice l)
{
    unsigned below = nd->layer ? nd->layer - 1u : 0u;
    nd->left = l.len ? node_stub(l.ptr + 4, below) : NULL;
    for (size_t i = 0; i < nd->n; i++) {
        nd->ents[i].t = e[i].t.len ? node_stub(e[i].t.ptr + 4, below) : NULL;
    }
}

static void detach_children(mst_node *nd)
{
    atp__mst_unref(nd->left);
    for (size_t i = 0; i < nd->n; i++) {
        atp__mst_unref(nd->ents[i].t);
    }
    free(nd->ents);
    nd->left = NULL;
    nd->ents = NULL;
    nd->n = 0;
}

/* Decodes `in` into the stub `nd` (left a stub on failure). */
static int load_into(atp_mst *t, mst_node *nd, atp_slice in, mst_range rg, atp_err *err)
{
    tmp_ent *e = NULL;
    atp_slice l;
    size_t n = 0, pool = 0;
    unsigned layer = nd->layer;
    bool root = layer == MST_LAYER_ANY;
    int rc = parse_node(t, in, &e, &n, &l, err);
    rc = rc ? rc : check_entries(t, e, n, &pool, err);
    if (rc < 0) {
        return rc;
    }
    mst_ent *ents = build_body(e, n, pool);
    rc = check_keys(ents, n, rg, &layer, err);
    layer = layer == MST_LAYER_ANY ? 0 : layer;
    rc = rc ? rc : check_shape(t, e, n, l, root, layer, err);
    if (rc < 0) {
        free(ents);
        return rc;
    }
    nd->ents = ents;
    nd->n = (uint32_t)n;
    nd->layer = (uint8_t)layer;
    attach_children(nd, e, l);
    encode_node(t, nd);
    if (t->enc.err || !atp_slice_eq(atp_buf_slice(&t->enc), in)) {
        detach_children(nd);
        nd->layer = root ? MST_LAYER_ANY : nd->layer;
        return atp_err_set(err, ATP_EINVAL, 0, "MST node is not in canonical form");
    }
    nd->flags |= MST_LOADED;
    return 0;
}

static int fetch(atp_mst *t, const mst_node *nd, atp_slice *out, atp_err *err)
{
    atp_cid cid;
    atp__mst_node_cid(nd, &cid);
    int rc = atp_blockstore_get(t->bs, &cid, t->arena, out, err);
    if (rc == ATP_ENOTFOUND) {
        char s[ATP_CID_STR_MAX];
        atp_cid_format_to(&cid, s, sizeof s);
        return atp_err_set(err, ATP_ENOTFOUND, 0, "MST node %s not found", s);
    }
    return rc;
}

int atp__mst_ensure(atp_mst *t, mst_node *n, mst_range rg, atp_err *err)
{
    atp_slice in;
    if (n->flags & MST_LOADED) {
        return 0;
    }
    int rc = fetch(t, n, &in, err);
    if (rc == 0 && in.len > t->lim.max_node) {
        rc = atp_err_set(err, ATP_ELIMIT, 0, "MST node of %zu bytes", in.len);
    }
    if (rc == 0) {
        rc = load_into(t, n, in, rg, err);
    }
    atp_arena_reset(t->arena);
    return rc;
}

int atp__mst_ensure_root(atp_mst *t, atp_err *err)
{
    if (t->bad_root) {
        return atp_err_set(err, ATP_EINVAL, 0, "MST root is not a dag-cbor sha2-256 CID");
    }
    mst_range all = {{NULL, 0}, {NULL, 0}};
    return atp__mst_ensure(t, t->root, all, err);
}

int atp__mst_node_bytes(atp_mst *t, const mst_node *n, atp_slice *out, atp_err *err)
{
    if (n->bytes) {
        *out = atp_slice_make(n->bytes, n->nbytes);
        return 0;
    }
    return fetch(t, n, out, err);
}

/* ---- handles ---- */

static atp_mst *handle_new(atp_blockstore *bs, const atp_mst_limits *lim)
{
    atp_mst *t = atp_xcalloc(1, sizeof *t);
    t->bs = bs;
    t->lim = lim ? *lim : atp_mst_limits_default;
    atp_buf_init(&t->enc, ATP_BUF_MAX_DEFAULT);
    t->arena = atp_arena_create(0);
    return t;
}

void atp_mst_destroy(atp_mst *t)
{
    if (!t) {
        return;
    }
    atp__mst_unref(t->root);
    atp_buf_release(&t->enc);
    atp_arena_destroy(t->arena);
    free(t);
}

atp_mst *atp_mst_create(atp_blockstore *bs, const atp_mst_limits *lim)
{
    atp_mst *t = handle_new(bs, lim);
    t->root = atp__mst_node_empty(0);
    return t;
}

atp_mst *atp_mst_open(atp_blockstore *bs, const atp_cid *root, const atp_mst_limits *lim)
{
    atp_mst *t = handle_new(bs, lim);
    static const uint8_t zero[32];
    bool ok = root->len == ATP_CID_BLESSED_LEN && memcmp(root->bytes, cid_prefix, 4) == 0;
    t->bad_root = !ok;
    t->root = node_stub(ok ? root->bytes + 4 : zero, MST_LAYER_ANY);
    return t;
}

atp_mst *atp_mst_dup(const atp_mst *t)
{
    atp_mst *d = handle_new(t->bs, &t->lim);
    d->root = atp__mst_ref(t->root);
    d->bad_root = t->bad_root;
    return d;
}

int atp_mst_root(atp_mst *t, atp_cid *out, atp_err *err)
{
    if (t->bad_root) {
        return atp_err_set(err, ATP_EINVAL, 0, "MST root is not a dag-cbor sha2-256 CID");
    }
    atp__mst_hash(t, t->root);
    if (t->enc.err) {
        return atp_err_set(err, t->enc.err, 0, "MST node too large to encode");
    }
    atp__mst_node_cid(t->root, out);
    return 0;
}

typedef int (*block_fn)(void *ctx, const atp_cid *cid, atp_slice bytes);

static int each_new(mst_node *n, block_fn fn, void *ctx)
{
    if (!n || !(n->flags & MST_NEW)) {
        return 0; /* a stored node has only stored descendants */
    }
    atp_cid cid;
    atp__mst_node_cid(n, &cid);
    int rc = fn(ctx, &cid, atp_slice_make(n->bytes, n->nbytes));
    rc = rc ? rc : each_new(n->left, fn, ctx);
    for (size_t i = 0; i < n->n && rc == 0; i++) {
        rc = each_new(n->ents[i].t, fn, ctx);
    }
    return rc;
}

int atp_mst_each_new_block(atp_mst *t, block_fn fn, void *ctx, atp_err *err)
{
    atp_cid root;
    int rc = atp_mst_root(t, &root, err);
    return rc ? rc : each_new(t->root, fn, ctx);
}

static void clean(mst_node *n)
{
    if (!n || !(n->flags & MST_NEW)) {
        return;
    }
    n->flags &= (uint8_t)~MST_NEW;
    free(n->bytes);
    n->bytes = NULL;
    n->nbytes = 0;
    clean(n->left);
    for (size_t i = 0; i < n->n; i++) {
        clean(n->ents[i].t);
    }
}

void atp_mst_mark_clean(atp_mst *t)
{
    /* Unhashed nodes must keep MST_NEW: they have no bytes yet and are not stored. */
    atp__mst_hash(t, t->root);
    clean(t->root);
}
