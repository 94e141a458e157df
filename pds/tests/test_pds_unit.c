/* test_pds_unit: the pds daemon's pure parts and its service database, without a server. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "acct_cache.h"
#include "config.h"
#include "db.h"
#include "password.h"
#include "ratelimit.h"
#include "t.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void test_password_hash(void)
{
    char h[PDS_PW_HASH_LEN], h2[PDS_PW_HASH_LEN], bad[PDS_PW_HASH_LEN];
    char big[PDS_PASSWORD_MAX + 2];
    double t0 = now_ms();
    T_OK(pds_password_hash("correct horse", 13, h));
    printf("# scrypt N=2^14 r=8 p=1: %.1f ms per hash\n", now_ms() - t0);
    T_TRUE(strncmp(h, "$scrypt$ln=14,r=8,p=1$", 22) == 0);
    T_EQ(strlen(h), 22 + 32 + 1 + 128);
    T_TRUE(pds_password_verify("correct horse", 13, h));
    T_FALSE(pds_password_verify("correct horsf", 13, h));
    T_FALSE(pds_password_verify("correct hors", 12, h));
    T_FALSE(pds_password_verify("", 0, h));
    /* Salted: the same password hashes differently. */
    T_OK(pds_password_hash("correct horse", 13, h2));
    T_TRUE(strcmp(h, h2) != 0);
    T_TRUE(pds_password_verify("correct horse", 13, h2));
    /* Length rules. */
    memset(big, 'a', sizeof big);
    T_EQ(pds_password_hash(big, PDS_PASSWORD_MAX + 1, h2), ATP_EINVAL);
    T_EQ(pds_password_hash("", 0, h2), ATP_EINVAL);
    T_OK(pds_password_hash(big, PDS_PASSWORD_MAX, h2));
    /* Malformed stored strings never verify. */
    static const char *const broken[] = {"", "salt:hash", "$scrypt$ln=14,r=8,p=1$", "$bcrypt$x",
                                         "$scrypt$ln=9,r=8,p=1$00$00", "$scrypt$ln=21,r=8,p=1$a$b"};
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        T_FALSE(pds_password_verify("correct horse", 13, broken[i]));
    }
    T_FALSE(pds_password_verify("correct horse", 13, NULL));
    /* A flipped digit of the key or salt, a truncated key, uppercase hex. */
    memcpy(bad, h, sizeof bad);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
    T_FALSE(pds_password_verify("correct horse", 13, bad));
    memcpy(bad, h, sizeof bad);
    bad[25] = bad[25] == '0' ? '1' : '0';
    T_FALSE(pds_password_verify("correct horse", 13, bad));
    memcpy(bad, h, sizeof bad);
    bad[strlen(bad) - 2] = '\0';
    T_FALSE(pds_password_verify("correct horse", 13, bad));
    /* Other parameters are read from the string: ln=10 (fast) verifies. */
    memcpy(bad, h, sizeof bad);
    bad[12] = '0';
    T_FALSE(pds_password_verify("correct horse", 13, bad)); /* same key, other N: no match */
}

static void test_app_password_format(void)
{
    char pw[PDS_APP_PASS_LEN + 1], pw2[PDS_APP_PASS_LEN + 1];
    pds_app_password_generate(pw);
    pds_app_password_generate(pw2);
    T_EQ(strlen(pw), 19);
    T_TRUE(pds_app_password_shape(pw, 19));
    T_TRUE(strcmp(pw, pw2) != 0);
    T_TRUE(pds_app_password_shape("abcd-efgh-2345-6777", 19));
    T_FALSE(pds_app_password_shape("abcd-efgh-2345-677", 18));
    T_FALSE(pds_app_password_shape("abcd-efgh-2345-6771", 19)); /* '1' not base32 */
    T_FALSE(pds_app_password_shape("ABCD-efgh-2345-6777", 19));
    T_FALSE(pds_app_password_shape("abcdefgh-2345-6777x", 19));
    T_FALSE(pds_app_password_shape("abcd-efgh-2345-67\0" "7", 19));
}

