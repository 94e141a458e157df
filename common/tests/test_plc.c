/* test_plc.c: did:plc ops: the spec's worked example byte for byte, JSON/CBOR round trips,
 * every structural rejection, signatures, DID derivation, history rules (prev chain, removed
 * keys, tombstones, the 72-hour recovery fork), audit-log replay, and the document data. */
#include "t.h"

#include "atp/cbor.h"
#include "atp/multibase.h"
#include "atp/plc.h"
#include "atp/sha256.h"

#define ROT_HEX     "c464761c64ce0fdce18a123ec81686347632bd388ccc41279fb039124239b04d"
#define SIGN_HEX    "780437017d08a32d28137c55e1e1a34e90c8908034bf4e9bafb764c15d0232f6"
#define ROT_DIDKEY  "did:key:zQ3shevRTtL7ceZH3fxtp5hYAah7JDa4VHHQRpwhfMavQA9PH"
#define SIGN_DIDKEY "did:key:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm"
#define EX_SIG                                                                                     \
    "sM0m0JmoRGbhSUWm47hZiIgDNnoxJzFq1dLYUhPvk-YAtMx0Z4vkE2DfCja9TKuQEZ2FMwm-C3pXvxB66lDD1w"
#define EX_CID  "bafyreid476fmmadnbmltl3i2xecncgjbftiwpf7kckbpcqx4pqnqdyckde"
#define EX_DID  "did:plc:pt7yvrqanufronpndk4qjuiz"
#define HOUR_US (3600LL * 1000000)

static atp_arena *A;
static atp_key *keys[4]; /* 0: example rotation key, 1: example signing key, 2, 3: more k256 */
static char didkeys[4][ATP_DIDKEY_MAX_LEN + 1];

static void setup(void)
{
    static const char *hex[4] = {
        ROT_HEX, SIGN_HEX, "1111111111111111111111111111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222222222222222222222222222"};
    A = atp_arena_create(0);
    for (int i = 0; i < 4; i++) {
        atp_buf b;
        T_OK(atp_key_import_private_hex(i == 3 ? ATP_CURVE_P256 : ATP_CURVE_K256,
                                        atp_slice_str(hex[i]), &keys[i], NULL));
        atp_buf_init(&b, sizeof(didkeys[i]) - 1);
        atp_didkey_encode(&b, keys[i]);
        memcpy(didkeys[i], b.ptr, b.len);
        didkeys[i][b.len] = '\0';
        atp_buf_release(&b);
    }
}

static atp_slice S(const char *s)
{
    return atp_slice_str(s);
}

/* A plc_operation with rotation keys keys[rk[0..nrk)], signing key keys[1]. */
static atp_plc_op make_op(const int *rk, size_t nrk, const char *handle, const char *pds,
                          atp_slice prev)
{
    atp_plc_op op;
    memset(&op, 0, sizeof(op));
    op.type = ATP_PLC_OPERATION;
    atp_slice *r = atp_arena_calloc(A, nrk, sizeof(atp_slice));
    for (size_t i = 0; i < nrk; i++) {
        r[i] = S(didkeys[rk[i]]);
    }
    atp_plc_vm *vm = atp_arena_calloc(A, 1, sizeof(*vm));
    *vm = (atp_plc_vm){S("atproto"), S(didkeys[1])};
    atp_slice *aka = atp_arena_calloc(A, 1, sizeof(atp_slice));
    aka[0] = S(handle);
    atp_plc_service *svc = atp_arena_calloc(A, 1, sizeof(*svc));
    *svc = (atp_plc_service){S("atproto_pds"), S("AtprotoPersonalDataServer"), S(pds)};
    op.rotation_keys = r;
    op.n_rotation_keys = nrk;
    op.vms = vm;
    op.n_vms = 1;
    op.aka = aka;
    op.n_aka = 1;
    op.services = svc;
    op.n_services = 1;
    op.prev = prev;
    return op;
}

