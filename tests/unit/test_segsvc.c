/* test_segsvc.c — the segment service keeps its engines current.
 *
 * Model-based: a seeded random sequence of writes through the real store
 * (writer thread, group commit, savepoints) — customers, tags, memberships,
 * relationships, group chats and members, organisation records, events,
 * steps that fail and roll back, several steps in one batch — and after
 * every acknowledged write, random expressions evaluated by the service must
 * give exactly what an engine freshly built from the store gives (customer
 * ids, or the same error), for an admin and for an employee token.
 * SEED=n and STEPS=n override. */
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

#include "segment/segsvc.h"
#include "testlib.h"

#define TENANT 1
#define NOW 1790000000LL

static uint64_t rng_state;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static int64_t rint_(int64_t n) {
    return n > 0 ? (int64_t)(rnd() % (uint64_t)n) : 0;
}

static const char *const regions[] = {"上海", "北京", "广东", "浙江"};
static const char *const stages[] = {"lead", "new", "vip"};
static const char *const statuses[] = {"active", "active", "deleted_by_customer",
                                       "deleted_by_employee", "transferred"};
static const char *const channels[] = {"qr-store", "qr-event", "ad"};
static const char *const types[] = {"order", "view", "message"};

/* What exists, so random writes pick real ids (max ids; rows may be gone). */
static int64_t n_customers, n_tags, n_emps, n_deps, n_stores, n_groups;

static int exec_sql(store_conn *c, const char *fmt, ...) {
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return store_conn_exec(c, sql);
}

