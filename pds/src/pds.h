/* pds/src/pds.h: the pds daemon's shared context and the helpers every XRPC handler uses.
 *
 * One pds_ctx lives for the whole process (main.c owns it); handlers receive it as their route
 * `ud`. Families of endpoints register themselves with pds_routes_<family>(srv, ctx):
 *   server.c    com.atproto.server.*            pds_routes_server
 *   identity.c  com.atproto.identity.*, the well-known files   pds_routes_identity
 *   (actor store engineer) com.atproto.repo.*  pds_routes_repo
 * pds_routes_register calls every family present in the build.
 *
 * Handler conventions:
 *   - routes touching SQLite are registered ATP_ROUTE_BLOCKING (worker pool);
 *   - the pds_auth_* and pds_body_json helpers SEND the error response themselves when they
 *     fail and return the negative ATP_E* code: the handler just returns;
 *   - errors go out as {"error","message"} via atp_req_error / pds_respond_error.
 */
#ifndef PDS_H
#define PDS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "atp/buf.h"
#include "atp/crypto.h"
#include "atp/err.h"
#include "atp/resolve.h"
#include "atp/server.h"

#include "config.h"

#define PDS_VERSION "0.1.0"
#define PDS_DID_MAX 2048    /* spec: DIDs up to 2 KiB */
#define PDS_HANDLE_MAX 253  /* spec: handles up to 253 characters */
#define PDS_JTI_MAX 64      /* refresh token ids: base64url of 32 random bytes = 43 chars */
#define PDS_APP_PASS_NAME_MAX 128
#define PDS_JSON_MAX (1024 * 1024) /* JSON request bodies (413 past it) */
#define PDS_TOKEN_MAX 2048         /* our session JWTs are about 300 bytes */

typedef struct pds_db pds_db;                   /* service database (db.h) */
typedef struct pds_ratelimit pds_ratelimit;     /* token buckets per key (ratelimit.h) */
typedef struct pds_actor_store pds_actor_store; /* per-account repos (actor_store.h) */
typedef struct pds_seq pds_seq;                 /* the firehose sequence (sequencer.h) */
typedef struct pds_blobstore pds_blobstore;     /* blob bytes on disk (blobstore.h) */
typedef struct pds_crawlers pds_crawlers;       /* requestCrawl notifier (crawlers.h) */

/* What a verified token grants. */
typedef enum pds_scope {
    PDS_SCOPE_ACCESS = 0,      /* com.atproto.access: full account */
    PDS_SCOPE_APP_PASS,        /* com.atproto.appPass */
    PDS_SCOPE_APP_PASS_PRIV,   /* com.atproto.appPassPrivileged (also DMs) */
    PDS_SCOPE_TAKENDOWN,       /* com.atproto.takendown: a taken-down account's session */
    PDS_SCOPE_REFRESH,         /* com.atproto.refresh */
} pds_scope;

/* The authenticated caller of one request (filled by pds_auth_*). */
typedef struct pds_auth {
    char did[PDS_DID_MAX + 1]; /* sub */
    pds_scope scope;
    char jti[PDS_JTI_MAX + 1]; /* refresh tokens only, else "" */
    int64_t exp;               /* token expiry, Unix seconds */
    bool admin;                /* pds_auth_admin succeeded (did is then "") */
} pds_auth;

/* Counters for /metrics, updated from any thread. */
typedef struct pds_metrics {
    atomic_ullong accounts_created, sessions_created, sessions_refreshed, logins_failed;
    atomic_ullong rate_limited, plc_errors;
} pds_metrics;

struct pds_mailer;

/* Shared by every handler; outlives the server. Fields are set once by main.c before the
 * loop runs and are read-only afterwards (the pointed-to objects are thread-safe). */
typedef struct pds_ctx {
    const pds_config *cfg;
    char service_did[PDS_HANDLE_MAX + 16]; /* "did:web:<hostname>": aud of our tokens */
    char public_url[PDS_HANDLE_MAX + 32];  /* "https://<hostname>" or http://localhost:PORT */
    pds_db *db;
    struct pds_acct_cache *acct_cache; /* the write path's account state (NULL: read the db) */
    atp_resolver *resolver;
    pds_actor_store *actors; /* NULL until the actor store is built in */
    pds_seq *seq;            /* firehose sequencer */
    pds_blobstore *blobs;    /* blob bytes */
    pds_crawlers *crawlers;  /* NULL when PDS_CRAWLERS is empty */
    struct pds_mailer *mailer; /* token mail (mailer.h) */
    atp_slice jwt_secret;    /* HS256 secret of session tokens (cfg->jwt_secret) */
    atp_key *plc_rotation_key; /* k256; signs genesis ops of new accounts */
    pds_ratelimit *rl_session; /* createSession, per IP; NULL when disabled */
    pds_ratelimit *rl_account; /* createAccount, per IP; NULL when disabled */
    int64_t (*now)(void);      /* Unix seconds (tests shorten lifetimes by config) */
    pds_metrics metrics;
} pds_ctx;

/* ---- auth (auth.c) ---- */

/* Bearer access token of `r`: HS256 with ctx->jwt_secret, typ at+jwt, aud service_did, scope
 * access/appPass/appPassPrivileged, no lxm/cnf, sub a DID; leeway 0 (our own clock). Errors
 * sent: 401 AuthMissing (no Authorization header), 400 ExpiredToken (expired: @atproto/api
 * refreshes on it, as with the reference), 401 InvalidToken (not Bearer, malformed, bad
 * signature, wrong typ/aud/scope: the lexicon's answer; the reference says 400 here),
 * 401 AccountTakedown (a takendown session). *out written only on success. */
