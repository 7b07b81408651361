/* test_ingest_wecom.c — ingest_wecom_apply against a real store.
 *
 * Each test opens a store in a fresh temp dir (inline writes, no writer
 * thread), creates a tenant, feeds spec-style decrypted event XML (WeCom spec
 * §2) through wecom_event_parse and the ingest write step, and checks the
 * tables with SQL. */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest_wecom.h"
#include "store/store.h"
#include "store/tenant.h"
#include "wecom/wecom_event.h"

#define EXT1 "woAJ2GCAAAXtWyujaWJHDDGi0mAAAA"
#define EXT2 "wmAJ2GCAAAXtWyujaWJHDDGi0mBBBB"
#define CHAT "wrx7HUARsKwGRaQBVKPBTcEyzdHA4HrQ"

typedef struct fx {
    char *dir;
    store *st;
    int64_t tenant;
} fx;

static int64_t make_tenant(store *st, const char *name) {
    tenant_input in = {.name = name,
                       .corp_id = "wx5823bf96d3bd56c7",
                       .callback_token = "QDG6eK",
                       .aes_key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
                       .actor = "test"};
    assert_int_equal(store_write(st, tenant_create, &in), 0);
    return in.id;
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    f->dir = t_tmpdir();
    siyu_err err = {0};
    store_options so = {.writer_thread = false};
    f->st = store_open(f->dir, &so, &err);
    if (!f->st) fail_msg("store_open: %s", err.msg);
    f->tenant = make_tenant(f->st, "acme");
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    store_close(f->st);
    t_rmdir(f->dir);
    free(f);
    return 0;
}

/* Parses xml and applies it for tenant; returns the step's result. */
static int apply_for(fx *f, int64_t tenant, const char *xml, ingest_result *res) {
    wecom_event ev;
    char why[200] = "";
    if (wecom_event_parse(xml, strlen(xml), &ev, why, sizeof why) != WECOM_OK)
        fail_msg("parse: %s", why);
    char key[INGEST_DEDUPE_KEY_SIZE];
    ingest_wecom_dedupe_key(ev.create_time, xml, strlen(xml), key);
    ingest_wecom_cmd cmd = {.tenant_id = tenant, .ev = &ev, .dedupe_key = key};
    int rc = store_write(f->st, ingest_wecom_step, &cmd);
    if (res) *res = cmd.result;
    wecom_event_reset(&ev);
    return rc;
}

static ingest_result apply(fx *f, const char *xml) {
    ingest_result res;
    assert_int_equal(apply_for(f, f->tenant, xml, &res), 0);
    return res;
}

/* A change_external_contact event. extra is appended inside <xml>. */
static char *contact_xml(const char *change, const char *user, const char *ext, long ts,
                         const char *extra) {
    char *s = NULL;
    int n = asprintf(&s,
                     "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
                     "<FromUserName><![CDATA[sys]]></FromUserName><CreateTime>%ld</CreateTime>"
                     "<MsgType><![CDATA[event]]></MsgType>"
                     "<Event><![CDATA[change_external_contact]]></Event>"
                     "<ChangeType><![CDATA[%s]]></ChangeType><UserID><![CDATA[%s]]></UserID>"
                     "<ExternalUserID><![CDATA[%s]]></ExternalUserID>%s</xml>",
                     ts, change, user, ext, extra ? extra : "");
    assert_true(n > 0);
    return s;
}

static ingest_result apply_contact(fx *f, const char *change, const char *user, const char *ext,
                                   long ts, const char *extra) {
    char *x = contact_xml(change, user, ext, ts, extra);
    ingest_result r = apply(f, x);
    free(x);
    return r;
}

static char *chat_xml(const char *change, long ts, const char *extra) {
    char *s = NULL;
    int n = asprintf(&s,
                     "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
                     "<FromUserName><![CDATA[sys]]></FromUserName><CreateTime>%ld</CreateTime>"
                     "<MsgType><![CDATA[event]]></MsgType>"
                     "<Event><![CDATA[change_external_chat]]></Event>"
                     "<ChatId><![CDATA[" CHAT "]]></ChatId>"
                     "<ChangeType><![CDATA[%s]]></ChangeType>%s</xml>",
                     ts, change, extra ? extra : "");
    assert_true(n > 0);
    return s;
}

