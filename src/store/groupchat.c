/* groupchat.c — group tags, the member log with daily statistics, and
 * rolling group QR codes (state diagram in groupchat.h; docs/GROUPS.md).
 *
 * Member log: ingest applies add_member/del_member to group_member and, for
 * each member whose state changed, calls groupchat_on_member in the same
 * step; a duplicate or out-of-order callback changes nothing and logs
 * nothing, so joins and quits per day equal the member changes WeCom sent.
 *
 * Rolling codes: a code's WeCom join way always names the first (at most
 * five) chats of its set, in order, that are not full. A chat is full once
 * its 'in' members reach member_limit (counted when a join is applied, and
 * at creation); full is final. The update goes out through the outbox in
 * the step that saw the join, so the decision and the call commit together.
 *
 * Ownership: nothing allocated here outlives a call, except JSON results. */
#include "store/groupchat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "outbox/outbox.h"
#include "store/audit.h"
#include "store/channel.h"
#include "util/log.h"
#include "util/utf8.h"
#include "wecom/wecom_client.h"

#define DAY_S 86400
#define QR_KIND_ADD "groupchat_add_join_way"
#define QR_KIND_UPDATE "groupchat_update_join_way"
#define QR_KIND_DEL "groupchat_del_join_way"
#define QR_PER_CHAT_MAX 64

static json_t *col(sqlite3_stmt *st, int i) {
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_NULL:
        return json_null();
    default: {
        json_t *s = json_string((const char *)sqlite3_column_text(st, i));
        return s ? s : json_null();
    }
    }
}

static json_t *row_json(sqlite3_stmt *st, const char *const *names) {
    json_t *o = json_object();
    for (int i = 0; names[i]; i++)
        json_object_set_new(o, names[i], col(st, i));
    return o;
}

static int64_t members_in(store_conn *c, int64_t tenant, int64_t group) {
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT count(*) FROM group_member WHERE tenant_id=?1 "
                                          "AND group_id=?2 AND status='in'");
    if (!st) return 0;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, group);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return n;
}

/* ---- tags ---------------------------------------------------------------------- */

int groupchat_tag_create_step(store_conn *c, void *arg) {
    groupchat_tag_op *t = arg;
    if (!t->name || !*t->name || utf8_chars(t->name) > GROUPCHAT_TAG_NAME_MAX)
        return siyu_err_set(&t->err, SIYU_EINVAL, "name", "name must be 1 to 64 characters");
    sqlite3_stmt *st = store_conn_stmt(c, "INSERT INTO group_tag(tenant_id, name, created_at, "
                                          "updated_at) VALUES(?1,?2,?3,?3) ON CONFLICT DO NOTHING");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, t->tenant_id);
    store_bind_text(st, 2, t->name);
    sqlite3_bind_int64(st, 3, siyu_now());
    int rc = store_stmt_run(st);
    if (rc != 0) return rc;
    if (store_conn_changes(c) == 0)
        return siyu_err_set(&t->err, SIYU_ECONFLICT, "name", "a group tag with this name exists");
    t->id = store_conn_last_id(c);
    char target[32];
    snprintf(target, sizeof target, "group_tag:%lld", (long long)t->id);
    return store_audit(c, t->tenant_id, t->actor, "group_tag.create", target, 1, NULL);
}

int groupchat_tag_delete_step(store_conn *c, void *arg) {
    groupchat_tag_op *t = arg;
    static const char *const sql[2] = {
        "DELETE FROM group_chat_tag WHERE tenant_id=?1 AND tag_id=?2",
        "DELETE FROM group_tag WHERE tenant_id=?1 AND id=?2",
    };
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *st = store_conn_stmt(c, sql[i]);
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, t->tenant_id);
        sqlite3_bind_int64(st, 2, t->id);
        int rc = store_stmt_run(st);
        if (rc != 0) return rc;
    }
    if (store_conn_changes(c) == 0)
        return siyu_err_set(&t->err, SIYU_ENOTFOUND, NULL, "group tag %lld does not exist",
                            (long long)t->id);
    char target[32];
    snprintf(target, sizeof target, "group_tag:%lld", (long long)t->id);
    return store_audit(c, t->tenant_id, t->actor, "group_tag.delete", target, 1, NULL);
}

