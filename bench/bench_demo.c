/* bench_demo.c — the seeded demo run: `make bench-demo`.
 *
 * Runs `siyu demo` (the simulator and the server wired together, the brand's
 * history replayed as encrypted callbacks, a full sync, then live traffic
 * with welcome messages through the outbox) on spare loopback ports, lets the
 * live traffic flow for --seconds, stops it, waits until every callback,
 * refresh and outbox call has settled, and compares Siyu's store with the
 * simulator's world: customers, active relationships, active groups and
 * their members, corp tags. Reports the time to ready, callbacks per second
 * sustained during the replay, and outbox deliveries by state. Appends a
 * dated section to --out. Exit status 1 when a check fails. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#define BENCH_NAME "bench_demo"
#include "bench_util.h"

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("no free port");
    close(fd);
    return ntohs(a.sin_port);
}

static long post_json(const char *url, const char *body) {
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    FILE *null = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, null);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    fclose(null);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

/* GET with a bearer token. */
static json_t *api_get(const char *url, const char *token) {
    CURL *c = curl_easy_init();
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, m);
    CURLcode rc = curl_easy_perform(c);
    fclose(m);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    json_t *j = rc == CURLE_OK ? json_loads(buf, 0, NULL) : NULL;
    free(buf);
    return j;
}

