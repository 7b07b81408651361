/* tenant.c — tenant rows and callback_config rows. */
#include "store/tenant.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "store/audit.h"
#include "wecom/wecom_client.h"

static bool all_alnum(const char *s) {
    for (; *s; s++)
        if (!isalnum((unsigned char)*s)) return false;
    return true;
}

int tenant_input_validate(const tenant_input *in, siyu_err *err) {
    if (in->name && (strlen(in->name) == 0 || strlen(in->name) > 128))
        return siyu_err_set(err, SIYU_EINVAL, "name", "name must be 1 to 128 bytes");
    int given = !!in->corp_id + !!in->callback_token + !!in->aes_key;
    if (given != 0 && given != 3)
        return siyu_err_set(err, SIYU_EINVAL,
                            !in->corp_id          ? "corp_id"
                            : !in->callback_token ? "callback_token"
                                                  : "aes_key",
                            "corp_id, callback_token and aes_key must be given together");
    if (in->secret) {
        size_t n = strlen(in->secret);
        bool ok = n > 0 && n <= 128;
        for (size_t i = 0; ok && i < n; i++)
            ok = in->secret[i] > ' ' && in->secret[i] < 0x7f;
        if (!ok)
            return siyu_err_set(
                err, SIYU_EINVAL, "secret",
                "secret must be 1 to 128 printable ASCII characters without spaces");
    }
    if (given == 0) return 0;
    size_t n = strlen(in->corp_id);
    if (n == 0 || n > 64 || !all_alnum(in->corp_id))
        return siyu_err_set(err, SIYU_EINVAL, "corp_id",
                            "corp_id must be 1 to 64 letters or digits");
    n = strlen(in->callback_token);
    if (n == 0 || n > 128 || !all_alnum(in->callback_token))
        return siyu_err_set(err, SIYU_EINVAL, "callback_token",
                            "callback_token must be 1 to 128 letters or digits");
    if (strlen(in->aes_key) != 43 || !all_alnum(in->aes_key))
        return siyu_err_set(err, SIYU_EINVAL, "aes_key",
                            "aes_key (EncodingAESKey) must be exactly 43 letters or digits");
    return 0;
}

static int put_callback(store_conn *c, tenant_input *in) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT INTO callback_config(tenant_id, corp_id, token, aes_key, updated_at) "
           "VALUES(?1,?2,?3,?4,?5) ON CONFLICT(tenant_id) DO UPDATE SET corp_id=excluded.corp_id, "
           "token=excluded.token, aes_key=excluded.aes_key, updated_at=excluded.updated_at");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->id);
    store_bind_text(st, 2, in->corp_id);
    store_bind_text(st, 3, in->callback_token);
    store_bind_text(st, 4, in->aes_key);
    sqlite3_bind_int64(st, 5, siyu_now());
    return store_stmt_run(st);
}

/* The secret lives on the callback_config row, so it needs one. */
static int put_secret(store_conn *c, tenant_input *in) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE callback_config SET secret=?2, updated_at=?3 WHERE tenant_id=?1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->id);
    store_bind_text(st, 2, in->secret);
    sqlite3_bind_int64(st, 3, siyu_now());
    int rc = store_stmt_run(st);
    if (rc != 0) return rc;
    if (store_conn_changes(c) == 0)
        return siyu_err_set(&in->err, SIYU_EINVAL, "secret",
                            "secret needs the WeCom config: give corp_id, callback_token and "
                            "aes_key first or together");
    return 0;
}

int tenant_create(store_conn *c, void *arg) {
    tenant_input *in = arg;
    if (!in->name) return siyu_err_set(&in->err, SIYU_EINVAL, "name", "name is required");
    if (tenant_input_validate(in, &in->err) != 0) return SIYU_EINVAL;
    sqlite3_stmt *st =
        store_conn_stmt(c, "INSERT INTO tenant(name, created_at, updated_at) VALUES(?1,?2,?2)");
    if (!st) return SIYU_EIO;
    store_bind_text(st, 1, in->name);
    sqlite3_bind_int64(st, 2, siyu_now());
    int rc = store_stmt_run(st);
    if (rc != 0) return rc;
    in->id = store_conn_last_id(c);
    if (in->corp_id && (rc = put_callback(c, in)) != 0) return rc;
    if (in->secret && (rc = put_secret(c, in)) != 0) return rc;
    char target[32];
    snprintf(target, sizeof target, "tenant:%lld", (long long)in->id);
    return store_audit(c, in->id, in->actor, "tenant.create", target, 1,
                       in->corp_id ? "with callback config" : NULL);
}

