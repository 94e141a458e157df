/* pds/src/prefs.c: app.bsky.actor.getPreferences / putPreferences, stored by the PDS in the
 * service database (account_pref: one row per preference, name = its $type), as the reference
 * does: put replaces every preference of the namespace that the caller may see. */
#include <string.h>

#include "db.h"
#include "lifecycle.h"
#include "pds.h"
#include "sqlx.h"

bool pds_pref_in_namespace(const char *type)
{
    size_t n = strlen(PDS_PREFS_NAMESPACE);
    return strncmp(type, PDS_PREFS_NAMESPACE, n) == 0 && (type[n] == '\0' || type[n] == '.');
}

/* One item: an object with a string $type in the namespace, allowed for the scope. */
static int check_item(const cJSON *it, size_t i, bool full, atp_err *err)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "$type");
    if (!cJSON_IsObject(it) || !cJSON_IsString(t) || !t->valuestring[0]) {
        return atp_err_set(err, ATP_EINVAL, i, "Preference is missing a $type");
    }
    if (strlen(t->valuestring) > PDS_PREF_TYPE_MAX) {
        return atp_err_set(err, ATP_ELIMIT, i, "Preference $type is too long");
    }
    if (!pds_pref_in_namespace(t->valuestring)) {
        return atp_err_set(err, ATP_EINVAL, i, "Some preferences are not in the %s namespace",
                           PDS_PREFS_NAMESPACE);
    }
    if (!full && strcmp(t->valuestring, PDS_PREF_FULL_ONLY) == 0) {
        return atp_err_set(err, ATP_EFORBIDDEN, i, "Do not have authorization to set preferences.");
    }
    return 0;
}