static ingest_result apply_chat(fx *f, const char *change, long ts, const char *extra) {
    char *x = chat_xml(change, ts, extra);
    ingest_result r = apply(f, x);
    free(x);
    return r;
}

static ingest_result apply_tag(fx *f, const char *change, const char *id, const char *type,
                               long ts) {
    char *s = NULL;
    char tt[64] = "";
    if (type) snprintf(tt, sizeof tt, "<TagType><![CDATA[%s]]></TagType>", type);
    assert_true(asprintf(&s,
                         "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
                         "<FromUserName><![CDATA[sys]]></FromUserName>"
                         "<CreateTime>%ld</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                         "<Event><![CDATA[change_external_tag]]></Event>"
                         "<Id><![CDATA[%s]]></Id>%s<ChangeType><![CDATA[%s]]></ChangeType>"
                         "<StrategyId>1</StrategyId></xml>",
                         ts, id, tt, change) > 0);
    ingest_result r = apply(f, s);
    free(s);
    return r;
}

/* ---- SQL checks (a read connection, uncached statements) ---------------- */

static sqlite3_stmt *query(fx *f, store_conn **c, const char *sql, va_list ap) {
    char *q = sqlite3_vmprintf(sql, ap);
    *c = store_reader_acquire(f->st);
    assert_non_null(*c);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store_conn_db(*c), q, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", q, sqlite3_errmsg(store_conn_db(*c)));
    sqlite3_free(q);
    return st;
}

/* First column of the first row as an integer (-999 when no row / NULL). */
static int64_t sql_int(fx *f, const char *sql, ...) __attribute__((format(printf, 2, 3)));
static int64_t sql_int(fx *f, const char *sql, ...) {
    va_list ap;
    va_start(ap, sql);
    store_conn *c;
    sqlite3_stmt *st = query(f, &c, sql, ap);
    va_end(ap);
    int64_t v = -999;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    store_reader_release(f->st, c);
    return v;
}

