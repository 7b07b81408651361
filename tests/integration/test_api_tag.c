/* test_api_tag.c — tag groups, tags and bulk tagging against the real binary:
 * CRUD with 409s and 404s across tenants, keyset pagination, bulk tag/untag
 * (idempotent, audited), scope rejection with nothing changed, 400s and
 * 413s, and deletes that take customer tags with them.
 *
 * Fixture: tenants A (1) and B (2) from `siyu tenant create`, rows inserted
 * straight into DIR/siyu.db, tokens from `siyu token create`, one server.
 * A: departments HQ(10) > East(11), HQ > West(12); employees mgr(100, East),
 * alice(101, East), bob(102, West); customers 1000 (active with alice), 1001
 * (active with bob), 1002 (alice, ended), 1003 (nobody's). B: customer 1500,
 * group 900 "Level" with tag 901. Each test makes its own groups and tags. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#define T0 "1700000000"

static const char fixture_sql[] =
    "INSERT INTO department(id,tenant_id,wecom_id,name,parent_id,created_at,updated_at) VALUES"
    " (10,1,1,'HQ',NULL," T0 "," T0 "),(11,1,2,'East',10," T0 "," T0 "),"
    " (12,1,3,'West',10," T0 "," T0 "),(20,2,1,'HQ',NULL," T0 "," T0 ");"
    "INSERT INTO employee(id,tenant_id,userid,name,department_id,created_at,updated_at) VALUES"
    " (100,1,'mgr','Manager',11," T0 "," T0 "),(101,1,'alice','Alice',11," T0 "," T0 "),"
    " (102,1,'bob','Bob',12," T0 "," T0 ");"
    "INSERT INTO customer(id,tenant_id,external_userid,name,created_at,updated_at) VALUES"
    " (1000,1,'wmA','A'," T0 "," T0 "),(1001,1,'wmB','B'," T0 "," T0 "),"
    " (1002,1,'wmC','C'," T0 "," T0 "),(1003,1,'wmD','D'," T0 "," T0 "),"
    " (1500,2,'wmA','B A'," T0 "," T0 ");"
    "INSERT INTO relationship(tenant_id,customer_id,employee_id,status,added_at,ended_at,"
    "updated_at) VALUES (1,1000,101,'active'," T0 ",NULL," T0 "),"
    " (1,1001,102,'active'," T0 ",NULL," T0 "),"
    " (1,1002,101,'deleted_by_customer'," T0 "," T0 "," T0 ");"
    "INSERT INTO tag_group(id,tenant_id,name,created_at,updated_at) VALUES"
    " (900,2,'Level'," T0 "," T0 ");"
    "INSERT INTO tag(id,tenant_id,group_id,name,created_at,updated_at) VALUES"
    " (901,2,900,'VIP'," T0 "," T0 ");";

typedef t_roles fx;

static int setup(void **state) {
    return t_roles_start((t_roles **)state, fixture_sql, "mgr", "bob");
}

static int teardown(void **state) {
    t_roles_stop(*state);
    return 0;
}

/* Sends body (raw JSON or NULL); asserts the status; returns the reply. */
static json_t *call(fx *f, const char *method, const char *path, const char *token,
                    const char *body, long status) {
    return t_call(&f->srv, method, path, token, body, status);
}

/* Asserts an error with code and (if given) field. */
static void call_err(fx *f, const char *method, const char *path, const char *token,
                     const char *body, long status, const char *code, const char *field) {
    json_t *j = call(f, method, path, token, body, status);
    t_assert_error(j, code, field);
    json_decref(j);
}

static long long id_of(json_t *j) {
    return json_integer_value(json_object_get(j, "id"));
}

static long long make_group(fx *f, const char *name, int sort) {
    char body[256];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"sort_order\":%d}", name, sort);
    json_t *j = call(f, "POST", "/api/v1/tag-groups", f->admin, body, 201);
    long long id = id_of(j);
    json_decref(j);
    return id;
}

