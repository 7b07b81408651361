/* welcome_rule.c — welcome-message rules: validation into a canonical form
 * (table welcome_rule), and the chooser shared by the callback's write step
 * and the preview endpoint.
 *
 * Choosing (welcome_choose), all on the caller's connection:
 *
 *   load the add's facts once (employee name/department ancestors/store,
 *   channel + group, customer name, local weekday/minute/day)
 *     ─> rules in (priority, id) order, enabled only
 *          each: every present condition must hold ─ first failure noted in why
 *     ─> first rule that holds ─────────────> WELCOME_RULE
 *     ─> none: welcome_config enabled ─────> WELCOME_DEFAULT
 *     ─> otherwise ────────────────────────> WELCOME_NONE (nothing is sent)
 *
 * A rule's conditions are stored as canonical JSON (sorted, de-duplicated id
 * lists; the schedule in channel_schedule_format's form) and parsed per
 * choice: at most WELCOME_RULES_MAX small objects per new contact.
 *
 * Ownership: welcome_choice owns its JSON (welcome_choice_reset); write-step
 * inputs borrow the request body; results are new references. */
#include "outbox/welcome_rule.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/welcome.h"
#include "store/audit.h"
#include "store/channel.h"
#include "util/utf8.h"

#define WHY_SKIPS_MAX 20 /* skipped-rule reasons kept in why */

/* ---- small helpers ---------------------------------------------------------- */

static int invalid(siyu_err *err, const char *field, const char *msg) {
    return siyu_err_set(err, SIYU_EINVAL, field, "%s: %s", field, msg);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant). */
static int64_t days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DD" (2000..2099) → days; false when malformed or not a date. */
static bool date_parse(const char *s, int64_t *day) {
    int y, m, d;
    char tail;
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-') return false;
    if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3) return false;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 2000 || y > 2099 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) return false;
    if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) return false;
    *day = days_from_civil(y, m, d);
    return true;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* ---- conditions ---------------------------------------------------------------- */

typedef struct id_list_kind {
    const char *key;
    const char *exists_sql; /* ?1 tenant, ?2 JSON array: count of existing ids */
} id_list_kind;

static const id_list_kind id_lists[] = {
    {"channel_ids", "SELECT count(*) FROM channel WHERE tenant_id=?1 AND status='active' AND id "
                    "IN (SELECT value FROM json_each(?2))"},
    {"channel_group_ids", "SELECT count(*) FROM channel_group WHERE tenant_id=?1 AND id IN "
                          "(SELECT value FROM json_each(?2))"},
    {"employee_ids", "SELECT count(*) FROM employee WHERE tenant_id=?1 AND id IN "
                     "(SELECT value FROM json_each(?2))"},
    {"department_ids", "SELECT count(*) FROM department WHERE tenant_id=?1 AND id IN "
                       "(SELECT value FROM json_each(?2))"},
    {"store_ids", "SELECT count(*) FROM store WHERE tenant_id=?1 AND id IN "
                  "(SELECT value FROM json_each(?2))"},
};
#define N_ID_LISTS (sizeof id_lists / sizeof *id_lists)

/* Validates one id list (1..WELCOME_RULE_IDS_MAX positive integers, all the
 * tenant's) into a sorted, de-duplicated array stored in out[key]. */
static int id_list_canon(store_conn *c, int64_t tenant, const id_list_kind *k, const json_t *v,
                         json_t *out, siyu_err *err) {
    char field[48];
    snprintf(field, sizeof field, "conditions.%s", k->key);
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n < 1 || n > WELCOME_RULE_IDS_MAX) {
        siyu_err_set(err, SIYU_EINVAL, field, "%s: an array of 1..%d ids", field,
                     WELCOME_RULE_IDS_MAX);
        return SIYU_EINVAL;
    }
    int64_t ids[WELCOME_RULE_IDS_MAX];
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) <= 0)
            return invalid(err, field, "ids are positive integers");
        ids[i] = json_integer_value(e);
    }
    qsort(ids, n, sizeof *ids, cmp_i64);
    json_t *arr = json_array();
    if (!arr) return SIYU_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || ids[i] != ids[i - 1]) json_array_append_new(arr, json_integer(ids[i]));
    char *txt = json_dumps(arr, JSON_COMPACT);
    sqlite3_stmt *st = txt ? store_conn_stmt(c, k->exists_sql) : NULL;
    int rc = txt ? SIYU_EIO : SIYU_ENOMEM;
    if (st) {
        sqlite3_bind_int64(st, 1, tenant);
        store_bind_text(st, 2, txt);
        int step = sqlite3_step(st);
        int64_t found = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        sqlite3_reset(st);
        if (step != SQLITE_ROW)
            rc = store_rc(step);
        else if (found != (int64_t)json_array_size(arr))
            rc = invalid(err, field, "names an id that is not this tenant's");
        else
            rc = 0;
    }
    free(txt);
    if (rc == 0)
        json_object_set_new(out, k->key, arr);
    else
        json_decref(arr);
    return rc;
}

