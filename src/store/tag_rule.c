/* tag_rule.c — auto-tag rules: validation into canonical params (table
 * tag_rule), loading a tenant's rules into a tag_rule_set, and evaluation
 * inside the triggering write step.
 *
 *   trigger (ingest / events / stage) ─> tag_rule_set_load (one indexed query)
 *     ─ none: return ─ some: each rule of the trigger ─ holds? ─> hit()
 *   hit(): INSERT OR IGNORE customer_tag (source 'rule') per tag of the rule
 *          that still exists ─ newly applied ones ─> tag_wecom_mark (WeCom
 *          tags, active relationships) ─> hits+1, tag_rule_hit row
 *
 * Ownership: a tag_rule_set owns its rules' parsed params (jansson) and the
 * tag id texts; inputs borrow the request body. */
#include "store/tag_rule.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/audit.h"
#include "store/tag_wecom.h"
#include "util/utf8.h"
#include "wecom/wecom_event.h"

static const char *const trigger_names[] = {"channel",     "group_join", "keyword",
                                            "event_count", "stage",      NULL};

static unsigned trigger_bit(const char *name) {
    for (int i = 0; trigger_names[i]; i++)
        if (!strcmp(trigger_names[i], name)) return 1u << i;
    return 0;
}

static int invalid(siyu_err *err, const char *field, const char *msg) {
    return siyu_err_set(err, SIYU_EINVAL, field, "%s: %s", field, msg);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* ---- validation ---------------------------------------------------------------- */

/* v: 1..max positive ints, each existing per exists_sql (?1 tenant, ?2 JSON
 * array; returns the count found) → sorted unique array (new) in *out. */
static int ids_canon(store_conn *c, int64_t tenant, const json_t *v, size_t max,
                     const char *exists_sql, const char *field, json_t **out, siyu_err *err) {
    *out = NULL;
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n < 1 || n > max)
        return siyu_err_set(err, SIYU_EINVAL, field, "%s: an array of 1..%zu ids", field, max);
    int64_t ids[TAG_RULE_IDS_MAX];
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) <= 0)
            return invalid(err, field, "ids are positive integers");
        ids[i] = json_integer_value(e);
    }
    qsort(ids, n, sizeof *ids, cmp_i64);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        if (i == 0 || ids[i] != ids[i - 1]) json_array_append_new(arr, json_integer(ids[i]));
    char *txt = json_dumps(arr, JSON_COMPACT);
    sqlite3_stmt *st = txt ? store_conn_stmt(c, exists_sql) : NULL;
    int rc = txt ? SIYU_EIO : SIYU_ENOMEM;
    if (st) {
        sqlite3_bind_int64(st, 1, tenant);
        store_bind_text(st, 2, txt);
        int step = sqlite3_step(st);
        int64_t found = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        sqlite3_reset(st);
        rc = step != SQLITE_ROW ? store_rc(step)
             : found != (int64_t)json_array_size(arr)
                 ? invalid(err, field, "names an id that is not this tenant's")
                 : 0;
    }
    free(txt);
    if (rc == 0)
        *out = arr;
    else
        json_decref(arr);
    return rc;
}

/* An array of 1..max strings of 1..max_chars characters (no control
 * characters) → array (new); lower when ASCII letters are folded. */
static int strs_canon(const json_t *v, size_t max, size_t max_chars, bool lower, const char *field,
                      json_t **out, siyu_err *err) {
    *out = NULL;
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n < 1 || n > max)
        return siyu_err_set(err, SIYU_EINVAL, field, "%s: an array of 1..%zu strings", field, max);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(v, i));
        size_t chars = s ? utf8_chars(s) : 0;
        bool clean = s != NULL;
        for (const char *p = s; p && *p && clean; p++)
            clean = (unsigned char)*p >= 0x20;
        if (!s || chars < 1 || chars > max_chars || !clean) {
            json_decref(arr);
            return siyu_err_set(err, SIYU_EINVAL, field,
                                "%s: strings of 1..%zu characters without control characters",
                                field, max_chars);
        }
        char *d = strdup(s);
        if (lower)
            for (char *p = d; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        json_array_append_new(arr, json_string(d));
        free(d);
    }
    *out = arr;
    return 0;
}

