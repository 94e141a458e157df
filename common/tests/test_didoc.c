/* test_didoc.c: DID document parsing (id, handle claim, #atproto / #atproto_label keys in
 * Multikey and legacy forms, services and the PDS endpoint rule, limits, rejections) and the
 * reference rendering, with the interop signature fixtures' legacy publicKeyMultibase keys. */
#include "t.h"

#include <cjson/cJSON.h>

#include "atp/didoc.h"

#define DID "did:plc:pt7yvrqanufronpndk4qjuiz"
#define MK  "zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm"

static atp_arena *A;

static int parse(const char *json, const char *expect, atp_didoc *d)
{
    atp_err err;
    int rc = atp_didoc_parse(A, atp_slice_str(json), atp_slice_str(expect), NULL, d, &err);
    if (rc != 0) {
        printf("#   (%s)\n", err.msg);
    }
    return rc;
}

#define DOC(aka, vms, svcs)                                                                        \
    "{\"@context\":[\"https://www.w3.org/ns/did/v1\"],\"id\":\"" DID "\",\"alsoKnownAs\":" aka     \
    ",\"verificationMethod\":" vms ",\"service\":" svcs "}"
#define VM(id, type, ctl, key)                                                                     \
    "{\"id\":\"" id "\",\"type\":\"" type "\",\"controller\":\"" ctl                               \
    "\",\"publicKeyMultibase\":\"" key "\"}"
#define SVC(id, type, ep) "{\"id\":\"" id "\",\"type\":\"" type "\",\"serviceEndpoint\":\"" ep "\"}"
#define PDS(ep)           SVC("#atproto_pds", "AtprotoPersonalDataServer", ep)

static void test_spec_doc(void)
{
    atp_didoc d;
    T_OK(parse(DOC("[\"at://alice.example.com\"]", "[" VM(DID "#atproto", "Multikey", DID, MK) "]",
                   "[" PDS("https://pds.example.com") "]"),
               DID, &d));
    T_MEMEQ(d.id.ptr, d.id.len, DID, strlen(DID));
    T_MEMEQ(d.handle.ptr, d.handle.len, "alice.example.com", 17);
    T_TRUE(d.signing.present);
    T_EQ(d.signing.curve, ATP_CURVE_K256);
    T_MEMEQ(d.signing.didkey.ptr, d.signing.didkey.len, "did:key:" MK, strlen("did:key:" MK));
    T_FALSE(d.labeler.present);
    T_MEMEQ(d.pds.ptr, d.pds.len, "https://pds.example.com", 23);
    atp_key *k = NULL;
    T_OK(atp_didoc_key_get(&d.signing, &k, NULL));
    T_TRUE(k != NULL);
    atp_key_destroy(k);
    T_EQ(atp_didoc_key_get(&d.labeler, &k, NULL), ATP_ENOTFOUND);
    /* Relative ids work too; the empty DID expectation skips the id check. */
    T_OK(parse(
        DOC("[]", "[" VM("#atproto", "Multikey", DID, MK) "]",
            "[" SVC(DID "#atproto_pds", "AtprotoPersonalDataServer", "http://localhost:2583") "]"),
        "", &d));
    T_TRUE(d.signing.present);
    T_EQ(d.handle.len, 0);
    T_MEMEQ(d.pds.ptr, d.pds.len, "http://localhost:2583", 21);
}

static void test_handle_claims(void)
{
    atp_didoc d;
    /* The first at:// entry that is a valid handle wins; others are skipped. */
    T_OK(parse(DOC("[\"https://x.com\",\"at://bad_handle\",\"at://a.com/path\",\"at://Bob.Test\","
                   "\"at://c.test\"]",
                   "[]", "[]"),
               DID, &d));
    T_EQ(d.n_aka, 5);
    T_MEMEQ(d.handle.ptr, d.handle.len, "Bob.Test", 8);
    T_OK(parse(DOC("[\"at://\"]", "[]", "[]"), DID, &d));
    T_EQ(d.handle.len, 0);
    T_NE(parse(DOC("[5]", "[]", "[]"), DID, &d), 0);
}

static void test_keys(void)
{
    atp_didoc d;
    /* Wrong controller, unknown type, bad key: the identity is broken (no key), not an error. */
    T_OK(parse(DOC("[]", "[" VM("#atproto", "Multikey", "did:plc:other", MK) "]", "[]"), DID, &d));
    T_FALSE(d.signing.present);
    T_OK(parse(DOC("[]", "[" VM("#atproto", "JsonWebKey2020", DID, MK) "]", "[]"), DID, &d));
    T_FALSE(d.signing.present);
    T_OK(parse(DOC("[]", "[" VM("#atproto", "Multikey", DID, "zQ3shaDj7Mu") "]", "[]"), DID, &d));
    T_FALSE(d.signing.present);
    /* A malformed first #atproto does not fall through to a second one. */
    T_OK(parse(
        DOC("[]",
            "[" VM("#atproto", "Multikey", DID, "zBAD") "," VM("#atproto", "Multikey", DID, MK) "]",
            "[]"),
        DID, &d));
    T_FALSE(d.signing.present);
    /* Labeler key beside the signing key; other ids ignored. */
    T_OK(parse(DOC("[]",
                   "[" VM("#other", "Multikey", DID, "zNope") "," VM("#atproto_label", "Multikey",
                                                                     DID, MK) "]",
                   "[]"),
               DID, &d));
    T_TRUE(d.labeler.present);
    T_FALSE(d.signing.present);
}

