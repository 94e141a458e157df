/* plc_log.c: did:plc history rules (spec identity-crypto §4.4), as the reference directory's
 * assureValidNextOp / validateOperationLog apply them, audit-log replay, and the document data
 * and DID document of a state. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "atp/cbor.h"
#include "atp/json.h"
#include "atp/plc.h"
#include "atp/syntax.h"

#define MAX_KEYS 64 /* rotation keys considered per op; the limits allow far fewer */

static int op_size_ok(const atp_plc_op *op, const atp_plc_limits *lim, atp_err *err)
{
    atp_buf b;
    atp_buf_init(&b, lim->max_cbor);
    atp_plc_op_encode_cbor(&b, op, true);
    int e = b.err;
    atp_buf_release(&b);
    if (e == ATP_ELIMIT) {
        return atp_err_set(err, ATP_ELIMIT, 0, "plc op: DAG-CBOR larger than %zu bytes",
                           lim->max_cbor);
    }
    return e ? atp_err_set(err, ATP_EINVAL, 0, "plc op: cannot encode") : 0;
}

static int check_genesis(atp_slice did, const atp_plc_op *op, atp_plc_next *nx, atp_err *err)
{
    atp_slice keys[MAX_KEYS];
    char derived[ATP_PLC_DID_LEN + 1];
    if (op->type == ATP_PLC_TOMBSTONE) {
        return atp_err_set(err, ATP_EINVAL, 0, "plc: a tombstone cannot create a DID");
    }
    if (op->prev.len > 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "plc: genesis op must have a null prev");
    }
    size_t n = atp_plc_op_rotation_keys(op, keys, MAX_KEYS);
    int rc = atp_plc_op_verify(op, keys, n < MAX_KEYS ? n : MAX_KEYS, &nx->signer, err);
    rc = rc ? rc : atp_plc_did_for_genesis(op, derived, err);
    if (rc < 0) {
        return rc;
    }
    if (!atp_slice_eq_str(did, derived)) {
        return atp_err_set(err, ATP_EINVAL, 0, "plc: genesis op hashes to %s, not this DID",
                           derived);
    }
    nx->genesis = true;
    return 0;
}

/* Index of the active op whose CID is `prev`, or n. */
static size_t find_prev(const atp_plc_entry *active, size_t n, atp_slice prev)
{
    atp_cid want;
    if (atp_cid_parse(prev, 0, &want, NULL) != 0) {
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        if (atp_cid_eq(&active[i].cid, &want)) {
            return i;
        }
    }
    return n;
}

/* A fork nullifies active[i+1..]: the first nullified op's signer must be outranked by the new
 * op's signer and the 72-hour window must still be open. */
static int check_fork(const atp_plc_entry *active, size_t i, const atp_plc_op *op,
                      const atp_slice *keys, size_t n_keys, int64_t now_us, atp_plc_next *nx,
                      atp_err *err)
{
    size_t disputed;
    int rc = atp_plc_op_verify(&active[i + 1].op, keys, n_keys, &disputed, err);
    if (rc < 0) {
        return rc;
    }
    rc = atp_plc_op_verify(op, keys, disputed, &nx->signer, NULL);
    if (rc < 0) {
        return atp_err_set(err, ATP_ESIG, 0,
                           "plc: a fork must be signed by a rotation key of higher priority "
                           "than the one it overrides (index < %zu)",
                           disputed);
    }
    if (now_us - active[i + 1].created_at_us > ATP_PLC_RECOVERY_WINDOW_US) {
        return atp_err_set(err, ATP_EEXPIRED, 0,
                           "plc: recovery window (72 h) has passed for the nullified op");
    }
    return 0;
}

