/* sync_apply.c — WeCom records (API answers) → store rows, inside a write
 * step. Used by the full sync and by the callback-driven refresh.
 *
 * Every helper reads the stored row first and writes only when a value
 * differs, so applying the same answer twice writes nothing the second time
 * (updated_at stays). Counts go to a->n[entity].
 *
 * Freshness: a record fetched at a->fetched_at does not overwrite a group
 * row that a callback changed later (updated_at > fetched_at). A follow
 * record fetched at a->fetched_ms neither revives an ended relationship
 * changed at or after that millisecond nor updates an active one (remark,
 * state, tags) changed after it (relationship.changed_ms, stamped by
 * triggers for every writer): an older answer applied after a newer one —
 * two refreshes of one contact, a full-sync page against a callback —
 * changes nothing. The callback's own refresh or the next sync settles it.
 *
 * Relationship lifecycle as seen from sync:
 *
 *   (none) ──listed: sync__follow_apply()──> active
 *   ended  ──listed, a->revive, not newer: sync__follow_apply()──> active
 *   active ──not listed by a complete sync: sync__rels_end()──>
 *            deleted_by_employee (end_reason sync_missing)
 *
 * A follow record that WeCom stops listing means the member deleted the
 * customer (spec §3.12, 84061: when only the customer deletes the member the
 * one-way relationship stays listed), hence 'deleted_by_employee'; the
 * end_reason tells these apart from callbacks.
 *
 * Ownership: nothing allocated here outlives a call; statements belong to
 * the connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/audit.h"
#include "store/org.h"
#include "sync/sync_int.h"

#define WECOM_GROUP_NAME "(wecom)" /* ingest's group for tags of unknown group */

/* ---- small helpers ------------------------------------------------------ */

const char *sync__nz(const char *s) {
    return s && *s ? s : NULL;
}

const char *sync__jstr(const json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

int64_t sync__jint(const json_t *o, const char *key, int64_t def) {
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) return json_integer_value(v);
    if (json_is_string(v) && *json_string_value(v)) {
        char *end;
        long long x = strtoll(json_string_value(v), &end, 10);
        if (!*end) return x;
    }
    return def;
}

int64_t sync__wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sync__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sync__i64v_push(sync_i64v *x, int64_t v) {
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        int64_t *p = realloc(x->v, cap * sizeof *p);
        if (!p) return SIYU_ENOMEM;
        x->v = p;
        x->cap = cap;
    }
    x->v[x->n++] = v;
    return 0;
}

void sync__i64v_free(sync_i64v *x) {
    free(x->v);
    memset(x, 0, sizeof *x);
}

static bool text_eq(const unsigned char *a, const char *b) {
    if (!a || !b) return !a && !b;
    return strcmp((const char *)a, b) == 0;
}

/* The cached statement for sql with ?1 bound to the tenant (every statement
 * here takes it there; bindings survive the resets between loop rounds).
 * NULL on a prepare error. */
static sqlite3_stmt *stmt(sync_apply *a, const char *sql) {
    sqlite3_stmt *st = store_conn_stmt(a->c, sql);
    if (st) sqlite3_bind_int64(st, 1, a->tenant);
    return st;
}

