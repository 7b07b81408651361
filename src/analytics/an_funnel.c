/* an_funnel.c — ordered funnels and cohort retention over the segment
 * engine's event columns (docs/ANALYTICS.md, "Funnels", "Cohorts").
 *
 * Funnel: the customers entering (step 0) are a bitmap with, in the same
 * order, their entry time t0 and the time of the step reached last. Step k
 * narrows the bitmap to the customers whose first step-k event at or after
 * the previous step's time is within t0 + window (greedy earliest matches
 * are optimal for an ordered funnel: an earlier match never leaves fewer
 * choices for the next step). Candidates are first cut down with the event
 * type's per-day bitmaps over the whole window (engine__ev_window), so the
 * per-customer binary searches only run for customers with such an event.
 *
 * Cohorts: one bitmap per cohort (first_added within the period, from the
 * engine's numeric index); retention per period is a bitmap of customers
 * with an event of the wanted types in the period (engine__ev_window, exact
 * at the local-day edges), and a cell is the cardinality of an AND. "Still a
 * contact" reads the relationship rows of the analytics object instead. */
#include <stdlib.h>
#include <string.h>

#include "analytics/an_int.h"
#include "segment/engine_int.h"

/* The first time of d's events of column c within [lo, hi], or -1. */
static int64_t first_at(const evcol *c, uint32_t d, int64_t lo, int64_t hi) {
    int64_t best = -1;
    for (int part = 0; part < 2; part++) {
        const uint32_t *ts;
        uint32_t n;
        if (part == 0) {
            ts = c->ts + c->off[d];
            n = c->off[d + 1] - c->off[d];
        } else {
            if (!(c->ovbits[d / 64] >> (d % 64) & 1)) break;
            uint32_t s = engine__u32map_get(&c->ovmap, d);
            if (s == UINT32_MAX) break;
            ts = c->ov[s].ts;
            n = c->ov[s].n;
        }
        uint32_t i = 0, j = n;
        if (n <= 16) {
            while (i < n && (int64_t)ts[i] < lo)
                i++;
        } else {
            while (i < j) {
                uint32_t m = i + (j - i) / 2;
                if ((int64_t)ts[m] < lo)
                    i = m + 1;
                else
                    j = m;
            }
        }
        if (i < n && (int64_t)ts[i] <= hi && (best < 0 || ts[i] < best)) best = ts[i];
    }
    return best;
}

