/* fuzz_pds: the pds daemon's pure parsers. The first byte picks the parser:
 *   0: handle rules (pds_handle_check) against ".test" and ".pds.example.com"
 *   1: stored password hash strings (pds_password_params)
 *   2: app password shape (pds_app_password_shape)
 * Invariants: accepted handles are syntactically valid and have one 3..18-character label
 * before a service domain; accepted hash strings re-format to themselves; app password
 * shapes are exactly 4 groups of 4 base32 characters. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/syntax.h"

#include "account.h"
#include "password.h"

static void check_handle(const char *s, size_t n)
{
    static pds_config c;
    atp_err err;
    const char *dom = NULL;
    if (c.n_handle_domains == 0) {
        memcpy(c.handle_domains[0], ".test", 6);
        memcpy(c.handle_domains[1], ".pds.example.com", 17);
        c.n_handle_domains = 2;
    }
    if (pds_handle_check(&c, s, &err) != 0) {
        return;
    }
    if (!atp_syntax_is_handle(atp_slice_make(s, n))) {
        abort();
    }
    for (unsigned i = 0; i < c.n_handle_domains; i++) {
        size_t dn = strlen(c.handle_domains[i]);
        if (n > dn && strcmp(s + n - dn, c.handle_domains[i]) == 0) {
            dom = c.handle_domains[i];
        }
    }
    size_t front = dom ? n - strlen(dom) : 0;
    if (!dom || front < 3 || front > 18 || memchr(s, '.', front)) {
        abort();
    }
}

static void check_hash(const char *s, size_t n)
{
    unsigned ln, r, p;
    char again[PDS_PW_HASH_LEN];
    if (!pds_password_params(s, &ln, &r, &p)) {
        return;
    }
    if (ln < 10 || ln > 16 || r < 1 || r > 16 || p < 1 || p > 4) {
        abort();
    }
    /* Canonical: the parameters written back give the same prefix. */
    int k = snprintf(again, sizeof again, "$scrypt$ln=%u,r=%u,p=%u$", ln, r, p);
    if (k < 0 || (size_t)k > n || memcmp(again, s, (size_t)k) != 0 ||
        n != (size_t)k + 32 + 1 + 128) {
        abort();
    }
}

static void check_app_password(const char *s, size_t n)
{
    if (!pds_app_password_shape(s, n)) {
        return;
    }
    if (n != 19 || s[4] != '-' || s[9] != '-' || s[14] != '-') {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        if (i % 5 != 4 && !strchr("abcdefghijklmnopqrstuvwxyz234567", s[i])) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;
    if (size < 1 || size > 4096) {
        return 0;
    }
    s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    /* Embedded NULs: the C-string parsers see the prefix; the shape check sees all bytes. */
    switch (data[0] % 3) {
    case 0:
        check_handle(s, strlen(s));
        break;
    case 1:
        check_hash(s, strlen(s));
        break;
    default:
        check_app_password(s, size - 1);
        break;
    }
    free(s);
    return 0;
}
