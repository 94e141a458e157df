/* pds/src/account.c: account creation helpers: handle rules, the did:plc genesis op and its
 * submission, and the signing-key lookup for the repo write path. */
#include "account.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "atp/plc.h"
#include "atp/syntax.h"

int pds_handle_check(const pds_config *cfg, const char *handle, atp_err *err)
{
    size_t n = strlen(handle);
    if (atp_syntax_check_handle(atp_slice_make(handle, n), err) < 0) {
        return ATP_EINVAL;
    }
    for (unsigned i = 0; i < cfg->n_handle_domains; i++) {
        const char *d = cfg->handle_domains[i];
        size_t dn = strlen(d), front;
        if (n <= dn || strcmp(handle + n - dn, d) != 0) {
            continue;
        }
        front = n - dn;
        /* The reference: one label of 3 to 18 characters under a service domain. */
        if (memchr(handle, '.', front) || front < 3 || front > 18) {
            return atp_err_set(err, ATP_EINVAL, 0, "Handle too short, too long or not one label");
        }
        return 0;
    }
    return atp_err_set(err, ATP_EINVAL, 0, "Not a supported handle domain");
}

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

int pds_http_post_json(const char *url, atp_slice body, int *status, atp_err *err)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    long code = 0;
    CURLcode cc;
    if (!c) {
        curl_slist_free_all(h);
        return atp_err_set(err, ATP_EIO, 0, "curl init failed");
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)body.ptr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (cc != CURLE_OK) {
        return atp_err_set(err, ATP_EIO, 0, "POST %.80s: %s", url, curl_easy_strerror(cc));
    }
    *status = (int)code;
    return 0;
}

/* did:key of `k` copied into the arena. */
static atp_slice didkey(atp_arena *a, const atp_key *k)
{
    atp_buf b;
    atp_slice s;
    atp_buf_init(&b, ATP_DIDKEY_MAX_LEN);
    atp_didkey_encode(&b, k);
    s = atp_slice_make(atp_arena_dup(a, b.ptr, b.len), b.len);
    atp_buf_release(&b);
    return s;
}

/* The unsigned genesis op for a new account, strings in `a`. */
static void genesis_op(pds_ctx *ctx, atp_arena *a, const char *handle, const atp_key *signing,
                       atp_plc_op *op)
{
    atp_slice *rot = atp_arena_calloc(a, 1, sizeof *rot);
    atp_plc_vm *vm = atp_arena_calloc(a, 1, sizeof *vm);
    atp_slice *aka = atp_arena_calloc(a, 1, sizeof *aka);
    atp_plc_service *svc = atp_arena_calloc(a, 1, sizeof *svc);
    size_t hn = strlen(handle);
    char *at = atp_arena_alloc(a, hn + 6);
    memcpy(at, "at://", 5);
    memcpy(at + 5, handle, hn + 1);
    rot[0] = didkey(a, ctx->plc_rotation_key);
    vm->name = atp_slice_str("atproto");
    vm->didkey = didkey(a, signing);
    aka[0] = atp_slice_make(at, hn + 5);
    svc->name = atp_slice_str("atproto_pds");
    svc->type = atp_slice_str("AtprotoPersonalDataServer");
    svc->endpoint = atp_slice_str(ctx->public_url);
    memset(op, 0, sizeof *op);
    op->type = ATP_PLC_OPERATION;
    op->rotation_keys = rot, op->n_rotation_keys = 1;
    op->vms = vm, op->n_vms = 1;
    op->aka = aka, op->n_aka = 1;
    op->services = svc, op->n_services = 1;
}

/* POSTs the signed op to <plc_url>/<did>. */
static int submit(pds_ctx *ctx, const atp_plc_op *op, const char *did, atp_err *err)
{
    char url[1200];
    atp_buf body;
    int status = 0, rc;
    snprintf(url, sizeof url, "%s/%s", ctx->cfg->plc_url, did);
    atp_buf_init(&body, 64 * 1024);
    atp_plc_op_encode_json(&body, op, 0);
    rc = body.err ? ATP_EINTERNAL : pds_http_post_json(url, atp_buf_slice(&body), &status, err);
    atp_buf_release(&body);
    if (rc == 0 && (status < 200 || status > 299)) {
        rc = atp_err_set(err, ATP_EIO, 0, "PLC directory answered %d", status);
    }
    return rc;
}

int pds_plc_create_did(pds_ctx *ctx, const char *handle, const atp_key *signing,
                       char did[PDS_DID_MAX + 1], atp_err *err)
{
    atp_arena *a = atp_arena_create(0);
    atp_plc_op op;
    char d[ATP_PLC_DID_LEN + 1];
    int rc;
    genesis_op(ctx, a, handle, signing, &op);
    rc = atp_plc_op_sign(a, &op, ctx->plc_rotation_key, NULL, err);
    if (rc == 0) {
        rc = atp_plc_did_for_genesis(&op, d, err);
    }
    if (rc == 0) {
        rc = submit(ctx, &op, d, err);
    }
    atp_arena_destroy(a);
    if (rc < 0) {
        atomic_fetch_add(&ctx->metrics.plc_errors, 1);
        return rc == ATP_EIO ? rc : ATP_EINTERNAL;
    }
    memcpy(did, d, sizeof d);
    return 0;
}

int pds_account_key_read(pds_db *db, const char *did, atp_key **out)
{
    char hex[65];
    int rc = pds_db_account_get_key(db, did, hex);
    if (rc < 0) {
        return rc;
    }
    rc = atp_key_import_private_hex(ATP_CURVE_K256, atp_slice_make(hex, 64), out, NULL);
    return rc < 0 ? ATP_ENOTFOUND : 0;
}

int pds_account_signing_key(pds_ctx *ctx, const char *did, atp_key **out)
{
    return pds_account_key_read(ctx->db, did, out);
}
