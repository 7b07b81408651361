/* an_dash.c — dashboards: daily series by group, rankings, churn per
 * employee, inactive customers (docs/ANALYTICS.md, "Dashboards").
 *
 * A series is read from the per-local-day counters (an_rels.c): a group's
 * day is the sum of the day's counter rows of the employees (or the channel)
 * in the group; the reachable figure at the end of a day is the running sum
 * of the changes from the first day held. Events in a partial scope are
 * counted from the engine's per-customer event columns of the customers in
 * scope. Results are caller-owned (analytics_series_free). */
#include <stdlib.h>
#include <string.h>

#include "analytics/an_int.h"
#include "segment/engine_int.h"

#define WECOM_PREFIX "wecom."

static bool interaction_type(const char *t) {
    return strncmp(t, WECOM_PREFIX, sizeof WECOM_PREFIX - 1) != 0;
}

static int64_t row_net(const int32_t *r) {
    return (int64_t)r[AN_ADDS] - r[AN_LOST_CUSTOMER] - r[AN_LOST_EMPLOYEE] - r[AN_TRANSFERRED] -
           r[AN_ENDED_OTHER];
}

void analytics_series_free(analytics_series *s) {
    if (!s) return;
    for (size_t i = 0; i < s->ngroups; i++) {
        free(s->g[i].pts);
        free(s->g[i].name);
    }
    free(s->g);
    memset(s, 0, sizeof *s);
}

/* Maps every employee index to its group (-1: out of scope), creating the
 * groups; *ng their number, ids[g] their ids. */
static int groups_of_emps(const analytics *a, const analytics_scope *sc, analytics_by by,
                          int32_t *gof, int64_t *ids, size_t *ng) {
    for (uint32_t e = 0; e < a->nemp; e++)
        gof[e] = sc->all ? 0 : -1;
    if (!sc->all)
        for (size_t i = 0; i < sc->n; i++) {
            uint32_t e = an__emp_find(a, sc->emps[i]);
            if (e != UINT32_MAX) gof[e] = 0;
        }
    *ng = 0;
    if (by == AN_BY_NONE) {
        ids[0] = 0;
        *ng = 1;
        return 0;
    }
    for (uint32_t e = 0; e < a->nemp; e++) {
        if (gof[e] < 0) continue;
        int64_t id = by == AN_BY_EMPLOYEE     ? a->emp_id[e]
                     : by == AN_BY_DEPARTMENT ? a->emp_dep[e]
                                              : a->emp_sto[e];
        size_t g = 0;
        if (by != AN_BY_EMPLOYEE)
            while (g < *ng && ids[g] != id)
                g++;
        else
            g = *ng;
        if (g == *ng) ids[(*ng)++] = id;
        gof[e] = (int32_t)g;
    }
    return 0;
}

/* Events per day of the customers in bm, from the engine. */
static void scope_events(const analytics *a, const engine *e, const roaring_bitmap_t *bm,
                         int32_t d0, size_t ndays, bool daily, analytics_point *pts) {
    int64_t lo = analytics_day_start(a, d0), hi = analytics_day_start(a, d0 + (int32_t)ndays) - 1;
    if (lo < 0) lo = 0;
    if (hi > (int64_t)UINT32_MAX) hi = UINT32_MAX;
    if (hi < lo) return;
    for (size_t t = 0; t < e->nev_types; t++) {
        const evcol *c = &e->ev[t];
        bool msg = strcmp(c->type, "message") == 0, inter = interaction_type(c->type);
        if (!msg && !inter) continue;
        roaring_uint32_iterator_t *it = roaring_create_iterator(bm);
        if (!it) return;
        for (; it->has_value; roaring_advance_uint32_iterator(it)) {
            uint32_t d = it->current_value;
            if (d >= e->n) break;
            for (int part = 0; part < 2; part++) {
                const uint32_t *ts;
                uint32_t n;
                if (part == 0) {
                    ts = c->ts + c->off[d];
                    n = c->off[d + 1] - c->off[d];
                } else {
                    if (!(c->ovbits[d / 64] >> (d % 64) & 1)) continue;
                    uint32_t s = engine__u32map_get(&c->ovmap, d);
                    if (s == UINT32_MAX) continue;
                    ts = c->ov[s].ts;
                    n = c->ov[s].n;
                }
                uint32_t i = 0, j = n;
                while (i < j) { /* first ts >= lo */
                    uint32_t m = i + (j - i) / 2;
                    if ((int64_t)ts[m] < lo)
                        i = m + 1;
                    else
                        j = m;
                }
                for (; i < n && (int64_t)ts[i] <= hi; i++) {
                    size_t k = daily ? (size_t)(analytics_day(a, ts[i]) - d0) : 0;
                    if (msg) pts[k].messages++;
                    if (inter) pts[k].interactions++;
                }
            }
        }
        roaring_free_uint32_iterator(it);
    }
}

