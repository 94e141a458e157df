/* test_pds_identity: updateHandle, getRecommendedDidCredentials, the PLC operation flow
 * (requestPlcOperationSignature, signPlcOperation, submitPlcOperation), getServiceAuth and
 * reserveSigningKey. First the pure op handling of plc_ops.h, then plc + pds daemons on
 * 127.0.0.1 over raw HTTP (every rejection rule), then the official @atproto/api client with
 * @did-plc/lib and @atproto/crypto checking the effects (identity_interop.mjs). */
#include <curl/curl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "atp/plc.h"
#include "daemon_spawn.h"
#include "t.h"

#include "pds_client.h"
#include "plc_ops.h"

#define ROT_HEX "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d"
#define ROT_DID "did:key:zQ3shvA3fRxgA33JGkVjpgPLnhFH54wUx7Awi1TVvrdnfYJSZ"
#define SIG_DID "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"
#define PREV "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
#define SIG86 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define ADMIN "Basic YWRtaW46YWRtaW5wdw=="

/* ---- pure op handling ---- */

static atp_slice rot_keys[1] = {{(const uint8_t *)ROT_DID, sizeof ROT_DID - 1}};
static atp_slice akas[2] = {{(const uint8_t *)"https://x.example", 17},
                            {(const uint8_t *)"at://alice.test", 15}};
static atp_plc_vm vms[1] = {{{(const uint8_t *)"atproto", 7}, {(const uint8_t *)SIG_DID, 57}}};
static atp_plc_service svcs[1] = {{{(const uint8_t *)"atproto_pds", 11},
                                   {(const uint8_t *)"AtprotoPersonalDataServer", 25},
                                   {(const uint8_t *)"http://localhost:2583", 21}}};

static atp_plc_op last_op(void)
{
    atp_plc_op op = {.type = ATP_PLC_OPERATION, .rotation_keys = rot_keys, .n_rotation_keys = 1,
                     .vms = vms, .n_vms = 1, .aka = akas, .n_aka = 2, .services = svcs,
                     .n_services = 1};
    return op;
}

static int build(atp_arena *a, const char *body, atp_plc_op *out, atp_err *err)
{
    atp_plc_op last = last_op();
    return pds_plc_update_build(a, &last, atp_slice_str(body), atp_slice_str(PREV), NULL, out,
                                err);
}

static void test_update_build(void)
{
    atp_arena *a = atp_arena_create(0);
    atp_plc_op op;
    atp_err err;
    atp_err_clear(&err);
    /* Nothing given: the last op's fields, new prev, no sig. */
    T_OK(build(a, "{\"token\":\"ABCDE-FGHIJ\"}", &op, &err));
    T_EQ(op.type, ATP_PLC_OPERATION);
    T_TRUE(atp_slice_eq_str(op.prev, PREV));
    T_EQ(op.sig.len, 0);
    T_EQ(op.n_aka, 2);
    T_EQ(op.n_rotation_keys, 1);
    T_TRUE(atp_slice_eq_str(op.services[0].endpoint, "http://localhost:2583"));
    /* A field given replaces the whole field; null means absent. */
    T_OK(build(a, "{\"rotationKeys\":[\"" SIG_DID "\",\"" ROT_DID "\"],\"alsoKnownAs\":null}",
               &op, &err));
    T_EQ(op.n_rotation_keys, 2);
    T_TRUE(atp_slice_eq_str(op.rotation_keys[0], SIG_DID));
    T_EQ(op.n_aka, 2);
    T_OK(build(a, "{\"services\":{\"b\":{\"type\":\"T\",\"endpoint\":\"https://b.example\"}}}",
               &op, &err));
    T_EQ(op.n_services, 1);
    T_TRUE(atp_slice_eq_str(op.services[0].name, "b"));
    /* Rejections: every one names its field or the shape. */
    T_EQ(build(a, "[1]", &op, &err), ATP_EINVAL);
    T_EQ(build(a, "not json", &op, &err), ATP_EINVAL);
    T_EQ(build(a, "{\"rotationKeys\":\"x\"}", &op, &err), ATP_EINVAL);
    T_EQ(build(a, "{\"rotationKeys\":[\"did:key:bogus\"]}", &op, &err), ATP_EINVAL);
    T_EQ(build(a, "{\"verificationMethods\":{\"atproto\":5}}", &op, &err), ATP_EINVAL);
    T_EQ(build(a, "{\"services\":{\"x\":{\"type\":\"T\"}}}", &op, &err), ATP_EINVAL);
    T_EQ(build(a, "{\"alsoKnownAs\":[1]}", &op, &err), ATP_EINVAL);
    /* 11 rotation keys: over the directory's limit of 10. */
    char big[2048];
    size_t n = (size_t)snprintf(big, sizeof big, "{\"rotationKeys\":[\"%s\"", ROT_DID);
    for (int i = 1; i < 11; i++) {
        n += (size_t)snprintf(big + n, sizeof big - n, ",\"%s\"", ROT_DID);
    }
    snprintf(big + n, sizeof big - n, "]}");
    T_TRUE(build(a, big, &op, &err) < 0);
    atp_arena_destroy(a);
}

