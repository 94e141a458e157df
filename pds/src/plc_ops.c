/* pds/src/plc_ops.c: PLC operations of hosted accounts, email tokens, reserved signing keys. */
#include "plc_ops.h"

#include <curl/curl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "atp/resolve.h"
#include "sqlx.h"

#define PLC_BODY_MAX (64 * 1024) /* a /log/last answer or an error body we read */
#define PLC_TIMEOUT_MS 10000

/* ---- pure: request JSON -> op ---- */

/* The op as a cJSON object (re-parsed from its canonical JSON), or NULL. */
static cJSON *op_to_cjson(const atp_plc_op *op)
{
    atp_buf b;
    cJSON *j = NULL;
    atp_buf_init(&b, 4 * PLC_BODY_MAX);
    atp_plc_op_encode_json(&b, op, 0);
    if (!b.err) {
        j = cJSON_ParseWithLength((const char *)b.ptr, b.len);
    }
    atp_buf_release(&b);
    return j;
}

/* Sets member `name` of `o` to `v` (consumed), replacing any present. */
static void set_member(cJSON *o, const char *name, cJSON *v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, name);
    cJSON_AddItemToObject(o, name, v);
}

/* Parses the merged object through the strict op parser (unsigned allowed). */
static int parse_merged(atp_arena *a, const cJSON *o, const atp_plc_limits *lim, atp_plc_op *out,
                        atp_err *err)
{
    char *s = cJSON_PrintUnformatted(o);
    int rc;
    if (!s) {
        return atp_err_set(err, ATP_EINTERNAL, 0, "could not print the op");
    }
    rc = atp_plc_op_parse(a, atp_slice_str(s), true, lim, out, err);
    cJSON_free(s);
    return rc;
}

int pds_plc_update_build(atp_arena *a, const atp_plc_op *last, atp_slice body, atp_slice prev,
                         const atp_plc_limits *lim, atp_plc_op *out, atp_err *err)
{
    static const char *const fields[] = {"rotationKeys", "alsoKnownAs", "verificationMethods",
                                         "services"};
    const atp_plc_limits *l = lim ? lim : &atp_plc_limits_default;
    cJSON *in, *base;
    int rc;
    if (body.len > l->max_json) {
        return atp_err_set(err, ATP_ELIMIT, 0, "request body over %zu bytes", l->max_json);
    }
    in = cJSON_ParseWithLength((const char *)body.ptr, body.len);
    base = cJSON_IsObject(in) ? op_to_cjson(last) : NULL;
    if (!base) {
        cJSON_Delete(in);
        return atp_err_set(err, ATP_EINVAL, 0, "request body must be a JSON object");
    }
    /* A field given replaces the last op's whole field, as the reference does. */
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, fields[i]);
        if (v && !cJSON_IsNull(v)) {
            set_member(base, fields[i], cJSON_Duplicate(v, true));
        }
    }
    cJSON_DeleteItemFromObjectCaseSensitive(base, "sig");
    set_member(base, "type", cJSON_CreateString("plc_operation"));
    set_member(base, "prev", cJSON_CreateNull()); /* set below: prev is a slice */
    cJSON_Delete(in);
    rc = parse_merged(a, base, l, out, err);
    cJSON_Delete(base);
    if (rc == 0) {
        out->prev = atp_slice_make(atp_arena_dup(a, prev.ptr, prev.len), prev.len);
        rc = atp_plc_op_check(out, true, l, err);
    }
    return rc;
}

/* Index of the first "at://" entry of `op`, or n_aka when there is none. */
static size_t first_at_uri(const atp_plc_op *op)
{
    size_t i = 0;
    while (i < op->n_aka && !atp_slice_has_prefix(op->aka[i], atp_slice_str("at://"))) {
        i++;
    }
    return i;
}

