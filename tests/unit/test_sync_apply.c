/* test_sync_apply.c — the sync's write helpers (sync/sync_int.h) against a
 * real store, with hand-made API answers: idempotency (a second apply writes
 * nothing), internal tags left alone, name clashes, the freshness guards
 * (revive, group rows, ending), and group member reconciliation.
 *
 * Each test opens a store in a fresh temp dir (inline writes) with one tenant
 * and runs the helpers inside write steps, then checks tables with SQL. */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/tenant.h"
#include "sync/sync_int.h"

typedef struct fx {
    char *dir;
    store *st;
    int64_t tenant;
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    f->dir = t_tmpdir();
    siyu_err err = {0};
    store_options so = {.writer_thread = false};
    f->st = store_open(f->dir, &so, &err);
    if (!f->st) fail_msg("store_open: %s", err.msg);
    tenant_input in = {.name = "acme", .actor = "test"};
    assert_int_equal(store_write(f->st, tenant_create, &in), 0);
    f->tenant = in.id;
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

/* One write step running fn(a, arg) with fresh counts into n. */
typedef int (*apply_fn)(sync_apply *a, void *arg);
typedef struct cmd {
    fx *f;
    apply_fn fn;
    void *arg;
    int64_t fetched_at, fetched_ms;
    bool revive, placeholders;
    sync_counts n[SYNC_ENTITY_COUNT];
} cmd;

static int cmd_step(store_conn *c, void *arg) {
    cmd *k = arg;
    sync_apply a = {.c = c,
                    .tenant = k->f->tenant,
                    .now = siyu_now(),
                    .fetched_at = k->fetched_at ? k->fetched_at : siyu_now(),
                    .fetched_ms = k->fetched_ms ? k->fetched_ms : sync__wall_ms(),
                    .revive = k->revive,
                    .placeholders = k->placeholders,
                    .n = k->n};
    return k->fn(&a, k->arg);
}

static int64_t total(const cmd *k) {
    int64_t s = 0;
    for (int i = 0; i < SYNC_ENTITY_COUNT; i++)
        s += k->n[i].created + k->n[i].updated + k->n[i].ended;
    return s;
}

/* Runs fn and returns the number of changes it counted. */
static int64_t run(fx *f, apply_fn fn, void *arg, bool revive) {
    cmd k = {.f = f, .fn = fn, .arg = arg, .revive = revive};
    assert_int_equal(store_write(f->st, cmd_step, &k), 0);
    return total(&k);
}

static long long q(fx *f, const char *sql) {
    return t_sql_int(f->dir, "%s", sql);
}

static const char *qt(fx *f, const char *sql) {
    return t_sql_text(f->dir, "%s", sql);
}

/* ---- tags ------------------------------------------------------------- */

static int tags_full(sync_apply *a, void *arg) {
    return sync__tags_apply(a, arg, true);
}

static void test_tags(void **state) {
    fx *f = *state;
    /* An internal group named like a WeCom group, with a customer tagged. */
    assert_int_equal(t_sql_exec(f->dir,
                                "INSERT INTO tag_group(id,tenant_id,name,created_at,updated_at) "
                                "VALUES(50,1,'Level',1,1);"
                                "INSERT INTO tag(id,tenant_id,group_id,name,created_at,updated_at) "
                                "VALUES(500,1,50,'Gold',1,1);"
                                "INSERT INTO customer(id,tenant_id,created_at,updated_at) "
                                "VALUES(7,1,1,1);"
                                "INSERT INTO customer_tag(tenant_id,customer_id,tag_id,created_at) "
                                "VALUES(1,7,500,1);"),
                     0);
    json_t *list = json_loads("[{\"group_id\":\"g1\",\"group_name\":\"Level\",\"order\":3,"
                              "\"tag\":[{\"id\":\"t1\",\"name\":\"VIP\",\"order\":2},"
                              "{\"id\":\"t2\",\"name\":\"New\",\"order\":1}]},"
                              "{\"group_id\":\"g2\",\"group_name\":\"Source\",\"tag\":["
                              "{\"id\":\"t3\",\"name\":\"Ad\"}]}]",
                              0, NULL);
    assert_int_equal(run(f, tags_full, list, true), 5); /* 2 groups + 3 tags */
    assert_string_equal(qt(f, "SELECT name FROM tag_group WHERE wecom_id='g1'"), "Level (g1)");
    assert_int_equal(q(f, "SELECT sort_order FROM tag WHERE wecom_id='t1'"), 2);
    assert_int_equal(run(f, tags_full, list, true), 0); /* idempotent */
    json_decref(list);
    /* t1 renamed, t2 gone (its links too), g2 gone with t3. */
    assert_int_equal(t_sql_exec(f->dir, "INSERT INTO customer_tag(tenant_id,customer_id,tag_id,"
                                        "source,created_at) SELECT 1,7,id,'wecom',1 FROM tag "
                                        "WHERE wecom_id IN ('t2','t3')"),
                     0);
    list = json_loads("[{\"group_id\":\"g1\",\"group_name\":\"Level\",\"order\":3,"
                      "\"tag\":[{\"id\":\"t1\",\"name\":\"VVIP\",\"order\":2}]}]",
                      0, NULL);
    assert_int_equal(run(f, tags_full, list, true), 4); /* t1 updated; t2, t3, g2 ended */
    json_decref(list);
    assert_string_equal(qt(f, "SELECT name FROM tag WHERE wecom_id='t1'"), "VVIP");
    assert_int_equal(q(f, "SELECT count(*) FROM tag WHERE wecom_id IN ('t2','t3')"), 0);
    assert_int_equal(q(f, "SELECT count(*) FROM tag_group WHERE wecom_id='g2'"), 0);
    assert_int_equal(q(f, "SELECT count(*) FROM customer_tag WHERE customer_id=7"), 1);
    assert_int_equal(q(f, "SELECT tag_id FROM customer_tag WHERE customer_id=7"), 500);
    assert_string_equal(qt(f, "SELECT name FROM tag_group WHERE id=50"), "Level");
}

/* ---- follow records ------------------------------------------------------ */

typedef struct follow_arg {
    const char *contact, *follow; /* JSON */
    int64_t rel;
} follow_arg;

static int follow_apply(sync_apply *a, void *arg) {
    follow_arg *fa = arg;
    json_t *c = json_loads(fa->contact, 0, NULL), *fo = json_loads(fa->follow, 0, NULL), *own;
    sync_follow sf;
    sync__follow_parse(fo, &sf, &own);
    int64_t cust = 0;
    int rc = sync__customer_upsert(a, c, sf.createtime, &cust);
    if (rc == 0) rc = sync__follow_apply(a, cust, &sf, &fa->rel);
    json_decref(own);
    json_decref(c);
    json_decref(fo);
    return rc;
}

static int tags_part(sync_apply *a, void *arg) {
    return sync__tags_apply(a, arg, false);
}

#define CONTACT "{\"external_userid\":\"wmC1\",\"name\":\"Li\",\"gender\":2,\"type\":1}"

static void test_follow(void **state) {
    fx *f = *state;
    json_t *tags = json_loads("[{\"group_id\":\"g1\",\"group_name\":\"L\",\"tag\":["
                              "{\"id\":\"t1\",\"name\":\"A\"},{\"id\":\"t2\",\"name\":\"B\"}]}]",
                              0, NULL);
    run(f, tags_part, tags, true);
    json_decref(tags);
    follow_arg a1 = {CONTACT, "{\"userid\":\"zhang\",\"remark\":\"\",\"createtime\":100,"
                              "\"add_way\":1,\"state\":\"qr1\",\"tag_id\":[\"t1\",\"t2\",\"tx\"]}"};
    follow_arg a2 = {CONTACT, "{\"userid\":\"wang\",\"createtime\":50,\"tags\":[{\"tag_id\":"
                              "\"t2\",\"type\":1},{\"tag_id\":\"p1\",\"type\":2}]}"};
    /* customer, employee, relationship, 2 follow tags (tx unknown: skipped) */
    assert_int_equal(run(f, follow_apply, &a1, true), 5);
    assert_true(a1.rel > 0);
    assert_int_equal(run(f, follow_apply, &a2, true), 4); /* emp, rel, 1 tag, first_added */
    assert_int_equal(run(f, follow_apply, &a1, true), 0);
    assert_int_equal(run(f, follow_apply, &a2, true), 0);
    assert_string_equal(qt(f, "SELECT name || '/' || gender || '/' || first_added_at FROM "
                              "customer"),
                        "Li/2/50");
    assert_true(q(f, "SELECT remark IS NULL FROM relationship WHERE employee_id=(SELECT id FROM "
                     "employee WHERE userid='zhang')"));
    assert_int_equal(q(f, "SELECT count(*) FROM relationship_tag"), 3);
    assert_int_equal(q(f, "SELECT count(*) FROM customer_tag WHERE source='wecom'"), 2);
    /* An internal tag on the customer. */
    assert_int_equal(t_sql_exec(f->dir,
                                "INSERT INTO tag_group(id,tenant_id,name,created_at,updated_at) "
                                "VALUES(60,1,'Mine',1,1);"
                                "INSERT INTO tag(id,tenant_id,group_id,name,created_at,updated_at) "
                                "VALUES(600,1,60,'X',1,1);"
                                "INSERT INTO customer_tag(tenant_id,customer_id,tag_id,created_at) "
                                "SELECT 1,id,600,1 FROM customer"),
                     0);
    /* zhang drops t2: wang still has it, so the customer keeps it. */
    follow_arg a3 = {CONTACT, "{\"userid\":\"zhang\",\"createtime\":100,\"add_way\":1,"
                              "\"state\":\"qr1\",\"tag_id\":[\"t1\"]}"};
    assert_int_equal(run(f, follow_apply, &a3, true), 1);
    assert_int_equal(q(f, "SELECT count(*) FROM customer_tag WHERE source='wecom'"), 2);
    /* wang drops t2 too: the customer loses it; the internal tag stays. */
    follow_arg a4 = {CONTACT, "{\"userid\":\"wang\",\"createtime\":50,\"tags\":[]}"};
    assert_int_equal(run(f, follow_apply, &a4, true), 1);
    assert_int_equal(q(f, "SELECT count(*) FROM customer_tag WHERE source='wecom'"), 1);
    assert_int_equal(q(f, "SELECT count(*) FROM customer_tag WHERE tag_id=600"), 1);
    /* Refresh with placeholders: an unknown tag id becomes a tag. */
    follow_arg a5 = {CONTACT, "{\"userid\":\"wang\",\"createtime\":50,\"tag_id\":[\"tnew\"]}"};
    cmd k = {.f = f, .fn = follow_apply, .arg = &a5, .placeholders = true};
    assert_int_equal(store_write(f->st, cmd_step, &k), 0);
    assert_string_equal(qt(f, "SELECT g.name || '/' || t.name FROM tag t JOIN tag_group g ON "
                              "g.id=t.group_id WHERE t.wecom_id='tnew'"),
                        "(wecom)/tnew");
}

static int rels_end(sync_apply *a, void *arg) {
    int64_t *ids = arg; /* ids[0] = id, ids[1] = before */
    return sync__rels_end(a, ids, 1, ids[1]);
}

static void test_revive_and_end(void **state) {
    fx *f = *state;
    follow_arg a1 = {CONTACT, "{\"userid\":\"zhang\",\"createtime\":100}"};
    run(f, follow_apply, &a1, true);
    int64_t ids[2] = {a1.rel, 0};
    /* A relationship touched at or after `before` is not ended. */
    ids[1] = q(f, "SELECT updated_at FROM relationship");
    assert_int_equal(run(f, rels_end, ids, true), 0);
    ids[1]++;
    assert_int_equal(run(f, rels_end, ids, true), 1);
    assert_string_equal(qt(f, "SELECT status || '/' || end_reason FROM relationship"),
                        "deleted_by_employee/sync_missing");
    /* Not revived by a refresh (revive false), nor by data older than the end. */
    assert_int_equal(run(f, follow_apply, &a1, false), 0);
    assert_int_equal(t_sql_exec(f->dir, "UPDATE relationship SET updated_at=updated_at+100, "
                                        "changed_ms=changed_ms+100000"),
                     0);
    assert_int_equal(run(f, follow_apply, &a1, true), 0);
    /* Ended in the very millisecond of the fetch: not revived either (a
     * tie is not "older"; review finding 15). */
    assert_int_equal(t_sql_exec(f->dir, "UPDATE relationship SET updated_at=1, changed_ms=5000"),
                     0);
    cmd k = {.f = f, .fn = follow_apply, .arg = &a1, .revive = true, .fetched_ms = 5000};
    assert_int_equal(store_write(f->st, cmd_step, &k), 0);
    assert_int_equal(total(&k), 0);
    k = (cmd){.f = f, .fn = follow_apply, .arg = &a1, .revive = true, .fetched_ms = 5001};
    assert_int_equal(store_write(f->st, cmd_step, &k), 0);
    assert_int_equal(total(&k), 1);
    assert_string_equal(qt(f, "SELECT status || '/' || coalesce(ended_at, '-') FROM "
                              "relationship"),
                        "active/-");
}

/* Runs follow_apply as data fetched at fetched_ms; returns the changes. */
static int64_t follow_at(fx *f, follow_arg *fa, int64_t fetched_ms) {
    cmd k = {.f = f, .fn = follow_apply, .arg = fa, .revive = true, .fetched_ms = fetched_ms};
    assert_int_equal(store_write(f->st, cmd_step, &k), 0);
    return total(&k);
}

/* An answer fetched before the relationship's last change (a second
 * refresh that overtook it, a callback after a full-sync page) changes
 * nothing: not the remark, not the tags (review finding 6). */
static void test_older_answer_changes_nothing(void **state) {
    fx *f = *state;
    json_t *tags = json_loads("[{\"group_id\":\"g1\",\"group_name\":\"L\",\"tag\":["
                              "{\"id\":\"t1\",\"name\":\"A\"},{\"id\":\"t2\",\"name\":\"B\"}]}]",
                              0, NULL);
    run(f, tags_part, tags, true);
    json_decref(tags);
    follow_arg a1 = {CONTACT, "{\"userid\":\"zhang\",\"createtime\":100,\"remark\":\"r1\","
                              "\"tag_id\":[\"t1\"]}"};
    int64_t t1 = sync__wall_ms();
    assert_true(follow_at(f, &a1, t1) > 0);
    /* Fetched later: t2 added, remark changed. */
    follow_arg a2 = {CONTACT, "{\"userid\":\"zhang\",\"createtime\":100,\"remark\":\"r2\","
                              "\"tag_id\":[\"t1\",\"t2\"]}"};
    int64_t changed = q(f, "SELECT changed_ms FROM relationship");
    assert_true(changed >= t1 - 1);
    assert_true(follow_at(f, &a2, changed + 1) > 0);
    changed = q(f, "SELECT changed_ms FROM relationship");
    /* The first answer arrives again, fetched before that change: nothing. */
    assert_int_equal(follow_at(f, &a1, changed - 1), 0);
    assert_string_equal(qt(f, "SELECT remark FROM relationship"), "r2");
    assert_int_equal(q(f, "SELECT count(*) FROM relationship_tag"), 2);
    assert_int_equal(q(f, "SELECT changed_ms FROM relationship"), changed);
    /* An older answer still reports the relationship active (full sync). */
    assert_true(a1.rel > 0);
    /* A callback's tag change stamps the row too: an answer fetched before
     * it does not undo it. */
    assert_int_equal(t_sql_exec(f->dir, "DELETE FROM relationship_tag WHERE tag_id=(SELECT id "
                                        "FROM tag WHERE wecom_id='t2')"),
                     0);
    int64_t after = q(f, "SELECT changed_ms FROM relationship");
    assert_true(after >= changed);
    assert_int_equal(follow_at(f, &a2, after - 1), 0);
    assert_int_equal(q(f, "SELECT count(*) FROM relationship_tag"), 1);
    /* Fetched at or after the change: applies. */
    assert_true(follow_at(f, &a2, after) > 0);
    assert_int_equal(q(f, "SELECT count(*) FROM relationship_tag"), 2);
}

/* An operator's remark waiting in the outbox is not overwritten by WeCom's
 * older one; once delivered, WeCom's answer applies again. */
static void test_remark_held_while_pending(void **state) {
    fx *f = *state;
    follow_arg a1 = {CONTACT, "{\"userid\":\"zhang\",\"createtime\":100,\"remark\":\"old\"}"};
    run(f, follow_apply, &a1, true);
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE relationship SET remark='new';"
             "INSERT INTO outbox(tenant_id,kind,body,lane,state,attempts,max_attempts,next_at,"
             "ref,created_at,updated_at) VALUES(1,'remark','{}',1,'pending',0,0,0,"
             "'relationship:%lld',1,1)",
             (long long)a1.rel);
    assert_int_equal(t_sql_exec(f->dir, sql), 0);
    /* WeCom still says "old" (and a changed state): the state applies, the remark waits. */
    follow_arg a2 = {CONTACT, "{\"userid\":\"zhang\",\"createtime\":100,\"remark\":\"old\","
                              "\"state\":\"qr9\"}"};
    assert_int_equal(run(f, follow_apply, &a2, true), 1);
    assert_string_equal(qt(f, "SELECT remark || '/' || state FROM relationship"), "new/qr9");
    assert_int_equal(run(f, follow_apply, &a2, true), 0);
    /* Delivered: WeCom's answer is the truth again. */
    assert_int_equal(t_sql_exec(f->dir, "UPDATE outbox SET state='sent'"), 0);
    assert_int_equal(run(f, follow_apply, &a2, true), 1);
    assert_string_equal(qt(f, "SELECT remark FROM relationship"), "old");
}