static int cmp_i64(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

static int cmp_str(const void *x, const void *y) {
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static bool has_i64(const int64_t *v, size_t n, int64_t x) {
    return n && bsearch(&x, v, n, sizeof *v, cmp_i64) != NULL;
}

static bool has_str(char *const *v, size_t n, const char *s) {
    return n && bsearch(&s, v, n, sizeof *v, cmp_str) != NULL;
}

/* ---- employees and customers ------------------------------------------ */

int sync__employee_ensure(sync_apply *a, const char *userid, int64_t *id) {
    int rc = org_employee_find(a->c, a->tenant, userid, id);
    if (rc != SIYU_ENOTFOUND) return rc;
    rc = org_employee_ensure(a->c, a->tenant, userid, "sync", id);
    if (rc == 0) a->n[SYNC_EMPLOYEES].created++;
    return rc;
}

int sync__customer_find(sync_apply *a, const char *ext, int64_t *cust) {
    sqlite3_stmt *st = stmt(a, "SELECT customer_id FROM identity WHERE tenant_id=?1 AND "
                               "kind='wecom_external_userid' AND value=?2");
    if (!st) return SIYU_EIO;
    store_bind_text(st, 2, ext);
    int rc = store_stmt_query_id(st, cust, NULL);
    return rc == 1 ? SIYU_ENOTFOUND : rc;
}

/* The fields of external_contact Siyu keeps; present = in the JSON. */
typedef struct contact_vals {
    const char *ext, *name, *corp_name;
    int64_t gender, type;
    bool has_name, has_corp, has_gender, has_type;
} contact_vals;

static void contact_parse(const json_t *o, contact_vals *v) {
    memset(v, 0, sizeof *v);
    v->ext = sync__jstr(o, "external_userid");
    v->has_name = json_is_string(json_object_get(o, "name"));
    v->name = sync__nz(sync__jstr(o, "name"));
    v->has_corp = json_is_string(json_object_get(o, "corp_name"));
    v->corp_name = sync__nz(sync__jstr(o, "corp_name"));
    v->gender = sync__jint(o, "gender", -1);
    v->has_gender = v->gender >= 0;
    v->type = sync__jint(o, "type", -1);
    v->has_type = v->type >= 0;
}

static int customer_insert(sync_apply *a, const contact_vals *v, int64_t added_at, int64_t *cust) {
    sqlite3_stmt *st =
        stmt(a, "INSERT INTO customer(tenant_id, external_userid, name, gender, type, corp_name, "
                "first_added_at, created_at, updated_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?8)");
    if (!st) return SIYU_EIO;
    store_bind_text(st, 2, v->ext);
    store_bind_text(st, 3, v->name);
    store_bind_opt_int(st, 4, v->gender, v->has_gender);
    store_bind_opt_int(st, 5, v->type, v->has_type);
    store_bind_text(st, 6, v->corp_name);
    store_bind_opt_int(st, 7, added_at, added_at > 0);
    sqlite3_bind_int64(st, 8, a->now);
    int rc = store_stmt_run(st);
    if (rc != 0) return rc;
    *cust = store_conn_last_id(a->c);
    st = stmt(a, "INSERT INTO identity(tenant_id, customer_id, kind, value, created_at) "
                 "VALUES(?1,?2,'wecom_external_userid',?3,?4)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 2, *cust);
    store_bind_text(st, 3, v->ext);
    sqlite3_bind_int64(st, 4, a->now);
    if ((rc = store_stmt_run(st)) == 0) a->n[SYNC_CUSTOMERS].created++;
    return rc;
}

int sync__customer_upsert(sync_apply *a, const json_t *contact, int64_t added_at, int64_t *cust) {
    contact_vals v;
    contact_parse(contact, &v);
    if (!sync__nz(v.ext)) return SIYU_EINVAL;
    sqlite3_stmt *st = stmt(a, "SELECT c.id, c.name, c.gender, c.type, c.corp_name, "
                               "c.first_added_at FROM identity i JOIN customer c ON "
                               "c.id=i.customer_id WHERE i.tenant_id=?1 AND "
                               "i.kind='wecom_external_userid' AND i.value=?2");
    if (!st) return SIYU_EIO;
    store_bind_text(st, 2, v.ext);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? customer_insert(a, &v, added_at, cust) : store_rc(rc);
    }
    *cust = sqlite3_column_int64(st, 0);
    bool same = true;
    if (v.has_name && !text_eq(sqlite3_column_text(st, 1), v.name)) same = false;
    if (v.has_gender &&
        (sqlite3_column_type(st, 2) == SQLITE_NULL || sqlite3_column_int64(st, 2) != v.gender))
        same = false;
    if (v.has_type &&
        (sqlite3_column_type(st, 3) == SQLITE_NULL || sqlite3_column_int64(st, 3) != v.type))
        same = false;
    if (v.has_corp && !text_eq(sqlite3_column_text(st, 4), v.corp_name)) same = false;
    bool first_null = sqlite3_column_type(st, 5) == SQLITE_NULL;
    int64_t first = sqlite3_column_int64(st, 5);
    if (added_at > 0 && (first_null || added_at < first)) same = false;
    sqlite3_reset(st);
    if (same) return 0;
    st = stmt(a, "UPDATE customer SET name=CASE WHEN ?3 THEN ?4 ELSE name END, "
                 "gender=coalesce(?5, gender), type=coalesce(?6, type), "
                 "corp_name=CASE WHEN ?7 THEN ?8 ELSE corp_name END, "
                 "first_added_at=CASE WHEN ?9 IS NOT NULL AND (first_added_at IS NULL OR "
                 "first_added_at > ?9) THEN ?9 ELSE first_added_at END, updated_at=?10 "
                 "WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 2, *cust);
    sqlite3_bind_int(st, 3, v.has_name);
    store_bind_text(st, 4, v.name);
    store_bind_opt_int(st, 5, v.gender, v.has_gender);
    store_bind_opt_int(st, 6, v.type, v.has_type);
    sqlite3_bind_int(st, 7, v.has_corp);
    store_bind_text(st, 8, v.corp_name);
    store_bind_opt_int(st, 9, added_at, added_at > 0);
    sqlite3_bind_int64(st, 10, a->now);
    if ((rc = store_stmt_run(st)) == 0) a->n[SYNC_CUSTOMERS].updated++;
    return rc;
}

/* A customer known only by its id (a group member): created bare. */
static int customer_ensure_bare(sync_apply *a, const char *ext, int64_t *cust) {
    int rc = sync__customer_find(a, ext, cust);
    if (rc != SIYU_ENOTFOUND) return rc;
    contact_vals v = {.ext = ext};
    return customer_insert(a, &v, 0, cust);
}

/* ---- follow records ----------------------------------------------------- */

void sync__follow_parse(const json_t *fo, sync_follow *f, json_t **own) {
    memset(f, 0, sizeof *f);
    *own = NULL;
    f->userid = sync__jstr(fo, "userid");
    f->remark = sync__nz(sync__jstr(fo, "remark"));
    f->description = sync__nz(sync__jstr(fo, "description"));
    f->state = sync__nz(sync__jstr(fo, "state"));
    f->createtime = sync__jint(fo, "createtime", 0);
    f->add_way = (int)sync__jint(fo, "add_way", -1);
    const json_t *ids = json_object_get(fo, "tag_id");
    if (json_is_array(ids)) {
        f->tag_ids = ids;
        return;
    }
    const json_t *tags = json_object_get(fo, "tags");
    if (!json_is_array(tags)) return;
    json_t *arr = json_array();
    size_t i;
    const json_t *t;
    json_array_foreach(tags, i, t) {
        const char *id = sync__jstr(t, "tag_id");
        if (!sync__nz(id) || sync__jint(t, "type", 1) == 2) continue; /* personal tag */
        json_array_append_new(arr, json_string(id));
    }
    f->tag_ids = *own = arr;
}

/* The tag with this WeCom id: 0 with *id, SIYU_ENOTFOUND, or an error. With
 * a->placeholders an unknown id gets a placeholder tag named after it in the
 * "(wecom)" group, as the callback ingest does. */
static int tag_resolve(sync_apply *a, const char *wecom_id, int64_t *id) {
    sqlite3_stmt *st = stmt(a, "SELECT id FROM tag WHERE tenant_id=?1 AND wecom_id=?2");
    if (!st) return SIYU_EIO;
    store_bind_text(st, 2, wecom_id);
    int rc = store_stmt_query_id(st, id, NULL);
    if (rc != 1) return rc;
    if (!a->placeholders) return SIYU_ENOTFOUND;
    st = stmt(a, "INSERT INTO tag_group(tenant_id, name, source, created_at, updated_at) "
                 "VALUES(?1,?2,'wecom',?3,?3) ON CONFLICT DO NOTHING");
    if (!st) return SIYU_EIO;
    store_bind_text(st, 2, WECOM_GROUP_NAME);
    sqlite3_bind_int64(st, 3, a->now);
    if ((rc = store_stmt_run(st)) != 0) return rc;
    st = stmt(a, "INSERT INTO tag(tenant_id, group_id, wecom_id, name, created_at, updated_at) "
                 "SELECT ?1, id, ?2, ?2, ?3, ?3 FROM tag_group WHERE tenant_id=?1 AND name=?4");
    if (!st) return SIYU_EIO;
    store_bind_text(st, 2, wecom_id);
    sqlite3_bind_int64(st, 3, a->now);
    store_bind_text(st, 4, WECOM_GROUP_NAME);
    if ((rc = store_stmt_run(st)) != 0) return rc;
    if (store_conn_changes(a->c) == 0) return SIYU_ENOTFOUND;
    *id = store_conn_last_id(a->c);
    a->n[SYNC_TAGS].created++;
    return 0;
}

/* Removes the customer's 'wecom' link to tag when no follow record has it. */
static int customer_tag_release(sync_apply *a, int64_t cust, int64_t tag) {
    sqlite3_stmt *st = stmt(a, "DELETE FROM customer_tag WHERE tenant_id=?1 AND customer_id=?2 "
                               "AND tag_id=?3 AND source='wecom' AND NOT EXISTS (SELECT 1 FROM "
                               "relationship_tag rt WHERE rt.tenant_id=?1 AND rt.customer_id=?2 "
                               "AND rt.tag_id=?3)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 2, cust);
    sqlite3_bind_int64(st, 3, tag);
    return store_stmt_run(st);
}

static int follow_tag_set(sync_apply *a, int64_t cust, int64_t emp, int64_t tag, bool add) {
    sqlite3_stmt *st = stmt(a, add ? "INSERT INTO relationship_tag(tenant_id, customer_id, "
                                     "employee_id, tag_id, created_at) VALUES(?1,?2,?3,?4,?5)"
                                   : "DELETE FROM relationship_tag WHERE tenant_id=?1 AND "
                                     "customer_id=?2 AND employee_id=?3 AND tag_id=?4");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 2, cust);
    sqlite3_bind_int64(st, 3, emp);
    sqlite3_bind_int64(st, 4, tag);
    if (add) sqlite3_bind_int64(st, 5, a->now);
    int rc = store_stmt_run(st);
    if (rc != 0) return rc;
    a->n[SYNC_FOLLOW_TAGS].created += add;
    a->n[SYNC_FOLLOW_TAGS].ended += !add;
    return add ? 0 : customer_tag_release(a, cust, tag);
}

/* The customer_tag union row; an existing link of any source stays. */
static int customer_tag_ensure(sync_apply *a, int64_t cust, int64_t emp, int64_t tag) {
    sqlite3_stmt *st = stmt(a, "INSERT INTO customer_tag(tenant_id, customer_id, tag_id, source, "
                               "employee_id, created_at) VALUES(?1,?2,?3,'wecom',?4,?5) "
                               "ON CONFLICT DO NOTHING");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 2, cust);
    sqlite3_bind_int64(st, 3, tag);
    sqlite3_bind_int64(st, 4, emp);
    sqlite3_bind_int64(st, 5, a->now);
    return store_stmt_run(st);
}

/* Makes the follow record's tags exactly the listed ones (unknown ids are
 * skipped unless a->placeholders). */
static int follow_tags_apply(sync_apply *a, int64_t cust, int64_t emp, const json_t *ids) {
    sync_i64v want = {0}, have = {0};
    int rc = 0;
    size_t i;
    const json_t *t;
    json_array_foreach(ids, i, t) {
        int64_t id = 0;
        const char *s = json_string_value(t);
        if (!sync__nz(s)) continue;
        rc = tag_resolve(a, s, &id);
        if (rc == SIYU_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc != 0 || (rc = sync__i64v_push(&want, id)) != 0) goto done;
    }
    sqlite3_stmt *st = stmt(a, "SELECT tag_id FROM relationship_tag WHERE tenant_id=?1 AND "
                               "customer_id=?2 AND employee_id=?3");
    if (!st) {
        rc = SIYU_EIO;
        goto done;
    }
    sqlite3_bind_int64(st, 2, cust);
    sqlite3_bind_int64(st, 3, emp);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = sync__i64v_push(&have, sqlite3_column_int64(st, 0))) != 0) break;
    sqlite3_reset(st);
    if (rc != 0) goto done;
    if (src != SQLITE_DONE) {
        rc = store_rc(src);
        goto done;
    }
    if (want.n) qsort(want.v, want.n, sizeof *want.v, cmp_i64);
    if (have.n) qsort(have.v, have.n, sizeof *have.v, cmp_i64);
    for (i = 0; i < want.n && rc == 0; i++) {
        if (i > 0 && want.v[i] == want.v[i - 1]) continue;
        if (!has_i64(have.v, have.n, want.v[i])) rc = follow_tag_set(a, cust, emp, want.v[i], true);
        if (rc == 0) rc = customer_tag_ensure(a, cust, emp, want.v[i]);
    }
    for (i = 0; i < have.n && rc == 0; i++)
        if (!has_i64(want.v, want.n, have.v[i]))
            rc = follow_tag_set(a, cust, emp, have.v[i], false);
done:
    sync__i64v_free(&want);
    sync__i64v_free(&have);
    return rc;
}

