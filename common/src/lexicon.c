/* lexicon.c: loading Lexicon documents into a catalog. Each document is checked whole and
 * compiled into arena nodes before any of its defs becomes visible, so a rejected document
 * leaves the catalog as it was. References are linked through a pending list: a ref whose
 * target is not loaded yet waits there until a later document brings it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/syntax.h"
#include "lexicon_int.h"

/* Schema nesting bound (JSON input is already bounded by its own depth limit; trees handed to
 * atp_lexicon_add_doc may be built by hand). */
#define LEX_SCHEMA_DEPTH 32

struct atp_lexicon {
    atp_arena *arena;
    atp_lexicon_def **slots; /* open addressing on "nsid#name", capacity a power of two */
    size_t cap, n_defs, n_docs;
    lex_ref **pending; /* refs whose target is not loaded yet */
    size_t n_pending, cap_pending;
};

/* Where a field schema sits: decides which types are allowed there. */
typedef enum lex_ctx {
    CTX_DEF,        /* a named def at the top of a document */
    CTX_FIELD,      /* object property or array item */
    CTX_PARAM,      /* params property */
    CTX_PARAM_ITEM, /* items of an array params property */
    CTX_PARAMS,     /* the `parameters` of a method */
    CTX_BODY,       /* input/output/message schema */
    CTX_RECORD,     /* the `record` of a record def */
} lex_ctx;

typedef struct loader {
    atp_lexicon *cat;
    atp_slice nsid, def; /* document id and current def name, for messages and local refs */
    atp_err *err;
    lex_ref **refs; /* refs of this document (owned, xrealloc) */
    size_t n_refs, cap_refs;
    unsigned depth;
} loader;

static const struct {
    const char *name;
    atp_lexicon_type type;
} type_names[] = {
    {"boolean", ATP_LEXICON_BOOLEAN},
    {"integer", ATP_LEXICON_INTEGER},
    {"string", ATP_LEXICON_STRING},
    {"bytes", ATP_LEXICON_BYTES},
    {"cid-link", ATP_LEXICON_CID_LINK},
    {"blob", ATP_LEXICON_BLOB},
    {"array", ATP_LEXICON_ARRAY},
    {"object", ATP_LEXICON_OBJECT},
    {"params", ATP_LEXICON_PARAMS},
    {"ref", ATP_LEXICON_REF},
    {"union", ATP_LEXICON_UNION},
    {"unknown", ATP_LEXICON_UNKNOWN},
    {"token", ATP_LEXICON_TOKEN},
    {"record", ATP_LEXICON_RECORD},
    {"query", ATP_LEXICON_QUERY},
    {"procedure", ATP_LEXICON_PROCEDURE},
    {"subscription", ATP_LEXICON_SUBSCRIPTION},
    {"permission-set", ATP_LEXICON_PERMISSION_SET},
};

static const struct {
    const char *name;
    lex_format format;
} format_names[] = {
    {"at-identifier", LEX_FMT_AT_IDENTIFIER},
    {"at-uri", LEX_FMT_AT_URI},
    {"cid", LEX_FMT_CID},
    {"datetime", LEX_FMT_DATETIME},
    {"did", LEX_FMT_DID},
    {"handle", LEX_FMT_HANDLE},
    {"nsid", LEX_FMT_NSID},
    {"tid", LEX_FMT_TID},
    {"record-key", LEX_FMT_RECORD_KEY},
    {"uri", LEX_FMT_URI},
    {"language", LEX_FMT_LANGUAGE},
};

static int compile(loader *ld, const atp_cbor *j, lex_ctx ctx, const lex_node **out);

/* ---- messages ---- */

static int lerr(loader *ld, const char *fmt, ...) ATP_PRINTF(2, 3);