static atp_slice cid_str(const atp_plc_op *op)
{
    atp_cid c;
    char s[ATP_CID_STR_MAX];
    T_OK(atp_plc_op_cid(op, &c, NULL));
    size_t n = atp_cid_format_to(&c, s, sizeof(s));
    return atp_slice_make(atp_arena_dup(A, s, n), n);
}

static void test_worked_example(void)
{
    const int rk[1] = {0};
    atp_plc_op op =
        make_op(rk, 1, "at://alice.example.com", "https://pds.example.com", (atp_slice){NULL, 0});
    T_STREQ(didkeys[0], ROT_DIDKEY);
    T_STREQ(didkeys[1], SIGN_DIDKEY);
    atp_buf b;
    atp_buf_init(&b, 1 << 16);
    atp_plc_op_encode_cbor(&b, &op, false);
    T_EQ(b.len, 311);
    static const uint8_t head[] = {0xa6, 0x64, 'p',  'r', 'e', 'v', 0xf6, 0x64, 't', 'y', 'p', 'e',
                                   0x6d, 'p',  'l',  'c', '_', 'o', 'p',  'e',  'r', 'a', 't', 'i',
                                   'o',  'n',  0x68, 's', 'e', 'r', 'v',  'i',  'c', 'e', 's'};
    T_MEMEQ(b.ptr, sizeof(head), head, sizeof(head));
    T_OK(atp_plc_op_sign(A, &op, keys[0], NULL, NULL));
    T_MEMEQ(op.sig.ptr, op.sig.len, EX_SIG, strlen(EX_SIG));
    atp_buf_reset(&b);
    atp_plc_op_encode_cbor(&b, &op, true);
    T_EQ(b.len, 403);
    atp_slice cid = cid_str(&op);
    T_MEMEQ(cid.ptr, cid.len, EX_CID, strlen(EX_CID));
    char did[ATP_PLC_DID_LEN + 1];
    T_OK(atp_plc_did_for_genesis(&op, did, NULL));
    T_STREQ(did, EX_DID);
    /* JSON round trip: same CBOR again, members in canonical order. */
    atp_buf j;
    atp_buf_init(&j, 1 << 16);
    atp_plc_op_encode_json(&j, &op, 0);
    T_TRUE(j.len > 10 && memcmp(j.ptr, "{\"sig\":\"", 8) == 0);
    atp_plc_op back;
    T_OK(atp_plc_op_parse(A, atp_buf_slice(&j), false, NULL, &back, NULL));
    atp_buf b2;
    atp_buf_init(&b2, 1 << 16);
    atp_plc_op_encode_cbor(&b2, &back, true);
    T_MEMEQ(b2.ptr, b2.len, b.ptr, b.len);
    atp_plc_entry none;
    atp_plc_next nx;
    atp_err err;
    T_OKE(atp_plc_check_next(S(EX_DID), &none, 0, &back, 0, NULL, &nx, &err), &err);
    T_TRUE(nx.genesis);
    T_EQ(atp_plc_check_next(S("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"), &none, 0, &back, 0, NULL, &nx,
                            NULL),
         ATP_EINVAL);
    atp_buf_release(&b);
    atp_buf_release(&b2);
    atp_buf_release(&j);
}

/* Parses `json`, expecting error `code` (0 = success). */
static void expect_parse(const char *json, int code)
{
    atp_plc_op op;
    atp_err err;
    int rc = atp_plc_op_parse(A, S(json), false, NULL, &op, &err);
    if (rc != code) {
        T_FAILF("parse %s: got %d (%s), want %d", json, rc, rc ? err.msg : "ok", code);
    }
    t__checks++;
}

#define OPJ(extra, sig)                                                                            \
    "{\"type\":\"plc_operation\",\"rotationKeys\":[\"" ROT_DIDKEY "\"],"                           \
    "\"verificationMethods\":{\"atproto\":\"" SIGN_DIDKEY "\"},"                                   \
    "\"alsoKnownAs\":[\"at://alice.example.com\"],"                                                \
    "\"services\":{\"atproto_pds\":{\"type\":\"AtprotoPersonalDataServer\","                       \
    "\"endpoint\":\"https://pds.example.com\"}},\"prev\":null" extra ",\"sig\":\"" sig "\"}"

