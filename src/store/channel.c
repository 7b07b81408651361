/* channel.c — channel groups and channels: validation, rows, the WeCom
 * contact-way calls they cause, attribution of new contacts, and the
 * outbox answers (see channel.h for the model).
 *
 * Lifecycle of a channel's contact way (function behind each arrow):
 *
 *   channel_create ──add_contact_way──> pending ──channel_result_step (sent)──> created
 *                                          │  └─(dead)──> failed ──outbox retry──> pending
 *      channel_update / roster: dirty = 1 ─┘          created ──channel_update / roster──>
 *      channel_delete: status deleted ─────┘                    update_contact_way
 *      (the add's answer then pushes the        created ──channel_delete──> del_contact_way
 *       edit or deletes the way)                  ──channel_result_step (sent)──> deleted
 *
 * Every statement filters by tenant_id, so another tenant's id behaves like
 * a missing one. Producers run inside the caller's write step: the change
 * and its outbox rows commit together.
 *
 * Ownership: request bodies are built and freed here (outbox_enqueue copies
 * them); input structs borrow their strings from the caller. */
#include "store/channel.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "app.h"
#include "outbox/outbox.h"
#include "store/audit.h"
#include "store/channel_int.h"
#include "store/tag_wecom.h"
#include "util/log.h"
#include "util/utf8.h"

#define CUSTOMER_REMARK_CHARS 20 /* WeCom's limits on a follow record's remark */
#define CUSTOMER_DESC_CHARS 150

/* ---- helpers --------------------------------------------------------------- */

/* Column i as a JSON string / integer, JSON null for SQL NULL. */
static json_t *col_str_json(sqlite3_stmt *st, int i) {
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? json_string(s) : json_null();
}

static json_t *col_int_json(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null()
                                                     : json_integer(sqlite3_column_int64(st, i));
}

static int audit_id(store_conn *c, int64_t tenant, const char *actor, const char *action,
                    const char *kind, int64_t id, const char *detail) {
    char target[48];
    snprintf(target, sizeof target, "%s:%lld", kind, (long long)id);
    return store_audit(c, tenant, actor ? actor : "system", action, target, 1, detail);
}

/* Copies at most max_chars UTF-8 characters of s into out (cap bytes). */
static void utf8_trunc(const char *s, size_t max_chars, char *out, size_t cap) {
    size_t i = 0, chars = 0;
    while (s[i] && i + 1 < cap) {
        unsigned char b = (unsigned char)s[i];
        if ((b & 0xC0) != 0x80) {
            if (chars == max_chars) break;
            size_t len = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
            if (i + len >= cap) break; /* never split a character */
            chars++;
        }
        out[i] = s[i];
        i++;
    }
    out[i] = 0;
}

static int text_chars_check(const char *s, size_t max, const char *field, bool required,
                            siyu_err *err) {
    if (!s) return required ? siyu_err_set(err, SIYU_EINVAL, field, "%s is required", field) : 0;
    size_t n = utf8_chars(s);
    if ((required && n == 0) || n > max)
        return siyu_err_set(err, SIYU_EINVAL, field, "%s must be %d to %zu characters", field,
                            required ? 1 : 0, max);
    return 0;
}

/* Placeholders a remark/description template may use. */
static const char *const placeholders[] = {"{channel}", "{date}", "{employee}"};

static int template_check(const char *t, size_t max, const char *field, siyu_err *err) {
    int rc = text_chars_check(t, max, field, false, err);
    if (rc != 0 || !t) return rc;
    for (const char *p = strchr(t, '{'); p; p = strchr(p + 1, '{')) {
        bool known = false;
        for (size_t i = 0; i < sizeof placeholders / sizeof *placeholders; i++)
            if (!strncmp(p, placeholders[i], strlen(placeholders[i]))) known = true;
        if (!known)
            return siyu_err_set(err, SIYU_EINVAL, field,
                                "%s: unknown placeholder at byte %zu (use {channel}, {date} or "
                                "{employee})",
                                field, (size_t)(p - t));
    }
    if (strchr(t, '}') && !strchr(t, '{'))
        return siyu_err_set(err, SIYU_EINVAL, field, "%s: unmatched '}'", field);
    return 0;
}

/* Renders a template into out (cap bytes), then cuts it to max_chars. */
static void template_render(const char *t, const char *channel, const char *date,
                            const char *employee, size_t max_chars, char *out, size_t cap) {
    char buf[2048];
    size_t n = 0;
    for (const char *p = t; *p && n + 1 < sizeof buf;) {
        const char *val = NULL;
        size_t skip = 0;
        if (*p == '{') {
            const char *vals[] = {channel, date, employee};
            for (size_t i = 0; i < sizeof placeholders / sizeof *placeholders; i++)
                if (!strncmp(p, placeholders[i], strlen(placeholders[i]))) {
                    val = vals[i];
                    skip = strlen(placeholders[i]);
                }
        }
        if (val) {
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s", val);
            if (n >= sizeof buf) n = sizeof buf - 1;
            p += skip;
        } else {
            buf[n++] = *p++;
        }
    }
    buf[n] = 0;
    utf8_trunc(buf, max_chars, out, cap);
}

/* 18 characters: "sy" + 16 hex digits from the kernel's random source. */
static int state_generate(char out[32]) {
    unsigned char r[8];
    ssize_t got = getrandom(r, sizeof r, 0);
    if (got != (ssize_t)sizeof r) return SIYU_EIO;
    snprintf(out, 32, "sy%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5],
             r[6], r[7]);
    return 0;
}

int channel__enqueue(store_conn *c, int64_t tenant, int64_t id, const char *kind, json_t *body,
                     const char *actor, unsigned *kick, siyu_err *err) {
    if (!body) return SIYU_ENOMEM;
    char origin[64], ref[48];
    snprintf(origin, sizeof origin, "channel:%s", actor ? actor : "system");
    snprintf(ref, sizeof ref, "channel:%lld", (long long)id);
    outbox_item it = {.tenant_id = tenant,
                      .kind = kind,
                      .body = body,
                      .lane = OUTBOX_LANE_NORMAL,
                      .origin = origin,
                      .ref = ref};
    int rc = outbox_enqueue(c, &it, NULL, err);
    json_decref(body);
    if (rc == 0 && kick) *kick |= 1u << OUTBOX_LANE_NORMAL;
    return rc;
}

