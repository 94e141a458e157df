/* pds/src/actor_store.h: per-account repository storage of the PDS (issue 5).
 *
 * Each hosted account has its own SQLite file, laid out as the reference PDS does:
 *
 *   <dir>/<shard>/<did>/store.sqlite     shard = first 2 hex chars of sha256(did)
 *
 * holding, in WAL mode with synchronous=FULL (an acknowledged write survives kill -9 and power
 * loss):
 *
 *   repo_block   the repo's blocks (atp/blockstore_sqlite.h)
 *   repo_root    one row: did, head commit CID, rev, indexedAt
 *   record       uri, cid, collection, rkey, repoRev, indexedAt, takedownRef
 *   blob         cid, mimeType, size, temp flag, createdAt, takedownRef
 *   record_blob  blobCid <-> recordUri links
 *   seq_outbox   firehose events written with the change, until sequenced (sequencer.h)
 *
 * A write (one createRecord/putRecord/deleteRecord/applyWrites call) is one SQLite transaction:
 * new blocks, record index, blob links, repo_root and whatever the commit hook adds (the firehose
 * sequencer of the next slice) commit together or not at all.
 *
 * Handles are opened lazily and kept in a bounded LRU; every operation on an account runs under
 * that account's mutex (writers to one account are serialised, accounts proceed in parallel).
 * Group commit: concurrent pds_actor_store_apply calls on one account queue up; one of them runs
 * every queued call, each as its own signed commit in its own SAVEPOINT, inside ONE transaction,
 * so they share one COMMIT (one WAL fsync) and all return once it is durable. A refused call
 * rolls back to its savepoint without disturbing the others.
 * All functions are thread-safe.
 */
#ifndef PDS_ACTOR_STORE_H
#define PDS_ACTOR_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "atp/buf.h"
#include "atp/cbor.h"
#include "atp/cid.h"
#include "atp/crypto.h"
#include "atp/lexicon.h"
#include "atp/repo.h"

typedef struct pds_actor_store pds_actor_store;

#define PDS_ACTOR_MAX_OPEN_DEFAULT 256
#define PDS_URI_MAX                (5 + 2048 + 1 + ATP_REPO_MAX_PATH + 1)
#define PDS_COMMIT_MAX_BYTES       2000000 /* blocks of one #commit (spec pds-endpoints §3) */

/* Called once per commit inside the write transaction, after that commit's blocks, index and
 * root are written and before COMMIT: a non-zero return rolls that commit back (its savepoint)
 * and is returned by its write. Commits of one group share the transaction, so what the hook
 * writes becomes durable, or not, with them. `db` is the account's connection (borrowed for the
 * call). Nothing is durable yet when it runs: the hook may leave in *staged what it wants back
 * once the outcome is known (pds_commit_done), e.g. the event it wrote, to hand on in memory. */
typedef int (*pds_commit_hook)(void *ctx, sqlite3 *db, atp_slice did, const atp_repo_commit *c,
                               void **staged, atp_err *err);

/* Called for each non-NULL *staged a hook left, once the transaction holding it ended:
 * `durable` when its COMMIT succeeded (the fsync is done), false when the commit was rolled
 * back. In commit order, with the account still locked, so one account's commits arrive in
 * their order. Takes ownership of staged. */
typedef void (*pds_commit_done)(void *ctx, atp_slice did, void *staged, bool durable);

typedef struct pds_actor_store_opts {
    const char *dir;        /* the actors folder (PDS_DATA_DIRECTORY/actors); created */
    size_t max_open;        /* open account files kept; 0 = PDS_ACTOR_MAX_OPEN_DEFAULT */
    const atp_lexicon *lex; /* record schemas (borrowed; nullable = every type unknown) */
    pds_commit_hook hook;   /* nullable */
    pds_commit_done done;   /* nullable (then nothing may be staged) */
    void *hook_ctx;         /* both callbacks' ctx */
} pds_actor_store_opts;

void pds_actor_store_destroy(pds_actor_store *s);

/* A store over opts->dir (copied; created if absent). Owned: pds_actor_store_destroy (NULL is a
 * no-op; no operation may be running). Errors: ATP_EIO (directory). */
ATP_NODISCARD int pds_actor_store_open(const pds_actor_store_opts *opts, pds_actor_store **out,
                                       atp_err *err);

/* The file of `did`: "<dir>/<shard>/<did>/store.sqlite" into out[cap]. ATP_EINVAL for a bad
 * DID, ATP_ELIMIT if it does not fit. */
ATP_NODISCARD int pds_actor_store_path(const pds_actor_store *s, atp_slice did, char *out,
                                       size_t cap, atp_err *err);

/* Commit head and rev of an account. */
typedef struct pds_commit_info {
    atp_cid cid;
    char rev[14];
} pds_commit_info;

/* Creates the account's file with an empty repo: a first signed commit with no records, made
 * with `key` (borrowed for the call). The commit hook runs for it. Errors: ATP_EINVAL (DID),
 * ATP_ECONFLICT (the account already has a repo), ATP_EIO. */
ATP_NODISCARD int pds_actor_store_create_repo(pds_actor_store *s, atp_slice did, const atp_key *key,
                                              pds_commit_info *out, atp_err *err);

/* Whether the account has a repo here. */
bool pds_actor_store_exists(const pds_actor_store *s, atp_slice did);

/* Current head and rev. ATP_ENOTFOUND (RepoNotFound) if the account has no repo. */
ATP_NODISCARD int pds_actor_store_root(pds_actor_store *s, atp_slice did, pds_commit_info *out,
                                       atp_err *err);

/* ---- writes ---- */

