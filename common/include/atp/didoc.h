/* atp/didoc.h: DID documents as atproto reads and writes them (spec identity-crypto §3, §4.5).
 *
 * Parsing is bounded and pure: the JSON text is decoded under limits into a caller's arena and
 * the atproto view is extracted: the document id, the alsoKnownAs entries and the claimed handle
 * (the first "at://<valid handle>" entry), the `#atproto` signing key and `#atproto_label` labeler
 * key (Multikey, or the legacy EcdsaSecp256k1VerificationKey2019 /
 * EcdsaSecp256r1VerificationKey2019 publicKeyMultibase forms), and the services (the `#atproto_pds`
 * endpoint among them). A document whose key or PDS entry is missing or malformed still parses
 * ("broken identity", §3): the corresponding has_ flag is false. Malformed JSON or structure is an
 * error.
 *
 * Building renders a document exactly as the reference PLC directory does: @context
 * [did/v1, multikey/v1, then one suite per curve in first-use order], id, alsoKnownAs,
 * verificationMethod [{id: "<did>#<name>", type: "Multikey", controller, publicKeyMultibase}],
 * service [{id: "#<name>", type, serviceEndpoint}], in that member order.
 */
#ifndef ATP_DIDOC_H
#define ATP_DIDOC_H

#include "atp/buf.h"
#include "atp/crypto.h"

/* Parser limits. */
typedef struct atp_didoc_limits {
    size_t max_len;   /* bytes of JSON text */
    size_t max_items; /* entries of alsoKnownAs, verificationMethod, service (each) */
} atp_didoc_limits;

/* 64 KiB of JSON, 64 entries per array. */
extern const atp_didoc_limits atp_didoc_limits_default;

/* A public key taken from a verification method. */
typedef struct atp_didoc_key {
    bool present;                 /* false: no usable method of that id */
    atp_curve curve;              /* valid when present */
    uint8_t pub[ATP_KEY_PUB_LEN]; /* compressed SEC1 point (legacy uncompressed ones compressed) */
    atp_slice didkey;             /* "did:key:z..." form, in the arena */
} atp_didoc_key;

/* One service entry, strings borrowed from the arena. `id` is given without its leading "#" or
 * "<did>#" (e.g. "atproto_pds"). */
typedef struct atp_didoc_service {
    atp_slice id;
    atp_slice type;
    atp_slice endpoint;
} atp_didoc_service;

/* The atproto view of a document. Every slice points into the arena given to the parser. */
typedef struct atp_didoc {
    atp_slice id;   /* the document's "id" (a syntactically valid DID) */
    atp_slice *aka; /* every alsoKnownAs string, in document order */
    size_t n_aka;
    atp_slice handle;            /* claimed handle (first valid "at://" entry, "at://" stripped, as
                                  * written), empty if none. A claim only: verify it (resolve.h). */
    atp_didoc_key signing;       /* #atproto */
    atp_didoc_key labeler;       /* #atproto_label */
    atp_didoc_service *services; /* well-formed service entries (string id, type, endpoint) */
    size_t n_services;
    atp_slice pds; /* #atproto_pds endpoint of type AtprotoPersonalDataServer if it is
                    * an http(s)://host[:port] URL with no path/query/userinfo (a single
                    * trailing "/" is tolerated and kept); else empty */
} atp_didoc;

/* Parses a DID document from `json` into `out` (all strings copied into `a`). When `expect_did`
 * is non-empty the document's id must equal it exactly. NULL `lim` means the defaults.
 * Errors: ATP_ELIMIT (size or counts), ATP_EINVAL (not JSON, not an object, id missing or not a
 * DID, id mismatch, alsoKnownAs / verificationMethod / service not arrays). *out is written only
 * on success. Methods or services that are malformed are skipped, not errors. */
ATP_NODISCARD int atp_didoc_parse(atp_arena *a, atp_slice json, atp_slice expect_did,
                                  const atp_didoc_limits *lim, atp_didoc *out, atp_err *err);

/* The service with id `id` (without '#') and, if `type` is non-NULL, that type; NULL if none. */
const atp_didoc_service *atp_didoc_find_service(const atp_didoc *d, const char *id,
                                                const char *type);

/* A key object for a parsed key (public only). *out is owned: atp_key_destroy.
 * ATP_ENOTFOUND if !k->present. */
ATP_NODISCARD int atp_didoc_key_get(const atp_didoc_key *k, atp_key **out, atp_err *err);

/* True if `url` is an http(s)://host[:port] endpoint with no userinfo, query or fragment and no
 * path beyond an optional single "/" (the rule for #atproto_pds, §3). */
bool atp_didoc_is_service_url(atp_slice url);

/* ---- building ---- */

/* A verification method to render: name without '#' ("atproto"), key as "did:key:z...". */
typedef struct atp_didoc_vm {
    atp_slice name;
    atp_slice didkey;
} atp_didoc_vm;

/* What a document is built from (the PLC "document data"). Slices are borrowed. */
typedef struct atp_didoc_parts {
    atp_slice did;
    const atp_slice *aka; /* alsoKnownAs strings, rendered as given */
    size_t n_aka;
    const atp_didoc_vm *vms;
    size_t n_vms;
    const atp_didoc_service *services; /* id without '#' */
    size_t n_services;
} atp_didoc_parts;

/* Appends the JSON document (compact, or two-space indented with ATP_JSON_PRETTY from json.h)
 * in the reference PLC rendering described at the top. A verification method whose key does not
 * parse as a did:key (never the case for ops that passed atp_plc_op_check) is still rendered:
 * type "Multikey", publicKeyMultibase = the string without "did:key:", no context entry added.
 * Sets out->err = ATP_EINVAL for strings that are not valid UTF-8. */
void atp_didoc_build(atp_buf *out, const atp_didoc_parts *p, unsigned flags);

#endif
