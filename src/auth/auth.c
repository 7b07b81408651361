/* auth.c — token generation, hashing, lookup, and customer scope predicates. */
#include "auth/auth.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

static void hex(const unsigned char *in, size_t n, char *out) {
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = 0;
}

int auth_token_generate(char out[AUTH_TOKEN_LEN + 1]) {
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) return SIYU_EIO;
    memcpy(out, "sy_", 3);
    hex(raw, sizeof raw, out + 3);
    return 0;
}

void auth_token_hash(const char *token, char out_hex[65]) {
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL);
    hex(md, 32, out_hex);
}

int auth_token_lookup(store_conn *c, const char *token, http_auth *out) {
    if (strlen(token) != AUTH_TOKEN_LEN) return SIYU_ENOTFOUND;
    char h[65];
    auth_token_hash(token, h);
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT id, tenant_id, role, coalesce(employee_id,0) FROM api_token "
           "WHERE token_hash=?1 AND revoked_at IS NULL");
    if (!st) return SIYU_EIO;
    sqlite3_bind_text(st, 1, h, 64, SQLITE_STATIC);
    int rc = SIYU_ENOTFOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        out->token_id = sqlite3_column_int64(st, 0);
        out->tenant_id = sqlite3_column_int64(st, 1);
        int role = http_role_parse((const char *)sqlite3_column_text(st, 2));
        if (role == ROLE_ADMIN && out->tenant_id == 0) role = ROLE_PLATFORM;
        out->role = role;
        out->employee_id = sqlite3_column_int64(st, 3);
        rc = role ? 0 : SIYU_ENOTFOUND;
    }
    sqlite3_reset(st);
    return rc;
}

int auth_token_insert(store_conn *c, void *arg) {
    auth_token_new *t = arg;
    sqlite3_stmt *st;
    if (t->tenant_id != 0) {
        st = store_conn_stmt(c, "SELECT 1 FROM tenant WHERE tenant_id=?1");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, t->tenant_id);
        int found = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
        if (!found)
            return siyu_err_set(&t->err, SIYU_ENOTFOUND, "tenant", "tenant %lld does not exist",
                                (long long)t->tenant_id);
    } else if (t->role != ROLE_ADMIN) {
        return siyu_err_set(&t->err, SIYU_EINVAL, "tenant",
                            "only an admin token may be created without a tenant");
    }
    if (t->employee_userid && *t->employee_userid) {
        st = store_conn_stmt(c, "SELECT id FROM employee WHERE tenant_id=?1 AND userid=?2");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, t->tenant_id);
        sqlite3_bind_text(st, 2, t->employee_userid, -1, SQLITE_STATIC);
        t->employee_id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_reset(st);
        if (!t->employee_id)
            return siyu_err_set(&t->err, SIYU_ENOTFOUND, "employee",
                                "employee %s does not exist in tenant %lld", t->employee_userid,
                                (long long)t->tenant_id);
    } else if (t->employee_id) {
        st = store_conn_stmt(c, "SELECT 1 FROM employee WHERE tenant_id=?1 AND id=?2");
        if (!st) return SIYU_EIO;
        sqlite3_bind_int64(st, 1, t->tenant_id);
        sqlite3_bind_int64(st, 2, t->employee_id);
        int found = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
        if (!found)
            return siyu_err_set(&t->err, SIYU_ENOTFOUND, "employee",
                                "employee %lld does not exist in tenant %lld",
                                (long long)t->employee_id, (long long)t->tenant_id);
    }
    if ((t->role == ROLE_MANAGER || t->role == ROLE_EMPLOYEE) && !t->employee_id)
        return siyu_err_set(&t->err, SIYU_EINVAL, "employee",
                            "a %s token must name its employee", http_role_name(t->role));
    if (auth_token_generate(t->token) != 0)
        return siyu_err_set(&t->err, SIYU_EIO, NULL, "no randomness available");
    char h[65];
    auth_token_hash(t->token, h);
    st = store_conn_stmt(c, "INSERT INTO api_token(tenant_id, token_hash, role, employee_id, "
                            "label, created_at) VALUES(?1,?2,?3,?4,?5,?6)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, t->tenant_id);
    sqlite3_bind_text(st, 2, h, 64, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, t->role == ROLE_PLATFORM ? "admin" : http_role_name(t->role), -1,
                      SQLITE_STATIC);
    if (t->employee_id) sqlite3_bind_int64(st, 4, t->employee_id);
    if (t->label) sqlite3_bind_text(st, 5, t->label, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, siyu_now());
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return store_rc(rc);
    t->id = store_conn_last_id(c);
    st = store_conn_stmt(c, "INSERT INTO audit_log(tenant_id, actor, action, target, count, "
                            "created_at) VALUES(?1,?2,'token.create',?3,1,?4)");
    if (!st) return SIYU_EIO;
    char target[64];
    snprintf(target, sizeof target, "token:%lld role=%s", (long long)t->id,
             http_role_name(t->role));
    sqlite3_bind_int64(st, 1, t->tenant_id);
    sqlite3_bind_text(st, 2, t->actor ? t->actor : "cli", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, target, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, siyu_now());
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_rc(rc);
}