/* Validates the conditions object into its canonical form (*out, new). */
static int cond_canon(store_conn *c, int64_t tenant, const json_t *in, json_t **out,
                      siyu_err *err) {
    *out = NULL;
    if (in && !json_is_object(in) && !json_is_null(in))
        return invalid(err, "conditions", "must be an object");
    json_t *o = json_object();
    if (!o) return SIYU_ENOMEM;
    int rc = 0;
    const char *key;
    json_t *v;
    int64_t from = -1, to = -1;
    json_object_foreach((json_t *)in, key, v) {
        char field[64];
        snprintf(field, sizeof field, "conditions.%.40s", key);
        size_t i = 0;
        while (i < N_ID_LISTS && strcmp(id_lists[i].key, key))
            i++;
        if (json_is_null(v)) continue; /* null = absent = any */
        if (i < N_ID_LISTS) {
            rc = id_list_canon(c, tenant, &id_lists[i], v, o, err);
        } else if (!strcmp(key, "schedule")) {
            channel_schedule s;
            char canon[1024];
            if (!json_is_string(v) || json_string_length(v) > 512)
                rc = invalid(err, field, "a schedule text like \"mon-fri 09:00-18:00\"");
            else if ((rc = channel_schedule_parse(json_string_value(v), field, &s, err)) == 0 &&
                     s.n > 0) {
                channel_schedule_format(&s, canon, sizeof canon);
                json_object_set_new(o, key, json_string(canon));
            }
        } else if (!strcmp(key, "date_from") || !strcmp(key, "date_to")) {
            int64_t *d = key[5] == 'f' ? &from : &to;
            if (!json_is_string(v) || !date_parse(json_string_value(v), d))
                rc = invalid(err, field, "a date YYYY-MM-DD (2000..2099)");
            else
                json_object_set(o, key, v);
        } else {
            rc = invalid(err, field,
                         "unknown condition (channel_ids, channel_group_ids, "
                         "employee_ids, department_ids, store_ids, schedule, "
                         "date_from, date_to)");
        }
        if (rc != 0) break;
    }
    if (rc == 0 && from >= 0 && to >= 0 && from > to)
        rc = invalid(err, "conditions.date_to", "must not be before date_from");
    if (rc != 0) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* ---- content ------------------------------------------------------------------- */

static const char *const placeholders[] = {"customer_name", "employee_name", NULL};

int welcome_text_check(const char *text, const char *field, siyu_err *err) {
    for (const char *p = strchr(text, '{'); p; p = strchr(p + 1, '{')) {
        const char *q = p + 1;
        while ((*q >= 'a' && *q <= 'z') || *q == '_')
            q++;
        if (q == p + 1 || (*q != '}' && *q != '|')) continue; /* a literal brace */
        size_t n = (size_t)(q - p - 1);
        int k = 0;
        while (placeholders[k] &&
               (strlen(placeholders[k]) != n || strncmp(placeholders[k], p + 1, n)))
            k++;
        if (!placeholders[k])
            return siyu_err_set(err, SIYU_EINVAL, field,
                                "%s: unknown placeholder {%.*s} (known: {customer_name}, "
                                "{employee_name}, optionally {name|fallback})",
                                field, (int)(n > 40 ? 40 : n), p + 1);
        if (*q == '|') {
            const char *e = strchr(q, '}');
            const char *b = strchr(q, '{');
            if (!e || (b && b < e) || (size_t)(e - q - 1) > WELCOME_FALLBACK_MAX)
                return siyu_err_set(err, SIYU_EINVAL, field,
                                    "%s: a placeholder's fallback ends with '}' and is at most %d "
                                    "bytes",
                                    field, WELCOME_FALLBACK_MAX);
        }
    }
    return 0;
}

/* A string member key of obj: required or optional, 1..max bytes, URL-shaped
 * when url. *out = the value or NULL. */
static int str_member(const json_t *obj, const char *key, size_t max, bool required, bool url,
                      const char *prefix, const char **out, siyu_err *err) {
    char field[96];
    snprintf(field, sizeof field, "%s.%s", prefix, key);
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return required ? invalid(err, field, "required") : 0;
    if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > max)
        return siyu_err_set(err, SIYU_EINVAL, field, "%s: a string of 1..%zu bytes", field, max);
    const char *s = json_string_value(v);
    if (url && strncmp(s, "https://", 8) && strncmp(s, "http://", 7))
        return invalid(err, field, "an http(s) URL");
    *out = s;
    return 0;
}

