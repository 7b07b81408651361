/* bench_ingest.c — the ingest benchmark (`make bench-ingest`).
 *
 * Runs the real `siyu serve` on a temporary data directory with its default,
 * durable settings (WAL, synchronous=FULL, group commit) and measures:
 *
 *   healthz     GET /healthz over the callback connections: the HTTP floor;
 *   callbacks   closed loop: N distinct encrypted add_external_contact
 *               callbacks POSTed to /wecom/callback/{tenant} over --conns
 *               keep-alive connections (one request in flight each);
 *   open        open loop: the same kind of callbacks offered at a fixed rate
 *               (--rate) for --open-seconds; latency counts from the scheduled
 *               send time, so a stalled server cannot hide queueing delay;
 *   events      POST /api/v1/events in batches of --batch events;
 *   sqlite      the peer: the same event rows inserted by one plain SQLite
 *               connection (WAL, synchronous=FULL, commit every --batch rows)
 *               into a fresh database made by `siyu migrate`.
 *
 * Every case is verified afterwards by opening the server's database read-only
 * and comparing row counts and an order-independent checksum (sum of FNV-1a
 * hashes of the rows' identifying columns) with what was sent, so a speed-up
 * that changes the answer is caught. The exit status is 1 only when such a
 * check fails; missed performance targets are reported as MISS.
 *
 * Data is generated up front from --seed (xoshiro256**): ~2,000 employees with
 * Zipf-skewed customer counts, 50 channel states (Zipf), external_userids "wo"
 * + 30 characters, a few customers who add a second employee, strictly
 * increasing CreateTime; events pick customers by Zipf and types by weight.
 *
 * Load generator: --threads threads, each owning a share of the connections
 * and a poll() loop over raw non-blocking sockets speaking HTTP/1.1. Requests
 * are pre-built byte strings; a request index is claimed with an atomic
 * counter. Every request's latency is kept (monotonic clock), and the CPU
 * time of the server and of this process is read from /proc around each case.
 *
 * Ownership: main() owns the workloads (bench_reqs), the server child process
 * and the temporary directory (removed unless --keep). Nothing here is shared
 * with the server beyond the data directory. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ingest/events.h"
#include "wecom/wecom_crypto.h"

#define CORP_ID "wx5823bf96d3bd56c7"
#define CB_TOKEN "QDG6eK"
#define CB_AES_KEY "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
#define N_EMPLOYEES 2000
#define N_CHANNELS 50
#define BASE_TIME 1717200000LL /* 2024-06-01, fixed so the data is reproducible */

/* ---------------------------------------------------------------- options */

typedef struct bench_opts {
    const char *siyu, *out, *cases, *dump;
    long callbacks, events;
    int batch, conns, event_conns, threads;
    double rate, open_seconds;
    long seed;
    bool keep, idem_ordered;
} bench_opts;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_ingest: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory (%zu bytes)", n);
    return p;
}

static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) die("out of memory");
    return p;
}

/* The flags: one row each (name, kind, field, bounds, help); --help prints them. */
typedef enum { F_STR, F_LONG, F_INT, F_DBL, F_BOOL, F_IDEM } flag_kind;
typedef struct flag_def {
    const char *name;
    flag_kind kind;
    size_t off;
    long lo, hi;
    const char *help;
} flag_def;
#define FLAG(n, k, f, lo, hi, h)                                                                   \
    { n, k, offsetof(bench_opts, f), lo, hi, h }
// clang-format off
static const flag_def FLAGS[] = {
    FLAG("siyu", F_STR, siyu, 0, 0, "PATH  the siyu binary (default ./build/siyu)"),
    FLAG("out", F_STR, out, 0, 0, "FILE  append the Markdown results to FILE"),
    FLAG("cases", F_STR, cases, 0, 0, "LIST  of healthz,callbacks,open,events,sqlite (default all)"),
    FLAG("callbacks", F_LONG, callbacks, 0, 10000000, "N  closed-loop callbacks (default 100000)"),
    FLAG("conns", F_INT, conns, 1, 4096, "N  connections for callbacks, one request in flight each (32)"),
    FLAG("rate", F_DBL, rate, 0, 1000000, "R  open-loop offered callbacks/s (default 5000; 0 = skip)"),
    FLAG("open-seconds", F_DBL, open_seconds, 1, 3600, "S  open-loop duration (default 10)"),
    FLAG("events", F_LONG, events, 0, 100000000, "N  events via the API and the SQLite peer (1000000)"),
    FLAG("batch", F_INT, batch, 1, 100000, "N  events per request and per peer transaction (1000)"),
    FLAG("event-conns", F_INT, event_conns, 1, 1024, "N  connections for events (default 4)"),
    FLAG("idem-keys", F_IDEM, idem_ordered, 0, 0, "random|ordered  UUIDv4-like (default) or ULID-like"),
    FLAG("threads", F_INT, threads, 1, 64, "N  load generator threads (default 2)"),
    FLAG("seed", F_LONG, seed, 0, LONG_MAX, "N  data seed (default 42)"),
    FLAG("keep", F_BOOL, keep, 0, 0, "   keep the temporary data directory"),
    FLAG("dump", F_STR, dump, 0, 0, "PREFIX  per-request TSV (start_ms, latency_ms, status) files"),
};
// clang-format on

static void usage(FILE *f) {
    fputs("usage: bench_ingest --siyu PATH [--out FILE] [options]\n", f);
    for (size_t k = 0; k < sizeof FLAGS / sizeof *FLAGS; k++)
        fprintf(f, "  --%-13s %s\n", FLAGS[k].name, FLAGS[k].help);
}

static void flag_set(bench_opts *o, const flag_def *f, const char *v) {
    char *p = (char *)o + f->off, *end;
    if (f->kind == F_STR) {
        *(const char **)p = v;
        return;
    }
    if (f->kind == F_IDEM) {
        if (strcmp(v, "random") != 0 && strcmp(v, "ordered") != 0)
            die("--idem-keys must be random or ordered");
        *(bool *)p = !strcmp(v, "ordered");
        return;
    }
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < f->lo || x > f->hi)
        die("--%s must be an integer in [%ld, %ld], got '%s'", f->name, f->lo, f->hi, v);
    if (f->kind == F_LONG)
        *(long *)p = x;
    else if (f->kind == F_INT)
        *(int *)p = (int)x;
    else
        *(double *)p = (double)x;
}

static void opts_parse(bench_opts *o, int argc, char **argv) {
    // clang-format off
    *o = (bench_opts){.siyu = "./build/siyu", .cases = "healthz,callbacks,open,events,sqlite",
                      .callbacks = 100000, .events = 1000000, .batch = 1000, .conns = 32,
                      .event_conns = 4, .threads = 2, .rate = 5000, .open_seconds = 10, .seed = 42};
    // clang-format on
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        const flag_def *f = NULL;
        for (size_t k = 0; k < sizeof FLAGS / sizeof *FLAGS; k++)
            if (!strncmp(a, "--", 2) && !strcmp(a + 2, FLAGS[k].name)) f = &FLAGS[k];
        if (!f) {
            usage(stderr);
            die("unknown flag '%s'", a);
        }
        if (f->kind == F_BOOL)
            *(bool *)((char *)o + f->off) = true;
        else if (i + 1 < argc)
            flag_set(o, f, argv[++i]);
        else
            die("--%s needs a value", f->name);
    }
}

