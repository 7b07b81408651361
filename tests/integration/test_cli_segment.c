/* test_cli_segment.c — `siyu segment count|list|export` against a data
 * directory (in process, while the server runs on the same directory) and
 * against the running server (--server, with an admin and an employee
 * token): the same answers both ways, the employee's scope, parse errors
 * (exit 2 with the parser's caret message), usage errors, exports written
 * to --out, and the audit record of each export.
 *
 * Fixture (tenant 1): employees alice (101) and bob (102); customers 1000
 * (alice, VIP, phone 13800138000, spent 500), 1001 (bob, VIP, spent 1500),
 * 1002 (alice); tenant 2 has customer 1500 tagged its own VIP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

static const char fixture_sql[] =
    "INSERT INTO department(id,tenant_id,name,parent_id,created_at,updated_at) VALUES"
    " (10,1,'HQ',NULL,1,1),(20,2,'HQ',NULL,1,1);"
    "INSERT INTO employee(id,tenant_id,userid,name,department_id,created_at,updated_at) VALUES"
    " (101,1,'alice','Alice',10,1,1),(102,1,'bob','Bob',10,1,1),(200,2,'x','X',20,1,1);"
    "INSERT INTO customer(id,tenant_id,external_userid,name,gender,phone,first_added_at,"
    "created_at,updated_at) VALUES"
    " (1000,1,'wm1000','Zhang San',2,'13800138000',1700000000,1,1),"
    " (1001,1,'wm1001','Li Si',1,NULL,1700000100,1,1),"
    " (1002,1,'wm1002','Wang Wu',1,NULL,1700000200,1,1),"
    " (1500,2,'wm1500','B One',1,NULL,1700000000,1,1);"
    "INSERT INTO relationship(id,tenant_id,customer_id,employee_id,status,added_at,updated_at)"
    " VALUES (1,1,1000,101,'active',10,10),(2,1,1001,102,'active',10,10),"
    " (3,1,1002,101,'active',10,10),(4,2,1500,200,'active',10,10);"
    "INSERT INTO tag_group(id,tenant_id,name,created_at,updated_at) VALUES"
    " (1,1,'Level',1,1),(2,2,'Level',1,1);"
    "INSERT INTO tag(id,tenant_id,group_id,name,created_at,updated_at) VALUES"
    " (300,1,1,'VIP',1,1),(310,2,2,'VIP',1,1);"
    "INSERT INTO customer_tag(tenant_id,customer_id,tag_id,source,created_at) VALUES"
    " (1,1000,300,'manual',1),(1,1001,300,'manual',1),(2,1500,310,'manual',1);"
    "INSERT INTO event(tenant_id,customer_id,type,ts,source,props) VALUES"
    " (1,1000,'order',1700000500,'api','{\"amount\":500}'),"
    " (1,1001,'order',1700000600,'api','{\"amount\":1500}');";

static t_roles *fx;

static int setup(void **state) {
    (void)state;
    return t_roles_start(&fx, fixture_sql, "alice", "bob");
}

static int teardown(void **state) {
    (void)state;
    return t_roles_stop(fx) == 0 ? 0 : -1;
}

/* Runs siyu segment with args; returns the exit status, stdout in *out. */
static int seg(char **out, const char *const *args) {
    const char *argv[32] = {"segment"};
    int n = 1;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return t_siyu(out, argv);
}

static void test_count(void **state) {
    (void)state;
    char *out = NULL;
    const char *local[] = {"count", "tag(\"VIP\")", "--data", fx->dir, "--tenant", "1", NULL};
    assert_int_equal(seg(&out, local), 0);
    assert_string_equal(out, "2");
    free(out);
    const char *local_b[] = {"count", "tag(\"VIP\")", "--data", fx->dir, "--tenant", "2", NULL};
    assert_int_equal(seg(&out, local_b), 0);
    assert_string_equal(out, "1");
    free(out);
    const char *remote[] = {"count",   "tag(\"VIP\")", "--server", fx->srv.base,
                            "--token", fx->admin,      NULL};
    assert_int_equal(seg(&out, remote), 0);
    assert_string_equal(out, "2");
    free(out);
    /* the employee token's scope */
    const char *bob[] = {"count", "", "--server", fx->srv.base, "--token", fx->bob, "--json", NULL};
    assert_int_equal(seg(&out, bob), 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 1);
    json_decref(j);
    free(out);
    const char *json[] = {"count", "TAG(\"VIP\")", "--data", fx->dir, "--tenant",
                          "1",     "--json",       NULL};
    assert_int_equal(seg(&out, json), 0);
    j = json_loads(out, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "expr")), "tag(\"VIP\")");
    assert_true(json_is_number(json_object_get(j, "elapsed_ms")));
    json_decref(j);
    free(out);
}

static void test_list(void **state) {
    (void)state;
    char *out = NULL;
    const char *local[] = {"list", "", "--data", fx->dir, "--tenant", "1", "--limit", "2", NULL};
    assert_int_equal(seg(&out, local), 0);
    assert_string_equal(out, "1000\t\twm1000\tZhang San\n1001\t\twm1001\tLi Si");
    free(out);
    const char *remote[] = {"list",        "",        "--server", fx->srv.base, "--token",
                            fx->operator_, "--limit", "5",        NULL};
    assert_int_equal(seg(&out, remote), 0);
    assert_string_equal(out, "1000\t\twm1000\tZhang San\n1001\t\twm1001\tLi Si\n"
                             "1002\t\twm1002\tWang Wu");
    free(out);
    const char *alice[] = {"list", "", "--server", fx->srv.base, "--token", fx->alice, NULL};
    assert_int_equal(seg(&out, alice), 0);
    assert_string_equal(out, "1000\t\twm1000\tZhang San\n1002\t\twm1002\tWang Wu");
    free(out);
}

