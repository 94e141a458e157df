/* pds/src/password.c: scrypt hashing with OpenSSL's EVP_PBE_scrypt. */
#include "password.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SALT_LEN 16
#define KEY_LEN 64
#define LN_DEFAULT 14

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Exactly 2 * n lowercase hex digits. */
static bool hex_decode(const char *in, size_t in_len, unsigned char *out, size_t n)
{
    if (in_len != 2 * n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

static bool derive(const char *pw, size_t pw_len, const unsigned char *salt, unsigned ln,
                   unsigned r, unsigned p, unsigned char key[KEY_LEN])
{
    uint64_t n = 1ULL << ln;
    /* maxmem: 128 * r * N plus slack; the default (32 MiB) would refuse larger settings. */
    uint64_t maxmem = 128ULL * r * n * 2 + 1024 * 1024;
    return EVP_PBE_scrypt(pw, pw_len, salt, SALT_LEN, n, r, p, maxmem, key, KEY_LEN) == 1;
}

int pds_password_hash(const char *pw, size_t pw_len, char out[PDS_PW_HASH_LEN])
{
    unsigned char salt[SALT_LEN], key[KEY_LEN];
    char salt_hex[2 * SALT_LEN + 1], key_hex[2 * KEY_LEN + 1];
    if (pw_len == 0 || pw_len > PDS_PASSWORD_MAX) {
        return ATP_EINVAL;
    }
    if (RAND_bytes(salt, SALT_LEN) != 1 || !derive(pw, pw_len, salt, LN_DEFAULT, 8, 1, key)) {
        return ATP_EINTERNAL;
    }
    hex_encode(salt, SALT_LEN, salt_hex);
    hex_encode(key, KEY_LEN, key_hex);
    OPENSSL_cleanse(key, sizeof key);
    snprintf(out, PDS_PW_HASH_LEN, "$scrypt$ln=%d,r=8,p=1$%s$%s", LN_DEFAULT, salt_hex, key_hex);
    return 0;
}

/* One or two decimal digits, no sign or blank, then `stop`; advances *s past `stop`. */
static bool small_uint(const char **s, char stop, unsigned *out)
{
    const char *p = *s;
    unsigned v = 0;
    int n = 0;
    while (n < 2 && *p >= '0' && *p <= '9') {
        v = v * 10 + (unsigned)(*p++ - '0');
        n++;
    }
    if (n == 0 || *p != stop || (n == 2 && (*s)[0] == '0')) {
        return false;
    }
    *s = p + 1;
    *out = v;
    return true;
}

/* Parses "$scrypt$ln=A,r=B,p=C$" and returns the rest, or NULL. */
static const char *parse_params(const char *s, unsigned *ln, unsigned *r, unsigned *p)
{
    if (strncmp(s, "$scrypt$ln=", 11) != 0) {
        return NULL;
    }
    s += 11;
    if (!small_uint(&s, ',', ln) || strncmp(s, "r=", 2) != 0) {
        return NULL;
    }
    s += 2;
    if (!small_uint(&s, ',', r) || strncmp(s, "p=", 2) != 0) {
        return NULL;
    }
    s += 2;
    if (!small_uint(&s, '$', p)) {
        return NULL;
    }
    /* Bounded so a corrupted row cannot make one check allocate more than 128 MiB. */
    if (*ln < 10 || *ln > 16 || *r < 1 || *r > 16 || *p < 1 || *p > 4 ||
        (128ULL << *ln) * *r > (128ULL << 20)) {
        return NULL;
    }
    return s;
}

bool pds_password_params(const char *stored, unsigned *ln, unsigned *r, unsigned *p)
{
    unsigned a, b, c;
    const char *rest = stored ? parse_params(stored, &a, &b, &c) : NULL;
    const char *dollar = rest ? strchr(rest, '$') : NULL;
    if (!dollar || (size_t)(dollar - rest) != 2 * SALT_LEN || strlen(dollar + 1) != 2 * KEY_LEN ||
        strspn(rest, "0123456789abcdef") != 2 * SALT_LEN ||
        strspn(dollar + 1, "0123456789abcdef") != 2 * KEY_LEN) {
        return false;
    }
    *ln = a, *r = b, *p = c;
    return true;
}

bool pds_password_verify(const char *pw, size_t pw_len, const char *stored)
{
    unsigned ln, r, p;
    unsigned char salt[SALT_LEN], want[KEY_LEN], got[KEY_LEN];
    const char *rest = stored ? parse_params(stored, &ln, &r, &p) : NULL;
    const char *dollar = rest ? strchr(rest, '$') : NULL;
    bool ok;
    if (!dollar || pw_len == 0 || pw_len > 4096 ||
        !hex_decode(rest, (size_t)(dollar - rest), salt, SALT_LEN) ||
        !hex_decode(dollar + 1, strlen(dollar + 1), want, KEY_LEN)) {
        return false;
    }
    ok = derive(pw, pw_len, salt, ln, r, p, got) && CRYPTO_memcmp(got, want, KEY_LEN) == 0;
    OPENSSL_cleanse(got, sizeof got);
    return ok;
}

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

void pds_app_password_generate(char out[PDS_APP_PASS_LEN + 1])
{
    unsigned char rnd[16];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        abort(); /* no randomness: never hand out a guessable password */
    }
    for (int i = 0, o = 0; i < 16; i++) {
        if (i > 0 && i % 4 == 0) {
            out[o++] = '-';
        }
        out[o++] = b32[rnd[i] & 31];
    }
    out[PDS_APP_PASS_LEN] = '\0';
}

bool pds_app_password_shape(const char *s, size_t n)
{
    if (n != PDS_APP_PASS_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        bool dash = i % 5 == 4;
        if (dash ? s[i] != '-' : (s[i] == '\0' || !strchr(b32, s[i]))) {
            return false;
        }
    }
    return true;
}

void pds_random_token(char *out, size_t nbytes)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char rnd[64];
    size_t o = 0, bits = 0;
    uint32_t acc = 0;
    if (nbytes > sizeof rnd || RAND_bytes(rnd, (int)nbytes) != 1) {
        abort(); /* programming error or no randomness */
    }
    for (size_t i = 0; i < nbytes; i++) {
        acc = acc << 8 | rnd[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = a[(acc >> bits) & 63];
        }
    }
    if (bits > 0) {
        out[o++] = a[(acc << (6 - bits)) & 63];
    }
    out[o] = '\0';
}
