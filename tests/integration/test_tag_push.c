/* test_tag_push.c — WeCom corp tags and remarks pushed through the outbox to
 * the real `siyu wecom-sim`: a tag created in a WeCom group reaches WeCom
 * (get_corp_tag_list shows it) and Siyu stores the returned wecom_id; bulk
 * tagging marks it on each customer's follow record (mark_tag); a rename
 * and a delete follow; internal tags are never pushed; a relationship remark
 * reaches the follow record; bad input is a 400 naming the field with
 * nothing written. */
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
    int rc = flows_stop(&F);
    if (rc != 0) fprintf(stderr, "siyu serve exited with status %d\n", rc);
    return rc == 0 ? 0 : -1;
}

static long long create(const char *path, const char *body) {
    json_t *j = t_call(&F.srv, "POST", path, F.admin, body, 201);
    long long id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    return id;
}

/* The simulator's tag (by id) in get_corp_tag_list, called as WeCom's API. */
static json_t *sim_corp_tag(const char *tag_id) {
    char path[256];
    snprintf(path, sizeof path, "/cgi-bin/gettoken?corpid=%s&corpsecret=%s", FL_CORP, FL_SECRET);
    json_t *tok = t_call(&F.sim, "GET", path, NULL, NULL, 200);
    snprintf(path, sizeof path, "/cgi-bin/externalcontact/get_corp_tag_list?access_token=%s",
             json_string_value(json_object_get(tok, "access_token")));
    json_decref(tok);
    json_t *list = t_call(&F.sim, "POST", path, NULL, "{}", 200);
    json_t *found = NULL, *g, *t;
    size_t i, k;
    json_array_foreach(json_object_get(list, "tag_group"), i, g) {
        json_array_foreach(json_object_get(g, "tag"), k, t) {
            if (!found && strcmp(json_string_value(json_object_get(t, "id")), tag_id) == 0) {
                found = json_pack("{s:O,s:O}", "group_name", json_object_get(g, "group_name"),
                                  "name", json_object_get(t, "name"));
            }
        }
    }
    json_decref(list);
    return found;
}

/* The follow record (customer ext, employee userid) in the simulator's dump;
 * a new reference or NULL. */
static json_t *sim_follow(const char *ext, const char *userid) {
    json_t *d = fl_sim(&F, "GET", "/sim/dump", NULL), *c, *fo, *out = NULL;
    size_t i, k;
    json_array_foreach(json_object_get(d, "customers"), i, c) {
        if (strcmp(json_string_value(json_object_get(c, "external_userid")), ext) != 0) continue;
        json_array_foreach(json_object_get(c, "follow"), k, fo) {
            if (!out && strcmp(json_string_value(json_object_get(fo, "userid")), userid) == 0)
                out = json_incref(fo);
        }
    }
    json_decref(d);
    return out;
}

static bool has_tag(const json_t *follow, const char *tag_id) {
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(follow, "tags"), i, t) {
        if (strcmp(json_string_value(t), tag_id) == 0) return true;
    }
    return false;
}

/* Waits until the follow record has (or lacks) the tag. */
static bool wait_tag(const char *ext, const char *userid, const char *tag_id, bool want) {
    for (int i = 0; i < 400; i++) {
        json_t *f = sim_follow(ext, userid);
        bool has = f && has_tag(f, tag_id);
        json_decref(f);
        if (has == want) return true;
        fl_sleep_ms(25);
    }
    return false;
}

