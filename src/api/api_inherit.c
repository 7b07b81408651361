/* api_inherit.c — the inheritance screen's API (F3, docs/INHERITANCE.md).
 *
 *   POST /api/v1/inheritance/handover  spread an employee's customers (chosen
 *        or all) over takeovers, round-robin or least-loaded; customers that
 *        cannot move are refused one by one with a reason
 *   POST /api/v1/inheritance/assign    hand a resigned employee's pending
 *        customers and groups to one takeover (the "by hand" rule)
 *   GET  /api/v1/inheritance/summary   pending / in progress / done /
 *        refused / failed per handover and per takeover, with totals
 *   GET  /api/v1/inheritance/pending   what still waits for a takeover
 *   GET|PUT /api/v1/inheritance/rule   the tenant's resignation rule
 *
 * Bodies are checked here (types, sizes, distinct ids); the store steps
 * check the employees and customers. Ownership: one op per write request
 * hangs on r->user and owns the body and the id texts. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "outbox/outbox.h"
#include "store/inherit.h"
#include "store/transfer.h"
#include "util/utf8.h"

#define ROLES_HANDOVER (ROLE_ADMIN | ROLE_OPERATOR | ROLE_MANAGER)
#define PAGE_DEFAULT 50
#define PAGE_MAX 500

typedef struct inh_op {
    json_t *body;
    char actor[32];
    char *ids, *gids;
    int64_t takeovers[INHERIT_TAKEOVERS_MAX];
    inherit_handover h;
    inherit_assign a;
    inherit_rule_set rs;
} inh_op;

static void inh_op_free(void *p) {
    inh_op *op = p;
    json_decref(op->body);
    json_decref(op->h.result);
    free(op->ids);
    free(op->gids);
    free(op);
}

static bool invalid(http_resp *w, const char *field, const char *msg) {
    siyu_err e;
    siyu_err_set(&e, SIYU_EINVAL, field, "%s", msg);
    http_error_err(w, &e);
    return false;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Checks arr: non-empty, positive integers, no repeats, at most max; fills
 * v (when not NULL, cap max) and *text (malloc'd JSON, when not NULL). false
 * after replying 400 naming name[i]. */
static bool id_list(http_resp *w, const json_t *arr, const char *name, size_t max, int64_t *v,
                    char **text, size_t *n) {
    char field[64];
    *n = json_array_size(arr);
    if (*n == 0 || *n > max) {
        snprintf(field, sizeof field, "%s must hold 1 to %zu ids", name, max);
        return invalid(w, name, field);
    }
    int64_t *s = malloc(*n * sizeof *s);
    if (!s) {
        http_error(w, 503, "unavailable", "out of memory");
        return false;
    }
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it) {
        if (!json_is_integer(it) || json_integer_value(it) <= 0) {
            free(s);
            snprintf(field, sizeof field, "%s[%zu]", name, i);
            return invalid(w, field, "ids must be positive integers");
        }
        s[i] = json_integer_value(it);
        if (v) v[i] = s[i];
    }
    qsort(s, *n, sizeof *s, cmp_i64);
    for (i = 1; i < *n; i++)
        if (s[i] == s[i - 1]) {
            free(s);
            return invalid(w, name, "ids must not repeat");
        }
    free(s);
    if (text && !(*text = json_dumps(arr, JSON_COMPACT))) {
        http_error(w, 503, "unavailable", "out of memory");
        return false;
    }
    return true;
}

/* ---- handover --------------------------------------------------------------- */

static const json_field handover_fields[] = {
    {"handover_employee_id", JF_INT, true, 0, false},
    {"takeover_employee_ids", JF_ARRAY, true, INHERIT_TAKEOVERS_MAX, false},
    {"customer_ids", JF_ARRAY, false, TRANSFER_CUSTOMERS_MAX, true},
    {"strategy", JF_STRING, false, 32, false},
    {"message", JF_STRING, false, 4 * TRANSFER_MESSAGE_MAX, true},
    {NULL, 0, false, 0, false},
};

static void handover_done(http_req *r, http_resp *w, int rc) {
    inh_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->h.err);
        return;
    }
    if (r->ctx->ob) outbox_kick(r->ctx->ob, OUTBOX_LANE_NORMAL);
    http_json(w, 201, json_incref(op->h.result));
}

