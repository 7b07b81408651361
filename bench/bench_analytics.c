/* bench_analytics.c — the issue-6 analytics benchmark: one tenant of
 * --customers customers (default 1,000,000), 2,000 employees (Zipf), 500
 * channels, about --events events (default 10,000,000) over 3 years, with
 * relationships that end (deleted by the customer or the employee) and
 * journeys after the first add (view, share, order within days), generated
 * deterministically (--seed) into a real Siyu data directory. Then:
 *
 *   A1 weekly cohort retention: cohorts by the local (Asia/Shanghai) week of
 *      the first add over the last 26 weeks, customers of each cohort with
 *      any event in each following week (26x26 triangle);
 *   A2 ordered funnel add -> view -> share -> order, each within 7 days of
 *      the add, for customers first added in the last 90 days: counts;
 *   A3 daily dashboard of the last 90 local days (adds, deletes, net,
 *      messages) and the top 20 employees by net adds over those days;
 *
 * in Siyu (engine + analytics object built from the store, --runs times
 * each), as plain SQL in SQLite on the same file (--peer-runs), and in
 * DuckDB (bench/duckdb/anpeer.mjs, @duckdb/node-api) on the same rows
 * exported to CSV. Each system's answer is reduced to the same structure and
 * checksummed (FNV-1a 64); the exit status is 1 when they differ. Then one
 * event and one relationship change are applied the way the writer applies
 * them and A3 is read again (currency without a rebuild). The Markdown
 * report is printed and appended to --out.
 *
 *   cmake --build build --target bench_analytics
 *   (cd bench/duckdb && npm ci)        # @duckdb/node-api, as for bench_segment10m
 *   ./build/bench_analytics --dir /tmp/an1m --out bench/RESULTS.md
 *   ./build/bench_analytics --customers 10000000 --events 100000000 --dir /tmp/an10m
 *
 * --dir DIR keeps the data (and the DuckDB file) for reruns at the same
 * scale and seed. --no-duckdb skips the DuckDB peer; --siyu-only runs only
 * Siyu's side (for profiling). */
#define BENCH_NAME "bench_analytics"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analytics/analytics.h"
#include "bench_util.h"
#include "segment/engine.h"
#include "store/store.h"
#include "store/tenant.h"

#define NOW 1793491200LL /* 2026-11-01 00:00 UTC, 08:00 in Shanghai */
#define DAY 86400LL
#define TZ 28800
#define SPAN (3 * 365 * DAY)
#define N_EMPLOYEES 2000
#define N_CHANNELS 500
#define N_DEPARTMENTS 20
#define N_STORES 100
#define MAX_EV_PER_CUSTOMER 4000
#define COHORTS 26
#define FUNNEL_DAYS 90
#define WINDOW (7 * DAY)
#define DASH_DAYS 90
#define TOP 20

/* ---- deterministic randomness (as bench_segment10m) -------------------------- */

static uint64_t rs[4];
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static void seed_rng(uint64_t seed) {
    for (int i = 0; i < 4; i++)
        rs[i] = splitmix64(&seed);
}
static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}
static uint64_t next64(void) {
    uint64_t r = rotl(rs[1] * 5, 7) * 9, t = rs[1] << 17;
    rs[2] ^= rs[0], rs[3] ^= rs[1], rs[1] ^= rs[2], rs[0] ^= rs[3];
    rs[2] ^= t, rs[3] = rotl(rs[3], 45);
    return r;
}
static double unif(void) {
    return (double)(next64() >> 11) * 0x1.0p-53;
}
static double expo(double mean) {
    return -log(1.0 - unif()) * mean;
}

typedef struct zipf {
    uint32_t n;
    double *cdf;
} zipf;
static void zipf_init(zipf *z, uint32_t n, double s) {
    z->n = n;
    if (!(z->cdf = malloc(n * sizeof *z->cdf))) die("out of memory");
    double sum = 0;
    for (uint32_t i = 0; i < n; i++)
        z->cdf[i] = (sum += 1.0 / pow(i + 1, s));
    for (uint32_t i = 0; i < n; i++)
        z->cdf[i] /= sum;
}
static uint32_t zipf_draw(const zipf *z) {
    double u = unif();
    uint32_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (z->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const char *const ev_types[6] = {"view", "message", "order", "page.view", "share", "coupon"};
static const double ev_cdf[6] = {0.40, 0.60, 0.70, 0.80, 0.90, 1.00};
static uint32_t pick(const double *cdf, uint32_t n) {
    double u = unif();
    for (uint32_t i = 0; i < n; i++)
        if (u < cdf[i]) return i;
    return n - 1;
}

/* ---- SQLite helpers -------------------------------------------------------------- */

static void xexec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) die("sql: %s: %s", msg, sql);
}
static sqlite3_stmt *xprep(sqlite3 *db, const char *sql) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        die("prepare: %s: %s", sqlite3_errmsg(db), sql);
    return s;
}
static void xstep(sqlite3 *db, sqlite3_stmt *s) {
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) die("step: %s", sqlite3_errmsg(db));
    sqlite3_reset(s);
}
static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct params {
    long customers, events;
    uint64_t seed;
} params;

/* ---- generation ---------------------------------------------------------------------- */

