/* bench_channel.c — what channel QR codes cost on the write path and in
 * reports, inline against a temporary store (seeded, no server):
 *
 *   attribution   N adds written as ingest writes them (customer, identity,
 *                 relationship) plus channel_on_add, in write steps of 1,000;
 *                 once with states of Siyu channels (attribution, two
 *                 auto-tags one of them a WeCom tag → mark_tag, a remark
 *                 template → remark, roster recompute) and once with states
 *                 no channel has (the lookup only), per add in microseconds
 *   roster job    channel_roster_step over every channel (median of runs)
 *   statistics    GET /channels/stats's query over 126 days (median of runs)
 *
 * The checksum line compares the statistics' total adds with a direct count
 * of attributed relationships, so a faster version that miscounts shows.
 *
 *   cmake --build build --target bench_channel
 *   ./build/bench_channel [--adds 100000] [--channels 200] [--employees 500]
 *                         [--runs 5] [--out bench/RESULTS.md] [--keep 1] [--profile 1] */
#define BENCH_NAME "bench_channel"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "store/channel.h"
#include "store/store.h"
#include "store/tenant.h"

#define DAY 86400
#define NOW 1763856000LL /* 2025-11-23 00:00 UTC */

static uint64_t rs = 7;
static uint32_t rnd(uint32_t n) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)(rs % n);
}
static uint32_t skew(uint32_t n) { /* Zipf-like: small values popular */
    double u = (double)rnd(1u << 30) / (double)(1u << 30);
    return (uint32_t)(u * u * n);
}

static int exec_step(store_conn *c, void *arg) {
    return store_conn_exec(c, arg);
}

/* --profile 1: time spent per statement text (sqlite3_trace_v2 PROFILE). */
typedef struct prof {
    const char *sql;
    double ms;
    long n;
} prof;
static prof profs[256];
static int nprof;

static int on_profile(unsigned type, void *ctx, void *p, void *x) {
    (void)ctx;
    if (type != SQLITE_TRACE_PROFILE) return 0;
    const char *sql = sqlite3_sql((sqlite3_stmt *)p);
    double ms = (double)*(sqlite3_int64 *)x / 1e6;
    for (int i = 0; i < nprof; i++)
        if (profs[i].sql == sql) {
            profs[i].ms += ms;
            profs[i].n++;
            return 0;
        }
    if (nprof < 256) profs[nprof++] = (prof){sql, ms, 1};
    return 0;
}

static int profile_step(store_conn *c, void *arg) {
    (void)arg;
    sqlite3_trace_v2(store_conn_db(c), SQLITE_TRACE_PROFILE, on_profile, NULL);
    return 0;
}

