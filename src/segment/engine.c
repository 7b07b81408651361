/* engine.c — the in-memory segment engine: building it from the store,
 * freeing it, id mapping and the invariants (engine_validate). The layout is
 * in engine_int.h; evaluation in engine_eval.c, mutations in engine_live.c,
 * pages and breakdowns in engine_read.c, the indexes in engine_idx.c.
 *
 * Ownership: the engine owns every bitmap, string and array in it;
 * engine_free releases all of it. */
#include "segment/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "segment/engine_int.h"
#include "util/log.h"

const char *const engine__status_names[ST__COUNT] = {"active", "deleted_by_customer",
                                                     "deleted_by_employee", "transferred", "lost"};
const char *const engine__gender_names[G__COUNT] = {"female", "male", "unknown"};

/* ---- small containers ------------------------------------------------------ */

static int64_t mono_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

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
uint32_t engine__strmap_get(strmap *m, const char *key, uint32_t val_new) {
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

void engine__strmap_free(strmap *m) {
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static size_t u32_slot(const u32map *m, uint32_t key) {
    size_t i = ((uint64_t)key * 0x9E3779B97F4A7C15ULL >> 20) & (m->cap - 1);
    while (m->keys[i] && m->keys[i] != key + 1)
        i = (i + 1) & (m->cap - 1);
    return i;
}

uint32_t engine__u32map_get(const u32map *m, uint32_t key) {
    if (!m->cap) return UINT32_MAX;
    size_t s = u32_slot(m, key);
    return m->keys[s] ? m->vals[s] : UINT32_MAX;
}

bool engine__u32map_put(u32map *m, uint32_t key, uint32_t val) {
    if ((m->n + 1) * 2 > m->cap) {
        u32map g = {.cap = m->cap ? m->cap * 2 : 64};
        g.keys = calloc(g.cap, sizeof *g.keys);
        g.vals = malloc(g.cap * sizeof *g.vals);
        if (!g.keys || !g.vals) {
            free(g.keys);
            free(g.vals);
            return false;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i]) continue;
            size_t s = u32_slot(&g, m->keys[i] - 1);
            g.keys[s] = m->keys[i];
            g.vals[s] = m->vals[i];
        }
        g.n = m->n;
        free(m->keys);
        free(m->vals);
        *m = g;
    }
    size_t s = u32_slot(m, key);
    if (!m->keys[s]) m->n++;
    m->keys[s] = key + 1;
    m->vals[s] = val;
    return true;
}

void engine__u32map_free(u32map *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- dictionaries -------------------------------------------------------------- */

/* Inserts a value at position at (keeps ids sorted). */
static dval *dict_insert(dict *d, size_t at, int64_t id, const char *name) {
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        dval *v = realloc(d->v, cap * sizeof *v);
        if (!v) return NULL;
        d->v = v;
        d->cap = cap;
    }
    dval x = {.id = id, .name = name ? strdup(name) : NULL, .bm = roaring_bitmap_create()};
    if ((name && !x.name) || !x.bm) {
        free(x.name);
        if (x.bm) roaring_bitmap_free(x.bm);
        return NULL;
    }
    memmove(&d->v[at + 1], &d->v[at], (d->n - at) * sizeof *d->v);
    d->v[at] = x;
    d->n++;
    return &d->v[at];
}

static size_t dict_lower(const dict *d, int64_t id) {
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

dval *engine__dict_add(dict *d, int64_t id, const char *name) {
    size_t at = d->ids ? dict_lower(d, id) : d->n;
    return dict_insert(d, at, id, name);
}

dval *engine__dict_by_id(const dict *d, int64_t id) {
    size_t lo = dict_lower(d, id);
    return lo < d->n && d->v[lo].id == id ? &d->v[lo] : NULL;
}

dval *engine__dict_by_name(const dict *d, const char *name) {
    if (!d->ids) {
        uint32_t i = engine__strmap_get((strmap *)&d->names, name, UINT32_MAX);
        return i == UINT32_MAX ? NULL : &d->v[i];
    }
    for (size_t i = 0; i < d->n; i++)
        if (d->v[i].name && strcmp(d->v[i].name, name) == 0) return &d->v[i];
    return NULL;
}

dval *engine__dict_plain(dict *d, const char *name, bool create) {
    uint32_t i = engine__strmap_get(&d->names, name, UINT32_MAX);
    if (i != UINT32_MAX) return &d->v[i];
    if (!create) return NULL;
    dval *v = dict_insert(d, d->n, 0, name);
    if (!v) return NULL;
    if (engine__strmap_get(&d->names, name, (uint32_t)(d->n - 1)) != (uint32_t)(d->n - 1)) {
        d->n--;
        free(v->name);
        roaring_bitmap_free(v->bm);
        return NULL;
    }
    return v;
}

void engine__dict_free(dict *d) {
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].name);
        roaring_bitmap_free(d->v[i].bm);
    }
    free(d->v);
    engine__strmap_free(&d->names);
    memset(d, 0, sizeof *d);
}

