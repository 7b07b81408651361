/* test_transfer_poll.c — transfers whose callbacks never arrive (review
 * finding 7): the sync manager polls transfer_result for transfers left
 * 'waiting' and settles them from its status (spec §3.7). The simulator's
 * callbacks are switched off (/sim/config {"callbacks":false}) before its
 * clock passes the takeover delay, so only the poll can tell Siyu; the
 * server polls every second for transfers waiting at least 0 s. */
#include "flows_sim.h"

static flows F;
static char U[4][64];
static long long E[4]; /* Siyu employee ids of U[] */

static int setup(void **state) {
    (void)state;
    const char *sim[] = {"--takeover-delay", "60", "--refuse-rate", "0", NULL};
    const char *srv[] = {"--transfer-poll", "1", "--transfer-poll-age", "0", NULL};
    if (flows_start_srv(&F, sim, srv) != 0) return -1;
    if (fl_sim_userids(&F, U, 4) != 4) return -1;
    for (int i = 0; i < 4; i++) {
        char body[320];
        snprintf(body, sizeof body, "{\"userid\":\"%s\"}", U[i]);
        json_t *j = t_call(&F.srv, "POST", "/api/v1/employees", F.admin, body, 201);
        E[i] = json_integer_value(json_object_get(j, "id"));
        json_decref(j);
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = flows_stop(&F);
    if (rc != 0) fprintf(stderr, "siyu serve exited with status %d\n", rc);
    return rc == 0 ? 0 : -1;
}

static long long transfer(long long from, long long to, long long cust) {
    char body[256];
    snprintf(
        body, sizeof body,
        "{\"handover_employee_id\":%lld,\"takeover_employee_id\":%lld,\"customer_ids\":[%lld]}",
        from, to, cust);
    json_t *j = t_call(&F.srv, "POST", "/api/v1/transfers", F.admin, body, 201);
    long long id = json_integer_value(json_array_get(json_object_get(j, "transfer_ids"), 0));
    json_decref(j);
    return id;
}

static const char *state_of(long long id, int wait_ms, const char *want) {
    const char *s = "<null>";
    for (int i = 0; i <= wait_ms / 25; i++) {
        s = t_sql_text(F.dir, "SELECT state FROM transfer WHERE id=%lld", id);
        if (strcmp(s, want) == 0) break;
        fl_sleep_ms(25);
    }
    return s;
}

static void callbacks(bool on) {
    json_decref(
        fl_sim(&F, "POST", "/sim/config", on ? "{\"callbacks\":true}" : "{\"callbacks\":false}"));
}

static void test_lost_takeover_settled_by_poll(void **state) {
    (void)state;
    char ext[128];
    long long c = fl_sim_add(&F, U[0], ext);
    assert_true(c > 0);
    callbacks(false);
    long long t = transfer(E[0], E[1], c);
    assert_string_equal(state_of(t, 10000, "waiting"), "waiting");
    /* Polled while WeCom still waits (status 2): stays waiting. */
    fl_sleep_ms(2500);
    assert_string_equal(t_sql_text(F.dir, "SELECT state FROM transfer WHERE id=%lld", t),
                        "waiting");
    /* WeCom takes over; no callback comes. */
    json_decref(fl_sim(&F, "POST", "/sim/clock", "{\"advance\":120}"));
    assert_string_equal(state_of(t, 10000, "done"), "done");
    assert_true(t_sql_int(F.dir, "SELECT takeover_at FROM transfer WHERE id=%lld", t) > 0);
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM relationship WHERE customer_id=%lld AND "
                               "employee_id=%lld AND status='active'",
                               c, E[1]),
                     1);
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM relationship WHERE customer_id=%lld AND "
                               "employee_id=%lld AND status='transferred'",
                               c, E[0]),
                     1);
    callbacks(true);
}

static void test_lost_refusal_settled_by_poll(void **state) {
    (void)state;
    char ext[128];
    long long c = fl_sim_add(&F, U[2], ext);
    assert_true(c > 0);
    json_decref(fl_sim(&F, "POST", "/sim/config", "{\"refuse_rate\":1}"));
    callbacks(false);
    long long t = transfer(E[2], E[3], c);
    assert_string_equal(state_of(t, 10000, "waiting"), "waiting");
    json_decref(fl_sim(&F, "POST", "/sim/clock", "{\"advance\":120}"));
    assert_string_equal(state_of(t, 10000, "refused"), "refused");
    assert_string_equal(t_sql_text(F.dir, "SELECT error FROM transfer WHERE id=%lld", t),
                        "customer_refused");
    /* The customer is no longer blocked: a new transfer may be requested. */
    long long t2 = transfer(E[2], E[1], c);
    assert_true(t2 > t);
    callbacks(true);
    json_decref(fl_sim(&F, "POST", "/sim/config", "{\"refuse_rate\":0}"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lost_takeover_settled_by_poll),
        cmocka_unit_test(test_lost_refusal_settled_by_poll),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
