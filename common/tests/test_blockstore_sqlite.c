/* test_blockstore_sqlite.c: the SQLite block store: get/has/put/remove, first-writer rev,
 * each_since order and early stop, atomic batches (own transaction and inside the caller's via
 * savepoints), pragmas of the file opener, reopen, read-only, and a fork + kill -9 check that
 * acknowledged writes survive. */
#include "atp/blockstore_sqlite.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"

static atp_cid cid_for(const char *data)
{
    atp_cid c;
    atp_cid_compute(&c, ATP_CODEC_RAW, atp_slice_str(data));
    return c;
}

static atp_block block_for(const char *data)
{
    atp_block b = {cid_for(data), atp_slice_str(data)};
    return b;
}

static atp_blockstore *mem_db_store(sqlite3 **db)
{
    atp_blockstore *bs = NULL;
    atp_err err = {0};
    T_EQ(sqlite3_open(":memory:", db), SQLITE_OK);
    T_OKE(atp_blockstore_sqlite_create(*db, &bs, &err), &err);
    return bs;
}

static bool has(atp_blockstore *bs, const char *data)
{
    atp_cid c = cid_for(data);
    bool h = false;
    T_OK(atp_blockstore_has(bs, &c, &h, NULL));
    return h;
}

static void test_basic(void)
{
    sqlite3 *db;
    atp_blockstore *bs = mem_db_store(&db);
    atp_arena *a = atp_arena_create(0);
    atp_block blocks[2] = {block_for("alpha"), block_for("beta")};
    atp_cid missing = cid_for("gamma");
    atp_slice got;
    atp_err err = {0};
    uint64_t n = 9, bytes = 9;
    T_OK(atp_blockstore_sqlite_count(bs, &n, &bytes, NULL));
    T_EQ(n, 0);
    T_EQ(bytes, 0);
    T_OKE(atp_blockstore_put_batch(bs, blocks, 2, ATP_SLICE_LIT("3kznmn7xqxl22"), &err), &err);
    T_OK(atp_blockstore_get(bs, &blocks[1].cid, a, &got, NULL));
    T_MEMEQ(got.ptr, got.len, "beta", 4);
    T_TRUE(has(bs, "alpha"));
    T_FALSE(has(bs, "gamma"));
    T_EQ(atp_blockstore_get(bs, &missing, a, &got, &err), ATP_ENOTFOUND);
    T_TRUE(strstr(err.msg, "not found") != NULL);
    T_OK(atp_blockstore_sqlite_count(bs, &n, &bytes, NULL));
    T_EQ(n, 2);
    T_EQ(bytes, 9);
    T_OK(atp_blockstore_remove_batch(bs, &blocks[0].cid, 1, NULL));
    T_OK(atp_blockstore_remove_batch(bs, &missing, 1, NULL)); /* absent: ignored */
    T_FALSE(has(bs, "alpha"));
    T_TRUE(has(bs, "beta"));
    T_TRUE(atp_blockstore_sqlite_db(bs) == db);
    /* An empty CID is refused before anything is written. */
    blocks[0].cid.len = 0;
    T_EQ(atp_blockstore_put_batch(bs, blocks, 2, ATP_SLICE_LIT("3kznmn7xqxl23"), NULL), ATP_EINVAL);
    /* A second store over the same connection: the schema is created only if absent. */
    {
        atp_blockstore *again = NULL;
        T_OK(atp_blockstore_sqlite_create(db, &again, NULL));
        T_TRUE(has(again, "beta"));
        atp_blockstore_destroy(again);
    }
    atp_blockstore_destroy(bs);
    atp_blockstore_destroy(NULL);
    sqlite3_close(db);
    atp_arena_destroy(a);
}

typedef struct seen {
    char order[16][16];
    int n, stop_at;
} seen;

static int on_block(void *ctx, const atp_cid *cid, atp_slice data)
{
    seen *s = ctx;
    atp_cid want;
    atp_cid_compute(&want, ATP_CODEC_RAW, data);
    T_TRUE(atp_cid_eq(cid, &want));
    if (s->n < 16 && data.len < 16) {
        memcpy(s->order[s->n], data.ptr, data.len);
        s->order[s->n][data.len] = '\0';
    }
    s->n++;
    return s->n == s->stop_at ? 42 : 0;
}