#define SCOPE_EMPLOYEE                                                                            \
    "EXISTS (SELECT 1 FROM relationship sr WHERE sr.tenant_id=:scope_tenant AND "                 \
    "sr.customer_id=c.id AND sr.employee_id=:scope_emp AND sr.status='active')"
#define SCOPE_MANAGER                                                                             \
    "EXISTS (SELECT 1 FROM relationship sr JOIN employee se ON se.id=sr.employee_id "             \
    "WHERE sr.tenant_id=:scope_tenant AND sr.customer_id=c.id AND sr.status='active' AND "        \
    "se.department_id IN (WITH RECURSIVE sub(id) AS (SELECT department_id FROM employee "         \
    "WHERE id=:scope_emp UNION SELECT d.id FROM department d JOIN sub ON d.parent_id=sub.id) "   \
    "SELECT id FROM sub))"

const char *auth_scope_sql(const http_auth *a) {
    switch (a->role) {
    case ROLE_EMPLOYEE: return SCOPE_EMPLOYEE;
    case ROLE_MANAGER: return SCOPE_MANAGER;
    case ROLE_ADMIN:
    case ROLE_OPERATOR: return "1";
    }
    return "0";
}

void auth_scope_bind(sqlite3_stmt *st, const http_auth *a) {
    int i = sqlite3_bind_parameter_index(st, ":scope_tenant");
    if (i) sqlite3_bind_int64(st, i, a->tenant_id);
    i = sqlite3_bind_parameter_index(st, ":scope_emp");
    if (i) sqlite3_bind_int64(st, i, a->employee_id);
}

bool auth_can_see_customer(store_conn *c, const http_auth *a, int64_t customer_id) {
    const char *sql;
    switch (a->role) {
    case ROLE_EMPLOYEE:
        sql = "SELECT 1 FROM customer c WHERE c.tenant_id=:scope_tenant AND c.id=:cid AND "
              SCOPE_EMPLOYEE;
        break;
    case ROLE_MANAGER:
        sql = "SELECT 1 FROM customer c WHERE c.tenant_id=:scope_tenant AND c.id=:cid AND "
              SCOPE_MANAGER;
        break;
    case ROLE_ADMIN:
    case ROLE_OPERATOR:
        sql = "SELECT 1 FROM customer c WHERE c.tenant_id=:scope_tenant AND c.id=:cid";
        break;
    default: return false;
    }
    sqlite3_stmt *st = store_conn_stmt(c, sql);
    if (!st) return false;
    auth_scope_bind(st, a);
    sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":cid"), customer_id);
    bool ok = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return ok;
}