static bool case_on(const bench_opts *o, const char *name) {
    size_t n = strlen(name);
    for (const char *p = o->cases; (p = strstr(p, name)) != NULL; p += n)
        if ((p == o->cases || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return true;
    return false;
}

/* ---------------------------------------------------------------- utilities */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_init(rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r) { /* xoshiro256** */
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

static double rng_unit(rng *r) {
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}
static uint64_t rng_below(rng *r, uint64_t n) {
    return n ? rng_next(r) % n : 0;
}

static void rng_chars(rng *r, char *out, size_t n, const char *alphabet) {
    size_t k = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[rng_below(r, k)];
    out[n] = 0;
}

/* x^-s for x >= 1 without libm (the bench target links only siyu_core):
 * exp(-s * ln x) with ln by atanh series after halving, exp by Taylor series
 * after splitting off powers of two. Accurate to ~1e-15, plenty for weights. */
static double pow_neg(double x, double s) {
    int k = 0;
    while (x >= 2) {
        x /= 2;
        k++;
    }
    double z = (x - 1) / (x + 1), z2 = z * z, term = z, ln = 0;
    for (int i = 1; i < 60; i += 2, term *= z2)
        ln += term / i;
    double y = -s * (2 * ln + k * 0.69314718055994530942); /* <= 0 */
    int halves = 0;
    while (y < -0.5) {
        y /= 2;
        halves++;
    }
    double e = 1, t = 1;
    for (int i = 1; i < 30; i++)
        e += (t *= y / i);
    while (halves-- > 0)
        e *= e;
    return e;
}

/* Zipf(s) over n ranks as a cumulative table; zipf_draw is a binary search. */
typedef struct zipf {
    double *cdf;
    size_t n;
} zipf;

static void zipf_init(zipf *z, size_t n, double s) {
    z->n = n;
    z->cdf = xmalloc(n * sizeof *z->cdf);
    double acc = 0;
    for (size_t i = 0; i < n; i++)
        z->cdf[i] = (acc += pow_neg((double)(i + 1), s));
}

static size_t zipf_draw(const zipf *z, rng *r) {
    double u = rng_unit(r) * z->cdf[z->n - 1];
    size_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (z->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void zipf_free(zipf *z) {
    free(z->cdf);
}

static uint64_t fnv1a(const char *s, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

/* Hash of a row given as fields joined by '|'; rows are summed, so the
 * checksum does not depend on row order. NULL fields hash like "". */
static uint64_t row_hash(int nf, const char *const *f) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < nf; i++) {
        if (i) h = fnv1a("|", 1, h);
        if (f[i]) h = fnv1a(f[i], strlen(f[i]), h);
    }
    return h;
}

/* Growable byte buffer. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sbuf_reserve(sbuf *b, size_t add) {
    if (b->len + add + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + add + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) die("out of memory");
    b->p = p;
    b->cap = cap;
}

static void sbuf_add(sbuf *b, const char *s, size_t n) {
    sbuf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sbuf_vprintf(sbuf *b, const char *fmt, va_list ap) {
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    sbuf_reserve(b, (size_t)n);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

static void sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sbuf_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sbuf_vprintf(b, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- processes */

/* Forks and execs argv with stdout on out_fd and stderr appended to err_path
 * (NULL: inherited). Returns the child's pid; dies if fork fails. */
static pid_t spawn(const char *const *argv, int out_fd, int close_fd, const char *err_path) {
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        int efd = err_path ? open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0600) : -1;
        if (efd >= 0) dup2(efd, 2);
        dup2(out_fd, 1);
        close(out_fd);
        close(close_fd);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out_fd);
    return pid;
}

/* Runs argv, captures up to cap-1 bytes of stdout into out (trailing newline
 * trimmed); stderr as in spawn(). Returns the exit status or -1. */
static int run_capture(const char *const *argv, char *out, size_t cap, const char *err_path) {
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    pid_t pid = spawn(argv, pfd[1], pfd[0], err_path);
    size_t len = 0;
    ssize_t k;
    char sink[512];
    while ((k = read(pfd[0], len + 1 < cap ? out + len : sink,
                     len + 1 < cap ? cap - 1 - len : sizeof sink)) > 0)
        if (len + 1 < cap) len += (size_t)k;
    close(pfd[0]);
    out[len] = 0;
    while (len && (out[len - 1] == '\n' || out[len - 1] == '\r'))
        out[--len] = 0;
    int st;
    if (waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

typedef struct server {
    pid_t pid;
    int port;
    int out_fd;
} server;

/* Starts `siyu serve` with defaults on 127.0.0.1:0, stderr to log_path, and
 * waits for its "siyu: listening on HOST:PORT" line. */
static void server_start(server *s, const char *siyu, const char *data, const char *log_path) {
    int pfd[2];
    if (pipe(pfd) != 0) die("pipe: %s", strerror(errno));
    const char *argv[] = {siyu, "serve", "--data", data, "--listen", "127.0.0.1:0", NULL};
    s->pid = spawn(argv, pfd[1], pfd[0], log_path);
    s->out_fd = pfd[0];
    char line[512];
    size_t len = 0;
    int64_t deadline = now_ns() + 20 * 1000000000LL;
    while (now_ns() < deadline && len + 1 < sizeof line) {
        struct pollfd p = {.fd = s->out_fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0) continue;
        ssize_t k = read(s->out_fd, line + len, sizeof line - 1 - len);
        if (k <= 0) break;
        len += (size_t)k;
        line[len] = 0;
        char *at = strstr(line, "siyu: listening on ");
        char *colon = at ? strchr(at + 19, ':') : NULL;
        if (colon && strchr(colon, '\n')) {
            s->port = atoi(colon + 1);
            return;
        }
    }
    kill(s->pid, SIGKILL);
    die("server did not report its port; see %s", log_path);
}

/* SIGTERM and wait (clean shutdown drains the writer). Returns exit status. */
static int server_stop(server *s) {
    if (s->pid <= 0) return 0;
    kill(s->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 600; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) break;
        if (i == 599) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
        }
        usleep(50000);
    }
    close(s->out_fd);
    s->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb;
    (void)flag;
    (void)f;
    return remove(path);
}

/* ---------------------------------------------------------------- HTTP */

static int tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static const char *find_ci(const char *h, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(h + i, needle, k) == 0) return h + i;
    return NULL;
}

/* Parses one HTTP/1.1 response at buf[0..len). Returns its total length once
 * complete (status, body offset/length, close flag filled), 0 if more bytes
 * are needed, -1 if malformed or without Content-Length. */
typedef struct http_parsed {
    int status;
    size_t body_off, body_len;
    bool close;
} http_parsed;

static long http_parse(const char *buf, size_t len, http_parsed *p) {
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return len > 65536 ? -1 : 0;
    size_t hlen = (size_t)(end - buf) + 4;
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0) return -1;
    p->status = atoi(buf + 9);
    p->close = find_ci(buf, hlen, "\r\nconnection: close") != NULL;
    p->body_off = hlen;
    const char *cl = find_ci(buf, hlen, "\r\ncontent-length:");
    if (cl) {
        p->body_len = strtoul(cl + 17, NULL, 10);
        return len >= hlen + p->body_len ? (long)(hlen + p->body_len) : 0;
    }
    return -1; /* the server always sends Content-Length */
}

/* A blocking GET (for /metrics). Returns the status (0 on a network error)
 * and, on success, the body in *out_body (malloc'd, the caller frees). */
static int http_get(int port, const char *path, char **out_body) {
    *out_body = NULL;
    int fd = tcp_connect(port);
    if (fd < 0) return 0;
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) n = -1;
    sbuf resp = {0};
    http_parsed hp = {0};
    long done = 0;
    char tmp[65536];
    ssize_t k;
    while (n > 0 && done == 0 && (k = read(fd, tmp, sizeof tmp)) > 0) {
        sbuf_add(&resp, tmp, (size_t)k);
        done = http_parse(resp.p, resp.len, &hp);
    }
    close(fd);
    if (done > 0) {
        *out_body = xmalloc(hp.body_len + 1);
        memcpy(*out_body, resp.p + hp.body_off, hp.body_len);
        (*out_body)[hp.body_len] = 0;
    }
    free(resp.p);
    return done > 0 ? hp.status : 0;
}

/* ---------------------------------------------------------------- load engine */

typedef struct bench_req {
    char *buf;
    size_t len;
} bench_req;

typedef struct load {
    const bench_req *reqs;
    size_t n;
    int port;
    int conns, threads;
    double rate;         /* 0 = closed loop */
    int64_t t0;          /* start (ns, monotonic) */
    _Atomic size_t next; /* next request index to claim */
    int64_t *lat_ns;     /* per request */
    int64_t *start_ns;   /* per request, relative to t0 */
    int16_t *status;     /* per request; 0 = connection error */
    int64_t t_end;       /* all threads done */
} load;

typedef struct lconn {
    int fd;
    long req; /* -1 = idle */
    size_t sent;
    int64_t t_start;
    sbuf rb;
} lconn;

typedef struct lthread {
    load *ld;
    int count;
    pthread_t tid;
} lthread;

/* Claims the next request. Returns its index, -1 when all are claimed, -2
 * when the open-loop schedule says wait (*wait_ns set). */
static long load_claim(load *ld, int64_t *wait_ns) {
    for (;;) {
        size_t i = atomic_load(&ld->next);
        if (i >= ld->n) return -1;
        if (ld->rate > 0) {
            int64_t due = ld->t0 + (int64_t)((double)i * 1e9 / ld->rate);
            int64_t now = now_ns();
            if (now < due) {
                *wait_ns = due - now;
                return -2;
            }
        }
        if (atomic_compare_exchange_weak(&ld->next, &i, i + 1)) return (long)i;
    }
}

static int64_t load_sched(const load *ld, long i) {
    return ld->t0 + (int64_t)((double)i * 1e9 / ld->rate);
}

