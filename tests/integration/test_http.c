/* test_http.c — behaviour every route shares: routing errors, auth, body
 * limits, malformed and unknown input, OpenAPI, metrics, health, SIGTERM. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

typedef struct {
    char *dir;
    t_server s;
    char *platform;
    char admin[80];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = t_tmpdir();
    f->platform = t_token(f->dir, NULL, "admin", NULL);
    if (!f->platform) return -1;
    if (t_server_start(&f->s, f->dir, (const char *[]){"--max-body", "4096", NULL}) != 0)
        return -1;
    t_resp r;
    t_api(&f->s, "POST", "/api/v1/tenants", f->platform, &r, "{s:s}", "name", "T");
    if (r.status != 201) return -1;
    snprintf(f->admin, sizeof f->admin, "%s",
             json_string_value(json_object_get(r.json, "admin_token")));
    t_resp_free(&r);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    int rc = t_server_stop(&f->s);
    free(f->platform);
    t_rmdir(f->dir);
    free(f);
    return rc == 0 ? 0 : -1; /* SIGTERM must end in a clean exit */
}

static void expect(fixture *f, const char *method, const char *path, const char *token,
                   const char *body, long status, const char *code) {
    t_resp r;
    assert_int_equal(t_http(&f->s, method, path, token, body, body ? strlen(body) : 0, NULL, &r), 0);
    if (r.status != status) print_message("%s %s -> %ld %s\n", method, path, r.status, r.body);
    assert_int_equal(r.status, status);
    if (code) assert_string_equal(t_err_code(&r), code);
    t_resp_free(&r);
}

static void test_routing_and_auth(void **state) {
    fixture *f = *state;
    expect(f, "GET", "/nope", NULL, NULL, 404, "not_found");
    expect(f, "DELETE", "/api/v1/tenants", f->platform, NULL, 405, "method_not_allowed");
    expect(f, "GET", "/api/v1/tenants", NULL, NULL, 401, "unauthorized");
    expect(f, "GET", "/api/v1/tenants", "sy_0000", NULL, 401, "unauthorized");
    expect(f, "GET", "/api/v1/tenants", f->admin, NULL, 403, "forbidden");
    expect(f, "GET", "/api/v1/tenants/1", f->admin, NULL, 200, NULL);
    expect(f, "GET", "/api/v1/tenants/2", f->admin, NULL, 404, "not_found");
    expect(f, "GET", "/api/v1/tenants/abc", f->platform, NULL, 404, "not_found");
}

static void test_bad_bodies(void **state) {
    fixture *f = *state;
    expect(f, "POST", "/api/v1/tenants", f->platform, "{\"name\":", 400, "invalid");
    expect(f, "POST", "/api/v1/tenants", f->platform, "[1,2]", 400, "invalid");
    expect(f, "POST", "/api/v1/tenants", f->platform, "", 400, "invalid");
    expect(f, "POST", "/api/v1/tenants", f->platform, "{\"name\":\"a\",\"name\":\"b\"}", 400,
           "invalid");
    expect(f, "POST", "/api/v1/tenants", f->platform, "{\"name\":\"x\",\"color\":\"red\"}", 400,
           "invalid");
    expect(f, "POST", "/api/v1/tenants", f->platform, "{\"name\":7}", 400, "invalid");
    char big[300];
    memset(big, 'a', sizeof big);
    big[sizeof big - 1] = 0;
    char body[400];
    snprintf(body, sizeof body, "{\"name\":\"%s\"}", big);
    expect(f, "POST", "/api/v1/tenants", f->platform, body, 400, "invalid");
    /* Over the 4096-byte --max-body: 413, nothing created. */
    char *huge = malloc(10000);
    memset(huge, ' ', 9999);
    huge[0] = '{';
    memcpy(huge + 9990, "\"name\":1}", 9);
    huge[9999] = 0;
    expect(f, "POST", "/api/v1/tenants", f->platform, huge, 413, "too_large");
    free(huge);
    t_resp r;
    t_api(&f->s, "GET", "/api/v1/tenants", f->platform, &r, NULL);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
    t_resp_free(&r);
    /* Callback config must come complete and well-formed. */
    t_api(&f->s, "PATCH", "/api/v1/tenants/1", f->admin, &r, "{s:s,s:s,s:s}", "corp_id", "wx1",
          "callback_token", "tok", "aes_key", "tooshort");
    assert_int_equal(r.status, 400);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.json, "error"),
                                                          "field")), "aes_key");
    t_resp_free(&r);
}

