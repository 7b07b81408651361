/* test_groupchat.c — customer-group tools (F7) against the real server and
 * the real `siyu wecom-sim`: daily group statistics equal to the member
 * callbacks the simulator sent (plus an event carrying the chat id counted
 * as activity), group tags with their filter, and a rolling group QR code
 * that moves to the next group once its group reaches the member limit
 * (groupchat/add_join_way, then update_join_way through the outbox). */
#include <time.h>

#include "flows_sim.h"

static flows F;
static char U[4][64];

static int setup(void **state) {
    (void)state;
    if (flows_start(&F, NULL) != 0) return -1;
    return fl_sim_userids(&F, U, 4) == 4 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    return flows_stop(&F) == 0 ? 0 : -1;
}

/* A new group of U0 in the simulator, known to Siyu; its Siyu id. */
static long long group_new(const char *name, char chat[64]) {
    char body[256];
    snprintf(body, sizeof body, "{\"type\":\"create_group\",\"userid\":\"%s\",\"name\":\"%s\"}",
             U[0], name);
    json_t *g = fl_sim(&F, "POST", "/sim/act", body);
    snprintf(chat, 64, "%s", json_string_value(json_object_get(g, "chat_id")));
    json_decref(g);
    long long v;
    /* the chat-create refresh brings the owner in as a member */
    FL_WAIT_INT(v, &F, 1,
                "SELECT count(*) FROM group_member m JOIN group_chat g ON g.id=m.group_id WHERE "
                "g.chat_id='%s' AND m.status='in'",
                chat);
    assert_int_equal(v, 1);
    return t_sql_int(F.dir, "SELECT id FROM group_chat WHERE chat_id='%s'", chat);
}

/* A member action in the simulator; returns the callbacks it sent. */
static long long member_act(const char *type, const char *chat, const char *ext) {
    char body[256];
    snprintf(body, sizeof body, "{\"type\":\"%s\",\"chat_id\":\"%s\",\"external_userid\":\"%s\"}",
             type, chat, ext);
    json_t *a = fl_sim(&F, "POST", "/sim/act", body);
    long long n = json_integer_value(json_object_get(a, "callbacks"));
    json_decref(a);
    return n;
}

static void local_date(time_t t, char out[16]) {
    t += 8 * 3600; /* the tenant's zone: Asia/Shanghai by default */
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

static void test_stats_and_tags(void **state) {
    (void)state;
    char a[64], b[64], ext[8][128];
    long long ga = group_new("stats A", a), gb = group_new("stats B", b);
    long long cust[8];
    for (int i = 0; i < 8; i++)
        assert_true((cust[i] = fl_sim_add(&F, U[1], ext[i])) > 0);
    long long joins = 0, quits = 0;
    for (int i = 0; i < 6; i++)
        joins += member_act("join_group", a, ext[i]);
    for (int i = 4; i < 6; i++)
        quits += member_act("quit_group", a, ext[i]);
    joins += member_act("join_group", b, ext[7]);
    assert_int_equal(joins, 7);
    assert_int_equal(quits, 2);
    long long v;
    FL_WAIT_INT(v, &F, 9, "SELECT count(*) FROM group_member_log");
    assert_int_equal(v, 9);
    /* a message event in group A tomorrow, from a member */
    time_t now = time(NULL);
    char body[512];
    snprintf(body, sizeof body,
             "{\"events\":[{\"idempotency_key\":\"gm-1\",\"type\":\"group_message\",\"ts\":%lld,"
             "\"customer_id\":%lld,\"props\":{\"chat_id\":\"%s\"}}]}",
             (long long)now + 86400, cust[0], a);
    json_decref(t_call(&F.srv, "POST", "/api/v1/events", F.admin, body, 200));

    char from[16], to[16], path[160];
    local_date(now - 86400, from);
    local_date(now + 86400, to);
    snprintf(path, sizeof path, "/api/v1/group-stats?from=%s&to=%s", from, to);
    json_t *s = t_call(&F.srv, "GET", path, F.admin, NULL, 200);
    json_t *tot = json_object_get(s, "totals");
    assert_int_equal(json_integer_value(json_object_get(tot, "joins")), joins);
    assert_int_equal(json_integer_value(json_object_get(tot, "quits")), quits);
    assert_int_equal(json_integer_value(json_object_get(tot, "net")), joins - quits);
    /* 6 members active in A and 1 in B on their day, 1 in A tomorrow */
    assert_int_equal(json_integer_value(json_object_get(tot, "active_member_days")), 8);
    json_t *last = json_array_get(json_object_get(s, "days"), 2);
    assert_string_equal(json_string_value(json_object_get(last, "date")), to);
    assert_int_equal(json_integer_value(json_object_get(last, "active_members")), 1);
    json_decref(s);
    snprintf(path, sizeof path, "/api/v1/group-chats/%lld/stats?from=%s&to=%s", gb, from, to);
    s = t_call(&F.srv, "GET", path, F.admin, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "totals"), "joins")), 1);
    json_decref(s);
    t_resp r;
    assert_int_equal(t_api(&F.srv, "GET", "/api/v1/group-stats?from=2026-02-30&to=2026-03-01",
                           F.admin, &r, NULL),
                     0);
    t_expect_error(&r, 400, "invalid", "from");

    /* tags: create, put on A, filter, delete */
    json_t *t = t_call(&F.srv, "POST", "/api/v1/group-tags", F.admin, "{\"name\":\"VIP\"}", 201);
    long long tag = json_integer_value(json_object_get(t, "id"));
    json_decref(t);
    assert_int_equal(
        t_api(&F.srv, "POST", "/api/v1/group-tags", F.admin, &r, "{s:s}", "name", "VIP"), 0);
    t_expect_error(&r, 409, "conflict", "name");
    snprintf(path, sizeof path, "/api/v1/group-chats/%lld/tags", ga);
    snprintf(body, sizeof body, "{\"tag_ids\":[%lld]}", tag);
    json_decref(t_call(&F.srv, "PUT", path, F.admin, body, 200));
    snprintf(path, sizeof path, "/api/v1/group-tags/%lld/group-chats", tag);
    t = t_call(&F.srv, "GET", path, F.admin, NULL, 200);
    json_t *items = json_object_get(t, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 0), "id")), ga);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 0), "members")), 5);
    json_decref(t);
    snprintf(path, sizeof path, "/api/v1/group-tags/%lld", tag);
    assert_int_equal(t_api(&F.srv, "DELETE", path, F.admin, &r, NULL), 0);
    assert_int_equal(r.status, 204);
    t_resp_free(&r);
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM group_chat_tag"), 0);
}

