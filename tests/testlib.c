/* testlib.c — see testlib.h. */
#include "testlib.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char *t_tmpdir(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *p = NULL;
    if (asprintf(&p, "%s/siyu-test-XXXXXX", base) < 0) return NULL;
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void t_rmdir(char *dir) {
    if (!dir) return;
    if (getenv("KEEP") && strcmp(getenv("KEEP"), "1") == 0)
        fprintf(stderr, "keeping %s\n", dir);
    else
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static const char *bin(void) {
    const char *b = getenv("SIYU_BIN");
    return b ? b : "./siyu";
}

/* Forks argv (argv[0] = the binary), reads its stdout until a line with
 * "listening on HOST:PORT" and fills s. 0 or -1 (the child is killed). */
static int start_child(t_server *s, const char *data, const char *const *argv) {
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        if (!getenv("SIYU_TEST_VERBOSE")) {
            int dn = open("/dev/null", O_WRONLY);
            if (dn >= 0) dup2(dn, 2);
        }
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char line[256];
    s->pid = pid;
    s->port = 0;
    s->data = (char *)data;
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "listening on ");
        if (p) {
            const char *colon = strrchr(p, ':');
            s->port = colon ? atoi(colon + 1) : 0;
            break;
        }
    }
    if (f) fclose(f);
    if (!s->port) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
    return 0;
}

/* `siyu serve --data DATA --listen LISTEN [extra...]`. */
static int serve_spawn(t_server *s, const char *data, const char *listen,
                       const char *const *extra) {
    const char *argv[64] = {bin(), "serve", "--data", data, "--listen", listen};
    int n = 6;
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return start_child(s, data, argv);
}

/* `siyu wecom-sim --listen LISTEN [args...]`. */
static int sim_spawn(t_server *s, const char *listen, const char *const *args) {
    const char *argv[96] = {bin(), "wecom-sim", "--listen", listen};
    int n = 4;
    for (int i = 0; args && args[i] && n < 94; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return start_child(s, NULL, argv);
}

int t_server_start(t_server *s, const char *data, const char *const *extra) {
    return serve_spawn(s, data, "127.0.0.1:0", extra);
}

int t_sim_start(t_server *s, const char *const *args) {
    return sim_spawn(s, "127.0.0.1:0", args);
}

int t_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

int t_server_stop(t_server *s) {
    int status = 0;
    if (s->pid <= 0) return -1;
    kill(s->pid, SIGTERM);
    if (waitpid(s->pid, &status, 0) < 0) return -1;
    s->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void t_server_kill(t_server *s) {
    if (s->pid <= 0) return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

int t_siyu(char **out, const char *const *args) {
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    const char *argv[32] = {bin()};
    int n = 1;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], (char **)argv);
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
    int status = 0;
    waitpid(pid, &status, 0);
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = 0;
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static size_t on_data(char *p, size_t sz, size_t n, void *u) {
    FILE *f = u;
    return fwrite(p, sz, n, f);
}

int t_http(t_server *s, const char *method, const char *path, const char *token, const char *body,
           size_t body_len, const char *content_type, t_resp *out) {
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    if (!c) return -1;
    char url[2048], auth[256], ct[128];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    struct curl_slist *h = NULL;
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    snprintf(ct, sizeof ct, "Content-Type: %s", content_type ? content_type : "application/json");
    h = curl_slist_append(h, ct);
    h = curl_slist_append(h, "Expect:");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, m);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    CURLcode rc = curl_easy_perform(c);
    fclose(m);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    out->body = buf;
    out->len = len;
    if (len) out->json = json_loadb(buf, len, 0, NULL);
    return rc == CURLE_OK ? 0 : -1;
}

int t_api(t_server *s, const char *method, const char *path, const char *token, t_resp *out,
          const char *fmt, ...) {
    char *body = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        json_t *j = json_vpack_ex(NULL, 0, fmt, ap);
        va_end(ap);
        if (!j) return -1;
        body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
    }
    int rc = t_http(s, method, path, token, body, body ? strlen(body) : 0, NULL, out);
    free(body);
    return rc;
}

