/* atp/plc.h: did:plc operations (spec identity-crypto §4): the op value, JSON <-> op, canonical
 * DAG-CBOR, signing, CIDs, DID derivation, and validation of ops against a DID's history, with
 * the same rules and limits as the reference directory (@did-plc/lib and its server).
 *
 * Op values hold borrowed slices (into an arena or the caller's storage). Map-like fields
 * (verificationMethods, services) are kept in canonical key order (shorter first, then bytewise)
 * by the parser: that is also the order the reference directory returns them in (its Postgres
 * jsonb column orders object keys the same way), so JSON output and DID documents match it.
 *
 * Op JSON is strict: unknown members, duplicate keys, wrong types, a "sig" that is not
 * canonical unpadded base64url of 64 bytes, invalid did:keys, and the size/count limits below are
 * rejected with ATP_EINVAL / ATP_ELIMIT and a message naming the field.
 */
#ifndef ATP_PLC_H
#define ATP_PLC_H

#include "atp/buf.h"
#include "atp/cid.h"
#include "atp/crypto.h"
#include "atp/didoc.h"

#define ATP_PLC_DID_LEN            32                      /* "did:plc:" + 24 base32 chars */
#define ATP_PLC_RECOVERY_WINDOW_US (72LL * 3600 * 1000000) /* 72 hours */
#define ATP_PLC_TIME_LEN           24                      /* "2023-01-01T00:00:00.000Z" */

typedef enum atp_plc_type {
    ATP_PLC_OPERATION = 1, /* "plc_operation" */
    ATP_PLC_TOMBSTONE = 2, /* "plc_tombstone" */
    ATP_PLC_CREATE = 3,    /* legacy "create" (genesis only; read, never produced) */
} atp_plc_type;

/* Limits applied when parsing and validating ops (the reference server's, spec §4.2). */
typedef struct atp_plc_limits {
    size_t max_json;     /* bytes of one op's JSON text (and of a log: max_json * max_ops) */
    size_t max_cbor;     /* bytes of the signed op's DAG-CBOR (reference 4000) */
    size_t max_entries;  /* rotationKeys, verificationMethods, alsoKnownAs, services: 10 each */
    size_t max_aka_len;  /* one alsoKnownAs entry: 258 */
    size_t max_name_len; /* service / verification method name: 32 */
    size_t max_type_len; /* service type: 256 */
    size_t max_endpoint; /* service endpoint: 512 */
    size_t max_key_len;  /* did:key string: 256 */
    size_t max_ops;      /* entries of a log or audit log */
} atp_plc_limits;

/* The reference limits above; 64 KiB JSON per op, 100000 ops per log. */
extern const atp_plc_limits atp_plc_limits_default;

typedef struct atp_plc_vm { /* verificationMethods entry */
    atp_slice name;         /* without '#', e.g. "atproto" */
    atp_slice didkey;       /* "did:key:z..." */
} atp_plc_vm;

typedef struct atp_plc_service { /* services entry */
    atp_slice name;              /* e.g. "atproto_pds" */
    atp_slice type;              /* e.g. "AtprotoPersonalDataServer" */
    atp_slice endpoint;
} atp_plc_service;

/* One operation. Fields by type:
 *  OPERATION: rotation_keys, vms, aka, services, prev (empty = null), sig
 *  TOMBSTONE: prev (required), sig
 *  CREATE:    signing_key, recovery_key, handle, service, prev (empty: must be null), sig
 * `sig` empty means unsigned. */
typedef struct atp_plc_op {
    atp_plc_type type;
    const atp_slice *rotation_keys;
    size_t n_rotation_keys;
    const atp_plc_vm *vms;
    size_t n_vms;
    const atp_slice *aka;
    size_t n_aka;
    const atp_plc_service *services;
    size_t n_services;
    atp_slice prev;
    atp_slice sig;
    atp_slice signing_key, recovery_key, handle, service; /* CREATE only */
} atp_plc_op;

/* ---- JSON and CBOR ---- */

/* Parses one op from JSON text (strings copied into `a`). NULL `lim` = defaults. Rules: see the
 * top; a signature must be present unless `allow_unsigned`. Writes *out only on success.
 * Errors: ATP_EINVAL, ATP_ELIMIT, ATP_EDEPTH. */
ATP_NODISCARD int atp_plc_op_parse(atp_arena *a, atp_slice json, bool allow_unsigned,
                                   const atp_plc_limits *lim, atp_plc_op *out, atp_err *err);

