/* gw_err.c - texts and names for enum gw_err. */
#include "gw_err.h"

const char *gw_strerror(int err)
{
    switch (err) {
    case GW_OK:
        return "success";
#define GW_ERR_TEXT(name, num, text)                                           \
    case GW_E##name:                                                           \
        return text;
        GW_ERR_MAP(GW_ERR_TEXT)
#undef GW_ERR_TEXT
    default:
        return "unknown error";
    }
}

const char *gw_err_name(int err)
{
    switch (err) {
    case GW_OK:
        return "GW_OK";
#define GW_ERR_NAME(name, num, text)                                           \
    case GW_E##name:                                                           \
        return "GW_E" #name;
        GW_ERR_MAP(GW_ERR_NAME)
#undef GW_ERR_NAME
    default:
        return "GW_E?";
    }
}
