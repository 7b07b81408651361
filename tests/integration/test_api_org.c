/* test_api_org.c — departments, stores and employees through the real server:
 * CRUD, validation naming the field, cycles, uniqueness, pagination, tenant
 * isolation, roles, the resign flow and the audit rows.
 *
 * One server and two tenants (A and B) are shared by the tests of this file
 * (group setup); each test uses its own names and userids. Tests that need
 * exact counts create their own tenant. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

typedef struct fixture {
    char *dir;
    t_server s;
    char *platform;
    char a_admin[80], b_admin[80];
    int64_t a_id, b_id;
} fixture;

static fixture F;

/* ---- helpers ---- */

/* Sends body (stolen, may be NULL) and fills out. */
static void call(const char *method, const char *path, const char *tok, json_t *body, t_resp *out) {
    char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    assert_int_equal(t_http(&F.s, method, path, tok, b, b ? strlen(b) : 0, NULL, out), 0);
    free(b);
}

/* printf into one of a few rotating buffers (enough for one call's arguments). */
static const char *fmt(const char *f, long long v) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], f, v);
    return buf[k];
}

static int64_t jint(const json_t *j, const char *key) {
    const json_t *v = json_object_get(j, key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* POSTs body to path, expects 201 and returns the new id. */
static int64_t create(const char *path, const char *tok, json_t *body) {
    t_resp r;
    call("POST", path, tok, body, &r);
    if (r.status != 201) fprintf(stderr, "create %s: %ld %s\n", path, r.status, r.body);
    assert_int_equal(r.status, 201);
    int64_t id = jint(r.json, "id");
    t_resp_free(&r);
    return id;
}

/* Creates a tenant; fills its admin token and returns its id. */
static int64_t new_tenant(const char *name, char admin[80]) {
    t_resp r;
    call("POST", "/api/v1/tenants", F.platform, json_pack("{s:s}", "name", name), &r);
    assert_int_equal(r.status, 201);
    snprintf(admin, 80, "%s", json_string_value(json_object_get(r.json, "admin_token")));
    int64_t id = jint(r.json, "id");
    t_resp_free(&r);
    return id;
}

/* A token of role for the employee with userid; returns a malloc'd token. */
static char *new_token(const char *admin, const char *role, const char *userid) {
    t_resp r;
    json_t *b = json_pack("{s:s}", "role", role);
    if (userid) json_object_set_new(b, "employee_userid", json_string(userid));
    call("POST", "/api/v1/tokens", admin, b, &r);
    assert_int_equal(r.status, 201);
    char *tok = strdup(json_string_value(json_object_get(r.json, "token")));
    t_resp_free(&r);
    return tok;
}

/* Collects ids of all pages of path (which already has a '?') with limit. */
static int list_all(const char *path, const char *tok, int limit, int64_t *ids, int max,
                    int *pages) {
    char url[512], cursor[64] = "";
    int n = 0;
    *pages = 0;
    for (;;) {
        snprintf(url, sizeof url, "%s&limit=%d%s%s", path, limit, cursor[0] ? "&cursor=" : "",
                 cursor);
        t_resp r;
        call("GET", url, tok, NULL, &r);
        assert_int_equal(r.status, 200);
        json_t *items = json_object_get(r.json, "items");
        assert_true(json_array_size(items) <= (size_t)limit);
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it) {
            assert_true(n < max);
            ids[n++] = jint(it, "id");
        }
        (*pages)++;
        json_t *next = json_object_get(r.json, "next_cursor");
        assert_true(json_is_null(next) || json_is_string(next));
        if (json_is_null(next)) {
            t_resp_free(&r);
            return n;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        t_resp_free(&r);
    }
}

/* ---- setup ---- */

static int setup(void **state) {
    (void)state;
    memset(&F, 0, sizeof F);
    F.dir = t_tmpdir();
    if (!F.dir) return -1;
    F.platform = t_token(F.dir, NULL, "admin", NULL);
    if (!F.platform) return -1;
    if (t_server_start(&F.s, F.dir, NULL) != 0) return -1;
    F.a_id = new_tenant("Org A", F.a_admin);
    F.b_id = new_tenant("Org B", F.b_admin);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = t_server_stop(&F.s);
    free(F.platform);
    t_rmdir(F.dir);
    return rc == 0 ? 0 : -1;
}

/* ---- departments ---- */

static void test_department_crud(void **state) {
    (void)state;
    const char *tok = F.a_admin;
    t_resp r;
    call("POST", "/api/v1/departments", tok,
         json_pack("{s:s,s:i}", "name", "Sales", "wecom_id", 1001), &r);
    assert_int_equal(r.status, 201);
    int64_t root = jint(r.json, "id");
    assert_string_equal(json_string_value(json_object_get(r.json, "name")), "Sales");
    assert_true(json_is_null(json_object_get(r.json, "parent_id")));
    assert_int_equal(jint(r.json, "wecom_id"), 1001);
    assert_true(jint(r.json, "created_at") > 0);
    t_resp_free(&r);

    int64_t child = create("/api/v1/departments", tok,
                           json_pack("{s:s,s:I}", "name", "Sales East", "parent_id", root));
    call("GET", fmt("/api/v1/departments/%lld", child), tok, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(jint(r.json, "parent_id"), root);
    assert_true(json_is_null(json_object_get(r.json, "wecom_id")));
    t_resp_free(&r);

    call("GET", fmt("/api/v1/departments?parent_id=%lld", root), tok, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
    assert_int_equal(jint(json_array_get(json_object_get(r.json, "items"), 0), "id"), child);
    assert_true(json_is_null(json_object_get(r.json, "next_cursor")));
    t_resp_free(&r);

    call("PATCH", fmt("/api/v1/departments/%lld", child), tok,
         json_pack("{s:s,s:n}", "name", "East", "parent_id"), &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "name")), "East");
    assert_true(json_is_null(json_object_get(r.json, "parent_id")));
    t_resp_free(&r);

    /* PATCH with only wecom_id leaves the name alone. */
    call("PATCH", fmt("/api/v1/departments/%lld", child), tok, json_pack("{s:i}", "wecom_id", 1002),
         &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "name")), "East");
    assert_int_equal(jint(r.json, "wecom_id"), 1002);
    t_resp_free(&r);

    call("GET", "/api/v1/departments", tok, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_array_size(json_object_get(r.json, "items")) >= 2);
    t_resp_free(&r);
}