int pds_plc_handle_op(atp_arena *a, const atp_plc_op *last, atp_slice handle, atp_slice prev,
                      const atp_plc_limits *lim, atp_plc_op *out, atp_err *err)
{
    const atp_plc_limits *l = lim ? lim : &atp_plc_limits_default;
    size_t at = first_at_uri(last), n = last->n_aka + (at == last->n_aka ? 1 : 0), j = 0;
    atp_slice *aka;
    char *uri;
    atp_plc_op op;
    if (handle.len > l->max_aka_len - 5) {
        return atp_err_set(err, ATP_ELIMIT, 0, "handle too long for alsoKnownAs");
    }
    aka = atp_arena_calloc(a, n, sizeof *aka);
    uri = atp_arena_alloc(a, handle.len + 5);
    memcpy(uri, "at://", 5);
    memcpy(uri + 5, handle.ptr, handle.len);
    if (at == last->n_aka) {
        aka[j++] = atp_slice_make(uri, handle.len + 5); /* none yet: the handle goes first */
    }
    for (size_t i = 0; i < last->n_aka; i++) {
        aka[j++] = i == at ? atp_slice_make(uri, handle.len + 5) : last->aka[i];
    }
    op = *last;
    op.type = ATP_PLC_OPERATION;
    op.aka = aka, op.n_aka = n;
    op.prev = atp_slice_make(atp_arena_dup(a, prev.ptr, prev.len), prev.len);
    op.sig = atp_slice_make(NULL, 0);
    if (atp_plc_op_check(&op, true, l, err) < 0) {
        return ATP_EINVAL;
    }
    *out = op;
    return 0;
}

static bool has_key(const atp_plc_op *op, atp_slice key)
{
    for (size_t i = 0; i < op->n_rotation_keys; i++) {
        if (atp_slice_eq(op->rotation_keys[i], key)) {
            return true;
        }
    }
    return false;
}

static const atp_plc_service *find_service(const atp_plc_op *op, const char *name)
{
    for (size_t i = 0; i < op->n_services; i++) {
        if (atp_slice_eq_str(op->services[i].name, name)) {
            return &op->services[i];
        }
    }
    return NULL;
}

static const atp_plc_vm *find_vm(const atp_plc_op *op, const char *name)
{
    for (size_t i = 0; i < op->n_vms; i++) {
        if (atp_slice_eq_str(op->vms[i].name, name)) {
            return &op->vms[i];
        }
    }
    return NULL;
}

/* alsoKnownAs[0] == "at://" + handle. */
static bool first_aka_is(const atp_plc_op *op, atp_slice handle)
{
    atp_slice first;
    if (op->n_aka == 0) {
        return false;
    }
    first = op->aka[0];
    return first.len == handle.len + 5 && atp_slice_has_prefix(first, atp_slice_str("at://")) &&
           memcmp(first.ptr + 5, handle.ptr, handle.len) == 0;
}

/* The reference's checks that the op keeps this PDS in charge, in its order. */
static int check_expect(const atp_plc_op *op, const pds_plc_expect *want, atp_err *err)
{
    const atp_plc_service *svc = find_service(op, "atproto_pds");
    const atp_plc_vm *vm = find_vm(op, "atproto");
    if (!has_key(op, want->rotation_key)) {
        return atp_err_set(err, ATP_EINVAL, 0,
                           "Rotation keys do not include server's rotation key");
    }
    if (!svc || !atp_slice_eq_str(svc->type, "AtprotoPersonalDataServer")) {
        return atp_err_set(err, ATP_EINVAL, 0, "Incorrect type on atproto_pds service");
    }
    if (!atp_slice_eq(svc->endpoint, want->endpoint)) {
        return atp_err_set(err, ATP_EINVAL, 0, "Incorrect endpoint on atproto_pds service");
    }
    if (!vm || !atp_slice_eq(vm->didkey, want->signing_key)) {
        return atp_err_set(err, ATP_EINVAL, 0, "Incorrect signing key");
    }
    if (want->handle.len > 0 && !first_aka_is(op, want->handle)) {
        return atp_err_set(err, ATP_EINVAL, 0, "Incorrect handle in alsoKnownAs");
    }
    return 0;
}

int pds_plc_submit_parse(atp_arena *a, atp_slice json, const pds_plc_expect *want,
                         const atp_plc_limits *lim, atp_plc_op *out, atp_err *err)
{
    atp_plc_op op;
    atp_err perr;
    atp_err_clear(&perr);
    if (atp_plc_op_parse(a, json, false, lim, &op, &perr) < 0) {
        return atp_err_set(err, ATP_EINVAL, perr.off, "Invalid operation: %.100s", perr.msg);
    }
    if (op.type != ATP_PLC_OPERATION) {
        return atp_err_set(err, ATP_EINVAL, 0, "Invalid operation: not a plc_operation");
    }
    if (check_expect(&op, want, err) < 0) {
        return ATP_EINVAL;
    }
    *out = op;
    return 0;
}

/* ---- the PLC directory ---- */

