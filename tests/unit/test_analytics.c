/* test_analytics.c — the analytics module reconciles with the store.
 *
 * A seeded random tenant (employees in departments and stores, customers,
 * relationships of every status with times near local midnights, events of
 * several types) plus a second tenant as noise. Checks:
 *   - every daily figure of the tenant series equals a plain SQL query over
 *     the store (adds, each kind of end, reachable customers, messages,
 *     interactions), in the tenant's time zone;
 *   - the breakdowns by employee, department, store and channel add up to the
 *     totals, and each employee's and channel's figures equal SQL;
 *   - an employee's scoped series equals SQL restricted to its relationships
 *     and customers; churn and inactive lists equal SQL;
 *   - after random changes applied the way the writer applies them
 *     (analytics_rels_changed with the customer's new rows, analytics_event_
 *     added), the same checks hold and analytics_validate recounts equal;
 *   - funnels equal a naive per-customer evaluation, cohort matrices equal
 *     SQL (active, purchased, still a contact).
 * SEED=n overrides the seed. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <cmocka.h>
// clang-format on
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/analytics.h"
#include "store/tenant.h"
#include "testlib.h"

#define NOW 1790000000LL /* 2026-09-21 */
#define DAY 86400LL
#define TZ (8 * 3600)
#define NEMP 7
#define NCUST 400

static uint64_t rng_state;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static int64_t rint_(int64_t n) {
    return n > 0 ? (int64_t)(rnd() % (uint64_t)n) : 0;
}

static const char *const statuses[] = {
    "active", "active", "active", "deleted_by_customer", "deleted_by_employee", "transferred"};
static const char *const chans[] = {"qr-store", "qr-event", "ad", "", NULL};
static const char *const types[] = {"message", "view", "share", "order",
                                    "wecom.add_external_contact"};

typedef struct world {
    char *pending; /* statements not yet written (sqlite3_mprintf'd) */
    char *dir;
    store *st;
    sqlite3 *db; /* reference queries */
    int64_t t1, t2;
    int64_t emps[NEMP];
    engine *e;
    analytics *a;
} world;

static int exec_fn(store_conn *c, void *arg) {
    return store_conn_exec(c, (const char *)arg);
}

/* Writes the pending statements in one durable write. */
static void flush(world *w) {
    if (!w->pending) return;
    int rc = store_write(w->st, exec_fn, w->pending);
    if (rc != 0) fail_msg("sql failed (%d): %.200s", rc, w->pending);
    sqlite3_free(w->pending);
    w->pending = NULL;
}

/* Queues a statement (written before the next query). */
static void sqlf(world *w, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    char *all = sqlite3_mprintf("%z%s;\n", w->pending, sql);
    sqlite3_free(sql);
    w->pending = all;
}

