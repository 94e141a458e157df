/* pds/tests/test_pds_admin.c: com.atproto.admin.* end to end (plc + pds on 127.0.0.1), the
 * takedown store calls in process, the subject parsers, and the official client
 * (pds/tests/admin_interop.mjs) with admin basic auth. */
#include <sqlite3.h>
#include <unistd.h>

#include "pds_client.h"

#include "actor_store.h"
#include "actor_store_admin.h"
#include "atp/json.h"
#include "atp/syntax.h"

#define ADMIN "Basic YWRtaW46YWRtaW5wdw==" /* admin:adminpw */
#define POST_NSID "app.bsky.feed.post"

static t_daemon pds;
static session alice, bob;

/* ---- helpers ---- */

static resp admin_get(const char *nsid, const char *query)
{
    char path[4096];
    snprintf(path, sizeof path, "/xrpc/%s%s%s", nsid, query ? "?" : "", query ? query : "");
    return get(pds.port, path, ADMIN);
}

static resp admin_post(const char *nsid, const char *json)
{
    return post(pds.port, nsid, ADMIN, json);
}

static const cJSON *jpath(const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    return b ? cJSON_GetObjectItemCaseSensitive(v, b) : v;
}

static const char *jpstr(const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = jpath(o, a, b);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int jpbool(const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = jpath(o, a, b);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : -1;
}

/* updateSubjectStatus of an account: takedown (applied, ref or NULL) and/or deactivated
 * (-1 = leave out). */
static resp repo_status(const char *did, int takedown, const char *ref, int deactivated)
{
    char body[1024], td[300] = "", de[64] = "";
    if (takedown >= 0) {
        snprintf(td, sizeof td, ",\"takedown\":{\"applied\":%s%s%s%s}",
                 takedown ? "true" : "false", ref ? ",\"ref\":\"" : "", ref ? ref : "",
                 ref ? "\"" : "");
    }
    if (deactivated >= 0) {
        snprintf(de, sizeof de, ",\"deactivated\":{\"applied\":%s}",
                 deactivated ? "true" : "false");
    }
    snprintf(body, sizeof body,
             "{\"subject\":{\"$type\":\"com.atproto.admin.defs#repoRef\",\"did\":\"%s\"}%s%s}",
             did, td, de);
    return admin_post("com.atproto.admin.updateSubjectStatus", body);
}

static resp subject_status(const char *query)
{
    return admin_get("com.atproto.admin.getSubjectStatus", query);
}

static resp did_status(const char *did)
{
    char q[256];
    snprintf(q, sizeof q, "did=%s", did);
    return subject_status(q);
}

static resp create_post(const session *s, const char *text)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"repo\":\"%s\",\"collection\":\"" POST_NSID "\",\"record\":{\"$type\":\""
             POST_NSID "\",\"text\":\"%s\",\"createdAt\":\"2024-01-01T00:00:00.000Z\"}}",
             s->did, text);
    return post(pds.port, "com.atproto.repo.createRecord", s->access, body);
}

static resp get_record(const char *did, const char *rkey)
{
    char path[512];
    snprintf(path, sizeof path,
             "/xrpc/com.atproto.repo.getRecord?repo=%s&collection=" POST_NSID "&rkey=%s", did,
             rkey);
    return get(pds.port, path, NULL);
}

static bool new_account(const char *handle, const char *pw, session *s)
{
    char email[128];
    snprintf(email, sizeof email, "%.60s@example.com", handle);
    resp r = create_account(pds.port, handle, email, pw, NULL);
    bool ok = session_from(&r, s);
    resp_free(&r);
    return ok;
}

/* A value from the daemon's service database (read-only; WAL lets us read beside it). */
static long long db_int(const char *sql, const char *arg)
{
    return t_service_int("pds", sql, arg);
}

static long long events(const char *did, const char *type)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM repo_seq WHERE did = ?1 AND event_type LIKE '%%%s'", type);
    return db_int(sql, did);
}

/* ---- the parsers (pure) ---- */

static int parse_text(const char *json, pds_status_update *u)
{
    cJSON *b = cJSON_Parse(json);
    atp_err e = {0};
    int rc = b ? pds_status_update_parse(b, u, &e) : -100;
    cJSON_Delete(b);
    return rc;
}

#define CID1 "bafyreih5oovto5mnacsscr4i22azxnpupb26a76jn5zvnqbfmholsdhmge"
#define DID1 "did:plc:6kf3mkt2p56ygxzp77gh3n2r"
#define SR "{\"$type\":\"com.atproto.repo.strongRef\","
#define BR "{\"$type\":\"com.atproto.admin.defs#repoBlobRef\","
#define RR "{\"$type\":\"com.atproto.admin.defs#repoRef\","

static void test_parse_update(void)
{
    pds_status_update u;
    cJSON *j;
    char *txt;
    T_OK(parse_text("{\"subject\":" RR "\"did\":\"" DID1 "\"},\"takedown\":{\"applied\":true,"
                    "\"ref\":\"r1\"}}", &u));
    T_EQ(u.subject.kind, PDS_SUBJECT_REPO);
    T_STREQ(u.subject.did, DID1);
    T_TRUE(u.has_takedown && u.takedown.applied && !u.has_deactivated);
    T_STREQ(u.takedown.ref, "r1");
    T_OK(parse_text("{\"subject\":" SR "\"uri\":\"at://" DID1 "/" POST_NSID "/3k2a\",\"cid\":\""
                    CID1 "\"},\"deactivated\":{\"applied\":false}}", &u));
    T_EQ(u.subject.kind, PDS_SUBJECT_RECORD);
    T_STREQ(u.subject.collection, POST_NSID);
    T_STREQ(u.subject.rkey, "3k2a");
    T_TRUE(u.subject.has_cid && !u.has_takedown && u.has_deactivated && !u.deactivated);
    T_STREQ(u.subject.record_uri, "");
    T_OK(parse_text("{\"subject\":" BR "\"did\":\"" DID1 "\",\"cid\":\"" CID1 "\","
                    "\"recordUri\":\"at://" DID1 "/" POST_NSID "/3k2a\"}}", &u));
    T_EQ(u.subject.kind, PDS_SUBJECT_BLOB);
    T_STREQ(u.subject.record_uri, "at://" DID1 "/" POST_NSID "/3k2a");
    /* formatting gives back the subject */
    j = pds_subject_to_json(&u.subject);
    txt = cJSON_PrintUnformatted(j);
    T_STREQ(txt, BR "\"did\":\"" DID1 "\",\"cid\":\"" CID1 "\",\"recordUri\":\"at://" DID1
                 "/" POST_NSID "/3k2a\"}");
    free(txt);
    cJSON_Delete(j);
}

