/* test_api_segment.c — segments as users get them, against the real server:
 * count / list / breakdown / export (CSV, xlsx, hashed phones) of ad-hoc
 * expressions and saved segments, the data scope of every role in every
 * operation, parse errors (400 with the caret message), saved segment CRUD,
 * customer fields (region, stage, phone: validation, masking, audit), the
 * customers list filtered by a segment, read-after-write (tag through the
 * API, then count), and an export whose client goes away.
 *
 * Fixture (tenant A = 1): departments HQ(10) > East(11) > Shanghai(12),
 * HQ > West(13); employees mgr (100, East; the manager token), alice (101,
 * Shanghai), bob (102, West). Customers: 1000 (alice, VIP, 上海, phone
 * 13800138000, female, orders 500 yuan), 1001 (bob, VIP, 北京, phone
 * 15912345678, orders 1500), 1002 (alice, New), 1003 (bob, orders 20) and
 * BULK customers 2000.. with alice, tagged VIP (names 300 characters long,
 * so that a CSV of them outgrows the buffers between the export and a
 * client that does not read). Tenant B (2): customer 1500
 * tagged its own VIP. So tag("VIP") is 2 + BULK for the admin, 1 + BULK for
 * alice and the manager, 1 for bob, 1 for tenant B's admin. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testlib.h"

#define BULK 20000
#define VIP_ALL (2 + BULK)
#define VIP_ALICE (1 + BULK)
#define XSTR(x) #x
#define STR(x) XSTR(x)

/* clang-format off */
static const char fixture_sql[] =
    "INSERT INTO department(id,tenant_id,name,parent_id,created_at,updated_at) VALUES"
    " (10,1,'HQ',NULL,1,1),(11,1,'East',10,1,1),(12,1,'Shanghai',11,1,1),(13,1,'West',10,1,1),"
    " (20,2,'HQ',NULL,1,1);"
    "INSERT INTO employee(id,tenant_id,userid,name,department_id,created_at,updated_at) VALUES"
    " (100,1,'mgr','Manager',11,1,1),(101,1,'alice','Alice',12,1,1),(102,1,'bob','Bob',13,1,1),"
    " (200,2,'alice','Alice B',20,1,1);"
    "INSERT INTO customer(id,tenant_id,external_userid,name,gender,region,stage,phone,"
    "first_added_at,created_at,updated_at) VALUES"
    " (1000,1,'wm1000','Zhang, \"San\"',2,'上海','vip','13800138000',1700000000,1,1),"
    " (1001,1,'wm1001','Li Si',1,'北京','lead','15912345678',1700000100,1,1),"
    " (1002,1,'wm1002','Wang Wu',1,NULL,NULL,NULL,1700000200,1,1),"
    " (1003,1,'wm1003','Zhao Liu',0,NULL,NULL,NULL,1700000300,1,1),"
    " (1500,2,'wm1500','B One',1,NULL,NULL,'13700137000',1700000000,1,1);"
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i<" STR(BULK) "-1)"
    " INSERT INTO customer(id,tenant_id,external_userid,name,first_added_at,created_at,"
    "updated_at) SELECT 2000+i,1,'wmBulk'||i,'Bulk '||i||' '||hex(zeroblob(150)),"
    "1700001000+i,1,1 FROM n;"
    "INSERT INTO relationship(id,tenant_id,customer_id,employee_id,status,state,added_at,"
    "updated_at) VALUES (1,1,1000,101,'active','store',10,10),(2,1,1001,102,'active','ad',10,10),"
    " (3,1,1002,101,'active','store',10,10),(4,1,1003,102,'active',NULL,10,10),"
    " (5,2,1500,200,'active',NULL,10,10);"
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i<" STR(BULK) "-1)"
    " INSERT INTO relationship(id,tenant_id,customer_id,employee_id,status,added_at,updated_at)"
    " SELECT 100+i,1,2000+i,101,'active',10,10 FROM n;"
    "INSERT INTO tag_group(id,tenant_id,name,created_at,updated_at) VALUES"
    " (1,1,'Level',1,1),(2,2,'Level',1,1);"
    "INSERT INTO tag(id,tenant_id,group_id,name,created_at,updated_at) VALUES"
    " (300,1,1,'VIP',1,1),(301,1,1,'New',1,1),(310,2,2,'VIP',1,1);"
    "INSERT INTO customer_tag(tenant_id,customer_id,tag_id,source,created_at) VALUES"
    " (1,1000,300,'manual',1),(1,1001,300,'manual',1),(1,1002,301,'manual',1),"
    " (2,1500,310,'manual',1);"
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i<" STR(BULK) "-1)"
    " INSERT INTO customer_tag(tenant_id,customer_id,tag_id,source,created_at)"
    " SELECT 1,2000+i,300,'manual',1 FROM n;"
    /* 501 more tags on 1003: lists cut a customer's tags at 500 */
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i<500)"
    " INSERT INTO tag(id,tenant_id,group_id,name,created_at,updated_at)"
    " SELECT 400+i,1,1,'T'||i,1,1 FROM n;"
    "INSERT INTO customer_tag(tenant_id,customer_id,tag_id,source,created_at)"
    " SELECT 1,1003,id,'manual',1 FROM tag WHERE id>=400;"
    "INSERT INTO event(tenant_id,customer_id,type,ts,source,props) VALUES"
    " (1,1000,'order',1700000500,'api','{\"amount\":500}'),"
    " (1,1001,'order',1700000600,'api','{\"amount\":1000}'),"
    " (1,1001,'order',1700000700,'api','{\"amount\":500}'),"
    " (1,1003,'order',1700000800,'api','{\"amount\":20}');";
