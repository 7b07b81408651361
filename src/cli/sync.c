/* sync.c — `siyu sync`: a full sync of one tenant with WeCom, in this
 * process, against the data directory (the server may be running or not:
 * SQLite serialises the writes; a writer thread group-commits the steps of
 * the concurrent fetchers). Shows progress on the terminal (one
 * rewritten line on a TTY, a line per second otherwise) and a summary; with
 * --json the summary is one JSON object on stdout. */
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
    "  Runs a full sync of the tenant with WeCom (corp tags, employees, customers and\n"
    "  their follow records, customer groups), printing progress and a summary.\n"
    "  --base-url  WeCom API base (default $SIYU_WECOM_BASE_URL or " WECOM_BASE_URL_DEFAULT ")\n"
    "  --force     take over a run recorded as running (e.g. after a crash)\n"
    "  --json      print the summary as JSON\n";

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
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_rc(rc);
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
    static const char *const allowed[] = {"data", "tenant", "base-url", "timeout-ms", NULL};
    int ret = cli_check_flags(n, args, allowed, sync_usage);
    const char *data = cli_flag(n, args, "data"), *tenant_s = cli_flag(n, args, "tenant");
    const char *base = cli_flag(n, args, "base-url"), *tmo = cli_flag(n, args, "timeout-ms");
    free(args);
    if (ret) return ret;
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
