/* transfer.c — transfer rows, their outbox calls, and how answers and
 * callbacks move them (state diagram in transfer.h).
 *
 * A request is one write step: checks (set-based over the JSON id list, each
 * reporting the first offending index), then per batch of TRANSFER_BATCH
 * customers: the rows, one outbox row whose ref is "transfer_batch:<id of the
 * batch's first row>", and batch_id/outbox_id on the rows. The outbox row
 * and the rows commit together, so a crash leaves either both or neither.
 *
 * One transfer in flight (requested|waiting) per customer: a second request
 * for the same customer is a 409, so callbacks can find "the" transfer of a
 * customer without knowing which request caused it.
 *
 * Ownership: nothing allocated here outlives a call, except JSON results
 * returned to the caller. */
#include "store/transfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "outbox/outbox.h"
#include "store/audit.h"
#include "util/log.h"
#include "wecom/wecom_client.h"

const char *const transfer_states[] = {"requested", "waiting", "done", "refused", "failed", NULL};

/* Employees of the token's department and its sub-departments. */
#define TEAM_SQL                                                                                   \
    "(SELECT te.id FROM employee te WHERE te.tenant_id=:scope_tenant AND te.department_id IN "     \
    "(WITH RECURSIVE sub(id) AS (SELECT department_id FROM employee WHERE id=:scope_emp "          \
    "AND tenant_id=:scope_tenant UNION SELECT d.id FROM department d JOIN sub "                    \
    "ON d.parent_id=sub.id) SELECT id FROM sub))"

#define IN_FLIGHT "('requested','waiting')"

static void bind_named_int(sqlite3_stmt *st, const char *name, int64_t v) {
    int i = sqlite3_bind_parameter_index(st, name);
    if (i) sqlite3_bind_int64(st, i, v);
}

/* ---- request ------------------------------------------------------------ */

typedef struct emp_row {
    bool found;
    bool resigned;
    char userid[72];
} emp_row;

static int employee_load(store_conn *c, int64_t tenant, int64_t id, emp_row *out) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT userid, status FROM employee WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    int rc = sqlite3_step(st);
    memset(out, 0, sizeof *out);
    if (rc == SQLITE_ROW) {
        out->found = true;
        snprintf(out->userid, sizeof out->userid, "%s", (const char *)sqlite3_column_text(st, 0));
        const char *status = (const char *)sqlite3_column_text(st, 1);
        out->resigned = status && strcmp(status, "resigned") == 0;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_rc(rc);
}

/* A manager may only move customers between employees of their subtree. */
static int team_check(store_conn *c, transfer_request *t) {
    if (t->auth.role != ROLE_MANAGER) return 0;
    static const char *const fields[2] = {"handover_employee_id", "takeover_employee_id"};
    int64_t ids[2] = {t->handover_id, t->takeover_id};
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT 1 WHERE :id IN " TEAM_SQL);
    if (!st) return SIYU_EIO;
    for (int i = 0; i < 2; i++) {
        bind_named_int(st, ":scope_tenant", t->auth.tenant_id);
        bind_named_int(st, ":scope_emp", t->auth.employee_id);
        bind_named_int(st, ":id", ids[i]);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_DONE)
            return siyu_err_set(&t->err, SIYU_EDENIED, fields[i],
                                "employee %lld is outside your department", (long long)ids[i]);
        if (rc != SQLITE_ROW) return store_rc(rc);
    }
    return 0;
}

/* Runs a "first offending index" query bound by the caller: 0 with *key -1
 * when every id passes, else *key and *value of the first one. */
static int first_bad(sqlite3_stmt *st, int64_t *key, int64_t *value) {
    *key = -1;
    int rc = store_stmt_query_id(st, key, value);
    return rc == 1 ? 0 : rc;
}