static void test_parse_rejects(void)
{
    static const char *const bad[] = {
        "{}",                                                         /* no subject */
        "{\"subject\":{\"did\":\"" DID1 "\"}}",                       /* no $type */
        "{\"subject\":{\"$type\":\"x.y#z\",\"did\":\"" DID1 "\"}}",  /* unknown $type */
        "{\"subject\":\"" DID1 "\"}",                                 /* not an object */
        "{\"subject\":" RR "\"did\":\"plc:x\"}}",                     /* bad did */
        "{\"subject\":" RR "\"did\":5}}",                             /* did not a string */
        "{\"subject\":" SR "\"uri\":\"at://" DID1 "/" POST_NSID "/3k\"}}",           /* no cid */
        "{\"subject\":" SR "\"uri\":\"at://" DID1 "/" POST_NSID "/3k\",\"cid\":\"x\"}}", /* cid */
        "{\"subject\":" SR "\"uri\":\"at://alice.test/" POST_NSID "/3k\",\"cid\":\"" CID1 "\"}}",
        "{\"subject\":" SR "\"uri\":\"at://" DID1 "/" POST_NSID "\",\"cid\":\"" CID1 "\"}}",
        "{\"subject\":" SR "\"uri\":\"https://x/y\",\"cid\":\"" CID1 "\"}}",
        "{\"subject\":" BR "\"did\":\"" DID1 "\"}}",                  /* blob without cid */
        "{\"subject\":" BR "\"did\":\"" DID1 "\",\"cid\":\"" CID1 "\",\"recordUri\":\"nope\"}}",
        "{\"subject\":" RR "\"did\":\"" DID1 "\"},\"takedown\":{\"applied\":\"yes\"}}",
        "{\"subject\":" RR "\"did\":\"" DID1 "\"},\"takedown\":{}}",
        "{\"subject\":" RR "\"did\":\"" DID1 "\"},\"takedown\":true}",
        "{\"subject\":" RR "\"did\":\"" DID1 "\"},\"takedown\":{\"applied\":true,\"ref\":1}}",
        "{\"subject\":" RR "\"did\":\"" DID1 "\"},\"deactivated\":{\"applied\":null}}",
    };
    pds_status_update u;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse_text(bad[i], &u);
        if (rc != ATP_EINVAL) {
            T_FAILF("accepted (%d): %s", rc, bad[i]);
        }
    }
}

static void test_parse_limits(void)
{
    char ref[PDS_TAKEDOWN_REF_MAX + 2], body[PDS_TAKEDOWN_REF_MAX + 256];
    pds_status_update u;
    memset(ref, 'r', sizeof ref - 1);
    ref[sizeof ref - 1] = '\0'; /* one byte over */
    snprintf(body, sizeof body, "{\"subject\":" RR "\"did\":\"" DID1 "\"},\"takedown\":"
             "{\"applied\":true,\"ref\":\"%s\"}}", ref);
    T_EQ(parse_text(body, &u), ATP_EINVAL);
    ref[sizeof ref - 2] = '\0'; /* exactly the limit */
    snprintf(body, sizeof body, "{\"subject\":" RR "\"did\":\"" DID1 "\"},\"takedown\":"
             "{\"applied\":true,\"ref\":\"%s\"}}", ref);
    T_OK(parse_text(body, &u));
    T_EQ(strlen(u.takedown.ref), PDS_TAKEDOWN_REF_MAX);
}

static void test_parse_params(void)
{
    pds_subject s;
    atp_slice none = {NULL, 0};
    atp_err e = {0};
    T_OK(pds_subject_from_params(ATP_SLICE_LIT(DID1), none, none, &s, &e));
    T_EQ(s.kind, PDS_SUBJECT_REPO);
    T_OK(pds_subject_from_params(ATP_SLICE_LIT(DID1), none, ATP_SLICE_LIT(CID1), &s, &e));
    T_EQ(s.kind, PDS_SUBJECT_BLOB);
    T_TRUE(s.has_cid);
    T_OK(pds_subject_from_params(none, ATP_SLICE_LIT("at://" DID1 "/" POST_NSID "/3k"), none,
                                 &s, &e));
    T_EQ(s.kind, PDS_SUBJECT_RECORD);
    T_FALSE(s.has_cid);
    T_STREQ(s.rkey, "3k");
    T_EQ(pds_subject_from_params(none, none, ATP_SLICE_LIT(CID1), &s, &e), ATP_EINVAL);
    T_STREQ(e.msg, "Must provide a did to request blob state");
    T_EQ(pds_subject_from_params(none, none, none, &s, &e), ATP_EINVAL);
    T_STREQ(e.msg, "No provided subject");
    T_EQ(pds_subject_from_params(ATP_SLICE_LIT("did:x"), none, none, &s, &e), ATP_EINVAL);
    T_EQ(pds_subject_from_params(ATP_SLICE_LIT(DID1), none, ATP_SLICE_LIT("bafy"), &s, &e),
         ATP_EINVAL);
    T_EQ(pds_subject_from_params(none, ATP_SLICE_LIT("not a uri"), none, &s, &e), ATP_EINVAL);
    T_EQ(pds_subject_from_params(none, ATP_SLICE_LIT("at://" DID1 "/" POST_NSID), none, &s, &e),
         ATP_ENOTFOUND);
    T_EQ(pds_subject_from_params(none, ATP_SLICE_LIT("at://a.test/" POST_NSID "/3k"), none, &s,
                                 &e),
         ATP_ENOTFOUND);
}

/* ---- the store calls, in process ---- */

