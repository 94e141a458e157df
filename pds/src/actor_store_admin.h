/* pds/src/actor_store_admin.h: takedowns of records and blobs in an account's own file, and
 * the admin subjects that name what com.atproto.admin.updateSubjectStatus / getSubjectStatus
 * act on:
 *
 *   com.atproto.admin.defs#repoRef      {did}                  an account (service database)
 *   com.atproto.repo.strongRef          {uri, cid}             a record (its account's file)
 *   com.atproto.admin.defs#repoBlobRef  {did, cid, recordUri?} a blob (its account's file)
 *
 * A record or blob is taken down when its row's takedownRef is non-NULL: readers (getRecord,
 * listRecords, sync.getRecord, getBlob) treat such rows as absent. The parsers here are pure
 * (no I/O, no globals) and bounded by the fixed field sizes below; the store calls are
 * thread-safe (they run under the account's lock, actor_store_int.h).
 */
#ifndef PDS_ACTOR_STORE_ADMIN_H
#define PDS_ACTOR_STORE_ADMIN_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "atp/buf.h"
#include "atp/cid.h"
#include "atp/err.h"
#include "atp/repo.h"

#include "actor_store.h"
#include "pds.h"

#define PDS_TAKEDOWN_REF_MAX 512 /* bytes of a takedown reference (the reference has none) */
#define PDS_NSID_MAX 317         /* spec: NSIDs up to 317 characters */
#define PDS_RKEY_MAX 512         /* spec: record keys up to 512 characters */

/* The lexicon's com.atproto.admin.defs#statusAttr. */
typedef struct pds_takedown {
    bool applied;
    char ref[PDS_TAKEDOWN_REF_MAX + 1]; /* "" when none */
} pds_takedown;

typedef enum pds_subject_kind {
    PDS_SUBJECT_REPO = 0, /* com.atproto.admin.defs#repoRef */
    PDS_SUBJECT_RECORD,   /* com.atproto.repo.strongRef */
    PDS_SUBJECT_BLOB,     /* com.atproto.admin.defs#repoBlobRef */
} pds_subject_kind;

/* One admin subject. `did` is the account in every kind (a record's URI authority, which must
 * be a DID). Fields a kind does not use are empty. */
typedef struct pds_subject {
    pds_subject_kind kind;
    char did[PDS_DID_MAX + 1];
    char collection[PDS_NSID_MAX + 1]; /* record */
    char rkey[PDS_RKEY_MAX + 1];       /* record */
    bool has_cid;                      /* record (strongRef.cid) or blob (always) */
    atp_cid cid;
    char record_uri[PDS_URI_MAX]; /* blob: the optional recordUri, "" when absent */
} pds_subject;

/* The input of updateSubjectStatus. */
typedef struct pds_status_update {
    pds_subject subject;
    bool has_takedown;
    pds_takedown takedown; /* ref "" with applied: the handler picks the reference's default */
    bool has_deactivated;
    bool deactivated; /* statusAttr.applied of `deactivated` (its ref is ignored) */
} pds_status_update;

/* Parses a subject object (a member of a JSON body; borrowed). `$type` must name one of the
 * three kinds; repoRef needs a valid `did`; strongRef a valid at-uri `uri` whose authority is
 * a DID and that names a record (collection and rkey), plus a valid `cid`; repoBlobRef a valid
 * `did` and `cid`, `recordUri` optional (a valid at-uri). Strings over the field sizes are
 * refused. ATP_EINVAL with the reason in err->msg; *out written only on success. Pure. */
ATP_NODISCARD int pds_subject_parse(const cJSON *subject, pds_subject *out, atp_err *err);

/* Parses the whole updateSubjectStatus body: `subject` (as above), optional `takedown` and
 * `deactivated` statusAttr objects ({applied: boolean required, ref: string optional, at most
 * PDS_TAKEDOWN_REF_MAX bytes}). ATP_EINVAL (err->msg says why); *out written only on
 * success. Pure. */
ATP_NODISCARD int pds_status_update_parse(const cJSON *body, pds_status_update *out,
                                          atp_err *err);

/* The subject named by getSubjectStatus's parameters (each {NULL, 0} when absent; values as
 * given, at most their field size): `blob` (a CID, with `did` required) takes precedence, then
 * `uri` (an at-uri), then `did`. ATP_EINVAL for a missing or malformed parameter (err says
 * which); ATP_ENOTFOUND for a well-formed `uri` that cannot name a record here (no rkey, or a
 * handle as authority: the reference answers "Subject not found"). The record kind has
 * has_cid false. *out written only on success. Pure. */
ATP_NODISCARD int pds_subject_from_params(atp_slice did, atp_slice uri, atp_slice blob,
                                          pds_subject *out, atp_err *err);

/* The subject as its lexicon object with `$type` (owned: cJSON_Delete). A record without a CID
 * gets no `cid` member. */
cJSON *pds_subject_to_json(const pds_subject *s);

/* "at://<did>/<collection>/<rkey>" of a record subject into out[PDS_URI_MAX]. */
void pds_subject_record_uri(const pds_subject *s, char out[PDS_URI_MAX]);

/* ---- takedown state in the account's file ---- */

/* Sets the takedownRef of record collection/rkey to `ref`, or clears it (ref NULL). Errors:
 * ATP_ENOTFOUND (no repo, err: "Could not find repo for DID"; or no such record: nothing
 * changed), ATP_EIO. Durable on return. */
ATP_NODISCARD int pds_actor_store_record_takedown(pds_actor_store *s, atp_slice did,
                                                  atp_slice collection, atp_slice rkey,
                                                  const char *ref, atp_err *err);

/* A record's current CID and takedown state. ATP_ENOTFOUND (no repo or no record), ATP_EIO.
 * Outputs written only on success. */
ATP_NODISCARD int pds_actor_store_record_status(pds_actor_store *s, atp_slice did,
                                                atp_slice collection, atp_slice rkey,
                                                atp_cid *cid, pds_takedown *out, atp_err *err);

/* Sets or clears (ref NULL) the takedownRef of blob `cid` of the account. Errors as
 * pds_actor_store_record_takedown (ATP_ENOTFOUND: no repo, or no such blob). */
ATP_NODISCARD int pds_actor_store_blob_takedown(pds_actor_store *s, atp_slice did,
                                                const atp_cid *cid, const char *ref,
                                                atp_err *err);

/* A blob's takedown state. ATP_ENOTFOUND (no repo or no such blob), ATP_EIO. */
ATP_NODISCARD int pds_actor_store_blob_status(pds_actor_store *s, atp_slice did,
                                              const atp_cid *cid, pds_takedown *out,
                                              atp_err *err);

#endif
