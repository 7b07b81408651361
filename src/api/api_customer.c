/* api_customer.c — the read side of the customer domain: customer lists, the
 * customer 360 view, timelines, relationships, and the tenant audit log.
 *
 * Handlers only turn query parameters into filters (a bad value is a 400
 * naming the parameter) and hand them to store/customer.c on a pooled read
 * connection, which applies the tenant and the token's data scope. Records
 * outside the scope answer 404 like absent ones.
 *
 * GET /customers?segment=EXPR (or ?segment_id=) pages through a segment's
 * members (api_segment_eval: the token's scope applies) in id order, a chunk
 * at a time through the store's other filters (segment_page).
 *
 * Writes: PATCH .../relationships/{employee_id} edits the remark and
 * description of a follow record and queues WeCom's externalcontact/remark
 * in the same write step (customer_relationship_remark); the outbox's normal
 * lane is kicked after the commit. PATCH /customers/{id} sets region, stage
 * and phone (customer_fields_update; admin and operator). */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "outbox/outbox.h"
#include "segment/segsvc.h"
#include "store/customer.h"

/* Replies with the store's result: 200 and the JSON, or the error. */
static void reply(http_resp *w, int rc, json_t *j, const siyu_err *err) {
    if (rc == 0)
        http_json(w, 200, j);
    else
        http_error_err(w, err);
}

/* An empty ?q= means no filter. */
static const char *query_nonempty(http_req *r, const char *key) {
    const char *v = http_query(r, key);
    return v && *v ? v : NULL;
}

/* added_after / added_before shared by customers and relationships. */
static int added_args(http_req *r, int64_t *after, int64_t *before, siyu_err *err) {
    *after = *before = -1;
    if (customer_arg_int(http_query(r, "added_after"), "added_after", 0, after, err) ||
        customer_arg_int(http_query(r, "added_before"), "added_before", 0, before, err))
        return SIYU_EINVAL;
    return 0;
}

static int page_args(http_req *r, customer_list_kind kind, customer_page *p, siyu_err *err) {
    return customer_page_parse(http_query(r, "limit"), http_query(r, "cursor"), kind, p, err);
}

/* ---- GET /customers ---- */

/* Segment members looked at per store query, and at most per request: a
 * page of a segment that the other filters thin out ends early with a
 * next_cursor rather than scanning the whole segment. */
#define SEGMENT_CHUNK 500
#define SEGMENT_SCAN_MAX 20000

/* The page of a ?segment= / ?segment_id= list: the segment's members (res,
 * in the token's scope) in id order after the cursor, each chunk passed
 * through the other filters of f by the store. */
