/* atp/blockstore.h: content-addressed block storage for repositories, keyed by CID.
 *
 * One interface, several backings: in memory (tests, import/verify of a CAR, firehose slices)
 * and SQLite (one table keyed by the binary CID, with the repo rev that added each block so
 * that "blocks since rev" is one indexed query). The store never checks that bytes hash to the
 * CID on put: callers that take blocks from outside verify first (the CAR reader does).
 */
#ifndef ATP_BLOCKSTORE_H
#define ATP_BLOCKSTORE_H

#include "atp/buf.h"
#include "atp/cid.h"

typedef struct atp_blockstore atp_blockstore;

/* One block for batch writes; data is borrowed for the duration of the call. */
typedef struct atp_block {
    atp_cid cid;
    atp_slice data;
} atp_block;

/* The backing's functions (what a new backing implements). */
typedef struct atp_blockstore_ops {
    /* Copies the block's bytes into `a` (or returns a slice the store guarantees valid until
     * the store is destroyed); ATP_ENOTFOUND if absent. */
    int (*get)(atp_blockstore *bs, const atp_cid *cid, atp_arena *a, atp_slice *out,
               atp_err *err);
    int (*has)(atp_blockstore *bs, const atp_cid *cid, bool *out, atp_err *err);
    /* Stores all blocks atomically (all or none), tagging new ones with `rev` (may be empty).
     * Blocks already present keep their original rev. */
    int (*put_batch)(atp_blockstore *bs, const atp_block *blocks, size_t n, atp_slice rev,
                     atp_err *err);
    /* Calls fn for each block whose rev is > `rev` (TID order); a non-zero return from fn stops
     * the walk and is returned. ATP_EUNSUPPORTED for backings without revs. */
    int (*each_since)(atp_blockstore *bs, atp_slice rev,
                      int (*fn)(void *ctx, const atp_cid *cid, atp_slice data), void *ctx,
                      atp_err *err);
    /* Removes the blocks (missing ones are ignored). */
    int (*remove_batch)(atp_blockstore *bs, const atp_cid *cids, size_t n, atp_err *err);
    void (*destroy)(atp_blockstore *bs);
} atp_blockstore_ops;

/* Every backing's object starts with this header. */
struct atp_blockstore {
    const atp_blockstore_ops *ops;
};

/* ---- calls (thin inline dispatch) ---- */

static inline int atp_blockstore_get(atp_blockstore *bs, const atp_cid *cid, atp_arena *a,
                                     atp_slice *out, atp_err *err)
{
    return bs->ops->get(bs, cid, a, out, err);
}
static inline int atp_blockstore_has(atp_blockstore *bs, const atp_cid *cid, bool *out,
                                     atp_err *err)
{
    return bs->ops->has(bs, cid, out, err);
}
static inline int atp_blockstore_put_batch(atp_blockstore *bs, const atp_block *blocks, size_t n,
                                           atp_slice rev, atp_err *err)
{
    return bs->ops->put_batch(bs, blocks, n, rev, err);
}
static inline int atp_blockstore_put(atp_blockstore *bs, const atp_cid *cid, atp_slice data,
                                     atp_slice rev, atp_err *err)
{
    atp_block b = {*cid, data};
    return bs->ops->put_batch(bs, &b, 1, rev, err);
}
static inline int atp_blockstore_each_since(atp_blockstore *bs, atp_slice rev,
                                            int (*fn)(void *ctx, const atp_cid *cid,
                                                      atp_slice data),
                                            void *ctx, atp_err *err)
{
    return bs->ops->each_since(bs, rev, fn, ctx, err);
}
static inline int atp_blockstore_remove_batch(atp_blockstore *bs, const atp_cid *cids, size_t n,
                                              atp_err *err)
{
    return bs->ops->remove_batch(bs, cids, n, err);
}
/* NULL is a no-op. */
static inline void atp_blockstore_destroy(atp_blockstore *bs)
{
    if (bs) {
        bs->ops->destroy(bs);
    }
}

/* ---- backings ---- */

/* In memory (a hash table; block bytes copied once into the store, in 1 MiB slabs). get()
 * returns slices that stay valid until the store is destroyed or that block is removed (no
 * copy; `a` is unused). each_since visits blocks in insertion order, comparing revs bytewise
 * (TID order), so an empty `rev` visits every block that was given a rev. Revs are at most 255
 * bytes; a block at most 4 GiB. remove_batch frees a big block (over 128 KiB) at once; a small
 * one's slot (its record rounded up to 16 bytes) goes on a free list by size, and a later put
 * of a block of that size, or up to 48 bytes smaller, reuses it before the slabs grow: a store
 * whose blocks come and go at similar sizes stays bounded (slabs themselves are only freed
 * when the store is destroyed). Owned: atp_blockstore_destroy. */
atp_blockstore *atp_blockstore_mem_create(void);
/* Blocks in a memory store, and their total bytes. */
size_t atp_blockstore_mem_count(const atp_blockstore *bs);
size_t atp_blockstore_mem_bytes(const atp_blockstore *bs);
/* Bytes of slab memory a memory store holds (blocks' records, free slots and unused slab
 * tails; not the table): what the store really costs beyond its index. */
size_t atp_blockstore_mem_slab_bytes(const atp_blockstore *bs);
/* True if `bs` is a memory store (NULL: false). */
bool atp_blockstore_is_mem(const atp_blockstore *bs);

/* Marks, for reachability walks over a memory store (e.g. a CAR being imported): marks block
 * `cid` of memory store `bs`; *first is true if it was not marked yet. ATP_ENOTFOUND if the
 * block is not in the store. */
int atp_blockstore_mem_mark(atp_blockstore *bs, const atp_cid *cid, bool *first, atp_err *err);
/* Number of marked blocks in memory store `bs`. */
size_t atp_blockstore_mem_marked(const atp_blockstore *bs);
/* Calls fn for each marked block of memory store `bs`, in insertion order; a non-zero return
 * stops the walk and is returned. */
int atp_blockstore_mem_each_marked(atp_blockstore *bs,
                                   int (*fn)(void *ctx, const atp_cid *cid, atp_slice data),
                                   void *ctx);
/* Hands the marked blocks of memory store `src` over to memory store `dst`, tagging the ones
 * new to `dst` with `rev` (ones already there keep theirs); `src` is left empty. When the
 * marked blocks are most of `src`'s bytes, `dst` takes `src`'s slabs instead of copying (the
 * unmarked blocks, under a quarter of the bytes, then become free slots of `dst`). ATP_EINVAL if
 * either is not a memory store, they are the same, or rev is over 255 bytes; ATP_ELIMIT if
 * `dst` would exceed 2^31 blocks: on error neither store changes. Marks are cleared. */
int atp_blockstore_mem_move_marked(atp_blockstore *dst, atp_blockstore *src, atp_slice rev,
                                   atp_err *err);

#endif
