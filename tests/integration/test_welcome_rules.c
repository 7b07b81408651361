/* test_welcome_rules.c — welcome rules (F5) and auto-tag rules (F6) end to
 * end against `siyu wecom-sim`: rules chosen by channel, department (through
 * a sub-department), employee and weekday slot, with placeholders filled,
 * reach the simulator's send_welcome_msg; precedence follows priority and
 * the tenant default is the fallback; every welcome is logged with its rule,
 * why and outcome (sent, late when WeCom says the code expired after a late
 * retry, failed with the errcode); the preview answers as a real add would;
 * auto-tags by channel group, group join, keyword, event count in a window
 * and stage, never re-applied; bad input is a 400 naming the field with
 * nothing written. */
#include "outbox_fixture.h"

static char U[5][64];             /* simulator userids */
static long long E[5];            /* their Siyu employee ids */
static long long HQ, EAST, STORE; /* departments HQ > East; a store */
static long long GRP, CH;         /* a channel group and a channel in it */
static char STATE[64];            /* CH's state */
static long long R_NEVER, R_CHANNEL, R_DEPT, R_TODAY;
static long long TG[5]; /* internal tags */
static long long TR_CHANNEL, TR_KEYWORD, TR_COUNT, TR_STAGE, TR_GROUP;
static const char *const WD[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

static long long post_id(const char *path, const char *body) {
    json_t *j = t_call(&F.srv, "POST", path, F.admin, body, 201);
    long long id = jint(j, "id");
    json_decref(j);
    assert_true(id > 0);
    return id;
}

/* Today's weekday (0 = Monday) in the tenant's zone (Asia/Shanghai). */
static int today_local(void) {
    long long days = ((long long)time(NULL) + 8 * 3600) / 86400;
    return (int)((days + 3) % 7);
}

static void make_world(void) {
    for (int i = 0; i < 5; i++) {
        char *u = of_employee(&F, i);
        snprintf(U[i], sizeof U[i], "%s", u);
        free(u);
    }
    char body[1024];
    HQ = post_id("/api/v1/departments", "{\"name\":\"HQ\"}");
    snprintf(body, sizeof body, "{\"name\":\"East\",\"parent_id\":%lld}", HQ);
    EAST = post_id("/api/v1/departments", body);
    STORE = post_id("/api/v1/stores", "{\"name\":\"Store One\"}");
    /* U0 Lily in East; U1 without a name or department; U2 in the store;
     * U3, U4 plain. */
    snprintf(body, sizeof body, "{\"userid\":\"%s\",\"name\":\"Lily\",\"department_id\":%lld}",
             U[0], EAST);
    E[0] = post_id("/api/v1/employees", body);
    snprintf(body, sizeof body, "{\"userid\":\"%s\"}", U[1]);
    E[1] = post_id("/api/v1/employees", body);
    snprintf(body, sizeof body, "{\"userid\":\"%s\",\"name\":\"Sam\",\"store_id\":%lld}", U[2],
             STORE);
    E[2] = post_id("/api/v1/employees", body);
    for (int i = 3; i < 5; i++) {
        snprintf(body, sizeof body, "{\"userid\":\"%s\",\"name\":\"Staff %d\"}", U[i], i);
        E[i] = post_id("/api/v1/employees", body);
    }
    GRP = post_id("/api/v1/channel-groups", "{\"name\":\"Doors\"}");
    snprintf(body, sizeof body,
             "{\"name\":\"Front door\",\"group_id\":%lld,\"staff\":[{\"employee_id\":%lld}]}", GRP,
             E[0]);
    json_t *ch = t_call(&F.srv, "POST", "/api/v1/channels", F.admin, body, 201);
    CH = jint(ch, "id");
    snprintf(STATE, sizeof STATE, "%s", jstr(ch, "state"));
    json_decref(ch);
    long long g = post_id("/api/v1/tag-groups", "{\"name\":\"Auto\"}");
    static const char *const names[] = {"door", "refund", "campaign fan", "vip", "group fan"};
    for (int i = 0; i < 5; i++) {
        snprintf(body, sizeof body, "{\"group_id\":%lld,\"name\":\"%s\"}", g, names[i]);
        TG[i] = post_id("/api/v1/tags", body);
    }
}

static void make_rules(void) {
    char body[2048];
    int today = today_local(), tomorrow = (today + 1) % 7;
    snprintf(body, sizeof body,
             "{\"name\":\"never\",\"priority\":5,\"text\":\"never\",\"conditions\":{"
             "\"employee_ids\":[%lld],\"schedule\":\"%s 00:00-24:00\"}}",
             E[1], WD[tomorrow]);
    R_NEVER = post_id("/api/v1/welcome-rules", body);
    snprintf(body, sizeof body,
             "{\"name\":\"door\",\"priority\":20,\"text\":\"Hi {customer_name|friend}, I am "
             "{employee_name} at the door\",\"attachments\":[{\"msgtype\":\"link\",\"link\":{"
             "\"title\":\"Menu\",\"url\":\"https://example.com/m\"}},{\"msgtype\":\"image\","
             "\"image\":{\"media_id\":\"MEDIA1\"}}],\"conditions\":{\"channel_ids\":[%lld]}}",
             CH);
    json_t *r = t_call(&F.srv, "POST", "/api/v1/welcome-rules", F.admin, body, 201);
    R_CHANNEL = jint(r, "id");
    assert_int_equal(json_array_size(json_object_get(r, "attachments")), 2);
    json_decref(r);
    snprintf(body, sizeof body,
             "{\"name\":\"hq\",\"priority\":30,\"text\":\"Welcome from HQ, {employee_name}\","
             "\"conditions\":{\"department_ids\":[%lld]}}",
             HQ);
    R_DEPT = post_id("/api/v1/welcome-rules", body);
    /* Given in a non-canonical form: stored canonical. */
    snprintf(body, sizeof body,
             "{\"name\":\"today\",\"priority\":40,\"text\":\"Today with {employee_name|us}\","
             "\"conditions\":{\"employee_ids\":[%lld,%lld],\"schedule\":\"%s 00:00-24:00\"}}",
             E[1], E[1], WD[today]);
    r = t_call(&F.srv, "POST", "/api/v1/welcome-rules", F.admin, body, 201);
    R_TODAY = jint(r, "id");
    json_t *ids = json_object_get(json_object_get(r, "conditions"), "employee_ids");
    assert_int_equal(json_array_size(ids), 1);
    json_decref(r);
    /* auto-tag rules */
    snprintf(body, sizeof body,
             "{\"name\":\"doors\",\"trigger\":\"channel\",\"params\":{\"channel_group_ids\":[%lld]}"
             ",\"tag_ids\":[%lld]}",
             GRP, TG[0]);
    TR_CHANNEL = post_id("/api/v1/tag-rules", body);
    snprintf(body, sizeof body,
             "{\"name\":\"refunds\",\"trigger\":\"keyword\",\"params\":{\"keywords\":[\"REFUND\","
             "\"退款\"]},\"tag_ids\":[%lld]}",
             TG[1]);
    TR_KEYWORD = post_id("/api/v1/tag-rules", body);
    snprintf(body, sizeof body,
             "{\"name\":\"fans\",\"trigger\":\"event_count\",\"params\":{\"event_type\":"
             "\"campaign.join\",\"count\":3,\"window_days\":30},\"tag_ids\":[%lld]}",
             TG[2]);
    TR_COUNT = post_id("/api/v1/tag-rules", body);
    snprintf(body, sizeof body,
             "{\"name\":\"vip\",\"trigger\":\"stage\",\"params\":{\"stage\":\"vip\"},\"tag_ids\":["
             "%lld]}",
             TG[3]);
    TR_STAGE = post_id("/api/v1/tag-rules", body);
}

static int setup_rules(void **state) {
    if (setup(state) != 0) return -1;
    make_world();
    make_rules();
    return 0;
}

/* A delivered add of a new customer to userid with state; the code. */
static char *add(const char *userid, const char *state, char ext[128]) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"type\":\"add\",\"userid\":\"%s\",\"state\":\"%s\",\"welcome\":true}", userid,
             state);
    json_t *a = of_sim(&F, "/sim/act", body);
    char *code = strdup(jstr(a, "welcome_code"));
    if (ext) snprintf(ext, 128, "%s", jstr(a, "external_userid"));
    json_decref(a);
    assert_true(code[0] != 0);
    return code;
}