static void test_parse_rejections(void)
{
    expect_parse(OPJ("", EX_SIG), 0);
    expect_parse(OPJ(",\"extra\":1", EX_SIG), ATP_EINVAL);
    expect_parse(OPJ("", EX_SIG "=="), ATP_EINVAL); /* padded */
    expect_parse(OPJ("", "sM0m0JmoRGbhSUWm47hZiIgDNnoxJzFq1dLYUhPvk+YAtMx0Z4vkE2DfCja9TKuQEZ2FMwm-"
                         "C3pXvxB66lDD1w"),
                 ATP_EINVAL); /* '+' is not base64url */
    expect_parse(OPJ("", "sM0m0JmoRGbhSUWm47hZiIgDNnoxJzFq1dLYUhPvk-YAtMx0Z4vkE2DfCja9TKuQEZ2FMwm-"
                         "C3pXvxB66lDD1x"),
                 ATP_EINVAL);                                /* non-zero trailing bits */
    expect_parse(OPJ("", "AAAA"), ATP_EINVAL);               /* short */
    expect_parse("{\"type\":\"plc_operation\"", ATP_EINVAL); /* malformed JSON */
    expect_parse("[]", ATP_EINVAL);
    expect_parse("{\"type\":\"nope\",\"sig\":\"x\"}", ATP_EINVAL);
    expect_parse("{\"type\":\"plc_tombstone\",\"prev\":null,\"sig\":\"" EX_SIG "\"}", ATP_EINVAL);
    expect_parse("{\"type\":\"plc_tombstone\",\"prev\":\"" EX_CID "\",\"sig\":\"" EX_SIG "\"}", 0);
    expect_parse("{\"type\":\"plc_tombstone\",\"prev\":\"notacid\",\"sig\":\"" EX_SIG "\"}",
                 ATP_EINVAL);
    expect_parse("{\"type\":\"plc_tombstone\",\"prev\":\"" EX_CID "\"}", ATP_EINVAL); /* no sig */
    expect_parse("{\"type\":\"plc_tombstone\",\"prev\":\"" EX_CID "\",\"sig\":\"" EX_SIG
                 "\",\"sig\":\"" EX_SIG "\"}",
                 ATP_EINVAL); /* duplicate key */
    /* Wrong types and bad keys. */
    expect_parse("{\"type\":\"plc_operation\",\"rotationKeys\":\"x\",\"verificationMethods\":{},"
                 "\"alsoKnownAs\":[],\"services\":{},\"prev\":null,\"sig\":\"" EX_SIG "\"}",
                 ATP_EINVAL);
    expect_parse("{\"type\":\"plc_operation\",\"rotationKeys\":[],\"verificationMethods\":{},"
                 "\"alsoKnownAs\":[],\"services\":{},\"prev\":null,\"sig\":\"" EX_SIG "\"}",
                 ATP_EINVAL); /* no rotation key */
    expect_parse("{\"type\":\"plc_operation\",\"rotationKeys\":[\"did:key:zNope\"],"
                 "\"verificationMethods\":{},\"alsoKnownAs\":[],\"services\":{},\"prev\":null,"
                 "\"sig\":\"" EX_SIG "\"}",
                 ATP_EINVAL);
    expect_parse("{\"type\":\"plc_operation\",\"rotationKeys\":[\"" ROT_DIDKEY "\",\"" ROT_DIDKEY
                 "\"],\"verificationMethods\":{},\"alsoKnownAs\":[],\"services\":{},"
                 "\"prev\":null,\"sig\":\"" EX_SIG "\"}",
                 ATP_EINVAL); /* duplicate rotation key */
    expect_parse("{\"type\":\"plc_operation\",\"rotationKeys\":[\"" ROT_DIDKEY "\"],"
                 "\"verificationMethods\":{\"atproto\":5},\"alsoKnownAs\":[],\"services\":{},"
                 "\"prev\":null,\"sig\":\"" EX_SIG "\"}",
                 ATP_EINVAL);
    expect_parse("{\"type\":\"plc_operation\",\"rotationKeys\":[\"" ROT_DIDKEY "\"],"
                 "\"verificationMethods\":{},\"alsoKnownAs\":[],\"services\":{\"x\":{\"type\":"
                 "\"t\",\"endpoint\":\"e\",\"more\":1}},\"prev\":null,\"sig\":\"" EX_SIG "\"}",
                 ATP_EINVAL);
    expect_parse("{\"type\":\"plc_operation\",\"rotationKeys\":[\"" ROT_DIDKEY "\"],"
                 "\"verificationMethods\":{},\"alsoKnownAs\":[],\"services\":{},"
                 "\"sig\":\"" EX_SIG "\"}",
                 ATP_EINVAL); /* prev missing (must be explicit null) */
    expect_parse("{\"type\":\"create\",\"signingKey\":\"" SIGN_DIDKEY
                 "\",\"recoveryKey\":\"" ROT_DIDKEY
                 "\",\"handle\":\"a.test\",\"service\":\"https://x\",\"prev\":\"" EX_CID
                 "\",\"sig\":\"" EX_SIG "\"}",
                 ATP_EINVAL); /* create with a prev */
}

