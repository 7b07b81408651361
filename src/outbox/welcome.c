/* welcome.c — default welcome messages: config rows (table welcome_config)
 * and the producer of send_welcome_msg outbox rows. Everything here runs on
 * a connection handed in by the caller (the writer inside a write step, or a
 * reader for the views). */
#include "outbox/welcome.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/outbox.h"
#include "outbox/welcome_rule.h"
#include "store/audit.h"

/* The event row's customer and employee, and the channel their
 * relationship was acquired through (0 when unknown). */
static int add_facts(store_conn *c, int64_t tenant_id, int64_t event_id, welcome_ctx *x) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT coalesce(e.customer_id, 0), coalesce(e.employee_id, 0), coalesce((SELECT "
           "r.channel_id FROM relationship r WHERE r.tenant_id=e.tenant_id AND "
           "r.customer_id=e.customer_id AND r.employee_id=e.employee_id), 0) FROM event e WHERE "
           "e.tenant_id=?1 AND e.id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, event_id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        x->customer_id = sqlite3_column_int64(st, 0);
        x->employee_id = sqlite3_column_int64(st, 1);
        x->channel_id = sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : store_rc(step);
}

static int log_insert(store_conn *c, int64_t tenant_id, int64_t event_id, int64_t outbox_id,
                      const welcome_ctx *x, const welcome_choice *ch) {
    char *why = json_dumps(ch->why, JSON_COMPACT);
    sqlite3_stmt *st =
        why ? store_conn_stmt(c, "INSERT INTO welcome_log(tenant_id, event_id, outbox_id, source, "
                                 "rule_id, why, customer_id, employee_id, channel_id, created_at) "
                                 "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)")
            : NULL;
    int rc = why ? SIYU_EIO : SIYU_ENOMEM;
    if (st) {
        sqlite3_bind_int64(st, 1, tenant_id);
        sqlite3_bind_int64(st, 2, event_id);
        store_bind_opt_int(st, 3, outbox_id, outbox_id > 0);
        store_bind_text(st, 4, welcome_source_name(ch->source));
        store_bind_opt_int(st, 5, ch->rule_id, ch->rule_id > 0);
        store_bind_text(st, 6, why);
        store_bind_opt_int(st, 7, x->customer_id, x->customer_id > 0);
        store_bind_opt_int(st, 8, x->employee_id, x->employee_id > 0);
        store_bind_opt_int(st, 9, x->channel_id, x->channel_id > 0);
        sqlite3_bind_int64(st, 10, siyu_now());
        rc = store_stmt_run(st);
    }
    free(why);
    return rc;
}

static int enqueue(store_conn *c, int64_t tenant_id, const wecom_event *ev, int64_t event_id,
                   json_t *body, int64_t *outbox_id) {
    json_object_set_new(body, "welcome_code", json_string(ev->welcome_code));
    int64_t created_ms = ev->create_time > 0 ? ev->create_time * 1000 : siyu_now() * 1000;
    char origin[48], ref[40];
    snprintf(origin, sizeof origin, "welcome:event:%lld", (long long)event_id);
    snprintf(ref, sizeof ref, "event:%lld", (long long)event_id);
    outbox_item it = {.tenant_id = tenant_id,
                      .kind = "send_welcome_msg",
                      .body = body,
                      .lane = OUTBOX_LANE_URGENT,
                      .deadline_ms = created_ms + WELCOME_WINDOW_MS,
                      .origin = origin,
                      .ref = ref};
    siyu_err err = {0};
    int rc = outbox_enqueue(c, &it, outbox_id, &err);
    if (rc != 0 || created_ms + WELCOME_WINDOW_MS > siyu_now() * 1000) return rc;
    /* The callback came after WeCom's window (a late retry, a replayed
     * history): record the welcome as missed at once instead of handing a
     * worker a row it can only declare dead. */
    sqlite3_stmt *st = store_conn_stmt(c, "UPDATE outbox SET state='dead', errcode=41050, error='"
                                          "welcome_code_expired: the add arrived after the 20 s "
                                          "window', updated_at=?2 WHERE id=?1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, *outbox_id);
    sqlite3_bind_int64(st, 2, siyu_now());
    return store_stmt_run(st);
}

int welcome_on_event(store_conn *c, int64_t tenant_id, const wecom_event *ev, int64_t event_id,
                     int64_t *outbox_id) {
    *outbox_id = 0;
    if (ev->kind != WECOM_EV_ADD_EXTERNAL_CONTACT && ev->kind != WECOM_EV_ADD_HALF_EXTERNAL_CONTACT)
        return 0;
    if (!ev->welcome_code || !*ev->welcome_code) return 0;
    welcome_ctx x = {.ts = ev->create_time > 0 ? ev->create_time : siyu_now()};
    int rc = add_facts(c, tenant_id, event_id, &x);
    welcome_choice ch;
    if (rc == 0) rc = welcome_choose(c, tenant_id, &x, &ch);
    if (rc != 0) return rc;
    if (ch.body) rc = enqueue(c, tenant_id, ev, event_id, ch.body, outbox_id);
    if (rc == 0) rc = log_insert(c, tenant_id, event_id, *outbox_id, &x, &ch);
    welcome_choice_reset(&ch);
    return rc;
}

json_t *welcome_config_json(store_conn *c, int64_t tenant_id) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT text, enabled, updated_at FROM welcome_config WHERE tenant_id=?1");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    int rc = sqlite3_step(st);
    json_t *j = NULL;
    if (rc == SQLITE_ROW)
        j = json_pack("{s:s,s:b,s:I}", "text", (const char *)sqlite3_column_text(st, 0), "enabled",
                      sqlite3_column_int(st, 1) != 0, "updated_at",
                      (json_int_t)sqlite3_column_int64(st, 2));
    else if (rc == SQLITE_DONE)
        j = json_pack("{s:n,s:b,s:n}", "text", "enabled", 0, "updated_at");
    sqlite3_reset(st);
    return j;
}

int welcome_config_set(store_conn *c, void *arg) {
    welcome_input *in = arg;
    size_t n = in->text ? strlen(in->text) : 0;
    if (n < 1 || n > WELCOME_TEXT_MAX)
        return siyu_err_set(&in->err, SIYU_EINVAL, "text", "text must be 1 to %d bytes",
                            WELCOME_TEXT_MAX);
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT INTO welcome_config(tenant_id, text, enabled, updated_at, updated_by)"
           " VALUES(?1,?2,?3,?4,?5) ON CONFLICT(tenant_id) DO UPDATE SET text=excluded.text,"
           " enabled=excluded.enabled, updated_at=excluded.updated_at,"
           " updated_by=excluded.updated_by");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    store_bind_text(st, 2, in->text);
    sqlite3_bind_int(st, 3, in->enabled);
    sqlite3_bind_int64(st, 4, siyu_now());
    store_bind_text(st, 5, in->actor);
    int rc = store_stmt_run(st);
    if (rc != 0) return rc;
    return store_audit(c, in->tenant_id, in->actor, "welcome.update", "welcome", 1,
                       in->enabled ? "enabled" : "disabled");
}

