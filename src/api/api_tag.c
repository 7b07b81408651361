/* api_tag.c — tag groups, tags and bulk tagging of customers (F6, internal
 * tags). Reads are open to every tenant role (the tag catalogue is not
 * customer data); catalogue writes need admin or operator; bulk tag/untag is
 * open to every tenant role but limited to the customers the token may see
 * (checked inside the write step by tag_bulk_apply).
 *
 * WeCom corp tags: a group created with "wecom": true holds WeCom tags; the
 * write steps queue the matching WeCom calls (store/tag_wecom.h) and each
 * handler kicks the outbox lanes they wrote to once the write committed.
 *
 * Ownership: one tag_op per write request hangs on r->user and owns the
 * parsed body (whose strings the input structs borrow) and the id lists. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "store/tag.h"
#include "store/tag_wecom.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 500
#define SORT_ORDER_LIMIT 1000000000LL
#define TAG_GROUP_CREATE_TAGS_MAX 100

typedef struct tag_op {
    json_t *body;
    char actor[32];
    tag_group_input group;
    tag_input tag;
    tag_bulk bulk;
    char *tag_ids, *customer_ids; /* JSON array texts for the bulk step */
    const char **tag_names;       /* group create: borrowed from body */
} tag_op;

static void tag_op_free(void *p) {
    tag_op *op = p;
    json_decref(op->body);
    free(op->tag_ids);
    free(op->customer_ids);
    free(op->tag_names);
    free(op);
}

/* Takes body; NULL (after replying 503) when out of memory. */
static tag_op *tag_op_new(http_req *r, http_resp *w, json_t *body) {
    tag_op *op = api_op_new(r, w, sizeof *op, body, tag_op_free);
    if (!op) return NULL;
    op->body = body;
    api_actor(r, op->actor);
    op->group.tenant_id = op->tag.tenant_id = r->auth.tenant_id;
    op->group.actor = op->tag.actor = op->bulk.actor = op->actor;
    return op;
}

static const char *body_str(const json_t *body, const char *key) {
    return json_string_value(json_object_get(body, key));
}

/* Reads an optional sort_order; false after replying 400. */
static bool body_sort_order(const json_t *body, http_resp *w, bool *has, int64_t *v) {
    json_t *j = json_object_get(body, "sort_order");
    *has = j != NULL;
    if (!j) return true;
    *v = json_integer_value(j);
    if (*v < -SORT_ORDER_LIMIT || *v > SORT_ORDER_LIMIT) {
        siyu_err e;
        siyu_err_set(&e, SIYU_EINVAL, "sort_order", "sort_order must be within +/-%lld",
                     SORT_ORDER_LIMIT);
        http_error_err(w, &e);
        return false;
    }
    return true;
}

/* ---- paging ----------------------------------------------------------- */

/* Replies 400 naming field; returns false for the caller to pass on. */
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

/* ?limit= and ?cursor= ("<sort_order>.<id>", opaque to clients). */
static bool page_parse(http_req *r, http_resp *w, tag_page *pg) {
    memset(pg, 0, sizeof *pg);
    pg->limit = PAGE_DEFAULT;
    const char *lim = http_query(r, "limit"), *cur = http_query(r, "cursor");
    int64_t v;
    if (lim) {
        if (!parse_i64(lim, &v) || v < 1)
            return reply_invalid(w, "limit", "limit must be a positive integer");
        pg->limit = v > PAGE_MAX ? PAGE_MAX : (int)v;
    }
    if (cur) {
        char buf[48];
        const char *dot = strchr(cur, '.');
        if (!dot || (size_t)(dot - cur) >= sizeof buf)
            return reply_invalid(w, "cursor", "cursor is not one this server gave out");
        memcpy(buf, cur, (size_t)(dot - cur));
        buf[dot - cur] = 0;
        if (!parse_i64(buf, &pg->after_sort) || !parse_i64(dot + 1, &pg->after_id))
            return reply_invalid(w, "cursor", "cursor is not one this server gave out");
        pg->after = true;
    }
    return true;
}

