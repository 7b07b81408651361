/* test_inherit.c — on-the-job inheritance (F3) against the real server and
 * the real `siyu wecom-sim`: spreading an employee's customers over a team
 * round-robin and least-loaded (the counts per takeover, in the answer, in
 * Siyu's transfers and in the simulator), WeCom's limit of two transfers per
 * customer in 90 days refused up front per customer (nothing sent), a
 * customer who refuses, and the inheritance screen's counts adding up. */
#include "flows_sim.h"

#define DELAY "60"

static flows F;
static char U[4][64];
static long long E[4]; /* Siyu employee ids of U[] */

static int employees_import(flows *f, char u[4][64], long long e[4]) {
    if (fl_sim_userids(f, u, 4) != 4) return -1;
    for (int i = 0; i < 4; i++) {
        char body[320];
        snprintf(body, sizeof body, "{\"userid\":\"%s\"}", u[i]);
        json_t *j = t_call(&f->srv, "POST", "/api/v1/employees", f->admin, body, 201);
        e[i] = json_integer_value(json_object_get(j, "id"));
        json_decref(j);
    }
    return 0;
}

static int setup(void **state) {
    (void)state;
    const char *extra[] = {"--takeover-delay", DELAY, "--refuse-rate", "0", NULL};
    if (flows_start(&F, extra) != 0) return -1;
    return employees_import(&F, U, E);
}

static int teardown(void **state) {
    (void)state;
    int rc = flows_stop(&F);
    if (rc != 0) fprintf(stderr, "siyu serve exited with status %d\n", rc);
    return rc == 0 ? 0 : -1;
}

static void advance(void) {
    json_decref(fl_sim(&F, "POST", "/sim/clock", "{\"advance\":120}"));
}

/* POST /inheritance/handover; customers NULL = all. */
static json_t *handover(long long from, const long long *to, int nto, const char *strategy,
                        const char *customers, long status) {
    char body[4096], tos[256] = "";
    for (int i = 0; i < nto; i++)
        snprintf(tos + strlen(tos), sizeof tos - strlen(tos), "%s%lld", i ? "," : "", to[i]);
    snprintf(body, sizeof body,
             "{\"handover_employee_id\":%lld,\"takeover_employee_ids\":[%s],\"strategy\":\"%s\""
             "%s%s%s,\"message\":\"您好，接下来由我为您服务\"}",
             from, tos, strategy, customers ? ",\"customer_ids\":[" : "",
             customers ? customers : "", customers ? "]" : "");
    return t_call(&F.srv, "POST", "/api/v1/inheritance/handover", F.admin, body, status);
}

static long long takeover_count(const json_t *res, long long emp) {
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(res, "takeovers"), i, t) {
        if (json_integer_value(json_object_get(t, "employee_id")) == emp)
            return json_integer_value(json_object_get(t, "count"));
    }
    return -1;
}

/* Waits until no transfer of handover `from` is requested or waiting. */
static void settle(long long from) {
    long long v;
    FL_WAIT_INT(v, &F, 0,
                "SELECT count(*) FROM transfer WHERE handover_employee_id=%lld AND "
                "state='requested'",
                from);
    assert_int_equal(v, 0);
    advance();
    FL_WAIT_INT(v, &F, 0,
                "SELECT count(*) FROM transfer WHERE handover_employee_id=%lld AND state IN "
                "('requested','waiting')",
                from);
    assert_int_equal(v, 0);
}

/* The simulator's active follows of userid among customers of ids
 * (external_userids). */
static long long sim_follows(const char *userid) {
    json_t *d = fl_sim(&F, "GET", "/sim/dump", NULL);
    size_t i, k;
    json_t *c, *fo;
    long long n = 0;
    json_array_foreach(json_object_get(d, "customers"), i, c) {
        json_array_foreach(json_object_get(c, "follow"), k, fo) {
            n += strcmp(json_string_value(json_object_get(fo, "userid")), userid) == 0;
        }
    }
    json_decref(d);
    return n;
}