static const struct customer_check {
    const char *sql; /* ?1 ids, ?2 tenant, ?3 handover */
    int code;
    const char *msg;
} customer_checks[] = {
    {"SELECT j.key, j.value FROM json_each(?1) j WHERE NOT EXISTS (SELECT 1 FROM relationship r "
     "WHERE r.tenant_id=?2 AND r.customer_id=j.value AND r.employee_id=?3 AND "
     "r.status='active') ORDER BY j.key LIMIT 1",
     SIYU_EINVAL, "customer %lld has no active relationship with the handover employee"},
    {"SELECT j.key, j.value FROM json_each(?1) j WHERE NOT EXISTS (SELECT 1 FROM identity i "
     "WHERE i.tenant_id=?2 AND i.customer_id=j.value AND i.kind='wecom_external_userid') "
     "ORDER BY j.key LIMIT 1",
     SIYU_EINVAL, "customer %lld has no WeCom external_userid"},
    {"SELECT j.key, j.value FROM json_each(?1) j WHERE EXISTS (SELECT 1 FROM transfer t "
     "WHERE t.tenant_id=?2 AND t.customer_id=j.value AND t.state IN " IN_FLIGHT ") "
     "ORDER BY j.key LIMIT 1",
     SIYU_ECONFLICT, "customer %lld already has a transfer in progress"},
    /* WeCom allows two on-the-job transfers per customer in 90 days (40128):
     * refused here, before a call that cannot succeed. */
    {"SELECT j.key, j.value FROM json_each(?1) j WHERE (SELECT status FROM employee WHERE "
     "tenant_id=?2 AND id=?3)<>'resigned' AND (SELECT count(*) FROM transfer t WHERE "
     "t.tenant_id=?2 AND t.customer_id=j.value AND t.kind='on_job' AND t.state IN "
     "('requested','waiting','done','refused') AND t.requested_at>CAST(strftime('%s','now') AS "
     "INTEGER)-7776000) >= 2 ORDER BY j.key LIMIT 1",
     SIYU_ECONFLICT, "customer %lld was transferred twice in the last 90 days (WeCom's limit)"},
};

/* Rows whose outbox call an operator cancelled get no answer: mark the
 * request's customers' ones failed so they no longer count as in flight. */
static int cancelled_settle(store_conn *c, transfer_request *t) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE transfer SET state='failed', error='cancelled', updated_at=?3 WHERE "
           "tenant_id=?1 AND state='requested' AND customer_id IN (SELECT value FROM "
           "json_each(?2)) AND outbox_id IN (SELECT id FROM outbox WHERE tenant_id=?1 AND "
           "state='cancelled')");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, t->auth.tenant_id);
    store_bind_text(st, 2, t->customer_ids);
    sqlite3_bind_int64(st, 3, siyu_now());
    return store_stmt_run(st);
}

static int customers_check(store_conn *c, transfer_request *t) {
    int rc = cancelled_settle(c, t);
    if (rc != 0) return rc;
    for (size_t i = 0; i < sizeof customer_checks / sizeof *customer_checks; i++) {
        sqlite3_stmt *st = store_conn_stmt(c, customer_checks[i].sql);
        if (!st) return SIYU_EIO;
        store_bind_text(st, 1, t->customer_ids);
        sqlite3_bind_int64(st, 2, t->auth.tenant_id);
        sqlite3_bind_int64(st, 3, t->handover_id);
        int64_t key, value;
        int rc = first_bad(st, &key, &value);
        if (rc != 0) return rc;
        if (key < 0) continue;
        char field[48];
        snprintf(field, sizeof field, "customer_ids[%lld]", (long long)key);
        return siyu_err_set(&t->err, customer_checks[i].code, field, customer_checks[i].msg,
                            (long long)value);
    }
    return 0;
}

static int employees_check(store_conn *c, transfer_request *t, emp_row *h, emp_row *k) {
    int rc;
    if ((rc = employee_load(c, t->auth.tenant_id, t->handover_id, h)) != 0 ||
        (rc = employee_load(c, t->auth.tenant_id, t->takeover_id, k)) != 0)
        return rc;
    if (!h->found)
        return siyu_err_set(&t->err, SIYU_EINVAL, "handover_employee_id",
                            "employee %lld does not exist", (long long)t->handover_id);
    if (!k->found)
        return siyu_err_set(&t->err, SIYU_EINVAL, "takeover_employee_id",
                            "employee %lld does not exist", (long long)t->takeover_id);
    if (k->resigned)
        return siyu_err_set(&t->err, SIYU_EINVAL, "takeover_employee_id",
                            "employee %lld has resigned", (long long)t->takeover_id);
    return team_check(c, t);
}

