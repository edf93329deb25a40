/* xs_buf.c - bounded growable buffer (see xs_buf.h). */
#include "xs_buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_err.h"

void xs_buf_init(struct xs_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void xs_buf_close(struct xs_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void xs_buf_clear(struct xs_buf *b)
{
    xs_buf_truncate(b, 0);
}

void xs_buf_truncate(struct xs_buf *b, size_t n)
{
    if (n >= b->len)
        return;
    b->len = n;
    b->data[n] = '\0';
}

int xs_buf_append(struct xs_buf *b, const void *p, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return GW_ELIMIT;
    size_t need = b->len + n + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        if (b->max < SIZE_MAX && cap > b->max + 1)
            cap = b->max + 1;
        char *nd = realloc(b->data, cap);
        if (!nd)
            return GW_ENOMEM;
        b->data = nd;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int xs_buf_append_str(struct xs_buf *b, const char *s)
{
    return xs_buf_append(b, s, strlen(s));
}
