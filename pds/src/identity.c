/* pds/src/identity.c: com.atproto.identity.resolveHandle and the /.well-known documents. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "atp/syntax.h"

#include "db.h"
#include "pds.h"

/* Local accounts first; any other handle through the resolver (DNS/HTTPS, verified). */
static void resolve_handle(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    atp_slice h;
    pds_account a;
    char handle[PDS_HANDLE_MAX + 1];
    cJSON *o;
    if (!atp_req_query(r, "handle", &h) || h.len > PDS_HANDLE_MAX ||
        !atp_syntax_is_handle(h)) {
        atp_req_error_status(r, 400, "InvalidRequest", "handle must be a valid handle");
        return;
    }
    for (size_t i = 0; i < h.len; i++) {
        handle[i] = (char)tolower(h.ptr[i]);
    }
    handle[h.len] = '\0';
    o = cJSON_CreateObject();
    if (pds_db_account_get(ctx->db, handle, &a) == 0) {
        cJSON_AddStringToObject(o, "did", a.did);
    } else {
        atp_buf did;
        atp_buf_init(&did, PDS_DID_MAX);
        if (ctx->resolver &&
            atp_resolve_handle(ctx->resolver, atp_slice_str(handle), &did, NULL) == 0) {
            atp_buf_append_byte(&did, 0);
            cJSON_AddStringToObject(o, "did", (const char *)did.ptr);
        }
        atp_buf_release(&did);
    }
    if (!cJSON_GetObjectItem(o, "did")) {
        atp_req_error_status(r, 400, "HandleNotFound", "Unable to resolve handle");
    } else {
        pds_respond_json(r, o);
    }
    cJSON_Delete(o);
}

/* Host header without port, lowercased, into out. False if missing or too long. */
static bool host_of(atp_req *r, char *out, size_t cap)
{
    atp_slice h;
    size_t n = 0;
    if (!atp_req_header(r, "host", &h)) {
        return false;
    }
    while (n < h.len && h.ptr[n] != ':') {
        n++;
    }
    if (n == 0 || n >= cap) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = (char)tolower(h.ptr[i]);
    }
    out[n] = '\0';
    return true;
}

static void well_known_atproto_did(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    char host[PDS_HANDLE_MAX + 1];
    pds_account a;
    if (!host_of(r, host, sizeof host) || pds_db_account_get(ctx->db, host, &a) < 0 ||
        a.status != PDS_ST_ACTIVE) {
        atp_req_respond(r, 404, "text/plain; charset=utf-8", atp_slice_str("User not found"));
        return;
    }
    atp_req_respond(r, 200, "text/plain; charset=utf-8", atp_slice_str(a.did));
}

static void well_known_did_json(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    cJSON *o = cJSON_CreateObject(), *ctxs = cJSON_AddArrayToObject(o, "@context");
    cJSON *svcs, *svc;
    cJSON_AddItemToArray(ctxs, cJSON_CreateString("https://www.w3.org/ns/did/v1"));
    cJSON_AddStringToObject(o, "id", ctx->service_did);
    svcs = cJSON_AddArrayToObject(o, "service");
    svc = cJSON_CreateObject();
    cJSON_AddStringToObject(svc, "id", "#atproto_pds");
    cJSON_AddStringToObject(svc, "type", "AtprotoPersonalDataServer");
    cJSON_AddStringToObject(svc, "serviceEndpoint", ctx->public_url);
    cJSON_AddItemToArray(svcs, svc);
    pds_respond_json(r, o);
    cJSON_Delete(o);
}

void pds_routes_identity(atp_server *s, pds_ctx *ctx)
{
    atp_server_route(s, "GET", "/xrpc/com.atproto.identity.resolveHandle", resolve_handle, ctx,
                     ATP_ROUTE_BLOCKING);
    atp_server_route(s, "GET", "/.well-known/atproto-did", well_known_atproto_did, ctx,
                     ATP_ROUTE_BLOCKING);
    atp_server_route(s, "GET", "/.well-known/did.json", well_known_did_json, ctx, 0);
}
