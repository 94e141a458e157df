/* atp/repo.h: the repository layer (spec repository.md): records in an MST under signed v3
 * commits, over a block store. Five parts, one source file each:
 *
 *   repo.c         the handle, record reads, batches of writes -> a new signed commit with
 *                  everything a firehose #commit needs (ops, prevData, blocks, proof nodes)
 *   repo_export.c  the full repo as a CAR in streamable order; the blocks since a rev
 *   repo_import.c  a CAR (streamed in) fully verified, its reachable blocks stored
 *   repo_proof.c   record proofs (com.atproto.sync.getRecord CARs) and their verification
 *   repo_invert.c  sync v1.1 "inductive" verification of a #commit by operation inversion
 *
 * Paths are "<collection NSID>/<record key>" (atp_repo_check_path); MST keys are their bytes.
 * Records are DAG-CBOR maps of at most ATP_REPO_MAX_RECORD bytes. Errors carry the reason in
 * `err`; where a write or an op is at fault, err->off is its index.
 */
#ifndef ATP_REPO_H
#define ATP_REPO_H

#include "atp/blockstore.h"
#include "atp/buf.h"
#include "atp/car.h"
#include "atp/cbor.h"
#include "atp/cid.h"
#include "atp/commit.h"
#include "atp/crypto.h"
#include "atp/mst.h"

#define ATP_REPO_MAX_WRITES 200        /* writes of one commit (and ops of one #commit) */
#define ATP_REPO_MAX_RECORD (1u << 20) /* bytes of one record block */
#define ATP_REPO_MAX_PATH   1024       /* bytes of a path (the reference MST key limit) */

typedef enum atp_repo_action {
    ATP_REPO_CREATE = 1,
    ATP_REPO_UPDATE = 2,
    ATP_REPO_DELETE = 3,
} atp_repo_action;

/* "create" / "update" / "delete" ("?" for anything else). */
const char *atp_repo_action_name(atp_repo_action a);
/* The reverse of atp_repo_action_name; ATP_EINVAL for anything else. */
ATP_NODISCARD int atp_repo_action_parse(atp_slice s, atp_repo_action *out);

/* A repo path: at most ATP_REPO_MAX_PATH bytes, exactly one '/', a valid NSID before it and a
 * valid record key after it. ATP_EINVAL with the reason. */
ATP_NODISCARD int atp_repo_check_path(atp_slice path, atp_err *err);

/* ---- the handle ---- */

typedef struct atp_repo atp_repo;

/* NULL is a no-op. The block store and key stay the caller's. */
void atp_repo_destroy(atp_repo *r);

/* A repo with no commit yet (the first atp_repo_apply makes one, since = null, no prevData)
 * for `did` (copied; must be a valid DID) over `bs` (borrowed: outlives the handle), signing
 * with `key` (borrowed; nullable for a read-only handle). NULL `lim`: atp_mst_limits_default.
 * *out is owned: atp_repo_destroy. Errors: ATP_EINVAL (DID). */
ATP_NODISCARD int atp_repo_create(atp_blockstore *bs, atp_slice did, const atp_key *key,
                                  const atp_mst_limits *lim, atp_repo **out, atp_err *err);

/* The repo whose current commit is `head`, read from `bs` and decoded (its signature is not
 * re-checked: the store is trusted). Other arguments as atp_repo_create. Errors: ATP_ENOTFOUND
 * (no such block), ATP_EINVAL (not a commit), ATP_EIO. */
ATP_NODISCARD int atp_repo_open(atp_blockstore *bs, const atp_cid *head, const atp_key *key,
                                const atp_mst_limits *lim, atp_repo **out, atp_err *err);

/* Replaces the signing key (after a rotation the next commit, even an empty one, must be signed
 * with the new key). Borrowed. */
void atp_repo_set_key(atp_repo *r, const atp_key *key);

/* Accessors. did: borrowed for the handle's life. rev: "" before the first commit, else the
 * current commit's rev (borrowed until the next accepted commit). head: NULL before the first
 * commit. data: the current MST root (the empty tree's root before any record). */
