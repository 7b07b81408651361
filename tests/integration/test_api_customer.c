/* test_api_customer.c — the customer read API against the real binary:
 * customer lists (filters, pagination, bad parameters), the 360 view,
 * timelines, relationships, group chats and the audit log, with scope.
 *
 * Fixture: two tenants created with `siyu tenant create`, then rows inserted
 * straight into DIR/siyu.db (the ingestion APIs are not needed to read), then
 * tokens from `siyu token create`, then one server for every test.
 *
 * Tenant A (1): departments HQ(10) > East(11) > Shanghai(12), HQ > West(13);
 * employees mgr_east(100, East), alice(101, Shanghai), bob(102, West),
 * carol(103, East); customers 1000..1003 plus 120 bulk customers 2000..2119
 * (active with bob). Tenant B (2) reuses the userid "alice" and the
 * external_userid "wmA1" to catch missing tenant filters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#define T0 "1700000000"

static const char fixture_sql[] =
    "INSERT INTO department(id,tenant_id,wecom_id,name,parent_id,created_at,updated_at) VALUES"
    " (10,1,1,'HQ',NULL," T0 "," T0 "),(11,1,2,'East',10," T0 "," T0 "),"
    " (12,1,3,'Shanghai',11," T0 "," T0 "),(13,1,4,'West',10," T0 "," T0 "),"
    " (20,2,1,'HQ',NULL," T0 "," T0 ");"
    "INSERT INTO employee(id,tenant_id,userid,name,department_id,created_at,updated_at) VALUES"
    " (100,1,'mgr_east','Manager East',11," T0 "," T0 "),(101,1,'alice','Alice',12," T0 "," T0 "),"
    " (102,1,'bob','Bob',13," T0 "," T0 "),(103,1,'carol','Carol',11," T0 "," T0 "),"
    " (200,2,'alice','Alice B',20," T0 "," T0 ");"
    "INSERT INTO customer(id,tenant_id,external_userid,name,gender,type,corp_name,"
    "first_added_at,created_at,updated_at) VALUES"
    " (1000,1,'wmA1','Zhang San',1,1,NULL,1700000050,1700000050,1700000100),"
    " (1001,1,'wmA2','Li Si',2,1,NULL,1700000200,1700000200,1700000200),"
    " (1002,1,'wmA3','Wang_Wu',1,1,NULL,1700000300,1700000300,1700000300),"
    " (1003,1,'wmA4','Zhao Liu',0,2,'Acme',1700000450,1700000450,1700000450),"
    " (1500,2,'wmA1','B Customer',1,1,NULL,1700000100,1700000100,1700000100);"
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i<119)"
    " INSERT INTO customer(id,tenant_id,external_userid,name,created_at,updated_at)"
    " SELECT 2000+i,1,'wmBulk'||i,'Bulk '||i,1700001000+i,1700001000+i FROM n;"
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i<119)"
    " INSERT INTO relationship(id,tenant_id,customer_id,employee_id,status,added_at,"
    "updated_at) SELECT 100+i,1,2000+i,102,'active',1700001000+i,1700001000+i FROM n;"
    "INSERT INTO identity(tenant_id,customer_id,kind,value,created_at) VALUES"
    " (1,1000,'wecom_external_userid','wmA1'," T0 "),(1,1000,'unionid','u-1000'," T0 "),"
    " (2,1500,'wecom_external_userid','wmA1'," T0 ");"
    "INSERT INTO relationship(id,tenant_id,customer_id,employee_id,status,added_at,add_way,"
    "state,remark,description,ended_at,end_reason,updated_at) VALUES"
    " (1,1,1000,101,'active',1700000100,1,'store_qr','vip from store',NULL,NULL,NULL,"
    "1700000100),"
    " (2,1,1000,102,'deleted_by_customer',1700000050,3,'ad',NULL,NULL,1700000090,"
    "'customer deleted',1700000090),"
    " (3,1,1001,102,'active',1700000200,1,'ad',NULL,NULL,NULL,NULL,1700000200),"
    " (4,1,1002,101,'deleted_by_employee',1700000300,1,NULL,NULL,NULL,1700000400,"
    "'employee deleted',1700000400),"
    " (5,1,1003,103,'active',1700000500,1,'store_qr',NULL,NULL,NULL,NULL,1700000500),"
    " (6,1,1003,102,'transferred',1700000450,1,NULL,NULL,NULL,1700000500,'transferred',"
    "1700000500),"
    " (7,2,1500,200,'active',1700000100,1,'store_qr',NULL,NULL,NULL,NULL,1700000100);"
    "INSERT INTO tag_group(id,tenant_id,name,created_at,updated_at) VALUES"
    " (1,1,'Level'," T0 "," T0 "),(2,2,'Level'," T0 "," T0 ");"
    "INSERT INTO tag(id,tenant_id,group_id,name,created_at,updated_at) VALUES"
    " (300,1,1,'VIP'," T0 "," T0 "),(301,1,NULL,'New'," T0 "," T0 "),"
    " (310,2,2,'VIP'," T0 "," T0 ");"
    "INSERT INTO customer_tag(tenant_id,customer_id,tag_id,source,employee_id,created_at) VALUES"
    " (1,1000,300,'manual',101,1700000150),(1,1000,301,'rule',NULL,1700000160),"
    " (1,1003,301,'wecom',NULL,1700000170),(2,1500,310,'manual',200,1700000150);"
    "INSERT INTO group_chat(id,tenant_id,chat_id,name,owner_userid,status,created_at,"
    "dismissed_at,updated_at) VALUES"
    " (500,1,'wrA','Alice fans','alice','active'," T0 ",NULL," T0 "),"
    " (501,1,'wrB','Bob group','bob','active'," T0 ",NULL," T0 "),"
    " (502,1,'wrC','Carol old','carol','dismissed'," T0 ",1700000900," T0 "),"
    " (503,1,'wrD','Bob and Alice','bob','active'," T0 ",NULL," T0 "),"
    " (600,2,'wrA','B group','alice','active'," T0 ",NULL," T0 ");"
    "INSERT INTO group_member(tenant_id,group_id,member_id,customer_id,employee_id,status,"
    "join_scene,joined_at,left_at) VALUES"
    " (1,500,'alice',NULL,101,'in',1,1700000100,NULL),"
    " (1,500,'wmA1',1000,NULL,'in',3,1700000110,NULL),"
    " (1,501,'wmA2',1001,NULL,'in',3,1700000210,NULL),"
    " (1,501,'wmA1',1000,NULL,'left',3,1700000120,1700000300),"
    " (1,503,'alice',NULL,101,'in',1,1700000100,NULL),"
    " (1,503,'bob',NULL,102,'in',1,1700000100,NULL),"
    " (2,600,'wmA1',1500,NULL,'in',3,1700000110,NULL);"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<30)"
    " INSERT INTO event(id,tenant_id,customer_id,type,ts,employee_id,source,props)"
    " SELECT i,1,1000,CASE WHEN i%3=0 THEN 'order' ELSE 'message' END,"
    " 1700002000+min(i,29)*10,CASE WHEN i%2=1 THEN 101 END,'wecom',json_object('n',i) FROM n;"
    "UPDATE event SET props='not json' WHERE id=2;"
    "INSERT INTO event(id,tenant_id,customer_id,type,ts,source,props) VALUES"
    " (31,1,1001,'message',1700002000,'api',NULL),(40,2,1500,'order',1700002000,'api','{}');"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<12)"
    " INSERT INTO audit_log(tenant_id,actor,action,target,count,created_at)"
    " SELECT 1,'token:1',CASE WHEN i%4=0 THEN 'customer.export' ELSE 'tag.add' END,"
    " 'customer:1000',i,1700000000+i*100 FROM n;"
    "INSERT INTO audit_log(tenant_id,actor,action,target,count,created_at) VALUES"
    " (2,'token:9','tenant_b.secret',NULL,1,1700000500);";

typedef t_roles fx;

static int setup(void **state) {
    return t_roles_start((t_roles **)state, fixture_sql, "mgr_east", "bob");
}

static int teardown(void **state) {
    t_roles_stop(*state);
    return 0;
}

/* GET path with token; asserts the status and returns the parsed body. */
static json_t *get(fx *f, const char *token, const char *path, long status) {
    return t_call(&f->srv, "GET", path, token, NULL, status);
}