/* k-th smallest of v[0..n) (reorders v). */
static uint32_t select_k(uint32_t *v, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t p = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < p)
                i++;
            while (v[j] > p)
                j--;
            if (i <= j) {
                uint32_t t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

/* Median of v (lower median for an even count); -1 when empty. */
static int64_t median(uint32_t *v, size_t n) {
    return n ? (int64_t)select_k(v, n, (n - 1) / 2) : -1;
}

void analytics_funnel_free(analytics_funnel *f) {
    if (!f) return;
    for (size_t k = 0; k < ANALYTICS_FUNNEL_MAX; k++)
        if (f->reached[k]) roaring_bitmap_free(f->reached[k]);
    memset(f, 0, sizeof *f);
}

roaring_bitmap_t *analytics_funnel_dropped(const analytics_funnel *f, size_t k) {
    if (k < 1 || k >= f->nsteps) return NULL;
    return roaring_bitmap_andnot(f->reached[k - 1], f->reached[k]);
}

int analytics_funnel_run(const engine *e, const analytics_funnel_def *def, analytics_funnel *out,
                         siyu_err *err) {
    memset(out, 0, sizeof *out);
    if (def->nsteps < 1 || def->nsteps > ANALYTICS_FUNNEL_MAX)
        return siyu_err_set(err, SIYU_EINVAL, "steps", "1 to %d steps", ANALYTICS_FUNNEL_MAX);
    if (def->window < 1 || def->window > 366 * ANALYTICS_DAY)
        return siyu_err_set(err, SIYU_EINVAL, "window", "1 second to 366 days");
    if (def->from > def->to) return siyu_err_set(err, SIYU_EINVAL, "from", "after to");
    for (size_t k = 0; k < def->nsteps; k++)
        if (!def->steps[k] || !def->steps[k][0] || (k > 0 && strcmp(def->steps[k], "add") == 0))
            return siyu_err_set(err, SIYU_EINVAL, "steps",
                                "step %zu: an event type (\"add\" only first)", k + 1);
    out->nsteps = def->nsteps;
    int rc = 0;
    uint32_t *t0 = NULL, *tp = NULL, *dt = NULL, *ids = NULL, *cv = NULL;
    roaring_bitmap_t *cand = NULL;
    /* step 0 */
    const evcol *c0 = NULL;
    bool add = strcmp(def->steps[0], "add") == 0;
    if (add)
        out->reached[0] = engine__nidx_range(&e->num[EXPR_ATTR_FIRST_ADDED], def->from, def->to,
                                             def->within ? def->within : e->all);
    else if ((c0 = engine__ev_find(e, def->steps[0])))
        out->reached[0] = engine__ev_window(c0, def->from, def->to, def->within);
    else
        out->reached[0] = roaring_bitmap_create();
    if (!out->reached[0]) goto oom;
    uint64_t n0 = roaring_bitmap_get_cardinality(out->reached[0]);
    out->count[0] = n0;
    out->median_s[0] = -1;
    /* ids[i]: the customers still in, ascending; t0[i], tp[i]: their entry
     * time and the time of the step reached last */
    t0 = malloc((n0 ? n0 : 1) * sizeof *t0);
    tp = malloc((n0 ? n0 : 1) * sizeof *tp);
    dt = malloc((n0 ? n0 : 1) * sizeof *dt);
    ids = malloc((n0 ? n0 : 1) * sizeof *ids);
    cv = malloc((n0 ? n0 : 1) * sizeof *cv);
    if (!t0 || !tp || !dt || !ids || !cv) goto oom;
    roaring_bitmap_to_uint32_array(out->reached[0], ids);
    for (size_t i = 0; i < n0; i++) {
        uint32_t d = ids[i];
        int64_t t = add ? e->num[EXPR_ATTR_FIRST_ADDED].v[d] : first_at(c0, d, def->from, def->to);
        t0[i] = tp[i] = t < 0 ? 0 : t > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)t;
    }
    size_t nprev = n0;
    for (size_t k = 1; k < def->nsteps; k++) {
        const evcol *c = engine__ev_find(e, def->steps[k]);
        out->median_s[k] = -1;
        if (!c || nprev == 0) {
            if (!(out->reached[k] = roaring_bitmap_create())) goto oom;
            nprev = 0;
            continue;
        }
        /* candidates: customers still in with an event of the step's type
         * anywhere in the funnel's span (a subset of ids, ascending) */
        cand = engine__ev_window(c, def->from, def->to + def->window, out->reached[k - 1]);
        if (!cand) goto oom;
        size_t nc = roaring_bitmap_get_cardinality(cand);
        roaring_bitmap_to_uint32_array(cand, cv);
        roaring_bitmap_free(cand);
        cand = NULL;
        size_t w = 0, i = 0;
        for (size_t j = 0; j < nc; j++) {
            /* the candidates' event lists are far apart in memory: fetch
             * ahead (offsets 16 ahead, timestamps 8 ahead) */
            if (j + 16 < nc) __builtin_prefetch(&c->off[cv[j + 16]]);
            if (j + 8 < nc) __builtin_prefetch(&c->ts[c->off[cv[j + 8]]]);
            while (ids[i] != cv[j])
                i++;
            uint32_t d = ids[i];
            int64_t t = first_at(c, d, tp[i], (int64_t)t0[i] + def->window);
            if (t < 0) continue;
            dt[w] = (uint32_t)(t - tp[i]);
            t0[w] = t0[i];
            tp[w] = (uint32_t)t;
            ids[w] = d;
            w++;
        }
        if (!(out->reached[k] = roaring_bitmap_of_ptr(w, ids))) goto oom;
        out->count[k] = w;
        out->median_s[k] = median(dt, w);
        nprev = w;
    }
    goto done;
oom:
    rc = siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    analytics_funnel_free(out);
done:
    if (cand) roaring_bitmap_free(cand);
    free(t0);
    free(tp);
    free(dt);
    free(ids);
    free(cv);
    return rc;
}

