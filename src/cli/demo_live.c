/* demo_live.c — `siyu demo`: the live demo behind `make demo`.
 *
 * Starts `siyu serve` and `siyu wecom-sim` as child processes wired together
 * on loopback (the server's WeCom base URL is the simulator; the simulator's
 * callback URL is the server), and sets the brand up the way an installer
 * would: the tenant and its WeCom config with the CLI steps, the organisation
 * (departments, stores, employees) through the REST API from the simulated
 * corp's roster, months of history replayed as encrypted callbacks (whose
 * refreshes fetch the details callbacks do not carry), then a full sync in
 * the background. Simulated traffic keeps
 * flowing until Ctrl-C, which stops both children cleanly. */
#include <curl/curl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "cli/cli.h"
#include "store/store.h"
#include "store/tenant.h"

#define DEMO_NAME "Demo Brand 示例品牌"
#define DEMO_CORP "ww5823bf96d3bd56c7"
#define DEMO_TOKEN "QDG6eK"
#define DEMO_AES "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
#define DEMO_SECRET "demo-contact-secret"

typedef struct child {
    pid_t pid;
    char addr[128]; /* host:port from its ready line */
} child;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *drain(void *arg) {
    int fd = (int)(intptr_t)arg;
    char b[4096];
    while (read(fd, b, sizeof b) > 0) {
    }
    close(fd);
    return NULL;
}

/* Runs this binary with args, its stdout on a pipe; waits (up to timeout_s)
 * for a line starting with ready_prefix and copies what follows into
 * c->addr. Later stdout is drained by a thread (children log to stderr,
 * which stays the terminal). */
static int spawn(child *c, const char *const *args, const char *ready_prefix, int timeout_s) {
    int fd[2];
    if (pipe(fd) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        /* The child's own process group: Ctrl-C reaches only the demo, which
         * then stops the children in order. */
        setpgid(0, 0);
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv("/proc/self/exe", (char *const *)args);
        _exit(127);
    }
    close(fd[1]);
    c->pid = pid;
    /* Read lines with poll() so that a child that never prints cannot hang
     * the demo past timeout_s. */
    char line[512];
    size_t n = 0, np = strlen(ready_prefix);
    double t0 = now_s();
    int rc = -1;
    while (rc != 0) {
        int left_ms = (int)((timeout_s - (now_s() - t0)) * 1000);
        struct pollfd pfd = {.fd = fd[0], .events = POLLIN};
        if (left_ms <= 0 || poll(&pfd, 1, left_ms) <= 0) break;
        char ch;
        ssize_t k = read(fd[0], &ch, 1);
        if (k <= 0) break; /* the child exited */
        if (ch != '\n' && n < sizeof line - 1) {
            line[n++] = ch;
            continue;
        }
        line[n] = 0;
        n = 0;
        if (strncmp(line, ready_prefix, np) == 0) {
            snprintf(c->addr, sizeof c->addr, "%s", line + np);
            c->addr[strcspn(c->addr, "\r")] = 0;
            rc = 0;
        }
    }
    if (rc != 0) {
        close(fd[0]);
        return rc;
    }
    /* Keep the pipe drained so a chatty child never blocks on stdout. */
    pthread_t th;
    if (pthread_create(&th, NULL, drain, (void *)(intptr_t)fd[0]) == 0)
        pthread_detach(th);
    else
        close(fd[0]);
    return 0;
}

static void stop_child(child *c, const char *what) {
    if (c->pid <= 0) return;
    kill(c->pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        int st;
        if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
            c->pid = 0;
            return;
        }
        usleep(100000);
    }
    fprintf(stderr, "siyu demo: %s did not stop in 10 s; killing it\n", what);
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
    c->pid = 0;
}

/* ---- small HTTP client --------------------------------------------------- */

typedef struct hbuf {
    char *p;
    size_t n;
} hbuf;

static size_t on_data(char *d, size_t s, size_t m, void *arg) {
    hbuf *b = arg;
    char *p = realloc(b->p, b->n + s * m + 1);
    if (!p) return 0;
    memcpy(p + b->n, d, s * m);
    b->p = p;
    b->n += s * m;
    p[b->n] = 0;
    return s * m;
}

/* method url [token] [body JSON]; returns HTTP status (0 on transport error)
 * and the parsed answer in *out (may be NULL). */
static long http(const char *method, const char *url, const char *token, json_t *body,
                 json_t **out) {
    CURL *h = curl_easy_init();
    if (!h) return 0;
    hbuf b = {0};
    struct curl_slist *hd = NULL;
    char auth[128];
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hd = curl_slist_append(hd, auth);
    }
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (payload) {
        hd = curl_slist_append(hd, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L);
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (out) *out = b.p ? json_loads(b.p, 0, NULL) : NULL;
    free(b.p);
    free(payload);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    return status;
}

