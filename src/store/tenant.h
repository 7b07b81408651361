/* tenant.h — tenants and their WeCom callback configuration. */
#ifndef SIYU_TENANT_H
#define SIYU_TENANT_H

#include <jansson.h>
#include <stdint.h>

#include "store/store.h"

typedef struct tenant_input {
    int64_t id;               /* update: the tenant; create: filled on success */
    const char *name;         /* NULL on update = unchanged */
    const char *corp_id;      /* callback fields: all three or none */
    const char *callback_token;
    const char *aes_key;
    const char *secret;       /* 客户联系 secret for outbound API calls; NULL = unchanged */
    const char *status;       /* update only: active | suspended */
    const char *actor;
    siyu_err err;
} tenant_input;

/* Checks lengths and formats (name 1..128 bytes, corp id 1..64, token 1..128
 * [A-Za-z0-9], EncodingAESKey exactly 43 of [A-Za-z0-9]). 0 or SIYU_EINVAL. */
int tenant_input_validate(const tenant_input *in, siyu_err *err);

/* Write steps; arg is tenant_input*. Errors land in in->err. */
int tenant_create(store_conn *c, void *arg);
int tenant_update(store_conn *c, void *arg);

/* {"id","name","status","created_at","callback":{"corp_id","configured"}} or
 * NULL when absent. Secrets are never included. Caller owns the result. */
json_t *tenant_get_json(store_conn *c, int64_t id);

typedef struct tenant_callback {
    char corp_id[65];
    char token[129];
    char aes_key[44];
} tenant_callback;
/* Loads the callback secrets for the receiver. 0 or SIYU_ENOTFOUND. */
int tenant_callback_load(store_conn *c, int64_t tenant_id, tenant_callback *out);

/* Loads the tenant's outbound API identity (corp id + secret) into *out
 * (struct wecom_app, wecom/wecom_client.h). 0, SIYU_ENOTFOUND (no tenant or no
 * callback config), or SIYU_EINVAL when no secret is configured. Only active
 * tenants qualify. */
struct wecom_app;
int tenant_wecom_app(store_conn *c, int64_t tenant_id, struct wecom_app *out);
/* Tenant ids with an active tenant and a configured secret, ascending, into
 * ids[0..cap); returns how many (may exceed cap: then only cap were written). */
int tenant_wecom_list(store_conn *c, int64_t *ids, int cap);

#endif
