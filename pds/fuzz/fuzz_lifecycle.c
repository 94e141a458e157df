/* pds/fuzz/fuzz_lifecycle.c: the lifecycle module's input handling.
 *
 * Byte 0 picks the target:
 *   even: putPreferences' body parser (pds_prefs_parse); bit 1 = full access. Invariants: an
 *         accepted list has at most PDS_PREFS_MAX_ITEMS objects, each with a $type in the
 *         app.bsky namespace (never the full-access-only one without full access); printing it
 *         back as {"preferences": list} parses again to the same list (idempotence); what an
 *         app password may put, full access may put too.
 *   odd:  importRepo's storage glue (pds_actor_store_import) on one account of a store in a
 *         temporary folder, with the rest as the CAR. Invariants: a refused import leaves the
 *         account's head, rev and record count as they were; an accepted one makes the stored
 *         head the CAR's, the indexed record count the tree's, and exporting the repo and
 *         importing that again gives the same head (round trip).
 * At start one valid CAR (two records, signed by the fixed key below) is imported, so the
 * accepted path runs every time; FUZZ_LIFECYCLE_SEED=path writes that CAR out for the corpus. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor_store.h"
#include "actor_store_import.h"
#include "atp/car.h"
#include "atp/json.h"
#include "lifecycle.h"

#define DID     "did:plc:fuzzlifecyclefuzzlifecy"
#define KEY_HEX "9085d2bef69286a6cbb51623c8fa258629945cd55ca705cc4e66700396894e0c"

static pds_actor_store *g_store;
static atp_key *g_key;
static char g_dir[64];

static void teardown(void)
{
    char cmd[128];
    pds_actor_store_destroy(g_store);
    atp_key_destroy(g_key);
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (g_dir[0] && system(cmd) != 0) {
        fprintf(stderr, "fuzz_lifecycle: could not remove %s\n", g_dir);
    }
}

/* A valid repo CAR for DID signed with g_key: two posts. */
static void build_seed(atp_buf *out)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_arena *a = atp_arena_create(0);
    atp_repo *repo = NULL;
    atp_repo_commit c;
    atp_repo_write w[2];
    atp_car_writer cw;
    const char *json = "{\"$type\":\"app.bsky.feed.post\",\"text\":\"seed\","
                       "\"createdAt\":\"2024-01-01T00:00:00.000Z\"}";
    atp_cbor *rec = NULL;
    memset(w, 0, sizeof w);
    if (atp_json_decode(a, atp_slice_str(json), ATP_JSON_DATA, NULL, &rec, NULL) != 0 ||
        atp_repo_create(bs, atp_slice_str(DID), g_key, NULL, &repo, NULL) != 0) {
        abort();
    }
    w[0].action = w[1].action = ATP_REPO_CREATE;
    w[0].path = atp_slice_str("app.bsky.feed.post/3jzfcijpj2z2a");
    w[1].path = atp_slice_str("app.bsky.feed.post/3jzfcijpj2z2b");
    w[0].record = w[1].record = rec;
    atp_car_writer_init_buf(&cw, out);
    if (atp_repo_apply_store(repo, w, 2, a, &c, NULL) != 0 ||
        atp_repo_export(repo, &cw, NULL) != 0) {
        abort();
    }
    atp_repo_destroy(repo);
    atp_arena_destroy(a);
    atp_blockstore_destroy(bs);
}

static void setup(void)
{
    pds_actor_store_opts o;
    atp_buf seed;
    pds_import_result res;
    const char *seed_path = getenv("FUZZ_LIFECYCLE_SEED");
    snprintf(g_dir, sizeof g_dir, "/tmp/fuzz_lifecycle.XXXXXX");
    if (!mkdtemp(g_dir) ||
        atp_key_import_private_hex(ATP_CURVE_K256, atp_slice_str(KEY_HEX), &g_key, NULL) != 0) {
        abort();
    }
    memset(&o, 0, sizeof o);
    o.dir = g_dir;
    if (pds_actor_store_open(&o, &g_store, NULL) != 0) {
        abort();
    }
    atexit(teardown);
    atp_buf_init(&seed, 1u << 20);
    build_seed(&seed);
    if (pds_actor_store_import(g_store, atp_slice_str(DID), atp_slice_make(seed.ptr, seed.len),
                               g_key, NULL, NULL, &res, NULL) != 0 ||
        res.n_records != 2) {
        abort();
    }
    if (seed_path) {
        FILE *f = fopen(seed_path, "wb");
        uint8_t tag = 1;
        if (!f || fwrite(&tag, 1, 1, f) != 1 || fwrite(seed.ptr, 1, seed.len, f) != seed.len) {
            abort();
        }
        fclose(f);
    }
    atp_buf_release(&seed);
}

