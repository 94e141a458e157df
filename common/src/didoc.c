/* didoc.c: DID documents, parsed through the bounded JSON decoder into the atproto view, and
 * built in the reference PLC directory's rendering (spec identity-crypto §3). */
#include "atp/didoc.h"

#include <string.h>

#include "atp/json.h"
#include "atp/syntax.h"

const atp_didoc_limits atp_didoc_limits_default = {
    .max_len = 64 * 1024,
    .max_items = 64,
};

static const char ctx_did[] = "https://www.w3.org/ns/did/v1";
static const char ctx_multikey[] = "https://w3id.org/security/multikey/v1";
static const char ctx_k256[] = "https://w3id.org/security/suites/secp256k1-2019/v1";
static const char ctx_p256[] = "https://w3id.org/security/suites/ecdsa-2019/v1";

/* ---- small tree readers ---- */

static bool get_str(const atp_cbor *m, const char *key, atp_slice *out)
{
    const atp_cbor *v = atp_cbor_map_get_str(m, key);
    if (!v || v->type != ATP_CBOR_STRING) {
        return false;
    }
    *out = v->u.str;
    return true;
}

/* An optional array member: absent is an empty array, anything but an array is an error. */
static int get_array(const atp_cbor *m, const char *key, size_t max, const atp_cbor **items,
                     size_t *n, atp_err *err)
{
    const atp_cbor *v = atp_cbor_map_get_str(m, key);
    if (!v) {
        *items = NULL;
        *n = 0;
        return 0;
    }
    if (v->type != ATP_CBOR_ARRAY) {
        return atp_err_set(err, ATP_EINVAL, 0, "DID document: %s is not an array", key);
    }
    if (v->u.arr.n > max) {
        return atp_err_set(err, ATP_ELIMIT, 0, "DID document: %s has %zu entries (max %zu)", key,
                           v->u.arr.n, max);
    }
    *items = v->u.arr.items;
    *n = v->u.arr.n;
    return 0;
}

/* A fragment id "#name" or "<did>#name" gives "name"; anything else gives false. */
static bool fragment_of(atp_slice id, atp_slice did, atp_slice *name)
{
    size_t skip = 0;
    if (id.len > did.len && memcmp(id.ptr, did.ptr, did.len) == 0 && id.ptr[did.len] == '#') {
        skip = did.len + 1;
    } else if (id.len > 0 && id.ptr[0] == '#') {
        skip = 1;
    } else {
        return false;
    }
    *name = atp_slice_sub(id, skip, id.len - skip);
    return true;
}

/* ---- extraction ---- */

static atp_slice claimed_handle(const atp_slice *aka, size_t n)
{
    static const atp_slice at = {(const uint8_t *)"at://", 5};
    for (size_t i = 0; i < n; i++) {
        if (atp_slice_has_prefix(aka[i], at)) {
            atp_slice h = atp_slice_sub(aka[i], 5, aka[i].len - 5);
            if (atp_syntax_is_handle(h)) {
                return h;
            }
        }
    }
    return (atp_slice){NULL, 0};
}

static int parse_aka(atp_arena *a, const atp_cbor *doc, size_t max, atp_didoc *d, atp_err *err)
{
    const atp_cbor *items = NULL;
    size_t n = 0;
    int rc = get_array(doc, "alsoKnownAs", max, &items, &n, err);
    if (rc < 0) {
        return rc;
    }
    d->aka = atp_arena_calloc(a, n ? n : 1, sizeof(atp_slice));
    for (size_t i = 0; i < n; i++) {
        if (items[i].type != ATP_CBOR_STRING) {
            return atp_err_set(err, ATP_EINVAL, 0, "DID document: alsoKnownAs[%zu] not a string",
                               i);
        }
        d->aka[i] = items[i].u.str;
    }
    d->n_aka = n;
    d->handle = claimed_handle(d->aka, n);
    return 0;
}

