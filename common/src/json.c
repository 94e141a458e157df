/* json.c: atproto JSON <-> data-model tree.
 *
 * Input goes through cJSON (a pre-scan first guards what cJSON does not: nesting depth before
 * its recursion, raw control characters and U+0000 in strings), then one recursive conversion
 * builds the tree in the arena. Output is written straight into an atp_buf: no cJSON on the
 * hot path.
 */
#include "atp/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/multibase.h"

/* 2^53 - 1: the largest integer a double (what cJSON keeps for every number) holds exactly.
 * Anything larger may already have been rounded by strtod, so it cannot be trusted. */
#define JSON_INT_MAX 9007199254740991.0

const atp_json_limits atp_json_limits_default = {
    .max_len = (size_t)2 << 20,
    .max_depth = 32,
    .max_items = 131072,
    .max_str = (size_t)1 << 20,
    .max_key = 8192,
};

typedef struct conv {
    atp_arena *a;
    unsigned flags;
    const atp_json_limits *lim;
    atp_err *err;
} conv;

static int conv_value(conv *c, const cJSON *j, atp_cbor *out, uint32_t depth);

/* ---- scalars ---- */

static int conv_number(conv *c, const cJSON *j, atp_cbor *out)
{
    double d = j->valuedouble;
    int64_t i;
    /* Written so that NaN fails too. */
    if (!(d >= -JSON_INT_MAX && d <= JSON_INT_MAX)) {
        return atp_err_set(c->err, ATP_EINVAL, 0, "number beyond +-(2^53-1) or not finite");
    }
    i = (int64_t)d;
    if ((double)i != d) {
        return atp_err_set(c->err, ATP_EINVAL, 0, "non-integral number %.17g", d);
    }
    out->type = ATP_CBOR_INT;
    out->u.i = i;
    return 0;
}

/* A cJSON string checked against `max` and UTF-8; the returned slice borrows cJSON's text. */
static int get_text(conv *c, const char *s, size_t max, const char *what, atp_slice *out)
{
    atp_slice t;
    if (!s) {
        return atp_err_set(c->err, ATP_EINVAL, 0, "%s is not a string", what);
    }
    t = atp_slice_str(s);
    if (t.len > max) {
        return atp_err_set(c->err, ATP_ELIMIT, 0, "%s of %zu bytes is over the limit %zu", what,
                           t.len, max);
    }
    if (!atp_cbor_is_utf8(t)) {
        return atp_err_set(c->err, ATP_EINVAL, 0, "invalid UTF-8 in %s", what);
    }
    *out = t;
    return 0;
}

static int conv_string(conv *c, const cJSON *j, atp_cbor *out)
{
    atp_slice t;
    int rc = get_text(c, j->valuestring, c->lim->max_str, "string", &t);
    if (rc) {
        return rc;
    }
    out->type = ATP_CBOR_STRING;
    out->u.str = atp_slice_make(atp_arena_dup(c->a, t.ptr, t.len), t.len);
    return 0;
}

/* ---- $link and $bytes ---- */

