/* engine_read.c — reading results from the segment engine: values, pages in
 * sort order (engine_page walks the sort attribute's bins from the first in
 * order, keeping the best rows of each bin with a bounded heap), breakdowns,
 * record lookups and memory. Readers only. */
#include <stdlib.h>
#include <string.h>

#include "segment/engine_int.h"

int64_t engine_value(const engine *e, uint32_t dense, expr_attr a) {
    if (a < 1 || a >= EXPR_ATTR__COUNT || dense >= e->n) return ENGINE_NONE;
    return e->num[a].v[dense];
}

const roaring_bitmap_t *engine_all(const engine *e) {
    return e->all;
}

int64_t engine_record_id(const engine *e, expr_dim dim, const char *name) {
    if (dim < 1 || dim >= EXPR_DIM__COUNT || !name) return 0;
    const dict *d = &e->dims[dim];
    if (!d->ids) return 0;
    const dval *v = engine__dict_by_name(d, name);
    return v ? v->id : 0;
}

const roaring_bitmap_t *engine_members(const engine *e, expr_dim dim, int64_t id) {
    if (dim < 1 || dim >= EXPR_DIM__COUNT || !e->dims[dim].ids) return NULL;
    const dval *v = engine__dict_by_id(&e->dims[dim], id);
    return v ? v->bm : NULL;
}

uint64_t engine_bytes(const engine *e) {
    uint64_t b = sizeof *e + (uint64_t)e->ncap * (8 + sizeof(crel) + 8 * (EXPR_ATTR__COUNT - 1));
    b += roaring_bitmap_size_in_bytes(e->all);
    for (int d = 1; d < EXPR_DIM__COUNT; d++) {
        const dict *x = &e->dims[d];
        b += x->cap * sizeof(dval) + x->names.cap * 12;
        for (size_t i = 0; i < x->n; i++)
            b += roaring_bitmap_size_in_bytes(x->v[i].bm) +
                 (x->v[i].name ? strlen(x->v[i].name) + 1 : 0);
    }
    for (int a = 1; a < EXPR_ATTR__COUNT; a++)
        b += engine__nidx_bytes(&e->num[a]);
    for (size_t i = 0; i < e->nrelx; i++)
        b += e->relx[i].cap * sizeof(crel);
    b += e->cap_relx * sizeof(crelv) + e->relmap.cap * 8;
    for (size_t i = 0; i < e->nev_types; i++)
        b += engine__ev_bytes(&e->ev[i], e->ncap);
    return b;
}

/* ---- pages ------------------------------------------------------------------------- */

/* Does row a come before row b (valued keys)? */
static bool before(const engine_row *a, const engine_row *b, bool desc) {
    if (a->key != b->key) return desc ? a->key > b->key : a->key < b->key;
    return a->dense < b->dense;
}

/* Is row r strictly after the cursor? */
static bool after_cursor(const engine_row *r, const engine_row *after, bool desc) {
    return !after || before(after, r, desc);
}

/* A bounded heap of the best rows: h[0] is the worst kept. */
typedef struct rowheap {
    engine_row *h;
    size_t n, cap;
    bool desc;
} rowheap;

static void heap_down(rowheap *p, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < p->n && before(&p->h[w], &p->h[l], p->desc)) w = l;
        if (r < p->n && before(&p->h[w], &p->h[r], p->desc)) w = r;
        if (w == i) return;
        engine_row t = p->h[i];
        p->h[i] = p->h[w];
        p->h[w] = t;
        i = w;
    }
}

static void heap_offer(rowheap *p, const engine_row *r) {
    if (p->n < p->cap) {
        size_t i = p->n++;
        p->h[i] = *r;
        while (i > 0) {
            size_t up = (i - 1) / 2;
            if (!before(&p->h[up], &p->h[i], p->desc)) break;
            engine_row t = p->h[i];
            p->h[i] = p->h[up];
            p->h[up] = t;
            i = up;
        }
    } else if (before(r, &p->h[0], p->desc)) {
        p->h[0] = *r;
        heap_down(p, 0);
    }
}

static int row_cmp_asc(const void *a, const void *b) {
    const engine_row *x = a, *y = b;
    return before(x, y, false) ? -1 : before(y, x, false) ? 1 : 0;
}

static int row_cmp_desc(const void *a, const void *b) {
    const engine_row *x = a, *y = b;
    return before(x, y, true) ? -1 : before(y, x, true) ? 1 : 0;
}