typedef struct attach_member {
    const char *key;
    size_t max;
    bool required, url;
} attach_member;

typedef struct attach_kind {
    const char *msgtype;
    attach_member m[4];
} attach_kind;

/* Shapes and limits of spec §3.4. An image needs media_id or pic_url. */
static const attach_kind attach_kinds[] = {
    {"image", {{"media_id", 256, false, false}, {"pic_url", 2048, false, true}}},
    {"link",
     {{"title", 128, true, false},
      {"url", 2048, true, true},
      {"picurl", 2048, false, true},
      {"desc", 512, false, false}}},
    {"miniprogram",
     {{"title", 64, true, false},
      {"pic_media_id", 256, true, false},
      {"appid", 64, true, false},
      {"page", 1024, true, false}}},
    {"video", {{"media_id", 256, true, false}}},
    {"file", {{"media_id", 256, true, false}}},
};

/* One attachment into its canonical form (only known members). */
static int attach_canon(const json_t *a, size_t i, json_t **out, siyu_err *err) {
    char prefix[48];
    snprintf(prefix, sizeof prefix, "attachments[%zu]", i);
    *out = NULL;
    const char *mt = json_string_value(json_object_get(a, "msgtype"));
    if (!json_is_object(a) || !mt) return invalid(err, prefix, "an object with msgtype");
    const attach_kind *k = NULL;
    for (size_t j = 0; j < sizeof attach_kinds / sizeof *attach_kinds; j++)
        if (!strcmp(attach_kinds[j].msgtype, mt)) k = &attach_kinds[j];
    if (!k) {
        char f[64];
        snprintf(f, sizeof f, "%s.msgtype", prefix);
        return invalid(err, f, "image, link, miniprogram, video or file");
    }
    if (json_object_size(a) != 2) return invalid(err, prefix, "holds msgtype and one object");
    const json_t *inner = json_object_get(a, mt);
    char ip[64];
    snprintf(ip, sizeof ip, "%s.%s", prefix, mt);
    if (!json_is_object(inner)) return invalid(err, ip, "required object");
    json_t *canon = json_object();
    int rc = 0;
    size_t known = 0;
    for (int m = 0; m < 4 && k->m[m].key && rc == 0; m++) {
        const char *s;
        rc =
            str_member(inner, k->m[m].key, k->m[m].max, k->m[m].required, k->m[m].url, ip, &s, err);
        if (rc == 0 && s) {
            json_object_set_new(canon, k->m[m].key, json_string(s));
            known++;
        }
    }
    if (rc == 0 && known != json_object_size(inner)) rc = invalid(err, ip, "has an unknown member");
    if (rc == 0 && !strcmp(mt, "image") && known == 0)
        rc = invalid(err, ip, "needs media_id or pic_url");
    if (rc != 0) {
        json_decref(canon);
        return rc;
    }
    *out = json_pack("{s:s,s:o}", "msgtype", mt, mt, canon);
    return *out ? 0 : SIYU_ENOMEM;
}

static int attachments_canon(const json_t *v, json_t **out, siyu_err *err) {
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_array(v) || json_array_size(v) > WELCOME_ATTACH_MAX)
        return siyu_err_set(err, SIYU_EINVAL, "attachments",
                            "attachments: an array of at most %d (WeCom's limit)",
                            WELCOME_ATTACH_MAX);
    json_t *arr = json_array();
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *a;
        int rc = attach_canon(json_array_get(v, i), i, &a, err);
        if (rc != 0) {
            json_decref(arr);
            return rc;
        }
        json_array_append_new(arr, a);
    }
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        arr = NULL;
    }
    *out = arr;
    return 0;
}