static void bind_follow(sqlite3_stmt *st, const sync_follow *f) {
    /* ?4 added_at ?5 add_way ?6 state ?7 remark ?8 description */
    sqlite3_bind_int64(st, 4, f->createtime);
    store_bind_opt_int(st, 5, f->add_way, f->add_way >= 0);
    store_bind_text(st, 6, f->state);
    if (sqlite3_bind_parameter_count(st) >= 8) { /* absent while a local remark is held */
        store_bind_text(st, 7, f->remark);
        store_bind_text(st, 8, f->description);
    }
}

/* True while an operator's remark for relationship id waits in the outbox:
 * WeCom still answers the old remark, which must not overwrite the new one
 * before it is delivered (then both agree again). */
static bool remark_pending(sync_apply *a, int64_t id) {
    char ref[48];
    snprintf(ref, sizeof ref, "relationship:%lld", (long long)id);
    sqlite3_stmt *st = stmt(a, "SELECT 1 FROM outbox WHERE tenant_id=?1 AND ref=?2 AND kind="
                               "'remark' AND state IN ('pending','sending','failed') LIMIT 1");
    if (!st) return false;
    sqlite3_bind_text(st, 2, ref, -1, SQLITE_TRANSIENT);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return found;
}

int sync__follow_apply(sync_apply *a, int64_t cust, const sync_follow *f, int64_t *rel) {
    int64_t emp = 0, id = 0;
    if (rel) *rel = 0;
    if (!sync__nz(f->userid)) return SIYU_EINVAL;
    int rc = sync__employee_ensure(a, f->userid, &emp);
    if (rc != 0) return rc;
    sqlite3_stmt *st = stmt(a, "SELECT id, status, added_at, add_way, state, remark, description, "
                               "changed_ms FROM relationship WHERE tenant_id=?1 AND "
                               "customer_id=?2 AND employee_id=?3");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 2, cust);
    sqlite3_bind_int64(st, 3, emp);
    int src = sqlite3_step(st);
    const char *sql = NULL;
    int which = 0; /* 1 created, 2 updated */
    if (src == SQLITE_DONE) {
        sql = "INSERT INTO relationship(tenant_id, customer_id, employee_id, status, added_at, "
              "add_way, state, remark, description, updated_at) "
              "VALUES(?1,?2,?3,'active',?4,?5,?6,?7,?8,?9)";
        which = 1;
    } else if (src == SQLITE_ROW) {
        id = sqlite3_column_int64(st, 0);
        bool active = text_eq(sqlite3_column_text(st, 1), "active");
        int64_t changed = sqlite3_column_int64(st, 7);
        if (active && changed > a->fetched_ms) { /* newer than this answer: kept */
            sqlite3_reset(st);
            if (rel) *rel = id;
            return 0;
        }
        if (!active) {
            if (a->revive && changed < a->fetched_ms) {
                sql = "UPDATE relationship SET status='active', ended_at=NULL, end_reason=NULL, "
                      "added_at=?4, add_way=?5, state=?6, remark=?7, description=?8, "
                      "updated_at=?9 WHERE tenant_id=?1 AND customer_id=?2 AND employee_id=?3";
                which = 1;
            }
        } else {
            bool notes_same = text_eq(sqlite3_column_text(st, 5), f->remark) &&
                              text_eq(sqlite3_column_text(st, 6), f->description);
            bool same = sqlite3_column_int64(st, 2) == f->createtime &&
                        (f->add_way < 0 ? sqlite3_column_type(st, 3) == SQLITE_NULL
                                        : sqlite3_column_type(st, 3) != SQLITE_NULL &&
                                              sqlite3_column_int64(st, 3) == f->add_way) &&
                        text_eq(sqlite3_column_text(st, 4), f->state);
            bool hold = false;
            if (!notes_same) {
                sqlite3_reset(st); /* remark_pending may reuse the connection's cache */
                hold = remark_pending(a, id);
            }
            if (!same || (!notes_same && !hold)) {
                sql = hold ? "UPDATE relationship SET added_at=?4, add_way=?5, state=?6, "
                             "updated_at=?9 WHERE tenant_id=?1 AND customer_id=?2 AND "
                             "employee_id=?3"
                           : "UPDATE relationship SET added_at=?4, add_way=?5, state=?6, "
                             "remark=?7, description=?8, updated_at=?9 WHERE tenant_id=?1 AND "
                             "customer_id=?2 AND employee_id=?3";
                which = 2;
            }
        }
        if (!active && !which) { /* ended and staying ended */
            sqlite3_reset(st);
            return 0;
        }
    } else {
        sqlite3_reset(st);
        return store_rc(src);
    }
    sqlite3_reset(st);
    if (sql) {
        st = stmt(a, sql);
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 2, cust);
        sqlite3_bind_int64(st, 3, emp);
        bind_follow(st, f);
        sqlite3_bind_int64(st, 9, a->now);
        if ((rc = store_stmt_run(st)) != 0) return rc;
        if (!id) id = store_conn_last_id(a->c);
        if (which == 1) a->n[SYNC_RELATIONSHIPS].created++;
        if (which == 2) a->n[SYNC_RELATIONSHIPS].updated++;
        /* A relationship the callbacks missed, added through one of the
         * tenant's channel QR codes, is attributed to it like an add is
         * (docs/CHANNELS.md); the auto-tags and remark templates of the
         * channel are not applied afterwards (WeCom has the remark the
         * employee set since). */
        if (which == 1 && sync__nz(f->state)) {
            st = stmt(a, "UPDATE relationship SET channel_id=(SELECT id FROM channel WHERE "
                         "tenant_id=?1 AND state=?2) WHERE id=?3 AND channel_id IS NULL AND "
                         "EXISTS (SELECT 1 FROM channel WHERE tenant_id=?1 AND state=?2)");
            if (!st) return SIYU_EIO;
            store_bind_text(st, 2, f->state);
            sqlite3_bind_int64(st, 3, id);
            if ((rc = store_stmt_run(st)) != 0) return rc;
        }
    }
    if (rel) *rel = id;
    return f->tag_ids ? follow_tags_apply(a, cust, emp, f->tag_ids) : 0;
}

