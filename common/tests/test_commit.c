/* test_commit.c: v3 commits against the spec's worked example (repository.md §3) byte for byte,
 * strict decoding (every rejection rule), verification (tampering, high-S, wrong key), revs. */
#include "atp/commit.h"

#include "atp/cbor.h"
#include "atp/syntax.h"
#include "atp/tid.h"
#include "t.h"

/* Spec repository.md §3 worked example. */
static const char ex_priv[] = "780437017d08a32d28137c55e1e1a34e90c8908034bf4e9bafb764c15d0232f6";
static const char ex_didkey[] = "did:key:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm";
static const char ex_did[] = "did:plc:pt7yvrqanufronpndk4qjuiz";
static const char ex_rev[] = "3kznmn7xqxl22";
static const char ex_data[] = "bafyreiggyd62cjzuwkul6lrjzkn3rcyzvuiny5nm2uuz5kwjx76cudaub4";
static const char ex_unsigned[] =
    "a56364696478206469643a706c633a70743779767271616e7566726f6e706e646b34716a75697a6372657"
    "66d336b7a6e6d6e377871786c32326464617461d82a58250001711220c6c0fda12734b2a8bf2e29ca9bb88b"
    "19ad10dc75acd5299eaac9bffc2a0c140f6470726576f66776657273696f6e03";
static const char ex_sig[] = "c13b218aa99980f32cf6a5d35cb7fed4e264c109806f512aec956271c405b790"
                             "0c0353eb6a1b8815e50dbb75324257ea74b1f5b02ee4738844c85a4d89b95497";
static const char ex_cid[] = "bafyreigh5qvep4yegjul53hh26fa6ydu2girlpyuvwhutreq2oj4x4igs4";

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    if (n > cap) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            abort();
        }
        out[i] = (uint8_t)v;
    }
    return n;
}

static atp_key *ex_key(void)
{
    atp_key *k = NULL;
    if (atp_key_import_private_hex(ATP_CURVE_K256, atp_slice_str(ex_priv), &k, NULL) != 0) {
        abort();
    }
    return k;
}

static atp_cid cid_of(const char *s)
{
    atp_cid c;
    if (atp_cid_parse(atp_slice_str(s), 0, &c, NULL) != 0) {
        abort();
    }
    return c;
}

/* The signed bytes of the worked example, built by our code (caller releases). */
static void ex_signed(atp_buf *out, atp_cid *cid)
{
    atp_key *k = ex_key();
    atp_cid data = cid_of(ex_data);
    atp_buf_init(out, 0);
    T_OK(atp_commit_create(out, atp_slice_str(ex_did), atp_slice_str(ex_rev), &data, k, NULL, cid,
                           NULL));
    atp_key_destroy(k);
}

static void test_worked_example(void)
{
    uint8_t want_unsigned[256], want_sig[64];
    size_t n = unhex(ex_unsigned, want_unsigned, sizeof want_unsigned);
    atp_commit c = {atp_slice_str(ex_did), atp_slice_str(ex_rev), cid_of(ex_data), false, {0}, {0}};
    atp_buf b;
    atp_cid cid;
    char str[ATP_CID_STR_MAX];
    atp_key *k = ex_key();
    atp_err err = {0};

    atp_buf_init(&b, 0);
    atp_commit_encode_unsigned(&b, &c);
    T_MEMEQ(b.ptr, b.len, want_unsigned, n);
    atp_buf_release(&b);

    /* libsecp256k1 signs with RFC 6979 nonces, as the example did: same bytes exactly. */
    unhex(ex_sig, want_sig, sizeof want_sig);
    T_OKE(atp_commit_sign(&c, k, &err), &err);
    T_MEMEQ(c.sig, 64, want_sig, 64);

    ex_signed(&b, &cid);
    T_EQ(b.len, 188);
    atp_cid_format_to(&cid, str, sizeof str);
    T_STREQ(str, ex_cid);
    atp_buf_release(&b);
    atp_key_destroy(k);
}

static void test_verify_example(void)
{
    atp_key *pub = NULL;
    atp_commit c = {atp_slice_str(ex_did), atp_slice_str(ex_rev), cid_of(ex_data), false, {0}, {0}};
    atp_err err = {0};
    unhex(ex_sig, c.sig, sizeof c.sig);
    T_OK(atp_didkey_decode(atp_slice_str(ex_didkey), &pub, NULL));
    T_OKE(atp_commit_verify(&c, pub, &err), &err);
    /* A different rev: the signature no longer covers it. */
    c.rev = atp_slice_str("3kznmn7xqxl23");
    T_EQ(atp_commit_verify(&c, pub, &err), ATP_ESIG);
    atp_key_destroy(pub);
}