/* ---- writes -------------------------------------------------------------------- */

typedef struct rule_row {
    const char *name, *text;
    int64_t priority;
    bool has_priority, enabled;
    json_t *cond, *att; /* owned */
} rule_row;

static const char *const body_keys[] = {"name", "priority",    "enabled", "conditions",
                                        "text", "attachments", NULL};

static int body_parse(store_conn *c, welcome_rule_input *in, rule_row *r) {
    const json_t *b = in->body;
    const char *key;
    json_t *v;
    memset(r, 0, sizeof *r);
    r->enabled = true;
    if (!json_is_object(b)) return invalid(&in->err, "body", "a JSON object");
    json_object_foreach((json_t *)b, key, v) {
        int k = 0;
        while (body_keys[k] && strcmp(body_keys[k], key))
            k++;
        if (!body_keys[k]) {
            char f[64];
            snprintf(f, sizeof f, "%.60s", key);
            return invalid(&in->err, f, "unknown field");
        }
    }
    const json_t *name = json_object_get(b, "name");
    if (!json_is_string(name) || json_string_length(name) < 1 ||
        utf8_chars(json_string_value(name)) > WELCOME_RULE_NAME_MAX)
        return siyu_err_set(&in->err, SIYU_EINVAL, "name", "name: 1..%d characters",
                            WELCOME_RULE_NAME_MAX);
    r->name = json_string_value(name);
    const json_t *p = json_object_get(b, "priority");
    if (p && !json_is_null(p)) {
        if (!json_is_integer(p) || json_integer_value(p) < 0 ||
            json_integer_value(p) > WELCOME_PRIORITY_MAX)
            return siyu_err_set(&in->err, SIYU_EINVAL, "priority",
                                "priority: an integer 0..%d (lower is tried first)",
                                WELCOME_PRIORITY_MAX);
        r->priority = json_integer_value(p);
        r->has_priority = true;
    }
    const json_t *en = json_object_get(b, "enabled");
    if (en && !json_is_boolean(en)) return invalid(&in->err, "enabled", "true or false");
    if (en) r->enabled = json_is_true(en);
    const json_t *t = json_object_get(b, "text");
    if (t && !json_is_null(t)) {
        if (!json_is_string(t) || json_string_length(t) < 1 ||
            json_string_length(t) > WELCOME_TEXT_MAX)
            return siyu_err_set(&in->err, SIYU_EINVAL, "text", "text: 1..%d bytes",
                                WELCOME_TEXT_MAX);
        r->text = json_string_value(t);
        int rc = welcome_text_check(r->text, "text", &in->err);
        if (rc) return rc;
    }
    int rc = attachments_canon(json_object_get(b, "attachments"), &r->att, &in->err);
    if (rc == 0 && !r->text && !r->att)
        rc = invalid(&in->err, "text", "give text or attachments (WeCom refuses both empty)");
    if (rc == 0)
        rc = cond_canon(c, in->tenant_id, json_object_get(b, "conditions"), &r->cond, &in->err);
    return rc;
}

static void rule_row_reset(rule_row *r) {
    json_decref(r->cond);
    json_decref(r->att);
}

static int count_rules(store_conn *c, int64_t tenant, int64_t *n) {
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT count(*) FROM welcome_rule WHERE tenant_id=?1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    int rc = store_stmt_query_id(st, n, NULL);
    return rc < 0 ? rc : 0;
}