/* The /api/v1/welcomes item for the outbox row of code (new ref) or NULL. */
static json_t *welcome_item(long long outbox_id) {
    json_t *page = t_call(&F.srv, "GET", "/api/v1/welcomes?limit=500", F.admin, NULL, 200);
    json_t *it, *found = NULL;
    size_t i;
    json_array_foreach(json_object_get(page, "items"), i, it) {
        if (jint(it, "outbox_id") == outbox_id) found = json_incref(it);
    }
    json_decref(page);
    return found;
}

static void expect_sent(const char *code, const char *text, long long rule) {
    json_t *row = of_wait_welcome(&F, code, "sent", 10000);
    int ok;
    char got[512];
    assert_int_equal(of_sim_welcomes(&F, code, &ok, got, sizeof got), 1);
    assert_int_equal(ok, 1);
    assert_string_equal(got, text);
    json_t *w = welcome_item(jint(row, "id"));
    assert_non_null(w);
    assert_string_equal(jstr(w, "outcome"), "sent");
    assert_string_equal(jstr(w, "source"), rule ? "rule" : "default");
    assert_int_equal(jint(w, "rule_id"), rule);
    json_t *why = json_object_get(w, "why");
    const char *last = json_string_value(json_array_get(why, json_array_size(why) - 1));
    assert_non_null(last);
    assert_non_null(strstr(last, rule ? "chosen" : "tenant default"));
    json_decref(w);
    json_decref(row);
}