int sync__rels_end(sync_apply *a, const int64_t *ids, size_t n, int64_t before) {
    sqlite3_stmt *st = stmt(a, "UPDATE relationship SET status='deleted_by_employee', "
                               "ended_at=?3, end_reason='sync_missing', updated_at=?3 WHERE "
                               "tenant_id=?1 AND id=?2 AND status='active' AND updated_at < ?4");
    if (!st) return SIYU_EIO;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 2, ids[i]);
        sqlite3_bind_int64(st, 3, a->now);
        sqlite3_bind_int64(st, 4, before);
        int rc = store_stmt_run(st);
        if (rc != 0) return rc;
        a->n[SYNC_RELATIONSHIPS].ended += store_conn_changes(a->c);
    }
    return 0;
}

int sync__follow_tags_prune(sync_apply *a, int64_t pair_cust, int64_t pair_emp) {
    static const char *const sql[2] = {
        "DELETE FROM relationship_tag WHERE tenant_id=?1 AND (?2 = 0 OR (customer_id=?2 AND "
        "employee_id=?3)) AND NOT EXISTS (SELECT 1 FROM relationship r WHERE r.tenant_id=?1 AND "
        "r.customer_id=relationship_tag.customer_id AND "
        "r.employee_id=relationship_tag.employee_id AND r.status='active')",
        "DELETE FROM customer_tag WHERE tenant_id=?1 AND source='wecom' AND (?2 = 0 OR "
        "customer_id=?2) AND NOT EXISTS (SELECT 1 FROM relationship_tag rt WHERE "
        "rt.tenant_id=?1 AND rt.customer_id=customer_tag.customer_id AND "
        "rt.tag_id=customer_tag.tag_id)",
    };
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *st = stmt(a, sql[i]);
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 2, pair_cust > 0 ? pair_cust : 0);
        if (i == 0) sqlite3_bind_int64(st, 3, pair_emp);
        int rc = store_stmt_run(st);
        if (rc != 0) return rc;
        if (i == 0) a->n[SYNC_FOLLOW_TAGS].ended += store_conn_changes(a->c);
    }
    return 0;
}

