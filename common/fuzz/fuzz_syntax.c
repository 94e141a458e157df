/* fuzz_syntax.c: every string-format checker on the input, plus invariants: wrappers agree with
 * checkers, errors carry a code and an in-range offset, handle normalization yields a valid handle
 * and is idempotent, AT-URI parts re-join to the input and are valid on their own, NSID
 * authority + name re-join, a datetime re-formatted from its parsed instant parses to the same
 * instant, and a syntactically valid TID decodes and re-encodes to itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/syntax.h"
#include "atp/tid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__);                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef int (*check_fn)(atp_slice, atp_err *);
typedef bool (*is_fn)(atp_slice);

static int check_one(check_fn check, is_fn is, atp_slice s)
{
    atp_err e;
    atp_err_clear(&e);
    int rc = check(s, &e);
    CHECK(rc == 0 || rc == ATP_EINVAL);
    CHECK(is(s) == (rc == 0));
    if (rc != 0) {
        CHECK(e.code == rc && e.msg[0] != '\0' && e.off <= s.len);
    }
    return rc;
}

static void handle_invariants(atp_slice s)
{
    char a[ATP_SYNTAX_HANDLE_MAX + 1], b[ATP_SYNTAX_HANDLE_MAX + 1];
    CHECK(atp_syntax_normalize_handle(s, a, sizeof a, NULL) == 0);
    CHECK(strlen(a) == s.len && atp_syntax_is_handle(atp_slice_str(a)));
    CHECK(atp_syntax_normalize_handle(atp_slice_str(a), b, sizeof b, NULL) == 0);
    CHECK(strcmp(a, b) == 0);
    CHECK(atp_syntax_handle_tld_allowed(s) == atp_syntax_handle_tld_allowed(atp_slice_str(a)));
}

static void aturi_invariants(atp_slice s)
{
    atp_aturi u;
    char buf[ATP_SYNTAX_ATURI_MAX + 8];
    size_t n = 0;
    CHECK(atp_syntax_parse_aturi(s, &u, NULL) == 0);
    CHECK(atp_syntax_is_atidentifier(u.authority));
    memcpy(buf, "at://", 5);
    n = 5;
    memcpy(buf + n, u.authority.ptr, u.authority.len);
    n += u.authority.len;
    if (u.collection.len > 0) {
        CHECK(atp_syntax_is_nsid(u.collection));
        buf[n++] = '/';
        memcpy(buf + n, u.collection.ptr, u.collection.len);
        n += u.collection.len;
    }
    if (u.rkey.len > 0) {
        CHECK(u.collection.len > 0 && atp_syntax_is_rkey(u.rkey));
        buf[n++] = '/';
        memcpy(buf + n, u.rkey.ptr, u.rkey.len);
        n += u.rkey.len;
    }
    CHECK(n == s.len && memcmp(buf, s.ptr, n) == 0);
}

static void nsid_invariants(atp_slice s)
{
    atp_slice auth = atp_syntax_nsid_authority(s), name = atp_syntax_nsid_name(s);
    CHECK(auth.len + 1 + name.len == s.len);
    CHECK(auth.ptr == s.ptr && s.ptr[auth.len] == '.' && name.ptr == s.ptr + auth.len + 1);
    CHECK(name.len > 0 && memchr(name.ptr, '.', name.len) == NULL);
}

/* Civil date from days since 1970-01-01 (inverse of the parser's day count). */
static void civil(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

static void datetime_invariants(atp_slice s)
{
    int64_t us = 0, again = -1, y, mo, d;
    char buf[64];
    CHECK(atp_syntax_parse_datetime(s, &us, NULL) == 0);
    int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    int64_t frac = us - secs * 1000000,
            days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400;
    civil(days, &y, &mo, &d);
    CHECK(y >= 0);
    if (y > 9999) {
        return; /* "9999-12-31T23:59:59-01:00" is year 10000 in UTC: no 4-digit form */
    }
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", (int)y, (int)mo, (int)d,
             (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (int)frac);
    CHECK(atp_syntax_parse_datetime(atp_slice_str(buf), &again, NULL) == 0);
    CHECK(again == us);
}

static void tid_invariants(atp_slice s, bool syntax_ok)
{
    uint64_t us = 0;
    unsigned clk = 0;
    char out[14];
    bool decoded = atp_tid_decode(s, &us, &clk, NULL) == 0;
    CHECK(decoded == syntax_ok);
    if (decoded) {
        atp_tid_encode(us, clk, out);
        CHECK(s.len == 13 && memcmp(out, s.ptr, 13) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    atp_slice s = atp_slice_make(data, size);
    int handle = check_one(atp_syntax_check_handle, atp_syntax_is_handle, s);
    int did = check_one(atp_syntax_check_did, atp_syntax_is_did, s);
    int ident = check_one(atp_syntax_check_atidentifier, atp_syntax_is_atidentifier, s);
    CHECK((ident == 0) == (handle == 0 || did == 0));
    if (handle == 0) {
        handle_invariants(s);
    }
    if (check_one(atp_syntax_check_aturi, atp_syntax_is_aturi, s) == 0) {
        aturi_invariants(s);
    }
    if (check_one(atp_syntax_check_nsid, atp_syntax_is_nsid, s) == 0) {
        nsid_invariants(s);
    }
    if (check_one(atp_syntax_check_datetime, atp_syntax_is_datetime, s) == 0) {
        datetime_invariants(s);
    }
    tid_invariants(s, check_one(atp_syntax_check_tid, atp_syntax_is_tid, s) == 0);
    (void)check_one(atp_syntax_check_rkey, atp_syntax_is_rkey, s);
    (void)check_one(atp_syntax_check_language, atp_syntax_is_language, s);
    (void)check_one(atp_syntax_check_cid, atp_syntax_is_cid, s);
    (void)check_one(atp_syntax_check_uri, atp_syntax_is_uri, s);
    return 0;
}