/* clang-format on */

static t_roles *fx;

static int setup(void **state) {
    (void)state;
    return t_roles_start(&fx, fixture_sql, "mgr", "bob");
}

static int teardown(void **state) {
    (void)state;
    return t_roles_stop(fx) == 0 ? 0 : -1;
}

/* POST path with body as token; asserts the status; returns the JSON. */
static json_t *post(const char *path, const char *token, const char *body, long status) {
    return t_call(&fx->srv, "POST", path, token, body, status);
}

static long long count_of(const char *token, const char *expr_json) {
    char body[512];
    snprintf(body, sizeof body, "{\"expr\":%s}", expr_json);
    json_t *j = post("/api/v1/segments/count", token, body, 200);
    long long n = json_integer_value(json_object_get(j, "count"));
    json_decref(j);
    return n;
}

static void test_count_and_scope(void **state) {
    (void)state;
    const char *vip = "\"tag(\\\"VIP\\\")\"";
    assert_int_equal(count_of(fx->admin, vip), VIP_ALL);
    assert_int_equal(count_of(fx->operator_, vip), VIP_ALL);
    assert_int_equal(count_of(fx->manager, vip), VIP_ALICE); /* East includes Shanghai */
    assert_int_equal(count_of(fx->alice, vip), VIP_ALICE);
    assert_int_equal(count_of(fx->bob, vip), 1);
    assert_int_equal(count_of(fx->admin_b, vip), 1);
    /* empty expression: everyone in scope */
    assert_int_equal(count_of(fx->admin, "\"\""), 4 + BULK);
    assert_int_equal(count_of(fx->bob, "\"\""), 2);
    json_t *j = post("/api/v1/segments/count", fx->admin,
                     "{\"expr\":\"TAG( \\\"VIP\\\" )  AND NOT tag(\\\"New\\\")\"}", 200);
    assert_string_equal(json_string_value(json_object_get(j, "expr")),
                        "tag(\"VIP\") and not tag(\"New\")");
    assert_true(json_is_number(json_object_get(j, "elapsed_ms")));
    json_decref(j);
    /* the platform token sees no customers */
    t_resp r;
    assert_int_equal(
        t_api(&fx->srv, "POST", "/api/v1/segments/count", fx->platform, &r, "{s:s}", "expr", ""),
        0);
    t_expect_error(&r, 403, "forbidden", NULL);
}

static void test_parse_errors(void **state) {
    (void)state;
    json_t *j =
        post("/api/v1/segments/count", fx->admin, "{\"expr\":\"tag(\\\"VIP\\\" and x\"}", 400);
    t_assert_error(j, "invalid", "expr");
    json_t *e = json_object_get(j, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    assert_non_null(strstr(msg, "line 1, column 11"));
    assert_non_null(strstr(msg, "\n  tag(\"VIP\" and x\n"));
    assert_non_null(strstr(msg, "\n            ^")); /* the caret under "and" */
    assert_int_equal(json_integer_value(json_object_get(e, "line")), 1);
    assert_int_equal(json_integer_value(json_object_get(e, "column")), 11);
    json_decref(j);
    /* a name the tenant does not have */
    j = post("/api/v1/segments/count", fx->admin, "{\"expr\":\"tag(\\\"nosuch\\\")\"}", 400);
    t_assert_error(j, "invalid", "expr");
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(j, "error"), "message")), "nosuch"));
    json_decref(j);
    /* the same 400 from every operation */
    static const char *const paths[] = {"/api/v1/segments/list", "/api/v1/segments/export", NULL};
    for (int i = 0; paths[i]; i++) {
        j = post(paths[i], fx->alice, "{\"expr\":\"tags(1)\"}", 400);
        t_assert_error(j, "invalid", "expr");
        json_decref(j);
    }
    j = post("/api/v1/segments/breakdown", fx->alice, "{\"expr\":\"tag(\",\"by\":\"tag\"}", 400);
    t_assert_error(j, "invalid", "expr");
    json_decref(j);
    /* bad bodies */
    j = post("/api/v1/segments/count", fx->admin, "{\"expr\":\"\",\"segment_id\":1}", 400);
    json_decref(j);
    j = post("/api/v1/segments/list", fx->admin, "{\"sort\":\"name\"}", 400);
    json_decref(j);
    j = post("/api/v1/segments/list", fx->admin, "{\"limit\":1001}", 400);
    t_assert_error(j, "invalid", "limit");
    json_decref(j);
    j = post("/api/v1/segments/breakdown", fx->admin, "{\"by\":\"color\"}", 400);
    json_decref(j);
    j = post("/api/v1/segments/export", fx->admin, "{\"format\":\"pdf\"}", 400);
    json_decref(j);
}

