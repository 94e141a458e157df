/* pds/src/main.c: the pds daemon: config, service database, identity, HTTP server, graceful
 * shutdown (SIGTERM: drain requests, checkpoint SQLite, exit 0). */
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "atp/daemon.h"
#include "atp/log.h"
#include "atp/server.h"

#include "acct_cache.h"
#include "actor_store.h"
#include "blobstore.h"
#include "crawlers.h"
#include "db.h"
#include "lexicons.h"
#include "mailer.h"
#include "pds.h"
#include "proxy.h"
#include "ratelimit.h"
#include "sequencer.h"

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static void metrics_hook(atp_buf *out, void *ud)
{
    const pds_ctx *ctx = ud;
    const pds_metrics *m = &ctx->metrics;
    uint64_t commits = 0, txns = 0;
    atp_buf_printf(out, "atp_pds_accounts_created_total %llu\n",
                   (unsigned long long)atomic_load(&m->accounts_created));
    atp_buf_printf(out, "atp_pds_sessions_created_total %llu\n",
                   (unsigned long long)atomic_load(&m->sessions_created));
    atp_buf_printf(out, "atp_pds_sessions_refreshed_total %llu\n",
                   (unsigned long long)atomic_load(&m->sessions_refreshed));
    atp_buf_printf(out, "atp_pds_logins_failed_total %llu\n",
                   (unsigned long long)atomic_load(&m->logins_failed));
    atp_buf_printf(out, "atp_pds_rate_limited_total %llu\n",
                   (unsigned long long)atomic_load(&m->rate_limited));
    atp_buf_printf(out, "atp_pds_plc_errors_total %llu\n",
                   (unsigned long long)atomic_load(&m->plc_errors));
    /* commits / transactions = how many writes share one fsync (group commit) */
    pds_actor_store_counters(ctx->actors, &commits, &txns);
    atp_buf_printf(out, "atp_pds_repo_commits_total %llu\n", (unsigned long long)commits);
    atp_buf_printf(out, "atp_pds_repo_transactions_total %llu\n", (unsigned long long)txns);
    pds_seq_metrics(ctx->seq, out);
}

/* mkdir -p for one level below an existing parent is all the layout needs. */
static int ensure_dir(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST) {
        return 0;
    }
    atp_logf(ATP_LOG_ERROR, "main", "mkdir %s: %s", path, strerror(errno));
    return ATP_EIO;
}

static int load_rotation_key(const pds_config *cfg, atp_key **out)
{
    atp_err err;
    atp_err_clear(&err);
    if (cfg->plc_rotation_key_hex[0]) {
        if (atp_key_import_private_hex(ATP_CURVE_K256, atp_slice_str(cfg->plc_rotation_key_hex),
                                       out, &err) == 0) {
            return 0;
        }
        atp_logf(ATP_LOG_ERROR, "config", "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: %s",
                 err.msg);
        return ATP_EINVAL;
    }
    /* Dev mode only (config refuses otherwise): DIDs made now can't be updated after restart. */
    atp_logf(ATP_LOG_WARN, "config", "dev mode: throwaway PLC rotation key generated");
    return atp_key_generate(ATP_CURVE_K256, out, &err);
}