atp_slice atp_repo_did(const atp_repo *r);
atp_slice atp_repo_rev(const atp_repo *r);
const atp_cid *atp_repo_head(const atp_repo *r);
const atp_cid *atp_repo_data(const atp_repo *r);
atp_blockstore *atp_repo_store(const atp_repo *r);
/* The current tree, for listing (atp_mst_list). Borrowed; do not edit it. */
atp_mst *atp_repo_tree(atp_repo *r);

/* Looks a record up. *found says whether `path` exists; then *cid (nullable) gets its CID and
 * *bytes (nullable) its DAG-CBOR, copied into `a` or borrowed from a memory store. Errors:
 * ATP_ENOTFOUND if the tree names a block the store lacks, ATP_EIO. */
ATP_NODISCARD int atp_repo_get(atp_repo *r, atp_slice path, atp_arena *a, atp_cid *cid,
                               atp_slice *bytes, bool *found, atp_err *err);

/* ---- writes ---- */

/* One write of a batch. For create/update the record is `record` (a tree, encoded here) or,
 * when `record` is NULL, `record_bytes` (DAG-CBOR, checked: one valid item, a map). `swap`
 * (nullable) is a compare-and-swap: the path's current record CID must equal it (update and
 * delete only). */
typedef struct atp_repo_write {
    atp_repo_action action;
    atp_slice path;
    const atp_cbor *record;
    atp_slice record_bytes;
    const atp_cid *swap;
} atp_repo_write;

/* One record operation of a commit, as a firehose repoOp carries it. */
typedef struct atp_repo_op {
    atp_repo_action action;
    atp_slice path;
    bool has_cid; /* create, update: the new record CID */
    atp_cid cid;
    bool has_prev; /* update, delete: the previous record CID */
    atp_cid prev;
} atp_repo_op;

/* What atp_repo_apply produces: a new signed commit and all that a #commit event needs. All
 * memory is from the arena given to apply. */
typedef struct atp_repo_commit {
    atp_cid cid;        /* the new commit's CID */
    atp_slice bytes;    /* its signed bytes (also blocks[0]) */
    char rev[14];       /* the new rev (TID) */
    char since[14];     /* the previous rev, "" for the first commit (since: null) */
    bool has_prev_data; /* false for the first commit */
    atp_cid prev_data;  /* the previous MST root */
    atp_cid data;       /* the new MST root */
    atp_repo_op *ops;   /* one per write, in the writes' order */
    size_t n_ops;
    atp_block *blocks; /* new blocks: the commit, new MST nodes, new/updated records */
    size_t n_blocks;
    atp_block *proof; /* unchanged MST nodes of the new tree needed to invert the ops
                       * (spec §6 "proof nodes for inversion"); already in the store */
    size_t n_proof;
    /* Garbage (spec §7: the PDS keeps only the current tree). `removed`: blocks this commit
     * makes unreachable for certain: the previous commit and every MST node of the previous
     * tree that is not in the new one; never a block of `blocks` or `proof`. */
    atp_cid *removed;
    size_t n_removed;
    /* Record blocks that may have become unreachable: the previous CIDs of updated and deleted
     * records, less those this commit writes again. Not certain: identical records share one
     * block, so another path of the new tree may still map to one of them. Proving that needs
     * a record index (a PDS has one: "is any path still at this CID?") or a scan of the tree
     * (atp_repo_unused_records); the repo layer keeps neither, so these are left to the
     * caller, and atp_repo_apply_store does not remove them. */
    atp_cid *removed_records_maybe;
    size_t n_removed_records_maybe;
} atp_repo_commit;