/* Pages through a list and returns the ids in order (malloc'd, *n). */
static long long *list_all(const char *token, const char *extra, size_t limit, size_t *n) {
    long long *ids = NULL;
    *n = 0;
    char cursor[256] = "";
    for (int guard = 0; guard < 1000; guard++) {
        char body[1024];
        snprintf(body, sizeof body, "{%s%s\"limit\":%zu%s%s%s}", extra, *extra ? "," : "", limit,
                 cursor[0] ? ",\"cursor\":\"" : "", cursor, cursor[0] ? "\"" : "");
        json_t *j = post("/api/v1/segments/list", token, body, 200);
        json_t *items = json_object_get(j, "items");
        assert_true(json_array_size(items) <= limit);
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it) {
            ids = realloc(ids, (*n + 1) * sizeof *ids);
            ids[(*n)++] = json_integer_value(json_object_get(it, "id"));
        }
        const char *next = json_string_value(json_object_get(j, "next_cursor"));
        if (!next) {
            json_decref(j);
            return ids;
        }
        snprintf(cursor, sizeof cursor, "%s", next);
        json_decref(j);
    }
    fail_msg("list did not end");
    return ids;
}

static void test_list(void **state) {
    (void)state;
    size_t n;
    long long *ids = list_all(fx->admin, "\"expr\":\"tag(\\\"VIP\\\")\"", 1000, &n);
    assert_int_equal(n, VIP_ALL);
    assert_int_equal(ids[0], 1000);
    assert_int_equal(ids[1], 1001);
    for (size_t i = 1; i < n; i++)
        assert_true(ids[i] > ids[i - 1]);
    free(ids);
    ids = list_all(fx->bob, "\"expr\":\"\"", 1, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 1001);
    assert_int_equal(ids[1], 1003);
    free(ids);
    /* items carry the customer row */
    json_t *j = post("/api/v1/segments/list", fx->alice,
                     "{\"expr\":\"tag(\\\"VIP\\\")\",\"limit\":1}", 200);
    json_t *it = json_array_get(json_object_get(j, "items"), 0);
    assert_int_equal(json_integer_value(json_object_get(it, "id")), 1000);
    assert_string_equal(json_string_value(json_object_get(it, "name")), "Zhang, \"San\"");
    assert_string_equal(json_string_value(json_object_get(it, "region")), "上海");
    assert_string_equal(json_string_value(json_object_get(it, "phone")), "138****8000");
    assert_non_null(json_string_value(json_object_get(j, "next_cursor")));
    json_decref(j);
    /* a cursor of another sort is refused */
    j = post("/api/v1/segments/list", fx->admin, "{\"limit\":1}", 200);
    char body[512];
    snprintf(body, sizeof body, "{\"sort\":\"spent\",\"cursor\":\"%s\"}",
             json_string_value(json_object_get(j, "next_cursor")));
    json_decref(j);
    j = post("/api/v1/segments/list", fx->admin, body, 400);
    t_assert_error(j, "invalid", NULL);
    json_decref(j);
}

static void test_list_sorted(void **state) {
    (void)state;
    /* spent: 1001 1500, 1000 500, 1003 20; the others have none */
    json_t *j =
        post("/api/v1/segments/list", fx->admin,
             "{\"expr\":\"spent > 0\",\"sort\":\"spent\",\"order\":\"desc\",\"limit\":2}", 200);
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 0), "id")), 1001);
    assert_true(json_real_value(json_object_get(json_array_get(items, 0), "sort_value")) == 1500.0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 1), "id")), 1000);
    char body[512];
    snprintf(body, sizeof body,
             "{\"expr\":\"spent > 0\",\"sort\":\"spent\",\"order\":\"desc\",\"limit\":2,"
             "\"cursor\":\"%s\"}",
             json_string_value(json_object_get(j, "next_cursor")));
    json_decref(j);
    j = post("/api/v1/segments/list", fx->admin, body, 200);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 0), "id")), 1003);
    assert_true(json_is_null(json_object_get(j, "next_cursor")));
    json_decref(j);
    /* ascending, within bob's scope */
    j = post("/api/v1/segments/list", fx->bob, "{\"sort\":\"spent\",\"order\":\"asc\"}", 200);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 0), "id")), 1003);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 1), "id")), 1001);
    json_decref(j);
}

