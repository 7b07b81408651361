/* testlib.h — helpers for unit and integration tests: temp dirs, running the
 * real `siyu` binary (SIYU_BIN) on a loopback port, HTTP calls via libcurl,
 * fixture rows and tokens in a data directory, and queries on its siyu.db.
 * Set KEEP=1 to keep temp data directories for inspection.
 *
 * t_call, t_assert_error, t_expect_error, t_sql_int and t_sql_text fail the
 * running cmocka test themselves; the others report failure by their return
 * value, so that group setups can return -1. */
#ifndef SIYU_TESTLIB_H
#define SIYU_TESTLIB_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* cmocka needs these before its header. */
/* clang-format off */
#include <setjmp.h>
#include <stdbool.h>
#include <cmocka.h>
/* clang-format on */

/* Creates a fresh temporary directory; returns a malloc'd path. */
char *t_tmpdir(void);
/* Removes dir recursively unless KEEP=1. Frees dir. */
void t_rmdir(char *dir);

typedef struct t_server {
    pid_t pid;
    int port;
    char base[64]; /* "http://127.0.0.1:PORT" */
    char *data;    /* not owned */
} t_server;

/* Starts `siyu serve --data DATA --listen 127.0.0.1:0 [extra args...]` and waits
 * until it prints its port. 0 or -1. extra is NULL-terminated, may be NULL. */
int t_server_start(t_server *s, const char *data, const char *const *extra);
/* Starts `siyu wecom-sim --listen 127.0.0.1:0 [args...]` (args NULL-terminated,
 * may be NULL) and waits for its "listening on" line. s->data is NULL.
 * Stop it with t_server_stop. 0 or -1. */
int t_sim_start(t_server *s, const char *const *args);
/* A loopback TCP port nobody listens on right now (it was bound and closed),
 * or 0 when none could be had. */
int t_free_port(void);
/* SIGTERM and wait; returns the exit status (or -1). */
int t_server_stop(t_server *s);
/* SIGKILL and wait. */
void t_server_kill(t_server *s);

/* Runs SIYU_BIN with args (NULL-terminated), captures stdout (malloc'd, trailing
 * newline stripped) into *out if out != NULL. Returns the exit status. */
int t_siyu(char **out, const char *const *args);

typedef struct t_resp {
    long status;
    char *body; /* malloc'd, NUL-terminated */
    size_t len;
    json_t *json; /* parsed body or NULL */
} t_resp;

/* HTTP request to s->base + path. token may be NULL; body may be NULL;
 * content_type defaults to application/json. Returns 0 or -1 (transport). */
int t_http(t_server *s, const char *method, const char *path, const char *token, const char *body,
           size_t body_len, const char *content_type, t_resp *out);
/* Convenience: JSON body built with json_pack-style fmt (NULL fmt = no body). */
int t_api(t_server *s, const char *method, const char *path, const char *token, t_resp *out,
          const char *fmt, ...);
void t_resp_free(t_resp *r);

/* Error code string of a {"error":{"code":..}} body, or "". */
const char *t_err_code(const t_resp *r);

/* Sends body (raw JSON, may be NULL) to s->base + path as token (may be NULL)
 * and asserts that the request went through and the status is status
 * (printing method, path, body and reply when it is not). Returns the parsed
 * reply with a reference of its own (NULL for no or non-JSON body); the
 * caller json_decref's it. */
json_t *t_call(t_server *s, const char *method, const char *path, const char *token,
               const char *body, long status);
/* Asserts that j is {"error":{"code":code,...}} and, when field != NULL, that
 * the error names field. j stays the caller's. */
void t_assert_error(const json_t *j, const char *code, const char *field);
/* Asserts r's status and its error as t_assert_error does, then frees r
 * (t_resp_free) — also on success, so r can be reused. */
void t_expect_error(t_resp *r, long status, const char *code, const char *field);

/* ---- fixtures and queries on DIR/siyu.db ---- */

/* Runs `siyu token create --data DIR --role ROLE [--tenant T] [--employee E]`;
 * tenant and employee may be NULL. Returns the malloc'd token, which the
 * caller frees, or NULL when the command fails or prints no "sy_" token. */
char *t_token(const char *dir, const char *tenant, const char *role, const char *employee);
/* Creates tenants "A" (id 1) and "B" (id 2) in dir with `siyu tenant create`,
 * then runs sql (NULL: nothing) with t_sql_exec. Returns 0, or -1 after
 * printing to stderr what failed. */
int t_fixture_load(const char *dir, const char *sql);

/* A token a fixture makes: where t_fixture_start puts it, and for whom. */
typedef struct t_token_spec {
    char **out;           /* receives the malloc'd token (t_fixture_stop frees it) */
    const char *tenant;   /* tenant id, or NULL for a platform token */
    const char *role;     /* admin, operator, manager or employee */
    const char *employee; /* userid, or NULL */
} t_token_spec;

