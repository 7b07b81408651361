/* groupchat.h — customer-group tools (F7, docs/GROUPS.md): group tags,
 * the member log and daily group statistics, rolling group QR codes.
 *
 * Rolling group QR code (group_qr), wecom_status:
 *
 *   (create: groupchat_qr_create_step, add_join_way queued) ──> pending
 *   pending ──outbox answer sent: config_id stored──> created
 *           (dirty: the chat list changed meanwhile → update_join_way queued)
 *   pending ──outbox dead──> failed
 *   created ──a chat reaches member_limit: groupchat_on_member marks it
 *             full and queues update_join_way with the next chats──> created
 *   created|pending|failed ──groupchat_qr_delete_step (del_join_way)──> deleted
 *
 * Ownership: inputs are borrowed for the step; JSON results belong to the
 * caller. */
#ifndef SIYU_STORE_GROUPCHAT_H
#define SIYU_STORE_GROUPCHAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"
#include "store/store.h"

#define GROUPCHAT_TAG_NAME_MAX 64  /* characters */
#define GROUPCHAT_QR_CHATS_MAX 100 /* groups behind one entry point */
#define GROUPCHAT_QR_WAY_CHATS 5   /* WeCom: chat_id_list of a join way */
#define GROUPCHAT_QR_LIMIT_DEFAULT 200
#define GROUPCHAT_QR_LIMIT_MAX 500
#define GROUPCHAT_STATS_DAYS_MAX 92

/* ---- tags ---- */

typedef struct groupchat_tag_op {
    int64_t tenant_id;
    const char *actor;
    int64_t id;          /* delete: the tag; create: filled */
    const char *name;    /* create */
    int64_t group_id;    /* set: the chat */
    const char *tag_ids; /* set: JSON array text of distinct ids */
    siyu_err err;
} groupchat_tag_op;
int groupchat_tag_create_step(store_conn *c, void *arg); /* 409 on a taken name */
int groupchat_tag_delete_step(store_conn *c, void *arg); /* 404 when absent */
/* Replaces the chat's tags (ENOTFOUND for an unknown chat, EINVAL naming
 * tag_ids[i] for an unknown tag). */
int groupchat_tags_set_step(store_conn *c, void *arg);
/* {"items":[{"id","name","chats"}]}; NULL on a store error. */
json_t *groupchat_tag_list_json(store_conn *c, int64_t tenant_id);
/* Chats carrying tag_id: {"items":[{"id","chat_id","name","status","members"}],
 * "next_cursor"}; 0, SIYU_ENOTFOUND or SIYU_EIO. */
int groupchat_tag_chats_json(store_conn *c, int64_t tenant_id, int64_t tag_id, int64_t after,
                             int limit, json_t **out);

/* ---- member log (inside ingest's step) ---- */

/* Records one member join (join) or quit of group_id applied from a callback
 * at ts, and — for a join — rolls group QR codes over when the group reached
 * its limit. 0 or a store error. */
int groupchat_on_member(store_conn *c, int64_t tenant_id, int64_t group_id, const char *member_id,
                        int64_t customer_id, bool join, int scene, int64_t ts);

/* ---- statistics ---- */

/* Daily statistics over [from, to] (YYYY-MM-DD, tenant time zone) of one
 * group (group_id > 0) or of all the tenant's groups:
 * {"from","to","utc_offset","days":[{"date","joins","quits","net",
 * "active_members"}],"totals":{"joins","quits","net","active_member_days"}}.
 * active_members: distinct members with a join, quit or an event carrying
 * the group's chat_id (props.chat_id) that day, counted per group. 0,
 * SIYU_EINVAL (err names from/to), SIYU_ENOTFOUND or SIYU_EIO. */
int groupchat_stats_json(store_conn *c, int64_t tenant_id, int64_t group_id, const char *from,
                         const char *to, json_t **out, siyu_err *err);

/* ---- rolling group QR codes ---- */

typedef struct groupchat_qr_op {
    int64_t tenant_id;
    const char *actor;
    int64_t id;            /* delete: the code; create: filled */
    const char *name;      /* create */
    const char *group_ids; /* create: JSON array text of distinct group ids, in order */
    int member_limit;      /* create */
    siyu_err err;
} groupchat_qr_op;
int groupchat_qr_create_step(store_conn *c, void *arg);
int groupchat_qr_delete_step(store_conn *c, void *arg);
/* One code with its chats, or NULL when absent. */
json_t *groupchat_qr_get_json(store_conn *c, int64_t tenant_id, int64_t id);
/* {"items":[...]}; NULL on a store error. */
json_t *groupchat_qr_list_json(store_conn *c, int64_t tenant_id);

/* Registers the join-way result listener on ctx->ob. */
typedef struct siyu_ctx siyu_ctx;
void groupchat_listen(siyu_ctx *ctx);

/* Applies an add_join_way/update_join_way/del_join_way result to the code
 * named by ref ("group_qr:<id>"). Write step, exposed for tests. */
typedef struct groupchat_qr_result {
    int64_t tenant_id;
    const char *kind, *ref, *state;
    const json_t *answer;
    int errcode;
} groupchat_qr_result;
int groupchat_qr_result_step(store_conn *c, void *arg);

#endif
