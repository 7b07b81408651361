/* test_store_org.c — store/org.c without HTTP: write steps run inline
 * (no writer thread) against a fresh database. Covers deep cycles, foreign
 * references, savepoint rollback of failed steps, ensure/find, resign
 * idempotence and token revocation, list pages with filters, and a seeded
 * model test of re-parenting against a naive parent array. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "store/org.h"
#include "store/store.h"
#include "store/tenant.h"
#include "testlib.h"

typedef struct ctx {
    char *dir;
    store *st;
    int64_t t1, t2;
} ctx;

static int64_t make_tenant(store *st, const char *name) {
    tenant_input in = {.name = name, .actor = "test"};
    assert_int_equal(store_write(st, tenant_create, &in), 0);
    return in.id;
}

static int setup(void **state) {
    ctx *c = calloc(1, sizeof *c);
    c->dir = t_tmpdir();
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    c->st = store_open(c->dir, &o, &err);
    if (!c->st) return -1;
    c->t1 = make_tenant(c->st, "one");
    c->t2 = make_tenant(c->st, "two");
    *state = c;
    return 0;
}

static int teardown(void **state) {
    ctx *c = *state;
    store_close(c->st);
    t_rmdir(c->dir);
    free(c);
    return 0;
}

static org_input input(int64_t tenant) {
    return (org_input){.tenant_id = tenant, .actor = "test"};
}

static org_text text(const char *s) {
    return (org_text){true, s};
}

static org_ref ref(int64_t v) {
    return (org_ref){true, v == 0, v};
}

static int64_t dept(ctx *c, int64_t tenant, const char *name, int64_t parent) {
    org_input in = input(tenant);
    in.name = text(name);
    if (parent) in.parent_id = ref(parent);
    assert_int_equal(store_write(c->st, org_department_create, &in), 0);
    return in.id;
}

static int set_parent(ctx *c, int64_t tenant, int64_t id, int64_t parent, siyu_err *err) {
    org_input in = input(tenant);
    in.id = id;
    in.parent_id = ref(parent);
    int rc = store_write(c->st, org_department_update, &in);
    if (err) *err = in.err;
    return rc;
}

static int64_t count(ctx *c, const char *sql, int64_t a) {
    store_conn *rc = store_reader_acquire(c->st);
    sqlite3_stmt *s = store_conn_stmt(rc, sql);
    sqlite3_bind_int64(s, 1, a);
    int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_reset(s);
    store_reader_release(c->st, rc);
    return n;
}

static void test_deep_cycle(void **state) {
    ctx *c = *state;
    int64_t chain[40];
    chain[0] = dept(c, c->t1, "d0", 0);
    for (int i = 1; i < 40; i++)
        chain[i] = dept(c, c->t1, "d", chain[i - 1]);
    siyu_err err;
    assert_int_equal(set_parent(c, c->t1, chain[0], chain[39], &err), SIYU_EINVAL);
    assert_string_equal(err.field, "parent_id");
    assert_int_equal(set_parent(c, c->t1, chain[10], chain[25], &err), SIYU_EINVAL);
    assert_int_equal(set_parent(c, c->t1, chain[10], chain[10], &err), SIYU_EINVAL);
    /* Upwards moves and detaching are fine. */
    assert_int_equal(set_parent(c, c->t1, chain[25], chain[3], NULL), 0);
    assert_int_equal(set_parent(c, c->t1, chain[25], 0, NULL), 0);
    assert_int_equal(
        count(c, "SELECT count(*) FROM department WHERE id=?1 AND parent_id IS NULL", chain[25]),
        1);
}

/* Random re-parenting compared with a plain parent array: the store accepts
 * exactly the moves that keep the forest acyclic. */
static void test_reparent_model(void **state) {
    ctx *c = *state;
    enum { N = 24, STEPS = 400 };
    int64_t tenant = make_tenant(c->st, "model");
    int64_t id[N];
    int parent[N]; /* index of parent, -1 = root */
    for (int i = 0; i < N; i++) {
        id[i] = dept(c, tenant, "m", 0);
        parent[i] = -1;
    }
    srand(12345);
    for (int s = 0; s < STEPS; s++) {
        int x = rand() % N, p = rand() % (N + 1) - 1;
        bool cycle = false;
        for (int a = p; a >= 0; a = parent[a])
            if (a == x) cycle = true;
        int rc = set_parent(c, tenant, id[x], p < 0 ? 0 : id[p], NULL);
        assert_int_equal(rc, cycle ? SIYU_EINVAL : 0);
        if (!cycle) parent[x] = p;
    }
    for (int i = 0; i < N; i++) {
        store_conn *rc = store_reader_acquire(c->st);
        json_t *j = org_department_get_json(rc, tenant, id[i]);
        store_reader_release(c->st, rc);
        json_t *pj = json_object_get(j, "parent_id");
        if (parent[i] < 0)
            assert_true(json_is_null(pj));
        else
            assert_int_equal(json_integer_value(pj), id[parent[i]]);
        json_decref(j);
    }
}

