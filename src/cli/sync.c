/* sync.c — `siyu sync`: a full sync of one tenant with WeCom, in this
 * process, against the data directory (the server may be running or not:
 * SQLite serialises the writes; a writer thread group-commits the steps of
 * the concurrent fetchers). Shows progress on the terminal (one
 * rewritten line on a TTY, a line per second otherwise) and a summary; with
 * --json the summary is one JSON object on stdout. */
#include <curl/curl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/store.h"
#include "sync/sync.h"
#include "util/log.h"
#include "wecom/wecom_client.h"

static const char sync_usage[] =
    "usage: siyu sync --data DIR --tenant ID [--base-url URL] [--timeout-ms N] [--force] "
    "[--json]\n"
    "       siyu sync --server URL [--token TOKEN] [--json]\n"
    "  Runs a full sync of the tenant with WeCom (corp tags, employees, customers and\n"
    "  their follow records, customer groups), printing progress and a summary.\n"
    "  --base-url  WeCom API base (default $SIYU_WECOM_BASE_URL or " WECOM_BASE_URL_DEFAULT ")\n"
    "  --force     take over a run recorded as running (e.g. after a crash)\n"
    "  --json      print the summary as JSON\n"
    "  --server    ask a running server (http://host:port) to sync the token's tenant and\n"
    "              follow its progress (admin or operator token)\n"
    "  --token     the API token; better given as SIYU_TOKEN in the environment, which\n"
    "              keeps it out of the process list and the shell history\n";

/* The signal handler's only channel to the sync loop. */
static atomic_bool sync_cancel;

static void on_signal(int sig) {
    (void)sig;
    atomic_store(&sync_cancel, true);
}

typedef struct view {
    bool tty, json;
    int64_t last_ms;
    const char *last_phase;
} view;

static void print_progress(void *arg, const sync_progress *p) {
    view *v = arg;
    if (v->json) return;
    int64_t now = p->elapsed_ms;
    bool phase_changed = v->last_phase != p->phase;
    if (!phase_changed && now - v->last_ms < (v->tty ? 100 : 1000)) return;
    v->last_ms = now;
    double s = (double)p->elapsed_ms / 1000.0;
    double rate = s > 0 ? (double)p->items / s : 0;
    char line[256];
    snprintf(line, sizeof line, "%-9s %lld/%lld  records %lld  calls %lld  %.0f records/s  %.1f s",
             p->phase, (long long)p->done, (long long)p->total, (long long)p->items,
             (long long)p->calls, rate, s);
    if (v->tty) /* one line per phase, rewritten in place */
        fprintf(stdout, "%s\r\033[K%s", phase_changed && v->last_phase ? "\n" : "", line);
    else
        fprintf(stdout, "%s\n", line);
    fflush(stdout);
    v->last_phase = p->phase;
}

static void print_summary(const sync_progress *p, int rc, const siyu_err *err, bool json,
                          bool tty) {
    double s = (double)p->elapsed_ms / 1000.0;
    if (json) {
        json_t *counts = json_object();
        for (int i = 0; i < SYNC_ENTITY_COUNT; i++)
            json_object_set_new(counts, sync_entity_names[i],
                                json_pack("{s:I,s:I,s:I}", "created", (json_int_t)p->n[i].created,
                                          "updated", (json_int_t)p->n[i].updated, "ended",
                                          (json_int_t)p->n[i].ended));
        json_t *o =
            json_pack("{s:I,s:I,s:s,s:f,s:I,s:I,s:I,s:I,s:o}", "run_id", (json_int_t)p->run_id,
                      "tenant_id", (json_int_t)p->tenant_id, "state", rc == 0 ? "done" : "failed",
                      "wall_s", s, "calls", (json_int_t)p->calls, "requests",
                      (json_int_t)p->requests, "items", (json_int_t)p->items, "changes",
                      (json_int_t)sync_progress_changes(p), "counts", counts);
        if (rc != 0) json_object_set_new(o, "error", json_string(err->msg));
        char *txt = json_dumps(o, JSON_COMPACT);
        printf("%s\n", txt ? txt : "{}");
        free(txt);
        json_decref(o);
        return;
    }
    if (tty) printf("\n");
    if (rc == 0)
        printf("siyu sync: done in %.1f s: %lld API calls (%lld requests), %lld records, "
               "%.0f records/s, %lld changes\n",
               s, (long long)p->calls, (long long)p->requests, (long long)p->items,
               s > 0 ? (double)p->items / s : 0.0, (long long)sync_progress_changes(p));
    else
        printf("siyu sync: failed in phase %s after %.1f s (%lld API calls): %s\n", p->phase, s,
               (long long)p->calls, err->msg);
    printf("  %-14s %10s %10s %10s\n", "", "created", "updated", "ended");
    for (int i = 0; i < SYNC_ENTITY_COUNT; i++)
        printf("  %-14s %10lld %10lld %10lld\n", sync_entity_names[i], (long long)p->n[i].created,
               (long long)p->n[i].updated, (long long)p->n[i].ended);
}

