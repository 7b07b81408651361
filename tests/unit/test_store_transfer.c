/* test_store_transfer.c — store/transfer.c without HTTP or WeCom: write steps run
 * inline against a fresh database. Covers batching (one outbox row per 100
 * customers, bodies and refs), validation that writes nothing, the answer
 * mapping (0/40100/40129 waiting, 40128 transfer_too_frequent, other codes by
 * name, dead calls), resigned handovers, and the callback hooks (done from
 * either side, refused). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/transfer.h"
#include "testlib.h"

typedef struct ctx {
    char *dir;
    store *st;
} ctx;

static int exec_step(store_conn *c, void *arg) {
    return store_conn_exec(c, arg);
}

static void sql(ctx *x, const char *s) {
    assert_int_equal(store_write(x->st, exec_step, (void *)s), 0);
}

static long long q(ctx *x, const char *s) {
    return t_sql_int(x->dir, "%s", s);
}

/* 150 customers (ids 1..150) of employee 1 (u1); employees 2 (u2) and 3
 * (resigned r3, with customers 201, 202). */
static int setup(void **state) {
    ctx *x = calloc(1, sizeof *x);
    x->dir = t_tmpdir();
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    x->st = store_open(x->dir, &o, &err);
    if (!x->st) return -1;
    *state = x;
    char *buf = malloc(64 * 1024);
    size_t n = (size_t)snprintf(
        buf, 64 * 1024,
        "INSERT INTO tenant(tenant_id,name,created_at,updated_at) VALUES(1,'A',1,1);"
        "INSERT INTO employee(id,tenant_id,userid,status,created_at,updated_at) VALUES"
        " (1,1,'u1','active',1,1),(2,1,'u2','active',1,1),(3,1,'r3','resigned',1,1),"
        " (4,1,'r4','resigned',1,1);"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<150) "
        "INSERT INTO customer(id,tenant_id,external_userid,created_at,updated_at) "
        "SELECT i,1,'wm'||i,1,1 FROM n;"
        "INSERT INTO customer(id,tenant_id,external_userid,created_at,updated_at) VALUES"
        " (201,1,'wm201',1,1),(202,1,'wm202',1,1),(300,1,NULL,1,1);"
        "INSERT INTO identity(tenant_id,customer_id,kind,value,created_at) "
        "SELECT 1,id,'wecom_external_userid',external_userid,1 FROM customer "
        "WHERE external_userid IS NOT NULL;"
        "INSERT INTO relationship(tenant_id,customer_id,employee_id,status,added_at,updated_at) "
        "SELECT 1,id,1,'active',1,1 FROM customer WHERE id<=150 OR id=300;"
        "INSERT INTO relationship(tenant_id,customer_id,employee_id,status,added_at,updated_at) "
        "VALUES (1,201,3,'active',1,1),(1,202,3,'active',1,1);");
    assert_true(n < 64 * 1024);
    sql(x, buf);
    free(buf);
    return 0;
}

static int teardown(void **state) {
    ctx *x = *state;
    store_close(x->st);
    t_rmdir(x->dir);
    free(x);
    return 0;
}

static transfer_request req(int64_t from, int64_t to, const char *ids, size_t n) {
    return (transfer_request){.auth = {.tenant_id = 1, .role = ROLE_ADMIN},
                              .handover_id = from,
                              .takeover_id = to,
                              .customer_ids = ids,
                              .ncustomers = n,
                              .message = "hello",
                              .actor = "test"};
}

static char *range_json(int lo, int hi) {
    char *s = malloc(8 * (size_t)(hi - lo + 2) + 2);
    size_t k = 0;
    s[k++] = '[';
    for (int i = lo; i <= hi; i++)
        k += (size_t)sprintf(s + k, "%s%d", i > lo ? "," : "", i);
    s[k++] = ']';
    s[k] = 0;
    return s;
}

/* The ingest hooks, each as a write step of its own. */
typedef struct hook {
    int kind; /* 0 add, 1 transfer delete, 2 fail */
    int64_t cust, emp;
    const char *reason;
} hook;

