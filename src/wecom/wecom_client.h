/* wecom_client.h — the outbound WeCom server API client (libcurl).
 *
 * One wecom_client per process, shared by every thread. It caches one access
 * token per tenant app (corp id + secret), fetches it with gettoken, refreshes
 * it refresh_margin_s before expiry and when a call answers 40014 / 42001 /
 * 41001 (then retries that call once), with at most one gettoken in flight
 * per app: other callers wait for it. Busy and rate-limit answers (-1, 45009,
 * 45033) and transport failures are retried with exponential backoff and full
 * jitter, up to opts.retries times — except that a call which changes
 * something in WeCom is not repeated after a transport failure that may have
 * reached WeCom (a timeout): that is reported as in doubt, for the outbox's
 * doubt policy. Everything else is returned to the caller as a named error.
 * A gettoken refused for configuration (40001, 40013, 40091) is remembered
 * for the app for 5 minutes: WeCom blocks an IP that keeps presenting a wrong
 * secret, and one tenant's mistake must not cut off the others.
 *
 * The base URL is configuration: production uses https://qyapi.weixin.qq.com,
 * tests and the demo point it at `siyu wecom-sim`. Nothing else differs.
 *
 * Secrets: the corp secret and access tokens never reach logs or errors.
 * Spec: ../shared/spec/wecom.md §3. */
#ifndef SIYU_WECOM_CLIENT_H
#define SIYU_WECOM_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

#define WECOM_BASE_URL_DEFAULT "https://qyapi.weixin.qq.com"
/* errcode used in wecom_res for failures that never reached a WeCom answer:
 * connection refused, timeout, HTTP status other than 200, a body that is not
 * a JSON object. Retried like -1. */
#define WECOM_ERR_TRANSPORT (-100001)

typedef struct wecom_client wecom_client;

typedef struct wecom_client_opts {
    const char *base_url;  /* scheme://host[:port], no trailing "/cgi-bin"; NULL = default */
    long timeout_ms;       /* per HTTP request; 0 = 10000 */
    int retries;           /* extra attempts on -1/45009/45033/transport; <0 = 0, 0 = default 3 */
    int backoff_ms;        /* first backoff; doubled per retry, full jitter; 0 = 200 */
    int backoff_max_ms;    /* cap on one backoff; 0 = 10000 */
    int refresh_margin_s;  /* refresh this long before expires_in runs out; 0 = 300 */
} wecom_client_opts;

/* The app a call is made as: the tenant's corp id and 客户联系 secret. */
typedef struct wecom_app {
    int64_t tenant_id;
    char corp_id[65];
    char secret[129];
} wecom_app;

/* What happened to one call. */
typedef struct wecom_res {
    int errcode;         /* WeCom errcode of the final answer; 0 = ok; WECOM_ERR_TRANSPORT */
    char errmsg[200];    /* WeCom's errmsg or the transport error; never holds secrets */
    int attempts;        /* HTTP requests made for the API call (token fetches excluded) */
    int http_status;     /* of the final attempt, 0 if none */
    bool in_doubt;       /* a transport failure after the request may have reached WeCom:
                            for a call that changes something, it may have taken effect */
} wecom_res;

typedef struct wecom_client_stats {
    long calls;          /* API calls (wecom_call invocations) */
    long requests;       /* HTTP requests to API endpoints, retries included */
    long token_fetches;  /* gettoken requests */
    long token_waits;    /* callers that waited for another thread's gettoken */
    long retries;        /* backoff retries */
    long errors;         /* calls that ended with errcode != 0 */
} wecom_client_stats;

/* NULL and err filled when curl cannot be initialised or base_url is not http(s). */
wecom_client *wecom_client_new(const wecom_client_opts *opts, siyu_err *err);
void wecom_client_free(wecom_client *cl); /* NULL ok */
const char *wecom_client_base_url(const wecom_client *cl);

/* Calls /cgi-bin/PATH as app. body NULL = GET, else POST of the JSON body.
 * query: extra query parameters, already URL-escaped ("userid=zhangsan"), or
 * NULL; access_token is added by the client. On errcode 0 returns 0 and, if
 * out is not NULL, stores the parsed answer there (caller json_decref's it).
 * Otherwise returns SIYU_EREMOTE with res->errcode/errmsg set (and *out NULL),
 * or SIYU_EINVAL for a bad argument. res may be NULL. Thread-safe. */
int wecom_call(wecom_client *cl, const wecom_app *app, const char *path, const char *query,
               const json_t *body, json_t **out, wecom_res *res);

/* wecom_call with a deadline (CLOCK_REALTIME, ms since the epoch; 0 = none):
 * each request's timeout is cut to the time left, and no attempt starts
 * after it (then WECOM_ERR_TRANSPORT, not in doubt). For calls that are only
 * worth making in a window, such as send_welcome_msg (20 s). */
int wecom_call_by(wecom_client *cl, const wecom_app *app, const char *path, const char *query,
                  const json_t *body, int64_t deadline_ms, json_t **out, wecom_res *res);

/* Drops the cached token of tenant_id (e.g. after its secret changed). */
void wecom_client_forget(wecom_client *cl, int64_t tenant_id);
void wecom_client_stats_get(wecom_client *cl, wecom_client_stats *out);

/* URL-escapes s into a malloc'd string (caller frees); NULL on OOM. */
char *wecom_escape(const char *s);

/* errcode → stable snake_case name ("access_token_expired", "frequency_limit",
 * "welcome_code_expired", ...); "errcode_<n>" style is never returned: unknown
 * codes give "wecom_error". Never NULL. */
const char *wecom_errcode_name(int errcode);

/* What to do about an errcode. */
typedef enum {
    WECOM_EC_OK = 0,
    WECOM_EC_TOKEN,   /* token invalid/expired/missing: refresh and retry once (client does it) */
    WECOM_EC_RETRY,   /* busy / rate limit / transport: back off and retry (client does it) */
    WECOM_EC_CONFIG,  /* bad corp id / secret / permissions: alert, do not retry */
    WECOM_EC_REJECT,  /* the request itself was refused (bad id, limit, state): do not retry */
} wecom_ec_class;
wecom_ec_class wecom_errcode_class(int errcode);

/* The API endpoints Siyu calls, by name. `mutating` endpoints change state in
 * WeCom and are only called through the outbox. */
typedef struct wecom_endpoint {
    const char *name;  /* "mark_tag" — the outbox kind */
    const char *path;  /* "externalcontact/mark_tag" */
    bool post;
    bool mutating;
} wecom_endpoint;
extern const wecom_endpoint wecom_endpoints[]; /* ends with {NULL} */
const wecom_endpoint *wecom_endpoint_find(const char *name); /* NULL if unknown */

#endif