/* Applies up to ATP_REPO_MAX_WRITES writes at once (zero makes an empty commit, as after a key
 * rotation) and signs the result with rev = atp_commit_next_rev(current rev). Nothing is
 * written to the store and the handle does not move: the caller stores out->blocks (one
 * put_batch tagged with out->rev, possibly inside its own transaction), removes out->removed
 * (and the records of out->removed_records_maybe no path uses any more), and then calls
 * atp_repo_accept. Garbage collection assumes that no record's bytes equal an MST node of the
 * same repo (a record is a map, and so is a node): such a record would lose its block when the
 * node leaves the tree. A later apply without accept discards this one. Errors (err->off = index
 * of the write at fault): ATP_EINVAL (bad path, bad record, duplicate path, swap on a create,
 * create of an existing path), ATP_ENOTFOUND (update/delete of an absent path), ATP_ECONFLICT
 * (swap mismatch), ATP_ELIMIT (too many writes, record too big), ATP_EKEY (no signing key),
 * and store errors. */
ATP_NODISCARD int atp_repo_apply(atp_repo *r, const atp_repo_write *writes, size_t n, atp_arena *a,
                                 atp_repo_commit *out, atp_err *err);

/* atp_repo_apply for a commit that was already made and signed (a redo from a stored event):
 * the writes give the new tree as with atp_repo_apply, and `signed_commit` (its bytes, copied)
 * becomes the commit instead of one signed here, so the result (CID, blocks, removed) is the
 * original commit's. The handle needs no key. ATP_EINVAL if the bytes are not a valid commit of
 * this repo's DID over exactly the resulting tree with a rev after the current one; otherwise
 * the errors of atp_repo_apply. Accept it as any applied commit. */
ATP_NODISCARD int atp_repo_apply_signed(atp_repo *r, const atp_repo_write *writes, size_t n,
                                        atp_slice signed_commit, atp_arena *a,
                                        atp_repo_commit *out, atp_err *err);

/* Moves the handle to the commit made by the last atp_repo_apply (`c`), once its blocks are
 * stored. ATP_EINVAL if `c` is not that pending commit. */
ATP_NODISCARD int atp_repo_accept(atp_repo *r, const atp_repo_commit *c, atp_err *err);

/* apply, then put_batch(out->blocks, out->rev), then remove_batch(out->removed), then accept:
 * the whole write path. The new blocks go in before anything is removed, so a failure or a
 * crash between the two leaves only unreachable extra blocks, never a missing one. Record
 * blocks (out->removed_records_maybe) stay: the caller resolves them (see above). On an error
 * the handle is unchanged; the store is unchanged too unless remove_batch failed after
 * put_batch succeeded (then it holds the new commit's blocks as garbage).
 * Transactions: the store runs put_batch and remove_batch atomically each, not together, and
 * the head the caller persists is outside the store. A caller that persists the head (a PDS)
 * must wrap this call and its head update in one transaction of its own (SQLite backing:
 * BEGIN ... COMMIT on the store's connection; both batches then run as savepoints inside it):
 * otherwise a crash after remove_batch but before the head is saved leaves the saved head
 * pointing at removed blocks. */
ATP_NODISCARD int atp_repo_apply_store(atp_repo *r, const atp_repo_write *writes, size_t n,
                                       atp_arena *a, atp_repo_commit *out, atp_err *err);

/* For callers without a record index: which of the `n` record CIDs `cids` (e.g. a commit's
 * removed_records_maybe, once it is accepted) no path of the current tree maps to any more.
 * Scans every leaf of the current tree (loading all its nodes): O(records), so not per commit
 * on a large repo. *out (arena) and *n_out get them, deduplicated, in the order given; they
 * can then go to remove_batch. Errors: ATP_ENOTFOUND (a node is missing), ATP_EIO. */
ATP_NODISCARD int atp_repo_unused_records(atp_repo *r, const atp_cid *cids, size_t n,
                                          atp_arena *a, atp_cid **out, size_t *n_out,
                                          atp_err *err);

/* Writes the #commit `blocks` CAR of a commit: root = c->cid, then c->blocks and c->proof. */
ATP_NODISCARD int atp_repo_commit_car(const atp_repo_commit *c, atp_car_writer *w, atp_err *err);

/* ---- export (repo_export.c) ---- */

