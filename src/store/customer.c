/* customer.c — read-side queries of the customer domain, built as JSON.
 *
 * Every query filters by the token's tenant (:scope_tenant) and data scope.
 * Customer queries use auth_scope_sql() on alias `c`; relationship and group
 * chat queries use the team scopes below (employee: own; manager: employees
 * of the department subtree; admin/operator: whole tenant).
 *
 * Statement shapes: optional filters are bound as NULL / 0 / -1 "not given"
 * parameters instead of being spliced in, so each list has a handful of SQL
 * texts (scope × driver) and the per-connection statement cache stays small.
 * A "driver" is an extra `id IN (indexed subquery)` term chosen when a
 * selective filter (employee, tag, added_after) or an employee token is
 * present, so a page does not walk the whole tenant in id order to find 50
 * matches (see customer_driver). Filters without an index (q, a rare
 * relationship_status, a manager's scope) still walk customers by id.
 *
 * Pagination is keyset: a page query fetches limit + 1 rows; the extra row
 * only says that a next page exists. Key columns come first in every list
 * SELECT (see page_collect).
 *
 * Ownership: statements belong to the connection (never finalized here, always
 * reset); JSON results belong to the caller. */
#include "store/customer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "outbox/outbox.h"
#include "store/audit.h"
#include "store/tag_rule.h"
#include "util/phone.h"
#include "util/text.h"
#include "util/utf8.h"

const char *const customer_rel_statuses[] = {"active", "deleted_by_customer", "deleted_by_employee",
                                             "transferred", NULL};

/* ---- arguments and cursors ---- */

int customer_arg_int(const char *val, const char *name, int64_t min, int64_t *out, siyu_err *err) {
    if (!val) return 0;
    const char *s = val[0] == '-' ? val + 1 : val;
    bool digits = *s != 0 && strlen(s) <= 19;
    for (const char *p = s; digits && *p; p++)
        digits = *p >= '0' && *p <= '9';
    errno = 0;
    long long v = digits ? strtoll(val, NULL, 10) : 0;
    if (!digits || errno == ERANGE || v < min)
        return siyu_err_set(err, SIYU_EINVAL, name, "parameter '%s' must be an integer >= %lld",
                            name, (long long)min);
    *out = v;
    return 0;
}

int customer_arg_str(const char *val, const char *name, size_t max, const char *const *allowed,
                     siyu_err *err) {
    if (!val) return 0;
    size_t n = strlen(val);
    if (n == 0 || n > max)
        return siyu_err_set(err, SIYU_EINVAL, name, "parameter '%s' must be 1..%zu bytes", name,
                            max);
    if (!allowed) return 0;
    for (const char *const *a = allowed; *a; a++)
        if (strcmp(*a, val) == 0) return 0;
    char list[160] = "";
    for (const char *const *a = allowed; *a; a++) {
        size_t k = strlen(list);
        snprintf(list + k, sizeof list - k, "%s%s", k ? ", " : "", *a);
    }
    return siyu_err_set(err, SIYU_EINVAL, name, "parameter '%s' must be one of: %s", name, list);
}

#define CURSOR_TEXT_MAX 64

/* Cursor tag and key count of each list. */
static const struct {
    const char *tag;
    int nkeys;
} cursor_kinds[] = {
    [CUSTOMER_LIST_CUSTOMERS] = {"cu", 1},     [CUSTOMER_LIST_EVENTS] = {"ev", 2},
    [CUSTOMER_LIST_RELATIONSHIPS] = {"re", 1}, [CUSTOMER_LIST_GROUPS] = {"gc", 1},
    [CUSTOMER_LIST_MEMBERS] = {"gm", 1},       [CUSTOMER_LIST_AUDIT] = {"al", 2},
};

/* The cursor of a list positioned after key, as a JSON string. */
json_t *customer_cursor_json(customer_list_kind kind, const int64_t key[2]) {
    char text[CURSOR_TEXT_MAX], hex[2 * CURSOR_TEXT_MAX + 1];
    const char *tag = cursor_kinds[kind].tag;
    int n =
        cursor_kinds[kind].nkeys == 2
            ? snprintf(text, sizeof text, "%s:%lld:%lld", tag, (long long)key[0], (long long)key[1])
            : snprintf(text, sizeof text, "%s:%lld", tag, (long long)key[0]);
    static const char d[] = "0123456789abcdef";
    int i = 0;
    for (; i < n && i < CURSOR_TEXT_MAX - 1; i++) { /* n < 48: two int64s and a tag */
        hex[2 * i] = d[(unsigned char)text[i] >> 4];
        hex[2 * i + 1] = d[(unsigned char)text[i] & 15];
    }
    hex[2 * i] = 0;
    return json_string(hex);
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Parses "<int>" followed by `end` (':' or NUL) at *s; advances *s past it. */
static bool cursor_key(const char **s, char end, int64_t *out) {
    const char *p = *s;
    if (*p == '-') p++;
    const char *digits = p;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p == digits || p - digits > 19 || *p != end) return false;
    errno = 0;
    *out = strtoll(*s, NULL, 10);
    *s = *p ? p + 1 : p;
    return errno != ERANGE;
}

static bool cursor_decode(const char *hex, customer_list_kind kind, int64_t key[2]) {
    size_t n = strlen(hex);
    char text[CURSOR_TEXT_MAX];
    if (n == 0 || n % 2 || n / 2 >= sizeof text) return false;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval((unsigned char)hex[2 * i]), lo = hexval((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0 || (hi | lo) == 0) return false;
        text[i] = (char)(hi * 16 + lo);
    }
    text[n / 2] = 0;
    const char *tag = cursor_kinds[kind].tag;
    int nkeys = cursor_kinds[kind].nkeys;
    size_t kn = strlen(tag);
    if (strncmp(text, tag, kn) != 0 || text[kn] != ':') return false;
    const char *s = text + kn + 1;
    if (!cursor_key(&s, nkeys == 2 ? ':' : 0, &key[0])) return false;
    return nkeys == 1 || cursor_key(&s, 0, &key[1]);
}

int customer_page_parse(const char *limit, const char *cursor, customer_list_kind kind,
                        customer_page *out, siyu_err *err) {
    memset(out, 0, sizeof *out);
    int64_t n = CUSTOMER_PAGE_DEFAULT;
    if (customer_arg_int(limit, "limit", 1, &n, err) != 0 || n > CUSTOMER_PAGE_MAX)
        return siyu_err_set(err, SIYU_EINVAL, "limit", "parameter 'limit' must be 1..%d",
                            CUSTOMER_PAGE_MAX);
    out->limit = (int)n;
    if (!cursor) return 0;
    if (!cursor_decode(cursor, kind, out->key))
        return siyu_err_set(err, SIYU_EINVAL, "cursor",
                            "parameter 'cursor' is not a cursor of this list");
    out->has_cursor = true;
    return 0;
}