static void test_department_validation(void **state) {
    (void)state;
    const char *tok = F.a_admin;
    t_resp r;
    char long_name[130];
    memset(long_name, 'x', 129);
    long_name[129] = 0;
    call("POST", "/api/v1/departments", tok, json_pack("{s:s,s:s}", "name", "X", "color", "red"),
         &r);
    t_expect_error(&r, 400, "invalid", "color");
    call("POST", "/api/v1/departments", tok, json_pack("{s:s}", "name", long_name), &r);
    t_expect_error(&r, 400, "invalid", "name");
    call("POST", "/api/v1/departments", tok, json_pack("{s:s}", "name", ""), &r);
    t_expect_error(&r, 400, "invalid", "name");
    call("POST", "/api/v1/departments", tok, json_pack("{s:i}", "wecom_id", 5), &r);
    t_expect_error(&r, 400, "invalid", "name");
    call("POST", "/api/v1/departments", tok,
         json_pack("{s:s,s:i}", "name", "X", "parent_id", 99999999), &r);
    t_expect_error(&r, 400, "invalid", "parent_id");
    call("POST", "/api/v1/departments", tok, json_pack("{s:s,s:i}", "name", "X", "parent_id", 0),
         &r);
    t_expect_error(&r, 400, "invalid", "parent_id");
    call("POST", "/api/v1/departments", tok, json_pack("{s:s,s:s}", "name", "X", "parent_id", "1"),
         &r);
    t_expect_error(&r, 400, "invalid", "parent_id");
    call("POST", "/api/v1/departments", tok, json_pack("{s:s,s:i}", "name", "X", "wecom_id", -3),
         &r);
    t_expect_error(&r, 400, "invalid", "wecom_id");

    /* a <- b <- c: re-parenting a under c (or under itself) is a cycle. */
    int64_t a = create("/api/v1/departments", tok,
                       json_pack("{s:s,s:i}", "name", "Cyc A", "wecom_id", 2001));
    int64_t b =
        create("/api/v1/departments", tok, json_pack("{s:s,s:I}", "name", "Cyc B", "parent_id", a));
    int64_t c =
        create("/api/v1/departments", tok, json_pack("{s:s,s:I}", "name", "Cyc C", "parent_id", b));
    call("PATCH", fmt("/api/v1/departments/%lld", a), tok, json_pack("{s:I}", "parent_id", c), &r);
    t_expect_error(&r, 400, "invalid", "parent_id");
    call("PATCH", fmt("/api/v1/departments/%lld", a), tok, json_pack("{s:I}", "parent_id", a), &r);
    t_expect_error(&r, 400, "invalid", "parent_id");
    /* Moving a subtree below an unrelated department is fine. */
    int64_t other = create("/api/v1/departments", tok, json_pack("{s:s}", "name", "Cyc Other"));
    call("PATCH", fmt("/api/v1/departments/%lld", b), tok, json_pack("{s:I}", "parent_id", other),
         &r);
    assert_int_equal(r.status, 200);
    t_resp_free(&r);

    /* wecom_id is unique per tenant, on create and on update. */
    call("POST", "/api/v1/departments", tok,
         json_pack("{s:s,s:i}", "name", "Dup", "wecom_id", 2001), &r);
    t_expect_error(&r, 409, "conflict", "wecom_id");
    call("PATCH", fmt("/api/v1/departments/%lld", c), tok, json_pack("{s:i}", "wecom_id", 2001),
         &r);
    t_expect_error(&r, 409, "conflict", "wecom_id");
    /* Setting a department's own wecom_id again is no conflict. */
    call("PATCH", fmt("/api/v1/departments/%lld", a), tok, json_pack("{s:i}", "wecom_id", 2001),
         &r);
    assert_int_equal(r.status, 200);
    t_resp_free(&r);
    /* Another tenant may use the same wecom_id. */
    create("/api/v1/departments", F.b_admin,
           json_pack("{s:s,s:i}", "name", "B root", "wecom_id", 2001));

    call("GET", "/api/v1/departments/99999999", tok, NULL, &r);
    t_expect_error(&r, 404, "not_found", NULL);
    call("GET", "/api/v1/departments/abc", tok, NULL, &r);
    t_expect_error(&r, 404, "not_found", NULL);
    call("PATCH", "/api/v1/departments/99999999", tok, json_pack("{s:s}", "name", "Y"), &r);
    t_expect_error(&r, 404, "not_found", NULL);
    call("PATCH", fmt("/api/v1/departments/%lld", a), tok, json_pack("{s:n}", "name"), &r);
    t_expect_error(&r, 400, "invalid", "name");
    /* Malformed bodies. */
    assert_int_equal(t_http(&F.s, "POST", "/api/v1/departments", tok, "[1]", 3, NULL, &r), 0);
    t_expect_error(&r, 400, "invalid", NULL);
    assert_int_equal(t_http(&F.s, "POST", "/api/v1/departments", tok, "{\"name\":", 8, NULL, &r),
                     0);
    t_expect_error(&r, 400, "invalid", NULL);
}