int groupchat_tags_set_step(store_conn *c, void *arg) {
    groupchat_tag_op *t = arg;
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT 1 FROM group_chat WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, t->tenant_id);
    sqlite3_bind_int64(st, 2, t->group_id);
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    if (step != SQLITE_ROW)
        return siyu_err_set(&t->err, SIYU_ENOTFOUND, NULL, "group chat %lld does not exist",
                            (long long)t->group_id);
    st = store_conn_stmt(c, "SELECT j.key, j.value FROM json_each(?1) j WHERE NOT EXISTS "
                            "(SELECT 1 FROM group_tag g WHERE g.tenant_id=?2 AND g.id=j.value) "
                            "ORDER BY j.key LIMIT 1");
    if (!st) return SIYU_EIO;
    store_bind_text(st, 1, t->tag_ids);
    sqlite3_bind_int64(st, 2, t->tenant_id);
    int64_t key = -1, value = 0;
    int rc = store_stmt_query_id(st, &key, &value);
    if (rc < 0) return rc;
    if (rc == 0) {
        char field[32];
        snprintf(field, sizeof field, "tag_ids[%lld]", (long long)key);
        return siyu_err_set(&t->err, SIYU_EINVAL, field, "group tag %lld does not exist",
                            (long long)value);
    }
    static const char *const sql[2] = {
        "DELETE FROM group_chat_tag WHERE tenant_id=?1 AND group_id=?2 AND tag_id NOT IN "
        "(SELECT value FROM json_each(?3))",
        "INSERT OR IGNORE INTO group_chat_tag(tenant_id, group_id, tag_id, created_at) SELECT "
        "?1, ?2, value, ?4 FROM json_each(?3)",
    };
    for (int i = 0; i < 2; i++) {
        st = store_conn_stmt(c, sql[i]);
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, t->tenant_id);
        sqlite3_bind_int64(st, 2, t->group_id);
        store_bind_text(st, 3, t->tag_ids);
        if (i) sqlite3_bind_int64(st, 4, siyu_now());
        if ((rc = store_stmt_run(st)) != 0) return rc;
    }
    char target[40];
    snprintf(target, sizeof target, "group_chat:%lld", (long long)t->group_id);
    return store_audit(c, t->tenant_id, t->actor, "group_chat.tags", target, 1, NULL);
}

json_t *groupchat_tag_list_json(store_conn *c, int64_t tenant_id) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT g.id, g.name, (SELECT count(*) FROM group_chat_tag t WHERE t.tag_id=g.id AND "
           "t.tenant_id=g.tenant_id) FROM group_tag g WHERE g.tenant_id=?1 ORDER BY g.id");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    static const char *const names[] = {"id", "name", "chats", NULL};
    json_t *items = json_array();
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(items, row_json(st, names));
    sqlite3_reset(st);
    if (step != SQLITE_DONE) {
        json_decref(items);
        return NULL;
    }
    return json_pack("{s:o}", "items", items);
}

int groupchat_tag_chats_json(store_conn *c, int64_t tenant_id, int64_t tag_id, int64_t after,
                             int limit, json_t **out) {
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT 1 FROM group_tag WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, tag_id);
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    if (step != SQLITE_ROW) return SIYU_ENOTFOUND;
    st = store_conn_stmt(
        c, "SELECT g.id, g.chat_id, g.name, g.status, (SELECT count(*) FROM group_member m WHERE "
           "m.tenant_id=g.tenant_id AND m.group_id=g.id AND m.status='in') FROM group_chat_tag t "
           "JOIN group_chat g ON g.id=t.group_id WHERE t.tenant_id=?1 AND t.tag_id=?2 AND "
           "g.id>?3 ORDER BY g.id LIMIT ?4");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, tag_id);
    sqlite3_bind_int64(st, 3, after);
    sqlite3_bind_int(st, 4, limit + 1);
    static const char *const names[] = {"id", "chat_id", "name", "status", "members", NULL};
    json_t *items = json_array();
    int n = 0;
    int64_t last = 0;
    bool more = false;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n++ == limit) {
            more = true;
            break;
        }
        last = sqlite3_column_int64(st, 0);
        json_array_append_new(items, row_json(st, names));
    }
    sqlite3_reset(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        json_decref(items);
        return store_rc(step);
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)last);
    *out = json_pack("{s:o,s:o}", "items", items, "next_cursor",
                     more ? json_string(buf) : json_null());
    return 0;
}