/* The count of bucket name in a breakdown reply, or -1. */
static long long bucket(const json_t *j, const char *name) {
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(j, "items"), i, it) {
        if (!strcmp(json_string_value(json_object_get(it, "name")), name))
            return json_integer_value(json_object_get(it, "count"));
    }
    return -1;
}

static void test_breakdown(void **state) {
    (void)state;
    json_t *j = post("/api/v1/segments/breakdown", fx->admin,
                     "{\"expr\":\"tag(\\\"VIP\\\") or tag(\\\"New\\\")\",\"by\":\"tag\"}", 200);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), VIP_ALL + 1);
    assert_int_equal(bucket(j, "VIP"), VIP_ALL);
    assert_int_equal(bucket(j, "New"), 1);
    json_t *first = json_array_get(json_object_get(j, "items"), 0);
    assert_int_equal(json_integer_value(json_object_get(first, "id")), 300);
    json_decref(j);
    j = post("/api/v1/segments/breakdown", fx->bob, "{\"by\":\"tag\",\"top\":5}", 200);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 2);
    assert_int_equal(bucket(j, "VIP"), 1);
    assert_int_equal(bucket(j, "New"), -1);
    json_decref(j);
    j = post("/api/v1/segments/breakdown", fx->admin, "{\"by\":\"employee\",\"top\":1}", 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
    assert_int_equal(bucket(j, "Alice"), 2 + BULK);
    json_decref(j);
    j = post("/api/v1/segments/breakdown", fx->admin, "{\"by\":\"region\"}", 200);
    assert_int_equal(bucket(j, "上海"), 1);
    assert_int_equal(bucket(j, "北京"), 1);
    json_decref(j);
}

/* ---- downloads ---- */

typedef struct dl {
    char *buf;
    size_t len;
    size_t abort_after; /* 0 = read everything */
    char disposition[512];
    char ctype[512];
} dl;

static size_t dl_body(char *p, size_t sz, size_t n, void *u) {
    dl *d = u;
    d->buf = realloc(d->buf, d->len + sz * n + 1);
    memcpy(d->buf + d->len, p, sz * n);
    d->len += sz * n;
    d->buf[d->len] = 0;
    if (d->abort_after && d->len >= d->abort_after) return 0; /* hang up */
    return sz * n;
}

static size_t dl_header(char *p, size_t sz, size_t n, void *u) {
    dl *d = u;
    size_t len = sz * n;
    char line[512];
    snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), p);
    line[strcspn(line, "\r\n")] = 0;
    if (!strncasecmp(line, "Content-Disposition: ", 21))
        snprintf(d->disposition, sizeof d->disposition, "%s", line + 21);
    if (!strncasecmp(line, "Content-Type: ", 14))
        snprintf(d->ctype, sizeof d->ctype, "%s", line + 14);
    return len;
}

/* POSTs body to /segments/export; returns the HTTP status. */
static long download(const char *token, const char *body, dl *d) {
    CURL *c = curl_easy_init();
    char url[256], auth[256];
    snprintf(url, sizeof url, "%s/api/v1/segments/export", fx->srv.base);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, dl_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, dl_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, d);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!d->abort_after) assert_int_equal(rc, CURLE_OK);
    return status;
}