/* Channel, department (via the sub-department), employee+slot, default. */
static void test_rule_choice(void **state) {
    (void)state;
    char ext[128];
    char *code = add(U[0], STATE, ext);
    expect_sent(code, "Hi friend, I am Lily at the door", R_CHANNEL);
    json_t *row = of_wait_welcome(&F, code, "sent", 1000);
    json_t *att = json_object_get(json_object_get(row, "body"), "attachments");
    assert_int_equal(json_array_size(att), 2);
    assert_string_equal(jstr(json_array_get(att, 0), "msgtype"), "link");
    json_decref(row);
    /* ... and reached the simulator with the text */
    json_t *d = of_sim(&F, "/sim/dump", NULL);
    json_t *sw;
    size_t k;
    int seen = 0;
    json_array_foreach(json_object_get(d, "welcomes"), k, sw) {
        if (strcmp(jstr(sw, "welcome_code"), code)) continue;
        assert_int_equal(jint(sw, "attachments"), 2);
        assert_true(jint(sw, "arrived_ms") >= jint(sw, "minted_ms"));
        seen++;
    }
    assert_int_equal(seen, 1);
    json_decref(d);
    free(code);
    /* The channel-group auto-tag came with the add, in the same commit. */
    long long cust = t_sql_int(F.dir, "SELECT customer_id FROM identity WHERE value='%s'", ext);
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM customer_tag WHERE customer_id=%lld AND "
                               "tag_id=%lld AND source='rule'",
                               cust, TG[0]),
                     1);

    code = add(U[0], "t", NULL);
    expect_sent(code, "Welcome from HQ, Lily", R_DEPT);
    free(code);
    code = add(U[1], "t", NULL);
    expect_sent(code, "Today with us", R_TODAY);
    free(code);
    code = add(U[2], "t", NULL);
    expect_sent(code, OF_TEXT, 0);
    free(code);
    /* The never rule was skipped for its slot, named in why. */
    json_t *page =
        t_call(&F.srv, "GET", "/api/v1/welcomes?source=rule&limit=1", F.admin, NULL, 200);
    json_t *w = json_array_get(json_object_get(page, "items"), 0);
    assert_int_equal(jint(w, "rule_id"), R_TODAY);
    assert_non_null(strstr(json_string_value(json_array_get(json_object_get(w, "why"), 0)),
                           "outside schedule"));
    json_decref(page);
}