int atp_plc_check_next(atp_slice did, const atp_plc_entry *active, size_t n, const atp_plc_op *op,
                       int64_t now_us, const atp_plc_limits *lim, atp_plc_next *out, atp_err *err)
{
    atp_plc_next nx;
    atp_slice keys[MAX_KEYS];
    lim = lim ? lim : &atp_plc_limits_default;
    memset(&nx, 0, sizeof(nx));
    int rc = atp_plc_op_check(op, false, lim, err);
    rc = rc ? rc : op_size_ok(op, lim, err);
    rc = rc ? rc : atp_plc_op_cid(op, &nx.cid, err);
    if (rc < 0) {
        return rc;
    }
    nx.tombstone = op->type == ATP_PLC_TOMBSTONE;
    if (n == 0) {
        rc = check_genesis(did, op, &nx, err);
    } else if (op->type == ATP_PLC_CREATE || op->prev.len == 0) {
        rc = atp_err_set(err, ATP_EINVAL, 0, "plc: DID exists; an update needs prev");
    } else if ((nx.prev_index = find_prev(active, n, op->prev)) == n) {
        rc = atp_err_set(err, ATP_EINVAL, 0, "plc: prev is not an op of this DID's history");
    } else if (active[nx.prev_index].op.type == ATP_PLC_TOMBSTONE) {
        rc = atp_err_set(err, ATP_EINVAL, 0, "plc: the DID is tombstoned");
    } else {
        size_t nk = atp_plc_op_rotation_keys(&active[nx.prev_index].op, keys, MAX_KEYS);
        nk = nk < MAX_KEYS ? nk : MAX_KEYS;
        nx.n_nullified = n - nx.prev_index - 1;
        rc = nx.n_nullified == 0
                 ? atp_plc_op_verify(op, keys, nk, &nx.signer, err)
                 : check_fork(active, nx.prev_index, op, keys, nk, now_us, &nx, err);
    }
    if (rc == 0) {
        *out = nx;
    }
    return rc;
}

int atp_plc_validate_log(atp_slice did, const atp_plc_op *ops, size_t n, const atp_plc_limits *lim,
                         size_t *last, bool *tombstoned, atp_err *err)
{
    atp_plc_entry prev;
    atp_plc_next nx;
    size_t state = 0;
    memset(&prev, 0, sizeof(prev));
    if (n == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "plc: empty log");
    }
    for (size_t i = 0; i < n; i++) {
        int rc = atp_plc_check_next(did, &prev, i == 0 ? 0 : 1, &ops[i], 0, lim, &nx, err);
        if (rc < 0) {
            size_t len = strlen(err ? err->msg : "");
            if (err && len + 16 < sizeof(err->msg)) {
                snprintf(err->msg + len, sizeof(err->msg) - len, " (op %zu)", i);
            }
            return rc;
        }
        prev.op = ops[i];
        prev.cid = nx.cid;
        prev.created_at_us = 0;
        prev.nullified = false;
        state = nx.tombstone ? state : i;
    }
    if (last) {
        *last = state;
    }
    if (tombstoned) {
        *tombstoned = ops[n - 1].type == ATP_PLC_TOMBSTONE;
    }
    return 0;
}

/* ---- audit logs ---- */

static int entry_fail(atp_err *err, size_t i, int code, const char *why)
{
    char inner[ATP_ERR_MSG_MAX];
    snprintf(inner, sizeof(inner), "%s", err ? err->msg : "");
    return atp_err_set(err, code, 0, "audit entry %zu: %s%s%s", i, why, inner[0] ? ": " : "",
                       inner);
}

static int parse_entry(atp_arena *a, const atp_cbor *e, const atp_plc_limits *lim,
                       atp_plc_entry *out, atp_slice *did, atp_err *err)
{
    const atp_cbor *d = atp_cbor_map_get_str(e, "did");
    const atp_cbor *op = atp_cbor_map_get_str(e, "operation");
    const atp_cbor *cid = atp_cbor_map_get_str(e, "cid");
    const atp_cbor *nul = atp_cbor_map_get_str(e, "nullified");
    const atp_cbor *at = atp_cbor_map_get_str(e, "createdAt");
    atp_cid given;
    if (!d || d->type != ATP_CBOR_STRING || !op || !cid || cid->type != ATP_CBOR_STRING || !at ||
        at->type != ATP_CBOR_STRING || (nul && nul->type != ATP_CBOR_BOOL)) {
        return atp_err_set(err, ATP_EINVAL, 0, "missing or mistyped member");
    }
    int rc = atp_plc_op_from_tree(a, op, false, lim, &out->op, err);
    rc = rc ? rc : atp_plc_op_cid(&out->op, &out->cid, err);
    rc = rc ? rc : atp_cid_parse(cid->u.str, 0, &given, err);
    rc = rc ? rc : atp_syntax_parse_datetime(at->u.str, &out->created_at_us, err);
    if (rc == 0 && !atp_cid_eq(&given, &out->cid)) {
        rc = atp_err_set(err, ATP_EINVAL, 0, "cid does not match the operation");
    }
    out->nullified = nul && nul->u.b;
    *did = d->u.str;
    return rc;
}