static int64_t q1(world *w, const char *fmt, ...) {
    flush(w);
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(w->db, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("prepare: %s: %s", sqlite3_errmsg(w->db), sql);
    int64_t v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    sqlite3_free(sql);
    return v;
}

/* A time near a local midnight now and then, else anywhere in the last 60 days. */
static int64_t rtime(void) {
    int64_t day = (NOW + TZ) / DAY - rint_(60);
    if (rint_(3) == 0) return day * DAY - TZ + (rint_(2) ? -1 - rint_(3) : rint_(3));
    return day * DAY - TZ + rint_(DAY);
}

static void add_customer(world *w, int64_t t) {
    if (rint_(10) == 0)
        sqlf(w, "INSERT INTO customer(tenant_id, created_at, updated_at) VALUES (%lld, 0, 0)",
             (long long)t);
    else
        sqlf(w,
             "INSERT INTO customer(tenant_id, first_added_at, created_at, updated_at) "
             "VALUES (%lld, %lld, 0, 0)",
             (long long)t, (long long)rtime());
}

/* A relationship row of (customer, employee) set to a random state. */
static void put_rel(world *w, int64_t t, int64_t cust, int64_t emp) {
    const char *status = statuses[rint_(6)];
    int64_t added = rtime();
    int64_t ended = added + rint_(20 * DAY);
    bool null_end = rint_(4) == 0;
    const char *ch = chans[rint_(5)];
    char end[32] = "NULL";
    if (strcmp(status, "active") != 0 && !null_end)
        snprintf(end, sizeof end, "%lld", (long long)ended);
    sqlf(w,
         "INSERT INTO relationship(tenant_id, customer_id, employee_id, status, added_at, state, "
         "ended_at, updated_at) VALUES (%lld, %lld, %lld, %Q, %lld, %Q, %s, %lld) "
         "ON CONFLICT(tenant_id, customer_id, employee_id) DO UPDATE SET status = excluded.status, "
         "added_at = excluded.added_at, state = excluded.state, ended_at = excluded.ended_at, "
         "updated_at = excluded.updated_at",
         (long long)t, (long long)cust, (long long)emp, status, (long long)added, ch, end,
         (long long)(strcmp(status, "active") == 0 ? added : added + rint_(30 * DAY) - 3 * DAY));
}

static void add_event(world *w, int64_t t, int64_t cust) {
    const char *ty = types[rint_(5)];
    int64_t ts = rtime();
    sqlf(w,
         "INSERT INTO event(tenant_id, customer_id, type, ts, source) VALUES (%lld, %lld, %Q, "
         "%lld, 'api')",
         (long long)t, (long long)cust, ty, (long long)ts);
}

static int64_t first_cust(world *w, int64_t t) {
    return q1(w, "SELECT min(id) FROM customer WHERE tenant_id = %lld", (long long)t);
}

static void populate(world *w) {
    int64_t ts[2] = {w->t1, w->t2};
    for (int ti = 0; ti < 2; ti++) {
        int64_t t = ts[ti];
        for (int i = 0; i < 3; i++)
            sqlf(w,
                 "INSERT INTO department(tenant_id, name, created_at, updated_at) VALUES (%lld, "
                 "'d%d', 1, 1)",
                 (long long)t, i);
        for (int i = 0; i < 2; i++)
            sqlf(w,
                 "INSERT INTO store(tenant_id, name, created_at, updated_at) VALUES (%lld, 's%d', "
                 "1, 1)",
                 (long long)t, i);
        int64_t d0 = q1(w, "SELECT min(id) FROM department WHERE tenant_id = %lld", (long long)t);
        int64_t s0 = q1(w, "SELECT min(id) FROM store WHERE tenant_id = %lld", (long long)t);
        for (int i = 0; i < NEMP; i++) {
            char dep[32] = "NULL", sto[32] = "NULL";
            if (i % 4 != 3) snprintf(dep, sizeof dep, "%lld", (long long)(d0 + i % 3));
            if (i % 3 != 2) snprintf(sto, sizeof sto, "%lld", (long long)(s0 + i % 2));
            sqlf(w,
                 "INSERT INTO employee(tenant_id, userid, department_id, store_id, created_at, "
                 "updated_at) VALUES (%lld, 'u%d', %s, %s, 1, 1)",
                 (long long)t, i, dep, sto);
            if (ti == 0) w->emps[i] = q1(w, "SELECT max(id) FROM employee");
        }
        int64_t e0 = q1(w, "SELECT min(id) FROM employee WHERE tenant_id = %lld", (long long)t);
        int nc = ti == 0 ? NCUST : 40;
        for (int i = 0; i < nc; i++)
            add_customer(w, t);
        int64_t c0 = first_cust(w, t);
        for (int i = 0; i < nc; i++) {
            int nr = (int)rint_(4);
            for (int k = 0; k < nr; k++)
                put_rel(w, t, c0 + i, e0 + rint_(NEMP));
            int ne = (int)rint_(8);
            for (int k = 0; k < ne; k++)
                add_event(w, t, c0 + i);
        }
    }
}

static void engine_rebuild(world *w) {
    siyu_err err = {0};
    flush(w);
    engine_free(w->e);
    w->e = NULL;
    assert_int_equal(engine_build(w->st, w->t1, &w->e, &err), 0);
}

static void world_open(world *w, uint64_t seed) {
    memset(w, 0, sizeof *w);
    rng_state = seed;
    w->dir = t_tmpdir();
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    w->st = store_open(w->dir, &o, &err);
    assert_non_null(w->st);
    tenant_input in = {.name = "one", .actor = "test"};
    assert_int_equal(store_write(w->st, tenant_create, &in), 0);
    w->t1 = in.id;
    tenant_input in2 = {.name = "two", .actor = "test"};
    assert_int_equal(store_write(w->st, tenant_create, &in2), 0);
    w->t2 = in2.id;
    w->db = t_db_open(w->dir, SQLITE_OPEN_READONLY);
    assert_non_null(w->db);
    populate(w);
    engine_rebuild(w);
    w->a = analytics_create(w->t1, TZ);
    assert_non_null(w->a);
    store_conn *c = store_reader_acquire(w->st);
    assert_int_equal(analytics_build(w->a, c, w->e, &err), 0);
    store_reader_release(w->st, c);
}

static void world_free(world *w) {
    analytics_free(w->a);
    engine_free(w->e);
    sqlite3_close(w->db);
    store_close(w->st);
    t_rmdir(w->dir);
}

/* ---- reference SQL ------------------------------------------------------------ */

#define END_EXPR "max(coalesce(ended_at, added_at), added_at)"
static const char *const end_status[AN__NCOUNT] = {
    NULL, "status = 'deleted_by_customer'", "status = 'deleted_by_employee'",
    "status = 'transferred'",
    "status NOT IN ('active', 'deleted_by_customer', 'deleted_by_employee', 'transferred')"};

/* The counter k of day `day` for relationships matching `where`. */
static int64_t sql_count(world *w, int k, int32_t day, const char *where) {
    if (k == AN_ADDS)
        return q1(w,
                  "SELECT count(*) FROM relationship WHERE tenant_id = %lld AND "
                  "(added_at + %d) / 86400 = %d AND %s",
                  (long long)w->t1, TZ, day, where);
    return q1(w,
              "SELECT count(*) FROM relationship WHERE tenant_id = %lld AND %s AND "
              "(" END_EXPR " + %d) / 86400 = %d AND %s",
              (long long)w->t1, end_status[k], TZ, day, where);
}

static void check_tenant_series(world *w, int32_t d0, int32_t d1) {
    analytics_scope all = {.all = true};
    analytics_series s;
    siyu_err err = {0};
    assert_int_equal(analytics_series_get(w->a, w->e, &all, d0, d1, AN_BY_NONE, true, &s, &err), 0);
    assert_int_equal(s.ngroups, 1);
    for (size_t k = 0; k < s.ndays; k++) {
        const analytics_point *p = &s.g[0].pts[k];
        int32_t day = d0 + (int32_t)k;
        assert_int_equal(p->day, day);
        for (int c = 0; c < AN__NCOUNT; c++)
            if (p->c[c] != sql_count(w, c, day, "1"))
                fail_msg("day %d counter %d: %lld, SQL %lld", day, c, (long long)p->c[c],
                         (long long)sql_count(w, c, day, "1"));
        int64_t reach = q1(w,
                           "SELECT count(DISTINCT customer_id) FROM relationship WHERE "
                           "tenant_id = %lld AND (added_at + %d) / 86400 <= %d AND "
                           "(status = 'active' OR (" END_EXPR " + %d) / 86400 > %d)",
                           (long long)w->t1, TZ, day, TZ, day);
        if (p->reachable != reach)
            fail_msg("day %d reachable %lld, SQL %lld", day, (long long)p->reachable,
                     (long long)reach);
        assert_int_equal(p->messages, q1(w,
                                         "SELECT count(*) FROM event WHERE tenant_id = %lld AND "
                                         "type = 'message' AND (ts + %d) / 86400 = %d",
                                         (long long)w->t1, TZ, day));
        assert_int_equal(p->interactions,
                         q1(w,
                            "SELECT count(*) FROM event WHERE tenant_id = %lld AND type NOT "
                            "LIKE 'wecom.%%' AND (ts + %d) / 86400 = %d",
                            (long long)w->t1, TZ, day));
    }
    /* breakdowns add up to the totals */
    analytics_by bys[] = {AN_BY_EMPLOYEE, AN_BY_DEPARTMENT, AN_BY_STORE, AN_BY_CHANNEL};
    for (size_t b = 0; b < 4; b++) {
        analytics_series g;
        assert_int_equal(analytics_series_get(w->a, w->e, &all, d0, d1, bys[b], true, &g, &err), 0);
        for (size_t k = 0; k < s.ndays; k++) {
            int64_t sum[AN__NCOUNT] = {0};
            for (size_t i = 0; i < g.ngroups; i++)
                for (int c = 0; c < AN__NCOUNT; c++)
                    sum[c] += g.g[i].pts[k].c[c];
            for (int c = 0; c < AN__NCOUNT; c++)
                assert_int_equal(sum[c], s.g[0].pts[k].c[c]);
        }
        /* the range in one point per group: the sums and the last reach */
        analytics_series one;
        assert_int_equal(analytics_series_get(w->a, w->e, &all, d0, d1, bys[b], false, &one, &err),
                         0);
        assert_int_equal(one.ngroups, g.ngroups);
        assert_int_equal(one.ndays, 1);
        for (size_t i = 0; i < g.ngroups; i++) {
            assert_int_equal(one.g[i].id, g.g[i].id);
            assert_int_equal(one.g[i].net, g.g[i].net);
            for (int c = 0; c < AN__NCOUNT; c++) {
                assert_int_equal(one.g[i].sum[c], g.g[i].sum[c]);
                assert_int_equal(one.g[i].pts[0].c[c], g.g[i].sum[c]);
            }
            assert_int_equal(one.g[i].pts[0].reachable, g.g[i].pts[g.ndays - 1].reachable);
        }
        analytics_series_free(&one);
        /* each group against SQL on a few days */
        for (size_t i = 0; i < g.ngroups; i++) {
            char where[256];
            const analytics_group *gr = &g.g[i];
            if (bys[b] == AN_BY_EMPLOYEE)
                snprintf(where, sizeof where, "employee_id = %lld", (long long)gr->id);
            else if (bys[b] == AN_BY_DEPARTMENT)
                snprintf(where, sizeof where,
                         "employee_id IN (SELECT id FROM employee WHERE coalesce(department_id, "
                         "0) = %lld)",
                         (long long)gr->id);
            else if (bys[b] == AN_BY_STORE)
                snprintf(where, sizeof where,
                         "employee_id IN (SELECT id FROM employee WHERE coalesce(store_id, 0) = "
                         "%lld)",
                         (long long)gr->id);
            else
                snprintf(where, sizeof where, "coalesce(state, '') = '%s'",
                         gr->name ? gr->name : "");
            for (size_t k = 0; k < s.ndays; k += 3) {
                int32_t day = d0 + (int32_t)k;
                for (int c = 0; c < AN__NCOUNT; c++)
                    if (gr->pts[k].c[c] != sql_count(w, c, day, where))
                        fail_msg("by %zu group %lld day %d counter %d: %lld, SQL %lld", b,
                                 (long long)gr->id, day, c, (long long)gr->pts[k].c[c],
                                 (long long)sql_count(w, c, day, where));
                int64_t active = q1(w,
                                    "SELECT count(*) FROM relationship WHERE tenant_id = %lld "
                                    "AND %s AND (added_at + %d) / 86400 <= %d AND "
                                    "(status = 'active' OR (" END_EXPR " + %d) / 86400 > %d)",
                                    (long long)w->t1, where, TZ, day, TZ, day);
                if (gr->pts[k].reachable != active)
                    fail_msg("by %zu group %lld day %d active relationships %lld, SQL %lld", b,
                             (long long)gr->id, day, (long long)gr->pts[k].reachable,
                             (long long)active);
            }
        }
        analytics_series_free(&g);
    }
    analytics_series_free(&s);
}

static void check_employee_scope(world *w, int64_t emp, int32_t d0, int32_t d1) {
    const roaring_bitmap_t *mine = engine_members(w->e, EXPR_DIM_EMPLOYEE, emp);
    roaring_bitmap_t *empty = roaring_bitmap_create();
    analytics_scope sc = {.emps = &emp, .n = 1, .customers = mine ? mine : empty};
    analytics_series s;
    siyu_err err = {0};
    assert_int_equal(analytics_series_get(w->a, w->e, &sc, d0, d1, AN_BY_NONE, true, &s, &err), 0);
    char where[64];
    snprintf(where, sizeof where, "employee_id = %lld", (long long)emp);
    for (size_t k = 0; k < s.ndays; k++) {
        int32_t day = d0 + (int32_t)k;
        const analytics_point *p = &s.g[0].pts[k];
        for (int c = 0; c < AN__NCOUNT; c++)
            assert_int_equal(p->c[c], sql_count(w, c, day, where));
        assert_int_equal(p->messages,
                         q1(w,
                            "SELECT count(*) FROM event WHERE tenant_id = %lld AND type = "
                            "'message' AND (ts + %d) / 86400 = %d AND customer_id IN (SELECT "
                            "customer_id FROM relationship WHERE employee_id = %lld AND status = "
                            "'active')",
                            (long long)w->t1, TZ, day, (long long)emp));
    }
    analytics_series_free(&s);
    roaring_bitmap_free(empty);

    /* churn over 7 and 30 days */
    int32_t last = d1;
    for (int days = 7; days <= 30; days += 23) {
        analytics_churn_row *rows;
        size_t n;
        assert_int_equal(analytics_churn(w->a, &sc, last, days, &rows, &n, &err), 0);
        assert_int_equal(n, 1);
        int32_t first = last - days + 1;
        int64_t lost =
            q1(w,
               "SELECT count(*) FROM relationship WHERE tenant_id = %lld AND "
               "employee_id = %lld AND status IN ('deleted_by_customer', "
               "'deleted_by_employee') AND (" END_EXPR " + %d) / 86400 BETWEEN %d AND %d",
               (long long)w->t1, (long long)emp, TZ, first, last);
        int64_t base = q1(w,
                          "SELECT count(*) FROM relationship WHERE tenant_id = %lld AND "
                          "employee_id = %lld AND (((added_at + %d) / 86400 < %d AND (status = "
                          "'active' OR (" END_EXPR " + %d) / 86400 >= %d)) OR (added_at + %d) / "
                          "86400 BETWEEN %d AND %d)",
                          (long long)w->t1, (long long)emp, TZ, first, TZ, first, TZ, first, last);
        assert_int_equal(rows[0].lost_customer + rows[0].lost_employee, lost);
        assert_int_equal(rows[0].base, base);
        free(rows);
    }
    /* inactive for 10 days */
    roaring_bitmap_t *in = analytics_inactive(w->e, emp, NOW, 10);
    assert_non_null(in);
    int64_t want = q1(w,
                      "SELECT count(*) FROM relationship r WHERE r.tenant_id = %lld AND "
                      "r.employee_id = %lld AND r.status = 'active' AND NOT EXISTS (SELECT 1 "
                      "FROM event e WHERE e.tenant_id = r.tenant_id AND e.customer_id = "
                      "r.customer_id AND e.ts >= %lld)",
                      (long long)w->t1, (long long)emp, (long long)(NOW - 10 * DAY));
    assert_int_equal(roaring_bitmap_get_cardinality(in), want);
    roaring_bitmap_free(in);
}

static void check_all(world *w) {
    const char *why = NULL;
    if (!analytics_validate(w->a, &why)) fail_msg("validate: %s", why);
    int32_t today = analytics_day(w->a, NOW);
    for (int32_t day = today - 65; day <= today + 1; day++) {
        const roaring_bitmap_t *act = analytics_day_active(w->a, day);
        int64_t want = q1(w,
                          "SELECT count(DISTINCT customer_id) FROM event WHERE tenant_id = %lld "
                          "AND (ts + %d) / 86400 = %d",
                          (long long)w->t1, TZ, day);
        assert_int_equal(act ? roaring_bitmap_get_cardinality(act) : 0, want);
    }
    check_tenant_series(w, today - 70, today + 25);
    for (int i = 0; i < NEMP; i += 2)
        check_employee_scope(w, w->emps[i], today - 40, today);
}

/* Re-reads the customer's rows and hands them over the way the writer will. */
static void rels_changed(world *w, int64_t cust) {
    flush(w);
    uint32_t d;
    assert_true(engine_dense_id(w->e, cust, &d));
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(w->db,
                                        "SELECT employee_id, status, state, added_at, "
                                        "coalesce(ended_at, added_at) FROM relationship WHERE "
                                        "tenant_id = ? AND customer_id = ?",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(s, 1, w->t1);
    sqlite3_bind_int64(s, 2, cust);
    analytics_rel rows[16];
    char strs[16][2][64];
    size_t n = 0;
    while (sqlite3_step(s) == SQLITE_ROW && n < 16) {
        const char *st = (const char *)sqlite3_column_text(s, 1);
        const char *ch = (const char *)sqlite3_column_text(s, 2);
        snprintf(strs[n][0], 64, "%s", st ? st : "");
        snprintf(strs[n][1], 64, "%s", ch ? ch : "");
        rows[n] = (analytics_rel){.employee_id = sqlite3_column_int64(s, 0),
                                  .status = strs[n][0],
                                  .state = ch ? strs[n][1] : NULL,
                                  .added_at = sqlite3_column_int64(s, 3),
                                  .ended_at = sqlite3_column_int64(s, 4)};
        n++;
    }
    sqlite3_finalize(s);
    assert_int_equal(analytics_rels_changed(w->a, d, rows, n), 0);
}

static void test_reconcile(void **state) {
    (void)state;
    const char *seed = getenv("SEED");
    world w;
    world_open(&w, seed ? strtoull(seed, NULL, 10) : 42);
    check_all(&w);
    /* changes, applied as the writer applies them */
    int64_t c0 = first_cust(&w, w.t1);
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 40; i++) {
            int64_t cust = c0 + rint_(NCUST);
            switch (rint_(4)) {
            case 0:
                sqlf(&w, "DELETE FROM relationship WHERE tenant_id = %lld AND customer_id = %lld",
                     (long long)w.t1, (long long)cust);
                break;
            default:
                put_rel(&w, w.t1, cust, w.emps[rint_(NEMP)]);
            }
            rels_changed(&w, cust);
            int64_t before = q1(&w, "SELECT max(id) FROM event");
            add_event(&w, w.t1, cust);
            int64_t id = q1(&w, "SELECT max(id) FROM event");
            assert_true(id > before);
            const char *ty = NULL;
            int64_t ts = q1(&w, "SELECT ts FROM event WHERE id = %lld", (long long)id);
            for (size_t k = 0; k < 5; k++)
                if (q1(&w, "SELECT type = %Q FROM event WHERE id = %lld", types[k], (long long)id))
                    ty = types[k];
            assert_non_null(ty);
            uint32_t d;
            assert_true(engine_dense_id(w.e, cust, &d));
            assert_int_equal(analytics_event_added(w.a, d, ty, ts), 0);
        }
        engine_rebuild(&w); /* the engine side: only for scoped event counts */
        check_all(&w);
    }
    world_free(&w);
}

