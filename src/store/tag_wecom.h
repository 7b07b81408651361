/* tag_wecom.h — pushing WeCom corp tags (企业客户标签) from Siyu to WeCom.
 *
 * A tag group whose source is 'wecom' holds WeCom tags; internal groups are
 * never pushed. The tag write steps of store/tag.c call these producers in
 * their own savepoint, so the change and its outbox row commit together:
 *
 *   tag created in a WeCom group  → add_corp_tag (group_id when the group has
 *                                   a wecom_id, else group_name, which WeCom
 *                                   creates or reuses); ref "tag:<id>"
 *   tag / group renamed           → edit_corp_tag (rows with a wecom_id)
 *   tag / group deleted           → del_corp_tag (rows with a wecom_id; a tag
 *                                   whose add is still pending is deleted
 *                                   when its answer arrives, see below)
 *   customers tagged / untagged   → mark_tag per customer × active
 *                                   relationship, bulk lane (tags without a
 *                                   wecom_id yet are skipped)
 *
 * A WeCom group with no tags is not pushed: WeCom does not allow empty
 * groups; its first tag creates it. The add_corp_tag listener
 * (tag_wecom_listen) stores the returned group and tag ids as wecom_id, and
 * when the tag was deleted or renamed meanwhile, queues the del/edit.
 *
 * *kick collects the outbox lanes written to (1 << lane), for the caller to
 * kick after the commit. */
#ifndef SIYU_STORE_TAG_WECOM_H
#define SIYU_STORE_TAG_WECOM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "util/err.h"

/* True (in *yes) when the group's source is 'wecom'. 0 or a store error. */
/* 0, or SIYU_EINVAL naming "name" when name is longer than the 30
 * characters WeCom takes for a tag or tag group (what: "tag", "tag group"). */
int tag_wecom_name_check(const char *name, const char *what, siyu_err *err);
int tag_wecom_group_is(store_conn *c, int64_t tenant, int64_t group_id, bool *yes);

/* After the tag row was inserted (or renamed, or before it is deleted). */
int tag_wecom_tag_created(store_conn *c, int64_t tenant, int64_t tag_id, const char *actor,
                          unsigned *kick, siyu_err *err);
int tag_wecom_renamed(store_conn *c, int64_t tenant, bool group, int64_t id, const char *actor,
                      unsigned *kick, siyu_err *err);
int tag_wecom_deleting(store_conn *c, int64_t tenant, bool group, int64_t id, const char *actor,
                       unsigned *kick, siyu_err *err);

/* After customer_tag rows changed: mark_tag for the WeCom tags among
 * tag_ids (JSON array text) on each active relationship of customer_ids. */
int tag_wecom_mark(store_conn *c, int64_t tenant, const char *tag_ids, const char *customer_ids,
                   bool remove, const char *actor, unsigned *kick, int64_t *queued, siyu_err *err);

/* Kicks each lane in kick (NULL ob ok). */
struct outbox;
void tag_wecom_kick(struct outbox *ob, unsigned kick);

/* Registers the add_corp_tag listener on ctx->ob (nothing when NULL);
 * answers are recorded with store_write on ctx->st and follow-up calls kick
 * ctx->ob. Then catches up once (tag_wecom_catch_up_step). ctx must outlive
 * the outbox. */
typedef struct siyu_ctx siyu_ctx;
void tag_wecom_listen(siyu_ctx *ctx);

/* Records an add_corp_tag answer for ref "tag:<id>". Write step; exposed
 * for tests. */
typedef struct tag_wecom_result {
    int64_t tenant_id;
    const char *ref;
    const json_t *answer;
    unsigned kick; /* filled */
    siyu_err err;
} tag_wecom_result;
int tag_wecom_result_step(store_conn *c, void *arg);
/* Write step (arg: unsigned* kick): applies sent add_corp_tag answers whose
 * tag has no wecom_id yet (their listener never ran). Idempotent. */
int tag_wecom_catch_up_step(store_conn *c, void *arg);

#endif
