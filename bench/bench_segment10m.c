/* bench_segment10m.c — the issue-4 segment benchmark: one tenant of
 * --customers (10,000,000) customers, 2,000 employees (Zipf), 500 channels,
 * 34 regions (Zipf), 200 tags (Zipf, 0-12 per customer) and about --events
 * (100,000,000) events over 3 years, generated deterministically (--seed)
 * into a real Siyu data directory (store_open runs the migrations, then a raw
 * connection bulk-inserts). Then, in one run:
 *
 *   1. the engine is built from the store (time, VmRSS/VmHWM before and
 *      after) and the five segments S1-S5 are evaluated --runs times each:
 *      count (engine_eval + cardinality) and first page (engine_eval +
 *      engine_page of 100 rows);
 *   2. the same queries run as plain SQL over the base tables in SQLite, on
 *      its own connection to the same file, with the indexes listed in
 *      peer_indexes below (--peer-runs times);
 *   3. the same queries run in DuckDB (bench/duckdb/segpeer.mjs, npm package
 *      @duckdb/node-api) on the same data, exported once to CSV and loaded
 *      into DIR/duck.db with tag memberships sorted by tag;
 *
 * and every system's result is checksummed (count + FNV-1a over the sorted
 * customer ids; the first page's ids and sort keys in order). The exit status
 * is 1 when any checksum differs. The Markdown report is printed and appended
 * to --out.
 *
 *   make bench-segment BENCH_ARGS="--customers 1000000 --events 10000000"
 *   ./build/bench_segment10m --dir /tmp/seg10m --out bench/RESULTS.md
 *
 * --dir DIR keeps the generated data (and the DuckDB file) in DIR: a rerun
 * with the same scale and seed skips generation, indexing and loading.
 * --prepare-only stops after that (generation, indexes, DuckDB load). */
#define BENCH_NAME "bench_segment10m"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_util.h"
#include "segment/engine.h"
#include "segment/expr.h"
#include "store/store.h"
#include "store/tenant.h"

/* The generator's "now" (2026-11-01 00:00 UTC); every query runs at it. */
#define NOW 1793491200LL
#define DAY 86400LL
#define SPAN (3 * 365 * DAY) /* events and first_added over 3 years */
#define N_EMPLOYEES 2000
#define N_CHANNELS 500
#define N_TAGS 200
#define N_DEPARTMENTS 20
#define N_STORES 100
#define PAGE 100
#define MAX_EV_PER_CUSTOMER 4000

/* ---- deterministic randomness: xoshiro256** seeded by splitmix64 ---------- */

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

static uint32_t rnd(uint32_t n) {
    return (uint32_t)(unif() * n);
}

/* Zipf(s) over 0..n-1 by inverse CDF (rank 0 most popular). */
typedef struct zipf {
    uint32_t n;
    double *cdf;
} zipf;