static bool event_type_ok(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || strchr("_.:-", s[i])))
            return false;
    return true;
}

#define EXISTS(table)                                                                              \
    "SELECT count(*) FROM " table " WHERE tenant_id=?1 AND id IN (SELECT value FROM "              \
                                  "json_each(?2))"

/* Checks that params holds only the names in keys (NULL-terminated). */
static int only_keys(const json_t *params, const char *const *keys, siyu_err *err) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)params, key, v) {
        int k = 0;
        while (keys[k] && strcmp(keys[k], key))
            k++;
        if (!keys[k]) {
            char f[80];
            snprintf(f, sizeof f, "params.%.60s", key);
            return invalid(err, f, "unknown for this trigger");
        }
    }
    return 0;
}

static int params_canon(store_conn *c, int64_t tenant, unsigned trig, const json_t *p, json_t **out,
                        siyu_err *err) {
    *out = NULL;
    if (!json_is_object(p)) return invalid(err, "params", "an object");
    json_t *o = json_object(), *v = NULL;
    int rc = 0;
    switch (trig) {
    case TAG_TRIGGER_CHANNEL: {
        static const char *const keys[] = {"channel_ids", "channel_group_ids", NULL};
        if ((rc = only_keys(p, keys, err))) break;
        const json_t *a = json_object_get(p, "channel_ids"),
                     *g = json_object_get(p, "channel_group_ids");
        if (!a && !g) {
            rc = invalid(err, "params.channel_ids", "give channel_ids and/or channel_group_ids");
            break;
        }
        if (a && (rc = ids_canon(c, tenant, a, TAG_RULE_IDS_MAX, EXISTS("channel"),
                                 "params.channel_ids", &v, err)) == 0)
            json_object_set_new(o, "channel_ids", v);
        if (rc == 0 && g &&
            (rc = ids_canon(c, tenant, g, TAG_RULE_IDS_MAX, EXISTS("channel_group"),
                            "params.channel_group_ids", &v, err)) == 0)
            json_object_set_new(o, "channel_group_ids", v);
        break;
    }
    case TAG_TRIGGER_GROUP_JOIN: {
        static const char *const keys[] = {"chat_ids", NULL};
        if ((rc = only_keys(p, keys, err))) break;
        if ((rc = strs_canon(json_object_get(p, "chat_ids"), TAG_RULE_IDS_MAX, 64, false,
                             "params.chat_ids", &v, err)) == 0)
            json_object_set_new(o, "chat_ids", v);
        break;
    }
    case TAG_TRIGGER_KEYWORD: {
        static const char *const keys[] = {"keywords", "event_type", NULL};
        if ((rc = only_keys(p, keys, err))) break;
        const json_t *t = json_object_get(p, "event_type");
        if (t && !event_type_ok(json_string_value(t))) {
            rc = invalid(err, "params.event_type", "1..64 of [a-z0-9_.:-]");
            break;
        }
        json_object_set_new(o, "event_type", json_string(t ? json_string_value(t) : "message"));
        if ((rc = strs_canon(json_object_get(p, "keywords"), TAG_RULE_KEYWORDS_MAX,
                             TAG_RULE_KEYWORD_MAX, true, "params.keywords", &v, err)) == 0)
            json_object_set_new(o, "keywords", v);
        break;
    }
    case TAG_TRIGGER_EVENT_COUNT: {
        static const char *const keys[] = {"event_type", "count", "window_days", NULL};
        if ((rc = only_keys(p, keys, err))) break;
        const json_t *t = json_object_get(p, "event_type"), *n = json_object_get(p, "count"),
                     *d = json_object_get(p, "window_days");
        if (!event_type_ok(json_string_value(t)))
            rc = invalid(err, "params.event_type", "required, 1..64 of [a-z0-9_.:-]");
        else if (!json_is_integer(n) || json_integer_value(n) < 1 ||
                 json_integer_value(n) > TAG_RULE_COUNT_MAX)
            rc = siyu_err_set(err, SIYU_EINVAL, "params.count",
                              "params.count: required, an integer 1..%d", TAG_RULE_COUNT_MAX);
        else if (!json_is_integer(d) || json_integer_value(d) < 1 ||
                 json_integer_value(d) > TAG_RULE_WINDOW_MAX)
            rc =
                siyu_err_set(err, SIYU_EINVAL, "params.window_days",
                             "params.window_days: required, an integer 1..%d", TAG_RULE_WINDOW_MAX);
        else
            json_object_update(o, (json_t *)p);
        break;
    }
    case TAG_TRIGGER_STAGE: {
        static const char *const keys[] = {"stage", NULL};
        if ((rc = only_keys(p, keys, err))) break;
        const char *s = json_string_value(json_object_get(p, "stage"));
        if (!s || strlen(s) < 1 || strlen(s) > 64)
            rc = invalid(err, "params.stage", "required, 1..64 bytes");
        else
            json_object_set_new(o, "stage", json_string(s));
        break;
    }
    }
    if (rc != 0) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return 0;
}