/* First column as text into a static buffer ("<null>" when NULL/no row). */
static const char *sql_text(fx *f, const char *sql, ...) __attribute__((format(printf, 2, 3)));
static const char *sql_text(fx *f, const char *sql, ...) {
    static char buf[4096];
    va_list ap;
    va_start(ap, sql);
    store_conn *c;
    sqlite3_stmt *st = query(f, &c, sql, ap);
    va_end(ap);
    snprintf(buf, sizeof buf, "<null>");
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        snprintf(buf, sizeof buf, "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    store_reader_release(f->st, c);
    return buf;
}

static int64_t customer_id(fx *f, const char *ext) {
    return sql_int(f, "SELECT id FROM customer WHERE tenant_id=%lld AND external_userid='%s'",
                   (long long)f->tenant, ext);
}

static int64_t employee_id(fx *f, const char *userid) {
    return sql_int(f, "SELECT id FROM employee WHERE tenant_id=%lld AND userid='%s'",
                   (long long)f->tenant, userid);
}

static const char *rel_col(fx *f, const char *col, const char *user, const char *ext) {
    return sql_text(f,
                    "SELECT r.%s FROM relationship r JOIN employee e ON e.id=r.employee_id JOIN "
                    "customer c ON c.id=r.customer_id WHERE r.tenant_id=%lld AND e.userid='%s' "
                    "AND c.external_userid='%s'",
                    col, (long long)f->tenant, user, ext);
}

/* ---- contacts ------------------------------------------------------------ */

static void test_add_creates_active_relationship(void **state) {
    fx *f = *state;
    ingest_result r = apply_contact(f, "add_external_contact", "zhangsan", EXT1, 1403610513,
                                    "<State><![CDATA[teststate]]></State>"
                                    "<WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode>");
    assert_false(r.duplicate);
    int64_t cust = customer_id(f, EXT1), emp = employee_id(f, "zhangsan");
    assert_true(cust > 0 && emp > 0);
    assert_int_equal(r.customer_id, cust);
    assert_int_equal(r.employee_id, emp);
    assert_string_equal(rel_col(f, "status", "zhangsan", EXT1), "active");
    assert_string_equal(rel_col(f, "state", "zhangsan", EXT1), "teststate");
    assert_string_equal(rel_col(f, "added_at", "zhangsan", EXT1), "1403610513");
    assert_string_equal(rel_col(f, "ended_at", "zhangsan", EXT1), "<null>");
    assert_int_equal(
        sql_int(f, "SELECT first_added_at FROM customer WHERE id=%lld", (long long)cust),
        1403610513);
    assert_string_equal(sql_text(f, "SELECT status FROM employee WHERE id=%lld", (long long)emp),
                        "active");
    assert_int_equal(sql_int(f,
                             "SELECT customer_id FROM identity WHERE tenant_id=%lld AND "
                             "kind='wecom_external_userid' AND value='" EXT1 "'",
                             (long long)f->tenant),
                     cust);
    /* The event row. */
    assert_int_equal(sql_int(f, "SELECT count(*) FROM event"), 1);
    assert_string_equal(sql_text(f,
                                 "SELECT type||'|'||source||'|'||ts||'|'||customer_id||'|'||"
                                 "employee_id FROM event WHERE id=%lld",
                                 (long long)r.event_id),
                        sql_text(f,
                                 "SELECT 'wecom.add_external_contact|wecom|1403610513|%lld|%lld'",
                                 (long long)cust, (long long)emp));
    const char *props = sql_text(f, "SELECT props FROM event WHERE id=%lld", (long long)r.event_id);
    json_t *j = json_loads(props, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "teststate");
    assert_string_equal(json_string_value(json_object_get(j, "welcome_code")), "WELCOMECODE");
    assert_null(json_object_get(j, "change_type")); /* implied by the type */
    json_decref(j);
    assert_string_equal(sql_text(f, "SELECT kind FROM processed_callback"), "add_external_contact");
}

static void test_readd_after_del_follow_user_revives(void **state) {
    fx *f = *state;
    apply_contact(f, "add_external_contact", "zhangsan", EXT1, 1000, "<State>ch1</State>");
    apply_contact(f, "del_follow_user", "zhangsan", EXT1, 2000, NULL);
    assert_string_equal(rel_col(f, "status", "zhangsan", EXT1), "deleted_by_customer");
    assert_string_equal(rel_col(f, "ended_at", "zhangsan", EXT1), "2000");
    assert_string_equal(rel_col(f, "end_reason", "zhangsan", EXT1), "del_follow_user");
    apply_contact(f, "add_half_external_contact", "zhangsan", EXT1, 3000, "<State>ch2</State>");
    assert_string_equal(rel_col(f, "status", "zhangsan", EXT1), "active");
    assert_string_equal(rel_col(f, "added_at", "zhangsan", EXT1), "3000");
    assert_string_equal(rel_col(f, "state", "zhangsan", EXT1), "ch2");
    assert_string_equal(rel_col(f, "ended_at", "zhangsan", EXT1), "<null>");
    assert_string_equal(rel_col(f, "end_reason", "zhangsan", EXT1), "<null>");
    /* One customer with its history; first_added_at keeps the first add. */
    assert_int_equal(sql_int(f, "SELECT count(*) FROM relationship"), 1);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM customer"), 1);
    assert_int_equal(sql_int(f, "SELECT first_added_at FROM customer"), 1000);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM event WHERE customer_id=%lld",
                             (long long)customer_id(f, EXT1)),
                     3);
}

static void test_transfer_and_lost_customer(void **state) {
    fx *f = *state;
    apply_contact(f, "add_external_contact", "zhangsan", EXT1, 1000, NULL);
    apply_contact(f, "add_external_contact", "lisi", EXT1, 1100, NULL);
    apply_contact(f, "del_external_contact", "zhangsan", EXT1, 2000,
                  "<Source><![CDATA[DELETE_BY_TRANSFER]]></Source>");
    assert_string_equal(rel_col(f, "status", "zhangsan", EXT1), "transferred");
    assert_string_equal(rel_col(f, "end_reason", "zhangsan", EXT1), "DELETE_BY_TRANSFER");
    assert_string_equal(rel_col(f, "ended_at", "zhangsan", EXT1), "2000");
    apply_contact(f, "del_external_contact", "lisi", EXT1, 2100, NULL);
    assert_string_equal(rel_col(f, "status", "lisi", EXT1), "deleted_by_employee");
    /* The customer stays, and is lost: no active relationship remains. */
    assert_int_equal(sql_int(f, "SELECT count(*) FROM customer"), 1);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM customer c WHERE NOT EXISTS (SELECT 1 FROM "
                                "relationship r WHERE r.customer_id=c.id AND r.status='active')"),
                     1);
    const char *props = sql_text(f, "SELECT props FROM event WHERE type="
                                    "'wecom.del_external_contact' ORDER BY id LIMIT 1");
    assert_non_null(strstr(props, "\"source\":\"DELETE_BY_TRANSFER\""));
}