static int force_step(store_conn *c, void *arg) {
    sqlite3_stmt *st = store_conn_stmt(c, "UPDATE sync_run SET state='failed', error='taken over "
                                          "by siyu sync --force', finished_at=?2 WHERE "
                                          "tenant_id=?1 AND state='running'");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, *(int64_t *)arg);
    sqlite3_bind_int64(st, 2, siyu_now());
    return store_stmt_run(st);
}

/* ---- --server: drive a running server over its API ---------------------- */

static size_t on_body(char *p, size_t sz, size_t n, void *u) {
    return fwrite(p, sz, n, (FILE *)u);
}

/* One API request; *out gets the parsed JSON body (or NULL). Returns the HTTP
 * status, 0 on a transport error. */
static long api_req(const char *server, const char *token, const char *method, const char *path,
                    json_t **out) {
    CURL *c = curl_easy_init();
    if (!c) return 0;
    char url[512], auth[300];
    snprintf(url, sizeof url, "%s%s", server, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "POST")) curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, m);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    fclose(m);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    *out = buf ? json_loads(buf, 0, NULL) : NULL;
    free(buf);
    return status;
}

/* A run's JSON (GET /api/v1/sync) as a sync_progress for the printers. */
static void progress_from_json(const json_t *j, sync_progress *p) {
    memset(p, 0, sizeof *p);
    p->run_id = json_integer_value(json_object_get(j, "id"));
    p->tenant_id = json_integer_value(json_object_get(j, "tenant_id"));
    p->done = json_integer_value(json_object_get(j, "done"));
    p->total = json_integer_value(json_object_get(j, "total"));
    p->calls = json_integer_value(json_object_get(j, "calls"));
    p->requests = json_integer_value(json_object_get(j, "requests"));
    p->items = json_integer_value(json_object_get(j, "items"));
    p->elapsed_ms = json_integer_value(json_object_get(j, "elapsed_s")) * 1000;
    const json_t *counts = json_object_get(j, "counts");
    for (int i = 0; i < SYNC_ENTITY_COUNT; i++) {
        const json_t *c = json_object_get(counts, sync_entity_names[i]);
        p->n[i].created = json_integer_value(json_object_get(c, "created"));
        p->n[i].updated = json_integer_value(json_object_get(c, "updated"));
        p->n[i].ended = json_integer_value(json_object_get(c, "ended"));
    }
}

/* Phase names as static strings (sync_progress.phase is compared by address). */
static const char *phase_static(const char *s) {
    static const char *const names[] = {"start",     "tags",   "employees", "unassigned",
                                        "customers", "groups", "reconcile", "finished"};
    for (size_t i = 0; s && i < sizeof names / sizeof *names; i++)
        if (!strcmp(s, names[i])) return names[i];
    return "?";
}

static int sync_remote(const char *server, const char *token, bool json) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_t *j = NULL;
    long st = api_req(server, token, "POST", "/api/v1/sync", &j);
    if (st != 202) {
        const char *msg =
            json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        fprintf(stderr, "siyu sync: %s answered %ld%s%s\n", server, st, msg ? ": " : "",
                msg ? msg : "");
        json_decref(j);
        curl_global_cleanup();
        return st == 409 ? 3 : 1;
    }
    json_int_t id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    if (!json) printf("siyu sync: run %lld on %s\n", (long long)id, server);
    view v = {.tty = isatty(STDOUT_FILENO) != 0, .json = json, .last_ms = -1000000};
    sync_progress p;
    siyu_err err = {0};
    int rc = 0;
    for (;;) {
        j = NULL;
        st = api_req(server, token, "GET", "/api/v1/sync", &j);
        if (st != 200 || json_integer_value(json_object_get(j, "id")) != id) {
            json_decref(j);
            siyu_err_set(&err, SIYU_EIO, NULL, "lost track of run %lld (HTTP %ld)", (long long)id,
                         st);
            rc = SIYU_EIO;
            break;
        }
        progress_from_json(j, &p);
        const char *state = json_string_value(json_object_get(j, "state"));
        p.phase = phase_static(json_string_value(json_object_get(j, "phase")));
        print_progress(&v, &p);
        bool running = state && !strcmp(state, "running");
        if (!running && state && strcmp(state, "done") != 0) {
            const char *e = json_string_value(json_object_get(j, "error"));
            siyu_err_set(&err, SIYU_EREMOTE, NULL, "%s", e ? e : "failed");
            rc = SIYU_EREMOTE;
        }
        json_decref(j);
        if (!running) break;
        if (atomic_load(&sync_cancel)) { /* the server's run goes on */
            fprintf(stderr, "\nsiyu sync: stopped following run %lld\n", (long long)id);
            curl_global_cleanup();
            return 130;
        }
        usleep(250000);
    }
    print_summary(&p, rc, &err, json, v.tty);
    curl_global_cleanup();
    return rc == 0 ? 0 : 1;
}