static void tenant_events(const analytics *a, int32_t day, analytics_point *p) {
    const aday *dy = an__day(a, day);
    if (!dy || !dy->ev) return;
    for (uint32_t t = 0; t < a->ntype; t++) {
        if (strcmp(a->type[t], "message") == 0) p->messages += dy->ev[t];
        if (interaction_type(a->type[t])) p->interactions += dy->ev[t];
    }
}

int analytics_series_get(const analytics *a, const engine *e, const analytics_scope *sc, int32_t d0,
                         int32_t d1, analytics_by by, bool daily, analytics_series *out,
                         siyu_err *err) {
    memset(out, 0, sizeof *out);
    if (d1 < d0) return siyu_err_set(err, SIYU_EINVAL, "to", "must not be before from");
    if ((int64_t)d1 - d0 + 1 > ANALYTICS_MAX_DAYS)
        return siyu_err_set(err, SIYU_EINVAL, "to", "at most %d days", ANALYTICS_MAX_DAYS);
    if (by == AN_BY_CHANNEL && !sc->all)
        return siyu_err_set(err, SIYU_EINVAL, "by",
                            "a breakdown by channel needs the whole tenant in scope");
    size_t ndays = (size_t)(d1 - d0 + 1), npts = daily ? ndays : 1;
    size_t cap = by == AN_BY_CHANNEL ? a->nchan : (a->nemp ? a->nemp : 1);
    int32_t *gof = malloc((a->nemp + 1) * sizeof *gof);
    int64_t *ids = malloc((cap + 1) * sizeof *ids);
    int64_t *reach = NULL;
    int rc = 0;
    if (!gof || !ids) goto oom;
    size_t ng;
    if (by == AN_BY_CHANNEL) {
        ng = a->nchan;
        for (size_t g = 0; g < ng; g++)
            ids[g] = 0;
    } else {
        groups_of_emps(a, sc, by, gof, ids, &ng);
    }
    out->d0 = d0;
    out->d1 = d1;
    out->ndays = npts;
    if (!(out->g = calloc(ng ? ng : 1, sizeof *out->g))) goto oom;
    out->ngroups = ng;
    for (size_t g = 0; g < ng; g++) {
        out->g[g].id = ids[g];
        if (by == AN_BY_CHANNEL && g > 0 && !(out->g[g].name = strdup(a->chan[g]))) goto oom;
        if (!(out->g[g].pts = calloc(npts, sizeof *out->g[g].pts))) goto oom;
        for (size_t k = 0; k < npts; k++)
            out->g[g].pts[k].day = d0 + (int32_t)k;
    }
    bool whole = sc->all && by == AN_BY_NONE;
    if (!(reach = calloc(ng ? ng : 1, sizeof *reach))) goto oom;
    /* The reach at the start of d0: the net of the days before it, or the
     * running total less the net of the days from d0 on (fewer days to read
     * for recent ranges). */
    int32_t last = a->ndays ? a->day0 + (int32_t)a->ndays - 1 : d0 - 1;
    bool suffix = a->ndays && (int64_t)d0 - a->day0 > (int64_t)last - d0;
    if (suffix) {
        if (whole) {
            reach[0] = a->reach_total;
        } else if (by == AN_BY_CHANNEL) {
            for (size_t g = 0; g < ng; g++)
                reach[g] = a->chan_active[g];
        } else {
            for (uint32_t em = 0; em < a->nemp; em++)
                if (gof[em] >= 0) reach[gof[em]] += a->emp_active[em];
        }
    }
    int32_t from = suffix ? d0 : (a->ndays ? a->day0 : d0), to = suffix ? last : d0 - 1;
    int sign = suffix ? -1 : 1;
    for (int32_t day = from; day <= to; day++) {
        const aday *dy = an__day(a, day);
        if (!dy) continue;
        if (whole) {
            reach[0] += sign * dy->reach;
        } else if (by == AN_BY_CHANNEL) {
            if (dy->chan)
                for (size_t g = 0; g < ng; g++)
                    reach[g] += sign * row_net(dy->chan + g * AN__NCOUNT);
        } else if (dy->emp) {
            for (uint32_t em = 0; em < a->nemp; em++)
                if (gof[em] >= 0)
                    reach[gof[em]] += sign * row_net(dy->emp + (size_t)em * AN__NCOUNT);
        }
    }
    for (size_t day = 0; day < ndays; day++) {
        const aday *dy = an__day(a, d0 + (int32_t)day);
        size_t k = daily ? day : 0;
        if (whole) {
            analytics_point *p = &out->g[0].pts[k];
            if (dy) {
                for (int c = 0; c < AN__NCOUNT; c++)
                    p->c[c] += dy->c[c];
                reach[0] += dy->reach;
            }
            p->reachable = reach[0];
            tenant_events(a, d0 + (int32_t)day, p);
        } else if (by == AN_BY_CHANNEL) {
            for (size_t g = 0; g < ng; g++) {
                analytics_point *p = &out->g[g].pts[k];
                if (dy && dy->chan) {
                    const int32_t *r = dy->chan + g * AN__NCOUNT;
                    for (int c = 0; c < AN__NCOUNT; c++)
                        p->c[c] += r[c];
                    reach[g] += row_net(r);
                }
                p->reachable = reach[g];
            }
        } else {
            if (dy && dy->emp)
                for (uint32_t em = 0; em < a->nemp; em++) {
                    if (gof[em] < 0) continue;
                    const int32_t *r = dy->emp + (size_t)em * AN__NCOUNT;
                    analytics_point *p = &out->g[gof[em]].pts[k];
                    for (int c = 0; c < AN__NCOUNT; c++)
                        p->c[c] += r[c];
                    reach[gof[em]] += row_net(r);
                }
            for (size_t g = 0; g < ng; g++)
                out->g[g].pts[k].reachable = reach[g];
        }
    }
    for (size_t g = 0; g < ng; g++) {
        analytics_group *gr = &out->g[g];
        for (size_t k = 0; k < npts; k++) {
            analytics_point *p = &gr->pts[k];
            p->net = p->c[AN_ADDS] - p->c[AN_LOST_CUSTOMER] - p->c[AN_LOST_EMPLOYEE] -
                     p->c[AN_TRANSFERRED] - p->c[AN_ENDED_OTHER];
            for (int c = 0; c < AN__NCOUNT; c++)
                gr->sum[c] += p->c[c];
            gr->net += p->net;
        }
    }
    if (by == AN_BY_NONE && !sc->all && e && sc->customers)
        scope_events(a, e, sc->customers, d0, ndays, daily, out->g[0].pts);
    goto done;
oom:
    rc = siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    analytics_series_free(out);
done:
    free(gof);
    free(ids);
    free(reach);
    return rc;
}

