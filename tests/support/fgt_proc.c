/* fgt_proc.c - peer processes for integration tests. */
#include "fgt_proc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef FG_BUILD_DIR
#define FG_BUILD_DIR "."
#endif

/* PIDs started and not yet stopped (test-process bookkeeping only). */
#define MAX_LIVE 64
static pid_t live[MAX_LIVE];

static void live_add(pid_t pid)
{
    for (size_t i = 0; i < MAX_LIVE; i++) {
        if (live[i] == 0) {
            live[i] = pid;
            return;
        }
    }
}

static void live_del(pid_t pid)
{
    for (size_t i = 0; i < MAX_LIVE; i++)
        if (live[i] == pid)
            live[i] = 0;
}

void fgt_proc_reap_all(void)
{
    for (size_t i = 0; i < MAX_LIVE; i++) {
        if (live[i] > 0) {
            kill(live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
            live[i] = 0;
        }
    }
}

int fgt_teardown_procs(void **state)
{
    (void)state;
    fgt_proc_reap_all();
    return 0;
}

int64_t fgt_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

char *fgt_build_path(const char *name, char *buf, size_t cap)
{
    const char *dir = getenv("FG_BUILD_DIR");
    snprintf(buf, cap, "%s/%s", dir && *dir ? dir : FG_BUILD_DIR, name);
    return buf;
}

int fgt_proc_start(struct fgt_proc *p, char *const argv[])
{
    memset(p, 0, sizeof(*p));
    p->out_fd = -1;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        /* Own process group: a signal to the test runner's group does
         * not reach the peer twice. */
        setpgid(0, 0);
        execvp(argv[0], argv);
        fprintf(stderr, "fgt: cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    p->pid = pid;
    p->out_fd = fds[0];
    live_add(pid);
    return 0;
}

/* Appends what is readable within timeout_ms to p->out.  Returns bytes
 * read, 0 at EOF, -1 on timeout. */
static int read_some(struct fgt_proc *p, int timeout_ms)
{
    struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
    int r = poll(&pfd, 1, timeout_ms);
    if (r <= 0)
        return -1;
    char buf[1024];
    ssize_t n = read(p->out_fd, buf, sizeof(buf));
    if (n <= 0)
        return 0;
    size_t room = sizeof(p->out) - 1 - p->n_out;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(p->out + p->n_out, buf, take);
    p->n_out += take;
    p->out[p->n_out] = '\0';
    return (int)n;
}

int fgt_proc_wait_line(struct fgt_proc *p, const char *prefix, int timeout_ms)
{
    int64_t deadline = fgt_mono_ms() + timeout_ms;
    size_t scanned = 0;
    for (;;) {
        /* Look for a complete line starting with prefix. */
        char *nl;
        while ((nl = memchr(p->out + scanned, '\n', p->n_out - scanned))) {
            size_t len = (size_t)(nl - (p->out + scanned));
            if (strncmp(p->out + scanned, prefix, strlen(prefix)) == 0) {
                if (len >= sizeof(p->ready))
                    len = sizeof(p->ready) - 1;
                memcpy(p->ready, p->out + scanned, len);
                p->ready[len] = '\0';
                return 0;
            }
            scanned += len + 1;
        }
        int64_t left = deadline - fgt_mono_ms();
        if (left <= 0 || p->out_fd < 0)
            return -1;
        if (read_some(p, (int)left) == 0)
            return -1; /* EOF: the child closed stdout or exited */
    }
}

int fgt_ready_value(const struct fgt_proc *p, const char *key, char *buf,
                    size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), " %s=", key);
    const char *at = strstr(p->ready, pat);
    if (!at)
        return -1;
    at += strlen(pat);
    size_t len = strcspn(at, " ");
    if (len >= cap)
        return -1;
    memcpy(buf, at, len);
    buf[len] = '\0';
    return 0;
}

int fgt_proc_stop(struct fgt_proc *p, int sig, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    int status = -1;
    kill(p->pid, sig);
    int64_t deadline = fgt_mono_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid)
            break;
        if (r < 0) {
            status = -1;
            break;
        }
        if (fgt_mono_ms() >= deadline) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            break;
        }
        /* Drain stdout meanwhile so the child never blocks on it. */
        if (p->out_fd >= 0) {
            if (read_some(p, 20) == 0) {
                close(p->out_fd);
                p->out_fd = -1;
            }
        } else {
            nap_ms(10);
        }
    }
    if (p->out_fd >= 0) {
        while (read_some(p, 0) > 0)
            ;
        close(p->out_fd);
        p->out_fd = -1;
    }
    live_del(p->pid);
    p->pid = 0;
    return status;
}

