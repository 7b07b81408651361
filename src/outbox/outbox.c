/* outbox.c — the durable outbox: rows in table `outbox`, delivered to WeCom by
 * worker threads (see outbox.h for states, lanes and doubt policies).
 *
 * Lifecycle of a row (function behind each arrow):
 *
 *   outbox_enqueue ──> pending ──claim_step──> sending ──record_step──> sent
 *                         ▲  ▲                   │  │                   (listeners)
 *   outbox_retry_step ────┘  └──record_step── failed (retryable; next_at)
 *        (failed/dead)                           │  └──record_step──> dead (listeners)
 *                                claim_step ─────┘      (non-retryable, attempts used up,
 *                   (past deadline / no secret / hold policy in doubt: dead, no call)
 *   start_step: sending (found at start) ──> pending with doubt = 1
 *   outbox_cancel_step: pending/failed/dead ──> cancelled
 *
 * Threads: opts.urgent_workers serve lane 0 (urgent) only; opts.workers serve lanes 1
 * and 2 (lane order, then id order). A worker polls with a read connection
 * (cheap, no commit) and, when something is due, asks the writer to claim the
 * first due row of its lanes (claim_step picks and claims in one step, so two
 * workers never claim the same row). The claim commits before the HTTP call;
 * the outcome commits in a second step; listeners run after that commit.
 *
 * Memory: struct outbox owns its threads, listener table and counters; a
 * claim owns the row's kind/body copies and the tenant's app (wiped after the
 * call). Secrets never reach rows, errors or logs. */
#include "outbox/outbox.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/audit.h"
#include "store/tenant.h"
#include "util/log.h"
#include "wecom/wecom_client.h"

#define WELCOME_KIND "send_welcome_msg"
#define PROBE_PAGES_MAX 20

/* ---- doubt policies, next to the kinds ------------------------------------
 * Every mutating wecom_endpoint (wecom_client.c) is a kind. What a delivery
 * found in doubt at start-up (claimed, answer never recorded) does:
 *   RESEND  send again; idempotent, or a repeat is told apart by `repeat_ec`:
 *           that errcode after doubt means the first attempt got through, and
 *           the row is recorded sent (the error column says so).
 *   PROBE   ask WeCom whether the effect exists before creating it again.
 *   HOLD    WeCom cannot tell: dead "in_doubt"; an operator decides. */
typedef enum { DOUBT_RESEND, DOUBT_PROBE, DOUBT_HOLD } doubt_policy;

static const struct kind_policy {
    const char *kind;
    doubt_policy policy;
    int repeat_ec; /* 0 = none */
} kind_policies[] = {
    {"remark", DOUBT_RESEND, 0},             /* overwrites: idempotent */
    {"add_corp_tag", DOUBT_PROBE, 0},        /* get_corp_tag_list: same group + tag names */
    {"edit_corp_tag", DOUBT_RESEND, 0},      /* overwrites */
    {"del_corp_tag", DOUBT_RESEND, 40068},   /* gone already: invalid tag id */
    {"mark_tag", DOUBT_RESEND, 0},           /* set semantics */
    {"add_contact_way", DOUBT_PROBE, 0},     /* list/get_contact_way: same state */
    {"update_contact_way", DOUBT_RESEND, 0}, /* overwrites */
    {"del_contact_way", DOUBT_RESEND, 0},
    {WELCOME_KIND, DOUBT_RESEND, 41051},    /* code used once: 41051 on a repeat */
    {"add_msg_template", DOUBT_HOLD, 0},    /* a repeat sends the mass message twice */
    {"transfer_customer", DOUBT_RESEND, 0}, /* repeats answer 40129 per customer */
    {"resigned_transfer_customer", DOUBT_RESEND, 0},
    {"groupchat_transfer", DOUBT_RESEND, 0},
    {"groupchat_onjob_transfer", DOUBT_RESEND, 0},
    {"groupchat_add_join_way", DOUBT_HOLD, 0},       /* a repeat makes a second join way */
    {"groupchat_update_join_way", DOUBT_RESEND, 0},  /* overwrites */
    {"groupchat_del_join_way", DOUBT_RESEND, 41044}, /* gone already */
};

static const struct kind_policy *policy_of(const char *kind) {
    static const struct kind_policy resend = {NULL, DOUBT_RESEND, 0};
    for (size_t i = 0; i < sizeof kind_policies / sizeof *kind_policies; i++)
        if (!strcmp(kind_policies[i].kind, kind)) return &kind_policies[i];
    return &resend;
}

static const char *const states[] = {"pending", "sending", "sent", "failed", "dead", "cancelled"};

bool outbox_state_valid(const char *state) {
    for (size_t i = 0; state && i < sizeof states / sizeof *states; i++)
        if (!strcmp(states[i], state)) return true;
    return false;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the handle ------------------------------------------------------------ */

typedef struct listener {
    char kind[48];
    outbox_result_fn fn;
    void *arg;
} listener;

typedef struct worker {
    struct outbox *ob;
    int lane_lo, lane_hi;
    int group; /* 0 urgent, 1 normal + bulk */
    unsigned seed;
    pthread_t th;
    bool started;
} worker;

struct outbox {
    store *st;
    wecom_client *wc;
    outbox_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cond[2];
    unsigned gen[2]; /* kick generations, under mu */
    bool stopping;
    worker *workers;
    int nworkers;
    listener *ls;
    int nls, capls;
    atomic_long sent, failed, dead, probes;
};

void outbox_kick(outbox *ob, int lane) {
    if (!ob) return;
    int g = lane == OUTBOX_LANE_URGENT ? 0 : 1;
    pthread_mutex_lock(&ob->mu);
    ob->gen[g]++;
    pthread_cond_broadcast(&ob->cond[g]);
    pthread_mutex_unlock(&ob->mu);
}

void outbox_on_result(outbox *ob, const char *kind, outbox_result_fn fn, void *arg) {
    if (!ob || !kind || !fn) return;
    pthread_mutex_lock(&ob->mu);
    if (ob->nls == ob->capls) {
        int cap = ob->capls ? ob->capls * 2 : 8;
        listener *n = realloc(ob->ls, (size_t)cap * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&ob->mu);
            log_error("outbox: out of memory registering a listener for %s", kind);
            return;
        }
        ob->ls = n;
        ob->capls = cap;
    }
    listener *l = &ob->ls[ob->nls++];
    snprintf(l->kind, sizeof l->kind, "%s", kind);
    l->fn = fn;
    l->arg = arg;
    pthread_mutex_unlock(&ob->mu);
}

