/* api_groupchat.c — customer-group tools (F7, docs/GROUPS.md): group tags,
 * daily group statistics and rolling group QR codes. The group chats
 * themselves are read through api_group.c.
 *
 * Roles: these are office tools — admin and operator, the whole tenant.
 * Ownership: one op per write request hangs on r->user and owns the body
 * and the id text. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "outbox/outbox.h"
#include "store/groupchat.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 500

typedef struct gc_op {
    json_t *body;
    char actor[32];
    char *ids;
    groupchat_tag_op t;
    groupchat_qr_op q;
} gc_op;

static void gc_op_free(void *p) {
    gc_op *op = p;
    json_decref(op->body);
    free(op->ids);
    free(op);
}

static bool invalid(http_resp *w, const char *field, const char *msg) {
    siyu_err e;
    siyu_err_set(&e, SIYU_EINVAL, field, "%s", msg);
    http_error_err(w, &e);
    return false;
}

static bool parse_int(const char *s, int64_t min, int64_t *out) {
    if (!s || !*s || strlen(s) > 18) return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return false;
    *out = strtoll(s, NULL, 10);
    return *out >= min;
}

/* Distinct positive ids (0..max items; empty allowed when allow_empty) as
 * compact JSON text (malloc'd); NULL after replying. */
static char *id_text(http_resp *w, const json_t *arr, const char *name, size_t max,
                     bool allow_empty) {
    size_t n = json_array_size(arr);
    if ((!n && !allow_empty) || n > max) {
        invalid(w, name, "wrong number of ids");
        return NULL;
    }
    size_t i, k;
    json_t *it, *jt;
    json_array_foreach(arr, i, it) {
        if (!json_is_integer(it) || json_integer_value(it) <= 0) {
            invalid(w, name, "ids must be positive integers");
            return NULL;
        }
        for (k = 0; k < i && (jt = json_array_get(arr, k)); k++)
            if (json_integer_value(jt) == json_integer_value(it)) {
                invalid(w, name, "ids must not repeat");
                return NULL;
            }
    }
    char *s = json_dumps(arr, JSON_COMPACT);
    if (!s) http_error(w, 503, "unavailable", "out of memory");
    return s;
}

static gc_op *op_new(http_req *r, http_resp *w, json_t *body) {
    gc_op *op = api_op_new(r, w, sizeof *op, body, gc_op_free);
    if (!op) return NULL;
    op->body = body;
    api_actor(r, op->actor);
    op->t.tenant_id = op->q.tenant_id = r->auth.tenant_id;
    op->t.actor = op->q.actor = op->actor;
    return op;
}

/* ---- tags ------------------------------------------------------------------------ */

static void tags_list_read(http_req *r, http_resp *w, store_conn *c) {
    json_t *j = groupchat_tag_list_json(c, r->auth.tenant_id);
    if (!j)
        http_error(w, 500, "internal", "query failed");
    else
        http_json(w, 200, j);
}

static void tags_list(http_req *r, http_resp *w) {
    api_read(r, w, tags_list_read);
}

static const json_field tag_fields[] = {{"name", JF_STRING, true, 256, false},
                                        {NULL, 0, false, 0, false}};

static void tag_created(http_req *r, http_resp *w, int rc) {
    gc_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->t.err);
        return;
    }
    http_json(w, 201, json_pack("{s:I,s:s}", "id", (json_int_t)op->t.id, "name", op->t.name));
}

static void tag_create(http_req *r, http_resp *w) {
    json_t *body = http_body_object(r, w, tag_fields);
    if (!body) return;
    gc_op *op = op_new(r, w, body);
    if (!op) return;
    op->t.name = json_string_value(json_object_get(body, "name"));
    http_write(r, w, groupchat_tag_create_step, &op->t, tag_created);
}

static void no_content(http_req *r, http_resp *w, int rc) {
    gc_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, op->t.err.code ? &op->t.err : &op->q.err);
        return;
    }
    if (r->ctx->ob) outbox_kick(r->ctx->ob, OUTBOX_LANE_NORMAL);
    http_json(w, 200, json_pack("{s:b}", "ok", 1));
}

