/* test_engine.c — the segment engine (src/segment/engine.c) against a naive
 * evaluator. A seeded random world (customers, relationships with states and
 * statuses, tags, departments with sub-departments and cycles, stores, group
 * chats, events with edge times and order amounts) is written into a real
 * store (inline writer); after every step the engine is rebuilt, validated,
 * and random expressions (text through expr_parse) are evaluated by the
 * engine and by a plain-array evaluator over rows read back by SQL; the
 * customer sets and the unknown-name errors must be identical. Targeted cases
 * cover each predicate and the window edges. SEED=n and STEPS=n override. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment/engine.h"
#include "segment/expr.h"
#include "store/store.h"
#include "store/tenant.h"
#include "testlib.h"

#define NOW 1700000000LL
#define DAY 86400LL
#define NONE INT64_MIN

/* ---- writing ------------------------------------------------------------------ */

static int exec_fn(store_conn *c, void *arg) {
    return store_conn_exec(c, (const char *)arg);
}

static void sqlf(store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sqlf(store *st, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    int rc = store_write(st, exec_fn, buf);
    if (rc != 0) fail_msg("sql failed (%d): %s", rc, buf);
}

static int64_t last_id(store *st, const char *table) {
    store_conn *c = store_reader_acquire(st);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT max(id) FROM %s", table);
    sqlite3_stmt *s = store_conn_stmt(c, sql);
    int64_t id = 0;
    if (sqlite3_step(s) == SQLITE_ROW) id = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    store_reader_release(st, c);
    return id;
}

static int64_t make_tenant(store *st, const char *name) {
    tenant_input in = {.name = name, .actor = "test"};
    assert_int_equal(store_write(st, tenant_create, &in), 0);
    return in.id;
}

/* ---- the naive model: rows read back by SQL into plain arrays -------------- */

typedef struct rec {
    int64_t id, a, b; /* a, b: per table (see load) */
    char *name, *s;
} rec;

typedef struct rows {
    rec *v;
    size_t n;
} rows;

typedef struct model {
    rows cust; /* id, name=region, a=gender, b=first_added (NONE), s=stage */
    rows tags; /* id, name */
    rows ctag; /* a=customer, b=tag */
    rows emp;  /* id, name, a=department, b=store */
    rows dep;  /* id, name, a=parent */
    rows sto;  /* id, name */
    rows grp;  /* id, name, s=status */
    rows mem;  /* a=group, b=customer, s=status */
    rows rel;  /* a=customer, b=employee, s=status, name=state */
    rows ev;   /* id, a=customer, b=ts, name=type, s=props */
} model;

static void load(store_conn *c, rows *r, const char *sql, int64_t tenant) {
    sqlite3 *db = store_conn_db(c);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    sqlite3_bind_int64(s, 1, tenant);
    size_t cap = 0;
    r->v = NULL;
    r->n = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (r->n == cap) {
            cap = cap ? cap * 2 : 64;
            r->v = realloc(r->v, cap * sizeof *r->v);
        }
        rec *x = &r->v[r->n++];
        memset(x, 0, sizeof *x);
        int nc = sqlite3_column_count(s);
        x->id = sqlite3_column_int64(s, 0);
        if (nc > 1 && sqlite3_column_type(s, 1) != SQLITE_NULL)
            x->name = strdup((const char *)sqlite3_column_text(s, 1));
        x->a =
            nc > 2 && sqlite3_column_type(s, 2) != SQLITE_NULL ? sqlite3_column_int64(s, 2) : NONE;
        x->b =
            nc > 3 && sqlite3_column_type(s, 3) != SQLITE_NULL ? sqlite3_column_int64(s, 3) : NONE;
        if (nc > 4 && sqlite3_column_type(s, 4) != SQLITE_NULL)
            x->s = strdup((const char *)sqlite3_column_text(s, 4));
    }
    sqlite3_finalize(s);
}

static void model_load(store *st, int64_t tenant, model *m) {
    store_conn *c = store_reader_acquire(st);
    load(c, &m->cust,
         "SELECT id, region, gender, first_added_at, stage FROM customer WHERE tenant_id=? "
         "ORDER BY id",
         tenant);
    load(c, &m->tags, "SELECT id, name FROM tag WHERE tenant_id=?", tenant);
    load(c, &m->ctag, "SELECT 0, NULL, customer_id, tag_id FROM customer_tag WHERE tenant_id=?",
         tenant);
    load(c, &m->emp, "SELECT id, name, department_id, store_id FROM employee WHERE tenant_id=?",
         tenant);
    load(c, &m->dep, "SELECT id, name, parent_id FROM department WHERE tenant_id=?", tenant);
    load(c, &m->sto, "SELECT id, name FROM store WHERE tenant_id=?", tenant);
    load(c, &m->grp, "SELECT id, name, NULL, NULL, status FROM group_chat WHERE tenant_id=?",
         tenant);
    load(c, &m->mem,
         "SELECT 0, NULL, group_id, customer_id, status FROM group_member WHERE tenant_id=?",
         tenant);
    load(c, &m->rel,
         "SELECT 0, state, customer_id, employee_id, status FROM relationship WHERE tenant_id=?",
         tenant);
    load(c, &m->ev, "SELECT id, type, customer_id, ts, props FROM event WHERE tenant_id=?", tenant);
    store_reader_release(st, c);
}

static void rows_free(rows *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].name);
        free(r->v[i].s);
    }
    free(r->v);
}

static void model_free(model *m) {
    rows *all[] = {&m->cust, &m->tags, &m->ctag, &m->emp, &m->dep,
                   &m->sto,  &m->grp,  &m->mem,  &m->rel, &m->ev};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        rows_free(all[i]);
}

static bool streq(const char *a, const char *b) {
    return a && b && strcmp(a, b) == 0;
}

static const rec *by_id(const rows *r, int64_t id) {
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].id == id) return &r->v[i];
    return NULL;
}

static bool val_match(const expr_value *v, const rec *r) {
    return v->kind == EXPR_VAL_ID ? r->id == v->id : streq(r->name, v->name);
}

/* Is a value of a record dimension known? */
static bool known(const model *m, expr_dim d, const expr_value *v) {
    const rows *r = NULL;
    switch (d) {
    case EXPR_DIM_TAG:
        r = &m->tags;
        break;
    case EXPR_DIM_EMPLOYEE:
        r = &m->emp;
        break;
    case EXPR_DIM_DEPARTMENT:
        r = &m->dep;
        break;
    case EXPR_DIM_STORE:
        r = &m->sto;
        break;
    case EXPR_DIM_GROUP:
        r = &m->grp;
        break;
    case EXPR_DIM_CHANNEL:
        if (v->kind == EXPR_VAL_ID) return false;
        for (size_t i = 0; i < m->rel.n; i++)
            if (streq(m->rel.v[i].name, v->name)) return true;
        return false;
    case EXPR_DIM_CHANNEL_GROUP:
        return false;
    default:
        return true;
    }
    for (size_t i = 0; i < r->n; i++)
        if (val_match(v, &r->v[i])) return true;
    return false;
}

static bool all_known(const model *m, const expr_node *n) {
    if (n->kind == EXPR_AND || n->kind == EXPR_OR || n->kind == EXPR_NOT) {
        for (size_t i = 0; i < n->nkids; i++)
            if (!all_known(m, n->kids[i])) return false;
        return true;
    }
    if (n->kind != EXPR_SET) return true;
    for (size_t i = 0; i < n->nvals; i++)
        if (!known(m, n->dim, &n->vals[i])) return false;
    return true;
}

static bool ncmp(int64_t a, expr_op op, int64_t b) {
    return op == EXPR_OP_LT   ? a < b
           : op == EXPR_OP_LE ? a <= b
           : op == EXPR_OP_GT ? a > b
           : op == EXPR_OP_GE ? a >= b
           : op == EXPR_OP_EQ ? a == b
                              : a != b;
}

static bool ev_ok(const rec *e, int64_t cust) {
    return e->a == cust && e->b >= 0 && e->b <= (int64_t)UINT32_MAX;
}

/* Does employee emp's department chain (64 steps) hold a department matching v? */
static bool emp_in_dep(const model *m, const rec *emp, const expr_value *v) {
    int64_t d = emp->a;
    for (int depth = 0; d != NONE && depth < 64; depth++) {
        const rec *dr = by_id(&m->dep, d);
        if (!dr) return false;
        if (val_match(v, dr)) return true;
        d = dr->a;
    }
    return false;
}

