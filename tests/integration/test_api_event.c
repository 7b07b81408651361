/* test_api_event.c — POST /api/v1/events against the real binary: customer
 * and employee resolution (customer_id, external_userid via identity or the
 * customer row, a new external_userid creating a customer), duplicates within
 * and across batches, validation errors and unknown references with nothing
 * stored, 413s, roles, tenant isolation, the audit row and the metric, and a
 * throughput smoke run (printed, not asserted: sanitizer builds are slow).
 *
 * Fixture: tenants A (1) and B (2) from `siyu tenant create`, rows inserted
 * straight into DIR/siyu.db, tokens from `siyu token create`, one server.
 * A: employees alice(101), bob(102) in department 10; customers 1000 (wmA1,
 * with an identity row) and 1001 (wmA2, customer row only). B: employee
 * carol(200), customer 1500 (wmA1). Each test uses its own key prefix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/events.h"
#include "testlib.h"

#define T0 "1700000000"

static const char fixture_sql[] =
    "INSERT INTO department(id,tenant_id,wecom_id,name,parent_id,created_at,updated_at) VALUES"
    " (10,1,1,'HQ',NULL," T0 "," T0 "),(20,2,1,'HQ',NULL," T0 "," T0 ");"
    "INSERT INTO employee(id,tenant_id,userid,name,department_id,created_at,updated_at) VALUES"
    " (101,1,'alice','Alice',10," T0 "," T0 "),(102,1,'bob','Bob',10," T0 "," T0 "),"
    " (200,2,'carol','Carol',20," T0 "," T0 ");"
    "INSERT INTO customer(id,tenant_id,external_userid,name,created_at,updated_at) VALUES"
    " (1000,1,'wmA1','Zhang San'," T0 "," T0 "),(1001,1,'wmA2','Li Si'," T0 "," T0 "),"
    " (1500,2,'wmA1','B Customer'," T0 "," T0 ");"
    /* Every customer with an external_userid has its identity row (the lookup
     * path); the schema keeps no second index on customer.external_userid. */
    "INSERT INTO identity(tenant_id,customer_id,kind,value,created_at) VALUES"
    " (1,1000,'wecom_external_userid','wmA1'," T0 "),"
    " (1,1001,'wecom_external_userid','wmA2'," T0 "),"
    " (2,1500,'wecom_external_userid','wmA1'," T0 ");"
    "INSERT INTO relationship(tenant_id,customer_id,employee_id,status,added_at,updated_at)"
    " VALUES (1,1000,101,'active'," T0 "," T0 ");";

typedef t_roles fx;

static int setup(void **state) {
    return t_roles_start((t_roles **)state, fixture_sql, "alice", NULL);
}

static int teardown(void **state) {
    t_roles_stop(*state);
    return 0;
}

/* POSTs body as the token; asserts the status; returns the parsed reply. */
static json_t *post(fx *f, const char *token, const char *body, long status) {
    return t_call(&f->srv, "POST", "/api/v1/events", token, body, status);
}

static void post_counts(fx *f, const char *token, const char *body, long accepted, long dups) {
    json_t *j = post(f, token, body, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "accepted")), accepted);
    assert_int_equal(json_integer_value(json_object_get(j, "duplicates")), dups);
    json_decref(j);
}

/* Asserts an error reply with code and field. */
static void post_err(fx *f, const char *token, const char *body, long status, const char *code,
                     const char *field) {
    json_t *j = post(f, token, body, status);
    t_assert_error(j, code, field);
    json_decref(j);
}

static long long events_like(fx *f, const char *prefix) {
    return t_sql_int(f->dir, "SELECT count(*) FROM event WHERE idem_key LIKE '%s%%'", prefix);
}

/* A batch of n events keyed prefix0..prefix(n-1) for customer 1000. */
static char *batch(const char *prefix, int n, int first) {
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    fputs("{\"events\":[", m);
    for (int i = 0; i < n; i++)
        fprintf(m,
                "%s{\"idempotency_key\":\"%s%d\",\"type\":\"page.view\",\"ts\":%d,"
                "\"customer_id\":1000,\"props\":{\"url\":\"/p/%d\",\"price\":12.5}}",
                i ? "," : "", prefix, first + i, 1700000000 + i, i);
    fputs("]}", m);
    fclose(m);
    return buf;
}