void outbox_stats_get(outbox *ob, outbox_stats *out) {
    memset(out, 0, sizeof *out);
    if (!ob) return;
    out->sent = atomic_load(&ob->sent);
    out->failed = atomic_load(&ob->failed);
    out->dead = atomic_load(&ob->dead);
    out->probes = atomic_load(&ob->probes);
}

/* ---- enqueue ------------------------------------------------------------- */

int outbox_enqueue(store_conn *c, const outbox_item *it, int64_t *id_out, siyu_err *err) {
    const wecom_endpoint *ep = it && it->kind ? wecom_endpoint_find(it->kind) : NULL;
    if (!ep || !ep->mutating)
        return siyu_err_set(err, SIYU_EINVAL, "kind", "'%s' is not a WeCom call that changes state",
                            it && it->kind ? it->kind : "(null)");
    if (it->tenant_id <= 0) return siyu_err_set(err, SIYU_EINVAL, "tenant_id", "no tenant");
    if (it->lane < OUTBOX_LANE_URGENT || it->lane > OUTBOX_LANE_BULK)
        return siyu_err_set(err, SIYU_EINVAL, "lane", "lane must be 0, 1 or 2");
    if (!it->body || !json_is_object(it->body))
        return siyu_err_set(err, SIYU_EINVAL, "body", "the body must be a JSON object");
    char *body = json_dumps(it->body, JSON_COMPACT);
    if (!body) return siyu_err_set(err, SIYU_ENOMEM, "body", "out of memory");
    if (strlen(body) > OUTBOX_BODY_MAX) {
        free(body);
        return siyu_err_set(err, SIYU_EINVAL, "body", "the body exceeds %u bytes", OUTBOX_BODY_MAX);
    }
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT INTO outbox(tenant_id, kind, body, lane, state, next_at, deadline, origin, ref,"
           " created_at, updated_at) VALUES(?1,?2,?3,?4,'pending',?5,?6,?7,?8,?9,?9)");
    if (!st) {
        free(body);
        return siyu_err_set(err, SIYU_EIO, NULL, "outbox insert failed");
    }
    sqlite3_bind_int64(st, 1, it->tenant_id);
    store_bind_text(st, 2, ep->name);
    store_bind_text(st, 3, body);
    sqlite3_bind_int(st, 4, it->lane);
    sqlite3_bind_int64(st, 5, now_ms());
    if (it->deadline_ms > 0) sqlite3_bind_int64(st, 6, it->deadline_ms);
    store_bind_text(st, 7, it->origin);
    store_bind_text(st, 8, it->ref);
    sqlite3_bind_int64(st, 9, siyu_now());
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    free(body);
    if (rc != SQLITE_DONE) return siyu_err_set(err, store_rc(rc), NULL, "outbox insert failed");
    if (id_out) *id_out = store_conn_last_id(c);
    return 0;
}

/* ---- claim ----------------------------------------------------------------- */

typedef enum { CLAIM_NONE, CLAIM_CALL, CLAIM_FINAL } claim_action;

typedef struct claim {
    /* in */
    int lane_lo, lane_hi;
    int max_attempts;
    /* out */
    claim_action action;
    int64_t id, tenant_id, deadline;
    int lane, attempts, max;
    bool doubt;
    int64_t created_at;
    char kind[48];
    char *body;
    char *ref;
    wecom_app app;
    char final_error[160]; /* CLAIM_FINAL: why it went dead */
} claim;

static void claim_reset(claim *cl) {
    free(cl->body);
    free(cl->ref);
    explicit_bzero(&cl->app, sizeof cl->app);
    cl->body = cl->ref = NULL;
}

static char *col_dup(sqlite3_stmt *st, int i) {
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? strdup(s) : NULL;
}

/* Writes a final 'dead' without a call (claim_step's refusals). */
static int mark_dead(store_conn *c, int64_t id, const char *error) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE outbox SET state='dead', error=?2, errcode=NULL, doubt=0, updated_at=?3"
           " WHERE id=?1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, id);
    store_bind_text(st, 2, error);
    sqlite3_bind_int64(st, 3, siyu_now());
    return store_stmt_run(st);
}

/* Write step: picks the first due row of the claim's lanes and either claims
 * it (state 'sending', attempts + 1) or, when it must not be called, records
 * it dead. */
