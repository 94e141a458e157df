/* pds/src/config.c: environment then flags, validated once at start (exit 78 on a bad value). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/daemon.h"

typedef enum {
    O_HOST, O_PORT, O_HOSTNAME, O_DATA, O_BLOBDIR, O_BLOBLIM, O_JWT, O_ADMIN, O_ROTKEY,
    O_PLC, O_DOMAINS, O_INVITE, O_DEV, O_AVURL, O_AVDID, O_CRAWLERS, O_RL, O_RLS, O_RLA,
    O_ATTL, O_RTTL, O_GRACE, O_LEVEL, O_LOGEN, O_DEST, O_WORKERS, O_LEXDIR,
    O_BACKFILL,
    O_BLOBAGE, O_BLOBGC,
    O_IMPORTLIM,
    O_CRAWLINT,
    O_FLUSHMS,
} opt_id;

/* Flags and variables (atp_daemon_opt: id, flag or NULL for environment only, variable). */
static const atp_daemon_opt opts[] = {
    {O_HOST, "--host", "PDS_BIND_HOST"},
    {O_PORT, "--port", "PDS_PORT"},
    {O_HOSTNAME, "--hostname", "PDS_HOSTNAME"},
    {O_DATA, "--data", "PDS_DATA_DIRECTORY"},
    {O_BLOBDIR, NULL, "PDS_BLOBSTORE_DISK_LOCATION"},
    {O_BLOBLIM, NULL, "PDS_BLOB_UPLOAD_LIMIT"},
    {O_JWT, NULL, "PDS_JWT_SECRET"},
    {O_ADMIN, NULL, "PDS_ADMIN_PASSWORD"},
    {O_ROTKEY, NULL, "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX"},
    {O_PLC, NULL, "PDS_DID_PLC_URL"},
    {O_DOMAINS, NULL, "PDS_SERVICE_HANDLE_DOMAINS"},
    {O_INVITE, NULL, "PDS_INVITE_REQUIRED"},
    {O_DEV, NULL, "PDS_DEV_MODE"},
    {O_AVURL, NULL, "PDS_BSKY_APP_VIEW_URL"},
    {O_AVDID, NULL, "PDS_BSKY_APP_VIEW_DID"},
    {O_CRAWLERS, NULL, "PDS_CRAWLERS"},
    {O_RL, NULL, "PDS_RATE_LIMITS_ENABLED"},
    {O_RLS, NULL, "PDS_RATE_LIMIT_SESSION"},
    {O_RLA, NULL, "PDS_RATE_LIMIT_ACCOUNT"},
    {O_ATTL, NULL, "PDS_ACCESS_TOKEN_TTL"},
    {O_RTTL, NULL, "PDS_REFRESH_TOKEN_TTL"},
    {O_GRACE, NULL, "PDS_REFRESH_GRACE"},
    {O_LEVEL, "--log-level", "LOG_LEVEL"},
    {O_LOGEN, NULL, "LOG_ENABLED"},
    {O_DEST, NULL, "LOG_DESTINATION"},
    {O_WORKERS, "--workers", "PDS_WORKERS"},
    {O_LEXDIR, "--lexicons", "PDS_LEXICON_DIRECTORY"},
    {O_BACKFILL, NULL, "PDS_REPO_BACKFILL_LIMIT_MS"},
    {O_BLOBAGE, NULL, "PDS_BLOB_TEMP_MAX_AGE"},
    {O_BLOBGC, NULL, "PDS_BLOB_GC_INTERVAL"},
    {O_IMPORTLIM, NULL, "PDS_MAX_REPO_IMPORT_SIZE"},
    {O_CRAWLINT, NULL, "PDS_CRAWLERS_INTERVAL"},
    {O_FLUSHMS, NULL, "PDS_ACTOR_FLUSH_MS"},
};

#define NOPTS (sizeof opts / sizeof opts[0])