/* ---- tests ------------------------------------------------------------- */

static void test_accept_and_resolve(void **state) {
    fx *f = *state;
    post_counts(f, f->admin,
                "{\"events\":["
                "{\"idempotency_key\":\"r1\",\"type\":\"order.paid\",\"ts\":1700000100,"
                "\"customer_id\":1000,\"employee_userid\":\"alice\","
                "\"props\":{ \"amount\" : 99.5, \"items\" : [ 1, 2 ] }},"
                "{\"idempotency_key\":\"r2\",\"type\":\"page.view\",\"ts\":1700000101,"
                "\"external_userid\":\"wmA1\"},"
                "{\"idempotency_key\":\"r3\",\"type\":\"page.view\",\"ts\":1700000102,"
                "\"external_userid\":\"wmA2\",\"employee_userid\":null,\"props\":null},"
                "{\"idempotency_key\":\"r4\",\"type\":\"page.view\",\"ts\":1700000103,"
                "\"external_userid\":\"wmNew1\"},"
                "{\"idempotency_key\":\"r5\",\"type\":\"page.view\",\"ts\":1700000104,"
                "\"external_userid\":\"wmNew1\",\"employee_userid\":\"bob\"}]}",
                5, 0);
    assert_int_equal(t_sql_int(f->dir, "SELECT customer_id FROM event WHERE idem_key='r1'"), 1000);
    assert_int_equal(t_sql_int(f->dir, "SELECT employee_id FROM event WHERE idem_key='r1'"), 101);
    assert_string_equal(t_sql_text(f->dir, "SELECT props FROM event WHERE idem_key='r1'"),
                        "{\"amount\":99.5,\"items\":[1,2]}");
    assert_string_equal(
        t_sql_text(
            f->dir,
            "SELECT source||'/'||type||'/'||ts||'/'||tenant_id FROM event WHERE idem_key='r1'"),
        "api/order.paid/1700000100/1");
    assert_int_equal(t_sql_int(f->dir, "SELECT customer_id FROM event WHERE idem_key='r2'"), 1000);
    assert_int_equal(t_sql_int(f->dir, "SELECT customer_id FROM event WHERE idem_key='r3'"), 1001);
    assert_int_equal(t_sql_int(f->dir, "SELECT props IS NULL AND employee_id IS NULL FROM event "
                                       "WHERE idem_key='r3'"),
                     1);
    /* wmNew1 became one customer, with its identity row, used by r4 and r5. */
    long long created = t_sql_int(f->dir, "SELECT id FROM customer WHERE tenant_id=1 AND "
                                          "external_userid='wmNew1'");
    assert_true(created > 0);
    assert_int_equal(
        t_sql_int(f->dir, "SELECT count(*) FROM customer WHERE external_userid='wmNew1'"), 1);
    assert_int_equal(t_sql_int(f->dir, "SELECT customer_id FROM identity WHERE tenant_id=1 AND "
                                       "kind='wecom_external_userid' AND value='wmNew1'"),
                     created);
    assert_int_equal(t_sql_int(f->dir,
                               "SELECT count(DISTINCT customer_id) FROM event WHERE idem_key IN "
                               "('r4','r5')"),
                     1);
    assert_int_equal(t_sql_int(f->dir, "SELECT customer_id FROM event WHERE idem_key='r5'"),
                     created);
    assert_int_equal(t_sql_int(f->dir, "SELECT employee_id FROM event WHERE idem_key='r5'"), 102);
    /* One audit row for the batch, with the count. */
    assert_int_equal(t_sql_int(f->dir,
                               "SELECT count FROM audit_log WHERE action='event.ingest' AND "
                               "tenant_id=1 ORDER BY id LIMIT 1"),
                     5);
    /* The customer now exists: posting for wmNew1 again creates nothing. */
    post_counts(f, f->operator_,
                "{\"events\":[{\"idempotency_key\":\"r6\",\"type\":\"x\",\"ts\":1700000105,"
                "\"external_userid\":\"wmNew1\"}]}",
                1, 0);
    assert_int_equal(
        t_sql_int(f->dir, "SELECT count(*) FROM customer WHERE external_userid='wmNew1'"), 1);
}