typedef enum pds_validate {
    PDS_VALIDATE_UNSET = 0, /* validate known types; unknown ones stored, status "unknown" */
    PDS_VALIDATE_TRUE,      /* the type must be known and the record valid */
    PDS_VALIDATE_FALSE,     /* no Lexicon validation (status absent) */
} pds_validate;

/* One write. `record` (create/update) is the record as decoded from JSON with ATP_JSON_DATA:
 * `$type` is added when missing and must equal `collection` when present. `rkey` empty on a
 * create: a new TID. Swap (update/delete): has_swap with swap_null = "must not exist" or
 * swap = the current record CID. `upsert`: an update of a missing record creates it
 * (putRecord); `missing_ok`: a delete of a missing record is dropped (deleteRecord). */
typedef struct pds_write {
    atp_repo_action action;
    atp_slice collection;
    atp_slice rkey;
    const atp_cbor *record;
    bool has_swap;
    bool swap_null;
    atp_cid swap;
    bool upsert;
    bool missing_ok;
} pds_write;

/* Per-write outcome, in input order. uri/status point into the arena / static text. */
typedef struct pds_write_result {
    atp_repo_action action; /* what was done (an upsert says create or update) */
    const char *uri;        /* at://did/collection/rkey */
    bool has_cid;           /* create/update: the record CID */
    atp_cid cid;
    const char *status; /* "valid", "unknown", or NULL (validate=false, deletes) */
    bool noop;          /* dropped: identical put, delete of a missing record */
} pds_write_result;

typedef struct pds_apply_out {
    bool committed;            /* false when every write was a no-op (no commit, no event) */
    pds_commit_info commit;    /* the new commit (committed), else the current head */
    pds_write_result *results; /* n entries, from the arena */
} pds_apply_out;

/* Applies up to ATP_REPO_MAX_WRITES writes atomically as one commit signed with `key`
 * (borrowed). `swap_commit` (nullable) must equal the current head. Memory for results from
 * `a`. On failure nothing changed, and *errname (nullable) gets the XRPC error name:
 * "InvalidRecord" (validation, ATP_EINVAL), "InvalidSwap" (ATP_ECONFLICT), "RepoNotFound"
 * (ATP_ENOTFOUND), "BlobNotFound"/"InvalidMimeType"/"InvalidSize" (blob refs),
 * "InvalidRequest" (the rest: bad path, create of an existing record, update/delete of a
 * missing one, ATP_ELIMIT for over 200 writes or a commit over PDS_COMMIT_MAX_BYTES). err->off
 * is the index of the write at fault. */
ATP_NODISCARD int pds_actor_store_apply(pds_actor_store *s, atp_slice did, const atp_key *key,
                                        const pds_write *writes, size_t n, pds_validate validate,
                                        const atp_cid *swap_commit, atp_arena *a,
                                        pds_apply_out *out, const char **errname, atp_err *err);

/* ---- blobs (the blob slice stores the bytes; this keeps the references) ---- */

/* Records a blob uploaded for the account as temporary (kept until a record references it).
 * An existing blob keeps its state. Errors: ATP_ENOTFOUND (no repo), ATP_EIO. */
ATP_NODISCARD int pds_actor_store_blob_add(pds_actor_store *s, atp_slice did, const atp_cid *cid,
                                           atp_slice mime, uint64_t size, atp_err *err);

/* Blob state: *found, and *temp when found. */
ATP_NODISCARD int pds_actor_store_blob_state(pds_actor_store *s, atp_slice did, const atp_cid *cid,
                                             bool *found, bool *temp, atp_err *err);

/* ---- reads ---- */

/* A record: *cid (nullable) and *bytes (nullable, DAG-CBOR copied into `a`). `want` (nullable)
 * must equal its CID. ATP_ENOTFOUND with errname "RepoNotFound" or "RecordNotFound". */
ATP_NODISCARD int pds_actor_store_get_record(pds_actor_store *s, atp_slice did,
                                             atp_slice collection, atp_slice rkey,
                                             const atp_cid *want, atp_arena *a, atp_cid *cid,
                                             atp_slice *bytes, const char **errname, atp_err *err);

/* Called per listed record: rkey, CID and DAG-CBOR (valid for the call). Non-zero stops. */
typedef int (*pds_record_fn)(void *ctx, atp_slice rkey, const atp_cid *cid, atp_slice bytes);

/* Up to `limit` (1..100) records of `collection` in rkey order (descending, or ascending with
 * `reverse`), starting after `cursor` (an rkey; empty = from the start). *n_out = records
 * given to fn. ATP_EINVAL (limit), ATP_ENOTFOUND (no repo), ATP_EIO. */
ATP_NODISCARD int pds_actor_store_list_records(pds_actor_store *s, atp_slice did,
                                               atp_slice collection, size_t limit, atp_slice cursor,
                                               bool reverse, pds_record_fn fn, void *ctx,
                                               size_t *n_out, atp_err *err);

/* Calls fn(ctx, collection) for each collection with records, in order. Non-zero stops. */
ATP_NODISCARD int pds_actor_store_collections(pds_actor_store *s, atp_slice did,
                                              int (*fn)(void *ctx, atp_slice collection), void *ctx,
                                              atp_err *err);

/* The whole repo as a CAR (atp_repo_export) appended to `out`. ATP_ENOTFOUND (no repo). */
ATP_NODISCARD int pds_actor_store_export(pds_actor_store *s, atp_slice did, atp_buf *out,
                                         atp_err *err);

/* Commits made by pds_actor_store_apply and SQLite transactions (each one fsync) used by all
 * writes since open: commits / transactions is the group-commit factor. */
void pds_actor_store_counters(pds_actor_store *s, uint64_t *commits, uint64_t *transactions);

/* Open account handles right now (for metrics and tests). */
size_t pds_actor_store_open_count(pds_actor_store *s);

#endif
