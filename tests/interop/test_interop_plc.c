/* test_interop_plc.c: did:plc ops against the official @did-plc/lib 0.0.4, both ways.
 *
 * Theirs -> ours: plc_interop.mjs gen builds histories with the library (genesis, key rotation,
 * handle, PDS and signing-key changes, a tombstone, a recovery fork within 72 h); we parse each
 * audit log (every CID must equal ours), replay it (DIDs derived, signatures, nullification
 * must agree), and our document data must equal the library's validateOperationLog result. The
 * bad cases it produces (forged signature, removed rotation key, fork past 72 h, op after a
 * tombstone), which the library rejects, must be rejected by us with the matching error.
 * Ours -> theirs: we build and sign logs and a recovery fork on both curves; the library's
 * validateOperationLog, didForCreateOp and assureValidNextOp must accept them.
 */
#include "t.h"

#include "interop_util.h"

#include <cjson/cJSON.h>

#include "atp/cbor.h"
#include "atp/json.h"
#include "atp/plc.h"
#include "atp/syntax.h"

static atp_arena *A;

static int code_of(const char *name)
{
    return strcmp(name, "ESIG") == 0       ? ATP_ESIG
           : strcmp(name, "EEXPIRED") == 0 ? ATP_EEXPIRED
                                           : ATP_EINVAL;
}

/* Canonical CBOR of a JSON text, for comparing JSON values regardless of member order. */
static bool same_json(atp_slice x, atp_slice y)
{
    atp_cbor *a, *b;
    atp_buf ea, eb;
    if (atp_json_decode(A, x, 0, NULL, &a, NULL) != 0 ||
        atp_json_decode(A, y, 0, NULL, &b, NULL) != 0) {
        return false;
    }
    atp_buf_init(&ea, 1 << 20);
    atp_buf_init(&eb, 1 << 20);
    atp_cbor_encode(&ea, a);
    atp_cbor_encode(&eb, b);
    bool eq = atp_slice_eq(atp_buf_slice(&ea), atp_buf_slice(&eb));
    atp_buf_release(&ea);
    atp_buf_release(&eb);
    return eq;
}

static atp_slice print_item(const cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    atp_slice out = atp_slice_make(atp_arena_dup(A, s, strlen(s)), strlen(s));
    free(s);
    return out;
}

/* Replays a case's audit log; returns the parsed entries. */
static atp_plc_entry *replay(const cJSON *c, size_t *n, size_t *state)
{
    atp_plc_entry *es = NULL;
    atp_slice did;
    atp_err err;
    const char *want_did = cJSON_GetStringValue(cJSON_GetObjectItem(c, "did"));
    T_OKE(atp_plc_audit_parse(A, print_item(cJSON_GetObjectItem(c, "audit")), NULL, &es, n, &did,
                              &err),
          &err);
    if (!es) {
        return NULL;
    }
    T_TRUE(atp_slice_eq_str(did, want_did));
    T_OKE(atp_plc_audit_verify(A, did, es, *n, NULL, state, &err), &err);
    return es;
}

static void good_case(const cJSON *c, int *n_ops)
{
    size_t n = 0, state = 0;
    atp_plc_entry *es = replay(c, &n, &state);
    if (!es) {
        return;
    }
    *n_ops += (int)n;
    const cJSON *data = cJSON_GetObjectItem(c, "data");
    if (cJSON_IsNull(data)) {
        T_EQ(state, SIZE_MAX);
        return;
    }
    if (state >= n) {
        T_FAILF("we say tombstoned, the library says active");
        return;
    }
    atp_buf b;
    atp_buf_init(&b, 1 << 20);
    atp_slice did = atp_slice_str(cJSON_GetStringValue(cJSON_GetObjectItem(c, "did")));
    atp_plc_data_encode_json(&b, did, &es[state].op, A);
    if (!same_json(atp_buf_slice(&b), print_item(data))) {
        T_FAILF("data differs for %s: ours %.*s",
                cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")), (int)b.len,
                (const char *)b.ptr);
    }
    atp_buf_release(&b);
}

