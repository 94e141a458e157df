/* pds/src/config.h: the pds daemon's configuration, from the environment and flags.
 *
 * Only config.c reads the environment. Names are the reference PDS's where one exists, so an
 * operator can move over unchanged; flags override variables:
 *   --host H          PDS_BIND_HOST          bind address (default 127.0.0.1; ours)
 *   --port N          PDS_PORT               TCP port, 0 = ephemeral (default 2583)
 *   --hostname H      PDS_HOSTNAME           public hostname (required); service DID did:web:H
 *   --data DIR        PDS_DATA_DIRECTORY     service db and account files (required)
 *                     PDS_BLOBSTORE_DISK_LOCATION  blobs (default DATA/blocks)
 *   --lexicons         PDS_LEXICON_DIRECTORY        record schemas (default: the source tree's
 *                                                   pds/lexicons, baked in at build time)
 *                     PDS_BLOB_UPLOAD_LIMIT  bytes (default 5 MiB)
 *                     PDS_BLOB_TEMP_MAX_AGE  seconds an unreferenced blob is kept (3600; ours)
 *                     PDS_BLOB_GC_INTERVAL   seconds between blob GC sweeps (300; ours)
 *                     PDS_JWT_SECRET         HS256 secret of session tokens (required)
 *                     PDS_ADMIN_PASSWORD     HTTP Basic admin password (required)
 *                     PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX  64 hex (required unless dev
 *                                            mode, where a throwaway key is generated)
 *                     PDS_DID_PLC_URL        default https://plc.directory
 *                     PDS_SERVICE_HANDLE_DOMAINS  comma list (default ".test" in dev mode,
 *                                            else ".<hostname>")
 *                     PDS_INVITE_REQUIRED    true/false (default true as the reference)
 *                     PDS_DEV_MODE           true/false (plain http, loopback PLC allowed)
 *                     PDS_BSKY_APP_VIEW_URL, PDS_BSKY_APP_VIEW_DID, PDS_CRAWLERS (comma list)
 *                     PDS_CRAWLERS_INTERVAL  seconds between requestCrawl rounds (1200; ours)
 *                     PDS_RATE_LIMITS_ENABLED true/false (default true)
 *                     PDS_RATE_LIMIT_SESSION  createSession points per 5 min per IP (30)
 *                     PDS_RATE_LIMIT_ACCOUNT  createAccount points per 5 min per IP (100)
 *                     PDS_ACCESS_TOKEN_TTL    seconds (default 7200 as the reference; ours)
 *                     PDS_REFRESH_TOKEN_TTL   seconds (default 90 days; ours)
 *                     PDS_REPO_BACKFILL_LIMIT_MS  firehose replay window in ms (default 72 h;
 *                                            the reference's name, its default is 24 h)
 *                     PDS_REFRESH_GRACE       seconds a rotated refresh token still works
 *                                            (default 7200 as the reference; 0 = at once)
 *   --log-level L     LOG_LEVEL              debug, info, warn, error, off (default info)
 *                     LOG_ENABLED            false: only errors are logged (the reference's name)
 *                     LOG_DESTINATION        log file (default stderr)
 *   --workers N       PDS_WORKERS            worker threads (default 8)
 *                     PDS_ACTOR_FLUSH_MS     how often account files take their sequenced
 *                                            commits, in ms (default 50; ours, actor_store.h)
 */
#ifndef PDS_CONFIG_H
#define PDS_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "atp/log.h"

#define PDS_EX_CONFIG 78 /* sysexits.h EX_CONFIG: bad configuration */
#define PDS_MAX_DOMAINS 8

typedef struct pds_config {
    char host[256];
    uint16_t port;
    char hostname[254];
    char data_dir[1024];
    char blob_dir[1024];
    char lexicon_dir[1024]; /* PDS_LEXICON_DIRECTORY; empty: the build's pds/lexicons */
    size_t blob_upload_limit;
    int64_t blob_temp_max_age, blob_gc_interval; /* seconds: blob GC (blobstore.h) */
    char jwt_secret[512];
    char admin_password[512];
    char plc_rotation_key_hex[65]; /* empty: dev mode generates one */
    char plc_url[1024];
    char handle_domains[PDS_MAX_DOMAINS][256]; /* each starts with '.' */
    unsigned n_handle_domains;
    bool invite_required, dev_mode, rate_limits;
    char appview_url[1024], appview_did[512];
    char crawlers[2048];
    int64_t crawl_interval; /* PDS_CRAWLERS_INTERVAL seconds between requestCrawl (ours) */
    unsigned rl_session, rl_account; /* points per 300 s window */
    int64_t access_ttl, refresh_ttl, refresh_grace; /* seconds */
    int64_t repo_backfill_limit_ms; /* firehose retention (PDS_REPO_BACKFILL_LIMIT_MS) */
    atp_log_level log_level;
    bool log_enabled;
    char log_dest[1024];
    unsigned workers;
    unsigned actor_flush_ms;      /* PDS_ACTOR_FLUSH_MS (actor_store.h) */
    size_t max_json_body;         /* JSON bodies (413 past it) */
    unsigned shutdown_timeout_ms; /* SIGTERM drain */
    size_t max_import_size;       /* PDS_MAX_REPO_IMPORT_SIZE: importRepo CAR bytes (413) */
} pds_config;

/* Fills `out` from the environment, then argv[1..argc). ATP_EINVAL on an unknown flag, a
 * missing required variable, a bad value (err names it); "--help" gives ATP_ENOTFOUND with the
 * usage in err->msg. *out written only on success. */
ATP_NODISCARD int pds_config_load(int argc, char **argv, pds_config *out, atp_err *err);

/* Logs the effective configuration (one info line; secrets shown as "<redacted>"). */
void pds_config_log(const pds_config *c);

#endif