/* ---- stores ---- */

static void test_store_crud(void **state) {
    (void)state;
    const char *tok = F.a_admin;
    t_resp r;
    int64_t dep = create("/api/v1/departments", tok, json_pack("{s:s}", "name", "Retail"));
    call("POST", "/api/v1/stores", tok,
         json_pack("{s:s,s:I,s:s,s:s}", "name", "Jing'an Flagship", "department_id", dep, "city",
                   "Shanghai", "address", "1 Nanjing West Rd"),
         &r);
    assert_int_equal(r.status, 201);
    int64_t s1 = jint(r.json, "id");
    assert_int_equal(jint(r.json, "department_id"), dep);
    assert_string_equal(json_string_value(json_object_get(r.json, "city")), "Shanghai");
    t_resp_free(&r);
    int64_t s2 = create("/api/v1/stores", tok, json_pack("{s:s}", "name", "Pop-up"));

    call("GET", fmt("/api/v1/stores/%lld", s2), tok, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_null(json_object_get(r.json, "department_id")));
    assert_true(json_is_null(json_object_get(r.json, "city")));
    t_resp_free(&r);

    call("GET", fmt("/api/v1/stores?department_id=%lld", dep), tok, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
    assert_int_equal(jint(json_array_get(json_object_get(r.json, "items"), 0), "id"), s1);
    t_resp_free(&r);

    call("PATCH", fmt("/api/v1/stores/%lld", s1), tok,
         json_pack("{s:n,s:s}", "city", "name", "Flagship"), &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_null(json_object_get(r.json, "city")));
    assert_string_equal(json_string_value(json_object_get(r.json, "name")), "Flagship");
    assert_string_equal(json_string_value(json_object_get(r.json, "address")), "1 Nanjing West Rd");
    assert_int_equal(jint(r.json, "department_id"), dep);
    t_resp_free(&r);

    char addr[258];
    memset(addr, 'a', 257);
    addr[257] = 0;
    call("POST", "/api/v1/stores", tok, json_pack("{s:s,s:s}", "name", "X", "address", addr), &r);
    t_expect_error(&r, 400, "invalid", "address");
    call("PATCH", fmt("/api/v1/stores/%lld", s1), tok, json_pack("{s:s}", "city", ""), &r);
    t_expect_error(&r, 400, "invalid", "city");
    call("PATCH", fmt("/api/v1/stores/%lld", s1), tok,
         json_pack("{s:i}", "department_id", 99999999), &r);
    t_expect_error(&r, 400, "invalid", "department_id");
    call("POST", "/api/v1/stores", tok, json_pack("{s:s,s:s}", "name", "X", "region", "east"), &r);
    t_expect_error(&r, 400, "invalid", "region");
    call("GET", "/api/v1/stores/99999999", tok, NULL, &r);
    t_expect_error(&r, 404, "not_found", NULL);
    call("GET", "/api/v1/stores?department_id=x", tok, NULL, &r);
    t_expect_error(&r, 400, "invalid", "department_id");
}

/* ---- employees ---- */

static void test_employee_crud(void **state) {
    (void)state;
    const char *tok = F.a_admin;
    t_resp r;
    int64_t dep = create("/api/v1/departments", tok, json_pack("{s:s}", "name", "Guides"));
    int64_t sto = create("/api/v1/stores", tok, json_pack("{s:s}", "name", "Guides store"));
    call("POST", "/api/v1/employees", tok,
         json_pack("{s:s,s:s,s:I,s:I}", "userid", "zhang.san@shop-1", "name", "Zhang San",
                   "department_id", dep, "store_id", sto),
         &r);
    assert_int_equal(r.status, 201);
    int64_t e1 = jint(r.json, "id");
    assert_string_equal(json_string_value(json_object_get(r.json, "userid")), "zhang.san@shop-1");
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "active");
    assert_true(json_is_null(json_object_get(r.json, "resigned_at")));
    assert_int_equal(jint(r.json, "active_customers"), 0);
    assert_int_equal(jint(r.json, "department_id"), dep);
    assert_int_equal(jint(r.json, "store_id"), sto);
    t_resp_free(&r);
    int64_t e2 = create("/api/v1/employees", tok,
                        json_pack("{s:s,s:I}", "userid", "li_si", "department_id", dep));

    call("GET", fmt("/api/v1/employees?department_id=%lld", dep), tok, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *items = json_object_get(r.json, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_int_equal(jint(json_array_get(items, 0), "id"), e1);
    assert_int_equal(jint(json_array_get(items, 1), "id"), e2);
    assert_int_equal(jint(json_array_get(items, 0), "active_customers"), 0);
    t_resp_free(&r);
    call("GET", fmt("/api/v1/employees?store_id=%lld", sto), tok, NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
    t_resp_free(&r);
    char both[128];
    snprintf(both, sizeof both, "/api/v1/employees?store_id=%lld&department_id=%lld",
             (long long)sto, (long long)dep);
    call("GET", both, tok, NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 1);
    assert_int_equal(jint(json_array_get(json_object_get(r.json, "items"), 0), "id"), e1);
    t_resp_free(&r);

    call("PATCH", fmt("/api/v1/employees/%lld", e2), tok,
         json_pack("{s:s,s:I}", "name", "Li Si", "store_id", sto), &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "name")), "Li Si");
    assert_int_equal(jint(r.json, "store_id"), sto);
    assert_string_equal(json_string_value(json_object_get(r.json, "userid")), "li_si");
    t_resp_free(&r);
    call("PATCH", fmt("/api/v1/employees/%lld", e2), tok, json_pack("{s:n}", "name"), &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_null(json_object_get(r.json, "name")));
    t_resp_free(&r);

    /* Validation. */
    call("POST", "/api/v1/employees", tok, json_pack("{s:s}", "userid", "li_si"), &r);
    t_expect_error(&r, 409, "conflict", "userid");
    call("POST", "/api/v1/employees", tok, json_pack("{s:s}", "userid", "bad id"), &r);
    t_expect_error(&r, 400, "invalid", "userid");
    call("POST", "/api/v1/employees", tok, json_pack("{s:s}", "userid", "名字"), &r);
    t_expect_error(&r, 400, "invalid", "userid");
    call("POST", "/api/v1/employees", tok, json_pack("{s:s}", "userid", ""), &r);
    t_expect_error(&r, 400, "invalid", "userid");
    char long_id[66];
    memset(long_id, 'u', 65);
    long_id[65] = 0;
    call("POST", "/api/v1/employees", tok, json_pack("{s:s}", "userid", long_id), &r);
    t_expect_error(&r, 400, "invalid", "userid");
    call("POST", "/api/v1/employees", tok, json_pack("{s:s}", "name", "No Userid"), &r);
    t_expect_error(&r, 400, "invalid", "userid");
    call("POST", "/api/v1/employees", tok,
         json_pack("{s:s,s:i}", "userid", "wang_wu", "store_id", 99999999), &r);
    t_expect_error(&r, 400, "invalid", "store_id");
    call("PATCH", fmt("/api/v1/employees/%lld", e1), tok, json_pack("{s:s}", "userid", "new"), &r);
    t_expect_error(&r, 400, "invalid", "userid"); /* userid is not changeable */
    call("PATCH", fmt("/api/v1/employees/%lld", e1), tok, json_pack("{s:s}", "status", "resigned"),
         &r);
    t_expect_error(&r, 400, "invalid", "status");
    call("GET", "/api/v1/employees?status=gone", tok, NULL, &r);
    t_expect_error(&r, 400, "invalid", "status");
    call("GET", "/api/v1/employees/99999999", tok, NULL, &r);
    t_expect_error(&r, 404, "not_found", NULL);
    /* Nothing half-written by the failed creates. */
    call("GET", "/api/v1/employees?limit=500", tok, NULL, &r);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(r.json, "items"), i, it)
        assert_string_not_equal(json_string_value(json_object_get(it, "userid")), "wang_wu");
    t_resp_free(&r);
}