static void zipf_init(zipf *z, uint32_t n, double s) {
    z->n = n;
    z->cdf = malloc(n * sizeof *z->cdf);
    if (!z->cdf) die("out of memory");
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

/* ---- the data set ----------------------------------------------------------- */

/* 34 provincial-level regions; Zipf-popular in this order. */
static const char *const regions[34] = {"广东",   "浙江", "江苏", "上海",   "北京", "山东", "四川",
                                        "河南",   "湖北", "福建", "湖南",   "安徽", "河北", "陕西",
                                        "重庆",   "辽宁", "天津", "江西",   "广西", "云南", "山西",
                                        "黑龙江", "吉林", "贵州", "内蒙古", "新疆", "甘肃", "海南",
                                        "宁夏",   "青海", "西藏", "香港",   "澳门", "台湾"};
static const char *const stages[5] = {"lead", "new", "repeat", "vip", "dormant"};
static const double stage_cdf[5] = {0.20, 0.50, 0.80, 0.90, 1.00};
static const char *const statuses[4] = {"active", "deleted_by_customer", "deleted_by_employee",
                                        "transferred"};
static const double status_cdf[4] = {0.82, 0.90, 0.96, 1.00};
static const char *const ev_types[6] = {"view", "message", "order", "page.view", "share", "coupon"};
static const double ev_cdf[6] = {0.40, 0.60, 0.70, 0.80, 0.90, 1.00};

static uint32_t pick(const double *cdf, uint32_t n) {
    double u = unif();
    for (uint32_t i = 0; i < n; i++)
        if (u < cdf[i]) return i;
    return n - 1;
}

typedef struct params {
    long customers;
    long events; /* target; the generated number is close to it */
    uint64_t seed;
} params;

typedef struct gen_stats {
    int64_t tenant;
    long customers, events, tags, rels;
    double seconds;
} gen_stats;

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

/* Generates the tenant's data in dir/siyu.db (already migrated, tenant
 * created) on a raw connection without journal or fsync: the engine only
 * reads it. */
static void generate(const char *dir, const params *p, gen_stats *gs) {
    char path[600];
    snprintf(path, sizeof path, "%s/siyu.db", dir);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) die("open %s", path);
    xexec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-1000000;");
    int64_t t = gs->tenant;
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
    snprintf(sql, sizeof sql,
             "INSERT INTO tag_group(tenant_id, name, created_at, updated_at) "
             "VALUES (%" PRId64 ", 'bench', 1, 1)",
             t);
    xexec(db, sql);
    int64_t tg = sqlite3_last_insert_rowid(db);
    for (int i = 0; i < N_TAGS; i++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO tag(tenant_id, group_id, name, created_at, updated_at) "
                 "VALUES (%" PRId64 ", %" PRId64 ", 'T%03d', 1, 1)",
                 t, tg, i + 1);
        xexec(db, sql);
    }
    int64_t tag0 = sqlite3_last_insert_rowid(db) - (N_TAGS - 1);
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

    sqlite3_stmt *cu = xprep(db, "INSERT INTO customer(tenant_id, gender, first_added_at, region, "
                                 "stage, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
    sqlite3_stmt *re = xprep(db, "INSERT OR IGNORE INTO relationship(tenant_id, customer_id, "
                                 "employee_id, status, added_at, state, updated_at) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)");
    sqlite3_stmt *ta = xprep(db, "INSERT OR IGNORE INTO customer_tag(tenant_id, customer_id, "
                                 "tag_id, created_at) VALUES (?, ?, ?, ?)");
    sqlite3_stmt *ev = xprep(db, "INSERT INTO event(tenant_id, customer_id, type, ts, source, "
                                 "props) VALUES (?, ?, ?, ?, 'api', ?)");
    zipf zt, ze, zc, zr;
    zipf_init(&zt, N_TAGS, 1.0);
    zipf_init(&ze, N_EMPLOYEES, 1.0);
    zipf_init(&zc, N_CHANNELS, 0.8);
    zipf_init(&zr, 34, 1.0);
    double mean = (double)p->events / (double)p->customers;
    uint32_t *ts = malloc(MAX_EV_PER_CUSTOMER * sizeof *ts);
    if (!ts) die("out of memory");
    xexec(db, "BEGIN");
    for (long i = 0; i < p->customers; i++) {
        int64_t first = NOW - (int64_t)(unif() * SPAN);
        double r = unif();
        sqlite3_bind_int64(cu, 1, t);
        sqlite3_bind_int(cu, 2, (int)rnd(3));
        sqlite3_bind_int64(cu, 3, first);
        if (r < 0.03)
            sqlite3_bind_null(cu, 4);
        else
            sqlite3_bind_text(cu, 4, regions[zipf_draw(&zr)], -1, SQLITE_STATIC);
        if (unif() < 0.02)
            sqlite3_bind_null(cu, 5);
        else
            sqlite3_bind_text(cu, 5, stages[pick(stage_cdf, 5)], -1, SQLITE_STATIC);
        sqlite3_bind_int64(cu, 6, first);
        sqlite3_bind_int64(cu, 7, first);
        xstep(db, cu);
        int64_t cid = sqlite3_last_insert_rowid(db);
        gs->customers++;

        int nrel = unif() < 0.15 ? 2 : 1;
        for (int k = 0; k < nrel; k++) {
            char state[16];
            snprintf(state, sizeof state, "ch%03u", zipf_draw(&zc) + 1);
            sqlite3_bind_int64(re, 1, t);
            sqlite3_bind_int64(re, 2, cid);
            sqlite3_bind_int64(re, 3, emp0 + zipf_draw(&ze));
            sqlite3_bind_text(re, 4, statuses[pick(status_cdf, 4)], -1, SQLITE_STATIC);
            sqlite3_bind_int64(re, 5, first);
            sqlite3_bind_text(re, 6, state, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(re, 7, first);
            xstep(db, re);
            gs->rels += sqlite3_changes(db);
        }
        for (uint32_t k = rnd(13); k > 0; k--) {
            sqlite3_bind_int64(ta, 1, t);
            sqlite3_bind_int64(ta, 2, cid);
            sqlite3_bind_int64(ta, 3, tag0 + zipf_draw(&zt));
            sqlite3_bind_int64(ta, 4, first);
            xstep(db, ta);
            gs->tags += sqlite3_changes(db);
        }

        /* Events: about mean per customer, more for older customers
         * (exponential x tenure); 35% stopped being active at some point. */
        double tenure = (double)(NOW - first) / (double)SPAN;
        double x = -log(1.0 - unif()) * 2.0 * tenure * mean + unif(); /* unbiased rounding */
        uint32_t nev = x >= MAX_EV_PER_CUSTOMER ? MAX_EV_PER_CUSTOMER : (uint32_t)x;
        int64_t end = unif() < 0.35 ? first + (int64_t)(unif() * (double)(NOW - first)) : NOW;
        for (uint32_t k = 0; k < nev; k++)
            ts[k] = (uint32_t)(first + (int64_t)(unif() * (double)(end - first + 1)));
        qsort(ts, nev, sizeof *ts, cmp_u32);
        for (uint32_t k = 0; k < nev; k++) {
            uint32_t ty = pick(ev_cdf, 6);
            sqlite3_bind_int64(ev, 1, t);
            sqlite3_bind_int64(ev, 2, cid);
            sqlite3_bind_text(ev, 3, ev_types[ty], -1, SQLITE_STATIC);
            sqlite3_bind_int64(ev, 4, ts[k]);
            if (ty == 2) {
                /* Order amounts in yuan with 2 decimals, a few large orders. */
                uint32_t yuan = 9 + rnd(300) + (rnd(10) == 0 ? rnd(3000) : 0);
                char props[64];
                snprintf(props, sizeof props, "{\"amount\":%u.%02u,\"sku\":\"k%u\"}", yuan,
                         rnd(100), rnd(5000));
                sqlite3_bind_text(ev, 5, props, -1, SQLITE_TRANSIENT);
            } else {
                sqlite3_bind_null(ev, 5);
            }
            xstep(db, ev);
        }
        gs->events += nev;
        if ((i + 1) % 250000 == 0) {
            xexec(db, "COMMIT; BEGIN");
            fprintf(stderr, "generate: %ld customers, %ld events, %.0f s\n", i + 1, gs->events,
                    now_s() - t0);
        }
    }
    xexec(db, "COMMIT");
    free(ts);
    free(zt.cdf), free(ze.cdf), free(zc.cdf), free(zr.cdf);
    sqlite3_finalize(cu), sqlite3_finalize(re), sqlite3_finalize(ta), sqlite3_finalize(ev);
    sqlite3_close(db);
    gs->seconds = now_s() - t0;
}

/* ---- the SQLite peer's indexes ---------------------------------------------- */

/* What a DBA would add for these queries (the schema's own indexes stay):
 * covering indexes for tag membership by tag, relationships by status and
 * by employee, customers by region and stage, events by type and time, and
 * an expression index for the order amounts in cents. */
static const char *const peer_indexes[] = {
    "CREATE INDEX IF NOT EXISTS peer_customer_tag ON customer_tag(tenant_id, tag_id, customer_id)",
    "CREATE INDEX IF NOT EXISTS peer_rel_status ON relationship(tenant_id, status, customer_id)",
    "CREATE INDEX IF NOT EXISTS peer_rel_employee ON relationship(tenant_id, employee_id, status, "
    "customer_id)",
    "CREATE INDEX IF NOT EXISTS peer_customer_region ON customer(tenant_id, region, stage)",
    "CREATE INDEX IF NOT EXISTS peer_event_type_ts ON event(tenant_id, type, ts, customer_id)",
    "CREATE INDEX IF NOT EXISTS peer_event_order ON event(tenant_id, customer_id, "
    "CAST(round(json_extract(props, '$.amount') * 100) AS INTEGER)) WHERE type = 'order'",
    "ANALYZE",
    NULL,
};

/* ---- queries ----------------------------------------------------------------- */

typedef struct query {
    const char *name, *what;
    const char *expr;
    engine_sort sort;
    bool desc;
    char *lite_ids, *lite_page; /* SQLite: the ids (unordered); first page (id, key) */
    char *duck_ids, *duck_page; /* DuckDB: same */
    /* results */
    uint64_t count[3], sum[3], page_sum[3];
    double count_p50[3], count_p99[3], page_p50[3], page_p99[3];
} query;

enum { SYS_ENGINE, SYS_SQLITE, SYS_DUCKDB };

static char *xstrdup_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) die("out of memory");
    va_end(ap);
    return s;
}