/* ---- rolling codes: the chat list ------------------------------------------------- */

/* The code's current chat list (first ≤5 chats not full, in order) as
 * compact JSON text (malloc'd) in *out. */
static int qr_list(store_conn *c, int64_t tenant, int64_t qr, char **out) {
    *out = NULL;
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT json_group_array(chat_id) FROM (SELECT g.chat_id FROM group_qr_chat q JOIN "
           "group_chat g ON g.id=q.group_id WHERE q.tenant_id=?1 AND q.qr_id=?2 AND q.full_at IS "
           "NULL AND g.status='active' ORDER BY q.position LIMIT ?3)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, qr);
    sqlite3_bind_int(st, 3, GROUPCHAT_QR_WAY_CHATS);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) return store_rc(rc);
    return *out ? 0 : SIYU_ENOMEM;
}

static int qr_enqueue(store_conn *c, int64_t tenant, int64_t qr, const char *kind, json_t *body,
                      const char *actor) {
    char ref[40], origin[64];
    snprintf(ref, sizeof ref, "group_qr:%lld", (long long)qr);
    snprintf(origin, sizeof origin, "group_qr:%s", actor ? actor : "system");
    outbox_item it = {.tenant_id = tenant,
                      .kind = kind,
                      .body = body,
                      .lane = OUTBOX_LANE_NORMAL,
                      .origin = origin,
                      .ref = ref};
    siyu_err err = {0};
    int rc = body ? outbox_enqueue(c, &it, NULL, &err) : SIYU_ENOMEM;
    json_decref(body);
    return rc;
}

/* Brings the code's join way in line with its chats: an update when the
 * list changed and the config_id is known, else the dirty mark. */
static int qr_push(store_conn *c, int64_t tenant, int64_t qr, const char *actor) {
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT config_id, wecom_status, coalesce(chat_ids, ''), "
                                          "state FROM group_qr WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, qr);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return 0;
    }
    char config[64] = "", status[16], sent[2048], state[40];
    if (sqlite3_column_text(st, 0))
        snprintf(config, sizeof config, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(status, sizeof status, "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(sent, sizeof sent, "%s", (const char *)sqlite3_column_text(st, 2));
    snprintf(state, sizeof state, "%s", (const char *)sqlite3_column_text(st, 3));
    sqlite3_reset(st);
    if (strcmp(status, "created") && strcmp(status, "pending")) return 0;
    char *list;
    int rc = qr_list(c, tenant, qr, &list);
    if (rc != 0) return rc;
    const char *sql;
    bool push = false;
    if (!strcmp(list, "[]"))
        sql = "UPDATE group_qr SET wecom_error='all_groups_full', updated_at=?4 WHERE "
              "tenant_id=?1 AND id=?2";
    else if (!strcmp(list, sent))
        sql = NULL;
    else if (!strcmp(status, "pending") || !config[0])
        sql = "UPDATE group_qr SET dirty=1, updated_at=?4 WHERE tenant_id=?1 AND id=?2";
    else {
        push = true;
        sql = "UPDATE group_qr SET chat_ids=?3, dirty=0, wecom_error=NULL, updated_at=?4 WHERE "
              "tenant_id=?1 AND id=?2";
    }
    if (push) {
        json_t *chats = json_loads(list, 0, NULL);
        rc = qr_enqueue(c, tenant, qr, QR_KIND_UPDATE,
                        chats ? json_pack("{s:s,s:i,s:o,s:s}", "config_id", config, "scene", 2,
                                          "chat_id_list", chats, "state", state)
                              : NULL,
                        actor);
    }
    if (rc == 0 && sql) {
        st = store_conn_stmt(c, sql);
        if (!st) rc = SIYU_EIO;
        if (rc == 0) {
            sqlite3_bind_int64(st, 1, tenant);
            sqlite3_bind_int64(st, 2, qr);
            if (push) store_bind_text(st, 3, list);
            sqlite3_bind_int64(st, 4, siyu_now());
            rc = store_stmt_run(st);
        }
    }
    free(list);
    return rc;
}

/* Marks group full in every live code whose limit its members reached and
 * pushes the codes that changed. */
static int qr_check(store_conn *c, int64_t tenant, int64_t group) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT q.qr_id, r.member_limit FROM group_qr_chat q JOIN group_qr r ON r.id=q.qr_id "
           "WHERE q.tenant_id=?1 AND q.group_id=?2 AND q.full_at IS NULL AND "
           "r.wecom_status IN ('pending','created') LIMIT ?3");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, group);
    sqlite3_bind_int(st, 3, QR_PER_CHAT_MAX);
    int64_t qrs[QR_PER_CHAT_MAX], limits[QR_PER_CHAT_MAX];
    int n = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW && n < QR_PER_CHAT_MAX) {
        qrs[n] = sqlite3_column_int64(st, 0);
        limits[n++] = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (step != SQLITE_DONE && step != SQLITE_ROW) return store_rc(step);
    if (n == 0) return 0;
    int64_t members = members_in(c, tenant, group);
    for (int i = 0; i < n; i++) {
        if (members < limits[i]) continue;
        st = store_conn_stmt(c, "UPDATE group_qr_chat SET full_at=?4 WHERE tenant_id=?1 AND "
                                "qr_id=?2 AND group_id=?3 AND full_at IS NULL");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, tenant);
        sqlite3_bind_int64(st, 2, qrs[i]);
        sqlite3_bind_int64(st, 3, group);
        sqlite3_bind_int64(st, 4, siyu_now());
        int rc = store_stmt_run(st);
        if (rc == 0) rc = qr_push(c, tenant, qrs[i], "member_limit");
        if (rc != 0) return rc;
        log_info("group qr %lld: group %lld reached %lld members; rolling over", (long long)qrs[i],
                 (long long)group, (long long)members);
    }
    return 0;
}

