/* tag.c — tag_group, tag and customer_tag rows (see tag.h).
 *
 * Every statement filters by tenant_id, so an id of another tenant behaves
 * exactly like a missing one. Deletes go children first (customer_tag, then
 * tag, then tag_group) because foreign keys are enforced.
 *
 * Bulk tagging is set-based: the id lists travel as JSON array text and are
 * expanded with json_each, so 100 tags x 10,000 customers is three statements
 * (tags check, customers-in-scope check, insert or delete), not a loop. The
 * checks return the first offending array index (ORDER BY key), which is
 * what the caller reports. */
#include "store/tag.h"

#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "store/audit.h"
#include "store/tag_wecom.h"

#define TAG_COLS "id, group_id, name, sort_order, wecom_id, created_at, updated_at"
#define GROUP_COLS "id, name, sort_order, source, wecom_id, created_at, updated_at"

static int name_check(const char *name, bool required, siyu_err *err) {
    if (!name) return required ? siyu_err_set(err, SIYU_EINVAL, "name", "name is required") : 0;
    size_t n = strlen(name);
    if (n == 0 || n > TAG_NAME_MAX)
        return siyu_err_set(err, SIYU_EINVAL, "name", "name must be 1 to %d bytes", TAG_NAME_MAX);
    return 0;
}

static int audit_id(store_conn *c, int64_t tenant, const char *actor, const char *action,
                    const char *kind, int64_t id, int64_t count, const char *detail) {
    char target[48];
    snprintf(target, sizeof target, "%s:%lld", kind, (long long)id);
    return store_audit(c, tenant, actor, action, target, count, detail);
}

/* *found = whether the group is the tenant's. 0 or a SIYU_E* code. */
static int group_lookup(store_conn *c, int64_t tenant, int64_t id, bool *found) {
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT 1 FROM tag_group WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    *found = rc == SQLITE_ROW;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_rc(rc);
}

/* A tag's group_id must name a group of the tenant: else 400 on group_id. */
static int group_ref_check(store_conn *c, int64_t tenant, int64_t id, siyu_err *err) {
    bool found;
    int rc = group_lookup(c, tenant, id, &found);
    if (rc != 0 || found) return rc;
    return siyu_err_set(err, SIYU_EINVAL, "group_id", "tag group %lld does not exist",
                        (long long)id);
}

/* ---- groups ------------------------------------------------------------- */

int tag_group_create(store_conn *c, void *arg) {
    tag_group_input *in = arg;
    if (name_check(in->name, true, &in->err) != 0) return SIYU_EINVAL;
    if (in->wecom && tag_wecom_name_check(in->name, "tag group", &in->err) != 0) return SIYU_EINVAL;
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT INTO tag_group(tenant_id, name, sort_order, source, created_at, updated_at) "
           "VALUES(?1,?2,?3,?5,?4,?4)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    store_bind_text(st, 2, in->name);
    sqlite3_bind_int64(st, 3, in->has_sort_order ? in->sort_order : 0);
    sqlite3_bind_int64(st, 4, siyu_now());
    store_bind_text(st, 5, in->wecom ? "wecom" : "internal");
    int rc = store_stmt_run(st);
    if (rc == SIYU_ECONFLICT)
        return siyu_err_set(&in->err, rc, "name", "a tag group with this name already exists");
    if (rc != 0) return rc;
    in->id = store_conn_last_id(c);
    /* A WeCom group reaches WeCom with its first tag (no empty groups there). */
    if ((rc = audit_id(c, in->tenant_id, in->actor, "tag_group.create", "tag_group", in->id, 1,
                       in->wecom ? "wecom" : NULL)) != 0)
        return rc;
    for (size_t i = 0; i < in->ntags; i++) {
        tag_input t = {.tenant_id = in->tenant_id,
                       .group_id = in->id,
                       .name = in->tag_names[i],
                       .actor = in->actor};
        if ((rc = tag_create(c, &t)) != 0) {
            in->err = t.err;
            snprintf(in->err.field, sizeof in->err.field, "tags[%zu]", i);
            return rc;
        }
        in->kick |= t.kick;
    }
    return 0;
}