static int claim_step(store_conn *c, void *arg) {
    claim *cl = arg;
    cl->action = CLAIM_NONE;
    int64_t now = now_ms();
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT id, tenant_id, kind, body, lane, attempts, max_attempts, deadline, doubt,"
           " created_at, ref FROM outbox o WHERE state IN ('pending','failed')"
           " AND lane BETWEEN ?1 AND ?2 AND next_at <= ?3"
           /* Calls of one kind acting on the same thing go out in the order
            * they were decided: none while an older one is still open. */
           " AND (ref IS NULL OR NOT EXISTS (SELECT 1 FROM outbox p WHERE"
           " p.tenant_id=o.tenant_id AND p.ref=o.ref AND p.kind=o.kind"
           " AND p.state IN ('pending','sending','failed') AND p.id < o.id))"
           " ORDER BY lane, id LIMIT 1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int(st, 1, cl->lane_lo);
    sqlite3_bind_int(st, 2, cl->lane_hi);
    sqlite3_bind_int64(st, 3, now);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 0 : store_rc(rc);
    }
    cl->id = sqlite3_column_int64(st, 0);
    cl->tenant_id = sqlite3_column_int64(st, 1);
    snprintf(cl->kind, sizeof cl->kind, "%s", (const char *)sqlite3_column_text(st, 2));
    cl->body = col_dup(st, 3);
    cl->lane = sqlite3_column_int(st, 4);
    cl->attempts = sqlite3_column_int(st, 5);
    cl->max = sqlite3_column_int(st, 6);
    cl->deadline = sqlite3_column_type(st, 7) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 7);
    cl->doubt = sqlite3_column_int(st, 8) != 0;
    cl->created_at = sqlite3_column_int64(st, 9);
    cl->ref = col_dup(st, 10);
    sqlite3_reset(st);
    if (!cl->body) return SIYU_ENOMEM;
    if (cl->max <= 0) cl->max = cl->max_attempts;

    const char *why = NULL;
    bool welcome = !strcmp(cl->kind, WELCOME_KIND);
    /* A welcome in doubt is still resent after its deadline: a used or expired
     * code cannot deliver twice, and the answer tells whether the first
     * attempt got through (41051) or not (41050). */
    int app_rc = 0;
    if (cl->deadline && now > cl->deadline && !(cl->doubt && welcome))
        why = welcome ? "welcome_code_expired: not sent within 20 s"
                      : "deadline_passed: not sent before its deadline";
    else if (cl->doubt && policy_of(cl->kind)->policy == DOUBT_HOLD)
        why = "in_doubt: the server stopped during delivery and WeCom cannot tell whether the "
              "call arrived; retry to send it again";
    else if ((app_rc = tenant_wecom_app(c, cl->tenant_id, &cl->app)) == SIYU_EINVAL ||
             app_rc == SIYU_ENOTFOUND)
        why = "wecom_not_configured: the tenant has no WeCom secret (configure it, then retry)";
    else if (app_rc != 0)
        return app_rc;
    if (why) {
        snprintf(cl->final_error, sizeof cl->final_error, "%s", why);
        cl->action = CLAIM_FINAL;
        return mark_dead(c, cl->id, why);
    }
    st = store_conn_stmt(c, "UPDATE outbox SET state='sending', attempts=attempts+1,"
                            " max_attempts=?2, updated_at=?3 WHERE id=?1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, cl->id);
    sqlite3_bind_int(st, 2, cl->max);
    sqlite3_bind_int64(st, 3, siyu_now());
    rc = store_stmt_run(st);
    if (rc != 0) return rc;
    cl->attempts++;
    cl->action = CLAIM_CALL;
    return 0;
}

/* ---- outcome ------------------------------------------------------------- */

typedef struct outcome {
    int64_t id;
    const char *state; /* sent | failed | dead */
    int errcode;       /* 0 with has_errcode false = NULL */
    bool has_errcode;
    bool doubt; /* keep the in-doubt mark (a transport failure may have arrived) */
    char error[400];
    char *result; /* malloc'd compact JSON or NULL */
    int64_t next_at;
} outcome;

static int record_step(store_conn *c, void *arg) {
    outcome *o = arg;
    int64_t now = siyu_now();
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE outbox SET state=?2, errcode=?3, error=?4, result=coalesce(?5, result),"
           " next_at=coalesce(?6, next_at), doubt=?7, updated_at=?8,"
           " sent_at=CASE WHEN ?2='sent' THEN ?8 ELSE sent_at END"
           " WHERE id=?1 AND state='sending'");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, o->id);
    store_bind_text(st, 2, o->state);
    if (o->has_errcode) sqlite3_bind_int(st, 3, o->errcode);
    if (o->error[0]) store_bind_text(st, 4, o->error);
    store_bind_text(st, 5, o->result);
    if (o->next_at) sqlite3_bind_int64(st, 6, o->next_at);
    sqlite3_bind_int(st, 7, o->doubt);
    sqlite3_bind_int64(st, 8, now);
    return store_stmt_run(st);
}

/* An over-long answer with a per-customer list (transfer_customer: up to
 * 100 entries, about 6 KB) cut to what its readers need: errcode, errmsg
 * and the customers WeCom refused, {external_userid, errcode} each (the
 * others succeeded), kept beyond OUTBOX_RESULT_MAX up to
 * OUTBOX_RESULT_LIST_MAX. NULL when the answer has no such list. */