/* ---- per-customer arrays and event columns ---------------------------------------- */

int engine__grow(engine *e, uint32_t need) {
    if (need <= e->ncap) return 0;
    uint64_t cap = e->ncap ? (uint64_t)e->ncap * 2 : 1024;
    while (cap < need)
        cap *= 2;
    if (cap > UINT32_MAX) cap = UINT32_MAX;
    int64_t *ids = realloc(e->ids, cap * sizeof *ids);
    if (!ids) return SIYU_ENOMEM;
    e->ids = ids;
    for (int a = 1; a < EXPR_ATTR__COUNT; a++) {
        int64_t *v = realloc(e->num[a].v, cap * sizeof *v);
        if (!v) return SIYU_ENOMEM;
        e->num[a].v = v;
    }
    crel *r = realloc(e->rel1, cap * sizeof *r);
    if (!r) return SIYU_ENOMEM;
    e->rel1 = r;
    int rc = engine__ev_grow(e, (uint32_t)cap);
    if (rc) return rc;
    e->ncap = (uint32_t)cap;
    return 0;
}

evcol *engine__ev_find(const engine *e, const char *type) {
    uint32_t i = engine__strmap_get((strmap *)&e->ev_names, type, UINT32_MAX);
    return i == UINT32_MAX ? NULL : &e->ev[i];
}

