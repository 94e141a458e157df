/* test_pds_lifecycle: account lifecycle end to end on spawned plc + two pds daemons:
 * requestAccountDelete/deleteAccount (the token read from the daemon's log, where the default
 * mailer writes), deactivate/activate with their status checks, preferences (raw and with the
 * official @atproto/api client), and a full migration from the "old" pds to the "new" one
 * (service JWT, createAccount with did, importRepo with good and bad CARs, activateAccount). */
#include <curl/curl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "atp/buf.h"
#include "atp/car.h"
#include "atp/crypto.h"
#include "atp/json.h"
#include "atp/jwt.h"
#include "atp/repo.h"
#include "daemon_spawn.h"
#include "t.h"

#include "actor_store.h"
#include "lifecycle.h"
#include "pds_client.h"

#define IMPORT_LIMIT 200000

static t_daemon oldp, newp;

static void test_start(void)
{
    static const char *const env[] = {"PDS_INVITE_REQUIRED=false", "PDS_RATE_LIMITS_ENABLED=false",
                                      NULL};
    static const char *const new_env[] = {"PDS_INVITE_REQUIRED=false",
                                          "PDS_RATE_LIMITS_ENABLED=false",
                                          "PDS_MAX_REPO_IMPORT_SIZE=200000", NULL};
    T_TRUE(t_start_plc());
    T_TRUE(start_pds(&oldp, "old", env));
    T_TRUE(start_pds(&newp, "new", new_env));
}

/* ---- helpers ---- */

static bool new_session(unsigned port, const char *handle, const char *pw, session *s)
{
    char email[128];
    snprintf(email, sizeof email, "%s@example.com", handle);
    resp r = create_account(port, handle, email, pw, NULL);
    bool ok = session_from(&r, s);
    if (!ok) {
        printf("# createAccount %s: %ld %s\n", handle, r.status, r.text ? r.text : "");
    }
    resp_free(&r);
    return ok;
}

static long status_of(unsigned port, const char *path, const char *auth)
{
    resp r = get(port, path, auth);
    long st = r.status;
    resp_free(&r);
    return st;
}

/* The last deletion token the daemon's log mailer wrote for it. */
static bool token_from_log(const t_daemon *d, char out[12])
{
    size_t len;
    char *log = t_read_file(d->log, &len), *p, *last = NULL;
    const char *key = "deletion token is ";
    for (p = log; p && (p = strstr(p, key)) != NULL; p += strlen(key)) {
        last = p + strlen(key);
    }
    if (last && strlen(last) >= 11) {
        memcpy(out, last, 11);
        out[11] = '\0';
    }
    free(log);
    return last != NULL;
}