static long long make_tag(fx *f, long long group, const char *name, int sort) {
    char body[256];
    snprintf(body, sizeof body, "{\"group_id\":%lld,\"name\":\"%s\",\"sort_order\":%d}", group,
             name, sort);
    json_t *j = call(f, "POST", "/api/v1/tags", f->operator_, body, 201);
    long long id = id_of(j);
    json_decref(j);
    return id;
}

static long long links(fx *f) {
    return t_sql_int(f->dir, "SELECT count(*) FROM customer_tag");
}

/* ---- groups and tags --------------------------------------------------- */

static void test_group_crud(void **state) {
    fx *f = *state;
    json_t *g = call(f, "POST", "/api/v1/tag-groups", f->admin,
                     "{\"name\":\"Level\",\"sort_order\":2}", 201);
    long long id = id_of(g);
    assert_true(id > 0);
    assert_string_equal(json_string_value(json_object_get(g, "name")), "Level");
    assert_int_equal(json_integer_value(json_object_get(g, "sort_order")), 2);
    assert_string_equal(json_string_value(json_object_get(g, "source")), "internal");
    assert_int_equal(json_array_size(json_object_get(g, "tags")), 0);
    assert_true(json_integer_value(json_object_get(g, "created_at")) > 1700000000);
    json_decref(g);
    char path[64];
    snprintf(path, sizeof path, "/api/v1/tag-groups/%lld", id);
    /* Every tenant role reads; only admin/operator write. */
    json_decref(call(f, "GET", path, f->alice, NULL, 200));
    call_err(f, "POST", "/api/v1/tag-groups", f->manager, "{\"name\":\"X\"}", 403, "forbidden",
             NULL);
    call_err(f, "PATCH", path, f->alice, "{\"name\":\"X\"}", 403, "forbidden", NULL);
    call_err(f, "GET", path, f->platform, NULL, 403, "forbidden", NULL);
    /* Names are unique per tenant; tenant B has its own "Level". */
    call_err(f, "POST", "/api/v1/tag-groups", f->operator_, "{\"name\":\"Level\"}", 409, "conflict",
             "name");
    long long other = make_group(f, "Stage", 1);
    call_err(f, "PATCH", path, f->admin, "{\"name\":\"Stage\"}", 409, "conflict", "name");
    g = call(f, "PATCH", path, f->admin, "{\"name\":\"Tier\",\"sort_order\":-3}", 200);
    assert_string_equal(json_string_value(json_object_get(g, "name")), "Tier");
    assert_int_equal(json_integer_value(json_object_get(g, "sort_order")), -3);
    json_decref(g);
    g = call(f, "PATCH", path, f->admin, "{\"sort_order\":5}", 200);
    assert_string_equal(json_string_value(json_object_get(g, "name")), "Tier");
    json_decref(g);
    /* Validation. */
    call_err(f, "POST", "/api/v1/tag-groups", f->admin, "{}", 400, "invalid", "name");
    call_err(f, "POST", "/api/v1/tag-groups", f->admin, "{\"name\":\"\"}", 400, "invalid", "name");
    call_err(f, "POST", "/api/v1/tag-groups", f->admin, "{\"name\":7}", 400, "invalid", "name");
    call_err(f, "POST", "/api/v1/tag-groups", f->admin, "{\"name\":\"a\",\"color\":\"red\"}", 400,
             "invalid", "color");
    call_err(f, "POST", "/api/v1/tag-groups", f->admin,
             "{\"name\":\"a\",\"sort_order\":9999999999}", 400, "invalid", "sort_order");
    char body[300];
    snprintf(body, sizeof body, "{\"name\":\"%0129d\"}", 0);
    call_err(f, "POST", "/api/v1/tag-groups", f->admin, body, 400, "invalid", "name");
    /* Another tenant's group is 404 for reads and writes. */
    call_err(f, "GET", "/api/v1/tag-groups/900", f->admin, NULL, 404, "not_found", NULL);
    call_err(f, "PATCH", "/api/v1/tag-groups/900", f->admin, "{\"name\":\"Mine\"}", 404,
             "not_found", NULL);
    call_err(f, "DELETE", "/api/v1/tag-groups/900", f->admin, NULL, 404, "not_found", NULL);
    call_err(f, "GET", "/api/v1/tag-groups/abc", f->admin, NULL, 404, "not_found", NULL);
    assert_int_equal(t_sql_int(f->dir, "SELECT name='Level' FROM tag_group WHERE id=900"), 1);
    json_decref(call(f, "GET", "/api/v1/tag-groups/900", f->admin_b, NULL, 200));
    (void)other;
}