static void lconn_reset(lconn *c, int port) {
    if (c->fd >= 0) close(c->fd);
    c->fd = tcp_connect(port);
    if (c->fd >= 0) fcntl(c->fd, F_SETFL, O_NONBLOCK);
    c->rb.len = 0;
}

static void lconn_finish(load *ld, lconn *c, int status) {
    int64_t t = now_ns();
    ld->lat_ns[c->req] = t - c->t_start;
    ld->start_ns[c->req] = c->t_start - ld->t0;
    ld->status[c->req] = (int16_t)status;
    c->req = -1;
    c->sent = 0;
    if (status == 0) lconn_reset(c, ld->port);
}

static void lconn_send(load *ld, lconn *c) {
    const bench_req *q = &ld->reqs[c->req];
    while (c->sent < q->len) {
        ssize_t k = send(c->fd, q->buf + c->sent, q->len - c->sent, MSG_NOSIGNAL);
        if (k > 0) {
            c->sent += (size_t)k;
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        lconn_finish(ld, c, 0);
        return;
    }
}

static void lconn_recv(load *ld, lconn *c) {
    for (;;) {
        sbuf_reserve(&c->rb, 65536);
        ssize_t k = recv(c->fd, c->rb.p + c->rb.len, c->rb.cap - c->rb.len - 1, 0);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (k <= 0) {
            lconn_finish(ld, c, 0);
            return;
        }
        c->rb.len += (size_t)k;
        http_parsed hp = {0};
        long done = http_parse(c->rb.p, c->rb.len, &hp);
        if (done < 0) {
            lconn_finish(ld, c, 0);
            return;
        }
        if (done == 0) continue;
        memmove(c->rb.p, c->rb.p + done, c->rb.len - (size_t)done);
        c->rb.len -= (size_t)done;
        lconn_finish(ld, c, hp.status);
        if (hp.close) lconn_reset(c, ld->port);
        return;
    }
}

static void *load_thread(void *arg) {
    lthread *th = arg;
    load *ld = th->ld;
    lconn *cs = xcalloc((size_t)th->count, sizeof *cs);
    struct pollfd *pf = xcalloc((size_t)th->count, sizeof *pf);
    int *map = xcalloc((size_t)th->count, sizeof *map);
    for (int i = 0; i < th->count; i++) {
        cs[i].fd = -1;
        cs[i].req = -1;
        lconn_reset(&cs[i], ld->port);
    }
    bool drained = false;
    for (;;) {
        int64_t wait_ns = 100000000;
        for (int i = 0; i < th->count && !drained; i++) {
            if (cs[i].req >= 0) continue;
            if (cs[i].fd < 0) lconn_reset(&cs[i], ld->port);
            int64_t w = 0;
            long q = load_claim(ld, &w);
            if (q == -1) {
                drained = true;
                break;
            }
            if (q == -2) {
                if (w < wait_ns) wait_ns = w;
                break;
            }
            cs[i].req = q;
            cs[i].sent = 0;
            cs[i].t_start = ld->rate > 0 ? load_sched(ld, q) : now_ns();
            if (cs[i].fd < 0)
                lconn_finish(ld, &cs[i], 0);
            else
                lconn_send(ld, &cs[i]);
        }
        int np = 0;
        for (int i = 0; i < th->count; i++) {
            if (cs[i].req < 0) continue;
            pf[np] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN};
            if (cs[i].sent < ld->reqs[cs[i].req].len) pf[np].events |= POLLOUT;
            map[np++] = i;
        }
        if (np == 0 && drained) break;
        struct timespec to = {.tv_sec = wait_ns / 1000000000, .tv_nsec = wait_ns % 1000000000};
        int k = ppoll(pf, (nfds_t)np, &to, NULL);
        if (k <= 0) continue;
        for (int j = 0; j < np; j++) {
            lconn *c = &cs[map[j]];
            if (pf[j].revents & POLLOUT && c->req >= 0) lconn_send(ld, c);
            if (pf[j].revents & (POLLIN | POLLERR | POLLHUP) && c->req >= 0) lconn_recv(ld, c);
        }
    }
    for (int i = 0; i < th->count; i++) {
        if (cs[i].fd >= 0) close(cs[i].fd);
        free(cs[i].rb.p);
    }
    free(cs);
    free(pf);
    free(map);
    return NULL;
}

typedef struct load_result {
    size_t n, ok, errors;
    double secs, rate;
    double p50, p90, p99, p999, max; /* ms, over all completed requests */
    int conns;
    double offered;
    char status_text[160];   /* "200:99998 429:2" */
    double srv_cpu, cli_cpu; /* CPU seconds (user + system) used during the run */
} load_result;

/* CPU seconds (user + system) used so far by process pid, from /proc. */
static double proc_cpu(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* comm may contain spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const int64_t *sorted, size_t n, double q) {
    if (!n) return 0;
    size_t i = (size_t)(q * (double)n); /* nearest rank: ceil(q*n) - 1 */
    if ((double)i == q * (double)n && i > 0) i--;
    if (i >= n) i = n - 1;
    return (double)sorted[i] / 1e6;
}

static void load_summarize(const load *ld, load_result *res) {
    size_t counts[600] = {0};
    int64_t *lat = xmalloc(ld->n * sizeof *lat);
    for (size_t i = 0; i < ld->n; i++) {
        lat[i] = ld->lat_ns[i];
        int s = ld->status[i];
        counts[s >= 0 && s < 600 ? s : 0]++;
        if (s >= 200 && s < 300)
            res->ok++;
        else
            res->errors++;
    }
    qsort(lat, ld->n, sizeof *lat, cmp_i64);
    res->n = ld->n;
    res->secs = (double)(ld->t_end - ld->t0) / 1e9;
    res->rate = res->secs > 0 ? (double)res->ok / res->secs : 0;
    res->p50 = pct_ms(lat, ld->n, 0.50);
    res->p90 = pct_ms(lat, ld->n, 0.90);
    res->p99 = pct_ms(lat, ld->n, 0.99);
    res->p999 = pct_ms(lat, ld->n, 0.999);
    res->max = ld->n ? (double)lat[ld->n - 1] / 1e6 : 0;
    res->conns = ld->conns;
    res->offered = ld->rate;
    size_t off = 0;
    for (int s = 0; s < 600 && off < sizeof res->status_text - 24; s++)
        if (counts[s])
            off += (size_t)snprintf(res->status_text + off, sizeof res->status_text - off,
                                    "%s%d:%zu", off ? " " : "", s, counts[s]);
    free(lat);
}

/* Sends reqs[0..n) over conns connections split across threads; closed loop
 * when rate is 0, else open loop at rate requests/s. dump (may be NULL) gets
 * one TSV line per request. */
static void load_run(const bench_req *reqs, size_t n, int port, pid_t server, int conns,
                     int threads, double rate, const char *dump, load_result *res) {
    memset(res, 0, sizeof *res);
    double srv0 = proc_cpu(server), cli0 = proc_cpu(getpid());
    if (threads > conns) threads = conns;
    load ld = {
        .reqs = reqs, .n = n, .port = port, .conns = conns, .threads = threads, .rate = rate};
    atomic_init(&ld.next, 0);
    ld.lat_ns = xcalloc(n, sizeof *ld.lat_ns);
    ld.start_ns = xcalloc(n, sizeof *ld.start_ns);
    ld.status = xcalloc(n, sizeof *ld.status);
    lthread *th = xcalloc((size_t)threads, sizeof *th);
    ld.t0 = now_ns();
    for (int t = 0; t < threads; t++) {
        th[t] = (lthread){.ld = &ld, .count = conns / threads + (t < conns % threads)};
        if (pthread_create(&th[t].tid, NULL, load_thread, &th[t]) != 0) die("pthread_create");
    }
    for (int t = 0; t < threads; t++)
        pthread_join(th[t].tid, NULL);
    ld.t_end = now_ns();
    load_summarize(&ld, res);
    res->srv_cpu = proc_cpu(server) - srv0;
    res->cli_cpu = proc_cpu(getpid()) - cli0;
    if (dump) {
        FILE *f = fopen(dump, "w");
        if (f) {
            fprintf(f, "start_ms\tlatency_ms\tstatus\n");
            for (size_t i = 0; i < n; i++)
                fprintf(f, "%.3f\t%.3f\t%d\n", (double)ld.start_ns[i] / 1e6,
                        (double)ld.lat_ns[i] / 1e6, ld.status[i]);
            fclose(f);
        }
    }
    free(ld.start_ns);
    free(th);
    free(ld.lat_ns);
    free(ld.status);
}

static void reqs_free(bench_req *r, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(r[i].buf);
    free(r);
}

/* ---------------------------------------------------------------- workload */

