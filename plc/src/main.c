/* plc/src/main.c: the plc directory daemon: config, storage, HTTP server, optional mirror,
 * graceful shutdown (SIGTERM: drain requests, stop the mirror, checkpoint SQLite, exit 0). */
#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "atp/daemon.h"
#include "atp/log.h"
#include "atp/server.h"

#include "config.h"
#include "mirror.h"
#include "routes.h"
#include "store.h"

static int start_server(struct event_base *base, const plc_config *cfg, plc_ctx *ctx,
                        atp_server **out, atp_err *err)
{
    atp_server_config sc;
    atp_server *srv = NULL;
    atp_server_config_init(&sc);
    sc.host = cfg->host;
    sc.port = cfg->port;
    sc.svc = "plc";
    sc.version = PLC_VERSION;
    sc.max_body = cfg->max_body;
    sc.workers = cfg->workers;
    sc.cors = true;
    if (atp_server_create(base, &sc, &srv, err) < 0) {
        return ATP_EIO;
    }
    plc_routes_register(srv, ctx);
    if (atp_server_handle_signals(srv, cfg->shutdown_timeout_ms, err) < 0) {
        atp_server_destroy(srv);
        return ATP_EIO;
    }
    *out = srv;
    return 0;
}

static void log_listening(const atp_server *srv, const plc_config *cfg)
{
    char port[8];
    const char *kv[6];
    snprintf(port, sizeof port, "%u", (unsigned)atp_server_port(srv));
    kv[0] = "host", kv[1] = cfg->host, kv[2] = "port", kv[3] = port;
    kv[4] = "mode", kv[5] = cfg->mirror[0] ? "mirror" : "directory";
    atp_log_kv(ATP_LOG_INFO, "main", "listening", kv, 3);
}

/* Runs until the loop exits (signal); returns the process status. */
static int run(const plc_config *cfg)
{
    static plc_ctx ctx; /* zeroed; lives until exit, as the mirror and handlers need */
    struct event_base *base = NULL;
    atp_server *srv = NULL;
    plc_mirror *mirror = NULL;
    atp_err err;
    int status = 1;
    atp_err_clear(&err);
    ctx.read_only = cfg->mirror[0] != '\0';
    if (plc_store_open(cfg->db, cfg->workers + 2, &ctx.store, &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "main", "database: %s", err.msg);
        return 1;
    }
    base = event_base_new();
    if (!base || start_server(base, cfg, &ctx, &srv, &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "main", "server: %s", base ? err.msg : "event_base_new failed");
        goto done;
    }
    if (ctx.read_only && plc_mirror_start(cfg->mirror, cfg->mirror_poll_ms, &ctx, &mirror,
                                          &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "main", "mirror: %s", err.msg);
        goto done;
    }
    log_listening(srv, cfg);
    event_base_dispatch(base);
    atp_log_kv(ATP_LOG_INFO, "main", "draining done, stopping", NULL, 0);
    status = 0;
done:
    plc_mirror_stop(mirror);
    atp_server_destroy(srv);
    if (base) {
        event_base_free(base);
    }
    plc_store_close(ctx.store);
    if (status == 0) {
        atp_log_kv(ATP_LOG_INFO, "main", "stopped", NULL, 0);
    }
    return status;
}

/* atp_daemon_load_fn over plc_config_load. */
static int load_config(int argc, char **argv, void *cfg, atp_err *err)
{
    return plc_config_load(argc, argv, cfg, err);
}

int main(int argc, char **argv)
{
    plc_config cfg;
    const atp_daemon_boot boot = {"plc", PLC_EX_CONFIG, load_config, &cfg, &cfg.log_level,
                                  cfg.log_dest};
    int rc = atp_daemon_configure(&boot, argc, argv);
    if (rc != ATP_DAEMON_RUN) {
        return rc;
    }
    plc_config_log(&cfg);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = run(&cfg);
    curl_global_cleanup();
    atp_log_close();
    return rc;
}