json_t *channel__way_body(store_conn *c, int64_t tenant, int64_t id, const json_t *users,
                          bool add) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT type='single', name, skip_verify, state, config_id FROM channel WHERE "
           "tenant_id=?1 AND id=?2");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    json_t *body = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) {
        char remark[CHANNEL_WAY_REMARK_CHARS * 4 + 1];
        utf8_trunc((const char *)sqlite3_column_text(st, 1), CHANNEL_WAY_REMARK_CHARS, remark,
                   sizeof remark);
        body = json_pack("{s:s,s:b,s:s,s:O}", "remark", remark, "skip_verify",
                         sqlite3_column_int(st, 2), "state", sqlite3_column_text(st, 3), "user",
                         users);
        if (body && add) {
            json_object_set_new(body, "type", json_integer(sqlite3_column_int(st, 0) ? 1 : 2));
            json_object_set_new(body, "scene", json_integer(2));
        } else if (body) {
            const char *cid = (const char *)sqlite3_column_text(st, 4);
            json_object_set_new(body, "config_id", json_string(cid ? cid : ""));
        }
    }
    sqlite3_reset(st);
    return body;
}

/* ---- channel groups ---------------------------------------------------------- */

static int group_name_taken(store_conn *c, int64_t tenant, const char *name, int64_t except,
                            siyu_err *err) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT 1 FROM channel_group WHERE tenant_id=?1 AND name=?2 AND id<>?3");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    store_bind_text(st, 2, name);
    sqlite3_bind_int64(st, 3, except);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return siyu_err_set(err, SIYU_ECONFLICT, "name", "a channel group named so exists");
    return rc == SQLITE_DONE ? 0 : store_rc(rc);
}

static bool group_exists(store_conn *c, int64_t tenant, int64_t id, int *rc) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT 1 FROM channel_group WHERE tenant_id=?1 AND id=?2");
    *rc = 0;
    if (!st) {
        *rc = SIYU_EIO;
        return false;
    }
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    int s = sqlite3_step(st);
    sqlite3_reset(st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) *rc = store_rc(s);
    return s == SQLITE_ROW;
}