/* "nsid#def: reason", so a bad file among hundreds is found at once. */
static int lerr(loader *ld, const char *fmt, ...)
{
    char msg[ATP_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return atp_err_set(ld->err, ATP_EINVAL, 0, "%.*s%s%.*s: %s", (int)ld->nsid.len,
                       (const char *)ld->nsid.ptr, ld->def.len ? "#" : "", (int)ld->def.len,
                       (const char *)ld->def.ptr, msg);
}

/* ---- hash table of defs ---- */

static uint64_t fnv(uint64_t h, atp_slice s)
{
    for (size_t i = 0; i < s.len; i++) {
        h = (h ^ s.ptr[i]) * 0x100000001b3ull;
    }
    return h;
}

static uint64_t def_hash(atp_slice nsid, atp_slice name)
{
    return fnv(fnv(0xcbf29ce484222325ull, nsid) * 0x100000001b3ull, name);
}

const atp_lexicon_def *atp__lexicon_lookup(const atp_lexicon *cat, atp_slice nsid, atp_slice name)
{
    if (cat->cap == 0) {
        return NULL;
    }
    size_t mask = cat->cap - 1;
    for (size_t i = (size_t)def_hash(nsid, name) & mask;; i = (i + 1) & mask) {
        const atp_lexicon_def *d = cat->slots[i];
        if (!d) {
            return NULL;
        }
        if (atp_slice_eq(d->nsid, nsid) && atp_slice_eq(d->name, name)) {
            return d;
        }
    }
}

static void slot_put(atp_lexicon_def **slots, size_t cap, atp_lexicon_def *d)
{
    size_t i = (size_t)def_hash(d->nsid, d->name) & (cap - 1);
    while (slots[i]) {
        i = (i + 1) & (cap - 1);
    }
    slots[i] = d;
}

/* Keeps the load factor at or under 1/2 so probes stay short. */
static void table_insert(atp_lexicon *cat, atp_lexicon_def *d)
{
    if ((cat->n_defs + 1) * 2 > cat->cap) {
        size_t ncap = cat->cap ? cat->cap * 2 : 256;
        atp_lexicon_def **ns = atp_xcalloc(ncap, sizeof *ns);
        for (size_t i = 0; i < cat->cap; i++) {
            if (cat->slots[i]) {
                slot_put(ns, ncap, cat->slots[i]);
            }
        }
        free(cat->slots);
        cat->slots = ns;
        cat->cap = ncap;
    }
    slot_put(cat->slots, cat->cap, d);
    cat->n_defs++;
}

/* ---- small readers over the document tree ---- */

static atp_slice dup(loader *ld, atp_slice s)
{
    return atp_slice_make(atp_arena_dup(ld->cat->arena, s.ptr, s.len), s.len);
}

/* Optional string member: *has false when absent; an error if present but not a string. */
static int get_str(loader *ld, const atp_cbor *j, const char *key, atp_slice *out, bool *has)
{
    const atp_cbor *v = atp_cbor_map_get_str(j, key);
    *has = v != NULL;
    if (!v) {
        return 0;
    }
    if (v->type != ATP_CBOR_STRING) {
        return lerr(ld, "\"%s\" must be a string", key);
    }
    *out = dup(ld, v->u.str);
    return 0;
}

static int get_int(loader *ld, const atp_cbor *j, const char *key, int64_t *out, bool *has)
{
    const atp_cbor *v = atp_cbor_map_get_str(j, key);
    *has = v != NULL;
    if (!v) {
        return 0;
    }
    if (v->type != ATP_CBOR_INT) {
        return lerr(ld, "\"%s\" must be an integer", key);
    }
    *out = v->u.i;
    return 0;
}

static int get_bool(loader *ld, const atp_cbor *j, const char *key, bool *out, bool *has)
{
    const atp_cbor *v = atp_cbor_map_get_str(j, key);
    *has = v != NULL;
    if (!v) {
        return 0;
    }
    if (v->type != ATP_CBOR_BOOL) {
        return lerr(ld, "\"%s\" must be a boolean", key);
    }
    *out = v->u.b;
    return 0;
}

/* Optional length bound (an integer >= 0), left as is when absent. */
static int get_len(loader *ld, const atp_cbor *j, const char *key, size_t *out)
{
    int64_t v = 0;
    bool has;
    int rc = get_int(ld, j, key, &v, &has);
    if (rc || !has) {
        return rc;
    }
    if (v < 0) {
        return lerr(ld, "\"%s\" must not be negative", key);
    }
    *out = (size_t)v;
    return 0;
}

/* Optional array of strings, copied into the arena. */
static int get_str_array(loader *ld, const atp_cbor *j, const char *key, const atp_slice **out,
                         size_t *n, bool *has)
{
    const atp_cbor *v = atp_cbor_map_get_str(j, key);
    *has = v != NULL;
    if (!v) {
        return 0;
    }
    if (v->type != ATP_CBOR_ARRAY) {
        return lerr(ld, "\"%s\" must be an array of strings", key);
    }
    atp_slice *arr = atp_arena_calloc(ld->cat->arena, v->u.arr.n + 1, sizeof *arr);
    for (size_t i = 0; i < v->u.arr.n; i++) {
        if (v->u.arr.items[i].type != ATP_CBOR_STRING) {
            return lerr(ld, "\"%s\" must be an array of strings", key);
        }
        arr[i] = dup(ld, v->u.arr.items[i].u.str);
    }
    *out = arr;
    *n = v->u.arr.n;
    return 0;
}

static int get_int_array(loader *ld, const atp_cbor *j, const char *key, const int64_t **out,
                         size_t *n, bool *has)
{
    const atp_cbor *v = atp_cbor_map_get_str(j, key);
    *has = v != NULL;
    if (!v) {
        return 0;
    }
    if (v->type != ATP_CBOR_ARRAY) {
        return lerr(ld, "\"%s\" must be an array of integers", key);
    }
    int64_t *arr = atp_arena_calloc(ld->cat->arena, v->u.arr.n + 1, sizeof *arr);
    for (size_t i = 0; i < v->u.arr.n; i++) {
        if (v->u.arr.items[i].type != ATP_CBOR_INT) {
            return lerr(ld, "\"%s\" must be an array of integers", key);
        }
        arr[i] = v->u.arr.items[i].u.i;
    }
    *out = arr;
    *n = v->u.arr.n;
    return 0;
}

/* ---- references ---- */

static void note_ref(loader *ld, lex_ref *r)
{
    if (ld->n_refs == ld->cap_refs) {
        ld->cap_refs = ld->cap_refs ? ld->cap_refs * 2 : 32;
        ld->refs = atp_xrealloc(ld->refs, ld->cap_refs * sizeof *ld->refs);
    }
    ld->refs[ld->n_refs++] = r;
}

/* "#name" (this document), "nsid#name" or "nsid" (its main). */
static int parse_ref(loader *ld, atp_slice text, lex_ref *out)
{
    const uint8_t *hash = text.len ? memchr(text.ptr, '#', text.len) : NULL;
    size_t cut = hash ? (size_t)(hash - text.ptr) : text.len;
    atp_slice nsid = atp_slice_sub(text, 0, cut);
    atp_slice name = hash ? atp_slice_sub(text, cut + 1, text.len) : ATP_SLICE_LIT("main");
    if (cut == 0) {
        nsid = ld->nsid;
    } else if (!atp_syntax_is_nsid(nsid)) {
        return lerr(ld, "ref \"%.*s\" does not start with an NSID", (int)text.len,
                    (const char *)text.ptr);
    }
    if (name.len == 0 || memchr(name.ptr, '#', name.len)) {
        return lerr(ld, "ref \"%.*s\" has a bad fragment", (int)text.len, (const char *)text.ptr);
    }
    out->nsid = cut == 0 ? nsid : dup(ld, nsid);
    out->name = dup(ld, name);
    out->def = NULL;
    note_ref(ld, out);
    return 0;
}

static int compile_refs(loader *ld, const atp_slice *texts, size_t n, lex_node *node)
{
    node->refs = atp_arena_calloc(ld->cat->arena, n + 1, sizeof *node->refs);
    node->n_refs = n;
    for (size_t i = 0; i < n; i++) {
        int rc = parse_ref(ld, texts[i], &node->refs[i]);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int compile_ref(loader *ld, const atp_cbor *j, lex_node *n)
{
    atp_slice text = {NULL, 0};
    bool has;
    int rc = get_str(ld, j, "ref", &text, &has);
    if (rc) {
        return rc;
    }
    if (!has) {
        return lerr(ld, "ref without \"ref\"");
    }
    return compile_refs(ld, &text, 1, n);
}

static int compile_union(loader *ld, const atp_cbor *j, lex_node *n)
{
    const atp_slice *refs = NULL;
    size_t count = 0;
    bool has, closed = false, has_closed;
    int rc = get_str_array(ld, j, "refs", &refs, &count, &has);
    rc = rc ? rc : get_bool(ld, j, "closed", &closed, &has_closed);
    if (rc) {
        return rc;
    }
    if (!has) {
        return lerr(ld, "union without \"refs\"");
    }
    if (closed) {
        n->flags |= LEX_CLOSED;
    }
    return compile_refs(ld, refs, count, n);
}

/* ---- scalar types ---- */

static int compile_boolean(loader *ld, const atp_cbor *j, lex_node *n)
{
    bool dflt, has;
    int rc = get_bool(ld, j, "const", &n->bconst, &has);
    if (has) {
        n->flags |= LEX_HAS_CONST;
    }
    return rc ? rc : get_bool(ld, j, "default", &dflt, &has);
}

static int compile_integer(loader *ld, const atp_cbor *j, lex_node *n)
{
    int64_t dflt;
    bool has_min = false, has_max = false, has_const = false, has_enum = false, has_dflt;
    int rc = get_int(ld, j, "minimum", &n->imin, &has_min);
    rc = rc ? rc : get_int(ld, j, "maximum", &n->imax, &has_max);
    rc = rc ? rc : get_int(ld, j, "const", &n->iconst, &has_const);
    rc = rc ? rc : get_int(ld, j, "default", &dflt, &has_dflt);
    rc = rc ? rc : get_int_array(ld, j, "enum", &n->ienum, &n->n_enum, &has_enum);
    if (has_const) {
        n->flags |= LEX_HAS_CONST;
    }
    n->has_enum = has_enum;
    return rc;
}

static int compile_format(loader *ld, const atp_cbor *j, lex_node *n)
{
    atp_slice f = {NULL, 0};
    bool has;
    int rc = get_str(ld, j, "format", &f, &has);
    if (rc || !has) {
        return rc;
    }
    for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++) {
        if (atp_slice_eq_str(f, format_names[i].name)) {
            n->format = format_names[i].format;
            return 0;
        }
    }
    return lerr(ld, "unknown string format \"%.*s\"", (int)f.len, (const char *)f.ptr);
}

static int compile_string(loader *ld, const atp_cbor *j, lex_node *n)
{
    atp_slice dflt;
    const atp_slice *known;
    size_t n_known;
    bool has_const = false, has_enum = false, has;
    int rc = compile_format(ld, j, n);
    rc = rc ? rc : get_len(ld, j, "minLength", &n->min_len);
    rc = rc ? rc : get_len(ld, j, "maxLength", &n->max_len);
    rc = rc ? rc : get_len(ld, j, "minGraphemes", &n->min_g);
    rc = rc ? rc : get_len(ld, j, "maxGraphemes", &n->max_g);
    rc = rc ? rc : get_str(ld, j, "const", &n->sconst, &has_const);
    rc = rc ? rc : get_str(ld, j, "default", &dflt, &has);
    rc = rc ? rc : get_str_array(ld, j, "enum", &n->senum, &n->n_enum, &has_enum);
    rc = rc ? rc : get_str_array(ld, j, "knownValues", &known, &n_known, &has);
    if (has_const) {
        n->flags |= LEX_HAS_CONST;
    }
    n->has_enum = has_enum;
    return rc;
}

static int compile_bytes(loader *ld, const atp_cbor *j, lex_node *n)
{
    int rc = get_len(ld, j, "minLength", &n->min_len);
    return rc ? rc : get_len(ld, j, "maxLength", &n->max_len);
}

static int compile_blob(loader *ld, const atp_cbor *j, lex_node *n)
{
    bool has;
    int rc = get_str_array(ld, j, "accept", &n->senum, &n->n_enum, &has);
    n->has_enum = has;
    return rc ? rc : get_len(ld, j, "maxSize", &n->max_len);
}

/* ---- containers ---- */

static int compile_array(loader *ld, const atp_cbor *j, lex_node *n, lex_ctx ctx)
{
    const atp_cbor *items = atp_cbor_map_get_str(j, "items");
    int rc = get_len(ld, j, "minLength", &n->min_len);
    rc = rc ? rc : get_len(ld, j, "maxLength", &n->max_len);
    if (rc) {
        return rc;
    }
    if (!items) {
        return lerr(ld, "array without \"items\"");
    }
    return compile(ld, items, ctx == CTX_PARAM ? CTX_PARAM_ITEM : CTX_FIELD, &n->items);
}

static lex_prop *find_prop(const lex_node *n, atp_slice key)
{
    for (size_t i = 0; i < n->n_props; i++) {
        if (atp_slice_eq(n->props[i].key, key)) {
            return &n->props[i];
        }
    }
    return NULL;
}

/* Marks the properties named in `required` (each must exist) and `nullable`. */
static int mark_props(loader *ld, const atp_cbor *j, lex_node *n)
{
    const atp_slice *req = NULL, *nul = NULL;
    size_t n_req = 0, n_nul = 0;
    bool has;
    int rc = get_str_array(ld, j, "required", &req, &n_req, &has);
    rc = rc ? rc : get_str_array(ld, j, "nullable", &nul, &n_nul, &has);
    for (size_t i = 0; !rc && i < n_req; i++) {
        lex_prop *p = find_prop(n, req[i]);
        if (!p) {
            return lerr(ld, "required field \"%.*s\" not defined", (int)req[i].len,
                        (const char *)req[i].ptr);
        }
        p->required = true;
    }
    for (size_t i = 0; !rc && i < n_nul; i++) {
        lex_prop *p = find_prop(n, nul[i]);
        if (p) {
            p->nullable = true;
        }
    }
    return rc;
}

static int compile_object(loader *ld, const atp_cbor *j, lex_node *n)
{
    const atp_cbor *props = atp_cbor_map_get_str(j, "properties");
    lex_ctx pctx = n->type == ATP_LEXICON_PARAMS ? CTX_PARAM : CTX_FIELD;
    if (props && props->type != ATP_CBOR_MAP) {
        return lerr(ld, "\"properties\" must be an object");
    }
    if (props) {
        lex_prop *ps = atp_arena_calloc(ld->cat->arena, props->u.map.n + 1, sizeof *ps);
        for (size_t i = 0; i < props->u.map.n; i++) {
            ps[i].key = dup(ld, props->u.map.pairs[i].key);
            int rc = compile(ld, &props->u.map.pairs[i].val, pctx, &ps[i].node);
            if (rc) {
                return rc;
            }
        }
        n->props = ps;
        n->n_props = props->u.map.n;
    }
    return mark_props(ld, j, n);
}

/* ---- primary types ---- */

static int compile_record(loader *ld, const atp_cbor *j, lex_node *n)
{
    const atp_cbor *rec = atp_cbor_map_get_str(j, "record");
    atp_slice key = ATP_SLICE_LIT("any");
    bool has;
    int rc = get_str(ld, j, "key", &key, &has);
    if (rc) {
        return rc;
    }
    if (atp_slice_eq_str(key, "tid")) {
        n->key = LEX_KEY_TID;
    } else if (atp_slice_eq_str(key, "nsid")) {
        n->key = LEX_KEY_NSID;
    } else if (atp_slice_has_prefix(key, ATP_SLICE_LIT("literal:")) && key.len > 8) {
        n->key = LEX_KEY_LITERAL;
        n->key_literal = atp_slice_sub(key, 8, key.len);
    } else if (!atp_slice_eq_str(key, "any")) {
        return lerr(ld, "unknown record key type \"%.*s\"", (int)key.len, (const char *)key.ptr);
    }
    if (!rec) {
        return lerr(ld, "record without \"record\"");
    }
    return compile(ld, rec, CTX_RECORD, &n->record);
}

/* {encoding, schema?} of input/output, or {schema} of a subscription message. */
static int compile_body(loader *ld, const atp_cbor *j, const char *key, const lex_node **out)
{
    const atp_cbor *b = atp_cbor_map_get_str(j, key);
    atp_slice enc;
    bool has;
    if (!b) {
        return 0;
    }
    if (b->type != ATP_CBOR_MAP) {
        return lerr(ld, "\"%s\" must be an object", key);
    }
    int rc = get_str(ld, b, "encoding", &enc, &has);
    if (!rc && !has && strcmp(key, "message") != 0) {
        rc = lerr(ld, "\"%s\" without \"encoding\"", key);
    }
    const atp_cbor *schema = atp_cbor_map_get_str(b, "schema");
    return rc || !schema ? rc : compile(ld, schema, CTX_BODY, out);
}

static int compile_errors(loader *ld, const atp_cbor *j)
{
    const atp_cbor *e = atp_cbor_map_get_str(j, "errors");
    if (!e) {
        return 0;
    }
    if (e->type != ATP_CBOR_ARRAY) {
        return lerr(ld, "\"errors\" must be an array");
    }
    for (size_t i = 0; i < e->u.arr.n; i++) {
        const atp_cbor *name = atp_cbor_map_get_str(&e->u.arr.items[i], "name");
        if (!name || name->type != ATP_CBOR_STRING) {
            return lerr(ld, "errors[%zu] needs a string \"name\"", i);
        }
    }
    return 0;
}

static int compile_xrpc(loader *ld, const atp_cbor *j, lex_node *n)
{
    const atp_cbor *params = atp_cbor_map_get_str(j, "parameters");
    int rc = params ? compile(ld, params, CTX_PARAMS, &n->params) : 0;
    rc = rc ? rc : compile_errors(ld, j);
    if (!rc && n->type == ATP_LEXICON_SUBSCRIPTION) {
        rc = compile_body(ld, j, "message", &n->message);
    } else if (!rc) {
        rc = compile_body(ld, j, "output", &n->output);
    }
    if (!rc && n->type == ATP_LEXICON_PROCEDURE) {
        rc = compile_body(ld, j, "input", &n->input);
    }
    return rc;
}

static int compile_permission_set(loader *ld, const atp_cbor *j)
{
    const atp_cbor *p = atp_cbor_map_get_str(j, "permissions");
    if (!p || p->type != ATP_CBOR_ARRAY) {
        return lerr(ld, "permission-set needs a \"permissions\" array");
    }
    for (size_t i = 0; i < p->u.arr.n; i++) {
        const atp_cbor *t = atp_cbor_map_get_str(&p->u.arr.items[i], "type");
        const atp_cbor *r = atp_cbor_map_get_str(&p->u.arr.items[i], "resource");
        if (!t || t->type != ATP_CBOR_STRING || !atp_slice_eq_str(t->u.str, "permission") || !r ||
            r->type != ATP_CBOR_STRING) {
            return lerr(ld, "permissions[%zu] must be a permission with a resource", i);
        }
    }
    return 0;
}

/* ---- dispatch ---- */

static bool allowed(lex_ctx ctx, atp_lexicon_type t)
{
    switch (ctx) {
    case CTX_DEF:
        return t != ATP_LEXICON_PARAMS && t != ATP_LEXICON_REF && t != ATP_LEXICON_UNION &&
               t != ATP_LEXICON_UNKNOWN;
    case CTX_FIELD:
        return t <= ATP_LEXICON_UNKNOWN && t != ATP_LEXICON_PARAMS;
    case CTX_PARAM:
        return t == ATP_LEXICON_BOOLEAN || t == ATP_LEXICON_INTEGER || t == ATP_LEXICON_STRING ||
               t == ATP_LEXICON_UNKNOWN || t == ATP_LEXICON_ARRAY;
    case CTX_PARAM_ITEM:
        return t == ATP_LEXICON_BOOLEAN || t == ATP_LEXICON_INTEGER || t == ATP_LEXICON_STRING ||
               t == ATP_LEXICON_UNKNOWN;
    case CTX_PARAMS:
        return t == ATP_LEXICON_PARAMS;
    case CTX_BODY:
        return t == ATP_LEXICON_OBJECT || t == ATP_LEXICON_REF || t == ATP_LEXICON_UNION;
    case CTX_RECORD:
        return t == ATP_LEXICON_OBJECT;
    }
    return false;
}

static int type_of(loader *ld, const atp_cbor *j, atp_lexicon_type *out)
{
    const atp_cbor *t = atp_cbor_map_get_str(j, "type");
    if (j->type != ATP_CBOR_MAP) {
        return lerr(ld, "schema must be an object");
    }
    if (!t || t->type != ATP_CBOR_STRING) {
        return lerr(ld, "schema without a string \"type\"");
    }
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++) {
        if (atp_slice_eq_str(t->u.str, type_names[i].name)) {
            *out = type_names[i].type;
            return 0;
        }
    }
    return lerr(ld, "unknown type \"%.*s\"", (int)t->u.str.len, (const char *)t->u.str.ptr);
}

static int compile_body_of(loader *ld, const atp_cbor *j, lex_node *n, lex_ctx ctx)
{
    switch (n->type) {
    case ATP_LEXICON_BOOLEAN:
        return compile_boolean(ld, j, n);
    case ATP_LEXICON_INTEGER:
        return compile_integer(ld, j, n);
    case ATP_LEXICON_STRING:
        return compile_string(ld, j, n);
    case ATP_LEXICON_BYTES:
        return compile_bytes(ld, j, n);
    case ATP_LEXICON_BLOB:
        return compile_blob(ld, j, n);
    case ATP_LEXICON_ARRAY:
        return compile_array(ld, j, n, ctx);
    case ATP_LEXICON_OBJECT:
    case ATP_LEXICON_PARAMS:
        return compile_object(ld, j, n);
    case ATP_LEXICON_REF:
        return compile_ref(ld, j, n);
    case ATP_LEXICON_UNION:
        return compile_union(ld, j, n);
    case ATP_LEXICON_RECORD:
        return compile_record(ld, j, n);
    case ATP_LEXICON_QUERY:
    case ATP_LEXICON_PROCEDURE:
    case ATP_LEXICON_SUBSCRIPTION:
        return compile_xrpc(ld, j, n);
    case ATP_LEXICON_PERMISSION_SET:
        return compile_permission_set(ld, j);
    case ATP_LEXICON_CID_LINK:
    case ATP_LEXICON_UNKNOWN:
    case ATP_LEXICON_TOKEN:
        return 0;
    }
    return lerr(ld, "unhandled type");
}

static int compile(loader *ld, const atp_cbor *j, lex_ctx ctx, const lex_node **out)
{
    atp_lexicon_type t = ATP_LEXICON_TOKEN;
    int rc = type_of(ld, j, &t);
    if (rc) {
        return rc;
    }
    if (!allowed(ctx, t)) {
        return lerr(ld, "type \"%s\" is not allowed here", type_names[t].name);
    }
    if (ld->depth >= LEX_SCHEMA_DEPTH) {
        return atp_err_set(ld->err, ATP_EDEPTH, 0, "schema nested deeper than %d",
                           LEX_SCHEMA_DEPTH);
    }
    lex_node *n = atp_arena_calloc(ld->cat->arena, 1, sizeof *n);
    n->type = t;
    n->imin = INT64_MIN;
    n->imax = INT64_MAX;
    n->max_len = SIZE_MAX;
    n->max_g = SIZE_MAX;
    ld->depth++;
    rc = compile_body_of(ld, j, n, ctx);
    ld->depth--;
    if (rc == 0) {
        *out = n;
    }
    return rc;
}

/* ---- documents ---- */

static bool is_primary(atp_lexicon_type t)
{
    return t >= ATP_LEXICON_RECORD;
}

static int check_header(loader *ld, const atp_cbor *doc, const atp_cbor **defs)
{
    const atp_cbor *lex = atp_cbor_map_get_str(doc, "lexicon");
    const atp_cbor *id = atp_cbor_map_get_str(doc, "id");
    atp_slice s;
    bool has;
    int64_t rev;
    if (doc->type != ATP_CBOR_MAP) {
        return atp_err_set(ld->err, ATP_EINVAL, 0, "lexicon document must be an object");
    }
    if (!lex || lex->type != ATP_CBOR_INT || lex->u.i != 1) {
        return atp_err_set(ld->err, ATP_EINVAL, 0, "\"lexicon\" must be the integer 1");
    }
    if (!id || id->type != ATP_CBOR_STRING || !atp_syntax_is_nsid(id->u.str)) {
        return atp_err_set(ld->err, ATP_EINVAL, 0, "\"id\" must be an NSID string");
    }
    ld->nsid = dup(ld, id->u.str);
    int rc = get_int(ld, doc, "revision", &rev, &has);
    rc = rc ? rc : get_str(ld, doc, "description", &s, &has);
    *defs = atp_cbor_map_get_str(doc, "defs");
    if (!rc && (!*defs || (*defs)->type != ATP_CBOR_MAP || (*defs)->u.map.n == 0)) {
        rc = lerr(ld, "\"defs\" must be a non-empty object");
    }
    return rc;
}

static int compile_defs(loader *ld, const atp_cbor *defs, atp_lexicon_def *out)
{
    for (size_t i = 0; i < defs->u.map.n; i++) {
        const atp_cbor_pair *p = &defs->u.map.pairs[i];
        ld->def = dup(ld, p->key);
        if (p->key.len == 0 || memchr(p->key.ptr, '#', p->key.len)) {
            return lerr(ld, "bad def name");
        }
        int rc = compile(ld, &p->val, CTX_DEF, &out[i].node);
        if (rc) {
            return rc;
        }
        if (is_primary(out[i].node->type) && !atp_slice_eq_str(p->key, "main")) {
            return lerr(ld, "records, queries, procedures, subscriptions and permission sets "
                            "must be the main def");
        }
        out[i].nsid = ld->nsid;
        out[i].name = ld->def;
    }
    ld->def = atp_slice_make(NULL, 0);
    return 0;
}

/* Links every pending ref whose target is now loaded; keeps the rest. */
static void resolve_pending(atp_lexicon *cat)
{
    size_t kept = 0;
    for (size_t i = 0; i < cat->n_pending; i++) {
        lex_ref *r = cat->pending[i];
        r->def = atp__lexicon_lookup(cat, r->nsid, r->name);
        if (!r->def) {
            cat->pending[kept++] = r;
        }
    }
    cat->n_pending = kept;
}

static void publish(loader *ld, atp_lexicon_def *defs, size_t n)
{
    atp_lexicon *cat = ld->cat;
    for (size_t i = 0; i < n; i++) {
        table_insert(cat, &defs[i]);
    }
    if (ld->n_refs && cat->n_pending + ld->n_refs > cat->cap_pending) {
        cat->cap_pending = (cat->n_pending + ld->n_refs) * 2;
        cat->pending = atp_xrealloc(cat->pending, cat->cap_pending * sizeof *cat->pending);
    }
    if (ld->n_refs) {
        memcpy(cat->pending + cat->n_pending, ld->refs, ld->n_refs * sizeof *ld->refs);
        cat->n_pending += ld->n_refs;
    }
    cat->n_docs++;
    resolve_pending(cat);
}

static int load(atp_lexicon *cat, const atp_cbor *doc, bool add, atp_err *err)
{
    loader ld = {cat, {NULL, 0}, {NULL, 0}, err, NULL, 0, 0, 0};
    const atp_cbor *defs = NULL;
    int rc = check_header(&ld, doc, &defs);
    atp_lexicon_def *out = NULL;
    if (rc == 0) {
        out = atp_arena_calloc(cat->arena, defs->u.map.n, sizeof *out);
        rc = compile_defs(&ld, defs, out);
    }
    for (size_t i = 0; rc == 0 && add && i < defs->u.map.n; i++) {
        if (atp__lexicon_lookup(cat, out[i].nsid, out[i].name)) {
            rc = atp_err_set(err, ATP_ECONFLICT, 0, "%.*s#%.*s is already loaded",
                             (int)out[i].nsid.len, (const char *)out[i].nsid.ptr,
                             (int)out[i].name.len, (const char *)out[i].name.ptr);
        }
    }
    if (rc == 0 && add) {
        publish(&ld, out, defs->u.map.n);
    }
    free(ld.refs);
    return rc;
}

/* ---- public API ---- */

atp_lexicon *atp_lexicon_create(void)
{
    atp_lexicon *cat = atp_xcalloc(1, sizeof *cat);
    cat->arena = atp_arena_create(64 * 1024);
    return cat;
}

void atp_lexicon_destroy(atp_lexicon *cat)
{
    if (!cat) {
        return;
    }
    atp_arena_destroy(cat->arena);
    free(cat->slots);
    free(cat->pending);
    free(cat);
}

int atp_lexicon_add_doc(atp_lexicon *cat, const atp_cbor *doc, atp_err *err)
{
    return load(cat, doc, true, err);
}

int atp_lexicon_check_doc(atp_lexicon *cat, const atp_cbor *doc, atp_err *err)
{
    return load(cat, doc, false, err);
}

int atp_lexicon_add_json(atp_lexicon *cat, atp_slice json, const atp_json_limits *lim, atp_err *err)
{
    atp_arena *tmp = atp_arena_create(0);
    atp_cbor *doc = NULL;
    int rc = atp_json_decode(tmp, json, 0, lim, &doc, err);
    if (rc == 0) {
        rc = atp_lexicon_add_doc(cat, doc, err);
    }
    atp_arena_destroy(tmp);
    return rc;
}

int atp_lexicon_check_refs(const atp_lexicon *cat, atp_err *err)
{
    if (cat->n_pending == 0) {
        return 0;
    }
    const lex_ref *r = cat->pending[0];
    return atp_err_set(err, ATP_ENOTFOUND, 0, "%zu unresolved refs, first: %.*s#%.*s",
                       cat->n_pending, (int)r->nsid.len, (const char *)r->nsid.ptr,
                       (int)r->name.len, (const char *)r->name.ptr);
}

size_t atp_lexicon_doc_count(const atp_lexicon *cat)
{
    return cat->n_docs;
}

size_t atp_lexicon_def_count(const atp_lexicon *cat)
{
    return cat->n_defs;
}

const atp_lexicon_def *atp_lexicon_find(const atp_lexicon *cat, atp_slice ref)
{
    const uint8_t *hash = ref.len ? memchr(ref.ptr, '#', ref.len) : NULL;
    if (!hash) {
        return atp__lexicon_lookup(cat, ref, ATP_SLICE_LIT("main"));
    }
    size_t cut = (size_t)(hash - ref.ptr);
    return atp__lexicon_lookup(cat, atp_slice_sub(ref, 0, cut),
                               atp_slice_sub(ref, cut + 1, ref.len));
}

atp_lexicon_type atp_lexicon_def_type(const atp_lexicon_def *def)
{
    return def->node->type;
}