static void test_update_build_limit(void)
{
    atp_arena *a = atp_arena_create(0);
    atp_plc_op op, last = last_op();
    atp_plc_limits lim = atp_plc_limits_default;
    atp_err err;
    lim.max_json = 16;
    T_EQ(pds_plc_update_build(a, &last, atp_slice_str("{\"token\":\"ABCDE-FGHIJ\"}"),
                              atp_slice_str(PREV), &lim, &op, &err),
         ATP_ELIMIT);
    atp_arena_destroy(a);
}

static void test_handle_op(void)
{
    atp_arena *a = atp_arena_create(0);
    atp_plc_op op, last = last_op();
    char longh[300];
    atp_err err;
    /* The first at:// entry is replaced in place. */
    T_OK(pds_plc_handle_op(a, &last, atp_slice_str("bob.test"), atp_slice_str(PREV), NULL, &op,
                           &err));
    T_EQ(op.n_aka, 2);
    T_TRUE(atp_slice_eq_str(op.aka[0], "https://x.example"));
    T_TRUE(atp_slice_eq_str(op.aka[1], "at://bob.test"));
    T_TRUE(atp_slice_eq_str(op.prev, PREV));
    T_EQ(op.sig.len, 0);
    /* None yet: the handle goes first. */
    last.n_aka = 1;
    T_OK(pds_plc_handle_op(a, &last, atp_slice_str("bob.test"), atp_slice_str(PREV), NULL, &op,
                           &err));
    T_EQ(op.n_aka, 2);
    T_TRUE(atp_slice_eq_str(op.aka[0], "at://bob.test"));
    memset(longh, 'a', sizeof longh);
    T_EQ(pds_plc_handle_op(a, &last, atp_slice_make(longh, 260), atp_slice_str(PREV), NULL, &op,
                           &err),
         ATP_ELIMIT);
    atp_arena_destroy(a);
}

static char *submit_json(const char *rot, const char *vm, const char *aka, const char *type,
                         const char *endpoint)
{
    static char s[2048];
    snprintf(s, sizeof s,
             "{\"type\":\"plc_operation\",\"rotationKeys\":[\"%s\"],\"verificationMethods\":"
             "{\"atproto\":\"%s\"},\"alsoKnownAs\":[\"%s\"],\"services\":{\"atproto_pds\":"
             "{\"type\":\"%s\",\"endpoint\":\"%s\"}},\"prev\":\"" PREV "\",\"sig\":\"" SIG86
             "\"}",
             rot, vm, aka, type, endpoint);
    return s;
}

static int submit(const char *json, atp_err *err)
{
    atp_arena *a = atp_arena_create(0);
    pds_plc_expect want = {atp_slice_str(ROT_DID), atp_slice_str(SIG_DID),
                           atp_slice_str("http://localhost:2583"), atp_slice_str("alice.test")};
    atp_plc_op op;
    int rc;
    atp_err_clear(err);
    rc = pds_plc_submit_parse(a, atp_slice_str(json), &want, NULL, &op, err);
    atp_arena_destroy(a);
    return rc;
}