/* ---- member log -------------------------------------------------------------------- */

int groupchat_on_member(store_conn *c, int64_t tenant_id, int64_t group_id, const char *member_id,
                        int64_t customer_id, bool join, int scene, int64_t ts) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT INTO group_member_log(tenant_id, group_id, member_id, customer_id, action, "
           "scene, ts) VALUES(?1,?2,?3,?4,?5,?6,?7)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, group_id);
    store_bind_text(st, 3, member_id);
    store_bind_opt_int(st, 4, customer_id, customer_id > 0);
    store_bind_text(st, 5, join ? "join" : "quit");
    store_bind_opt_int(st, 6, scene, scene >= 0);
    sqlite3_bind_int64(st, 7, ts);
    int rc = store_stmt_run(st);
    return rc == 0 && join ? qr_check(c, tenant_id, group_id) : rc;
}

/* ---- statistics -------------------------------------------------------------------- */

static void date_of(int64_t day, char out[16]) {
    time_t t = (time_t)(day * DAY_S);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

typedef struct day_row {
    int64_t joins, quits, active;
} day_row;

/* Runs one grouped query (day, a, b) into rows[day - d0]: a and b go to the
 * fields at offsets fa and fb (fb < 0: none). */
static int day_query(store_conn *c, const char *sql, int64_t tenant, int64_t group, int64_t t0,
                     int64_t t1, int off, int64_t d0, int ndays, day_row *rows, bool active) {
    sqlite3_stmt *st = store_conn_stmt(c, sql);
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, group);
    sqlite3_bind_int64(st, 3, t0);
    sqlite3_bind_int64(st, 4, t1);
    sqlite3_bind_int(st, 5, off);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t d = sqlite3_column_int64(st, 0) - d0;
        if (d < 0 || d >= ndays) continue;
        if (active) {
            rows[d].active = sqlite3_column_int64(st, 1);
        } else {
            rows[d].joins = sqlite3_column_int64(st, 1);
            rows[d].quits = sqlite3_column_int64(st, 2);
        }
    }
    sqlite3_reset(st);
    return step == SQLITE_DONE ? 0 : store_rc(step);
}

