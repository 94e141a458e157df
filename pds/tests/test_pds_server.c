/* test_pds_server: spawns the plc directory and pds daemons on 127.0.0.1 (ephemeral ports) and
 * drives accounts, sessions, app passwords, invites and the error paths over raw HTTP. */
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "atp/buf.h"
#include "daemon_spawn.h"
#include "t.h"

#include "pds_client.h"

static t_daemon pds, strict;

static void test_start(void)
{
    static const char *const free_env[] = {"PDS_INVITE_REQUIRED=false",
                                           "PDS_RATE_LIMITS_ENABLED=false", NULL};
    static const char *const strict_env[] = {
        "PDS_INVITE_REQUIRED=true", "PDS_RATE_LIMITS_ENABLED=true", "PDS_RATE_LIMIT_SESSION=5",
        "PDS_ACCESS_TOKEN_TTL=3", "PDS_REFRESH_GRACE=0",
        "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX="
        "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d",
        NULL};
    T_TRUE(t_start_plc());
    T_TRUE(start_pds(&pds, "pds", free_env));
    T_TRUE(start_pds(&strict, "strict", strict_env));
}

static void test_describe_and_health(void)
{
    resp r = get(pds.port, "/xrpc/com.atproto.server.describeServer", NULL);
    T_EQ(r.status, 200);
    T_STREQ(jstr(&r, "did"), "did:web:localhost");
    T_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(r.json, "inviteCodeRequired")));
    T_STREQ(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "availableUserDomains"), 0)
                ->valuestring, ".test");
    resp_free(&r);
    r = get(strict.port, "/xrpc/com.atproto.server.describeServer", NULL);
    T_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "inviteCodeRequired")));
    resp_free(&r);
    r = get(pds.port, "/xrpc/_health", NULL);
    T_EQ(r.status, 200);
    T_TRUE(strlen(jstr(&r, "version")) > 0);
    resp_free(&r);
    r = get(pds.port, "/.well-known/did.json", NULL);
    T_STREQ(jstr(&r, "id"), "did:web:localhost");
    resp_free(&r);
}

static session alice;

static void test_create_account(void)
{
    char path[256];
    resp r = create_account(pds.port, "Alice.test", "alice@example.com", "hunter22", NULL);
    T_TRUE(session_from(&r, &alice));
    T_TRUE(strncmp(alice.did, "did:plc:", 8) == 0);
    T_STREQ(alice.handle, "alice.test");
    resp_free(&r);
    /* Registered on the directory, pointing at us. */
    snprintf(path, sizeof path, "/%s", alice.did);
    r = get(plc.port, path, NULL);
    T_EQ(r.status, 200);
    T_TRUE(r.text && strstr(r.text, "at://alice.test") != NULL);
    T_TRUE(r.text && strstr(r.text, "\"serviceEndpoint\":\"http://localhost:") != NULL);
    resp_free(&r);
    r = get(pds.port, "/xrpc/com.atproto.identity.resolveHandle?handle=alice.test", NULL);
    T_STREQ(jstr(&r, "did"), alice.did);
    resp_free(&r);
    r = call(pds.port, "GET", "/.well-known/atproto-did", NULL, NULL, 0, "Host: alice.test");
    T_EQ(r.status, 200);
    T_STREQ(r.text, alice.did);
    resp_free(&r);
    r = call(pds.port, "GET", "/.well-known/atproto-did", NULL, NULL, 0, "Host: nobody.test");
    T_EQ(r.status, 404);
    resp_free(&r);
    r = get(pds.port, "/metrics", NULL);
    T_TRUE(r.text && strstr(r.text, "\natp_pds_accounts_created_total 1\n") != NULL);
    resp_free(&r);
}