/* Tag A, B popular, C mid-popular; three big regions; one employee of rank 10;
 * five tags of various popularity. */
#define S_TAG_A "T001"
#define S_TAG_B "T002"
#define S_TAG_C "T020"
#define S_EMP "E0010"
#define S_SPENT_YUAN 1000

/* The ids of the records of table named names (SQL literals), as the text
 * "id, id, ...": the peers get constant ids (the engine resolves the names
 * itself, inside the timed evaluation), so DuckDB's zone maps on the sorted
 * tag_id can skip the other tags and SQLite seeks each id. */
static char *record_ids(sqlite3 *db, const char *table, int64_t t, const char *names) {
    char *sql = xstrdup_printf("SELECT group_concat(id, ', ') FROM (SELECT id FROM %s WHERE "
                               "tenant_id = %" PRId64 " AND name IN (%s) ORDER BY id)",
                               table, t, names);
    sqlite3_stmt *st = xprep(db, sql);
    if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_type(st, 0) == SQLITE_NULL)
        die("no %s named %s", table, names);
    char *ids = xstrdup_printf("%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    free(sql);
    return ids;
}

static void queries_init(query *q, int64_t t, sqlite3 *db) {
    /* Pieces of SQL: SQLite filters by tenant; DuckDB holds only this
     * tenant's rows. */
    char *id_a = record_ids(db, "tag", t, "'" S_TAG_A "'");
    char *id_b = record_ids(db, "tag", t, "'" S_TAG_B "'");
    char *id_c = record_ids(db, "tag", t, "'" S_TAG_C "'");
    char *id_5 = record_ids(db, "tag", t, "'T005', 'T010', 'T025', 'T050', 'T100'");
    char *id_e = record_ids(db, "employee", t, "'" S_EMP "'");
    char tt[64];
    snprintf(tt, sizeof tt, "tenant_id = %" PRId64 " AND ", t);
    char ett[64];
    snprintf(ett, sizeof ett, "e.tenant_id = %" PRId64 " AND ", t);
    const char *tn[2] = {tt, ""};
    for (int s = 0; s < 2; s++) {
        const char *w = tn[s];
#define TAGSET(ids)                                                                                \
    xstrdup_printf("SELECT customer_id FROM customer_tag WHERE %stag_id IN (%s)", w, ids)
        char *ta = TAGSET(id_a), *tb = TAGSET(id_b), *tc = TAGSET(id_c), *t5 = TAGSET(id_5);
#undef TAGSET
        char *lost = xstrdup_printf("SELECT customer_id FROM relationship WHERE %sstatus IN "
                                    "('deleted_by_customer', 'deleted_by_employee')",
                                    w);
        /* INTERSECTs first, then EXCEPTs: SQLite's compound operators are
         * left-associative, the standard's INTERSECT binds tighter; this
         * order means the same in both. */
        char *s1 = xstrdup_printf("%s INTERSECT %s EXCEPT %s", ta, tb, tc);
        char *s2 =
            xstrdup_printf("%s INTERSECT %s INTERSECT SELECT id FROM customer WHERE %sregion "
                           "IN ('广东', '浙江', '江苏') AND stage = 'repeat' EXCEPT %s "
                           "EXCEPT %s",
                           ta, tb, w, tc, lost);
        char *s4 = xstrdup_printf("SELECT customer_id FROM relationship WHERE %sstatus = 'active' "
                                  "AND employee_id IN (%s) INTERSECT %s EXCEPT %s",
                                  w, id_e, t5, lost);
        char *s5 = xstrdup_printf(
            "SELECT customer_id FROM event WHERE %stype = 'order' AND ts BETWEEN %lld AND %lld "
            "INTERSECT SELECT customer_id FROM event WHERE %stype = 'view' AND ts BETWEEN %lld "
            "AND %lld EXCEPT SELECT customer_id FROM event WHERE %stype = 'message' AND ts "
            "BETWEEN %lld AND %lld",
            w, NOW - 30 * DAY, NOW, w, NOW - 14 * DAY, NOW, w, NOW - 14 * DAY, NOW);
        /* S3: spent and orders from the order events, last_active as "no
         * event at all since now - 30 days" (age > 30d = ts < now - 30d). */
        const char *cents =
            s == 0 ? "CAST(round(json_extract(props, '$.amount') * 100) AS INTEGER)" : "cents";
        char *s3from = xstrdup_printf(
            "(SELECT customer_id, sum(coalesce(%s, 0)) AS spent, count(*) AS n FROM event WHERE "
            "%stype = 'order' GROUP BY customer_id) o WHERE n >= 2 AND spent > %lld AND NOT "
            "EXISTS (SELECT 1 FROM event e WHERE %se.customer_id = o.customer_id AND e.ts >= %lld)",
            cents, w, (long long)S_SPENT_YUAN * 100, s == 0 ? ett : "", NOW - 30 * DAY);
        char *ids[5] = {s1, s2, xstrdup_printf("SELECT customer_id FROM %s", s3from), s4, s5};
        for (int k = 0; k < 5; k++) {
            /* The first page: (id, sort key), the key being the id itself
             * when listing by id. */
            char *page =
                k == 2 ? xstrdup_printf("SELECT customer_id, spent FROM %s ORDER BY spent DESC, "
                                        "customer_id LIMIT %d",
                                        s3from, PAGE)
                       : xstrdup_printf("SELECT customer_id, customer_id AS k FROM (%s) ORDER BY "
                                        "1 LIMIT %d",
                                        ids[k], PAGE);
            if (s == 0)
                q[k].lite_ids = ids[k], q[k].lite_page = page;
            else
                q[k].duck_ids = ids[k], q[k].duck_page = page;
        }
        free(ta), free(tb), free(tc), free(t5), free(lost), free(s3from);
    }
    free(id_a), free(id_b), free(id_c), free(id_5), free(id_e);
}

