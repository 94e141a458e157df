/* test_lexicon.c: the Lexicon catalog and validator against the interop lexicon vectors, every
 * schema under shared/lexicons, realistic app.bsky records and the document rules.
 *
 * Interop quirks (interop/README.md), decided on purpose:
 * - quirk 2 (blob refs with dag-cbor CIDs in a "valid" case): the validator does not check the
 *   blob ref's codec (spec lexicon.md §3), so that case passes; the PDS checks real blobs.
 * - quirk 3 ("$bytes": "123", non-canonical base64): accepted leniently by the JSON layer
 *   (spec data-model §4), so the "full" case passes and "unknown wrong type (bytes)" is rejected
 *   by the validator (bytes are not an object), not by the decoder.
 */
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>

#include "atp/json.h"
#include "atp/lexicon.h"
#include "t.h"

static atp_lexicon *g_cat; /* every shared lexicon + the interop catalog, loaded once */

/* ---- helpers ---- */

/* JSON written with ' for " (readable in C), decoded as atproto data into `a`. */
static atp_cbor *data(atp_arena *a, const char *text)
{
    size_t n = strlen(text);
    char *j = atp_arena_dup(a, text, n);
    atp_cbor *v = NULL;
    atp_err err;
    for (size_t i = 0; i < n; i++) {
        if (j[i] == '\'') {
            j[i] = '"';
        }
    }
    if (atp_json_decode(a, atp_slice_make(j, n), ATP_JSON_DATA, NULL, &v, &err) != 0) {
        T_FAILF("bad test JSON: %s: %s", err.msg, text);
        return NULL;
    }
    return v;
}

static int validate(const char *collection, const char *json, unsigned flags, atp_err *err)
{
    atp_arena *a = atp_arena_create(0);
    atp_cbor *v = data(a, json);
    int rc = v ? atp_lexicon_validate_record_ex(g_cat, atp_slice_str(collection), v, flags, err)
               : ATP_EINTERNAL;
    atp_arena_destroy(a);
    return rc;
}

#define REC_OK(coll, json)                                                                         \
    do {                                                                                           \
        atp_err e_;                                                                                \
        atp_err_clear(&e_);                                                                        \
        T_OKE(validate((coll), (json), 0, &e_), &e_);                                              \
    } while (0)

/* Must fail with ATP_EINVAL and a message starting with `want`. */
#define REC_BAD(coll, json, want)                                                                  \
    do {                                                                                           \
        atp_err e_;                                                                                \
        atp_err_clear(&e_);                                                                        \
        T_EQ(validate((coll), (json), 0, &e_), ATP_EINVAL);                                        \
        if (strncmp(e_.msg, (want), strlen(want)) != 0) {                                          \
            T_FAILF("message \"%s\", want \"%s\"", e_.msg, (want));                                \
        }                                                                                          \
    } while (0)

static int add_file(atp_lexicon *cat, const char *path, atp_err *err)
{
    size_t len = 0;
    char *text = t_read_file(path, &len);
    if (!text) {
        return ATP_EIO;
    }
    int rc = atp_lexicon_add_json(cat, atp_slice_make(text, len), NULL, err);
    free(text);
    return rc;
}

/* Loads every *.json under `dir` (recursively); counts files loaded and failures. */
static void add_tree(atp_lexicon *cat, const char *dir, int *loaded, int *failed)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d) {
        T_FAILF("cannot open %s", dir);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            add_tree(cat, path, loaded, failed);
        } else if (n > 5 && strcmp(e->d_name + n - 5, ".json") == 0) {
            atp_err err;
            if (add_file(cat, path, &err) != 0) {
                T_FAILF("%s: %s", path, err.msg);
                (*failed)++;
            }
            (*loaded)++;
        }
    }
    closedir(d);
}

/* A JSON vector file parsed with cJSON (owned: cJSON_Delete). */
static cJSON *vector_file(const char *rel)
{
    char *text = t_read_file(t_shared(rel), NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j) {
        T_FAILF("cannot parse %s", rel);
    }
    return j;
}

/* ---- interop vectors ---- */

static void test_catalog_loads(void)
{
    static const char *const docs[] = {"record", "query", "procedure", "subscription",
                                       "permission-set"};
    int loaded = 0, failed = 0;
    atp_err err;
    g_cat = atp_lexicon_create();
    add_tree(g_cat, t_shared("lexicons"), &loaded, &failed);
    T_EQ(failed, 0);
    T_TRUE(loaded > 200);
    t_vectors("shared/lexicons documents", loaded);
    for (size_t i = 0; i < 5; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "interop/lexicon/catalog/%s.json", docs[i]);
        T_OKE(add_file(g_cat, t_shared(rel), &err), &err);
    }
    t_vectors("interop lexicon catalog documents", 5);
    T_EQ(atp_lexicon_doc_count(g_cat), (size_t)loaded + 5);
    T_OKE(atp_lexicon_check_refs(g_cat, &err), &err);
    T_TRUE(atp_lexicon_def_count(g_cat) > atp_lexicon_doc_count(g_cat));
    const atp_lexicon_def *d = atp_lexicon_find(g_cat, ATP_SLICE_LIT("app.bsky.feed.post"));
    T_TRUE(d && atp_lexicon_def_type(d) == ATP_LEXICON_RECORD);
    d = atp_lexicon_find(g_cat, ATP_SLICE_LIT("app.bsky.feed.post#replyRef"));
    T_TRUE(d && atp_lexicon_def_type(d) == ATP_LEXICON_OBJECT);
    d = atp_lexicon_find(g_cat, ATP_SLICE_LIT("example.lexicon.query"));
    T_TRUE(d && atp_lexicon_def_type(d) == ATP_LEXICON_QUERY);
    T_TRUE(atp_lexicon_find(g_cat, ATP_SLICE_LIT("app.bsky.feed.nope")) == NULL);
    T_TRUE(atp_lexicon_find(g_cat, ATP_SLICE_LIT("#main")) == NULL);
}

