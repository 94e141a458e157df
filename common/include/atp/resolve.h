/* atp/resolve.h: DID and handle resolution shared by every daemon (spec identity-crypto §3, §5).
 *
 * One resolver object per process (thread-safe: any thread may resolve at once). It resolves
 * did:plc against a configured directory (GET {plc_url}/{did}), did:web through
 * https://host/.well-known/did.json, handles through DNS TXT "_atproto.<handle>" then
 * https://<handle>/.well-known/atproto-did, and verifies handles bidirectionally.
 *
 * Results go through a bounded TTL cache (positive entries for ttl_s, failures for neg_ttl_s,
 * least recently used evicted when full).
 *
 * Network access is two seams in the config, so tests inject fakes: `fetch` (HTTP GET) and `txt`
 * (DNS TXT lookup). The defaults use libcurl and the system resolver (res_query). Outbound
 * requests to user-controlled hosts refuse private, loopback, link-local, multicast and
 * unspecified addresses (every address actually connected to is checked, redirects included)
 * unless the resolver is configured `local` (tests, local networks). The PLC directory URL is
 * operator configuration and is trusted. did:web and handle well-known fetches use http://
 * only in local mode, for hosts "localhost", "127.0.0.1" and (handles) any host.
 */
#ifndef ATP_RESOLVE_H
#define ATP_RESOLVE_H

#include <stdint.h>

#include "atp/buf.h"
#include "atp/didoc.h"

struct sockaddr;

/* Flags of one fetch. */
enum {
    ATP_FETCH_TRUSTED = 1 << 0, /* operator-configured host: no address check */
    ATP_FETCH_FOLLOW = 1 << 1,  /* follow up to 3 redirects (each target checked) */
    ATP_FETCH_LOCAL = 1 << 2,   /* local mode: private addresses allowed */
};

/* One HTTP GET. */
typedef struct atp_fetch_req {
    const char *url;     /* http:// or https:// */
    unsigned flags;      /* ATP_FETCH_* */
    unsigned timeout_ms; /* whole request */
    size_t max_body;     /* longer bodies fail with ATP_ELIMIT */
    const char *accept;  /* Accept header or NULL */
} atp_fetch_req;

/* HTTP fetch seam: performs `req`, appends the body to `body` (whose max may be lower than
 * req->max_body) and sets *status. Returns 0 when a response was received (any status),
 * ATP_EFORBIDDEN when an address was refused, ATP_ELIMIT when the body is too large, ATP_EIO
 * on network errors and timeouts, ATP_EINVAL for a bad URL. */
typedef int (*atp_fetch_fn)(void *ud, const atp_fetch_req *req, int *status, atp_buf *body,
                            atp_err *err);

/* DNS TXT seam: looks up TXT records of `name` and appends each record (its character-strings
 * joined) followed by a '\0' separator to `out`. 0 on an answer (possibly no records);
 * ATP_ENOTFOUND for NXDOMAIN / no data; ATP_EIO for other failures. */
typedef int (*atp_txt_fn)(void *ud, const char *name, unsigned timeout_ms, atp_buf *out,
                          atp_err *err);

/* Clock seam: unix microseconds. */
typedef int64_t (*atp_clock_fn)(void *ud);

typedef struct atp_resolver_config {
    const char *plc_url; /* directory base URL, default "https://plc.directory" (copied) */
    bool local;          /* local network: private addresses and http:// allowed */
    unsigned timeout_ms; /* per request, default 3000 */
    size_t max_doc;      /* DID document bytes, default 64 KiB */
    unsigned ttl_s;      /* positive cache lifetime, default 3600 */
    unsigned neg_ttl_s;  /* failure cache lifetime, default 60 */
    size_t cache_max;    /* entries, default 10000; 0 disables caching */
    atp_fetch_fn fetch;  /* default atp_fetch_default */
    void *fetch_ud;
    atp_txt_fn txt; /* default atp_txt_default */
    void *txt_ud;
    atp_clock_fn clock; /* default CLOCK_REALTIME */
    void *clock_ud;
} atp_resolver_config;