int groupchat_stats_json(store_conn *c, int64_t tenant_id, int64_t group_id, const char *from,
                         const char *to, json_t **out, siyu_err *err) {
    int64_t d0, d1;
    if (!from || !channel_day_parse(from, &d0))
        return siyu_err_set(err, SIYU_EINVAL, "from", "from must be a date YYYY-MM-DD");
    if (!to || !channel_day_parse(to, &d1))
        return siyu_err_set(err, SIYU_EINVAL, "to", "to must be a date YYYY-MM-DD");
    if (d1 < d0 || d1 - d0 >= GROUPCHAT_STATS_DAYS_MAX)
        return siyu_err_set(err, SIYU_EINVAL, "to", "to must be on or after from, within 92 days");
    if (group_id > 0) {
        sqlite3_stmt *st =
            store_conn_stmt(c, "SELECT 1 FROM group_chat WHERE tenant_id=?1 AND id=?2");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, tenant_id);
        sqlite3_bind_int64(st, 2, group_id);
        int step = sqlite3_step(st);
        sqlite3_reset(st);
        if (step != SQLITE_ROW)
            return siyu_err_set(err, SIYU_ENOTFOUND, NULL, "group chat %lld does not exist",
                                (long long)group_id);
    }
    int off = 0;
    int rc = channel_tenant_offset(c, tenant_id, &off);
    if (rc != 0) return rc;
    int ndays = (int)(d1 - d0 + 1);
    day_row *rows = calloc((size_t)ndays, sizeof *rows);
    if (!rows) return SIYU_ENOMEM;
    int64_t t0 = d0 * DAY_S - off, t1 = (d1 + 1) * DAY_S - off;
    rc = day_query(c,
                   "SELECT (ts+?5)/86400 AS d, sum(action='join'), sum(action='quit') FROM "
                   "group_member_log WHERE tenant_id=?1 AND (?2=0 OR group_id=?2) AND ts>=?3 AND "
                   "ts<?4 GROUP BY d",
                   tenant_id, group_id, t0, t1, off, d0, ndays, rows, false);
    if (rc == 0)
        rc = day_query(
            c,
            "SELECT d, count(*) FROM (SELECT (ts+?5)/86400 AS d, group_id, member_id FROM "
            "group_member_log WHERE tenant_id=?1 AND (?2=0 OR group_id=?2) AND ts>=?3 AND ts<?4 "
            "UNION SELECT (e.ts+?5)/86400, m.group_id, m.member_id FROM group_member m JOIN "
            "group_chat g ON g.id=m.group_id JOIN event e ON e.tenant_id=m.tenant_id AND "
            "e.customer_id=m.customer_id AND e.ts>=?3 AND e.ts<?4 WHERE m.tenant_id=?1 AND (?2=0 "
            "OR m.group_id=?2) AND m.customer_id IS NOT NULL AND e.props IS NOT NULL AND "
            "json_valid(e.props) AND json_extract(e.props, '$.chat_id')=g.chat_id) GROUP BY d",
            tenant_id, group_id, t0, t1, off, d0, ndays, rows, true);
    if (rc != 0) {
        free(rows);
        return rc;
    }
    json_t *days = json_array();
    int64_t joins = 0, quits = 0, active = 0;
    for (int i = 0; i < ndays; i++) {
        char date[16];
        date_of(d0 + i, date);
        json_array_append_new(days, json_pack("{s:s,s:I,s:I,s:I,s:I}", "date", date, "joins",
                                              (json_int_t)rows[i].joins, "quits",
                                              (json_int_t)rows[i].quits, "net",
                                              (json_int_t)(rows[i].joins - rows[i].quits),
                                              "active_members", (json_int_t)rows[i].active));
        joins += rows[i].joins;
        quits += rows[i].quits;
        active += rows[i].active;
    }
    free(rows);
    char tz[16];
    int a = off < 0 ? -off : off;
    snprintf(tz, sizeof tz, "UTC%c%02d:%02d", off < 0 ? '-' : '+', a / 3600, (a % 3600) / 60);
    *out =
        json_pack("{s:s,s:s,s:s,s:o,s:{s:I,s:I,s:I,s:I}}", "from", from, "to", to, "utc_offset", tz,
                  "days", days, "totals", "joins", (json_int_t)joins, "quits", (json_int_t)quits,
                  "net", (json_int_t)(joins - quits), "active_member_days", (json_int_t)active);
    if (group_id > 0) json_object_set_new(*out, "group_id", json_integer(group_id));
    return 0;
}

