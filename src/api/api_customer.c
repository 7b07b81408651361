/* api_customer.c — the read side of the customer domain: customer lists, the
 * customer 360 view, timelines, relationships, and the tenant audit log.
 *
 * Handlers only turn query parameters into filters (a bad value is a 400
 * naming the parameter) and hand them to store/customer.c on a pooled read
 * connection, which applies the tenant and the token's data scope. Records
 * outside the scope answer 404 like absent ones. Nothing here writes. */
#include <string.h>

#include "api/api.h"
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

static void customers_list_read(http_req *r, http_resp *w, store_conn *c) {
    customer_filter f = {
        .employee = http_query(r, "employee"),
        .status = http_query(r, "status"),
        .rel_status = http_query(r, "relationship_status"),
        .q = query_nonempty(r, "q"),
    };
    customer_page p;
    siyu_err err = {0};
    json_t *j = NULL;
    int rc = added_args(r, &f.added_after, &f.added_before, &err);
    if (!rc) rc = customer_arg_int(http_query(r, "tag"), "tag", 1, &f.tag_id, &err);
    if (!rc) rc = page_args(r, CUSTOMER_LIST_CUSTOMERS, &p, &err);
    if (!rc) rc = customer_list_json(c, &r->auth, &f, &p, &j, &err);
    reply(w, rc, j, &err);
}

static void customers_list(http_req *r, http_resp *w) {
    api_read(r, w, customers_list_read);
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

const http_route api_customer_routes[] = {
    {"GET", "/api/v1/customers", customers_list, ROLES_TENANT,
     "List customers in scope by id (filters: employee id or userid, tag, status=active|lost, "
     "relationship_status, added_after (inclusive) / added_before (exclusive), q = name or "
     "external_userid prefix; limit, cursor)",
     0},
    {"GET", "/api/v1/customers/{id}", customer_get, ROLES_TENANT,
     "Customer 360 view: profile, identities, relationships in scope, tags, groups, latest "
     "events",
     0},
    {"GET", "/api/v1/customers/{id}/events", customer_events, ROLES_TENANT,
     "A customer's timeline, newest first (filter: type; limit, cursor)", 0},
    {"GET", "/api/v1/relationships", relationships_list, ROLES_TENANT,
     "List employee-customer relationships in scope (filters: employee, customer, status, state, "
     "added_after / added_before; limit, cursor)",
     0},
    {"GET", "/api/v1/audit-log", audit_list, ROLE_ADMIN,
     "The tenant's audit log, newest first (filters: action, since; limit, cursor)", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