static bool set_match(const model *m, const rec *c, const expr_node *n, const expr_value *v) {
    switch (n->dim) {
    case EXPR_DIM_TAG:
        for (size_t i = 0; i < m->ctag.n; i++) {
            const rec *t = m->ctag.v[i].a == c->id ? by_id(&m->tags, m->ctag.v[i].b) : NULL;
            if (t && val_match(v, t)) return true;
        }
        return false;
    case EXPR_DIM_CHANNEL:
        for (size_t i = 0; i < m->rel.n; i++)
            if (m->rel.v[i].a == c->id && v->kind == EXPR_VAL_NAME &&
                streq(m->rel.v[i].name, v->name))
                return true;
        return false;
    case EXPR_DIM_EMPLOYEE:
    case EXPR_DIM_DEPARTMENT:
    case EXPR_DIM_STORE:
        for (size_t i = 0; i < m->rel.n; i++) {
            const rec *r = &m->rel.v[i];
            if (r->a != c->id || !streq(r->s, "active")) continue;
            const rec *e = by_id(&m->emp, r->b);
            if (!e) continue;
            if (n->dim == EXPR_DIM_EMPLOYEE && val_match(v, e)) return true;
            if (n->dim == EXPR_DIM_DEPARTMENT && emp_in_dep(m, e, v)) return true;
            if (n->dim == EXPR_DIM_STORE) {
                const rec *s = e->b != NONE ? by_id(&m->sto, e->b) : NULL;
                if (s && val_match(v, s)) return true;
            }
        }
        return false;
    case EXPR_DIM_GROUP:
        for (size_t i = 0; i < m->mem.n; i++) {
            const rec *x = &m->mem.v[i];
            const rec *g = x->b == c->id && streq(x->s, "in") ? by_id(&m->grp, x->a) : NULL;
            if (g && streq(g->s, "active") && val_match(v, g)) return true;
        }
        return false;
    case EXPR_DIM_GENDER: {
        const char *g = c->a == 2 ? "female" : c->a == 1 ? "male" : "unknown";
        return streq(g, v->name);
    }
    case EXPR_DIM_RELATIONSHIP_STATUS:
        for (size_t i = 0; i < m->rel.n; i++) {
            const rec *r = &m->rel.v[i];
            if (r->a != c->id) continue;
            if (streq(r->s, v->name)) return true;
            if (streq(v->name, "lost") &&
                (streq(r->s, "deleted_by_customer") || streq(r->s, "deleted_by_employee")))
                return true;
        }
        return false;
    case EXPR_DIM_REGION:
        return streq(c->name, v->name);
    case EXPR_DIM_STAGE:
        return streq(c->s, v->name);
    default:
        return false; /* channel_group: no data yet */
    }
}

static int64_t amount_cents(const char *props) {
    json_t *j = props ? json_loads(props, 0, NULL) : NULL;
    json_t *a = j ? json_object_get(j, "amount") : NULL;
    int64_t v = 0;
    if (a && json_is_number(a)) v = llround(json_number_value(a) * 100);
    json_decref(j);
    return v;
}

/* A customer's numeric attribute (NONE: an absent time). */
static int64_t naive_value(const model *m, const rec *c, expr_attr a) {
    int64_t v = 0, t = NONE;
    switch (a) {
    case EXPR_ATTR_SPENT:
    case EXPR_ATTR_ORDERS_TOTAL:
        for (size_t i = 0; i < m->ev.n; i++)
            if (ev_ok(&m->ev.v[i], c->id) && streq(m->ev.v[i].name, "order"))
                v += a == EXPR_ATTR_SPENT ? amount_cents(m->ev.v[i].s) : 1;
        return v;
    case EXPR_ATTR_FIRST_ADDED:
        return c->b;
    default:
        for (size_t i = 0; i < m->ev.n; i++) {
            const rec *e = &m->ev.v[i];
            if (!ev_ok(e, c->id)) continue;
            if (a == EXPR_ATTR_LAST_MESSAGE && !streq(e->name, "message")) continue;
            if (t == NONE || e->b > t) t = e->b;
        }
        return t;
    }
}

static bool naive(const model *m, const rec *c, const expr_node *n, int64_t now) {
    switch (n->kind) {
    case EXPR_AND:
        for (size_t i = 0; i < n->nkids; i++)
            if (!naive(m, c, n->kids[i], now)) return false;
        return true;
    case EXPR_OR:
        for (size_t i = 0; i < n->nkids; i++)
            if (naive(m, c, n->kids[i], now)) return true;
        return false;
    case EXPR_NOT:
        return !naive(m, c, n->kids[0], now);
    case EXPR_SET:
        for (size_t i = 0; i < n->nvals; i++)
            if (set_match(m, c, n, &n->vals[i])) return true;
        return false;
    case EXPR_CMP: {
        int64_t v = naive_value(m, c, n->attr);
        if (n->attr == EXPR_ATTR_SPENT || n->attr == EXPR_ATTR_ORDERS_TOTAL)
            return ncmp(v, n->op, n->num);
        return v != NONE && ncmp(now - v, n->op, n->num);
    }
    default: {
        int64_t cnt = 0, first = NONE, last = NONE;
        for (size_t i = 0; i < m->ev.n; i++) {
            const rec *e = &m->ev.v[i];
            if (!ev_ok(e, c->id) || !streq(e->name, n->event_type)) continue;
            if (first == NONE || e->b < first) first = e->b;
            if (last == NONE || e->b > last) last = e->b;
            if (n->window == 0 || (e->b >= now - n->window && e->b <= now)) cnt++;
        }
        if (n->kind == EXPR_DID) return cnt > 0;
        if (n->kind == EXPR_COUNT) return ncmp(cnt, n->op, n->num);
        if (first == NONE) return false;
        return ncmp(now - (n->kind == EXPR_FIRST ? first : last), n->op, n->num);
    }
    }
}

/* ---- comparing ------------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Evaluates text both ways; returns the number of customers matched (or -1
 * when the names were unknown, which both must agree on). */
static long check_expr(const engine *e, const model *m, const char *text, int64_t now) {
    expr_node *n = NULL;
    expr_err perr;
    if (expr_parse(text, strlen(text), &n, &perr) != 0)
        fail_msg("generated text does not parse: %s\n%s", text, perr.text);
    roaring_bitmap_t *bm = NULL;
    siyu_err err = {0};
    int rc = engine_eval(e, n, now, &bm, &err);
    if (!all_known(m, n)) {
        if (rc != SIYU_EINVAL) fail_msg("expected unknown names: %s (rc %d)", text, rc);
        if (!strstr(err.msg, "unknown")) fail_msg("message: %s", err.msg);
        expr_free(n);
        return -1;
    }
    if (rc != 0) fail_msg("engine_eval failed: %s: %s", text, err.msg);
    size_t got_n = roaring_bitmap_get_cardinality(bm);
    uint32_t *dense = malloc((got_n + 1) * sizeof *dense);
    roaring_bitmap_to_uint32_array(bm, dense);
    int64_t *got = malloc((got_n + 1) * sizeof *got);
    for (size_t i = 0; i < got_n; i++)
        got[i] = engine_customer_id(e, dense[i]);
    int64_t *want = malloc((m->cust.n + 1) * sizeof *want);
    size_t want_n = 0;
    for (size_t i = 0; i < m->cust.n; i++)
        if (naive(m, &m->cust.v[i], n, now)) want[want_n++] = m->cust.v[i].id;
    qsort(want, want_n, sizeof *want, cmp_i64);
    bool same = got_n == want_n && (want_n == 0 || memcmp(got, want, want_n * sizeof *got) == 0);
    if (!same) {
        fprintf(stderr, "MISMATCH for %s at now=%lld: engine %zu, naive %zu\n", text,
                (long long)now, got_n, want_n);
        for (size_t i = 0; i < got_n; i++)
            fprintf(stderr, " e%lld", (long long)got[i]);
        fprintf(stderr, "\n");
        for (size_t i = 0; i < want_n; i++)
            fprintf(stderr, " n%lld", (long long)want[i]);
        fprintf(stderr, "\n");
    }
    free(dense);
    free(got);
    free(want);
    roaring_bitmap_free(bm);
    expr_free(n);
    assert_true(same);
    return (long)got_n;
}

/* ---- the random world ------------------------------------------------------------ */

static uint64_t rng_state;
static uint32_t rnd(uint32_t n) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return n ? (uint32_t)((rng_state >> 33) % n) : 0;
}

static const char *const TAGS[] = {"VIP", "新客", "skincare", "new mom", "勿扰"};
static const char *const EMPS[] = {"张三", "李四", "王五", "Ann"};
static const char *const DEPS[] = {"华东区", "上海", "销售"};
static const char *const STOS[] = {"徐汇店", "静安店"};
static const char *const GRPS[] = {"VIP 福利群", "群2"};
static const char *const CHANS[] = {"门店扫码", "秋季活动", "web"};
static const char *const TYPES[] = {"message", "order", "page.view", "share"};
static const char *const STATUSES[] = {
    "active", "active", "deleted_by_customer", "deleted_by_employee", "transferred", "weird"};
static const char *const REGIONS[] = {"上海", "北京", "广东", "", NULL};
static const char *const STAGES[] = {"lead", "成交", "vip", NULL};
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A SQL literal of s (NULL when s is NULL); s has no quotes. */
static const char *lit(char *buf, size_t size, const char *s) {
    if (!s) return "NULL";
    snprintf(buf, size, "'%s'", s);
    return buf;
}

