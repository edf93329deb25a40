/* sim_device.c - unit register spaces, faults and the PDU handler. */
#include "sim_device.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gw_err.h"

/* Protocol limits (MODBUS Application Protocol 1.1b3, section 6). */
#define READ_BITS_MAX 2000
#define READ_REGS_MAX 125
#define WRITE_BITS_MAX 1968
#define WRITE_REGS_MAX 123
#define RW_WRITE_REGS_MAX 121

#define EXC_ILLEGAL_FUNCTION 0x01
#define EXC_ILLEGAL_ADDRESS 0x02
#define EXC_ILLEGAL_VALUE 0x03

void sim_unit_spec_clear(struct sim_unit_spec *spec)
{
    if (!spec)
        return;
    for (size_t k = 0; k < spec->n_entries; k++)
        free(spec->entries[k].data);
    free(spec->entries);
    free(spec->illegal);
    spec->entries = NULL;
    spec->n_entries = 0;
    spec->illegal = NULL;
    spec->n_illegal = 0;
}

int sim_unit_spec_add(struct sim_unit_spec *spec, struct sim_entry *e)
{
    struct sim_entry *grown =
        realloc(spec->entries, (spec->n_entries + 1) * sizeof(*spec->entries));
    if (!grown) {
        free(e->data);
        e->data = NULL;
        return GW_ENOMEM;
    }
    spec->entries = grown;
    spec->entries[spec->n_entries++] = *e;
    e->data = NULL;
    return GW_OK;
}

int sim_unit_spec_add_illegal(struct sim_unit_spec *spec, uint16_t lo,
                              uint16_t hi)
{
    if (hi < lo)
        return GW_EINVAL;
    struct sim_range *grown =
        realloc(spec->illegal, (spec->n_illegal + 1) * sizeof(*spec->illegal));
    if (!grown)
        return GW_ENOMEM;
    spec->illegal = grown;
    spec->illegal[spec->n_illegal++] = (struct sim_range){lo, hi};
    return GW_OK;
}

/* Default contents: registers (unit * 1000 + address) & 0xffff, coils 1
 * at even addresses, discrete inputs 1 at odd addresses. */
static uint16_t default_word(uint8_t id, enum sim_table t, unsigned a)
{
    switch (t) {
    case SIM_COILS:
        return (a & 1u) ? 0 : 1;
    case SIM_DISCRETE:
        return (a & 1u) ? 1 : 0;
    case SIM_INPUT:
    case SIM_HOLDING:
    case SIM_N_TABLES:
        break;
    }
    return (uint16_t)((id * 1000u + a) & 0xffffu);
}

/* The start address and size of table t in the mapping. */
static void table_span(const modbus_mapping_t *m, enum sim_table t,
                       unsigned *start, unsigned *nb)
{
    int s, n;
    switch (t) {
    case SIM_COILS:
        s = m->start_bits;
        n = m->nb_bits;
        break;
    case SIM_DISCRETE:
        s = m->start_input_bits;
        n = m->nb_input_bits;
        break;
    case SIM_INPUT:
        s = m->start_input_registers;
        n = m->nb_input_registers;
        break;
    default:
        s = m->start_registers;
        n = m->nb_registers;
        break;
    }
    *start = (unsigned)s;
    *nb = (unsigned)n;
}

/* Whether [a, a + n) lies entirely inside table t of the mapping. */
static bool in_table(const modbus_mapping_t *m, enum sim_table t, unsigned a,
                     unsigned n)
{
    unsigned start, nb;
    table_span(m, t, &start, &nb);
    return n > 0 && a >= start && a + n <= start + nb;
}

/* Reads/writes one element (bit tables: 0/1). Caller checked in_table. */
static uint16_t get_word(const modbus_mapping_t *m, enum sim_table t,
                         unsigned a)
{
    unsigned start, nb;
    table_span(m, t, &start, &nb);
    switch (t) {
    case SIM_COILS:
        return m->tab_bits[a - start];
    case SIM_DISCRETE:
        return m->tab_input_bits[a - start];
    case SIM_INPUT:
        return m->tab_input_registers[a - start];
    default:
        return m->tab_registers[a - start];
    }
}