evcol *engine__ev_col(engine *e, const char *type) {
    evcol *c = engine__ev_find(e, type);
    if (c) return c;
    evcol *v = realloc(e->ev, (e->nev_types + 1) * sizeof *v);
    if (!v) return NULL;
    e->ev = v;
    c = &e->ev[e->nev_types];
    if (engine__ev_init(c, type, e->ncap) != 0) return NULL;
    for (uint32_t d = 0; d <= e->n; d++)
        c->off[d] = 0;
    if (engine__strmap_get(&e->ev_names, type, (uint32_t)e->nev_types) != (uint32_t)e->nev_types) {
        engine__ev_free(c);
        return NULL;
    }
    e->nev_types++;
    return c;
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

/* Adds d to the plain value named by column col of s (NULL or "": none). */
static bool b_plain(dict *d, sqlite3_stmt *s, int col, uint32_t dense) {
    const char *name = (const char *)sqlite3_column_text(s, col);
    if (!name || !*name) return true;
    dval *v = engine__dict_plain(d, name, true);
    if (!v) return false;
    roaring_bitmap_add(v->bm, dense);
    return true;
}

static int b_customers(build *b) {
    engine *e = b->e;
    sqlite3_stmt *s = b_stmt(b, "SELECT id, gender, first_added_at, region, stage FROM customer "
                                "WHERE tenant_id = ? ORDER BY id");
    if (!s) return b_io(b, "customers");
    int rc;
    dict *g = &e->dims[EXPR_DIM_GENDER];
    for (int i = 0; i < G__COUNT; i++)
        if (!engine__dict_plain(g, engine__gender_names[i], true)) return b_nomem(b);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (e->n == UINT32_MAX - 1) {
            sqlite3_reset(s);
            return siyu_err_set(b->err, SIYU_ETOOBIG, NULL, "more than 2^32-2 customers");
        }
        if (engine__grow(e, e->n + 1) != 0) {
            sqlite3_reset(s);
            return b_nomem(b);
        }
        uint32_t d = e->n++;
        e->ids[d] = sqlite3_column_int64(s, 0);
        int64_t gender = sqlite3_column_int64(s, 1);
        roaring_bitmap_add(g->v[gender == 2 ? G_FEMALE : gender == 1 ? G_MALE : G_UNKNOWN].bm, d);
        e->num[EXPR_ATTR_FIRST_ADDED].v[d] =
            sqlite3_column_type(s, 2) == SQLITE_NULL ? ENGINE_NONE : sqlite3_column_int64(s, 2);
        e->num[EXPR_ATTR_SPENT].v[d] = e->num[EXPR_ATTR_ORDERS_TOTAL].v[d] = 0;
        e->num[EXPR_ATTR_LAST_ACTIVE].v[d] = e->num[EXPR_ATTR_LAST_MESSAGE].v[d] = ENGINE_NONE;
        e->rel1[d].st = REL_NONE;
        e->rel1[d].more = 0;
        if (!b_plain(&e->dims[EXPR_DIM_REGION], s, 3, d) ||
            !b_plain(&e->dims[EXPR_DIM_STAGE], s, 4, d)) {
            sqlite3_reset(s);
            return b_nomem(b);
        }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return b_io(b, "customers");
    if (engine__grow(e, 1) != 0 || !(e->all = roaring_bitmap_create())) return b_nomem(b);
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
        if (!engine__dict_add(d, sqlite3_column_int64(s, 0),
                              (const char *)sqlite3_column_text(s, 1))) {
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
        dval *v = engine__dict_by_id(d, sqlite3_column_int64(s, 1));
        if (v && engine_dense_id(e, sqlite3_column_int64(s, 0), &cust))
            roaring_bitmap_add(v->bm, cust);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : b_io(b, what);
}

typedef struct b_relarg {
    engine *e;
    uint32_t d;
} b_relarg;

static void b_rel_add(void *arg, expr_dim dim, size_t idx) {
    b_relarg *r = arg;
    roaring_bitmap_add(r->e->dims[dim].v[idx].bm, r->d);
}

static int b_relationships(build *b) {
    engine *e = b->e;
    dict *st = &e->dims[EXPR_DIM_RELATIONSHIP_STATUS], *ch = &e->dims[EXPR_DIM_CHANNEL];
    for (int i = 0; i < ST__COUNT; i++)
        if (!engine__dict_plain(st, engine__status_names[i], true)) return b_nomem(b);
    sqlite3_stmt *s = b_stmt(b, "SELECT customer_id, employee_id, status, state FROM relationship "
                                "WHERE tenant_id = ?");
    if (!s) return b_io(b, "relationships");
    int rc, ret = 0;
    uint64_t rows = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint32_t cust;
        rows++;
        if (!engine_dense_id(e, sqlite3_column_int64(s, 0), &cust)) continue;
        const char *status = (const char *)sqlite3_column_text(s, 2);
        crel r = {.emp = sqlite3_column_int64(s, 1), .chan = UINT32_MAX, .st = ST_OTHER};
        for (int i = 0; i < ST_LOST && status; i++)
            if (strcmp(status, engine__status_names[i]) == 0) r.st = (uint8_t)i;
        const char *state = (const char *)sqlite3_column_text(s, 3);
        if (state && *state) {
            dval *v = engine__dict_plain(ch, state, true);
            if (!v) {
                ret = b_nomem(b);
                break;
            }
            r.chan = (uint32_t)(v - ch->v);
        }
        if (engine__rel_push(e, cust, &r) != 0) {
            ret = b_nomem(b);
            break;
        }
    }
    sqlite3_reset(s);
    if (ret) return ret;
    if (rc != SQLITE_DONE) return b_io(b, "relationships");
    b_relarg arg = {.e = e};
    for (arg.d = 0; arg.d < e->n; arg.d++)
        engine__rel_visit(e, arg.d, false, b_rel_add, &arg);
    log_info("engine build: tenant %lld: %llu relationships, %zu channels (%lld ms)",
             (long long)e->tenant_id, (unsigned long long)rows, ch->n,
             (long long)(mono_ms() - b->t0));
    return 0;
}

/* Departments (with their sub-departments) and stores: the union of their
 * employees' active customers. */
static int b_org(build *b) {
    engine *e = b->e;
    dict *dep = &e->dims[EXPR_DIM_DEPARTMENT], *emp = &e->dims[EXPR_DIM_EMPLOYEE];
    sqlite3_stmt *s = b_stmt(b, "SELECT id, parent_id FROM department WHERE tenant_id = ?");
    int rc = SQLITE_ERROR;
    if (s) {
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            dval *v = engine__dict_by_id(dep, sqlite3_column_int64(s, 0));
            if (v) v->a = sqlite3_column_int64(s, 1);
        }
        sqlite3_reset(s);
    }
    if (rc != SQLITE_DONE) return b_io(b, "departments");
    s = b_stmt(b, "SELECT id, department_id, store_id FROM employee WHERE tenant_id = ?");
    rc = SQLITE_ERROR;
    if (s) {
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            dval *v = engine__dict_by_id(emp, sqlite3_column_int64(s, 0));
            if (!v) continue;
            v->a = sqlite3_column_int64(s, 1);
            v->b = sqlite3_column_int64(s, 2);
        }
        sqlite3_reset(s);
    }
    if (rc != SQLITE_DONE) return b_io(b, "employees");
    return engine__org_recompute(e) ? b_nomem(b) : 0;
}