int channel_group_create(store_conn *c, void *arg) {
    channel_group_input *in = arg;
    int rc = text_chars_check(in->name, CHANNEL_GROUP_NAME_MAX, "name", true, &in->err);
    if (rc == 0)
        rc = text_chars_check(in->description, CHANNEL_DESCRIPTION_MAX, "description", false,
                              &in->err);
    if (rc == 0) rc = group_name_taken(c, in->tenant_id, in->name, 0, &in->err);
    if (rc != 0) return rc;
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT INTO channel_group(tenant_id, name, description, sort_order, created_at, "
           "updated_at) VALUES(?1,?2,?3,?4,?5,?5)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    store_bind_text(st, 2, in->name);
    store_bind_text(st, 3, in->description);
    sqlite3_bind_int64(st, 4, in->has_sort_order ? in->sort_order : 0);
    sqlite3_bind_int64(st, 5, siyu_now());
    if ((rc = store_stmt_run(st)) != 0) return rc;
    in->id = store_conn_last_id(c);
    return audit_id(c, in->tenant_id, in->actor, "channel_group.create", "channel_group", in->id,
                    NULL);
}

int channel_group_update(store_conn *c, void *arg) {
    channel_group_input *in = arg;
    int rc;
    if (!group_exists(c, in->tenant_id, in->id, &rc))
        return rc ? rc
                  : siyu_err_set(&in->err, SIYU_ENOTFOUND, NULL,
                                 "channel group %lld does not exist", (long long)in->id);
    if (in->name &&
        ((rc = text_chars_check(in->name, CHANNEL_GROUP_NAME_MAX, "name", true, &in->err)) != 0 ||
         (rc = group_name_taken(c, in->tenant_id, in->name, in->id, &in->err)) != 0))
        return rc;
    if (in->has_description && (rc = text_chars_check(in->description, CHANNEL_DESCRIPTION_MAX,
                                                      "description", false, &in->err)) != 0)
        return rc;
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE channel_group SET name=coalesce(?3, name), description=CASE WHEN ?4 THEN ?5 "
           "ELSE description END, sort_order=CASE WHEN ?6 THEN ?7 ELSE sort_order END, "
           "updated_at=?8 WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    store_bind_text(st, 3, in->name);
    sqlite3_bind_int(st, 4, in->has_description);
    store_bind_text(st, 5, in->description);
    sqlite3_bind_int(st, 6, in->has_sort_order);
    sqlite3_bind_int64(st, 7, in->sort_order);
    sqlite3_bind_int64(st, 8, siyu_now());
    if ((rc = store_stmt_run(st)) != 0) return rc;
    return audit_id(c, in->tenant_id, in->actor, "channel_group.update", "channel_group", in->id,
                    NULL);
}

int channel_group_delete(store_conn *c, void *arg) {
    channel_group_input *in = arg;
    int rc;
    if (!group_exists(c, in->tenant_id, in->id, &rc))
        return rc ? rc
                  : siyu_err_set(&in->err, SIYU_ENOTFOUND, NULL,
                                 "channel group %lld does not exist", (long long)in->id);
    sqlite3_stmt *st = store_conn_stmt(c, "UPDATE channel SET group_id=NULL, updated_at=?3 WHERE "
                                          "tenant_id=?1 AND group_id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    sqlite3_bind_int64(st, 3, siyu_now());
    if ((rc = store_stmt_run(st)) != 0) return rc;
    in->ungrouped = store_conn_changes(c);
    st = store_conn_stmt(c, "DELETE FROM channel_group WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    if ((rc = store_stmt_run(st)) != 0) return rc;
    char detail[48];
    snprintf(detail, sizeof detail, "ungrouped=%lld", (long long)in->ungrouped);
    return audit_id(c, in->tenant_id, in->actor, "channel_group.delete", "channel_group", in->id,
                    detail);
}

static json_t *group_row(sqlite3_stmt *st) {
    return json_pack("{s:I,s:s,s:o,s:I,s:I,s:I,s:I}", "id", (json_int_t)sqlite3_column_int64(st, 0),
                     "name", sqlite3_column_text(st, 1), "description", col_str_json(st, 2),
                     "sort_order", (json_int_t)sqlite3_column_int64(st, 3), "channels",
                     (json_int_t)sqlite3_column_int64(st, 4), "created_at",
                     (json_int_t)sqlite3_column_int64(st, 5), "updated_at",
                     (json_int_t)sqlite3_column_int64(st, 6));
}

#define GROUP_SELECT                                                                               \
    "SELECT g.id, g.name, g.description, g.sort_order, (SELECT count(*) FROM channel ch WHERE "    \
    "ch.tenant_id=g.tenant_id AND ch.group_id=g.id AND ch.status='active'), g.created_at, "        \
    "g.updated_at FROM channel_group g "

json_t *channel_group_get_json(store_conn *c, int64_t tenant_id, int64_t id) {
    sqlite3_stmt *st = store_conn_stmt(c, GROUP_SELECT "WHERE g.tenant_id=?1 AND g.id=?2");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, id);
    json_t *j = sqlite3_step(st) == SQLITE_ROW ? group_row(st) : NULL;
    sqlite3_reset(st);
    return j;
}

int channel_group_list(store_conn *c, int64_t tenant_id, json_t *items) {
    sqlite3_stmt *st =
        store_conn_stmt(c, GROUP_SELECT "WHERE g.tenant_id=?1 ORDER BY g.sort_order, g.id");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(items, group_row(st));
    sqlite3_reset(st);
    return step == SQLITE_DONE ? 0 : store_rc(step);
}

/* ---- channel validation ---------------------------------------------------- */

static int settings_check(store_conn *c, channel_input *in, bool create) {
    siyu_err *err = &in->err;
    int rc;
    if ((create || in->name) &&
        (rc = text_chars_check(in->name, CHANNEL_NAME_MAX, "name", true, err)) != 0)
        return rc;
    if (create && in->type && strcmp(in->type, "single") != 0 && strcmp(in->type, "multi") != 0)
        return siyu_err_set(err, SIYU_EINVAL, "type", "type must be \"single\" or \"multi\"");
    if (in->has_daily_cap && (in->daily_cap < 0 || in->daily_cap > CHANNEL_CAP_MAX))
        return siyu_err_set(err, SIYU_EINVAL, "daily_cap", "daily_cap must be 0 (none) to %d",
                            CHANNEL_CAP_MAX);
    if (in->has_remark_template &&
        (rc = template_check(in->remark_template, CHANNEL_REMARK_TEMPLATE_MAX, "remark_template",
                             err)) != 0)
        return rc;
    if (in->has_description_template &&
        (rc = template_check(in->description_template, CHANNEL_DESC_TEMPLATE_MAX,
                             "description_template", err)) != 0)
        return rc;
    if (in->has_group && in->group_id != 0) {
        if (in->group_id < 0 || !group_exists(c, in->tenant_id, in->group_id, &rc))
            return rc ? rc
                      : siyu_err_set(err, SIYU_EINVAL, "group_id",
                                     "channel group %lld does not exist", (long long)in->group_id);
    }
    if (in->name) {
        sqlite3_stmt *st =
            store_conn_stmt(c, "SELECT 1 FROM channel WHERE tenant_id=?1 AND name=?2 AND "
                               "status='active' AND id<>?3");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, in->tenant_id);
        store_bind_text(st, 2, in->name);
        sqlite3_bind_int64(st, 3, in->id);
        int s = sqlite3_step(st);
        sqlite3_reset(st);
        if (s == SQLITE_ROW)
            return siyu_err_set(err, SIYU_ECONFLICT, "name", "an active channel named so exists");
        if (s != SQLITE_DONE) return store_rc(s);
    }
    return 0;
}

static int staff_check(store_conn *c, channel_input *in) {
    siyu_err *err = &in->err;
    if (in->nstaff == 0)
        return siyu_err_set(err, SIYU_EINVAL, "staff", "staff must list at least one employee");
    if (in->nstaff > CHANNEL_STAFF_MAX)
        return siyu_err_set(err, SIYU_EINVAL, "staff", "at most %d staff (WeCom's limit)",
                            CHANNEL_STAFF_MAX);
    bool duty = false;
    char field[48];
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT status FROM employee WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    for (size_t i = 0; i < in->nstaff; i++) {
        const channel_staff_input *s = &in->staff[i];
        if (!s->backup) duty = true;
        snprintf(field, sizeof field, "staff[%zu].employee_id", i);
        for (size_t k = 0; k < i; k++)
            if (in->staff[k].employee_id == s->employee_id)
                return siyu_err_set(err, SIYU_EINVAL, field, "employee %lld is listed twice",
                                    (long long)s->employee_id);
        sqlite3_bind_int64(st, 1, in->tenant_id);
        sqlite3_bind_int64(st, 2, s->employee_id);
        int step = sqlite3_step(st);
        bool active =
            step == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(st, 0), "active");
        sqlite3_reset(st);
        if (step != SQLITE_ROW && step != SQLITE_DONE) return store_rc(step);
        if (step == SQLITE_DONE)
            return siyu_err_set(err, SIYU_EINVAL, field, "employee %lld does not exist",
                                (long long)s->employee_id);
        if (!active)
            return siyu_err_set(err, SIYU_EINVAL, field, "employee %lld has resigned",
                                (long long)s->employee_id);
        if (s->has_cap && (s->daily_cap < 0 || s->daily_cap > CHANNEL_CAP_MAX)) {
            snprintf(field, sizeof field, "staff[%zu].daily_cap", i);
            return siyu_err_set(err, SIYU_EINVAL, field, "daily_cap must be 0 (none) to %d",
                                CHANNEL_CAP_MAX);
        }
        snprintf(field, sizeof field, "staff[%zu].schedule", i);
        channel_schedule sch;
        int rc = channel_schedule_parse(s->schedule, field, &sch, err);
        if (rc != 0) return rc;
    }
    if (!duty)
        return siyu_err_set(err, SIYU_EINVAL, "staff",
                            "at least one staff member must have role \"duty\"");
    return 0;
}

static int tags_check(store_conn *c, channel_input *in) {
    if (in->ntags > CHANNEL_TAGS_MAX)
        return siyu_err_set(&in->err, SIYU_EINVAL, "tag_ids", "at most %d auto-tags",
                            CHANNEL_TAGS_MAX);
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT 1 FROM tag WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    for (size_t i = 0; i < in->ntags; i++) {
        sqlite3_bind_int64(st, 1, in->tenant_id);
        sqlite3_bind_int64(st, 2, in->tag_ids[i]);
        int step = sqlite3_step(st);
        sqlite3_reset(st);
        if (step == SQLITE_DONE) {
            char field[32];
            snprintf(field, sizeof field, "tag_ids[%zu]", i);
            return siyu_err_set(&in->err, SIYU_EINVAL, field, "tag %lld does not exist",
                                (long long)in->tag_ids[i]);
        }
        if (step != SQLITE_ROW) return store_rc(step);
    }
    return 0;
}

