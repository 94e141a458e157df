/* plc.c: did:plc operation values: strict JSON parsing, structural checks, canonical DAG-CBOR
 * and JSON, signatures, CIDs and DID derivation (spec identity-crypto §4.1-§4.3).
 * History validation lives in plc_log.c. */
#include "atp/plc.h"

#include <string.h>

#include "atp/cbor.h"
#include "atp/json.h"
#include "atp/multibase.h"
#include "atp/sha256.h"

const atp_plc_limits atp_plc_limits_default = {
    .max_json = 64 * 1024,
    .max_cbor = 4000,
    .max_entries = 10,
    .max_aka_len = 258,
    .max_name_len = 32,
    .max_type_len = 256,
    .max_endpoint = 512,
    .max_key_len = 256,
    .max_ops = 100000,
};

#define SIG_B64_LEN      86 /* unpadded base64url of 64 bytes */
#define CBOR_SCRATCH_MAX ((size_t)1 << 20)

static const atp_slice empty = {NULL, 0};

/* ---- JSON tree -> op ---- */

static int bad(atp_err *err, const char *what, const char *why)
{
    return atp_err_set(err, ATP_EINVAL, 0, "plc op: %s %s", what, why);
}

/* A string member; `nullable` admits JSON null (left empty). Absent is an error. */
static int member_str(const atp_cbor *m, const char *key, bool nullable, atp_slice *out,
                      atp_err *err)
{
    const atp_cbor *v = atp_cbor_map_get_str(m, key);
    if (!v) {
        return bad(err, key, "is missing");
    }
    if (nullable && v->type == ATP_CBOR_NULL) {
        *out = empty;
        return 0;
    }
    if (v->type != ATP_CBOR_STRING) {
        return bad(err, key, nullable ? "is not a string or null" : "is not a string");
    }
    *out = v->u.str;
    return 0;
}

/* Every key of `m` must be in the NULL-terminated `allowed` list. */
static int only_keys(const atp_cbor *m, const char *const *allowed, const char *what, atp_err *err)
{
    for (size_t i = 0; i < m->u.map.n; i++) {
        bool ok = false;
        for (size_t j = 0; allowed[j] && !ok; j++) {
            ok = atp_slice_eq_str(m->u.map.pairs[i].key, allowed[j]);
        }
        if (!ok) {
            return atp_err_set(
                err, ATP_EINVAL, 0, "plc op: unknown member \"%.*s\" in %s",
                (int)(m->u.map.pairs[i].key.len < 40 ? m->u.map.pairs[i].key.len : 40),
                (const char *)m->u.map.pairs[i].key.ptr, what);
        }
    }
    return 0;
}

static int str_array(atp_arena *a, const atp_cbor *m, const char *key, size_t max,
                     const atp_slice **out, size_t *n, atp_err *err)
{
    const atp_cbor *v = atp_cbor_map_get_str(m, key);
    if (!v || v->type != ATP_CBOR_ARRAY) {
        return bad(err, key, v ? "is not an array" : "is missing");
    }
    if (v->u.arr.n > max) {
        return atp_err_set(err, ATP_ELIMIT, 0, "plc op: %s has %zu entries (max %zu)", key,
                           v->u.arr.n, max);
    }
    atp_slice *s = atp_arena_calloc(a, v->u.arr.n ? v->u.arr.n : 1, sizeof(atp_slice));
    for (size_t i = 0; i < v->u.arr.n; i++) {
        if (v->u.arr.items[i].type != ATP_CBOR_STRING) {
            return bad(err, key, "has an entry that is not a string");
        }
        s[i] = v->u.arr.items[i].u.str;
    }
    *out = s;
    *n = v->u.arr.n;
    return 0;
}

static const atp_cbor *member_map(const atp_cbor *m, const char *key, size_t max, int *rc,
                                  atp_err *err)
{
    const atp_cbor *v = atp_cbor_map_get_str(m, key);
    if (!v || v->type != ATP_CBOR_MAP) {
        *rc = bad(err, key, v ? "is not an object" : "is missing");
        return NULL;
    }
    if (v->u.map.n > max) {
        *rc = atp_err_set(err, ATP_ELIMIT, 0, "plc op: %s has %zu entries (max %zu)", key,
                          v->u.map.n, max);
        return NULL;
    }
    return v;
}

