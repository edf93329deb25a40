/* fuzz_codec.c - libFuzzer target for the value codec (adapters/ad_codec.c).
 *
 * The first HEADER bytes describe a point, the rest are its registers
 * (big-endian pairs) and, as text, an input for ad_value_parse:
 *
 *   [0] type (% 13)        [1] table (% 4)       [2..3] order permutation
 *   [4] bit (% 17)         [5] packing (% 4)     [6] string length (% 130)
 *   [7] scale (table)      [8] offset (table)    [9] decimals (% 20 - 2)
 *   [10] flags: 1 = min/max set, 2 = labels, 4 = a broken order, 8 = empty
 *        order
 *
 * It decodes, formats and labels; where a decode succeeds it re-encodes and
 * checks the round trip (exact for unscaled points: the same value, and the
 * formatted text parses back to a value that encodes the same way).  Any
 * broken property aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ad_codec.h"
#include "gw_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER 11
#define MAX_REGS 130

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_codec: %s:%d: %s\n", __FILE__, __LINE__,     \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* The k-th permutation (Lehmer code) of the first n letters. */
static void make_order(char *order, unsigned n, unsigned k)
{
    char pool[8];
    for (unsigned i = 0; i < n; i++)
        pool[i] = (char)('A' + i);
    for (unsigned i = 0; i < n; i++) {
        unsigned left = n - i, j = k % left;
        k /= left;
        order[i] = pool[j];
        memmove(pool + j, pool + j + 1, left - j - 1);
    }
    order[n] = '\0';
}

static bool plain(const struct cfg_point *p)
{
    return p->scale == 1.0 && p->offset == 0.0 && p->decimals < 0;
}

static void check_value(const struct cfg_point *p, const struct ad_value *v)
{
    char buf[AD_STRING_MAX + 64];
    size_t n = ad_value_format(p, v, buf, sizeof(buf));
    CHECK(n == strlen(buf));
    char tiny[3];
    CHECK(ad_value_format(p, v, tiny, sizeof(tiny)) <= 2);
    (void)ad_value_label(p, v);
    double d;
    bool has_d = ad_value_to_double(v, &d);
    CHECK(has_d == (v->kind != AD_VALUE_STRING && v->kind != AD_VALUE_NONE));
    CHECK(ad_value_equal(v, v));
}

