/* pds/src/actor_store_blob.h: the blob rows of an account's file (tables blob and record_blob,
 * actor_store.h), for uploadBlob, getBlob, listBlobs, listMissingBlobs and the blob garbage
 * collector. The bytes live in blobstore.h; the callbacks below run with the account locked
 * (actor_store_int.h), so that a row and its file change together with respect to record
 * writes and to each other. All functions are thread-safe.
 */
#ifndef PDS_ACTOR_STORE_BLOB_H
#define PDS_ACTOR_STORE_BLOB_H

#include <stdbool.h>
#include <stdint.h>

#include "actor_store.h"

#define PDS_BLOB_MIME_MAX 127 /* as PDS_MIME_MAX (blobstore.h) */

/* One blob row. */
typedef struct pds_blob_row {
    atp_cid cid;
    char mime[PDS_BLOB_MIME_MAX + 1];
    uint64_t size;
    bool temp;      /* not referenced by any record */
    bool takendown; /* takedownRef set */
    char created_at[32];
} pds_blob_row;

/* Called with the account locked. A non-zero return is returned by the caller. */
typedef int (*pds_blob_locked_fn)(void *ctx, const atp_cid *cid, bool permanent, atp_err *err);

/* Records an upload. With the account locked: a taken-down row refuses it (ATP_EFORBIDDEN,
 * "Blob has been takendown, cannot re-upload"); place(ctx, cid, permanent, err) puts the bytes
 * in place (permanent when a record already links the CID: a re-upload after importRepo, as
 * the reference); then the row is inserted, or, if temporary, refreshed (mimeType, size,
 * createdAt = now: the grace period starts again). A permanent row keeps its type and size.
 * *permanent (nullable) tells which. Errors: ATP_ENOTFOUND (no repo), place's, ATP_EIO. */
ATP_NODISCARD int pds_actor_blob_track(pds_actor_store *s, atp_slice did, const atp_cid *cid,
                                       atp_slice mime, uint64_t size, pds_blob_locked_fn place,
                                       void *ctx, bool *permanent, atp_err *err);

/* The row of `cid`: *found, and *out when found. ATP_ENOTFOUND (no repo), ATP_EIO. */
ATP_NODISCARD int pds_actor_blob_get(pds_actor_store *s, atp_slice did, const atp_cid *cid,
                                     pds_blob_row *out, bool *found, atp_err *err);

/* Called per listed blob (borrowed for the call); non-zero stops the listing. */
typedef int (*pds_blob_list_fn)(void *ctx, const atp_cid *cid, atp_slice record_uri);

/* listBlobs: distinct CIDs linked by records (with `since` non-empty: by records whose repoRev
 * is greater), in binary CID order after `cursor` (nullable), at most `limit` (1..1000).
 * record_uri is empty. *n_out = CIDs given. ATP_EINVAL (limit), ATP_ENOTFOUND, ATP_EIO. */
ATP_NODISCARD int pds_actor_blob_list(pds_actor_store *s, atp_slice did, atp_slice since,
                                      const atp_cid *cursor, size_t limit, pds_blob_list_fn fn,
                                      void *ctx, size_t *n_out, atp_err *err);

/* listMissingBlobs: CIDs linked by records but with no blob row (the bytes were never
 * uploaded, e.g. after importRepo), one record URI each, in binary CID order after `cursor`
 * (nullable), at most `limit` (1..1000). Errors as pds_actor_blob_list. */
ATP_NODISCARD int pds_actor_blob_list_missing(pds_actor_store *s, atp_slice did,
                                              const atp_cid *cursor, size_t limit,
                                              pds_blob_list_fn fn, void *ctx, size_t *n_out,
                                              atp_err *err);

/* Garbage collection of one account, with the account locked throughout:
 *   - every temporary row created before `cutoff_iso` (an RFC 3339 time in the store's format)
 *     that no record links is deleted, then drop(ctx, cid, false, err) removes its bytes (a
 *     drop failure keeps nothing inconsistent: the row is already gone, the next sweep's file
 *     pass removes the bytes);
 *   - then each CID in check[0..n_check) (files found in the temporary area) is looked up:
 *     permanent rows get keep(ctx, cid, true, err) (move the bytes), rowless ones
 *     drop(ctx, cid, false, err) (the caller passes only files older than the cutoff).
 * *n_deleted (nullable) = rows deleted. ATP_ENOTFOUND (no repo), ATP_EIO. */
ATP_NODISCARD int pds_actor_blob_gc(pds_actor_store *s, atp_slice did, const char *cutoff_iso,
                                    const atp_cid *check, size_t n_check, pds_blob_locked_fn drop,
                                    pds_blob_locked_fn keep, void *ctx, size_t *n_deleted,
                                    atp_err *err);

#endif
