/* engine_eval.c — evaluating a segment expression on the engine.
 *
 * eval(e, n, now, within) is n's set of customers intersected with within
 * (NULL: all customers). Sets are whole bitmaps; numeric comparisons use the
 * binned index (cumulative bitmaps plus an exact test of one bin's members);
 * did() is the union of the per-day bitmaps of the window with an exact test
 * of the customers of its two edge days; count/first/last test the
 * customers of the type one by one. When within is small, comparisons and
 * event predicates test its members directly instead. An "and" evaluates
 * its parts from the cheapest kind to the dearest, each within the result so
 * far. Readers only: nothing here changes the engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment/engine_int.h"

/* Dimensions whose values are records (names and ids must exist); region and
 * stage are plain values: one nobody has matches nobody. A channel is known
 * while some customer has it. */
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
        bool ok;
        if (v->kind == EXPR_VAL_ID) {
            ok = d->ids && engine__dict_by_id(d, v->id) != NULL;
        } else {
            const dval *x = engine__dict_by_name(d, v->name);
            ok = x && (d->ids || !roaring_bitmap_is_empty(x->bm));
        }
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

/* A buffer of dense ids, added to a bitmap in bulk. */
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

/* Is within small enough to test its members one by one rather than use an
 * index (under 1/ratio of the customers, or a handful)? */
static bool small(const engine *e, const roaring_bitmap_t *within, uint32_t ratio) {
    if (!within) return false;
    uint64_t k = roaring_bitmap_get_cardinality(within);
    return k <= 16 || k * ratio < e->n;
}

/* A test of one customer; the matches of within's members (or of cand's
 * when cand is not NULL) are added to a new bitmap. */
typedef bool (*test_fn)(const engine *e, const void *arg, uint32_t d);

static roaring_bitmap_t *filter(const engine *e, const roaring_bitmap_t *cand, test_fn fn,
                                const void *arg) {
    idbuf *b = malloc(sizeof *b);
    roaring_bitmap_t *r = roaring_bitmap_create();
    roaring_uint32_iterator_t *it = cand ? roaring_create_iterator(cand) : NULL;
    if (!b || !r || (cand && !it)) {
        free(b);
        if (r) roaring_bitmap_free(r);
        if (it) roaring_free_uint32_iterator(it);
        return NULL;
    }
    b->n = 0;
    b->bm = r;
    if (it) {
        uint32_t buf[512];
        for (uint32_t got; (got = roaring_read_uint32_iterator(it, buf, 512)) > 0;)
            for (uint32_t j = 0; j < got; j++)
                if (fn(e, arg, buf[j])) idbuf_add(b, buf[j]);
        roaring_free_uint32_iterator(it);
    } else {
        for (uint32_t d = 0; d < e->n; d++)
            if (fn(e, arg, d)) idbuf_add(b, d);
    }
    idbuf_flush(b);
    free(b);
    return r;
}

/* ---- kinds of cost: an "and" evaluates the cheaper parts first ---------------- */

enum { COST_SET, COST_INDEX, COST_SCAN };

static int cost(const expr_node *n) {
    switch (n->kind) {
    case EXPR_SET:
        return COST_SET;
    case EXPR_CMP:
    case EXPR_DID:
        return COST_INDEX;
    case EXPR_AND:
    case EXPR_OR:
    case EXPR_NOT: {
        int c = COST_SET;
        for (size_t i = 0; i < n->nkids; i++) {
            int k = cost(n->kids[i]);
            if (k > c) c = k;
        }
        return c;
    }
    default:
        return COST_SCAN;
    }
}

static roaring_bitmap_t *eval(const engine *e, const expr_node *n, int64_t now,
                              const roaring_bitmap_t *within);

static uint64_t estimate(const engine *e, const expr_node *n, int64_t now);

/* The one bitmap a set predicate stands for, when it stands for exactly one
 * (one value that names one record or plain value); else NULL. */
static const roaring_bitmap_t *set_single(const engine *e, const expr_node *n) {
    if (n->kind != EXPR_SET || n->nvals != 1) return NULL;
    const dict *d = &e->dims[n->dim];
    const expr_value *v = &n->vals[0];
    const dval *x = NULL;
    if (v->kind == EXPR_VAL_ID) {
        x = d->ids ? engine__dict_by_id(d, v->id) : NULL;
    } else if (!d->ids) {
        x = engine__dict_by_name(d, v->name);
    } else {
        for (size_t j = 0; j < d->n; j++)
            if (d->v[j].name && strcmp(d->v[j].name, v->name) == 0) {
                if (x) return NULL;
                x = &d->v[j];
            }
    }
    return x ? x->bm : NULL;
}

