/* transfer.h — customer transfers between employees: on-the-job inheritance
 * (在职继承, externalcontact/transfer_customer) and, when the handover has
 * resigned, resignation inheritance (resigned/transfer_customer).
 *
 * One `transfer` row per customer moved (migrations/0005_transfer.sql). A
 * request validates, writes the rows and one outbox row per TRANSFER_BATCH
 * customers in the same write step (transfer_request_step). The outbox's
 * answer moves rows to waiting or failed (transfer_listen); WeCom callbacks
 * applied by ingest finish them (transfer_on_*), in the ingest's own step.
 *
 *   requested ──outbox answer errcode 0/40100/40129──> waiting
 *   requested ──outbox answer 40128 / other errcode / dead──> failed
 *   requested|waiting ──takeover add_external_contact: transfer_on_add──> done
 *   requested|waiting ──handover del_external_contact DELETE_BY_TRANSFER:
 *                         transfer_on_transfer_delete──> done
 *   requested|waiting ──transfer_fail customer_refused: transfer_on_fail──> refused
 *                       (other FailReason: failed, error = the reason)
 *   waiting ──transfer_result status 1/3/4/5 (the callbacks were lost; the
 *             sync manager polls: transfer_poll_step)──> done/refused/failed
 *
 * Ownership: inputs are borrowed for the step; JSON results belong to the
 * caller. */
#ifndef SIYU_STORE_TRANSFER_H
#define SIYU_STORE_TRANSFER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"
#include "store/store.h"

#define TRANSFER_CUSTOMERS_MAX 10000
#define TRANSFER_BATCH 100       /* external_userid per WeCom call */
#define TRANSFER_MESSAGE_MAX 200 /* characters of transfer_success_msg */

/* Outbox kinds (wecom_endpoint names). */
#define TRANSFER_KIND_ON_JOB "transfer_customer"
#define TRANSFER_KIND_RESIGNED "resigned_transfer_customer"

extern const char *const transfer_states[]; /* requested, waiting, done, refused, failed */

typedef struct transfer_request {
    http_auth auth; /* tenant and, for a manager, the team scope */
    int64_t handover_id, takeover_id;
    const char *customer_ids; /* JSON array text of distinct positive integers */
    size_t ncustomers;
    const char *message; /* NULL = WeCom's default text; ignored for resigned handovers */
    const char *actor;
    int64_t first_id; /* filled: the first transfer row */
    int64_t count;    /* filled: rows written */
    int batches;      /* filled: outbox rows written */
    bool resigned;    /* filled: the handover had resigned */
    siyu_err err;
} transfer_request;

/* Write step (arg: transfer_request*). Checks both employees are the
 * tenant's (and, for a manager, in their department subtree: SIYU_EDENIED),
 * the takeover is active, every customer has an active relationship with the
 * handover, a WeCom external_userid, and no transfer in flight (SIYU_ECONFLICT
 * naming "customer_ids[i]"); then writes the rows and the outbox rows. On any
 * failure nothing is written; err names the field. */
int transfer_request_step(store_conn *c, void *arg);

/* ---- callbacks (inside ingest_wecom_apply's step) ---- */

/* The takeover employee added the customer: a transfer in flight to them is
 * done, and the handover's relationship becomes 'transferred'. */
int transfer_on_add(store_conn *c, int64_t tenant_id, int64_t customer_id, int64_t employee_id,
                    int64_t ts);
/* The handover lost the customer by transfer: the transfer is done and the
 * takeover's relationship is active (WeCom sends no add when they were
 * already friends). */
int transfer_on_transfer_delete(store_conn *c, int64_t tenant_id, int64_t customer_id,
                                int64_t handover_id, int64_t ts);
/* transfer_fail: refused for customer_refused, failed otherwise. */
int transfer_on_fail(store_conn *c, int64_t tenant_id, int64_t customer_id, int64_t employee_id,
                     const char *reason, int64_t ts);

/* ---- outbox answers ---- */

/* What one answer does to a per-customer errcode: "waiting" or "failed",
 * with *error set to the reason for failed (static string). */
const char *transfer_state_for_errcode(int errcode, const char **error);

/* Registers the result listeners of both transfer kinds on ctx->ob (nothing
 * when NULL); answers are applied with store_write on ctx->st. Then applies,
 * once, the answers the outbox recorded while no listener ran (a stop
 * between the two commits): transfer_catch_up_step. ctx must outlive the
 * outbox. */
typedef struct siyu_ctx siyu_ctx;
void transfer_listen(siyu_ctx *ctx);

/* Applies one outbox result to the batch named by ref
 * ("transfer_batch:<id>"). Write step, exposed for tests. */
typedef struct transfer_result {
    int64_t tenant_id;
    const char *ref;
    const char *state;    /* outbox state: sent, dead, cancelled, ... */
    const json_t *answer; /* WeCom's answer ("customer":[...]) or NULL */
    int errcode;          /* of the whole call */
    int64_t updated;      /* filled: rows moved */
} transfer_result;
int transfer_result_step(store_conn *c, void *arg);
/* Write step (arg: int64_t* rows moved): applies the final outbox answers of
 * batches whose rows are still 'requested'. Idempotent. */
int transfer_catch_up_step(store_conn *c, void *arg);

/* ---- polling transfer_result (transfers whose callbacks never came) ---- */

/* One (kind, handover, takeover) with waiting transfers to ask WeCom about. */
typedef struct transfer_pair {
    bool resigned; /* resigned/transfer_result, else transfer_result */
    int64_t handover_id, takeover_id;
    char handover[72], takeover[72]; /* userids */
} transfer_pair;

/* Fills out[0..cap) with the distinct pairs of tenant_id's 'waiting'
 * transfers last updated at or before `before`; returns how many (≤ cap) or
 * a negative SIYU_E* code. Read connection. */
int transfer_poll_pairs(store_conn *c, int64_t tenant_id, int64_t before, transfer_pair *out,
                        int cap);

/* Write step (arg: transfer_poll*): applies one page of a transfer_result
 * answer ("customer":[{external_userid, status, takeover_time}]) to the
 * pair's waiting transfers (spec §3.7): 1 done (the takeover's relationship
 * active, the handover's 'transferred'), 2 still waiting, 3 refused
 * (customer_refused), 4 failed (takeover_limit), 5 failed
 * (no_transfer_record). An entry whose takeover_time is before the
 * transfer was requested is an older transfer of the pair: ignored. */
typedef struct transfer_poll {
    int64_t tenant_id;
    const transfer_pair *pair;
    const json_t *customers;
    int64_t updated; /* filled: transfers moved */
} transfer_poll;
int transfer_poll_step(store_conn *c, void *arg);

/* ---- reads ---- */

/* {"id","customer_id","external_userid","handover_employee_id",
 * "takeover_employee_id","kind","state","errcode","error","outbox_id",
 * "batch_id","requested_at","updated_at","takeover_at"} or NULL when absent
 * or outside the token's scope. */
json_t *transfer_get_json(store_conn *c, const http_auth *a, int64_t id);

typedef struct transfer_filter {
    const char *state;   /* NULL = any */
    int64_t employee_id; /* handover or takeover; 0 = any */
    int64_t after_id;    /* cursor: rows with id > after_id; 0 = first page */
    int limit;
} transfer_filter;
/* {"items":[...],"next_cursor":"<id>"|null}, ordered by id. 0 or SIYU_EIO. */
int transfer_list_json(store_conn *c, const http_auth *a, const transfer_filter *f, json_t **out);

#endif
