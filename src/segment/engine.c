/* engine.c — the in-memory segment engine (see engine.h for the layout). */
#include "segment/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

/* One value of a dimension: a record (id and name) or a plain value (name). */
typedef struct dval {
    int64_t id; /* 0 when the dimension has no record ids */
    char *name; /* may be NULL (a record without a name) */
    roaring_bitmap_t *bm;
} dval;

typedef struct dict {
    dval *v; /* sorted by id when ids is true */
    size_t n, cap;
    bool ids;
} dict;

/* One event type's column: customers with events (sorted dense ids), CSR
 * offsets into the timestamp arena, timestamps ascending per customer. */
typedef struct evcol {
    char *type;
    uint32_t nc;   /* customers with at least one event */
    uint32_t *cid; /* [nc] */
    uint32_t *off; /* [nc + 1] */
    uint32_t *ts;  /* [nev], Unix seconds */
    uint64_t nev;
    roaring_bitmap_t *any; /* the cid set */
    size_t cap_c, cap_t;   /* build only */
} evcol;

enum { ST_ACTIVE, ST_DEL_CUSTOMER, ST_DEL_EMPLOYEE, ST_TRANSFERRED, ST_LOST, ST__COUNT };
static const char *const status_names[ST__COUNT] = {"active", "deleted_by_customer",
                                                    "deleted_by_employee", "transferred", "lost"};
enum { G_FEMALE, G_MALE, G_UNKNOWN, G__COUNT };
static const char *const gender_names[G__COUNT] = {"female", "male", "unknown"};

struct engine {
    int64_t tenant_id;
    uint32_t n;
    int64_t *ids; /* [n] customer row ids */
    roaring_bitmap_t *all;
    dict dims[EXPR_DIM__COUNT];
    int64_t *spent, *orders, *first_added, *last_active, *last_message; /* [n] */
    evcol *ev;
    size_t nev_types;
    uint64_t events;
    uint64_t skipped; /* events with a time outside 0 .. 2^32-1 */
};

/* ---- small helpers -------------------------------------------------------- */

static int64_t mono_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static char *xstrdup(const unsigned char *s) {
    return s ? strdup((const char *)s) : NULL;
}

static dval *dict_add(dict *d, int64_t id, const unsigned char *name) {
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        dval *v = realloc(d->v, cap * sizeof *v);
        if (!v) return NULL;
        d->v = v;
        d->cap = cap;
    }
    dval *x = &d->v[d->n];
    x->id = id;
    x->name = xstrdup(name);
    x->bm = roaring_bitmap_create();
    if ((name && !x->name) || !x->bm) {
        free(x->name);
        if (x->bm) roaring_bitmap_free(x->bm);
        return NULL;
    }
    d->n++;
    return x;
}

static dval *dict_by_id(const dict *d, int64_t id) {
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->n && d->v[lo].id == id ? &d->v[lo] : NULL;
}

static dval *dict_by_name(const dict *d, const char *name) {
    for (size_t i = 0; i < d->n; i++)
        if (d->v[i].name && strcmp(d->v[i].name, name) == 0) return &d->v[i];
    return NULL;
}

static void dict_free(dict *d) {
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].name);
        roaring_bitmap_free(d->v[i].bm);
    }
    free(d->v);
    memset(d, 0, sizeof *d);
}

/* A string → index hash for build-time lookups (channels, event types). */
typedef struct strmap {
    char **keys;
    uint32_t *vals;
    size_t cap, n;
} strmap;