typedef struct workload {
    char (*employees)[24]; /* N_EMPLOYEES userids */
    char (*channels)[24];  /* N_CHANNELS states */
    char (*customers)[33]; /* external_userids, "wo" + 30 */
    size_t n_customers, cap_customers;
    /* the callbacks: one relationship each */
    uint32_t *cb_customer, *cb_employee;
    int16_t *cb_channel; /* -1 = no State */
    size_t n_cb;
    uint64_t *pairs; /* open-addressing set of customer<<16|employee (+1) */
    size_t pairs_cap;
    rng r;
    zipf z_emp, z_chan;
} workload;

static const char *const SURNAMES[] = {"Zhang", "Wang", "Li", "Zhao", "Liu", "Chen", "Yang",
                                       "Huang", "Zhou", "Wu", "Xu",   "Sun", "Ma",   "Zhu",
                                       "Hu",    "Guo",  "He", "Lin",  "Gao", "Luo"};
static const char *const GIVEN[] = {"Wei",  "Fang", "Na",   "Min",  "Jing", "Li",  "Qiang",
                                    "Lei",  "Jun",  "Yang", "Yong", "Yan",  "Jie", "Tao",
                                    "Ming", "Chao", "Xiu",  "Xia",  "Hui",  "Ping"};
static const char *const CHANNEL_KIND[] = {"store", "poster", "live", "ad", "pay"};

static void workload_init(workload *w, uint64_t seed, size_t max_cb) {
    memset(w, 0, sizeof *w);
    rng_init(&w->r, seed);
    w->employees = xcalloc(N_EMPLOYEES, sizeof *w->employees);
    for (int i = 0; i < N_EMPLOYEES; i++)
        snprintf(w->employees[i], sizeof w->employees[i], "%s%s%04d", SURNAMES[i % 20],
                 GIVEN[(i / 20) % 20], i);
    w->channels = xcalloc(N_CHANNELS, sizeof *w->channels);
    for (int i = 0; i < N_CHANNELS; i++)
        snprintf(w->channels[i], sizeof w->channels[i], "%s_%s_%02d", CHANNEL_KIND[i % 5],
                 i % 2 ? "sh" : "bj", i / 5);
    zipf_init(&w->z_emp, N_EMPLOYEES, 1.0);
    zipf_init(&w->z_chan, N_CHANNELS, 1.1);
    w->cap_customers = max_cb + 1;
    w->customers = xcalloc(w->cap_customers, sizeof *w->customers);
    w->cb_customer = xcalloc(max_cb + 1, sizeof *w->cb_customer);
    w->cb_employee = xcalloc(max_cb + 1, sizeof *w->cb_employee);
    w->cb_channel = xcalloc(max_cb + 1, sizeof *w->cb_channel);
    w->pairs_cap = 1;
    while (w->pairs_cap < 2 * (max_cb + 1))
        w->pairs_cap *= 2;
    w->pairs = xcalloc(w->pairs_cap, sizeof *w->pairs);
}

static void workload_free(workload *w) {
    free(w->employees);
    free(w->channels);
    free(w->customers);
    free(w->cb_customer);
    free(w->cb_employee);
    free(w->cb_channel);
    free(w->pairs);
    zipf_free(&w->z_emp);
    zipf_free(&w->z_chan);
}

/* Inserts the pair; false if it was already there. */
static bool pair_add(workload *w, uint32_t cust, uint32_t emp) {
    uint64_t key = (((uint64_t)cust << 16) | emp) + 1, h = key * 0x9e3779b97f4a7c15ULL;
    for (size_t i = h & (w->pairs_cap - 1);; i = (i + 1) & (w->pairs_cap - 1)) {
        if (w->pairs[i] == key) return false;
        if (!w->pairs[i]) {
            w->pairs[i] = key;
            return true;
        }
    }
}

/* Draws the next add_external_contact: 94% a new customer, 6% an existing
 * customer adding another employee. */
