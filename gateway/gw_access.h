/* gw_access.h - who may read and who may control, from the access:
 * section.  Pure: a bare JID in, a level out.
 *
 * An entry with an '@' matches that bare JID only; an entry without one is
 * a domain and matches every account (user@domain) of exactly that domain:
 * not its subdomains, and not the domain's own JID (a server or component
 * address is not a user).  Matching ignores ASCII case and any resource of the
 * JID. Controllers may also read.  Anything else gets no access. */
#ifndef GW_ACCESS_H
#define GW_ACCESS_H

#include "cfg.h"

enum gw_access_level {
    GW_ACCESS_NONE = 0,
    GW_ACCESS_READ = 1,
    GW_ACCESS_CONTROL = 2,
};

/* The level of jid (bare or full) under access. */
enum gw_access_level gw_access_check(const struct cfg_access *access,
                                     const char *jid);

const char *gw_access_name(enum gw_access_level level);

#endif
