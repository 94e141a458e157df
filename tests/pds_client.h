/* pds_client.h: what the pds end-to-end tests share (header-only, like t.h): raw XRPC calls
 * over libcurl, sessions, account creation, and the plc + pds fixtures on 127.0.0.1.
 *
 *   mkdtemp(tmpdir) ...; t_start_plc(); start_pds(&pds, "pds", extra_env);
 *   resp r = post(pds.port, "com.atproto.server.createAccount", NULL, json); ... resp_free(&r);
 *   ...; t_node_ok(cmd); ...; stop the daemons; t_cleanup(); return t_done();
 */
#ifndef PDS_CLIENT_H
#define PDS_CLIENT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "atp/buf.h"
#include "daemon_spawn.h"
#include "t.h"

static char tmpdir[64];

/* ---- HTTP ---- */

typedef struct resp {
    long status;
    cJSON *json; /* parsed body, or NULL */
    char *text;
    char ratelimit_limit[32];
} resp;

static inline size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    atp_buf_append(ud, p, size * n);
    return size * n;
}

static inline size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    resp *r = ud;
    size_t len = size * n;
    if (len > 16 && strncasecmp(p, "ratelimit-limit:", 16) == 0) {
        snprintf(r->ratelimit_limit, sizeof r->ratelimit_limit, "%.*s", (int)(len - 16), p + 16);
    }
    return len;
}

/* method "GET"/"POST"; `auth` a full Authorization value or NULL; extra header or NULL. */
static inline resp call(unsigned port, const char *method, const char *path, const char *auth,
                 const char *body, size_t body_len, const char *extra)
{
    resp r;
    atp_buf b;
    char url[8192], ah[4200];
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    memset(&r, 0, sizeof r);
    atp_buf_init(&b, (size_t)64 << 20);
    int un = snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    if (un < 0 || (size_t)un >= sizeof url) {
        url[0] = '\0'; /* curl then fails: status 0 */
    }
    if (auth) {
        snprintf(ah, sizeof ah, "Authorization: %s", auth);
        h = curl_slist_append(h, ah);
    }
    if (extra) {
        h = curl_slist_append(h, extra);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(body ? body_len : 0));
    }
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    atp_buf_append_byte(&b, 0);
    r.text = (char *)atp_buf_take(&b, NULL);
    r.json = r.text ? cJSON_Parse(r.text) : NULL;
    return r;
}

static inline void resp_free(resp *r)
{
    cJSON_Delete(r->json);
    free(r->text);
}

static inline resp post(unsigned port, const char *nsid, const char *auth, const char *json)
{
    char path[256];
    snprintf(path, sizeof path, "/xrpc/%s", nsid);
    return call(port, "POST", path, auth, json, json ? strlen(json) : 0, NULL);
}

static inline resp get(unsigned port, const char *path, const char *auth)
{
    return call(port, "GET", path, auth, NULL, 0, NULL);
}