/* Preview answers what an add would get; a priority change reorders. */
static void test_preview_and_precedence(void **state) {
    (void)state;
    char ext[128];
    char *code = add(U[0], STATE, ext);
    json_decref(of_wait_welcome(&F, code, "sent", 10000));
    free(code);
    long long cust = t_sql_int(F.dir, "SELECT customer_id FROM identity WHERE value='%s'", ext);
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE customer SET name='Amy' WHERE id=%lld", cust);
    assert_int_equal(t_sql_exec(F.dir, sql), 0);
    char path[256];
    snprintf(path, sizeof path,
             "/api/v1/welcome-rules/preview?employee=%s&channel=%lld&customer=%lld", U[0], CH,
             cust);
    json_t *p = t_call(&F.srv, "GET", path, F.admin, NULL, 200);
    assert_string_equal(jstr(p, "source"), "rule");
    assert_int_equal(jint(p, "rule_id"), R_CHANNEL);
    assert_string_equal(jstr(json_object_get(json_object_get(p, "message"), "text"), "content"),
                        "Hi Amy, I am Lily at the door");
    json_decref(p);
    /* hq moves ahead of door */
    char body[256];
    snprintf(body, sizeof body,
             "{\"name\":\"hq\",\"priority\":10,\"text\":\"Welcome from HQ, {employee_name}\","
             "\"conditions\":{\"department_ids\":[%lld]}}",
             HQ);
    snprintf(sql, sizeof sql, "/api/v1/welcome-rules/%lld", R_DEPT);
    json_decref(t_call(&F.srv, "PUT", sql, F.admin, body, 200));
    p = t_call(&F.srv, "GET", path, F.admin, NULL, 200);
    assert_int_equal(jint(p, "rule_id"), R_DEPT);
    json_decref(p);
    json_t *list = t_call(&F.srv, "GET", "/api/v1/welcome-rules", F.admin, NULL, 200);
    assert_int_equal(jint(json_array_get(json_object_get(list, "items"), 0), "id"), R_NEVER);
    assert_int_equal(jint(json_array_get(json_object_get(list, "items"), 1), "id"), R_DEPT);
    json_decref(list);
    /* Tomorrow, U1 gets the never rule (its slot); at a time, by id. */
    snprintf(path, sizeof path, "/api/v1/welcome-rules/preview?employee=%lld&at=%lld", E[1],
             (long long)time(NULL) + 86400);
    p = t_call(&F.srv, "GET", path, F.admin, NULL, 200);
    assert_int_equal(jint(p, "rule_id"), R_NEVER);
    json_decref(p);
    /* Disabled rules are passed over; with none left: the default. */
    snprintf(path, sizeof path, "/api/v1/welcome-rules/preview?employee=%lld", E[3]);
    p = t_call(&F.srv, "GET", path, F.admin, NULL, 200);
    assert_string_equal(jstr(p, "source"), "default");
    assert_string_equal(jstr(json_object_get(json_object_get(p, "message"), "text"), "content"),
                        OF_TEXT);
    json_decref(p);
}

/* A late send (a busy answer, then WeCom's clock passes the code's 20 s)
 * is recorded as late, not sent; a refused one as failed with the errcode. */
static void test_late_and_failed(void **state) {
    (void)state;
    json_decref(of_sim(&F, "/sim/fault",
                       "{\"path\":\"externalcontact/send_welcome_msg\",\"errcode\":45009,"
                       "\"count\":1}"));
    char *code = add(U[3], "t", NULL);
    json_decref(of_wait_welcome(&F, code, "failed", 10000));
    json_decref(of_sim(&F, "/sim/clock", "{\"advance\":60}"));
    json_t *row = of_wait_welcome(&F, code, "dead", 10000);
    json_t *w = welcome_item(jint(row, "id"));
    assert_string_equal(jstr(w, "outcome"), "late");
    assert_int_equal(jint(w, "errcode"), 41050);
    json_decref(w);
    json_decref(row);
    int ok;
    of_sim_welcomes(&F, code, &ok, NULL, 0);
    assert_int_equal(ok, 0);
    free(code);

    json_decref(of_sim(&F, "/sim/fault",
                       "{\"path\":\"externalcontact/send_welcome_msg\",\"errcode\":41053,"
                       "\"count\":1}"));
    code = of_add(&F, U[4]);
    row = of_wait_welcome(&F, code, "dead", 10000);
    w = welcome_item(jint(row, "id"));
    assert_string_equal(jstr(w, "outcome"), "failed");
    assert_int_equal(jint(w, "errcode"), 41053);
    json_decref(w);
    json_decref(row);
    free(code);

    json_t *page = t_call(&F.srv, "GET", "/api/v1/welcomes?outcome=late", F.admin, NULL, 200);
    assert_true(json_array_size(json_object_get(page, "items")) >= 1);
    json_decref(page);
    json_t *c = t_call(&F.srv, "GET", "/api/v1/welcomes/counts", F.admin, NULL, 200);
    json_t *tot = json_object_get(c, "total");
    assert_true(jint(tot, "late") >= 1);
    assert_true(jint(tot, "failed") >= 1);
    assert_int_equal(jint(tot, "total"),
                     t_sql_int(F.dir, "SELECT count(*) FROM welcome_log WHERE tenant_id=1"));
    long long sum = 0;
    json_t *it;
    size_t i;
    json_array_foreach(json_object_get(c, "by_rule"), i, it) sum += jint(it, "total");
    assert_int_equal(sum, jint(tot, "total"));
    json_decref(c);
}