typedef struct rule_row {
    const char *name;
    unsigned trigger;
    bool enabled;
    json_t *params, *tags; /* owned */
} rule_row;

static int body_parse(store_conn *c, tag_rule_input *in, rule_row *r) {
    static const char *const keys[] = {"name", "trigger", "enabled", "params", "tag_ids", NULL};
    const json_t *b = in->body;
    memset(r, 0, sizeof *r);
    r->enabled = true;
    if (!json_is_object(b)) return invalid(&in->err, "body", "a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)b, key, v) {
        int k = 0;
        while (keys[k] && strcmp(keys[k], key))
            k++;
        if (!keys[k]) {
            char f[64];
            snprintf(f, sizeof f, "%.60s", key);
            return invalid(&in->err, f, "unknown field");
        }
    }
    const json_t *name = json_object_get(b, "name");
    if (!json_is_string(name) || json_string_length(name) < 1 ||
        utf8_chars(json_string_value(name)) > TAG_RULE_NAME_MAX)
        return siyu_err_set(&in->err, SIYU_EINVAL, "name", "name: 1..%d characters",
                            TAG_RULE_NAME_MAX);
    r->name = json_string_value(name);
    const char *t = json_string_value(json_object_get(b, "trigger"));
    if (!t || !(r->trigger = trigger_bit(t)))
        return invalid(&in->err, "trigger", "channel, group_join, keyword, event_count or stage");
    const json_t *en = json_object_get(b, "enabled");
    if (en && !json_is_boolean(en)) return invalid(&in->err, "enabled", "true or false");
    if (en) r->enabled = json_is_true(en);
    int rc = params_canon(c, in->tenant_id, r->trigger, json_object_get(b, "params"), &r->params,
                          &in->err);
    if (rc == 0)
        rc = ids_canon(c, in->tenant_id, json_object_get(b, "tag_ids"), TAG_RULE_TAGS_MAX,
                       EXISTS("tag"), "tag_ids", &r->tags, &in->err);
    return rc;
}

static const char *trigger_name(unsigned bit) {
    for (int i = 0; trigger_names[i]; i++)
        if (bit == 1u << i) return trigger_names[i];
    return "?";
}