typedef struct world {
    store *st;
    char *dir;
    int64_t t1, t2;
    int ncust; /* per tenant, for naming */
    int64_t tag_group[2][2];
    int serial;
} world;

static int64_t pick_id(world *w, int64_t tenant, const char *table) {
    store_conn *c = store_reader_acquire(w->st);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT id FROM %s WHERE tenant_id = ? ORDER BY id", table);
    sqlite3_stmt *s;
    sqlite3_prepare_v2(store_conn_db(c), sql, -1, &s, NULL);
    sqlite3_bind_int64(s, 1, tenant);
    static int64_t ids[4096];
    size_t n = 0;
    while (sqlite3_step(s) == SQLITE_ROW && n < N(ids))
        ids[n++] = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    store_reader_release(w->st, c);
    return n ? ids[rnd((uint32_t)n)] : 0;
}

static void add_customer(world *w, int64_t t) {
    int g = (int)rnd(4);
    char gender[8], fa[32];
    if (g == 3)
        snprintf(gender, sizeof gender, "NULL");
    else
        snprintf(gender, sizeof gender, "%d", g);
    if (rnd(4) == 0)
        snprintf(fa, sizeof fa, "NULL");
    else
        snprintf(fa, sizeof fa, "%lld", NOW - (long long)rnd(60) * DAY / 2 - rnd(3) + 1);
    char reg[32], stg[32];
    sqlf(w->st,
         "INSERT INTO customer(tenant_id, external_userid, gender, first_added_at, region, stage, "
         "created_at, updated_at) VALUES (%lld, 'wm%d', %s, %s, %s, %s, 1, 1)",
         (long long)t, w->serial++, gender, fa, lit(reg, sizeof reg, REGIONS[rnd(N(REGIONS))]),
         lit(stg, sizeof stg, STAGES[rnd(N(STAGES))]));
}

static void add_employee(world *w, int64_t t) {
    int64_t dep = rnd(4) ? pick_id(w, t, "department") : 0;
    int64_t sto = rnd(3) ? pick_id(w, t, "store") : 0;
    char name[64];
    if (rnd(6) == 0)
        snprintf(name, sizeof name, "NULL");
    else
        snprintf(name, sizeof name, "'%s'", EMPS[rnd(N(EMPS))]);
    sqlf(w->st,
         "INSERT INTO employee(tenant_id, userid, name, department_id, store_id, created_at, "
         "updated_at) VALUES (%lld, 'u%d', %s, NULL, NULL, 1, 1)",
         (long long)t, w->serial++, name);
    int64_t id = last_id(w->st, "employee");
    if (dep)
        sqlf(w->st, "UPDATE employee SET department_id = %lld WHERE id = %lld", (long long)dep,
             (long long)id);
    if (sto)
        sqlf(w->st, "UPDATE employee SET store_id = %lld WHERE id = %lld", (long long)sto,
             (long long)id);
}

static void add_department(world *w, int64_t t) {
    int64_t parent = rnd(2) ? pick_id(w, t, "department") : 0;
    sqlf(w->st,
         "INSERT INTO department(tenant_id, name, parent_id, created_at, updated_at) "
         "VALUES (%lld, '%s', NULL, 1, 1)",
         (long long)t, DEPS[rnd(N(DEPS))]);
    if (parent)
        sqlf(w->st, "UPDATE department SET parent_id = %lld WHERE id = %lld", (long long)parent,
             (long long)last_id(w->st, "department"));
}

static void add_tag(world *w, int64_t t, int ti) {
    sqlf(w->st,
         "INSERT OR IGNORE INTO tag(tenant_id, group_id, name, created_at, updated_at) "
         "VALUES (%lld, %lld, '%s', 1, 1)",
         (long long)t, (long long)w->tag_group[ti][rnd(2)], TAGS[rnd(N(TAGS))]);
}

static void add_event(world *w, int64_t t) {
    static int64_t last_cust; /* half the events go to the previous one's customer */
    int64_t cust = last_cust && rnd(2) ? last_cust : pick_id(w, t, "customer");
    last_cust = cust;
    const char *type = TYPES[rnd(N(TYPES))];
    int64_t ts;
    switch (rnd(7)) {
    case 0:
        ts = NOW - (int64_t)rnd(40) * DAY;
        break; /* whole days: window edges */
    case 1:
        ts = NOW - (int64_t)rnd(40) * DAY - 1 + rnd(3);
        break; /* one second either side */
    case 2:
        ts = NOW - 1 + rnd(3);
        break; /* now, either side */
    case 3:
        ts = NOW + rnd(2 * 3600);
        break; /* the future */
    case 4:
        ts = rnd(50) == 0 ? -5 : NOW - (int64_t)rnd(3600) * 60;
        break;
    default:
        ts = NOW - (int64_t)rnd(200) * 3600;
        break;
    }
    char props[96];
    switch (rnd(5)) {
    case 0:
        snprintf(props, sizeof props, "NULL");
        break;
    case 1:
        snprintf(props, sizeof props, "'not json'");
        break;
    case 2:
        snprintf(props, sizeof props, "'{\"amount\":\"12\"}'");
        break;
    default:
        snprintf(props, sizeof props, "'{\"amount\":%u.%02u}'", rnd(2000), rnd(100));
    }
    sqlf(w->st,
         "INSERT INTO event(tenant_id, customer_id, type, ts, source, props) "
         "VALUES (%lld, NULL, '%s', %lld, 'api', %s)",
         (long long)t, type, (long long)ts, props);
    if (cust && rnd(10)) /* some events have no customer */
        sqlf(w->st, "UPDATE event SET customer_id = %lld WHERE id = %lld", (long long)cust,
             (long long)last_id(w->st, "event"));
}

static void mutate(world *w, int64_t t, int ti) {
    int64_t cust = pick_id(w, t, "customer");
    char b1[32], b2[32];
    switch (rnd(19)) {
    case 14: /* a customer's attributes change */
        if (!cust) break;
        sqlf(w->st,
             "UPDATE customer SET region = %s, stage = %s, gender = %u, first_added_at = "
             "coalesce(first_added_at, %lld) WHERE id = %lld",
             lit(b1, sizeof b1, REGIONS[rnd(N(REGIONS))]),
             lit(b2, sizeof b2, STAGES[rnd(N(STAGES))]), rnd(3),
             (long long)(NOW - (int64_t)rnd(40) * DAY), (long long)cust);
        break;
    case 15: { /* a record renamed */
        static const char *const tables[] = {"tag", "employee", "department", "store",
                                             "group_chat"};
        const char *table = tables[rnd(N(tables))];
        int64_t id = pick_id(w, t, table);
        const char *const *names = strcmp(table, "tag") == 0          ? TAGS
                                   : strcmp(table, "employee") == 0   ? EMPS
                                   : strcmp(table, "department") == 0 ? DEPS
                                   : strcmp(table, "store") == 0      ? STOS
                                                                      : GRPS;
        size_t nn = names == TAGS   ? N(TAGS)
                    : names == EMPS ? N(EMPS)
                    : names == DEPS ? N(DEPS)
                    : names == STOS ? N(STOS)
                                    : N(GRPS);
        if (id)
            sqlf(w->st, "UPDATE OR IGNORE %s SET name = '%s' WHERE id = %lld", table,
                 names[rnd((uint32_t)nn)], (long long)id);
        break;
    }
    case 16: { /* a tag deleted with its memberships */
        int64_t tag = pick_id(w, t, "tag");
        if (!tag || rnd(3)) break;
        sqlf(w->st, "DELETE FROM customer_tag WHERE tag_id = %lld", (long long)tag);
        sqlf(w->st, "DELETE FROM tag WHERE id = %lld", (long long)tag);
        break;
    }
    case 17: { /* a store closed (its employees first), or a new one */
        int64_t sto = pick_id(w, t, "store");
        if (sto && rnd(2)) {
            sqlf(w->st, "UPDATE employee SET store_id = NULL WHERE store_id = %lld",
                 (long long)sto);
            sqlf(w->st, "DELETE FROM store WHERE id = %lld", (long long)sto);
        } else {
            sqlf(w->st,
                 "INSERT INTO store(tenant_id, name, created_at, updated_at) "
                 "VALUES (%lld, '%s', 1, 1)",
                 (long long)t, STOS[rnd(N(STOS))]);
        }
        break;
    }
    case 18: { /* an employee moves to a store */
        int64_t emp = pick_id(w, t, "employee"), sto = pick_id(w, t, "store");
        if (emp && sto)
            sqlf(w->st, "UPDATE employee SET store_id = %lld WHERE id = %lld", (long long)sto,
                 (long long)emp);
        break;
    }
    case 0:
    case 1:
        add_customer(w, t);
        break;
    case 2:
        add_employee(w, t);
        break;
    case 3:
        add_department(w, t);
        break;
    case 4:
        add_tag(w, t, ti);
        break;
    case 5:
    case 6: {
        int64_t emp = pick_id(w, t, "employee");
        if (!cust || !emp) break;
        const char *chan = rnd(4) ? CHANS[rnd(N(CHANS))] : NULL;
        char state[40];
        snprintf(state, sizeof state, chan ? "'%s'" : "NULL", chan);
        sqlf(w->st,
             "INSERT INTO relationship(tenant_id, customer_id, employee_id, status, added_at, "
             "state, updated_at) VALUES (%lld, %lld, %lld, '%s', 1, %s, 1) "
             "ON CONFLICT(tenant_id, customer_id, employee_id) DO UPDATE SET status = "
             "excluded.status, state = excluded.state",
             (long long)t, (long long)cust, (long long)emp, STATUSES[rnd(N(STATUSES))], state);
        break;
    }
    case 7: {
        int64_t tag = pick_id(w, t, "tag");
        if (!cust || !tag) break;
        if (rnd(4))
            sqlf(w->st,
                 "INSERT OR IGNORE INTO customer_tag(tenant_id, customer_id, tag_id, created_at) "
                 "VALUES (%lld, %lld, %lld, 1)",
                 (long long)t, (long long)cust, (long long)tag);
        else
            sqlf(w->st, "DELETE FROM customer_tag WHERE tenant_id = %lld AND customer_id = %lld",
                 (long long)t, (long long)cust);
        break;
    }
    case 8: {
        int64_t g = pick_id(w, t, "group_chat");
        if (!cust || !g) break;
        sqlf(w->st,
             "INSERT INTO group_member(tenant_id, group_id, member_id, customer_id, status) "
             "VALUES (%lld, %lld, 'wm%lld', %lld, '%s') ON CONFLICT DO UPDATE SET status = "
             "excluded.status",
             (long long)t, (long long)g, (long long)cust, (long long)cust, rnd(3) ? "in" : "left");
        if (rnd(8) == 0)
            sqlf(w->st, "UPDATE group_chat SET status = '%s' WHERE id = %lld",
                 rnd(2) ? "dismissed" : "active", (long long)g);
        break;
    }
    case 9: { /* move an employee, maybe make a department cycle */
        int64_t emp = pick_id(w, t, "employee"), dep = pick_id(w, t, "department");
        if (emp && dep)
            sqlf(w->st, "UPDATE employee SET department_id = %lld WHERE id = %lld", (long long)dep,
                 (long long)emp);
        int64_t d2 = pick_id(w, t, "department");
        if (dep && d2 && rnd(3) == 0)
            sqlf(w->st, "UPDATE department SET parent_id = %lld WHERE id = %lld", (long long)d2,
                 (long long)dep);
        break;
    }
    default:
        add_event(w, t);
        add_event(w, t);
        add_event(w, t);
    }
}

