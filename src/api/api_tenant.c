/* api_tenant.c — tenants (platform admin; a tenant admin sees its own) and
 * API tokens. Creating a tenant also creates its first admin token, shown
 * once in the response. */
#include <string.h>

#include "api/api.h"
#include "auth/auth.h"
#include "store/tenant.h"

static const json_field tenant_fields[] = {
    {"name", JF_STRING, false, 128, false},
    {"status", JF_STRING, false, 16, false},
    {"corp_id", JF_STRING, false, 64, false},
    {"callback_token", JF_STRING, false, 128, false},
    {"aes_key", JF_STRING, false, 43, false},
    {"secret", JF_STRING, false, 128, false},
    {NULL, 0, false, 0, false},
};

typedef struct tenant_op {
    tenant_input in;
    auth_token_new tok;
    json_t *body;
    char actor[32];
} tenant_op;

static void tenant_op_free(void *p) {
    tenant_op *op = p;
    json_decref(op->body);
    free(op);
}

static tenant_op *tenant_op_new(http_req *r, json_t *body) {
    tenant_op *op = calloc(1, sizeof *op);
    if (!op) return NULL;
    op->body = body;
    api_actor(r, op->actor);
    op->in.actor = op->actor;
    op->in.name = json_string_value(json_object_get(body, "name"));
    op->in.status = json_string_value(json_object_get(body, "status"));
    op->in.corp_id = json_string_value(json_object_get(body, "corp_id"));
    op->in.callback_token = json_string_value(json_object_get(body, "callback_token"));
    op->in.aes_key = json_string_value(json_object_get(body, "aes_key"));
    op->in.secret = json_string_value(json_object_get(body, "secret"));
    r->user = op;
    r->user_free = tenant_op_free;
    return op;
}

static int create_step(store_conn *c, void *arg) {
    tenant_op *op = arg;
    int rc = tenant_create(c, &op->in);
    if (rc != 0) return rc;
    op->tok.tenant_id = op->in.id;
    op->tok.role = ROLE_ADMIN;
    op->tok.label = "initial admin";
    op->tok.actor = op->actor;
    rc = auth_token_insert(c, &op->tok);
    if (rc != 0) op->in.err = op->tok.err;
    return rc;
}

static void reply_tenant(http_req *r, http_resp *w, int status, int64_t id) {
    store_conn *c = store_reader_acquire(r->ctx->st);
    json_t *j = c ? tenant_get_json(c, id) : NULL;
    store_reader_release(r->ctx->st, c);
    if (!j) {
        http_error(w, 404, "not_found", "tenant %lld does not exist", (long long)id);
        return;
    }
    tenant_op *op = r->user;
    if (op && op->tok.token[0]) json_object_set_new(j, "admin_token", json_string(op->tok.token));
    http_json(w, status, j);
}

static void create_done(http_req *r, http_resp *w, int rc) {
    tenant_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->in.err);
        return;
    }
    reply_tenant(r, w, 201, op->in.id);
}

static void tenants_create(http_req *r, http_resp *w) {
    json_t *body = http_body_object(r, w, tenant_fields);
    if (!body) return;
    if (!json_object_get(body, "name")) {
        json_decref(body);
        http_error(w, 400, "invalid", "field 'name' is required");
        return;
    }
    tenant_op *op = tenant_op_new(r, body);
    if (!op) {
        json_decref(body);
        http_error(w, 500, "internal", "out of memory");
        return;
    }
    http_write(r, w, create_step, op, create_done);
}

static void list_read(http_req *r, http_resp *w, store_conn *c) {
    (void)r;
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT tenant_id FROM tenant ORDER BY tenant_id");
    if (!st) {
        http_error(w, 500, "internal", "query failed");
        return;
    }
    json_t *items = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(items, tenant_get_json(c, sqlite3_column_int64(st, 0)));
    sqlite3_reset(st);
    http_json(w, 200, json_pack("{s:o}", "items", items));
}

static void tenants_list(http_req *r, http_resp *w) {
    api_read(r, w, list_read);
}

/* Platform sees every tenant; a tenant admin only its own (others are 404). */
static bool tenant_visible(http_req *r, http_resp *w, int64_t *id) {
    if (!http_param_id(r, w, 0, id)) return false;
    if (r->auth.role != ROLE_PLATFORM && r->auth.tenant_id != *id) {
        http_error(w, 404, "not_found", "tenant %lld does not exist", (long long)*id);
        return false;
    }
    return true;
}