/* JSON with `n` entries of a field, to hit the count limit at the boundary. */
static void test_limits(void)
{
    atp_plc_op op;
    const int rk[1] = {0};
    atp_plc_limits lim = atp_plc_limits_default;
    op = make_op(rk, 1, "at://alice.example.com", "https://pds.example.com", (atp_slice){NULL, 0});
    /* alsoKnownAs: 10 fine, 11 too many; 258 chars fine, 259 too long. */
    atp_slice aka[11];
    char names[11][8];
    for (int i = 0; i < 11; i++) {
        snprintf(names[i], sizeof(names[i]), "at://%d", i);
        aka[i] = S(names[i]);
    }
    op.aka = aka;
    op.n_aka = 10;
    T_OK(atp_plc_op_check(&op, true, &lim, NULL));
    op.n_aka = 11;
    T_EQ(atp_plc_op_check(&op, true, &lim, NULL), ATP_ELIMIT);
    char long_aka[300];
    memset(long_aka, 'a', sizeof(long_aka));
    aka[0] = atp_slice_make(long_aka, 258);
    op.n_aka = 1;
    op.aka = aka;
    T_OK(atp_plc_op_check(&op, true, &lim, NULL));
    aka[0] = atp_slice_make(long_aka, 259);
    T_EQ(atp_plc_op_check(&op, true, &lim, NULL), ATP_ELIMIT);
    /* Service name 32 fine, 33 too long; endpoint 512/513. */
    aka[0] = S("at://alice.example.com");
    atp_plc_service svc = {atp_slice_make(long_aka, 32), S("t"), S("https://x")};
    op.services = &svc;
    T_OK(atp_plc_op_check(&op, true, &lim, NULL));
    svc.name = atp_slice_make(long_aka, 33);
    T_EQ(atp_plc_op_check(&op, true, &lim, NULL), ATP_ELIMIT);
    char ep[600];
    memset(ep, 'e', sizeof(ep));
    svc = (atp_plc_service){S("atproto_pds"), S("t"), atp_slice_make(ep, 512)};
    T_OK(atp_plc_op_check(&op, true, &lim, NULL));
    svc.endpoint = atp_slice_make(ep, 513);
    T_EQ(atp_plc_op_check(&op, true, &lim, NULL), ATP_ELIMIT);
    /* Signed CBOR over 4000 bytes is refused by check_next (8 max-length aka entries ≈ 2 KB each
     * too small: use long endpoints in many services). */
    atp_plc_service many[10];
    char nm[10][4];
    for (int i = 0; i < 10; i++) {
        snprintf(nm[i], sizeof(nm[i]), "s%d", i);
        many[i] = (atp_plc_service){S(nm[i]), S("t"), atp_slice_make(ep, 512)};
    }
    op.services = many;
    op.n_services = 10;
    T_OK(atp_plc_op_sign(A, &op, keys[0], &lim, NULL));
    char did[ATP_PLC_DID_LEN + 1];
    T_OK(atp_plc_did_for_genesis(&op, did, NULL));
    atp_plc_next nx;
    atp_err err;
    T_EQ(atp_plc_check_next(S(did), NULL, 0, &op, 0, &lim, &nx, &err), ATP_ELIMIT);
    lim.max_cbor = 8000;
    T_OKE(atp_plc_check_next(S(did), NULL, 0, &op, 0, &lim, &nx, &err), &err);
}