/* One batch: rows ids[0..n) already inserted; the outbox row and links. */
static int batch_enqueue(store_conn *c, transfer_request *t, const emp_row *h, const emp_row *k,
                         int64_t first, int64_t last, json_t *exts) {
    json_t *body = json_pack("{s:s,s:s,s:O}", "handover_userid", h->userid, "takeover_userid",
                             k->userid, "external_userid", exts);
    if (!body) return SIYU_ENOMEM;
    if (!h->resigned && t->message && *t->message)
        json_object_set_new(body, "transfer_success_msg", json_string(t->message));
    char ref[48], origin[64];
    snprintf(ref, sizeof ref, "transfer_batch:%lld", (long long)first);
    snprintf(origin, sizeof origin, "transfer:%s", t->actor ? t->actor : "system");
    outbox_item it = {
        .tenant_id = t->auth.tenant_id,
        .kind = h->resigned ? TRANSFER_KIND_RESIGNED : TRANSFER_KIND_ON_JOB,
        .body = body,
        .lane = OUTBOX_LANE_NORMAL,
        .origin = origin,
        .ref = ref,
    };
    int64_t ob_id = 0;
    int rc = outbox_enqueue(c, &it, &ob_id, &t->err);
    json_decref(body);
    if (rc != 0) return rc;
    sqlite3_stmt *st = store_conn_stmt(c, "UPDATE transfer SET batch_id=?3, outbox_id=?4 WHERE "
                                          "tenant_id=?1 AND id BETWEEN ?3 AND ?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, t->auth.tenant_id);
    sqlite3_bind_int64(st, 2, last);
    sqlite3_bind_int64(st, 3, first);
    sqlite3_bind_int64(st, 4, ob_id);
    t->batches++;
    return store_stmt_run(st);
}

static int rows_insert(store_conn *c, transfer_request *t, const emp_row *h, const emp_row *k) {
    /* The read statement stays open while rows go in: transfer is not
     * among the tables it reads. "+i.kind" keeps the planner on
     * identity_customer: on identity_value (tenant, kind) it would scan
     * every identity per customer (seconds for 5,000 customers). */
    sqlite3_stmt *sel = store_conn_stmt(
        c, "SELECT j.value, i.value FROM json_each(?1) j JOIN identity i ON i.tenant_id=?2 AND "
           "i.customer_id=j.value AND +i.kind='wecom_external_userid' ORDER BY j.key");
    sqlite3_stmt *ins = store_conn_stmt(
        c, "INSERT INTO transfer(tenant_id, customer_id, handover_employee_id, "
           "takeover_employee_id, kind, state, message, requested_by, requested_at, updated_at) "
           "VALUES(?1,?2,?3,?4,?5,'requested',?6,?7,?8,?8)");
    if (!sel || !ins) return SIYU_EIO;
    store_bind_text(sel, 1, t->customer_ids);
    sqlite3_bind_int64(sel, 2, t->auth.tenant_id);
    int64_t now = siyu_now(), first = 0, last = 0;
    json_t *exts = json_array();
    int rc = 0, n = 0, step;
    while (rc == 0 && (step = sqlite3_step(sel)) == SQLITE_ROW) {
        sqlite3_bind_int64(ins, 1, t->auth.tenant_id);
        sqlite3_bind_int64(ins, 2, sqlite3_column_int64(sel, 0));
        sqlite3_bind_int64(ins, 3, t->handover_id);
        sqlite3_bind_int64(ins, 4, t->takeover_id);
        store_bind_text(ins, 5, h->resigned ? "resigned" : "on_job");
        if (!h->resigned && t->message && *t->message)
            store_bind_text(ins, 6, t->message);
        else
            sqlite3_bind_null(ins, 6);
        store_bind_text(ins, 7, t->actor ? t->actor : "system");
        sqlite3_bind_int64(ins, 8, now);
        if ((rc = store_stmt_run(ins)) != 0) break;
        last = store_conn_last_id(c);
        if (n == 0) first = last;
        if (!t->first_id) t->first_id = last;
        json_array_append_new(exts, json_string((const char *)sqlite3_column_text(sel, 1)));
        t->count++;
        if (++n == TRANSFER_BATCH) {
            rc = batch_enqueue(c, t, h, k, first, last, exts);
            json_array_clear(exts);
            n = 0;
        }
    }
    if (rc == 0 && step != SQLITE_DONE) rc = store_rc(step);
    if (rc == 0 && n > 0) rc = batch_enqueue(c, t, h, k, first, last, exts);
    sqlite3_reset(sel);
    json_decref(exts);
    return rc;
}

int transfer_request_step(store_conn *c, void *arg) {
    transfer_request *t = arg;
    t->first_id = t->count = 0;
    t->batches = 0;
    emp_row h, k;
    int rc;
    if (t->handover_id == t->takeover_id)
        return siyu_err_set(&t->err, SIYU_EINVAL, "takeover_employee_id",
                            "takeover must differ from the handover employee");
    if ((rc = employees_check(c, t, &h, &k)) != 0 || (rc = customers_check(c, t)) != 0 ||
        (rc = rows_insert(c, t, &h, &k)) != 0)
        return rc;
    t->resigned = h.resigned;
    char target[80], detail[64];
    snprintf(target, sizeof target, "employee:%lld->employee:%lld", (long long)t->handover_id,
             (long long)t->takeover_id);
    snprintf(detail, sizeof detail, "kind=%s first=%lld batches=%d",
             h.resigned ? "resigned" : "on_job", (long long)t->first_id, t->batches);
    return store_audit(c, t->auth.tenant_id, t->actor ? t->actor : "system", "transfer.create",
                       target, t->count, detail);
}

/* ---- callbacks ----------------------------------------------------------- */

/* The in-flight transfer of a customer matching the employee column. 0 with
 * *id (0 = none) and the other side's employee in *other. */
static int in_flight(store_conn *c, int64_t tenant, int64_t cust, int64_t emp, bool takeover,
                     int64_t *id, int64_t *other) {
    sqlite3_stmt *st = store_conn_stmt(
        c, takeover ? "SELECT id, handover_employee_id FROM transfer WHERE tenant_id=?1 AND "
                      "customer_id=?2 AND takeover_employee_id=?3 AND state IN " IN_FLIGHT
                      " ORDER BY id DESC LIMIT 1"
                    : "SELECT id, takeover_employee_id FROM transfer WHERE tenant_id=?1 AND "
                      "customer_id=?2 AND handover_employee_id=?3 AND state IN " IN_FLIGHT
                      " ORDER BY id DESC LIMIT 1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, cust);
    sqlite3_bind_int64(st, 3, emp);
    *id = *other = 0;
    int rc = store_stmt_query_id(st, id, other);
    return rc == 1 ? 0 : rc;
}

static int finish(store_conn *c, int64_t tenant, int64_t id, const char *state, const char *error,
                  int64_t ts) {
    bool done = strcmp(state, "done") == 0;
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE transfer SET state=?3, error=coalesce(?4, error), updated_at=?5, "
           "takeover_at=CASE WHEN ?3='done' THEN ?6 ELSE takeover_at END "
           "WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    store_bind_text(st, 3, state);
    store_bind_text(st, 4, error);
    sqlite3_bind_int64(st, 5, siyu_now());
    if (done) sqlite3_bind_int64(st, 6, ts);
    return store_stmt_run(st);
}

/* Completes the customer's in-flight transfer found by emp (as its takeover
 * when takeover, else as its handover) and runs rel_sql on the other side's
 * relationship: ?1 tenant, ?2 customer, ?3 the other employee, ?4 ts, ?5 now.
 * 0 also when nothing is in flight. */
static int complete(store_conn *c, int64_t tenant, int64_t cust, int64_t emp, bool takeover,
                    const char *rel_sql, int64_t ts) {
    int64_t id, other;
    int rc = in_flight(c, tenant, cust, emp, takeover, &id, &other);
    if (rc != 0 || !id) return rc;
    if ((rc = finish(c, tenant, id, "done", NULL, ts)) != 0) return rc;
    sqlite3_stmt *st = store_conn_stmt(c, rel_sql);
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, cust);
    sqlite3_bind_int64(st, 3, other);
    sqlite3_bind_int64(st, 4, ts);
    sqlite3_bind_int64(st, 5, siyu_now());
    return store_stmt_run(st);
}

int transfer_on_add(store_conn *c, int64_t tenant_id, int64_t customer_id, int64_t employee_id,
                    int64_t ts) {
    return complete(c, tenant_id, customer_id, employee_id, true,
                    "UPDATE relationship SET status='transferred', ended_at=?4, "
                    "end_reason='transfer', updated_at=?5 WHERE tenant_id=?1 AND customer_id=?2 "
                    "AND employee_id=?3 AND status='active'",
                    ts);
}

int transfer_on_transfer_delete(store_conn *c, int64_t tenant_id, int64_t customer_id,
                                int64_t handover_id, int64_t ts) {
    return complete(c, tenant_id, customer_id, handover_id, false,
                    "INSERT INTO relationship(tenant_id, customer_id, employee_id, status, "
                    "added_at, updated_at) VALUES(?1,?2,?3,'active',?4,?5) "
                    "ON CONFLICT(tenant_id, customer_id, employee_id) DO UPDATE SET "
                    "status='active', added_at=excluded.added_at, ended_at=NULL, "
                    "end_reason=NULL, updated_at=excluded.updated_at WHERE status<>'active'",
                    ts);
}

int transfer_on_fail(store_conn *c, int64_t tenant_id, int64_t customer_id, int64_t employee_id,
                     const char *reason, int64_t ts) {
    /* WeCom names the takeover in UserID; accept the handover too. */
    int64_t id, other;
    int rc = in_flight(c, tenant_id, customer_id, employee_id, true, &id, &other);
    if (rc == 0 && !id) rc = in_flight(c, tenant_id, customer_id, employee_id, false, &id, &other);
    if (rc != 0 || !id) return rc;
    bool refused = !reason || !*reason || strcmp(reason, "customer_refused") == 0;
    return finish(c, tenant_id, id, refused ? "refused" : "failed",
                  reason && *reason ? reason : "customer_refused", ts);
}

/* ---- polling transfer_result --------------------------------------------- */

int transfer_poll_pairs(store_conn *c, int64_t tenant_id, int64_t before, transfer_pair *out,
                        int cap) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT DISTINCT t.kind, t.handover_employee_id, t.takeover_employee_id, h.userid, "
           "k.userid FROM transfer t JOIN employee h ON h.id=t.handover_employee_id JOIN "
           "employee k ON k.id=t.takeover_employee_id WHERE t.tenant_id=?1 AND "
           "t.state='waiting' AND t.updated_at<=?2 ORDER BY 2, 3, 1 LIMIT ?3");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, before);
    sqlite3_bind_int(st, 3, cap);
    int n = 0, rc = SQLITE_DONE;
    while (n < cap && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        transfer_pair *p = &out[n++];
        const char *kind = (const char *)sqlite3_column_text(st, 0);
        p->resigned = kind && strcmp(kind, "resigned") == 0;
        p->handover_id = sqlite3_column_int64(st, 1);
        p->takeover_id = sqlite3_column_int64(st, 2);
        snprintf(p->handover, sizeof p->handover, "%s", sqlite3_column_text(st, 3));
        snprintf(p->takeover, sizeof p->takeover, "%s", sqlite3_column_text(st, 4));
    }
    if (n < cap && rc != SQLITE_DONE) n = store_rc(rc);
    sqlite3_reset(st);
    return n;
}

