/* plc/src/store.h: the directory's SQLite storage.
 *
 * One table, `operations` (seq, did, cid, op_json, op_cbor, nullified, created_at), WAL mode
 * with synchronous=FULL, so an operation is on disk when its POST is acknowledged. Indexes:
 * (did, created_at) for per-DID history, (created_at, seq) for /export. A small `meta` table
 * keeps the mirror cursor.
 *
 * Threads: a pool of connections, one borrowed per call; any thread may call any function.
 * Writers are serialised by SQLite (BEGIN IMMEDIATE) and, for ops we timestamp ourselves, the
 * timestamp is taken inside that write transaction, so created_at is strictly increasing over
 * the whole directory and /export paging by timestamp never skips an op.
 *
 * Timestamps are ISO 8601 UTC with milliseconds, "2024-05-01T12:00:00.123Z" (fixed width, so
 * text order is time order).
 */
#ifndef PLC_STORE_H
#define PLC_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "atp/buf.h"

#define PLC_TS_LEN 24 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
#define PLC_DID_MAX 64
#define PLC_CID_MAX 96

typedef struct plc_store plc_store;

/* One stored operation. Strings and bytes belong to the arena of the call that produced it. */
typedef struct plc_row {
    int64_t seq;
    const char *did;
    const char *cid;
    atp_slice json; /* the op as JSON (canonical key order) */
    atp_slice cbor; /* the signed op's DAG-CBOR */
    bool nullified;
    const char *created_at;
} plc_row;

/* What a validator decides about a new op: the row to insert (did, cid, json, cbor; seq,
 * nullified and created_at are the store's) and the CIDs of earlier ops it nullifies. */
typedef struct plc_decision {
    plc_row row;
    const char *const *nullify;
    size_t n_nullify;
} plc_decision;

/* Validates a new op against the DID's whole history (`hist`, oldest first, nullified rows
 * included), at time `now` (the created_at the op will get). Fills *out (allocating from `a`)
 * and returns 0 to accept; a negative ATP_E* with err set to refuse. */
typedef int (*plc_validate_fn)(void *ud, atp_arena *a, const plc_row *hist, size_t n,
                               const char *now, plc_decision *out, atp_err *err);

/* Opens (creating if needed) the database at `path` with `nconns` pooled connections (at least
 * 1). ATP_EIO if it cannot be opened or the schema cannot be created. *out owned:
 * plc_store_close. */
ATP_NODISCARD int plc_store_open(const char *path, unsigned nconns, plc_store **out, atp_err *err);

/* Checkpoints the WAL into the main file (TRUNCATE) and closes every connection. No call may be
 * running. NULL is a no-op. */
void plc_store_close(plc_store *s);

/* The DID's ops, oldest first (by created_at), nullified ones included, into `a`. *out may be
 * NULL with *n == 0 for an unknown DID. ATP_EIO on a database error. */
ATP_NODISCARD int plc_store_history(plc_store *s, const char *did, atp_arena *a, plc_row **out,
                                    size_t *n, atp_err *err);

/* In one write transaction: reads the DID's history, refuses with ATP_ECONFLICT (nothing
 * changed) if `cid` is already in it, else calls `fn`, inserts the accepted row with
 * created_at = `created_at` (mirror: the upstream's timestamp) or, if NULL, now (strictly after
 * every stored op), and marks the nullified ops; commits before returning. Any refusal rolls
 * back and changes nothing: the validator's code if it refuses; ATP_EIO on a database error. On
 * success the created_at used is copied to ts_out (if non-NULL, PLC_TS_LEN + 1 bytes). */
ATP_NODISCARD int plc_store_apply(plc_store *s, const char *did, const char *cid,
                                  const char *created_at, plc_validate_fn fn, void *ud,
                                  char *ts_out, atp_err *err);

/* Appends up to `count` export lines (JSON objects joined by '\n', none after the last, as the
 * reference directory) ordered by created_at
 * then seq. `after_ts` (a timestamp, exclusive; NULL for the start) selects the legacy shape
 * {did, operation, cid, nullified, createdAt}; with after_seq >= 0 instead, ops with seq >
 * after_seq in the shape {type:"sequenced_op", did, operation, cid, createdAt, seq}. Reports
 * the number of lines in *n. ATP_EIO on a database error. */
ATP_NODISCARD int plc_store_export(plc_store *s, const char *after_ts, int64_t after_seq,
                                   unsigned count, atp_buf *out, unsigned *n, atp_err *err);

/* Number of stored ops (all DIDs, nullified included) and of distinct DIDs. */
ATP_NODISCARD int plc_store_counts(plc_store *s, int64_t *ops, int64_t *dids, atp_err *err);

/* Mirror cursor: the last upstream created_at fully processed (empty string if none). */
ATP_NODISCARD int plc_store_cursor_get(plc_store *s, char out[PLC_TS_LEN + 1], atp_err *err);
ATP_NODISCARD int plc_store_cursor_set(plc_store *s, const char *ts, atp_err *err);

/* ---- timestamps ---- */

/* Formats unix milliseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (PLC_TS_LEN + 1 bytes). */
void plc_ts_format(int64_t unix_ms, char out[PLC_TS_LEN + 1]);

/* Parses an RFC 3339 UTC timestamp ("...Z" or "+00:00", fraction optional, truncated to ms)
 * into unix milliseconds. ATP_EINVAL otherwise. */
ATP_NODISCARD int plc_ts_parse(atp_slice s, int64_t *out);

/* Current time in unix milliseconds (CLOCK_REALTIME). */
int64_t plc_now_ms(void);

#endif
