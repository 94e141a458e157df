/* pds/src/db.h: the service database (one SQLite file, DATA/service.sqlite).
 *
 * Accounts, refresh tokens, app passwords, invite codes and email tokens. WAL with
 * synchronous=FULL: a write the client saw acknowledged survives kill -9. The schema is
 * versioned (table schema_migrations; migrations run in order at open).
 *
 * Connections: one writer behind one mutex takes every write and transaction, each a small
 * function, so a write queue (group commit) can replace the mutex later without touching
 * callers. Reads (the lookups below and pds_db_read) go to a pool of read-only connections,
 * each behind its own mutex: under WAL a reader never waits for the writer, nor for its COMMIT
 * fsync. A read issued after a write's function returned sees that write: each read statement
 * starts a fresh WAL snapshot. Each connection keeps its statements prepared after first use.
 * All functions are thread-safe.
 */
#ifndef PDS_DB_H
#define PDS_DB_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "atp/err.h"

#include "pds.h"

#define PDS_DB_SCHEMA_VERSION 3
#define PDS_EMAIL_MAX 320
#define PDS_HASH_MAX 192 /* password hash strings (password.h) */

typedef enum pds_status {
    PDS_ST_ACTIVE = 0,
    PDS_ST_DEACTIVATED,
    PDS_ST_TAKENDOWN,
    PDS_ST_DELETED,
} pds_status;

typedef struct pds_account {
    char did[PDS_DID_MAX + 1];
    char handle[PDS_HANDLE_MAX + 1];
    char email[PDS_EMAIL_MAX + 1];
    char password_hash[PDS_HASH_MAX + 1];
    char created_at[32];
    pds_status status;
} pds_account;

typedef struct pds_refresh {
    char did[PDS_DID_MAX + 1];
    char app_pass[PDS_APP_PASS_NAME_MAX + 1]; /* "" for a password login */
    int64_t expires_at;                       /* Unix seconds */
    char next_id[PDS_JTI_MAX + 1];            /* "" until rotated */
} pds_refresh;

/* Opens (creating) the database at `path` and migrates it to PDS_DB_SCHEMA_VERSION.
 * ATP_EIO on any SQLite failure (err says which). A newer schema than ours: ATP_EINVAL. */
ATP_NODISCARD int pds_db_open(const char *path, pds_db **out, atp_err *err);
void pds_db_close(pds_db *db); /* NULL is a no-op */

/* Tables (migration 1): account, refresh_token, app_password, invite_code, invite_code_use,
 * email_token. Migration 2: repo_seq (the firehose: seq, did, event_type, event = the whole
 * frame, invalidated, sequenced_at, outbox_id = the account file's seq_outbox id it came from),
 * seq_state (name -> value), account columns takedown_ref, deactivated_at, delete_after,
 * email_confirmed_at, invites_disabled; account_pref (did, name = the preference's $type,
 * value_json); reserved_signing_key (key_did, did, private_key hex, created_at). Migration 3:
 * repo_seq's two indexes on did become one, unique (did, outbox_id).
 *
 * Modules with their own tables (sequencer, admin, preferences...) use the connections through
 * these two calls: writes through pds_db_txn, on the writer under its mutex; reads through
 * pds_db_read, on a pooled reader under that reader's mutex. */
typedef int (*pds_db_fn)(void *ctx, sqlite3 *conn, atp_err *err);

/* Runs fn inside BEGIN IMMEDIATE ... COMMIT (durable on return: synchronous=FULL); a non-zero
 * return from fn, or a failed COMMIT, rolls everything back and is returned. fn must not
 * call other pds_db_* functions (the mutex is held) nor end the transaction itself. */
ATP_NODISCARD int pds_db_txn(pds_db *db, pds_db_fn fn, void *ctx, atp_err *err);

/* Runs fn with a pooled read-only connection (no transaction opened; each statement is atomic
 * and sees every write committed before it started). A write from fn fails with
 * SQLITE_READONLY. fn must not call other pds_db_* functions (a reader is held) and must
 * finalize or reset its statements, since one left mid-step pins an old snapshot. */
ATP_NODISCARD int pds_db_read(pds_db *db, pds_db_fn fn, void *ctx, atp_err *err);