static void test_random_token(void)
{
    char a[64], b[64];
    pds_random_token(a, 32);
    pds_random_token(b, 32);
    T_EQ(strlen(a), 43);
    T_TRUE(strcmp(a, b) != 0);
    T_EQ(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
}

static void test_rate_limit(void)
{
    pds_ratelimit *rl = pds_ratelimit_create(3, 300);
    pds_rl_result r;
    int64_t t = 1000000;
    for (int i = 0; i < 3; i++) {
        pds_ratelimit_take(rl, "1.2.3.4", t, &r);
        T_TRUE(r.allowed);
        T_EQ(r.remaining, 2 - i);
        T_EQ(r.limit, 3);
    }
    pds_ratelimit_take(rl, "1.2.3.4", t, &r);
    T_FALSE(r.allowed);
    T_TRUE(r.reset > t / 1000);
    /* Other keys have their own bucket. */
    pds_ratelimit_take(rl, "5.6.7.8", t, &r);
    T_TRUE(r.allowed);
    /* One point refills every 100 s. */
    pds_ratelimit_take(rl, "1.2.3.4", t + 99000, &r);
    T_FALSE(r.allowed);
    pds_ratelimit_take(rl, "1.2.3.4", t + 101000, &r);
    T_TRUE(r.allowed);
    pds_ratelimit_take(rl, "1.2.3.4", t + 101000, &r);
    T_FALSE(r.allowed);
    /* Many keys: bounded table, still answers. */
    char key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        pds_ratelimit_take(rl, key, t, &r);
        T_TRUE(r.allowed);
    }
    pds_ratelimit_destroy(rl);
}

static void set_base_env(void)
{
    setenv("PDS_HOSTNAME", "pds.example.com", 1);
    setenv("PDS_DATA_DIRECTORY", "/tmp/x", 1);
    setenv("PDS_JWT_SECRET", "s", 1);
    setenv("PDS_ADMIN_PASSWORD", "a", 1);
    setenv("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
           "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d", 1);
}

