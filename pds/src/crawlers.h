/* pds/src/crawlers.h: com.atproto.sync.requestCrawl to each relay of PDS_CRAWLERS, at start and
 * then periodically (and after writes, at most once per interval), on a thread of its own. */
#ifndef PDS_CRAWLERS_H
#define PDS_CRAWLERS_H

#include "atp/err.h"

#include "pds.h"

typedef struct pds_crawlers pds_crawlers;

/* Starts notifying (no thread when PDS_CRAWLERS is empty: *out is then NULL). */
ATP_NODISCARD int pds_crawlers_start(pds_ctx *ctx, pds_crawlers **out, atp_err *err);
/* A write happened: the relays may be told sooner (rate-limited). NULL is a no-op. */
void pds_crawlers_poke(pds_crawlers *c);
/* Stops the thread and frees. NULL is a no-op. */
void pds_crawlers_stop(pds_crawlers *c);

#endif
