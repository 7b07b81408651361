/* bench_segment.c — a scale check of the segment engine shaped like the
 * issue-4 benchmark (not the 10-million run with its SQLite and DuckDB
 * peers, a separate program): generates one tenant into a
 * temporary store (seeded: --customers N, --events M in total over 3 years,
 * 200 tags with Zipf popularity and 0-12 a customer, 34 skewed regions, 5
 * stages, 2,000 skewed employees in 50 departments and 100 stores, 500
 * channels), builds the engine, validates it, and times S1..S5-like segments
 * (p50/p99 over --runs evaluations, with their counts; S3 also its first
 * 100 by spent descending). Then it applies writes through the mutation API
 * (events, relationships, new customers, tags), prints their cost per
 * operation, times the segments again and validates. A checksum over the
 * counts and first pages catches a speed-up that changes an answer. Prints
 * to stdout; nothing is appended to bench/RESULTS.md.
 *
 *   cmake --build build --target bench_segment
 *   ./build/bench_segment                       # 1,000,000 customers, 10,000,000 events
 *   ./build/bench_segment --customers 100000 --events 1000000 --runs 100
 *   ./build/bench_segment --keep /tmp/seg1m    # keeps the store; later runs reuse it */
#define BENCH_NAME "bench_segment"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_util.h"
#include "segment/engine.h"
#include "store/store.h"
#include "store/tenant.h"

#define NOW 1700000000LL
#define DAY 86400LL
#define SPAN (3 * 365 * DAY)
#define NTAGS 200
#define NEMP 2000

static uint64_t rs = 42;
static uint32_t rnd(uint32_t n) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)(rs % n);
}
static double unit(void) {
    return (double)rnd(1u << 30) / (double)(1u << 30);
}
/* Skewed pick in 0..n-1 (small values popular). */
static uint32_t skew(uint32_t n) {
    double u = unit();
    return (uint32_t)(u * u * u * n);
}