static void generate(const char *dir, const params *p, int64_t t, long *nev_out, long *nrel_out) {
    char path[600];
    snprintf(path, sizeof path, "%s/siyu.db", dir);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) die("open %s", path);
    xexec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-1000000;");
    double t0 = now_s();
    xexec(db, "BEGIN");
    char sql[512];
    for (int i = 0; i < N_DEPARTMENTS; i++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO department(tenant_id, name, created_at, updated_at) "
                 "VALUES (%" PRId64 ", 'D%02d', 1, 1)",
                 t, i);
        xexec(db, sql);
    }
    for (int i = 0; i < N_STORES; i++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO store(tenant_id, name, created_at, updated_at) "
                 "VALUES (%" PRId64 ", 'S%03d', 1, 1)",
                 t, i);
        xexec(db, sql);
    }
    for (int i = 0; i < N_EMPLOYEES; i++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO employee(tenant_id, userid, name, department_id, store_id, "
                 "created_at, updated_at) VALUES (%" PRId64 ", 'u%04d', 'E%04d', "
                 "(SELECT min(id) + %d FROM department WHERE tenant_id = %" PRId64 "), "
                 "(SELECT min(id) + %d FROM store WHERE tenant_id = %" PRId64 "), 1, 1)",
                 t, i + 1, i + 1, i % N_DEPARTMENTS, t, i % N_STORES, t);
        xexec(db, sql);
    }
    int64_t emp0 = sqlite3_last_insert_rowid(db) - (N_EMPLOYEES - 1);
    xexec(db, "COMMIT");
    sqlite3_stmt *cu = xprep(db, "INSERT INTO customer(tenant_id, first_added_at, created_at, "
                                 "updated_at) VALUES (?, ?, ?, ?)");
    sqlite3_stmt *re = xprep(db, "INSERT OR IGNORE INTO relationship(tenant_id, customer_id, "
                                 "employee_id, status, added_at, state, ended_at, updated_at) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    sqlite3_stmt *ev = xprep(db, "INSERT INTO event(tenant_id, customer_id, type, ts, source) "
                                 "VALUES (?, ?, ?, ?, 'api')");
    zipf ze, zc;
    zipf_init(&ze, N_EMPLOYEES, 1.0);
    zipf_init(&zc, N_CHANNELS, 0.8);
    double mean = (double)p->events / (double)p->customers;
    uint32_t *ts = malloc(MAX_EV_PER_CUSTOMER * sizeof *ts);
    uint8_t *ty = malloc(MAX_EV_PER_CUSTOMER);
    if (!ts || !ty) die("out of memory");
    long nev = 0, nrel = 0;
    xexec(db, "BEGIN");
    for (long i = 0; i < p->customers; i++) {
        int64_t first = NOW - (int64_t)(unif() * SPAN);
        sqlite3_bind_int64(cu, 1, t);
        sqlite3_bind_int64(cu, 2, first);
        sqlite3_bind_int64(cu, 3, first);
        sqlite3_bind_int64(cu, 4, first);
        xstep(db, cu);
        int64_t cid = sqlite3_last_insert_rowid(db);
        int nr = unif() < 0.15 ? 2 : 1;
        for (int k = 0; k < nr; k++) {
            int64_t added = k == 0 ? first : first + (int64_t)(unif() * (double)(NOW - first));
            double u = unif();
            const char *status = u < 0.80   ? "active"
                                 : u < 0.90 ? "deleted_by_customer"
                                            : "deleted_by_employee";
            int64_t ended = added + (int64_t)expo(60.0 * DAY);
            bool active = strcmp(status, "active") == 0 || ended > NOW;
            char state[16];
            snprintf(state, sizeof state, "ch%03u", zipf_draw(&zc) + 1);
            sqlite3_bind_int64(re, 1, t);
            sqlite3_bind_int64(re, 2, cid);
            sqlite3_bind_int64(re, 3, emp0 + zipf_draw(&ze));
            sqlite3_bind_text(re, 4, active ? "active" : status, -1, SQLITE_STATIC);
            sqlite3_bind_int64(re, 5, added);
            sqlite3_bind_text(re, 6, state, -1, SQLITE_TRANSIENT);
            if (active)
                sqlite3_bind_null(re, 7);
            else
                sqlite3_bind_int64(re, 7, ended);
            sqlite3_bind_int64(re, 8, active ? added : ended);
            xstep(db, re);
            nrel += sqlite3_changes(db);
        }
        /* A journey after the first add: view, then share, then order. */
        uint32_t n = 0;
        int64_t at = first;
        static const double jp[3] = {0.6, 0.5, 0.5};
        static const uint8_t jt[3] = {0, 4, 2}; /* view, share, order */
        static const double jm[3] = {1.5 * DAY, 2 * DAY, 3 * DAY};
        for (int k = 0; k < 3 && unif() < jp[k]; k++) {
            at += (int64_t)expo(jm[k]);
            if (at > NOW) break;
            ts[n] = (uint32_t)at;
            ty[n++] = jt[k];
        }
        /* Background events: about mean per customer, more for older ones;
         * 35% stopped being active at some point. */
        double tenure = (double)(NOW - first) / (double)SPAN;
        double x = expo(2.0 * tenure * mean) + unif() - n;
        uint32_t more = x <= 0                         ? 0
                        : x >= MAX_EV_PER_CUSTOMER - 3 ? MAX_EV_PER_CUSTOMER - 3
                                                       : (uint32_t)x;
        int64_t end = unif() < 0.35 ? first + (int64_t)(unif() * (double)(NOW - first)) : NOW;
        for (uint32_t k = 0; k < more; k++) {
            ts[n] = (uint32_t)(first + (int64_t)(unif() * (double)(end - first + 1)));
            ty[n++] = (uint8_t)pick(ev_cdf, 6);
        }
        for (uint32_t k = 0; k < n; k++) {
            sqlite3_bind_int64(ev, 1, t);
            sqlite3_bind_int64(ev, 2, cid);
            sqlite3_bind_text(ev, 3, ev_types[ty[k]], -1, SQLITE_STATIC);
            sqlite3_bind_int64(ev, 4, ts[k]);
            xstep(db, ev);
        }
        nev += n;
        if ((i + 1) % 250000 == 0) {
            xexec(db, "COMMIT; BEGIN");
            fprintf(stderr, "generate: %ld customers, %ld events, %.0f s\n", i + 1, nev,
                    now_s() - t0);
        }
    }
    xexec(db, "COMMIT");
    (void)cmp_u32;
    free(ts);
    free(ty);
    free(ze.cdf), free(zc.cdf);
    sqlite3_finalize(cu), sqlite3_finalize(re), sqlite3_finalize(ev);
    sqlite3_close(db);
    *nev_out = nev;
    *nrel_out = nrel;
}

