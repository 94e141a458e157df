/* pds/src/db.c: the service database. One connection behind a mutex: each function is a
 * short critical section, so a group-commit write queue can replace the mutex later. */
#include "db.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/buf.h"
#include "sqlx.h"

struct pds_db {
    sqlite3 *conn;
    pthread_mutex_t mu;
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

int pds_db_open(const char *path, pds_db **out, atp_err *err)
{
    sqlite3 *c = NULL;
    int rc;
    pds_db *db;
    if (sqlite3_open_v2(path, &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        atp_err_set(err, ATP_EIO, 0, "open %.80s: %.60s", path, c ? sqlite3_errmsg(c) : "?");
        sqlite3_close(c);
        return ATP_EIO;
    }
    sqlite3_busy_timeout(c, 10000);
    rc = pds_sqlx_exec(c,
                       "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                       " PRAGMA temp_store=MEMORY;",
                       err);
    if (rc == 0) {
        rc = migrate(c, err);
    }
    if (rc < 0) {
        sqlite3_close(c);
        return rc;
    }
    db = atp_xcalloc(1, sizeof *db);
    db->conn = c;
    pthread_mutex_init(&db->mu, NULL);
    *out = db;
    return 0;
}

void pds_db_close(pds_db *db)
{
    if (!db) {
        return;
    }
    sqlite3_exec(db->conn, "PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
    sqlite3_close(db->conn);
    pthread_mutex_destroy(&db->mu);
    free(db);
}

int pds_db_txn(pds_db *db, pds_db_fn fn, void *ctx, atp_err *err)
{
    int rc;
    pthread_mutex_lock(&db->mu);
    rc = pds_sqlx_exec(db->conn, "BEGIN IMMEDIATE", err);
    if (rc == 0) {
        rc = fn(ctx, db->conn, err);
        if (rc == 0) {
            rc = pds_sqlx_exec(db->conn, "COMMIT", err);
        }
        if (rc != 0) {
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int pds_db_read(pds_db *db, pds_db_fn fn, void *ctx, atp_err *err)
{
    int rc;
    pthread_mutex_lock(&db->mu);
    rc = fn(ctx, db->conn, err);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int pds_db_schema_version(pds_db *db)
{
    int v;
    pthread_mutex_lock(&db->mu);
    v = read_version(db->conn);
    pthread_mutex_unlock(&db->mu);
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

/* Runs a statement without results; maps constraint failures to ATP_ECONFLICT. */
static int run(pds_db *db, const char *sql, int n, const char *const *args)
{
    sqlite3_stmt *st = pds_sqlx_prepare_texts(db->conn, sql, n, args);
    int rc;
    if (!st) {
        return ATP_EIO;
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
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
    sqlite3_stmt *st =
        pds_sqlx_prepare_texts(db->conn,
                               "UPDATE invite_code SET available = available - 1 WHERE code = ?1"
                               " AND disabled = 0 AND available > 0",
                               1, a);
    int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return ATP_EIO;
    }
    if (sqlite3_changes(db->conn) != 1) {
        return ATP_EFORBIDDEN;
    }
    return run(db, "INSERT INTO invite_code_use(code, used_by, used_at) VALUES(?1, ?2, ?3)", 3,
               u);
}

/* Which unique column a new account collides with (for the error message). */
static const char *taken_what(pds_db *db, const pds_account *a)
{
    const char *q[] = {a->did, a->handle, a->email[0] ? a->email : NULL};
    static const char *const names[] = {"did", "handle", "email"};
    static const char *const sql[] = {"SELECT 1 FROM account WHERE did = ?1",
                                      "SELECT 1 FROM account WHERE handle = ?1",
                                      "SELECT 1 FROM account WHERE email = ?1"};
    for (int i = 0; i < 3; i++) {
        sqlite3_stmt *st = q[i] ? pds_sqlx_prepare_texts(db->conn, sql[i], 1, &q[i]) : NULL;
        bool hit = st && sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
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
    int rc;
    pthread_mutex_lock(&db->mu);
    rc = pds_sqlx_exec(db->conn, "BEGIN IMMEDIATE", err);
    if (rc == 0) {
        rc = account_insert(db, a, invite, err);
        rc = rc < 0 ? rc : pds_sqlx_exec(db->conn, "COMMIT", err);
        if (rc < 0) {
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int pds_db_account_get(pds_db *db, const char *ident, pds_account *out)
{
    const char *col = strncmp(ident, "did:", 4) == 0 ? "did" : strchr(ident, '@') ? "email"
                                                                                  : "handle";
    char sql[160];
    sqlite3_stmt *st = NULL;
    int rc = ATP_ENOTFOUND;
    snprintf(sql, sizeof sql, "SELECT did, handle, email, password_hash, created_at, status"
                              " FROM account WHERE %s = ?1 AND status != 'deleted'", col);
    pthread_mutex_lock(&db->mu);
    st = pds_sqlx_prepare_texts(db->conn, sql, 1, &ident);
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
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* Runs one write statement under the mutex; `want_change`: ATP_ENOTFOUND if no row changed. */
static int locked_run(pds_db *db, const char *sql, int n, const char *const *args,
                      bool want_change)
{
    int rc;
    pthread_mutex_lock(&db->mu);
    rc = run(db, sql, n, args);
    if (rc == 0 && want_change && sqlite3_changes(db->conn) == 0) {
        rc = ATP_ENOTFOUND;
    }
    pthread_mutex_unlock(&db->mu);
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

static int refresh_get_locked(pds_db *db, const char *id, pds_refresh *out)
{
    sqlite3_stmt *st = pds_sqlx_prepare_texts(db->conn,
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
    sqlite3_finalize(st);
    return rc;
}

int pds_db_refresh_get(pds_db *db, const char *id, pds_refresh *out)
{
    int rc;
    pthread_mutex_lock(&db->mu);
    rc = refresh_get_locked(db, id, out);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

static int rotate_locked(pds_db *db, const char *old_id, const char *new_id, int64_t new_exp,
                         int64_t old_max, char existing_next[PDS_JTI_MAX + 1])
{
    pds_refresh old;
    char ne[24], om[24];
    int rc = refresh_get_locked(db, old_id, &old);
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
    int rc;
    pthread_mutex_lock(&db->mu);
    rc = pds_sqlx_exec(db->conn, "BEGIN IMMEDIATE", NULL);
    if (rc == 0) {
        rc = rotate_locked(db, old_id, new_id, new_expires, old_expires_max, existing_next);
        if (rc == 0) {
            rc = pds_sqlx_exec(db->conn, "COMMIT", NULL);
        }
        if (rc < 0) {
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    pthread_mutex_unlock(&db->mu);
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
    sqlite3_stmt *st = NULL;
    cJSON *arr = cJSON_CreateArray();
    pthread_mutex_lock(&db->mu);
    st = pds_sqlx_prepare_texts(
        db->conn,
        "SELECT name, created_at, privileged FROM app_password WHERE did = ?1"
        " ORDER BY created_at",
        1, &did);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", (const char *)sqlite3_column_text(st, 0));
        cJSON_AddStringToObject(o, "createdAt", (const char *)sqlite3_column_text(st, 1));
        cJSON_AddBoolToObject(o, "privileged", sqlite3_column_int(st, 2) != 0);
        cJSON_AddItemToArray(arr, o);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->mu);
    if (!st) {
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
    pthread_mutex_lock(&db->mu);
    rc = run(db, "DELETE FROM app_password WHERE did = ?1 AND name = ?2", 2, a);
    if (rc == 0) {
        rc = run(db, "DELETE FROM refresh_token WHERE did = ?1 AND app_password_name = ?2", 2,
                 a);
    }
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int pds_db_app_pass_find(pds_db *db, const char *did, bool (*fn)(const char *hash, void *ud),
                         void *ud, char name[PDS_APP_PASS_NAME_MAX + 1], bool *privileged)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;
    /* Hashes are copied out first: the slow scrypt checks then run without the mutex. */
    cJSON *rows = cJSON_CreateArray();
    pthread_mutex_lock(&db->mu);
    st = pds_sqlx_prepare_texts(
        db->conn, "SELECT name, password_hash, privileged FROM app_password WHERE did = ?1", 1,
        &did);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "n", (const char *)sqlite3_column_text(st, 0));
        cJSON_AddStringToObject(o, "h", (const char *)sqlite3_column_text(st, 1));
        cJSON_AddBoolToObject(o, "p", sqlite3_column_int(st, 2) != 0);
        cJSON_AddItemToArray(rows, o);
    }
    rc = st ? 0 : ATP_EIO;
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->mu);
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

/* The uses of one code as [{usedBy, usedAt}]. */
static cJSON *invite_uses(pds_db *db, const char *code)
{
    cJSON *arr = cJSON_CreateArray();
    sqlite3_stmt *st = pds_sqlx_prepare_texts(
        db->conn, "SELECT used_by, used_at FROM invite_code_use WHERE code = ?1", 1, &code);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "usedBy", (const char *)sqlite3_column_text(st, 0));
        cJSON_AddStringToObject(o, "usedAt", (const char *)sqlite3_column_text(st, 1));
        cJSON_AddItemToArray(arr, o);
    }
    sqlite3_finalize(st);
    return arr;
}

int pds_db_invite_list(pds_db *db, const char *did, cJSON **out)
{
    sqlite3_stmt *st = NULL;
    cJSON *arr = cJSON_CreateArray();
    pthread_mutex_lock(&db->mu);
    st = pds_sqlx_prepare_texts(
        db->conn,
        "SELECT code, available, disabled, for_account, created_by, created_at"
        " FROM invite_code WHERE for_account = ?1 ORDER BY created_at",
        1, &did);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        const char *code = (const char *)sqlite3_column_text(st, 0);
        cJSON_AddStringToObject(o, "code", code);
        cJSON_AddNumberToObject(o, "available", sqlite3_column_int(st, 1));
        cJSON_AddBoolToObject(o, "disabled", sqlite3_column_int(st, 2) != 0);
        cJSON_AddStringToObject(o, "forAccount", (const char *)sqlite3_column_text(st, 3));
        cJSON_AddStringToObject(o, "createdBy", (const char *)sqlite3_column_text(st, 4));
        cJSON_AddStringToObject(o, "createdAt", (const char *)sqlite3_column_text(st, 5));
        cJSON_AddItemToObject(o, "uses", invite_uses(db, code));
        cJSON_AddItemToArray(arr, o);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->mu);
    if (!st) {
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
    sqlite3_stmt *st = NULL;
    int rc = ATP_ENOTFOUND;
    pthread_mutex_lock(&db->mu);
    st =
        pds_sqlx_prepare_texts(db->conn, "SELECT signing_key FROM account WHERE did = ?1", 1, &did);
    if (!st) {
        rc = ATP_EIO;
    } else if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 64) {
        col_copy(st, 0, key_hex, 65);
        rc = 0;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->mu);
    return rc;
}
