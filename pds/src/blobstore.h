/* pds/src/blobstore.h: blob bytes on disk (PDS_BLOBSTORE_DISK_LOCATION), content-addressed per
 * account; the references (temp/permanent, record links, takedowns) are in the account's file
 * (actor_store.h). The blob engineer's module: the calls below are what other modules use. */
#ifndef PDS_BLOBSTORE_H
#define PDS_BLOBSTORE_H

#include "atp/err.h"

#include "config.h"

typedef struct pds_blobstore pds_blobstore;

/* Opens the store under cfg->blob_dir (created). Owned: pds_blobstore_close (NULL no-op). */
ATP_NODISCARD int pds_blobstore_open(const pds_config *cfg, pds_blobstore **out, atp_err *err);
void pds_blobstore_close(pds_blobstore *bs);

/* Removes every blob of `did` (temporary and permanent): account deletion. */
ATP_NODISCARD int pds_blobstore_delete_account(pds_blobstore *bs, const char *did, atp_err *err);

#endif
