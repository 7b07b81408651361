/* test_outbox_worker.c — the outbox workers against a scripted fake WeCom API (a
 * libmicrohttpd server in this process): every state, backoff, deadlines,
 * lanes, doubt policies after a crash, operator actions and listeners.
 * Integration tests (tests/integration/test_outbox.c) repeat the important
 * paths against `siyu serve` and `siyu wecom-sim`; this one is quick and
 * controls every answer. */
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "outbox/outbox.h"
#include "store/tenant.h"
#include "testlib.h"
#include "wecom/wecom_client.h"

/* ---- the fake WeCom ------------------------------------------------------ */

#define NPATH 16

typedef struct fault {
    char path[64];
    int errcode;
    int delay_ms;
    int count;
} fault;

static struct {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    char paths[NPATH][64];
    int calls[NPATH];
    fault faults[8];
    int nfaults;
    char used[32][64]; /* welcome codes used */
    int nused;
} F = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int fake_calls(const char *path) {
    pthread_mutex_lock(&F.mu);
    int n = 0;
    for (int i = 0; i < NPATH; i++)
        if (!strcmp(F.paths[i], path)) n = F.calls[i];
    pthread_mutex_unlock(&F.mu);
    return n;
}

static void fake_fault(const char *path, int errcode, int delay_ms, int count) {
    pthread_mutex_lock(&F.mu);
    fault *f = &F.faults[F.nfaults++];
    snprintf(f->path, sizeof f->path, "%s", path);
    f->errcode = errcode;
    f->delay_ms = delay_ms;
    f->count = count;
    pthread_mutex_unlock(&F.mu);
}

static void fake_use_code(const char *code) {
    pthread_mutex_lock(&F.mu);
    snprintf(F.used[F.nused++], sizeof F.used[0], "%s", code);
    pthread_mutex_unlock(&F.mu);
}

/* The answer for path (without "/cgi-bin/") and body; counts the call. */
static json_t *fake_answer(const char *path, const char *body) {
    if (!strcmp(path, "gettoken"))
        return json_pack("{s:i,s:s,s:s,s:i}", "errcode", 0, "errmsg", "ok", "access_token", "TOK",
                         "expires_in", 7200);
    int delay = 0, ec = 0;
    pthread_mutex_lock(&F.mu);
    for (int i = 0; i < NPATH; i++) {
        if (!F.paths[i][0]) snprintf(F.paths[i], sizeof F.paths[i], "%s", path);
        if (!strcmp(F.paths[i], path)) {
            F.calls[i]++;
            break;
        }
    }
    for (int i = 0; i < F.nfaults; i++) {
        fault *f = &F.faults[i];
        if (f->count <= 0 || strcmp(f->path, path) != 0) continue;
        f->count--;
        delay = f->delay_ms;
        ec = f->errcode;
        break;
    }
    pthread_mutex_unlock(&F.mu);
    if (delay) usleep((useconds_t)delay * 1000);
    if (ec) return json_pack("{s:i,s:s}", "errcode", ec, "errmsg", "fault");
    json_t *req = json_loads(body ? body : "{}", 0, NULL), *a = NULL;
    if (!strcmp(path, "externalcontact/send_welcome_msg")) {
        const char *code = json_string_value(json_object_get(req, "welcome_code"));
        int used = 0;
        pthread_mutex_lock(&F.mu);
        for (int i = 0; code && i < F.nused; i++)
            if (!strcmp(F.used[i], code)) used = 1;
        if (code && !used && F.nused < 32)
            snprintf(F.used[F.nused++], sizeof F.used[0], "%s", code);
        pthread_mutex_unlock(&F.mu);
        a = used ? json_pack("{s:i,s:s}", "errcode", 41051, "errmsg", "already chatting")
                 : json_pack("{s:i,s:s}", "errcode", 0, "errmsg", "ok");
    } else if (!strcmp(path, "externalcontact/list_contact_way")) {
        a = json_pack("{s:i,s:s,s:[{s:s}],s:s}", "errcode", 0, "errmsg", "ok", "contact_way",
                      "config_id", "cw1", "next_cursor", "");
    } else if (!strcmp(path, "externalcontact/get_contact_way")) {
        a = json_pack("{s:i,s:s,s:{s:s,s:s,s:s}}", "errcode", 0, "errmsg", "ok", "contact_way",
                      "config_id", "cw1", "state", "known-state", "qr_code", "https://q/cw1");
    } else if (!strcmp(path, "externalcontact/add_contact_way")) {
        a = json_pack("{s:i,s:s,s:s,s:s}", "errcode", 0, "errmsg", "ok", "config_id", "cw-new",
                      "qr_code", "https://q/new");
    } else if (!strcmp(path, "externalcontact/get_corp_tag_list")) {
        a = json_pack("{s:i,s:s,s:[{s:s,s:s,s:[{s:s,s:s}]}]}", "errcode", 0, "errmsg", "ok",
                      "tag_group", "group_id", "g1", "group_name", "Level", "tag", "id", "t1",
                      "name", "VIP");
    } else if (!strcmp(path, "externalcontact/transfer_customer")) {
        /* every other customer refused (40128): a long per-customer answer */
        json_t *list = json_array(), *x;
        size_t i;
        json_array_foreach(json_object_get(req, "external_userid"), i, x) json_array_append_new(
            list, json_pack("{s:O,s:i}", "external_userid", x, "errcode", i % 2 ? 40128 : 0));
        a = json_pack("{s:i,s:s,s:o}", "errcode", 0, "errmsg", "ok", "customer", list);
    } else {
        a = json_pack("{s:i,s:s}", "errcode", 0, "errmsg", "ok");
    }
    json_decref(req);
    return a;
}

