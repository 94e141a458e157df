/* atp/sqlvfs.h: a SQLite VFS over the platform's default one that hands each write-ahead-log
 * append to the kernel in one write.
 *
 * SQLite appends a commit to the WAL frame by frame, a 24-byte frame header and then the page,
 * each in a pwrite of its own: a commit of 21 pages is 42 system calls, and since 4,120-byte
 * frames straddle 4 KiB pages, about 63 page-cache updates. Measured on the pds write path
 * (2-core VM), those calls were a quarter of the server's CPU. This VFS keeps a WAL file's
 * contiguous appends in memory (a "run") and writes a run with one pwrite:
 *   - at the end of each commit: a commit's last frame is marked as such in its header (the
 *     database size after the commit, non-zero only there; the WAL format is fixed since SQLite
 *     3.7.0), so the run is written in the same xWrite call that hands over that frame's page,
 *     and a failure is that commit's own write error. Only then does SQLite publish the frames
 *     in the wal-index for other connections, synced or not;
 *   - before the WAL file is synced, read, truncated, sized, locked or closed, and before any
 *     file control reaches it;
 *   - when a write does not extend the run, or would take it past ATP_SQLVFS_RUN_MAX.
 * Frames of a transaction not yet committed (a cache spill) may wait in a run: no other
 * connection reads them, and the writing connection's own reads write the run first. So
 * SQLite's syncs still come after the bytes they cover, and no connection, in this process or
 * another, sees a committed frame the file does not hold: what is durable when is unchanged.
 *
 * Checkpoints write the database file page by page, as with the default VFS: gathering them
 * was measured (no change in the pds write benchmark), and a checkpoint reports its last
 * write's error nowhere a gathered run could return it.
 *
 * Files other than WAL files are the default VFS's own objects, untouched.
 *
 * Threading: SQLite serialises the calls on one connection's files and a run belongs to one
 * file, so no lock is taken; a thread keeps one spare run buffer (freed when the thread ends).
 */
#ifndef ATP_SQLVFS_H
#define ATP_SQLVFS_H

#include <stdbool.h>

#include "atp/err.h"

#define ATP_SQLVFS_NAME "atp"
/* The unix VFS writes at most 128 KiB - 1 bytes per call (it masks the length with 0x1ffff and
 * reports a short write as SQLITE_FULL), so a run stops below that. */
#define ATP_SQLVFS_RUN_MAX (128 * 1024 - 1)

/* Registers the VFS under ATP_SQLVFS_NAME over the current default VFS (once per process;
 * later calls only update `make_default`). With `make_default`, every connection opened without
 * an explicit VFS name uses it. Thread-safe. ATP_EIO if SQLite refuses the registration. */
ATP_NODISCARD int atp_sqlvfs_register(bool make_default, atp_err *err);

/* Counters since registration, for tests and metrics: pwrite calls made for buffered runs, and
 * writes absorbed into runs (each one a pwrite saved). */
typedef struct atp_sqlvfs_stats {
    unsigned long long runs, absorbed;
} atp_sqlvfs_stats;
void atp_sqlvfs_get_stats(atp_sqlvfs_stats *out);

#endif