int tag_group_update(store_conn *c, void *arg) {
    tag_group_input *in = arg;
    if (name_check(in->name, false, &in->err) != 0) return SIYU_EINVAL;
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE tag_group SET name=coalesce(?3,name), sort_order=coalesce(?4,sort_order), "
           "updated_at=?5 WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    store_bind_text(st, 3, in->name);
    store_bind_opt_int(st, 4, in->sort_order, in->has_sort_order);
    sqlite3_bind_int64(st, 5, siyu_now());
    int rc = store_stmt_run(st);
    if (rc == SIYU_ECONFLICT)
        return siyu_err_set(&in->err, rc, "name", "a tag group with this name already exists");
    if (rc != 0) return rc;
    if (store_conn_changes(c) == 0)
        return siyu_err_set(&in->err, SIYU_ENOTFOUND, "id", "tag group %lld does not exist",
                            (long long)in->id);
    if (in->name &&
        (rc = tag_wecom_renamed(c, in->tenant_id, true, in->id, in->actor, &in->kick, &in->err)))
        return rc;
    return audit_id(c, in->tenant_id, in->actor, "tag_group.update", "tag_group", in->id, 1, NULL);
}

/* Runs a DELETE bound with ?1 tenant, ?2 id; *n gets the row count. */
static int delete_rows(store_conn *c, const char *sql, int64_t tenant, int64_t id, int64_t *n) {
    sqlite3_stmt *st = store_conn_stmt(c, sql);
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    int rc = store_stmt_run(st);
    if (n) *n = store_conn_changes(c);
    return rc;
}

int tag_group_delete(store_conn *c, void *arg) {
    tag_group_input *in = arg;
    bool found;
    int rc = group_lookup(c, in->tenant_id, in->id, &found);
    if (rc != 0) return rc;
    if (!found)
        return siyu_err_set(&in->err, SIYU_ENOTFOUND, "id", "tag group %lld does not exist",
                            (long long)in->id);
    if ((rc = tag_wecom_deleting(c, in->tenant_id, true, in->id, in->actor, &in->kick, &in->err)))
        return rc;
    int64_t gone;
    if ((rc = delete_rows(c,
                          "DELETE FROM customer_tag WHERE tenant_id=?1 AND tag_id IN "
                          "(SELECT id FROM tag WHERE tenant_id=?1 AND group_id=?2)",
                          in->tenant_id, in->id, &in->removed_links)) != 0 ||
        (rc = delete_rows(c, "DELETE FROM tag WHERE tenant_id=?1 AND group_id=?2", in->tenant_id,
                          in->id, &in->removed_tags)) != 0 ||
        (rc = delete_rows(c, "DELETE FROM tag_group WHERE tenant_id=?1 AND id=?2", in->tenant_id,
                          in->id, &gone)) != 0)
        return rc;
    char detail[64];
    snprintf(detail, sizeof detail, "tags=%lld customer_tags=%lld", (long long)in->removed_tags,
             (long long)in->removed_links);
    return audit_id(c, in->tenant_id, in->actor, "tag_group.delete", "tag_group", in->id,
                    in->removed_tags, detail);
}

/* ---- tags --------------------------------------------------------------- */

static int tag_conflict(tag_input *in) {
    return siyu_err_set(&in->err, SIYU_ECONFLICT, "name",
                        "a tag with this name already exists in the group");
}

int tag_create(store_conn *c, void *arg) {
    tag_input *in = arg;
    if (name_check(in->name, true, &in->err) != 0) return SIYU_EINVAL;
    int rc = group_ref_check(c, in->tenant_id, in->group_id, &in->err);
    if (rc != 0) return rc;
    bool wecom;
    if ((rc = tag_wecom_group_is(c, in->tenant_id, in->group_id, &wecom)) != 0) return rc;
    if (in->has_wecom && in->wecom != wecom)
        return siyu_err_set(&in->err, SIYU_EINVAL, "wecom",
                            wecom ? "the group holds WeCom tags" : "the group holds internal tags");
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT INTO tag(tenant_id, group_id, name, sort_order, created_at, updated_at) "
           "VALUES(?1,?2,?3,?4,?5,?5)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->group_id);
    store_bind_text(st, 3, in->name);
    sqlite3_bind_int64(st, 4, in->has_sort_order ? in->sort_order : 0);
    sqlite3_bind_int64(st, 5, siyu_now());
    rc = store_stmt_run(st);
    if (rc == SIYU_ECONFLICT) return tag_conflict(in);
    if (rc != 0) return rc;
    in->id = store_conn_last_id(c);
    if (wecom &&
        (rc = tag_wecom_tag_created(c, in->tenant_id, in->id, in->actor, &in->kick, &in->err)))
        return rc;
    return audit_id(c, in->tenant_id, in->actor, "tag.create", "tag", in->id, 1,
                    wecom ? "wecom" : NULL);
}