static void test_create_account_refusals(void)
{
    static const struct {
        const char *handle, *email, *pw, *err;
    } cases[] = {
        {"alice.test", "other@example.com", "pw123456", "HandleNotAvailable"},
        {"bob.test", "ALICE@example.com", "pw123456", "InvalidRequest"}, /* email taken */
        {"a.b.test", "b1@example.com", "pw123456", "InvalidHandle"},     /* two labels */
        {"ab.test", "b2@example.com", "pw123456", "InvalidHandle"},      /* too short */
        {"bob.example.com", "b3@example.com", "pw123456", "UnsupportedDomain"},
        {"bob-.test", "b4@example.com", "pw123456", "InvalidHandle"},
        {"bob.test", "not-an-email", "pw123456", "InvalidRequest"},
        {"bob.test", "b5@example.com", "", "InvalidPassword"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        resp r = create_account(pds.port, cases[i].handle, cases[i].email, cases[i].pw, NULL);
        T_ERR(r, 400, cases[i].err);
        resp_free(&r);
    }
    resp r = get(pds.port, "/xrpc/com.atproto.identity.resolveHandle?handle=bob.test", NULL);
    T_ERR(r, 400, "HandleNotFound");
    resp_free(&r);
}

static void test_login(void)
{
    const char *idents[] = {"alice.test", "ALICE.TEST", "alice@example.com", alice.did};
    session s;
    for (size_t i = 0; i < 4; i++) {
        resp r = login(pds.port, idents[i], "hunter22");
        T_TRUE(session_from(&r, &s));
        T_STREQ(s.did, alice.did);
        T_STREQ(jstr(&r, "email"), "alice@example.com");
        resp_free(&r);
    }
    resp r = login(pds.port, "alice.test", "hunter23");
    T_ERR(r, 401, "AuthenticationRequired");
    resp_free(&r);
    r = login(pds.port, "nobody.test", "hunter22");
    T_ERR(r, 401, "AuthenticationRequired");
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.createSession", NULL, "{\"identifier\":\"alice.test\"}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
}

static void test_get_session_auth(void)
{
    resp r = get(pds.port, "/xrpc/com.atproto.server.getSession", alice.access);
    T_EQ(r.status, 200);
    T_STREQ(jstr(&r, "did"), alice.did);
    T_STREQ(jstr(&r, "handle"), "alice.test");
    T_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "active")));
    resp_free(&r);
    r = get(pds.port, "/xrpc/com.atproto.server.getSession", NULL);
    T_ERR(r, 401, "AuthMissing");
    resp_free(&r);
    r = get(pds.port, "/xrpc/com.atproto.server.getSession", "Bearer garbage.token.here");
    T_ERR(r, 401, "InvalidToken");
    resp_free(&r);
    /* A refresh token is not an access token, and vice versa. */
    r = get(pds.port, "/xrpc/com.atproto.server.getSession", alice.refresh);
    T_ERR(r, 401, "InvalidToken");
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.refreshSession", alice.access, NULL);
    T_ERR(r, 401, "InvalidToken");
    resp_free(&r);
    /* Basic credentials where a bearer token is expected. */
    r = get(strict.port, "/xrpc/com.atproto.server.getSession", "Basic YWRtaW46YWRtaW5wdw==");
    T_ERR(r, 401, "InvalidToken");
    resp_free(&r);
}

static void test_refresh_rotation(void)
{
    session s, s2, s3;
    resp r = login(pds.port, "alice.test", "hunter22");
    T_TRUE(session_from(&r, &s));
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.refreshSession", s.refresh, NULL);
    T_TRUE(session_from(&r, &s2));
    T_STREQ(jstr(&r, "did"), alice.did);
    resp_free(&r);
    T_TRUE(strcmp(s2.refresh, s.refresh) != 0);
    r = get(pds.port, "/xrpc/com.atproto.server.getSession", s2.access);
    T_EQ(r.status, 200);
    resp_free(&r);
    /* Within the grace period a retry with the old token still works. */
    r = post(pds.port, "com.atproto.server.refreshSession", s.refresh, NULL);
    T_TRUE(session_from(&r, &s3));
    resp_free(&r);
    /* deleteSession revokes. */
    r = post(pds.port, "com.atproto.server.deleteSession", s2.refresh, NULL);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.refreshSession", s2.refresh, NULL);
    T_ERR(r, 400, "ExpiredToken");
    resp_free(&r);
}

