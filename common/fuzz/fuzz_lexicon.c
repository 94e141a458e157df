/* fuzz_lexicon.c: Lexicon documents and data validation.
 * First byte even: the rest is a Lexicon document (JSON). Invariants: checking and adding agree;
 * an added document cannot be added twice (ATP_ECONFLICT) and leaves the counts consistent;
 * validating the document tree itself against each of its defs never crashes and fails only
 * with a message rooted at "Value".
 * First byte odd: the rest is atproto JSON data, validated against a fixed catalog covering
 * every type. Invariants: validation is deterministic, failures carry a "Record"/"Value" rooted
 * message, and ATP_LEXICON_LEGACY_BLOB only ever accepts more. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/lexicon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char schema[] =
    "{\"lexicon\":1,\"id\":\"com.example.fuzz\",\"defs\":{"
    "\"main\":{\"type\":\"record\",\"key\":\"tid\",\"record\":{\"type\":\"object\","
    "\"required\":[\"t\"],\"nullable\":[\"n\"],\"properties\":{"
    "\"t\":{\"type\":\"string\",\"maxLength\":50,\"maxGraphemes\":10,\"minGraphemes\":1},"
    "\"n\":{\"type\":\"string\",\"format\":\"datetime\"},"
    "\"i\":{\"type\":\"integer\",\"minimum\":-5,\"maximum\":500,\"enum\":[1,2,3,400]},"
    "\"c\":{\"type\":\"integer\",\"const\":7},\"b\":{\"type\":\"boolean\",\"const\":true},"
    "\"e\":{\"type\":\"string\",\"enum\":[\"x\",\"y\"]},"
    "\"k\":{\"type\":\"string\",\"const\":\"k\"},"
    "\"f\":{\"type\":\"array\",\"maxLength\":4,\"items\":{\"type\":\"string\",\"format\":\"did\"}},"
    "\"g\":{\"type\":\"string\",\"format\":\"at-uri\"},"
    "\"h\":{\"type\":\"string\",\"format\":\"handle\"},"
    "\"l\":{\"type\":\"string\",\"format\":\"language\"},"
    "\"u\":{\"type\":\"string\",\"format\":\"uri\"},"
    "\"y\":{\"type\":\"bytes\",\"minLength\":1,\"maxLength\":8},\"z\":{\"type\":\"cid-link\"},"
    "\"bl\":{\"type\":\"blob\",\"accept\":[\"image/*\",\"text/plain\"],\"maxSize\":1000},"
    "\"un\":{\"type\":\"unknown\"},\"o\":{\"type\":\"ref\",\"ref\":\"#obj\"},"
    "\"ou\":{\"type\":\"union\",\"refs\":[\"#obj\",\"com.example.fuzz\"]},"
    "\"cu\":{\"type\":\"union\",\"closed\":true,\"refs\":[\"#obj\"]}}}},"
    "\"obj\":{\"type\":\"object\",\"properties\":{\"next\":{\"type\":\"ref\",\"ref\":\"#obj\"},"
    "\"arr\":{\"type\":\"array\",\"items\":{\"type\":\"union\",\"refs\":[\"#obj\"]}},"
    "\"s\":{\"type\":\"string\",\"format\":\"tid\"}}},"
    "\"tok\":{\"type\":\"token\"}}}";

static atp_lexicon *catalog(void)
{
    static atp_lexicon *cat;
    if (!cat) {
        cat = atp_lexicon_create();
        if (atp_lexicon_add_json(cat, atp_slice_make(schema, sizeof schema - 1), NULL, NULL)) {
            abort();
        }
    }
    return cat;
}

static void check_msg(int rc, const atp_err *err)
{
    if (rc == ATP_EINVAL && strncmp(err->msg, "Record", 6) != 0 &&
        strncmp(err->msg, "Value", 5) != 0) {
        abort();
    }
}

static void fuzz_data(atp_slice in)
{
    atp_arena *a = atp_arena_create(0);
    atp_cbor *v = NULL;
    atp_err e1, e2;
    const atp_lexicon *cat = catalog();
    atp_slice coll = ATP_SLICE_LIT("com.example.fuzz");
    if (atp_json_decode(a, in, ATP_JSON_DATA, NULL, &v, NULL) == 0) {
        int r1 = atp_lexicon_validate_record(cat, coll, v, &e1);
        int r2 = atp_lexicon_validate_record(cat, coll, v, &e2);
        int r3 = atp_lexicon_validate_record_ex(cat, coll, v, ATP_LEXICON_LEGACY_BLOB, &e2);
        if (r1 != r2 || (r1 == 0 && r3 != 0)) {
            abort();
        }
        check_msg(r1, &e1);
        r1 = atp_lexicon_validate(cat, ATP_SLICE_LIT("com.example.fuzz#obj"), v, 0, &e1);
        check_msg(r1, &e1);
    }
    atp_arena_destroy(a);
}

/* Validates the document tree against each of its own defs (arbitrary schema x value). */
static void self_validate(const atp_lexicon *cat, const atp_cbor *doc)
{
    const atp_cbor *id = atp_cbor_map_get_str(doc, "id");
    const atp_cbor *defs = atp_cbor_map_get_str(doc, "defs");
    char ref[512];
    for (size_t i = 0; i < defs->u.map.n; i++) {
        atp_err err;
        atp_slice k = defs->u.map.pairs[i].key;
        int n = snprintf(ref, sizeof ref, "%.*s#%.*s", (int)id->u.str.len,
                         (const char *)id->u.str.ptr, (int)k.len, (const char *)k.ptr);
        if (n < 0 || (size_t)n >= sizeof ref) {
            continue;
        }
        int rc = atp_lexicon_validate(cat, atp_slice_make(ref, (size_t)n), doc, 0, &err);
        if (rc == ATP_ENOTFOUND) {
            abort(); /* every def of an added document must be found */
        }
        check_msg(rc, &err);
    }
}

static void fuzz_doc(atp_slice in)
{
    atp_arena *a = atp_arena_create(0);
    atp_lexicon *cat = atp_lexicon_create();
    atp_cbor *doc = NULL;
    if (atp_json_decode(a, in, 0, NULL, &doc, NULL) == 0) {
        int checked = atp_lexicon_check_doc(cat, doc, NULL);
        int added = atp_lexicon_add_doc(cat, doc, NULL);
        if ((checked == 0) != (added == 0)) {
            abort();
        }
        if (added == 0) {
            if (atp_lexicon_doc_count(cat) != 1 || atp_lexicon_def_count(cat) == 0 ||
                atp_lexicon_add_doc(cat, doc, NULL) != ATP_ECONFLICT) {
                abort();
            }
            int refs = atp_lexicon_check_refs(cat, NULL);
            if (refs != 0 && refs != ATP_ENOTFOUND) {
                abort();
            }
            self_validate(cat, doc);
        } else if (atp_lexicon_doc_count(cat) != 0 || atp_lexicon_def_count(cat) != 0) {
            abort();
        }
    }
    atp_lexicon_destroy(cat);
    atp_arena_destroy(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 65536) {
        return 0;
    }
    atp_slice in = atp_slice_make(data + 1, size - 1);
    if (data[0] & 1) {
        fuzz_data(in);
    } else {
        fuzz_doc(in);
    }
    return 0;
}