static void workload_next_callback(workload *w) {
    uint32_t emp = (uint32_t)zipf_draw(&w->z_emp, &w->r), cust;
    if (w->n_customers > 100 && rng_unit(&w->r) < 0.06) {
        do {
            cust = (uint32_t)rng_below(&w->r, w->n_customers);
            emp = (uint32_t)zipf_draw(&w->z_emp, &w->r);
        } while (!pair_add(w, cust, emp));
    } else {
        cust = (uint32_t)w->n_customers++;
        memcpy(w->customers[cust], "wo", 2);
        rng_chars(&w->r, w->customers[cust] + 2, 30,
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
        pair_add(w, cust, emp);
    }
    size_t i = w->n_cb++;
    w->cb_customer[i] = cust;
    w->cb_employee[i] = emp;
    w->cb_channel[i] = rng_unit(&w->r) < 0.15 ? -1 : (int16_t)zipf_draw(&w->z_chan, &w->r);
}

/* Builds the HTTP request for callback i (CreateTime BASE_TIME + i). */
static void callback_request(workload *w, const wecom_crypto *cr, int64_t tenant, size_t i,
                             bench_req *out) {
    char plain[1024], welcome[48], nonce[16], ts[24], sig[41];
    uint8_t random16[16];
    long long create = BASE_TIME + (long long)i;
    rng_chars(&w->r, welcome, 43,
              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    snprintf(nonce, sizeof nonce, "%010llu", (unsigned long long)rng_below(&w->r, 10000000000ULL));
    snprintf(ts, sizeof ts, "%lld", create);
    for (int k = 0; k < 16; k++)
        random16[k] = (uint8_t)rng_next(&w->r);
    char state[64] = "";
    if (w->cb_channel[i] >= 0)
        snprintf(state, sizeof state, "<State><![CDATA[%s]]></State>",
                 w->channels[w->cb_channel[i]]);
    int n = snprintf(plain, sizeof plain,
                     "<xml><ToUserName><![CDATA[" CORP_ID "]]></ToUserName>"
                     "<FromUserName><![CDATA[sys]]></FromUserName><CreateTime>%lld</CreateTime>"
                     "<MsgType><![CDATA[event]]></MsgType>"
                     "<Event><![CDATA[change_external_contact]]></Event>"
                     "<ChangeType><![CDATA[add_external_contact]]></ChangeType>"
                     "<UserID><![CDATA[%s]]></UserID>"
                     "<ExternalUserID><![CDATA[%s]]></ExternalUserID>%s"
                     "<WelcomeCode><![CDATA[%s]]></WelcomeCode></xml>",
                     create, w->employees[w->cb_employee[i]], w->customers[w->cb_customer[i]],
                     state, welcome);
    char *xml = NULL;
    int rc = wecom_callback_build(cr, ts, nonce, random16, plain, (size_t)n, &xml, sig);
    if (rc != 0) die("wecom_callback_build: %s", wecom_crypto_strerror(rc));
    sbuf b = {0};
    sbuf_printf(&b,
                "POST /wecom/callback/%lld?msg_signature=%s&timestamp=%s&nonce=%s HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nContent-Type: text/xml\r\nContent-Length: %zu\r\n\r\n%s",
                (long long)tenant, sig, ts, nonce, strlen(xml), xml);
    free(xml);
    out->buf = b.p;
    out->len = b.len;
}

/* Generates callbacks [from, from+n) and their requests. */
static bench_req *callbacks_build(workload *w, const wecom_crypto *cr, int64_t tenant, size_t n) {
    bench_req *reqs = xcalloc(n, sizeof *reqs);
    for (size_t k = 0; k < n; k++) {
        workload_next_callback(w);
        callback_request(w, cr, tenant, w->n_cb - 1, &reqs[k]);
    }
    return reqs;
}

/* Expected customer/relationship counts and checksums over callbacks
 * [0, n_cb): relationship rows hash (external_userid, userid, state). */
typedef struct cb_expect {
    size_t customers, relationships, employees, callbacks;
    uint64_t rel_sum;
} cb_expect;

static void callbacks_expect(const workload *w, cb_expect *e) {
    memset(e, 0, sizeof *e);
    e->customers = w->n_customers;
    e->relationships = w->n_cb;
    e->callbacks = w->n_cb;
    bool seen[N_EMPLOYEES] = {0};
    for (size_t i = 0; i < w->n_cb; i++) {
        if (!seen[w->cb_employee[i]]) e->employees++;
        seen[w->cb_employee[i]] = true;
        const char *f[3] = {w->customers[w->cb_customer[i]], w->employees[w->cb_employee[i]],
                            w->cb_channel[i] >= 0 ? w->channels[w->cb_channel[i]] : ""};
        e->rel_sum += row_hash(3, f);
    }
}

/* Events. Each event: idempotency key, type, ts, customer, props JSON. */
typedef struct event_set {
    size_t n;
    char (*idem)[36];
    uint8_t *type;
    int64_t *ts;
    uint32_t *customer;
    char **props;
    uint64_t row_sum, link_sum; /* (idem,type,ts) and (idem,external_userid) */
} event_set;

static const char *const EVENT_TYPES[] = {"page_view",   "product_view", "search",
                                          "add_to_cart", "coupon_claim", "form_submit",
                                          "order_paid"};
static const double EVENT_WEIGHTS[] = {0.55, 0.20, 0.08, 0.07, 0.04, 0.03, 0.03};
static const char *const REFERRERS[] = {"wecom_chat",   "moments",          "group_chat",
                                        "mini_program", "official_account", "direct"};

static uint8_t event_type_draw(rng *r) {
    double u = rng_unit(r), acc = 0;
    for (uint8_t t = 0; t < 7; t++)
        if (u < (acc += EVENT_WEIGHTS[t])) return t;
    return 0;
}

static char *event_props(rng *r, uint8_t type) {
    sbuf b = {0};
    unsigned sku = (unsigned)rng_below(r, 20000);
    switch (type) {
    case 0:
        sbuf_printf(&b, "{\"url\":\"/pages/item?id=%u\",\"referrer\":\"%s\",\"dur_ms\":%u}", sku,
                    REFERRERS[rng_below(r, 6)], (unsigned)rng_below(r, 120000));
        break;
    case 1:
        sbuf_printf(&b, "{\"sku\":\"SKU-%06u\",\"price\":%u.%02u,\"referrer\":\"%s\"}", sku,
                    (unsigned)rng_below(r, 2000), (unsigned)rng_below(r, 100),
                    REFERRERS[rng_below(r, 6)]);
        break;
    case 2:
        sbuf_printf(&b, "{\"query\":\"kw%u\",\"results\":%u}", (unsigned)rng_below(r, 5000),
                    (unsigned)rng_below(r, 200));
        break;
    case 3:
        sbuf_printf(&b, "{\"sku\":\"SKU-%06u\",\"qty\":%u}", sku, 1 + (unsigned)rng_below(r, 3));
        break;
    case 4:
        sbuf_printf(&b, "{\"coupon\":\"CP%04u\",\"value\":%u}", (unsigned)rng_below(r, 300),
                    5 * (1 + (unsigned)rng_below(r, 20)));
        break;
    case 5:
        sbuf_printf(&b, "{\"form\":\"lead_%u\",\"fields\":%u}", (unsigned)rng_below(r, 20),
                    2 + (unsigned)rng_below(r, 6));
        break;
    default:
        sbuf_printf(&b, "{\"order_no\":\"SO%012llu\",\"amount\":%u.%02u,\"items\":%u}",
                    (unsigned long long)rng_below(r, 1000000000000ULL),
                    10 + (unsigned)rng_below(r, 3000), (unsigned)rng_below(r, 100),
                    1 + (unsigned)rng_below(r, 5));
        break;
    }
    return b.p;
}

/* Idempotency keys: random (UUIDv4-like, the common client choice and the
 * worst case for a B-tree index) or time-ordered (ULID/UUIDv7-like). Both
 * are unique because they embed i. */
static void idem_key(char out[36], uint64_t salt, size_t i, bool ordered) {
    uint64_t r = salt ^ (uint64_t)(i * 0x9e3779b97f4a7c15ULL), k = (uint64_t)(i & 0xffffffffffULL);
    if (ordered)
        snprintf(out, 36, "%010" PRIx64 "%016" PRIx64, k, r);
    else
        snprintf(out, 36, "%016" PRIx64 "%010" PRIx64, r, k);
}

static void events_generate(event_set *ev, const workload *w, size_t n, uint64_t seed,
                            bool ordered) {
    memset(ev, 0, sizeof *ev);
    ev->n = n;
    ev->idem = xcalloc(n, sizeof *ev->idem);
    ev->type = xcalloc(n, 1);
    ev->ts = xcalloc(n, sizeof *ev->ts);
    ev->customer = xcalloc(n, sizeof *ev->customer);
    ev->props = xcalloc(n, sizeof *ev->props);
    rng r;
    rng_init(&r, seed ^ 0x5eed0e7e47ULL);
    zipf zc;
    zipf_init(&zc, w->n_customers, 0.9);
    uint64_t salt = splitmix64(&seed);
    for (size_t i = 0; i < n; i++) {
        idem_key(ev->idem[i], salt, i, ordered);
        ev->type[i] = event_type_draw(&r);
        ev->ts[i] = BASE_TIME + (int64_t)(i / 20) + (int64_t)rng_below(&r, 30);
        ev->customer[i] = (uint32_t)zipf_draw(&zc, &r);
        ev->props[i] = event_props(&r, ev->type[i]);
        char tsb[24];
        snprintf(tsb, sizeof tsb, "%lld", (long long)ev->ts[i]);
        const char *f[3] = {ev->idem[i], EVENT_TYPES[ev->type[i]], tsb};
        ev->row_sum += row_hash(3, f);
        const char *g[2] = {ev->idem[i], w->customers[ev->customer[i]]};
        ev->link_sum += row_hash(2, g);
    }
    zipf_free(&zc);
}

static void events_free(event_set *ev) {
    for (size_t i = 0; i < ev->n; i++)
        free(ev->props[i]);
    free(ev->props);
    free(ev->idem);
    free(ev->type);
    free(ev->ts);
    free(ev->customer);
}

static bench_req *events_build(const event_set *ev, const workload *w, int batch, const char *token,
                               size_t *n_reqs) {
    size_t nb = (ev->n + (size_t)batch - 1) / (size_t)batch;
    bench_req *reqs = xcalloc(nb ? nb : 1, sizeof *reqs);
    sbuf body = {0};
    for (size_t b = 0; b < nb; b++) {
        body.len = 0;
        sbuf_add(&body, "{\"events\":[", 11);
        for (size_t i = b * (size_t)batch; i < ev->n && i < (b + 1) * (size_t)batch; i++)
            sbuf_printf(&body,
                        "%s{\"idempotency_key\":\"%s\",\"type\":\"%s\",\"ts\":%lld,"
                        "\"external_userid\":\"%s\",\"props\":%s}",
                        i == b * (size_t)batch ? "" : ",", ev->idem[i], EVENT_TYPES[ev->type[i]],
                        (long long)ev->ts[i], w->customers[ev->customer[i]], ev->props[i]);
        sbuf_add(&body, "]}", 2);
        sbuf q = {0};
        sbuf_printf(&q,
                    "POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n\r\n",
                    token, body.len);
        sbuf_add(&q, body.p, body.len);
        reqs[b] = (bench_req){q.p, q.len};
    }
    free(body.p);
    *n_reqs = nb;
    return reqs;
}

/* ---------------------------------------------------------------- verification */

static sqlite3 *db_open_ro(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/siyu.db", dir);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        die("cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "?");
    sqlite3_busy_timeout(db, 10000);
    return db;
}

static int64_t db_int(sqlite3 *db, const char *sql, int64_t tenant) {
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_ingest: %s: %s\n", sql, sqlite3_errmsg(db));
        return -1;
    }
    if (sqlite3_bind_parameter_count(st) >= 1) sqlite3_bind_int64(st, 1, tenant);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Sum of row_hash over the text columns of every row of sql. */
static uint64_t db_rowsum(sqlite3 *db, const char *sql, int64_t tenant, size_t *rows) {
    sqlite3_stmt *st = NULL;
    uint64_t sum = 0;
    *rows = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_ingest: %s: %s\n", sql, sqlite3_errmsg(db));
        return 0;
    }
    if (sqlite3_bind_parameter_count(st) >= 1) sqlite3_bind_int64(st, 1, tenant);
    int nf = sqlite3_column_count(st);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *f[8] = {0};
        for (int i = 0; i < nf && i < 8; i++)
            f[i] = (const char *)sqlite3_column_text(st, i);
        sum += row_hash(nf < 8 ? nf : 8, f);
        (*rows)++;
    }
    sqlite3_finalize(st);
    return sum;
}

typedef struct cb_actual {
    int64_t customers, relationships, employees, processed, wecom_events;
    uint64_t rel_sum;
    size_t rel_rows;
    double settle_secs;
} cb_actual;