static int rule_store(store_conn *c, welcome_rule_input *in, rule_row *r, bool create) {
    char *cond = json_dumps(r->cond, JSON_COMPACT | JSON_SORT_KEYS);
    char *att = r->att ? json_dumps(r->att, JSON_COMPACT) : NULL;
    int rc = SIYU_ENOMEM;
    if (!cond || (r->att && !att)) goto done;
    rc = SIYU_EIO;
    sqlite3_stmt *st = store_conn_stmt(
        c, create ? "INSERT INTO welcome_rule(tenant_id, name, priority, enabled, cond, text, "
                    "attachments, created_by, created_at, updated_at) VALUES(?1,?3,CASE WHEN ?4 "
                    "THEN ?5 ELSE (SELECT coalesce(max(priority),0)+10 FROM welcome_rule WHERE "
                    "tenant_id=?1) END,?6,?7,?8,?9,?10,?11,?11)"
                  : "UPDATE welcome_rule SET name=?3, priority=CASE WHEN ?4 THEN ?5 ELSE "
                    "priority END, enabled=?6, cond=?7, text=?8, attachments=?9, updated_at=?11 "
                    "WHERE tenant_id=?1 AND id=?2");
    if (!st) goto done;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    store_bind_text(st, 3, r->name);
    sqlite3_bind_int(st, 4, r->has_priority);
    sqlite3_bind_int64(st, 5, r->priority);
    sqlite3_bind_int(st, 6, r->enabled);
    store_bind_text(st, 7, cond);
    store_bind_text(st, 8, r->text);
    store_bind_text(st, 9, att);
    store_bind_text(st, 10, in->actor);
    sqlite3_bind_int64(st, 11, siyu_now());
    rc = store_stmt_run(st);
    if (rc == SIYU_ECONFLICT) {
        siyu_err_set(&in->err, rc, "name", "name: a welcome rule with this name exists");
        goto done;
    }
    if (rc != 0) goto done;
    if (create)
        in->id = store_conn_last_id(c);
    else if (store_conn_changes(c) == 0) {
        rc = siyu_err_set(&in->err, SIYU_ENOTFOUND, NULL, "welcome rule %lld not found",
                          (long long)in->id);
        goto done;
    }
    char target[40];
    snprintf(target, sizeof target, "welcome_rule:%lld", (long long)in->id);
    rc = store_audit(c, in->tenant_id, in->actor,
                     create ? "welcome_rule.create" : "welcome_rule.update", target, 1,
                     r->enabled ? "enabled" : "disabled");
    if (rc == 0) {
        in->result = welcome_rule_get_json(c, in->tenant_id, in->id);
        if (!in->result) rc = SIYU_EIO;
    }
done:
    free(cond);
    free(att);
    return rc;
}

static int rule_write(store_conn *c, void *arg, bool create) {
    welcome_rule_input *in = arg;
    if (create) {
        int64_t n = 0;
        int rc = count_rules(c, in->tenant_id, &n);
        if (rc) return rc;
        if (n >= WELCOME_RULES_MAX)
            return siyu_err_set(&in->err, SIYU_ECONFLICT, NULL,
                                "a tenant has at most %d welcome rules", WELCOME_RULES_MAX);
    }
    rule_row r;
    int rc = body_parse(c, in, &r);
    if (rc == 0) rc = rule_store(c, in, &r, create);
    rule_row_reset(&r);
    return rc;
}

int welcome_rule_create(store_conn *c, void *arg) {
    return rule_write(c, arg, true);
}

int welcome_rule_replace(store_conn *c, void *arg) {
    return rule_write(c, arg, false);
}

int welcome_rule_delete(store_conn *c, void *arg) {
    welcome_rule_input *in = arg;
    sqlite3_stmt *st = store_conn_stmt(c, "DELETE FROM welcome_rule WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    int rc = store_stmt_run(st);
    if (rc != 0) return rc;
    if (store_conn_changes(c) == 0)
        return siyu_err_set(&in->err, SIYU_ENOTFOUND, NULL, "welcome rule %lld not found",
                            (long long)in->id);
    char target[40];
    snprintf(target, sizeof target, "welcome_rule:%lld", (long long)in->id);
    return store_audit(c, in->tenant_id, in->actor, "welcome_rule.delete", target, 1, NULL);
}

/* ---- reads --------------------------------------------------------------------- */

#define RULE_COLS "id, name, priority, enabled, cond, text, attachments, created_at, updated_at"

static json_t *loads_or_null(const char *s) {
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    return j ? j : json_null();
}

static json_t *rule_json(sqlite3_stmt *st) {
    const char *text = (const char *)sqlite3_column_text(st, 5);
    return json_pack(
        "{s:I,s:s,s:I,s:b,s:o,s:o,s:o,s:I,s:I}", "id", (json_int_t)sqlite3_column_int64(st, 0),
        "name", (const char *)sqlite3_column_text(st, 1), "priority",
        (json_int_t)sqlite3_column_int64(st, 2), "enabled", sqlite3_column_int(st, 3) != 0,
        "conditions", loads_or_null((const char *)sqlite3_column_text(st, 4)), "text",
        text ? json_string(text) : json_null(), "attachments",
        loads_or_null((const char *)sqlite3_column_text(st, 6)), "created_at",
        (json_int_t)sqlite3_column_int64(st, 7), "updated_at",
        (json_int_t)sqlite3_column_int64(st, 8));
}

json_t *welcome_rule_get_json(store_conn *c, int64_t tenant_id, int64_t id) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT " RULE_COLS " FROM welcome_rule WHERE tenant_id=?1 AND id=?2");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, id);
    json_t *j = sqlite3_step(st) == SQLITE_ROW ? rule_json(st) : NULL;
    sqlite3_reset(st);
    return j;
}

