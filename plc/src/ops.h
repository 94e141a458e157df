/* plc/src/ops.h: the glue between atp/plc.h (op rules) and the store: preparing an incoming op
 * and validating it against a stored history inside the store's write transaction. */
#ifndef PLC_OPS_H
#define PLC_OPS_H

#include "atp/plc.h"

#include "store.h"

/* An incoming op, parsed and canonicalised. Everything lives in the arena given to prepare. */
typedef struct plc_incoming {
    char did[PLC_DID_MAX];
    atp_plc_op op;
    char cid[PLC_CID_MAX];
    atp_slice json; /* canonical JSON, as stored and served */
    atp_slice cbor; /* signed DAG-CBOR */
} plc_incoming;

/* Checks that `did` is a well-formed did:plc ("did:plc:" + 24 of [a-z2-7]). */
bool plc_did_is_valid(atp_slice did);

/* Parses an op posted for `did` (JSON text) and computes its CID, canonical JSON and CBOR into
 * `a`. Errors: those of atp_plc_op_parse / atp_plc_op_cid (ATP_EINVAL, ATP_ELIMIT, ATP_EDEPTH),
 * ATP_EINVAL for a malformed DID. *out written only on success. */
ATP_NODISCARD int plc_incoming_prepare(atp_arena *a, atp_slice did, atp_slice json,
                                       plc_incoming *out, atp_err *err);

/* The same from an op tree already decoded (mirror: the "operation" member of an export line). */
ATP_NODISCARD int plc_incoming_prepare_tree(atp_arena *a, atp_slice did,
                                            const struct atp_cbor *tree, plc_incoming *out,
                                            atp_err *err);

/* plc_validate_fn for plc_store_apply; `ud` is the plc_incoming. Rebuilds the active history
 * from the stored JSON and applies atp_plc_check_next at `now`. */
int plc_incoming_validate(void *ud, atp_arena *a, const plc_row *hist, size_t n, const char *now,
                          plc_decision *out, atp_err *err);

/* The latest non-nullified op of a history (NULL if none), parsed into `a`, and whether it is a
 * tombstone. ATP_EIO if a stored op no longer parses (a corrupt database). */
ATP_NODISCARD int plc_history_last(atp_arena *a, const plc_row *hist, size_t n,
                                   const plc_row **row, atp_plc_op *op, atp_err *err);

#endif