static void set_word(modbus_mapping_t *m, enum sim_table t, unsigned a,
                     uint16_t v)
{
    unsigned start, nb;
    table_span(m, t, &start, &nb);
    switch (t) {
    case SIM_COILS:
        m->tab_bits[a - start] = v ? 1 : 0;
        break;
    case SIM_DISCRETE:
        m->tab_input_bits[a - start] = v ? 1 : 0;
        break;
    case SIM_INPUT:
        m->tab_input_registers[a - start] = v;
        break;
    default:
        m->tab_registers[a - start] = v;
        break;
    }
}

static unsigned live_words(const struct sim_live *l)
{
    unsigned n = sim_type_words(l->type);
    return n ? n : 1;
}

int sim_unit_new(const struct sim_unit_spec *spec, struct sim_unit **out)
{
    unsigned lo[SIM_N_TABLES], hi[SIM_N_TABLES]; /* [lo, hi) */
    size_t n_live = 0;
    int rc = GW_OK;
    struct sim_unit *u = NULL;

    for (unsigned t = 0; t < SIM_N_TABLES; t++) {
        lo[t] = spec->defaults ? 0 : 65536;
        hi[t] = spec->defaults ? SIM_DEFAULT_SIZE : 0;
    }
    for (size_t k = 0; k < spec->n_entries; k++) {
        const struct sim_entry *e = &spec->entries[k];
        unsigned end = (unsigned)e->address + e->count;
        if (end > 65536 || e->count == 0)
            return GW_ERANGE;
        if (e->address < lo[e->table])
            lo[e->table] = e->address;
        if (end > hi[e->table])
            hi[e->table] = end;
        if (e->has_live)
            n_live++;
    }
    for (unsigned t = 0; t < SIM_N_TABLES; t++) {
        if (hi[t] == 0)
            lo[t] = 0;
    }

    u = calloc(1, sizeof(*u));
    if (!u)
        return GW_ENOMEM;
    u->id = spec->id;
    u->dead = spec->dead;
    u->slow_ms = spec->slow_ms;
    u->max_registers = spec->max_registers;
    u->map = modbus_mapping_new_start_address(
        lo[SIM_COILS], hi[SIM_COILS] - lo[SIM_COILS], lo[SIM_DISCRETE],
        hi[SIM_DISCRETE] - lo[SIM_DISCRETE], lo[SIM_HOLDING],
        hi[SIM_HOLDING] - lo[SIM_HOLDING], lo[SIM_INPUT],
        hi[SIM_INPUT] - lo[SIM_INPUT]);
    if (!u->map) {
        rc = GW_ENOMEM;
        goto out;
    }
    if (spec->n_illegal) {
        u->illegal = calloc(spec->n_illegal, sizeof(*u->illegal));
        if (!u->illegal) {
            rc = GW_ENOMEM;
            goto out;
        }
        memcpy(u->illegal, spec->illegal,
               spec->n_illegal * sizeof(*u->illegal));
        u->n_illegal = spec->n_illegal;
    }
    if (n_live) {
        u->live = calloc(n_live, sizeof(*u->live));
        if (!u->live) {
            rc = GW_ENOMEM;
            goto out;
        }
    }
    if (spec->defaults) {
        for (unsigned t = 0; t < SIM_N_TABLES; t++) {
            for (unsigned a = 0; a < SIM_DEFAULT_SIZE; a++)
                set_word(u->map, (enum sim_table)t, a,
                         default_word(u->id, (enum sim_table)t, a));
        }
    }
    for (size_t k = 0; k < spec->n_entries; k++) {
        const struct sim_entry *e = &spec->entries[k];
        for (unsigned j = 0; j < e->count; j++)
            set_word(u->map, e->table, e->address + j, e->data[j]);
        if (e->has_live) {
            struct sim_live *l = &u->live[u->n_live++];
            *l = e->live;
            l->table = e->table;
            l->address = e->address;
        }
    }
    sim_unit_tick(u, 0);
out:
    if (rc != GW_OK) {
        sim_unit_free(u);
        u = NULL;
    }
    *out = u;
    return rc;
}