typedef struct fake_req {
    char *buf;
    size_t len;
} fake_req;

static enum MHD_Result fake_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)cls, (void)method, (void)version;
    fake_req *rq = *con_cls;
    if (!rq) {
        *con_cls = calloc(1, sizeof *rq);
        return *con_cls ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        char *n = realloc(rq->buf, rq->len + *upload_size + 1);
        if (!n) return MHD_NO;
        memcpy(n + rq->len, upload_data, *upload_size);
        rq->buf = n;
        rq->len += *upload_size;
        rq->buf[rq->len] = 0;
        *upload_size = 0;
        return MHD_YES;
    }
    const char *path = strncmp(url, "/cgi-bin/", 9) == 0 ? url + 9 : url;
    json_t *a = fake_answer(path, rq->buf);
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result r = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    return r;
}

static void fake_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)conn, (void)toe;
    fake_req *rq = *con_cls;
    if (rq) free(rq->buf);
    free(rq);
    *con_cls = NULL;
}

static void fake_start(void) {
    pthread_mutex_lock(&F.mu);
    memset(F.paths, 0, sizeof F.paths);
    memset(F.calls, 0, sizeof F.calls);
    F.nfaults = F.nused = 0;
    pthread_mutex_unlock(&F.mu);
    F.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                           NULL, fake_handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, fake_completed,
                           NULL, MHD_OPTION_END);
    assert_non_null(F.d);
    F.port = MHD_get_daemon_info(F.d, MHD_DAEMON_INFO_BIND_PORT)->port;
}

/* ---- fixture ------------------------------------------------------------- */

typedef struct fx {
    char *dir;
    store *st;
    wecom_client *wc;
    outbox *ob;
    pthread_mutex_t mu;
    int finals, sent, dead;
    char last_ref[64];
} fx;

static void on_result(void *arg, int64_t tenant_id, const char *kind, const char *ref,
                      const char *state, const json_t *answer, int errcode) {
    (void)tenant_id, (void)kind, (void)answer, (void)errcode;
    fx *f = arg;
    pthread_mutex_lock(&f->mu);
    f->finals++;
    if (!strcmp(state, "sent")) f->sent++;
    if (!strcmp(state, "dead")) f->dead++;
    snprintf(f->last_ref, sizeof f->last_ref, "%s", ref ? ref : "");
    pthread_mutex_unlock(&f->mu);
}

