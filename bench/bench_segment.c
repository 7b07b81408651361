/* bench_segment.c — a first scale check of the segment engine (not the full
 * issue-4 benchmark yet): generates one tenant into a temporary store
 * (--customers N, --events-per E per customer on average, seeded), builds the
 * engine from it, validates it, and times a few segments (p50/p99 over --runs
 * evaluations, with their counts). Prints to stdout; nothing is appended to
 * bench/RESULTS.md.
 *
 *   cmake --build build --target bench_segment
 *   ./build/bench_segment --customers 1000000 --events-per 10 */
#define BENCH_NAME "bench_segment"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "segment/engine.h"
#include "store/store.h"
#include "store/tenant.h"

#define NOW 1700000000LL

static uint64_t rs = 42;
static uint32_t rnd(uint32_t n) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)(rs % n);
}
/* Skewed pick in 0..n-1 (small values popular). */
static uint32_t skew(uint32_t n) {
    double u = (double)rnd(1u << 30) / (double)(1u << 30);
    return (uint32_t)(u * u * u * n);
}

typedef struct gen {
    int64_t tenant;
    long customers, events_per;
} gen;

static sqlite3_stmt *prep(store_conn *c, const char *sql) {
    sqlite3_stmt *s = store_conn_stmt(c, sql);
    if (!s) die("prepare: %s", sql);
    return s;
}