static int segment_page(http_req *r, store_conn *c, customer_filter *f, const customer_page *p,
                        const segsvc_result *res, json_t **out, siyu_err *err) {
    engine_row *rows = malloc(SEGMENT_CHUNK * sizeof *rows);
    char *ids = malloc(SEGMENT_CHUNK * 21 + 3);
    json_t *items = json_array();
    int rc = rows && ids && items ? 0 : siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    int64_t after = p->has_cursor ? p->key[0] : 0;
    bool exhausted = res->count == 0;
    size_t scanned = 0;
    /* The cursor holds a customer id; the engine pages by dense id. */
    engine_row from = {0};
    bool start = true;
    if (!rc && after)
        rc =
            api_segment_after(r->ctx->seg, r->auth.tenant_id, res, after, &start, &from.dense, err);
    while (!rc && !exhausted && json_array_size(items) <= (size_t)p->limit &&
           scanned < SEGMENT_SCAN_MAX) {
        size_t n = 0;
        rc = segsvc_page(r->ctx->seg, r->auth.tenant_id, res, ENGINE_SORT_ID, false,
                         start ? NULL : &from, SEGMENT_CHUNK, rows, &n, err);
        if (rc == SIYU_ECONFLICT)
            siyu_err_set(err, SIYU_EBUSY, NULL, "the engine was rebuilt; retry");
        if (rc) break;
        exhausted = n < SEGMENT_CHUNK;
        if (n == 0) break;
        size_t k = 0;
        ids[k++] = '[';
        for (size_t i = 0; i < n; i++)
            k += (size_t)sprintf(ids + k, "%s%lld", i ? "," : "", (long long)rows[i].customer_id);
        ids[k++] = ']';
        ids[k] = 0;
        f->ids = ids;
        customer_page q = {.limit = SEGMENT_CHUNK + 1, .has_cursor = true, .key = {after, 0}};
        json_t *got = NULL;
        rc = customer_list_json(c, &r->auth, f, &q, &got, err);
        if (rc) break;
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(got, "items"), i, it) {
            if (json_array_size(items) > (size_t)p->limit) break;
            json_array_append(items, it);
        }
        json_decref(got);
        after = rows[n - 1].customer_id;
        from = rows[n - 1];
        start = false;
        scanned += n;
    }
    f->ids = NULL;
    free(rows);
    free(ids);
    if (rc) {
        json_decref(items);
        return rc;
    }
    json_t *next = json_null();
    int64_t key[2] = {after, 0};
    if (json_array_size(items) > (size_t)p->limit) {
        /* one more than a page: the cursor is the page's last customer */
        json_array_remove(items, (size_t)p->limit);
        key[0] = json_integer_value(json_object_get(json_array_get(items, p->limit - 1), "id"));
        json_decref(next);
        next = customer_cursor_json(CUSTOMER_LIST_CUSTOMERS, key);
    } else if (!exhausted) {
        json_decref(next); /* scan budget spent: go on after the last member looked at */
        next = customer_cursor_json(CUSTOMER_LIST_CUSTOMERS, key);
    }
    *out = json_pack("{s:o,s:o}", "items", items, "next_cursor", next);
    return *out ? 0 : siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
}

static void customers_list(http_req *r, http_resp *w) {
    customer_filter f = {
        .employee = http_query(r, "employee"),
        .status = http_query(r, "status"),
        .rel_status = http_query(r, "relationship_status"),
        .q = query_nonempty(r, "q"),
    };
    customer_page p;
    siyu_err err = {0};
    json_t *j = NULL;
    const char *seg = http_query(r, "segment");
    int64_t seg_id = 0;
    int rc = added_args(r, &f.added_after, &f.added_before, &err);
    if (!rc) rc = customer_arg_int(http_query(r, "tag"), "tag", 1, &f.tag_id, &err);
    if (!rc) rc = page_args(r, CUSTOMER_LIST_CUSTOMERS, &p, &err);
    if (!rc) rc = customer_arg_int(http_query(r, "segment_id"), "segment_id", 1, &seg_id, &err);
    if (!rc && seg && seg_id)
        rc = siyu_err_set(&err, SIYU_EINVAL, "segment", "give segment or segment_id, not both");
    if (rc) {
        reply(w, rc, NULL, &err);
        return;
    }
    segsvc_result res;
    memset(&res, 0, sizeof res);
    bool by_segment = seg || seg_id;
    /* Evaluated before the read snapshot is taken, so the page reflects
     * every write acknowledged before the request. */
    if (by_segment && !api_segment_eval(r, w, seg, seg ? strlen(seg) : 0, seg_id, &res, NULL))
        return;
    store_conn *c = store_reader_acquire(r->ctx->st);
    if (!c) {
        segsvc_result_free(&res);
        http_error(w, 503, "unavailable", "store unavailable");
        return;
    }
    rc = by_segment ? segment_page(r, c, &f, &p, &res, &j, &err)
                    : customer_list_json(c, &r->auth, &f, &p, &j, &err);
    store_reader_release(r->ctx->st, c);
    segsvc_result_free(&res);
    reply(w, rc, j, &err);
}

/* ---- PATCH /customers/{id} ---- */

typedef struct fields_op {
    json_t *body;
    char actor[32];
    customer_fields_input in;
} fields_op;