static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Returns the slot of key (found or empty). */
static size_t strmap_slot(const strmap *m, const char *key) {
    size_t i = fnv(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int strmap_grow(strmap *m) {
    strmap g = {.cap = m->cap ? m->cap * 2 : 64};
    g.keys = calloc(g.cap, sizeof *g.keys);
    g.vals = calloc(g.cap, sizeof *g.vals);
    if (!g.keys || !g.vals) {
        free(g.keys);
        free(g.vals);
        return SIYU_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t s = strmap_slot(&g, m->keys[i]);
        g.keys[s] = m->keys[i];
        g.vals[s] = m->vals[i];
    }
    g.n = m->n;
    free(m->keys);
    free(m->vals);
    *m = g;
    return 0;
}

/* Finds key; when absent and val_new is not UINT32_MAX, inserts it with that
 * value. Returns the value, UINT32_MAX when absent (or out of memory). */
static uint32_t strmap_get(strmap *m, const char *key, uint32_t val_new) {
    if (m->cap) {
        size_t s = strmap_slot(m, key);
        if (m->keys[s]) return m->vals[s];
    }
    if (val_new == UINT32_MAX) return UINT32_MAX;
    if ((m->n + 1) * 2 > m->cap && strmap_grow(m) != 0) return UINT32_MAX;
    size_t s = strmap_slot(m, key);
    if (!(m->keys[s] = strdup(key))) return UINT32_MAX;
    m->vals[s] = val_new;
    m->n++;
    return val_new;
}

static void strmap_free(strmap *m) {
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
}

/* ---- build ------------------------------------------------------------------ */

typedef struct build {
    engine *e;
    store_conn *c;
    siyu_err *err;
    int64_t t0;
} build;

static int b_io(build *b, const char *what) {
    return siyu_err_set(b->err, SIYU_EIO, NULL, "engine build: reading %s failed", what);
}

static int b_nomem(build *b) {
    return siyu_err_set(b->err, SIYU_ENOMEM, NULL, "engine build: out of memory");
}

static sqlite3_stmt *b_stmt(build *b, const char *sql) {
    sqlite3_stmt *s = store_conn_stmt(b->c, sql);
    if (s) sqlite3_bind_int64(s, 1, b->e->tenant_id);
    return s;
}

static int b_customers(build *b) {
    engine *e = b->e;
    sqlite3_stmt *s = b_stmt(b, "SELECT id, gender, first_added_at FROM customer "
                                "WHERE tenant_id = ? ORDER BY id");
    if (!s) return b_io(b, "customers");
    size_t cap = 0;
    int rc;
    dict *g = &e->dims[EXPR_DIM_GENDER];
    for (int i = 0; i < G__COUNT; i++)
        if (!dict_add(g, 0, (const unsigned char *)gender_names[i])) return b_nomem(b);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (e->n == UINT32_MAX) {
            sqlite3_reset(s);
            return siyu_err_set(b->err, SIYU_ETOOBIG, NULL, "more than 2^32-1 customers");
        }
        if (e->n == cap) {
            cap = cap ? cap * 2 : 1024;
            int64_t *ids = realloc(e->ids, cap * sizeof *ids);
            int64_t *fa = realloc(e->first_added, cap * sizeof *fa);
            if (ids) e->ids = ids;
            if (fa) e->first_added = fa;
            if (!ids || !fa) {
                sqlite3_reset(s);
                return b_nomem(b);
            }
        }
        uint32_t d = e->n++;
        e->ids[d] = sqlite3_column_int64(s, 0);
        int64_t gender = sqlite3_column_int64(s, 1);
        roaring_bitmap_add(g->v[gender == 2 ? G_FEMALE : gender == 1 ? G_MALE : G_UNKNOWN].bm, d);
        e->first_added[d] =
            sqlite3_column_type(s, 2) == SQLITE_NULL ? ENGINE_NONE : sqlite3_column_int64(s, 2);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return b_io(b, "customers");
    size_t n = e->n ? e->n : 1;
    e->spent = calloc(n, sizeof *e->spent);
    e->orders = calloc(n, sizeof *e->orders);
    e->last_active = malloc(n * sizeof *e->last_active);
    e->last_message = malloc(n * sizeof *e->last_message);
    e->all = roaring_bitmap_create();
    if (!e->ids) e->ids = calloc(1, sizeof *e->ids);
    if (!e->first_added) e->first_added = calloc(1, sizeof *e->first_added);
    if (!e->spent || !e->orders || !e->last_active || !e->last_message || !e->all || !e->ids ||
        !e->first_added)
        return b_nomem(b);
    for (uint32_t i = 0; i < e->n; i++)
        e->last_active[i] = e->last_message[i] = ENGINE_NONE;
    if (e->n) roaring_bitmap_add_range_closed(e->all, 0, e->n - 1);
    log_info("engine build: tenant %lld: %u customers (%lld ms)", (long long)e->tenant_id, e->n,
             (long long)(mono_ms() - b->t0));
    return 0;
}

/* Loads the records of one dimension: sql selects (id, name) ordered by id. */
static int b_records(build *b, expr_dim dim, const char *sql, const char *what) {
    dict *d = &b->e->dims[dim];
    d->ids = true;
    sqlite3_stmt *s = b_stmt(b, sql);
    if (!s) return b_io(b, what);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (!dict_add(d, sqlite3_column_int64(s, 0), sqlite3_column_text(s, 1))) {
            sqlite3_reset(s);
            return b_nomem(b);
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : b_io(b, what);
}

/* Runs sql selecting (customer_id, key) and adds each customer to the value
 * of the dimension with record id key. */
static int b_members(build *b, expr_dim dim, const char *sql, const char *what) {
    engine *e = b->e;
    dict *d = &e->dims[dim];
    sqlite3_stmt *s = b_stmt(b, sql);
    if (!s) return b_io(b, what);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint32_t cust;
        dval *v = dict_by_id(d, sqlite3_column_int64(s, 1));
        if (v && engine_dense_id(e, sqlite3_column_int64(s, 0), &cust))
            roaring_bitmap_add(v->bm, cust);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : b_io(b, what);
}

static int b_relationships(build *b) {
    engine *e = b->e;
    dict *st = &e->dims[EXPR_DIM_RELATIONSHIP_STATUS], *ch = &e->dims[EXPR_DIM_CHANNEL];
    dict *emp = &e->dims[EXPR_DIM_EMPLOYEE];
    for (int i = 0; i < ST__COUNT; i++)
        if (!dict_add(st, 0, (const unsigned char *)status_names[i])) return b_nomem(b);
    sqlite3_stmt *s = b_stmt(b, "SELECT customer_id, employee_id, status, state FROM relationship "
                                "WHERE tenant_id = ?");
    if (!s) return b_io(b, "relationships");
    strmap chm = {0};
    int rc, ret = 0;
    uint64_t rows = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint32_t cust;
        rows++;
        if (!engine_dense_id(e, sqlite3_column_int64(s, 0), &cust)) continue;
        const char *status = (const char *)sqlite3_column_text(s, 2);
        int si = -1;
        for (int i = 0; i < ST_LOST && status; i++)
            if (strcmp(status, status_names[i]) == 0) si = i;
        if (si >= 0) roaring_bitmap_add(st->v[si].bm, cust);
        if (si == ST_ACTIVE) {
            dval *v = dict_by_id(emp, sqlite3_column_int64(s, 1));
            if (v) roaring_bitmap_add(v->bm, cust);
        }
        const unsigned char *state = sqlite3_column_text(s, 3);
        if (state && *state) {
            uint32_t i = strmap_get(&chm, (const char *)state, (uint32_t)ch->n);
            if (i == UINT32_MAX || (i == ch->n && !dict_add(ch, 0, state))) {
                ret = b_nomem(b);
                break;
            }
            roaring_bitmap_add(ch->v[i].bm, cust);
        }
    }
    sqlite3_reset(s);
    strmap_free(&chm);
    if (ret) return ret;
    if (rc != SQLITE_DONE) return b_io(b, "relationships");
    roaring_bitmap_or_inplace(st->v[ST_LOST].bm, st->v[ST_DEL_CUSTOMER].bm);
    roaring_bitmap_or_inplace(st->v[ST_LOST].bm, st->v[ST_DEL_EMPLOYEE].bm);
    log_info("engine build: tenant %lld: %llu relationships, %zu channels (%lld ms)",
             (long long)e->tenant_id, (unsigned long long)rows, ch->n,
             (long long)(mono_ms() - b->t0));
    return 0;
}

/* Departments (with their sub-departments) and stores: the union of their
 * employees' active customers. */
static int b_org(build *b) {
    engine *e = b->e;
    dict *dep = &e->dims[EXPR_DIM_DEPARTMENT], *sto = &e->dims[EXPR_DIM_STORE];
    dict *emp = &e->dims[EXPR_DIM_EMPLOYEE];
    int64_t *parent = calloc(dep->n ? dep->n : 1, sizeof *parent);
    if (!parent) return b_nomem(b);
    sqlite3_stmt *s = b_stmt(b, "SELECT id, parent_id FROM department WHERE tenant_id = ?");
    int rc = SQLITE_ERROR;
    if (s) {
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            dval *v = dict_by_id(dep, sqlite3_column_int64(s, 0));
            if (v) parent[v - dep->v] = sqlite3_column_int64(s, 1);
        }
        sqlite3_reset(s);
    }
    if (rc != SQLITE_DONE) {
        free(parent);
        return b_io(b, "departments");
    }
    s = b_stmt(b, "SELECT id, department_id, store_id FROM employee WHERE tenant_id = ?");
    rc = SQLITE_ERROR;
    if (s) {
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            dval *ev = dict_by_id(emp, sqlite3_column_int64(s, 0));
            if (!ev) continue;
            dval *sv = dict_by_id(sto, sqlite3_column_int64(s, 2));
            if (sv) roaring_bitmap_or_inplace(sv->bm, ev->bm);
            /* the department and its ancestors; a cycle stops at the depth */
            int64_t d = sqlite3_column_int64(s, 1);
            for (int depth = 0; d && depth < EXPR_MAX_DEPTH; depth++) {
                dval *dv = dict_by_id(dep, d);
                if (!dv) break;
                roaring_bitmap_or_inplace(dv->bm, ev->bm);
                d = parent[dv - dep->v];
            }
        }
        sqlite3_reset(s);
    }
    free(parent);
    return rc == SQLITE_DONE ? 0 : b_io(b, "employees");
}

