/* atp/lexicon.h: a catalog of Lexicon schema documents and a validator of data-model values
 * (atp_cbor trees, from DAG-CBOR or from atproto JSON) against its definitions.
 *
 * Loading parses and checks each document (spec lexicon.md §1-§3: `lexicon` 1, `id` an NSID,
 * non-empty `defs`; primary types only as `main`; no top-level ref/union/unknown/params; field
 * types allowed only where the schema language allows them; every constraint of the right JSON
 * type; known string formats only; `required` names defined in `properties`) and compiles it
 * into nodes. References ("#x", "nsid#x", "nsid") are linked to their targets as soon as both
 * are loaded, so validation follows pointers and allocates nothing (only the error message is
 * formatted, into the fixed atp_err buffer, on failure).
 *
 * Validation errors are ATP_EINVAL with a path and a reason in the reference's style:
 * "Record/embed/images/0/alt must be a string", "Record/text must not be longer than 300
 * graphemes". Semantics (spec lexicon.md §3): unknown object properties are ignored; `null` only
 * where `nullable`; open unions accept any `$type` they do not list (opaque), closed ones refuse
 * it; every union member needs `$type` (the bare NSID for a `main` def); `knownValues` never
 * rejects; string lengths are UTF-8 bytes, graphemes per UAX #29; blob `accept`/`maxSize` are
 * checked against the ref's declared mimeType/size; the blob ref's CID codec is NOT checked
 * (interop README quirk 2: a "valid" vector uses dag-cbor CIDs; the PDS checks real blobs).
 *
 * Thread safety: a catalog is filled by one thread; once loading is done, any number of threads
 * may validate against it concurrently (validation never writes to it).
 */
#ifndef ATP_LEXICON_H
#define ATP_LEXICON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atp/buf.h"
#include "atp/cbor.h"
#include "atp/json.h"

/* Nesting bound of a validation (data levels plus ref hops): deeper values fail ATP_EDEPTH. */
#define ATP_LEXICON_MAX_DEPTH 64

typedef struct atp_lexicon atp_lexicon;
typedef struct atp_lexicon_def atp_lexicon_def;

/* Kind of a definition (the schema `type`). */
typedef enum atp_lexicon_type {
    ATP_LEXICON_BOOLEAN,
    ATP_LEXICON_INTEGER,
    ATP_LEXICON_STRING,
    ATP_LEXICON_BYTES,
    ATP_LEXICON_CID_LINK,
    ATP_LEXICON_BLOB,
    ATP_LEXICON_ARRAY,
    ATP_LEXICON_OBJECT,
    ATP_LEXICON_PARAMS,
    ATP_LEXICON_REF,
    ATP_LEXICON_UNION,
    ATP_LEXICON_UNKNOWN,
    ATP_LEXICON_TOKEN,
    ATP_LEXICON_RECORD,
    ATP_LEXICON_QUERY,
    ATP_LEXICON_PROCEDURE,
    ATP_LEXICON_SUBSCRIPTION,
    ATP_LEXICON_PERMISSION_SET,
} atp_lexicon_type;

/* Validation flags. */
enum {
    /* Accept legacy blob refs {"cid": "<string>", "mimeType": "..."} where a blob is expected
     * (data-model §5: readers tolerate them; a PDS must not create records holding them, so
     * record writes validate without this flag). Their size is unknown: maxSize is not checked. */
    ATP_LEXICON_LEGACY_BLOB = 1 << 0,
};

/* Which schema of an XRPC method atp_lexicon_validate_xrpc checks. */
typedef enum atp_lexicon_part {
    ATP_LEXICON_PART_PARAMS, /* `parameters` (root name "Params") */
    ATP_LEXICON_PART_INPUT,  /* procedure `input.schema` ("Input") */
    ATP_LEXICON_PART_OUTPUT, /* query/procedure `output.schema` ("Output") */
    ATP_LEXICON_PART_MESSAGE /* subscription `message.schema` ("Message") */
} atp_lexicon_part;

/* ---- the catalog ---- */

void atp_lexicon_destroy(atp_lexicon *cat);
/* An empty catalog. Owned: atp_lexicon_destroy (NULL is a no-op). Aborts on OOM. */
atp_lexicon *atp_lexicon_create(void) ATP_DEALLOC(atp_lexicon_destroy);

