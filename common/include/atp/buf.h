/* atp/buf.h: the three types used everywhere: borrowed byte slices, bounded growable
 * buffers with a sticky error, and a bump arena. Plus the allocators that abort on OOM.
 *
 * Memory rules (STYLE.md §2): running out of memory aborts the process; what callers must
 * handle is limits. A function that allocates says so in its signature (arena/buf argument or
 * a create/dup/take verb).
 */
#ifndef ATP_BUF_H
#define ATP_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atp/err.h"

/* ---- allocation: abort on OOM ---- */

void *atp_xmalloc(size_t n);
void *atp_xcalloc(size_t count, size_t size);
void *atp_xrealloc(void *p, size_t n);
/* Owned copy of `len` bytes plus a NUL terminator; free with free(). */
char *atp_xstrndup(const char *s, size_t len);

/* ---- slices: borrowed views of bytes or text ---- */

typedef struct atp_slice {
    const uint8_t *ptr;
    size_t len;
} atp_slice;

#define ATP_SLICE_LIT(s) ((atp_slice){(const uint8_t *)(s), sizeof(s) - 1})

static inline atp_slice atp_slice_make(const void *ptr, size_t len)
{
    return (atp_slice){(const uint8_t *)ptr, len};
}

/* Slice over a NUL-terminated string (without the NUL). NULL gives the empty slice. */
atp_slice atp_slice_str(const char *s);
bool atp_slice_eq(atp_slice a, atp_slice b);
bool atp_slice_eq_str(atp_slice a, const char *s);
bool atp_slice_has_prefix(atp_slice s, atp_slice prefix);
/* Bytewise comparison, shorter-is-smaller on a common prefix: <0, 0, >0. */
int atp_slice_cmp(atp_slice a, atp_slice b);
/* Sub-slice [off, off+len) clamped to the slice. */
atp_slice atp_slice_sub(atp_slice s, size_t off, size_t len);

/* ---- bounded buffer with a sticky error ---- */

/* `max` is a hard ceiling on `len`: an append that would pass it sets err = ATP_ELIMIT and is
 * dropped, as is every later append. Appends return void: write straight, check `err` once. */
typedef struct atp_buf {
    uint8_t *ptr;
    size_t len, cap, max;
    int err;
} atp_buf;

#define ATP_BUF_MAX_DEFAULT ((size_t)64 << 20)

void atp_buf_init(atp_buf *b, size_t max);
/* Frees the storage; the struct may be init'ed again. */
void atp_buf_release(atp_buf *b);
/* Empties the buffer and clears the error, keeping the capacity. */
void atp_buf_reset(atp_buf *b);
/* Space for `n` more bytes at ptr+len, or NULL (and err set) if it would pass `max`.
 * The caller writes then calls atp_buf_commit(b, n). */
uint8_t *atp_buf_reserve(atp_buf *b, size_t n);
void atp_buf_commit(atp_buf *b, size_t n);
void atp_buf_append(atp_buf *b, const void *p, size_t n);
void atp_buf_append_byte(atp_buf *b, uint8_t c);
void atp_buf_append_slice(atp_buf *b, atp_slice s);
void atp_buf_append_str(atp_buf *b, const char *s);
void atp_buf_printf(atp_buf *b, const char *fmt, ...) ATP_PRINTF(2, 3);
static inline atp_slice atp_buf_slice(const atp_buf *b)
{
    return (atp_slice){b->ptr, b->len};
}
/* Moves the bytes out (owned, NUL-terminated for convenience, free with free()); the buffer is
 * left empty and reusable. Returns NULL if the buffer is in error. */
uint8_t *atp_buf_take(atp_buf *b, size_t *len_out);

/* ---- arena: bump allocation, freed whole ---- */

typedef struct atp_arena atp_arena;

void atp_arena_destroy(atp_arena *a);
/* Creates an arena whose chunks are at least `chunk` bytes (0 = 16 KiB). Owned: destroy. */
atp_arena *atp_arena_create(size_t chunk) ATP_DEALLOC(atp_arena_destroy);
/* Frees everything allocated, keeps the first chunk for reuse. */
void atp_arena_reset(atp_arena *a);
/* `n` bytes aligned to 16, valid until reset/destroy. Aborts on OOM. */
void *atp_arena_alloc(atp_arena *a, size_t n);
void *atp_arena_calloc(atp_arena *a, size_t count, size_t size);
/* Copy of `n` bytes (plus a NUL terminator, not counted). */
void *atp_arena_dup(atp_arena *a, const void *p, size_t n);
/* Bytes currently allocated from the arena (for metrics and tests). */
size_t atp_arena_used(const atp_arena *a);

#endif
