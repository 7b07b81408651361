/* org.h — the organisation of a tenant: departments (a tree), stores
 * (physical shops, optionally under a department) and employees (WeCom
 * members, active or resigned).
 *
 * Invariants kept by the write steps below (every query filters by tenant):
 *   - a parent_id / department_id / store_id always names a row of the same
 *     tenant; an id of another tenant is reported as if it did not exist;
 *   - the department graph is a forest: an update never makes a department
 *     its own ancestor;
 *   - department.wecom_id and employee.userid are unique per tenant;
 *   - resigning an employee never ends their relationships: the customers
 *     stay company assets. It revokes the employee's API tokens.
 * Every write step records itself in the audit log in the same savepoint.
 *
 * Ownership: inputs are caller-owned and only borrowed during the step;
 * JSON results belong to the caller. */
#ifndef SIYU_ORG_H
#define SIYU_ORG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/* Length limits in bytes (strings must also be non-empty when given). */
#define ORG_NAME_MAX 128
#define ORG_CITY_MAX 64
#define ORG_ADDRESS_MAX 256
#define ORG_USERID_MAX 64

/* An optional text field: absent (!set), set to NULL (s == NULL: clear), or a value. */
typedef struct org_text {
    bool set;
    const char *s;
} org_text;

/* An optional integer field (a reference id or a WeCom id): absent, null, or
 * a value, which must be positive. */
typedef struct org_ref {
    bool set;
    bool null;
    int64_t v;
} org_ref;

/* One input shape for the three records; each step reads the fields of its
 * record and ignores the others:
 *   department: name, parent_id, wecom_id
 *   store:      name, department_id, city, address
 *   employee:   userid (create only), name, department_id, store_id */
typedef struct org_input {
    int64_t tenant_id;
    int64_t id; /* update/resign: the record; create: filled on success */
    const char *userid;
    org_text name, city, address;
    org_ref parent_id, wecom_id, department_id, store_id;
    const char *actor; /* for the audit log: "token:<id>", "cli", "wecom", ... */
    bool changed;      /* resign: false when the employee had already resigned */
    siyu_err err;      /* detail of a failure, naming the offending field */
} org_input;

/* Write steps; arg is org_input*. 0, or SIYU_EINVAL (bad field, including a
 * reference to a record that is not in the tenant), SIYU_ENOTFOUND (the
 * record to update is not in the tenant), SIYU_ECONFLICT (duplicate wecom_id
 * or userid), SIYU_EIO; details in in->err. */
int org_department_create(store_conn *c, void *arg);
int org_department_update(store_conn *c, void *arg);
int org_store_create(store_conn *c, void *arg);
int org_store_update(store_conn *c, void *arg);
int org_employee_create(store_conn *c, void *arg);
int org_employee_update(store_conn *c, void *arg);
/* status → resigned, resigned_at = now; resigning a resigned employee
 * succeeds without change (in->changed = false, no audit row). */
int org_employee_resign(store_conn *c, void *arg);

/* Inside a write step: the id of the employee with userid, creating an active
 * employee with only that userid when there is none (for callbacks naming a
 * member not synchronised yet). 0, SIYU_EINVAL (bad userid) or SIYU_EIO. */
int org_employee_ensure(store_conn *c, int64_t tenant_id, const char *userid, const char *actor,
                        int64_t *id);

/* The id of the employee with userid in the tenant: 0 or SIYU_ENOTFOUND. */
int org_employee_find(store_conn *c, int64_t tenant_id, const char *userid, int64_t *id);

/* True for a WeCom userid: 1..64 bytes of [A-Za-z0-9_.@-]. */
bool org_userid_valid(const char *userid);

/* Records as JSON, or NULL when the id is not in the tenant (or on a query
 * error). Caller owns the result.
 *   department: {id, name, parent_id, wecom_id, created_at, updated_at}
 *   store:      {id, name, department_id, city, address, created_at, updated_at}
 *   employee:   {id, userid, name, department_id, store_id, status, resigned_at,
 *                active_customers, created_at, updated_at} */
json_t *org_department_get_json(store_conn *c, int64_t tenant_id, int64_t id);
json_t *org_store_get_json(store_conn *c, int64_t tenant_id, int64_t id);
json_t *org_employee_get_json(store_conn *c, int64_t tenant_id, int64_t id);

/* A page of a list, in id order. Filters are 0/NULL when not used. */
typedef struct org_list_query {
    int64_t tenant_id;
    int64_t after_id;      /* only ids greater than this (the cursor) */
    int limit;             /* 1..500 */
    int64_t parent_id;     /* departments */
    int64_t department_id; /* stores, employees */
    int64_t store_id;      /* employees */
    const char *status;    /* employees: "active" | "resigned" */
} org_list_query;

/* Fills *items (caller-owned array) with up to q->limit records and *next with
 * the cursor id for the next page (0 when this is the last). 0 or SIYU_EIO. */
typedef int (*org_list_fn)(store_conn *c, const org_list_query *q, json_t **items, int64_t *next);
int org_department_list(store_conn *c, const org_list_query *q, json_t **items, int64_t *next);
int org_store_list(store_conn *c, const org_list_query *q, json_t **items, int64_t *next);
int org_employee_list(store_conn *c, const org_list_query *q, json_t **items, int64_t *next);

#endif
