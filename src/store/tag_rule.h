/* tag_rule.h — auto-tag rules (F6): data created through the API, evaluated
 * by the writer inside the write step of the event or change that triggers
 * them (docs/WELCOME.md, "Auto-tag rules").
 *
 * Triggers and their params (canonical JSON in tag_rule.params):
 *   channel      {"channel_ids":[..], "channel_group_ids":[..]} (either or
 *                both): a relationship attributed to one of the channels
 *   group_join   {"chat_ids":["wr..", ..]}: the customer joins one of them
 *   keyword      {"event_type":"message", "keywords":[..]}: an event of that
 *                type whose props.text contains a keyword (ASCII letters
 *                compared case-insensitively)
 *   event_count  {"event_type":"campaign.join", "count":3, "window_days":30}:
 *                the customer has count events of the type within the last
 *                window_days (counted at each such event, itself included)
 *   stage        {"stage":"vip"}: customer.stage set to the value
 * A hit applies the rule's tags the customer lacks (a tag already present is
 * never re-applied), pushes the WeCom ones with mark_tag through the outbox
 * (tag_wecom_mark), counts tag_rule.hits and writes a tag_rule_hit row.
 *
 * Cost: evaluation loads the tenant's enabled rules of the relevant
 * triggers once per write step (one indexed query, usually no rows) into a
 * tag_rule_set; the per-event checks then run in memory. */
#ifndef SIYU_TAG_RULE_H
#define SIYU_TAG_RULE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "util/err.h"

#define TAG_RULES_MAX 500        /* rules per tenant */
#define TAG_RULE_NAME_MAX 64     /* characters */
#define TAG_RULE_TAGS_MAX 20     /* tags applied per rule */
#define TAG_RULE_IDS_MAX 100     /* channel / channel group / chat ids */
#define TAG_RULE_KEYWORDS_MAX 20 /* keywords per rule */
#define TAG_RULE_KEYWORD_MAX 32  /* characters per keyword */
#define TAG_RULE_COUNT_MAX 1000  /* event_count.count */
#define TAG_RULE_WINDOW_MAX 365  /* event_count.window_days */

/* Write step arg (create, replace: body; replace, delete: id). result: the
 * rule as tag_rule_get_json shows it (caller frees). Errors in err. */
typedef store_json_input tag_rule_input;
int tag_rule_create(store_conn *c, void *arg);
int tag_rule_replace(store_conn *c, void *arg);
int tag_rule_delete(store_conn *c, void *arg);

/* {"id","name","trigger","enabled","params","tag_ids","hits","last_hit_at",
 * "created_at","updated_at"}; NULL when not the tenant's. */
json_t *tag_rule_get_json(store_conn *c, int64_t tenant_id, int64_t id);
int tag_rule_list(store_conn *c, int64_t tenant_id, json_t *items);

/* Triggers, as bits for tag_rule_set_load. */
enum {
    TAG_TRIGGER_CHANNEL = 1u << 0,
    TAG_TRIGGER_GROUP_JOIN = 1u << 1,
    TAG_TRIGGER_KEYWORD = 1u << 2,
    TAG_TRIGGER_EVENT_COUNT = 1u << 3,
    TAG_TRIGGER_STAGE = 1u << 4,
};

/* The enabled rules of one tenant for some triggers, parsed. Loaded inside
 * a write step and used within it (rules change only through write steps,
 * so it is current). *out = NULL when the tenant has none: the caller's
 * fast path. 0 or SIYU_E*. Free with tag_rule_set_free (NULL ok). */
typedef struct tag_rule_set tag_rule_set;
int tag_rule_set_load(store_conn *c, int64_t tenant_id, unsigned triggers, tag_rule_set **out);
void tag_rule_set_free(tag_rule_set *s);

/* A committed-in-this-step event (keyword and event_count rules). props is
 * the event's JSON text (may be NULL); ts its time. *kick gets the outbox
 * lanes written. 0 or SIYU_E*. */
int tag_rule_on_event(store_conn *c, tag_rule_set *s, int64_t customer_id, int64_t event_id,
                      const char *type, const char *props, int64_t ts, unsigned *kick);

/* Single-call conveniences that load the set themselves (NULL set = none). */
int tag_rule_on_channel(store_conn *c, int64_t tenant_id, int64_t customer_id, int64_t channel_id,
                        int64_t event_id, unsigned *kick);
int tag_rule_on_group_join(store_conn *c, int64_t tenant_id, int64_t customer_id,
                           const char *chat_id, int64_t event_id, unsigned *kick);
int tag_rule_on_stage(store_conn *c, int64_t tenant_id, int64_t customer_id, const char *stage,
                      unsigned *kick);

/* The WeCom-callback hook (ingest_wecom_apply, after the event row): for
 * an add attributed to a channel, a group join by customers, and event
 * counts over "wecom.<kind>" types. chat_id / members as the event's. */
struct wecom_event;
int tag_rule_on_wecom(store_conn *c, int64_t tenant_id, const struct wecom_event *ev,
                      int64_t customer_id, int64_t employee_id, int64_t event_id, int64_t ts);

#endif