static void handover(http_req *r, http_resp *w) {
    json_t *body = http_body_object(r, w, handover_fields);
    if (!body) return;
    inh_op *op = api_op_new(r, w, sizeof *op, body, inh_op_free);
    if (!op) return;
    op->body = body;
    api_actor(r, op->actor);
    inherit_handover *h = &op->h;
    h->auth = r->auth;
    h->actor = op->actor;
    h->handover_id = json_integer_value(json_object_get(body, "handover_employee_id"));
    h->message = json_string_value(json_object_get(body, "message"));
    const char *strategy = json_string_value(json_object_get(body, "strategy"));
    if (h->handover_id <= 0) {
        invalid(w, "handover_employee_id", "handover_employee_id must be a positive integer");
        return;
    }
    if (strategy && strcmp(strategy, "round_robin") && strcmp(strategy, "least_loaded")) {
        invalid(w, "strategy", "strategy must be round_robin or least_loaded");
        return;
    }
    h->least_loaded = strategy && !strcmp(strategy, "least_loaded");
    if (h->message && utf8_chars(h->message) > TRANSFER_MESSAGE_MAX) {
        invalid(w, "message", "message must be at most 200 characters");
        return;
    }
    size_t n;
    if (!id_list(w, json_object_get(body, "takeover_employee_ids"), "takeover_employee_ids",
                 INHERIT_TAKEOVERS_MAX, op->takeovers, NULL, &n))
        return;
    h->takeovers = op->takeovers;
    h->ntakeovers = (int)n;
    json_t *cs = json_object_get(body, "customer_ids");
    if (cs && !json_is_null(cs)) {
        if (!id_list(w, cs, "customer_ids", TRANSFER_CUSTOMERS_MAX, NULL, &op->ids, &n)) return;
        h->customer_ids = op->ids;
    }
    http_write(r, w, inherit_handover_step, h, handover_done);
}

/* ---- assign ----------------------------------------------------------------- */

static const json_field assign_fields[] = {
    {"handover_employee_id", JF_INT, true, 0, false},
    {"takeover_employee_id", JF_INT, true, 0, false},
    {"customer_ids", JF_ARRAY, false, TRANSFER_CUSTOMERS_MAX, true},
    {"group_ids", JF_ARRAY, false, 1000, true},
    {NULL, 0, false, 0, false},
};

static void assign_done(http_req *r, http_resp *w, int rc) {
    inh_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->a.err);
        return;
    }
    if (r->ctx->ob) outbox_kick(r->ctx->ob, OUTBOX_LANE_NORMAL);
    http_json(w, 200,
              json_pack("{s:I,s:I}", "customers", (json_int_t)op->a.customers, "groups",
                        (json_int_t)op->a.chats));
}

static void assign(http_req *r, http_resp *w) {
    json_t *body = http_body_object(r, w, assign_fields);
    if (!body) return;
    inh_op *op = api_op_new(r, w, sizeof *op, body, inh_op_free);
    if (!op) return;
    op->body = body;
    api_actor(r, op->actor);
    inherit_assign *a = &op->a;
    a->auth = r->auth;
    a->actor = op->actor;
    a->handover_id = json_integer_value(json_object_get(body, "handover_employee_id"));
    a->takeover_id = json_integer_value(json_object_get(body, "takeover_employee_id"));
    if (a->handover_id <= 0 || a->takeover_id <= 0) {
        invalid(w, a->handover_id <= 0 ? "handover_employee_id" : "takeover_employee_id",
                "employee ids must be positive integers");
        return;
    }
    size_t n;
    json_t *cs = json_object_get(body, "customer_ids"), *gs = json_object_get(body, "group_ids");
    if (cs && !json_is_null(cs)) {
        if (!id_list(w, cs, "customer_ids", TRANSFER_CUSTOMERS_MAX, NULL, &op->ids, &n)) return;
        a->customer_ids = op->ids;
    }
    if (gs && !json_is_null(gs)) {
        if (!id_list(w, gs, "group_ids", 1000, NULL, &op->gids, &n)) return;
        a->group_ids = op->gids;
    }
    http_write(r, w, inherit_assign_step, a, assign_done);
}

/* ---- reads ------------------------------------------------------------------ */

static bool parse_int(const char *s, int64_t min, int64_t *out) {
    if (!s || !*s || strlen(s) > 18) return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return false;
    *out = strtoll(s, NULL, 10);
    return *out >= min;
}