static void test_submit_parse(void)
{
    const char *pds = "AtprotoPersonalDataServer", *ep = "http://localhost:2583";
    atp_err err;
    T_OK(submit(submit_json(ROT_DID, SIG_DID, "at://alice.test", pds, ep), &err));
    T_EQ(submit(submit_json(SIG_DID, SIG_DID, "at://alice.test", pds, ep), &err), ATP_EINVAL);
    T_STREQ(err.msg, "Rotation keys do not include server's rotation key");
    T_EQ(submit(submit_json(ROT_DID, SIG_DID, "at://alice.test", "Other", ep), &err), ATP_EINVAL);
    T_STREQ(err.msg, "Incorrect type on atproto_pds service");
    T_EQ(submit(submit_json(ROT_DID, SIG_DID, "at://alice.test", pds, "https://x"), &err),
         ATP_EINVAL);
    T_STREQ(err.msg, "Incorrect endpoint on atproto_pds service");
    T_EQ(submit(submit_json(ROT_DID, ROT_DID, "at://alice.test", pds, ep), &err), ATP_EINVAL);
    T_STREQ(err.msg, "Incorrect signing key");
    T_EQ(submit(submit_json(ROT_DID, SIG_DID, "at://bob.test", pds, ep), &err), ATP_EINVAL);
    T_STREQ(err.msg, "Incorrect handle in alsoKnownAs");
    /* Not an op, unsigned, a tombstone. */
    T_EQ(submit("{\"type\":\"plc_operation\"}", &err), ATP_EINVAL);
    T_TRUE(strncmp(err.msg, "Invalid operation", 17) == 0);
    char uns[2048];
    snprintf(uns, sizeof uns, "%s", submit_json(ROT_DID, SIG_DID, "at://alice.test", pds, ep));
    snprintf(strstr(uns, ",\"sig\""), 3, "}");
    T_EQ(submit(uns, &err), ATP_EINVAL);
    T_EQ(submit("{\"type\":\"plc_tombstone\",\"prev\":\"" PREV "\",\"sig\":\"" SIG86 "\"}", &err),
         ATP_EINVAL);
    T_EQ(submit("[]", &err), ATP_EINVAL);
}

/* ---- the daemons ---- */

static t_daemon pds;
static session alice, bob;

static void test_start(void)
{
    static const char *const env[] = {"PDS_INVITE_REQUIRED=false",
                                      "PDS_RATE_LIMITS_ENABLED=false",
                                      "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX=" ROT_HEX, NULL};
    resp r;
    T_TRUE(t_start_plc());
    T_TRUE(start_pds(&pds, "pds", env));
    r = create_account(pds.port, "alice.test", "alice@example.com", "pw-alice", NULL);
    T_TRUE(session_from(&r, &alice));
    resp_free(&r);
    r = create_account(pds.port, "bob.test", "bob@example.com", "pw-bob", NULL);
    T_TRUE(session_from(&r, &bob));
    resp_free(&r);
}

static resp update_handle(const session *s, const char *handle)
{
    cJSON *o = cJSON_CreateObject();
    char *body;
    resp r;
    cJSON_AddStringToObject(o, "handle", handle);
    body = cJSON_PrintUnformatted(o);
    r = post(pds.port, "com.atproto.identity.updateHandle", s->access, body);
    cJSON_free(body);
    cJSON_Delete(o);
    return r;
}

/* GET <plc>/<did>/<what> as JSON. */
static resp plc_get(const char *did, const char *what)
{
    char path[256];
    snprintf(path, sizeof path, "/%s%s", did, what);
    return get(plc.port, path, NULL);
}

/* #identity events sequenced for `did` (read from the daemon's repo_seq). */
static int identity_events(const char *did)
{
    return (int)t_service_int("pds",
                              "SELECT count(*) FROM repo_seq WHERE did = ?1 AND "
                              "event_type = 'identity'",
                              did);
}

static void test_update_handle(void)
{
    int events = identity_events(alice.did);
    resp r = update_handle(&alice, "alice2.test");
    char path[256];
    T_TRUE(events >= 1); /* createAccount's */
    T_EQ(r.status, 200);
    resp_free(&r);
    T_EQ(identity_events(alice.did), events + 1);
    r = get(pds.port, "/xrpc/com.atproto.identity.resolveHandle?handle=alice2.test", NULL);
    T_STREQ(jstr(&r, "did"), alice.did);
    resp_free(&r);
    r = get(pds.port, "/xrpc/com.atproto.identity.resolveHandle?handle=alice.test", NULL);
    T_ERR(r, 400, "HandleNotFound");
    resp_free(&r);
    r = plc_get(alice.did, "/data");
    T_STREQ(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "alsoKnownAs"), 0)->valuestring,
            "at://alice2.test");
    resp_free(&r);
    r = plc_get(alice.did, "/log");
    T_EQ(cJSON_GetArraySize(r.json), 2);
    resp_free(&r);
    r = get(pds.port, "/xrpc/com.atproto.server.getSession", alice.access);
    T_STREQ(jstr(&r, "handle"), "alice2.test");
    resp_free(&r);
    /* Upper case is normalized; the same handle again is accepted without a PLC op. */
    r = update_handle(&alice, "ALICE2.test");
    T_EQ(r.status, 200);
    resp_free(&r);
    T_EQ(identity_events(alice.did), events + 2); /* announced again, as the reference */
    r = plc_get(alice.did, "/log");
    T_EQ(cJSON_GetArraySize(r.json), 2);
    resp_free(&r);
    snprintf(path, sizeof path, "/xrpc/com.atproto.identity.resolveHandle?handle=alice2.test");
    r = get(pds.port, path, NULL);
    T_STREQ(jstr(&r, "did"), alice.did);
    resp_free(&r);
}

