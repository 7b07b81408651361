/* api_org.c — departments, stores and employees over REST.
 *
 * The three resources have one shape (list, create, get, patch), so one set
 * of handlers serves them, driven by an org_kind row: the body fields, the
 * write steps and the readers of store/org.h. A write hangs an org_op on
 * r->user (freed with the request), runs its step on the writer and, once
 * committed, reads the record back for the reply. Every query is bound to
 * r->auth.tenant_id, so ids of another tenant are 404 in the path and 400
 * (naming the field) in a body.
 *
 * Roles: every tenant role reads (the organisation is not customer data, so
 * no data scope applies); admin and operator write.
 * Resign is idempotent: resigning a resigned employee answers 200 with the
 * record unchanged (resigned_at keeps the first time) and writes nothing.
 * Lists: ?limit= (1..500, default 50) and ?cursor=; the cursor is the
 * decimal id of the last item of the previous page, opaque to clients. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "store/org.h"

#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 500

enum { F_PARENT = 1, F_DEPARTMENT = 2, F_STORE = 4, F_STATUS = 8 };

typedef struct org_kind {
    const char *noun;
    const json_field *create_fields;
    const json_field *patch_fields;
    store_write_fn create;
    store_write_fn update;
    json_t *(*get)(store_conn *c, int64_t tenant_id, int64_t id);
    org_list_fn list;
    unsigned filters; /* F_* query parameters the list accepts */
} org_kind;

typedef struct org_op {
    const org_kind *kind;
    json_t *body;
    int status; /* of the success reply: 201 for create, else 200 */
    char actor[32];
    org_input in;
} org_op;

static void reply_invalid(http_resp *w, const char *field, const char *what) {
    siyu_err e = {0};
    siyu_err_set(&e, SIYU_EINVAL, field, "%s %s", field, what);
    http_error_err(w, &e);
}

/* ---- reads ---- */

static void reply_record(http_req *r, http_resp *w, const org_kind *k, int status, int64_t id) {
    store_conn *c = store_reader_acquire(r->ctx->st);
    if (!c) {
        http_error(w, 503, "unavailable", "store unavailable");
        return;
    }
    json_t *j = k->get(c, r->auth.tenant_id, id);
    store_reader_release(r->ctx->st, c);
    if (!j) {
        http_error(w, 404, "not_found", "%s %lld does not exist", k->noun, (long long)id);
        return;
    }
    http_json(w, status, j);
}

/* Route handlers shared by the three resources; the route row's data names
 * the org_kind. */
static void org_get(http_req *r, http_resp *w) {
    const org_kind *k = r->route->data;
    int64_t id;
    if (http_param_id(r, w, 0, &id)) reply_record(r, w, k, 200, id);
}

/* Query parameter key as a positive integer into *out (0 when absent). */
static bool query_id(http_req *r, http_resp *w, const char *key, int64_t *out) {
    const char *s = http_query(r, key);
    *out = 0;
    if (!s) return true;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno || v <= 0) {
        reply_invalid(w, key, "must be a positive integer");
        return false;
    }
    *out = v;
    return true;
}

static bool query_parse(http_req *r, http_resp *w, const org_kind *k, org_list_query *q) {
    int64_t limit;
    if (!query_id(r, w, "limit", &limit)) return false;
    if (limit > LIST_LIMIT_MAX) {
        reply_invalid(w, "limit", "must be 1 to 500");
        return false;
    }
    q->limit = limit ? (int)limit : LIST_LIMIT_DEFAULT;
    if (!query_id(r, w, "cursor", &q->after_id)) return false;
    if ((k->filters & F_PARENT) && !query_id(r, w, "parent_id", &q->parent_id)) return false;
    if ((k->filters & F_DEPARTMENT) && !query_id(r, w, "department_id", &q->department_id))
        return false;
    if ((k->filters & F_STORE) && !query_id(r, w, "store_id", &q->store_id)) return false;
    if (k->filters & F_STATUS) {
        q->status = http_query(r, "status");
        if (q->status && strcmp(q->status, "active") != 0 && strcmp(q->status, "resigned") != 0) {
            reply_invalid(w, "status", "must be active or resigned");
            return false;
        }
    }
    return true;
}