int cli_sync(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(sync_usage, stdout);
            return 0;
        }
    /* --force and --json take no value: strip them before the flag check. */
    bool force = false, json = false;
    char **args = calloc((size_t)argc + 1, sizeof *args);
    int n = 0;
    if (!args) return 1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--force"))
            force = true;
        else if (!strcmp(argv[i], "--json"))
            json = true;
        else
            args[n++] = argv[i];
    }
    static const char *const allowed[] = {"data",   "tenant", "base-url", "timeout-ms",
                                          "server", "token",  NULL};
    int ret = cli_check_flags(n, args, allowed, sync_usage);
    const char *data = cli_flag(n, args, "data"), *tenant_s = cli_flag(n, args, "tenant");
    const char *base = cli_flag(n, args, "base-url"), *tmo = cli_flag(n, args, "timeout-ms");
    const char *server = cli_flag(n, args, "server"), *token = cli_flag(n, args, "token");
    free(args);
    if (ret) return ret;
    if (server) {
        if (!token) token = getenv("SIYU_TOKEN");
        if (!token) {
            fprintf(stderr, "siyu sync: --server needs --token (or SIYU_TOKEN)\n%s", sync_usage);
            return 2;
        }
        struct sigaction sa = {.sa_handler = on_signal};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        return sync_remote(server, token, json);
    }
    if (!base) base = getenv("SIYU_WECOM_BASE_URL");
    if (!data) data = getenv("SIYU_DATA") ? getenv("SIYU_DATA") : "./data";
    int64_t tenant = tenant_s ? strtoll(tenant_s, NULL, 10) : 0;
    if (tenant <= 0) {
        fprintf(stderr, "siyu sync: --tenant ID is required\n%s", sync_usage);
        return 2;
    }
    log_set_level(LOG_WARN);
    siyu_err err = {0};
    store_options so = {.writer_thread = true};
    store *st = store_open(data, &so, &err);
    if (!st) {
        fprintf(stderr, "siyu sync: %s\n", err.msg);
        return 1;
    }
    wecom_client_opts wo = {.base_url = base, .timeout_ms = tmo ? atol(tmo) : 0};
    wecom_client *wc = wecom_client_new(&wo, &err);
    if (!wc) {
        fprintf(stderr, "siyu sync: %s\n", err.msg);
        store_close(st);
        return 1;
    }
    sync_begin b = {.tenant_id = tenant, .origin = "cli"};
    int rc = force ? store_write(st, force_step, &tenant) : 0;
    if (rc == 0) rc = store_write(st, sync_run_begin, &b);
    if (rc != 0) {
        fprintf(stderr, "siyu sync: %s\n", b.err.msg[0] ? b.err.msg : siyu_strerror(rc));
        wecom_client_free(wc);
        store_close(st);
        return rc == SIYU_ECONFLICT ? 3 : 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    view v = {.tty = isatty(STDOUT_FILENO) != 0, .json = json, .last_ms = -1000000};
    if (!json)
        printf("siyu sync: tenant %lld, run %lld, WeCom at %s\n", (long long)tenant,
               (long long)b.run_id, wecom_client_base_url(wc));
    sync_progress p;
    memset(&p, 0, sizeof p);
    rc = sync_full_run(st, wc, tenant, b.run_id, &sync_cancel, print_progress, &v, &p, &err);
    print_summary(&p, rc, &err, json, v.tty);
    wecom_client_free(wc);
    store_close(st);
    return rc == 0 ? 0 : 1;
}