void sim_unit_free(struct sim_unit *u)
{
    if (!u)
        return;
    if (u->map)
        modbus_mapping_free(u->map);
    free(u->illegal);
    free(u->suspended.illegal);
    free(u->live);
    free(u);
}

void sim_unit_suspend_faults(struct sim_unit *u, bool suspend)
{
    if (suspend == u->faults_suspended)
        return;
    struct sim_faults now = {u->dead, u->slow_ms, u->max_registers, u->illegal,
                             u->n_illegal};
    struct sim_faults next = u->suspended; /* empty when suspending */
    u->dead = next.dead;
    u->slow_ms = next.slow_ms;
    u->max_registers = next.max_registers;
    u->illegal = next.illegal;
    u->n_illegal = next.n_illegal;
    u->suspended = suspend ? now : (struct sim_faults){0};
    u->faults_suspended = suspend;
}

size_t sim_exception(uint8_t fc, uint8_t code, uint8_t *rsp)
{
    rsp[0] = (uint8_t)(fc | 0x80);
    rsp[1] = code;
    return 2;
}

static unsigned get16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static bool touches_illegal(const struct sim_unit *u, unsigned a, unsigned n)
{
    for (size_t k = 0; k < u->n_illegal; k++) {
        if (a <= u->illegal[k].hi && a + n - 1 >= u->illegal[k].lo)
            return true;
    }
    return false;
}

/* Whether [a, a + n) of table t may be accessed (else exception 02). */
static bool address_ok(const struct sim_unit *u, enum sim_table t, unsigned a,
                       unsigned n)
{
    return a + n <= 65536 && !touches_illegal(u, a, n) &&
           in_table(u->map, t, a, n);
}

static void freeze(struct sim_unit *u, enum sim_table t, unsigned a, unsigned n)
{
    for (size_t k = 0; k < u->n_live; k++) {
        struct sim_live *l = &u->live[k];
        if (l->table == t && a < l->address + live_words(l) &&
            a + n > l->address)
            l->frozen = true;
    }
}

static size_t read_bits(struct sim_unit *u, enum sim_table t,
                        const uint8_t *req, size_t len, uint8_t *rsp)
{
    if (len != 5)
        return sim_exception(req[0], EXC_ILLEGAL_VALUE, rsp);
    unsigned a = get16(req + 1), n = get16(req + 3);
    if (n < 1 || n > READ_BITS_MAX)
        return sim_exception(req[0], EXC_ILLEGAL_VALUE, rsp);
    if (!address_ok(u, t, a, n))
        return sim_exception(req[0], EXC_ILLEGAL_ADDRESS, rsp);
    unsigned nbytes = (n + 7) / 8;
    rsp[0] = req[0];
    rsp[1] = (uint8_t)nbytes;
    memset(rsp + 2, 0, nbytes);
    for (unsigned k = 0; k < n; k++) {
        if (get_word(u->map, t, a + k))
            rsp[2 + k / 8] |= (uint8_t)(1u << (k % 8));
    }
    return 2 + nbytes;
}

static size_t read_regs(struct sim_unit *u, enum sim_table t,
                        const uint8_t *req, size_t len, uint8_t *rsp)
{
    if (len != 5)
        return sim_exception(req[0], EXC_ILLEGAL_VALUE, rsp);
    unsigned a = get16(req + 1), n = get16(req + 3);
    if (n < 1 || n > READ_REGS_MAX ||
        (u->max_registers && n > u->max_registers))
        return sim_exception(req[0], EXC_ILLEGAL_VALUE, rsp);
    if (!address_ok(u, t, a, n))
        return sim_exception(req[0], EXC_ILLEGAL_ADDRESS, rsp);
    rsp[0] = req[0];
    rsp[1] = (uint8_t)(2 * n);
    for (unsigned k = 0; k < n; k++)
        put16(rsp + 2 + 2 * k, get_word(u->map, t, a + k));
    return 2 + 2 * n;
}