static void test_store_takedowns(void)
{
    char dir[160];
    pds_actor_store_opts o = {.dir = dir};
    pds_actor_store *s = NULL;
    atp_key *key = NULL;
    atp_arena *a = atp_arena_create(4096);
    atp_err e = {0};
    atp_slice did = ATP_SLICE_LIT("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa");
    atp_slice coll = ATP_SLICE_LIT(POST_NSID), rkey = ATP_SLICE_LIT("3jzfcijpj2z2a");
    atp_cbor *rec = NULL;
    atp_cid blob, rcid;
    pds_takedown t;
    pds_apply_out out;
    pds_commit_info ci;
    snprintf(dir, sizeof dir, "%s/unit/actors", tmpdir);
    T_OKE(pds_actor_store_open(&o, &s, &e), &e);
    T_OKE(atp_key_generate(ATP_CURVE_K256, &key, &e), &e);
    if (!s || !key) {
        goto done;
    }
    T_EQ(pds_actor_store_blob_status(s, did, &blob, &t, &e), ATP_ENOTFOUND); /* no repo */
    T_OKE(pds_actor_store_create_repo(s, did, key, &ci, &e), &e);
    atp_cid_compute(&blob, ATP_CODEC_RAW, ATP_SLICE_LIT("blob bytes"));
    T_EQ(pds_actor_store_blob_status(s, did, &blob, &t, &e), ATP_ENOTFOUND); /* no blob */
    T_EQ(pds_actor_store_blob_takedown(s, did, &blob, "x", &e), ATP_ENOTFOUND);
    T_OKE(pds_actor_store_blob_add(s, did, &blob, ATP_SLICE_LIT("image/png"), 10, &e), &e);
    T_OKE(pds_actor_store_blob_status(s, did, &blob, &t, &e), &e);
    T_FALSE(t.applied);
    T_OKE(pds_actor_store_blob_takedown(s, did, &blob, "ref-b", &e), &e);
    T_OKE(pds_actor_store_blob_status(s, did, &blob, &t, &e), &e);
    T_TRUE(t.applied);
    T_STREQ(t.ref, "ref-b");
    T_OKE(pds_actor_store_blob_takedown(s, did, &blob, NULL, &e), &e);
    T_OKE(pds_actor_store_blob_status(s, did, &blob, &t, &e), &e);
    T_FALSE(t.applied);
    T_STREQ(t.ref, "");
    T_OKE(atp_json_decode(a, ATP_SLICE_LIT("{\"text\":\"x\",\"createdAt\":"
                                           "\"2024-01-01T00:00:00.000Z\"}"),
                          ATP_JSON_DATA, NULL, &rec, &e), &e);
    pds_write w = {.action = ATP_REPO_CREATE, .collection = coll, .rkey = rkey, .record = rec};
    T_OKE(pds_actor_store_apply(s, did, key, &w, 1, PDS_VALIDATE_FALSE, NULL, a, &out, NULL, &e),
          &e);
    T_EQ(pds_actor_store_record_status(s, did, coll, ATP_SLICE_LIT("nope"), &rcid, &t, &e),
         ATP_ENOTFOUND);
    T_OKE(pds_actor_store_record_takedown(s, did, coll, rkey, "ref-r", &e), &e);
    T_OKE(pds_actor_store_record_status(s, did, coll, rkey, &rcid, &t, &e), &e);
    T_TRUE(t.applied && atp_cid_eq(&rcid, &out.results[0].cid));
    T_STREQ(t.ref, "ref-r");
    T_EQ(pds_actor_store_get_record(s, did, coll, rkey, NULL, a, NULL, NULL, NULL, &e),
         ATP_ENOTFOUND); /* reads skip it */
    T_OKE(pds_actor_store_record_takedown(s, did, coll, rkey, NULL, &e), &e);
    T_OKE(pds_actor_store_get_record(s, did, coll, rkey, NULL, a, NULL, NULL, NULL, &e), &e);
    T_EQ(pds_actor_store_record_takedown(s, did, coll, ATP_SLICE_LIT("zz"), "x", &e),
         ATP_ENOTFOUND);
done:
    atp_key_destroy(key);
    pds_actor_store_destroy(s);
    atp_arena_destroy(a);
}

/* ---- the daemon ---- */

static void test_start(void)
{
    T_TRUE(t_start_plc());
    static const char *const env[] = {"PDS_INVITE_REQUIRED=false", NULL};
    T_TRUE(plc.port && start_pds(&pds, "pds", env));
    T_TRUE(pds.port && new_account("alice.test", "pw-alice", &alice));
    T_TRUE(new_account("bob.test", "pw-bob", &bob));
}

static void test_admin_auth(void)
{
    static const char *const gets[] = {"getAccountInfo?did=did:plc:x", "getInviteCodes",
                                       "getSubjectStatus?did=did:plc:x",
                                       "getAccountInfos?dids=did:plc:x"};
    static const char *const posts[] = {"updateSubjectStatus", "deleteAccount",
                                        "updateAccountHandle", "updateAccountEmail",
                                        "updateAccountPassword", "disableInviteCodes",
                                        "enableAccountInvites", "disableAccountInvites",
                                        "sendEmail"};
    char path[128];
    for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) {
        snprintf(path, sizeof path, "/xrpc/com.atproto.admin.%s", gets[i]);
        resp r = get(pds.port, path, NULL);
        T_ERR(r, 401, "AuthMissing");
        resp_free(&r);
        r = get(pds.port, path, "Basic YWRtaW46d3Jvbmc="); /* admin:wrong */
        T_ERR(r, 401, "AuthenticationRequired");
        resp_free(&r);
        r = get(pds.port, path, alice.access); /* a user's token is no admin */
        T_ERR(r, 401, "AuthenticationRequired");
        resp_free(&r);
    }
    for (size_t i = 0; i < sizeof posts / sizeof posts[0]; i++) {
        snprintf(path, sizeof path, "com.atproto.admin.%s", posts[i]);
        resp r = post(pds.port, path, NULL, "{}");
        T_ERR(r, 401, "AuthMissing");
        resp_free(&r);
        r = post(pds.port, path, "Basic dXNlcjphZG1pbnB3", "{}"); /* user:adminpw */
        T_ERR(r, 401, "AuthenticationRequired");
        resp_free(&r);
        r = post(pds.port, path, "Basic YWRtaW46YWRtaW5wdw", "{}"); /* unpadded: accepted */
        T_EQ(r.status == 401, 0);
        resp_free(&r);
    }
}