/* In the expression language (docs/SEGMENTS.md); "not deleted" is not lost. */
static query qs[5] = {
    {.name = "S1",
     .what = "tag A and tag B and not tag C",
     .expr = "tag(\"" S_TAG_A "\") and tag(\"" S_TAG_B "\") and not tag(\"" S_TAG_C "\")"},
    {.name = "S2",
     .what = "S1, 3 regions, stage, not lost",
     .expr = "tag(\"" S_TAG_A "\") and tag(\"" S_TAG_B "\") and not tag(\"" S_TAG_C
             "\") and region in (\"广东\", \"浙江\", \"江苏\") and stage = \"repeat\" and not "
             "relationship_status = \"lost\""},
    {.name = "S3",
     .what = "spent > P, inactive 30 d, orders >= 2; top 100 by spent",
     .expr = "spent > 1000 and last_active > 30d and orders_total >= 2",
     .sort = ENGINE_SORT_SPENT,
     .desc = true},
    {.name = "S4",
     .what = "one employee's customers, any of 5 tags, not lost",
     .expr = "employee(\"" S_EMP "\") and tag in (\"T005\", \"T010\", \"T025\", \"T050\", "
             "\"T100\") and not relationship_status = \"lost\""},
    {.name = "S5",
     .what = "ordered 30 d, viewed but no message 14 d",
     .expr = "did(\"order\", 30d) and did(\"view\", 14d) and not did(\"message\", 14d)"},
};

/* ---- checksums (the DuckDB script computes the same) ------------------------- */

#define FNV_OFF 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t fnv_u64(uint64_t h, uint64_t v) {
    return (h ^ v) * FNV_PRIME;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void pct(double *lat, int n, double *p50, double *p99) {
    qsort(lat, (size_t)n, sizeof *lat, cmp_d);
    *p50 = lat[n / 2];
    *p99 = lat[n * 99 / 100];
}

static void mem_kb(long *rss, long *hwm) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    *rss = *hwm = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) *rss = strtol(line + 6, NULL, 10);
        if (strncmp(line, "VmHWM:", 6) == 0) *hwm = strtol(line + 6, NULL, 10);
    }
    if (f) fclose(f);
}

/* ---- engine -------------------------------------------------------------------- */