/* Same from a JSON value already decoded by atp_json_decode (atp/json.h; `v` borrowed, must be
 * a map; strings stay in v's arena, new arrays come from `a`). */
struct atp_cbor;
ATP_NODISCARD int atp_plc_op_from_tree(atp_arena *a, const struct atp_cbor *v, bool allow_unsigned,
                                       const atp_plc_limits *lim, atp_plc_op *out, atp_err *err);

/* Checks an op built in code against the same structural rules and limits as the parser
 * (counts, lengths, did:keys, services sorted or not: order is not required here). */
ATP_NODISCARD int atp_plc_op_check(const atp_plc_op *op, bool allow_unsigned,
                                   const atp_plc_limits *lim, atp_err *err);

/* Appends the canonical DAG-CBOR of the op, without "sig" when !with_sig (the signed bytes)
 * and with it otherwise (the bytes the CID hashes). Map fields are sorted canonically whatever
 * their order in `op`. Sets out->err to ATP_EINVAL on a duplicate name. */
void atp_plc_op_encode_cbor(atp_buf *out, const atp_plc_op *op, bool with_sig);

/* Appends the op as JSON with members in canonical order (as the reference directory returns
 * ops: "sig", "prev", "type", "services", ...). ATP_JSON_PRETTY indents. */
void atp_plc_op_encode_json(atp_buf *out, const atp_plc_op *op, unsigned flags);

/* CID (CIDv1 dag-cbor sha-256) of the signed op. Uses a temporary heap buffer.
 * Errors: ATP_EINVAL (unsigned op or duplicate names). */
ATP_NODISCARD int atp_plc_op_cid(const atp_plc_op *op, atp_cid *out, atp_err *err);

/* ---- signing and DIDs ---- */

/* Signs the op with `key` (which must have its private part): SHA-256 + ECDSA low-S over the
 * unsigned DAG-CBOR; op->sig becomes the unpadded base64url string, allocated from `a`.
 * Checks the op first (atp_plc_op_check, unsigned allowed). Errors: ATP_EKEY, ATP_EINVAL,
 * ATP_ELIMIT. */
ATP_NODISCARD int atp_plc_op_sign(atp_arena *a, atp_plc_op *op, const atp_key *key,
                                  const atp_plc_limits *lim, atp_err *err);

/* Verifies op->sig against the did:key strings `keys[0..n)` in order; on success writes the
 * index of the first key that verifies to *signer (nullable). Errors: ATP_EINVAL (malformed sig:
 * padding, non-canonical base64url, not 64 bytes, high-S), ATP_ESIG (no key verifies). Keys
 * that do not parse are skipped. */
ATP_NODISCARD int atp_plc_op_verify(const atp_plc_op *op, const atp_slice *keys, size_t n,
                                    size_t *signer, atp_err *err);

/* The DID of a signed genesis op: "did:plc:" + first 24 chars of base32(sha256(signed CBOR)),
 * written NUL-terminated into out[ATP_PLC_DID_LEN + 1]. Errors: ATP_EINVAL (unsigned). */
ATP_NODISCARD int atp_plc_did_for_genesis(const atp_plc_op *op, char out[ATP_PLC_DID_LEN + 1],
                                          atp_err *err);

/* The rotation keys in force after `op`: its own for OPERATION; [recoveryKey, signingKey] for
 * CREATE; none (n = 0) for TOMBSTONE. Writes up to `cap` slices, returns the count (which may
 * exceed cap: then only cap were written). Borrowed from op. */
size_t atp_plc_op_rotation_keys(const atp_plc_op *op, atp_slice *keys, size_t cap);

/* Normalizes a legacy CREATE op into the OPERATION shape (spec §4.1: rotationKeys
 * [recoveryKey, signingKey], verificationMethods {atproto: signingKey}, alsoKnownAs
 * ["at://"+handle], services {atproto_pds: {AtprotoPersonalDataServer, service}}), arrays and
 * strings from `a`, same prev and sig. Other types are copied as they are. Never fails. */
void atp_plc_op_normalize(atp_arena *a, const atp_plc_op *in, atp_plc_op *out);

/* ---- document data ---- */

/* Appends the /:did/data JSON {did, verificationMethods, rotationKeys, alsoKnownAs, services}
 * of the state after a non-tombstone op (normalized first if legacy). */
void atp_plc_data_encode_json(atp_buf *out, atp_slice did, const atp_plc_op *op, atp_arena *a);

