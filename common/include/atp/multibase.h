/* atp/multibase.h: base32 (RFC 4648 lower case, no padding), base58btc, base64 (standard and
 * URL-safe alphabets), base16, and the multibase prefixes 'b' 'z' 'm' 'u' 'f'.
 *
 * Encoders append to a bounded buffer (sticky error). Decoders write into a caller's buffer
 * of `cap` bytes; ATP_ELIMIT if the result would not fit, ATP_EINVAL with the offset of the
 * first bad character otherwise. Inputs are length-bounded slices; no NUL is needed. */
#ifndef ATP_MULTIBASE_H
#define ATP_MULTIBASE_H

#include "atp/buf.h"

typedef enum atp_base {
    ATP_BASE32 = 'b',    /* RFC 4648 lower-case alphabet, no padding */
    ATP_BASE58BTC = 'z', /* bitcoin alphabet */
    ATP_BASE64 = 'm',    /* RFC 4648 §4 standard alphabet, no padding on output */
    ATP_BASE64URL = 'u', /* RFC 4648 §5 URL-safe alphabet, no padding on output */
    ATP_BASE16 = 'f',    /* lower-case hex */
} atp_base;

/* base58 is quadratic and only carries keys: decoding refuses more than ATP_BASE58_MAX_CHARS
 * characters (ATP_ELIMIT) and encoding more than ATP_BASE58_MAX_BYTES bytes (sets the buffer's
 * err to ATP_ELIMIT). Whatever decodes (at most 256 bytes: all '1') re-encodes; an encoding of
 * more than 187 bytes may be longer than the decoder accepts. */
#define ATP_BASE58_MAX_CHARS 256
#define ATP_BASE58_MAX_BYTES 256

/* Upper bound of the encoded length of `n` bytes (without multibase prefix). */
size_t atp_base_encoded_max(atp_base base, size_t n);
/* Upper bound of the decoded length of `n` characters. */
size_t atp_base_decoded_max(atp_base base, size_t n);

/* Appends the encoding of `in` (no prefix). Unknown base: out->err = ATP_EINVAL; base58 input
 * over ATP_BASE58_MAX_BYTES: out->err = ATP_ELIMIT. */
void atp_base_encode(atp_buf *out, atp_base base, atp_slice in);

/* Writes the encoding of `in` (no prefix, no NUL) into dst[0..cap) without allocating; returns
 * its length. Returns 0 (nothing written) if cap < atp_base_encoded_max(base, in.len), the base
 * is unknown, base58 input is over ATP_BASE58_MAX_BYTES, or `in` is empty. */
size_t atp_base_encode_to(atp_base base, atp_slice in, uint8_t *dst, size_t cap);

/* Decodes `in` (no prefix) into dst[0..cap), writing the length to *len.
 * base64/base64url: padding '=' accepted on input only at the end and only in the right
 * amount; non-zero trailing bits are accepted (as the reference does). base32 decoding also
 * accepts upper case. base16 accepts both cases. */
ATP_NODISCARD int atp_base_decode(atp_base base, atp_slice in, uint8_t *dst, size_t cap,
                                  size_t *len, atp_err *err);

/* Appends the prefix character then the encoding. */
void atp_multibase_encode(atp_buf *out, atp_base base, atp_slice in);

/* Decodes a multibase string (prefix then data); writes the base found to *base (nullable).
 * Unknown prefixes: ATP_EINVAL. */
ATP_NODISCARD int atp_multibase_decode(atp_slice in, uint8_t *dst, size_t cap, size_t *len,
                                       atp_base *base, atp_err *err);

/* Hex helpers used by tools and tests: lower-case encoding, decoding accepts both cases and
 * requires an even length. */
void atp_hex_encode(atp_buf *out, atp_slice in);
ATP_NODISCARD int atp_hex_decode(atp_slice in, uint8_t *dst, size_t cap, size_t *len,
                                 atp_err *err);

#endif
