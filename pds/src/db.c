/* pds/src/db.c: the service database. One writer connection behind db->w.mu, plus a pool of
 * read-only connections, each behind its own mutex: in WAL mode readers never wait for the
 * writer, in particular not for its COMMIT fsync. Every connection keeps the statements it ran
 * prepared, so a hot read costs a bind and a step, not a parse. */
#include "db.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atp/buf.h"
#include "atp/log.h"
#include "atp/sqlwal.h"
#include "bgthread.h"
#include "clock.h"
#include "sqlx.h"

#define DB_READERS    4  /* reads take microseconds: a few connections serve many workers */
#define DB_STMT_CACHE 32 /* every SQL literal this file runs on one connection fits */
#define DB_BUSY_MS    10000
#define CKPT_FRAMES   4000 /* the checkpointer's threshold (about 16 MB of WAL) */
#define CKPT_LIMIT    20000 /* past this, a commit checkpoints itself (the thread fell behind) */
#define CKPT_EVERY_MS 50
#define CKPT_TAIL     32 /* frames the last round, with the writer held, may still copy */

/* A prepared statement, keyed by the address of the SQL string literal it came from. */
typedef struct stmt_slot {
    const char *sql;
    sqlite3_stmt *st;
} stmt_slot;

/* One connection with its mutex and its statement cache; c and the cache are used only with
 * mu held. */
typedef struct db_conn {
    sqlite3 *c;
    pthread_mutex_t mu;
    stmt_slot cache[DB_STMT_CACHE];
    size_t n;
} db_conn;

struct pds_db {
    db_conn w;              /* the one writer: every write and transaction */
    db_conn r[DB_READERS];  /* SQLITE_OPEN_READONLY: reads only */
    atomic_uint next;       /* where the next reader search starts */
    bool acct_touched;      /* the writer changed an account row (w.mu held) */
    atomic_ullong acct_gen; /* bumped after each such change is committed */
    /* checkpoints off the writer's commits (atp/sqlwal.h): a thread on a connection of its own */
    atp_sqlwal wal;
    sqlite3 *ckpt;
    char *path;
    pthread_t ckpt_thr;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cv;
    bool ckpt_on, ckpt_stop;
};

/* Migration i brings the schema from version i to i + 1. */
static const char *const migrations[] = {
    "CREATE TABLE account(did TEXT PRIMARY KEY, handle TEXT NOT NULL UNIQUE,"
    " email TEXT UNIQUE, password_hash TEXT NOT NULL, created_at TEXT NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'active', signing_key TEXT);"
    "CREATE TABLE refresh_token(id TEXT PRIMARY KEY, did TEXT NOT NULL,"
    " app_password_name TEXT, expires_at INTEGER NOT NULL, next_id TEXT);"
    "CREATE INDEX refresh_token_did ON refresh_token(did);"
    "CREATE TABLE app_password(did TEXT NOT NULL, name TEXT NOT NULL,"
    " password_hash TEXT NOT NULL, created_at TEXT NOT NULL, privileged INTEGER NOT NULL,"
    " PRIMARY KEY(did, name));"
    "CREATE TABLE invite_code(code TEXT PRIMARY KEY, available INTEGER NOT NULL,"
    " disabled INTEGER NOT NULL DEFAULT 0, for_account TEXT NOT NULL,"
    " created_by TEXT NOT NULL, created_at TEXT NOT NULL);"
    "CREATE INDEX invite_code_for ON invite_code(for_account);"
    "CREATE TABLE invite_code_use(code TEXT NOT NULL, used_by TEXT NOT NULL,"
    " used_at TEXT NOT NULL, PRIMARY KEY(code, used_by));"
    "CREATE TABLE email_token(purpose TEXT NOT NULL, did TEXT NOT NULL, token TEXT NOT NULL,"
    " requested_at TEXT NOT NULL, PRIMARY KEY(purpose, did));",
    /* 2: the firehose sequence, account lifecycle, preferences, reserved keys */
    "CREATE TABLE repo_seq(seq INTEGER PRIMARY KEY AUTOINCREMENT, did TEXT NOT NULL,"
    " event_type TEXT NOT NULL, event BLOB NOT NULL, invalidated INTEGER NOT NULL DEFAULT 0,"
    " sequenced_at TEXT NOT NULL, outbox_id INTEGER);"
    "CREATE INDEX repo_seq_did ON repo_seq(did);"
    "CREATE INDEX repo_seq_sequenced_at ON repo_seq(sequenced_at);"
    "CREATE UNIQUE INDEX repo_seq_outbox ON repo_seq(did, outbox_id) WHERE outbox_id IS NOT NULL;"
    "CREATE TABLE seq_state(name TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "ALTER TABLE account ADD COLUMN takedown_ref TEXT;"
    "ALTER TABLE account ADD COLUMN deactivated_at TEXT;"
    "ALTER TABLE account ADD COLUMN delete_after TEXT;"
    "ALTER TABLE account ADD COLUMN email_confirmed_at TEXT;"
    "ALTER TABLE account ADD COLUMN invites_disabled INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE account_pref(id INTEGER PRIMARY KEY AUTOINCREMENT, did TEXT NOT NULL,"
    " name TEXT NOT NULL, value_json TEXT NOT NULL);"
    "CREATE INDEX account_pref_did ON account_pref(did);"
    "CREATE TABLE reserved_signing_key(key_did TEXT PRIMARY KEY, did TEXT,"
    " private_key TEXT NOT NULL, created_at TEXT NOT NULL);"
    "CREATE INDEX reserved_signing_key_did ON reserved_signing_key(did);",
    /* 3: one index on repo_seq's did instead of two: every sequenced event updated both at a
     * random place (by DID), one page each in the WAL; (did, outbox_id) serves the lookups by
     * did too, and SQLite's unique index lets NULL outbox_ids repeat as the partial one did. */
    "DROP INDEX repo_seq_did;"
    "DROP INDEX repo_seq_outbox;"
    "CREATE UNIQUE INDEX repo_seq_did_outbox ON repo_seq(did, outbox_id);",
};

