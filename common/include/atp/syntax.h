/* atp/syntax.h: validators for the atproto string formats (Lexicon `format` values): handle, DID,
 * NSID, TID, record key, AT-URI, datetime, language, cid, uri, at-identifier.
 *
 * All functions are pure: no allocation, no I/O, no globals, explicit lengths. Inputs may hold NUL
 * or non-ASCII bytes; every format here is ASCII-only, so such bytes are rejected, never read past.
 * Checkers return 0 or ATP_EINVAL and fill `err` (nullable) with the byte offset of the first
 * offending byte and a precise reason ("handle label 2 ends with '-'"). The length limit is
 * checked first; then one forward pass (the NSID name segment is read twice, and a language tag's
 * variants are compared pairwise, bounded by its 256-char limit).
 * Rules: /work/shared/spec/identity-crypto.md §1, matching the interop vectors in
 * interop/syntax/ (see the notes on NSID, cid and language below for the deliberate choices).
 */
#ifndef ATP_SYNTAX_H
#define ATP_SYNTAX_H

#include <stdbool.h>
#include <stdint.h>

#include "atp/buf.h"

#define ATP_SYNTAX_HANDLE_MAX   253  /* chars in a handle */
#define ATP_SYNTAX_LABEL_MAX    63   /* chars in a handle label or NSID segment */
#define ATP_SYNTAX_DID_MAX      2048 /* chars in a DID */
#define ATP_SYNTAX_NSID_MAX     317  /* chars in an NSID */
#define ATP_SYNTAX_TID_LEN      13   /* chars in a TID */
#define ATP_SYNTAX_RKEY_MAX     512  /* chars in a record key */
#define ATP_SYNTAX_ATURI_MAX    8192 /* bytes in an AT-URI */
#define ATP_SYNTAX_DATETIME_MAX 64   /* chars in a datetime */
#define ATP_SYNTAX_LANGUAGE_MAX 256  /* chars in a language tag (our bound; BCP 47 has none) */
#define ATP_SYNTAX_CID_MIN      8    /* chars in a Lexicon `cid` string, min */
#define ATP_SYNTAX_CID_MAX      256  /* chars in a Lexicon `cid` string, max */
#define ATP_SYNTAX_URI_MAX      8192 /* bytes in a Lexicon `uri` */

/* ---- checkers: 0 or ATP_EINVAL (offset + reason in err) ---- */

/* Handle: <= 253 chars, >= 2 dot-separated labels of 1-63 chars [A-Za-z0-9-], no label starting
 * or ending with '-', the last label (TLD) not starting with a digit. Case-insensitive: upper case
 * is accepted (see atp_syntax_normalize_handle). Disallowed TLDs are syntactically valid. */
ATP_NODISCARD int atp_syntax_check_handle(atp_slice s, atp_err *err);

/* DID: "did:" + method [a-z]+ + ":" + identifier of [A-Za-z0-9._:%-], not ending with ':' or '%',
 * <= 2048 chars. Any method is accepted. Like the reference validators, '%' escapes are not
 * checked for two hex digits here: resolution must do that. */
ATP_NODISCARD int atp_syntax_check_did(atp_slice s, atp_err *err);

/* NSID: >= 3 dot-separated segments, <= 317 chars. Authority segments: 1-63 chars [A-Za-z0-9-],
 * no leading/trailing '-', the first one starting with a letter. Name (last segment): a letter
 * then [A-Za-z0-9], <= 63 chars. The spec's 253-char cap on the authority is NOT enforced: the
 * reference validators only cap the total, and interop/syntax/nsid_syntax_valid.txt has a 287-char
 * NSID with a 283-char authority (interop README "Known quirks" 1): we match the reference. */
ATP_NODISCARD int atp_syntax_check_nsid(atp_slice s, atp_err *err);

/* TID: exactly 13 chars of the sortable base32 alphabet 234567abcdefghijklmnopqrstuvwxyz, the
 * first in 234567abcdefghij. Lower case only. */
ATP_NODISCARD int atp_syntax_check_tid(atp_slice s, atp_err *err);

/* Record key: 1-512 chars of [A-Za-z0-9._:~-], not "." nor "..". Case-sensitive. */
ATP_NODISCARD int atp_syntax_check_rkey(atp_slice s, atp_err *err);

/* AT-URI (restricted Lexicon form): "at://" authority ["/" collection ["/" rkey]], authority a
 * DID or a handle, collection an NSID, rkey a record key; no empty segment, no trailing '/', no
 * query or fragment, <= 8192 bytes. */
ATP_NODISCARD int atp_syntax_check_aturi(atp_slice s, atp_err *err);

/* Datetime: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), <= 64 chars, upper-case 'T'/'Z', >= 1
 * fraction digit after '.', "-00:00" refused; and a real instant (see atp_syntax_parse_datetime):
 * this checker rejects whatever the parser rejects. */
ATP_NODISCARD int atp_syntax_check_datetime(atp_slice s, atp_err *err);