static int parse_uint(const char *name, const char *v, unsigned long long max,
                      unsigned long long *out, atp_err *err)
{
    char *end = NULL;
    unsigned long long n;
    /* strtoull accepts a sign and leading blanks: refuse them so "-1" is not huge. */
    if (v[0] < '0' || v[0] > '9') {
        return atp_err_set(err, ATP_EINVAL, 0, "%s: not a number: \"%.60s\"", name, v);
    }
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || n > max) {
        return atp_err_set(err, ATP_EINVAL, 0, "%s: out of range: \"%.60s\"", name, v);
    }
    *out = n;
    return 0;
}

static int parse_bool(const char *name, const char *v, bool *out, atp_err *err)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *out = true;
    } else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || v[0] == '\0') {
        *out = false;
    } else {
        return atp_err_set(err, ATP_EINVAL, 0, "%s: not true/false: \"%.40s\"", name, v);
    }
    return 0;
}

static int copy_str(const char *name, const char *v, char *dst, size_t cap, atp_err *err)
{
    size_t n = strlen(v);
    if (n >= cap) {
        return atp_err_set(err, ATP_EINVAL, 0, "%s: too long", name);
    }
    memcpy(dst, v, n + 1);
    return 0;
}

/* Comma list of handle suffixes; each is stored with its leading '.'. */
static int set_domains(pds_config *c, const char *name, const char *v, atp_err *err)
{
    c->n_handle_domains = 0;
    while (*v) {
        const char *e = strchr(v, ',');
        size_t n = e ? (size_t)(e - v) : strlen(v);
        char *d;
        if (n > 0) {
            if (c->n_handle_domains == PDS_MAX_DOMAINS || n + 2 > sizeof c->handle_domains[0]) {
                return atp_err_set(err, ATP_EINVAL, 0, "%s: too many or too long", name);
            }
            d = c->handle_domains[c->n_handle_domains++];
            size_t off = v[0] == '.' ? 0 : 1;
            d[0] = '.';
            memcpy(d + off, v, n);
            d[n + off] = '\0';
        }
        v += n + (e ? 1 : 0);
    }
    return 0;
}

static int set_hex_key(const char *name, const char *v, char *dst, atp_err *err)
{
    size_t n = strlen(v);
    if (n != 64 || strspn(v, "0123456789abcdefABCDEF") != 64) {
        return atp_err_set(err, ATP_EINVAL, 0, "%s: not 64 hex digits", name);
    }
    memcpy(dst, v, 65);
    return 0;
}

static int set_url(const char *name, const char *v, char *dst, size_t cap, atp_err *err)
{
    if (v[0] != '\0' && strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "%s: not an http(s) URL: \"%.60s\"", name, v);
    }
    return copy_str(name, v, dst, cap, err);
}

static int set_number(pds_config *c, opt_id id, const char *name, const char *v, atp_err *err)
{
    unsigned long long n = 0;
    unsigned long long max = id == O_PORT      ? 65535
                             : id == O_WORKERS ? 64
                             : id == O_FLUSHMS ? 60000
                                               : 1ULL << 40;
    if (parse_uint(name, v, max, &n, err) < 0) {
        return ATP_EINVAL;
    }
    if (n == 0 && id != O_PORT && id != O_GRACE) {
        return atp_err_set(err, ATP_EINVAL, 0, "%s: must be at least 1", name);
    }
    switch (id) {
    case O_PORT: c->port = (uint16_t)n; break;
    case O_BLOBLIM: c->blob_upload_limit = (size_t)n; break;
    case O_BLOBAGE: c->blob_temp_max_age = (int64_t)n; break;
    case O_BLOBGC: c->blob_gc_interval = (int64_t)n; break;
    case O_RLS: c->rl_session = (unsigned)(n > 1000000 ? 1000000 : n); break;
    case O_RLA: c->rl_account = (unsigned)(n > 1000000 ? 1000000 : n); break;
    case O_ATTL: c->access_ttl = (int64_t)n; break;
    case O_RTTL: c->refresh_ttl = (int64_t)n; break;
    case O_GRACE: c->refresh_grace = (int64_t)n; break;
    case O_BACKFILL: c->repo_backfill_limit_ms = (int64_t)n; break;
    case O_IMPORTLIM: c->max_import_size = (size_t)n; break;
    case O_CRAWLINT: c->crawl_interval = (int64_t)n; break;
    case O_FLUSHMS: c->actor_flush_ms = (unsigned)n; break;
    default: c->workers = (unsigned)n; break;
    }
    return 0;
}