int tenant_update(store_conn *c, void *arg) {
    tenant_input *in = arg;
    if (tenant_input_validate(in, &in->err) != 0) return SIYU_EINVAL;
    if (in->status && strcmp(in->status, "active") != 0 && strcmp(in->status, "suspended") != 0)
        return siyu_err_set(&in->err, SIYU_EINVAL, "status", "status must be active or suspended");
    sqlite3_stmt *st =
        store_conn_stmt(c, "UPDATE tenant SET name=coalesce(?2,name), status=coalesce(?3,status), "
                           "updated_at=?4 WHERE tenant_id=?1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, in->id);
    store_bind_text(st, 2, in->name);
    store_bind_text(st, 3, in->status);
    sqlite3_bind_int64(st, 4, siyu_now());
    int rc = store_stmt_run(st);
    if (rc != 0) return rc;
    if (store_conn_changes(c) == 0)
        return siyu_err_set(&in->err, SIYU_ENOTFOUND, "id", "tenant %lld does not exist",
                            (long long)in->id);
    if (in->corp_id && (rc = put_callback(c, in)) != 0) return rc;
    if (in->secret && (rc = put_secret(c, in)) != 0) return rc;
    char target[32];
    snprintf(target, sizeof target, "tenant:%lld", (long long)in->id);
    return store_audit(c, in->id, in->actor, "tenant.update", target, 1,
                       in->corp_id  ? "callback config changed"
                       : in->secret ? "api secret changed"
                                    : NULL);
}

json_t *tenant_get_json(store_conn *c, int64_t id) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT t.tenant_id, t.name, t.status, t.created_at, cc.corp_id, "
           "cc.secret IS NOT NULL FROM tenant t "
           "LEFT JOIN callback_config cc ON cc.tenant_id=t.tenant_id WHERE t.tenant_id=?1");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, id);
    json_t *j = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *corp = (const char *)sqlite3_column_text(st, 4);
        j = json_pack("{s:I,s:s,s:s,s:I,s:{s:o,s:b,s:b}}", "id",
                      (json_int_t)sqlite3_column_int64(st, 0), "name",
                      (const char *)sqlite3_column_text(st, 1), "status",
                      (const char *)sqlite3_column_text(st, 2), "created_at",
                      (json_int_t)sqlite3_column_int64(st, 3), "callback", "corp_id",
                      corp ? json_string(corp) : json_null(), "configured", corp != NULL,
                      "api_configured", sqlite3_column_int(st, 5) != 0);
    }
    sqlite3_reset(st);
    return j;
}

int tenant_callback_load(store_conn *c, int64_t tenant_id, tenant_callback *out) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT corp_id, token, aes_key FROM callback_config cc JOIN tenant t ON "
           "t.tenant_id=cc.tenant_id WHERE cc.tenant_id=?1 AND t.status='active'");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    int rc = SIYU_ENOTFOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(out->corp_id, sizeof out->corp_id, "%s", sqlite3_column_text(st, 0));
        snprintf(out->token, sizeof out->token, "%s", sqlite3_column_text(st, 1));
        snprintf(out->aes_key, sizeof out->aes_key, "%s", sqlite3_column_text(st, 2));
        rc = 0;
    }
    sqlite3_reset(st);
    return rc;
}

int tenant_wecom_app(store_conn *c, int64_t tenant_id, struct wecom_app *out) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT corp_id, secret FROM callback_config cc JOIN tenant t ON "
                           "t.tenant_id=cc.tenant_id WHERE cc.tenant_id=?1 AND t.status='active'");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    int rc = SIYU_ENOTFOUND;
    memset(out, 0, sizeof *out);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = store_rc(step); /* not "unconfigured" */
    if (step == SQLITE_ROW) {
        rc = SIYU_EINVAL;
        if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
            out->tenant_id = tenant_id;
            snprintf(out->corp_id, sizeof out->corp_id, "%s", sqlite3_column_text(st, 0));
            snprintf(out->secret, sizeof out->secret, "%s", sqlite3_column_text(st, 1));
            rc = 0;
        }
    }
    sqlite3_reset(st);
    return rc;
}

int tenant_wecom_list(store_conn *c, int64_t *ids, int cap) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT cc.tenant_id FROM callback_config cc JOIN tenant t ON t.tenant_id=cc.tenant_id "
           "WHERE t.status='active' AND cc.secret IS NOT NULL ORDER BY cc.tenant_id");
    if (!st) return 0;
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n < cap) ids[n] = sqlite3_column_int64(st, 0);
        n++;
    }
    sqlite3_reset(st);
    return n;
}