int welcome_rule_list(store_conn *c, int64_t tenant_id, json_t *items) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT " RULE_COLS " FROM welcome_rule WHERE tenant_id=?1 ORDER BY priority, id");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(items, rule_json(st));
    sqlite3_reset(st);
    return step == SQLITE_DONE ? 0 : store_rc(step);
}

/* ---- choosing ------------------------------------------------------------------ */

const char *welcome_source_name(welcome_source s) {
    return s == WELCOME_RULE ? "rule" : s == WELCOME_DEFAULT ? "default" : "none";
}

void welcome_choice_reset(welcome_choice *ch) {
    json_decref(ch->rule_name);
    json_decref(ch->body);
    json_decref(ch->why);
    memset(ch, 0, sizeof *ch);
}

/* What is known about one add. */
typedef struct facts {
    int64_t employee, channel, channel_group, store;
    int64_t depts[64]; /* the employee's department and its ancestors */
    int ndepts;
    char emp_name[256], cust_name[256];
    channel_local local;
} facts;

static void copy_col(sqlite3_stmt *st, int i, char *out, size_t cap) {
    const char *s = (const char *)sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", s ? s : "");
}

static int facts_load(store_conn *c, int64_t tenant, const welcome_ctx *x, facts *f) {
    memset(f, 0, sizeof *f);
    f->employee = x->employee_id;
    f->channel = x->channel_id;
    if (x->employee_id <= 0) goto rest; /* an add always names one; be safe */
    sqlite3_stmt *st = store_conn_stmt(
        c, "WITH RECURSIVE up(id, depth) AS (SELECT department_id, 0 FROM employee WHERE "
           "tenant_id=?1 AND id=?2 AND department_id IS NOT NULL UNION ALL SELECT d.parent_id, "
           "up.depth+1 FROM department d JOIN up ON d.id=up.id WHERE d.parent_id IS NOT NULL AND "
           "up.depth < 63) SELECT e.name, coalesce(e.store_id, 0), (SELECT json_group_array(id) "
           "FROM up) FROM employee e WHERE e.tenant_id=?1 AND e.id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, x->employee_id);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        copy_col(st, 0, f->emp_name, sizeof f->emp_name);
        f->store = sqlite3_column_int64(st, 1);
        json_t *d = json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL);
        for (size_t i = 0; i < json_array_size(d) && f->ndepts < 64; i++)
            f->depts[f->ndepts++] = json_integer_value(json_array_get(d, i));
        json_decref(d);
    }
    sqlite3_reset(st);
    if (step == SQLITE_DONE) return SIYU_ENOTFOUND;
    if (step != SQLITE_ROW) return store_rc(step);
rest:
    if (x->channel_id > 0) {
        st = store_conn_stmt(c, "SELECT coalesce(group_id, 0) FROM channel WHERE tenant_id=?1 AND "
                                "id=?2");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, tenant);
        sqlite3_bind_int64(st, 2, x->channel_id);
        int qrc = store_stmt_query_id(st, &f->channel_group, NULL);
        if (qrc < 0) return qrc;
    }
    if (x->customer_id > 0) {
        st = store_conn_stmt(c, "SELECT name FROM customer WHERE tenant_id=?1 AND id=?2");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, tenant);
        sqlite3_bind_int64(st, 2, x->customer_id);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) copy_col(st, 0, f->cust_name, sizeof f->cust_name);
        sqlite3_reset(st);
        if (step != SQLITE_ROW && step != SQLITE_DONE) return store_rc(step);
    }
    int offset = 0;
    int rc = channel_tenant_offset(c, tenant, &offset);
    if (rc) return rc;
    channel_local_of(x->ts, offset, &f->local);
    return 0;
}