/* ---- rolling codes: create, delete, answers -------------------------------------------- */

int groupchat_qr_create_step(store_conn *c, void *arg) {
    groupchat_qr_op *q = arg;
    if (!q->name || !*q->name || utf8_chars(q->name) > 64)
        return siyu_err_set(&q->err, SIYU_EINVAL, "name", "name must be 1 to 64 characters");
    if (q->member_limit < 2 || q->member_limit > GROUPCHAT_QR_LIMIT_MAX)
        return siyu_err_set(&q->err, SIYU_EINVAL, "member_limit",
                            "member_limit must be within 2..500 (WeCom: 200 by QR, 500 in all)");
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT j.key, j.value FROM json_each(?1) j WHERE NOT EXISTS (SELECT 1 FROM group_chat "
           "g WHERE g.tenant_id=?2 AND g.id=j.value AND g.status='active') ORDER BY j.key LIMIT 1");
    if (!st) return SIYU_EIO;
    store_bind_text(st, 1, q->group_ids);
    sqlite3_bind_int64(st, 2, q->tenant_id);
    int64_t key = -1, value = 0;
    int rc = store_stmt_query_id(st, &key, &value);
    if (rc < 0) return rc;
    if (rc == 0) {
        char field[32];
        snprintf(field, sizeof field, "group_ids[%lld]", (long long)key);
        return siyu_err_set(&q->err, SIYU_EINVAL, field,
                            "group chat %lld does not exist or is dismissed", (long long)value);
    }
    int64_t now = siyu_now();
    st = store_conn_stmt(c, "INSERT INTO group_qr(tenant_id, name, state, member_limit, "
                            "created_at, updated_at) VALUES(?1,?2,'sygq-new',?3,?4,?4)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, q->tenant_id);
    store_bind_text(st, 2, q->name);
    sqlite3_bind_int(st, 3, q->member_limit);
    sqlite3_bind_int64(st, 4, now);
    if ((rc = store_stmt_run(st)) != 0) return rc;
    q->id = store_conn_last_id(c);
    /* The state names the code in groupchat/get's member entries. */
    st = store_conn_stmt(c, "UPDATE group_qr SET state='sygq'||id WHERE id=?1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, q->id);
    if ((rc = store_stmt_run(st)) != 0) return rc;
    st = store_conn_stmt(
        c, "INSERT INTO group_qr_chat(tenant_id, qr_id, position, group_id, full_at) SELECT ?1, "
           "?2, j.key, j.value, CASE WHEN (SELECT count(*) FROM group_member m WHERE "
           "m.tenant_id=?1 AND m.group_id=j.value AND m.status='in')>=?3 THEN ?4 END FROM "
           "json_each(?5) j");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, q->tenant_id);
    sqlite3_bind_int64(st, 2, q->id);
    sqlite3_bind_int(st, 3, q->member_limit);
    sqlite3_bind_int64(st, 4, now);
    store_bind_text(st, 5, q->group_ids);
    if ((rc = store_stmt_run(st)) != 0) return rc;
    char *list;
    if ((rc = qr_list(c, q->tenant_id, q->id, &list)) != 0) return rc;
    if (!strcmp(list, "[]")) {
        free(list);
        return siyu_err_set(&q->err, SIYU_EINVAL, "group_ids",
                            "every group already has member_limit members");
    }
    char state[40];
    snprintf(state, sizeof state, "sygq%lld", (long long)q->id);
    json_t *chats = json_loads(list, 0, NULL);
    rc = qr_enqueue(c, q->tenant_id, q->id, QR_KIND_ADD,
                    chats ? json_pack("{s:i,s:o,s:s,s:i}", "scene", 2, "chat_id_list", chats,
                                      "state", state, "auto_create_room", 0)
                          : NULL,
                    q->actor);
    st = rc ? NULL : store_conn_stmt(c, "UPDATE group_qr SET chat_ids=?2 WHERE id=?1");
    if (rc == 0 && !st) rc = SIYU_EIO;
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, q->id);
        store_bind_text(st, 2, list);
        rc = store_stmt_run(st);
    }
    free(list);
    if (rc != 0) return rc;
    char target[32];
    snprintf(target, sizeof target, "group_qr:%lld", (long long)q->id);
    return store_audit(c, q->tenant_id, q->actor, "group_qr.create", target, 1, NULL);
}