static size_t write_coil(struct sim_unit *u, const uint8_t *req, size_t len,
                         uint8_t *rsp)
{
    if (len != 5)
        return sim_exception(req[0], EXC_ILLEGAL_VALUE, rsp);
    unsigned a = get16(req + 1), v = get16(req + 3);
    if (v != 0xff00 && v != 0)
        return sim_exception(req[0], EXC_ILLEGAL_VALUE, rsp);
    if (!address_ok(u, SIM_COILS, a, 1))
        return sim_exception(req[0], EXC_ILLEGAL_ADDRESS, rsp);
    set_word(u->map, SIM_COILS, a, v ? 1 : 0);
    freeze(u, SIM_COILS, a, 1);
    memcpy(rsp, req, 5);
    return 5;
}

static size_t write_reg(struct sim_unit *u, const uint8_t *req, size_t len,
                        uint8_t *rsp)
{
    if (len != 5)
        return sim_exception(req[0], EXC_ILLEGAL_VALUE, rsp);
    unsigned a = get16(req + 1);
    if (!address_ok(u, SIM_HOLDING, a, 1))
        return sim_exception(req[0], EXC_ILLEGAL_ADDRESS, rsp);
    set_word(u->map, SIM_HOLDING, a, (uint16_t)get16(req + 3));
    freeze(u, SIM_HOLDING, a, 1);
    memcpy(rsp, req, 5);
    return 5;
}

static size_t write_coils(struct sim_unit *u, const uint8_t *req, size_t len,
                          uint8_t *rsp)
{
    if (len < 6)
        return sim_exception(req[0], EXC_ILLEGAL_VALUE, rsp);
    unsigned a = get16(req + 1), n = get16(req + 3);
    if (n < 1 || n > WRITE_BITS_MAX || req[5] != (n + 7) / 8 ||
        len != 6u + req[5])
        return sim_exception(req[0], EXC_ILLEGAL_VALUE, rsp);
    if (!address_ok(u, SIM_COILS, a, n))
        return sim_exception(req[0], EXC_ILLEGAL_ADDRESS, rsp);
    for (unsigned k = 0; k < n; k++)
        set_word(u->map, SIM_COILS, a + k,
                 (uint16_t)(((unsigned)req[6 + k / 8] >> (k % 8)) & 1u));
    freeze(u, SIM_COILS, a, n);
    memcpy(rsp, req, 5);
    return 5;
}

static size_t write_regs(struct sim_unit *u, const uint8_t *req, size_t len,
                         uint8_t *rsp)
{
    if (len < 6)
        return sim_exception(req[0], EXC_ILLEGAL_VALUE, rsp);
    unsigned a = get16(req + 1), n = get16(req + 3);
    if (n < 1 || n > WRITE_REGS_MAX || req[5] != 2 * n || len != 6u + req[5])
        return sim_exception(req[0], EXC_ILLEGAL_VALUE, rsp);
    if (!address_ok(u, SIM_HOLDING, a, n))
        return sim_exception(req[0], EXC_ILLEGAL_ADDRESS, rsp);
    for (unsigned k = 0; k < n; k++)
        set_word(u->map, SIM_HOLDING, a + k, (uint16_t)get16(req + 6 + 2 * k));
    freeze(u, SIM_HOLDING, a, n);
    memcpy(rsp, req, 5);
    return 5;
}

static size_t mask_write(struct sim_unit *u, const uint8_t *req, size_t len,
                         uint8_t *rsp)
{
    if (len != 7)
        return sim_exception(req[0], EXC_ILLEGAL_VALUE, rsp);
    unsigned a = get16(req + 1), and_mask = get16(req + 3),
             or_mask = get16(req + 5);
    if (!address_ok(u, SIM_HOLDING, a, 1))
        return sim_exception(req[0], EXC_ILLEGAL_ADDRESS, rsp);
    unsigned cur = get_word(u->map, SIM_HOLDING, a);
    set_word(u->map, SIM_HOLDING, a,
             (uint16_t)((cur & and_mask) | (or_mask & ~and_mask)));
    freeze(u, SIM_HOLDING, a, 1);
    memcpy(rsp, req, 7);
    return 7;
}