static int generate(store_conn *c, void *arg) {
    gen *g = arg;
    int64_t t = g->tenant;
    char sql[256];
    for (int i = 0; i < 10; i++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO department(tenant_id, name, created_at, updated_at) "
                 "VALUES (%lld, 'dep%d', 1, 1)",
                 (long long)t, i);
        store_conn_exec(c, sql);
        snprintf(sql, sizeof sql,
                 "INSERT INTO store(tenant_id, name, created_at, updated_at) "
                 "VALUES (%lld, 'store%d', 1, 1)",
                 (long long)t, i);
        store_conn_exec(c, sql);
    }
    snprintf(sql, sizeof sql,
             "INSERT INTO tag_group(tenant_id, name, created_at, updated_at) VALUES (%lld, 'g', "
             "1, 1)",
             (long long)t);
    store_conn_exec(c, sql);
    int64_t tg = store_conn_last_id(c);
    for (int i = 0; i < 60; i++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO tag(tenant_id, group_id, name, created_at, updated_at) "
                 "VALUES (%lld, %lld, 'tag%d', 1, 1)",
                 (long long)t, (long long)tg, i);
        store_conn_exec(c, sql);
    }
    for (int i = 0; i < 200; i++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO employee(tenant_id, userid, name, department_id, store_id, "
                 "created_at, updated_at) VALUES (%lld, 'u%d', 'emp%d', "
                 "(SELECT min(id) + %d FROM department WHERE tenant_id = %lld), "
                 "(SELECT min(id) + %d FROM store WHERE tenant_id = %lld), 1, 1)",
                 (long long)t, i, i, i % 10, (long long)t, i % 10, (long long)t);
        store_conn_exec(c, sql);
    }
    int64_t emp0 = 0, tag0 = 0;
    sqlite3_stmt *s = prep(c, "SELECT min(id) FROM employee WHERE tenant_id = ?");
    sqlite3_bind_int64(s, 1, t);
    store_stmt_query_id(s, &emp0, NULL);
    s = prep(c, "SELECT min(id) FROM tag WHERE tenant_id = ?");
    sqlite3_bind_int64(s, 1, t);
    store_stmt_query_id(s, &tag0, NULL);

    sqlite3_stmt *cu = prep(c, "INSERT INTO customer(tenant_id, gender, first_added_at, "
                               "created_at, updated_at) VALUES (?, ?, ?, 1, 1)");
    sqlite3_stmt *re = prep(c, "INSERT OR IGNORE INTO relationship(tenant_id, customer_id, "
                               "employee_id, status, added_at, state, updated_at) "
                               "VALUES (?, ?, ?, ?, 1, ?, 1)");
    sqlite3_stmt *ta = prep(c, "INSERT OR IGNORE INTO customer_tag(tenant_id, customer_id, "
                               "tag_id, created_at) VALUES (?, ?, ?, 1)");
    sqlite3_stmt *ev = prep(c, "INSERT INTO event(tenant_id, customer_id, type, ts, source, "
                               "props) VALUES (?, ?, ?, ?, 'api', ?)");
    static const char *const types[] = {"message", "page.view", "page.view", "order", "share"};
    static const char *const statuses[] = {"active",
                                           "active",
                                           "active",
                                           "active",
                                           "active",
                                           "active",
                                           "deleted_by_customer",
                                           "deleted_by_employee"};
    for (long i = 0; i < g->customers; i++) {
        sqlite3_bind_int64(cu, 1, t);
        sqlite3_bind_int64(cu, 2, rnd(3));
        sqlite3_bind_int64(cu, 3, NOW - (int64_t)rnd(365 * 86400));
        store_stmt_run(cu);
        int64_t cid = store_conn_last_id(c);
        char state[16];
        snprintf(state, sizeof state, "ch%u", skew(50));
        sqlite3_bind_int64(re, 1, t);
        sqlite3_bind_int64(re, 2, cid);
        sqlite3_bind_int64(re, 3, emp0 + skew(200));
        sqlite3_bind_text(re, 4, statuses[rnd(8)], -1, SQLITE_STATIC);
        sqlite3_bind_text(re, 5, state, -1, SQLITE_TRANSIENT);
        store_stmt_run(re);
        for (uint32_t k = rnd(7); k > 0; k--) {
            sqlite3_bind_int64(ta, 1, t);
            sqlite3_bind_int64(ta, 2, cid);
            sqlite3_bind_int64(ta, 3, tag0 + skew(60));
            store_stmt_run(ta);
        }
        for (uint32_t k = rnd((uint32_t)(2 * g->events_per + 1)); k > 0; k--) {
            const char *type = types[rnd(5)];
            char props[48];
            snprintf(props, sizeof props, "{\"amount\":%u.%02u}", rnd(500), rnd(100));
            sqlite3_bind_int64(ev, 1, t);
            sqlite3_bind_int64(ev, 2, cid);
            sqlite3_bind_text(ev, 3, type, -1, SQLITE_STATIC);
            sqlite3_bind_int64(ev, 4, NOW - (int64_t)rnd(365 * 86400));
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

int main(int argc, char **argv) {
    gen g = {.customers = 200000, .events_per = 10};
    int runs = 50;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--customers") == 0)
            g.customers = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--events-per") == 0)
            g.events_per = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
        else
            die("unknown option %s", argv[i]);
    }
    char dir[512];
    bench_tmpdir(dir, sizeof dir, "segment");
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    store *st = store_open(dir, &o, &err);
    if (!st) die("store_open: %s", err.msg);
    tenant_input tin = {.name = "bench", .actor = "bench"};
    if (store_write(st, tenant_create, &tin) != 0) die("tenant");
    g.tenant = tin.id;
    double t0 = now_s();
    if (store_write(st, generate, &g) != 0) die("generate");
    printf("generated %ld customers in %.1f s\n", g.customers, now_s() - t0);
    long rss0 = rss_kb();
    t0 = now_s();
    engine *e = NULL;
    if (engine_build(st, g.tenant, &e, &err) != 0) die("engine_build: %s", err.msg);
    double build_s = now_s() - t0;
    const char *why = NULL;
    t0 = now_s();
    bool valid = engine_validate(e, &why);
    printf("engine: %u customers, %llu events, build %.2f s, validate %.2f s (%s), "
           "RSS +%ld MB\n",
           engine_customers(e), (unsigned long long)engine_events(e), build_s, now_s() - t0,
           valid ? "ok" : why, (rss_kb() - rss0) / 1024);
    static const char *const exprs[] = {
        "tag(\"tag1\") and tag(\"tag2\") and not tag(\"tag10\")",
        "tag(\"tag1\") and tag(\"tag2\") and not tag(\"tag10\") and gender = \"female\" and not "
        "relationship_status = \"lost\"",
        "spent > 500 and last_active > 30d and orders_total >= 2",
        "employee(\"emp3\") and tag in (\"tag1\", \"tag5\", \"tag7\", \"tag9\", \"tag20\") and "
        "not relationship_status = \"lost\"",
        "orders(30d) >= 1 and did(\"page.view\", 14d) and not did(\"message\", 14d)",
        "count(\"page.view\", 90d) >= 3 or first(\"order\") < 7d",
    };
    double *lat = malloc((size_t)runs * sizeof *lat);
    for (size_t q = 0; q < sizeof exprs / sizeof exprs[0]; q++) {
        expr_node *n = NULL;
        expr_err perr;
        if (expr_parse(exprs[q], strlen(exprs[q]), &n, &perr) != 0) die("%s", perr.text);
        uint64_t count = 0;
        for (int r = 0; r < runs; r++) {
            roaring_bitmap_t *bm;
            double a = now_s();
            if (engine_eval(e, n, NOW, &bm, &err) != 0) die("eval: %s", err.msg);
            count = roaring_bitmap_get_cardinality(bm);
            lat[r] = (now_s() - a) * 1000;
            roaring_bitmap_free(bm);
        }
        qsort(lat, (size_t)runs, sizeof *lat, cmp_d);
        printf("S%zu count %8llu  p50 %8.3f ms  p99 %8.3f ms  %s\n", q + 1,
               (unsigned long long)count, lat[runs / 2], lat[runs * 99 / 100], exprs[q]);
        expr_free(n);
    }
    free(lat);
    engine_free(e);
    store_close(st);
    char *rm[] = {"/bin/rm", "-rf", dir, NULL}; /* no shell: the path is not quoted */
    if (run(NULL, rm) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return valid ? 0 : 1;
}
