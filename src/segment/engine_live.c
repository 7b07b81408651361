/* engine_live.c — keeping the segment engine current: the mutations of
 * engine.h ("keeping the engine current"), called by the single writer with
 * no reader inside, and the per-customer relationship store they diff
 * against.
 *
 * Every relationship dimension (status, channel, employee, department,
 * store) is a function of one customer's relationships and of the
 * organisation, so engine_customer_rels takes the customer out of every
 * bitmap its old relationships put it in and into every bitmap the new ones
 * put it in; an organisation change recomputes the department and store
 * bitmaps from the employee bitmaps. Costs: a customer put or an event add
 * is O(1) bitmap operations (plus a move across numeric bins); a
 * relationship change is O(relationships x department depth); an
 * organisation change or the removal of an employee, department or store is
 * O(employees' customers). */
#include <stdlib.h>
#include <string.h>

#include "segment/engine_int.h"

/* ---- the relationship store ------------------------------------------------- */

uint32_t engine__rel_count(const engine *e, uint32_t d) {
    const crel *r = &e->rel1[d];
    if (r->st == REL_NONE) return 0;
    if (!r->more) return 1;
    return 1 + e->relx[engine__u32map_get(&e->relmap, d)].n;
}

const crel *engine__rel_at(const engine *e, uint32_t d, uint32_t i) {
    if (i == 0) return &e->rel1[d];
    return &e->relx[engine__u32map_get(&e->relmap, d)].v[i - 1];
}

int engine__rel_push(engine *e, uint32_t d, const crel *r) {
    crel *first = &e->rel1[d];
    if (first->st == REL_NONE) {
        *first = *r;
        first->more = 0;
        return 0;
    }
    uint32_t slot = engine__u32map_get(&e->relmap, d);
    if (slot == UINT32_MAX) {
        if (e->nrelx == e->cap_relx) {
            size_t cap = e->cap_relx ? e->cap_relx * 2 : 64;
            crelv *v = realloc(e->relx, cap * sizeof *v);
            if (!v) return SIYU_ENOMEM;
            e->relx = v;
            e->cap_relx = cap;
        }
        slot = (uint32_t)e->nrelx;
        memset(&e->relx[slot], 0, sizeof e->relx[slot]);
        if (!engine__u32map_put(&e->relmap, d, slot)) return SIYU_ENOMEM;
        e->nrelx++;
    }
    crelv *x = &e->relx[slot];
    if (!first->more) x->n = 0; /* a slot left from earlier relationships */
    if (x->n == x->cap) {
        uint32_t cap = x->cap ? x->cap * 2 : 2;
        crel *v = realloc(x->v, cap * sizeof *v);
        if (!v) return SIYU_ENOMEM;
        x->v = v;
        x->cap = cap;
    }
    x->v[x->n] = *r;
    x->v[x->n++].more = 0;
    first->more = 1;
    return 0;
}

void engine__rel_visit(const engine *e, uint32_t d, bool org,
                       void (*fn)(void *arg, expr_dim dim, size_t idx), void *arg) {
    const dict *emp = &e->dims[EXPR_DIM_EMPLOYEE], *dep = &e->dims[EXPR_DIM_DEPARTMENT];
    const dict *sto = &e->dims[EXPR_DIM_STORE];
    uint32_t cnt = engine__rel_count(e, d);
    for (uint32_t i = 0; i < cnt; i++) {
        const crel *r = engine__rel_at(e, d, i);
        if (r->st < ST_LOST) fn(arg, EXPR_DIM_RELATIONSHIP_STATUS, r->st);
        if (r->st == ST_DEL_CUSTOMER || r->st == ST_DEL_EMPLOYEE)
            fn(arg, EXPR_DIM_RELATIONSHIP_STATUS, ST_LOST);
        if (r->chan != UINT32_MAX) fn(arg, EXPR_DIM_CHANNEL, r->chan);
        if (r->st != ST_ACTIVE) continue;
        const dval *ev = engine__dict_by_id(emp, r->emp);
        if (!ev) continue;
        fn(arg, EXPR_DIM_EMPLOYEE, (size_t)(ev - emp->v));
        if (!org) continue;
        const dval *sv = ev->b ? engine__dict_by_id(sto, ev->b) : NULL;
        if (sv) fn(arg, EXPR_DIM_STORE, (size_t)(sv - sto->v));
        /* the department and its ancestors; a cycle stops at the depth */
        int64_t x = ev->a;
        for (int depth = 0; x && depth < EXPR_MAX_DEPTH; depth++) {
            const dval *dv = engine__dict_by_id(dep, x);
            if (!dv) break;
            fn(arg, EXPR_DIM_DEPARTMENT, (size_t)(dv - dep->v));
            x = dv->a;
        }
    }
}