static void test_app_passwords(void)
{
    session app;
    char pw[32], body[128];
    resp r = post(pds.port, "com.atproto.server.createAppPassword", alice.access,
                  "{\"name\":\"phone\"}");
    T_EQ(r.status, 200);
    snprintf(pw, sizeof pw, "%s", jstr(&r, "password"));
    T_EQ(strlen(pw), 19);
    T_TRUE(pw[4] == '-' && pw[9] == '-' && pw[14] == '-');
    T_STREQ(jstr(&r, "name"), "phone");
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.createAppPassword", alice.access,
             "{\"name\":\"phone\"}");
    T_EQ(r.status, 400);
    resp_free(&r);
    r = login(pds.port, "alice.test", pw);
    T_TRUE(session_from(&r, &app));
    resp_free(&r);
    r = get(pds.port, "/xrpc/com.atproto.server.getSession", app.access);
    T_EQ(r.status, 200);
    T_TRUE(cJSON_GetObjectItem(r.json, "email") == NULL); /* not shown to app passwords */
    resp_free(&r);
    /* App passwords cannot manage app passwords or the account. */
    r = post(pds.port, "com.atproto.server.createAppPassword", app.access, "{\"name\":\"x\"}");
    T_ERR(r, 401, "InvalidToken");
    resp_free(&r);
    r = get(pds.port, "/xrpc/com.atproto.server.listAppPasswords", app.access);
    T_ERR(r, 401, "InvalidToken");
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.deactivateAccount", app.access, "{}");
    T_ERR(r, 401, "InvalidToken");
    resp_free(&r);
    r = get(pds.port, "/xrpc/com.atproto.server.listAppPasswords", alice.access);
    T_EQ(r.status, 200);
    T_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "passwords")), 1);
    T_TRUE(r.text && strstr(r.text, "\"name\":\"phone\"") && !strstr(r.text, pw));
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.revokeAppPassword", alice.access,
             "{\"name\":\"phone\"}");
    T_EQ(r.status, 200);
    resp_free(&r);
    r = login(pds.port, "alice.test", pw);
    T_ERR(r, 401, "AuthenticationRequired");
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.refreshSession", app.refresh, NULL);
    T_ERR(r, 400, "ExpiredToken");
    resp_free(&r);
    snprintf(body, sizeof body, "{\"name\":\"\"}");
    r = post(pds.port, "com.atproto.server.createAppPassword", alice.access, body);
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
}

static void test_account_status(void)
{
    resp r = get(pds.port, "/xrpc/com.atproto.server.checkAccountStatus", alice.access);
    T_EQ(r.status, 200);
    T_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "activated")));
#ifdef PDS_HAVE_ACTOR_STORE
    T_TRUE(strlen(jstr(&r, "repoCommit")) > 10); /* the actor store made the empty repo */
#else
    T_STREQ(jstr(&r, "repoCommit"), ""); /* built without the actor store: no repo yet */
#endif
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.deactivateAccount", alice.access, "{}");
    T_EQ(r.status, 200);
    resp_free(&r);
    r = get(pds.port, "/xrpc/com.atproto.server.checkAccountStatus", alice.access);
    T_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(r.json, "activated")));
    resp_free(&r);
    r = login(pds.port, "alice.test", "hunter22");
    T_EQ(r.status, 200);
    T_STREQ(jstr(&r, "status"), "deactivated");
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.activateAccount", alice.access, NULL);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = get(pds.port, "/xrpc/com.atproto.server.checkAccountStatus", alice.access);
    T_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "activated")));
    resp_free(&r);
}

static void test_request_errors(void)
{
    char *big;
    resp r = post(pds.port, "com.atproto.server.createSession", NULL, "{not json");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.createSession", NULL, "[1,2]");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = post(pds.port, "com.example.nothing", NULL, "{}");
    T_ERR(r, 501, "MethodNotImplemented");
    resp_free(&r);
    r = get(pds.port, "/xrpc/com.atproto.server.createSession", NULL);
    T_EQ(r.status, 400);
    resp_free(&r);
    /* 2 MiB of JSON: over the JSON limit (1 MiB), under the blob limit the server enforces. */
    big = malloc(2u << 20);
    memset(big, ' ', 2u << 20);
    big[0] = '{', big[(2u << 20) - 1] = '}';
    r = call(pds.port, "POST", "/xrpc/com.atproto.server.createSession", NULL, big, 2u << 20,
             NULL);
    T_ERR(r, 413, "PayloadTooLarge");
    resp_free(&r);
    /* 6 MiB: past the server's own body bound. */
    big = realloc(big, 6u << 20);
    memset(big, ' ', 6u << 20);
    r = call(pds.port, "POST", "/xrpc/com.atproto.server.createSession", NULL, big, 6u << 20,
             NULL);
    T_EQ(r.status, 413);
    resp_free(&r);
    free(big);
}