static int hook_step(store_conn *c, void *arg) {
    hook *h = arg;
    switch (h->kind) {
    case 0:
        return transfer_on_add(c, 1, h->cust, h->emp, 1000);
    case 1:
        return transfer_on_transfer_delete(c, 1, h->cust, h->emp, 1000);
    default:
        return transfer_on_fail(c, 1, h->cust, h->emp, h->reason, 1000);
    }
}

static int transfer_on_add_w(ctx *x, int64_t cust, int64_t emp) {
    hook h = {0, cust, emp, NULL};
    return store_write(x->st, hook_step, &h);
}

static int transfer_on_delete_w(ctx *x, int64_t cust, int64_t emp) {
    hook h = {1, cust, emp, NULL};
    return store_write(x->st, hook_step, &h);
}

static int transfer_on_fail_w(ctx *x, int64_t cust, int64_t emp, const char *reason) {
    hook h = {2, cust, emp, reason};
    return store_write(x->st, hook_step, &h);
}

static void test_validation_writes_nothing(void **state) {
    ctx *x = *state;
    struct {
        int64_t from, to;
        const char *ids;
        int code;
        const char *field;
    } bad[] = {
        {1, 1, "[1]", SIYU_EINVAL, "takeover_employee_id"},
        {1, 99, "[1]", SIYU_EINVAL, "takeover_employee_id"},
        {99, 2, "[1]", SIYU_EINVAL, "handover_employee_id"},
        {1, 3, "[1]", SIYU_EINVAL, "takeover_employee_id"}, /* resigned takeover */
        {1, 2, "[1,201]", SIYU_EINVAL, "customer_ids[1]"},  /* not u1's */
        {1, 2, "[1,999]", SIYU_EINVAL, "customer_ids[1]"},
        {1, 2, "[2,300]", SIYU_EINVAL, "customer_ids[1]"}, /* no external_userid */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        transfer_request t = req(bad[i].from, bad[i].to, bad[i].ids, 2);
        assert_int_equal(store_write(x->st, transfer_request_step, &t), bad[i].code);
        assert_string_equal(t.err.field, bad[i].field);
    }
    assert_int_equal(q(x, "SELECT count(*) FROM transfer"), 0);
    assert_int_equal(q(x, "SELECT count(*) FROM outbox"), 0);
    /* A manager outside their department: forbidden. */
    transfer_request t = req(1, 2, "[1]", 1);
    t.auth.role = ROLE_MANAGER;
    t.auth.employee_id = 2;
    assert_int_equal(store_write(x->st, transfer_request_step, &t), SIYU_EDENIED);
}

