/* test_interop_crypto.c: signatures and did:key against @atproto/crypto, both ways.
 *
 * Theirs -> ours: gen_sigs.mjs signs messages with keys on both curves; we import the same
 * private bytes and must produce the same did:key, decode their did:key to the same point, and
 * verify every signature. Each of their signatures turned high-S must be rejected by us (and
 * accepted with ATP_SIG_ALLOW_HIGH_S, which proves the flip kept it mathematically valid).
 * Ours -> theirs: we sign on both curves and write the cases (plus high-S variants that must be
 * rejected, and their own signatures turned high-S) to a file that check_sigs.mjs checks.
 */
#include "t.h"

#include "interop_util.h"

#include "atp/crypto.h"
#include "atp/sha256.h"

#define N_PER_CURVE 50

/* Curve orders, big-endian: the high-S twin of s is n - s. */
/* clang-format off */
static const uint8_t K256_N[32] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};
static const uint8_t P256_N[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
/* clang-format on */

static FILE *g_out;      /* cases for check_sigs.mjs */
static int g_theirs_ok;  /* their signatures we verified */
static int g_didkeys_ok; /* their did:keys we reproduced */
static int g_high_s;     /* high-S twins we rejected */

static const char *alg_name(atp_curve c)
{
    return c == ATP_CURVE_K256 ? "ES256K" : "ES256";
}

/* sig[32..64) = n - s: the same signature in its high-S form. */
static void make_high_s(atp_curve c, const uint8_t sig[64], uint8_t out[64])
{
    const uint8_t *n = c == ATP_CURVE_K256 ? K256_N : P256_N;
    int borrow = 0;
    memcpy(out, sig, 32);
    for (int i = 31; i >= 0; i--) {
        int d = n[i] - sig[32 + i] - borrow;
        borrow = d < 0;
        out[32 + i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
}

static void write_case(atp_curve c, const char *priv_hex, const char *didkey, atp_slice msg,
                       const uint8_t sig[64], int expect)
{
    fprintf(g_out, "%s\t%s\t%s\t", alg_name(c), priv_hex, didkey);
    iu_put_hex(g_out, msg.ptr, msg.len);
    fputc('\t', g_out);
    iu_put_hex(g_out, sig, 64);
    fprintf(g_out, "\t%d\n", expect);
}

/* Checks that our verifier rejects the high-S twin only for being high-S; writes the twin for
 * the JS side too. */
static void check_high_s(const atp_key *pub, const char *didkey, atp_slice msg,
                         const uint8_t sig[64])
{
    uint8_t hi[64], hash[32];
    atp_curve c = atp_key_curve(pub);
    make_high_s(c, sig, hi);
    atp_sha256(msg, hash);
    T_EQ(atp_key_verify(pub, msg, atp_slice_make(hi, 64), NULL), ATP_EINVAL);
    T_OK(atp_key_verify_prehash_ex(pub, hash, atp_slice_make(hi, 64), ATP_SIG_ALLOW_HIGH_S, NULL));
    write_case(c, "", didkey, msg, hi, 0);
    g_high_s++;
}

static void check_their_line(char **f, atp_buf *priv, atp_buf *msg, atp_buf *sig)
{
    atp_curve c = strcmp(f[0], "ES256K") == 0 ? ATP_CURVE_K256 : ATP_CURVE_P256;
    atp_key *k = NULL, *pub = NULL;
    atp_buf dk;
    atp_err err;
    atp_buf_init(&dk, 256);
    T_TRUE(iu_unhex(f[1], priv) && iu_unhex(f[3], msg) && iu_unhex(f[4], sig));
    T_OKE(atp_key_import_private(c, atp_buf_slice(priv), &k, &err), &err);
    T_OKE(atp_didkey_decode(atp_slice_str(f[2]), &pub, &err), &err);
    if (k && pub && sig->len == 64) {
        atp_didkey_encode(&dk, k);
        atp_buf_append_byte(&dk, 0);
        T_STREQ((const char *)dk.ptr, f[2]);
        g_didkeys_ok += strcmp((const char *)dk.ptr, f[2]) == 0;
        T_TRUE(atp_key_equal_public(k, pub));
        T_EQ(atp_key_curve(pub), c);
        int rc = atp_key_verify(pub, atp_buf_slice(msg), atp_buf_slice(sig), &err);
        T_OKE(rc, &err);
        g_theirs_ok += rc == 0;
        check_high_s(pub, f[2], atp_buf_slice(msg), sig->ptr);
    }
    atp_buf_release(&dk);
    atp_key_destroy(k);
    atp_key_destroy(pub);
}

static void test_theirs_verify_here(void)
{
    char cmd[8192];
    size_t len, pos = 0;
    int lines = 0;
    atp_buf priv, msg, sig;
    iu_node_cmd(cmd, sizeof cmd, "gen_sigs.mjs", "50 7");
    char *text = iu_run(cmd, &len);
    atp_buf_init(&priv, 1024);
    atp_buf_init(&msg, 1 << 20);
    atp_buf_init(&sig, 1024);
    for (char *line; text && (line = iu_next_line(text, len, &pos)) != NULL;) {
        char *f[6];
        if (iu_fields(line, f, 6) != 5) {
            T_FAILF("gen_sigs line %d: expected 5 fields", lines + 1);
            continue;
        }
        check_their_line(f, &priv, &msg, &sig);
        lines++;
    }
    T_EQ(lines, 2 * N_PER_CURVE);
    T_EQ(g_theirs_ok, lines);
    T_EQ(g_didkeys_ok, lines);
    t_vectors("signatures by @atproto/crypto verified by atp_key_verify", g_theirs_ok);
    t_vectors("did:key from private bytes, theirs == ours", g_didkeys_ok);
    atp_buf_release(&priv);
    atp_buf_release(&msg);
    atp_buf_release(&sig);
    free(text);
}

/* Our signing key #i on curve c: SHA-256 of a label, so runs are reproducible. */
static atp_key *our_key(atp_curve c, int i, char priv_hex[65])
{
    char label[64];
    uint8_t d[32];
    atp_key *k = NULL;
    snprintf(label, sizeof label, "atproto-c signer %s %d", alg_name(c), i);
    atp_sha256(atp_slice_str(label), d);
    for (int j = 0; j < 32; j++) {
        snprintf(priv_hex + 2 * j, 3, "%02x", d[j]);
    }
    T_OK(atp_key_import_private(c, atp_slice_make(d, 32), &k, NULL));
    return k;
}

static int sign_one(atp_curve c, int i, uint8_t *msgbuf)
{
    char priv_hex[65];
    uint8_t sig[64];
    atp_buf dk;
    atp_key *k = our_key(c, i % 10, priv_hex);
    /* Sizes 0, 1, 2, ... then bigger: the empty message is a case of its own. */
    size_t mlen = i < 8 ? (size_t)i : (size_t)(i * 37 % 4096);
    atp_slice msg = atp_slice_make(msgbuf + i, mlen);
    if (!k) {
        return 0;
    }
    atp_buf_init(&dk, 256);
    atp_didkey_encode(&dk, k);
    atp_buf_append_byte(&dk, 0);
    T_OK(atp_key_sign(k, msg, sig, NULL));
    T_OK(atp_key_verify(k, msg, atp_slice_make(sig, 64), NULL));
    write_case(c, priv_hex, (const char *)dk.ptr, msg, sig, 1);
    check_high_s(k, (const char *)dk.ptr, msg, sig);
    atp_buf_release(&dk);
    atp_key_destroy(k);
    return 1;
}

static void test_ours_verify_there(void)
{
    char cmd[8192];
    size_t len;
    int signed_n = 0;
    uint8_t msgbuf[4096 + 64];
    for (size_t j = 0; j < sizeof msgbuf; j++) {
        msgbuf[j] = (uint8_t)(j * 131 + 7);
    }
    for (int i = 0; i < N_PER_CURVE; i++) {
        signed_n += sign_one(ATP_CURVE_K256, i, msgbuf);
        signed_n += sign_one(ATP_CURVE_P256, i, msgbuf);
    }
    T_TRUE(fclose(g_out) == 0);
    g_out = NULL;
    char args[4200];
    snprintf(args, sizeof args, "'%s'", iu_out_path("interop_sigs_ours.tsv"));
    iu_node_cmd(cmd, sizeof cmd, "check_sigs.mjs", args);
    char *text = iu_run(cmd, &len);
    if (text) {
        printf("# %s", text);
        T_TRUE(strstr(text, " 0 failed") != NULL);
    }
    T_EQ(signed_n, 2 * N_PER_CURVE);
    t_vectors("signatures by atp_key_sign verified by @atproto/crypto", text ? signed_n : 0);
    t_vectors("high-S twins rejected (ours and @atproto/crypto)", text ? g_high_s : 0);
    free(text);
}

int main(void)
{
    g_out = fopen(iu_out_path("interop_sigs_ours.tsv"), "w");
    if (!g_out) {
        printf("cannot write %s\n", iu_out_path("interop_sigs_ours.tsv"));
        return 1;
    }
    T_RUN(test_theirs_verify_here);
    T_RUN(test_ours_verify_there);
    return t_done();
}
