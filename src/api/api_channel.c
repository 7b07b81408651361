/* api_channel.c — channel QR codes (F4): channel groups, channels, their
 * rosters and statistics (docs/CHANNELS.md). Reads are open to every tenant
 * role (channels are catalogue data; statistics are counts, no customer
 * rows); writes need admin or operator, as for tags.
 *
 * Writes run store/channel.c steps, which queue the WeCom contact-way calls
 * in the same commit; each handler kicks the outbox lanes written once the
 * write committed.
 *
 * Ownership: one chan_op per write request hangs on r->user and owns the
 * parsed body (whose strings the input structs borrow) and the staff and
 * tag arrays. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "store/channel.h"
#include "store/tag_wecom.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 500
#define SORT_ORDER_LIMIT 1000000000LL
#define STATS_DEFAULT_DAYS 30

typedef struct chan_op {
    json_t *body;
    char actor[32];
    channel_group_input group;
    channel_input ch;
    channel_staff_input *staff;
    int64_t *tags;
} chan_op;

static void chan_op_free(void *p) {
    chan_op *op = p;
    json_decref(op->body);
    free(op->staff);
    free(op->tags);
    free(op);
}

static chan_op *chan_op_new(http_req *r, http_resp *w, json_t *body) {
    chan_op *op = api_op_new(r, w, sizeof *op, body, chan_op_free);
    if (!op) return NULL;
    op->body = body;
    api_actor(r, op->actor);
    op->group.tenant_id = op->ch.tenant_id = r->auth.tenant_id;
    op->group.actor = op->ch.actor = op->actor;
    return op;
}

static bool reply_invalid(http_resp *w, const char *field, const char *msg) {
    siyu_err e;
    siyu_err_set(&e, SIYU_EINVAL, field, "%s", msg);
    http_error_err(w, &e);
    return false;
}

static bool parse_i64(const char *s, int64_t *out) {
    char *end;
    if (!s || !*s) return false;
    long long v = strtoll(s, &end, 10);
    if (*end) return false;
    *out = v;
    return true;
}

/* ---- channel groups ---------------------------------------------------- */

static const json_field group_fields[] = {
    {"name", JF_STRING, false, 4 * CHANNEL_GROUP_NAME_MAX, false},
    {"description", JF_STRING, false, 4 * CHANNEL_DESCRIPTION_MAX, true},
    {"sort_order", JF_INT, false, 0, false},
    {NULL, 0, false, 0, false},
};

static void reply_group(http_req *r, http_resp *w, int status, int64_t id) {
    store_conn *c = store_reader_acquire(r->ctx->st);
    json_t *j = c ? channel_group_get_json(c, r->auth.tenant_id, id) : NULL;
    store_reader_release(r->ctx->st, c);
    if (!j)
        http_error(w, 404, "not_found", "channel group %lld does not exist", (long long)id);
    else
        http_json(w, status, j);
}

static void group_written(http_req *r, http_resp *w, int rc) {
    chan_op *op = r->user;
    if (rc != 0)
        api_reply_write_error(w, rc, &op->group.err);
    else if (!strcmp(r->method, "DELETE"))
        http_text(w, 204, NULL, NULL, 0);
    else
        reply_group(r, w, !strcmp(r->method, "POST") ? 201 : 200, op->group.id);
}

static chan_op *group_op(http_req *r, http_resp *w) {
    json_t *body = http_body_object(r, w, group_fields);
    if (!body) return NULL;
    chan_op *op = chan_op_new(r, w, body);
    if (!op) return NULL;
    channel_group_input *g = &op->group;
    g->name = json_string_value(json_object_get(body, "name"));
    json_t *d = json_object_get(body, "description");
    g->has_description = d != NULL;
    g->description = json_string_value(d);
    json_t *so = json_object_get(body, "sort_order");
    g->has_sort_order = so != NULL;
    g->sort_order = json_integer_value(so);
    if (g->sort_order < -SORT_ORDER_LIMIT || g->sort_order > SORT_ORDER_LIMIT) {
        reply_invalid(w, "sort_order", "sort_order must be within +/-1000000000");
        return NULL;
    }
    return op;
}