static evcol *ev_col(engine *e, strmap *m, const char *type) {
    uint32_t i = strmap_get(m, type, UINT32_MAX);
    if (i != UINT32_MAX) return &e->ev[i];
    evcol *v = realloc(e->ev, (e->nev_types + 1) * sizeof *v);
    if (!v) return NULL;
    e->ev = v;
    evcol *c = &e->ev[e->nev_types];
    memset(c, 0, sizeof *c);
    c->type = strdup(type);
    c->any = roaring_bitmap_create();
    if (!c->type || !c->any ||
        strmap_get(m, type, (uint32_t)e->nev_types) != (uint32_t)e->nev_types) {
        free(c->type);
        if (c->any) roaring_bitmap_free(c->any);
        return NULL;
    }
    e->nev_types++;
    return c;
}

static int ev_push(evcol *c, uint32_t cust, uint32_t ts) {
    if (c->nc == 0 || c->cid[c->nc - 1] != cust) {
        if (c->nc == UINT32_MAX - 1) return SIYU_ETOOBIG;
        if (c->nc + 1 >= c->cap_c) {
            size_t cap = c->cap_c ? c->cap_c * 2 : 64;
            uint32_t *cid = realloc(c->cid, cap * sizeof *cid);
            if (cid) c->cid = cid;
            uint32_t *off = realloc(c->off, (cap + 1) * sizeof *off);
            if (off) c->off = off;
            if (!cid || !off) return SIYU_ENOMEM;
            c->cap_c = cap;
        }
        c->cid[c->nc] = cust;
        c->off[c->nc] = (uint32_t)c->nev;
        c->nc++;
    }
    if (c->nev >= UINT32_MAX - 1) return SIYU_ETOOBIG;
    if (c->nev == c->cap_t) {
        size_t cap = c->cap_t ? c->cap_t * 2 : 256;
        uint32_t *ts2 = realloc(c->ts, cap * sizeof *ts2);
        if (!ts2) return SIYU_ENOMEM;
        c->ts = ts2;
        c->cap_t = cap;
    }
    c->ts[c->nev++] = ts;
    return 0;
}

