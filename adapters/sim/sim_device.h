/* sim_device.h - simulated Modbus units: register spaces, faults, and the
 * request handler shared by the TCP and RTU transports.
 *
 * A unit keeps its four tables in a libmodbus modbus_mapping_t (created
 * with modbus_mapping_new_start_address, so each table spans exactly the
 * addresses the unit defines; anything outside is exception 02).  The PDU
 * handler is our own (see docs/simulator.md for why): it takes a request
 * PDU (function code onwards) and builds the response PDU, so the
 * transports only frame bytes and never block.  Everything here runs on
 * the loop thread. */
#ifndef SIM_DEVICE_H
#define SIM_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <modbus.h>

#include "sim_value.h"

#define SIM_PDU_MAX 253 /* MODBUS Application Protocol 1.1b3, 4.1 */
#define SIM_MAX_UNIT 255
#define SIM_DEFAULT_SIZE 1000 /* registers and bits of a default unit */

enum sim_table {
    SIM_COILS,
    SIM_DISCRETE,
    SIM_INPUT,
    SIM_HOLDING,
    SIM_N_TABLES,
};

/* Inclusive address range. */
struct sim_range {
    uint16_t lo, hi;
};

/* A typed value that a wave rewrites on every tick. */
struct sim_live {
    enum sim_table table;
    uint16_t address;
    enum sim_type type; /* numeric types, or SIM_T_BOOL in bit tables */
    uint8_t perm[8];
    double base; /* the static value */
    struct sim_wave wave;
    bool frozen; /* a client wrote to it: the wave stops */
};

/* One block of contents: count registers (or bits, one word each, 0/1)
 * at address, and optionally a live value starting at address. */
struct sim_entry {
    enum sim_table table;
    uint16_t address;
    uint16_t count;
    uint16_t *data; /* count words, owned by the entry */
    bool has_live;
    struct sim_live live;
};

/* What a unit is built from (filled by sim_config.c). */
struct sim_unit_spec {
    uint8_t id;
    bool defaults; /* start from the deterministic default contents */
    bool dead;
    uint32_t slow_ms;
    uint16_t max_registers;    /* 0 = protocol limit */
    struct sim_range *illegal; /* exception 02 addresses, any table */
    size_t n_illegal;
    struct sim_entry *entries;
    size_t n_entries;
};

/* A unit's fault switches. */
struct sim_faults {
    bool dead;
    uint32_t slow_ms;
    uint16_t max_registers;
    struct sim_range *illegal;
    size_t n_illegal;
};

struct sim_unit {
    uint8_t id;
    modbus_mapping_t *map;
    /* The faults in force (dead, slow_ms, max_registers, illegal). */
    bool dead;
    uint32_t slow_ms;
    uint16_t max_registers;
    struct sim_range *illegal;
    size_t n_illegal;
    /* While suspended (sim_unit_suspend_faults), the unit's faults wait
     * here and it behaves as a healthy device. */
    bool faults_suspended;
    struct sim_faults suspended;
    struct sim_live *live;
    size_t n_live;
    uint64_t requests;   /* requests received (dead units count too) */
    uint64_t exceptions; /* exception responses sent */
};

/* Frees a spec's arrays (not the spec itself).  NULL-safe. */
void sim_unit_spec_clear(struct sim_unit_spec *spec);

/* Appends an entry to spec; takes ownership of e->data on success and on
 * failure.  Returns 0 or GW_ENOMEM. */
int sim_unit_spec_add(struct sim_unit_spec *spec, struct sim_entry *e);

/* Appends an illegal-address range.  Returns 0, GW_ENOMEM or GW_EINVAL. */
int sim_unit_spec_add_illegal(struct sim_unit_spec *spec, uint16_t lo,
                              uint16_t hi);

/* Builds a unit from spec (entries are applied in order, later ones win).
 * Returns 0 and *out (free with sim_unit_free), GW_ENOMEM, or GW_ERANGE
 * when a table would pass address 65535. */
int sim_unit_new(const struct sim_unit_spec *spec, struct sim_unit **out);
void sim_unit_free(struct sim_unit *u);

/* Handles one request PDU (function code first, len bytes).  Writes the
 * response PDU to rsp (room for SIM_PDU_MAX bytes) and returns its length;
 * returns 0 when the unit does not answer (dead).  Writes stick.
 * Supported: 01 02 03 04 05 06 0F 10 16 17; others get exception 01. */
size_t sim_unit_handle(struct sim_unit *u, const uint8_t *req, size_t len,
                       uint8_t *rsp);

/* Builds an exception response for function fc into rsp; returns 2. */
size_t sim_exception(uint8_t fc, uint8_t code, uint8_t *rsp);

/* suspend: the unit behaves as a healthy device (no dead, slow,
 * exception02 or max_registers fault) until called with false, which
 * puts its faults back.  Idempotent. */
void sim_unit_suspend_faults(struct sim_unit *u, bool suspend);

/* Rewrites every live (wave) value for time t_ms since start. */
void sim_unit_tick(struct sim_unit *u, uint64_t t_ms);

#endif