static size_t count_lines(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_export_csv(void **state) {
    (void)state;
    dl d = {0};
    assert_int_equal(download(fx->admin, "{\"expr\":\"tag(\\\"VIP\\\")\",\"format\":\"csv\"}", &d),
                     200);
    assert_non_null(strstr(d.disposition, "attachment; filename=\"segment-"));
    assert_non_null(strstr(d.disposition, ".csv\""));
    assert_non_null(strstr(d.ctype, "text/csv"));
    assert_memory_equal(d.buf,
                        "\xEF\xBB\xBFid,external_userid,name,gender,region,stage,"
                        "first_added_at,tags\r\n",
                        3 + 63);
    assert_non_null(strstr(d.buf, "\r\n1000,wm1000,\"Zhang, \"\"San\"\"\",female,上海,vip,"
                                  "2023-11-14T22:13:20Z,VIP\r\n1001,wm1001,Li Si,male,北京,"
                                  "lead,"));
    assert_int_equal(count_lines(d.buf), 1 + VIP_ALL);
    assert_null(strstr(d.buf, "13800138000")); /* no phones in a CSV */
    free(d.buf);

    /* bob's export holds bob's customers only */
    d = (dl){0};
    assert_int_equal(download(fx->bob, "{\"expr\":\"\"}", &d), 200);
    assert_int_equal(count_lines(d.buf), 3);
    assert_non_null(strstr(d.buf, "\r\n1001,"));
    assert_non_null(strstr(d.buf, "\r\n1003,"));
    assert_null(strstr(d.buf, "\r\n1000,"));
    free(d.buf);

    /* manager: alice's customers, not bob's */
    d = (dl){0};
    assert_int_equal(download(fx->manager, "{\"expr\":\"not tag(\\\"VIP\\\")\"}", &d), 200);
    assert_int_equal(count_lines(d.buf), 2);
    assert_non_null(strstr(d.buf, "\r\n1002,"));
    free(d.buf);

    /* every export is in the audit log with its count and format */
    assert_int_equal(t_sql_int(fx->dir,
                               "SELECT count FROM audit_log WHERE action='segment.export' AND "
                               "detail='format=csv' ORDER BY id LIMIT 1"),
                     VIP_ALL);
    assert_int_equal(
        t_sql_int(fx->dir, "SELECT count(*) FROM audit_log WHERE action='segment.export'"), 3);
}

static void test_export_phones(void **state) {
    (void)state;
    dl d = {0};
    assert_int_equal(
        download(fx->admin, "{\"expr\":\"tag(\\\"VIP\\\")\",\"format\":\"phone_md5\"}", &d), 200);
    /* printf %s 13800138000 | md5sum ; printf %s 15912345678 | md5sum */
    assert_string_equal(d.buf, "7945bd83237335e5376ff44d62e4f0ae\n"
                               "59ae27a8ac7ef3f74120391a3ecb185a\n");
    free(d.buf);
    d = (dl){0};
    assert_int_equal(
        download(fx->operator_, "{\"expr\":\"tag(1000000)\",\"format\":\"phone_sha256\"}", &d),
        400); /* an unknown tag id */
    free(d.buf);
    d = (dl){0};
    assert_int_equal(
        download(fx->operator_, "{\"expr\":\"tag(300)\",\"format\":\"phone_sha256\"}", &d), 200);
    assert_string_equal(d.buf,
                        "a6942f9771d67f34034d2f1926988ed3fad3bf1b4e7cedb9a31f31398dea43bc\n"
                        "6e097f6bb36921342f3ac028015db487e450172531ef36ac7483819a52f0b1f1\n");
    free(d.buf);
    /* employees and managers may not export phones */
    d = (dl){0};
    assert_int_equal(download(fx->alice, "{\"format\":\"phone_md5\"}", &d), 403);
    free(d.buf);
    d = (dl){0};
    assert_int_equal(download(fx->manager, "{\"format\":\"phone_sha256\"}", &d), 403);
    free(d.buf);
    /* the audit log never holds a phone */
    assert_int_equal(t_sql_int(fx->dir, "SELECT count(*) FROM audit_log WHERE detail LIKE "
                                        "'%%138%%' OR target LIKE '%%138%%'"),
                     0);
    assert_int_equal(t_sql_int(fx->dir, "SELECT count FROM audit_log WHERE action='segment.export' "
                                        "AND detail='format=phone_md5'"),
                     VIP_ALL);
}

static void test_export_xlsx(void **state) {
    (void)state;
    dl d = {0};
    assert_int_equal(download(fx->alice, "{\"expr\":\"tag(\\\"VIP\\\")\",\"format\":\"xlsx\"}", &d),
                     200);
    assert_true(d.len > 1000);
    assert_memory_equal(d.buf, "PK\x03\x04", 4);
    assert_non_null(strstr(d.disposition, ".xlsx\""));
    assert_non_null(strstr(d.ctype, "spreadsheetml"));
    char path[512], cmd[600];
    snprintf(path, sizeof path, "%s/alice.xlsx", fx->dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(d.buf, 1, d.len, f);
    fclose(f);
    free(d.buf);
    snprintf(cmd, sizeof cmd, "unzip -p '%s' xl/worksheets/sheet1.xml | grep -o '<row ' | wc -l",
             path);
    FILE *p = popen(cmd, "r");
    char out[32] = "";
    assert_non_null(fgets(out, sizeof out, p));
    pclose(p);
    assert_int_equal(atoi(out), 1 + VIP_ALICE); /* header + alice's VIPs */
}

/* A client that hangs up mid-export: the server stops the export, removes
 * its temporary file and keeps serving. */
static void test_export_disconnect(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++) {
        dl d = {.abort_after = 4096};
        download(fx->admin, i == 1 ? "{\"format\":\"xlsx\"}" : "{\"format\":\"csv\"}", &d);
        assert_true(d.len >= 4096);
        free(d.buf);
    }
    json_t *j = t_call(&fx->srv, "GET", "/healthz", NULL, NULL, 200);
    json_decref(j);
    assert_int_equal(count_of(fx->admin, "\"tag(\\\"VIP\\\")\""), VIP_ALL);
    /* and a full export still works afterwards */
    dl d = {0};
    assert_int_equal(download(fx->admin, "{\"format\":\"csv\"}", &d), 200);
    assert_int_equal(count_lines(d.buf), 1 + 4 + BULK);
    free(d.buf);
}

/* A raw connection that asks for an export and then reads nothing. */
static int stalled_export(const char *token) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx->srv.port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *body = "{\"format\":\"csv\"}";
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /api/v1/segments/export HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                     "%s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     token, strlen(body), body);
    assert_int_equal(write(fd, req, (size_t)n), n);
    return fd;
}