int atp_plc_audit_parse(atp_arena *a, atp_slice json, const atp_plc_limits *lim,
                        atp_plc_entry **out, size_t *n, atp_slice *did, atp_err *err)
{
    lim = lim ? lim : &atp_plc_limits_default;
    atp_json_limits jl = atp_json_limits_default;
    size_t max = lim->max_json * 2;
    jl.max_len = __builtin_mul_overflow(max, lim->max_ops, &max) ? SIZE_MAX : max;
    jl.max_items = lim->max_ops > 64 ? lim->max_ops : 64;
    jl.max_depth = 6;
    atp_cbor *v;
    int rc = atp_json_decode(a, json, 0, &jl, &v, err);
    if (rc < 0) {
        return rc;
    }
    if (v->type != ATP_CBOR_ARRAY || v->u.arr.n == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "audit log: not a non-empty JSON array");
    }
    atp_plc_entry *es = atp_arena_calloc(a, v->u.arr.n, sizeof(atp_plc_entry));
    atp_slice first = {NULL, 0};
    for (size_t i = 0; i < v->u.arr.n; i++) {
        atp_slice d;
        if (v->u.arr.items[i].type != ATP_CBOR_MAP) {
            return atp_err_set(err, ATP_EINVAL, 0, "audit entry %zu: not an object", i);
        }
        rc = parse_entry(a, &v->u.arr.items[i], lim, &es[i], &d, err);
        if (rc < 0) {
            return entry_fail(err, i, rc, "invalid");
        }
        if (i > 0 && !atp_slice_eq(d, first)) {
            return atp_err_set(err, ATP_EINVAL, 0, "audit entry %zu: a different did", i);
        }
        first = d;
    }
    *out = es;
    *n = v->u.arr.n;
    *did = first;
    return 0;
}

/* Applies entry `e` (original index idx) to the replay state. */
static int replay_one(atp_slice did, atp_plc_entry *active, size_t *idx_of, size_t *n_active,
                      bool *computed, const atp_plc_entry *e, size_t idx, const atp_plc_limits *lim,
                      atp_err *err)
{
    atp_plc_next nx;
    int rc = atp_plc_check_next(did, active, *n_active, &e->op, e->created_at_us, lim, &nx, err);
    if (rc < 0) {
        return entry_fail(err, idx, rc, "rejected");
    }
    size_t keep = nx.genesis ? 0 : nx.prev_index + 1;
    for (size_t k = keep; k < *n_active; k++) {
        computed[idx_of[k]] = true;
    }
    active[keep] = *e;
    active[keep].cid = nx.cid;
    idx_of[keep] = idx;
    *n_active = keep + 1;
    return 0;
}

int atp_plc_audit_verify(atp_arena *scratch, atp_slice did, const atp_plc_entry *entries, size_t n,
                         const atp_plc_limits *lim, size_t *state, atp_err *err)
{
    if (n == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "audit log: empty");
    }
    atp_plc_entry *active = atp_arena_calloc(scratch, n, sizeof(atp_plc_entry));
    size_t *idx_of = atp_arena_calloc(scratch, n, sizeof(size_t));
    bool *computed = atp_arena_calloc(scratch, n, sizeof(bool));
    size_t n_active = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && entries[i].created_at_us < entries[i - 1].created_at_us) {
            return atp_err_set(err, ATP_EINVAL, 0, "audit entry %zu: createdAt goes back", i);
        }
        int rc = replay_one(did, active, idx_of, &n_active, computed, &entries[i], i, lim, err);
        if (rc < 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (computed[i] != entries[i].nullified) {
            return atp_err_set(
                err, ATP_EINVAL, 0, "audit entry %zu: nullified is %s, replay says %s", i,
                entries[i].nullified ? "true" : "false", computed[i] ? "true" : "false");
        }
    }
    if (state) {
        bool dead = active[n_active - 1].op.type == ATP_PLC_TOMBSTONE;
        *state = dead ? SIZE_MAX : idx_of[n_active - 1];
    }
    return 0;
}

/* ---- document data ---- */

static void put(atp_cbor *m, size_t i, const char *key, const atp_cbor *v)
{
    m->u.map.pairs[i].key = atp_slice_str(key);
    m->u.map.pairs[i].val = *v;
}

static atp_cbor *strs(atp_arena *a, const atp_slice *s, size_t n)
{
    atp_cbor *arr = atp_cbor_new_array(a, n);
    for (size_t i = 0; i < n; i++) {
        arr->u.arr.items[i] = *atp_cbor_new_string(a, s[i]);
    }
    return arr;
}