static int rule_store(store_conn *c, tag_rule_input *in, rule_row *r, bool create) {
    char *params = json_dumps(r->params, JSON_COMPACT | JSON_SORT_KEYS);
    char *tags = json_dumps(r->tags, JSON_COMPACT);
    int rc = SIYU_ENOMEM;
    if (!params || !tags) goto done;
    rc = SIYU_EIO;
    sqlite3_stmt *st = store_conn_stmt(
        c, create ? "INSERT INTO tag_rule(tenant_id, name, trigger, enabled, params, tag_ids, "
                    "created_by, created_at, updated_at) VALUES(?1,?3,?4,?5,?6,?7,?8,?9,?9)"
                  : "UPDATE tag_rule SET name=?3, trigger=?4, enabled=?5, params=?6, tag_ids=?7, "
                    "updated_at=?9 WHERE tenant_id=?1 AND id=?2");
    if (!st) goto done;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    store_bind_text(st, 3, r->name);
    store_bind_text(st, 4, trigger_name(r->trigger));
    sqlite3_bind_int(st, 5, r->enabled);
    store_bind_text(st, 6, params);
    store_bind_text(st, 7, tags);
    store_bind_text(st, 8, in->actor);
    sqlite3_bind_int64(st, 9, siyu_now());
    rc = store_stmt_run(st);
    if (rc == SIYU_ECONFLICT) {
        siyu_err_set(&in->err, rc, "name", "name: a tag rule with this name exists");
        goto done;
    }
    if (rc != 0) goto done;
    if (create)
        in->id = store_conn_last_id(c);
    else if (store_conn_changes(c) == 0) {
        rc = siyu_err_set(&in->err, SIYU_ENOTFOUND, NULL, "tag rule %lld not found",
                          (long long)in->id);
        goto done;
    }
    char target[40];
    snprintf(target, sizeof target, "tag_rule:%lld", (long long)in->id);
    rc = store_audit(c, in->tenant_id, in->actor, create ? "tag_rule.create" : "tag_rule.update",
                     target, 1, trigger_name(r->trigger));
    if (rc == 0 && !(in->result = tag_rule_get_json(c, in->tenant_id, in->id))) rc = SIYU_EIO;
done:
    free(params);
    free(tags);
    return rc;
}

static int rule_write(store_conn *c, tag_rule_input *in, bool create) {
    if (create) {
        sqlite3_stmt *st = store_conn_stmt(c, "SELECT count(*) FROM tag_rule WHERE tenant_id=?1");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, in->tenant_id);
        int64_t n = 0;
        int rc = store_stmt_query_id(st, &n, NULL);
        if (rc < 0) return rc;
        if (n >= TAG_RULES_MAX)
            return siyu_err_set(&in->err, SIYU_ECONFLICT, NULL, "a tenant has at most %d tag rules",
                                TAG_RULES_MAX);
    }
    rule_row r;
    int rc = body_parse(c, in, &r);
    if (rc == 0) rc = rule_store(c, in, &r, create);
    json_decref(r.params);
    json_decref(r.tags);
    return rc;
}

int tag_rule_create(store_conn *c, void *arg) {
    return rule_write(c, arg, true);
}

int tag_rule_replace(store_conn *c, void *arg) {
    return rule_write(c, arg, false);
}

