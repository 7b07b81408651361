/* sync_int.h — internals shared by the files of the sync module: the write
 * helpers that apply WeCom records to the store (sync_apply.c), used by the
 * full sync (sync.c) and by the refresh workers (sync_mgr.c). */
#ifndef SIYU_SYNC_INT_H
#define SIYU_SYNC_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "sync/sync.h"

/* One apply context: lives for one write step, on the writer connection. */
typedef struct sync_apply {
    store_conn *c;
    int64_t tenant;
    int64_t now;        /* created_at / updated_at of rows written */
    int64_t fetched_at; /* when the data was fetched (s): group rows updated later win */
    int64_t fetched_ms; /* the same in wall-clock ms: relationships changed later win */
    bool revive;        /* full sync: an ended relationship WeCom lists comes back */
    bool placeholders;  /* refresh: unknown WeCom tag ids get placeholder tags */
    sync_counts *n;     /* [SYNC_ENTITY_COUNT], incremented */
} sync_apply;

/* One follow record as the APIs describe it (batch follow_info or
 * externalcontact/get follow_user). Strings are borrowed. */
typedef struct sync_follow {
    const char *userid;
    const char *remark, *description, *state; /* "" is stored as NULL */
    int64_t createtime;
    int add_way;           /* -1 = absent */
    const json_t *tag_ids; /* array of tag id strings, or NULL */
} sync_follow;

/* external_contact → customer (by identity 'wecom_external_userid'), creating
 * it when new; only fields present in the JSON are compared and written.
 * added_at > 0 lowers first_added_at. 0 with *cust, or SIYU_E*. */
int sync__customer_upsert(sync_apply *a, const json_t *contact, int64_t added_at, int64_t *cust);

/* Fills f from a follow_info / follow_user object (tag_ids: "tag_id" array
 * of strings, or "tags":[{"tag_id","type"}] without personal tags). The
 * array it points at is created and must be json_decref'd by the caller:
 * returned in *own (may be NULL). */
void sync__follow_parse(const json_t *fo, sync_follow *f, json_t **own);

/* The relationship (cust, employee f->userid) and its follow-record tags.
 * *rel (may be NULL) gets the relationship id when it is active afterwards,
 * else 0. 0 or SIYU_E*. */
int sync__follow_apply(sync_apply *a, int64_t cust, const sync_follow *f, int64_t *rel);

/* Employees by userid: *id, creating an active one when missing. */
int sync__employee_ensure(sync_apply *a, const char *userid, int64_t *id);

/* tag_group objects of get_corp_tag_list. full: WeCom-sourced groups and tags
 * missing from the answer are deleted (with their links). 0 or SIYU_E*. */
int sync__tags_apply(sync_apply *a, const json_t *tag_groups, bool full);

/* A groupchat/get group_chat object. Members are reconciled when force, when
 * the group is new or was dismissed, or when member_version differs. */
int sync__chat_apply(sync_apply *a, const json_t *chat, bool force_members);

/* Ends the active relationships of ids[0..n) still untouched since before
 * (status deleted_by_employee, end_reason sync_missing). */
int sync__rels_end(sync_apply *a, const int64_t *ids, size_t n, int64_t before);

/* Dismisses the tenant's active groups not in chat_ids (sorted strings), not
 * updated since before, whose owner is in owners (sorted; the owners whose
 * groups were listed) or unknown. */
int sync__chats_dismiss_missing(sync_apply *a, char *const *chat_ids, size_t n, char *const *owners,
                                size_t nowners, int64_t before);

/* Drops follow-record tags of relationships that are not active, and the
 * 'wecom' customer_tag rows no follow record backs any more. pair_cust and
 * pair_emp > 0 limit it to one pair. */
int sync__follow_tags_prune(sync_apply *a, int64_t pair_cust, int64_t pair_emp);

/* The customer of an external_userid, or 0 (SIYU_ENOTFOUND). */
int sync__customer_find(sync_apply *a, const char *ext, int64_t *cust);

/* Growable int64 vector. */
typedef struct sync_i64v {
    int64_t *v;
    size_t n, cap;
} sync_i64v;
int sync__i64v_push(sync_i64v *x, int64_t v); /* 0 or SIYU_ENOMEM */
void sync__i64v_free(sync_i64v *x);

/* s or NULL when s is NULL or "". */
const char *sync__nz(const char *s);
/* The string member key of o, or NULL. */
const char *sync__jstr(const json_t *o, const char *key);
/* The integer member key of o (also a numeric string), or def. */
int64_t sync__jint(const json_t *o, const char *key, int64_t def);
int64_t sync__now_ms(void);
/* Wall-clock milliseconds since the epoch (the clock of relationship.changed_ms). */
int64_t sync__wall_ms(void);

#endif