static void world_init(world *w, uint64_t seed) {
    memset(w, 0, sizeof *w);
    rng_state = seed;
    w->dir = t_tmpdir();
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    w->st = store_open(w->dir, &o, &err);
    assert_non_null(w->st);
    w->t1 = make_tenant(w->st, "one");
    w->t2 = make_tenant(w->st, "two");
    int64_t ts[2] = {w->t1, w->t2};
    for (int ti = 0; ti < 2; ti++) {
        int64_t t = ts[ti];
        for (int g = 0; g < 2; g++) {
            sqlf(w->st,
                 "INSERT INTO tag_group(tenant_id, name, created_at, updated_at) "
                 "VALUES (%lld, 'g%d', 1, 1)",
                 (long long)t, g);
            w->tag_group[ti][g] = last_id(w->st, "tag_group");
        }
        for (size_t i = 0; i < N(STOS); i++)
            sqlf(w->st,
                 "INSERT INTO store(tenant_id, name, created_at, updated_at) "
                 "VALUES (%lld, '%s', 1, 1)",
                 (long long)t, STOS[i]);
        for (size_t i = 0; i < N(GRPS) + 1; i++)
            sqlf(w->st,
                 "INSERT INTO group_chat(tenant_id, chat_id, name, created_at, updated_at) "
                 "VALUES (%lld, 'c%d', %s%s%s, 1, 1)",
                 (long long)t, w->serial++, i < N(GRPS) ? "'" : "", i < N(GRPS) ? GRPS[i] : "NULL",
                 i < N(GRPS) ? "'" : "");
        for (int i = 0; i < 3; i++)
            add_department(w, t);
        for (int i = 0; i < 3; i++)
            add_employee(w, t);
        for (int i = 0; i < 4; i++)
            add_tag(w, t, ti);
        for (int i = 0; i < 12; i++)
            add_customer(w, t);
    }
}

static void world_free(world *w) {
    store_close(w->st);
    t_rmdir(w->dir);
}

/* ---- random expressions ---------------------------------------------------------- */

typedef struct sbuf {
    char s[8192];
    size_t n;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, sizeof b->s - b->n, fmt, ap);
    va_end(ap);
    if (k > 0) b->n += (size_t)k;
    if (b->n >= sizeof b->s) b->n = sizeof b->s - 1;
}

static const char *const WINDOWS[] = {"14d", "7d", "1d", "36h", "1w", "90m", "30d", "2h"};

static void put_value(sbuf *b, world *w, int64_t t, const char *table, const char *const *names,
                      size_t nn) {
    uint32_t r = rnd(20);
    bool fixed_names = strcmp(names[0], "female") == 0 || strcmp(names[0], "active") == 0;
    if (r == 0 && !fixed_names)
        put(b, "\"nosuch\"");
    else if (r < 5 && table) {
        int64_t id = pick_id(w, t, table);
        put(b, "%lld", (long long)(id ? id : 999999));
    } else
        put(b, "\"%s\"", names[rnd((uint32_t)nn)]);
}

static void gen_pred(sbuf *b, world *w, int64_t t) {
    static const char *const GEN[] = {"female", "male", "unknown"};
    static const char *const ST[] = {"active", "deleted_by_customer", "deleted_by_employee",
                                     "transferred", "lost"};
    static const char *const OPS[] = {"<", "<=", ">", ">=", "=", "!="};
    static const char *const REG[] = {"上海", "北京", "广东"};
    const char *op = OPS[rnd(N(OPS))];
    const char *type = TYPES[rnd(N(TYPES))];
    const char *win = WINDOWS[rnd(N(WINDOWS))];
    const char *dim = NULL, *table = NULL;
    const char *const *names = NULL;
    size_t nn = 0;
    switch (rnd(20)) {
    case 0:
        dim = "tag", table = "tag", names = TAGS, nn = N(TAGS);
        break;
    case 1:
        dim = "tag", table = "tag", names = TAGS, nn = N(TAGS);
        break;
    case 2:
        dim = "employee", table = "employee", names = EMPS, nn = N(EMPS);
        break;
    case 3:
        dim = "department", table = "department", names = DEPS, nn = N(DEPS);
        break;
    case 4:
        dim = "store", table = "store", names = STOS, nn = N(STOS);
        break;
    case 5:
        dim = "group", table = "group_chat", names = GRPS, nn = N(GRPS);
        break;
    case 6:
        dim = "channel", names = CHANS, nn = N(CHANS);
        break;
    case 7:
        dim = "gender", names = GEN, nn = N(GEN);
        break;
    case 8:
        dim = "relationship_status", names = ST, nn = N(ST);
        break;
    case 9:
        if (rnd(10) == 0)
            put(b, "channel_group(\"x\")");
        else if (rnd(2))
            put(b, rnd(2) ? "region = \"%s\"" : "region in (\"%s\", \"北京\")", REG[rnd(3)]);
        else if (rnd(2))
            put(b, "stage in (\"lead\", \"成交\")");
        else
            put(b, "stage = \"vip\"");
        return;
    case 10:
        put(b, "spent %s %u%s", op, rnd(3000), rnd(3) ? "" : ".50");
        return;
    case 11:
        put(b, "orders_total %s %u", op, rnd(4));
        return;
    case 12: {
        static const char *const A[] = {"first_added", "last_active", "last_message"};
        put(b, "%s %s %s", A[rnd(3)], op, win);
        return;
    }
    case 13:
        put(b, rnd(3) ? "did(\"%s\", %s)" : "did(\"%s\")", type, win);
        return;
    case 14:
        if (rnd(3))
            put(b, "count(\"%s\", %s) %s %u", type, win, op, rnd(4));
        else
            put(b, "count(\"%s\") %s %u", type, op, rnd(4));
        return;
    case 15:
        if (rnd(2))
            put(b, "orders(%s) %s %u", win, op, rnd(3));
        else
            put(b, "orders() %s %u", op, rnd(3));
        return;
    case 16:
        put(b, "first(\"%s\") %s %s", type, op, win);
        return;
    case 17:
        put(b, "last(\"%s\") %s %s", type, op, win);
        return;
    case 18:
        put(b, "did(\"never.seen\", 1d)");
        return;
    default:
        put(b, "tag(\"%s\")", TAGS[rnd(N(TAGS))]);
        return;
    }
    uint32_t form = rnd(3);
    if (form == 0) {
        put(b, "%s = ", dim);
        put_value(b, w, t, table, names, nn);
    } else if (form == 1 && table) {
        put(b, "%s(", dim);
        put_value(b, w, t, table, names, nn);
        put(b, ")");
    } else {
        put(b, "%s in (", dim);
        uint32_t k = 1 + rnd(3);
        for (uint32_t i = 0; i < k; i++) {
            if (i) put(b, ", ");
            put_value(b, w, t, table, names, nn);
        }
        put(b, ")");
    }
}