/* ---- preferences ---- */

static char *print_list(const cJSON *list)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "preferences", cJSON_Duplicate(list, true));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void check_list(const cJSON *list, bool full)
{
    const cJSON *it;
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > PDS_PREFS_MAX_ITEMS) {
        abort();
    }
    cJSON_ArrayForEach(it, list)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "$type");
        if (!cJSON_IsObject(it) || !cJSON_IsString(t) || !pds_pref_in_namespace(t->valuestring) ||
            (!full && strcmp(t->valuestring, PDS_PREF_FULL_ONLY) == 0)) {
            abort();
        }
    }
}

static void fuzz_prefs(const uint8_t *data, size_t size, bool full)
{
    cJSON *list = NULL, *again = NULL;
    if (pds_prefs_parse(atp_slice_make(data, size), full, &list, NULL) != 0) {
        return;
    }
    check_list(list, full);
    char *s1 = print_list(list);
    if (!s1 || pds_prefs_parse(atp_slice_str(s1), full, &again, NULL) != 0) {
        abort();
    }
    char *s2 = print_list(again);
    if (!s2 || strcmp(s1, s2) != 0) {
        abort();
    }
    if (!full) {
        cJSON *as_full = NULL;
        if (pds_prefs_parse(atp_slice_make(data, size), true, &as_full, NULL) != 0) {
            abort();
        }
        cJSON_Delete(as_full);
    }
    cJSON_free(s1);
    cJSON_free(s2);
    cJSON_Delete(list);
    cJSON_Delete(again);
}

/* ---- import ---- */

static int64_t record_count(void)
{
    pds_repo_counts c;
    return pds_actor_store_counts(g_store, atp_slice_str(DID), &c, NULL) == 0 ? c.records : -1;
}

static void fuzz_import(const uint8_t *data, size_t size)
{
    pds_commit_info before, after;
    pds_import_result res;
    int64_t n_before = record_count();
    if (pds_actor_store_root(g_store, atp_slice_str(DID), &before, NULL) != 0) {
        abort();
    }
    int rc = pds_actor_store_import(g_store, atp_slice_str(DID), atp_slice_make(data, size), g_key,
                                    NULL, NULL, &res, NULL);
    if (pds_actor_store_root(g_store, atp_slice_str(DID), &after, NULL) != 0) {
        abort();
    }
    if (rc != 0) {
        if (!atp_cid_eq(&before.cid, &after.cid) || strcmp(before.rev, after.rev) != 0 ||
            record_count() != n_before) {
            abort();
        }
        return;
    }
    if (!atp_cid_eq(&res.commit.cid, &after.cid) || record_count() != (int64_t)res.n_records) {
        abort();
    }
    atp_buf car;
    atp_buf_init(&car, 64u << 20);
    if (pds_actor_store_export(g_store, atp_slice_str(DID), &car, NULL) != 0 ||
        pds_actor_store_import(g_store, atp_slice_str(DID), atp_slice_make(car.ptr, car.len), g_key,
                               NULL, NULL, &res, NULL) != 0 ||
        !atp_cid_eq(&res.commit.cid, &after.cid)) {
        abort();
    }
    atp_buf_release(&car);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_store) {
        setup();
    }
    if (size == 0) {
        return 0;
    }
    if (data[0] & 1) {
        fuzz_import(data + 1, size - 1);
    } else {
        fuzz_prefs(data + 1, size - 1, (data[0] & 2) != 0);
    }
    return 0;
}