/* Runs one SQL statement on a daemon's service database (WAL: safe beside the daemon). */
static bool service_sql(const char *name, const char *sql, char *out, size_t cap)
{
    sqlite3 *db = t_service_db(name, SQLITE_OPEN_READWRITE);
    sqlite3_stmt *st = NULL;
    bool ok = db && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        int rc = sqlite3_step(st);
        ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
        if (out && cap) {
            const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
            snprintf(out, cap, "%s", t ? (const char *)t : "");
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

static void account_folder(const char *pds_name, const char *did, char *out, size_t cap)
{
    char dir[256], path[4096];
    pds_actor_store *s = NULL;
    pds_actor_store_opts o;
    memset(&o, 0, sizeof o);
    snprintf(dir, sizeof dir, "%s/%s/actors", tmpdir, pds_name);
    o.dir = dir;
    out[0] = '\0';
    if (pds_actor_store_open(&o, &s, NULL) == 0 &&
        pds_actor_store_path(s, atp_slice_str(did), path, sizeof path, NULL) == 0) {
        *strrchr(path, '/') = '\0';
        snprintf(out, cap, "%s", path);
    }
    pds_actor_store_destroy(s);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- deletion ---- */

static session gone; /* the account deleted below */
static char gone_token[12], gone_folder[4200];

static void test_delete_request(void)
{
    resp r;
    T_TRUE(new_session(oldp.port, "gone.test", "pw-gone", &gone));
    account_folder("old", gone.did, gone_folder, sizeof gone_folder);
    T_TRUE(gone_folder[0] && exists(gone_folder));
    r = post(oldp.port, "com.atproto.server.requestAccountDelete", NULL, NULL);
    T_EQ(r.status, 401);
    resp_free(&r);
    r = post(oldp.port, "com.atproto.server.requestAccountDelete", gone.access, NULL);
    T_EQ(r.status, 200);
    resp_free(&r);
    T_TRUE(token_from_log(&oldp, gone_token));
    T_EQ(strlen(gone_token), 11);
    T_EQ(gone_token[5], '-');
}

static void test_delete_refusals(void)
{
    char body[512];
    resp r;
    /* refusals: missing fields, unknown did, wrong password, wrong gone_token, expired token */
    r = post(oldp.port, "com.atproto.server.deleteAccount", NULL, "{\"did\":\"x\"}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = post(oldp.port, "com.atproto.server.deleteAccount", NULL,
             "{\"did\":\"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa\",\"password\":\"x\",\"token\":\"y\"}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    snprintf(body, sizeof body, "{\"did\":\"%s\",\"password\":\"wrong\",\"token\":\"%s\"}",
             gone.did, gone_token);
    r = post(oldp.port, "com.atproto.server.deleteAccount", NULL, body);
    T_ERR(r, 401, "AuthenticationRequired");
    resp_free(&r);
    snprintf(body, sizeof body,
             "{\"did\":\"%s\",\"password\":\"pw-gone\",\"token\":\"AAAAA-BBBBB\"}", gone.did);
    r = post(oldp.port, "com.atproto.server.deleteAccount", NULL, body);
    T_ERR(r, 400, "InvalidToken");
    resp_free(&r);
    T_TRUE(service_sql("old", "UPDATE email_token SET requested_at = '2001-01-01T00:00:00.000Z'",
                       NULL, 0));
    snprintf(body, sizeof body, "{\"did\":\"%s\",\"password\":\"pw-gone\",\"token\":\"%s\"}",
             gone.did, gone_token);
    r = post(oldp.port, "com.atproto.server.deleteAccount", NULL, body);
    T_ERR(r, 400, "ExpiredToken");
    resp_free(&r);
}

static void test_delete_with_token(void)
{
    char body[512];
    resp r;
    /* a fresh gone_token, given in lower case (the reference upper-cases it) */
    r = post(oldp.port, "com.atproto.server.requestAccountDelete", gone.access, NULL);
    T_EQ(r.status, 200);
    resp_free(&r);
    T_TRUE(token_from_log(&oldp, gone_token));
    for (char *p = gone_token; *p; p++) {
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    }
    snprintf(body, sizeof body, "{\"did\":\"%s\",\"password\":\"pw-gone\",\"token\":\"%s\"}",
             gone.did, gone_token);
    r = post(oldp.port, "com.atproto.server.deleteAccount", NULL, body);
    T_EQ(r.status, 200);
    resp_free(&r);
}

static void test_delete_gone(void)
{
    char body[512], path[512];
    session again;
    resp r;
    /* gone: repo, gone_folder, login, session, rows; the handle is free again */
    snprintf(path, sizeof path, "/xrpc/com.atproto.repo.describeRepo?repo=%s", gone.did);
    r = get(oldp.port, path, NULL);
    T_EQ(r.status, 404);
    T_STREQ(jstr(&r, "error"), "RepoNotFound");
    resp_free(&r);
    snprintf(path, sizeof path, "/xrpc/com.atproto.sync.getRepo?did=%s", gone.did);
    T_TRUE(status_of(oldp.port, path, NULL) >= 400);
    T_FALSE(exists(gone_folder));
    r = login(oldp.port, "gone.test", "pw-gone");
    T_ERR(r, 401, "AuthenticationRequired");
    resp_free(&r);
    T_TRUE(status_of(oldp.port, "/xrpc/com.atproto.server.getSession", gone.access) >= 400);
    r = post(oldp.port, "com.atproto.server.refreshSession", gone.refresh, NULL);
    T_TRUE(r.status >= 400);
    resp_free(&r);
    snprintf(body, sizeof body, "SELECT count(*) FROM account WHERE did = '%s'", gone.did);
    T_TRUE(service_sql("old", body, path, sizeof path));
    T_STREQ(path, "0");
    snprintf(body, sizeof body, "SELECT count(*) FROM refresh_token WHERE did = '%s'", gone.did);
    T_TRUE(service_sql("old", body, path, sizeof path));
    T_STREQ(path, "0");
    snprintf(body, sizeof body, "{\"did\":\"%s\",\"password\":\"pw-gone\",\"token\":\"%s\"}",
             gone.did, gone_token);
    r = post(oldp.port, "com.atproto.server.deleteAccount", NULL, body);
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    T_TRUE(new_session(oldp.port, "gone.test", "pw-again", &again));
    T_TRUE(strcmp(again.did, gone.did) != 0);
}

/* An app password session cannot ask for deletion (full access only). */
static void test_delete_needs_full_access(void)
{
    session s, app;
    resp r;
    T_TRUE(new_session(oldp.port, "appdel.test", "pw-appdel", &s));
    T_TRUE(app_session(oldp.port, &s, "a", &app));
    r = post(oldp.port, "com.atproto.server.requestAccountDelete", app.access, NULL);
    T_ERR(r, 401, "InvalidToken");
    resp_free(&r);
}

/* ---- status ---- */

static void test_deactivate_activate(void)
{
    session s;
    char sql[256], val[64];
    resp r;
    T_TRUE(new_session(oldp.port, "sleepy.test", "pw-sleepy", &s));
    r = post(oldp.port, "com.atproto.server.deactivateAccount", s.access,
             "{\"deleteAfter\":\"not a date\"}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = post(oldp.port, "com.atproto.server.deactivateAccount", NULL, "{}");
    T_EQ(r.status, 401);
    resp_free(&r);
    r = post(oldp.port, "com.atproto.server.deactivateAccount", s.access,
             "{\"deleteAfter\":\"2030-01-01T00:00:00.000Z\"}");
    T_EQ(r.status, 200);
    resp_free(&r);
    r = get(oldp.port, "/xrpc/com.atproto.server.checkAccountStatus", s.access);
    T_EQ(r.status, 200);
    T_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(r.json, "activated")));
    resp_free(&r);
    r = get(oldp.port, "/xrpc/com.atproto.server.getSession", s.access);
    T_STREQ(jstr(&r, "status"), "deactivated");
    T_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(r.json, "active")));
    resp_free(&r);
    snprintf(sql, sizeof sql, "SELECT delete_after FROM account WHERE did = '%s'", s.did);
    T_TRUE(service_sql("old", sql, val, sizeof val));
    T_STREQ(val, "2030-01-01T00:00:00.000Z");
    snprintf(sql, sizeof sql, "SELECT deactivated_at IS NOT NULL FROM account WHERE did = '%s'",
             s.did);
    T_TRUE(service_sql("old", sql, val, sizeof val));
    T_STREQ(val, "1");
    r = post(oldp.port, "com.atproto.server.activateAccount", s.access, NULL);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = get(oldp.port, "/xrpc/com.atproto.server.checkAccountStatus", s.access);
    T_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "activated")));
    T_TRUE(strlen(jstr(&r, "repoCommit")) > 10);
    T_TRUE(cJSON_GetObjectItem(r.json, "repoBlocks")->valuedouble >= 1);
    T_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "validDid")));
    resp_free(&r);
    snprintf(sql, sizeof sql, "SELECT coalesce(delete_after, 'none') FROM account WHERE did = '%s'",
             s.did);
    T_TRUE(service_sql("old", sql, val, sizeof val));
    T_STREQ(val, "none");
    /* plain deactivation, no body at all */
    r = post(oldp.port, "com.atproto.server.deactivateAccount", s.access, NULL);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = get(oldp.port, "/xrpc/com.atproto.server.getSession", s.access);
    T_STREQ(jstr(&r, "status"), "deactivated");
    resp_free(&r);
}