static int parse_vms(atp_arena *a, const atp_cbor *m, const atp_plc_limits *lim, atp_plc_op *op,
                     atp_err *err)
{
    int rc = 0;
    const atp_cbor *v = member_map(m, "verificationMethods", lim->max_entries, &rc, err);
    if (!v) {
        return rc;
    }
    atp_plc_vm *vms = atp_arena_calloc(a, v->u.map.n ? v->u.map.n : 1, sizeof(atp_plc_vm));
    for (size_t i = 0; i < v->u.map.n; i++) {
        if (v->u.map.pairs[i].val.type != ATP_CBOR_STRING) {
            return bad(err, "verificationMethods", "has a value that is not a string");
        }
        vms[i].name = v->u.map.pairs[i].key;
        vms[i].didkey = v->u.map.pairs[i].val.u.str;
    }
    op->vms = vms;
    op->n_vms = v->u.map.n;
    return 0;
}

static int parse_services(atp_arena *a, const atp_cbor *m, const atp_plc_limits *lim,
                          atp_plc_op *op, atp_err *err)
{
    static const char *const svc_keys[] = {"type", "endpoint", NULL};
    int rc = 0;
    const atp_cbor *v = member_map(m, "services", lim->max_entries, &rc, err);
    if (!v) {
        return rc;
    }
    atp_plc_service *s = atp_arena_calloc(a, v->u.map.n ? v->u.map.n : 1, sizeof(atp_plc_service));
    for (size_t i = 0; i < v->u.map.n && rc == 0; i++) {
        const atp_cbor *e = &v->u.map.pairs[i].val;
        if (e->type != ATP_CBOR_MAP) {
            return bad(err, "services", "has an entry that is not an object");
        }
        s[i].name = v->u.map.pairs[i].key;
        rc = only_keys(e, svc_keys, "a service", err);
        rc = rc ? rc : member_str(e, "type", false, &s[i].type, err);
        rc = rc ? rc : member_str(e, "endpoint", false, &s[i].endpoint, err);
    }
    op->services = s;
    op->n_services = v->u.map.n;
    return rc;
}

static int parse_operation(atp_arena *a, const atp_cbor *m, const atp_plc_limits *lim,
                           atp_plc_op *op, atp_err *err)
{
    static const char *const keys[] = {
        "type", "rotationKeys", "verificationMethods", "alsoKnownAs", "services", "prev", "sig",
        NULL};
    int rc = only_keys(m, keys, "plc_operation", err);
    rc = rc ? rc
            : str_array(a, m, "rotationKeys", lim->max_entries, &op->rotation_keys,
                        &op->n_rotation_keys, err);
    rc = rc ? rc : parse_vms(a, m, lim, op, err);
    rc = rc ? rc : str_array(a, m, "alsoKnownAs", lim->max_entries, &op->aka, &op->n_aka, err);
    rc = rc ? rc : parse_services(a, m, lim, op, err);
    rc = rc ? rc : member_str(m, "prev", true, &op->prev, err);
    return rc;
}

static int parse_create(const atp_cbor *m, atp_plc_op *op, atp_err *err)
{
    static const char *const keys[] = {"type",    "signingKey", "recoveryKey", "handle",
                                       "service", "prev",       "sig",         NULL};
    int rc = only_keys(m, keys, "create", err);
    rc = rc ? rc : member_str(m, "signingKey", false, &op->signing_key, err);
    rc = rc ? rc : member_str(m, "recoveryKey", false, &op->recovery_key, err);
    rc = rc ? rc : member_str(m, "handle", false, &op->handle, err);
    rc = rc ? rc : member_str(m, "service", false, &op->service, err);
    rc = rc ? rc : member_str(m, "prev", true, &op->prev, err);
    return rc;
}

static int parse_tombstone(const atp_cbor *m, atp_plc_op *op, atp_err *err)
{
    static const char *const keys[] = {"type", "prev", "sig", NULL};
    int rc = only_keys(m, keys, "plc_tombstone", err);
    return rc ? rc : member_str(m, "prev", false, &op->prev, err);
}

