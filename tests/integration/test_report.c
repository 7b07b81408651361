/* test_report.c — `siyu report` on a data directory: each view runs, its
 * --json figures equal plain SQL over the same store, and bad arguments are
 * refused naming the flag (exit 2). */
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

#include "testlib.h"

/* 2026-03-10 00:00 Asia/Shanghai */
#define DAY0 1773072000LL
#define NOW_S "1773300000"

static char *dir;

/* Tenant A: employees 100 (dept 10), 101 (dept 10), 102; customers 1000..1011
 * added on three local days (one just before a local midnight), some lost,
 * messages and orders. */
static const char fixture[] =
    "INSERT INTO department(id, tenant_id, name, created_at, updated_at) VALUES "
    "(10, 1, 'East', 0, 0);"
    "INSERT INTO employee(id, tenant_id, userid, name, department_id, created_at, updated_at) "
    "VALUES (100, 1, 'a', 'Ann', 10, 0, 0), (101, 1, 'b', 'Bo', 10, 0, 0), "
    "(102, 1, 'c', 'Cy', NULL, 0, 0), (200, 2, 'a', 'B-Ann', NULL, 0, 0);"
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 11) "
    "INSERT INTO customer(id, tenant_id, first_added_at, created_at, updated_at) "
    "SELECT 1000 + i, 1, 1773072000 + (i % 3) * 86400 + 3600 * i - 1, 0, 0 FROM n;"
    "INSERT INTO customer(id, tenant_id, first_added_at, created_at, updated_at) VALUES "
    "(1500, 2, 1773072000, 0, 0);"
    "INSERT INTO relationship(tenant_id, customer_id, employee_id, status, added_at, state, "
    "ended_at, updated_at) SELECT 1, id, 100 + (id % 3), CASE WHEN id % 4 = 0 THEN "
    "'deleted_by_customer' WHEN id % 5 = 0 THEN 'deleted_by_employee' ELSE 'active' END, "
    "first_added_at, CASE WHEN id % 2 THEN 'qr' END, CASE WHEN id % 4 = 0 OR id % 5 = 0 THEN "
    "first_added_at + 86400 END, first_added_at FROM customer WHERE tenant_id = 1;"
    "INSERT INTO relationship(tenant_id, customer_id, employee_id, status, added_at, updated_at) "
    "VALUES (2, 1500, 200, 'active', 1773072000, 0);"
    "INSERT INTO event(tenant_id, customer_id, type, ts, source, props) SELECT 1, id, "
    "'message', first_added_at + 7200, 'api', NULL FROM customer WHERE tenant_id = 1 AND id % 2 "
    "= 0;"
    "INSERT INTO event(tenant_id, customer_id, type, ts, source, props) SELECT 1, id, 'order', "
    "first_added_at + 9000, 'api', '{\"amount\":12.5}' FROM customer WHERE tenant_id = 1 AND "
    "id % 3 = 0;"
    "INSERT INTO group_chat(id, tenant_id, chat_id, status, created_at, updated_at) VALUES "
    "(500, 1, 'g1', 'active', 0, 0);"
    "INSERT INTO group_member(tenant_id, group_id, member_id, customer_id, status, joined_at, "
    "left_at) VALUES (1, 500, 'x1', 1001, 'in', 1773072000 + 100, NULL), (1, 500, 'x2', 1002, "
    "'left', 1773072000 + 200, 1773072000 + 86400 + 5);"
    "INSERT INTO acquisition_spend(tenant_id, channel, day, amount_cents, updated_at) VALUES "
    "(1, 'qr', '2026-03-10', 6000, 0), (1, 'qr', '2026-03-01', 99, 0);"
    "INSERT INTO event(tenant_id, customer_id, type, ts, source, props) VALUES (1, 1003, "
    "'view', 1773072000, 'api', '{\"touchpoint\":\"mini_program\"}');";