/* ---- the strict daemon: invites required, rate limits, 3 s access tokens, no grace ---- */

static session carol;

static void test_invites(void)
{
    char code[128], body[256];
    resp r = create_account(strict.port, "carol.test", "carol@example.com", "pw-carol", NULL);
    T_ERR(r, 400, "InvalidInviteCode");
    resp_free(&r);
    r = create_account(strict.port, "carol.test", "carol@example.com", "pw-carol", "nope-1");
    T_ERR(r, 400, "InvalidInviteCode");
    resp_free(&r);
    r = post(strict.port, "com.atproto.server.createInviteCode", NULL, "{\"useCount\":1}");
    T_ERR(r, 401, "AuthMissing");
    resp_free(&r);
    /* admin:wrong */
    r = post(strict.port, "com.atproto.server.createInviteCode", "Basic YWRtaW46d3Jvbmc=",
             "{\"useCount\":1}");
    T_ERR(r, 401, "AuthenticationRequired");
    resp_free(&r);
    /* admin:adminpw */
    r = post(strict.port, "com.atproto.server.createInviteCode", "Basic YWRtaW46YWRtaW5wdw==",
             "{\"useCount\":0}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = post(strict.port, "com.atproto.server.createInviteCode", "Basic YWRtaW46YWRtaW5wdw==",
             "{\"useCount\":1}");
    T_EQ(r.status, 200);
    snprintf(code, sizeof code, "%s", jstr(&r, "code"));
    T_TRUE(strncmp(code, "localhost-", 10) == 0);
    resp_free(&r);
    r = create_account(strict.port, "carol.test", "carol@example.com", "pw-carol", code);
    T_TRUE(session_from(&r, &carol));
    resp_free(&r);
    r = create_account(strict.port, "dave.test", "dave@example.com", "pw-dave", code);
    T_ERR(r, 400, "InvalidInviteCode"); /* used up */
    resp_free(&r);
    snprintf(body, sizeof body, "{\"codeCount\":2,\"useCount\":3,\"forAccounts\":[\"%s\"]}",
             carol.did);
    r = post(strict.port, "com.atproto.server.createInviteCodes", "Basic YWRtaW46YWRtaW5wdw==",
             body);
    T_EQ(r.status, 200);
    T_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(
             cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "codes"), 0), "codes")), 2);
    resp_free(&r);
    /* A fresh session: carol's first access token may have expired (3 s) by now. */
    r = login(strict.port, "carol.test", "pw-carol");
    T_TRUE(session_from(&r, &carol));
    resp_free(&r);
    r = get(strict.port, "/xrpc/com.atproto.server.getAccountInviteCodes", carol.access);
    T_EQ(r.status, 200);
    T_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "codes")), 2);
    resp_free(&r);
}

/* The official client (@atproto/api AtpAgent) on the strict daemon: its refresh-on-expiry
 * logic meets our 3 s access tokens. */
static void test_official_client(void)
{
    char cmd[1024], code[128];
    resp r = post(strict.port, "com.atproto.server.createInviteCode", "Basic YWRtaW46YWRtaW5wdw==",
                  "{\"useCount\":1}");
    snprintf(code, sizeof code, "%s", jstr(&r, "code"));
    resp_free(&r);
    snprintf(cmd, sizeof cmd, "%s %s/pds/tests/pds_interop.mjs http://127.0.0.1:%u "
             "%s/tests/interop %d %s 2>&1", ATP_NODE, ATP_SOURCE_DIR, strict.port,
             ATP_SOURCE_DIR, (int)getpid() % 100000, code);
    t_node_ok(cmd);
}

