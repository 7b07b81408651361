/* org.c — departments, stores and employees: validation, write steps, reads.
 *
 * Every statement names the tenant. A write step checks, in this order: the
 * record to update exists in the tenant (else SIYU_ENOTFOUND), the fields
 * are well-formed, the references name rows of the same tenant (else
 * SIYU_EINVAL naming the field, so a foreign id never becomes a dangling or
 * cross-tenant reference), no cycle (departments), uniqueness (wecom_id,
 * userid: SIYU_ECONFLICT naming the field; the unique indexes stay the final
 * guard). Only then does it write and append its audit row; any failure
 * after the write returns an error so the step's savepoint undoes it all.
 *
 * Employee lifecycle:
 *
 *   (none) --org_employee_create / org_employee_ensure--> active
 *   active --org_employee_resign--> resigned    relationships untouched,
 *                                               API tokens revoked
 *   resigned --org_employee_resign--> resigned  no change, no audit row
 *
 * JSON rows are built from a NULL-terminated list of names matching the
 * SELECT's columns one to one; SQL NULL becomes JSON null. */
#include "store/org.h"

#include <stdio.h>
#include <string.h>

#include "store/audit.h"

#define DEPT_COLS "id, name, parent_id, wecom_id, created_at, updated_at"
static const char *const dept_names[] = {"id",         "name",       "parent_id", "wecom_id",
                                         "created_at", "updated_at", NULL};

#define STORE_COLS "id, name, department_id, city, address, created_at, updated_at"
static const char *const store_names[] = {"id",      "name",       "department_id", "city",
                                          "address", "created_at", "updated_at",    NULL};

#define EMP_COLS                                                                                   \
    "e.id, e.userid, e.name, e.department_id, e.store_id, e.status, e.resigned_at, "               \
    "(SELECT count(*) FROM relationship r WHERE r.tenant_id=e.tenant_id AND "                      \
    "r.employee_id=e.id AND r.status='active'), e.created_at, e.updated_at"
static const char *const emp_names[] = {
    "id",          "userid",           "name",       "department_id", "store_id", "status",
    "resigned_at", "active_customers", "created_at", "updated_at",    NULL};

static const char DEPT_EXISTS[] = "SELECT 1 FROM department WHERE tenant_id=?1 AND id=?2";
static const char STORE_EXISTS[] = "SELECT 1 FROM store WHERE tenant_id=?1 AND id=?2";
static const char EMP_EXISTS[] = "SELECT 1 FROM employee WHERE tenant_id=?1 AND id=?2";

/* ---- small helpers ---- */

static void bind_ref(sqlite3_stmt *st, int i, const org_ref *r) {
    if (r->set && !r->null) sqlite3_bind_int64(st, i, r->v);
}

/* For "col = CASE WHEN ?i THEN ?(i+1) ELSE col END": binds whether the field
 * was given at i and its value (or NULL) at i+1. */
static void bind_set_text(sqlite3_stmt *st, int i, const org_text *t) {
    sqlite3_bind_int(st, i, t->set);
    if (t->set) store_bind_text(st, i + 1, t->s);
}

static void bind_set_ref(sqlite3_stmt *st, int i, const org_ref *r) {
    sqlite3_bind_int(st, i, r->set);
    bind_ref(st, i + 1, r);
}

/* 1 when sql (?1 tenant, ?2 id) returns a row, 0 when not, SIYU_EIO. */
static int row_exists(store_conn *c, const char *sql, int64_t tenant_id, int64_t id) {
    sqlite3_stmt *st = store_conn_stmt(c, sql);
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : SIYU_EIO;
}

/* The record being updated must be in the tenant. */
static int target_check(store_conn *c, const char *sql, const char *noun, org_input *in) {
    int rc = row_exists(c, sql, in->tenant_id, in->id);
    if (rc < 0) return rc;
    return rc ? 0
              : siyu_err_set(&in->err, SIYU_ENOTFOUND, "id", "%s %lld does not exist", noun,
                             (long long)in->id);
}