static void test_duplicate_has_one_effect(void **state) {
    fx *f = *state;
    char *x = contact_xml("add_external_contact", "zhangsan", EXT1, 1000, "<State>s</State>");
    ingest_result r1 = apply(f, x);
    assert_false(r1.duplicate);
    for (int i = 0; i < 9; i++) {
        ingest_result r = apply(f, x);
        assert_true(r.duplicate);
        assert_int_equal(r.event_id, 0);
    }
    free(x);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM event"), 1);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM relationship"), 1);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM customer"), 1);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM processed_callback"), 1);
    /* A retried add delivered after the delete is a new message but stale. */
    apply_contact(f, "del_follow_user", "zhangsan", EXT1, 2000, NULL);
    apply_contact(f, "add_external_contact", "zhangsan", EXT1, 1500, NULL);
    assert_string_equal(rel_col(f, "status", "zhangsan", EXT1), "deleted_by_customer");
    assert_int_equal(sql_int(f, "SELECT count(*) FROM event"), 3);
}

static void test_edit_and_transfer_fail_are_events(void **state) {
    fx *f = *state;
    apply_contact(f, "add_external_contact", "zhangsan", EXT1, 1000, NULL);
    int64_t before = sql_int(f, "SELECT count(*) FROM relationship WHERE status='active'");
    ingest_result r = apply_contact(f, "edit_external_contact", "zhangsan", EXT1, 1200, NULL);
    assert_int_equal(r.customer_id, customer_id(f, EXT1));
    r = apply_contact(f, "transfer_fail", "lisi", EXT1, 1300,
                      "<FailReason><![CDATA[customer_refused]]></FailReason>");
    assert_int_equal(sql_int(f, "SELECT count(*) FROM relationship WHERE status='active'"), before);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM relationship"), 1);
    const char *props = sql_text(f, "SELECT props FROM event WHERE id=%lld", (long long)r.event_id);
    assert_non_null(strstr(props, "\"fail_reason\":\"customer_refused\""));
    assert_string_equal(sql_text(f, "SELECT type FROM event WHERE id=%lld", (long long)r.event_id),
                        "wecom.transfer_fail");
    assert_int_equal(r.employee_id, employee_id(f, "lisi")); /* created on first sight */
}

/* ---- groups --------------------------------------------------------------- */

static const char *member_col(fx *f, const char *col, const char *member) {
    return sql_text(f, "SELECT %s FROM group_member WHERE member_id='%s'", col, member);
}