static int b_events(build *b) {
    engine *e = b->e;
    nidx *spent = &e->num[EXPR_ATTR_SPENT], *orders = &e->num[EXPR_ATTR_ORDERS_TOTAL];
    nidx *active = &e->num[EXPR_ATTR_LAST_ACTIVE], *message = &e->num[EXPR_ATTR_LAST_MESSAGE];
    sqlite3_stmt *s = b_stmt(b, "SELECT customer_id, type, ts, CASE WHEN type = 'order' AND "
                                "json_valid(props) THEN json_extract(props, '$.amount') END "
                                "FROM event WHERE tenant_id = ? AND customer_id IS NOT NULL "
                                "ORDER BY customer_id, ts");
    if (!s) return b_io(b, "events");
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
        evcol *c = type ? engine__ev_col(e, type) : NULL;
        if (!c) {
            ret = b_nomem(b);
            break;
        }
        if (c->nbase >= UINT32_MAX - 1) {
            ret = siyu_err_set(b->err, SIYU_ETOOBIG, NULL, "too many events of a type");
            break;
        }
        if (c->nbase == c->cap_ts) {
            size_t cap = c->cap_ts ? c->cap_ts * 2 : 256;
            uint32_t *v = realloc(c->ts, cap * sizeof *v);
            if (!v) {
                ret = b_nomem(b);
                break;
            }
            c->ts = v;
            c->cap_ts = cap;
        }
        c->ts[c->nbase++] = (uint32_t)ts;
        c->off[cur + 1]++;
        e->events++;
        if (active->v[cur] == ENGINE_NONE || ts > active->v[cur]) active->v[cur] = ts;
        if (strcmp(type, "message") == 0 &&
            (message->v[cur] == ENGINE_NONE || ts > message->v[cur]))
            message->v[cur] = ts;
        if (strcmp(type, "order") == 0) {
            orders->v[cur]++;
            int t = sqlite3_column_type(s, 3);
            if (t == SQLITE_INTEGER || t == SQLITE_FLOAT) {
                double amount = sqlite3_column_double(s, 3);
                if (isfinite(amount) && fabs(amount) < 1e13) spent->v[cur] += llround(amount * 100);
            }
        }
        if (e->events % 10000000 == 0)
            log_info("engine build: tenant %lld: %llu events (%lld ms)", (long long)e->tenant_id,
                     (unsigned long long)e->events, (long long)(mono_ms() - b->t0));
    }
    sqlite3_reset(s);
    if (ret) return ret;
    if (rc != SQLITE_DONE) return b_io(b, "events");
    for (size_t i = 0; i < e->nev_types; i++) {
        evcol *c = &e->ev[i];
        for (uint32_t d = 0; d < e->n; d++) /* counts to offsets */
            c->off[d + 1] += c->off[d];
        for (uint32_t d = 0; d < e->n; d++)
            if (c->off[d + 1] > c->off[d]) roaring_bitmap_add(c->any, d);
        roaring_bitmap_run_optimize(c->any);
        if (engine__ev_days_build(c, e->n) != 0) return b_nomem(b);
    }
    if (e->skipped)
        log_warn("engine build: tenant %lld: %llu events with a time outside 1970..2106 skipped",
                 (long long)e->tenant_id, (unsigned long long)e->skipped);
    log_info("engine build: tenant %lld: %llu events of %zu types (%lld ms)",
             (long long)e->tenant_id, (unsigned long long)e->events, e->nev_types,
             (long long)(mono_ms() - b->t0));
    return 0;
}