static int text_check(const org_text *t, const char *field, size_t max, bool nullable,
                      siyu_err *err) {
    if (!t->set) return 0;
    if (!t->s)
        return nullable ? 0 : siyu_err_set(err, SIYU_EINVAL, field, "%s must not be null", field);
    size_t n = strlen(t->s);
    if (n == 0 || n > max)
        return siyu_err_set(err, SIYU_EINVAL, field, "%s must be 1 to %zu bytes", field, max);
    return 0;
}

static int name_required(const org_input *in, siyu_err *err) {
    if (!in->name.set) return siyu_err_set(err, SIYU_EINVAL, "name", "name is required");
    return text_check(&in->name, "name", ORG_NAME_MAX, false, err);
}

/* A given, non-null reference must be a positive id of a row (sql) of the tenant. */
static int ref_check(store_conn *c, const char *sql, const char *noun, const org_input *in,
                     const org_ref *r, const char *field, siyu_err *err) {
    if (!r->set || r->null) return 0;
    if (r->v <= 0) return siyu_err_set(err, SIYU_EINVAL, field, "%s must be a positive id", field);
    int rc = row_exists(c, sql, in->tenant_id, r->v);
    if (rc < 0) return rc;
    return rc ? 0
              : siyu_err_set(err, SIYU_EINVAL, field, "%s %lld is not a %s of this tenant", field,
                             (long long)r->v, noun);
}

/* The names of the given fields, for the audit detail (never their values,
 * which may be personal data). */
static void changed_fields(const org_input *in, char *out, size_t size) {
    const struct {
        bool set;
        const char *name;
    } f[] = {{in->name.set, "name"},         {in->city.set, "city"},
             {in->address.set, "address"},   {in->parent_id.set, "parent_id"},
             {in->wecom_id.set, "wecom_id"}, {in->department_id.set, "department_id"},
             {in->store_id.set, "store_id"}};
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        if (f[i].set && n < size)
            n += (size_t)snprintf(out + n, size - n, "%s%s", n ? "," : "fields: ", f[i].name);
    if (!out[0]) snprintf(out, size, "no fields");
}

static int audit(store_conn *c, const org_input *in, const char *action, const char *noun,
                 const char *detail) {
    char target[48];
    snprintf(target, sizeof target, "%s:%lld", noun, (long long)in->id);
    return store_audit(c, in->tenant_id, in->actor, action, target, 1, detail);
}

static int audit_update(store_conn *c, const org_input *in, const char *action, const char *noun) {
    char detail[128];
    changed_fields(in, detail, sizeof detail);
    return audit(c, in, action, noun, detail);
}

/* ---- departments ---- */

/* A new parent must not be the department itself or one of its descendants,
 * i.e. the department must not be among the parent's ancestors-or-self. */
static int cycle_check(store_conn *c, org_input *in) {
    if (!in->parent_id.set || in->parent_id.null) return 0;
    sqlite3_stmt *st = store_conn_stmt(
        c, "WITH RECURSIVE up(id) AS (SELECT ?2 UNION SELECT d.parent_id FROM department d "
           "JOIN up ON d.id=up.id WHERE d.tenant_id=?1 AND d.parent_id IS NOT NULL) "
           "SELECT 1 FROM up WHERE id=?3");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->parent_id.v);
    sqlite3_bind_int64(st, 3, in->id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return siyu_err_set(&in->err, SIYU_EINVAL, "parent_id",
                            "parent_id %lld would make department %lld its own ancestor",
                            (long long)in->parent_id.v, (long long)in->id);
    return rc == SQLITE_DONE ? 0 : SIYU_EIO;
}

