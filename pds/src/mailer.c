/* pds/src/mailer.c: the default mail sender, which writes each message to the log. */
#include "mailer.h"

#include "atp/log.h"

static int log_send(void *ud, const char *to, const char *subject, const char *body)
{
    const char *kv[6] = {"to", to, "subject", subject, "body", body};
    (void)ud;
    atp_log_kv(ATP_LOG_INFO, "mail", "message", kv, 3);
    return 0;
}

void pds_mailer_log_init(pds_mailer *m)
{
    m->send = log_send;
    m->ud = NULL;
}