int pds_auth_access(pds_ctx *ctx, atp_req *r, pds_auth *out);

/* As pds_auth_access, then refuses app-password scopes (401 InvalidToken "Bad token scope",
 * as the reference): for account management (app passwords, (de)activation, deleteAccount,
 * email, handle, PLC ops). */
int pds_auth_access_full(pds_ctx *ctx, atp_req *r, pds_auth *out);

/* Bearer refresh token: typ refresh+jwt, scope com.atproto.refresh, jti present. Only the
 * token is checked here; the caller checks its jti against the database (revoked: 400
 * ExpiredToken "Token has been revoked"). Errors sent as in pds_auth_access. */
int pds_auth_refresh(pds_ctx *ctx, atp_req *r, pds_auth *out);

/* HTTP Basic "admin:<PDS_ADMIN_PASSWORD>" (constant-time compare). Errors sent: 401
 * AuthMissing (no header), 401 AuthenticationRequired (anything else). out->admin = true
 * (did empty) on success. */
int pds_auth_admin(pds_ctx *ctx, atp_req *r, pds_auth *out);

/* Scope claim value of a pds_scope ("com.atproto.access"...). */
const char *pds_scope_name(pds_scope s);

/* A new session for `did`: access token (typ at+jwt, `scope`, lifetime cfg->access_ttl) and
 * refresh token (typ refresh+jwt, jti = `jti` or a fresh random id when NULL/empty, lifetime
 * cfg->refresh_ttl), both HS256 with ctx->jwt_secret, aud ctx->service_did. The refresh id is
 * NOT stored here (the caller stores or rotates it). jti_out (may be NULL) receives the id and
 * *refresh_exp its expiry. ATP_EINTERNAL on a signing failure. */
ATP_NODISCARD int pds_tokens_create(pds_ctx *ctx, const char *did, pds_scope scope,
                                    const char *jti, char access[PDS_TOKEN_MAX],
                                    char refresh[PDS_TOKEN_MAX], char jti_out[PDS_JTI_MAX + 1],
                                    int64_t *refresh_exp);

/* ---- accounts (account.c) ---- */

/* The repo signing key of a hosted account (k256, private; owned: atp_key_destroy).
 * ATP_ENOTFOUND if the account or its key is unknown. For the repo write path. */
ATP_NODISCARD int pds_account_signing_key(pds_ctx *ctx, const char *did, atp_key **out);
/* The same read from a service database directly (the write path's account cache). */
ATP_NODISCARD int pds_account_key_read(pds_db *db, const char *did, atp_key **out);

/* Deletes an account for good (deleteAccount, admin deleteAccount): its repo file, blobs,
 * tokens, app passwords and preferences; the account row; a #account event with status
 * "deleted" (the sequence keeps nothing else of it). ATP_ENOTFOUND if unknown. */
ATP_NODISCARD int pds_account_delete(pds_ctx *ctx, const char *did, atp_err *err);

/* ---- request/response helpers (util.c) ---- */

/* Parses the body of `r` as a JSON object into *out (owned: cJSON_Delete). Error sent: 400
 * InvalidRequest (not JSON, not an object), 413 PayloadTooLarge (over PDS_JSON_MAX). */
int pds_body_json(atp_req *r, cJSON **out);

/* Sends `body` (borrowed, not freed) as 200 application/json. */
void pds_respond_json(atp_req *r, const cJSON *body);

/* Sends an error with an explicit status and lexicon error name. */
void pds_respond_error(atp_req *r, int status, const char *error, const char *message);

/* String member `name` of `obj` if present and a string, else NULL. */
const char *pds_json_str(const cJSON *obj, const char *name);

/* Current time as an RFC 3339 UTC timestamp with milliseconds into out (25 bytes). */
void pds_now_iso(pds_ctx *ctx, char out[32]);

/* k's public key as "did:key:z..." into out (NUL-terminated). */
void pds_didkey_format(const atp_key *k, char out[ATP_DIDKEY_MAX_LEN + 1]);

/* ---- routes ---- */

void pds_routes_server(atp_server *s, pds_ctx *ctx);   /* server.c */
void pds_routes_identity(atp_server *s, pds_ctx *ctx); /* identity.c (+ .well-known) */
void pds_routes_repo(atp_server *s, pds_ctx *ctx);     /* routes_repo.c */
void pds_routes_import(atp_server *s, pds_ctx *ctx);   /* routes_import.c: importRepo */
void pds_routes_blob(atp_server *s, pds_ctx *ctx);     /* routes_blob.c: uploadBlob... */
void pds_routes_sync(atp_server *s, pds_ctx *ctx);     /* routes_sync.c: com.atproto.sync.* */
void pds_routes_admin(atp_server *s, pds_ctx *ctx);    /* admin.c: com.atproto.admin.* */
void pds_routes_prefs(atp_server *s, pds_ctx *ctx);    /* prefs.c: get/putPreferences */
void pds_routes_lifecycle(atp_server *s, pds_ctx *ctx); /* lifecycle.c: account deletion... */
void pds_routes_proxy(atp_server *s, pds_ctx *ctx);    /* proxy.c: the fallback handler */
/* Every family (routes.c); subscribeRepos is pds_routes_firehose (sequencer.h). */
void pds_routes_register(atp_server *s, pds_ctx *ctx);

#endif