static void test_duplicates(void **state) {
    fx *f = *state;
    /* Within a batch: the first occurrence wins. */
    post_counts(
        f, f->admin,
        "{\"events\":["
        "{\"idempotency_key\":\"d1\",\"type\":\"a\",\"ts\":1700000000,\"customer_id\":1000,"
        "\"props\":{\"n\":1}},"
        "{\"idempotency_key\":\"d2\",\"type\":\"a\",\"ts\":1700000000,\"customer_id\":1000},"
        "{\"idempotency_key\":\"d1\",\"type\":\"b\",\"ts\":1700000001,\"customer_id\":1001,"
        "\"props\":{\"n\":2}}]}",
        2, 1);
    /* Across batches. */
    post_counts(
        f, f->admin,
        "{\"events\":["
        "{\"idempotency_key\":\"d1\",\"type\":\"a\",\"ts\":1700000000,\"customer_id\":1000},"
        "{\"idempotency_key\":\"d3\",\"type\":\"a\",\"ts\":1700000000,\"customer_id\":1000},"
        "{\"idempotency_key\":\"d2\",\"type\":\"a\",\"ts\":1700000000,\"customer_id\":1000}]}",
        1, 2);
    assert_int_equal(events_like(f, "d"), 3);
    assert_string_equal(t_sql_text(f->dir, "SELECT props FROM event WHERE idem_key='d1'"),
                        "{\"n\":1}");
    /* A whole batch resent is all duplicates. */
    char *b = batch("dd", 50, 0);
    post_counts(f, f->admin, b, 50, 0);
    post_counts(f, f->admin, b, 0, 50);
    free(b);
    assert_int_equal(events_like(f, "dd"), 50);
    /* Keys are per tenant: B may reuse A's. */
    post_counts(
        f, f->admin_b,
        "{\"events\":[{\"idempotency_key\":\"d1\",\"type\":\"a\",\"ts\":1700000000,"
        "\"customer_id\":1500},{\"idempotency_key\":\"d9\",\"type\":\"a\",\"ts\":1700000000,"
        "\"external_userid\":\"wmA1\"}]}",
        2, 0);
    assert_int_equal(t_sql_int(f->dir, "SELECT count(*) FROM event WHERE idem_key='d1'"), 2);
    assert_int_equal(t_sql_int(f->dir, "SELECT customer_id FROM event WHERE idem_key='d9'"), 1500);
}

/* A true idempotency-hash collision: a stored event (key "cHolder") holds
 * the hash of key "cX", as a different key with the same 64-bit hash would.
 * "cX" is still a new event (kept with a NULL hash, its key in
 * event_idem_overflow), and stays a duplicate afterwards, alone, repeated
 * within one batch and in a multi-row chunk. ("cHolder" itself is not
 * posted: its real hash is not the one the fixture gave it.) */
static void test_hash_collision(void **state) {
    fx *f = *state;
    char sql[512], body[4096];
    snprintf(sql, sizeof sql,
             "INSERT INTO event(tenant_id,customer_id,type,ts,source,idem_key,idem_hash) "
             "VALUES(1,1000,'a',1700000000,'api','cHolder',%lld)",
             (long long)events_idem_hash("cX", 2));
    assert_int_equal(t_sql_exec(f->dir, sql), 0);
    const char *ev = "{\"idempotency_key\":\"%s\",\"type\":\"a\",\"ts\":1700000001,"
                     "\"customer_id\":1000}";
    char x[256];
    snprintf(x, sizeof x, ev, "cX");
    snprintf(body, sizeof body, "{\"events\":[%s]}", x);
    post_counts(f, f->admin, body, 1, 0);
    assert_int_equal(t_sql_int(f->dir, "SELECT count(*) FROM event WHERE idem_key='cX' AND "
                                       "idem_hash IS NULL"),
                     1);
    assert_int_equal(t_sql_int(f->dir, "SELECT count(*) FROM event_idem_overflow o JOIN event e "
                                       "ON e.id=o.event_id WHERE o.tenant_id=1 AND "
                                       "o.idem_key='cX' AND e.idem_key='cX'"),
                     1);
    /* Again, twice in one batch, then after 70 new keys (the multi-row
     * path). */
    snprintf(body, sizeof body, "{\"events\":[%s,%s]}", x, x);
    post_counts(f, f->admin, body, 0, 2);
    char *b = batch("cN", 70, 0);
    size_t len = strlen(b);
    b[len - 2] = 0; /* drop "]}" */
    snprintf(body, sizeof body, ",%s]}", x);
    char *all = malloc(len + strlen(body) + 1);
    assert_non_null(all);
    strcpy(all, b);
    strcat(all, body);
    post_counts(f, f->admin, all, 70, 1);
    free(all);
    free(b);
    assert_int_equal(events_like(f, "cX"), 1);
    assert_int_equal(events_like(f, "cHolder"), 1);
    assert_int_equal(events_like(f, "cN"), 70);
    /* Tenant B may use the key: its hash is free there. */
    snprintf(body, sizeof body,
             "{\"events\":[{\"idempotency_key\":\"cX\",\"type\":\"a\",\"ts\":1700000001,"
             "\"customer_id\":1500}]}");
    post_counts(f, f->admin_b, body, 1, 0);
    assert_int_equal(t_sql_int(f->dir, "SELECT count(*) FROM event WHERE tenant_id=2 AND "
                                       "idem_key='cX' AND idem_hash IS NOT NULL"),
                     1);
}

