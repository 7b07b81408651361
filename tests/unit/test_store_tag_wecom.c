/* test_store_tag_wecom.c — the WeCom corp tag producers of store/tag.c and
 * store/tag_wecom.c, inline against a fresh database: which writes queue
 * which calls with which bodies, that internal tags never do, that an
 * add_corp_tag answer stores the ids, and that a tag deleted or renamed
 * while its add was pending is deleted or renamed when the answer comes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/tag.h"
#include "store/tag_wecom.h"
#include "testlib.h"

typedef struct ctx {
    char *dir;
    store *st;
} ctx;

static int exec_step(store_conn *c, void *arg) {
    return store_conn_exec(c, arg);
}

static int setup(void **state) {
    ctx *x = calloc(1, sizeof *x);
    x->dir = t_tmpdir();
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    x->st = store_open(x->dir, &o, &err);
    if (!x->st) return -1;
    *state = x;
    const char *sql =
        "INSERT INTO tenant(tenant_id,name,created_at,updated_at) VALUES(1,'A',1,1);"
        "INSERT INTO employee(id,tenant_id,userid,created_at,updated_at) VALUES"
        " (1,1,'u1',1,1),(2,1,'u2',1,1);"
        "INSERT INTO customer(id,tenant_id,external_userid,created_at,updated_at) VALUES"
        " (10,1,'wm10',1,1),(11,1,'wm11',1,1);"
        "INSERT INTO identity(tenant_id,customer_id,kind,value,created_at) VALUES"
        " (1,10,'wecom_external_userid','wm10',1),(1,11,'wecom_external_userid','wm11',1);"
        "INSERT INTO relationship(tenant_id,customer_id,employee_id,status,added_at,updated_at)"
        " VALUES (1,10,1,'active',1,1),(1,11,1,'active',1,1),(1,11,2,'active',1,1),"
        " (1,10,2,'deleted_by_customer',1,1);";
    return store_write(x->st, exec_step, (void *)sql);
}

static int teardown(void **state) {
    ctx *x = *state;
    store_close(x->st);
    t_rmdir(x->dir);
    free(x);
    return 0;
}

static const char *last_outbox(ctx *x) {
    return t_sql_text(x->dir, "SELECT kind||' '||body FROM outbox ORDER BY id DESC LIMIT 1");
}

static long long outbox_n(ctx *x) {
    return t_sql_int(x->dir, "SELECT count(*) FROM outbox");
}

static int64_t group(ctx *x, const char *name, bool wecom) {
    tag_group_input g = {.tenant_id = 1, .name = name, .wecom = wecom, .actor = "test"};
    assert_int_equal(store_write(x->st, tag_group_create, &g), 0);
    return g.id;
}

static int64_t tag(ctx *x, int64_t gid, const char *name) {
    tag_input t = {.tenant_id = 1, .group_id = gid, .name = name, .actor = "test"};
    assert_int_equal(store_write(x->st, tag_create, &t), 0);
    return t.id;
}

static void answer(ctx *x, int64_t tag_id, const char *gid, const char *gname, const char *tid,
                   const char *tname) {
    char ref[32];
    snprintf(ref, sizeof ref, "tag:%lld", (long long)tag_id);
    json_t *a = json_pack("{s:i,s:{s:s,s:s,s:[{s:s,s:s}]}}", "errcode", 0, "tag_group", "group_id",
                          gid, "group_name", gname, "tag", "id", tid, "name", tname);
    tag_wecom_result r = {.tenant_id = 1, .ref = ref, .answer = a};
    assert_int_equal(store_write(x->st, tag_wecom_result_step, &r), 0);
    json_decref(a);
}

static void test_internal_never_pushed(void **state) {
    ctx *x = *state;
    int64_t g = group(x, "内部", false);
    int64_t t = tag(x, g, "a");
    tag_bulk b = {.auth = {.tenant_id = 1, .role = ROLE_ADMIN},
                  .tag_ids = "[1]",
                  .ntags = 1,
                  .customer_ids = "[10,11]",
                  .ncustomers = 2,
                  .actor = "test"};
    char ids[32];
    snprintf(ids, sizeof ids, "[%lld]", (long long)t);
    b.tag_ids = ids;
    assert_int_equal(store_write(x->st, tag_bulk_apply, &b), 0);
    assert_int_equal(b.pushed, 0);
    tag_input del = {.tenant_id = 1, .id = t, .actor = "test"};
    assert_int_equal(store_write(x->st, tag_delete, &del), 0);
    assert_int_equal(outbox_n(x), 0);
}

static void test_wecom_lifecycle(void **state) {
    ctx *x = *state;
    int64_t g = group(x, "等级", true);
    assert_int_equal(outbox_n(x), 0); /* empty groups are not pushed */
    int64_t t = tag(x, g, "金");
    assert_string_equal(last_outbox(x),
                        "add_corp_tag {\"tag\":[{\"name\":\"金\"}],\"group_name\":\"等级\"}");
    /* Before the answer: bulk tagging skips it (no wecom_id yet). */
    char ids[32];
    snprintf(ids, sizeof ids, "[%lld]", (long long)t);
    tag_bulk b = {.auth = {.tenant_id = 1, .role = ROLE_ADMIN},
                  .tag_ids = ids,
                  .ntags = 1,
                  .customer_ids = "[10,11]",
                  .ncustomers = 2,
                  .actor = "test"};
    assert_int_equal(store_write(x->st, tag_bulk_apply, &b), 0);
    assert_int_equal(b.pushed, 0);
    answer(x, t, "etG", "等级", "etT", "金");
    assert_string_equal(t_sql_text(x->dir, "SELECT wecom_id FROM tag WHERE id=%lld", (long long)t),
                        "etT");
    assert_string_equal(
        t_sql_text(x->dir, "SELECT wecom_id FROM tag_group WHERE id=%lld", (long long)g), "etG");
    /* Now: one mark_tag per active relationship (10-u1, 11-u1, 11-u2). */
    b.untag = false;
    long long n0 = outbox_n(x);
    assert_int_equal(store_write(x->st, tag_bulk_apply, &b), 0);
    assert_int_equal(b.pushed, 3);
    assert_int_equal(outbox_n(x), n0 + 3);
    assert_int_equal(b.kick, 1u << 2);
    assert_string_equal(last_outbox(x),
                        "mark_tag {\"userid\":\"u2\",\"external_userid\":\"wm11\",\"add_tag\":["
                        "\"etT\"]}");
    b.untag = true;
    assert_int_equal(store_write(x->st, tag_bulk_apply, &b), 0);
    assert_string_equal(last_outbox(x),
                        "mark_tag {\"userid\":\"u2\",\"external_userid\":\"wm11\",\"remove_tag\":["
                        "\"etT\"]}");
    /* A second tag goes by group_id now. */
    int64_t t2 = tag(x, g, "银");
    assert_string_equal(last_outbox(x),
                        "add_corp_tag {\"tag\":[{\"name\":\"银\"}],\"group_id\":\"etG\"}");
    /* Renames. */
    tag_input ren = {.tenant_id = 1, .id = t, .name = "黑金", .actor = "test"};
    assert_int_equal(store_write(x->st, tag_update, &ren), 0);
    assert_string_equal(last_outbox(x), "edit_corp_tag {\"id\":\"etT\",\"name\":\"黑金\"}");
    tag_group_input gren = {.tenant_id = 1, .id = g, .name = "会员", .actor = "test"};
    assert_int_equal(store_write(x->st, tag_group_update, &gren), 0);
    assert_string_equal(last_outbox(x), "edit_corp_tag {\"id\":\"etG\",\"name\":\"会员\"}");
    /* t2 renamed while pending: the answer queues the edit. */
    ren = (tag_input){.tenant_id = 1, .id = t2, .name = "白银", .actor = "test"};
    long long n1 = outbox_n(x);
    assert_int_equal(store_write(x->st, tag_update, &ren), 0);
    assert_int_equal(outbox_n(x), n1);
    answer(x, t2, "etG", "会员", "etS", "银");
    assert_string_equal(last_outbox(x), "edit_corp_tag {\"id\":\"etS\",\"name\":\"白银\"}");
    /* Moving a WeCom tag is refused. */
    int64_t ig = group(x, "内部2", false);
    tag_input mv = {.tenant_id = 1, .id = t, .group_id = ig, .actor = "test"};
    assert_int_equal(store_write(x->st, tag_update, &mv), SIYU_EINVAL);
    assert_string_equal(mv.err.field, "group_id");
    /* Declaring a tag internal in a WeCom group is refused. */
    tag_input wrong = {.tenant_id = 1,
                       .group_id = g,
                       .name = "x",
                       .has_wecom = true,
                       .wecom = false,
                       .actor = "test"};
    assert_int_equal(store_write(x->st, tag_create, &wrong), SIYU_EINVAL);
    assert_string_equal(wrong.err.field, "wecom");
    /* Delete a tag with an id, then a tag whose add is pending. */
    tag_input del = {.tenant_id = 1, .id = t, .actor = "test"};
    assert_int_equal(store_write(x->st, tag_delete, &del), 0);
    assert_string_equal(last_outbox(x), "del_corp_tag {\"tag_id\":[\"etT\"]}");
    int64_t t3 = tag(x, g, "铜");
    del = (tag_input){.tenant_id = 1, .id = t3, .actor = "test"};
    long long n2 = outbox_n(x);
    assert_int_equal(store_write(x->st, tag_delete, &del), 0);
    assert_int_equal(outbox_n(x), n2);
    answer(x, t3, "etG", "会员", "etC", "铜");
    assert_string_equal(last_outbox(x), "del_corp_tag {\"tag_id\":[\"etC\"]}");
    /* Delete the group: by its id. */
    tag_group_input gd = {.tenant_id = 1, .id = g, .actor = "test"};
    assert_int_equal(store_write(x->st, tag_group_delete, &gd), 0);
    assert_string_equal(last_outbox(x), "del_corp_tag {\"group_id\":[\"etG\"]}");
}

