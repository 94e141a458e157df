/* pds/src/plc_ops.h: PLC operations for hosted accounts (updateHandle, signPlcOperation,
 * submitPlcOperation), the email tokens that guard them, and reserved signing keys
 * (reserveSigningKey; createAccount reads them for migrations).
 *
 * Two layers: pure functions that turn request JSON into an atp_plc_op and check it (fuzzed:
 * pds/fuzz/fuzz_identity.c), and calls that talk to the PLC directory (cfg->plc_url) or the
 * service database. All are thread-safe; none keeps state between calls.
 */
#ifndef PDS_PLC_OPS_H
#define PDS_PLC_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "atp/buf.h"
#include "atp/cid.h"
#include "atp/crypto.h"
#include "atp/plc.h"

#include "db.h"
#include "pds.h"

#define PDS_EMAIL_TOKEN_LEN 11        /* "XXXXX-XXXXX": 10 base32 characters, as the reference */
#define PDS_EMAIL_TOKEN_TTL (15 * 60) /* seconds a mailed token stays valid */
#define PDS_PLC_PURPOSE "plc_operation"

/* What submitPlcOperation requires of an op so that this PDS keeps serving the account (the
 * reference's checks). Slices borrowed; `handle` empty when the account has none. */
typedef struct pds_plc_expect {
    atp_slice rotation_key; /* the PDS rotation key as did:key: must be in rotationKeys */
    atp_slice signing_key;  /* the account's repo key as did:key: verificationMethods.atproto */
    atp_slice endpoint;     /* ctx->public_url: services.atproto_pds.endpoint */
    atp_slice handle;       /* alsoKnownAs[0] must be "at://" + handle */
} pds_plc_expect;

/* ---- pure ---- */

/* The unsigned update op that signPlcOperation signs: `last` (the DID's latest op, already
 * normalized, not a tombstone; borrowed) with each of rotationKeys, alsoKnownAs,
 * verificationMethods, services that `body` (the request's JSON object text) carries, non-null,
 * replacing the whole field; other members of body (token...) are ignored. type plc_operation,
 * prev = `prev` (the CID string of the latest op), no sig. The result is checked by the strict
 * op parser (types, did:keys, counts and lengths of `lim`, NULL = defaults) and its strings live
 * in `a`. body longer than lim->max_json: ATP_ELIMIT; not a JSON object or a bad field:
 * ATP_EINVAL (err->msg names the field). *out written only on success. */
ATP_NODISCARD int pds_plc_update_build(atp_arena *a, const atp_plc_op *last, atp_slice body,
                                       atp_slice prev, const atp_plc_limits *lim,
                                       atp_plc_op *out, atp_err *err);

/* The update op for a handle change (the reference's updateHandleOp): `last` with its first
 * "at://" alsoKnownAs entry replaced by "at://" + handle (or that entry put first when there
 * is none), prev = `prev`, unsigned; strings from `a`. ATP_ELIMIT if the handle is too long for
 * an alsoKnownAs entry. */
ATP_NODISCARD int pds_plc_handle_op(atp_arena *a, const atp_plc_op *last, atp_slice handle,
                                    atp_slice prev, const atp_plc_limits *lim, atp_plc_op *out,
                                    atp_err *err);

/* Parses the `operation` of submitPlcOperation (JSON object text; strings copied into `a`):
 * a signed plc_operation (else ATP_EINVAL "Invalid operation"), then the reference's checks in
 * its order, each ATP_EINVAL with its message: "Rotation keys do not include server's rotation
 * key", "Incorrect type on atproto_pds service", "Incorrect endpoint on atproto_pds service",
 * "Incorrect signing key", "Incorrect handle in alsoKnownAs". The signature is not verified here
 * (the directory does that against the DID's history). *out written only on success. */
ATP_NODISCARD int pds_plc_submit_parse(atp_arena *a, atp_slice json, const pds_plc_expect *want,
                                       const atp_plc_limits *lim, atp_plc_op *out, atp_err *err);

/* ---- the PLC directory (blocking HTTP; call from worker threads) ---- */

/* GET <plc_url>/<did>/log/last: the DID's latest op as served (*raw, strings in `a`), its CID
 * string (prev of the next op) into prev[ATP_CID_STR_MAX], and *norm = the op normalized to the
 * plc_operation shape (a tombstone is returned as is: the caller refuses it).
 * ATP_ENOTFOUND (unknown DID), ATP_EIO (unreachable, other statuses), ATP_EINVAL (bad op). */
ATP_NODISCARD int pds_plc_last_op(pds_ctx *ctx, const char *did, atp_arena *a, atp_plc_op *norm,
                                  char prev[ATP_CID_STR_MAX], atp_err *err);

/* POSTs a signed op to <plc_url>/<did>. A refusal is ATP_EINVAL with the directory's message
 * in err->msg (its status in *status when non-NULL); ATP_EIO when it cannot be reached or
 * answers 5xx. */
ATP_NODISCARD int pds_plc_post_op(pds_ctx *ctx, const char *did, const atp_plc_op *op,
                                  int *status, atp_err *err);

/* ---- email tokens (table email_token; also usable for other purposes) ---- */

/* A fresh token "XXXXX-XXXXX" for (did, purpose), replacing any earlier one, requested now.
 * ATP_EIO on a database failure. */
ATP_NODISCARD int pds_email_token_create(pds_ctx *ctx, const char *did, const char *purpose,
                                         char token[PDS_EMAIL_TOKEN_LEN + 1], atp_err *err);

/* Checks `token` (case-insensitive) for (did, purpose) and, when valid, deletes it (single
 * use). ATP_ETOKEN "Token is invalid" (none, or another one), ATP_EEXPIRED "Token is expired"
 * (older than PDS_EMAIL_TOKEN_TTL by ctx->now; the token stays until replaced), ATP_EIO. */
ATP_NODISCARD int pds_email_token_consume(pds_ctx *ctx, const char *did, const char *purpose,
                                          const char *token, atp_err *err);

/* ---- reserved signing keys (table reserved_signing_key) ---- */

/* reserveSigningKey: with `did` non-NULL and a key already reserved for it, that key;
 * otherwise a fresh k256 key stored with `did` (may be NULL). Its did:key into
 * key_did[ATP_DIDKEY_MAX_LEN + 1]. ATP_EIO, ATP_EINTERNAL. */
ATP_NODISCARD int pds_signing_key_reserve(pds_ctx *ctx, const char *did,
                                          char key_did[ATP_DIDKEY_MAX_LEN + 1], atp_err *err);

/* For createAccount (migration or a client-made genesis op), as the reference's
 * getReservedKeypair: the private key reserved for `did_or_key` (a DID given to
 * reserveSigningKey, or the did:key it returned). *out owned (atp_key_destroy).
 * ATP_ENOTFOUND if none. */
ATP_NODISCARD int pds_signing_key_reserved(pds_ctx *ctx, const char *did_or_key, atp_key **out);

/* After the account is created with it: forgets the reservation of `key_did` and any made for
 * `did` (nullable). ATP_EIO. */
ATP_NODISCARD int pds_signing_key_unreserve(pds_ctx *ctx, const char *key_did, const char *did);

/* Signs (ctx->plc_rotation_key) and submits the update op pointing alsoKnownAs at
 * at://handle, on top of the directory's last op (blocking). ATP_EINVAL: tombstoned or refused
 * by the directory (err says), ATP_EIO unreachable. For updateHandle and the admin's
 * updateAccountHandle. */
ATP_NODISCARD int pds_plc_update_handle(pds_ctx *ctx, const char *did, const char *handle,
                                        atp_err *err);

#endif