static void test_tag_crud(void **state) {
    fx *f = *state;
    long long g1 = make_group(f, "Interest", 0), g2 = make_group(f, "Source", 0);
    long long golf = make_tag(f, g1, "Golf", 2), tea = make_tag(f, g1, "Tea", 1);
    char body[256], path[64];
    snprintf(body, sizeof body, "{\"group_id\":%lld,\"name\":\"Golf\"}", g1);
    call_err(f, "POST", "/api/v1/tags", f->admin, body, 409, "conflict", "name");
    long long golf2 = make_tag(f, g2, "Golf", 0); /* same name, other group */
    /* The group must be the tenant's. */
    call_err(f, "POST", "/api/v1/tags", f->admin, "{\"group_id\":900,\"name\":\"X\"}", 400,
             "invalid", "group_id");
    call_err(f, "POST", "/api/v1/tags", f->admin, "{\"group_id\":0,\"name\":\"X\"}", 400, "invalid",
             "group_id");
    call_err(f, "POST", "/api/v1/tags", f->admin, "{\"name\":\"X\"}", 400, "invalid", "group_id");
    call_err(f, "POST", "/api/v1/tags", f->alice, body, 403, "forbidden", NULL);
    /* Get, then the group lists its tags by sort order. */
    snprintf(path, sizeof path, "/api/v1/tags/%lld", golf);
    json_t *t = call(f, "GET", path, f->bob, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(t, "name")), "Golf");
    assert_int_equal(json_integer_value(json_object_get(t, "group_id")), g1);
    json_decref(t);
    snprintf(path, sizeof path, "/api/v1/tag-groups/%lld", g1);
    json_t *g = call(f, "GET", path, f->manager, NULL, 200);
    json_t *tags = json_object_get(g, "tags");
    assert_int_equal(json_array_size(tags), 2);
    assert_int_equal(id_of(json_array_get(tags, 0)), tea);
    assert_int_equal(id_of(json_array_get(tags, 1)), golf);
    json_decref(g);
    /* Moving Golf (g2) into g1 collides with g1's Golf. */
    snprintf(path, sizeof path, "/api/v1/tags/%lld", golf2);
    snprintf(body, sizeof body, "{\"group_id\":%lld}", g1);
    call_err(f, "PATCH", path, f->admin, body, 409, "conflict", "name");
    snprintf(body, sizeof body, "{\"group_id\":%lld,\"name\":\"Golf club\"}", g1);
    t = call(f, "PATCH", path, f->admin, body, 200);
    assert_int_equal(json_integer_value(json_object_get(t, "group_id")), g1);
    assert_string_equal(json_string_value(json_object_get(t, "name")), "Golf club");
    json_decref(t);
    call_err(f, "PATCH", path, f->admin, "{\"group_id\":900}", 400, "invalid", "group_id");
    call_err(f, "PATCH", path, f->admin, "{\"name\":null}", 400, "invalid", "name");
    call_err(f, "GET", "/api/v1/tags/901", f->admin, NULL, 404, "not_found", NULL);
    call_err(f, "PATCH", "/api/v1/tags/901", f->admin, "{\"name\":\"x\"}", 404, "not_found", NULL);
    call_err(f, "DELETE", "/api/v1/tags/901", f->admin, NULL, 404, "not_found", NULL);
    /* ?group_id= filters; bad values are 400. */
    snprintf(path, sizeof path, "/api/v1/tags?group_id=%lld", g1);
    json_t *l = call(f, "GET", path, f->admin, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(l, "items")), 3);
    json_decref(l);
    snprintf(path, sizeof path, "/api/v1/tags?group_id=%lld", g2);
    l = call(f, "GET", path, f->admin, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(l, "items")), 0);
    json_decref(l);
    l = call(f, "GET", "/api/v1/tags?group_id=900", f->admin, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(l, "items")), 0);
    json_decref(l);
    call_err(f, "GET", "/api/v1/tags?group_id=x", f->admin, NULL, 400, "invalid", "group_id");
}