static void test_team_spread(void **state) {
    (void)state;
    char ext[128], list[512] = "";
    for (int i = 0; i < 9; i++) {
        long long c = fl_sim_add(&F, U[0], ext);
        assert_true(c > 0);
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%lld", i ? "," : "", c);
    }
    long long before[4];
    for (int k = 1; k < 4; k++)
        before[k] = sim_follows(U[k]);
    /* round-robin: 9 over three takeovers, 3 each */
    long long to[3] = {E[1], E[2], E[3]};
    json_t *res = handover(E[0], to, 3, "round_robin", list, 201);
    assert_int_equal(json_integer_value(json_object_get(res, "requested")), 9);
    assert_int_equal(json_array_size(json_object_get(res, "refused")), 0);
    assert_string_equal(json_string_value(json_object_get(res, "kind")), "on_job");
    for (int k = 1; k < 4; k++) {
        assert_int_equal(takeover_count(res, E[k]), 3);
        assert_int_equal(t_sql_int(F.dir,
                                   "SELECT count(*) FROM transfer WHERE handover_employee_id=%lld "
                                   "AND takeover_employee_id=%lld",
                                   E[0], E[k]),
                         3);
    }
    json_decref(res);
    settle(E[0]);
    for (int k = 1; k < 4; k++)
        assert_int_equal(sim_follows(U[k]) - before[k], 3); /* the simulator agrees */

    /* least-loaded over E1..E3 with E1 carrying 5 more: the new customers
     * fill E2 and E3 first; the answer matches a greedy over the loads */
    for (int i = 0; i < 5; i++)
        assert_true(fl_sim_add(&F, U[1], ext) > 0);
    for (int i = 0; i < 7; i++)
        assert_true(fl_sim_add(&F, U[0], ext) > 0);
    long long load[3], want[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++)
        load[k] = t_sql_int(F.dir,
                            "SELECT count(*) FROM relationship WHERE employee_id=%lld AND "
                            "status='active'",
                            to[k]);
    long long n = t_sql_int(F.dir,
                            "SELECT count(*) FROM relationship WHERE employee_id=%lld AND "
                            "status='active'",
                            E[0]);
    assert_true(n >= 7);
    for (long long i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < 3; k++)
            if (load[k] < load[best]) best = k;
        load[best]++;
        want[best]++;
    }
    res = handover(E[0], to, 3, "least_loaded", NULL, 201); /* all of E0's customers */
    assert_int_equal(json_integer_value(json_object_get(res, "requested")), n);
    for (int k = 0; k < 3; k++)
        assert_int_equal(takeover_count(res, to[k]), want[k]);
    assert_true(want[0] < want[1] && want[0] < want[2]);
    json_decref(res);
    settle(E[0]);
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM relationship WHERE employee_id=%lld AND "
                               "status='active'",
                               E[0]),
                     0);
    /* each takeover now has the load the greedy predicted */
    for (int k = 0; k < 3; k++)
        assert_int_equal(t_sql_int(F.dir,
                                   "SELECT count(*) FROM relationship WHERE employee_id=%lld AND "
                                   "status='active'",
                                   to[k]),
                         load[k]);
}

static void test_validation(void **state) {
    (void)state;
    t_resp r;
    char body[7][256];
    const char *field[7] = {
        "takeover_employee_ids",   "takeover_employee_ids",    "strategy",
        "handover_employee_id",    "takeover_employee_ids[0]", "customer_ids[0]",
        "takeover_employee_ids[0]"};
    long long h = E[0], k = E[1];
    snprintf(body[0], 256, "{\"handover_employee_id\":%lld,\"takeover_employee_ids\":[]}", h);
    snprintf(body[1], 256, "{\"handover_employee_id\":%lld,\"takeover_employee_ids\":[%lld,%lld]}",
             h, k, k);
    snprintf(body[2], 256,
             "{\"handover_employee_id\":%lld,\"takeover_employee_ids\":[%lld],"
             "\"strategy\":\"random\"}",
             h, k);
    snprintf(body[3], 256, "{\"handover_employee_id\":424242,\"takeover_employee_ids\":[%lld]}", k);
    snprintf(body[4], 256, "{\"handover_employee_id\":%lld,\"takeover_employee_ids\":[424242]}", h);
    snprintf(body[5], 256,
             "{\"handover_employee_id\":%lld,\"takeover_employee_ids\":[%lld],"
             "\"customer_ids\":[0]}",
             h, k);
    /* the takeover may not be the handover */
    snprintf(body[6], 256, "{\"handover_employee_id\":%lld,\"takeover_employee_ids\":[%lld]}", h,
             h);
    long long before = t_sql_int(F.dir, "SELECT count(*) FROM transfer");
    for (int i = 0; i < 7; i++) {
        assert_int_equal(t_http(&F.srv, "POST", "/api/v1/inheritance/handover", F.admin, body[i],
                                strlen(body[i]), NULL, &r),
                         0);
        t_expect_error(&r, 400, "invalid", field[i]);
    }
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM transfer"), before);
}