static bool employee_arg(http_req *r, http_resp *w, int64_t *emp) {
    const char *e = http_query(r, "employee_id");
    *emp = 0;
    if (e && !parse_int(e, 1, emp)) return invalid(w, "employee_id", "must be a positive integer");
    return true;
}

static void summary_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t emp;
    if (!employee_arg(r, w, &emp)) return;
    json_t *j = inherit_summary_json(c, r->auth.tenant_id, emp);
    if (!j)
        http_error(w, 500, "internal", "query failed");
    else
        http_json(w, 200, j);
}

static void summary(http_req *r, http_resp *w) {
    api_read(r, w, summary_read);
}

static void pending_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t emp, after = 0, lim = PAGE_DEFAULT;
    const char *kind = http_query(r, "kind"), *cur = http_query(r, "cursor"),
               *l = http_query(r, "limit");
    if (!employee_arg(r, w, &emp)) return;
    if (kind && strcmp(kind, "customer") && strcmp(kind, "group")) {
        invalid(w, "kind", "kind must be customer or group");
        return;
    }
    if (cur && !parse_int(cur, 1, &after)) {
        invalid(w, "cursor", "cursor is not one this server gave out");
        return;
    }
    if (l && !parse_int(l, 1, &lim)) {
        invalid(w, "limit", "limit must be a positive integer");
        return;
    }
    json_t *j = NULL;
    if (inherit_pending_json(c, r->auth.tenant_id, emp, kind, after,
                             lim > PAGE_MAX ? PAGE_MAX : (int)lim, &j) != 0)
        http_error(w, 500, "internal", "query failed");
    else
        http_json(w, 200, j);
}

static void pending(http_req *r, http_resp *w) {
    api_read(r, w, pending_read);
}

static void rule_read(http_req *r, http_resp *w, store_conn *c) {
    json_t *j = inherit_rule_json(c, r->auth.tenant_id);
    if (!j)
        http_error(w, 500, "internal", "query failed");
    else
        http_json(w, 200, j);
}

static void rule_get(http_req *r, http_resp *w) {
    api_read(r, w, rule_read);
}

static const json_field rule_fields[] = {
    {"mode", JF_STRING, false, 32, false},
    {"store_managers", JF_ARRAY, false, 1000, false},
    {NULL, 0, false, 0, false},
};

static void rule_done(http_req *r, http_resp *w, int rc) {
    inh_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->rs.err);
        return;
    }
    api_read(r, w, rule_read);
}

static void rule_put(http_req *r, http_resp *w) {
    json_t *body = http_body_object(r, w, rule_fields);
    if (!body) return;
    inh_op *op = api_op_new(r, w, sizeof *op, body, inh_op_free);
    if (!op) return;
    op->body = body;
    api_actor(r, op->actor);
    op->rs.tenant_id = r->auth.tenant_id;
    op->rs.actor = op->actor;
    op->rs.mode = json_string_value(json_object_get(body, "mode"));
    op->rs.store_managers = json_object_get(body, "store_managers");
    http_write(r, w, inherit_rule_set_step, &op->rs, rule_done);
}

const http_route api_inherit_routes[] = {
    {"POST", "/api/v1/inheritance/handover", handover, ROLES_HANDOVER,
     "Spread an employee's customers (customer_ids, or all) over takeover_employee_ids "
     "(strategy round_robin | least_loaded); customers that cannot move are refused one by one "
     "with a reason (e.g. transfer_limit_90_days)",
     0},
    {"POST", "/api/v1/inheritance/assign", assign, ROLES_OFFICE,
     "Hand a resigned employee's pending customers and groups (all, or customer_ids / "
     "group_ids) to one takeover",
     0},
    {"GET", "/api/v1/inheritance/summary", summary, ROLES_OFFICE,
     "Inheritance counts per handover and per takeover: pending, in_progress, done, refused, "
     "failed, total (?employee_id=)",
     0},
    {"GET", "/api/v1/inheritance/pending", pending, ROLES_OFFICE,
     "Customers and groups still waiting for a takeover (?employee_id=, kind, limit, cursor)", 0},
    {"GET", "/api/v1/inheritance/rule", rule_get, ROLES_OFFICE,
     "The tenant's resignation rule and store managers", 0},
    {"PUT", "/api/v1/inheritance/rule", rule_put, ROLES_OFFICE,
     "Set the resignation rule (mode manual | store_manager | store_round_robin) and store "
     "managers",
     0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
