/* pds/src/util.c: small request/response helpers shared by every endpoint family. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pds.h"

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
    struct timespec ts;
    struct tm tm;
    (void)ctx;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    /* Fields reduced to their ranges so the compiler can bound the output. */
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
             (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
             tm.tm_sec % 100, (int)(ts.tv_nsec / 1000000) % 1000);
}