/* Asserts a 400 naming field. */
static void bad(fx *f, const char *token, const char *path, const char *field) {
    json_t *j = get(f, token, path, 400);
    const char *got = json_string_value(json_object_get(json_object_get(j, "error"), "field"));
    if (!got || strcmp(got, field) != 0) fprintf(stderr, "%s: field %s\n", path, got);
    t_assert_error(j, "invalid", field);
    json_decref(j);
}

/* Ids of j["items"] joined by ',' into buf (for compact assertions). */
static const char *ids(json_t *j, char *buf, size_t cap) {
    size_t k = 0;
    json_t *it;
    size_t i;
    buf[0] = 0;
    json_array_foreach(json_object_get(j, "items"), i, it) {
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? "," : "",
                              (long long)json_integer_value(json_object_get(it, "id")));
        if (k >= cap) break;
    }
    return buf;
}

static void expect_ids(fx *f, const char *token, const char *path, const char *want) {
    char buf[1024];
    json_t *j = get(f, token, path, 200);
    assert_true(json_is_null(json_object_get(j, "next_cursor")));
    const char *got = ids(j, buf, sizeof buf);
    if (strcmp(got, want) != 0) fprintf(stderr, "%s: got [%s] want [%s]\n", path, got, want);
    assert_string_equal(got, want);
    json_decref(j);
}

