/* sim_http.c — the simulator's lifecycle and its HTTP front: libmicrohttpd
 * with a thread per connection (admin calls such as /sim/run block until
 * their callbacks are delivered), the request body collected in memory, then
 * dispatched to sim_cgi_handle (/cgi-bin/...) or sim_admin_handle (/sim/...,
 * loopback clients only). Also the per-path call counters and the live
 * traffic thread (--rate).
 *
 * Ownership: a conn_state hangs on MHD's con_cls and owns the body; a
 * sim_req lives on the stack of the final on_request call and owns its reply
 * string until MHD takes it (MHD_RESPMEM_MUST_FREE). */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim/sim_int.h"
#include "util/log.h"

#define MAX_BODY (8u << 20)

typedef struct sim_http {
    struct MHD_Daemon *d;
    int port;
} sim_http;

typedef struct sim_calls {
    pthread_mutex_t mu;
    struct {
        char path[96];
        long long n;
    } * rows;
    int n, cap;
} sim_calls;

typedef struct conn_state {
    char *body;
    size_t len, cap;
    bool too_big;
} conn_state;

void sim_options_default(sim_options *o) {
    *o = (sim_options){.listen = "127.0.0.1:0",
                       .seed = 1,
                       .stores = 50,
                       .departments = 12,
                       .employees = 500,
                       .customers = 100000,
                       .channels = 200,
                       .groups = 1000,
                       .tags = 60,
                       .history_days = 90,
                       .token_ttl = 7200,
                       .welcome_ttl = 20,
                       .takeover_delay = 86400,
                       .refuse_rate = 0.05,
                       .push_concurrency = 8,
                       .msg_quota = 1};
}

/* ---- call counters ------------------------------------------------------ */

void sim_calls_count(sim *s, const char *path) {
    sim_calls *c = s->calls;
    pthread_mutex_lock(&c->mu);
    int i = 0;
    while (i < c->n && strcmp(c->rows[i].path, path) != 0)
        i++;
    if (i == c->n && strlen(path) < sizeof c->rows[0].path) {
        SIM_PUSH(c->rows, c->n, c->cap);
        snprintf(c->rows[c->n].path, sizeof c->rows[0].path, "%s", path);
        c->rows[c->n++].n = 0;
    }
    if (i < c->n) c->rows[i].n++;
    pthread_mutex_unlock(&c->mu);
}

json_t *sim_calls_json(sim *s) {
    sim_calls *c = s->calls;
    json_t *j = json_object();
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++)
        json_object_set_new(j, c->rows[i].path, json_integer(c->rows[i].n));
    pthread_mutex_unlock(&c->mu);
    return j;
}

void sim_calls_free(sim *s) {
    if (!s->calls) return;
    pthread_mutex_destroy(&s->calls->mu);
    free(s->calls->rows);
    free(s->calls);
    s->calls = NULL;
}

/* ---- requests ----------------------------------------------------------- */

