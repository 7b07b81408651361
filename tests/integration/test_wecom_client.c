/* test_wecom_client.c — the WeCom API client against `siyu wecom-sim` over
 * loopback: token caching, refresh on expiry under concurrent calls with a
 * single gettoken in flight, backoff on rate-limit and busy answers, named
 * errors that are not retried, transport failures. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "wecom/wecom_client.h"

#define CORP "wwclienttest"
#define SECRET "client-test-secret"

static t_server sim;

static int setup(void **state) {
    (void)state;
    const char *args[] = {"--corp-id",   CORP,   "--secret",   SECRET, "--customers",    "300",
                          "--employees", "20",   "--stores",   "4",    "--departments",  "3",
                          "--groups",    "10",   "--channels", "5",    "--history-days", "5",
                          "--token-ttl", "7200", NULL};
    return t_sim_start(&sim, args);
}

static int teardown(void **state) {
    (void)state;
    t_server_stop(&sim);
    return 0;
}

static void sim_post(const char *path, const char *json) {
    t_resp r;
    assert_int_equal(t_http(&sim, "POST", path, NULL, json, strlen(json), NULL, &r), 0);
    assert_int_equal(r.status, 200);
    t_resp_free(&r);
}

static wecom_client *client(int retries, int backoff_ms) {
    wecom_client_opts o = {.base_url = sim.base,
                           .timeout_ms = 5000,
                           .retries = retries,
                           .backoff_ms = backoff_ms,
                           .backoff_max_ms = 200};
    siyu_err err = {0};
    wecom_client *cl = wecom_client_new(&o, &err);
    assert_non_null(cl);
    return cl;
}

static wecom_app app_of(int64_t tenant, const char *secret) {
    wecom_app a = {.tenant_id = tenant};
    snprintf(a.corp_id, sizeof a.corp_id, "%s", CORP);
    snprintf(a.secret, sizeof a.secret, "%s", secret);
    return a;
}

typedef struct worker {
    wecom_client *cl;
    wecom_app app;
    int calls, ok;
} worker;

static void *worker_run(void *arg) {
    worker *w = arg;
    for (int i = 0; i < w->calls; i++) {
        json_t *out = NULL;
        wecom_res res;
        if (wecom_call(w->cl, &w->app, "externalcontact/get_follow_user_list", NULL, NULL, &out,
                       &res) == 0 &&
            json_array_size(json_object_get(out, "follow_user")) > 0)
            w->ok++;
        json_decref(out);
    }
    return NULL;
}

/* 8 threads share one cached token; after the simulator's clock passes the
 * token's lifetime every thread meets 42001 at about the same time, and the
 * client fetches exactly one new token for all of them. */
static void test_token_refresh_concurrent(void **state) {
    (void)state;
    wecom_client *cl = client(3, 10);
    enum { T = 8, N = 40 };
    worker w[T];
    pthread_t th[T];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < T; i++) {
            w[i] = (worker){.cl = cl, .app = app_of(1, SECRET), .calls = N};
            pthread_create(&th[i], NULL, worker_run, &w[i]);
        }
        for (int i = 0; i < T; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(w[i].ok, N);
        }
        if (round == 0) sim_post("/sim/clock", "{\"advance\":7300}");
    }
    wecom_client_stats st;
    wecom_client_stats_get(cl, &st);
    assert_int_equal(st.calls, 2 * T * N);
    /* One token for the first round, one after the expiry. */
    assert_int_equal(st.token_fetches, 2);
    assert_int_equal(st.errors, 0);
    /* The expired token was refused at least once and the call retried. */
    assert_true(st.requests > st.calls);
    wecom_client_free(cl);
}

/* A forgotten or replaced secret means a new token; a wrong secret is a
 * configuration error, reported by name and not retried. */
static void test_bad_secret(void **state) {
    (void)state;
    wecom_client *cl = client(3, 10);
    wecom_app a = app_of(2, "wrong-secret");
    wecom_res res;
    json_t *out = NULL;
    assert_int_equal(
        wecom_call(cl, &a, "externalcontact/get_follow_user_list", NULL, NULL, &out, &res),
        SIYU_EREMOTE);
    assert_null(out);
    assert_int_equal(res.errcode, 40001);
    assert_string_equal(wecom_errcode_name(res.errcode), "invalid_secret");
    assert_int_equal(wecom_errcode_class(res.errcode), WECOM_EC_CONFIG);
    wecom_client_stats st;
    wecom_client_stats_get(cl, &st);
    assert_int_equal(st.token_fetches, 1);
    assert_int_equal(st.requests, 0);
    /* The refusal is remembered: no second gettoken with the wrong secret
     * (WeCom blocks an IP that keeps trying), same named error. */
    assert_int_equal(
        wecom_call(cl, &a, "externalcontact/get_follow_user_list", NULL, NULL, NULL, &res),
        SIYU_EREMOTE);
    assert_int_equal(res.errcode, 40001);
    wecom_client_stats_get(cl, &st);
    assert_int_equal(st.token_fetches, 1);
    /* The right secret for the same tenant works at once. */
    a = app_of(2, SECRET);
    assert_int_equal(
        wecom_call(cl, &a, "externalcontact/get_follow_user_list", NULL, NULL, NULL, &res), 0);
    wecom_client_free(cl);
}

/* 45009 and -1 are retried with backoff until they clear; past the retry
 * budget the errcode comes back by name. */