/* The whole repo as a CAR through `w`: root = head, the commit, then MST nodes in pre-order
 * with each record after the entry that holds it (the streamable order of spec §4), so that a
 * large repo streams. Reads the store as it goes (a scratch arena, reset per record, holds
 * copies from stores that copy). ATP_ENOTFOUND if the repo has no commit or a block is
 * missing; writer errors as returned by the writer. */
ATP_NODISCARD int atp_repo_export(atp_repo *r, atp_car_writer *w, atp_err *err);

/* The blocks written after `since` (a rev) as a CAR with root = head, in rev order (the
 * store's each_since). An empty `since` means the full export above. ATP_EUNSUPPORTED for
 * stores without revs. */
ATP_NODISCARD int atp_repo_export_since(atp_repo *r, atp_slice since, atp_car_writer *w,
                                        atp_err *err);

/* ---- import (repo_import.c) ---- */

typedef struct atp_repo_import_opts {
    const atp_key *key;            /* the commit must verify with it; NULL: not checked */
    atp_slice did;                 /* the commit's did must equal it; empty: not checked */
    const atp_car_limits *car;     /* NULL: atp_car_limits_default */
    const atp_mst_limits *mst;     /* NULL: atp_mst_limits_default */
    const atp_cbor_limits *record; /* NULL: atp_cbor_limits_default with max_len 1 MiB */
} atp_repo_import_opts;

/* What an import found. `commit.did`/`commit.rev` point into the arena given to finish. */
typedef struct atp_repo_info {
    atp_cid head;      /* the commit's CID (roots[0]) */
    atp_commit commit; /* decoded, signature checked when a key was given */
    size_t n_records;  /* paths in the tree */
    size_t n_nodes;    /* MST nodes */
    size_t n_blocks;   /* distinct blocks stored (commit + nodes + distinct records) */
    size_t n_unused;   /* CAR blocks not reachable from the commit (not stored) */
} atp_repo_info;

typedef struct atp_repo_importer atp_repo_importer;

/* NULL is a no-op. */
void atp_repo_importer_destroy(atp_repo_importer *im);
/* An importer (opts copied; the key stays the caller's and must outlive the importer). Owned:
 * atp_repo_importer_destroy. Blocks are held in memory until finish. */
atp_repo_importer *atp_repo_importer_create(const atp_repo_import_opts *o)
    ATP_DEALLOC(atp_repo_importer_destroy);
/* Feeds the next bytes of the CAR (any split). Every block's hash is checked as it completes.
 * Errors (sticky): the CAR reader's (ATP_EINVAL, ATP_EHASH, ATP_ELIMIT). */
ATP_NODISCARD int atp_repo_importer_feed(atp_repo_importer *im, atp_slice chunk, atp_err *err);
/* At the end of the CAR: decodes the commit named by roots[0], checks did and signature, walks
 * the whole MST validating its structure, checks that every node and record is present and
 * every record is a DAG-CBOR map under a valid path, then stores exactly the reachable blocks
 * in `target` (nullable: verify only) in one put_batch tagged with the commit's rev. Errors:
 * ATP_ETRUNC (CAR cut short), ATP_EINVAL (no root, bad commit, bad tree or record, wrong did),
 * ATP_ENOTFOUND (a block is missing: named in err), ATP_ESIG (signature), store errors. */
ATP_NODISCARD int atp_repo_importer_finish(atp_repo_importer *im, atp_blockstore *target,
                                           atp_arena *a, atp_repo_info *out, atp_err *err);

/* The importer over a whole CAR in memory. */
ATP_NODISCARD int atp_repo_import(atp_slice car, const atp_repo_import_opts *o,
                                  atp_blockstore *target, atp_arena *a, atp_repo_info *out,
                                  atp_err *err);

/* ---- record proofs (repo_proof.c) ---- */

/* The CAR com.atproto.sync.getRecord returns for `path`: root = head, the commit, the MST
 * nodes proving the path present or absent (atp_mst_proof), and the record if present.
 * ATP_ENOTFOUND if the repo has no commit or a block is missing; ATP_EINVAL for a bad path. */
