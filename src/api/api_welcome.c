/* api_welcome.c — welcome messages (F5, docs/WELCOME.md): the tenant's
 * default (GET/PUT /api/v1/welcome), the rules (/api/v1/welcome-rules CRUD
 * and the preview "which welcome and why"), and the log of welcomes with
 * their outcome and counts (/api/v1/welcomes, /api/v1/welcomes/counts; the
 * older /api/v1/welcome/log is a thin view over the outbox rows). Admin and
 * operator only.
 *
 * Ownership: a write's op (with the parsed body its input borrows from)
 * hangs on r->user. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "outbox/welcome.h"
#include "outbox/welcome_rule.h"

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

/* ---- rules -------------------------------------------------------------------- */

static const api_json_kind rule_kind = {"welcome rule",        welcome_rule_list,
                                        welcome_rule_get_json, welcome_rule_create,
                                        welcome_rule_replace,  welcome_rule_delete};

/* ---- preview ------------------------------------------------------------------- */

static bool query_i64(http_req *r, http_resp *w, const char *key, int64_t *out, bool required) {
    const char *s = http_query(r, key);
    *out = 0;
    if (!s || !*s) {
        if (!required) return true;
        siyu_err e;
        siyu_err_set(&e, SIYU_EINVAL, key, "query parameter '%s' is required", key);
        http_error_err(w, &e);
        return false;
    }
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v <= 0) {
        siyu_err e;
        siyu_err_set(&e, SIYU_EINVAL, key, "query parameter '%s' must be a positive integer", key);
        http_error_err(w, &e);
        return false;
    }
    *out = v;
    return true;
}

/* employee= an id or a userid. 0 with *id, or replied. */
static bool preview_employee(http_req *r, http_resp *w, store_conn *c, int64_t *id) {
    const char *s = http_query(r, "employee");
    siyu_err e;
    if (!s || !*s || strlen(s) > 64) {
        siyu_err_set(&e, SIYU_EINVAL, "employee",
                     "query parameter 'employee' (an id or userid) "
                     "is required");
        http_error_err(w, &e);
        return false;
    }
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT id FROM employee WHERE tenant_id=?1 AND "
                                          "(userid=?2 OR CAST(id AS TEXT)=?2) LIMIT 1");
    if (!st) {
        http_error(w, 500, "internal", "query failed");
        return false;
    }
    sqlite3_bind_int64(st, 1, r->auth.tenant_id);
    store_bind_text(st, 2, s);
    int rc = store_stmt_query_id(st, id, NULL);
    if (rc == 0) return true;
    siyu_err_set(&e, rc == 1 ? SIYU_EINVAL : rc, "employee",
                 "the employee (an id or userid) is not this tenant's");
    http_error_err(w, &e);
    return false;
}

static bool exists_in(store_conn *c, const char *sql, int64_t tenant, int64_t id) {
    sqlite3_stmt *st = store_conn_stmt(c, sql);
    if (!st) return false;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    int64_t v;
    return store_stmt_query_id(st, &v, NULL) == 0;
}

static void preview_read(http_req *r, http_resp *w, store_conn *c) {
    welcome_ctx x = {0};
    if (!query_i64(r, w, "channel", &x.channel_id, false) ||
        !query_i64(r, w, "customer", &x.customer_id, false) ||
        !query_i64(r, w, "at", &x.ts, false) || !preview_employee(r, w, c, &x.employee_id))
        return;
    siyu_err e;
    if (x.channel_id && !exists_in(c, "SELECT id FROM channel WHERE tenant_id=?1 AND id=?2",
                                   r->auth.tenant_id, x.channel_id)) {
        siyu_err_set(&e, SIYU_EINVAL, "channel", "channel %lld is not this tenant's",
                     (long long)x.channel_id);
        http_error_err(w, &e);
        return;
    }
    if (x.customer_id && !exists_in(c, "SELECT id FROM customer WHERE tenant_id=?1 AND id=?2",
                                    r->auth.tenant_id, x.customer_id)) {
        siyu_err_set(&e, SIYU_EINVAL, "customer", "customer %lld is not this tenant's",
                     (long long)x.customer_id);
        http_error_err(w, &e);
        return;
    }
    if (!x.ts) x.ts = siyu_now();
    welcome_choice ch;
    int rc = welcome_choose(c, r->auth.tenant_id, &x, &ch);
    if (rc != 0) {
        http_error(w, 500, "internal", "query failed");
        return;
    }
    json_t *j = json_pack(
        "{s:s,s:o,s:o,s:O,s:O,s:{s:I,s:o,s:o,s:I}}", "source", welcome_source_name(ch.source),
        "rule_id", ch.rule_id ? json_integer(ch.rule_id) : json_null(), "rule_name",
        ch.rule_name ? json_incref(ch.rule_name) : json_null(), "message",
        ch.body ? ch.body : json_null(), "why", ch.why, "context", "employee_id",
        (json_int_t)x.employee_id, "channel_id",
        x.channel_id ? json_integer(x.channel_id) : json_null(), "customer_id",
        x.customer_id ? json_integer(x.customer_id) : json_null(), "at", (json_int_t)x.ts);
    welcome_choice_reset(&ch);
    http_json(w, 200, j);
}