/* A callback placeholder that got the ids first is folded into our rows. */
static void test_placeholder_merge(void **state) {
    ctx *x = *state;
    int64_t g = group(x, "渠道", true);
    int64_t t = tag(x, g, "门店");
    const char *sql =
        "INSERT INTO tag_group(id,tenant_id,wecom_id,name,source,created_at,updated_at) VALUES"
        " (900,1,'etPG','etPG','wecom',1,1),(901,1,NULL,'(wecom)','wecom',1,1);"
        "INSERT INTO tag(id,tenant_id,group_id,wecom_id,name,created_at,updated_at) VALUES"
        " (950,1,901,'etPT','etPT',1,1);"
        "INSERT INTO customer_tag(tenant_id,customer_id,tag_id,source,created_at) VALUES"
        " (1,10,950,'wecom',1);";
    assert_int_equal(store_write(x->st, exec_step, (void *)sql), 0);
    answer(x, t, "etPG", "渠道", "etPT", "门店");
    assert_string_equal(t_sql_text(x->dir, "SELECT wecom_id FROM tag WHERE id=%lld", (long long)t),
                        "etPT");
    assert_string_equal(
        t_sql_text(x->dir, "SELECT wecom_id FROM tag_group WHERE id=%lld", (long long)g), "etPG");
    assert_int_equal(t_sql_int(x->dir, "SELECT count(*) FROM tag WHERE id=950"), 0);
    assert_int_equal(t_sql_int(x->dir, "SELECT count(*) FROM tag_group WHERE id=900"), 0);
    assert_int_equal(t_sql_int(x->dir,
                               "SELECT count(*) FROM customer_tag WHERE customer_id=10 "
                               "AND tag_id=%lld",
                               (long long)t),
                     1);
}