int atp_plc_op_from_tree(atp_arena *a, const atp_cbor *v, bool allow_unsigned,
                         const atp_plc_limits *lim, atp_plc_op *out, atp_err *err)
{
    atp_plc_op op;
    atp_slice type;
    int rc;
    lim = lim ? lim : &atp_plc_limits_default;
    if (v->type != ATP_CBOR_MAP) {
        return atp_err_set(err, ATP_EINVAL, 0, "plc op: not a JSON object");
    }
    memset(&op, 0, sizeof(op));
    rc = member_str(v, "type", false, &type, err);
    if (rc < 0) {
        return rc;
    }
    if (atp_slice_eq_str(type, "plc_operation")) {
        op.type = ATP_PLC_OPERATION;
        rc = parse_operation(a, v, lim, &op, err);
    } else if (atp_slice_eq_str(type, "plc_tombstone")) {
        op.type = ATP_PLC_TOMBSTONE;
        rc = parse_tombstone(v, &op, err);
    } else if (atp_slice_eq_str(type, "create")) {
        op.type = ATP_PLC_CREATE;
        rc = parse_create(v, &op, err);
    } else {
        return bad(err, "type", "is not plc_operation, plc_tombstone or create");
    }
    if (rc == 0 && atp_cbor_map_get_str(v, "sig")) {
        rc = member_str(v, "sig", false, &op.sig, err);
    }
    rc = rc ? rc : atp_plc_op_check(&op, allow_unsigned, lim, err);
    if (rc == 0) {
        *out = op;
    }
    return rc;
}

int atp_plc_op_parse(atp_arena *a, atp_slice json, bool allow_unsigned, const atp_plc_limits *lim,
                     atp_plc_op *out, atp_err *err)
{
    lim = lim ? lim : &atp_plc_limits_default;
    atp_json_limits jl = atp_json_limits_default;
    jl.max_len = lim->max_json;
    jl.max_depth = 4;
    jl.max_items = 64;
    jl.max_key = 1024;
    atp_cbor *v;
    int rc = atp_json_decode(a, json, 0, &jl, &v, err);
    if (rc < 0) {
        return rc;
    }
    return atp_plc_op_from_tree(a, v, allow_unsigned, lim, out, err);
}

/* ---- structural checks ---- */

static int check_len(atp_slice s, size_t max, const char *what, atp_err *err)
{
    if (s.len > max) {
        return atp_err_set(err, ATP_ELIMIT, 0, "plc op: %s is %zu bytes (max %zu)", what, s.len,
                           max);
    }
    return 0;
}

static int check_didkey(atp_slice k, const atp_plc_limits *lim, const char *what, atp_err *err)
{
    atp_key *key = NULL;
    int rc = check_len(k, lim->max_key_len, what, err);
    if (rc < 0) {
        return rc;
    }
    if (atp_didkey_decode(k, &key, NULL) != 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "plc op: %s is not a supported did:key", what);
    }
    atp_key_destroy(key);
    return 0;
}

static bool dup_in(const atp_slice *s, size_t n, size_t stride)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            const atp_slice *x = (const atp_slice *)(const void *)((const char *)s + i * stride);
            const atp_slice *y = (const atp_slice *)(const void *)((const char *)s + j * stride);
            if (atp_slice_eq(*x, *y)) {
                return true;
            }
        }
    }
    return false;
}

static int check_counts(const atp_plc_op *op, const atp_plc_limits *lim, atp_err *err)
{
    if (op->n_rotation_keys < 1) {
        return bad(err, "rotationKeys", "is empty");
    }
    if (op->n_rotation_keys > lim->max_entries || op->n_vms > lim->max_entries ||
        op->n_aka > lim->max_entries || op->n_services > lim->max_entries) {
        return atp_err_set(err, ATP_ELIMIT, 0, "plc op: more than %zu entries in a field",
                           lim->max_entries);
    }
    if (dup_in(op->rotation_keys, op->n_rotation_keys, sizeof(atp_slice))) {
        return bad(err, "rotationKeys", "has a duplicate key");
    }
    if (dup_in(op->aka, op->n_aka, sizeof(atp_slice))) {
        return bad(err, "alsoKnownAs", "has a duplicate entry");
    }
    if ((op->n_vms > 0 && dup_in(&op->vms[0].name, op->n_vms, sizeof(atp_plc_vm))) ||
        (op->n_services > 0 &&
         dup_in(&op->services[0].name, op->n_services, sizeof(atp_plc_service)))) {
        return bad(err, "verificationMethods or services", "has a duplicate name");
    }
    return 0;
}