static const char *const peer_indexes[] = {
    "CREATE INDEX IF NOT EXISTS peer_event_type_ts ON event(tenant_id, type, ts, customer_id)",
    "CREATE INDEX IF NOT EXISTS peer_customer_first ON customer(tenant_id, first_added_at, id)",
    "CREATE INDEX IF NOT EXISTS peer_rel_added ON relationship(tenant_id, added_at, employee_id)",
    "CREATE INDEX IF NOT EXISTS peer_rel_end2 ON relationship(tenant_id, "
    "max(coalesce(ended_at, added_at), added_at), status, employee_id) WHERE status <> 'active'",
    "ANALYZE",
    NULL,
};

/* ---- the answers, reduced to one shape for every system -------------------------- */

typedef struct answer {
    /* A1 */
    uint64_t size[COHORTS], cell[COHORTS][COHORTS];
    /* A2 */
    uint64_t step[4];
    /* A3 */
    int64_t adds[DASH_DAYS], dels[DASH_DAYS], net[DASH_DAYS], msgs[DASH_DAYS];
    int64_t top_emp[TOP], top_net[TOP];
    size_t ntop;
} answer;

static uint64_t fnv(uint64_t h, int64_t v) {
    for (int i = 0; i < 8; i++)
        h = (h ^ (((uint64_t)v >> (8 * i)) & 0xff)) * 1099511628211ULL;
    return h;
}
#define FNV0 1469598103934665603ULL

static uint64_t sum_a1(const answer *a) {
    uint64_t h = FNV0;
    for (int c = 0; c < COHORTS; c++) {
        h = fnv(h, (int64_t)a->size[c]);
        for (int k = 0; k < COHORTS - c; k++)
            h = fnv(h, (int64_t)a->cell[c][k]);
    }
    return h;
}
static uint64_t sum_a2(const answer *a) {
    uint64_t h = FNV0;
    for (int k = 0; k < 4; k++)
        h = fnv(h, (int64_t)a->step[k]);
    return h;
}
static uint64_t sum_a3(const answer *a) {
    uint64_t h = FNV0;
    for (int d = 0; d < DASH_DAYS; d++)
        h = fnv(fnv(fnv(fnv(h, a->adds[d]), a->dels[d]), a->net[d]), a->msgs[d]);
    for (size_t k = 0; k < a->ntop; k++)
        h = fnv(fnv(h, a->top_emp[k]), a->top_net[k]);
    return h;
}

/* Local days and weeks of the queries. */
static int32_t today, week0; /* week0: the Monday of the first cohort week */

static void dates_init(void) {
    today = (int32_t)((NOW + TZ) / DAY);
    int32_t monday = today - (((today + 3) % 7 + 7) % 7);
    week0 = monday - 7 * (COHORTS - 1);
}

/* ---- Siyu ------------------------------------------------------------------------------ */

static void siyu_a1(const analytics *an, const engine *e, answer *out) {
    analytics_cohort co;
    siyu_err err = {0};
    if (analytics_cohort_run(an, e, NULL, AN_WEEK, COHORTS, NOW, AN_RET_ACTIVE, &co, &err) != 0)
        die("cohort: %s", err.msg);
    if (co.start[0] != week0) die("cohort weeks differ");
    for (int c = 0; c < COHORTS; c++) {
        out->size[c] = co.size[c];
        for (int k = 0; k < COHORTS; k++)
            out->cell[c][k] = co.cell[c * COHORTS + k];
    }
    analytics_cohort_free(&co);
}

static void siyu_a2(const engine *e, answer *out) {
    analytics_funnel_def def = {.steps = {"add", "view", "share", "order"},
                                .nsteps = 4,
                                .from = NOW - FUNNEL_DAYS * DAY,
                                .to = NOW,
                                .window = WINDOW};
    analytics_funnel f;
    siyu_err err = {0};
    if (analytics_funnel_run(e, &def, &f, &err) != 0) die("funnel: %s", err.msg);
    for (int k = 0; k < 4; k++)
        out->step[k] = f.count[k];
    analytics_funnel_free(&f);
}

static void siyu_a3(const analytics *an, const engine *e, answer *out) {
    analytics_scope all = {.all = true};
    analytics_series s, g;
    siyu_err err = {0};
    int32_t d0 = today - DASH_DAYS + 1;
    if (analytics_series_get(an, e, &all, d0, today, AN_BY_NONE, true, &s, &err) != 0 ||
        analytics_series_get(an, e, &all, d0, today, AN_BY_EMPLOYEE, false, &g, &err) != 0)
        die("series: %s", err.msg);
    for (int d = 0; d < DASH_DAYS; d++) {
        const analytics_point *p = &s.g[0].pts[d];
        out->adds[d] = p->c[AN_ADDS];
        out->dels[d] = p->c[AN_LOST_CUSTOMER] + p->c[AN_LOST_EMPLOYEE];
        out->net[d] = p->net;
        out->msgs[d] = p->messages;
    }
    size_t idx[TOP], n;
    analytics_series_rank(&g, AN__NCOUNT, true, TOP, idx, &n);
    out->ntop = n;
    for (size_t k = 0; k < n; k++) {
        out->top_emp[k] = g.g[idx[k]].id;
        out->top_net[k] = g.g[idx[k]].net;
    }
    analytics_series_free(&s);
    analytics_series_free(&g);
}

/* ---- SQL (SQLite and DuckDB dialects) ------------------------------------------------ */