static void test_foreign_refs_and_rollback(void **state) {
    ctx *c = *state;
    int64_t d2 = dept(c, c->t2, "two's", 0);
    int64_t audits = count(c, "SELECT count(*) FROM audit_log WHERE tenant_id=?1", c->t1);
    int64_t emps = count(c, "SELECT count(*) FROM employee WHERE tenant_id=?1", c->t1);

    org_input in = input(c->t1);
    in.userid = "x1";
    in.department_id = ref(d2);
    assert_int_equal(store_write(c->st, org_employee_create, &in), SIYU_EINVAL);
    assert_string_equal(in.err.field, "department_id");

    in = input(c->t1);
    in.name = text("s");
    in.department_id = ref(d2);
    assert_int_equal(store_write(c->st, org_store_create, &in), SIYU_EINVAL);
    assert_string_equal(in.err.field, "department_id");

    in = input(c->t1);
    in.id = d2; /* another tenant's department: not found */
    in.name = text("renamed");
    assert_int_equal(store_write(c->st, org_department_update, &in), SIYU_ENOTFOUND);

    in = input(c->t1);
    in.userid = "x1";
    in.store_id = ref(-4);
    assert_int_equal(store_write(c->st, org_employee_create, &in), SIYU_EINVAL);
    assert_string_equal(in.err.field, "store_id");

    assert_int_equal(count(c, "SELECT count(*) FROM audit_log WHERE tenant_id=?1", c->t1), audits);
    assert_int_equal(count(c, "SELECT count(*) FROM employee WHERE tenant_id=?1", c->t1), emps);
    assert_int_equal(count(c, "SELECT count(*) FROM department WHERE name='renamed' AND id=?1", d2),
                     0);
}

static int ensure_step(store_conn *sc, void *arg) {
    int64_t *out = arg; /* out[0] tenant in, out[1] id out */
    return org_employee_ensure(sc, out[0], "ensured.user", "wecom", &out[1]);
}

static void test_ensure_find(void **state) {
    ctx *c = *state;
    int64_t a[2] = {c->t1, 0}, b[2] = {c->t1, 0}, o[2] = {c->t2, 0};
    assert_int_equal(store_write(c->st, ensure_step, a), 0);
    assert_int_equal(store_write(c->st, ensure_step, b), 0);
    assert_int_equal(store_write(c->st, ensure_step, o), 0);
    assert_true(a[1] > 0);
    assert_int_equal(a[1], b[1]);
    assert_true(o[1] != a[1]);
    store_conn *rc = store_reader_acquire(c->st);
    int64_t id = 0;
    assert_int_equal(org_employee_find(rc, c->t1, "ensured.user", &id), 0);
    assert_int_equal(id, a[1]);
    assert_int_equal(org_employee_find(rc, c->t1, "nobody", &id), SIYU_ENOTFOUND);
    store_reader_release(c->st, rc);
    assert_true(org_userid_valid("A-z_0.9@x"));
    assert_false(org_userid_valid(""));
    assert_false(org_userid_valid("a b"));
    assert_false(org_userid_valid(NULL));
}

static void test_resign_revokes_tokens(void **state) {
    ctx *c = *state;
    org_input in = input(c->t1);
    in.userid = "resigner";
    assert_int_equal(store_write(c->st, org_employee_create, &in), 0);
    int64_t emp = in.id;
    auth_token_new t = {
        .tenant_id = c->t1, .role = ROLE_EMPLOYEE, .employee_id = emp, .actor = "test"};
    assert_int_equal(store_write(c->st, auth_token_insert, &t), 0);

    in = input(c->t1);
    in.id = emp;
    assert_int_equal(store_write(c->st, org_employee_resign, &in), 0);
    assert_true(in.changed);
    assert_int_equal(count(c,
                           "SELECT count(*) FROM api_token WHERE employee_id=?1 AND "
                           "revoked_at IS NULL",
                           emp),
                     0);
    store_conn *rc = store_reader_acquire(c->st);
    http_auth a;
    assert_int_equal(auth_token_lookup(rc, t.token, &a), SIYU_ENOTFOUND);
    store_reader_release(c->st, rc);

    in = input(c->t1);
    in.id = emp;
    assert_int_equal(store_write(c->st, org_employee_resign, &in), 0);
    assert_false(in.changed);
    assert_int_equal(count(c,
                           "SELECT count(*) FROM audit_log WHERE action='employee.resign' AND "
                           "target='employee:' || ?1",
                           emp),
                     1);

    in = input(c->t2);
    in.id = emp;
    assert_int_equal(store_write(c->st, org_employee_resign, &in), SIYU_ENOTFOUND);
}

static void test_list_pages(void **state) {
    ctx *c = *state;
    int64_t tenant = make_tenant(c->st, "lists");
    int64_t d = dept(c, tenant, "ld", 0);
    for (int i = 0; i < 5; i++) {
        org_input in = input(tenant);
        char uid[8];
        snprintf(uid, sizeof uid, "l%d", i);
        in.userid = uid;
        if (i < 3) in.department_id = ref(d);
        assert_int_equal(store_write(c->st, org_employee_create, &in), 0);
    }
    store_conn *rc = store_reader_acquire(c->st);
    org_list_query q = {.tenant_id = tenant, .limit = 2, .department_id = d};
    json_t *items;
    int64_t next;
    assert_int_equal(org_employee_list(rc, &q, &items, &next), 0);
    assert_int_equal(json_array_size(items), 2);
    assert_true(next > 0);
    json_decref(items);
    q.after_id = next;
    assert_int_equal(org_employee_list(rc, &q, &items, &next), 0);
    assert_int_equal(json_array_size(items), 1);
    assert_int_equal(next, 0);
    json_decref(items);
    q = (org_list_query){.tenant_id = tenant, .limit = 10, .status = "active"};
    assert_int_equal(org_employee_list(rc, &q, &items, &next), 0);
    assert_int_equal(json_array_size(items), 5);
    json_decref(items);
    q.tenant_id = c->t2;
    q.department_id = d;
    assert_int_equal(org_employee_list(rc, &q, &items, &next), 0);
    assert_int_equal(json_array_size(items), 0);
    json_decref(items);
    store_reader_release(c->st, rc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deep_cycle),
        cmocka_unit_test(test_reparent_model),
        cmocka_unit_test(test_foreign_refs_and_rollback),
        cmocka_unit_test(test_ensure_find),
        cmocka_unit_test(test_resign_revokes_tokens),
        cmocka_unit_test(test_list_pages),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