/* WeCom cannot move a tag between groups: a tag may not leave or enter a
 * WeCom group. */
static int wecom_move_check(store_conn *c, tag_input *in) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT t.group_id<>?3 AND (g.source='wecom' OR (SELECT source FROM tag_group WHERE "
           "id=?3)='wecom') FROM tag t JOIN tag_group g ON g.id=t.group_id WHERE t.tenant_id=?1 "
           "AND t.id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    sqlite3_bind_int64(st, 3, in->group_id);
    int rc = sqlite3_step(st);
    bool bad = rc == SQLITE_ROW && sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_rc(rc);
    return bad ? siyu_err_set(&in->err, SIYU_EINVAL, "group_id",
                              "WeCom tags cannot move between groups")
               : 0;
}

int tag_update(store_conn *c, void *arg) {
    tag_input *in = arg;
    if (name_check(in->name, false, &in->err) != 0) return SIYU_EINVAL;
    int rc = in->group_id ? group_ref_check(c, in->tenant_id, in->group_id, &in->err) : 0;
    if (rc != 0) return rc;
    if (in->group_id && (rc = wecom_move_check(c, in)) != 0) return rc;
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE tag SET group_id=coalesce(?3,group_id), name=coalesce(?4,name), "
           "sort_order=coalesce(?5,sort_order), updated_at=?6 WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    store_bind_opt_int(st, 3, in->group_id, in->group_id != 0);
    store_bind_text(st, 4, in->name);
    store_bind_opt_int(st, 5, in->sort_order, in->has_sort_order);
    sqlite3_bind_int64(st, 6, siyu_now());
    rc = store_stmt_run(st);
    if (rc == SIYU_ECONFLICT) return tag_conflict(in);
    if (rc != 0) return rc;
    if (store_conn_changes(c) == 0)
        return siyu_err_set(&in->err, SIYU_ENOTFOUND, "id", "tag %lld does not exist",
                            (long long)in->id);
    if (in->name &&
        (rc = tag_wecom_renamed(c, in->tenant_id, false, in->id, in->actor, &in->kick, &in->err)))
        return rc;
    return audit_id(c, in->tenant_id, in->actor, "tag.update", "tag", in->id, 1, NULL);
}

int tag_delete(store_conn *c, void *arg) {
    tag_input *in = arg;
    int64_t gone;
    int rc = tag_wecom_deleting(c, in->tenant_id, false, in->id, in->actor, &in->kick, &in->err);
    if (rc != 0) return rc;
    rc = delete_rows(c, "DELETE FROM customer_tag WHERE tenant_id=?1 AND tag_id=?2", in->tenant_id,
                     in->id, &in->removed_links);
    if (rc == 0)
        rc = delete_rows(c, "DELETE FROM tag WHERE tenant_id=?1 AND id=?2", in->tenant_id, in->id,
                         &gone);
    if (rc != 0) return rc;
    if (gone == 0)
        return siyu_err_set(&in->err, SIYU_ENOTFOUND, "id", "tag %lld does not exist",
                            (long long)in->id);
    char detail[48];
    snprintf(detail, sizeof detail, "customer_tags=%lld", (long long)in->removed_links);
    return audit_id(c, in->tenant_id, in->actor, "tag.delete", "tag", in->id, in->removed_links,
                    detail);
}

/* ---- reads -------------------------------------------------------------- */

static json_t *col_text(sqlite3_stmt *st, int i) {
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? json_string(s) : json_null();
}

static json_t *col_int_or_null(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null()
                                                     : json_integer(sqlite3_column_int64(st, i));
}

/* A tag object from a row of TAG_COLS. */
static json_t *tag_row(sqlite3_stmt *st) {
    return json_pack("{s:I,s:o,s:o,s:I,s:o,s:I,s:I}", "id", (json_int_t)sqlite3_column_int64(st, 0),
                     "group_id", col_int_or_null(st, 1), "name", col_text(st, 2), "sort_order",
                     (json_int_t)sqlite3_column_int64(st, 3), "wecom_id", col_text(st, 4),
                     "created_at", (json_int_t)sqlite3_column_int64(st, 5), "updated_at",
                     (json_int_t)sqlite3_column_int64(st, 6));
}

static json_t *group_tags(store_conn *c, int64_t tenant, int64_t group) {
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT " TAG_COLS " FROM tag WHERE tenant_id=?1 AND "
                                          "group_id=?2 ORDER BY sort_order, id");
    json_t *tags = json_array();
    if (!st) return tags;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, group);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(tags, tag_row(st));
    sqlite3_reset(st);
    return tags;
}