typedef struct dialect {
    const char *t;   /* "tenant_id = N AND " or "" */
    const char *div; /* integer division: "/" or "//" */
    const char *max; /* scalar max: "max" or "greatest" */
} dialect;

static char *sqlf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) die("out of memory");
    va_end(ap);
    return s;
}

/* A1: rows (cohort week, active week, customers) and (cohort week, size);
 * et: the tenant filter of the event side ("e.tenant_id = N AND " or ""). */
static void sql_a1(const dialect *d, const char *et, char **q) {
    int64_t lo = (int64_t)week0 * DAY - TZ, hi = (int64_t)(week0 + 7 * COHORTS) * DAY - TZ - 1;
    q[0] = sqlf("WITH cust AS (SELECT id, ((first_added_at + %d) %s 86400 + 3) %s 7 AS w FROM "
                "customer WHERE %sfirst_added_at BETWEEN %lld AND %lld), "
                "act AS (SELECT DISTINCT e.customer_id, ((e.ts + %d) %s 86400 + 3) %s 7 AS w "
                "FROM event e JOIN cust c ON c.id = e.customer_id WHERE %se.ts BETWEEN %lld AND "
                "%lld) SELECT c.w, a.w, count(*) FROM cust c JOIN act a ON a.customer_id = c.id "
                "AND a.w >= c.w GROUP BY 1, 2",
                TZ, d->div, d->div, d->t, (long long)lo, (long long)hi, TZ, d->div, d->div, et,
                (long long)lo, (long long)hi);
    q[1] = sqlf("SELECT ((first_added_at + %d) %s 86400 + 3) %s 7 AS w, count(*) FROM customer "
                "WHERE %sfirst_added_at BETWEEN %lld AND %lld GROUP BY 1",
                TZ, d->div, d->div, d->t, (long long)lo, (long long)hi);
}

static void sql_a2(const dialect *d, const char *et, char **q) {
    q[0] = sqlf("WITH s0 AS (SELECT id, first_added_at AS t0 FROM customer WHERE %sfirst_added_at "
                "BETWEEN %lld AND %lld), "
                "s1 AS (SELECT id, t0, (SELECT min(ts) FROM event e WHERE %se.customer_id = s0.id "
                "AND e.type = 'view' AND e.ts BETWEEN s0.t0 AND s0.t0 + %lld) AS t FROM s0), "
                "s2 AS (SELECT id, t0, (SELECT min(ts) FROM event e WHERE %se.customer_id = s1.id "
                "AND e.type = 'share' AND e.ts BETWEEN s1.t AND s1.t0 + %lld) AS t FROM s1 WHERE "
                "t IS NOT NULL), "
                "s3 AS (SELECT id, (SELECT min(ts) FROM event e WHERE %se.customer_id = s2.id AND "
                "e.type = 'order' AND e.ts BETWEEN s2.t AND s2.t0 + %lld) AS t FROM s2 WHERE t IS "
                "NOT NULL) "
                "SELECT (SELECT count(*) FROM s0), (SELECT count(*) FROM s1 WHERE t IS NOT NULL), "
                "(SELECT count(*) FROM s2 WHERE t IS NOT NULL), (SELECT count(*) FROM s3 WHERE t "
                "IS NOT NULL)",
                d->t, (long long)(NOW - FUNNEL_DAYS * DAY), (long long)NOW, et, (long long)WINDOW,
                et, (long long)WINDOW, et, (long long)WINDOW);
}

static void sql_a3(const dialect *d, char **q) {
    int32_t d0 = today - DASH_DAYS + 1;
    int64_t lo = (int64_t)d0 * DAY - TZ, hi = (int64_t)(today + 1) * DAY - TZ - 1;
    char endx[128];
    snprintf(endx, sizeof endx, "%s(coalesce(ended_at, added_at), added_at)", d->max);
    q[0] = sqlf("SELECT (added_at + %d) %s 86400, count(*) FROM relationship WHERE %sadded_at "
                "BETWEEN %lld AND %lld GROUP BY 1",
                TZ, d->div, d->t, (long long)lo, (long long)hi);
    q[1] = sqlf("SELECT (%s + %d) %s 86400, count(*) FILTER (WHERE status IN "
                "('deleted_by_customer', 'deleted_by_employee')), count(*) FROM relationship "
                "WHERE %sstatus <> 'active' AND %s BETWEEN %lld AND %lld GROUP BY 1",
                endx, TZ, d->div, d->t, endx, (long long)lo, (long long)hi);
    q[2] = sqlf("SELECT (ts + %d) %s 86400, count(*) FROM event WHERE %stype = 'message' AND ts "
                "BETWEEN %lld AND %lld GROUP BY 1",
                TZ, d->div, d->t, (long long)lo, (long long)hi);
    q[3] = sqlf("SELECT employee_id, sum(a) AS net FROM (SELECT employee_id, 1 AS a FROM "
                "relationship WHERE %sadded_at BETWEEN %lld AND %lld UNION ALL SELECT "
                "employee_id, -1 FROM relationship WHERE %sstatus <> 'active' AND %s BETWEEN "
                "%lld AND %lld) x GROUP BY employee_id ORDER BY net DESC, employee_id LIMIT %d",
                d->t, (long long)lo, (long long)hi, d->t, endx, (long long)lo, (long long)hi, TOP);
}

/* Rows of one query as int64 tuples. */
typedef struct rowset {
    int64_t (*v)[4];
    size_t n, cap;
    int ncol;
} rowset;

static void rows_push(rowset *r, const int64_t *vals, int ncol) {
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        if (!(r->v = realloc(r->v, r->cap * sizeof *r->v))) die("out of memory");
    }
    for (int i = 0; i < 4; i++)
        r->v[r->n][i] = i < ncol ? vals[i] : 0;
    r->ncol = ncol;
    r->n++;
}