static void test_account_info(void)
{
    char q[512];
    snprintf(q, sizeof q, "did=%s", alice.did);
    resp r = admin_get("com.atproto.admin.getAccountInfo", q);
    T_EQ(r.status, 200);
    T_STREQ(jstr(&r, "did"), alice.did);
    T_STREQ(jstr(&r, "handle"), "alice.test");
    T_STREQ(jstr(&r, "email"), "alice.test@example.com");
    T_TRUE(atp_syntax_is_datetime(atp_slice_str(jstr(&r, "indexedAt"))));
    T_TRUE(cJSON_IsArray(jpath(r.json, "invites", NULL)));
    T_EQ(jpbool(r.json, "invitesDisabled", NULL), 0);
    T_TRUE(!jpath(r.json, "deactivatedAt", NULL) && !jpath(r.json, "invitedBy", NULL));
    resp_free(&r);
    r = admin_get("com.atproto.admin.getAccountInfo", "did=did:plc:unknownunknownunknown");
    T_ERR(r, 400, "NotFound");
    resp_free(&r);
    r = admin_get("com.atproto.admin.getAccountInfo", NULL);
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = admin_get("com.atproto.admin.getAccountInfo", "did=alice.test");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
}

static void test_account_infos(void)
{
    char q[1024], *p;
    size_t off;
    snprintf(q, sizeof q, "dids=%s&dids=did:plc:nobodynobody&dids=%s", bob.did, alice.did);
    resp r = admin_get("com.atproto.admin.getAccountInfos", q);
    const cJSON *infos;
    T_EQ(r.status, 200);
    infos = jpath(r.json, "infos", NULL);
    T_EQ(cJSON_GetArraySize(infos), 2);
    T_STREQ(jpstr(cJSON_GetArrayItem(infos, 0), "did", NULL), bob.did);
    T_STREQ(jpstr(cJSON_GetArrayItem(infos, 1), "handle", NULL), "alice.test");
    resp_free(&r);
    r = admin_get("com.atproto.admin.getAccountInfos", NULL);
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = admin_get("com.atproto.admin.getAccountInfos", "dids=nope");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    p = atp_xmalloc(101 * 40 + 1); /* one over the limit */
    off = 0;
    for (int i = 0; i < 101; i++) {
        off += (size_t)snprintf(p + off, 41, "%sdids=did:plc:a%07d", i ? "&" : "", i);
    }
    r = admin_get("com.atproto.admin.getAccountInfos", p);
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    free(p);
}

static void test_account_takedown(void)
{
    session s, s2;
    resp r = login(pds.port, "alice.test", "pw-alice");
    long long ev = events(alice.did, "account");
    T_TRUE(session_from(&r, &s));
    resp_free(&r);
    r = repo_status(alice.did, 1, "mod-1", -1);
    T_EQ(r.status, 200);
    T_STREQ(jpstr(r.json, "subject", "did"), alice.did);
    T_STREQ(jpstr(r.json, "subject", "$type"), "com.atproto.admin.defs#repoRef");
    T_STREQ(jpstr(r.json, "takedown", "ref"), "mod-1");
    resp_free(&r);
    T_EQ(events(alice.did, "account"), ev + 1); /* the #account event, with the change */
    T_EQ(db_int("SELECT status = 'takendown' FROM account WHERE did = ?1", alice.did), 1);
    r = did_status(alice.did);
    T_EQ(r.status, 200);
    T_EQ(jpbool(r.json, "takedown", "applied"), 1);
    T_STREQ(jpstr(r.json, "takedown", "ref"), "mod-1");
    T_EQ(jpbool(r.json, "deactivated", "applied"), 0);
    resp_free(&r);
    r = login(pds.port, "alice.test", "pw-alice");
    T_ERR(r, 401, "AccountTakedown");
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.refreshSession", s.refresh, NULL);
    T_ERR(r, 400, "ExpiredToken"); /* sessions revoked with the takedown */
    resp_free(&r);
    r = create_post(&s, "while down");
    T_ERR(r, 401, "AccountTakedown"); /* an access token from before */
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.createAppPassword", s.access, "{\"name\":\"x\"}");
    T_ERR(r, 401, "AccountTakedown");
    resp_free(&r);
    {
        char q[256];
        snprintf(q, sizeof q, "did=%s", alice.did);
        r = admin_get("com.atproto.admin.getAccountInfo", q); /* the admin still sees it */
        T_EQ(r.status, 200);
        resp_free(&r);
    }
    /* restore */
    r = repo_status(alice.did, 0, NULL, -1);
    T_EQ(r.status, 200);
    T_EQ(jpbool(r.json, "takedown", "applied"), 0);
    resp_free(&r);
    T_EQ(events(alice.did, "account"), ev + 2);
    r = did_status(alice.did);
    T_EQ(jpbool(r.json, "takedown", "applied"), 0);
    T_TRUE(jpath(r.json, "takedown", "ref") == NULL);
    resp_free(&r);
    r = login(pds.port, "alice.test", "pw-alice");
    T_TRUE(session_from(&r, &s2));
    resp_free(&r);
    r = create_post(&s2, "back");
    T_EQ(r.status, 200);
    resp_free(&r);
    alice = s2;
}

static void test_takedown_default_ref(void)
{
    resp r = repo_status(bob.did, 1, NULL, -1);
    T_EQ(r.status, 200);
    T_TRUE(jpath(r.json, "takedown", "ref") == NULL); /* the input, echoed */
    resp_free(&r);
    r = did_status(bob.did);
    T_EQ(jpbool(r.json, "takedown", "applied"), 1);
    T_TRUE(atp_syntax_is_datetime(atp_slice_str(jpstr(r.json, "takedown", "ref"))));
    resp_free(&r);
    r = repo_status(bob.did, 0, NULL, -1);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = login(pds.port, "bob.test", "pw-bob");
    T_TRUE(session_from(&r, &bob));
    resp_free(&r);
}

