/* fgt_proc.h - test helpers: start peer processes (fieldgate-sim, socat,
 * our own binaries), wait for their readiness, stop them by PID.
 *
 * Every process is started with fork/execvp, its stdout on a pipe that the
 * helpers read, its stderr inherited (so ctest logs show it).  Readiness is
 * a line on stdout (fieldgate-sim's "READY tcp=HOST:PORT ...") or a file
 * appearing (socat's pty links); waits poll with a deadline, never a bare
 * sleep.  fgt_proc_stop() signals exactly the PID it started and reaps it.
 * Paths of our binaries come from FG_BUILD_DIR (compile definition, or the
 * environment variable of the same name, which wins). */
#ifndef FGT_PROC_H
#define FGT_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FGT_LINE_MAX 4096

struct fgt_proc {
    pid_t pid;                /* 0 when not running */
    int out_fd;               /* read end of the child's stdout, or -1 */
    char ready[FGT_LINE_MAX]; /* the READY line, without newline */
    char out[FGT_LINE_MAX];   /* what fgt_proc_read_all collected */
    size_t n_out;
};

/* $FG_BUILD_DIR/name into buf.  Returns buf. */
char *fgt_build_path(const char *name, char *buf, size_t cap);

/* Starts argv[0] (searched in PATH when it has no slash).  0 or -1. */
int fgt_proc_start(struct fgt_proc *p, char *const argv[]);

/* Reads child stdout lines until one starts with prefix (copied into
 * p->ready) or timeout_ms passes or the child exits.  0 or -1. */
int fgt_proc_wait_line(struct fgt_proc *p, const char *prefix, int timeout_ms);

/* The value of " key=VALUE" in p->ready into buf.  0 or -1. */
int fgt_ready_value(const struct fgt_proc *p, const char *key, char *buf,
                    size_t cap);

/* Sends sig to p->pid and waits up to timeout_ms for it to exit (then
 * SIGKILL).  Returns the wait status, or -1 when nothing ran.  Collects
 * remaining stdout into p->out.  Safe to call twice. */
int fgt_proc_stop(struct fgt_proc *p, int sig, int timeout_ms);

/* Kills (SIGKILL) and reaps every process started by fgt_proc_start that
 * was not stopped yet: a teardown for tests that failed half-way. */
void fgt_proc_reap_all(void);

/* cmocka-style teardown calling fgt_proc_reap_all(). */
int fgt_teardown_procs(void **state);

/* Runs argv to completion (at most timeout_ms, then SIGKILL), stdout into
 * out (NUL-terminated, truncated to cap - 1).  Returns the exit status
 * (0..255), 128 + signal, or -1. */
int fgt_run(char *const argv[], char *out, size_t cap, int timeout_ms);

/* fieldgate-sim on 127.0.0.1 (port 0 = any free port) with extra args
 * (NULL-terminated list, may be NULL).  On success *port is the port it
 * serves.  0 or -1. */
int fgt_sim_start(struct fgt_proc *p, uint16_t want_port, char *const extra[],
                  uint16_t *port);

/* A socat pty pair: creates links dir/a and dir/b.  0 or -1. */
int fgt_pty_pair(struct fgt_proc *p, const char *dir, char *a, char *b,
                 size_t cap);

/* Reads count items of `table` ('0' coils, '1' discrete, '3' input, '4'
 * holding) at 0-based addr from unit over Modbus TCP with mbpoll, an
 * independent client.  0 or -1. */
int fgt_mbpoll_read(uint16_t port, uint8_t unit, char table, uint16_t addr,
                    uint16_t count, long *out);

/* Polls until a TCP connect to 127.0.0.1:port succeeds.  0 or -1. */
int fgt_wait_port(uint16_t port, int timeout_ms);

/* A fresh directory under /tmp ("fgt-XXXXXX").  0 or -1. */
int fgt_tmpdir(char *buf, size_t cap);

/* Writes text to path.  0 or -1. */
int fgt_write_file(const char *path, const char *text);

/* Removes dir and the plain files in it. */
void fgt_rmtree(const char *dir);

/* Monotonic milliseconds. */
int64_t fgt_mono_ms(void);

#endif
