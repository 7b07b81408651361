/* api_outbox.c — the outbox as operators see it: listing, one row, counts,
 * and the two operator actions (retry, cancel). Admin and operator only;
 * every query is scoped to the token's tenant, so the platform token (which
 * has no tenant) is refused by the route roles and never sees tenants' rows.
 *
 * Ownership: a write request's outbox_action hangs on r->user. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "outbox/outbox.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 500

static bool reply_invalid(http_resp *w, const char *field, const char *msg) {
    siyu_err e;
    siyu_err_set(&e, SIYU_EINVAL, field, "%s", msg);
    http_error_err(w, &e);
    return false;
}

/* ?limit= and ?cursor= (an id: rows older than it). Shared with api_welcome.c. */
bool api_outbox_page(http_req *r, http_resp *w, int *limit, int64_t *before) {
    *limit = PAGE_DEFAULT;
    *before = 0;
    const char *lim = http_query(r, "limit"), *cur = http_query(r, "cursor");
    char *end;
    if (lim) {
        long long v = strtoll(lim, &end, 10);
        if (!*lim || *end || v < 1)
            return reply_invalid(w, "limit", "limit must be a positive integer");
        *limit = v > PAGE_MAX ? PAGE_MAX : (int)v;
    }
    if (cur) {
        long long v = strtoll(cur, &end, 10);
        if (!*cur || *end || v < 1)
            return reply_invalid(w, "cursor", "cursor is not one this server gave out");
        *before = v;
    }
    return true;
}

json_t *api_outbox_next(int64_t next) {
    if (!next) return json_null();
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)next);
    return json_string(buf);
}

static void list_read(http_req *r, http_resp *w, store_conn *c) {
    const char *state = http_query(r, "state"), *kind = http_query(r, "kind");
    if (state && !*state) state = NULL;
    if (kind && !*kind) kind = NULL;
    if (state && !outbox_state_valid(state)) {
        reply_invalid(w, "state",
                      "state must be one of pending, sending, sent, failed, dead, cancelled");
        return;
    }
    int limit;
    int64_t before, next;
    if (!api_outbox_page(r, w, &limit, &before)) return;
    json_t *items = json_array();
    if (outbox_list(c, r->auth.tenant_id, state, kind, before, limit, items, &next) != 0) {
        json_decref(items);
        http_error(w, 500, "internal", "query failed");
        return;
    }
    http_json(w, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", api_outbox_next(next)));
}

static void list(http_req *r, http_resp *w) {
    api_read(r, w, list_read);
}

static void reply_row(http_req *r, http_resp *w, store_conn *c, int64_t id) {
    json_t *j = outbox_get_json(c, r->auth.tenant_id, id, true);
    if (!j)
        http_error(w, 404, "not_found", "outbox row %lld does not exist", (long long)id);
    else
        http_json(w, 200, j);
}

static void get_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t id;
    if (http_param_id(r, w, 0, &id)) reply_row(r, w, c, id);
}

static void get(http_req *r, http_resp *w) {
    api_read(r, w, get_read);
}

static void stats_read(http_req *r, http_resp *w, store_conn *c) {
    json_t *j = outbox_stats_json(c, r->auth.tenant_id);
    if (!j)
        http_error(w, 500, "internal", "query failed");
    else
        http_json(w, 200, j);
}

static void stats(http_req *r, http_resp *w) {
    api_read(r, w, stats_read);
}

typedef struct action_op {
    outbox_action a;
    char actor[32];
} action_op;

static void action_done(http_req *r, http_resp *w, int rc) {
    action_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->a.err);
        return;
    }
    outbox_kick(r->ctx->ob, op->a.lane);
    store_conn *c = store_reader_acquire(r->ctx->st);
    if (!c) {
        http_error(w, 503, "unavailable", "store unavailable");
        return;
    }
    reply_row(r, w, c, op->a.id);
    store_reader_release(r->ctx->st, c);
}

static void action(http_req *r, http_resp *w, store_write_fn fn) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    action_op *op = api_op_new(r, w, sizeof *op, NULL, free);
    if (!op) return;
    api_actor(r, op->actor);
    op->a = (outbox_action){.tenant_id = r->auth.tenant_id, .id = id, .actor = op->actor};
    http_write(r, w, fn, &op->a, action_done);
}

static void retry(http_req *r, http_resp *w) {
    action(r, w, outbox_retry_step);
}

static void cancel(http_req *r, http_resp *w) {
    action(r, w, outbox_cancel_step);
}

/* "stats" comes before "{id}": the first matching row wins. */
const http_route api_outbox_routes[] = {
    {"GET", "/api/v1/outbox", list, ROLES_OFFICE,
     "Outbound WeCom calls, newest first (?state=, ?kind=, ?cursor=, ?limit=)", 0},
    {"GET", "/api/v1/outbox/stats", stats, ROLES_OFFICE,
     "Outbox counts by state and by kind and state", 0},
    {"GET", "/api/v1/outbox/{id}", get, ROLES_OFFICE,
     "One outbound call with its request body and WeCom's answer", 0},
    {"POST", "/api/v1/outbox/{id}/retry", retry, ROLES_OFFICE,
     "Send a failed or dead call again (attempts reset); 409 in other states", 0},
    {"POST", "/api/v1/outbox/{id}/cancel", cancel, ROLES_OFFICE,
     "Cancel a pending, failed or dead call; 409 once sending or sent", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