static int set_text(pds_config *c, opt_id id, const char *name, const char *v, atp_err *err)
{
    switch (id) {
    case O_HOST: return copy_str(name, v, c->host, sizeof c->host, err);
    case O_HOSTNAME: return copy_str(name, v, c->hostname, sizeof c->hostname, err);
    case O_DATA: return copy_str(name, v, c->data_dir, sizeof c->data_dir, err);
    case O_BLOBDIR: return copy_str(name, v, c->blob_dir, sizeof c->blob_dir, err);
    case O_LEXDIR: return copy_str(name, v, c->lexicon_dir, sizeof c->lexicon_dir, err);
    case O_JWT: return copy_str(name, v, c->jwt_secret, sizeof c->jwt_secret, err);
    case O_ADMIN: return copy_str(name, v, c->admin_password, sizeof c->admin_password, err);
    case O_AVDID: return copy_str(name, v, c->appview_did, sizeof c->appview_did, err);
    case O_CRAWLERS: return copy_str(name, v, c->crawlers, sizeof c->crawlers, err);
    case O_DEST: return copy_str(name, v, c->log_dest, sizeof c->log_dest, err);
    case O_PLC: return set_url(name, v, c->plc_url, sizeof c->plc_url, err);
    case O_AVURL: return set_url(name, v, c->appview_url, sizeof c->appview_url, err);
    default: return set_number(c, id, name, v, err);
    }
}

/* The atp_daemon_set_fn of this daemon's table: `ud` is the pds_config being filled. */
static int set_opt(void *ud, int opt, const char *name, const char *v, atp_err *err)
{
    pds_config *c = ud;
    opt_id id = (opt_id)opt;
    switch (id) {
    case O_ROTKEY: return v[0] ? set_hex_key(name, v, c->plc_rotation_key_hex, err) : 0;
    case O_DOMAINS: return set_domains(c, name, v, err);
    case O_INVITE: return parse_bool(name, v, &c->invite_required, err);
    case O_DEV: return parse_bool(name, v, &c->dev_mode, err);
    case O_RL: return parse_bool(name, v, &c->rate_limits, err);
    case O_LOGEN: return parse_bool(name, v, &c->log_enabled, err);
    case O_LEVEL:
        if (atp_log_level_parse(atp_slice_str(v), &c->log_level, NULL) < 0) {
            return atp_err_set(err, ATP_EINVAL, 0, "%s: unknown level \"%.40s\"", name, v);
        }
        return 0;
    default: return set_text(c, id, name, v, err);
    }
}

static void set_defaults(pds_config *c)
{
    memset(c, 0, sizeof *c);
    memcpy(c->host, "127.0.0.1", sizeof "127.0.0.1");
    c->port = 2583;
    c->blob_upload_limit = 5 * 1024 * 1024;
    /* The reference never collects temporary blobs; an hour is the spec's minimum grace. */
    c->blob_temp_max_age = 3600;
    c->blob_gc_interval = 300;
    memcpy(c->plc_url, "https://plc.directory", sizeof "https://plc.directory");
    c->invite_required = true;
    c->rate_limits = true;
    c->rl_session = 30;
    c->rl_account = 100;
    c->access_ttl = 2 * 3600;
    c->refresh_ttl = 90LL * 24 * 3600;
    c->refresh_grace = 2 * 3600;
    /* Firehose replay window: the reference keeps 24 h; relays ask for 72 h (issue 6). */
    c->repo_backfill_limit_ms = 72LL * 3600 * 1000;
    c->log_level = ATP_LOG_INFO;
    c->log_enabled = true;
    /* Repo writes wait for no disk I/O on a worker (their answer comes from the sequencer),
     * but sessions (scrypt), account creation (PLC), imports and blobs do: 8 keep a few slow
     * calls from holding up the writes, without 16 threads fighting over 2 cores. */
    c->workers = 8;
    c->actor_flush_ms = 50;
    /* The reference's JSON body limit (xrpc-server) is 100 kB for most methods; applyWrites
     * with 200 writes needs more, so 1 MiB as its repo write limit. */
    c->max_json_body = 1024 * 1024;
    c->shutdown_timeout_ms = 10000;
    c->max_import_size = 100 * 1024 * 1024; /* importRepo: a whole repo CAR */
    c->crawl_interval = 20 * 60; /* requestCrawl at most every 20 min, as the reference */
}

