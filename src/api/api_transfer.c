/* api_transfer.c — customer transfers between employees (在职继承 / 离职继承).
 *
 * POST /api/v1/transfers validates the body on the HTTP thread (types,
 * lengths, distinct ids), then runs transfer_request_step on the writer,
 * which checks the employees, the customers and the token's team scope and
 * writes the transfer rows with their outbox calls in one step. After the
 * commit the outbox's normal lane is kicked. Reads are plain lookups.
 *
 * Roles: admin and operator for the whole tenant; a manager for employees of
 * their department subtree (handover and takeover both). Employees may not
 * move customers.
 *
 * Ownership: one xfer_op per write request hangs on r->user and owns the
 * parsed body (whose strings the request borrows) and the id list text. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "outbox/outbox.h"
#include "store/transfer.h"
#include "util/utf8.h"

#define ROLES_TRANSFER (ROLE_ADMIN | ROLE_OPERATOR | ROLE_MANAGER)
#define PAGE_DEFAULT 50
#define PAGE_MAX 500

typedef struct xfer_op {
    json_t *body;
    char actor[32];
    char *ids;
    transfer_request req;
} xfer_op;

static void xfer_op_free(void *p) {
    xfer_op *op = p;
    json_decref(op->body);
    free(op->ids);
    free(op);
}

static bool invalid(http_resp *w, const char *field, const char *msg) {
    siyu_err e;
    siyu_err_set(&e, SIYU_EINVAL, field, "%s", msg);
    http_error_err(w, &e);
    return false;
}

static const json_field create_fields[] = {
    {"handover_employee_id", JF_INT, true, 0, false},
    {"takeover_employee_id", JF_INT, true, 0, false},
    {"customer_ids", JF_ARRAY, true, TRANSFER_CUSTOMERS_MAX, false},
    {"message", JF_STRING, false, 4 * TRANSFER_MESSAGE_MAX, true},
    {NULL, 0, false, 0, false},
};

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Checks customer_ids: non-empty, positive integers, no repeats. Returns the
 * compact JSON text (malloc'd) or NULL after replying. */
static char *customer_list(http_resp *w, const json_t *arr, size_t *n) {
    char field[48];
    *n = json_array_size(arr);
    if (*n == 0) {
        invalid(w, "customer_ids", "customer_ids must not be empty");
        return NULL;
    }
    int64_t *v = malloc(*n * sizeof *v);
    if (!v) {
        http_error(w, 503, "unavailable", "out of memory");
        return NULL;
    }
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it) {
        if (!json_is_integer(it) || json_integer_value(it) <= 0) {
            free(v);
            snprintf(field, sizeof field, "customer_ids[%zu]", i);
            invalid(w, field, "customer ids must be positive integers");
            return NULL;
        }
        v[i] = json_integer_value(it);
    }
    qsort(v, *n, sizeof *v, cmp_i64);
    for (i = 1; i < *n; i++) {
        if (v[i] != v[i - 1]) continue;
        /* Name the second occurrence of the repeated id. */
        size_t k, seen = 0;
        json_array_foreach(arr, k, it) {
            if (json_integer_value(it) == v[i] && seen++) break;
        }
        free(v);
        snprintf(field, sizeof field, "customer_ids[%zu]", k);
        invalid(w, field, "customer ids must not repeat");
        return NULL;
    }
    free(v);
    char *text = json_dumps(arr, JSON_COMPACT);
    if (!text) http_error(w, 503, "unavailable", "out of memory");
    return text;
}

static void created(http_req *r, http_resp *w, int rc) {
    xfer_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->req.err);
        return;
    }
    if (r->ctx->ob) outbox_kick(r->ctx->ob, OUTBOX_LANE_NORMAL);
    transfer_request *t = &op->req;
    json_t *ids = json_array();
    for (int64_t i = 0; i < t->count; i++)
        json_array_append_new(ids, json_integer(t->first_id + i));
    http_json(w, 201,
              json_pack("{s:o,s:I,s:i,s:s}", "transfer_ids", ids, "count", (json_int_t)t->count,
                        "batches", t->batches, "kind", t->resigned ? "resigned" : "on_job"));
}