/* A DID's history built in code: genesis with rotation keys [k0, k2]. */
typedef struct hist {
    atp_plc_entry e[8];
    size_t n;
    char did[ATP_PLC_DID_LEN + 1];
} hist;

static int submit(hist *h, atp_plc_op op, int signer, int64_t at, atp_err *err)
{
    atp_plc_next nx;
    T_OK(atp_plc_op_sign(A, &op, keys[signer], NULL, NULL));
    if (h->n == 0) {
        T_OK(atp_plc_did_for_genesis(&op, h->did, NULL));
    }
    int rc = atp_plc_check_next(S(h->did), h->e, h->n, &op, at, NULL, &nx, err);
    if (rc == 0) {
        size_t keep = nx.genesis ? 0 : nx.prev_index + 1;
        T_EQ(nx.n_nullified, h->n - keep);
        h->e[keep] = (atp_plc_entry){op, nx.cid, at, false};
        h->n = keep + 1;
    }
    return rc;
}

static atp_slice last_cid(const hist *h, size_t i)
{
    char s[ATP_CID_STR_MAX];
    size_t n = atp_cid_format_to(&h->e[i].cid, s, sizeof(s));
    return atp_slice_make(atp_arena_dup(A, s, n), n);
}

static void test_history(void)
{
    hist h = {.n = 0};
    atp_err err;
    const int rk02[2] = {0, 2}, rk2[1] = {2}, rk023[3] = {0, 2, 3};
    atp_slice none = {NULL, 0};
    T_OKE(submit(&h, make_op(rk02, 2, "at://a.test", "https://pds.test", none), 2, 0, &err), &err);
    /* A genesis signed by a key not in its own rotationKeys. */
    hist h2 = {.n = 0};
    T_EQ(submit(&h2, make_op(rk2, 1, "at://a.test", "https://pds.test", none), 0, 0, NULL),
         ATP_ESIG);
    /* Update signed by the lower-priority key k2: fine. */
    T_OKE(submit(&h, make_op(rk02, 2, "at://b.test", "https://pds.test", last_cid(&h, 0)), 2,
                 HOUR_US, &err),
          &err);
    T_EQ(h.n, 2);
    /* Wrong prev, null prev, and a key that is not a rotation key. */
    T_EQ(submit(&h, make_op(rk02, 2, "at://c.test", "https://p", S(EX_CID)), 0, 2 * HOUR_US, NULL),
         ATP_EINVAL);
    T_EQ(submit(&h, make_op(rk02, 2, "at://c.test", "https://p", none), 0, 2 * HOUR_US, NULL),
         ATP_EINVAL);
    T_EQ(submit(&h, make_op(rk02, 2, "at://c.test", "https://p", last_cid(&h, 1)), 1, 2 * HOUR_US,
                NULL),
         ATP_ESIG);
    /* Forged: a valid signature by k0 over a different op, pasted on this one. */
    atp_plc_op other = make_op(rk02, 2, "at://x.test", "https://p", last_cid(&h, 1));
    T_OK(atp_plc_op_sign(A, &other, keys[0], NULL, NULL));
    atp_plc_op forged = make_op(rk02, 2, "at://y.test", "https://p", last_cid(&h, 1));
    forged.sig = other.sig;
    atp_plc_next nx;
    T_EQ(atp_plc_check_next(S(h.did), h.e, h.n, &forged, 0, NULL, &nx, &err), ATP_ESIG);
    /* Rotate to [k2] only (signed by k0); then k0 is removed and may no longer sign. */
    T_OK(submit(&h, make_op(rk2, 1, "at://b.test", "https://pds.test", last_cid(&h, 1)), 0,
                3 * HOUR_US, NULL));
    T_EQ(submit(&h, make_op(rk2, 1, "at://z.test", "https://p", last_cid(&h, 2)), 0, 4 * HOUR_US,
                &err),
         ATP_ESIG);
    /* Recovery: k0 outranks k2 in op 1's keys, so forking from op 1 within 72 h nullifies op 2. */
    T_EQ(submit(&h, make_op(rk02, 2, "at://r.test", "https://p", last_cid(&h, 1)), 2, 5 * HOUR_US,
                NULL),
         ATP_ESIG); /* same priority as the signer of op 2? no: k0 signed op 2, k2 is weaker */
    T_EQ(submit(&h, make_op(rk02, 2, "at://r.test", "https://p", last_cid(&h, 0)), 2, 5 * HOUR_US,
                NULL),
         ATP_ESIG); /* forking from op 0 overrides op 1 signed by k2 ... with k2: not stronger */
    hist late = h;
    T_EQ(submit(&late, make_op(rk023, 3, "at://r.test", "https://p", last_cid(&h, 0)), 0,
                HOUR_US + 72 * HOUR_US + 1, &err),
         ATP_EEXPIRED);
    T_OKE(submit(&h, make_op(rk023, 3, "at://r.test", "https://p", last_cid(&h, 0)), 0,
                 HOUR_US + 72 * HOUR_US, &err),
          &err);
    T_EQ(h.n, 2); /* ops 1 and 2 nullified */
    /* Tombstone by the p256 key k3 (rotation key index 2), then nothing after it. */
    atp_plc_op tomb;
    memset(&tomb, 0, sizeof(tomb));
    tomb.type = ATP_PLC_TOMBSTONE;
    tomb.prev = last_cid(&h, 1);
    T_OKE(submit(&h, tomb, 3, 80 * HOUR_US, &err), &err);
    T_EQ(submit(&h, make_op(rk02, 2, "at://after.test", "https://p", last_cid(&h, 2)), 0,
                81 * HOUR_US, NULL),
         ATP_EINVAL);
}