/* ---- preferences ---- */

static session pref_user;

static void test_preferences(void)
{
    session app;
    resp r;
    T_TRUE(new_session(oldp.port, "prefs.test", "pw-prefs", &pref_user));
    r = get(oldp.port, "/xrpc/app.bsky.actor.getPreferences", pref_user.access);
    T_EQ(r.status, 200);
    T_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "preferences")), 0);
    resp_free(&r);
    T_EQ(status_of(oldp.port, "/xrpc/app.bsky.actor.getPreferences", NULL), 401);
    r = post(oldp.port, "app.bsky.actor.putPreferences", pref_user.access,
             "{\"preferences\":[{\"$type\":\"app.bsky.actor.defs#adultContentPref\","
             "\"enabled\":true},{\"$type\":\"app.bsky.actor.defs#personalDetailsPref\","
             "\"birthDate\":\"1990-01-01T00:00:00.000Z\"}]}");
    T_EQ(r.status, 200);
    resp_free(&r);
    /* refusals change nothing */
    static const char *const bad[] = {
        "{\"preferences\":[{\"enabled\":true}]}",
        "{\"preferences\":[{\"$type\":\"com.example.pref\"}]}",
        "{\"preferences\":[{\"$type\":\"app.bskyx.pref\"}]}",
        "{\"preferences\":{}}",
        "{}",
        "[]",
        "{\"preferences\":[1]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = post(oldp.port, "app.bsky.actor.putPreferences", pref_user.access, bad[i]);
        T_ERR(r, 400, "InvalidRequest");
        resp_free(&r);
    }
    r = get(oldp.port, "/xrpc/app.bsky.actor.getPreferences", pref_user.access);
    cJSON *prefs = cJSON_GetObjectItem(r.json, "preferences");
    T_EQ(cJSON_GetArraySize(prefs), 2);
    T_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(prefs, 0), "$type")->valuestring,
            "app.bsky.actor.defs#adultContentPref");
    T_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(prefs, 0), "enabled")));
    resp_free(&r);

    /* app passwords: personal details hidden, not settable, and kept by their puts */
    T_TRUE(app_session(oldp.port, &pref_user, "prefs-app", &app));
    r = get(oldp.port, "/xrpc/app.bsky.actor.getPreferences", app.access);
    T_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "preferences")), 1);
    resp_free(&r);
    r = post(oldp.port, "app.bsky.actor.putPreferences", app.access,
             "{\"preferences\":[{\"$type\":\"app.bsky.actor.defs#personalDetailsPref\"}]}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = post(
        oldp.port, "app.bsky.actor.putPreferences", app.access,
        "{\"preferences\":[{\"$type\":\"app.bsky.actor.defs#savedFeedsPrefV2\",\"items\":[]}]}");
    T_EQ(r.status, 200);
    resp_free(&r);
    r = get(oldp.port, "/xrpc/app.bsky.actor.getPreferences", pref_user.access);
    prefs = cJSON_GetObjectItem(r.json, "preferences");
    T_EQ(cJSON_GetArraySize(prefs), 2); /* personal details kept, adult content replaced */
    T_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(prefs, 0), "$type")->valuestring,
            "app.bsky.actor.defs#personalDetailsPref");
    resp_free(&r);
    r = get(oldp.port, "/xrpc/com.atproto.server.checkAccountStatus", pref_user.access);
    T_EQ(cJSON_GetObjectItem(r.json, "privateStateValues")->valuedouble, 2);
    resp_free(&r);
    r = post(oldp.port, "app.bsky.actor.putPreferences", pref_user.access, "{\"preferences\":[]}");
    T_EQ(r.status, 200);
    resp_free(&r);
    r = get(oldp.port, "/xrpc/app.bsky.actor.getPreferences", pref_user.access);
    T_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "preferences")), 0);
    resp_free(&r);
}

