/* channel.h — channel QR codes (渠道活码, F4): WeCom contact ways with a
 * Siyu-generated `state`, their staff rosters, auto-tags and statistics.
 *
 * Model (migrations/0009_channel.sql, docs/CHANNELS.md):
 *   channel_group   a reporting group of channels ("offline stores", "ads")
 *   channel         one contact way: name, generated state, WeCom config_id,
 *                   type single|multi, skip_verify, remark/description
 *                   templates, default daily cap, status active|deleted
 *   channel_staff   who the code routes to: duty or backup, a daily cap, a
 *                   weekday x time-slot schedule (tenant time zone)
 *   channel_tag     auto-tags for every customer arriving through it
 *   relationship.channel_id   the attribution
 *
 * WeCom calls go through the outbox, in the same write step as the change
 * (ref "channel:<id>"):
 *   channel_create  → add_contact_way (body carries the state, so a delivery
 *                     in doubt is probed by state, see outbox.h)
 *   channel_update  → update_contact_way when WeCom-visible settings or the
 *                     roster changed (or, while the add is still pending,
 *                     channel.dirty = 1: the add's answer pushes the edit)
 *   channel_delete  → del_contact_way (or, while the add is pending, the
 *                     add's answer deletes it)
 *   roster job      → update_contact_way when the computed user list
 *                     differs from the one WeCom has (channel.users)
 *
 * Every write step takes its input struct as arg, reports detail in its err
 * member, audits inside the step and fills `kick` with the outbox lanes it
 * wrote to (1 << lane) for the caller to kick after the commit
 * (tag_wecom_kick). JSON results are owned by the caller. */
#ifndef SIYU_STORE_CHANNEL_H
#define SIYU_STORE_CHANNEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/err.h"

#define CHANNEL_NAME_MAX 64         /* characters */
#define CHANNEL_GROUP_NAME_MAX 64   /* characters */
#define CHANNEL_DESCRIPTION_MAX 500 /* characters (a group's description) */
#define CHANNEL_STATE_CHARS 30      /* WeCom's limit on state */
#define CHANNEL_WAY_REMARK_CHARS 30 /* WeCom's limit on a contact way's remark */
#define CHANNEL_STAFF_MAX 100       /* WeCom: at most 100 users per way */
#define CHANNEL_TAGS_MAX 20
#define CHANNEL_CAP_MAX 100000         /* adds per employee per day */
#define CHANNEL_REMARK_TEMPLATE_MAX 60 /* characters, before rendering */
#define CHANNEL_DESC_TEMPLATE_MAX 300  /* characters, before rendering */
#define CHANNEL_SCHEDULE_TEXT_MAX 512  /* bytes */
#define CHANNEL_SLOTS_MAX 32           /* day-set x time-slot entries per schedule */
#define CHANNEL_STATS_DAYS_MAX 366

/* ---- schedules ---------------------------------------------------------
 * Text form: rules separated by ';', each "DAYS SLOTS": DAYS is a
 * comma-separated list of days (mon tue wed thu fri sat sun) or ranges
 * (mon-fri; a range may wrap: sat-mon), or "daily"; SLOTS is a
 * comma-separated list of HH:MM-HH:MM (start < end, end up to 24:00).
 * "mon-fri 09:00-12:00,13:00-18:00; sat,sun 10:00-16:00". Case and extra
 * blanks are ignored; the canonical form (channel_schedule_format) is what
 * is stored. NULL or "" = always on. */
typedef struct channel_slot {
    uint8_t days;      /* bit 0 = Monday ... bit 6 = Sunday */
    uint16_t from, to; /* minutes of the day, from < to <= 1440 */
} channel_slot;

typedef struct channel_schedule {
    int n; /* 0 = always on */
    channel_slot slot[CHANNEL_SLOTS_MAX];
} channel_schedule;

/* 0, or SIYU_EINVAL with err naming `field` and the position of the problem. */
int channel_schedule_parse(const char *text, const char *field, channel_schedule *out,
                           siyu_err *err);
/* Writes the canonical text ("" when always on). Returns its length, or a
 * value >= cap when out was too small (as snprintf). */
size_t channel_schedule_format(const channel_schedule *s, char *out, size_t cap);
/* Whether the schedule covers weekday (0 = Monday) at minute of the day. */
bool channel_schedule_on(const channel_schedule *s, int weekday, int minute);

/* ---- time zones --------------------------------------------------------
 * Day boundaries and schedules use the tenant's time zone (tenant.time_zone,
 * NULL = Asia/Shanghai). Supported: the fixed-offset zones Asia/Shanghai,
 * Asia/Chongqing, Asia/Hong_Kong, Asia/Macau, Asia/Taipei, Asia/Singapore,
 * Asia/Kuala_Lumpur, Asia/Manila, Asia/Tokyo, Asia/Seoul, UTC, Etc/UTC, and
 * "UTC+HH:MM" / "UTC-HH:MM". 0 with *offset_s, or SIYU_EINVAL. */