/* Walks every page of path (which has ?limit=); returns the ids in order. */
static int walk(fx *f, const char *token, const char *path, long long *ids, int cap) {
    char url[512];
    int n = 0, pages = 0;
    snprintf(url, sizeof url, "%s", path);
    for (;;) {
        json_t *j = call(f, "GET", url, token, NULL, 200);
        json_t *it;
        size_t i;
        json_array_foreach(json_object_get(j, "items"), i, it) {
            assert_true(n < cap);
            ids[n++] = id_of(it);
        }
        json_t *next = json_object_get(j, "next_cursor");
        pages++;
        assert_true(pages < 100);
        if (json_is_null(next)) {
            json_decref(j);
            return n;
        }
        snprintf(url, sizeof url, "%s&cursor=%s", path, json_string_value(next));
        json_decref(j);
    }
}

static void test_pagination(void **state) {
    fx *f = *state;
    /* A fresh tenant view: B has only group 900. */
    long long ids[64];
    assert_int_equal(walk(f, f->admin_b, "/api/v1/tag-groups?limit=1", ids, 64), 1);
    assert_int_equal(ids[0], 900);
    /* In A: seven more groups with clashing sort orders; pages of 3 give
     * every group once, ordered by (sort_order, id). */
    for (int i = 0; i < 7; i++) {
        char name[32];
        snprintf(name, sizeof name, "Page%d", i);
        make_group(f, name, 100 + i % 3);
    }
    long long all[64], paged[64];
    int n = walk(f, f->admin, "/api/v1/tag-groups?limit=500", all, 64);
    int m = walk(f, f->admin, "/api/v1/tag-groups?limit=3", paged, 64);
    assert_int_equal(n, m);
    assert_true(n >= 7);
    for (int i = 0; i < n; i++) {
        assert_int_equal(all[i], paged[i]);
        assert_true(all[i] != 900);
    }
    long long prev_sort = -1000000000LL, prev_id = 0;
    for (int i = 0; i < n; i++) {
        long long s = t_sql_int(f->dir, "SELECT sort_order FROM tag_group WHERE id=%lld", all[i]);
        assert_true(s > prev_sort || (s == prev_sort && all[i] > prev_id));
        prev_sort = s;
        prev_id = all[i];
    }
    /* The default page is 50 and a large limit is capped, not refused. */
    json_t *j = call(f, "GET", "/api/v1/tag-groups?limit=100000", f->admin, NULL, 200);
    assert_true(json_is_null(json_object_get(j, "next_cursor")));
    json_decref(j);
    call_err(f, "GET", "/api/v1/tag-groups?limit=0", f->admin, NULL, 400, "invalid", "limit");
    call_err(f, "GET", "/api/v1/tag-groups?limit=x", f->admin, NULL, 400, "invalid", "limit");
    call_err(f, "GET", "/api/v1/tag-groups?cursor=zz", f->admin, NULL, 400, "invalid", "cursor");
    call_err(f, "GET", "/api/v1/tags?cursor=1.x", f->admin, NULL, 400, "invalid", "cursor");
    /* Tags page the same way. */
    long long g = make_group(f, "Many", 0);
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        make_tag(f, g, name, 4 - i);
    }
    char path[96];
    snprintf(path, sizeof path, "/api/v1/tags?group_id=%lld&limit=2", g);
    assert_int_equal(walk(f, f->bob, path, paged, 64), 5);
    for (int i = 1; i < 5; i++)
        assert_true(paged[i] < paged[i - 1]); /* sort_order 0..4 */
}