/* Appends the DID document for the state after a non-tombstone op (reference rendering; see
 * atp_didoc_build). `a` is scratch for normalizing a legacy op. */
void atp_plc_didoc_encode(atp_buf *out, atp_slice did, const atp_plc_op *op, atp_arena *a,
                          unsigned flags);

/* ---- history ---- */

/* One entry of a DID's history, as in /:did/log/audit. */
typedef struct atp_plc_entry {
    atp_plc_op op;
    atp_cid cid;           /* CID of op (computed, or as given by the directory) */
    int64_t created_at_us; /* unix microseconds */
    bool nullified;
} atp_plc_entry;

/* What accepting a new op does (atp_plc_check_next). */
typedef struct atp_plc_next {
    bool genesis;       /* the op creates the DID */
    size_t prev_index;  /* index in `active` of the op it follows (not meaningful for genesis) */
    size_t n_nullified; /* active ops after prev_index that it nullifies */
    size_t signer;      /* index of the signing key in the allowed rotation keys */
    bool tombstone;     /* the op deactivates the DID */
    atp_cid cid;        /* the new op's CID */
} atp_plc_next;

/* Validates `op` (parsed, signed) as the next op of `did` whose current non-nullified history
 * is active[0..n) (oldest first, each with its CID and createdAt), at time now_us, by the
 * reference's rules (spec §4.4):
 *  - n == 0: genesis: OPERATION or CREATE, prev null, signed by one of its own rotation keys
 *    (CREATE: signingKey or recoveryKey), and the DID derived from it equals `did`;
 *  - else prev must be the CID of active[i]; active[i] must not be a tombstone; the signer must
 *    be one of active[i]'s rotation keys; if i < n-1 (a fork) the ops after i are nullified,
 *    which needs a signer of strictly higher priority (lower index in active[i]'s rotationKeys)
 *    than the key that signed active[i+1], and now_us - active[i+1].created_at_us <= 72 h.
 *  - the signed CBOR must fit lim->max_cbor.
 * Writes *out only on success. Errors: ATP_EINVAL (structure, prev, DID mismatch, op after a
 * tombstone), ATP_ESIG (signature, wrong or removed key, insufficient priority for a fork),
 * ATP_EEXPIRED (fork past the recovery window), ATP_ELIMIT (size). */
ATP_NODISCARD int atp_plc_check_next(atp_slice did, const atp_plc_entry *active, size_t n,
                                     const atp_plc_op *op, int64_t now_us,
                                     const atp_plc_limits *lim, atp_plc_next *out, atp_err *err);

/* Validates a plain op log (as /:did/log returns: valid ops only, oldest first): genesis then
 * each op's prev = CID of the previous one, each signed by the previous op's rotation keys, a
 * tombstone only last. On success *last is the index of the last op that is not a tombstone
 * and *tombstoned tells whether the log ends with one (both nullable). */
ATP_NODISCARD int atp_plc_validate_log(atp_slice did, const atp_plc_op *ops, size_t n,
                                       const atp_plc_limits *lim, size_t *last, bool *tombstoned,
                                       atp_err *err);

/* Parses /:did/log/audit JSON (array of {did, operation, cid, nullified, createdAt}) into
 * entries from `a`; every "did" must be the same, returned in *did. The given cid must equal the
 * computed one. Errors: ATP_EINVAL (with the entry index in the message), ATP_ELIMIT. */
ATP_NODISCARD int atp_plc_audit_parse(atp_arena *a, atp_slice json, const atp_plc_limits *lim,
                                      atp_plc_entry **out, size_t *n, atp_slice *did, atp_err *err);

/* Replays an audit log in order, checking each op with atp_plc_check_next at its own createdAt
 * (which must not decrease), and checks that the nullified flags given equal the ones the
 * replay produces. `scratch` receives the replay's working array. On success *state is the index
 * of the op whose state is current (or SIZE_MAX when tombstoned), nullable. */
ATP_NODISCARD int atp_plc_audit_verify(atp_arena *scratch, atp_slice did,
                                       const atp_plc_entry *entries, size_t n,
                                       const atp_plc_limits *lim, size_t *state, atp_err *err);

/* ---- time ---- */

/* Formats unix microseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ" (millisecond precision, as the
 * reference) into out[ATP_PLC_TIME_LEN + 1]. */
void atp_plc_format_time(int64_t us, char out[ATP_PLC_TIME_LEN + 1]);

#endif
