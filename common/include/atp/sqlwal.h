/* atp/sqlwal.h: SQLite WAL checkpoints taken off a writer's commits.
 *
 * By default SQLite checkpoints inside the COMMIT that brings the WAL past 1,000 frames: that
 * commit copies every changed page into the database file and fsyncs it, a few milliseconds in
 * the path of whatever waited for it (measured on the pds: the sequencer's checkpoints held up
 * every write waiting for its answer, p99 12 ms against 9.9 ms without). atp_sqlwal_watch
 * replaces that: after each commit the WAL's size is noted, and a caller's background thread
 * checkpoints from a connection of its own (atp_sqlwal_checkpoint, PASSIVE: it never waits for
 * the writer or readers, so the writer goes on appending meanwhile). Past `limit` frames (a
 * checkpointer that fell behind) the commit checkpoints itself again, so the WAL stays bounded.
 */
#ifndef ATP_SQLWAL_H
#define ATP_SQLWAL_H

#include <sqlite3.h>
#include <stdatomic.h>

#include "atp/err.h"

/* The watch of one writer connection (caller-owned; must outlive the hook, i.e. the
 * connection or atp_sqlwal_watch(db, NULL, 0)). */
typedef struct atp_sqlwal {
    _Atomic unsigned frames; /* WAL frames after the last commit */
    unsigned limit;          /* the commit checkpoints itself past this */
} atp_sqlwal;

/* Installs the watch on `db` (the writer). `w` NULL restores SQLite's own auto-checkpoint. */
void atp_sqlwal_watch(sqlite3 *db, atp_sqlwal *w, unsigned limit);

/* Frames in the WAL as of the writer's last commit. */
unsigned atp_sqlwal_frames(atp_sqlwal *w);

/* A PASSIVE checkpoint of `db`'s main database (any connection to the file). *log_frames and
 * *done_frames (nullable): the WAL's frames and how many are now in the database file.
 * ATP_EIO with SQLite's message on failure (a busy checkpointer is not one: 0). */
ATP_NODISCARD int atp_sqlwal_checkpoint(sqlite3 *db, int *log_frames, int *done_frames,
                                        atp_err *err);

/* Opens the file at `path`, checkpoints it (PASSIVE) and closes it: for a file whose writer
 * is busy elsewhere and which has no checkpoint connection kept open. */
ATP_NODISCARD int atp_sqlwal_checkpoint_file(const char *path, atp_err *err);

#endif