static void callbacks_actual(const char *dir, int64_t tenant, cb_actual *a) {
    sqlite3 *db = db_open_ro(dir);
    a->customers = db_int(db, "SELECT count(*) FROM customer WHERE tenant_id=?", tenant);
    a->relationships = db_int(db, "SELECT count(*) FROM relationship WHERE tenant_id=?", tenant);
    a->employees = db_int(db, "SELECT count(*) FROM employee WHERE tenant_id=?", tenant);
    a->processed = db_int(db, "SELECT count(*) FROM processed_callback WHERE tenant_id=?", tenant);
    a->wecom_events =
        db_int(db, "SELECT count(*) FROM event WHERE tenant_id=? AND source='wecom'", tenant);
    a->rel_sum = db_rowsum(db,
                           "SELECT c.external_userid, e.userid, coalesce(r.state,'') "
                           "FROM relationship r JOIN customer c ON c.id=r.customer_id "
                           "JOIN employee e ON e.id=r.employee_id WHERE r.tenant_id=?",
                           tenant, &a->rel_rows);
    sqlite3_close(db);
}

/* Waits (up to 60 s) for asynchronous processing: until the relationship
 * count reaches the expectation or stops changing for 3 s. */
static void callbacks_verify(const char *dir, int64_t tenant, const cb_expect *e, cb_actual *a) {
    int64_t t0 = now_ns(), last = -1, last_change = t0;
    for (;;) {
        sqlite3 *db = db_open_ro(dir);
        int64_t n = db_int(db, "SELECT count(*) FROM relationship WHERE tenant_id=?", tenant);
        sqlite3_close(db);
        int64_t t = now_ns();
        if (n != last) {
            last = n;
            last_change = t;
        }
        if (n >= (int64_t)e->relationships || t - last_change > 3000000000LL ||
            t - t0 > 60000000000LL)
            break;
        usleep(100000);
    }
    a->settle_secs = (double)(now_ns() - t0) / 1e9;
    callbacks_actual(dir, tenant, a);
}

typedef struct ev_actual {
    int64_t rows;
    uint64_t row_sum, link_sum;
    size_t linked;
} ev_actual;

static void events_actual(sqlite3 *db, int64_t tenant, bool link, ev_actual *a) {
    size_t rows = 0;
    a->row_sum = db_rowsum(db,
                           "SELECT idem_key, type, ts FROM event "
                           "WHERE tenant_id=? AND idem_key IS NOT NULL AND source='api'",
                           tenant, &rows);
    a->rows = (int64_t)rows;
    if (link)
        a->link_sum = db_rowsum(db,
                                "SELECT e.idem_key, c.external_userid FROM event e "
                                "LEFT JOIN customer c ON c.id=e.customer_id "
                                "WHERE e.tenant_id=? AND e.idem_key IS NOT NULL "
                                "AND e.source='api'",
                                tenant, &a->linked);
}

/* ---------------------------------------------------------------- SQLite peer */

typedef struct peer_result {
    double secs, rate, cpu;
    int64_t rows;
    uint64_t row_sum;
} peer_result;

static void sqlite_peer(const char *dir, const event_set *ev, int batch, int64_t tenant,
                        peer_result *res) {
    char path[4096];
    snprintf(path, sizeof path, "%s/siyu.db", dir);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        die("peer: cannot open %s", path);
    /* The server's own connection settings (store.c conn_open), so the ratio
     * measures the API path and not a configuration difference. */
    if (sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                     "PRAGMA wal_autocheckpoint=10000; PRAGMA cache_size=-65536; "
                     "PRAGMA temp_store=MEMORY;",
                     NULL, NULL, NULL) != SQLITE_OK)
        die("peer: pragmas: %s", sqlite3_errmsg(db));
    sqlite3_stmt *ins = NULL;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO event(tenant_id, customer_id, type, ts, employee_id, "
                           "source, idem_key, props, idem_hash) VALUES(?,?,?,?,NULL,'api',?,?,?)",
                           -1, &ins, NULL) != SQLITE_OK)
        die("peer: prepare: %s", sqlite3_errmsg(db));
    int64_t t0 = now_ns();
    double cpu0 = proc_cpu(getpid());
    for (size_t i = 0; i < ev->n; i++) {
        if (i % (size_t)batch == 0) sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        sqlite3_bind_int64(ins, 1, tenant);
        sqlite3_bind_int64(ins, 2, (int64_t)ev->customer[i] + 1);
        sqlite3_bind_text(ins, 3, EVENT_TYPES[ev->type[i]], -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 4, ev->ts[i]);
        sqlite3_bind_text(ins, 5, ev->idem[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 6, ev->props[i], -1, SQLITE_STATIC);
        /* The idempotency index holds the key's hash, as the server stores it. */
        sqlite3_bind_int64(ins, 7, events_idem_hash(ev->idem[i], strlen(ev->idem[i])));
        if (sqlite3_step(ins) != SQLITE_DONE) die("peer: insert: %s", sqlite3_errmsg(db));
        sqlite3_reset(ins);
        if ((i + 1) % (size_t)batch == 0 || i + 1 == ev->n)
            if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
                die("peer: commit: %s", sqlite3_errmsg(db));
    }
    res->secs = (double)(now_ns() - t0) / 1e9;
    res->cpu = proc_cpu(getpid()) - cpu0;
    res->rate = res->secs > 0 ? (double)ev->n / res->secs : 0;
    sqlite3_finalize(ins);
    sqlite3_close(db);
    sqlite3 *ro = db_open_ro(dir);
    ev_actual a = {0};
    events_actual(ro, tenant, false, &a);
    sqlite3_close(ro);
    res->rows = a.rows;
    res->row_sum = a.row_sum;
}

/* ---------------------------------------------------------------- metrics */

typedef struct writer_stats {
    int64_t commits, commands;
} writer_stats;

static int64_t metric_value(const char *text, const char *name) {
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, name, n) && p[n] == ' ') return atoll(p + n + 1);
    return -1;
}

static void writer_stats_get(int port, writer_stats *ws) {
    char *body = NULL;
    ws->commits = ws->commands = -1;
    if (http_get(port, "/metrics", &body) == 200) {
        ws->commits = metric_value(body, "siyu_writer_commits_total");
        ws->commands = metric_value(body, "siyu_writer_batch_size_sum");
    }
    free(body);
}

/* ---------------------------------------------------------------- report */

typedef struct report {
    sbuf md;    /* the Markdown section */
    int fails;  /* correctness checks failed (counts, checksums, errors, crash) */
    int misses; /* performance targets missed */
} report;

static void rep(report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rep(report *r, const char *fmt, ...) {
    size_t at = r->md.len;
    va_list ap;
    va_start(ap, fmt);
    sbuf_vprintf(&r->md, fmt, ap);
    va_end(ap);
    fputs(r->md.p + at, stdout);
    fflush(stdout);
}

/* A performance target: a miss is reported but is not a wrong answer. */
static const char *target(report *r, bool ok) {
    if (!ok) r->misses++;
    return ok ? "PASS" : "MISS";
}

/* A correctness check: a failure makes the exit status 1. */
static const char *verdict(report *r, bool ok) {
    if (!ok) r->fails++;
    return ok ? "PASS" : "FAIL";
}

/* One row of the checks table: a count or a checksum that must match. */
static void check_eq(report *r, const char *what, int64_t want, int64_t seen) {
    rep(r, "| %s | %lld | %lld | %s |\n", what, (long long)want, (long long)seen,
        verdict(r, want == seen));
}

static void check_sum(report *r, const char *what, uint64_t want, uint64_t seen) {
    rep(r, "| %s | %016" PRIx64 " | %016" PRIx64 " | %s |\n", what, want, seen,
        verdict(r, want == seen));
}

static void read_first_line(const char *path, const char *key, char *out, size_t cap) {
    FILE *f = fopen(path, "r");
    out[0] = 0;
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key))) {
            char *v = strchr(line, ':');
            v = v ? v + 1 : line;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t n = strcspn(v, "\n");
            if (n >= cap) n = cap - 1;
            memcpy(out, v, n);
            out[n] = 0;
            break;
        }
    fclose(f);
}

/* "0.12 0.30 0.25" from /proc/loadavg: other work on the machine skews figures. */
static void loadavg(char *out, size_t cap) {
    FILE *f = fopen("/proc/loadavg", "r");
    double a = 0, b = 0, c = 0;
    if (!f || fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3)
        snprintf(out, cap, "unknown");
    else
        snprintf(out, cap, "%.2f %.2f %.2f", a, b, c);
    if (f) fclose(f);
}