/* ---- small helpers ---- */

static json_t *col(sqlite3_stmt *st, int i) {
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:
        return json_real(sqlite3_column_double(st, i));
    case SQLITE_TEXT: {
        json_t *j = json_stringn((const char *)sqlite3_column_text(st, i),
                                 (size_t)sqlite3_column_bytes(st, i));
        return j ? j : json_null(); /* not UTF-8 */
    }
    default:
        return json_null();
    }
}

/* Adds columns first, first+1, ... under names (NULL-terminated) to obj. */
static json_t *cols_into(json_t *obj, sqlite3_stmt *st, int first, const char *const *names) {
    for (int i = 0; names[i]; i++)
        json_object_set_new(obj, names[i], col(st, first + i));
    return obj;
}

/* {"id","userid","name"} from columns i..i+2, or null when the id is NULL. */
static json_t *employee_ref(sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return json_null();
    static const char *const names[] = {"id", "userid", "name", NULL};
    return cols_into(json_object(), st, i, names);
}

/* props column: parsed JSON, the raw text if it does not parse, or null. */
static json_t *props_json(sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return json_null();
    const char *s = (const char *)sqlite3_column_text(st, i);
    json_t *j = json_loadb(s, (size_t)sqlite3_column_bytes(st, i), JSON_DECODE_ANY, NULL);
    return j ? j : col(st, i);
}

static void bind_int(sqlite3_stmt *st, const char *name, int64_t v) {
    int i = sqlite3_bind_parameter_index(st, name);
    if (i) sqlite3_bind_int64(st, i, v);
}

static void bind_text(sqlite3_stmt *st, const char *name, const char *v) {
    int i = sqlite3_bind_parameter_index(st, name);
    if (i && v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

/* Binds the keyset bounds of a page: :k0/:k1 from the cursor, else the
 * values meaning "from the start" (first0/first1), and :n = limit + 1. */
static void bind_page(sqlite3_stmt *st, const customer_page *p, int64_t first0, int64_t first1) {
    bind_int(st, ":k0", p->has_cursor ? p->key[0] : first0);
    bind_int(st, ":k1", p->has_cursor ? p->key[1] : first1);
    bind_int(st, ":n", (int64_t)p->limit + 1);
}

/* Formats a statement from a template and fetches it; NULL (logged by the
 * store) on overflow or a prepare error. */
static sqlite3_stmt *stmt_fmt(store_conn *c, const char *fmt, const char *a, const char *b) {
    char sql[6144];
    int n = snprintf(sql, sizeof sql, fmt, a, b ? b : "");
    if (n < 0 || (size_t)n >= sizeof sql) return NULL;
    return store_conn_stmt(c, sql);
}

typedef json_t *(*row_fn)(store_conn *c, sqlite3_stmt *st, void *ctx);

/* Row builder: the columns named by ctx (a NULL-terminated name array). */
static json_t *named_item(store_conn *c, sqlite3_stmt *st, void *ctx) {
    (void)c;
    return cols_into(json_object(), st, 0, ctx);
}

/* Steps st (bound with LIMIT CUSTOMER_360_LIST_MAX + 1) into an array of
 * fn(row) capped at CUSTOMER_360_LIST_MAX; *cut tells whether rows were left
 * out. Resets st. NULL on a step error. */
static json_t *rows_capped(store_conn *c, sqlite3_stmt *st, row_fn fn, void *ctx, bool *cut) {
    json_t *arr = json_array();
    int rc;
    *cut = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (json_array_size(arr) == CUSTOMER_360_LIST_MAX) {
            *cut = true;
            break;
        }
        json_array_append_new(arr, fn(c, st, ctx));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* A cached statement with ?1 = tenant, ?2 = customer and, when present,
 * ?3 = the list cap + 1. NULL on a prepare error. */
static sqlite3_stmt *stmt_bound(store_conn *c, const char *sql, int64_t tenant, int64_t cid) {
    sqlite3_stmt *st = store_conn_stmt(c, sql);
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, cid);
    if (sqlite3_bind_parameter_count(st) >= 3) sqlite3_bind_int(st, 3, CUSTOMER_360_LIST_MAX + 1);
    return st;
}

/* Steps a bound page statement and builds {"items","next_cursor"}. The first
 * nkeys columns are the keyset key. Resets st. 0 or SIYU_EIO. */
static int page_collect(store_conn *c, sqlite3_stmt *st, const customer_page *p,
                        customer_list_kind kind, row_fn fn, void *ctx, json_t **out) {
    json_t *items = json_array(), *next = json_null();
    int64_t key[2] = {0, 0};
    int rc, n = 0, nkeys = cursor_kinds[kind].nkeys;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == p->limit) {
            json_decref(next);
            next = customer_cursor_json(kind, key);
            break;
        }
        for (int k = 0; k < nkeys; k++)
            key[k] = sqlite3_column_int64(st, k);
        json_array_append_new(items, fn(c, st, ctx));
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(items);
        json_decref(next);
        return SIYU_EIO;
    }
    *out = json_pack("{s:o,s:o}", "items", items, "next_cursor", next);
    return *out ? 0 : SIYU_ENOMEM;
}

static int io_error(siyu_err *err) {
    return siyu_err_set(err, SIYU_EIO, NULL, "query failed");
}

static int not_found(siyu_err *err, const char *what, int64_t id) {
    return siyu_err_set(err, SIYU_ENOTFOUND, NULL, "%s %lld does not exist", what, (long long)id);
}

/* Employees of the token's department and its sub-departments. */
#define TEAM_SQL                                                                                   \
    "(SELECT te.id FROM employee te WHERE te.tenant_id=:scope_tenant AND te.department_id IN "     \
    "(WITH RECURSIVE sub(id) AS (SELECT department_id FROM employee WHERE id=:scope_emp "          \
    "AND tenant_id=:scope_tenant UNION SELECT d.id FROM department d JOIN sub "                    \
    "ON d.parent_id=sub.id) SELECT id FROM sub))"

/* Relationship alias `r` visible to the token. */
static const char *rel_scope_sql(const http_auth *a) {
    switch (a->role) {
    case ROLE_EMPLOYEE:
        return "r.employee_id=:scope_emp";
    case ROLE_MANAGER:
        return "r.employee_id IN " TEAM_SQL;
    case ROLE_ADMIN:
    case ROLE_OPERATOR:
        return "1";
    }
    return "0";
}