/* ---- corp tags ---------------------------------------------------------- */

/* Inserts into tag_group/tag; a name taken by another row gets the WeCom id
 * appended (names are unique per tenant / group, WeCom's need not be
 * unique across Siyu's own). */
static int named_insert(sync_apply *a, const char *sql, int64_t parent, const char *wecom_id,
                        const char *name, int64_t order, int64_t *id) {
    char alt[200];
    for (int attempt = 0; attempt < 2; attempt++) {
        sqlite3_stmt *st = stmt(a, sql);
        if (!st) return SIYU_EIO;
        store_bind_text(st, 2, wecom_id);
        store_bind_text(st, 3, name);
        sqlite3_bind_int64(st, 4, order);
        sqlite3_bind_int64(st, 5, a->now);
        if (parent) sqlite3_bind_int64(st, 6, parent);
        int rc = store_stmt_run(st);
        if (rc == 0) {
            *id = store_conn_last_id(a->c);
            return 0;
        }
        if (rc != SIYU_ECONFLICT) return rc;
        snprintf(alt, sizeof alt, "%.120s (%.64s)", name, wecom_id);
        name = alt;
    }
    return SIYU_ECONFLICT;
}

static int group_upsert(sync_apply *a, const char *wid, const char *name, int64_t order,
                        int64_t *gid) {
    sqlite3_stmt *st = stmt(a, "SELECT id, name, sort_order FROM tag_group WHERE tenant_id=?1 "
                               "AND wecom_id=?2");
    if (!st) return SIYU_EIO;
    store_bind_text(st, 2, wid);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        rc = named_insert(a,
                          "INSERT INTO tag_group(tenant_id, wecom_id, name, sort_order, source, "
                          "created_at, updated_at) VALUES(?1,?2,?3,?4,'wecom',?5,?5)",
                          0, wid, name, order, gid);
        if (rc == 0) a->n[SYNC_TAG_GROUPS].created++;
        return rc;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return store_rc(rc);
    }
    *gid = sqlite3_column_int64(st, 0);
    bool same_name = text_eq(sqlite3_column_text(st, 1), name);
    bool same = same_name && sqlite3_column_int64(st, 2) == order;
    sqlite3_reset(st);
    if (same) return 0;
    st = stmt(a, "UPDATE tag_group SET name=?3, sort_order=?4, source='wecom', updated_at=?5 "
                 "WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 2, *gid);
    store_bind_text(st, 3, name);
    sqlite3_bind_int64(st, 4, order);
    sqlite3_bind_int64(st, 5, a->now);
    rc = store_stmt_run(st);
    if (rc == SIYU_ECONFLICT) return 0; /* name taken by another group: keep ours */
    if (rc == 0) a->n[SYNC_TAG_GROUPS].updated++;
    return rc;
}