/* One random change; returns 0 or an error code (rolls the step back). */
static int random_change(store_conn *c) {
    int64_t cust = 1 + rint_(n_customers ? n_customers : 1);
    switch (rint_(14)) {
    case 0:
    case 1: {
        n_customers++;
        char region[32] = "NULL";
        if (rint_(5)) snprintf(region, sizeof region, "'%s'", regions[rint_(4)]);
        return exec_sql(c,
                        "INSERT INTO customer(id, tenant_id, name, gender, first_added_at, region, "
                        "stage, created_at, updated_at) VALUES (%lld, %d, 'c', %lld, %lld, %s, "
                        "'%s', 0, 0)",
                        (long long)n_customers, TENANT, (long long)rint_(3),
                        (long long)(NOW - rint_(90 * 86400)), region, stages[rint_(3)]);
    }
    case 2:
        return exec_sql(c,
                        "UPDATE customer SET region = '%s', stage = '%s', gender = %lld WHERE id = "
                        "%lld",
                        regions[rint_(4)], stages[rint_(3)], (long long)rint_(3), (long long)cust);
    case 3:
        if (rint_(4) == 0) {
            n_tags++;
            return exec_sql(c,
                            "INSERT INTO tag(id, tenant_id, name, created_at, updated_at) "
                            "VALUES (%lld, %d, 't%lld', 0, 0)",
                            (long long)n_tags, TENANT, (long long)(n_tags % 5));
        }
        return exec_sql(c,
                        "INSERT OR IGNORE INTO customer_tag(tenant_id, customer_id, tag_id, "
                        "created_at) SELECT %d, %lld, %lld, 0 WHERE EXISTS (SELECT 1 FROM tag "
                        "WHERE id = %lld) AND EXISTS (SELECT 1 FROM customer WHERE id = %lld)",
                        TENANT, (long long)cust, (long long)(1 + rint_(n_tags)),
                        (long long)(1 + rint_(n_tags)), (long long)cust);
    case 4:
        if (rint_(6) == 0) { /* delete a tag with its memberships */
            int64_t t = 1 + rint_(n_tags);
            int rc = exec_sql(c, "DELETE FROM customer_tag WHERE tag_id = %lld", (long long)t);
            return rc ? rc : exec_sql(c, "DELETE FROM tag WHERE id = %lld", (long long)t);
        }
        return exec_sql(c, "DELETE FROM customer_tag WHERE customer_id = %lld AND tag_id = %lld",
                        (long long)cust, (long long)(1 + rint_(n_tags)));
    case 5:
        if (rint_(3) == 0 && n_emps > 0)
            return exec_sql(c,
                            "UPDATE relationship SET status = '%s', state = '%s' WHERE "
                            "customer_id = %lld",
                            statuses[rint_(5)], channels[rint_(3)], (long long)cust);
        return exec_sql(c,
                        "INSERT INTO relationship(tenant_id, customer_id, employee_id, status, "
                        "added_at, state, updated_at) SELECT %d, %lld, %lld, '%s', 0, '%s', 0 "
                        "WHERE EXISTS (SELECT 1 FROM employee WHERE id = %lld) AND EXISTS "
                        "(SELECT 1 FROM customer WHERE id = %lld)",
                        TENANT, (long long)cust, (long long)(1 + rint_(n_emps)), statuses[rint_(5)],
                        channels[rint_(3)], (long long)(1 + rint_(n_emps)), (long long)cust);
    case 6:
        if (rint_(2) == 0) {
            n_deps++;
            return exec_sql(c,
                            "INSERT INTO department(id, tenant_id, name, parent_id, created_at, "
                            "updated_at) VALUES (%lld, %d, 'd%lld', %s, 0, 0)",
                            (long long)n_deps, TENANT, (long long)n_deps,
                            n_deps > 1 && rint_(2) ? "1" : "NULL");
        }
        n_stores++;
        return exec_sql(c,
                        "INSERT INTO store(id, tenant_id, name, created_at, updated_at) VALUES "
                        "(%lld, %d, 's%lld', 0, 0)",
                        (long long)n_stores, TENANT, (long long)n_stores);
    case 7:
        if (rint_(2) == 0 || n_emps == 0) {
            n_emps++;
            return exec_sql(c,
                            "INSERT INTO employee(id, tenant_id, userid, name, department_id, "
                            "store_id, created_at, updated_at) VALUES (%lld, %d, 'u%lld', "
                            "'e%lld', %s, NULL, 0, 0)",
                            (long long)n_emps, TENANT, (long long)n_emps, (long long)n_emps,
                            n_deps ? "1" : "NULL");
        }
        return exec_sql(c,
                        "UPDATE employee SET department_id = (SELECT id FROM department WHERE "
                        "id = %lld), store_id = (SELECT id FROM store WHERE id = %lld) WHERE "
                        "id = %lld",
                        (long long)(1 + rint_(n_deps)), (long long)(1 + rint_(n_stores)),
                        (long long)(1 + rint_(n_emps)));
    case 8:
        if (rint_(5) == 0) {
            /* a group chat, then a new customer who joins it, in one step:
             * the chat's note is applied before the engine knows the
             * customer */
            n_groups++;
            n_customers++;
            int rc =
                exec_sql(c,
                         "INSERT INTO group_chat(id, tenant_id, chat_id, name, status, "
                         "created_at, updated_at) VALUES (%lld, %d, 'g%lld', 'g%lld', "
                         "'active', 0, 0)",
                         (long long)n_groups, TENANT, (long long)n_groups, (long long)n_groups);
            if (!rc)
                rc = exec_sql(c,
                              "INSERT INTO customer(id, tenant_id, created_at, updated_at) "
                              "VALUES (%lld, %d, 0, 0)",
                              (long long)n_customers, TENANT);
            if (!rc)
                rc = exec_sql(c,
                              "INSERT INTO group_member(tenant_id, group_id, member_id, "
                              "customer_id, status) VALUES (%d, %lld, 'm%lld', %lld, 'in')",
                              TENANT, (long long)n_groups, (long long)n_customers,
                              (long long)n_customers);
            if (!rc)
                rc = exec_sql(c, "UPDATE group_chat SET name = 'g%lld!' WHERE id = %lld",
                              (long long)n_groups, (long long)n_groups);
            return rc;
        }
        if (rint_(3) == 0 || n_groups == 0) {
            n_groups++;
            return exec_sql(c,
                            "INSERT INTO group_chat(id, tenant_id, chat_id, name, status, "
                            "created_at, updated_at) VALUES (%lld, %d, 'g%lld', 'g%lld', "
                            "'active', 0, 0)",
                            (long long)n_groups, TENANT, (long long)n_groups, (long long)n_groups);
        }
        if (rint_(4) == 0)
            return exec_sql(c, "UPDATE group_chat SET status = '%s' WHERE id = %lld",
                            rint_(2) ? "dismissed" : "active", (long long)(1 + rint_(n_groups)));
        return exec_sql(c,
                        "INSERT INTO group_member(tenant_id, group_id, member_id, customer_id, "
                        "status) SELECT %d, %lld, 'm%lld', %lld, 'in' WHERE EXISTS (SELECT 1 "
                        "FROM customer WHERE id = %lld) ON CONFLICT DO UPDATE SET status = "
                        "CASE status WHEN 'in' THEN 'left' ELSE 'in' END",
                        TENANT, (long long)(1 + rint_(n_groups)), (long long)cust, (long long)cust,
                        (long long)cust);
    case 9:
    case 10:
    case 11: {
        const char *type = types[rint_(3)];
        char props[64] = "NULL";
        if (strcmp(type, "order") == 0)
            snprintf(props, sizeof props, "'{\"amount\": %lld.%02lld}'", (long long)rint_(500),
                     (long long)rint_(100));
        return exec_sql(c,
                        "INSERT INTO event(tenant_id, customer_id, type, ts, source, props) "
                        "SELECT %d, %lld, '%s', %lld, 'api', %s WHERE EXISTS (SELECT 1 FROM "
                        "customer WHERE id = %lld)",
                        TENANT, (long long)cust, type, (long long)(NOW - rint_(40 * 86400)), props,
                        (long long)cust);
    }
    case 12: /* a step that writes and then fails: nothing of it may show */
        exec_sql(c,
                 "INSERT INTO customer_tag(tenant_id, customer_id, tag_id, created_at) SELECT "
                 "%d, %lld, id, 0 FROM tag WHERE NOT EXISTS (SELECT 1 FROM customer_tag WHERE "
                 "customer_id = %lld AND tag_id = tag.id) AND EXISTS (SELECT 1 FROM customer "
                 "WHERE id = %lld)",
                 TENANT, (long long)cust, (long long)cust, (long long)cust);
        exec_sql(c,
                 "INSERT INTO event(tenant_id, customer_id, type, ts, source) SELECT %d, %lld, "
                 "'view', %lld, 'api' WHERE EXISTS (SELECT 1 FROM customer WHERE id = %lld)",
                 TENANT, (long long)cust, (long long)NOW, (long long)cust);
        return SIYU_EINVAL;
    default:
        return exec_sql(c, "UPDATE customer SET first_added_at = %lld WHERE id = %lld",
                        (long long)(NOW - rint_(90 * 86400)), (long long)cust);
    }
}

