/* inherit.c — inheritance (F3): spreading customers over takeovers, the
 * resignation rule and worker, and the screen's counts (see inherit.h for
 * the resignation state diagram).
 *
 * Every hand-over ends in store/transfer.c: customers go through
 * transfer_request_step (one outbox row per 100 customers, tracked there to
 * done/refused/failed), so the transfer table is the one record of what
 * moved. What has not moved yet is an inherit_pending row (kind customer or
 * group) with a reason. The screen's counts come from both: per handover,
 * total = pending + in_progress + done + refused + failed, where a pending
 * row that a later transfer covers is no longer counted as pending.
 *
 * Customers that cannot be transferred now are refused one by one (never
 * the whole request): no active relationship with the handover, no WeCom
 * external_userid, a transfer already in flight, or — on the job only —
 * two transfers in the last 90 days (WeCom's limit, errcode 40128).
 *
 * Ownership: id arrays and JSON built here are freed before return, except
 * results handed to the caller. */
#include "store/inherit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "outbox/outbox.h"
#include "store/audit.h"
#include "store/tenant.h"
#include "store/transfer.h"
#include "util/log.h"
#include "wecom/wecom_client.h"

const char *const inherit_modes[] = {"manual", "store_manager", "store_round_robin", NULL};

#define UNASSIGNED_PAGES_MAX 200
#define DUE_MAX 8
#define RETRY_S 30

/* One reason per customer of ?1 (JSON ids) for handover ?3 of tenant ?2;
 * ?4 = 1 for on-the-job (the 90-day limit applies), ?5 the window start. */
#define REASON_SQL                                                                                 \
    "SELECT j.value, CASE WHEN NOT EXISTS (SELECT 1 FROM relationship r WHERE r.tenant_id=?2 AND " \
    "r.customer_id=j.value AND r.employee_id=?3 AND r.status='active') THEN "                      \
    "'no_active_relationship' WHEN NOT EXISTS (SELECT 1 FROM identity i WHERE i.tenant_id=?2 AND " \
    "i.customer_id=j.value AND i.kind='wecom_external_userid') THEN 'no_external_userid' "         \
    "WHEN EXISTS (SELECT 1 FROM transfer t WHERE t.tenant_id=?2 AND t.customer_id=j.value AND "    \
    "t.state IN ('requested','waiting')) THEN 'transfer_in_progress' WHEN ?4 AND (SELECT "         \
    "count(*) FROM transfer t WHERE t.tenant_id=?2 AND t.customer_id=j.value AND "                 \
    "t.kind='on_job' AND t.state IN ('requested','waiting','done','refused') AND "                 \
    "t.requested_at>?5) >= 2 THEN 'transfer_limit_90_days' END FROM json_each(?1) j "              \
    "ORDER BY j.key"

typedef struct emp {
    bool found, resigned;
    int64_t store_id;
    char userid[72];
} emp;

static int emp_load(store_conn *c, int64_t tenant, int64_t id, emp *out) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT userid, status, coalesce(store_id, 0) FROM "
                                          "employee WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->found = true;
        snprintf(out->userid, sizeof out->userid, "%s", (const char *)sqlite3_column_text(st, 0));
        const char *s = (const char *)sqlite3_column_text(st, 1);
        out->resigned = s && !strcmp(s, "resigned");
        out->store_id = sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_rc(rc);
}

/* ---- id lists ------------------------------------------------------------ */

typedef struct ids {
    int64_t *v;
    size_t n, cap;
} ids;

static int ids_push(ids *a, int64_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        int64_t *g = realloc(a->v, cap * sizeof *g);
        if (!g) return SIYU_ENOMEM;
        a->v = g;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

static char *ids_text(const int64_t *v, size_t n) {
    size_t cap = 3 + n * 21; /* "[", up to 21 per id with its comma, "]", NUL */
    char *s = malloc(cap), *p = s;
    if (!s) return NULL;
    *p++ = '[';
    for (size_t i = 0; i < n; i++)
        p += snprintf(p, cap - (size_t)(p - s), "%s%lld", i ? "," : "", (long long)v[i]);
    *p++ = ']';
    *p = 0;
    return s;
}

/* Splits the customers of list (JSON text) into ok and refused
 * ([{customer_id, reason}], may be NULL to drop them). */
static int reasons(store_conn *c, int64_t tenant, int64_t handover, bool on_job, const char *list,
                   ids *ok, json_t *refused) {
    sqlite3_stmt *st = store_conn_stmt(c, REASON_SQL);
    if (!st) return SIYU_EIO;
    store_bind_text(st, 1, list);
    sqlite3_bind_int64(st, 2, tenant);
    sqlite3_bind_int64(st, 3, handover);
    sqlite3_bind_int(st, 4, on_job);
    sqlite3_bind_int64(st, 5, siyu_now() - INHERIT_WINDOW_S);
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *why = (const char *)sqlite3_column_text(st, 1);
        if (!why)
            rc = ids_push(ok, id);
        else if (refused)
            json_array_append_new(
                refused, json_pack("{s:I,s:s}", "customer_id", (json_int_t)id, "reason", why));
    }
    if (rc == 0 && step != SQLITE_DONE) rc = store_rc(step);
    sqlite3_reset(st);
    return rc;
}

/* Requests transfers of v[0..n) from handover to takeover (chunks of
 * TRANSFER_CUSTOMERS_MAX). *first: the first transfer id. */
static int request(store_conn *c, const http_auth *auth, const char *actor, int64_t handover,
                   int64_t takeover, const int64_t *v, size_t n, const char *message,
                   int64_t *first, int *batches, siyu_err *err) {
    *first = 0;
    *batches = 0;
    for (size_t off = 0; off < n; off += TRANSFER_CUSTOMERS_MAX) {
        size_t k = n - off < TRANSFER_CUSTOMERS_MAX ? n - off : TRANSFER_CUSTOMERS_MAX;
        char *text = ids_text(v + off, k);
        if (!text) return SIYU_ENOMEM;
        transfer_request t = {.auth = *auth,
                              .handover_id = handover,
                              .takeover_id = takeover,
                              .customer_ids = text,
                              .ncustomers = k,
                              .message = message,
                              .actor = actor};
        int rc = transfer_request_step(c, &t);
        free(text);
        if (rc != 0) {
            *err = t.err;
            return rc;
        }
        if (!*first) *first = t.first_id;
        *batches += t.batches;
    }
    return 0;
}

