/* pds/src/seq_event.h: the firehose's wire encoding (com.atproto.sync.subscribeRepos), pure.
 *
 * A frame is two DAG-CBOR items back to back: the header ({t: "#commit", op: 1}, or {op: -1}
 * for an error) and the body (a map without $type). The sequencer stores event bodies without
 * `seq` in an account's outbox (seq is only known when the event is sequenced) and stores the
 * whole frame, seq included, in repo_seq: pds_seq_frame_build joins the two.
 *
 * Every function here is pure (no I/O, no globals) and bounded: decoders take the spec's limits.
 */
#ifndef PDS_SEQ_EVENT_H
#define PDS_SEQ_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "atp/buf.h"
#include "atp/cbor.h"
#include "atp/cid.h"
#include "atp/err.h"
#include "atp/repo.h"

#define PDS_SEQ_FRAME_MAX   (5u * 1000u * 1000u) /* spec: any frame <= 5 MB */
#define PDS_SEQ_BLOCKS_MAX  2000000              /* spec: #commit.blocks <= 2,000,000 bytes */
#define PDS_SEQ_SYNC_MAX    10000                /* spec: #sync.blocks <= 10,000 bytes */
#define PDS_SEQ_MAX         ((int64_t)1 << 53)   /* seq and cursor are < 2^53 */
#define PDS_SEQ_TIME_MAX    32                   /* "2024-01-01T00:00:00.000Z" + NUL */

/* Appends the #commit body (without seq) of commit `c` of `did`, emitted at `time` (RFC 3339):
 * repo, rev, since (null for the first commit), commit, blocks (a CAR, root = the commit, with
 * c->blocks then c->proof), ops (cid null for deletes, prev for updates and deletes), prevData
 * (absent for the first commit), blobs [], rebase false, tooBig false. ATP_ELIMIT if the body
 * would pass PDS_SEQ_FRAME_MAX (out is left in error). */
ATP_NODISCARD int pds_seq_body_commit(atp_buf *out, atp_slice did, const atp_repo_commit *c,
                                      const char *time, atp_err *err);

/* Appends the #sync body (without seq): did, rev, time, blocks = a CAR holding only the signed
 * commit block (root = `commit`). ATP_ELIMIT if the CAR passes PDS_SEQ_SYNC_MAX. */
ATP_NODISCARD int pds_seq_body_sync(atp_buf *out, atp_slice did, const atp_cid *commit,
                                    atp_slice commit_block, const char *rev, const char *time,
                                    atp_err *err);

/* Appends the #identity body (without seq): did, time, handle (omitted when NULL). */
void pds_seq_body_identity(atp_buf *out, atp_slice did, const char *handle, const char *time);

/* Appends the #account body (without seq): did, time, active, status (omitted when NULL, which
 * the caller passes whenever active is true, as the reference does). */
void pds_seq_body_account(atp_buf *out, atp_slice did, bool active, const char *status,
                          const char *time);

/* Appends a whole #info frame ({t:"#info", op:1} + {name, message?}); message nullable. */
void pds_seq_frame_info(atp_buf *out, const char *name, const char *message);

/* Appends a whole error frame ({op:-1} + {error, message?}); message nullable. */
void pds_seq_frame_error(atp_buf *out, const char *error, const char *message);

/* Appends the stored frame of an event: header {t: type, op: 1} then `body` (a DAG-CBOR map
 * without a `seq` key, as the pds_seq_body_* calls make) with seq added in its canonical place.
 * `type` is "#commit", "#sync", "#identity" or "#account". ATP_EINVAL if body is not one valid
 * map without seq, or seq is outside [1, 2^53); ATP_ELIMIT past PDS_SEQ_FRAME_MAX. Scratch
 * memory from `a`. */
ATP_NODISCARD int pds_seq_frame_build(atp_buf *out, atp_arena *a, const char *type,
                                      atp_slice body, int64_t seq, atp_err *err);

/* A decoded frame (trees from the arena, slices into the input). */
typedef struct pds_seq_frame {
    int64_t op;         /* 1 = message, -1 = error */
    atp_slice type;     /* header t ("#commit"...); empty for errors */
    atp_cbor *header;   /* the header map */
    atp_cbor *body;     /* the body map */
    bool has_seq;       /* body has an integer seq */
    int64_t seq;
} pds_seq_frame;

/* Decodes a frame strictly: exactly two DAG-CBOR items, both maps, at most PDS_SEQ_FRAME_MAX
 * bytes; header op an integer, 1 with a text t, or -1 with no t; an error body has a text
 * `error`. A seq, when present, must be an integer in [1, 2^53). Errors: ATP_ELIMIT (size),
 * ATP_EINVAL (anything else; err->off = where). *out written only on success. */
ATP_NODISCARD int pds_seq_frame_decode(atp_arena *a, atp_slice in, pds_seq_frame *out,
                                       atp_err *err);

/* Appends the canonical encoding of a decoded frame (header then body). For a frame that came
 * from pds_seq_frame_decode, the bytes equal the input (DAG-CBOR is canonical). */
void pds_seq_frame_encode(atp_buf *out, const pds_seq_frame *f);

/* A stored #commit event, as the redo of a commit after a crash needs it (slices into the
 * decoded frame's input). */
typedef struct pds_seq_commit_view {
    atp_slice repo, rev, since; /* since empty when null (the first commit) */
    atp_cid commit;
    atp_block *blocks; /* every block of the event's CAR, the signed commit among them */
    size_t n_blocks;
    atp_repo_op *ops;  /* action, path, cid (create/update), prev (update/delete) */
    size_t n_ops;
} pds_seq_commit_view;

/* Reads the body of a #commit frame (pds_seq_frame_decode's body) into *out: the fields above,
 * the CAR read whole (every block hashed against its CID). ATP_EINVAL when a field is missing
 * or of the wrong type, a block does not match its CID, or the op list is over
 * ATP_REPO_MAX_WRITES. Arrays from `a`. */
ATP_NODISCARD int pds_seq_commit_view_decode(atp_arena *a, const atp_cbor *body,
                                             pds_seq_commit_view *out, atp_err *err);

/* The block of `cid` among v's blocks, or NULL. */
const atp_block *pds_seq_commit_view_block(const pds_seq_commit_view *v, const atp_cid *cid);

/* The subscribeRepos `cursor` parameter: decimal digits only (no sign, no blanks), value in
 * [0, 2^53). ATP_EINVAL otherwise (err->off = the bad character). *out only on success. */
ATP_NODISCARD int pds_seq_parse_cursor(atp_slice s, int64_t *out, atp_err *err);

#endif