static int doc_vectors(const char *rel, bool want_ok)
{
    cJSON *arr = vector_file(rel), *c;
    int n = 0;
    cJSON_ArrayForEach(c, arr)
    {
        atp_arena *a = atp_arena_create(0);
        atp_lexicon *cat = atp_lexicon_create();
        atp_cbor *doc = NULL;
        atp_err err;
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        int rc = atp_json_from_cjson(a, cJSON_GetObjectItem(c, "lexicon"), 0, NULL, &doc, &err);
        rc = rc ? rc : atp_lexicon_add_doc(cat, doc, &err);
        if ((rc == 0) != want_ok) {
            T_FAILF("%s \"%s\": rc %d %s", rel, name, rc, rc ? err.msg : "(accepted)");
        }
        n++;
        atp_lexicon_destroy(cat);
        atp_arena_destroy(a);
    }
    cJSON_Delete(arr);
    return n;
}

static void test_lexicon_docs(void)
{
    int n = doc_vectors("interop/lexicon/lexicon-valid.json", true);
    T_EQ(n, 3);
    t_vectors("lexicon-valid.json", n);
    n = doc_vectors("interop/lexicon/lexicon-invalid.json", false);
    T_EQ(n, 7);
    t_vectors("lexicon-invalid.json", n);
}

/* Validates each case's data; returns the count, adds to *decode_rejects the invalid cases the
 * JSON layer already refused. */
static int data_vectors(const char *rel, bool want_ok, int *decode_rejects)
{
    cJSON *arr = vector_file(rel), *c;
    int n = 0;
    cJSON_ArrayForEach(c, arr)
    {
        atp_arena *a = atp_arena_create(0);
        atp_cbor *v = NULL;
        atp_err err;
        const cJSON *d = cJSON_GetObjectItem(c, "data");
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const char *rkey = cJSON_GetObjectItem(c, "rkey")->valuestring;
        const char *type = cJSON_GetObjectItem(d, "$type")->valuestring;
        int rc = atp_json_from_cjson(a, d, ATP_JSON_DATA, NULL, &v, &err);
        if (rc) {
            (*decode_rejects)++;
        } else {
            rc = atp_lexicon_validate_record(g_cat, atp_slice_str(type), v, &err);
        }
        if ((rc == 0) != want_ok) {
            T_FAILF("%s \"%s\": rc %d %s", rel, name, rc, rc ? err.msg : "(accepted)");
        }
        T_OK(atp_lexicon_check_rkey(g_cat, atp_slice_str(type), atp_slice_str(rkey), NULL));
        n++;
        atp_arena_destroy(a);
    }
    cJSON_Delete(arr);
    return n;
}

static void test_record_data(void)
{
    int rejects = 0;
    int n = data_vectors("interop/lexicon/record-data-valid.json", true, &rejects);
    T_EQ(n, 3);
    T_EQ(rejects, 0);
    t_vectors("record-data-valid.json", n);
    n = data_vectors("interop/lexicon/record-data-invalid.json", false, &rejects);
    T_EQ(n, 50);
    /* every invalid case is well-formed data: the validator, not the decoder, must catch it */
    T_EQ(rejects, 0);
    t_vectors("record-data-invalid.json", n);
    atp_err err;
    T_EQ(atp_lexicon_check_rkey(g_cat, ATP_SLICE_LIT("example.lexicon.record"),
                                ATP_SLICE_LIT("demo2"), &err),
         ATP_EINVAL);
}

#define CID     "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq"
#define BLOBCID "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
#define URI     "at://did:plc:abc123/app.bsky.feed.post/3kznmn7xqxl22"
#define NOW     "2024-05-01T12:00:00.000Z"
#define POST    "{'$type':'app.bsky.feed.post','createdAt':'" NOW "',"
#define IMG(mime, size)                                                                            \
    "{'$type':'blob','ref':{'$link':'" BLOBCID "'},'mimeType':'" mime "','size':" #size "}"