const char *sim_req_query(sim_req *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

void sim_reply_json(sim_req *r, json_t *j) {
    free(r->reply);
    r->reply = j ? json_dumps(j, JSON_COMPACT) : NULL;
    r->reply_len = r->reply ? strlen(r->reply) : 0;
    json_decref(j);
}

static bool is_loopback(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return false;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, int status, char *body, size_t len) {
    struct MHD_Response *resp =
        body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    sim *s = cls;
    conn_state *cs = *con_cls;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs) return MHD_NO;
        *con_cls = cs;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        if (cs->len + n > MAX_BODY) {
            cs->too_big = true;
        } else if (!cs->too_big) {
            if (cs->len + n + 1 > cs->cap) {
                size_t cap = cs->cap ? cs->cap : 4096;
                while (cap < cs->len + n + 1)
                    cap *= 2;
                cs->body = sim_xrealloc(cs->body, cap);
                cs->cap = cap;
            }
            memcpy(cs->body + cs->len, upload_data, n);
            cs->len += n;
            cs->body[cs->len] = 0;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    sim_req r = {.s = s,
                 .method = method,
                 .body = cs->body ? cs->body : "",
                 .body_len = cs->len,
                 .conn = conn,
                 .status = 200};
    if (cs->too_big) {
        r.status = 413;
        sim_reply_json(&r, json_pack("{s:i,s:s}", "errcode", 40058, "errmsg", "body too large"));
    } else if (strncmp(url, "/cgi-bin/", 9) == 0) {
        r.path = url + 9;
        if (cs->len) r.json = json_loadb(cs->body, cs->len, 0, NULL);
        sim_cgi_handle(&r);
    } else if (strncmp(url, "/sim/", 5) == 0) {
        r.path = url + 5;
        if (!is_loopback(conn)) {
            r.status = 403;
            sim_reply_json(&r, json_pack("{s:s}", "error", "the admin API is loopback only"));
        } else {
            if (cs->len) r.json = json_loadb(cs->body, cs->len, 0, NULL);
            sim_admin_handle(&r);
        }
    } else {
        r.status = 404;
        sim_reply_json(&r, json_pack("{s:i,s:s}", "errcode", 404, "errmsg", "no such path"));
    }
    json_decref(r.json);
    return send_reply(conn, r.status, r.reply, r.reply_len);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    conn_state *cs = *con_cls;
    if (!cs) return;
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

int sim_http_start(sim *s, siyu_err *err) {
    char host[128];
    snprintf(host, sizeof host, "%s", s->o.listen);
    char *colon = strrchr(host, ':');
    if (!colon) return siyu_err_set(err, SIYU_EINVAL, "listen", "--listen must be HOST:PORT");
    *colon = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return siyu_err_set(err, SIYU_EINVAL, "listen", "--listen needs an IPv4 address");
    sim_http *h = calloc(1, sizeof *h);
    if (!h) return siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    h->d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_CONNECTION_LIMIT, 1024u,
        MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return siyu_err_set(err, SIYU_EIO, "listen", "cannot listen on %s", s->o.listen);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : 0;
    s->http = h;
    return 0;
}

void sim_http_stop(sim *s) {
    if (!s->http) return;
    MHD_stop_daemon(s->http->d);
    free(s->http);
    s->http = NULL;
}

int sim_http_port(sim *s) {
    return s->http ? s->http->port : 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

sim *sim_create(const sim_options *o, siyu_err *err) {
    bool cb = o->callback_url || o->callback_token || o->aes_key;
    if (!o->corp_id || !o->secret || !*o->corp_id || !*o->secret) {
        siyu_err_set(err, SIYU_EINVAL, "corp-id", "--corp-id and --secret are required");
        return NULL;
    }
    if (cb && !(o->callback_url && o->callback_token && o->aes_key)) {
        siyu_err_set(err, SIYU_EINVAL, "callback-url",
                     "--callback-url, --callback-token and --aes-key go together");
        return NULL;
    }
    if (o->token_ttl < 1 || o->welcome_ttl < 0 || o->takeover_delay < 0 || o->refuse_rate < 0 ||
        o->refuse_rate > 1 || o->push_concurrency < 1 || o->push_concurrency > 256 ||
        o->msg_quota < 0 || o->rate < 0) {
        siyu_err_set(err, SIYU_EINVAL, NULL, "a timing or rate flag is out of range");
        return NULL;
    }
    sim *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->o = *o;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->log_cond, NULL);
    s->calls = calloc(1, sizeof *s->calls);
    if (!s->calls) abort();
    pthread_mutex_init(&s->calls->mu, NULL);
    if (sim_world_build(s, err) != 0) {
        sim_free(s);
        return NULL;
    }
    return s;
}

/* Live traffic at --rate actions per second; without a rate it only runs
 * due takeovers and mass-message confirmations once a second. */
static void *rate_main(void *arg) {
    sim *s = arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&s->mu);
    while (!atomic_load(&s->stopping)) {
        int n = 0;
        sim_tick(s);
        if (s->o.rate > 0) sim_act_random(s, &s->rng, sim_now(s), &n);
        /* /sim/config may change the rate */
        double interval = s->o.rate > 0 ? 1.0 / s->o.rate : 1.0;
        pthread_mutex_unlock(&s->mu);
        long long ns = (long long)next.tv_nsec + (long long)(interval * 1e9);
        next.tv_sec += (time_t)(ns / 1000000000LL);
        next.tv_nsec = (long)(ns % 1000000000LL);
        int gen = atomic_load(&s->config_gen);
        for (;;) { /* short naps so that a stop or a new rate is noticed quickly */
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long long left =
                (long long)(next.tv_sec - now.tv_sec) * 1000000000LL + (next.tv_nsec - now.tv_nsec);
            if (left <= 0 || atomic_load(&s->stopping)) break;
            if (atomic_load(&s->config_gen) != gen) {
                next = now;
                break;
            }
            struct timespec nap = {0, (long)(left < 100000000LL ? left : 100000000LL)};
            nanosleep(&nap, NULL);
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int sim_start(sim *s, siyu_err *err) {
    int rc;
    if (s->o.callback_url && (rc = sim_push_start(s, err)) != 0) return rc;
    if ((rc = sim_http_start(s, err)) != 0) return rc;
    if (pthread_create(&s->rate_thread, NULL, rate_main, s) != 0)
        return siyu_err_set(err, SIYU_EIO, NULL, "cannot start the traffic thread");
    s->rate_running = true;
    return 0;
}

int sim_port(sim *s) {
    return sim_http_port(s);
}

void sim_free(sim *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->stopping, true);
    pthread_cond_broadcast(&s->log_cond);
    pthread_mutex_unlock(&s->mu);
    if (s->rate_running) pthread_join(s->rate_thread, NULL);
    sim_http_stop(s);
    sim_push_stop(s);
    sim_world_free(s);
    free(s->faults);
    sim_calls_free(s);
    pthread_cond_destroy(&s->log_cond);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