/* A group object (with its tags) from a row of GROUP_COLS. */
static json_t *group_row(store_conn *c, int64_t tenant, sqlite3_stmt *st) {
    int64_t id = sqlite3_column_int64(st, 0);
    return json_pack("{s:I,s:o,s:I,s:o,s:o,s:I,s:I,s:o}", "id", (json_int_t)id, "name",
                     col_text(st, 1), "sort_order", (json_int_t)sqlite3_column_int64(st, 2),
                     "source", col_text(st, 3), "wecom_id", col_text(st, 4), "created_at",
                     (json_int_t)sqlite3_column_int64(st, 5), "updated_at",
                     (json_int_t)sqlite3_column_int64(st, 6), "tags", group_tags(c, tenant, id));
}

json_t *tag_group_get_json(store_conn *c, int64_t tenant_id, int64_t id) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT " GROUP_COLS " FROM tag_group WHERE tenant_id=?1 AND id=?2");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, id);
    json_t *j = sqlite3_step(st) == SQLITE_ROW ? group_row(c, tenant_id, st) : NULL;
    sqlite3_reset(st);
    return j;
}

json_t *tag_get_json(store_conn *c, int64_t tenant_id, int64_t id) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT " TAG_COLS " FROM tag WHERE tenant_id=?1 AND id=?2");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, id);
    json_t *j = sqlite3_step(st) == SQLITE_ROW ? tag_row(st) : NULL;
    sqlite3_reset(st);
    return j;
}

/* Binds the keyset page (?1 tenant, ?2/?3 cursor, ?4 limit + 1, ?5 group)
 * and appends up to pg->limit rows; a further row means another page.
 * Column 0 is the id, column sort_col the sort order. */
static int list_page(store_conn *c, sqlite3_stmt *st, int64_t tenant, tag_page *pg, int sort_col,
                     bool groups, json_t *items) {
    sqlite3_bind_int64(st, 1, tenant);
    if (pg->after) {
        sqlite3_bind_int64(st, 2, pg->after_sort);
        sqlite3_bind_int64(st, 3, pg->after_id);
    }
    sqlite3_bind_int64(st, 4, pg->limit + 1);
    if (!groups) sqlite3_bind_int64(st, 5, pg->group_id);
    int n = 0, rc;
    pg->more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == pg->limit) {
            pg->more = true;
            break;
        }
        pg->last_id = sqlite3_column_int64(st, 0);
        pg->last_sort = sqlite3_column_int64(st, sort_col);
        json_array_append_new(items, groups ? group_row(c, tenant, st) : tag_row(st));
        n++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_rc(rc);
}

int tag_group_list(store_conn *c, int64_t tenant_id, tag_page *pg, json_t *items) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT " GROUP_COLS " FROM tag_group WHERE tenant_id=?1 AND (?2 IS NULL OR "
           "(sort_order, id) > (?2, ?3)) ORDER BY sort_order, id LIMIT ?4");
    if (!st) return SIYU_EIO;
    return list_page(c, st, tenant_id, pg, 2, true, items);
}

int tag_list(store_conn *c, int64_t tenant_id, tag_page *pg, json_t *items) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT " TAG_COLS " FROM tag WHERE tenant_id=?1 AND (?5 = 0 OR group_id=?5) AND "
           "(?2 IS NULL OR (sort_order, id) > (?2, ?3)) ORDER BY sort_order, id LIMIT ?4");
    if (!st) return SIYU_EIO;
    return list_page(c, st, tenant_id, pg, 3, false, items);
}

