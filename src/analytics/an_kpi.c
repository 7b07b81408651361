/* an_kpi.c — the seeds' KPIs per period with rolling baselines and alerts
 * (docs/ANALYTICS.md, "KPIs").
 *
 * The relationship figures come from one daily series over every period
 * (an_dash.c); interactions from the engine's per-type windows; first adds
 * and their service and monetization from 30-day funnels (an_funnel.c).
 * A baseline is the median of the `trailing` periods before a period; an
 * alert marks a value worse than the baseline by more than the margin. */
#include <stdlib.h>
#include <string.h>

#include "analytics/an_int.h"
#include "segment/engine_int.h"

#define CONVERSION_WINDOW (30 * ANALYTICS_DAY)

const char *const analytics_kpi_names[AN_KPI__COUNT] = {
    "customer_assets",
    "adds",
    "lost",
    "net",
    "fan_addition_rate",
    "fan_deletion_rate",
    "interaction_rate",
    "customers_first_added",
    "service_success_rate",
    "monetization_success_rate",
};

/* Higher is worse for these. */
static bool worse_up(int k) {
    return k == AN_KPI_LOST || k == AN_KPI_FAN_DEL_RATE;
}

void analytics_kpis_free(analytics_kpis *k) {
    if (!k) return;
    free(k->start);
    free(k->v);
    free(k->baseline);
    free(k->alert);
    memset(k, 0, sizeof *k);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Customers (in `within`, NULL = all) with an interaction (an event of a
 * type other than wecom.*) in [lo, hi]. */
static int64_t interacted(const engine *e, int64_t lo, int64_t hi, const roaring_bitmap_t *within) {
    roaring_bitmap_t *acc = roaring_bitmap_create();
    if (!acc) return -1;
    for (size_t t = 0; t < e->nev_types; t++) {
        if (strncmp(e->ev[t].type, "wecom.", 6) == 0) continue;
        roaring_bitmap_t *w = engine__ev_window(&e->ev[t], lo, hi, within);
        if (!w) {
            roaring_bitmap_free(acc);
            return -1;
        }
        roaring_bitmap_or_inplace(acc, w);
        roaring_bitmap_free(w);
    }
    int64_t n = (int64_t)roaring_bitmap_get_cardinality(acc);
    roaring_bitmap_free(acc);
    return n;
}

static double ratio(int64_t num, int64_t den) {
    return den > 0 ? (double)num / (double)den : -1;
}

int analytics_kpis_run(const analytics *a, const engine *e, const analytics_scope *sc,
                       analytics_period per, size_t n, size_t trailing, double margin, int64_t now,
                       analytics_kpis *out, siyu_err *err) {
    memset(out, 0, sizeof *out);
    if (n < 1 || n > 400) return siyu_err_set(err, SIYU_EINVAL, "periods", "1 to 400");
    if (trailing > 60) return siyu_err_set(err, SIYU_EINVAL, "trailing", "0 to 60");
    if (!(margin >= 0 && margin <= 1)) return siyu_err_set(err, SIYU_EINVAL, "margin", "0 to 1");
    size_t all = n + trailing;
    int32_t today = analytics_day(a, now);
    int32_t *ps = malloc((all + 1) * sizeof *ps);
    double *v = malloc(all * AN_KPI__COUNT * sizeof *v);
    double *tmp = malloc((trailing + 1) * sizeof *tmp);
    analytics_series s = {0};
    int rc = 0;
    if (!ps || !v || !tmp) goto oom;
    for (size_t p = 0; p <= all; p++)
        ps[p] = an__period_start(per, today, (int)(all - 1) - (int)p);
    if ((int64_t)ps[all] - ps[0] + 1 > ANALYTICS_MAX_DAYS) {
        rc = siyu_err_set(err, SIYU_EINVAL, "periods", "at most %d days in all",
                          ANALYTICS_MAX_DAYS - 1);
        goto done;
    }
    /* the day before the first period holds the first start's reach */
    if ((rc = analytics_series_get(a, e, sc, ps[0] - 1, ps[all] - 1, AN_BY_NONE, true, &s, err)))
        goto done;
    const analytics_point *pts = s.g[0].pts;
    for (size_t p = 0; p < all; p++) {
        double *row = v + p * AN_KPI__COUNT;
        size_t a0 = (size_t)(ps[p] - ps[0]) + 1, a1 = (size_t)(ps[p + 1] - ps[0]); /* pts idx */
        int64_t adds = 0, lost = 0, net = 0;
        for (size_t k = a0; k <= a1; k++) {
            adds += pts[k].c[AN_ADDS];
            lost += pts[k].c[AN_LOST_CUSTOMER] + pts[k].c[AN_LOST_EMPLOYEE];
            net += pts[k].net;
        }
        int64_t start = pts[a0 - 1].reachable;
        int64_t lo = analytics_day_start(a, ps[p]), hi = analytics_day_start(a, ps[p + 1]) - 1;
        row[AN_KPI_ASSETS] = (double)pts[a1].reachable;
        row[AN_KPI_ADDS] = (double)adds;
        row[AN_KPI_LOST] = (double)lost;
        row[AN_KPI_NET] = (double)net;
        row[AN_KPI_FAN_ADD_RATE] = ratio(adds, start);
        row[AN_KPI_FAN_DEL_RATE] = ratio(lost, start);
        row[AN_KPI_INTERACTION_RATE] = -1;
        if (sc->all) {
            int64_t in = interacted(e, lo, hi, NULL);
            if (in < 0) goto oom;
            row[AN_KPI_INTERACTION_RATE] = ratio(in, start);
        }
        analytics_funnel_def fd = {.steps = {"add", "message"},
                                   .nsteps = 2,
                                   .from = lo,
                                   .to = hi,
                                   .window = CONVERSION_WINDOW,
                                   .within = sc->all ? NULL : sc->customers};
        analytics_funnel f1, f2;
        if ((rc = analytics_funnel_run(e, &fd, &f1, err))) goto done;
        fd.steps[1] = "order";
        if ((rc = analytics_funnel_run(e, &fd, &f2, err))) {
            analytics_funnel_free(&f1);
            goto done;
        }
        row[AN_KPI_FIRST_ADDED] = (double)f1.count[0];
        row[AN_KPI_SERVICE_RATE] = ratio((int64_t)f1.count[1], (int64_t)f1.count[0]);
        row[AN_KPI_MONETIZATION_RATE] = ratio((int64_t)f2.count[1], (int64_t)f2.count[0]);
        analytics_funnel_free(&f1);
        analytics_funnel_free(&f2);
    }
    out->n = n;
    out->start = malloc(n * sizeof *out->start);
    out->v = malloc(n * AN_KPI__COUNT * sizeof *out->v);
    out->baseline = malloc(n * AN_KPI__COUNT * sizeof *out->baseline);
    out->alert = calloc(n * AN_KPI__COUNT, sizeof *out->alert);
    if (!out->start || !out->v || !out->baseline || !out->alert) goto oom;
    for (size_t i = 0; i < n; i++) {
        size_t p = i + trailing;
        out->start[i] = ps[p];
        for (int k = 0; k < AN_KPI__COUNT; k++) {
            double x = v[p * AN_KPI__COUNT + k], b = -1;
            size_t m = 0;
            for (size_t j = p - trailing; j < p; j++) {
                double y = v[j * AN_KPI__COUNT + k];
                if (y < 0 && k != AN_KPI_NET) break; /* an undefined rate: no baseline */
                tmp[m++] = y;
            }
            if (trailing && m == trailing) {
                qsort(tmp, m, sizeof *tmp, cmp_d);
                b = m % 2 ? tmp[m / 2] : (tmp[m / 2 - 1] + tmp[m / 2]) / 2;
            }
            out->v[i * AN_KPI__COUNT + k] = x;
            out->baseline[i * AN_KPI__COUNT + k] = b;
            bool defined = (x >= 0 || k == AN_KPI_NET) && m == trailing && trailing;
            if (defined && b > 0 && worse_up(k))
                out->alert[i * AN_KPI__COUNT + k] = x > b * (1 + margin);
            else if (defined && b > 0)
                out->alert[i * AN_KPI__COUNT + k] = x < b * (1 - margin);
        }
    }
    goto done;
oom:
    rc = siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
done:
    if (rc) analytics_kpis_free(out);
    analytics_series_free(&s);
    free(ps);
    free(v);
    free(tmp);
    return rc;
}