static void reply_page(http_resp *w, json_t *items, const tag_page *pg) {
    json_t *next = json_null();
    if (pg->more) {
        char buf[48];
        snprintf(buf, sizeof buf, "%lld.%lld", (long long)pg->last_sort, (long long)pg->last_id);
        next = json_string(buf);
    }
    http_json(w, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", next));
}

/* ---- tag groups ------------------------------------------------------- */

static const json_field group_create_fields[] = {
    {"name", JF_STRING, true, TAG_NAME_MAX, false},
    {"sort_order", JF_INT, false, 0, false},
    {"wecom", JF_BOOL, false, 0, false},
    {"tags", JF_ARRAY, false, TAG_GROUP_CREATE_TAGS_MAX, false},
    {NULL, 0, false, 0, false},
};
static const json_field group_update_fields[] = {
    {"name", JF_STRING, false, TAG_NAME_MAX, false},
    {"sort_order", JF_INT, false, 0, false},
    {NULL, 0, false, 0, false},
};

static void reply_group(http_req *r, http_resp *w, int status, int64_t id) {
    store_conn *c = store_reader_acquire(r->ctx->st);
    json_t *j = c ? tag_group_get_json(c, r->auth.tenant_id, id) : NULL;
    store_reader_release(r->ctx->st, c);
    if (!j)
        http_error(w, 404, "not_found", "tag group %lld does not exist", (long long)id);
    else
        http_json(w, status, j);
}

static void group_created(http_req *r, http_resp *w, int rc) {
    tag_op *op = r->user;
    if (rc == 0) tag_wecom_kick(r->ctx->ob, op->group.kick);
    if (rc != 0)
        api_reply_write_error(w, rc, &op->group.err);
    else
        reply_group(r, w, 201, op->group.id);
}

static void group_updated(http_req *r, http_resp *w, int rc) {
    tag_op *op = r->user;
    if (rc == 0) tag_wecom_kick(r->ctx->ob, op->group.kick);
    if (rc != 0)
        api_reply_write_error(w, rc, &op->group.err);
    else
        reply_group(r, w, 200, op->group.id);
}

static void group_deleted(http_req *r, http_resp *w, int rc) {
    tag_op *op = r->user;
    if (rc == 0) tag_wecom_kick(r->ctx->ob, op->group.kick);
    if (rc != 0)
        api_reply_write_error(w, rc, &op->group.err);
    else
        http_text(w, 204, NULL, NULL, 0);
}

/* Parses the body and fills op->group; NULL after replying on error. */
static tag_op *group_op(http_req *r, http_resp *w, const json_field *fields) {
    json_t *body = http_body_object(r, w, fields);
    if (!body) return NULL;
    tag_op *op = tag_op_new(r, w, body);
    if (!op) return NULL;
    op->group.name = body_str(body, "name");
    op->group.wecom = json_is_true(json_object_get(body, "wecom"));
    if (!body_sort_order(body, w, &op->group.has_sort_order, &op->group.sort_order)) return NULL;
    return op;
}

/* Optional "tags": names of tags created with the group. false after
 * replying 400. */
static bool group_tag_names(http_resp *w, tag_op *op) {
    json_t *arr = json_object_get(op->body, "tags"), *v;
    size_t n = json_array_size(arr), i;
    if (n == 0) return true;
    op->tag_names = calloc(n, sizeof *op->tag_names);
    if (!op->tag_names) {
        http_error(w, 503, "unavailable", "out of memory");
        return false;
    }
    json_array_foreach(arr, i, v) {
        const char *name = json_string_value(v);
        size_t len = name ? strlen(name) : 0;
        if (len == 0 || len > TAG_NAME_MAX) {
            char field[32];
            snprintf(field, sizeof field, "tags[%zu]", i);
            return reply_invalid(w, field, "tag names must be strings of 1 to 128 bytes");
        }
        op->tag_names[i] = name;
    }
    op->group.tag_names = op->tag_names;
    op->group.ntags = n;
    return true;
}

static void groups_create(http_req *r, http_resp *w) {
    tag_op *op = group_op(r, w, group_create_fields);
    if (op && group_tag_names(w, op)) http_write(r, w, tag_group_create, &op->group, group_created);
}

static void groups_update(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    tag_op *op = group_op(r, w, group_update_fields);
    if (!op) return;
    op->group.id = id;
    http_write(r, w, tag_group_update, &op->group, group_updated);
}

static void groups_delete(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    tag_op *op = tag_op_new(r, w, NULL);
    if (!op) return;
    op->group.id = id;
    http_write(r, w, tag_group_delete, &op->group, group_deleted);
}

static void groups_get(http_req *r, http_resp *w) {
    int64_t id;
    if (http_param_id(r, w, 0, &id)) reply_group(r, w, 200, id);
}

static void groups_list_read(http_req *r, http_resp *w, store_conn *c) {
    tag_page pg;
    if (!page_parse(r, w, &pg)) return;
    json_t *items = json_array();
    if (tag_group_list(c, r->auth.tenant_id, &pg, items) != 0) {
        json_decref(items);
        http_error(w, 500, "internal", "query failed");
        return;
    }
    reply_page(w, items, &pg);
}

static void groups_list(http_req *r, http_resp *w) {
    api_read(r, w, groups_list_read);
}

/* ---- tags ------------------------------------------------------------- */

static const json_field tag_create_fields[] = {
    {"group_id", JF_INT, true, 0, false},
    {"name", JF_STRING, true, TAG_NAME_MAX, false},
    {"sort_order", JF_INT, false, 0, false},
    {"wecom", JF_BOOL, false, 0, false},
    {NULL, 0, false, 0, false},
};
static const json_field tag_update_fields[] = {
    {"group_id", JF_INT, false, 0, false},
    {"name", JF_STRING, false, TAG_NAME_MAX, false},
    {"sort_order", JF_INT, false, 0, false},
    {NULL, 0, false, 0, false},
};

static void reply_tag(http_req *r, http_resp *w, int status, int64_t id) {
    store_conn *c = store_reader_acquire(r->ctx->st);
    json_t *j = c ? tag_get_json(c, r->auth.tenant_id, id) : NULL;
    store_reader_release(r->ctx->st, c);
    if (!j)
        http_error(w, 404, "not_found", "tag %lld does not exist", (long long)id);
    else
        http_json(w, status, j);
}

static void tag_created(http_req *r, http_resp *w, int rc) {
    tag_op *op = r->user;
    if (rc == 0) tag_wecom_kick(r->ctx->ob, op->tag.kick);
    if (rc != 0)
        api_reply_write_error(w, rc, &op->tag.err);
    else
        reply_tag(r, w, 201, op->tag.id);
}

static void tag_updated(http_req *r, http_resp *w, int rc) {
    tag_op *op = r->user;
    if (rc == 0) tag_wecom_kick(r->ctx->ob, op->tag.kick);
    if (rc != 0)
        api_reply_write_error(w, rc, &op->tag.err);
    else
        reply_tag(r, w, 200, op->tag.id);
}

static void tag_deleted(http_req *r, http_resp *w, int rc) {
    tag_op *op = r->user;
    if (rc == 0) tag_wecom_kick(r->ctx->ob, op->tag.kick);
    if (rc != 0)
        api_reply_write_error(w, rc, &op->tag.err);
    else
        http_text(w, 204, NULL, NULL, 0);
}

static tag_op *tag_body_op(http_req *r, http_resp *w, const json_field *fields) {
    json_t *body = http_body_object(r, w, fields);
    if (!body) return NULL;
    tag_op *op = tag_op_new(r, w, body);
    if (!op) return NULL;
    op->tag.name = body_str(body, "name");
    json_t *wecom = json_object_get(body, "wecom");
    op->tag.has_wecom = wecom != NULL;
    op->tag.wecom = json_is_true(wecom);
    json_t *g = json_object_get(body, "group_id");
    op->tag.group_id = g ? json_integer_value(g) : 0;
    if (g && op->tag.group_id <= 0) {
        reply_invalid(w, "group_id", "group_id must be a positive integer");
        return NULL;
    }
    if (!body_sort_order(body, w, &op->tag.has_sort_order, &op->tag.sort_order)) return NULL;
    return op;
}

static void tags_create(http_req *r, http_resp *w) {
    tag_op *op = tag_body_op(r, w, tag_create_fields);
    if (op) http_write(r, w, tag_create, &op->tag, tag_created);
}

static void tags_update(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    tag_op *op = tag_body_op(r, w, tag_update_fields);
    if (!op) return;
    op->tag.id = id;
    http_write(r, w, tag_update, &op->tag, tag_updated);
}

static void tags_delete(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    tag_op *op = tag_op_new(r, w, NULL);
    if (!op) return;
    op->tag.id = id;
    http_write(r, w, tag_delete, &op->tag, tag_deleted);
}

static void tags_get(http_req *r, http_resp *w) {
    int64_t id;
    if (http_param_id(r, w, 0, &id)) reply_tag(r, w, 200, id);
}

static void tags_list_read(http_req *r, http_resp *w, store_conn *c) {
    tag_page pg;
    if (!page_parse(r, w, &pg)) return;
    const char *g = http_query(r, "group_id");
    if (g && (!parse_i64(g, &pg.group_id) || pg.group_id <= 0)) {
        reply_invalid(w, "group_id", "group_id must be a positive integer");
        return;
    }
    json_t *items = json_array();
    if (tag_list(c, r->auth.tenant_id, &pg, items) != 0) {
        json_decref(items);
        http_error(w, 500, "internal", "query failed");
        return;
    }
    reply_page(w, items, &pg);
}

static void tags_list(http_req *r, http_resp *w) {
    api_read(r, w, tags_list_read);
}

/* ---- bulk ------------------------------------------------------------- */

static const json_field bulk_fields[] = {
    {"action", JF_STRING, true, 8, false},
    {"tag_ids", JF_ARRAY, true, TAG_BULK_TAGS_MAX, false},
    {"customer_ids", JF_ARRAY, true, TAG_BULK_CUSTOMERS_MAX, false},
    {NULL, 0, false, 0, false},
};

/* Checks a non-empty array of positive integers and returns it as compact
 * JSON text (malloc'd); NULL after replying 400. */
static char *id_list(http_resp *w, const json_t *body, const char *key, size_t *n) {
    json_t *arr = json_object_get(body, key), *v;
    size_t i;
    char field[48];
    *n = json_array_size(arr);
    if (*n == 0) {
        snprintf(field, sizeof field, "%s", key);
        reply_invalid(w, field, "the list must not be empty");
        return NULL;
    }
    json_array_foreach(arr, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            snprintf(field, sizeof field, "%s[%zu]", key, i);
            reply_invalid(w, field, "ids must be positive integers");
            return NULL;
        }
    }
    char *text = json_dumps(arr, JSON_COMPACT);
    if (!text) http_error(w, 503, "unavailable", "out of memory");
    return text;
}

