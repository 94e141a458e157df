/* pds/src/blobstore.h: blob bytes on disk (PDS_BLOBSTORE_DISK_LOCATION), content-addressed per
 * account; the references (temp/permanent, record links, takedowns) are in the account's file
 * (actor_store.h, actor_store_blob.h). The blob engineer's module: the calls below are what
 * other modules use.
 *
 * Layout, the reference's disk blobstore's (an operator can move the folder over):
 *
 *   <loc>/<did>/<cid>              permanent blobs (referenced by a record)
 *   <loc>/tempt/<did>/<cid>        uploads not yet referenced (the reference's "tempt")
 *   <loc>/quarantine/<did>/<cid>   taken-down blobs
 *
 * Every file is written as <dir>/.<cid>.<random>.part, fsynced, renamed into place and the
 * folder fsynced: a blob acknowledged to the client survives kill -9, and readers never see a
 * partial file. Moves between areas are rename(2) (same filesystem), idempotent: a move whose
 * source is gone succeeds when the target exists.
 *
 * Permanence: a record write marks its blobs permanent in the account's file (actor_store.c);
 * the bytes move from tempt/ to <did>/ lazily, when getBlob first serves them or at the next
 * garbage-collection sweep, whichever comes first (no file I/O inside the write transaction).
 *
 * Garbage collection: a thread wakes every cfg->blob_gc_interval seconds and, per account
 * folder, deletes blobs whose row is temporary and older than cfg->blob_temp_max_age seconds
 * (never referenced, or no longer referenced since the last record using them was deleted),
 * moves referenced blobs still in tempt/ to their permanent place, and removes stale .part
 * files and unknown files older than the same age. All functions are thread-safe.
 */
#ifndef PDS_BLOBSTORE_H
#define PDS_BLOBSTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "atp/buf.h"
#include "atp/cid.h"
#include "atp/err.h"

#include "config.h"

typedef struct pds_blobstore pds_blobstore;
typedef struct pds_actor_store pds_actor_store;

#define PDS_MIME_MAX 127  /* stored MIME types: "type/subtype" */
#define PDS_SNIFF_MAX 64  /* bytes the content sniffer looks at */
#define PDS_BLOB_PATH_MAX 4400

/* Opens the store under cfg->blob_dir (created). Owned: pds_blobstore_close (NULL no-op). */
ATP_NODISCARD int pds_blobstore_open(const pds_config *cfg, pds_blobstore **out, atp_err *err);
/* Stops the GC thread (if started) and frees. */
void pds_blobstore_close(pds_blobstore *bs);

/* Removes every blob of `did` (temporary, permanent, quarantined): account deletion.
 * ATP_EINVAL for a bad DID, ATP_EIO when a file cannot be removed. */
ATP_NODISCARD int pds_blobstore_delete_account(pds_blobstore *bs, const char *did, atp_err *err);

/* ---- content types (pure) ---- */

/* The MIME type that the first bytes of `data` show (magic numbers of the common image,
 * video, audio and document formats), or NULL when none matches. Reads at most
 * PDS_SNIFF_MAX bytes. Returns static text. */
const char *pds_blob_sniff(atp_slice data);

/* A client's Content-Type as stored: parameters (";...") and blanks dropped, case kept (as
 * the reference); it must be "type/subtype" of RFC 7230 token characters, at most
 * PDS_MIME_MAX bytes. Writes
 * out (NUL-terminated) and returns its length, or 0 (out = "") when invalid or empty. */
size_t pds_blob_mime_normalize(atp_slice in, char out[PDS_MIME_MAX + 1]);

/* The type stored for an upload, as the reference: the sniffed type when there is one, else
 * the client's (normalized), else "application/octet-stream". Returns the length of out. */
size_t pds_blob_mime_choose(atp_slice header, atp_slice data, char out[PDS_MIME_MAX + 1]);

/* ---- files ---- */