static int check_operation(const atp_plc_op *op, const atp_plc_limits *lim, atp_err *err)
{
    int rc = check_counts(op, lim, err);
    for (size_t i = 0; i < op->n_rotation_keys && rc == 0; i++) {
        rc = check_didkey(op->rotation_keys[i], lim, "a rotation key", err);
    }
    for (size_t i = 0; i < op->n_vms && rc == 0; i++) {
        rc = op->vms[i].name.len == 0
                 ? bad(err, "verificationMethods", "has an empty name")
                 : check_len(op->vms[i].name, lim->max_name_len, "a verification method name", err);
        rc = rc ? rc : check_didkey(op->vms[i].didkey, lim, "a verification method", err);
    }
    for (size_t i = 0; i < op->n_aka && rc == 0; i++) {
        rc = check_len(op->aka[i], lim->max_aka_len, "an alsoKnownAs entry", err);
    }
    for (size_t i = 0; i < op->n_services && rc == 0; i++) {
        const atp_plc_service *s = &op->services[i];
        rc = s->name.len == 0 ? bad(err, "services", "has an empty name")
                              : check_len(s->name, lim->max_name_len, "a service name", err);
        rc = rc ? rc : check_len(s->type, lim->max_type_len, "a service type", err);
        rc = rc ? rc : check_len(s->endpoint, lim->max_endpoint, "a service endpoint", err);
    }
    return rc;
}

static int check_create(const atp_plc_op *op, const atp_plc_limits *lim, atp_err *err)
{
    int rc = check_didkey(op->signing_key, lim, "signingKey", err);
    rc = rc ? rc : check_didkey(op->recovery_key, lim, "recoveryKey", err);
    rc = rc ? rc : check_len(op->handle, lim->max_aka_len, "handle", err);
    rc = rc ? rc : check_len(op->service, lim->max_endpoint, "service", err);
    if (rc == 0 && op->prev.len > 0) {
        rc = bad(err, "prev", "must be null in a create op");
    }
    return rc;
}

/* The sig must be exactly the canonical unpadded base64url of 64 bytes: re-encoding what
 * decodes must give the same text (rejects padding and non-zero trailing bits). */
static int decode_sig(atp_slice sig, uint8_t out[ATP_SIG_LEN], atp_err *err)
{
    uint8_t raw[ATP_SIG_LEN + 4];
    uint8_t again[SIG_B64_LEN + 4];
    size_t n = 0;
    if (sig.len != SIG_B64_LEN ||
        atp_base_decode(ATP_BASE64URL, sig, raw, sizeof(raw), &n, NULL) != 0 || n != ATP_SIG_LEN) {
        return bad(err, "sig", "is not unpadded base64url of 64 bytes");
    }
    size_t m = atp_base_encode_to(ATP_BASE64URL, atp_slice_make(raw, n), again, sizeof(again));
    if (m != sig.len || memcmp(again, sig.ptr, m) != 0) {
        return bad(err, "sig", "is not canonical base64url");
    }
    memcpy(out, raw, ATP_SIG_LEN);
    return 0;
}

int atp_plc_op_check(const atp_plc_op *op, bool allow_unsigned, const atp_plc_limits *lim,
                     atp_err *err)
{
    uint8_t sig[ATP_SIG_LEN];
    atp_cid cid;
    int rc = 0;
    lim = lim ? lim : &atp_plc_limits_default;
    if (op->type == ATP_PLC_OPERATION) {
        rc = check_operation(op, lim, err);
    } else if (op->type == ATP_PLC_CREATE) {
        rc = check_create(op, lim, err);
    } else if (op->type == ATP_PLC_TOMBSTONE) {
        rc = op->prev.len == 0 ? bad(err, "prev", "is required in a tombstone") : 0;
    } else {
        return bad(err, "type", "is unknown");
    }
    if (rc == 0 && op->prev.len > 0 && atp_cid_parse(op->prev, 0, &cid, NULL) != 0) {
        rc = bad(err, "prev", "is not a CID");
    }
    if (rc == 0 && op->sig.len == 0 && !allow_unsigned) {
        rc = bad(err, "sig", "is missing");
    }
    if (rc == 0 && op->sig.len > 0) {
        rc = decode_sig(op->sig, sig, err);
    }
    return rc;
}

/* ---- op -> tree (canonical) ---- */