/* ---- bulk tag / untag --------------------------------------------------- */

/* Runs a "first offending index" query; *key = -1 when there is none. */
static int first_missing(sqlite3_stmt *st, int64_t *key, int64_t *value) {
    *key = -1;
    int rc = store_stmt_query_id(st, key, value);
    return rc == 1 ? 0 : rc;
}

static int bulk_check_tags(store_conn *c, tag_bulk *b) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT j.key, j.value FROM json_each(?1) j LEFT JOIN tag t ON t.id=j.value AND "
           "t.tenant_id=?2 WHERE t.id IS NULL ORDER BY j.key LIMIT 1");
    if (!st) return SIYU_EIO;
    store_bind_text(st, 1, b->tag_ids);
    sqlite3_bind_int64(st, 2, b->auth.tenant_id);
    int64_t key, value;
    int rc = first_missing(st, &key, &value);
    if (rc != 0 || key < 0) return rc;
    char field[48];
    snprintf(field, sizeof field, "tag_ids[%lld]", (long long)key);
    return siyu_err_set(&b->err, SIYU_ENOTFOUND, field, "tag %lld does not exist",
                        (long long)value);
}

static int bulk_check_customers(store_conn *c, tag_bulk *b) {
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT j.key, j.value FROM json_each(:ids) j LEFT JOIN customer c ON c.id=j.value "
             "AND c.tenant_id=:scope_tenant AND (%s) WHERE c.id IS NULL ORDER BY j.key LIMIT 1",
             auth_scope_sql(&b->auth));
    sqlite3_stmt *st = store_conn_stmt(c, sql);
    if (!st) return SIYU_EIO;
    sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, ":ids"), b->customer_ids, -1,
                      SQLITE_STATIC);
    auth_scope_bind(st, &b->auth);
    int64_t key, value;
    int rc = first_missing(st, &key, &value);
    if (rc != 0 || key < 0) return rc;
    char field[48];
    snprintf(field, sizeof field, "customer_ids[%lld]", (long long)key);
    return siyu_err_set(&b->err, SIYU_ENOTFOUND, field,
                        "customer %lld does not exist or is not visible to this token",
                        (long long)value);
}

int tag_bulk_apply(store_conn *c, void *arg) {
    tag_bulk *b = arg;
    b->changed = 0;
    int rc;
    if ((rc = bulk_check_tags(c, b)) != 0 || (rc = bulk_check_customers(c, b)) != 0) return rc;
    sqlite3_stmt *st;
    if (b->untag) {
        st = store_conn_stmt(c, "DELETE FROM customer_tag WHERE tenant_id=?1 AND customer_id IN "
                                "(SELECT value FROM json_each(?2)) AND tag_id IN "
                                "(SELECT value FROM json_each(?3))");
    } else {
        st = store_conn_stmt(
            c, "INSERT OR IGNORE INTO customer_tag(tenant_id, customer_id, tag_id, source, "
               "employee_id, created_at) SELECT ?1, cj.value, tj.value, 'manual', ?4, ?5 "
               "FROM json_each(?2) cj, json_each(?3) tj");
    }
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, b->auth.tenant_id);
    store_bind_text(st, 2, b->customer_ids);
    store_bind_text(st, 3, b->tag_ids);
    if (!b->untag) {
        store_bind_opt_int(st, 4, b->auth.employee_id, b->auth.employee_id != 0);
        sqlite3_bind_int64(st, 5, siyu_now());
    }
    if ((rc = store_stmt_run(st)) != 0) return rc;
    b->changed = store_conn_changes(c);
    if ((rc = tag_wecom_mark(c, b->auth.tenant_id, b->tag_ids, b->customer_ids, b->untag, b->actor,
                             &b->kick, &b->pushed, &b->err)) != 0)
        return rc;
    char detail[96];
    snprintf(detail, sizeof detail, "tags=%zu customers=%zu wecom_pushes=%lld", b->ntags,
             b->ncustomers, (long long)b->pushed);
    return store_audit(c, b->auth.tenant_id, b->actor, b->untag ? "tag.bulk_untag" : "tag.bulk_tag",
                       NULL, b->changed, detail);
}
