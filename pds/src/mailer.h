/* pds/src/mailer.h: how the PDS sends mail (account deletion tokens, PLC operation tokens...).
 * Pluggable: the default writes each message to the log (one structured line); an operator's
 * build can set another sender. */
#ifndef PDS_MAILER_H
#define PDS_MAILER_H

#include "atp/err.h"

typedef struct pds_mailer {
    /* Sends one message; 0 or a negative ATP_E* code. Called from worker threads. */
    int (*send)(void *ud, const char *to, const char *subject, const char *body);
    void *ud;
} pds_mailer;

/* The default sender: logs "mail" lines (to, subject, body) at info level. */
void pds_mailer_log_init(pds_mailer *m);

#endif
