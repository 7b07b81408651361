/* api_welcome.c — the tenant's default welcome message (GET/PUT
 * /api/v1/welcome) and the log of welcome deliveries (a thin view over the
 * send_welcome_msg rows of the outbox). Admin and operator only.
 *
 * Ownership: a PUT's welcome_op (with the parsed body its input borrows
 * from) hangs on r->user. */
#include <stdlib.h>

#include "api/api.h"
#include "outbox/welcome.h"

static void get_read(http_req *r, http_resp *w, store_conn *c) {
    json_t *j = welcome_config_json(c, r->auth.tenant_id);
    if (!j)
        http_error(w, 500, "internal", "query failed");
    else
        http_json(w, 200, j);
}

static void get(http_req *r, http_resp *w) {
    api_read(r, w, get_read);
}

typedef struct welcome_op {
    json_t *body;
    char actor[32];
    welcome_input in;
} welcome_op;

static void welcome_op_free(void *p) {
    welcome_op *op = p;
    json_decref(op->body);
    free(op);
}

static const json_field put_fields[] = {
    {"text", JF_STRING, true, WELCOME_TEXT_MAX, false},
    {"enabled", JF_BOOL, false, 0, false},
    {NULL, 0, false, 0, false},
};

static void put_done(http_req *r, http_resp *w, int rc) {
    welcome_op *op = r->user;
    if (rc != 0)
        api_reply_write_error(w, rc, &op->in.err);
    else
        api_read(r, w, get_read);
}

static void put(http_req *r, http_resp *w) {
    json_t *body = http_body_object(r, w, put_fields);
    if (!body) return;
    welcome_op *op = api_op_new(r, w, sizeof *op, body, welcome_op_free);
    if (!op) return;
    op->body = body;
    api_actor(r, op->actor);
    json_t *en = json_object_get(body, "enabled");
    op->in = (welcome_input){.tenant_id = r->auth.tenant_id,
                             .text = json_string_value(json_object_get(body, "text")),
                             .enabled = en ? json_is_true(en) : true,
                             .actor = op->actor};
    http_write(r, w, welcome_config_set, &op->in, put_done);
}

static void log_read(http_req *r, http_resp *w, store_conn *c) {
    int limit;
    int64_t before, next;
    if (!api_outbox_page(r, w, &limit, &before)) return;
    json_t *items = json_array();
    if (welcome_log(c, r->auth.tenant_id, before, limit, items, &next) != 0) {
        json_decref(items);
        http_error(w, 500, "internal", "query failed");
        return;
    }
    http_json(w, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", api_outbox_next(next)));
}

static void log_list(http_req *r, http_resp *w) {
    api_read(r, w, log_read);
}

const http_route api_welcome_routes[] = {
    {"GET", "/api/v1/welcome", get, ROLES_OFFICE, "The tenant's default welcome message", 0},
    {"PUT", "/api/v1/welcome", put, ROLES_OFFICE,
     "Set the default welcome message {text (1..4000 bytes), enabled}", 0},
    {"GET", "/api/v1/welcome/log", log_list, ROLES_OFFICE,
     "Recent welcome messages with their delivery state (?cursor=, ?limit=)", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
