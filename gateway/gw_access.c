/* gw_access.c - access decisions. */
#include "gw_access.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Does entry (a bare JID or a domain) cover the JID (local@)domain?  A
 * domain entry covers the accounts of that domain only: a JID without a
 * local part is a server or a component, not a user, and is never
 * covered by a domain entry. */
static int covers(const char *entry, const char *bare, size_t bare_len,
                  bool has_local, const char *domain, size_t domain_len)
{
    if (strchr(entry, '@'))
        return strlen(entry) == bare_len &&
               strncasecmp(entry, bare, bare_len) == 0;
    return has_local && strlen(entry) == domain_len &&
           strncasecmp(entry, domain, domain_len) == 0;
}

enum gw_access_level gw_access_check(const struct cfg_access *access,
                                     const char *jid)
{
    if (!access || !jid || !*jid)
        return GW_ACCESS_NONE;
    size_t bare_len = strcspn(jid, "/");
    const char *at = memchr(jid, '@', bare_len);
    const char *domain = at ? at + 1 : jid;
    size_t domain_len = bare_len - (size_t)(domain - jid);
    if (domain_len == 0 || (at && at == jid))
        return GW_ACCESS_NONE;
    for (size_t i = 0; i < access->n_controllers; i++)
        if (covers(access->controllers[i], jid, bare_len, at != NULL, domain,
                   domain_len))
            return GW_ACCESS_CONTROL;
    for (size_t i = 0; i < access->n_readers; i++)
        if (covers(access->readers[i], jid, bare_len, at != NULL, domain,
                   domain_len))
            return GW_ACCESS_READ;
    return GW_ACCESS_NONE;
}

const char *gw_access_name(enum gw_access_level level)
{
    switch (level) {
    case GW_ACCESS_CONTROL:
        return "control";
    case GW_ACCESS_READ:
        return "read";
    default:
        return "none";
    }
}