static int b_numbers(build *b) {
    engine *e = b->e;
    for (int a = 1; a < EXPR_ATTR__COUNT; a++) {
        e->num[a].time = a != EXPR_ATTR_SPENT && a != EXPR_ATTR_ORDERS_TOTAL;
        if (engine__nidx_build(&e->num[a], e->n) != 0) return b_nomem(b);
    }
    log_info("engine build: tenant %lld: numeric indexes (%lld ms)", (long long)e->tenant_id,
             (long long)(mono_ms() - b->t0));
    return 0;
}

static int b_all(build *b) {
    int rc;
    engine *e = b->e;
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
    e->dims[EXPR_DIM_CHANNEL_GROUP].ids = true; /* records, none yet */
    if ((rc = b_members(b, EXPR_DIM_TAG,
                        "SELECT customer_id, tag_id FROM customer_tag WHERE tenant_id = ?",
                        "tag memberships")) ||
        (rc = b_members(b, EXPR_DIM_GROUP,
                        "SELECT m.customer_id, m.group_id FROM group_member m "
                        "JOIN group_chat g ON g.id = m.group_id WHERE m.tenant_id = ? "
                        "AND m.status = 'in' AND g.status = 'active' AND m.customer_id IS NOT NULL",
                        "group members")))
        return rc;
    log_info("engine build: tenant %lld: %zu tags, %zu groups (%lld ms)", (long long)e->tenant_id,
             e->dims[EXPR_DIM_TAG].n, e->dims[EXPR_DIM_GROUP].n, (long long)(mono_ms() - b->t0));
    if ((rc = b_relationships(b)) != 0 || (rc = b_org(b)) != 0 || (rc = b_events(b)) != 0 ||
        (rc = b_numbers(b)) != 0)
        return rc;
    for (int d = 1; d < EXPR_DIM__COUNT; d++)
        for (size_t i = 0; i < e->dims[d].n; i++)
            roaring_bitmap_run_optimize(e->dims[d].v[i].bm);
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
        engine__dict_free(&e->dims[d]);
    for (size_t i = 0; i < e->nev_types; i++)
        engine__ev_free(&e->ev[i]);
    free(e->ev);
    engine__strmap_free(&e->ev_names);
    for (int a = 0; a < EXPR_ATTR__COUNT; a++)
        engine__nidx_free(&e->num[a]);
    for (size_t i = 0; i < e->nrelx; i++)
        free(e->relx[i].v);
    free(e->relx);
    engine__u32map_free(&e->relmap);
    free(e->rel1);
    if (e->all) roaring_bitmap_free(e->all);
    free(e->ids);
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

/* Every customer in at most one value of d (exactly one when exact). */
static bool partition(const dict *d, uint32_t n, bool exact) {
    roaring_bitmap_t *u = roaring_bitmap_create();
    uint64_t sum = 0;
    for (size_t i = 0; i < d->n; i++) {
        sum += roaring_bitmap_get_cardinality(d->v[i].bm);
        roaring_bitmap_or_inplace(u, d->v[i].bm);
    }
    uint64_t card = roaring_bitmap_get_cardinality(u);
    roaring_bitmap_free(u);
    return sum == card && (!exact || card == n);
}

typedef struct relcheck {
    roaring_bitmap_t **bm[EXPR_DIM__COUNT];
    uint32_t d;
} relcheck;

static void rel_check_add(void *arg, expr_dim dim, size_t idx) {
    relcheck *r = arg;
    roaring_bitmap_add(r->bm[dim][idx], r->d);
}

/* The relationship dimensions equal what the stored relationships give. */
static bool rels_valid(const engine *e, const char **why) {
    static const expr_dim dims[] = {EXPR_DIM_RELATIONSHIP_STATUS, EXPR_DIM_CHANNEL,
                                    EXPR_DIM_EMPLOYEE, EXPR_DIM_DEPARTMENT, EXPR_DIM_STORE};
    relcheck r = {0};
    bool ok = true;
    for (size_t k = 0; k < 5; k++) {
        const dict *x = &e->dims[dims[k]];
        r.bm[dims[k]] = calloc(x->n ? x->n : 1, sizeof *r.bm[0]);
        for (size_t i = 0; i < x->n; i++)
            r.bm[dims[k]][i] = roaring_bitmap_create();
    }
    for (r.d = 0; r.d < e->n; r.d++) {
        uint32_t cnt = engine__rel_count(e, r.d);
        for (uint32_t i = 0; i < cnt; i++) {
            const crel *c = engine__rel_at(e, r.d, i);
            if (c->st > ST_OTHER || c->st == ST_LOST ||
                (c->chan != UINT32_MAX && c->chan >= e->dims[EXPR_DIM_CHANNEL].n))
                ok = false;
        }
        if (ok) engine__rel_visit(e, r.d, true, rel_check_add, &r);
    }
    if (!ok) *why = "a stored relationship out of range";
    for (size_t k = 0; k < 5; k++) {
        const dict *x = &e->dims[dims[k]];
        for (size_t i = 0; i < x->n; i++) {
            if (ok && !roaring_bitmap_equals(r.bm[dims[k]][i], x->v[i].bm)) {
                ok = false;
                *why = "a status/channel/employee/department/store bitmap differs from the "
                       "relationships";
            }
            roaring_bitmap_free(r.bm[dims[k]][i]);
        }
        free(r.bm[dims[k]]);
    }
    return ok;
}

bool engine_validate(const engine *e, const char **why) {
    const char *dummy;
    if (!why) why = &dummy;
    CHECK(e->n <= e->ncap, "customer count above capacity");
    for (uint32_t i = 1; i < e->n; i++)
        CHECK(e->ids[i - 1] < e->ids[i], "customer ids not sorted");
    CHECK(roaring_bitmap_get_cardinality(e->all) == e->n && in_range(e, e->all),
          "universe is not 0..n-1");
    for (int d = 1; d < EXPR_DIM__COUNT; d++) {
        const dict *x = &e->dims[d];
        for (size_t i = 0; i < x->n; i++) {
            CHECK(in_range(e, x->v[i].bm), "a dimension bitmap holds a dense id >= n");
            if (x->ids && i) CHECK(x->v[i - 1].id < x->v[i].id, "dimension ids not sorted");
            if (!x->ids) {
                CHECK(x->v[i].name, "a plain value without a name");
                CHECK(engine__dict_by_name(x, x->v[i].name) == &x->v[i],
                      "a plain value not found by its name");
            }
        }
        if (!x->ids) CHECK(x->names.n == x->n, "plain value names");
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
    CHECK(e->dims[EXPR_DIM_GENDER].n == G__COUNT, "gender values");
    CHECK(partition(&e->dims[EXPR_DIM_GENDER], e->n, true), "every customer has one gender");
    CHECK(partition(&e->dims[EXPR_DIM_REGION], e->n, false), "a customer with two regions");
    CHECK(partition(&e->dims[EXPR_DIM_STAGE], e->n, false), "a customer with two stages");
    if (!rels_valid(e, why)) return false;
    for (int a = 1; a < EXPR_ATTR__COUNT; a++)
        if (!engine__nidx_validate(&e->num[a], e->n, why)) return false;

    uint64_t total = 0;
    const evcol *order = engine__ev_find(e, "order"), *message = engine__ev_find(e, "message");
    const int64_t *orders = e->num[EXPR_ATTR_ORDERS_TOTAL].v;
    const int64_t *last_active = e->num[EXPR_ATTR_LAST_ACTIVE].v;
    const int64_t *last_message = e->num[EXPR_ATTR_LAST_MESSAGE].v;
    for (size_t t = 0; t < e->nev_types; t++) {
        const evcol *c = &e->ev[t];
        CHECK(engine__ev_find(e, c->type) == c, "event type lookup");
        if (!engine__ev_validate(c, e->n, why)) return false;
        total += c->nbase + c->nov;
    }
    CHECK(total == e->events, "event total");
    for (uint32_t i = 0; i < e->n; i++) {
        int64_t last = ENGINE_NONE;
        for (size_t t = 0; t < e->nev_types; t++) {
            int64_t f, l;
            if (engine__ev_first_last(&e->ev[t], i, &f, &l) && l > last) last = l;
        }
        CHECK(last_active[i] == last, "last_active is not the latest event");
        int64_t f, l = ENGINE_NONE;
        if (message && !engine__ev_first_last(message, i, &f, &l)) l = ENGINE_NONE;
        CHECK(last_message[i] == l, "last_message is not the last message");
        CHECK(orders[i] == (order ? (int64_t)engine__ev_total(order, i) : 0),
              "orders_total is not the count of order events");
        if (!order) CHECK(e->num[EXPR_ATTR_SPENT].v[i] == 0, "spent without order events");
    }
    return true;
}
