/* report.c — `siyu report dashboard|funnel|cohort|rfm|churn|kpi`: analytics
 * of one tenant printed as tables on a terminal, or as one JSON object with
 * --json (docs/ANALYTICS.md defines every figure).
 *
 * Works on the data directory, with or without the server running: builds
 * the tenant's segment engine and analytics object from a read snapshot of
 * the store, computes the view, prints it. Nothing is written. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "analytics/analytics.h"
#include "cli/cli.h"
#include "segment/engine.h"
#include "store/store.h"
#include "util/log.h"

static const char report_usage[] =
    "usage: siyu report VIEW --data DIR --tenant ID [options] [--json]\n"
    "  VIEW is one of:\n"
    "    dashboard  daily adds, losses, net, reachable, messages, interactions\n"
    "               [--from DATE --to DATE] [--by employee|department|store|channel --top N]\n"
    "    funnel     [--steps add,view,share,order] [--window DAYS] [--from DATE --to DATE]\n"
    "               [--by employee|store|channel] (top 20 values per step)\n"
    "    cohort     [--period week|month] [--periods N] [--retention active|purchased|contact]\n"
    "    rfm        [--freq-min N] [--aov-min YUAN]\n"
    "    churn      [--days N] [--to DATE] [--top N]\n"
    "    cac        [--from DATE --to DATE] acquisition spend, adds and CAC per channel\n"
    "    assets     customers reachable per touchpoint (WeCom contact, group, and each\n"
    "               event touchpoint: props.touchpoint or the event's source), de-duplicated\n"
    "    kpi        [--period day|week|month] [--periods N] [--trailing N] [--margin PCT]\n"
    "               each KPI with its baseline (median of the N trailing periods) and an\n"
    "               ALERT when worse than the baseline by more than PCT percent\n"
    "  Dates are YYYY-MM-DD in the tenant's time zone (Asia/Shanghai); --to defaults to\n"
    "  today, --from to 30 days before --to. --now UNIX_SECONDS fixes \"now\".\n"
    "  --json prints one JSON object instead of tables.\n";

typedef struct rctx {
    store *st;
    engine *e;
    analytics *a;
    int64_t tenant, now;
    int32_t from, to;
    bool json;
    int argc;
    char **argv;
} rctx;

static const char *flag(rctx *c, const char *name) {
    return cli_flag(c->argc, c->argv, name);
}

static long flag_long(rctx *c, const char *name, long def, long lo, long hi, bool *ok) {
    const char *v = flag(c, name);
    if (!v) return def;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || end == v || x < lo || x > hi) {
        fprintf(stderr, "siyu report: --%s must be %ld..%ld\n", name, lo, hi);
        *ok = false;
    }
    return x;
}

/* A record's name (employee, department, store), or "" (static buffer). */
static const char *rec_name(rctx *c, const char *table, int64_t id) {
    static char buf[128];
    buf[0] = 0;
    if (!id) return "(none)";
    store_conn *conn = store_reader_acquire(c->st);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT coalesce(name, '') FROM %s WHERE tenant_id = ? AND id = ?",
             table);
    sqlite3_stmt *s = conn ? store_conn_stmt(conn, sql) : NULL;
    if (s) {
        sqlite3_bind_int64(s, 1, c->tenant);
        sqlite3_bind_int64(s, 2, id);
        if (sqlite3_step(s) == SQLITE_ROW)
            snprintf(buf, sizeof buf, "%s", (const char *)sqlite3_column_text(s, 0));
        sqlite3_reset(s);
    }
    if (conn) store_reader_release(c->st, conn);
    return buf;
}

static void print_json(json_t *o) {
    char *t = json_dumps(o, JSON_COMPACT);
    printf("%s\n", t ? t : "{}");
    free(t);
    json_decref(o);
}

static void date_str(int32_t day, char *buf) {
    analytics_day_format(day, buf);
}

/* Group joins and quits per local day d0..d1 from the store (group_member
 * keeps each member's latest join and leave). out: [ndays][2]. */
