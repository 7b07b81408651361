/* engine_idx.c — the segment engine's indexes (layout in engine_int.h):
 * the binned numeric index (cumulative bitmaps "value >= bound") and the
 * event columns (base CSR by dense id, append overlay, per-day bitmaps).
 * All of it is owned by the engine and changed only by the single writer. */
#include <stdlib.h>
#include <string.h>

#include "segment/engine_int.h"

#define DAY 86400

/* ---- the binned numeric index ------------------------------------------------ */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int engine__nidx_bin(const nidx *x, int64_t v) {
    if (v == ENGINE_NONE) return -1;
    int lo = 0, hi = x->nb; /* last k with lb[k] <= v */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (x->lb[mid] <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - 1;
}

static void add_bound(nidx *x, int64_t v, int room) {
    if (x->nb < room && v > x->lb[x->nb - 1]) x->lb[x->nb++] = v;
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Chooses the bounds from quantiles of a sample of the column: 40 even
 * ones, and 5 more in each tail (1/64 .. 1/1024 of the customers) so that
 * the first rows of a page by the attribute, either way, come from small
 * bins. */
static int nidx_bounds(nidx *x, uint32_t n) {
    enum { SAMPLE = 65536, EVEN = 40, TAIL = 5, POINTS = EVEN + 2 * TAIL };
    static const int64_t ahead[] = {1,       3600,     6 * 3600, DAY,      2 * DAY,  4 * DAY,
                                    8 * DAY, 16 * DAY, 32 * DAY, 64 * DAY, 128 * DAY};
    double at[POINTS];
    for (int i = 0; i < EVEN; i++)
        at[i] = (double)i / EVEN;
    for (int k = 0; k < TAIL; k++) {
        at[EVEN + k] = 1.0 / (double)(64 << k);
        at[EVEN + TAIL + k] = 1.0 - 1.0 / (double)(64 << k);
    }
    qsort(at, POINTS, sizeof *at, cmp_dbl);
    size_t want = n < SAMPLE ? n : SAMPLE, cnt = 0;
    int64_t *s = malloc((want ? want : 1) * sizeof *s);
    if (!s) return SIYU_ENOMEM;
    for (size_t i = 0; i < want; i++) {
        int64_t v = x->v[n <= SAMPLE ? i : (uint64_t)i * n / SAMPLE];
        if (v != ENGINE_NONE) s[cnt++] = v;
    }
    qsort(s, cnt, sizeof *s, cmp_i64);
    x->nb = 1;
    x->lb[0] = INT64_MIN + 1;
    for (int q = 0; cnt && q < POINTS; q++) {
        int64_t v = s[(size_t)(at[q] * (double)cnt)];
        add_bound(x, v, ENGINE_NBINS);
        /* a value over several quantiles gets a bin of its own */
        if (q + 1 < POINTS && s[(size_t)(at[q + 1] * (double)cnt)] == v && v < INT64_MAX)
            add_bound(x, v + 1, ENGINE_NBINS);
    }
    if (x->time && cnt) /* room for the times still to come */
        for (size_t i = 0; i < sizeof ahead / sizeof ahead[0]; i++)
            if (s[cnt - 1] <= INT64_MAX - ahead[i])
                add_bound(x, s[cnt - 1] + ahead[i], ENGINE_NBINS);
    free(s);
    return 0;
}

static void nidx_free_bins(nidx *x) {
    for (int k = 0; k < ENGINE_NBINS; k++) {
        if (x->cum[k]) roaring_bitmap_free(x->cum[k]);
        if (x->bin[k]) roaring_bitmap_free(x->bin[k]);
        x->cum[k] = x->bin[k] = NULL;
    }
}

void engine__nidx_free(nidx *x) {
    nidx_free_bins(x);
    free(x->v);
    x->v = NULL;
}

int engine__nidx_build(nidx *x, uint32_t n) {
    nidx_free_bins(x);
    int rc = nidx_bounds(x, n);
    if (rc) return rc;
    uint8_t *bin = malloc(n ? n : 1);
    uint32_t *order = malloc((n ? n : 1) * sizeof *order);
    uint32_t start[ENGINE_NBINS + 1] = {0};
    if (!bin || !order) {
        free(bin);
        free(order);
        return SIYU_ENOMEM;
    }
    memset(x->cnt, 0, sizeof x->cnt);
    for (uint32_t d = 0; d < n; d++) {
        int k = engine__nidx_bin(x, x->v[d]);
        bin[d] = (uint8_t)(k < 0 ? ENGINE_NBINS : k);
        if (k >= 0) x->cnt[k]++;
    }
    for (int k = 0; k < x->nb; k++)
        start[k + 1] = start[k] + x->cnt[k];
    uint32_t pos[ENGINE_NBINS];
    memcpy(pos, start, sizeof pos);
    for (uint32_t d = 0; d < n; d++)
        if (bin[d] < ENGINE_NBINS) order[pos[bin[d]]++] = d;
    free(bin);
    rc = 0;
    for (int k = x->nb - 1; k >= 0 && !rc; k--) {
        x->cum[k] = k == x->nb - 1 ? roaring_bitmap_create() : roaring_bitmap_copy(x->cum[k + 1]);
        x->bin[k] = roaring_bitmap_create();
        if (!x->cum[k] || !x->bin[k]) {
            rc = SIYU_ENOMEM;
        } else {
            roaring_bitmap_add_many(x->cum[k], x->cnt[k], order + start[k]);
            roaring_bitmap_add_many(x->bin[k], x->cnt[k], order + start[k]);
        }
    }
    free(order);
    if (rc) {
        nidx_free_bins(x);
        return rc;
    }
    uint32_t big = 0;
    for (int k = 0; k < x->nb; k++) {
        roaring_bitmap_run_optimize(x->cum[k]);
        roaring_bitmap_run_optimize(x->bin[k]);
        if (x->cnt[k] > big && (k + 1 == x->nb || x->lb[k + 1] > x->lb[k] + 1)) big = x->cnt[k];
    }
    x->limit = n / 8 + 64;
    if (x->limit < 2 * big) x->limit = 2 * big;
    return 0;
}

int engine__nidx_set(nidx *x, uint32_t d, int64_t v, uint32_t n) {
    int64_t old = x->v[d];
    if (old == v) return 0;
    int ka = engine__nidx_bin(x, old), kb = engine__nidx_bin(x, v);
    x->v[d] = v;
    if (ka == kb) return 0;
    if (ka >= 0) {
        x->cnt[ka]--;
        roaring_bitmap_remove(x->bin[ka], d);
    }
    if (kb >= 0) {
        x->cnt[kb]++;
        roaring_bitmap_add(x->bin[kb], d);
    }
    for (int k = ka + 1; k <= kb; k++)
        roaring_bitmap_add(x->cum[k], d);
    for (int k = kb + 1; k <= ka; k++)
        roaring_bitmap_remove(x->cum[k], d);
    /* a bin that spans several values and grew past the limit: re-bin */
    if (kb >= 0 && x->cnt[kb] > x->limit && (kb + 1 == x->nb || x->lb[kb + 1] > x->lb[kb] + 1))
        return engine__nidx_build(x, n);
    return 0;
}

static roaring_bitmap_t *and_or_copy(const roaring_bitmap_t *a, const roaring_bitmap_t *within) {
    return within ? roaring_bitmap_and(a, within) : roaring_bitmap_copy(a);
}

roaring_bitmap_t *engine__nidx_bin_members(const nidx *x, int k, const roaring_bitmap_t *within) {
    return and_or_copy(x->bin[k], within);
}

/* Adds to r the members of bin k (within within) whose value is in [lo, hi]. */
static bool edge_add(const nidx *x, int k, int64_t lo, int64_t hi, const roaring_bitmap_t *within,
                     roaring_bitmap_t *r) {
    roaring_bitmap_t *edge = engine__nidx_bin_members(x, k, within);
    roaring_uint32_iterator_t *it = edge ? roaring_create_iterator(edge) : NULL;
    if (!it) {
        if (edge) roaring_bitmap_free(edge);
        return false;
    }
    uint32_t buf[512], hit[512];
    for (uint32_t got; (got = roaring_read_uint32_iterator(it, buf, 512)) > 0;) {
        uint32_t h = 0;
        for (uint32_t i = 0; i < got; i++) {
            int64_t v = x->v[buf[i]];
            if (v >= lo && v <= hi) hit[h++] = buf[i];
        }
        roaring_bitmap_add_many(r, h, hit);
    }
    roaring_free_uint32_iterator(it);
    roaring_bitmap_free(edge);
    return true;
}

/* { d in within : lo <= v[d] <= hi } is the whole bins strictly inside the
 * range (or including an edge bin the range covers whole): cum[a] minus
 * cum[b], two bitmap operations; plus the members of the edge bins tested
 * one by one. */
roaring_bitmap_t *engine__nidx_range(const nidx *x, int64_t lo, int64_t hi,
                                     const roaring_bitmap_t *within) {
    if (lo < INT64_MIN + 1) lo = INT64_MIN + 1;
    if (lo > hi) return roaring_bitmap_create();
    int kl = engine__nidx_bin(x, lo), kh = engine__nidx_bin(x, hi);
    if (kl == kh) {
        roaring_bitmap_t *r = roaring_bitmap_create();
        if (r && !edge_add(x, kl, lo, hi, within, r)) {
            roaring_bitmap_free(r);
            r = NULL;
        }
        return r;
    }
    bool lo_whole = x->lb[kl] == lo;
    bool hi_whole = kh + 1 == x->nb ? hi == INT64_MAX : hi + 1 == x->lb[kh + 1];
    int a = lo_whole ? kl : kl + 1, b = hi_whole ? kh + 1 : kh; /* whole bins a .. b-1 */
    roaring_bitmap_t *r = a < b ? and_or_copy(x->cum[a], within) : roaring_bitmap_create();
    if (!r) return NULL;
    if (a < b && b < x->nb) roaring_bitmap_andnot_inplace(r, x->cum[b]);
    if ((!lo_whole && !edge_add(x, kl, lo, hi, within, r)) ||
        (!hi_whole && !edge_add(x, kh, lo, hi, within, r))) {
        roaring_bitmap_free(r);
        return NULL;
    }
    return r;
}

#define CHECK(cond, text)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            *why = text;                                                                           \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

bool engine__nidx_validate(const nidx *x, uint32_t n, const char **why) {
    CHECK(x->nb >= 1 && x->nb <= ENGINE_NBINS && x->lb[0] == INT64_MIN + 1, "numeric bins");
    for (int k = 1; k < x->nb; k++)
        CHECK(x->lb[k - 1] < x->lb[k], "numeric bin bounds not increasing");
    uint32_t cnt[ENGINE_NBINS] = {0};
    for (uint32_t d = 0; d < n; d++) {
        int k = engine__nidx_bin(x, x->v[d]);
        if (k < 0) {
            CHECK(!roaring_bitmap_contains(x->cum[0], d), "a customer without a value in a bin");
            continue;
        }
        cnt[k]++;
        CHECK(roaring_bitmap_contains(x->cum[k], d), "a bin's bitmap lacks one of its values");
        CHECK(k + 1 == x->nb || !roaring_bitmap_contains(x->cum[k + 1], d),
              "a bin's bitmap holds a smaller value");
    }
    for (int k = 0; k < x->nb; k++) {
        CHECK(cnt[k] == x->cnt[k], "numeric bin counts");
        CHECK(k + 1 == x->nb || roaring_bitmap_is_subset(x->cum[k + 1], x->cum[k]),
              "numeric bin bitmaps not nested");
        roaring_bitmap_t *only = roaring_bitmap_copy(x->cum[k]);
        if (k + 1 < x->nb) roaring_bitmap_andnot_inplace(only, x->cum[k + 1]);
        bool same = roaring_bitmap_equals(only, x->bin[k]);
        roaring_bitmap_free(only);
        CHECK(same, "a bin's own bitmap is not its cumulative one minus the next");
    }
    CHECK(roaring_bitmap_is_empty(x->cum[0]) || roaring_bitmap_maximum(x->cum[0]) < n,
          "a numeric bin holds a dense id >= n");
    return true;
}

uint64_t engine__nidx_bytes(const nidx *x) {
    uint64_t b = 0;
    for (int k = 0; k < x->nb; k++)
        b += roaring_bitmap_size_in_bytes(x->cum[k]) + roaring_bitmap_size_in_bytes(x->bin[k]);
    return b;
}

/* ---- event columns --------------------------------------------------------------- */

int engine__ev_init(evcol *c, const char *type, uint32_t ncap) {
    memset(c, 0, sizeof *c);
    c->type = strdup(type);
    c->off = calloc((size_t)ncap + 1, sizeof *c->off);
    c->ovbits = calloc(ncap / 64 + 1, sizeof *c->ovbits);
    c->any = roaring_bitmap_create();
    c->cap_off = ncap;
    if (!c->type || !c->off || !c->ovbits || !c->any) {
        engine__ev_free(c);
        return SIYU_ENOMEM;
    }
    return 0;
}

void engine__ev_free(evcol *c) {
    free(c->type);
    free(c->off);
    free(c->ovbits);
    free(c->ts);
    for (size_t i = 0; i < c->nov_cust; i++)
        free(c->ov[i].ts);
    free(c->ov);
    engine__u32map_free(&c->ovmap);
    if (c->any) roaring_bitmap_free(c->any);
    for (uint32_t i = 0; i < c->ndays; i++)
        if (c->day[i]) roaring_bitmap_free(c->day[i]);
    free(c->day);
    free(c->dmin);
    free(c->dmax);
    memset(c, 0, sizeof *c);
}

int engine__ev_resize(engine *e, uint32_t ncap) {
    for (size_t i = 0; i < e->nev_types; i++) {
        evcol *c = &e->ev[i];
        uint32_t *off = realloc(c->off, ((size_t)ncap + 1) * sizeof *off);
        if (!off) return SIYU_ENOMEM;
        c->off = off;
        size_t had = c->cap_off / 64 + 1, words = ncap / 64 + 1;
        uint64_t *bits = realloc(c->ovbits, words * sizeof *bits);
        if (!bits) return SIYU_ENOMEM;
        if (words > had) memset(bits + had, 0, (words - had) * sizeof *bits);
        c->ovbits = bits;
        c->cap_off = ncap;
    }
    return 0;
}

/* Makes day d (a UTC day number) a slot of c; returns its index or -1. */
static int64_t day_slot(evcol *c, int64_t d) {
    if (c->ndays && d >= c->day0 && d < c->day0 + c->ndays) return d - c->day0;
    int64_t lo = c->ndays ? (d < c->day0 ? d : c->day0) : d;
    int64_t hi = c->ndays ? (d >= c->day0 + c->ndays ? d : c->day0 + c->ndays - 1) : d;
    size_t nn = (size_t)(hi - lo + 1), shift = c->ndays ? (size_t)(c->day0 - lo) : 0;
    roaring_bitmap_t **day = calloc(nn, sizeof *day);
    uint32_t *dmin = malloc(nn * sizeof *dmin), *dmax = malloc(nn * sizeof *dmax);
    if (!day || !dmin || !dmax) {
        free(day);
        free(dmin);
        free(dmax);
        return -1;
    }
    if (c->ndays) {
        memcpy(day + shift, c->day, c->ndays * sizeof *day);
        memcpy(dmin + shift, c->dmin, c->ndays * sizeof *dmin);
        memcpy(dmax + shift, c->dmax, c->ndays * sizeof *dmax);
    }
    free(c->day);
    free(c->dmin);
    free(c->dmax);
    c->day = day, c->dmin = dmin, c->dmax = dmax;
    c->day0 = lo;
    c->ndays = (uint32_t)nn;
    return d - c->day0;
}

static int day_add(evcol *c, uint32_t d, uint32_t ts) {
    int64_t i = day_slot(c, ts / DAY);
    if (i < 0) return SIYU_ENOMEM;
    if (!c->day[i]) {
        if (!(c->day[i] = roaring_bitmap_create())) return SIYU_ENOMEM;
        c->dmin[i] = c->dmax[i] = ts;
    }
    roaring_bitmap_add(c->day[i], d);
    if (ts < c->dmin[i]) c->dmin[i] = ts;
    if (ts > c->dmax[i]) c->dmax[i] = ts;
    return 0;
}

int engine__ev_days_build(evcol *c, uint32_t n) {
    if (c->nbase == 0) return 0;
    uint32_t lo = UINT32_MAX, hi = 0;
    for (uint64_t j = 0; j < c->nbase; j++) {
        if (c->ts[j] < lo) lo = c->ts[j];
        if (c->ts[j] > hi) hi = c->ts[j];
    }
    if (day_slot(c, lo / DAY) < 0 || day_slot(c, hi / DAY) < 0) return SIYU_ENOMEM;
    for (uint32_t d = 0; d < n; d++)
        for (uint32_t j = c->off[d]; j < c->off[d + 1]; j++) {
            int rc = day_add(c, d, c->ts[j]);
            if (rc) return rc;
        }
    for (uint32_t i = 0; i < c->ndays; i++)
        if (c->day[i]) roaring_bitmap_run_optimize(c->day[i]);
    return 0;
}

/* Merges the overlay into the base. */
static int ev_compact(evcol *c, uint32_t n) {
    uint64_t total = c->nbase + c->nov;
    uint32_t *off = malloc((c->cap_off + 1) * sizeof *off);
    uint32_t *ts = malloc((total ? total : 1) * sizeof *ts);
    if (!off || !ts) {
        free(off);
        free(ts);
        return SIYU_ENOMEM;
    }
    uint64_t k = 0;
    for (uint32_t d = 0; d < n; d++) {
        off[d] = (uint32_t)k;
        uint32_t a = c->off[d], z = c->off[d + 1], i = 0;
        uint32_t slot = c->nov ? engine__u32map_get(&c->ovmap, d) : UINT32_MAX;
        const ovec *o = slot != UINT32_MAX ? &c->ov[slot] : NULL;
        uint32_t on = o ? o->n : 0;
        while (a < z || i < on) {
            if (i == on || (a < z && c->ts[a] <= o->ts[i]))
                ts[k++] = c->ts[a++];
            else
                ts[k++] = o->ts[i++];
        }
    }
    off[n] = (uint32_t)k;
    free(c->off);
    free(c->ts);
    c->off = off;
    c->ts = ts;
    c->nbase = k;
    c->cap_ts = total ? total : 1;
    for (size_t i = 0; i < c->nov_cust; i++)
        free(c->ov[i].ts);
    c->nov_cust = 0;
    c->nov = 0;
    engine__u32map_free(&c->ovmap);
    memset(c->ovbits, 0, (c->cap_off / 64 + 1) * sizeof *c->ovbits);
    return 0;
}

int engine__ev_append(evcol *c, uint32_t d, uint32_t ts, uint32_t n) {
    uint32_t slot = engine__u32map_get(&c->ovmap, d);
    if (slot == UINT32_MAX) {
        if (c->nov_cust == c->cap_ov) {
            size_t cap = c->cap_ov ? c->cap_ov * 2 : 64;
            ovec *v = realloc(c->ov, cap * sizeof *v);
            if (!v) return SIYU_ENOMEM;
            c->ov = v;
            c->cap_ov = cap;
        }
        slot = (uint32_t)c->nov_cust;
        memset(&c->ov[slot], 0, sizeof c->ov[slot]);
        if (!engine__u32map_put(&c->ovmap, d, slot)) return SIYU_ENOMEM;
        c->nov_cust++;
        c->ovbits[d / 64] |= 1ULL << (d % 64);
    }
    ovec *o = &c->ov[slot];
    if (o->n == o->cap) {
        uint32_t cap = o->cap ? o->cap * 2 : 4;
        uint32_t *v = realloc(o->ts, cap * sizeof *v);
        if (!v) return SIYU_ENOMEM;
        o->ts = v;
        o->cap = cap;
    }
    uint32_t i = o->n; /* events mostly come in time order: insert from the end */
    while (i > 0 && o->ts[i - 1] > ts) {
        o->ts[i] = o->ts[i - 1];
        i--;
    }
    o->ts[i] = ts;
    o->n++;
    c->nov++;
    roaring_bitmap_add(c->any, d);
    int rc = day_add(c, d, ts);
    if (rc) return rc;
    if (c->nov > c->nbase / 2 + 64) return ev_compact(c, n);
    return 0;
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

static const ovec *ov_of(const evcol *c, uint32_t d) {
    if (!(c->ovbits[d / 64] >> (d % 64) & 1)) return NULL;
    uint32_t slot = engine__u32map_get(&c->ovmap, d);
    return slot == UINT32_MAX ? NULL : &c->ov[slot];
}

static uint32_t span_count(const uint32_t *ts, uint32_t a, uint32_t z, int64_t lo, int64_t hi) {
    uint32_t from = lower(ts, a, z, lo);
    return lower(ts, from, z, hi + 1) - from;
}

uint32_t engine__ev_count(const evcol *c, uint32_t d, int64_t lo, int64_t hi) {
    if (hi > (int64_t)UINT32_MAX) hi = UINT32_MAX;
    if (lo > hi) return 0;
    uint32_t k = span_count(c->ts, c->off[d], c->off[d + 1], lo, hi);
    const ovec *o = ov_of(c, d);
    if (o) k += span_count(o->ts, 0, o->n, lo, hi);
    return k;
}

uint32_t engine__ev_total(const evcol *c, uint32_t d) {
    const ovec *o = ov_of(c, d);
    return c->off[d + 1] - c->off[d] + (o ? o->n : 0);
}

bool engine__ev_first_last(const evcol *c, uint32_t d, int64_t *first, int64_t *last) {
    uint32_t a = c->off[d], z = c->off[d + 1];
    const ovec *o = ov_of(c, d);
    bool any = false;
    if (a < z) {
        *first = c->ts[a], *last = c->ts[z - 1];
        any = true;
    }
    if (o && o->n) {
        if (!any || o->ts[0] < *first) *first = o->ts[0];
        if (!any || o->ts[o->n - 1] > *last) *last = o->ts[o->n - 1];
        any = true;
    }
    return any;
}

roaring_bitmap_t *engine__ev_window(const evcol *c, int64_t lo, int64_t hi,
                                    const roaring_bitmap_t *within) {
    if (lo < 0) lo = 0;
    if (hi > (int64_t)UINT32_MAX) hi = UINT32_MAX;
    if (lo > hi || c->ndays == 0) return roaring_bitmap_create();
    int64_t dlo = lo / DAY, dhi = hi / DAY;
    int64_t from = dlo > c->day0 ? dlo : c->day0;
    int64_t to = dhi < c->day0 + c->ndays - 1 ? dhi : c->day0 + c->ndays - 1;
    const roaring_bitmap_t *full[64], **fv = full;
    size_t nfull = 0, span = to >= from ? (size_t)(to - from + 1) : 0;
    if (span > 64 && !(fv = malloc(span * sizeof *fv))) return NULL;
    int64_t edge[2];
    int nedge = 0;
    for (int64_t d = from; d <= to; d++) {
        uint32_t i = (uint32_t)(d - c->day0);
        if (!c->day[i]) continue;
        if ((d > dlo || c->dmin[i] >= lo) && (d < dhi || c->dmax[i] <= hi))
            fv[nfull++] = c->day[i];
        else
            edge[nedge++] = i;
    }
    uint64_t days = 0;
    for (size_t i = 0; within && i < nfull; i++)
        days += roaring_bitmap_get_cardinality(fv[i]);
    roaring_bitmap_t *r;
    if (within && roaring_bitmap_get_cardinality(within) * nfull < days) {
        /* few candidates (an intersection costs about their number): intersect
         * each day with them, then unite */
        r = roaring_bitmap_create();
        for (size_t i = 0; r && i < nfull; i++) {
            roaring_bitmap_t *t = roaring_bitmap_and(fv[i], within);
            if (!t) {
                roaring_bitmap_free(r);
                r = NULL;
                break;
            }
            roaring_bitmap_or_inplace(r, t);
            roaring_bitmap_free(t);
        }
    } else {
        r = nfull == 0   ? roaring_bitmap_create()
            : nfull == 1 ? roaring_bitmap_copy(fv[0])
                         : roaring_bitmap_or_many(nfull, fv);
        if (r && within) roaring_bitmap_and_inplace(r, within);
    }
    if (fv != full) free(fv);
    if (!r) return NULL;
    uint32_t buf[512], hit[512];
    for (int j = 0; j < nedge; j++) {
        roaring_bitmap_t *cand = and_or_copy(c->day[edge[j]], within);
        if (cand) roaring_bitmap_andnot_inplace(cand, r);
        roaring_uint32_iterator_t *it = cand ? roaring_create_iterator(cand) : NULL;
        if (!it) {
            if (cand) roaring_bitmap_free(cand);
            roaring_bitmap_free(r);
            return NULL;
        }
        for (uint32_t got; (got = roaring_read_uint32_iterator(it, buf, 512)) > 0;) {
            uint32_t h = 0;
            for (uint32_t i = 0; i < got; i++)
                if (engine__ev_count(c, buf[i], lo, hi) > 0) hit[h++] = buf[i];
            roaring_bitmap_add_many(r, h, hit);
        }
        roaring_free_uint32_iterator(it);
        roaring_bitmap_free(cand);
    }
    return r;
}

bool engine__ev_validate(const evcol *c, uint32_t n, const char **why) {
    CHECK(c->off[0] == 0 && c->off[n] == c->nbase, "event offsets do not span the arena");
    for (uint32_t d = 0; d < n; d++) {
        CHECK(c->off[d] <= c->off[d + 1], "event offsets not increasing");
        for (uint32_t j = c->off[d] + 1; j < c->off[d + 1]; j++)
            CHECK(c->ts[j - 1] <= c->ts[j], "event times not sorted");
    }
    uint64_t nov = 0, slots = 0;
    for (size_t i = 0; i < c->ovmap.cap; i++) {
        if (!c->ovmap.keys[i]) continue;
        uint32_t d = c->ovmap.keys[i] - 1, s = c->ovmap.vals[i];
        CHECK(d < n && s < c->nov_cust, "event overlay entry out of range");
        CHECK(c->ovbits[d / 64] >> (d % 64) & 1, "an overlay customer without its bit");
        const ovec *o = &c->ov[s];
        CHECK(o->n > 0, "an empty event overlay vector");
        for (uint32_t j = 1; j < o->n; j++)
            CHECK(o->ts[j - 1] <= o->ts[j], "event overlay times not sorted");
        nov += o->n;
        slots++;
    }
    CHECK(nov == c->nov && slots == c->nov_cust, "event overlay counts");
    uint64_t bits = 0;
    for (size_t i = 0; i < c->cap_off / 64 + 1; i++)
        bits += (uint64_t)__builtin_popcountll(c->ovbits[i]);
    CHECK(bits == slots, "event overlay customer bits");
    /* the customers and the days, rebuilt from the times */
    bool ok = true;
    evcol t;
    memset(&t, 0, sizeof t);
    if (c->ndays && day_slot(&t, c->day0) < 0) ok = false;
    if (ok && c->ndays && day_slot(&t, c->day0 + c->ndays - 1) < 0) ok = false;
    roaring_bitmap_t *any = roaring_bitmap_create();
    for (uint32_t d = 0; ok && d < n; d++) {
        const ovec *o = ov_of(c, d);
        uint32_t a = c->off[d], z = c->off[d + 1], on = o ? o->n : 0;
        if (z > a || on) roaring_bitmap_add(any, d);
        for (uint32_t j = 0; ok && j < (z - a) + on; j++) {
            uint32_t ts = j < z - a ? c->ts[a + j] : o->ts[j - (z - a)];
            int64_t day = ts / DAY;
            if (day < c->day0 || day >= c->day0 + c->ndays || day_add(&t, d, ts) != 0) ok = false;
        }
    }
    const char *bad = ok ? NULL : "event times outside the day range";
    if (!bad && !roaring_bitmap_equals(any, c->any)) bad = "event customer bitmap";
    for (uint32_t i = 0; !bad && i < c->ndays; i++) {
        bool have = c->day[i] && !roaring_bitmap_is_empty(c->day[i]);
        bool want = t.day[i] != NULL;
        if (have != want || (want && !roaring_bitmap_equals(t.day[i], c->day[i])))
            bad = "a day bitmap differs from the event times";
        else if (want && (t.dmin[i] != c->dmin[i] || t.dmax[i] != c->dmax[i]))
            bad = "a day's earliest or latest time";
    }
    roaring_bitmap_free(any);
    engine__ev_free(&t);
    CHECK(!bad, bad);
    return true;
}

uint64_t engine__ev_bytes(const evcol *c, uint32_t ncap) {
    uint64_t b = ((uint64_t)ncap + 1) * 4 + c->cap_ts * 4 + roaring_bitmap_size_in_bytes(c->any);
    b += c->ovmap.cap * 8 + c->cap_ov * sizeof(ovec);
    for (size_t i = 0; i < c->nov_cust; i++)
        b += c->ov[i].cap * 4;
    b += (uint64_t)c->ndays * (8 + 8);
    for (uint32_t i = 0; i < c->ndays; i++)
        if (c->day[i]) b += roaring_bitmap_size_in_bytes(c->day[i]);
    return b;
}