/* Service identity, stores and clients; returns a process status on failure. */
static int open_ctx(const pds_config *cfg, pds_ctx *ctx)
{
    char path[1100];
    atp_resolver_config rc;
    atp_err err;
    atp_err_clear(&err);
    ctx->cfg = cfg;
    ctx->now = now_s;
    ctx->jwt_secret = atp_slice_str(cfg->jwt_secret);
    snprintf(ctx->service_did, sizeof ctx->service_did, "did:web:%s", cfg->hostname);
    if (ensure_dir(cfg->data_dir) < 0 || ensure_dir(cfg->blob_dir) < 0) {
        return 1;
    }
    if (load_rotation_key(cfg, &ctx->plc_rotation_key) < 0) {
        return PDS_EX_CONFIG;
    }
    snprintf(path, sizeof path, "%s/service.sqlite", cfg->data_dir);
    if (pds_db_open(path, &ctx->db, &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "main", "database: %s", err.msg);
        return 1;
    }
    ctx->acct_cache = pds_acct_cache_create(ctx->db, PDS_ACCT_CACHE_SLOTS);
    atp_resolver_config_init(&rc);
    rc.plc_url = cfg->plc_url;
    rc.local = cfg->dev_mode;
    if (atp_resolver_create(&rc, &ctx->resolver, &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "main", "resolver: %s", err.msg);
        return 1;
    }
    if (cfg->rate_limits) {
        ctx->rl_session = pds_ratelimit_create(cfg->rl_session, 300);
        ctx->rl_account = pds_ratelimit_create(cfg->rl_account, 300);
    }
    return 0;
}

static atp_lexicon *g_lex;
static pds_mailer g_mailer;

/* The per-account stores (their commit hook sequences every commit), then the sequencer (which
 * recovers what an unclean stop left in the accounts' outboxes), then the blobs. */
static int open_actors(const pds_config *cfg, pds_ctx *ctx)
{
    char dir[1100];
    pds_actor_store_opts o;
    atp_err err;
    atp_err_clear(&err);
    const char *lexdir = cfg->lexicon_dir[0] ? cfg->lexicon_dir : NULL;
    if (pds_lexicons_load(lexdir, &g_lex, NULL, &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "main", "lexicons: %s", err.msg);
        return 1;
    }
    snprintf(dir, sizeof dir, "%s/actors", cfg->data_dir);
    memset(&o, 0, sizeof o);
    o.dir = dir;
    o.lex = g_lex;
    o.hook = pds_seq_commit_hook;
    o.done = pds_seq_commit_done;
    o.hook_ctx = ctx;
    o.flush_ms = cfg->actor_flush_ms;
    pds_mailer_log_init(&g_mailer);
    ctx->mailer = &g_mailer;
    if (pds_actor_store_open(&o, &ctx->actors, &err) < 0 ||
        pds_seq_open(ctx, &ctx->seq, &err) < 0 || pds_blobstore_open(cfg, &ctx->blobs, &err) < 0 ||
        pds_blobstore_gc_start(ctx->blobs, ctx->actors, &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "main", "stores: %s", err.msg);
        return 1;
    }
    return 0;
}

static void close_actors(pds_ctx *ctx)
{
    pds_blobstore_close(ctx->blobs);
    /* the sequencer drains, the files take every sequenced commit, then the clean-stop mark */
    pds_seq_close(ctx->seq);
    pds_actor_store_destroy(ctx->actors);
    atp_lexicon_destroy(g_lex);
}

static void close_ctx(pds_ctx *ctx)
{
    close_actors(ctx);
    pds_ratelimit_destroy(ctx->rl_session);
    pds_ratelimit_destroy(ctx->rl_account);
    atp_resolver_destroy(ctx->resolver);
    pds_acct_cache_destroy(ctx->acct_cache);
    pds_db_close(ctx->db);
    atp_key_destroy(ctx->plc_rotation_key);
}