typedef struct applyarg {
    engine *e;
    uint32_t d;
    bool on;
} applyarg;

static void apply_one(void *arg, expr_dim dim, size_t idx) {
    applyarg *a = arg;
    roaring_bitmap_t *bm = a->e->dims[dim].v[idx].bm;
    if (a->on)
        roaring_bitmap_add(bm, a->d);
    else
        roaring_bitmap_remove(bm, a->d);
}

void engine__rel_apply(engine *e, uint32_t d, bool on, bool org) {
    applyarg a = {.e = e, .d = d, .on = on};
    engine__rel_visit(e, d, org, apply_one, &a);
}

int engine__org_recompute(engine *e) {
    dict *dep = &e->dims[EXPR_DIM_DEPARTMENT], *sto = &e->dims[EXPR_DIM_STORE];
    const dict *emp = &e->dims[EXPR_DIM_EMPLOYEE];
    for (size_t i = 0; i < dep->n; i++)
        roaring_bitmap_clear(dep->v[i].bm);
    for (size_t i = 0; i < sto->n; i++)
        roaring_bitmap_clear(sto->v[i].bm);
    for (size_t i = 0; i < emp->n; i++) {
        const dval *ev = &emp->v[i];
        if (roaring_bitmap_is_empty(ev->bm)) continue;
        dval *sv = ev->b ? engine__dict_by_id(sto, ev->b) : NULL;
        if (sv) roaring_bitmap_or_inplace(sv->bm, ev->bm);
        int64_t x = ev->a;
        for (int depth = 0; x && depth < EXPR_MAX_DEPTH; depth++) {
            dval *dv = engine__dict_by_id(dep, x);
            if (!dv) break;
            roaring_bitmap_or_inplace(dv->bm, ev->bm);
            x = dv->a;
        }
    }
    return 0;
}

/* ---- mutations ---------------------------------------------------------------------- */

static int nomem(siyu_err *err) {
    return siyu_err_set(err, SIYU_ENOMEM, NULL, "segment engine: out of memory");
}

/* Moves d to the plain value named name (NULL or "": none) of d's dict. */
static int set_plain(dict *x, uint32_t d, const char *name) {
    for (size_t i = 0; i < x->n; i++)
        roaring_bitmap_remove(x->v[i].bm, d);
    if (!name || !*name) return 0;
    dval *v = engine__dict_plain(x, name, true);
    if (!v) return SIYU_ENOMEM;
    roaring_bitmap_add(v->bm, d);
    return 0;
}

int engine_customer_put(engine *e, int64_t customer_id, int gender, int64_t first_added,
                        const char *region, const char *stage, uint32_t *dense, siyu_err *err) {
    uint32_t d;
    if (!engine_dense_id(e, customer_id, &d)) {
        if (e->n && customer_id < e->ids[e->n - 1])
            return siyu_err_set(err, SIYU_EINVAL, "customer_id",
                                "customer %lld is new but below the last id held",
                                (long long)customer_id);
        if (e->n >= UINT32_MAX - 1)
            return siyu_err_set(err, SIYU_EINVAL, NULL, "more than 2^32-2 customers");
        if (engine__grow(e, e->n + 1) != 0) return nomem(err);
        d = e->n;
        e->ids[d] = customer_id;
        for (size_t i = 0; i < e->nev_types; i++)
            e->ev[i].off[d + 1] = e->ev[i].off[d];
        for (int a = 1; a < EXPR_ATTR__COUNT; a++)
            e->num[a].v[d] = ENGINE_NONE;
        e->rel1[d].st = REL_NONE;
        e->rel1[d].more = 0;
        e->n++;
        roaring_bitmap_add(e->all, d);
        if (engine__nidx_set(&e->num[EXPR_ATTR_SPENT], d, 0, e->n) != 0 ||
            engine__nidx_set(&e->num[EXPR_ATTR_ORDERS_TOTAL], d, 0, e->n) != 0)
            return nomem(err);
    }
    dict *g = &e->dims[EXPR_DIM_GENDER];
    for (size_t i = 0; i < g->n; i++)
        roaring_bitmap_remove(g->v[i].bm, d);
    roaring_bitmap_add(g->v[gender == 2 ? G_FEMALE : gender == 1 ? G_MALE : G_UNKNOWN].bm, d);
    if (engine__nidx_set(&e->num[EXPR_ATTR_FIRST_ADDED], d, first_added, e->n) != 0 ||
        set_plain(&e->dims[EXPR_DIM_REGION], d, region) != 0 ||
        set_plain(&e->dims[EXPR_DIM_STAGE], d, stage) != 0)
        return nomem(err);
    if (dense) *dense = d;
    return 0;
}

