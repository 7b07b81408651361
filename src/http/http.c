/* http.c — libmicrohttpd glue: routing, bodies, auth, suspended writes, metrics.
 *
 * Request lifecycle (one http_conn_state per request, created in the URI-log
 * callback, freed in the completion callback):
 *
 *   NEW --route/auth/limits--> BODY --all data--> RUN handler
 *     RUN --http_write()--> WAIT (connection suspended)
 *     WAIT --writer commit, write_done() resumes--> THEN --then()--> RESPOND
 *     RUN --response set--> RESPOND
 *
 * Streamed bodies (http_stream): the handler leaves fn/arg on the response;
 * send_resp hands them to MHD_create_response_from_callback, after which MHD
 * owns arg and calls its free function when the response is over (also when
 * the client went away). Until then the response owns it (stream_release).
 *
 * Invariant: a connection is suspended only while state == WAIT, and
 * write_done() resumes it only after the handler has suspended it (both under
 * cs->mu), so resume never precedes suspend. */
#include "http/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "auth/auth.h"
#include "util/log.h"

#define DEFAULT_MAX_BODY (1u << 20)
#define HTTP_STREAM_IDLE_S 600 /* idle limit of a streamed response */
#define MAX_QUERY 32
#define NSTATUS 15
#define NBUCKET 13

static const int status_codes[NSTATUS] = {200, 201, 204, 400, 401, 403, 404, 405, 409, 413,
                                          429, 500, 503, 0 /* other */};
static const double buckets[NBUCKET] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5};

enum { ST_NEW, ST_BODY, ST_WAIT, ST_THEN, ST_DONE };

typedef struct http_conn_state {
    http_req req;
    struct MHD_Connection *conn;
    http_server *srv;
    int state;
    char *raw_uri;
    char *body;
    size_t len, cap, limit;
    bool too_big;
    http_resp resp;
    struct timespec t0;
    pthread_mutex_t mu;
    bool suspended;
    bool write_done;
    int write_rc;
    void (*then)(http_req *, http_resp *, int);
    int nq;
    char *qk[MAX_QUERY], *qv[MAX_QUERY];
} http_conn_state;

struct http_server {
    siyu_ctx *ctx;
    struct MHD_Daemon *d;
    const http_route **routes;
    int nroutes;
    size_t max_body;
    atomic_long inflight;
    atomic_long *count;   /* [nroutes+1][NSTATUS] */
    atomic_long *hist;    /* [nroutes+1][NBUCKET+1] cumulative later */
    atomic_long *sum_us;  /* [nroutes+1] */
    int port;
};

/* ---- roles ---- */

static const struct {
    int role;
    const char *name;
} role_names[] = {{ROLE_PLATFORM, "platform"}, {ROLE_ADMIN, "admin"},
                  {ROLE_OPERATOR, "operator"}, {ROLE_MANAGER, "manager"},
                  {ROLE_EMPLOYEE, "employee"}, {ROLE_PUBLIC, "public"}};

const char *http_role_name(int role) {
    for (size_t i = 0; i < sizeof role_names / sizeof *role_names; i++)
        if (role_names[i].role == role) return role_names[i].name;
    return "?";
}

int http_role_parse(const char *name) {
    if (!name) return 0;
    for (size_t i = 1; i < 5; i++)
        if (strcmp(role_names[i].name, name) == 0) return role_names[i].role;
    return 0;
}

/* ---- small helpers ---- */

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string; '+' is kept. NULL on a bad
 * escape or an embedded NUL. */
static char *pct_decode(const char *s, size_t n) {
    char *out = malloc(n + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int a = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
        int b = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (a < 0 || b < 0 || (a == 0 && b == 0)) {
            free(out);
            return NULL;
        }
        *o++ = (char)(a * 16 + b);
        i += 2;
    }
    *o = 0;
    return out;
}

