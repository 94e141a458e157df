/* cmd_key.c: `atp key gen|pub|sign|verify`. Private keys are hex (32 bytes), public keys
 * did:key, signatures base64url (64-byte r||s, low-S). */
#include <stdio.h>
#include <string.h>

#include "atp.h"
#include "atp/crypto.h"
#include "atp/multibase.h"

static int curve_opt(int argc, char **argv, atp_curve *c)
{
    atp_err err = {0};
    const char *name = atp_tool_opt(argc, argv, "--curve");
    if (!name) {
        name = "k256";
    }
    if (atp_curve_from_name(atp_slice_str(name), c, &err) != 0) {
        return atp_tool_fail("--curve", &err);
    }
    return 0;
}

static void print_didkey(const char *label, const atp_key *k)
{
    atp_buf b;
    atp_buf_init(&b, 256);
    atp_didkey_encode(&b, k);
    printf("%s%.*s\n", label, (int)b.len, (const char *)b.ptr);
    atp_buf_release(&b);
}

static int key_gen(int argc, char **argv)
{
    atp_curve c;
    atp_key *k;
    atp_err err = {0};
    uint8_t priv[ATP_KEY_PRIV_LEN];
    atp_buf hex;
    if (curve_opt(argc, argv, &c) != 0) {
        return ATP_EXIT_INVALID;
    }
    if (atp_key_generate(c, &k, &err) != 0 || atp_key_export_private(k, priv, &err) != 0) {
        return atp_tool_fail("key gen", &err);
    }
    atp_buf_init(&hex, 128);
    atp_hex_encode(&hex, atp_slice_make(priv, sizeof priv));
    printf("private: %.*s\n", (int)hex.len, (const char *)hex.ptr);
    print_didkey("did: ", k);
    printf("curve: %s\n", atp_curve_name(c));
    atp_buf_release(&hex);
    atp_key_destroy(k);
    return ATP_EXIT_OK;
}

/* Imports the private key given as argv[0] (hex) with --curve. */
static int load_private(int argc, char **argv, atp_key **k)
{
    atp_curve c;
    atp_err err = {0};
    if (argc < 1 || curve_opt(argc, argv, &c) != 0) {
        return ATP_EXIT_INVALID;
    }
    if (atp_key_import_private_hex(c, atp_slice_str(argv[0]), k, &err) != 0) {
        return atp_tool_fail("private key", &err);
    }
    return 0;
}

static int key_pub(int argc, char **argv)
{
    atp_key *k;
    if (load_private(argc, argv, &k) != 0) {
        return ATP_EXIT_INVALID;
    }
    print_didkey("", k);
    atp_key_destroy(k);
    return ATP_EXIT_OK;
}

static int key_sign(int argc, char **argv)
{
    atp_key *k;
    atp_buf in, out;
    atp_err err = {0};
    uint8_t sig[ATP_SIG_LEN];
    int rc = ATP_EXIT_INVALID;
    if (load_private(argc, argv, &k) != 0) {
        return ATP_EXIT_INVALID;
    }
    atp_buf_init(&in, ATP_TOOL_MAX_INPUT);
    atp_buf_init(&out, 256);
    if (atp_tool_read_input(NULL, &in) == 0) {
        if (atp_key_sign(k, atp_buf_slice(&in), sig, &err) != 0) {
            rc = atp_tool_fail("sign", &err);
        } else {
            atp_base_encode(&out, ATP_BASE64URL, atp_slice_make(sig, sizeof sig));
            printf("%.*s\n", (int)out.len, (const char *)out.ptr);
            rc = ATP_EXIT_OK;
        }
    }
    atp_buf_release(&in);
    atp_buf_release(&out);
    atp_key_destroy(k);
    return rc;
}

static int key_verify(int argc, char **argv)
{
    atp_key *k = NULL;
    atp_buf in;
    atp_err err = {0};
    uint8_t sig[128];
    size_t sig_len = 0;
    int rc = ATP_EXIT_INVALID;
    if (argc != 2) {
        return atp_tool_usage("usage: atp key verify DIDKEY SIGB64URL < message\n");
    }
    if (atp_didkey_decode(atp_slice_str(argv[0]), &k, &err) != 0) {
        return atp_tool_fail("did:key", &err);
    }
    atp_buf_init(&in, ATP_TOOL_MAX_INPUT);
    if (atp_base_decode(ATP_BASE64URL, atp_slice_str(argv[1]), sig, sizeof sig, &sig_len,
                        &err) != 0) {
        rc = atp_tool_fail("signature", &err);
    } else if (atp_tool_read_input(NULL, &in) == 0) {
        if (atp_key_verify(k, atp_buf_slice(&in), atp_slice_make(sig, sig_len), &err) != 0) {
            rc = atp_tool_fail("verify", &err);
        } else {
            rc = ATP_EXIT_OK;
        }
    }
    atp_buf_release(&in);
    atp_key_destroy(k);
    return rc;
}

int atp_cmd_key(int argc, char **argv)
{
    static const char usage[] =
        "usage: atp key gen [--curve k256|p256]\n"
        "       atp key pub PRIVHEX [--curve k256|p256]\n"
        "       atp key sign PRIVHEX [--curve k256|p256] < message   (base64url signature)\n"
        "       atp key verify DIDKEY SIGB64URL < message\n";
    if (argc < 1) {
        return atp_tool_usage(usage);
    }
    if (strcmp(argv[0], "gen") == 0) {
        return key_gen(argc - 1, argv + 1);
    }
    if (strcmp(argv[0], "pub") == 0 && argc >= 2) {
        return key_pub(argc - 1, argv + 1);
    }
    if (strcmp(argv[0], "sign") == 0 && argc >= 2) {
        return key_sign(argc - 1, argv + 1);
    }
    if (strcmp(argv[0], "verify") == 0) {
        return key_verify(argc - 1, argv + 1);
    }
    return atp_tool_usage(usage);
}