static void gen_expr(sbuf *b, world *w, int64_t t, int depth) {
    uint32_t r = depth >= 3 ? 9 : rnd(10);
    if (r < 2) {
        put(b, "not ");
        gen_expr(b, w, t, depth + 1);
    } else if (r < 5) {
        put(b, "(");
        gen_expr(b, w, t, depth + 1);
        uint32_t k = 1 + rnd(3);
        for (uint32_t i = 0; i < k; i++) {
            put(b, r == 2 ? " or " : " and ");
            gen_expr(b, w, t, depth + 1);
        }
        put(b, ")");
    } else
        gen_pred(b, w, t);
}

/* ---- incremental mode: a step's changes through the mutation API -------------- */

static bool same_str(const char *a, const char *b) {
    return (!a && !b) || streq(a, b);
}

static void must(int rc, const siyu_err *err, const char *what) {
    if (rc != 0) fail_msg("%s failed (%d): %s", what, rc, err->msg);
}

static uint32_t dense_of(const engine *e, int64_t cust) {
    uint32_t d = UINT32_MAX;
    if (!engine_dense_id(e, cust, &d)) fail_msg("customer %lld not in the engine", (long long)cust);
    return d;
}

/* Records created, renamed or deleted. */
static void apply_records(engine *e, expr_dim dim, const rows *old, const rows *now) {
    siyu_err err = {0};
    for (size_t i = 0; i < now->n; i++) {
        const rec *o = by_id(old, now->v[i].id);
        if (!o || !same_str(o->name, now->v[i].name))
            must(engine_record_put(e, dim, now->v[i].id, now->v[i].name, &err), &err,
                 "engine_record_put");
    }
    for (size_t i = 0; i < old->n; i++)
        if (!by_id(now, old->v[i].id))
            must(engine_record_remove(e, dim, old->v[i].id, &err), &err, "engine_record_remove");
}

static int64_t zero_none(int64_t v) {
    return v == NONE ? 0 : v;
}

/* Employees' departments and stores, departments' parents. */
static void apply_org(engine *e, const model *old, const model *m) {
    bool changed = old->emp.n != m->emp.n || old->dep.n != m->dep.n;
    for (size_t i = 0; i < m->emp.n && !changed; i++) {
        const rec *o = by_id(&old->emp, m->emp.v[i].id);
        changed = !o || o->a != m->emp.v[i].a || o->b != m->emp.v[i].b;
    }
    for (size_t i = 0; i < m->dep.n && !changed; i++) {
        const rec *o = by_id(&old->dep, m->dep.v[i].id);
        changed = !o || o->a != m->dep.v[i].a;
    }
    if (!changed) return;
    engine_emp *emps = calloc(m->emp.n + 1, sizeof *emps);
    engine_dep *deps = calloc(m->dep.n + 1, sizeof *deps);
    for (size_t i = 0; i < m->emp.n; i++)
        emps[i] = (engine_emp){m->emp.v[i].id, zero_none(m->emp.v[i].a), zero_none(m->emp.v[i].b)};
    for (size_t i = 0; i < m->dep.n; i++)
        deps[i] = (engine_dep){m->dep.v[i].id, zero_none(m->dep.v[i].a)};
    siyu_err err = {0};
    must(engine_org_put(e, emps, m->emp.n, deps, m->dep.n, &err), &err, "engine_org_put");
    free(emps);
    free(deps);
}

static bool same_rels(const model *old, const model *m, int64_t cust) {
    size_t a = 0, b = 0;
    for (size_t i = 0; i < old->rel.n; i++)
        a += old->rel.v[i].a == cust;
    for (size_t i = 0; i < m->rel.n; i++) {
        const rec *r = &m->rel.v[i];
        if (r->a != cust) continue;
        b++;
        bool found = false;
        for (size_t j = 0; j < old->rel.n && !found; j++) {
            const rec *o = &old->rel.v[j];
            found =
                o->a == cust && o->b == r->b && same_str(o->s, r->s) && same_str(o->name, r->name);
        }
        if (!found) return false;
    }
    return a == b;
}

static bool group_in(const model *m, int64_t g, int64_t cust) {
    const rec *gr = by_id(&m->grp, g);
    if (!gr || !streq(gr->s, "active") || cust == NONE) return false;
    for (size_t i = 0; i < m->mem.n; i++)
        if (m->mem.v[i].a == g && m->mem.v[i].b == cust && streq(m->mem.v[i].s, "in")) return true;
    return false;
}

static bool has_tag(const model *m, int64_t cust, int64_t tag) {
    for (size_t i = 0; i < m->ctag.n; i++)
        if (m->ctag.v[i].a == cust && m->ctag.v[i].b == tag) return true;
    return false;
}

/* Applies to e exactly the truth rows that changed from old to m. */
static void apply_changes(engine *e, const model *old, const model *m) {
    siyu_err err = {0};
    apply_records(e, EXPR_DIM_TAG, &old->tags, &m->tags);
    apply_records(e, EXPR_DIM_EMPLOYEE, &old->emp, &m->emp);
    apply_records(e, EXPR_DIM_DEPARTMENT, &old->dep, &m->dep);
    apply_records(e, EXPR_DIM_STORE, &old->sto, &m->sto);
    apply_records(e, EXPR_DIM_GROUP, &old->grp, &m->grp);
    apply_org(e, old, m);
    for (size_t i = 0; i < m->cust.n; i++) { /* ids ascending */
        const rec *c = &m->cust.v[i], *o = by_id(&old->cust, c->id);
        if (o && o->a == c->a && o->b == c->b && same_str(o->name, c->name) && same_str(o->s, c->s))
            continue;
        must(engine_customer_put(e, c->id, c->a == NONE ? 0 : (int)c->a, c->b, c->name, c->s, NULL,
                                 &err),
             &err, "engine_customer_put");
    }
    engine_rel rels[64];
    for (size_t i = 0; i < m->cust.n; i++) {
        int64_t cust = m->cust.v[i].id;
        if (same_rels(old, m, cust)) continue;
        size_t n = 0;
        for (size_t j = 0; j < m->rel.n && n < N(rels); j++)
            if (m->rel.v[j].a == cust)
                rels[n++] = (engine_rel){m->rel.v[j].b, m->rel.v[j].s, m->rel.v[j].name};
        must(engine_customer_rels(e, dense_of(e, cust), rels, n, &err), &err,
             "engine_customer_rels");
    }
    for (size_t i = 0; i < m->ctag.n; i++) {
        const rec *x = &m->ctag.v[i];
        if (!has_tag(old, x->a, x->b))
            must(engine_member_set(e, EXPR_DIM_TAG, x->b, dense_of(e, x->a), true, &err), &err,
                 "engine_member_set");
    }
    for (size_t i = 0; i < old->ctag.n; i++) {
        const rec *x = &old->ctag.v[i];
        if (!has_tag(m, x->a, x->b) && by_id(&m->tags, x->b))
            must(engine_member_set(e, EXPR_DIM_TAG, x->b, dense_of(e, x->a), false, &err), &err,
                 "engine_member_set");
    }
    for (int pass = 0; pass < 2; pass++) { /* group members in, then out */
        const model *from = pass ? old : m, *to = pass ? m : old;
        for (size_t i = 0; i < from->mem.n; i++) {
            const rec *x = &from->mem.v[i];
            if (!group_in(from, x->a, x->b) || group_in(to, x->a, x->b)) continue;
            if (pass && !by_id(&m->grp, x->a)) continue;
            must(engine_member_set(e, EXPR_DIM_GROUP, x->a, dense_of(e, x->b), !pass, &err), &err,
                 "engine_member_set");
        }
    }
    int64_t seen = 0;
    for (size_t i = 0; i < old->ev.n; i++)
        if (old->ev.v[i].id > seen) seen = old->ev.v[i].id;
    for (size_t i = 0; i < m->ev.n; i++) {
        const rec *x = &m->ev.v[i];
        uint32_t d;
        if (x->id <= seen || x->a == NONE || !engine_dense_id(e, x->a, &d)) continue;
        int64_t amount = streq(x->name, "order") ? amount_cents(x->s) : 0;
        must(engine_event_add(e, d, x->name, x->b, amount, &err), &err, "engine_event_add");
    }
}

/* ---- pages and breakdowns against naive orders and counts ----------------------- */