static void test_update_handle_refused(void)
{
    int events = identity_events(alice.did);
    resp r = update_handle(&alice, "bob.test");
    T_ERR(r, 400, "HandleNotAvailable");
    resp_free(&r);
    r = update_handle(&alice, "ab.test"); /* label under 3 characters */
    T_ERR(r, 400, "InvalidHandle");
    resp_free(&r);
    r = update_handle(&alice, "a.b.test"); /* more than one label */
    T_ERR(r, 400, "InvalidHandle");
    resp_free(&r);
    r = update_handle(&alice, "alice.local"); /* disallowed TLD */
    T_ERR(r, 400, "InvalidHandle");
    resp_free(&r);
    r = update_handle(&alice, "alice.example.com"); /* not ours and does not resolve */
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = post(pds.port, "com.atproto.identity.updateHandle", alice.access, "{}");
    T_ERR(r, 400, "InvalidHandle");
    resp_free(&r);
    r = post(pds.port, "com.atproto.identity.updateHandle", NULL, "{\"handle\":\"zed.test\"}");
    T_EQ(r.status, 401);
    resp_free(&r);
    /* Nothing changed for bob. */
    r = get(pds.port, "/xrpc/com.atproto.identity.resolveHandle?handle=bob.test", NULL);
    T_STREQ(jstr(&r, "did"), bob.did);
    resp_free(&r);
    T_EQ(identity_events(alice.did), events);
}

static void bad_handle(const char *line, size_t len, int lineno, void *ud)
{
    int *n = ud;
    resp r = update_handle(&bob, line);
    (void)len;
    if (r.status != 400 || strcmp(jstr(&r, "error"), "InvalidHandle") != 0) {
        T_FAILF("line %d '%s': %ld %s", lineno, line, r.status, jstr(&r, "error"));
    }
    (*n)++;
    resp_free(&r);
}

static void test_update_handle_vectors(void)
{
    int n = 0;
    t_each_line(t_shared("interop/syntax/handle_syntax_invalid.txt"), bad_handle, &n);
    t_vectors("handle_syntax_invalid via updateHandle", n);
}

/* An app password session may not change identity. */
static void test_app_password_refused(void)
{
    session app;
    resp r;
    T_TRUE(app_session(pds.port, &bob, "identity-test", &app));
    r = update_handle(&app, "bobby.test");
    T_ERR(r, 401, "InvalidToken");
    resp_free(&r);
    r = post(pds.port, "com.atproto.identity.requestPlcOperationSignature", app.access, NULL);
    T_ERR(r, 401, "InvalidToken");
    resp_free(&r);
    /* Service auth for createAccount needs a privileged app password; protected methods none. */
    r = get(pds.port,
            "/xrpc/com.atproto.server.getServiceAuth?aud=did:web:x.example"
            "&lxm=com.atproto.server.createAccount",
            app.access);
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = get(pds.port, "/xrpc/com.atproto.server.getServiceAuth?aud=did:web:x.example"
                      "&lxm=app.bsky.feed.getTimeline", app.access);
    T_EQ(r.status, 200);
    resp_free(&r);
}