/* The pair's waiting transfer of external_userid ext: 0 with *id (0 =
 * none), *cust and *requested. */
static int poll_row(store_conn *c, const transfer_poll *p, const char *ext, int64_t *id,
                    int64_t *cust, int64_t *requested) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT t.id, t.customer_id, t.requested_at FROM transfer t JOIN identity i ON "
           "i.tenant_id=t.tenant_id AND i.customer_id=t.customer_id AND "
           "i.kind='wecom_external_userid' WHERE t.tenant_id=?1 AND i.value=?2 AND "
           "t.handover_employee_id=?3 AND t.takeover_employee_id=?4 AND t.kind=?5 AND "
           "t.state='waiting' ORDER BY t.id DESC LIMIT 1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, p->tenant_id);
    store_bind_text(st, 2, ext);
    sqlite3_bind_int64(st, 3, p->pair->handover_id);
    sqlite3_bind_int64(st, 4, p->pair->takeover_id);
    store_bind_text(st, 5, p->pair->resigned ? "resigned" : "on_job");
    *id = *cust = *requested = 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        *cust = sqlite3_column_int64(st, 1);
        *requested = sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_rc(rc);
}

int transfer_poll_step(store_conn *c, void *arg) {
    transfer_poll *p = arg;
    p->updated = 0;
    size_t i;
    const json_t *e;
    json_array_foreach(p->customers, i, e) {
        const char *ext = json_string_value(json_object_get(e, "external_userid"));
        json_int_t status = json_integer_value(json_object_get(e, "status"));
        json_int_t when = json_integer_value(json_object_get(e, "takeover_time"));
        if (!ext || status < 1 || status > 5 || status == 2) continue;
        int64_t id, cust, requested;
        int rc = poll_row(c, p, ext, &id, &cust, &requested);
        if (rc != 0) return rc;
        if (!id || (when > 0 && when < requested)) continue; /* none, or an older transfer */
        int64_t ts = when > 0 ? when : siyu_now();
        if (status == 1) {
            /* done, the handover's relationship 'transferred' ... */
            rc = transfer_on_add(c, p->tenant_id, cust, p->pair->takeover_id, ts);
            /* ... and the takeover's active */
            sqlite3_stmt *st =
                rc ? NULL
                   : store_conn_stmt(c, "INSERT INTO relationship(tenant_id, customer_id, "
                                        "employee_id, status, added_at, updated_at) "
                                        "VALUES(?1,?2,?3,'active',?4,?5) ON CONFLICT(tenant_id, "
                                        "customer_id, employee_id) DO UPDATE SET "
                                        "status='active', added_at=excluded.added_at, "
                                        "ended_at=NULL, end_reason=NULL, "
                                        "updated_at=excluded.updated_at WHERE status<>'active'");
            if (rc == 0 && !st) rc = SIYU_EIO;
            if (rc == 0) {
                sqlite3_bind_int64(st, 1, p->tenant_id);
                sqlite3_bind_int64(st, 2, cust);
                sqlite3_bind_int64(st, 3, p->pair->takeover_id);
                sqlite3_bind_int64(st, 4, ts);
                sqlite3_bind_int64(st, 5, siyu_now());
                rc = store_stmt_run(st);
            }
        } else {
            static const char *const why[] = {
                NULL, NULL, NULL, "customer_refused", "takeover_limit", "no_transfer_record"};
            rc = finish(c, p->tenant_id, id, status == 3 ? "refused" : "failed", why[status], ts);
        }
        if (rc != 0) return rc;
        p->updated++;
    }
    return 0;
}