/* ---- on the job ------------------------------------------------------------ */

/* Employees of the token's department and its sub-departments (as in
 * store/transfer.c). */
#define TEAM_SQL                                                                                   \
    "(SELECT te.id FROM employee te WHERE te.tenant_id=?1 AND te.department_id IN "                \
    "(WITH RECURSIVE sub(id) AS (SELECT department_id FROM employee WHERE id=?2 "                  \
    "AND tenant_id=?1 UNION SELECT d.id FROM department d JOIN sub "                               \
    "ON d.parent_id=sub.id) SELECT id FROM sub))"

/* A manager may only move customers between employees of their subtree;
 * checked up front, even when no customer turns out to be movable. */
static int team_check(store_conn *c, inherit_handover *h) {
    if (h->auth.role != ROLE_MANAGER) return 0;
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT 1 WHERE ?3 IN " TEAM_SQL);
    if (!st) return SIYU_EIO;
    char field[48];
    for (int i = -1; i < h->ntakeovers; i++) {
        int64_t id = i < 0 ? h->handover_id : h->takeovers[i];
        sqlite3_bind_int64(st, 1, h->auth.tenant_id);
        sqlite3_bind_int64(st, 2, h->auth.employee_id);
        sqlite3_bind_int64(st, 3, id);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_ROW) continue;
        if (rc != SQLITE_DONE) return store_rc(rc);
        if (i < 0)
            snprintf(field, sizeof field, "handover_employee_id");
        else
            snprintf(field, sizeof field, "takeover_employee_ids[%d]", i);
        return siyu_err_set(&h->err, SIYU_EDENIED, field,
                            "employee %lld is outside your department", (long long)id);
    }
    return 0;
}

static int takeovers_check(store_conn *c, inherit_handover *h) {
    char field[48];
    for (int i = 0; i < h->ntakeovers; i++) {
        emp k;
        int rc = emp_load(c, h->auth.tenant_id, h->takeovers[i], &k);
        if (rc != 0) return rc;
        snprintf(field, sizeof field, "takeover_employee_ids[%d]", i);
        if (!k.found)
            return siyu_err_set(&h->err, SIYU_EINVAL, field, "employee %lld does not exist",
                                (long long)h->takeovers[i]);
        if (k.resigned)
            return siyu_err_set(&h->err, SIYU_EINVAL, field, "employee %lld has resigned",
                                (long long)h->takeovers[i]);
        if (h->takeovers[i] == h->handover_id)
            return siyu_err_set(&h->err, SIYU_EINVAL, field,
                                "takeover must differ from the handover employee");
    }
    return 0;
}

/* The handover's active customers as JSON text (malloc'd) in *out. */
static int all_customers(store_conn *c, inherit_handover *h, char **out) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT count(*), json_group_array(customer_id) FROM (SELECT customer_id FROM "
           "relationship WHERE tenant_id=?1 AND employee_id=?2 AND status='active' ORDER BY "
           "customer_id LIMIT ?3)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, h->auth.tenant_id);
    sqlite3_bind_int64(st, 2, h->handover_id);
    sqlite3_bind_int64(st, 3, TRANSFER_CUSTOMERS_MAX + 1);
    int rc = sqlite3_step(st);
    *out = NULL;
    int64_t n = 0;
    if (rc == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
        const char *t = (const char *)sqlite3_column_text(st, 1);
        *out = strdup(t ? t : "[]");
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) return store_rc(rc);
    if (!*out) return SIYU_ENOMEM;
    if (n > TRANSFER_CUSTOMERS_MAX) {
        free(*out);
        *out = NULL;
        return siyu_err_set(&h->err, SIYU_EINVAL, "customer_ids",
                            "the employee has more than 10,000 customers: pass customer_ids in "
                            "parts");
    }
    return 0;
}

static int64_t active_load(store_conn *c, int64_t tenant, int64_t emp_id) {
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT count(*) FROM relationship WHERE tenant_id=?1 "
                                          "AND employee_id=?2 AND status='active'");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, emp_id);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return n;
}

/* Index of the takeover for the i-th customer. */
static int pick(bool least, int64_t *load, int n, size_t i) {
    if (!least) return (int)(i % (size_t)n);
    int best = 0;
    for (int k = 1; k < n; k++)
        if (load[k] < load[best]) best = k;
    load[best]++;
    return best;
}

int inherit_handover_step(store_conn *c, void *arg) {
    inherit_handover *h = arg;
    h->result = NULL;
    emp ho;
    int rc = emp_load(c, h->auth.tenant_id, h->handover_id, &ho);
    if (rc != 0) return rc;
    if (!ho.found)
        return siyu_err_set(&h->err, SIYU_EINVAL, "handover_employee_id",
                            "employee %lld does not exist", (long long)h->handover_id);
    if ((rc = takeovers_check(c, h)) != 0 || (rc = team_check(c, h)) != 0) return rc;
    char *all = NULL;
    if (!h->customer_ids && (rc = all_customers(c, h, &all)) != 0) return rc;
    ids ok = {0}, *per = calloc((size_t)h->ntakeovers, sizeof *per);
    int64_t *load = calloc((size_t)h->ntakeovers, sizeof *load);
    json_t *refused = json_array(), *outs = json_array();
    if (!per || !load || !refused || !outs) {
        rc = SIYU_ENOMEM;
        goto done;
    }
    rc = reasons(c, h->auth.tenant_id, h->handover_id, !ho.resigned,
                 h->customer_ids ? h->customer_ids : all, &ok, refused);
    for (int k = 0; rc == 0 && h->least_loaded && k < h->ntakeovers; k++)
        load[k] = active_load(c, h->auth.tenant_id, h->takeovers[k]);
    for (size_t i = 0; rc == 0 && i < ok.n; i++)
        rc = ids_push(&per[pick(h->least_loaded, load, h->ntakeovers, i)], ok.v[i]);
    for (int k = 0; rc == 0 && k < h->ntakeovers; k++) {
        int64_t first = 0;
        int batches = 0;
        if (per[k].n)
            rc = request(c, &h->auth, h->actor, h->handover_id, h->takeovers[k], per[k].v, per[k].n,
                         h->message, &first, &batches, &h->err);
        json_array_append_new(outs, json_pack("{s:I,s:I,s:I,s:i}", "employee_id",
                                              (json_int_t)h->takeovers[k], "count",
                                              (json_int_t)per[k].n, "first_transfer_id",
                                              (json_int_t)first, "batches", batches));
    }
    if (rc == 0)
        h->result = json_pack("{s:I,s:s,s:s,s:O,s:O}", "requested", (json_int_t)ok.n, "kind",
                              ho.resigned ? "resigned" : "on_job", "strategy",
                              h->least_loaded ? "least_loaded" : "round_robin", "takeovers", outs,
                              "refused", refused);
done:
    for (int k = 0; per && k < h->ntakeovers; k++)
        free(per[k].v);
    free(per);
    free(load);
    free(ok.v);
    free(all);
    json_decref(refused);
    json_decref(outs);
    return rc;
}