static const expr_attr SORT_ATTR[] = {0,
                                      EXPR_ATTR_SPENT,
                                      EXPR_ATTR_ORDERS_TOTAL,
                                      EXPR_ATTR_FIRST_ADDED,
                                      EXPR_ATTR_LAST_ACTIVE,
                                      EXPR_ATTR_LAST_MESSAGE};

static bool row_before(const engine_row *a, const engine_row *b, bool desc) {
    if ((a->key == NONE) != (b->key == NONE)) return b->key == NONE;
    if (a->key != b->key && a->key != NONE) return desc ? a->key > b->key : a->key < b->key;
    return a->customer_id < b->customer_id;
}

/* Pages through bm with engine_page (limit rows a page, the cursor the last
 * row) and compares with the naive order of bm's customers. */
static void check_page(const engine *e, const model *m, const roaring_bitmap_t *bm,
                       engine_sort sort, bool desc, size_t limit) {
    size_t cnt = 0;
    engine_row *want = calloc(m->cust.n + 1, sizeof *want);
    for (size_t i = 0; i < m->cust.n; i++) {
        const rec *c = &m->cust.v[i];
        uint32_t d = dense_of(e, c->id);
        for (int a = 1; a < EXPR_ATTR__COUNT; a++)
            if (engine_value(e, d, (expr_attr)a) != naive_value(m, c, (expr_attr)a))
                fail_msg("engine_value of customer %lld, attribute %s", (long long)c->id,
                         expr_attr_name((expr_attr)a));
        if (!roaring_bitmap_contains(bm, d)) continue;
        int64_t key = sort == ENGINE_SORT_ID ? c->id : naive_value(m, c, SORT_ATTR[sort]);
        engine_row r = {d, c->id, key};
        size_t j = cnt++; /* insertion sort */
        while (j > 0 && row_before(&r, &want[j - 1], desc && sort != ENGINE_SORT_ID)) {
            want[j] = want[j - 1];
            j--;
        }
        want[j] = r;
    }
    if (sort == ENGINE_SORT_ID && desc) /* by id descending */
        for (size_t i = 0; i < cnt / 2; i++) {
            engine_row t = want[i];
            want[i] = want[cnt - 1 - i];
            want[cnt - 1 - i] = t;
        }
    engine_row *got = calloc(cnt + limit + 1, sizeof *got);
    size_t have = 0;
    for (size_t pages = 0; pages <= cnt + 1; pages++) {
        size_t n = 0;
        assert_int_equal(
            engine_page(e, bm, sort, desc, have ? &got[have - 1] : NULL, limit, got + have, &n), 0);
        assert_true(n <= limit && have + n <= cnt);
        have += n;
        if (n < limit) break;
    }
    if (have != cnt)
        fail_msg("engine_page: %zu rows, want %zu (sort %d desc %d)", have, cnt, sort, desc);
    for (size_t i = 0; i < cnt; i++)
        if (got[i].dense != want[i].dense || got[i].customer_id != want[i].customer_id ||
            got[i].key != want[i].key)
            fail_msg("engine_page row %zu (sort %d desc %d limit %zu): customer %lld key %lld, "
                     "want %lld key %lld",
                     i, sort, desc, limit, (long long)got[i].customer_id, (long long)got[i].key,
                     (long long)want[i].customer_id, (long long)want[i].key);
    free(want);
    free(got);
}

static int bucket_order(const void *a, const void *b) {
    const engine_bucket *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    if (!x->name || !y->name) return x->name ? 1 : y->name ? -1 : 0;
    return strcmp(x->name, y->name);
}

/* Adds the naive bucket of one value (counted over bm's customers). */
static void naive_bucket(const engine *e, const model *m, const roaring_bitmap_t *bm, expr_dim dim,
                         const expr_value *v, const char *name, engine_bucket *out, size_t *n) {
    for (size_t i = 0; i < *n; i++) /* plain values: once each */
        if (v->kind == EXPR_VAL_NAME && streq(out[i].name, name)) return;
    expr_node node = {.kind = EXPR_SET, .dim = dim};
    uint64_t count = 0;
    for (size_t i = 0; i < m->cust.n; i++)
        if (roaring_bitmap_contains(bm, dense_of(e, m->cust.v[i].id)) &&
            set_match(m, &m->cust.v[i], &node, v))
            count++;
    if (count) out[(*n)++] = (engine_bucket){v->kind == EXPR_VAL_ID ? v->id : 0, name, count};
}

static void check_breakdown(const engine *e, const model *m, const roaring_bitmap_t *bm,
                            expr_dim dim, size_t top) {
    size_t cap = m->tags.n + m->emp.n + m->dep.n + m->sto.n + m->grp.n + m->rel.n + m->cust.n + 8;
    engine_bucket *want = calloc(cap, sizeof *want), *got = calloc(cap, sizeof *got);
    size_t n = 0;
    const rows *recs = dim == EXPR_DIM_TAG          ? &m->tags
                       : dim == EXPR_DIM_EMPLOYEE   ? &m->emp
                       : dim == EXPR_DIM_DEPARTMENT ? &m->dep
                       : dim == EXPR_DIM_STORE      ? &m->sto
                       : dim == EXPR_DIM_GROUP      ? &m->grp
                                                    : NULL;
    if (recs) {
        for (size_t i = 0; i < recs->n; i++) {
            expr_value v = {.kind = EXPR_VAL_ID, .id = recs->v[i].id};
            naive_bucket(e, m, bm, dim, &v, recs->v[i].name, want, &n);
        }
    } else if (dim == EXPR_DIM_GENDER || dim == EXPR_DIM_RELATIONSHIP_STATUS) {
        const char *const *names = dim == EXPR_DIM_GENDER ? expr_gender_names : expr_status_names;
        for (size_t i = 0; names[i]; i++) {
            expr_value v = {.kind = EXPR_VAL_NAME, .name = (char *)names[i]};
            naive_bucket(e, m, bm, dim, &v, names[i], want, &n);
        }
    } else if (dim == EXPR_DIM_CHANNEL) {
        for (size_t i = 0; i < m->rel.n; i++) {
            expr_value v = {.kind = EXPR_VAL_NAME, .name = m->rel.v[i].name};
            if (v.name && *v.name) naive_bucket(e, m, bm, dim, &v, v.name, want, &n);
        }
    } else if (dim == EXPR_DIM_REGION || dim == EXPR_DIM_STAGE) {
        for (size_t i = 0; i < m->cust.n; i++) {
            const rec *c = &m->cust.v[i];
            expr_value v = {.kind = EXPR_VAL_NAME, .name = dim == EXPR_DIM_REGION ? c->name : c->s};
            if (v.name && *v.name) naive_bucket(e, m, bm, dim, &v, v.name, want, &n);
        }
    }
    qsort(want, n, sizeof *want, bucket_order);
    size_t k = 0;
    assert_int_equal(engine_breakdown(e, bm, dim, top, got, &k), 0);
    size_t expect_n = n < top ? n : top;
    if (k != expect_n)
        fail_msg("engine_breakdown of %s: %zu buckets, want %zu", expr_dim_name(dim), k, expect_n);
    for (size_t i = 0; i < k; i++)
        if (got[i].id != want[i].id || got[i].count != want[i].count ||
            !same_str(got[i].name, want[i].name))
            fail_msg("engine_breakdown of %s, bucket %zu: %lld %s %llu, want %lld %s %llu",
                     expr_dim_name(dim), i, (long long)got[i].id, got[i].name ? got[i].name : "-",
                     (unsigned long long)got[i].count, (long long)want[i].id,
                     want[i].name ? want[i].name : "-", (unsigned long long)want[i].count);
    free(want);
    free(got);
}

/* Evaluates text (known names) on e; NULL when the names are unknown. */
static roaring_bitmap_t *eval_text(const engine *e, const char *text, int64_t now) {
    expr_node *n = NULL;
    assert_int_equal(expr_parse(text, strlen(text), &n, NULL), 0);
    roaring_bitmap_t *bm = NULL;
    siyu_err err = {0};
    int rc = engine_eval(e, n, now, &bm, &err);
    expr_free(n);
    if (rc == SIYU_EINVAL) return NULL;
    assert_int_equal(rc, 0);
    return bm;
}

/* ---- tests ------------------------------------------------------------------------ */

static uint64_t env_u64(const char *name, uint64_t def) {
    const char *s = getenv(name);
    return s && *s ? strtoull(s, NULL, 10) : def;
}