int engine_customer_rels(engine *e, uint32_t dense, const engine_rel *rels, size_t n,
                         siyu_err *err) {
    if (dense >= e->n)
        return siyu_err_set(err, SIYU_EINVAL, NULL, "no customer with dense id %u", dense);
    crel one, *v = n > 1 ? malloc(n * sizeof *v) : &one;
    if (!v) return nomem(err);
    int rc = 0;
    dict *ch = &e->dims[EXPR_DIM_CHANNEL];
    for (size_t i = 0; i < n && !rc; i++) {
        v[i] = (crel){.emp = rels[i].employee_id, .chan = UINT32_MAX, .st = ST_OTHER};
        for (int s = 0; s < ST_LOST && rels[i].status; s++)
            if (strcmp(rels[i].status, engine__status_names[s]) == 0) v[i].st = (uint8_t)s;
        if (rels[i].state && *rels[i].state) {
            dval *c = engine__dict_plain(ch, rels[i].state, true);
            if (c)
                v[i].chan = (uint32_t)(c - ch->v);
            else
                rc = SIYU_ENOMEM;
        }
    }
    if (!rc) {
        engine__rel_apply(e, dense, false, true);
        e->rel1[dense].st = REL_NONE;
        e->rel1[dense].more = 0;
        for (size_t i = 0; i < n && !rc; i++)
            rc = engine__rel_push(e, dense, &v[i]);
        engine__rel_apply(e, dense, true, true);
    }
    if (v != &one) free(v);
    return rc ? nomem(err) : 0;
}

int engine_member_set(engine *e, expr_dim dim, int64_t id, uint32_t dense, bool on, siyu_err *err) {
    if (dim != EXPR_DIM_TAG && dim != EXPR_DIM_GROUP)
        return siyu_err_set(err, SIYU_EINVAL, "dim", "membership of %s is not set directly",
                            expr_dim_name(dim));
    dval *v = engine__dict_by_id(&e->dims[dim], id);
    if (!v)
        return siyu_err_set(err, SIYU_EINVAL, "id", "unknown %s %lld", expr_dim_name(dim),
                            (long long)id);
    if (dense >= e->n)
        return siyu_err_set(err, SIYU_EINVAL, NULL, "no customer with dense id %u", dense);
    if (on)
        roaring_bitmap_add(v->bm, dense);
    else
        roaring_bitmap_remove(v->bm, dense);
    return 0;
}

static bool record_dim(expr_dim dim) {
    return dim == EXPR_DIM_TAG || dim == EXPR_DIM_EMPLOYEE || dim == EXPR_DIM_DEPARTMENT ||
           dim == EXPR_DIM_STORE || dim == EXPR_DIM_GROUP || dim == EXPR_DIM_CHANNEL_GROUP;
}

int engine_record_put(engine *e, expr_dim dim, int64_t id, const char *name, siyu_err *err) {
    if (!record_dim(dim))
        return siyu_err_set(err, SIYU_EINVAL, "dim", "%s has no records",
                            dim > 0 && dim < EXPR_DIM__COUNT ? expr_dim_name(dim) : "?");
    dict *x = &e->dims[dim];
    dval *v = engine__dict_by_id(x, id);
    if (!v) /* a new record has no members yet (relationships need the employee first) */
        return engine__dict_add(x, id, name) ? 0 : nomem(err);
    char *copy = name ? strdup(name) : NULL;
    if (name && !copy) return nomem(err);
    free(v->name);
    v->name = copy;
    return 0;
}