/* ---- bulk -------------------------------------------------------------- */

static void bulk(fx *f, const char *token, const char *action, const char *tags,
                 const char *customers, long status, long long changed) {
    char body[1024];
    snprintf(body, sizeof body, "{\"action\":\"%s\",\"tag_ids\":%s,\"customer_ids\":%s}", action,
             tags, customers);
    json_t *j = call(f, "POST", "/api/v1/tags/bulk", token, body, status);
    if (status == 200) assert_int_equal(json_integer_value(json_object_get(j, "changed")), changed);
    json_decref(j);
}

static void bulk_err(fx *f, const char *token, const char *tags, const char *customers, long status,
                     const char *code, const char *field) {
    char body[1024];
    snprintf(body, sizeof body, "{\"action\":\"tag\",\"tag_ids\":%s,\"customer_ids\":%s}", tags,
             customers);
    long long before = links(f);
    call_err(f, "POST", "/api/v1/tags/bulk", token, body, status, code, field);
    assert_int_equal(links(f), before);
}

static void test_bulk_admin(void **state) {
    fx *f = *state;
    long long g = make_group(f, "Bulk", 0), t1 = make_tag(f, g, "b1", 0),
              t2 = make_tag(f, g, "b2", 0);
    char tags[64], one[32];
    snprintf(tags, sizeof tags, "[%lld,%lld,%lld]", t1, t2, t1);
    snprintf(one, sizeof one, "[%lld]", t1);
    long long before = links(f);
    bulk(f, f->admin, "tag", tags, "[1000,1001,1003,1003]", 200, 6);
    bulk(f, f->operator_, "tag", tags, "[1000,1001,1003]", 200, 0); /* idempotent */
    assert_int_equal(links(f), before + 6);
    assert_int_equal(t_sql_int(f->dir,
                               "SELECT count(*) FROM customer_tag WHERE tag_id=%lld AND "
                               "source='manual' AND employee_id IS NULL AND tenant_id=1",
                               t1),
                     3);
    bulk(f, f->admin, "untag", one, "[1000,1003]", 200, 2);
    bulk(f, f->admin, "untag", one, "[1000,1003]", 200, 0);
    assert_int_equal(links(f), before + 4);
    assert_int_equal(
        t_sql_int(f->dir, "SELECT count FROM audit_log WHERE action='tag.bulk_tag' ORDER BY id "
                          "LIMIT 1"),
        6);
    assert_int_equal(
        t_sql_int(f->dir, "SELECT count(*) FROM audit_log WHERE action='tag.bulk_untag'"), 2);
}

