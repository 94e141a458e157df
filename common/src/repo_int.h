/* repo_int.h: helpers shared by the repo_*.c files (a CID set, a block vector, a block store
 * wrapper that remembers which CID was missing, loading a CAR into a memory store). */
#ifndef ATP_REPO_INT_H
#define ATP_REPO_INT_H

#include "atp/repo.h"

/* ---- a set of CIDs (open addressing; CIDs stored by value) ---- */

typedef struct atp__cidset {
    atp_cid *slots;
    size_t cap, n; /* cap is 0 or a power of two; a slot with len 0 is free */
} atp__cidset;

/* Adds `c`; true if it was not there yet. */
bool atp__cidset_add(atp__cidset *s, const atp_cid *c);
bool atp__cidset_has(const atp__cidset *s, const atp_cid *c);
void atp__cidset_release(atp__cidset *s);

/* ---- a growable array of blocks (data borrowed) ---- */

typedef struct atp__blockvec {
    atp_block *v;
    size_t n, cap;
} atp__blockvec;

void atp__blockvec_push(atp__blockvec *bv, const atp_cid *cid, atp_slice data);
void atp__blockvec_release(atp__blockvec *bv);

/* ---- a block store wrapper that records the first CID a get/has found missing ---- */

typedef struct atp__trace_store {
    atp_blockstore base;
    atp_blockstore *inner; /* borrowed */
    bool missed;
    atp_cid missing;
} atp__trace_store;

/* Caller-owned; destroying the wrapper does nothing (the inner store stays the caller's). */
void atp__trace_store_init(atp__trace_store *t, atp_blockstore *inner);

/* ---- shared steps ---- */

/* Reads a whole CAR into `mem` (every block hash checked) and returns roots[0] in *root.
 * ATP_EINVAL if the CAR has no root; CAR errors otherwise. */
int atp__car_load(atp_slice car, const atp_car_limits *lim, atp_blockstore *mem, atp_cid *root,
                  atp_err *err);

/* Checks record bytes: at most lim->max_len bytes, one valid DAG-CBOR item, a map. */
int atp__record_check(atp_slice bytes, const atp_cbor_limits *lim, atp_err *err);

/* The record limits of the repo layer: the CBOR defaults with max_len ATP_REPO_MAX_RECORD. */
extern const atp_cbor_limits atp__repo_record_limits;

/* Loads and decodes the commit `cid` from `bs`; did/rev are copied into `a`. */
int atp__commit_load(atp_blockstore *bs, const atp_cid *cid, atp_arena *a, atp_commit *out,
                     atp_err *err);

/* "bafy..." of a CID into a caller's buffer of ATP_CID_STR_MAX bytes; returns it. */
const char *atp__cid_str(const atp_cid *c, char *buf);

#endif
