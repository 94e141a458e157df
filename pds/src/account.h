/* pds/src/account.h: account creation (handle rules, did:plc genesis, PLC submission). */
#ifndef PDS_ACCOUNT_H
#define PDS_ACCOUNT_H

#include "atp/crypto.h"

#include "db.h"
#include "pds.h"

/* Checks a requested handle (already lowercased) against syntax and the service domains:
 * one label of 3..18 letters, digits or '-' before one of cfg->handle_domains. 0, or
 * ATP_EINVAL with the reason in err->msg. Pure. */
ATP_NODISCARD int pds_handle_check(const pds_config *cfg, const char *handle, atp_err *err);

/* Builds and signs the genesis op of a new account (rotation key: ctx->plc_rotation_key;
 * #atproto: `signing`; alsoKnownAs at://handle; #atproto_pds: ctx->public_url), POSTs it to
 * cfg->plc_url/<did> and writes the DID. ATP_EIO (PLC unreachable or refused: err says),
 * ATP_EINTERNAL. */
ATP_NODISCARD int pds_plc_create_did(pds_ctx *ctx, const char *handle, const atp_key *signing,
                                     char did[PDS_DID_MAX + 1], atp_err *err);

/* POSTs `body` (JSON) to `url`; *status gets the HTTP status. ATP_EIO on transport errors. */
ATP_NODISCARD int pds_http_post_json(const char *url, atp_slice body, int *status, atp_err *err);

#endif