static void test_each_since(void)
{
    sqlite3 *db;
    atp_blockstore *bs = mem_db_store(&db);
    atp_block b1 = block_for("one"), b2 = block_for("two"), b3 = block_for("three");
    atp_block again[2] = {block_for("one"), block_for("four")};
    seen s = {.n = 0};
    /* Written out of rev order on purpose: the walk must follow rev, not insertion. */
    T_OK(atp_blockstore_put(bs, &b3.cid, b3.data, ATP_SLICE_LIT("3kznmn7xqxn22"), NULL));
    T_OK(atp_blockstore_put(bs, &b1.cid, b1.data, ATP_SLICE_LIT("3kznmn7xqxl22"), NULL));
    T_OK(atp_blockstore_put(bs, &b2.cid, b2.data, ATP_SLICE_LIT("3kznmn7xqxm22"), NULL));
    /* "one" again with a later rev keeps its first rev. */
    T_OK(atp_blockstore_put_batch(bs, again, 2, ATP_SLICE_LIT("3kznmn7xqxo22"), NULL));

    T_OK(atp_blockstore_each_since(bs, ATP_SLICE_LIT("2222222222222"), on_block, &s, NULL));
    T_EQ(s.n, 4);
    T_STREQ(s.order[0], "one");
    T_STREQ(s.order[1], "two");
    T_STREQ(s.order[2], "three");
    T_STREQ(s.order[3], "four");

    memset(&s, 0, sizeof s);
    T_OK(atp_blockstore_each_since(bs, ATP_SLICE_LIT("3kznmn7xqxl22"), on_block, &s, NULL));
    T_EQ(s.n, 3);
    T_STREQ(s.order[0], "two");

    memset(&s, 0, sizeof s);
    T_OK(atp_blockstore_each_since(bs, ATP_SLICE_LIT("3kznmn7xqxo22"), on_block, &s, NULL));
    T_EQ(s.n, 0);

    memset(&s, 0, sizeof s);
    s.stop_at = 2;
    T_EQ(atp_blockstore_each_since(bs, ATP_SLICE_LIT("2222222222222"), on_block, &s, NULL), 42);
    T_EQ(s.n, 2);
    /* The statement was reset: a new walk starts over. */
    memset(&s, 0, sizeof s);
    T_OK(atp_blockstore_each_since(bs, ATP_SLICE_LIT("2222222222222"), on_block, &s, NULL));
    T_EQ(s.n, 4);
    atp_blockstore_destroy(bs);
    sqlite3_close(db);
}

/* A trigger that fails any insert of the data "poison", to break a batch half way. */
static void add_poison(sqlite3 *db)
{
    T_EQ(sqlite3_exec(db,
                      "CREATE TRIGGER poison BEFORE INSERT ON repo_block"
                      " WHEN NEW.data = CAST('poison' AS BLOB)"
                      " BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
                      NULL, NULL, NULL),
         SQLITE_OK);
}

static void test_atomic_batch(void)
{
    sqlite3 *db;
    atp_blockstore *bs = mem_db_store(&db);
    atp_block batch[3] = {block_for("good1"), block_for("poison"), block_for("good2")};
    atp_err err = {0};
    add_poison(db);
    T_EQ(atp_blockstore_put_batch(bs, batch, 3, ATP_SLICE_LIT("3kznmn7xqxl22"), &err), ATP_EIO);
    T_TRUE(strstr(err.msg, "poisoned") != NULL);
    T_FALSE(has(bs, "good1"));
    T_FALSE(has(bs, "good2"));
    T_EQ(sqlite3_get_autocommit(db), 1); /* our transaction is closed */
    T_OK(atp_blockstore_put_batch(bs, batch, 1, ATP_SLICE_LIT("3kznmn7xqxl22"), NULL));
    T_TRUE(has(bs, "good1"));
    atp_blockstore_destroy(bs);
    sqlite3_close(db);
}

