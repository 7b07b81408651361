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
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    "INSERT INTO identity(tenant_id,customer_id,kind,value,created_at) VALUES"
    " (1,1000,'wecom_external_userid','wmA1'," T0 "),"
    " (2,1500,'wecom_external_userid','wmA1'," T0 ");"
    "INSERT INTO relationship(tenant_id,customer_id,employee_id,status,added_at,updated_at)"
    " VALUES (1,1000,101,'active'," T0 "," T0 ");";

typedef struct fx {
    char *dir;
    t_server srv;
    char *platform, *admin, *operator_, *manager, *alice, *admin_b;
} fx;

static char *token(fx *f, const char *tenant, const char *role, const char *employee) {
    char *out = NULL;
    const char *args[] = {"token",
                          "create",
                          "--data",
                          f->dir,
                          "--role",
                          role,
                          tenant ? "--tenant" : NULL,
                          tenant,
                          employee ? "--employee" : NULL,
                          employee,
                          NULL};
    if (t_siyu(&out, args) != 0 || !out || strncmp(out, "sy_", 3) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static sqlite3 *db_open(fx *f, int flags) {
    char path[4096];
    snprintf(path, sizeof path, "%s/siyu.db", f->dir);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* First column of the first row of sql as an integer (-1 when no row). */
static long long q1(fx *f, const char *sql) {
    sqlite3 *db = db_open(f, SQLITE_OPEN_READONLY);
    sqlite3_stmt *st = NULL;
    long long v = -1;
    assert_non_null(db);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* First column of the first row as text into buf ("" when no row/NULL). */
static const char *q1s(fx *f, const char *sql, char *buf, size_t cap) {
    sqlite3 *db = db_open(f, SQLITE_OPEN_READONLY);
    sqlite3_stmt *st = NULL;
    buf[0] = 0;
    assert_non_null(db);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return buf;
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    f->dir = t_tmpdir();
    for (int i = 0; i < 2; i++) {
        char *out = NULL;
        const char *args[] = {"tenant", "create", "--data", f->dir, "--name", i ? "B" : "A", NULL};
        if (t_siyu(&out, args) != 0) return -1;
        free(out);
    }
    sqlite3 *db = db_open(f, SQLITE_OPEN_READWRITE);
    char *msg = NULL;
    if (!db || sqlite3_exec(db, fixture_sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "fixture: %s\n", msg ? msg : "cannot open");
        return -1;
    }
    sqlite3_close(db);
    f->platform = token(f, NULL, "admin", NULL);
    f->admin = token(f, "1", "admin", NULL);
    f->operator_ = token(f, "1", "operator", NULL);
    f->manager = token(f, "1", "manager", "alice");
    f->alice = token(f, "1", "employee", "alice");
    f->admin_b = token(f, "2", "admin", NULL);
    if (!f->platform || !f->admin || !f->operator_ || !f->manager || !f->alice || !f->admin_b)
        return -1;
    if (t_server_start(&f->srv, f->dir, NULL) != 0) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    if (!f) return 0;
    t_server_stop(&f->srv);
    t_rmdir(f->dir);
    free(f->platform);
    free(f->admin);
    free(f->operator_);
    free(f->manager);
    free(f->alice);
    free(f->admin_b);
    free(f);
    return 0;
}

/* POSTs body as the token; asserts the status; returns the parsed reply. */
static json_t *post(fx *f, const char *token, const char *body, long status) {
    t_resp r;
    assert_int_equal(t_http(&f->srv, "POST", "/api/v1/events", token, body, strlen(body), NULL, &r),
                     0);
    if (r.status != status) fprintf(stderr, "POST -> %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, status);
    json_t *j = json_incref(r.json);
    t_resp_free(&r);
    return j;
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
    json_t *e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    if (field) {
        const char *got = json_string_value(json_object_get(e, "field"));
        if (!got || strcmp(got, field) != 0) fprintf(stderr, "field %s, want %s\n", got, field);
        assert_non_null(got);
        assert_string_equal(got, field);
    }
    json_decref(j);
}

static long long events_like(fx *f, const char *prefix) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM event WHERE idem_key LIKE '%s%%'", prefix);
    return q1(f, sql);
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
    char buf[256];
    assert_int_equal(q1(f, "SELECT customer_id FROM event WHERE idem_key='r1'"), 1000);
    assert_int_equal(q1(f, "SELECT employee_id FROM event WHERE idem_key='r1'"), 101);
    assert_string_equal(q1s(f, "SELECT props FROM event WHERE idem_key='r1'", buf, sizeof buf),
                        "{\"amount\":99.5,\"items\":[1,2]}");
    assert_string_equal(
        q1s(f, "SELECT source||'/'||type||'/'||ts||'/'||tenant_id FROM event WHERE idem_key='r1'",
            buf, sizeof buf),
        "api/order.paid/1700000100/1");
    assert_int_equal(q1(f, "SELECT customer_id FROM event WHERE idem_key='r2'"), 1000);
    assert_int_equal(q1(f, "SELECT customer_id FROM event WHERE idem_key='r3'"), 1001);
    assert_int_equal(q1(f, "SELECT props IS NULL AND employee_id IS NULL FROM event "
                           "WHERE idem_key='r3'"),
                     1);
    /* wmNew1 became one customer, with its identity row, used by r4 and r5. */
    long long created = q1(f, "SELECT id FROM customer WHERE tenant_id=1 AND "
                              "external_userid='wmNew1'");
    assert_true(created > 0);
    assert_int_equal(q1(f, "SELECT count(*) FROM customer WHERE external_userid='wmNew1'"), 1);
    assert_int_equal(q1(f, "SELECT customer_id FROM identity WHERE tenant_id=1 AND "
                           "kind='wecom_external_userid' AND value='wmNew1'"),
                     created);
    assert_int_equal(q1(f, "SELECT count(DISTINCT customer_id) FROM event WHERE idem_key IN "
                           "('r4','r5')"),
                     1);
    assert_int_equal(q1(f, "SELECT customer_id FROM event WHERE idem_key='r5'"), created);
    assert_int_equal(q1(f, "SELECT employee_id FROM event WHERE idem_key='r5'"), 102);
    /* One audit row for the batch, with the count. */
    assert_int_equal(q1(f, "SELECT count FROM audit_log WHERE action='event.ingest' AND "
                           "tenant_id=1 ORDER BY id LIMIT 1"),
                     5);
    /* The customer now exists: posting for wmNew1 again creates nothing. */
    post_counts(f, f->operator_,
                "{\"events\":[{\"idempotency_key\":\"r6\",\"type\":\"x\",\"ts\":1700000105,"
                "\"external_userid\":\"wmNew1\"}]}",
                1, 0);
    assert_int_equal(q1(f, "SELECT count(*) FROM customer WHERE external_userid='wmNew1'"), 1);
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
    char buf[64];
    assert_string_equal(q1s(f, "SELECT props FROM event WHERE idem_key='d1'", buf, sizeof buf),
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
    assert_int_equal(q1(f, "SELECT count(*) FROM event WHERE idem_key='d1'"), 2);
    assert_int_equal(q1(f, "SELECT customer_id FROM event WHERE idem_key='d9'"), 1500);
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
    assert_int_equal(q1(f, "SELECT count(*) FROM customer WHERE external_userid LIKE 'wmV%'"), 0);
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
    assert_int_equal(q1(f, "SELECT count(*) FROM customer WHERE external_userid LIKE 'wmU%'"), 0);
    assert_int_equal(q1(f, "SELECT count(*) FROM identity WHERE value LIKE 'wmU%'"), 0);
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
        cmocka_unit_test(test_validation_stores_nothing),
        cmocka_unit_test(test_unknown_references_store_nothing),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_metric),
        cmocka_unit_test(test_throughput_smoke),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