static void test_corp_tag_and_mark(void **state) {
    (void)state;
    long long g = create("/api/v1/tag-groups", "{\"name\":\"会员等级\",\"wecom\":true}");
    assert_string_equal(t_sql_text(F.dir, "SELECT source FROM tag_group WHERE id=%lld", g),
                        "wecom");
    char body[256];
    snprintf(body, sizeof body, "{\"group_id\":%lld,\"name\":\"金卡\"}", g);
    long long t = create("/api/v1/tags", body);
    long long n;
    FL_WAIT_INT(n, &F, 1, "SELECT wecom_id IS NOT NULL FROM tag WHERE id=%lld", t);
    assert_int_equal(n, 1);
    char wid[96];
    snprintf(wid, sizeof wid, "%s", t_sql_text(F.dir, "SELECT wecom_id FROM tag WHERE id=%lld", t));
    assert_int_equal(
        t_sql_int(F.dir, "SELECT wecom_id IS NOT NULL FROM tag_group WHERE id=%lld", g), 1);
    json_t *ct = sim_corp_tag(wid);
    assert_non_null(ct);
    assert_string_equal(json_string_value(json_object_get(ct, "name")), "金卡");
    assert_string_equal(json_string_value(json_object_get(ct, "group_name")), "会员等级");
    json_decref(ct);
    assert_int_equal(
        t_sql_int(F.dir, "SELECT count(*) FROM outbox WHERE kind='add_corp_tag' AND state='sent'"),
        1);

    /* Bulk-tag three customers of U0: mark_tag on each follow record. */
    char ext[3][128];
    long long c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = fl_sim_add(&F, U[0], ext[i]);
        assert_true(c[i] > 0);
    }
    snprintf(body, sizeof body,
             "{\"action\":\"tag\",\"tag_ids\":[%lld],\"customer_ids\":[%lld,%lld,%lld]}", t, c[0],
             c[1], c[2]);
    json_t *j = t_call(&F.srv, "POST", "/api/v1/tags/bulk", F.admin, body, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "changed")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "wecom_pushes")), 3);
    json_decref(j);
    for (int i = 0; i < 3; i++)
        assert_true(wait_tag(ext[i], U[0], wid, true));
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM outbox WHERE kind='mark_tag' AND "
                                      "lane=2"),
                     3);

    /* Untag one. */
    snprintf(body, sizeof body, "{\"action\":\"untag\",\"tag_ids\":[%lld],\"customer_ids\":[%lld]}",
             t, c[1]);
    json_decref(t_call(&F.srv, "POST", "/api/v1/tags/bulk", F.admin, body, 200));
    assert_true(wait_tag(ext[1], U[0], wid, false));
    assert_true(wait_tag(ext[0], U[0], wid, true));

    /* Rename: edit_corp_tag. */
    char path[64];
    snprintf(path, sizeof path, "/api/v1/tags/%lld", t);
    json_decref(t_call(&F.srv, "PATCH", path, F.admin, "{\"name\":\"黑金卡\"}", 200));
    bool renamed = false;
    for (int i = 0; i < 400 && !renamed; i++) {
        ct = sim_corp_tag(wid);
        renamed = ct && strcmp(json_string_value(json_object_get(ct, "name")), "黑金卡") == 0;
        json_decref(ct);
        if (!renamed) fl_sleep_ms(25);
    }
    assert_true(renamed);

    /* A WeCom tag cannot move to an internal group; a tag in a WeCom group
     * cannot be declared internal. */
    long long ig = create("/api/v1/tag-groups", "{\"name\":\"内部\"}");
    snprintf(body, sizeof body, "{\"group_id\":%lld}", ig);
    t_resp r;
    assert_int_equal(t_http(&F.srv, "PATCH", path, F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 400, "invalid", "group_id");
    snprintf(body, sizeof body, "{\"group_id\":%lld,\"name\":\"x\",\"wecom\":false}", g);
    assert_int_equal(t_http(&F.srv, "POST", "/api/v1/tags", F.admin, body, strlen(body), NULL, &r),
                     0);
    t_expect_error(&r, 400, "invalid", "wecom");

    /* Internal tags are never pushed. */
    snprintf(body, sizeof body, "{\"group_id\":%lld,\"name\":\"内部标签\"}", ig);
    long long it = create("/api/v1/tags", body);
    snprintf(body, sizeof body, "{\"action\":\"tag\",\"tag_ids\":[%lld],\"customer_ids\":[%lld]}",
             it, c[0]);
    j = t_call(&F.srv, "POST", "/api/v1/tags/bulk", F.admin, body, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "wecom_pushes")), 0);
    json_decref(j);
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM outbox WHERE kind='add_corp_tag'"), 1);

    /* Delete: del_corp_tag; the simulator no longer has it. */
    t_resp d;
    assert_int_equal(t_api(&F.srv, "DELETE", path, F.admin, &d, NULL), 0);
    assert_int_equal(d.status, 204);
    t_resp_free(&d);
    bool gone = false;
    for (int i = 0; i < 400 && !gone; i++) {
        ct = sim_corp_tag(wid);
        gone = ct == NULL;
        json_decref(ct);
        if (!gone) fl_sleep_ms(25);
    }
    assert_true(gone);
    assert_true(t_sql_int(F.dir, "SELECT count(*) FROM audit_log WHERE action='tag.create' AND "
                                 "detail='wecom'") >= 1);
}

