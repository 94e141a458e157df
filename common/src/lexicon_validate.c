/* lexicon_validate.c: walking a data-model value against compiled schema nodes. The hot path
 * (every PDS write) only follows pointers and compares: the path of the value being checked is
 * kept as a stack of borrowed keys/indexes and turned into text only when something fails. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "atp/grapheme.h"
#include "atp/syntax.h"
#include "lexicon_int.h"

typedef struct seg {
    atp_slice key; /* map key, or {NULL, 0} for an array index */
    size_t idx;
} seg;

typedef struct vctx {
    unsigned flags;
    atp_err *err;
    const char *root;
    unsigned depth; /* data levels plus ref hops, bounded by ATP_LEXICON_MAX_DEPTH */
    size_t n_path;  /* data levels only: n_path <= depth */
    seg path[ATP_LEXICON_MAX_DEPTH];
} vctx;

static int check(vctx *c, const lex_node *n, const atp_cbor *v);

/* ---- errors ---- */

static void put_path(const vctx *c, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "%s", c->root);
    for (size_t i = 0; i < c->n_path && len < cap; i++) {
        const seg *s = &c->path[i];
        if (s->key.ptr) {
            len += (size_t)snprintf(buf + len, cap - len, "/%.*s", (int)s->key.len,
                                    (const char *)s->key.ptr);
        } else {
            len += (size_t)snprintf(buf + len, cap - len, "/%zu", s->idx);
        }
    }
}

static int verr(vctx *c, const char *fmt, ...) ATP_PRINTF(2, 3);

/* "<path> <reason>", the reference validator's message shape. */
static int verr(vctx *c, const char *fmt, ...)
{
    char path[ATP_ERR_MSG_MAX], why[ATP_ERR_MSG_MAX];
    va_list ap;
    put_path(c, path, sizeof path);
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return atp_err_set(c->err, ATP_EINVAL, 0, "%s %s", path, why);
}

static void push_key(vctx *c, atp_slice key)
{
    c->path[c->n_path].key = key;
    c->n_path++;
}

static void push_idx(vctx *c, size_t i)
{
    c->path[c->n_path].key = atp_slice_make(NULL, 0);
    c->path[c->n_path].idx = i;
    c->n_path++;
}

/* ---- scalars ---- */

static int check_integer(vctx *c, const lex_node *n, const atp_cbor *v)
{
    if (v->type != ATP_CBOR_INT) {
        return verr(c, "must be an integer");
    }
    int64_t i = v->u.i;
    if ((n->flags & LEX_HAS_CONST) && i != n->iconst) {
        return verr(c, "must be %lld", (long long)n->iconst);
    }
    if (n->has_enum) {
        size_t k = 0;
        while (k < n->n_enum && n->ienum[k] != i) {
            k++;
        }
        if (k == n->n_enum) {
            return verr(c, "must be one of the %zu allowed values", n->n_enum);
        }
    }
    if (i < n->imin) {
        return verr(c, "can not be less than %lld", (long long)n->imin);
    }
    if (i > n->imax) {
        return verr(c, "can not be greater than %lld", (long long)n->imax);
    }
    return 0;
}

/* Checker and reference-style message per string format. */
static const struct {
    bool (*ok)(atp_slice);
    const char *what;
} formats[] = {
    [LEX_FMT_AT_IDENTIFIER] = {atp_syntax_is_atidentifier, "must be a valid did or a handle"},
    [LEX_FMT_AT_URI] = {atp_syntax_is_aturi, "must be a valid at-uri"},
    [LEX_FMT_CID] = {atp_syntax_is_cid, "must be a cid string"},
    [LEX_FMT_DATETIME] = {atp_syntax_is_datetime,
                          "must be an valid atproto datetime (both RFC-3339 and ISO-8601)"},
    [LEX_FMT_DID] = {atp_syntax_is_did, "must be a valid did"},
    [LEX_FMT_HANDLE] = {atp_syntax_is_handle, "must be a valid handle"},
    [LEX_FMT_NSID] = {atp_syntax_is_nsid, "must be a valid nsid"},
    [LEX_FMT_TID] = {atp_syntax_is_tid, "must be a valid TID"},
    [LEX_FMT_RECORD_KEY] = {atp_syntax_is_rkey, "must be a valid Record Key"},
    [LEX_FMT_URI] = {atp_syntax_is_uri, "must be a uri"},
    [LEX_FMT_LANGUAGE] = {atp_syntax_is_language, "must be a well-formed BCP 47 language tag"},
};