static void group_moves(rctx *c, int32_t d0, int32_t d1, int64_t (*out)[2]) {
    store_conn *conn = store_reader_acquire(c->st);
    sqlite3_stmt *s =
        conn ? store_conn_stmt(conn, "SELECT (joined_at + ?4) / 86400, 0 FROM group_member "
                                     "WHERE tenant_id = ?1 AND joined_at BETWEEN ?2 AND ?3 "
                                     "UNION ALL SELECT (left_at + ?4) / 86400, 1 FROM "
                                     "group_member WHERE tenant_id = ?1 AND status = 'left' AND "
                                     "left_at BETWEEN ?2 AND ?3")
             : NULL;
    if (s) {
        sqlite3_bind_int64(s, 1, c->tenant);
        sqlite3_bind_int64(s, 2, analytics_day_start(c->a, d0));
        sqlite3_bind_int64(s, 3, analytics_day_start(c->a, d1 + 1) - 1);
        sqlite3_bind_int64(s, 4, ANALYTICS_TZ_DEFAULT);
        while (sqlite3_step(s) == SQLITE_ROW) {
            int64_t k = sqlite3_column_int64(s, 0) - d0;
            if (k >= 0 && k <= d1 - d0) out[k][sqlite3_column_int(s, 1)]++;
        }
        sqlite3_reset(s);
    }
    if (conn) store_reader_release(c->st, conn);
}

/* ---- dashboard ------------------------------------------------------------------ */

static const char *by_names[] = {"", "employee", "department", "store", "channel"};

static int view_dashboard(rctx *c) {
    bool ok = true;
    analytics_by by = AN_BY_NONE;
    const char *b = flag(c, "by");
    if (b) {
        for (int i = 1; i < 5; i++)
            if (!strcmp(b, by_names[i])) by = (analytics_by)i;
        if (by == AN_BY_NONE) {
            fprintf(stderr, "siyu report: --by must be employee, department, store or channel\n");
            return 2;
        }
    }
    long top = flag_long(c, "top", 20, 1, 100000, &ok);
    if (!ok) return 2;
    analytics_scope all = {.all = true};
    analytics_series s;
    siyu_err err = {0};
    if (analytics_series_get(c->a, c->e, &all, c->from, c->to, by, by == AN_BY_NONE, &s, &err)) {
        fprintf(stderr, "siyu report: %s\n", err.msg);
        return 1;
    }
    char d[11];
    if (by == AN_BY_NONE) {
        int64_t(*gm)[2] = calloc(s.ndays, sizeof *gm);
        if (!gm) {
            analytics_series_free(&s);
            return 1;
        }
        group_moves(c, c->from, c->to, gm);
        json_t *days = json_array();
        if (!c->json)
            printf("%-10s %8s %8s %8s %8s %8s %10s %9s %12s %6s %6s\n", "date", "adds", "lost_cus",
                   "lost_emp", "transfer", "net", "reachable", "messages", "interactions", "g_join",
                   "g_quit");
        for (size_t k = 0; k < s.ndays; k++) {
            const analytics_point *p = &s.g[0].pts[k];
            date_str(p->day, d);
            if (c->json)
                json_array_append_new(
                    days, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "date", d,
                                    "adds", (json_int_t)p->c[AN_ADDS], "lost_by_customer",
                                    (json_int_t)p->c[AN_LOST_CUSTOMER], "lost_by_employee",
                                    (json_int_t)p->c[AN_LOST_EMPLOYEE], "transferred",
                                    (json_int_t)p->c[AN_TRANSFERRED], "net", (json_int_t)p->net,
                                    "reachable", (json_int_t)p->reachable, "messages",
                                    (json_int_t)p->messages, "interactions",
                                    (json_int_t)p->interactions, "group_joins",
                                    (json_int_t)gm[k][0], "group_quits", (json_int_t)gm[k][1]));
            else
                printf("%-10s %8lld %8lld %8lld %8lld %8lld %10lld %9lld %12lld %6lld %6lld\n", d,
                       (long long)p->c[AN_ADDS], (long long)p->c[AN_LOST_CUSTOMER],
                       (long long)p->c[AN_LOST_EMPLOYEE], (long long)p->c[AN_TRANSFERRED],
                       (long long)p->net, (long long)p->reachable, (long long)p->messages,
                       (long long)p->interactions, (long long)gm[k][0], (long long)gm[k][1]);
        }
        free(gm);
        if (c->json)
            print_json(json_pack("{s:s,s:o}", "view", "dashboard", "days", days));
        else
            json_decref(days);
        analytics_series_free(&s);
        return 0;
    }
    size_t *idx = malloc((s.ngroups ? s.ngroups : 1) * sizeof *idx), n = 0;
    if (!idx) {
        analytics_series_free(&s);
        return 1;
    }
    analytics_series_rank(&s, AN__NCOUNT, true, (size_t)top, idx, &n);
    static const char *const table[] = {"", "employee", "department", "store", ""};
    json_t *rows = json_array();
    if (!c->json)
        printf("%-8s %-20s %8s %8s %8s %8s %8s %10s\n", "id", by_names[by], "adds", "lost_cus",
               "lost_emp", "transfer", "net", "reachable");
    for (size_t i = 0; i < n; i++) {
        const analytics_group *g = &s.g[idx[i]];
        const char *name =
            by == AN_BY_CHANNEL ? (g->name ? g->name : "(none)") : rec_name(c, table[by], g->id);
        if (c->json)
            json_array_append_new(
                rows, json_pack("{s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "id", (json_int_t)g->id,
                                "name", name, "adds", (json_int_t)g->sum[AN_ADDS],
                                "lost_by_customer", (json_int_t)g->sum[AN_LOST_CUSTOMER],
                                "lost_by_employee", (json_int_t)g->sum[AN_LOST_EMPLOYEE],
                                "transferred", (json_int_t)g->sum[AN_TRANSFERRED], "net",
                                (json_int_t)g->net, "reachable", (json_int_t)g->pts[0].reachable));
        else
            printf("%-8lld %-20.20s %8lld %8lld %8lld %8lld %8lld %10lld\n", (long long)g->id, name,
                   (long long)g->sum[AN_ADDS], (long long)g->sum[AN_LOST_CUSTOMER],
                   (long long)g->sum[AN_LOST_EMPLOYEE], (long long)g->sum[AN_TRANSFERRED],
                   (long long)g->net, (long long)g->pts[0].reachable);
    }
    char f[11], t[11];
    date_str(c->from, f);
    date_str(c->to, t);
    if (c->json)
        print_json(json_pack("{s:s,s:s,s:s,s:s,s:o}", "view", "dashboard", "by", by_names[by],
                             "from", f, "to", t, "groups", rows));
    else
        json_decref(rows);
    free(idx);
    analytics_series_free(&s);
    return 0;
}

