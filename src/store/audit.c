/* audit.c — appends to audit_log. */
#include "store/audit.h"

int store_audit(store_conn *c, int64_t tenant_id, const char *actor, const char *action,
                const char *target, int64_t count, const char *detail) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT INTO audit_log(tenant_id, actor, action, target, count, detail, created_at) "
           "VALUES(?1,?2,?3,?4,?5,?6,?7)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    store_bind_text(st, 2, actor ? actor : "system");
    store_bind_text(st, 3, action);
    store_bind_text(st, 4, target);
    sqlite3_bind_int64(st, 5, count);
    store_bind_text(st, 6, detail);
    sqlite3_bind_int64(st, 7, siyu_now());
    return store_stmt_run(st);
}