static int staff_write(store_conn *c, channel_input *in) {
    sqlite3_stmt *st = store_conn_stmt(c, "DELETE FROM channel_staff WHERE tenant_id=?1 AND "
                                          "channel_id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    int rc = store_stmt_run(st);
    if (rc != 0) return rc;
    st = store_conn_stmt(c, "INSERT INTO channel_staff(tenant_id, channel_id, employee_id, role, "
                            "position, daily_cap, schedule) VALUES(?1,?2,?3,?4,?5,?6,?7)");
    if (!st) return SIYU_EIO;
    for (size_t i = 0; i < in->nstaff && rc == 0; i++) {
        const channel_staff_input *s = &in->staff[i];
        channel_schedule sch;
        if ((rc = channel_schedule_parse(s->schedule, "schedule", &sch, &in->err)) != 0) break;
        char text[CHANNEL_SCHEDULE_TEXT_MAX * 2];
        channel_schedule_format(&sch, text, sizeof text);
        sqlite3_bind_int64(st, 1, in->tenant_id);
        sqlite3_bind_int64(st, 2, in->id);
        sqlite3_bind_int64(st, 3, s->employee_id);
        sqlite3_bind_text(st, 4, s->backup ? "backup" : "duty", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, (int64_t)i);
        store_bind_opt_int(st, 6, s->daily_cap, s->has_cap);
        store_bind_text(st, 7, text[0] ? text : NULL);
        rc = store_stmt_run(st);
    }
    return rc;
}

static int tags_write(store_conn *c, channel_input *in) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "DELETE FROM channel_tag WHERE tenant_id=?1 AND channel_id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    int rc = store_stmt_run(st);
    st = store_conn_stmt(c, "INSERT OR IGNORE INTO channel_tag(tenant_id, channel_id, tag_id) "
                            "VALUES(?1,?2,?3)");
    if (!st) return SIYU_EIO;
    for (size_t i = 0; i < in->ntags && rc == 0; i++) {
        sqlite3_bind_int64(st, 1, in->tenant_id);
        sqlite3_bind_int64(st, 2, in->id);
        sqlite3_bind_int64(st, 3, in->tag_ids[i]);
        rc = store_stmt_run(st);
    }
    return rc;
}

/* ---- channel writes -------------------------------------------------------- */

int channel_create(store_conn *c, void *arg) {
    channel_input *in = arg;
    in->id = 0;
    in->kick = 0;
    in->pushed = false;
    int rc = settings_check(c, in, true);
    if (rc == 0 && !in->has_staff)
        rc = siyu_err_set(&in->err, SIYU_EINVAL, "staff", "staff is required");
    if (rc == 0) rc = staff_check(c, in);
    if (rc == 0 && in->has_tags) rc = tags_check(c, in);
    if (rc != 0) return rc;
    char state[32];
    int64_t now = siyu_now();
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT INTO channel(tenant_id, group_id, name, state, type, skip_verify, "
           "remark_template, description_template, daily_cap, created_by, created_at, "
           "updated_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?11)");
    if (!st) return SIYU_EIO;
    for (int attempt = 0;; attempt++) { /* a repeated random state is a unique violation */
        if ((rc = state_generate(state)) != 0) return rc;
        sqlite3_bind_int64(st, 1, in->tenant_id);
        store_bind_opt_int(st, 2, in->group_id, in->has_group && in->group_id > 0);
        store_bind_text(st, 3, in->name);
        store_bind_text(st, 4, state);
        sqlite3_bind_text(st, 5, in->type ? in->type : "multi", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, in->has_skip_verify ? in->skip_verify : 1);
        store_bind_text(st, 7, in->remark_template);
        store_bind_text(st, 8, in->description_template);
        sqlite3_bind_int64(st, 9, in->has_daily_cap ? in->daily_cap : 0);
        store_bind_text(st, 10, in->actor);
        sqlite3_bind_int64(st, 11, now);
        rc = store_stmt_run(st);
        if (rc != SIYU_ECONFLICT || attempt == 3) break;
    }
    if (rc != 0) return rc;
    in->id = store_conn_last_id(c);
    if ((rc = staff_write(c, in)) != 0 || (in->has_tags && (rc = tags_write(c, in)) != 0))
        return rc;
    json_t *users = NULL;
    if ((rc = channel_roster(c, in->tenant_id, in->id, in->now ? in->now : now, &users, NULL)) != 0)
        return rc;
    char *text = json_dumps(users, JSON_COMPACT);
    st = store_conn_stmt(c, "UPDATE channel SET users=?2 WHERE id=?1");
    if (!text || !st) {
        rc = text ? SIYU_EIO : SIYU_ENOMEM;
        free(text);
        json_decref(users);
        return rc;
    }
    sqlite3_bind_int64(st, 1, in->id);
    store_bind_text(st, 2, text);
    rc = store_stmt_run(st);
    free(text);
    if (rc == 0)
        rc = channel__enqueue(c, in->tenant_id, in->id, "add_contact_way",
                              channel__way_body(c, in->tenant_id, in->id, users, true), in->actor,
                              &in->kick, &in->err);
    json_decref(users);
    if (rc != 0) return rc;
    in->pushed = true;
    return audit_id(c, in->tenant_id, in->actor, "channel.create", "channel", in->id, NULL);
}

typedef struct chan_cur {
    bool found;
    char name[CHANNEL_NAME_MAX * 4 + 1];
    char type[8];
    bool skip_verify, created;
    char config_id[128];
} chan_cur;

static int chan_cur_load(store_conn *c, int64_t tenant, int64_t id, chan_cur *cur) {
    memset(cur, 0, sizeof *cur);
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT name, type, skip_verify, config_id IS NOT NULL AND wecom_status='created', "
           "config_id FROM channel WHERE tenant_id=?1 AND id=?2 AND status='active'");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        cur->found = true;
        snprintf(cur->name, sizeof cur->name, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(cur->type, sizeof cur->type, "%s", (const char *)sqlite3_column_text(st, 1));
        cur->skip_verify = sqlite3_column_int(st, 2) != 0;
        cur->created = sqlite3_column_int(st, 3) != 0;
        const char *cid = (const char *)sqlite3_column_text(st, 4);
        snprintf(cur->config_id, sizeof cur->config_id, "%s", cid ? cid : "");
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_rc(rc);
}