static char *result_reduced(const json_t *answer, size_t bytes) {
    const json_t *list = json_object_get(answer, "customer"), *e;
    if (!json_is_array(list)) return NULL;
    json_t *fail = json_array(), *ec = json_object_get(answer, "errcode");
    const char *msg = json_string_value(json_object_get(answer, "errmsg"));
    size_t i, ok = 0;
    json_array_foreach(list, i, e) {
        const json_t *x = json_object_get(e, "external_userid"), *c = json_object_get(e, "errcode");
        if (json_is_integer(c) && json_integer_value(c) == 0) {
            ok++;
            continue;
        }
        json_array_append_new(fail, json_pack("{s:O*,s:O*}", "external_userid", x, "errcode", c));
    }
    json_t *t = json_pack("{s:O*,s:s*,s:o,s:I,s:I}", "errcode", ec, "errmsg", msg, "customer", fail,
                          "customers_ok", (json_int_t)ok, "bytes", (json_int_t)bytes);
    char *s = t ? json_dumps(t, JSON_COMPACT) : NULL;
    json_decref(t);
    if (s && strlen(s) > OUTBOX_RESULT_LIST_MAX) {
        free(s);
        s = NULL;
    }
    return s;
}

/* Compact answer JSON, bounded by OUTBOX_RESULT_MAX (see result_reduced
 * for per-customer answers). */
static char *result_text(const json_t *answer) {
    if (!answer) return NULL;
    char *s = json_dumps(answer, JSON_COMPACT);
    if (s && strlen(s) > OUTBOX_RESULT_MAX) {
        size_t n = strlen(s);
        free(s);
        s = result_reduced(answer, n);
        if (s) return s;
        json_t *t = json_pack("{s:b,s:I}", "truncated", 1, "bytes", (json_int_t)n);
        s = t ? json_dumps(t, JSON_COMPACT) : NULL;
        json_decref(t);
    }
    return s;
}

static int64_t backoff_ms(outbox *ob, worker *w, int attempts) {
    int64_t d = ob->o.backoff_ms;
    for (int i = 1; i < attempts && d < ob->o.backoff_max_ms; i++)
        d *= 2;
    if (d > ob->o.backoff_max_ms) d = ob->o.backoff_max_ms;
    /* Equal jitter: half fixed, half random, so retries of a burst spread out. */
    int64_t half = d / 2;
    return half + (half > 0 ? (int64_t)(rand_r(&w->seed) % (unsigned)(half + 1)) : 0);
}

/* Fills o from one call's result. */
static void outcome_decide(outbox *ob, worker *w, const claim *cl, int rc, const json_t *answer,
                           const wecom_res *res, outcome *o) {
    o->id = cl->id;
    if (rc == 0) {
        o->state = "sent";
        o->has_errcode = true;
        o->errcode = 0;
        o->result = result_text(answer);
        return;
    }
    if (rc != SIYU_EREMOTE) {
        o->state = "dead";
        snprintf(o->error, sizeof o->error, "invalid_request: %s", siyu_strerror(rc));
        return;
    }
    int ec = res->errcode;
    o->has_errcode = true;
    o->errcode = ec;
    const struct kind_policy *p = policy_of(cl->kind);
    /* A repeat answer after doubt: the earlier attempt got through. (The
     * client never repeats a changing call whose first request may have
     * arrived, so retries inside one call do not count.) */
    if (p->repeat_ec && ec == p->repeat_ec && cl->doubt) {
        o->state = "sent";
        snprintf(o->error, sizeof o->error,
                 "%s: answered to a repeat after an in-doubt attempt; counted as delivered "
                 "before it",
                 wecom_errcode_name(ec));
        json_t *j =
            json_pack("{s:i,s:s,s:b}", "errcode", ec, "errmsg", res->errmsg, "delivered_before", 1);
        o->result = result_text(j);
        json_decref(j);
        return;
    }
    wecom_ec_class cls = wecom_errcode_class(ec);
    bool retryable = cls == WECOM_EC_RETRY || cls == WECOM_EC_TOKEN;
    int64_t next = now_ms() + backoff_ms(ob, w, cl->attempts);
    bool late = cl->deadline && next > cl->deadline;
    if (retryable && cl->attempts < cl->max && !late) {
        o->state = "failed";
        o->next_at = next;
        /* A request that timed out may have arrived: the resend is in doubt. */
        o->doubt = (ec == WECOM_ERR_TRANSPORT && res->in_doubt) || cl->doubt;
        snprintf(o->error, sizeof o->error, "%s: %s", wecom_errcode_name(ec), res->errmsg);
        return;
    }
    o->state = "dead";
    if (retryable && late && !strcmp(cl->kind, WELCOME_KIND))
        snprintf(o->error, sizeof o->error,
                 "welcome_code_expired: not sent within 20 s (last: %s: %s)",
                 wecom_errcode_name(ec), res->errmsg);
    else if (retryable)
        snprintf(o->error, sizeof o->error, "%s: %s (%s after %d attempts)", wecom_errcode_name(ec),
                 res->errmsg, late ? "deadline passes before the next attempt" : "gave up",
                 cl->attempts);
    else
        snprintf(o->error, sizeof o->error, "%s: %s", wecom_errcode_name(ec), res->errmsg);
}

/* ---- probes (doubt policy PROBE) ------------------------------------------- */

/* 1 found (*answer set), 0 not found, SIYU_EREMOTE/... when WeCom could not
 * be asked (res filled). */