/* The catalog record's messages, one per rule family. */
static void test_record_messages(void)
{
    const char *c = "example.lexicon.record";
    REC_BAD(c, "{'$type':'example.lexicon.record'}", "Record must have the property \"integer\"");
    REC_BAD(c, "{'$type':'example.lexicon.record','integer':1,'string':null}",
            "Record/string must be a string");
    REC_OK(c, "{'$type':'example.lexicon.record','integer':1,'nullableString':null}");
    REC_BAD(c, "{'$type':'example.lexicon.record','integer':1,'constInteger':41}",
            "Record/constInteger must be 42");
    REC_BAD(c, "{'$type':'example.lexicon.record','integer':1,'rangeInteger':9}",
            "Record/rangeInteger can not be less than 10");
    REC_BAD(c, "{'$type':'example.lexicon.record','integer':1,'rangeInteger':21}",
            "Record/rangeInteger can not be greater than 20");
    REC_OK(c, "{'$type':'example.lexicon.record','integer':1,'rangeInteger':20}");
    REC_OK(c, "{'$type':'example.lexicon.record','integer':1,'lenString':'0123456789'}");
    REC_BAD(c, "{'$type':'example.lexicon.record','integer':1,'lenString':'012345678'}",
            "Record/lenString must not be shorter than 10 characters");
    /* 10 two-byte letters are 20 bytes: at the byte limit, and 10 graphemes */
    REC_OK(c, "{'$type':'example.lexicon.record','integer':1,'lenString':'éééééééééé'}");
    REC_BAD(c, "{'$type':'example.lexicon.record','integer':1,'lenString':'ééééééééééé'}",
            "Record/lenString must not be longer than 20 characters");
    REC_BAD(c, "{'$type':'example.lexicon.record','integer':1,'graphemeString':'123456789'}",
            "Record/graphemeString must not be shorter than 10 graphemes");
    REC_OK(c, "{'$type':'example.lexicon.record','integer':1,'graphemeString':'1234567890'}");
    REC_BAD(c, "{'$type':'example.lexicon.record','integer':1,'enumString':'stone'}",
            "Record/enumString must be one of");
    REC_OK(c, "{'$type':'example.lexicon.record','integer':1,'knownString':'purple'}");
    REC_BAD(c, "{'$type':'example.lexicon.record','integer':1,'lenArray':[1,'x']}",
            "Record/lenArray/1 must be an integer");
    REC_BAD(c, "{'$type':'example.lexicon.record','integer':1,'closedUnion':{'$type':'x.y.z'}}",
            "Record/closedUnion $type x.y.z is not one of");
    REC_OK(c, "{'$type':'example.lexicon.record','integer':1,'union':{'$type':'x.y.z','q':1}}");
    REC_BAD(c, "{'$type':'example.lexicon.record','integer':1,'formats':{'did':'did:x'}}",
            "Record/formats/did must be a valid did");
    /* the interop "unknown wrong type" cases also lack "integer": check the rule itself */
    REC_BAD(c, "{'$type':'example.lexicon.record','integer':1,'unknown':false}",
            "Record/unknown must be an object");
    REC_BAD(c, "{'$type':'example.lexicon.record','integer':1,'unknown':{'$bytes':'123'}}",
            "Record/unknown must be an object");
    REC_BAD(c, "{'$type':'example.lexicon.record','integer':1,'unknown':" IMG("text/plain", 1) "}",
            "Record/unknown must be an object, not a blob");
    REC_OK(c, "{'$type':'example.lexicon.record','integer':1,'unknown':{'$type':'x.y.z'}}");
    REC_BAD(c, "{'$type':'example.lexicon.other','integer':1}",
            "Record/$type must be example.lexicon.record");
    REC_BAD(c, "{'integer':1}", "Record/$type must be example.lexicon.record");
}

/* ---- real app.bsky records ---- */

static void test_posts(void)
{
    const char *p = "app.bsky.feed.post";
    REC_OK(p, POST "'text':'hello world'}");
    REC_OK(p, POST "'text':'','langs':['en','pt-BR'],'tags':['a','b']}");
    REC_OK(p, POST "'text':'hi @alice.test see https://example.com #tag','facets':["
                   "{'index':{'byteStart':3,'byteEnd':14},'features':[{'$type':"
                   "'app.bsky.richtext.facet#mention','did':'did:plc:abc123'}]},"
                   "{'index':{'byteStart':19,'byteEnd':38},'features':[{'$type':"
                   "'app.bsky.richtext.facet#link','uri':'https://example.com'}]},"
                   "{'index':{'byteStart':39,'byteEnd':43},'features':[{'$type':"
                   "'app.bsky.richtext.facet#tag','tag':'tag'}]}]}");
    REC_OK(p, POST "'text':'reply','reply':{'root':{'uri':'" URI "','cid':'" CID "'},"
                   "'parent':{'uri':'" URI "','cid':'" CID "'}}}");
    REC_OK(p,
           POST "'text':'pics','embed':{'$type':'app.bsky.embed.images','images':["
                "{'image':" IMG("image/jpeg", 123456) ",'alt':'a cat',"
                                                      "'aspectRatio':{'width':4,'height':3}}]}}");
    REC_OK(p, POST "'text':'','embed':{'$type':'app.bsky.embed.external','external':{"
                   "'uri':'https://example.com/a','title':'A','description':'',"
                   "'thumb':" IMG("image/png", 1000) "}}}");
    REC_OK(p, POST "'text':'quote','embed':{'$type':'app.bsky.embed.record','record':{"
                   "'uri':'" URI "','cid':'" CID "'}}}");
    REC_OK(p,
           POST "'text':'','embed':{'$type':'app.bsky.embed.recordWithMedia','record':{"
                "'record':{'uri':'" URI "','cid':'" CID "'}},'media':{'$type':"
                "'app.bsky.embed.images','images':[{'image':" IMG("image/png", 1) ",'alt':''}]}}}");
    REC_OK(p, POST "'text':'','embed':{'$type':'app.bsky.embed.video','video':" IMG(
                  "video/mp4",
                  5000000) ",'captions':[{'lang':'en','file':" IMG("text/vtt",
                                                                   100) "}],'alt':'clip'}}");
    /* open union: an embed type this catalog does not know is accepted as opaque */
    REC_OK(p, POST "'text':'','embed':{'$type':'com.example.embed.poll','options':[1,2]}}");
    REC_OK(p, POST "'text':'x','labels':{'$type':'com.atproto.label.defs#selfLabels',"
                   "'values':[{'val':'nudity'}]},'unknownField':{'anything':true}}");
}