/* The official client's putPreferences / getPreferences and its preference helpers. */
static void test_preferences_official_client(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s %s/pds/tests/lifecycle_prefs.mjs http://127.0.0.1:%u "
             "%s/tests/interop %d 2>&1",
             ATP_NODE, ATP_SOURCE_DIR, oldp.port, ATP_SOURCE_DIR, (int)getpid() % 100000);
    t_node_ok(cmd);
}

/* ---- migration ---- */

static session mig_old;
static char mig_head[128];

/* The old account's repo key, as the old pds stored it. */
static atp_key *old_key(const char *did)
{
    char sql[256], hex[80];
    atp_key *k = NULL;
    snprintf(sql, sizeof sql, "SELECT signing_key FROM account WHERE did = '%s'", did);
    if (service_sql("old", sql, hex, sizeof hex) && strlen(hex) == 64 &&
        atp_key_import_private_hex(ATP_CURVE_K256, atp_slice_make(hex, 64), &k, NULL) == 0) {
        return k;
    }
    return NULL;
}

/* A service JWT from `did` for the new pds: minted here with `key`, lxm as given. */
static bool mint_jwt(const char *did, const atp_key *key, const char *lxm, int64_t exp_in,
                     char *out, size_t cap)
{
    atp_buf b;
    cJSON *c = cJSON_CreateObject();
    atp_jwt_key k = {key, atp_slice_make(NULL, 0)};
    int64_t now = (int64_t)time(NULL);
    bool ok;
    cJSON_AddStringToObject(c, "iss", did);
    cJSON_AddStringToObject(c, "aud", "did:web:localhost");
    cJSON_AddNumberToObject(c, "iat", (double)now);
    cJSON_AddNumberToObject(c, "exp", (double)(now + exp_in));
    cJSON_AddStringToObject(c, "lxm", lxm);
    cJSON_AddStringToObject(c, "jti", "lifecycle-test");
    atp_buf_init(&b, cap - 8);
    ok = atp_jwt_sign(&b, &k, "JWT", c, NULL) == 0;
    snprintf(out, cap, "Bearer %.*s", (int)b.len, (const char *)b.ptr);
    atp_buf_release(&b);
    cJSON_Delete(c);
    return ok;
}

