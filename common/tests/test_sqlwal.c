/* test_sqlwal.c: WAL checkpoints off the writer's commits: the watch notes the WAL's size and
 * keeps commits from checkpointing below the limit; a checkpoint from another connection (or
 * by path) backfills the WAL while the writer goes on, and the writer then restarts the WAL;
 * past the limit a commit checkpoints itself; without the watch SQLite's own behaviour is back. */
#include "atp/sqlwal.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"

static char g_dir[] = "/tmp/test_sqlwal.XXXXXX";
static char g_path[256];

static sqlite3 *open_db(void)
{
    sqlite3 *db = NULL;
    T_EQ(sqlite3_open_v2(g_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
         SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    T_EQ(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL),
         SQLITE_OK);
    return db;
}

static void insert_rows(sqlite3 *db, int n)
{
    for (int i = 0; i < n; i++) {
        T_EQ(sqlite3_exec(db, "INSERT INTO t (v) VALUES (randomblob(3000))", NULL, NULL, NULL),
             SQLITE_OK);
    }
}

static long wal_size(void)
{
    char p[300];
    struct stat st;
    snprintf(p, sizeof p, "%s-wal", g_path);
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

/* A new database with table t, its writer watched (limit as atp_sqlwal_watch). */
static sqlite3 *new_watched(atp_sqlwal *w, unsigned limit)
{
    unlink(g_path);
    sqlite3 *db = open_db();
    T_EQ(sqlite3_exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)", NULL, NULL, NULL),
         SQLITE_OK);
    atp_sqlwal_watch(db, w, limit);
    return db;
}

static void test_watch_and_checkpoint(void)
{
    atp_sqlwal w;
    sqlite3 *db = new_watched(&w, 0);
    insert_rows(db, 700); /* about 1,400 frames: SQLite alone would have checkpointed */
    unsigned frames = atp_sqlwal_frames(&w);
    T_TRUE(frames > 1000);
    long grown = wal_size();
    int nlog = 0, ndone = 0;
    /* a fresh connection that never read the file checkpoints as well */
    sqlite3 *fresh = NULL;
    T_EQ(sqlite3_open_v2(g_path, &fresh, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    T_OK(atp_sqlwal_checkpoint(fresh, &nlog, &ndone, NULL));
    T_EQ((unsigned)nlog, frames);
    sqlite3_close(fresh);
    sqlite3 *ck = open_db();
    T_OK(atp_sqlwal_checkpoint(ck, &nlog, &ndone, NULL));
    T_EQ((unsigned)nlog, frames);
    T_EQ(ndone, nlog); /* nobody reads: all of it */
    /* the writer's next commit starts the WAL over: small again, the file not longer */
    insert_rows(db, 1);
    T_TRUE(atp_sqlwal_frames(&w) < 10);
    T_EQ(wal_size(), grown);
    insert_rows(db, 50);
    T_OK(atp_sqlwal_checkpoint_file(g_path, NULL));
    insert_rows(db, 1);
    T_TRUE(atp_sqlwal_frames(&w) < 10);
    sqlite3_int64 n = -1;
    sqlite3_stmt *st = NULL;
    T_EQ(sqlite3_prepare_v2(ck, "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    T_EQ(n, 752);
    sqlite3_close(ck);
    sqlite3_close(db);
}

static void test_limit(void)
{
    atp_sqlwal w;
    sqlite3 *db = new_watched(&w, 100);
    unsigned most = 0;
    for (int i = 0; i < 300; i++) {
        insert_rows(db, 1);
        unsigned f = atp_sqlwal_frames(&w);
        most = f > most ? f : most;
    }
    /* past 100 frames a commit checkpoints, and the next one starts the WAL over */
    T_TRUE(most >= 100 && most < 110);
    T_TRUE(wal_size() < 120 * 4200);
    /* without the watch, SQLite's own 1,000-frame auto-checkpoint again */
    atp_sqlwal_watch(db, NULL, 0);
    insert_rows(db, 700);
    T_TRUE(wal_size() < 1100 * 4200);
    T_EQ(atp_sqlwal_checkpoint_file("/nonexistent/dir/x.db", NULL), ATP_EIO);
    sqlite3_close(db);
}

int main(void)
{
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_path, sizeof g_path, "%s/w.db", g_dir);
    T_RUN(test_watch_and_checkpoint);
    T_RUN(test_limit);
    char p[300];
    unlink(g_path);
    snprintf(p, sizeof p, "%s-wal", g_path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", g_path);
    unlink(p);
    rmdir(g_dir);
    return t_done();
}
