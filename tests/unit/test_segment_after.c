/* test_segment_after.c — api_segment_after: where "after customer C" is in
 * a segment result, as a dense id for segsvc_page. Customers with gaps in
 * their ids, members every third one; for every C around them the page
 * that follows must start at the first member with an id above C, also
 * after the engine was rebuilt (a deleted customer renumbers dense ids). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "segment/segsvc.h"
#include "testlib.h"

#define N 300

static int exec_step(store_conn *c, void *arg) {
    return store_conn_exec(c, arg);
}

/* Ids of customers: 10, 20, ... (gaps), members: every third. */
static void seed(store *st) {
    char *sql = malloc(256 * N + 512);
    size_t k = (size_t)sprintf(sql, "INSERT INTO tenant(tenant_id,name,created_at,updated_at) "
                                    "VALUES(1,'A',1,1);"
                                    "INSERT INTO tag(id,tenant_id,name,created_at,updated_at) "
                                    "VALUES(1,1,'A',1,1);");
    for (int i = 1; i <= N; i++)
        k += (size_t)sprintf(sql + k,
                             "INSERT INTO customer(id,tenant_id,external_userid,name,created_at,"
                             "updated_at) VALUES(%d,1,'wm%d','c',1,1);",
                             i * 10, i);
    for (int i = 1; i <= N; i += 3)
        k += (size_t)sprintf(sql + k,
                             "INSERT INTO customer_tag(tenant_id,customer_id,tag_id,created_at) "
                             "VALUES(1,%d,1,1);",
                             i * 10);
    assert_int_equal(store_write(st, exec_step, sql), 0);
    free(sql);
}

/* Checks every C from 0 to past the last id against the naive answer. */
static void check_all(segsvc *s, const segsvc_result *res, const int *gone, int ngone) {
    for (int64_t c = 0; c <= N * 10 + 5; c += 5) {
        bool start;
        uint32_t dense;
        siyu_err err = {0};
        assert_int_equal(api_segment_after(s, 1, res, c, &start, &dense, &err), 0);
        engine_row after = {.dense = dense}, rows[2];
        size_t n = 0;
        assert_int_equal(
            segsvc_page(s, 1, res, ENGINE_SORT_ID, false, start ? NULL : &after, 2, rows, &n, &err),
            0);
        int64_t want = 0;
        for (int i = 1; i <= N && !want; i += 3) {
            bool deleted = false;
            for (int g = 0; g < ngone; g++)
                deleted |= gone[g] == i * 10;
            if (i * 10 > c && !deleted) want = i * 10;
        }
        if (!want) {
            assert_int_equal(n, 0);
            continue;
        }
        assert_true(n >= 1);
        if (rows[0].customer_id != want)
            fail_msg("after %lld: got %lld, want %lld", (long long)c,
                     (long long)rows[0].customer_id, (long long)want);
    }
}

static void test_after(void **state) {
    (void)state;
    char *dir = t_tmpdir();
    siyu_err err = {0};
    store_options o = {.writer_thread = true};
    store *st = store_open(dir, &o, &err);
    assert_non_null(st);
    seed(st);
    segsvc *s = NULL;
    assert_int_equal(segsvc_open(st, &s, &err), 0);
    http_auth admin = {.tenant_id = 1, .role = ROLE_ADMIN};
    segsvc_result res;
    assert_int_equal(segsvc_eval(s, &admin, "tag(\"A\")", 8, siyu_now(), &res, &err), 0);
    assert_int_equal(res.count, (N + 2) / 3);
    check_all(s, &res, NULL, 0);

    /* Deleting customers rebuilds the engine: the old result is refused,
     * a new one is placed right with the customer ids alone. */
    assert_int_equal(store_write(st, exec_step,
                                 "DELETE FROM customer_tag WHERE customer_id IN (20, 40);"
                                 "DELETE FROM customer WHERE id IN (20, 40)"),
                     0);
    engine_row rows[1];
    size_t n;
    int rc = segsvc_page(s, 1, &res, ENGINE_SORT_ID, false, NULL, 1, rows, &n, &err);
    segsvc_result_free(&res);
    segsvc_result fresh;
    assert_int_equal(segsvc_eval(s, &admin, "tag(\"A\")", 8, siyu_now(), &fresh, &err), 0);
    assert_int_equal(rc, SIYU_ECONFLICT);
    assert_true(fresh.gen != res.gen);
    static const int gone[] = {20, 40};
    check_all(s, &fresh, gone, 2);
    segsvc_result_free(&fresh);

    /* an empty result: always from the start */
    assert_int_equal(
        segsvc_eval(s, &admin, "not tag(\"A\") and tag(\"A\")", 25, siyu_now(), &fresh, &err), 0);
    bool start = false;
    uint32_t dense = 7;
    assert_int_equal(api_segment_after(s, 1, &fresh, 500, &start, &dense, &err), 0);
    assert_true(start);
    segsvc_result_free(&fresh);
    segsvc_close(s);
    store_close(st);
    t_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_after)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