int customer_employee_resolve(store_conn *c, int64_t tenant_id, const char *val, const char *name,
                              int64_t *id, siyu_err *err) {
    if (customer_arg_str(val, name, CUSTOMER_ARG_MAX, NULL, err) != 0) return SIYU_EINVAL;
    int64_t num = 0;
    siyu_err ignore;
    if (customer_arg_int(val, name, 1, &num, &ignore) != 0) num = 0;
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT id FROM employee WHERE tenant_id=?1 AND "
                                          "(id=?2 OR userid=?3) ORDER BY id=?2 DESC LIMIT 1");
    if (!st) return io_error(err);
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, num);
    sqlite3_bind_text(st, 3, val, -1, SQLITE_STATIC);
    *id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (!*id) return siyu_err_set(err, SIYU_EINVAL, name, "parameter '%s': no such employee", name);
    return 0;
}

static int added_range_check(int64_t after, int64_t before, siyu_err *err) {
    if (after >= 0 && before >= 0 && before <= after)
        return siyu_err_set(err, SIYU_EINVAL, "added_before",
                            "parameter 'added_before' must be greater than 'added_after'");
    return 0;
}

/* ---- customers ---- */

#define CUSTOMER_STR_(x) #x
#define CUSTOMER_STR(x) CUSTOMER_STR_(x)

/* Columns: 0 id, 1 external_userid, 2 name, 3 gender, 4 first_added_at,
 * 5 created_at, 6 active relationship count, 7 region, 8 stage, 9 phone,
 * 10 the tags as a JSON array [{id,name}] by tag id, one more than the cap
 * at most (so a page of customers is one statement, tags included). */
#define CUSTOMER_COLS                                                                              \
    "c.id, c.external_userid, c.name, c.gender, c.first_added_at, c.created_at, "                  \
    "(SELECT count(*) FROM relationship ar WHERE ar.tenant_id=c.tenant_id AND "                    \
    "ar.customer_id=c.id AND ar.status='active'), c.region, c.stage, c.phone, "                    \
    "(SELECT json_group_array(json_object('id', x.id, 'name', x.name)) FROM (SELECT t.id, t.name " \
    "FROM customer_tag ct JOIN tag t ON t.id=ct.tag_id AND t.tenant_id=ct.tenant_id WHERE "        \
    "ct.tenant_id=c.tenant_id AND ct.customer_id=c.id ORDER BY t.id LIMIT " CUSTOMER_STR(          \
        CUSTOMER_360_LIST_MAX) " + 1) x)"

/* The phone of column i as the token may see it: whole for admin and
 * operator, masked (138****8000) for the other roles, null when unknown. */
static json_t *phone_json(const http_auth *a, sqlite3_stmt *st, int i) {
    const char *p = (const char *)sqlite3_column_text(st, i);
    if (!p) return json_null();
    if (a->role == ROLE_ADMIN || a->role == ROLE_OPERATOR) return col(st, i);
    char m[PHONE_DIGITS + 1];
    phone_mask(p, m);
    return json_string(m);
}

static json_t *customer_item(store_conn *c, sqlite3_stmt *st, void *ctx) {
    (void)c;
    const http_auth *a = ctx;
    static const char *const names[] = {"id", "external_userid", "name", "gender", NULL};
    json_t *j = cols_into(json_object(), st, 0, names);
    int64_t active = sqlite3_column_int64(st, 6);
    json_object_set_new(j, "region", col(st, 7));
    json_object_set_new(j, "stage", col(st, 8));
    json_object_set_new(j, "phone", phone_json(a, st, 9));
    json_object_set_new(j, "status", json_string(active > 0 ? "active" : "lost"));
    json_object_set_new(j, "first_added_at", col(st, 4));
    json_object_set_new(j, "created_at", col(st, 5));
    json_object_set_new(j, "active_relationships", json_integer(active));
    json_t *tags = NULL;
    if (sqlite3_column_type(st, 10) == SQLITE_TEXT)
        tags = json_loadb((const char *)sqlite3_column_text(st, 10),
                          (size_t)sqlite3_column_bytes(st, 10), 0, NULL);
    if (!json_is_array(tags)) {
        json_decref(tags);
        tags = json_array();
    }
    if (json_array_size(tags) > CUSTOMER_360_LIST_MAX) {
        json_array_remove(tags, CUSTOMER_360_LIST_MAX);
        json_object_set_new(j, "tags_truncated", json_true());
    }
    json_object_set_new(j, "tags", tags);
    return j;
}

/* TENANT is the tenant term: the ids driver (DRIVE_IDS) writes it
 * "+c.tenant_id=..." so that SQLite looks the listed ids up by rowid instead
 * of walking the tenant's index (4 ms instead of 220 ms for 4,096 ids among
 * a million customers). */
#define CUSTOMER_LIST_SQL_(TENANT)                                                                 \
    "SELECT " CUSTOMER_COLS " FROM customer c WHERE " TENANT " AND c.id>:k0 "                      \
    "AND (%s) %s "                                                                                 \
    "AND (:rel=0 OR EXISTS (SELECT 1 FROM relationship fr WHERE fr.tenant_id=:scope_tenant AND "   \
    "fr.customer_id=c.id AND (:emp=0 OR fr.employee_id=:emp) AND (:rstatus IS NULL OR "            \
    "fr.status=:rstatus) AND (:after<0 OR fr.added_at>=:after) AND (:before<0 OR "                 \
    "fr.added_at<:before))) "                                                                      \
    "AND (:tag=0 OR EXISTS (SELECT 1 FROM customer_tag ft WHERE ft.tenant_id=:scope_tenant AND "   \
    "ft.customer_id=c.id AND ft.tag_id=:tag)) "                                                    \
    "AND (:status IS NULL OR (:status='active')=EXISTS (SELECT 1 FROM relationship xr WHERE "      \
    "xr.tenant_id=:scope_tenant AND xr.customer_id=c.id AND xr.status='active')) "                 \
    "AND (:q IS NULL OR c.name LIKE :q ESCAPE '\\' OR c.external_userid LIKE :q ESCAPE '\\') "     \
    "ORDER BY c.id LIMIT :n"
static const char CUSTOMER_LIST_SQL[] = CUSTOMER_LIST_SQL_("c.tenant_id=:scope_tenant");
static const char CUSTOMER_LIST_IDS_SQL[] = CUSTOMER_LIST_SQL_("+c.tenant_id=:scope_tenant");

static const char DRIVE_TAG[] =
    "AND c.id IN (SELECT dt.customer_id FROM customer_tag dt WHERE dt.tenant_id=:scope_tenant "
    "AND dt.tag_id=:tag)";
static const char DRIVE_EMP[] =
    "AND c.id IN (SELECT dr.customer_id FROM relationship dr WHERE dr.tenant_id=:scope_tenant "
    "AND dr.employee_id=:drv_emp AND dr.status=:drv_status)";

static const char DRIVE_IDS[] = "AND c.id IN (SELECT value FROM json_each(:ids))";

