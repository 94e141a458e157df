/* atp/json.h: the atproto JSON form of the data model (spec data-model §4-§6), to and from the
 * DAG-CBOR value tree of atp/cbor.h.
 *
 * JSON -> tree: {"$link": "<cid>"} becomes a link, {"$bytes": "<base64>"} a byte string (both
 * objects must have exactly that one key, with a string value), numbers must be integers of
 * magnitude at most 2^53-1 (an integral spelling such as 123.0 counts), strings must be valid
 * UTF-8, duplicate keys are an error, and maps come out in canonical key order.
 * Tree -> JSON: links and bytes in those same shapes, bytes in standard base64 without
 * padding, integers exact, key order as in the tree (canonical).
 */
#ifndef ATP_JSON_H
#define ATP_JSON_H

#include <cjson/cJSON.h>

#include "atp/buf.h"
#include "atp/cbor.h"

enum {
    /* Decoding: apply the "atproto data" rules. The top level must be an object; every `$type`
     * must be a non-empty string; a map whose `$type` is "blob" must have a link `ref`, an
     * integer `size` >= 0 and a string `mimeType`. */
    ATP_JSON_DATA = 1 << 0,
    /* Encoding: two-space indentation, one member per line, "key": value. */
    ATP_JSON_PRETTY = 1 << 1,
};

/* Decoder limits, checked as the input is read (before the tree is built). */
typedef struct atp_json_limits {
    size_t max_len;     /* bytes of JSON text */
    uint32_t max_depth; /* nesting of arrays/maps in the resulting tree, as for CBOR */
    size_t max_items;   /* elements of one array or members of one object */
    size_t max_str;     /* bytes of one string value (after unescaping) */
    size_t max_key;     /* bytes of one object key (after unescaping) */
} atp_json_limits;

/* 2 MiB, depth 32, 131072 items, 1 MiB strings, 8192-byte keys (spec data-model §2.9). */
extern const atp_json_limits atp_json_limits_default;

/* Parses JSON text into a tree allocated from `a` (strings and keys copied into the arena, so
 * `json` may be freed afterwards). The whole input must be one JSON value (surrounding
 * whitespace allowed). NULL `lim` means the defaults. On failure `err` says why (with a byte
 * offset when the text itself is at fault) and *out is untouched. Errors: ATP_EINVAL (syntax,
 * data-model rules), ATP_ELIMIT, ATP_EDEPTH. A string holding U+0000 is rejected
 * (ATP_EUNSUPPORTED): cJSON keeps strings NUL-terminated and would silently cut it. */
ATP_NODISCARD int atp_json_decode(atp_arena *a, atp_slice json, unsigned flags,
                                  const atp_json_limits *lim, atp_cbor **out, atp_err *err);

/* The same conversion from an already parsed cJSON document (borrowed; strings are copied into
 * `a`). max_len does not apply; the other limits do. cJSON_Raw and cJSON_Invalid items and
 * non-finite numbers are rejected. */
ATP_NODISCARD int atp_json_from_cjson(atp_arena *a, const cJSON *j, unsigned flags,
                                      const atp_json_limits *lim, atp_cbor **out, atp_err *err);

/* Appends the JSON form of `v` (flags: ATP_JSON_PRETTY). Strings are escaped as
 * JSON.stringify does (\" \\ \b \f \n \r \t, other control characters as \u00xx, everything
 * else, non-ASCII included, as is). A string that is not valid UTF-8 or a link that is not a
 * CID sets out->err = ATP_EINVAL. */
void atp_json_encode(atp_buf *out, const atp_cbor *v, unsigned flags);

/* A new cJSON document (owned: cJSON_Delete) equal to `v`, for code that builds responses with
 * cJSON. cJSON stores numbers as doubles, so integers beyond 2^53 lose precision, and its
 * strings stop at the first NUL byte. NULL if `v` holds something that cannot be expressed
 * (invalid link). */
cJSON *atp_json_to_cjson(const atp_cbor *v) ATP_DEALLOC(cJSON_Delete);

#endif