/* ---- the rule ------------------------------------------------------------- */

static const char *rule_mode(store_conn *c, int64_t tenant, char buf[32]) {
    snprintf(buf, 32, "manual");
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT mode FROM inherit_rule WHERE tenant_id=?1");
    if (!st) return buf;
    sqlite3_bind_int64(st, 1, tenant);
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(buf, 32, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return buf;
}

static int manager_set(store_conn *c, inherit_rule_set *r, size_t i, const json_t *e) {
    char field[64];
    json_t *sid = json_object_get(e, "store_id"), *eid = json_object_get(e, "employee_id");
    snprintf(field, sizeof field, "store_managers[%zu]", i);
    if (!json_is_integer(sid) || (!json_is_integer(eid) && !json_is_null(eid)))
        return siyu_err_set(&r->err, SIYU_EINVAL, field,
                            "store_id and employee_id (or null) are required");
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT 1 FROM store WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, r->tenant_id);
    sqlite3_bind_int64(st, 2, json_integer_value(sid));
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    if (step != SQLITE_ROW)
        return siyu_err_set(&r->err, SIYU_EINVAL, field, "store %lld does not exist",
                            (long long)json_integer_value(sid));
    if (json_is_null(eid)) {
        st = store_conn_stmt(c, "DELETE FROM store_manager WHERE tenant_id=?1 AND store_id=?2");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, r->tenant_id);
        sqlite3_bind_int64(st, 2, json_integer_value(sid));
        return store_stmt_run(st);
    }
    emp m;
    int rc = emp_load(c, r->tenant_id, json_integer_value(eid), &m);
    if (rc != 0) return rc;
    if (!m.found || m.resigned)
        return siyu_err_set(&r->err, SIYU_EINVAL, field,
                            "employee %lld does not exist or has resigned",
                            (long long)json_integer_value(eid));
    st = store_conn_stmt(c, "INSERT INTO store_manager(tenant_id, store_id, employee_id, "
                            "updated_at) VALUES(?1,?2,?3,?4) ON CONFLICT(tenant_id, store_id) DO "
                            "UPDATE SET employee_id=excluded.employee_id, "
                            "updated_at=excluded.updated_at");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, r->tenant_id);
    sqlite3_bind_int64(st, 2, json_integer_value(sid));
    sqlite3_bind_int64(st, 3, json_integer_value(eid));
    sqlite3_bind_int64(st, 4, siyu_now());
    return store_stmt_run(st);
}

int inherit_rule_set_step(store_conn *c, void *arg) {
    inherit_rule_set *r = arg;
    int rc;
    if (r->mode) {
        bool ok = false;
        for (const char *const *m = inherit_modes; *m && !ok; m++)
            ok = !strcmp(*m, r->mode);
        if (!ok)
            return siyu_err_set(&r->err, SIYU_EINVAL, "mode",
                                "mode must be manual, store_manager or store_round_robin");
        sqlite3_stmt *st = store_conn_stmt(
            c,
            "INSERT INTO inherit_rule(tenant_id, mode, updated_at) VALUES(?1,?2,?3) ON "
            "CONFLICT(tenant_id) DO UPDATE SET mode=excluded.mode, updated_at=excluded.updated_at");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, r->tenant_id);
        store_bind_text(st, 2, r->mode);
        sqlite3_bind_int64(st, 3, siyu_now());
        if ((rc = store_stmt_run(st)) != 0) return rc;
    }
    size_t i;
    const json_t *e;
    json_array_foreach(r->store_managers, i, e) {
        if ((rc = manager_set(c, r, i, e)) != 0) return rc;
    }
    return store_audit(c, r->tenant_id, r->actor ? r->actor : "system", "inherit.rule", "tenant", 0,
                       r->mode ? r->mode : "");
}

json_t *inherit_rule_json(store_conn *c, int64_t tenant_id) {
    char mode[32];
    rule_mode(c, tenant_id, mode);
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT store_id, employee_id FROM store_manager WHERE "
                                          "tenant_id=?1 ORDER BY store_id");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_pack("{s:I,s:I}", "store_id",
                                           (json_int_t)sqlite3_column_int64(st, 0), "employee_id",
                                           (json_int_t)sqlite3_column_int64(st, 1)));
    sqlite3_reset(st);
    return json_pack("{s:s,s:o}", "mode", mode, "store_managers", a);
}

/* ---- hand-over of pending rows ----------------------------------------------- */

/* Who takes over: a fixed employee, or round-robin over staff. */
typedef struct picker {
    int64_t fixed;
    ids staff;
    size_t next;
    const char *none; /* reason when nobody can */
} picker;

static int64_t picker_next(picker *p) {
    if (p->fixed) return p->fixed;
    if (!p->staff.n) return 0;
    return p->staff.v[p->next++ % p->staff.n];
}

static int pending_reason(store_conn *c, int64_t tenant, int64_t handover, const char *kind,
                          const char *list, const char *reason) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE inherit_pending SET reason=?5, updated_at=?6 WHERE tenant_id=?1 AND "
           "handover_employee_id=?2 AND kind=?3 AND state='pending' AND (?4 IS NULL OR "
           "(CASE kind WHEN 'customer' THEN customer_id ELSE group_id END) IN (SELECT value FROM "
           "json_each(?4)))");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, handover);
    store_bind_text(st, 3, kind);
    store_bind_text(st, 4, list);
    store_bind_text(st, 5, reason);
    sqlite3_bind_int64(st, 6, siyu_now());
    return store_stmt_run(st);
}