static void test_bulk_scope(void **state) {
    fx *f = *state;
    long long g = make_group(f, "Scope", 0), t1 = make_tag(f, g, "s1", 0),
              t2 = make_tag(f, g, "s2", 0);
    char tags[64], one[32];
    snprintf(tags, sizeof tags, "[%lld,%lld]", t1, t2);
    snprintf(one, sizeof one, "[%lld]", t1);
    /* alice sees 1000 only (1002's relationship ended). */
    bulk(f, f->alice, "tag", one, "[1000]", 200, 1);
    assert_int_equal(t_sql_int(f->dir,
                               "SELECT employee_id FROM customer_tag WHERE customer_id=1000 AND "
                               "tag_id=%lld",
                               t1),
                     101);
    bulk_err(f, f->alice, tags, "[1000,1001]", 404, "not_found", "customer_ids[1]");
    bulk_err(f, f->alice, tags, "[1002]", 404, "not_found", "customer_ids[0]");
    bulk_err(f, f->alice, tags, "[1003,1000]", 404, "not_found", "customer_ids[0]");
    assert_int_equal(t_sql_int(f->dir, "SELECT count(*) FROM customer_tag WHERE tag_id=%lld", t2),
                     0);
    /* The manager of East sees alice's customers, not bob's (West). */
    bulk(f, f->manager, "tag", tags, "[1000]", 200, 1);
    bulk_err(f, f->manager, tags, "[1000,1000,1001]", 404, "not_found", "customer_ids[2]");
    /* bob sees 1001. */
    bulk(f, f->bob, "tag", one, "[1001]", 200, 1);
    bulk_err(f, f->bob, one, "[1000]", 404, "not_found", "customer_ids[0]");
    /* Untagging is scoped the same way. */
    char body[256];
    snprintf(body, sizeof body, "{\"action\":\"untag\",\"tag_ids\":%s,\"customer_ids\":[1000]}",
             one);
    long long before = links(f);
    call_err(f, "POST", "/api/v1/tags/bulk", f->bob, body, 404, "not_found", "customer_ids[0]");
    assert_int_equal(links(f), before);
    /* Admin: unknown, other tenant's customers and tags are 404 too. */
    bulk_err(f, f->admin, tags, "[1000,99999]", 404, "not_found", "customer_ids[1]");
    bulk_err(f, f->admin, tags, "[1500]", 404, "not_found", "customer_ids[0]");
    char bad_tags[64];
    snprintf(bad_tags, sizeof bad_tags, "[%lld,901]", t1);
    bulk_err(f, f->admin, bad_tags, "[1000]", 404, "not_found", "tag_ids[1]");
    bulk_err(f, f->admin, "[424242]", "[1000]", 404, "not_found", "tag_ids[0]");
    bulk_err(f, f->admin_b, one, "[1500]", 404, "not_found", "tag_ids[0]");
    bulk_err(f, f->platform, one, "[1000]", 403, "forbidden", NULL);
}

static void test_bulk_validation(void **state) {
    fx *f = *state;
    long long g = make_group(f, "Valid", 0), t = make_tag(f, g, "v", 0);
    char one[32], body[256];
    snprintf(one, sizeof one, "[%lld]", t);
    bulk_err(f, f->admin, "[]", "[1000]", 400, "invalid", "tag_ids");
    bulk_err(f, f->admin, one, "[]", 400, "invalid", "customer_ids");
    bulk_err(f, f->admin, one, "[1000,\"1001\"]", 400, "invalid", "customer_ids[1]");
    bulk_err(f, f->admin, one, "[1000,-1]", 400, "invalid", "customer_ids[1]");
    bulk_err(f, f->admin, one, "[1000,1.5]", 400, "invalid", "customer_ids[1]");
    bulk_err(f, f->admin, "[0]", "[1000]", 400, "invalid", "tag_ids[0]");
    bulk_err(f, f->admin, one, "{}", 400, "invalid", "customer_ids");
    snprintf(body, sizeof body, "{\"action\":\"zap\",\"tag_ids\":%s,\"customer_ids\":[1000]}", one);
    call_err(f, "POST", "/api/v1/tags/bulk", f->admin, body, 400, "invalid", "action");
    snprintf(body, sizeof body, "{\"tag_ids\":%s,\"customer_ids\":[1000]}", one);
    call_err(f, "POST", "/api/v1/tags/bulk", f->admin, body, 400, "invalid", "action");
    snprintf(body, sizeof body,
             "{\"action\":\"tag\",\"tag_ids\":%s,\"customer_ids\":[1000],\"note\":1}", one);
    call_err(f, "POST", "/api/v1/tags/bulk", f->admin, body, 400, "invalid", "note");
    /* 10,001 customers or 101 tags: 413, nothing changed. */
    size_t cap = 10001 * 8 + 128, len = 0;
    char *big = malloc(cap);
    len += (size_t)snprintf(big, cap, "{\"action\":\"tag\",\"tag_ids\":%s,\"customer_ids\":[", one);
    for (int i = 0; i < 10001; i++)
        len += (size_t)snprintf(big + len, cap - len, "%s1000", i ? "," : "");
    snprintf(big + len, cap - len, "]}");
    long long before = links(f);
    call_err(f, "POST", "/api/v1/tags/bulk", f->admin, big, 413, "too_large", "customer_ids");
    len = (size_t)snprintf(big, cap, "{\"action\":\"tag\",\"customer_ids\":[1000],\"tag_ids\":[");
    for (int i = 0; i < 101; i++)
        len += (size_t)snprintf(big + len, cap - len, "%s%lld", i ? "," : "", t);
    snprintf(big + len, cap - len, "]}");
    call_err(f, "POST", "/api/v1/tags/bulk", f->admin, big, 413, "too_large", "tag_ids");
    assert_int_equal(links(f), before);
    /* Exactly 10,000 (repeated ids are fine) and 100 tags work. */
    len = (size_t)snprintf(big, cap, "{\"action\":\"tag\",\"tag_ids\":%s,\"customer_ids\":[", one);
    for (int i = 0; i < 10000; i++)
        len += (size_t)snprintf(big + len, cap - len, "%s%d", i ? "," : "", 1000 + i % 4);
    snprintf(big + len, cap - len, "]}");
    json_t *j = call(f, "POST", "/api/v1/tags/bulk", f->admin, big, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "changed")), 4);
    json_decref(j);
    free(big);
}

