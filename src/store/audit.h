/* audit.h — the audit log: who did what to what, when, how many. Called from
 * inside write steps so the record commits with the change it describes. */
#ifndef SIYU_AUDIT_H
#define SIYU_AUDIT_H

#include <stdint.h>

#include "store/store.h"

/* actor: "token:<id>", "cli", "wecom", "system". detail may be NULL and must
 * never hold secrets or personal data. 0 or SIYU_EIO. */
int store_audit(store_conn *c, int64_t tenant_id, const char *actor, const char *action,
                const char *target, int64_t count, const char *detail);

#endif
