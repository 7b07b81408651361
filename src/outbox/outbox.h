/* outbox.h — the durable outbox: every call that changes something in WeCom.
 *
 * A decision and the call it causes commit together: the write step that
 * makes the decision (a welcome for a new contact, a tag marked on a customer,
 * a transfer requested) calls outbox_enqueue() on its own write connection, so
 * both land or neither does. Delivery workers then pick due rows, claim them
 * (state 'sending', committed before the HTTP request), call WeCom through
 * wecom_call(), and record the answer.
 *
 * States (outbox.state):
 *   pending    waiting for its first attempt (next_at)
 *   sending    claimed; a request may be in flight. Found at start-up it means
 *              the server died mid-delivery: the row is "in doubt" and goes
 *              through its kind's doubt policy (below) before any resend.
 *   sent       WeCom answered errcode 0 (result holds the answer)
 *   failed     the last attempt failed with a retryable error; retried at next_at
 *   dead       gave up: a non-retryable errcode, attempts exhausted, or past
 *              its deadline (welcome codes live 20 s); reason in error/errcode
 *   cancelled  an operator cancelled it before delivery
 * An operator may retry a failed/dead row (back to pending, attempts reset)
 * and cancel a pending/failed/dead one.
 *
 * Lanes: 0 = urgent (welcome messages: WeCom's 20-second window), 1 = normal,
 * 2 = bulk. Dedicated workers serve lane 0 only, so urgent calls never wait
 * behind bulk work, and a call with a deadline never outlives it (each
 * request's timeout is cut to the time left).
 *
 * Doubt policies (after a crash between claim and answer):
 *   resend  the call is idempotent or WeCom tells a repeat apart (e.g.
 *           send_welcome_msg answers 41051 once the code was used, which a
 *           resent row records as sent-before-crash)
 *   probe   ask WeCom whether the effect exists (add_contact_way by state,
 *           add_corp_tag by name) before creating it again
 *   hold    WeCom offers no way to tell (add_msg_template): the row goes dead
 *           with error "in_doubt" and an operator decides whether to retry. */
#ifndef SIYU_OUTBOX_H
#define SIYU_OUTBOX_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "util/err.h"

struct wecom_client;

enum { OUTBOX_LANE_URGENT = 0, OUTBOX_LANE_NORMAL = 1, OUTBOX_LANE_BULK = 2 };

typedef struct outbox_item {
    int64_t tenant_id;
    const char *kind;    /* a mutating wecom_endpoint name: "mark_tag", "send_welcome_msg", ... */
    const json_t *body;  /* the request body (serialised compactly into the row) */
    int lane;            /* OUTBOX_LANE_* */
    int64_t deadline_ms; /* 0 = none; past it the row goes dead without a call */
    const char *origin;  /* what decided it, for operators: "welcome:event:42", "token:7" */
    const char *ref;     /* optional link to a domain row, e.g. "transfer:12"; NULL = none */
} outbox_item;

/* Inside a write step: inserts a pending row. Returns 0 and *id_out (may be
 * NULL), SIYU_EINVAL (unknown or non-mutating kind, body too large) with err
 * filled, or a store error. */
int outbox_enqueue(store_conn *c, const outbox_item *it, int64_t *id_out, siyu_err *err);

/* After the domain step: called (from any thread, after commit) once a row
 * was queued, so workers wake at once instead of at their next poll. */
typedef struct outbox outbox;
void outbox_kick(outbox *ob, int lane);

/* What a domain module wants to hear about deliveries (e.g. transfers record
 * per-customer errcodes). Runs on a worker thread after the row's final
 * state committed; must not block for long. */
typedef void (*outbox_result_fn)(void *arg, int64_t tenant_id, const char *kind, const char *ref,
                                 const char *state, const json_t *answer, int errcode);

typedef struct outbox_opts {
    int workers;        /* normal+bulk lane workers; default 2 */
    int urgent_workers; /* urgent lane (welcome) workers; default 2 */
    int max_attempts;   /* default 8 */
    int poll_ms;        /* idle poll interval; default 500 */
    int backoff_ms;     /* first retry delay, doubled per attempt with jitter; default 1000 */
    int backoff_max_ms; /* default 300000 */
} outbox_opts;