int groupchat_qr_delete_step(store_conn *c, void *arg) {
    groupchat_qr_op *q = arg;
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT config_id, wecom_status FROM group_qr WHERE "
                                          "tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, q->tenant_id);
    sqlite3_bind_int64(st, 2, q->id);
    char config[64] = "";
    bool found = false, deleted = false;
    if (sqlite3_step(st) == SQLITE_ROW) {
        found = true;
        if (sqlite3_column_text(st, 0))
            snprintf(config, sizeof config, "%s", (const char *)sqlite3_column_text(st, 0));
        deleted = !strcmp((const char *)sqlite3_column_text(st, 1), "deleted");
    }
    sqlite3_reset(st);
    if (!found || deleted)
        return siyu_err_set(&q->err, SIYU_ENOTFOUND, NULL, "group QR code %lld does not exist",
                            (long long)q->id);
    int rc = 0;
    if (config[0]) /* else the add's answer deletes it (groupchat_qr_result_step) */
        rc = qr_enqueue(c, q->tenant_id, q->id, QR_KIND_DEL,
                        json_pack("{s:s}", "config_id", config), q->actor);
    st = rc ? NULL
            : store_conn_stmt(c, "UPDATE group_qr SET wecom_status='deleted', updated_at=?3 WHERE "
                                 "tenant_id=?1 AND id=?2");
    if (rc == 0 && !st) rc = SIYU_EIO;
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, q->tenant_id);
        sqlite3_bind_int64(st, 2, q->id);
        sqlite3_bind_int64(st, 3, siyu_now());
        rc = store_stmt_run(st);
    }
    if (rc != 0) return rc;
    char target[32];
    snprintf(target, sizeof target, "group_qr:%lld", (long long)q->id);
    return store_audit(c, q->tenant_id, q->actor, "group_qr.delete", target, 1, NULL);
}

int groupchat_qr_result_step(store_conn *c, void *arg) {
    groupchat_qr_result *r = arg;
    long long id;
    if (!r->ref || sscanf(r->ref, "group_qr:%lld", &id) != 1) return 0;
    bool sent = !strcmp(r->state, "sent");
    bool dead = !strcmp(r->state, "dead") || !strcmp(r->state, "cancelled");
    if (!sent && !dead) return 0;
    sqlite3_stmt *st;
    int rc;
    if (!strcmp(r->kind, QR_KIND_ADD) && sent) {
        const char *config = json_string_value(json_object_get(r->answer, "config_id"));
        st = store_conn_stmt(c, "UPDATE group_qr SET config_id=?3, wecom_status=CASE "
                                "wecom_status WHEN 'deleted' THEN 'deleted' ELSE 'created' END, "
                                "wecom_error=NULL, updated_at=?4 WHERE tenant_id=?1 AND id=?2 "
                                "RETURNING wecom_status, dirty");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, r->tenant_id);
        sqlite3_bind_int64(st, 2, id);
        store_bind_text(st, 3, config);
        sqlite3_bind_int64(st, 4, siyu_now());
        bool deleted = false, dirty = false;
        if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            deleted = !strcmp((const char *)sqlite3_column_text(st, 0), "deleted");
            dirty = sqlite3_column_int(st, 1) != 0;
            rc = sqlite3_step(st);
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) return store_rc(rc);
        if (deleted && config)
            return qr_enqueue(c, r->tenant_id, id, QR_KIND_DEL,
                              json_pack("{s:s}", "config_id", config), "deleted_while_pending");
        return dirty ? qr_push(c, r->tenant_id, id, "dirty") : 0;
    }
    if (!dead) return 0;
    st = store_conn_stmt(c, "UPDATE group_qr SET wecom_status=CASE WHEN ?3 AND "
                            "wecom_status='pending' THEN 'failed' ELSE wecom_status END, "
                            "wecom_error=?4, updated_at=?5 WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, r->tenant_id);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_int(st, 3, !strcmp(r->kind, QR_KIND_ADD));
    store_bind_text(st, 4, r->errcode ? wecom_errcode_name(r->errcode) : r->state);
    sqlite3_bind_int64(st, 5, siyu_now());
    return store_stmt_run(st);
}