static void fill_a1(const rowset *rs2, answer *out) {
    memset(out->size, 0, sizeof out->size);
    memset(out->cell, 0, sizeof out->cell);
    int32_t w0 = (week0 + 3) / 7;
    for (size_t i = 0; i < rs2[0].n; i++) {
        int64_t c = rs2[0].v[i][0] - w0, w = rs2[0].v[i][1] - w0;
        if (c >= 0 && c < COHORTS && w >= c && w < COHORTS)
            out->cell[c][w - c] = (uint64_t)rs2[0].v[i][2];
    }
    for (size_t i = 0; i < rs2[1].n; i++) {
        int64_t c = rs2[1].v[i][0] - w0;
        if (c >= 0 && c < COHORTS) out->size[c] = (uint64_t)rs2[1].v[i][1];
    }
}

static void fill_a2(const rowset *r, answer *out) {
    for (int k = 0; k < 4; k++)
        out->step[k] = r[0].n ? (uint64_t)r[0].v[0][k] : 0;
}

static void fill_a3(const rowset *r, answer *out) {
    int32_t d0 = today - DASH_DAYS + 1;
    memset(out->adds, 0, sizeof out->adds), memset(out->dels, 0, sizeof out->dels);
    memset(out->net, 0, sizeof out->net), memset(out->msgs, 0, sizeof out->msgs);
    for (size_t i = 0; i < r[0].n; i++) {
        int64_t k = r[0].v[i][0] - d0;
        if (k >= 0 && k < DASH_DAYS) out->adds[k] = r[0].v[i][1], out->net[k] += r[0].v[i][1];
    }
    for (size_t i = 0; i < r[1].n; i++) {
        int64_t k = r[1].v[i][0] - d0;
        if (k >= 0 && k < DASH_DAYS) out->dels[k] = r[1].v[i][1], out->net[k] -= r[1].v[i][2];
    }
    for (size_t i = 0; i < r[2].n; i++) {
        int64_t k = r[2].v[i][0] - d0;
        if (k >= 0 && k < DASH_DAYS) out->msgs[k] = r[2].v[i][1];
    }
    out->ntop = r[3].n < TOP ? r[3].n : TOP;
    for (size_t i = 0; i < out->ntop; i++)
        out->top_emp[i] = r[3].v[i][0], out->top_net[i] = r[3].v[i][1];
}

typedef struct bquery {
    const char *name, *what;
    int nsql;
    char *lite[4], *duck[4];
    void (*fill)(const rowset *r, answer *out);
    uint64_t (*sum)(const answer *a);
    double p50[3], p99[3];
    uint64_t check[3];
} bquery;

enum { SYS_SIYU, SYS_SQLITE, SYS_DUCKDB };

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static void pct(double *lat, int n, double *p50, double *p99) {
    qsort(lat, (size_t)n, sizeof *lat, cmp_d);
    *p50 = lat[n / 2];
    *p99 = lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
}

static void run_sqlite(sqlite3 *db, bquery *q, int runs) {
    double *lat = malloc((size_t)runs * sizeof *lat);
    rowset r[4] = {0};
    for (int run_i = 0; run_i < runs + 1; run_i++) { /* the first run warms up */
        for (int k = 0; k < q->nsql; k++)
            r[k].n = 0;
        double a = now_s();
        for (int k = 0; k < q->nsql; k++) {
            sqlite3_stmt *s = xprep(db, q->lite[k]);
            int rc;
            while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                int64_t v[4];
                int nc = sqlite3_column_count(s);
                for (int i = 0; i < nc && i < 4; i++)
                    v[i] = sqlite3_column_int64(s, i);
                rows_push(&r[k], v, nc < 4 ? nc : 4);
            }
            if (rc != SQLITE_DONE) die("sqlite %s: %s", q->name, sqlite3_errmsg(db));
            sqlite3_finalize(s);
        }
        if (run_i > 0) lat[run_i - 1] = (now_s() - a) * 1000;
    }
    answer *ans = calloc(1, sizeof *ans);
    q->fill(r, ans);
    q->check[SYS_SQLITE] = q->sum(ans);
    pct(lat, runs, &q->p50[SYS_SQLITE], &q->p99[SYS_SQLITE]);
    free(ans);
    for (int k = 0; k < 4; k++)
        free(r[k].v);
    free(lat);
}

/* ---- DuckDB peer ------------------------------------------------------------------------- */

static long export_csv(sqlite3 *db, const char *sql, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) die("cannot write %s", path);
    static char buf[1 << 20];
    setvbuf(f, buf, _IOFBF, sizeof buf);
    sqlite3_stmt *s = xprep(db, sql);
    int rc, nc = sqlite3_column_count(s);
    long rows = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        for (int i = 0; i < nc; i++) {
            if (i) putc(',', f);
            if (sqlite3_column_type(s, i) == SQLITE_INTEGER)
                fprintf(f, "%lld", (long long)sqlite3_column_int64(s, i));
            else if (sqlite3_column_type(s, i) != SQLITE_NULL)
                fputs((const char *)sqlite3_column_text(s, i), f);
        }
        putc('\n', f);
        rows++;
    }
    if (rc != SQLITE_DONE) die("export: %s", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    if (fclose(f) != 0) die("write %s: %s", path, strerror(errno));
    return rows;
}

static void duck_export(sqlite3 *db, int64_t t, const char *csvdir) {
    if (mkdir(csvdir, 0700) != 0 && errno != EEXIST) die("mkdir %s", csvdir);
    struct {
        const char *file, *sql;
    } ex[] = {
        {"customer.csv", "SELECT id, first_added_at FROM customer WHERE tenant_id = %lld"},
        {"relationship.csv", "SELECT customer_id, employee_id, status, added_at, ended_at, "
                             "updated_at FROM relationship WHERE tenant_id = %lld"},
        {"event.csv", "SELECT customer_id, type, ts FROM event WHERE tenant_id = %lld AND "
                      "customer_id IS NOT NULL"},
    };
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        char sql[512], path[1024];
        snprintf(sql, sizeof sql, ex[i].sql, (long long)t);
        snprintf(path, sizeof path, "%s/%s", csvdir, ex[i].file);
        double a = now_s();
        long rows = export_csv(db, sql, path);
        fprintf(stderr, "export: %s %ld rows in %.1f s\n", ex[i].file, rows, now_s() - a);
    }
}

