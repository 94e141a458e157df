/* pds/src/util.c: small helpers shared by every endpoint family (requests, responses, times,
 * keys). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pds.h"
#include "sqlx.h"

int pds_body_json(atp_req *r, cJSON **out)
{
    atp_slice b = atp_req_body(r);
    cJSON *v;
    if (b.len > PDS_JSON_MAX) {
        atp_req_error_status(r, 413, "PayloadTooLarge", "request entity too large");
        return ATP_ELIMIT;
    }
    v = b.len ? cJSON_ParseWithLength((const char *)b.ptr, b.len) : NULL;
    if (!cJSON_IsObject(v)) {
        cJSON_Delete(v);
        atp_req_error_status(r, 400, "InvalidRequest", "Request body must be a JSON object");
        return ATP_EINVAL;
    }
    *out = v;
    return 0;
}

void pds_respond_json(atp_req *r, const cJSON *body)
{
    char *s = cJSON_PrintUnformatted(body);
    if (!s) {
        atp_req_error(r, ATP_EINTERNAL, NULL);
        return;
    }
    atp_req_respond(r, 200, "application/json; charset=utf-8", atp_slice_str(s));
    free(s);
}

void pds_respond_error(atp_req *r, int status, const char *error, const char *message)
{
    atp_req_error_status(r, status, error, message);
}

const char *pds_json_str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void pds_now_iso(pds_ctx *ctx, char out[32])
{
    (void)ctx;
    pds_sqlx_time_now(out);
}

void pds_didkey_format(const atp_key *k, char out[ATP_DIDKEY_MAX_LEN + 1])
{
    atp_buf b;
    atp_buf_init(&b, ATP_DIDKEY_MAX_LEN);
    atp_didkey_encode(&b, k);
    snprintf(out, ATP_DIDKEY_MAX_LEN + 1, "%.*s", (int)b.len, (const char *)b.ptr);
    atp_buf_release(&b);
}
