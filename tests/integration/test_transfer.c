/* test_transfer.c — on-the-job transfers (在职继承) against the real server
 * and the real `siyu wecom-sim`: validation (400 naming the field, nothing
 * written), a transfer in flight blocks another (409), a completed takeover
 * (done; the takeover's relationship active, the handover's 'transferred'),
 * WeCom's limit of two transfers per customer in 90 days (the third is
 * refused up front, 409), and a customer who refuses (transfer_fail →
 * refused). The simulator's clock is advanced past the takeover delay. */
#include "flows_sim.h"
#include "store/transfer.h"

#define DELAY "60"

static flows F;
static char U[4][64];
static long long E[4]; /* Siyu employee ids of U[] */

/* Creates the simulator's employees in Siyu (as an org import would). */
static int employees_import(flows *f, char u[4][64], long long e[4]) {
    if (fl_sim_userids(f, u, 4) != 4) return -1;
    for (int i = 0; i < 4; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"userid\":\"%s\"}", u[i]);
        t_resp r;
        if (t_http(&f->srv, "POST", "/api/v1/employees", f->admin, body, strlen(body), NULL, &r) ||
            r.status != 201) {
            fprintf(stderr, "employee create: %ld %s\n", r.status, r.body ? r.body : "");
            t_resp_free(&r);
            return -1;
        }
        e[i] = json_integer_value(json_object_get(r.json, "id"));
        t_resp_free(&r);
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

static long long transfer(flows *f, long long from, long long to, long long cust, long status) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"handover_employee_id\":%lld,\"takeover_employee_id\":%lld,\"customer_ids\":[%lld],"
             "\"message\":\"您好，接下来由我为您服务\"}",
             from, to, cust);
    json_t *j = t_call(&f->srv, "POST", "/api/v1/transfers", f->admin, body, status);
    long long id = json_integer_value(json_array_get(json_object_get(j, "transfer_ids"), 0));
    json_decref(j);
    return id;
}

static const char *state_of(flows *f, long long id, int wait_ms, const char *want) {
    const char *s = "<null>";
    for (int i = 0; i <= wait_ms / 25; i++) {
        s = t_sql_text(f->dir, "SELECT state FROM transfer WHERE id=%lld", id);
        if (strcmp(s, want) == 0) break;
        fl_sleep_ms(25);
    }
    return s;
}

static void advance(flows *f) {
    json_decref(fl_sim(f, "POST", "/sim/clock", "{\"advance\":120}"));
}