/* Walks every page of path (which must accept &cursor=) and returns the item
 * count. Checks the order: ids strictly increasing, or with tsfield, newest
 * first by (tsfield, id). */
static int walk(fx *f, const char *token, const char *path, const char *tsfield, int *pages) {
    char url[1024], *cursor = NULL;
    int n = 0;
    long long last_ts = INT64_MAX, last_id = tsfield ? INT64_MAX : 0;
    *pages = 0;
    for (;;) {
        snprintf(url, sizeof url, "%s%s%s", path, cursor ? "&cursor=" : "", cursor ? cursor : "");
        free(cursor);
        json_t *j = get(f, token, url, 200);
        json_t *it;
        size_t i;
        json_array_foreach(json_object_get(j, "items"), i, it) {
            long long id = json_integer_value(json_object_get(it, "id"));
            if (tsfield) {
                long long ts = json_integer_value(json_object_get(it, tsfield));
                assert_true(ts < last_ts || (ts == last_ts && id < last_id));
                last_ts = ts;
            } else {
                assert_true(id > last_id);
            }
            last_id = id;
            n++;
        }
        (*pages)++;
        json_t *next = json_object_get(j, "next_cursor");
        cursor = json_is_string(next) ? strdup(json_string_value(next)) : NULL;
        json_decref(j);
        if (!cursor) break;
        assert_true(*pages < 100);
    }
    return n;
}

static json_t *item_by_id(json_t *list, json_int_t id) {
    json_t *it;
    size_t i;
    json_array_foreach(json_object_get(list, "items"), i, it) {
        if (json_integer_value(json_object_get(it, "id")) == id) return it;
    }
    return NULL;
}

/* ---- customers ---- */

static void test_customers_pagination(void **state) {
    fx *f = *state;
    int pages;
    assert_int_equal(walk(f, f->admin, "/api/v1/customers?limit=50", NULL, &pages), 124);
    assert_int_equal(pages, 3);
    assert_int_equal(walk(f, f->admin, "/api/v1/customers?limit=500", NULL, &pages), 124);
    assert_int_equal(pages, 1);
    /* Default page size is 50. */
    json_t *j = get(f, f->operator_, "/api/v1/customers", 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 50);
    assert_true(json_is_string(json_object_get(j, "next_cursor")));
    json_decref(j);
    /* An exact multiple of the limit ends with a null cursor, not an empty page. */
    assert_int_equal(walk(f, f->admin, "/api/v1/customers?limit=4&q=wmA", NULL, &pages), 4);
    assert_int_equal(pages, 1);
    assert_int_equal(walk(f, f->admin, "/api/v1/customers?limit=2&q=wmA", NULL, &pages), 4);
    assert_int_equal(pages, 2);
}