static int read_version(sqlite3 *c)
{
    sqlite3_stmt *st = NULL;
    int v = 0;
    if (sqlite3_prepare_v2(c, "SELECT max(version) FROM schema_migrations", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

static int migrate(sqlite3 *c, atp_err *err)
{
    int v;
    if (pds_sqlx_exec(c,
                      "CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY,"
                      " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
                      err) < 0) {
        return ATP_EIO;
    }
    v = read_version(c);
    if (v > PDS_DB_SCHEMA_VERSION) {
        return atp_err_set(err, ATP_EINVAL, 0, "database schema %d is newer than ours (%d)", v,
                           PDS_DB_SCHEMA_VERSION);
    }
    for (; v < PDS_DB_SCHEMA_VERSION; v++) {
        char ins[96];
        snprintf(ins, sizeof ins, "INSERT INTO schema_migrations(version) VALUES(%d);", v + 1);
        if (pds_sqlx_exec(c, "BEGIN IMMEDIATE", err) < 0 ||
            pds_sqlx_exec(c, migrations[v], err) < 0 || pds_sqlx_exec(c, ins, err) < 0 ||
            pds_sqlx_exec(c, "COMMIT", err) < 0) {
            sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
            return ATP_EIO;
        }
    }
    return 0;
}

/* The statement for `sql` on dc (dc->mu held), prepared on first use and kept, with args[0..n)
 * bound as text to ?1..?n (NULL binds SQL NULL). `sql` must be a string literal (or otherwise
 * live and unchanged as long as dc): its address is the cache key. Once the cache is full the
 * statement is prepared for this use only. NULL when sql does not prepare. Give it back with
 * stmt_put. */
static sqlite3_stmt *stmt_get(db_conn *dc, const char *sql, int n, const char *const *args)
{
    sqlite3_stmt *st = NULL;
    for (size_t i = 0; i < dc->n && !st; i++) {
        if (dc->cache[i].sql == sql) {
            st = dc->cache[i].st;
        }
    }
    if (!st) {
        bool keep = dc->n < DB_STMT_CACHE;
        /* PERSISTENT: sqlite allocates a kept statement outside its small lookaside pool */
        if (sqlite3_prepare_v3(dc->c, sql, -1, keep ? SQLITE_PREPARE_PERSISTENT : 0, &st, NULL) !=
            SQLITE_OK) {
            sqlite3_finalize(st);
            return NULL;
        }
        if (keep) {
            dc->cache[dc->n++] = (stmt_slot){sql, st};
        }
    }
    for (int i = 0; i < n; i++) {
        /* STATIC: the args outlive the step, and stmt_put clears the bindings before return */
        sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_STATIC);
    }
    return st;
}

/* Gives back a statement from stmt_get (NULL is a no-op): a cached one is reset, which also
 * ends its read transaction so the next use sees a fresh snapshot, and its bindings cleared;
 * an uncached one is finalized. */
static void stmt_put(db_conn *dc, sqlite3_stmt *st)
{
    for (size_t i = 0; i < dc->n; i++) {
        if (dc->cache[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    }
    sqlite3_finalize(st);
}

/* Opens dc->c on `path` (dc->mu already initialized). ATP_EIO with err set on failure. */
static int conn_open(db_conn *dc, const char *path, int flags, atp_err *err)
{
    if (sqlite3_open_v2(path, &dc->c, flags, NULL) != SQLITE_OK) {
        atp_err_set(err, ATP_EIO, 0, "open %.80s: %.60s", path,
                    dc->c ? sqlite3_errmsg(dc->c) : "?");
        sqlite3_close(dc->c);
        dc->c = NULL;
        return ATP_EIO;
    }
    sqlite3_busy_timeout(dc->c, DB_BUSY_MS);
    return 0;
}

/* Finalizes dc's cached statements (sqlite3_close refuses a connection that has any), closes
 * it and destroys its mutex. */
static void conn_close(db_conn *dc)
{
    for (size_t i = 0; i < dc->n; i++) {
        sqlite3_finalize(dc->cache[i].st);
    }
    dc->n = 0;
    sqlite3_close(dc->c);
    dc->c = NULL;
    pthread_mutex_destroy(&dc->mu);
}

/* The writer's row hook: notes a change to the account table (rowid table: the hook fires). */
static void on_row_change(void *ud, int op, const char *dbname, const char *table,
                          sqlite3_int64 rowid)
{
    (void)op;
    (void)dbname;
    (void)rowid;
    if (strcmp(table, "account") == 0) {
        ((pds_db *)ud)->acct_touched = true;
    }
}

/* Lets go of the writer. Every transaction is over by then (committed or rolled back), so a
 * change to an account row is published by bumping the generation after it is in the file:
 * a cache entry read before the bump carries the older generation and is read again. */
static void writer_unlock(pds_db *db)
{
    if (db->acct_touched) {
        db->acct_touched = false;
        atomic_fetch_add_explicit(&db->acct_gen, 1, memory_order_release);
    }
    pthread_mutex_unlock(&db->w.mu);
}

/* The writer: WAL, durable commits, then the schema brought up to date. */
static int writer_open(db_conn *w, const char *path, atp_err *err)
{
    int rc = conn_open(w, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err);
    if (rc == 0) {
        rc = pds_sqlx_exec(w->c,
                           "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                           " PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;",
                           err);
    }
    return rc == 0 ? migrate(w->c, err) : rc;
}

/* The readers, opened after the writer made the file WAL and migrated it. NOMUTEX: each is used
 * only with its own mutex held, so sqlite's per-connection mutex would be a second lock. */
static int readers_open(pds_db *db, const char *path, atp_err *err)
{
    for (int i = 0; i < DB_READERS; i++) {
        db_conn *r = &db->r[i];
        int rc = conn_open(r, path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, err);
        if (rc == 0) {
            rc = pds_sqlx_exec(r->c, "PRAGMA temp_store=MEMORY;", err);
        }
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- checkpoints, off the writer's commits ---- */

/* Copies the whole WAL into the database file, so that the writer's next transaction starts
 * the WAL over. A checkpoint beside a writer that commits every millisecond never catches up
 * on its own (new frames arrive while it copies, and the WAL only restarts once everything is
 * copied), so: PASSIVE rounds without the writer until little is left, then one last round
 * with the writer held, short since it copies only that little. */
static void checkpoint_all(pds_db *db)
{
    atp_err err;
    int nlog = 0, ndone = 0;
    for (int round = 0; round < 5; round++) {
        if (atp_sqlwal_checkpoint(db->ckpt, &nlog, &ndone, &err) < 0) {
            atp_logf(ATP_LOG_WARN, "db", "%s", err.msg);
            return;
        }
        if (nlog - ndone <= CKPT_TAIL) {
            break;
        }
    }
    /* a checkpoint that did not reach the end of the WAL left the pages it copied unsynced:
     * synced here, the last round's own fsync has only its few pages to write */
    if (pds_sqlx_sync_file(db->path, &err) != 0) {
        atp_logf(ATP_LOG_WARN, "db", "%s", err.msg);
    }
    pthread_mutex_lock(&db->w.mu);
    if (atp_sqlwal_checkpoint(db->ckpt, NULL, NULL, &err) < 0) {
        atp_logf(ATP_LOG_WARN, "db", "%s", err.msg);
    }
    pthread_mutex_unlock(&db->w.mu);
}

/* Every CKPT_EVERY_MS, a checkpoint once the WAL passed CKPT_FRAMES: the sequencer's commits
 * then never copy pages into the database file themselves. */
static void *checkpointer_main(void *arg)
{
    pds_db *db = arg;
    pds_thread_background();
    pthread_mutex_lock(&db->ckpt_mu);
    while (!db->ckpt_stop) {
        struct timespec until = pds_deadline_ms(CKPT_EVERY_MS);
        (void)pthread_cond_timedwait(&db->ckpt_cv, &db->ckpt_mu, &until);
        if (db->ckpt_stop || atp_sqlwal_frames(&db->wal) < CKPT_FRAMES) {
            continue;
        }
        pthread_mutex_unlock(&db->ckpt_mu);
        checkpoint_all(db);
        pthread_mutex_lock(&db->ckpt_mu);
    }
    pthread_mutex_unlock(&db->ckpt_mu);
    return NULL;
}

static int checkpointer_start(pds_db *db, const char *path, atp_err *err)
{
    db->path = atp_xstrndup(path, strlen(path));
    if (sqlite3_open_v2(path, &db->ckpt, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        return atp_err_set(err, ATP_EIO, 0, "open %.80s (checkpoints): %.60s", path,
                           db->ckpt ? sqlite3_errmsg(db->ckpt) : "?");
    }
    sqlite3_busy_timeout(db->ckpt, DB_BUSY_MS);
    atp_sqlwal_watch(db->w.c, &db->wal, CKPT_LIMIT);
    db->ckpt_on = pthread_create(&db->ckpt_thr, NULL, checkpointer_main, db) == 0;
    return db->ckpt_on ? 0 : atp_err_set(err, ATP_EIO, 0, "checkpoint thread");
}

static void checkpointer_stop(pds_db *db)
{
    pthread_mutex_lock(&db->ckpt_mu);
    db->ckpt_stop = true;
    pthread_cond_broadcast(&db->ckpt_cv);
    pthread_mutex_unlock(&db->ckpt_mu);
    if (db->ckpt_on) {
        pthread_join(db->ckpt_thr, NULL);
        db->ckpt_on = false;
    }
    sqlite3_close(db->ckpt);
    db->ckpt = NULL;
    free(db->path);
    db->path = NULL;
}

int pds_db_open(const char *path, pds_db **out, atp_err *err)
{
    pds_db *db = atp_xcalloc(1, sizeof *db);
    int rc;
    /* every mutex first, so one close path undoes a failure at any step */
    pthread_mutex_init(&db->w.mu, NULL);
    for (int i = 0; i < DB_READERS; i++) {
        pthread_mutex_init(&db->r[i].mu, NULL);
    }
    atomic_init(&db->next, 0u);
    pthread_mutex_init(&db->ckpt_mu, NULL);
    pthread_cond_init(&db->ckpt_cv, NULL);
    rc = writer_open(&db->w, path, err);
    if (rc == 0) {
        sqlite3_update_hook(db->w.c, on_row_change, db);
        rc = readers_open(db, path, err);
    }
    if (rc == 0) {
        rc = checkpointer_start(db, path, err);
    }
    if (rc < 0) {
        pds_db_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

void pds_db_close(pds_db *db)
{
    if (!db) {
        return;
    }
    checkpointer_stop(db);
    /* readers first: the checkpoint below then has no reader to wait for */
    for (int i = 0; i < DB_READERS; i++) {
        conn_close(&db->r[i]);
    }
    if (db->w.c) {
        sqlite3_exec(db->w.c, "PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
    }
    conn_close(&db->w);
    pthread_cond_destroy(&db->ckpt_cv);
    pthread_mutex_destroy(&db->ckpt_mu);
    free(db);
}

/* A reader for this thread, locked: the first free one from a rotating start (so load spreads
 * and no thread always scans from 0), else a wait on the start one. Give it back with
 * reader_put. */
static db_conn *reader_get(pds_db *db)
{
    unsigned start = atomic_fetch_add_explicit(&db->next, 1u, memory_order_relaxed);
    for (unsigned i = 0; i < DB_READERS; i++) {
        db_conn *r = &db->r[(start + i) % DB_READERS];
        if (pthread_mutex_trylock(&r->mu) == 0) {
            return r;
        }
    }
    db_conn *r = &db->r[start % DB_READERS];
    pthread_mutex_lock(&r->mu);
    return r;
}

static void reader_put(db_conn *r)
{
    pthread_mutex_unlock(&r->mu);
}

uint64_t pds_db_account_generation(pds_db *db)
{
    return atomic_load_explicit(&db->acct_gen, memory_order_acquire);
}

/* Runs a cached statement without results on the writer (mu held): the transaction control
 * of every pds_db_txn, which sqlite3_exec would parse again each time (the sequencer runs
 * one transaction per group of writes). */
static int writer_step(pds_db *db, const char *sql, atp_err *err)
{
    sqlite3_stmt *st = stmt_get(&db->w, sql, 0, NULL);
    int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
    stmt_put(&db->w, st);
    return rc == SQLITE_DONE ? 0 : pds_sqlx_fail(db->w.c, err, sql);
}

int pds_db_txn(pds_db *db, pds_db_fn fn, void *ctx, atp_err *err)
{
    int rc;
    pthread_mutex_lock(&db->w.mu);
    rc = writer_step(db, "BEGIN IMMEDIATE", err);
    if (rc == 0) {
        rc = fn(ctx, db->w.c, err);
        if (rc == 0) {
            rc = writer_step(db, "COMMIT", err);
        }
        if (rc != 0 && !sqlite3_get_autocommit(db->w.c)) {
            (void)writer_step(db, "ROLLBACK", NULL);
        }
    }
    writer_unlock(db);
    return rc;
}

int pds_db_read(pds_db *db, pds_db_fn fn, void *ctx, atp_err *err)
{
    db_conn *r = reader_get(db);
    int rc = fn(ctx, r->c, err);
    reader_put(r);
    return rc;
}

int pds_db_schema_version(pds_db *db)
{
    db_conn *r = reader_get(db);
    int v = read_version(r->c);
    reader_put(r);
    return v;
}

static const char *const status_names[] = {"active", "deactivated", "takendown", "deleted"};

const char *pds_status_name(pds_status s)
{
    return (unsigned)s < 4 ? status_names[s] : "active";
}

static pds_status status_parse(const char *s)
{
    for (int i = 0; i < 4; i++) {
        if (s && strcmp(s, status_names[i]) == 0) {
            return (pds_status)i;
        }
    }
    return PDS_ST_ACTIVE;
}

/* Runs a statement without results on the writer (its mutex held); maps constraint failures
 * to ATP_ECONFLICT. */
static int run(pds_db *db, const char *sql, int n, const char *const *args)
{
    sqlite3_stmt *st = stmt_get(&db->w, sql, n, args);
    int rc;
    if (!st) {
        return ATP_EIO;
    }
    rc = sqlite3_step(st);
    stmt_put(&db->w, st);
    if (rc == SQLITE_CONSTRAINT) {
        return ATP_ECONFLICT;
    }
    return rc == SQLITE_DONE ? 0 : ATP_EIO;
}

static void col_copy(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t n = t ? strlen((const char *)t) : 0;
    if (n >= cap) {
        n = cap - 1;
    }
    if (n) {
        memcpy(dst, t, n);
    }
    dst[n] = '\0';
}

/* One use of an invite code, inside the caller's transaction. */
static int use_invite(pds_db *db, const char *code, const char *did, const char *now)
{
    const char *a[] = {code};
    const char *u[] = {code, did, now};
    int rc = run(db,
                 "UPDATE invite_code SET available = available - 1 WHERE code = ?1"
                 " AND disabled = 0 AND available > 0",
                 1, a);
    if (rc < 0) {
        return ATP_EIO;
    }
    if (sqlite3_changes(db->w.c) != 1) {
        return ATP_EFORBIDDEN;
    }
    return run(db, "INSERT INTO invite_code_use(code, used_by, used_at) VALUES(?1, ?2, ?3)", 3,
               u);
}

/* Which unique column a new account collides with (for the error message); on the writer,
 * inside the insert's transaction, so the answer cannot go stale before the insert. */
static const char *taken_what(pds_db *db, const pds_account *a)
{
    const char *q[] = {a->did, a->handle, a->email[0] ? a->email : NULL};
    static const char *const names[] = {"did", "handle", "email"};
    static const char *const sql[] = {"SELECT 1 FROM account WHERE did = ?1",
                                      "SELECT 1 FROM account WHERE handle = ?1",
                                      "SELECT 1 FROM account WHERE email = ?1"};
    for (int i = 0; i < 3; i++) {
        sqlite3_stmt *st = q[i] ? stmt_get(&db->w, sql[i], 1, &q[i]) : NULL;
        bool hit = st && sqlite3_step(st) == SQLITE_ROW;
        stmt_put(&db->w, st);
        if (hit) {
            return names[i];
        }
    }
    return NULL;
}

static int account_insert(pds_db *db, const pds_account *a, const char *invite, atp_err *err)
{
    const char *args[] = {a->did, a->handle, a->email[0] ? a->email : NULL, a->password_hash,
                          a->created_at, pds_status_name(a->status)};
    const char *what = taken_what(db, a);
    int rc;
    if (what) {
        return atp_err_set(err, ATP_ECONFLICT, 0, "%s", what);
    }
    if (invite) {
        rc = use_invite(db, invite, a->did, a->created_at);
        if (rc < 0) {
            return atp_err_set(err, rc, 0, "invite code not available");
        }
    }
    rc = run(db, "INSERT INTO account(did, handle, email, password_hash, created_at, status)"
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6)", 6, args);
    return rc < 0 ? atp_err_set(err, rc, 0, "account insert failed") : 0;
}

int pds_db_account_create(pds_db *db, const pds_account *a, const char *invite, atp_err *err)
{
    sqlite3 *c = db->w.c;
    int rc;
    pthread_mutex_lock(&db->w.mu);
    rc = pds_sqlx_exec(c, "BEGIN IMMEDIATE", err);
    if (rc == 0) {
        rc = account_insert(db, a, invite, err);
        rc = rc < 0 ? rc : pds_sqlx_exec(c, "COMMIT", err);
        if (rc < 0) {
            sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    writer_unlock(db);
    return rc;
}

#define ACCOUNT_SELECT                                                                             \
    "SELECT did, handle, email, password_hash, created_at, status FROM account WHERE "
#define ACCOUNT_LIVE " = ?1 AND status != 'deleted'"

int pds_db_account_get(pds_db *db, const char *ident, pds_account *out)
{
    /* one literal per lookup column, so each keeps its own prepared statement */
    static const char *const sql[] = {ACCOUNT_SELECT "did" ACCOUNT_LIVE,
                                      ACCOUNT_SELECT "email" ACCOUNT_LIVE,
                                      ACCOUNT_SELECT "handle" ACCOUNT_LIVE};
    size_t by = strncmp(ident, "did:", 4) == 0 ? 0 : strchr(ident, '@') ? 1 : 2;
    db_conn *r = reader_get(db);
    sqlite3_stmt *st = stmt_get(r, sql[by], 1, &ident);
    int rc = ATP_ENOTFOUND;
    if (!st) {
        rc = ATP_EIO;
    } else if (sqlite3_step(st) == SQLITE_ROW) {
        col_copy(st, 0, out->did, sizeof out->did);
        col_copy(st, 1, out->handle, sizeof out->handle);
        col_copy(st, 2, out->email, sizeof out->email);
        col_copy(st, 3, out->password_hash, sizeof out->password_hash);
        col_copy(st, 4, out->created_at, sizeof out->created_at);
        out->status = status_parse((const char *)sqlite3_column_text(st, 5));
        rc = 0;
    }
    stmt_put(r, st);
    reader_put(r);
    return rc;
}

/* Runs one write statement under the mutex; `want_change`: ATP_ENOTFOUND if no row changed. */
static int locked_run(pds_db *db, const char *sql, int n, const char *const *args,
                      bool want_change)
{
    int rc;
    pthread_mutex_lock(&db->w.mu);
    rc = run(db, sql, n, args);
    if (rc == 0 && want_change && sqlite3_changes(db->w.c) == 0) {
        rc = ATP_ENOTFOUND;
    }
    writer_unlock(db);
    return rc;
}

int pds_db_account_set_status(pds_db *db, const char *did, pds_status st)
{
    const char *a[] = {pds_status_name(st), did};
    return locked_run(db, "UPDATE account SET status = ?1 WHERE did = ?2", 2, a, true);
}

int pds_db_refresh_add(pds_db *db, const char *id, const char *did, const char *app_pass,
                       int64_t expires_at)
{
    char exp[24];
    const char *a[] = {id, did, app_pass && app_pass[0] ? app_pass : NULL, exp};
    snprintf(exp, sizeof exp, "%lld", (long long)expires_at);
    return locked_run(db, "INSERT INTO refresh_token(id, did, app_password_name, expires_at)"
                          " VALUES(?1, ?2, ?3, CAST(?4 AS INTEGER))", 4, a, false);
}

/* The token's row on dc (its mutex held): a reader for a plain get, the writer in a rotation. */
static int refresh_row(db_conn *dc, const char *id, pds_refresh *out)
{
    sqlite3_stmt *st = stmt_get(dc,
                                "SELECT did, app_password_name, expires_at, next_id"
                                " FROM refresh_token WHERE id = ?1",
                                1, &id);
    int rc = ATP_ENOTFOUND;
    if (!st) {
        return ATP_EIO;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        col_copy(st, 0, out->did, sizeof out->did);
        col_copy(st, 1, out->app_pass, sizeof out->app_pass);
        out->expires_at = sqlite3_column_int64(st, 2);
        col_copy(st, 3, out->next_id, sizeof out->next_id);
        rc = 0;
    }
    stmt_put(dc, st);
    return rc;
}

int pds_db_refresh_get(pds_db *db, const char *id, pds_refresh *out)
{
    db_conn *r = reader_get(db);
    int rc = refresh_row(r, id, out);
    reader_put(r);
    return rc;
}

static int rotate_locked(pds_db *db, const char *old_id, const char *new_id, int64_t new_exp,
                         int64_t old_max, char existing_next[PDS_JTI_MAX + 1])
{
    pds_refresh old;
    char ne[24], om[24];
    int rc = refresh_row(&db->w, old_id, &old);
    if (rc < 0) {
        return rc;
    }
    if (old.next_id[0]) {
        memcpy(existing_next, old.next_id, strlen(old.next_id) + 1);
        return ATP_ECONFLICT;
    }
    snprintf(ne, sizeof ne, "%lld", (long long)new_exp);
    snprintf(om, sizeof om, "%lld", (long long)old_max);
    const char *ins[] = {new_id, old.did, old.app_pass[0] ? old.app_pass : NULL, ne};
    const char *upd[] = {new_id, om, old_id};
    rc = run(db, "INSERT INTO refresh_token(id, did, app_password_name, expires_at)"
                 " VALUES(?1, ?2, ?3, CAST(?4 AS INTEGER))", 4, ins);
    if (rc == 0) {
        rc = run(db, "UPDATE refresh_token SET next_id = ?1, expires_at ="
                     " min(expires_at, CAST(?2 AS INTEGER)) WHERE id = ?3", 3, upd);
    }
    return rc;
}

int pds_db_refresh_rotate(pds_db *db, const char *old_id, const char *new_id,
                          int64_t new_expires, int64_t old_expires_max,
                          char existing_next[PDS_JTI_MAX + 1])
{
    sqlite3 *c = db->w.c;
    int rc;
    pthread_mutex_lock(&db->w.mu);
    rc = pds_sqlx_exec(c, "BEGIN IMMEDIATE", NULL);
    if (rc == 0) {
        rc = rotate_locked(db, old_id, new_id, new_expires, old_expires_max, existing_next);
        if (rc == 0) {
            rc = pds_sqlx_exec(c, "COMMIT", NULL);
        }
        if (rc < 0) {
            sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    writer_unlock(db);
    return rc;
}

int pds_db_refresh_delete(pds_db *db, const char *id)
{
    return locked_run(db, "DELETE FROM refresh_token WHERE id = ?1", 1, &id, false);
}

int pds_db_refresh_purge(pds_db *db, int64_t now)
{
    char n[24];
    const char *a[] = {n};
    snprintf(n, sizeof n, "%lld", (long long)now);
    return locked_run(db, "DELETE FROM refresh_token WHERE expires_at < CAST(?1 AS INTEGER)", 1,
                      a, false);
}

int pds_db_app_pass_add(pds_db *db, const char *did, const char *name, const char *hash,
                        const char *created_at, bool privileged)
{
    const char *a[] = {did, name, hash, created_at, privileged ? "1" : "0"};
    return locked_run(db, "INSERT INTO app_password(did, name, password_hash, created_at,"
                          " privileged) VALUES(?1, ?2, ?3, ?4, CAST(?5 AS INTEGER))", 5, a,
                      false);
}

int pds_db_app_pass_list(pds_db *db, const char *did, cJSON **out)
{
    cJSON *arr = cJSON_CreateArray();
    db_conn *r = reader_get(db);
    sqlite3_stmt *st = stmt_get(r,
                                "SELECT name, created_at, privileged FROM app_password"
                                " WHERE did = ?1 ORDER BY created_at",
                                1, &did);
    bool ok = st != NULL;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", (const char *)sqlite3_column_text(st, 0));
        cJSON_AddStringToObject(o, "createdAt", (const char *)sqlite3_column_text(st, 1));
        cJSON_AddBoolToObject(o, "privileged", sqlite3_column_int(st, 2) != 0);
        cJSON_AddItemToArray(arr, o);
    }
    stmt_put(r, st);
    reader_put(r);
    if (!ok) {
        cJSON_Delete(arr);
        return ATP_EIO;
    }
    *out = arr;
    return 0;
}

int pds_db_app_pass_delete(pds_db *db, const char *did, const char *name)
{
    const char *a[] = {did, name};
    int rc;
    pthread_mutex_lock(&db->w.mu);
    rc = run(db, "DELETE FROM app_password WHERE did = ?1 AND name = ?2", 2, a);
    if (rc == 0) {
        rc = run(db, "DELETE FROM refresh_token WHERE did = ?1 AND app_password_name = ?2", 2,
                 a);
    }
    writer_unlock(db);
    return rc;
}

/* The app passwords of `did` as [{n: name, h: hash, p: privileged}] (owned) into *rows. */
static int app_pass_rows(pds_db *db, const char *did, cJSON **rows)
{
    cJSON *arr = cJSON_CreateArray();
    db_conn *r = reader_get(db);
    sqlite3_stmt *st = stmt_get(
        r, "SELECT name, password_hash, privileged FROM app_password WHERE did = ?1", 1, &did);
    int rc = st ? 0 : ATP_EIO;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "n", (const char *)sqlite3_column_text(st, 0));
        cJSON_AddStringToObject(o, "h", (const char *)sqlite3_column_text(st, 1));
        cJSON_AddBoolToObject(o, "p", sqlite3_column_int(st, 2) != 0);
        cJSON_AddItemToArray(arr, o);
    }
    stmt_put(r, st);
    reader_put(r);
    *rows = arr;
    return rc;
}

int pds_db_app_pass_find(pds_db *db, const char *did, bool (*fn)(const char *hash, void *ud),
                         void *ud, char name[PDS_APP_PASS_NAME_MAX + 1], bool *privileged)
{
    cJSON *rows = NULL;
    /* Hashes are copied out first: the slow scrypt checks then run holding no connection. */
    int rc = app_pass_rows(db, did, &rows);
    const cJSON *o;
    cJSON_ArrayForEach(o, rows)
    {
        const char *n = cJSON_GetObjectItem(o, "n")->valuestring;
        if (rc == 0 && fn(cJSON_GetObjectItem(o, "h")->valuestring, ud)) {
            snprintf(name, PDS_APP_PASS_NAME_MAX + 1, "%s", n);
            *privileged = cJSON_IsTrue(cJSON_GetObjectItem(o, "p"));
            rc = 1;
        }
    }
    cJSON_Delete(rows);
    return rc;
}

int pds_db_invite_create(pds_db *db, const char *code, int uses, const char *for_account,
                         const char *created_by, const char *created_at)
{
    char n[16];
    const char *a[] = {code, n, for_account, created_by, created_at};
    snprintf(n, sizeof n, "%d", uses);
    return locked_run(db, "INSERT INTO invite_code(code, available, for_account, created_by,"
                          " created_at) VALUES(?1, CAST(?2 AS INTEGER), ?3, ?4, ?5)", 5, a,
                      false);
}

/* The uses of one code as [{usedBy, usedAt}], on reader r (its mutex held). */
static cJSON *invite_uses(db_conn *r, const char *code)
{
    cJSON *arr = cJSON_CreateArray();
    sqlite3_stmt *st =
        stmt_get(r, "SELECT used_by, used_at FROM invite_code_use WHERE code = ?1", 1, &code);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "usedBy", (const char *)sqlite3_column_text(st, 0));
        cJSON_AddStringToObject(o, "usedAt", (const char *)sqlite3_column_text(st, 1));
        cJSON_AddItemToArray(arr, o);
    }
    stmt_put(r, st);
    return arr;
}

int pds_db_invite_list(pds_db *db, const char *did, cJSON **out)
{
    cJSON *arr = cJSON_CreateArray();
    db_conn *r = reader_get(db);
    sqlite3_stmt *st = stmt_get(r,
                                "SELECT code, available, disabled, for_account, created_by,"
                                " created_at FROM invite_code WHERE for_account = ?1"
                                " ORDER BY created_at",
                                1, &did);
    bool ok = st != NULL;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        const char *code = (const char *)sqlite3_column_text(st, 0);
        cJSON_AddStringToObject(o, "code", code);
        cJSON_AddNumberToObject(o, "available", sqlite3_column_int(st, 1));
        cJSON_AddBoolToObject(o, "disabled", sqlite3_column_int(st, 2) != 0);
        cJSON_AddStringToObject(o, "forAccount", (const char *)sqlite3_column_text(st, 3));
        cJSON_AddStringToObject(o, "createdBy", (const char *)sqlite3_column_text(st, 4));
        cJSON_AddStringToObject(o, "createdAt", (const char *)sqlite3_column_text(st, 5));
        cJSON_AddItemToObject(o, "uses", invite_uses(r, code));
        cJSON_AddItemToArray(arr, o);
    }
    stmt_put(r, st);
    reader_put(r);
    if (!ok) {
        cJSON_Delete(arr);
        return ATP_EIO;
    }
    *out = arr;
    return 0;
}

int pds_db_account_set_key(pds_db *db, const char *did, const char *key_hex)
{
    const char *a[] = {key_hex, did};
    return locked_run(db, "UPDATE account SET signing_key = ?1 WHERE did = ?2", 2, a, true);
}

int pds_db_account_get_key(pds_db *db, const char *did, char key_hex[65])
{
    db_conn *r = reader_get(db);
    sqlite3_stmt *st = stmt_get(r, "SELECT signing_key FROM account WHERE did = ?1", 1, &did);
    int rc = ATP_ENOTFOUND;
    if (!st) {
        rc = ATP_EIO;
    } else if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 64) {
        col_copy(st, 0, key_hex, 65);
        rc = 0;
    }
    stmt_put(r, st);
    reader_put(r);
    return rc;
}