static void test_expiry_and_rotation(void)
{
    session s, s2;
    resp r = login(strict.port, "carol.test", "pw-carol");
    T_TRUE(session_from(&r, &s));
    resp_free(&r);
    t_sleep_ms(3200); /* access tokens live 3 s here (1 s is too short under ASan) */
    r = get(strict.port, "/xrpc/com.atproto.server.getSession", s.access);
    T_ERR(r, 400, "ExpiredToken"); /* what @atproto/api refreshes on */
    resp_free(&r);
    r = post(strict.port, "com.atproto.server.refreshSession", s.refresh, NULL);
    T_TRUE(session_from(&r, &s2));
    resp_free(&r);
    r = get(strict.port, "/xrpc/com.atproto.server.getSession", s2.access);
    T_EQ(r.status, 200);
    resp_free(&r);
    /* No grace configured: the rotated token is refused at once. */
    r = post(strict.port, "com.atproto.server.refreshSession", s.refresh, NULL);
    T_ERR(r, 400, "ExpiredToken");
    resp_free(&r);
    r = post(strict.port, "com.atproto.server.refreshSession", s2.refresh, NULL);
    T_EQ(r.status, 200);
    resp_free(&r);
}

static void test_rate_limit(void)
{
    int allowed = 0;
    resp r;
    memset(&r, 0, sizeof r);
    for (int i = 0; i < 10; i++) {
        r = login(strict.port, "carol.test", "wrong-password");
        if (r.status != 401) {
            break;
        }
        T_STREQ(r.ratelimit_limit, " 5\r\n");
        allowed++;
        resp_free(&r);
    }
    T_ERR(r, 429, "RateLimitExceeded");
    T_TRUE(allowed <= 5); /* earlier logins in this run used some of the 5 points */
    resp_free(&r);
    /* The unlimited daemon never says 429. */
    for (int i = 0; i < 8; i++) {
        r = login(pds.port, "alice.test", "wrong-password");
        T_EQ(r.status, 401);
        resp_free(&r);
    }
}

/* Child side: the expected configuration errors stay out of the test output. */
static void quiet(void)
{
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) {
        dup2(fd, 2);
        close(fd);
    }
}

static void test_config_and_shutdown(void)
{
    static const char *const bad_env[] = {"PDS_JWT_SECRET=", NULL};
    static const char *const bad_port[] = {"PDS_PORT=-1", NULL};
    t_daemon p;
    int st = 0;
    /* exit 78 (EX_CONFIG) on a missing secret or a bad value. */
    p.pid = fork();
    if (p.pid == 0) {
        quiet();
        t_setenv_kv(bad_env[0]);
        setenv("PDS_HOSTNAME", "localhost", 1);
        setenv("PDS_DATA_DIRECTORY", "/tmp", 1);
        setenv("PDS_ADMIN_PASSWORD", "x", 1);
        setenv("PDS_DEV_MODE", "true", 1);
        execl(PDS_BIN, "pds", (char *)NULL);
        _exit(127);
    }
    waitpid(p.pid, &st, 0);
    T_EQ(WEXITSTATUS(st), 78);
    p.pid = fork();
    if (p.pid == 0) {
        quiet();
        t_setenv_kv(bad_port[0]);
        setenv("PDS_JWT_SECRET", "s", 1);
        setenv("PDS_HOSTNAME", "localhost", 1);
        execl(PDS_BIN, "pds", (char *)NULL);
        _exit(127);
    }
    waitpid(p.pid, &st, 0);
    T_EQ(WEXITSTATUS(st), 78);
    /* The secrets never reach the log. */
    char *log = t_read_file(pds.log, NULL);
    T_TRUE(log && strstr(log, "test-secret") == NULL && strstr(log, "adminpw") == NULL);
    free(log);
    T_EQ(t_daemon_stop(&pds, SIGTERM), 0);
    T_EQ(t_daemon_stop(&strict, SIGTERM), 0);
    T_EQ(t_daemon_stop(&plc, SIGTERM), 0);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_pds.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return 1;
    }
    T_RUN(test_start);
    if (plc.port && pds.port && strict.port) {
        T_RUN(test_describe_and_health);
        T_RUN(test_create_account);
        T_RUN(test_create_account_refusals);
        T_RUN(test_login);
        T_RUN(test_get_session_auth);
        T_RUN(test_refresh_rotation);
        T_RUN(test_app_passwords);
        T_RUN(test_account_status);
        T_RUN(test_request_errors);
        T_RUN(test_invites);
        T_RUN(test_official_client);
        T_RUN(test_expiry_and_rotation);
        T_RUN(test_rate_limit);
        T_RUN(test_config_and_shutdown);
    }
    t_daemon_stop(&pds, SIGKILL);
    t_daemon_stop(&strict, SIGKILL);
    t_daemon_stop(&plc, SIGKILL);
    t_cleanup();
    return t_done();
}