static void run_engine(const engine *e, query *q, int runs) {
    siyu_err err = {0};
    expr_node *n = NULL;
    expr_err perr;
    if (expr_parse(q->expr, strlen(q->expr), &n, &perr) != 0) die("%s", perr.text);
    double *lat = malloc((size_t)runs * sizeof *lat);
    engine_row page[PAGE];
    size_t np = 0;
    roaring_bitmap_t *bm = NULL;
    /* Warm-up and checksums. */
    if (engine_eval(e, n, NOW, &bm, &err) != 0) die("eval %s: %s", q->name, err.msg);
    uint64_t card = roaring_bitmap_get_cardinality(bm);
    uint32_t *dense = malloc((card ? card : 1) * sizeof *dense);
    if (!lat || !dense) die("out of memory");
    roaring_bitmap_to_uint32_array(bm, dense);
    uint64_t h = FNV_OFF;
    for (uint64_t i = 0; i < card; i++)
        h = fnv_u64(h, (uint64_t)engine_customer_id(e, dense[i]));
    free(dense);
    q->count[SYS_ENGINE] = card;
    q->sum[SYS_ENGINE] = h;
    if (engine_page(e, bm, q->sort, q->desc, NULL, PAGE, page, &np) != 0) die("page: no memory");
    h = FNV_OFF;
    for (size_t i = 0; i < np; i++)
        h = fnv_u64(fnv_u64(h, (uint64_t)page[i].customer_id), (uint64_t)page[i].key);
    q->page_sum[SYS_ENGINE] = h;
    roaring_bitmap_free(bm);

    for (int r = 0; r < runs; r++) {
        double a = now_s();
        if (engine_eval(e, n, NOW, &bm, &err) != 0) die("eval %s: %s", q->name, err.msg);
        volatile uint64_t c = roaring_bitmap_get_cardinality(bm);
        (void)c;
        lat[r] = (now_s() - a) * 1000;
        roaring_bitmap_free(bm);
    }
    pct(lat, runs, &q->count_p50[SYS_ENGINE], &q->count_p99[SYS_ENGINE]);
    for (int r = 0; r < runs; r++) {
        double a = now_s();
        if (engine_eval(e, n, NOW, &bm, &err) != 0) die("eval %s: %s", q->name, err.msg);
        if (engine_page(e, bm, q->sort, q->desc, NULL, PAGE, page, &np) != 0) die("page");
        lat[r] = (now_s() - a) * 1000;
        roaring_bitmap_free(bm);
    }
    pct(lat, runs, &q->page_p50[SYS_ENGINE], &q->page_p99[SYS_ENGINE]);
    free(lat);
    expr_free(n);
    fprintf(stderr, "engine %s: %" PRIu64 " customers, count p50 %.3f ms, page p50 %.3f ms\n",
            q->name, q->count[SYS_ENGINE], q->count_p50[SYS_ENGINE], q->page_p50[SYS_ENGINE]);
}

/* ---- SQLite peer ----------------------------------------------------------------- */

static void run_sqlite(sqlite3 *db, query *q, int runs) {
    double *lat = malloc((size_t)runs * sizeof *lat);
    if (!lat) die("out of memory");
    /* Warm-up and checksums: every id in order, then the first page. */
    char *sorted = xstrdup_printf("%s ORDER BY 1", q->lite_ids);
    sqlite3_stmt *s = xprep(db, sorted);
    free(sorted);
    uint64_t h = FNV_OFF, n = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        h = fnv_u64(h, (uint64_t)sqlite3_column_int64(s, 0)), n++;
    if (rc != SQLITE_DONE) die("sqlite %s: %s", q->name, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    q->count[SYS_SQLITE] = n;
    q->sum[SYS_SQLITE] = h;
    char *count_sql = xstrdup_printf("SELECT count(*) FROM (%s)", q->lite_ids);
    sqlite3_stmt *cs = xprep(db, count_sql), *ps = xprep(db, q->lite_page);
    free(count_sql);
    for (int r = 0; r < runs; r++) {
        double a = now_s();
        if (sqlite3_step(cs) != SQLITE_ROW) die("sqlite count %s: %s", q->name, sqlite3_errmsg(db));
        if ((uint64_t)sqlite3_column_int64(cs, 0) != n) die("sqlite count %s differs", q->name);
        sqlite3_reset(cs);
        lat[r] = (now_s() - a) * 1000;
    }
    pct(lat, runs, &q->count_p50[SYS_SQLITE], &q->count_p99[SYS_SQLITE]);
    for (int r = 0; r < runs; r++) {
        double a = now_s();
        h = FNV_OFF;
        while ((rc = sqlite3_step(ps)) == SQLITE_ROW)
            h = fnv_u64(fnv_u64(h, (uint64_t)sqlite3_column_int64(ps, 0)),
                        (uint64_t)sqlite3_column_int64(ps, 1));
        if (rc != SQLITE_DONE) die("sqlite page %s: %s", q->name, sqlite3_errmsg(db));
        sqlite3_reset(ps);
        lat[r] = (now_s() - a) * 1000;
    }
    q->page_sum[SYS_SQLITE] = h;
    pct(lat, runs, &q->page_p50[SYS_SQLITE], &q->page_p99[SYS_SQLITE]);
    sqlite3_finalize(cs), sqlite3_finalize(ps);
    free(lat);
    fprintf(stderr, "sqlite %s: %" PRIu64 " customers, count p50 %.1f ms, page p50 %.1f ms\n",
            q->name, n, q->count_p50[SYS_SQLITE], q->page_p50[SYS_SQLITE]);
}

/* ---- DuckDB peer: export once, load and query in bench/duckdb/segpeer.mjs ----- */

/* Writes the rows of sql as CSV (no quoting needed: no commas, quotes or
 * newlines in this data; NULL is an empty field). */
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
        {"customer.csv", "SELECT id, region, stage FROM customer WHERE tenant_id = %lld"},
        {"tag.csv", "SELECT id, name FROM tag WHERE tenant_id = %lld"},
        {"employee.csv", "SELECT id, name FROM employee WHERE tenant_id = %lld"},
        {"customer_tag.csv", "SELECT tag_id, customer_id FROM customer_tag WHERE tenant_id = %lld "
                             "ORDER BY tag_id, customer_id"},
        {"relationship.csv",
         "SELECT customer_id, employee_id, status FROM relationship WHERE tenant_id = %lld"},
        {"event.csv", "SELECT customer_id, type, ts, CASE WHEN type = 'order' THEN "
                      "CAST(round(json_extract(props, '$.amount') * 100) AS INTEGER) END "
                      "FROM event WHERE tenant_id = %lld AND customer_id IS NOT NULL"},
    };
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        char sql[512], path[700];
        snprintf(sql, sizeof sql, ex[i].sql, (long long)t);
        snprintf(path, sizeof path, "%s/%s", csvdir, ex[i].file);
        double a = now_s();
        long rows = export_csv(db, sql, path);
        fprintf(stderr, "export: %s %ld rows in %.1f s\n", ex[i].file, rows, now_s() - a);
    }
}