/* ---- funnels ------------------------------------------------------------------------ */

/* Naive: per customer, the greedy ordered match over its events from SQL. */
static void check_funnel(world *w, const char *const *steps, size_t nsteps, int64_t from,
                         int64_t to, int64_t window) {
    analytics_funnel_def def = {.nsteps = nsteps, .from = from, .to = to, .window = window};
    for (size_t k = 0; k < nsteps; k++)
        def.steps[k] = steps[k];
    analytics_funnel f;
    siyu_err err = {0};
    assert_int_equal(analytics_funnel_run(w->e, &def, &f, &err), 0);
    uint64_t count[ANALYTICS_FUNNEL_MAX] = {0};
    int64_t deltas[ANALYTICS_FUNNEL_MAX][NCUST];
    size_t nd[ANALYTICS_FUNNEL_MAX] = {0};
    for (uint32_t d = 0; d < engine_customers(w->e); d++) {
        int64_t cust = engine_customer_id(w->e, d);
        int64_t t0;
        if (strcmp(steps[0], "add") == 0) {
            t0 = q1(w,
                    "SELECT coalesce((SELECT first_added_at FROM customer WHERE id = %lld AND "
                    "first_added_at BETWEEN %lld AND %lld), -1)",
                    (long long)cust, (long long)from, (long long)to);
        } else {
            t0 = q1(w,
                    "SELECT coalesce(min(ts), -1) FROM event WHERE customer_id = %lld AND type = "
                    "%Q AND ts BETWEEN %lld AND %lld",
                    (long long)cust, steps[0], (long long)from, (long long)to);
        }
        if (t0 < 0) continue;
        bool in0 = roaring_bitmap_contains(f.reached[0], d);
        assert_true(in0);
        count[0]++;
        int64_t tp = t0;
        for (size_t k = 1; k < nsteps; k++) {
            int64_t t = q1(w,
                           "SELECT coalesce(min(ts), -1) FROM event WHERE customer_id = %lld AND "
                           "type = %Q AND ts BETWEEN %lld AND %lld",
                           (long long)cust, steps[k], (long long)tp, (long long)(t0 + window));
            if (t < 0) break;
            assert_true(roaring_bitmap_contains(f.reached[k], d));
            count[k]++;
            deltas[k][nd[k]++] = t - tp;
            tp = t;
        }
    }
    for (size_t k = 0; k < nsteps; k++) {
        assert_int_equal(f.count[k], count[k]);
        assert_int_equal(roaring_bitmap_get_cardinality(f.reached[k]), count[k]);
        if (k == 0) continue;
        /* lower median */
        int64_t *v = deltas[k];
        for (size_t i = 1; i < nd[k]; i++)
            for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
                int64_t t = v[j];
                v[j] = v[j - 1];
                v[j - 1] = t;
            }
        assert_int_equal(f.median_s[k], nd[k] ? v[(nd[k] - 1) / 2] : -1);
        roaring_bitmap_t *drop = analytics_funnel_dropped(&f, k);
        assert_int_equal(roaring_bitmap_get_cardinality(drop), count[k - 1] - count[k]);
        roaring_bitmap_free(drop);
    }
    analytics_funnel_free(&f);
}