static bool list_has(const json_t *arr, int64_t v) {
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (json_integer_value(json_array_get(arr, i)) == v) return true;
    return false;
}

/* NULL when every condition of cond holds for f, else the first failing
 * condition's explanation in buf. *matched lists the conditions that held. */
static const char *cond_fails(const json_t *cond, const facts *f, char *buf, size_t cap,
                              char *matched, size_t mcap) {
    const json_t *v;
    matched[0] = 0;
#define HELD(name)                                                                                 \
    (strlen(matched) + 32 < mcap ? strcat(strcat(matched, *matched ? ", " : ""), name) : matched)
    if ((v = json_object_get(cond, "channel_ids"))) {
        if (!f->channel || !list_has(v, f->channel)) {
            snprintf(buf, cap,
                     f->channel ? "channel %lld not in channel_ids"
                                : "no channel (not "
                                  "a channel QR code add)",
                     (long long)f->channel);
            return buf;
        }
        HELD("channel_ids");
    }
    if ((v = json_object_get(cond, "channel_group_ids"))) {
        if (!f->channel_group || !list_has(v, f->channel_group)) {
            snprintf(buf, cap, "channel group %lld not in channel_group_ids",
                     (long long)f->channel_group);
            return buf;
        }
        HELD("channel_group_ids");
    }
    if ((v = json_object_get(cond, "employee_ids"))) {
        if (!list_has(v, f->employee)) {
            snprintf(buf, cap, "employee %lld not in employee_ids", (long long)f->employee);
            return buf;
        }
        HELD("employee_ids");
    }
    if ((v = json_object_get(cond, "department_ids"))) {
        bool in = false;
        for (int i = 0; i < f->ndepts && !in; i++)
            in = list_has(v, f->depts[i]);
        if (!in) {
            snprintf(buf, cap,
                     "employee's department %lld (with its parents) not in "
                     "department_ids",
                     (long long)(f->ndepts ? f->depts[0] : 0));
            return buf;
        }
        HELD("department_ids");
    }
    if ((v = json_object_get(cond, "store_ids"))) {
        if (!f->store || !list_has(v, f->store)) {
            snprintf(buf, cap, "employee's store %lld not in store_ids", (long long)f->store);
            return buf;
        }
        HELD("store_ids");
    }
    if ((v = json_object_get(cond, "schedule"))) {
        channel_schedule s;
        siyu_err e;
        static const char *const wd[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
        if (channel_schedule_parse(json_string_value(v), "schedule", &s, &e) != 0 ||
            !channel_schedule_on(&s, f->local.weekday, f->local.minute)) {
            snprintf(buf, cap, "%s %02d:%02d (tenant time) outside schedule \"%s\"",
                     wd[f->local.weekday], f->local.minute / 60, f->local.minute % 60,
                     json_string_value(v));
            return buf;
        }
        HELD("schedule");
    }
    int64_t d;
    if ((v = json_object_get(cond, "date_from")) && date_parse(json_string_value(v), &d)) {
        if (f->local.day < d) {
            snprintf(buf, cap, "before date_from %s", json_string_value(v));
            return buf;
        }
        HELD("date_from");
    }
    if ((v = json_object_get(cond, "date_to")) && date_parse(json_string_value(v), &d)) {
        if (f->local.day > d) {
            snprintf(buf, cap, "after date_to %s", json_string_value(v));
            return buf;
        }
        HELD("date_to");
    }
#undef HELD
    return NULL;
}

/* Appends text with the placeholders filled to out (cap bytes incl. NUL),
 * cut at a character boundary when it does not fit. */
static void render(const char *text, const facts *f, char *out, size_t cap) {
    size_t n = 0;
    for (const char *p = text; *p && n + 1 < cap;) {
        const char *q = p + 1;
        if (*p == '{') {
            while ((*q >= 'a' && *q <= 'z') || *q == '_')
                q++;
            size_t len = (size_t)(q - p - 1);
            const char *val = NULL;
            if (len == 13 && !strncmp(p + 1, "customer_name", 13)) val = f->cust_name;
            if (len == 13 && !strncmp(p + 1, "employee_name", 13)) val = f->emp_name;
            const char *end = *q == '}' ? q : *q == '|' ? strchr(q, '}') : NULL;
            if (val && end) {
                const char *fb = *q == '|' ? q + 1 : end;
                size_t vlen = *val ? strlen(val) : (size_t)(end - fb);
                const char *src = *val ? val : fb;
                for (size_t i = 0; i < vlen && n + 1 < cap; i++)
                    out[n++] = src[i];
                p = end + 1;
                continue;
            }
        }
        out[n++] = *p++;
    }
    /* never end inside a UTF-8 sequence */
    size_t k = n;
    while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
        k--;
    if (k > 0) {
        unsigned char lead = (unsigned char)out[k - 1];
        size_t need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
        if (n - (k - 1) < need) n = k - 1;
    }
    out[n] = 0;
}

/* The send_welcome_msg body (without the code) for text/attachments. */
static json_t *body_of(const char *text, const char *att, const facts *f) {
    json_t *b = json_object();
    if (text && *text) {
        char *buf = malloc(WELCOME_TEXT_MAX + 1);
        if (!buf) {
            json_decref(b);
            return NULL;
        }
        render(text, f, buf, WELCOME_TEXT_MAX + 1);
        json_object_set_new(b, "text", json_pack("{s:s}", "content", buf));
        free(buf);
    }
    if (att) {
        json_t *a = json_loads(att, 0, NULL);
        if (a) json_object_set_new(b, "attachments", a);
    }
    return b;
}

static void why_add(welcome_choice *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void why_add(welcome_choice *out, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    json_array_append_new(out->why, json_string(buf));
}

static int choose_default(store_conn *c, int64_t tenant, const facts *f, welcome_choice *out) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT text FROM welcome_config WHERE tenant_id=?1 AND enabled=1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        out->source = WELCOME_DEFAULT;
        out->body = body_of((const char *)sqlite3_column_text(st, 0), NULL, f);
        why_add(out, "no rule matched: the tenant default");
    } else if (step == SQLITE_DONE) {
        why_add(out, "no rule matched and the tenant default is off: nothing sent");
    }
    sqlite3_reset(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) return store_rc(step);
    return step == SQLITE_ROW && !out->body ? SIYU_ENOMEM : 0;
}