static void test_list_sorted(void **state) {
    (void)state;
    char *out = NULL;
    const char *local[] = {"list", "tag(\"VIP\")", "--data", fx->dir, "--tenant",
                           "1",    "--sort",       "spent",  NULL};
    assert_int_equal(seg(&out, local), 0);
    assert_string_equal(out, "1001\t1500.00\twm1001\tLi Si\n1000\t500.00\twm1000\tZhang San");
    free(out);
    const char *remote[] = {"list",    "tag(\"VIP\")", "--server", fx->srv.base,
                            "--token", fx->admin,      "--sort",   "spent",
                            "--order", "asc",          NULL};
    assert_int_equal(seg(&out, remote), 0);
    assert_string_equal(out, "1000\t500.00\twm1000\tZhang San\n1001\t1500.00\twm1001\tLi Si");
    free(out);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

static void test_export(void **state) {
    (void)state;
    char path[512];
    size_t len;
    snprintf(path, sizeof path, "%s/local.csv", fx->dir);
    const char *local[] = {"export", "tag(\"VIP\")", "--data", fx->dir, "--tenant",
                           "1",      "--out",        path,     NULL};
    assert_int_equal(seg(NULL, local), 0);
    char *a = slurp(path, &len);
    assert_non_null(a);
    assert_memory_equal(a, "\xEF\xBB\xBFid,", 6);
    assert_non_null(strstr(a, "\r\n1000,wm1000,Zhang San,female,"));
    assert_non_null(strstr(a, "\r\n1001,wm1001,Li Si,male,"));
    /* the server gives the same file */
    snprintf(path, sizeof path, "%s/remote.csv", fx->dir);
    const char *remote[] = {"export",  "tag(\"VIP\")", "--server", fx->srv.base, "--token",
                            fx->admin, "--out",        path,       NULL};
    assert_int_equal(seg(NULL, remote), 0);
    char *b = slurp(path, &len);
    assert_non_null(b);
    assert_string_equal(a, b);
    free(a);
    free(b);
    /* hashed phones to stdout */
    char *out = NULL;
    const char *md5[] = {"export", "",         "--data",    fx->dir, "--tenant",
                         "1",      "--format", "phone_md5", NULL};
    assert_int_equal(seg(&out, md5), 0);
    assert_string_equal(out, "7945bd83237335e5376ff44d62e4f0ae"); /* 13800138000 */
    free(out);
    /* an employee may not, and no file is left behind */
    snprintf(path, sizeof path, "%s/denied.txt", fx->dir);
    const char *denied[] = {"export",  "",      "--server", fx->srv.base,
                            "--token", fx->bob, "--format", "phone_sha256",
                            "--out",   path,    NULL};
    assert_int_equal(seg(NULL, denied), 1);
    assert_int_equal(access(path, F_OK), -1);
    /* audited: two by the CLI, one through the API */
    assert_int_equal(t_sql_int(fx->dir, "SELECT count(*) FROM audit_log WHERE "
                                        "action='segment.export' AND actor='cli'"),
                     2);
    assert_int_equal(t_sql_int(fx->dir, "SELECT count(*) FROM audit_log WHERE "
                                        "action='segment.export' AND actor LIKE 'token:%%'"),
                     1);
}

static void test_errors(void **state) {
    (void)state;
    const char *bad[] = {"count", "tag(\"VIP\" and", "--data", fx->dir, "--tenant", "1", NULL};
    assert_int_equal(seg(NULL, bad), 2);
    const char *bad_remote[] = {"count",   "tag(\"VIP\" and", "--server", fx->srv.base,
                                "--token", fx->admin,         NULL};
    assert_int_equal(seg(NULL, bad_remote), 2);
    const char *unknown[] = {"count", "tag(\"nosuch\")", "--data", fx->dir, "--tenant", "1", NULL};
    assert_int_equal(seg(NULL, unknown), 2);
    const char *no_tenant[] = {"count", "", "--data", fx->dir, NULL};
    assert_int_equal(seg(NULL, no_tenant), 2);
    const char *no_token[] = {"count", "", "--server", fx->srv.base, NULL};
    assert_int_equal(seg(NULL, no_token), 2);
    const char *bad_sort[] = {"list", "", "--data", fx->dir, "--tenant", "1", "--sort", "x", NULL};
    assert_int_equal(seg(NULL, bad_sort), 2);
    const char *bad_flag[] = {"count", "",         "--data", fx->dir, "--tenant",
                              "1",     "--format", "csv",    NULL};
    assert_int_equal(seg(NULL, bad_flag), 2);
    const char *bad_cmd[] = {"sum", "", NULL};
    assert_int_equal(seg(NULL, bad_cmd), 2);
    char *out = NULL;
    const char *help[] = {"--help", NULL};
    assert_int_equal(seg(&out, help), 0);
    assert_non_null(strstr(out, "usage: siyu segment count|list|export EXPR"));
    free(out);
    const char *top[] = {"--help", NULL};
    assert_int_equal(t_siyu(&out, top), 0);
    assert_non_null(strstr(out, "segment"));
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count),       cmocka_unit_test(test_list),
        cmocka_unit_test(test_list_sorted), cmocka_unit_test(test_export),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
