/* xs_buf.h - a growable byte buffer with a hard maximum.
 *
 * The buffer owns its memory (xs_buf_close frees it).  data is NULL until
 * the first append, and afterwards always NUL-terminated; the terminator is
 * not counted in len and not in max.  An append that would pass max, or
 * whose allocation fails, changes nothing. */
#ifndef XS_BUF_H
#define XS_BUF_H

#include <stddef.h>

struct xs_buf {
    char *data; /* NULL or len bytes plus a NUL */
    size_t len;
    size_t cap; /* allocated bytes, terminator included */
    size_t max; /* len never exceeds this */
};

/* An empty buffer that may grow to max bytes.  Allocates nothing. */
void xs_buf_init(struct xs_buf *b, size_t max);

/* Frees the memory and leaves an empty buffer with the same max.  NULL-safe
 * and idempotent. */
void xs_buf_close(struct xs_buf *b);

/* Empties the buffer but keeps its memory. */
void xs_buf_clear(struct xs_buf *b);

/* Shrinks len to n (n <= len), e.g. to undo a partial write. */
void xs_buf_truncate(struct xs_buf *b, size_t n);

/* Appends n bytes.  Returns 0, GW_ELIMIT (would pass max) or GW_ENOMEM. */
int xs_buf_append(struct xs_buf *b, const void *p, size_t n);

/* Appends a NUL-terminated string; same returns as xs_buf_append. */
int xs_buf_append_str(struct xs_buf *b, const char *s);

#endif
