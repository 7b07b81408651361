/* wecom_client.c — libcurl client for the WeCom server API.
 *
 *   wecom_call ──> token_get ──(cached, fresh)──> request ──> errcode?
 *                     │                                        │ 0      → done
 *                     └─(stale/invalid) single-flight gettoken │ token  → invalidate, once more
 *                                                              │ retry  → backoff with jitter
 *                                                              └ other  → named error
 *
 * Curl handles are per thread (keep-alive to the API host), created on first
 * use and cleaned up when the thread exits. The token cache is a small array
 * of per-app entries behind one mutex; a refresh runs with the mutex released
 * and other callers of the same app wait on the entry's condition variable. */
#include "wecom/wecom_client.h"

#include <curl/curl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

#define TOKEN_MAX 512        /* spec §3.1: reserve 512 bytes */
#define BODY_MAX (64u << 20) /* longest answer accepted */
#define URL_MAX 4096
#define REFUSED_HOLD_S 300 /* remember a configuration refusal of gettoken */

typedef struct tok_entry {
    int64_t tenant_id;
    unsigned char app_hash[32]; /* SHA-256(corp_id \0 secret): a changed secret is a new app */
    char token[TOKEN_MAX + 1];
    int64_t expires_at;    /* CLOCK_MONOTONIC seconds */
    int64_t refused_until; /* gettoken refused for configuration: no retry before */
    wecom_res refused;     /* ... and that answer */
    bool refreshing;
    pthread_cond_t cond;
} tok_entry;

struct wecom_client {
    char base[256];
    long timeout_ms;
    int retries, backoff_ms, backoff_max_ms, refresh_margin_s;
    pthread_mutex_t mu;
    tok_entry **toks;
    size_t ntoks, captoks;
    atomic_long calls, requests, token_fetches, token_waits, retries_n, errors;
};

/* ---- per-thread curl handles -------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static pthread_key_t curl_key;
static int curl_init_rc;

static void curl_free_handle(void *h) {
    curl_easy_cleanup(h);
}
static void curl_setup(void) {
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
    if (pthread_key_create(&curl_key, curl_free_handle) != 0) curl_init_rc = -1;
}

static CURL *thread_curl(void) {
    CURL *h = pthread_getspecific(curl_key);
    if (!h) {
        h = curl_easy_init();
        if (h && pthread_setspecific(curl_key, h) != 0) {
            curl_easy_cleanup(h);
            h = NULL;
        }
    }
    if (h) curl_easy_reset(h);
    return h;
}

static int64_t mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* ---- errcodes ------------------------------------------------------------ */