/* Legacy verification methods from the interop signature fixtures. */
static void test_legacy_vectors(void)
{
    size_t len;
    char *text = t_read_file(t_shared("interop/crypto/signature-fixtures.json"), &len);
    cJSON *arr = text ? cJSON_Parse(text) : NULL;
    int n = 0;
    T_TRUE(arr != NULL);
    const cJSON *c;
    cJSON_ArrayForEach(c, arr)
    {
        const char *suite = cJSON_GetStringValue(cJSON_GetObjectItem(c, "didDocSuite"));
        const char *mb = cJSON_GetStringValue(cJSON_GetObjectItem(c, "publicKeyMultibase"));
        const char *dk = cJSON_GetStringValue(cJSON_GetObjectItem(c, "publicKeyDid"));
        char doc[1024];
        atp_didoc d;
        snprintf(doc, sizeof(doc),
                 "{\"id\":\"%s\",\"verificationMethod\":[{\"id\":\"#atproto\",\"type\":\"%s\","
                 "\"controller\":\"%s\",\"publicKeyMultibase\":\"%s\"}]}",
                 DID, suite, DID, mb);
        T_OK(parse(doc, DID, &d));
        T_TRUE(d.signing.present);
        T_MEMEQ(d.signing.didkey.ptr, d.signing.didkey.len, dk, strlen(dk));
        /* The same key in Multikey form gives the same result. */
        snprintf(doc, sizeof(doc),
                 "{\"id\":\"%s\",\"verificationMethod\":[{\"id\":\"%s#atproto\",\"type\":"
                 "\"Multikey\",\"controller\":\"%s\",\"publicKeyMultibase\":\"%s\"}]}",
                 DID, DID, DID, dk + 8);
        T_OK(parse(doc, DID, &d));
        T_MEMEQ(d.signing.didkey.ptr, d.signing.didkey.len, dk, strlen(dk));
        n++;
    }
    T_EQ(n, 6);
    t_vectors("crypto/signature-fixtures.json (legacy verification methods)", n);
    cJSON_Delete(arr);
    free(text);
}

static void test_services(void)
{
    static const char *const good[] = {"https://pds.example.com", "http://localhost:2583",
                                       "https://pds.example.com/", "https://[::1]:443",
                                       "https://10.0.0.1"};
    static const char *const bad[] = {"https://pds.example.com/xrpc",
                                      "ftp://x.com",
                                      "https://user@x.com",
                                      "https://x.com?q=1",
                                      "https://",
                                      "https://x.com:0",
                                      "https://x.com:65536",
                                      "https://x.com#f",
                                      "pds.example.com",
                                      "https://x.com:12a"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        T_TRUE(atp_didoc_is_service_url(atp_slice_str(good[i])));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (atp_didoc_is_service_url(atp_slice_str(bad[i]))) {
            T_FAILF("accepted %s", bad[i]);
        }
    }
    atp_didoc d;
    /* Wrong type, bad URL: no PDS. Services list keeps well-formed entries. */
    T_OK(parse(DOC("[]", "[]",
                   "[" SVC("#atproto_pds", "Other", "https://a.com") ",{\"id\":5}," SVC(
                       "#atproto_labeler", "AtprotoLabeler", "https://l.com") "]"),
               DID, &d));
    T_EQ(d.pds.len, 0);
    T_EQ(d.n_services, 2);
    const atp_didoc_service *s = atp_didoc_find_service(&d, "atproto_labeler", "AtprotoLabeler");
    T_TRUE(s && atp_slice_eq_str(s->endpoint, "https://l.com"));
    T_TRUE(atp_didoc_find_service(&d, "atproto_labeler", "X") == NULL);
    T_OK(parse(DOC("[]", "[]", "[" PDS("https://a.com/path") "]"), DID, &d));
    T_EQ(d.pds.len, 0);
}