static void test_validate_log(void)
{
    const int rk02[2] = {0, 2};
    atp_plc_op ops[3];
    atp_slice none = {NULL, 0};
    ops[0] = make_op(rk02, 2, "at://a.test", "https://pds.test", none);
    T_OK(atp_plc_op_sign(A, &ops[0], keys[0], NULL, NULL));
    char did[ATP_PLC_DID_LEN + 1];
    T_OK(atp_plc_did_for_genesis(&ops[0], did, NULL));
    ops[1] = make_op(rk02, 2, "at://b.test", "https://pds.test", cid_str(&ops[0]));
    T_OK(atp_plc_op_sign(A, &ops[1], keys[2], NULL, NULL));
    memset(&ops[2], 0, sizeof(ops[2]));
    ops[2].type = ATP_PLC_TOMBSTONE;
    ops[2].prev = cid_str(&ops[1]);
    T_OK(atp_plc_op_sign(A, &ops[2], keys[0], NULL, NULL));
    size_t last = 99;
    bool dead = true;
    T_OK(atp_plc_validate_log(S(did), ops, 2, NULL, &last, &dead, NULL));
    T_EQ(last, 1);
    T_FALSE(dead);
    T_OK(atp_plc_validate_log(S(did), ops, 3, NULL, &last, &dead, NULL));
    T_EQ(last, 1);
    T_TRUE(dead);
    atp_plc_op swapped[2] = {ops[1], ops[0]};
    T_NE(atp_plc_validate_log(S(did), swapped, 2, NULL, NULL, NULL, NULL), 0);
    T_EQ(atp_plc_validate_log(S(did), ops, 0, NULL, NULL, NULL, NULL), ATP_EINVAL);
}