static void test_batches_answers_and_callbacks(void **state) {
    ctx *x = *state;
    char *ids = range_json(1, 150);
    transfer_request t = req(1, 2, ids, 150);
    assert_int_equal(store_write(x->st, transfer_request_step, &t), 0);
    free(ids);
    assert_int_equal(t.count, 150);
    assert_int_equal(t.batches, 2);
    assert_false(t.resigned);
    assert_int_equal(q(x, "SELECT count(*) FROM outbox WHERE kind='transfer_customer' AND lane=1"),
                     2);
    assert_int_equal(q(x, "SELECT json_array_length(body,'$.external_userid') FROM outbox "
                          "ORDER BY id LIMIT 1"),
                     100);
    assert_int_equal(q(x, "SELECT json_array_length(body,'$.external_userid') FROM outbox "
                          "ORDER BY id DESC LIMIT 1"),
                     50);
    assert_string_equal(t_sql_text(x->dir, "SELECT json_extract(body,'$.handover_userid')||'>'||"
                                           "json_extract(body,'$.takeover_userid')||':'||"
                                           "json_extract(body,'$.transfer_success_msg') FROM "
                                           "outbox LIMIT 1"),
                        "u1>u2:hello");
    int64_t b1 = t.first_id, b2 = t.first_id + 100;
    char ref1[48], ref2[48];
    snprintf(ref1, sizeof ref1, "transfer_batch:%lld", (long long)b1);
    snprintf(ref2, sizeof ref2, "transfer_batch:%lld", (long long)b2);
    assert_string_equal(t_sql_text(x->dir, "SELECT ref FROM outbox ORDER BY id LIMIT 1"), ref1);
    assert_int_equal(t_sql_int(x->dir,
                               "SELECT count(*) FROM transfer WHERE batch_id=%lld AND "
                               "outbox_id IS NOT NULL",
                               (long long)b2),
                     50);
    /* In flight: a second request for customer 7 conflicts. */
    transfer_request again = req(1, 2, "[7]", 1);
    assert_int_equal(store_write(x->st, transfer_request_step, &again), SIYU_ECONFLICT);
    assert_string_equal(again.err.field, "customer_ids[0]");

    /* Batch 1 answered: per-customer codes; unlisted ones are waiting. */
    json_t *ans = json_pack("{s:i,s:[{s:s,s:i},{s:s,s:i},{s:s,s:i},{s:s,s:i}]}", "errcode", 0,
                            "customer", "external_userid", "wm1", "errcode", 0, "external_userid",
                            "wm2", "errcode", 40128, "external_userid", "wm3", "errcode", 40129,
                            "external_userid", "wm4", "errcode", 40096);
    transfer_result r = {.tenant_id = 1, .ref = ref1, .state = "sent", .answer = ans};
    assert_int_equal(store_write(x->st, transfer_result_step, &r), 0);
    json_decref(ans);
    assert_int_equal(r.updated, 100);
    assert_string_equal(t_sql_text(x->dir, "SELECT state FROM transfer WHERE customer_id=1"),
                        "waiting");
    assert_string_equal(t_sql_text(x->dir, "SELECT state||':'||error FROM transfer WHERE "
                                           "customer_id=2"),
                        "failed:transfer_too_frequent");
    assert_string_equal(t_sql_text(x->dir, "SELECT state FROM transfer WHERE customer_id=3"),
                        "waiting");
    assert_string_equal(t_sql_text(x->dir, "SELECT state FROM transfer WHERE customer_id=4"),
                        "failed");
    assert_int_equal(q(x, "SELECT errcode FROM transfer WHERE customer_id=4"), 40096);
    assert_int_equal(q(x, "SELECT count(*) FROM transfer WHERE customer_id<=100 AND "
                          "state='waiting'"),
                     98);
    /* Batch 2: the call died. */
    r = (transfer_result){.tenant_id = 1, .ref = ref2, .state = "dead", .errcode = 40128};
    assert_int_equal(store_write(x->st, transfer_result_step, &r), 0);
    assert_int_equal(r.updated, 50);
    assert_int_equal(q(x, "SELECT count(*) FROM transfer WHERE customer_id>100 AND "
                          "error='transfer_too_frequent'"),
                     50);

    /* Callbacks: the takeover's add finishes customer 1; the handover's
     * transfer delete finishes 3; transfer_fail refuses 5. */
    assert_int_equal(transfer_on_add_w(x, 1, 2), 0);
    assert_string_equal(t_sql_text(x->dir, "SELECT state FROM transfer WHERE customer_id=1"),
                        "done");
    assert_string_equal(t_sql_text(x->dir, "SELECT status FROM relationship WHERE "
                                           "customer_id=1 AND employee_id=1"),
                        "transferred");
    assert_int_equal(transfer_on_delete_w(x, 3, 1), 0);
    assert_string_equal(t_sql_text(x->dir, "SELECT state FROM transfer WHERE customer_id=3"),
                        "done");
    assert_string_equal(t_sql_text(x->dir, "SELECT status FROM relationship WHERE "
                                           "customer_id=3 AND employee_id=2"),
                        "active");
    assert_int_equal(transfer_on_fail_w(x, 5, 2, "customer_refused"), 0);
    assert_string_equal(t_sql_text(x->dir, "SELECT state FROM transfer WHERE customer_id=5"),
                        "refused");
    assert_int_equal(transfer_on_fail_w(x, 6, 2, "customer_limit_exceed"), 0);
    assert_string_equal(t_sql_text(x->dir, "SELECT state||':'||error FROM transfer WHERE "
                                           "customer_id=6"),
                        "failed:customer_limit_exceed");
    /* A finished transfer no longer blocks a new one. */
    transfer_request next = req(2, 1, "[3]", 1);
    assert_int_equal(store_write(x->st, transfer_request_step, &next), 0);
}

