/* api_system.c — /healthz, /metrics, /api/v1/openapi.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "segment/segsvc.h"
#include "outbox/outbox.h"
#include "wecom/wecom_event.h"

static void healthz(http_req *r, http_resp *w) {
    store_conn *c = store_reader_acquire(r->ctx->st);
    bool ok = false;
    if (c) {
        sqlite3_stmt *st = store_conn_stmt(c, "SELECT 1");
        ok = st && sqlite3_step(st) == SQLITE_ROW;
        if (st) sqlite3_reset(st);
        store_reader_release(r->ctx->st, c);
    }
    if (ok) http_json(w, 200, json_pack("{s:s,s:s}", "status", "ok", "version", SIYU_VERSION));
    else http_error(w, 503, "unavailable", "store unavailable");
}

static void outbox_metrics(http_req *r, FILE *f) {
    outbox_counts n;
    store_conn *c = store_reader_acquire(r->ctx->st);
    int rc = c ? outbox_counts_get(c, 0, &n) : SIYU_EIO;
    if (c) store_reader_release(r->ctx->st, c);
    if (rc == 0) {
        fprintf(f, "# HELP siyu_outbox_rows Outbox rows by state (all tenants).\n"
                   "# TYPE siyu_outbox_rows gauge\n");
        const struct {
            const char *s;
            int64_t v;
        } rows[] = {{"pending", n.pending}, {"sending", n.sending}, {"sent", n.sent},
                    {"failed", n.failed},   {"dead", n.dead},       {"cancelled", n.cancelled}};
        for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
            fprintf(f, "siyu_outbox_rows{state=\"%s\"} %lld\n", rows[i].s, (long long)rows[i].v);
    }
    outbox_stats os;
    outbox_stats_get(r->ctx->ob, &os);
    fprintf(f,
            "# HELP siyu_outbox_outcomes_total Delivery outcomes recorded by this process.\n"
            "# TYPE siyu_outbox_outcomes_total counter\n"
            "siyu_outbox_outcomes_total{outcome=\"sent\"} %ld\n"
            "siyu_outbox_outcomes_total{outcome=\"failed\"} %ld\n"
            "siyu_outbox_outcomes_total{outcome=\"dead\"} %ld\n",
            os.sent, os.failed, os.dead);
}

static void metrics(http_req *r, http_resp *w) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        http_error(w, 500, "internal", "out of memory");
        return;
    }
    char *h = http_metrics_text(r->ctx->http);
    if (h) fputs(h, f);
    free(h);
    store_stats ss;
    store_stats_get(r->ctx->st, &ss);
    static const char *le[] = {"1", "4", "16", "64", "256", "1024", "4096", "+Inf"};
    fprintf(f, "# HELP siyu_writer_queue_depth Write commands waiting for the writer.\n"
               "# TYPE siyu_writer_queue_depth gauge\nsiyu_writer_queue_depth %lld\n",
            (long long)ss.queue_depth);
    fprintf(f, "# HELP siyu_writer_commits_total Transactions committed by the writer.\n"
               "# TYPE siyu_writer_commits_total counter\nsiyu_writer_commits_total %lld\n",
            (long long)ss.commits);
    fprintf(f, "# HELP siyu_writer_batch_size Write commands per committed transaction.\n"
               "# TYPE siyu_writer_batch_size histogram\n");
    long long cum = 0;
    for (int i = 0; i < 8; i++) {
        cum += ss.batch_hist[i];
        fprintf(f, "siyu_writer_batch_size_bucket{le=\"%s\"} %lld\n", le[i], cum);
    }
    fprintf(f, "siyu_writer_batch_size_sum %lld\nsiyu_writer_batch_size_count %lld\n",
            (long long)ss.commands, (long long)ss.commits);
    fprintf(f, "# HELP siyu_callbacks_total WeCom callbacks accepted, by event type.\n"
               "# TYPE siyu_callbacks_total counter\n");
    for (int k = 0; k < CB_KIND_MAX && k < WECOM_EV_KIND_COUNT; k++) {
        long v = atomic_load(&r->ctx->cb_by_kind[k]);
        if (v) fprintf(f, "siyu_callbacks_total{type=\"%s\"} %ld\n", wecom_event_kind_name((wecom_event_kind)k), v);
    }
    fprintf(f, "# HELP siyu_callbacks_rejected_total Callbacks rejected (signature, crypto, format).\n"
               "# TYPE siyu_callbacks_rejected_total counter\nsiyu_callbacks_rejected_total %ld\n",
            atomic_load(&r->ctx->cb_rejected));
    fprintf(f, "# HELP siyu_callbacks_duplicate_total Callbacks recognised as retries.\n"
               "# TYPE siyu_callbacks_duplicate_total counter\nsiyu_callbacks_duplicate_total %ld\n",
            atomic_load(&r->ctx->cb_duplicate));
    fprintf(f, "# HELP siyu_events_accepted_total Behaviour events stored via the API.\n"
               "# TYPE siyu_events_accepted_total counter\nsiyu_events_accepted_total %ld\n",
            atomic_load(&r->ctx->events_accepted));
    outbox_metrics(r, f);
    if (r->ctx->seg) segsvc_metrics(r->ctx->seg, f);
    fclose(f);
    http_text(w, 200, "text/plain; version=0.0.4", buf, len);
    free(buf);
}

static void openapi(http_req *r, http_resp *w) {
    http_json(w, 200, api_openapi(r->ctx->http));
}

const http_route api_system_routes[] = {
    {"GET", "/healthz", healthz, ROLE_PUBLIC, "Liveness and store check", 0},
    {"GET", "/metrics", metrics, ROLE_PUBLIC, "Prometheus metrics", 0},
    {"GET", "/api/v1/openapi.json", openapi, ROLE_PUBLIC, "This OpenAPI 3 document", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