static inline const char *jstr(const resp *r, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->json, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Checks status and error name of a failure. */
#define T_ERR(r, st, name)                                                                         \
    do {                                                                                           \
        T_EQ((r).status, (st));                                                                    \
        T_STREQ(jstr(&(r), "error"), (name));                                                      \
    } while (0)

/* A session: "Bearer <accessJwt>" and "Bearer <refreshJwt>" plus the DID. */
typedef struct session {
    char access[2100], refresh[2100], did[128], handle[64];
} session;

static inline bool session_from(const resp *r, session *s)
{
    snprintf(s->access, sizeof s->access, "Bearer %s", jstr(r, "accessJwt"));
    snprintf(s->refresh, sizeof s->refresh, "Bearer %s", jstr(r, "refreshJwt"));
    snprintf(s->did, sizeof s->did, "%s", jstr(r, "did"));
    snprintf(s->handle, sizeof s->handle, "%s", jstr(r, "handle"));
    return r->status == 200 && strlen(s->access) > 20 && strlen(s->refresh) > 20;
}

static inline resp create_account(unsigned port, const char *handle, const char *email,
                           const char *pw, const char *invite)
{
    char body[512];
    if (invite) {
        snprintf(body, sizeof body,
                 "{\"handle\":\"%s\",\"email\":\"%s\",\"password\":\"%s\",\"inviteCode\":\"%s\"}",
                 handle, email, pw, invite);
    } else {
        snprintf(body, sizeof body, "{\"handle\":\"%s\",\"email\":\"%s\",\"password\":\"%s\"}",
                 handle, email, pw);
    }
    return post(port, "com.atproto.server.createAccount", NULL, body);
}

static inline resp login(unsigned port, const char *ident, const char *pw)
{
    char body[512];
    snprintf(body, sizeof body, "{\"identifier\":\"%s\",\"password\":\"%s\"}", ident, pw);
    return post(port, "com.atproto.server.createSession", NULL, body);
}

/* Creates an app password `name` for the account of session s and logs in with it (as
 * s->handle) into *app. true when both calls succeeded; *app is then an app-password session. */
static inline bool app_session(unsigned port, const session *s, const char *name, session *app)
{
    char body[256], pw[64];
    snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
    resp r = post(port, "com.atproto.server.createAppPassword", s->access, body);
    bool ok = r.status == 200;
    snprintf(pw, sizeof pw, "%s", jstr(&r, "password"));
    resp_free(&r);
    r = login(port, s->handle, pw);
    ok = session_from(&r, app) && ok;
    resp_free(&r);
    return ok;
}

/* ---- the daemon's database ---- */

/* Opens a daemon's service database (tmpdir/<name>/service.sqlite) with `flags`
 * (SQLITE_OPEN_READONLY or SQLITE_OPEN_READWRITE) beside the running daemon: WAL makes that
 * safe, and a 5 s busy timeout waits out its writes. NULL on failure; sqlite3_close it. */
static inline sqlite3 *t_service_db(const char *name, int flags)
{
    char path[256];
    sqlite3 *db = NULL;
    snprintf(path, sizeof path, "%s/%s/service.sqlite", tmpdir, name);
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* The first column of the first row `sql` returns (?1 bound to arg when arg is not NULL) from
 * the daemon `name`'s service database, read-only; -1 when there is no row or on failure. */
static inline long long t_service_int(const char *name, const char *sql, const char *arg)
{
    sqlite3 *db = t_service_db(name, SQLITE_OPEN_READONLY);
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (db && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (arg) {
            sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
        }
        if (sqlite3_step(st) == SQLITE_ROW) {
            v = sqlite3_column_int64(st, 0);
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* ---- node scripts and the end of main ---- */

/* Runs a node script (`cmd`, with its stderr folded into stdout) and checks that it exits 0
 * and prints "ok":true; prints what it said (its first 8 KiB) when not. */
static inline void t_node_ok(const char *cmd)
{
    char out[8192] = "";
    FILE *p = popen(cmd, "r");
    T_TRUE(p != NULL);
    if (!p) {
        return;
    }
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    T_EQ(pclose(p), 0);
    T_TRUE(strstr(out, "\"ok\":true") != NULL);
    if (!strstr(out, "\"ok\":true")) {
        printf("# node: %s\n", out);
    }
}

/* rm -rf dir (a test's own mkdtemp folder: the name is not quoted). */
static inline void t_rm_rf(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", dir);
    }
}

/* The end of each test's main, after its daemons are stopped: curl's global cleanup, then
 * tmpdir goes when every check passed (kept for a post-mortem otherwise). */
static inline void t_cleanup(void)
{
    curl_global_cleanup();
    if (t__failed == 0) {
        t_rm_rf(tmpdir);
    }
}

/* ---- fixtures ---- */

static t_daemon plc;
static char plc_url[96];

static inline bool start_pds(t_daemon *d, const char *name, const char *const *extra)
{
    static char envs[2][8][1200];
    static int which;
    char(*e)[1200] = envs[which++ % 2];
    const char *env[24];
    size_t n = 0;
    snprintf(e[0], 1200, "PDS_DATA_DIRECTORY=%s/%s", tmpdir, name);
    snprintf(e[1], 1200, "PDS_DID_PLC_URL=%s", plc_url);
    env[n++] = e[0];
    env[n++] = e[1];
    env[n++] = "PDS_HOSTNAME=localhost";
    env[n++] = "PDS_DEV_MODE=true";
    env[n++] = "PDS_PORT=0";
    env[n++] = "PDS_JWT_SECRET=test-secret";
    env[n++] = "PDS_ADMIN_PASSWORD=adminpw";
    env[n++] = "PDS_CRAWLERS=";
    for (size_t i = 0; extra && extra[i] && n < 23; i++) {
        env[n++] = extra[i];
    }
    env[n] = NULL;
    return t_daemon_start(d, tmpdir, name, PDS_BIN, env, NULL);
}

/* Starts the plc directory (plc global, plc_url) with its database in tmpdir. */
static inline bool t_start_plc(void)
{
    static char db[128];
    const char *args[] = {"--host", "127.0.0.1", "--port", "0", "--db", db, NULL};
    snprintf(db, sizeof db, "%s/plc.sqlite", tmpdir);
    if (!t_daemon_start(&plc, tmpdir, "plc", PLC_BIN, NULL, args)) {
        return false;
    }
    snprintf(plc_url, sizeof plc_url, "http://127.0.0.1:%u", plc.port);
    return true;
}

#endif