static void report_header(report *r, const bench_opts *o, int argc, char **argv) {
    struct utsname u;
    uname(&u);
    char cpu[256], mem[128], commit[64] = "unknown", dirty[4096] = "", when[64];
    read_first_line("/proc/cpuinfo", "model name", cpu, sizeof cpu);
    read_first_line("/proc/meminfo", "MemTotal", mem, sizeof mem);
    const char *git[] = {"git", "rev-parse", "--short", "HEAD", NULL};
    if (run_capture(git, commit, sizeof commit, "/dev/null") != 0)
        snprintf(commit, sizeof commit, "unknown");
    const char *gst[] = {"git", "status", "--porcelain", "--untracked-files=no", NULL};
    run_capture(gst, dirty, sizeof dirty, "/dev/null");
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
    rep(r, "\n## %s — commit %s%s\n\n", when, commit, dirty[0] ? " (+ uncommitted changes)" : "");
    char la[64];
    loadavg(la, sizeof la);
    rep(r, "- Machine: %s %s %s, %ld CPUs (%s), memory %s; load average at start %s\n", u.sysname,
        u.release, u.machine, sysconf(_SC_NPROCESSORS_ONLN), cpu[0] ? cpu : "unknown CPU", mem, la);
    rep(r, "- Command: `");
    for (int i = 0; i < argc; i++)
        rep(r, "%s%s", i ? " " : "", argv[i]);
    rep(r,
        "`\n- Parameters: seed %llu, callbacks %ld (closed loop, %d connections), open loop %.0f/s "
        "for %.0f s, events %ld (%s idempotency keys) in batches of %d over %d connections, "
        "%d load threads; "
        "server `siyu serve` with default settings (WAL, synchronous=FULL, group commit), "
        "load generator on the same machine\n\n",
        (unsigned long long)o->seed, o->callbacks, o->conns, o->rate, o->open_seconds, o->events,
        o->idem_ordered ? "time-ordered" : "random", o->batch, o->event_conns, o->threads);
}

static void report_load(report *r, const char *name, const load_result *lr, const char *unit,
                        double per_req) {
    rep(r,
        "| %s | %zu req, %.2f s | %.0f %s/s | %.2f | %.2f | %.2f | %.2f | %.2f | %s | "
        "%.1f | %.0f%% / %.0f%% |\n",
        name, lr->n, lr->secs, lr->rate * per_req, unit, lr->p50, lr->p90, lr->p99, lr->p999,
        lr->max, lr->status_text, lr->n ? lr->srv_cpu * 1e6 / ((double)lr->n * per_req) : 0,
        lr->secs > 0 ? 100 * lr->srv_cpu / lr->secs : 0,
        lr->secs > 0 ? 100 * lr->cli_cpu / lr->secs : 0);
}

static void report_table_head(report *r) {
    rep(r, "| case | sent | throughput | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | statuses "
           "| server CPU µs per item | CPU server / client |\n"
           "|---|---|---|---|---|---|---|---|---|---|---|\n");
}

/* ---------------------------------------------------------------- cases */

typedef struct bench_ctx {
    const bench_opts *o;
    char dir[512], data[600], peer[600], log[600];
    server srv;
    int64_t tenant;
    char admin_token[256];
    wecom_crypto cr;
    workload w;
    report rep;
    load_result lr_health, lr_closed, lr_open, lr_events;
    bool ran_health, ran_closed, ran_open, ran_events;
    writer_stats ws_cb, ws_ev;
    cb_expect cbe;
    cb_actual cba;
    event_set ev;
    ev_actual eva;
    peer_result peer_res;
    bool ran_peer;
} bench_ctx;

static void setup(bench_ctx *b) {
    const bench_opts *o = b->o;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(b->dir, sizeof b->dir, "%s/siyu-bench-XXXXXX", tmp);
    if (!mkdtemp(b->dir)) die("mkdtemp: %s", strerror(errno));
    snprintf(b->data, sizeof b->data, "%s/data", b->dir);
    snprintf(b->peer, sizeof b->peer, "%s/peer", b->dir);
    snprintf(b->log, sizeof b->log, "%s/server.log", b->dir);
    char out[512];
    const char *tok[] = {o->siyu, "token", "create", "--data", b->data, "--role", "admin", NULL};
    if (run_capture(tok, out, sizeof out, b->log) != 0) die("siyu token create (platform) failed");
    const char *ten[] = {o->siyu,  "tenant",    "create",    "--data", b->data,
                         "--name", "Bench",     "--corp-id", CORP_ID,  "--callback-token",
                         CB_TOKEN, "--aes-key", CB_AES_KEY,  NULL};
    if (run_capture(ten, out, sizeof out, b->log) != 0) die("siyu tenant create failed");
    b->tenant = atoll(out);
    if (b->tenant <= 0) die("siyu tenant create printed '%s'", out);
    char tid[32];
    snprintf(tid, sizeof tid, "%lld", (long long)b->tenant);
    const char *adm[] = {o->siyu,    "token", "create", "--data", b->data,
                         "--tenant", tid,     "--role", "admin",  NULL};
    if (run_capture(adm, b->admin_token, sizeof b->admin_token, b->log) != 0)
        die("siyu token create (tenant admin) failed");
    int rc = wecom_crypto_init(&b->cr, CB_TOKEN, CB_AES_KEY, CORP_ID);
    if (rc != 0) die("wecom_crypto_init: %s", wecom_crypto_strerror(rc));
    server_start(&b->srv, o->siyu, b->data, b->log);
    printf("data dir %s, server pid %d on port %d (log %s)\n", b->dir, (int)b->srv.pid, b->srv.port,
           b->log);
    fflush(stdout);
}

/* PREFIX.<name>.tsv for --dump, or NULL. */
static const char *dump_path(const bench_ctx *b, const char *name, char *buf, size_t cap) {
    if (!b->o->dump) return NULL;
    snprintf(buf, cap, "%s.%s.tsv", b->o->dump, name);
    return buf;
}

/* The HTTP floor: GET /healthz (one pooled read of "SELECT 1") with the same
 * connections as the callbacks, so callback figures can be read against it. */
