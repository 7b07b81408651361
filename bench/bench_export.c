/* bench_export.c — segment exports without HTTP: a generated tenant (N
 * customers with names, regions, stages, phones; every one tagged "VIP",
 * half "新客"), the segment service built in process, then each export
 * format of tag("VIP") written R times into a counting sink
 * (export_segment_write: segsvc_walk in chunks, rows loaded per chunk from a
 * read connection). Prints wall time (best and median), rows/s, output
 * size, an FNV-1a checksum of the bytes (not for xlsx: the workbook carries
 * its creation time) and resident memory before and after. stdout only.
 *
 *   cmake --build build --target bench_export
 *   ./build/bench_export [--customers N] [--runs R] */
#define BENCH_NAME "bench_export"
#include <string.h>

#include "bench_util.h"
#include "segment/export.h"
#include "segment/segsvc.h"
#include "store/store.h"

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

typedef struct sink {
    uint64_t bytes, fnv;
} sink;

static int count_sink(void *arg, const void *data, size_t len) {
    sink *s = arg;
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        s->fnv = (s->fnv ^ p[i]) * 1099511628211ULL;
    s->bytes += len;
    return 0;
}

static int exec_step(store_conn *c, void *arg) {
    return store_conn_exec(c, arg);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    long n = 1000000, runs = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--customers"))
            n = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs"))
            runs = atol(argv[i + 1]);
        else
            die("usage: bench_export [--customers N] [--runs R]");
    }
    if (n < 1 || runs < 1 || runs > 100) die("bad --customers or --runs");
    char dir[512];
    bench_tmpdir(dir, sizeof dir, "export");
    siyu_err err = {0};
    store_options o = {.writer_thread = true};
    store *st = store_open(dir, &o, &err);
    if (!st) die("store: %s", err.msg);
    char sql[2048];
    snprintf(sql, sizeof sql,
             "INSERT INTO tenant(tenant_id,name,created_at,updated_at) VALUES(1,'A',1,1);"
             "INSERT INTO tag_group(id,tenant_id,name,created_at,updated_at) VALUES(1,1,'G',1,1);"
             "INSERT INTO tag(id,tenant_id,group_id,name,created_at,updated_at) VALUES"
             "(1,1,1,'VIP',1,1),(2,1,1,'新客',1,1);"
             "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM k WHERE i<%ld)"
             " INSERT INTO customer(id,tenant_id,external_userid,name,gender,region,stage,phone,"
             "first_added_at,created_at,updated_at) SELECT i,1,'wmBench'||i,'客户 '||i,i%%3,"
             "CASE i%%4 WHEN 0 THEN '上海' WHEN 1 THEN '北京' WHEN 2 THEN '广东' ELSE NULL END,"
             "'vip','138'||printf('%%08d',i%%100000000),1700000000+i,1,1 FROM k;"
             "INSERT INTO customer_tag(tenant_id,customer_id,tag_id,source,created_at)"
             " SELECT 1,id,1,'manual',1 FROM customer;"
             "INSERT INTO customer_tag(tenant_id,customer_id,tag_id,source,created_at)"
             " SELECT 1,id,2,'manual',1 FROM customer WHERE id%%2=0;",
             n);
    double t0 = now_s();
    if (store_write(st, exec_step, sql) != 0) die("generating the tenant failed");
    double gen_s = now_s() - t0;
    t0 = now_s();
    segsvc *seg = NULL;
    if (segsvc_open(st, &seg, &err) != 0) die("segsvc: %s", err.msg);
    double build_s = now_s() - t0;
    http_auth admin = {.tenant_id = 1, .role = ROLE_ADMIN};
    segsvc_result res;
    if (segsvc_eval(seg, &admin, "tag(\"VIP\")", 10, siyu_now(), &res, &err) != 0)
        die("eval: %s", err.msg);
    struct utsname u;
    uname(&u);
    printf("## bench_export: %ld customers, %ld runs (%s %s, %ld cores)\n\n", n, runs, u.sysname,
           u.machine, sysconf(_SC_NPROCESSORS_ONLN));
    printf("generated in %.1f s, engine built in %.1f s, segment tag(\"VIP\") = %llu customers\n\n",
           gen_s, build_s, (unsigned long long)res.count);
    printf("| format | best s | median s | rows/s (median) | bytes | checksum | RSS before -> "
           "after MB |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    static const export_format fmts[] = {EXPORT_CSV, EXPORT_PHONE_MD5, EXPORT_PHONE_SHA256,
                                         EXPORT_XLSX};
    for (size_t f = 0; f < sizeof fmts / sizeof *fmts; f++) {
        double wall[100];
        sink s = {0};
        long rss0 = rss_kb();
        for (long r = 0; r < runs; r++) {
            s = (sink){.fnv = 1469598103934665603ULL};
            export_writer *w = NULL;
            t0 = now_s();
            if (export_writer_create(fmts[f], count_sink, &s, NULL, &w, &err) != 0 ||
                export_segment_write(seg, st, 1, &res, w, NULL, &err) != 0)
                die("export %s: %s", export_format_name(fmts[f]), err.msg);
            wall[r] = now_s() - t0;
            export_writer_free(w);
        }
        qsort(wall, (size_t)runs, sizeof *wall, cmp_double);
        double med = wall[runs / 2];
        char sum[24];
        snprintf(sum, sizeof sum, "%016llx", (unsigned long long)s.fnv);
        printf("| %s | %.2f | %.2f | %.0f | %llu | %s | %ld -> %ld |\n",
               export_format_name(fmts[f]), wall[0], med, (double)res.count / med,
               (unsigned long long)s.bytes, fmts[f] == EXPORT_XLSX ? "-" : sum, rss0 / 1024,
               rss_kb() / 1024);
    }
    segsvc_result_free(&res);
    segsvc_close(seg);
    store_close(st);
    char *rm[] = {"/bin/rm", "-rf", dir, NULL}; /* no shell: the path is not quoted */
    if (run(NULL, rm) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return 0;
}