/* Store with tenant 1 (secret) and 2 (no secret), fake WeCom, client. */
static void fx_open(fx *f) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->dir = t_tmpdir();
    store_options so = {.writer_thread = true};
    f->st = store_open(f->dir, &so, NULL);
    assert_non_null(f->st);
    tenant_input a = {.name = "A",
                      .corp_id = "wwA",
                      .callback_token = "tok",
                      .aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
                      .secret = "SEC"};
    tenant_input b = {.name = "B"};
    assert_int_equal(store_write(f->st, tenant_create, &a), 0);
    assert_int_equal(store_write(f->st, tenant_create, &b), 0);
    fake_start();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", F.port);
    wecom_client_opts wo = {.base_url = url, .timeout_ms = 5000, .retries = -1};
    f->wc = wecom_client_new(&wo, NULL);
    assert_non_null(f->wc);
}

static void fx_start(fx *f, int workers, int max_attempts) {
    outbox_opts o = {.workers = workers,
                     .max_attempts = max_attempts,
                     .poll_ms = 50,
                     .backoff_ms = 40,
                     .backoff_max_ms = 200};
    f->ob = outbox_start(f->st, f->wc, &o, NULL);
    assert_non_null(f->ob);
    outbox_on_result(f->ob, "mark_tag", on_result, f);
    outbox_on_result(f->ob, "send_welcome_msg", on_result, f);
}

/* fx_open and fx_start(1 worker) with the next `count` mark_tag calls
 * answering errcode. */
static void fx_start_mark_tag_fault(fx *f, int errcode, int count, int max_attempts) {
    fx_open(f);
    fake_fault("externalcontact/mark_tag", errcode, 0, count);
    fx_start(f, 1, max_attempts);
}

static void fx_close(fx *f) {
    outbox_stop(f->ob);
    wecom_client_free(f->wc);
    store_close(f->st);
    MHD_stop_daemon(F.d);
    t_rmdir(f->dir);
    pthread_mutex_destroy(&f->mu);
}

typedef struct enq {
    outbox_item it;
    int64_t id;
    siyu_err err;
} enq;

static int enq_step(store_conn *c, void *arg) {
    enq *e = arg;
    return outbox_enqueue(c, &e->it, &e->id, &e->err);
}