static const struct {
    int code;
    const char *name;
    wecom_ec_class cls;
} errcodes[] = {
    {0, "ok", WECOM_EC_OK},
    {-1, "system_busy", WECOM_EC_RETRY},
    {WECOM_ERR_TRANSPORT, "transport_error", WECOM_EC_RETRY},
    {40001, "invalid_secret", WECOM_EC_CONFIG},
    {40003, "invalid_userid", WECOM_EC_REJECT},
    {40007, "invalid_media_id", WECOM_EC_REJECT},
    {40013, "invalid_corpid", WECOM_EC_CONFIG},
    {40014, "invalid_access_token", WECOM_EC_TOKEN},
    {40058, "invalid_parameter", WECOM_EC_REJECT},
    {40063, "empty_parameter", WECOM_EC_REJECT},
    {40068, "invalid_tag_id", WECOM_EC_REJECT},
    {40091, "secret_invalid", WECOM_EC_CONFIG},
    {40096, "invalid_external_userid", WECOM_EC_REJECT},
    {40097, "handover_not_resigned", WECOM_EC_REJECT},
    {40098, "takeover_not_verified", WECOM_EC_REJECT},
    {40099, "contact_limit_reached", WECOM_EC_REJECT},
    {40100, "already_in_transfer", WECOM_EC_REJECT},
    {40126, "corp_tag_limit", WECOM_EC_REJECT},
    {40128, "transfer_too_frequent", WECOM_EC_REJECT},
    {40129, "being_transferred", WECOM_EC_REJECT},
    {40130, "handover_is_takeover", WECOM_EC_REJECT},
    {40131, "handover_not_follower", WECOM_EC_REJECT},
    {40143, "takeover_banned", WECOM_EC_REJECT},
    {41001, "missing_access_token", WECOM_EC_TOKEN},
    {41048, "no_recipients", WECOM_EC_REJECT},
    {41049, "missing_welcome_code", WECOM_EC_REJECT},
    {41050, "welcome_code_expired", WECOM_EC_REJECT},
    {41051, "customer_already_chatting", WECOM_EC_REJECT},
    {41053, "archiving_not_agreed", WECOM_EC_REJECT},
    {41054, "user_not_activated", WECOM_EC_REJECT},
    {41063, "task_being_dispatched", WECOM_EC_REJECT},
    {41064, "too_many_attachments", WECOM_EC_REJECT},
    {41091, "join_way_too_many_chats", WECOM_EC_REJECT},
    {41093, "already_cancelled", WECOM_EC_REJECT},
    {41094, "too_many_reminders", WECOM_EC_REJECT},
    {41096, "welcome_being_sent", WECOM_EC_REJECT},
    {42001, "access_token_expired", WECOM_EC_TOKEN},
    {45009, "frequency_limit", WECOM_EC_RETRY},
    {45033, "concurrency_limit", WECOM_EC_RETRY},
    {48002, "api_not_permitted", WECOM_EC_CONFIG},
    {60011, "no_permission", WECOM_EC_CONFIG},
    {60111, "userid_not_found", WECOM_EC_REJECT},
    {81017, "too_many_items", WECOM_EC_REJECT},
    {84061, "no_relationship", WECOM_EC_REJECT},
    {84074, "no_external_contact_permission", WECOM_EC_CONFIG},
    {90500, "chat_owner_not_resigned", WECOM_EC_REJECT},
    {90501, "not_customer_chat", WECOM_EC_REJECT},
};
#define NERRCODES (sizeof errcodes / sizeof *errcodes)

const char *wecom_errcode_name(int errcode) {
    for (size_t i = 0; i < NERRCODES; i++)
        if (errcodes[i].code == errcode) return errcodes[i].name;
    return "wecom_error";
}

wecom_ec_class wecom_errcode_class(int errcode) {
    for (size_t i = 0; i < NERRCODES; i++)
        if (errcodes[i].code == errcode) return errcodes[i].cls;
    return WECOM_EC_REJECT;
}

/* ---- endpoints ----------------------------------------------------------- */

#define EP(n, p, post, mut)                                                                        \
    { n, p, post, mut }