static void test_validation_stores_nothing(void **state) {
    fx *f = *state;
    const char *ok = "{\"idempotency_key\":\"v%d\",\"type\":\"a\",\"ts\":1700000000,"
                     "\"external_userid\":\"wmV%d\"}";
    char body[2048], a[256], b[256];
    snprintf(a, sizeof a, ok, 0, 0);
    snprintf(b, sizeof b, ok, 1, 1);
    snprintf(
        body, sizeof body,
        "{\"events\":[%s,%s,{\"idempotency_key\":\"v2\",\"type\":\"Bad Type\",\"ts\":1700000000,"
        "\"customer_id\":1000}]}",
        a, b);
    post_err(f, f->admin, body, 400, "invalid", "events[2].type");
    snprintf(body, sizeof body,
             "{\"events\":[%s,{\"idempotency_key\":\"v3\",\"type\":\"a\",\"ts\":1700000000,"
             "\"customer_id\":1000,\"colour\":\"red\"}]}",
             a);
    post_err(f, f->admin, body, 400, "invalid", "events[1].colour");
    snprintf(body, sizeof body,
             "{\"events\":[%s,{\"idempotency_key\":\"v3\",\"type\":\"a\",\"ts\":1700000000000,"
             "\"customer_id\":1000}]}",
             a);
    post_err(f, f->admin, body, 400, "invalid", "events[1].ts");
    snprintf(body, sizeof body, "{\"events\":[%s,{\"type\":\"a\"}]}", a);
    post_err(f, f->admin, body, 400, "invalid", "events[1].idempotency_key");
    snprintf(body, sizeof body, "{\"events\":[%s],\"extra\":1}", a);
    post_err(f, f->admin, body, 400, "invalid", "extra");
    snprintf(body, sizeof body, "{\"events\":[%s", a);
    post_err(f, f->admin, body, 400, "invalid", NULL);
    post_err(f, f->admin, "[]", 400, "invalid", NULL);
    post_err(f, f->admin, "{}", 400, "invalid", "events");
    post_err(f, f->admin, "{\"events\":[]}", 400, "invalid", "events");
    t_resp r;
    assert_int_equal(t_http(&f->srv, "POST", "/api/v1/events", f->admin, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 400);
    t_resp_free(&r);
    assert_int_equal(events_like(f, "v"), 0);
    assert_int_equal(
        t_sql_int(f->dir, "SELECT count(*) FROM customer WHERE external_userid LIKE 'wmV%%'"), 0);
}

static void test_unknown_references_store_nothing(void **state) {
    fx *f = *state;
    /* The new customer of item 0 must not survive item 1's failure. */
    post_err(f, f->admin,
             "{\"events\":[{\"idempotency_key\":\"u1\",\"type\":\"a\",\"ts\":1700000000,"
             "\"external_userid\":\"wmU1\"},{\"idempotency_key\":\"u2\",\"type\":\"a\","
             "\"ts\":1700000000,\"customer_id\":999999}]}",
             400, "invalid", "events[1].customer_id");
    /* Another tenant's customer is unknown too. */
    post_err(f, f->admin,
             "{\"events\":[{\"idempotency_key\":\"u3\",\"type\":\"a\",\"ts\":1700000000,"
             "\"customer_id\":1000},{\"idempotency_key\":\"u4\",\"type\":\"a\","
             "\"ts\":1700000000,\"customer_id\":1500}]}",
             400, "invalid", "events[1].customer_id");
    post_err(f, f->admin,
             "{\"events\":[{\"idempotency_key\":\"u5\",\"type\":\"a\",\"ts\":1700000000,"
             "\"external_userid\":\"wmU5\",\"employee_userid\":\"carol\"}]}",
             400, "invalid", "events[0].employee_userid");
    assert_int_equal(events_like(f, "u"), 0);
    assert_int_equal(
        t_sql_int(f->dir, "SELECT count(*) FROM customer WHERE external_userid LIKE 'wmU%%'"), 0);
    assert_int_equal(t_sql_int(f->dir, "SELECT count(*) FROM identity WHERE value LIKE 'wmU%%'"),
                     0);
}

static void test_too_large(void **state) {
    fx *f = *state;
    char *b = batch("big", 1001, 0);
    post_err(f, f->admin, b, 413, "too_large", "events");
    free(b);
    assert_int_equal(events_like(f, "big"), 0);
    b = batch("max", 1000, 0);
    post_counts(f, f->admin, b, 1000, 0);
    free(b);
    /* Over the 4 MiB body limit. */
    size_t n = (4u << 20) + 16;
    char *huge = malloc(n + 1);
    memset(huge, ' ', n);
    huge[n] = 0;
    memcpy(huge, "{\"events\":[", 11);
    t_resp r;
    assert_int_equal(t_http(&f->srv, "POST", "/api/v1/events", f->admin, huge, n, NULL, &r), 0);
    assert_int_equal(r.status, 413);
    t_resp_free(&r);
    free(huge);
}

static void test_roles(void **state) {
    fx *f = *state;
    const char *body =
        "{\"events\":[{\"idempotency_key\":\"role1\",\"type\":\"a\",\"ts\":1700000000,"
        "\"customer_id\":1000}]}";
    post_err(f, f->manager, body, 403, "forbidden", NULL);
    post_err(f, f->alice, body, 403, "forbidden", NULL);
    post_err(f, f->platform, body, 403, "forbidden", NULL);
    post_err(f, NULL, body, 401, "unauthorized", NULL);
    assert_int_equal(events_like(f, "role"), 0);
    post_counts(f, f->operator_, body, 1, 0);
}

static long metric(fx *f) {
    t_resp r;
    assert_int_equal(t_http(&f->srv, "GET", "/metrics", NULL, NULL, 0, NULL, &r), 0);
    const char *p = strstr(r.body, "\nsiyu_events_accepted_total ");
    assert_non_null(p);
    long v = atol(p + strlen("\nsiyu_events_accepted_total "));
    t_resp_free(&r);
    return v;
}

static void test_metric(void **state) {
    fx *f = *state;
    long before = metric(f);
    char *b = batch("met", 10, 0);
    post_counts(f, f->admin, b, 10, 0);
    post_counts(f, f->admin, b, 0, 10);
    free(b);
    assert_int_equal(metric(f) - before, 10);
}

static void test_throughput_smoke(void **state) {
    fx *f = *state;
    enum { BATCHES = 20 };
    char *bodies[BATCHES];
    for (int i = 0; i < BATCHES; i++)
        bodies[i] = batch("tp", 1000, i * 1000);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < BATCHES; i++)
        post_counts(f, f->admin, bodies[i], 1000, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr, "events: %d x 1000 sequential in %.3f s = %.0f events/s\n", BATCHES, dt,
            BATCHES * 1000 / dt);
    for (int i = 0; i < BATCHES; i++)
        free(bodies[i]);
    assert_int_equal(events_like(f, "tp"), BATCHES * 1000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_and_resolve),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_hash_collision),
        cmocka_unit_test(test_validation_stores_nothing),
        cmocka_unit_test(test_unknown_references_store_nothing),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_metric),
        cmocka_unit_test(test_throughput_smoke),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