static void test_legacy_create(void)
{
    /* A legacy create op built and signed here: normalised as the reference does. */
    atp_plc_op op;
    memset(&op, 0, sizeof(op));
    op.type = ATP_PLC_CREATE;
    op.signing_key = S(didkeys[1]);
    op.recovery_key = S(didkeys[0]);
    op.handle = S("https://alice.test");
    op.service = S("pds.test");
    T_OK(atp_plc_op_sign(A, &op, keys[1], NULL, NULL));
    char did[ATP_PLC_DID_LEN + 1];
    T_OK(atp_plc_did_for_genesis(&op, did, NULL));
    atp_plc_next nx;
    atp_err err;
    T_OKE(atp_plc_check_next(S(did), NULL, 0, &op, 0, NULL, &nx, &err), &err);
    T_EQ(nx.signer, 1); /* [recoveryKey, signingKey] */
    atp_plc_op n;
    atp_plc_op_normalize(A, &op, &n);
    T_EQ(n.type, ATP_PLC_OPERATION);
    T_MEMEQ(n.aka[0].ptr, n.aka[0].len, "at://alice.test", 15);
    T_MEMEQ(n.services[0].endpoint.ptr, n.services[0].endpoint.len, "https://pds.test", 16);
    atp_buf j;
    atp_buf_init(&j, 1 << 16);
    atp_plc_op_encode_json(&j, &op, 0);
    atp_plc_op back;
    T_OKE(atp_plc_op_parse(A, atp_buf_slice(&j), false, NULL, &back, &err), &err);
    T_EQ(back.type, ATP_PLC_CREATE);
    atp_buf_reset(&j);
    atp_plc_data_encode_json(&j, S(did), &op, A);
    T_TRUE(j.err == 0 && strstr((const char *)j.ptr, "\"rotationKeys\":[\"" ROT_DIDKEY) != NULL);
    atp_buf_release(&j);
}

static void test_didoc_render(void)
{
    const int rk[2] = {0, 3};
    atp_plc_op op =
        make_op(rk, 2, "at://alice.example.com", "https://pds.example.com", (atp_slice){NULL, 0});
    atp_plc_vm vms[2] = {{S("atproto"), S(didkeys[1])}, {S("atproto_label"), S(didkeys[3])}};
    op.vms = vms;
    op.n_vms = 2;
    atp_buf b;
    atp_buf_init(&b, 1 << 16);
    atp_plc_didoc_encode(&b, S(EX_DID), &op, A, 0);
    atp_buf_append_byte(&b, 0);
    const char *want =
        "{\"@context\":[\"https://www.w3.org/ns/did/v1\",\"https://w3id.org/security/multikey/v1\","
        "\"https://w3id.org/security/suites/secp256k1-2019/v1\","
        "\"https://w3id.org/security/suites/ecdsa-2019/v1\"],\"id\":\"" EX_DID "\","
        "\"alsoKnownAs\":[\"at://alice.example.com\"],\"verificationMethod\":[{\"id\":\"" EX_DID
        "#atproto\",\"type\":\"Multikey\",\"controller\":\"" EX_DID "\",\"publicKeyMultibase\":\"";
    T_TRUE(strncmp((const char *)b.ptr, want, strlen(want)) == 0);
    T_TRUE(strstr((const char *)b.ptr, "\"service\":[{\"id\":\"#atproto_pds\",\"type\":"
                                       "\"AtprotoPersonalDataServer\",\"serviceEndpoint\":"
                                       "\"https://pds.example.com\"}]}") != NULL);
    /* And it parses back into the same view. */
    atp_didoc d;
    atp_err err;
    T_OKE(atp_didoc_parse(A, atp_slice_make(b.ptr, b.len - 1), S(EX_DID), NULL, &d, &err), &err);
    T_TRUE(d.signing.present);
    T_MEMEQ(d.signing.didkey.ptr, d.signing.didkey.len, didkeys[1], strlen(didkeys[1]));
    T_TRUE(d.labeler.present && d.labeler.curve == ATP_CURVE_P256);
    T_MEMEQ(d.handle.ptr, d.handle.len, "alice.example.com", 17);
    T_MEMEQ(d.pds.ptr, d.pds.len, "https://pds.example.com", 23);
    atp_buf_release(&b);
}