static int change_step(store_conn *c, void *arg) {
    (void)arg;
    int rc = random_change(c);
    return rc == SIYU_ECONFLICT ? 0 : rc; /* a duplicate key is a no-op change */
}

static void async_done(void *arg, int rc) {
    (void)rc;
    (*(int *)arg)++;
}

static int setup_step(store_conn *c, void *arg) {
    (void)arg;
    return exec_sql(c,
                    "INSERT INTO tenant(tenant_id, name, created_at, updated_at) VALUES "
                    "(%d, 't', 0, 0)",
                    TENANT);
}

/* A random expression over what exists (ids may name deleted records). */
static void random_expr(char *buf, size_t cap, int depth) {
    int k = (int)rint_(depth > 2 ? 12 : 15);
    char a[512], b[512];
    switch (k) {
    case 0:
        snprintf(buf, cap, "tag(%lld)", (long long)(1 + rint_(n_tags + 1)));
        break;
    case 1:
        snprintf(buf, cap, "tag(\"t%lld\")", (long long)rint_(5));
        break;
    case 2:
        snprintf(buf, cap, "employee(%lld)", (long long)(1 + rint_(n_emps + 1)));
        break;
    case 3:
        snprintf(buf, cap, "department(%lld)", (long long)(1 + rint_(n_deps + 1)));
        break;
    case 4:
        snprintf(buf, cap, "store(%lld)", (long long)(1 + rint_(n_stores + 1)));
        break;
    case 5:
        snprintf(buf, cap, "group(%lld)", (long long)(1 + rint_(n_groups + 1)));
        break;
    case 6:
        snprintf(buf, cap, "region in (\"%s\", \"%s\")", regions[rint_(4)], regions[rint_(4)]);
        break;
    case 7:
        snprintf(buf, cap, "stage = \"%s\" or gender = \"female\"", stages[rint_(3)]);
        break;
    case 8:
        snprintf(buf, cap, "relationship_status = \"%s\"", rint_(3) ? statuses[rint_(5)] : "lost");
        break;
    case 9:
        snprintf(buf, cap, "channel(\"%s\")", channels[rint_(3)]);
        break;
    case 10:
        snprintf(buf, cap, "%s", rint_(2) ? "spent > 100" : "orders_total >= 2");
        break;
    case 11:
        snprintf(buf, cap, "did(\"%s\", %lldd) or last_active > %lldd", types[rint_(3)],
                 (long long)(1 + rint_(30)), (long long)(1 + rint_(30)));
        break;
    case 12:
        random_expr(a, sizeof a, depth + 1);
        random_expr(b, sizeof b, depth + 1);
        snprintf(buf, cap, "(%s) and (%s)", a, b);
        break;
    case 13:
        random_expr(a, sizeof a, depth + 1);
        random_expr(b, sizeof b, depth + 1);
        snprintf(buf, cap, "(%s) or not (%s)", a, b);
        break;
    default:
        random_expr(a, sizeof a, depth + 1);
        snprintf(buf, cap, "not (%s)", a);
        break;
    }
}