static void test_customer_list_item(void **state) {
    fx *f = *state;
    json_t *j = get(f, f->admin, "/api/v1/customers?limit=10", 200);
    json_t *c = item_by_id(j, 1000);
    assert_non_null(c);
    assert_string_equal(json_string_value(json_object_get(c, "external_userid")), "wmA1");
    assert_string_equal(json_string_value(json_object_get(c, "name")), "Zhang San");
    assert_int_equal(json_integer_value(json_object_get(c, "gender")), 1);
    assert_string_equal(json_string_value(json_object_get(c, "status")), "active");
    assert_int_equal(json_integer_value(json_object_get(c, "first_added_at")), 1700000050);
    assert_int_equal(json_integer_value(json_object_get(c, "created_at")), 1700000050);
    assert_int_equal(json_integer_value(json_object_get(c, "active_relationships")), 1);
    json_t *tags = json_object_get(c, "tags");
    assert_int_equal(json_array_size(tags), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(tags, 0), "id")), 300);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tags, 0), "name")), "VIP");
    json_t *lost = item_by_id(j, 1002);
    assert_string_equal(json_string_value(json_object_get(lost, "status")), "lost");
    assert_int_equal(json_integer_value(json_object_get(lost, "active_relationships")), 0);
    json_decref(j);
}

static void test_customer_filters(void **state) {
    fx *f = *state;
    expect_ids(f, f->admin, "/api/v1/customers?employee=alice", "1000");
    expect_ids(f, f->admin, "/api/v1/customers?employee=101", "1000");
    expect_ids(f, f->admin, "/api/v1/customers?employee=carol", "1003");
    expect_ids(f, f->admin,
               "/api/v1/customers?employee=bob&relationship_status=deleted_by_customer", "1000");
    expect_ids(f, f->admin, "/api/v1/customers?status=lost", "1002");
    expect_ids(f, f->admin, "/api/v1/customers?tag=300", "1000");
    expect_ids(f, f->admin, "/api/v1/customers?tag=301", "1000,1003");
    expect_ids(f, f->admin, "/api/v1/customers?tag=301&status=active&employee=carol", "1003");
    expect_ids(f, f->admin, "/api/v1/customers?relationship_status=transferred", "1003");
    expect_ids(f, f->admin, "/api/v1/customers?relationship_status=deleted_by_employee", "1002");
    expect_ids(f, f->admin, "/api/v1/customers?added_after=1700000100&added_before=1700000450",
               "1000,1001,1002");
    expect_ids(f, f->admin, "/api/v1/customers?added_after=1700000450&added_before=1700001000",
               "1003");
    expect_ids(f, f->admin, "/api/v1/customers?q=Zh", "1000,1003");
    expect_ids(f, f->admin, "/api/v1/customers?q=zhang", "1000");
    expect_ids(f, f->admin, "/api/v1/customers?q=wmA", "1000,1001,1002,1003");
    expect_ids(f, f->admin, "/api/v1/customers?q=Wang_", "1002");
    expect_ids(f, f->admin, "/api/v1/customers?q=W%25", "");   /* % is literal */
    expect_ids(f, f->admin, "/api/v1/customers?q=Zhang_", ""); /* _ is literal */
    expect_ids(f, f->admin, "/api/v1/customers?status=lost&q=Zh", "");
    /* Same values in tenant B resolve to tenant B's rows only. */
    expect_ids(f, f->admin_b, "/api/v1/customers", "1500");
    expect_ids(f, f->admin_b, "/api/v1/customers?employee=alice", "1500");
    expect_ids(f, f->admin_b, "/api/v1/customers?q=wmA1", "1500");
}

