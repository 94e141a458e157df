/* pds/src/acct_cache.h: what the repo write path needs of an account (its status and its
 * signing key, parsed), kept in memory between writes.
 *
 * Without it every write read the account row and the key's hex from the service database
 * and parsed the key (a secp256k1 public-key derivation): about 8 % of a write's CPU. Each
 * entry remembers the service database's account generation (pds_db_account_generation) it
 * was read at, and is used only while that is still the current one: any committed change to
 * an account row (takedown, deactivation, deletion, a new signing key) sends the next lookup
 * of every account back to the database.
 *
 * A fixed table of slots, one entry per slot (a colliding DID replaces it). Thread-safe: one
 * mutex, held for a slot copy only; database reads and key parsing happen outside it.
 */
#ifndef PDS_ACCT_CACHE_H
#define PDS_ACCT_CACHE_H

#include <stddef.h>

#include "atp/crypto.h"

#include "db.h"

typedef struct pds_acct_cache pds_acct_cache;

/* The daemon's size: accounts writing at once beyond this share slots (and read again). */
#define PDS_ACCT_CACHE_SLOTS 4096

/* A cache of `slots` entries (rounded up to a power of two, at least 16) over `db`
 * (borrowed: must outlive the cache). Owned: pds_acct_cache_destroy. */
pds_acct_cache *pds_acct_cache_create(pds_db *db, size_t slots);
void pds_acct_cache_destroy(pds_acct_cache *c); /* NULL is a no-op */

/* The status and signing key of account `did` (a DID). *key is an owned reference
 * (atp_key_destroy), or NULL when the account has no usable key stored. ATP_ENOTFOUND: no
 * such account (or a deleted one); ATP_EIO: the database failed. Out-params are written only
 * on success. */
ATP_NODISCARD int pds_acct_cache_get(pds_acct_cache *c, const char *did, pds_status *status,
                                     atp_key **key);

#endif
