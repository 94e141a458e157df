/* plc/src/config.c: environment then flags, validated once at start (exit 78 on a bad value). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/daemon.h"

typedef enum {
    OPT_HOST,
    OPT_PORT,
    OPT_DB,
    OPT_MIRROR,
    OPT_POLL,
    OPT_LEVEL,
    OPT_DEST,
    OPT_WORKERS,
} opt_id;

/* Flags and variables (atp_daemon_opt: id, flag or NULL for environment only, variable). */
static const atp_daemon_opt opts[] = {
    {OPT_HOST, "--host", "PLC_HOST"},
    {OPT_PORT, "--port", "PLC_PORT"},
    {OPT_DB, "--db", "PLC_DB"},
    {OPT_MIRROR, "--mirror", "PLC_MIRROR"},
    {OPT_POLL, "--mirror-poll-ms", "PLC_MIRROR_POLL_MS"},
    {OPT_LEVEL, "--log-level", "LOG_LEVEL"},
    {OPT_DEST, NULL, "LOG_DESTINATION"},
    {OPT_WORKERS, "--workers", "PLC_WORKERS"},
};

#define NOPTS (sizeof opts / sizeof opts[0])

static int parse_uint(const char *name, const char *v, unsigned long max, unsigned long *out,
                      atp_err *err)
{
    char *end = NULL;
    unsigned long n;
    /* strtoul accepts a sign and leading blanks: refuse them so "-1" is not a huge port. */
    if (v[0] < '0' || v[0] > '9') {
        return atp_err_set(err, ATP_EINVAL, 0, "%s: not a number: \"%.60s\"", name, v);
    }
    errno = 0;
    n = strtoul(v, &end, 10);
    if (errno != 0 || *end != '\0' || n > max) {
        return atp_err_set(err, ATP_EINVAL, 0, "%s: out of range: \"%.60s\"", name, v);
    }
    *out = n;
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

static int check_mirror(const char *v, atp_err *err)
{
    if (v[0] != '\0' && strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "mirror: not an http(s) URL: \"%.60s\"", v);
    }
    return 0;
}

static int set_numeric(plc_config *c, opt_id id, const char *name, const char *v, atp_err *err)
{
    unsigned long n = 0;
    int rc;
    if (id == OPT_PORT) {
        rc = parse_uint(name, v, 65535, &n, err);
        c->port = (uint16_t)n;
    } else if (id == OPT_POLL) {
        rc = parse_uint(name, v, 3600000, &n, err);
        c->mirror_poll_ms = (unsigned)n;
    } else {
        rc = parse_uint(name, v, 64, &n, err);
        if (rc == 0 && n == 0) {
            rc = atp_err_set(err, ATP_EINVAL, 0, "%s: must be at least 1", name);
        }
        c->workers = (unsigned)n;
    }
    return rc;
}

/* The atp_daemon_set_fn of this daemon's table: `ud` is the plc_config being filled. */
static int set_opt(void *ud, int opt, const char *name, const char *v, atp_err *err)
{
    plc_config *c = ud;
    opt_id id = (opt_id)opt;
    switch (id) {
    case OPT_HOST:
        if (v[0] == '\0') {
            return atp_err_set(err, ATP_EINVAL, 0, "%s: empty", name);
        }
        return copy_str(name, v, c->host, sizeof c->host, err);
    case OPT_DB:
        if (v[0] == '\0') {
            return atp_err_set(err, ATP_EINVAL, 0, "%s: empty", name);
        }
        return copy_str(name, v, c->db, sizeof c->db, err);
    case OPT_MIRROR:
        if (check_mirror(v, err) < 0) {
            return err ? err->code : ATP_EINVAL;
        }
        return copy_str(name, v, c->mirror, sizeof c->mirror, err);
    case OPT_DEST:
        return copy_str(name, v, c->log_dest, sizeof c->log_dest, err);
    case OPT_LEVEL:
        if (atp_log_level_parse(atp_slice_str(v), &c->log_level, NULL) < 0) {
            return atp_err_set(err, ATP_EINVAL, 0, "%s: unknown level \"%.40s\"", name, v);
        }
        return 0;
    default:
        return set_numeric(c, id, name, v, err);
    }
}

static void set_defaults(plc_config *c)
{
    memset(c, 0, sizeof *c);
    memcpy(c->host, "127.0.0.1", sizeof "127.0.0.1");
    c->port = 2582;
    memcpy(c->db, "plc.sqlite", sizeof "plc.sqlite");
    c->mirror_poll_ms = 5000;
    c->log_level = ATP_LOG_INFO;
    c->workers = 4;
    /* The reference's JSON body limit is 100 kB; a valid op is far smaller (4000 CBOR bytes). */
    c->max_body = 100 * 1024;
    c->shutdown_timeout_ms = 10000;
}

static int load_opts(plc_config *c, int argc, char **argv, atp_err *err)
{
    static const char usage[] = "usage: plc [--host H] [--port N] [--db FILE] [--mirror URL] "
                                "[--mirror-poll-ms N] [--log-level L] [--workers N]";
    return atp_daemon_opts_load(opts, NOPTS, argc, argv, usage, set_opt, c, err);
}

int plc_config_load(int argc, char **argv, plc_config *out, atp_err *err)
{
    plc_config c;
    int rc;
    set_defaults(&c);
    rc = load_opts(&c, argc, argv, err);
    if (rc < 0) {
        return rc;
    }
    *out = c;
    return 0;
}

void plc_config_log(const plc_config *c)
{
    char port[8], poll[16], workers[8];
    const char *kv[14];
    snprintf(port, sizeof port, "%u", (unsigned)c->port);
    snprintf(poll, sizeof poll, "%u", c->mirror_poll_ms);
    snprintf(workers, sizeof workers, "%u", c->workers);
    kv[0] = "host", kv[1] = c->host, kv[2] = "port", kv[3] = port;
    kv[4] = "db", kv[5] = c->db, kv[6] = "mirror", kv[7] = c->mirror[0] ? c->mirror : NULL;
    kv[8] = "mirror_poll_ms", kv[9] = poll, kv[10] = "workers", kv[11] = workers;
    kv[12] = "log_level", kv[13] = atp_log_level_name(c->log_level);
    atp_log_kv(ATP_LOG_INFO, "config", "effective configuration", kv, 7);
}