static int setup(void **state) {
    (void)state;
    dir = t_tmpdir();
    return t_fixture_load(dir, fixture);
}

static int teardown(void **state) {
    (void)state;
    t_rmdir(dir);
    return 0;
}

static json_t *report(const char *const *extra) {
    const char *args[32] = {"report"};
    int n = 1;
    for (; extra[n - 1]; n++)
        args[n] = extra[n - 1];
    args[n++] = "--data";
    args[n++] = dir;
    args[n++] = "--tenant";
    args[n++] = "1";
    args[n++] = "--now";
    args[n++] = NOW_S;
    args[n++] = "--json";
    args[n] = NULL;
    char *out = NULL;
    assert_int_equal(t_siyu(&out, args), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    if (!j) fail_msg("not JSON: %s", out);
    free(out);
    return j;
}

static void test_dashboard(void **state) {
    (void)state;
    json_t *j = report(
        (const char *const[]){"dashboard", "--from", "2026-03-09", "--to", "2026-03-13", NULL});
    json_t *days = json_object_get(j, "days");
    assert_int_equal(json_array_size(days), 5);
    for (size_t k = 0; k < 5; k++) {
        json_t *d = json_array_get(days, k);
        long long day = (DAY0 + 28800) / 86400 - 1 + (long long)k;
        assert_int_equal(json_integer_value(json_object_get(d, "adds")),
                         t_sql_int(dir,
                                   "SELECT count(*) FROM relationship WHERE tenant_id = 1 AND "
                                   "(added_at + 28800) / 86400 = %lld",
                                   day));
        assert_int_equal(json_integer_value(json_object_get(d, "lost_by_customer")),
                         t_sql_int(dir,
                                   "SELECT count(*) FROM relationship WHERE tenant_id = 1 AND "
                                   "status = 'deleted_by_customer' AND (ended_at + 28800) / "
                                   "86400 = %lld",
                                   day));
        assert_int_equal(json_integer_value(json_object_get(d, "reachable")),
                         t_sql_int(dir,
                                   "SELECT count(DISTINCT customer_id) FROM relationship WHERE "
                                   "tenant_id = 1 AND (added_at + 28800) / 86400 <= %lld AND "
                                   "(status = 'active' OR (ended_at + 28800) / 86400 > %lld)",
                                   day, day));
        assert_int_equal(json_integer_value(json_object_get(d, "messages")),
                         t_sql_int(dir,
                                   "SELECT count(*) FROM event WHERE tenant_id = 1 AND type = "
                                   "'message' AND (ts + 28800) / 86400 = %lld",
                                   day));
    }
    /* group joins on 03-10 (two in tenant A), a quit on 03-11 */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(days, 1), "group_joins")),
                     2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(days, 2), "group_quits")),
                     1);
    json_decref(j);
    j = report((const char *const[]){"assets", NULL});
    json_t *tp = json_object_get(j, "touchpoints");
    long long contact = -1, group = -1, mini = -1;
    for (size_t i = 0; i < json_array_size(tp); i++) {
        json_t *o = json_array_get(tp, i);
        const char *name = json_string_value(json_object_get(o, "touchpoint"));
        long long n = json_integer_value(json_object_get(o, "customers"));
        if (!strcmp(name, "wecom_contact")) contact = n;
        if (!strcmp(name, "wecom_group")) group = n;
        if (!strcmp(name, "mini_program")) mini = n;
    }
    assert_int_equal(contact, t_sql_int(dir, "SELECT count(DISTINCT customer_id) FROM "
                                             "relationship WHERE tenant_id = 1 AND status = "
                                             "'active'"));
    assert_int_equal(group, 1);
    assert_int_equal(mini, 1);
    assert_int_equal(json_integer_value(json_object_get(j, "total")),
                     t_sql_int(dir,
                               "SELECT count(*) FROM (SELECT customer_id FROM relationship "
                               "WHERE tenant_id = 1 AND status = 'active' UNION SELECT "
                               "customer_id FROM event WHERE tenant_id = 1 UNION SELECT 1001)"));
    json_decref(j);
    /* by department: East holds employees 100 and 101; (none) holds 102 */
    j = report((const char *const[]){"dashboard", "--from", "2026-03-09", "--to", "2026-03-13",
                                     "--by", "department", NULL});
    json_t *g = json_object_get(j, "groups");
    long long adds = 0;
    for (size_t i = 0; i < json_array_size(g); i++)
        adds += json_integer_value(json_object_get(json_array_get(g, i), "adds"));
    assert_int_equal(adds, 12);
    json_decref(j);
}