static void test_validation(void **state) {
    (void)state;
    char ext[128];
    long long c = fl_sim_add(&F, U[0], ext);
    assert_true(c > 0);
    long long before = t_sql_int(F.dir, "SELECT count(*) FROM transfer");
    long long ob = t_sql_int(F.dir, "SELECT count(*) FROM outbox");
    char body[1024];
    t_resp r;
    struct {
        const char *fmt;
        const char *field;
    } bad[] = {
        {"{\"handover_employee_id\":%lld,\"takeover_employee_id\":%lld,\"customer_ids\":[%lld]}",
         "takeover_employee_id"}, /* same employee (filled below) */
        {"{\"handover_employee_id\":%lld,\"takeover_employee_id\":%lld,\"customer_ids\":[%lld]}",
         "customer_ids[0]"}, /* no relationship with the handover */
        {"{\"handover_employee_id\":%lld,\"takeover_employee_id\":%lld,\"customer_ids\":[%lld,"
         "%lld]}",
         "customer_ids[1]"}, /* repeated */
        {"{\"handover_employee_id\":%lld,\"takeover_employee_id\":%lld,\"customer_ids\":[]}",
         "customer_ids"},
        {"{\"handover_employee_id\":%lld,\"takeover_employee_id\":424242,\"customer_ids\":[%lld]}",
         "takeover_employee_id"},
    };
    snprintf(body, sizeof body, bad[0].fmt, E[0], E[0], c);
    assert_int_equal(
        t_http(&F.srv, "POST", "/api/v1/transfers", F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 400, "invalid", bad[0].field);
    snprintf(body, sizeof body, bad[1].fmt, E[1], E[2], c);
    assert_int_equal(
        t_http(&F.srv, "POST", "/api/v1/transfers", F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 400, "invalid", bad[1].field);
    snprintf(body, sizeof body, bad[2].fmt, E[0], E[1], c, c);
    assert_int_equal(
        t_http(&F.srv, "POST", "/api/v1/transfers", F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 400, "invalid", bad[2].field);
    snprintf(body, sizeof body, bad[3].fmt, E[0], E[1]);
    assert_int_equal(
        t_http(&F.srv, "POST", "/api/v1/transfers", F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 400, "invalid", bad[3].field);
    snprintf(body, sizeof body, bad[4].fmt, E[0], c);
    assert_int_equal(
        t_http(&F.srv, "POST", "/api/v1/transfers", F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 400, "invalid", bad[4].field);
    /* A message over 200 characters (201 Chinese characters: 603 bytes). */
    char msg[700] = "";
    for (int i = 0; i < 201; i++)
        strcat(msg, "好");
    snprintf(body, sizeof body,
             "{\"handover_employee_id\":%lld,\"takeover_employee_id\":%lld,\"customer_ids\":[%lld],"
             "\"message\":\"%s\"}",
             E[0], E[1], c, msg);
    assert_int_equal(
        t_http(&F.srv, "POST", "/api/v1/transfers", F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 400, "invalid", "message");
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM transfer"), before);
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM outbox"), ob);
}

static void test_twice_then_too_frequent(void **state) {
    (void)state;
    char ext[128];
    long long c = fl_sim_add(&F, U[0], ext);
    assert_true(c > 0);

    /* 1: U0 -> U1. While it is in flight, another transfer of c is refused. */
    long long t1 = transfer(&F, E[0], E[1], c, 201);
    assert_string_equal(state_of(&F, t1, 10000, "waiting"), "waiting");
    t_resp r;
    char body[256];
    snprintf(
        body, sizeof body,
        "{\"handover_employee_id\":%lld,\"takeover_employee_id\":%lld,\"customer_ids\":[%lld]}",
        E[0], E[2], c);
    assert_int_equal(
        t_http(&F.srv, "POST", "/api/v1/transfers", F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 409, "conflict", "customer_ids[0]");
    advance(&F);
    assert_string_equal(state_of(&F, t1, 10000, "done"), "done");
    long long v;
    FL_WAIT_INT(v, &F, 1,
                "SELECT count(*) FROM relationship WHERE customer_id=%lld AND employee_id=%lld AND "
                "status='active'",
                c, E[1]);
    assert_int_equal(v, 1);
    FL_WAIT_INT(v, &F, 1,
                "SELECT count(*) FROM relationship WHERE customer_id=%lld AND employee_id=%lld AND "
                "status='transferred'",
                c, E[0]);
    assert_int_equal(v, 1);
    assert_true(t_sql_int(F.dir, "SELECT takeover_at FROM transfer WHERE id=%lld", t1) > 0);

    /* 2: U1 -> U2, within the same 90 days: still allowed. */
    long long t2 = transfer(&F, E[1], E[2], c, 201);
    assert_string_equal(state_of(&F, t2, 10000, "waiting"), "waiting");
    advance(&F);
    assert_string_equal(state_of(&F, t2, 10000, "done"), "done");

    /* 3: the third in 90 days: refused up front (WeCom would answer 40128),
     * nothing written and nothing sent. */
    long long rows = t_sql_int(F.dir, "SELECT count(*) FROM transfer");
    snprintf(
        body, sizeof body,
        "{\"handover_employee_id\":%lld,\"takeover_employee_id\":%lld,\"customer_ids\":[%lld]}",
        E[2], E[3], c);
    assert_int_equal(
        t_http(&F.srv, "POST", "/api/v1/transfers", F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 409, "conflict", "customer_ids[0]");
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM transfer"), rows);
    /* The handover keeps the customer. */
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM relationship WHERE customer_id=%lld AND "
                               "employee_id=%lld AND status='active'",
                               c, E[2]),
                     1);
    /* Had WeCom been asked anyway, its 40128 fails the transfer. */
    const char *why;
    assert_string_equal(transfer_state_for_errcode(40128, &why), "failed");
    assert_string_equal(why, "transfer_too_frequent");
    long long t3 = t2;

    /* The API shows them. */
    snprintf(body, sizeof body, "/api/v1/transfers/%lld", t3);
    json_t *j = t_call(&F.srv, "GET", body, F.admin, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "done");
    assert_string_equal(json_string_value(json_object_get(j, "external_userid")), ext);
    json_decref(j);
    snprintf(body, sizeof body, "/api/v1/transfers?state=done&employee_id=%lld", E[1]);
    j = t_call(&F.srv, "GET", body, F.admin, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 2); /* t1 and t2 */
    json_decref(j);
    j = t_call(&F.srv, "GET", "/api/v1/transfers?limit=1", F.admin, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
    assert_true(json_is_string(json_object_get(j, "next_cursor")));
    json_decref(j);
    t_resp q;
    assert_int_equal(t_api(&F.srv, "GET", "/api/v1/transfers?state=lost", F.admin, &q, NULL), 0);
    t_expect_error(&q, 400, "invalid", "state");
    /* Audited. */
    assert_true(t_sql_int(F.dir, "SELECT count(*) FROM audit_log WHERE action='transfer.create'") >=
                2);
}

static void test_refused(void **state) {
    (void)state;
    flows g;
    char u[4][64], ext[128];
    long long e[4];
    const char *extra[] = {"--takeover-delay", DELAY, "--refuse-rate", "1.0", NULL};
    assert_int_equal(flows_start(&g, extra), 0);
    assert_int_equal(employees_import(&g, u, e), 0);
    long long c = fl_sim_add(&g, u[0], ext);
    assert_true(c > 0);
    long long t = transfer(&g, e[0], e[1], c, 201);
    assert_string_equal(state_of(&g, t, 10000, "waiting"), "waiting");
    advance(&g);
    assert_string_equal(state_of(&g, t, 10000, "refused"), "refused");
    assert_int_equal(t_sql_int(g.dir,
                               "SELECT count(*) FROM relationship WHERE customer_id=%lld AND "
                               "employee_id=%lld AND status='active'",
                               c, e[0]),
                     1);
    assert_int_equal(flows_stop(&g), 0);
}

/* A transfer call that WeCom refuses outright marks its transfers failed; the
 * dead outbox row cannot be retried behind their back (409), only requested
 * again as a new transfer. */
static void test_dead_call_not_retried(void **state) {
    (void)state;
    char ext[128];
    long long c = fl_sim_add(&F, U[2], ext);
    assert_true(c > 0);
    json_decref(fl_sim(&F, "POST", "/sim/fault",
                       "{\"path\":\"externalcontact/transfer_customer\",\"errcode\":40058,"
                       "\"count\":1}"));
    long long t = transfer(&F, E[2], E[3], c, 201);
    assert_string_equal(state_of(&F, t, 10000, "failed"), "failed");
    long long ob = t_sql_int(F.dir, "SELECT outbox_id FROM transfer WHERE id=%lld", t);
    assert_string_equal(t_sql_text(F.dir, "SELECT state FROM outbox WHERE id=%lld", ob), "dead");
    char path[64];
    snprintf(path, sizeof path, "/api/v1/outbox/%lld/retry", ob);
    t_resp r;
    assert_int_equal(t_http(&F.srv, "POST", path, F.admin, "{}", 2, NULL, &r), 0);
    t_expect_error(&r, 409, "conflict", "kind");
    assert_string_equal(t_sql_text(F.dir, "SELECT state FROM outbox WHERE id=%lld", ob), "dead");
    /* Requested again: a new transfer goes through. */
    long long t2 = transfer(&F, E[2], E[3], c, 201);
    assert_string_equal(state_of(&F, t2, 10000, "waiting"), "waiting");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_twice_then_too_frequent),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_dead_call_not_retried),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