static void test_config(void)
{
    static pds_config c;
    atp_err err;
    char a0[] = "pds", a1[] = "--port", a2[] = "3000", a3[] = "--log-level=debug",
         b1[] = "--nope";
    char *argv[] = {a0, a1, a2, a3, NULL};
    char *bad_flag[] = {a0, b1, NULL};
    set_base_env();
    T_OK(pds_config_load(1, argv, &c, &err));
    T_EQ(c.port, 2583);
    T_TRUE(c.invite_required && c.rate_limits && !c.dev_mode);
    T_STREQ(c.handle_domains[0], ".pds.example.com");
    T_STREQ(c.blob_dir, "/tmp/x/blocks");
    T_EQ(c.access_ttl, 7200);
    T_EQ(c.refresh_grace, 7200);
    T_OK(pds_config_load(4, argv, &c, &err));
    T_EQ(c.port, 3000);
    T_EQ(c.log_level, ATP_LOG_DEBUG);
    T_EQ(pds_config_load(2, bad_flag, &c, &err), ATP_EINVAL);
    setenv("LOG_ENABLED", "false", 1);
    T_OK(pds_config_load(1, argv, &c, &err));
    T_EQ(c.log_level, ATP_LOG_ERROR);
    T_OK(pds_config_load(4, argv, &c, &err)); /* a flag is read before the rule applies */
    T_EQ(c.log_level, ATP_LOG_ERROR);
    unsetenv("LOG_ENABLED");
    setenv("PDS_DEV_MODE", "true", 1);
    setenv("PDS_SERVICE_HANDLE_DOMAINS", "", 1);
    T_OK(pds_config_load(1, argv, &c, &err));
    T_STREQ(c.handle_domains[0], ".test"); /* dev mode, as the reference */
    setenv("PDS_SERVICE_HANDLE_DOMAINS", "a.com,.b.org", 1);
    T_OK(pds_config_load(1, argv, &c, &err));
    T_EQ(c.n_handle_domains, 2);
    T_STREQ(c.handle_domains[0], ".a.com");
    T_STREQ(c.handle_domains[1], ".b.org");
    unsetenv("PDS_SERVICE_HANDLE_DOMAINS");
    static const char *const bad[][2] = {
        {"PDS_PORT", "70000"},        {"PDS_PORT", "-1"},          {"PDS_INVITE_REQUIRED", "yes"},
        {"PDS_DID_PLC_URL", "ftp://x"}, {"PDS_BLOB_UPLOAD_LIMIT", "0"}, {"LOG_LEVEL", "loud"},
        {"PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX", "abc"}, {"PDS_JWT_SECRET", ""},
        {"PDS_HOSTNAME", ""}, {"PDS_WORKERS", "65"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set_base_env();
        setenv(bad[i][0], bad[i][1], 1);
        T_EQ(pds_config_load(1, argv, &c, &err), ATP_EINVAL);
    }
    set_base_env();
    /* Without dev mode the rotation key is required. */
    unsetenv("PDS_DEV_MODE");
    unsetenv("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX");
    T_EQ(pds_config_load(1, argv, &c, &err), ATP_EINVAL);
    set_base_env();
}

static void test_handle_rules(void)
{
    static pds_config c;
    atp_err err;
    memset(&c, 0, sizeof c);
    memcpy(c.handle_domains[0], ".test", 6);
    memcpy(c.handle_domains[1], ".pds.example.com", 17);
    c.n_handle_domains = 2;
    T_OK(pds_handle_check(&c, "alice.test", &err));
    T_OK(pds_handle_check(&c, "abc.test", &err));
    T_OK(pds_handle_check(&c, "a-b-c.pds.example.com", &err));
    T_OK(pds_handle_check(&c, "abcdefghijklmnopqr.test", &err)); /* 18 */
    T_EQ(pds_handle_check(&c, "abcdefghijklmnopqrs.test", &err), ATP_EINVAL);
    T_EQ(pds_handle_check(&c, "ab.test", &err), ATP_EINVAL);
    T_EQ(pds_handle_check(&c, "a.bc.test", &err), ATP_EINVAL);
    T_EQ(pds_handle_check(&c, "alice.example.com", &err), ATP_EINVAL);
    T_TRUE(strstr(err.msg, "domain") != NULL);
    T_EQ(pds_handle_check(&c, "test", &err), ATP_EINVAL);
    T_EQ(pds_handle_check(&c, ".test", &err), ATP_EINVAL);
    T_EQ(pds_handle_check(&c, "-alice.test", &err), ATP_EINVAL);
    T_EQ(pds_handle_check(&c, "al_ice.test", &err), ATP_EINVAL);
    T_EQ(pds_handle_check(&c, "alicetest", &err), ATP_EINVAL);
}

static pds_account make_account(const char *did, const char *handle, const char *email)
{
    pds_account a;
    memset(&a, 0, sizeof a);
    snprintf(a.did, sizeof a.did, "%s", did);
    snprintf(a.handle, sizeof a.handle, "%s", handle);
    snprintf(a.email, sizeof a.email, "%s", email);
    snprintf(a.password_hash, sizeof a.password_hash, "$scrypt$x");
    snprintf(a.created_at, sizeof a.created_at, "2026-01-01T00:00:00.000Z");
    return a;
}

static void test_db(void)
{
    char dir[] = "/tmp/test_pds_db.XXXXXX", path[64], next[PDS_JTI_MAX + 1];
    pds_db *db = NULL;
    atp_err err;
    pds_account a, got;
    pds_refresh t;
    cJSON *list = NULL;
    T_TRUE(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/service.sqlite", dir);
    T_OK(pds_db_open(path, &db, &err));
    T_EQ(pds_db_schema_version(db), PDS_DB_SCHEMA_VERSION);
    a = make_account("did:plc:aaa", "alice.test", "a@x.com");
    T_OK(pds_db_account_create(db, &a, NULL, &err));
    a = make_account("did:plc:bbb", "alice.test", "b@x.com");
    T_EQ(pds_db_account_create(db, &a, NULL, &err), ATP_ECONFLICT);
    T_STREQ(err.msg, "handle");
    a = make_account("did:plc:bbb", "bob.test", "a@x.com");
    T_EQ(pds_db_account_create(db, &a, NULL, &err), ATP_ECONFLICT);
    T_STREQ(err.msg, "email");
    /* Invites: unknown code, then a code with one use. */
    T_EQ(pds_db_account_create(db, &a, "nope", &err), ATP_ECONFLICT); /* email still taken */
    a = make_account("did:plc:bbb", "bob.test", "b@x.com");
    T_EQ(pds_db_account_create(db, &a, "nope", &err), ATP_EFORBIDDEN);
    T_OK(pds_db_invite_create(db, "code-1", 1, "admin", "admin", "2026-01-01T00:00:00Z"));
    T_EQ(pds_db_invite_create(db, "code-1", 1, "admin", "admin", "x"), ATP_ECONFLICT);
    T_OK(pds_db_account_create(db, &a, "code-1", &err));
    a = make_account("did:plc:ccc", "carol.test", "c@x.com");
    T_EQ(pds_db_account_create(db, &a, "code-1", &err), ATP_EFORBIDDEN);
    T_EQ(pds_db_account_get(db, "did:plc:ccc", &got), ATP_ENOTFOUND); /* rolled back */
    /* Lookups by DID, handle, email. */
    T_OK(pds_db_account_get(db, "did:plc:bbb", &got));
    T_STREQ(got.handle, "bob.test");
    T_OK(pds_db_account_get(db, "b@x.com", &got));
    T_STREQ(got.did, "did:plc:bbb");
    T_OK(pds_db_account_get(db, "alice.test", &got));
    T_EQ(got.status, PDS_ST_ACTIVE);
    T_OK(pds_db_account_set_status(db, "did:plc:aaa", PDS_ST_TAKENDOWN));
    T_OK(pds_db_account_get(db, "alice.test", &got));
    T_EQ(got.status, PDS_ST_TAKENDOWN);
    T_EQ(pds_db_account_set_status(db, "did:plc:zzz", PDS_ST_ACTIVE), ATP_ENOTFOUND);
    /* Refresh rotation: linked once; the second rotation reports the successor. */
    T_OK(pds_db_refresh_add(db, "r1", "did:plc:aaa", NULL, 5000));
    T_OK(pds_db_refresh_rotate(db, "r1", "r2", 9000, 3000, next));
    T_OK(pds_db_refresh_get(db, "r1", &t));
    T_EQ(t.expires_at, 3000);
    T_STREQ(t.next_id, "r2");
    T_EQ(pds_db_refresh_rotate(db, "r1", "r3", 9000, 3000, next), ATP_ECONFLICT);
    T_STREQ(next, "r2");
    T_EQ(pds_db_refresh_get(db, "r3", &t), ATP_ENOTFOUND);
    T_OK(pds_db_refresh_get(db, "r2", &t));
    T_EQ(t.expires_at, 9000);
    T_EQ(pds_db_refresh_rotate(db, "nope", "r4", 1, 1, next), ATP_ENOTFOUND);
    T_OK(pds_db_refresh_purge(db, 4000));
    T_EQ(pds_db_refresh_get(db, "r1", &t), ATP_ENOTFOUND);
    /* App passwords and their refresh tokens. */
    T_OK(pds_db_app_pass_add(db, "did:plc:aaa", "phone", "$h", "2026", false));
    T_EQ(pds_db_app_pass_add(db, "did:plc:aaa", "phone", "$h", "2026", true), ATP_ECONFLICT);
    T_OK(pds_db_refresh_add(db, "ra", "did:plc:aaa", "phone", 99999));
    T_OK(pds_db_app_pass_list(db, "did:plc:aaa", &list));
    T_EQ(cJSON_GetArraySize(list), 1);
    cJSON_Delete(list);
    T_OK(pds_db_app_pass_delete(db, "did:plc:aaa", "phone"));
    T_EQ(pds_db_refresh_get(db, "ra", &t), ATP_ENOTFOUND);
    T_OK(pds_db_account_set_key(db, "did:plc:aaa",
                                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"));
    char hex[65];
    T_OK(pds_db_account_get_key(db, "did:plc:aaa", hex));
    T_EQ(pds_db_account_get_key(db, "did:plc:bbb", hex), ATP_ENOTFOUND);
    pds_db_close(db);
    /* Reopening keeps the data and the schema version. */
    T_OK(pds_db_open(path, &db, &err));
    T_OK(pds_db_account_get(db, "bob.test", &got));
    pds_db_close(db);
    snprintf(path, sizeof path, "rm -rf %s", dir);
    T_EQ(system(path), 0);
}

/* ---- the read pool: reads never wait for a writer, and cannot write ---- */

typedef struct hold {
    pds_db *db;
    volatile int inside; /* the writer's transaction is open */
    int ms;
} hold;

static int hold_fn(void *ctx, sqlite3 *conn, atp_err *err)
{
    hold *h = ctx;
    (void)err;
    int rc = sqlite3_exec(conn, "UPDATE account SET handle = 'held.test' WHERE did = 'did:plc:p1'",
                          NULL, NULL, NULL);
    h->inside = 1;
    usleep((useconds_t)h->ms * 1000);
    return rc == SQLITE_OK ? 0 : ATP_EIO;
}

static void *hold_main(void *arg)
{
    hold *h = arg;
    T_OK(pds_db_txn(h->db, hold_fn, h, NULL));
    return NULL;
}

static int try_write(void *ctx, sqlite3 *conn, atp_err *err)
{
    (void)err;
    *(int *)ctx = sqlite3_exec(conn, "DELETE FROM account", NULL, NULL, NULL);
    return 0;
}

static int takedown_in_txn(void *ctx, sqlite3 *conn, atp_err *err)
{
    (void)ctx, (void)err;
    return sqlite3_exec(conn, "UPDATE account SET status = 'takendown' WHERE did = 'did:plc:kkk'",
                        NULL, NULL, NULL) == SQLITE_OK
               ? 0
               : ATP_EIO;
}

/* The write path's account cache: hits while nothing changes (the same key object), and sees
 * every committed account change at once: a status set through the db calls or by SQL inside
 * pds_db_txn, a new key, a deleted account; unrelated writes keep it. */
static void test_acct_cache(void)
{
    char dir[] = "/tmp/test_pds_acct.XXXXXX", path[64];
    const char hex1[] = "1111111111111111111111111111111111111111111111111111111111111111";
    const char hex2[] = "2222222222222222222222222222222222222222222222222222222222222222";
    pds_db *db = NULL;
    atp_err err;
    pds_status st;
    atp_key *k1 = NULL, *k2 = NULL, *k3 = NULL;
    T_TRUE(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/service.sqlite", dir);
    T_OK(pds_db_open(path, &db, &err));
    pds_account a = make_account("did:plc:kkk", "kay.test", "k@x.com");
    T_OK(pds_db_account_create(db, &a, NULL, &err));
    pds_acct_cache *c = pds_acct_cache_create(db, 8);
    T_EQ(pds_acct_cache_get(c, "did:plc:nobody", &st, &k1), ATP_ENOTFOUND);
    T_OK(pds_acct_cache_get(c, "did:plc:kkk", &st, &k1));
    T_EQ(st, PDS_ST_ACTIVE);
    T_TRUE(k1 == NULL); /* no key stored yet */
    T_OK(pds_db_account_set_key(db, "did:plc:kkk", hex1));
    T_OK(pds_acct_cache_get(c, "did:plc:kkk", &st, &k1));
    T_OK(pds_acct_cache_get(c, "did:plc:kkk", &st, &k2));
    T_TRUE(k1 != NULL && k1 == k2); /* a hit: the same parsed key */
    T_OK(pds_db_refresh_add(db, "jti-1", "did:plc:kkk", "", 1)); /* not an account row */
    T_OK(pds_acct_cache_get(c, "did:plc:kkk", &st, &k3));
    T_TRUE(k3 == k1);
    atp_key_destroy(k2);
    atp_key_destroy(k3);
    T_OK(pds_db_account_set_key(db, "did:plc:kkk", hex2));
    T_OK(pds_acct_cache_get(c, "did:plc:kkk", &st, &k2));
    T_TRUE(k2 != NULL && k2 != k1 && !atp_key_equal_public(k1, k2));
    atp_key_destroy(k2);
    T_OK(pds_db_account_set_status(db, "did:plc:kkk", PDS_ST_DEACTIVATED));
    T_OK(pds_acct_cache_get(c, "did:plc:kkk", &st, &k2));
    T_EQ(st, PDS_ST_DEACTIVATED);
    atp_key_destroy(k2);
    T_OK(pds_db_txn(db, takedown_in_txn, NULL, &err));
    T_OK(pds_acct_cache_get(c, "did:plc:kkk", &st, &k2));
    T_EQ(st, PDS_ST_TAKENDOWN);
    atp_key_destroy(k2);
    T_OK(pds_db_account_set_status(db, "did:plc:kkk", PDS_ST_DELETED));
    T_EQ(pds_acct_cache_get(c, "did:plc:kkk", &st, &k2), ATP_ENOTFOUND);
    pds_acct_cache_destroy(c);
    atp_key_destroy(k1); /* outlived the cache: its own reference */
    pds_db_close(db);
}

static void test_db_pool(void)
{
    char dir[] = "/tmp/test_pds_pool.XXXXXX", path[64];
    pds_db *db = NULL;
    atp_err err;
    pds_account a = make_account("did:plc:p1", "p1.test", "p1@x.com"), got;
    T_TRUE(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/service.sqlite", dir);
    T_OK(pds_db_open(path, &db, &err));
    T_OK(pds_db_account_create(db, &a, NULL, &err));
    T_OK(pds_db_account_get(db, "p1.test", &got)); /* read right after the write sees it */
    int wrc = 0;
    T_OK(pds_db_read(db, try_write, &wrc, NULL));
    T_EQ(wrc & 0xff, SQLITE_READONLY);
    T_OK(pds_db_account_get(db, "did:plc:p1", &got));
    /* A transaction held open 400 ms: reads meanwhile answer from the snapshot before it (a
     * read that waited for the writer would see its change); after its commit they see it. */
    hold h = {db, 0, 400};
    pthread_t th;
    T_EQ(pthread_create(&th, NULL, hold_main, &h), 0);
    while (!h.inside) {
        usleep(1000);
    }
    for (int i = 0; i < 8; i++) {
        T_OK(pds_db_account_get(db, "did:plc:p1", &got));
        T_STREQ(got.handle, "p1.test");
    }
    pthread_join(th, NULL);
    T_OK(pds_db_account_get(db, "did:plc:p1", &got));
    T_STREQ(got.handle, "held.test");
    pds_db_close(db);
    snprintf(path, sizeof path, "rm -rf %s", dir);
    T_EQ(system(path), 0);
}

int main(void)
{
    T_RUN(test_password_hash);
    T_RUN(test_app_password_format);
    T_RUN(test_random_token);
    T_RUN(test_rate_limit);
    T_RUN(test_config);
    T_RUN(test_handle_rules);
    T_RUN(test_db);
    T_RUN(test_db_pool);
    T_RUN(test_acct_cache);
    return t_done();
}