static void fields_op_free(void *p) {
    fields_op *op = p;
    json_decref(op->body);
    json_decref(op->in.result);
    free(op);
}

static const json_field customer_fields[] = {
    {"region", JF_STRING, false, CUSTOMER_LABEL_MAX, true},
    {"stage", JF_STRING, false, CUSTOMER_LABEL_MAX, true},
    {"phone", JF_STRING, false, 64, true},
    {NULL, 0, false, 0, false},
};

static void fields_done(http_req *r, http_resp *w, int rc) {
    fields_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->in.err);
        return;
    }
    http_json(w, 200, json_incref(op->in.result));
}

static void customer_patch(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    json_t *body = http_body_object(r, w, customer_fields);
    if (!body) return;
    fields_op *op = api_op_new(r, w, sizeof *op, body, fields_op_free);
    if (!op) return;
    op->body = body;
    api_actor(r, op->actor);
    op->in = (customer_fields_input){
        .tenant_id = r->auth.tenant_id,
        .customer_id = id,
        .has_region = json_object_get(body, "region") != NULL,
        .has_stage = json_object_get(body, "stage") != NULL,
        .has_phone = json_object_get(body, "phone") != NULL,
        .region = json_string_value(json_object_get(body, "region")),
        .stage = json_string_value(json_object_get(body, "stage")),
        .phone = json_string_value(json_object_get(body, "phone")),
        .actor = op->actor,
    };
    if (customer_fields_check(&op->in) != 0) { /* answer without queueing */
        http_error_err(w, &op->in.err);
        return;
    }
    http_write(r, w, customer_fields_update, &op->in, fields_done);
}

/* ---- GET /customers/{id} ---- */

static void customer_get_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    siyu_err err = {0};
    json_t *j = NULL;
    int rc = customer_get_json(c, &r->auth, id, &j, &err);
    reply(w, rc, j, &err);
}

static void customer_get(http_req *r, http_resp *w) {
    api_read(r, w, customer_get_read);
}

/* ---- GET /customers/{id}/events ---- */

static void customer_events_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    customer_page p;
    siyu_err err = {0};
    json_t *j = NULL;
    int rc = page_args(r, CUSTOMER_LIST_EVENTS, &p, &err);
    if (!rc) rc = customer_events_json(c, &r->auth, id, http_query(r, "type"), &p, &j, &err);
    reply(w, rc, j, &err);
}

static void customer_events(http_req *r, http_resp *w) {
    api_read(r, w, customer_events_read);
}

/* ---- GET /relationships ---- */

static void relationships_read(http_req *r, http_resp *w, store_conn *c) {
    customer_rel_filter f = {
        .employee = http_query(r, "employee"),
        .status = http_query(r, "status"),
        .state = http_query(r, "state"),
    };
    customer_page p;
    siyu_err err = {0};
    json_t *j = NULL;
    int rc = added_args(r, &f.added_after, &f.added_before, &err);
    if (!rc) rc = customer_arg_int(http_query(r, "customer"), "customer", 1, &f.customer_id, &err);
    if (!rc) rc = page_args(r, CUSTOMER_LIST_RELATIONSHIPS, &p, &err);
    if (!rc) rc = customer_relationship_list_json(c, &r->auth, &f, &p, &j, &err);
    reply(w, rc, j, &err);
}

static void relationships_list(http_req *r, http_resp *w) {
    api_read(r, w, relationships_read);
}

/* ---- GET /audit-log ---- */

static void audit_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t since = -1;
    customer_page p;
    siyu_err err = {0};
    json_t *j = NULL;
    int rc = customer_arg_int(http_query(r, "since"), "since", 0, &since, &err);
    if (!rc) rc = page_args(r, CUSTOMER_LIST_AUDIT, &p, &err);
    if (!rc)
        rc = customer_audit_list_json(c, r->auth.tenant_id, http_query(r, "action"), since, &p, &j,
                                      &err);
    reply(w, rc, j, &err);
}

static void audit_list(http_req *r, http_resp *w) {
    api_read(r, w, audit_read);
}