static void test_views(void **state) {
    (void)state;
    json_t *j =
        report((const char *const[]){"funnel", "--steps", "add,message,order", "--from",
                                     "2026-03-01", "--to", "2026-03-12", "--window", "1", NULL});
    json_t *st = json_object_get(j, "steps");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(st, 0), "customers")), 12);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(st, 1), "customers")), 6);
    /* message on even ids, order on multiples of 3: both on 0 mod 6 */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(st, 2), "customers")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(st, 1), "median_seconds")),
                     7200);
    json_decref(j);
    /* CAC: 6000 cents over the 6 adds of channel qr (odd ids) from 03-05 */
    j = report((const char *const[]){"cac", "--from", "2026-03-05", "--to", "2026-03-12", NULL});
    json_t *ch = json_object_get(j, "channels");
    bool qr = false;
    for (size_t i = 0; i < json_array_size(ch); i++) {
        json_t *o = json_array_get(ch, i);
        if (!json_is_string(json_object_get(o, "channel"))) continue;
        qr = true;
        assert_int_equal(json_integer_value(json_object_get(o, "spend_cents")), 6000);
        assert_int_equal(json_integer_value(json_object_get(o, "adds")), 6);
        assert_int_equal(json_integer_value(json_object_get(o, "cac_cents")), 1000);
    }
    assert_true(qr);
    json_decref(j);
    j = report((const char *const[]){"rfm", NULL});
    assert_int_equal(json_integer_value(json_object_get(j, "buyers")), 4);
    json_decref(j);
    j = report((const char *const[]){"cohort", "--periods", "2", "--retention", "contact", NULL});
    json_t *c = json_object_get(j, "cohorts");
    assert_int_equal(json_array_size(c), 2);
    json_decref(j);
    j = report((const char *const[]){"churn", "--days", "7", "--to", "2026-03-13", NULL});
    assert_int_equal(json_array_size(json_object_get(j, "employees")), 3);
    json_decref(j);
    /* the week of now (2026-03-09 .. 15) holds every add */
    j = report((const char *const[]){"kpi", "--period", "week", "--periods", "1", "--trailing", "2",
                                     NULL});
    json_t *p = json_array_get(json_object_get(j, "periods"), 0);
    assert_true(json_real_value(json_object_get(p, "adds")) == 12.0);
    assert_true(json_real_value(json_object_get(p, "customers_first_added")) == 12.0);
    /* nothing before: no baseline, no alert */
    assert_int_equal(json_array_size(json_object_get(p, "alerts")), 0);
    json_decref(j);
}

static void test_refusals(void **state) {
    (void)state;
    const char *const bad[][12] = {
        {"report", "dashboard", "--data", dir, "--tenant", "1", "--by", "colour", NULL},
        {"report", "funnel", "--data", dir, "--tenant", "1", "--steps", "view,add", NULL},
        {"report", "cohort", "--data", dir, "--tenant", "1", "--periods", "0", NULL},
        {"report", "dashboard", "--data", dir, "--tenant", "1", "--from", "2026-13-01", NULL},
        {"report", "nope", "--data", dir, "--tenant", "1", NULL},
        {"report", "dashboard", "--data", dir, "--bogus", "1", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(t_siyu(NULL, bad[i]), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dashboard),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