static int tag_upsert(sync_apply *a, int64_t gid, const char *wid, const char *name,
                      int64_t order) {
    sqlite3_stmt *st = stmt(a, "SELECT id, group_id, name, sort_order FROM tag WHERE "
                               "tenant_id=?1 AND wecom_id=?2");
    if (!st) return SIYU_EIO;
    store_bind_text(st, 2, wid);
    int rc = sqlite3_step(st);
    int64_t id;
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        rc = named_insert(a,
                          "INSERT INTO tag(tenant_id, wecom_id, name, sort_order, created_at, "
                          "updated_at, group_id) VALUES(?1,?2,?3,?4,?5,?5,?6)",
                          gid, wid, name, order, &id);
        if (rc == 0) a->n[SYNC_TAGS].created++;
        return rc;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return store_rc(rc);
    }
    id = sqlite3_column_int64(st, 0);
    bool same = sqlite3_column_int64(st, 1) == gid && text_eq(sqlite3_column_text(st, 2), name) &&
                sqlite3_column_int64(st, 3) == order;
    sqlite3_reset(st);
    if (same) return 0;
    st = stmt(a, "UPDATE tag SET group_id=?3, name=?4, sort_order=?5, updated_at=?6 WHERE "
                 "tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_int64(st, 3, gid);
    store_bind_text(st, 4, name);
    sqlite3_bind_int64(st, 5, order);
    sqlite3_bind_int64(st, 6, a->now);
    rc = store_stmt_run(st);
    if (rc == SIYU_ECONFLICT) return 0;
    if (rc == 0) a->n[SYNC_TAGS].updated++;
    return rc;
}

/* Deletes tags (group=false) or groups by Siyu id, links first. */
static int tags_delete(sync_apply *a, const int64_t *ids, size_t n, bool group) {
    static const char *const sql[2][3] = {
        {"DELETE FROM customer_tag WHERE tenant_id=?1 AND tag_id=?2",
         "DELETE FROM tag WHERE tenant_id=?1 AND id=?2", NULL},
        {"DELETE FROM customer_tag WHERE tenant_id=?1 AND tag_id IN (SELECT id FROM tag WHERE "
         "tenant_id=?1 AND group_id=?2)",
         "DELETE FROM tag WHERE tenant_id=?1 AND group_id=?2",
         "DELETE FROM tag_group WHERE tenant_id=?1 AND id=?2"},
    };
    int64_t links = 0, rows = 0;
    for (size_t k = 0; k < n; k++)
        for (int i = 0; i < 3 && sql[group][i]; i++) {
            sqlite3_stmt *st = stmt(a, sql[group][i]);
            if (!st) return SIYU_EIO;
            sqlite3_bind_int64(st, 2, ids[k]);
            int rc = store_stmt_run(st);
            if (rc != 0) return rc;
            if (i == 0) links += store_conn_changes(a->c);
            if (i == 1) a->n[SYNC_TAGS].ended += store_conn_changes(a->c);
            if (i == 2) a->n[SYNC_TAG_GROUPS].ended += store_conn_changes(a->c);
            rows += i > 0 ? store_conn_changes(a->c) : 0;
        }
    if (rows == 0) return 0;
    char detail[64];
    snprintf(detail, sizeof detail, "customer_tag rows removed: %lld", (long long)links);
    return store_audit(a->c, a->tenant, "sync", group ? "tag_group.delete" : "tag.delete",
                       "wecom:missing", rows, detail);
}

/* Siyu ids of WeCom-sourced rows (wecom_id set) whose wecom_id is not in
 * seen (sorted). */
static int missing_ids(sync_apply *a, const char *sql, char *const *seen, size_t n,
                       sync_i64v *out) {
    sqlite3_stmt *st = stmt(a, sql);
    if (!st) return SIYU_EIO;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *w = (const char *)sqlite3_column_text(st, 1);
        if (w && !has_str(seen, n, w) && (ret = sync__i64v_push(out, sqlite3_column_int64(st, 0))))
            break;
    }
    sqlite3_reset(st);
    if (ret == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW) ret = store_rc(rc);
    return ret;
}

static int tags_delete_missing(sync_apply *a, char **seen_g, size_t ng, char **seen_t, size_t nt) {
    if (ng) qsort(seen_g, ng, sizeof *seen_g, cmp_str);
    if (nt) qsort(seen_t, nt, sizeof *seen_t, cmp_str);
    sync_i64v tags = {0}, groups = {0};
    int rc = missing_ids(a,
                         "SELECT id, wecom_id FROM tag WHERE tenant_id=?1 AND wecom_id IS NOT "
                         "NULL",
                         seen_t, nt, &tags);
    if (rc == 0) rc = tags_delete(a, tags.v, tags.n, false);
    if (rc == 0)
        rc = missing_ids(a,
                         "SELECT id, wecom_id FROM tag_group WHERE tenant_id=?1 AND wecom_id IS "
                         "NOT NULL",
                         seen_g, ng, &groups);
    if (rc == 0) rc = tags_delete(a, groups.v, groups.n, true);
    if (rc == 0) {
        sqlite3_stmt *st = stmt(a, "DELETE FROM tag_group WHERE tenant_id=?1 AND name=?2 AND "
                                   "wecom_id IS NULL AND source='wecom' AND NOT EXISTS (SELECT 1 "
                                   "FROM tag t WHERE t.group_id=tag_group.id)");
        if (!st) rc = SIYU_EIO;
        if (st) {
            store_bind_text(st, 2, WECOM_GROUP_NAME);
            rc = store_stmt_run(st);
        }
    }
    sync__i64v_free(&tags);
    sync__i64v_free(&groups);
    return rc;
}

