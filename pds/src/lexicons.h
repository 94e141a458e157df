/* pds/src/lexicons.h: the record schemas shipped with the PDS (pds/lexicons/, the official
 * app.bsky.* and com.atproto.* Lexicon JSON files), loaded into one catalog at start. */
#ifndef PDS_LEXICONS_H
#define PDS_LEXICONS_H

#include "atp/err.h"
#include "atp/lexicon.h"

/* Where the shipped lexicons are when no path is configured: the source tree's pds/lexicons,
 * baked in at build time (PDS_LEXICON_DIR). */
const char *pds_lexicons_default_dir(void);

/* Loads every *.json file under `dir` (recursively; NULL = pds_lexicons_default_dir()) into a
 * new catalog and checks that every reference resolves. *n_docs (nullable) gets the number of
 * documents. Owned: atp_lexicon_destroy. Errors: ATP_EIO (unreadable folder or file, with its
 * path), ATP_EINVAL (a bad document, with its path and reason), ATP_ENOTFOUND (a dangling
 * ref), ATP_ELIMIT (a file over 1 MiB, or more than 4096 files). */
ATP_NODISCARD int pds_lexicons_load(const char *dir, atp_lexicon **out, size_t *n_docs,
                                    atp_err *err);

#endif