/* ---- set-up steps -------------------------------------------------------- */

static int make_tenant(const char *dir, char admin[AUTH_TOKEN_LEN + 1],
                       char oper[AUTH_TOKEN_LEN + 1]) {
    siyu_err err = {0};
    store_options so = {0};
    store *st = store_open(dir, &so, &err);
    if (!st) {
        fprintf(stderr, "siyu demo: %s\n", err.msg);
        return -1;
    }
    tenant_input tin = {.name = DEMO_NAME,
                        .corp_id = DEMO_CORP,
                        .callback_token = DEMO_TOKEN,
                        .aes_key = DEMO_AES,
                        .secret = DEMO_SECRET,
                        .actor = "demo"};
    int rc = store_write(st, tenant_create, &tin);
    auth_token_new a = {.tenant_id = tin.id, .role = ROLE_ADMIN, .label = "demo admin"};
    auth_token_new o = {.tenant_id = tin.id, .role = ROLE_OPERATOR, .label = "demo operator"};
    if (rc == 0) rc = store_write(st, auth_token_insert, &a);
    if (rc == 0) rc = store_write(st, auth_token_insert, &o);
    if (rc == 0) {
        memcpy(admin, a.token, AUTH_TOKEN_LEN + 1);
        memcpy(oper, o.token, AUTH_TOKEN_LEN + 1);
    } else {
        fprintf(stderr, "siyu demo: cannot create the tenant: %s\n",
                tin.err.msg[0] ? tin.err.msg : siyu_strerror(rc));
    }
    store_close(st);
    return rc == 0 ? (int)tin.id : -1;
}

/* Creates departments, stores and employees in Siyu from the simulator's
 * roster (GET /sim/org). Returns the number of employees created or -1. */
static int import_org(const char *sim, const char *api, const char *tok) {
    char url[512];
    snprintf(url, sizeof url, "http://%s/sim/org", sim);
    json_t *org = NULL;
    if (http("GET", url, NULL, NULL, &org) != 200 || !org) {
        fprintf(stderr, "siyu demo: cannot read the simulated corp's roster\n");
        json_decref(org);
        return -1;
    }
    /* department wecom id → Siyu id; store id → Siyu id */
    json_t *dmap = json_object(), *smap = json_object();
    size_t i;
    json_t *d;
    int rc = 0, emps = 0;
    json_array_foreach(json_object_get(org, "departments"), i, d) {
        json_int_t wid = json_integer_value(json_object_get(d, "id"));
        json_int_t parent = json_integer_value(json_object_get(d, "parentid"));
        json_t *body = json_pack("{s:O,s:I}", "name", json_object_get(d, "name"), "wecom_id", wid);
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)parent);
        json_t *pid = json_object_get(dmap, key);
        if (pid) json_object_set(body, "parent_id", pid);
        json_t *r = NULL;
        snprintf(url, sizeof url, "http://%s/api/v1/departments", api);
        if (http("POST", url, tok, body, &r) != 201) rc = -1;
        snprintf(key, sizeof key, "%lld", (long long)wid);
        if (r) json_object_set(dmap, key, json_object_get(r, "id"));
        json_decref(r);
        json_decref(body);
    }
    json_array_foreach(json_object_get(org, "stores"), i, d) {
        char key[32];
        snprintf(key, sizeof key, "%lld",
                 (long long)json_integer_value(json_object_get(d, "department")));
        json_t *body = json_pack("{s:O,s:O}", "name", json_object_get(d, "name"), "city",
                                 json_object_get(d, "city"));
        json_t *pid = json_object_get(dmap, key);
        if (pid) json_object_set(body, "department_id", pid);
        json_t *r = NULL;
        snprintf(url, sizeof url, "http://%s/api/v1/stores", api);
        if (http("POST", url, tok, body, &r) != 201) rc = -1;
        snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(d, "id")));
        if (r) json_object_set(smap, key, json_object_get(r, "id"));
        json_decref(r);
        json_decref(body);
    }
    json_array_foreach(json_object_get(org, "employees"), i, d) {
        char key[32];
        json_t *body = json_pack("{s:O,s:O}", "userid", json_object_get(d, "userid"), "name",
                                 json_object_get(d, "name"));
        snprintf(key, sizeof key, "%lld",
                 (long long)json_integer_value(json_object_get(d, "department")));
        json_t *v = json_object_get(dmap, key);
        if (v) json_object_set(body, "department_id", v);
        snprintf(key, sizeof key, "%lld",
                 (long long)json_integer_value(json_object_get(d, "store")));
        v = json_object_get(smap, key);
        if (v) json_object_set(body, "store_id", v);
        snprintf(url, sizeof url, "http://%s/api/v1/employees", api);
        if (http("POST", url, tok, body, NULL) == 201)
            emps++;
        else
            rc = -1;
        json_decref(body);
    }
    json_decref(dmap);
    json_decref(smap);
    json_decref(org);
    return rc == 0 ? emps : -1;
}