/* Runs the node script; parses its JSON lines into qs. Returns its load time
 * (0 when the database was already loaded). */
static double run_duckdb(const char *script, const char *dir, const char *order, int runs,
                         bool load_only) {
    char qpath[600], dbpath[600], csvdir[600], runs_s[16];
    snprintf(qpath, sizeof qpath, "%s/duck-queries.json", dir);
    snprintf(dbpath, sizeof dbpath, "%s/duck-%s.db", dir, order);
    snprintf(csvdir, sizeof csvdir, "%s/csv", dir);
    snprintf(runs_s, sizeof runs_s, "%d", runs);
    json_t *arr = json_array();
    for (int k = 0; k < 5; k++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "name", qs[k].name, "ids",
                                             qs[k].duck_ids, "page", qs[k].duck_page));
    if (json_dump_file(arr, qpath, JSON_INDENT(1)) != 0) die("cannot write %s", qpath);
    json_decref(arr);
    char *argv[] = {"/usr/bin/node",
                    (char *)script,
                    "--db",
                    dbpath,
                    "--csv",
                    csvdir,
                    "--queries",
                    qpath,
                    "--runs",
                    runs_s,
                    "--event-order",
                    (char *)order,
                    load_only ? "--load-only" : NULL,
                    NULL};
    char *out = NULL;
    int st = run(&out, argv);
    if (st != 0) die("node %s exited with %d", script, st);
    double load_s = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        if (!j) die("duckdb peer: bad line: %s", line);
        if (json_object_get(j, "load_s")) load_s = json_real_value(json_object_get(j, "load_s"));
        const char *name = json_string_value(json_object_get(j, "q"));
        for (int k = 0; name && k < 5; k++) {
            if (strcmp(name, qs[k].name) != 0) continue;
            query *q = &qs[k];
            q->count[SYS_DUCKDB] = (uint64_t)jint(j, "count");
            q->sum[SYS_DUCKDB] = strtoull(json_string_value(json_object_get(j, "sum")), NULL, 16);
            q->page_sum[SYS_DUCKDB] =
                strtoull(json_string_value(json_object_get(j, "page_sum")), NULL, 16);
            q->count_p50[SYS_DUCKDB] = json_number_value(json_object_get(j, "count_p50"));
            q->count_p99[SYS_DUCKDB] = json_number_value(json_object_get(j, "count_p99"));
            q->page_p50[SYS_DUCKDB] = json_number_value(json_object_get(j, "page_p50"));
            q->page_p99[SYS_DUCKDB] = json_number_value(json_object_get(j, "page_p99"));
        }
        json_decref(j);
    }
    free(out);
    /* Keep the load time beside the DuckDB file for the reports of later runs. */
    char lpath[700];
    snprintf(lpath, sizeof lpath, "%s.load_s", dbpath);
    FILE *f = fopen(lpath, load_s > 0 ? "w" : "r");
    if (f && load_s > 0)
        fprintf(f, "%.1f\n", load_s);
    else if (f && fscanf(f, "%lf", &load_s) != 1)
        load_s = 0;
    if (f) fclose(f);
    return load_s;
}

/* ---- main ---------------------------------------------------------------------- */