/* Starts the workers (resolving in-doubt rows first). NULL on failure. */
outbox *outbox_start(store *st, struct wecom_client *wc, const outbox_opts *opts, siyu_err *err);
/* outbox_start in two steps, so listeners can be registered before any row
 * is delivered: outbox_new (NULL on failure; free with outbox_stop), then
 * outbox_run (0, or an error after which the caller calls outbox_stop). */
outbox *outbox_new(store *st, struct wecom_client *wc, const outbox_opts *opts, siyu_err *err);
int outbox_run(outbox *ob, siyu_err *err);
/* Stops claiming, waits for in-flight calls to finish and record, frees. NULL ok. */
void outbox_stop(outbox *ob);
/* Registers a listener for results of one kind (before or after start). */
void outbox_on_result(outbox *ob, const char *kind, outbox_result_fn fn, void *arg);

typedef struct outbox_counts {
    int64_t pending, sending, sent, failed, dead, cancelled;
} outbox_counts;
/* Counts by state for a tenant (0 = all tenants), on a read connection. */
int outbox_counts_get(store_conn *c, int64_t tenant_id, outbox_counts *out);

/* ---- for the API (api/api_outbox.c) and producers' views ---------------- */

#define OUTBOX_BODY_MAX (1u << 20) /* bytes of request JSON per row */
#define OUTBOX_RESULT_MAX 4096     /* bytes of answer JSON kept per row */
#define OUTBOX_RESULT_LIST_MAX 65536 /* the same for the refused customers of a longer answer */

/* True for a state name above. */
bool outbox_state_valid(const char *state);

/* One row as the API shows it: {"id","kind","lane","state","attempts",
 * "max_attempts","in_doubt","next_at","deadline","errcode","error","origin",
 * "ref","created_at","updated_at","sent_at","body"(JSON)[,"result"(JSON)]}
 * (result only when with_result). NULL when the row is not the tenant's.
 * Caller owns the result. */
json_t *outbox_get_json(store_conn *c, int64_t tenant_id, int64_t id, bool with_result);

/* Newest first: rows of tenant_id with id < before (0 = from the newest),
 * optionally one state and/or one kind (NULL = any), at most limit, appended
 * to items. *next is the cursor for the next page (0 = no more). 0 or
 * SIYU_EIO. */
int outbox_list(store_conn *c, int64_t tenant_id, const char *state, const char *kind,
                int64_t before, int limit, json_t *items, int64_t *next);

/* {"by_state":{"pending":n,...},"by_kind":{"<kind>":{"<state>":n,...}}}.
 * NULL on a store error. Caller owns the result. */
json_t *outbox_stats_json(store_conn *c, int64_t tenant_id);

/* Operator actions (write steps; arg is outbox_action*). retry: failed/dead →
 * pending (attempts reset, in-doubt mark cleared); cancel: pending/failed/dead
 * → cancelled. Both are audited as "outbox.retry"/"outbox.cancel" by actor.
 * Return 0, SIYU_ENOTFOUND (not the tenant's row) or SIYU_ECONFLICT (wrong
 * state; err says which), with err filled. lane receives the row's lane. */
typedef struct outbox_action {
    int64_t tenant_id;
    int64_t id;
    const char *actor;
    int lane; /* out */
    siyu_err err;
} outbox_action;
int outbox_retry_step(store_conn *c, void *arg);
int outbox_cancel_step(store_conn *c, void *arg);

/* Metrics: final outcomes recorded by this process's workers. */
typedef struct outbox_stats {
    long sent, failed, dead, probes;
} outbox_stats;
void outbox_stats_get(outbox *ob, outbox_stats *out); /* zeros for NULL */

/* ---- module internals, shared with welcome.c ---- */

/* Column i as a JSON integer / string, JSON null for SQL NULL. */
json_t *outbox__col_int(sqlite3_stmt *st, int i);
json_t *outbox__col_str(sqlite3_stmt *st, int i);

/* Steps st (bound; column 0 the row id, newest first, at most limit + 1
 * rows) and appends row(st) to items for up to limit rows; *next = the last
 * id appended when a further row exists, else 0. Resets st. 0 or SIYU_E*. */
int outbox__page(sqlite3_stmt *st, int limit, json_t *(*row)(sqlite3_stmt *st), json_t *items,
                 int64_t *next);

#endif