/* ---- funnel ------------------------------------------------------------------------ */

static int view_funnel(rctx *c) {
    bool ok = true;
    long window = flag_long(c, "window", 7, 1, 366, &ok);
    if (!ok) return 2;
    char steps[512];
    snprintf(steps, sizeof steps, "%s",
             flag(c, "steps") ? flag(c, "steps") : "add,view,share,order");
    analytics_funnel_def def = {.from = analytics_day_start(c->a, c->from),
                                .to = analytics_day_start(c->a, c->to + 1) - 1,
                                .window = window * ANALYTICS_DAY};
    for (char *sv = NULL, *tok = strtok_r(steps, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv)) {
        if (def.nsteps == ANALYTICS_FUNNEL_MAX) {
            fprintf(stderr, "siyu report: at most %d steps\n", ANALYTICS_FUNNEL_MAX);
            return 2;
        }
        def.steps[def.nsteps++] = tok;
    }
    analytics_funnel f;
    siyu_err err = {0};
    if (analytics_funnel_run(c->e, &def, &f, &err) != 0) {
        fprintf(stderr, "siyu report: --%s: %s\n", err.field[0] ? err.field : "steps", err.msg);
        return 2;
    }
    json_t *rows = json_array();
    if (!c->json)
        printf("%-4s %-20s %10s %9s %9s %14s\n", "step", "type", "customers", "of prev", "of first",
               "median time");
    for (size_t k = 0; k < f.nsteps; k++) {
        double prev =
            k == 0 || f.count[k - 1] == 0 ? 1.0 : (double)f.count[k] / (double)f.count[k - 1];
        double first = f.count[0] ? (double)f.count[k] / (double)f.count[0] : 0;
        if (c->json) {
            json_array_append_new(
                rows, json_pack("{s:i,s:s,s:I,s:f,s:f,s:o}", "step", (int)k + 1, "type",
                                def.steps[k], "customers", (json_int_t)f.count[k], "conversion",
                                prev, "conversion_from_first", first, "median_seconds",
                                f.median_s[k] < 0 ? json_null() : json_integer(f.median_s[k])));
        } else {
            char med[32] = "-";
            if (f.median_s[k] >= 0)
                snprintf(med, sizeof med, "%.1f h", (double)f.median_s[k] / 3600.0);
            printf("%-4zu %-20.20s %10llu %8.1f%% %8.1f%% %14s\n", k + 1, def.steps[k],
                   (unsigned long long)f.count[k], prev * 100, first * 100, med);
        }
    }
    /* a breakdown of each step's customers by employee, store or channel */
    const char *by = flag(c, "by");
    json_t *bys = NULL;
    if (by) {
        expr_dim dim = !strcmp(by, "employee")  ? EXPR_DIM_EMPLOYEE
                       : !strcmp(by, "store")   ? EXPR_DIM_STORE
                       : !strcmp(by, "channel") ? EXPR_DIM_CHANNEL
                                                : EXPR_DIM__COUNT;
        if (dim == EXPR_DIM__COUNT) {
            fprintf(stderr, "siyu report: --by must be employee, store or channel\n");
            json_decref(rows);
            analytics_funnel_free(&f);
            return 2;
        }
        bys = json_array();
        engine_bucket b[20];
        for (size_t k = 0; k < f.nsteps; k++) {
            size_t nb = 0;
            json_t *vals = json_array();
            if (engine_breakdown(c->e, f.reached[k], dim, 20, b, &nb) != 0) nb = 0;
            if (!c->json) printf("step %zu by %s:", k + 1, by);
            for (size_t i = 0; i < nb; i++) {
                if (c->json)
                    json_array_append_new(vals, json_pack("{s:I,s:s?,s:I}", "id",
                                                          (json_int_t)b[i].id, "name", b[i].name,
                                                          "customers", (json_int_t)b[i].count));
                else
                    printf("  %s %llu", b[i].name ? b[i].name : "?",
                           (unsigned long long)b[i].count);
            }
            if (!c->json) printf("\n");
            json_array_append_new(bys, vals);
        }
    }
    if (c->json) {
        json_t *o = json_pack("{s:s,s:I,s:o}", "view", "funnel", "window_days", (json_int_t)window,
                              "steps", rows);
        if (bys) json_object_set_new(o, "by", bys);
        print_json(o);
    } else {
        json_decref(rows);
        if (bys) json_decref(bys);
    }
    analytics_funnel_free(&f);
    return 0;
}

