/* segment.c — saved segments (segment.h). */
#include "store/segment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/audit.h"
#include "util/text.h"

int segment_name_check(const char *name, siyu_err *err) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > SEGMENT_NAME_MAX)
        return siyu_err_set(err, SIYU_EINVAL, "name", "name must be 1..%d bytes", SEGMENT_NAME_MAX);
    if (!text_is_clean(name))
        return siyu_err_set(err, SIYU_EINVAL, "name", "name must not hold control characters");
    return 0;
}

static int input_check(segment_input *in) {
    if (in->name && segment_name_check(in->name, &in->err)) return SIYU_EINVAL;
    if (in->expr && strlen(in->expr) > 16384)
        return siyu_err_set(&in->err, SIYU_EINVAL, "expr", "expr is longer than 16384 bytes");
    if (in->description && strlen(in->description) > SEGMENT_DESCRIPTION_MAX)
        return siyu_err_set(&in->err, SIYU_EINVAL, "description",
                            "description must be at most %d bytes", SEGMENT_DESCRIPTION_MAX);
    return 0;
}

static int name_taken(segment_input *in) {
    return siyu_err_set(&in->err, SIYU_ECONFLICT, "name", "a segment named \"%s\" exists",
                        in->name);
}

static int audit(store_conn *c, segment_input *in, const char *action) {
    char target[40];
    snprintf(target, sizeof target, "segment:%lld", (long long)in->id);
    return store_audit(c, in->tenant_id, in->actor, action, target, 1, NULL);
}

int segment_create(store_conn *c, void *arg) {
    segment_input *in = arg;
    if (!in->name) return siyu_err_set(&in->err, SIYU_EINVAL, "name", "field 'name' is required");
    if (!in->expr) return siyu_err_set(&in->err, SIYU_EINVAL, "expr", "field 'expr' is required");
    if (input_check(in)) return in->err.code;
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT INTO segment(tenant_id, name, expr, description, created_by, created_at, "
           "updated_at) VALUES(?1,?2,?3,?4,?5,?6,?6)");
    if (!st) return SIYU_EIO;
    int64_t now = siyu_now();
    sqlite3_bind_int64(st, 1, in->tenant_id);
    store_bind_text(st, 2, in->name);
    store_bind_text(st, 3, in->expr);
    store_bind_text(st, 4, in->description);
    store_bind_text(st, 5, in->actor);
    sqlite3_bind_int64(st, 6, now);
    int rc = store_stmt_run(st);
    if (rc == SIYU_ECONFLICT) return name_taken(in);
    if (rc) return rc;
    in->id = store_conn_last_id(c);
    return audit(c, in, "segment.create");
}

int segment_update(store_conn *c, void *arg) {
    segment_input *in = arg;
    if (input_check(in)) return in->err.code;
    sqlite3_stmt *st =
        store_conn_stmt(c, "UPDATE segment SET name=coalesce(?3, name), expr=coalesce(?4, expr), "
                           "description=CASE WHEN ?5 THEN ?6 ELSE description END, updated_at=?7 "
                           "WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    store_bind_text(st, 3, in->name);
    store_bind_text(st, 4, in->expr);
    sqlite3_bind_int(st, 5, in->has_description);
    store_bind_text(st, 6, in->description);
    sqlite3_bind_int64(st, 7, siyu_now());
    int rc = store_stmt_run(st);
    if (rc == SIYU_ECONFLICT) return name_taken(in);
    if (rc) return rc;
    if (store_conn_changes(c) == 0)
        return siyu_err_set(&in->err, SIYU_ENOTFOUND, NULL, "segment %lld does not exist",
                            (long long)in->id);
    return audit(c, in, "segment.update");
}

int segment_delete(store_conn *c, void *arg) {
    segment_input *in = arg;
    sqlite3_stmt *st = store_conn_stmt(c, "DELETE FROM segment WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->tenant_id);
    sqlite3_bind_int64(st, 2, in->id);
    int rc = store_stmt_run(st);
    if (rc) return rc;
    if (store_conn_changes(c) == 0)
        return siyu_err_set(&in->err, SIYU_ENOTFOUND, NULL, "segment %lld does not exist",
                            (long long)in->id);
    return audit(c, in, "segment.delete");
}

/* ---- reads ---- */

#define SEGMENT_COLS "id, name, expr, description, created_by, created_at, updated_at"

static json_t *text_or_null(sqlite3_stmt *st, int i) {
    const char *s = (const char *)sqlite3_column_text(st, i);
    json_t *j = s ? json_stringn(s, (size_t)sqlite3_column_bytes(st, i)) : NULL;
    return j ? j : json_null();
}

static json_t *segment_item(sqlite3_stmt *st) {
    return json_pack("{s:I,s:o,s:o,s:o,s:o,s:I,s:I}", "id", (json_int_t)sqlite3_column_int64(st, 0),
                     "name", text_or_null(st, 1), "expr", text_or_null(st, 2), "description",
                     text_or_null(st, 3), "created_by", text_or_null(st, 4), "created_at",
                     (json_int_t)sqlite3_column_int64(st, 5), "updated_at",
                     (json_int_t)sqlite3_column_int64(st, 6));
}

int segment_get_json(store_conn *c, int64_t tenant_id, int64_t id, json_t **out, siyu_err *err) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT " SEGMENT_COLS " FROM segment WHERE tenant_id=?1 AND id=?2");
    if (!st) return siyu_err_set(err, SIYU_EIO, NULL, "query failed");
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = segment_item(st);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) return *out ? 0 : siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    if (rc == SQLITE_DONE)
        return siyu_err_set(err, SIYU_ENOTFOUND, NULL, "segment %lld does not exist",
                            (long long)id);
    return siyu_err_set(err, SIYU_EIO, NULL, "query failed");
}

int segment_list_json(store_conn *c, int64_t tenant_id, int64_t after, int limit, json_t **items,
                      bool *more, siyu_err *err) {
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT " SEGMENT_COLS " FROM segment WHERE "
                                          "tenant_id=?1 AND id>?2 ORDER BY id LIMIT ?3");
    if (!st) return siyu_err_set(err, SIYU_EIO, NULL, "query failed");
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int(st, 3, limit + 1);
    json_t *arr = json_array();
    int rc;
    *more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((int)json_array_size(arr) == limit) {
            *more = true;
            break;
        }
        json_array_append_new(arr, segment_item(st));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(arr);
        return siyu_err_set(err, SIYU_EIO, NULL, "query failed");
    }
    *items = arr;
    return 0;
}

int segment_expr_get(store_conn *c, int64_t tenant_id, int64_t id, char **expr, siyu_err *err) {
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT expr FROM segment WHERE tenant_id=?1 AND id=?2");
    if (!st) return siyu_err_set(err, SIYU_EIO, NULL, "query failed");
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, id);
    int rc = sqlite3_step(st);
    *expr = NULL;
    if (rc == SQLITE_ROW) *expr = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return siyu_err_set(err, SIYU_ENOTFOUND, "segment_id", "segment %lld does not exist",
                            (long long)id);
    if (rc != SQLITE_ROW) return siyu_err_set(err, SIYU_EIO, NULL, "query failed");
    return *expr ? 0 : siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
}