static void parse_query(http_conn_state *cs) {
    const char *q = cs->req.query;
    while (*q && cs->nq < MAX_QUERY) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        size_t kn = eq ? (size_t)(eq - q) : n;
        char *k = pct_decode(q, kn);
        char *v = eq ? pct_decode(eq + 1, n - kn - 1) : strdup("");
        if (k && v) {
            cs->qk[cs->nq] = k;
            cs->qv[cs->nq] = v;
            cs->nq++;
        } else {
            free(k);
            free(v);
        }
        q += n;
        if (*q == '&') q++;
    }
}

const char *http_query(http_req *r, const char *key) {
    http_conn_state *cs = r->cs;
    for (int i = 0; i < cs->nq; i++)
        if (strcmp(cs->qk[i], key) == 0) return cs->qv[i];
    return NULL;
}

const char *http_header(http_req *r, const char *name) {
    return MHD_lookup_connection_value(r->cs->conn, MHD_HEADER_KIND, name);
}

const char *http_param(http_req *r, int i) {
    return i >= 0 && i < HTTP_MAX_PARAMS ? r->params[i] : NULL;
}

bool http_param_id(http_req *r, http_resp *w, int i, int64_t *out) {
    const char *s = http_param(r, i);
    char *end = NULL;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || v <= 0) {
        http_error(w, 404, "not_found", "no such resource: '%s' is not an id", s ? s : "");
        return false;
    }
    *out = v;
    return true;
}

/* ---- responses ---- */

/* What MHD's content reader callback carries for a streamed body. */
typedef struct stream_ctx {
    http_stream_fn fn;
    void *arg;
    void (*free_fn)(void *);
} stream_ctx;

/* Drops a stream set on w that was never handed to MHD (its free_fn runs). */
static void stream_release(http_resp *w) {
    if (w->stream && w->stream_free) w->stream_free(w->stream_arg);
    w->stream = NULL;
    w->stream_arg = NULL;
    w->stream_free = NULL;
}

void http_stream(http_resp *w, int status, const char *content_type, const char *filename,
                 http_stream_fn fn, void *arg, void (*free_fn)(void *arg)) {
    free(w->body);
    w->body = NULL;
    w->len = 0;
    stream_release(w);
    w->status = status;
    w->content_type = content_type;
    w->stream = fn;
    w->stream_arg = arg;
    w->stream_free = free_fn;
    size_t k = 0;
    for (const char *p = filename; p && *p && k + 1 < sizeof w->filename; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        w->filename[k++] = ok ? ch : '_';
    }
    w->filename[k] = 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *sc = cls;
    long n = sc->fn(sc->arg, buf, max);
    if (n == HTTP_STREAM_END) return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0 || (size_t)n > max) return MHD_CONTENT_READER_END_WITH_ERROR;
    return (ssize_t)n;
}

static void stream_done(void *cls) {
    stream_ctx *sc = cls;
    if (sc->free_fn) sc->free_fn(sc->arg);
    free(sc);
}

/* The MHD response of a streamed body; w gives its stream up either way. */
static struct MHD_Response *stream_response(http_resp *w) {
    stream_ctx *sc = malloc(sizeof *sc);
    struct MHD_Response *resp = NULL;
    if (sc) {
        *sc = (stream_ctx){w->stream, w->stream_arg, w->stream_free};
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, sc,
                                                 stream_done);
    }
    if (!resp) {
        free(sc);
        stream_release(w);
        return NULL;
    }
    w->stream = NULL; /* MHD calls stream_done from now on */
    w->stream_arg = NULL;
    w->stream_free = NULL;
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (w->filename[0]) {
        char cd[200];
        snprintf(cd, sizeof cd, "attachment; filename=\"%s\"", w->filename);
        MHD_add_response_header(resp, "Content-Disposition", cd);
    }
    return resp;
}