/* ---- cohort ------------------------------------------------------------------------- */

static int view_cohort(rctx *c) {
    bool ok = true;
    long n = flag_long(c, "periods", 12, 1, ANALYTICS_COHORTS_MAX, &ok);
    if (!ok) return 2;
    const char *p = flag(c, "period"), *r = flag(c, "retention");
    analytics_period per = AN_WEEK;
    if (p && !strcmp(p, "month"))
        per = AN_MONTH;
    else if (p && strcmp(p, "week")) {
        fprintf(stderr, "siyu report: --period must be week or month\n");
        return 2;
    }
    analytics_retention ret = AN_RET_ACTIVE;
    if (r && !strcmp(r, "purchased"))
        ret = AN_RET_PURCHASED;
    else if (r && !strcmp(r, "contact"))
        ret = AN_RET_CONTACT;
    else if (r && strcmp(r, "active")) {
        fprintf(stderr, "siyu report: --retention must be active, purchased or contact\n");
        return 2;
    }
    analytics_cohort co;
    siyu_err err = {0};
    if (analytics_cohort_run(c->a, c->e, NULL, per, (size_t)n, c->now, ret, &co, &err) != 0) {
        fprintf(stderr, "siyu report: %s\n", err.msg);
        return 1;
    }
    json_t *rows = json_array();
    if (!c->json) {
        printf("%-10s %9s", "cohort", "size");
        for (long k = 0; k < n; k++)
            printf(" %5s%ld", per == AN_WEEK ? "w" : "m", k);
        printf("\n");
    }
    for (size_t i = 0; i < co.n; i++) {
        char d[11];
        date_str(co.start[i], d);
        json_t *cells = json_array();
        if (!c->json) printf("%-10s %9llu", d, (unsigned long long)co.size[i]);
        for (size_t k = 0; k + i < co.n; k++) {
            uint64_t v = co.cell[i * co.n + k];
            if (c->json)
                json_array_append_new(cells, json_integer((json_int_t)v));
            else
                printf(" %5.1f%%", co.size[i] ? 100.0 * (double)v / (double)co.size[i] : 0.0);
        }
        if (!c->json) printf("\n");
        if (c->json)
            json_array_append_new(rows, json_pack("{s:s,s:I,s:o}", "start", d, "size",
                                                  (json_int_t)co.size[i], "retained", cells));
        else
            json_decref(cells);
    }
    static const char *const rn[] = {"active", "purchased", "contact"};
    if (c->json)
        print_json(json_pack("{s:s,s:s,s:s,s:o}", "view", "cohort", "period",
                             per == AN_WEEK ? "week" : "month", "retention", rn[ret], "cohorts",
                             rows));
    else
        json_decref(rows);
    analytics_cohort_free(&co);
    return 0;
}