int pds_plc_last_op(pds_ctx *ctx, const char *did, atp_arena *a, atp_plc_op *norm,
                    char prev[ATP_CID_STR_MAX], atp_err *err)
{
    char url[1200];
    atp_fetch_req req = {url, ATP_FETCH_TRUSTED, PLC_TIMEOUT_MS, PLC_BODY_MAX, NULL};
    atp_buf body;
    atp_plc_op raw;
    atp_cid cid;
    int status = 0, rc;
    snprintf(url, sizeof url, "%s/%s/log/last", ctx->cfg->plc_url, did);
    atp_buf_init(&body, PLC_BODY_MAX);
    rc = atp_fetch_default(NULL, &req, &status, &body, err);
    if (rc == 0 && status == 404) {
        rc = atp_err_set(err, ATP_ENOTFOUND, 0, "DID not found on the PLC directory");
    } else if (rc == 0 && status != 200) {
        rc = atp_err_set(err, ATP_EIO, 0, "PLC directory answered %d", status);
    }
    if (rc == 0) {
        rc = atp_plc_op_parse(a, atp_buf_slice(&body), false, NULL, &raw, err);
    }
    atp_buf_release(&body);
    /* prev is the CID of the op as the directory holds it, before any normalization. */
    if (rc == 0) {
        rc = atp_plc_op_cid(&raw, &cid, err);
    }
    if (rc < 0) {
        return rc;
    }
    atp_cid_format_to(&cid, prev, ATP_CID_STR_MAX);
    atp_plc_op_normalize(a, &raw, norm);
    return 0;
}

static size_t keep_body(char *p, size_t sz, size_t n, void *ud)
{
    atp_buf_append(ud, p, sz * n); /* past its max the buffer only sets err: body cut */
    return sz * n;
}

/* The directory's error message ({"message": ...}) or a generic one. */
static int refused(atp_slice body, long status, atp_err *err)
{
    cJSON *j = cJSON_ParseWithLength((const char *)body.ptr, body.len);
    const char *m = pds_json_str(j, "message");
    int rc = atp_err_set(err, ATP_EINVAL, 0, "%.110s",
                         m ? m : "PLC directory refused the operation");
    cJSON_Delete(j);
    (void)status;
    return rc;
}

/* POST with the answer kept (bounded) for its error message. */
static int post_json(const char *url, atp_slice json, long *status, atp_buf *resp, atp_err *err)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    CURLcode cc = CURLE_FAILED_INIT;
    if (c) {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)json.ptr);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)json.len);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)PLC_TIMEOUT_MS);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
        cc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        curl_easy_cleanup(c);
    }
    curl_slist_free_all(h);
    if (cc != CURLE_OK) {
        return atp_err_set(err, ATP_EIO, 0, "PLC directory: %s", curl_easy_strerror(cc));
    }
    return 0;
}

int pds_plc_post_op(pds_ctx *ctx, const char *did, const atp_plc_op *op, int *status,
                    atp_err *err)
{
    char url[1200];
    atp_buf json, resp;
    long st = 0;
    int rc;
    snprintf(url, sizeof url, "%s/%s", ctx->cfg->plc_url, did);
    atp_buf_init(&json, 4 * PLC_BODY_MAX);
    atp_buf_init(&resp, 4096);
    atp_plc_op_encode_json(&json, op, 0);
    rc = json.err ? atp_err_set(err, ATP_EINTERNAL, 0, "op too large")
                  : post_json(url, atp_buf_slice(&json), &st, &resp, err);
    if (rc == 0 && st >= 500) {
        rc = atp_err_set(err, ATP_EIO, 0, "PLC directory answered %ld", st);
    } else if (rc == 0 && (st < 200 || st > 299)) {
        rc = refused(atp_buf_slice(&resp), st, err);
    }
    atp_buf_release(&json);
    atp_buf_release(&resp);
    if (status) {
        *status = (int)st;
    }
    if (rc < 0) {
        atomic_fetch_add(&ctx->metrics.plc_errors, 1);
    }
    return rc;
}

/* ---- email tokens ---- */

typedef struct token_op {
    const char *did, *purpose, *token;
    char at[32];
    int64_t now;
} token_op;

static int token_store(void *ud, sqlite3 *c, atp_err *err)
{
    const token_op *t = ud;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c,
                                "INSERT INTO email_token(purpose, did, token, requested_at) "
                                "VALUES(?1, ?2, ?3, ?4) ON CONFLICT(purpose, did) DO UPDATE SET "
                                "token = excluded.token, requested_at = excluded.requested_at",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, t->purpose, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, t->did, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, t->token, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, t->at, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : pds_sqlx_fail(c, err, "sqlite");
}