static roaring_bitmap_t *eval_and(const engine *e, const expr_node *n, int64_t now,
                                  const roaring_bitmap_t *within) {
    roaring_bitmap_t *r = NULL; /* NULL while nothing narrowed within yet */
    size_t *order = malloc(n->nkids * sizeof *order);
    uint64_t *est = malloc(n->nkids * sizeof *est);
    if (!order || !est) goto fail;
    /* passes by cost, the positive parts before the "not" parts of each; the
     * positive indexed parts by their estimated size, smallest first */
    for (int pass = 0; pass < 6; pass++) {
        size_t m = 0;
        for (size_t i = 0; i < n->nkids; i++) {
            const expr_node *k = n->kids[i];
            if (cost(k) != pass / 2 || (k->kind == EXPR_NOT) != (pass % 2 == 1)) continue;
            uint64_t x = pass == 2 * COST_INDEX ? estimate(e, k, now) : 0;
            size_t j = m++;
            for (; j > 0 && est[j - 1] > x; j--) {
                est[j] = est[j - 1];
                order[j] = order[j - 1];
            }
            est[j] = x;
            order[j] = i;
        }
        for (size_t o = 0; o < m; o++) {
            const expr_node *k = n->kids[order[o]];
            bool neg = k->kind == EXPR_NOT;
            const roaring_bitmap_t *one = r ? set_single(e, neg ? k->kids[0] : k) : NULL;
            if (one) { /* in place, without an intermediate bitmap */
                if (neg)
                    roaring_bitmap_andnot_inplace(r, one);
                else
                    roaring_bitmap_and_inplace(r, one);
                continue;
            }
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
    free(order);
    free(est);
    return r ? r : roaring_bitmap_copy(within ? within : e->all);
fail:
    free(order);
    free(est);
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
            const dval *x = d->ids ? engine__dict_by_id(d, v->id) : NULL;
            if (x) ok = bms_push(&bms, &k, &cap, x->bm);
        } else if (!d->ids) {
            const dval *x = engine__dict_by_name(d, v->name);
            if (x) ok = bms_push(&bms, &k, &cap, x->bm);
        } else {
            for (size_t j = 0; ok && j < d->n; j++) /* every record with that name */
                if (d->v[j].name && strcmp(d->v[j].name, v->name) == 0)
                    ok = bms_push(&bms, &k, &cap, d->v[j].bm);
        }
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

/* ---- numeric comparisons ------------------------------------------------------------ */

/* A comparison as a range of values: lo <= v <= hi, or v != hi when ne. */
typedef struct vrange {
    const int64_t *v;
    int64_t lo, hi;
    bool ne;
} vrange;

static bool range_test(const engine *e, const void *arg, uint32_t d) {
    (void)e;
    const vrange *q = arg;
    int64_t v = q->v[d];
    if (v == ENGINE_NONE) return false;
    return q->ne ? v != q->hi : v >= q->lo && v <= q->hi;
}

/* The range of values a comparison of attribute a admits. false when it
 * admits none. */
static bool cmp_range(const expr_node *n, int64_t now, vrange *q) {
    bool time = n->attr != EXPR_ATTR_SPENT && n->attr != EXPR_ATTR_ORDERS_TOTAL;
    int64_t t = n->num;
    expr_op op = n->op;
    if (time) { /* age op num <=> value op' now - num */
        if (__builtin_sub_overflow(now, n->num, &t)) return false;
        static const expr_op flip[] = {0,          EXPR_OP_GT, EXPR_OP_GE, EXPR_OP_LT,
                                       EXPR_OP_LE, EXPR_OP_EQ, EXPR_OP_NE};
        op = flip[op];
    }
    q->lo = INT64_MIN + 1;
    q->hi = INT64_MAX;
    q->ne = false;
    switch (op) {
    case EXPR_OP_LT:
        if (t == INT64_MIN + 1) return false;
        q->hi = t - 1;
        break;
    case EXPR_OP_LE:
        q->hi = t;
        break;
    case EXPR_OP_GT:
        if (t == INT64_MAX) return false;
        q->lo = t + 1;
        break;
    case EXPR_OP_GE:
        q->lo = t;
        break;
    case EXPR_OP_EQ:
        q->lo = q->hi = t;
        break;
    case EXPR_OP_NE:
        q->hi = t;
        q->ne = true;
        break;
    }
    return q->lo <= q->hi && t > INT64_MIN;
}

static roaring_bitmap_t *eval_cmp(const engine *e, const expr_node *n, int64_t now,
                                  const roaring_bitmap_t *within) {
    if (n->attr < 1 || n->attr >= EXPR_ATTR__COUNT) return NULL;
    const nidx *x = &e->num[n->attr];
    vrange q = {.v = x->v};
    if (!cmp_range(n, now, &q)) return roaring_bitmap_create();
    if (small(e, within, 32)) return filter(e, within, range_test, &q);
    if (!q.ne) return engine__nidx_range(x, q.lo, q.hi, within);
    roaring_bitmap_t *r = engine__nidx_range(x, INT64_MIN + 1, INT64_MAX, within);
    roaring_bitmap_t *eq = r ? engine__nidx_range(x, q.hi, q.hi, r) : NULL;
    if (!eq) {
        if (r) roaring_bitmap_free(r);
        return NULL;
    }
    roaring_bitmap_andnot_inplace(r, eq);
    roaring_bitmap_free(eq);
    return r;
}

/* ---- events ---------------------------------------------------------------------------- */

typedef struct evq {
    const evcol *c;
    const expr_node *n;
    int64_t now, lo, hi; /* the window [lo, hi]; all time when window is 0 */
} evq;

static uint32_t evq_count(const evq *q, uint32_t d) {
    return q->n->window == 0 ? engine__ev_total(q->c, d) : engine__ev_count(q->c, d, q->lo, q->hi);
}

static bool ev_test(const engine *e, const void *arg, uint32_t d) {
    (void)e;
    const evq *q = arg;
    const expr_node *n = q->n;
    switch (n->kind) {
    case EXPR_DID:
        return evq_count(q, d) > 0;
    case EXPR_COUNT:
        return cmp(evq_count(q, d), n->op, n->num);
    case EXPR_FIRST:
    case EXPR_LAST: {
        int64_t first, last;
        if (!engine__ev_first_last(q->c, d, &first, &last)) return false;
        return cmp(q->now - (n->kind == EXPR_FIRST ? first : last), n->op, n->num);
    }
    default:
        return false;
    }
}

/* Customers of within with an event of q's type in q's window. */
static roaring_bitmap_t *ev_did(const engine *e, const evq *q, const roaring_bitmap_t *within) {
    if (!q->c) return roaring_bitmap_create();
    if (q->n->window == 0)
        return within ? roaring_bitmap_and(q->c->any, within) : roaring_bitmap_copy(q->c->any);
    if (small(e, within, 2048)) {
        evq did = *q;
        expr_node dn = *q->n;
        dn.kind = EXPR_DID;
        did.n = &dn;
        return filter(e, within, ev_test, &did);
    }
    return engine__ev_window(q->c, q->lo, q->hi, within);
}

static roaring_bitmap_t *eval_events(const engine *e, const expr_node *n, int64_t now,
                                     const roaring_bitmap_t *within) {
    evq q = {.c = engine__ev_find(e, n->event_type), .n = n, .now = now};
    if (n->window) {
        if (__builtin_sub_overflow(now, n->window, &q.lo)) q.lo = INT64_MIN;
        q.hi = now;
    }
    if (n->kind == EXPR_DID) return ev_did(e, &q, within);
    if (n->kind == EXPR_FIRST || n->kind == EXPR_LAST) {
        if (!q.c) return roaring_bitmap_create();
        roaring_bitmap_t *cand =
            within ? roaring_bitmap_and(q.c->any, within) : roaring_bitmap_copy(q.c->any);
        roaring_bitmap_t *r = cand ? filter(e, cand, ev_test, &q) : NULL;
        if (cand) roaring_bitmap_free(cand);
        return r;
    }
    /* count: the customers with events in the window are tested; the others
     * have a count of 0 */
    roaring_bitmap_t *some = ev_did(e, &q, within);
    if (!some) return NULL;
    roaring_bitmap_t *r = q.c ? filter(e, some, ev_test, &q) : roaring_bitmap_create();
    if (r && cmp(0, n->op, n->num)) {
        roaring_bitmap_t *zero = roaring_bitmap_andnot(within ? within : e->all, some);
        if (zero) {
            roaring_bitmap_or_inplace(r, zero);
            roaring_bitmap_free(zero);
        } else {
            roaring_bitmap_free(r);
            r = NULL;
        }
    }
    roaring_bitmap_free(some);
    return r;
}

/* About how many customers an indexed part (a comparison, did) matches: the
 * bins of the range, the days of the window; all customers for the rest. */
static uint64_t estimate(const engine *e, const expr_node *n, int64_t now) {
    if (n->kind == EXPR_CMP && n->attr >= 1 && n->attr < EXPR_ATTR__COUNT) {
        const nidx *x = &e->num[n->attr];
        vrange q;
        if (!cmp_range(n, now, &q)) return 0;
        if (q.ne) return e->n;
        uint64_t sum = 0;
        for (int k = engine__nidx_bin(x, q.lo); k >= 0 && k < x->nb && x->lb[k] <= q.hi; k++)
            sum += x->cnt[k];
        return sum;
    }
    if (n->kind == EXPR_DID) {
        const evcol *c = engine__ev_find(e, n->event_type);
        if (!c) return 0;
        if (n->window == 0 || c->ndays == 0) return roaring_bitmap_get_cardinality(c->any);
        int64_t lo;
        if (__builtin_sub_overflow(now, n->window, &lo)) lo = INT64_MIN;
        int64_t from = lo / 86400 - c->day0, to = now / 86400 - c->day0;
        uint64_t sum = 0;
        for (int64_t d = from < 0 ? 0 : from; d <= to && d < (int64_t)c->ndays; d++)
            if (c->day[d]) sum += roaring_bitmap_get_cardinality(c->day[d]);
        return sum;
    }
    return e->n;
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
