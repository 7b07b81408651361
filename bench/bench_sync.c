/* bench_sync.c — full sync of a simulated brand: `make bench-sync`.
 *
 * Starts `siyu wecom-sim` with --customers (100,000) and no replayed history,
 * makes a data directory with a tenant holding the simulator's corp id and
 * secret, runs `siyu sync --json` (the in-process full sync an operator runs)
 * twice — the first fills an empty store, the second finds nothing to change —
 * and reports wall time, API calls (Siyu's count and the simulator's),
 * records and customers per second, and a checksum of what Siyu holds,
 * verified against /sim/stats. Appends a dated section to --out.
 *
 * Exit status 1 when a check fails (counts differ from the simulator's, the
 * second sync changed something, a command failed). */
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NAME "bench_sync"
#include "bench_util.h"

#define CORP "wwbenchsync"
#define SECRET "bench-sync-secret"

typedef struct sync_res {
    double wall;
    json_t *j; /* siyu sync --json */
} sync_res;

static sync_res do_sync(const char *siyu, const char *dir, const char *base) {
    char *argv[] = {(char *)siyu, "sync",       "--data",     (char *)dir, "--tenant",
                    "1",          "--base-url", (char *)base, "--json",    NULL};
    char *out = NULL;
    double t0 = now_s();
    int rc = run(&out, argv);
    sync_res r = {.wall = now_s() - t0};
    r.j = out ? json_loads(out, 0, NULL) : NULL;
    if (rc != 0 || !r.j) die("siyu sync failed (%d): %s", rc, out ? out : "");
    free(out);
    return r;
}

static int64_t counts(const json_t *j, const char *entity, const char *what) {
    return jint(json_object_get(json_object_get(j, "counts"), entity), what);
}