/* Pending ids of one kind for handover (filtered by list when not NULL). */
static int pending_ids(store_conn *c, int64_t tenant, int64_t handover, const char *kind,
                       const char *list, ids *out) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT CASE kind WHEN 'customer' THEN customer_id ELSE group_id END AS x FROM "
           "inherit_pending WHERE tenant_id=?1 AND handover_employee_id=?2 AND kind=?3 AND "
           "state='pending' AND (?4 IS NULL OR x IN (SELECT value FROM json_each(?4))) ORDER BY x");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, handover);
    store_bind_text(st, 3, kind);
    store_bind_text(st, 4, list);
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = ids_push(out, sqlite3_column_int64(st, 0));
    if (rc == 0 && step != SQLITE_DONE) rc = store_rc(step);
    sqlite3_reset(st);
    return rc;
}

/* Customers: the transferable ones go to takeovers; the others keep a reason. */
static int customers_hand(store_conn *c, const http_auth *auth, const char *actor, int64_t handover,
                          picker *p, const char *list, int64_t *moved, siyu_err *err) {
    ids pend = {0}, ok = {0};
    int64_t tenant = auth->tenant_id;
    int rc = pending_ids(c, tenant, handover, "customer", list, &pend);
    char *text = rc == 0 ? ids_text(pend.v, pend.n) : NULL;
    if (rc == 0 && !text) rc = SIYU_ENOMEM;
    json_t *refused = json_array();
    if (rc == 0) rc = reasons(c, tenant, handover, false, text, &ok, refused);
    size_t i;
    json_t *e;
    json_array_foreach(refused, i, e) {
        if (rc != 0) break;
        char one[32];
        snprintf(one, sizeof one, "[%lld]",
                 (long long)json_integer_value(json_object_get(e, "customer_id")));
        rc = pending_reason(c, tenant, handover, "customer", one,
                            json_string_value(json_object_get(e, "reason")));
    }
    json_decref(refused);
    if (rc == 0 && ok.n && !p->fixed && !p->staff.n) {
        char *t = ids_text(ok.v, ok.n);
        rc = t ? pending_reason(c, tenant, handover, "customer", t, p->none) : SIYU_ENOMEM;
        free(t);
        ok.n = 0;
    }
    /* group by takeover, in customer order */
    ids *per = NULL;
    int64_t *who = NULL;
    size_t nw = 0;
    for (size_t k = 0; rc == 0 && k < ok.n; k++) {
        int64_t t = picker_next(p);
        size_t w = 0;
        while (w < nw && who[w] != t)
            w++;
        if (w == nw) {
            ids *g = realloc(per, (nw + 1) * sizeof *per);
            int64_t *h = g ? realloc(who, (nw + 1) * sizeof *who) : NULL;
            if (g) per = g;
            if (!g || !h) {
                rc = SIYU_ENOMEM;
                break;
            }
            who = h;
            per[nw] = (ids){0};
            who[nw++] = t;
        }
        rc = ids_push(&per[w], ok.v[k]);
    }
    sqlite3_stmt *up =
        rc == 0 ? store_conn_stmt(c, "UPDATE inherit_pending SET state='assigned', reason=NULL, "
                                     "takeover_employee_id=?3, transfer_id=(SELECT max(t.id) FROM "
                                     "transfer t WHERE t.tenant_id=?1 AND t.customer_id="
                                     "inherit_pending.customer_id AND +t.handover_employee_id=?2), "
                                     "updated_at=?4 WHERE tenant_id=?1 AND handover_employee_id=?2 "
                                     "AND kind='customer' AND state='pending' AND customer_id IN "
                                     "(SELECT value FROM json_each(?5))")
                : NULL;
    if (rc == 0 && !up) rc = SIYU_EIO;
    for (size_t w = 0; rc == 0 && w < nw; w++) {
        int64_t first;
        int batches;
        rc = request(c, auth, actor, handover, who[w], per[w].v, per[w].n, NULL, &first, &batches,
                     err);
        char *t = rc == 0 ? ids_text(per[w].v, per[w].n) : NULL;
        if (rc == 0 && !t) rc = SIYU_ENOMEM;
        if (rc == 0) {
            sqlite3_bind_int64(up, 1, tenant);
            sqlite3_bind_int64(up, 2, handover);
            sqlite3_bind_int64(up, 3, who[w]);
            sqlite3_bind_int64(up, 4, siyu_now());
            store_bind_text(up, 5, t);
            rc = store_stmt_run(up);
            *moved += (int64_t)per[w].n;
        }
        free(t);
    }
    for (size_t w = 0; w < nw; w++)
        free(per[w].v);
    free(per);
    free(who);
    free(pend.v);
    free(ok.v);
    free(text);
    return rc;
}

/* One groupchat/transfer call for chats gids[0..n) (≤ 100) to takeover. */
static int groups_call(store_conn *c, int64_t tenant, const char *actor, int64_t handover,
                       int64_t takeover, const int64_t *gids, size_t n, siyu_err *err) {
    emp k;
    int rc = emp_load(c, tenant, takeover, &k);
    if (rc != 0) return rc;
    char *text = ids_text(gids, n);
    if (!text) return SIYU_ENOMEM;
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT json_group_array(chat_id) FROM group_chat WHERE "
                           "tenant_id=?1 AND id IN (SELECT value FROM json_each(?2))");
    json_t *chats = NULL;
    if (st) {
        sqlite3_bind_int64(st, 1, tenant);
        store_bind_text(st, 2, text);
        if (sqlite3_step(st) == SQLITE_ROW)
            chats = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        sqlite3_reset(st);
    }
    json_t *body =
        chats ? json_pack("{s:o,s:s}", "chat_id_list", chats, "new_owner", k.userid) : NULL;
    char ref[64], origin[64];
    snprintf(ref, sizeof ref, "inherit_groups:%lld:%lld", (long long)handover, (long long)gids[0]);
    snprintf(origin, sizeof origin, "inherit:%s", actor ? actor : "system");
    outbox_item it = {.tenant_id = tenant,
                      .kind = INHERIT_GROUP_KIND,
                      .body = body,
                      .lane = OUTBOX_LANE_NORMAL,
                      .origin = origin,
                      .ref = ref};
    int64_t ob = 0;
    rc = body ? outbox_enqueue(c, &it, &ob, err) : SIYU_ENOMEM;
    json_decref(body);
    st = rc == 0 ? store_conn_stmt(c, "UPDATE inherit_pending SET state='assigned', reason=NULL, "
                                      "takeover_employee_id=?3, outbox_id=?4, updated_at=?5 WHERE "
                                      "tenant_id=?1 AND kind='group' AND handover_employee_id=?2 "
                                      "AND group_id IN (SELECT value FROM json_each(?6))")
                 : NULL;
    if (rc == 0 && !st) rc = SIYU_EIO;
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, tenant);
        sqlite3_bind_int64(st, 2, handover);
        sqlite3_bind_int64(st, 3, takeover);
        sqlite3_bind_int64(st, 4, ob);
        sqlite3_bind_int64(st, 5, siyu_now());
        store_bind_text(st, 6, text);
        rc = store_stmt_run(st);
    }
    free(text);
    return rc;
}