static const char *duck_load_buf(double s) {
    static char b[64];
    if (s > 0)
        snprintf(b, sizeof b, "%.0f s", s);
    else
        snprintf(b, sizeof b, "unknown");
    return b;
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

int main(int argc, char **argv) {
    params p = {.customers = 10000000, .events = 100000000, .seed = 20261101};
    int runs = 100, peer_runs = 5;
    const char *dir_arg = NULL, *out_path = NULL, *script = "bench/duckdb/segpeer.mjs";
    const char *duck_order = "customer";
    bool prepare_only = false, keep = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--prepare-only") == 0) {
            prepare_only = true;
            continue;
        }
        if (strcmp(a, "--keep") == 0) {
            keep = true;
            continue;
        }
        if (!v) die("%s needs a value", a);
        i++;
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
        else if (strcmp(a, "--duckdb-events") == 0)
            duck_order = v;
        else
            die("unknown option %s (--customers N --events N --seed N --runs N --peer-runs N "
                "--dir DIR --out FILE --duckdb-script PATH --duckdb-events customer|type_ts "
                "--prepare-only "
                "--keep)",
                a);
    }
    if (strcmp(duck_order, "customer") != 0 && strcmp(duck_order, "type_ts") != 0)
        die("--duckdb-events is customer or type_ts");
    if (p.customers < 1000 || p.customers > 100000000 || p.events < 0 || p.events > 2000000000L ||
        runs < 1 || runs > 100000 || peer_runs < 1 || peer_runs > 1000)
        die("out of range: --customers 1000..10^8, --events 0..2*10^9, --runs 1..10^5, "
            "--peer-runs 1..1000");
    char script_abs[4096];
    if (!realpath(script, script_abs)) die("no DuckDB script at %s", script);

    char dir[512];
    if (dir_arg) {
        if (snprintf(dir, sizeof dir, "%s", dir_arg) >= (int)sizeof dir) die("--dir too long");
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) die("cannot make %s", dir);
    } else {
        bench_tmpdir(dir, sizeof dir, "segment10m");
    }
    char marker[600], want[256];
    snprintf(marker, sizeof marker, "%s/bench-segment10m.txt", dir);
    snprintf(want, sizeof want, "customers %ld events %ld seed %" PRIu64 " now %lld\n", p.customers,
             p.events, p.seed, NOW);

    gen_stats gs = {0};
    double index_s = 0, export_s = 0, duck_load_s = 0;
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    if (file_exists(marker)) {
        FILE *f = fopen(marker, "r");
        char have[256] = "";
        if (!f || !fgets(have, sizeof have, f)) die("cannot read %s", marker);
        long hc = 0, he = 0;
        if (fscanf(f, "generated customers %ld events %ld tenant %" SCNd64 "\n", &hc, &he,
                   &gs.tenant) != 3 ||
            fscanf(f, "generate_s %lf index_s %lf export_s %lf rels %ld tags %ld", &gs.seconds,
                   &index_s, &export_s, &gs.rels, &gs.tags) != 5)
            die("bad %s", marker);
        fclose(f);
        if (strcmp(have, want) != 0)
            die("%s holds another data set (%.*s); use another --dir", dir,
                (int)strcspn(have, "\n"), have);
        gs.customers = hc, gs.events = he;
        fprintf(stderr, "reusing the data in %s: %ld customers, %ld events\n", dir, hc, he);
    } else {
        char db[600];
        snprintf(db, sizeof db, "%s/siyu.db", dir);
        if (file_exists(db)) die("%s has a siyu.db but no %s: use an empty --dir", dir, marker);
        store *st = store_open(dir, &o, &err);
        if (!st) die("store_open: %s", err.msg);
        tenant_input tin = {.name = "bench", .actor = "bench"};
        if (store_write(st, tenant_create, &tin) != 0) die("tenant_create");
        gs.tenant = tin.id;
        store_close(st);
        seed_rng(p.seed);
        generate(dir, &p, &gs);
        fprintf(stderr,
                "generated %ld customers, %ld relationships, %ld tag memberships, %ld "
                "events in %.1f s\n",
                gs.customers, gs.rels, gs.tags, gs.events, gs.seconds);
        /* The peer's indexes and the DuckDB copy belong to the data set. */
        sqlite3 *raw;
        if (sqlite3_open(db, &raw) != SQLITE_OK) die("open %s", db);
        xexec(raw, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-1000000");
        double a = now_s();
        for (int i = 0; peer_indexes[i]; i++) {
            double b = now_s();
            xexec(raw, peer_indexes[i]);
            fprintf(stderr, "%s: %.1f s\n", peer_indexes[i], now_s() - b);
        }
        index_s = now_s() - a;
        char csvdir[600];
        snprintf(csvdir, sizeof csvdir, "%s/csv", dir);
        a = now_s();
        duck_export(raw, gs.tenant, csvdir);
        export_s = now_s() - a;
        sqlite3_close(raw);
        FILE *f = fopen(marker, "w");
        if (!f) die("cannot write %s", marker);
        fprintf(f, "%sgenerated customers %ld events %ld tenant %" PRId64 "\n", want, gs.customers,
                gs.events, gs.tenant);
        fprintf(f, "generate_s %.1f index_s %.1f export_s %.1f rels %ld tags %ld\n", gs.seconds,
                index_s, export_s, gs.rels, gs.tags);
        fclose(f);
        if (!prepare_only) {
            /* Measure the engine's memory in a fresh process: run again on
             * the data now in dir. */
            char *again[64];
            int k = 0;
            for (int i = 0; i < argc && k < 60; i++)
                again[k++] = argv[i];
            if (!dir_arg) again[k++] = "--dir", again[k++] = dir;
            again[k] = NULL;
            fflush(NULL);
            execv("/proc/self/exe", again);
            die("cannot run myself again: %s", strerror(errno));
        }
    }
    char dbpath[600];
    snprintf(dbpath, sizeof dbpath, "%s/siyu.db", dir);
    sqlite3 *db;
    if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        die("open %s", dbpath);
    queries_init(qs, gs.tenant, db);
    sqlite3_close(db);
    if (prepare_only) {
        duck_load_s = run_duckdb(script_abs, dir, duck_order, 1, true);
        printf("prepared %s (DuckDB load %.1f s)\n", dir, duck_load_s);
        return 0;
    }

    /* 1. The engine. */
    long rss0, hwm0, rss1, hwm1;
    mem_kb(&rss0, &hwm0);
    store *st = store_open(dir, &o, &err);
    if (!st) die("store_open: %s", err.msg);
    double a = now_s();
    engine *e = NULL;
    if (engine_build(st, gs.tenant, &e, &err) != 0) die("engine_build: %s", err.msg);
    double build_s = now_s() - a;
    mem_kb(&rss1, &hwm1);
    uint64_t ebytes = engine_bytes(e);
    fprintf(stderr,
            "engine: %u customers, %" PRIu64 " events, build %.1f s, RSS %ld -> %ld MB, "
            "HWM %ld MB, engine_bytes %" PRIu64 " MB\n",
            engine_customers(e), engine_events(e), build_s, rss0 / 1024, rss1 / 1024, hwm1 / 1024,
            ebytes >> 20);
    uint32_t ecust = engine_customers(e);
    uint64_t eevents = engine_events(e);
    for (int k = 0; k < 5; k++)
        run_engine(e, &qs[k], runs);
    long rss2, hwm2;
    mem_kb(&rss2, &hwm2);
    engine_free(e);
    store_close(st);

    /* 2. SQLite, read-only on the same file. */
    if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        die("open %s", dbpath);
    xexec(db, "PRAGMA cache_size=-1000000; PRAGMA temp_store=MEMORY");
    for (int k = 0; k < 5; k++)
        run_sqlite(db, &qs[k], peer_runs);
    sqlite3_close(db);

    /* 3. DuckDB. */
    duck_load_s = run_duckdb(script_abs, dir, duck_order, peer_runs, false);

    /* Report. */
    bool same = true;
    char *rep = NULL;
    size_t replen = 0;
    FILE *r = open_memstream(&rep, &replen);
    bench_header(r, "Segments at scale (bench_segment10m)");
    FILE *cpu = fopen("/proc/cpuinfo", "r");
    char line[256], model[200] = "unknown";
    while (cpu && fgets(line, sizeof line, cpu))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) snprintf(model, sizeof model, "%.*s", (int)strcspn(c + 2, "\n"), c + 2);
            break;
        }
    if (cpu) fclose(cpu);
    fprintf(r, "- CPU: %s; seed %" PRIu64 ", now %lld\n", model, p.seed, NOW);
    fprintf(r,
            "- Data: %ld customers, %ld events (3 years), %ld relationships, %ld tag memberships "
            "(%d tags), %d employees, %d channels, 34 regions\n",
            gs.customers, gs.events, gs.rels, gs.tags, N_TAGS, N_EMPLOYEES, N_CHANNELS);
    fprintf(r,
            "- Preparation (once per data directory): generation %.0f s, SQLite peer indexes %.0f "
            "s, CSV export %.0f s; DuckDB load %s\n",
            gs.seconds, index_s, export_s, duck_load_buf(duck_load_s));
    fprintf(r, "- DuckDB events table sorted by %s; customer_tag sorted by tag\n",
            strcmp(duck_order, "customer") == 0 ? "customer and time (as the store's timeline)"
                                                : "type and time");
    fprintf(r,
            "- Engine: %u customers, %" PRIu64 " events; built from the store in %.1f s; "
            "VmRSS %ld MB before, %ld MB after the build, %ld MB after the queries; VmHWM %ld MB; "
            "engine_bytes %" PRIu64 " MB\n",
            ecust, eevents, build_s, rss0 / 1024, rss1 / 1024, rss2 / 1024, hwm2 / 1024,
            ebytes >> 20);
    fprintf(r, "- Runs: engine %d per query and kind, SQLite and DuckDB %d (after one warm-up)\n\n",
            runs, peer_runs);
    fprintf(r, "| query | count | engine count p50 / p99 ms | engine page p50 / p99 ms | SQLite "
               "count / page p50 ms | DuckDB count / page p50 ms | DuckDB ÷ engine (count, "
               "page) | SQLite ÷ engine (count, page) | checksums engine / SQLite / DuckDB |\n");
    fprintf(r, "|---|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < 5; k++) {
        query *q = &qs[k];
        bool ok = true;
        for (int s = 1; s < 3; s++)
            ok = ok && q->count[s] == q->count[0] && q->sum[s] == q->sum[0] &&
                 q->page_sum[s] == q->page_sum[0];
        same = same && ok;
        fprintf(r,
                "| %s %s | %" PRIu64 " | %.3f / %.3f | %.3f / %.3f | %.1f / %.1f | %.1f / %.1f | "
                "%.0f×, %.0f× | %.0f×, %.0f× | ",
                q->name, q->what, q->count[0], q->count_p50[0], q->count_p99[0], q->page_p50[0],
                q->page_p99[0], q->count_p50[1], q->page_p50[1], q->count_p50[2], q->page_p50[2],
                q->count_p50[2] / q->count_p50[0], q->page_p50[2] / q->page_p50[0],
                q->count_p50[1] / q->count_p50[0], q->page_p50[1] / q->page_p50[0]);
        for (int s = 0; s < 3; s++)
            fprintf(r, "%s%" PRIu64 ":%016" PRIx64 ":%016" PRIx64, s ? " / " : "", q->count[s],
                    q->sum[s], q->page_sum[s]);
        fprintf(r, " %s |\n", ok ? "same" : "**DIFFERENT**");
    }
    fprintf(r, "\nExpressions:\n\n");
    for (int k = 0; k < 5; k++)
        fprintf(r, "- %s: `%s`%s\n", qs[k].name, qs[k].expr,
                k == 2 ? " — first page by spent descending" : " — first page by customer id");
    fprintf(r, "\nResults %s.\n",
            same ? "identical in all three systems (count, checksum of the sorted ids, checksum "
                   "of the first page)"
                 : "**DIFFER** between the systems (see the checksums)");
    fclose(r);
    bench_emit(rep, out_path);
    free(rep);
    for (int k = 0; k < 5; k++)
        free(qs[k].lite_ids), free(qs[k].lite_page), free(qs[k].duck_ids), free(qs[k].duck_page);
    if (!dir_arg && !keep) {
        char *rm[] = {"/bin/rm", "-rf", dir, NULL}; /* no shell: the path is not quoted */
        if (run(NULL, rm) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    return same ? 0 : 1;
}
