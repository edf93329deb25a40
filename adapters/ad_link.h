/* ad_link.h - one Modbus link (a TCP endpoint or a serial line) served by
 * its own worker thread.
 *
 * libmodbus blocks, so no libmodbus call ever runs on the loop thread: the
 * worker owns the link's modbus_t, takes jobs from a queue (writes first,
 * then on-demand reads, then polls) and hands finished jobs back to the
 * loop thread through a uv_async_t, where job->done runs.  Between two
 * requests of a poll job the worker first serves writes and on-demand
 * reads that arrived meanwhile.  One connection serves every unit of the
 * link.  A lost connection is re-established with
 * exponential backoff and jitter; while the link waits, jobs fail at once
 * with GW_EDISCONNECTED instead of blocking.
 *
 * Contract: ad_link_submit() returning 0 means job->done runs exactly once
 * on the loop thread (with every io's rc GW_ECANCELED when the link stops
 * first). */
#ifndef AD_LINK_H
#define AD_LINK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cfg.h"
#include "gw_log.h"

enum ad_io_op {
    AD_IO_READ,      /* fc 1..4: read count items at start into data */
    AD_IO_WRITE,     /* fc 5, 6, 15, 16: write data */
    AD_IO_WRITE_BIT, /* read-modify-write of bit `bit` of one register */
};

/* One Modbus transaction (plus retries, and read-back when verify). */
struct ad_io {
    enum ad_io_op op;
    uint8_t unit_id;
    uint8_t fc;
    uint16_t start;
    uint16_t count;
    uint8_t bit;         /* AD_IO_WRITE_BIT */
    bool verify;         /* writes: read back and compare */
    uint32_t timeout_ms; /* response timeout */
    uint32_t retries;    /* extra attempts after a timeout */
    size_t tag;          /* the caller's (e.g. its request index) */
    uint16_t *data;      /* count words; bits one word each (0/1) */
    /* Results, set by the worker: */
    int rc;            /* 0, GW_ETIMEOUT, GW_EMBEXC, GW_EDISCONNECTED,
                          GW_EVERIFY, GW_EIO, GW_ECANCELED */
    uint8_t exception; /* Modbus exception code with GW_EMBEXC */
    bool skipped;      /* not sent: the unit timed out earlier in job */
    uint32_t rtt_us;
};

enum ad_prio {
    AD_PRIO_WRITE,    /* control commands */
    AD_PRIO_READ_NOW, /* on-demand reads */
    AD_PRIO_POLL,     /* poll cycles */
    AD_PRIO_COUNT,
};

struct ad_job;
typedef void (*ad_job_cb)(struct ad_job *job);

struct ad_job {
    struct ad_job *next; /* queue link, owned by the link while queued */
    enum ad_prio prio;
    struct ad_io *ios;
    size_t n_ios;
    /* After a timeout of a unit, skip the job's later ios to that unit, so
     * a dead unit costs one timeout a job.  On for polls. */
    bool skip_dead_units;
    bool connected; /* set by the worker: link up when the job ended */
    ad_job_cb done; /* runs on the loop thread */
    void *data;
};

struct ad_link {
    const struct cfg_link *cfg;
    const struct gw_log *log;
    uv_async_t async; /* wakes the loop for finished jobs */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ad_job *queue[AD_PRIO_COUNT]; /* FIFO per priority */
    struct ad_job *queue_tail[AD_PRIO_COUNT];
    struct ad_job *finished; /* LIFO of done jobs, reversed on delivery */
    bool stopping;
    bool started;
    void (*closed_cb)(struct ad_link *link);
    /* Worker-only state. */
    void *mb; /* modbus_t *, or struct ad_rtu_tcp * (rtu-over-tcp) */
    bool connected;
    uint32_t backoff_ms;
    int64_t next_connect_us;   /* monotonic */
    int64_t last_frame_end_us; /* monotonic, RTU silence */
    bool last_broadcast;       /* the last frame went to unit 0 */
    uint64_t rng;
};

/* Prepares the link (no thread yet).  The cfg and log must outlive it.
 * Returns 0 or a gw_err; on error nothing needs closing. */
int ad_link_init(struct ad_link *link, uv_loop_t *loop,
                 const struct cfg_link *cfg, const struct gw_log *log);

/* Starts the worker thread.  Returns 0 or GW_ESYS. */
int ad_link_start(struct ad_link *link);

/* Queues a job.  Returns 0 (done will run) or GW_ECLOSED when stopping. */
int ad_link_submit(struct ad_link *link, struct ad_job *job);

/* Stops the worker (the job in progress finishes; queued jobs are
 * canceled), delivers every job, then closes the async handle; closed_cb
 * runs after that, when the memory may be freed. */
void ad_link_close(struct ad_link *link,
                   void (*closed_cb)(struct ad_link *link));

#endif