static int groups_hand(store_conn *c, int64_t tenant, const char *actor, int64_t handover,
                       picker *p, const char *list, int64_t *moved, siyu_err *err) {
    ids pend = {0};
    int rc = pending_ids(c, tenant, handover, "group", list, &pend);
    if (rc == 0 && pend.n && !p->fixed && !p->staff.n)
        rc = pending_reason(c, tenant, handover, "group", list, p->none);
    else {
        /* one call per takeover per 100 chats: with a fixed takeover the
         * chats go in runs; round-robin sends one chat per call */
        for (size_t i = 0; rc == 0 && i < pend.n;) {
            int64_t t = picker_next(p);
            size_t n = p->fixed ? (pend.n - i < 100 ? pend.n - i : 100) : 1;
            rc = groups_call(c, tenant, actor, handover, t, pend.v + i, n, err);
            *moved += (int64_t)n;
            i += n;
        }
    }
    free(pend.v);
    return rc;
}

/* The rule's picker for a resigned employee. */
static int rule_picker(store_conn *c, int64_t tenant, int64_t handover, const emp *e, picker *p) {
    char mode[32];
    rule_mode(c, tenant, mode);
    memset(p, 0, sizeof *p);
    if (!strcmp(mode, "manual")) {
        p->none = "manual";
        return 0;
    }
    if (!strcmp(mode, "store_manager")) {
        p->none = e->store_id ? "no_store_manager" : "no_store";
        sqlite3_stmt *st = store_conn_stmt(
            c, "SELECT m.employee_id FROM store_manager m JOIN employee k ON k.id=m.employee_id "
               "AND k.status='active' WHERE m.tenant_id=?1 AND m.store_id=?2 AND "
               "m.employee_id<>?3");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, tenant);
        sqlite3_bind_int64(st, 2, e->store_id);
        sqlite3_bind_int64(st, 3, handover);
        int rc = store_stmt_query_id(st, &p->fixed, NULL);
        return rc == 1 ? 0 : rc;
    }
    p->none = e->store_id ? "no_store_staff" : "no_store";
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT id FROM employee WHERE tenant_id=?1 AND "
                                          "store_id=?2 AND status='active' AND id<>?3 ORDER BY id");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, e->store_id);
    sqlite3_bind_int64(st, 3, handover);
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = ids_push(&p->staff, sqlite3_column_int64(st, 0));
    if (rc == 0 && step != SQLITE_DONE) rc = store_rc(step);
    sqlite3_reset(st);
    return rc;
}

/* ---- resignations ------------------------------------------------------------- */

int inherit_resign_apply_step(store_conn *c, void *arg) {
    inherit_resign_apply *a = arg;
    a->customers = a->chats = a->assigned = 0;
    int64_t handover = 0, now = siyu_now();
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT employee_id FROM resignation WHERE tenant_id=?1 "
                                          "AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, a->tenant_id);
    sqlite3_bind_int64(st, 2, a->resignation_id);
    int rc = store_stmt_query_id(st, &handover, NULL);
    if (rc != 0) return rc == 1 ? SIYU_ENOTFOUND : rc;
    emp e;
    if ((rc = emp_load(c, a->tenant_id, handover, &e)) != 0) return rc;
    char *ext = json_dumps(a->ext, JSON_COMPACT);
    if (!ext) return SIYU_ENOMEM;
    /* CROSS JOIN keeps json_each outside (one identity_value probe per id),
     * and "+t.handover_employee_id" below keeps transfer_customer: the
     * planner's other choices scan thousands of rows per customer. */
    st = store_conn_stmt(
        c, "INSERT OR IGNORE INTO inherit_pending(tenant_id, resignation_id, "
           "handover_employee_id, kind, customer_id, state, created_at, updated_at) SELECT ?1, "
           "?2, ?3, 'customer', i.customer_id, 'pending', ?4, ?4 FROM json_each(?5) j CROSS JOIN "
           "identity i ON i.tenant_id=?1 AND i.kind='wecom_external_userid' AND i.value=j.value");
    if (!st) rc = SIYU_EIO;
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, a->tenant_id);
        sqlite3_bind_int64(st, 2, a->resignation_id);
        sqlite3_bind_int64(st, 3, handover);
        sqlite3_bind_int64(st, 4, now);
        store_bind_text(st, 5, ext);
        rc = store_stmt_run(st);
    }
    free(ext);
    st = rc ? NULL
            : store_conn_stmt(c, "INSERT OR IGNORE INTO inherit_pending(tenant_id, "
                                 "resignation_id, handover_employee_id, kind, group_id, state, "
                                 "created_at, updated_at) SELECT ?1, ?2, ?3, 'group', g.id, "
                                 "'pending', ?4, ?4 FROM group_chat g WHERE g.tenant_id=?1 AND "
                                 "g.owner_userid=?5 AND g.status='active'");
    if (rc == 0 && !st) rc = SIYU_EIO;
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, a->tenant_id);
        sqlite3_bind_int64(st, 2, a->resignation_id);
        sqlite3_bind_int64(st, 3, handover);
        sqlite3_bind_int64(st, 4, now);
        store_bind_text(st, 5, e.userid);
        rc = store_stmt_run(st);
        a->chats = store_conn_changes(c);
    }
    a->customers = (int64_t)json_array_size(a->ext);
    picker p;
    char mode[32], actor[48];
    snprintf(actor, sizeof actor, "resignation:%lld", (long long)a->resignation_id);
    siyu_err err = {0};
    http_auth auth = {.tenant_id = a->tenant_id, .role = ROLE_ADMIN};
    if (rc == 0) rc = rule_picker(c, a->tenant_id, handover, &e, &p);
    if (rc == 0) rc = customers_hand(c, &auth, actor, handover, &p, NULL, &a->assigned, &err);
    int64_t g = 0;
    if (rc == 0) rc = groups_hand(c, a->tenant_id, actor, handover, &p, NULL, &g, &err);
    free(p.staff.v);
    if (rc != 0) return rc;
    st = store_conn_stmt(c, "UPDATE resignation SET state='listed', mode=?3, customers=?4, "
                            "chats=?5, attempts=attempts+1, error=NULL, updated_at=?6 WHERE "
                            "tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, a->tenant_id);
    sqlite3_bind_int64(st, 2, a->resignation_id);
    store_bind_text(st, 3, rule_mode(c, a->tenant_id, mode));
    sqlite3_bind_int64(st, 4, a->customers);
    sqlite3_bind_int64(st, 5, a->chats);
    sqlite3_bind_int64(st, 6, now);
    if ((rc = store_stmt_run(st)) != 0) return rc;
    char detail[96];
    snprintf(detail, sizeof detail, "listed=%lld groups=%lld assigned=%lld",
             (long long)a->customers, (long long)a->chats, (long long)a->assigned);
    char target[48];
    snprintf(target, sizeof target, "employee:%lld", (long long)handover);
    return store_audit(c, a->tenant_id, actor, "inherit.resignation", target, a->assigned, detail);
}