const wecom_endpoint wecom_endpoints[] = {
    EP("gettoken", "gettoken", false, false),
    EP("get_follow_user_list", "externalcontact/get_follow_user_list", false, false),
    EP("list", "externalcontact/list", false, false),
    EP("get", "externalcontact/get", false, false),
    EP("batch_get_by_user", "externalcontact/batch/get_by_user", true, false),
    EP("remark", "externalcontact/remark", true, true),
    EP("get_corp_tag_list", "externalcontact/get_corp_tag_list", true, false),
    EP("add_corp_tag", "externalcontact/add_corp_tag", true, true),
    EP("edit_corp_tag", "externalcontact/edit_corp_tag", true, true),
    EP("del_corp_tag", "externalcontact/del_corp_tag", true, true),
    EP("mark_tag", "externalcontact/mark_tag", true, true),
    EP("add_contact_way", "externalcontact/add_contact_way", true, true),
    EP("get_contact_way", "externalcontact/get_contact_way", true, false),
    EP("list_contact_way", "externalcontact/list_contact_way", true, false),
    EP("update_contact_way", "externalcontact/update_contact_way", true, true),
    EP("del_contact_way", "externalcontact/del_contact_way", true, true),
    EP("send_welcome_msg", "externalcontact/send_welcome_msg", true, true),
    EP("add_msg_template", "externalcontact/add_msg_template", true, true),
    EP("get_groupmsg_list_v2", "externalcontact/get_groupmsg_list_v2", true, false),
    EP("get_groupmsg_task", "externalcontact/get_groupmsg_task", true, false),
    EP("get_groupmsg_send_result", "externalcontact/get_groupmsg_send_result", true, false),
    EP("transfer_customer", "externalcontact/transfer_customer", true, true),
    EP("transfer_result", "externalcontact/transfer_result", true, false),
    EP("get_unassigned_list", "externalcontact/get_unassigned_list", true, false),
    EP("resigned_transfer_customer", "externalcontact/resigned/transfer_customer", true, true),
    EP("resigned_transfer_result", "externalcontact/resigned/transfer_result", true, false),
    EP("groupchat_list", "externalcontact/groupchat/list", true, false),
    EP("groupchat_get", "externalcontact/groupchat/get", true, false),
    EP("groupchat_transfer", "externalcontact/groupchat/transfer", true, true),
    EP("groupchat_onjob_transfer", "externalcontact/groupchat/onjob_transfer", true, true),
    EP("get_user_behavior_data", "externalcontact/get_user_behavior_data", true, false),
    EP("groupchat_statistic", "externalcontact/groupchat/statistic", true, false),
    EP("groupchat_add_join_way", "externalcontact/groupchat/add_join_way", true, true),
    EP("groupchat_get_join_way", "externalcontact/groupchat/get_join_way", true, false),
    EP("groupchat_update_join_way", "externalcontact/groupchat/update_join_way", true, true),
    EP("groupchat_del_join_way", "externalcontact/groupchat/del_join_way", true, true),
    {NULL, NULL, false, false},
};

const wecom_endpoint *wecom_endpoint_find(const char *name) {
    if (!name) return NULL;
    for (const wecom_endpoint *e = wecom_endpoints; e->name; e++)
        if (!strcmp(e->name, name)) return e;
    return NULL;
}

/* ---- lifecycle ----------------------------------------------------------- */