static void transfers_create(http_req *r, http_resp *w) {
    json_t *body = http_body_object(r, w, create_fields);
    if (!body) return;
    xfer_op *op = api_op_new(r, w, sizeof *op, body, xfer_op_free);
    if (!op) return;
    op->body = body;
    api_actor(r, op->actor);
    transfer_request *t = &op->req;
    t->auth = r->auth;
    t->actor = op->actor;
    t->handover_id = json_integer_value(json_object_get(body, "handover_employee_id"));
    t->takeover_id = json_integer_value(json_object_get(body, "takeover_employee_id"));
    t->message = json_string_value(json_object_get(body, "message"));
    if (t->handover_id <= 0) {
        invalid(w, "handover_employee_id", "handover_employee_id must be a positive integer");
        return;
    }
    if (t->takeover_id <= 0) {
        invalid(w, "takeover_employee_id", "takeover_employee_id must be a positive integer");
        return;
    }
    if (t->handover_id == t->takeover_id) {
        invalid(w, "takeover_employee_id", "takeover must differ from the handover employee");
        return;
    }
    if (t->message && utf8_chars(t->message) > TRANSFER_MESSAGE_MAX) {
        invalid(w, "message", "message must be at most 200 characters");
        return;
    }
    op->ids = customer_list(w, json_object_get(body, "customer_ids"), &t->ncustomers);
    if (!op->ids) return;
    t->customer_ids = op->ids;
    http_write(r, w, transfer_request_step, t, created);
}

static void get_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    json_t *j = transfer_get_json(c, &r->auth, id);
    if (!j)
        http_error(w, 404, "not_found", "transfer %lld does not exist", (long long)id);
    else
        http_json(w, 200, j);
}

static void transfers_get(http_req *r, http_resp *w) {
    api_read(r, w, get_read);
}

/* Parses a decimal integer >= min; false for anything else. */
static bool parse_int(const char *s, int64_t min, int64_t *out) {
    if (!s || !*s || strlen(s) > 18) return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return false;
    *out = strtoll(s, NULL, 10);
    return *out >= min;
}

static void list_read(http_req *r, http_resp *w, store_conn *c) {
    transfer_filter f = {.limit = PAGE_DEFAULT, .state = http_query(r, "state")};
    const char *emp = http_query(r, "employee_id"), *cur = http_query(r, "cursor"),
               *lim = http_query(r, "limit");
    int64_t v;
    if (f.state) {
        bool ok = false;
        for (const char *const *s = transfer_states; *s && !ok; s++)
            ok = strcmp(*s, f.state) == 0;
        if (!ok) {
            invalid(w, "state", "state must be requested, waiting, done, refused or failed");
            return;
        }
    }
    if (emp && !parse_int(emp, 1, &f.employee_id)) {
        invalid(w, "employee_id", "employee_id must be a positive integer");
        return;
    }
    if (cur && !parse_int(cur, 1, &f.after_id)) {
        invalid(w, "cursor", "cursor is not one this server gave out");
        return;
    }
    if (lim) {
        if (!parse_int(lim, 1, &v)) {
            invalid(w, "limit", "limit must be a positive integer");
            return;
        }
        f.limit = v > PAGE_MAX ? PAGE_MAX : (int)v;
    }
    json_t *j = NULL;
    if (transfer_list_json(c, &r->auth, &f, &j) != 0)
        http_error(w, 500, "internal", "query failed");
    else
        http_json(w, 200, j);
}

static void transfers_list(http_req *r, http_resp *w) {
    api_read(r, w, list_read);
}

const http_route api_transfer_routes[] = {
    {"POST", "/api/v1/transfers", transfers_create, ROLES_TRANSFER,
     "Transfer up to 10,000 customers from a handover to a takeover employee (在职继承; "
     "resigned handovers use 离职继承); one WeCom call per 100 customers through the outbox",
     0},
    {"GET", "/api/v1/transfers", transfers_list, ROLES_TRANSFER,
     "List transfers in scope by id (filters: state, employee_id = handover or takeover; limit, "
     "cursor)",
     0},
    {"GET", "/api/v1/transfers/{id}", transfers_get, ROLES_TRANSFER, "Get one transfer", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