/* At most EXPORT_MAX_RUNNING (8) exports at once: the next gets 429 until
 * one ends (here: its client hangs up). */
static void test_export_limit(void **state) {
    (void)state;
    long long audited =
        t_sql_int(fx->dir, "SELECT count(*) FROM audit_log WHERE action='segment.export'");
    int fds[8];
    for (int i = 0; i < 8; i++)
        fds[i] = stalled_export(fx->admin);
    /* each is audited once it holds its slot */
    for (int tries = 0; tries < 200; tries++) {
        if (t_sql_int(fx->dir, "SELECT count(*) FROM audit_log WHERE action='segment.export'") ==
            audited + 8)
            break;
        usleep(50000);
    }
    assert_int_equal(
        t_sql_int(fx->dir, "SELECT count(*) FROM audit_log WHERE action='segment.export'"),
        audited + 8);
    dl d = {0};
    assert_int_equal(download(fx->admin, "{\"format\":\"csv\"}", &d), 429);
    free(d.buf);
    for (int i = 0; i < 8; i++)
        close(fds[i]);
    long st = 0;
    for (int tries = 0; tries < 200 && st != 200; tries++) {
        usleep(100000);
        d = (dl){0};
        st = download(fx->alice, "{\"expr\":\"tag(\\\"New\\\")\"}", &d);
        free(d.buf);
    }
    assert_int_equal(st, 200);
}

static void test_saved_segments(void **state) {
    (void)state;
    json_t *j =
        post("/api/v1/segments", fx->admin,
             "{\"name\":\"VIPs\",\"expr\":\"tag(\\\"VIP\\\")\",\"description\":\"all\"}", 201);
    long long id = json_integer_value(json_object_get(j, "id"));
    assert_true(id > 0);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), VIP_ALL);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "VIPs");
    json_decref(j);
    /* unique names; parse errors; roles */
    j = post("/api/v1/segments", fx->operator_, "{\"name\":\"VIPs\",\"expr\":\"tag(1)\"}", 409);
    t_assert_error(j, "conflict", "name");
    json_decref(j);
    j = post("/api/v1/segments", fx->admin, "{\"name\":\"Bad\",\"expr\":\"tag(1) tag(2)\"}", 400);
    t_assert_error(j, "invalid", "expr");
    assert_non_null(
        strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "^"));
    json_decref(j);
    j = post("/api/v1/segments", fx->alice, "{\"name\":\"Mine\",\"expr\":\"\"}", 403);
    json_decref(j);
    j = post("/api/v1/segments", fx->admin, "{\"name\":\"a\\u0007b\",\"expr\":\"\"}", 400);
    t_assert_error(j, "invalid", "name");
    json_decref(j);
    /* tenant B may reuse the name */
    j = post("/api/v1/segments", fx->admin_b, "{\"name\":\"VIPs\",\"expr\":\"tag(\\\"VIP\\\")\"}",
             201);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 1);
    long long id_b = json_integer_value(json_object_get(j, "id"));
    json_decref(j);

    /* live counts in each reader's scope */
    char path[64];
    snprintf(path, sizeof path, "/api/v1/segments/%lld", id);
    j = t_call(&fx->srv, "GET", path, fx->alice, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), VIP_ALICE);
    json_decref(j);
    j = t_call(&fx->srv, "GET", "/api/v1/segments", fx->bob, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
    assert_int_equal(json_integer_value(
                         json_object_get(json_array_get(json_object_get(j, "items"), 0), "count")),
                     1);
    json_decref(j);
    snprintf(path, sizeof path, "/api/v1/segments/%lld", id_b);
    json_decref(t_call(&fx->srv, "GET", path, fx->admin, NULL, 404));

    /* operations by segment_id */
    char body[128];
    snprintf(body, sizeof body, "{\"segment_id\":%lld}", id);
    j = post("/api/v1/segments/count", fx->bob, body, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "segment_id")), id);
    json_decref(j);
    snprintf(body, sizeof body, "{\"segment_id\":%lld}", id_b);
    json_decref(post("/api/v1/segments/count", fx->admin, body, 404));

    /* edit, then delete */
    snprintf(path, sizeof path, "/api/v1/segments/%lld", id);
    j = t_call(&fx->srv, "PATCH", path, fx->operator_,
               "{\"name\":\"New ones\",\"expr\":\"tag(\\\"New\\\")\",\"description\":null}", 200);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "New ones");
    assert_true(json_is_null(json_object_get(j, "description")));
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 1);
    json_decref(j);
    json_decref(t_call(&fx->srv, "PATCH", path, fx->operator_, "{\"expr\":\"tag(\"}", 400));
    json_decref(t_call(&fx->srv, "PATCH", path, fx->manager, "{\"name\":\"x\"}", 403));
    json_decref(t_call(&fx->srv, "DELETE", path, fx->admin, NULL, 204));
    json_decref(t_call(&fx->srv, "GET", path, fx->admin, NULL, 404));
    json_decref(t_call(&fx->srv, "DELETE", path, fx->admin, NULL, 404));
    assert_int_equal(t_sql_int(fx->dir, "SELECT count(*) FROM audit_log WHERE action LIKE "
                                        "'segment.%%' AND action!='segment.export' AND "
                                        "tenant_id=1"),
                     3);
}