/* The text of a $link/$bytes member, or NULL (reported as "not a string") for other types. */
static const char *special_str(const cJSON *v)
{
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int conv_link(conv *c, const cJSON *v, atp_cbor *out)
{
    atp_slice t;
    atp_cid cid;
    atp_err cerr;
    int rc = get_text(c, special_str(v), ATP_CID_STR_MAX, "$link", &t);
    if (rc) {
        return rc;
    }
    if (atp_cid_parse(t, 0, &cid, &cerr) != 0) {
        return atp_err_set(c->err, ATP_EINVAL, 0, "$link is not a CID: %s", cerr.msg);
    }
    out->type = ATP_CBOR_LINK;
    out->u.link = atp_slice_make(atp_arena_dup(c->a, cid.bytes, cid.len), cid.len);
    return 0;
}

static int conv_bytes(conv *c, const cJSON *v, atp_cbor *out)
{
    atp_slice t;
    atp_err berr;
    size_t cap, len = 0;
    uint8_t *dst;
    int rc = get_text(c, special_str(v), c->lim->max_str, "$bytes", &t);
    if (rc) {
        return rc;
    }
    cap = atp_base_decoded_max(ATP_BASE64, t.len);
    dst = atp_arena_alloc(c->a, cap ? cap : 1);
    if (atp_base_decode(ATP_BASE64, t, dst, cap, &len, &berr) != 0) {
        return atp_err_set(c->err, ATP_EINVAL, 0, "$bytes is not base64: %s", berr.msg);
    }
    out->type = ATP_CBOR_BYTES;
    out->u.str = atp_slice_make(dst, len);
    return 0;
}

/* An object holding "$link" or "$bytes" must hold nothing else: 1 if `j` is such an object
 * (converted into *out, or rc in *rc), 0 if it is an ordinary map. */
static int conv_special(conv *c, const cJSON *j, size_t n, atp_cbor *out, int *rc)
{
    for (const cJSON *m = j->child; m; m = m->next) {
        bool link = m->string && strcmp(m->string, "$link") == 0;
        if (!link && !(m->string && strcmp(m->string, "$bytes") == 0)) {
            continue;
        }
        if (n != 1) {
            *rc = atp_err_set(c->err, ATP_EINVAL, 0, "%s object with other keys", m->string);
        } else {
            *rc = link ? conv_link(c, m, out) : conv_bytes(c, m, out);
        }
        return 1;
    }
    return 0;
}

/* ---- containers ---- */

/* Counts children, stopping (ATP_ELIMIT) past max_items before anything is allocated. */
static int count_children(conv *c, const cJSON *j, size_t *n)
{
    size_t k = 0;
    for (const cJSON *m = j->child; m; m = m->next) {
        k++;
        if (k > c->lim->max_items) {
            return atp_err_set(c->err, ATP_ELIMIT, 0, "more than %zu elements",
                               c->lim->max_items);
        }
    }
    *n = k;
    return 0;
}

static int enter(conv *c, uint32_t depth)
{
    if (depth >= c->lim->max_depth) {
        return atp_err_set(c->err, ATP_EDEPTH, 0, "nesting deeper than %u",
                           (unsigned)c->lim->max_depth);
    }
    return 0;
}

static int conv_array(conv *c, const cJSON *j, atp_cbor *out, uint32_t depth)
{
    size_t n = 0, i = 0;
    atp_cbor *items = NULL;
    int rc = enter(c, depth);
    rc = rc ? rc : count_children(c, j, &n);
    if (rc) {
        return rc;
    }
    if (n) {
        items = atp_arena_alloc(c->a, n * sizeof *items);
    }
    for (const cJSON *m = j->child; m; m = m->next, i++) {
        rc = conv_value(c, m, &items[i], depth + 1);
        if (rc) {
            return rc;
        }
    }
    out->type = ATP_CBOR_ARRAY;
    out->u.arr.items = items;
    out->u.arr.n = n;
    return 0;
}

static int check_blob(conv *c, const atp_cbor *m)
{
    const atp_cbor *ref = atp_cbor_map_get_str(m, "ref");
    const atp_cbor *size = atp_cbor_map_get_str(m, "size");
    const atp_cbor *mime = atp_cbor_map_get_str(m, "mimeType");
    if (!ref || ref->type != ATP_CBOR_LINK) {
        return atp_err_set(c->err, ATP_EINVAL, 0, "blob without a link \"ref\"");
    }
    if (!size || size->type != ATP_CBOR_INT || size->u.i < 0) {
        return atp_err_set(c->err, ATP_EINVAL, 0, "blob \"size\" is not an integer >= 0");
    }
    if (!mime || mime->type != ATP_CBOR_STRING) {
        return atp_err_set(c->err, ATP_EINVAL, 0, "blob \"mimeType\" is not a string");
    }
    return 0;
}

/* The atproto-data rules that apply to every map: $type, and blobs. */
static int check_data_map(conv *c, const atp_cbor *m)
{
    const atp_cbor *t = atp_cbor_map_get_str(m, "$type");
    if (!t) {
        return 0;
    }
    if (t->type != ATP_CBOR_STRING || t->u.str.len == 0) {
        return atp_err_set(c->err, ATP_EINVAL, 0, "$type is not a non-empty string");
    }
    if (atp_slice_eq_str(t->u.str, "blob")) {
        return check_blob(c, m);
    }
    return 0;
}

static int conv_member(conv *c, const cJSON *m, atp_cbor_pair *p, uint32_t depth)
{
    atp_slice k = {NULL, 0};
    int rc = get_text(c, m->string, c->lim->max_key, "object key", &k);
    if (rc) {
        return rc;
    }
    p->key = atp_slice_make(atp_arena_dup(c->a, k.ptr, k.len), k.len);
    return conv_value(c, m, &p->val, depth + 1);
}

static int conv_object(conv *c, const cJSON *j, atp_cbor *out, uint32_t depth)
{
    size_t n = 0, i = 0;
    atp_cbor tmp;
    int rc = count_children(c, j, &n);
    if (rc == 0 && conv_special(c, j, n, out, &rc)) {
        return rc;
    }
    rc = rc ? rc : enter(c, depth);
    if (rc) {
        return rc;
    }
    tmp.type = ATP_CBOR_MAP;
    tmp.u.map.pairs = n ? atp_arena_alloc(c->a, n * sizeof(atp_cbor_pair)) : NULL;
    tmp.u.map.n = n;
    for (const cJSON *m = j->child; m && rc == 0; m = m->next, i++) {
        rc = conv_member(c, m, &tmp.u.map.pairs[i], depth);
    }
    rc = rc ? rc : atp_cbor_map_finish(&tmp, c->err);
    if (rc == 0 && (c->flags & ATP_JSON_DATA)) {
        rc = check_data_map(c, &tmp);
    }
    if (rc == 0) {
        *out = tmp;
    }
    return rc;
}

static int conv_value(conv *c, const cJSON *j, atp_cbor *out, uint32_t depth)
{
    switch (j->type & 0xff) {
    case cJSON_NULL:
        out->type = ATP_CBOR_NULL;
        return 0;
    case cJSON_False:
    case cJSON_True:
        out->type = ATP_CBOR_BOOL;
        out->u.b = (j->type & 0xff) == cJSON_True;
        return 0;
    case cJSON_Number:
        return conv_number(c, j, out);
    case cJSON_String:
        return conv_string(c, j, out);
    case cJSON_Array:
        return conv_array(c, j, out, depth);
    case cJSON_Object:
        return conv_object(c, j, out, depth);
    default:
        return atp_err_set(c->err, ATP_EINVAL, 0, "cJSON item of unsupported type %d", j->type);
    }
}

int atp_json_from_cjson(atp_arena *a, const cJSON *j, unsigned flags, const atp_json_limits *lim,
                        atp_cbor **out, atp_err *err)
{
    conv c = {a, flags, lim ? lim : &atp_json_limits_default, err};
    atp_cbor *root;
    int rc;
    if (!j) {
        return atp_err_set(err, ATP_EINVAL, 0, "no JSON value");
    }
    root = atp_arena_alloc(a, sizeof *root);
    rc = conv_value(&c, j, root, 0);
    if (rc == 0 && (flags & ATP_JSON_DATA) && root->type != ATP_CBOR_MAP) {
        rc = atp_err_set(err, ATP_EINVAL, 0, "atproto data must be an object at the top level");
    }
    if (rc == 0) {
        *out = root;
    }
    return rc;
}

/* ---- text input ---- */

/* The checks cJSON does not make, in one pass over the text: bracket depth (cJSON recurses per
 * level; `$link`/`$bytes` wrappers need one level more than the tree), raw control characters
 * in strings (invalid JSON that cJSON accepts), NUL bytes, and the escape \u0000 (cJSON would
 * cut the string there). */
static int prescan(atp_slice s, uint32_t max_depth, atp_err *err)
{
    uint64_t depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t ch = s.ptr[i];
        if (in_str) {
            if (ch == '\\') {
                if (s.len - i >= 6 && memcmp(s.ptr + i + 1, "u0000", 5) == 0) {
                    return atp_err_set(err, ATP_EUNSUPPORTED, i, "U+0000 in a string");
                }
                i++;
            } else if (ch == '"') {
                in_str = false;
            } else if (ch < 0x20) {
                return atp_err_set(err, ATP_EINVAL, i, "control character in a string");
            }
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '[' || ch == '{') {
            depth++;
            if (depth > (uint64_t)max_depth + 1) {
                return atp_err_set(err, ATP_EDEPTH, i, "nesting deeper than %u",
                                   (unsigned)max_depth);
            }
        } else if (ch == ']' || ch == '}') {
            depth -= depth > 0;
        } else if (ch == 0) {
            return atp_err_set(err, ATP_EINVAL, i, "NUL byte in JSON text");
        }
    }
    return 0;
}

