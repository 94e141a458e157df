/* pds/src/lexicons.c: loading the shipped Lexicon folder (see lexicons.h). */
#include "lexicons.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PDS_LEXICON_DIR
#define PDS_LEXICON_DIR "pds/lexicons"
#endif

#define LEX_FILE_MAX  (1u << 20)
#define LEX_FILES_MAX 4096
#define LEX_DEPTH_MAX 8

const char *pds_lexicons_default_dir(void)
{
    return PDS_LEXICON_DIR;
}

/* Reads a whole file of at most LEX_FILE_MAX bytes into `b`. */
static int read_file(const char *path, atp_buf *b, atp_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return atp_err_set(err, ATP_EIO, 0, "cannot open %s", path);
    }
    uint8_t chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        atp_buf_append(b, chunk, n);
    }
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad || b->err) {
        return atp_err_set(err, bad ? ATP_EIO : ATP_ELIMIT, 0, "cannot read %s", path);
    }
    return 0;
}

static int add_file(atp_lexicon *cat, const char *path, size_t *count, atp_err *err)
{
    if (++*count > LEX_FILES_MAX) {
        return atp_err_set(err, ATP_ELIMIT, 0, "too many lexicon files");
    }
    atp_buf b;
    atp_buf_init(&b, LEX_FILE_MAX);
    int rc = read_file(path, &b, err);
    atp_err e;
    if (rc == 0 && (rc = atp_lexicon_add_json(cat, atp_buf_slice(&b), NULL, &e)) != 0) {
        atp_err_set(err, rc, 0, "%s: %s", path, e.msg);
    }
    atp_buf_release(&b);
    return rc;
}

static bool is_json_name(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".json") == 0;
}

/* Depth-first walk; entries are visited in readdir order (the catalog links refs whatever the
 * order documents arrive in). */
static int walk(atp_lexicon *cat, const char *dir, int depth, size_t *count, atp_err *err)
{
    if (depth > LEX_DEPTH_MAX) {
        return atp_err_set(err, ATP_ELIMIT, 0, "lexicon folders nested too deep");
    }
    DIR *d = opendir(dir);
    if (!d) {
        return atp_err_set(err, ATP_EIO, 0, "cannot open folder %s", dir);
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char path[4096];
        if (e->d_name[0] == '.') {
            continue;
        }
        int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof path) {
            rc = atp_err_set(err, ATP_ELIMIT, 0, "path too long under %s", dir);
        } else if (e->d_type == DT_DIR) {
            rc = walk(cat, path, depth + 1, count, err);
        } else if (is_json_name(e->d_name)) {
            rc = add_file(cat, path, count, err);
        }
    }
    closedir(d);
    return rc;
}

int pds_lexicons_load(const char *dir, atp_lexicon **out, size_t *n_docs, atp_err *err)
{
    atp_lexicon *cat = atp_lexicon_create();
    size_t count = 0;
    int rc = walk(cat, dir ? dir : pds_lexicons_default_dir(), 0, &count, err);
    rc = rc ? rc : atp_lexicon_check_refs(cat, err);
    if (rc != 0) {
        atp_lexicon_destroy(cat);
        return rc;
    }
    if (n_docs) {
        *n_docs = atp_lexicon_doc_count(cat);
    }
    *out = cat;
    return 0;
}