typedef struct resign_fail {
    int64_t tenant_id, id;
    const char *error;
} resign_fail;

static int resign_fail_step(store_conn *c, void *arg) {
    resign_fail *f = arg;
    sqlite3_stmt *st = store_conn_stmt(c, "UPDATE resignation SET state='failed', error=?3, "
                                          "attempts=attempts+1, updated_at=?4 WHERE tenant_id=?1 "
                                          "AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, f->tenant_id);
    sqlite3_bind_int64(st, 2, f->id);
    store_bind_text(st, 3, f->error);
    sqlite3_bind_int64(st, 4, siyu_now());
    return store_stmt_run(st);
}

int inherit_assign_step(store_conn *c, void *arg) {
    inherit_assign *a = arg;
    a->customers = a->chats = 0;
    emp h, k;
    int rc;
    if ((rc = emp_load(c, a->auth.tenant_id, a->handover_id, &h)) != 0 ||
        (rc = emp_load(c, a->auth.tenant_id, a->takeover_id, &k)) != 0)
        return rc;
    if (!h.found)
        return siyu_err_set(&a->err, SIYU_EINVAL, "handover_employee_id",
                            "employee %lld does not exist", (long long)a->handover_id);
    if (!k.found || k.resigned || a->takeover_id == a->handover_id)
        return siyu_err_set(&a->err, SIYU_EINVAL, "takeover_employee_id",
                            "employee %lld does not exist, has resigned or is the handover",
                            (long long)a->takeover_id);
    picker p = {.fixed = a->takeover_id, .none = "manual"};
    bool both = !a->customer_ids && !a->group_ids;
    if (both || a->customer_ids)
        rc = customers_hand(c, &a->auth, a->actor, a->handover_id, &p, a->customer_ids,
                            &a->customers, &a->err);
    if (rc == 0 && (both || a->group_ids))
        rc = groups_hand(c, a->auth.tenant_id, a->actor, a->handover_id, &p, a->group_ids,
                         &a->chats, &a->err);
    return rc;
}

/* ---- the worker --------------------------------------------------------------- */

typedef struct due {
    int64_t id, tenant, employee;
    char userid[72];
} due;

static int due_list(store *st, due *out, int cap) {
    store_conn *c = store_reader_acquire(st);
    if (!c) return 0;
    sqlite3_stmt *q = store_conn_stmt(
        c, "SELECT r.id, r.tenant_id, r.employee_id, e.userid FROM resignation r JOIN employee e "
           "ON e.id=r.employee_id WHERE r.state IN ('queued','failed') AND r.attempts<?1 AND "
           "(r.state='queued' OR r.updated_at<=?2-?3*r.attempts) ORDER BY r.id LIMIT ?4");
    int n = 0;
    if (q) {
        sqlite3_bind_int(q, 1, INHERIT_ATTEMPTS_MAX);
        sqlite3_bind_int64(q, 2, siyu_now());
        sqlite3_bind_int(q, 3, RETRY_S);
        sqlite3_bind_int(q, 4, cap);
        while (n < cap && sqlite3_step(q) == SQLITE_ROW) {
            out[n] = (due){sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1),
                           sqlite3_column_int64(q, 2), ""};
            snprintf(out[n].userid, sizeof out[n].userid, "%s",
                     (const char *)sqlite3_column_text(q, 3));
            n++;
        }
        sqlite3_reset(q);
    }
    store_reader_release(st, c);
    return n;
}

/* get_unassigned_list, all pages: the external_userids of d's employee. */
static int unassigned_read(wecom_client *wc, const wecom_app *app, const due *d, json_t *ext,
                           char *why, size_t cap) {
    char cursor[1024] = "";
    for (int page = 0; page < UNASSIGNED_PAGES_MAX; page++) {
        json_t *body = json_pack("{s:i,s:s}", "page_size", 1000, "cursor", cursor), *out = NULL;
        wecom_res res;
        memset(&res, 0, sizeof res);
        int rc = body ? wecom_call(wc, app, "externalcontact/get_unassigned_list", NULL, body, &out,
                                   &res)
                      : SIYU_ENOMEM;
        json_decref(body);
        if (rc != 0) {
            json_decref(out);
            snprintf(why, cap, "get_unassigned_list: errcode %d", res.errcode);
            return rc;
        }
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(out, "info"), i, e) {
            const char *h = json_string_value(json_object_get(e, "handover_userid"));
            const char *x = json_string_value(json_object_get(e, "external_userid"));
            if (h && x && !strcmp(h, d->userid)) json_array_append_new(ext, json_string(x));
        }
        const char *next = json_string_value(json_object_get(out, "next_cursor"));
        bool more = !json_is_true(json_object_get(out, "is_last")) && next && *next &&
                    strlen(next) < sizeof cursor && strcmp(next, cursor) != 0;
        if (more) snprintf(cursor, sizeof cursor, "%s", next);
        json_decref(out);
        if (!more) return 0;
    }
    snprintf(why, cap, "get_unassigned_list: more than %d pages", UNASSIGNED_PAGES_MAX);
    return SIYU_EREMOTE;
}