static size_t skip_ws(atp_slice s, size_t i)
{
    while (i < s.len && (s.ptr[i] == ' ' || s.ptr[i] == '\t' || s.ptr[i] == '\n' ||
                         s.ptr[i] == '\r')) {
        i++;
    }
    return i;
}

/* Parses the text with cJSON; *doc is owned by the caller on success. */
static int parse_text(atp_slice json, cJSON **doc, atp_err *err)
{
    const char *end = NULL;
    const char *text = (const char *)json.ptr;
    cJSON *j = cJSON_ParseWithLengthOpts(text, json.len, &end, 0);
    size_t off;
    if (!j) {
        off = end && end >= text && end <= text + json.len ? (size_t)(end - text) : 0;
        return atp_err_set(err, ATP_EINVAL, off, "JSON syntax error");
    }
    off = skip_ws(json, (size_t)(end - text));
    if (off != json.len) {
        cJSON_Delete(j);
        return atp_err_set(err, ATP_EINVAL, off, "trailing characters after the JSON value");
    }
    *doc = j;
    return 0;
}

int atp_json_decode(atp_arena *a, atp_slice json, unsigned flags, const atp_json_limits *lim,
                    atp_cbor **out, atp_err *err)
{
    const atp_json_limits *l = lim ? lim : &atp_json_limits_default;
    cJSON *doc = NULL;
    int rc;
    if (json.len > l->max_len) {
        return atp_err_set(err, ATP_ELIMIT, 0, "JSON of %zu bytes is over max_len %zu", json.len,
                           l->max_len);
    }
    if (json.len == 0 || !json.ptr) {
        return atp_err_set(err, ATP_EINVAL, 0, "empty JSON text");
    }
    rc = prescan(json, l->max_depth, err);
    rc = rc ? rc : parse_text(json, &doc, err);
    rc = rc ? rc : atp_json_from_cjson(a, doc, flags, l, out, err);
    cJSON_Delete(doc);
    return rc;
}