int pds_email_token_create(pds_ctx *ctx, const char *did, const char *purpose,
                           char token[PDS_EMAIL_TOKEN_LEN + 1], atp_err *err)
{
    static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    unsigned char rnd[10];
    char tok[PDS_EMAIL_TOKEN_LEN + 1];
    token_op t = {did, purpose, tok, "", 0};
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        return atp_err_set(err, ATP_EINTERNAL, 0, "no randomness");
    }
    for (size_t i = 0, j = 0; i < sizeof rnd; i++) {
        if (i == 5) {
            tok[j++] = '-';
        }
        tok[j++] = b32[rnd[i] & 31];
    }
    tok[PDS_EMAIL_TOKEN_LEN] = '\0';
    pds_sqlx_time_ms(ctx->now() * 1000, t.at);
    if (pds_db_txn(ctx->db, token_store, &t, err) < 0) {
        return ATP_EIO;
    }
    memcpy(token, tok, sizeof tok);
    return 0;
}

/* Runs one statement with up to three text parameters (NULL binds NULL). */
static int exec3(sqlite3 *c, const char *sql, const char *p1, const char *p2, const char *p3,
                 atp_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        const char *ps[3] = {p1, p2, p3};
        for (int i = 0; i < 3 && i < sqlite3_bind_parameter_count(st); i++) {
            sqlite3_bind_text(st, i + 1, ps[i], -1, SQLITE_STATIC);
        }
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return pds_sqlx_fail(c, err, "sqlite");
    }
    return 0;
}

static int token_delete(sqlite3 *c, const token_op *t, atp_err *err)
{
    return exec3(c, "DELETE FROM email_token WHERE purpose = ?1 AND did = ?2", t->purpose,
                 t->did, NULL, err);
}

static int token_take(void *ud, sqlite3 *c, atp_err *err)
{
    const token_op *t = ud;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c,
                                "SELECT token, CAST(strftime('%s', requested_at) AS INTEGER) "
                                "FROM email_token WHERE purpose = ?1 AND did = ?2",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(st);
        return pds_sqlx_fail(c, err, "sqlite");
    }
    sqlite3_bind_text(st, 1, t->purpose, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->did, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW || !sqlite3_column_text(st, 0) ||
        strcmp((const char *)sqlite3_column_text(st, 0), t->token) != 0) {
        rc = atp_err_set(err, ATP_ETOKEN, 0, "Token is invalid");
    } else if (t->now - sqlite3_column_int64(st, 1) > PDS_EMAIL_TOKEN_TTL) {
        rc = atp_err_set(err, ATP_EEXPIRED, 0, "Token is expired");
    } else {
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc == 0 ? token_delete(c, t, err) : rc;
}

int pds_email_token_consume(pds_ctx *ctx, const char *did, const char *purpose,
                            const char *token, atp_err *err)
{
    char up[PDS_EMAIL_TOKEN_LEN + 1];
    size_t n = strlen(token);
    token_op t = {did, purpose, up, "", 0};
    if (n != PDS_EMAIL_TOKEN_LEN) {
        return atp_err_set(err, ATP_ETOKEN, 0, "Token is invalid");
    }
    /* Tokens are stored upper case; users may type them in either. */
    for (size_t i = 0; i <= n; i++) {
        up[i] = (token[i] >= 'a' && token[i] <= 'z') ? (char)(token[i] - 'a' + 'A') : token[i];
    }
    t.now = ctx->now();
    return pds_db_txn(ctx->db, token_take, &t, err);
}

/* ---- reserved signing keys ---- */

typedef struct reserve_op {
    const char *did;
    char key_did[ATP_DIDKEY_MAX_LEN + 1];
    char hex[2 * ATP_KEY_PRIV_LEN + 1];
    bool existing; /* key_did holds the key already reserved for did */
} reserve_op;

/* The key_did already reserved for o->did, if any, into o->key_did. */
static int reserved_for(sqlite3 *c, reserve_op *o, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c, "SELECT key_did FROM reserved_signing_key WHERE did = ?1 LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return pds_sqlx_fail(c, err, "sqlite");
    }
    sqlite3_bind_text(st, 1, o->did, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(o->key_did, sizeof o->key_did, "%s", (const char *)sqlite3_column_text(st, 0));
        o->existing = true;
    }
    sqlite3_finalize(st);
    return 0;
}