/* ---- rfm ------------------------------------------------------------------------------ */

static int view_rfm(rctx *c) {
    bool ok = true;
    long fmin = flag_long(c, "freq-min", 0, 0, 1000000, &ok);
    long aov = flag_long(c, "aov-min", 0, 0, 100000000, &ok);
    if (!ok) return 2;
    analytics_rfm_def def = {.now = c->now, .freq_min = fmin, .aov_min_cents = aov * 100};
    analytics_rfm r;
    siyu_err err = {0};
    if (analytics_rfm_run(c->e, &def, &r, &err) != 0) {
        fprintf(stderr, "siyu report: %s\n", err.msg);
        return 1;
    }
    static const char *const qn[4] = {
        "low frequency, low unit price", "low frequency, high unit price",
        "high frequency, low unit price", "high frequency, high unit price"};
    if (c->json) {
        json_t *sc = json_array();
        for (int k = 0; k < 5; k++)
            json_array_append_new(sc, json_pack("{s:i,s:I,s:I,s:I}", "score", k + 1, "recency",
                                                (json_int_t)r.r_count[k], "frequency",
                                                (json_int_t)r.f_count[k], "monetary",
                                                (json_int_t)r.m_count[k]));
        json_t *q = json_array();
        for (int k = 0; k < 4; k++)
            json_array_append_new(q, json_pack("{s:s,s:I}", "quadrant", qn[k], "customers",
                                               (json_int_t)r.quad_count[k]));
        print_json(json_pack(
            "{s:s,s:I,s:[I,I,I,I],s:[I,I,I,I],s:[I,I,I,I],s:I,s:I,s:o,s:o}", "view", "rfm",
            "buyers", (json_int_t)r.buyers, "recency_days", (json_int_t)r.r_days[0],
            (json_int_t)r.r_days[1], (json_int_t)r.r_days[2], (json_int_t)r.r_days[3], "frequency",
            (json_int_t)r.f[0], (json_int_t)r.f[1], (json_int_t)r.f[2], (json_int_t)r.f[3],
            "monetary_cents", (json_int_t)r.m_cents[0], (json_int_t)r.m_cents[1],
            (json_int_t)r.m_cents[2], (json_int_t)r.m_cents[3], "freq_min", (json_int_t)r.freq_min,
            "aov_min_cents", (json_int_t)r.aov_min_cents, "scores", sc, "quadrants", q));
    } else {
        printf("buyers %llu\n", (unsigned long long)r.buyers);
        printf("thresholds (scores 2..5): recency <= %lld/%lld/%lld/%lld days, frequency >= "
               "%lld/%lld/%lld/%lld, monetary >= %.2f/%.2f/%.2f/%.2f yuan\n",
               (long long)r.r_days[0], (long long)r.r_days[1], (long long)r.r_days[2],
               (long long)r.r_days[3], (long long)r.f[0], (long long)r.f[1], (long long)r.f[2],
               (long long)r.f[3], r.m_cents[0] / 100.0, r.m_cents[1] / 100.0, r.m_cents[2] / 100.0,
               r.m_cents[3] / 100.0);
        printf("%-6s %10s %10s %10s\n", "score", "recency", "frequency", "monetary");
        for (int k = 0; k < 5; k++)
            printf("%-6d %10llu %10llu %10llu\n", k + 1, (unsigned long long)r.r_count[k],
                   (unsigned long long)r.f_count[k], (unsigned long long)r.m_count[k]);
        printf("quadrants (frequency >= %lld, unit price >= %.2f yuan):\n", (long long)r.freq_min,
               r.aov_min_cents / 100.0);
        for (int k = 0; k < 4; k++)
            printf("  %-34s %10llu\n", qn[k], (unsigned long long)r.quad_count[k]);
    }
    analytics_rfm_free(&r);
    return 0;
}

/* ---- churn ------------------------------------------------------------------------------ */

static int cmp_rate(const void *x, const void *y) {
    const analytics_churn_row *a = x, *b = y;
    if (a->rate != b->rate) return a->rate < b->rate ? 1 : -1;
    return a->employee_id < b->employee_id ? -1 : a->employee_id > b->employee_id;
}