static const char DRIVE_ADDED[] =
    "AND c.id IN (SELECT da.customer_id FROM relationship da WHERE da.tenant_id=:scope_tenant "
    "AND da.added_at>=:after AND (:before<0 OR da.added_at<:before))";

/* The indexed set a page of customers is driven by (see the file comment). */
typedef struct list_driver {
    const char *sql;    /* "" = walk the tenant's customers by id */
    int64_t emp;        /* DRIVE_EMP: the employee */
    const char *status; /* DRIVE_EMP: the relationship status */
} list_driver;

/* Bounded sets first: one employee's relationships (thousands at most), then
 * a tag, then an added_at range with a lower bound (usually recent). */
static list_driver customer_driver(const http_auth *a, const customer_filter *f, int64_t emp,
                                   const char *rstatus) {
    if (f->ids) return (list_driver){DRIVE_IDS, 0, NULL};
    if (emp) return (list_driver){DRIVE_EMP, emp, rstatus};
    if (a->role == ROLE_EMPLOYEE) return (list_driver){DRIVE_EMP, a->employee_id, "active"};
    if (f->tag_id > 0) return (list_driver){DRIVE_TAG, 0, NULL};
    if (f->added_after >= 0) return (list_driver){DRIVE_ADDED, 0, NULL};
    return (list_driver){"", 0, NULL};
}

/* q as a LIKE prefix pattern with %, _ and \ escaped. */
static void like_prefix(const char *q, char *out, size_t cap) {
    size_t k = 0;
    for (; *q && k + 3 < cap; q++) {
        if (*q == '%' || *q == '_' || *q == '\\') out[k++] = '\\';
        out[k++] = *q;
    }
    out[k++] = '%';
    out[k] = 0;
}

static int customer_filter_check(store_conn *c, const http_auth *a, const customer_filter *f,
                                 int64_t *emp, siyu_err *err) {
    static const char *const statuses[] = {"active", "lost", NULL};
    if (customer_arg_str(f->status, "status", 16, statuses, err) ||
        customer_arg_str(f->rel_status, "relationship_status", 32, customer_rel_statuses, err) ||
        customer_arg_str(f->q, "q", CUSTOMER_Q_MAX, NULL, err) ||
        added_range_check(f->added_after, f->added_before, err))
        return SIYU_EINVAL;
    *emp = 0;
    if (f->employee &&
        customer_employee_resolve(c, a->tenant_id, f->employee, "employee", emp, err) != 0)
        return err->code;
    if (f->tag_id > 0) {
        sqlite3_stmt *st = store_conn_stmt(c, "SELECT 1 FROM tag WHERE tenant_id=?1 AND id=?2");
        if (!st) return io_error(err);
        sqlite3_bind_int64(st, 1, a->tenant_id);
        sqlite3_bind_int64(st, 2, f->tag_id);
        bool found = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
        if (!found) return siyu_err_set(err, SIYU_EINVAL, "tag", "parameter 'tag': no such tag");
    }
    return 0;
}

int customer_list_json(store_conn *c, const http_auth *a, const customer_filter *f,
                       const customer_page *p, json_t **out, siyu_err *err) {
    int64_t emp;
    if (customer_filter_check(c, a, f, &emp, err) != 0) return err->code;
    const char *rstatus = f->rel_status ? f->rel_status : emp ? "active" : NULL;
    /* Scoped roles only see customers with an active relationship (auth.h),
     * so none of theirs is lost: answer without walking the tenant. */
    if (f->status && strcmp(f->status, "lost") == 0 &&
        (a->role == ROLE_MANAGER || a->role == ROLE_EMPLOYEE)) {
        *out = json_pack("{s:[],s:n}", "items", "next_cursor");
        return 0;
    }
    list_driver d = customer_driver(a, f, emp, rstatus);
    sqlite3_stmt *st =
        stmt_fmt(c, f->ids ? CUSTOMER_LIST_IDS_SQL : CUSTOMER_LIST_SQL, auth_scope_sql(a), d.sql);
    if (!st) return io_error(err);
    auth_scope_bind(st, a);
    bind_page(st, p, 0, 0);
    bind_int(st, ":rel", emp || rstatus || f->added_after >= 0 || f->added_before >= 0);
    bind_int(st, ":emp", emp);
    bind_text(st, ":rstatus", rstatus);
    bind_int(st, ":after", f->added_after);
    bind_int(st, ":before", f->added_before);
    bind_int(st, ":tag", f->tag_id > 0 ? f->tag_id : 0);
    bind_text(st, ":status", f->status);
    bind_int(st, ":drv_emp", d.emp);
    bind_text(st, ":drv_status", d.status);
    bind_text(st, ":ids", f->ids);
    if (f->q && *f->q) {
        char pat[2 * CUSTOMER_Q_MAX + 2];
        like_prefix(f->q, pat, sizeof pat);
        bind_text(st, ":q", pat);
    }
    int rc = page_collect(c, st, p, CUSTOMER_LIST_CUSTOMERS, customer_item, (void *)a, out);
    return rc ? io_error(err) : 0;
}

/* ---- the customer 360 view ---- */

/* Adds j[key] = capped rows of st, noting a capped list in j["truncated"]. */
static int add_list(json_t *j, const char *key, store_conn *c, sqlite3_stmt *st, row_fn fn,
                    void *ctx) {
    if (!st) return SIYU_EIO;
    bool cut;
    json_t *arr = rows_capped(c, st, fn, ctx, &cut);
    if (!arr) return SIYU_EIO;
    json_object_set_new(j, key, arr);
    if (cut) json_array_append_new(json_object_get(j, "truncated"), json_string(key));
    return 0;
}

static int add_profile(store_conn *c, const http_auth *a, int64_t cid, json_t *j) {
    sqlite3_stmt *st = stmt_bound(
        c,
        "SELECT c.id, c.external_userid, c.name, c.gender, c.type, c.corp_name, "
        "c.first_added_at, c.created_at, c.updated_at, (SELECT count(*) FROM relationship ar "
        "WHERE ar.tenant_id=c.tenant_id AND ar.customer_id=c.id AND ar.status='active'), "
        "c.region, c.stage, c.phone FROM customer c WHERE c.tenant_id=?1 AND c.id=?2",
        a->tenant_id, cid);
    if (!st) return SIYU_EIO;
    static const char *const names[] = {
        "id",        "external_userid", "name",       "gender",     "type",
        "corp_name", "first_added_at",  "created_at", "updated_at", NULL};
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        cols_into(j, st, 0, names);
        int64_t active = sqlite3_column_int64(st, 9);
        json_object_set_new(j, "status", json_string(active > 0 ? "active" : "lost"));
        json_object_set_new(j, "active_relationships", json_integer(active));
        json_object_set_new(j, "region", col(st, 10));
        json_object_set_new(j, "stage", col(st, 11));
        json_object_set_new(j, "phone", phone_json(a, st, 12));
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? SIYU_ENOTFOUND : SIYU_EIO;
}