static int cmp_prof(const void *a, const void *b) {
    double x = ((const prof *)a)->ms, y = ((const prof *)b)->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

typedef struct world {
    int64_t tenant;
    int employees, channels;
    int64_t *channel_ids;
    char (*states)[32];
    int64_t (*staff)[4]; /* employee ids per channel */
} world;

typedef struct batch {
    world *w;
    long from, n;
    bool attributed;
} batch;

static sqlite3_stmt *prep(store_conn *c, const char *sql) {
    sqlite3_stmt *s = store_conn_stmt(c, sql);
    if (!s) die("prepare: %s", sql);
    return s;
}

/* One add as ingest writes it, then channel_on_add. */
static int add_step(store_conn *c, void *arg) {
    batch *b = arg;
    world *w = b->w;
    for (long i = b->from; i < b->from + b->n; i++) {
        int ch = (int)skew((uint32_t)w->channels);
        int64_t emp = w->staff[ch][rnd(3)];
        int64_t ts = NOW - (int64_t)rnd(120 * DAY);
        char ext[48], st[32];
        snprintf(ext, sizeof ext, "wm%c%09ld", b->attributed ? 'a' : 'b', i);
        snprintf(st, sizeof st, "%s", b->attributed ? w->states[ch] : "ch0001");
        sqlite3_stmt *s = prep(c, "INSERT INTO customer(tenant_id, external_userid, "
                                  "first_added_at, created_at, updated_at) VALUES(?1,?2,?3,?3,?3)");
        sqlite3_bind_int64(s, 1, w->tenant);
        store_bind_text(s, 2, ext);
        sqlite3_bind_int64(s, 3, ts);
        if (store_stmt_run(s) != 0) return SIYU_EIO;
        int64_t cust = store_conn_last_id(c);
        s = prep(c, "INSERT INTO identity(tenant_id, customer_id, kind, value, created_at) "
                    "VALUES(?1,?2,'wecom_external_userid',?3,?4)");
        sqlite3_bind_int64(s, 1, w->tenant);
        sqlite3_bind_int64(s, 2, cust);
        store_bind_text(s, 3, ext);
        sqlite3_bind_int64(s, 4, ts);
        if (store_stmt_run(s) != 0) return SIYU_EIO;
        s = prep(c, "INSERT INTO relationship(tenant_id, customer_id, employee_id, status, "
                    "added_at, state, updated_at) VALUES(?1,?2,?3,'active',?4,?5,?4)");
        sqlite3_bind_int64(s, 1, w->tenant);
        sqlite3_bind_int64(s, 2, cust);
        sqlite3_bind_int64(s, 3, emp);
        sqlite3_bind_int64(s, 4, ts);
        store_bind_text(s, 5, st);
        if (store_stmt_run(s) != 0) return SIYU_EIO;
        int64_t chid = 0;
        unsigned kick = 0;
        int rc = channel_on_add(c, w->tenant, cust, emp, st, ts, ts, &chid, &kick);
        if (rc != 0) return rc;
        if (b->attributed != (chid != 0)) return SIYU_EINVAL;
        /* A tenth of the customers leave again within 40 days. */
        if (rnd(10) == 0) {
            s = prep(c, "UPDATE relationship SET status=?3, ended_at=?4 WHERE tenant_id=?1 AND "
                        "customer_id=?2");
            sqlite3_bind_int64(s, 1, w->tenant);
            sqlite3_bind_int64(s, 2, cust);
            store_bind_text(s, 3, rnd(3) ? "deleted_by_customer" : "deleted_by_employee");
            sqlite3_bind_int64(s, 4, ts + (int64_t)rnd(40 * DAY));
            if (store_stmt_run(s) != 0) return SIYU_EIO;
        }
    }
    return 0;
}

/* Alternates batches of 1,000 adds through no channel and through channels,
 * so that both see the same machine load; fills the mean µs per add. */
static void time_adds(store *st, world *w, long adds, double *us_plain, double *us_attr) {
    double t[2] = {0, 0};
    for (long i = 0; i < adds; i += 1000) {
        for (int k = 0; k < 2; k++) {
            batch b = {
                .w = w, .from = i, .n = adds - i < 1000 ? adds - i : 1000, .attributed = k == 1};
            double t0 = now_s();
            int rc = store_write(st, add_step, &b);
            if (rc != 0) die("adds: %s", siyu_strerror(rc));
            t[k] += now_s() - t0;
        }
    }
    *us_plain = t[0] * 1e6 / (double)adds;
    *us_attr = t[1] * 1e6 / (double)adds;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void setup_world(store *st, world *w) {
    char sql[512];
    for (int i = 0; i < w->employees; i++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO employee(id, tenant_id, userid, name, created_at, updated_at) "
                 "VALUES(%d, %lld, 'emp%04d', 'Employee %d', 1, 1)",
                 i + 1, (long long)w->tenant, i, i);
        if (store_write(st, exec_step, sql) != 0) die("employee");
    }
    snprintf(sql, sizeof sql,
             "INSERT INTO tag_group(id, tenant_id, name, source, wecom_id, created_at, "
             "updated_at) VALUES(1, %lld, 'wecom', 'wecom', 'etg1', 1, 1), "
             "(2, %lld, 'internal', 'internal', NULL, 1, 1);"
             "INSERT INTO tag(id, tenant_id, group_id, name, wecom_id, created_at, updated_at) "
             "VALUES(1, %lld, 1, 'scan', 'et1', 1, 1), (2, %lld, 2, 'door', NULL, 1, 1);",
             (long long)w->tenant, (long long)w->tenant, (long long)w->tenant,
             (long long)w->tenant);
    if (store_write(st, exec_step, sql) != 0) die("tags");
    w->channel_ids = calloc((size_t)w->channels, sizeof *w->channel_ids);
    w->states = calloc((size_t)w->channels, sizeof *w->states);
    w->staff = calloc((size_t)w->channels, sizeof *w->staff);
    int64_t tags[] = {1, 2};
    for (int i = 0; i < w->channels; i++) {
        channel_staff_input staff[4];
        memset(staff, 0, sizeof staff);
        uint32_t base = rnd((uint32_t)w->employees);
        for (int k = 0; k < 4; k++) { /* four distinct employees */
            staff[k].employee_id = w->staff[i][k] = 1 + (base + (uint32_t)k) % w->employees;
            staff[k].backup = k == 3;
            staff[k].has_cap = k < 3;
            staff[k].daily_cap = 20 + rnd(40);
            staff[k].schedule = k < 3 ? "mon-fri 09:00-21:00; sat,sun 10:00-22:00" : NULL;
        }
        char name[32];
        snprintf(name, sizeof name, "channel %d", i);
        channel_input in = {.tenant_id = w->tenant,
                            .name = name,
                            .has_staff = true,
                            .staff = staff,
                            .nstaff = 4,
                            .has_tags = true,
                            .tag_ids = tags,
                            .ntags = 2,
                            .has_remark_template = true,
                            .remark_template = "{channel}",
                            .now = NOW,
                            .actor = "bench"};
        if (store_write(st, channel_create, &in) != 0) die("channel: %s", in.err.msg);
        w->channel_ids[i] = in.id;
        char ref[32], cfg[32];
        snprintf(ref, sizeof ref, "channel:%lld", (long long)in.id);
        snprintf(cfg, sizeof cfg, "cfg%lld", (long long)in.id);
        json_t *a = json_pack("{s:i,s:s}", "errcode", 0, "config_id", cfg);
        channel_result r = {.tenant_id = w->tenant,
                            .kind = "add_contact_way",
                            .ref = ref,
                            .state = "sent",
                            .answer = a};
        if (store_write(st, channel_result_step, &r) != 0) die("answer");
        json_decref(a);
        store_conn *c = store_reader_acquire(st);
        json_t *j = channel_get_json(c, w->tenant, in.id);
        store_reader_release(st, c);
        snprintf(w->states[i], sizeof w->states[i], "%s",
                 json_string_value(json_object_get(j, "state")));
        json_decref(j);
    }
}

int main(int argc, char **argv) {
    long adds = 100000;
    int runs = 5;
    const char *out = NULL;
    bool keep = false, profile = false;
    world w = {.employees = 500, .channels = 200};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--adds"))
            adds = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--channels"))
            w.channels = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--employees"))
            w.employees = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--out"))
            out = argv[i + 1];
        else if (!strcmp(argv[i], "--profile"))
            profile = !strcmp(argv[i + 1], "1");
        else if (!strcmp(argv[i], "--keep"))
            keep = !strcmp(argv[i + 1], "1");
        else
            die("unknown option %s", argv[i]);
    }
    if (adds < 1000 || w.channels < 1 || w.employees < 4 || runs < 1) die("bad options");
    char dir[512];
    bench_tmpdir(dir, sizeof dir, "channel");
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    store *st = store_open(dir, &o, &err);
    if (!st) die("store_open: %s", err.msg);
    tenant_input tin = {.name = "bench", .actor = "bench"};
    if (store_write(st, tenant_create, &tin) != 0) die("tenant");
    w.tenant = tin.id;
    setup_world(st, &w);

    if (profile) store_write(st, profile_step, NULL);
    double us_plain, us_attr;
    time_adds(st, &w, adds, &us_plain, &us_attr);
    if (profile) {
        qsort(profs, (size_t)nprof, sizeof *profs, cmp_prof);
        for (int i = 0; i < nprof && i < 12; i++)
            printf("%9.1f ms %7ld x  %.110s\n", profs[i].ms, profs[i].n, profs[i].sql);
    }

    double *lat = calloc((size_t)runs, sizeof *lat);
    channel_roster_run rr = {0};
    for (int r = 0; r < runs; r++) {
        rr = (channel_roster_run){.tenant_id = w.tenant, .now = NOW + r * 3600};
        double t0 = now_s();
        if (store_write(st, channel_roster_step, &rr) != 0) die("roster step");
        lat[r] = (now_s() - t0) * 1000;
    }
    qsort(lat, (size_t)runs, sizeof *lat, cmp_d);
    double roster_ms = lat[runs / 2];

    int64_t from, to;
    channel_local lt;
    channel_local_of(NOW, 8 * 3600, &lt);
    to = lt.day;
    from = to - 125; /* the adds span 120 days before NOW */
    json_t *stats = NULL;
    for (int r = 0; r < runs; r++) {
        store_conn *c = store_reader_acquire(st);
        bool nf;
        double t0 = now_s();
        json_decref(stats);
        stats = channel_stats_json(c, w.tenant, 0, from, to, NOW, &nf);
        lat[r] = (now_s() - t0) * 1000;
        store_reader_release(st, c);
        if (!stats) die("stats");
    }
    qsort(lat, (size_t)runs, sizeof *lat, cmp_d);
    double stats_ms = lat[runs / 2];
    json_t *tot = json_object_get(stats, "totals");
    int64_t stat_adds = json_integer_value(json_object_get(tot, "adds"));
    int64_t stat_net = json_integer_value(json_object_get(tot, "net"));
    char path[600];
    snprintf(path, sizeof path, "%s/siyu.db", dir);
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) die("open db");
    int64_t direct = sql_int(db, "SELECT count(*) FROM relationship WHERE channel_id IS NOT NULL");
    int64_t direct_net = sql_int(db, "SELECT count(*) FROM relationship WHERE channel_id IS NOT "
                                     "NULL AND status NOT LIKE 'deleted%'");
    int64_t queued = sql_int(db, "SELECT count(*) FROM outbox");
    uint64_t sum = sql_checksum(db, "SELECT channel_id||':'||customer_id FROM relationship WHERE "
                                    "channel_id IS NOT NULL");
    sqlite3_close(db);

    char *report = NULL;
    size_t rlen = 0;
    FILE *r = open_memstream(&report, &rlen);
    bench_header(r, "Channel QR codes (`bench_channel`)");
    fprintf(r,
            "- Command: `./build/bench_channel --adds %ld --channels %d --employees %d --runs "
            "%d` (inline store, synchronous=FULL, write steps of 1,000 adds)\n\n",
            adds, w.channels, w.employees, runs);
    fprintf(r, "| figure | value |\n|---|---|\n");
    fprintf(r, "| add through no channel (state lookup only) | %.1f µs/add |\n", us_plain);
    fprintf(r,
            "| add through a channel (attribution, 2 auto-tags, mark_tag, remark, roster) | %.1f "
            "µs/add (%.2fx) |\n",
            us_attr, us_attr / us_plain);
    fprintf(r, "| roster job over %d channels (median of %d) | %.2f ms (%lld changed last run) |\n",
            w.channels, runs, roster_ms, (long long)rr.changed);
    fprintf(r, "| statistics of every channel, 126 days, %lld relationships (median) | %.1f ms |\n",
            (long long)(2 * adds), stats_ms);
    fprintf(r, "| outbox rows queued | %lld |\n", (long long)queued);
    fprintf(r,
            "| checksum: statistics adds / direct count; net / direct | %lld / %lld %s; %lld / "
            "%lld %s (attribution sum %016llx) |\n",
            (long long)stat_adds, (long long)direct, stat_adds == direct ? "ok" : "MISMATCH",
            (long long)stat_net, (long long)direct_net, stat_net == direct_net ? "ok" : "MISMATCH",
            (unsigned long long)sum);
    fclose(r);
    bench_emit(report, out);
    free(report);
    json_decref(stats);
    free(lat);
    free(w.channel_ids);
    free(w.states);
    free(w.staff);
    store_close(st);
    char *rm[] = {"/bin/rm", "-rf", dir, NULL};
    if (keep)
        printf("kept %s\n", dir);
    else if (run(NULL, rm) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return stat_adds == direct && stat_net == direct_net ? 0 : 1;
}