static size_t read_write_regs(struct sim_unit *u, const uint8_t *req,
                              size_t len, uint8_t *rsp)
{
    if (len < 10)
        return sim_exception(req[0], EXC_ILLEGAL_VALUE, rsp);
    unsigned ra = get16(req + 1), rn = get16(req + 3);
    unsigned wa = get16(req + 5), wn = get16(req + 7);
    if (rn < 1 || rn > READ_REGS_MAX ||
        (u->max_registers && rn > u->max_registers) || wn < 1 ||
        wn > RW_WRITE_REGS_MAX || req[9] != 2 * wn || len != 10u + req[9])
        return sim_exception(req[0], EXC_ILLEGAL_VALUE, rsp);
    if (!address_ok(u, SIM_HOLDING, ra, rn) ||
        !address_ok(u, SIM_HOLDING, wa, wn))
        return sim_exception(req[0], EXC_ILLEGAL_ADDRESS, rsp);
    for (unsigned k = 0; k < wn; k++)
        set_word(u->map, SIM_HOLDING, wa + k,
                 (uint16_t)get16(req + 10 + 2 * k));
    freeze(u, SIM_HOLDING, wa, wn);
    rsp[0] = req[0];
    rsp[1] = (uint8_t)(2 * rn);
    for (unsigned k = 0; k < rn; k++)
        put16(rsp + 2 + 2 * k, get_word(u->map, SIM_HOLDING, ra + k));
    return 2 + 2 * rn;
}

size_t sim_unit_handle(struct sim_unit *u, const uint8_t *req, size_t len,
                       uint8_t *rsp)
{
    size_t n;
    u->requests++;
    if (u->dead || len < 1)
        return 0;
    switch (req[0]) {
    case 0x01:
        n = read_bits(u, SIM_COILS, req, len, rsp);
        break;
    case 0x02:
        n = read_bits(u, SIM_DISCRETE, req, len, rsp);
        break;
    case 0x03:
        n = read_regs(u, SIM_HOLDING, req, len, rsp);
        break;
    case 0x04:
        n = read_regs(u, SIM_INPUT, req, len, rsp);
        break;
    case 0x05:
        n = write_coil(u, req, len, rsp);
        break;
    case 0x06:
        n = write_reg(u, req, len, rsp);
        break;
    case 0x0f:
        n = write_coils(u, req, len, rsp);
        break;
    case 0x10:
        n = write_regs(u, req, len, rsp);
        break;
    case 0x16:
        n = mask_write(u, req, len, rsp);
        break;
    case 0x17:
        n = read_write_regs(u, req, len, rsp);
        break;
    default:
        n = sim_exception((uint8_t)(req[0] & 0x7f), EXC_ILLEGAL_FUNCTION, rsp);
        break;
    }
    if (rsp[0] & 0x80)
        u->exceptions++;
    return n;
}

void sim_unit_tick(struct sim_unit *u, uint64_t t_ms)
{
    for (size_t k = 0; k < u->n_live; k++) {
        struct sim_live *l = &u->live[k];
        if (l->frozen)
            continue;
        double v = sim_wave_at(&l->wave, l->base, t_ms);
        if (l->type == SIM_T_BOOL) {
            set_word(u->map, l->table, l->address, nearbyint(v) != 0);
            continue;
        }
        uint16_t words[4];
        struct sim_num num = {.kind = SIM_NUM_DOUBLE, .d = v};
        if (sim_encode(l->type, l->perm, &num, words) != GW_OK)
            continue; /* out of the type's range: keep the last value */
        for (unsigned j = 0; j < sim_type_words(l->type); j++)
            set_word(u->map, l->table, l->address + j, words[j]);
    }
}
