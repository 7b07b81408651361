/* welcome.h — the tenant's default welcome message: its configuration and the
 * producer that turns a new-contact callback into a send_welcome_msg row.
 *
 * Every add_external_contact / add_half_external_contact callback that
 * carries a WelcomeCode gets the message welcome_choose picks (a rule of
 * welcome_rule.h, else this default when enabled, else none), and a
 * welcome_log row saying what was chosen and why (docs/WELCOME.md). */
#ifndef SIYU_WELCOME_H
#define SIYU_WELCOME_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "util/err.h"
#include "wecom/wecom_event.h"

#define WELCOME_TEXT_MAX 4000   /* bytes; WeCom's text.content limit (spec §3.4) */
#define WELCOME_WINDOW_MS 20000 /* a welcome code lives 20 s after the event */

/* Inside the write step that applied ev (event row event_id): when ev is a new
 * contact with a WelcomeCode, chooses the message (welcome_choose), writes
 * its welcome_log row and, unless nothing was chosen, enqueues
 * send_welcome_msg in the urgent lane (deadline CreateTime + 20 s) and sets
 * *outbox_id; otherwise *outbox_id = 0. 0 or a store error. */
int welcome_on_event(store_conn *c, int64_t tenant_id, const wecom_event *ev, int64_t event_id,
                     int64_t *outbox_id);

/* {"text","enabled","updated_at"}; a tenant without one gets
 * {"text":null,"enabled":false,"updated_at":null}. NULL on a store error. */
json_t *welcome_config_json(store_conn *c, int64_t tenant_id);

/* Write step (arg: welcome_input*): stores the text (1..WELCOME_TEXT_MAX
 * bytes) and enabled flag, audited as "welcome.update". Errors in in->err. */
typedef struct welcome_input {
    int64_t tenant_id;
    const char *text;
    bool enabled;
    const char *actor;
    siyu_err err;
} welcome_input;
int welcome_config_set(store_conn *c, void *arg);

/* Recent welcome rows, newest first (id < before, 0 = newest), at most limit:
 * {"id","state","errcode","error","attempts","created_at","sent_at","event_id",
 * "external_userid","userid"}. *next = cursor for the next page or 0. */
int welcome_log(store_conn *c, int64_t tenant_id, int64_t before, int limit, json_t *items,
                int64_t *next);

/* Filters of welcome_list (0 / NULL = any). since/until: created_at bounds
 * (epoch seconds, until exclusive). outcome: sent | late | failed | pending
 * | none; source: rule | default | none. */
typedef struct welcome_filter {
    int64_t rule_id, employee_id, channel_id, since, until;
    const char *outcome, *source;
} welcome_filter;
bool welcome_outcome_valid(const char *s);

/* welcome_log rows newest first with their outcome (read from the outbox
 * row: sent; late = expired code, our deadline or WeCom's 41050; failed =
 * another final error, errcode kept; pending = not final yet; none = nothing
 * was sent): {"id","event_id","created_at","source","rule_id","rule_name",
 * "why","customer_id","employee_id","channel_id","outbox_id","outcome",
 * "errcode","error","sent_at","attempts"}. Paging as welcome_log. */
int welcome_list(store_conn *c, int64_t tenant_id, const welcome_filter *f, int64_t before,
                 int limit, json_t *items, int64_t *next);

/* {"total":{"sent","late","failed","pending","none","total"},
 * "by_rule":[{"source","rule_id","rule_name","total",<outcomes>}]} over
 * created_at in [since, until) (0 = open). NULL on a store error. */
json_t *welcome_counts_json(store_conn *c, int64_t tenant_id, int64_t since, int64_t until);

#endif