static json_t *log_row(sqlite3_stmt *st) {
    return json_pack("{s:I,s:o,s:o,s:o,s:i,s:o,s:o,s:o,s:o,s:o}", "id",
                     (json_int_t)sqlite3_column_int64(st, 0), "state", outbox__col_str(st, 1),
                     "errcode", outbox__col_int(st, 2), "error", outbox__col_str(st, 3), "attempts",
                     sqlite3_column_int(st, 4), "created_at", outbox__col_int(st, 5), "sent_at",
                     outbox__col_int(st, 6), "event_id", outbox__col_int(st, 7), "external_userid",
                     outbox__col_str(st, 8), "userid", outbox__col_str(st, 9));
}

int welcome_log(store_conn *c, int64_t tenant_id, int64_t before, int limit, json_t *items,
                int64_t *next) {
    *next = 0;
    /* ref is "event:<id>" (welcome_on_event); the event row names the pair. */
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT o.id, o.state, o.errcode, o.error, o.attempts, o.created_at, o.sent_at,"
           " e.id, cu.external_userid, em.userid"
           " FROM outbox o"
           " LEFT JOIN event e ON e.tenant_id = o.tenant_id"
           "  AND e.id = CAST(substr(o.ref, 7) AS INTEGER) AND o.ref LIKE 'event:%'"
           " LEFT JOIN customer cu ON cu.id = e.customer_id"
           " LEFT JOIN employee em ON em.id = e.employee_id"
           " WHERE o.tenant_id=?1 AND o.kind='send_welcome_msg' AND o.id < ?2"
           " ORDER BY o.id DESC LIMIT ?3");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int(st, 3, limit + 1);
    return outbox__page(st, limit, log_row, items, next);
}

/* ---- the welcome log with outcomes (GET /api/v1/welcomes) ------------------- */

/* The outcome of a welcome_log row l from its outbox row o. */
#define OUTCOME_SQL                                                                                \
    "CASE WHEN l.outbox_id IS NULL THEN 'none' WHEN o.state='sent' THEN 'sent' "                   \
    "WHEN o.state='dead' AND (o.errcode=41050 OR o.error LIKE 'welcome_code_expired%') "           \
    "THEN 'late' WHEN o.state IN ('dead','cancelled') THEN 'failed' ELSE 'pending' END"

bool welcome_outcome_valid(const char *s) {
    static const char *const names[] = {"sent", "late", "failed", "pending", "none", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], s)) return true;
    return false;
}