static double run_duckdb(const char *script, const char *dir, bquery *qs, int nq, int runs) {
    char qpath[600], dbpath[600], csvdir[600], runs_s[16];
    snprintf(qpath, sizeof qpath, "%s/duck-an-queries.json", dir);
    snprintf(dbpath, sizeof dbpath, "%s/duck-an.db", dir);
    snprintf(csvdir, sizeof csvdir, "%s/csv-an", dir);
    snprintf(runs_s, sizeof runs_s, "%d", runs);
    json_t *arr = json_array();
    for (int k = 0; k < nq; k++) {
        json_t *sq = json_array();
        for (int i = 0; i < qs[k].nsql; i++)
            json_array_append_new(sq, json_string(qs[k].duck[i]));
        json_array_append_new(arr, json_pack("{s:s, s:o}", "name", qs[k].name, "sql", sq));
    }
    if (json_dump_file(arr, qpath, JSON_INDENT(1)) != 0) die("cannot write %s", qpath);
    json_decref(arr);
    char *argv[] = {"/usr/bin/node", (char *)script, "--db",   dbpath, "--csv", csvdir,
                    "--queries",     qpath,          "--runs", runs_s, NULL};
    char *out = NULL;
    int st = run(&out, argv);
    if (st != 0) die("node %s exited with %d", script, st);
    double load_s = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        if (!j) die("duckdb peer: bad line: %s", line);
        if (json_object_get(j, "load_s")) load_s = json_number_value(json_object_get(j, "load_s"));
        const char *name = json_string_value(json_object_get(j, "q"));
        for (int k = 0; name && k < nq; k++) {
            if (strcmp(name, qs[k].name) != 0) continue;
            rowset r[4] = {0};
            json_t *sets = json_object_get(j, "rows");
            for (size_t s = 0; s < json_array_size(sets) && s < 4; s++) {
                json_t *rows = json_array_get(sets, s);
                for (size_t i = 0; i < json_array_size(rows); i++) {
                    json_t *row = json_array_get(rows, i);
                    int64_t v[4] = {0};
                    int nc = (int)json_array_size(row);
                    for (int c = 0; c < nc && c < 4; c++)
                        v[c] = (int64_t)json_number_value(json_array_get(row, c));
                    rows_push(&r[s], v, nc < 4 ? nc : 4);
                }
            }
            answer *ans = calloc(1, sizeof *ans);
            qs[k].fill(r, ans);
            qs[k].check[SYS_DUCKDB] = qs[k].sum(ans);
            free(ans);
            for (int s = 0; s < 4; s++)
                free(r[s].v);
            qs[k].p50[SYS_DUCKDB] = json_number_value(json_object_get(j, "p50"));
            qs[k].p99[SYS_DUCKDB] = json_number_value(json_object_get(j, "p99"));
        }
        json_decref(j);
    }
    free(out);
    return load_s;
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void mem_kb(long *rss, long *hwm) {
    *rss = *hwm = 0;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) *rss = atol(line + 6);
        if (strncmp(line, "VmHWM:", 6) == 0) *hwm = atol(line + 6);
    }
    if (f) fclose(f);
}