static int b_events(build *b) {
    engine *e = b->e;
    sqlite3_stmt *s = b_stmt(b, "SELECT customer_id, type, ts, CASE WHEN type = 'order' AND "
                                "json_valid(props) THEN json_extract(props, '$.amount') END "
                                "FROM event WHERE tenant_id = ? AND customer_id IS NOT NULL "
                                "ORDER BY customer_id, ts");
    if (!s) return b_io(b, "events");
    strmap m = {0};
    int rc, ret = 0;
    uint32_t cur = 0; /* merge cursor into the sorted customer ids */
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t cid = sqlite3_column_int64(s, 0);
        while (cur < e->n && e->ids[cur] < cid)
            cur++;
        if (cur == e->n || e->ids[cur] != cid) continue;
        int64_t ts = sqlite3_column_int64(s, 2);
        if (ts < 0 || ts > (int64_t)UINT32_MAX) {
            e->skipped++;
            continue;
        }
        const char *type = (const char *)sqlite3_column_text(s, 1);
        evcol *c = type ? ev_col(e, &m, type) : NULL;
        if (!c) {
            ret = b_nomem(b);
            break;
        }
        if ((ret = ev_push(c, cur, (uint32_t)ts)) != 0) {
            ret = ret == SIYU_ENOMEM ? b_nomem(b)
                                     : siyu_err_set(b->err, ret, NULL, "too many events of a type");
            break;
        }
        e->events++;
        if (e->last_active[cur] == ENGINE_NONE || ts > e->last_active[cur])
            e->last_active[cur] = ts;
        if (strcmp(type, "message") == 0 &&
            (e->last_message[cur] == ENGINE_NONE || ts > e->last_message[cur]))
            e->last_message[cur] = ts;
        if (strcmp(type, "order") == 0) {
            e->orders[cur]++;
            int t = sqlite3_column_type(s, 3);
            if (t == SQLITE_INTEGER || t == SQLITE_FLOAT) {
                double amount = sqlite3_column_double(s, 3);
                if (isfinite(amount) && fabs(amount) < 1e13) e->spent[cur] += llround(amount * 100);
            }
        }
        if (e->events % 10000000 == 0)
            log_info("engine build: tenant %lld: %llu events (%lld ms)", (long long)e->tenant_id,
                     (unsigned long long)e->events, (long long)(mono_ms() - b->t0));
    }
    sqlite3_reset(s);
    strmap_free(&m);
    if (ret) return ret;
    if (rc != SQLITE_DONE) return b_io(b, "events");
    for (size_t i = 0; i < e->nev_types; i++) {
        evcol *c = &e->ev[i];
        c->off[c->nc] = (uint32_t)c->nev;
        roaring_bitmap_add_many(c->any, c->nc, c->cid);
        roaring_bitmap_run_optimize(c->any);
    }
    if (e->skipped)
        log_warn("engine build: tenant %lld: %llu events with a time outside 1970..2106 skipped",
                 (long long)e->tenant_id, (unsigned long long)e->skipped);
    log_info("engine build: tenant %lld: %llu events of %zu types (%lld ms)",
             (long long)e->tenant_id, (unsigned long long)e->events, e->nev_types,
             (long long)(mono_ms() - b->t0));
    return 0;
}

static int b_all(build *b) {
    int rc;
    if ((rc = b_customers(b)) != 0) return rc;
    if ((rc = b_records(b, EXPR_DIM_TAG, "SELECT id, name FROM tag WHERE tenant_id = ? ORDER BY id",
                        "tags")) ||
        (rc = b_records(b, EXPR_DIM_EMPLOYEE,
                        "SELECT id, name FROM employee WHERE tenant_id = ? ORDER BY id",
                        "employees")) ||
        (rc = b_records(b, EXPR_DIM_DEPARTMENT,
                        "SELECT id, name FROM department WHERE tenant_id = ? ORDER BY id",
                        "departments")) ||
        (rc = b_records(b, EXPR_DIM_STORE,
                        "SELECT id, name FROM store WHERE tenant_id = ? ORDER BY id", "stores")) ||
        (rc = b_records(b, EXPR_DIM_GROUP,
                        "SELECT id, name FROM group_chat WHERE tenant_id = ? ORDER BY id",
                        "groups")))
        return rc;
    b->e->dims[EXPR_DIM_CHANNEL_GROUP].ids = true; /* records, none yet */
    if ((rc = b_members(b, EXPR_DIM_TAG,
                        "SELECT customer_id, tag_id FROM customer_tag WHERE tenant_id = ?",
                        "tag memberships")) ||
        (rc = b_members(b, EXPR_DIM_GROUP,
                        "SELECT m.customer_id, m.group_id FROM group_member m "
                        "JOIN group_chat g ON g.id = m.group_id WHERE m.tenant_id = ? "
                        "AND m.status = 'in' AND g.status = 'active' AND m.customer_id IS NOT NULL",
                        "group members")))
        return rc;
    log_info("engine build: tenant %lld: %zu tags, %zu groups (%lld ms)",
             (long long)b->e->tenant_id, b->e->dims[EXPR_DIM_TAG].n, b->e->dims[EXPR_DIM_GROUP].n,
             (long long)(mono_ms() - b->t0));
    if ((rc = b_relationships(b)) != 0 || (rc = b_org(b)) != 0 || (rc = b_events(b)) != 0)
        return rc;
    for (int d = 1; d < EXPR_DIM__COUNT; d++)
        for (size_t i = 0; i < b->e->dims[d].n; i++)
            roaring_bitmap_run_optimize(b->e->dims[d].v[i].bm);
    return 0;
}