static int reserve_store(void *ud, sqlite3 *c, atp_err *err)
{
    reserve_op *o = ud;
    char keep[ATP_DIDKEY_MAX_LEN + 1];
    memcpy(keep, o->key_did, sizeof keep);
    if (o->did && reserved_for(c, o, err) < 0) {
        return ATP_EIO;
    }
    if (o->existing) {
        return 0;
    }
    memcpy(o->key_did, keep, sizeof keep);
    return exec3(c,
                 "INSERT INTO reserved_signing_key(key_did, did, private_key, created_at) "
                 "VALUES(?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                 o->key_did, o->did, o->hex, err);
}

/* A fresh k256 key: its did:key and private scalar in hex into o. */
static int fresh_key(reserve_op *o, atp_err *err)
{
    atp_key *k = NULL;
    uint8_t priv[ATP_KEY_PRIV_LEN];
    int rc = atp_key_generate(ATP_CURVE_K256, &k, err);
    if (rc == 0) {
        rc = atp_key_export_private(k, priv, err);
    }
    if (rc == 0) {
        pds_didkey_format(k, o->key_did);
        for (size_t i = 0; i < ATP_KEY_PRIV_LEN; i++) {
            snprintf(o->hex + 2 * i, 3, "%02x", priv[i]);
        }
    }
    atp_key_destroy(k);
    return rc < 0 ? ATP_EINTERNAL : 0;
}

int pds_signing_key_reserve(pds_ctx *ctx, const char *did, char key_did[ATP_DIDKEY_MAX_LEN + 1],
                            atp_err *err)
{
    reserve_op o;
    memset(&o, 0, sizeof o);
    o.did = did;
    if (fresh_key(&o, err) < 0) {
        return ATP_EINTERNAL;
    }
    if (pds_db_txn(ctx->db, reserve_store, &o, err) < 0) {
        return ATP_EIO;
    }
    memcpy(key_did, o.key_did, sizeof o.key_did);
    return 0;
}

typedef struct reserve_get {
    const char *ident;
    char hex[2 * ATP_KEY_PRIV_LEN + 1];
    bool found;
} reserve_get;

static int reserve_read(void *ud, sqlite3 *c, atp_err *err)
{
    reserve_get *g = ud;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c,
                           "SELECT private_key FROM reserved_signing_key WHERE key_did = ?1 "
                           "OR did = ?1 LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return pds_sqlx_fail(c, err, "sqlite");
    }
    sqlite3_bind_text(st, 1, g->ident, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 2 * ATP_KEY_PRIV_LEN) {
        memcpy(g->hex, sqlite3_column_text(st, 0), 2 * ATP_KEY_PRIV_LEN);
        g->found = true;
    }
    sqlite3_finalize(st);
    return 0;
}

int pds_signing_key_reserved(pds_ctx *ctx, const char *did_or_key, atp_key **out)
{
    reserve_get g;
    memset(&g, 0, sizeof g);
    g.ident = did_or_key;
    if (pds_db_read(ctx->db, reserve_read, &g, NULL) < 0 || !g.found) {
        return ATP_ENOTFOUND;
    }
    if (atp_key_import_private_hex(ATP_CURVE_K256, atp_slice_make(g.hex, 2 * ATP_KEY_PRIV_LEN),
                                   out, NULL) < 0) {
        return ATP_ENOTFOUND;
    }
    return 0;
}

typedef struct reserve_clear {
    const char *key_did, *did;
} reserve_clear;

static int clear_rows(void *ud, sqlite3 *c, atp_err *err)
{
    const reserve_clear *r = ud;
    return exec3(c, "DELETE FROM reserved_signing_key WHERE key_did = ?1 OR did = ?2",
                 r->key_did, r->did, NULL, err);
}

int pds_signing_key_unreserve(pds_ctx *ctx, const char *key_did, const char *did)
{
    reserve_clear r = {key_did, did};
    return pds_db_txn(ctx->db, clear_rows, &r, NULL) < 0 ? ATP_EIO : 0;
}

/* Signs and submits the did:plc update op that points alsoKnownAs at the new handle. */
int pds_plc_update_handle(pds_ctx *ctx, const char *did, const char *handle, atp_err *err)
{
    atp_arena *a = atp_arena_create(0);
    atp_plc_op last, op;
    char prev[ATP_CID_STR_MAX];
    int rc = pds_plc_last_op(ctx, did, a, &last, prev, err);
    if (rc == 0 && last.type == ATP_PLC_TOMBSTONE) {
        rc = atp_err_set(err, ATP_EINVAL, 0, "Did is tombstoned");
    }
    if (rc == 0) {
        rc = pds_plc_handle_op(a, &last, atp_slice_str(handle), atp_slice_str(prev), NULL, &op,
                               err);
    }
    if (rc == 0) {
        rc = atp_plc_op_sign(a, &op, ctx->plc_rotation_key, NULL, err) < 0 ? ATP_EINTERNAL : 0;
    }
    if (rc == 0) {
        rc = pds_plc_post_op(ctx, did, &op, NULL, err);
    }
    atp_arena_destroy(a);
    return rc;
}
