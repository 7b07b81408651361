/* flows_sim.h — a Siyu server wired to a `siyu wecom-sim` on loopback, for
 * the outbox-producer tests (test_tag_push.c, test_transfer.c). Header-only:
 * each test program includes it once.
 *
 * flows_start: a fresh data directory with tenant 1 (corp id, callback token
 * and key, secret), an admin token, a free port for the simulator, the
 * server started with --wecom-base-url pointing at it, then the simulator
 * with --callback-url pointing at the server. flows_stop undoes it all. */
#ifndef SIYU_TEST_FLOWS_SIM_H
#define SIYU_TEST_FLOWS_SIM_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

#define FL_CORP "ww5823bf96d3bd56c7"
#define FL_TOKEN "QDG6eK"
#define FL_AES "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
#define FL_SECRET "flows-test-secret"

typedef struct flows {
    char *dir;
    t_server srv;
    t_server sim; /* only pid/port/base are used */
    char *admin;
} flows;

static int fl_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &n) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* Starts `siyu wecom-sim ARGS...` and waits for its ready line. */
static int fl_sim_spawn(t_server *s, const char *const *args) {
    const char *b = getenv("SIYU_BIN");
    const char *argv[48] = {b ? b : "siyu", "wecom-sim"};
    int n = 2;
    for (int i = 0; args[i] && n < 46; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        if (!getenv("SIYU_TEST_VERBOSE")) {
            int dn = open("/dev/null", O_WRONLY);
            if (dn >= 0) dup2(dn, 2);
        }
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char line[256];
    memset(s, 0, sizeof *s);
    s->pid = pid;
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "wecom-sim: listening on ");
        if (p) {
            const char *colon = strrchr(p, ':');
            s->port = colon ? atoi(colon + 1) : 0;
            break;
        }
    }
    if (f) fclose(f);
    if (!s->port) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        s->pid = 0;
        return -1;
    }
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
    return 0;
}

/* extra_sim: more simulator flags (NULL-terminated, may be NULL). */
static int flows_start(flows *f, const char *const *extra_sim) {
    memset(f, 0, sizeof *f);
    f->dir = t_tmpdir();
    if (!f->dir) return -1;
    const char *tc[] = {"tenant",           "create",  "--data",    f->dir,
                        "--name",           "A",       "--corp-id", FL_CORP,
                        "--callback-token", FL_TOKEN,  "--aes-key", FL_AES,
                        "--secret",         FL_SECRET, NULL};
    if (t_siyu(NULL, tc) != 0) {
        fprintf(stderr, "flows: tenant create failed\n");
        return -1;
    }
    f->admin = t_token(f->dir, "1", "admin", NULL);
    int port = fl_free_port();
    if (!f->admin || port <= 0) return -1;
    char base[64], listen[64], cb[128];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *srv_args[] = {"--wecom-base-url", base, "--sync-interval", "0", NULL};
    if (t_server_start(&f->srv, f->dir, srv_args) != 0) {
        fprintf(stderr, "flows: server did not start\n");
        return -1;
    }
    snprintf(cb, sizeof cb, "%s/wecom/callback/1", f->srv.base);
    const char *sim_args[40] = {
        "--listen",       listen, "--corp-id",        FL_CORP,  "--secret",       FL_SECRET,
        "--callback-url", cb,     "--callback-token", FL_TOKEN, "--aes-key",      FL_AES,
        "--seed",         "7",    "--stores",         "1",      "--departments",  "1",
        "--employees",    "4",    "--customers",      "1",      "--channels",     "1",
        "--groups",       "0",    "--tags",           "0",      "--history-days", "1",
        "--rate",         "0"};
    int n = 0;
    while (sim_args[n])
        n++;
    for (int i = 0; extra_sim && extra_sim[i] && n < 39; i++)
        sim_args[n++] = extra_sim[i];
    if (fl_sim_spawn(&f->sim, sim_args) != 0) {
        fprintf(stderr, "flows: simulator did not start\n");
        return -1;
    }
    return 0;
}

/* Returns the server's exit status (0 = clean, as ASan builds check). */
static int flows_stop(flows *f) {
    if (f->sim.pid > 0) {
        kill(f->sim.pid, SIGTERM);
        waitpid(f->sim.pid, NULL, 0);
        f->sim.pid = 0;
    }
    int rc = f->srv.pid > 0 ? t_server_stop(&f->srv) : 0;
    if (f->dir) t_rmdir(f->dir);
    f->dir = NULL;
    free(f->admin);
    f->admin = NULL;
    return rc;
}

static void fl_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A JSON call to the simulator's admin API; returns the parsed answer
 * (caller decrefs) after asserting status 200. */
static json_t *fl_sim(flows *f, const char *method, const char *path, const char *body) {
    return t_call(&f->sim, method, path, NULL, body, 200);
}

/* The simulator's employees' userids (the first n). */
static int fl_sim_userids(flows *f, char out[][64], int n) {
    json_t *d = fl_sim(f, "GET", "/sim/dump", NULL);
    json_t *emps = json_object_get(d, "employees"), *e;
    size_t i;
    int k = 0;
    json_array_foreach(emps, i, e) {
        if (k == n) break;
        snprintf(out[k++], 64, "%s", json_string_value(json_object_get(e, "userid")));
    }
    json_decref(d);
    return k;
}

/* The sim adds a new customer to userid and delivers the callback; waits
 * until Siyu has the relationship. Returns Siyu's customer id (0 on
 * timeout); ext receives the external_userid. */
static long long fl_sim_add(flows *f, const char *userid, char ext[128]) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"type\":\"add\",\"userid\":\"%s\",\"welcome\":false,\"deliver\":true}", userid);
    json_t *a = fl_sim(f, "POST", "/sim/act", body);
    snprintf(ext, 128, "%s", json_string_value(json_object_get(a, "external_userid")));
    json_decref(a);
    for (int i = 0; i < 200; i++) {
        long long id = t_sql_int(f->dir,
                                 "SELECT r.customer_id FROM relationship r JOIN identity i ON "
                                 "i.customer_id=r.customer_id AND i.kind='wecom_external_userid' "
                                 "JOIN employee e ON e.id=r.employee_id WHERE i.value='%s' AND "
                                 "e.userid='%s' AND r.status='active'",
                                 ext, userid);
        if (id != T_SQL_NONE) return id;
        fl_sleep_ms(25);
    }
    return 0;
}

/* Waits (up to ~10 s) until the query's integer answer is `want`; leaves
 * the last value in var. */
#define FL_WAIT_INT(var, f, want, ...)                                                             \
    do {                                                                                           \
        for (int i_ = 0; i_ < 400; i_++) {                                                         \
            (var) = t_sql_int((f)->dir, __VA_ARGS__);                                              \
            if ((var) == (want)) break;                                                            \
            fl_sleep_ms(25);                                                                       \
        }                                                                                          \
    } while (0)

#endif
