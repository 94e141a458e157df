/* atp/mst.h: the Merkle search tree of a repository (spec repository.md §2): a sorted map of
 * byte keys (repo paths) to CIDs whose shape is a pure function of the key set, each node a
 * DAG-CBOR block {e: [{k,p,t,v}...], l}.
 *
 * A tree handle sits over a blockstore (borrowed) and loads nodes lazily: a node whose block is
 * absent stays an opaque CID until something needs to look inside it, and then the call fails
 * with ATP_ENOTFOUND naming the CID (this is how proofs and firehose slices are checked).
 * Nodes are immutable once hashed; edits copy the path they touch (copy on write), so a
 * handle's dup is cheap and old versions stay valid for diffs. Node CIDs are computed lazily
 * by atp_mst_root(). A handle is not thread-safe; distinct handles may be used on distinct
 * threads if their blockstore allows it.
 *
 * Memory model: nodes are reference-counted, one malloc each (header, entries, then a pool
 * holding every entry's full key and value CID); a node loaded from the store gets its body as
 * a second allocation. Parents, and each handle's root, hold one reference per link; an edit
 * builds new nodes along the touched path and shares the rest, dup shares the root, destroy
 * drops it, and whatever no handle reaches is freed at once. Loading a stub fills it in place,
 * so handles sharing nodes (dups) must stay on one thread. Node CIDs are computed once per node
 * version; a new node keeps its encoded bytes until atp_mst_mark_clean (for
 * atp_mst_each_new_block), loaded nodes keep none (walk/diff/proof re-read them from the store).
 * The "new" mark is on the shared node: mark_clean on one handle also clears it for dups.
 *
 * Keys: repo paths as the reference MST accepts them (atp_mst_key_is_valid), checked by every
 * edit and on every decoded node, at most lim->max_key bytes.
 */
#ifndef ATP_MST_H
#define ATP_MST_H

#include "atp/blockstore.h"
#include "atp/buf.h"
#include "atp/cid.h"

typedef struct atp_mst atp_mst;

/* Bounds for untrusted trees (checked as nodes are loaded). */
typedef struct atp_mst_limits {
    size_t max_key;       /* bytes of a full key (reference: 1024) */
    size_t max_entries;   /* entries of one node */
    uint32_t max_height;  /* layers of the tree */
    size_t max_node;      /* bytes of one node block */
} atp_mst_limits;

/* 1024-byte keys, 4096 entries a node, 128 layers, 1 MiB a node. */
extern const atp_mst_limits atp_mst_limits_default;

/* Layer of a key: leading zero bits of SHA-256(key), divided by 2. */
unsigned atp_mst_key_height(atp_slice key);
/* Bytes shared at the start of a and b. */
size_t atp_mst_common_prefix(atp_slice a, atp_slice b);

/* True for a valid MST key: `collection/rkey`, exactly one '/', neither part empty, "." or
 * "..", characters A-Z a-z 0-9 . - _ ~ : only (spec repository.md §1). Length is checked
 * separately against the limits. */
bool atp_mst_key_is_valid(atp_slice key);

/* ---- handles ---- */

void atp_mst_destroy(atp_mst *t);
/* An empty tree over `bs` (borrowed; must outlive the handle). Owned: destroy. */
atp_mst *atp_mst_create(atp_blockstore *bs, const atp_mst_limits *lim)
    ATP_DEALLOC(atp_mst_destroy);
/* A tree whose root is `root` (nothing is read yet). Owned: destroy. */
atp_mst *atp_mst_open(atp_blockstore *bs, const atp_cid *root, const atp_mst_limits *lim)
    ATP_DEALLOC(atp_mst_destroy);
/* Cheap copy sharing every node; edits to either side don't show in the other. */
atp_mst *atp_mst_dup(const atp_mst *t) ATP_DEALLOC(atp_mst_destroy);

/* ---- reading ---- */

/* Looks `key` up. *found says whether it is present; *out (nullable) gets its value. */
ATP_NODISCARD int atp_mst_get(atp_mst *t, atp_slice key, atp_cid *out, bool *found,
                              atp_err *err);

typedef struct atp_mst_list_opts {
    atp_slice prefix; /* only keys starting with this (empty: all) */
    atp_slice after;  /* strictly after this key (before it when reverse); empty: from the end */
    bool reverse;     /* descending order */
    size_t limit;     /* 0: no limit */
} atp_mst_list_opts;