/* ---- outbox answers ------------------------------------------------------ */

const char *transfer_state_for_errcode(int errcode, const char **error) {
    *error = NULL;
    switch (errcode) {
    case 0:
    case 40100: /* already in transfer: started before a crash-resend */
    case 40129: /* being transferred */
        return "waiting";
    case 40128:
        *error = "transfer_too_frequent";
        return "failed";
    default:
        *error = wecom_errcode_name(errcode);
        return "failed";
    }
}

/* Moves the batch's requested rows (one customer's when ext != NULL). */
static int batch_set(store_conn *c, transfer_result *t, int64_t batch, const char *ext, int errcode,
                     const char *state, const char *error) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE transfer SET state=?3, errcode=?4, error=?5, updated_at=?6 WHERE "
           "tenant_id=?1 AND batch_id=?2 AND state='requested' AND (?7 IS NULL OR customer_id="
           "(SELECT customer_id FROM identity WHERE tenant_id=?1 AND "
           "kind='wecom_external_userid' AND value=?7))");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, t->tenant_id);
    sqlite3_bind_int64(st, 2, batch);
    store_bind_text(st, 3, state);
    sqlite3_bind_int(st, 4, errcode);
    store_bind_text(st, 5, error);
    sqlite3_bind_int64(st, 6, siyu_now());
    store_bind_text(st, 7, ext);
    int rc = store_stmt_run(st);
    if (rc == 0) t->updated += store_conn_changes(c);
    return rc;
}