static void test_customer_bad_params(void **state) {
    fx *f = *state;
    bad(f, f->admin, "/api/v1/customers?status=gone", "status");
    bad(f, f->admin, "/api/v1/customers?status=", "status");
    bad(f, f->admin, "/api/v1/customers?relationship_status=friends", "relationship_status");
    bad(f, f->admin, "/api/v1/customers?tag=abc", "tag");
    bad(f, f->admin, "/api/v1/customers?tag=0", "tag");
    bad(f, f->admin, "/api/v1/customers?tag=310", "tag"); /* tenant B's tag */
    bad(f, f->admin, "/api/v1/customers?employee=nobody", "employee");
    bad(f, f->admin, "/api/v1/customers?employee=200", "employee"); /* tenant B's employee */
    bad(f, f->admin, "/api/v1/customers?added_after=-5", "added_after");
    bad(f, f->admin, "/api/v1/customers?added_before=soon", "added_before");
    bad(f, f->admin, "/api/v1/customers?added_after=10&added_before=10", "added_before");
    bad(f, f->admin, "/api/v1/customers?added_after=99999999999999999999", "added_after");
    bad(f, f->admin, "/api/v1/customers?limit=0", "limit");
    bad(f, f->admin, "/api/v1/customers?limit=501", "limit");
    bad(f, f->admin, "/api/v1/customers?limit=ten", "limit");
    bad(f, f->admin, "/api/v1/customers?cursor=zz", "cursor");
    bad(f, f->admin, "/api/v1/customers?cursor=", "cursor");
    char q[128] = "/api/v1/customers?q=";
    memset(q + strlen(q), 'a', 65);
    bad(f, f->admin, q, "q");
    /* A cursor of another list is rejected. */
    json_t *ev = get(f, f->admin, "/api/v1/customers/1000/events?limit=1", 200);
    char url[512];
    snprintf(url, sizeof url, "/api/v1/customers?cursor=%s",
             json_string_value(json_object_get(ev, "next_cursor")));
    json_decref(ev);
    bad(f, f->admin, url, "cursor");
}

static void test_customer_list_scope(void **state) {
    fx *f = *state;
    expect_ids(f, f->alice, "/api/v1/customers", "1000");
    expect_ids(f, f->manager, "/api/v1/customers", "1000,1003");
    /* Filters narrow the scope, never widen it. */
    expect_ids(f, f->alice, "/api/v1/customers?employee=bob", "");
    expect_ids(f, f->alice, "/api/v1/customers?status=lost", "");
    expect_ids(f, f->manager, "/api/v1/customers?tag=301", "1000,1003");
    int pages;
    assert_int_equal(walk(f, f->bob, "/api/v1/customers?limit=50", NULL, &pages), 121);
    expect_ids(f, f->bob, "/api/v1/customers?relationship_status=deleted_by_customer", "");
}

/* ---- the 360 view ---- */

static json_t *first_where(json_t *arr, const char *key, json_int_t v) {
    json_t *it;
    size_t i;
    json_array_foreach(arr, i, it) {
        if (json_integer_value(json_object_get(it, key)) == v) return it;
    }
    return NULL;
}