int tag_rule_delete(store_conn *c, void *arg) {
    tag_rule_input *in = arg;
    sqlite3_stmt *st = store_conn_stmt(
        c, "DELETE FROM tag_rule_hit WHERE rule_id=(SELECT id FROM tag_rule WHERE tenant_id=?1 "
           "AND id=?2)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    int rc = store_stmt_run(st);
    if (rc) return rc;
    st = store_conn_stmt(c, "DELETE FROM tag_rule WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    if ((rc = store_stmt_run(st)) != 0) return rc;
    if (store_conn_changes(c) == 0)
        return siyu_err_set(&in->err, SIYU_ENOTFOUND, NULL, "tag rule %lld not found",
                            (long long)in->id);
    char target[40];
    snprintf(target, sizeof target, "tag_rule:%lld", (long long)in->id);
    return store_audit(c, in->tenant_id, in->actor, "tag_rule.delete", target, 1, NULL);
}

/* ---- reads --------------------------------------------------------------------- */

#define RULE_COLS                                                                                  \
    "id, name, trigger, enabled, params, tag_ids, hits, last_hit_at, created_at, updated_at"

static json_t *rule_json(sqlite3_stmt *st) {
    json_t *params = json_loads((const char *)sqlite3_column_text(st, 4), 0, NULL);
    json_t *tags = json_loads((const char *)sqlite3_column_text(st, 5), 0, NULL);
    return json_pack(
        "{s:I,s:s,s:s,s:b,s:o,s:o,s:I,s:o,s:I,s:I}", "id", (json_int_t)sqlite3_column_int64(st, 0),
        "name", (const char *)sqlite3_column_text(st, 1), "trigger",
        (const char *)sqlite3_column_text(st, 2), "enabled", sqlite3_column_int(st, 3) != 0,
        "params", params ? params : json_null(), "tag_ids", tags ? tags : json_array(), "hits",
        (json_int_t)sqlite3_column_int64(st, 6), "last_hit_at",
        sqlite3_column_type(st, 7) == SQLITE_NULL ? json_null()
                                                  : json_integer(sqlite3_column_int64(st, 7)),
        "created_at", (json_int_t)sqlite3_column_int64(st, 8), "updated_at",
        (json_int_t)sqlite3_column_int64(st, 9));
}

json_t *tag_rule_get_json(store_conn *c, int64_t tenant_id, int64_t id) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT " RULE_COLS " FROM tag_rule WHERE tenant_id=?1 AND id=?2");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, id);
    json_t *j = sqlite3_step(st) == SQLITE_ROW ? rule_json(st) : NULL;
    sqlite3_reset(st);
    return j;
}

int tag_rule_list(store_conn *c, int64_t tenant_id, json_t *items) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT " RULE_COLS " FROM tag_rule WHERE tenant_id=?1 ORDER BY id");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(items, rule_json(st));
    sqlite3_reset(st);
    return step == SQLITE_DONE ? 0 : store_rc(step);
}

/* ---- evaluation ---------------------------------------------------------------- */

typedef struct loaded_rule {
    int64_t id;
    unsigned trigger;
    json_t *params;
    char *tags; /* JSON array text */
} loaded_rule;

struct tag_rule_set {
    int64_t tenant;
    int n;
    loaded_rule r[];
};

void tag_rule_set_free(tag_rule_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        json_decref(s->r[i].params);
        free(s->r[i].tags);
    }
    free(s);
}

