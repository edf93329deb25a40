/* fuzz_cfg.c - the device map loader on arbitrary bytes.
 *
 * cfg_load_buffer must never crash, leak or read out of bounds, and must
 * either return a model or at least one error.  Run as a libFuzzer target
 * with -DFG_FUZZ=ON -DCMAKE_C_COMPILER=clang, e.g.
 *   build-fuzz/tests/fuzz_cfg -dict=... tests/fuzz/corpus/fuzz_cfg */
#include <stdint.h>
#include <stdlib.h>

#include "cfg.h"
#include "gw_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cfg_errors errs;
    cfg_errors_init(&errs);
    struct cfg *cfg = NULL;
    int rc =
        cfg_load_buffer("fuzz.yaml", (const char *)data, size, &cfg, &errs);
    if (rc == GW_OK && (!cfg || errs.n != 0))
        abort();
    if (rc == GW_ECONFIG && (cfg || errs.n == 0))
        abort();
    if (cfg) {
        /* Walk the model: every point inside the address space. */
        for (size_t i = 0; i < cfg->n_links; i++) {
            for (size_t j = 0; j < cfg->links[i].n_units; j++) {
                const struct cfg_unit *u = &cfg->links[i].units[j];
                for (size_t k = 0; k < u->n_points; k++) {
                    const struct cfg_point *p = &u->points[k];
                    if (p->count == 0 ||
                        (uint32_t)p->address + p->count - 1 > 65535 ||
                        p->poll_group >= cfg->n_poll_groups)
                        abort();
                }
            }
        }
    }
    cfg_free(cfg);
    cfg_errors_close(&errs);
    return 0;
}