static void test_rejections(void)
{
    atp_didoc d;
    T_EQ(parse("not json", DID, &d), ATP_EINVAL);
    T_EQ(parse("[]", DID, &d), ATP_EINVAL);
    T_EQ(parse("{}", DID, &d), ATP_EINVAL);
    T_EQ(parse("{\"id\":\"nope\"}", "", &d), ATP_EINVAL);
    T_EQ(parse("{\"id\":\"" DID "\"}", "did:plc:other", &d), ATP_EINVAL);
    T_EQ(parse("{\"id\":\"" DID "\",\"alsoKnownAs\":{}}", DID, &d), ATP_EINVAL);
    T_EQ(parse("{\"id\":\"" DID "\",\"service\":\"x\"}", DID, &d), ATP_EINVAL);
    T_EQ(parse("{\"id\":\"" DID "\",\"id\":\"" DID "\"}", DID, &d), ATP_EINVAL);
    T_OK(parse("{\"id\":\"" DID "\"}", DID, &d));
    /* Limits: size and counts, at the boundary. */
    atp_didoc_limits lim = {200, 2};
    atp_slice two = ATP_SLICE_LIT("{\"id\":\"" DID "\",\"alsoKnownAs\":[\"a\",\"b\"]}");
    atp_slice three = ATP_SLICE_LIT("{\"id\":\"" DID "\",\"alsoKnownAs\":[\"a\",\"b\",\"c\"]}");
    T_OK(atp_didoc_parse(A, two, atp_slice_str(DID), &lim, &d, NULL));
    T_EQ(atp_didoc_parse(A, three, atp_slice_str(DID), &lim, &d, NULL), ATP_ELIMIT);
    lim.max_len = two.len - 1;
    T_EQ(atp_didoc_parse(A, two, atp_slice_str(DID), &lim, &d, NULL), ATP_ELIMIT);
}

static void test_build(void)
{
    atp_slice aka[2] = {ATP_SLICE_LIT("at://alice.example.com"), ATP_SLICE_LIT("https://x")};
    atp_didoc_vm vm[2] = {{ATP_SLICE_LIT("atproto"), ATP_SLICE_LIT("did:key:" MK)},
                          {ATP_SLICE_LIT("other"), ATP_SLICE_LIT("did:key:" MK)}};
    atp_didoc_service svc = {ATP_SLICE_LIT("atproto_pds"),
                             ATP_SLICE_LIT("AtprotoPersonalDataServer"),
                             ATP_SLICE_LIT("https://pds.example.com")};
    atp_didoc_parts p = {ATP_SLICE_LIT(DID), aka, 1, vm, 1, &svc, 1};
    atp_buf b;
    atp_buf_init(&b, 1 << 16);
    atp_didoc_build(&b, &p, 0);
    /* The spec §3 document, byte for byte (compact). */
    const char *want =
        "{\"@context\":[\"https://www.w3.org/ns/did/v1\",\"https://w3id.org/security/multikey/v1\","
        "\"https://w3id.org/security/suites/secp256k1-2019/v1\"],\"id\":\"" DID "\","
        "\"alsoKnownAs\":[\"at://alice.example.com\"],\"verificationMethod\":[{\"id\":\"" DID
        "#atproto\",\"type\":\"Multikey\",\"controller\":\"" DID "\",\"publicKeyMultibase\":\"" MK
        "\"}],\"service\":[{\"id\":\"#atproto_pds\",\"type\":\"AtprotoPersonalDataServer\","
        "\"serviceEndpoint\":\"https://pds.example.com\"}]}";
    T_MEMEQ(b.ptr, b.len, want, strlen(want));
    /* Two k256 methods: one context entry; two aka entries rendered as given. */
    p.n_vms = 2;
    p.n_aka = 2;
    atp_buf_reset(&b);
    atp_didoc_build(&b, &p, 0);
    atp_buf_append_byte(&b, 0);
    const char *s = (const char *)b.ptr;
    T_TRUE(strstr(s, "secp256k1-2019/v1\",\"https") == NULL);
    T_TRUE(strstr(s, "\"at://alice.example.com\",\"https://x\"") != NULL);
    T_TRUE(strstr(s, DID "#other") != NULL);
    /* Empty parts: empty arrays. */
    atp_didoc_parts e = {ATP_SLICE_LIT(DID), NULL, 0, NULL, 0, NULL, 0};
    atp_buf_reset(&b);
    atp_didoc_build(&b, &e, 0);
    atp_buf_append_byte(&b, 0);
    T_TRUE(strstr((const char *)b.ptr,
                  "\"alsoKnownAs\":[],\"verificationMethod\":[],\"service\":[]") != NULL);
    atp_buf_release(&b);
}

int main(void)
{
    A = atp_arena_create(0);
    T_RUN(test_spec_doc);
    T_RUN(test_handle_claims);
    T_RUN(test_keys);
    T_RUN(test_legacy_vectors);
    T_RUN(test_services);
    T_RUN(test_rejections);
    T_RUN(test_build);
    atp_arena_destroy(A);
    return t_done();
}