static void test_funnel(void **state) {
    (void)state;
    world w;
    world_open(&w, 7);
    const char *a[] = {"add", "view", "share", "order"};
    check_funnel(&w, a, 4, NOW - 50 * DAY, NOW, 7 * DAY);
    check_funnel(&w, a, 4, NOW - 60 * DAY, NOW, 30 * DAY);
    const char *b[] = {"message", "view", "nope"};
    check_funnel(&w, b, 3, NOW - 40 * DAY, NOW - 5 * DAY, 10 * DAY);
    const char *c[] = {"view", "view"};
    check_funnel(&w, c, 2, NOW - 60 * DAY, NOW, 60 * DAY);
    /* refusals name the parameter */
    analytics_funnel_def bad = {.nsteps = 2, .steps = {"view", "add"}, .window = 1, .to = 1};
    analytics_funnel f;
    siyu_err err = {0};
    assert_int_equal(analytics_funnel_run(w.e, &bad, &f, &err), SIYU_EINVAL);
    assert_string_equal(err.field, "steps");
    bad.steps[1] = "order";
    bad.window = 0;
    assert_int_equal(analytics_funnel_run(w.e, &bad, &f, &err), SIYU_EINVAL);
    assert_string_equal(err.field, "window");
    world_free(&w);
}