int transfer_result_step(store_conn *c, void *arg) {
    transfer_result *t = arg;
    long long batch = 0;
    t->updated = 0;
    if (!t->ref || sscanf(t->ref, "transfer_batch:%lld", &batch) != 1 || batch <= 0) return 0;
    const char *error;
    if (strcmp(t->state, "sent") == 0) {
        json_t *list = json_object_get(t->answer, "customer"), *it;
        size_t i;
        json_array_foreach(list, i, it) {
            const char *ext = json_string_value(json_object_get(it, "external_userid"));
            if (!ext) continue;
            int ec = (int)json_integer_value(json_object_get(it, "errcode"));
            const char *state = transfer_state_for_errcode(ec, &error);
            int rc = batch_set(c, t, batch, ext, ec, state, error);
            if (rc != 0) return rc;
        }
        /* Customers the answer did not list: the call succeeded as a whole. */
        return batch_set(c, t, batch, NULL, 0, "waiting", NULL);
    }
    if (strcmp(t->state, "dead") == 0 || strcmp(t->state, "cancelled") == 0) {
        const char *state = transfer_state_for_errcode(t->errcode, &error);
        if (strcmp(t->state, "cancelled") == 0) state = "failed", error = "cancelled";
        if (t->errcode == 0 && strcmp(state, "waiting") == 0) state = "failed", error = "dead";
        return batch_set(c, t, batch, NULL, t->errcode, state, error);
    }
    return 0; /* sending / failed (will retry): nothing final yet */
}

