/* fuzz_mst.c: MST node decoding and validation on hostile blocks.
 *
 * Input: first byte selects the mode.
 *   even: the rest is one node block, stored under its real CID and opened as a root.
 *   odd:  the rest is a list of frames [36-byte CID][2-byte big-endian length][block]; each
 *         block is stored under the CID as given (so links between mutated blocks still
 *         resolve) and the first frame's CID is the root.
 * Invariants when the walk accepts the tree: leaves come strictly ascending; get finds each
 * with its value; list returns the same sequence; a bulk rebuild from the leaves walks to the
 * same leaves; and when every block matches its CID, the rebuild has the same root CID, its
 * blocks are byte-identical to the input's, and inserting then deleting a key restores it. */
#include <stdlib.h>
#include <string.h>

#include "atp/mst.h"

typedef struct leaves {
    atp_slice *keys;
    uint8_t **copies; /* owned key bytes behind keys[] */
    atp_cid *vals;
    size_t n, cap;
    size_t pos;     /* for list comparison */
    bool all_match; /* every node block hashes to its CID */
} leaves;

static int on_leaf(void *ctx, atp_slice key, const atp_cid *val)
{
    leaves *l = ctx;
    if (l->n && atp_slice_cmp(l->keys[l->n - 1], key) >= 0) {
        abort(); /* the walk accepted out-of-order keys */
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->keys = atp_xrealloc(l->keys, l->cap * sizeof *l->keys);
        l->copies = atp_xrealloc(l->copies, l->cap * sizeof *l->copies);
        l->vals = atp_xrealloc(l->vals, l->cap * sizeof *l->vals);
    }
    uint8_t *copy = atp_xmalloc(key.len + 1);
    memcpy(copy, key.ptr, key.len);
    l->copies[l->n] = copy;
    l->keys[l->n] = atp_slice_make(copy, key.len);
    l->vals[l->n++] = *val;
    return 0;
}

static int on_list(void *ctx, atp_slice key, const atp_cid *val)
{
    leaves *l = ctx;
    if (l->pos >= l->n || !atp_slice_eq(l->keys[l->pos], key) ||
        !atp_cid_eq(&l->vals[l->pos], val)) {
        abort();
    }
    l->pos++;
    return 0;
}

static int on_node(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    leaves *l = ctx;
    l->all_match = l->all_match && atp_cid_matches(cid, bytes);
    return 0;
}

/* Every block of the rebuilt tree must already be in the store, byte for byte. */
static int same_block(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    atp_slice have;
    if (atp_blockstore_get((atp_blockstore *)ctx, cid, NULL, &have, NULL) < 0 ||
        !atp_slice_eq(have, bytes)) {
        abort();
    }
    return 0;
}

static void check_lookups(atp_mst *t, leaves *l)
{
    for (size_t i = 0; i < l->n; i++) {
        atp_cid v;
        bool found = false;
        if (atp_mst_get(t, l->keys[i], &v, &found, NULL) < 0 || !found ||
            !atp_cid_eq(&v, &l->vals[i])) {
            abort();
        }
    }
    l->pos = 0;
    if (atp_mst_list(t, NULL, on_list, l, NULL) < 0 || l->pos != l->n) {
        abort();
    }
}

static void check_edit_roundtrip(atp_mst *t, const atp_cid *root)
{
    atp_cid v, r;
    bool existed = true;
    atp_cid_compute(&v, ATP_CODEC_DAG_CBOR, atp_slice_str("fuzz"));
    atp_slice key = ATP_SLICE_LIT("zz.fuzz.probe/key");
    if (atp_mst_get(t, key, NULL, &existed, NULL) < 0 || existed) {
        return;
    }
    if (atp_mst_put(t, key, &v, NULL, NULL, NULL) < 0 ||
        atp_mst_delete(t, key, &existed, NULL, NULL) < 0 || !existed ||
        atp_mst_root(t, &r, NULL) < 0 || !atp_cid_eq(&r, root)) {
        abort();
    }
}

static void check_tree(atp_blockstore *bs, const atp_cid *root)
{
    leaves l = {.all_match = true};
    atp_mst *t = atp_mst_open(bs, root, NULL);
    if (atp_mst_walk(t, on_node, on_leaf, &l, NULL) == 0) {
        check_lookups(t, &l);
        atp_mst *b = NULL;
        if (atp_mst_build_sorted(bs, NULL, l.keys, l.vals, l.n, &b, NULL) < 0) {
            abort(); /* accepted keys must be buildable */
        }
        atp_cid rb;
        if (atp_mst_root(b, &rb, NULL) < 0) {
            abort();
        }
        if (l.all_match) {
            if (!atp_cid_eq(&rb, root) || atp_mst_each_new_block(b, same_block, bs, NULL) < 0) {
                abort();
            }
            check_edit_roundtrip(t, root);
        }
        atp_mst_destroy(b);
    }
    for (size_t i = 0; i < l.n; i++) {
        free(l.copies[i]);
    }
    free(l.copies);
    free(l.keys);
    free(l.vals);
    atp_mst_destroy(t);
}

static void load_frames(atp_blockstore *bs, const uint8_t *p, size_t n, atp_cid *root,
                        bool *have_root)
{
    while (n >= ATP_CID_BLESSED_LEN + 2) {
        atp_cid c;
        c.len = ATP_CID_BLESSED_LEN;
        memcpy(c.bytes, p, ATP_CID_BLESSED_LEN);
        size_t len = (size_t)p[36] << 8 | p[37];
        p += 38;
        n -= 38;
        len = len < n ? len : n;
        (void)atp_blockstore_put(bs, &c, atp_slice_make(p, len), ATP_SLICE_LIT(""), NULL);
        if (!*have_root) {
            *root = c;
            *have_root = true;
        }
        p += len;
        n -= len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20)) {
        return 0;
    }
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_cid root;
    bool have_root = false;
    if (data[0] & 1) {
        load_frames(bs, data + 1, size - 1, &root, &have_root);
    } else {
        atp_slice in = atp_slice_make(data + 1, size - 1);
        atp_cid_compute(&root, ATP_CODEC_DAG_CBOR, in);
        have_root = atp_blockstore_put(bs, &root, in, ATP_SLICE_LIT(""), NULL) == 0;
    }
    if (have_root) {
        check_tree(bs, &root);
    }
    atp_blockstore_destroy(bs);
    return 0;
}