/* Customer ids of a fresh build's evaluation of src, restricted to the
 * employee's customers when emp; NULL with *rc on error. */
static int64_t *fresh_eval(engine *e, const char *src, int64_t emp, size_t *n, int *rc) {
    expr_node *x = NULL;
    expr_err pe;
    *rc = expr_parse(src, strlen(src), &x, &pe);
    if (*rc) return NULL;
    roaring_bitmap_t *bm = NULL;
    siyu_err err = {0};
    *rc = engine_eval(e, x, NOW, &bm, &err);
    expr_free(x);
    if (*rc) return NULL;
    if (emp) {
        const roaring_bitmap_t *s = engine_members(e, EXPR_DIM_EMPLOYEE, emp);
        if (s)
            roaring_bitmap_and_inplace(bm, s);
        else
            roaring_bitmap_clear(bm);
    }
    *n = roaring_bitmap_get_cardinality(bm);
    int64_t *ids = malloc((*n + 1) * sizeof *ids);
    uint32_t *d = malloc((*n + 1) * sizeof *d);
    roaring_bitmap_to_uint32_array(bm, d);
    for (size_t i = 0; i < *n; i++)
        ids[i] = engine_customer_id(e, d[i]);
    free(d);
    roaring_bitmap_free(bm);
    return ids;
}

typedef struct collect {
    int64_t *ids;
    size_t n, cap;
} collect;

static int collect_fn(void *arg, const int64_t *ids, size_t n) {
    collect *c = arg;
    if (c->n + n > c->cap) {
        c->cap = (c->n + n) * 2;
        c->ids = realloc(c->ids, c->cap * sizeof *c->ids);
    }
    memcpy(c->ids + c->n, ids, n * sizeof *ids);
    c->n += n;
    return 0;
}

static void compare(segsvc *svc, store *st, int step) {
    engine *fresh = NULL;
    siyu_err err = {0};
    assert_int_equal(engine_build(st, TENANT, &fresh, &err), 0);
    const char *why = NULL;
    if (!engine_validate(fresh, &why)) fail_msg("fresh engine invalid: %s", why);
    for (int q = 0; q < 6; q++) {
        char src[2048];
        random_expr(src, sizeof src, 0);
        int64_t emp = q % 3 == 2 ? 1 + rint_(n_emps + 1) : 0;
        http_auth a = {
            .tenant_id = TENANT, .role = emp ? ROLE_EMPLOYEE : ROLE_ADMIN, .employee_id = emp};
        size_t nf = 0;
        int frc;
        int64_t *want = fresh_eval(fresh, src, emp, &nf, &frc);
        segsvc_result r;
        siyu_err e2 = {0};
        int rc = segsvc_eval(svc, &a, src, strlen(src), NOW, &r, &e2);
        if (rc != frc)
            fail_msg("step %d: %s: service rc %d (%s), fresh build rc %d", step, src, rc, e2.msg,
                     frc);
        if (rc == 0) {
            collect got = {0};
            assert_int_equal(segsvc_walk(svc, TENANT, &r, collect_fn, &got, &e2), 0);
            if (got.n != nf || r.count != nf ||
                (nf && memcmp(got.ids, want, nf * sizeof *want) != 0))
                fail_msg("step %d: %s (employee %lld): service %zu customers, fresh build %zu",
                         step, src, (long long)emp, got.n, nf);
            free(got.ids);
            segsvc_result_free(&r);
        }
        free(want);
    }
    engine_free(fresh);
}

