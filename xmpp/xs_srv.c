/* xs_srv.c - SRV lookup and parsing. */
#include "xs_srv.h"

#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <string.h>

#include "gw_err.h"

int xs_srv_parse(const unsigned char *msg, size_t len, bool direct_tls,
                 struct xs_srv_target *out, size_t cap, size_t *n)
{
    ns_msg m;
    if (len > 65535 || ns_initparse(msg, (int)len, &m) != 0)
        return GW_EPROTO;
    size_t start = *n;
    int count = ns_msg_count(m, ns_s_an);
    for (int i = 0; i < count && *n < cap; i++) {
        ns_rr rr;
        if (ns_parserr(&m, ns_s_an, i, &rr) != 0) {
            *n = start;
            return GW_EPROTO;
        }
        if (ns_rr_type(rr) != ns_t_srv || ns_rr_rdlen(rr) < 7)
            continue;
        const unsigned char *rd = ns_rr_rdata(rr);
        struct xs_srv_target *t = &out[*n];
        memset(t, 0, sizeof(*t));
        t->priority = (uint16_t)ns_get16(rd);
        t->weight = (uint16_t)ns_get16(rd + 2);
        t->port = (uint16_t)ns_get16(rd + 4);
        t->direct_tls = direct_tls;
        if (dn_expand(ns_msg_base(m), ns_msg_end(m), rd + 6, t->host,
                      (int)sizeof(t->host)) < 0)
            continue;
        if (t->host[0] == '\0' || strcmp(t->host, ".") == 0 || t->port == 0)
            continue; /* "no service" */
        (*n)++;
    }
    return GW_OK;
}

void xs_srv_sort(struct xs_srv_target *t, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0; j--) {
            const struct xs_srv_target *a = &t[j - 1], *b = &t[j];
            if (a->priority < b->priority ||
                (a->priority == b->priority && a->weight >= b->weight))
                break;
            struct xs_srv_target tmp = t[j];
            t[j] = t[j - 1];
            t[j - 1] = tmp;
        }
    }
}

void xs_srv_lookup(const char *domain, struct xs_srv_target *out, size_t cap,
                   size_t *n)
{
    static const char *const prefix[2] = {"_xmpps-client._tcp.",
                                          "_xmpp-client._tcp."};
    unsigned char ans[4096];
    *n = 0;
    for (int d = 0; d < 2; d++) {
        char q[1100];
        snprintf(q, sizeof(q), "%s%s", prefix[d], domain);
        struct __res_state rs;
        memset(&rs, 0, sizeof(rs));
        if (res_ninit(&rs) != 0)
            continue;
        int len = res_nquery(&rs, q, ns_c_in, ns_t_srv, ans, sizeof(ans));
        res_nclose(&rs);
        if (len > 0)
            xs_srv_parse(ans, (size_t)len, d == 0, out, cap, n);
    }
    xs_srv_sort(out, *n);
}