static int add_identities(store_conn *c, int64_t tenant, int64_t cid, json_t *j) {
    static const char *const names[] = {"kind", "value", "created_at", NULL};
    sqlite3_stmt *st = stmt_bound(c,
                                  "SELECT kind, value, created_at FROM identity WHERE "
                                  "tenant_id=?1 AND customer_id=?2 ORDER BY id LIMIT ?3",
                                  tenant, cid);
    return add_list(j, "identities", c, st, named_item, (void *)names);
}

static json_t *rel360_item(store_conn *c, sqlite3_stmt *st, void *ctx) {
    (void)c;
    (void)ctx;
    static const char *const names[] = {"id",         "status",      "state",    "add_way",
                                        "remark",     "description", "added_at", "ended_at",
                                        "end_reason", NULL};
    json_t *o = cols_into(json_object(), st, 0, names);
    json_object_set_new(o, "employee", employee_ref(st, 9));
    return o;
}

static const char REL_360_SQL[] =
    "SELECT r.id, r.status, r.state, r.add_way, r.remark, r.description, r.added_at, "
    "r.ended_at, r.end_reason, r.employee_id, e.userid, e.name FROM relationship r "
    "LEFT JOIN employee e ON e.id=r.employee_id AND e.tenant_id=r.tenant_id "
    "WHERE r.tenant_id=:scope_tenant AND r.customer_id=:cid AND (%s)%s "
    "ORDER BY r.added_at, r.id LIMIT :n";

/* Relationships of the customer the token may see (see rel_scope_sql). */
static int add_relationships(store_conn *c, const http_auth *a, int64_t cid, json_t *j) {
    sqlite3_stmt *st = stmt_fmt(c, REL_360_SQL, rel_scope_sql(a), NULL);
    if (st) {
        auth_scope_bind(st, a);
        bind_int(st, ":cid", cid);
        bind_int(st, ":n", CUSTOMER_360_LIST_MAX + 1);
    }
    return add_list(j, "relationships", c, st, rel360_item, NULL);
}

static json_t *tag360_item(store_conn *c, sqlite3_stmt *st, void *ctx) {
    (void)c;
    (void)ctx;
    static const char *const names[] = {"id", "name", "source", "employee_id", "created_at", NULL};
    static const char *const gnames[] = {"id", "name", NULL};
    json_t *o = cols_into(json_object(), st, 0, names);
    json_object_set_new(o, "group",
                        sqlite3_column_type(st, 5) == SQLITE_NULL
                            ? json_null()
                            : cols_into(json_object(), st, 5, gnames));
    return o;
}

static int add_tags(store_conn *c, int64_t tenant, int64_t cid, json_t *j) {
    sqlite3_stmt *st = stmt_bound(
        c,
        "SELECT t.id, t.name, ct.source, ct.employee_id, ct.created_at, g.id, g.name "
        "FROM customer_tag ct JOIN tag t ON t.id=ct.tag_id AND t.tenant_id=ct.tenant_id "
        "LEFT JOIN tag_group g ON g.id=t.group_id AND g.tenant_id=t.tenant_id "
        "WHERE ct.tenant_id=?1 AND ct.customer_id=?2 ORDER BY ct.created_at, t.id LIMIT ?3",
        tenant, cid);
    return add_list(j, "tags", c, st, tag360_item, NULL);
}

static int add_groups(store_conn *c, int64_t tenant, int64_t cid, json_t *j) {
    static const char *const names[] = {"id",     "chat_id",   "name",    "group_status",
                                        "status", "joined_at", "left_at", NULL};
    sqlite3_stmt *st = stmt_bound(
        c,
        "SELECT g.id, g.chat_id, g.name, g.status, m.status, m.joined_at, m.left_at "
        "FROM group_member m JOIN group_chat g ON g.id=m.group_id AND g.tenant_id=m.tenant_id "
        "WHERE m.tenant_id=?1 AND m.customer_id=?2 ORDER BY m.joined_at, g.id LIMIT ?3",
        tenant, cid);
    return add_list(j, "groups", c, st, named_item, (void *)names);
}

/* One page of a customer's events (caller checked visibility). */
static int events_page(store_conn *c, const http_auth *a, int64_t cid, const char *type,
                       const customer_page *p, json_t **out);

static int add_events(store_conn *c, const http_auth *a, int64_t cid, json_t *j) {
    customer_page p = {.limit = CUSTOMER_360_EVENTS};
    json_t *page;
    if (events_page(c, a, cid, NULL, &p, &page) != 0) return SIYU_EIO;
    json_object_set(j, "events", json_object_get(page, "items"));
    json_object_set(j, "events_next_cursor", json_object_get(page, "next_cursor"));
    json_decref(page);
    return 0;
}

int customer_get_json(store_conn *c, const http_auth *a, int64_t id, json_t **out, siyu_err *err) {
    if (!auth_can_see_customer(c, a, id)) return not_found(err, "customer", id);
    json_t *j = json_pack("{s:[]}", "truncated");
    int rc = add_profile(c, a, id, j);
    if (!rc) rc = add_identities(c, a->tenant_id, id, j);
    if (!rc) rc = add_relationships(c, a, id, j);
    if (!rc) rc = add_tags(c, a->tenant_id, id, j);
    if (!rc) rc = add_groups(c, a->tenant_id, id, j);
    if (!rc) rc = add_events(c, a, id, j);
    if (rc) {
        json_decref(j);
        return rc == SIYU_ENOTFOUND ? not_found(err, "customer", id) : io_error(err);
    }
    *out = j;
    return 0;
}

/* ---- timeline ---- */

static json_t *event_item(store_conn *c, sqlite3_stmt *st, void *ctx) {
    (void)c;
    (void)ctx;
    static const char *const names[] = {"ts", "id", "type", "source", NULL};
    json_t *j = cols_into(json_object(), st, 0, names);
    json_object_set_new(j, "employee", employee_ref(st, 4));
    json_object_set_new(j, "props", props_json(st, 7));
    return j;
}

/* Newest first by (ts, id); the cursor is the last (ts, id) seen. */
static int events_page(store_conn *c, const http_auth *a, int64_t cid, const char *type,
                       const customer_page *p, json_t **out) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT e.ts, e.id, e.type, e.source, e.employee_id, em.userid, em.name, e.props "
           "FROM event e LEFT JOIN employee em ON em.id=e.employee_id AND "
           "em.tenant_id=e.tenant_id WHERE e.tenant_id=:scope_tenant AND e.customer_id=:cid "
           "AND e.ts<=:k0 AND (e.ts<:k0 OR e.id<:k1) AND (:type IS NULL OR e.type=:type) "
           "ORDER BY e.ts DESC, e.id DESC LIMIT :n");
    if (!st) return SIYU_EIO;
    auth_scope_bind(st, a);
    bind_int(st, ":cid", cid);
    bind_page(st, p, INT64_MAX, INT64_MAX);
    bind_text(st, ":type", type);
    return page_collect(c, st, p, CUSTOMER_LIST_EVENTS, event_item, NULL, out);
}