typedef struct rank_ctx {
    const analytics_series *s;
    int key;
    bool desc;
} rank_ctx;

static int64_t rank_key(const analytics_group *g, int key) {
    return key == AN__NCOUNT ? g->net : g->sum[key];
}

static void sort_idx(size_t *v, size_t n, const rank_ctx *c) {
    /* insertion into a bounded top list is enough for n <= a few thousand;
     * use qsort-like merge via simple heap-free approach */
    for (size_t i = 1; i < n; i++) {
        size_t x = v[i], j = i;
        const analytics_group *gx = &c->s->g[x];
        while (j > 0) {
            const analytics_group *gy = &c->s->g[v[j - 1]];
            int64_t kx = rank_key(gx, c->key), ky = rank_key(gy, c->key);
            bool before = c->desc ? kx > ky : kx < ky;
            if (!before && kx == ky) before = gx->id < gy->id;
            if (!before) break;
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

void analytics_series_rank(const analytics_series *s, int key, bool desc, size_t n, size_t *idx,
                           size_t *nidx) {
    rank_ctx c = {s, key, desc};
    /* keep the best n in idx[0..n) by insertion */
    size_t k = 0;
    for (size_t g = 0; g < s->ngroups; g++) {
        if (k < n) {
            idx[k++] = g;
            sort_idx(idx, k, &c);
            continue;
        }
        if (n == 0) break;
        const analytics_group *gx = &s->g[g], *gl = &s->g[idx[n - 1]];
        int64_t kx = rank_key(gx, key), kl = rank_key(gl, key);
        bool better = desc ? kx > kl : kx < kl;
        if (!better && kx == kl) better = gx->id < gl->id;
        if (better) {
            idx[n - 1] = g;
            sort_idx(idx, n, &c);
        }
    }
    *nidx = k;
}

int analytics_churn(const analytics *a, const analytics_scope *sc, int32_t last, int days,
                    analytics_churn_row **out, size_t *n, siyu_err *err) {
    *out = NULL;
    *n = 0;
    if (days < 1 || days > ANALYTICS_MAX_DAYS)
        return siyu_err_set(err, SIYU_EINVAL, "days", "must be 1..%d", ANALYTICS_MAX_DAYS);
    int32_t first = last - days + 1;
    /* per employee: lost_customer, lost_employee, active before the window,
     * adds within */
    int64_t(*v)[4] = calloc(a->nemp ? a->nemp : 1, sizeof *v);
    analytics_churn_row *rows = calloc(a->nemp ? a->nemp : 1, sizeof *rows);
    if (!v || !rows) {
        free(v);
        free(rows);
        return siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    }
    for (uint32_t i = 0; i < a->ndays; i++) {
        int32_t day = a->day0 + (int32_t)i;
        const int32_t *er = a->days[i].emp;
        if (day > last) break;
        if (!er) continue;
        for (uint32_t em = 0; em < a->nemp; em++) {
            const int32_t *r = er + (size_t)em * AN__NCOUNT;
            if (day < first) {
                v[em][2] += row_net(r);
            } else {
                v[em][0] += r[AN_LOST_CUSTOMER];
                v[em][1] += r[AN_LOST_EMPLOYEE];
                v[em][3] += r[AN_ADDS];
            }
        }
    }
    size_t k = 0;
    for (uint32_t em = 0; em < a->nemp; em++) {
        bool in = sc->all;
        for (size_t i = 0; i < sc->n && !in; i++)
            in = sc->emps[i] == a->emp_id[em];
        if (!in) continue;
        analytics_churn_row *r = &rows[k++];
        r->employee_id = a->emp_id[em];
        r->department_id = a->emp_dep[em];
        r->lost_customer = v[em][0];
        r->lost_employee = v[em][1];
        r->base = v[em][2] + v[em][3];
        r->rate =
            r->base > 0 ? (double)(r->lost_customer + r->lost_employee) / (double)r->base : -1;
        int64_t tl = 0, tb = 0;
        for (uint32_t o = 0; o < a->nemp; o++)
            if (a->emp_dep[o] == a->emp_dep[em]) {
                tl += v[o][0] + v[o][1];
                tb += v[o][2] + v[o][3];
            }
        r->team_rate = tb > 0 ? (double)tl / (double)tb : -1;
    }
    free(v);
    *out = rows;
    *n = k;
    return 0;
}

roaring_bitmap_t *analytics_inactive(const engine *e, int64_t emp, int64_t now, int days) {
    const roaring_bitmap_t *mine = engine_members(e, EXPR_DIM_EMPLOYEE, emp);
    if (!mine) return roaring_bitmap_create();
    roaring_bitmap_t *active = engine__nidx_range(
        &e->num[EXPR_ATTR_LAST_ACTIVE], now - (int64_t)days * ANALYTICS_DAY, INT64_MAX, mine);
    if (!active) return NULL;
    roaring_bitmap_t *r = roaring_bitmap_andnot(mine, active);
    roaring_bitmap_free(active);
    return r;
}