int fgt_run(char *const argv[], char *out, size_t cap, int timeout_ms)
{
    struct fgt_proc p;
    if (fgt_proc_start(&p, argv) != 0)
        return -1;
    int64_t deadline = fgt_mono_ms() + timeout_ms;
    int status = -1;
    for (;;) {
        int64_t left = deadline - fgt_mono_ms();
        if (left <= 0) {
            status = fgt_proc_stop(&p, SIGKILL, 1000);
            break;
        }
        if (p.out_fd < 0 || read_some(&p, (int)(left < 50 ? left : 50)) == 0) {
            if (p.out_fd >= 0) {
                close(p.out_fd);
                p.out_fd = -1;
            }
            pid_t r = waitpid(p.pid, &status, WNOHANG);
            if (r == p.pid) {
                live_del(p.pid);
                p.pid = 0;
                break;
            }
            if (r < 0) {
                live_del(p.pid);
                p.pid = 0;
                status = -1;
                break;
            }
            nap_ms(5);
        }
    }
    if (p.out_fd >= 0)
        close(p.out_fd);
    if (out && cap) {
        size_t n = p.n_out < cap - 1 ? p.n_out : cap - 1;
        memcpy(out, p.out, n);
        out[n] = '\0';
    }
    if (status < 0)
        return -1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

int fgt_sim_start(struct fgt_proc *p, uint16_t want_port, char *const extra[],
                  uint16_t *port)
{
    char sim[512], tcp[64];
    fgt_build_path("fieldgate-sim", sim, sizeof(sim));
    snprintf(tcp, sizeof(tcp), "127.0.0.1:%u", (unsigned)want_port);
    char *argv[64];
    size_t n = 0;
    argv[n++] = sim;
    argv[n++] = (char *)"--tcp";
    argv[n++] = tcp;
    for (size_t i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    if (fgt_proc_start(p, argv) != 0)
        return -1;
    char addr[64];
    if (fgt_proc_wait_line(p, "READY", 15000) != 0 ||
        fgt_ready_value(p, "tcp", addr, sizeof(addr)) != 0) {
        fgt_proc_stop(p, SIGKILL, 1000);
        return -1;
    }
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return -1;
    *port = (uint16_t)strtoul(colon + 1, NULL, 10);
    return 0;
}

int fgt_pty_pair(struct fgt_proc *p, const char *dir, char *a, char *b,
                 size_t cap)
{
    snprintf(a, cap, "%s/a", dir);
    snprintf(b, cap, "%s/b", dir);
    char sa[600], sb[600];
    snprintf(sa, sizeof(sa), "pty,raw,echo=0,link=%s", a);
    snprintf(sb, sizeof(sb), "pty,raw,echo=0,link=%s", b);
    char *argv[] = {(char *)"socat", sa, sb, NULL};
    if (fgt_proc_start(p, argv) != 0)
        return -1;
    int64_t deadline = fgt_mono_ms() + 10000;
    struct stat st;
    while (stat(a, &st) != 0 || stat(b, &st) != 0) {
        if (fgt_mono_ms() > deadline ||
            waitpid(p->pid, NULL, WNOHANG) == p->pid) {
            fgt_proc_stop(p, SIGKILL, 1000);
            return -1;
        }
        nap_ms(10);
    }
    return 0;
}

int fgt_wait_port(uint16_t port, int timeout_ms)
{
    int64_t deadline = fgt_mono_ms() + timeout_ms;
    for (;;) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
            return -1;
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int r = connect(s, (struct sockaddr *)&sa, sizeof(sa));
        close(s);
        if (r == 0)
            return 0;
        if (fgt_mono_ms() > deadline)
            return -1;
        nap_ms(20);
    }
}

int fgt_tmpdir(char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/fgt-XXXXXX");
    return mkdtemp(buf) ? 0 : -1;
}

int fgt_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t len = strlen(text);
    int rc = fwrite(text, 1, len, f) == len ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

void fgt_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int fgt_mbpoll_read(uint16_t port, uint8_t unit, char table, uint16_t addr,
                    uint16_t count, long *out)
{
    char a[8], r[8], c[8], t[4] = {table, 0}, pt[8];
    snprintf(a, sizeof(a), "%u", (unsigned)unit);
    snprintf(r, sizeof(r), "%u", (unsigned)addr);
    snprintf(c, sizeof(c), "%u", (unsigned)count);
    snprintf(pt, sizeof(pt), "%u", (unsigned)port);
    char *argv[] = {(char *)"mbpoll",
                    (char *)"-m",
                    (char *)"tcp",
                    (char *)"-a",
                    a,
                    (char *)"-0",
                    (char *)"-r",
                    r,
                    (char *)"-c",
                    c,
                    (char *)"-t",
                    t,
                    (char *)"-1",
                    (char *)"-p",
                    pt,
                    (char *)"127.0.0.1",
                    NULL};
    char text[FGT_LINE_MAX];
    if (fgt_run(argv, text, sizeof(text), 10000) != 0)
        return -1;
    /* Lines "[ADDR]: \tVALUE". */
    for (uint16_t i = 0; i < count; i++) {
        char key[16];
        snprintf(key, sizeof(key), "[%u]:", (unsigned)(addr + i));
        const char *at = strstr(text, key);
        if (!at)
            return -1;
        char *end;
        out[i] = strtol(at + strlen(key), &end, 0);
        if (end == at + strlen(key))
            return -1;
    }
    return 0;
}