static int decode_vm_key(const atp_cbor *vm, atp_key **key)
{
    atp_slice type, mb;
    if (!get_str(vm, "type", &type) || !get_str(vm, "publicKeyMultibase", &mb)) {
        return ATP_EINVAL;
    }
    if (atp_slice_eq_str(type, "Multikey")) {
        return atp_multikey_decode(mb, key, NULL);
    }
    if (atp_slice_eq_str(type, "EcdsaSecp256k1VerificationKey2019")) {
        return atp_multikey_decode_legacy(ATP_CURVE_K256, mb, key, NULL);
    }
    if (atp_slice_eq_str(type, "EcdsaSecp256r1VerificationKey2019")) {
        return atp_multikey_decode_legacy(ATP_CURVE_P256, mb, key, NULL);
    }
    return ATP_EINVAL;
}

/* The key of the first method named `want`; a malformed first match means no key (§3: the
 * identity is then "broken"), never a fall-through to a later duplicate. */
static void find_key(atp_arena *a, const atp_cbor *vms, size_t n, atp_slice did, const char *want,
                     atp_didoc_key *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        atp_slice id, name, ctl;
        atp_key *key = NULL;
        if (vms[i].type != ATP_CBOR_MAP || !get_str(&vms[i], "id", &id) ||
            !fragment_of(id, did, &name) || !atp_slice_eq_str(name, want)) {
            continue;
        }
        if (!get_str(&vms[i], "controller", &ctl) || !atp_slice_eq(ctl, did) ||
            decode_vm_key(&vms[i], &key) != 0) {
            return;
        }
        atp_buf b;
        atp_buf_init(&b, ATP_DIDKEY_MAX_LEN);
        atp_didkey_encode(&b, key);
        out->present = b.err == 0;
        out->curve = atp_key_curve(key);
        atp_key_export_public(key, out->pub);
        out->didkey = atp_slice_make(atp_arena_dup(a, b.ptr, b.len), b.len);
        atp_buf_release(&b);
        atp_key_destroy(key);
        return;
    }
}

static int parse_vms(atp_arena *a, const atp_cbor *doc, size_t max, atp_didoc *d, atp_err *err)
{
    const atp_cbor *items = NULL;
    size_t n = 0;
    int rc = get_array(doc, "verificationMethod", max, &items, &n, err);
    if (rc < 0) {
        return rc;
    }
    find_key(a, items, n, d->id, "atproto", &d->signing);
    find_key(a, items, n, d->id, "atproto_label", &d->labeler);
    return 0;
}

static int parse_services(atp_arena *a, const atp_cbor *doc, size_t max, atp_didoc *d, atp_err *err)
{
    const atp_cbor *items = NULL;
    size_t n = 0;
    int rc = get_array(doc, "service", max, &items, &n, err);
    if (rc < 0) {
        return rc;
    }
    d->services = atp_arena_calloc(a, n ? n : 1, sizeof(atp_didoc_service));
    d->n_services = 0;
    for (size_t i = 0; i < n; i++) {
        atp_didoc_service s;
        atp_slice id;
        if (items[i].type != ATP_CBOR_MAP || !get_str(&items[i], "id", &id) ||
            !fragment_of(id, d->id, &s.id) || !get_str(&items[i], "type", &s.type) ||
            !get_str(&items[i], "serviceEndpoint", &s.endpoint)) {
            continue;
        }
        d->services[d->n_services++] = s;
    }
    const atp_didoc_service *pds =
        atp_didoc_find_service(d, "atproto_pds", "AtprotoPersonalDataServer");
    d->pds = (atp_slice){NULL, 0};
    if (pds && atp_didoc_is_service_url(pds->endpoint)) {
        d->pds = pds->endpoint;
    }
    return 0;
}

int atp_didoc_parse(atp_arena *a, atp_slice json, atp_slice expect_did, const atp_didoc_limits *lim,
                    atp_didoc *out, atp_err *err)
{
    if (!lim) {
        lim = &atp_didoc_limits_default;
    }
    if (json.len > lim->max_len) {
        return atp_err_set(err, ATP_ELIMIT, 0, "DID document is %zu bytes (max %zu)", json.len,
                           lim->max_len);
    }
    atp_json_limits jl = atp_json_limits_default;
    jl.max_len = lim->max_len;
    jl.max_depth = 16;
    jl.max_items = 4096;
    atp_cbor *doc;
    int rc = atp_json_decode(a, json, 0, &jl, &doc, err);
    if (rc < 0) {
        return rc;
    }
    if (doc->type != ATP_CBOR_MAP) {
        return atp_err_set(err, ATP_EINVAL, 0, "DID document is not a JSON object");
    }
    atp_didoc d;
    memset(&d, 0, sizeof(d));
    if (!get_str(doc, "id", &d.id) || !atp_syntax_is_did(d.id)) {
        return atp_err_set(err, ATP_EINVAL, 0, "DID document: id missing or not a DID");
    }
    if (expect_did.len > 0 && !atp_slice_eq(d.id, expect_did)) {
        return atp_err_set(err, ATP_EINVAL, 0, "DID document id does not match the DID");
    }
    rc = parse_aka(a, doc, lim->max_items, &d, err);
    if (rc == 0) {
        rc = parse_vms(a, doc, lim->max_items, &d, err);
    }
    if (rc == 0) {
        rc = parse_services(a, doc, lim->max_items, &d, err);
    }
    if (rc == 0) {
        *out = d;
    }
    return rc;
}