static void test_model(void **state) {
    (void)state;
    uint64_t seed = env_u64("SEED", 20261123);
    int steps = (int)env_u64("STEPS", 400);
    world w;
    world_init(&w, seed);
    long checked = 0, unknown = 0, nonempty = 0, pages = 0, breakdowns = 0;
    uint32_t ncust = 0;
    uint64_t nevents = 0;
    /* the live engine: built once, then kept current through the mutations */
    engine *live = NULL;
    siyu_err err = {0};
    assert_int_equal(engine_build(w.st, w.t1, &live, &err), 0);
    model prev;
    model_load(w.st, w.t1, &prev);
    static const expr_dim bdims[] = {EXPR_DIM_TAG,
                                     EXPR_DIM_CHANNEL,
                                     EXPR_DIM_CHANNEL_GROUP,
                                     EXPR_DIM_EMPLOYEE,
                                     EXPR_DIM_DEPARTMENT,
                                     EXPR_DIM_STORE,
                                     EXPR_DIM_GROUP,
                                     EXPR_DIM_REGION,
                                     EXPR_DIM_GENDER,
                                     EXPR_DIM_STAGE,
                                     EXPR_DIM_RELATIONSHIP_STATUS};
    for (int step = 0; step < steps; step++) {
        int k = 1 + (int)rnd(3);
        for (int i = 0; i < k; i++)
            mutate(&w, w.t1, 0);
        if (rnd(3) == 0) mutate(&w, w.t2, 1);
        engine *e = NULL;
        assert_int_equal(engine_build(w.st, w.t1, &e, &err), 0);
        const char *why = NULL;
        if (!engine_validate(e, &why)) fail_msg("step %d: engine_validate: %s", step, why);
        model m;
        model_load(w.st, w.t1, &m);
        apply_changes(live, &prev, &m);
        if (!engine_validate(live, &why))
            fail_msg("step %d: engine_validate (live): %s", step, why);
        assert_int_equal(engine_customers(e), m.cust.n);
        assert_int_equal(engine_customers(live), m.cust.n);
        assert_int_equal(engine_events(live), engine_events(e));
        for (int q = 0; q < 12; q++) {
            sbuf b = {.n = 0};
            gen_expr(&b, &w, w.t1, 0);
            int64_t now = NOW + (rnd(4) == 0 ? (int64_t)rnd(3) - 1 : 0);
            long got = check_expr(e, &m, b.s, now);
            assert_int_equal(check_expr(live, &m, b.s, now), got);
            checked++;
            if (got < 0) {
                unknown++;
                continue;
            }
            if (got > 0) nonempty++;
            roaring_bitmap_t *x = eval_text(e, b.s, now), *y = eval_text(live, b.s, now);
            if (!roaring_bitmap_equals(x, y))
                fail_msg("step %d: live and rebuilt engines differ on %s", step, b.s);
            if (q < 2) { /* pages and breakdowns of the result, on both engines */
                engine_sort sort = (engine_sort)rnd(6);
                bool desc = rnd(2);
                size_t limit = 1 + rnd(5);
                check_page(live, &m, y, sort, desc, limit);
                check_page(e, &m, x, sort, desc, limit);
                expr_dim dim = bdims[rnd(N(bdims))];
                size_t top = 1 + rnd(6);
                check_breakdown(live, &m, y, dim, top);
                check_breakdown(e, &m, x, dim, 100);
                pages++;
                breakdowns++;
            }
            roaring_bitmap_free(x);
            roaring_bitmap_free(y);
        }
        ncust = engine_customers(e);
        nevents = engine_events(e);
        model_free(&prev);
        prev = m;
        engine_free(e);
    }
    print_message("engine model: seed %llu, %d steps, %ld expressions (%ld unknown-name errors, "
                  "%ld non-empty results), %ld paged, %ld broken down, on a rebuilt and a live "
                  "engine; at the end %u customers, %llu events\n",
                  (unsigned long long)seed, steps, checked, unknown, nonempty, pages, breakdowns,
                  ncust, (unsigned long long)nevents);
    assert_true(nonempty > checked / 5);
    assert_true(unknown > 0);
    model_free(&prev);
    engine_free(live);
    world_free(&w);
}

/* A fixed world for targeted cases. */
typedef struct fixed {
    world w;
    engine *e;
    model m;
    int64_t c[6]; /* customer ids */
    int64_t emp[3], dep[3], sto, tag_vip[2], grp;
} fixed;

static void fixed_build(fixed *f) {
    siyu_err err = {0};
    if (f->e) {
        engine_free(f->e);
        model_free(&f->m);
    }
    assert_int_equal(engine_build(f->w.st, f->w.t1, &f->e, &err), 0);
    const char *why = NULL;
    if (!engine_validate(f->e, &why)) fail_msg("engine_validate: %s", why);
    model_load(f->w.st, f->w.t1, &f->m);
}

static void ins_event(fixed *f, int ci, const char *type, int64_t ts, const char *props) {
    sqlf(f->w.st,
         "INSERT INTO event(tenant_id, customer_id, type, ts, source, props) "
         "VALUES (%lld, %lld, '%s', %lld, 'api', %s)",
         (long long)f->w.t1, (long long)f->c[ci], type, (long long)ts, props ? props : "NULL");
}

/* Expect exactly the customers listed (indexes into f->c, ended by -1). */
static void expect(fixed *f, const char *text, int64_t now, ...) {
    int64_t want[8];
    size_t n = 0;
    va_list ap;
    va_start(ap, now);
    for (int i; (i = va_arg(ap, int)) >= 0;)
        want[n++] = f->c[i];
    va_end(ap);
    long got = check_expr(f->e, &f->m, text, now); /* engine == naive */
    if (got != (long)n) fail_msg("%s: %ld customers, want %zu", text, got, n);
    expr_node *x;
    assert_int_equal(expr_parse(text, strlen(text), &x, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < f->m.cust.n; j++)
            if (f->m.cust.v[j].id == want[i]) found = naive(&f->m, &f->m.cust.v[j], x, now);
        if (!found) fail_msg("%s: customer %lld missing", text, (long long)want[i]);
    }
    expr_free(x);
}

