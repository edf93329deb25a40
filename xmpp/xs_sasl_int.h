/* xs_sasl_int.h - test hooks of xs_sasl.c (not for the daemon). */
#ifndef XS_SASL_INT_H
#define XS_SASL_INT_H

#include "xs_sasl.h"

/* Replaces the random SCRAM client nonce (printable ASCII without ',',
 * at most 128 bytes), so that tests can replay the RFC 5802/7677 examples.
 * Call before the first xs_sasl_step().  Returns 0, GW_EINVAL (bad nonce,
 * not SCRAM, too late). */
int xs__sasl_set_nonce(struct xs_sasl *s, const char *nonce);

#endif