static void test_limit_refused_and_counts(void **state) {
    (void)state;
    char ext[128], one[32];
    long long c = fl_sim_add(&F, U[0], ext);
    assert_true(c > 0);
    snprintf(one, sizeof one, "%lld", c);
    long long t1[1] = {E[1]}, t2[1] = {E[2]}, t3[1] = {E[3]};
    json_decref(handover(E[0], t1, 1, "round_robin", one, 201));
    settle(E[0]);
    json_decref(handover(E[1], t2, 1, "round_robin", one, 201));
    settle(E[1]);
    /* the third within 90 days: refused here, with the reason, nothing sent */
    long long rows = t_sql_int(F.dir, "SELECT count(*) FROM transfer");
    long long calls = t_sql_int(F.dir, "SELECT count(*) FROM outbox");
    json_t *res = handover(E[2], t3, 1, "round_robin", one, 201);
    assert_int_equal(json_integer_value(json_object_get(res, "requested")), 0);
    json_t *ref = json_array_get(json_object_get(res, "refused"), 0);
    assert_int_equal(json_integer_value(json_object_get(ref, "customer_id")), c);
    assert_string_equal(json_string_value(json_object_get(ref, "reason")),
                        "transfer_limit_90_days");
    json_decref(res);
    char body[256];
    snprintf(
        body, sizeof body,
        "{\"handover_employee_id\":%lld,\"takeover_employee_id\":%lld,\"customer_ids\":[%lld]}",
        E[2], E[3], c);
    t_resp r;
    assert_int_equal(
        t_http(&F.srv, "POST", "/api/v1/transfers", F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 409, "conflict", "customer_ids[0]");
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM transfer"), rows);
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM outbox"), calls);

    /* a customer who refuses: transfer_fail → refused */
    json_decref(fl_sim(&F, "POST", "/sim/config", "{\"refuse_rate\":1.0}"));
    long long d = fl_sim_add(&F, U[3], ext);
    assert_true(d > 0);
    snprintf(one, sizeof one, "%lld", d);
    long long t0[1] = {E[0]};
    json_decref(handover(E[3], t0, 1, "round_robin", one, 201));
    settle(E[3]);
    assert_string_equal(t_sql_text(F.dir, "SELECT state FROM transfer WHERE customer_id=%lld", d),
                        "refused");
    json_decref(fl_sim(&F, "POST", "/sim/config", "{\"refuse_rate\":0}"));

    /* the screen: per handover and per takeover, the counts add up */
    json_t *s = t_call(&F.srv, "GET", "/api/v1/inheritance/summary", F.admin, NULL, 200);
    static const char *const f[] = {"pending", "in_progress", "done", "refused", "failed", "total"};
    json_t *tot = json_object_get(s, "totals");
    long long sum_h[6] = {0}, sum_t[6] = {0};
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(s, "by_handover"), i, e) {
        long long parts = 0;
        for (int k = 0; k < 6; k++) {
            sum_h[k] += json_integer_value(json_object_get(e, f[k]));
            if (k < 5) parts += json_integer_value(json_object_get(e, f[k]));
        }
        assert_int_equal(parts, json_integer_value(json_object_get(e, "total")));
    }
    json_array_foreach(json_object_get(s, "by_takeover"), i, e) {
        for (int k = 0; k < 6; k++)
            sum_t[k] += json_integer_value(json_object_get(e, f[k]));
    }
    for (int k = 0; k < 6; k++)
        assert_int_equal(sum_h[k], json_integer_value(json_object_get(tot, f[k])));
    for (int k = 1; k < 5; k++) /* takeovers have no pending: nothing is assigned to them yet */
        assert_int_equal(sum_t[k], json_integer_value(json_object_get(tot, f[k])));
    long long all = t_sql_int(F.dir, "SELECT count(*) FROM transfer");
    assert_int_equal(json_integer_value(json_object_get(tot, "total")), all);
    assert_int_equal(json_integer_value(json_object_get(tot, "refused")),
                     t_sql_int(F.dir, "SELECT count(*) FROM transfer WHERE state='refused'"));
    assert_true(json_integer_value(json_object_get(tot, "refused")) >= 1);
    assert_int_equal(json_integer_value(json_object_get(tot, "done")),
                     t_sql_int(F.dir, "SELECT count(*) FROM transfer WHERE state='done'"));
    json_decref(s);
    /* one employee: both sides of E3 */
    snprintf(body, sizeof body, "/api/v1/inheritance/summary?employee_id=%lld", E[3]);
    s = t_call(&F.srv, "GET", body, F.admin, NULL, 200);
    long long e3 = json_integer_value(json_object_get(json_object_get(s, "totals"), "total"));
    assert_int_equal(e3, t_sql_int(F.dir,
                                   "SELECT count(*) FROM transfer WHERE handover_employee_id=%lld "
                                   "OR takeover_employee_id=%lld",
                                   E[3], E[3]));
    json_decref(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_team_spread),
        cmocka_unit_test(test_limit_refused_and_counts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