static void test_pagination(void **state) {
    (void)state;
    char admin[80];
    new_tenant("Paging", admin);
    int64_t dep = create("/api/v1/departments", admin, json_pack("{s:s}", "name", "P"));
    int64_t made[7];
    for (int i = 0; i < 7; i++) {
        char uid[16];
        snprintf(uid, sizeof uid, "p%d", i);
        json_t *b = json_pack("{s:s}", "userid", uid);
        if (i % 2 == 0) json_object_set_new(b, "department_id", json_integer(dep));
        made[i] = create("/api/v1/employees", admin, b);
    }
    int64_t ids[16];
    int pages;
    int n = list_all("/api/v1/employees?x=1", admin, 2, ids, 16, &pages);
    assert_int_equal(n, 7);
    assert_int_equal(pages, 4);
    for (int i = 0; i < 7; i++)
        assert_int_equal(ids[i], made[i]);
    /* Exactly one full page: no dangling empty page. */
    n = list_all(fmt("/api/v1/employees?department_id=%lld", dep), admin, 4, ids, 16, &pages);
    assert_int_equal(n, 4);
    assert_int_equal(pages, 1);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ids[i], made[2 * i]);
    n = list_all("/api/v1/employees?status=resigned", admin, 50, ids, 16, &pages);
    assert_int_equal(n, 0);
    n = list_all("/api/v1/departments?x=1", admin, 1, ids, 16, &pages);
    assert_int_equal(n, 1);

    t_resp r;
    call("GET", "/api/v1/employees?limit=0", admin, NULL, &r);
    t_expect_error(&r, 400, "invalid", "limit");
    call("GET", "/api/v1/employees?limit=501", admin, NULL, &r);
    t_expect_error(&r, 400, "invalid", "limit");
    call("GET", "/api/v1/employees?limit=-1", admin, NULL, &r);
    t_expect_error(&r, 400, "invalid", "limit");
    call("GET", "/api/v1/employees?cursor=abc", admin, NULL, &r);
    t_expect_error(&r, 400, "invalid", "cursor");
    call("GET", "/api/v1/stores?cursor=99999999999999999999999", admin, NULL, &r);
    t_expect_error(&r, 400, "invalid", "cursor");
    call("GET", "/api/v1/employees?limit=500", admin, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 7);
    t_resp_free(&r);
}