/* ---- cohorts --------------------------------------------------------------------------- */

void analytics_cohort_free(analytics_cohort *c) {
    if (!c) return;
    free(c->start);
    free(c->size);
    free(c->cell);
    memset(c, 0, sizeof *c);
}

/* First local day of the period holding `day`, moved back by `back` periods. */
int32_t an__period_start(analytics_period per, int32_t day, int back) {
    if (per == AN_DAY) return day - back;
    if (per == AN_WEEK) {
        int32_t wd = ((day + 3) % 7 + 7) % 7; /* 0 = Monday (1970-01-01 was a Thursday) */
        return day - wd - 7 * back;
    }
    int64_t y;
    unsigned m, d;
    an__civil(day, &y, &m, &d);
    int64_t mm = y * 12 + (m - 1) - back;
    int64_t yy = mm >= 0 ? mm / 12 : (mm - 11) / 12;
    return an__days_from_civil(yy, (unsigned)(mm - yy * 12) + 1, 1);
}

/* Whether one of d's relationships is active at the end of local day `last`. */
static bool contact_at(const analytics *a, uint32_t d, int32_t last) {
    uint32_t n = an__rel_count(a, d);
    for (uint32_t i = 0; i < n; i++) {
        const arel *r = an__rel_at(a, d, i);
        if (an__day_of(a->tz, r->added) > last) continue;
        if (r->end == AN_ACTIVE_END || an__day_of(a->tz, r->end) > last) return true;
    }
    return false;
}