static json_t *list_row(sqlite3_stmt *st) {
    const char *why = (const char *)sqlite3_column_text(st, 5);
    json_t *w = why ? json_loads(why, 0, NULL) : NULL;
    return json_pack("{s:I,s:I,s:I,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:s,s:o,s:o,s:o,s:o}", "id",
                     (json_int_t)sqlite3_column_int64(st, 0), "event_id",
                     (json_int_t)sqlite3_column_int64(st, 1), "created_at",
                     (json_int_t)sqlite3_column_int64(st, 2), "source",
                     (const char *)sqlite3_column_text(st, 3), "rule_id", outbox__col_int(st, 4),
                     "why", w ? w : json_array(), "rule_name", outbox__col_str(st, 6),
                     "customer_id", outbox__col_int(st, 7), "employee_id", outbox__col_int(st, 8),
                     "channel_id", outbox__col_int(st, 9), "outbox_id", outbox__col_int(st, 10),
                     "outcome", (const char *)sqlite3_column_text(st, 11), "errcode",
                     outbox__col_int(st, 12), "error", outbox__col_str(st, 13), "sent_at",
                     outbox__col_int(st, 14), "attempts", outbox__col_int(st, 15));
}

int welcome_list(store_conn *c, int64_t tenant_id, const welcome_filter *f, int64_t before,
                 int limit, json_t *items, int64_t *next) {
    *next = 0;
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT * FROM (SELECT l.id, l.event_id, l.created_at, l.source, l.rule_id, l.why, "
           "r.name, l.customer_id, l.employee_id, l.channel_id, l.outbox_id, " OUTCOME_SQL
           " AS outcome, o.errcode, o.error, o.sent_at, o.attempts FROM welcome_log l "
           "LEFT JOIN outbox o ON o.id=l.outbox_id LEFT JOIN welcome_rule r ON r.id=l.rule_id "
           "WHERE l.tenant_id=?1 AND l.id < ?2 AND (?3 IS NULL OR l.rule_id=?3) AND (?4 IS NULL "
           "OR l.employee_id=?4) AND (?5 IS NULL OR l.channel_id=?5) AND (?6 IS NULL OR "
           "l.created_at >= ?6) AND (?7 IS NULL OR l.created_at < ?7) AND (?8 IS NULL OR "
           "l.source=?8)) WHERE (?9 IS NULL OR outcome=?9) ORDER BY id DESC LIMIT ?10");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX);
    store_bind_opt_int(st, 3, f->rule_id, f->rule_id > 0);
    store_bind_opt_int(st, 4, f->employee_id, f->employee_id > 0);
    store_bind_opt_int(st, 5, f->channel_id, f->channel_id > 0);
    store_bind_opt_int(st, 6, f->since, f->since > 0);
    store_bind_opt_int(st, 7, f->until, f->until > 0);
    store_bind_text(st, 8, f->source);
    store_bind_text(st, 9, f->outcome);
    sqlite3_bind_int(st, 10, limit + 1);
    return outbox__page(st, limit, list_row, items, next);
}

json_t *welcome_counts_json(store_conn *c, int64_t tenant_id, int64_t since, int64_t until) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT l.source, l.rule_id, r.name, " OUTCOME_SQL " AS outcome, count(*) FROM "
           "welcome_log l LEFT JOIN outbox o ON o.id=l.outbox_id LEFT JOIN welcome_rule r ON "
           "r.id=l.rule_id WHERE l.tenant_id=?1 AND (?2 IS NULL OR l.created_at >= ?2) AND (?3 "
           "IS NULL OR l.created_at < ?3) GROUP BY 1, 2, 4 ORDER BY 1, 2");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    store_bind_opt_int(st, 2, since, since > 0);
    store_bind_opt_int(st, 3, until, until > 0);
    static const char *const outcomes[] = {"sent", "late", "failed", "pending", "none", NULL};
    json_t *total = json_object(), *by = json_array(), *cur = NULL;
    for (int i = 0; outcomes[i]; i++)
        json_object_set_new(total, outcomes[i], json_integer(0));
    int64_t all = 0;
    int step;
    char cur_key[48] = "";
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *source = (const char *)sqlite3_column_text(st, 0);
        char key[48];
        snprintf(key, sizeof key, "%s:%lld", source, (long long)sqlite3_column_int64(st, 1));
        if (!cur || strcmp(key, cur_key)) {
            cur =
                json_pack("{s:s,s:o,s:o,s:I}", "source", source, "rule_id", outbox__col_int(st, 1),
                          "rule_name", outbox__col_str(st, 2), "total", (json_int_t)0);
            for (int i = 0; outcomes[i]; i++)
                json_object_set_new(cur, outcomes[i], json_integer(0));
            json_array_append_new(by, cur);
            snprintf(cur_key, sizeof cur_key, "%s", key);
        }
        const char *oc = (const char *)sqlite3_column_text(st, 3);
        int64_t n = sqlite3_column_int64(st, 4);
        json_object_set_new(cur, oc,
                            json_integer(json_integer_value(json_object_get(cur, oc)) + n));
        json_object_set_new(cur, "total",
                            json_integer(json_integer_value(json_object_get(cur, "total")) + n));
        json_object_set_new(total, oc,
                            json_integer(json_integer_value(json_object_get(total, oc)) + n));
        all += n;
    }
    sqlite3_reset(st);
    if (step != SQLITE_DONE) {
        json_decref(total);
        json_decref(by);
        return NULL;
    }
    json_object_set_new(total, "total", json_integer(all));
    return json_pack("{s:o,s:o}", "total", total, "by_rule", by);
}