static void on_result(void *arg, int64_t tenant_id, const char *kind, const char *ref,
                      const char *state, const json_t *answer, int errcode) {
    (void)kind;
    siyu_ctx *ctx = arg;
    transfer_result t = {.tenant_id = tenant_id,
                         .ref = ref,
                         .state = state ? state : "",
                         .answer = answer,
                         .errcode = errcode};
    int rc = store_write(ctx->st, transfer_result_step, &t);
    if (rc != 0)
        log_error("transfer: recording the answer for %s failed: %s", ref ? ref : "?",
                  siyu_strerror(rc));
    else
        log_info("transfer: %s %s: %lld rows updated", ref ? ref : "?", t.state,
                 (long long)t.updated);
}

/* Answers recorded by the outbox whose listener never ran (the server
 * stopped between the outbox's commit and ours, or before the listener was
 * registered) are applied from the outbox rows' stored answers (a long
 * per-customer answer keeps its refused customers, see outbox.c
 * result_reduced; the customers it does not list were started). */
typedef struct pending_answer {
    int64_t tenant;
    char *ref, *state, *result;
    int errcode;
} pending_answer;

static char *dup_col(sqlite3_stmt *st, int i) {
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? strdup(s) : NULL;
}

int transfer_catch_up_step(store_conn *c, void *arg) {
    int64_t *updated = arg;
    *updated = 0;
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT o.tenant_id, o.ref, o.state, o.result, coalesce(o.errcode, 0) FROM outbox o "
           "WHERE o.id IN (SELECT DISTINCT outbox_id FROM transfer WHERE state='requested') AND "
           "o.state IN ('sent','dead','cancelled')");
    if (!st) return SIYU_EIO;
    pending_answer *pa = NULL;
    size_t n = 0, cap = 0;
    int step, rc = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            pending_answer *g = realloc(pa, cap * sizeof *pa);
            if (!g) {
                rc = SIYU_ENOMEM;
                break;
            }
            pa = g;
        }
        pa[n++] = (pending_answer){sqlite3_column_int64(st, 0), dup_col(st, 1), dup_col(st, 2),
                                   dup_col(st, 3), sqlite3_column_int(st, 4)};
    }
    if (rc == 0 && step != SQLITE_DONE) rc = store_rc(step);
    sqlite3_reset(st);
    for (size_t i = 0; i < n; i++) {
        json_t *answer = pa[i].result ? json_loads(pa[i].result, 0, NULL) : NULL;
        transfer_result r = {.tenant_id = pa[i].tenant,
                             .ref = pa[i].ref,
                             .state = pa[i].state ? pa[i].state : "",
                             .answer = answer,
                             .errcode = pa[i].errcode};
        if (rc == 0) rc = transfer_result_step(c, &r);
        *updated += r.updated;
        json_decref(answer);
        free(pa[i].ref);
        free(pa[i].state);
        free(pa[i].result);
    }
    free(pa);
    return rc;
}

void transfer_listen(siyu_ctx *ctx) {
    if (!ctx || !ctx->ob) return;
    outbox_on_result(ctx->ob, TRANSFER_KIND_ON_JOB, on_result, ctx);
    outbox_on_result(ctx->ob, TRANSFER_KIND_RESIGNED, on_result, ctx);
    int64_t n = 0;
    int rc = store_write(ctx->st, transfer_catch_up_step, &n);
    if (rc != 0)
        log_error("transfer: catching up on recorded answers failed: %s", siyu_strerror(rc));
    else if (n > 0)
        log_info("transfer: %lld rows caught up from recorded outbox answers", (long long)n);
}