/* A WeCom group created with its tags reaches WeCom as one group. */
static void test_group_with_tags(void **state) {
    (void)state;
    long long g = create("/api/v1/tag-groups",
                         "{\"name\":\"偏好\",\"wecom\":true,\"tags\":[\"口红\",\"面霜\"]}");
    long long n;
    FL_WAIT_INT(n, &F, 2, "SELECT count(*) FROM tag WHERE group_id=%lld AND wecom_id IS NOT NULL",
                g);
    assert_int_equal(n, 2);
    char wid[2][96];
    for (int i = 0; i < 2; i++) {
        snprintf(wid[i], sizeof wid[i], "%s",
                 t_sql_text(F.dir,
                            "SELECT wecom_id FROM tag WHERE group_id=%lld ORDER BY id "
                            "LIMIT 1 OFFSET %d",
                            g, i));
        json_t *ct = sim_corp_tag(wid[i]);
        assert_non_null(ct);
        assert_string_equal(json_string_value(json_object_get(ct, "group_name")), "偏好");
        json_decref(ct);
    }
    /* A bad name: 400 naming it, nothing written. */
    t_resp r;
    const char *body = "{\"name\":\"坏\",\"wecom\":true,\"tags\":[\"a\",\"\"]}";
    assert_int_equal(
        t_http(&F.srv, "POST", "/api/v1/tag-groups", F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 400, "invalid", "tags[1]");
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM tag_group WHERE name='坏'"), 0);
    /* WeCom names are at most 30 characters: 31 Chinese characters are refused up front. */
    body = "{\"name\":\"一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十一\",\"wecom\":"
           "true,"
           "\"tags\":[\"a\"]}";
    assert_int_equal(
        t_http(&F.srv, "POST", "/api/v1/tag-groups", F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 400, "invalid", "name");
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM tag_group WHERE name LIKE '一二三%%'"),
                     0);
}

static void test_remark(void **state) {
    (void)state;
    char ext[128];
    long long c = fl_sim_add(&F, U[1], ext);
    assert_true(c > 0);
    long long e = t_sql_int(F.dir, "SELECT id FROM employee WHERE userid='%s'", U[1]);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/customers/%lld/relationships/%lld", c, e);
    json_t *j = t_call(&F.srv, "PATCH", path, F.admin,
                       "{\"remark\":\"王女士-老客户\",\"description\":\"喜欢新品\"}", 200);
    assert_string_equal(json_string_value(json_object_get(j, "remark")), "王女士-老客户");
    json_decref(j);
    assert_string_equal(
        t_sql_text(F.dir, "SELECT remark FROM relationship WHERE customer_id=%lld", c),
        "王女士-老客户");
    bool ok = false;
    for (int i = 0; i < 400 && !ok; i++) {
        json_t *f = sim_follow(ext, U[1]);
        const char *rm = json_string_value(json_object_get(f, "remark"));
        ok = rm && strcmp(rm, "王女士-老客户") == 0;
        json_decref(f);
        if (!ok) fl_sleep_ms(25);
    }
    assert_true(ok);
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM audit_log WHERE "
                                      "action='relationship.remark'"),
                     1);

    /* 21 characters (UTF-8, 63 bytes): 400 naming remark, nothing written. */
    long long ob = t_sql_int(F.dir, "SELECT count(*) FROM outbox");
    t_resp r;
    const char *body = "{\"remark\":\"一二三四五六七八九十一二三四五六七八九十一\"}";
    assert_int_equal(t_http(&F.srv, "PATCH", path, F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 400, "invalid", "remark");
    body = "{}";
    assert_int_equal(t_http(&F.srv, "PATCH", path, F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 400, "invalid", "remark");
    /* All empty: WeCom would refuse it, so Siyu does too. */
    body = "{\"remark\":\"\",\"description\":\"\"}";
    assert_int_equal(t_http(&F.srv, "PATCH", path, F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 400, "invalid", "remark");
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM outbox"), ob);
    assert_string_equal(
        t_sql_text(F.dir, "SELECT remark FROM relationship WHERE customer_id=%lld", c),
        "王女士-老客户");
    /* Another employee's (absent) relationship: 404. */
    snprintf(path, sizeof path, "/api/v1/customers/%lld/relationships/%lld", c, e + 1000);
    assert_int_equal(t_http(&F.srv, "PATCH", path, F.admin, "{\"remark\":\"x\"}", 14, NULL, &r), 0);
    t_expect_error(&r, 404, "not_found", NULL);
}

/* A customer tagged while the tag's add_corp_tag is still on its way has no
 * WeCom id to mark with; once the answer brings the id, the mark follows. */
static void test_tagged_before_wecom_id(void **state) {
    (void)state;
    long long g = create("/api/v1/tag-groups", "{\"name\":\"兴趣爱好\",\"wecom\":true,"
                                               "\"tags\":[\"瑜伽\"]}");
    long long n;
    FL_WAIT_INT(n, &F, 1, "SELECT wecom_id IS NOT NULL FROM tag_group WHERE id=%lld", g);
    assert_int_equal(n, 1);
    json_decref(
        fl_sim(&F, "POST", "/sim/fault",
               "{\"path\":\"externalcontact/add_corp_tag\",\"delay_ms\":1500,\"count\":1}"));
    char body[256];
    snprintf(body, sizeof body, "{\"group_id\":%lld,\"name\":\"跑步\"}", g);
    long long t = create("/api/v1/tags", body);
    char ext[128];
    long long c = fl_sim_add(&F, U[0], ext);
    assert_true(c > 0);
    snprintf(body, sizeof body, "{\"action\":\"tag\",\"tag_ids\":[%lld],\"customer_ids\":[%lld]}",
             t, c);
    json_t *j = t_call(&F.srv, "POST", "/api/v1/tags/bulk", F.admin, body, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "wecom_pushes")), 0); /* no id yet */
    json_decref(j);
    FL_WAIT_INT(n, &F, 1, "SELECT wecom_id IS NOT NULL FROM tag WHERE id=%lld", t);
    assert_int_equal(n, 1);
    char wid[96];
    snprintf(wid, sizeof wid, "%s", t_sql_text(F.dir, "SELECT wecom_id FROM tag WHERE id=%lld", t));
    assert_true(wait_tag(ext, U[0], wid, true));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corp_tag_and_mark),
        cmocka_unit_test(test_group_with_tags),
        cmocka_unit_test(test_remark),
        cmocka_unit_test(test_tagged_before_wecom_id),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
