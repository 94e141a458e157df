/* cmd_identity.c: `atp did resolve`, `atp handle resolve`, `atp plc genesis`,
 * `atp plc verify-log`: the identity modules (didoc, plc, resolve) from the command line. */
#include <stdio.h>
#include <string.h>

#include "atp.h"
#include "atp/plc.h"
#include "atp/resolve.h"

static const char identity_usage[] =
    "usage: atp did resolve DID [--plc URL] [--local]\n"
    "       atp handle resolve HANDLE [--plc URL] [--local]\n"
    "       atp plc genesis --rotation-key PRIVHEX[:curve]... --signing-key PRIVHEX[:curve]\n"
    "                       --handle HANDLE --pds URL\n"
    "       atp plc verify-log < audit.json\n";

static int make_resolver(int argc, char **argv, atp_resolver **out)
{
    atp_resolver_config c;
    atp_err err;
    atp_resolver_config_init(&c);
    const char *plc = atp_tool_opt(argc, argv, "--plc");
    if (plc) {
        c.plc_url = plc;
    }
    c.local = atp_tool_flag(argc, argv, "--local");
    c.cache_max = 0;
    if (atp_resolver_create(&c, out, &err) != 0) {
        return atp_tool_fail("resolver", &err);
    }
    return 0;
}

int atp_cmd_did(int argc, char **argv)
{
    atp_resolver *r;
    atp_err err;
    atp_buf b;
    if (argc < 2 || strcmp(argv[0], "resolve") != 0) {
        return atp_tool_usage(identity_usage);
    }
    int rc = make_resolver(argc, argv, &r);
    if (rc != 0) {
        return rc;
    }
    atp_buf_init(&b, (size_t)1 << 20);
    rc = atp_resolve_did_json(r, atp_slice_str(argv[1]), &b, &err);
    atp_resolver_destroy(r);
    if (rc == 0) {
        atp_buf_append_byte(&b, '\n');
        rc = atp_tool_write(atp_buf_slice(&b));
    } else {
        rc = atp_tool_fail(argv[1], &err);
    }
    atp_buf_release(&b);
    return rc;
}

int atp_cmd_handle(int argc, char **argv)
{
    atp_resolver *r;
    atp_err err;
    atp_identity id;
    if (argc < 2 || strcmp(argv[0], "resolve") != 0) {
        return atp_tool_usage(identity_usage);
    }
    int rc = make_resolver(argc, argv, &r);
    if (rc != 0) {
        return rc;
    }
    atp_arena *a = atp_arena_create(0);
    rc = atp_resolve_identity(r, atp_slice_str(argv[1]), a, &id, &err);
    if (rc == 0) {
        /* The DID, then the verified handle (or handle.invalid) for the curious. */
        printf("%.*s\n", (int)id.did.len, (const char *)id.did.ptr);
        fprintf(stderr, "handle: %.*s\n", (int)id.handle.len, (const char *)id.handle.ptr);
    } else {
        rc = atp_tool_fail(argv[1], &err);
    }
    atp_arena_destroy(a);
    atp_resolver_destroy(r);
    return rc;
}

/* "HEX[:curve]" -> a private key (k256 unless told). */
static int parse_key(const char *spec, atp_key **out, atp_err *err)
{
    const char *colon = strchr(spec, ':');
    atp_curve c = ATP_CURVE_K256;
    size_t hex_len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (colon && atp_curve_from_name(atp_slice_str(colon + 1), &c, err) != 0) {
        return ATP_EINVAL;
    }
    return atp_key_import_private_hex(c, atp_slice_make(spec, hex_len), out, err);
}

static atp_slice didkey_of(atp_arena *a, const atp_key *k)
{
    atp_buf b;
    atp_buf_init(&b, ATP_DIDKEY_MAX_LEN);
    atp_didkey_encode(&b, k);
    atp_slice s = atp_slice_make(atp_arena_dup(a, b.ptr, b.len), b.len);
    atp_buf_release(&b);
    return s;
}

/* Every "--rotation-key V" of argv, in order, as did:keys; the first key signs. */
static int rotation_keys(atp_arena *a, int argc, char **argv, atp_slice *out, size_t *n,
                         atp_key **first, atp_err *err)
{
    *n = 0;
    for (int i = 0; i + 1 < argc; i++) {
        atp_key *k = NULL;
        if (strcmp(argv[i], "--rotation-key") != 0) {
            continue;
        }
        if (*n >= 16 || parse_key(argv[i + 1], &k, err) != 0) {
            return atp_err_set(err, ATP_EINVAL, 0, "bad --rotation-key %s", argv[i + 1]);
        }
        out[(*n)++] = didkey_of(a, k);
        if (!*first) {
            *first = k;
        } else {
            atp_key_destroy(k);
        }
    }
    return *n ? 0 : atp_err_set(err, ATP_EINVAL, 0, "at least one --rotation-key is needed");
}