/* ---- reads --------------------------------------------------------------- */

#define TRANSFER_COLS                                                                              \
    "t.id, t.customer_id, (SELECT value FROM identity i WHERE i.tenant_id=t.tenant_id AND "        \
    "i.customer_id=t.customer_id AND i.kind='wecom_external_userid' LIMIT 1), "                    \
    "t.handover_employee_id, t.takeover_employee_id, t.kind, t.state, t.errcode, t.error, "        \
    "t.outbox_id, t.batch_id, t.requested_at, t.updated_at, t.takeover_at"

static const char *const transfer_names[] = {"id",
                                             "customer_id",
                                             "external_userid",
                                             "handover_employee_id",
                                             "takeover_employee_id",
                                             "kind",
                                             "state",
                                             "errcode",
                                             "error",
                                             "outbox_id",
                                             "batch_id",
                                             "requested_at",
                                             "updated_at",
                                             "takeover_at",
                                             NULL};

static json_t *col(sqlite3_stmt *st, int i) {
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_NULL:
        return json_null();
    default: {
        json_t *s = json_string((const char *)sqlite3_column_text(st, i));
        return s ? s : json_null();
    }
    }
}

static json_t *transfer_row(sqlite3_stmt *st) {
    json_t *o = json_object();
    for (int i = 0; transfer_names[i]; i++)
        json_object_set_new(o, transfer_names[i], col(st, i));
    return o;
}

/* Transfer alias `t` visible to the token. */
static const char *scope_sql(const http_auth *a) {
    switch (a->role) {
    case ROLE_ADMIN:
    case ROLE_OPERATOR:
        return "1";
    case ROLE_MANAGER:
        return "(t.handover_employee_id IN " TEAM_SQL " OR t.takeover_employee_id IN " TEAM_SQL ")";
    }
    return "0";
}

static sqlite3_stmt *scoped_stmt(store_conn *c, const http_auth *a, const char *fmt) {
    char sql[2048];
    snprintf(sql, sizeof sql, fmt, scope_sql(a));
    sqlite3_stmt *st = store_conn_stmt(c, sql);
    if (!st) return NULL;
    bind_named_int(st, ":scope_tenant", a->tenant_id);
    bind_named_int(st, ":scope_emp", a->employee_id);
    return st;
}

json_t *transfer_get_json(store_conn *c, const http_auth *a, int64_t id) {
    sqlite3_stmt *st = scoped_stmt(c, a,
                                   "SELECT " TRANSFER_COLS " FROM transfer t WHERE "
                                   "t.tenant_id=:scope_tenant AND t.id=:id AND %s");
    if (!st) return NULL;
    bind_named_int(st, ":id", id);
    json_t *j = sqlite3_step(st) == SQLITE_ROW ? transfer_row(st) : NULL;
    sqlite3_reset(st);
    return j;
}

int transfer_list_json(store_conn *c, const http_auth *a, const transfer_filter *f, json_t **out) {
    sqlite3_stmt *st = scoped_stmt(
        c, a,
        "SELECT " TRANSFER_COLS " FROM transfer t WHERE t.tenant_id=:scope_tenant AND t.id>:after "
        "AND (:state IS NULL OR t.state=:state) AND (:emp=0 OR t.handover_employee_id=:emp OR "
        "t.takeover_employee_id=:emp) AND %s ORDER BY t.id LIMIT :limit");
    if (!st) return SIYU_EIO;
    bind_named_int(st, ":after", f->after_id);
    if (f->state)
        sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, ":state"), f->state, -1,
                          SQLITE_STATIC);
    bind_named_int(st, ":emp", f->employee_id);
    bind_named_int(st, ":limit", f->limit + 1);
    json_t *items = json_array();
    int n = 0, rc;
    int64_t last = 0;
    bool more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == f->limit) {
            more = true;
            break;
        }
        last = sqlite3_column_int64(st, 0);
        json_array_append_new(items, transfer_row(st));
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(items);
        return store_rc(rc);
    }
    json_t *next = json_null();
    if (more) {
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", (long long)last);
        next = json_string(buf);
    }
    *out = json_pack("{s:o,s:o}", "items", items, "next_cursor", next);
    return 0;
}