static volatile sig_atomic_t stop_sig;
static void on_signal(int s) {
    stop_sig = s;
}

static const char demo_usage[] =
    "usage: siyu demo [--data DIR] [--listen ADDR:PORT] [--sim-listen ADDR:PORT] [--fresh]\n"
    "                 [--customers N] [--employees N] [--stores N] [--channels N] [--groups N]\n"
    "                 [--history-days N] [--rate N] [--seed N]\n"
    "  Starts `siyu wecom-sim` and `siyu serve` wired together on loopback, sets up a\n"
    "  simulated brand (defaults: 100000 customers, 500 employees, 50 stores, 200\n"
    "  channels, 1050 groups of which some are dismissed in the history, 120 days of\n"
    "  history replayed as WeCom callbacks, then a background full sync) and keeps simulated\n"
    "  traffic flowing (--rate actions/s, default 20).\n"
    "  DIR (default ./demo-data) must not hold a database unless --fresh is given, which\n"
    "  deletes DIR/siyu.db first. Ctrl-C stops both processes.\n";

int cli_demo(int argc, char **argv) {
    static const char *const allowed[] = {
        "data",     "listen", "sim-listen",   "fresh", "customers", "employees", "stores",
        "channels", "groups", "history-days", "rate",  "seed",      NULL};
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(demo_usage, stdout);
            return 0;
        }
    bool fresh = false;
    int n = 0;
    char *args2[64];
    for (int i = 0; i < argc && n < 63; i++) {
        if (!strcmp(argv[i], "--fresh"))
            fresh = true;
        else
            args2[n++] = argv[i];
    }
    if (cli_check_flags(n, args2, allowed, demo_usage)) return 2;