/* The service JWT from the old pds's getServiceAuth, or minted with the old key. */
static bool service_jwt(const char *did, char *out, size_t cap)
{
    resp r = get(oldp.port,
                 "/xrpc/com.atproto.server.getServiceAuth?aud=did:web:localhost"
                 "&lxm=com.atproto.server.createAccount",
                 mig_old.access);
    bool ok = r.status == 200 && strlen(jstr(&r, "token")) > 20;
    if (ok) {
        snprintf(out, cap, "Bearer %s", jstr(&r, "token"));
    }
    resp_free(&r);
    if (!ok) {
        atp_key *k = old_key(did);
        ok = k && mint_jwt(did, k, "com.atproto.server.createAccount", 120, out, cap);
        atp_key_destroy(k);
    }
    return ok;
}

/* GET of a binary body (libcurl): the bytes and their length, or NULL unless 200. */
static char *get_bytes(unsigned port, const char *path, size_t *len)
{
    char url[512];
    long status = 0;
    atp_buf b;
    CURL *c = curl_easy_init();
    atp_buf_init(&b, 64u << 20);
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_easy_cleanup(c);
    if (status != 200 || b.err) {
        atp_buf_release(&b);
        return NULL;
    }
    return (char *)atp_buf_take(&b, len);
}

/* The account's CAR read from its file on the old pds (what getRepo serves). */
static char *export_from_file(const char *did, size_t *len)
{
    char dir[256];
    pds_actor_store *s = NULL;
    pds_actor_store_opts o;
    atp_buf b;
    memset(&o, 0, sizeof o);
    snprintf(dir, sizeof dir, "%s/old/actors", tmpdir);
    o.dir = dir;
    atp_buf_init(&b, 64u << 20);
    if (pds_actor_store_open(&o, &s, NULL) < 0 ||
        pds_actor_store_export(s, atp_slice_str(did), &b, NULL) < 0) {
        atp_buf_release(&b);
        pds_actor_store_destroy(s);
        return NULL;
    }
    pds_actor_store_destroy(s);
    return (char *)atp_buf_take(&b, len);
}

/* The old account's CAR: com.atproto.sync.getRepo when the old pds serves it, else its file. */
static char *export_car(const char *did, size_t *len)
{
    char path[256];
    char *car;
    snprintf(path, sizeof path, "/xrpc/com.atproto.sync.getRepo?did=%s", did);
    car = get_bytes(oldp.port, path, len);
    if (car) {
        /* use it only if it is a whole verifiable repo (the endpoint is another module's) */
        atp_arena *a = atp_arena_create(0);
        atp_repo_info info;
        atp_repo_import_opts o;
        atp_err err;
        memset(&o, 0, sizeof o);
        o.did = atp_slice_str(did);
        if (atp_repo_import(atp_slice_make(car, *len), &o, NULL, a, &info, &err) < 0) {
            printf("# sync.getRepo's CAR (%zu bytes) does not verify (%s): using the file\n", *len,
                   err.msg);
            free(car);
            car = NULL;
        }
        atp_arena_destroy(a);
    }
    return car ? car : export_from_file(did, len);
}

static void test_migration_setup(void)
{
    char body[512];
    resp r;
    T_TRUE(new_session(oldp.port, "mover.test", "pw-mover", &mig_old));
    for (int i = 0; i < 3; i++) {
        snprintf(
            body, sizeof body,
            "{\"repo\":\"%s\",\"collection\":\"app.bsky.feed.post\",\"rkey\":\"3jzfcijpj2z2%c\","
            "\"record\":{\"$type\":\"app.bsky.feed.post\",\"text\":\"moving %d\","
            "\"createdAt\":\"2024-01-01T00:00:00.000Z\"}}",
            mig_old.did, 'a' + i, i);
        r = post(oldp.port, "com.atproto.repo.createRecord", mig_old.access, body);
        T_EQ(r.status, 200);
        if (r.status != 200) {
            printf("# createRecord: %s\n", r.text ? r.text : "");
        }
        resp_free(&r);
    }
    r = get(oldp.port, "/xrpc/com.atproto.server.checkAccountStatus", mig_old.access);
    snprintf(mig_head, sizeof mig_head, "%s", jstr(&r, "repoCommit"));
    resp_free(&r);
    T_TRUE(strlen(mig_head) > 10);
}

static session mig_new;