int channel_update(store_conn *c, void *arg) {
    channel_input *in = arg;
    in->kick = 0;
    in->pushed = false;
    chan_cur cur;
    int rc = chan_cur_load(c, in->tenant_id, in->id, &cur);
    if (rc != 0) return rc;
    if (!cur.found)
        return siyu_err_set(&in->err, SIYU_ENOTFOUND, NULL, "channel %lld does not exist",
                            (long long)in->id);
    if (in->type && strcmp(in->type, cur.type) != 0)
        return siyu_err_set(&in->err, SIYU_EINVAL, "type",
                            "a channel's type cannot change (create another channel)");
    if ((rc = settings_check(c, in, false)) != 0) return rc;
    if (in->has_staff && (rc = staff_check(c, in)) != 0) return rc;
    if (in->has_tags && (rc = tags_check(c, in)) != 0) return rc;
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE channel SET name=coalesce(?3, name), "
           "group_id=CASE WHEN ?4 THEN ?5 ELSE group_id END, "
           "skip_verify=CASE WHEN ?6 THEN ?7 ELSE skip_verify END, "
           "remark_template=CASE WHEN ?8 THEN ?9 ELSE remark_template END, "
           "description_template=CASE WHEN ?10 THEN ?11 ELSE description_template END, "
           "daily_cap=CASE WHEN ?12 THEN ?13 ELSE daily_cap END, updated_at=?14 "
           "WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    store_bind_text(st, 3, in->name);
    sqlite3_bind_int(st, 4, in->has_group);
    store_bind_opt_int(st, 5, in->group_id, in->group_id > 0);
    sqlite3_bind_int(st, 6, in->has_skip_verify);
    sqlite3_bind_int(st, 7, in->skip_verify);
    sqlite3_bind_int(st, 8, in->has_remark_template);
    store_bind_text(st, 9, in->remark_template);
    sqlite3_bind_int(st, 10, in->has_description_template);
    store_bind_text(st, 11, in->description_template);
    sqlite3_bind_int(st, 12, in->has_daily_cap);
    sqlite3_bind_int64(st, 13, in->daily_cap);
    sqlite3_bind_int64(st, 14, siyu_now());
    if ((rc = store_stmt_run(st)) != 0) return rc;
    if (in->has_staff && (rc = staff_write(c, in)) != 0) return rc;
    if (in->has_tags && (rc = tags_write(c, in)) != 0) return rc;
    /* WeCom sees the way's remark (the name), skip_verify and users. */
    bool visible = (in->name && strcmp(in->name, cur.name) != 0) ||
                   (in->has_skip_verify && in->skip_verify != cur.skip_verify);
    rc = channel__refresh(c, in->tenant_id, in->id, in->now ? in->now : siyu_now(), visible,
                          in->actor, &in->kick, &in->pushed, &in->err);
    if (rc != 0) return rc;
    return audit_id(c, in->tenant_id, in->actor, "channel.update", "channel", in->id,
                    in->pushed ? "pushed" : NULL);
}

int channel_delete(store_conn *c, void *arg) {
    channel_input *in = arg;
    in->kick = 0;
    in->pushed = false;
    chan_cur cur;
    int rc = chan_cur_load(c, in->tenant_id, in->id, &cur);
    if (rc != 0) return rc;
    if (!cur.found)
        return siyu_err_set(&in->err, SIYU_ENOTFOUND, NULL, "channel %lld does not exist",
                            (long long)in->id);
    sqlite3_stmt *st = store_conn_stmt(c, "UPDATE channel SET status='deleted', deleted_at=?3, "
                                          "updated_at=?3 WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    sqlite3_bind_int64(st, 3, siyu_now());
    if ((rc = store_stmt_run(st)) != 0) return rc;
    /* Without a config_id yet, the add's answer deletes the way. */
    if (cur.created) {
        rc = channel__enqueue(c, in->tenant_id, in->id, "del_contact_way",
                              json_pack("{s:s}", "config_id", cur.config_id), in->actor, &in->kick,
                              &in->err);
        if (rc != 0) return rc;
        in->pushed = true;
    }
    return audit_id(c, in->tenant_id, in->actor, "channel.delete", "channel", in->id, NULL);
}

/* ---- channel reads --------------------------------------------------------- */

#define CHANNEL_COLS                                                                               \
    "id, name, group_id, state, config_id, qr_code, type, skip_verify, remark_template, "          \
    "description_template, daily_cap, status, wecom_status, wecom_error, users, created_at, "      \
    "updated_at"

static json_t *channel_row(store_conn *c, sqlite3_stmt *st, int64_t tenant) {
    int64_t id = sqlite3_column_int64(st, 0);
    const char *users = (const char *)sqlite3_column_text(st, 14);
    json_t *u = users ? json_loads(users, 0, NULL) : NULL;
    json_t *j = json_pack(
        "{s:I,s:s,s:o,s:s,s:o,s:o,s:s,s:b,s:o,s:o,s:I,s:s,s:s,s:o,s:o,s:I,s:I}", "id",
        (json_int_t)id, "name", sqlite3_column_text(st, 1), "group_id", col_int_json(st, 2),
        "state", sqlite3_column_text(st, 3), "config_id", col_str_json(st, 4), "qr_code",
        col_str_json(st, 5), "type", sqlite3_column_text(st, 6), "skip_verify",
        sqlite3_column_int(st, 7), "remark_template", col_str_json(st, 8), "description_template",
        col_str_json(st, 9), "daily_cap", (json_int_t)sqlite3_column_int64(st, 10), "status",
        sqlite3_column_text(st, 11), "wecom_status", sqlite3_column_text(st, 12), "wecom_error",
        col_str_json(st, 13), "users", u ? u : json_array(), "created_at",
        (json_int_t)sqlite3_column_int64(st, 15), "updated_at",
        (json_int_t)sqlite3_column_int64(st, 16));
    if (!j) return NULL;
    json_t *staff = json_array(), *tags = json_array();
    sqlite3_stmt *s = store_conn_stmt(
        c, "SELECT s.employee_id, e.userid, s.role, s.daily_cap, s.schedule FROM channel_staff s "
           "JOIN employee e ON e.id=s.employee_id WHERE s.tenant_id=?1 AND s.channel_id=?2 "
           "ORDER BY s.position");
    if (s) {
        sqlite3_bind_int64(s, 1, tenant);
        sqlite3_bind_int64(s, 2, id);
        while (sqlite3_step(s) == SQLITE_ROW)
            json_array_append_new(
                staff, json_pack("{s:I,s:s,s:s,s:o,s:o}", "employee_id",
                                 (json_int_t)sqlite3_column_int64(s, 0), "userid",
                                 sqlite3_column_text(s, 1), "role", sqlite3_column_text(s, 2),
                                 "daily_cap", col_int_json(s, 3), "schedule", col_str_json(s, 4)));
        sqlite3_reset(s);
    }
    s = store_conn_stmt(c, "SELECT tag_id FROM channel_tag WHERE tenant_id=?1 AND channel_id=?2 "
                           "ORDER BY tag_id");
    if (s) {
        sqlite3_bind_int64(s, 1, tenant);
        sqlite3_bind_int64(s, 2, id);
        while (sqlite3_step(s) == SQLITE_ROW)
            json_array_append_new(tags, json_integer(sqlite3_column_int64(s, 0)));
        sqlite3_reset(s);
    }
    json_object_set_new(j, "staff", staff);
    json_object_set_new(j, "tag_ids", tags);
    return j;
}

json_t *channel_get_json(store_conn *c, int64_t tenant_id, int64_t id) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT " CHANNEL_COLS " FROM channel WHERE tenant_id=?1 AND id=?2");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, id);
    json_t *j = NULL;
    /* channel_row runs other statements while this one is on its row:
     * SQLite allows that (they are distinct cached statements). */
    if (sqlite3_step(st) == SQLITE_ROW) j = channel_row(c, st, tenant_id);
    sqlite3_reset(st);
    return j;
}