wecom_client *wecom_client_new(const wecom_client_opts *o, siyu_err *err) {
    pthread_once(&curl_once, curl_setup);
    if (curl_init_rc != 0) {
        siyu_err_set(err, SIYU_EIO, NULL, "libcurl initialisation failed");
        return NULL;
    }
    wecom_client_opts d = o ? *o : (wecom_client_opts){0};
    const char *base = d.base_url && *d.base_url ? d.base_url : WECOM_BASE_URL_DEFAULT;
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    if ((strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) || n >= 256) {
        siyu_err_set(err, SIYU_EINVAL, "wecom_base_url",
                     "wecom_base_url must be an http:// or https:// URL under 256 bytes");
        return NULL;
    }
    wecom_client *cl = calloc(1, sizeof *cl);
    if (!cl) {
        siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    memcpy(cl->base, base, n);
    cl->timeout_ms = d.timeout_ms > 0 ? d.timeout_ms : 10000;
    cl->retries = d.retries < 0 ? 0 : d.retries == 0 ? 3 : d.retries;
    cl->backoff_ms = d.backoff_ms > 0 ? d.backoff_ms : 200;
    cl->backoff_max_ms = d.backoff_max_ms > 0 ? d.backoff_max_ms : 10000;
    cl->refresh_margin_s = d.refresh_margin_s > 0 ? d.refresh_margin_s : 300;
    pthread_mutex_init(&cl->mu, NULL);
    return cl;
}

void wecom_client_free(wecom_client *cl) {
    if (!cl) return;
    for (size_t i = 0; i < cl->ntoks; i++) {
        pthread_cond_destroy(&cl->toks[i]->cond);
        explicit_bzero(cl->toks[i]->token, sizeof cl->toks[i]->token);
        free(cl->toks[i]);
    }
    free(cl->toks);
    pthread_mutex_destroy(&cl->mu);
    free(cl);
}

const char *wecom_client_base_url(const wecom_client *cl) {
    return cl->base;
}

void wecom_client_stats_get(wecom_client *cl, wecom_client_stats *out) {
    out->calls = cl->calls;
    out->requests = cl->requests;
    out->token_fetches = cl->token_fetches;
    out->token_waits = cl->token_waits;
    out->retries = cl->retries_n;
    out->errors = cl->errors;
}

char *wecom_escape(const char *s) {
    pthread_once(&curl_once, curl_setup);
    char *e = curl_easy_escape(NULL, s, 0);
    if (!e) return NULL;
    char *r = strdup(e);
    curl_free(e);
    return r;
}

/* ---- one HTTP exchange --------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool overflow;
} buf;

static size_t on_body(char *data, size_t sz, size_t nm, void *arg) {
    buf *b = arg;
    size_t n = sz * nm;
    if (b->len + n + 1 > BODY_MAX) {
        b->overflow = true;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
    return n;
}

/* GET (body NULL) or POST url. On a WeCom answer returns 0 with *out the
 * parsed object and res->errcode its errcode; otherwise WECOM_ERR_TRANSPORT
 * in res. The URL holds the access token: it is never logged. */
static int http_exchange(const char *url, const char *body, long timeout_ms, json_t **out,
                         wecom_res *res) {
    *out = NULL;
    CURL *h = thread_curl();
    if (!h) {
        res->errcode = WECOM_ERR_TRANSPORT;
        snprintf(res->errmsg, sizeof res->errmsg, "cannot create a curl handle");
        return -1;
    }
    buf b = {0};
    char cerr[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdr = NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000 ? timeout_ms : 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "siyu");
    if (body) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json; charset=utf-8");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    res->http_status = (int)status;
    res->in_doubt = false;
    int rc = -1;
    res->errcode = WECOM_ERR_TRANSPORT;
    if (cc != CURLE_OK) {
        snprintf(res->errmsg, sizeof res->errmsg, "%s",
                 b.overflow ? "answer too large"
                 : cerr[0]  ? cerr
                            : curl_easy_strerror(cc));
        /* Only a failure before the request left is known to have no effect. */
        res->in_doubt = cc != CURLE_COULDNT_CONNECT && cc != CURLE_COULDNT_RESOLVE_HOST &&
                        cc != CURLE_COULDNT_RESOLVE_PROXY;
    } else if (status != 200) {
        snprintf(res->errmsg, sizeof res->errmsg, "HTTP status %ld", status);
        res->in_doubt = true; /* a proxy or gateway may have passed it on */
    } else {
        json_error_t je;
        json_t *j = b.p ? json_loadb(b.p, b.len, 0, &je) : NULL;
        if (!json_is_object(j)) {
            json_decref(j);
            snprintf(res->errmsg, sizeof res->errmsg, "answer is not a JSON object");
        } else {
            json_t *ec = json_object_get(j, "errcode");
            json_int_t v = json_integer_value(ec);
            if (!json_is_integer(ec) || v < INT_MIN || v > INT_MAX) {
                /* Every WeCom answer carries errcode: this is something else
                 * answering (a proxy, a wrong base URL) and proves nothing. */
                json_decref(j);
                snprintf(res->errmsg, sizeof res->errmsg, "answer has no valid errcode");
                res->in_doubt = true;
            } else {
                res->errcode = (int)v;
                const char *em = json_string_value(json_object_get(j, "errmsg"));
                snprintf(res->errmsg, sizeof res->errmsg, "%s", em ? em : "");
                *out = j;
                rc = 0;
            }
        }
    }
    free(b.p);
    return rc;
}

/* Sleeps a full-jitter backoff for retry number n (0-based). */
static void backoff(wecom_client *cl, int n) {
    long cap = cl->backoff_ms;
    for (int i = 0; i < n && cap < cl->backoff_max_ms; i++)
        cap *= 2;
    if (cap > cl->backoff_max_ms) cap = cl->backoff_max_ms;
    unsigned seed = (unsigned)((uintptr_t)&cap ^ (unsigned)time(NULL) ^ (unsigned)n * 2654435761u);
    long ms = cap / 2 + (long)(rand_r(&seed) % (unsigned)(cap / 2 + 1));
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- tokens -------------------------------------------------------------- */

static void app_hash(const wecom_app *app, unsigned char out[32]) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned n = 32;
    if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(c, app->corp_id, strlen(app->corp_id) + 1) ||
        !EVP_DigestUpdate(c, app->secret, strlen(app->secret)) || !EVP_DigestFinal_ex(c, out, &n))
        memset(out, 0, 32);
    EVP_MD_CTX_free(c);
}