/* ---- isolation and roles ---- */

static void test_tenant_isolation(void **state) {
    (void)state;
    t_resp r;
    int64_t dep = create("/api/v1/departments", F.a_admin, json_pack("{s:s}", "name", "A only"));
    int64_t sto = create("/api/v1/stores", F.a_admin, json_pack("{s:s}", "name", "A store"));
    int64_t emp = create("/api/v1/employees", F.a_admin, json_pack("{s:s}", "userid", "a_iso"));

    const char *b = F.b_admin;
    call("GET", fmt("/api/v1/employees/%lld", emp), b, NULL, &r);
    t_expect_error(&r, 404, "not_found", NULL);
    call("GET", fmt("/api/v1/departments/%lld", dep), b, NULL, &r);
    t_expect_error(&r, 404, "not_found", NULL);
    call("GET", fmt("/api/v1/stores/%lld", sto), b, NULL, &r);
    t_expect_error(&r, 404, "not_found", NULL);
    call("PATCH", fmt("/api/v1/employees/%lld", emp), b, json_pack("{s:s}", "name", "x"), &r);
    t_expect_error(&r, 404, "not_found", NULL);
    call("PATCH", fmt("/api/v1/departments/%lld", dep), b, json_pack("{s:s}", "name", "x"), &r);
    t_expect_error(&r, 404, "not_found", NULL);
    call("PATCH", fmt("/api/v1/stores/%lld", sto), b, json_pack("{s:s}", "name", "x"), &r);
    t_expect_error(&r, 404, "not_found", NULL);
    call("POST", fmt("/api/v1/employees/%lld/resign", emp), b, NULL, &r);
    t_expect_error(&r, 404, "not_found", NULL);

    /* A's ids in B's bodies are 400 naming the field. */
    call("POST", "/api/v1/stores", b, json_pack("{s:s,s:I}", "name", "x", "department_id", dep),
         &r);
    t_expect_error(&r, 400, "invalid", "department_id");
    call("POST", "/api/v1/departments", b, json_pack("{s:s,s:I}", "name", "x", "parent_id", dep),
         &r);
    t_expect_error(&r, 400, "invalid", "parent_id");
    call("POST", "/api/v1/employees", b,
         json_pack("{s:s,s:I}", "userid", "b_iso", "department_id", dep), &r);
    t_expect_error(&r, 400, "invalid", "department_id");
    call("POST", "/api/v1/employees", b, json_pack("{s:s,s:I}", "userid", "b_iso", "store_id", sto),
         &r);
    t_expect_error(&r, 400, "invalid", "store_id");
    int64_t bdep = create("/api/v1/departments", b, json_pack("{s:s}", "name", "B dep"));
    call("PATCH", fmt("/api/v1/departments/%lld", bdep), b, json_pack("{s:I}", "parent_id", dep),
         &r);
    t_expect_error(&r, 400, "invalid", "parent_id");

    /* The same userid may exist in both tenants. */
    create("/api/v1/employees", b, json_pack("{s:s}", "userid", "a_iso"));

    /* B's lists never show A's rows; A's filters on B's ids give nothing. */
    int64_t ids[512];
    int pages;
    int n = list_all("/api/v1/employees?x=1", b, 500, ids, 512, &pages);
    for (int i = 0; i < n; i++)
        assert_true(ids[i] != emp);
    n = list_all(fmt("/api/v1/stores?department_id=%lld", dep), b, 50, ids, 512, &pages);
    assert_int_equal(n, 0);
    n = list_all("/api/v1/departments?x=1", b, 500, ids, 512, &pages);
    for (int i = 0; i < n; i++)
        assert_true(ids[i] != dep);
    /* A is unchanged. */
    call("GET", fmt("/api/v1/employees/%lld", emp), F.a_admin, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_null(json_object_get(r.json, "name")));
    t_resp_free(&r);
}

