/* api_tag_rule.c — auto-tag rules (F6) as data: /api/v1/tag-rules CRUD
 * (store/tag_rule.h; docs/WELCOME.md "Auto-tag rules"). Admin and operator
 * only, as for tags. A rule shows its hit count and last hit.
 *
 * Ownership: a write's op (with the parsed body its input borrows from)
 * hangs on r->user. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "store/tag_rule.h"

typedef struct rule_op {
    json_t *body;
    char actor[32];
    tag_rule_input in;
} rule_op;

static void rule_op_free(void *p) {
    rule_op *op = p;
    json_decref(op->body);
    json_decref(op->in.result);
    free(op);
}

static void list_read(http_req *r, http_resp *w, store_conn *c) {
    json_t *items = json_array();
    if (tag_rule_list(c, r->auth.tenant_id, items) != 0) {
        json_decref(items);
        http_error(w, 500, "internal", "query failed");
        return;
    }
    http_json(w, 200, json_pack("{s:o}", "items", items));
}

static void list(http_req *r, http_resp *w) {
    api_read(r, w, list_read);
}

static void get_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    json_t *j = tag_rule_get_json(c, r->auth.tenant_id, id);
    if (!j)
        http_error(w, 404, "not_found", "tag rule %lld not found", (long long)id);
    else
        http_json(w, 200, j);
}

static void get(http_req *r, http_resp *w) {
    api_read(r, w, get_read);
}

static void write_done(http_req *r, http_resp *w, int rc) {
    rule_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->in.err);
        return;
    }
    if (!op->in.result) {
        http_json(w, 200, json_pack("{s:I,s:b}", "id", (json_int_t)op->in.id, "deleted", 1));
        return;
    }
    json_t *j = op->in.result;
    op->in.result = NULL;
    http_json(w, !strcmp(r->method, "POST") ? 201 : 200, j);
}

static void rule_write(http_req *r, http_resp *w, store_write_fn fn, bool with_body, bool with_id) {
    int64_t id = 0;
    if (with_id && !http_param_id(r, w, 0, &id)) return;
    json_t *body = NULL;
    if (with_body && !(body = http_body_object(r, w, NULL))) return;
    rule_op *op = api_op_new(r, w, sizeof *op, body, rule_op_free);
    if (!op) return;
    op->body = body;
    api_actor(r, op->actor);
    op->in = (tag_rule_input){
        .tenant_id = r->auth.tenant_id, .id = id, .body = body, .actor = op->actor};
    http_write(r, w, fn, &op->in, write_done);
}

static void create(http_req *r, http_resp *w) {
    rule_write(r, w, tag_rule_create, true, false);
}

static void replace(http_req *r, http_resp *w) {
    rule_write(r, w, tag_rule_replace, true, true);
}

static void remove_rule(http_req *r, http_resp *w) {
    rule_write(r, w, tag_rule_delete, false, true);
}

const http_route api_tag_rule_routes[] = {
    {"GET", "/api/v1/tag-rules", list, ROLES_OFFICE, "Auto-tag rules with their hit counts", 0},
    {"POST", "/api/v1/tag-rules", create, ROLES_OFFICE,
     "Create an auto-tag rule {name, trigger (channel|group_join|keyword|event_count|stage), "
     "params, tag_ids, enabled}",
     0},
    {"GET", "/api/v1/tag-rules/{id}", get, ROLES_OFFICE, "One auto-tag rule", 0},
    {"PUT", "/api/v1/tag-rules/{id}", replace, ROLES_OFFICE,
     "Replace an auto-tag rule (same body as POST)", 0},
    {"DELETE", "/api/v1/tag-rules/{id}", remove_rule, ROLES_OFFICE, "Delete an auto-tag rule", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
