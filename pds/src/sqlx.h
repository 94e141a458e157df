/* pds/src/sqlx.h: the few SQLite and storage helpers every pds module that keeps rows needs
 * (the actor store's files, the service database, the sequencer, the blob store), written once
 * so their error texts, CID columns and timestamps agree. In pds_store, below pds_core, so both
 * libraries use it. None of these allocate. */
#ifndef PDS_SQLX_H
#define PDS_SQLX_H

#include <sqlite3.h>
#include <stdint.h>

#include "atp/buf.h"
#include "atp/cid.h"
#include "atp/err.h"

#define PDS_SQLX_TIME_MAX 32 /* "2024-01-01T00:00:00.000Z" + NUL, with room to spare */

/* Sets err to ATP_EIO, "<what>: <sqlite's last message on db>", and returns ATP_EIO. */
int pds_sqlx_fail(sqlite3 *db, atp_err *err, const char *what);

/* Runs `sql` (one or more statements, no parameters, rows ignored). 0, or ATP_EIO through
 * pds_sqlx_fail. */
ATP_NODISCARD int pds_sqlx_exec(sqlite3 *db, const char *sql, atp_err *err);

/* Prepares `sql` and binds args[0..n) as text to ?1..?n (copied; a NULL entry binds SQL NULL).
 * The statement (owned: sqlite3_finalize it), or NULL when sql does not prepare
 * (sqlite3_errmsg(db) says why). */
sqlite3_stmt *pds_sqlx_prepare_texts(sqlite3 *db, const char *sql, int n,
                                     const char *const *args);

/* Steps a fully bound statement that returns no row, then resets it and clears its bindings so
 * it can be reused. 0, or ATP_EIO through pds_sqlx_fail. */
ATP_NODISCARD int pds_sqlx_step_done(sqlite3 *db, sqlite3_stmt *st, atp_err *err);

/* Binds text s to parameter i (copied: s may go away before the step). */
void pds_sqlx_bind_slice(sqlite3_stmt *st, int i, atp_slice s);

/* Binds c's binary form to parameter i (copied), the form every pds table stores CIDs in. */
void pds_sqlx_bind_cid(sqlite3_stmt *st, int i, const atp_cid *c);

/* Reads a binary CID column into *out. ATP_EIO (out untouched) when the column is NULL, empty
 * or longer than a CID can be. */
ATP_NODISCARD int pds_sqlx_column_cid(sqlite3_stmt *st, int col, atp_cid *out);

/* Formats Unix milliseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC), the one text form of every
 * stored time, so times compare as text. */
void pds_sqlx_time_ms(int64_t ms, char out[PDS_SQLX_TIME_MAX]);

/* The wall clock now, formatted as pds_sqlx_time_ms does. */
void pds_sqlx_time_now(char out[PDS_SQLX_TIME_MAX]);

/* fdatasync of the file at `path` through a descriptor of our own (any descriptor of a file
 * reaches its pages, whoever wrote them). A missing file has nothing to sync: 0. */
ATP_NODISCARD int pds_sqlx_sync_file(const char *path, atp_err *err);

/* mkdir -p: makes each missing component of `path` with `mode`. ATP_EINVAL for an empty path,
 * ATP_ELIMIT for one of PATH_MAX bytes or more, ATP_EIO when a mkdir fails. */
ATP_NODISCARD int pds_sqlx_mkdir_p(const char *path, unsigned mode, atp_err *err);

#endif