/* ---- cohorts ----------------------------------------------------------------------- */

/* First day of the period after the one starting at `start`. */
static int32_t next_start(analytics_period per, int32_t start) {
    if (per == AN_WEEK) return start + 7;
    char buf[11];
    int32_t d;
    analytics_day_format(start + 31, buf);
    buf[8] = '0', buf[9] = '1';
    assert_int_equal(analytics_day_parse(buf, &d), 0);
    return d;
}

static void check_cohort(world *w, analytics_period per, size_t n, analytics_retention ret) {
    analytics_cohort co;
    siyu_err err = {0};
    if (ret != AN_RET_CONTACT) { /* the engine-only path gives the same matrix */
        analytics_cohort co2;
        assert_int_equal(analytics_cohort_run(NULL, w->e, NULL, per, n, NOW, ret, &co2, &err), 0);
        assert_int_equal(analytics_cohort_run(w->a, w->e, NULL, per, n, NOW, ret, &co, &err), 0);
        assert_memory_equal(co.cell, co2.cell, n * n * sizeof *co.cell);
        assert_memory_equal(co.size, co2.size, n * sizeof *co.size);
        analytics_cohort_free(&co);
        analytics_cohort_free(&co2);
    }
    assert_int_equal(analytics_cohort_run(w->a, w->e, NULL, per, n, NOW, ret, &co, &err), 0);
    for (size_t c = 0; c < n; c++) {
        int64_t lo = (int64_t)co.start[c] * DAY - TZ;
        int32_t next = next_start(per, co.start[c]);
        if (c + 1 < n) assert_int_equal(next, co.start[c + 1]);
        int64_t hi = (int64_t)next * DAY - TZ - 1;
        if (per == AN_WEEK) assert_int_equal(((co.start[c] + 3) % 7 + 7) % 7, 0);
        assert_int_equal(co.size[c], q1(w,
                                        "SELECT count(*) FROM customer WHERE tenant_id = %lld "
                                        "AND first_added_at BETWEEN %lld AND %lld",
                                        (long long)w->t1, (long long)lo, (long long)hi));
        for (size_t p = c; p < n; p++) {
            int64_t plo = (int64_t)co.start[p] * DAY - TZ;
            int32_t pnext = next_start(per, co.start[p]);
            int64_t phi = (int64_t)pnext * DAY - TZ - 1;
            int64_t want;
            if (ret == AN_RET_CONTACT)
                want = q1(w,
                          "SELECT count(DISTINCT c.id) FROM customer c JOIN relationship r ON "
                          "r.customer_id = c.id WHERE c.tenant_id = %lld AND c.first_added_at "
                          "BETWEEN %lld AND %lld AND (r.added_at + %d) / 86400 <= %d AND "
                          "(r.status = 'active' OR (max(coalesce(r.ended_at, r.added_at), "
                          "r.added_at) + %d) / 86400 > %d)",
                          (long long)w->t1, (long long)lo, (long long)hi, TZ, pnext - 1, TZ,
                          pnext - 1);
            else
                want = q1(w,
                          "SELECT count(DISTINCT c.id) FROM customer c JOIN event e ON "
                          "e.customer_id = c.id WHERE c.tenant_id = %lld AND c.first_added_at "
                          "BETWEEN %lld AND %lld AND e.ts BETWEEN %lld AND %lld %s",
                          (long long)w->t1, (long long)lo, (long long)hi, (long long)plo,
                          (long long)phi, ret == AN_RET_PURCHASED ? "AND e.type = 'order'" : "");
            if ((int64_t)co.cell[c * n + (p - c)] != want)
                fail_msg("cohort %zu period %zu: %llu, SQL %lld", c, p,
                         (unsigned long long)co.cell[c * n + (p - c)], (long long)want);
        }
    }
    analytics_cohort_free(&co);
}