int channel_list(store_conn *c, int64_t tenant_id, channel_filter *f, json_t *items) {
    const char *status = f->status ? f->status : "active";
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT " CHANNEL_COLS " FROM channel WHERE tenant_id=?1 AND id>?2 AND "
           "(?3=0 OR group_id=?3) AND (?4='all' OR status=?4) ORDER BY id LIMIT ?5");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, f->after_id);
    sqlite3_bind_int64(st, 3, f->group_id);
    store_bind_text(st, 4, status);
    sqlite3_bind_int(st, 5, f->limit + 1);
    f->next = 0;
    int n = 0, step;
    int64_t last = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == f->limit) {
            f->next = last;
            break;
        }
        last = sqlite3_column_int64(st, 0);
        json_t *j = channel_row(c, st, tenant_id);
        if (j) json_array_append_new(items, j);
        n++;
    }
    sqlite3_reset(st);
    return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : store_rc(step);
}

/* ---- attribution ------------------------------------------------------------ */

typedef struct attr_ctx {
    int64_t tenant, channel, customer, employee, rel_id;
    char name[CHANNEL_NAME_MAX * 4 + 1];
    char *remark_t, *desc_t;
} attr_ctx;

static char *col_dup(sqlite3_stmt *st, int i) {
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? strdup(s) : NULL;
}

/* Auto-tags: customer_tag rows, and mark_tag for the WeCom corp tags. */
static int apply_auto_tags(store_conn *c, attr_ctx *a, int64_t now, unsigned *kick) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT json_group_array(tag_id), count(*) FROM channel_tag WHERE tenant_id=?1 AND "
           "channel_id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, a->tenant);
    sqlite3_bind_int64(st, 2, a->channel);
    int step = sqlite3_step(st);
    char *tags = step == SQLITE_ROW && sqlite3_column_int64(st, 1) > 0 ? col_dup(st, 0) : NULL;
    sqlite3_reset(st);
    if (step != SQLITE_ROW) return store_rc(step);
    if (!tags) return 0;
    int rc = SIYU_EIO;
    st = store_conn_stmt(c, "INSERT OR IGNORE INTO customer_tag(tenant_id, customer_id, tag_id, "
                            "source, employee_id, created_at) SELECT ?1, ?2, tag_id, 'auto', ?3, "
                            "?4 FROM channel_tag WHERE tenant_id=?1 AND channel_id=?5");
    if (st) {
        sqlite3_bind_int64(st, 1, a->tenant);
        sqlite3_bind_int64(st, 2, a->customer);
        sqlite3_bind_int64(st, 3, a->employee);
        sqlite3_bind_int64(st, 4, now);
        sqlite3_bind_int64(st, 5, a->channel);
        rc = store_stmt_run(st);
    }
    if (rc == 0) {
        char customers[32], actor[32];
        snprintf(customers, sizeof customers, "[%lld]", (long long)a->customer);
        snprintf(actor, sizeof actor, "channel:%lld", (long long)a->channel);
        int64_t queued = 0;
        siyu_err err = {0};
        rc = tag_wecom_mark(c, a->tenant, tags, customers, false, actor, kick, &queued, &err);
    }
    free(tags);
    return rc;
}

/* A channel's remark/description templates rendered for one add. */
typedef struct rendered {
    bool has_r, has_d; /* WeCom refuses a remark call whose fields are all empty */
    char remark[CUSTOMER_REMARK_CHARS * 4 + 1], desc[CUSTOMER_DESC_CHARS * 4 + 1];
    char *userid, *ext; /* malloc'd */
} rendered;

static int templates_render(store_conn *c, attr_ctx *a, int64_t ts, rendered *out) {
    memset(out, 0, sizeof *out);
    if (!a->remark_t && !a->desc_t) return 0;
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT e.userid, coalesce(e.name, e.userid), (SELECT value FROM identity i WHERE "
           "i.tenant_id=?1 AND i.customer_id=?2 AND i.kind='wecom_external_userid' LIMIT 1) "
           "FROM employee e WHERE e.tenant_id=?1 AND e.id=?3");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, a->tenant);
    sqlite3_bind_int64(st, 2, a->customer);
    sqlite3_bind_int64(st, 3, a->employee);
    int step = sqlite3_step(st);
    char *ename = NULL;
    if (step == SQLITE_ROW) {
        out->userid = col_dup(st, 0);
        ename = col_dup(st, 1);
        out->ext = col_dup(st, 2);
    }
    sqlite3_reset(st);
    int rc = step == SQLITE_ROW || step == SQLITE_DONE ? 0 : store_rc(step);
    int off;
    if (rc != 0 || !out->userid || !out->ext || !ename ||
        (rc = channel_tenant_offset(c, a->tenant, &off)) != 0) {
        free(ename);
        return rc;
    }
    channel_local lt;
    channel_local_of(ts, off, &lt);
    char date[16];
    channel__date(lt.day, date);
    if (a->remark_t)
        template_render(a->remark_t, a->name, date, ename, CUSTOMER_REMARK_CHARS, out->remark,
                        sizeof out->remark);
    if (a->desc_t)
        template_render(a->desc_t, a->name, date, ename, CUSTOMER_DESC_CHARS, out->desc,
                        sizeof out->desc);
    out->has_r = a->remark_t && out->remark[0];
    out->has_d = a->desc_t && out->desc[0];
    free(ename);
    return 0;
}

