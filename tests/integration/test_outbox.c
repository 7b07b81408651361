/* test_outbox.c — the outbox end to end: `siyu serve` delivering welcome
 * messages (the first real producer) to `siyu wecom-sim`, through every
 * state: pending → sent, failed → sent, dead after max attempts, dead on a
 * non-retryable errcode, operator retry and cancel (409 on wrong states), the
 * listing and stats views, and a kill -9 while a call is in flight: after the
 * restart every welcome is delivered exactly once and no row is left
 * 'sending'. The server runs with --wecom-retries 0 --outbox-max-attempts 3. */
#include "outbox_fixture.h"

static void fault(const char *body) {
    json_decref(of_sim(&F, "/sim/fault", body));
}

/* A welcome for a new contact of employee i; returns its code. */
static char *welcome(int i) {
    char *user = of_employee(&F, i % 5);
    char *code = of_add(&F, user);
    free(user);
    return code;
}

static char *row_path(const json_t *row, const char *suffix) {
    char *p = NULL;
    if (asprintf(&p, "/api/v1/outbox/%lld%s", jint(row, "id"), suffix) < 0) return NULL;
    return p;
}

static void test_pending_to_sent(void **state) {
    (void)state;
    char *code = welcome(0);
    json_t *row = of_wait_welcome(&F, code, "sent", 10000);
    assert_int_equal(jint(row, "attempts"), 1);
    assert_int_equal(jint(row, "max_attempts"), 3);
    assert_true(jint(row, "sent_at") > 0);
    assert_true(json_is_null(json_object_get(row, "error")));
    assert_int_equal(jint(json_object_get(row, "result"), "errcode"), 0);
    json_decref(row);
    json_t *s = t_call(&F.srv, "GET", "/api/v1/outbox/stats", F.admin, NULL, 200);
    assert_true(jint(json_object_get(s, "by_state"), "sent") >= 1);
    assert_true(jint(json_object_get(json_object_get(s, "by_kind"), "send_welcome_msg"), "sent") >=
                1);
    json_decref(s);
    free(code);
}

static void test_failed_then_sent(void **state) {
    (void)state;
    fault("{\"path\":\"externalcontact/send_welcome_msg\",\"errcode\":45009,\"count\":1}");
    char *code = welcome(1);
    json_t *row = of_wait_welcome(&F, code, "sent", 10000);
    assert_int_equal(jint(row, "attempts"), 2);
    json_decref(row);
    int ok;
    of_sim_welcomes(&F, code, &ok, NULL, 0);
    assert_int_equal(ok, 1);
    free(code);
}

static void test_dead_after_max_attempts(void **state) {
    (void)state;
    fault("{\"path\":\"externalcontact/send_welcome_msg\",\"errcode\":-1,\"count\":3}");
    char *code = welcome(2);
    json_t *row = of_wait_welcome(&F, code, "dead", 15000);
    assert_int_equal(jint(row, "attempts"), 3);
    assert_int_equal(jint(row, "errcode"), -1);
    assert_true(strncmp(jstr(row, "error"), "system_busy: ", 13) == 0);
    json_decref(row);
    free(code);
}

/* A non-retryable answer: dead after one attempt; an operator's retry sends
 * it (the code is still inside its window); then retry and cancel are 409. */
static void test_dead_non_retryable_then_retry(void **state) {
    (void)state;
    fault("{\"path\":\"externalcontact/send_welcome_msg\",\"errcode\":41053,\"count\":1}");
    char *code = welcome(3);
    json_t *row = of_wait_welcome(&F, code, "dead", 10000);
    assert_int_equal(jint(row, "attempts"), 1);
    assert_int_equal(jint(row, "errcode"), 41053);
    assert_true(strncmp(jstr(row, "error"), "archiving_not_agreed: ", 22) == 0);
    char *retry = row_path(row, "/retry"), *cancel = row_path(row, "/cancel");
    json_decref(row);
    json_t *j = t_call(&F.srv, "POST", retry, F.admin, NULL, 200);
    assert_int_equal(jint(j, "attempts"), 0);
    json_decref(j);
    row = of_wait_welcome(&F, code, "sent", 10000);
    assert_int_equal(jint(row, "attempts"), 1);
    json_decref(row);
    t_resp r;
    assert_int_equal(t_api(&F.srv, "POST", retry, F.admin, &r, NULL), 0);
    t_expect_error(&r, 409, "conflict", "state");
    assert_int_equal(t_api(&F.srv, "POST", cancel, F.admin, &r, NULL), 0);
    t_expect_error(&r, 409, "conflict", "state");
    json_t *audit =
        t_call(&F.srv, "GET", "/api/v1/audit-log?action=outbox.retry", F.admin, NULL, 200);
    assert_true(json_array_size(json_object_get(audit, "items")) >= 1);
    json_decref(audit);
    free(retry);
    free(cancel);
    free(code);
}

