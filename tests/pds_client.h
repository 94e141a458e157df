/* pds_client.h: what the pds end-to-end tests share (header-only, like t.h): raw XRPC calls
 * over libcurl, sessions, account creation, and the plc + pds fixtures on 127.0.0.1.
 *
 *   mkdtemp(tmpdir) ...; t_start_plc(); start_pds(&pds, "pds", extra_env);
 *   resp r = post(pds.port, "com.atproto.server.createAccount", NULL, json); ... resp_free(&r);
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