static void test_recommended(void)
{
    resp r = get(pds.port, "/xrpc/com.atproto.identity.getRecommendedDidCredentials",
                 alice.access);
    resp d = plc_get(alice.did, "/data");
    cJSON *svc;
    char url[64];
    T_EQ(r.status, 200);
    T_STREQ(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "rotationKeys"), 0)->valuestring,
            ROT_DID);
    T_STREQ(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "verificationMethods"), "atproto")
                ->valuestring,
            cJSON_GetObjectItem(cJSON_GetObjectItem(d.json, "verificationMethods"), "atproto")
                ->valuestring);
    T_STREQ(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "alsoKnownAs"), 0)->valuestring,
            "at://alice2.test");
    svc = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "services"), "atproto_pds");
    T_STREQ(cJSON_GetObjectItem(svc, "type")->valuestring, "AtprotoPersonalDataServer");
    snprintf(url, sizeof url, "http://localhost:%u", pds.port);
    T_STREQ(cJSON_GetObjectItem(svc, "endpoint")->valuestring, url);
    resp_free(&r);
    resp_free(&d);
    r = get(pds.port, "/xrpc/com.atproto.identity.getRecommendedDidCredentials", NULL);
    T_EQ(r.status, 401);
    resp_free(&r);
}

/* The last token mailed (the default mailer logs each mail). */
static bool last_token(char out[PDS_EMAIL_TOKEN_LEN + 1])
{
    size_t len;
    char *log = t_read_file(pds.log, &len), *p, *hit = NULL;
    for (p = log; p && (p = strstr(p, "token: ")) != NULL; p += 7) {
        hit = p + 7;
    }
    if (hit) {
        memcpy(out, hit, PDS_EMAIL_TOKEN_LEN);
        out[PDS_EMAIL_TOKEN_LEN] = '\0';
    }
    free(log);
    return hit != NULL;
}

static resp sign_op(const session *s, const char *token, const char *fields)
{
    char body[4096];
    snprintf(body, sizeof body, "{\"token\":\"%s\"%s%s}", token, fields[0] ? "," : "", fields);
    return post(pds.port, "com.atproto.identity.signPlcOperation", s->access, body);
}

/* Ages every stored token past its lifetime (the daemon reads the same file). */
static void age_tokens(void)
{
    sqlite3 *db = t_service_db("pds", SQLITE_OPEN_READWRITE);
    T_TRUE(db != NULL);
    T_EQ(sqlite3_exec(db, "UPDATE email_token SET requested_at = '2000-01-01T00:00:00.000Z'",
                      NULL, NULL, NULL),
         SQLITE_OK);
    sqlite3_close(db);
}

static void test_plc_tokens(void)
{
    char tok[PDS_EMAIL_TOKEN_LEN + 1] = "";
    resp r = sign_op(&alice, "", "");
    T_ERR(r, 400, "InvalidRequest"); /* token required */
    resp_free(&r);
    r = sign_op(&alice, "AAAAA-AAAAA", "");
    T_ERR(r, 400, "InvalidToken"); /* none requested */
    resp_free(&r);
    r = post(pds.port, "com.atproto.identity.requestPlcOperationSignature", alice.access, NULL);
    T_EQ(r.status, 200);
    resp_free(&r);
    T_TRUE(last_token(tok));
    r = sign_op(&alice, "AAAAA-AAAAA", "");
    T_ERR(r, 400, "InvalidToken"); /* another one */
    resp_free(&r);
    r = sign_op(&bob, tok, "");
    T_ERR(r, 400, "InvalidToken"); /* someone else's */
    resp_free(&r);
    age_tokens();
    r = sign_op(&alice, tok, "");
    T_ERR(r, 400, "ExpiredToken");
    resp_free(&r);
}

/* request -> sign (with `fields`) -> the signed operation (owned JSON). */
static cJSON *signed_op(const session *s, const char *fields)
{
    char tok[PDS_EMAIL_TOKEN_LEN + 1] = "";
    cJSON *op = NULL;
    resp r = post(pds.port, "com.atproto.identity.requestPlcOperationSignature", s->access, NULL);
    T_EQ(r.status, 200);
    resp_free(&r);
    T_TRUE(last_token(tok));
    for (char *p = tok; *p; p++) {
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p); /* case-insensitive */
    }
    r = sign_op(s, tok, fields);
    T_EQ(r.status, 200);
    op = cJSON_DetachItemFromObject(r.json, "operation");
    resp_free(&r);
    r = sign_op(s, tok, fields);
    T_ERR(r, 400, "InvalidToken"); /* single use */
    resp_free(&r);
    return op;
}

static resp submit_op(const session *s, const cJSON *op)
{
    cJSON *o = cJSON_CreateObject();
    char *body;
    resp r;
    cJSON_AddItemToObject(o, "operation", cJSON_Duplicate(op, true));
    body = cJSON_PrintUnformatted(o);
    r = post(pds.port, "com.atproto.identity.submitPlcOperation", s->access, body);
    cJSON_free(body);
    cJSON_Delete(o);
    return r;
}