static void resign_run(store *st, wecom_client *wc, const due *d) {
    wecom_app app;
    char why[128] = "";
    store_conn *c = store_reader_acquire(st);
    int rc = c ? tenant_wecom_app(c, d->tenant, &app) : SIYU_EIO;
    int64_t active = c ? active_load(c, d->tenant, d->employee) : 0;
    if (c) store_reader_release(st, c);
    json_t *ext = json_array();
    if (rc != 0)
        snprintf(why, sizeof why, "no WeCom app configured");
    else
        rc = unassigned_read(wc, &app, d, ext, why, sizeof why);
    memset(&app, 0, sizeof app);
    if (rc == 0 && json_array_size(ext) == 0 && active > 0) {
        /* WeCom lists a resigned member's customers some time after the
         * resignation: try again later. */
        snprintf(why, sizeof why, "not yet listed by get_unassigned_list");
        rc = SIYU_EREMOTE;
    }
    if (rc == 0) {
        inherit_resign_apply a = {.tenant_id = d->tenant, .resignation_id = d->id, .ext = ext};
        rc = store_write(st, inherit_resign_apply_step, &a);
        if (rc == 0)
            log_info("inherit: resignation %lld: %lld customers listed, %lld assigned, %lld groups",
                     (long long)d->id, (long long)a.customers, (long long)a.assigned,
                     (long long)a.chats);
        else
            snprintf(why, sizeof why, "recording failed: %s", siyu_strerror(rc));
    }
    json_decref(ext);
    if (rc != 0) {
        log_warn("inherit: resignation %lld: %s", (long long)d->id, why);
        resign_fail f = {d->tenant, d->id, why};
        store_write(st, resign_fail_step, &f);
    }
}

void inherit_tick(store *st, wecom_client *wc) {
    if (!st || !wc) return;
    due d[DUE_MAX];
    int n = due_list(st, d, DUE_MAX);
    for (int i = 0; i < n; i++)
        resign_run(st, wc, &d[i]);
}

/* ---- group transfer answers ------------------------------------------------------ */

typedef struct group_answer {
    int64_t tenant;
    int64_t handover, first;
    const char *state;
    const json_t *answer;
    int errcode;
} group_answer;

static int group_answer_step(store_conn *c, void *arg) {
    group_answer *g = arg;
    bool sent = !strcmp(g->state, "sent");
    if (!sent && strcmp(g->state, "dead") && strcmp(g->state, "cancelled")) return 0;
    json_t *failed = json_object_get(g->answer, "failed_chat_list"), *e;
    size_t i;
    sqlite3_stmt *st;
    json_array_foreach(failed, i, e) {
        st = store_conn_stmt(
            c, "UPDATE inherit_pending SET state='failed', error=?4, updated_at=?5 WHERE "
               "tenant_id=?1 AND kind='group' AND state='assigned' AND outbox_id=(SELECT "
               "outbox_id FROM inherit_pending WHERE tenant_id=?1 AND kind='group' AND "
               "group_id=?2) AND group_id=(SELECT id FROM group_chat WHERE tenant_id=?1 AND "
               "chat_id=?3)");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, g->tenant);
        sqlite3_bind_int64(st, 2, g->first);
        store_bind_text(st, 3, json_string_value(json_object_get(e, "chat_id")));
        store_bind_text(st, 4,
                        wecom_errcode_name((int)json_integer_value(json_object_get(e, "errcode"))));
        sqlite3_bind_int64(st, 5, siyu_now());
        int rc = store_stmt_run(st);
        if (rc != 0) return rc;
    }
    st = store_conn_stmt(c, "UPDATE inherit_pending SET state=?3, error=?4, updated_at=?5 WHERE "
                            "tenant_id=?1 AND kind='group' AND state='assigned' AND "
                            "outbox_id=(SELECT outbox_id FROM inherit_pending WHERE tenant_id=?1 "
                            "AND kind='group' AND group_id=?2)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, g->tenant);
    sqlite3_bind_int64(st, 2, g->first);
    store_bind_text(st, 3, sent ? "done" : "failed");
    store_bind_text(st, 4, sent ? NULL : g->errcode ? wecom_errcode_name(g->errcode) : g->state);
    sqlite3_bind_int64(st, 5, siyu_now());
    return store_stmt_run(st);
}

static void on_group_result(void *arg, int64_t tenant_id, const char *kind, const char *ref,
                            const char *state, const json_t *answer, int errcode) {
    (void)kind;
    siyu_ctx *ctx = arg;
    long long handover, first;
    if (!ref || sscanf(ref, "inherit_groups:%lld:%lld", &handover, &first) != 2) return;
    group_answer g = {tenant_id, handover, first, state ? state : "", answer, errcode};
    int rc = store_write(ctx->st, group_answer_step, &g);
    if (rc != 0) log_error("inherit: recording %s failed: %s", ref, siyu_strerror(rc));
}

void inherit_listen(siyu_ctx *ctx) {
    if (!ctx || !ctx->ob) return;
    outbox_on_result(ctx->ob, INHERIT_GROUP_KIND, on_group_result, ctx);
}

/* ---- the screen ------------------------------------------------------------------ */

enum { C_PENDING, C_PROGRESS, C_DONE, C_REFUSED, C_FAILED, C_N };
static const char *const count_names[C_N] = {"pending", "in_progress", "done", "refused", "failed"};

typedef struct emp_counts {
    int64_t id;
    int64_t v[C_N];
} emp_counts;