static void test_cohort(void **state) {
    (void)state;
    world w;
    world_open(&w, 11);
    check_cohort(&w, AN_WEEK, 10, AN_RET_ACTIVE);
    check_cohort(&w, AN_WEEK, 10, AN_RET_PURCHASED);
    check_cohort(&w, AN_WEEK, 10, AN_RET_CONTACT);
    check_cohort(&w, AN_MONTH, 3, AN_RET_ACTIVE);
    check_cohort(&w, AN_MONTH, 3, AN_RET_CONTACT);
    world_free(&w);
}

/* ---- KPIs ------------------------------------------------------------------------------ */

static double sql_ratio(int64_t num, int64_t den) {
    return den > 0 ? (double)num / (double)den : -1;
}

static void check_kpis(world *w, analytics_period per, size_t n, size_t trailing) {
    analytics_kpis k;
    analytics_scope all = {.all = true};
    siyu_err err = {0};
    double margin = 0.2;
    assert_int_equal(
        analytics_kpis_run(w->a, w->e, &all, per, n + trailing, 0, margin, NOW, &k, &err), 0);
    analytics_kpis kb;
    assert_int_equal(analytics_kpis_run(w->a, w->e, &all, per, n, trailing, margin, NOW, &kb, &err),
                     0);
    for (size_t p = 0; p < n + trailing; p++) {
        int32_t d0 = k.start[p];
        int32_t d1 = p + 1 < n + trailing ? k.start[p + 1] - 1
                                          : analytics_day(w->a, NOW) + (per == AN_DAY ? 0 : 40);
        if (p + 1 == n + trailing) { /* the current period's last day */
            if (per == AN_DAY) d1 = d0;
            if (per == AN_WEEK) d1 = d0 + 6;
        }
        const double *v = k.v + p * AN_KPI__COUNT;
        int64_t lo = (int64_t)d0 * DAY - TZ, hi = (int64_t)(d1 + 1) * DAY - TZ - 1;
        int64_t adds = q1(w,
                          "SELECT count(*) FROM relationship WHERE tenant_id = %lld AND "
                          "(added_at + %d) / 86400 BETWEEN %d AND %d",
                          (long long)w->t1, TZ, d0, d1);
        int64_t lost = q1(w,
                          "SELECT count(*) FROM relationship WHERE tenant_id = %lld AND status IN "
                          "('deleted_by_customer', 'deleted_by_employee') AND (" END_EXPR
                          " + %d) / 86400 BETWEEN %d AND %d",
                          (long long)w->t1, TZ, d0, d1);
        int64_t start = q1(w,
                           "SELECT count(DISTINCT customer_id) FROM relationship WHERE "
                           "tenant_id = %lld AND (added_at + %d) / 86400 <= %d AND (status = "
                           "'active' OR (" END_EXPR " + %d) / 86400 > %d)",
                           (long long)w->t1, TZ, d0 - 1, TZ, d0 - 1);
        int64_t inter = q1(w,
                           "SELECT count(DISTINCT customer_id) FROM event WHERE tenant_id = %lld "
                           "AND type NOT LIKE 'wecom.%%' AND ts BETWEEN %lld AND %lld",
                           (long long)w->t1, (long long)lo, (long long)hi);
        int64_t first = q1(w,
                           "SELECT count(*) FROM customer WHERE tenant_id = %lld AND "
                           "first_added_at BETWEEN %lld AND %lld",
                           (long long)w->t1, (long long)lo, (long long)hi);
        int64_t served = q1(w,
                            "SELECT count(*) FROM customer c WHERE tenant_id = %lld AND "
                            "first_added_at BETWEEN %lld AND %lld AND EXISTS (SELECT 1 FROM event "
                            "e WHERE e.customer_id = c.id AND e.type = 'message' AND e.ts BETWEEN "
                            "c.first_added_at AND c.first_added_at + 30 * 86400)",
                            (long long)w->t1, (long long)lo, (long long)hi);
        int64_t bought = q1(w,
                            "SELECT count(*) FROM customer c WHERE tenant_id = %lld AND "
                            "first_added_at BETWEEN %lld AND %lld AND EXISTS (SELECT 1 FROM event "
                            "e WHERE e.customer_id = c.id AND e.type = 'order' AND e.ts BETWEEN "
                            "c.first_added_at AND c.first_added_at + 30 * 86400)",
                            (long long)w->t1, (long long)lo, (long long)hi);
        assert_true(v[AN_KPI_ADDS] == (double)adds);
        assert_true(v[AN_KPI_LOST] == (double)lost);
        assert_true(v[AN_KPI_FAN_ADD_RATE] == sql_ratio(adds, start));
        assert_true(v[AN_KPI_FAN_DEL_RATE] == sql_ratio(lost, start));
        assert_true(v[AN_KPI_INTERACTION_RATE] == sql_ratio(inter, start));
        assert_true(v[AN_KPI_FIRST_ADDED] == (double)first);
        assert_true(v[AN_KPI_SERVICE_RATE] == sql_ratio(served, first));
        assert_true(v[AN_KPI_MONETIZATION_RATE] == sql_ratio(bought, first));
    }
    /* baselines: the median of the trailing values; alerts by the margin */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(kb.start[i], k.start[i + trailing]);
        for (int q = 0; q < AN_KPI__COUNT; q++) {
            double x = kb.v[i * AN_KPI__COUNT + q], t[64];
            assert_true(x == k.v[(i + trailing) * AN_KPI__COUNT + q]);
            bool ok = true;
            for (size_t j = 0; j < trailing; j++) {
                t[j] = k.v[(i + j) * AN_KPI__COUNT + q];
                if (t[j] < 0 && q != AN_KPI_NET) ok = false;
            }
            double b = -1;
            if (ok) {
                for (size_t a = 1; a < trailing; a++)
                    for (size_t c = a; c > 0 && t[c - 1] > t[c]; c--) {
                        double y = t[c];
                        t[c] = t[c - 1];
                        t[c - 1] = y;
                    }
                b = trailing % 2 ? t[trailing / 2] : (t[trailing / 2 - 1] + t[trailing / 2]) / 2;
            }
            assert_true(kb.baseline[i * AN_KPI__COUNT + q] == b);
            bool up = q == AN_KPI_LOST || q == AN_KPI_FAN_DEL_RATE;
            bool alert = ok && b > 0 && (x >= 0 || q == AN_KPI_NET) &&
                         (up ? x > b * (1 + margin) : x < b * (1 - margin));
            assert_int_equal(kb.alert[i * AN_KPI__COUNT + q], alert);
        }
    }
    analytics_kpis_free(&k);
    analytics_kpis_free(&kb);
}

