/* inherit.h — inheritance (F3) on top of store/transfer: spreading an
 * employee's customers over a team, the tenant's resignation rule, the
 * resignation worker's steps, and the inheritance screen's counts
 * (docs/INHERITANCE.md).
 *
 * A resignation (migrations/0012 trigger on employee.status) is processed
 * by inherit_tick (called by the sync manager's scheduler):
 *
 *   queued|failed ──get_unassigned_list read (HTTP), then
 *                   inherit_resign_apply_step──> listed
 *                   customers and groups: inherit_pending rows, then by the
 *                   rule: customers → transfer_request_step (resigned kind),
 *                   groups → groupchat_transfer outbox rows; otherwise left
 *                   pending with a reason
 *   queued|failed ──the read failed: inherit_resign_fail_step──> failed
 *                   (retried up to INHERIT_ATTEMPTS_MAX times)
 *
 * Ownership: requests borrow their inputs for the step; JSON results belong
 * to the caller. */
#ifndef SIYU_STORE_INHERIT_H
#define SIYU_STORE_INHERIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"
#include "store/store.h"

#define INHERIT_TAKEOVERS_MAX 100
#define INHERIT_ATTEMPTS_MAX 10
#define INHERIT_WINDOW_S (90LL * 86400) /* WeCom: two on-the-job transfers per 90 days */
#define INHERIT_WINDOW_MAX 2
#define INHERIT_GROUP_KIND "groupchat_transfer"

extern const char *const inherit_modes[]; /* manual, store_manager, store_round_robin */

/* ---- on-the-job: one employee's customers spread over takeovers ---- */

typedef struct inherit_handover {
    http_auth auth;
    const char *actor;
    int64_t handover_id;
    const char *customer_ids; /* JSON array text of distinct ids; NULL = all active ones */
    const int64_t *takeovers; /* distinct, ≠ handover */
    int ntakeovers;
    bool least_loaded; /* else round-robin in customer order */
    const char *message;
    json_t *result; /* filled: {"requested","kind","takeovers":[..],"refused":[..]} */
    siyu_err err;
} inherit_handover;

/* Write step (arg: inherit_handover*). Customers that cannot move are
 * refused one by one with a reason (no_active_relationship,
 * no_external_userid, transfer_in_progress, transfer_limit_90_days) and the
 * rest are assigned to takeovers and requested through
 * transfer_request_step, all in this step. SIYU_EINVAL / SIYU_EDENIED with
 * err naming the field when an employee is wrong; nothing is then written. */
int inherit_handover_step(store_conn *c, void *arg);

/* Reasons a customer cannot be transferred now by handover_id (NULL = it
 * can). Used by the handover and by resignations. */

/* ---- the tenant rule ---- */

typedef struct inherit_rule_set {
    int64_t tenant_id;
    const char *actor;
    const char *mode;             /* NULL = unchanged */
    const json_t *store_managers; /* [{"store_id","employee_id"}] or NULL; employee_id null
                                     removes */
    siyu_err err;
} inherit_rule_set;
int inherit_rule_set_step(store_conn *c, void *arg);
/* {"mode","store_managers":[{"store_id","employee_id"}]}; NULL on a store error. */
json_t *inherit_rule_json(store_conn *c, int64_t tenant_id);

/* ---- resignations ---- */

/* Applies one read of get_unassigned_list for resignation id: ext is the
 * JSON array of the external_userids WeCom lists for the employee. */
typedef struct inherit_resign_apply {
    int64_t tenant_id, resignation_id;
    const json_t *ext;
    int64_t customers, chats, assigned; /* filled */
} inherit_resign_apply;
int inherit_resign_apply_step(store_conn *c, void *arg);

/* An operator's assignment of a resigned employee's pending customers and
 * groups (all of them when customer_ids and group_ids are both NULL). */
typedef struct inherit_assign {
    http_auth auth;
    const char *actor;
    int64_t handover_id, takeover_id;
    const char *customer_ids, *group_ids; /* JSON array texts or NULL */
    int64_t customers, chats;             /* filled: handed over */
    siyu_err err;
} inherit_assign;
int inherit_assign_step(store_conn *c, void *arg);

/* Processes due resignations (blocking HTTP reads; then write steps). */
struct wecom_client;
void inherit_tick(store *st, struct wecom_client *wc);

/* Registers the groupchat_transfer result listener on ctx->ob. */
typedef struct siyu_ctx siyu_ctx;
void inherit_listen(siyu_ctx *ctx);

/* ---- the inheritance screen ---- */

/* {"totals":{pending,in_progress,done,refused,failed,total},
 *  "by_handover":[{employee_id,...}], "by_takeover":[{employee_id,...}],
 *  "groups":{pending,assigned,done,failed}}; employee_id > 0 restricts to
 * that employee's rows (either side). NULL on a store error. */
json_t *inherit_summary_json(store_conn *c, int64_t tenant_id, int64_t employee_id);

/* Pending rows: {"items":[...],"next_cursor"}; kind NULL = both. 0 or SIYU_EIO. */
int inherit_pending_json(store_conn *c, int64_t tenant_id, int64_t employee_id, const char *kind,
                         int64_t after_id, int limit, json_t **out);

#endif