static void test_resigned_handover(void **state) {
    ctx *x = *state;
    transfer_request t = req(3, 2, "[201,202]", 2);
    assert_int_equal(store_write(x->st, transfer_request_step, &t), 0);
    assert_true(t.resigned);
    assert_int_equal(t.batches, 1);
    assert_string_equal(t_sql_text(x->dir, "SELECT kind FROM outbox ORDER BY id DESC LIMIT 1"),
                        "resigned_transfer_customer");
    assert_int_equal(q(x, "SELECT json_type(body,'$.transfer_success_msg') IS NULL FROM outbox "
                          "ORDER BY id DESC LIMIT 1"),
                     1);
    assert_string_equal(t_sql_text(x->dir, "SELECT kind FROM transfer WHERE customer_id=201"),
                        "resigned");
    /* In flight until an operator cancels the outbox row; then a new request
     * settles the old rows as failed (cancelled). */
    transfer_request again = req(3, 2, "[201]", 1);
    assert_int_equal(store_write(x->st, transfer_request_step, &again), SIYU_ECONFLICT);
    char upd[128];
    snprintf(upd, sizeof upd, "UPDATE outbox SET state='cancelled' WHERE id=%lld",
             t_sql_int(x->dir, "SELECT outbox_id FROM transfer WHERE customer_id=201"));
    sql(x, upd);
    again = req(3, 2, "[201]", 1);
    assert_int_equal(store_write(x->st, transfer_request_step, &again), 0);
    assert_string_equal(t_sql_text(x->dir, "SELECT state||':'||error FROM transfer WHERE "
                                           "customer_id=201 ORDER BY id LIMIT 1"),
                        "failed:cancelled");
    assert_string_equal(t_sql_text(x->dir, "SELECT state FROM transfer WHERE customer_id=202"),
                        "requested");
}

static void test_errcode_map(void **state) {
    (void)state;
    const char *e;
    assert_string_equal(transfer_state_for_errcode(0, &e), "waiting");
    assert_null(e);
    assert_string_equal(transfer_state_for_errcode(40100, &e), "waiting");
    assert_string_equal(transfer_state_for_errcode(40129, &e), "waiting");
    assert_string_equal(transfer_state_for_errcode(40128, &e), "failed");
    assert_string_equal(e, "transfer_too_frequent");
    assert_string_equal(transfer_state_for_errcode(40131, &e), "failed");
    assert_non_null(e);
}

/* Answers recorded while no listener ran are applied at start-up. */
static void test_catch_up(void **state) {
    ctx *x = *state;
    transfer_request t = req(1, 2, "[140,141]", 2);
    assert_int_equal(store_write(x->st, transfer_request_step, &t), 0);
    char upd[512];
    snprintf(upd, sizeof upd,
             "UPDATE outbox SET state='sent', result='{\"errcode\":0,\"customer\":["
             "{\"external_userid\":\"wm140\",\"errcode\":40128}]}' WHERE "
             "ref='transfer_batch:%lld'",
             (long long)t.first_id);
    sql(x, upd);
    int64_t n = 0;
    assert_int_equal(store_write(x->st, transfer_catch_up_step, &n), 0);
    assert_int_equal(n, 3); /* and customer 202, whose call was cancelled */
    assert_string_equal(t_sql_text(x->dir, "SELECT state||':'||error FROM transfer WHERE "
                                           "customer_id=202"),
                        "failed:cancelled");
    assert_string_equal(t_sql_text(x->dir, "SELECT state||':'||error FROM transfer WHERE id=%lld",
                                   (long long)t.first_id),
                        "failed:transfer_too_frequent");
    assert_string_equal(
        t_sql_text(x->dir, "SELECT state FROM transfer WHERE id=%lld", (long long)t.first_id + 1),
        "waiting");
    assert_int_equal(store_write(x->st, transfer_catch_up_step, &n), 0);
    assert_int_equal(n, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errcode_map),
        cmocka_unit_test(test_validation_writes_nothing),
        cmocka_unit_test(test_batches_answers_and_callbacks),
        cmocka_unit_test(test_resigned_handover),
        cmocka_unit_test(test_catch_up),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