static void groups_create(http_req *r, http_resp *w) {
    chan_op *op = group_op(r, w);
    if (op) http_write(r, w, channel_group_create, &op->group, group_written);
}

static void groups_update(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    chan_op *op = group_op(r, w);
    if (!op) return;
    op->group.id = id;
    http_write(r, w, channel_group_update, &op->group, group_written);
}

static void groups_delete(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    chan_op *op = chan_op_new(r, w, NULL);
    if (!op) return;
    op->group.id = id;
    http_write(r, w, channel_group_delete, &op->group, group_written);
}

static void groups_get(http_req *r, http_resp *w) {
    int64_t id;
    if (http_param_id(r, w, 0, &id)) reply_group(r, w, 200, id);
}

static void groups_list_read(http_req *r, http_resp *w, store_conn *c) {
    json_t *items = json_array();
    if (channel_group_list(c, r->auth.tenant_id, items) != 0) {
        json_decref(items);
        http_error(w, 500, "internal", "query failed");
        return;
    }
    http_json(w, 200, json_pack("{s:o}", "items", items));
}

static void groups_list(http_req *r, http_resp *w) {
    api_read(r, w, groups_list_read);
}

/* ---- channels ------------------------------------------------------------ */

static const json_field channel_fields[] = {
    {"name", JF_STRING, false, 4 * CHANNEL_NAME_MAX, false},
    {"group_id", JF_INT, false, 0, true},
    {"type", JF_STRING, false, 16, false},
    {"skip_verify", JF_BOOL, false, 0, false},
    {"remark_template", JF_STRING, false, 4 * CHANNEL_REMARK_TEMPLATE_MAX, true},
    {"description_template", JF_STRING, false, 4 * CHANNEL_DESC_TEMPLATE_MAX, true},
    {"daily_cap", JF_INT, false, 0, false},
    {"staff", JF_ARRAY, false, 1000, false},
    {"tag_ids", JF_ARRAY, false, 1000, false},
    {NULL, 0, false, 0, false},
};

static const json_field staff_fields[] = {
    {"employee_id", JF_INT, true, 0, false},
    {"role", JF_STRING, false, 16, false},
    {"daily_cap", JF_INT, false, 0, true},
    {"schedule", JF_STRING, false, CHANNEL_SCHEDULE_TEXT_MAX, true},
    {NULL, 0, false, 0, false},
};

static void reply_channel(http_req *r, http_resp *w, int status, int64_t id) {
    store_conn *c = store_reader_acquire(r->ctx->st);
    json_t *j = c ? channel_get_json(c, r->auth.tenant_id, id) : NULL;
    store_reader_release(r->ctx->st, c);
    if (!j)
        http_error(w, 404, "not_found", "channel %lld does not exist", (long long)id);
    else
        http_json(w, status, j);
}

static void channel_written(http_req *r, http_resp *w, int rc) {
    chan_op *op = r->user;
    if (rc == 0) tag_wecom_kick(r->ctx->ob, op->ch.kick);
    if (rc != 0)
        api_reply_write_error(w, rc, &op->ch.err);
    else if (!strcmp(r->method, "DELETE"))
        http_text(w, 204, NULL, NULL, 0);
    else
        reply_channel(r, w, !strcmp(r->method, "POST") ? 201 : 200, op->ch.id);
}