static void test_roles(void **state) {
    (void)state;
    t_resp r;
    int64_t dep = create("/api/v1/departments", F.a_admin, json_pack("{s:s}", "name", "Roles"));
    int64_t emp = create("/api/v1/employees", F.a_admin,
                         json_pack("{s:s,s:I}", "userid", "role_emp", "department_id", dep));
    char *etok = new_token(F.a_admin, "employee", "role_emp");
    char *mtok = new_token(F.a_admin, "manager", "role_emp");
    char *otok = new_token(F.a_admin, "operator", NULL);

    const char *readers[] = {etok, mtok, otok};
    for (int i = 0; i < 3; i++) {
        call("GET", "/api/v1/employees", readers[i], NULL, &r);
        assert_int_equal(r.status, 200);
        t_resp_free(&r);
        call("GET", fmt("/api/v1/departments/%lld", dep), readers[i], NULL, &r);
        assert_int_equal(r.status, 200);
        t_resp_free(&r);
        call("GET", "/api/v1/stores", readers[i], NULL, &r);
        assert_int_equal(r.status, 200);
        t_resp_free(&r);
    }
    const char *writers_denied[] = {etok, mtok};
    for (int i = 0; i < 2; i++) {
        const char *t = writers_denied[i];
        call("POST", "/api/v1/departments", t, json_pack("{s:s}", "name", "nope"), &r);
        t_expect_error(&r, 403, "forbidden", NULL);
        call("PATCH", fmt("/api/v1/departments/%lld", dep), t, json_pack("{s:s}", "name", "n"), &r);
        t_expect_error(&r, 403, "forbidden", NULL);
        call("POST", "/api/v1/stores", t, json_pack("{s:s}", "name", "nope"), &r);
        t_expect_error(&r, 403, "forbidden", NULL);
        call("POST", "/api/v1/employees", t, json_pack("{s:s}", "userid", "nope"), &r);
        t_expect_error(&r, 403, "forbidden", NULL);
        call("PATCH", fmt("/api/v1/employees/%lld", emp), t, json_pack("{s:s}", "name", "n"), &r);
        t_expect_error(&r, 403, "forbidden", NULL);
        call("POST", fmt("/api/v1/employees/%lld/resign", emp), t, NULL, &r);
        t_expect_error(&r, 403, "forbidden", NULL);
    }
    /* The operator writes. */
    create("/api/v1/stores", otok,
           json_pack("{s:s,s:I}", "name", "Operator store", "department_id", dep));
    /* The platform token never sees tenant data; no token is 401. */
    call("GET", "/api/v1/employees", F.platform, NULL, &r);
    t_expect_error(&r, 403, "forbidden", NULL);
    call("GET", "/api/v1/departments", NULL, NULL, &r);
    assert_int_equal(r.status, 401);
    t_resp_free(&r);
    /* The employee's resignation (by the admin) ends its tokens. */
    call("POST", fmt("/api/v1/employees/%lld/resign", emp), F.a_admin, NULL, &r);
    assert_int_equal(r.status, 200);
    t_resp_free(&r);
    call("GET", "/api/v1/employees", etok, NULL, &r);
    assert_int_equal(r.status, 401);
    t_resp_free(&r);
    call("GET", "/api/v1/employees", mtok, NULL, &r);
    assert_int_equal(r.status, 401);
    t_resp_free(&r);
    call("GET", "/api/v1/employees", otok, NULL, &r);
    assert_int_equal(r.status, 200);
    t_resp_free(&r);
    free(etok);
    free(mtok);
    free(otok);
}

