/* buf.c: allocators, slices, bounded buffers, errors and the arena. */
#include "atp/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocation ---- */

static void oom(size_t n)
{
    fprintf(stderr, "atp: out of memory allocating %zu bytes\n", n);
    abort();
}

void *atp_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        oom(n);
    }
    return p;
}

void *atp_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        oom(count * size);
    }
    return p;
}

void *atp_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        oom(n);
    }
    return q;
}

char *atp_xstrndup(const char *s, size_t len)
{
    char *p = atp_xmalloc(len + 1);
    if (len) {
        memcpy(p, s, len);
    }
    p[len] = '\0';
    return p;
}

/* ---- errors ---- */

const char *atp_err_name(int code)
{
    switch (code) {
    case ATP_OK:
        return "ATP_OK";
#define ATP__ERR_NAME(name, val, xrpc, status, text)                                               \
    case name:                                                                                     \
        return #name;
        ATP_ERR_MAP(ATP__ERR_NAME)
#undef ATP__ERR_NAME
    default:
        return "ATP_E?";
    }
}

const char *atp_err_xrpc(int code)
{
    switch (code) {
#define ATP__ERR_XRPC(name, val, xrpc, status, text)                                               \
    case name:                                                                                     \
        return xrpc;
        ATP_ERR_MAP(ATP__ERR_XRPC)
#undef ATP__ERR_XRPC
    default:
        return "InternalServerError";
    }
}

int atp_err_status(int code)
{
    switch (code) {
    case ATP_OK:
        return 200;
#define ATP__ERR_STATUS(name, val, xrpc, status, text)                                             \
    case name:                                                                                     \
        return status;
        ATP_ERR_MAP(ATP__ERR_STATUS)
#undef ATP__ERR_STATUS
    default:
        return 500;
    }
}

const char *atp_err_text(int code)
{
    switch (code) {
    case ATP_OK:
        return "success";
#define ATP__ERR_TEXT(name, val, xrpc, status, text)                                               \
    case name:                                                                                     \
        return text;
        ATP_ERR_MAP(ATP__ERR_TEXT)
#undef ATP__ERR_TEXT
    default:
        return "unknown error";
    }
}

int atp_err_set(atp_err *err, int code, size_t off, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        err->off = off;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void atp_err_clear(atp_err *err)
{
    if (err) {
        err->code = ATP_OK;
        err->off = 0;
        err->msg[0] = '\0';
    }
}

/* ---- slices ---- */

atp_slice atp_slice_str(const char *s)
{
    return s ? atp_slice_make(s, strlen(s)) : atp_slice_make(NULL, 0);
}

bool atp_slice_eq(atp_slice a, atp_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

bool atp_slice_eq_str(atp_slice a, const char *s)
{
    return atp_slice_eq(a, atp_slice_str(s));
}

bool atp_slice_has_prefix(atp_slice s, atp_slice prefix)
{
    return s.len >= prefix.len && (prefix.len == 0 || memcmp(s.ptr, prefix.ptr, prefix.len) == 0);
}

int atp_slice_cmp(atp_slice a, atp_slice b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c != 0) {
        return c;
    }
    return (a.len > b.len) - (a.len < b.len);
}

atp_slice atp_slice_sub(atp_slice s, size_t off, size_t len)
{
    if (off > s.len) {
        off = s.len;
    }
    if (len > s.len - off) {
        len = s.len - off;
    }
    return atp_slice_make(s.ptr ? s.ptr + off : NULL, len);
}

/* ---- bounded buffer ---- */

void atp_buf_init(atp_buf *b, size_t max)
{
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : ATP_BUF_MAX_DEFAULT;
    b->err = 0;
}

void atp_buf_release(atp_buf *b)
{
    free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->err = 0;
}

void atp_buf_reset(atp_buf *b)
{
    b->len = 0;
    b->err = 0;
}

uint8_t *atp_buf_reserve(atp_buf *b, size_t n)
{
    size_t need;
    if (b->err) {
        return NULL;
    }
    if (__builtin_add_overflow(b->len, n, &need) || need > b->max) {
        b->err = ATP_ELIMIT;
        return NULL;
    }
    /* +1 keeps room for the NUL that atp_buf_take adds. */
    if (need + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need + 1) {
            cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
        }
        b->ptr = atp_xrealloc(b->ptr, cap);
        b->cap = cap;
    }
    return b->ptr + b->len;
}