static atp_cbor *data_vms(atp_arena *a, const atp_plc_op *op)
{
    atp_cbor *m = atp_cbor_new_map(a, op->n_vms);
    for (size_t i = 0; i < op->n_vms; i++) {
        m->u.map.pairs[i].key = op->vms[i].name;
        m->u.map.pairs[i].val = *atp_cbor_new_string(a, op->vms[i].didkey);
    }
    if (atp_cbor_map_finish(m, NULL) != 0) {
        m->u.map.n = 0; /* duplicate names: refused by atp_plc_op_check; never rendered */
    }
    return m;
}

static atp_cbor *data_services(atp_arena *a, const atp_plc_op *op)
{
    atp_cbor *m = atp_cbor_new_map(a, op->n_services);
    for (size_t i = 0; i < op->n_services; i++) {
        atp_cbor *e = atp_cbor_new_map(a, 2);
        put(e, 0, "type", atp_cbor_new_string(a, op->services[i].type));
        put(e, 1, "endpoint", atp_cbor_new_string(a, op->services[i].endpoint));
        m->u.map.pairs[i].key = op->services[i].name;
        m->u.map.pairs[i].val = *e;
    }
    if (atp_cbor_map_finish(m, NULL) != 0) {
        m->u.map.n = 0;
    }
    return m;
}

void atp_plc_data_encode_json(atp_buf *out, atp_slice did, const atp_plc_op *op, atp_arena *a)
{
    atp_plc_op n;
    atp_plc_op_normalize(a, op, &n);
    atp_cbor *m = atp_cbor_new_map(a, 5);
    put(m, 0, "did", atp_cbor_new_string(a, did));
    put(m, 1, "verificationMethods", data_vms(a, &n));
    put(m, 2, "rotationKeys", strs(a, n.rotation_keys, n.n_rotation_keys));
    put(m, 3, "alsoKnownAs", strs(a, n.aka, n.n_aka));
    put(m, 4, "services", data_services(a, &n));
    atp_json_encode(out, m, 0);
}

/* Indices of `n` names in canonical order (the order the reference renders its jsonb maps). */
static void canonical_order(const atp_slice *names, size_t stride, size_t n, size_t *idx)
{
    for (size_t i = 0; i < n; i++) {
        idx[i] = i;
    }
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0; j--) {
            const atp_slice *x =
                (const atp_slice *)(const void *)((const char *)names + idx[j - 1] * stride);
            const atp_slice *y =
                (const atp_slice *)(const void *)((const char *)names + idx[j] * stride);
            if (atp_cbor_key_cmp(*x, *y) <= 0) {
                break;
            }
            size_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    }
}

void atp_plc_didoc_encode(atp_buf *out, atp_slice did, const atp_plc_op *op, atp_arena *a,
                          unsigned flags)
{
    atp_plc_op n;
    atp_plc_op_normalize(a, op, &n);
    size_t *vi = atp_arena_calloc(a, n.n_vms + 1, sizeof(size_t));
    size_t *si = atp_arena_calloc(a, n.n_services + 1, sizeof(size_t));
    atp_didoc_vm *vms = atp_arena_calloc(a, n.n_vms + 1, sizeof(atp_didoc_vm));
    atp_didoc_service *svcs = atp_arena_calloc(a, n.n_services + 1, sizeof(atp_didoc_service));
    if (n.n_vms) {
        canonical_order(&n.vms[0].name, sizeof(atp_plc_vm), n.n_vms, vi);
    }
    if (n.n_services) {
        canonical_order(&n.services[0].name, sizeof(atp_plc_service), n.n_services, si);
    }
    for (size_t i = 0; i < n.n_vms; i++) {
        vms[i] = (atp_didoc_vm){n.vms[vi[i]].name, n.vms[vi[i]].didkey};
    }
    for (size_t i = 0; i < n.n_services; i++) {
        const atp_plc_service *s = &n.services[si[i]];
        svcs[i] = (atp_didoc_service){s->name, s->type, s->endpoint};
    }
    atp_didoc_parts p = {did, n.aka, n.n_aka, vms, n.n_vms, svcs, n.n_services};
    atp_didoc_build(out, &p, flags);
}

void atp_plc_format_time(int64_t us, char out[ATP_PLC_TIME_LEN + 1])
{
    int64_t ms = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
    int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        memset(&tm, 0, sizeof(tm));
    }
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms - secs * 1000));
    memcpy(out, tmp, ATP_PLC_TIME_LEN);
    out[ATP_PLC_TIME_LEN] = '\0';
}