/* Parses one Lexicon document from JSON text (NULL `lim` = atp_json_limits_default), checks
 * it and adds its defs. The text is not kept (everything needed is copied into the catalog).
 * Errors: ATP_EINVAL (not JSON, or the document breaks a rule: err says which def and why),
 * ATP_ECONFLICT (a document with that id is already loaded), ATP_ELIMIT/ATP_EDEPTH from the
 * JSON limits. On error the catalog is unchanged (the memory used stays until destroy). */
ATP_NODISCARD int atp_lexicon_add_json(atp_lexicon *cat, atp_slice json, const atp_json_limits *lim,
                                       atp_err *err);

/* Same, from an already decoded document tree (borrowed; strings are copied). */
ATP_NODISCARD int atp_lexicon_add_doc(atp_lexicon *cat, const atp_cbor *doc, atp_err *err);

/* Checks a document without adding it (the same rules as atp_lexicon_add_doc, refs are not
 * resolved). Uses the catalog only as scratch memory. */
ATP_NODISCARD int atp_lexicon_check_doc(atp_lexicon *cat, const atp_cbor *doc, atp_err *err);

/* 0 if every reference of every loaded document has its target loaded, else ATP_ENOTFOUND
 * naming the first missing one ("app.bsky.feed.post: unknown ref app.bsky.embed.x#y").
 * Validation reaching an unresolved ref fails with ATP_EINVAL ("... refers to unknown schema"). */
ATP_NODISCARD int atp_lexicon_check_refs(const atp_lexicon *cat, atp_err *err);

/* Documents and defs loaded so far. */
size_t atp_lexicon_doc_count(const atp_lexicon *cat);
size_t atp_lexicon_def_count(const atp_lexicon *cat);

/* The def named by `ref`: "nsid#name", or "nsid" (= "nsid#main"). NULL if not loaded. Borrowed:
 * valid as long as the catalog. */
const atp_lexicon_def *atp_lexicon_find(const atp_lexicon *cat, atp_slice ref);
atp_lexicon_type atp_lexicon_def_type(const atp_lexicon_def *def);

/* ---- validation (pure: no allocation, no I/O; err gets path + reason) ---- */

/* Validates a record for `collection`: the collection's main def must be a `record` (else
 * ATP_ENOTFOUND when no document has that id: the PDS stores such records unvalidated, or
 * ATP_EINVAL when it is not a record type); `rec` must be a map whose `$type` equals
 * `collection`, and valid against the record's object schema. Root of error paths: "Record". */
ATP_NODISCARD int atp_lexicon_validate_record(const atp_lexicon *cat, atp_slice collection,
                                              const atp_cbor *rec, atp_err *err);
/* Same with flags (ATP_LEXICON_LEGACY_BLOB). */
ATP_NODISCARD int atp_lexicon_validate_record_ex(const atp_lexicon *cat, atp_slice collection,
                                                 const atp_cbor *rec, unsigned flags, atp_err *err);

/* Checks a record key against the collection's `key` type (tid, nsid, literal:<v>, any: any
 * valid record key). ATP_ENOTFOUND for an unknown collection, ATP_EINVAL otherwise. */
ATP_NODISCARD int atp_lexicon_check_rkey(const atp_lexicon *cat, atp_slice collection,
                                         atp_slice rkey, atp_err *err);

/* Validates `v` against the def named by `ref` (any data def; a record def means its record
 * object, without the `$type` check). Root of error paths: "Value". ATP_ENOTFOUND if `ref` is
 * not loaded, ATP_EINVAL if it names a non-data def (query, token, ...) or `v` is invalid. */
ATP_NODISCARD int atp_lexicon_validate(const atp_lexicon *cat, atp_slice ref, const atp_cbor *v,
                                       unsigned flags, atp_err *err);

/* Validates one part of the XRPC method `nsid` (its main def: query, procedure or
 * subscription). PARAMS: `v` is a map of typed values (integers as ints, booleans as bools,
 * repeated params as arrays: converting query-string text is the caller's job); required params
 * must be there; params the schema does not list are allowed. A part the method does not
 * declare, or declares without a schema, accepts anything. ATP_ENOTFOUND for an unknown
 * method, ATP_EINVAL for a non-XRPC def or invalid data. */
ATP_NODISCARD int atp_lexicon_validate_xrpc(const atp_lexicon *cat, atp_slice nsid,
                                            atp_lexicon_part part, const atp_cbor *v,
                                            unsigned flags, atp_err *err);

/* True if blob MIME type `mime` matches an `accept` pattern: "*\/\*", "type/\*" (any subtype) or
 * an exact type (ASCII case-insensitive). Other globs ("image/p*") match only literally. */
bool atp_lexicon_mime_matches(atp_slice pattern, atp_slice mime);

#endif