static void test_customer_360(void **state) {
    fx *f = *state;
    json_t *j = get(f, f->admin, "/api/v1/customers/1000", 200);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 1000);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "active");
    assert_int_equal(json_array_size(json_object_get(j, "identities")), 2);
    assert_int_equal(json_array_size(json_object_get(j, "truncated")), 0);
    json_t *rels = json_object_get(j, "relationships");
    assert_int_equal(json_array_size(rels), 2);
    json_t *r1 = first_where(rels, "id", 1);
    assert_string_equal(json_string_value(json_object_get(r1, "status")), "active");
    assert_string_equal(json_string_value(json_object_get(r1, "state")), "store_qr");
    assert_string_equal(json_string_value(json_object_get(r1, "remark")), "vip from store");
    assert_int_equal(json_integer_value(json_object_get(r1, "add_way")), 1);
    assert_int_equal(json_integer_value(json_object_get(r1, "added_at")), 1700000100);
    json_t *emp = json_object_get(r1, "employee");
    assert_int_equal(json_integer_value(json_object_get(emp, "id")), 101);
    assert_string_equal(json_string_value(json_object_get(emp, "userid")), "alice");
    assert_string_equal(json_string_value(json_object_get(emp, "name")), "Alice");
    json_t *r2 = first_where(rels, "id", 2);
    assert_string_equal(json_string_value(json_object_get(r2, "end_reason")), "customer deleted");
    assert_int_equal(json_integer_value(json_object_get(r2, "ended_at")), 1700000090);
    json_t *tags = json_object_get(j, "tags");
    assert_int_equal(json_array_size(tags), 2);
    json_t *vip = first_where(tags, "id", 300);
    assert_string_equal(json_string_value(json_object_get(vip, "source")), "manual");
    assert_int_equal(json_integer_value(json_object_get(vip, "created_at")), 1700000150);
    assert_string_equal(json_string_value(json_object_get(json_object_get(vip, "group"), "name")),
                        "Level");
    assert_true(json_is_null(json_object_get(first_where(tags, "id", 301), "group")));
    json_t *groups = json_object_get(j, "groups");
    assert_int_equal(json_array_size(groups), 2);
    json_t *g500 = first_where(groups, "id", 500);
    assert_string_equal(json_string_value(json_object_get(g500, "chat_id")), "wrA");
    assert_string_equal(json_string_value(json_object_get(g500, "status")), "in");
    json_t *g501 = first_where(groups, "id", 501);
    assert_string_equal(json_string_value(json_object_get(g501, "status")), "left");
    assert_int_equal(json_integer_value(json_object_get(g501, "left_at")), 1700000300);
    json_t *events = json_object_get(j, "events");
    assert_int_equal(json_array_size(events), 20);
    json_t *e0 = json_array_get(events, 0);
    assert_int_equal(json_integer_value(json_object_get(e0, "id")), 30);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(e0, "props"), "n")), 30);
    assert_string_equal(json_string_value(json_object_get(e0, "source")), "wecom");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(events, 1), "id")), 29);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_array_get(events, 1), "employee"), "id")),
                     101);
    assert_true(json_is_null(json_object_get(e0, "employee")));
    assert_true(json_is_string(json_object_get(j, "events_next_cursor")));
    json_decref(j);
}

static void test_customer_360_scope(void **state) {
    fx *f = *state;
    /* An employee sees only their own relationship of a shared customer. */
    json_t *j = get(f, f->alice, "/api/v1/customers/1000", 200);
    json_t *rels = json_object_get(j, "relationships");
    assert_int_equal(json_array_size(rels), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rels, 0), "id")), 1);
    json_decref(j);
    json_decref(get(f, f->alice, "/api/v1/customers/1001", 404));
    json_decref(get(f, f->alice, "/api/v1/customers/1002", 404)); /* relationship ended */
    json_decref(get(f, f->manager, "/api/v1/customers/1003", 200));
    json_decref(get(f, f->manager, "/api/v1/customers/1001", 404));
    json_decref(get(f, f->admin_b, "/api/v1/customers/1000", 404));
    json_decref(get(f, f->admin, "/api/v1/customers/1500", 404));
    json_decref(get(f, f->admin, "/api/v1/customers/999999", 404));
    json_decref(get(f, f->admin, "/api/v1/customers/abc", 404));
    json_decref(get(f, f->admin, "/api/v1/customers/-1", 404));
    json_decref(get(f, f->platform, "/api/v1/customers/1000", 403));
    j = get(f, f->admin_b, "/api/v1/customers/1500", 200);
    assert_int_equal(json_array_size(json_object_get(j, "groups")), 1);
    assert_int_equal(json_array_size(json_object_get(j, "events")), 1);
    json_decref(j);
}

/* ---- timeline ---- */

static void test_customer_events(void **state) {
    fx *f = *state;
    int pages;
    assert_int_equal(walk(f, f->admin, "/api/v1/customers/1000/events?limit=7", "ts", &pages), 30);
    assert_int_equal(pages, 5);
    json_t *all = get(f, f->admin, "/api/v1/customers/1000/events?limit=500", 200);
    json_t *e2 = item_by_id(all, 2);
    assert_string_equal(json_string_value(json_object_get(e2, "props")), "not json");
    json_decref(all);
    json_t *j = get(f, f->admin, "/api/v1/customers/1000/events?type=order&limit=500", 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 10);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "items"), 0), "type")),
        "order");
    json_decref(j);
    json_decref(get(f, f->alice, "/api/v1/customers/1000/events", 200));
    json_decref(get(f, f->alice, "/api/v1/customers/1001/events", 404));
    json_decref(get(f, f->admin_b, "/api/v1/customers/1000/events", 404));
    bad(f, f->admin, "/api/v1/customers/1000/events?limit=0", "limit");
    bad(f, f->admin, "/api/v1/customers/1000/events?cursor=6576", "cursor");
    char big[200] = "/api/v1/customers/1000/events?type=";
    memset(big + strlen(big), 't', 65);
    bad(f, f->admin, big, "type");
}