static void test_kpi(void **state) {
    (void)state;
    world w;
    world_open(&w, 31);
    check_kpis(&w, AN_DAY, 12, 4);
    check_kpis(&w, AN_WEEK, 4, 3);
    analytics_kpis k;
    analytics_scope all = {.all = true};
    siyu_err err = {0};
    assert_int_equal(analytics_kpis_run(w.a, w.e, &all, AN_DAY, 5, 4, 1.5, NOW, &k, &err),
                     SIYU_EINVAL);
    assert_string_equal(err.field, "margin");
    world_free(&w);
}

/* ---- spend and CAC ---------------------------------------------------------------------- */

static void test_cac(void **state) {
    (void)state;
    world w;
    world_open(&w, 47);
    int32_t today = analytics_day(w.a, NOW);
    char d1[11], d2[11], d3[11];
    analytics_day_format(today - 3, d1);
    analytics_day_format(today - 2, d2);
    analytics_day_format(today - 40, d3);
    struct {
        const char *ch, *date;
        int64_t cents;
    } puts_[] = {{"qr-store", d1, 10000},
                 {"qr-store", d2, 5000},
                 {"qr-store", d2, 7000},
                 {"nowhere", d1, 999},
                 {"ad", d3, 123456}};
    for (size_t i = 0; i < 5; i++) {
        analytics_spend_put_arg p = {.tenant_id = w.t1,
                                     .channel = puts_[i].ch,
                                     .date = puts_[i].date,
                                     .amount_cents = puts_[i].cents,
                                     .actor = "test"};
        assert_int_equal(store_write(w.st, analytics_spend_put, &p), 0);
    }
    analytics_spend_put_arg bad = {
        .tenant_id = w.t1, .channel = "x", .date = "2026-02-30", .amount_cents = 1};
    assert_int_equal(store_write(w.st, analytics_spend_put, &bad), SIYU_EINVAL);
    assert_string_equal(bad.err.field, "date");
    bad.date = d1;
    bad.amount_cents = -1;
    assert_int_equal(store_write(w.st, analytics_spend_put, &bad), SIYU_EINVAL);
    assert_string_equal(bad.err.field, "amount");
    bad.channel = "";
    assert_int_equal(store_write(w.st, analytics_spend_put, &bad), SIYU_EINVAL);
    assert_string_equal(bad.err.field, "channel");

    analytics_cac_row *rows;
    size_t n;
    siyu_err err = {0};
    store_conn *c = store_reader_acquire(w.st);
    assert_int_equal(analytics_cac(w.a, c, today - 29, today, &rows, &n, &err), 0);
    store_reader_release(w.st, c);
    bool seen_nowhere = false, seen_qr = false;
    for (size_t i = 0; i < n; i++) {
        const analytics_cac_row *r = &rows[i];
        int64_t adds = q1(&w,
                          "SELECT count(*) FROM relationship WHERE tenant_id = %lld AND "
                          "coalesce(state, '') = %Q AND (added_at + %d) / 86400 BETWEEN %d AND %d",
                          (long long)w.t1, r->channel ? r->channel : "", TZ, today - 29, today);
        assert_int_equal(r->adds, adds);
        if (r->channel && !strcmp(r->channel, "qr-store")) {
            seen_qr = true;
            assert_int_equal(r->spend_cents,
                             17000); /* the second figure of d2 replaced the first */
            assert_int_equal(r->cac_cents, adds ? 17000 / adds : -1);
        } else if (r->channel && !strcmp(r->channel, "nowhere")) {
            seen_nowhere = true;
            assert_int_equal(r->spend_cents, 999);
            assert_int_equal(r->cac_cents, -1);
        } else {
            assert_int_equal(r->spend_cents, 0); /* "ad" spent outside the range */
        }
    }
    assert_true(seen_nowhere && seen_qr);
    analytics_cac_free(rows, n);
    assert_int_equal(q1(&w, "SELECT count(*) FROM audit_log WHERE action = 'spend.put'"), 5);
    world_free(&w);
}