static int view_churn(rctx *c) {
    bool ok = true;
    long days = flag_long(c, "days", 30, 1, ANALYTICS_MAX_DAYS, &ok);
    long top = flag_long(c, "top", 20, 1, 100000, &ok);
    if (!ok) return 2;
    analytics_scope all = {.all = true};
    analytics_churn_row *rows;
    size_t n;
    siyu_err err = {0};
    if (analytics_churn(c->a, &all, c->to, (int)days, &rows, &n, &err) != 0) {
        fprintf(stderr, "siyu report: %s\n", err.msg);
        return 1;
    }
    qsort(rows, n, sizeof *rows, cmp_rate);
    if ((size_t)top < n) n = (size_t)top;
    json_t *arr = json_array();
    if (!c->json)
        printf("%-8s %-20s %8s %8s %8s %8s %9s\n", "id", "employee", "lost_cus", "lost_emp", "base",
               "rate", "team rate");
    for (size_t i = 0; i < n; i++) {
        const analytics_churn_row *r = &rows[i];
        const char *name = rec_name(c, "employee", r->employee_id);
        if (c->json)
            json_array_append_new(
                arr, json_pack("{s:I,s:s,s:I,s:I,s:I,s:o,s:o}", "employee_id",
                               (json_int_t)r->employee_id, "name", name, "lost_by_customer",
                               (json_int_t)r->lost_customer, "lost_by_employee",
                               (json_int_t)r->lost_employee, "base", (json_int_t)r->base, "rate",
                               r->rate < 0 ? json_null() : json_real(r->rate), "team_rate",
                               r->team_rate < 0 ? json_null() : json_real(r->team_rate)));
        else
            printf("%-8lld %-20.20s %8lld %8lld %8lld %7.1f%% %8.1f%%\n", (long long)r->employee_id,
                   name, (long long)r->lost_customer, (long long)r->lost_employee,
                   (long long)r->base, r->rate < 0 ? 0 : r->rate * 100,
                   r->team_rate < 0 ? 0 : r->team_rate * 100);
    }
    if (c->json)
        print_json(json_pack("{s:s,s:I,s:o}", "view", "churn", "days", (json_int_t)days,
                             "employees", arr));
    else
        json_decref(arr);
    free(rows);
    return 0;
}

/* ---- kpi ------------------------------------------------------------------------------------ */

static int view_kpi(rctx *c) {
    bool ok = true;
    const char *p = flag(c, "period");
    analytics_period per = AN_WEEK;
    if (p && !strcmp(p, "day"))
        per = AN_DAY;
    else if (p && !strcmp(p, "month"))
        per = AN_MONTH;
    else if (p && strcmp(p, "week")) {
        fprintf(stderr, "siyu report: --period must be day, week or month\n");
        return 2;
    }
    long n = flag_long(c, "periods", 8, 1, 400, &ok);
    long trailing = flag_long(c, "trailing", 4, 0, 60, &ok);
    long margin = flag_long(c, "margin", 20, 0, 100, &ok);
    if (!ok) return 2;
    analytics_scope all = {.all = true};
    analytics_kpis k;
    siyu_err err = {0};
    if (analytics_kpis_run(c->a, c->e, &all, per, (size_t)n, (size_t)trailing,
                           (double)margin / 100.0, c->now, &k, &err) != 0) {
        fprintf(stderr, "siyu report: --%s: %s\n", err.field[0] ? err.field : "periods", err.msg);
        return err.code == SIYU_EINVAL ? 2 : 1;
    }
    json_t *rows = json_array();
    for (size_t i = 0; i < k.n; i++) {
        char d[11];
        date_str(k.start[i], d);
        json_t *o = json_pack("{s:s}", "start", d);
        json_t *alerts = json_array();
        if (!c->json) printf("%s\n", d);
        for (int q = 0; q < AN_KPI__COUNT; q++) {
            double v = k.v[i * AN_KPI__COUNT + q], b = k.baseline[i * AN_KPI__COUNT + q];
            bool al = k.alert[i * AN_KPI__COUNT + q];
            bool undef = v < 0 && q != AN_KPI_NET;
            json_object_set_new(o, analytics_kpi_names[q], undef ? json_null() : json_real(v));
            if (al) json_array_append_new(alerts, json_string(analytics_kpi_names[q]));
            if (c->json) continue;
            char vs[32] = "-", bs[32] = "-";
            bool rate = q >= AN_KPI_FAN_ADD_RATE && q != AN_KPI_FIRST_ADDED;
            if (!undef) snprintf(vs, sizeof vs, rate ? "%.2f%%" : "%.0f", rate ? v * 100 : v);
            if (b >= 0 || (q == AN_KPI_NET && b != -1))
                snprintf(bs, sizeof bs, rate ? "%.2f%%" : "%.1f", rate ? b * 100 : b);
            printf("  %-26s %12s   baseline %10s%s\n", analytics_kpi_names[q], vs, bs,
                   al ? "   ALERT" : "");
        }
        json_object_set_new(o, "alerts", alerts);
        json_array_append_new(rows, o);
    }
    static const char *const pn[] = {"week", "month", "day"};
    if (c->json)
        print_json(json_pack("{s:s,s:s,s:I,s:f,s:o}", "view", "kpi", "period", pn[per], "trailing",
                             (json_int_t)trailing, "margin", (double)margin / 100.0, "periods",
                             rows));
    else
        json_decref(rows);
    analytics_kpis_free(&k);
    return 0;
}