static void test_migration_create(void)
{
    char jwt[2200], body[1024];
    atp_key *other = NULL;
    resp r;
    snprintf(body, sizeof body,
             "{\"handle\":\"mover.test\",\"email\":\"mover@example.com\",\"password\":\"pw-new\","
             "\"did\":\"%s\"}",
             mig_old.did);
    /* no auth, wrong lxm, wrong key, wrong did */
    r = post(newp.port, "com.atproto.server.createAccount", NULL, body);
    T_ERR(r, 401, "AuthenticationRequired");
    resp_free(&r);
    atp_key *k = old_key(mig_old.did);
    T_TRUE(k != NULL);
    T_TRUE(mint_jwt(mig_old.did, k, "com.atproto.repo.createRecord", 120, jwt, sizeof jwt));
    r = post(newp.port, "com.atproto.server.createAccount", jwt, body);
    T_ERR(r, 401, "BadJwtLexiconMethod");
    resp_free(&r);
    T_TRUE(mint_jwt(mig_old.did, k, "com.atproto.server.createAccount", -100, jwt, sizeof jwt));
    r = post(newp.port, "com.atproto.server.createAccount", jwt, body);
    T_ERR(r, 401, "JwtExpired");
    resp_free(&r);
    atp_key_destroy(k);
    T_OK(atp_key_generate(ATP_CURVE_K256, &other, NULL));
    T_TRUE(mint_jwt(mig_old.did, other, "com.atproto.server.createAccount", 120, jwt, sizeof jwt));
    r = post(newp.port, "com.atproto.server.createAccount", jwt, body);
    T_ERR(r, 401, "BadJwtSignature");
    resp_free(&r);
    atp_key_destroy(other);
    T_TRUE(service_jwt(mig_old.did, jwt, sizeof jwt));
    snprintf(body, sizeof body,
             "{\"handle\":\"mover2.test\",\"email\":\"mover@example.com\",\"password\":\"pw-new\","
             "\"did\":\"did:plc:zzzzzzzzzzzzzzzzzzzzzzzz\"}");
    r = post(newp.port, "com.atproto.server.createAccount", jwt, body);
    T_ERR(r, 401, "AuthenticationRequired");
    resp_free(&r);
    /* a key reserved for the DID becomes the account's (and is no longer reserved) */
    snprintf(body, sizeof body, "{\"did\":\"%s\"}", mig_old.did);
    r = post(newp.port, "com.atproto.server.reserveSigningKey", NULL, body);
    T_EQ(r.status, 200);
    T_TRUE(strncmp(jstr(&r, "signingKey"), "did:key:z", 9) == 0);
    resp_free(&r);
    /* the real thing: deactivated, same DID, no repo yet */
    snprintf(body, sizeof body,
             "{\"handle\":\"mover.test\",\"email\":\"mover@example.com\",\"password\":\"pw-new\","
             "\"did\":\"%s\"}",
             mig_old.did);
    r = post(newp.port, "com.atproto.server.createAccount", jwt, body);
    T_TRUE(session_from(&r, &mig_new));
    T_STREQ(mig_new.did, mig_old.did);
    T_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(r.json, "active")));
    resp_free(&r);
    r = post(newp.port, "com.atproto.server.createAccount", jwt, body);
    T_EQ(r.status, 400);
    resp_free(&r);
    snprintf(body, sizeof body, "SELECT count(*) FROM reserved_signing_key WHERE did = '%s'",
             mig_old.did);
    T_TRUE(service_sql("new", body, jwt, sizeof jwt));
    T_STREQ(jwt, "0");
    r = get(newp.port, "/xrpc/com.atproto.server.checkAccountStatus", mig_new.access);
    T_EQ(r.status, 200);
    T_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(r.json, "activated")));
    T_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(r.json, "validDid"))); /* PLC still says old */
    T_EQ(cJSON_GetObjectItem(r.json, "indexedRecords")->valuedouble, 0);
    resp_free(&r);
}

static resp import_car(const char *auth, const void *car, size_t len)
{
    return call(newp.port, "POST", "/xrpc/com.atproto.repo.importRepo", auth, car, len,
                "Content-Type: application/vnd.ipld.car");
}

