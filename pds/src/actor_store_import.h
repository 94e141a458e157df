/* pds/src/actor_store_import.h: com.atproto.repo.importRepo's storage side. A migrating
 * account's repo arrives as a CAR; it replaces whatever the account's file held (normally
 * nothing, or the empty repo) in ONE transaction on that file: the verified blocks, the record
 * index, the record -> blob links (blobs not uploaded yet then show in listMissingBlobs), the
 * repo root, and what the caller's hook writes (the #sync event in seq_outbox).
 */
#ifndef PDS_ACTOR_STORE_IMPORT_H
#define PDS_ACTOR_STORE_IMPORT_H

#include <sqlite3.h>
#include <stddef.h>

#include "atp/buf.h"
#include "atp/crypto.h"
#include "atp/err.h"
#include "atp/repo.h"

#include "actor_store.h"

/* Called inside the import's transaction, after blocks, index and root are written: `head` and
 * `rev` of the imported commit and its block bytes. Non-zero rolls the import back. */
typedef int (*pds_import_hook)(void *ctx, sqlite3 *db, atp_slice did, const atp_cid *head,
                               atp_slice commit_block, const char *rev, atp_err *err);

typedef struct pds_import_result {
    pds_commit_info commit; /* the imported head and rev */
    size_t n_records;       /* records indexed */
    size_t n_blocks;        /* blocks stored */
    size_t n_blob_refs;     /* distinct (blob, record) links */
} pds_import_result;

/* Imports the CAR `car` as the whole repo of `did` (its file created if absent). Every block's
 * hash, the MST, every record, the commit's did (= `did`) and its signature (by `key`, borrowed,
 * required) are checked before anything is stored; the previous repo blocks, records and blob
 * links are replaced, uploaded blob rows are kept. `hook` (nullable) runs inside the
 * transaction. *out written on success only. Errors: ATP_EINVAL (bad CAR, commit, tree, record,
 * wrong did), ATP_ETRUNC, ATP_EHASH, ATP_ELIMIT, ATP_ENOTFOUND (a block missing), ATP_ESIG
 * (signature), ATP_EIO (storage), or the hook's error. */
ATP_NODISCARD int pds_actor_store_import(pds_actor_store *s, atp_slice did, atp_slice car,
                                         const atp_key *key, pds_import_hook hook, void *hook_ctx,
                                         pds_import_result *out, atp_err *err);

/* Counts for com.atproto.server.checkAccountStatus: blocks, indexed records, blobs referenced
 * by records (expected) and blob rows present (imported). ATP_ENOTFOUND if no account file. */
typedef struct pds_repo_counts {
    int64_t blocks, records, expected_blobs, imported_blobs;
} pds_repo_counts;
ATP_NODISCARD int pds_actor_store_counts(pds_actor_store *s, atp_slice did, pds_repo_counts *out,
                                         atp_err *err);

/* Empties the account's file (blocks, records, blob rows and links, root, outbox) in one
 * transaction and leaves its handle with no repo, so that the folder can then be removed:
 * account deletion. ATP_ENOTFOUND if there is no file. */
ATP_NODISCARD int pds_actor_store_wipe(pds_actor_store *s, atp_slice did, atp_err *err);

#endif
