/* ad_link.c - the worker thread of one Modbus link. */
#include "ad_link.h"

#include <errno.h>
#include <modbus.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <stdlib.h>
#include <time.h>

#include "ad_rtu_tcp.h"
#include "gw_err.h"

#define BACKOFF_MIN_MS 250u
#define BACKOFF_MAX_MS 30000u

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
    if (us <= 0)
        return;
    struct timespec ts = {.tv_sec = us / 1000000,
                          .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static uint64_t rng_next(struct ad_link *link)
{
    /* xorshift64: jitter only, not security. */
    uint64_t x = link->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    link->rng = x;
    return x;
}

/* The 3.5-character silence of Modbus RTU, in microseconds: fixed at
 * 1750 us above 19200 baud (Modbus over serial line v1.02, 2.5.1.1). */
static int64_t rtu_silence_us(const struct cfg_link *c)
{
    if (c->baud > 19200)
        return 1750;
    uint32_t bits =
        1u + c->data_bits + (c->parity != CFG_PARITY_NONE) + c->stop_bits;
    return (int64_t)(3.5 * bits * 1e6 / c->baud + 0.5);
}

/* ---- loop side -------------------------------------------------------- */

static void deliver(struct ad_link *link)
{
    pthread_mutex_lock(&link->mu);
    struct ad_job *list = link->finished;
    link->finished = NULL;
    pthread_mutex_unlock(&link->mu);
    /* The list is LIFO: reverse it to deliver in completion order. */
    struct ad_job *rev = NULL;
    while (list) {
        struct ad_job *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    while (rev) {
        struct ad_job *next = rev->next;
        rev->next = NULL;
        rev->done(rev);
        rev = next;
    }
}

static void on_async(uv_async_t *h)
{
    deliver(h->data);
}

int ad_link_init(struct ad_link *link, uv_loop_t *loop,
                 const struct cfg_link *cfg, const struct gw_log *log)
{
    memset(link, 0, sizeof(*link));
    link->cfg = cfg;
    link->log = log;
    link->rng =
        (uint64_t)(uintptr_t)link ^ (uint64_t)mono_us() ^ 0x9E3779B97F4A7C15ull;
    if (pthread_mutex_init(&link->mu, NULL) != 0)
        return GW_ESYS;
    if (pthread_cond_init(&link->cv, NULL) != 0) {
        pthread_mutex_destroy(&link->mu);
        return GW_ESYS;
    }
    int rc = uv_async_init(loop, &link->async, on_async);
    if (rc != 0) {
        pthread_cond_destroy(&link->cv);
        pthread_mutex_destroy(&link->mu);
        return GW_ESYS;
    }
    link->async.data = link;
    return GW_OK;
}

/* ---- worker side ------------------------------------------------------ */

/* The bus: link->mb is a modbus_t, or on rtu-over-tcp links (which
 * libmodbus 3.1.6 has no backend for) a struct ad_rtu_tcp.  Both report
 * errors the libmodbus way (-1 and errno), so classify() serves both. */
static bool rtcp(const struct ad_link *link)
{
    return link->cfg->type == CFG_LINK_RTU_OVER_TCP;
}

static int bus_read_bits(struct ad_link *link, uint8_t fc, uint16_t addr,
                         uint16_t n, uint8_t *dest)
{
    if (rtcp(link))
        return fc == 1 ? ad_rtu_tcp_read_bits(link->mb, addr, n, dest)
                       : ad_rtu_tcp_read_input_bits(link->mb, addr, n, dest);
    return fc == 1 ? modbus_read_bits(link->mb, addr, n, dest)
                   : modbus_read_input_bits(link->mb, addr, n, dest);
}

static int bus_read_registers(struct ad_link *link, uint8_t fc, uint16_t addr,
                              uint16_t n, uint16_t *dest)
{
    if (rtcp(link))
        return fc == 3
                   ? ad_rtu_tcp_read_registers(link->mb, addr, n, dest)
                   : ad_rtu_tcp_read_input_registers(link->mb, addr, n, dest);
    return fc == 3 ? modbus_read_registers(link->mb, addr, n, dest)
                   : modbus_read_input_registers(link->mb, addr, n, dest);
}

static int bus_write_bit(struct ad_link *link, uint16_t addr, int on)
{
    return rtcp(link) ? ad_rtu_tcp_write_bit(link->mb, addr, on)
                      : modbus_write_bit(link->mb, addr, on);
}

static int bus_write_bits(struct ad_link *link, uint16_t addr, uint16_t n,
                          const uint8_t *bits)
{
    return rtcp(link) ? ad_rtu_tcp_write_bits(link->mb, addr, n, bits)
                      : modbus_write_bits(link->mb, addr, n, bits);
}

static int bus_write_register(struct ad_link *link, uint16_t addr,
                              uint16_t value)
{
    return rtcp(link) ? ad_rtu_tcp_write_register(link->mb, addr, value)
                      : modbus_write_register(link->mb, addr, value);
}

static int bus_write_registers(struct ad_link *link, uint16_t addr, uint16_t n,
                               const uint16_t *regs)
{
    return rtcp(link) ? ad_rtu_tcp_write_registers(link->mb, addr, n, regs)
                      : modbus_write_registers(link->mb, addr, n, regs);
}

/* Unit id and response timeout of the next transactions. */
static int bus_setup(struct ad_link *link, uint8_t unit, uint32_t timeout_ms)
{
    if (rtcp(link)) {
        struct ad_rtu_tcp *c = link->mb;
        c->unit = unit;
        c->timeout_ms = timeout_ms;
        return 0;
    }
    if (modbus_set_slave(link->mb, unit) != 0)
        return -1;
    modbus_set_response_timeout(link->mb, timeout_ms / 1000,
                                (timeout_ms % 1000) * 1000);
    return 0;
}

static void bus_flush(struct ad_link *link)
{
    if (rtcp(link))
        ad_rtu_tcp_flush(link->mb);
    else
        modbus_flush(link->mb);
}

static void bus_free(struct ad_link *link)
{
    if (rtcp(link)) {
        ad_rtu_tcp_close(link->mb);
        free(link->mb);
    } else {
        modbus_close(link->mb);
        modbus_free(link->mb);
    }
    link->mb = NULL;
}

/* Connects an rtu-over-tcp link; the link's timeout bounds the connect. */
static int connect_rtu_tcp(struct ad_link *link)
{
    const struct cfg_link *c = link->cfg;
    struct ad_rtu_tcp *rt = malloc(sizeof(*rt));
    if (!rt)
        return GW_ENOMEM;
    ad_rtu_tcp_init(rt);
    if (ad_rtu_tcp_connect(rt, c->host, c->port, c->timeout_ms) != 0) {
        int e = errno;
        if (!link->next_connect_us || link->connected)
            GW_LOG(link->log, GW_LOG_WARN, "modbus",
                   "link %s: cannot connect: %s", c->name, modbus_strerror(e));
        free(rt);
        return GW_EDISCONNECTED;
    }
    link->mb = rt;
    return GW_OK;
}

/* Closes the connection; lost says whether that is a failure to log. */
static void disconnect(struct ad_link *link, bool lost)
{
    if (!link->mb)
        return;
    bus_free(link);
    if (link->connected && lost)
        GW_LOG(link->log, GW_LOG_WARN, "modbus", "link %s: disconnected",
               link->cfg->name);
    link->connected = false;
}

static void schedule_reconnect(struct ad_link *link)
{
    if (link->backoff_ms == 0)
        link->backoff_ms = BACKOFF_MIN_MS;
    else if (link->backoff_ms < BACKOFF_MAX_MS / 2)
        link->backoff_ms *= 2;
    else
        link->backoff_ms = BACKOFF_MAX_MS;
    /* Jitter: 80%..120% of the backoff, so that links recovering from one
     * network fault do not reconnect in lockstep. */
    uint64_t span = link->backoff_ms * 400ull;
    int64_t wait_us = (int64_t)(link->backoff_ms * 800ull) +
                      (int64_t)(rng_next(link) % (span + 1));
    link->next_connect_us = mono_us() + wait_us;
}

/* Connects a tcp or rtu link through libmodbus. */
static int connect_libmodbus(struct ad_link *link)
{
    const struct cfg_link *c = link->cfg;
    modbus_t *mb = NULL;
    if (c->type == CFG_LINK_TCP) {
        char port[8];
        snprintf(port, sizeof(port), "%u", (unsigned)c->port);
        mb = modbus_new_tcp_pi(c->host, port);
    } else {
        char parity = c->parity == CFG_PARITY_EVEN  ? 'E'
                      : c->parity == CFG_PARITY_ODD ? 'O'
                                                    : 'N';
        mb = modbus_new_rtu(c->device, (int)c->baud, parity, c->data_bits,
                            c->stop_bits);
    }
    if (!mb) {
        GW_LOG(link->log, GW_LOG_ERROR, "modbus", "link %s: %s", c->name,
               modbus_strerror(errno));
        return GW_EINVAL;
    }
    modbus_set_error_recovery(mb, MODBUS_ERROR_RECOVERY_NONE);
    if (modbus_connect(mb) != 0) {
        int e = errno;
        if (!link->next_connect_us || link->connected)
            GW_LOG(link->log, GW_LOG_WARN, "modbus",
                   "link %s: cannot connect: %s", c->name, modbus_strerror(e));
        modbus_free(mb);
        return GW_EDISCONNECTED;
    }
    if (modbus_get_socket(mb) >= FD_SETSIZE) {
        /* libmodbus waits with select(): it cannot serve such fds. */
        GW_LOG(link->log, GW_LOG_ERROR, "modbus",
               "link %s: socket fd %d is above FD_SETSIZE", c->name,
               modbus_get_socket(mb));
        modbus_close(mb);
        modbus_free(mb);
        return GW_ELIMIT;
    }
    if (c->type == CFG_LINK_RTU && c->rs485 &&
        modbus_rtu_set_serial_mode(mb, MODBUS_RTU_RS485) != 0) {
        GW_LOG(link->log, GW_LOG_ERROR, "modbus",
               "link %s: %s cannot switch to RS-485 mode: %s", c->name,
               c->device, strerror(errno));
        modbus_close(mb);
        modbus_free(mb);
        return GW_EUNSUPPORTED;
    }
    link->mb = mb;
    return GW_OK;
}

static int try_connect(struct ad_link *link)
{
    const struct cfg_link *c = link->cfg;
    int rc = rtcp(link) ? connect_rtu_tcp(link) : connect_libmodbus(link);
    if (rc != GW_OK)
        return rc;
    link->connected = true;
    link->backoff_ms = 0;
    link->next_connect_us = 0;
    link->last_frame_end_us = 0;
    GW_LOG(link->log, GW_LOG_NOTICE, "modbus", "link %s: connected", c->name);
    return GW_OK;
}

static int ensure_connected(struct ad_link *link)
{
    if (link->mb)
        return GW_OK;
    if (link->next_connect_us && mono_us() < link->next_connect_us)
        return GW_EDISCONNECTED;
    int rc = try_connect(link);
    if (rc != GW_OK)
        schedule_reconnect(link);
    return rc;
}

/* Maps a failed libmodbus call's errno to a gw_err (and exception code). */
static int classify(int e, uint8_t *exception)
{
    /* MODBUS_EXCEPTION_MAX is one past the last exception code: EMBBADCRC
     * equals MODBUS_ENOBASE + MODBUS_EXCEPTION_MAX and is no exception. */
    if (e > MODBUS_ENOBASE && e < MODBUS_ENOBASE + MODBUS_EXCEPTION_MAX) {
        *exception = (uint8_t)(e - MODBUS_ENOBASE);
        return GW_EMBEXC;
    }
    if (e == ETIMEDOUT)
        return GW_ETIMEOUT;
    /* A garbled reply, or one from another unit or for another function:
     * the link itself is fine. */
    if (e == EMBBADCRC || e == EMBBADDATA || e == EMBMDATA || e == EMBBADEXC ||
        e == EMBUNKEXC || e == EMBBADSLAVE)
        return GW_EPROTO;
    if (e == EINVAL)
        return GW_EINVAL;
    return GW_EDISCONNECTED;
}

/* Waits out the inter-frame silence (RTU), the turnaround guard after a
 * broadcast (no unit answers it, so the units need time to act before the
 * next frame) and the link's request delay.  An rtu-over-tcp link has no
 * baud rate in the map: the remote gateway frames the serial side, and only
 * the link's `delay` (and `turnaround`) spaces its requests. */
static void pace(struct ad_link *link)
{
    int64_t gap = (int64_t)link->cfg->delay_ms * 1000;
    if (link->cfg->type == CFG_LINK_RTU)
        gap += rtu_silence_us(link->cfg);
    if (link->last_broadcast)
        gap += (int64_t)link->cfg->turnaround_ms * 1000;
    if (link->last_frame_end_us)
        sleep_us(link->last_frame_end_us + gap - mono_us());
}

/* One attempt of one io.  Returns 0 or -1 with errno set by libmodbus. */
static int transact(struct ad_link *link, struct ad_io *io)
{
    uint8_t bits[CFG_MAX_READ_BITS];
    int n = -1;
    switch (io->op) {
    case AD_IO_READ:
        if (io->fc == 1 || io->fc == 2) {
            n = bus_read_bits(link, io->fc, io->start, io->count, bits);
            if (n >= 0)
                for (uint16_t i = 0; i < io->count; i++)
                    io->data[i] = bits[i] ? 1 : 0;
        } else {
            n = bus_read_registers(link, io->fc, io->start, io->count,
                                   io->data);
        }
        break;
    case AD_IO_WRITE:
        if (io->fc == 5) {
            n = bus_write_bit(link, io->start, io->data[0] ? 1 : 0);
        } else if (io->fc == 15) {
            for (uint16_t i = 0; i < io->count; i++)
                bits[i] = io->data[i] ? 1 : 0;
            n = bus_write_bits(link, io->start, io->count, bits);
        } else if (io->fc == 6) {
            n = bus_write_register(link, io->start, io->data[0]);
        } else {
            n = bus_write_registers(link, io->start, io->count, io->data);
        }
        break;
    case AD_IO_WRITE_BIT: {
        uint16_t reg;
        n = bus_read_registers(link, 3, io->start, 1, &reg);
        if (n < 0)
            break;
        uint16_t mask = (uint16_t)(1u << io->bit);
        reg = io->data[0] ? (uint16_t)(reg | mask) : (uint16_t)(reg & ~mask);
        link->last_frame_end_us = mono_us();
        pace(link);
        n = bus_write_register(link, io->start, reg);
        io->data[0] = reg; /* what was written, for verification */
        break;
    }
    }
    return n < 0 ? -1 : 0;
}

static int verify(struct ad_link *link, struct ad_io *io)
{
    uint16_t back[CFG_MAX_WRITE_REGISTERS];
    uint8_t bits[CFG_MAX_WRITE_BITS];
    bool coil = io->fc == 5 || io->fc == 15;
    uint16_t count = io->op == AD_IO_WRITE_BIT ? 1 : io->count;
    if (io->fc == 5 || io->fc == 6)
        count = 1;
    link->last_frame_end_us = mono_us();
    pace(link);
    int n = coil ? bus_read_bits(link, 1, io->start, count, bits)
                 : bus_read_registers(link, 3, io->start, count, back);
    if (n < 0)
        return -1;
    for (uint16_t i = 0; i < count; i++) {
        uint16_t got = coil ? (bits[i] ? 1 : 0) : back[i];
        uint16_t want = coil ? (io->data[i] ? 1 : 0) : io->data[i];
        if (got != want) {
            errno = 0;
            return 1;
        }
    }
    return 0;
}

static void run_io(struct ad_link *link, struct ad_io *io)
{
    io->rc = ensure_connected(link);
    if (io->rc != GW_OK) {
        io->rc = GW_EDISCONNECTED;
        return;
    }
    uint32_t t = io->timeout_ms ? io->timeout_ms : link->cfg->timeout_ms;
    if (bus_setup(link, io->unit_id, t) != 0) {
        io->rc = GW_EINVAL;
        return;
    }
    for (uint32_t attempt = 0; attempt <= io->retries; attempt++) {
        pace(link);
        int64_t t0 = mono_us();
        int r = transact(link, io);
        int e = errno;
        if (r == 0 && io->verify && io->op != AD_IO_READ) {
            int v = verify(link, io);
            if (v > 0) {
                link->last_frame_end_us = mono_us();
                io->rtt_us = (uint32_t)(link->last_frame_end_us - t0);
                io->rc = GW_EVERIFY;
                return;
            }
            r = v;
            e = errno;
        }
        link->last_frame_end_us = mono_us();
        link->last_broadcast = io->unit_id == MODBUS_BROADCAST_ADDRESS;
        io->rtt_us = (uint32_t)(link->last_frame_end_us - t0);
        if (r == 0) {
            io->rc = GW_OK;
            return;
        }
        io->rc = classify(e, &io->exception);
        if (io->rc == GW_ETIMEOUT && link->last_broadcast &&
            io->op != AD_IO_READ) {
            /* Nobody answers a broadcast write: silence is success. */
            io->rc = GW_OK;
            return;
        }
        if (io->rc == GW_EMBEXC || io->rc == GW_EINVAL)
            return; /* the unit answered: retrying changes nothing */
        if (io->rc == GW_EDISCONNECTED) {
            GW_LOG(link->log, GW_LOG_WARN, "modbus", "link %s: %s",
                   link->cfg->name, modbus_strerror(e));
            disconnect(link, true);
            /* Reconnect at once for the retry, then back off. */
            if (ensure_connected(link) != GW_OK)
                return;
            bus_setup(link, io->unit_id, t);
            continue;
        }
        /* Timeout or garbled reply: drop whatever is still in flight. */
        bus_flush(link);
    }
}

static void run_job(struct ad_link *link, struct ad_job *job);

/* Pops a job of higher priority than `below`, or NULL.  Called locked. */
static struct ad_job *pop_urgent(struct ad_link *link, enum ad_prio below)
{
    for (int p = 0; p < (int)below; p++) {
        struct ad_job *job = link->queue[p];
        if (job) {
            link->queue[p] = job->next;
            if (!job->next)
                link->queue_tail[p] = NULL;
            job->next = NULL;
            return job;
        }
    }
    return NULL;
}

static void finish_job(struct ad_link *link, struct ad_job *job)
{
    pthread_mutex_lock(&link->mu);
    job->next = link->finished;
    link->finished = job;
    uv_async_send(&link->async);
    pthread_mutex_unlock(&link->mu);
}

/* Between two requests of a poll cycle: writes and on-demand reads that
 * arrived meanwhile go first, so a long cycle never holds a command back
 * for more than one transaction. */
static void run_urgent(struct ad_link *link)
{
    for (;;) {
        pthread_mutex_lock(&link->mu);
        struct ad_job *job =
            link->stopping ? NULL : pop_urgent(link, AD_PRIO_POLL);
        pthread_mutex_unlock(&link->mu);
        if (!job)
            return;
        run_job(link, job);
        finish_job(link, job);
    }
}

static void run_job(struct ad_link *link, struct ad_job *job)
{
    uint8_t dead[256] = {0};
    for (size_t i = 0; i < job->n_ios; i++) {
        struct ad_io *io = &job->ios[i];
        if (job->prio == AD_PRIO_POLL && i > 0)
            run_urgent(link);
        io->skipped = false;
        io->exception = 0;
        io->rtt_us = 0;
        if (job->skip_dead_units && dead[io->unit_id]) {
            io->rc = GW_ETIMEOUT;
            io->skipped = true;
            continue;
        }
        run_io(link, io);
        if (io->rc == GW_ETIMEOUT)
            dead[io->unit_id] = 1;
    }
    job->connected = link->connected;
}

static struct ad_job *pop_job(struct ad_link *link)
{
    return pop_urgent(link, AD_PRIO_COUNT);
}

static void *worker(void *arg)
{
    struct ad_link *link = arg;
    pthread_mutex_lock(&link->mu);
    for (;;) {
        struct ad_job *job = NULL;
        while (!link->stopping && (job = pop_job(link)) == NULL)
            pthread_cond_wait(&link->cv, &link->mu);
        if (link->stopping) {
            if (job) {
                job->next = link->queue[job->prio];
                link->queue[job->prio] = job;
            }
            break;
        }
        pthread_mutex_unlock(&link->mu);
        run_job(link, job);
        finish_job(link, job);
        pthread_mutex_lock(&link->mu);
    }
    /* Cancel what is still queued. */
    struct ad_job *job;
    while ((job = pop_job(link)) != NULL) {
        for (size_t i = 0; i < job->n_ios; i++)
            job->ios[i].rc = GW_ECANCELED;
        job->connected = link->connected;
        job->next = link->finished;
        link->finished = job;
    }
    pthread_mutex_unlock(&link->mu);
    disconnect(link, false);
    return NULL;
}

int ad_link_start(struct ad_link *link)
{
    if (pthread_create(&link->thread, NULL, worker, link) != 0)
        return GW_ESYS;
    link->started = true;
    return GW_OK;
}

int ad_link_submit(struct ad_link *link, struct ad_job *job)
{
    pthread_mutex_lock(&link->mu);
    if (link->stopping || !link->started) {
        pthread_mutex_unlock(&link->mu);
        return GW_ECLOSED;
    }
    job->next = NULL;
    if (link->queue_tail[job->prio])
        link->queue_tail[job->prio]->next = job;
    else
        link->queue[job->prio] = job;
    link->queue_tail[job->prio] = job;
    pthread_cond_signal(&link->cv);
    pthread_mutex_unlock(&link->mu);
    return GW_OK;
}

static void on_async_closed(uv_handle_t *h)
{
    struct ad_link *link = h->data;
    pthread_cond_destroy(&link->cv);
    pthread_mutex_destroy(&link->mu);
    if (link->closed_cb)
        link->closed_cb(link);
}

void ad_link_close(struct ad_link *link,
                   void (*closed_cb)(struct ad_link *link))
{
    link->closed_cb = closed_cb;
    pthread_mutex_lock(&link->mu);
    link->stopping = true;
    pthread_cond_signal(&link->cv);
    pthread_mutex_unlock(&link->mu);
    if (link->started) {
        /* Waits for at most the transaction in progress. */
        pthread_join(link->thread, NULL);
        link->started = false;
    }
    deliver(link);
    uv_close((uv_handle_t *)&link->async, on_async_closed);
}