static int wecom_id_check(store_conn *c, org_input *in) {
    const org_ref *w = &in->wecom_id;
    if (!w->set || w->null) return 0;
    if (w->v <= 0)
        return siyu_err_set(&in->err, SIYU_EINVAL, "wecom_id", "wecom_id must be positive");
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT 1 FROM department WHERE tenant_id=?1 AND wecom_id=?2 AND id<>?3");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, w->v);
    sqlite3_bind_int64(st, 3, in->id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return siyu_err_set(&in->err, SIYU_ECONFLICT, "wecom_id",
                            "another department already has wecom_id %lld", (long long)w->v);
    return rc == SQLITE_DONE ? 0 : SIYU_EIO;
}

static int department_check(store_conn *c, org_input *in) {
    int rc = text_check(&in->name, "name", ORG_NAME_MAX, false, &in->err);
    if (!rc)
        rc = ref_check(c, DEPT_EXISTS, "department", in, &in->parent_id, "parent_id", &in->err);
    if (!rc) rc = cycle_check(c, in);
    if (!rc) rc = wecom_id_check(c, in);
    return rc;
}

int org_department_create(store_conn *c, void *arg) {
    org_input *in = arg;
    in->id = 0;
    int rc = name_required(in, &in->err);
    if (rc || (rc = department_check(c, in))) return rc;
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT INTO department(tenant_id, name, parent_id, wecom_id, created_at, updated_at) "
           "VALUES(?1,?2,?3,?4,?5,?5)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    store_bind_text(st, 2, in->name.s);
    bind_ref(st, 3, &in->parent_id);
    bind_ref(st, 4, &in->wecom_id);
    sqlite3_bind_int64(st, 5, siyu_now());
    if ((rc = store_stmt_run(st))) return rc;
    in->id = store_conn_last_id(c);
    return audit(c, in, "department.create", "department", NULL);
}

int org_department_update(store_conn *c, void *arg) {
    org_input *in = arg;
    int rc = target_check(c, DEPT_EXISTS, "department", in);
    if (rc || (rc = department_check(c, in))) return rc;
    sqlite3_stmt *st =
        store_conn_stmt(c, "UPDATE department SET name=coalesce(?3,name), "
                           "parent_id=CASE WHEN ?4 THEN ?5 ELSE parent_id END, "
                           "wecom_id=CASE WHEN ?6 THEN ?7 ELSE wecom_id END, updated_at=?8 "
                           "WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    store_bind_text(st, 3, in->name.s);
    bind_set_ref(st, 4, &in->parent_id);
    bind_set_ref(st, 6, &in->wecom_id);
    sqlite3_bind_int64(st, 8, siyu_now());
    if ((rc = store_stmt_run(st))) return rc;
    return audit_update(c, in, "department.update", "department");
}

/* ---- stores ---- */

static int store_check(store_conn *c, org_input *in) {
    int rc = text_check(&in->name, "name", ORG_NAME_MAX, false, &in->err);
    if (!rc) rc = text_check(&in->city, "city", ORG_CITY_MAX, true, &in->err);
    if (!rc) rc = text_check(&in->address, "address", ORG_ADDRESS_MAX, true, &in->err);
    if (!rc)
        rc = ref_check(c, DEPT_EXISTS, "department", in, &in->department_id, "department_id",
                       &in->err);
    return rc;
}

int org_store_create(store_conn *c, void *arg) {
    org_input *in = arg;
    in->id = 0;
    int rc = name_required(in, &in->err);
    if (rc || (rc = store_check(c, in))) return rc;
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT INTO store(tenant_id, name, department_id, city, address, created_at, "
           "updated_at) VALUES(?1,?2,?3,?4,?5,?6,?6)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    store_bind_text(st, 2, in->name.s);
    bind_ref(st, 3, &in->department_id);
    store_bind_text(st, 4, in->city.s);
    store_bind_text(st, 5, in->address.s);
    sqlite3_bind_int64(st, 6, siyu_now());
    if ((rc = store_stmt_run(st))) return rc;
    in->id = store_conn_last_id(c);
    return audit(c, in, "store.create", "store", NULL);
}

int org_store_update(store_conn *c, void *arg) {
    org_input *in = arg;
    int rc = target_check(c, STORE_EXISTS, "store", in);
    if (rc || (rc = store_check(c, in))) return rc;
    sqlite3_stmt *st =
        store_conn_stmt(c, "UPDATE store SET name=coalesce(?3,name), "
                           "department_id=CASE WHEN ?4 THEN ?5 ELSE department_id END, "
                           "city=CASE WHEN ?6 THEN ?7 ELSE city END, "
                           "address=CASE WHEN ?8 THEN ?9 ELSE address END, updated_at=?10 "
                           "WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    store_bind_text(st, 3, in->name.s);
    bind_set_ref(st, 4, &in->department_id);
    bind_set_text(st, 6, &in->city);
    bind_set_text(st, 8, &in->address);
    sqlite3_bind_int64(st, 10, siyu_now());
    if ((rc = store_stmt_run(st))) return rc;
    return audit_update(c, in, "store.update", "store");
}

/* ---- employees ---- */

bool org_userid_valid(const char *userid) {
    size_t n = userid ? strlen(userid) : 0;
    if (n == 0 || n > ORG_USERID_MAX) return false;
    return strspn(userid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@-") ==
           n;
}

int org_employee_find(store_conn *c, int64_t tenant_id, const char *userid, int64_t *id) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT id FROM employee WHERE tenant_id=?1 AND userid=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    store_bind_text(st, 2, userid);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? SIYU_ENOTFOUND : SIYU_EIO;
}

static int employee_check(store_conn *c, org_input *in) {
    int rc = text_check(&in->name, "name", ORG_NAME_MAX, true, &in->err);
    if (!rc)
        rc = ref_check(c, DEPT_EXISTS, "department", in, &in->department_id, "department_id",
                       &in->err);
    if (!rc) rc = ref_check(c, STORE_EXISTS, "store", in, &in->store_id, "store_id", &in->err);
    return rc;
}

static int userid_check(store_conn *c, org_input *in) {
    if (!in->userid) return siyu_err_set(&in->err, SIYU_EINVAL, "userid", "userid is required");
    if (!org_userid_valid(in->userid))
        return siyu_err_set(&in->err, SIYU_EINVAL, "userid",
                            "userid must be 1 to %d of A-Z a-z 0-9 _ . @ -", ORG_USERID_MAX);
    int64_t other;
    int rc = org_employee_find(c, in->tenant_id, in->userid, &other);
    if (rc == 0)
        return siyu_err_set(&in->err, SIYU_ECONFLICT, "userid",
                            "employee %lld already has this userid", (long long)other);
    return rc == SIYU_ENOTFOUND ? 0 : rc;
}

int org_employee_create(store_conn *c, void *arg) {
    org_input *in = arg;
    in->id = 0;
    int rc = userid_check(c, in);
    if (rc || (rc = employee_check(c, in))) return rc;
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT INTO employee(tenant_id, userid, name, department_id, store_id, status, "
           "created_at, updated_at) VALUES(?1,?2,?3,?4,?5,'active',?6,?6)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    store_bind_text(st, 2, in->userid);
    store_bind_text(st, 3, in->name.s);
    bind_ref(st, 4, &in->department_id);
    bind_ref(st, 5, &in->store_id);
    sqlite3_bind_int64(st, 6, siyu_now());
    if ((rc = store_stmt_run(st))) return rc;
    in->id = store_conn_last_id(c);
    return audit(c, in, "employee.create", "employee", NULL);
}

int org_employee_update(store_conn *c, void *arg) {
    org_input *in = arg;
    int rc = target_check(c, EMP_EXISTS, "employee", in);
    if (rc || (rc = employee_check(c, in))) return rc;
    sqlite3_stmt *st =
        store_conn_stmt(c, "UPDATE employee SET name=CASE WHEN ?3 THEN ?4 ELSE name END, "
                           "department_id=CASE WHEN ?5 THEN ?6 ELSE department_id END, "
                           "store_id=CASE WHEN ?7 THEN ?8 ELSE store_id END, updated_at=?9 "
                           "WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    bind_set_text(st, 3, &in->name);
    bind_set_ref(st, 5, &in->department_id);
    bind_set_ref(st, 7, &in->store_id);
    sqlite3_bind_int64(st, 9, siyu_now());
    if ((rc = store_stmt_run(st))) return rc;
    return audit_update(c, in, "employee.update", "employee");
}

/* Revokes the employee's live API tokens; returns how many, or SIYU_E*. */
static int revoke_tokens(store_conn *c, const org_input *in, int64_t now) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE api_token SET revoked_at=?3 WHERE tenant_id=?1 AND employee_id=?2 AND "
           "revoked_at IS NULL");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    sqlite3_bind_int64(st, 3, now);
    int rc = store_stmt_run(st);
    return rc ? rc : store_conn_changes(c);
}

int org_employee_resign(store_conn *c, void *arg) {
    org_input *in = arg;
    in->changed = false;
    int rc = target_check(c, EMP_EXISTS, "employee", in);
    if (rc) return rc;
    int64_t now = siyu_now();
    sqlite3_stmt *st =
        store_conn_stmt(c, "UPDATE employee SET status='resigned', resigned_at=?3, updated_at=?3 "
                           "WHERE tenant_id=?1 AND id=?2 AND status<>'resigned'");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    sqlite3_bind_int64(st, 3, now);
    if ((rc = store_stmt_run(st))) return rc;
    if (store_conn_changes(c) == 0) return 0; /* already resigned */
    in->changed = true;
    int revoked = revoke_tokens(c, in, now);
    if (revoked < 0) return revoked;
    char detail[96];
    snprintf(detail, sizeof detail, "relationships kept; %d API token(s) revoked", revoked);
    return audit(c, in, "employee.resign", "employee", detail);
}

int org_employee_ensure(store_conn *c, int64_t tenant_id, const char *userid, const char *actor,
                        int64_t *id) {
    if (!org_userid_valid(userid)) return SIYU_EINVAL;
    int rc = org_employee_find(c, tenant_id, userid, id);
    if (rc != SIYU_ENOTFOUND) return rc;
    org_input in = {.tenant_id = tenant_id, .userid = userid, .actor = actor};
    rc = org_employee_create(c, &in);
    if (rc == 0) *id = in.id;
    return rc;
}

/* ---- reads ---- */

static json_t *column_json(sqlite3_stmt *st, int i) {
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_TEXT: {
        json_t *s = json_stringn((const char *)sqlite3_column_text(st, i),
                                 (size_t)sqlite3_column_bytes(st, i));
        return s ? s : json_null(); /* not UTF-8: only possible if written behind our back */
    }
    default:
        return json_null();
    }
}

static json_t *row_json(sqlite3_stmt *st, const char *const *names) {
    json_t *j = json_object();
    for (int i = 0; names[i]; i++)
        json_object_set_new(j, names[i], column_json(st, i));
    return j;
}

/* Runs a statement with ?1 tenant and ?2 id; the first row as JSON or NULL. */
static json_t *get_json(store_conn *c, const char *sql, const char *const *names, int64_t tenant_id,
                        int64_t id) {
    sqlite3_stmt *st = store_conn_stmt(c, sql);
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, id);
    json_t *j = sqlite3_step(st) == SQLITE_ROW ? row_json(st, names) : NULL;
    sqlite3_reset(st);
    return j;
}

json_t *org_department_get_json(store_conn *c, int64_t tenant_id, int64_t id) {
    return get_json(c, "SELECT " DEPT_COLS " FROM department WHERE tenant_id=?1 AND id=?2",
                    dept_names, tenant_id, id);
}

json_t *org_store_get_json(store_conn *c, int64_t tenant_id, int64_t id) {
    return get_json(c, "SELECT " STORE_COLS " FROM store WHERE tenant_id=?1 AND id=?2", store_names,
                    tenant_id, id);
}

json_t *org_employee_get_json(store_conn *c, int64_t tenant_id, int64_t id) {
    return get_json(c, "SELECT " EMP_COLS " FROM employee e WHERE e.tenant_id=?1 AND e.id=?2",
                    emp_names, tenant_id, id);
}

/* Collects up to limit rows (the query asks for limit + 1 to learn whether a
 * next page exists; column 0 is the id). Resets st. */
static int list_collect(sqlite3_stmt *st, const char *const *names, int limit, json_t **items,
                        int64_t *next) {
    json_t *a = json_array();
    int n = 0, rc;
    int64_t last = 0;
    *next = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            *next = last;
            break;
        }
        json_array_append_new(a, row_json(st, names));
        last = sqlite3_column_int64(st, 0);
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(a);
        return SIYU_EIO;
    }
    *items = a;
    return 0;
}

