/* fuzz_admin: the admin subject parsers (actor_store_admin.h). The first byte picks:
 *   even: the rest is an updateSubjectStatus body (JSON) for pds_status_update_parse;
 *   odd:  getSubjectStatus parameters for pds_subject_from_params: the rest split at '\n'
 *         into did, uri, blob; bit 1..3 of the first byte say which are present.
 * Invariants: an accepted body re-formatted (pds_subject_to_json + the statusAttrs) parses
 * back to the same update; accepted parameters name a valid DID (and NSID/rkey or CID), a
 * record's formatted URI is the input URI byte for byte, and a blob subject survives the JSON
 * round trip through pds_subject_parse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "atp/syntax.h"

#include "actor_store_admin.h"

#define MAX_INPUT (64 * 1024)

static bool subject_eq(const pds_subject *a, const pds_subject *b)
{
    return a->kind == b->kind && strcmp(a->did, b->did) == 0 &&
           strcmp(a->collection, b->collection) == 0 && strcmp(a->rkey, b->rkey) == 0 &&
           a->has_cid == b->has_cid && (!a->has_cid || atp_cid_eq(&a->cid, &b->cid)) &&
           strcmp(a->record_uri, b->record_uri) == 0;
}

static cJSON *attr(bool applied, const char *ref)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "applied", applied);
    if (ref && ref[0]) {
        cJSON_AddStringToObject(o, "ref", ref);
    }
    return o;
}

static void check_subject(const pds_subject *s)
{
    char uri[PDS_URI_MAX];
    if (!atp_syntax_is_did(atp_slice_str(s->did))) {
        abort();
    }
    if (s->kind == PDS_SUBJECT_RECORD) {
        pds_subject back;
        pds_subject_record_uri(s, uri);
        if (!atp_syntax_is_nsid(atp_slice_str(s->collection)) ||
            !atp_syntax_is_rkey(atp_slice_str(s->rkey)) ||
            pds_subject_from_params(atp_slice_make(NULL, 0), atp_slice_str(uri),
                                    atp_slice_make(NULL, 0), &back, NULL) != 0 ||
            strcmp(back.did, s->did) != 0 || strcmp(back.rkey, s->rkey) != 0 ||
            strcmp(back.collection, s->collection) != 0) {
            abort();
        }
    }
}

static void fuzz_body(const uint8_t *data, size_t size)
{
    cJSON *in = cJSON_ParseWithLength((const char *)data, size), *out;
    pds_status_update *u = malloc(sizeof *u), *v = malloc(sizeof *v);
    if (in && pds_status_update_parse(in, u, NULL) == 0) {
        check_subject(&u->subject);
        out = cJSON_CreateObject();
        cJSON_AddItemToObject(out, "subject", pds_subject_to_json(&u->subject));
        if (u->has_takedown) {
            cJSON_AddItemToObject(out, "takedown", attr(u->takedown.applied, u->takedown.ref));
        }
        if (u->has_deactivated) {
            cJSON_AddItemToObject(out, "deactivated", attr(u->deactivated, NULL));
        }
        if (pds_status_update_parse(out, v, NULL) != 0 || !subject_eq(&u->subject, &v->subject) ||
            u->has_takedown != v->has_takedown || u->has_deactivated != v->has_deactivated ||
            u->deactivated != v->deactivated ||
            (u->has_takedown && (u->takedown.applied != v->takedown.applied ||
                                 strcmp(u->takedown.ref, v->takedown.ref) != 0))) {
            abort();
        }
        cJSON_Delete(out);
    }
    cJSON_Delete(in);
    free(u);
    free(v);
}

/* Splits the input at '\n' into three parameters; `present` bit i keeps part i. */
static void fuzz_params(unsigned present, const uint8_t *data, size_t size)
{
    atp_slice part[3] = {{NULL, 0}, {NULL, 0}, {NULL, 0}};
    size_t start = 0, k = 0;
    pds_subject *s = malloc(sizeof *s), *back = malloc(sizeof *back);
    for (size_t i = 0; i <= size && k < 3; i++) {
        if (i == size || data[i] == '\n') {
            part[k] = (present >> k) & 1 ? atp_slice_make(data + start, i - start)
                                         : atp_slice_make(NULL, 0);
            k++;
            start = i + 1;
        }
    }
    if (pds_subject_from_params(part[0], part[1], part[2], s, NULL) == 0) {
        check_subject(s);
        if (s->kind == PDS_SUBJECT_RECORD) {
            char uri[PDS_URI_MAX];
            pds_subject_record_uri(s, uri);
            if (!part[1].ptr || strlen(uri) != part[1].len ||
                memcmp(uri, part[1].ptr, part[1].len) != 0) {
                abort();
            }
        } else if (s->kind == PDS_SUBJECT_BLOB) {
            cJSON *j = pds_subject_to_json(s);
            if (!s->has_cid || pds_subject_parse(j, back, NULL) != 0 || !subject_eq(s, back)) {
                abort();
            }
            cJSON_Delete(j);
        } else if (!part[0].ptr || strlen(s->did) != part[0].len || part[1].ptr || part[2].ptr) {
            abort();
        }
    }
    free(s);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > MAX_INPUT) {
        return 0;
    }
    if ((data[0] & 1) == 0) {
        fuzz_body(data + 1, size - 1);
    } else {
        fuzz_params((unsigned)data[0] >> 1, data + 1, size - 1);
    }
    return 0;
}
