/* pds/src/actor_store_admin.c: admin subjects (parsing and formatting) and the takedown state
 * of records and blobs in the account's own file. */
#include "actor_store_admin.h"

#include <stdio.h>
#include <string.h>

#include "atp/syntax.h"

#include "actor_store_int.h"
#include "sqlx.h"

static const char T_REPO[] = "com.atproto.admin.defs#repoRef";
static const char T_RECORD[] = "com.atproto.repo.strongRef";
static const char T_BLOB[] = "com.atproto.admin.defs#repoBlobRef";

/* ---- parsing ---- */

/* String member `name` of `o` copied into out[cap]. 1 if absent (out = "") and !required. */
static int str_field(const cJSON *o, const char *name, bool required, char *out, size_t cap,
                     atp_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    size_t n;
    out[0] = '\0';
    if (!v && !required) {
        return 1;
    }
    if (!cJSON_IsString(v)) {
        return atp_err_set(err, ATP_EINVAL, 0, "%s must be a string", name);
    }
    n = strlen(v->valuestring);
    if (n >= cap) {
        return atp_err_set(err, ATP_EINVAL, 0, "%s is too long", name);
    }
    memcpy(out, v->valuestring, n + 1);
    return 0;
}

static int did_field(const cJSON *o, const char *name, char out[PDS_DID_MAX + 1], atp_err *err)
{
    int rc = str_field(o, name, true, out, PDS_DID_MAX + 1, err);
    if (rc == 0 && !atp_syntax_is_did(atp_slice_str(out))) {
        rc = atp_err_set(err, ATP_EINVAL, 0, "%s must be a valid did", name);
    }
    return rc;
}

static int cid_text(atp_slice s, atp_cid *out, const char *name, atp_err *err)
{
    if (s.len >= ATP_CID_STR_MAX || atp_cid_parse(s, 0, out, NULL) < 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "%s must be a valid cid", name);
    }
    return 0;
}

static int cid_field(const cJSON *o, const char *name, atp_cid *out, atp_err *err)
{
    char text[ATP_CID_STR_MAX];
    int rc = str_field(o, name, true, text, sizeof text, err);
    return rc == 0 ? cid_text(atp_slice_str(text), out, name, err) : rc;
}

static void slice_copy(char *out, atp_slice s)
{
    memcpy(out, s.ptr, s.len);
    out[s.len] = '\0';
}

/* A record URI into s->did/collection/rkey. ATP_EINVAL: not an at-uri; ATP_ENOTFOUND: an
 * at-uri that names no record by DID (the authority is a handle, or a part is missing). */
static int record_uri(atp_slice uri, pds_subject *s, atp_err *err)
{
    atp_aturi u;
    if (uri.len >= PDS_URI_MAX || atp_syntax_parse_aturi(uri, &u, NULL) < 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "uri must be a valid at-uri");
    }
    if (!atp_syntax_is_did(u.authority) || u.authority.len > PDS_DID_MAX ||
        u.collection.len == 0 || u.collection.len > PDS_NSID_MAX || u.rkey.len == 0 ||
        u.rkey.len > PDS_RKEY_MAX || !atp_syntax_is_nsid(u.collection) ||
        !atp_syntax_is_rkey(u.rkey)) {
        return atp_err_set(err, ATP_ENOTFOUND, 0, "uri must name a record by its DID");
    }
    slice_copy(s->did, u.authority);
    slice_copy(s->collection, u.collection);
    slice_copy(s->rkey, u.rkey);
    return 0;
}

static int parse_record(const cJSON *o, pds_subject *s, atp_err *err)
{
    char *uri = s->record_uri; /* scratch: cleared below, records keep no recordUri */
    int rc = str_field(o, "uri", true, uri, PDS_URI_MAX, err);
    if (rc == 0) {
        rc = record_uri(atp_slice_str(uri), s, err);
        if (rc == ATP_ENOTFOUND) {
            rc = atp_err_set(err, ATP_EINVAL, 0, "subject uri must name a record by its DID");
        }
    }
    uri[0] = '\0';
    if (rc == 0) {
        rc = cid_field(o, "cid", &s->cid, err);
        s->has_cid = rc == 0;
    }
    return rc;
}