int engine_record_remove(engine *e, expr_dim dim, int64_t id, siyu_err *err) {
    if (!record_dim(dim))
        return siyu_err_set(err, SIYU_EINVAL, "dim", "%s has no records",
                            dim > 0 && dim < EXPR_DIM__COUNT ? expr_dim_name(dim) : "?");
    dict *x = &e->dims[dim];
    dval *v = engine__dict_by_id(x, id);
    if (!v) return 0; /* already gone */
    free(v->name);
    roaring_bitmap_free(v->bm);
    size_t at = (size_t)(v - x->v);
    memmove(&x->v[at], &x->v[at + 1], (x->n - at - 1) * sizeof *x->v);
    x->n--;
    if (dim == EXPR_DIM_EMPLOYEE || dim == EXPR_DIM_DEPARTMENT || dim == EXPR_DIM_STORE)
        return engine__org_recompute(e) ? nomem(err) : 0;
    return 0;
}

int engine_org_put(engine *e, const engine_emp *emps, size_t nemps, const engine_dep *deps,
                   size_t ndeps, siyu_err *err) {
    dict *emp = &e->dims[EXPR_DIM_EMPLOYEE], *dep = &e->dims[EXPR_DIM_DEPARTMENT];
    for (size_t i = 0; i < emp->n; i++)
        emp->v[i].a = emp->v[i].b = 0;
    for (size_t i = 0; i < dep->n; i++)
        dep->v[i].a = 0;
    for (size_t i = 0; i < nemps; i++) {
        dval *v = engine__dict_by_id(emp, emps[i].id);
        if (!v) continue;
        v->a = emps[i].department_id;
        v->b = emps[i].store_id;
    }
    for (size_t i = 0; i < ndeps; i++) {
        dval *v = engine__dict_by_id(dep, deps[i].id);
        if (v) v->a = deps[i].parent_id;
    }
    return engine__org_recompute(e) ? nomem(err) : 0;
}

int engine_event_add(engine *e, uint32_t dense, const char *type, int64_t ts, int64_t amount_cents,
                     siyu_err *err) {
    if (dense >= e->n)
        return siyu_err_set(err, SIYU_EINVAL, NULL, "no customer with dense id %u", dense);
    if (!type) return siyu_err_set(err, SIYU_EINVAL, "type", "an event without a type");
    if (ts < 0 || ts > (int64_t)UINT32_MAX) {
        e->skipped++;
        return 0;
    }
    evcol *c = engine__ev_col(e, type);
    if (!c) return nomem(err);
    if (c->nbase + c->nov >= UINT32_MAX - 1)
        return siyu_err_set(err, SIYU_EINVAL, NULL, "too many events of a type");
    if (engine__ev_append(c, dense, (uint32_t)ts, e->n) != 0) return nomem(err);
    e->events++;
    nidx *active = &e->num[EXPR_ATTR_LAST_ACTIVE], *message = &e->num[EXPR_ATTR_LAST_MESSAGE];
    int rc = 0;
    if (active->v[dense] == ENGINE_NONE || ts > active->v[dense])
        rc = engine__nidx_set(active, dense, ts, e->n);
    if (!rc && strcmp(type, "message") == 0 &&
        (message->v[dense] == ENGINE_NONE || ts > message->v[dense]))
        rc = engine__nidx_set(message, dense, ts, e->n);
    if (!rc && strcmp(type, "order") == 0) {
        nidx *orders = &e->num[EXPR_ATTR_ORDERS_TOTAL], *spent = &e->num[EXPR_ATTR_SPENT];
        /* as the build: amounts of 10^13 yuan or more count as 0 */
        int64_t add = amount_cents > -1000000000000000LL && amount_cents < 1000000000000000LL
                          ? amount_cents
                          : 0;
        rc = engine__nidx_set(orders, dense, orders->v[dense] + 1, e->n);
        if (!rc) rc = engine__nidx_set(spent, dense, spent->v[dense] + add, e->n);
    }
    return rc ? nomem(err) : 0;
}