static void test_decode_roundtrip(void)
{
    atp_buf b, again;
    atp_cid cid, cid2;
    atp_commit c;
    atp_arena *a = atp_arena_create(0);
    atp_err err = {0};
    ex_signed(&b, &cid);
    T_OKE(atp_commit_decode(a, atp_buf_slice(&b), &c, &err), &err);
    T_TRUE(atp_slice_eq_str(c.did, ex_did));
    T_TRUE(atp_slice_eq_str(c.rev, ex_rev));
    T_FALSE(c.has_prev);
    cid2 = cid_of(ex_data);
    T_TRUE(atp_cid_eq(&c.data, &cid2));
    atp_buf_init(&again, 0);
    atp_commit_encode(&again, &c);
    T_MEMEQ(again.ptr, again.len, b.ptr, b.len);
    atp_commit_cid(atp_buf_slice(&again), &cid2);
    T_TRUE(atp_cid_eq(&cid, &cid2));
    atp_buf_release(&again);
    atp_buf_release(&b);
    atp_arena_destroy(a);
}

/* ---- mutations of the valid commit, each of which decode must refuse ---- */

typedef enum { MUT_SET, MUT_DROP, MUT_ADD } mut_kind;

/* Re-encodes the example commit with field `key` replaced by `v` / dropped / added. */
static void mutate(atp_arena *a, mut_kind kind, const char *key, atp_cbor *v, atp_buf *out)
{
    atp_buf b;
    atp_cid cid;
    atp_cbor *m, *n;
    size_t j = 0;
    ex_signed(&b, &cid);
    /* The tree borrows b's bytes: it is encoded before b is released. */
    T_OK(atp_cbor_decode(a, atp_buf_slice(&b), NULL, &m, NULL));
    n = atp_cbor_new_map(a, m->u.map.n + 1);
    for (size_t i = 0; i < m->u.map.n; i++) {
        bool match = atp_slice_eq_str(m->u.map.pairs[i].key, key);
        if (match && kind == MUT_DROP) {
            continue;
        }
        n->u.map.pairs[j] = m->u.map.pairs[i];
        if (match && kind == MUT_SET) {
            n->u.map.pairs[j].val = *v;
        }
        j++;
    }
    if (kind == MUT_ADD) {
        n->u.map.pairs[j].key = atp_slice_str(key);
        n->u.map.pairs[j++].val = *v;
    }
    n->u.map.n = j;
    T_OK(atp_cbor_map_finish(n, NULL));
    atp_buf_init(out, 0);
    atp_cbor_encode(out, n);
    T_EQ(out->err, 0);
    atp_buf_release(&b);
}

static void expect_reject(atp_arena *a, mut_kind kind, const char *key, atp_cbor *v,
                          const char *why)
{
    atp_buf b;
    atp_commit c;
    atp_err err = {0};
    int rc;
    mutate(a, kind, key, v, &b);
    rc = atp_commit_decode(a, atp_buf_slice(&b), &c, &err);
    if (rc != ATP_EINVAL) {
        T_FAILF("%s: decode returned %d, want ATP_EINVAL", why, rc);
    } else if (!err.msg[0]) {
        T_FAILF("%s: no reason given", why);
    }
    t__checks++;
    atp_buf_release(&b);
}

