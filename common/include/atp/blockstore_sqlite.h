/* atp/blockstore_sqlite.h: the SQLite backing of atp/blockstore.h, over a caller's connection.
 *
 * The PDS keeps one SQLite file per account; the store lives in one table of that file:
 *
 *   CREATE TABLE repo_block (cid BLOB PRIMARY KEY, rev TEXT NOT NULL, data BLOB NOT NULL)
 *       WITHOUT ROWID;
 *   CREATE INDEX repo_block_rev ON repo_block (rev);
 *
 * `cid` is the binary CID, `rev` the repo rev (TID) of the commit that first wrote the block
 * (TIDs sort as text, so "blocks since rev" is one range scan of the index).
 *
 * Transactions: put_batch and remove_batch are atomic. Outside a transaction each runs in its
 * own BEGIN IMMEDIATE ... COMMIT; inside the caller's open transaction they run in a SAVEPOINT
 * (released on success, rolled back to on failure), so the PDS can wrap block writes, its
 * record index and its event sequence in one transaction of its own and commit them together.
 *
 * Threading: like the sqlite3 connection it borrows, a store is used by one thread at a time.
 * each_since must not be re-entered from its own callback (get/has/put from it are fine).
 */
#ifndef ATP_BLOCKSTORE_SQLITE_H
#define ATP_BLOCKSTORE_SQLITE_H

#include <sqlite3.h>

#include "atp/blockstore.h"

/* Flags for atp_blockstore_sqlite_open_file. */
enum {
    /* synchronous=NORMAL instead of FULL: faster commits, but the last transactions may roll
     * back after a power loss or OS crash (never after a process crash such as kill -9, and the
     * file stays consistent). For caches that can be rebuilt (relay/AppView state), not for a
     * PDS's account data. */
    ATP_BS_SQLITE_RELAXED = 1 << 0,
    /* Open read-only (no table creation in atp_blockstore_sqlite_create then). */
    ATP_BS_SQLITE_READONLY = 1 << 1,
};

/* Opens (creating if absent, unless ATP_BS_SQLITE_READONLY) the SQLite file `path` as the
 * store's opener should: journal_mode=WAL, synchronous=FULL (see ATP_BS_SQLITE_RELAXED),
 * foreign_keys=ON, a 5 s busy timeout. Durability: in WAL mode a COMMIT appends to the WAL
 * file; with synchronous=FULL the WAL is also fsync'ed at each COMMIT, so an acknowledged write
 * survives a process kill *and* a power loss. NORMAL only syncs at checkpoints: a kill -9 loses
 * nothing (the bytes are in the OS page cache), a power cut may lose the last commits. A PDS
 * acknowledges writes and emits firehose events for them, so it must use FULL.
 * *out is owned: sqlite3_close it after destroying the stores over it.
 * Errors: ATP_EIO with SQLite's message. */
ATP_NODISCARD int atp_blockstore_sqlite_open_file(const char *path, unsigned flags, sqlite3 **out,
                                                  atp_err *err);

/* A store over `db` (borrowed: must outlive the store, which never closes it). Creates the
 * table and index if absent (IF NOT EXISTS: safe on every open) and prepares the statements it
 * caches. Owned: atp_blockstore_destroy (finalizes the statements). Errors: ATP_EIO. */
ATP_NODISCARD int atp_blockstore_sqlite_create(sqlite3 *db, atp_blockstore **out, atp_err *err);

/* The connection a SQLite store runs on (borrowed), or NULL if `bs` is another backing. */
sqlite3 *atp_blockstore_sqlite_db(atp_blockstore *bs);

/* Number of blocks in the table, and their total data bytes. ATP_EIO on SQLite failure. */
ATP_NODISCARD int atp_blockstore_sqlite_count(atp_blockstore *bs, uint64_t *blocks, uint64_t *bytes,
                                              atp_err *err);

#endif