static void test_post_rejections(void)
{
    const char *p = "app.bsky.feed.post";
    char text[8192];
    int n = snprintf(text, sizeof text, POST "'text':'");
    for (int i = 0; i < 301; i++) {
        n += snprintf(text + n, sizeof text - (size_t)n, "\xf0\x9f\x98\x80"); /* 1204 bytes */
    }
    snprintf(text + n, sizeof text - (size_t)n, "'}");
    REC_BAD(p, text, "Record/text must not be longer than 300 graphemes");
    n = snprintf(text, sizeof text, POST "'text':'");
    memset(text + n, 'a', 3001);
    snprintf(text + n + 3001, sizeof text - (size_t)n - 3001, "'}");
    REC_BAD(p, text, "Record/text must not be longer than 3000 characters");
    /* 300 family emoji (7 code points, 25 bytes each) are 300 graphemes: OK by graphemes but
     * 7500 bytes: rejected by bytes. 100 of them (2500 bytes) pass. */
    n = snprintf(text, sizeof text, POST "'text':'");
    for (int i = 0; i < 100; i++) {
        n += snprintf(text + n, sizeof text - (size_t)n,
                      "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7"
                      "\xe2\x80\x8d\xf0\x9f\x91\xa6");
    }
    snprintf(text + n, sizeof text - (size_t)n, "'}");
    REC_OK(p, text);
}

static void test_post_rejections2(void)
{
    const char *p = "app.bsky.feed.post";
    REC_BAD(p, "{'$type':'app.bsky.feed.post','text':'x','createdAt':'2024-05-01 12:00:00'}",
            "Record/createdAt must be an valid atproto datetime");
    REC_BAD(p, "{'$type':'app.bsky.feed.like','text':'x','createdAt':'" NOW "'}",
            "Record/$type must be app.bsky.feed.post");
    REC_BAD(p, "{'$type':'app.bsky.feed.post','text':'x'}",
            "Record must have the property \"createdAt\"");
    REC_BAD(p, POST "'text':3}", "Record/text must be a string");
    REC_BAD(p, POST "'text':'x','reply':null}", "Record/reply must be an object");
    REC_BAD(p, POST "'text':'x','langs':['en','english!']}",
            "Record/langs/1 must be a well-formed BCP 47 language tag");
    REC_BAD(p, POST "'text':'x','langs':['en','fr','de','es']}",
            "Record/langs must not have more than 3 elements");
    REC_BAD(p,
            POST "'text':'x','facets':[{'index':{'byteStart':0,'byteEnd':1},"
                 "'features':[{'did':'did:plc:abc'}]}]}",
            "Record/facets/0/features/0 must be an object which includes the \"$type\" property");
    REC_BAD(p,
            POST "'text':'x','facets':[{'index':{'byteStart':0,'byteEnd':1},"
                 "'features':[{'$type':'app.bsky.richtext.facet#mention','did':'alice.test'}]}]}",
            "Record/facets/0/features/0/did must be a valid did");
    REC_BAD(p, POST "'text':'x','facets':[{'index':{'byteStart':0},'features':[]}]}",
            "Record/facets/0/index must have the property \"byteEnd\"");
    REC_BAD(p,
            POST "'text':'x','embed':{'$type':'app.bsky.embed.images','images':["
                 "{'image':" IMG("image/png", 1) ",'alt':5}]}}",
            "Record/embed/images/0/alt must be a string");
    REC_BAD(p,
            POST "'text':'x','embed':{'$type':'app.bsky.embed.images','images':["
                 "{'image':" IMG("text/plain", 1) ",'alt':''}]}}",
            "Record/embed/images/0/image mimeType text/plain is not accepted");
    REC_BAD(p,
            POST "'text':'x','embed':{'$type':'app.bsky.embed.images','images':["
                 "{'image':" IMG("image/png", 2000001) ",'alt':''}]}}",
            "Record/embed/images/0/image is larger than the maximum of 2000000 bytes");
    REC_BAD(p,
            POST "'text':'x','embed':{'$type':'app.bsky.embed.images','images':["
                 "{'image':{'cid':'" BLOBCID "','mimeType':'image/png'},'alt':''}]}}",
            "Record/embed/images/0/image should be a blob ref");
    REC_BAD(p,
            POST "'text':'x','embed':{'$type':'app.bsky.embed.video','video':" IMG(
                "video/quicktime", 5) "}}",
            "Record/embed/video mimeType video/quicktime is not accepted");
    REC_BAD(p,
            POST "'text':'x','embed':{'$type':'app.bsky.embed.record','record':{"
                 "'uri':'https://example.com','cid':'" CID "'}}}",
            "Record/embed/record/uri must be a valid at-uri");
    REC_BAD(p,
            POST "'text':'x','embed':{'$type':'app.bsky.embed.recordWithMedia','record':{"
                 "'record':{'uri':'" URI "','cid':'" CID "'}},'media':{'$type':"
                 "'app.bsky.embed.images','images':[{'image':" IMG("image/png", 1) "}]}}}",
            "Record/embed/media/images/0 must have the property \"alt\"");
}