static int64_t enqueue(fx *f, int64_t tenant, const char *kind, const char *body, int lane,
                       int64_t deadline_ms) {
    json_t *b = json_loads(body, 0, NULL);
    enq e = {.it = {.tenant_id = tenant,
                    .kind = kind,
                    .body = b,
                    .lane = lane,
                    .deadline_ms = deadline_ms,
                    .origin = "test",
                    .ref = "test:1"}};
    assert_int_equal(store_write(f->st, enq_step, &e), 0);
    json_decref(b);
    outbox_kick(f->ob, lane);
    return e.id;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to 10 s for row id to reach state; returns the row (caller
 * json_decref's) or fails. */
static json_t *wait_state(fx *f, int64_t tenant, int64_t id, const char *state) {
    for (int i = 0; i < 1000; i++) {
        store_conn *c = store_reader_acquire(f->st);
        json_t *j = outbox_get_json(c, tenant, id, true);
        store_reader_release(f->st, c);
        const char *s = json_string_value(json_object_get(j, "state"));
        if (s && !strcmp(s, state)) return j;
        if (i == 999) fprintf(stderr, "row %lld: %s\n", (long long)id, json_dumps(j, 0));
        json_decref(j);
        usleep(10000);
    }
    fail_msg("row %lld never reached %s", (long long)id, state);
    return NULL;
}

static const char *jstr(const json_t *j, const char *k) {
    const char *s = json_string_value(json_object_get(j, k));
    return s ? s : "";
}

static long long jint(const json_t *j, const char *k) {
    return json_integer_value(json_object_get(j, k));
}

/* A mark_tag row for userid "u". */
static int64_t enqueue_mark_tag(fx *f, int64_t tenant, int lane) {
    return enqueue(f, tenant, "mark_tag", "{\"userid\":\"u\"}", lane, 0);
}

/* A send_welcome_msg row for welcome code `code`, due by deadline_ms. */
static int64_t enqueue_welcome(fx *f, const char *code, int64_t deadline_ms) {
    char body[96];
    snprintf(body, sizeof body, "{\"welcome_code\":\"%s\",\"text\":{}}", code);
    return enqueue(f, 1, "send_welcome_msg", body, OUTBOX_LANE_URGENT, deadline_ms);
}

/* Waits up to 1 s for the first final-state listener call. */
static void wait_final(fx *f) {
    for (int i = 0; i < 100 && f->finals == 0; i++)
        usleep(10000);
}

/* The row's error starts with prefix (a WeCom error name, say). */
static void assert_error_starts(const json_t *j, const char *prefix) {
    const char *e = jstr(j, "error");
    if (strncmp(e, prefix, strlen(prefix)) != 0) fail_msg("error \"%s\", want %s...", e, prefix);
}

/* ---- tests --------------------------------------------------------------- */

static void test_enqueue_rejects(void **state) {
    (void)state;
    fx f;
    fx_open(&f);
    json_t *b = json_object();
    const struct {
        const char *kind;
        int lane;
        const char *field;
    } bad[] = {{"no_such_call", 1, "kind"}, {"list", 1, "kind"}, {"mark_tag", 3, "lane"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        enq e = {.it = {.tenant_id = 1, .kind = bad[i].kind, .body = b, .lane = bad[i].lane}};
        assert_int_equal(store_write(f.st, enq_step, &e), SIYU_EINVAL);
        assert_string_equal(e.err.field, bad[i].field);
    }
    json_decref(b);
    f.ob = NULL;
    fx_close(&f);
}

static void test_sent_and_listener(void **state) {
    (void)state;
    fx f;
    fx_open(&f);
    fx_start(&f, 2, 5);
    int64_t id = enqueue(&f, 1, "mark_tag",
                         "{\"userid\":\"u\",\"external_userid\":\"wm1\","
                         "\"add_tag\":[\"t1\"]}",
                         OUTBOX_LANE_NORMAL, 0);
    json_t *j = wait_state(&f, 1, id, "sent");
    assert_int_equal(jint(j, "attempts"), 1);
    assert_int_equal(jint(j, "errcode"), 0);
    assert_true(jint(j, "sent_at") > 0);
    assert_int_equal(jint(json_object_get(j, "result"), "errcode"), 0);
    assert_string_equal(jstr(json_object_get(j, "body"), "userid"), "u");
    json_decref(j);
    wait_final(&f);
    assert_int_equal(f.sent, 1);
    assert_string_equal(f.last_ref, "test:1");
    assert_int_equal(fake_calls("externalcontact/mark_tag"), 1);
    fx_close(&f);
}

/* A transfer answer over OUTBOX_RESULT_MAX keeps its refused customers
 * (not {"truncated":true}): the transfer catch-up reads them from the row
 * (review finding 12). */
static void test_long_transfer_answer_kept(void **state) {
    (void)state;
    fx f;
    fx_open(&f);
    fx_start(&f, 1, 5);
    json_t *b = json_pack("{s:s,s:s,s:[]}", "handover_userid", "h", "takeover_userid", "t",
                          "external_userid");
    for (int i = 0; i < 100; i++) {
        char ext[48];
        snprintf(ext, sizeof ext, "wmCustomerNumber%03dAbcdefghijklmnopqrstu", i);
        json_array_append_new(json_object_get(b, "external_userid"), json_string(ext));
    }
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    int64_t id = enqueue(&f, 1, "transfer_customer", body, OUTBOX_LANE_NORMAL, 0);
    free(body);
    json_t *j = wait_state(&f, 1, id, "sent");
    const json_t *r = json_object_get(j, "result");
    assert_null(json_object_get(r, "truncated"));
    assert_int_equal(jint(r, "errcode"), 0);
    assert_int_equal(jint(r, "customers_ok"), 50);
    assert_true(jint(r, "bytes") > OUTBOX_RESULT_MAX);
    const json_t *list = json_object_get(r, "customer"), *e;
    assert_int_equal(json_array_size(list), 50);
    size_t i;
    json_array_foreach(list, i, e) {
        assert_int_equal(jint(e, "errcode"), 40128);
        char want[48];
        snprintf(want, sizeof want, "wmCustomerNumber%03dAbcdefghijklmnopqrstu", (int)(2 * i + 1));
        assert_string_equal(jstr(e, "external_userid"), want);
    }
    json_decref(j);
    fx_close(&f);
}

static void test_failed_then_sent(void **state) {
    (void)state;
    fx f;
    fx_start_mark_tag_fault(&f, 45009, 1, 5);
    int64_t id = enqueue_mark_tag(&f, 1, OUTBOX_LANE_NORMAL);
    json_t *j = wait_state(&f, 1, id, "sent");
    assert_int_equal(jint(j, "attempts"), 2);
    json_decref(j);
    assert_int_equal(fake_calls("externalcontact/mark_tag"), 2);
    fx_close(&f);
}

static void test_dead_after_max_attempts(void **state) {
    (void)state;
    fx f;
    fx_start_mark_tag_fault(&f, -1, 100, 3);
    int64_t id = enqueue_mark_tag(&f, 1, OUTBOX_LANE_BULK);
    json_t *j = wait_state(&f, 1, id, "dead");
    assert_int_equal(jint(j, "attempts"), 3);
    assert_int_equal(jint(j, "max_attempts"), 3);
    assert_int_equal(jint(j, "errcode"), -1);
    assert_non_null(strstr(jstr(j, "error"), "system_busy"));
    json_decref(j);
    assert_int_equal(fake_calls("externalcontact/mark_tag"), 3);
    wait_final(&f);
    assert_int_equal(f.dead, 1);
    fx_close(&f);
}

static void test_dead_non_retryable(void **state) {
    (void)state;
    fx f;
    fx_start_mark_tag_fault(&f, 40068, 1, 5);
    int64_t id = enqueue_mark_tag(&f, 1, OUTBOX_LANE_NORMAL);
    json_t *j = wait_state(&f, 1, id, "dead");
    assert_int_equal(jint(j, "attempts"), 1);
    assert_int_equal(jint(j, "errcode"), 40068);
    assert_error_starts(j, "invalid_tag_id: ");
    json_decref(j);
    fx_close(&f);
}

static void test_welcome_deadline_and_codes(void **state) {
    (void)state;
    fx f;
    fx_open(&f);
    fx_start(&f, 1, 5);
    /* Past its window before pickup: dead without a call. */
    int64_t late = enqueue_welcome(&f, "W0", now_ms() - 1000);
    json_t *j = wait_state(&f, 1, late, "dead");
    assert_string_equal(jstr(j, "error"), "welcome_code_expired: not sent within 20 s");
    assert_int_equal(jint(j, "attempts"), 0);
    json_decref(j);
    assert_int_equal(fake_calls("externalcontact/send_welcome_msg"), 0);
    /* In time: sent; the same code again: 41051, dead. */
    int64_t a = enqueue_welcome(&f, "W1", now_ms() + 20000);
    json_decref(wait_state(&f, 1, a, "sent"));
    int64_t b = enqueue_welcome(&f, "W1", now_ms() + 20000);
    j = wait_state(&f, 1, b, "dead");
    assert_int_equal(jint(j, "errcode"), 41051);
    assert_error_starts(j, "customer_already_chatting");
    json_decref(j);
    /* Retryable failures that would outlive the window: dead, named as expired. */
    fake_fault("externalcontact/send_welcome_msg", 45009, 0, 100);
    int64_t c = enqueue_welcome(&f, "W2", now_ms() + 30);
    j = wait_state(&f, 1, c, "dead");
    assert_error_starts(j, "welcome_code_expired");
    json_decref(j);
    fx_close(&f);
}

static void test_not_configured(void **state) {
    (void)state;
    fx f;
    fx_open(&f);
    fx_start(&f, 1, 5);
    int64_t id = enqueue_mark_tag(&f, 2, OUTBOX_LANE_NORMAL);
    json_t *j = wait_state(&f, 2, id, "dead");
    assert_error_starts(j, "wecom_not_configured");
    assert_int_equal(jint(j, "attempts"), 0);
    json_decref(j);
    assert_int_equal(fake_calls("externalcontact/mark_tag"), 0);
    fx_close(&f);
}

/* A slow bulk call does not hold up the urgent lane. */
static void test_urgent_lane_not_blocked(void **state) {
    (void)state;
    fx f;
    fx_open(&f);
    fake_fault("externalcontact/mark_tag", 0, 1500, 1);
    fx_start(&f, 1, 5);
    int64_t slow = enqueue_mark_tag(&f, 1, OUTBOX_LANE_BULK);
    usleep(200000); /* the bulk worker is inside the slow call now */
    int64_t t0 = now_ms();
    int64_t w = enqueue_welcome(&f, "W9", now_ms() + 20000);
    json_decref(wait_state(&f, 1, w, "sent"));
    assert_true(now_ms() - t0 < 1000);
    json_decref(wait_state(&f, 1, slow, "sent"));
    fx_close(&f);
}

/* Calls of one kind on the same ref keep their order: while the first is in
 * flight (slow) or backing off, a second worker does not overtake it. */
static void test_same_ref_in_order(void **state) {
    (void)state;
    fx f;
    fx_open(&f);
    fake_fault("externalcontact/mark_tag", 0, 800, 1);
    fx_start(&f, 2, 5);
    int64_t a = enqueue_mark_tag(&f, 1, OUTBOX_LANE_NORMAL);
    json_decref(wait_state(&f, 1, a, "sending"));
    int64_t b = enqueue_mark_tag(&f, 1, OUTBOX_LANE_NORMAL);
    usleep(400000); /* the second worker is idle and b is due */
    json_t *jb = wait_state(&f, 1, b, "pending");
    json_decref(jb);
    json_decref(wait_state(&f, 1, a, "sent"));
    jb = wait_state(&f, 1, b, "sent");
    assert_int_equal(jint(jb, "attempts"), 1);
    json_decref(jb);
    assert_int_equal(fake_calls("externalcontact/mark_tag"), 2);
    fx_close(&f);
}

static int sql_step(store_conn *c, void *arg) {
    return store_conn_exec(c, arg);
}

/* Rows found 'sending' at start go through their kind's doubt policy. */
static void test_doubt_policies(void **state) {
    (void)state;
    fx f;
    fx_open(&f);
    fake_use_code("WD"); /* delivered before the "crash" */
    assert_int_equal(
        store_write(
            f.st, sql_step,
            "INSERT INTO outbox(id,tenant_id,kind,body,lane,state,attempts,next_at,"
            "deadline,created_at,updated_at) VALUES"
            " (11,1,'send_welcome_msg','{\"welcome_code\":\"WD\",\"text\":{}}',0,"
            "  'sending',1,0,NULL,1,1),"
            " (12,1,'add_msg_template','{\"text\":{\"content\":\"x\"}}',1,'sending',1,0,"
            "  NULL,1,1),"
            " (13,1,'add_contact_way','{\"type\":1,\"scene\":2,\"state\":\"known-state\"}',"
            "  1,'sending',1,0,NULL,1,1),"
            " (14,1,'add_contact_way','{\"type\":1,\"scene\":2,\"state\":\"new-state\"}',"
            "  1,'sending',1,0,NULL,1,1),"
            " (15,1,'add_corp_tag','{\"group_name\":\"Level\",\"tag\":[{\"name\":\"VIP\"}]}',"
            "  1,'sending',1,0,NULL,1,1),"
            " (16,1,'mark_tag','{\"userid\":\"u\"}',1,'sending',1,0,NULL,1,1)"),
        0);
    fx_start(&f, 2, 5);
    json_t *j = wait_state(&f, 1, 11, "sent");
    assert_int_equal(jint(j, "errcode"), 41051);
    assert_true(json_is_true(json_object_get(json_object_get(j, "result"), "delivered_before")));
    json_decref(j);
    j = wait_state(&f, 1, 12, "dead");
    assert_error_starts(j, "in_doubt");
    json_decref(j);
    j = wait_state(&f, 1, 13, "sent");
    assert_string_equal(jstr(json_object_get(j, "result"), "config_id"), "cw1");
    json_decref(j);
    j = wait_state(&f, 1, 14, "sent");
    assert_string_equal(jstr(json_object_get(j, "result"), "config_id"), "cw-new");
    json_decref(j);
    j = wait_state(&f, 1, 15, "sent");
    assert_string_equal(
        jstr(json_object_get(json_object_get(j, "result"), "tag_group"), "group_id"), "g1");
    json_decref(j);
    j = wait_state(&f, 1, 16, "sent");
    assert_int_equal(jint(j, "attempts"), 2);
    json_decref(j);
    assert_int_equal(fake_calls("externalcontact/add_contact_way"), 1); /* only new-state */
    assert_int_equal(fake_calls("externalcontact/add_corp_tag"), 0);
    assert_int_equal(fake_calls("externalcontact/add_msg_template"), 0);
    assert_int_equal(fake_calls("externalcontact/send_welcome_msg"), 1);
    fx_close(&f);
}

static void test_operator_actions(void **state) {
    (void)state;
    fx f;
    fx_start_mark_tag_fault(&f, 40068, 1, 5);
    int64_t id = enqueue_mark_tag(&f, 1, OUTBOX_LANE_NORMAL);
    json_decref(wait_state(&f, 1, id, "dead"));
    outbox_action a = {.tenant_id = 2, .id = id, .actor = "test"};
    assert_int_equal(store_write(f.st, outbox_retry_step, &a), SIYU_ENOTFOUND);
    a = (outbox_action){.tenant_id = 1, .id = id, .actor = "test"};
    assert_int_equal(store_write(f.st, outbox_retry_step, &a), 0);
    outbox_kick(f.ob, a.lane);
    json_t *j = wait_state(&f, 1, id, "sent");
    assert_int_equal(jint(j, "attempts"), 1);
    json_decref(j);
    a = (outbox_action){.tenant_id = 1, .id = id, .actor = "test"};
    assert_int_equal(store_write(f.st, outbox_retry_step, &a), SIYU_ECONFLICT);
    assert_int_equal(store_write(f.st, outbox_cancel_step, &a), SIYU_ECONFLICT);
    store_conn *c = store_reader_acquire(f.st);
    outbox_counts n;
    assert_int_equal(outbox_counts_get(c, 1, &n), 0);
    assert_int_equal(n.sent, 1);
    json_t *s = outbox_stats_json(c, 1);
    assert_int_equal(jint(json_object_get(json_object_get(s, "by_kind"), "mark_tag"), "sent"), 1);
    json_decref(s);
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT count(*) FROM audit_log WHERE action='outbox.retry'");
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_reset(st);
    store_reader_release(f.st, c);
    fx_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enqueue_rejects),
        cmocka_unit_test(test_sent_and_listener),
        cmocka_unit_test(test_long_transfer_answer_kept),
        cmocka_unit_test(test_failed_then_sent),
        cmocka_unit_test(test_dead_after_max_attempts),
        cmocka_unit_test(test_dead_non_retryable),
        cmocka_unit_test(test_welcome_deadline_and_codes),
        cmocka_unit_test(test_not_configured),
        cmocka_unit_test(test_urgent_lane_not_blocked),
        cmocka_unit_test(test_same_ref_in_order),
        cmocka_unit_test(test_doubt_policies),
        cmocka_unit_test(test_operator_actions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
