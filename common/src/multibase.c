/* multibase.c: the base encodings of atproto. base32/base64/base16 are table driven (forward
 * alphabets, reverse tables indexed by byte where 0 means "not in the alphabet" and v+1 the
 * digit), working in whole groups (5 bytes <-> 8 chars, 3 <-> 4) with a bit accumulator only
 * for the tail. base58 is quadratic big-number conversion: it only carries keys, so its input is
 * bounded (ATP_BASE58_MAX_CHARS / ATP_BASE58_MAX_BYTES) and its scratch lives on the stack. */
#include "atp/multibase.h"

#include <string.h>

static const char B32[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char B58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
static const char HEX[] = "0123456789abcdef";

static const uint8_t b32_rev[256] = {
    ['a'] = 1, ['b'] = 2, ['c'] = 3, ['d'] = 4, ['e'] = 5, ['f'] = 6, ['g'] = 7, ['h'] = 8,
    ['i'] = 9, ['j'] = 10, ['k'] = 11, ['l'] = 12, ['m'] = 13, ['n'] = 14, ['o'] = 15, ['p'] = 16,
    ['q'] = 17, ['r'] = 18, ['s'] = 19, ['t'] = 20, ['u'] = 21, ['v'] = 22, ['w'] = 23,
    ['x'] = 24, ['y'] = 25, ['z'] = 26, ['2'] = 27, ['3'] = 28, ['4'] = 29, ['5'] = 30,
    ['6'] = 31, ['7'] = 32, ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
    ['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14,
    ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21,
    ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26,
};

static const uint8_t b64_rev[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23,
    ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37,
    ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44,
    ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50, ['y'] = 51,
    ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58,
    ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

static const uint8_t b64url_rev[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23,
    ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37,
    ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44,
    ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50, ['y'] = 51,
    ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58,
    ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

static const uint8_t b58_rev[256] = {
    ['1'] = 1, ['2'] = 2, ['3'] = 3, ['4'] = 4, ['5'] = 5, ['6'] = 6, ['7'] = 7, ['8'] = 8,
    ['9'] = 9, ['A'] = 10, ['B'] = 11, ['C'] = 12, ['D'] = 13, ['E'] = 14, ['F'] = 15, ['G'] = 16,
    ['H'] = 17, ['J'] = 18, ['K'] = 19, ['L'] = 20, ['M'] = 21, ['N'] = 22, ['P'] = 23,
    ['Q'] = 24, ['R'] = 25, ['S'] = 26, ['T'] = 27, ['U'] = 28, ['V'] = 29, ['W'] = 30,
    ['X'] = 31, ['Y'] = 32, ['Z'] = 33, ['a'] = 34, ['b'] = 35, ['c'] = 36, ['d'] = 37,
    ['e'] = 38, ['f'] = 39, ['g'] = 40, ['h'] = 41, ['i'] = 42, ['j'] = 43, ['k'] = 44,
    ['m'] = 45, ['n'] = 46, ['o'] = 47, ['p'] = 48, ['q'] = 49, ['r'] = 50, ['s'] = 51,
    ['t'] = 52, ['u'] = 53, ['v'] = 54, ['w'] = 55, ['x'] = 56, ['y'] = 57, ['z'] = 58,
};

static const uint8_t hex_rev[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

/* ---- sizes ---- */

size_t atp_base_encoded_max(atp_base base, size_t n)
{
    switch (base) {
    case ATP_BASE32:
        return n / 5 * 8 + (n % 5 * 8 + 4) / 5;
    case ATP_BASE64:
    case ATP_BASE64URL:
        return n / 3 * 4 + (n % 3 * 8 + 5) / 6;
    case ATP_BASE58BTC:
        /* log(256)/log(58) < 1.3658, plus one for rounding. */
        return n / 100 * 137 + (n % 100 * 137 + 99) / 100 + 1;
    case ATP_BASE16:
        return n * 2;
    }
    return 0;
}

size_t atp_base_decoded_max(atp_base base, size_t n)
{
    switch (base) {
    case ATP_BASE32:
        return n / 8 * 5 + n % 8 * 5 / 8;
    case ATP_BASE64:
    case ATP_BASE64URL:
        return n / 4 * 3 + n % 4 * 3 / 4;
    case ATP_BASE58BTC:
        /* Every leading '1' is a zero byte, so the bound is the length itself. */
        return n;
    case ATP_BASE16:
        return n / 2;
    }
    return 0;
}

/* ---- generic tail coder: a bit accumulator, used for the last partial group ---- */

static size_t encode_tail(const uint8_t *p, size_t n, const char *alpha, unsigned bits,
                          uint8_t *o)
{
    uint32_t acc = 0;
    unsigned nbits = 0;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | p[i];
        nbits += 8;
        while (nbits >= bits) {
            nbits -= bits;
            o[j++] = (uint8_t)alpha[(acc >> nbits) & ((1u << bits) - 1)];
        }
    }
    if (nbits > 0) {
        o[j++] = (uint8_t)alpha[(acc << (bits - nbits)) & ((1u << bits) - 1)];
    }
    return j;
}

static int bad_char(atp_slice in, size_t off, const char *what, atp_err *err)
{
    return atp_err_set(err, ATP_EINVAL, off, "invalid %s character 0x%02x at offset %zu", what,
                       in.ptr[off], off);
}

/* Decodes in[off..len) bit by bit; trailing bits that do not fill a byte are dropped (not
 * checked: the reference decoders are lenient there too). */
static int decode_tail(atp_slice in, size_t off, const uint8_t rev[256], unsigned bits,
                       const char *what, uint8_t *o, atp_err *err)
{
    uint32_t acc = 0;
    unsigned nbits = 0;
    size_t j = 0;
    for (size_t i = off; i < in.len; i++) {
        uint8_t d = rev[in.ptr[i]];
        if (!d) {
            return bad_char(in, i, what, err);
        }
        acc = (acc << bits) | (uint32_t)(d - 1);
        nbits += bits;
        if (nbits >= 8) {
            nbits -= 8;
            o[j++] = (uint8_t)(acc >> nbits);
        }
    }
    return 0;
}

static int check_cap(size_t need, size_t cap, atp_err *err)
{
    if (need > cap) {
        return atp_err_set(err, ATP_ELIMIT, 0, "decoded size %zu exceeds buffer of %zu", need,
                           cap);
    }
    return 0;
}

/* ---- base32 ---- */

static size_t b32_encode(atp_slice in, uint8_t *o)
{
    size_t i = 0, j = 0;
    for (; in.len - i >= 5; i += 5, j += 8) {
        const uint8_t *p = in.ptr + i;
        uint64_t v = ((uint64_t)p[0] << 32) | ((uint64_t)p[1] << 24) | ((uint64_t)p[2] << 16) |
                     ((uint64_t)p[3] << 8) | p[4];
        for (unsigned k = 0; k < 8; k++) {
            o[j + k] = (uint8_t)B32[(v >> (35 - 5 * k)) & 31];
        }
    }
    return j + encode_tail(in.ptr + i, in.len - i, B32, 5, o + j);
}

static int b32_decode(atp_slice in, uint8_t *dst, size_t cap, size_t *len, atp_err *err)
{
    size_t r = in.len % 8, olen = atp_base_decoded_max(ATP_BASE32, in.len), i = 0, j = 0;
    if (r == 1 || r == 3 || r == 6) {
        return atp_err_set(err, ATP_EINVAL, in.len, "invalid base32 length %zu", in.len);
    }
    int rc = check_cap(olen, cap, err);
    if (rc < 0) {
        return rc;
    }
    for (; in.len - i >= 8; i += 8, j += 5) {
        uint64_t v = 0;
        for (unsigned k = 0; k < 8; k++) {
            uint8_t d = b32_rev[in.ptr[i + k]];
            if (!d) {
                return bad_char(in, i + k, "base32", err);
            }
            v = (v << 5) | (uint64_t)(d - 1);
        }
        for (unsigned k = 0; k < 5; k++) {
            dst[j + k] = (uint8_t)(v >> (32 - 8 * k));
        }
    }
    rc = decode_tail(in, i, b32_rev, 5, "base32", dst + j, err);
    if (rc == 0) {
        *len = olen;
    }
    return rc;
}

/* ---- base64 ---- */

static size_t b64_encode(atp_slice in, const char *alpha, uint8_t *o)
{
    size_t i = 0, j = 0;
    for (; in.len - i >= 3; i += 3, j += 4) {
        const uint8_t *p = in.ptr + i;
        uint32_t v = ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
        o[j] = (uint8_t)alpha[v >> 18];
        o[j + 1] = (uint8_t)alpha[(v >> 12) & 63];
        o[j + 2] = (uint8_t)alpha[(v >> 6) & 63];
        o[j + 3] = (uint8_t)alpha[v & 63];
    }
    return j + encode_tail(in.ptr + i, in.len - i, alpha, 6, o + j);
}

/* Strips correct padding: only when the length is a multiple of 4, and exactly the one or two
 * '=' that the data length calls for. Anything else is left for the character check. */
static int b64_unpad(atp_slice *in, atp_err *err)
{
    size_t n = in->len, pads = 0;
    while (pads < n && pads < 3 && in->ptr[n - 1 - pads] == '=') {
        pads++;
    }
    if (pads == 0) {
        return 0;
    }
    if (n % 4 != 0 || pads > 2 || (n - pads) % 4 != 4 - pads) {
        return atp_err_set(err, ATP_EINVAL, n - pads, "invalid base64 padding");
    }
    in->len = n - pads;
    return 0;
}

static int b64_decode(atp_slice in, const uint8_t rev[256], uint8_t *dst, size_t cap,
                      size_t *len, atp_err *err)
{
    int rc = b64_unpad(&in, err);
    size_t olen = atp_base_decoded_max(ATP_BASE64, in.len), i = 0, j = 0;
    if (rc < 0) {
        return rc;
    }
    if (in.len % 4 == 1) {
        return atp_err_set(err, ATP_EINVAL, in.len, "invalid base64 length %zu", in.len);
    }
    if ((rc = check_cap(olen, cap, err)) < 0) {
        return rc;
    }
    for (; in.len - i >= 4; i += 4, j += 3) {
        const uint8_t *p = in.ptr + i;
        uint8_t a = rev[p[0]], b = rev[p[1]], c = rev[p[2]], d = rev[p[3]];
        if (!a || !b || !c || !d) {
            return decode_tail(in, i, rev, 6, "base64", dst + j, err);
        }
        uint32_t v = ((uint32_t)(a - 1) << 18) | ((uint32_t)(b - 1) << 12) |
                     ((uint32_t)(c - 1) << 6) | (uint32_t)(d - 1);
        dst[j] = (uint8_t)(v >> 16);
        dst[j + 1] = (uint8_t)(v >> 8);
        dst[j + 2] = (uint8_t)v;
    }
    rc = decode_tail(in, i, rev, 6, "base64", dst + j, err);
    if (rc == 0) {
        *len = olen;
    }
    return rc;
}

/* ---- base16 ---- */

static size_t b16_encode(atp_slice in, uint8_t *o)
{
    for (size_t i = 0; i < in.len; i++) {
        o[2 * i] = (uint8_t)HEX[in.ptr[i] >> 4];
        o[2 * i + 1] = (uint8_t)HEX[in.ptr[i] & 15];
    }
    return in.len * 2;
}

static int b16_decode(atp_slice in, uint8_t *dst, size_t cap, size_t *len, atp_err *err)
{
    if (in.len % 2 != 0) {
        return atp_err_set(err, ATP_EINVAL, in.len, "odd hex length %zu", in.len);
    }
    int rc = check_cap(in.len / 2, cap, err);
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < in.len; i += 2) {
        uint8_t hi = hex_rev[in.ptr[i]], lo = hex_rev[in.ptr[i + 1]];
        if (!hi || !lo) {
            return bad_char(in, hi ? i + 1 : i, "hex", err);
        }
        dst[i / 2] = (uint8_t)(((hi - 1) << 4) | (lo - 1));
    }
    *len = in.len / 2;
    return 0;
}

/* ---- base58btc ---- */

/* The caller has checked in.len <= ATP_BASE58_MAX_BYTES and room for the encoded maximum. */
static size_t b58_encode(atp_slice in, uint8_t *o)
{
    /* base-58 digits, least significant first: 8 bits need at most 1.37 digits. */
    uint8_t dig[ATP_BASE58_MAX_BYTES * 137 / 100 + 2];
    size_t zeros = 0, n = 0;
    while (zeros < in.len && in.ptr[zeros] == 0) {
        zeros++;
    }
    for (size_t i = zeros; i < in.len; i++) {
        unsigned carry = in.ptr[i];
        for (size_t k = 0; k < n; k++) {
            carry += (unsigned)dig[k] << 8;
            dig[k] = (uint8_t)(carry % 58);
            carry /= 58;
        }
        while (carry) {
            dig[n++] = (uint8_t)(carry % 58);
            carry /= 58;
        }
    }
    memset(o, '1', zeros);
    for (size_t k = 0; k < n; k++) {
        o[zeros + k] = (uint8_t)B58[dig[n - 1 - k]];
    }
    return zeros + n;
}

static int b58_decode(atp_slice in, uint8_t *dst, size_t cap, size_t *len, atp_err *err)
{
    uint8_t num[ATP_BASE58_MAX_CHARS]; /* the value, least significant byte first */
    size_t zeros = 0, n = 0;
    if (in.len > ATP_BASE58_MAX_CHARS) {
        return atp_err_set(err, ATP_ELIMIT, 0, "base58 input over %d characters",
                           ATP_BASE58_MAX_CHARS);
    }
    while (zeros < in.len && in.ptr[zeros] == '1') {
        zeros++;
    }
    for (size_t i = zeros; i < in.len; i++) {
        uint8_t d = b58_rev[in.ptr[i]];
        if (!d) {
            return bad_char(in, i, "base58", err);
        }
        unsigned carry = (unsigned)(d - 1);
        for (size_t k = 0; k < n; k++) {
            carry += (unsigned)num[k] * 58;
            num[k] = (uint8_t)carry;
            carry >>= 8;
        }
        while (carry) {
            num[n++] = (uint8_t)carry;
            carry >>= 8;
        }
    }
    int rc = check_cap(zeros + n, cap, err);
    if (rc < 0) {
        return rc;
    }
    memset(dst, 0, zeros);
    for (size_t k = 0; k < n; k++) {
        dst[zeros + k] = num[n - 1 - k];
    }
    *len = zeros + n;
    return 0;
}

/* ---- public entry points ---- */

static bool base_known(int c)
{
    return c == ATP_BASE32 || c == ATP_BASE58BTC || c == ATP_BASE64 || c == ATP_BASE64URL ||
           c == ATP_BASE16;
}

size_t atp_base_encode_to(atp_base base, atp_slice in, uint8_t *dst, size_t cap)
{
    if (in.len == 0 || !base_known((int)base) || cap < atp_base_encoded_max(base, in.len) ||
        (base == ATP_BASE58BTC && in.len > ATP_BASE58_MAX_BYTES)) {
        return 0;
    }
    switch (base) {
    case ATP_BASE32:
        return b32_encode(in, dst);
    case ATP_BASE64:
        return b64_encode(in, B64, dst);
    case ATP_BASE64URL:
        return b64_encode(in, B64URL, dst);
    case ATP_BASE58BTC:
        return b58_encode(in, dst);
    case ATP_BASE16:
        return b16_encode(in, dst);
    }
    return 0;
}

void atp_base_encode(atp_buf *out, atp_base base, atp_slice in)
{
    size_t max = atp_base_encoded_max(base, in.len);
    if (!base_known((int)base)) {
        out->err = ATP_EINVAL;
        return;
    }
    if (base == ATP_BASE58BTC && in.len > ATP_BASE58_MAX_BYTES) {
        out->err = ATP_ELIMIT;
        return;
    }
    if (in.len == 0) {
        return;
    }
    uint8_t *o = atp_buf_reserve(out, max);
    if (o) {
        /* base58's exact length is only known after encoding: commit what was written. */
        atp_buf_commit(out, atp_base_encode_to(base, in, o, max));
    }
}

int atp_base_decode(atp_base base, atp_slice in, uint8_t *dst, size_t cap, size_t *len,
                    atp_err *err)
{
    if (in.len == 0) {
        *len = 0;
        return 0;
    }
    switch (base) {
    case ATP_BASE32:
        return b32_decode(in, dst, cap, len, err);
    case ATP_BASE64:
        return b64_decode(in, b64_rev, dst, cap, len, err);
    case ATP_BASE64URL:
        return b64_decode(in, b64url_rev, dst, cap, len, err);
    case ATP_BASE58BTC:
        return b58_decode(in, dst, cap, len, err);
    case ATP_BASE16:
        return b16_decode(in, dst, cap, len, err);
    }
    return atp_err_set(err, ATP_EINVAL, 0, "unknown base");
}

void atp_multibase_encode(atp_buf *out, atp_base base, atp_slice in)
{
    if (!base_known((int)base)) {
        out->err = ATP_EINVAL;
        return;
    }
    atp_buf_append_byte(out, (uint8_t)base);
    atp_base_encode(out, base, in);
}

int atp_multibase_decode(atp_slice in, uint8_t *dst, size_t cap, size_t *len, atp_base *base,
                         atp_err *err)
{
    if (in.len == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "empty multibase string");
    }
    if (!base_known(in.ptr[0])) {
        return atp_err_set(err, ATP_EINVAL, 0, "unsupported multibase prefix 0x%02x",
                           in.ptr[0]);
    }
    atp_base b = (atp_base)in.ptr[0];
    size_t n;
    int rc = atp_base_decode(b, atp_slice_sub(in, 1, in.len - 1), dst, cap, &n, err);
    if (rc < 0) {
        if (err && rc == ATP_EINVAL) {
            err->off += 1; /* offsets are relative to the whole string, prefix included */
        }
        return rc;
    }
    *len = n;
    if (base) {
        *base = b;
    }
    return 0;
}

void atp_hex_encode(atp_buf *out, atp_slice in)
{
    atp_base_encode(out, ATP_BASE16, in);
}

int atp_hex_decode(atp_slice in, uint8_t *dst, size_t cap, size_t *len, atp_err *err)
{
    if (in.len == 0) {
        *len = 0;
        return 0;
    }
    return b16_decode(in, dst, cap, len, err);
}