static void org_list(http_req *r, http_resp *w) {
    const org_kind *k = r->route->data;
    org_list_query q = {.tenant_id = r->auth.tenant_id};
    if (!query_parse(r, w, k, &q)) return;
    store_conn *c = store_reader_acquire(r->ctx->st);
    if (!c) {
        http_error(w, 503, "unavailable", "store unavailable");
        return;
    }
    json_t *items = NULL;
    int64_t next = 0;
    int rc = k->list(c, &q, &items, &next);
    store_reader_release(r->ctx->st, c);
    if (rc != 0) {
        http_error(w, 500, "internal", "listing %ss failed", k->noun);
        return;
    }
    char cursor[24];
    snprintf(cursor, sizeof cursor, "%lld", (long long)next);
    http_json(w, 200,
              json_pack("{s:o,s:o}", "items", items, "next_cursor",
                        next ? json_string(cursor) : json_null()));
}

/* ---- writes ---- */

static void org_op_free(void *p) {
    org_op *op = p;
    json_decref(op->body);
    free(op);
}

static org_text text_of(const json_t *body, const char *key) {
    json_t *v = json_object_get(body, key);
    return (org_text){v != NULL, json_string_value(v)};
}

static org_ref ref_of(const json_t *body, const char *key) {
    json_t *v = json_object_get(body, key);
    return (org_ref){v != NULL, json_is_null(v), json_integer_value(v)};
}

/* Parses the body against fields (NULL: no body, or an empty object) and
 * hangs a filled op on r. NULL after replying on failure. */
static org_op *op_new(http_req *r, http_resp *w, const org_kind *k, const json_field *fields,
                      int status) {
    static const json_field none[] = {{NULL, 0, false, 0, false}};
    json_t *body = NULL;
    if ((fields || r->body_len) && !(body = http_body_object(r, w, fields ? fields : none)))
        return NULL;
    org_op *op = calloc(1, sizeof *op);
    if (!op) {
        json_decref(body);
        http_error(w, 500, "internal", "out of memory");
        return NULL;
    }
    op->kind = k;
    op->body = body;
    op->status = status;
    api_actor(r, op->actor);
    op->in.tenant_id = r->auth.tenant_id;
    op->in.actor = op->actor;
    op->in.userid = json_string_value(json_object_get(body, "userid"));
    op->in.name = text_of(body, "name");
    op->in.city = text_of(body, "city");
    op->in.address = text_of(body, "address");
    op->in.parent_id = ref_of(body, "parent_id");
    op->in.wecom_id = ref_of(body, "wecom_id");
    op->in.department_id = ref_of(body, "department_id");
    op->in.store_id = ref_of(body, "store_id");
    r->user = op;
    r->user_free = org_op_free;
    return op;
}

static void write_done(http_req *r, http_resp *w, int rc) {
    org_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->in.err);
        return;
    }
    reply_record(r, w, op->kind, op->status, op->in.id);
}

static void org_create(http_req *r, http_resp *w) {
    const org_kind *k = r->route->data;
    org_op *op = op_new(r, w, k, k->create_fields, 201);
    if (op) http_write(r, w, k->create, &op->in, write_done);
}

static void org_write_record(http_req *r, http_resp *w, const org_kind *k, store_write_fn step,
                             const json_field *fields) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    org_op *op = op_new(r, w, k, fields, 200);
    if (!op) return;
    op->in.id = id;
    http_write(r, w, step, &op->in, write_done);
}

/* ---- the three resources ---- */

static const json_field department_create_fields[] = {
    {"name", JF_STRING, true, ORG_NAME_MAX, false},
    {"parent_id", JF_INT, false, 0, true},
    {"wecom_id", JF_INT, false, 0, true},
    {NULL, 0, false, 0, false},
};
static const json_field department_patch_fields[] = {
    {"name", JF_STRING, false, ORG_NAME_MAX, false},
    {"parent_id", JF_INT, false, 0, true},
    {"wecom_id", JF_INT, false, 0, true},
    {NULL, 0, false, 0, false},
};
static const org_kind DEPARTMENT = {
    .noun = "department",
    .create_fields = department_create_fields,
    .patch_fields = department_patch_fields,
    .create = org_department_create,
    .update = org_department_update,
    .get = org_department_get_json,
    .list = org_department_list,
    .filters = F_PARENT,
};