static void test_other_records(void)
{
    const char *strong = "'subject':{'uri':'" URI "','cid':'" CID "'},'createdAt':'" NOW "'}";
    char buf[512];
    snprintf(buf, sizeof buf, "{'$type':'app.bsky.feed.like',%s", strong);
    REC_OK("app.bsky.feed.like", buf);
    snprintf(buf, sizeof buf, "{'$type':'app.bsky.feed.repost',%s", strong);
    REC_OK("app.bsky.feed.repost", buf);
    REC_BAD("app.bsky.feed.like",
            "{'$type':'app.bsky.feed.like','subject':{'uri':'" URI "'},'createdAt':'" NOW "'}",
            "Record/subject must have the property \"cid\"");
    REC_OK("app.bsky.graph.follow",
           "{'$type':'app.bsky.graph.follow','subject':'did:plc:abc','createdAt':'" NOW "'}");
    REC_BAD("app.bsky.graph.follow",
            "{'$type':'app.bsky.graph.follow','subject':'alice.test','createdAt':'" NOW "'}",
            "Record/subject must be a valid did");
    REC_OK("app.bsky.graph.block",
           "{'$type':'app.bsky.graph.block','subject':'did:web:x.com','createdAt':'" NOW "'}");
    REC_OK("app.bsky.graph.list", "{'$type':'app.bsky.graph.list','name':'Friends','purpose':"
                                  "'app.bsky.graph.defs#curatelist','createdAt':'" NOW "'}");
    REC_BAD("app.bsky.graph.list",
            "{'$type':'app.bsky.graph.list','purpose':"
            "'app.bsky.graph.defs#curatelist','createdAt':'" NOW "'}",
            "Record must have the property \"name\"");
    REC_OK("app.bsky.graph.listitem",
           "{'$type':'app.bsky.graph.listitem','subject':"
           "'did:plc:abc','list':'at://did:plc:abc/app.bsky.graph.list/3kznmn7xqxl22',"
           "'createdAt':'" NOW "'}");
    REC_OK("app.bsky.actor.profile", "{'$type':'app.bsky.actor.profile','displayName':'Alice',"
                                     "'description':'hi','avatar':" IMG("image/jpeg", 5000) "}");
    REC_BAD("app.bsky.actor.profile",
            "{'$type':'app.bsky.actor.profile','avatar':" IMG("image/gif", 5000) "}",
            "Record/avatar mimeType image/gif is not accepted");
    REC_OK("app.bsky.feed.generator",
           "{'$type':'app.bsky.feed.generator','did':"
           "'did:web:feed.example.com','displayName':'Cats','createdAt':'" NOW "'}");
    REC_OK("app.bsky.feed.threadgate",
           "{'$type':'app.bsky.feed.threadgate','post':'" URI "',"
           "'allow':[{'$type':'app.bsky.feed.threadgate#mentionRule'},{'$type':"
           "'app.bsky.feed.threadgate#listRule','list':'at://did:plc:a/app.bsky.graph.list/x'}],"
           "'createdAt':'" NOW "'}");
    REC_BAD("app.bsky.feed.threadgate",
            "{'$type':'app.bsky.feed.threadgate','post':'" URI "',"
            "'allow':[{'$type':'app.bsky.feed.threadgate#listRule'}],'createdAt':'" NOW "'}",
            "Record/allow/0 must have the property \"list\"");
    REC_OK("app.bsky.feed.postgate",
           "{'$type':'app.bsky.feed.postgate','post':'" URI "',"
           "'embeddingRules':[{'$type':'app.bsky.feed.postgate#disableRule'}],"
           "'detachedEmbeddingUris':['" URI "'],'createdAt':'" NOW "'}");
    REC_OK("app.bsky.graph.starterpack",
           "{'$type':'app.bsky.graph.starterpack','name':'Pack',"
           "'list':'at://did:plc:a/app.bsky.graph.list/x','feeds':[{'uri':"
           "'at://did:plc:a/app.bsky.feed.generator/cats'}],'createdAt':'" NOW "'}");
    REC_OK("app.bsky.labeler.service", "{'$type':'app.bsky.labeler.service','policies':"
                                       "{'labelValues':['spam','!hide']},'createdAt':'" NOW "'}");
    REC_BAD("app.bsky.labeler.service",
            "{'$type':'app.bsky.labeler.service','createdAt':'" NOW "'}",
            "Record must have the property \"policies\"");
}

