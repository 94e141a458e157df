/* lexicon_int.h: the compiled schema shared by the loader (lexicon.c) and the validator
 * (lexicon_validate.c). Everything lives in the catalog's arena. */
#ifndef ATP_LEXICON_INT_H
#define ATP_LEXICON_INT_H

#include "atp/lexicon.h"

typedef struct lex_node lex_node;

/* String formats (Lexicon `format`). */
typedef enum lex_format {
    LEX_FMT_NONE,
    LEX_FMT_AT_IDENTIFIER,
    LEX_FMT_AT_URI,
    LEX_FMT_CID,
    LEX_FMT_DATETIME,
    LEX_FMT_DID,
    LEX_FMT_HANDLE,
    LEX_FMT_NSID,
    LEX_FMT_TID,
    LEX_FMT_RECORD_KEY,
    LEX_FMT_URI,
    LEX_FMT_LANGUAGE,
} lex_format;

/* Record key types. */
typedef enum lex_key {
    LEX_KEY_ANY,
    LEX_KEY_TID,
    LEX_KEY_NSID,
    LEX_KEY_LITERAL,
} lex_key;

/* A reference: target "nsid#name" ("main" when the text had no fragment), linked once the
 * target is loaded. */
typedef struct lex_ref {
    atp_slice nsid, name;
    const atp_lexicon_def *def;
} lex_ref;

typedef struct lex_prop {
    atp_slice key;
    const lex_node *node;
    bool required, nullable;
} lex_prop;

enum {
    LEX_HAS_CONST = 1 << 0,
    LEX_CLOSED = 1 << 1, /* union */
};

struct lex_node {
    atp_lexicon_type type;
    unsigned flags;
    lex_format format;
    int64_t imin, imax;       /* integer minimum/maximum (INT64_MIN/INT64_MAX when absent) */
    size_t min_len, max_len;  /* string/bytes/array lengths, blob maxSize (max SIZE_MAX) */
    size_t min_g, max_g;      /* string graphemes (0 / SIZE_MAX when absent) */
    int64_t iconst;           /* integer const */
    bool bconst;              /* boolean const */
    atp_slice sconst;         /* string const */
    const atp_slice *senum;   /* string enum, or blob accept patterns */
    const int64_t *ienum;     /* integer enum */
    size_t n_enum;            /* entries of senum or ienum; 0 = no enum */
    bool has_enum;
    const lex_node *items;    /* array */
    lex_prop *props;          /* object, params */
    size_t n_props;
    lex_ref *refs;            /* ref (one), union */
    size_t n_refs;
    lex_key key;              /* record */
    atp_slice key_literal;
    const lex_node *record;   /* record: the object schema */
    const lex_node *params;   /* query, procedure, subscription */
    const lex_node *input, *output, *message;
};

struct atp_lexicon_def {
    atp_slice nsid, name;
    const lex_node *node;
};

/* Looks up "nsid#name" split in two (name "main" for a bare NSID). */
const atp_lexicon_def *atp__lexicon_lookup(const atp_lexicon *cat, atp_slice nsid,
                                           atp_slice name);

#endif
