/* test_demo.c — `siyu demo-seed` builds a usable sample tenant through the
 * production paths, and running it again adds nothing. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

/* The token printed after "label" in demo-seed's output. */
static void token_after(const char *out, const char *label, char tok[80]) {
    const char *p = strstr(out, label);
    assert_non_null(p);
    p = strstr(p, "sy_");
    assert_non_null(p);
    snprintf(tok, 80, "%.67s", p);
}

static json_int_t count(t_server *s, const char *tok, const char *path) {
    json_int_t n = 0;
    char url[256];
    snprintf(url, sizeof url, "%s", path);
    for (;;) {
        t_resp r;
        assert_int_equal(t_api(s, "GET", url, tok, &r, NULL), 0);
        assert_int_equal(r.status, 200);
        n += (json_int_t)json_array_size(json_object_get(r.json, "items"));
        const char *cur = json_string_value(json_object_get(r.json, "next_cursor"));
        if (cur) snprintf(url, sizeof url, "%s%scursor=%s", path, strchr(path, '?') ? "&" : "?", cur);
        t_resp_free(&r);
        if (!cur) break;
    }
    return n;
}

static void test_demo_seed(void **state) {
    (void)state;
    char *dir = t_tmpdir();
    char *out = NULL;
    assert_int_equal(t_siyu(&out, (const char *[]){"demo-seed", "--data", dir, NULL}), 0);
    assert_non_null(strstr(out, "seeded tenant 1"));
    char admin[80], emp[80];
    token_after(out, "tenant admin:", admin);
    token_after(out, "employee (zhangsan):", emp);
    free(out);
    assert_int_equal(t_siyu(&out, (const char *[]){"demo-seed", "--data", dir, NULL}), 0);
    assert_non_null(strstr(out, "already seeded"));
    free(out);

    t_server s;
    assert_int_equal(t_server_start(&s, dir, NULL), 0);
    json_int_t all = count(&s, admin, "/api/v1/customers?limit=500");
    assert_int_equal(all, 240);
    json_int_t lost = count(&s, admin, "/api/v1/customers?status=lost&limit=500");
    assert_true(lost > 0 && lost < all);
    json_int_t mine = count(&s, emp, "/api/v1/customers?limit=500");
    assert_true(mine > 0 && mine < all); /* an employee sees only their own */
    assert_true(count(&s, admin, "/api/v1/employees") == 8);
    assert_true(count(&s, admin, "/api/v1/group-chats") == 2);
    assert_true(count(&s, admin, "/api/v1/tags?limit=500") == 5);
    assert_int_equal(t_server_stop(&s), 0);
    t_rmdir(dir);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_demo_seed)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