/* ---- output ---- */

typedef struct jenc {
    atp_buf *b;
    bool pretty;
} jenc;

static void enc_value(jenc *e, const atp_cbor *v, uint32_t level);

static void put_indent(jenc *e, uint32_t level)
{
    static const char spaces[] = "                                ";
    size_t n = (size_t)level * 2;
    atp_buf_append_byte(e->b, '\n');
    while (n > 0) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        atp_buf_append(e->b, spaces, k);
        n -= k;
    }
}

/* Bytes that need an escape in a JSON string: control characters, quote and backslash. */
static bool needs_escape(uint8_t ch)
{
    return ch < 0x20 || ch == '"' || ch == '\\';
}

static void put_escape(atp_buf *b, uint8_t ch)
{
    static const char hex[] = "0123456789abcdef";
    char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
    const char *shortform = NULL;
    switch (ch) {
    case '"':
        shortform = "\\\"";
        break;
    case '\\':
        shortform = "\\\\";
        break;
    case '\b':
        shortform = "\\b";
        break;
    case '\f':
        shortform = "\\f";
        break;
    case '\n':
        shortform = "\\n";
        break;
    case '\r':
        shortform = "\\r";
        break;
    case '\t':
        shortform = "\\t";
        break;
    default:
        break;
    }
    if (shortform) {
        atp_buf_append(b, shortform, 2);
    } else {
        atp_buf_append(b, esc, 6);
    }
}