/* A counter the writer bumps after every committed change to an account row (any column,
 * through any call here or pds_db_txn), for caches of account state (acct_cache.h). */
uint64_t pds_db_account_generation(pds_db *db);

/* Schema version recorded in the file. */
int pds_db_schema_version(pds_db *db);

/* Status name ("active"...) and back (ATP_EINVAL for unknown names). */
const char *pds_status_name(pds_status s);

/* Inserts the account; with `invite` non-NULL also consumes one use of that code, atomically.
 * ATP_ECONFLICT handle or email or DID taken (err->msg says "handle"/"email"/"did");
 * ATP_EFORBIDDEN invite code unknown, disabled or used up; ATP_EIO. */
ATP_NODISCARD int pds_db_account_create(pds_db *db, const pds_account *a, const char *invite,
                                        atp_err *err);

/* Looks an account up by DID (starts "did:"), email (contains '@') or handle; lowercase
 * handles/emails expected. ATP_ENOTFOUND; *out written only on success. Deleted accounts are
 * not found. */
ATP_NODISCARD int pds_db_account_get(pds_db *db, const char *ident, pds_account *out);

/* Sets the status. ATP_ENOTFOUND if no such account. */
ATP_NODISCARD int pds_db_account_set_status(pds_db *db, const char *did, pds_status st);

/* The account's repo signing key (k256 private scalar as 64 hex digits). set: ATP_ENOTFOUND
 * if no such account; get: ATP_ENOTFOUND if none stored. */
ATP_NODISCARD int pds_db_account_set_key(pds_db *db, const char *did, const char *key_hex);
ATP_NODISCARD int pds_db_account_get_key(pds_db *db, const char *did, char key_hex[65]);

/* Stores a refresh token id. ATP_EIO. */
ATP_NODISCARD int pds_db_refresh_add(pds_db *db, const char *id, const char *did,
                                     const char *app_pass, int64_t expires_at);
/* ATP_ENOTFOUND if unknown (revoked). */
ATP_NODISCARD int pds_db_refresh_get(pds_db *db, const char *id, pds_refresh *out);
/* Rotation: adds `new_id` (same did/app password, new_expires), links old -> new and cuts the
 * old one's expiry to min(its expiry, old_expires_max); atomic. If the old one already has a
 * successor, nothing is added and ATP_ECONFLICT is returned with its id in existing_next. */
ATP_NODISCARD int pds_db_refresh_rotate(pds_db *db, const char *old_id, const char *new_id,
                                        int64_t new_expires, int64_t old_expires_max,
                                        char existing_next[PDS_JTI_MAX + 1]);
/* Revokes one token (no error if absent). */
ATP_NODISCARD int pds_db_refresh_delete(pds_db *db, const char *id);
/* Drops expired tokens (housekeeping). */
ATP_NODISCARD int pds_db_refresh_purge(pds_db *db, int64_t now);

/* App passwords. add: ATP_ECONFLICT if the name exists. */
ATP_NODISCARD int pds_db_app_pass_add(pds_db *db, const char *did, const char *name,
                                      const char *hash, const char *created_at, bool privileged);
/* JSON array [{name, createdAt, privileged}] (owned) into *out. */
ATP_NODISCARD int pds_db_app_pass_list(pds_db *db, const char *did, cJSON **out);
/* Deletes the app password and every refresh token issued for it. */
ATP_NODISCARD int pds_db_app_pass_delete(pds_db *db, const char *did, const char *name);
/* Calls fn(name, hash, privileged, ud) for each app password of `did` until fn returns true;
 * returns 1 if one matched (its name/privileged copied out), 0 if none, < 0 on error. */
int pds_db_app_pass_find(pds_db *db, const char *did,
                         bool (*fn)(const char *hash, void *ud), void *ud,
                         char name[PDS_APP_PASS_NAME_MAX + 1], bool *privileged);

/* Invite codes. ATP_ECONFLICT if the code exists. */
ATP_NODISCARD int pds_db_invite_create(pds_db *db, const char *code, int uses,
                                       const char *for_account, const char *created_by,
                                       const char *created_at);
/* Codes for `did` as the lexicon's inviteCode objects (owned JSON array). */
ATP_NODISCARD int pds_db_invite_list(pds_db *db, const char *did, cJSON **out);

#endif