static json_t *counts_json(const int64_t *v, int64_t id) {
    json_t *o = json_object();
    int64_t total = 0;
    if (id) json_object_set_new(o, "employee_id", json_integer(id));
    for (int i = 0; i < C_N; i++) {
        json_object_set_new(o, count_names[i], json_integer(v[i]));
        total += v[i];
    }
    json_object_set_new(o, "total", json_integer(total));
    return o;
}

/* Adds the rows of st (employee, pending, in_progress, done, refused,
 * failed) into list, then appends their JSON to out; totals too. */
static int side(sqlite3_stmt *st, json_t *out, int64_t *totals) {
    emp_counts *list = NULL;
    size_t n = 0, cap = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        size_t k = 0;
        while (k < n && list[k].id != id)
            k++;
        if (k == n) {
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                emp_counts *g = realloc(list, cap * sizeof *g);
                if (!g) {
                    free(list);
                    sqlite3_reset(st);
                    return SIYU_ENOMEM;
                }
                list = g;
            }
            list[n++] = (emp_counts){.id = id};
        }
        for (int i = 0; i < C_N; i++) {
            int64_t x = sqlite3_column_int64(st, 1 + i);
            list[k].v[i] += x;
            if (totals) totals[i] += x;
        }
    }
    sqlite3_reset(st);
    for (size_t k = 0; k < n; k++)
        json_array_append_new(out, counts_json(list[k].v, list[k].id));
    free(list);
    return step == SQLITE_DONE ? 0 : store_rc(step);
}

#define TRANSFER_COUNTS                                                                            \
    "sum(state IN ('requested','waiting')), sum(state='done'), sum(state='refused'), "             \
    "sum(state='failed') FROM transfer WHERE tenant_id=?1 AND (?2=0 OR handover_employee_id=?2 "   \
    "OR takeover_employee_id=?2)"
/* A pending customer a later transfer covers is counted by the transfer. */
#define PENDING_COUNTS                                                                             \
    "SELECT p.handover_employee_id, count(*), 0, 0, 0, 0 FROM inherit_pending p WHERE "            \
    "p.tenant_id=?1 AND p.kind='customer' AND p.state='pending' AND (?2=0 OR "                     \
    "p.handover_employee_id=?2) AND NOT EXISTS (SELECT 1 FROM transfer t WHERE "                   \
    "t.tenant_id=p.tenant_id AND t.customer_id=p.customer_id AND "                                 \
    "t.handover_employee_id=p.handover_employee_id AND t.requested_at>=p.created_at) GROUP BY 1"

json_t *inherit_summary_json(store_conn *c, int64_t tenant_id, int64_t employee_id) {
    static const char *const sql[3] = {
        "SELECT handover_employee_id, 0, " TRANSFER_COUNTS " GROUP BY 1 UNION ALL " PENDING_COUNTS
        " ORDER BY 1",
        "SELECT takeover_employee_id, 0, " TRANSFER_COUNTS " GROUP BY 1 ORDER BY 1",
        "SELECT state, count(*) FROM inherit_pending WHERE tenant_id=?1 AND kind='group' AND "
        "(?2=0 OR handover_employee_id=?2 OR takeover_employee_id=?2) GROUP BY 1",
    };
    int64_t totals[C_N] = {0};
    json_t *by_h = json_array(), *by_t = json_array(),
           *groups =
               json_pack("{s:i,s:i,s:i,s:i}", "pending", 0, "assigned", 0, "done", 0, "failed", 0);
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        sqlite3_stmt *st = store_conn_stmt(c, sql[i]);
        if (!st) {
            rc = SIYU_EIO;
            break;
        }
        sqlite3_bind_int64(st, 1, tenant_id);
        sqlite3_bind_int64(st, 2, employee_id);
        if (i < 2) {
            rc = side(st, i ? by_t : by_h, i ? NULL : totals);
            continue;
        }
        while (sqlite3_step(st) == SQLITE_ROW)
            json_object_set_new(groups, (const char *)sqlite3_column_text(st, 0),
                                json_integer(sqlite3_column_int64(st, 1)));
        sqlite3_reset(st);
    }
    if (rc != 0) {
        json_decref(by_h);
        json_decref(by_t);
        json_decref(groups);
        return NULL;
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "totals", counts_json(totals, 0), "by_handover", by_h,
                     "by_takeover", by_t, "groups", groups);
}

int inherit_pending_json(store_conn *c, int64_t tenant_id, int64_t employee_id, const char *kind,
                         int64_t after_id, int limit, json_t **out) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT p.id, p.kind, p.handover_employee_id, p.customer_id, p.group_id, p.state, "
           "p.reason, p.takeover_employee_id, p.transfer_id, p.error, p.resignation_id, "
           "p.created_at, p.updated_at FROM inherit_pending p WHERE p.tenant_id=?1 AND (?2=0 OR "
           "p.handover_employee_id=?2) AND (?3 IS NULL OR p.kind=?3) AND p.id>?4 AND "
           "p.state='pending' ORDER BY p.id LIMIT ?5");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, employee_id);
    store_bind_text(st, 3, kind);
    sqlite3_bind_int64(st, 4, after_id);
    sqlite3_bind_int(st, 5, limit + 1);
    static const char *const names[] = {"id",
                                        "kind",
                                        "handover_employee_id",
                                        "customer_id",
                                        "group_id",
                                        "state",
                                        "reason",
                                        "takeover_employee_id",
                                        "transfer_id",
                                        "error",
                                        "resignation_id",
                                        "created_at",
                                        "updated_at",
                                        NULL};
    json_t *items = json_array();
    int n = 0, step;
    int64_t last = 0;
    bool more = false;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            more = true;
            break;
        }
        json_t *o = json_object();
        for (int i = 0; names[i]; i++) {
            int t = sqlite3_column_type(st, i);
            json_object_set_new(o, names[i],
                                t == SQLITE_NULL ? json_null()
                                : t == SQLITE_INTEGER
                                    ? json_integer(sqlite3_column_int64(st, i))
                                    : json_string((const char *)sqlite3_column_text(st, i)));
        }
        last = sqlite3_column_int64(st, 0);
        json_array_append_new(items, o);
        n++;
    }
    sqlite3_reset(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        json_decref(items);
        return store_rc(step);
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)last);
    *out = json_pack("{s:o,s:o}", "items", items, "next_cursor",
                     more ? json_string(buf) : json_null());
    return 0;
}