static int probe_contact_way(outbox *ob, const claim *cl, const json_t *body, json_t **answer,
                             wecom_res *res) {
    const char *state = json_string_value(json_object_get(body, "state"));
    if (!state || !*state) return 0; /* nothing to recognise it by: resend */
    json_t *req =
        json_pack("{s:I,s:i}", "start_time", (json_int_t)(cl->created_at - 600), "limit", 1000);
    int found = 0;
    for (int page = 0; req && page < PROBE_PAGES_MAX && !found; page++) {
        json_t *out = NULL;
        int rc =
            wecom_call(ob->wc, &cl->app, "externalcontact/list_contact_way", NULL, req, &out, res);
        if (rc != 0) {
            found = rc;
            break;
        }
        size_t i;
        json_t *cw;
        json_array_foreach(json_object_get(out, "contact_way"), i, cw) {
            const char *cid = json_string_value(json_object_get(cw, "config_id"));
            if (!cid) continue;
            json_t *g = NULL, *gb = json_pack("{s:s}", "config_id", cid);
            rc = wecom_call(ob->wc, &cl->app, "externalcontact/get_contact_way", NULL, gb, &g, res);
            json_decref(gb);
            if (rc != 0) {
                found = rc;
                break;
            }
            json_t *way = json_object_get(g, "contact_way");
            const char *s = json_string_value(json_object_get(way, "state"));
            if (s && !strcmp(s, state)) {
                *answer =
                    json_pack("{s:i,s:s,s:s,s:O*,s:b}", "errcode", 0, "errmsg", "ok", "config_id",
                              cid, "qr_code", json_object_get(way, "qr_code"), "probed", 1);
                found = 1;
            }
            json_decref(g);
            if (found) break;
        }
        const char *next = json_string_value(json_object_get(out, "next_cursor"));
        if (found || !next || !*next) {
            json_decref(out);
            break;
        }
        json_object_set_new(req, "cursor", json_string(next));
        json_decref(out);
    }
    json_decref(req);
    return found;
}

static int probe_corp_tag(outbox *ob, const claim *cl, const json_t *body, json_t **answer,
                          wecom_res *res) {
    const char *gid = json_string_value(json_object_get(body, "group_id"));
    const char *gname = json_string_value(json_object_get(body, "group_name"));
    json_t *tags = json_object_get(body, "tag");
    if ((!gid && !gname) || !json_array_size(tags)) return 0;
    json_t *req = json_object(), *out = NULL;
    int rc =
        wecom_call(ob->wc, &cl->app, "externalcontact/get_corp_tag_list", NULL, req, &out, res);
    json_decref(req);
    if (rc != 0) return rc;
    int found = 0;
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(out, "tag_group"), i, g) {
        const char *id = json_string_value(json_object_get(g, "group_id"));
        const char *name = json_string_value(json_object_get(g, "group_name"));
        if (gid ? !id || strcmp(id, gid) : !name || strcmp(name, gname)) continue;
        /* Every tag name of the request must be in the group. */
        json_t *have = json_object_get(g, "tag"), *t, *h;
        size_t k, m;
        bool all = true;
        json_array_foreach(tags, k, t) {
            const char *tn = json_string_value(json_object_get(t, "name"));
            bool seen = false;
            json_array_foreach(have, m, h) {
                const char *hn = json_string_value(json_object_get(h, "name"));
                if (tn && hn && !strcmp(tn, hn)) seen = true;
            }
            if (!seen) all = false;
        }
        if (all) {
            /* The answer add_corp_tag would have given: the group with only
             * the requested tags (never its others, which listeners might
             * act on). */
            json_t *gg = json_deep_copy(g), *mine = json_array();
            json_array_foreach(have, m, h) {
                const char *hn = json_string_value(json_object_get(h, "name"));
                json_array_foreach(tags, k, t) {
                    const char *tn = json_string_value(json_object_get(t, "name"));
                    if (tn && hn && !strcmp(tn, hn)) {
                        json_array_append(mine, h);
                        break;
                    }
                }
            }
            json_object_set_new(gg, "tag", mine);
            *answer = json_pack("{s:i,s:s,s:o,s:b}", "errcode", 0, "errmsg", "ok", "tag_group", gg,
                                "probed", 1);
            found = 1;
        }
        break;
    }
    json_decref(out);
    return found;
}

/* ---- delivery ------------------------------------------------------------ */

static void notify(outbox *ob, const claim *cl, const char *state, const json_t *answer,
                   int errcode) {
    listener buf[16];
    int n = 0;
    pthread_mutex_lock(&ob->mu);
    for (int i = 0; i < ob->nls && n < 16; i++)
        if (!strcmp(ob->ls[i].kind, cl->kind)) buf[n++] = ob->ls[i];
    pthread_mutex_unlock(&ob->mu);
    for (int i = 0; i < n; i++)
        buf[i].fn(buf[i].arg, cl->tenant_id, cl->kind, cl->ref, state, answer, errcode);
}

/* Makes the call of a claimed row (after a probe when in doubt), records the
 * outcome, and tells listeners about a final one. */
static void deliver(outbox *ob, worker *w, claim *cl) {
    const wecom_endpoint *ep = wecom_endpoint_find(cl->kind);
    json_t *body = json_loads(cl->body, 0, NULL), *answer = NULL;
    wecom_res res = {0};
    int rc = SIYU_EINVAL;
    int found = 0;
    if (ep && body) {
        if (cl->doubt && policy_of(cl->kind)->policy == DOUBT_PROBE) {
            atomic_fetch_add(&ob->probes, 1);
            found = !strcmp(cl->kind, "add_contact_way")
                        ? probe_contact_way(ob, cl, body, &answer, &res)
                        : probe_corp_tag(ob, cl, body, &answer, &res);
            if (found < 0) rc = found; /* WeCom could not be asked: a retryable failure */
            if (found == 1) rc = 0;
        }
        if (found == 0)
            rc = wecom_call_by(ob->wc, &cl->app, ep->path, NULL, ep->post ? body : NULL,
                               cl->deadline, &answer, &res);
    }
    explicit_bzero(&cl->app, sizeof cl->app);
    outcome o = {0};
    outcome_decide(ob, w, cl, rc, answer, &res, &o);
    if (found < 0) o.doubt = true; /* still unresolved */
    int wrc = store_write(ob->st, record_step, &o);
    if (wrc != 0) {
        /* The row stays 'sending' and is resolved as in doubt at the next start. */
        log_error("outbox: row %lld (%s): recording the outcome failed: %s", (long long)cl->id,
                  cl->kind, siyu_strerror(wrc));
    } else {
        if (!strcmp(o.state, "sent"))
            atomic_fetch_add(&ob->sent, 1);
        else if (!strcmp(o.state, "failed"))
            atomic_fetch_add(&ob->failed, 1);
        else
            atomic_fetch_add(&ob->dead, 1);
        if (strcmp(o.state, "sent") != 0)
            log_warn("outbox: row %lld tenant=%lld kind=%s attempt %d/%d: %s: %s",
                     (long long)cl->id, (long long)cl->tenant_id, cl->kind, cl->attempts, cl->max,
                     o.state, o.error);
        if (strcmp(o.state, "failed") != 0) notify(ob, cl, o.state, answer, o.errcode);
    }
    free(o.result);
    json_decref(answer);
    json_decref(body);
}