static void test_plc_flow(void)
{
    char fields[1024];
    resp r, before = plc_get(alice.did, "/log/last");
    cJSON *op;
    /* Adding a rotation key and a service. */
    snprintf(fields, sizeof fields,
             "\"rotationKeys\":[\"%s\",\"%s\"],\"services\":{\"atproto_pds\":{\"type\":"
             "\"AtprotoPersonalDataServer\",\"endpoint\":\"http://localhost:%u\"},\"extra\":"
             "{\"type\":\"Extra\",\"endpoint\":\"https://extra.example\"}}",
             SIG_DID, ROT_DID, pds.port);
    op = signed_op(&alice, fields);
    T_TRUE(op != NULL);
    T_STREQ(cJSON_GetObjectItem(op, "type")->valuestring, "plc_operation");
    T_TRUE(strlen(cJSON_GetObjectItem(op, "sig")->valuestring) == 86);
    int events = identity_events(alice.did);
    r = submit_op(&alice, op);
    T_EQ(r.status, 200);
    resp_free(&r);
    T_EQ(identity_events(alice.did), events + 1);
    r = plc_get(alice.did, "/data");
    T_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "rotationKeys")), 2);
    T_STREQ(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "rotationKeys"), 0)->valuestring,
            SIG_DID);
    T_TRUE(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "services"), "extra") != NULL);
    resp_free(&r);
    r = plc_get(alice.did, "/log");
    T_EQ(cJSON_GetArraySize(r.json), 3);
    resp_free(&r);
    cJSON_Delete(op);
    /* Two ops signed against the same latest op: the second is a fork that our key (same
     * priority) may not make, so the directory refuses it and the pds says so. */
    cJSON *op1 = signed_op(&alice, ""),
          *op2 = signed_op(&alice, "\"alsoKnownAs\":[\"at://alice2.test\",\"https://x.example\"]");
    r = submit_op(&alice, op1);
    T_EQ(r.status, 200);
    resp_free(&r);
    r = submit_op(&alice, op2);
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    T_EQ(identity_events(alice.did), events + 2); /* none for the refused one */
    r = plc_get(alice.did, "/log");
    T_EQ(cJSON_GetArraySize(r.json), 4);
    resp_free(&r);
    op = op1;
    cJSON_Delete(op2);
    cJSON_Delete(op);
    resp_free(&before);
}

