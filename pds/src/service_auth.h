/* pds/src/service_auth.h: inter-service JWTs signed with an account's repo key (xrpc-auth
 * spec): used by com.atproto.server.getServiceAuth and by the proxy to the AppView. */
#ifndef PDS_SERVICE_AUTH_H
#define PDS_SERVICE_AUTH_H

#include <stdint.h>

#include "pds.h"

/* A service token for `did`: ES256K signed by its repo signing key, header {typ: JWT, alg},
 * payload iss = did, aud, exp (Unix seconds), iat, lxm (NULL: omitted), jti random. Written
 * NUL-terminated into out[cap]. ATP_ENOTFOUND (no key for did), ATP_ELIMIT (cap). */
ATP_NODISCARD int pds_service_jwt(pds_ctx *ctx, const char *did, const char *aud,
                                  const char *lxm, int64_t exp, char *out, size_t cap,
                                  atp_err *err);

#endif