#define FLAG(name, def) (cli_flag(n, args2, name) ? cli_flag(n, args2, name) : def)
    const char *dir = FLAG("data", "./demo-data");
    const char *listen = FLAG("listen", "127.0.0.1:8080");
    const char *sim_listen = FLAG("sim-listen", "127.0.0.1:8081");
    char db[600];
    snprintf(db, sizeof db, "%s/siyu.db", dir);
    if (access(db, F_OK) == 0) {
        if (!fresh) {
            fprintf(stderr, "siyu demo: %s already exists; pass --fresh to start over\n", db);
            return 2;
        }
        static const char *const sfx[] = {"", "-wal", "-shm"};
        for (int i = 0; i < 3; i++) {
            char p[640];
            snprintf(p, sizeof p, "%s%s", db, sfx[i]);
            unlink(p);
        }
    }
    double t0 = now_s();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char admin[AUTH_TOKEN_LEN + 1], oper[AUTH_TOKEN_LEN + 1];
    int tenant = make_tenant(dir, admin, oper);
    if (tenant < 0) return 1;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    child srv = {0}, sim = {0};
    char base[200], cb[300];
    snprintf(base, sizeof base, "http://%s", sim_listen);
    const char *srv_args[] = {
        "siyu", "serve",           "--data", dir, "--listen", listen, "--wecom-base-url",
        base,   "--sync-interval", "0",      NULL};
    printf("siyu demo: starting the server on %s ...\n", listen);
    fflush(stdout);
    if (spawn(&srv, srv_args, "siyu: listening on ", 30) != 0) {
        fprintf(stderr, "siyu demo: the server did not start (is %s in use?)\n", listen);
        stop_child(&srv, "server");
        return 1;
    }
    snprintf(cb, sizeof cb, "http://%s/wecom/callback/%d", srv.addr, tenant);
    const char *sim_args[] = {"siyu",
                              "wecom-sim",
                              "--listen",
                              sim_listen,
                              "--corp-id",
                              DEMO_CORP,
                              "--secret",
                              DEMO_SECRET,
                              "--callback-url",
                              cb,
                              "--callback-token",
                              DEMO_TOKEN,
                              "--aes-key",
                              DEMO_AES,
                              "--seed",
                              FLAG("seed", "42"),
                              "--customers",
                              FLAG("customers", "100000"),
                              "--employees",
                              FLAG("employees", "500"),
                              "--stores",
                              FLAG("stores", "50"),
                              "--channels",
                              FLAG("channels", "200"),
                              "--groups",
                              FLAG("groups", "1050"),
                              "--history-days",
                              FLAG("history-days", "120"),
                              NULL};
    printf("siyu demo: starting the WeCom simulator on %s (generating the brand) ...\n",
           sim_listen);
    fflush(stdout);
    int rc = 1;
    if (spawn(&sim, sim_args, "wecom-sim: listening on ", 120) != 0) {
        fprintf(stderr, "siyu demo: the simulator did not start (is %s in use?)\n", sim_listen);
        goto out;
    }
    char api[160], url[512];
    snprintf(api, sizeof api, "%s", srv.addr);
    int emps = import_org(sim.addr, api, admin);
    if (emps < 0) goto out;
    /* A default welcome, so live adds exercise the outbox's urgent lane. */
    snprintf(url, sizeof url, "http://%s/api/v1/welcome", api);
    json_t *wel = json_pack("{s:s,s:b}", "text", "您好，欢迎关注示例品牌！回复“会员”了解会员权益。",
                            "enabled", 1);
    long wst = http("PUT", url, admin, wel, NULL);
    json_decref(wel);
    if (wst != 200) {
        fprintf(stderr, "siyu demo: cannot set the welcome message (HTTP %ld)\n", wst);
        goto out;
    }
    printf("siyu demo: organisation imported (%d employees) in %.1f s; replaying history ...\n",
           emps, now_s() - t0);
    fflush(stdout);
    snprintf(url, sizeof url, "http://%s/sim/replay", sim.addr);
    json_t *empty = json_object();
    long replay = http("POST", url, NULL, empty, NULL);
    json_decref(empty);
    if (replay != 200) {
        fprintf(stderr, "siyu demo: the simulator refused to replay its history\n");
        goto out;
    }
    for (;;) {
        if (stop_sig) goto out;
        json_t *s = NULL;
        snprintf(url, sizeof url, "http://%s/sim/stats", sim.addr);
        http("GET", url, NULL, NULL, &s);
        json_t *c = json_object_get(s, "callbacks");
        bool done = json_is_true(json_object_get(s, "history_done")) &&
                    json_integer_value(json_object_get(c, "queued")) == 0;
        printf("\r  callbacks delivered: %lld",
               (long long)json_integer_value(json_object_get(c, "acked")));
        fflush(stdout);
        json_decref(s);
        if (done) break;
        usleep(500000);
    }
    printf("\nsiyu demo: history replayed in %.1f s; a full sync runs in the background\n",
           now_s() - t0);
    /* Callbacks and the refreshes they trigger already mirror WeCom; the sync
     * shows the reconciliation at work (GET /api/v1/sync) without holding
     * the demo up. */
    snprintf(url, sizeof url, "http://%s/api/v1/sync", api);
    empty = json_object();
    http("POST", url, admin, empty, NULL);
    json_decref(empty);
    snprintf(url, sizeof url, "http://%s/sim/config", sim.addr);
    json_t *cfg = json_pack("{s:i}", "rate", atoi(FLAG("rate", "20")));
    http("POST", url, NULL, cfg, NULL);
    json_decref(cfg);
    printf("\nSiyu demo is ready (%.1f s).\n\n"
           "  API:            http://%s/api/v1   (OpenAPI: http://%s/api/v1/openapi.json)\n"
           "  metrics:        http://%s/metrics\n"
           "  WeCom sim:      http://%s/sim/stats\n"
           "  admin token:    %s\n"
           "  operator token: %s\n\n"
           "Try:\n"
           "  curl -H 'Authorization: Bearer %s' 'http://%s/api/v1/customers?limit=5'\n"
           "  curl -H 'Authorization: Bearer %s' 'http://%s/api/v1/welcome/log?limit=5'\n"
           "  curl -H 'Authorization: Bearer %s' 'http://%s/api/v1/sync'\n\n"
           "Simulated customers keep arriving. Ctrl-C stops the server and the simulator.\n",
           now_s() - t0, api, api, api, sim.addr, admin, oper, admin, api, admin, api, admin, api);
    fflush(stdout);
    while (!stop_sig) {
        sleep(1);
        int st;
        if (waitpid(srv.pid, &st, WNOHANG) == srv.pid ||
            waitpid(sim.pid, &st, WNOHANG) == sim.pid) {
            fprintf(stderr, "siyu demo: a child process exited unexpectedly\n");
            break;
        }
    }
    rc = 0;
out:
    printf("\nsiyu demo: stopping ...\n");
    stop_child(&sim, "simulator");
    stop_child(&srv, "server");
    curl_global_cleanup();
    return rc;
#undef FLAG
}
