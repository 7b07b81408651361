/* bench_util.h — helpers shared by the benchmark programs in bench/ (each
 * is one executable; define BENCH_NAME before including): fatal errors,
 * a monotonic clock, running a command with its stdout captured, GETting
 * JSON, and one-value and order-independent checksum SQL queries. */
#ifndef SIYU_BENCH_UTIL_H
#define SIYU_BENCH_UTIL_H

#include <curl/curl.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static __attribute__((unused)) void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", BENCH_NAME);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static __attribute__((unused)) double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs argv, captures stdout into a malloc'd string; returns exit status. */
static __attribute__((unused)) int run(char **out, char *const argv[]) {
    int pfd[2];
    if (pipe(pfd) != 0) die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    ssize_t k;
    while ((k = read(pfd[0], chunk, sizeof chunk)) > 0)
        fwrite(chunk, 1, (size_t)k, m);
    fclose(m);
    close(pfd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static __attribute__((unused)) size_t on_data(char *p, size_t sz, size_t n, void *u) {
    return fwrite(p, sz, n, (FILE *)u);
}

static __attribute__((unused)) json_t *http_get_json(const char *url) {
    CURL *c = curl_easy_init();
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, m);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(c);
    fclose(m);
    curl_easy_cleanup(c);
    json_t *j = rc == CURLE_OK ? json_loads(buf, 0, NULL) : NULL;
    free(buf);
    return j;
}

static __attribute__((unused)) int64_t jint(const json_t *o, const char *k) {
    return json_integer_value(json_object_get(o, k));
}

static __attribute__((unused)) int64_t sql_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) die("sql: %s", sqlite3_errmsg(db));
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Sum (mod 2^64) of FNV-1a over each row's text: independent of row order. */
static __attribute__((unused)) uint64_t sql_checksum(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    uint64_t sum = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) die("sql: %s", sqlite3_errmsg(db));
    while (sqlite3_step(st) == SQLITE_ROW) {
        uint64_t h = 1469598103934665603ULL;
        for (const unsigned char *p = sqlite3_column_text(st, 0); p && *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
        sum += h;
    }
    sqlite3_finalize(st);
    return sum;
}

/* A fresh directory $TMPDIR/siyu-bench-NAME-XXXXXX (TMPDIR defaults to
 * /tmp) into dir; dies when it cannot be made. */
static __attribute__((unused)) void bench_tmpdir(char *dir, size_t cap, const char *name) {
    const char *tmp = getenv("TMPDIR");
    if (snprintf(dir, cap, "%s/siyu-bench-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name) >=
            (int)cap ||
        !mkdtemp(dir))
        die("cannot make a temporary directory under %s", tmp && *tmp ? tmp : "/tmp");
}

/* Prints the Markdown report and appends it to out_path (if not NULL). */
static __attribute__((unused)) void bench_emit(const char *report, const char *out_path) {
    fputs(report, stdout);
    if (!out_path) return;
    FILE *o = fopen(out_path, "a");
    if (!o) die("cannot append to %s", out_path);
    fputs(report, o);
    fclose(o);
    printf("\nappended to %s\n", out_path);
}

/* "## TITLE DATE — commit C" and a machine line (CPUs, load average). */
static __attribute__((unused)) void bench_header(FILE *r, const char *title) {
    char when[64], commit[64] = "unknown";
    time_t t = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&t));
    char *gitv[] = {"/usr/bin/git", "rev-parse", "--short", "HEAD", NULL};
    char *g = NULL;
    if (run(&g, gitv) == 0 && g) snprintf(commit, sizeof commit, "%.*s", (int)strcspn(g, "\n"), g);
    free(g);
    struct utsname u;
    uname(&u);
    double la[3] = {0};
    getloadavg(la, 3);
    fprintf(r, "\n## %s %s — commit %s\n\n", title, when, commit);
    fprintf(r, "- Machine: %s %s %s, %ld CPUs; load average at the end %.2f %.2f %.2f\n", u.sysname,
            u.release, u.machine, sysconf(_SC_NPROCESSORS_ONLN), la[0], la[1], la[2]);
}

#endif