/* Starts the usual integration fixture: a fresh data directory (*dir) with
 * tenants A and B and sql (t_fixture_load), the n tokens of specs (t_token)
 * and a server on the directory (srv). Returns 0, or -1 after printing which
 * step failed; either way t_fixture_stop releases what was made. */
int t_fixture_start(char **dir, t_server *srv, const char *sql, const t_token_spec *specs,
                    size_t n);
/* Stops srv, removes *dir (t_rmdir, which frees it) and frees the tokens of
 * specs, setting all of them NULL; also after a failed t_fixture_start.
 * Returns t_server_stop's result (-1 when the server was not running). */
int t_fixture_stop(char **dir, t_server *srv, const t_token_spec *specs, size_t n);

/* The role fixture of the API tests: t_fixture_start with one token per
 * role — platform, tenant 1's admin, operator, manager (manager_userid) and
 * employees alice and bob (bob_userid NULL = none), tenant 2's admin. */
typedef struct t_roles {
    char *dir;
    t_server srv;
    char *platform, *admin, *operator_, *manager, *alice, *bob, *admin_b;
    const char *manager_userid, *bob_userid;
} t_roles;
/* Allocates *out and starts it; 0 or -1 (t_roles_stop still releases). */
int t_roles_start(t_roles **out, const char *sql, const char *manager_userid,
                  const char *bob_userid);
/* Stops and frees f (NULL ok); returns t_fixture_stop's result. */
int t_roles_stop(t_roles *f);

/* ---- a server wired to the simulator ---- */

/* Tenant 1's WeCom settings in a t_wired fixture, shared with the simulator. */
#define T_CORP "wwwiredtest0001"
#define T_CB_TOKEN "WiredTok3n"
#define T_AES "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
#define T_SECRET "wired-test-secret"

typedef struct t_wired {
    char *dir;       /* data directory, with tenant 1 (name "A") */
    char *admin;     /* tenant 1's admin token */
    t_server srv;    /* `siyu serve` on 127.0.0.1:srv_port */
    t_server sim;    /* `siyu wecom-sim`; sim.port and sim.base outlive its process */
    int srv_port;    /* fixed: the simulator's callback URL names it */
    char **srv_args; /* the server's extra flags (a copy), for t_wired_restart */
} t_wired;

/* Starts a `siyu serve` wired to a `siyu wecom-sim` on loopback: a fresh data
 * directory with tenant 1 (T_CORP, T_CB_TOKEN, T_AES, T_SECRET) and its admin
 * token; two free ports chosen up front; the server on one with
 * --wecom-base-url naming the simulator and then srv_args; then the simulator
 * on the other with --corp-id, --secret, --callback-url (the server's
 * /wecom/callback/1), --callback-token and --aes-key, then sim_args (its world:
 * --seed, --customers, ...). Both lists are NULL-terminated and may be NULL.
 * Stderr of both is quiet unless SIYU_TEST_VERBOSE is set. Returns 0, or -1
 * after printing which step failed; either way t_wired_stop releases what was
 * made. */
int t_wired_start(t_wired *w, const char *const *sim_args, const char *const *srv_args);
/* Starts the server again on the same port, with srv_args (a copy replaces
 * the kept flags) or, when NULL, the flags it last ran with; for tests that
 * stopped or killed w->srv (t_server_kill). 0 or -1. */
int t_wired_restart(t_wired *w, const char *const *srv_args);
/* Stops the simulator, then the server; removes the data directory and frees
 * all, zeroing w. Returns the server's exit status (0 when it was not
 * running). */
int t_wired_stop(t_wired *w);

/* Opens DIR/siyu.db with sqlite3_open_v2 flags and a 10 s busy timeout (the
 * server may be writing). Returns NULL on failure; the caller sqlite3_close's
 * the handle. */
sqlite3 *t_db_open(const char *dir, int flags);
/* Runs sql — one or more statements, taken literally (not a format) — on
 * DIR/siyu.db opened read-write. Returns 0, or -1 after printing the SQLite
 * error to stderr. */
int t_sql_exec(const char *dir, const char *sql);

/* What t_sql_int returns for no row or a NULL value. */
#define T_SQL_NONE (-999LL)
/* The first column of the first row of a query on DIR/siyu.db, opened
 * read-only, as an integer; fmt is printf-style (sqlite3_vmprintf, so a LIKE
 * pattern's '%' is written '%%'). Returns T_SQL_NONE when there is no row or
 * the value is NULL. Fails the running test when the database does not open
 * or the query does not prepare. */
long long t_sql_int(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same as text, truncated to 2 KiB; "<null>" when there is no row or
 * the value is NULL. Returns a static buffer that the next call overwrites;
 * nobody frees it. */
const char *t_sql_text(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