int tag_rule_set_load(store_conn *c, int64_t tenant_id, unsigned triggers, tag_rule_set **out) {
    *out = NULL;
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT id, trigger, params, tag_ids FROM tag_rule WHERE tenant_id=?1 AND enabled=1 "
           "AND trigger IN (SELECT value FROM json_each(?2)) ORDER BY id");
    if (!st) return SIYU_EIO;
    char names[128] = "[";
    for (int i = 0; trigger_names[i]; i++)
        if (triggers & (1u << i))
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s\"%s\"",
                     names[1] ? "," : "", trigger_names[i]);
    strcat(names, "]");
    sqlite3_bind_int64(st, 1, tenant_id);
    store_bind_text(st, 2, names);
    tag_rule_set *s = NULL;
    int step, cap = 0, rc = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (!s || s->n == cap) {
            cap = cap ? cap * 2 : 4;
            tag_rule_set *g = realloc(s, sizeof *s + (size_t)cap * sizeof(loaded_rule));
            if (!g) {
                rc = SIYU_ENOMEM;
                break;
            }
            if (!s) g->n = 0;
            s = g;
            s->tenant = tenant_id;
        }
        loaded_rule *r = &s->r[s->n];
        r->id = sqlite3_column_int64(st, 0);
        r->trigger = trigger_bit((const char *)sqlite3_column_text(st, 1));
        r->params = json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL);
        r->tags = strdup((const char *)sqlite3_column_text(st, 3));
        if (!r->params || !r->tags) {
            json_decref(r->params);
            free(r->tags);
            continue; /* unreadable: skipped */
        }
        s->n++;
    }
    if (rc == 0 && step != SQLITE_DONE) rc = store_rc(step);
    sqlite3_reset(st);
    if (rc != 0 || (s && s->n == 0)) {
        tag_rule_set_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Applies r's tags the customer lacks; counts a hit when any was new. */
static int hit(store_conn *c, int64_t tenant, const loaded_rule *r, int64_t customer,
               int64_t event_id, unsigned *kick) {
    int64_t now = siyu_now();
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT OR IGNORE INTO customer_tag(tenant_id, customer_id, tag_id, source, "
           "created_at) SELECT ?1, ?2, t.id, 'rule', ?4 FROM tag t WHERE t.tenant_id=?1 AND t.id "
           "IN (SELECT value FROM json_each(?3)) AND NOT EXISTS (SELECT 1 FROM customer_tag ct "
           "WHERE ct.tenant_id=?1 AND ct.customer_id=?2 AND ct.tag_id=t.id) RETURNING tag_id");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, customer);
    store_bind_text(st, 3, r->tags);
    sqlite3_bind_int64(st, 4, now);
    char added[TAG_RULE_TAGS_MAX * 21 + 3] = "[";
    int n = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW && n < TAG_RULE_TAGS_MAX)
        snprintf(added + strlen(added), sizeof added - strlen(added), "%s%lld", n++ ? "," : "",
                 (long long)sqlite3_column_int64(st, 0));
    while (step == SQLITE_ROW)
        step = sqlite3_step(st);
    sqlite3_reset(st);
    if (step != SQLITE_DONE) return store_rc(step);
    if (n == 0) return 0; /* every tag already present: not re-applied */
    strcat(added, "]");
    char customers[32], actor[32];
    snprintf(customers, sizeof customers, "[%lld]", (long long)customer);
    snprintf(actor, sizeof actor, "tag_rule:%lld", (long long)r->id);
    int64_t queued = 0;
    siyu_err err = {0};
    int rc = tag_wecom_mark(c, tenant, added, customers, false, actor, kick, &queued, &err);
    if (rc) return rc;
    st = store_conn_stmt(c, "UPDATE tag_rule SET hits=hits+1, last_hit_at=?2 WHERE id=?1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, r->id);
    sqlite3_bind_int64(st, 2, now);
    if ((rc = store_stmt_run(st)) != 0) return rc;
    st = store_conn_stmt(c, "INSERT INTO tag_rule_hit(tenant_id, rule_id, customer_id, event_id, "
                            "tags, created_at) VALUES(?1,?2,?3,?4,?5,?6)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, r->id);
    sqlite3_bind_int64(st, 3, customer);
    store_bind_opt_int(st, 4, event_id, event_id > 0);
    sqlite3_bind_int(st, 5, n);
    sqlite3_bind_int64(st, 6, now);
    return store_stmt_run(st);
}

static bool ids_have(const json_t *arr, int64_t v) {
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (json_integer_value(json_array_get(arr, i)) == v) return true;
    return false;
}

/* props.text lowercased (ASCII) into a malloc'd string, or NULL. */
static char *props_text_lower(const char *props) {
    if (!props || !strstr(props, "\"text\"")) return NULL;
    json_t *j = json_loads(props, 0, NULL);
    const char *t = json_string_value(json_object_get(j, "text"));
    char *d = t ? strdup(t) : NULL;
    json_decref(j);
    for (char *p = d; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

static int count_events(store_conn *c, int64_t tenant, int64_t customer, const char *type,
                        int64_t from, int64_t to, int64_t *n) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT count(*) FROM event WHERE tenant_id=?1 AND customer_id=?2 AND ts>?4 AND "
           "ts<=?5 AND type=?3");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, customer);
    store_bind_text(st, 3, type);
    sqlite3_bind_int64(st, 4, from);
    sqlite3_bind_int64(st, 5, to);
    int rc = store_stmt_query_id(st, n, NULL);
    return rc < 0 ? rc : 0;
}