static void test_deactivated_subject(void)
{
    session s;
    resp r;
    T_TRUE(new_account("dora.test", "pw-dora", &s));
    r = repo_status(s.did, -1, NULL, 1);
    T_EQ(r.status, 200);
    T_TRUE(jpath(r.json, "takedown", NULL) == NULL);
    resp_free(&r);
    r = did_status(s.did);
    T_EQ(jpbool(r.json, "deactivated", "applied"), 1);
    T_EQ(jpbool(r.json, "takedown", "applied"), 0);
    resp_free(&r);
    r = create_post(&s, "deactivated");
    T_ERR(r, 401, "AccountDeactivated");
    resp_free(&r);
    /* a takedown over a deactivation, lifted: still deactivated */
    r = repo_status(s.did, 1, "t", -1);
    resp_free(&r);
    T_EQ(db_int("SELECT status = 'takendown' FROM account WHERE did = ?1", s.did), 1);
    r = repo_status(s.did, 0, NULL, -1);
    resp_free(&r);
    T_EQ(db_int("SELECT status = 'deactivated' FROM account WHERE did = ?1", s.did), 1);
    r = repo_status(s.did, -1, NULL, 0);
    resp_free(&r);
    r = did_status(s.did);
    T_EQ(jpbool(r.json, "deactivated", "applied"), 0);
    resp_free(&r);
    r = create_post(&s, "active again");
    T_EQ(r.status, 200);
    resp_free(&r);
    /* nothing to change: 200 and the current status announced, as the reference */
    long long ev = events(s.did, "account");
    r = admin_post("com.atproto.admin.updateSubjectStatus",
                   "{\"subject\":{\"$type\":\"com.atproto.admin.defs#repoRef\",\"did\":\"did:plc:"
                   "nosuchaccountatall\"},\"takedown\":{\"applied\":true}}");
    T_EQ(r.status, 200);
    resp_free(&r);
    r = repo_status(s.did, -1, NULL, -1);
    T_EQ(r.status, 200);
    resp_free(&r);
    T_EQ(events(s.did, "account"), ev + 1);
}

static void test_update_rejects(void)
{
    static const char *const bad[] = {
        "{\"subject\":{\"did\":\"did:plc:abc\"},\"takedown\":{\"applied\":true}}",
        ("{\"subject\":{\"$type\":\"com.atproto.admin.defs#repoRef\",\"did\":\"did:plc:abc\"},"
         "\"takedown\":{\"applied\":\"yes\"}}"),
        "{\"takedown\":{\"applied\":true}}",
        "[1]",
        "not json",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resp r = admin_post("com.atproto.admin.updateSubjectStatus", bad[i]);
        T_ERR(r, 400, "InvalidRequest");
        resp_free(&r);
    }
    resp r = subject_status(NULL);
    T_ERR(r, 400, "InvalidRequest");
    T_STREQ(jstr(&r, "message"), "No provided subject");
    resp_free(&r);
    r = subject_status("did=did:plc:nosuchaccountatall");
    T_ERR(r, 400, "NotFound");
    resp_free(&r);
}

static void test_record_takedown(void)
{
    resp r = create_post(&bob, "to be hidden");
    char uri[512], cid[128], rkey[64], body[1024], q[600];
    T_EQ(r.status, 200);
    snprintf(uri, sizeof uri, "%s", jstr(&r, "uri"));
    snprintf(cid, sizeof cid, "%s", jstr(&r, "cid"));
    snprintf(rkey, sizeof rkey, "%s", strrchr(uri, '/') ? strrchr(uri, '/') + 1 : "");
    resp_free(&r);
    snprintf(q, sizeof q, "uri=%s", uri);
    r = subject_status(q);
    T_EQ(r.status, 200);
    T_EQ(jpbool(r.json, "takedown", "applied"), 0);
    T_STREQ(jpstr(r.json, "subject", "cid"), cid);
    resp_free(&r);
    snprintf(body, sizeof body, "{\"subject\":{\"$type\":\"com.atproto.repo.strongRef\","
             "\"uri\":\"%s\",\"cid\":\"%s\"},\"takedown\":{\"applied\":true,\"ref\":\"rec-1\"}}",
             uri, cid);
    r = admin_post("com.atproto.admin.updateSubjectStatus", body);
    T_EQ(r.status, 200);
    T_STREQ(jpstr(r.json, "subject", "uri"), uri);
    resp_free(&r);
    r = subject_status(q);
    T_EQ(jpbool(r.json, "takedown", "applied"), 1);
    T_STREQ(jpstr(r.json, "takedown", "ref"), "rec-1");
    T_STREQ(jpstr(r.json, "subject", "$type"), "com.atproto.repo.strongRef");
    resp_free(&r);
    r = get_record(bob.did, rkey);
    T_STREQ(jstr(&r, "error"), "RecordNotFound"); /* hidden from readers */
    resp_free(&r);
    snprintf(q, sizeof q, "/xrpc/com.atproto.repo.listRecords?repo=%s&collection=" POST_NSID,
             bob.did);
    r = get(pds.port, q, NULL);
    T_EQ(r.status, 200);
    T_TRUE(r.text && strstr(r.text, rkey) == NULL);
    resp_free(&r);
    snprintf(body, sizeof body, "{\"subject\":{\"$type\":\"com.atproto.repo.strongRef\","
             "\"uri\":\"%s\",\"cid\":\"%s\"},\"takedown\":{\"applied\":false}}", uri, cid);
    r = admin_post("com.atproto.admin.updateSubjectStatus", body);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = get_record(bob.did, rkey);
    T_EQ(r.status, 200);
    T_STREQ(jstr(&r, "cid"), cid);
    resp_free(&r);
    snprintf(q, sizeof q, "uri=%sx", uri);
    r = subject_status(q);
    T_ERR(r, 400, "NotFound");
    resp_free(&r);
    r = subject_status("uri=at://bob.test/" POST_NSID "/3k");
    T_ERR(r, 400, "NotFound");
    resp_free(&r);
    r = subject_status("uri=nope");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
}

