/* pds/src/acct_cache.c: the write path's account cache (acct_cache.h). */
#include "acct_cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pds.h"

typedef struct slot {
    bool used;
    uint64_t gen;
    pds_status status;
    atp_key *key; /* the slot's own reference, or NULL */
    char did[PDS_DID_MAX + 1];
} slot;

struct pds_acct_cache {
    pds_db *db;
    pthread_mutex_t mu;
    size_t mask;
    slot *slots;
};

pds_acct_cache *pds_acct_cache_create(pds_db *db, size_t slots)
{
    size_t n = 16;
    while (n < slots) {
        n *= 2;
    }
    pds_acct_cache *c = atp_xcalloc(1, sizeof *c);
    c->db = db;
    c->mask = n - 1;
    c->slots = atp_xcalloc(n, sizeof *c->slots);
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void pds_acct_cache_destroy(pds_acct_cache *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i <= c->mask; i++) {
        atp_key_destroy(c->slots[i].key);
    }
    pthread_mutex_destroy(&c->mu);
    free(c->slots);
    free(c);
}

/* FNV-1a over the DID. */
static size_t did_hash(const char *did)
{
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)did; *p; p++) {
        h = (h ^ *p) * 1099511628211ull;
    }
    return (size_t)(h ^ (h >> 32));
}

/* Reads the account and parses its key (no lock held). */
static int load(pds_db *db, const char *did, pds_status *status, atp_key **key)
{
    pds_account a;
    int rc = pds_db_account_get(db, did, &a);
    if (rc != 0) {
        return rc;
    }
    *status = a.status;
    if (pds_account_key_read(db, did, key) != 0) {
        *key = NULL; /* the write path answers 500 */
    }
    return 0;
}

int pds_acct_cache_get(pds_acct_cache *c, const char *did, pds_status *status, atp_key **key)
{
    size_t len = strlen(did);
    if (len > PDS_DID_MAX) {
        return ATP_ENOTFOUND;
    }
    uint64_t gen = pds_db_account_generation(c->db);
    slot *s = &c->slots[did_hash(did) & c->mask];
    pthread_mutex_lock(&c->mu);
    if (s->used && s->gen == gen && strcmp(s->did, did) == 0) {
        *status = s->status;
        *key = s->key ? atp_key_ref(s->key) : NULL;
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    pthread_mutex_unlock(&c->mu);
    pds_status st;
    atp_key *k;
    int rc = load(c->db, did, &st, &k);
    if (rc != 0) {
        return rc;
    }
    atp_key *old = NULL;
    pthread_mutex_lock(&c->mu);
    if (!s->used || s->gen <= gen) { /* a newer entry from a racing load stays */
        old = s->key;
        s->used = true;
        s->gen = gen;
        s->status = st;
        s->key = k ? atp_key_ref(k) : NULL;
        memcpy(s->did, did, len + 1);
    }
    pthread_mutex_unlock(&c->mu);
    atp_key_destroy(old);
    *status = st;
    *key = k;
    return 0;
}