static void case_healthz(bench_ctx *b) {
    const bench_opts *o = b->o;
    if (!case_on(o, "healthz") || o->callbacks <= 0) return;
    size_t n = (size_t)o->callbacks;
    bench_req *reqs = xcalloc(n, sizeof *reqs);
    for (size_t i = 0; i < n; i++) {
        sbuf q = {0};
        sbuf_printf(&q, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        reqs[i] = (bench_req){q.p, q.len};
    }
    printf("healthz: %zu requests over %d connections...\n", n, o->conns);
    fflush(stdout);
    char dp[600];
    load_run(reqs, n, b->srv.port, b->srv.pid, o->conns, o->threads, 0,
             dump_path(b, "healthz", dp, sizeof dp), &b->lr_health);
    b->ran_health = true;
    reqs_free(reqs, n);
}

static void case_callbacks(bench_ctx *b) {
    const bench_opts *o = b->o;
    writer_stats w0, w1;
    char dp[600];
    if (case_on(o, "callbacks") && o->callbacks > 0) {
        int64_t t = now_ns();
        bench_req *reqs = callbacks_build(&b->w, &b->cr, b->tenant, (size_t)o->callbacks);
        printf("callbacks: generated %ld in %.2f s; sending over %d connections...\n", o->callbacks,
               (double)(now_ns() - t) / 1e9, o->conns);
        fflush(stdout);
        writer_stats_get(b->srv.port, &w0);
        load_run(reqs, (size_t)o->callbacks, b->srv.port, b->srv.pid, o->conns, o->threads, 0,
                 dump_path(b, "callbacks", dp, sizeof dp), &b->lr_closed);
        writer_stats_get(b->srv.port, &w1);
        b->ws_cb = (writer_stats){w1.commits - w0.commits, w1.commands - w0.commands};
        b->ran_closed = true;
        reqs_free(reqs, (size_t)o->callbacks);
    }
    if (case_on(o, "open") && o->rate > 0) {
        size_t n = (size_t)(o->rate * o->open_seconds);
        bench_req *reqs = callbacks_build(&b->w, &b->cr, b->tenant, n);
        printf("open loop: %zu callbacks at %.0f/s...\n", n, o->rate);
        fflush(stdout);
        load_run(reqs, n, b->srv.port, b->srv.pid, o->conns, o->threads, o->rate,
                 dump_path(b, "open", dp, sizeof dp), &b->lr_open);
        b->ran_open = true;
        reqs_free(reqs, n);
    }
    if (!b->ran_closed && !b->ran_open) return;
    callbacks_expect(&b->w, &b->cbe);
    callbacks_verify(b->data, b->tenant, &b->cbe, &b->cba);
}

static void case_events(bench_ctx *b) {
    const bench_opts *o = b->o;
    bool api = case_on(o, "events"), peer = case_on(o, "sqlite");
    if ((!api && !peer) || o->events <= 0) return;
    if (b->w.n_customers == 0) /* no callbacks ran: make customers the same way */
        for (long i = 0; i < 100000; i++)
            workload_next_callback(&b->w);
    int64_t t = now_ns();
    events_generate(&b->ev, &b->w, (size_t)o->events, o->seed, o->idem_ordered);
    if (api) {
        size_t nreq = 0;
        bench_req *reqs = events_build(&b->ev, &b->w, o->batch, b->admin_token, &nreq);
        printf("events: generated %ld in %zu requests in %.2f s; sending over %d connections...\n",
               o->events, nreq, (double)(now_ns() - t) / 1e9, o->event_conns);
        fflush(stdout);
        writer_stats w0, w1;
        writer_stats_get(b->srv.port, &w0);
        char dp[600];
        load_run(reqs, nreq, b->srv.port, b->srv.pid, o->event_conns, o->threads, 0,
                 dump_path(b, "events", dp, sizeof dp), &b->lr_events);
        writer_stats_get(b->srv.port, &w1);
        b->ws_ev = (writer_stats){w1.commits - w0.commits, w1.commands - w0.commands};
        b->ran_events = true;
        reqs_free(reqs, nreq);
        sqlite3 *db = db_open_ro(b->data);
        events_actual(db, b->tenant, true, &b->eva);
        sqlite3_close(db);
    }
    if (peer) {
        const char *mig[] = {o->siyu, "migrate", "--data", b->peer, NULL};
        char out[128];
        if (run_capture(mig, out, sizeof out, b->log) != 0) die("siyu migrate (peer) failed");
        printf("sqlite peer: inserting %ld rows...\n", o->events);
        fflush(stdout);
        sqlite_peer(b->peer, &b->ev, o->batch, b->tenant, &b->peer_res);
        b->ran_peer = true;
    }
}

static void report_results(bench_ctx *b) {
    report *r = &b->rep;
    const bench_opts *o = b->o;
    rep(r, "### Throughput and latency\n\n");
    report_table_head(r);
    if (b->ran_health) report_load(r, "GET /healthz (HTTP floor)", &b->lr_health, "req", 1);
    if (b->ran_closed) report_load(r, "callbacks, closed loop", &b->lr_closed, "callbacks", 1);
    if (b->ran_open) report_load(r, "callbacks, open loop", &b->lr_open, "callbacks", 1);
    if (b->ran_events) report_load(r, "events API", &b->lr_events, "events", (double)o->batch);
    if (b->ran_peer)
        rep(r,
            "| SQLite peer (1 conn, WAL, FULL, %d rows/txn) | %lld rows, %.2f s | %.0f rows/s "
            "| | | | | | | %.1f (peer) | — / %.0f%% |\n",
            o->batch, (long long)b->peer_res.rows, b->peer_res.secs, b->peer_res.rate,
            b->peer_res.rows ? b->peer_res.cpu * 1e6 / (double)b->peer_res.rows : 0,
            b->peer_res.secs > 0 ? 100 * b->peer_res.cpu / b->peer_res.secs : 0);
    rep(r,
        "\nLatency is per HTTP request (one callback, or one batch of %d events) from the first "
        "byte sent to the last byte received; in the open loop it counts from the scheduled "
        "send time. Statuses: HTTP code:count (0 = connection error).\n",
        o->batch);
    if (b->ws_cb.commits > 0)
        rep(r,
            "Writer during closed-loop callbacks: %lld commits for %lld commands (%.1f per "
            "commit).\n",
            (long long)b->ws_cb.commits, (long long)b->ws_cb.commands,
            (double)b->ws_cb.commands / (double)b->ws_cb.commits);
    if (b->ws_ev.commits > 0)
        rep(r, "Writer during events: %lld commits for %lld commands.\n",
            (long long)b->ws_ev.commits, (long long)b->ws_ev.commands);
}

static void report_checks(bench_ctx *b) {
    report *r = &b->rep;
    rep(r, "\n### Targets and checks\n\n| check | wanted | seen | result |\n|---|---|---|---|\n");
    if (b->ran_closed) {
        rep(r, "| callbacks/s (closed loop, %d conns) | >= 5000 | %.0f | %s |\n",
            b->lr_closed.conns, b->lr_closed.rate, target(r, b->lr_closed.rate >= 5000));
        rep(r, "| callback p99 (closed loop) | < 20 ms | %.2f ms | %s |\n", b->lr_closed.p99,
            target(r, b->lr_closed.p99 < 20));
        check_eq(r, "callback errors (closed loop)", 0, (int64_t)b->lr_closed.errors);
    }
    if (b->ran_open) {
        rep(r, "| achieved rate at %.0f/s offered | >= 99%% of offered | %.0f | %s |\n",
            b->lr_open.offered, b->lr_open.rate,
            target(r, b->lr_open.rate >= 0.99 * b->lr_open.offered));
        rep(r, "| callback p99 (open loop) | < 20 ms | %.2f ms | %s |\n", b->lr_open.p99,
            target(r, b->lr_open.p99 < 20));
        check_eq(r, "callback errors (open loop)", 0, (int64_t)b->lr_open.errors);
    }
    if (b->ran_closed || b->ran_open) {
        const cb_expect *e = &b->cbe;
        const cb_actual *a = &b->cba;
        check_eq(r, "customers in DB", (int64_t)e->customers, a->customers);
        check_eq(r, "relationships in DB", (int64_t)e->relationships, a->relationships);
        check_sum(r, "relationship checksum (external_userid, userid, state)", e->rel_sum,
                  a->rel_sum);
        check_eq(r, "employees created on first sight", (int64_t)e->employees, a->employees);
        check_eq(r, "processed_callback rows", (int64_t)e->callbacks, a->processed);
        check_eq(r, "event rows of source wecom", (int64_t)e->callbacks, a->wecom_events);
        rep(r, "| (info) time for the counts to settle after the last answer | | %.1f s | |\n",
            a->settle_secs);
    }
    if (b->ran_events) {
        double eps = b->lr_events.rate * b->o->batch;
        rep(r, "| events/s via API | >= 200000 | %.0f | %s |\n", eps, target(r, eps >= 200000));
        check_eq(r, "event batch errors", 0, (int64_t)b->lr_events.errors);
        check_eq(r, "event rows in DB (source api)", (int64_t)b->ev.n, b->eva.rows);
        check_sum(r, "event checksum (idem_key, type, ts)", b->ev.row_sum, b->eva.row_sum);
        check_sum(r, "event customer link checksum (idem_key, external_userid)", b->ev.link_sum,
                  b->eva.link_sum);
    }
    if (b->ran_peer) {
        check_eq(r, "SQLite peer rows", (int64_t)b->ev.n, b->peer_res.rows);
        check_sum(r, "SQLite peer checksum (idem_key, type, ts)", b->ev.row_sum,
                  b->peer_res.row_sum);
    }
    if (b->ran_events && b->ran_peer && b->peer_res.rate > 0) {
        double ratio = b->lr_events.rate * b->o->batch / b->peer_res.rate;
        rep(r, "| API events/s ÷ SQLite peer rows/s | >= 0.5 | %.2f | %s |\n", ratio,
            target(r, ratio >= 0.5));
    }
    char la[64];
    loadavg(la, sizeof la);
    rep(r, "\nLoad average at the end: %s (includes the benchmark itself).\n", la);
    rep(r, "\n%s\n",
        r->fails    ? "Some correctness checks FAILED (see above)."
        : r->misses ? "All correctness checks passed; some performance targets were MISSED."
                    : "All correctness checks passed and all performance targets were met.");
}

static void append_out(const char *path, const sbuf *md) {
    FILE *f = fopen(path, "a");
    if (!f) {
        fprintf(stderr, "bench_ingest: cannot append to %s: %s\n", path, strerror(errno));
        return;
    }
    fwrite(md->p, 1, md->len, f);
    fclose(f);
    printf("results appended to %s\n", path);
}

int main(int argc, char **argv) {
    bench_opts o;
    opts_parse(&o, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    /* As the server (store.c): no global allocation statistics, for the peer. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    bench_ctx *b = xcalloc(1, sizeof *b);
    b->o = &o;
    size_t max_cb = (size_t)o.callbacks + (size_t)(o.rate * o.open_seconds) + 100000;
    workload_init(&b->w, o.seed, max_cb);
    report_header(&b->rep, &o, argc, argv);
    setup(b);
    case_healthz(b);
    case_callbacks(b);
    case_events(b);
    int st = server_stop(&b->srv);
    if (st != 0) {
        fprintf(stderr, "bench_ingest: server exited with status %d; see %s\n", st, b->log);
        b->rep.fails++;
    }
    report_results(b);
    report_checks(b);
    if (o.out) append_out(o.out, &b->rep.md);
    if (o.keep)
        printf("kept %s\n", b->dir);
    else
        nftw(b->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    int fails = b->rep.fails;
    if (b->ev.n) events_free(&b->ev);
    workload_free(&b->w);
    wecom_crypto_reset(&b->cr);
    free(b->rep.md.p);
    free(b);
    return fails ? 1 : 0;
}
