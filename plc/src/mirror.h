/* plc/src/mirror.h: mirror mode: follow another directory's /export and keep a verified replica.
 *
 * One thread pages through <url>/export?after=<createdAt>&count=1000 with libcurl (timeouts, a
 * response size cap), re-validates every op against our own stored history at the op's upstream
 * createdAt (so the 72-hour recovery rule is judged as the upstream judged it), and stores it
 * with that createdAt. Ops already stored are skipped, so pages may overlap: each request asks
 * from 1 ms before the cursor, which keeps ops sharing a timestamp across a page boundary. The
 * cursor (last upstream createdAt processed) is kept in the database after every page, so a
 * restart resumes there. Errors back off exponentially (1 s to 60 s); once caught up it polls
 * every poll_ms. A progress line is logged every 10 s while catching up.
 */
#ifndef PLC_MIRROR_H
#define PLC_MIRROR_H

#include "routes.h"

typedef struct plc_mirror plc_mirror;

/* Starts the mirror thread for `url` (copied; http(s)://host[:port][/path], no trailing
 * slash needed). `ctx` must outlive the mirror. ATP_EIO if the thread cannot start. */
ATP_NODISCARD int plc_mirror_start(const char *url, unsigned poll_ms, plc_ctx *ctx,
                                   plc_mirror **out, atp_err *err);

/* Stops the thread (an in-flight transfer is aborted, a page being stored finishes its current
 * op), joins it and frees. NULL is a no-op. */
void plc_mirror_stop(plc_mirror *m);

#endif