int engine_build(store *st, int64_t tenant_id, engine **out, siyu_err *err) {
    *out = NULL;
    engine *e = calloc(1, sizeof *e);
    if (!e) return siyu_err_set(err, SIYU_ENOMEM, NULL, "engine build: out of memory");
    e->tenant_id = tenant_id;
    build b = {.e = e, .err = err, .t0 = mono_ms()};
    b.c = store_reader_acquire(st);
    if (!b.c) {
        engine_free(e);
        return siyu_err_set(err, SIYU_EIO, NULL, "engine build: no read connection");
    }
    int rc = b_all(&b);
    store_reader_release(st, b.c);
    if (rc != 0) {
        engine_free(e);
        return rc;
    }
    log_info("engine build: tenant %lld done: %u customers, %llu events (%lld ms)",
             (long long)tenant_id, e->n, (unsigned long long)e->events,
             (long long)(mono_ms() - b.t0));
    *out = e;
    return 0;
}

void engine_free(engine *e) {
    if (!e) return;
    for (int d = 0; d < EXPR_DIM__COUNT; d++)
        dict_free(&e->dims[d]);
    for (size_t i = 0; i < e->nev_types; i++) {
        evcol *c = &e->ev[i];
        free(c->type);
        free(c->cid);
        free(c->off);
        free(c->ts);
        roaring_bitmap_free(c->any);
    }
    free(e->ev);
    if (e->all) roaring_bitmap_free(e->all);
    free(e->ids);
    free(e->spent);
    free(e->orders);
    free(e->first_added);
    free(e->last_active);
    free(e->last_message);
    free(e);
}

uint32_t engine_customers(const engine *e) {
    return e->n;
}

int64_t engine_customer_id(const engine *e, uint32_t dense) {
    return e->ids[dense];
}

bool engine_dense_id(const engine *e, int64_t customer_id, uint32_t *dense) {
    uint32_t lo = 0, hi = e->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (e->ids[mid] < customer_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < e->n && e->ids[lo] == customer_id) {
        *dense = lo;
        return true;
    }
    return false;
}

uint64_t engine_events(const engine *e) {
    return e->events;
}

/* ---- evaluation --------------------------------------------------------------- */

/* Dimensions whose values are records (names and ids must exist); region and
 * stage are plain values: one nobody has matches nobody. */
static bool dim_records(expr_dim d) {
    return d <= EXPR_DIM_GROUP;
}

typedef struct unknowns {
    char msg[256];
    size_t len;
    int count;
} unknowns;

static void unknown_add(unknowns *u, const expr_node *n, const expr_value *v) {
    char one[320];
    if (v->kind == EXPR_VAL_ID)
        snprintf(one, sizeof one, "%s %lld (line %u, column %u)", expr_dim_name(n->dim),
                 (long long)v->id, n->line, n->col);
    else
        snprintf(one, sizeof one, "%s \"%s\" (line %u, column %u)", expr_dim_name(n->dim), v->name,
                 n->line, n->col);
    size_t need = strlen(one) + (u->count ? 2 : 0);
    if (u->len + need + 4 < sizeof u->msg) {
        u->len += (size_t)snprintf(u->msg + u->len, sizeof u->msg - u->len, "%s%s",
                                   u->count ? ", " : "", one);
    } else if (u->len + 4 < sizeof u->msg && !strstr(u->msg, "...")) {
        u->len += (size_t)snprintf(u->msg + u->len, sizeof u->msg - u->len, ", ...");
    }
    u->count++;
}

static void resolve(const engine *e, const expr_node *n, unknowns *u) {
    if (n->kind == EXPR_AND || n->kind == EXPR_OR || n->kind == EXPR_NOT) {
        for (size_t i = 0; i < n->nkids; i++)
            resolve(e, n->kids[i], u);
        return;
    }
    if (n->kind != EXPR_SET || !dim_records(n->dim)) return;
    const dict *d = &e->dims[n->dim];
    for (size_t i = 0; i < n->nvals; i++) {
        const expr_value *v = &n->vals[i];
        bool ok = v->kind == EXPR_VAL_ID ? d->ids && dict_by_id(d, v->id) != NULL
                                         : dict_by_name(d, v->name) != NULL;
        if (!ok) unknown_add(u, n, v);
    }
}

static bool cmp(int64_t a, expr_op op, int64_t b) {
    switch (op) {
    case EXPR_OP_LT:
        return a < b;
    case EXPR_OP_LE:
        return a <= b;
    case EXPR_OP_GT:
        return a > b;
    case EXPR_OP_GE:
        return a >= b;
    case EXPR_OP_EQ:
        return a == b;
    case EXPR_OP_NE:
        return a != b;
    }
    return false;
}

/* A growable list of dense ids, added to a bitmap in bulk. */
typedef struct idbuf {
    uint32_t v[1024];
    size_t n;
    roaring_bitmap_t *bm;
} idbuf;

static void idbuf_add(idbuf *b, uint32_t x) {
    b->v[b->n++] = x;
    if (b->n == sizeof b->v / sizeof b->v[0]) {
        roaring_bitmap_add_many(b->bm, b->n, b->v);
        b->n = 0;
    }
}

static void idbuf_flush(idbuf *b) {
    if (b->n) roaring_bitmap_add_many(b->bm, b->n, b->v);
    b->n = 0;
}

static const evcol *find_type(const engine *e, const char *type) {
    for (size_t i = 0; i < e->nev_types; i++)
        if (strcmp(e->ev[i].type, type) == 0) return &e->ev[i];
    return NULL;
}