/* ---- resign ---- */

/* Gives the employee an active relationship with a new customer, directly in
 * the database (the customer API is another module). */
static void add_relationship(int64_t tenant, int64_t emp, const char *ext) {
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO customer(tenant_id, external_userid, created_at, updated_at) "
             "VALUES(%lld,'%s',1,1); INSERT INTO relationship(tenant_id, customer_id, "
             "employee_id, status, added_at, updated_at) VALUES(%lld, last_insert_rowid(), "
             "%lld, 'active', 1, 1);",
             (long long)tenant, ext, (long long)tenant, (long long)emp);
    assert_int_equal(t_sql_exec(F.dir, sql), 0);
}

static void test_resign(void **state) {
    (void)state;
    t_resp r;
    int64_t emp = create("/api/v1/employees", F.a_admin,
                         json_pack("{s:s,s:s}", "userid", "leaver", "name", "Leaver"));
    add_relationship(F.a_id, emp, "wm_resign_1");
    add_relationship(F.a_id, emp, "wm_resign_2");
    call("GET", fmt("/api/v1/employees/%lld", emp), F.a_admin, NULL, &r);
    assert_int_equal(jint(r.json, "active_customers"), 2);
    t_resp_free(&r);

    /* A body, if any, must be an empty object. */
    call("POST", fmt("/api/v1/employees/%lld/resign", emp), F.a_admin,
         json_pack("{s:b}", "force", 1), &r);
    t_expect_error(&r, 400, "invalid", "force");

    call("POST", fmt("/api/v1/employees/%lld/resign", emp), F.a_admin, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "resigned");
    int64_t at = jint(r.json, "resigned_at");
    assert_true(at > 0);
    /* The customers stay: relationships are not ended. */
    assert_int_equal(jint(r.json, "active_customers"), 2);
    t_resp_free(&r);

    /* Idempotent: the same answer, resigned_at unchanged. */
    call("POST", fmt("/api/v1/employees/%lld/resign", emp), F.a_admin, json_object(), &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "resigned");
    assert_int_equal(jint(r.json, "resigned_at"), at);
    t_resp_free(&r);

    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM relationship WHERE employee_id=%lld AND "
                               "status='active'",
                               (long long)emp),
                     2);
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM audit_log WHERE action='employee.resign' "
                               "AND target='employee:' || %lld",
                               (long long)emp),
                     1);

    int64_t ids[512];
    int pages;
    int n = list_all("/api/v1/employees?status=resigned", F.a_admin, 500, ids, 512, &pages);
    bool found = false;
    for (int i = 0; i < n; i++)
        found |= ids[i] == emp;
    assert_true(found);
    n = list_all("/api/v1/employees?status=active", F.a_admin, 500, ids, 512, &pages);
    for (int i = 0; i < n; i++)
        assert_true(ids[i] != emp);

    call("POST", "/api/v1/employees/99999999/resign", F.a_admin, NULL, &r);
    t_expect_error(&r, 404, "not_found", NULL);
    /* A resigned employee's record can still be corrected. */
    call("PATCH", fmt("/api/v1/employees/%lld", emp), F.a_admin, json_pack("{s:s}", "name", "L."),
         &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "resigned");
    t_resp_free(&r);
}