/* ---- workers ------------------------------------------------------------- */

/* Read-only look: is anything due in the worker's lanes? */
static bool anything_due(outbox *ob, worker *w) {
    store_conn *c = store_reader_acquire(ob->st);
    if (!c) return false;
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT 1 FROM outbox WHERE state IN ('pending','failed') AND lane BETWEEN ?1 AND ?2"
           " AND next_at <= ?3 LIMIT 1");
    bool due = false;
    if (st) {
        sqlite3_bind_int(st, 1, w->lane_lo);
        sqlite3_bind_int(st, 2, w->lane_hi);
        sqlite3_bind_int64(st, 3, now_ms());
        due = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
    }
    store_reader_release(ob->st, c);
    return due;
}

static bool stopping(outbox *ob) {
    pthread_mutex_lock(&ob->mu);
    bool s = ob->stopping;
    pthread_mutex_unlock(&ob->mu);
    return s;
}

/* One pass: claims and delivers one row. true when it found work. */
static bool work_once(outbox *ob, worker *w) {
    if (!anything_due(ob, w)) return false;
    claim cl = {.lane_lo = w->lane_lo, .lane_hi = w->lane_hi, .max_attempts = ob->o.max_attempts};
    int rc = store_write(ob->st, claim_step, &cl);
    bool worked = false;
    if (rc != 0) {
        log_error("outbox: claim failed: %s", siyu_strerror(rc));
    } else if (cl.action == CLAIM_FINAL) {
        atomic_fetch_add(&ob->dead, 1);
        log_warn("outbox: row %lld tenant=%lld kind=%s: dead: %s", (long long)cl.id,
                 (long long)cl.tenant_id, cl.kind, cl.final_error);
        notify(ob, &cl, "dead", NULL, 0);
        worked = true;
    } else if (cl.action == CLAIM_CALL) {
        deliver(ob, w, &cl);
        worked = true;
    }
    claim_reset(&cl);
    return worked;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    outbox *ob = w->ob;
    while (!stopping(ob)) {
        pthread_mutex_lock(&ob->mu);
        unsigned gen = ob->gen[w->group];
        pthread_mutex_unlock(&ob->mu);
        if (work_once(ob, w)) continue;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (int64_t)ob->o.poll_ms * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_mutex_lock(&ob->mu);
        while (!ob->stopping && ob->gen[w->group] == gen)
            if (pthread_cond_timedwait(&ob->cond[w->group], &ob->mu, &ts) != 0) break;
        pthread_mutex_unlock(&ob->mu);
    }
    return NULL;
}

/* Start-up step: rows left 'sending' are in doubt. */
static int start_step(store_conn *c, void *arg) {
    sqlite3_stmt *st = store_conn_stmt(c, "UPDATE outbox SET state='pending', doubt=1,"
                                          " next_at=?1, updated_at=?2 WHERE state='sending'");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, now_ms());
    sqlite3_bind_int64(st, 2, siyu_now());
    int rc = store_stmt_run(st);
    if (rc != 0) return rc;
    *(int *)arg = store_conn_changes(c);
    return 0;
}