static void test_migration_bad_cars(void)
{
    size_t len = 0, olen = 0;
    char *car = export_car(mig_old.did, &len), *other;
    session stranger;
    resp r;
    T_TRUE(car != NULL && len > 100);
    if (!car) {
        return;
    }
    r = import_car(NULL, car, len);
    T_EQ(r.status, 401);
    resp_free(&r);
    r = import_car(mig_new.access, "garbage", 7);
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = import_car(mig_new.access, car, len / 2); /* cut short */
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    car[len - 3] ^= 0x55; /* a record block no longer matches its CID */
    r = import_car(mig_new.access, car, len);
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    car[len - 3] ^= 0x55;
    /* another account's repo: wrong DID */
    T_TRUE(new_session(oldp.port, "stranger.test", "pw-stranger", &stranger));
    other = export_car(stranger.did, &olen);
    T_TRUE(other != NULL);
    r = import_car(mig_new.access, other, olen);
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    free(other);
    /* over PDS_MAX_REPO_IMPORT_SIZE */
    other = calloc(1, IMPORT_LIMIT + 1000);
    r = import_car(mig_new.access, other, IMPORT_LIMIT + 1000);
    T_EQ(r.status, 413);
    resp_free(&r);
    free(other);
    /* nothing was stored by any of them */
    r = get(newp.port, "/xrpc/com.atproto.server.checkAccountStatus", mig_new.access);
    T_EQ(cJSON_GetObjectItem(r.json, "indexedRecords")->valuedouble, 0);
    T_STREQ(jstr(&r, "repoCommit"), "");
    resp_free(&r);
    free(car);
}

/* A CAR of the same DID signed by a key that is not the DID's: refused. */
static void test_migration_bad_signature(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_key *k = NULL;
    atp_repo *repo = NULL;
    atp_repo_commit c;
    atp_arena *a = atp_arena_create(0);
    atp_buf b;
    atp_car_writer w;
    resp r;
    T_OK(atp_key_generate(ATP_CURVE_K256, &k, NULL));
    T_OK(atp_repo_create(bs, atp_slice_str(mig_old.did), k, NULL, &repo, NULL));
    T_OK(atp_repo_apply_store(repo, NULL, 0, a, &c, NULL));
    atp_buf_init(&b, 1u << 20);
    atp_car_writer_init_buf(&w, &b);
    T_OK(atp_repo_export(repo, &w, NULL));
    r = import_car(mig_new.access, b.ptr, b.len);
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    atp_buf_release(&b);
    atp_repo_destroy(repo);
    atp_key_destroy(k);
    atp_arena_destroy(a);
    atp_blockstore_destroy(bs);
}

static void test_migration_import(void)
{
    size_t len = 0;
    char *car = export_car(mig_old.did, &len), path[512];
    resp r;
    T_TRUE(car != NULL);
    if (!car) {
        return;
    }
    r = import_car(mig_new.access, car, len);
    T_EQ(r.status, 200);
    if (r.status != 200) {
        FILE *f = fopen("/tmp/f5-failed.car", "wb");
        printf("# importRepo: %s (CAR in /tmp/f5-failed.car)\n", r.text ? r.text : "");
        if (f) {
            fwrite(car, 1, len, f);
            fclose(f);
        }
    }
    resp_free(&r);
    r = get(newp.port, "/xrpc/com.atproto.server.checkAccountStatus", mig_new.access);
    T_STREQ(jstr(&r, "repoCommit"), mig_head);
    T_EQ(cJSON_GetObjectItem(r.json, "indexedRecords")->valuedouble, 3);
    T_TRUE(cJSON_GetObjectItem(r.json, "repoBlocks")->valuedouble >= 4);
    resp_free(&r);
    for (int i = 0; i < 3; i++) {
        char want[32];
        snprintf(path, sizeof path,
                 "/xrpc/com.atproto.repo.getRecord?repo=%s&collection=app.bsky.feed.post"
                 "&rkey=3jzfcijpj2z2%c",
                 mig_old.did, 'a' + i);
        r = get(newp.port, path, NULL);
        T_EQ(r.status, 200);
        snprintf(want, sizeof want, "moving %d", i);
        cJSON *text = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "value"), "text");
        T_TRUE(cJSON_IsString(text) && strcmp(text->valuestring, want) == 0);
        resp_free(&r);
    }
    snprintf(path, sizeof path,
             "/xrpc/com.atproto.repo.listRecords?repo=%s"
             "&collection=app.bsky.feed.post",
             mig_old.did);
    r = get(newp.port, path, NULL);
    T_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "records")), 3);
    resp_free(&r);
    /* importing again (same CAR) is accepted and changes nothing */
    r = import_car(mig_new.access, car, len);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = get(newp.port, "/xrpc/com.atproto.server.checkAccountStatus", mig_new.access);
    T_EQ(cJSON_GetObjectItem(r.json, "indexedRecords")->valuedouble, 3);
    resp_free(&r);
    free(car);
    /* activation completes the migration; writes then work on the new pds */
    r = post(newp.port, "com.atproto.server.activateAccount", mig_new.access, NULL);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = get(newp.port, "/xrpc/com.atproto.server.checkAccountStatus", mig_new.access);
    T_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "activated")));
    resp_free(&r);
    snprintf(path, sizeof path,
             "{\"repo\":\"%s\",\"collection\":\"app.bsky.feed.post\",\"record\":{\"$type\":"
             "\"app.bsky.feed.post\",\"text\":\"arrived\",\"createdAt\":\"2024-01-02T00:00:00Z\"}}",
             mig_new.did);
    r = post(newp.port, "com.atproto.repo.createRecord", mig_new.access, path);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = get(newp.port, "/xrpc/com.atproto.server.checkAccountStatus", mig_new.access);
    T_EQ(cJSON_GetObjectItem(r.json, "indexedRecords")->valuedouble, 4);
    T_TRUE(strcmp(jstr(&r, "repoCommit"), mig_head) != 0);
    resp_free(&r);
}