static void test_decode_rejects(void)
{
    atp_arena *a = atp_arena_create(0);
    atp_cid raw, v0;
    uint8_t sig63[63] = {0}, sig65[65] = {0};
    atp_cid_compute(&raw, ATP_CODEC_RAW, ATP_SLICE_LIT("x"));
    T_OK(atp_cid_parse(ATP_SLICE_LIT("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"),
                       ATP_CID_ALLOW_V0 | ATP_CID_ANY_BASE, &v0, NULL));

    expect_reject(a, MUT_SET, "version", atp_cbor_new_int(a, 2), "version 2");
    expect_reject(a, MUT_SET, "version", atp_cbor_new_int(a, 4), "version 4");
    expect_reject(a, MUT_SET, "version", atp_cbor_new_string(a, ATP_SLICE_LIT("3")),
                  "version as text");
    expect_reject(a, MUT_DROP, "version", NULL, "no version");
    expect_reject(a, MUT_SET, "sig", atp_cbor_new_bytes(a, atp_slice_make(sig63, 63)),
                  "63-byte sig");
    expect_reject(a, MUT_SET, "sig", atp_cbor_new_bytes(a, atp_slice_make(sig65, 65)),
                  "65-byte sig");
    expect_reject(a, MUT_SET, "sig", atp_cbor_new_string(a, ATP_SLICE_LIT("sig")), "text sig");
    expect_reject(a, MUT_DROP, "sig", NULL, "unsigned commit");
    expect_reject(a, MUT_DROP, "prev", NULL, "prev absent");
    expect_reject(a, MUT_SET, "prev", atp_cbor_new_string(a, ATP_SLICE_LIT("bafy")),
                  "prev as text");
    expect_reject(a, MUT_SET, "prev", atp_cbor_new_link(a, &raw), "prev raw codec");
    expect_reject(a, MUT_SET, "did", atp_cbor_new_string(a, ATP_SLICE_LIT("did:PLC:x")),
                  "bad did syntax");
    expect_reject(a, MUT_SET, "did", atp_cbor_new_bytes(a, ATP_SLICE_LIT("did:plc:x")),
                  "did as bytes");
    expect_reject(a, MUT_DROP, "did", NULL, "no did");
    expect_reject(a, MUT_SET, "rev", atp_cbor_new_string(a, ATP_SLICE_LIT("3kznmn7xqxl2")),
                  "12-char rev");
    expect_reject(a, MUT_SET, "rev", atp_cbor_new_string(a, ATP_SLICE_LIT("3KZNMN7XQXL22")),
                  "upper-case rev");
    expect_reject(a, MUT_SET, "rev", atp_cbor_new_int(a, 1), "rev as int");
    expect_reject(a, MUT_SET, "data", atp_cbor_new_link(a, &raw), "data raw codec");
    expect_reject(a, MUT_SET, "data", atp_cbor_new_link(a, &v0), "data CIDv0");
    expect_reject(a, MUT_SET, "data", atp_cbor_new_null(a), "data null");
    expect_reject(a, MUT_DROP, "data", NULL, "no data");
    expect_reject(a, MUT_ADD, "extra", atp_cbor_new_int(a, 1), "unknown field");
    expect_reject(a, MUT_SET, "did", atp_cbor_new_map(a, 0), "nested map");
    atp_arena_destroy(a);
}

static void test_decode_rejects_bytes(void)
{
    atp_arena *a = atp_arena_create(0);
    atp_buf b;
    atp_cid cid;
    atp_commit c;
    uint8_t big[ATP_COMMIT_MAX_BYTES + 1];
    ex_signed(&b, &cid);
    /* Trailing byte, truncation, a bare array, a non-canonical head (map length in 1 byte). */
    atp_buf_append_byte(&b, 0x00);
    T_EQ(atp_commit_decode(a, atp_buf_slice(&b), &c, NULL), ATP_EINVAL);
    T_EQ(atp_commit_decode(a, atp_slice_make(b.ptr, b.len - 2), &c, NULL), ATP_EINVAL);
    T_EQ(atp_commit_decode(a, ATP_SLICE_LIT("\x80"), &c, NULL), ATP_EINVAL);
    T_EQ(atp_commit_decode(a, ATP_SLICE_LIT(""), &c, NULL), ATP_EINVAL);
    b.len--;
    {
        atp_buf nc;
        atp_buf_init(&nc, 0);
        atp_buf_append(&nc, "\xb8\x06", 2);
        atp_buf_append(&nc, b.ptr + 1, b.len - 1);
        T_EQ(atp_commit_decode(a, atp_buf_slice(&nc), &c, NULL), ATP_EINVAL);
        atp_buf_release(&nc);
    }
    memset(big, 0xa0, sizeof big);
    T_EQ(atp_commit_decode(a, atp_slice_make(big, sizeof big), &c, NULL), ATP_ELIMIT);
    atp_buf_release(&b);
    atp_arena_destroy(a);
}