/* ---- groups ------------------------------------------------------------ */

static int chat_apply(sync_apply *a, void *arg) {
    return sync__chat_apply(a, arg, true);
}

static void test_chat(void **state) {
    fx *f = *state;
    json_t *g = json_loads(
        "{\"chat_id\":\"wr1\",\"name\":\"G\",\"owner\":\"zhang\",\"create_time\":10,"
        "\"member_version\":\"v1\",\"member_list\":[{\"userid\":\"zhang\",\"type\":1,"
        "\"join_time\":10,\"join_scene\":1},{\"userid\":\"wmC1\",\"type\":2,\"join_time\":11,"
        "\"join_scene\":3}]}",
        0, NULL);
    /* group, employee, customer, 2 members */
    assert_int_equal(run(f, chat_apply, g, true), 5);
    assert_int_equal(run(f, chat_apply, g, true), 0);
    json_object_set_new(g, "member_version", json_string("v2"));
    json_array_remove(json_object_get(g, "member_list"), 1);
    assert_int_equal(run(f, chat_apply, g, true), 2); /* group updated, member left */
    assert_string_equal(qt(f, "SELECT group_concat(member_id || ':' || status, ',') FROM "
                              "(SELECT * FROM group_member ORDER BY member_id)"),
                        "wmC1:left,zhang:in");
    /* A group row changed after the fetch (a callback) is left alone. */
    assert_int_equal(t_sql_exec(f->dir, "UPDATE group_chat SET updated_at=updated_at+100"), 0);
    json_object_set_new(g, "name", json_string("Renamed"));
    assert_int_equal(run(f, chat_apply, g, true), 0);
    assert_string_equal(qt(f, "SELECT name FROM group_chat"), "G");
    json_decref(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revive_and_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_older_answer_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remark_held_while_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