typedef enum pds_blob_area {
    PDS_BLOB_TEMP = 0,
    PDS_BLOB_PERM,
    PDS_BLOB_QUARANTINE,
} pds_blob_area;

/* The file of (`did`, `cid`) in `area` into out[cap]. ATP_EINVAL for a DID that is not valid
 * DID syntax, ATP_ELIMIT when it does not fit. */
ATP_NODISCARD int pds_blobstore_path(const pds_blobstore *bs, pds_blob_area area, atp_slice did,
                                     const atp_cid *cid, char *out, size_t cap, atp_err *err);

/* Writes `data` durably to a fresh staging file in the account's tempt/ folder; its name goes
 * to stage[cap] for pds_blobstore_commit_stage (or pds_blobstore_drop_stage). ATP_EIO. */
ATP_NODISCARD int pds_blobstore_stage(pds_blobstore *bs, atp_slice did, atp_slice data,
                                      char *stage, size_t cap, atp_err *err);

/* Renames a staged file to its place in `area` (PDS_BLOB_TEMP or PDS_BLOB_PERM) and fsyncs
 * the folder. ATP_EIO. */
ATP_NODISCARD int pds_blobstore_commit_stage(pds_blobstore *bs, const char *stage, atp_slice did,
                                             const atp_cid *cid, pds_blob_area area,
                                             atp_err *err);
/* Removes a staged file that will not be committed (NULL/"" no-op). */
void pds_blobstore_drop_stage(const char *stage);

/* Moves the blob from area `from` to `to`. Succeeds if the source is gone but the target
 * exists; ATP_ENOTFOUND if neither exists; ATP_EIO. */
ATP_NODISCARD int pds_blobstore_move(pds_blobstore *bs, atp_slice did, const atp_cid *cid,
                                     pds_blob_area from, pds_blob_area to, atp_err *err);

/* Removes the blob's files in every area (absent files are fine). ATP_EIO. */
ATP_NODISCARD int pds_blobstore_delete(pds_blobstore *bs, atp_slice did, const atp_cid *cid,
                                       atp_err *err);

/* Takedown of a blob: its permanent file moves to quarantine (and back). For the admin
 * module, after it sets or clears the blob row's takedownRef. ATP_ENOTFOUND, ATP_EIO. */
ATP_NODISCARD int pds_blobstore_quarantine(pds_blobstore *bs, atp_slice did, const atp_cid *cid,
                                           atp_err *err);
ATP_NODISCARD int pds_blobstore_unquarantine(pds_blobstore *bs, atp_slice did,
                                             const atp_cid *cid, atp_err *err);

/* Opens the permanent file for reading: *fd (owned: close) and *size. When only the
 * temporary file exists (the row is permanent but the move has not happened yet), moves it
 * first. ATP_ENOTFOUND, ATP_EIO. */
ATP_NODISCARD int pds_blobstore_open_read(pds_blobstore *bs, atp_slice did, const atp_cid *cid,
                                          int *fd, uint64_t *size, atp_err *err);

/* ---- garbage collection ---- */

typedef struct pds_blob_gc_stats {
    uint64_t deleted, moved, stale_files, accounts;
} pds_blob_gc_stats;

/* One sweep now, over every account folder, with `now` as the Unix time (see the header
 * comment). Accounts without a repo file are skipped. Counts are added to *st (nullable). */
ATP_NODISCARD int pds_blobstore_sweep(pds_blobstore *bs, pds_actor_store *actors, int64_t now,
                                      pds_blob_gc_stats *st, atp_err *err);

/* Starts the periodic sweep thread over `actors` (borrowed: must outlive the store's close,
 * which stops the thread). A second call is a no-op. ATP_EIO if the thread cannot start. */
ATP_NODISCARD int pds_blobstore_gc_start(pds_blobstore *bs, pds_actor_store *actors, atp_err *err);

/* Totals of every sweep so far (for metrics and tests). */
void pds_blobstore_gc_stats_get(pds_blobstore *bs, pds_blob_gc_stats *out);

#endif