/* First index in ts[lo, hi) with ts >= t. */
static uint32_t lower(const uint32_t *ts, uint32_t lo, uint32_t hi, int64_t t) {
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((int64_t)ts[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Events of customer k of c in the window [now - window, now] (all when
 * window is 0). */
static uint32_t ev_count(const evcol *c, uint32_t k, int64_t now, int64_t window) {
    uint32_t a = c->off[k], z = c->off[k + 1];
    if (window == 0) return z - a;
    uint32_t from = lower(c->ts, a, z, now - window);
    uint32_t to = lower(c->ts, from, z, now + 1);
    return to - from;
}

/* eval(e, n, now, within) is n's set of customers intersected with within
 * (NULL: all customers). Sets are computed whole and intersected; numeric
 * comparisons and event predicates test only the customers of within, so an
 * "and" whose set parts are selective makes its other parts cheap. */
static roaring_bitmap_t *eval(const engine *e, const expr_node *n, int64_t now,
                              const roaring_bitmap_t *within);

/* Computed from whole bitmaps, without a per-customer test. */
static bool cheap(const expr_node *n) {
    switch (n->kind) {
    case EXPR_SET:
        return true;
    case EXPR_DID:
        return n->window == 0;
    case EXPR_AND:
    case EXPR_OR:
    case EXPR_NOT:
        for (size_t i = 0; i < n->nkids; i++)
            if (!cheap(n->kids[i])) return false;
        return true;
    default:
        return false;
    }
}

static roaring_bitmap_t *eval_and(const engine *e, const expr_node *n, int64_t now,
                                  const roaring_bitmap_t *within) {
    roaring_bitmap_t *r = NULL; /* NULL while nothing narrowed within yet */
    /* passes: cheap parts, cheap "not" parts, the others, the other "not"
     * parts; each evaluates within the result so far */
    for (int pass = 0; pass < 4; pass++) {
        for (size_t i = 0; i < n->nkids; i++) {
            const expr_node *k = n->kids[i];
            bool neg = k->kind == EXPR_NOT;
            if (cheap(k) != (pass < 2) || neg != (pass % 2 == 1)) continue;
            const roaring_bitmap_t *cur = r ? r : within;
            roaring_bitmap_t *v = eval(e, neg ? k->kids[0] : k, now, cur);
            if (!v) goto fail;
            if (!neg) { /* v is within cur already */
                if (r) roaring_bitmap_free(r);
                r = v;
                continue;
            }
            if (!r && !(r = roaring_bitmap_copy(cur ? cur : e->all))) {
                roaring_bitmap_free(v);
                goto fail;
            }
            roaring_bitmap_andnot_inplace(r, v);
            roaring_bitmap_free(v);
        }
    }
    return r ? r : roaring_bitmap_copy(within ? within : e->all);
fail:
    if (r) roaring_bitmap_free(r);
    return NULL;
}

/* Appends bm to the growable array *v (*n used, *cap allocated); false when
 * out of memory. */
static bool bms_push(const roaring_bitmap_t ***v, size_t *n, size_t *cap,
                     const roaring_bitmap_t *bm) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        const roaring_bitmap_t **m = realloc(*v, c * sizeof *m);
        if (!m) return false;
        *v = m;
        *cap = c;
    }
    (*v)[(*n)++] = bm;
    return true;
}

static roaring_bitmap_t *eval_set(const engine *e, const expr_node *n,
                                  const roaring_bitmap_t *within) {
    const dict *d = &e->dims[n->dim];
    const roaring_bitmap_t **bms = NULL;
    size_t k = 0, cap = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < n->nvals; i++) {
        const expr_value *v = &n->vals[i];
        if (v->kind == EXPR_VAL_ID) {
            const dval *x = d->ids ? dict_by_id(d, v->id) : NULL;
            if (x) ok = bms_push(&bms, &k, &cap, x->bm);
            continue;
        }
        for (size_t j = 0; ok && j < d->n; j++) /* every record with that name */
            if (d->v[j].name && strcmp(d->v[j].name, v->name) == 0)
                ok = bms_push(&bms, &k, &cap, d->v[j].bm);
    }
    roaring_bitmap_t *r = NULL;
    if (!ok)
        r = NULL;
    else if (k == 0)
        r = roaring_bitmap_create();
    else if (k == 1)
        r = within ? roaring_bitmap_and(bms[0], within) : roaring_bitmap_copy(bms[0]);
    else {
        r = roaring_bitmap_or_many(k, bms);
        if (r && within) roaring_bitmap_and_inplace(r, within);
    }
    free(bms);
    return r;
}

/* Walks the customers to test: within's members, or 0..n-1. */
typedef struct walk {
    roaring_uint32_iterator_t *it;
    uint32_t next, n;
    uint32_t buf[1024];
} walk;

static bool walk_init(walk *w, const engine *e, const roaring_bitmap_t *within) {
    w->next = 0;
    w->n = e->n;
    w->it = within ? roaring_create_iterator(within) : NULL;
    return !within || w->it;
}

/* Fills buf with the next customers; returns how many (0 at the end). */
static uint32_t walk_next(walk *w) {
    if (w->it) return roaring_read_uint32_iterator(w->it, w->buf, 1024);
    uint32_t k = 0;
    while (k < 1024 && w->next < w->n)
        w->buf[k++] = w->next++;
    return k;
}

static void walk_done(walk *w) {
    if (w->it) roaring_free_uint32_iterator(w->it);
}