static void test_audit(void)
{
    hist h = {.n = 0};
    const int rk02[2] = {0, 2};
    atp_slice none = {NULL, 0};
    T_OK(submit(&h, make_op(rk02, 2, "at://a.test", "https://p.test", none), 0, HOUR_US, NULL));
    atp_plc_entry all[4];
    all[0] = h.e[0];
    T_OK(submit(&h, make_op(rk02, 2, "at://b.test", "https://p.test", last_cid(&h, 0)), 2,
                2 * HOUR_US, NULL));
    all[1] = h.e[1];
    T_OK(submit(&h, make_op(rk02, 2, "at://c.test", "https://p.test", last_cid(&h, 0)), 0,
                3 * HOUR_US, NULL));
    all[2] = h.e[1];
    all[1].nullified = true;
    /* Render as the directory's /log/audit JSON and parse it back. */
    atp_buf j;
    atp_buf_init(&j, 1 << 20);
    atp_buf_append_byte(&j, '[');
    for (int i = 0; i < 3; i++) {
        char cid[ATP_CID_STR_MAX], at[ATP_PLC_TIME_LEN + 1];
        atp_cid_format_to(&all[i].cid, cid, sizeof(cid));
        atp_plc_format_time(all[i].created_at_us, at);
        atp_buf_printf(&j, "%s{\"did\":\"%s\",\"operation\":", i ? "," : "", h.did);
        atp_plc_op_encode_json(&j, &all[i].op, 0);
        atp_buf_printf(&j, ",\"cid\":\"%s\",\"nullified\":%s,\"createdAt\":\"%s\"}", cid,
                       all[i].nullified ? "true" : "false", at);
    }
    atp_buf_append_byte(&j, ']');
    atp_plc_entry *es;
    size_t n, state;
    atp_slice did;
    atp_err err;
    T_OKE(atp_plc_audit_parse(A, atp_buf_slice(&j), NULL, &es, &n, &did, &err), &err);
    T_EQ(n, 3);
    T_EQ(es[1].created_at_us, 2 * HOUR_US);
    T_OKE(atp_plc_audit_verify(A, did, es, n, NULL, &state, &err), &err);
    T_EQ(state, 2);
    es[1].nullified = false; /* a lie about nullification is caught */
    T_EQ(atp_plc_audit_verify(A, did, es, n, NULL, &state, &err), ATP_EINVAL);
    es[1].nullified = true;
    es[2].created_at_us = 80 * HOUR_US; /* the fork now comes too late */
    T_EQ(atp_plc_audit_verify(A, did, es, n, NULL, &state, &err), ATP_EEXPIRED);
    atp_buf_release(&j);
}

static void test_time(void)
{
    char s[ATP_PLC_TIME_LEN + 1];
    atp_plc_format_time(0, s);
    T_STREQ(s, "1970-01-01T00:00:00.000Z");
    atp_plc_format_time(1700000000123456LL, s);
    T_STREQ(s, "2023-11-14T22:13:20.123Z");
}

int main(void)
{
    setup();
    T_RUN(test_worked_example);
    T_RUN(test_parse_rejections);
    T_RUN(test_limits);
    T_RUN(test_history);
    T_RUN(test_validate_log);
    T_RUN(test_legacy_create);
    T_RUN(test_didoc_render);
    T_RUN(test_audit);
    T_RUN(test_time);
    for (int i = 0; i < 4; i++) {
        atp_key_destroy(keys[i]);
    }
    atp_arena_destroy(A);
    return t_done();
}