int channel_tz_offset(const char *tz, int *offset_s);
/* The tenant's offset (seconds east of UTC); an unknown stored zone falls
 * back to Asia/Shanghai. 0 or a store error. */
int channel_tenant_offset(store_conn *c, int64_t tenant_id, int *offset_s);

/* A local calendar position of ts for offset_s. */
typedef struct channel_local {
    int64_t day;       /* days since 1970-01-01 (local) */
    int64_t day_start; /* UTC epoch second of the local day's midnight */
    int weekday;       /* 0 = Monday */
    int minute;        /* of the local day */
} channel_local;
void channel_local_of(int64_t ts, int offset_s, channel_local *out);

/* ---- channel groups ------------------------------------------------------ */

typedef struct channel_group_input {
    int64_t tenant_id;
    int64_t id;              /* update/delete: the group; create: filled */
    const char *name;        /* update: NULL = unchanged */
    bool has_description;    /* update: false = unchanged */
    const char *description; /* NULL clears */
    bool has_sort_order;
    int64_t sort_order;
    const char *actor;
    int64_t ungrouped; /* delete: filled, channels that lost their group */
    siyu_err err;
} channel_group_input;

/* Names are unique in the tenant (SIYU_ECONFLICT naming "name"); another
 * tenant's group is SIYU_ENOTFOUND. Deleting a group ungroups its channels. */
int channel_group_create(store_conn *c, void *arg);
int channel_group_update(store_conn *c, void *arg);
int channel_group_delete(store_conn *c, void *arg);
/* {"id","name","description","sort_order","channels"(active count),
 * "created_at","updated_at"}, or NULL when absent from the tenant. */
json_t *channel_group_get_json(store_conn *c, int64_t tenant_id, int64_t id);
/* Appends every group of the tenant (sort_order, id). 0 or SIYU_EIO. */
int channel_group_list(store_conn *c, int64_t tenant_id, json_t *items);

/* ---- channels ------------------------------------------------------------ */

typedef struct channel_staff_input {
    int64_t employee_id;
    bool backup;
    bool has_cap; /* false = the channel's daily_cap */
    int64_t daily_cap;
    const char *schedule; /* NULL/"" = always */
} channel_staff_input;

typedef struct channel_input {
    int64_t tenant_id;
    int64_t id;       /* update/delete: the channel; create: filled */
    const char *name; /* create: required; update: NULL = unchanged */
    bool has_group;   /* update: false = unchanged */
    int64_t group_id; /* 0 = none */
    const char *type; /* create: "single" | "multi" (NULL = multi); update: must not change */
    bool has_skip_verify, skip_verify;
    bool has_remark_template;
    const char *remark_template; /* NULL clears */
    bool has_description_template;
    const char *description_template;
    bool has_daily_cap;
    int64_t daily_cap;
    bool has_staff; /* create: required (non-empty); update: replaces */
    const channel_staff_input *staff;
    size_t nstaff;
    bool has_tags; /* update: replaces */
    const int64_t *tag_ids;
    size_t ntags;
    int64_t now; /* 0 = siyu_now(); roster time for the initial user list */
    const char *actor;
    unsigned kick; /* filled: outbox lanes written */
    bool pushed;   /* filled: a WeCom call was queued */
    siyu_err err;
} channel_input;

/* Create: validates everything (SIYU_EINVAL naming the field, e.g.
 * "staff[1].schedule", "tag_ids[0]"; SIYU_ECONFLICT naming "name" for a
 * duplicate active name), generates the state, computes the first roster and
 * queues add_contact_way. Update: the given fields; queues update_contact_way
 * when the name, skip_verify or the roster changed. Delete: marks the
 * channel deleted (its attributions and statistics stay) and queues
 * del_contact_way. SIYU_ENOTFOUND for another tenant's or a deleted
 * channel (update/delete). */
int channel_create(store_conn *c, void *arg);
int channel_update(store_conn *c, void *arg);
int channel_delete(store_conn *c, void *arg);

/* {"id","name","group_id","state","config_id","qr_code","type","skip_verify",
 * "remark_template","description_template","daily_cap","status",
 * "wecom_status","wecom_error","users","staff":[{"employee_id","userid",
 * "role","daily_cap","schedule"}],"tag_ids","created_at","updated_at"},
 * or NULL when absent from the tenant. */
json_t *channel_get_json(store_conn *c, int64_t tenant_id, int64_t id);

typedef struct channel_filter {
    int64_t group_id;   /* 0 = any */
    const char *status; /* "active" (default), "deleted", "all" */
    int64_t after_id;   /* keyset cursor, 0 = first page */
    int limit;          /* 1..500 */
    int64_t next;       /* filled: cursor of the next page, 0 = no more */
} channel_filter;
/* Appends channels (as channel_get_json) in id order. 0 or SIYU_EIO. */
int channel_list(store_conn *c, int64_t tenant_id, channel_filter *f, json_t *items);

