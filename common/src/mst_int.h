/* mst_int.h: MST internals shared by mst.c (nodes, decoding, hashing, handles), mst_edit.c
 * (put, delete, bulk build) and mst_read.c (get, list, walk, diff, proof). */
#ifndef ATP_MST_INT_H
#define ATP_MST_INT_H

#include "atp/mst.h"

typedef struct mst_node mst_node;

/* One entry. The full key and then the value CID sit back to back in the owning node's pool:
 * val = key + klen. */
typedef struct mst_ent {
    mst_node *t;        /* subtree after this entry (NULL = null) */
    const uint8_t *key; /* full key (not the compressed suffix) */
    uint32_t klen;
    uint8_t vlen;
} mst_ent;

enum {
    MST_LOADED = 1, /* entries and left are valid (else a stub: only the digest is known) */
    MST_HASHED = 2, /* digest is valid */
    MST_NEW = 4,    /* created since open/create or the last mark_clean: not yet stored */
};

/* Layer of a stub that is an opened root: known only once loaded. */
#define MST_LAYER_ANY 255u

struct mst_node {
    uint32_t refs;
    uint32_t n;    /* entries */
    uint8_t layer;
    uint8_t flags;
    uint8_t digest[32];
    mst_node *left;
    mst_ent *ents;  /* inline after the struct for built nodes, separate for loaded stubs */
    uint8_t *bytes; /* encoded block, kept while MST_NEW and MST_HASHED */
    size_t nbytes;
};

struct atp_mst {
    atp_blockstore *bs;
    atp_mst_limits lim;
    mst_node *root;
    bool bad_root;     /* opened with a CID that cannot be an MST node */
    atp_buf enc;       /* scratch for encoding */
    atp_arena *arena;  /* scratch for blocks copied out of the store */
};

/* Open key range of a subtree: keys strictly between lo and hi; an empty bound is unbounded
 * (keys are never empty). */
typedef struct mst_range {
    atp_slice lo, hi;
} mst_range;

static inline atp_slice atp__mst_key(const mst_ent *e)
{
    return atp_slice_make(e->key, e->klen);
}
static inline atp_slice atp__mst_val(const mst_ent *e)
{
    return atp_slice_make(e->key + e->klen, e->vlen);
}
/* Child in slot i: slot 0 is `left`, slot i > 0 is entry i-1's `t`. */
static inline mst_node *atp__mst_slot(const mst_node *n, size_t i)
{
    return i == 0 ? n->left : n->ents[i - 1].t;
}
/* Range of slot i of a node whose own range is rg. */
mst_range atp__mst_slot_range(const mst_node *n, size_t i, mst_range rg);
/* First entry index whose key is >= key (n->n if none). */
size_t atp__mst_lower_bound(const mst_node *n, atp_slice key);

static inline mst_node *atp__mst_ref(mst_node *n)
{
    if (n) {
        n->refs++;
    }
    return n;
}
void atp__mst_unref(mst_node *n);

/* A built node (refs 1, LOADED|NEW) with room for n entries and `pool` key+value bytes. */
mst_node *atp__mst_node_alloc(unsigned layer, size_t n, size_t pool);
/* Fills entry i, copying key and value into the pool after those of entries 0..i-1 (fill in
 * order). Consumes the reference `t`. */
void atp__mst_node_set(mst_node *nd, size_t i, atp_slice key, atp_slice val, mst_node *t);
/* Pool bytes of entries [from, to) of n. */
size_t atp__mst_pool_size(const mst_node *n, size_t from, size_t to);
/* An empty node at `layer` (the empty tree's root when layer 0). */
mst_node *atp__mst_node_empty(unsigned layer);

/* Loads a stub (no-op if loaded), validating it against the slot's layer and key range. */
int atp__mst_ensure(atp_mst *t, mst_node *n, mst_range rg, atp_err *err);
/* Loads the root (the tree's layer is known afterwards). */
int atp__mst_ensure_root(atp_mst *t, atp_err *err);
/* The node's block bytes: cached for new nodes, else from the store (into t->arena; the caller
 * resets it). The node must be hashed. */
int atp__mst_node_bytes(atp_mst *t, const mst_node *n, atp_slice *out, atp_err *err);
/* Hashes every unhashed node under n (post-order). */
void atp__mst_hash(atp_mst *t, mst_node *n);
void atp__mst_node_cid(const mst_node *n, atp_cid *out);

#endif