/* "staff": [{employee_id, role, daily_cap, schedule}]. false after replying. */
static bool staff_parse(http_resp *w, chan_op *op) {
    json_t *arr = json_object_get(op->body, "staff"), *v;
    if (!arr) return true;
    size_t n = json_array_size(arr), i;
    op->ch.has_staff = true;
    op->staff = calloc(n ? n : 1, sizeof *op->staff);
    if (!op->staff) {
        http_error(w, 503, "unavailable", "out of memory");
        return false;
    }
    char field[112];
    json_array_foreach(arr, i, v) {
        siyu_err e = {0};
        if (!json_is_object(v)) {
            snprintf(field, sizeof field, "staff[%zu]", i);
            return reply_invalid(w, field, "each staff entry must be an object");
        }
        if (json_fields_check(v, staff_fields, &e) != 0) {
            snprintf(field, sizeof field, "staff[%zu].%s", i, e.field);
            return reply_invalid(w, field, e.msg);
        }
        channel_staff_input *s = &op->staff[i];
        s->employee_id = json_integer_value(json_object_get(v, "employee_id"));
        const char *role = json_string_value(json_object_get(v, "role"));
        if (role && strcmp(role, "duty") != 0 && strcmp(role, "backup") != 0) {
            snprintf(field, sizeof field, "staff[%zu].role", i);
            return reply_invalid(w, field, "role must be \"duty\" or \"backup\"");
        }
        s->backup = role && !strcmp(role, "backup");
        json_t *cap = json_object_get(v, "daily_cap");
        s->has_cap = cap && !json_is_null(cap);
        s->daily_cap = json_integer_value(cap);
        s->schedule = json_string_value(json_object_get(v, "schedule"));
    }
    op->ch.staff = op->staff;
    op->ch.nstaff = n;
    return true;
}

static bool tags_parse(http_resp *w, chan_op *op) {
    json_t *arr = json_object_get(op->body, "tag_ids"), *v;
    if (!arr) return true;
    size_t n = json_array_size(arr), i;
    op->ch.has_tags = true;
    op->tags = calloc(n ? n : 1, sizeof *op->tags);
    if (!op->tags) {
        http_error(w, 503, "unavailable", "out of memory");
        return false;
    }
    json_array_foreach(arr, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            char field[32];
            snprintf(field, sizeof field, "tag_ids[%zu]", i);
            return reply_invalid(w, field, "tag ids must be positive integers");
        }
        op->tags[i] = json_integer_value(v);
    }
    op->ch.tag_ids = op->tags;
    op->ch.ntags = n;
    return true;
}

static chan_op *channel_op(http_req *r, http_resp *w) {
    json_t *body = http_body_object(r, w, channel_fields);
    if (!body) return NULL;
    chan_op *op = chan_op_new(r, w, body);
    if (!op) return NULL;
    channel_input *in = &op->ch;
    in->name = json_string_value(json_object_get(body, "name"));
    in->type = json_string_value(json_object_get(body, "type"));
    json_t *g = json_object_get(body, "group_id");
    in->has_group = g != NULL;
    in->group_id = json_integer_value(g); /* null: 0 = no group */
    if (g && !json_is_null(g) && in->group_id <= 0) {
        reply_invalid(w, "group_id", "group_id must be a positive integer or null");
        return NULL;
    }
    json_t *sv = json_object_get(body, "skip_verify");
    in->has_skip_verify = sv != NULL;
    in->skip_verify = json_is_true(sv);
    json_t *rt = json_object_get(body, "remark_template");
    in->has_remark_template = rt != NULL;
    in->remark_template = json_string_value(rt);
    json_t *dt = json_object_get(body, "description_template");
    in->has_description_template = dt != NULL;
    in->description_template = json_string_value(dt);
    json_t *cap = json_object_get(body, "daily_cap");
    in->has_daily_cap = cap != NULL;
    in->daily_cap = json_integer_value(cap);
    if (!staff_parse(w, op) || !tags_parse(w, op)) return NULL;
    return op;
}

static void channels_create(http_req *r, http_resp *w) {
    chan_op *op = channel_op(r, w);
    if (!op) return;
    if (!op->ch.name) {
        reply_invalid(w, "name", "field 'name' is required");
        return;
    }
    if (!op->ch.has_staff) {
        reply_invalid(w, "staff", "field 'staff' is required");
        return;
    }
    http_write(r, w, channel_create, &op->ch, channel_written);
}