/* ---- relationships ---- */

static void test_relationships(void **state) {
    fx *f = *state;
    int pages;
    assert_int_equal(walk(f, f->admin, "/api/v1/relationships?limit=100", NULL, &pages), 126);
    assert_int_equal(pages, 2);
    expect_ids(f, f->admin, "/api/v1/relationships?customer=1000", "1,2");
    expect_ids(f, f->admin, "/api/v1/relationships?customer=1003&status=active", "5");
    expect_ids(f, f->admin, "/api/v1/relationships?employee=alice", "1,4");
    expect_ids(f, f->admin, "/api/v1/relationships?state=ad", "2,3");
    expect_ids(f, f->admin, "/api/v1/relationships?status=transferred", "6");
    expect_ids(f, f->admin,
               "/api/v1/relationships?added_after=1700000100&added_before=1700000300&limit=10",
               "1,3");
    json_t *j = get(f, f->admin, "/api/v1/relationships?customer=1000", 200);
    json_t *r1 = item_by_id(j, 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r1, "customer"), "id")),
                     1000);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r1, "employee"), "userid")), "alice");
    json_decref(j);
    /* Scope: an employee sees their own (ended ones too), a manager the team's. */
    expect_ids(f, f->alice, "/api/v1/relationships", "1,4");
    expect_ids(f, f->alice, "/api/v1/relationships?employee=bob", "");
    expect_ids(f, f->manager, "/api/v1/relationships", "1,4,5");
    expect_ids(f, f->admin_b, "/api/v1/relationships", "7");
    expect_ids(f, f->admin_b, "/api/v1/relationships?customer=1000", "");
    bad(f, f->admin, "/api/v1/relationships?status=lost", "status");
    bad(f, f->admin, "/api/v1/relationships?customer=x", "customer");
    bad(f, f->admin, "/api/v1/relationships?employee=ghost", "employee");
    bad(f, f->admin, "/api/v1/relationships?added_before=-1", "added_before");
}

/* ---- group chats ---- */

