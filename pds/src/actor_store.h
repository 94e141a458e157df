/* pds/src/actor_store.h: per-account repository storage of the PDS (issue 5).
 *
 * Each hosted account has its own SQLite file, laid out as the reference PDS does:
 *
 *   <dir>/<shard>/<did>/store.sqlite     shard = first 2 hex chars of sha256(did)
 *
 * holding, in WAL mode with synchronous=FULL:
 *
 *   repo_block   the repo's blocks (atp/blockstore_sqlite.h)
 *   repo_root    one row: did, head commit CID, rev, indexedAt
 *   record       uri, cid, collection, rkey, repoRev, indexedAt, takedownRef
 *   blob         cid, mimeType, size, temp flag, createdAt, takedownRef
 *   record_blob  blobCid <-> recordUri links
 *   seq_outbox   firehose events written with the change, until sequenced (sequencer.h)
 *
 * A write (one createRecord/putRecord/deleteRecord/applyWrites call) is one signed commit,
 * applied in memory under the account's mutex: the repo handle moves to it at once, its #commit
 * event goes to the commit hook (the firehose sequencer), and the commit waits in the account's
 * pending list (pending.h) for the file. The write is durable when its event is in the
 * service database's repo_seq (the sequencer, one fsync per group of writes across accounts:
 * the caller answers then). The flusher thread then writes the sequenced commits of each
 * account into its file, many in ONE transaction (blocks, record index, blob links, garbage,
 * repo_root: all or nothing), every flush_ms; anything that reads the file first writes the
 * account's sequenced commits itself, so reads see every acknowledged write. A crash between
 * the two loses nothing acknowledged: recovery writes the events after the last flush back
 * into the files (pds_actor_store_redo). A store without a sequencer (no `done`) lets its
 * commits go to the file at once.
 *
 * Handles are opened lazily and kept in a bounded LRU (a handle with commits not yet sequenced
 * stays open). Every operation on an account runs under that account's mutex (writers to one
 * account are serialised, accounts proceed in parallel). All functions are thread-safe.
 */
#ifndef PDS_ACTOR_STORE_H
#define PDS_ACTOR_STORE_H

#include <sqlite3.h>
#include <stdatomic.h>
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
#define PDS_ACTOR_FLUSH_MS_DEFAULT 50
#define PDS_URI_MAX                (5 + 2048 + 1 + ATP_REPO_MAX_PATH + 1)
#define PDS_COMMIT_MAX_BYTES       2000000 /* blocks of one #commit (spec pds-endpoints §3) */

/* Called once per commit before it takes effect: a non-zero return refuses that commit and is
 * returned by its write. For a commit written straight into the file (a new repo) `db` is the
 * account's connection inside that transaction (borrowed for the call), so what the hook
 * writes commits with it; for a write (applied in memory, the file later) `db` is NULL. The
 * hook may leave in *staged what it wants back once the outcome is known (pds_commit_done),
 * e.g. the event, to hand on in memory. */
typedef int (*pds_commit_hook)(void *ctx, sqlite3 *db, atp_slice did, const atp_repo_commit *c,
                               void **staged, atp_err *err);

/* Called for each non-NULL *staged a hook left, once the commit's outcome is known: `durable`
 * false when it was refused, true when it took effect (written into the file, or applied in
 * memory and pending). For a pending commit `seq_out` is where its event's seq must be stored
 * (atomically, release) once the event is in repo_seq: until then the commit stays out of the
 * file; NULL otherwise. In commit order, with the account still locked, so one account's
 * commits arrive in their order. Takes ownership of staged. */
typedef void (*pds_commit_done)(void *ctx, atp_slice did, void *staged, bool durable,
                                _Atomic int64_t *seq_out);

typedef struct pds_actor_store_opts {
    const char *dir;        /* the actors folder (PDS_DATA_DIRECTORY/actors); created */
    size_t max_open;        /* open account files kept; 0 = PDS_ACTOR_MAX_OPEN_DEFAULT */
    const atp_lexicon *lex; /* record schemas (borrowed; nullable = every type unknown) */
    pds_commit_hook hook;   /* nullable */
    pds_commit_done done;   /* nullable (then nothing may be staged) */
    void *hook_ctx;         /* both callbacks' ctx */
    unsigned flush_ms;      /* the flusher's period; 0 = PDS_ACTOR_FLUSH_MS_DEFAULT */
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

/* Commits made by pds_actor_store_apply and SQLite transactions on the files (each one fsync)
 * since open: commits / transactions is how many commits share a file transaction. */
void pds_actor_store_counters(pds_actor_store *s, uint64_t *commits, uint64_t *transactions);

/* Writes the account's sequenced commits into its file now, for a reader that opens the file
 * on its own connection (getRepo's snapshot). ATP_ENOTFOUND if there is no file. */
ATP_NODISCARD int pds_actor_store_flush(pds_actor_store *s, atp_slice did, atp_err *err);

/* Writes every open account's pending commits into its file, waiting (up to 10 s an account)
 * for those not sequenced yet: for a clean stop, after the sequencer has drained. The first
 * error is returned (the rest are still tried). */
ATP_NODISCARD int pds_actor_store_flush_all(pds_actor_store *s, atp_err *err);

/* A commit acknowledged before a crash, to be written into its file again: what its #commit
 * event holds. Slices and arrays borrowed for the call. */
typedef struct pds_redo {
    atp_slice did, rev, since; /* since: the rev it follows (empty for a first commit) */
    atp_slice commit_bytes;    /* the signed commit block */
    const atp_repo_op *ops;    /* action and path; cid for creates and updates */
    size_t n_ops;
    const atp_block *blocks; /* the event's blocks: records are looked up here first */
    size_t n_blocks;
} pds_redo;

/* Recovery after an unclean stop: brings did's file up to `r`. Nothing happens when the file
 * already holds r->rev or a later one; otherwise the file's head must be r->since, and the
 * commit is applied again from its writes with its own signed bytes (atp_repo_apply_signed:
 * the same tree, the same commit), written in one transaction without a new event. *applied
 * tells which. ATP_ENOTFOUND: no such repo; ATP_EINVAL: r does not follow the file's head, or
 * does not reproduce its signed commit. */
ATP_NODISCARD int pds_actor_store_redo(pds_actor_store *s, const pds_redo *r, bool *applied,
                                       atp_err *err);

/* The smallest seq of a sequenced commit not yet in its file; INT64_MAX if none. Every event
 * with a smaller seq whose commit is pending is in its file already. */
int64_t pds_actor_store_min_unflushed(pds_actor_store *s);

/* Open account handles right now (for metrics and tests). */
size_t pds_actor_store_open_count(pds_actor_store *s);

#endif