/* Calls fn for each key in order (key borrowed for the call). A non-zero return from fn stops
 * the walk and is returned. Only the nodes covering the range are loaded. */
ATP_NODISCARD int atp_mst_list(atp_mst *t, const atp_mst_list_opts *opts,
                               int (*fn)(void *ctx, atp_slice key, const atp_cid *val),
                               void *ctx, atp_err *err);

/* ---- editing ---- */

/* Inserts or replaces. *existed (nullable) says whether the key was there; *prev (nullable)
 * gets its old value then. */
ATP_NODISCARD int atp_mst_put(atp_mst *t, atp_slice key, const atp_cid *val, bool *existed,
                              atp_cid *prev, atp_err *err);
/* Removes. *existed / *prev as above; removing an absent key is not an error. */
ATP_NODISCARD int atp_mst_delete(atp_mst *t, atp_slice key, bool *existed, atp_cid *prev,
                                 atp_err *err);

/* Builds a tree from keys sorted strictly ascending (ATP_EINVAL otherwise), in one pass. */
ATP_NODISCARD int atp_mst_build_sorted(atp_blockstore *bs, const atp_mst_limits *lim,
                                       const atp_slice *keys, const atp_cid *vals, size_t n,
                                       atp_mst **out, atp_err *err);

/* ---- hashing and blocks ---- */

/* Encodes every node changed since open/create (or since the last atp_mst_mark_clean) and
 * returns the root CID. The empty tree's root is the node {e:[], l:null}. */
ATP_NODISCARD int atp_mst_root(atp_mst *t, atp_cid *out, atp_err *err);

/* Calls fn with each node block created since open/create or the last mark_clean (computing
 * the root first): what a commit must add to the store. Bytes are borrowed for the call. */
ATP_NODISCARD int atp_mst_each_new_block(atp_mst *t,
                                         int (*fn)(void *ctx, const atp_cid *cid,
                                                   atp_slice bytes),
                                         void *ctx, atp_err *err);
/* Forgets which nodes are new (after they were stored). */
void atp_mst_mark_clean(atp_mst *t);

/* Walks every node (pre-order, streamable export order: node, then l, then each entry's
 * record... callers get records through fn_leaf) loading each from the store and validating the
 * structure as it goes (layers, ordering, prefix compression, no empty non-root node, limits).
 * fn_node gets each node's CID and bytes; fn_leaf (nullable) each key and value in order. A
 * missing node is ATP_ENOTFOUND; a structural violation ATP_EINVAL with the reason. */
ATP_NODISCARD int atp_mst_walk(atp_mst *t,
                               int (*fn_node)(void *ctx, const atp_cid *cid, atp_slice bytes),
                               int (*fn_leaf)(void *ctx, atp_slice key, const atp_cid *val),
                               void *ctx, atp_err *err);

/* ---- diffs and proofs ---- */

typedef enum atp_mst_op_kind {
    ATP_MST_CREATE = 1,
    ATP_MST_UPDATE = 2,
    ATP_MST_DELETE = 3,
} atp_mst_op_kind;

typedef struct atp_mst_op {
    atp_mst_op_kind kind;
    atp_slice key; /* borrowed for the callback */
    atp_cid old;   /* UPDATE, DELETE */
    atp_cid val;   /* CREATE, UPDATE */
} atp_mst_op;

/* Record-level changes from `from` (NULL: the empty tree) to `to`, in key order, skipping
 * subtrees whose CIDs are equal. fn_node (nullable) gets every node of `to` that is not in
 * `from` (the new nodes of a diff CAR). */
ATP_NODISCARD int atp_mst_diff(atp_mst *from, atp_mst *to,
                               int (*fn_op)(void *ctx, const atp_mst_op *op),
                               int (*fn_node)(void *ctx, const atp_cid *cid, atp_slice bytes),
                               void *ctx, atp_err *err);

/* The covering proof of `key` (spec repository.md §6): the nodes on the search path to where
 * the key is or would be, and on the paths to its immediate predecessor and successor keys.
 * Enough to prove presence or absence, and to re-insert or re-remove the key. */
ATP_NODISCARD int atp_mst_proof(atp_mst *t, atp_slice key,
                                int (*fn)(void *ctx, const atp_cid *cid, atp_slice bytes),
                                void *ctx, atp_err *err);

#endif