int tag_rule_on_event(store_conn *c, tag_rule_set *s, int64_t customer_id, int64_t event_id,
                      const char *type, const char *props, int64_t ts, unsigned *kick) {
    if (!s || customer_id <= 0 || !type) return 0;
    char *text = NULL;
    bool text_loaded = false;
    int rc = 0;
    for (int i = 0; i < s->n && rc == 0; i++) {
        const loaded_rule *r = &s->r[i];
        const char *et = json_string_value(json_object_get(r->params, "event_type"));
        if (!et || strcmp(et, type)) continue;
        if (r->trigger == TAG_TRIGGER_KEYWORD) {
            if (!text_loaded) {
                text = props_text_lower(props);
                text_loaded = true;
            }
            if (!text) continue;
            const json_t *kw = json_object_get(r->params, "keywords");
            bool found = false;
            for (size_t k = 0; k < json_array_size(kw) && !found; k++)
                found = strstr(text, json_string_value(json_array_get(kw, k))) != NULL;
            if (found) rc = hit(c, s->tenant, r, customer_id, event_id, kick);
        } else if (r->trigger == TAG_TRIGGER_EVENT_COUNT) {
            int64_t need = json_integer_value(json_object_get(r->params, "count"));
            int64_t days = json_integer_value(json_object_get(r->params, "window_days"));
            int64_t n = 0;
            rc = count_events(c, s->tenant, customer_id, type, ts - days * 86400, ts, &n);
            if (rc == 0 && n >= need) rc = hit(c, s->tenant, r, customer_id, event_id, kick);
        }
    }
    free(text);
    return rc;
}

int tag_rule_on_channel(store_conn *c, int64_t tenant_id, int64_t customer_id, int64_t channel_id,
                        int64_t event_id, unsigned *kick) {
    if (customer_id <= 0 || channel_id <= 0) return 0;
    tag_rule_set *s;
    int rc = tag_rule_set_load(c, tenant_id, TAG_TRIGGER_CHANNEL, &s);
    if (rc || !s) return rc;
    int64_t group = 0;
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT coalesce(group_id, 0) FROM channel WHERE tenant_id=?1 AND id=?2");
    if (!st) rc = SIYU_EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, tenant_id);
        sqlite3_bind_int64(st, 2, channel_id);
        int q = store_stmt_query_id(st, &group, NULL);
        rc = q < 0 ? q : 0;
    }
    for (int i = 0; i < s->n && rc == 0; i++) {
        const loaded_rule *r = &s->r[i];
        if (ids_have(json_object_get(r->params, "channel_ids"), channel_id) ||
            (group && ids_have(json_object_get(r->params, "channel_group_ids"), group)))
            rc = hit(c, tenant_id, r, customer_id, event_id, kick);
    }
    tag_rule_set_free(s);
    return rc;
}

int tag_rule_on_group_join(store_conn *c, int64_t tenant_id, int64_t customer_id,
                           const char *chat_id, int64_t event_id, unsigned *kick) {
    if (customer_id <= 0 || !chat_id) return 0;
    tag_rule_set *s;
    int rc = tag_rule_set_load(c, tenant_id, TAG_TRIGGER_GROUP_JOIN, &s);
    for (int i = 0; s && i < s->n && rc == 0; i++) {
        const json_t *ids = json_object_get(s->r[i].params, "chat_ids");
        for (size_t k = 0; k < json_array_size(ids); k++)
            if (!strcmp(json_string_value(json_array_get(ids, k)), chat_id)) {
                rc = hit(c, tenant_id, &s->r[i], customer_id, event_id, kick);
                break;
            }
    }
    tag_rule_set_free(s);
    return rc;
}