static roaring_bitmap_t *eval_cmp(const engine *e, const expr_node *n, int64_t now,
                                  const roaring_bitmap_t *within) {
    const int64_t *col = NULL;
    bool time = true;
    switch (n->attr) {
    case EXPR_ATTR_SPENT:
        col = e->spent, time = false;
        break;
    case EXPR_ATTR_ORDERS_TOTAL:
        col = e->orders, time = false;
        break;
    case EXPR_ATTR_FIRST_ADDED:
        col = e->first_added;
        break;
    case EXPR_ATTR_LAST_ACTIVE:
        col = e->last_active;
        break;
    case EXPR_ATTR_LAST_MESSAGE:
        col = e->last_message;
        break;
    default:
        return NULL;
    }
    walk *w = malloc(sizeof *w);
    idbuf *b = malloc(sizeof *b);
    roaring_bitmap_t *r = roaring_bitmap_create();
    if (!w || !b || !r || !walk_init(w, e, within)) {
        free(w);
        free(b);
        if (r) roaring_bitmap_free(r);
        return NULL;
    }
    b->n = 0;
    b->bm = r;
    for (uint32_t got; (got = walk_next(w)) > 0;) {
        for (uint32_t j = 0; j < got; j++) {
            int64_t v = col[w->buf[j]];
            if (time) {
                if (v == ENGINE_NONE) continue;
                v = now - v;
            }
            if (cmp(v, n->op, n->num)) idbuf_add(b, w->buf[j]);
        }
    }
    idbuf_flush(b);
    walk_done(w);
    free(w);
    free(b);
    return r;
}

/* Does customer k of c (which has events of the type) match n? */
static bool ev_match(const evcol *c, uint32_t k, const expr_node *n, int64_t now) {
    switch (n->kind) {
    case EXPR_DID:
        return ev_count(c, k, now, n->window) > 0;
    case EXPR_COUNT:
        return cmp(ev_count(c, k, now, n->window), n->op, n->num);
    case EXPR_FIRST:
        return cmp(now - (int64_t)c->ts[c->off[k]], n->op, n->num);
    case EXPR_LAST:
        return cmp(now - (int64_t)c->ts[c->off[k + 1] - 1], n->op, n->num);
    default:
        return false;
    }
}