static void test_nested_in_caller_tx(void)
{
    sqlite3 *db;
    atp_blockstore *bs = mem_db_store(&db);
    atp_block ok = block_for("kept"), rolled = block_for("rolled");
    atp_block bad[2] = {block_for("half"), block_for("poison")};
    sqlite3_stmt *st;
    add_poison(db);
    T_EQ(sqlite3_exec(db, "CREATE TABLE seq (n INTEGER)", NULL, NULL, NULL), SQLITE_OK);

    /* The caller rolls back: our savepoint's writes go with it. */
    T_EQ(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    T_OK(atp_blockstore_put(bs, &rolled.cid, rolled.data, ATP_SLICE_LIT("3kznmn7xqxl22"), NULL));
    T_EQ(sqlite3_get_autocommit(db), 0); /* still the caller's transaction */
    T_EQ(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    T_FALSE(has(bs, "rolled"));

    /* A failed batch inside the caller's transaction undoes only itself. */
    T_EQ(sqlite3_exec(db, "BEGIN; INSERT INTO seq VALUES (1)", NULL, NULL, NULL), SQLITE_OK);
    T_OK(atp_blockstore_put(bs, &ok.cid, ok.data, ATP_SLICE_LIT("3kznmn7xqxl22"), NULL));
    T_EQ(atp_blockstore_put_batch(bs, bad, 2, ATP_SLICE_LIT("3kznmn7xqxl22"), NULL), ATP_EIO);
    T_EQ(sqlite3_get_autocommit(db), 0);
    T_EQ(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    T_TRUE(has(bs, "kept"));
    T_FALSE(has(bs, "half"));
    T_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM seq", -1, &st, NULL), SQLITE_OK);
    T_EQ(sqlite3_step(st), SQLITE_ROW);
    T_EQ(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    atp_blockstore_destroy(bs);
    sqlite3_close(db);
}

static int pragma_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_type(st, 0) == SQLITE_TEXT
                ? (strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0 ? 100 : -2)
                : sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

static void temp_path(char *out, size_t cap, const char *tag)
{
    snprintf(out, cap, "%s/atp_bs_%s_%d.sqlite", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", tag,
             (int)getpid());
}

static void remove_db(const char *path)
{
    char p[600];
    remove(path);
    snprintf(p, sizeof p, "%s-wal", path);
    remove(p);
    snprintf(p, sizeof p, "%s-shm", path);
    remove(p);
}

static void test_open_file(void)
{
    char path[512];
    sqlite3 *db = NULL;
    atp_blockstore *bs = NULL;
    atp_block b = block_for("persisted");
    atp_err err = {0};
    temp_path(path, sizeof path, "open");
    remove_db(path);
    T_OKE(atp_blockstore_sqlite_open_file(path, 0, &db, &err), &err);
    T_EQ(pragma_int(db, "PRAGMA journal_mode"), 100);
    T_EQ(pragma_int(db, "PRAGMA synchronous"), 2); /* FULL */
    T_OK(atp_blockstore_sqlite_create(db, &bs, NULL));
    T_OK(atp_blockstore_put(bs, &b.cid, b.data, ATP_SLICE_LIT("3kznmn7xqxl22"), NULL));
    atp_blockstore_destroy(bs);
    sqlite3_close(db);

    T_OK(atp_blockstore_sqlite_open_file(path, ATP_BS_SQLITE_RELAXED, &db, NULL));
    T_EQ(pragma_int(db, "PRAGMA synchronous"), 1); /* NORMAL */
    sqlite3_close(db);

    T_OK(atp_blockstore_sqlite_open_file(path, ATP_BS_SQLITE_READONLY, &db, NULL));
    T_OK(atp_blockstore_sqlite_create(db, &bs, NULL));
    T_TRUE(has(bs, "persisted"));
    T_EQ(atp_blockstore_put(bs, &b.cid, b.data, ATP_SLICE_LIT("3kznmn7xqxl23"), &err), ATP_EIO);
    atp_blockstore_destroy(bs);
    sqlite3_close(db);

    T_EQ(atp_blockstore_sqlite_open_file("/nonexistent-dir/x.sqlite", 0, &db, &err), ATP_EIO);
    T_TRUE(strstr(err.msg, "nonexistent") != NULL);
    remove_db(path);
}

/* Child: writes one block per batch and acknowledges each on the pipe after put returns. */
static void durability_child(const char *path, int ack_fd)
{
    sqlite3 *db = NULL;
    atp_blockstore *bs = NULL;
    if (atp_blockstore_sqlite_open_file(path, 0, &db, NULL) != 0 ||
        atp_blockstore_sqlite_create(db, &bs, NULL) != 0) {
        _exit(3);
    }
    for (uint32_t i = 0;; i++) {
        atp_cid c;
        atp_cid_compute(&c, ATP_CODEC_RAW, atp_slice_make(&i, sizeof i));
        if (atp_blockstore_put(bs, &c, atp_slice_make(&i, sizeof i), ATP_SLICE_LIT("3kznmn7xqxl22"),
                               NULL) != 0 ||
            write(ack_fd, &i, sizeof i) != (ssize_t)sizeof i) {
            _exit(4);
        }
    }
}

static void test_kill9_durability(void)
{
    char path[512];
    int fds[2];
    uint32_t acked = 0, v;
    pid_t pid;
    sqlite3 *db = NULL;
    atp_blockstore *bs = NULL;
    temp_path(path, sizeof path, "kill");
    remove_db(path);
    T_EQ(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        durability_child(path, fds[1]);
    }
    close(fds[1]);
    while (acked < 200 && read(fds[0], &v, sizeof v) == (ssize_t)sizeof v) {
        acked = v + 1;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(fds[0]);
    T_EQ(acked, 200);
    T_OK(atp_blockstore_sqlite_open_file(path, 0, &db, NULL));
    T_OK(atp_blockstore_sqlite_create(db, &bs, NULL));
    for (uint32_t i = 0; i < acked; i++) {
        atp_cid c;
        bool h = false;
        atp_cid_compute(&c, ATP_CODEC_RAW, atp_slice_make(&i, sizeof i));
        T_OK(atp_blockstore_has(bs, &c, &h, NULL));
        if (!h) {
            T_FAILF("acknowledged block %u lost after kill -9", i);
            break;
        }
    }
    atp_blockstore_destroy(bs);
    sqlite3_close(db);
    remove_db(path);
}

int main(void)
{
    T_RUN(test_basic);
    T_RUN(test_each_since);
    T_RUN(test_atomic_batch);
    T_RUN(test_nested_in_caller_tx);
    T_RUN(test_open_file);
    T_RUN(test_kill9_durability);
    return t_done();
}