int main(int argc, char **argv) {
    const char *siyu = "./build/siyu", *out_path = NULL, *customers = "100000", *seed = "1";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--siyu") && i + 1 < argc)
            siyu = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out_path = argv[++i];
        else if (!strcmp(argv[i], "--customers") && i + 1 < argc)
            customers = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = argv[++i];
        else {
            fprintf(stderr, "usage: bench_sync [--siyu PATH] [--out FILE] [--customers N] "
                            "[--seed S]\n");
            return 2;
        }
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char dir[512];
    bench_tmpdir(dir, sizeof dir, "sync");
    char *tenant[] = {(char *)siyu,
                      "tenant",
                      "create",
                      "--data",
                      dir,
                      "--name",
                      "Bench",
                      "--corp-id",
                      CORP,
                      "--callback-token",
                      "BenchTok",
                      "--aes-key",
                      "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
                      "--secret",
                      SECRET,
                      NULL};
    if (run(NULL, tenant) != 0) die("tenant create failed");

    /* The simulator: world only, no callbacks. */
    int pfd[2];
    if (pipe(pfd) != 0) die("pipe");
    double t_sim = now_s();
    pid_t sim = fork();
    if (sim == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl(siyu, siyu, "wecom-sim", "--listen", "127.0.0.1:0", "--corp-id", CORP, "--secret",
              SECRET, "--customers", customers, "--seed", seed, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char line[256], base[96] = "";
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "listening on ");
        if (p) {
            snprintf(base, sizeof base, "http://%s", p + 13);
            base[strcspn(base, "\r\n")] = 0;
            break;
        }
    }
    if (!base[0]) die("wecom-sim did not start");
    t_sim = now_s() - t_sim;
    printf("bench_sync: simulator with %s customers ready at %s in %.1f s; data %s\n", customers,
           base, t_sim, dir);
    fflush(stdout);

    sync_res s1 = do_sync(siyu, dir, base);
    sync_res s2 = do_sync(siyu, dir, base);
    char url[160];
    snprintf(url, sizeof url, "%s/sim/stats", base);
    json_t *stats = http_get_json(url);
    kill(sim, SIGTERM);
    waitpid(sim, NULL, 0);
    if (f) fclose(f);
    if (!stats) die("no /sim/stats");

    char db_path[600];
    snprintf(db_path, sizeof db_path, "%s/siyu.db", dir);
    sqlite3 *db;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) die("open db");
    int64_t rels = sql_int(db, "SELECT count(*) FROM relationship WHERE status='active'");
    int64_t custs = sql_int(db, "SELECT count(DISTINCT customer_id) FROM relationship WHERE "
                                "status='active'");
    int64_t ftags = sql_int(db, "SELECT count(*) FROM relationship_tag");
    int64_t groups = sql_int(db, "SELECT count(*) FROM group_chat WHERE status='active'");
    int64_t members = sql_int(db, "SELECT count(*) FROM group_member m JOIN group_chat g ON "
                                  "g.id=m.group_id WHERE m.status='in' AND g.status='active'");
    int64_t tags = sql_int(db, "SELECT count(*) FROM tag WHERE wecom_id IS NOT NULL");
    uint64_t sum = sql_checksum(
        db, "SELECT i.value || '|' || e.userid || '|' || coalesce(r.state,'') || '|' || "
            "coalesce(r.remark,'') || '|' || r.added_at FROM relationship r JOIN identity i ON "
            "i.customer_id=r.customer_id AND i.kind='wecom_external_userid' JOIN employee e ON "
            "e.id=r.employee_id WHERE r.status='active'");
    sqlite3_close(db);

    int64_t sim_calls = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(stats, "calls"), k, v) {
        if (strstr(k, "gettoken")) continue;
        sim_calls += json_integer_value(v);
    }
    struct {
        const char *what;
        int64_t siyu, sim;
    } checks[] = {
        {"active relationships", rels, jint(stats, "relationships")},
        {"groups", groups, jint(stats, "groups")},
        {"group members", members, jint(stats, "group_members")},
        {"corp tags", tags, jint(stats, "tags")},
        {"API requests of both syncs (Siyu / simulator count)",
         jint(s1.j, "requests") + jint(s2.j, "requests"), sim_calls},
        {"changes made by the second sync", jint(s2.j, "changes"), 0},
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++)
        failed += checks[i].siyu != checks[i].sim;

    /* Report. */
    char *report = NULL;
    size_t rlen = 0;
    FILE *r = open_memstream(&report, &rlen);
    bench_header(r, "Full sync (`make bench-sync`)");
    fprintf(r,
            "- Command: `./build/bench_sync --siyu %s --customers %s --seed %s`; simulator "
            "`siyu wecom-sim --customers %s --seed %s` (default shape: 500 employees, 1,000 "
            "groups, 60 tags; no replayed history), Siyu `siyu sync --json` in-process "
            "(WAL, synchronous=FULL), both on this machine\n\n",
            siyu, customers, seed, customers, seed);
    fprintf(r, "| sync | wall s | API calls | records | records/s | customers/s | changes |\n"
               "|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < 2; i++) {
        sync_res *s = i ? &s2 : &s1;
        int64_t items = jint(s->j, "items");
        fprintf(r, "| %s | %.2f | %lld | %lld | %.0f | %.0f | %lld |\n",
                i ? "second (nothing changed)" : "first (empty store)", s->wall,
                (long long)jint(s->j, "calls"), (long long)items, (double)items / s->wall,
                (double)custs / s->wall, (long long)jint(s->j, "changes"));
    }
    fprintf(r,
            "\nFirst sync created: customers %lld, relationships %lld, follow-record tags %lld, "
            "groups %lld, members %lld, employees %lld, tags %lld.\n",
            (long long)counts(s1.j, "customers", "created"),
            (long long)counts(s1.j, "relationships", "created"),
            (long long)counts(s1.j, "follow_tags", "created"),
            (long long)counts(s1.j, "groups", "created"),
            (long long)counts(s1.j, "members", "created"),
            (long long)counts(s1.j, "employees", "created"),
            (long long)counts(s1.j, "tags", "created"));
    fprintf(r,
            "Checksum: %lld customers with an active relationship, %lld relationships, %lld "
            "follow-record tags, %lld groups, %lld members; FNV-1a sum of "
            "`ext|userid|state|remark|added_at` over active relationships %016llx.\n\n",
            (long long)custs, (long long)rels, (long long)ftags, (long long)groups,
            (long long)members, (unsigned long long)sum);
    fprintf(r, "| check | Siyu | simulator | |\n|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++)
        fprintf(r, "| %s | %lld | %lld | %s |\n", checks[i].what, (long long)checks[i].siyu,
                (long long)checks[i].sim, checks[i].siyu == checks[i].sim ? "ok" : "FAIL");
    fclose(r);
    bench_emit(report, out_path);
    free(report);
    json_decref(s1.j);
    json_decref(s2.j);
    json_decref(stats);
    char *rmv[] = {"/bin/rm", "-rf", dir, NULL};
    if (!getenv("KEEP")) run(NULL, rmv);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