static json_t *post_events(const char *items) {
    char body[2048];
    snprintf(body, sizeof body, "{\"events\":[%s]}", items);
    return t_call(&F.srv, "POST", "/api/v1/events", F.admin, body, 200);
}

static long long tagged(const char *ext, long long tag) {
    return t_sql_int(F.dir,
                     "SELECT count(*) FROM customer_tag ct JOIN identity i ON "
                     "i.customer_id=ct.customer_id WHERE i.value='%s' AND ct.tag_id=%lld",
                     ext, tag);
}

static long long hits(long long rule) {
    return t_sql_int(F.dir, "SELECT hits FROM tag_rule WHERE id=%lld", rule);
}

static void test_auto_tag_keyword(void **state) {
    (void)state;
    json_decref(post_events("{\"idempotency_key\":\"kw1\",\"type\":\"message\",\"ts\":1700000000,"
                            "\"external_userid\":\"wmKw1\","
                            "\"props\":{\"text\":\"I want a Refund now\"}},"
                            "{\"idempotency_key\":\"kw2\",\"type\":\"message\",\"ts\":1700000000,"
                            "\"external_userid\":\"wmKw2\","
                            "\"props\":{\"text\":\"nice shoes\"}},"
                            "{\"idempotency_key\":\"kw3\",\"type\":\"visit\",\"ts\":1700000000,"
                            "\"external_userid\":\"wmKw3\","
                            "\"props\":{\"text\":\"refund\"}}"));
    assert_int_equal(tagged("wmKw1", TG[1]), 1);
    assert_int_equal(tagged("wmKw2", TG[1]), 0);
    assert_int_equal(tagged("wmKw3", TG[1]), 0); /* not a message event */
    assert_int_equal(hits(TR_KEYWORD), 1);
    /* Again for the same customer: the tag is there, nothing re-applied. */
    json_decref(post_events("{\"idempotency_key\":\"kw4\",\"type\":\"message\",\"ts\":1700000000,"
                            "\"external_userid\":\"wmKw1\","
                            "\"props\":{\"text\":\"退款 please\"}}"));
    assert_int_equal(hits(TR_KEYWORD), 1);
    assert_int_equal(
        t_sql_int(F.dir, "SELECT count(*) FROM tag_rule_hit WHERE rule_id=%lld", TR_KEYWORD), 1);
    json_t *r = t_call(&F.srv, "GET", "/api/v1/tag-rules", F.admin, NULL, 200);
    assert_true(json_array_size(json_object_get(r, "items")) >= 4);
    json_decref(r);
}

static void test_auto_tag_count_window(void **state) {
    (void)state;
    long long now = (long long)time(NULL);
    char items[1024];
    snprintf(items, sizeof items,
             "{\"idempotency_key\":\"c1\",\"type\":\"campaign.join\",\"external_userid\":"
             "\"wmCnt\",\"ts\":%lld},"
             "{\"idempotency_key\":\"c2\",\"type\":\"campaign.join\",\"external_userid\":"
             "\"wmCnt\",\"ts\":%lld},"
             "{\"idempotency_key\":\"c3\",\"type\":\"campaign.join\",\"external_userid\":"
             "\"wmCnt\",\"ts\":%lld},"
             "{\"idempotency_key\":\"c4\",\"type\":\"visit\",\"external_userid\":\"wmCnt\","
             "\"ts\":%lld}",
             now - 40 * 86400, now - 2 * 86400, now - 86400, now - 60);
    json_decref(post_events(items));
    assert_int_equal(tagged("wmCnt", TG[2]), 0); /* 2 in the window, one too old */
    snprintf(items, sizeof items,
             "{\"idempotency_key\":\"c5\",\"type\":\"campaign.join\",\"external_userid\":"
             "\"wmCnt\",\"ts\":%lld}",
             now);
    json_decref(post_events(items));
    assert_int_equal(tagged("wmCnt", TG[2]), 1);
    assert_int_equal(hits(TR_COUNT), 1);
}

