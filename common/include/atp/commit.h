/* atp/commit.h: the signed commit object of a version 3 repository (spec repository.md §3).
 *
 *   { did: string, rev: TID string, sig: bytes(64), data: link, prev: link | null, version: 3 }
 *
 * Wire key order is did, rev, sig, data, prev, version (DAG-CBOR canonical order). The
 * signature is ECDSA (low-S, 64-byte r||s) over SHA-256 of the DAG-CBOR of the same map
 * without `sig`; the commit's CID is the dag-cbor CID of the *signed* bytes. Only version 3 is
 * produced or accepted. `prev` is always written as null (v3 practice) but a link is accepted
 * when decoding.
 */
#ifndef ATP_COMMIT_H
#define ATP_COMMIT_H

#include "atp/buf.h"
#include "atp/cid.h"
#include "atp/crypto.h"

#define ATP_COMMIT_VERSION 3
/* Longest DID a commit may carry (the DID syntax limit). */
#define ATP_COMMIT_DID_MAX 2048
/* Longest signed commit accepted by the decoder: the fields above with a maximal DID and two
 * 100-byte CIDs fit well under this. */
#define ATP_COMMIT_MAX_BYTES 4096

/* A commit's fields. `did` and `rev` are borrowed: from the decoded input after
 * atp_commit_decode, from the caller otherwise. */
typedef struct atp_commit {
    atp_slice did;
    atp_slice rev;
    atp_cid data;
    bool has_prev; /* false: prev is null */
    atp_cid prev;
    uint8_t sig[ATP_SIG_LEN];
} atp_commit;

/* Checks what signing and decoding require of the fields: `did` DID syntax, `rev` TID syntax,
 * `data` (and `prev` if set) a CIDv1 dag-cbor sha2-256 CID. ATP_EINVAL with the reason. */
ATP_NODISCARD int atp_commit_check_fields(const atp_commit *c, atp_err *err);

/* SHA-256 of the unsigned encoding (the map without `sig`), computed without building it (no
 * allocation). The fields are not checked. */
void atp_commit_hash_unsigned(const atp_commit *c, uint8_t out[ATP_HASH_LEN]);

/* Appends the unsigned encoding (no `sig`) / the signed encoding to `out`. Errors go to
 * out->err (sticky). The fields are not checked. */
void atp_commit_encode_unsigned(atp_buf *out, const atp_commit *c);
void atp_commit_encode(atp_buf *out, const atp_commit *c);

/* Checks the fields, then signs: fills c->sig with the low-S signature of the unsigned
 * encoding. Errors: ATP_EINVAL (fields), ATP_EKEY (key without its private part),
 * ATP_EINTERNAL. Nothing else is written. */
ATP_NODISCARD int atp_commit_sign(atp_commit *c, const atp_key *key, atp_err *err);

/* Builds, signs and encodes the commit {did, rev, data, prev: null, version 3}: appends the
 * signed bytes to `out` and writes the commit (did/rev borrowed from the arguments) and its
 * CID. `commit_out` and `cid_out` are nullable. Errors: as atp_commit_sign, and ATP_ELIMIT if
 * `out` overflows (then out->len is restored). */
ATP_NODISCARD int atp_commit_create(atp_buf *out, atp_slice did, atp_slice rev, const atp_cid *data,
                                    const atp_key *key, atp_commit *commit_out, atp_cid *cid_out,
                                    atp_err *err);

/* Decodes a signed commit strictly: one DAG-CBOR map (canonical, at most ATP_COMMIT_MAX_BYTES)
 * with exactly the six fields, each of its type: did a valid DID, rev a valid TID, sig 64
 * bytes, data a dag-cbor sha2-256 link, prev present (null or such a link), version the
 * integer 3. Unknown fields are refused (they would be covered by the signature, and nothing
 * in v3 defines one). The signature itself is not checked (atp_commit_verify). did/rev are
 * borrowed from `in`; the decoder's tree is allocated from `a`. Errors: ATP_EINVAL,
 * ATP_ELIMIT. */
ATP_NODISCARD int atp_commit_decode(atp_arena *a, atp_slice in, atp_commit *out, atp_err *err);

/* Verifies c->sig against `key` over the unsigned encoding. 0 if valid; ATP_EINVAL for a
 * malformed or high-S signature, ATP_ESIG if it does not verify. No allocation. */
ATP_NODISCARD int atp_commit_verify(const atp_commit *c, const atp_key *key, atp_err *err);

/* CID of signed commit bytes (dag-cbor, sha2-256). */
void atp_commit_cid(atp_slice signed_bytes, atp_cid *out);

/* The rev of the next commit: a TID from the clock, strictly greater than `prev_rev` (empty for
 * the first commit) and than every TID this process issued (atp_tid_next_after). */
void atp_commit_next_rev(atp_slice prev_rev, char out[14]);

/* Consumer rule for an incoming commit's rev (spec repository.md §3): a valid TID, strictly
 * greater than `last_rev` (empty: no previous rev), and at most `max_future_us` microseconds
 * after `now_us` (indigo allows 5 minutes). ATP_EINVAL (not a TID), ATP_ECONFLICT (not after
 * last_rev: callers usually drop such events silently), ATP_ELIMIT (too far in the future). */
ATP_NODISCARD int atp_commit_check_rev(atp_slice rev, atp_slice last_rev, uint64_t now_us,
                                       uint64_t max_future_us, atp_err *err);

#endif