static void round_trip(const struct cfg_point *rp, const uint16_t *regs,
                       size_t n, const struct ad_value *v)
{
    struct cfg_point p = *rp;
    p.table = CFG_TABLE_HOLDING;
    uint16_t enc[MAX_REGS];
    uint16_t current = n > 0 ? regs[0] : 0;
    int rc = ad_encode_registers(&p, v, current, enc, MAX_REGS);
    bool exact = plain(&p) && !p.has_min && !p.has_max;
    if (exact)
        CHECK(rc == GW_OK);
    if (rc != GW_OK)
        return;
    struct ad_value back;
    rc = ad_decode_registers(&p, enc, MAX_REGS, &back);
    CHECK(rc == GW_OK || rc == GW_ENONFINITE);
    if (!exact)
        return;
    CHECK(rc == GW_OK);
    CHECK(ad_value_equal(&back, v));
    if (p.type == CFG_TYPE_BIT)
        CHECK(enc[0] == regs[0]);
    if (p.type != CFG_TYPE_STRING && p.type != CFG_TYPE_BIT)
        CHECK(memcmp(enc, regs, (unsigned)cfg_type_bytes(p.type)) == 0);

    /* The text a person sees parses back to a value that encodes to the
     * same registers. */
    char text[AD_STRING_MAX + 64];
    ad_value_format(&p, v, text, sizeof(text));
    struct ad_value parsed;
    p.labels = NULL;
    p.n_labels = 0;
    rc = ad_value_parse(&p, text, &parsed);
    CHECK(rc == GW_OK);
    uint16_t enc2[MAX_REGS];
    CHECK(ad_encode_registers(&p, &parsed, current, enc2, MAX_REGS) == GW_OK);
    size_t words = p.type == CFG_TYPE_STRING ? p.count
                   : p.type == CFG_TYPE_BIT
                       ? 1
                       : (unsigned)cfg_type_bytes(p.type) / 2;
    CHECK(memcmp(enc, enc2, words * sizeof(uint16_t)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const double scales[] = {1, 1, 1, 0.1, 10, -2, 0.001, 1e300, 0};
    static const double offsets[] = {0, 0, 0, -40, 0.5, 1e308};
    if (size < HEADER)
        return 0;
    struct cfg_point p;
    memset(&p, 0, sizeof(p));
    p.name = "fuzz";
    p.type = (enum cfg_type)(data[0] % 13);
    p.table = (enum cfg_table)(data[1] % 4);
    p.bit = (uint8_t)(data[4] % 17);
    p.packing = (enum cfg_packing)(data[5] % 4);
    p.count = (uint16_t)(data[6] % 130);
    p.scale = scales[data[7] % (sizeof(scales) / sizeof(scales[0]))];
    p.offset = offsets[data[8] % (sizeof(offsets) / sizeof(offsets[0]))];
    p.decimals = data[9] % 20 - 2;
    uint8_t flags = data[10];
    unsigned nb = (unsigned)cfg_type_bytes(p.type);
    if (nb) {
        make_order(p.order, nb, (unsigned)data[2] << 8 | data[3]);
        if (flags & 4)
            p.order[nb - 1] = p.order[0];
        if (flags & 8)
            p.order[0] = '\0';
    }
    if (flags & 1) {
        p.has_min = p.has_max = true;
        p.min = -1000;
        p.max = 1000;
    }
    struct cfg_enum_label labels[] = {{-1, "minus"}, {0, "zero"}, {1, "one"}};
    if (flags & 2) {
        p.labels = labels;
        p.n_labels = 3;
    }

    const uint8_t *body = data + HEADER;
    size_t blen = size - HEADER;
    uint16_t regs[MAX_REGS] = {0};
    size_t n = blen / 2 < MAX_REGS ? blen / 2 : MAX_REGS;
    for (size_t i = 0; i < n; i++)
        regs[i] = (uint16_t)(body[2 * i] << 8 | body[2 * i + 1]);

    struct ad_value v;
    int rc;
    if (p.table == CFG_TABLE_COIL || p.table == CFG_TABLE_DISCRETE) {
        rc = ad_decode_bit(&p, blen ? body[0] : 0, &v);
        CHECK(rc == GW_OK || rc == GW_EINVAL);
        if (rc == GW_OK) {
            check_value(&p, &v);
            uint8_t bit = 9;
            int erc = ad_encode_bit(&p, &v, &bit);
            if (p.table == CFG_TABLE_COIL)
                CHECK(erc == GW_OK && bit == (v.v.b ? 1 : 0));
            else
                CHECK(erc == GW_EINVAL);
        }
    } else {
        rc = ad_decode_registers(&p, regs, n, &v);
        CHECK(rc == GW_OK || rc == GW_EINVAL || rc == GW_ENONFINITE ||
              rc == GW_EBADBCD);
        CHECK((rc == GW_OK) == (v.kind != AD_VALUE_NONE) ||
              rc == GW_ENONFINITE);
        if (rc == GW_OK) {
            check_value(&p, &v);
            round_trip(&p, regs, n, &v);
        }
    }

    /* The body as text, for the parser. */
    char text[512];
    size_t tlen = blen < sizeof(text) - 1 ? blen : sizeof(text) - 1;
    memcpy(text, body, tlen);
    text[tlen] = '\0';
    struct ad_value parsed;
    rc = ad_value_parse(&p, text, &parsed);
    CHECK(rc == GW_OK || rc == GW_EPARSE || rc == GW_ERANGE);
    if (rc == GW_OK) {
        check_value(&p, &parsed);
        struct cfg_point h = p;
        h.table = CFG_TABLE_HOLDING;
        uint16_t enc[MAX_REGS];
        if (ad_encode_registers(&h, &parsed, 0, enc, MAX_REGS) == GW_OK) {
            struct ad_value back;
            rc = ad_decode_registers(&h, enc, MAX_REGS, &back);
            CHECK(rc == GW_OK || rc == GW_ENONFINITE);
        }
    }
    return 0;
}