/* ---- RFM ------------------------------------------------------------------------------- */

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void naive_quintiles(int64_t *v, size_t n, int64_t t[4]) {
    int64_t *c = malloc(n * sizeof *c);
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp64);
    for (int k = 0; k < 4; k++)
        t[k] = c[(n * (size_t)(k + 1)) / 5];
    free(c);
}

static int naive_score(int64_t x, const int64_t t[4]) {
    int s = 1;
    for (int k = 0; k < 4; k++)
        if (x >= t[k]) s = k + 2;
    return s;
}

static void test_rfm(void **state) {
    (void)state;
    world w;
    world_open(&w, 23);
    analytics_rfm r;
    siyu_err err = {0};
    analytics_rfm_def def = {.now = NOW, .freq_min = 2, .aov_min_cents = 30000};
    assert_int_equal(analytics_rfm_run(w.e, &def, &r, &err), 0);
    sqlite3_stmt *s;
    assert_int_equal(
        sqlite3_prepare_v2(w.db,
                           "SELECT customer_id, max(ts), count(*), sum(coalesce(CAST(round("
                           "json_extract(props, '$.amount') * 100) AS INTEGER), 0)) FROM event "
                           "WHERE tenant_id = ? AND type = 'order' GROUP BY customer_id",
                           -1, &s, NULL),
        SQLITE_OK);
    sqlite3_bind_int64(s, 1, w.t1);
    int64_t id[NCUST], rv[NCUST], fv[NCUST], mv[NCUST];
    size_t n = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        id[n] = sqlite3_column_int64(s, 0);
        int64_t days = (NOW - sqlite3_column_int64(s, 1)) / DAY;
        rv[n] = -(days < 0 ? 0 : days);
        fv[n] = sqlite3_column_int64(s, 2);
        mv[n] = sqlite3_column_int64(s, 3);
        n++;
    }
    sqlite3_finalize(s);
    assert_true(n > 20);
    assert_int_equal(r.buyers, n);
    int64_t rt[4], ft[4], mt[4];
    naive_quintiles(rv, n, rt), naive_quintiles(fv, n, ft), naive_quintiles(mv, n, mt);
    uint64_t cells[5][5][5] = {{{0}}}, quad[4] = {0};
    for (size_t i = 0; i < n; i++) {
        cells[naive_score(rv[i], rt) - 1][naive_score(fv[i], ft) - 1][naive_score(mv[i], mt) - 1]++;
        int q = (fv[i] >= 2 ? 2 : 0) + (mv[i] / fv[i] >= 30000 ? 1 : 0);
        quad[q]++;
        uint32_t d;
        assert_true(engine_dense_id(w.e, id[i], &d));
        assert_true(roaring_bitmap_contains(r.quad[q], d));
    }
    for (int k = 0; k < 4; k++) {
        assert_int_equal(r.r_days[k], -rt[k]);
        assert_int_equal(r.f[k], ft[k]);
        assert_int_equal(r.m_cents[k], mt[k]);
        assert_int_equal(r.quad_count[k], quad[k]);
    }
    assert_memory_equal(r.cells, cells, sizeof cells);
    analytics_rfm_free(&r);
    /* median thresholds when none are given; a scope narrows the buyers */
    analytics_rfm_def med = {.now = NOW,
                             .within = engine_members(w.e, EXPR_DIM_EMPLOYEE, w.emps[0])};
    assert_int_equal(analytics_rfm_run(w.e, &med, &r, &err), 0);
    assert_true(r.freq_min >= 1);
    assert_int_equal(r.buyers, q1(&w,
                                  "SELECT count(DISTINCT e.customer_id) FROM event e WHERE "
                                  "e.tenant_id = %lld AND e.type = 'order' AND e.customer_id IN "
                                  "(SELECT customer_id FROM relationship WHERE employee_id = %lld "
                                  "AND status = 'active')",
                                  (long long)w.t1, (long long)w.emps[0]));
    analytics_rfm_free(&r);
    world_free(&w);
}

static void test_days(void **state) {
    (void)state;
    analytics *a = analytics_create(1, TZ);
    /* 2026-01-01 00:00 +08:00 is 2025-12-31 16:00 UTC */
    int32_t d;
    assert_int_equal(analytics_day_parse("2026-01-01", &d), 0);
    assert_int_equal(analytics_day_start(a, d), 1767196800LL);
    assert_int_equal(analytics_day(a, 1767196800LL), d);
    assert_int_equal(analytics_day(a, 1767196799LL), d - 1);
    char buf[11];
    analytics_day_format(d, buf);
    assert_string_equal(buf, "2026-01-01");
    assert_int_equal(analytics_day_parse("2026-02-29", &d), SIYU_EINVAL);
    assert_int_equal(analytics_day_parse("2024-02-29", &d), 0);
    assert_int_equal(analytics_day_parse("2024-2-29", &d), SIYU_EINVAL);
    assert_null(analytics_create(1, 15 * 3600));
    analytics_free(a);
    analytics_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_days),   cmocka_unit_test(test_reconcile),
        cmocka_unit_test(test_funnel), cmocka_unit_test(test_cohort),
        cmocka_unit_test(test_rfm),    cmocka_unit_test(test_kpi),
        cmocka_unit_test(test_cac),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