static void test_plc_submit_refused(void)
{
    char fields[512];
    cJSON *op;
    resp r;
    /* Signed by us, but it would move the account away: refused before the directory. */
    snprintf(fields, sizeof fields,
             "\"services\":{\"atproto_pds\":{\"type\":\"AtprotoPersonalDataServer\","
             "\"endpoint\":\"https://elsewhere.example\"}}");
    op = signed_op(&alice, fields);
    r = submit_op(&alice, op);
    T_ERR(r, 400, "InvalidRequest");
    T_STREQ(jstr(&r, "message"), "Incorrect endpoint on atproto_pds service");
    resp_free(&r);
    cJSON_Delete(op);
    op = signed_op(&alice, "\"rotationKeys\":[\"" SIG_DID "\"]");
    r = submit_op(&alice, op);
    T_STREQ(jstr(&r, "message"), "Rotation keys do not include server's rotation key");
    resp_free(&r);
    cJSON_Delete(op);
    op = signed_op(&alice, "\"alsoKnownAs\":[\"at://other.test\"]");
    r = submit_op(&alice, op);
    T_STREQ(jstr(&r, "message"), "Incorrect handle in alsoKnownAs");
    resp_free(&r);
    /* Alice's op submitted by bob: bob's signing key and handle differ. */
    r = submit_op(&bob, op);
    T_STREQ(jstr(&r, "message"), "Incorrect signing key");
    resp_free(&r);
    cJSON_Delete(op);
    r = post(pds.port, "com.atproto.identity.submitPlcOperation", alice.access,
             "{\"operation\":{\"type\":\"plc_operation\"}}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = post(pds.port, "com.atproto.identity.submitPlcOperation", alice.access, "{}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    /* A bad field for signPlcOperation (after the token is spent). */
    r = post(pds.port, "com.atproto.identity.requestPlcOperationSignature", alice.access, NULL);
    resp_free(&r);
    char tok[PDS_EMAIL_TOKEN_LEN + 1] = "";
    T_TRUE(last_token(tok));
    r = sign_op(&alice, tok, "\"rotationKeys\":\"nope\"");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    /* The directory still has 4 ops. */
    r = plc_get(alice.did, "/log");
    T_EQ(cJSON_GetArraySize(r.json), 4);
    resp_free(&r);
}

static resp service_auth(const session *s, const char *query)
{
    char path[2200];
    snprintf(path, sizeof path, "/xrpc/com.atproto.server.getServiceAuth?%s", query);
    return get(pds.port, path, s->access);
}

static void test_service_auth(void)
{
    char q[256];
    long now = (long)time(NULL);
    resp r = service_auth(&bob, "aud=did:web:api.example&lxm=app.bsky.feed.getTimeline");
    T_EQ(r.status, 200);
    T_TRUE(strlen(jstr(&r, "token")) > 100);
    resp_free(&r);
    snprintf(q, sizeof q, "aud=did:web:api.example&lxm=app.bsky.feed.getTimeline&exp=%ld",
             now + 3000);
    r = service_auth(&bob, q);
    T_EQ(r.status, 200);
    resp_free(&r);
    snprintf(q, sizeof q, "aud=did:web:api.example&lxm=app.bsky.feed.getTimeline&exp=%ld",
             now - 5);
    r = service_auth(&bob, q);
    T_ERR(r, 400, "BadExpiration");
    resp_free(&r);
    snprintf(q, sizeof q, "aud=did:web:api.example&lxm=app.bsky.feed.getTimeline&exp=%ld",
             now + 3700);
    r = service_auth(&bob, q);
    T_ERR(r, 400, "BadExpiration");
    resp_free(&r);
    snprintf(q, sizeof q, "aud=did:web:api.example&exp=%ld", now + 120);
    r = service_auth(&bob, q);
    T_ERR(r, 400, "BadExpiration"); /* method-less: a minute at most */
    resp_free(&r);
    r = service_auth(&bob, "aud=did:web:api.example&lxm=com.atproto.server.getSession");
    T_ERR(r, 400, "InvalidRequest"); /* protected */
    resp_free(&r);
    r = service_auth(&bob, "lxm=app.bsky.feed.getTimeline");
    T_ERR(r, 400, "InvalidRequest"); /* aud required */
    resp_free(&r);
    r = service_auth(&bob, "aud=did:web:api.example&exp=soon");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = get(pds.port, "/xrpc/com.atproto.server.getServiceAuth?aud=did:web:api.example", NULL);
    T_EQ(r.status, 401);
    resp_free(&r);
}

/* An invalid DID is refused as getServiceAuth's aud and as reserveSigningKey's did (the
 * very long ones only there: the test client's URLs are bounded). */
static void bad_aud(const char *line, size_t len, int lineno, void *ud)
{
    int *n = ud;
    char *esc = curl_easy_escape(NULL, line, (int)len), q[2048], *body;
    cJSON *o = cJSON_CreateObject();
    resp r;
    snprintf(q, sizeof q, "aud=%s", esc);
    curl_free(esc);
    if (strlen(q) < 400) {
        r = service_auth(&bob, q);
        if (r.status != 400) {
            T_FAILF("aud line %d '%s': %ld", lineno, line, r.status);
        }
        resp_free(&r);
    }
    cJSON_AddStringToObject(o, "did", line);
    body = cJSON_PrintUnformatted(o);
    r = post(pds.port, "com.atproto.server.reserveSigningKey", NULL, body);
    if (r.status != 400) {
        T_FAILF("did line %d '%s': %ld", lineno, line, r.status);
    }
    resp_free(&r);
    cJSON_free(body);
    cJSON_Delete(o);
    (*n)++;
}

static void bad_lxm(const char *line, size_t len, int lineno, void *ud)
{
    int *n = ud;
    char *esc = curl_easy_escape(NULL, line, (int)len), q[2048];
    resp r;
    snprintf(q, sizeof q, "aud=did:web:api.example&lxm=%s", esc);
    curl_free(esc);
    r = service_auth(&bob, q);
    if (r.status != 400) {
        T_FAILF("line %d '%s': %ld", lineno, line, r.status);
    }
    (*n)++;
    resp_free(&r);
}

static void test_service_auth_vectors(void)
{
    int n = 0;
    t_each_line(t_shared("interop/syntax/did_syntax_invalid.txt"), bad_aud, &n);
    t_vectors("did_syntax_invalid as aud and did", n);
    n = 0;
    t_each_line(t_shared("interop/syntax/nsid_syntax_invalid.txt"), bad_lxm, &n);
    t_vectors("nsid_syntax_invalid as lxm", n);
}

/* The lookup createAccount uses (plc_ops.h), on the daemon's own database file: by DID and by
 * did:key, then gone once cleared. */
static void check_reserved_lookup(const char *key_did)
{
    char path[256], got[ATP_DIDKEY_MAX_LEN + 1] = "";
    pds_ctx ctx;
    atp_key *k = NULL;
    memset(&ctx, 0, sizeof ctx);
    snprintf(path, sizeof path, "%s/pds/service.sqlite", tmpdir);
    T_OK(pds_db_open(path, &ctx.db, NULL));
    T_OK(pds_signing_key_reserved(&ctx, "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", &k));
    pds_didkey_format(k, got);
    T_STREQ(got, key_did);
    T_TRUE(atp_key_has_private(k));
    atp_key_destroy(k);
    k = NULL;
    T_OK(pds_signing_key_reserved(&ctx, key_did, &k));
    atp_key_destroy(k);
    T_OK(pds_signing_key_unreserve(&ctx, key_did, "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"));
    T_EQ(pds_signing_key_reserved(&ctx, key_did, &k), ATP_ENOTFOUND);
    T_EQ(pds_signing_key_reserved(&ctx, "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", &k), ATP_ENOTFOUND);
    pds_db_close(ctx.db);
}

static void test_reserve_signing_key(void)
{
    char k1[200];
    resp r = post(pds.port, "com.atproto.server.reserveSigningKey", NULL, "{}");
    T_EQ(r.status, 200);
    T_TRUE(strncmp(jstr(&r, "signingKey"), "did:key:zQ3s", 12) == 0); /* k256 */
    snprintf(k1, sizeof k1, "%s", jstr(&r, "signingKey"));
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.reserveSigningKey", NULL, "{}"); /* a fresh one */
    T_EQ(r.status, 200);
    T_TRUE(strcmp(jstr(&r, "signingKey"), k1) != 0);
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.reserveSigningKey", NULL, NULL); /* no body */
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    /* For a DID: the same key each time. */
    r = post(pds.port, "com.atproto.server.reserveSigningKey", NULL,
             "{\"did\":\"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa\"}");
    snprintf(k1, sizeof k1, "%s", jstr(&r, "signingKey"));
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.reserveSigningKey", NULL,
             "{\"did\":\"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa\"}");
    T_STREQ(jstr(&r, "signingKey"), k1);
    resp_free(&r);
    check_reserved_lookup(k1);
    r = post(pds.port, "com.atproto.server.reserveSigningKey", NULL, "{\"did\":\"nope\"}");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
    r = post(pds.port, "com.atproto.server.reserveSigningKey", NULL, "[]");
    T_ERR(r, 400, "InvalidRequest");
    resp_free(&r);
}