/* The rendered remark/description go to WeCom (outbox "remark", ref
 * "relationship:<id>", which the sync respects while pending); the caller
 * stored them on the relationship. */
static int remark_enqueue(store_conn *c, attr_ctx *a, const rendered *t, unsigned *kick) {
    json_t *body = json_pack("{s:s,s:s}", "userid", t->userid, "external_userid", t->ext);
    if (!body) return SIYU_ENOMEM;
    if (t->has_r) json_object_set_new(body, "remark", json_string(t->remark));
    if (t->has_d) json_object_set_new(body, "description", json_string(t->desc));
    char ref[48], origin[48];
    snprintf(ref, sizeof ref, "relationship:%lld", (long long)a->rel_id);
    snprintf(origin, sizeof origin, "remark:channel:%lld", (long long)a->channel);
    outbox_item it = {.tenant_id = a->tenant,
                      .kind = "remark",
                      .body = body,
                      .lane = OUTBOX_LANE_NORMAL,
                      .origin = origin,
                      .ref = ref};
    siyu_err err = {0};
    int rc = outbox_enqueue(c, &it, NULL, &err);
    json_decref(body);
    if (rc == 0 && kick) *kick |= 1u << OUTBOX_LANE_NORMAL;
    return rc;
}

/* *yes = employee is on the channel's staff with a daily cap. */
static int staff_has_cap(store_conn *c, int64_t tenant, int64_t channel, int64_t employee,
                         bool *yes) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT coalesce(s.daily_cap, ch.daily_cap) > 0 FROM channel_staff s JOIN channel ch ON "
           "ch.id=s.channel_id WHERE s.tenant_id=?1 AND s.channel_id=?2 AND s.employee_id=?3");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, channel);
    sqlite3_bind_int64(st, 3, employee);
    int rc = sqlite3_step(st);
    *yes = rc == SQLITE_ROW && sqlite3_column_int(st, 0) != 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_rc(rc);
}

int channel_on_add(store_conn *c, int64_t tenant_id, int64_t customer_id, int64_t employee_id,
                   const char *state, int64_t ts, int64_t now, int64_t *channel_id,
                   unsigned *kick) {
    *channel_id = 0;
    if (!state || !*state) return 0;
    attr_ctx a = {.tenant = tenant_id, .customer = customer_id, .employee = employee_id};
    rendered tpl = {0};
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT ch.id, ch.name, ch.remark_template, ch.description_template, r.id, "
           "r.channel_id IS ch.id AND r.added_at<>?4 FROM channel ch JOIN relationship r ON "
           "r.tenant_id=ch.tenant_id AND r.customer_id=?2 AND r.employee_id=?3 AND "
           "r.state=ch.state WHERE ch.tenant_id=?1 AND ch.state=?5");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, customer_id);
    sqlite3_bind_int64(st, 3, employee_id);
    sqlite3_bind_int64(st, 4, ts);
    store_bind_text(st, 5, state);
    int step = sqlite3_step(st);
    bool seen = false;
    if (step == SQLITE_ROW) {
        a.channel = sqlite3_column_int64(st, 0);
        snprintf(a.name, sizeof a.name, "%s", (const char *)sqlite3_column_text(st, 1));
        a.remark_t = col_dup(st, 2);
        a.desc_t = col_dup(st, 3);
        a.rel_id = sqlite3_column_int64(st, 4);
        seen = sqlite3_column_int(st, 5) != 0;
    }
    sqlite3_reset(st);
    int rc = step == SQLITE_ROW || step == SQLITE_DONE ? 0 : store_rc(step);
    /* No channel with this state, the relationship kept an earlier channel,
     * or this add repeats one already attributed (add_half, then add). */
    if (rc != 0 || !a.channel) goto done;
    *channel_id = a.channel;
    if (seen) goto done;
    /* The attribution and the rendered remark in one row update. */
    if ((rc = templates_render(c, &a, ts, &tpl)) != 0) goto done;
    st = store_conn_stmt(c, "UPDATE relationship SET channel_id=?2, remark=coalesce(?3, remark), "
                            "description=coalesce(?4, description), updated_at=?5 WHERE id=?1");
    if (!st) {
        rc = SIYU_EIO;
        goto done;
    }
    sqlite3_bind_int64(st, 1, a.rel_id);
    sqlite3_bind_int64(st, 2, a.channel);
    store_bind_text(st, 3, tpl.has_r ? tpl.remark : NULL);
    store_bind_text(st, 4, tpl.has_d ? tpl.desc : NULL);
    sqlite3_bind_int64(st, 5, now);
    if ((rc = store_stmt_run(st)) != 0) goto done;
    if ((rc = apply_auto_tags(c, &a, now, kick)) != 0) goto done;
    if ((tpl.has_r || tpl.has_d) && (rc = remark_enqueue(c, &a, &tpl, kick)) != 0) goto done;
    /* Only an add counted against a cap can change the roster now; time
     * slots and new days are the roster job's. */
    bool capped_staff = false;
    if ((rc = staff_has_cap(c, tenant_id, a.channel, employee_id, &capped_staff)) != 0 ||
        !capped_staff)
        goto done;
    siyu_err err = {0};
    rc = channel__refresh(c, tenant_id, a.channel, now, false, "wecom", kick, NULL, &err);
done:
    free(tpl.userid);
    free(tpl.ext);
    free(a.remark_t);
    free(a.desc_t);
    return rc;
}

/* ---- outbox answers ------------------------------------------------------------ */