int main(int argc, char **argv) {
    params p = {.customers = 1000000, .events = 10000000, .seed = 20261101};
    int runs = 30, peer_runs = 3;
    const char *dir_arg = NULL, *out_path = NULL, *script = "bench/duckdb/anpeer.mjs";
    bool duck = true, peers = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-duckdb") == 0) {
            duck = false;
            continue;
        }
        if (strcmp(a, "--siyu-only") == 0) { /* for profiling: no peers, no report */
            duck = peers = false;
            continue;
        }
        if (!v) die("%s needs a value", a);
        if (strcmp(a, "--customers") == 0)
            p.customers = atol(v);
        else if (strcmp(a, "--events") == 0)
            p.events = atol(v);
        else if (strcmp(a, "--seed") == 0)
            p.seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--runs") == 0)
            runs = atoi(v);
        else if (strcmp(a, "--peer-runs") == 0)
            peer_runs = atoi(v);
        else if (strcmp(a, "--dir") == 0)
            dir_arg = v;
        else if (strcmp(a, "--out") == 0)
            out_path = v;
        else if (strcmp(a, "--duckdb-script") == 0)
            script = v;
        else
            die("unknown option %s (--customers N --events N --seed N --runs N --peer-runs N "
                "--dir DIR --out FILE --duckdb-script PATH --no-duckdb)",
                a);
        i++;
    }
    if (p.customers < 1000 || p.customers > 20000000 || p.events < 0 || runs < 1 || runs > 1000 ||
        peer_runs < 1 || peer_runs > 100)
        die("out of range: --customers 1000..20000000, --runs 1..1000, --peer-runs 1..100");
    char script_abs[PATH_MAX];
    if (duck && !realpath(script, script_abs)) die("no DuckDB script at %s", script);
    seed_rng(p.seed);
    dates_init();

    char dir[512];
    if (dir_arg) {
        snprintf(dir, sizeof dir, "%s", dir_arg);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) die("mkdir %s", dir);
    } else {
        bench_tmpdir(dir, sizeof dir, "analytics");
    }
    char stamp[700], want[128];
    snprintf(stamp, sizeof stamp, "%s/analytics.params", dir);
    /* v2: the peer index of relationship ends matches the end expression */
    snprintf(want, sizeof want, "v2 %ld %ld %llu\n", p.customers, p.events,
             (unsigned long long)p.seed);
    bool reuse = false;
    {
        FILE *f = fopen(stamp, "r");
        char got[128] = "";
        if (f) {
            if (!fgets(got, sizeof got, f)) got[0] = 0;
            fclose(f);
        }
        reuse = strcmp(got, want) == 0;
    }
    siyu_err err = {0};
    store_options so = {.writer_thread = false};
    long nev = 0, nrel = 0;
    double gen_s = 0;
    if (!reuse) {
        char path[700];
        snprintf(path, sizeof path, "%s/siyu.db", dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/duck-an.db", dir);
        unlink(path);
        store *st = store_open(dir, &so, &err);
        if (!st) die("store_open: %s", err.msg);
        tenant_input in = {.name = "bench", .actor = "bench"};
        if (store_write(st, tenant_create, &in) != 0) die("tenant");
        store_close(st);
        double a = now_s();
        generate(dir, &p, in.id, &nev, &nrel);
        gen_s = now_s() - a;
        fprintf(stderr, "generated %ld events, %ld relationships in %.0f s\n", nev, nrel, gen_s);
        char dbp[700];
        snprintf(dbp, sizeof dbp, "%s/siyu.db", dir);
        sqlite3 *raw;
        if (sqlite3_open(dbp, &raw) != SQLITE_OK) die("open");
        a = now_s();
        for (int i = 0; peer_indexes[i]; i++)
            xexec(raw, peer_indexes[i]);
        fprintf(stderr, "peer indexes in %.0f s\n", now_s() - a);
        if (duck) {
            char csvdir[700];
            snprintf(csvdir, sizeof csvdir, "%s/csv-an", dir);
            duck_export(raw, in.id, csvdir);
        }
        sqlite3_close(raw);
        FILE *f = fopen(stamp, "w");
        if (f) fputs(want, f), fclose(f);
    }
    store *st = store_open(dir, &so, &err);
    if (!st) die("store_open: %s", err.msg);
    int64_t t = 0;
    {
        store_conn *c = store_reader_acquire(st);
        sqlite3_stmt *s = store_conn_stmt(c, "SELECT max(tenant_id) FROM tenant");
        if (sqlite3_step(s) == SQLITE_ROW) t = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        s = store_conn_stmt(c, "SELECT (SELECT count(*) FROM event), (SELECT count(*) FROM "
                               "relationship)");
        if (sqlite3_step(s) == SQLITE_ROW)
            nev = sqlite3_column_int64(s, 0), nrel = sqlite3_column_int64(s, 1);
        sqlite3_reset(s);
        store_reader_release(st, c);
    }
    long rss0, hwm0, rss1, hwm1, rss2, hwm2;
    mem_kb(&rss0, &hwm0);
    double a = now_s();
    engine *e = NULL;
    if (engine_build(st, t, &e, &err) != 0) die("engine_build: %s", err.msg);
    double engine_s = now_s() - a;
    mem_kb(&rss1, &hwm1);
    a = now_s();
    analytics *an = analytics_create(t, TZ);
    store_conn *c = store_reader_acquire(st);
    if (!an || analytics_build(an, c, e, &err) != 0) die("analytics_build: %s", err.msg);
    store_reader_release(st, c);
    double an_s = now_s() - a;
    mem_kb(&rss2, &hwm2);
    fprintf(stderr, "engine %.1f s, analytics %.1f s\n", engine_s, an_s);

    bquery qs[3] = {
        {.name = "A1",
         .what = "weekly cohort retention, 26x26 (any event)",
         .nsql = 2,
         .fill = fill_a1,
         .sum = sum_a1},
        {.name = "A2",
         .what = "funnel add > view > share > order within 7 days, adds of 90 days",
         .nsql = 1,
         .fill = fill_a2,
         .sum = sum_a2},
        {.name = "A3",
         .what = "90 daily adds/deletes/net/messages + top 20 employees by net adds",
         .nsql = 4,
         .fill = fill_a3,
         .sum = sum_a3},
    };
    char tt[64];
    snprintf(tt, sizeof tt, "tenant_id = %lld AND ", (long long)t);
    char ett[64];
    snprintf(ett, sizeof ett, "e.tenant_id = %lld AND ", (long long)t);
    dialect dl = {tt, "/", "max"}, dd = {"", "//", "greatest"};
    sql_a1(&dl, ett, qs[0].lite);
    sql_a1(&dd, "", qs[0].duck);
    sql_a2(&dl, ett, qs[1].lite);
    sql_a2(&dd, "", qs[1].duck);
    sql_a3(&dl, qs[2].lite);
    sql_a3(&dd, qs[2].duck);

    /* Siyu */
    answer *ans = calloc(1, sizeof *ans);
    double *lat = malloc((size_t)runs * sizeof *lat);
    for (int k = 0; k < 3; k++) {
        for (int r = 0; r < runs + 1; r++) {
            double b = now_s();
            if (k == 0) siyu_a1(an, e, ans);
            if (k == 1) siyu_a2(e, ans);
            if (k == 2) siyu_a3(an, e, ans);
            if (r > 0) lat[r - 1] = (now_s() - b) * 1000;
        }
        qs[k].check[SYS_SIYU] = qs[k].sum(ans);
        pct(lat, runs, &qs[k].p50[SYS_SIYU], &qs[k].p99[SYS_SIYU]);
        fprintf(stderr, "siyu %s: p50 %.2f ms\n", qs[k].name, qs[k].p50[SYS_SIYU]);
    }
    int64_t msgs_before = ans->msgs[DASH_DAYS - 1], adds_before = ans->adds[DASH_DAYS - 1];

    /* Currency: one message event and one new relationship (a customer of
     * today added by employee 1), applied as the writer applies them. */
    uint32_t d0 = engine_customers(e) - 1;
    if (engine_event_add(e, d0, "message", NOW - 60, 0, &err) != 0 ||
        analytics_event_added(an, d0, "message", NOW - 60) != 0)
        die("event add: %s", err.msg);
    analytics_rel nr[3];
    size_t nnr = 0;
    {
        store_conn *rc = store_reader_acquire(st);
        sqlite3_stmt *s = store_conn_stmt(rc, "SELECT employee_id, status, state, added_at, "
                                              "coalesce(ended_at, added_at) FROM relationship "
                                              "WHERE tenant_id = ? AND customer_id = ?");
        sqlite3_bind_int64(s, 1, t);
        sqlite3_bind_int64(s, 2, engine_customer_id(e, d0));
        static char strs[3][2][64];
        while (sqlite3_step(s) == SQLITE_ROW && nnr < 2) {
            snprintf(strs[nnr][0], 64, "%s", (const char *)sqlite3_column_text(s, 1));
            snprintf(strs[nnr][1], 64, "%s", (const char *)sqlite3_column_text(s, 2));
            nr[nnr] = (analytics_rel){sqlite3_column_int64(s, 0), strs[nnr][0], strs[nnr][1],
                                      sqlite3_column_int64(s, 3), sqlite3_column_int64(s, 4)};
            nnr++;
        }
        sqlite3_reset(s);
        store_reader_release(st, rc);
        int64_t emp = nr[0].employee_id == 1 ? 2 : 1;
        nr[nnr++] = (analytics_rel){emp, "active", "ch001", NOW - 30, 0};
    }
    a = now_s();
    if (analytics_rels_changed(an, d0, nr, nnr) != 0) die("rels_changed");
    double apply_us = (now_s() - a) * 1e6;
    siyu_a3(an, e, ans);
    bool current =
        ans->msgs[DASH_DAYS - 1] == msgs_before + 1 && ans->adds[DASH_DAYS - 1] == adds_before + 1;

    if (!peers) {
        for (int k = 0; k < 3; k++)
            printf("%s p50 %.2f ms p99 %.2f ms checksum %016llx\n", qs[k].name, qs[k].p50[0],
                   qs[k].p99[0], (unsigned long long)qs[k].check[0]);
        analytics_free(an);
        engine_free(e);
        store_close(st);
        return current ? 0 : 1;
    }
    /* SQLite */
    char dbp[700];
    snprintf(dbp, sizeof dbp, "%s/siyu.db", dir);
    sqlite3 *lite;
    if (sqlite3_open_v2(dbp, &lite, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) die("open");
    xexec(lite, "PRAGMA cache_size=-2000000; PRAGMA temp_store=MEMORY;");
    for (int k = 0; k < 3; k++) {
        run_sqlite(lite, &qs[k], peer_runs);
        fprintf(stderr, "sqlite %s: p50 %.0f ms\n", qs[k].name, qs[k].p50[SYS_SQLITE]);
    }
    sqlite3_close(lite);
    double duck_load = 0;
    if (duck) {
        char dpath[700];
        snprintf(dpath, sizeof dpath, "%s/duck-an.db", dir);
        bool loaded = file_exists(dpath);
        duck_load = run_duckdb(script_abs, dir, qs, 3, peer_runs);
        if (loaded) duck_load = 0;
    }

    /* report */
    char *rep = NULL;
    size_t rlen = 0;
    FILE *r = open_memstream(&rep, &rlen);
    bench_header(r, "Analytics benchmark (issue 6)");
    fprintf(r,
            "\nOne tenant: %ld customers, %ld relationships, %ld events (seed %llu); engine build "
            "%.1f s, analytics build %.1f s; RSS %ld MB before, %ld MB after the engine, %ld MB "
            "after analytics (peak %ld MB).%s\n\n",
            p.customers, nrel, nev, (unsigned long long)p.seed, engine_s, an_s, rss0 / 1024,
            rss1 / 1024, rss2 / 1024, hwm2 / 1024,
            gen_s > 0 ? "" : " Data reused from an earlier run.");
    fprintf(r, "| query | Siyu p50 / p99 ms | SQLite p50 ms | DuckDB p50 ms | vs SQLite | vs "
               "DuckDB | checksums |\n");
    fprintf(r, "|---|---|---|---|---|---|---|\n");
    bool same = true;
    for (int k = 0; k < 3; k++) {
        bquery *q = &qs[k];
        bool ok = q->check[0] == q->check[1] && (!duck || q->check[0] == q->check[2]);
        same = same && ok;
        char dk[64] = "-", rk[64] = "-";
        if (duck) {
            snprintf(dk, sizeof dk, "%.1f", q->p50[2]);
            snprintf(rk, sizeof rk, "%.0fx", q->p50[2] / q->p50[0]);
        }
        fprintf(r, "| %s %s | %.2f / %.2f | %.1f | %s | %.0fx | %s | %016llx %s |\n", q->name,
                q->what, q->p50[0], q->p99[0], q->p50[1], dk, q->p50[1] / q->p50[0], rk,
                (unsigned long long)q->check[0], ok ? "identical" : "DIFFER");
    }
    fprintf(r,
            "\nSiyu %d runs per query, SQLite and DuckDB %d (after one warm-up each)%s. "
            "Currency: one message event and one relationship add applied as the writer "
            "applies them (relationship change %.0f us), then A3 read again: %s.\n",
            runs, peer_runs, duck_load > 0 ? "; DuckDB loaded the CSV export first" : "", apply_us,
            current ? "the new event and add show" : "NOT SHOWN");
    fclose(r);
    bench_emit(rep, out_path);
    free(rep);
    free(ans);
    free(lat);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 4; i++)
            free(qs[k].lite[i]), free(qs[k].duck[i]);
    analytics_free(an);
    engine_free(e);
    store_close(st);
    return same && current ? 0 : 1;
}