static int check_format(vctx *c, lex_format f, atp_slice s)
{
    if (f == LEX_FMT_NONE || formats[f].ok(s)) {
        return 0;
    }
    return verr(c, "%s", formats[f].what);
}

static int check_str_enum(vctx *c, const lex_node *n, atp_slice s)
{
    if ((n->flags & LEX_HAS_CONST) && !atp_slice_eq(s, n->sconst)) {
        return verr(c, "must be %.*s", (int)n->sconst.len, (const char *)n->sconst.ptr);
    }
    if (n->has_enum) {
        size_t k = 0;
        while (k < n->n_enum && !atp_slice_eq(n->senum[k], s)) {
            k++;
        }
        if (k == n->n_enum) {
            return verr(c, "must be one of the %zu allowed values", n->n_enum);
        }
    }
    return 0;
}

/* Grapheme bounds. A string cannot have more clusters than bytes, so most strings are decided
 * from their length alone; otherwise the count stops as soon as the maximum is passed. */
static int check_graphemes(vctx *c, const lex_node *n, atp_slice s)
{
    if (n->min_g == 0 && s.len <= n->max_g) {
        return 0;
    }
    if (s.len < n->min_g) {
        return verr(c, "must not be shorter than %zu graphemes", n->min_g);
    }
    size_t g = atp_grapheme_count(s, n->max_g);
    if (g > n->max_g) {
        return verr(c, "must not be longer than %zu graphemes", n->max_g);
    }
    if (g < n->min_g) {
        return verr(c, "must not be shorter than %zu graphemes", n->min_g);
    }
    return 0;
}

static int check_string(vctx *c, const lex_node *n, const atp_cbor *v)
{
    if (v->type != ATP_CBOR_STRING) {
        return verr(c, "must be a string");
    }
    atp_slice s = v->u.str;
    int rc = check_str_enum(c, n, s);
    if (rc) {
        return rc;
    }
    if (s.len > n->max_len) {
        return verr(c, "must not be longer than %zu characters", n->max_len);
    }
    if (s.len < n->min_len) {
        return verr(c, "must not be shorter than %zu characters", n->min_len);
    }
    rc = check_graphemes(c, n, s);
    return rc ? rc : check_format(c, n->format, s);
}

static int check_bytes(vctx *c, const lex_node *n, const atp_cbor *v)
{
    if (v->type != ATP_CBOR_BYTES) {
        return verr(c, "must be a byte array");
    }
    if (v->u.str.len > n->max_len) {
        return verr(c, "must not be larger than %zu bytes", n->max_len);
    }
    if (v->u.str.len < n->min_len) {
        return verr(c, "must not be smaller than %zu bytes", n->min_len);
    }
    return 0;
}

/* ---- blobs ---- */

static bool ascii_ieq(atp_slice a, atp_slice b)
{
    if (a.len != b.len) {
        return false;
    }
    for (size_t i = 0; i < a.len; i++) {
        uint8_t x = a.ptr[i], y = b.ptr[i];
        x = (uint8_t)(x >= 'A' && x <= 'Z' ? x + 32 : x);
        y = (uint8_t)(y >= 'A' && y <= 'Z' ? y + 32 : y);
        if (x != y) {
            return false;
        }
    }
    return true;
}

bool atp_lexicon_mime_matches(atp_slice pattern, atp_slice mime)
{
    if (atp_slice_eq_str(pattern, "*/*")) {
        return true;
    }
    if (pattern.len >= 2 && pattern.ptr[pattern.len - 1] == '*' &&
        pattern.ptr[pattern.len - 2] == '/') {
        /* "type/\*": the type and its slash, then any non-empty subtype */
        size_t keep = pattern.len - 1;
        return mime.len > keep &&
               ascii_ieq(atp_slice_sub(pattern, 0, keep), atp_slice_sub(mime, 0, keep));
    }
    return ascii_ieq(pattern, mime);
}

static bool is_str(const atp_cbor *v)
{
    return v && v->type == ATP_CBOR_STRING;
}

/* The legacy shape {cid: string, mimeType: string} without $type (data-model §5). */
static bool is_legacy_blob(const atp_cbor *v)
{
    return !atp_cbor_map_get_str(v, "$type") && is_str(atp_cbor_map_get_str(v, "cid")) &&
           is_str(atp_cbor_map_get_str(v, "mimeType"));
}