static void bad_case(const cJSON *c)
{
    size_t n = 0, state = 0, k = 0;
    atp_plc_entry *es = replay(c, &n, &state);
    atp_plc_op op;
    atp_plc_next nx;
    atp_err err;
    int64_t at = 0;
    if (!es) {
        return;
    }
    atp_plc_entry *active = atp_arena_calloc(A, n, sizeof(*active));
    for (size_t i = 0; i < n; i++) {
        if (!es[i].nullified) {
            active[k++] = es[i];
        }
    }
    T_OK(atp_syntax_parse_datetime(
        atp_slice_str(cJSON_GetStringValue(cJSON_GetObjectItem(c, "at"))), &at, NULL));
    T_OKE(atp_plc_op_parse(A, print_item(cJSON_GetObjectItem(c, "bad")), false, NULL, &op, &err),
          &err);
    atp_slice did = atp_slice_str(cJSON_GetStringValue(cJSON_GetObjectItem(c, "did")));
    int rc = atp_plc_check_next(did, active, k, &op, at, NULL, &nx, &err);
    int want = code_of(cJSON_GetStringValue(cJSON_GetObjectItem(c, "expect")));
    if (rc != want) {
        T_FAILF("%s: got %d (%s), want %d", cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")),
                rc, rc ? err.msg : "accepted", want);
    }
    printf("# %s rejected: %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")), err.msg);
}

static void test_theirs(void)
{
    char cmd[4096];
    size_t len, pos = 0;
    int n_good = 0, n_bad = 0, n_ops = 0;
    iu_node_cmd(cmd, sizeof(cmd), "plc_interop.mjs", "gen");
    char *text = iu_run(cmd, &len);
    if (!text) {
        return;
    }
    for (char *line; (line = iu_next_line(text, len, &pos)) != NULL;) {
        cJSON *c = cJSON_Parse(line);
        T_TRUE(c != NULL);
        if (!c) {
            continue;
        }
        if (cJSON_GetObjectItem(c, "bad")) {
            bad_case(c);
            n_bad++;
        } else {
            good_case(c, &n_ops);
            n_good++;
        }
        cJSON_Delete(c);
    }
    T_EQ(n_good, 4);
    T_EQ(n_bad, 4);
    t_vectors("@did-plc/lib histories accepted (ops replayed)", n_ops);
    t_vectors("@did-plc/lib bad ops rejected", n_bad);
    free(text);
}

/* ---- ours -> theirs ---- */

static atp_key *keys[3];
static atp_slice dk[3];

static atp_plc_op op_with(const atp_slice *rk, size_t nrk, const char *handle, const char *pds,
                          atp_slice prev, int signer)
{
    atp_plc_op op;
    memset(&op, 0, sizeof(op));
    atp_plc_vm *vm = atp_arena_calloc(A, 1, sizeof(*vm));
    *vm = (atp_plc_vm){ATP_SLICE_LIT("atproto"), dk[2]};
    atp_slice *aka = atp_arena_calloc(A, 1, sizeof(*aka));
    *aka = atp_slice_str(handle);
    atp_plc_service *s = atp_arena_calloc(A, 1, sizeof(*s));
    *s = (atp_plc_service){ATP_SLICE_LIT("atproto_pds"), ATP_SLICE_LIT("AtprotoPersonalDataServer"),
                           atp_slice_str(pds)};
    op = (atp_plc_op){.type = ATP_PLC_OPERATION,
                      .rotation_keys = rk,
                      .n_rotation_keys = nrk,
                      .vms = vm,
                      .n_vms = 1,
                      .aka = aka,
                      .n_aka = 1,
                      .services = s,
                      .n_services = 1,
                      .prev = prev};
    T_OK(atp_plc_op_sign(A, &op, keys[signer], NULL, NULL));
    return op;
}

static atp_slice cid_of(const atp_plc_op *op)
{
    atp_cid c;
    char s[ATP_CID_STR_MAX];
    T_OK(atp_plc_op_cid(op, &c, NULL));
    size_t n = atp_cid_format_to(&c, s, sizeof(s));
    return atp_slice_make(atp_arena_dup(A, s, n), n);
}

static void put_arr(FILE *f, const atp_plc_op *ops, size_t n)
{
    atp_buf b;
    atp_buf_init(&b, 1 << 20);
    for (size_t i = 0; i < n; i++) {
        atp_buf_append_str(&b, i ? "," : "");
        atp_plc_op_encode_json(&b, &ops[i], 0);
    }
    fprintf(f, "[%.*s]", (int)b.len, (const char *)b.ptr);
    atp_buf_release(&b);
}