static int parse_blob(const cJSON *o, pds_subject *s, atp_err *err)
{
    int rc = did_field(o, "did", s->did, err);
    if (rc == 0) {
        rc = cid_field(o, "cid", &s->cid, err);
        s->has_cid = rc == 0;
    }
    if (rc == 0) {
        rc = str_field(o, "recordUri", false, s->record_uri, PDS_URI_MAX, err);
        if (rc == 0 && !atp_syntax_is_aturi(atp_slice_str(s->record_uri))) {
            rc = atp_err_set(err, ATP_EINVAL, 0, "recordUri must be a valid at-uri");
        }
    }
    return rc < 0 ? rc : 0;
}

int pds_subject_parse(const cJSON *subject, pds_subject *out, atp_err *err)
{
    pds_subject s;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(subject, "$type");
    const char *type = cJSON_IsString(t) ? t->valuestring : NULL;
    int rc;
    memset(&s, 0, sizeof s);
    if (!cJSON_IsObject(subject) || !type) {
        return atp_err_set(err, ATP_EINVAL, 0, "subject must be an object with a $type");
    }
    if (strcmp(type, T_REPO) == 0) {
        s.kind = PDS_SUBJECT_REPO;
        rc = did_field(subject, "did", s.did, err);
    } else if (strcmp(type, T_RECORD) == 0) {
        s.kind = PDS_SUBJECT_RECORD;
        rc = parse_record(subject, &s, err);
    } else if (strcmp(type, T_BLOB) == 0) {
        s.kind = PDS_SUBJECT_BLOB;
        rc = parse_blob(subject, &s, err);
    } else {
        rc = atp_err_set(err, ATP_EINVAL, 0, "Invalid subject (%.60s)", type);
    }
    if (rc == 0) {
        memcpy(out, &s, sizeof s);
    }
    return rc;
}

/* A statusAttr member: absent (*has false), or {applied: bool, ref?: string}. */
static int attr_parse(const cJSON *body, const char *name, bool *has, pds_takedown *out,
                      atp_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    const cJSON *applied;
    *has = v != NULL;
    if (!v) {
        return 0;
    }
    applied = cJSON_GetObjectItemCaseSensitive(v, "applied");
    if (!cJSON_IsObject(v) || !cJSON_IsBool(applied)) {
        return atp_err_set(err, ATP_EINVAL, 0, "%s must be an object with a boolean applied",
                           name);
    }
    out->applied = cJSON_IsTrue(applied);
    return str_field(v, "ref", false, out->ref, sizeof out->ref, err) < 0 ? ATP_EINVAL : 0;
}

int pds_status_update_parse(const cJSON *body, pds_status_update *out, atp_err *err)
{
    pds_status_update u;
    pds_takedown deact;
    const cJSON *subject = cJSON_GetObjectItemCaseSensitive(body, "subject");
    int rc;
    memset(&u, 0, sizeof u);
    memset(&deact, 0, sizeof deact);
    if (!subject) {
        return atp_err_set(err, ATP_EINVAL, 0, "Input must have the property \"subject\"");
    }
    rc = pds_subject_parse(subject, &u.subject, err);
    if (rc == 0) {
        rc = attr_parse(body, "takedown", &u.has_takedown, &u.takedown, err);
    }
    if (rc == 0) {
        rc = attr_parse(body, "deactivated", &u.has_deactivated, &deact, err);
        u.deactivated = deact.applied;
    }
    if (rc == 0) {
        memcpy(out, &u, sizeof u);
    }
    return rc;
}