static void test_customer_fields(void **state) {
    (void)state;
    json_t *j =
        t_call(&fx->srv, "PATCH", "/api/v1/customers/1002", fx->operator_,
               "{\"region\":\"广东\",\"stage\":\"new\",\"phone\":\"+86 139-0000-1111\"}", 200);
    assert_string_equal(json_string_value(json_object_get(j, "region")), "广东");
    assert_string_equal(json_string_value(json_object_get(j, "phone")), "13900001111");
    json_decref(j);
    assert_string_equal(t_sql_text(fx->dir, "SELECT phone FROM customer WHERE id=1002"),
                        "13900001111");
    /* validation names the field */
    j = t_call(&fx->srv, "PATCH", "/api/v1/customers/1002", fx->admin, "{\"phone\":\"12345\"}",
               400);
    t_assert_error(j, "invalid", "phone");
    char *dump = json_dumps(j, 0);
    assert_null(strstr(dump, "12345")); /* not echoed */
    free(dump);
    json_decref(j);
    j = t_call(&fx->srv, "PATCH", "/api/v1/customers/1002", fx->admin, "{\"region\":\"a\\nb\"}",
               400);
    t_assert_error(j, "invalid", "region");
    json_decref(j);
    j = t_call(&fx->srv, "PATCH", "/api/v1/customers/1002", fx->admin,
               "{\"stage\":\"12345678901234567890123456789012345678901234567890123456789012345\"}",
               400);
    t_assert_error(j, "invalid", "stage");
    json_decref(j);
    json_decref(t_call(&fx->srv, "PATCH", "/api/v1/customers/1002", fx->admin, "{}", 400));
    json_decref(
        t_call(&fx->srv, "PATCH", "/api/v1/customers/1002", fx->alice, "{\"stage\":\"x\"}", 403));
    json_decref(
        t_call(&fx->srv, "PATCH", "/api/v1/customers/1500", fx->admin, "{\"stage\":\"x\"}", 404));
    json_decref(
        t_call(&fx->srv, "PATCH", "/api/v1/customers/424242", fx->admin, "{\"stage\":\"x\"}", 404));
    /* the 360 view: whole phone for the office, masked for the others */
    j = t_call(&fx->srv, "GET", "/api/v1/customers/1002", fx->admin, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "phone")), "13900001111");
    assert_string_equal(json_string_value(json_object_get(j, "stage")), "new");
    json_decref(j);
    j = t_call(&fx->srv, "GET", "/api/v1/customers/1002", fx->alice, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "phone")), "139****1111");
    assert_string_equal(json_string_value(json_object_get(j, "region")), "广东");
    json_decref(j);
    /* null clears */
    j = t_call(&fx->srv, "PATCH", "/api/v1/customers/1002", fx->admin, "{\"phone\":null}", 200);
    assert_true(json_is_null(json_object_get(j, "phone")));
    assert_string_equal(json_string_value(json_object_get(j, "stage")), "new");
    json_decref(j);
    /* audited without the values */
    assert_string_equal(t_sql_text(fx->dir, "SELECT group_concat(detail, '|') FROM (SELECT "
                                            "detail FROM audit_log WHERE action='customer.update' "
                                            "ORDER BY id)"),
                        "region,stage,phone|phone");
    /* the engine sees the new region and stage */
    assert_int_equal(count_of(fx->admin, "\"region = \\\"广东\\\" and stage = \\\"new\\\"\""), 1);
}