/* ---- user asset table ---------------------------------------------------------------- */

static int view_assets(rctx *c) {
    store_conn *conn = store_reader_acquire(c->st);
    sqlite3_stmt *s =
        conn ? store_conn_stmt(
                   conn,
                   "WITH t(customer_id, tp) AS (SELECT customer_id, 'wecom_contact' FROM "
                   "relationship WHERE tenant_id = ?1 AND status = 'active' UNION SELECT "
                   "m.customer_id, 'wecom_group' FROM group_member m JOIN group_chat g ON g.id = "
                   "m.group_id WHERE m.tenant_id = ?1 AND m.status = 'in' AND g.status = 'active' "
                   "AND m.customer_id IS NOT NULL UNION SELECT customer_id, coalesce(CASE WHEN "
                   "json_valid(props) THEN json_extract(props, '$.touchpoint') END, source) FROM "
                   "event WHERE tenant_id = ?1 AND customer_id IS NOT NULL) "
                   "SELECT tp, count(DISTINCT customer_id) FROM t GROUP BY tp "
                   "UNION ALL SELECT NULL, count(DISTINCT customer_id) FROM t ORDER BY 1")
             : NULL;
    if (!s) {
        if (conn) store_reader_release(c->st, conn);
        fprintf(stderr, "siyu report: cannot read the store\n");
        return 1;
    }
    sqlite3_bind_int64(s, 1, c->tenant);
    json_t *rows = json_array();
    long long total = 0;
    if (!c->json) printf("%-24s %12s\n", "touchpoint", "customers");
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *tp = (const char *)sqlite3_column_text(s, 0);
        long long n = sqlite3_column_int64(s, 1);
        if (!tp) {
            total = n;
            continue;
        }
        if (c->json)
            json_array_append_new(
                rows, json_pack("{s:s,s:I}", "touchpoint", tp, "customers", (json_int_t)n));
        else
            printf("%-24.24s %12lld\n", tp, n);
    }
    sqlite3_reset(s);
    store_reader_release(c->st, conn);
    if (c->json)
        print_json(json_pack("{s:s,s:o,s:I}", "view", "assets", "touchpoints", rows, "total",
                             (json_int_t)total));
    else {
        printf("%-24s %12lld\n", "(de-duplicated total)", total);
        json_decref(rows);
    }
    return 0;
}

/* ---- CAC ------------------------------------------------------------------------------------ */

static int view_cac(rctx *c) {
    store_conn *conn = store_reader_acquire(c->st);
    analytics_cac_row *rows = NULL;
    size_t n = 0;
    siyu_err err = {0};
    int rc = conn ? analytics_cac(c->a, conn, c->from, c->to, &rows, &n, &err) : SIYU_EIO;
    if (conn) store_reader_release(c->st, conn);
    if (rc) {
        fprintf(stderr, "siyu report: %s\n", conn ? err.msg : "cannot read the store");
        return 1;
    }
    json_t *arr = json_array();
    if (!c->json) printf("%-24s %14s %8s %12s\n", "channel", "spend (yuan)", "adds", "CAC (yuan)");
    for (size_t i = 0; i < n; i++) {
        const analytics_cac_row *r = &rows[i];
        if (c->json)
            json_array_append_new(
                arr, json_pack("{s:s?,s:I,s:I,s:o}", "channel", r->channel, "spend_cents",
                               (json_int_t)r->spend_cents, "adds", (json_int_t)r->adds, "cac_cents",
                               r->cac_cents < 0 ? json_null() : json_integer(r->cac_cents)));
        else if (r->cac_cents < 0)
            printf("%-24.24s %14.2f %8lld %12s\n", r->channel ? r->channel : "(none)",
                   r->spend_cents / 100.0, (long long)r->adds, "-");
        else
            printf("%-24.24s %14.2f %8lld %12.2f\n", r->channel ? r->channel : "(none)",
                   r->spend_cents / 100.0, (long long)r->adds, r->cac_cents / 100.0);
    }
    char f[11], t[11];
    date_str(c->from, f);
    date_str(c->to, t);
    if (c->json)
        print_json(
            json_pack("{s:s,s:s,s:s,s:o}", "view", "cac", "from", f, "to", t, "channels", arr));
    else
        json_decref(arr);
    analytics_cac_free(rows, n);
    return 0;
}