static void test_auto_tag_stage_and_group(void **state) {
    (void)state;
    char ext[128];
    char *code = add(U[3], "t", ext);
    json_decref(of_wait_welcome(&F, code, "sent", 10000));
    free(code);
    long long cust = t_sql_int(F.dir, "SELECT customer_id FROM identity WHERE value='%s'", ext);
    char path[64];
    snprintf(path, sizeof path, "/api/v1/customers/%lld", cust);
    json_decref(t_call(&F.srv, "PATCH", path, F.admin, "{\"stage\":\"lead\"}", 200));
    assert_int_equal(tagged(ext, TG[3]), 0);
    json_decref(t_call(&F.srv, "PATCH", path, F.admin, "{\"stage\":\"vip\"}", 200));
    assert_int_equal(tagged(ext, TG[3]), 1);
    assert_int_equal(hits(TR_STAGE), 1);
    /* group join: learn a chat id without telling Siyu, make the rule, then
     * the customer joins that chat (callback add_member). */
    json_t *a = of_sim(&F, "/sim/act", "{\"type\":\"join_group\",\"deliver\":false}");
    char chat[128], body[512];
    snprintf(chat, sizeof chat, "%s", jstr(a, "chat_id"));
    json_decref(a);
    snprintf(body, sizeof body,
             "{\"name\":\"group\",\"trigger\":\"group_join\",\"params\":{\"chat_ids\":[\"%s\"]},"
             "\"tag_ids\":[%lld]}",
             chat, TG[4]);
    TR_GROUP = post_id("/api/v1/tag-rules", body);
    snprintf(body, sizeof body,
             "{\"type\":\"join_group\",\"chat_id\":\"%s\",\"external_userid\":\"%s\"}", chat, ext);
    json_decref(of_sim(&F, "/sim/act", body));
    long long n = 0;
    for (int i = 0; i < 100 && (n = tagged(ext, TG[4])) == 0; i++)
        usleep(50000);
    assert_int_equal(n, 1);
    assert_int_equal(hits(TR_GROUP), 1);
}