static int check_items(const cJSON *arr, bool full, atp_err *err)
{
    size_t i = 0;
    const cJSON *it;
    if (cJSON_GetArraySize(arr) > PDS_PREFS_MAX_ITEMS) {
        return atp_err_set(err, ATP_ELIMIT, 0, "Too many preferences (at most %d)",
                           PDS_PREFS_MAX_ITEMS);
    }
    cJSON_ArrayForEach(it, arr)
    {
        int rc = check_item(it, i++, full, err);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int pds_prefs_parse(atp_slice body, bool full_access, cJSON **out, atp_err *err)
{
    if (body.len > PDS_JSON_MAX) {
        return atp_err_set(err, ATP_ELIMIT, 0, "request entity too large");
    }
    /* cJSON parses at most CJSON_NESTING_LIMIT levels deep: bounded recursion. */
    cJSON *doc = body.len ? cJSON_ParseWithLength((const char *)body.ptr, body.len) : NULL;
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "preferences");
    int rc = 0;
    if (!cJSON_IsObject(doc) || !cJSON_IsArray(arr)) {
        rc = atp_err_set(err, ATP_EINVAL, 0, "Input must have the property \"preferences\"");
    } else {
        rc = check_items(arr, full_access, err);
    }
    if (rc == 0) {
        *out = cJSON_DetachItemViaPointer(doc, arr);
    }
    cJSON_Delete(doc);
    return rc;
}

/* ---- storage ---- */

typedef struct prefs_job {
    const char *did;
    bool full;
    cJSON *items; /* put: the new list (borrowed); get: the result (owned by the caller) */
} prefs_job;

/* Rows of the namespace visible to the scope, in insertion order. */
static int read_fn(void *ctx, sqlite3 *c, atp_err *err)
{
    prefs_job *j = ctx;
    sqlite3_stmt *st = NULL;
    int rc;
    if (sqlite3_prepare_v2(c,
                           "SELECT name, value_json FROM account_pref WHERE did = ?1"
                           " ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(c, err, "sqlite");
    }
    sqlite3_bind_text(st, 1, j->did, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *val = (const char *)sqlite3_column_text(st, 1);
        cJSON *v = val ? cJSON_Parse(val) : NULL;
        if (!name || !v || !pds_pref_in_namespace(name) ||
            (!j->full && strcmp(name, PDS_PREF_FULL_ONLY) == 0)) {
            cJSON_Delete(v);
            continue;
        }
        cJSON_AddItemToArray(j->items, v);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : pds_sqlx_fail(c, err, "sqlite");
}

/* Drops what the caller may replace: the namespace, less the full-access-only preference for
 * an app password (which keeps it as it was). */
static int delete_visible(sqlite3 *c, const prefs_job *j, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (sqlite3_prepare_v2(c,
                           "DELETE FROM account_pref WHERE did = ?1 AND (name = ?2 OR"
                           " substr(name, 1, length(?2) + 1) = ?2 || '.') AND (?3 OR name != ?4)",
                           -1, &st, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(c, err, "sqlite");
    }
    sqlite3_bind_text(st, 1, j->did, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, PDS_PREFS_NAMESPACE, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, j->full);
    sqlite3_bind_text(st, 4, PDS_PREF_FULL_ONLY, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : pds_sqlx_fail(c, err, "sqlite");
    sqlite3_finalize(st);
    return rc;
}

static int insert_one(sqlite3_stmt *st, const char *did, const cJSON *it)
{
    char *val = cJSON_PrintUnformatted(it);
    int rc;
    if (!val) {
        return ATP_EINTERNAL;
    }
    sqlite3_bind_text(st, 1, did, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, cJSON_GetObjectItemCaseSensitive(it, "$type")->valuestring, -1,
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 3, val, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ATP_EIO;
    sqlite3_reset(st);
    cJSON_free(val);
    return rc;
}

static int put_fn(void *ctx, sqlite3 *c, atp_err *err)
{
    prefs_job *j = ctx;
    sqlite3_stmt *st = NULL;
    const cJSON *it;
    int rc = delete_visible(c, j, err);
    if (rc < 0) {
        return rc;
    }
    if (sqlite3_prepare_v2(c, "INSERT INTO account_pref(did, name, value_json) VALUES(?1, ?2, ?3)",
                           -1, &st, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(c, err, "sqlite");
    }
    cJSON_ArrayForEach(it, j->items)
    {
        if ((rc = insert_one(st, j->did, it)) < 0) {
            break;
        }
    }
    sqlite3_finalize(st);
    return rc < 0 ? atp_err_set(err, rc, 0, "could not store the preferences") : 0;
}

/* ---- routes ---- */

static void get_preferences(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    prefs_job j;
    atp_err err;
    cJSON *o;
    if (pds_auth_access(ctx, r, &au) < 0) {
        return;
    }
    atp_err_clear(&err);
    o = cJSON_CreateObject();
    j.did = au.did;
    j.full = au.scope == PDS_SCOPE_ACCESS;
    j.items = cJSON_AddArrayToObject(o, "preferences");
    if (pds_db_read(ctx->db, read_fn, &j, &err) < 0) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
    } else {
        pds_respond_json(r, o);
    }
    cJSON_Delete(o);
}

static void put_preferences(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    prefs_job j;
    atp_err err;
    int rc;
    if (pds_auth_access(ctx, r, &au) < 0) {
        return;
    }
    atp_err_clear(&err);
    j.did = au.did;
    j.full = au.scope == PDS_SCOPE_ACCESS;
    rc = pds_prefs_parse(atp_req_body(r), j.full, &j.items, &err);
    if (rc == ATP_ELIMIT && atp_req_body(r).len > PDS_JSON_MAX) {
        atp_req_error_status(r, 413, "PayloadTooLarge", err.msg);
        return;
    }
    if (rc < 0) {
        atp_req_error_status(r, 400, "InvalidRequest", err.msg);
        return;
    }
    if (pds_db_txn(ctx->db, put_fn, &j, &err) < 0) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
    } else {
        atp_req_respond(r, 200, NULL, atp_slice_make(NULL, 0));
    }
    cJSON_Delete(j.items);
}

void pds_routes_prefs(atp_server *s, pds_ctx *ctx)
{
    atp_server_route(s, "GET", "/xrpc/app.bsky.actor.getPreferences", get_preferences, ctx,
                     ATP_ROUTE_BLOCKING);
    atp_server_route(s, "POST", "/xrpc/app.bsky.actor.putPreferences", put_preferences, ctx,
                     ATP_ROUTE_BLOCKING);
}