/* Entry for app (created on first use); caller holds cl->mu. */
static tok_entry *tok_find(wecom_client *cl, const wecom_app *app) {
    unsigned char hh[32];
    app_hash(app, hh);
    for (size_t i = 0; i < cl->ntoks; i++) {
        tok_entry *e = cl->toks[i];
        if (e->tenant_id != app->tenant_id) continue;
        if (memcmp(e->app_hash, hh, 32) != 0 && !e->refreshing) {
            memcpy(e->app_hash, hh, 32); /* secret changed: forget the old token */
            e->token[0] = 0;
            e->refused_until = 0;
        }
        return e;
    }
    if (cl->ntoks == cl->captoks) {
        size_t cap = cl->captoks ? cl->captoks * 2 : 8;
        tok_entry **t = realloc(cl->toks, cap * sizeof *t);
        if (!t) return NULL;
        cl->toks = t;
        cl->captoks = cap;
    }
    tok_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->tenant_id = app->tenant_id;
    memcpy(e->app_hash, hh, 32);
    pthread_cond_init(&e->cond, NULL);
    cl->toks[cl->ntoks++] = e;
    return e;
}

/* One gettoken exchange (with backoff on busy answers). 0 and token/ttl or
 * SIYU_EREMOTE with res filled. */
static int fetch_token(wecom_client *cl, const wecom_app *app, char *token, int64_t *ttl,
                       wecom_res *res) {
    char *corp = wecom_escape(app->corp_id), *sec = wecom_escape(app->secret);
    char *url = NULL;
    int rc = SIYU_ENOMEM;
    if (corp && sec &&
        asprintf(&url, "%s/cgi-bin/gettoken?corpid=%s&corpsecret=%s", cl->base, corp, sec) > 0) {
        for (int attempt = 0;; attempt++) {
            json_t *j = NULL;
            atomic_fetch_add(&cl->token_fetches, 1);
            http_exchange(url, NULL, cl->timeout_ms, &j, res);
            if (res->errcode == 0) {
                const char *t = json_string_value(json_object_get(j, "access_token"));
                json_int_t exp = json_integer_value(json_object_get(j, "expires_in"));
                if (t && *t && strlen(t) <= TOKEN_MAX) {
                    strcpy(token, t);
                    *ttl = exp > 0 ? exp : 7200;
                    rc = 0;
                } else {
                    res->errcode = WECOM_ERR_TRANSPORT;
                    snprintf(res->errmsg, sizeof res->errmsg,
                             "gettoken answer has no usable "
                             "access_token");
                    rc = SIYU_EREMOTE;
                }
                json_decref(j);
                break;
            }
            json_decref(j);
            rc = SIYU_EREMOTE;
            if (wecom_errcode_class(res->errcode) != WECOM_EC_RETRY || attempt >= cl->retries)
                break;
            atomic_fetch_add(&cl->retries_n, 1);
            backoff(cl, attempt);
        }
    }
    if (url) {
        explicit_bzero(url, strlen(url));
        free(url);
    }
    if (sec) explicit_bzero(sec, strlen(sec));
    free(corp);
    free(sec);
    if (rc == SIYU_EREMOTE)
        log_warn("wecom gettoken failed for tenant %lld: %s (%d)", (long long)app->tenant_id,
                 wecom_errcode_name(res->errcode), res->errcode);
    return rc;
}