static double num_after(const char *line, const char *key) {
    const char *p = strstr(line, key);
    return p ? atof(p + strlen(key)) : -1;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Welcome latency from the simulator's dump: for each code used (errcode 0),
 * arrival of send_welcome_msg minus the moment the simulator emitted the add
 * that carried it (so the push queue counts against Siyu). */
typedef struct welcome_fig {
    int64_t minted, used, in_time, p50, p99, max;
} welcome_fig;

static void welcome_figure(const char *sim_listen, int64_t minted, welcome_fig *wf) {
    char url[256];
    snprintf(url, sizeof url, "http://%s/sim/dump", sim_listen);
    json_t *d = http_get_json(url);
    json_t *ws = json_object_get(d, "welcomes"), *w;
    size_t i, n = 0;
    int64_t *lat = malloc((json_array_size(ws) + 1) * sizeof *lat);
    if (!lat) die("out of memory");
    memset(wf, 0, sizeof *wf);
    wf->minted = minted;
    json_array_foreach(ws, i, w) {
        if (jint(w, "errcode") != 0) continue;
        int64_t l = jint(w, "arrived_ms") - jint(w, "minted_ms");
        lat[n++] = l;
        wf->in_time += l <= 20000;
    }
    wf->used = (int64_t)n;
    qsort(lat, n, sizeof *lat, cmp_i64);
    if (n) {
        wf->p50 = lat[n / 2];
        wf->p99 = lat[(n * 99 + 99) / 100 - 1];
        wf->max = lat[n - 1];
    }
    free(lat);
    json_decref(d);
}

int main(int argc, char **argv) {
    const char *siyu = NULL, *out_path = NULL, *customers = "100000";
    int seconds = 30;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--siyu"))
            siyu = argv[i + 1];
        else if (!strcmp(argv[i], "--out"))
            out_path = argv[i + 1];
        else if (!strcmp(argv[i], "--customers"))
            customers = argv[i + 1];
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atoi(argv[i + 1]);
        else
            die("unknown flag %s (flags: --siyu PATH --out FILE --customers N --seconds S)",
                argv[i]);
    }
    if (!siyu) die("--siyu PATH is required");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char dir[512];
    bench_tmpdir(dir, sizeof dir, "demo");
    char listen[32], sim_listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", free_port());
    snprintf(sim_listen, sizeof sim_listen, "127.0.0.1:%d", free_port());

    int pfd[2];
    if (pipe(pfd) != 0) die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl(siyu, "siyu", "demo", "--data", dir, "--fresh", "--listen", listen, "--sim-listen",
              sim_listen, "--customers", customers, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char line[1024], token[80] = "";
    double import_s = -1, replay_end_s = -1, ready_s = -1;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "organisation imported")) import_s = num_after(line, ") in ");
        if (strstr(line, "history replayed in")) replay_end_s = num_after(line, "replayed in ");
        if (strstr(line, "is ready (")) ready_s = num_after(line, "is ready (");
        char *p = strstr(line, "admin token:");
        if (p && (p = strstr(p, "sy_"))) snprintf(token, sizeof token, "%.67s", p);
        if (strstr(line, "Ctrl-C stops")) break;
    }
    if (ready_s < 0 || !token[0]) die("the demo did not get ready");
    char url[256];
    snprintf(url, sizeof url, "http://%s/sim/stats", sim_listen);
    json_t *st = http_get_json(url);
    int64_t replayed = jint(json_object_get(st, "callbacks"), "acked");
    json_decref(st);
    fprintf(stderr, "bench_demo: ready in %.1f s; live traffic for %d s ...\n", ready_s, seconds);
    sleep((unsigned)seconds);

    /* Stop the traffic and let everything settle. */
    snprintf(url, sizeof url, "http://%s/sim/config", sim_listen);
    if (post_json(url, "{\"rate\":0}") != 200) die("cannot stop the simulated traffic");
    sqlite3 *db = NULL;
    char dbp[600];
    snprintf(dbp, sizeof dbp, "%s/siyu.db", dir);
    if (sqlite3_open_v2(dbp, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) die("open %s", dbp);
    sqlite3_busy_timeout(db, 5000);
    double ts = now_s();
    for (;;) {
        snprintf(url, sizeof url, "http://%s/sim/stats", sim_listen);
        st = http_get_json(url);
        int64_t queued = jint(json_object_get(st, "callbacks"), "queued");
        json_decref(st);
        snprintf(url, sizeof url, "http://%s/api/v1/sync", listen);
        json_t *sy = api_get(url, token);
        int64_t pending = jint(json_object_get(sy, "refresh"), "pending");
        json_decref(sy);
        int64_t inflight = sql_int(
            db, "SELECT count(*) FROM outbox WHERE state IN ('pending','sending','failed')");
        int64_t syncing = sql_int(db, "SELECT count(*) FROM sync_run WHERE state='running'");
        if (queued == 0 && pending == 0 && inflight == 0 && syncing == 0) break;
        if (now_s() - ts > 120) die("traffic did not settle in 120 s");
        usleep(200000);
    }
    snprintf(url, sizeof url, "http://%s/sim/stats", sim_listen);
    st = http_get_json(url);
    json_t *cb = json_object_get(st, "callbacks");
    struct {
        const char *what;
        int64_t siyu, sim;
    } checks[] = {
        {"customers", sql_int(db, "SELECT count(*) FROM customer"), jint(st, "customers")},
        {"active relationships",
         sql_int(db, "SELECT count(*) FROM relationship WHERE status='active'"),
         jint(st, "relationships")},
        {"active groups", sql_int(db, "SELECT count(*) FROM group_chat WHERE status='active'"),
         jint(st, "groups")},
        {"members of active groups",
         sql_int(db, "SELECT count(*) FROM group_member m JOIN group_chat g ON g.id=m.group_id "
                     "WHERE m.status='in' AND g.status='active'"),
         jint(st, "group_members")},
        {"corp tags", sql_int(db, "SELECT count(*) FROM tag WHERE wecom_id IS NOT NULL"),
         jint(st, "tags")},
        {"employees", sql_int(db, "SELECT count(*) FROM employee"), jint(st, "employees")},
        {"callback events", sql_int(db, "SELECT count(*) FROM event WHERE source='wecom'"),
         jint(cb, "acked")},
    };
    int64_t stores = sql_int(db, "SELECT count(*) FROM store");
    int64_t ways = jint(st, "contact_ways");
    int64_t ob_sent = sql_int(db, "SELECT count(*) FROM outbox WHERE state='sent'");
    int64_t ob_dead = sql_int(db, "SELECT count(*) FROM outbox WHERE state='dead'");
    int64_t ob_other =
        sql_int(db, "SELECT count(*) FROM outbox WHERE state NOT IN ('sent','dead')");
    int64_t sync_calls = sql_int(db, "SELECT coalesce(max(calls),0) FROM sync_run");
    int64_t cb_sent = jint(cb, "sent"), cb_failed = jint(cb, "failed");
    welcome_fig wf;
    welcome_figure(sim_listen, jint(st, "welcome_codes"), &wf);
    json_decref(st);
    sqlite3_close(db);
    kill(pid, SIGINT);
    int status = -1;
    waitpid(pid, &status, 0);
    fclose(f);
    double replay_s = replay_end_s - import_s;

    char *report = NULL;
    size_t rlen = 0;
    FILE *r = open_memstream(&report, &rlen);
    bench_header(r, "Seeded demo run (`make bench-demo`)");
    fprintf(r,
            "- Command: `./build/bench_demo --siyu %s --customers %s --seconds %d`: `siyu demo` "
            "(simulator and server on loopback, 500 employees, %lld stores, %lld channels, "
            "1,050 groups, 120 days of history), then %d s of live traffic at 20 actions/s\n\n",
            siyu, customers, seconds, (long long)stores, (long long)ways, seconds);
    fprintf(r,
            "| figure | value |\n|---|---|\n"
            "| ready after | %.1f s (org import %.1f s, history replay %.1f s; then a background "
            "full sync of %lld calls) |\n"
            "| history callbacks replayed | %lld in %.1f s = %.0f callbacks/s sustained (with the "
            "refresh fetches they trigger) |\n"
            "| callbacks pushed / failed | %lld / %lld |\n"
            "| outbox (welcome messages) sent / dead / other | %lld / %lld / %lld |\n"
            "| welcome codes minted / used in time (20 s) | %lld / %lld (%.1f%%) |\n"
            "| simulator emits the add → send_welcome_msg arrives: p50 / p99 / max | %lld / %lld "
            "/ %lld ms (%lld sends) |\n"
            "| `siyu demo` exit status after Ctrl-C | %d |\n\n",
            ready_s, import_s, replay_s, (long long)sync_calls, (long long)replayed, replay_s,
            replay_s > 0 ? (double)replayed / replay_s : 0, (long long)cb_sent,
            (long long)cb_failed, (long long)ob_sent, (long long)ob_dead, (long long)ob_other,
            (long long)wf.minted, (long long)wf.in_time,
            wf.minted ? 100.0 * (double)wf.in_time / (double)wf.minted : 100.0, (long long)wf.p50,
            (long long)wf.p99, (long long)wf.max, (long long)wf.used,
            WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    int bad = cb_failed != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    fprintf(r, "| check | Siyu | simulator | |\n|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++) {
        bool ok = checks[i].siyu == checks[i].sim;
        bad |= !ok;
        fprintf(r, "| %s | %lld | %lld | %s |\n", checks[i].what, (long long)checks[i].siyu,
                (long long)checks[i].sim, ok ? "ok" : "FAIL");
    }
    fclose(r);
    bench_emit(report, out_path);
    free(report);
    char *rm[] = {"/bin/rm", "-rf", dir, NULL};
    run(NULL, rm);
    return bad;
}