static void test_lookup_status_and_rkeys(void)
{
    atp_err err;
    atp_arena *a = atp_arena_create(0);
    atp_cbor *v = data(a, "{'$type':'com.example.unknown.thing','x':1}");
    T_EQ(atp_lexicon_validate_record(g_cat, ATP_SLICE_LIT("com.example.unknown.thing"), v, &err),
         ATP_ENOTFOUND);
    T_EQ(atp_lexicon_validate_record(g_cat, ATP_SLICE_LIT("app.bsky.feed.getTimeline"), v, &err),
         ATP_EINVAL);
    T_EQ(atp_lexicon_check_rkey(g_cat, ATP_SLICE_LIT("com.example.unknown.thing"),
                                ATP_SLICE_LIT("x"), &err),
         ATP_ENOTFOUND);
    atp_slice post = ATP_SLICE_LIT("app.bsky.feed.post");
    atp_slice prof = ATP_SLICE_LIT("app.bsky.actor.profile");
    T_OK(atp_lexicon_check_rkey(g_cat, post, ATP_SLICE_LIT("3kznmn7xqxl22"), &err));
    T_EQ(atp_lexicon_check_rkey(g_cat, post, ATP_SLICE_LIT("self"), &err), ATP_EINVAL);
    T_OK(atp_lexicon_check_rkey(g_cat, prof, ATP_SLICE_LIT("self"), &err));
    T_EQ(atp_lexicon_check_rkey(g_cat, prof, ATP_SLICE_LIT("3kznmn7xqxl22"), &err), ATP_EINVAL);
    T_OK(atp_lexicon_check_rkey(g_cat, ATP_SLICE_LIT("app.bsky.feed.generator"),
                                ATP_SLICE_LIT("cats-feed"), &err));
    T_EQ(atp_lexicon_check_rkey(g_cat, ATP_SLICE_LIT("app.bsky.feed.generator"),
                                ATP_SLICE_LIT("a/b"), &err),
         ATP_EINVAL);
    atp_arena_destroy(a);
}

static void test_legacy_blob(void)
{
    atp_err err;
    const char *rec =
        "{'$type':'app.bsky.actor.profile','avatar':{'cid':'" BLOBCID "','mimeType':'image/png'}}";
    T_EQ(validate("app.bsky.actor.profile", rec, 0, &err), ATP_EINVAL);
    T_STREQ(err.msg, "Record/avatar should be a blob ref");
    T_OKE(validate("app.bsky.actor.profile", rec, ATP_LEXICON_LEGACY_BLOB, &err), &err);
    /* the accept list still applies to legacy refs */
    T_EQ(validate("app.bsky.actor.profile",
                  "{'$type':'app.bsky.actor.profile','avatar':{'cid':'" BLOBCID
                  "','mimeType':'image/gif'}}",
                  ATP_LEXICON_LEGACY_BLOB, &err),
         ATP_EINVAL);
}

static int xrpc(const char *nsid, atp_lexicon_part part, const char *json, atp_err *err)
{
    atp_arena *a = atp_arena_create(0);
    atp_cbor *v = data(a, json);
    int rc =
        v ? atp_lexicon_validate_xrpc(g_cat, atp_slice_str(nsid), part, v, 0, err) : ATP_EINTERNAL;
    atp_arena_destroy(a);
    return rc;
}

static void test_xrpc_and_generic(void)
{
    atp_err err;
    const char *feed = "app.bsky.feed.getAuthorFeed";
    T_OKE(xrpc(feed, ATP_LEXICON_PART_PARAMS, "{'actor':'alice.test','limit':50}", &err), &err);
    T_EQ(xrpc(feed, ATP_LEXICON_PART_PARAMS, "{'actor':'alice.test','limit':500}", &err),
         ATP_EINVAL);
    T_STREQ(err.msg, "Params/limit can not be greater than 100");
    T_EQ(xrpc(feed, ATP_LEXICON_PART_PARAMS, "{'limit':5}", &err), ATP_EINVAL);
    T_STREQ(err.msg, "Params must have the property \"actor\"");
    const char *cr = "com.atproto.repo.createRecord";
    T_OKE(xrpc(cr, ATP_LEXICON_PART_INPUT,
               "{'repo':'alice.test','collection':"
               "'app.bsky.feed.post','record':{'text':'x'}}",
               &err),
          &err);
    T_EQ(xrpc(cr, ATP_LEXICON_PART_INPUT, "{'repo':'alice.test','collection':'x'}", &err),
         ATP_EINVAL);
    T_OKE(xrpc(cr, ATP_LEXICON_PART_OUTPUT, "{'uri':'" URI "','cid':'" CID "'}", &err), &err);
    T_EQ(xrpc("app.bsky.feed.post", ATP_LEXICON_PART_PARAMS, "{}", &err), ATP_EINVAL);
    T_EQ(xrpc("com.example.nope", ATP_LEXICON_PART_PARAMS, "{}", &err), ATP_ENOTFOUND);
    atp_arena *a = atp_arena_create(0);
    atp_cbor *v = data(a, "{'uri':'" URI "','cid':'" CID "'}");
    T_OK(atp_lexicon_validate(g_cat, ATP_SLICE_LIT("com.atproto.repo.strongRef"), v, 0, &err));
    T_EQ(atp_lexicon_validate(g_cat, ATP_SLICE_LIT("app.bsky.feed.defs#postView"), v, 0, &err),
         ATP_EINVAL);
    T_STREQ(err.msg, "Value must have the property \"author\"");
    T_EQ(atp_lexicon_validate(g_cat, ATP_SLICE_LIT("app.bsky.feed.getTimeline"), v, 0, &err),
         ATP_EINVAL);
    T_EQ(atp_lexicon_validate(g_cat, ATP_SLICE_LIT("x.y.z#w"), v, 0, &err), ATP_ENOTFOUND);
    atp_arena_destroy(a);
}

