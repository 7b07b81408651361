/* api_sync.c — full sync with WeCom: start one, watch its progress, list runs.
 *
 *   POST /api/v1/sync       claims a run for the caller's tenant (write step
 *                           sync_run_begin), then starts its thread in the
 *                           sync manager; 202 with the run, 409 when one is
 *                           running, 400 when the tenant has no WeCom secret
 *   GET  /api/v1/sync       the latest run with its progress (+ whether a
 *                           refresh-queue overflow asks for a full sync)
 *   GET  /api/v1/sync/runs  runs, latest first (limit, before)
 *
 * Admin and operator only: a sync touches the whole tenant. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "store/customer.h"
#include "sync/sync.h"

typedef struct sync_op {
    sync_begin b;
} sync_op;

static void sync_started(http_req *r, http_resp *w, int rc) {
    sync_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->b.err);
        return;
    }
    rc = sync_mgr_launch(r->ctx->sync, op->b.tenant_id, op->b.run_id);
    if (rc != 0) {
        http_error(w, 503, "unavailable", "the sync could not be started: %s", siyu_strerror(rc));
        return;
    }
    store_conn *c = store_reader_acquire(r->ctx->st);
    json_t *j = c ? sync_run_get_json(c, op->b.tenant_id, op->b.run_id) : NULL;
    if (c) store_reader_release(r->ctx->st, c);
    if (!j) j = json_pack("{s:I,s:s}", "id", (json_int_t)op->b.run_id, "state", "running");
    http_json(w, 202, j);
}

static void sync_start(http_req *r, http_resp *w) {
    if (!r->ctx->sync) {
        http_error(w, 503, "unavailable", "the sync manager is not running");
        return;
    }
    if (r->body_len) {
        static const json_field none[] = {{NULL, JF_ANY, false, 0, false}};
        json_t *body = http_body_object(r, w, none);
        if (!body) return;
        json_decref(body);
    }
    sync_op *op = calloc(1, sizeof *op);
    if (!op) {
        http_error(w, 503, "internal", "out of memory");
        return;
    }
    op->b.tenant_id = r->auth.tenant_id;
    op->b.origin = "api";
    /* A run of this process that has been quiet for a while is still running:
     * no stale takeover (a second thread would sync the tenant at once). */
    op->b.live = sync_mgr_running(r->ctx->sync, op->b.tenant_id);
    r->user = op;
    r->user_free = free;
    http_write(r, w, sync_run_begin, &op->b, sync_started);
}

/* The callback-driven refresh counters (server-wide). */
static json_t *refresh_json(sync_mgr *m) {
    sync_mgr_stats s;
    sync_mgr_stats_get(m, &s);
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "queued", (json_int_t)s.queued, "done",
                     (json_int_t)s.done, "deduplicated", (json_int_t)s.deduped, "dropped",
                     (json_int_t)s.dropped, "failed", (json_int_t)s.failed, "calls",
                     (json_int_t)s.calls, "pending", (json_int_t)s.pending);
}

static void sync_latest_read(http_req *r, http_resp *w, store_conn *c) {
    json_t *j = sync_run_get_json(c, r->auth.tenant_id, 0);
    /* Before the first sync there is no run, but the refresh counters and
     * the overflow flag still tell the operator something. */
    if (!j) j = json_pack("{s:n,s:n}", "id", "state");
    json_object_set_new(j, "needs_full_sync",
                        json_boolean(sync_mgr_needs_full(r->ctx->sync, r->auth.tenant_id)));
    json_object_set_new(j, "refresh", refresh_json(r->ctx->sync));
    http_json(w, 200, j);
}

static void sync_latest(http_req *r, http_resp *w) {
    api_read(r, w, sync_latest_read);
}

static void sync_runs_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t limit = 20, before = 0;
    siyu_err err = {0};
    if (customer_arg_int(http_query(r, "limit"), "limit", 1, &limit, &err) ||
        customer_arg_int(http_query(r, "before"), "before", 1, &before, &err)) {
        http_error_err(w, &err);
        return;
    }
    if (limit > 200) limit = 200;
    json_t *items = sync_run_list_json(c, r->auth.tenant_id, (int)limit, before);
    if (!items) {
        http_error(w, 503, "unavailable", "store unavailable");
        return;
    }
    http_json(w, 200, json_pack("{s:o}", "items", items));
}

static void sync_runs(http_req *r, http_resp *w) {
    api_read(r, w, sync_runs_read);
}

const http_route api_sync_routes[] = {
    {"POST", "/api/v1/sync", sync_start, ROLES_OFFICE,
     "Start a full sync of the tenant with WeCom (tags, employees, customers, groups); 202 with "
     "the run, 409 while one is running",
     0},
    {"GET", "/api/v1/sync", sync_latest, ROLES_OFFICE,
     "The latest full sync with its progress: state running|done|failed, phase, done/total, "
     "API calls, counts per entity",
     0},
    {"GET", "/api/v1/sync/runs", sync_runs, ROLES_OFFICE,
     "Full sync runs, latest first (limit ≤ 200, before = a run id)", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