void t_resp_free(t_resp *r) {
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

const char *t_err_code(const t_resp *r) {
    const char *c = json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
    return c ? c : "";
}

json_t *t_call(t_server *s, const char *method, const char *path, const char *token,
               const char *body, long status) {
    t_resp r;
    assert_int_equal(t_http(s, method, path, token, body, body ? strlen(body) : 0, NULL, &r), 0);
    if (r.status != status)
        fprintf(stderr, "%s %s %s -> %ld %s\n", method, path, body ? body : "", r.status, r.body);
    assert_int_equal(r.status, status);
    json_t *j = json_incref(r.json);
    t_resp_free(&r);
    return j;
}

void t_assert_error(const json_t *j, const char *code, const char *field) {
    const json_t *e = json_object_get(j, "error");
    const char *c = json_string_value(json_object_get(e, "code"));
    assert_string_equal(c ? c : "", code);
    if (field) {
        const char *got = json_string_value(json_object_get(e, "field"));
        if (!got || strcmp(got, field) != 0)
            fprintf(stderr, "field %s, want %s\n", got ? got : "(none)", field);
        assert_non_null(got);
        assert_string_equal(got, field);
    }
}

void t_expect_error(t_resp *r, long status, const char *code, const char *field) {
    if (r->status != status || strcmp(t_err_code(r), code) != 0)
        fprintf(stderr, "unexpected %ld: %s\n", r->status, r->body);
    assert_int_equal(r->status, status);
    t_assert_error(r->json, code, field);
    t_resp_free(r);
}

/* ---- fixtures and queries on DIR/siyu.db ---- */

char *t_token(const char *dir, const char *tenant, const char *role, const char *employee) {
    char *out = NULL;
    const char *args[] = {"token",
                          "create",
                          "--data",
                          dir,
                          "--role",
                          role,
                          tenant ? "--tenant" : NULL,
                          tenant,
                          employee ? "--employee" : NULL,
                          employee,
                          NULL};
    if (t_siyu(&out, args) != 0 || !out || strncmp(out, "sy_", 3) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

int t_fixture_load(const char *dir, const char *sql) {
    static const char *const names[] = {"A", "B"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *args[] = {"tenant", "create", "--data", dir, "--name", names[i], NULL};
        if (t_siyu(NULL, args) != 0) {
            fprintf(stderr, "fixture: siyu tenant create --name %s failed\n", names[i]);
            return -1;
        }
    }
    return sql ? t_sql_exec(dir, sql) : 0;
}

int t_fixture_start(char **dir, t_server *srv, const char *sql, const t_token_spec *specs,
                    size_t n) {
    *dir = t_tmpdir();
    if (!*dir || t_fixture_load(*dir, sql) != 0) return -1;
    for (size_t i = 0; i < n; i++) {
        const t_token_spec *t = &specs[i];
        *t->out = t_token(*dir, t->tenant, t->role, t->employee);
        if (!*t->out) {
            fprintf(stderr, "fixture: no %s token (tenant %s, employee %s)\n", t->role,
                    t->tenant ? t->tenant : "-", t->employee ? t->employee : "-");
            return -1;
        }
    }
    if (t_server_start(srv, *dir, NULL) != 0) {
        fprintf(stderr, "fixture: the server did not start\n");
        return -1;
    }
    return 0;
}

int t_fixture_stop(char **dir, t_server *srv, const t_token_spec *specs, size_t n) {
    int rc = t_server_stop(srv);
    t_rmdir(*dir);
    *dir = NULL;
    for (size_t i = 0; i < n; i++) {
        free(*specs[i].out);
        *specs[i].out = NULL;
    }
    return rc;
}

/* ---- a server wired to the simulator ---- */

static void strv_free(char **v) {
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* A malloc'd copy of the NULL-terminated v (NULL: an empty list), or NULL. */
static char **strv_dup(const char *const *v) {
    size_t n = 0;
    while (v && v[n])
        n++;
    char **c = calloc(n + 1, sizeof *c);
    for (size_t i = 0; c && i < n; i++) {
        if (!(c[i] = strdup(v[i]))) {
            strv_free(c);
            return NULL;
        }
    }
    return c;
}

int t_wired_start(t_wired *w, const char *const *sim_args, const char *const *srv_args) {
    memset(w, 0, sizeof *w);
    w->dir = t_tmpdir();
    if (!w->dir) return -1;
    const char *tc[] = {"tenant",           "create",   "--data",    w->dir,
                        "--name",           "A",        "--corp-id", T_CORP,
                        "--callback-token", T_CB_TOKEN, "--aes-key", T_AES,
                        "--secret",         T_SECRET,   NULL};
    if (t_siyu(NULL, tc) != 0) {
        fprintf(stderr, "t_wired: siyu tenant create failed\n");
        return -1;
    }
    w->admin = t_token(w->dir, "1", "admin", NULL);
    if (!w->admin) {
        fprintf(stderr, "t_wired: no admin token\n");
        return -1;
    }
    w->srv_port = t_free_port();
    int sim_port = t_free_port();
    for (int i = 0; i < 10 && sim_port == w->srv_port; i++)
        sim_port = t_free_port();
    w->srv_args = strv_dup(srv_args);
    if (!w->srv_port || !sim_port || sim_port == w->srv_port || !w->srv_args) {
        fprintf(stderr, "t_wired: no free ports\n");
        return -1;
    }
    /* Both ports are known before either process starts: the server's WeCom
     * base URL names the simulator, the simulator's callback URL the server. */
    w->sim.port = sim_port;
    snprintf(w->sim.base, sizeof w->sim.base, "http://127.0.0.1:%d", sim_port);
    if (t_wired_restart(w, NULL) != 0) {
        fprintf(stderr, "t_wired: siyu serve did not start on port %d\n", w->srv_port);
        return -1;
    }
    char listen[64], cb[128];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", sim_port);
    snprintf(cb, sizeof cb, "http://127.0.0.1:%d/wecom/callback/1", w->srv_port);
    const char *args[96] = {"--corp-id",      T_CORP, "--secret",         T_SECRET,
                            "--callback-url", cb,     "--callback-token", T_CB_TOKEN,
                            "--aes-key",      T_AES};
    int n = 10;
    for (int i = 0; sim_args && sim_args[i] && n < 95; i++)
        args[n++] = sim_args[i];
    args[n] = NULL;
    if (sim_spawn(&w->sim, listen, args) != 0) {
        fprintf(stderr, "t_wired: siyu wecom-sim did not start on port %d\n", sim_port);
        return -1;
    }
    return 0;
}

int t_wired_restart(t_wired *w, const char *const *srv_args) {
    if (srv_args) {
        char **c = strv_dup(srv_args);
        if (!c) return -1;
        strv_free(w->srv_args);
        w->srv_args = c;
    }
    const char *extra[64] = {"--wecom-base-url", w->sim.base};
    int n = 2;
    for (size_t i = 0; w->srv_args && w->srv_args[i] && n < 63; i++)
        extra[n++] = w->srv_args[i];
    extra[n] = NULL;
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", w->srv_port);
    return serve_spawn(&w->srv, w->dir, listen, extra);
}

int t_wired_stop(t_wired *w) {
    if (w->sim.pid > 0) t_server_stop(&w->sim);
    int rc = w->srv.pid > 0 ? t_server_stop(&w->srv) : 0;
    t_rmdir(w->dir);
    free(w->admin);
    strv_free(w->srv_args);
    memset(w, 0, sizeof *w);
    return rc;
}

sqlite3 *t_db_open(const char *dir, int flags) {
    char *path = sqlite3_mprintf("%s/siyu.db", dir);
    sqlite3 *db = NULL;
    int rc = path ? sqlite3_open_v2(path, &db, flags, NULL) : SQLITE_NOMEM;
    sqlite3_free(path);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "open %s/siyu.db: %s\n", dir, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 10000);
    return db;
}

int t_sql_exec(const char *dir, const char *sql) {
    sqlite3 *db = t_db_open(dir, SQLITE_OPEN_READWRITE);
    if (!db) return -1;
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) fprintf(stderr, "fixture: %s\n", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Runs the query fmt/ap on DIR/siyu.db opened read-only. When its first row
 * has a non-NULL first column, stores it as an integer in *v (if v) and as
 * text in buf (if buf) and returns true; returns false for no row or NULL.
 * Fails the running test when the database does not open or the query does
 * not prepare. */
static bool query_first(const char *dir, const char *fmt, va_list ap, long long *v, char *buf,
                        size_t cap) {
    char *sql = sqlite3_vmprintf(fmt, ap);
    assert_non_null(sql);
    sqlite3 *db = t_db_open(dir, SQLITE_OPEN_READONLY);
    assert_non_null(db);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
    bool found = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (found && v) *v = sqlite3_column_int64(st, 0);
    if (found && buf) snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    sqlite3_free(sql);
    return found;
}

long long t_sql_int(const char *dir, const char *fmt, ...) {
    long long v = T_SQL_NONE; /* stays when there is no value */
    va_list ap;
    va_start(ap, fmt);
    query_first(dir, fmt, ap, &v, NULL, 0);
    va_end(ap);
    return v;
}

const char *t_sql_text(const char *dir, const char *fmt, ...) {
    static char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    if (!query_first(dir, fmt, ap, NULL, buf, sizeof buf)) snprintf(buf, sizeof buf, "<null>");
    va_end(ap);
    return buf;
}

/* ---- the API tests' role fixture ---- */

static size_t roles_specs(t_roles *f, t_token_spec *sp) {
    size_t n = 0;
    sp[n++] = (t_token_spec){&f->platform, NULL, "admin", NULL};
    sp[n++] = (t_token_spec){&f->admin, "1", "admin", NULL};
    sp[n++] = (t_token_spec){&f->operator_, "1", "operator", NULL};
    sp[n++] = (t_token_spec){&f->manager, "1", "manager", f->manager_userid};
    sp[n++] = (t_token_spec){&f->alice, "1", "employee", "alice"};
    if (f->bob_userid) sp[n++] = (t_token_spec){&f->bob, "1", "employee", f->bob_userid};
    sp[n++] = (t_token_spec){&f->admin_b, "2", "admin", NULL};
    return n;
}

int t_roles_start(t_roles **out, const char *sql, const char *manager_userid,
                  const char *bob_userid) {
    t_roles *f = calloc(1, sizeof *f);
    *out = f;
    if (!f) return -1;
    f->manager_userid = manager_userid;
    f->bob_userid = bob_userid;
    t_token_spec sp[8];
    size_t n = roles_specs(f, sp);
    return t_fixture_start(&f->dir, &f->srv, sql, sp, n);
}

int t_roles_stop(t_roles *f) {
    if (!f) return 0;
    t_token_spec sp[8];
    size_t n = roles_specs(f, sp);
    int rc = t_fixture_stop(&f->dir, &f->srv, sp, n);
    free(f);
    return rc;
}
