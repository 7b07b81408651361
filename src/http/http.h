/* http.h — the HTTP front: libmicrohttpd with a thread pool, a route table,
 * JSON responses, bearer-token auth, metrics, and writes that suspend the
 * connection until the writer has committed.
 *
 * Extension point: a route is one row of an http_route table. A module exports
 * its table (terminated by a row with method NULL); api_routes.c lists them.
 * The OpenAPI document and /metrics labels are generated from these rows.
 *
 * Ownership: an http_req lives from the first byte of a request until its
 * response is queued; handlers may hang heap data on req->user with a free
 * function in req->user_free. */
#ifndef SIYU_HTTP_H
#define SIYU_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/err.h"

/* Roles (bit flags for route declarations). */
enum {
    ROLE_PLATFORM = 1 << 0, /* service-provider admin: tenants only */
    ROLE_ADMIN = 1 << 1,
    ROLE_OPERATOR = 1 << 2,
    ROLE_MANAGER = 1 << 3,
    ROLE_EMPLOYEE = 1 << 4,
    ROLE_PUBLIC = 1 << 5, /* no token needed (callbacks, health) */
};
#define ROLES_TENANT (ROLE_ADMIN | ROLE_OPERATOR | ROLE_MANAGER | ROLE_EMPLOYEE)
#define ROLES_OFFICE (ROLE_ADMIN | ROLE_OPERATOR)

typedef struct siyu_ctx siyu_ctx;

typedef struct http_auth {
    int64_t token_id;
    int64_t tenant_id;   /* 0 for the platform token */
    int role;            /* one ROLE_* bit */
    int64_t employee_id; /* 0 when the token is not tied to an employee */
} http_auth;

#define HTTP_MAX_PARAMS 4

typedef struct http_req http_req;

/* A streamed response body (http_stream): fills up to max bytes of buf and
 * returns how many (> 0), HTTP_STREAM_END after the last byte,
 * HTTP_STREAM_ERROR to cut the response off (the client sees an incomplete
 * chunked body, never a complete-looking one), or 0 when nothing is ready
 * yet (it is called again; wait a little before returning 0 so the server
 * thread does not spin). Runs on a server thread: keep each call short. */
#define HTTP_STREAM_END (-1)
#define HTTP_STREAM_ERROR (-2)
typedef long (*http_stream_fn)(void *arg, char *buf, size_t max);

typedef struct http_resp {
    int status;
    char *body; /* malloc'd; NULL = empty */
    size_t len;
    const char *content_type;
    int retry_after; /* seconds, 0 = no header */
    /* streamed body (http_stream); body is then unused */
    http_stream_fn stream;
    void *stream_arg;
    void (*stream_free)(void *arg);
    char filename[128]; /* Content-Disposition: attachment; "" = none */
} http_resp;

typedef void (*http_handler)(http_req *r, http_resp *w);

typedef struct http_route {
    const char *method;
    const char *path; /* "/api/v1/customers/{id}" */
    http_handler fn;
    unsigned roles;
    const char *summary;
    size_t max_body;       /* 0 = default limit */
    const char *body_type; /* request media type for OpenAPI; NULL = application/json */
    const void *data;      /* handler's per-route data (r->route->data), e.g. a resource kind */
} http_route;

struct http_req {
    siyu_ctx *ctx;
    const http_route *route;
    int route_index;
    const char *method;
    char *path;  /* decoded path, no query */
    char *query; /* raw query string (after '?'), may be "" */
    char *params[HTTP_MAX_PARAMS];
    const char *body;
    size_t body_len;
    http_auth auth;
    void *user;
    void (*user_free)(void *);
    struct http_conn_state *cs; /* internal */
};

/* Query parameter, percent-decoded ('+' stays '+'). Returns a pointer owned by
 * the request or NULL when absent. */
const char *http_query(http_req *r, const char *key);
/* Request header value or NULL. */
const char *http_header(http_req *r, const char *name);
/* Path parameter i (in route order). */
const char *http_param(http_req *r, int i);
/* Parses a path parameter as a positive int64; on failure replies 404. */
bool http_param_id(http_req *r, http_resp *w, int i, int64_t *out);

/* Responses. http_json steals j. */
void http_json(http_resp *w, int status, json_t *j);
void http_text(http_resp *w, int status, const char *ctype, const char *text, size_t len);
void http_error(http_resp *w, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Replies with a body produced while it is sent (chunked transfer encoding;
 * memory bounded by what fn buffers): fn(arg, ...) is called as the client
 * takes data, and free_fn(arg) exactly once when the response is over —
 * complete, cut off, or because the client went away — or right away if the
 * response cannot be queued. filename (may be NULL; characters outside
 * [A-Za-z0-9._-] become '_') makes it a download (Content-Disposition:
 * attachment). Streamed responses carry Cache-Control: no-store. */
void http_stream(http_resp *w, int status, const char *content_type, const char *filename,
                 http_stream_fn fn, void *arg, void (*free_fn)(void *arg));

/* Maps err->code to a status (EINVAL 400, ENOTFOUND 404, ECONFLICT 409, EBUSY
 * 429, ETOOBIG 413, EDENIED 403, other 500) and replies with its message. */
void http_error_err(http_resp *w, const siyu_err *err);

/* Parses the body as a JSON object (rejecting non-objects and, if fields is
 * given, unknown or mistyped fields). On failure replies 400 and returns NULL.
 * Caller owns the result. */
typedef enum { JF_STRING, JF_INT, JF_BOOL, JF_ARRAY, JF_OBJECT, JF_NUMBER, JF_ANY } json_field_type;
typedef struct json_field {
    const char *name;
    json_field_type type;
    bool required;
    size_t max_len; /* strings: bytes; arrays: items; 0 = default (256 / 10000) */
    bool nullable;
} json_field;
json_t *http_body_object(http_req *r, http_resp *w, const json_field *fields);
/* Checks obj against fields; 0 or SIYU_EINVAL with err naming the field. */
int json_fields_check(const json_t *obj, const json_field *fields, siyu_err *err);

/* Queues fn on the writer and suspends the connection; when the batch has
 * committed, then(r, w) runs with r->write_rc holding fn's result. arg is
 * owned by the caller (hang it on r->user to have it freed). */
void http_write(http_req *r, http_resp *w, store_write_fn fn, void *arg,
                void (*then)(http_req *r, http_resp *w, int rc));

/* Server lifecycle. routes is a NULL-terminated list of route tables. */
typedef struct http_server http_server;
typedef struct http_options {
    const char *listen; /* "127.0.0.1:8080" */
    int threads;
    size_t max_body;
} http_options;
http_server *http_server_start(siyu_ctx *ctx, const http_route *const *tables,
                               const http_options *opts, siyu_err *err);
/* Stops accepting, waits for in-flight requests, frees. NULL ok. */
void http_server_stop(http_server *s);
/* The bound port (useful with port 0). */
int http_server_port(http_server *s);

/* Route table walk (OpenAPI, metrics). */
int http_route_count(http_server *s);
const http_route *http_route_at(http_server *s, int i);
/* Writes Prometheus text of the HTTP metrics into a malloc'd buffer. */
char *http_metrics_text(http_server *s);

/* Role name ("admin") for one ROLE_* bit; role_parse returns 0 if unknown. */
const char *http_role_name(int role);
int http_role_parse(const char *name);

#endif