static void test_blob_takedown(void)
{
    static const char png[] = "\x89PNG\r\n\x1a\n0000IHDR admin test blob";
    char cid[128], q[512], body[1024];
    resp r = call(pds.port, "POST", "/xrpc/com.atproto.repo.uploadBlob", bob.access, png,
                  sizeof png - 1, "Content-Type: image/png");
    T_EQ(r.status, 200);
    snprintf(cid, sizeof cid, "%s",
             cJSON_GetStringValue(jpath(jpath(r.json, "blob", "ref"), "$link", NULL))
                 ? cJSON_GetStringValue(jpath(jpath(r.json, "blob", "ref"), "$link", NULL))
                 : "");
    resp_free(&r);
    snprintf(q, sizeof q, "did=%s&blob=%s", bob.did, cid);
    r = subject_status(q);
    T_EQ(r.status, 200);
    T_EQ(jpbool(r.json, "takedown", "applied"), 0);
    T_STREQ(jpstr(r.json, "subject", "cid"), cid);
    T_STREQ(jpstr(r.json, "subject", "$type"), "com.atproto.admin.defs#repoBlobRef");
    resp_free(&r);
    snprintf(body, sizeof body, "{\"subject\":{\"$type\":\"com.atproto.admin.defs#repoBlobRef\","
             "\"did\":\"%s\",\"cid\":\"%s\"},\"takedown\":{\"applied\":true,\"ref\":\"b-1\"}}",
             bob.did, cid);
    r = admin_post("com.atproto.admin.updateSubjectStatus", body);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = subject_status(q);
    T_EQ(jpbool(r.json, "takedown", "applied"), 1);
    T_STREQ(jpstr(r.json, "takedown", "ref"), "b-1");
    resp_free(&r);
    snprintf(q, sizeof q, "/xrpc/com.atproto.sync.getBlob?did=%s&cid=%s", bob.did, cid);
    r = get(pds.port, q, NULL);
    T_NE(r.status, 200); /* the blob engineer's getBlob refuses a taken-down blob */
    resp_free(&r);
    snprintf(body, sizeof body, "{\"subject\":{\"$type\":\"com.atproto.admin.defs#repoBlobRef\","
             "\"did\":\"%s\",\"cid\":\"%s\"},\"takedown\":{\"applied\":false}}", bob.did, cid);
    r = admin_post("com.atproto.admin.updateSubjectStatus", body);
    resp_free(&r);
    snprintf(q, sizeof q, "did=%s&blob=%s", bob.did, cid);
    r = subject_status(q);
    T_EQ(jpbool(r.json, "takedown", "applied"), 0);
    resp_free(&r);
    snprintf(q, sizeof q, "blob=%s", cid);
    r = subject_status(q);
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    snprintf(q, sizeof q, "did=did:plc:nosuchaccountatall&blob=%s", cid);
    r = subject_status(q);
    T_ERR(r, 400, "NotFound");
    T_STREQ(jstr(&r, "message"), "Repo not found");
    resp_free(&r);
    snprintf(q, sizeof q, "did=%s&blob=" CID1, bob.did);
    r = subject_status(q);
    T_ERR(r, 400, "NotFound");
    T_STREQ(jstr(&r, "message"), "Subject not found");
    resp_free(&r);
}