static int start_server(struct event_base *base, const pds_config *cfg, pds_ctx *ctx,
                        atp_server **out, atp_err *err)
{
    atp_server_config sc;
    atp_server *srv = NULL;
    atp_server_config_init(&sc);
    sc.host = cfg->host;
    sc.port = cfg->port;
    sc.svc = "pds";
    sc.version = PDS_VERSION;
    /* The largest body any route takes (a repo import, a blob); each route checks its own
     * limit (PDS_JSON_MAX for JSON bodies). */
    sc.max_body = cfg->blob_upload_limit > PDS_JSON_MAX ? cfg->blob_upload_limit : PDS_JSON_MAX;
    if (cfg->max_import_size > sc.max_body) {
        sc.max_body = cfg->max_import_size;
    }
    sc.workers = cfg->workers;
    sc.cors = true;
    if (atp_server_create(base, &sc, &srv, err) < 0) {
        return ATP_EIO;
    }
    /* The public URL needs the bound port when serving localhost (dev, as the reference). */
    if (strcmp(cfg->hostname, "localhost") == 0) {
        snprintf(ctx->public_url, sizeof ctx->public_url, "http://localhost:%u",
                 (unsigned)atp_server_port(srv));
    } else {
        snprintf(ctx->public_url, sizeof ctx->public_url, "https://%s", cfg->hostname);
    }
    pds_routes_register(srv, ctx);
    pds_seq_attach(ctx->seq, srv);
    atp_server_set_metrics_hook(srv, metrics_hook, ctx);
    if (atp_server_handle_signals(srv, cfg->shutdown_timeout_ms, err) < 0) {
        atp_server_destroy(srv);
        return ATP_EIO;
    }
    *out = srv;
    return 0;
}

static void log_listening(const atp_server *srv, const pds_ctx *ctx)
{
    char port[8];
    const char *kv[8];
    snprintf(port, sizeof port, "%u", (unsigned)atp_server_port(srv));
    kv[0] = "host", kv[1] = ctx->cfg->host, kv[2] = "port", kv[3] = port;
    kv[4] = "did", kv[5] = ctx->service_did, kv[6] = "url", kv[7] = ctx->public_url;
    atp_log_kv(ATP_LOG_INFO, "main", "listening", kv, 4);
}

static int run(const pds_config *cfg)
{
    static pds_ctx ctx; /* zeroed; lives until exit, as handlers need */
    struct event_base *base = NULL;
    atp_server *srv = NULL;
    atp_err err;
    int status = open_ctx(cfg, &ctx);
    atp_err_clear(&err);
    if (status == 0) {
        status = open_actors(cfg, &ctx);
    }
    if (status != 0) {
        close_ctx(&ctx);
        return status;
    }
    status = 1;
    /* Before the server (its workers read ctx->crawlers); the first round may reach a relay
     * a moment before we listen: relays crawl asynchronously and retry. */
    if (pds_crawlers_start(&ctx, &ctx.crawlers, &err) < 0) {
        atp_logf(ATP_LOG_WARN, "main", "crawlers: %s", err.msg);
    }
    base = event_base_new();
    if (!base || start_server(base, cfg, &ctx, &srv, &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "main", "server: %s", base ? err.msg : "event_base_new failed");
    } else {
        log_listening(srv, &ctx);
        event_base_dispatch(base);
        atp_log_kv(ATP_LOG_INFO, "main", "draining done, stopping", NULL, 0);
        status = 0;
    }
    pds_crawlers_stop(ctx.crawlers);
    ctx.crawlers = NULL;
    /* proxied requests run on threads of their own that respond through the server, and
     * writes are answered by the sequencer once durable: both before the server goes */
    (void)pds_proxy_drain(2000);
    pds_seq_detach(ctx.seq);
    atp_server_destroy(srv);
    if (base) {
        event_base_free(base);
    }
    close_ctx(&ctx);
    return status;
}

/* atp_daemon_load_fn over pds_config_load. */
static int load_config(int argc, char **argv, void *cfg, atp_err *err)
{
    return pds_config_load(argc, argv, cfg, err);
}

int main(int argc, char **argv)
{
    static pds_config cfg;
    const atp_daemon_boot boot = {"pds", PDS_EX_CONFIG, load_config, &cfg, &cfg.log_level,
                                  cfg.log_dest};
    int rc = atp_daemon_configure(&boot, argc, argv);
    if (rc != ATP_DAEMON_RUN) {
        return rc;
    }
    pds_config_log(&cfg);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = run(&cfg);
    curl_global_cleanup();
    atp_log_close();
    return rc;
}