static bool is_blob(const atp_cbor *v)
{
    const atp_cbor *t = atp_cbor_map_get_str(v, "$type");
    const atp_cbor *ref = atp_cbor_map_get_str(v, "ref");
    const atp_cbor *size = atp_cbor_map_get_str(v, "size");
    return is_str(t) && atp_slice_eq_str(t->u.str, "blob") && ref && ref->type == ATP_CBOR_LINK &&
           size && size->type == ATP_CBOR_INT && size->u.i >= 0 &&
           is_str(atp_cbor_map_get_str(v, "mimeType"));
}

static int check_blob(vctx *c, const lex_node *n, const atp_cbor *v)
{
    bool legacy =
        v->type == ATP_CBOR_MAP && (c->flags & ATP_LEXICON_LEGACY_BLOB) && is_legacy_blob(v);
    if (v->type != ATP_CBOR_MAP || (!legacy && !is_blob(v))) {
        return verr(c, "should be a blob ref");
    }
    atp_slice mime = atp_cbor_map_get_str(v, "mimeType")->u.str;
    if (n->has_enum) {
        size_t k = 0;
        while (k < n->n_enum && !atp_lexicon_mime_matches(n->senum[k], mime)) {
            k++;
        }
        if (k == n->n_enum) {
            return verr(c, "mimeType %.*s is not accepted", (int)mime.len, (const char *)mime.ptr);
        }
    }
    if (!legacy && (uint64_t)atp_cbor_map_get_str(v, "size")->u.i > (uint64_t)n->max_len) {
        return verr(c, "is larger than the maximum of %zu bytes", n->max_len);
    }
    return 0;
}

/* ---- containers ---- */