static void test_group_lifecycle(void **state) {
    fx *f = *state;
    apply_chat(f, "create", 1000, NULL);
    assert_string_equal(sql_text(f, "SELECT status FROM group_chat WHERE chat_id='" CHAT "'"),
                        "active");
    ingest_result r = apply_chat(
        f, "update", 1100,
        "<UpdateDetail><![CDATA[add_member]]></UpdateDetail><JoinScene>3</JoinScene>"
        "<MemChangeCnt>2</MemChangeCnt><MemChangeList><Item>" EXT2 "</Item><Item>zhangsan</Item>"
        "</MemChangeList><LastMemVer>v0</LastMemVer><CurMemVer>v1</CurMemVer>");
    assert_int_equal(sql_int(f, "SELECT count(*) FROM group_member WHERE status='in'"), 2);
    assert_int_equal(sql_int(f, "SELECT customer_id FROM group_member WHERE member_id='" EXT2 "'"),
                     customer_id(f, EXT2));
    assert_int_equal(sql_int(f, "SELECT employee_id FROM group_member WHERE member_id='zhangsan'"),
                     employee_id(f, "zhangsan"));
    assert_string_equal(member_col(f, "join_scene", EXT2), "3");
    assert_string_equal(member_col(f, "joined_at", EXT2), "1100");
    assert_string_equal(sql_text(f, "SELECT member_version FROM group_chat"), "v1");
    assert_string_equal(sql_text(f, "SELECT type FROM event WHERE id=%lld", (long long)r.event_id),
                        "wecom.chat_update");
    const char *props = sql_text(f, "SELECT props FROM event WHERE id=%lld", (long long)r.event_id);
    assert_non_null(strstr(props, "\"member_ids\":[\"" EXT2 "\",\"zhangsan\"]"));
    assert_non_null(strstr(props, "\"update_detail\":\"add_member\""));

    r = apply_chat(f, "update", 1200,
                   "<UpdateDetail>del_member</UpdateDetail><QuitScene>1</QuitScene>"
                   "<MemChangeList><Item>" EXT2 "</Item></MemChangeList><CurMemVer>v2</CurMemVer>");
    assert_string_equal(member_col(f, "status", EXT2), "left");
    assert_string_equal(member_col(f, "quit_scene", EXT2), "1");
    assert_string_equal(member_col(f, "left_at", EXT2), "1200");
    assert_string_equal(member_col(f, "status", "zhangsan"), "in");
    assert_int_equal(r.customer_id, customer_id(f, EXT2)); /* single member: linked */

    apply_chat(f, "update", 1300,
               "<UpdateDetail>add_member</UpdateDetail><JoinScene>0</JoinScene>"
               "<MemChangeList><Item>" EXT2 "</Item></MemChangeList>");
    assert_string_equal(member_col(f, "status", EXT2), "in");
    assert_string_equal(member_col(f, "joined_at", EXT2), "1300");
    assert_string_equal(member_col(f, "left_at", EXT2), "<null>");
    assert_string_equal(sql_text(f, "SELECT member_version FROM group_chat"), "v2");

    apply_chat(f, "update", 1350, "<UpdateDetail>change_name</UpdateDetail>");
    apply_chat(f, "dismiss", 1400, NULL);
    assert_string_equal(sql_text(f, "SELECT status||'|'||dismissed_at FROM group_chat"),
                        "dismissed|1400");
    assert_int_equal(sql_int(f, "SELECT count(*) FROM group_chat"), 1);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM event WHERE type LIKE 'wecom.chat_%%'"), 6);
}

static void test_group_unknown_chat_placeholder(void **state) {
    fx *f = *state;
    /* An update for a chat never seen creates it; a late create keeps it. */
    apply_chat(f, "update", 2000,
               "<UpdateDetail>add_member</UpdateDetail><MemChangeList><Item>wangwu</Item>"
               "</MemChangeList>");
    apply_chat(f, "create", 1500, NULL);
    assert_string_equal(sql_text(f, "SELECT status||'|'||created_at FROM group_chat"),
                        "active|1500");
    assert_string_equal(member_col(f, "status", "wangwu"), "in");
    /* A leave older than the join does not undo it. */
    apply_chat(f, "update", 1900,
               "<UpdateDetail>del_member</UpdateDetail><MemChangeList><Item>wangwu</Item>"
               "</MemChangeList>");
    assert_string_equal(member_col(f, "status", "wangwu"), "in");
}

/* ---- tags ------------------------------------------------------------------ */

typedef struct seed_arg {
    int64_t tenant, customer;
} seed_arg;

/* Puts two tags into the wecom group "G1" and tags the customer with both,
 * plus a tag on the placeholder tag "T1". */
static int seed_tags(store_conn *c, void *arg) {
    seed_arg *a = arg;
    char *sql = sqlite3_mprintf(
        "INSERT INTO tag(tenant_id, group_id, wecom_id, name, created_at, updated_at) "
        "SELECT %lld, id, 'T2', 'vip', 1, 1 FROM tag_group WHERE wecom_id='G1';"
        "INSERT INTO tag(tenant_id, group_id, wecom_id, name, created_at, updated_at) "
        "SELECT %lld, id, 'T3', 'new', 1, 1 FROM tag_group WHERE wecom_id='G1';"
        "INSERT INTO customer_tag(tenant_id, customer_id, tag_id, created_at) "
        "SELECT %lld, %lld, id, 1 FROM tag WHERE wecom_id IN ('T1','T2','T3');",
        (long long)a->tenant, (long long)a->tenant, (long long)a->tenant, (long long)a->customer);
    int rc = store_conn_exec(c, sql);
    sqlite3_free(sql);
    return rc;
}

