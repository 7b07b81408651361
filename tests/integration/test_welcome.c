/* test_welcome.c — default welcome messages end to end: `siyu wecom-sim`
 * pushes an add_external_contact callback with a WelcomeCode, `siyu serve`
 * queues send_welcome_msg in the same commit and its urgent worker sends it.
 * Covers a code used inside its window, a code the simulator has expired
 * (41050), a code whose deadline passed before pickup (dead, no call), a code
 * used twice (41051), a retried callback (no second row) and the log view. */
#include "outbox_fixture.h"
#include "wecom/wecom_crypto.h"

static void test_inside_window(void **state) {
    (void)state;
    char *user = of_employee(&F, 0);
    char *code = of_add(&F, user);
    json_t *row = of_wait_welcome(&F, code, "sent", 10000);
    assert_int_equal(jint(row, "lane"), 0);
    assert_int_equal(jint(row, "attempts"), 1);
    assert_int_equal(jint(row, "errcode"), 0);
    assert_true(strncmp(jstr(row, "origin"), "welcome:event:", 14) == 0);
    assert_string_equal(jstr(json_object_get(json_object_get(row, "body"), "text"), "content"),
                        OF_TEXT);
    assert_true(jint(row, "deadline") > 0);
    json_decref(row);
    int ok;
    char text[128];
    assert_int_equal(of_sim_welcomes(&F, code, &ok, text, sizeof text), 1);
    assert_int_equal(ok, 1);
    assert_string_equal(text, OF_TEXT);
    /* The log names the pair from the callback's event. */
    json_t *log = t_call(&F.srv, "GET", "/api/v1/welcome/log", F.admin, NULL, 200);
    json_t *first = json_array_get(json_object_get(log, "items"), 0);
    assert_string_equal(jstr(first, "state"), "sent");
    assert_string_equal(jstr(first, "userid"), user);
    assert_true(jstr(first, "external_userid")[0] != 0);
    json_decref(log);
    free(code);
    free(user);
}

/* The same code sent a second time: WeCom (the simulator) answers 41051. The
 * second row is inserted directly: no real producer sends one code twice. */
static void test_second_use(void **state) {
    (void)state;
    char *user = of_employee(&F, 1);
    char *code = of_add(&F, user);
    json_decref(of_wait_welcome(&F, code, "sent", 10000));
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO outbox(tenant_id,kind,body,lane,state,next_at,deadline,origin,"
             "created_at,updated_at) VALUES(1,'send_welcome_msg',"
             "'{\"welcome_code\":\"%s\",\"text\":{\"content\":\"again\"}}',0,'pending',0,%lld,"
             "'test',1,1)",
             code, (long long)(of_now_ms() + 20000));
    assert_int_equal(t_sql_exec(F.dir, sql), 0);
    long long id = t_sql_int(F.dir, "SELECT max(id) FROM outbox");
    const char *st = "";
    for (int i = 0; i < 200; i++) {
        st = t_sql_text(F.dir, "SELECT state FROM outbox WHERE id=%lld", id);
        if (!strcmp(st, "dead")) break;
        usleep(50000);
    }
    assert_string_equal(st, "dead");
    assert_int_equal(t_sql_int(F.dir, "SELECT errcode FROM outbox WHERE id=%lld", id), 41051);
    assert_non_null(strstr(t_sql_text(F.dir, "SELECT error FROM outbox WHERE id=%lld", id),
                           "customer_already_chatting"));
    int ok;
    of_sim_welcomes(&F, code, &ok, NULL, 0);
    assert_int_equal(ok, 1);
    free(code);
    free(user);
}

/* A busy answer first; while the row waits for its retry the simulator's
 * clock passes the code's 20 s: the retry gets 41050, recorded by name. */
static void test_expired_at_wecom(void **state) {
    (void)state;
    char *user = of_employee(&F, 2);
    json_decref(of_sim(&F, "/sim/fault",
                       "{\"path\":\"externalcontact/send_welcome_msg\",\"errcode\":45009,"
                       "\"count\":1}"));
    char *code = of_add(&F, user);
    json_t *row = of_wait_welcome(&F, code, "failed", 10000);
    assert_int_equal(jint(row, "errcode"), 45009);
    json_decref(row);
    json_decref(of_sim(&F, "/sim/clock", "{\"advance\":60}"));
    row = of_wait_welcome(&F, code, "dead", 10000);
    assert_int_equal(jint(row, "errcode"), 41050);
    assert_int_equal(jint(row, "attempts"), 2);
    assert_true(strncmp(jstr(row, "error"), "welcome_code_expired", 20) == 0);
    json_decref(row);
    int ok;
    of_sim_welcomes(&F, code, &ok, NULL, 0);
    assert_int_equal(ok, 0);
    free(code);
    free(user);
}

