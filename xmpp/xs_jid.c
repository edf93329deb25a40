/* xs_jid.c - JID splitting. */
#include "xs_jid.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gw_err.h"

static int copy_part(char *dst, size_t cap, const char *src, size_t len)
{
    if (len == 0 || len >= cap)
        return GW_EINVAL;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return GW_OK;
}

int xs_jid_parse(const char *text, struct xs_jid *out)
{
    memset(out, 0, sizeof(*out));
    if (!text)
        return GW_EINVAL;
    const char *slash = strchr(text, '/');
    size_t head = slash ? (size_t)(slash - text) : strlen(text);
    const char *at = memchr(text, '@', head);
    int rc = GW_OK;
    if (at) {
        rc = copy_part(out->local, sizeof(out->local), text,
                       (size_t)(at - text));
        if (rc == GW_OK)
            rc = copy_part(out->domain, sizeof(out->domain), at + 1,
                           head - (size_t)(at - text) - 1);
    } else {
        rc = copy_part(out->domain, sizeof(out->domain), text, head);
    }
    if (rc == GW_OK && slash)
        rc = copy_part(out->resource, sizeof(out->resource), slash + 1,
                       strlen(slash + 1));
    return rc;
}

int xs_jid_bare(const struct xs_jid *j, char *buf, size_t cap)
{
    int n = j->local[0] ? snprintf(buf, cap, "%s@%s", j->local, j->domain)
                        : snprintf(buf, cap, "%s", j->domain);
    return n < 0 || (size_t)n >= cap ? GW_ELIMIT : GW_OK;
}

int xs_jid_bare_of(const char *text, char *buf, size_t cap)
{
    struct xs_jid j;
    int rc = xs_jid_parse(text, &j);
    if (rc != GW_OK)
        return rc;
    return xs_jid_bare(&j, buf, cap);
}

bool xs_jid_bare_equal(const char *a, const char *b)
{
    return a && b && strcasecmp(a, b) == 0;
}
