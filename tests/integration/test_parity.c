/* test_parity.c — callbacks alone keep Siyu equal to WeCom: the simulator
 * replays the history of a 10,000-customer brand as encrypted callbacks into
 * an empty `siyu serve`, then runs live traffic (adds with and without
 * verification, deletions both ways, tagging, group joins and quits, group
 * and tag changes, transfers); with the callback-driven refreshes done and no
 * full sync, Siyu holds exactly the simulator's customers, relationships,
 * tags per follow record, corp tags, groups and group members. */
#include "mirror.h"
#include "testlib.h"

static t_wired F;

static int setup(void **state) {
    (void)state;
    const char *sim_args[] = {"--seed",         "11",  "--customers",      "10000",
                              "--employees",    "120", "--groups",         "150",
                              "--tags",         "40",  "--stores",         "12",
                              "--departments",  "5",   "--channels",       "40",
                              "--history-days", "60",  "--replay-history", NULL};
    const char *srv_args[] = {"--sync-interval", "0", NULL};
    return t_wired_start(&F, sim_args, srv_args) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    assert_int_equal(t_wired_stop(&F), 0);
    return 0;
}

static void test_history_by_callbacks(void **state) {
    (void)state;
    mirror_wait_history(&F, 240);
    mirror_wait_refresh(&F);
    json_t *st = t_call(&F.sim, "GET", "/sim/stats", NULL, NULL, 200);
    json_t *cb = json_object_get(st, "callbacks");
    assert_int_equal(json_integer_value(json_object_get(cb, "failed")), 0);
    assert_int_equal(json_integer_value(json_object_get(st, "customers")), 10000);
    /* Every callback is one event row, none twice. */
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM event WHERE source='wecom'"),
                     json_integer_value(json_object_get(cb, "acked")));
    json_decref(st);
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM sync_run"), 0);
    mirror_expect(&F);
}

static void test_live_traffic_by_callbacks(void **state) {
    (void)state;
    json_t *r = t_call(&F.sim, "POST", "/sim/run", NULL, "{\"actions\":800}", 200);
    fprintf(stderr, "live: %lld callbacks\n",
            (long long)json_integer_value(json_object_get(r, "callbacks")));
    assert_true(json_integer_value(json_object_get(r, "callbacks")) >= 500);
    json_decref(r);
    mirror_wait_refresh(&F);
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM sync_run"), 0);
    mirror_expect(&F);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_by_callbacks),
        cmocka_unit_test(test_live_traffic_by_callbacks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