/* ---- entry --------------------------------------------------------------------------------- */

int cli_report(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs(report_usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    static const struct {
        const char *name;
        int (*fn)(rctx *);
    } views[] = {{"dashboard", view_dashboard}, {"funnel", view_funnel},
                 {"cohort", view_cohort},       {"rfm", view_rfm},
                 {"assets", view_assets},       {"cac", view_cac},
                 {"churn", view_churn},         {"kpi", view_kpi}};
    int (*fn)(rctx *) = NULL;
    for (size_t i = 0; i < sizeof views / sizeof *views; i++)
        if (!strcmp(argv[0], views[i].name)) fn = views[i].fn;
    if (!fn) {
        fprintf(stderr, "siyu report: unknown view '%s'\n%s", argv[0], report_usage);
        return 2;
    }
    rctx c = {.json = false};
    /* --json takes no value: strip it before the flag check */
    char **av = calloc((size_t)argc, sizeof *av);
    int ac = 0;
    if (!av) return 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            c.json = true;
        else
            av[ac++] = argv[i];
    }
    c.argc = ac;
    c.argv = av;
    static const char *const allowed[] = {"data",      "tenant",   "from",    "to",     "by",
                                          "top",       "steps",    "window",  "period", "periods",
                                          "retention", "freq-min", "aov-min", "days",   "now",
                                          "trailing",  "margin",   NULL};
    int rc = cli_check_flags(ac, av, allowed, report_usage);
    const char *data = flag(&c, "data"), *tenant = flag(&c, "tenant");
    if (rc == 0 && (!data || !tenant)) {
        fprintf(stderr, "siyu report: --data and --tenant are required\n%s", report_usage);
        rc = 2;
    }
    c.tenant = tenant ? atoll(tenant) : 0;
    if (rc == 0 && c.tenant <= 0) {
        fprintf(stderr, "siyu report: --tenant must be a tenant id\n");
        rc = 2;
    }
    bool ok = true;
    c.now = flag_long(&c, "now", (long)time(NULL), 0, 4294967295L, &ok);
    if (!ok) rc = 2;
    log_set_level(LOG_WARN);
    if (rc == 0 && !(c.a = analytics_create(c.tenant, ANALYTICS_TZ_DEFAULT))) rc = 1;
    if (rc == 0) {
        const char *f = flag(&c, "from"), *t = flag(&c, "to");
        c.to = analytics_day(c.a, c.now);
        if (t && analytics_day_parse(t, &c.to) != 0) {
            fprintf(stderr, "siyu report: --to must be a date YYYY-MM-DD\n");
            rc = 2;
        }
        c.from = c.to - 29;
        if (f && analytics_day_parse(f, &c.from) != 0) {
            fprintf(stderr, "siyu report: --from must be a date YYYY-MM-DD\n");
            rc = 2;
        }
        if (rc == 0 && (c.from > c.to || c.to - c.from >= ANALYTICS_MAX_DAYS)) {
            fprintf(stderr, "siyu report: --from must be at most %d days before --to\n",
                    ANALYTICS_MAX_DAYS);
            rc = 2;
        }
    }
    siyu_err err = {0};
    if (rc == 0) {
        store_options o = {.writer_thread = false};
        if (!(c.st = store_open(data, &o, &err))) {
            fprintf(stderr, "siyu report: %s\n", err.msg);
            rc = 1;
        }
    }
    if (rc == 0 && engine_build(c.st, c.tenant, &c.e, &err) != 0) {
        fprintf(stderr, "siyu report: %s\n", err.msg);
        rc = 1;
    }
    if (rc == 0) {
        store_conn *conn = store_reader_acquire(c.st);
        if (!conn || analytics_build(c.a, conn, c.e, &err) != 0) {
            fprintf(stderr, "siyu report: %s\n", conn ? err.msg : "cannot read the store");
            rc = 1;
        }
        if (conn) store_reader_release(c.st, conn);
    }
    if (rc == 0) rc = fn(&c);
    analytics_free(c.a);
    engine_free(c.e);
    store_close(c.st);
    free(av);
    return rc;
}
