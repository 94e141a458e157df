/* pds/src/proxy.h: service proxying (xrpc-auth §7): requests no local route serves are forwarded
 * to the service named by their `atproto-proxy: <did>#<service id>` header or, for app.bsky.*
 * and chat.bsky.*, to the configured AppView, with a service JWT of the caller. The route
 * itself is pds_routes_proxy (pds.h); these are its pure parts, shared with tests and fuzzing. */
#ifndef PDS_PROXY_H
#define PDS_PROXY_H

#include <stdbool.h>

#include "atp/buf.h"
#include "atp/err.h"

#define PDS_PROXY_ID_MAX 128 /* service ids are short fragments ("bsky_appview") */
#define PDS_PROXY_HEADER_MAX (2048 + 1 + PDS_PROXY_ID_MAX)

/* A parsed atproto-proxy value; both slices borrow the header text. */
typedef struct pds_proxy_target {
    atp_slice did; /* a syntactically valid DID */
    atp_slice id;  /* the service id, without '#' */
} pds_proxy_target;

/* Parses an atproto-proxy header value "<did>#<service id>". Rules and messages (all
 * ATP_EINVAL, sent as 400 InvalidRequest) in the reference's order: '#' first: "no did
 * specified in proxy header"; no '#' or '#' last: "no service id specified in proxy header";
 * a second '#': "invalid proxy header format"; a space: "proxy header cannot contain spaces";
 * then ours: control or non-ASCII bytes ("invalid proxy header format"), the DID not a valid
 * DID ("invalid proxy header did"), too long (ATP_ELIMIT: over PDS_PROXY_HEADER_MAX, or the id
 * over PDS_PROXY_ID_MAX). err->off is the offending byte. *out written only on success. */
ATP_NODISCARD int pds_proxy_parse_header(atp_slice v, pds_proxy_target *out, atp_err *err);

/* The NSID of an XRPC path "/xrpc/<nsid>" (syntax checked). False for anything else. */
bool pds_proxy_path_nsid(atp_slice path, atp_slice *nsid);

/* True for NSIDs forwarded to the AppView without a header: app.bsky.* and chat.bsky.*. */
bool pds_proxy_default_appview(atp_slice nsid);

/* Account-management methods that are never proxied (the reference's PROTECTED_METHODS):
 * answered 400 InvalidToken "Bad token method". */
bool pds_proxy_is_protected(atp_slice nsid);

/* Methods a plain app password may not reach through the proxy (the reference's
 * PRIVILEGED_METHODS: DMs, createAccount). */
bool pds_proxy_is_privileged(atp_slice nsid);

/* Asks every proxied request still running to stop, then waits up to `timeout_ms` for their
 * threads to finish. For main.c after the loop ends and before atp_server_destroy, so no
 * proxy thread touches a destroyed server. Returns the number still running (0: all done). */
unsigned pds_proxy_drain(unsigned timeout_ms);

#endif