int sync__tags_apply(sync_apply *a, const json_t *tag_groups, bool full) {
    size_t ng = json_array_size(tag_groups), nt = 0, i, j;
    const json_t *g, *t;
    json_array_foreach(tag_groups, i, g) nt += json_array_size(json_object_get(g, "tag"));
    char **seen_g = calloc(ng + 1, sizeof *seen_g), **seen_t = calloc(nt + 1, sizeof *seen_t);
    size_t kg = 0, kt = 0;
    int rc = seen_g && seen_t ? 0 : SIYU_ENOMEM;
    json_array_foreach(tag_groups, i, g) {
        if (rc != 0) break;
        const char *gw = sync__nz(sync__jstr(g, "group_id"));
        const char *gname = sync__nz(sync__jstr(g, "group_name"));
        if (!gw) continue;
        if (json_is_true(json_object_get(g, "deleted"))) continue; /* full: deleted below */
        if (!gname) gname = gw;
        int64_t gid = 0;
        if ((rc = group_upsert(a, gw, gname, sync__jint(g, "order", 0), &gid)) != 0) break;
        seen_g[kg++] = (char *)gw;
        json_array_foreach(json_object_get(g, "tag"), j, t) {
            const char *tw = sync__nz(sync__jstr(t, "id"));
            const char *tname = sync__nz(sync__jstr(t, "name"));
            if (!tw || json_is_true(json_object_get(t, "deleted"))) continue;
            if ((rc = tag_upsert(a, gid, tw, tname ? tname : tw, sync__jint(t, "order", 0))) != 0)
                break;
            seen_t[kt++] = (char *)tw;
        }
    }
    if (rc == 0 && full) rc = tags_delete_missing(a, seen_g, kg, seen_t, kt);
    free(seen_g);
    free(seen_t);
    return rc;
}

/* ---- customer groups ---------------------------------------------------- */

typedef struct member_row {
    char *id;
    bool in;
    int64_t join_scene, joined_at;
    bool has_scene, has_joined;
} member_row;

static int member_cmp(const void *x, const void *y) {
    return strcmp(((const member_row *)x)->id, ((const member_row *)y)->id);
}

static void members_free(member_row *m, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(m[i].id);
    free(m);
}

static int members_load(sync_apply *a, int64_t gid, member_row **out, size_t *n) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = stmt(a, "SELECT member_id, status, join_scene, joined_at FROM "
                               "group_member WHERE tenant_id=?1 AND group_id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 2, gid);
    size_t cap = 0;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            member_row *p = realloc(*out, cap * sizeof *p);
            if (!p) {
                ret = SIYU_ENOMEM;
                break;
            }
            *out = p;
        }
        member_row *m = &(*out)[*n];
        m->id = strdup((const char *)sqlite3_column_text(st, 0));
        if (!m->id) {
            ret = SIYU_ENOMEM;
            break;
        }
        (*n)++;
        m->in = text_eq(sqlite3_column_text(st, 1), "in");
        m->has_scene = sqlite3_column_type(st, 2) != SQLITE_NULL;
        m->join_scene = sqlite3_column_int64(st, 2);
        m->has_joined = sqlite3_column_type(st, 3) != SQLITE_NULL;
        m->joined_at = sqlite3_column_int64(st, 3);
    }
    sqlite3_reset(st);
    if (ret == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW) ret = store_rc(rc);
    if (ret == 0 && *n) qsort(*out, *n, sizeof **out, member_cmp);
    return ret;
}

/* Member kind: type 1 = employee, 2 = external; without a type, external
 * ids start with "wo"/"wm" (as the callback ingest decides). */
static int member_resolve(sync_apply *a, const char *id, int64_t type, int64_t *cust,
                          int64_t *emp) {
    *cust = *emp = 0;
    bool external = type == 2 || (type != 1 && (!strncmp(id, "wo", 2) || !strncmp(id, "wm", 2)));
    return external ? customer_ensure_bare(a, id, cust) : sync__employee_ensure(a, id, emp);
}

static int member_join(sync_apply *a, int64_t gid, const json_t *m, const char *id, int64_t scene,
                       int64_t joined) {
    int64_t cust, emp;
    int rc = member_resolve(a, id, sync__jint(m, "type", -1), &cust, &emp);
    if (rc != 0) return rc;
    sqlite3_stmt *st =
        stmt(a, "INSERT INTO group_member(tenant_id, group_id, member_id, customer_id, "
                "employee_id, status, join_scene, joined_at) VALUES(?1,?2,?3,?4,?5,'in',?6,?7) "
                "ON CONFLICT(tenant_id, group_id, member_id) DO UPDATE SET status='in', "
                "customer_id=excluded.customer_id, employee_id=excluded.employee_id, "
                "join_scene=excluded.join_scene, joined_at=excluded.joined_at, quit_scene=NULL, "
                "left_at=NULL");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 2, gid);
    store_bind_text(st, 3, id);
    store_bind_opt_int(st, 4, cust, cust > 0);
    store_bind_opt_int(st, 5, emp, emp > 0);
    store_bind_opt_int(st, 6, scene, scene >= 0);
    store_bind_opt_int(st, 7, joined, joined > 0);
    return store_stmt_run(st);
}

static int member_leave(sync_apply *a, int64_t gid, const char *id) {
    sqlite3_stmt *st = stmt(a, "UPDATE group_member SET status='left', quit_scene=NULL, "
                               "left_at=?4 WHERE tenant_id=?1 AND group_id=?2 AND member_id=?3 "
                               "AND status='in'");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 2, gid);
    store_bind_text(st, 3, id);
    sqlite3_bind_int64(st, 4, a->now);
    return store_stmt_run(st);
}