static int params_blob(atp_slice did, atp_slice blob, pds_subject *s, atp_err *err)
{
    if (!did.ptr) {
        return atp_err_set(err, ATP_EINVAL, 0, "Must provide a did to request blob state");
    }
    if (did.len > PDS_DID_MAX || !atp_syntax_is_did(did)) {
        return atp_err_set(err, ATP_EINVAL, 0, "did must be a valid did");
    }
    s->kind = PDS_SUBJECT_BLOB;
    slice_copy(s->did, did);
    s->has_cid = true;
    return cid_text(blob, &s->cid, "blob", err);
}

int pds_subject_from_params(atp_slice did, atp_slice uri, atp_slice blob, pds_subject *out,
                            atp_err *err)
{
    pds_subject s;
    int rc;
    memset(&s, 0, sizeof s);
    if (blob.ptr) {
        rc = params_blob(did, blob, &s, err);
    } else if (uri.ptr) {
        s.kind = PDS_SUBJECT_RECORD;
        rc = record_uri(uri, &s, err);
    } else if (did.ptr) {
        s.kind = PDS_SUBJECT_REPO;
        rc = did.len <= PDS_DID_MAX && atp_syntax_is_did(did)
                 ? 0
                 : atp_err_set(err, ATP_EINVAL, 0, "did must be a valid did");
        if (rc == 0) {
            slice_copy(s.did, did);
        }
    } else {
        rc = atp_err_set(err, ATP_EINVAL, 0, "No provided subject");
    }
    if (rc == 0) {
        memcpy(out, &s, sizeof s);
    }
    return rc;
}

/* ---- formatting ---- */

void pds_subject_record_uri(const pds_subject *s, char out[PDS_URI_MAX])
{
    snprintf(out, PDS_URI_MAX, "at://%s/%s/%s", s->did, s->collection, s->rkey);
}

static void add_cid(cJSON *o, const atp_cid *c)
{
    char text[ATP_CID_STR_MAX];
    atp_cid_format_to(c, text, sizeof text);
    cJSON_AddStringToObject(o, "cid", text);
}

cJSON *pds_subject_to_json(const pds_subject *s)
{
    cJSON *o = cJSON_CreateObject();
    char uri[PDS_URI_MAX];
    switch (s->kind) {
    case PDS_SUBJECT_RECORD:
        cJSON_AddStringToObject(o, "$type", T_RECORD);
        pds_subject_record_uri(s, uri);
        cJSON_AddStringToObject(o, "uri", uri);
        break;
    case PDS_SUBJECT_BLOB:
        cJSON_AddStringToObject(o, "$type", T_BLOB);
        cJSON_AddStringToObject(o, "did", s->did);
        break;
    default:
        cJSON_AddStringToObject(o, "$type", T_REPO);
        cJSON_AddStringToObject(o, "did", s->did);
        return o;
    }
    if (s->has_cid) {
        add_cid(o, &s->cid);
    }
    if (s->kind == PDS_SUBJECT_BLOB && s->record_uri[0]) {
        cJSON_AddStringToObject(o, "recordUri", s->record_uri);
    }
    return o;
}

/* ---- takedown state in the account file ---- */

typedef struct td_job {
    const char *sql; /* the statement; ?1 = ref (set only), then the row's key */
    atp_slice collection, rkey;
    const atp_cid *cid;
    const char *ref;
    atp_cid *cid_out;
    pds_takedown *out;
} td_job;

/* Binds the row key (collection+rkey, or a blob CID) from parameter `i` on. */
static void bind_key(sqlite3_stmt *st, int i, const td_job *j)
{
    if (j->cid) {
        pds_sqlx_bind_cid(st, i, j->cid);
        return;
    }
    pds_sqlx_bind_slice(st, i, j->collection);
    pds_sqlx_bind_slice(st, i + 1, j->rkey);
}