static void put_ops(FILE *f, const char *did, const atp_plc_op *ops, size_t n)
{
    fprintf(f, "{\"did\":\"%s\",\"ops\":", did);
    put_arr(f, ops, n);
    fputs("}\n", f);
}

static void test_ours(void)
{
    static const char *hex[3] = {"b1", "b2", "b3"};
    for (int i = 0; i < 3; i++) {
        char h[65];
        snprintf(h, sizeof(h), "%062d%s", 0, hex[i]);
        T_OK(atp_key_import_private_hex(i == 1 ? ATP_CURVE_P256 : ATP_CURVE_K256, atp_slice_str(h),
                                        &keys[i], NULL));
        atp_buf b;
        atp_buf_init(&b, 256);
        atp_didkey_encode(&b, keys[i]);
        dk[i] = atp_slice_make(atp_arena_dup(A, b.ptr, b.len), b.len);
        atp_buf_release(&b);
    }
    atp_slice rk01[2] = {dk[0], dk[1]}, rk0[1] = {dk[0]};
    atp_plc_op ops[5];
    atp_slice none = {NULL, 0};
    ops[0] = op_with(rk01, 2, "at://ours.test", "https://pds.test", none, 1);
    char did[ATP_PLC_DID_LEN + 1];
    T_OK(atp_plc_did_for_genesis(&ops[0], did, NULL));
    ops[1] = op_with(rk01, 2, "at://ours2.test", "https://pds.test", cid_of(&ops[0]), 0);
    ops[2] = op_with(rk0, 1, "at://ours2.test", "https://pds.test", cid_of(&ops[1]), 1);
    ops[3] = op_with(rk0, 1, "at://ours2.test", "https://pds2.test", cid_of(&ops[2]), 0);
    memset(&ops[4], 0, sizeof(ops[4]));
    ops[4].type = ATP_PLC_TOMBSTONE;
    ops[4].prev = cid_of(&ops[3]);
    T_OK(atp_plc_op_sign(A, &ops[4], keys[0], NULL, NULL));
    T_OK(atp_plc_validate_log(atp_slice_str(did), ops, 5, NULL, NULL, NULL, NULL));
    /* A recovery fork: op f1 by key 1 (p256, index 1), then key 0 forks from genesis. */
    atp_plc_op f1 = op_with(rk01, 2, "at://taken.test", "https://pds.test", cid_of(&ops[0]), 1);
    atp_plc_op fork = op_with(rk01, 2, "at://back.test", "https://pds.test", cid_of(&ops[0]), 0);
    char path[] = "/tmp/atp_plc_oursXXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    T_TRUE(f != NULL);
    if (!f) {
        return;
    }
    put_ops(f, did, ops, 4);
    put_ops(f, did, ops, 5);
    atp_plc_op hist[2] = {ops[0], f1};
    fprintf(f, "{\"did\":\"%s\",\"fork\":{\"nullified\":1,\"op\":", did);
    atp_buf b;
    atp_buf_init(&b, 1 << 16);
    atp_plc_op_encode_json(&b, &fork, 0);
    fprintf(f, "%.*s,\"history\":", (int)b.len, (const char *)b.ptr);
    atp_buf_release(&b);
    put_arr(f, hist, 2);
    fputs("}}\n", f);
    fclose(f);
    char cmd[4096], arg[256];
    size_t len;
    snprintf(arg, sizeof(arg), "check '%s'", path);
    iu_node_cmd(cmd, sizeof(cmd), "plc_interop.mjs", arg);
    char *out = iu_run(cmd, &len);
    T_TRUE(out && strncmp(out, "ok 3", 4) == 0);
    t_vectors("our logs and forks accepted by @did-plc/lib",
              out && strncmp(out, "ok 3", 4) == 0 ? 3 : 0);
    free(out);
    remove(path);
    for (int i = 0; i < 3; i++) {
        atp_key_destroy(keys[i]);
    }
}

int main(void)
{
    A = atp_arena_create(0);
    T_RUN(test_theirs);
    T_RUN(test_ours);
    atp_arena_destroy(A);
    return t_done();
}
