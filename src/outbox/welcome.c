/* welcome.c — default welcome messages: config rows (table welcome_config)
 * and the producer of send_welcome_msg outbox rows. Everything here runs on
 * a connection handed in by the caller (the writer inside a write step, or a
 * reader for the views). */
#include "outbox/welcome.h"

#include <stdio.h>
#include <string.h>

#include "outbox/outbox.h"
#include "store/audit.h"

int welcome_on_event(store_conn *c, int64_t tenant_id, const wecom_event *ev, int64_t event_id,
                     int64_t *outbox_id) {
    *outbox_id = 0;
    if (ev->kind != WECOM_EV_ADD_EXTERNAL_CONTACT && ev->kind != WECOM_EV_ADD_HALF_EXTERNAL_CONTACT)
        return 0;
    if (!ev->welcome_code || !*ev->welcome_code) return 0;
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT text FROM welcome_config WHERE tenant_id=?1 AND enabled=1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 0 : store_rc(rc);
    }
    json_t *body = json_pack("{s:s,s:{s:s}}", "welcome_code", ev->welcome_code, "text", "content",
                             (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    if (!body) return SIYU_ENOMEM;
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
    rc = outbox_enqueue(c, &it, outbox_id, &err);
    json_decref(body);
    if (rc != 0 || created_ms + WELCOME_WINDOW_MS > siyu_now() * 1000) return rc;
    /* The callback came after WeCom's window (a late retry, a replayed
     * history): record the welcome as missed at once instead of handing a
     * worker a row it can only declare dead. */
    st = store_conn_stmt(c, "UPDATE outbox SET state='dead', errcode=41050, error='"
                            "welcome_code_expired: the add arrived after the 20 s window', "
                            "updated_at=?2 WHERE id=?1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, *outbox_id);
    sqlite3_bind_int64(st, 2, siyu_now());
    return store_stmt_run(st);
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