/* ---- rosters ------------------------------------------------------------
 * Who the code routes to at `now` (tenant time zone):
 *   1. duty staff who are on schedule and under their daily cap;
 *   2. else backup staff on schedule and under their cap;
 *   3. else (everyone on duty and every backup capped or off) every active
 *      backup, then, without backups, every active duty employee: a code
 *      never points at nobody.
 * A cap counts the relationships attributed to the channel whose added_at
 * falls on the local day of now, per employee. Resigned employees are never
 * on. A single-employee code takes the first of the chosen set (staff
 * order). *users: JSON array of userids (empty when the channel has no
 * active staff at all); *detail (may be NULL): {"rule","at","staff":[{
 * "employee_id","userid","role","on_schedule","adds_today","daily_cap",
 * "capped","chosen"}]}. 0, SIYU_ENOTFOUND, or a store error. */
int channel_roster(store_conn *c, int64_t tenant_id, int64_t channel_id, int64_t now,
                   json_t **users, json_t **detail);

/* Write step: recomputes every active channel's roster (of tenant_id, 0 =
 * all tenants) at now and queues update_contact_way for each whose user
 * list changed. Idempotent. */
typedef struct channel_roster_run {
    int64_t tenant_id;
    int64_t now;              /* 0 = siyu_now() */
    int64_t checked, changed; /* filled */
    unsigned kick;            /* filled */
} channel_roster_run;
int channel_roster_step(store_conn *c, void *arg);

/* ---- attribution (inside the callback's write step) ---------------------
 * After add_external_contact / add_half_external_contact wrote the
 * relationship (customer, employee) with `state`: when the state is one of
 * the tenant's channels, sets relationship.channel_id, applies the
 * channel's auto-tags to the customer (customer_tag source 'auto'; WeCom
 * corp tags are also marked on the follow record through the outbox, as
 * bulk tagging does), queues the rendered remark/description templates
 * (outbox "remark"), and, when the employee has a daily cap on the
 * channel, recomputes its roster (a cap just reached takes the employee
 * off the code at once). ts is the event's
 * CreateTime: a relationship already attributed to the channel before this
 * event (add_half_external_contact, then add_external_contact) is left
 * alone. *channel_id = the channel or 0. 0 or a store error. */
int channel_on_add(store_conn *c, int64_t tenant_id, int64_t customer_id, int64_t employee_id,
                   const char *state, int64_t ts, int64_t now, int64_t *channel_id, unsigned *kick);

/* ---- outbox answers ------------------------------------------------------ */

/* Records an outbox result for ref "channel:<id>" (kind add_contact_way,
 * update_contact_way or del_contact_way; state sent or dead). Write step;
 * exposed for tests. */
typedef struct channel_result {
    int64_t tenant_id;
    const char *kind;
    const char *ref;
    const char *state;
    const json_t *answer;
    int errcode;
    unsigned kick; /* filled */
    siyu_err err;
} channel_result;
int channel_result_step(store_conn *c, void *arg);
/* Write step (arg: unsigned *kick): applies sent add_contact_way answers
 * whose channel has no config_id yet (their listener never ran). */
int channel_catch_up_step(store_conn *c, void *arg);

typedef struct siyu_ctx siyu_ctx;
/* Registers the contact-way listeners on ctx->ob (nothing when NULL) and
 * catches up once. ctx must outlive the outbox. */
void channel_listen(siyu_ctx *ctx);

/* The roster job: a thread that runs channel_roster_step every interval_s
 * seconds (0 = never) and kicks the outbox. NULL on failure (err filled) or
 * when interval_s is 0. Stop (NULL ok) before the outbox and the store. */
typedef struct channel_sched channel_sched;
channel_sched *channel_sched_start(siyu_ctx *ctx, int interval_s, siyu_err *err);
void channel_sched_stop(channel_sched *s);

/* ---- statistics ---------------------------------------------------------
 * Cohorts by the local day of the add (tenant time zone), over the
 * relationships attributed to channels; see docs/CHANNELS.md. from_day and
 * to_day are local days since 1970-01-01, inclusive. channel_id 0 = every
 * channel of the tenant, with per-group and tenant totals (and the adds
 * attributed to no channel); else that one channel. NULL on a store error
 * or (*notfound) an unknown channel. */
json_t *channel_stats_json(store_conn *c, int64_t tenant_id, int64_t channel_id, int64_t from_day,
                           int64_t to_day, int64_t now, bool *notfound);
/* Parses "YYYY-MM-DD" into days since 1970-01-01. false when malformed. */
bool channel_day_parse(const char *s, int64_t *day);

#endif