/* Binds a named parameter when the statement has it. */
static void bind_named(sqlite3_stmt *st, const char *name, int64_t v) {
    int i = sqlite3_bind_parameter_index(st, name);
    if (i) sqlite3_bind_int64(st, i, v);
}

static int list_run(sqlite3_stmt *st, const org_list_query *q, const char *const *names,
                    json_t **items, int64_t *next) {
    if (!st) return SIYU_EIO;
    bind_named(st, ":tenant", q->tenant_id);
    bind_named(st, ":after", q->after_id);
    bind_named(st, ":limit", (int64_t)q->limit + 1);
    bind_named(st, ":parent", q->parent_id);
    bind_named(st, ":dep", q->department_id);
    bind_named(st, ":store", q->store_id);
    int i = sqlite3_bind_parameter_index(st, ":status");
    if (i && q->status) sqlite3_bind_text(st, i, q->status, -1, SQLITE_STATIC);
    return list_collect(st, names, q->limit, items, next);
}

/* Departments and stores are small per tenant: one statement with optional
 * filters. Employees choose among statements by filter so that the
 * (tenant_id, department_id) index serves a department filter. */
int org_department_list(store_conn *c, const org_list_query *q, json_t **items, int64_t *next) {
    const char *sql = q->parent_id
                          ? "SELECT " DEPT_COLS " FROM department WHERE tenant_id=:tenant AND "
                            "parent_id=:parent AND id>:after ORDER BY id LIMIT :limit"
                          : "SELECT " DEPT_COLS " FROM department WHERE tenant_id=:tenant AND "
                            "id>:after ORDER BY id LIMIT :limit";
    return list_run(store_conn_stmt(c, sql), q, dept_names, items, next);
}

int org_store_list(store_conn *c, const org_list_query *q, json_t **items, int64_t *next) {
    const char *sql = q->department_id
                          ? "SELECT " STORE_COLS " FROM store WHERE tenant_id=:tenant AND "
                            "department_id=:dep AND id>:after ORDER BY id LIMIT :limit"
                          : "SELECT " STORE_COLS " FROM store WHERE tenant_id=:tenant AND "
                            "id>:after ORDER BY id LIMIT :limit";
    return list_run(store_conn_stmt(c, sql), q, store_names, items, next);
}

int org_employee_list(store_conn *c, const org_list_query *q, json_t **items, int64_t *next) {
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT " EMP_COLS " FROM employee e WHERE e.tenant_id=:tenant%s%s%s AND "
             "e.id>:after ORDER BY e.id LIMIT :limit",
             q->department_id ? " AND e.department_id=:dep" : "",
             q->store_id ? " AND e.store_id=:store" : "", q->status ? " AND e.status=:status" : "");
    return list_run(store_conn_stmt(c, sql), q, emp_names, items, next);
}