/* A usable token for app into out. `bad`, if not NULL, is a token the API
 * just refused: it is dropped if still cached, so exactly one caller fetches
 * its successor while the others wait and reuse it. */
static int token_get(wecom_client *cl, const wecom_app *app, const char *bad, char *out,
                     wecom_res *res) {
    pthread_mutex_lock(&cl->mu);
    tok_entry *e = tok_find(cl, app);
    if (!e) {
        pthread_mutex_unlock(&cl->mu);
        return SIYU_ENOMEM;
    }
    if (bad && !strcmp(e->token, bad)) e->token[0] = 0;
    if (e->refused_until > mono_s()) {
        *res = e->refused;
        pthread_mutex_unlock(&cl->mu);
        return SIYU_EREMOTE;
    }
    for (;;) {
        if (e->token[0] && mono_s() < e->expires_at - cl->refresh_margin_s) {
            strcpy(out, e->token);
            pthread_mutex_unlock(&cl->mu);
            return 0;
        }
        if (!e->refreshing) break;
        atomic_fetch_add(&cl->token_waits, 1);
        pthread_cond_wait(&e->cond, &cl->mu);
        if (!e->token[0]) { /* the refresh failed: report rather than stampede */
            pthread_mutex_unlock(&cl->mu);
            res->errcode = WECOM_ERR_TRANSPORT;
            snprintf(res->errmsg, sizeof res->errmsg, "access token refresh failed");
            return SIYU_EREMOTE;
        }
    }
    e->refreshing = true;
    pthread_mutex_unlock(&cl->mu);

    char tok[TOKEN_MAX + 1];
    int64_t ttl = 0;
    wecom_res tr = {0};
    int rc = fetch_token(cl, app, tok, &ttl, &tr);

    pthread_mutex_lock(&cl->mu);
    e->refreshing = false;
    if (rc == 0) {
        strcpy(e->token, tok);
        /* A TTL shorter than twice the margin (simulators, tests) refreshes at half life. */
        int64_t margin = ttl > 2 * cl->refresh_margin_s ? 0 : ttl / 2 - cl->refresh_margin_s;
        e->expires_at = mono_s() + ttl - margin;
        strcpy(out, tok);
    } else {
        e->token[0] = 0;
        *res = tr;
        if (wecom_errcode_class(tr.errcode) == WECOM_EC_CONFIG) {
            e->refused = tr;
            e->refused.attempts = 0;
            snprintf(e->refused.errmsg, sizeof e->refused.errmsg,
                     "gettoken refused within the last %d s (%.120s); fix the corp id or secret",
                     REFUSED_HOLD_S, tr.errmsg);
            e->refused_until = mono_s() + REFUSED_HOLD_S;
        }
    }
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&cl->mu);
    explicit_bzero(tok, sizeof tok);
    return rc;
}

void wecom_client_forget(wecom_client *cl, int64_t tenant_id) {
    pthread_mutex_lock(&cl->mu);
    for (size_t i = 0; i < cl->ntoks; i++)
        if (cl->toks[i]->tenant_id == tenant_id && !cl->toks[i]->refreshing) {
            cl->toks[i]->token[0] = 0;
            cl->toks[i]->refused_until = 0;
        }
    pthread_mutex_unlock(&cl->mu);
}

/* ---- calls --------------------------------------------------------------- */

/* Whether a call to path may change something in WeCom: the endpoint
 * table says so; an unknown path with a body is assumed to. */