void http_text(http_resp *w, int status, const char *ctype, const char *text, size_t len) {
    stream_release(w);
    free(w->body);
    w->status = status;
    w->content_type = ctype;
    w->body = NULL;
    w->len = 0;
    if (len) {
        w->body = malloc(len);
        if (w->body) {
            memcpy(w->body, text, len);
            w->len = len;
        }
    }
}

void http_json(http_resp *w, int status, json_t *j) {
    stream_release(w);
    free(w->body);
    w->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    w->status = w->body || !j ? status : 500;
    w->len = w->body ? strlen(w->body) : 0;
    w->content_type = "application/json";
}

void http_error(http_resp *w, int status, const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    http_json(w, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

void http_error_err(http_resp *w, const siyu_err *err) {
    int st;
    switch (err->code) {
    case SIYU_EINVAL: st = 400; break;
    case SIYU_ENOTFOUND: st = 404; break;
    case SIYU_ECONFLICT: st = 409; break;
    case SIYU_EBUSY: st = 429; w->retry_after = 1; break;
    case SIYU_ETOOBIG: st = 413; break;
    case SIYU_EDENIED: st = 403; break;
    case SIYU_ECLOSED: st = 503; break;
    default: st = 500;
    }
    json_t *e = json_pack("{s:s,s:s}", "code", siyu_strerror(err->code), "message",
                          err->msg[0] ? err->msg : siyu_strerror(err->code));
    if (err->field[0]) json_object_set_new(e, "field", json_string(err->field));
    http_json(w, st, json_pack("{s:o}", "error", e));
}

/* ---- JSON bodies ---- */

int json_fields_check(const json_t *obj, const json_field *fields, siyu_err *err) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        const json_field *f = fields;
        while (f->name && strcmp(f->name, key) != 0) f++;
        if (!f->name) return siyu_err_set(err, SIYU_EINVAL, key, "unknown field '%s'", key);
        if (json_is_null(v)) {
            if (!f->nullable)
                return siyu_err_set(err, SIYU_EINVAL, key, "field '%s' must not be null", key);
            continue;
        }
        bool ok = true;
        switch (f->type) {
        case JF_STRING: ok = json_is_string(v); break;
        case JF_INT: ok = json_is_integer(v); break;
        case JF_NUMBER: ok = json_is_number(v); break;
        case JF_BOOL: ok = json_is_boolean(v); break;
        case JF_ARRAY: ok = json_is_array(v); break;
        case JF_OBJECT: ok = json_is_object(v); break;
        case JF_ANY: break;
        }
        static const char *tn[] = {"a string", "an integer", "a boolean", "an array",
                                   "an object", "a number", "any"};
        if (!ok)
            return siyu_err_set(err, SIYU_EINVAL, key, "field '%s' must be %s", key,
                                tn[f->type]);
        if (f->type == JF_STRING) {
            size_t max = f->max_len ? f->max_len : 256;
            size_t n = json_string_length(v);
            if (n > max)
                return siyu_err_set(err, SIYU_EINVAL, key,
                                    "field '%s' is %zu bytes, the limit is %zu", key, n, max);
        }
        if (f->type == JF_ARRAY) {
            size_t max = f->max_len ? f->max_len : 10000;
            if (json_array_size(v) > max)
                return siyu_err_set(err, SIYU_ETOOBIG, key,
                                    "field '%s' has %zu items, the limit is %zu", key,
                                    json_array_size(v), max);
        }
    }
    for (const json_field *f = fields; f->name; f++) {
        if (f->required && !json_object_get(obj, f->name))
            return siyu_err_set(err, SIYU_EINVAL, f->name, "field '%s' is required", f->name);
    }
    return 0;
}

json_t *http_body_object(http_req *r, http_resp *w, const json_field *fields) {
    json_error_t je;
    if (r->body_len == 0) {
        http_error(w, 400, "invalid", "request body must be a JSON object");
        return NULL;
    }
    json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        http_error(w, 400, "invalid", "malformed JSON at line %d column %d: %s", je.line,
                   je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_error(w, 400, "invalid", "request body must be a JSON object");
        return NULL;
    }
    siyu_err err = {0};
    if (fields && json_fields_check(j, fields, &err) != 0) {
        json_decref(j);
        http_error_err(w, &err);
        return NULL;
    }
    return j;
}