static void on_qr_result(void *arg, int64_t tenant_id, const char *kind, const char *ref,
                         const char *state, const json_t *answer, int errcode) {
    siyu_ctx *ctx = arg;
    groupchat_qr_result r = {tenant_id, kind, ref, state ? state : "", answer, errcode};
    int rc = store_write(ctx->st, groupchat_qr_result_step, &r);
    if (rc != 0) log_error("group qr: recording %s failed: %s", ref ? ref : "?", siyu_strerror(rc));
}

void groupchat_listen(siyu_ctx *ctx) {
    if (!ctx || !ctx->ob) return;
    outbox_on_result(ctx->ob, QR_KIND_ADD, on_qr_result, ctx);
    outbox_on_result(ctx->ob, QR_KIND_UPDATE, on_qr_result, ctx);
    outbox_on_result(ctx->ob, QR_KIND_DEL, on_qr_result, ctx);
}

/* ---- rolling codes: reads ------------------------------------------------------------- */

static const char *const qr_names[] = {
    "id",           "name",        "state",      "member_limit", "config_id",
    "wecom_status", "wecom_error", "created_at", "updated_at",   NULL};
#define QR_COLS                                                                                    \
    "id, name, state, member_limit, config_id, wecom_status, wecom_error, created_at, "            \
    "updated_at, coalesce(chat_ids, '[]')"

static json_t *qr_row(store_conn *c, sqlite3_stmt *st, int64_t tenant) {
    json_t *o = row_json(st, qr_names);
    json_t *cur = json_loads((const char *)sqlite3_column_text(st, 9), 0, NULL);
    json_object_set_new(o, "chat_id_list", cur ? cur : json_array());
    sqlite3_stmt *g = store_conn_stmt(
        c, "SELECT q.position, q.group_id, g.chat_id, (SELECT count(*) FROM group_member m WHERE "
           "m.tenant_id=q.tenant_id AND m.group_id=q.group_id AND m.status='in'), q.full_at FROM "
           "group_qr_chat q JOIN group_chat g ON g.id=q.group_id WHERE q.tenant_id=?1 AND "
           "q.qr_id=?2 ORDER BY q.position");
    json_t *groups = json_array();
    if (g) {
        static const char *const names[] = {"position", "group_id", "chat_id",
                                            "members",  "full_at",  NULL};
        sqlite3_bind_int64(g, 1, tenant);
        sqlite3_bind_int64(g, 2, sqlite3_column_int64(st, 0));
        while (sqlite3_step(g) == SQLITE_ROW)
            json_array_append_new(groups, row_json(g, names));
        sqlite3_reset(g);
    }
    json_object_set_new(o, "groups", groups);
    return o;
}

json_t *groupchat_qr_get_json(store_conn *c, int64_t tenant_id, int64_t id) {
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT " QR_COLS " FROM group_qr WHERE tenant_id=?1 "
                                          "AND id=?2 AND wecom_status<>'deleted'");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, id);
    json_t *o = sqlite3_step(st) == SQLITE_ROW ? qr_row(c, st, tenant_id) : NULL;
    sqlite3_reset(st);
    return o;
}

json_t *groupchat_qr_list_json(store_conn *c, int64_t tenant_id) {
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT " QR_COLS " FROM group_qr WHERE tenant_id=?1 "
                                          "AND wecom_status<>'deleted' ORDER BY id LIMIT 1000");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    json_t *items = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(items, qr_row(c, st, tenant_id));
    sqlite3_reset(st);
    return json_pack("{s:o}", "items", items);
}