static void bulk_done(http_req *r, http_resp *w, int rc) {
    tag_op *op = r->user;
    if (rc == 0) tag_wecom_kick(r->ctx->ob, op->bulk.kick);
    if (rc != 0)
        api_reply_write_error(w, rc, &op->bulk.err);
    else
        http_json(w, 200,
                  json_pack("{s:I,s:I}", "changed", (json_int_t)op->bulk.changed, "wecom_pushes",
                            (json_int_t)op->bulk.pushed));
}

static void tags_bulk(http_req *r, http_resp *w) {
    json_t *body = http_body_object(r, w, bulk_fields);
    if (!body) return;
    tag_op *op = tag_op_new(r, w, body);
    if (!op) return;
    const char *action = body_str(body, "action");
    if (strcmp(action, "tag") != 0 && strcmp(action, "untag") != 0) {
        reply_invalid(w, "action", "action must be \"tag\" or \"untag\"");
        return;
    }
    tag_bulk *b = &op->bulk;
    b->untag = action[0] == 'u';
    b->auth = r->auth;
    if (!(op->tag_ids = id_list(w, body, "tag_ids", &b->ntags))) return;
    if (!(op->customer_ids = id_list(w, body, "customer_ids", &b->ncustomers))) return;
    b->tag_ids = op->tag_ids;
    b->customer_ids = op->customer_ids;
    http_write(r, w, tag_bulk_apply, b, bulk_done);
}