static void test_tags(void **state) {
    fx *f = *state;
    apply_tag(f, "create", "G1", "tag_group", 1000);
    apply_tag(f, "create", "T1", "tag", 1001);
    assert_string_equal(sql_text(f, "SELECT name||'|'||source FROM tag_group WHERE wecom_id='G1'"),
                        "G1|wecom");
    assert_string_equal(sql_text(f, "SELECT t.name||'|'||g.name||'|'||g.source FROM tag t JOIN "
                                    "tag_group g ON g.id=t.group_id WHERE t.wecom_id='T1'"),
                        "T1|(wecom)|wecom");
    /* Create again (e.g. after a sync filled it in) touches, never renames. */
    apply_tag(f, "update", "T1", "tag", 1002);
    apply_tag(f, "create", "T1", "tag", 1003);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM tag"), 1);

    apply_contact(f, "add_external_contact", "zhangsan", EXT1, 1000, NULL);
    seed_arg sa = {f->tenant, customer_id(f, EXT1)};
    assert_int_equal(store_write(f->st, seed_tags, &sa), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM customer_tag"), 3);

    apply_tag(f, "delete", "T1", "tag", 1100);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM tag WHERE wecom_id='T1'"), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM customer_tag"), 2);
    assert_string_equal(sql_text(f, "SELECT actor||'|'||action||'|'||count FROM audit_log WHERE "
                                    "action='tag.delete'"),
                        "wecom|tag.delete|1");

    /* Deleting the group takes its tags and their customer links along. */
    apply_tag(f, "delete", "G1", "tag_group", 1200);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM tag_group WHERE wecom_id='G1'"), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM tag WHERE wecom_id IN ('T2','T3')"), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM customer_tag"), 0);
    assert_int_equal(sql_int(f, "SELECT count FROM audit_log WHERE action='tag_group.delete'"), 3);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM customer"), 1);

    ingest_result r = apply_tag(f, "shuffle", "", NULL, 1300);
    assert_string_equal(sql_text(f, "SELECT type FROM event WHERE id=%lld", (long long)r.event_id),
                        "wecom.tag_shuffle");
    assert_int_equal(sql_int(f, "SELECT count(*) FROM event WHERE type LIKE 'wecom.tag_%%'"), 7);
}

/* ---- unknown events, tenants, atomicity ------------------------------------ */

static void test_unknown_event_stored(void **state) {
    fx *f = *state;
    ingest_result r = apply_contact(f, "brand_new_change", "zhangsan", EXT1, 1000, NULL);
    assert_string_equal(sql_text(f, "SELECT type FROM event WHERE id=%lld", (long long)r.event_id),
                        "wecom.unknown");
    const char *props = sql_text(f, "SELECT props FROM event WHERE id=%lld", (long long)r.event_id);
    json_t *j = json_loads(props, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "event")), "change_external_contact");
    assert_string_equal(json_string_value(json_object_get(j, "change_type")), "brand_new_change");
    json_decref(j);
    /* Unknown events create nothing. */
    assert_int_equal(sql_int(f, "SELECT count(*) FROM employee"), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM customer"), 0);

    /* A plain message is an unknown event too; its content is not kept. */
    r = apply(f, "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
                 "<FromUserName><![CDATA[mycreate]]></FromUserName><CreateTime>1409659813"
                 "</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]>"
                 "</Content><MsgId>4561255354251345929</MsgId><AgentID>218</AgentID></xml>");
    props = sql_text(f, "SELECT props FROM event WHERE id=%lld", (long long)r.event_id);
    assert_non_null(strstr(props, "\"msg_type\":\"text\""));
    assert_null(strstr(props, "hello"));
}

static void test_tenants_are_separate(void **state) {
    fx *f = *state;
    int64_t other = make_tenant(f->st, "other");
    apply_contact(f, "add_external_contact", "zhangsan", EXT1, 1000, NULL);
    char *x = contact_xml("add_external_contact", "zhangsan", EXT1, 1000, NULL);
    ingest_result r;
    assert_int_equal(apply_for(f, other, x, &r), 0);
    free(x);
    assert_false(r.duplicate); /* dedupe is per tenant */
    assert_int_equal(sql_int(f, "SELECT count(*) FROM customer"), 2);
    assert_int_equal(sql_int(f,
                             "SELECT count(*) FROM relationship WHERE tenant_id=%lld AND "
                             "customer_id IN (SELECT id FROM customer WHERE tenant_id=%lld)",
                             (long long)other, (long long)other),
                     1);
}