static void test_deletes(void **state) {
    fx *f = *state;
    long long g = make_group(f, "Doomed", 0), t1 = make_tag(f, g, "d1", 0),
              t2 = make_tag(f, g, "d2", 0), keep_g = make_group(f, "Kept", 0),
              keep = make_tag(f, keep_g, "k", 0);
    char tags[64], path[64];
    snprintf(tags, sizeof tags, "[%lld,%lld,%lld]", t1, t2, keep);
    bulk(f, f->admin, "tag", tags, "[1000,1001]", 200, 6);
    /* A tag delete takes its customer tags. */
    snprintf(path, sizeof path, "/api/v1/tags/%lld", t1);
    call_err(f, "DELETE", path, f->alice, NULL, 403, "forbidden", NULL);
    json_decref(call(f, "DELETE", path, f->operator_, NULL, 204));
    call_err(f, "DELETE", path, f->operator_, NULL, 404, "not_found", NULL);
    assert_int_equal(t_sql_int(f->dir, "SELECT count(*) FROM customer_tag WHERE tag_id=%lld", t1),
                     0);
    assert_int_equal(t_sql_int(f->dir,
                               "SELECT count FROM audit_log WHERE action='tag.delete' AND "
                               "target='tag:%lld'",
                               t1),
                     2);
    /* A group delete takes its tags and theirs, nothing else. */
    snprintf(path, sizeof path, "/api/v1/tag-groups/%lld", g);
    json_decref(call(f, "DELETE", path, f->admin, NULL, 204));
    call_err(f, "GET", path, f->admin, NULL, 404, "not_found", NULL);
    call_err(f, "DELETE", path, f->admin, NULL, 404, "not_found", NULL);
    assert_int_equal(t_sql_int(f->dir, "SELECT count(*) FROM tag WHERE group_id=%lld", g), 0);
    assert_int_equal(t_sql_int(f->dir, "SELECT count(*) FROM customer_tag WHERE tag_id=%lld", t2),
                     0);
    assert_int_equal(t_sql_int(f->dir, "SELECT count(*) FROM customer_tag WHERE tag_id=%lld", keep),
                     2);
    assert_int_equal(t_sql_int(f->dir,
                               "SELECT count FROM audit_log WHERE action='tag_group.delete' AND "
                               "target='tag_group:%lld'",
                               g),
                     1);
    assert_int_equal(t_sql_int(f->dir,
                               "SELECT detail='tags=1 customer_tags=2' FROM audit_log WHERE "
                               "action='tag_group.delete' AND target='tag_group:%lld'",
                               g),
                     1);
    /* The name is free again. */
    make_group(f, "Doomed", 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_crud), cmocka_unit_test(test_tag_crud),
        cmocka_unit_test(test_pagination), cmocka_unit_test(test_bulk_admin),
        cmocka_unit_test(test_bulk_scope), cmocka_unit_test(test_bulk_validation),
        cmocka_unit_test(test_deletes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