static void channels_update(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    chan_op *op = channel_op(r, w);
    if (!op) return;
    op->ch.id = id;
    http_write(r, w, channel_update, &op->ch, channel_written);
}

static void channels_delete(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    chan_op *op = chan_op_new(r, w, NULL);
    if (!op) return;
    op->ch.id = id;
    http_write(r, w, channel_delete, &op->ch, channel_written);
}

static void channels_get(http_req *r, http_resp *w) {
    int64_t id;
    if (http_param_id(r, w, 0, &id)) reply_channel(r, w, 200, id);
}

static void channels_list_read(http_req *r, http_resp *w, store_conn *c) {
    channel_filter f = {.limit = PAGE_DEFAULT};
    const char *lim = http_query(r, "limit"), *cur = http_query(r, "cursor");
    const char *grp = http_query(r, "group_id"), *status = http_query(r, "status");
    int64_t v;
    if (lim) {
        if (!parse_i64(lim, &v) || v < 1) {
            reply_invalid(w, "limit", "limit must be a positive integer");
            return;
        }
        f.limit = v > PAGE_MAX ? PAGE_MAX : (int)v;
    }
    if (cur && (!parse_i64(cur, &f.after_id) || f.after_id < 0)) {
        reply_invalid(w, "cursor", "cursor is not one this server gave out");
        return;
    }
    if (grp && (!parse_i64(grp, &f.group_id) || f.group_id <= 0)) {
        reply_invalid(w, "group_id", "group_id must be a positive integer");
        return;
    }
    if (status && strcmp(status, "active") != 0 && strcmp(status, "deleted") != 0 &&
        strcmp(status, "all") != 0) {
        reply_invalid(w, "status", "status must be active, deleted or all");
        return;
    }
    f.status = status;
    json_t *items = json_array();
    if (channel_list(c, r->auth.tenant_id, &f, items) != 0) {
        json_decref(items);
        http_error(w, 500, "internal", "query failed");
        return;
    }
    char next[24];
    snprintf(next, sizeof next, "%lld", (long long)f.next);
    http_json(w, 200,
              json_pack("{s:o,s:o}", "items", items, "next_cursor",
                        f.next ? json_string(next) : json_null()));
}

static void channels_list(http_req *r, http_resp *w) {
    api_read(r, w, channels_list_read);
}

/* ---- rosters and statistics -------------------------------------------- */

static void roster_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t id, at = siyu_now();
    if (!http_param_id(r, w, 0, &id)) return;
    const char *q = http_query(r, "at");
    if (q && (!parse_i64(q, &at) || at < 0 || at > 253402300799LL)) {
        reply_invalid(w, "at", "at must be a Unix time in seconds");
        return;
    }
    json_t *users = NULL, *detail = NULL;
    int rc = channel_roster(c, r->auth.tenant_id, id, at, &users, &detail);
    json_decref(users);
    if (rc == SIYU_ENOTFOUND)
        http_error(w, 404, "not_found", "channel %lld does not exist", (long long)id);
    else if (rc != 0 || !detail)
        http_error(w, 500, "internal", "query failed");
    else
        http_json(w, 200, detail);
}

static void channels_roster(http_req *r, http_resp *w) {
    api_read(r, w, roster_read);
}

/* ?from=&to= (YYYY-MM-DD, tenant time zone, inclusive); default: the last
 * 30 days up to today. false after replying. */