static void tenants_get(http_req *r, http_resp *w) {
    int64_t id;
    if (tenant_visible(r, w, &id)) reply_tenant(r, w, 200, id);
}

static void update_done(http_req *r, http_resp *w, int rc) {
    tenant_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->in.err);
        return;
    }
    reply_tenant(r, w, 200, op->in.id);
}

static void tenants_update(http_req *r, http_resp *w) {
    int64_t id;
    if (!tenant_visible(r, w, &id)) return;
    json_t *body = http_body_object(r, w, tenant_fields);
    if (!body) return;
    tenant_op *op = tenant_op_new(r, body);
    if (!op) {
        json_decref(body);
        http_error(w, 500, "internal", "out of memory");
        return;
    }
    op->in.id = id;
    if (op->in.status && r->auth.role != ROLE_PLATFORM) {
        http_error(w, 403, "forbidden", "only the platform admin may change a tenant's status");
        return;
    }
    http_write(r, w, tenant_update, &op->in, update_done);
}

/* ---- tokens ---- */

static const json_field token_fields[] = {
    {"tenant_id", JF_INT, false, 0, false},
    {"role", JF_STRING, true, 16, false},
    {"employee_userid", JF_STRING, false, 64, false},
    {"label", JF_STRING, false, 128, false},
    {NULL, 0, false, 0, false},
};

static void token_done(http_req *r, http_resp *w, int rc) {
    tenant_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->tok.err);
        return;
    }
    http_json(w, 201, json_pack("{s:I,s:I,s:s,s:s}", "id", (json_int_t)op->tok.id, "tenant_id",
                                (json_int_t)op->tok.tenant_id, "role",
                                http_role_name(op->tok.role), "token", op->tok.token));
}

static void tokens_create(http_req *r, http_resp *w) {
    json_t *body = http_body_object(r, w, token_fields);
    if (!body) return;
    tenant_op *op = tenant_op_new(r, body);
    if (!op) {
        json_decref(body);
        http_error(w, 500, "internal", "out of memory");
        return;
    }
    json_t *tid = json_object_get(body, "tenant_id");
    int64_t tenant = r->auth.tenant_id;
    if (r->auth.role == ROLE_PLATFORM) {
        if (!tid) {
            http_error(w, 400, "invalid", "field 'tenant_id' is required for the platform token");
            return;
        }
        tenant = json_integer_value(tid);
    } else if (tid && json_integer_value(tid) != tenant) {
        http_error(w, 404, "not_found", "tenant %lld does not exist",
                   (long long)json_integer_value(tid));
        return;
    }
    int role = http_role_parse(json_string_value(json_object_get(body, "role")));
    if (!role || tenant <= 0) {
        http_error(w, 400, "invalid", "field 'role' must be admin, operator, manager or employee");
        return;
    }
    op->tok.tenant_id = tenant;
    op->tok.role = role;
    op->tok.employee_userid = json_string_value(json_object_get(body, "employee_userid"));
    op->tok.label = json_string_value(json_object_get(body, "label"));
    op->tok.actor = op->actor;
    http_write(r, w, auth_token_insert, &op->tok, token_done);
}

const http_route api_tenant_routes[] = {
    {"POST", "/api/v1/tenants", tenants_create, ROLE_PLATFORM,
     "Create a tenant (optionally with its WeCom callback config); returns its first admin token",
     0},
    {"GET", "/api/v1/tenants", tenants_list, ROLE_PLATFORM, "List tenants", 0},
    {"GET", "/api/v1/tenants/{id}", tenants_get, ROLE_PLATFORM | ROLE_ADMIN, "Get a tenant", 0},
    {"PATCH", "/api/v1/tenants/{id}", tenants_update, ROLE_PLATFORM | ROLE_ADMIN,
     "Update a tenant's name, status or WeCom callback config (corp_id, callback_token, aes_key) or API secret",
     0},
    {"POST", "/api/v1/tokens", tokens_create, ROLE_PLATFORM | ROLE_ADMIN,
     "Create an API token (shown once; only its hash is stored)", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