typedef struct atp_resolver atp_resolver;

/* Stats (for metrics and tests). */
typedef struct atp_resolver_stats {
    uint64_t hits, misses, fetches, entries;
} atp_resolver_stats;

/* The verified view of an identity. Slices point into the arena given to the call. */
typedef struct atp_identity {
    atp_slice did;
    atp_slice handle; /* the verified handle (lower case), or "handle.invalid" */
    bool handle_valid;
    atp_didoc doc;
} atp_identity;

/* Fills `c` with the defaults above. */
void atp_resolver_config_init(atp_resolver_config *c);

/* Frees the resolver and its cache. NULL is a no-op. Callers must have stopped using it. */
void atp_resolver_destroy(atp_resolver *r);
/* Creates a resolver (config copied). *out owned: atp_resolver_destroy. Errors: ATP_EINVAL
 * (plc_url not http(s)). */
ATP_NODISCARD int atp_resolver_create(const atp_resolver_config *c, atp_resolver **out,
                                      atp_err *err) ATP_NONNULL(1, 2);

/* Resolves a DID to its document JSON (appended to `out`). did:plc and did:web only.
 * Errors: ATP_EINVAL (DID syntax, unsupported method, did:web with a path), ATP_ENOTFOUND (404,
 * 410), ATP_EIO (network, other statuses), ATP_EFORBIDDEN (address refused), ATP_ELIMIT (too
 * big). Failures are cached too (neg_ttl_s), with their code and message. */
ATP_NODISCARD int atp_resolve_did_json(atp_resolver *r, atp_slice did, atp_buf *out, atp_err *err);

/* Resolves and parses a DID document (the id must equal `did`), strings in `a`. Errors as
 * above plus atp_didoc_parse's. */
ATP_NODISCARD int atp_resolve_did(atp_resolver *r, atp_slice did, atp_arena *a, atp_didoc *out,
                                  atp_err *err);

/* Resolves a handle to a DID (not verified against the document): DNS TXT first (exactly one
 * "did=" value required), then the HTTPS well-known (first line, must start with "did:").
 * The DID is appended to `out`. Errors: ATP_EINVAL (handle syntax or disallowed TLD),
 * ATP_ENOTFOUND (neither method gave a DID). */
ATP_NODISCARD int atp_resolve_handle(atp_resolver *r, atp_slice handle, atp_buf *out, atp_err *err);

/* Resolves a handle or a DID and verifies bidirectionally: for a handle, handle -> DID ->
 * document whose claimed handle equals it (case-insensitive); for a DID, document -> claimed
 * handle -> DID equals it. A failed check is not an error: handle = "handle.invalid".
 * Errors: those of DID resolution (a handle that does not resolve: ATP_ENOTFOUND). */
ATP_NODISCARD int atp_resolve_identity(atp_resolver *r, atp_slice handle_or_did, atp_arena *a,
                                       atp_identity *out, atp_err *err);

/* Drops cached entries for a DID or handle (re-resolve on #identity events, signature
 * failures). */
void atp_resolver_purge(atp_resolver *r, atp_slice did_or_handle);

void atp_resolver_get_stats(atp_resolver *r, atp_resolver_stats *out);

/* ---- default implementations of the seams (usable directly) ---- */

/* libcurl GET: no proxy, http/https only, timeouts, size limit, address check in the socket
 * callback unless ATP_FETCH_TRUSTED or ATP_FETCH_LOCAL. `ud` unused. */
ATP_NODISCARD int atp_fetch_default(void *ud, const atp_fetch_req *req, int *status, atp_buf *body,
                                    atp_err *err);

/* res_query TXT lookup. `ud` unused. */
ATP_NODISCARD int atp_txt_default(void *ud, const char *name, unsigned timeout_ms, atp_buf *out,
                                  atp_err *err);

/* True if the address may be contacted for user-controlled hosts: not loopback, private
 * (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16, fe80::/10), CGNAT
 * (100.64/10), unspecified, multicast, broadcast, or their IPv4-mapped IPv6 forms. */
bool atp_resolve_addr_is_public(const struct sockaddr *sa);

#endif