/* The error text of the newest row of kind for ref (the outbox keeps it). */
static void last_error(store_conn *c, int64_t tenant, const char *kind, const char *ref,
                       int errcode, char *out, size_t cap) {
    snprintf(out, cap, "errcode %d", errcode);
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT error FROM outbox WHERE tenant_id=?1 AND "
                                          "ref=?2 AND kind=?3 ORDER BY id DESC LIMIT 1");
    if (!st) return;
    sqlite3_bind_int64(st, 1, tenant);
    store_bind_text(st, 2, ref);
    store_bind_text(st, 3, kind);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, cap, "%s: %s", kind, (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
}

static int set_status(store_conn *c, int64_t tenant, int64_t id, const char *wecom_status,
                      const char *error) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE channel SET wecom_status=coalesce(?3, wecom_status), wecom_error=?4, "
           "updated_at=?5 WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    store_bind_text(st, 3, wecom_status);
    store_bind_text(st, 4, error);
    sqlite3_bind_int64(st, 5, siyu_now());
    return store_stmt_run(st);
}

static int add_answered(store_conn *c, channel_result *r, int64_t id) {
    const char *cid = json_string_value(json_object_get(r->answer, "config_id"));
    if (!cid || !*cid) return set_status(c, r->tenant_id, id, "failed", "no config_id in answer");
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT status='deleted', dirty FROM channel WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, r->tenant_id);
    sqlite3_bind_int64(st, 2, id);
    int step = sqlite3_step(st);
    bool deleted = step == SQLITE_ROW && sqlite3_column_int(st, 0);
    bool dirty = step == SQLITE_ROW && sqlite3_column_int(st, 1);
    sqlite3_reset(st);
    if (step != SQLITE_ROW) return step == SQLITE_DONE ? 0 : store_rc(step);
    st =
        store_conn_stmt(c, "UPDATE channel SET config_id=?3, qr_code=?4, wecom_status='created', "
                           "wecom_error=NULL, dirty=0, updated_at=?5 WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, r->tenant_id);
    sqlite3_bind_int64(st, 2, id);
    store_bind_text(st, 3, cid);
    store_bind_text(st, 4, json_string_value(json_object_get(r->answer, "qr_code")));
    sqlite3_bind_int64(st, 5, siyu_now());
    int rc = store_stmt_run(st);
    if (rc != 0) return rc;
    if (deleted) /* deleted while the add was pending */
        return channel__enqueue(c, r->tenant_id, id, "del_contact_way",
                                json_pack("{s:s}", "config_id", cid), "wecom", &r->kick, &r->err);
    if (dirty) /* edited while the add was pending: push the current settings */
        return channel__refresh(c, r->tenant_id, id, siyu_now(), true, "wecom", &r->kick, NULL,
                                &r->err);
    return 0;
}

int channel_result_step(store_conn *c, void *arg) {
    channel_result *r = arg;
    r->kick = 0;
    long long id = 0;
    if (!r->ref || sscanf(r->ref, "channel:%lld", &id) != 1 || id <= 0 || !r->kind || !r->state)
        return 0;
    bool sent = !strcmp(r->state, "sent");
    char error[300];
    if (!sent) last_error(c, r->tenant_id, r->kind, r->ref, r->errcode, error, sizeof error);
    if (!strcmp(r->kind, "add_contact_way"))
        return sent ? add_answered(c, r, id) : set_status(c, r->tenant_id, id, "failed", error);
    if (!strcmp(r->kind, "update_contact_way"))
        return set_status(c, r->tenant_id, id, NULL, sent ? NULL : error);
    if (!strcmp(r->kind, "del_contact_way"))
        return set_status(c, r->tenant_id, id, sent ? "deleted" : NULL, sent ? NULL : error);
    return 0;
}

static void on_result(void *arg, int64_t tenant_id, const char *kind, const char *ref,
                      const char *state, const json_t *answer, int errcode) {
    siyu_ctx *ctx = arg;
    channel_result r = {.tenant_id = tenant_id,
                        .kind = kind,
                        .ref = ref,
                        .state = state,
                        .answer = answer,
                        .errcode = errcode};
    int rc = store_write(ctx->st, channel_result_step, &r);
    if (rc != 0)
        log_error("channels: recording the %s answer for %s failed: %s", kind, ref ? ref : "?",
                  siyu_strerror(rc));
    else
        tag_wecom_kick(ctx->ob, r.kick);
}

typedef struct caught {
    int64_t tenant;
    char *ref, *result;
} caught;

int channel_catch_up_step(store_conn *c, void *arg) {
    unsigned *kick = arg;
    *kick = 0;
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT o.tenant_id, o.ref, o.result FROM channel ch JOIN outbox o ON "
           "o.tenant_id=ch.tenant_id AND o.kind='add_contact_way' AND o.ref='channel:'||ch.id AND "
           "o.state='sent' WHERE ch.config_id IS NULL");
    if (!st) return SIYU_EIO;
    caught *cs = NULL;
    size_t n = 0, cap = 0;
    int step, rc = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            caught *g = realloc(cs, cap * sizeof *cs);
            if (!g) {
                rc = SIYU_ENOMEM;
                break;
            }
            cs = g;
        }
        cs[n++] = (caught){sqlite3_column_int64(st, 0), col_dup(st, 1), col_dup(st, 2)};
    }
    if (rc == 0 && step != SQLITE_DONE) rc = store_rc(step);
    sqlite3_reset(st);
    for (size_t i = 0; i < n; i++) {
        json_t *answer = cs[i].result ? json_loads(cs[i].result, 0, NULL) : NULL;
        channel_result r = {.tenant_id = cs[i].tenant,
                            .kind = "add_contact_way",
                            .ref = cs[i].ref,
                            .state = "sent",
                            .answer = answer};
        if (rc == 0 && answer) rc = channel_result_step(c, &r);
        *kick |= r.kick;
        json_decref(answer);
        free(cs[i].ref);
        free(cs[i].result);
    }
    free(cs);
    return rc;
}

void channel_listen(siyu_ctx *ctx) {
    if (!ctx || !ctx->ob) return;
    outbox_on_result(ctx->ob, "add_contact_way", on_result, ctx);
    outbox_on_result(ctx->ob, "update_contact_way", on_result, ctx);
    outbox_on_result(ctx->ob, "del_contact_way", on_result, ctx);
    unsigned kick = 0;
    int rc = store_write(ctx->st, channel_catch_up_step, &kick);
    if (rc != 0)
        log_error("channels: catching up on recorded add_contact_way answers failed: %s",
                  siyu_strerror(rc));
    else
        tag_wecom_kick(ctx->ob, kick);
}
