/* api.c — the route list and helpers shared by the resource modules. */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const http_route *const api_all_routes[] = {
    api_system_routes,    api_tenant_routes,     api_org_routes,
    api_customer_routes,  api_tag_routes,        api_tag_rule_routes,
    api_channel_routes,   api_event_routes,      api_group_routes,
    api_outbox_routes,    api_welcome_routes,    api_transfer_routes,
    api_sync_routes,      api_segment_routes,    api_inherit_routes,
    api_groupchat_routes, wecom_callback_routes, NULL,
};

void api_actor(const http_req *r, char out[32]) {
    snprintf(out, 32, "token:%lld", (long long)r->auth.token_id);
}

void *api_op_new(http_req *r, http_resp *w, size_t size, json_t *body, void (*free_fn)(void *)) {
    void *op = calloc(1, size);
    if (!op) {
        json_decref(body);
        http_error(w, 503, "unavailable", "out of memory");
        return NULL;
    }
    r->user = op;
    r->user_free = free_fn;
    return op;
}

void api_read(http_req *r, http_resp *w, void (*fn)(http_req *, http_resp *, store_conn *)) {
    store_conn *c = store_reader_acquire(r->ctx->st);
    if (!c) {
        http_error(w, 503, "unavailable", "store unavailable");
        return;
    }
    fn(r, w, c);
    store_reader_release(r->ctx->st, c);
}

void api_reply_write_error(http_resp *w, int rc, const siyu_err *err) {
    siyu_err e = *err;
    if (!e.code || e.code != rc) {
        /* The step failed without detail (e.g. a commit error). */
        if (!e.msg[0])
            snprintf(e.msg, sizeof e.msg, "%s",
                     rc == SIYU_ECONFLICT ? "conflicts with an existing record"
                                          : siyu_strerror(rc));
        e.code = rc;
    }
    http_error_err(w, &e);
}

static json_t *op_for(const http_route *rt) {
    json_t *op = json_object();
    json_object_set_new(op, "summary", json_string(rt->summary ? rt->summary : ""));
    json_t *roles = json_array();
    static const int all[] = {ROLE_PLATFORM, ROLE_ADMIN,    ROLE_OPERATOR,
                              ROLE_MANAGER,  ROLE_EMPLOYEE, ROLE_PUBLIC};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (rt->roles & (unsigned)all[i])
            json_array_append_new(roles, json_string(http_role_name(all[i])));
    json_object_set_new(op, "x-roles", roles);
    if (!(rt->roles & ROLE_PUBLIC))
        json_object_set_new(op, "security", json_pack("[{s:[]}]", "bearer"));
    json_t *params = json_array();
    for (const char *p = strchr(rt->path, '{'); p; p = strchr(p + 1, '{')) {
        const char *e = strchr(p, '}');
        json_array_append_new(params, json_pack("{s:s%,s:s,s:b,s:{s:s}}", "name", p + 1,
                                                (size_t)(e - p - 1), "in", "path", "required", 1,
                                                "schema", "type", "string"));
    }
    json_object_set_new(op, "parameters", params);
    if (!strcmp(rt->method, "POST") || !strcmp(rt->method, "PUT") || !strcmp(rt->method, "PATCH")) {
        const char *mt = rt->body_type ? rt->body_type : "application/json";
        json_object_set_new(op, "requestBody",
                            json_pack("{s:{s:{s:{s:s}}}}", "content", mt, "schema", "type",
                                      strstr(mt, "json") ? "object" : "string"));
    }
    json_object_set_new(op, "responses",
                        json_pack("{s:{s:s},s:{s:s,s:{s:{s:{s:s}}}}}", "200", "description",
                                  "success", "default", "description", "error", "content",
                                  "application/json", "schema", "$ref",
                                  "#/components/schemas/Error"));
    return op;
}

json_t *api_openapi(http_server *s) {
    json_t *paths = json_object();
    for (int i = 0; i < http_route_count(s); i++) {
        const http_route *rt = http_route_at(s, i);
        json_t *item = json_object_get(paths, rt->path);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, rt->path, item);
        }
        char m[16];
        size_t k = 0;
        for (; rt->method[k] && k < sizeof m - 1; k++)
            m[k] = (char)(rt->method[k] | 0x20);
        m[k] = 0;
        json_object_set_new(item, m, op_for(rt));
    }
    return json_pack("{s:s,s:{s:s,s:s},s:o,s:{s:{s:{s:s,s:s}},s:{s:{s:s,s:{s:{s:s,s:{s:{s:s},s:{s:"
                     "s},s:{s:s}}}}}}}}",
                     "openapi", "3.0.3", "info", "title", "Siyu API", "version", SIYU_VERSION,
                     "paths", paths, "components", "securitySchemes", "bearer", "type", "http",
                     "scheme", "bearer", "schemas", "Error", "type", "object", "properties",
                     "error", "type", "object", "properties", "code", "type", "string", "message",
                     "type", "string", "field", "type", "string");
}

/* ---- records written from a JSON body (api_json_kind) ---------------------- */

typedef struct json_op {
    json_t *body;
    char actor[32];
    store_json_input in;
} json_op;

static void json_op_free(void *p) {
    json_op *op = p;
    json_decref(op->body);
    json_decref(op->in.result);
    free(op);
}

static void json_list_read(http_req *r, http_resp *w, store_conn *c) {
    const api_json_kind *k = r->route->data;
    json_t *items = json_array();
    if (k->list(c, r->auth.tenant_id, items) != 0) {
        json_decref(items);
        http_error(w, 500, "internal", "query failed");
        return;
    }
    http_json(w, 200, json_pack("{s:o}", "items", items));
}

void api_json_list(http_req *r, http_resp *w) {
    api_read(r, w, json_list_read);
}

static void json_get_read(http_req *r, http_resp *w, store_conn *c) {
    const api_json_kind *k = r->route->data;
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    json_t *j = k->get(c, r->auth.tenant_id, id);
    if (!j)
        http_error(w, 404, "not_found", "%s %lld not found", k->noun, (long long)id);
    else
        http_json(w, 200, j);
}

void api_json_get(http_req *r, http_resp *w) {
    api_read(r, w, json_get_read);
}

static void json_written(http_req *r, http_resp *w, int rc) {
    json_op *op = r->user;
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

static void json_write(http_req *r, http_resp *w, store_write_fn fn, bool with_body, bool with_id) {
    int64_t id = 0;
    if (with_id && !http_param_id(r, w, 0, &id)) return;
    json_t *body = NULL;
    if (with_body && !(body = http_body_object(r, w, NULL))) return;
    json_op *op = api_op_new(r, w, sizeof *op, body, json_op_free);
    if (!op) return;
    op->body = body;
    api_actor(r, op->actor);
    op->in = (store_json_input){
        .tenant_id = r->auth.tenant_id, .id = id, .body = body, .actor = op->actor};
    http_write(r, w, fn, &op->in, json_written);
}

void api_json_create(http_req *r, http_resp *w) {
    json_write(r, w, ((const api_json_kind *)r->route->data)->create, true, false);
}

void api_json_replace(http_req *r, http_resp *w) {
    json_write(r, w, ((const api_json_kind *)r->route->data)->replace, true, true);
}

void api_json_delete(http_req *r, http_resp *w) {
    json_write(r, w, ((const api_json_kind *)r->route->data)->remove, false, true);
}