static void preview(http_req *r, http_resp *w) {
    api_read(r, w, preview_read);
}

/* ---- the log with outcomes ---------------------------------------------------- */

static void welcomes_read(http_req *r, http_resp *w, store_conn *c) {
    int limit;
    int64_t before, next;
    welcome_filter f = {.outcome = http_query(r, "outcome"), .source = http_query(r, "source")};
    if (!api_outbox_page(r, w, &limit, &before) || !query_i64(r, w, "rule_id", &f.rule_id, false) ||
        !query_i64(r, w, "employee_id", &f.employee_id, false) ||
        !query_i64(r, w, "channel_id", &f.channel_id, false) ||
        !query_i64(r, w, "since", &f.since, false) || !query_i64(r, w, "until", &f.until, false))
        return;
    siyu_err e;
    if (f.outcome && !welcome_outcome_valid(f.outcome)) {
        siyu_err_set(&e, SIYU_EINVAL, "outcome", "outcome is sent, late, failed, pending or none");
        http_error_err(w, &e);
        return;
    }
    if (f.source && strcmp(f.source, "rule") && strcmp(f.source, "default") &&
        strcmp(f.source, "none")) {
        siyu_err_set(&e, SIYU_EINVAL, "source", "source is rule, default or none");
        http_error_err(w, &e);
        return;
    }
    json_t *items = json_array();
    if (welcome_list(c, r->auth.tenant_id, &f, before, limit, items, &next) != 0) {
        json_decref(items);
        http_error(w, 500, "internal", "query failed");
        return;
    }
    http_json(w, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", api_outbox_next(next)));
}

static void welcomes_list(http_req *r, http_resp *w) {
    api_read(r, w, welcomes_read);
}

static void counts_read(http_req *r, http_resp *w, store_conn *c) {
    int64_t since, until;
    if (!query_i64(r, w, "since", &since, false) || !query_i64(r, w, "until", &until, false))
        return;
    json_t *j = welcome_counts_json(c, r->auth.tenant_id, since, until);
    if (!j)
        http_error(w, 500, "internal", "query failed");
    else
        http_json(w, 200, j);
}

static void counts(http_req *r, http_resp *w) {
    api_read(r, w, counts_read);
}

const http_route api_welcome_routes[] = {
    {"GET", "/api/v1/welcome", get, ROLES_OFFICE, "The tenant's default welcome message", 0},
    {"PUT", "/api/v1/welcome", put, ROLES_OFFICE,
     "Set the default welcome message {text (1..4000 bytes), enabled}", 0},
    {"GET", "/api/v1/welcome/log", log_list, ROLES_OFFICE,
     "Recent welcome messages with their delivery state (?cursor=, ?limit=)", 0},
    {"GET", "/api/v1/welcome-rules", api_json_list, ROLES_OFFICE,
     "Welcome rules in evaluation order (priority, id)", 0, NULL, &rule_kind},
    {"POST", "/api/v1/welcome-rules", api_json_create, ROLES_OFFICE,
     "Create a welcome rule {name, priority, enabled, conditions, text, attachments}", 0, NULL,
     &rule_kind},
    {"GET", "/api/v1/welcome-rules/preview", preview, ROLES_OFFICE,
     "Which welcome a customer would get, and why (?employee=, ?channel=, ?at=, ?customer=)", 0},
    {"GET", "/api/v1/welcome-rules/{id}", api_json_get, ROLES_OFFICE, "One welcome rule", 0, NULL,
     &rule_kind},
    {"PUT", "/api/v1/welcome-rules/{id}", api_json_replace, ROLES_OFFICE,
     "Replace a welcome rule (same body as POST)", 0, NULL, &rule_kind},
    {"DELETE", "/api/v1/welcome-rules/{id}", api_json_delete, ROLES_OFFICE, "Delete a welcome rule",
     0, NULL, &rule_kind},
    {"GET", "/api/v1/welcomes", welcomes_list, ROLES_OFFICE,
     "Welcomes with the rule chosen, why, and the outcome (?outcome=, ?source=, ?rule_id=, "
     "?employee_id=, ?channel_id=, ?since=, ?until=, ?cursor=, ?limit=)",
     0},
    {"GET", "/api/v1/welcomes/counts", counts, ROLES_OFFICE,
     "Welcome outcomes counted in total and per rule (?since=, ?until=)", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