static void set_pair(atp_cbor *m, size_t i, const char *key, const atp_cbor *v)
{
    m->u.map.pairs[i].key = atp_slice_str(key);
    m->u.map.pairs[i].val = *v;
}

static atp_cbor *str_arr(atp_arena *a, const atp_slice *s, size_t n)
{
    atp_cbor *arr = atp_cbor_new_array(a, n);
    for (size_t i = 0; i < n; i++) {
        arr->u.arr.items[i] = *atp_cbor_new_string(a, s[i]);
    }
    return arr;
}

static atp_cbor *vms_map(atp_arena *a, const atp_plc_vm *vms, size_t n, int *rc)
{
    atp_cbor *m = atp_cbor_new_map(a, n);
    for (size_t i = 0; i < n; i++) {
        m->u.map.pairs[i].key = vms[i].name;
        m->u.map.pairs[i].val = *atp_cbor_new_string(a, vms[i].didkey);
    }
    *rc = *rc ? *rc : atp_cbor_map_finish(m, NULL);
    return m;
}

static atp_cbor *services_map(atp_arena *a, const atp_plc_service *s, size_t n, int *rc)
{
    atp_cbor *m = atp_cbor_new_map(a, n);
    for (size_t i = 0; i < n; i++) {
        atp_cbor *e = atp_cbor_new_map(a, 2);
        set_pair(e, 0, "type", atp_cbor_new_string(a, s[i].type));
        set_pair(e, 1, "endpoint", atp_cbor_new_string(a, s[i].endpoint));
        *rc = *rc ? *rc : atp_cbor_map_finish(e, NULL);
        m->u.map.pairs[i].key = s[i].name;
        m->u.map.pairs[i].val = *e;
    }
    *rc = *rc ? *rc : atp_cbor_map_finish(m, NULL);
    return m;
}

static atp_cbor *str_or_null(atp_arena *a, atp_slice s)
{
    return s.len ? atp_cbor_new_string(a, s) : atp_cbor_new_null(a);
}

static const char *type_name(atp_plc_type t)
{
    return t == ATP_PLC_OPERATION   ? "plc_operation"
           : t == ATP_PLC_TOMBSTONE ? "plc_tombstone"
                                    : "create";
}

/* Fields of the op except type/prev/sig, written from index 2. Returns the next index. */
static size_t body_pairs(atp_arena *a, const atp_plc_op *op, atp_cbor *m, int *rc)
{
    if (op->type == ATP_PLC_OPERATION) {
        set_pair(m, 2, "rotationKeys", str_arr(a, op->rotation_keys, op->n_rotation_keys));
        set_pair(m, 3, "verificationMethods", vms_map(a, op->vms, op->n_vms, rc));
        set_pair(m, 4, "alsoKnownAs", str_arr(a, op->aka, op->n_aka));
        set_pair(m, 5, "services", services_map(a, op->services, op->n_services, rc));
        return 6;
    }
    if (op->type == ATP_PLC_CREATE) {
        set_pair(m, 2, "signingKey", atp_cbor_new_string(a, op->signing_key));
        set_pair(m, 3, "recoveryKey", atp_cbor_new_string(a, op->recovery_key));
        set_pair(m, 4, "handle", atp_cbor_new_string(a, op->handle));
        set_pair(m, 5, "service", atp_cbor_new_string(a, op->service));
        return 6;
    }
    return 2;
}

/* The op as a canonical tree in `a`; NULL on duplicate names. */
static atp_cbor *op_tree(atp_arena *a, const atp_plc_op *op, bool with_sig)
{
    int rc = 0;
    atp_cbor *m = atp_cbor_new_map(a, 7);
    set_pair(m, 0, "type", atp_cbor_new_string(a, atp_slice_str(type_name(op->type))));
    set_pair(m, 1, "prev", str_or_null(a, op->prev));
    size_t n = body_pairs(a, op, m, &rc);
    if (with_sig) {
        set_pair(m, n++, "sig", atp_cbor_new_string(a, op->sig));
    }
    m->u.map.n = n;
    rc = rc ? rc : atp_cbor_map_finish(m, NULL);
    return rc ? NULL : m;
}