/* Blob references of imported records are indexed: expectedBlobs counts them before any blob
 * is uploaded (listMissingBlobs' source). */
static void test_migration_blob_refs(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_key *k = old_key(mig_old.did);
    atp_repo *repo = NULL;
    atp_repo_commit c;
    atp_arena *a = atp_arena_create(0);
    atp_buf b;
    atp_car_writer w;
    atp_cid blob;
    atp_cbor *rec = NULL;
    atp_repo_write wr;
    char json[512], cid[ATP_CID_STR_MAX];
    resp r;
    T_TRUE(k != NULL);
    if (!k) {
        return;
    }
    /* {"$type": "app.bsky.actor.profile", "avatar": {"$type": "blob", "ref": link, ...}} */
    atp_cid_compute(&blob, ATP_CODEC_RAW, atp_slice_str("pixels"));
    T_TRUE(atp_cid_format_to(&blob, cid, sizeof cid) > 0);
    snprintf(json, sizeof json,
             "{\"$type\":\"app.bsky.actor.profile\",\"avatar\":{\"$type\":\"blob\","
             "\"ref\":{\"$link\":\"%s\"},\"mimeType\":\"image/png\",\"size\":6}}",
             cid);
    T_OK(atp_json_decode(a, atp_slice_str(json), ATP_JSON_DATA, NULL, &rec, NULL));
    memset(&wr, 0, sizeof wr);
    wr.action = ATP_REPO_CREATE;
    wr.path = atp_slice_str("app.bsky.actor.profile/self");
    wr.record = rec;
    T_OK(atp_repo_create(bs, atp_slice_str(mig_old.did), k, NULL, &repo, NULL));
    T_OK(atp_repo_apply_store(repo, &wr, 1, a, &c, NULL));
    atp_buf_init(&b, 1u << 20);
    atp_car_writer_init_buf(&w, &b);
    T_OK(atp_repo_export(repo, &w, NULL));
    /* the DID document still names the old key (the new pds verifies against it) */
    r = import_car(mig_new.access, b.ptr, b.len);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = get(newp.port, "/xrpc/com.atproto.server.checkAccountStatus", mig_new.access);
    T_EQ(cJSON_GetObjectItem(r.json, "indexedRecords")->valuedouble, 1);
    T_EQ(cJSON_GetObjectItem(r.json, "expectedBlobs")->valuedouble, 1);
    T_EQ(cJSON_GetObjectItem(r.json, "importedBlobs")->valuedouble, 0);
    resp_free(&r);
    atp_buf_release(&b);
    atp_repo_destroy(repo);
    atp_key_destroy(k);
    atp_arena_destroy(a);
    atp_blockstore_destroy(bs);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_pds_lc.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return 1;
    }
    T_RUN(test_start);
    if (plc.port && oldp.port && newp.port) {
        T_RUN(test_delete_request);
        T_RUN(test_delete_refusals);
        T_RUN(test_delete_with_token);
        T_RUN(test_delete_gone);
        T_RUN(test_delete_needs_full_access);
        T_RUN(test_deactivate_activate);
        T_RUN(test_preferences);
        T_RUN(test_preferences_official_client);
        T_RUN(test_migration_setup);
        T_RUN(test_migration_create);
        T_RUN(test_migration_bad_cars);
        T_RUN(test_migration_bad_signature);
        T_RUN(test_migration_import);
        T_RUN(test_migration_blob_refs);
    }
    T_EQ(t_daemon_stop(&oldp, SIGTERM), 0);
    T_EQ(t_daemon_stop(&newp, SIGTERM), 0);
    t_daemon_stop(&plc, SIGKILL);
    t_cleanup();
    return t_done();
}