outbox *outbox_new(store *st, struct wecom_client *wc, const outbox_opts *opts, siyu_err *err) {
    if (!st || !wc) {
        siyu_err_set(err, SIYU_EINVAL, NULL, "the outbox needs a store and a WeCom client");
        return NULL;
    }
    outbox *ob = calloc(1, sizeof *ob);
    if (!ob) {
        siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    ob->st = st;
    ob->wc = wc;
    ob->o = opts ? *opts : (outbox_opts){0};
    if (ob->o.workers <= 0) ob->o.workers = 2;
    if (ob->o.urgent_workers <= 0) ob->o.urgent_workers = 2;
    if (ob->o.max_attempts <= 0) ob->o.max_attempts = 8;
    if (ob->o.poll_ms <= 0) ob->o.poll_ms = 500;
    if (ob->o.backoff_ms <= 0) ob->o.backoff_ms = 1000;
    if (ob->o.backoff_max_ms <= 0) ob->o.backoff_max_ms = 300000;
    pthread_mutex_init(&ob->mu, NULL);
    pthread_cond_init(&ob->cond[0], NULL);
    pthread_cond_init(&ob->cond[1], NULL);
    return ob;
}

int outbox_run(outbox *ob, siyu_err *err) {
    if (ob->workers) return siyu_err_set(err, SIYU_EINVAL, NULL, "the outbox is already running");
    int doubtful = 0;
    int rc = store_write(ob->st, start_step, &doubtful);
    if (rc != 0)
        return siyu_err_set(err, rc, NULL, "outbox: resolving in-doubt rows failed: %s",
                            siyu_strerror(rc));
    if (doubtful)
        log_warn("outbox: %d row(s) were being delivered when the server stopped; in doubt, "
                 "resolved by each kind's policy",
                 doubtful);
    int nu = ob->o.urgent_workers;
    ob->workers = calloc((size_t)nu + (size_t)ob->o.workers, sizeof *ob->workers);
    if (!ob->workers) return siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    for (int i = 0; i < nu + ob->o.workers; i++) {
        worker *w = &ob->workers[i];
        bool urgent = i < nu;
        w->ob = ob;
        w->group = urgent ? 0 : 1;
        w->lane_lo = urgent ? OUTBOX_LANE_URGENT : OUTBOX_LANE_NORMAL;
        w->lane_hi = urgent ? OUTBOX_LANE_URGENT : OUTBOX_LANE_BULK;
        w->seed = (unsigned)now_ms() ^ (unsigned)(i * 2654435761u);
        if (pthread_create(&w->th, NULL, worker_main, w) != 0)
            return siyu_err_set(err, SIYU_ENOMEM, NULL, "outbox: cannot start a worker thread");
        w->started = true;
        ob->nworkers = i + 1;
    }
    log_info("outbox: started (%d urgent + %d normal/bulk workers, max %d attempts)", nu,
             ob->o.workers, ob->o.max_attempts);
    return 0;
}

outbox *outbox_start(store *st, struct wecom_client *wc, const outbox_opts *opts, siyu_err *err) {
    outbox *ob = outbox_new(st, wc, opts, err);
    if (ob && outbox_run(ob, err) != 0) {
        outbox_stop(ob);
        return NULL;
    }
    return ob;
}

void outbox_stop(outbox *ob) {
    if (!ob) return;
    pthread_mutex_lock(&ob->mu);
    ob->stopping = true;
    pthread_cond_broadcast(&ob->cond[0]);
    pthread_cond_broadcast(&ob->cond[1]);
    pthread_mutex_unlock(&ob->mu);
    for (int i = 0; i < ob->nworkers; i++)
        if (ob->workers[i].started) pthread_join(ob->workers[i].th, NULL);
    free(ob->workers);
    free(ob->ls);
    pthread_cond_destroy(&ob->cond[0]);
    pthread_cond_destroy(&ob->cond[1]);
    pthread_mutex_destroy(&ob->mu);
    free(ob);
}

/* ---- views and operator actions ------------------------------------------ */

int outbox_counts_get(store_conn *c, int64_t tenant_id, outbox_counts *out) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = store_conn_stmt(
        c, tenant_id ? "SELECT state, count(*) FROM outbox WHERE tenant_id=?1 GROUP BY state"
                     : "SELECT state, count(*) FROM outbox GROUP BY state");
    if (!st) return SIYU_EIO;
    if (tenant_id) sqlite3_bind_int64(st, 1, tenant_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        int64_t n = sqlite3_column_int64(st, 1);
        int64_t *slot = !strcmp(s, "pending")   ? &out->pending
                        : !strcmp(s, "sending") ? &out->sending
                        : !strcmp(s, "sent")    ? &out->sent
                        : !strcmp(s, "failed")  ? &out->failed
                        : !strcmp(s, "dead")    ? &out->dead
                                                : &out->cancelled;
        *slot += n;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_rc(rc);
}

#define ROW_COLS                                                                                   \
    "id, kind, lane, state, attempts, max_attempts, doubt, next_at, deadline, errcode, error,"     \
    " origin, ref, created_at, updated_at, sent_at, body, result"

json_t *outbox__col_int(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null()
                                                     : json_integer(sqlite3_column_int64(st, i));
}

json_t *outbox__col_str(sqlite3_stmt *st, int i) {
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? json_string(s) : json_null();
}

/* Stored JSON text as JSON (a string if it somehow does not parse). */
static json_t *col_json(sqlite3_stmt *st, int i) {
    const char *s = (const char *)sqlite3_column_text(st, i);
    if (!s) return json_null();
    json_t *j = json_loads(s, JSON_DECODE_ANY, NULL);
    return j ? j : json_string(s);
}

static json_t *row_json(sqlite3_stmt *st, bool with_result) {
    json_t *j = json_pack(
        "{s:I,s:o,s:i,s:o,s:i,s:i,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id",
        (json_int_t)sqlite3_column_int64(st, 0), "kind", outbox__col_str(st, 1), "lane",
        sqlite3_column_int(st, 2), "state", outbox__col_str(st, 3), "attempts",
        sqlite3_column_int(st, 4), "max_attempts", sqlite3_column_int(st, 5), "in_doubt",
        sqlite3_column_int(st, 6) != 0, "next_at", outbox__col_int(st, 7), "deadline",
        outbox__col_int(st, 8), "errcode", outbox__col_int(st, 9), "error", outbox__col_str(st, 10),
        "origin", outbox__col_str(st, 11), "ref", outbox__col_str(st, 12), "created_at",
        outbox__col_int(st, 13), "updated_at", outbox__col_int(st, 14), "sent_at",
        outbox__col_int(st, 15), "body", col_json(st, 16));
    if (j && with_result) json_object_set_new(j, "result", col_json(st, 17));
    return j;
}

json_t *outbox_get_json(store_conn *c, int64_t tenant_id, int64_t id, bool with_result) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT " ROW_COLS " FROM outbox WHERE id=?1 AND tenant_id=?2");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, tenant_id);
    json_t *j = sqlite3_step(st) == SQLITE_ROW ? row_json(st, with_result) : NULL;
    sqlite3_reset(st);
    return j;
}