/* ---- document rules beyond the vectors ---- */

static int add_text(atp_lexicon *cat, const char *json, atp_err *err)
{
    atp_arena *a = atp_arena_create(0);
    size_t n = strlen(json);
    char *j = atp_arena_dup(a, json, n);
    for (size_t i = 0; i < n; i++) {
        if (j[i] == '\'') {
            j[i] = '"';
        }
    }
    int rc = atp_lexicon_add_json(cat, atp_slice_make(j, n), NULL, err);
    atp_arena_destroy(a);
    return rc;
}

#define DOC(defs) "{'lexicon':1,'id':'com.example.t','defs':{" defs "}}"

static void test_doc_rules(void)
{
    static const char *const bad[] = {
        DOC(""),
        "{'lexicon':2,'id':'com.example.t','defs':{'a':{'type':'token'}}}",
        "{'lexicon':1,'id':'com.example.t'}",
        "[1]",
        DOC("'a':{'type':'union','refs':[]}"),
        DOC("'a':{'type':'params'}"),
        DOC("'a':{'type':'bogus'}"),
        DOC("'a':{'description':'no type'}"),
        DOC("'main':{'type':'object','properties':{'x':{'type':'token'}}}"),
        DOC("'main':{'type':'object','properties':{'x':{'type':'record','record':{}}}}"),
        DOC("'main':{'type':'object','required':['y'],'properties':{'x':{'type':'integer'}}}"),
        DOC("'a':{'type':'string','format':'email'}"),
        DOC("'a':{'type':'string','maxLength':-1}"),
        DOC("'a':{'type':'string','maxLength':'10'}"),
        DOC("'a':{'type':'integer','enum':['a']}"),
        DOC("'a':{'type':'array'}"),
        DOC("'a':{'type':'array','items':{'type':'ref','ref':'not an nsid'}}"),
        DOC("'a':{'type':'array','items':{'type':'ref','ref':'#'}}"),
        DOC("'main':{'type':'record','key':'uuid','record':{'type':'object'}}"),
        DOC("'main':{'type':'record','key':'any'}"),
        DOC("'main':{'type':'query','parameters':{'type':'object'}}"),
        DOC("'main':{'type':'query','parameters':{'type':'params','properties':"
            "{'o':{'type':'object'}}}}"),
        DOC("'main':{'type':'query','output':{'schema':{'type':'object'}}}"),
        DOC("'main':{'type':'procedure','input':{'encoding':'application/json',"
            "'schema':{'type':'string'}}}"),
        DOC("'main':{'type':'query','errors':[{'description':'no name'}]}"),
        DOC("'main':{'type':'permission-set','permissions':[{'type':'perm'}]}"),
        DOC("'main':{'type':'boolean','const':1}"),
    };
    atp_err err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        atp_lexicon *cat = atp_lexicon_create();
        if (add_text(cat, bad[i], &err) == 0) {
            T_FAILF("accepted bad document %zu: %s", i, bad[i]);
        }
        T_EQ(atp_lexicon_doc_count(cat), 0);
        T_EQ(atp_lexicon_def_count(cat), 0);
        atp_lexicon_destroy(cat);
    }
}

/* Refs wait for their targets; messages name the document and def. */
static void test_doc_refs(void)
{
    atp_err err;
    atp_lexicon *cat = atp_lexicon_create();
    T_EQ(add_text(cat, DOC("'a':{'type':'bogus'}"), &err), ATP_EINVAL);
    T_STREQ(err.msg, "com.example.t#a: unknown type \"bogus\"");
    T_OKE(add_text(cat,
                   DOC("'main':{'type':'object','properties':{'r':{'type':'ref','ref':"
                       "'com.example.u#x'}}}"),
                   &err),
          &err);
    T_EQ(add_text(cat, DOC("'other':{'type':'token'},'main':{'type':'token'}"), &err),
         ATP_ECONFLICT);
    T_EQ(atp_lexicon_check_refs(cat, &err), ATP_ENOTFOUND);
    T_STREQ(err.msg, "1 unresolved refs, first: com.example.u#x");
    atp_arena *a = atp_arena_create(0);
    atp_cbor *v = data(a, "{'r':{}}");
    T_EQ(atp_lexicon_validate(cat, ATP_SLICE_LIT("com.example.t"), v, 0, &err), ATP_EINVAL);
    T_STREQ(err.msg, "Value/r refers to unknown schema com.example.u#x");
    /* a later document brings the target: the ref is linked then */
    T_OKE(add_text(cat,
                   "{'lexicon':1,'id':'com.example.u','defs':{'x':{'type':'object',"
                   "'required':['n'],'properties':{'n':{'type':'integer'}}}}}",
                   &err),
          &err);
    T_OK(atp_lexicon_check_refs(cat, &err));
    T_EQ(atp_lexicon_validate(cat, ATP_SLICE_LIT("com.example.t"), v, 0, &err), ATP_EINVAL);
    T_STREQ(err.msg, "Value/r must have the property \"n\"");
    T_EQ(atp_lexicon_doc_count(cat), 2);
    atp_arena_destroy(a);
    atp_lexicon_destroy(cat);
}