static bool stats_range(http_req *r, http_resp *w, store_conn *c, int64_t *from, int64_t *to) {
    int off;
    if (channel_tenant_offset(c, r->auth.tenant_id, &off) != 0) {
        http_error(w, 500, "internal", "query failed");
        return false;
    }
    channel_local lt;
    channel_local_of(siyu_now(), off, &lt);
    const char *f = http_query(r, "from"), *t = http_query(r, "to");
    *to = lt.day;
    if (t && !channel_day_parse(t, to))
        return reply_invalid(w, "to", "to must be a date YYYY-MM-DD");
    *from = *to - (STATS_DEFAULT_DAYS - 1);
    if (f && !channel_day_parse(f, from))
        return reply_invalid(w, "from", "from must be a date YYYY-MM-DD");
    if (*from > *to) return reply_invalid(w, "from", "from must not be after to");
    if (*to - *from + 1 > CHANNEL_STATS_DAYS_MAX)
        return reply_invalid(w, "from", "the range is at most 366 days");
    return true;
}

static void stats_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t id = 0, from, to;
    if (r->route->data && !http_param_id(r, w, 0, &id)) return;
    if (!stats_range(r, w, c, &from, &to)) return;
    bool notfound = false;
    json_t *j = channel_stats_json(c, r->auth.tenant_id, id, from, to, siyu_now(), &notfound);
    if (notfound)
        http_error(w, 404, "not_found", "channel %lld does not exist", (long long)id);
    else if (!j)
        http_error(w, 500, "internal", "query failed");
    else
        http_json(w, 200, j);
}

static void channels_stats(http_req *r, http_resp *w) {
    api_read(r, w, stats_read);
}

static const int one_channel = 1;

const http_route api_channel_routes[] = {
    {"GET", "/api/v1/channel-groups", groups_list, ROLES_TENANT,
     "List channel groups (reporting groups of channel QR codes)", 0},
    {"POST", "/api/v1/channel-groups", groups_create, ROLES_OFFICE,
     "Create a channel group (name unique in the tenant)", 0},
    {"GET", "/api/v1/channel-groups/{id}", groups_get, ROLES_TENANT, "Get a channel group", 0},
    {"PATCH", "/api/v1/channel-groups/{id}", groups_update, ROLES_OFFICE,
     "Rename, describe or reorder a channel group", 0},
    {"DELETE", "/api/v1/channel-groups/{id}", groups_delete, ROLES_OFFICE,
     "Delete a channel group (its channels become ungrouped)", 0},
    {"GET", "/api/v1/channels/stats", channels_stats, ROLES_TENANT,
     "Statistics of every channel by day (?from=&to= YYYY-MM-DD, tenant time zone): adds, "
     "deletions by customer and by employee within 1/7/30 days, net, retention; per group, "
     "tenant totals and unattributed adds",
     0},
    {"GET", "/api/v1/channels", channels_list, ROLES_TENANT,
     "List channels (?group_id=, ?status=active|deleted|all, ?limit=, ?cursor=)", 0},
    {"POST", "/api/v1/channels", channels_create, ROLES_OFFICE,
     "Create a channel QR code: creates the WeCom contact way (add_contact_way) with a "
     "generated state; staff with roles, daily caps and schedules; auto-tags",
     0},
    {"GET", "/api/v1/channels/{id}", channels_get, ROLES_TENANT,
     "Get a channel with its staff, auto-tags, state, config_id and QR code", 0},
    {"PATCH", "/api/v1/channels/{id}", channels_update, ROLES_OFFICE,
     "Change a channel's settings, staff (replaced) or auto-tags (replaced); pushes "
     "update_contact_way when WeCom's view changes",
     0},
    {"DELETE", "/api/v1/channels/{id}", channels_delete, ROLES_OFFICE,
     "Delete a channel: removes the WeCom contact way (del_contact_way); its statistics stay", 0},
    {"GET", "/api/v1/channels/{id}/stats", channels_stats, ROLES_TENANT,
     "Statistics of one channel by day (?from=&to=)", 0, NULL, &one_channel},
    {"GET", "/api/v1/channels/{id}/roster", channels_roster, ROLES_TENANT,
     "Who the code routes to now (or ?at= a Unix time) and why, per staff member", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