/* A callback that arrives (or is picked up) after its window: dead without
 * a call. The callback is built here with a CreateTime a minute ago. */
static void test_deadline_passed_before_pickup(void **state) {
    (void)state;
    char *user = of_employee(&F, 3);
    long long calls = of_sim_calls(&F, "externalcontact/send_welcome_msg");
    wecom_crypto cr;
    assert_int_equal(wecom_crypto_init(&cr, OF_TOKEN, OF_AES, OF_CORP), WECOM_OK);
    char plain[1024], ts[24];
    long long ct = (long long)time(NULL) - 60;
    snprintf(ts, sizeof ts, "%lld", ct);
    snprintf(plain, sizeof plain,
             "<xml><ToUserName><![CDATA[" OF_CORP "]]></ToUserName>"
             "<FromUserName><![CDATA[sys]]></FromUserName><CreateTime>%lld</CreateTime>"
             "<MsgType><![CDATA[event]]></MsgType>"
             "<Event><![CDATA[change_external_contact]]></Event>"
             "<ChangeType><![CDATA[add_external_contact]]></ChangeType>"
             "<UserID><![CDATA[%s]]></UserID><ExternalUserID><![CDATA[wmLateOne]]></ExternalUserID>"
             "<State><![CDATA[t]]></State><WelcomeCode><![CDATA[LATECODE1]]></WelcomeCode></xml>",
             ct, user);
    char *body = NULL, sig[41], path[256];
    assert_int_equal(wecom_callback_build(&cr, ts, "77", NULL, plain, strlen(plain), &body, sig),
                     WECOM_OK);
    snprintf(path, sizeof path, "/wecom/callback/1?msg_signature=%s&timestamp=%s&nonce=77", sig,
             ts);
    for (int i = 0; i < 2; i++) { /* the second is WeCom's retry: a duplicate */
        t_resp r;
        assert_int_equal(t_http(&F.srv, "POST", path, NULL, body, strlen(body), "text/xml", &r), 0);
        assert_int_equal(r.status, 200);
        t_resp_free(&r);
    }
    free(body);
    wecom_crypto_reset(&cr);
    json_t *row = of_wait_welcome(&F, "LATECODE1", "dead", 10000);
    /* Recorded as missed when the add is stored: no worker ever holds it. */
    assert_string_equal(jstr(row, "error"),
                        "welcome_code_expired: the add arrived after the 20 s window");
    assert_int_equal(jint(row, "attempts"), 0);
    assert_int_equal(jint(row, "deadline"), ct * 1000 + 20000);
    json_decref(row);
    assert_int_equal(of_sim_calls(&F, "externalcontact/send_welcome_msg"), calls);
    assert_int_equal(
        t_sql_int(F.dir, "SELECT count(*) FROM outbox WHERE body LIKE '%%LATECODE1%%'"), 1);
    free(user);
}

/* A disabled welcome queues nothing. */
static void test_disabled(void **state) {
    (void)state;
    t_resp r;
    assert_int_equal(t_api(&F.srv, "PUT", "/api/v1/welcome", F.admin, &r, "{s:s,s:b}", "text",
                           OF_TEXT, "enabled", 0),
                     0);
    assert_int_equal(r.status, 200);
    t_resp_free(&r);
    assert_int_equal(t_api(&F.srv, "PUT", "/api/v1/welcome", F.admin, &r, "{s:s}", "text", ""), 0);
    t_expect_error(&r, 400, "invalid", "text");
    long long before = t_sql_int(F.dir, "SELECT count(*) FROM outbox");
    char *user = of_employee(&F, 4);
    char *code = of_add(&F, user);
    usleep(300000);
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM outbox"), before);
    json_t *w = t_call(&F.srv, "GET", "/api/v1/welcome", F.admin, NULL, 200);
    assert_true(json_is_false(json_object_get(w, "enabled")));
    assert_string_equal(jstr(w, "text"), OF_TEXT);
    json_decref(w);
    free(code);
    free(user);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inside_window),
        cmocka_unit_test(test_second_use),
        cmocka_unit_test(test_expired_at_wecom),
        cmocka_unit_test(test_deadline_passed_before_pickup),
        cmocka_unit_test(test_disabled),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