static void deleted(http_req *r, http_resp *w, int rc) {
    gc_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, op->t.err.code ? &op->t.err : &op->q.err);
        return;
    }
    if (r->ctx->ob) outbox_kick(r->ctx->ob, OUTBOX_LANE_NORMAL);
    http_text(w, 204, NULL, NULL, 0);
}

static void tag_delete(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    gc_op *op = op_new(r, w, NULL);
    if (!op) return;
    op->t.id = id;
    http_write(r, w, groupchat_tag_delete_step, &op->t, deleted);
}

static void tag_chats_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t id, after = 0, lim = PAGE_DEFAULT;
    if (!http_param_id(r, w, 0, &id)) return;
    const char *cur = http_query(r, "cursor"), *l = http_query(r, "limit");
    if (cur && !parse_int(cur, 1, &after)) {
        invalid(w, "cursor", "cursor is not one this server gave out");
        return;
    }
    if (l && !parse_int(l, 1, &lim)) {
        invalid(w, "limit", "limit must be a positive integer");
        return;
    }
    json_t *j = NULL;
    int rc = groupchat_tag_chats_json(c, r->auth.tenant_id, id, after,
                                      lim > PAGE_MAX ? PAGE_MAX : (int)lim, &j);
    if (rc == SIYU_ENOTFOUND)
        http_error(w, 404, "not_found", "group tag %lld does not exist", (long long)id);
    else if (rc != 0)
        http_error(w, 500, "internal", "query failed");
    else
        http_json(w, 200, j);
}

static void tag_chats(http_req *r, http_resp *w) {
    api_read(r, w, tag_chats_read);
}

static const json_field set_fields[] = {{"tag_ids", JF_ARRAY, true, 100, false},
                                        {NULL, 0, false, 0, false}};

static void chat_tags_set(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    json_t *body = http_body_object(r, w, set_fields);
    if (!body) return;
    gc_op *op = op_new(r, w, body);
    if (!op) return;
    op->ids = id_text(w, json_object_get(body, "tag_ids"), "tag_ids", 100, true);
    if (!op->ids) return;
    op->t.group_id = id;
    op->t.tag_ids = op->ids;
    http_write(r, w, groupchat_tags_set_step, &op->t, no_content);
}

/* ---- statistics ------------------------------------------------------------------- */

static void stats_reply(http_req *r, http_resp *w, store_conn *c, int64_t group) {
    json_t *j = NULL;
    siyu_err err = {0};
    int rc = groupchat_stats_json(c, r->auth.tenant_id, group, http_query(r, "from"),
                                  http_query(r, "to"), &j, &err);
    if (rc == 0)
        http_json(w, 200, j);
    else if (err.code)
        http_error_err(w, &err);
    else
        http_error(w, 500, "internal", "query failed");
}

static void chat_stats_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t id;
    if (http_param_id(r, w, 0, &id)) stats_reply(r, w, c, id);
}

static void chat_stats(http_req *r, http_resp *w) {
    api_read(r, w, chat_stats_read);
}

static void all_stats_read(http_req *r, http_resp *w, store_conn *c) {
    stats_reply(r, w, c, 0);
}

static void all_stats(http_req *r, http_resp *w) {
    api_read(r, w, all_stats_read);
}

/* ---- rolling QR codes --------------------------------------------------------------- */

static const json_field qr_fields[] = {
    {"name", JF_STRING, true, 256, false},
    {"group_ids", JF_ARRAY, true, GROUPCHAT_QR_CHATS_MAX, false},
    {"member_limit", JF_INT, false, 0, false},
    {NULL, 0, false, 0, false},
};

static void qr_read_one(http_req *r, http_resp *w, store_conn *c, int64_t id, int status) {
    json_t *j = groupchat_qr_get_json(c, r->auth.tenant_id, id);
    if (!j)
        http_error(w, 404, "not_found", "group QR code %lld does not exist", (long long)id);
    else
        http_json(w, status, j);
}

static void qr_created_read(http_req *r, http_resp *w, store_conn *c) {
    gc_op *op = r->user;
    qr_read_one(r, w, c, op->q.id, 201);
}