int welcome_choose(store_conn *c, int64_t tenant_id, const welcome_ctx *x, welcome_choice *out) {
    memset(out, 0, sizeof *out);
    facts *f = malloc(sizeof *f);
    out->why = json_array();
    int rc = f && out->why ? facts_load(c, tenant_id, x, f) : SIYU_ENOMEM;
    sqlite3_stmt *st = NULL;
    if (rc != 0) goto done;
    st = store_conn_stmt(c, "SELECT id, name, cond, text, attachments FROM welcome_rule WHERE "
                            "tenant_id=?1 AND enabled=1 ORDER BY priority, id");
    if (!st) {
        rc = SIYU_EIO;
        goto done;
    }
    sqlite3_bind_int64(st, 1, tenant_id);
    int step, skipped = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        json_t *cond = json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL);
        char buf[256], matched[256];
        const char *fail = cond ? cond_fails(cond, f, buf, sizeof buf, matched, sizeof matched)
                                : "conditions unreadable";
        json_decref(cond);
        if (fail) {
            /* the log keeps the first WHY_SKIPS_MAX reasons and a count */
            if (skipped++ < WHY_SKIPS_MAX)
                why_add(out, "rule %lld \"%s\" skipped: %s", (long long)id, name, fail);
            continue;
        }
        if (skipped > WHY_SKIPS_MAX) why_add(out, "%d more rules skipped", skipped - WHY_SKIPS_MAX);
        out->source = WELCOME_RULE;
        out->rule_id = id;
        out->rule_name = json_string(name);
        why_add(out, "rule %lld \"%s\" chosen: %s", (long long)id, name,
                *matched ? matched : "no conditions (matches every add)");
        out->body = body_of((const char *)sqlite3_column_text(st, 3),
                            (const char *)sqlite3_column_text(st, 4), f);
        if (!out->body) rc = SIYU_ENOMEM;
        break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = store_rc(step);
    sqlite3_reset(st);
    if (out->source == WELCOME_NONE && skipped > WHY_SKIPS_MAX)
        why_add(out, "%d more rules skipped", skipped - WHY_SKIPS_MAX);
    if (rc == 0 && out->source == WELCOME_NONE) rc = choose_default(c, tenant_id, f, out);
done:
    free(f);
    if (rc != 0) welcome_choice_reset(out);
    return rc;
}
