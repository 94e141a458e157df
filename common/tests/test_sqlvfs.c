/* test_sqlvfs.c: the write-gathering VFS: the same workload gives the same database as the
 * default VFS; commits are whole in the file before other connections (and other processes) can
 * see them, synced or not; rolled-back spills, checkpoints with concurrent readers, and a
 * fork + kill -9 check that every acknowledged commit survives; the counters show that writes
 * were gathered. */
#include "atp/sqlvfs.h"

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"

static char g_dir[] = "/tmp/test_sqlvfs.XXXXXX";

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", g_dir, name);
}

static void rm_db(const char *name)
{
    char p[256], q[300];
    path_of(p, sizeof p, name);
    unlink(p);
    snprintf(q, sizeof q, "%s-wal", p);
    unlink(q);
    snprintf(q, sizeof q, "%s-shm", p);
    unlink(q);
}

/* Opens `name` in WAL mode with the given synchronous level through `vfs` (NULL: default). */
static sqlite3 *open_db(const char *name, const char *vfs, const char *sync)
{
    char p[256], sql[128];
    sqlite3 *db = NULL;
    path_of(p, sizeof p, name);
    T_EQ(sqlite3_open_v2(p, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;", sync);
    T_EQ(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        T_FAILF("%s: %s", sql, msg ? msg : "?");
    }
    sqlite3_free(msg);
}

static long long one_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long long v = -1;
    T_EQ(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

static bool integrity_ok(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool ok = false;
    T_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        ok = r && strcmp(r, "ok") == 0;
        if (!ok) {
            T_FAILF("integrity_check: %s", r ? r : "?");
        }
    }
    sqlite3_finalize(st);
    return ok;
}

/* A deterministic workload: inserts of random-sized blobs keyed by random keys (pages all
 * over the b-tree), updates and deletes, commits of 1 to 40 statements. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void workload(sqlite3 *db, unsigned txns, uint64_t seed)
{
    sqlite3_stmt *ins = NULL, *del = NULL;
    uint8_t blob[3000];
    exec_ok(db, "CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
    exec_ok(db, "CREATE INDEX IF NOT EXISTS kv_v ON kv (substr(v, 1, 8))");
    T_EQ(sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)", -1, &ins, NULL),
         SQLITE_OK);
    T_EQ(sqlite3_prepare_v2(db, "DELETE FROM kv WHERE k = ?1", -1, &del, NULL), SQLITE_OK);
    for (unsigned t = 0; t < txns; t++) {
        exec_ok(db, "BEGIN IMMEDIATE");
        unsigned n = 1 + (unsigned)(rng_next(&seed) % 40);
        for (unsigned i = 0; i < n; i++) {
            sqlite3_int64 k = (sqlite3_int64)(rng_next(&seed) % 5000);
            if (rng_next(&seed) % 5 == 0) {
                sqlite3_bind_int64(del, 1, k);
                T_EQ(sqlite3_step(del), SQLITE_DONE);
                sqlite3_reset(del);
                continue;
            }
            size_t len = 1 + (size_t)(rng_next(&seed) % sizeof blob);
            for (size_t j = 0; j < len; j++) {
                blob[j] = (uint8_t)rng_next(&seed);
            }
            sqlite3_bind_int64(ins, 1, k);
            sqlite3_bind_blob(ins, 2, blob, (int)len, SQLITE_STATIC);
            T_EQ(sqlite3_step(ins), SQLITE_DONE);
            sqlite3_reset(ins);
        }
        exec_ok(db, "COMMIT");
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(del);
}

/* A digest of the table's content (order-independent over rows). */
static long long content_sum(sqlite3 *db)
{
    return one_int(db, "SELECT total(k * 131 + length(v) * 7 + unicode(hex(substr(v, 1, 4))))"
                       " + count(*) FROM kv");
}

static void test_same_as_default(void)
{
    atp_sqlvfs_stats s0, s1;
    atp_sqlvfs_get_stats(&s0);
    rm_db("a.db");
    rm_db("b.db");
    sqlite3 *a = open_db("a.db", NULL, "FULL");
    sqlite3 *b = open_db("b.db", ATP_SQLVFS_NAME, "FULL");
    workload(a, 300, 42);
    workload(b, 300, 42);
    T_EQ(content_sum(a), content_sum(b));
    T_EQ(one_int(a, "SELECT count(*) FROM kv"), one_int(b, "SELECT count(*) FROM kv"));
    T_TRUE(integrity_ok(b));
    /* a full checkpoint, then the database files compared byte for byte */
    exec_ok(a, "PRAGMA wal_checkpoint(TRUNCATE)");
    exec_ok(b, "PRAGMA wal_checkpoint(TRUNCATE)");
    T_TRUE(integrity_ok(b));
    sqlite3_close(a);
    sqlite3_close(b);
    char pa[256], pb[256];
    path_of(pa, sizeof pa, "a.db");
    path_of(pb, sizeof pb, "b.db");
    FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
    T_TRUE(fa && fb);
    long diffs = 0, bytes = 0;
    int ca, cb;
    do {
        ca = fa ? fgetc(fa) : EOF;
        cb = fb ? fgetc(fb) : EOF;
        diffs += ca != cb;
        bytes++;
    } while (ca != EOF || cb != EOF);
    T_EQ(diffs, 0);
    T_TRUE(bytes > 100000);
    if (fa) {
        fclose(fa);
    }
    if (fb) {
        fclose(fb);
    }
    atp_sqlvfs_get_stats(&s1);
    T_TRUE(s1.runs > s0.runs);
    /* each commit here is several frames: most writes were absorbed into runs */
    T_TRUE(s1.absorbed - s0.absorbed > 3 * (s1.runs - s0.runs));
}

/* Each commit, synced or not, is visible whole to another connection right after COMMIT. */
static void visible_after_commit(const char *sync)
{
    rm_db("v.db");
    sqlite3 *w = open_db("v.db", ATP_SQLVFS_NAME, sync);
    sqlite3 *r = open_db("v.db", NULL, sync);
    exec_ok(w, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
    sqlite3_stmt *ins = NULL;
    T_EQ(sqlite3_prepare_v2(w, "INSERT INTO kv (k, v) VALUES (?1, zeroblob(?2))", -1, &ins, NULL),
         SQLITE_OK);
    long long want_sum = 0;
    for (int t = 0; t < 200; t++) {
        exec_ok(w, "BEGIN");
        for (int i = 0; i < 1 + t % 7; i++) {
            int k = t * 10 + i;
            sqlite3_bind_int(ins, 1, k);
            sqlite3_bind_int(ins, 2, 100 + (k * 37) % 2000);
            T_EQ(sqlite3_step(ins), SQLITE_DONE);
            sqlite3_reset(ins);
            want_sum += 100 + (k * 37) % 2000;
        }
        exec_ok(w, "COMMIT");
        T_EQ(one_int(r, "SELECT total(length(v)) FROM kv"), want_sum);
    }
    sqlite3_finalize(ins);
    T_TRUE(integrity_ok(r));
    sqlite3_close(r);
    sqlite3_close(w);
}

static void test_visible_full(void)
{
    visible_after_commit("FULL");
}

static void test_visible_normal(void)
{
    visible_after_commit("NORMAL");
}

static void test_visible_off(void)
{
    visible_after_commit("OFF");
}

/* A transaction too big for the page cache spills frames into the WAL, then rolls back; later
 * commits overwrite those frames. */
static void test_spill_rollback(void)
{
    rm_db("s.db");
    sqlite3 *w = open_db("s.db", ATP_SQLVFS_NAME, "FULL");
    sqlite3 *r = open_db("s.db", NULL, "FULL");
    exec_ok(w, "PRAGMA cache_size=10");
    exec_ok(w, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
    exec_ok(w, "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 100)"
               " INSERT INTO kv SELECT x, zeroblob(500) FROM s");
    for (int round = 0; round < 5; round++) {
        char sql[200];
        exec_ok(w, "BEGIN");
        exec_ok(w, "WITH RECURSIVE s(x) AS (SELECT 1000 UNION ALL SELECT x + 1 FROM s"
                   " WHERE x < 3000) INSERT INTO kv SELECT x, randomblob(900) FROM s");
        exec_ok(w, "ROLLBACK");
        snprintf(sql, sizeof sql,
                 "WITH RECURSIVE s(x) AS (SELECT %d UNION ALL SELECT x + 1 FROM s WHERE x < %d)"
                 " INSERT INTO kv SELECT x, randomblob(300) FROM s",
                 5000 + 10 * round, 5000 + 10 * round + 9);
        exec_ok(w, sql);
    }
    T_EQ(one_int(r, "SELECT count(*) FROM kv"), 150);
    T_TRUE(integrity_ok(r));
    sqlite3_close(w);
    sqlite3_close(r);
}

/* Checkpoints while other threads read and write through their own connections. */
typedef struct rd_arg {
    volatile int stop;
    int errors;
} rd_arg;

static void *reader_main(void *p)
{
    rd_arg *a = p;
    char path[256];
    sqlite3 *db = NULL;
    path_of(path, sizeof path, "c.db");
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, ATP_SQLVFS_NAME) != SQLITE_OK) {
        a->errors++;
        return NULL;
    }
    sqlite3_busy_timeout(db, 10000);
    while (!a->stop) {
        sqlite3_stmt *st = NULL;
        /* every row's v is its k repeated: a torn or stale page shows as a mismatch */
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM kv WHERE v != zeroblob(k % 700)", -1, &st,
                               NULL) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 0) {
            a->errors++;
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return NULL;
}

static void test_checkpoint_with_readers(void)
{
    rm_db("c.db");
    sqlite3 *w = open_db("c.db", ATP_SQLVFS_NAME, "FULL");
    exec_ok(w, "PRAGMA wal_autocheckpoint=50");
    exec_ok(w, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
    rd_arg arg = {0, 0};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        T_EQ(pthread_create(&th[i], NULL, reader_main, &arg), 0);
    }
    sqlite3_stmt *ins = NULL;
    T_EQ(sqlite3_prepare_v2(w, "INSERT OR REPLACE INTO kv (k, v) VALUES (?1, zeroblob(?1 % 700))",
                            -1, &ins, NULL),
         SQLITE_OK);
    uint64_t seed = 7;
    for (int t = 0; t < 600; t++) {
        exec_ok(w, "BEGIN IMMEDIATE");
        for (int i = 0; i < 5; i++) {
            sqlite3_bind_int64(ins, 1, (sqlite3_int64)(rng_next(&seed) % 4000));
            T_EQ(sqlite3_step(ins), SQLITE_DONE);
            sqlite3_reset(ins);
        }
        exec_ok(w, "COMMIT");
        if (t % 100 == 99) {
            exec_ok(w, "PRAGMA wal_checkpoint(RESTART)");
        }
    }
    sqlite3_finalize(ins);
    arg.stop = 1;
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    T_EQ(arg.errors, 0);
    T_TRUE(integrity_ok(w));
    sqlite3_close(w);
}

/* A child commits rows one by one and reports each acknowledged k; killed with SIGKILL at a
 * random moment, every reported row must be in the file. */
static void test_kill9(void)
{
    rm_db("k.db");
    int fds[2];
    T_EQ(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        sqlite3 *w = open_db("k.db", ATP_SQLVFS_NAME, "FULL");
        exec_ok(w, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
        sqlite3_stmt *ins = NULL;
        (void)sqlite3_prepare_v2(w, "INSERT INTO kv (k, v) VALUES (?1, randomblob(?1 % 3000))", -1,
                                 &ins, NULL);
        for (int k = 1;; k++) {
            sqlite3_bind_int(ins, 1, k);
            if (sqlite3_step(ins) != SQLITE_DONE) {
                _exit(2);
            }
            sqlite3_reset(ins);
            if (write(fds[1], &k, sizeof k) != (ssize_t)sizeof k) {
                _exit(3);
            }
        }
    }
    close(fds[1]);
    int last = 0, k;
    while (last < 300 && read(fds[0], &k, sizeof k) == (ssize_t)sizeof k) {
        last = k;
    }
    kill(pid, SIGKILL);
    while (read(fds[0], &k, sizeof k) == (ssize_t)sizeof k) {
        last = k;
    }
    close(fds[0]);
    waitpid(pid, NULL, 0);
    sqlite3 *r = open_db("k.db", ATP_SQLVFS_NAME, "FULL");
    T_TRUE(last >= 300);
    T_TRUE(one_int(r, "SELECT count(*) FROM kv") >= last);
    T_EQ(one_int(r, "SELECT count(*) FROM kv WHERE k <= (SELECT max(k) FROM kv)"),
         one_int(r, "SELECT max(k) FROM kv"));
    T_TRUE(integrity_ok(r));
    sqlite3_close(r);
}

/* Registration is idempotent; the default VFS is ours once asked. */
static void test_register(void)
{
    T_OK(atp_sqlvfs_register(true, NULL));
    T_OK(atp_sqlvfs_register(true, NULL));
    sqlite3_vfs *d = sqlite3_vfs_find(NULL);
    T_TRUE(d && strcmp(d->zName, ATP_SQLVFS_NAME) == 0);
}

int main(void)
{
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    T_OK(atp_sqlvfs_register(false, NULL));
    T_RUN(test_same_as_default);
    T_RUN(test_visible_full);
    T_RUN(test_visible_normal);
    T_RUN(test_visible_off);
    T_RUN(test_spill_rollback);
    T_RUN(test_checkpoint_with_readers);
    T_RUN(test_kill9);
    T_RUN(test_register);
    const char *names[] = {"a.db", "b.db", "v.db", "s.db", "c.db", "k.db"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        rm_db(names[i]);
    }
    rmdir(g_dir);
    return t_done();
}
