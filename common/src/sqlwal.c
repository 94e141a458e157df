/* sqlwal.c: WAL checkpoints off the writer's commits. See atp/sqlwal.h. */
#include "atp/sqlwal.h"

static int on_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    atp_sqlwal *w = arg;
    unsigned n = frames > 0 ? (unsigned)frames : 0;
    atomic_store_explicit(&w->frames, n, memory_order_relaxed);
    if (w->limit > 0 && n >= w->limit) {
        /* the checkpointer fell behind: this commit does it, as SQLite would have */
        (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    }
    return SQLITE_OK;
}

void atp_sqlwal_watch(sqlite3 *db, atp_sqlwal *w, unsigned limit)
{
    if (!w) {
        (void)sqlite3_wal_autocheckpoint(db, 1000); /* SQLite's default */
        return;
    }
    atomic_init(&w->frames, 0u);
    w->limit = limit;
    (void)sqlite3_wal_hook(db, on_commit, w);
}

unsigned atp_sqlwal_frames(atp_sqlwal *w)
{
    return atomic_load_explicit(&w->frames, memory_order_relaxed);
}

int atp_sqlwal_checkpoint(sqlite3 *db, int *log_frames, int *done_frames, atp_err *err)
{
    int nlog = 0, ndone = 0;
    int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &ndone);
    if (rc == SQLITE_OK && nlog < 0) {
        /* a connection is not in WAL mode until it has read the file: the checkpoint did
         * nothing. Reading the journal mode gets it there. */
        if (sqlite3_exec(db, "PRAGMA journal_mode", NULL, NULL, NULL) != SQLITE_OK) {
            return atp_err_set(err, ATP_EIO, 0, "checkpoint: %s", sqlite3_errmsg(db));
        }
        rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &ndone);
    }
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        return atp_err_set(err, ATP_EIO, 0, "checkpoint: %s", sqlite3_errmsg(db));
    }
    if (log_frames) {
        *log_frames = nlog;
    }
    if (done_frames) {
        *done_frames = ndone;
    }
    return 0;
}

int atp_sqlwal_checkpoint_file(const char *path, atp_err *err)
{
    sqlite3 *db = NULL;
    int rc = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        rc = atp_err_set(err, ATP_EIO, 0, "open %s: %s", path, db ? sqlite3_errmsg(db) : "?");
    } else {
        sqlite3_busy_timeout(db, 1000);
        rc = atp_sqlwal_checkpoint(db, NULL, NULL, err);
    }
    sqlite3_close(db);
    return rc;
}