static int check_array(vctx *c, const lex_node *n, const atp_cbor *v)
{
    if (v->type != ATP_CBOR_ARRAY) {
        return verr(c, "must be an array");
    }
    if (v->u.arr.n > n->max_len) {
        return verr(c, "must not have more than %zu elements", n->max_len);
    }
    if (v->u.arr.n < n->min_len) {
        return verr(c, "must not have fewer than %zu elements", n->min_len);
    }
    for (size_t i = 0; i < v->u.arr.n; i++) {
        push_idx(c, i);
        int rc = check(c, n->items, &v->u.arr.items[i]);
        c->n_path--;
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int check_object(vctx *c, const lex_node *n, const atp_cbor *v)
{
    if (v->type != ATP_CBOR_MAP) {
        return verr(c, "must be an object");
    }
    for (size_t i = 0; i < n->n_props; i++) {
        const lex_prop *p = &n->props[i];
        const atp_cbor *val = atp_cbor_map_get(v, p->key);
        if (!val || (val->type == ATP_CBOR_NULL && p->nullable)) {
            if (!val && p->required) {
                return verr(c, "must have the property \"%.*s\"", (int)p->key.len,
                            (const char *)p->key.ptr);
            }
            continue;
        }
        push_key(c, p->key);
        int rc = check(c, p->node, val);
        c->n_path--;
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* A def reached through a ref or a union member: its data schema. */
static int check_def(vctx *c, const lex_ref *r, const atp_cbor *v)
{
    if (!r->def) {
        return verr(c, "refers to unknown schema %.*s#%.*s", (int)r->nsid.len,
                    (const char *)r->nsid.ptr, (int)r->name.len, (const char *)r->name.ptr);
    }
    const lex_node *n = r->def->node;
    if (n->type == ATP_LEXICON_RECORD) {
        n = n->record;
    }
    if (n->type >= ATP_LEXICON_TOKEN) {
        return verr(c, "refers to %.*s#%.*s, which is not a data type", (int)r->nsid.len,
                    (const char *)r->nsid.ptr, (int)r->name.len, (const char *)r->name.ptr);
    }
    return check(c, n, v);
}

/* `$type` names the ref: the bare NSID for a main def, "nsid#name" otherwise. */
static bool ref_is_type(const lex_ref *r, atp_slice t)
{
    if (!atp_slice_has_prefix(t, r->nsid)) {
        return false;
    }
    atp_slice rest = atp_slice_sub(t, r->nsid.len, t.len);
    if (atp_slice_eq_str(r->name, "main")) {
        return rest.len == 0;
    }
    return rest.len == r->name.len + 1 && rest.ptr[0] == '#' &&
           memcmp(rest.ptr + 1, r->name.ptr, r->name.len) == 0;
}

static int check_union(vctx *c, const lex_node *n, const atp_cbor *v)
{
    const atp_cbor *t = v->type == ATP_CBOR_MAP ? atp_cbor_map_get_str(v, "$type") : NULL;
    if (!is_str(t)) {
        return verr(c, "must be an object which includes the \"$type\" property");
    }
    for (size_t i = 0; i < n->n_refs; i++) {
        if (ref_is_type(&n->refs[i], t->u.str)) {
            return check_def(c, &n->refs[i], v);
        }
    }
    if (n->flags & LEX_CLOSED) {
        return verr(c, "$type %.*s is not one of the union's %zu types", (int)t->u.str.len,
                    (const char *)t->u.str.ptr, n->n_refs);
    }
    return 0; /* open union: a type we do not know stays opaque */
}

static int check_unknown(vctx *c, const atp_cbor *v)
{
    if (v->type != ATP_CBOR_MAP) {
        return verr(c, "must be an object");
    }
    const atp_cbor *t = atp_cbor_map_get_str(v, "$type");
    if (is_str(t) && atp_slice_eq_str(t->u.str, "blob")) {
        return verr(c, "must be an object, not a blob");
    }
    return 0;
}

static int check_boolean(vctx *c, const lex_node *n, const atp_cbor *v)
{
    if (v->type != ATP_CBOR_BOOL) {
        return verr(c, "must be a boolean");
    }
    if ((n->flags & LEX_HAS_CONST) && v->u.b != n->bconst) {
        return verr(c, "must be %s", n->bconst ? "true" : "false");
    }
    return 0;
}

static int dispatch(vctx *c, const lex_node *n, const atp_cbor *v)
{
    switch (n->type) {
    case ATP_LEXICON_BOOLEAN:
        return check_boolean(c, n, v);
    case ATP_LEXICON_INTEGER:
        return check_integer(c, n, v);
    case ATP_LEXICON_STRING:
        return check_string(c, n, v);
    case ATP_LEXICON_BYTES:
        return check_bytes(c, n, v);
    case ATP_LEXICON_CID_LINK:
        return v->type == ATP_CBOR_LINK ? 0 : verr(c, "must be a CID");
    case ATP_LEXICON_BLOB:
        return check_blob(c, n, v);
    case ATP_LEXICON_ARRAY:
        return check_array(c, n, v);
    case ATP_LEXICON_OBJECT:
    case ATP_LEXICON_PARAMS:
        return check_object(c, n, v);
    case ATP_LEXICON_REF:
        return check_def(c, &n->refs[0], v);
    case ATP_LEXICON_UNION:
        return check_union(c, n, v);
    case ATP_LEXICON_UNKNOWN:
        return check_unknown(c, v);
    default:
        return verr(c, "has a schema that is not a data type");
    }
}

static int check(vctx *c, const lex_node *n, const atp_cbor *v)
{
    if (c->depth >= ATP_LEXICON_MAX_DEPTH || c->n_path >= ATP_LEXICON_MAX_DEPTH) {
        return atp_err_set(c->err, ATP_EDEPTH, 0, "%s: value nested deeper than %d", c->root,
                           ATP_LEXICON_MAX_DEPTH);
    }
    c->depth++;
    int rc = dispatch(c, n, v);
    c->depth--;
    return rc;
}

/* ---- entry points ---- */

static void vctx_init(vctx *c, const char *root, unsigned flags, atp_err *err)
{
    c->flags = flags;
    c->err = err;
    c->root = root;
    c->depth = 0;
    c->n_path = 0;
}

static const lex_node *find_main(const atp_lexicon *cat, atp_slice nsid)
{
    const atp_lexicon_def *d = atp__lexicon_lookup(cat, nsid, ATP_SLICE_LIT("main"));
    return d ? d->node : NULL;
}

static int find_record(const atp_lexicon *cat, atp_slice collection, const lex_node **out,
                       atp_err *err)
{
    const lex_node *n = find_main(cat, collection);
    if (!n) {
        return atp_err_set(err, ATP_ENOTFOUND, 0, "Lexicon not found: %.*s", (int)collection.len,
                           (const char *)collection.ptr);
    }
    if (n->type != ATP_LEXICON_RECORD) {
        return atp_err_set(err, ATP_EINVAL, 0, "%.*s is not a record type", (int)collection.len,
                           (const char *)collection.ptr);
    }
    *out = n;
    return 0;
}

int atp_lexicon_validate_record_ex(const atp_lexicon *cat, atp_slice collection,
                                   const atp_cbor *rec, unsigned flags, atp_err *err)
{
    const lex_node *n = NULL;
    vctx c;
    int rc = find_record(cat, collection, &n, err);
    if (rc) {
        return rc;
    }
    vctx_init(&c, "Record", flags, err);
    if (rec->type != ATP_CBOR_MAP) {
        return verr(&c, "must be an object");
    }
    const atp_cbor *t = atp_cbor_map_get_str(rec, "$type");
    if (!is_str(t) || !atp_slice_eq(t->u.str, collection)) {
        push_key(&c, ATP_SLICE_LIT("$type"));
        return verr(&c, "must be %.*s", (int)collection.len, (const char *)collection.ptr);
    }
    return check(&c, n->record, rec);
}

int atp_lexicon_validate_record(const atp_lexicon *cat, atp_slice collection, const atp_cbor *rec,
                                atp_err *err)
{
    return atp_lexicon_validate_record_ex(cat, collection, rec, 0, err);
}

int atp_lexicon_check_rkey(const atp_lexicon *cat, atp_slice collection, atp_slice rkey,
                           atp_err *err)
{
    const lex_node *n = NULL;
    int rc = find_record(cat, collection, &n, err);
    if (rc) {
        return rc;
    }
    bool ok = atp_syntax_is_rkey(rkey);
    if (n->key == LEX_KEY_TID) {
        ok = atp_syntax_is_tid(rkey);
    } else if (n->key == LEX_KEY_NSID) {
        ok = atp_syntax_is_nsid(rkey);
    } else if (n->key == LEX_KEY_LITERAL) {
        ok = atp_slice_eq(rkey, n->key_literal);
    }
    if (!ok) {
        return atp_err_set(err, ATP_EINVAL, 0, "record key \"%.*s\" is not valid for %.*s",
                           (int)(rkey.len > 64 ? 64 : rkey.len), (const char *)rkey.ptr,
                           (int)collection.len, (const char *)collection.ptr);
    }
    return 0;
}

int atp_lexicon_validate(const atp_lexicon *cat, atp_slice ref, const atp_cbor *v, unsigned flags,
                         atp_err *err)
{
    const atp_lexicon_def *d = atp_lexicon_find(cat, ref);
    vctx c;
    if (!d) {
        return atp_err_set(err, ATP_ENOTFOUND, 0, "Lexicon not found: %.*s", (int)ref.len,
                           (const char *)ref.ptr);
    }
    lex_ref r = {d->nsid, d->name, d};
    vctx_init(&c, "Value", flags, err);
    return check_def(&c, &r, v);
}

static const lex_node *xrpc_part(const lex_node *n, atp_lexicon_part part, const char **root)
{
    static const char *const roots[] = {"Params", "Input", "Output", "Message"};
    *root = roots[part];
    switch (part) {
    case ATP_LEXICON_PART_PARAMS:
        return n->params;
    case ATP_LEXICON_PART_INPUT:
        return n->input;
    case ATP_LEXICON_PART_OUTPUT:
        return n->output;
    case ATP_LEXICON_PART_MESSAGE:
        return n->message;
    }
    return NULL;
}

int atp_lexicon_validate_xrpc(const atp_lexicon *cat, atp_slice nsid, atp_lexicon_part part,
                              const atp_cbor *v, unsigned flags, atp_err *err)
{
    const lex_node *n = find_main(cat, nsid);
    const char *root = "Value";
    vctx c;
    if (!n) {
        return atp_err_set(err, ATP_ENOTFOUND, 0, "Lexicon not found: %.*s", (int)nsid.len,
                           (const char *)nsid.ptr);
    }
    if (n->type < ATP_LEXICON_QUERY || n->type > ATP_LEXICON_SUBSCRIPTION) {
        return atp_err_set(err, ATP_EINVAL, 0, "%.*s is not an XRPC method", (int)nsid.len,
                           (const char *)nsid.ptr);
    }
    const lex_node *schema = xrpc_part(n, part, &root);
    if (!schema) {
        return 0;
    }
    vctx_init(&c, root, flags, err);
    return check(&c, schema, v);
}
