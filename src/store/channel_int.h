/* channel_int.h — internals shared by channel.c, channel_roster.c and
 * channel_stats.c (not part of the module's interface). */
#ifndef SIYU_STORE_CHANNEL_INT_H
#define SIYU_STORE_CHANNEL_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/channel.h"

/* Queues a contact-way call for channel id (ref "channel:<id>", normal lane).
 * Takes body (NULL = SIYU_ENOMEM). 0 or outbox_enqueue's error. */
int channel__enqueue(store_conn *c, int64_t tenant, int64_t id, const char *kind, json_t *body,
                     const char *actor, unsigned *kick, siyu_err *err);

/* The add_contact_way (add) or update_contact_way body for channel id with
 * users (borrowed). NULL when the channel is gone or out of memory. */
json_t *channel__way_body(store_conn *c, int64_t tenant, int64_t id, const json_t *users, bool add);

/* Recomputes channel id's roster at now and, when the user list differs
 * from channel.users or force is set, stores it and queues
 * update_contact_way (config_id known) or sets dirty (add still pending).
 * A channel whose roster is empty keeps its users (WeCom needs one).
 * *pushed (may be NULL) = an update was queued or marked. 0 or an error. */
int channel__refresh(store_conn *c, int64_t tenant, int64_t id, int64_t now, bool force,
                     const char *actor, unsigned *kick, bool *pushed, siyu_err *err);

/* "YYYY-MM-DD" of a day number (days since 1970-01-01) into out[16]. */
void channel__date(int64_t day, char out[16]);

#endif