/* A self-referencing schema: recursion is bounded by ATP_LEXICON_MAX_DEPTH. */
static void test_depth(void)
{
    atp_lexicon *cat = atp_lexicon_create();
    atp_arena *a = atp_arena_create(0);
    atp_err err;
    T_OKE(add_text(cat,
                   DOC("'main':{'type':'object','properties':{'next':{'type':'ref',"
                       "'ref':'#main'},'n':{'type':'integer'}}}"),
                   &err),
          &err);
    atp_cbor *v = atp_cbor_new_map(a, 0);
    for (int i = 0; i < 100; i++) {
        atp_cbor *m = atp_cbor_new_map(a, 1);
        m->u.map.pairs[0].key = ATP_SLICE_LIT("next");
        m->u.map.pairs[0].val = *v;
        v = m;
        if (i == 20) {
            T_OKE(atp_lexicon_validate(cat, ATP_SLICE_LIT("com.example.t"), v, 0, &err), &err);
        }
    }
    T_EQ(atp_lexicon_validate(cat, ATP_SLICE_LIT("com.example.t"), v, 0, &err), ATP_EDEPTH);
    atp_arena_destroy(a);
    atp_lexicon_destroy(cat);
}

static void test_mime(void)
{
    T_TRUE(atp_lexicon_mime_matches(ATP_SLICE_LIT("*/*"), ATP_SLICE_LIT("text/plain")));
    T_TRUE(atp_lexicon_mime_matches(ATP_SLICE_LIT("image/*"), ATP_SLICE_LIT("image/png")));
    T_TRUE(atp_lexicon_mime_matches(ATP_SLICE_LIT("image/*"), ATP_SLICE_LIT("IMAGE/PNG")));
    T_FALSE(atp_lexicon_mime_matches(ATP_SLICE_LIT("image/*"), ATP_SLICE_LIT("image/")));
    T_FALSE(atp_lexicon_mime_matches(ATP_SLICE_LIT("image/*"), ATP_SLICE_LIT("imagex/png")));
    T_FALSE(atp_lexicon_mime_matches(ATP_SLICE_LIT("image/*"), ATP_SLICE_LIT("video/mp4")));
    T_TRUE(atp_lexicon_mime_matches(ATP_SLICE_LIT("video/mp4"), ATP_SLICE_LIT("video/mp4")));
    T_FALSE(atp_lexicon_mime_matches(ATP_SLICE_LIT("video/mp4"), ATP_SLICE_LIT("video/mp4x")));
    T_FALSE(atp_lexicon_mime_matches(ATP_SLICE_LIT("image/p*"), ATP_SLICE_LIT("image/png")));
}

/* Not a benchmark: shows the cost of validating a typical post stays small. */
static void test_speed(void)
{
    atp_arena *a = atp_arena_create(0);
    atp_cbor *v = data(a, POST "'text':'hello @alice.test','langs':['en'],'facets':["
                               "{'index':{'byteStart':6,'byteEnd':17},'features':[{'$type':"
                               "'app.bsky.richtext.facet#mention','did':'did:plc:abc123'}]}]}");
    struct timespec t0, t1;
    int bad = 0, n = 20000;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        bad +=
            atp_lexicon_validate_record(g_cat, ATP_SLICE_LIT("app.bsky.feed.post"), v, NULL) != 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double us =
        ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) / n;
    printf("# post validation: %.2f us each\n", us);
    T_EQ(bad, 0);
    atp_arena_destroy(a);
}

int main(void)
{
    T_RUN(test_catalog_loads);
    T_RUN(test_lexicon_docs);
    T_RUN(test_record_data);
    T_RUN(test_record_messages);
    T_RUN(test_posts);
    T_RUN(test_post_rejections);
    T_RUN(test_post_rejections2);
    T_RUN(test_other_records);
    T_RUN(test_lookup_status_and_rkeys);
    T_RUN(test_legacy_blob);
    T_RUN(test_xrpc_and_generic);
    T_RUN(test_doc_rules);
    T_RUN(test_doc_refs);
    T_RUN(test_depth);
    T_RUN(test_mime);
    T_RUN(test_speed);
    atp_lexicon_destroy(g_cat);
    return t_done();
}