int customer_events_json(store_conn *c, const http_auth *a, int64_t id, const char *type,
                         const customer_page *p, json_t **out, siyu_err *err) {
    if (customer_arg_str(type, "type", CUSTOMER_ARG_MAX, NULL, err) != 0) return SIYU_EINVAL;
    if (!auth_can_see_customer(c, a, id)) return not_found(err, "customer", id);
    return events_page(c, a, id, type, p, out) ? io_error(err) : 0;
}

/* ---- relationships ---- */

static const char REL_LIST_SQL[] =
    "SELECT r.id, r.status, r.state, r.add_way, r.remark, r.description, r.added_at, "
    "r.ended_at, r.end_reason, r.updated_at, r.employee_id, e.userid, e.name, r.customer_id, "
    "c.external_userid, c.name FROM relationship r "
    "JOIN customer c ON c.id=r.customer_id AND c.tenant_id=r.tenant_id "
    "LEFT JOIN employee e ON e.id=r.employee_id AND e.tenant_id=r.tenant_id "
    "WHERE r.tenant_id=:scope_tenant AND r.id>:k0 AND (%s) %s "
    "AND (:emp=0 OR r.employee_id=:emp) AND (:cid=0 OR r.customer_id=:cid) "
    "AND (:status IS NULL OR r.status=:status) AND (:state IS NULL OR r.state=:state) "
    "AND (:after<0 OR r.added_at>=:after) AND (:before<0 OR r.added_at<:before) "
    "ORDER BY r.id LIMIT :n";

static json_t *rel_item(store_conn *c, sqlite3_stmt *st, void *ctx) {
    (void)c;
    (void)ctx;
    static const char *const names[] = {"id",         "status",      "state",    "add_way",
                                        "remark",     "description", "added_at", "ended_at",
                                        "end_reason", "updated_at",  NULL};
    static const char *const cnames[] = {"id", "external_userid", "name", NULL};
    json_t *j = cols_into(json_object(), st, 0, names);
    json_object_set_new(j, "employee", employee_ref(st, 10));
    json_object_set_new(j, "customer", cols_into(json_object(), st, 13, cnames));
    return j;
}

int customer_relationship_list_json(store_conn *c, const http_auth *a, const customer_rel_filter *f,
                                    const customer_page *p, json_t **out, siyu_err *err) {
    if (customer_arg_str(f->status, "status", 32, customer_rel_statuses, err) ||
        customer_arg_str(f->state, "state", CUSTOMER_ARG_MAX, NULL, err) ||
        added_range_check(f->added_after, f->added_before, err))
        return SIYU_EINVAL;
    int64_t emp = 0;
    if (f->employee &&
        customer_employee_resolve(c, a->tenant_id, f->employee, "employee", &emp, err) != 0)
        return err->code;
    const char *drive = "";
    if (f->customer_id > 0)
        drive = "AND r.id IN (SELECT dr.id FROM relationship dr WHERE dr.tenant_id=:scope_tenant "
                "AND dr.customer_id=:cid)";
    else if (emp)
        drive = "AND r.id IN (SELECT dr.id FROM relationship dr WHERE dr.tenant_id=:scope_tenant "
                "AND dr.employee_id=:emp)";
    sqlite3_stmt *st = stmt_fmt(c, REL_LIST_SQL, rel_scope_sql(a), drive);
    if (!st) return io_error(err);
    auth_scope_bind(st, a);
    bind_page(st, p, 0, 0);
    bind_int(st, ":emp", emp);
    bind_int(st, ":cid", f->customer_id > 0 ? f->customer_id : 0);
    bind_text(st, ":status", f->status);
    bind_text(st, ":state", f->state);
    bind_int(st, ":after", f->added_after);
    bind_int(st, ":before", f->added_before);
    return page_collect(c, st, p, CUSTOMER_LIST_RELATIONSHIPS, rel_item, NULL, out) ? io_error(err)
                                                                                    : 0;
}

/* ---- relationship remark ---- */

static int remark_lengths(customer_remark_input *in) {
    if (in->remark && utf8_chars(in->remark) > CUSTOMER_REMARK_MAX)
        return siyu_err_set(&in->err, SIYU_EINVAL, "remark", "remark must be at most %d characters",
                            CUSTOMER_REMARK_MAX);
    if (in->description && utf8_chars(in->description) > CUSTOMER_DESCRIPTION_MAX)
        return siyu_err_set(&in->err, SIYU_EINVAL, "description",
                            "description must be at most %d characters", CUSTOMER_DESCRIPTION_MAX);
    if (!in->remark && !in->description)
        return siyu_err_set(&in->err, SIYU_EINVAL, "remark", "give remark or description");
    /* WeCom refuses a remark call whose fields are all empty (spec §3.2). */
    if ((!in->remark || !*in->remark) && (!in->description || !*in->description))
        return siyu_err_set(&in->err, SIYU_EINVAL, in->remark ? "remark" : "description",
                            "WeCom needs a non-empty remark or description; to clear one, send "
                            "it empty together with the other one");
    return 0;
}