static int members_apply(sync_apply *a, int64_t gid, const json_t *list) {
    member_row *cur = NULL;
    size_t n = 0, i;
    int rc = members_load(a, gid, &cur, &n);
    bool *listed = rc == 0 ? calloc(n + 1, sizeof *listed) : NULL;
    if (rc == 0 && !listed) rc = SIYU_ENOMEM;
    const json_t *m;
    json_array_foreach(list, i, m) {
        if (rc != 0) break;
        const char *id = sync__nz(sync__jstr(m, "userid"));
        if (!id) continue;
        int64_t scene = sync__jint(m, "join_scene", -1), joined = sync__jint(m, "join_time", 0);
        member_row key = {.id = (char *)id};
        member_row *c = n ? bsearch(&key, cur, n, sizeof *cur, member_cmp) : NULL;
        if (c) listed[c - cur] = true;
        bool same = c && c->in &&
                    (scene < 0 ? !c->has_scene : c->has_scene && c->join_scene == scene) &&
                    (joined <= 0 ? !c->has_joined : c->has_joined && c->joined_at == joined);
        if (same) continue;
        rc = member_join(a, gid, m, id, scene, joined);
        if (rc == 0) {
            if (c && c->in)
                a->n[SYNC_MEMBERS].updated++;
            else
                a->n[SYNC_MEMBERS].created++;
        }
    }
    for (i = 0; i < n && rc == 0; i++)
        if (cur[i].in && !listed[i]) {
            rc = member_leave(a, gid, cur[i].id);
            a->n[SYNC_MEMBERS].ended++;
        }
    free(listed);
    members_free(cur, n);
    return rc;
}

int sync__chat_apply(sync_apply *a, const json_t *chat, bool force_members) {
    const char *cid = sync__nz(sync__jstr(chat, "chat_id"));
    if (!cid) return SIYU_EINVAL;
    const char *name = sync__nz(sync__jstr(chat, "name"));
    const char *owner = sync__nz(sync__jstr(chat, "owner"));
    const char *notice = sync__nz(sync__jstr(chat, "notice"));
    const char *ver = sync__nz(sync__jstr(chat, "member_version"));
    int64_t created = sync__jint(chat, "create_time", 0);
    if (created <= 0) created = a->now;
    sqlite3_stmt *st = stmt(a, "SELECT id, name, owner_userid, notice, status, member_version, "
                               "created_at, updated_at FROM group_chat WHERE tenant_id=?1 AND "
                               "chat_id=?2");
    if (!st) return SIYU_EIO;
    store_bind_text(st, 2, cid);
    int src = sqlite3_step(st);
    int64_t gid = 0;
    bool members = true, write = true;
    if (src == SQLITE_ROW) {
        gid = sqlite3_column_int64(st, 0);
        if (sqlite3_column_int64(st, 7) > a->fetched_at) { /* a callback came after the fetch */
            sqlite3_reset(st);
            return 0;
        }
        bool active = text_eq(sqlite3_column_text(st, 4), "active");
        bool same_ver = text_eq(sqlite3_column_text(st, 5), ver);
        members = force_members || !active || !same_ver || !ver;
        write = !active || !same_ver || !text_eq(sqlite3_column_text(st, 1), name) ||
                !text_eq(sqlite3_column_text(st, 2), owner) ||
                !text_eq(sqlite3_column_text(st, 3), notice) ||
                sqlite3_column_int64(st, 6) != created;
    } else if (src != SQLITE_DONE) {
        sqlite3_reset(st);
        return store_rc(src);
    }
    sqlite3_reset(st);
    int rc = 0;
    if (write) {
        st = stmt(a, gid ? "UPDATE group_chat SET name=?3, owner_userid=?4, notice=?5, "
                           "status='active', dismissed_at=NULL, member_version=?6, "
                           "created_at=?7, updated_at=?8 WHERE tenant_id=?1 AND chat_id=?2"
                         : "INSERT INTO group_chat(tenant_id, chat_id, name, owner_userid, "
                           "notice, status, member_version, created_at, updated_at) "
                           "VALUES(?1,?2,?3,?4,?5,'active',?6,?7,?8)");
        if (!st) return SIYU_EIO;
        store_bind_text(st, 2, cid);
        store_bind_text(st, 3, name);
        store_bind_text(st, 4, owner);
        store_bind_text(st, 5, notice);
        store_bind_text(st, 6, ver);
        sqlite3_bind_int64(st, 7, created);
        sqlite3_bind_int64(st, 8, a->now);
        if ((rc = store_stmt_run(st)) != 0) return rc;
        if (gid)
            a->n[SYNC_GROUPS].updated++;
        else {
            gid = store_conn_last_id(a->c);
            a->n[SYNC_GROUPS].created++;
        }
    }
    if (!members) return 0;
    const json_t *list = json_object_get(chat, "member_list");
    return json_is_array(list) ? members_apply(a, gid, list) : 0;
}

int sync__chats_dismiss_missing(sync_apply *a, char *const *chat_ids, size_t n, char *const *owners,
                                size_t nowners, int64_t before) {
    sync_i64v gone = {0};
    sqlite3_stmt *st = stmt(a, "SELECT id, chat_id, owner_userid FROM group_chat WHERE "
                               "tenant_id=?1 AND status='active' AND updated_at < ?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 2, before);
    int src, rc = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *cid = (const char *)sqlite3_column_text(st, 1);
        const char *owner = (const char *)sqlite3_column_text(st, 2);
        if (owner && !has_str(owners, nowners, owner)) continue; /* owner not listed */
        if (cid && !has_str(chat_ids, n, cid) &&
            (rc = sync__i64v_push(&gone, sqlite3_column_int64(st, 0))) != 0)
            break;
    }
    sqlite3_reset(st);
    if (rc == 0 && src != SQLITE_DONE && src != SQLITE_ROW) rc = store_rc(src);
    st = rc == 0 ? stmt(a, "UPDATE group_chat SET status='dismissed', dismissed_at=?3, "
                           "updated_at=?3 WHERE tenant_id=?1 AND id=?2")
                 : NULL;
    if (rc == 0 && !st) rc = SIYU_EIO;
    for (size_t i = 0; rc == 0 && i < gone.n; i++) {
        sqlite3_bind_int64(st, 2, gone.v[i]);
        sqlite3_bind_int64(st, 3, a->now);
        if ((rc = store_stmt_run(st)) == 0) a->n[SYNC_GROUPS].ended++;
    }
    sync__i64v_free(&gone);
    return rc;
}