/* ---- suspended writes ---- */

static void write_done(void *p, int rc) {
    http_conn_state *cs = p;
    pthread_mutex_lock(&cs->mu);
    cs->write_rc = rc;
    cs->write_done = true;
    if (cs->suspended) {
        cs->suspended = false;
        MHD_resume_connection(cs->conn);
    }
    pthread_mutex_unlock(&cs->mu);
}

void http_write(http_req *r, http_resp *w, store_write_fn fn, void *arg,
                void (*then)(http_req *, http_resp *, int)) {
    http_conn_state *cs = r->cs;
    cs->then = then;
    pthread_mutex_lock(&cs->mu);
    cs->write_done = false;
    int rc = store_write_async(r->ctx->st, fn, arg, write_done, cs);
    if (rc != 0) {
        pthread_mutex_unlock(&cs->mu);
        siyu_err e = {0};
        siyu_err_set(&e, rc, NULL, rc == SIYU_EBUSY ? "write queue is full, retry later"
                                                    : "server is shutting down");
        http_error_err(w, &e);
        return;
    }
    if (cs->write_done) {
        /* Committed already (inline store): answer without suspending. */
        pthread_mutex_unlock(&cs->mu);
        then(r, w, cs->write_rc);
        return;
    }
    cs->state = ST_WAIT;
    cs->suspended = true;
    MHD_suspend_connection(cs->conn);
    pthread_mutex_unlock(&cs->mu);
}

/* ---- routing ---- */

/* Matches path against pattern; fills params (malloc'd) on success. */
static bool route_match(const char *pattern, const char *path, char **params) {
    int np = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '{') {
            const char *pe = strchr(p, '}');
            const char *se = strchr(s, '/');
            size_t n = se ? (size_t)(se - s) : strlen(s);
            if (n == 0 || np >= HTTP_MAX_PARAMS) goto fail;
            params[np] = strndup(s, n);
            np++;
            p = pe + 1;
            s += n;
        } else if (*p == *s) {
            p++;
            s++;
        } else {
            goto fail;
        }
    }
    if (*p == 0 && *s == 0) return true;
fail:
    for (int i = 0; i < np; i++) {
        free(params[i]);
        params[i] = NULL;
    }
    return false;
}

static int status_slot(int status) {
    for (int i = 0; i < NSTATUS - 1; i++)
        if (status_codes[i] == status) return i;
    return NSTATUS - 1;
}