static void test_rolling_qr(void **state) {
    (void)state;
    char b[64], c[64], ext[4][128];
    long long gb = group_new("rolling 1", b), gc = group_new("rolling 2", c);
    for (int i = 0; i < 4; i++)
        assert_true(fl_sim_add(&F, U[2], ext[i]) > 0);
    /* limit 3: the owner and two customers fill group 1 */
    char body[256];
    snprintf(body, sizeof body,
             "{\"name\":\"门店福利群\",\"group_ids\":[%lld,%lld],\"member_limit\":3}", gb, gc);
    json_t *q = t_call(&F.srv, "POST", "/api/v1/group-qrs", F.admin, body, 201);
    long long id = json_integer_value(json_object_get(q, "id"));
    json_decref(q);
    long long v;
    FL_WAIT_INT(v, &F, 1, "SELECT count(*) FROM group_qr WHERE id=%lld AND wecom_status='created'",
                id);
    assert_int_equal(v, 1);
    char config[64];
    snprintf(config, sizeof config, "%s",
             t_sql_text(F.dir, "SELECT config_id FROM group_qr WHERE id=%lld", id));
    snprintf(body, sizeof body,
             "{\"type\":\"scan_join_way\",\"state\":\"%s\",\"external_userid\":", config);
    const char *want[3] = {b, b, c};
    for (int i = 0; i < 3; i++) {
        char act[800];
        snprintf(act, sizeof act, "%s\"%s\"}", body, ext[i]);
        json_t *a = fl_sim(&F, "POST", "/sim/act", act);
        assert_string_equal(json_string_value(json_object_get(a, "chat_id")), want[i]);
        json_decref(a);
        if (i == 1) { /* group 1 is full: Siyu moves the join way to group 2 */
            FL_WAIT_INT(v, &F, 1,
                        "SELECT count(*) FROM outbox WHERE kind='groupchat_update_join_way' AND "
                        "state='sent'");
            assert_int_equal(v, 1);
        }
    }
    json_t *g = t_call(&F.srv, "GET", "/api/v1/group-qrs", F.admin, NULL, 200);
    json_t *it = json_array_get(json_object_get(g, "items"), 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(it, "chat_id_list"), 0)),
                        c);
    json_t *g0 = json_array_get(json_object_get(it, "groups"), 0);
    assert_int_equal(json_integer_value(json_object_get(g0, "members")), 3);
    assert_true(json_integer_value(json_object_get(g0, "full_at")) > 0);
    json_decref(g);
    char path[64];
    snprintf(path, sizeof path, "/api/v1/group-qrs/%lld", id);
    t_resp r;
    assert_int_equal(t_api(&F.srv, "DELETE", path, F.admin, &r, NULL), 0);
    assert_int_equal(r.status, 204);
    t_resp_free(&r);
    FL_WAIT_INT(v, &F, 1,
                "SELECT count(*) FROM outbox WHERE kind='groupchat_del_join_way' AND state='sent'");
    assert_int_equal(v, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_and_tags),
        cmocka_unit_test(test_rolling_qr),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
