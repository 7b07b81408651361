/* testlib.h — helpers for unit and integration tests: temp dirs, running the
 * real `siyu` binary (SIYU_BIN) on a loopback port, HTTP calls via libcurl.
 * Set KEEP=1 to keep temp data directories for inspection. */
#ifndef SIYU_TESTLIB_H
#define SIYU_TESTLIB_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* cmocka needs these before its header. */
#include <setjmp.h>
#include <stdbool.h>
#include <cmocka.h>

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
/* SIGTERM and wait; returns the exit status (or -1). */
int t_server_stop(t_server *s);
/* SIGKILL and wait. */
void t_server_kill(t_server *s);

/* Runs SIYU_BIN with args (NULL-terminated), captures stdout (malloc'd, trailing
 * newline stripped) into *out if out != NULL. Returns the exit status. */
int t_siyu(char **out, const char *const *args);

typedef struct t_resp {
    long status;
    char *body;  /* malloc'd, NUL-terminated */
    size_t len;
    json_t *json; /* parsed body or NULL */
} t_resp;

/* HTTP request to s->base + path. token may be NULL; body may be NULL;
 * content_type defaults to application/json. Returns 0 or -1 (transport). */
int t_http(t_server *s, const char *method, const char *path, const char *token,
           const char *body, size_t body_len, const char *content_type, t_resp *out);
/* Convenience: JSON body built with json_pack-style fmt (NULL fmt = no body). */
int t_api(t_server *s, const char *method, const char *path, const char *token, t_resp *out,
          const char *fmt, ...);
void t_resp_free(t_resp *r);

/* Error code string of a {"error":{"code":..}} body, or "". */
const char *t_err_code(const t_resp *r);

#endif
