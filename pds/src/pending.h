/* pds/src/pending.h: one account's commits that are applied in memory and on their way into
 * the firehose sequence, but not yet written into the account's file.
 *
 * A repo write is durable once its #commit event is in repo_seq (the service database, one
 * fsync per group of writes across all accounts: sequencer.h); the account's own file is
 * brought up to date behind it, many commits in one transaction (actor_store.c's flusher).
 * Until then the commit lives here: what its file transaction will need (blocks, garbage, the
 * record-index changes) copied out of the request, and its event's seq once the sequencer has
 * stored the event. Entries are only ever written to the file once sequenced, in order, so the
 * file never holds a commit the sequence lacks, and a crash loses only what repo_seq can redo.
 *
 * The store view (pds_pending_store) is the account's block store as the repo handle must see
 * it: these commits' blocks first, then the file's. MST nodes made by an unflushed commit are
 * fetched from here whenever a later commit needs their bytes (proofs, diffs): the repo handle
 * drops a node's bytes once its commit is accepted.
 *
 * Not thread-safe: the account's lock guards a list, except `seq`, which the sequencer thread
 * stores (atomic) and readers load.
 */
#ifndef PDS_PENDING_H
#define PDS_PENDING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atp/blockstore.h"
#include "atp/repo.h"

/* A record-index change of a commit, after the write rules were applied (an upsert that found
 * nothing is a create, and so on). */
typedef struct pds_index_op {
    atp_repo_action action;
    atp_slice collection, rkey, uri; /* uri: at://did/collection/rkey */
    atp_cid cid;                     /* create, update: the record's CID */
    atp_cid *blobs;                  /* create, update: the blobs the record links */
    size_t n_blobs;
} pds_index_op;

typedef struct pds_pending_commit {
    struct pds_pending_commit *next;
    atp_arena *arena; /* owns everything below */
    /* The commit, with what the file needs: cid, bytes, rev, blocks, removed,
     * removed_records_maybe (ops and proof are not kept). */
    atp_repo_commit c;
    pds_index_op *ops;
    size_t n_ops;
    _Atomic int64_t seq; /* its event's seq once in repo_seq; 0 until then */
} pds_pending_commit;

typedef struct pds_pending {
    atp_blockstore view; /* first: pds_pending_store's handle */
    atp_blockstore *file;
    pds_pending_commit *head, **tail;
    size_t n;
    /* the entries' blocks by CID (open addressing; the newest copy wins): a later commit asks
     * for an earlier one's MST nodes on every write (proofs, diffs) */
    const atp_block **index;
    size_t index_cap, index_used;
} pds_pending;

/* Starts an empty list over `file` (borrowed: the account's SQLite store). */
void pds_pending_init(pds_pending *p, atp_blockstore *file);
/* Frees every entry. */
void pds_pending_release(pds_pending *p);

/* The block store view: get/has look at the entries (newest first), then the file; writes,
 * removals and each_since go to the file. Borrowed from p. */
atp_blockstore *pds_pending_store(pds_pending *p);

/* Appends a copy of commit `c` (accepted by the repo handle) and its index changes. Returns the
 * entry (owned by the list) so the sequencer can be given &entry->seq. */
pds_pending_commit *pds_pending_add(pds_pending *p, const atp_repo_commit *c,
                                    const pds_index_op *ops, size_t n);

/* How many leading entries are sequenced (so may go to the file, in order). */
size_t pds_pending_ready(const pds_pending *p);

/* Frees the first k entries (written to the file). */
void pds_pending_drop(pds_pending *p, size_t k);

/* What a flush of the first k entries (in one transaction) may leave out: a block an entry
 * adds and a later one of the k removes never needs to reach the file (most MST nodes and
 * every commit block but the last), and neither does the removal. Built over the entries as
 * they are (they must not change meanwhile); memory from `a`. */
typedef struct pds_pending_net pds_pending_net;
pds_pending_net *pds_pending_net_make(const pds_pending *p, size_t k, atp_arena *a);
/* Whether entry i's block `cid` must be inserted (no later entry of the k removes it). */
bool pds_pending_net_put(const pds_pending_net *n, size_t i, const atp_cid *cid);
/* Whether entry i's removal of `cid` must delete it (no earlier entry of the k added it). */
bool pds_pending_net_del(const pds_pending_net *n, size_t i, const atp_cid *cid);

/* The smallest seq among the entries that have one; INT64_MAX if none has. */
int64_t pds_pending_min_seq(const pds_pending *p);

#endif