/* ---- audit ---- */

static void test_audit_rows(void **state) {
    (void)state;
    char admin[80];
    int64_t tenant = new_tenant("Audited", admin);
    int64_t dep = create("/api/v1/departments", admin, json_pack("{s:s}", "name", "D"));
    int64_t sto = create("/api/v1/stores", admin, json_pack("{s:s}", "name", "S"));
    int64_t emp = create("/api/v1/employees", admin,
                         json_pack("{s:s,s:s}", "userid", "aud", "name", "Secret Person"));
    t_resp r;
    call("PATCH", fmt("/api/v1/departments/%lld", dep), admin, json_pack("{s:s}", "name", "D2"),
         &r);
    t_resp_free(&r);
    call("PATCH", fmt("/api/v1/stores/%lld", sto), admin, json_pack("{s:s}", "city", "Hangzhou"),
         &r);
    t_resp_free(&r);
    call("PATCH", fmt("/api/v1/employees/%lld", emp), admin,
         json_pack("{s:s,s:I}", "name", "Other Secret", "department_id", dep), &r);
    t_resp_free(&r);
    call("POST", fmt("/api/v1/employees/%lld/resign", emp), admin, NULL, &r);
    t_resp_free(&r);
    call("POST", fmt("/api/v1/employees/%lld/resign", emp), admin, NULL, &r);
    t_resp_free(&r);
    /* A failed write leaves no audit row. */
    call("POST", "/api/v1/employees", admin, json_pack("{s:s}", "userid", "aud"), &r);
    t_expect_error(&r, 409, "conflict", "userid");

    static const char *const actions[] = {
        "department.create", "department.update", "store.create",   "store.update",
        "employee.create",   "employee.update",   "employee.resign"};
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++)
        assert_int_equal(t_sql_int(F.dir,
                                   "SELECT count(*) FROM audit_log WHERE tenant_id=%lld AND "
                                   "action='%s' AND actor LIKE 'token:%%' AND count=1",
                                   (long long)tenant, actions[i]),
                         1);
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM audit_log WHERE tenant_id=%lld AND "
                               "action='employee.update' AND detail LIKE '%%department_id%%'",
                               (long long)tenant),
                     1);
    /* No personal data in the audit log. */
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM audit_log WHERE tenant_id=%lld AND "
                               "(coalesce(detail,'') || coalesce(target,'')) LIKE '%%Secret%%'",
                               (long long)tenant),
                     0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_department_crud), cmocka_unit_test(test_department_validation),
        cmocka_unit_test(test_store_crud),      cmocka_unit_test(test_employee_crud),
        cmocka_unit_test(test_pagination),      cmocka_unit_test(test_tenant_isolation),
        cmocka_unit_test(test_roles),           cmocka_unit_test(test_resign),
        cmocka_unit_test(test_audit_rows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