static void test_cancel(void **state) {
    (void)state;
    fault("{\"path\":\"externalcontact/send_welcome_msg\",\"errcode\":41053,\"count\":1}");
    char *code = welcome(4);
    json_t *row = of_wait_welcome(&F, code, "dead", 10000);
    char *retry = row_path(row, "/retry"), *cancel = row_path(row, "/cancel");
    json_decref(row);
    json_t *j = t_call(&F.srv, "POST", cancel, F.admin, NULL, 200);
    assert_string_equal(jstr(j, "state"), "cancelled");
    json_decref(j);
    t_resp r;
    assert_int_equal(t_api(&F.srv, "POST", retry, F.admin, &r, NULL), 0);
    t_expect_error(&r, 409, "conflict", "state");
    assert_int_equal(t_api(&F.srv, "POST", cancel, F.admin, &r, NULL), 0);
    t_expect_error(&r, 409, "conflict", "state");
    assert_int_equal(t_api(&F.srv, "POST", "/api/v1/outbox/999999/cancel", F.admin, &r, NULL), 0);
    t_expect_error(&r, 404, "not_found", NULL);
    json_t *audit =
        t_call(&F.srv, "GET", "/api/v1/audit-log?action=outbox.cancel", F.admin, NULL, 200);
    assert_true(json_array_size(json_object_get(audit, "items")) >= 1);
    json_decref(audit);
    free(retry);
    free(cancel);
    free(code);
}

static void test_list_filters_and_pages(void **state) {
    (void)state;
    json_t *all = t_call(&F.srv, "GET", "/api/v1/outbox?limit=500", F.admin, NULL, 200);
    size_t n = json_array_size(json_object_get(all, "items"));
    assert_true(n >= 5);
    json_decref(all);
    json_t *sent = t_call(&F.srv, "GET", "/api/v1/outbox?state=sent", F.admin, NULL, 200);
    json_t *it;
    size_t i;
    json_array_foreach(json_object_get(sent, "items"), i, it)
        assert_string_equal(jstr(it, "state"), "sent");
    json_decref(sent);
    /* Pages of one, newest first, cover every row once. */
    size_t seen = 0;
    long long prev = 0;
    char path[96] = "/api/v1/outbox?limit=1";
    for (;;) {
        json_t *p = t_call(&F.srv, "GET", path, F.admin, NULL, 200);
        json_t *row = json_array_get(json_object_get(p, "items"), 0);
        if (row) {
            if (prev) assert_true(jint(row, "id") < prev);
            prev = jint(row, "id");
            seen++;
        }
        const char *next = json_string_value(json_object_get(p, "next_cursor"));
        if (next) snprintf(path, sizeof path, "/api/v1/outbox?limit=1&cursor=%s", next);
        json_decref(p);
        if (!next) break;
    }
    assert_int_equal(seen, n);
    t_resp r;
    assert_int_equal(t_api(&F.srv, "GET", "/api/v1/outbox?state=lost", F.admin, &r, NULL), 0);
    t_expect_error(&r, 400, "invalid", "state");
    assert_int_equal(t_api(&F.srv, "GET", "/api/v1/outbox?cursor=x", F.admin, &r, NULL), 0);
    t_expect_error(&r, 400, "invalid", "cursor");
    assert_int_equal(t_api(&F.srv, "GET", "/api/v1/outbox/999999", F.admin, &r, NULL), 0);
    t_expect_error(&r, 404, "not_found", NULL);
}

/* kill -9 while a welcome call is in flight (the simulator holds its answer),
 * restart: every welcome is delivered exactly once, none stays 'sending'. */
static void test_crash_during_delivery(void **state) {
    (void)state;
    enum { N = 4 };
    fault("{\"path\":\"externalcontact/send_welcome_msg\",\"delay_ms\":1500,\"count\":4}");
    char *codes[N];
    for (int i = 0; i < N; i++)
        codes[i] = welcome(i);
    /* Wait until a call is in flight, then pull the plug. */
    int sending = 0;
    for (int i = 0; i < 200 && !sending; i++) {
        sending = (int)t_sql_int(F.dir, "SELECT count(*) FROM outbox WHERE state='sending'");
        if (!sending) usleep(20000);
    }
    assert_true(sending > 0);
    usleep(300000);
    t_server_kill(&F.srv);
    /* Killed mid-delivery: each urgent worker had one welcome in flight. */
    long long in_flight = t_sql_int(F.dir, "SELECT count(*) FROM outbox WHERE state='sending'");
    assert_true(in_flight >= 1 && in_flight <= 2);
    assert_int_equal(of_server_start(&F), 0);
    for (int i = 0; i < N; i++) {
        json_t *row = of_wait_welcome(&F, codes[i], "sent", 19000);
        json_decref(row);
    }
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM outbox WHERE state='sending'"), 0);
    for (int i = 0; i < N; i++) {
        int ok;
        char text[128];
        of_sim_welcomes(&F, codes[i], &ok, text, sizeof text);
        if (ok != 1) fprintf(stderr, "welcome %s delivered %d times\n", codes[i], ok);
        assert_int_equal(ok, 1);
        assert_string_equal(text, OF_TEXT);
        free(codes[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pending_to_sent),
        cmocka_unit_test(test_failed_then_sent),
        cmocka_unit_test(test_dead_after_max_attempts),
        cmocka_unit_test(test_dead_non_retryable_then_retry),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_list_filters_and_pages),
        cmocka_unit_test(test_crash_during_delivery),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