static const json_field store_create_fields[] = {
    {"name", JF_STRING, true, ORG_NAME_MAX, false},
    {"department_id", JF_INT, false, 0, true},
    {"city", JF_STRING, false, ORG_CITY_MAX, true},
    {"address", JF_STRING, false, ORG_ADDRESS_MAX, true},
    {NULL, 0, false, 0, false},
};
static const json_field store_patch_fields[] = {
    {"name", JF_STRING, false, ORG_NAME_MAX, false},
    {"department_id", JF_INT, false, 0, true},
    {"city", JF_STRING, false, ORG_CITY_MAX, true},
    {"address", JF_STRING, false, ORG_ADDRESS_MAX, true},
    {NULL, 0, false, 0, false},
};
static const org_kind STORE = {
    .noun = "store",
    .create_fields = store_create_fields,
    .patch_fields = store_patch_fields,
    .create = org_store_create,
    .update = org_store_update,
    .get = org_store_get_json,
    .list = org_store_list,
    .filters = F_DEPARTMENT,
};

static const json_field employee_create_fields[] = {
    {"userid", JF_STRING, true, ORG_USERID_MAX, false},
    {"name", JF_STRING, false, ORG_NAME_MAX, true},
    {"department_id", JF_INT, false, 0, true},
    {"store_id", JF_INT, false, 0, true},
    {NULL, 0, false, 0, false},
};
static const json_field employee_patch_fields[] = {
    {"name", JF_STRING, false, ORG_NAME_MAX, true},
    {"department_id", JF_INT, false, 0, true},
    {"store_id", JF_INT, false, 0, true},
    {NULL, 0, false, 0, false},
};
static const org_kind EMPLOYEE = {
    .noun = "employee",
    .create_fields = employee_create_fields,
    .patch_fields = employee_patch_fields,
    .create = org_employee_create,
    .update = org_employee_update,
    .get = org_employee_get_json,
    .list = org_employee_list,
    .filters = F_DEPARTMENT | F_STORE | F_STATUS,
};

static void org_patch(http_req *r, http_resp *w) {
    const org_kind *k = r->route->data;
    org_write_record(r, w, k, k->update, k->patch_fields);
}

static void employees_resign(http_req *r, http_resp *w) {
    org_write_record(r, w, &EMPLOYEE, org_employee_resign, NULL);
}

const http_route api_org_routes[] = {
    {"GET", "/api/v1/departments", org_list, ROLES_TENANT,
     "List departments (?parent_id=, ?limit=, ?cursor=)", 0, NULL, &DEPARTMENT},
    {"POST", "/api/v1/departments", org_create, ROLES_OFFICE,
     "Create a department: name, parent_id, wecom_id (unique per tenant)", 0, NULL, &DEPARTMENT},
    {"GET", "/api/v1/departments/{id}", org_get, ROLES_TENANT, "Get a department", 0, NULL,
     &DEPARTMENT},
    {"PATCH", "/api/v1/departments/{id}", org_patch, ROLES_OFFICE,
     "Update a department's name, parent_id (no cycles) or wecom_id", 0, NULL, &DEPARTMENT},
    {"GET", "/api/v1/stores", org_list, ROLES_TENANT,
     "List stores (?department_id=, ?limit=, ?cursor=)", 0, NULL, &STORE},
    {"POST", "/api/v1/stores", org_create, ROLES_OFFICE,
     "Create a store: name, department_id, city, address", 0, NULL, &STORE},
    {"GET", "/api/v1/stores/{id}", org_get, ROLES_TENANT, "Get a store", 0, NULL, &STORE},
    {"PATCH", "/api/v1/stores/{id}", org_patch, ROLES_OFFICE,
     "Update a store's name, department_id, city or address", 0, NULL, &STORE},
    {"GET", "/api/v1/employees", org_list, ROLES_TENANT,
     "List employees with their active customer counts (?department_id=, ?store_id=, "
     "?status=active|resigned, ?limit=, ?cursor=)",
     0, NULL, &EMPLOYEE},
    {"POST", "/api/v1/employees", org_create, ROLES_OFFICE,
     "Create an employee: userid (WeCom, unique per tenant), name, department_id, store_id", 0,
     NULL, &EMPLOYEE},
    {"GET", "/api/v1/employees/{id}", org_get, ROLES_TENANT,
     "Get an employee with active_customers", 0, NULL, &EMPLOYEE},
    {"PATCH", "/api/v1/employees/{id}", org_patch, ROLES_OFFICE,
     "Update an employee's name, department_id or store_id", 0, NULL, &EMPLOYEE},
    {"POST", "/api/v1/employees/{id}/resign", employees_resign, ROLES_OFFICE,
     "Mark an employee resigned (idempotent; customers stay, API tokens are revoked)", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
