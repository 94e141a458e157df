/* pds/src/actor_store_sync.h: the actor store's reads for com.atproto.sync.* (issue 6), and the
 * pure parsers of the sync endpoints' query parameters (since, cids, the listRepos cursor).
 *
 * Repo exports stream: pds_sync_export_open takes a read snapshot of the account's file on a
 * connection of its own (WAL: writers go on meanwhile, and a block the snapshot needs is never
 * seen removed), then pds_sync_export_next hands out the CAR in bounded batches, so a 100,000
 * record repo goes out with a few hundred KiB in memory. Blocks come out in the reference's
 * order: newest rev first (rev DESC, cid DESC), after the header whose root is the head.
 * All functions are thread-safe; one export is used by one thread at a time.
 */
#ifndef PDS_ACTOR_STORE_SYNC_H
#define PDS_ACTOR_STORE_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "atp/buf.h"
#include "atp/cid.h"

#include "actor_store.h"

#define PDS_SYNC_MAX_CIDS      1000            /* cids of one getBlocks call */
#define PDS_SYNC_BLOCKS_MAX    (32u << 20)     /* bytes of one getBlocks CAR */
#define PDS_SYNC_PROOF_MAX     (4u << 20)      /* bytes of one getRecord proof CAR */
#define PDS_SYNC_CURSOR_DID_MAX 2048           /* the DID part of a listRepos cursor */
#define PDS_SYNC_CURSOR_MAX    (24 + 2 + PDS_SYNC_CURSOR_DID_MAX + 1)

/* ---- query parameters (pure) ---- */

/* `since` of getRepo: a TID (the lexicon's format). ATP_EINVAL otherwise (err says why). */
ATP_NODISCARD int pds_sync_check_since(atp_slice since, atp_err *err);

/* One `cids` value of getBlocks: a CID string (atp_cid_parse). ATP_EINVAL otherwise. */
ATP_NODISCARD int pds_sync_parse_cid(atp_slice s, atp_cid *out, atp_err *err);

/* The listRepos keyset cursor, as the reference writes it: "<createdAt ms>::<did>". */
typedef struct pds_sync_cursor {
    int64_t ms;                               /* account creation, Unix milliseconds */
    char did[PDS_SYNC_CURSOR_DID_MAX + 1];    /* the last DID listed */
} pds_sync_cursor;

/* Parses a cursor: decimal ms (1..15 digits), "::", a non-empty DID part without "::", spaces
 * or control bytes, of at most PDS_SYNC_CURSOR_DID_MAX bytes. ATP_EINVAL ("Malformed cursor"). *out only on success. */
ATP_NODISCARD int pds_sync_cursor_parse(atp_slice s, pds_sync_cursor *out, atp_err *err);

/* Writes "<ms>::<did>" + NUL into out[cap]. ATP_ELIMIT if it does not fit, ATP_EINVAL for a
 * negative ms or an empty did. */
ATP_NODISCARD int pds_sync_cursor_format(int64_t ms, atp_slice did, char *out, size_t cap);

/* "YYYY-MM-DDTHH:MM:SS[.fff]Z" (UTC, as the PDS stores createdAt) to Unix ms. ATP_EINVAL for
 * anything else (also out-of-range fields, years before 1970 or after 9999). */
ATP_NODISCARD int pds_sync_iso_to_ms(atp_slice iso, int64_t *ms);

/* Unix ms (0 .. 253402300799999) to "YYYY-MM-DDTHH:MM:SS.fffZ" + NUL (what
 * pds_sync_iso_to_ms reads back to the same ms). ATP_EINVAL out of range. */
ATP_NODISCARD int pds_sync_ms_to_iso(int64_t ms, char out[32]);

/* ---- streaming repo export (getRepo) ---- */

typedef struct pds_sync_export pds_sync_export;

/* NULL is a no-op. Ends the read snapshot and closes its connection. */
void pds_sync_export_close(pds_sync_export *x);

/* Opens a snapshot of `did`'s repo: every block (`since` empty) or only the blocks written by
 * commits after rev `since`. *head gets the snapshot's commit (the CAR root). Owned:
 * pds_sync_export_close. Errors: ATP_EINVAL (DID), ATP_ENOTFOUND (no file or no commit yet:
 * the reference's "Could not find repo for DID"), ATP_EIO. */
ATP_NODISCARD int pds_sync_export_open(pds_actor_store *s, atp_slice did, atp_slice since,
                                       pds_sync_export **out, pds_commit_info *head,
                                       atp_err *err);

/* Appends the next part of the CAR to `out` (header first): whole sections until out holds at
 * least `budget` bytes more than before, or the blocks run out (*done = true; later calls add
 * nothing). A single block may take it past budget by its size (<= 2 MiB). ATP_EIO on a read
 * failure, ATP_ELIMIT if `out` overflows its max. */
ATP_NODISCARD int pds_sync_export_next(pds_sync_export *x, atp_buf *out, size_t budget,
                                       bool *done, atp_err *err);

/* Blocks written to out so far by this export (not counting the header). */
uint64_t pds_sync_export_blocks(const pds_sync_export *x);

/* ---- small reads ---- */

/* The record proof CAR of com.atproto.sync.getRecord for collection/rkey (present, or proving
 * absence) appended to `out`: root = head, commit, MST path nodes, record. Records under a
 * takedown are still proven: the repo itself is public. Errors: ATP_ENOTFOUND (no repo),
 * ATP_EINVAL (bad collection/rkey), ATP_ELIMIT (over out's max), ATP_EIO. */
ATP_NODISCARD int pds_sync_record_proof(pds_actor_store *s, atp_slice did, atp_slice collection,
                                        atp_slice rkey, atp_buf *out, atp_err *err);

/* The blocks `cids` (n <= PDS_SYNC_MAX_CIDS) as a CAR with no root appended to `out`, in the
 * order given (duplicates written once). If any is absent, nothing useful is in `out`, each
 * missing[i] (caller's array of n) is set true, and ATP_ENOTFOUND returned. Errors:
 * ATP_ENOTFOUND (no repo: missing all false), ATP_ELIMIT (n, or out's max), ATP_EIO. */
ATP_NODISCARD int pds_sync_blocks(pds_actor_store *s, atp_slice did, const atp_cid *cids, size_t n,
                                  atp_buf *out, bool *missing, atp_err *err);

/* Number of blocks and bytes in the account's block table (tests, metrics). */
ATP_NODISCARD int pds_sync_block_count(pds_actor_store *s, atp_slice did, uint64_t *blocks,
                                       uint64_t *bytes, atp_err *err);

#endif