static void test_backoff(void **state) {
    (void)state;
    wecom_client *cl = client(3, 20);
    wecom_app a = app_of(3, SECRET);
    wecom_res res;
    sim_post("/sim/fault", "{\"path\":\"externalcontact/get_follow_user_list\",\"errcode\":45009,"
                           "\"count\":2}");
    assert_int_equal(
        wecom_call(cl, &a, "externalcontact/get_follow_user_list", NULL, NULL, NULL, &res), 0);
    assert_int_equal(res.errcode, 0);
    assert_int_equal(res.attempts, 3);

    sim_post("/sim/fault", "{\"path\":\"externalcontact/get_follow_user_list\",\"errcode\":-1,"
                           "\"count\":1}");
    assert_int_equal(
        wecom_call(cl, &a, "externalcontact/get_follow_user_list", NULL, NULL, NULL, &res), 0);
    assert_int_equal(res.attempts, 2);

    sim_post("/sim/fault", "{\"path\":\"externalcontact/get_follow_user_list\",\"errcode\":45033,"
                           "\"count\":4}");
    assert_int_equal(
        wecom_call(cl, &a, "externalcontact/get_follow_user_list", NULL, NULL, NULL, &res),
        SIYU_EREMOTE);
    assert_int_equal(res.errcode, 45033);
    assert_int_equal(res.attempts, 4); /* the first try and 3 retries */
    assert_string_equal(wecom_errcode_name(res.errcode), "concurrency_limit");
    wecom_client_free(cl);
}

/* A call that changes something and times out may have been done: it is not
 * repeated but reported in doubt. A read that times out is simply retried. */
static void test_timeout_write_not_repeated(void **state) {
    (void)state;
    wecom_client_opts o = {.base_url = sim.base,
                           .timeout_ms = 300,
                           .retries = 3,
                           .backoff_ms = 5,
                           .backoff_max_ms = 10};
    siyu_err err = {0};
    wecom_client *cl = wecom_client_new(&o, &err);
    assert_non_null(cl);
    wecom_app a = app_of(6, SECRET);
    wecom_res res;
    /* A token first, so the delay hits the API call itself. */
    assert_int_equal(
        wecom_call(cl, &a, "externalcontact/get_follow_user_list", NULL, NULL, NULL, &res), 0);
    sim_post("/sim/fault", "{\"path\":\"externalcontact/remark\",\"delay_ms\":1000,\"count\":1}");
    json_t *body =
        json_pack("{s:s,s:s,s:s}", "userid", "nobody", "external_userid", "wm_none", "remark", "x");
    assert_int_equal(wecom_call(cl, &a, "externalcontact/remark", NULL, body, NULL, &res),
                     SIYU_EREMOTE);
    assert_int_equal(res.errcode, WECOM_ERR_TRANSPORT);
    assert_true(res.in_doubt);
    assert_int_equal(res.attempts, 1);
    json_decref(body);
    sim_post("/sim/fault", "{\"path\":\"externalcontact/get_follow_user_list\",\"delay_ms\":1000,"
                           "\"count\":1}");
    assert_int_equal(
        wecom_call(cl, &a, "externalcontact/get_follow_user_list", NULL, NULL, NULL, &res), 0);
    assert_int_equal(res.attempts, 2);
    wecom_client_free(cl);
}

/* A refused request is returned at once, by name. */
static void test_reject_not_retried(void **state) {
    (void)state;
    wecom_client *cl = client(3, 10);
    wecom_app a = app_of(4, SECRET);
    wecom_res res;
    char *q = wecom_escape("wm_no_such_customer");
    char query[128];
    snprintf(query, sizeof query, "external_userid=%s", q);
    free(q);
    assert_int_equal(wecom_call(cl, &a, "externalcontact/get", query, NULL, NULL, &res),
                     SIYU_EREMOTE);
    assert_int_equal(res.errcode, 40096);
    assert_int_equal(res.attempts, 1);
    assert_string_equal(wecom_errcode_name(res.errcode), "invalid_external_userid");
    /* A path outside the API shape is refused before any request. */
    assert_int_equal(wecom_call(cl, &a, "../gettoken", NULL, NULL, NULL, &res), SIYU_EINVAL);
    wecom_client_free(cl);
}

/* Nobody listening: a transport error after the retries, never a hang. */
static void test_transport_error(void **state) {
    (void)state;
    wecom_client_opts o = {.base_url = "http://127.0.0.1:9",
                           .timeout_ms = 1000,
                           .retries = 2,
                           .backoff_ms = 5,
                           .backoff_max_ms = 10};
    siyu_err err = {0};
    wecom_client *cl = wecom_client_new(&o, &err);
    assert_non_null(cl);
    wecom_app a = app_of(5, SECRET);
    wecom_res res;
    assert_int_equal(
        wecom_call(cl, &a, "externalcontact/get_follow_user_list", NULL, NULL, NULL, &res),
        SIYU_EREMOTE);
    assert_int_equal(res.errcode, WECOM_ERR_TRANSPORT);
    assert_string_equal(wecom_errcode_name(res.errcode), "transport_error");
    wecom_client_free(cl);
    /* Bad configuration is refused up front. */
    o.base_url = "ftp://example";
    assert_null(wecom_client_new(&o, &err));
    assert_string_equal(err.field, "wecom_base_url");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_refresh_concurrent),
        cmocka_unit_test(test_bad_secret),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_timeout_write_not_repeated),
        cmocka_unit_test(test_reject_not_retried),
        cmocka_unit_test(test_transport_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
