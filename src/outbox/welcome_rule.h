/* welcome_rule.h — welcome-message rules (F5): which text and attachments a
 * new contact gets, chosen by channel, channel group, employee, department
 * (with its sub-departments), store, weekday/time slot and date range, in
 * explicit priority order, with the tenant default (welcome.h) as fallback.
 * docs/WELCOME.md describes rules, precedence, placeholders and outcomes.
 *
 * Writes (create/replace/delete) are write steps validating the JSON body
 * (errors name the field, e.g. "conditions.channel_ids"), audited as
 * "welcome_rule.create|update|delete". welcome_choose is what the callback's
 * write step (welcome_on_event) and the preview endpoint both call, so the
 * preview answers exactly what a real add would get. */
#ifndef SIYU_WELCOME_RULE_H
#define SIYU_WELCOME_RULE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "util/err.h"

#define WELCOME_RULES_MAX 200    /* rules per tenant */
#define WELCOME_RULE_NAME_MAX 64 /* characters */
#define WELCOME_RULE_IDS_MAX 100 /* ids per condition list */
#define WELCOME_ATTACH_MAX 9     /* WeCom's limit (spec §3.4) */
#define WELCOME_PRIORITY_MAX 1000000
#define WELCOME_FALLBACK_MAX 32 /* bytes of a placeholder's "|fallback" */

/* Write step arg for welcome_rule_create / _replace / _delete. body is the
 * request object (create, replace); id is the rule (replace, delete; set by
 * create). result: the rule as welcome_rule_get_json shows it (create,
 * replace; caller frees). Errors in err. */
typedef store_json_input welcome_rule_input;
int welcome_rule_create(store_conn *c, void *arg);
int welcome_rule_replace(store_conn *c, void *arg);
int welcome_rule_delete(store_conn *c, void *arg);

/* {"id","name","priority","enabled","conditions","text","attachments",
 * "created_at","updated_at"}; NULL when not the tenant's (or on error). */
json_t *welcome_rule_get_json(store_conn *c, int64_t tenant_id, int64_t id);
/* Every rule of the tenant in evaluation order (priority, id). 0 or SIYU_E*. */
int welcome_rule_list(store_conn *c, int64_t tenant_id, json_t *items);

/* Checks text's placeholders: {customer_name} and {employee_name}, each
 * optionally with "|fallback" (used when the name is unknown). 0 or
 * SIYU_EINVAL naming field. */
int welcome_text_check(const char *text, const char *field, siyu_err *err);

/* The situation of one add. employee_id must be set; channel_id and
 * customer_id may be 0; ts is the add's time (epoch seconds). */
typedef struct welcome_ctx {
    int64_t employee_id, channel_id, customer_id, ts;
} welcome_ctx;

typedef enum { WELCOME_NONE = 0, WELCOME_RULE, WELCOME_DEFAULT } welcome_source;
const char *welcome_source_name(welcome_source s);

/* The choice for one add. body: {"text":{"content"}?,"attachments"?} with the
 * placeholders filled (no welcome_code), NULL for WELCOME_NONE. why: a JSON
 * array of human-readable reasons (each rule skipped before the chosen one
 * and the first condition it failed, then what matched). Free with
 * welcome_choice_reset. */
typedef struct welcome_choice {
    welcome_source source;
    int64_t rule_id;
    json_t *rule_name; /* string or NULL */
    json_t *body;
    json_t *why;
} welcome_choice;
void welcome_choice_reset(welcome_choice *ch);

/* Chooses on c (writer inside a step, or a reader). 0, or a store error /
 * SIYU_ENOMEM (out is then reset). SIYU_ENOTFOUND when the employee is not
 * the tenant's. */
int welcome_choose(store_conn *c, int64_t tenant_id, const welcome_ctx *x, welcome_choice *out);

#endif