/* Tag a customer through the API: the very next count includes it. */
static void test_read_after_write(void **state) {
    (void)state;
    long long before = count_of(fx->admin, "\"tag(\\\"New\\\")\"");
    json_decref(post("/api/v1/tags/bulk", fx->admin,
                     "{\"action\":\"tag\",\"tag_ids\":[301],\"customer_ids\":[1003]}", 200));
    assert_int_equal(count_of(fx->admin, "\"tag(\\\"New\\\")\""), before + 1);
    assert_int_equal(count_of(fx->bob, "\"tag(\\\"New\\\")\""), 1);
    json_decref(post("/api/v1/tags/bulk", fx->bob,
                     "{\"action\":\"untag\",\"tag_ids\":[301],\"customer_ids\":[1003]}", 200));
    assert_int_equal(count_of(fx->bob, "\"tag(\\\"New\\\")\""), 0);
}

/* Ids of every page of GET path (a customers list). */
static size_t customers_ids(const char *token, const char *path, long long *ids, size_t max) {
    size_t n = 0;
    char url[1024], cursor[256] = "";
    for (int guard = 0; guard < 1000; guard++) {
        snprintf(url, sizeof url, "%s%s%s", path, cursor[0] ? "&cursor=" : "", cursor);
        json_t *j = t_call(&fx->srv, "GET", url, token, NULL, 200);
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(j, "items"), i, it) {
            if (n < max) ids[n] = json_integer_value(json_object_get(it, "id"));
            n++;
        }
        const char *next = json_string_value(json_object_get(j, "next_cursor"));
        if (!next) {
            json_decref(j);
            return n;
        }
        snprintf(cursor, sizeof cursor, "%s", next);
        json_decref(j);
    }
    fail_msg("list did not end");
    return n;
}

static void test_customers_filter(void **state) {
    (void)state;
    long long ids[8];
    /* tag("VIP") and not id-range noise: everything, paged 500 at a time */
    assert_int_equal(
        customers_ids(fx->admin, "/api/v1/customers?limit=500&segment=tag(%22VIP%22)", ids, 8),
        VIP_ALL);
    assert_int_equal(ids[0], 1000);
    assert_int_equal(ids[1], 1001);
    assert_int_equal(ids[2], 2000);
    /* combined with the other filters, and scoped */
    assert_int_equal(
        customers_ids(fx->admin, "/api/v1/customers?employee=bob&segment=tag(%22VIP%22)", ids, 8),
        1);
    assert_int_equal(ids[0], 1001);
    assert_int_equal(customers_ids(fx->bob, "/api/v1/customers?limit=1&segment=", ids, 8), 2);
    assert_int_equal(
        customers_ids(fx->alice, "/api/v1/customers?limit=3&segment=not%20tag(300)", ids, 8), 1);
    assert_int_equal(ids[0], 1002);
    /* items carry their tags (by id, cut at 500), one statement per page */
    json_t *j =
        t_call(&fx->srv, "GET", "/api/v1/customers?segment=not%20tag(300)", fx->bob, NULL, 200);
    json_t *it = json_array_get(json_object_get(j, "items"), 0);
    assert_int_equal(json_integer_value(json_object_get(it, "id")), 1003);
    json_t *tags = json_object_get(it, "tags");
    assert_int_equal(json_array_size(tags), 500);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(tags, 0), "id")), 400);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tags, 499), "name")),
                        "T499");
    assert_true(json_is_true(json_object_get(it, "tags_truncated")));
    json_decref(j);
    /* a filter that thins the segment out still ends */
    assert_int_equal(
        customers_ids(fx->admin, "/api/v1/customers?q=Li&segment=tag(%22VIP%22)", ids, 8), 1);
    /* errors */
    t_resp r;
    assert_int_equal(t_api(&fx->srv, "GET", "/api/v1/customers?segment=tag(", fx->admin, &r, NULL),
                     0);
    t_expect_error(&r, 400, "invalid", "expr");
    assert_int_equal(
        t_api(&fx->srv, "GET", "/api/v1/customers?segment=&segment_id=1", fx->admin, &r, NULL), 0);
    t_expect_error(&r, 400, "invalid", "segment");
    assert_int_equal(
        t_api(&fx->srv, "GET", "/api/v1/customers?segment_id=999", fx->admin, &r, NULL), 0);
    t_expect_error(&r, 404, "not_found", NULL);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_and_scope),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_list_sorted),
        cmocka_unit_test(test_breakdown),
        cmocka_unit_test(test_export_csv),
        cmocka_unit_test(test_export_phones),
        cmocka_unit_test(test_export_xlsx),
        cmocka_unit_test(test_export_disconnect),
        cmocka_unit_test(test_export_limit),
        cmocka_unit_test(test_saved_segments),
        cmocka_unit_test(test_customer_fields),
        cmocka_unit_test(test_read_after_write),
        cmocka_unit_test(test_customers_filter),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