/* Copies runs of plain bytes at once; only the bytes that need it are escaped. */
static void put_string(atp_buf *b, atp_slice s)
{
    size_t run = 0;
    atp_buf_append_byte(b, '"');
    for (size_t i = 0; i < s.len; i++) {
        if (needs_escape(s.ptr[i])) {
            atp_buf_append(b, s.ptr + run, i - run);
            put_escape(b, s.ptr[i]);
            run = i + 1;
        }
    }
    atp_buf_append(b, s.ptr + run, s.len - run);
    atp_buf_append_byte(b, '"');
}

static void put_int(atp_buf *b, int64_t i)
{
    char tmp[24];
    size_t n = sizeof tmp;
    /* The magnitude as unsigned, so INT64_MIN needs no special case. */
    uint64_t u = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
    do {
        tmp[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (i < 0) {
        tmp[--n] = '-';
    }
    atp_buf_append(b, tmp + n, sizeof tmp - n);
}

static void put_key(jenc *e, atp_slice key, uint32_t level, bool first)
{
    if (!first) {
        atp_buf_append_byte(e->b, ',');
    }
    if (e->pretty) {
        put_indent(e, level);
    }
    put_string(e->b, key);
    atp_buf_append(e->b, e->pretty ? ": " : ":", e->pretty ? 2 : 1);
}

static void put_close(jenc *e, char ch, uint32_t level, size_t n)
{
    if (e->pretty && n > 0) {
        put_indent(e, level);
    }
    atp_buf_append_byte(e->b, (uint8_t)ch);
}

static void set_invalid(atp_buf *b)
{
    if (!b->err) {
        b->err = ATP_EINVAL;
    }
}

/* The text inside {"$link": ...} or {"$bytes": ...}: CID string or unpadded base64. */
static void put_special_text(atp_buf *b, const atp_cbor *v)
{
    atp_cid cid;
    if (v->type == ATP_CBOR_BYTES) {
        atp_base_encode(b, ATP_BASE64, v->u.str);
        return;
    }
    if (v->u.link.len == 0 || v->u.link.len > ATP_CID_MAX) {
        set_invalid(b);
        return;
    }
    cid.len = (uint8_t)v->u.link.len;
    memcpy(cid.bytes, v->u.link.ptr, v->u.link.len);
    atp_cid_format(b, &cid);
}

/* Laid out like any one-member object (as JSON.stringify would in pretty mode). */
static void enc_special(jenc *e, const atp_cbor *v, uint32_t level)
{
    bool link = v->type == ATP_CBOR_LINK;
    atp_buf_append_byte(e->b, '{');
    put_key(e, link ? ATP_SLICE_LIT("$link") : ATP_SLICE_LIT("$bytes"), level + 1, true);
    atp_buf_append_byte(e->b, '"');
    put_special_text(e->b, v);
    atp_buf_append_byte(e->b, '"');
    put_close(e, '}', level, 1);
}

static void enc_array(jenc *e, const atp_cbor *v, uint32_t level)
{
    atp_buf_append_byte(e->b, '[');
    for (size_t i = 0; i < v->u.arr.n && !e->b->err; i++) {
        if (i > 0) {
            atp_buf_append_byte(e->b, ',');
        }
        if (e->pretty) {
            put_indent(e, level + 1);
        }
        enc_value(e, &v->u.arr.items[i], level + 1);
    }
    put_close(e, ']', level, v->u.arr.n);
}

static void enc_map(jenc *e, const atp_cbor *v, uint32_t level)
{
    atp_buf_append_byte(e->b, '{');
    for (size_t i = 0; i < v->u.map.n && !e->b->err; i++) {
        const atp_cbor_pair *p = &v->u.map.pairs[i];
        if (!atp_cbor_is_utf8(p->key)) {
            set_invalid(e->b);
            return;
        }
        put_key(e, p->key, level + 1, i == 0);
        enc_value(e, &p->val, level + 1);
    }
    put_close(e, '}', level, v->u.map.n);
}

static void enc_value(jenc *e, const atp_cbor *v, uint32_t level)
{
    switch (v->type) {
    case ATP_CBOR_NULL:
        atp_buf_append(e->b, "null", 4);
        break;
    case ATP_CBOR_BOOL:
        atp_buf_append_str(e->b, v->u.b ? "true" : "false");
        break;
    case ATP_CBOR_INT:
        put_int(e->b, v->u.i);
        break;
    case ATP_CBOR_STRING:
        if (!atp_cbor_is_utf8(v->u.str)) {
            set_invalid(e->b);
            return;
        }
        put_string(e->b, v->u.str);
        break;
    case ATP_CBOR_BYTES:
    case ATP_CBOR_LINK:
        enc_special(e, v, level);
        break;
    case ATP_CBOR_ARRAY:
        enc_array(e, v, level);
        break;
    case ATP_CBOR_MAP:
        enc_map(e, v, level);
        break;
    default:
        set_invalid(e->b);
        break;
    }
}

void atp_json_encode(atp_buf *out, const atp_cbor *v, unsigned flags)
{
    jenc e = {out, (flags & ATP_JSON_PRETTY) != 0};
    enc_value(&e, v, 0);
}

/* ---- cJSON output ---- */

/* cJSON reports allocation failure as NULL; the house rule for OOM is to abort. */
static cJSON *cj_check(cJSON *j)
{
    if (!j) {
        fputs("atp: out of memory in cJSON\n", stderr);
        abort();
    }
    return j;
}

/* cJSON wants NUL-terminated text: copy the slice (cJSON then copies it again). */
static cJSON *cj_string(atp_slice s)
{
    char *t = atp_xstrndup((const char *)s.ptr, s.len);
    cJSON *j = cj_check(cJSON_CreateString(t));
    free(t);
    return j;
}

static cJSON *cj_special(const atp_cbor *v)
{
    atp_buf b;
    cJSON *obj = NULL;
    atp_buf_init(&b, 0);
    put_special_text(&b, v);
    if (!b.err) {
        obj = cj_check(cJSON_CreateObject());
        cJSON_AddItemToObject(obj, v->type == ATP_CBOR_LINK ? "$link" : "$bytes",
                              cj_string(atp_buf_slice(&b)));
    }
    atp_buf_release(&b);
    return obj;
}

static cJSON *cj_value(const atp_cbor *v);

/* An array or object with every child converted; NULL if one cannot be. */
static cJSON *cj_container(const atp_cbor *v)
{
    bool map = v->type == ATP_CBOR_MAP;
    size_t n = map ? v->u.map.n : v->u.arr.n;
    cJSON *parent = cj_check(map ? cJSON_CreateObject() : cJSON_CreateArray());
    for (size_t i = 0; i < n; i++) {
        cJSON *child = cj_value(map ? &v->u.map.pairs[i].val : &v->u.arr.items[i]);
        if (!child) {
            cJSON_Delete(parent);
            return NULL;
        }
        if (map) {
            char *key = atp_xstrndup((const char *)v->u.map.pairs[i].key.ptr,
                                     v->u.map.pairs[i].key.len);
            cJSON_AddItemToObject(parent, key, child);
            free(key);
        } else {
            cJSON_AddItemToArray(parent, child);
        }
    }
    return parent;
}

static cJSON *cj_value(const atp_cbor *v)
{
    switch (v->type) {
    case ATP_CBOR_NULL:
        return cj_check(cJSON_CreateNull());
    case ATP_CBOR_BOOL:
        return cj_check(cJSON_CreateBool(v->u.b));
    case ATP_CBOR_INT:
        return cj_check(cJSON_CreateNumber((double)v->u.i));
    case ATP_CBOR_STRING:
        return cj_string(v->u.str);
    case ATP_CBOR_BYTES:
    case ATP_CBOR_LINK:
        return cj_special(v);
    case ATP_CBOR_ARRAY:
    case ATP_CBOR_MAP:
        return cj_container(v);
    default:
        return NULL;
    }
}

cJSON *atp_json_to_cjson(const atp_cbor *v)
{
    return v ? cj_value(v) : NULL;
}
