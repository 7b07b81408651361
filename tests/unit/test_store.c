/* test_store.c — the store core: migrations, the group-commit writer,
 * per-command savepoints, async completion, reader snapshots. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/tenant.h"
#include "testlib.h"

static int insert_tenant(store_conn *c, void *arg) {
    const char *name = arg;
    sqlite3_stmt *st = store_conn_stmt(c, "INSERT INTO tenant(name, created_at, updated_at) "
                                          "VALUES(?1, 0, 0)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_rc(rc);
}

/* Inserts a row, then fails: the savepoint must undo the insert. */
static int insert_then_fail(store_conn *c, void *arg) {
    insert_tenant(c, arg);
    return SIYU_EINVAL;
}

static int64_t count_tenants(store *st, const char *name) {
    store_conn *c = store_reader_acquire(st);
    sqlite3_stmt *s = store_conn_stmt(c, "SELECT count(*) FROM tenant WHERE name=?1");
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_reset(s);
    store_reader_release(st, c);
    return n;
}

static void test_migrations_idempotent(void **state) {
    (void)state;
    char *dir = t_tmpdir();
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    store *st = store_open(dir, &o, &err);
    assert_non_null(st);
    int v = store_schema_version(st);
    assert_true(v >= 1);
    store_close(st);
    st = store_open(dir, &o, &err); /* reopening applies nothing new */
    assert_non_null(st);
    assert_int_equal(store_schema_version(st), v);
    store_close(st);
    t_rmdir(dir);
}

static void test_inline_savepoint(void **state) {
    (void)state;
    char *dir = t_tmpdir();
    store_options o = {.writer_thread = false};
    store *st = store_open(dir, &o, NULL);
    assert_int_equal(store_write(st, insert_tenant, "a"), 0);
    assert_int_equal(store_write(st, insert_then_fail, "b"), SIYU_EINVAL);
    assert_int_equal(count_tenants(st, "a"), 1);
    assert_int_equal(count_tenants(st, "b"), 0);
    store_close(st);
    t_rmdir(dir);
}

typedef struct {
    store *st;
    int id;
    int rc_ok, rc_fail;
} worker_arg;

static void *worker(void *p) {
    worker_arg *w = p;
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "w%d-%d", w->id, i);
        /* Every third command fails; its neighbours in the batch must survive. */
        if (i % 3 == 0) w->rc_fail += store_write(w->st, insert_then_fail, name) == SIYU_EINVAL;
        else w->rc_ok += store_write(w->st, insert_tenant, name) == 0;
    }
    return NULL;
}

static void test_group_commit_isolates_failures(void **state) {
    (void)state;
    char *dir = t_tmpdir();
    store_options o = {.writer_thread = true};
    store *st = store_open(dir, &o, NULL);
    assert_non_null(st);
    enum { N = 8 };
    pthread_t th[N];
    worker_arg wa[N];
    for (int i = 0; i < N; i++) {
        wa[i] = (worker_arg){st, i, 0, 0};
        pthread_create(&th[i], NULL, worker, &wa[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    store_conn *c = store_reader_acquire(st);
    sqlite3_stmt *s = store_conn_stmt(c, "SELECT count(*) FROM tenant");
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t rows = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    store_reader_release(st, c);
    int ok = 0, fail = 0;
    for (int i = 0; i < N; i++) {
        ok += wa[i].rc_ok;
        fail += wa[i].rc_fail;
    }
    assert_int_equal(fail, N * 67);
    assert_int_equal(ok, N * 133);
    assert_int_equal(rows, ok);
    store_stats ss;
    store_stats_get(st, &ss);
    assert_int_equal(ss.commands, N * 200);
    assert_true(ss.commits <= ss.commands);
    store_close(st);
    t_rmdir(dir);
}

static pthread_mutex_t cb_mu = PTHREAD_MUTEX_INITIALIZER;
static int cb_calls, cb_ok;

static void on_done(void *arg, int rc) {
    (void)arg;
    pthread_mutex_lock(&cb_mu);
    cb_calls++;
    cb_ok += rc == 0;
    pthread_mutex_unlock(&cb_mu);
}

static void test_async_and_close_drains(void **state) {
    (void)state;
    char *dir = t_tmpdir();
    store_options o = {.writer_thread = true};
    store *st = store_open(dir, &o, NULL);
    static char names[100][16];
    for (int i = 0; i < 100; i++) {
        snprintf(names[i], sizeof names[i], "async%d", i);
        assert_int_equal(store_write_async(st, insert_tenant, names[i], on_done, NULL), 0);
    }
    store_close(st); /* must run every queued command before returning */
    assert_int_equal(cb_calls, 100);
    assert_int_equal(cb_ok, 100);
    o.writer_thread = false;
    st = store_open(dir, &o, NULL);
    assert_int_equal(count_tenants(st, "async99"), 1);
    store_close(st);
    t_rmdir(dir);
}

static void test_queue_full(void **state) {
    (void)state;
    char *dir = t_tmpdir();
    store_options o = {.writer_thread = true, .queue_max = 1};
    store *st = store_open(dir, &o, NULL);
    int busy = 0;
    for (int i = 0; i < 200; i++) {
        int rc = store_write_async(st, insert_tenant, "q", on_done, NULL);
        busy += rc == SIYU_EBUSY;
    }
    store_close(st);
    assert_true(busy > 0); /* a full queue answers SIYU_EBUSY instead of growing */
    t_rmdir(dir);
}

static void test_tenant_validation(void **state) {
    (void)state;
    siyu_err err = {0};
    tenant_input in = {.name = "x", .corp_id = "wx1", .callback_token = "tok",
                       .aes_key = "short"};
    assert_int_equal(tenant_input_validate(&in, &err), SIYU_EINVAL);
    assert_string_equal(err.field, "aes_key");
    in.aes_key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    assert_int_equal(tenant_input_validate(&in, &err), 0);
    in.callback_token = NULL;
    assert_int_equal(tenant_input_validate(&in, &err), SIYU_EINVAL);
    assert_string_equal(err.field, "callback_token");
    tenant_input empty = {.name = ""};
    assert_int_equal(tenant_input_validate(&empty, &err), SIYU_EINVAL);
    assert_string_equal(err.field, "name");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrations_idempotent),
        cmocka_unit_test(test_inline_savepoint),
        cmocka_unit_test(test_group_commit_isolates_failures),
        cmocka_unit_test(test_async_and_close_drains),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_tenant_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