static void qr_created(http_req *r, http_resp *w, int rc) {
    gc_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->q.err);
        return;
    }
    if (r->ctx->ob) outbox_kick(r->ctx->ob, OUTBOX_LANE_NORMAL);
    api_read(r, w, qr_created_read);
}

static void qr_create(http_req *r, http_resp *w) {
    json_t *body = http_body_object(r, w, qr_fields);
    if (!body) return;
    gc_op *op = op_new(r, w, body);
    if (!op) return;
    op->q.name = json_string_value(json_object_get(body, "name"));
    json_t *lim = json_object_get(body, "member_limit");
    json_int_t l = lim ? json_integer_value(lim) : GROUPCHAT_QR_LIMIT_DEFAULT;
    if (l < 2 || l > GROUPCHAT_QR_LIMIT_MAX) {
        invalid(w, "member_limit", "member_limit must be within 2..500");
        return;
    }
    op->q.member_limit = (int)l;
    op->ids =
        id_text(w, json_object_get(body, "group_ids"), "group_ids", GROUPCHAT_QR_CHATS_MAX, false);
    if (!op->ids) return;
    op->q.group_ids = op->ids;
    http_write(r, w, groupchat_qr_create_step, &op->q, qr_created);
}

static void qr_list_read(http_req *r, http_resp *w, store_conn *c) {
    json_t *j = groupchat_qr_list_json(c, r->auth.tenant_id);
    if (!j)
        http_error(w, 500, "internal", "query failed");
    else
        http_json(w, 200, j);
}

static void qr_list(http_req *r, http_resp *w) {
    api_read(r, w, qr_list_read);
}

static void qr_get_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t id;
    if (http_param_id(r, w, 0, &id)) qr_read_one(r, w, c, id, 200);
}

static void qr_get(http_req *r, http_resp *w) {
    api_read(r, w, qr_get_read);
}

static void qr_delete(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    gc_op *op = op_new(r, w, NULL);
    if (!op) return;
    op->q.id = id;
    http_write(r, w, groupchat_qr_delete_step, &op->q, deleted);
}

const http_route api_groupchat_routes[] = {
    {"GET", "/api/v1/group-tags", tags_list, ROLES_OFFICE,
     "List group tags (Siyu-only tags on group chats) with how many chats carry each", 0},
    {"POST", "/api/v1/group-tags", tag_create, ROLES_OFFICE, "Create a group tag", 0},
    {"DELETE", "/api/v1/group-tags/{id}", tag_delete, ROLES_OFFICE,
     "Delete a group tag (and its marks)", 0},
    {"GET", "/api/v1/group-tags/{id}/group-chats", tag_chats, ROLES_OFFICE,
     "Group chats carrying a tag (limit, cursor)", 0},
    {"PUT", "/api/v1/group-chats/{id}/tags", chat_tags_set, ROLES_OFFICE,
     "Replace a group chat's tags (tag_ids)", 0},
    {"GET", "/api/v1/group-chats/{id}/stats", chat_stats, ROLES_OFFICE,
     "Daily statistics of one group chat: joins, quits, net, active members (from, to; tenant "
     "time zone)",
     0},
    {"GET", "/api/v1/group-stats", all_stats, ROLES_OFFICE,
     "Daily statistics over all group chats (from, to; tenant time zone)", 0},
    {"POST", "/api/v1/group-qrs", qr_create, ROLES_OFFICE,
     "Create a rolling group QR code over group_ids (in order; member_limit 2..500, default "
     "200): a WeCom join way on the first chats not full",
     0},
    {"GET", "/api/v1/group-qrs", qr_list, ROLES_OFFICE, "List rolling group QR codes", 0},
    {"GET", "/api/v1/group-qrs/{id}", qr_get, ROLES_OFFICE,
     "A rolling group QR code with its groups, member counts and the chats WeCom has now", 0},
    {"DELETE", "/api/v1/group-qrs/{id}", qr_delete, ROLES_OFFICE,
     "Delete a rolling group QR code (del_join_way)", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