void atp_plc_op_encode_cbor(atp_buf *out, const atp_plc_op *op, bool with_sig)
{
    atp_arena *a = atp_arena_create(4096);
    const atp_cbor *t = op_tree(a, op, with_sig);
    if (t) {
        atp_cbor_encode(out, t);
    } else if (!out->err) {
        out->err = ATP_EINVAL;
    }
    atp_arena_destroy(a);
}

void atp_plc_op_encode_json(atp_buf *out, const atp_plc_op *op, unsigned flags)
{
    atp_arena *a = atp_arena_create(4096);
    const atp_cbor *t = op_tree(a, op, op->sig.len > 0);
    if (t) {
        atp_json_encode(out, t, flags);
    } else if (!out->err) {
        out->err = ATP_EINVAL;
    }
    atp_arena_destroy(a);
}

/* Canonical CBOR into `b` (initialised here; caller releases). */
static int encode_to(atp_buf *b, const atp_plc_op *op, bool with_sig, atp_err *err)
{
    atp_buf_init(b, CBOR_SCRATCH_MAX);
    atp_plc_op_encode_cbor(b, op, with_sig);
    if (b->err) {
        return atp_err_set(err, b->err == ATP_ELIMIT ? ATP_ELIMIT : ATP_EINVAL, 0,
                           "plc op: cannot encode (duplicate names, or too large)");
    }
    return 0;
}

int atp_plc_op_cid(const atp_plc_op *op, atp_cid *out, atp_err *err)
{
    atp_buf b;
    if (op->sig.len == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "plc op: unsigned op has no CID");
    }
    int rc = encode_to(&b, op, true, err);
    if (rc == 0) {
        atp_cid_compute(out, ATP_CODEC_DAG_CBOR, atp_buf_slice(&b));
    }
    atp_buf_release(&b);
    return rc;
}

/* ---- signatures and DIDs ---- */

int atp_plc_op_sign(atp_arena *a, atp_plc_op *op, const atp_key *key, const atp_plc_limits *lim,
                    atp_err *err)
{
    atp_plc_op tmp = *op;
    uint8_t sig[ATP_SIG_LEN];
    uint8_t b64[SIG_B64_LEN + 4];
    atp_buf b;
    tmp.sig = empty;
    int rc = atp_plc_op_check(&tmp, true, lim, err);
    rc = rc ? rc : encode_to(&b, &tmp, false, err);
    if (rc < 0) {
        return rc;
    }
    rc = atp_key_sign(key, atp_buf_slice(&b), sig, err);
    atp_buf_release(&b);
    if (rc < 0) {
        return rc;
    }
    size_t n =
        atp_base_encode_to(ATP_BASE64URL, atp_slice_make(sig, sizeof(sig)), b64, sizeof(b64));
    op->sig = atp_slice_make(atp_arena_dup(a, b64, n), n);
    return 0;
}

int atp_plc_op_verify(const atp_plc_op *op, const atp_slice *keys, size_t n, size_t *signer,
                      atp_err *err)
{
    uint8_t sig[ATP_SIG_LEN], hash[ATP_HASH_LEN];
    atp_buf b;
    int rc = decode_sig(op->sig, sig, err);
    rc = rc ? rc : encode_to(&b, op, false, err);
    if (rc < 0) {
        return rc;
    }
    atp_sha256(atp_buf_slice(&b), hash);
    atp_buf_release(&b);
    for (size_t i = 0; i < n; i++) {
        atp_key *k = NULL;
        if (atp_didkey_decode(keys[i], &k, NULL) != 0) {
            continue;
        }
        rc = atp_key_verify_prehash(k, hash, atp_slice_make(sig, sizeof(sig)), NULL);
        atp_key_destroy(k);
        if (rc == ATP_EINVAL) {
            return atp_err_set(err, ATP_EINVAL, 0, "plc op: malformed signature (high-S?)");
        }
        if (rc == 0) {
            if (signer) {
                *signer = i;
            }
            return 0;
        }
    }
    return atp_err_set(err, ATP_ESIG, 0, "plc op: signature by none of the allowed %zu keys", n);
}