static roaring_bitmap_t *eval_events(const engine *e, const expr_node *n, int64_t now,
                                     const roaring_bitmap_t *within) {
    const evcol *c = find_type(e, n->event_type);
    bool zero = n->kind == EXPR_COUNT && cmp(0, n->op, n->num); /* matches without events */
    roaring_bitmap_t *r = NULL;
    if (n->kind == EXPR_DID && n->window == 0) {
        r = c ? roaring_bitmap_copy(c->any) : roaring_bitmap_create();
        if (r && within) roaring_bitmap_and_inplace(r, within);
        return r;
    }
    if (within) { /* test within's customers, finding each in the column */
        walk *w = malloc(sizeof *w);
        idbuf *b = malloc(sizeof *b);
        r = roaring_bitmap_create();
        if (!w || !b || !r || !walk_init(w, e, within)) {
            free(w);
            free(b);
            if (r) roaring_bitmap_free(r);
            return NULL;
        }
        b->n = 0;
        b->bm = r;
        uint32_t k = 0, nc = c ? c->nc : 0;
        for (uint32_t got; (got = walk_next(w)) > 0;) {
            for (uint32_t j = 0; j < got; j++) {
                uint32_t cust = w->buf[j], lo = k, hi = nc;
                while (lo < hi) { /* first k with cid[k] >= cust */
                    uint32_t mid = lo + (hi - lo) / 2;
                    if (c->cid[mid] < cust)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                k = lo;
                bool m = k < nc && c->cid[k] == cust ? ev_match(c, k, n, now) : zero;
                if (m) idbuf_add(b, cust);
            }
        }
        idbuf_flush(b);
        walk_done(w);
        free(w);
        free(b);
        return r;
    }
    if (zero)
        r = c ? roaring_bitmap_andnot(e->all, c->any) : roaring_bitmap_copy(e->all);
    else
        r = roaring_bitmap_create();
    if (!r || !c) return r;
    idbuf *b = malloc(sizeof *b);
    if (!b) {
        roaring_bitmap_free(r);
        return NULL;
    }
    b->n = 0;
    b->bm = r;
    for (uint32_t k = 0; k < c->nc; k++)
        if (ev_match(c, k, n, now)) idbuf_add(b, c->cid[k]);
    idbuf_flush(b);
    free(b);
    return r;
}

static roaring_bitmap_t *eval(const engine *e, const expr_node *n, int64_t now,
                              const roaring_bitmap_t *within) {
    switch (n->kind) {
    case EXPR_AND:
        return eval_and(e, n, now, within);
    case EXPR_OR: {
        roaring_bitmap_t *r = roaring_bitmap_create();
        for (size_t i = 0; r && i < n->nkids; i++) {
            roaring_bitmap_t *k = eval(e, n->kids[i], now, within);
            if (!k) {
                roaring_bitmap_free(r);
                return NULL;
            }
            roaring_bitmap_or_inplace(r, k);
            roaring_bitmap_free(k);
        }
        return r;
    }
    case EXPR_NOT: {
        roaring_bitmap_t *k = eval(e, n->kids[0], now, within);
        if (!k) return NULL;
        roaring_bitmap_t *r = roaring_bitmap_andnot(within ? within : e->all, k);
        roaring_bitmap_free(k);
        return r;
    }
    case EXPR_SET:
        return eval_set(e, n, within);
    case EXPR_CMP:
        return eval_cmp(e, n, now, within);
    case EXPR_DID:
    case EXPR_COUNT:
    case EXPR_FIRST:
    case EXPR_LAST:
        return eval_events(e, n, now, within);
    }
    return NULL;
}

int engine_eval(const engine *e, const expr_node *n, int64_t now, roaring_bitmap_t **out,
                siyu_err *err) {
    *out = NULL;
    const char *why;
    if (!expr_validate(n, &why))
        return siyu_err_set(err, SIYU_EINVAL, "expr", "invalid expression: %s", why);
    unknowns u = {0};
    resolve(e, n, &u);
    if (u.count)
        return siyu_err_set(err, SIYU_EINVAL, "expr", "unknown %s: %s",
                            u.count == 1 ? "name" : "names", u.msg);
    roaring_bitmap_t *r = eval(e, n, now, NULL);
    if (!r) return siyu_err_set(err, SIYU_ENOMEM, NULL, "segment evaluation: out of memory");
    *out = r;
    return 0;
}

/* ---- invariants ----------------------------------------------------------------- */

#define CHECK(cond, text)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            *why = text;                                                                           \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

static bool in_range(const engine *e, const roaring_bitmap_t *bm) {
    return roaring_bitmap_is_empty(bm) || roaring_bitmap_maximum(bm) < e->n;
}

bool engine_validate(const engine *e, const char **why) {
    const char *dummy;
    if (!why) why = &dummy;
    for (uint32_t i = 1; i < e->n; i++)
        CHECK(e->ids[i - 1] < e->ids[i], "customer ids not sorted");
    CHECK(roaring_bitmap_get_cardinality(e->all) == e->n && in_range(e, e->all),
          "universe is not 0..n-1");
    for (int d = 1; d < EXPR_DIM__COUNT; d++) {
        const dict *x = &e->dims[d];
        for (size_t i = 0; i < x->n; i++) {
            CHECK(in_range(e, x->v[i].bm), "a dimension bitmap holds a dense id >= n");
            if (x->ids && i) CHECK(x->v[i - 1].id < x->v[i].id, "dimension ids not sorted");
            if (!x->ids) CHECK(x->v[i].name, "a plain value without a name");
        }
        CHECK(x->ids == (d <= EXPR_DIM_GROUP && d != EXPR_DIM_CHANNEL), "dimension id kind");
    }
    const dict *st = &e->dims[EXPR_DIM_RELATIONSHIP_STATUS];
    CHECK(st->n == ST__COUNT, "relationship status values");
    roaring_bitmap_t *lost =
        roaring_bitmap_or(st->v[ST_DEL_CUSTOMER].bm, st->v[ST_DEL_EMPLOYEE].bm);
    bool lost_ok = lost && roaring_bitmap_equals(lost, st->v[ST_LOST].bm);
    if (lost) roaring_bitmap_free(lost);
    CHECK(lost_ok, "lost is not deleted_by_customer | deleted_by_employee");
    const roaring_bitmap_t *active = st->v[ST_ACTIVE].bm;
    static const expr_dim via_active[] = {EXPR_DIM_EMPLOYEE, EXPR_DIM_DEPARTMENT, EXPR_DIM_STORE};
    for (size_t k = 0; k < 3; k++) {
        const dict *x = &e->dims[via_active[k]];
        for (size_t i = 0; i < x->n; i++)
            CHECK(roaring_bitmap_is_subset(x->v[i].bm, active),
                  "an employee/department/store holds a customer without an active relationship");
    }
    const dict *g = &e->dims[EXPR_DIM_GENDER];
    CHECK(g->n == G__COUNT, "gender values");
    uint64_t gsum = 0;
    for (size_t i = 0; i < g->n; i++)
        gsum += roaring_bitmap_get_cardinality(g->v[i].bm);
    CHECK(gsum == e->n, "every customer has exactly one gender");

    uint64_t total = 0;
    const evcol *order = find_type(e, "order"), *message = find_type(e, "message");
    for (size_t t = 0; t < e->nev_types; t++) {
        const evcol *c = &e->ev[t];
        CHECK(c->off[0] == 0 && c->off[c->nc] == c->nev, "event offsets do not span the arena");
        CHECK(roaring_bitmap_get_cardinality(c->any) == c->nc, "event customer bitmap size");
        for (uint32_t k = 0; k < c->nc; k++) {
            CHECK(c->cid[k] < e->n, "event customer >= n");
            CHECK(k == 0 || c->cid[k - 1] < c->cid[k], "event customers not sorted");
            CHECK(roaring_bitmap_contains(c->any, c->cid[k]), "event customer not in its bitmap");
            CHECK(c->off[k] < c->off[k + 1], "a customer in an event column without events");
            for (uint32_t j = c->off[k] + 1; j < c->off[k + 1]; j++)
                CHECK(c->ts[j - 1] <= c->ts[j], "event times not sorted");
            int64_t last = c->ts[c->off[k + 1] - 1];
            CHECK(e->last_active[c->cid[k]] >= last, "last_active before an event");
            if (c == order)
                CHECK(e->orders[c->cid[k]] == (int64_t)(c->off[k + 1] - c->off[k]),
                      "orders_total is not the count of order events");
            if (c == message)
                CHECK(e->last_message[c->cid[k]] == last, "last_message is not the last message");
        }
        total += c->nev;
    }
    CHECK(total == e->events, "event total");
    for (uint32_t i = 0; i < e->n; i++) {
        if (!order) CHECK(e->orders[i] == 0 && e->spent[i] == 0, "orders without order events");
        if (!message) CHECK(e->last_message[i] == ENGINE_NONE, "last_message without messages");
        bool any = false;
        for (size_t t = 0; t < e->nev_types && !any; t++)
            any = roaring_bitmap_contains(e->ev[t].any, i);
        CHECK(any == (e->last_active[i] != ENGINE_NONE), "last_active without events");
    }
    return true;
}