static int page_id(const engine *e, const roaring_bitmap_t *bm, bool desc, const engine_row *after,
                   size_t limit, engine_row *out, size_t *n) {
    roaring_uint32_iterator_t it;
    if (!desc) {
        roaring_init_iterator(bm, &it);
        if (after && after->dense == UINT32_MAX) return 0;
        if (after) roaring_move_uint32_iterator_equalorlarger(&it, after->dense + 1);
    } else if (after) {
        roaring_init_iterator(bm, &it);
        if (roaring_move_uint32_iterator_equalorlarger(&it, after->dense))
            roaring_previous_uint32_iterator(&it);
        else
            roaring_init_iterator_last(bm, &it);
    } else {
        roaring_init_iterator_last(bm, &it);
    }
    while (it.has_value && *n < limit) {
        uint32_t d = it.current_value;
        if (d < e->n)
            out[(*n)++] = (engine_row){.dense = d, .customer_id = e->ids[d], .key = e->ids[d]};
        if (desc)
            roaring_previous_uint32_iterator(&it);
        else
            roaring_advance_uint32_iterator(&it);
    }
    return 0;
}

static engine_row row_of(const engine *e, const nidx *x, uint32_t d) {
    return (engine_row){.dense = d, .customer_id = e->ids[d], .key = x->v[d]};
}

int engine_page(const engine *e, const roaring_bitmap_t *bm, engine_sort sort, bool desc,
                const engine_row *after, size_t limit, engine_row *out, size_t *n) {
    *n = 0;
    if (limit == 0) return 0;
    if (sort == ENGINE_SORT_ID) return page_id(e, bm, desc, after, limit, out, n);
    static const expr_attr attr[] = {0,
                                     EXPR_ATTR_SPENT,
                                     EXPR_ATTR_ORDERS_TOTAL,
                                     EXPR_ATTR_FIRST_ADDED,
                                     EXPR_ATTR_LAST_ACTIVE,
                                     EXPR_ATTR_LAST_MESSAGE};
    if (sort < 0 || sort > ENGINE_SORT_LAST_MESSAGE) return SIYU_EINVAL;
    const nidx *x = &e->num[attr[sort]];
    bool none_phase = after && after->key == ENGINE_NONE;
    if (!none_phase) {
        rowheap p = {.h = out, .cap = limit, .desc = desc};
        int k = after ? engine__nidx_bin(x, after->key) : desc ? x->nb - 1 : 0;
        for (; k >= 0 && k < x->nb && p.n < limit; k += desc ? -1 : 1) {
            roaring_bitmap_t *m = engine__nidx_bin_members(x, k, bm);
            roaring_uint32_iterator_t *it = m ? roaring_create_iterator(m) : NULL;
            if (!it) {
                if (m) roaring_bitmap_free(m);
                return SIYU_ENOMEM;
            }
            size_t base = p.n; /* rows of earlier bins stay; this bin fills the rest */
            rowheap q = {.h = out + base, .cap = limit - base, .desc = desc};
            uint32_t buf[512];
            for (uint32_t got; (got = roaring_read_uint32_iterator(it, buf, 512)) > 0;)
                for (uint32_t j = 0; j < got; j++) {
                    engine_row r = row_of(e, x, buf[j]);
                    if (after_cursor(&r, after, desc)) heap_offer(&q, &r);
                }
            roaring_free_uint32_iterator(it);
            roaring_bitmap_free(m);
            qsort(out + base, q.n, sizeof *out, desc ? row_cmp_desc : row_cmp_asc);
            p.n = base + q.n;
        }
        *n = p.n;
        if (*n == limit) return 0;
    }
    /* the customers without a value, by id */
    roaring_bitmap_t *none = roaring_bitmap_andnot(bm, x->cum[0]);
    if (!none) return SIYU_ENOMEM;
    roaring_uint32_iterator_t it;
    roaring_init_iterator(none, &it);
    if (none_phase) roaring_move_uint32_iterator_equalorlarger(&it, after->dense + 1);
    if (none_phase && after->dense == UINT32_MAX) it.has_value = false;
    for (; it.has_value && *n < limit; roaring_advance_uint32_iterator(&it))
        if (it.current_value < e->n) out[(*n)++] = row_of(e, x, it.current_value);
    roaring_bitmap_free(none);
    return 0;
}

/* ---- breakdowns ---------------------------------------------------------------------- */

static int bucket_cmp(const void *a, const void *b) {
    const engine_bucket *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    if (!x->name || !y->name) return x->name ? 1 : y->name ? -1 : 0;
    return strcmp(x->name, y->name);
}

int engine_breakdown(const engine *e, const roaring_bitmap_t *bm, expr_dim dim, size_t top,
                     engine_bucket *out, size_t *n) {
    *n = 0;
    if (dim < 1 || dim >= EXPR_DIM__COUNT) return SIYU_EINVAL;
    const dict *d = &e->dims[dim];
    if (top == 0 || d->n == 0) return 0;
    engine_bucket *all = malloc(d->n * sizeof *all);
    if (!all) return SIYU_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < d->n; i++) {
        uint64_t c = roaring_bitmap_and_cardinality(bm, d->v[i].bm);
        if (c)
            all[k++] =
                (engine_bucket){.id = d->ids ? d->v[i].id : 0, .name = d->v[i].name, .count = c};
    }
    qsort(all, k, sizeof *all, bucket_cmp);
    *n = k < top ? k : top;
    memcpy(out, all, *n * sizeof *out);
    free(all);
    return 0;
}