int customer_relationship_remark(store_conn *c, void *arg) {
    customer_remark_input *in = arg;
    int rc = remark_lengths(in);
    if (rc != 0) return rc;
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT r.id, r.status, e.userid, (SELECT value FROM identity i WHERE "
             "i.tenant_id=r.tenant_id AND i.customer_id=r.customer_id AND "
             "i.kind='wecom_external_userid' LIMIT 1) FROM relationship r JOIN employee e ON "
             "e.id=r.employee_id WHERE r.tenant_id=:scope_tenant AND r.customer_id=:cid AND "
             "r.employee_id=:eid AND (%s)",
             rel_scope_sql(&in->auth));
    sqlite3_stmt *st = store_conn_stmt(c, sql);
    if (!st) return SIYU_EIO;
    auth_scope_bind(st, &in->auth);
    bind_int(st, ":cid", in->customer_id);
    bind_int(st, ":eid", in->employee_id);
    int step = sqlite3_step(st);
    char status[32] = "", userid[72] = "", ext[128] = "";
    if (step == SQLITE_ROW) {
        in->relationship_id = sqlite3_column_int64(st, 0);
        snprintf(status, sizeof status, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(userid, sizeof userid, "%s", (const char *)sqlite3_column_text(st, 2));
        const char *e = (const char *)sqlite3_column_text(st, 3);
        snprintf(ext, sizeof ext, "%s", e ? e : "");
    }
    sqlite3_reset(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) return store_rc(step);
    if (step == SQLITE_DONE)
        return siyu_err_set(&in->err, SIYU_ENOTFOUND, NULL,
                            "customer %lld has no relationship with employee %lld",
                            (long long)in->customer_id, (long long)in->employee_id);
    if (strcmp(status, "active") != 0)
        return siyu_err_set(&in->err, SIYU_ECONFLICT, NULL, "the relationship is %s, not active",
                            status);
    if (!ext[0])
        return siyu_err_set(&in->err, SIYU_ECONFLICT, NULL,
                            "customer %lld has no WeCom external_userid",
                            (long long)in->customer_id);
    st = store_conn_stmt(c, "UPDATE relationship SET remark=coalesce(?2, remark), "
                            "description=coalesce(?3, description), updated_at=?4 WHERE id=?1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->relationship_id);
    if (in->remark) sqlite3_bind_text(st, 2, in->remark, -1, SQLITE_STATIC);
    if (in->description) sqlite3_bind_text(st, 3, in->description, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, siyu_now());
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return store_rc(rc);
    json_t *body = json_pack("{s:s,s:s}", "userid", userid, "external_userid", ext);
    if (!body) return SIYU_ENOMEM;
    if (in->remark) json_object_set_new(body, "remark", json_string(in->remark));
    if (in->description) json_object_set_new(body, "description", json_string(in->description));
    char ref[48], origin[64];
    snprintf(ref, sizeof ref, "relationship:%lld", (long long)in->relationship_id);
    snprintf(origin, sizeof origin, "remark:%s", in->actor ? in->actor : "system");
    outbox_item it = {.tenant_id = in->auth.tenant_id,
                      .kind = "remark",
                      .body = body,
                      .lane = OUTBOX_LANE_NORMAL,
                      .origin = origin,
                      .ref = ref};
    rc = outbox_enqueue(c, &it, NULL, &in->err);
    json_decref(body);
    if (rc != 0) return rc;
    in->kick |= 1u << OUTBOX_LANE_NORMAL;
    return store_audit(c, in->auth.tenant_id, in->actor, "relationship.remark", ref, 1,
                       in->remark && in->description ? "remark,description"
                       : in->remark                  ? "remark"
                                                     : "description");
}

/* ---- customer fields ---- */

static int label_check(const char *v, const char *name, siyu_err *err) {
    size_t n = v ? strlen(v) : 1;
    if (n == 0 || n > CUSTOMER_LABEL_MAX)
        return siyu_err_set(err, SIYU_EINVAL, name,
                            "field '%s' must be 1..%d bytes (null clears it)", name,
                            CUSTOMER_LABEL_MAX);
    if (v && !text_is_clean(v))
        return siyu_err_set(err, SIYU_EINVAL, name, "field '%s' must not hold control characters",
                            name);
    return 0;
}

int customer_fields_check(customer_fields_input *in) {
    if (!in->has_region && !in->has_stage && !in->has_phone)
        return siyu_err_set(&in->err, SIYU_EINVAL, NULL, "give region, stage or phone");
    if ((in->has_region && label_check(in->region, "region", &in->err)) ||
        (in->has_stage && label_check(in->stage, "stage", &in->err)))
        return SIYU_EINVAL;
    char norm[PHONE_DIGITS + 1];
    const char *why;
    if (in->has_phone && in->phone && phone_normalize(in->phone, norm, &why) != 0)
        return siyu_err_set(&in->err, SIYU_EINVAL, "phone", "field 'phone' %s", why);
    return 0;
}

int customer_fields_update(store_conn *c, void *arg) {
    customer_fields_input *in = arg;
    int rc = customer_fields_check(in);
    if (rc) return rc;
    char norm[PHONE_DIGITS + 1];
    const char *why;
    const char *phone = NULL;
    if (in->has_phone && in->phone) {
        phone_normalize(in->phone, norm, &why);
        phone = norm;
    }
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE customer SET region=CASE WHEN ?3 THEN ?4 ELSE region END, "
           "stage=CASE WHEN ?5 THEN ?6 ELSE stage END, phone=CASE WHEN ?7 THEN ?8 ELSE phone "
           "END, updated_at=?9 WHERE tenant_id=?1 AND id=?2 RETURNING id, region, stage, phone");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->customer_id);
    sqlite3_bind_int(st, 3, in->has_region);
    store_bind_text(st, 4, in->region);
    sqlite3_bind_int(st, 5, in->has_stage);
    store_bind_text(st, 6, in->stage);
    sqlite3_bind_int(st, 7, in->has_phone);
    store_bind_text(st, 8, phone);
    sqlite3_bind_int64(st, 9, siyu_now());
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        static const char *const names[] = {"id", "region", "stage", "phone", NULL};
        json_decref(in->result);
        in->result = cols_into(json_object(), st, 0, names);
        step = sqlite3_step(st);
    }
    bool found = in->result != NULL;
    sqlite3_reset(st);
    if (step != SQLITE_DONE) return store_rc(step);
    if (!found) return not_found(&in->err, "customer", in->customer_id);
    char target[40], detail[32];
    snprintf(target, sizeof target, "customer:%lld", (long long)in->customer_id);
    snprintf(detail, sizeof detail, "%s%s%s%s%s", in->has_region ? "region" : "",
             in->has_region && in->has_stage ? "," : "", in->has_stage ? "stage" : "",
             in->has_phone && (in->has_region || in->has_stage) ? "," : "",
             in->has_phone ? "phone" : "");
    rc = store_audit(c, in->tenant_id, in->actor, "customer.update", target, 1, detail);
    unsigned kick = 0; /* auto-tag rules on the new stage (store/tag_rule.h) */
    if (rc == 0 && in->has_stage && in->stage)
        rc = tag_rule_on_stage(c, in->tenant_id, in->customer_id, in->stage, &kick);
    return rc;
}

/* ---- group chats ---- */

/* Group chat alias `g` visible to the token. */
static const char *group_scope_sql(const http_auth *a) {
    switch (a->role) {
    case ROLE_EMPLOYEE:
        return "g.owner_userid=(SELECT userid FROM employee WHERE id=:scope_emp AND "
               "tenant_id=:scope_tenant) OR EXISTS (SELECT 1 FROM group_member sm WHERE "
               "sm.tenant_id=:scope_tenant AND sm.group_id=g.id AND sm.status='in' AND "
               "(sm.employee_id=:scope_emp OR sm.member_id=(SELECT userid FROM employee "
               "WHERE id=:scope_emp AND tenant_id=:scope_tenant)))";
    case ROLE_MANAGER:
        return "g.owner_userid IN (SELECT userid FROM employee WHERE id IN " TEAM_SQL ")";
    case ROLE_ADMIN:
    case ROLE_OPERATOR:
        return "1";
    }
    return "0";
}