static double elapsed(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void record(http_server *s, http_conn_state *cs) {
    int ri = cs->req.route ? cs->req.route_index : s->nroutes;
    double dt = elapsed(&cs->t0);
    atomic_fetch_add(&s->count[ri * NSTATUS + status_slot(cs->resp.status)], 1);
    int b = 0;
    while (b < NBUCKET && dt > buckets[b]) b++;
    atomic_fetch_add(&s->hist[ri * (NBUCKET + 1) + b], 1);
    atomic_fetch_add(&s->sum_us[ri], (long)(dt * 1e6));
}

static enum MHD_Result send_resp(http_conn_state *cs) {
    http_resp *w = &cs->resp;
    if (!w->status) http_error(w, 500, "internal", "handler produced no response");
    bool streamed = w->stream != NULL;
    struct MHD_Response *resp =
        w->stream ? stream_response(w)
        : w->body ? MHD_create_response_from_buffer(w->len, w->body, MHD_RESPMEM_MUST_FREE)
                  : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    w->body = NULL; /* owned by MHD now */
    if (!resp) return MHD_NO;
    /* A producer may be silent for a while (an .xlsx is zipped before its
     * first byte): longer idle time than the 30 s of ordinary requests. */
    if (streamed)
        MHD_set_connection_option(cs->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                                  (unsigned)HTTP_STREAM_IDLE_S);
    if (w->content_type) MHD_add_response_header(resp, "Content-Type", w->content_type);
    if (w->retry_after) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", w->retry_after);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    enum MHD_Result r = MHD_queue_response(cs->conn, (unsigned)w->status, resp);
    MHD_destroy_response(resp);
    cs->state = ST_DONE;
    return r;
}

/* Finds the route, checks the token; on failure sets cs->resp. */
static void route_and_auth(http_server *s, http_conn_state *cs, const char *method) {
    http_req *r = &cs->req;
    bool path_seen = false;
    for (int i = 0; i < s->nroutes; i++) {
        char *params[HTTP_MAX_PARAMS] = {0};
        if (!route_match(s->routes[i]->path, r->path, params)) continue;
        path_seen = true;
        if (strcmp(s->routes[i]->method, method) != 0) {
            for (int k = 0; k < HTTP_MAX_PARAMS; k++) free(params[k]);
            continue;
        }
        r->route = s->routes[i];
        r->route_index = i;
        memcpy(r->params, params, sizeof params);
        break;
    }
    if (!r->route) {
        if (path_seen) http_error(&cs->resp, 405, "method_not_allowed", "%s is not allowed on %s",
                                  method, r->path);
        else http_error(&cs->resp, 404, "not_found", "no route for %s", r->path);
        return;
    }
    cs->limit = r->route->max_body ? r->route->max_body : s->max_body;
    if (r->route->roles & ROLE_PUBLIC) return;
    const char *h = http_header(r, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) {
        http_error(&cs->resp, 401, "unauthorized", "missing bearer token");
        return;
    }
    store_conn *c = store_reader_acquire(s->ctx->st);
    if (!c) {
        http_error(&cs->resp, 503, "unavailable", "store unavailable");
        return;
    }
    int rc = auth_token_lookup(c, h + 7, &r->auth);
    store_reader_release(s->ctx->st, c);
    if (rc != 0) {
        http_error(&cs->resp, 401, "unauthorized", "invalid or revoked token");
        return;
    }
    if (!(r->route->roles & (unsigned)r->auth.role)) {
        http_error(&cs->resp, 403, "forbidden", "role %s may not %s %s",
                   http_role_name(r->auth.role), method, r->route->path);
        return;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)url;
    (void)version;
    http_server *s = cls;
    http_conn_state *cs = *con_cls;
    if (!cs) return MHD_NO; /* URI log callback failed to allocate */
    cs->conn = conn;
    if (cs->state == ST_NEW) {
        cs->state = ST_BODY;
        cs->req.method = method;
        route_and_auth(s, cs, method);
        if (!cs->resp.status) {
            const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
            if (cl && strtoull(cl, NULL, 10) > cs->limit) {
                http_error(&cs->resp, 413, "too_large",
                           "request body of %s bytes exceeds the limit of %zu bytes", cl,
                           cs->limit);
                return send_resp(cs);
            }
        }
        if (cs->resp.status && *upload_size == 0) return send_resp(cs);
        return MHD_YES;
    }
    if (cs->state == ST_BODY && *upload_size) {
        if (!cs->resp.status && !cs->too_big) {
            if (cs->len + *upload_size > cs->limit) {
                cs->too_big = true;
            } else {
                if (cs->len + *upload_size + 1 > cs->cap) {
                    size_t cap = cs->cap ? cs->cap : 4096;
                    while (cap < cs->len + *upload_size + 1) cap *= 2;
                    char *nb = realloc(cs->body, cap);
                    if (!nb) return MHD_NO;
                    cs->body = nb;
                    cs->cap = cap;
                }
                memcpy(cs->body + cs->len, upload_data, *upload_size);
                cs->len += *upload_size;
                cs->body[cs->len] = 0;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (cs->state == ST_BODY) {
        if (cs->resp.status) return send_resp(cs);
        if (cs->too_big) {
            http_error(&cs->resp, 413, "too_large", "request body exceeds the limit of %zu bytes",
                       cs->limit);
            return send_resp(cs);
        }
        cs->req.body = cs->body ? cs->body : "";
        cs->req.body_len = cs->len;
        cs->state = ST_THEN; /* handler runs now */
        cs->req.route->fn(&cs->req, &cs->resp);
        if (cs->state == ST_WAIT) return MHD_YES;
        return send_resp(cs);
    }
    if (cs->state == ST_WAIT) {
        pthread_mutex_lock(&cs->mu);
        bool done = cs->write_done;
        pthread_mutex_unlock(&cs->mu);
        if (!done) return MHD_YES;
        cs->state = ST_THEN;
        cs->then(&cs->req, &cs->resp, cs->write_rc);
        if (cs->state == ST_WAIT) return MHD_YES; /* a second write */
        return send_resp(cs);
    }
    return MHD_YES;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    http_server *s = cls;
    http_conn_state *cs = calloc(1, sizeof *cs);
    if (!cs) return NULL;
    atomic_fetch_add(&s->inflight, 1);
    clock_gettime(CLOCK_MONOTONIC, &cs->t0);
    cs->srv = s;
    cs->conn = conn;
    cs->limit = s->max_body;
    pthread_mutex_init(&cs->mu, NULL);
    cs->req.ctx = s->ctx;
    cs->req.cs = cs;
    cs->raw_uri = strdup(uri ? uri : "/");
    if (!cs->raw_uri) cs->raw_uri = strdup("/");
    char *q = cs->raw_uri ? strchr(cs->raw_uri, '?') : NULL;
    size_t plen = q ? (size_t)(q - cs->raw_uri) : strlen(cs->raw_uri ? cs->raw_uri : "");
    cs->req.path = cs->raw_uri ? pct_decode(cs->raw_uri, plen) : NULL;
    if (!cs->req.path) cs->req.path = strdup("/invalid-path");
    cs->req.query = q ? q + 1 : (char *)"";
    parse_query(cs);
    return cs;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    http_server *s = cls;
    http_conn_state *cs = *con_cls;
    if (!cs) return;
    if (cs->state == ST_DONE) record(s, cs);
    stream_release(&cs->resp); /* a stream never handed to MHD */
    if (cs->req.user_free) cs->req.user_free(cs->req.user);
    for (int i = 0; i < HTTP_MAX_PARAMS; i++) free(cs->req.params[i]);
    for (int i = 0; i < cs->nq; i++) {
        free(cs->qk[i]);
        free(cs->qv[i]);
    }
    free(cs->resp.body);
    free(cs->body);
    free(cs->req.path);
    free(cs->raw_uri);
    pthread_mutex_destroy(&cs->mu);
    free(cs);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n')) msg[--n] = 0;
    log_warn("http: %s", msg);
}

static int parse_listen(const char *listen, struct sockaddr_in *sa, siyu_err *err) {
    char host[64];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host)
        return siyu_err_set(err, SIYU_EINVAL, "listen", "listen must be ADDR:PORT, got '%s'",
                            listen);
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return siyu_err_set(err, SIYU_EINVAL, "listen", "bad port in '%s'", listen);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa->sin_addr) != 1)
        return siyu_err_set(err, SIYU_EINVAL, "listen", "bad IPv4 address in '%s'", listen);
    return 0;
}

http_server *http_server_start(siyu_ctx *ctx, const http_route *const *tables,
                               const http_options *opts, siyu_err *err) {
    http_server *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ctx = ctx;
    s->max_body = opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
    int n = 0;
    for (int t = 0; tables[t]; t++)
        for (const http_route *r = tables[t]; r->method; r++) n++;
    s->routes = calloc((size_t)n + 1, sizeof *s->routes);
    s->count = calloc((size_t)(n + 1) * NSTATUS, sizeof *s->count);
    s->hist = calloc((size_t)(n + 1) * (NBUCKET + 1), sizeof *s->hist);
    s->sum_us = calloc((size_t)n + 1, sizeof *s->sum_us);
    if (!s->routes || !s->count || !s->hist || !s->sum_us) goto fail;
    for (int t = 0; tables[t]; t++)
        for (const http_route *r = tables[t]; r->method; r++) s->routes[s->nroutes++] = r;
    struct sockaddr_in sa;
    if (parse_listen(opts->listen, &sa, err) != 0) goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    s->d = MHD_start_daemon(
        flags, ntohs(sa.sin_port), NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(opts->threads > 0 ? opts->threads : 4),
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_END);
    if (!s->d) {
        siyu_err_set(err, SIYU_EIO, "listen", "cannot listen on %s (in use or not permitted)",
                     opts->listen);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : ntohs(sa.sin_port);
    return s;
fail:
    free(s->routes);
    free(s->count);
    free(s->hist);
    free(s->sum_us);
    free(s);
    return NULL;
}

void http_server_stop(http_server *s) {
    if (!s) return;
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    /* Let in-flight requests (including suspended writes) finish, up to 15 s. */
    for (int i = 0; i < 1500 && atomic_load(&s->inflight) > 0; i++) usleep(10000);
    MHD_stop_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    free(s->routes);
    free(s->count);
    free(s->hist);
    free(s->sum_us);
    free(s);
}

int http_server_port(http_server *s) {
    return s->port;
}

int http_route_count(http_server *s) {
    return s->nroutes;
}

const http_route *http_route_at(http_server *s, int i) {
    return i >= 0 && i < s->nroutes ? s->routes[i] : NULL;
}

char *http_metrics_text(http_server *s) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fprintf(f, "# HELP siyu_http_requests_total HTTP requests by route and status.\n"
               "# TYPE siyu_http_requests_total counter\n");
    for (int i = 0; i <= s->nroutes; i++) {
        const char *m = i < s->nroutes ? s->routes[i]->method : "";
        const char *p = i < s->nroutes ? s->routes[i]->path : "unmatched";
        for (int k = 0; k < NSTATUS; k++) {
            long v = atomic_load(&s->count[i * NSTATUS + k]);
            if (!v) continue;
            if (status_codes[k])
                fprintf(f, "siyu_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %ld\n",
                        m, p, status_codes[k], v);
            else
                fprintf(f, "siyu_http_requests_total{method=\"%s\",route=\"%s\",status=\"other\"} %ld\n",
                        m, p, v);
        }
    }
    fprintf(f, "# HELP siyu_http_request_duration_seconds Request latency by route.\n"
               "# TYPE siyu_http_request_duration_seconds histogram\n");
    for (int i = 0; i <= s->nroutes; i++) {
        const char *m = i < s->nroutes ? s->routes[i]->method : "";
        const char *p = i < s->nroutes ? s->routes[i]->path : "unmatched";
        long cum = 0, tot = 0;
        for (int b = 0; b <= NBUCKET; b++) tot += atomic_load(&s->hist[i * (NBUCKET + 1) + b]);
        if (!tot) continue;
        for (int b = 0; b < NBUCKET; b++) {
            cum += atomic_load(&s->hist[i * (NBUCKET + 1) + b]);
            fprintf(f, "siyu_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"%g\"} %ld\n",
                    m, p, buckets[b], cum);
        }
        fprintf(f, "siyu_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+Inf\"} %ld\n",
                m, p, tot);
        fprintf(f, "siyu_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n", m, p,
                (double)atomic_load(&s->sum_us[i]) / 1e6);
        fprintf(f, "siyu_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %ld\n", m, p,
                tot);
    }
    fprintf(f, "# HELP siyu_http_inflight Requests in flight.\n# TYPE siyu_http_inflight gauge\n"
               "siyu_http_inflight %ld\n", atomic_load(&s->inflight));
    fclose(f);
    return buf;
}
