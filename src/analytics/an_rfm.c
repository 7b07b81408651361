/* an_rfm.c — RFM quintile scores and frequency x unit-price quadrants over
 * the buyers (customers with an "order" event) of a segment
 * (docs/ANALYTICS.md, "RFM").
 *
 * One pass over the buyers collects, per buyer, the days since its last
 * order (from the "order" event column), its order count and its spent
 * (the engine's numeric columns); the quintile thresholds are order
 * statistics of those arrays (quickselect on copies); a second pass scores
 * and counts. Quadrant members are bitmaps for lists. */
#include <stdlib.h>
#include <string.h>

#include "analytics/an_int.h"
#include "segment/engine_int.h"

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Thresholds at the 20/40/60/80th percentiles of v[0..n) (sorts a copy). */
static int quintiles(const int64_t *v, size_t n, int64_t t[4]) {
    int64_t *c = malloc((n ? n : 1) * sizeof *c);
    if (!c) return SIYU_ENOMEM;
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_i64);
    for (int k = 0; k < 4; k++)
        t[k] = n ? c[(n * (size_t)(k + 1)) / 5 < n ? (n * (size_t)(k + 1)) / 5 : n - 1] : 0;
    free(c);
    return 0;
}

static int median_of(const int64_t *v, size_t n, int64_t *out) {
    int64_t *c = malloc((n ? n : 1) * sizeof *c);
    if (!c) return SIYU_ENOMEM;
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_i64);
    *out = n ? c[(n - 1) / 2] : 0;
    free(c);
    return 0;
}

/* Score 1..5 of x against thresholds t (ascending is better). */
static int score_up(int64_t x, const int64_t t[4]) {
    int s = 1;
    for (int k = 0; k < 4; k++)
        if (x >= t[k]) s = k + 2;
    return s;
}

void analytics_rfm_free(analytics_rfm *r) {
    if (!r) return;
    for (int q = 0; q < 4; q++)
        if (r->quad[q]) roaring_bitmap_free(r->quad[q]);
    memset(r, 0, sizeof *r);
}

int analytics_rfm_run(const engine *e, const analytics_rfm_def *def, analytics_rfm *out,
                      siyu_err *err) {
    memset(out, 0, sizeof *out);
    int rc = 0;
    int64_t *rd = NULL, *fr = NULL, *mo = NULL;
    roaring_bitmap_t *buyers = NULL;
    for (int q = 0; q < 4; q++)
        if (!(out->quad[q] = roaring_bitmap_create())) goto oom;
    const evcol *c = engine__ev_find(e, "order");
    if (!c) goto done;
    buyers = def->within ? roaring_bitmap_and(c->any, def->within) : roaring_bitmap_copy(c->any);
    if (!buyers) goto oom;
    size_t n = roaring_bitmap_get_cardinality(buyers);
    rd = malloc((n ? n : 1) * sizeof *rd);
    fr = malloc((n ? n : 1) * sizeof *fr);
    mo = malloc((n ? n : 1) * sizeof *mo);
    if (!rd || !fr || !mo) goto oom;
    size_t i = 0;
    roaring_uint32_iterator_t *it = roaring_create_iterator(buyers);
    if (!it) goto oom;
    for (; it->has_value; roaring_advance_uint32_iterator(it)) {
        uint32_t d = it->current_value;
        int64_t first, last;
        if (!engine__ev_first_last(c, d, &first, &last)) continue;
        /* recency as negative days so that larger is better everywhere */
        int64_t days = (def->now - last) / ANALYTICS_DAY;
        rd[i] = -(days < 0 ? 0 : days);
        fr[i] = engine_value(e, d, EXPR_ATTR_ORDERS_TOTAL);
        mo[i] = engine_value(e, d, EXPR_ATTR_SPENT);
        i++;
    }
    roaring_free_uint32_iterator(it);
    n = i;
    out->buyers = n;
    int64_t rt[4];
    if ((rc = quintiles(rd, n, rt)) || (rc = quintiles(fr, n, out->f)) ||
        (rc = quintiles(mo, n, out->m_cents)))
        goto fail;
    for (int k = 0; k < 4; k++)
        out->r_days[k] = -rt[k];
    out->freq_min = def->freq_min;
    out->aov_min_cents = def->aov_min_cents;
    if (out->freq_min <= 0 && (rc = median_of(fr, n, &out->freq_min))) goto fail;
    if (out->aov_min_cents <= 0) {
        for (size_t k = 0; k < n; k++)
            rd[k] = fr[k] > 0 ? mo[k] / fr[k] : 0; /* reuse rd for the unit prices */
        if ((rc = median_of(rd, n, &out->aov_min_cents))) goto fail;
    }
    it = roaring_create_iterator(buyers);
    if (!it) goto oom;
    uint32_t qbuf[4][256];
    size_t qn[4] = {0};
    for (; it->has_value; roaring_advance_uint32_iterator(it)) {
        uint32_t d = it->current_value;
        int64_t first, last;
        if (!engine__ev_first_last(c, d, &first, &last)) continue;
        int64_t days = (def->now - last) / ANALYTICS_DAY;
        int64_t f = engine_value(e, d, EXPR_ATTR_ORDERS_TOTAL);
        int64_t m = engine_value(e, d, EXPR_ATTR_SPENT);
        int rs = score_up(-(days < 0 ? 0 : days), rt), fs = score_up(f, out->f),
            ms = score_up(m, out->m_cents);
        out->cells[rs - 1][fs - 1][ms - 1]++;
        out->r_count[rs - 1]++, out->f_count[fs - 1]++, out->m_count[ms - 1]++;
        int q = (f >= out->freq_min ? 2 : 0) + ((f > 0 ? m / f : 0) >= out->aov_min_cents ? 1 : 0);
        out->quad_count[q]++;
        qbuf[q][qn[q]++] = d;
        if (qn[q] == 256) {
            roaring_bitmap_add_many(out->quad[q], qn[q], qbuf[q]);
            qn[q] = 0;
        }
    }
    roaring_free_uint32_iterator(it);
    for (int q = 0; q < 4; q++)
        roaring_bitmap_add_many(out->quad[q], qn[q], qbuf[q]);
    goto done;
oom:
    rc = SIYU_ENOMEM;
fail:
    siyu_err_set(err, rc, NULL, "out of memory");
    analytics_rfm_free(out);
done:
    if (buyers) roaring_bitmap_free(buyers);
    free(rd);
    free(fr);
    free(mo);
    return rc;
}