/* Language: a well-formed BCP 47 (RFC 5646) tag, <= 256 chars, with no repeated variant or
 * extension singleton (compared case-insensitively), so the interop parse-invalid cases fail too.
 * Deliberate strictness matching the interop vectors: the primary language subtag must be lower
 * case and 2-3 or 5-8 letters ("JA" and "jaja" are refused); private-use ("x-..."/"X-...") and the
 * grandfathered tags ("i-default", compared case-insensitively) are accepted. */
ATP_NODISCARD int atp_syntax_check_language(atp_slice s, atp_err *err);

/* Lexicon `cid` string format, deliberately loose as in the reference (interop README "CID
 * warning"): 8-256 chars of [A-Za-z0-9+/=], not starting with "Qm" (CIDv0). It does not decode
 * the CID: use the cid module for that. */
ATP_NODISCARD int atp_syntax_check_cid(atp_slice s, atp_err *err);

/* Lexicon generic `uri`: scheme ":" rest, scheme = letter *(letter / digit / '+' / '-' / '.')
 * (RFC 3986), rest >= 1 printable non-space ASCII char, <= 8192 bytes in all. */
ATP_NODISCARD int atp_syntax_check_uri(atp_slice s, atp_err *err);

/* at-identifier: a DID if it starts with "did:", else a handle; the error is that check's. */
ATP_NODISCARD int atp_syntax_check_atidentifier(atp_slice s, atp_err *err);

/* ---- boolean wrappers: true iff the matching checker returns 0 ---- */

bool atp_syntax_is_handle(atp_slice s);       /* atp_syntax_check_handle() == 0 */
bool atp_syntax_is_did(atp_slice s);          /* atp_syntax_check_did() == 0 */
bool atp_syntax_is_nsid(atp_slice s);         /* atp_syntax_check_nsid() == 0 */
bool atp_syntax_is_tid(atp_slice s);          /* atp_syntax_check_tid() == 0 */
bool atp_syntax_is_rkey(atp_slice s);         /* atp_syntax_check_rkey() == 0 */
bool atp_syntax_is_aturi(atp_slice s);        /* atp_syntax_check_aturi() == 0 */
bool atp_syntax_is_datetime(atp_slice s);     /* atp_syntax_check_datetime() == 0 */
bool atp_syntax_is_language(atp_slice s);     /* atp_syntax_check_language() == 0 */
bool atp_syntax_is_cid(atp_slice s);          /* atp_syntax_check_cid() == 0 */
bool atp_syntax_is_uri(atp_slice s);          /* atp_syntax_check_uri() == 0 */
bool atp_syntax_is_atidentifier(atp_slice s); /* atp_syntax_check_atidentifier() == 0 */

/* ---- parsers and helpers ---- */

/* Parses a datetime (the syntax above) into microseconds since the Unix epoch, UTC (fraction
 * digits past the 6th are truncated toward the past). Rejects impossible values: month 01-12, day
 * valid for the month (proleptic Gregorian leap years), hour <= 23, minute <= 59, second <= 59
 * (no leap second), offset hour <= 23 and minute <= 59, and instants whose UTC year would be
 * negative ("0000-01-01T00:00:00+01:00"). Writes *unix_micros only on success. */
ATP_NODISCARD int atp_syntax_parse_datetime(atp_slice s, int64_t *unix_micros, atp_err *err);

/* Checks `in` as a handle, then writes it lower-cased and NUL-terminated to `out` (cap bytes,
 * needs in.len + 1). Errors: ATP_EINVAL (not a handle), ATP_ELIMIT (cap too small). `out` is
 * written only on success. Idempotent: the output is a valid handle that normalizes to itself. */
ATP_NODISCARD int atp_syntax_normalize_handle(atp_slice in, char *out, size_t cap, atp_err *err);

/* True iff `handle` is a valid handle whose TLD (compared case-insensitively) may be registered:
 * false for .alt .arpa .example .internal .invalid .local .localhost .onion (syntactically valid
 * but never resolvable, spec §1.2) and for anything that is not a valid handle. `.test` is allowed
 * here: refusing it outside dev is the caller's policy. */
bool atp_syntax_handle_tld_allowed(atp_slice handle);

/* An AT-URI split into borrowed parts (views into the parsed input, valid as long as it is).
 * `collection` and `rkey` are {NULL, 0} when absent. */
typedef struct atp_aturi {
    atp_slice authority, collection, rkey;
} atp_aturi;

/* Checks `s` as an AT-URI (atp_syntax_check_aturi) and splits it. Writes *out only on success.
 * "at://" + authority [+ "/" + collection [+ "/" + rkey]] gives back `s` exactly. */
ATP_NODISCARD int atp_syntax_parse_aturi(atp_slice s, atp_aturi *out, atp_err *err);

/* For a valid NSID (unchecked here): the authority, everything before the last '.'
 * ("com.example" in "com.example.fooBar"), and the name, everything after it ("fooBar"). Borrowed
 * views into `nsid`; an input without '.' gives an empty authority and the whole input as name. */
atp_slice atp_syntax_nsid_authority(atp_slice nsid);
atp_slice atp_syntax_nsid_name(atp_slice nsid); /* see atp_syntax_nsid_authority */

#endif