static void test_openapi_health_metrics(void **state) {
    fixture *f = *state;
    t_resp r;
    t_api(&f->s, "GET", "/api/v1/openapi.json", NULL, &r, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "openapi")), "3.0.3");
    json_t *paths = json_object_get(r.json, "paths");
    assert_non_null(json_object_get(json_object_get(paths, "/api/v1/tenants/{id}"), "patch"));
    assert_non_null(json_object_get(json_object_get(paths, "/wecom/callback/{tenant}"), "post"));
    t_resp_free(&r);
    t_api(&f->s, "GET", "/healthz", NULL, &r, NULL);
    assert_int_equal(r.status, 200);
    t_resp_free(&r);
    t_api(&f->s, "GET", "/metrics", NULL, &r, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "siyu_http_requests_total{method=\"POST\",route=\"/api/v1/tenants\",status=\"201\"}"));
    assert_non_null(strstr(r.body, "siyu_writer_queue_depth"));
    assert_non_null(strstr(r.body, "siyu_writer_batch_size_bucket"));
    assert_non_null(strstr(r.body, "siyu_http_request_duration_seconds_bucket"));
    t_resp_free(&r);
}

static void test_tokens_and_audit(void **state) {
    fixture *f = *state;
    t_resp r;
    t_api(&f->s, "POST", "/api/v1/tokens", f->admin, &r, "{s:s}", "role", "employee");
    assert_int_equal(r.status, 400); /* an employee token must name its employee */
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.json, "error"),
                                                          "field")), "employee");
    t_resp_free(&r);
    t_api(&f->s, "POST", "/api/v1/tokens", f->admin, &r, "{s:s}", "role", "operator");
    assert_int_equal(r.status, 201);
    char op[80];
    snprintf(op, sizeof op, "%s", json_string_value(json_object_get(r.json, "token")));
    t_resp_free(&r);
    /* The operator may not mint tokens. */
    expect(f, "POST", "/api/v1/tokens", op, "{\"role\":\"admin\"}", 403, "forbidden");
    /* The admin cannot mint tokens for another tenant. */
    expect(f, "POST", "/api/v1/tokens", f->admin, "{\"role\":\"admin\",\"tenant_id\":99}", 404,
           "not_found");
}

typedef struct {
    t_server *s;
    const char *admin;
    int n429, n201, other;
} flood_arg;

static void *flood(void *p) {
    flood_arg *a = p;
    for (int i = 0; i < 60; i++) {
        t_resp r;
        t_api(a->s, "POST", "/api/v1/tokens", a->admin, &r, "{s:s}", "role", "operator");
        if (r.status == 429) {
            a->n429++;
            if (strcmp(t_err_code(&r), "busy") != 0) a->other++;
        } else if (r.status == 201) {
            a->n201++;
        } else {
            a->other++;
        }
        t_resp_free(&r);
    }
    return NULL;
}

/* A server whose write queue holds one command answers concurrent writes
 * beyond it with 429 (and a Retry-After), never by failing or hanging. */
static void test_backpressure_429(void **state) {
    fixture *f = *state;
    char *dir = t_tmpdir();
    char *plat = t_token(dir, NULL, "admin", NULL);
    assert_non_null(plat);
    t_server s;
    assert_int_equal(t_server_start(&s, dir, (const char *[]){"--queue-max", "1", NULL}), 0);
    t_resp r;
    t_api(&s, "POST", "/api/v1/tenants", plat, &r, "{s:s}", "name", "Q");
    char admin[80];
    snprintf(admin, sizeof admin, "%s", json_string_value(json_object_get(r.json, "admin_token")));
    t_resp_free(&r);
    enum { N = 8 };
    pthread_t th[N];
    flood_arg fa[N];
    for (int i = 0; i < N; i++) {
        fa[i] = (flood_arg){&s, admin, 0, 0, 0};
        pthread_create(&th[i], NULL, flood, &fa[i]);
    }
    int n429 = 0, n201 = 0, other = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        n429 += fa[i].n429;
        n201 += fa[i].n201;
        other += fa[i].other;
    }
    print_message("queue-max 1: %d created, %d answered 429\n", n201, n429);
    assert_int_equal(other, 0);
    assert_true(n201 > 0);
    assert_true(n429 > 0);
    assert_int_equal(n201 + n429, N * 60);
    assert_int_equal(t_server_stop(&s), 0);
    free(plat);
    t_rmdir(dir);
    (void)f;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing_and_auth),
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_openapi_health_metrics),
        cmocka_unit_test(test_tokens_and_audit),
        cmocka_unit_test(test_backpressure_429),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
