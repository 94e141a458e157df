/* plc/src/config.h: the plc daemon's configuration, from the environment and flags.
 *
 * Only config.c reads the environment (STYLE.md "Daemons"). Flags override variables:
 *   --host H       PLC_HOST        bind address (default 127.0.0.1)
 *   --port N       PLC_PORT        TCP port, 0 = ephemeral (default 2582)
 *   --db FILE      PLC_DB          SQLite file (default plc.sqlite)
 *   --mirror URL   PLC_MIRROR      follow URL's /export and keep a verified replica
 *   --mirror-poll-ms N  PLC_MIRROR_POLL_MS  wait between polls once caught up (default 5000)
 *   --log-level L  LOG_LEVEL       debug, info, warn, error, off (default info)
 *                  LOG_DESTINATION log file (default stderr)
 *   --workers N    PLC_WORKERS     worker threads for the SQLite routes (default 4)
 */
#ifndef PLC_CONFIG_H
#define PLC_CONFIG_H

#include <stdint.h>

#include "atp/log.h"

#define PLC_EX_CONFIG 78 /* sysexits.h EX_CONFIG: bad configuration */

typedef struct plc_config {
    char host[256];
    uint16_t port;
    char db[1024];
    char mirror[1024]; /* empty: not a mirror */
    unsigned mirror_poll_ms;
    atp_log_level log_level;
    char log_dest[1024]; /* empty: stderr */
    unsigned workers;
    size_t max_body;              /* POST body bytes (413 past it) */
    unsigned shutdown_timeout_ms; /* SIGTERM drain */
} plc_config;

/* Fills `out` from the environment, then argv[1..argc) (flags as above, "--flag value" or
 * "--flag=value"). ATP_EINVAL on an unknown flag, a missing or bad value (err names it); "--help"
 * gives ATP_ENOTFOUND with the usage in err->msg. *out written only on success. */
ATP_NODISCARD int plc_config_load(int argc, char **argv, plc_config *out, atp_err *err);

/* Logs the effective configuration (one info line, no secrets: there are none). */
void plc_config_log(const plc_config *c);

#endif