static void test_update_handle(void)
{
    char body[512];
    long long ev = events(alice.did, "identity");
    snprintf(body, sizeof body, "{\"did\":\"%s\",\"handle\":\"Alice2.test\"}", alice.did);
    resp r = admin_post("com.atproto.admin.updateAccountHandle", body);
    T_EQ(r.status, 200);
    resp_free(&r);
    T_EQ(events(alice.did, "identity"), ev + 1);
    r = get(pds.port, "/xrpc/com.atproto.identity.resolveHandle?handle=alice2.test", NULL);
    T_STREQ(jstr(&r, "did"), alice.did);
    resp_free(&r);
    snprintf(body, sizeof body, "{\"did\":\"%s\",\"handle\":\"bob.test\"}", alice.did);
    r = admin_post("com.atproto.admin.updateAccountHandle", body);
    T_ERR(r, 400, "InvalidRequest");
    T_STREQ(jstr(&r, "message"), "Handle already taken: bob.test");
    resp_free(&r);
    static const char *const bad[][2] = {{"bad_handle", "InvalidRequest"},
                                         {"ab.test", "InvalidHandle"},
                                         {"x.local", "InvalidHandle"}};
    for (size_t i = 0; i < 3; i++) {
        snprintf(body, sizeof body, "{\"did\":\"%s\",\"handle\":\"%s\"}", alice.did, bad[i][0]);
        r = admin_post("com.atproto.admin.updateAccountHandle", body);
        T_ERR(r, 400, bad[i][1]);
        resp_free(&r);
    }
    r = admin_post("com.atproto.admin.updateAccountHandle",
                   "{\"did\":\"did:plc:nosuchaccountatall\",\"handle\":\"zed.test\"}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = admin_post("com.atproto.admin.updateAccountHandle", "{\"did\":\"did:plc:abc\"}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    /* any valid handle: the admin's is not checked against DNS (allowAnyValid) */
    snprintf(body, sizeof body, "{\"did\":\"%s\",\"handle\":\"alice.example.org\"}", alice.did);
    r = admin_post("com.atproto.admin.updateAccountHandle", body);
    T_EQ(r.status, 200);
    resp_free(&r);
    snprintf(body, sizeof body, "{\"did\":\"%s\",\"handle\":\"alice.test\"}", alice.did);
    r = admin_post("com.atproto.admin.updateAccountHandle", body);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = get(pds.port, "/xrpc/com.atproto.identity.resolveHandle?handle=alice.test", NULL);
    T_STREQ(jstr(&r, "did"), alice.did);
    resp_free(&r);
}

static void test_update_email(void)
{
    char body[512], q[256];
    snprintf(body, sizeof body, "{\"account\":\"%s\",\"email\":\"Alice.New@Example.COM\"}",
             alice.did);
    resp r = admin_post("com.atproto.admin.updateAccountEmail", body);
    T_EQ(r.status, 200);
    resp_free(&r);
    snprintf(q, sizeof q, "did=%s", alice.did);
    r = admin_get("com.atproto.admin.getAccountInfo", q);
    T_STREQ(jstr(&r, "email"), "alice.new@example.com");
    resp_free(&r);
    r = login(pds.port, "alice.new@example.com", "pw-alice");
    T_EQ(r.status, 200);
    resp_free(&r);
    r = admin_post("com.atproto.admin.updateAccountEmail",
                   "{\"account\":\"ALICE.test\",\"email\":\"bob.test@example.com\"}");
    T_ERR(r, 400, "InvalidRequest"); /* bob's */
    T_STREQ(jstr(&r, "message"),
            "This email address is already in use, please use a different one.");
    resp_free(&r);
    r = admin_post("com.atproto.admin.updateAccountEmail",
                   "{\"account\":\"did:plc:nosuchaccountatall\",\"email\":\"z@example.com\"}");
    T_ERR(r, 400, "InvalidRequest");
    T_STREQ(jstr(&r, "message"), "Account does not exist: did:plc:nosuchaccountatall");
    resp_free(&r);
    r = admin_post("com.atproto.admin.updateAccountEmail",
                   "{\"account\":\"alice.test\",\"email\":\"no-at-sign\"}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = admin_post("com.atproto.admin.updateAccountEmail", "{\"account\":\"alice.test\"}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
}

static void test_update_password(void)
{
    char body[600], pw[300];
    session s;
    resp r = login(pds.port, "bob.test", "pw-bob");
    T_TRUE(session_from(&r, &s));
    resp_free(&r);
    snprintf(body, sizeof body, "{\"did\":\"%s\",\"password\":\"pw-bob-2\"}", bob.did);
    r = admin_post("com.atproto.admin.updateAccountPassword", body);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = login(pds.port, "bob.test", "pw-bob");
    T_ERR(r, 401, "AuthenticationRequired");
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.refreshSession", s.refresh, NULL);
    T_ERR(r, 400, "ExpiredToken"); /* every session revoked */
    resp_free(&r);
    r = login(pds.port, "bob.test", "pw-bob-2");
    T_TRUE(session_from(&r, &bob));
    resp_free(&r);
    memset(pw, 'p', 257);
    pw[257] = '\0';
    snprintf(body, sizeof body, "{\"did\":\"%s\",\"password\":\"%s\"}", bob.did, pw);
    r = admin_post("com.atproto.admin.updateAccountPassword", body);
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = admin_post("com.atproto.admin.updateAccountPassword",
                   "{\"did\":\"did:plc:nosuchaccountatall\",\"password\":\"x\"}");
    T_EQ(r.status, 200); /* as the reference */
    resp_free(&r);
    r = admin_post("com.atproto.admin.updateAccountPassword", "{\"password\":\"x\"}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
}

static bool code_for(const char *did, char code[64])
{
    char body[300];
    snprintf(body, sizeof body, "{\"useCount\":2,\"forAccount\":\"%s\"}", did);
    resp r = post(pds.port, "com.atproto.server.createInviteCode", ADMIN, body);
    snprintf(code, 64, "%s", jstr(&r, "code"));
    resp_free(&r);
    return code[0] != '\0';
}

/* `disabled` of `code` among the invites of `did` (-1 if not listed). */
static int code_disabled(const char *did, const char *code)
{
    char q[256];
    const cJSON *it;
    int v = -1;
    snprintf(q, sizeof q, "did=%s", did);
    resp r = admin_get("com.atproto.admin.getAccountInfo", q);
    cJSON_ArrayForEach(it, jpath(r.json, "invites", NULL))
    {
        if (strcmp(jpstr(it, "code", NULL), code) == 0) {
            v = jpbool(it, "disabled", NULL);
        }
    }
    resp_free(&r);
    return v;
}

static void test_invite_codes(void)
{
    char ca[64], cb[64], body[300], q[300];
    T_TRUE(code_for(alice.did, ca) && code_for(bob.did, cb));
    T_EQ(code_disabled(alice.did, ca), 0);
    snprintf(body, sizeof body, "{\"codes\":[\"%s\"]}", ca);
    resp r = admin_post("com.atproto.admin.disableInviteCodes", body);
    T_EQ(r.status, 200);
    resp_free(&r);
    T_EQ(code_disabled(alice.did, ca), 1);
    T_EQ(code_disabled(bob.did, cb), 0);
    snprintf(body, sizeof body, "{\"accounts\":[\"%s\"]}", bob.did);
    r = admin_post("com.atproto.admin.disableInviteCodes", body);
    T_EQ(r.status, 200);
    resp_free(&r);
    T_EQ(code_disabled(bob.did, cb), 1);
    r = admin_post("com.atproto.admin.disableInviteCodes", "{\"accounts\":[\"admin\"]}");
    T_ERR(r, 400, "InvalidRequest");
    T_STREQ(jstr(&r, "message"), "cannot disable admin invite codes");
    resp_free(&r);
    r = admin_post("com.atproto.admin.disableInviteCodes", "{\"codes\":\"x\"}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = admin_post("com.atproto.admin.disableInviteCodes", "{\"codes\":[1]}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    /* account invites switch */
    snprintf(body, sizeof body, "{\"account\":\"%s\"}", alice.did);
    r = admin_post("com.atproto.admin.disableAccountInvites", body);
    T_EQ(r.status, 200);
    resp_free(&r);
    snprintf(q, sizeof q, "did=%s", alice.did);
    r = admin_get("com.atproto.admin.getAccountInfo", q);
    T_EQ(jpbool(r.json, "invitesDisabled", NULL), 1);
    resp_free(&r);
    r = admin_post("com.atproto.admin.enableAccountInvites", body);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = admin_get("com.atproto.admin.getAccountInfo", q);
    T_EQ(jpbool(r.json, "invitesDisabled", NULL), 0);
    resp_free(&r);
    r = admin_post("com.atproto.admin.enableAccountInvites", "{\"account\":\"nope\"}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
}

/* Walks getInviteCodes one code per page; returns how many distinct codes it saw. */
static int walk_codes(const char *sort)
{
    char q[700], cursor[600] = "", last[64] = "";
    int n = 0;
    for (int guard = 0; guard < 50; guard++) {
        snprintf(q, sizeof q, "sort=%s&limit=1%s%s", sort, cursor[0] ? "&cursor=" : "", cursor);
        resp r = admin_get("com.atproto.admin.getInviteCodes", q);
        const cJSON *codes = jpath(r.json, "codes", NULL);
        int size = cJSON_GetArraySize(codes);
        if (r.status != 200 || size == 0) {
            int rc = r.status == 200 ? n : -1;
            resp_free(&r);
            return rc;
        }
        const char *code = jpstr(cJSON_GetArrayItem(codes, 0), "code", NULL);
        n += strcmp(code, last) != 0;
        snprintf(last, sizeof last, "%s", code);
        /* cursors carry ':' only; send them escaped as a client would */
        size_t o = 0;
        for (const char *c = jstr(&r, "cursor"); *c && o + 4 < sizeof cursor; c++) {
            o += (size_t)(*c == ':' ? snprintf(cursor + o, 4, "%%3A")
                                    : snprintf(cursor + o, 2, "%c", *c));
        }
        resp_free(&r);
    }
    return -2;
}

static void test_get_invite_codes(void)
{
    resp r = admin_get("com.atproto.admin.getInviteCodes", NULL);
    int total;
    T_EQ(r.status, 200);
    total = cJSON_GetArraySize(jpath(r.json, "codes", NULL));
    T_TRUE(total >= 2);
    T_TRUE(cJSON_IsArray(jpath(cJSON_GetArrayItem(jpath(r.json, "codes", NULL), 0), "uses", NULL)));
    resp_free(&r);
    T_EQ(walk_codes("recent"), total);
    T_EQ(walk_codes("usage"), total);
    static const char *const bad[] = {"sort=oldest", "limit=0", "limit=501", "limit=x",
                                      "cursor=nocolons"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = admin_get("com.atproto.admin.getInviteCodes", bad[i]);
        T_ERR(r, 400, "InvalidRequest");
        resp_free(&r);
    }
}

/* invitedBy: on a daemon that requires invites (this one does not consume codes). */
static void test_invited_by(void)
{
    static const char *const env[] = {"PDS_INVITE_REQUIRED=true", NULL};
    t_daemon strict;
    char code[64] = "", q[256];
    session owner, s;
    resp r;
    memset(&strict, 0, sizeof strict);
    T_TRUE(start_pds(&strict, "strict", env));
    if (!strict.port) {
        return;
    }
    r = post(strict.port, "com.atproto.server.createInviteCode", ADMIN, "{\"useCount\":1}");
    snprintf(code, sizeof code, "%s", jstr(&r, "code"));
    resp_free(&r);
    r = create_account(strict.port, "owner.test", "owner@example.com", "pw-own", code);
    T_TRUE(session_from(&r, &owner));
    resp_free(&r);
    r = post(strict.port, "com.atproto.server.createInviteCode", ADMIN, "{\"useCount\":1}");
    snprintf(code, sizeof code, "%s", jstr(&r, "code"));
    resp_free(&r);
    r = create_account(strict.port, "invitee.test", "invitee@example.com", "pw-inv", code);
    T_TRUE(session_from(&r, &s));
    resp_free(&r);
    snprintf(q, sizeof q, "/xrpc/com.atproto.admin.getAccountInfo?did=%s", s.did);
    r = get(strict.port, q, ADMIN);
    T_STREQ(jpstr(r.json, "invitedBy", "code"), code);
    T_STREQ(jpstr(r.json, "invitedBy", "forAccount"), "admin");
    T_EQ(jpbool(r.json, "invitedBy", "disabled"), 0);
    T_EQ(cJSON_GetArraySize(jpath(jpath(r.json, "invitedBy", NULL), "uses", NULL)), 1);
    T_STREQ(jpstr(cJSON_GetArrayItem(jpath(jpath(r.json, "invitedBy", NULL), "uses", NULL), 0),
                  "usedBy", NULL),
            s.did);
    resp_free(&r);
    T_EQ(t_daemon_stop(&strict, SIGTERM), 0);
}

static void test_send_email(void)
{
    char body[400];
    snprintf(body, sizeof body, "{\"recipientDid\":\"%s\",\"senderDid\":\"%s\",\"content\":"
             "\"hello from the admin\",\"subject\":\"Note\"}", alice.did, bob.did);
    resp r = admin_post("com.atproto.admin.sendEmail", body);
    T_EQ(r.status, 200);
    T_EQ(jpbool(r.json, "sent", NULL), 1);
    resp_free(&r);
    r = admin_post("com.atproto.admin.sendEmail",
                   "{\"recipientDid\":\"did:plc:nosuchaccountatall\",\"senderDid\":\"did:plc:a\","
                   "\"content\":\"x\"}");
    T_ERR(r, 400, "InvalidRequest");
    T_STREQ(jstr(&r, "message"), "Recipient not found");
    resp_free(&r);
    snprintf(body, sizeof body, "{\"recipientDid\":\"%s\",\"senderDid\":\"%s\"}", alice.did,
             bob.did);
    r = admin_post("com.atproto.admin.sendEmail", body);
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
}

static void test_delete_account(void)
{
    session s;
    char body[300], q[300];
    resp r;
    T_TRUE(new_account("gone.test", "pw-gone", &s));
    snprintf(body, sizeof body, "{\"did\":\"%s\"}", s.did);
    r = admin_post("com.atproto.admin.deleteAccount", body);
    T_EQ(r.status, 200);
    resp_free(&r);
    snprintf(q, sizeof q, "did=%s", s.did);
    r = admin_get("com.atproto.admin.getAccountInfo", q);
    T_ERR(r, 400, "NotFound");
    resp_free(&r);
    r = login(pds.port, "gone.test", "pw-gone");
    T_EQ(r.status, 401);
    resp_free(&r);
    r = admin_post("com.atproto.admin.deleteAccount", body); /* again: nothing left, 200 */
    T_EQ(r.status, 200);
    resp_free(&r);
    r = admin_post("com.atproto.admin.deleteAccount", "{\"did\":\"gone.test\"}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
}

/* The official client: its lexicon checks parse our responses. */
static void test_official_client(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s/pds/tests/admin_interop.mjs http://127.0.0.1:%u "
             "%s/tests/interop adminpw %d 2>&1", ATP_NODE, ATP_SOURCE_DIR, pds.port,
             ATP_SOURCE_DIR, (int)getpid() % 100000);
    t_node_ok(cmd);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_pds_admin.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return 1;
    }
    T_RUN(test_parse_update);
    T_RUN(test_parse_rejects);
    T_RUN(test_parse_limits);
    T_RUN(test_parse_params);
    T_RUN(test_store_takedowns);
    T_RUN(test_start);
    if (plc.port && pds.port) {
        T_RUN(test_admin_auth);
        T_RUN(test_account_info);
        T_RUN(test_account_infos);
        T_RUN(test_account_takedown);
        T_RUN(test_takedown_default_ref);
        T_RUN(test_deactivated_subject);
        T_RUN(test_update_rejects);
        T_RUN(test_record_takedown);
        T_RUN(test_blob_takedown);
        T_RUN(test_update_handle);
        T_RUN(test_update_email);
        T_RUN(test_update_password);
        T_RUN(test_invite_codes);
        T_RUN(test_get_invite_codes);
        T_RUN(test_invited_by);
        T_RUN(test_send_email);
        T_RUN(test_delete_account);
        T_RUN(test_official_client);
        T_EQ(t_daemon_stop(&pds, SIGTERM), 0);
        T_EQ(t_daemon_stop(&plc, SIGTERM), 0);
    }
    t_daemon_stop(&pds, SIGKILL);
    t_daemon_stop(&plc, SIGKILL);
    t_cleanup();
    return t_done();
}