int outbox__page(sqlite3_stmt *st, int limit, json_t *(*row)(sqlite3_stmt *st), json_t *items,
                 int64_t *next) {
    int rc, n = 0;
    int64_t last = 0;
    *next = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            *next = last;
            break;
        }
        last = sqlite3_column_int64(st, 0);
        json_array_append_new(items, row(st));
        n++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_rc(rc);
}

static json_t *list_row(sqlite3_stmt *st) {
    return row_json(st, false);
}

int outbox_list(store_conn *c, int64_t tenant_id, const char *state, const char *kind,
                int64_t before, int limit, json_t *items, int64_t *next) {
    *next = 0;
    /* One statement per filter combination, so each uses its index
     * (outbox_tenant, outbox_tenant_state, outbox_tenant_kind). */
#define LIST_SQL(filter)                                                                           \
    "SELECT " ROW_COLS " FROM outbox WHERE tenant_id=?1 AND id < ?2" filter                        \
    " ORDER BY id DESC LIMIT ?5"
    static const char *const sql[4] = {
        LIST_SQL(""),
        LIST_SQL(" AND state=?3"),
        LIST_SQL(" AND kind=?4"),
        LIST_SQL(" AND state=?3 AND kind=?4"),
    };
#undef LIST_SQL
    sqlite3_stmt *st = store_conn_stmt(c, sql[(state ? 1 : 0) + (kind ? 2 : 0)]);
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX);
    store_bind_text(st, 3, state);
    store_bind_text(st, 4, kind);
    sqlite3_bind_int(st, 5, limit + 1);
    return outbox__page(st, limit, list_row, items, next);
}

json_t *outbox_stats_json(store_conn *c, int64_t tenant_id) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT kind, state, count(*) FROM outbox WHERE tenant_id=?1 GROUP BY kind, state");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    json_t *by_state = json_object(), *by_kind = json_object();
    for (size_t i = 0; i < sizeof states / sizeof *states; i++)
        json_object_set_new(by_state, states[i], json_integer(0));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(st, 0);
        const char *state = (const char *)sqlite3_column_text(st, 1);
        json_int_t n = sqlite3_column_int64(st, 2);
        json_int_t had = json_integer_value(json_object_get(by_state, state));
        json_object_set_new(by_state, state, json_integer(had + n));
        json_t *k = json_object_get(by_kind, kind);
        if (!k) {
            k = json_object();
            json_object_set_new(by_kind, kind, k);
        }
        json_object_set_new(k, state, json_integer(n));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        json_decref(by_state);
        json_decref(by_kind);
        return NULL;
    }
    return json_pack("{s:o,s:o}", "by_state", by_state, "by_kind", by_kind);
}

/* Shared body of retry and cancel: moves a row of `from` states to `to`. */
static int action_step(store_conn *c, outbox_action *a, const char *verb, const char *sql_update,
                       const char *const *from) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT state, lane, kind FROM outbox WHERE id=?1 AND tenant_id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, a->id);
    sqlite3_bind_int64(st, 2, a->tenant_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return siyu_err_set(&a->err, SIYU_ENOTFOUND, NULL, "outbox row %lld does not exist",
                            (long long)a->id);
    }
    char state[16], kind[48];
    snprintf(state, sizeof state, "%s", (const char *)sqlite3_column_text(st, 0));
    a->lane = sqlite3_column_int(st, 1);
    snprintf(kind, sizeof kind, "%s", (const char *)sqlite3_column_text(st, 2));
    sqlite3_reset(st);
    bool ok = false;
    for (const char *const *f = from; *f; f++)
        if (!strcmp(*f, state)) ok = true;
    if (!ok)
        return siyu_err_set(&a->err, SIYU_ECONFLICT, "state", "a %s row cannot be %s", state, verb);
    /* A dead transfer call has already marked its transfers failed, and a
     * resend would start them in WeCom behind Siyu's back. */
    if (verb[0] == 'r' && !strcmp(state, "dead") &&
        (!strcmp(kind, "transfer_customer") || !strcmp(kind, "resigned_transfer_customer")))
        return siyu_err_set(&a->err, SIYU_ECONFLICT, "kind",
                            "a dead transfer call is not retried here: its transfers are marked "
                            "failed; request them again with POST /api/v1/transfers");
    st = store_conn_stmt(c, sql_update);
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, a->id);
    sqlite3_bind_int64(st, 2, now_ms());
    sqlite3_bind_int64(st, 3, siyu_now());
    int rc = store_stmt_run(st);
    if (rc != 0) return rc;
    char target[40], action[24];
    snprintf(target, sizeof target, "outbox:%lld", (long long)a->id);
    snprintf(action, sizeof action, "outbox.%s", verb[0] == 'r' ? "retry" : "cancel");
    return store_audit(c, a->tenant_id, a->actor, action, target, 1, kind);
}

int outbox_retry_step(store_conn *c, void *arg) {
    static const char *const from[] = {"failed", "dead", NULL};
    return action_step(c, arg, "retried",
                       "UPDATE outbox SET state='pending', attempts=0, doubt=0, next_at=?2,"
                       " updated_at=?3 WHERE id=?1",
                       from);
}

int outbox_cancel_step(store_conn *c, void *arg) {
    static const char *const from[] = {"pending", "failed", "dead", NULL};
    return action_step(c, arg, "cancelled",
                       "UPDATE outbox SET state='cancelled', updated_at=?3 WHERE id=?1", from);
}