int analytics_cohort_run(const analytics *a, const engine *e, const roaring_bitmap_t *within,
                         analytics_period per, size_t n, int64_t now, analytics_retention ret,
                         analytics_cohort *out, siyu_err *err) {
    memset(out, 0, sizeof *out);
    if (n < 1 || n > ANALYTICS_COHORTS_MAX)
        return siyu_err_set(err, SIYU_EINVAL, "periods", "1 to %d", ANALYTICS_COHORTS_MAX);
    if (ret == AN_RET_CONTACT && !a)
        return siyu_err_set(err, SIYU_EINVAL, "retention", "contact needs relationship data");
    int32_t tz = a ? a->tz : ANALYTICS_TZ_DEFAULT;
    int32_t today = an__day_of(tz, now);
    int rc = 0;
    roaring_bitmap_t **coh = calloc(n, sizeof *coh), *all = NULL, *act = NULL;
    uint32_t *ids = NULL, *sorted = NULL;
    uint8_t *cof = NULL;
    int32_t *ps = malloc((n + 1) * sizeof *ps);
    out->n = n;
    out->start = malloc(n * sizeof *out->start);
    out->size = calloc(n, sizeof *out->size);
    out->cell = calloc(n * n, sizeof *out->cell);
    if (!coh || !ps || !out->start || !out->size || !out->cell) goto oom;
    for (size_t p = 0; p <= n; p++)
        ps[p] = an__period_start(per, today, (int)(n - 1) - (int)p);
    /* Every cohort customer at once (one range of the first_added index),
     * then split by period with one read of each one's first_added. */
    const nidx *fa = &e->num[EXPR_ATTR_FIRST_ADDED];
    if (!(all = engine__nidx_range(fa, (int64_t)ps[0] * ANALYTICS_DAY - tz,
                                   (int64_t)ps[n] * ANALYTICS_DAY - tz - 1,
                                   within ? within : e->all)))
        goto oom;
    size_t na = roaring_bitmap_get_cardinality(all);
    ids = malloc((na ? na : 1) * sizeof *ids);
    sorted = malloc((na ? na : 1) * sizeof *sorted);
    cof = malloc((na ? na : 1) * sizeof *cof);
    if (!ids || !sorted || !cof) goto oom;
    roaring_bitmap_to_uint32_array(all, ids);
    size_t start[ANALYTICS_COHORTS_MAX + 1] = {0};
    for (size_t i = 0; i < na; i++) {
        int32_t day = an__day_of(tz, fa->v[ids[i]]);
        size_t lo = 0, hi = n; /* the last ps[c] <= day */
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (ps[mid] <= day)
                lo = mid;
            else
                hi = mid;
        }
        cof[i] = (uint8_t)lo;
        start[lo + 1]++;
    }
    for (size_t c = 0; c < n; c++)
        start[c + 1] += start[c];
    {
        size_t pos[ANALYTICS_COHORTS_MAX];
        memcpy(pos, start, n * sizeof *pos);
        for (size_t i = 0; i < na; i++)
            sorted[pos[cof[i]]++] = ids[i];
    }
    for (size_t c = 0; c < n; c++) {
        out->start[c] = ps[c];
        if (!(coh[c] = roaring_bitmap_of_ptr(start[c + 1] - start[c], sorted + start[c]))) goto oom;
        out->size[c] = start[c + 1] - start[c];
    }
    if (ret == AN_RET_CONTACT) {
        for (size_t c = 0; c < n; c++) {
            roaring_uint32_iterator_t *it = roaring_create_iterator(coh[c]);
            if (!it) goto oom;
            for (; it->has_value; roaring_advance_uint32_iterator(it))
                for (size_t p = c; p < n; p++)
                    if (contact_at(a, it->current_value, ps[p + 1] - 1))
                        out->cell[c * n + (p - c)]++;
            roaring_free_uint32_iterator(it);
        }
        goto done;
    }
    for (size_t p = 0; p < n; p++) {
        int64_t lo = (int64_t)ps[p] * ANALYTICS_DAY - tz,
                hi = (int64_t)ps[p + 1] * ANALYTICS_DAY - tz - 1;
        roaring_bitmap_t *acc = NULL;
        if (ret == AN_RET_ACTIVE && a) {
            /* the analytics object's per-local-day bitmaps: no edges to check */
            const roaring_bitmap_t *dv[62];
            size_t nd = 0;
            for (int32_t day = ps[p]; day < ps[p + 1] && nd < 62; day++) {
                const roaring_bitmap_t *b = analytics_day_active(a, day);
                if (b) dv[nd++] = b;
            }
            acc = nd ? roaring_bitmap_or_many(nd, dv) : roaring_bitmap_create();
            if (!acc) goto oom;
            for (size_t c = 0; c <= p; c++)
                out->cell[c * n + (p - c)] = roaring_bitmap_and_cardinality(coh[c], acc);
            roaring_bitmap_free(acc);
            continue;
        }
        acc = roaring_bitmap_create();
        if (!acc) goto oom;
        for (size_t t = 0; t < e->nev_types; t++) {
            const evcol *col = &e->ev[t];
            if (ret == AN_RET_PURCHASED && strcmp(col->type, "order") != 0) continue;
            roaring_bitmap_t *w = engine__ev_window(col, lo, hi, all);
            if (!w) {
                roaring_bitmap_free(acc);
                goto oom;
            }
            roaring_bitmap_or_inplace(acc, w);
            roaring_bitmap_free(w);
        }
        act = acc;
        for (size_t c = 0; c <= p; c++)
            out->cell[c * n + (p - c)] = roaring_bitmap_and_cardinality(coh[c], act);
        roaring_bitmap_free(act);
        act = NULL;
    }
    goto done;
oom:
    rc = siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    analytics_cohort_free(out);
done:
    if (coh)
        for (size_t c = 0; c < n; c++)
            if (coh[c]) roaring_bitmap_free(coh[c]);
    free(coh);
    if (all) roaring_bitmap_free(all);
    free(ps);
    free(ids);
    free(sorted);
    free(cof);
    return rc;
}