/* Columns: 0 id, 1 chat_id, 2 name, 3 owner_userid, 4 status, 5 notice,
 * 6 created_at, 7 dismissed_at, 8 updated_at, 9 members in. */
#define GROUP_COLS                                                                                 \
    "g.id, g.chat_id, g.name, g.owner_userid, g.status, g.notice, g.created_at, "                  \
    "g.dismissed_at, g.updated_at, (SELECT count(*) FROM group_member mc WHERE "                   \
    "mc.tenant_id=g.tenant_id AND mc.group_id=g.id AND mc.status='in')"

static json_t *group_item(store_conn *c, sqlite3_stmt *st, void *ctx) {
    (void)c;
    (void)ctx;
    static const char *const names[] = {"id",         "chat_id",      "name",       "owner_userid",
                                        "status",     "notice",       "created_at", "dismissed_at",
                                        "updated_at", "member_count", NULL};
    return cols_into(json_object(), st, 0, names);
}

int customer_group_list_json(store_conn *c, const http_auth *a, const customer_group_filter *f,
                             const customer_page *p, json_t **out, siyu_err *err) {
    static const char *const statuses[] = {"active", "dismissed", NULL};
    if (customer_arg_str(f->status, "status", 16, statuses, err) ||
        customer_arg_str(f->owner, "owner", CUSTOMER_ARG_MAX, NULL, err))
        return SIYU_EINVAL;
    sqlite3_stmt *st = stmt_fmt(c,
                                "SELECT " GROUP_COLS " FROM group_chat g WHERE "
                                "g.tenant_id=:scope_tenant AND g.id>:k0 AND (%s)%s AND "
                                "(:status IS NULL OR g.status=:status) AND (:owner IS NULL OR "
                                "g.owner_userid=:owner) ORDER BY g.id LIMIT :n",
                                group_scope_sql(a), NULL);
    if (!st) return io_error(err);
    auth_scope_bind(st, a);
    bind_page(st, p, 0, 0);
    bind_text(st, ":status", f->status);
    bind_text(st, ":owner", f->owner);
    return page_collect(c, st, p, CUSTOMER_LIST_GROUPS, group_item, NULL, out) ? io_error(err) : 0;
}

/* The group row if visible: 0 and *out, SIYU_ENOTFOUND or SIYU_EIO. */
static int group_row(store_conn *c, const http_auth *a, int64_t id, json_t **out) {
    sqlite3_stmt *st = stmt_fmt(c,
                                "SELECT " GROUP_COLS " FROM group_chat g WHERE "
                                "g.tenant_id=:scope_tenant AND g.id=:gid AND (%s)%s",
                                group_scope_sql(a), NULL);
    if (!st) return SIYU_EIO;
    auth_scope_bind(st, a);
    bind_int(st, ":gid", id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = group_item(c, st, NULL);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? SIYU_ENOTFOUND : SIYU_EIO;
}

static json_t *member_item(store_conn *c, sqlite3_stmt *st, void *ctx) {
    (void)c;
    (void)ctx;
    static const char *const names[] = {"member_id", "customer_id", "employee_id",
                                        "status",    "join_scene",  "quit_scene",
                                        "joined_at", "left_at",     NULL};
    json_t *j = cols_into(json_object(), st, 1, names);
    /* Members that are not known employees are the group's external contacts. */
    bool employee = sqlite3_column_type(st, 3) != SQLITE_NULL;
    json_object_set_new(j, "type", json_string(employee ? "employee" : "customer"));
    return j;
}

static int members_page(store_conn *c, const http_auth *a, int64_t gid, const customer_page *p,
                        json_t **out) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT m.rowid, m.member_id, m.customer_id, m.employee_id, m.status, m.join_scene, "
           "m.quit_scene, m.joined_at, m.left_at FROM group_member m WHERE "
           "m.tenant_id=:scope_tenant AND m.group_id=:gid AND m.rowid>:k0 "
           "ORDER BY m.rowid LIMIT :n");
    if (!st) return SIYU_EIO;
    auth_scope_bind(st, a);
    bind_int(st, ":gid", gid);
    bind_page(st, p, 0, 0);
    return page_collect(c, st, p, CUSTOMER_LIST_MEMBERS, member_item, NULL, out);
}

static int group_err(int rc, int64_t id, siyu_err *err) {
    return rc == SIYU_ENOTFOUND ? not_found(err, "group chat", id) : io_error(err);
}

int customer_group_get_json(store_conn *c, const http_auth *a, int64_t id, const customer_page *p,
                            json_t **out, siyu_err *err) {
    json_t *g = NULL, *page = NULL;
    int rc = group_row(c, a, id, &g);
    if (!rc) rc = members_page(c, a, id, p, &page);
    if (rc) {
        json_decref(g);
        return group_err(rc, id, err);
    }
    json_object_set(g, "members", json_object_get(page, "items"));
    json_object_set(g, "members_next_cursor", json_object_get(page, "next_cursor"));
    json_decref(page);
    *out = g;
    return 0;
}

int customer_group_members_json(store_conn *c, const http_auth *a, int64_t id,
                                const customer_page *p, json_t **out, siyu_err *err) {
    json_t *g = NULL;
    int rc = group_row(c, a, id, &g);
    json_decref(g);
    if (!rc) rc = members_page(c, a, id, p, out);
    return rc ? group_err(rc, id, err) : 0;
}

/* ---- audit log ---- */

static json_t *audit_item(store_conn *c, sqlite3_stmt *st, void *ctx) {
    (void)c;
    (void)ctx;
    static const char *const names[] = {"created_at", "id",    "actor",  "action",
                                        "target",     "count", "detail", NULL};
    return cols_into(json_object(), st, 0, names);
}

int customer_audit_list_json(store_conn *c, int64_t tenant_id, const char *action, int64_t since,
                             const customer_page *p, json_t **out, siyu_err *err) {
    if (customer_arg_str(action, "action", CUSTOMER_ARG_MAX, NULL, err) != 0) return SIYU_EINVAL;
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT created_at, id, actor, action, target, count, detail FROM audit_log "
           "WHERE tenant_id=:t AND created_at<=:k0 AND (created_at<:k0 OR id<:k1) "
           "AND created_at>=:since AND (:action IS NULL OR action=:action) "
           "ORDER BY created_at DESC, id DESC LIMIT :n");
    if (!st) return io_error(err);
    bind_int(st, ":t", tenant_id);
    bind_int(st, ":since", since >= 0 ? since : INT64_MIN);
    bind_text(st, ":action", action);
    bind_page(st, p, INT64_MAX, INT64_MAX);
    return page_collect(c, st, p, CUSTOMER_LIST_AUDIT, audit_item, NULL, out) ? io_error(err) : 0;
}