/* s -> n - s for secp256k1: the same signature, high-S (spec identity-crypto.md §2). */
static void flip_s(uint8_t sig[64])
{
    static const char n_hex[] = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
    uint8_t n[32];
    int borrow = 0;
    unhex(n_hex, n, 32);
    for (int i = 31; i >= 0; i--) {
        int d = n[i] - sig[32 + i] - borrow;
        borrow = d < 0;
        sig[32 + i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
}

static void test_verify_rejects(void)
{
    atp_key *k = ex_key(), *other = NULL;
    atp_commit c = {atp_slice_str(ex_did), atp_slice_str(ex_rev), cid_of(ex_data), false, {0}, {0}};
    atp_commit t;
    atp_err err = {0};
    T_OK(atp_commit_sign(&c, k, NULL));
    T_OKE(atp_commit_verify(&c, k, &err), &err);
    t = c;
    t.sig[10] ^= 1;
    T_EQ(atp_commit_verify(&t, k, &err), ATP_ESIG);
    t = c;
    flip_s(t.sig);
    T_EQ(atp_commit_verify(&t, k, &err), ATP_EINVAL);
    t = c;
    t.has_prev = true;
    t.prev = c.data;
    T_EQ(atp_commit_verify(&t, k, &err), ATP_ESIG);
    T_OK(atp_key_generate(ATP_CURVE_K256, &other, NULL));
    T_EQ(atp_commit_verify(&c, other, &err), ATP_ESIG);
    atp_key_destroy(other);
    atp_key_destroy(k);
}

static void test_sign_rules(void)
{
    atp_key *k = ex_key(), *p = NULL, *pub = NULL;
    atp_commit c = {atp_slice_str(ex_did), atp_slice_str("nope"), cid_of(ex_data), false, {0}, {0}};
    uint8_t pt[ATP_KEY_PUB_LEN];
    atp_buf b;
    atp_err err = {0};
    T_EQ(atp_commit_sign(&c, k, &err), ATP_EINVAL);
    c.rev = atp_slice_str(ex_rev);
    c.did = atp_slice_str("not-a-did");
    T_EQ(atp_commit_sign(&c, k, &err), ATP_EINVAL);
    c.did = atp_slice_str(ex_did);
    atp_cid_compute(&c.data, ATP_CODEC_RAW, ATP_SLICE_LIT("x"));
    T_EQ(atp_commit_sign(&c, k, &err), ATP_EINVAL);
    c.data = cid_of(ex_data);
    /* A public-only key cannot sign. */
    atp_key_export_public(k, pt);
    T_OK(atp_key_import_public(ATP_CURVE_K256, atp_slice_make(pt, sizeof pt), &pub, NULL));
    T_EQ(atp_commit_sign(&c, pub, &err), ATP_EKEY);
    /* P-256 signs and verifies too (random nonces: only verification is comparable). */
    T_OK(atp_key_generate(ATP_CURVE_P256, &p, NULL));
    T_OKE(atp_commit_sign(&c, p, &err), &err);
    T_OKE(atp_commit_verify(&c, p, &err), &err);
    T_EQ(atp_commit_verify(&c, k, &err), ATP_ESIG);
    /* A buffer too small for the commit: ATP_ELIMIT, buffer unchanged. */
    atp_buf_init(&b, 100);
    T_EQ(atp_commit_create(&b, c.did, c.rev, &c.data, k, NULL, NULL, &err), ATP_ELIMIT);
    T_EQ(b.len, 0);
    atp_buf_release(&b);
    atp_key_destroy(p);
    atp_key_destroy(pub);
    atp_key_destroy(k);
}

static void test_revs(void)
{
    char r1[14], r2[14], future[14];
    uint64_t now_us, us;
    unsigned clock;
    atp_commit_next_rev(atp_slice_str(""), r1);
    T_TRUE(atp_syntax_is_tid(atp_slice_str(r1)));
    atp_commit_next_rev(atp_slice_str(r1), r2);
    T_TRUE(atp_tid_compare(atp_slice_str(r2), atp_slice_str(r1)) > 0);
    /* A previous rev an hour ahead of the clock still gets a successor. */
    T_OK(atp_tid_decode(atp_slice_str(r2), &now_us, &clock, NULL));
    atp_tid_encode(now_us + 3600ull * 1000000, 0, future);
    atp_commit_next_rev(atp_slice_str(future), r1);
    T_TRUE(atp_tid_compare(atp_slice_str(r1), atp_slice_str(future)) > 0);
    T_OK(atp_tid_decode(atp_slice_str(r1), &us, &clock, NULL));
    T_EQ(us, now_us + 3600ull * 1000000 + 1);

    T_OK(atp_commit_check_rev(atp_slice_str(r2), atp_slice_str(""), now_us, 300000000, NULL));
    T_OK(atp_commit_check_rev(atp_slice_str(future), atp_slice_str(r2), now_us, 3600000000u, NULL));
    T_EQ(atp_commit_check_rev(atp_slice_str(future), atp_slice_str(r2), now_us, 300000000, NULL),
         ATP_ELIMIT);
    T_EQ(atp_commit_check_rev(atp_slice_str(r2), atp_slice_str(r2), now_us, 300000000, NULL),
         ATP_ECONFLICT);
    T_EQ(atp_commit_check_rev(atp_slice_str(r2), atp_slice_str(future), now_us, 300000000, NULL),
         ATP_ECONFLICT);
    T_EQ(atp_commit_check_rev(atp_slice_str("3kznmn7xqxl2"), atp_slice_str(""), now_us, 1, NULL),
         ATP_EINVAL);
}

int main(void)
{
    T_RUN(test_worked_example);
    T_RUN(test_verify_example);
    T_RUN(test_decode_roundtrip);
    T_RUN(test_decode_rejects);
    T_RUN(test_decode_rejects_bytes);
    T_RUN(test_verify_rejects);
    T_RUN(test_sign_rules);
    T_RUN(test_revs);
    return t_done();
}