const atp_didoc_service *atp_didoc_find_service(const atp_didoc *d, const char *id,
                                                const char *type)
{
    for (size_t i = 0; i < d->n_services; i++) {
        const atp_didoc_service *s = &d->services[i];
        if (atp_slice_eq_str(s->id, id) && (!type || atp_slice_eq_str(s->type, type))) {
            return s;
        }
    }
    return NULL;
}

int atp_didoc_key_get(const atp_didoc_key *k, atp_key **out, atp_err *err)
{
    if (!k->present) {
        return atp_err_set(err, ATP_ENOTFOUND, 0, "no such key in the DID document");
    }
    return atp_key_import_public(k->curve, atp_slice_make(k->pub, ATP_KEY_PUB_LEN), out, err);
}

/* ---- endpoint URLs ---- */

static bool is_host_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-';
}

/* host: a DNS name / IPv4 literal, or a bracketed IPv6 literal; returns bytes used or 0. */
static size_t scan_host(atp_slice s)
{
    size_t i = 0;
    if (s.len > 0 && s.ptr[0] == '[') {
        while (i < s.len && s.ptr[i] != ']') {
            uint8_t c = s.ptr[i];
            if (i > 0 && !(c == ':' || c == '.' || (c >= '0' && c <= '9') ||
                           (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
                return 0;
            }
            i++;
        }
        return (i < s.len && i > 1) ? i + 1 : 0;
    }
    while (i < s.len && is_host_char(s.ptr[i])) {
        i++;
    }
    return i;
}

static bool scan_port(atp_slice s, size_t *used)
{
    size_t i = 1;
    unsigned long port = 0;
    while (i < s.len && s.ptr[i] >= '0' && s.ptr[i] <= '9' && i <= 5) {
        port = port * 10 + (unsigned long)(s.ptr[i] - '0');
        i++;
    }
    *used = i;
    return i > 1 && port >= 1 && port <= 65535;
}

bool atp_didoc_is_service_url(atp_slice url)
{
    atp_slice rest;
    if (atp_slice_has_prefix(url, ATP_SLICE_LIT("https://"))) {
        rest = atp_slice_sub(url, 8, url.len);
    } else if (atp_slice_has_prefix(url, ATP_SLICE_LIT("http://"))) {
        rest = atp_slice_sub(url, 7, url.len);
    } else {
        return false;
    }
    size_t h = scan_host(rest);
    if (h == 0 || h > 253 + 2) {
        return false;
    }
    rest = atp_slice_sub(rest, h, rest.len);
    if (rest.len > 0 && rest.ptr[0] == ':') {
        size_t used;
        if (!scan_port(rest, &used)) {
            return false;
        }
        rest = atp_slice_sub(rest, used, rest.len);
    }
    return rest.len == 0 || (rest.len == 1 && rest.ptr[0] == '/');
}

/* ---- building ---- */

static atp_cbor *str_node(atp_arena *a, atp_slice s)
{
    return atp_cbor_new_string(a, s);
}

static atp_cbor *cstr_node(atp_arena *a, const char *s)
{
    return atp_cbor_new_string(a, atp_slice_str(s));
}

/* Concatenation of up to three parts, in the arena. */
static atp_slice cat3(atp_arena *a, atp_slice x, const char *mid, atp_slice y)
{
    size_t m = strlen(mid);
    uint8_t *p = atp_arena_alloc(a, x.len + m + y.len + 1);
    if (x.len) {
        memcpy(p, x.ptr, x.len);
    }
    memcpy(p + x.len, mid, m);
    if (y.len) {
        memcpy(p + x.len + m, y.ptr, y.len);
    }
    return atp_slice_make(p, x.len + m + y.len);
}

/* A member in build order: JSON output keeps the tree's member order. */
static void put(atp_cbor *map, size_t i, const char *key, const atp_cbor *val)
{
    map->u.map.pairs[i].key = atp_slice_str(key);
    map->u.map.pairs[i].val = *val;
}

/* Multikey value and context suite for one did:key (reference formatKeyAndContext). */
static atp_slice vm_multibase(atp_arena *a, atp_slice didkey, const char **ctx)
{
    atp_key *k = NULL;
    *ctx = NULL;
    if (atp_didkey_decode(didkey, &k, NULL) == 0) {
        *ctx = atp_key_curve(k) == ATP_CURVE_P256 ? ctx_p256 : ctx_k256;
        atp_key_destroy(k);
    }
    if (atp_slice_has_prefix(didkey, ATP_SLICE_LIT("did:key:"))) {
        return atp_slice_sub(didkey, 8, didkey.len);
    }
    return atp_slice_make(atp_arena_dup(a, didkey.ptr, didkey.len), didkey.len);
}

static atp_cbor *build_vms(atp_arena *a, const atp_didoc_parts *p, atp_cbor *ctx)
{
    atp_cbor *arr = atp_cbor_new_array(a, p->n_vms);
    for (size_t i = 0; i < p->n_vms; i++) {
        const char *suite;
        atp_slice mb = vm_multibase(a, p->vms[i].didkey, &suite);
        atp_cbor *vm = atp_cbor_new_map(a, 4);
        put(vm, 0, "id", str_node(a, cat3(a, p->did, "#", p->vms[i].name)));
        put(vm, 1, "type", cstr_node(a, "Multikey"));
        put(vm, 2, "controller", str_node(a, p->did));
        put(vm, 3, "publicKeyMultibase", str_node(a, mb));
        arr->u.arr.items[i] = *vm;
        bool seen = suite == NULL;
        for (size_t j = 0; j < ctx->u.arr.n && !seen; j++) {
            seen = atp_slice_eq_str(ctx->u.arr.items[j].u.str, suite);
        }
        if (!seen) {
            ctx->u.arr.items[ctx->u.arr.n++] = *cstr_node(a, suite);
        }
    }
    return arr;
}

static atp_cbor *build_services(atp_arena *a, const atp_didoc_parts *p)
{
    atp_cbor *arr = atp_cbor_new_array(a, p->n_services);
    for (size_t i = 0; i < p->n_services; i++) {
        const atp_didoc_service *s = &p->services[i];
        atp_cbor *m = atp_cbor_new_map(a, 3);
        put(m, 0, "id", str_node(a, cat3(a, (atp_slice){NULL, 0}, "#", s->id)));
        put(m, 1, "type", str_node(a, s->type));
        put(m, 2, "serviceEndpoint", str_node(a, s->endpoint));
        arr->u.arr.items[i] = *m;
    }
    return arr;
}

void atp_didoc_build(atp_buf *out, const atp_didoc_parts *p, unsigned flags)
{
    atp_arena *a = atp_arena_create(0);
    /* Room for every possible suite; n is raised as they are added. */
    atp_cbor *ctx = atp_cbor_new_array(a, 4);
    ctx->u.arr.items[0] = *cstr_node(a, ctx_did);
    ctx->u.arr.items[1] = *cstr_node(a, ctx_multikey);
    ctx->u.arr.n = 2;
    atp_cbor *aka = atp_cbor_new_array(a, p->n_aka);
    for (size_t i = 0; i < p->n_aka; i++) {
        aka->u.arr.items[i] = *str_node(a, p->aka[i]);
    }
    atp_cbor *vms = build_vms(a, p, ctx);
    atp_cbor *doc = atp_cbor_new_map(a, 5);
    put(doc, 0, "@context", ctx);
    put(doc, 1, "id", str_node(a, p->did));
    put(doc, 2, "alsoKnownAs", aka);
    put(doc, 3, "verificationMethod", vms);
    put(doc, 4, "service", build_services(a, p));
    atp_json_encode(out, doc, flags);
    atp_arena_destroy(a);
}