static void test_live_equals_rebuild(void **state) {
    (void)state;
    const char *s = getenv("SEED");
    rng_state = s ? strtoull(s, NULL, 10) : 20261123;
    s = getenv("STEPS");
    int steps = s ? atoi(s) : 300;
    char *dir = t_tmpdir();
    siyu_err err = {0};
    store_options so = {.writer_thread = true};
    store *st = store_open(dir, &so, &err);
    assert_non_null(st);
    assert_int_equal(store_write(st, setup_step, NULL), 0);
    segsvc *svc = NULL;
    assert_int_equal(segsvc_open(st, &svc, &err), 0);
    for (int i = 0; i < steps; i++) {
        if (rint_(4) == 0) { /* several steps in one batch */
            int done = 0, k = 2 + (int)rint_(4);
            for (int j = 0; j < k; j++)
                assert_int_equal(store_write_async(st, change_step, NULL, async_done, &done), 0);
            store_write(st, change_step, NULL);
            while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) < k)
                store_write(st, change_step, NULL);
        } else {
            store_write(st, change_step, NULL);
        }
        compare(svc, st, i);
    }
    segsvc_stats stats;
    assert_true(segsvc_stats_get(svc, TENANT, &stats));
    assert_true(stats.applied > 0);
    assert_int_equal(stats.rebuilds, 0); /* every change followed in place */
    print_message("segsvc: %d steps, %u customers, %llu events, %llu notes applied, %llu "
                  "rebuilds\n",
                  steps, stats.customers, (unsigned long long)stats.events,
                  (unsigned long long)stats.applied, (unsigned long long)stats.rebuilds);
    segsvc_close(svc);
    store_close(st);
    t_rmdir(dir);
}

/* A tenant created after the service started gets an engine on its first
 * write, and a write acknowledged to a caller is visible to the next read. */
static int new_tenant_step(store_conn *c, void *arg) {
    (void)arg;
    int rc = exec_sql(c, "INSERT INTO tenant(tenant_id, name, created_at, updated_at) VALUES "
                         "(2, 'two', 0, 0)");
    if (!rc)
        rc = exec_sql(c, "INSERT INTO customer(id, tenant_id, region, created_at, updated_at) "
                         "VALUES (1000, 2, '上海', 0, 0)");
    return rc;
}

static void test_new_tenant(void **state) {
    (void)state;
    char *dir = t_tmpdir();
    siyu_err err = {0};
    store_options so = {.writer_thread = true};
    store *st = store_open(dir, &so, &err);
    assert_non_null(st);
    segsvc *svc = NULL;
    assert_int_equal(segsvc_open(st, &svc, &err), 0);
    http_auth a = {.tenant_id = 2, .role = ROLE_OPERATOR};
    segsvc_result r;
    assert_int_equal(segsvc_eval(svc, &a, "", 0, NOW, &r, &err), SIYU_ENOTFOUND);
    assert_int_equal(store_write(st, new_tenant_step, NULL), 0);
    const char *src = "region = \"上海\"";
    assert_int_equal(segsvc_eval(svc, &a, src, strlen(src), NOW, &r, &err), 0);
    assert_int_equal(r.count, 1);
    segsvc_result_free(&r);
    /* a parse error comes back with its caret message */
    src = "region = ";
    assert_int_equal(segsvc_eval(svc, &a, src, strlen(src), NOW, &r, &err), SIYU_EINVAL);
    assert_non_null(strstr(err.msg, "line 1, column"));
    assert_non_null(strchr(err.msg, '^'));
    segsvc_close(svc);
    store_close(st);
    t_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_tenant),
        cmocka_unit_test(test_live_equals_rebuild),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