static void expect_400(const char *method, const char *path, const char *body, const char *field) {
    t_resp r;
    assert_int_equal(t_http(&F.srv, method, path, F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 400, "invalid", field);
}

static void test_bad_input(void **state) {
    (void)state;
    long long wr = t_sql_int(F.dir, "SELECT count(*) FROM welcome_rule");
    long long tr = t_sql_int(F.dir, "SELECT count(*) FROM tag_rule");
    const char *p = "/api/v1/welcome-rules";
    expect_400("POST", p, "{\"text\":\"x\"}", "name");
    expect_400("POST", p, "{\"name\":\"b1\"}", "text");
    expect_400("POST", p, "{\"name\":\"b1\",\"text\":\"Hi {nickname}\"}", "text");
    expect_400("POST", p, "{\"name\":\"b1\",\"text\":\"x\",\"priority\":-1}", "priority");
    expect_400("POST", p, "{\"name\":\"b1\",\"text\":\"x\",\"colour\":1}", "colour");
    expect_400("POST", p,
               "{\"name\":\"b1\",\"text\":\"x\",\"conditions\":{\"channel_ids\":[424242]}}",
               "conditions.channel_ids");
    expect_400("POST", p, "{\"name\":\"b1\",\"text\":\"x\",\"conditions\":{\"weather\":1}}",
               "conditions.weather");
    expect_400("POST", p,
               "{\"name\":\"b1\",\"text\":\"x\",\"conditions\":{\"schedule\":\"mon 25:00-26:00\"}}",
               "conditions.schedule");
    expect_400("POST", p,
               "{\"name\":\"b1\",\"text\":\"x\",\"conditions\":{\"date_from\":\"2026-12-26\","
               "\"date_to\":\"2026-12-24\"}}",
               "conditions.date_to");
    expect_400("POST", p,
               "{\"name\":\"b1\",\"text\":\"x\",\"conditions\":{\"date_from\":\"2026-02-30\"}}",
               "conditions.date_from");
    char big[2048] = "{\"name\":\"b1\",\"attachments\":[";
    for (int i = 0; i < 10; i++)
        strcat(big, i ? ",{\"msgtype\":\"image\",\"image\":{\"media_id\":\"m\"}}"
                      : "{\"msgtype\":\"image\",\"image\":{\"media_id\":\"m\"}}");
    strcat(big, "]}");
    expect_400("POST", p, big, "attachments");
    char title[512];
    snprintf(
        title, sizeof title,
        "{\"name\":\"b1\",\"attachments\":[{\"msgtype\":\"link\",\"link\":{\"title\":\"%0129d\","
        "\"url\":\"https://x.example\"}}]}",
        0);
    expect_400("POST", p, title, "attachments[0].link.title");
    expect_400("POST", p,
               "{\"name\":\"b1\",\"attachments\":[{\"msgtype\":\"link\",\"link\":{\"title\":\"t\","
               "\"url\":\"javascript:x\"}}]}",
               "attachments[0].link.url");
    expect_400("POST", p,
               "{\"name\":\"b1\",\"attachments\":[{\"msgtype\":\"miniprogram\",\"miniprogram\":{"
               "\"title\":\"t\",\"appid\":\"wx1\",\"page\":\"p\"}}]}",
               "attachments[0].miniprogram.pic_media_id");
    expect_400("POST", p, "{\"name\":\"b1\",\"attachments\":[{\"msgtype\":\"sticker\"}]}",
               "attachments[0].msgtype");
    expect_400("GET", "/api/v1/welcome-rules/preview", "", "employee");
    expect_400("GET", "/api/v1/welcome-rules/preview?employee=nobody", "", "employee");
    expect_400("GET", "/api/v1/welcomes?outcome=great", "", "outcome");
    const char *t = "/api/v1/tag-rules";
    char body[1024];
    snprintf(body, sizeof body,
             "{\"name\":\"b\",\"trigger\":\"moon\",\"params\":{},\"tag_ids\":[%lld]}", TG[0]);
    expect_400("POST", t, body, "trigger");
    snprintf(body, sizeof body,
             "{\"name\":\"b\",\"trigger\":\"keyword\",\"params\":{\"keywords\":[]},\"tag_ids\":["
             "%lld]}",
             TG[0]);
    expect_400("POST", t, body, "params.keywords");
    snprintf(body, sizeof body,
             "{\"name\":\"b\",\"trigger\":\"keyword\",\"params\":{\"keywords\":[\"%033d\"]},"
             "\"tag_ids\":[%lld]}",
             0, TG[0]);
    expect_400("POST", t, body, "params.keywords");
    snprintf(body, sizeof body,
             "{\"name\":\"b\",\"trigger\":\"event_count\",\"params\":{\"event_type\":\"x\","
             "\"count\":3},\"tag_ids\":[%lld]}",
             TG[0]);
    expect_400("POST", t, body, "params.window_days");
    snprintf(body, sizeof body,
             "{\"name\":\"b\",\"trigger\":\"event_count\",\"params\":{\"event_type\":\"x\","
             "\"count\":0,\"window_days\":3},\"tag_ids\":[%lld]}",
             TG[0]);
    expect_400("POST", t, body, "params.count");
    expect_400("POST", t,
               "{\"name\":\"b\",\"trigger\":\"stage\",\"params\":{\"stage\":\"vip\"},\"tag_ids\":["
               "424242]}",
               "tag_ids");
    expect_400("POST", t, "{\"name\":\"b\",\"trigger\":\"channel\",\"params\":{},\"tag_ids\":[1]}",
               "params.channel_ids");
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM welcome_rule"), wr);
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM tag_rule"), tr);
    /* a duplicate name is a 409 */
    t_resp r;
    const char *dup = "{\"name\":\"door\",\"text\":\"x\"}";
    assert_int_equal(t_http(&F.srv, "POST", p, F.admin, dup, strlen(dup), NULL, &r), 0);
    assert_int_equal(r.status, 409);
    t_resp_free(&r);
    /* audit rows name the rules written */
    assert_true(
        t_sql_int(F.dir, "SELECT count(*) FROM audit_log WHERE action='welcome_rule.create'") >= 4);
    assert_true(t_sql_int(F.dir, "SELECT count(*) FROM audit_log WHERE action='tag_rule.create'") >=
                4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_choice),
        cmocka_unit_test(test_preview_and_precedence),
        cmocka_unit_test(test_late_and_failed),
        cmocka_unit_test(test_auto_tag_keyword),
        cmocka_unit_test(test_auto_tag_count_window),
        cmocka_unit_test(test_auto_tag_stage_and_group),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup_rules, teardown);
}