static void test_targeted(void **state) {
    (void)state;
    fixed f = {0};
    world *w = &f.w;
    memset(w, 0, sizeof *w);
    w->dir = t_tmpdir();
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    w->st = store_open(w->dir, &o, &err);
    w->t1 = make_tenant(w->st, "one");
    w->t2 = make_tenant(w->st, "two");
    long long t = w->t1;
    for (int i = 0; i < 6; i++) {
        sqlf(w->st,
             "INSERT INTO customer(tenant_id, gender, first_added_at, created_at, updated_at) "
             "VALUES (%lld, %d, %s, 1, 1)",
             t, i % 3, i == 5 ? "NULL" : (i == 0 ? "1698704000" : "1699913600"));
        f.c[i] = last_id(w->st, "customer");
    }
    /* departments: 0 华东区 > 1 上海; 2 销售 */
    sqlf(w->st,
         "INSERT INTO department(tenant_id, name, created_at, updated_at) VALUES "
         "(%lld, '华东区', 1, 1)",
         t);
    f.dep[0] = last_id(w->st, "department");
    sqlf(w->st,
         "INSERT INTO department(tenant_id, name, parent_id, created_at, updated_at) "
         "VALUES (%lld, '上海', %lld, 1, 1)",
         t, (long long)f.dep[0]);
    f.dep[1] = last_id(w->st, "department");
    sqlf(w->st,
         "INSERT INTO department(tenant_id, name, created_at, updated_at) VALUES "
         "(%lld, '销售', 1, 1)",
         t);
    f.dep[2] = last_id(w->st, "department");
    sqlf(w->st,
         "INSERT INTO store(tenant_id, name, created_at, updated_at) VALUES "
         "(%lld, '徐汇店', 1, 1)",
         t);
    f.sto = last_id(w->st, "store");
    const char *en[3] = {"张三", "李四", "王五"};
    for (int i = 0; i < 3; i++) {
        sqlf(w->st,
             "INSERT INTO employee(tenant_id, userid, name, department_id, store_id, created_at, "
             "updated_at) VALUES (%lld, 'u%d', '%s', %lld, %s, 1, 1)",
             t, i, en[i], (long long)f.dep[i == 0 ? 1 : 2], i == 0 ? "1" : "NULL");
        f.emp[i] = last_id(w->st, "employee");
    }
    sqlf(w->st, "UPDATE employee SET store_id = %lld WHERE id = %lld", (long long)f.sto,
         (long long)f.emp[0]);
    /* relationships: c0 active with 张三 via 门店扫码; c1 deleted_by_customer with 张三;
     * c2 active with 李四 and deleted_by_employee with 王五; c3 transferred */
    struct {
        int c, e;
        const char *st, *state;
    } rel[] = {{0, 0, "active", "门店扫码"},
               {1, 0, "deleted_by_customer", "门店扫码"},
               {2, 1, "active", NULL},
               {2, 2, "deleted_by_employee", "web"},
               {3, 2, "transferred", NULL}};
    for (size_t i = 0; i < N(rel); i++) {
        char state[32];
        snprintf(state, sizeof state, rel[i].state ? "'%s'" : "NULL", rel[i].state);
        sqlf(w->st,
             "INSERT INTO relationship(tenant_id, customer_id, employee_id, status, added_at, "
             "state, updated_at) VALUES (%lld, %lld, %lld, '%s', 1, %s, 1)",
             t, (long long)f.c[rel[i].c], (long long)f.emp[rel[i].e], rel[i].st, state);
    }
    /* two tags named VIP in two groups; c0 has the first, c4 the second */
    for (int g = 0; g < 2; g++) {
        sqlf(w->st,
             "INSERT INTO tag_group(tenant_id, name, created_at, updated_at) VALUES "
             "(%lld, 'g%d', 1, 1)",
             t, g);
        sqlf(w->st,
             "INSERT INTO tag(tenant_id, group_id, name, created_at, updated_at) VALUES "
             "(%lld, %lld, 'VIP', 1, 1)",
             t, (long long)last_id(w->st, "tag_group"));
        f.tag_vip[g] = last_id(w->st, "tag");
        sqlf(w->st,
             "INSERT INTO customer_tag(tenant_id, customer_id, tag_id, created_at) "
             "VALUES (%lld, %lld, %lld, 1)",
             t, (long long)f.c[g ? 4 : 0], (long long)f.tag_vip[g]);
    }
    sqlf(w->st,
         "INSERT INTO group_chat(tenant_id, chat_id, name, created_at, updated_at) VALUES "
         "(%lld, 'c1', 'VIP 福利群', 1, 1)",
         t);
    f.grp = last_id(w->st, "group_chat");
    sqlf(w->st,
         "INSERT INTO group_member(tenant_id, group_id, member_id, customer_id, status) "
         "VALUES (%lld, %lld, 'a', %lld, 'in'), (%lld, %lld, 'b', %lld, 'left')",
         t, (long long)f.grp, (long long)f.c[1], t, (long long)f.grp, (long long)f.c[2]);
    /* the other tenant: same names, must never leak */
    sqlf(w->st,
         "INSERT INTO customer(tenant_id, gender, created_at, updated_at) VALUES "
         "(%lld, 2, 1, 1)",
         (long long)w->t2);
    /* events: c0 message exactly 14d ago; c1 message 14d + 1s ago; c2 message in the
     * future; c3 two orders (99.5 and 0.505 yuan) 1d and 29d ago */
    ins_event(&f, 0, "message", NOW - 14 * DAY, NULL);
    ins_event(&f, 1, "message", NOW - 14 * DAY - 1, NULL);
    ins_event(&f, 2, "message", NOW + 1, NULL);
    ins_event(&f, 3, "order", NOW - DAY, "'{\"amount\":99.5}'");
    ins_event(&f, 3, "order", NOW - 29 * DAY, "'{\"amount\":0.5}'");
    ins_event(&f, 4, "order", NOW - 40 * DAY, "'{\"amount\":1000}'");
    ins_event(&f, 4, "page.view", NOW, NULL);
    fixed_build(&f);

    assert_int_equal(engine_customers(f.e), 6);
    assert_int_equal(engine_events(f.e), 7);
    /* sets */
    expect(&f, "tag(\"VIP\")", NOW, 0, 4, -1);
    char q[128];
    snprintf(q, sizeof q, "tag(%lld)", (long long)f.tag_vip[1]);
    expect(&f, q, NOW, 4, -1);
    expect(&f, "channel(\"门店扫码\")", NOW, 0, 1, -1);
    expect(&f, "channel = \"web\"", NOW, 2, -1);
    expect(&f, "employee(\"张三\")", NOW, 0, -1); /* active relationships only */
    expect(&f, "employee in (\"李四\", \"王五\")", NOW, 2, -1);
    expect(&f, "department(\"华东区\")", NOW, 0, -1); /* through the sub-department 上海 */
    expect(&f, "department(\"销售\")", NOW, 2, -1);
    expect(&f, "store = \"徐汇店\"", NOW, 0, -1);
    expect(&f, "group(\"VIP 福利群\")", NOW, 1, -1);
    expect(&f, "gender = \"female\"", NOW, 2, 5, -1);
    expect(&f, "gender = \"unknown\"", NOW, 0, 3, -1);
    expect(&f, "relationship_status = \"lost\"", NOW, 1, 2, -1);
    expect(&f, "relationship_status = \"transferred\"", NOW, 3, -1);
    expect(&f, "relationship_status = \"active\"", NOW, 0, 2, -1);
    expect(&f, "region = \"上海\"", NOW, -1); /* no region data yet */
    expect(&f, "not stage = \"lead\"", NOW, 0, 1, 2, 3, 4, 5, -1);
    /* numbers */
    expect(&f, "spent = 100", NOW, 3, -1);
    expect(&f, "spent >= 1000", NOW, 4, -1);
    expect(&f, "orders_total = 2", NOW, 3, -1);
    expect(&f, "orders_total = 0", NOW, 0, 1, 2, 5, -1);
    expect(&f, "first_added < 14d", NOW, 1, 2, 3, 4, -1); /* 1699913600 is NOW - 1d */
    expect(&f, "first_added >= 15d", NOW, 0, -1);         /* c5 has none */
    expect(&f, "last_message > 14d", NOW, 1, -1);
    expect(&f, "last_message >= 14d", NOW, 0, 1, -1);
    expect(&f, "last_message < 1m", NOW, 2, -1); /* a future event has a negative age */
    expect(&f, "last_active > 30d", NOW, -1);
    expect(&f, "last_message > 14d or not did(\"message\")", NOW, 1, 3, 4, 5, -1);
    /* window edges: [now - window, now], both inclusive */
    expect(&f, "did(\"message\", 14d)", NOW, 0, -1);
    expect(&f, "did(\"message\", 14d)", NOW + 1, 2, -1);
    expect(&f, "did(\"message\", 14d)", NOW - 1, 0, 1, -1);
    expect(&f, "did(\"message\")", NOW, 0, 1, 2, -1);
    expect(&f, "did(\"message\", 1m)", NOW + 1, 2, -1);
    expect(&f, "did(\"page.view\", 1m)", NOW, 4, -1);
    expect(&f, "orders(30d) >= 2", NOW, 3, -1);
    expect(&f, "orders(28d) = 1", NOW, 3, -1);
    expect(&f, "orders() > 0", NOW, 3, 4, -1);
    expect(&f, "count(\"message\") = 0", NOW, 3, 4, 5, -1);
    expect(&f, "count(\"message\", 14d) < 1", NOW, 1, 2, 3, 4, 5, -1);
    expect(&f, "count(\"nothing\") = 0", NOW, 0, 1, 2, 3, 4, 5, -1);
    expect(&f, "first(\"order\") > 28d", NOW, 3, 4, -1);
    expect(&f, "last(\"order\") < 2d", NOW, 3, -1);
    expect(&f, "first(\"order\") = 29d", NOW, 3, -1);
    expect(&f, "last(\"nothing\") >= 1m", NOW, -1);
    /* combinations */
    expect(&f, "tag(\"VIP\") and not did(\"message\", 14d)", NOW, 4, -1);
    expect(&f, "not tag(\"VIP\") and not gender = \"female\"", NOW, 1, 3, -1);
    expect(&f, "not (did(\"order\") or did(\"message\"))", NOW, 5, -1);

    /* unknown names: an error naming each with its position */
    const char *bad = "tag(\"VIP\") and (tag(\"nosuch\") or employee(424242)) or channel(7) "
                      "or channel_group(\"秋季\")";
    expr_node *x;
    assert_int_equal(expr_parse(bad, strlen(bad), &x, NULL), 0);
    roaring_bitmap_t *bm = (roaring_bitmap_t *)1;
    assert_int_equal(engine_eval(f.e, x, NOW, &bm, &err), SIYU_EINVAL);
    assert_null(bm);
    assert_non_null(strstr(err.msg, "tag \"nosuch\" (line 1, column 17)"));
    assert_non_null(strstr(err.msg, "employee 424242"));
    assert_non_null(strstr(err.msg, "channel 7"));
    assert_non_null(strstr(err.msg, "channel_group \"秋季\""));
    expr_free(x);

    engine_free(f.e);
    model_free(&f.m);
    world_free(w);
}

static void test_empty_tenant(void **state) {
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    w.dir = t_tmpdir();
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    w.st = store_open(w.dir, &o, &err);
    w.t1 = make_tenant(w.st, "empty");
    engine *e = NULL;
    assert_int_equal(engine_build(w.st, w.t1, &e, &err), 0);
    assert_true(engine_validate(e, NULL));
    assert_int_equal(engine_customers(e), 0);
    const char *texts[] = {"not did(\"x\")", "count(\"x\") = 0", "spent < 1", "gender = \"male\""};
    for (size_t i = 0; i < N(texts); i++) {
        expr_node *x;
        assert_int_equal(expr_parse(texts[i], strlen(texts[i]), &x, NULL), 0);
        roaring_bitmap_t *bm;
        assert_int_equal(engine_eval(e, x, NOW, &bm, &err), 0);
        assert_int_equal(roaring_bitmap_get_cardinality(bm), 0);
        roaring_bitmap_free(bm);
        expr_free(x);
    }
    engine_free(e);
    world_free(&w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_tenant),
        cmocka_unit_test(test_targeted),
        cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