static double zipf_cdf[NTAGS];
static uint32_t zipf_tag(void) {
    double u = unit();
    uint32_t lo = 0, hi = NTAGS - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const char *const TYPES[] = {"view",    "view",    "view",  "view",  "message",
                                    "message", "message", "order", "share", "login"};
static const char *const STAGES[] = {"lead", "new", "repeat", "vip", "dormant"};

typedef struct gen {
    int64_t tenant;
    long customers, events;
    int64_t emp0, tag0;
} gen;

static sqlite3_stmt *prep(store_conn *c, const char *sql) {
    sqlite3_stmt *s = store_conn_stmt(c, sql);
    if (!s) die("prepare: %s", sql);
    return s;
}

static void exec(store_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void exec(store_conn *c, const char *fmt, ...) {
    char sql[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    if (store_conn_exec(c, sql) != 0) die("sql: %s", sql);
}

static int64_t min_id(store_conn *c, const char *table, int64_t t) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT min(id) FROM %s WHERE tenant_id = ?", table);
    sqlite3_stmt *s = prep(c, sql);
    sqlite3_bind_int64(s, 1, t);
    int64_t id = 0;
    store_stmt_query_id(s, &id, NULL);
    return id;
}

static int generate(store_conn *c, void *arg) {
    gen *g = arg;
    long long t = g->tenant;
    for (int i = 0; i < 50; i++) /* departments: 5 regions of 9 sub-departments */
        exec(c,
             "INSERT INTO department(tenant_id, name, parent_id, created_at, updated_at) VALUES "
             "(%lld, 'dep%d', CASE WHEN %d < 5 THEN NULL ELSE (SELECT min(id) + %d FROM department "
             "WHERE tenant_id = %lld) END, 1, 1)",
             t, i, i, i % 5, t);
    for (int i = 0; i < 100; i++)
        exec(c,
             "INSERT INTO store(tenant_id, name, created_at, updated_at) VALUES (%lld, 'store%d', "
             "1, 1)",
             t, i);
    exec(c,
         "INSERT INTO tag_group(tenant_id, name, created_at, updated_at) VALUES (%lld, 'g', 1, 1)",
         t);
    int64_t tg = store_conn_last_id(c);
    for (int i = 0; i < NTAGS; i++)
        exec(c,
             "INSERT INTO tag(tenant_id, group_id, name, created_at, updated_at) "
             "VALUES (%lld, %lld, 'tag%d', 1, 1)",
             t, (long long)tg, i);
    int64_t dep0 = min_id(c, "department", t), sto0 = min_id(c, "store", t);
    for (int i = 0; i < NEMP; i++)
        exec(c,
             "INSERT INTO employee(tenant_id, userid, name, department_id, store_id, "
             "created_at, updated_at) VALUES (%lld, 'u%d', 'emp%d', %lld, %lld, 1, 1)",
             t, i, i, (long long)(dep0 + i % 50), (long long)(sto0 + i % 100));
    g->emp0 = min_id(c, "employee", t);
    g->tag0 = min_id(c, "tag", t);

    sqlite3_stmt *cu = prep(c, "INSERT INTO customer(tenant_id, gender, first_added_at, region, "
                               "stage, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, 1)");
    sqlite3_stmt *re = prep(c, "INSERT OR IGNORE INTO relationship(tenant_id, customer_id, "
                               "employee_id, status, added_at, state, updated_at) "
                               "VALUES (?, ?, ?, ?, 1, ?, 1)");
    sqlite3_stmt *ta = prep(c, "INSERT OR IGNORE INTO customer_tag(tenant_id, customer_id, "
                               "tag_id, created_at) VALUES (?, ?, ?, 1)");
    sqlite3_stmt *ev = prep(c, "INSERT INTO event(tenant_id, customer_id, type, ts, source, "
                               "props) VALUES (?, ?, ?, ?, 'api', ?)");
    static const char *const statuses[] = {"active",
                                           "active",
                                           "active",
                                           "active",
                                           "active",
                                           "active",
                                           "active",
                                           "active",
                                           "active",
                                           "active",
                                           "active",
                                           "active",
                                           "active",
                                           "active",
                                           "active",
                                           "active",
                                           "deleted_by_customer",
                                           "deleted_by_customer",
                                           "deleted_by_employee",
                                           "transferred"};
    double per = (double)g->events / (double)(g->customers ? g->customers : 1);
    long left = g->events;
    for (long i = 0; i < g->customers; i++) {
        sqlite3_bind_int64(cu, 1, t);
        sqlite3_bind_int64(cu, 2, rnd(3));
        sqlite3_bind_int64(cu, 3, NOW - (int64_t)rnd(SPAN));
        char region[16];
        snprintf(region, sizeof region, "r%u", skew(34));
        sqlite3_bind_text(cu, 4, region, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(cu, 5, STAGES[skew(5)], -1, SQLITE_STATIC);
        store_stmt_run(cu);
        int64_t cid = store_conn_last_id(c);
        for (uint32_t k = rnd(10) == 0 ? 2 : 1; k > 0; k--) {
            char state[16];
            snprintf(state, sizeof state, "ch%u", skew(500));
            sqlite3_bind_int64(re, 1, t);
            sqlite3_bind_int64(re, 2, cid);
            sqlite3_bind_int64(re, 3, g->emp0 + skew(NEMP));
            sqlite3_bind_text(re, 4, statuses[rnd(20)], -1, SQLITE_STATIC);
            sqlite3_bind_text(re, 5, state, -1, SQLITE_TRANSIENT);
            store_stmt_run(re);
        }
        for (uint32_t k = rnd(13); k > 0; k--) {
            sqlite3_bind_int64(ta, 1, t);
            sqlite3_bind_int64(ta, 2, cid);
            sqlite3_bind_int64(ta, 3, g->tag0 + zipf_tag());
            store_stmt_run(ta);
        }
        /* events: about per for each customer, the last customer takes the rest */
        long k = i + 1 == g->customers ? left : (long)(unit() * 2 * per + 0.5);
        if (k > left) k = left;
        left -= k;
        for (; k > 0; k--) {
            const char *type = TYPES[rnd(10)];
            char props[48];
            snprintf(props, sizeof props, "{\"amount\":%u.%02u}", rnd(500), rnd(100));
            sqlite3_bind_int64(ev, 1, t);
            sqlite3_bind_int64(ev, 2, cid);
            sqlite3_bind_text(ev, 3, type, -1, SQLITE_STATIC);
            sqlite3_bind_int64(ev, 4, NOW - (int64_t)rnd(SPAN));
            if (strcmp(type, "order") == 0) sqlite3_bind_text(ev, 5, props, -1, SQLITE_TRANSIENT);
            store_stmt_run(ev);
        }
    }
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

static uint64_t fnv_mix(uint64_t h, uint64_t v) {
    for (int i = 0; i < 8; i++, v >>= 8)
        h = (h ^ (v & 0xff)) * 1099511628211ULL;
    return h;
}

typedef struct query {
    const char *name, *text;
    bool page; /* also the first 100 by spent descending */
} query;

static const query QUERIES[] = {
    {"S1", "tag(\"tag1\") and tag(\"tag2\") and not tag(\"tag12\")", false},
    {"S2",
     "tag(\"tag1\") and tag(\"tag2\") and not tag(\"tag12\") and region in (\"r0\", \"r1\", "
     "\"r2\") and stage = \"new\" and not relationship_status = \"lost\"",
     false},
    {"S3", "spent > 500 and last_active > 30d and orders_total >= 2", true},
    {"S4",
     "employee(\"emp3\") and tag in (\"tag3\", \"tag8\", \"tag20\", \"tag40\", \"tag90\") and not "
     "relationship_status = \"lost\"",
     false},
    {"S5", "did(\"order\", 30d) and did(\"view\", 14d) and not did(\"message\", 14d)", false},
    {"S6", "count(\"view\", 90d) >= 3 or first(\"order\") < 7d", false},
};
#define NQ (sizeof QUERIES / sizeof QUERIES[0])

/* Times every query; returns the checksum of counts and first pages. */
static uint64_t run_queries(const engine *e, int runs, int64_t now, const char *label) {
    double *lat = malloc((size_t)runs * sizeof *lat);
    uint64_t sum = 1469598103934665603ULL;
    siyu_err err = {0};
    printf("%s\n", label);
    for (size_t q = 0; q < NQ; q++) {
        expr_node *n = NULL;
        expr_err perr;
        if (expr_parse(QUERIES[q].text, strlen(QUERIES[q].text), &n, &perr) != 0)
            die("%s", perr.text);
        uint64_t count = 0;
        engine_row rows[100];
        size_t nrows = 0;
        for (int r = 0; r < runs; r++) {
            roaring_bitmap_t *bm;
            double a = now_s();
            if (engine_eval(e, n, now, &bm, &err) != 0) die("eval: %s", err.msg);
            count = roaring_bitmap_get_cardinality(bm);
            if (QUERIES[q].page &&
                engine_page(e, bm, ENGINE_SORT_SPENT, true, NULL, 100, rows, &nrows) != 0)
                die("engine_page");
            lat[r] = (now_s() - a) * 1000;
            roaring_bitmap_free(bm);
        }
        qsort(lat, (size_t)runs, sizeof *lat, cmp_d);
        sum = fnv_mix(sum, count);
        for (size_t i = 0; i < nrows; i++)
            sum = fnv_mix(fnv_mix(sum, (uint64_t)rows[i].customer_id), (uint64_t)rows[i].key);
        printf("  %s%s count %8llu  p50 %8.3f ms  p99 %8.3f ms  %s\n", QUERIES[q].name,
               QUERIES[q].page ? "+page" : "     ", (unsigned long long)count, lat[runs / 2],
               lat[runs * 99 / 100], QUERIES[q].text);
        expr_free(n);
    }
    printf("  checksum %016llx\n", (unsigned long long)sum);
    free(lat);
    return sum;
}

static void must(int rc, const siyu_err *err) {
    if (rc != 0) die("mutation failed (%d): %s", rc, err->msg);
}

/* Writes through the mutation API, timed per kind. */
static void run_mutations(engine *e, const gen *g, long nevents) {
    siyu_err err = {0};
    uint32_t n = engine_customers(e);
    rs = 4242; /* the same writes whether the store was generated in this run or kept */
    double a = now_s();
    for (long i = 0; i < nevents; i++) { /* new events of the last two hours */
        const char *type = TYPES[rnd(10)];
        must(engine_event_add(e, rnd(n), type, NOW - 7200 + i % 7200,
                              strcmp(type, "order") == 0 ? rnd(50000) : 0, &err),
             &err);
    }
    double t_ev = now_s() - a;
    long nrel = nevents / 10;
    static const char *const st[] = {"active", "deleted_by_customer", "transferred"};
    a = now_s();
    for (long i = 0; i < nrel; i++) {
        char state[16];
        snprintf(state, sizeof state, "ch%u", skew(500));
        engine_rel r[2] = {{g->emp0 + skew(NEMP), st[rnd(3)], state},
                           {g->emp0 + skew(NEMP), "active", NULL}};
        must(engine_customer_rels(e, rnd(n), r, 1 + rnd(2), &err), &err);
    }
    double t_rel = now_s() - a;
    long ncust = nevents / 20;
    int64_t last = engine_customer_id(e, n - 1);
    a = now_s();
    for (long i = 0; i < ncust; i++) {
        char region[16];
        snprintf(region, sizeof region, "r%u", skew(34));
        must(engine_customer_put(e, last + 1 + i, (int)rnd(3), NOW, region, STAGES[skew(5)], NULL,
                                 &err),
             &err);
    }
    double t_cust = now_s() - a;
    long ntag = nevents / 4;
    a = now_s();
    for (long i = 0; i < ntag; i++)
        must(engine_member_set(e, EXPR_DIM_TAG, g->tag0 + zipf_tag(), rnd(engine_customers(e)),
                               rnd(4) != 0, &err),
             &err);
    double t_tag = now_s() - a;
    printf("mutations: %ld events %.2f us each, %ld relationship sets %.2f us, %ld new customers "
           "%.2f us, %ld tag memberships %.2f us\n",
           nevents, t_ev * 1e6 / (double)nevents, nrel, t_rel * 1e6 / (double)nrel, ncust,
           t_cust * 1e6 / (double)ncust, ntag, t_tag * 1e6 / (double)ntag);
}

int main(int argc, char **argv) {
    gen g = {.customers = 1000000, .events = -1};
    int runs = 50;
    const char *keep = NULL; /* a directory that keeps the generated store for later runs */
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--customers") == 0)
            g.customers = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--events") == 0)
            g.events = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--keep") == 0)
            keep = argv[i + 1];
        else
            die("unknown option %s", argv[i]);
    }
    if (g.customers < 1 || runs < 1) die("--customers and --runs must be positive");
    if (g.events < 0) g.events = 10 * g.customers;
    double z = 0;
    for (int k = 0; k < NTAGS; k++)
        zipf_cdf[k] = (z += 1.0 / (k + 1));
    for (int k = 0; k < NTAGS; k++)
        zipf_cdf[k] /= z;

    char dir[512], mark[600];
    bool reuse = false;
    if (keep) {
        snprintf(dir, sizeof dir, "%s", keep);
        snprintf(mark, sizeof mark, "%s/bench_segment.done", dir);
        FILE *f = fopen(mark, "r");
        long c = 0, ev = 0;
        long long t = 0, emp0 = 0, tag0 = 0;
        if (f && fscanf(f, "%ld %ld %lld %lld %lld", &c, &ev, &t, &emp0, &tag0) == 5 &&
            c == g.customers && ev == g.events) {
            reuse = true;
            g.tenant = t, g.emp0 = emp0, g.tag0 = tag0;
        }
        if (f) fclose(f);
        /* never write into a directory this program did not make */
        if (!reuse && mkdir(dir, 0700) != 0)
            die("--keep %s: the directory exists without a store of these sizes made by "
                "bench_segment (or cannot be made); give a new path",
                dir);
    } else {
        bench_tmpdir(dir, sizeof dir, "segment");
    }
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    store *st = store_open(dir, &o, &err);
    if (!st) die("store_open: %s", err.msg);
    double t0 = now_s();
    if (!reuse) {
        tenant_input tin = {.name = "bench", .actor = "bench"};
        if (store_write(st, tenant_create, &tin) != 0) die("tenant");
        g.tenant = tin.id;
        if (store_write(st, generate, &g) != 0) die("generate");
        printf("generated %ld customers, %ld events in %.1f s\n", g.customers, g.events,
               now_s() - t0);
        FILE *f = keep ? fopen(mark, "w") : NULL;
        if (f) {
            fprintf(f, "%ld %ld %lld %lld %lld\n", g.customers, g.events, (long long)g.tenant,
                    (long long)g.emp0, (long long)g.tag0);
            fclose(f);
        }
    } else {
        printf("reusing the store generated in %s\n", dir);
    }
    long rss0 = rss_kb();
    t0 = now_s();
    engine *e = NULL;
    if (engine_build(st, g.tenant, &e, &err) != 0) die("engine_build: %s", err.msg);
    double build_s = now_s() - t0;
    const char *why = NULL;
    t0 = now_s();
    bool valid = engine_validate(e, &why);
    printf("engine: %u customers, %llu events, build %.2f s, validate %.2f s (%s), "
           "RSS +%ld MB, engine_bytes %llu MB\n",
           engine_customers(e), (unsigned long long)engine_events(e), build_s, now_s() - t0,
           valid ? "ok" : why, (rss_kb() - rss0) / 1024,
           (unsigned long long)(engine_bytes(e) >> 20));
    run_queries(e, runs, NOW, "segments (p50/p99 of count; S3 with its first page):");
    run_mutations(e, &g, g.events / 50 > 1000 ? g.events / 50 : 1000);
    run_queries(e, runs, NOW, "segments after the mutations:");
    t0 = now_s();
    bool valid2 = engine_validate(e, &why);
    printf("validate after the mutations: %s (%.2f s), engine_bytes %llu MB\n", valid2 ? "ok" : why,
           now_s() - t0, (unsigned long long)(engine_bytes(e) >> 20));
    engine_free(e);
    store_close(st);
    char *rm[] = {"/bin/rm", "-rf", dir, NULL}; /* no shell: the path is not quoted */
    if (!keep && run(NULL, rm) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return valid && valid2 ? 0 : 1;
}