static bool path_mutating(const char *path, bool has_body) {
    for (const wecom_endpoint *e = wecom_endpoints; e->name; e++)
        if (!strcmp(e->path, path)) return e->mutating;
    return has_body;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int wecom_call(wecom_client *cl, const wecom_app *app, const char *path, const char *query,
               const json_t *body, json_t **out, wecom_res *res) {
    return wecom_call_by(cl, app, path, query, body, 0, out, res);
}

int wecom_call_by(wecom_client *cl, const wecom_app *app, const char *path, const char *query,
                  const json_t *body, int64_t deadline_ms, json_t **out, wecom_res *res) {
    wecom_res scratch;
    if (!res) res = &scratch;
    memset(res, 0, sizeof *res);
    if (out) *out = NULL;
    if (!cl || !app || !path || !*path || strlen(path) > 128 || !app->corp_id[0] || !app->secret[0])
        return SIYU_EINVAL;
    for (const char *p = path; *p; p++)
        if (!(*p == '/' || *p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return SIYU_EINVAL;
    atomic_fetch_add(&cl->calls, 1);
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !payload) return SIYU_ENOMEM;
    char token[TOKEN_MAX + 1] = "", bad[TOKEN_MAX + 1] = "";
    char url[URL_MAX];
    bool refreshed = false;
    int rc = SIYU_EREMOTE, retry_n = 0;
    for (;;) {
        int trc = token_get(cl, app, bad[0] ? bad : NULL, token, res);
        if (trc != 0) {
            rc = trc;
            break;
        }
        int n = snprintf(url, sizeof url, "%s/cgi-bin/%s?access_token=%s%s%s", cl->base, path,
                         token, query && *query ? "&" : "", query ? query : "");
        if (n < 0 || (size_t)n >= sizeof url) {
            rc = SIYU_EINVAL;
            break;
        }
        long timeout = cl->timeout_ms;
        if (deadline_ms) {
            int64_t left = deadline_ms - wall_ms();
            if (left <= 0) { /* nothing sent: not in doubt */
                res->errcode = WECOM_ERR_TRANSPORT;
                res->in_doubt = false;
                snprintf(res->errmsg, sizeof res->errmsg, "deadline passed before the request");
                rc = SIYU_EREMOTE;
                break;
            }
            if (left < timeout) timeout = (long)left;
        }
        json_t *j = NULL;
        res->attempts++;
        atomic_fetch_add(&cl->requests, 1);
        http_exchange(url, payload, timeout, &j, res);
        wecom_ec_class cls = wecom_errcode_class(res->errcode);
        if (cls == WECOM_EC_OK) {
            if (out)
                *out = j;
            else
                json_decref(j);
            rc = 0;
            break;
        }
        json_decref(j);
        if (cls == WECOM_EC_TOKEN && !refreshed) {
            refreshed = true; /* once: a fresh token that is refused again is a real error */
            strcpy(bad, token);
            continue;
        }
        if (cls == WECOM_EC_RETRY && res->errcode == WECOM_ERR_TRANSPORT && res->in_doubt &&
            path_mutating(path, body != NULL))
            break; /* it may have been done: the caller decides (outbox doubt policy) */
        if (cls == WECOM_EC_RETRY && retry_n < cl->retries) {
            log_info("wecom %s: %s (%d), retry %d", path, wecom_errcode_name(res->errcode),
                     res->errcode, retry_n + 1);
            atomic_fetch_add(&cl->retries_n, 1);
            backoff(cl, retry_n++);
            continue;
        }
        break;
    }
    explicit_bzero(url, sizeof url);
    explicit_bzero(token, sizeof token);
    free(payload);
    if (rc != 0) {
        atomic_fetch_add(&cl->errors, 1);
        /* A refused request is the caller's to judge (84061 for a customer
         * who is gone is routine); configuration and exhausted retries are
         * worth an operator's attention. */
        if (rc == SIYU_EREMOTE)
            log_msg(wecom_errcode_class(res->errcode) == WECOM_EC_REJECT ? LOG_DEBUG : LOG_WARN,
                    "wecom %s for tenant %lld: %s (%d) after %d attempts", path,
                    (long long)app->tenant_id, wecom_errcode_name(res->errcode), res->errcode,
                    res->attempts);
    }
    return rc;
}