ATP_NODISCARD int atp_repo_write_proof(atp_repo *r, atp_slice path, atp_car_writer *w,
                                       atp_err *err);

typedef struct atp_repo_proof_result {
    bool present;      /* the path exists in the proven tree */
    atp_cid cid;       /* its record CID (present) */
    atp_slice record;  /* the record bytes, copied into the arena (present) */
    atp_cid head;      /* the commit's CID */
    atp_commit commit; /* did/rev copied into the arena */
} atp_repo_proof_result;

/* Verifies a record-proof CAR: the commit (roots[0]) decodes, its did equals `did` (when not
 * empty) and its signature verifies with `key` (required); the tree path to `path` is complete
 * and proves it present (with its record block, which must hash to the CID) or absent.
 * Errors: ATP_ENOTFOUND (a block the proof needs is missing, named in err), ATP_ESIG,
 * ATP_EINVAL, CAR errors. */
ATP_NODISCARD int atp_repo_verify_proof(atp_slice car, const atp_key *key, atp_slice did,
                                        atp_slice path, atp_arena *a, atp_repo_proof_result *out,
                                        atp_err *err);

/* ---- sync v1.1 inversion (repo_invert.c) ---- */

/* Which check failed. */
typedef enum atp_repo_invert_stage {
    ATP_INVERT_OK = 0,
    ATP_INVERT_CAR,     /* the blocks CAR does not read, or has no root */
    ATP_INVERT_COMMIT,  /* commit block missing, malformed, or did/rev/CID unlike the message */
    ATP_INVERT_SIG,     /* commit signature */
    ATP_INVERT_OPS,     /* op shapes: too many, bad path, duplicate, cid/prev presence */
    ATP_INVERT_FORWARD, /* an op disagrees with the new tree */
    ATP_INVERT_APPLY,   /* an inverse op could not be applied (missing block, wrong value) */
    ATP_INVERT_ROOT,    /* the inverted tree's root is not prevData */
} atp_repo_invert_stage;

typedef struct atp_repo_invert_in {
    atp_slice blocks;       /* the #commit's CAR slice */
    const atp_repo_op *ops; /* the #commit's ops */
    size_t n_ops;
    const atp_cid *prev_data; /* required */
    const atp_key *key;       /* required: the account's signing key */
    atp_slice did;            /* the message's repo; empty: not compared */
    atp_slice rev;            /* the message's rev; empty: not compared */
    const atp_cid *commit;    /* the message's commit CID; NULL: not compared */
} atp_repo_invert_in;

/* Details of a failure, beyond err's 128-byte message. */
typedef struct atp_repo_invert_report {
    atp_repo_invert_stage stage;
    long op;          /* index of the op at fault, -1 if none */
    bool has_missing; /* a block the check needed is not in the slice */
    atp_cid missing;
    bool has_values; /* FORWARD/APPLY: expected vs found value; ROOT: prevData vs
                      * the inverted root */
    atp_cid expected, got;
    bool got_absent;  /* FORWARD/APPLY: the path was absent */
    char detail[384]; /* the whole story, CIDs spelled out */
} atp_repo_invert_report;

/* Checks a #commit the sync v1.1 way (spec repository.md §6): loads the commit and tree from
 * the slice only (memory store; blocks outside it stay opaque CIDs), verifies the commit,
 * validates the op shapes, checks each op against the new tree, applies the inverse ops and
 * compares the resulting root with prevData. 0 if everything holds; otherwise a negative code
 * (ATP_EINVAL, ATP_ESIG, ATP_ENOTFOUND for a missing block, ATP_ECONFLICT for a root or value
 * mismatch) with `rep` (nullable) saying precisely what failed. Allocates only internally. */
ATP_NODISCARD int atp_repo_invert_check(const atp_repo_invert_in *in, atp_repo_invert_report *rep,
                                        atp_err *err);

#endif