void atp_buf_commit(atp_buf *b, size_t n)
{
    if (!b->err) {
        b->len += n;
    }
}

void atp_buf_append(atp_buf *b, const void *p, size_t n)
{
    uint8_t *dst = atp_buf_reserve(b, n);
    if (dst && n) {
        memcpy(dst, p, n);
        b->len += n;
    }
}

void atp_buf_append_byte(atp_buf *b, uint8_t c)
{
    atp_buf_append(b, &c, 1);
}

void atp_buf_append_slice(atp_buf *b, atp_slice s)
{
    atp_buf_append(b, s.ptr, s.len);
}

void atp_buf_append_str(atp_buf *b, const char *s)
{
    atp_buf_append(b, s, strlen(s));
}

void atp_buf_printf(atp_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    int n;
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->err = ATP_EINVAL;
        return;
    }
    if ((size_t)n < sizeof small) {
        atp_buf_append(b, small, (size_t)n);
        return;
    }
    uint8_t *dst = atp_buf_reserve(b, (size_t)n + 1);
    if (dst) {
        va_start(ap, fmt);
        vsnprintf((char *)dst, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
    }
}

uint8_t *atp_buf_take(atp_buf *b, size_t *len_out)
{
    uint8_t *p;
    if (b->err) {
        return NULL;
    }
    if (!b->ptr) {
        b->ptr = atp_xmalloc(1);
        b->cap = 1;
    }
    b->ptr[b->len] = 0;
    p = b->ptr;
    if (len_out) {
        *len_out = b->len;
    }
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

/* ---- arena ---- */

struct arena_chunk {
    struct arena_chunk *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    _Alignas(16) uint8_t data[];
};

struct atp_arena {
    struct arena_chunk *head; /* current chunk; the first one is kept across resets */
    struct arena_chunk *first;
    size_t chunk;
    size_t used;
};

static struct arena_chunk *chunk_new(size_t size)
{
    struct arena_chunk *c = atp_xmalloc(sizeof *c + size);
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

atp_arena *atp_arena_create(size_t chunk)
{
    atp_arena *a = atp_xmalloc(sizeof *a);
    a->chunk = chunk ? chunk : 16384;
    a->first = chunk_new(a->chunk);
    a->head = a->first;
    a->used = 0;
    return a;
}

static void free_chain(struct arena_chunk *c, const struct arena_chunk *stop)
{
    while (c && c != stop) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
}

void atp_arena_destroy(atp_arena *a)
{
    if (!a) {
        return;
    }
    free_chain(a->head, NULL);
    free(a);
}

void atp_arena_reset(atp_arena *a)
{
    /* Chunks form a list from head back to first; free all but first. */
    free_chain(a->head, a->first);
    a->first->used = 0;
    a->first->next = NULL;
    a->head = a->first;
    a->used = 0;
}

void *atp_arena_alloc(atp_arena *a, size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    struct arena_chunk *c = a->head;
    void *p;
    if (need < n) {
        oom(n);
    }
    if (c->size - c->used < need) {
        size_t size = need > a->chunk ? need : a->chunk;
        c = chunk_new(size);
        c->next = a->head;
        a->head = c;
    }
    p = c->data + c->used;
    c->used += need;
    a->used += need;
    return p;
}

void *atp_arena_calloc(atp_arena *a, size_t count, size_t size)
{
    size_t n;
    void *p;
    if (__builtin_mul_overflow(count, size, &n)) {
        oom(SIZE_MAX);
    }
    p = atp_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

void *atp_arena_dup(atp_arena *a, const void *p, size_t n)
{
    uint8_t *q = atp_arena_alloc(a, n + 1);
    if (n) {
        memcpy(q, p, n);
    }
    q[n] = 0;
    return q;
}

size_t atp_arena_used(const atp_arena *a)
{
    return a->used;
}