/* The official client end to end (identity_interop.mjs). */
static void test_official_client(void)
{
    char cmd[1536];
    snprintf(cmd, sizeof cmd,
             "%s %s/pds/tests/identity_interop.mjs http://127.0.0.1:%u %s/tests/interop %s %s "
             "%d 2>&1",
             ATP_NODE, ATP_SOURCE_DIR, pds.port, ATP_SOURCE_DIR, plc_url, pds.log,
             (int)getpid() % 100000);
    t_node_ok(cmd);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    T_RUN(test_update_build);
    T_RUN(test_update_build_limit);
    T_RUN(test_handle_op);
    T_RUN(test_submit_parse);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pds-identity-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return 1;
    }
    T_RUN(test_start);
    T_RUN(test_update_handle);
    T_RUN(test_update_handle_refused);
    T_RUN(test_update_handle_vectors);
    T_RUN(test_app_password_refused);
    T_RUN(test_recommended);
    T_RUN(test_plc_tokens);
    T_RUN(test_plc_flow);
    T_RUN(test_plc_submit_refused);
    T_RUN(test_service_auth);
    T_RUN(test_service_auth_vectors);
    T_RUN(test_reserve_signing_key);
    T_RUN(test_official_client);
    t_daemon_stop(&pds, SIGKILL);
    t_daemon_stop(&plc, SIGKILL);
    t_cleanup();
    return t_done();
}
