/* plc/src/routes.h: the directory's HTTP interface (spec identity-crypto §4.5) on atp/server.h.
 *
 *   POST /:did            submit an op (400 {"message"} on any refusal, nothing changed)
 *   GET  /:did            DID document (404 unknown, 410 tombstoned "DID not available")
 *   GET  /:did/data, /:did/log, /:did/log/last, /:did/log/audit
 *   GET  /export?after=<timestamp|seq>&count=<1..1000>   JSON lines
 *   GET  /_health         {"version"}
 *   GET  /metrics         Prometheus text (server lines, then ours)
 * The DID may be percent-encoded in the path (did%3Aplc%3A...). SQLite routes run on the
 * server's worker pool. */
#ifndef PLC_ROUTES_H
#define PLC_ROUTES_H

#include <stdatomic.h>
#include <stdbool.h>

#include "atp/server.h"

#include "store.h"

#define PLC_VERSION "0.1.0"
#define PLC_EXPORT_MAX 1000

/* Counters for /metrics, updated from any thread. */
typedef struct plc_metrics {
    atomic_ullong ops_accepted, ops_rejected, ops_duplicate;
    atomic_ullong mirror_ops, mirror_rejected, mirror_errors, mirror_pages;
    atomic_llong mirror_cursor_ms; /* upstream createdAt reached, unix ms */
} plc_metrics;

/* Shared by every handler; outlives the server. */
typedef struct plc_ctx {
    plc_store *store;
    bool read_only; /* mirror mode: POST is refused */
    plc_metrics metrics;
} plc_ctx;

/* What a /<did>... path asks for. */
typedef enum plc_path_kind {
    PLC_P_DOC,   /* /<did> */
    PLC_P_DATA,  /* /<did>/data */
    PLC_P_LOG,   /* /<did>/log */
    PLC_P_LAST,  /* /<did>/log/last */
    PLC_P_AUDIT, /* /<did>/log/audit */
} plc_path_kind;

/* Splits a raw request path "/<did>[/data|/log|/log/last|/log/audit]": the DID segment is
 * percent-decoded for "%3A" only (what clients escape in a DID) into did[PLC_DID_MAX],
 * NUL-terminated. False for any other shape, an empty or too long DID. Pure; the DID is not
 * checked further (plc_did_is_valid). */
bool plc_path_parse(atp_slice path, char did[PLC_DID_MAX], plc_path_kind *kind);

/* Registers every route above on `s`. */
void plc_routes_register(atp_server *s, plc_ctx *ctx);

#endif