const http_route api_tag_routes[] = {
    {"GET", "/api/v1/tag-groups", groups_list, ROLES_TENANT, "List tag groups with their tags", 0},
    {"POST", "/api/v1/tag-groups", groups_create, ROLES_OFFICE,
     "Create a tag group (name unique in the tenant; \"wecom\": true for a WeCom corp tag group, "
     "whose tags are pushed to WeCom; \"tags\": [names] creates its first tags with it)",
     0},
    {"GET", "/api/v1/tag-groups/{id}", groups_get, ROLES_TENANT, "Get a tag group with its tags",
     0},
    {"PATCH", "/api/v1/tag-groups/{id}", groups_update, ROLES_OFFICE,
     "Rename or reorder a tag group", 0},
    {"DELETE", "/api/v1/tag-groups/{id}", groups_delete, ROLES_OFFICE,
     "Delete a tag group, its tags and their customer tags", 0},
    {"GET", "/api/v1/tags", tags_list, ROLES_TENANT, "List tags (?group_id= filters)", 0},
    {"POST", "/api/v1/tags", tags_create, ROLES_OFFICE,
     "Create a tag in a group (name unique in the group)", 0},
    {"POST", "/api/v1/tags/bulk", tags_bulk, ROLES_TENANT,
     "Tag or untag up to 10,000 customers with up to 100 tags, all or nothing, within the "
     "token's scope; returns changed",
     0},
    {"GET", "/api/v1/tags/{id}", tags_get, ROLES_TENANT, "Get a tag", 0},
    {"PATCH", "/api/v1/tags/{id}", tags_update, ROLES_OFFICE,
     "Rename, reorder or move a tag to another group", 0},
    {"DELETE", "/api/v1/tags/{id}", tags_delete, ROLES_OFFICE, "Delete a tag and its customer tags",
     0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
