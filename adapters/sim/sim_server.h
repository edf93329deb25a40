/* sim_server.h - the simulator's event loop: units, TCP listeners, RTU
 * ports, the wave timer, delayed (slow) answers and signals.
 *
 * Internal to adapters/sim/.  One libuv loop on one thread serves every
 * transport; nothing blocks (slow units answer from a timer).  Shutdown:
 * sim_server_stop() closes every handle; once uv_run() returns the caller
 * calls sim_server_close(), after which uv_loop_close() succeeds. */
#ifndef SIM_SERVER_H
#define SIM_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "gw_log.h"
#include "sim_device.h"

#define SIM_ADU_MAX 260 /* TCP: 7-byte MBAP + 253-byte PDU */
#define SIM_MAX_CONNS 8192

struct sim_delay;
struct sim_listener;
struct sim_conn;
struct sim_rtu;

/* Sends a finished ADU for a delayed answer; owner is the transport's. */
typedef void sim__send_fn(void *owner, const uint8_t *adu, size_t len);

/* Delayed answers waiting on behalf of one owner (a connection or port). */
struct sim_delay_list {
    struct sim_delay *head;
};

struct sim_rtu_opts {
    char device[256];
    int baud;    /* default 19200 */
    char parity; /* 'N', 'E' or 'O'; default 'E' */
    int data;    /* default 8 */
    int stop;    /* default 1 */
};

struct sim_server {
    uv_loop_t *loop;
    const struct gw_log *log;
    struct sim_unit *units[SIM_MAX_UNIT + 1]; /* owned */
    uint32_t tick_ms;
    uint64_t start_ms;
    uv_timer_t tick;
    uv_signal_t sig_term, sig_int;
    uv_signal_t sig_usr1, sig_usr2; /* fault switches: off, on */
    struct sim_listener *listeners;
    struct sim_conn *conns;
    size_t n_conns;
    struct sim_rtu *rtus;
    bool stopping;
};

/* Initialises srv on loop: takes ownership of units[] (NULL entries are
 * absent units), starts the wave timer and the signal handlers (SIGTERM,
 * SIGINT -> sim_server_stop; SIGUSR1 suspends every unit's faults and
 * prints "FAULTS off" on stdout, SIGUSR2 puts them back and prints "FAULTS
 * on").  Returns 0 or a gw_err. */
int sim_server_init(struct sim_server *srv, uv_loop_t *loop,
                    const struct gw_log *log,
                    struct sim_unit *units[SIM_MAX_UNIT + 1], uint32_t tick_ms);

/* Closes every handle (listeners, connections, ports, timers, signals).
 * Idempotent. */
void sim_server_stop(struct sim_server *srv);

/* Frees the units; call after uv_run() returned following a stop. */
void sim_server_close(struct sim_server *srv);

/* Listens on host:port (port 0 = any free port); writes the bound address
 * as "HOST:PORT" (IPv6 as "[HOST]:PORT") into name.  0 or a gw_err. */
int sim_tcp_listen(struct sim_server *srv, const char *host, uint16_t port,
                   char *name, size_t name_cap);

/* Opens a serial device (via libmodbus) and serves RTU on it.  0 or a
 * gw_err. */
int sim_rtu_open(struct sim_server *srv, const struct sim_rtu_opts *opts);

/* Internal, shared by the transports. */

/* Sends an answer ms later: copies adu, then calls send(owner, ...)
 * unless the list is cancelled first.  Returns 0 or GW_ENOMEM. */
int sim__delay(struct sim_server *srv, struct sim_delay_list *list, uint32_t ms,
               sim__send_fn *send, void *owner, const uint8_t *adu, size_t len);

/* Cancels (and frees, asynchronously) every pending answer of list. */
void sim__delay_cancel(struct sim_delay_list *list);

void sim__tcp_stop(struct sim_server *srv);
void sim__rtu_stop(struct sim_server *srv);

/* Logs a request at debug level. */
void sim__log_request(const struct sim_server *srv, const char *via,
                      uint8_t unit, const uint8_t *pdu, size_t len,
                      const uint8_t *rsp, size_t rsp_len);

#endif