/* ---- PATCH /customers/{id}/relationships/{employee_id} ---- */

typedef struct remark_op {
    json_t *body;
    char actor[32];
    customer_remark_input in;
} remark_op;

static void remark_op_free(void *p) {
    remark_op *op = p;
    json_decref(op->body);
    free(op);
}

static const json_field remark_fields[] = {
    /* Byte caps are 4 bytes per character; the step counts characters. */
    {"remark", JF_STRING, false, 4 * CUSTOMER_REMARK_MAX, false},
    {"description", JF_STRING, false, 4 * CUSTOMER_DESCRIPTION_MAX, false},
    {NULL, 0, false, 0, false},
};

static void remark_done(http_req *r, http_resp *w, int rc) {
    remark_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->in.err);
        return;
    }
    if (r->ctx->ob) outbox_kick(r->ctx->ob, OUTBOX_LANE_NORMAL);
    json_t *j =
        json_pack("{s:I,s:I,s:I}", "id", (json_int_t)op->in.relationship_id, "customer_id",
                  (json_int_t)op->in.customer_id, "employee_id", (json_int_t)op->in.employee_id);
    if (op->in.remark) json_object_set_new(j, "remark", json_string(op->in.remark));
    if (op->in.description) json_object_set_new(j, "description", json_string(op->in.description));
    http_json(w, 200, j);
}

static void relationship_patch(http_req *r, http_resp *w) {
    int64_t cid, eid;
    if (!http_param_id(r, w, 0, &cid) || !http_param_id(r, w, 1, &eid)) return;
    json_t *body = http_body_object(r, w, remark_fields);
    if (!body) return;
    remark_op *op = api_op_new(r, w, sizeof *op, body, remark_op_free);
    if (!op) return;
    op->body = body;
    api_actor(r, op->actor);
    op->in = (customer_remark_input){
        .auth = r->auth,
        .customer_id = cid,
        .employee_id = eid,
        .remark = json_string_value(json_object_get(body, "remark")),
        .description = json_string_value(json_object_get(body, "description")),
        .actor = op->actor,
    };
    http_write(r, w, customer_relationship_remark, &op->in, remark_done);
}

const http_route api_customer_routes[] = {
    {"GET", "/api/v1/customers", customers_list, ROLES_TENANT,
     "List customers in scope by id (filters: employee id or userid, tag, status=active|lost, "
     "relationship_status, added_after (inclusive) / added_before (exclusive), q = name or "
     "external_userid prefix, segment = a segment expression or segment_id = a saved segment; "
     "limit, cursor)",
     0},
    {"PATCH", "/api/v1/customers/{id}", customer_patch, ROLES_OFFICE,
     "Set a customer's region, stage (<= 64 bytes, no control characters) and/or phone "
     "(mainland mobile, +86 optional; stored as 11 digits); null clears; audited without the "
     "values",
     0},
    {"GET", "/api/v1/customers/{id}", customer_get, ROLES_TENANT,
     "Customer 360 view: profile, identities, relationships in scope, tags, groups, latest "
     "events",
     0},
    {"GET", "/api/v1/customers/{id}/events", customer_events, ROLES_TENANT,
     "A customer's timeline, newest first (filter: type; limit, cursor)", 0},
    {"PATCH", "/api/v1/customers/{id}/relationships/{employee_id}", relationship_patch,
     ROLES_TENANT,
     "Edit the remark (<= 20 chars) and/or description (<= 150) of an active relationship in "
     "scope; pushed to WeCom (externalcontact/remark) through the outbox",
     0},
    {"GET", "/api/v1/relationships", relationships_list, ROLES_TENANT,
     "List employee-customer relationships in scope (filters: employee, customer, status, state, "
     "added_after / added_before; limit, cursor)",
     0},
    {"GET", "/api/v1/audit-log", audit_list, ROLE_ADMIN,
     "The tenant's audit log, newest first (filters: action, since; limit, cursor)", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