/* One UPDATE in autocommit mode: its own durable transaction (synchronous=FULL). */
static int td_set_fn(void *ctx, pds_actor_view *v, atp_err *err)
{
    const td_job *j = ctx;
    sqlite3_stmt *st = NULL;
    int rc;
    if (sqlite3_prepare_v2(v->db, j->sql, -1, &st, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(v->db, err, "sqlite");
    }
    if (j->ref) {
        sqlite3_bind_text(st, 1, j->ref, -1, SQLITE_TRANSIENT);
    }
    bind_key(st, 2, j);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : pds_sqlx_fail(v->db, err, "sqlite");
    sqlite3_finalize(st);
    if (rc == 0 && sqlite3_changes(v->db) == 0) {
        rc = atp_err_set(err, ATP_ENOTFOUND, 0, "%s not found", j->cid ? "Blob" : "Record");
    }
    return rc;
}

static void read_ref(sqlite3_stmt *st, int col, pds_takedown *out)
{
    const unsigned char *ref = sqlite3_column_text(st, col);
    memset(out, 0, sizeof *out);
    out->applied = ref != NULL;
    if (ref) {
        snprintf(out->ref, sizeof out->ref, "%s", (const char *)ref);
    }
}

/* SELECT takedownRef[, cid]: column 0 the ref, column 1 the record CID when asked. */
static int td_get_fn(void *ctx, pds_actor_view *v, atp_err *err)
{
    const td_job *j = ctx;
    sqlite3_stmt *st = NULL;
    int rc = 0, step;
    if (sqlite3_prepare_v2(v->db, j->sql, -1, &st, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(v->db, err, "sqlite");
    }
    bind_key(st, 1, j);
    step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE
                 ? atp_err_set(err, ATP_ENOTFOUND, 0, "%s not found", j->cid ? "Blob" : "Record")
                 : pds_sqlx_fail(v->db, err, "sqlite");
    } else if (j->cid_out) {
        rc = pds_sqlx_column_cid(st, 1, j->cid_out) == 0
                 ? 0
                 : atp_err_set(err, ATP_EIO, 0, "bad record cid");
    }
    if (rc == 0) {
        read_ref(st, 0, j->out);
    }
    sqlite3_finalize(st);
    return rc;
}

int pds_actor_store_record_takedown(pds_actor_store *s, atp_slice did, atp_slice collection,
                                    atp_slice rkey, const char *ref, atp_err *err)
{
    td_job j = {.collection = collection, .rkey = rkey, .ref = ref};
    j.sql = ref ? "UPDATE record SET takedownRef = ?1 WHERE collection = ?2 AND rkey = ?3"
                : "UPDATE record SET takedownRef = NULL WHERE collection = ?2 AND rkey = ?3";
    return pds_actor_store_with(s, did, false, td_set_fn, &j, err);
}

int pds_actor_store_record_status(pds_actor_store *s, atp_slice did, atp_slice collection,
                                  atp_slice rkey, atp_cid *cid, pds_takedown *out, atp_err *err)
{
    atp_cid c;
    pds_takedown t;
    td_job j = {.collection = collection, .rkey = rkey, .cid_out = &c, .out = &t};
    int rc;
    j.sql = "SELECT takedownRef, cid FROM record WHERE collection = ?1 AND rkey = ?2";
    rc = pds_actor_store_with(s, did, false, td_get_fn, &j, err);
    if (rc == 0) {
        *cid = c;
        *out = t;
    }
    return rc;
}

int pds_actor_store_blob_takedown(pds_actor_store *s, atp_slice did, const atp_cid *cid,
                                  const char *ref, atp_err *err)
{
    td_job j = {.cid = cid, .ref = ref};
    j.sql = ref ? "UPDATE blob SET takedownRef = ?1 WHERE cid = ?2"
                : "UPDATE blob SET takedownRef = NULL WHERE cid = ?2";
    return pds_actor_store_with(s, did, false, td_set_fn, &j, err);
}

int pds_actor_store_blob_status(pds_actor_store *s, atp_slice did, const atp_cid *cid,
                                pds_takedown *out, atp_err *err)
{
    pds_takedown t;
    td_job j = {.cid = cid, .out = &t};
    int rc;
    j.sql = "SELECT takedownRef FROM blob WHERE cid = ?1";
    rc = pds_actor_store_with(s, did, false, td_get_fn, &j, err);
    if (rc == 0) {
        *out = t;
    }
    return rc;
}
