/* pds/src/lifecycle.h: account lifecycle (lifecycle.c: deletion, status changes with their
 * events, migration's service auth) and preferences (prefs.c). pds_account_delete itself is
 * declared in pds.h. */
#ifndef PDS_LIFECYCLE_H
#define PDS_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "atp/buf.h"
#include "atp/err.h"

#include "db.h"
#include "pds.h"

#define PDS_PREFS_MAX_ITEMS  1000       /* preferences of one putPreferences call */
#define PDS_PREF_TYPE_MAX    512        /* bytes of one $type */
#define PDS_DELETE_TOKEN_TTL (15 * 60)  /* deleteAccount token lifetime, s (the reference's) */
#define PDS_PREFS_NAMESPACE  "app.bsky" /* what get/putPreferences handle */
#define PDS_PREF_FULL_ONLY                                                                         \
    "app.bsky.actor.defs#personalDetailsPref" /* hidden from app passwords                         \
                                               */

/* ---- preferences (prefs.c) ---- */

/* Parses and checks a putPreferences body (JSON text, at most PDS_JSON_MAX bytes): an object
 * whose "preferences" is an array of at most PDS_PREFS_MAX_ITEMS objects, each with a string
 * "$type" (at most PDS_PREF_TYPE_MAX bytes) equal to "app.bsky" or under "app.bsky.". Without
 * `full_access` (app passwords) PDS_PREF_FULL_ONLY is refused. Pure. *out (owned: cJSON_Delete)
 * gets the array, written only on success. Errors: ATP_ELIMIT (size, count), ATP_EINVAL (shape,
 * missing $type, namespace; err->msg is the reference's message, err->off the item index),
 * ATP_EFORBIDDEN (a full-access-only preference). */
ATP_NODISCARD int pds_prefs_parse(atp_slice body, bool full_access, cJSON **out, atp_err *err);

/* True if `type` is in the "app.bsky" namespace ("app.bsky" or "app.bsky.*"). */
bool pds_pref_in_namespace(const char *type);

/* ---- lifecycle (lifecycle.c) ---- */

/* Status change with its #account event (pds_seq_set_status). Deactivation records
 * deactivated_at and `delete_after` (nullable: none); activation clears both. ATP_ENOTFOUND
 * if no such account. */
ATP_NODISCARD int pds_account_set_status(pds_ctx *ctx, const char *did, pds_status st,
                                         const char *delete_after, atp_err *err);

/* activateAccount: the events as the reference sequences them, #identity (with the handle),
 * then the status change with its #account and the #sync of the current head (when the
 * account has a repo: pds_seq_set_status adds it). ATP_ENOTFOUND if no such account. */
ATP_NODISCARD int pds_account_activate(pds_ctx *ctx, const char *did, atp_err *err);

/* Verifies the service JWT of `r` (Authorization: Bearer) for method `lxm`: iss a DID (its
 * "#fragment" dropped), aud ctx->service_did, lxm as given, signed by the iss DID's current
 * #atproto key (resolved with ctx->resolver). iss copied out on success. Errors sent as the
 * reference's: 401 AuthenticationRequired (no token), 401 BadJwt / BadJwtSignature /
 * JwtExpired / BadJwtAudience / BadJwtLexiconMethod; returns the negative code. */
int pds_service_auth_check(pds_ctx *ctx, atp_req *r, const char *lxm, char iss[PDS_DID_MAX + 1]);

/* Finishes deletions that a crash interrupted (accounts left with status "deleted"). Run once
 * at start; returns how many were finished. */
int pds_account_delete_sweep(pds_ctx *ctx);

#endif