static int genesis(atp_arena *a, int argc, char **argv, atp_key **signer, atp_plc_op *op,
                   atp_err *err)
{
    static atp_slice rk[16];
    static atp_plc_vm vm;
    static atp_slice aka;
    static atp_plc_service svc;
    const char *sk = atp_tool_opt(argc, argv, "--signing-key");
    const char *handle = atp_tool_opt(argc, argv, "--handle");
    const char *pds = atp_tool_opt(argc, argv, "--pds");
    atp_key *k = NULL;
    size_t n;
    if (!sk || !handle || !pds) {
        return atp_err_set(err, ATP_EINVAL, 0, "--signing-key, --handle and --pds are needed");
    }
    int rc = rotation_keys(a, argc, argv, rk, &n, signer, err);
    rc = rc ? rc : parse_key(sk, &k, err);
    if (rc < 0) {
        return rc;
    }
    vm = (atp_plc_vm){ATP_SLICE_LIT("atproto"), didkey_of(a, k)};
    atp_key_destroy(k);
    char *h = atp_arena_alloc(a, strlen(handle) + 6);
    snprintf(h, strlen(handle) + 6, "at://%s", handle);
    aka = atp_slice_str(h);
    svc = (atp_plc_service){ATP_SLICE_LIT("atproto_pds"),
                            ATP_SLICE_LIT("AtprotoPersonalDataServer"), atp_slice_str(pds)};
    memset(op, 0, sizeof(*op));
    *op = (atp_plc_op){.type = ATP_PLC_OPERATION,
                       .rotation_keys = rk,
                       .n_rotation_keys = n,
                       .vms = &vm,
                       .n_vms = 1,
                       .aka = &aka,
                       .n_aka = 1,
                       .services = &svc,
                       .n_services = 1};
    return atp_plc_op_sign(a, op, *signer, NULL, err);
}

static int cmd_genesis(int argc, char **argv)
{
    atp_arena *a = atp_arena_create(0);
    atp_key *signer = NULL;
    atp_plc_op op;
    atp_err err;
    char did[ATP_PLC_DID_LEN + 1];
    int rc = genesis(a, argc, argv, &signer, &op, &err);
    rc = rc ? rc : atp_plc_did_for_genesis(&op, did, &err);
    if (rc == 0) {
        atp_buf b;
        atp_buf_init(&b, 1 << 16);
        atp_plc_op_encode_json(&b, &op, 0);
        atp_buf_printf(&b, "\n%s\n", did);
        rc = atp_tool_write(atp_buf_slice(&b));
        atp_buf_release(&b);
    } else {
        rc = atp_tool_fail("plc genesis", &err);
    }
    atp_key_destroy(signer);
    atp_arena_destroy(a);
    return rc;
}

static int cmd_verify_log(void)
{
    atp_buf in;
    atp_err err;
    atp_plc_entry *es;
    size_t n, state;
    atp_slice did;
    atp_buf_init(&in, (size_t)64 << 20);
    if (atp_tool_read_input(NULL, &in) != 0) {
        atp_buf_release(&in);
        return ATP_EXIT_INVALID;
    }
    atp_arena *a = atp_arena_create(0);
    int rc = atp_plc_audit_parse(a, atp_buf_slice(&in), NULL, &es, &n, &did, &err);
    rc = rc ? rc : atp_plc_audit_verify(a, did, es, n, NULL, &state, &err);
    if (rc == 0) {
        printf("ok %.*s: %zu ops, %s\n", (int)did.len, (const char *)did.ptr, n,
               state == SIZE_MAX ? "tombstoned" : "active");
    } else {
        rc = atp_tool_fail("plc verify-log", &err);
    }
    atp_arena_destroy(a);
    atp_buf_release(&in);
    return rc;
}

int atp_cmd_plc(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "genesis") == 0) {
        return cmd_genesis(argc, argv);
    }
    if (argc >= 1 && strcmp(argv[0], "verify-log") == 0) {
        return cmd_verify_log();
    }
    return atp_tool_usage(identity_usage);
}