static int load_opts(pds_config *c, int argc, char **argv, atp_err *err)
{
    static const char usage[] = "usage: pds [--host H] [--port N] [--hostname H] [--data DIR] "
                                "[--log-level L] [--workers N] (see PDS_* variables)";
    return atp_daemon_opts_load(opts, NOPTS, argc, argv, usage, set_opt, c, err);
}

/* Required values and those derived from others (blob dir, handle domains). */
static int finish(pds_config *c, atp_err *err)
{
    static const char *const need[] = {"PDS_HOSTNAME", "PDS_DATA_DIRECTORY", "PDS_JWT_SECRET",
                                       "PDS_ADMIN_PASSWORD"};
    const char *have[] = {c->hostname, c->data_dir, c->jwt_secret, c->admin_password};
    for (size_t i = 0; i < 4; i++) {
        if (have[i][0] == '\0') {
            return atp_err_set(err, ATP_EINVAL, 0, "%s is required", need[i]);
        }
    }
    if (!c->dev_mode && c->plc_rotation_key_hex[0] == '\0') {
        return atp_err_set(err, ATP_EINVAL, 0,
                           "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX is required");
    }
    if (!c->log_enabled && c->log_level < ATP_LOG_ERROR) {
        /* The reference's LOG_ENABLED=false silences request logs; errors still matter. */
        c->log_level = ATP_LOG_ERROR;
    }
    if (c->blob_dir[0] == '\0') {
        int n = snprintf(c->blob_dir, sizeof c->blob_dir, "%s/blocks", c->data_dir);
        if (n < 0 || (size_t)n >= sizeof c->blob_dir) {
            return atp_err_set(err, ATP_EINVAL, 0, "PDS_DATA_DIRECTORY: too long");
        }
    }
    if (c->n_handle_domains == 0) {
        /* The reference: ".test" in dev mode, else ".<hostname>". */
        if (c->dev_mode) {
            memcpy(c->handle_domains[0], ".test", sizeof ".test");
        } else {
            snprintf(c->handle_domains[0], sizeof c->handle_domains[0], ".%s", c->hostname);
        }
        c->n_handle_domains = 1;
    }
    return 0;
}

int pds_config_load(int argc, char **argv, pds_config *out, atp_err *err)
{
    static pds_config c; /* large; config is loaded once, from main */
    int rc;
    set_defaults(&c);
    rc = load_opts(&c, argc, argv, err);
    if (rc == 0) {
        rc = finish(&c, err);
    }
    if (rc < 0) {
        return rc;
    }
    *out = c;
    return 0;
}

void pds_config_log(const pds_config *c)
{
    char port[8], workers[8], lim[24];
    const char *kv[26];
    const char *red = "<redacted>";
    snprintf(port, sizeof port, "%u", (unsigned)c->port);
    snprintf(workers, sizeof workers, "%u", c->workers);
    snprintf(lim, sizeof lim, "%zu", c->blob_upload_limit);
    kv[0] = "host", kv[1] = c->host, kv[2] = "port", kv[3] = port;
    kv[4] = "hostname", kv[5] = c->hostname, kv[6] = "data", kv[7] = c->data_dir;
    kv[8] = "blobs", kv[9] = c->blob_dir, kv[10] = "blob_upload_limit", kv[11] = lim;
    kv[12] = "plc", kv[13] = c->plc_url, kv[14] = "handle_domain", kv[15] = c->handle_domains[0];
    kv[16] = "invite_required", kv[17] = c->invite_required ? "true" : "false";
    kv[18] = "dev_mode", kv[19] = c->dev_mode ? "true" : "false";
    kv[20] = "rate_limits", kv[21] = c->rate_limits ? "true" : "false";
    kv[22] = "jwt_secret", kv[23] = red;
    kv[24] = "workers", kv[25] = workers;
    atp_log_kv(ATP_LOG_INFO, "config", "effective configuration", kv, 13);
}
