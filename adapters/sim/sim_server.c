/* sim_server.c - loop plumbing: wave timer, signals, delayed answers. */
#include "sim_server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_err.h"

struct sim_delay {
    uv_timer_t timer;
    struct sim_delay_list *list; /* NULL once cancelled */
    struct sim_delay *prev, *next;
    sim__send_fn *send;
    void *owner;
    size_t len;
    uint8_t adu[SIM_ADU_MAX];
};

static void on_tick(uv_timer_t *t)
{
    struct sim_server *srv = t->data;
    uint64_t now = uv_now(srv->loop) - srv->start_ms;
    for (unsigned id = 0; id <= SIM_MAX_UNIT; id++) {
        if (srv->units[id])
            sim_unit_tick(srv->units[id], now);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct sim_server *srv = s->data;
    GW_LOG(srv->log, GW_LOG_INFO, "sim", "signal %d: stopping", signum);
    sim_server_stop(srv);
}

/* The runtime fault switch: every unit at once, announced on stdout (the
 * READY line's channel) so a test can wait for it. */
static void on_fault_signal(uv_signal_t *s, int signum)
{
    struct sim_server *srv = s->data;
    bool off = signum == SIGUSR1;
    for (unsigned id = 0; id <= SIM_MAX_UNIT; id++) {
        if (srv->units[id])
            sim_unit_suspend_faults(srv->units[id], off);
    }
    GW_LOG(srv->log, GW_LOG_INFO, "sim", "signal %d: faults %s", signum,
           off ? "off" : "on");
    printf("FAULTS %s\n", off ? "off" : "on");
    fflush(stdout);
}

int sim_server_init(struct sim_server *srv, uv_loop_t *loop,
                    const struct gw_log *log,
                    struct sim_unit *units[SIM_MAX_UNIT + 1], uint32_t tick_ms)
{
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->log = log;
    srv->tick_ms = tick_ms ? tick_ms : 100;
    memcpy(srv->units, units, sizeof(srv->units));
    memset(units, 0, sizeof(srv->units));
    srv->start_ms = uv_now(loop);
    /* These inits cannot fail on Linux for valid arguments. */
    uv_timer_init(loop, &srv->tick);
    srv->tick.data = srv;
    uv_signal_init(loop, &srv->sig_term);
    srv->sig_term.data = srv;
    uv_signal_init(loop, &srv->sig_int);
    srv->sig_int.data = srv;
    uv_signal_init(loop, &srv->sig_usr1);
    srv->sig_usr1.data = srv;
    uv_signal_init(loop, &srv->sig_usr2);
    srv->sig_usr2.data = srv;
    bool any_live = false;
    for (unsigned id = 0; id <= SIM_MAX_UNIT; id++) {
        if (srv->units[id] && srv->units[id]->n_live)
            any_live = true;
    }
    if (any_live)
        uv_timer_start(&srv->tick, on_tick, srv->tick_ms, srv->tick_ms);
    int rc = uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
    if (rc == 0)
        rc = uv_signal_start(&srv->sig_int, on_signal, SIGINT);
    if (rc == 0)
        rc = uv_signal_start(&srv->sig_usr1, on_fault_signal, SIGUSR1);
    if (rc == 0)
        rc = uv_signal_start(&srv->sig_usr2, on_fault_signal, SIGUSR2);
    if (rc != 0) {
        GW_LOG(log, GW_LOG_ERROR, "sim", "signal handlers: %s",
               uv_strerror(rc));
        sim_server_stop(srv);
        return GW_ESYS;
    }
    return GW_OK;
}

void sim_server_stop(struct sim_server *srv)
{
    if (srv->stopping)
        return;
    srv->stopping = true;
    sim__tcp_stop(srv);
    sim__rtu_stop(srv);
    uv_close((uv_handle_t *)&srv->tick, NULL);
    uv_close((uv_handle_t *)&srv->sig_term, NULL);
    uv_close((uv_handle_t *)&srv->sig_int, NULL);
    uv_close((uv_handle_t *)&srv->sig_usr1, NULL);
    uv_close((uv_handle_t *)&srv->sig_usr2, NULL);
}

void sim_server_close(struct sim_server *srv)
{
    for (unsigned id = 0; id <= SIM_MAX_UNIT; id++) {
        sim_unit_free(srv->units[id]);
        srv->units[id] = NULL;
    }
}

static void delay_free(uv_handle_t *h)
{
    free(h->data);
}

static void delay_unlink(struct sim_delay *d)
{
    if (!d->list)
        return;
    if (d->prev)
        d->prev->next = d->next;
    else
        d->list->head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    d->list = NULL;
    d->prev = d->next = NULL;
}

static void on_delay(uv_timer_t *t)
{
    struct sim_delay *d = t->data;
    if (d->list) {
        delay_unlink(d);
        d->send(d->owner, d->adu, d->len);
    }
    uv_close((uv_handle_t *)&d->timer, delay_free);
}

int sim__delay(struct sim_server *srv, struct sim_delay_list *list, uint32_t ms,
               sim__send_fn *send, void *owner, const uint8_t *adu, size_t len)
{
    if (len > SIM_ADU_MAX)
        return GW_EINVAL;
    struct sim_delay *d = calloc(1, sizeof(*d));
    if (!d)
        return GW_ENOMEM;
    uv_timer_init(srv->loop, &d->timer);
    d->timer.data = d;
    d->send = send;
    d->owner = owner;
    d->len = len;
    memcpy(d->adu, adu, len);
    d->list = list;
    d->next = list->head;
    if (list->head)
        list->head->prev = d;
    list->head = d;
    uv_timer_start(&d->timer, on_delay, ms, 0);
    return GW_OK;
}

void sim__delay_cancel(struct sim_delay_list *list)
{
    while (list->head) {
        struct sim_delay *d = list->head;
        delay_unlink(d);
        uv_close((uv_handle_t *)&d->timer, delay_free);
    }
}

void sim__log_request(const struct sim_server *srv, const char *via,
                      uint8_t unit, const uint8_t *pdu, size_t len,
                      const uint8_t *rsp, size_t rsp_len)
{
    if (!srv->log || srv->log->level < GW_LOG_DEBUG)
        return;
    unsigned fc = len ? pdu[0] : 0;
    unsigned addr = len >= 3 ? (unsigned)pdu[1] << 8 | pdu[2] : 0;
    unsigned arg = len >= 5 ? (unsigned)pdu[3] << 8 | pdu[4] : 0;
    /* FC05/FC06 carry a value where the others carry a quantity. */
    const char *what = (fc == 5 || fc == 6) ? "value" : "qty";
    char outcome[32];
    if (rsp_len == 0)
        snprintf(outcome, sizeof(outcome), "no answer");
    else if (rsp[0] & 0x80)
        snprintf(outcome, sizeof(outcome), "exception %02x",
                 rsp_len > 1 ? rsp[1] : 0u);
    else
        snprintf(outcome, sizeof(outcome), "ok");
    GW_LOG(srv->log, GW_LOG_DEBUG, "sim", "%s unit %u fc %u addr %u %s %u: %s",
           via, unit, fc, addr, what, arg, outcome);
}
