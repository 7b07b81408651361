/* auth.h — API tokens and data scope.
 *
 * A token is "sy_" + 64 hex chars from the OS CSPRNG; only its SHA-256 is
 * stored (api_token.token_hash), so a leaked database does not leak tokens.
 * Scope: admin/operator see the whole tenant; a manager sees customers with an
 * active relationship to an employee of their department or its
 * sub-departments; an employee sees customers they have an active
 * relationship with. The platform token sees tenants, never customers. */
#ifndef SIYU_AUTH_H
#define SIYU_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"
#include "store/store.h"

#define AUTH_TOKEN_LEN 67 /* "sy_" + 64 hex */

/* Fills out with a new random token (NUL-terminated). 0 or SIYU_EIO. */
int auth_token_generate(char out[AUTH_TOKEN_LEN + 1]);
void auth_token_hash(const char *token, char out_hex[65]);

/* Looks the bearer token up on a read connection. 0 and *out filled, or
 * SIYU_ENOTFOUND for unknown/revoked tokens. */
int auth_token_lookup(store_conn *c, const char *token, http_auth *out);

/* Write step: inserts a token. arg is auth_token_new*; token and id are filled. */
typedef struct auth_token_new {
    int64_t tenant_id;
    int role;
    int64_t employee_id; /* 0 = none */
    const char *employee_userid; /* alternative to employee_id; resolved in the tenant */
    const char *label;
    const char *actor;
    char token[AUTH_TOKEN_LEN + 1];
    int64_t id;
    siyu_err err;
} auth_token_new;
int auth_token_insert(store_conn *c, void *arg);

/* SQL condition restricting customer alias `c` to the token's scope, using the
 * named parameters :scope_tenant and :scope_emp (bind with auth_scope_bind).
 * Never NULL; "1" for tenant-wide roles. */
const char *auth_scope_sql(const http_auth *a);
void auth_scope_bind(sqlite3_stmt *st, const http_auth *a);
/* True when the token may see customer_id (which must be in its tenant). */
bool auth_can_see_customer(store_conn *c, const http_auth *a, int64_t customer_id);

#endif