int tag_rule_on_stage(store_conn *c, int64_t tenant_id, int64_t customer_id, const char *stage,
                      unsigned *kick) {
    if (customer_id <= 0 || !stage) return 0;
    tag_rule_set *s;
    int rc = tag_rule_set_load(c, tenant_id, TAG_TRIGGER_STAGE, &s);
    for (int i = 0; s && i < s->n && rc == 0; i++)
        if (!strcmp(json_string_value(json_object_get(s->r[i].params, "stage")), stage))
            rc = hit(c, tenant_id, &s->r[i], customer_id, 0, kick);
    tag_rule_set_free(s);
    return rc;
}

/* Customers among the event's joining members (group_member rows the
 * ingest just wrote), each with group_join rules for the chat. */
static int wecom_group_join(store_conn *c, int64_t tenant, const wecom_event *ev, int64_t event_id,
                            unsigned *kick) {
    sqlite3_stmt *st = store_conn_stmt(
        c,
        "SELECT gm.customer_id FROM group_chat g JOIN group_member gm ON gm.tenant_id=g.tenant_id "
        "AND gm.group_id=g.id WHERE g.tenant_id=?1 AND g.chat_id=?2 AND gm.member_id=?3 AND "
        "gm.customer_id IS NOT NULL AND gm.status='in'");
    if (!st) return SIYU_EIO;
    int rc = 0;
    for (size_t i = 0; i < ev->mem_change_list_len && rc == 0; i++) {
        if (!ev->mem_change_list[i] || !*ev->mem_change_list[i]) continue;
        sqlite3_bind_int64(st, 1, tenant);
        store_bind_text(st, 2, ev->chat_id);
        store_bind_text(st, 3, ev->mem_change_list[i]);
        int64_t cust = 0;
        int q = store_stmt_query_id(st, &cust, NULL);
        if (q < 0) return q;
        if (q == 0) rc = tag_rule_on_group_join(c, tenant, cust, ev->chat_id, event_id, kick);
    }
    return rc;
}

int tag_rule_on_wecom(store_conn *c, int64_t tenant_id, const wecom_event *ev, int64_t customer_id,
                      int64_t employee_id, int64_t event_id, int64_t ts) {
    unsigned kick = 0; /* the outbox workers' next poll picks the rows up */
    tag_rule_set *s;
    int rc = tag_rule_set_load(
        c, tenant_id, TAG_TRIGGER_CHANNEL | TAG_TRIGGER_GROUP_JOIN | TAG_TRIGGER_EVENT_COUNT, &s);
    if (rc || !s) return rc; /* the common case: no rules, one index probe */
    tag_rule_set_free(s);
    bool add =
        ev->kind == WECOM_EV_ADD_EXTERNAL_CONTACT || ev->kind == WECOM_EV_ADD_HALF_EXTERNAL_CONTACT;
    if (add && customer_id > 0 && employee_id > 0) {
        sqlite3_stmt *st = store_conn_stmt(
            c, "SELECT coalesce(channel_id, 0) FROM relationship WHERE tenant_id=?1 AND "
               "customer_id=?2 AND employee_id=?3");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, tenant_id);
        sqlite3_bind_int64(st, 2, customer_id);
        sqlite3_bind_int64(st, 3, employee_id);
        int64_t channel = 0;
        int q = store_stmt_query_id(st, &channel, NULL);
        if (q < 0) return q;
        if (channel > 0)
            rc = tag_rule_on_channel(c, tenant_id, customer_id, channel, event_id, &kick);
    }
    if (rc == 0 && ev->kind == WECOM_EV_CHAT_UPDATE && ev->update_detail &&
        !strcmp(ev->update_detail, "add_member") && ev->chat_id)
        rc = wecom_group_join(c, tenant_id, ev, event_id, &kick);
    if (rc == 0 && customer_id > 0) {
        char type[64];
        snprintf(type, sizeof type, "wecom.%s", wecom_event_kind_name(ev->kind));
        if ((rc = tag_rule_set_load(c, tenant_id, TAG_TRIGGER_EVENT_COUNT, &s)) == 0 && s)
            rc = tag_rule_on_event(c, s, customer_id, event_id, type, NULL, ts, &kick);
        tag_rule_set_free(s);
    }
    return rc;
}