static void test_failure_changes_nothing(void **state) {
    fx *f = *state;
    /* No such tenant: the employee insert violates its foreign key, and the
     * whole step, including the dedupe claim, is rolled back. */
    char *x = contact_xml("add_external_contact", "zhangsan", EXT1, 1000, NULL);
    assert_true(apply_for(f, 9999, x, NULL) < 0);
    free(x);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM processed_callback"), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM event"), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM employee"), 0);
}

/* SIYU_FIXTURES is set by ctest; run by hand from the repo or a build dir,
 * the relative paths find the fixtures too. */
static char *read_fixture(const char *name) {
    const char *bases[] = {getenv("SIYU_FIXTURES"), "tests/fixtures", "../tests/fixtures"};
    FILE *fp = NULL;
    char path[1024];
    for (size_t i = 0; !fp && i < sizeof bases / sizeof *bases; i++) {
        if (!bases[i]) continue;
        snprintf(path, sizeof path, "%s/wecom/%s", bases[i], name);
        fp = fopen(path, "rb");
    }
    if (!fp) fail_msg("cannot open fixture wecom/%s (set SIYU_FIXTURES)", name);
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, fp);
    fclose(fp);
    buf[n] = 0;
    return buf;
}

/* The official examples (tests/fixtures/wecom/), applied in sequence. */
static void test_spec_fixtures(void **state) {
    fx *f = *state;
    static const struct {
        const char *file, *type;
    } fixtures[] = {
        {"add_external_contact.xml", "wecom.add_external_contact"},
        {"del_external_contact_transfer.xml", "wecom.del_external_contact"},
        {"transfer_fail.xml", "wecom.transfer_fail"},
        {"chat_update_add_member.xml", "wecom.chat_update"},
        {"tag_create.xml", "wecom.tag_create"},
        {"tag_shuffle.xml", "wecom.tag_shuffle"},
    };
    for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++) {
        char *x = read_fixture(fixtures[i].file);
        ingest_result r = apply(f, x);
        free(x);
        assert_false(r.duplicate);
        assert_string_equal(
            sql_text(f, "SELECT type FROM event WHERE id=%lld", (long long)r.event_id),
            fixtures[i].type);
    }
    assert_string_equal(rel_col(f, "status", "zhangsan", EXT1), "transferred");
    assert_int_equal(sql_int(f, "SELECT count(*) FROM group_member WHERE status='in' AND "
                                "employee_id IS NOT NULL AND join_scene=1"),
                     2);
    assert_string_equal(sql_text(f, "SELECT member_version FROM group_chat"),
                        "71217227bbd112ecfe3a49c482195cb4");
    assert_int_equal(sql_int(f, "SELECT count(*) FROM tag WHERE wecom_id='TAG_ID'"), 1);
}

static void test_props_and_key(void **state) {
    (void)state;
    char k1[65], k2[65];
    ingest_wecom_dedupe_key(1403610513, "abc", 3, k1);
    assert_string_equal(k1, "1403610513-ba7816bf8f01cfea414140de5dae2223b00361a396177a9c");
    ingest_wecom_dedupe_key(1403610513, "abd", 3, k2);
    assert_string_not_equal(k1, k2);
    ingest_wecom_dedupe_key(1403610514, "abc", 3, k2);
    assert_string_not_equal(k1, k2);
    wecom_event ev;
    const char *xml = "<xml><CreateTime>1</CreateTime><Event>change_external_tag</Event>"
                      "<ChangeType>create</ChangeType><Id>TAG</Id><TagType>tag</TagType>"
                      "<StrategyId>7</StrategyId></xml>";
    assert_int_equal(wecom_event_parse(xml, strlen(xml), &ev, NULL, 0), WECOM_OK);
    char *p = ingest_wecom_props(&ev);
    assert_string_equal(p, "{\"tag_id\":\"TAG\",\"tag_type\":\"tag\",\"strategy_id\":\"7\"}");
    free(p);
    wecom_event_reset(&ev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_creates_active_relationship, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readd_after_del_follow_user_revives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_and_lost_customer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_has_one_effect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edit_and_transfer_fail_are_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_unknown_chat_placeholder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_event_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenants_are_separate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spec_fixtures, setup, teardown),
        cmocka_unit_test(test_props_and_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