static void test_group_chats(void **state) {
    fx *f = *state;
    expect_ids(f, f->admin, "/api/v1/group-chats", "500,501,502,503");
    expect_ids(f, f->admin, "/api/v1/group-chats?status=dismissed", "502");
    expect_ids(f, f->admin, "/api/v1/group-chats?owner=bob", "501,503");
    expect_ids(f, f->alice, "/api/v1/group-chats", "500,503");
    expect_ids(f, f->bob, "/api/v1/group-chats", "501,503");
    expect_ids(f, f->manager, "/api/v1/group-chats", "500,502");
    expect_ids(f, f->admin_b, "/api/v1/group-chats", "600");
    int pages;
    assert_int_equal(walk(f, f->admin, "/api/v1/group-chats?limit=1", NULL, &pages), 4);
    assert_int_equal(pages, 4);
    bad(f, f->admin, "/api/v1/group-chats?status=open", "status");
    bad(f, f->admin, "/api/v1/group-chats?limit=1000", "limit");

    json_t *j = get(f, f->admin, "/api/v1/group-chats/500", 200);
    assert_string_equal(json_string_value(json_object_get(j, "chat_id")), "wrA");
    assert_string_equal(json_string_value(json_object_get(j, "owner_userid")), "alice");
    assert_int_equal(json_integer_value(json_object_get(j, "member_count")), 2);
    json_t *members = json_object_get(j, "members");
    assert_int_equal(json_array_size(members), 2);
    json_t *m0 = json_array_get(members, 0), *m1 = json_array_get(members, 1);
    assert_string_equal(json_string_value(json_object_get(m0, "type")), "employee");
    assert_int_equal(json_integer_value(json_object_get(m0, "employee_id")), 101);
    assert_string_equal(json_string_value(json_object_get(m1, "type")), "customer");
    assert_int_equal(json_integer_value(json_object_get(m1, "customer_id")), 1000);
    assert_string_equal(json_string_value(json_object_get(m1, "status")), "in");
    assert_int_equal(json_integer_value(json_object_get(m1, "join_scene")), 3);
    assert_int_equal(json_integer_value(json_object_get(m1, "joined_at")), 1700000110);
    assert_true(json_is_null(json_object_get(j, "members_next_cursor")));
    json_decref(j);

    j = get(f, f->admin, "/api/v1/group-chats/501/members?limit=1", 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
    const char *cur = json_string_value(json_object_get(j, "next_cursor"));
    assert_non_null(cur);
    char url[512];
    snprintf(url, sizeof url, "/api/v1/group-chats/501/members?limit=1&cursor=%s", cur);
    json_decref(j);
    j = get(f, f->admin, url, 200);
    json_t *left = json_array_get(json_object_get(j, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(left, "status")), "left");
    assert_int_equal(json_integer_value(json_object_get(left, "left_at")), 1700000300);
    assert_true(json_is_null(json_object_get(j, "next_cursor")));
    json_decref(j);

    json_decref(get(f, f->alice, "/api/v1/group-chats/503", 200));
    json_decref(get(f, f->alice, "/api/v1/group-chats/501", 404));
    json_decref(get(f, f->alice, "/api/v1/group-chats/501/members", 404));
    json_decref(get(f, f->manager, "/api/v1/group-chats/502", 200));
    json_decref(get(f, f->manager, "/api/v1/group-chats/503", 404));
    json_decref(get(f, f->admin_b, "/api/v1/group-chats/500", 404));
    json_decref(get(f, f->admin, "/api/v1/group-chats/600", 404));
    json_decref(get(f, f->admin, "/api/v1/group-chats/600/members", 404));
}

/* ---- audit log ---- */

static void test_audit_log(void **state) {
    fx *f = *state;
    int pages;
    /* 12 fixture rows, tenant.create, one token.create per CLI token of A (5). */
    assert_int_equal(walk(f, f->admin, "/api/v1/audit-log?limit=5", "created_at", &pages), 18);
    assert_int_equal(pages, 4);
    json_t *j = get(f, f->admin, "/api/v1/audit-log?action=customer.export", 200);
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 3);
    json_t *a0 = json_array_get(items, 0);
    assert_int_equal(json_integer_value(json_object_get(a0, "created_at")), 1700001200);
    assert_int_equal(json_integer_value(json_object_get(a0, "count")), 12);
    assert_string_equal(json_string_value(json_object_get(a0, "actor")), "token:1");
    assert_string_equal(json_string_value(json_object_get(a0, "target")), "customer:1000");
    json_decref(j);
    j = get(f, f->admin, "/api/v1/audit-log?action=tag.add&since=1700000900&limit=500", 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 3); /* 9, 10, 11 */
    json_decref(j);
    j = get(f, f->admin, "/api/v1/audit-log?action=tenant_b.secret", 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
    json_decref(j);
    json_decref(get(f, f->operator_, "/api/v1/audit-log", 403));
    json_decref(get(f, f->manager, "/api/v1/audit-log", 403));
    json_decref(get(f, f->alice, "/api/v1/audit-log", 403));
    json_decref(get(f, f->platform, "/api/v1/audit-log", 403));
    json_decref(get(f, NULL, "/api/v1/audit-log", 401));
    bad(f, f->admin, "/api/v1/audit-log?since=yesterday", "since");
    bad(f, f->admin, "/api/v1/audit-log?limit=-3", "limit");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_customers_pagination),
        cmocka_unit_test(test_customer_list_item),
        cmocka_unit_test(test_customer_filters),
        cmocka_unit_test(test_customer_bad_params),
        cmocka_unit_test(test_customer_list_scope),
        cmocka_unit_test(test_customer_360),
        cmocka_unit_test(test_customer_360_scope),
        cmocka_unit_test(test_customer_events),
        cmocka_unit_test(test_relationships),
        cmocka_unit_test(test_group_chats),
        cmocka_unit_test(test_audit_log),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