/* An answer recorded while no listener ran is applied at start-up. */
static void test_catch_up(void **state) {
    ctx *x = *state;
    int64_t g = group(x, "补", true);
    int64_t t = tag(x, g, "甲");
    char upd[512];
    snprintf(upd, sizeof upd,
             "UPDATE outbox SET state='sent', result='{\"errcode\":0,\"tag_group\":{"
             "\"group_id\":\"etCG\",\"group_name\":\"补\",\"tag\":[{\"id\":\"etCT\","
             "\"name\":\"甲\"}]}}' WHERE ref='tag:%lld'",
             (long long)t);
    assert_int_equal(store_write(x->st, exec_step, upd), 0);
    unsigned kick = 0;
    assert_int_equal(store_write(x->st, tag_wecom_catch_up_step, &kick), 0);
    assert_string_equal(t_sql_text(x->dir, "SELECT wecom_id FROM tag WHERE id=%lld", (long long)t),
                        "etCT");
    assert_string_equal(
        t_sql_text(x->dir, "SELECT wecom_id FROM tag_group WHERE id=%lld", (long long)g), "etCG");
    assert_int_equal(store_write(x->st, tag_wecom_catch_up_step, &kick), 0); /* idempotent */
}

/* A group created with its tags: one add per tag, all or nothing. */
static void test_group_with_tags(void **state) {
    ctx *x = *state;
    long long n0 = outbox_n(x);
    const char *dup[] = {"春", "春"};
    tag_group_input bad = {.tenant_id = 1,
                           .name = "季节",
                           .wecom = true,
                           .tag_names = dup,
                           .ntags = 2,
                           .actor = "test"};
    assert_int_equal(store_write(x->st, tag_group_create, &bad), SIYU_ECONFLICT);
    assert_string_equal(bad.err.field, "tags[1]");
    assert_int_equal(outbox_n(x), n0);
    assert_int_equal(t_sql_int(x->dir, "SELECT count(*) FROM tag_group WHERE name='季节'"), 0);
    const char *names[] = {"春", "夏"};
    tag_group_input g = {.tenant_id = 1,
                         .name = "季节",
                         .wecom = true,
                         .tag_names = names,
                         .ntags = 2,
                         .actor = "test"};
    assert_int_equal(store_write(x->st, tag_group_create, &g), 0);
    assert_int_equal(g.kick, 1u << 1);
    assert_int_equal(outbox_n(x), n0 + 2);
    assert_string_equal(last_outbox(x),
                        "add_corp_tag {\"tag\":[{\"name\":\"夏\"}],\"group_name\":\"季节\"}");
    assert_int_equal(
        t_sql_int(x->dir, "SELECT count(*) FROM tag WHERE group_id=%lld", (long long)g.id), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_internal_never_pushed), cmocka_unit_test(test_wecom_lifecycle),
        cmocka_unit_test(test_placeholder_merge),     cmocka_unit_test(test_catch_up),
        cmocka_unit_test(test_group_with_tags),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