int atp_plc_did_for_genesis(const atp_plc_op *op, char out[ATP_PLC_DID_LEN + 1], atp_err *err)
{
    uint8_t hash[ATP_HASH_LEN];
    uint8_t b32[64];
    atp_buf b;
    if (op->sig.len == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "plc op: unsigned genesis op has no DID");
    }
    int rc = encode_to(&b, op, true, err);
    if (rc < 0) {
        return rc;
    }
    atp_sha256(atp_buf_slice(&b), hash);
    atp_buf_release(&b);
    atp_base_encode_to(ATP_BASE32, atp_slice_make(hash, sizeof(hash)), b32, sizeof(b32));
    memcpy(out, "did:plc:", 8);
    memcpy(out + 8, b32, ATP_PLC_DID_LEN - 8);
    out[ATP_PLC_DID_LEN] = '\0';
    return 0;
}

size_t atp_plc_op_rotation_keys(const atp_plc_op *op, atp_slice *keys, size_t cap)
{
    if (op->type == ATP_PLC_OPERATION) {
        for (size_t i = 0; i < op->n_rotation_keys && i < cap; i++) {
            keys[i] = op->rotation_keys[i];
        }
        return op->n_rotation_keys;
    }
    if (op->type == ATP_PLC_CREATE) {
        const atp_slice both[2] = {op->recovery_key, op->signing_key};
        for (size_t i = 0; i < 2 && i < cap; i++) {
            keys[i] = both[i];
        }
        return 2;
    }
    return 0;
}

/* ---- legacy normalization (the reference's normalizeOp) ---- */

/* JS String.replace with a string pattern: the first occurrence only. */
static atp_slice strip_first(atp_arena *a, atp_slice s, const char *pat)
{
    size_t m = strlen(pat);
    for (size_t i = 0; i + m <= s.len; i++) {
        if (memcmp(s.ptr + i, pat, m) == 0) {
            uint8_t *p = atp_arena_alloc(a, s.len - m + 1);
            memcpy(p, s.ptr, i);
            memcpy(p + i, s.ptr + i + m, s.len - i - m);
            return atp_slice_make(p, s.len - m);
        }
    }
    return s;
}

static atp_slice prefixed(atp_arena *a, const char *prefix, atp_slice s)
{
    size_t m = strlen(prefix);
    uint8_t *p = atp_arena_alloc(a, m + s.len + 1);
    memcpy(p, prefix, m);
    if (s.len) {
        memcpy(p + m, s.ptr, s.len);
    }
    return atp_slice_make(p, m + s.len);
}

static atp_slice at_prefix(atp_arena *a, atp_slice handle)
{
    if (atp_slice_has_prefix(handle, ATP_SLICE_LIT("at://"))) {
        return handle;
    }
    atp_slice h = strip_first(a, strip_first(a, handle, "http://"), "https://");
    return prefixed(a, "at://", h);
}

static atp_slice http_prefix(atp_arena *a, atp_slice url)
{
    if (atp_slice_has_prefix(url, ATP_SLICE_LIT("http://")) ||
        atp_slice_has_prefix(url, ATP_SLICE_LIT("https://"))) {
        return url;
    }
    return prefixed(a, "https://", url);
}

void atp_plc_op_normalize(atp_arena *a, const atp_plc_op *in, atp_plc_op *out)
{
    if (in->type != ATP_PLC_CREATE) {
        *out = *in;
        return;
    }
    atp_plc_op op;
    memset(&op, 0, sizeof(op));
    op.type = ATP_PLC_OPERATION;
    atp_slice *rk = atp_arena_calloc(a, 2, sizeof(atp_slice));
    rk[0] = in->recovery_key;
    rk[1] = in->signing_key;
    atp_plc_vm *vm = atp_arena_calloc(a, 1, sizeof(atp_plc_vm));
    vm->name = ATP_SLICE_LIT("atproto");
    vm->didkey = in->signing_key;
    atp_slice *aka = atp_arena_calloc(a, 1, sizeof(atp_slice));
    aka[0] = at_prefix(a, in->handle);
    atp_plc_service *svc = atp_arena_calloc(a, 1, sizeof(atp_plc_service));
    svc->name = ATP_SLICE_LIT("atproto_pds");
    svc->type = ATP_SLICE_LIT("AtprotoPersonalDataServer");
    svc->endpoint = http_prefix(a, in->service);
    op.rotation_keys = rk;
    op.n_rotation_keys = 2;
    op.vms = vm;
    op.n_vms = 1;
    op.aka = aka;
    op.n_aka = 1;
    op.services = svc;
    op.n_services = 1;
    op.prev = in->prev;
    op.sig = in->sig;
    *out = op;
}
