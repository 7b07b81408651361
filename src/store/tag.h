/* tag.h — tag groups, tags, and customers' tags (customer_tag).
 *
 * A tag belongs to one group of its tenant; group names are unique per
 * tenant and tag names unique within their group (SIYU_ECONFLICT). Deleting
 * a tag removes its customer_tag rows; deleting a group removes its tags and
 * theirs. tag_bulk_apply tags or untags many customers at once, all or
 * nothing, and only customers the token may see.
 *
 * Every write step takes its input struct as arg, reports detail in its err
 * member and audits inside the step. JSON results are owned by the caller.
 *
 * WeCom corp tags: a group created with wecom = true has source 'wecom'; the
 * writes on it and its tags queue the matching WeCom calls in the same step
 * (store/tag_wecom.h), and fill `kick` for the caller to wake the outbox. A
 * tag of a WeCom group cannot move to another group (WeCom has no move). */
#ifndef SIYU_STORE_TAG_H
#define SIYU_STORE_TAG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"
#include "store/store.h"

#define TAG_NAME_MAX 128
#define TAG_BULK_TAGS_MAX 100
#define TAG_BULK_CUSTOMERS_MAX 10000

typedef struct tag_group_input {
    int64_t tenant_id;
    int64_t id;          /* update/delete: the group; create: filled on success */
    const char *name;    /* update: NULL = unchanged */
    bool has_sort_order; /* update: false = unchanged */
    int64_t sort_order;
    const char *actor;
    bool wecom;                   /* create: a WeCom corp tag group (source 'wecom') */
    const char *const *tag_names; /* create: tags made with the group (borrowed) */
    size_t ntags;
    unsigned kick; /* filled: outbox lanes written (1 << lane), see tag_wecom.h */
    int64_t removed_tags, removed_links; /* delete: filled */
    siyu_err err;
} tag_group_input;

/* Creates the group and its tag_names (each as tag_create; a bad or
 * repeated name fails the whole step naming "tags[i]"). */
int tag_group_create(store_conn *c, void *arg);
int tag_group_update(store_conn *c, void *arg); /* SIYU_ENOTFOUND outside the tenant */
int tag_group_delete(store_conn *c, void *arg);

typedef struct tag_input {
    int64_t tenant_id;
    int64_t id;       /* update/delete: the tag; create: filled on success */
    int64_t group_id; /* create: required; update: 0 = unchanged */
    const char *name; /* update: NULL = unchanged */
    bool has_sort_order;
    int64_t sort_order;
    const char *actor;
    bool has_wecom, wecom; /* create: when given, must match the group's source */
    unsigned kick;         /* filled: outbox lanes written */
    int64_t removed_links; /* delete: filled */
    siyu_err err;
} tag_input;

/* A group that is not the tenant's is SIYU_EINVAL on field "group_id". */
int tag_create(store_conn *c, void *arg);
int tag_update(store_conn *c, void *arg);
int tag_delete(store_conn *c, void *arg);

/* Keyset page over (sort_order, id). */
typedef struct tag_page {
    int limit;  /* 1..500 */
    bool after; /* false = first page */
    int64_t after_sort, after_id;
    int64_t group_id; /* tags only: 0 = every group */
    /* Filled by the list functions: whether another page exists, and the
     * last row's key (the next page's cursor). */
    bool more;
    int64_t last_sort, last_id;
} tag_page;

/* {"id","name","sort_order","source","wecom_id","created_at","updated_at",
 * "tags":[tag...]} or NULL when absent from the tenant. */
json_t *tag_group_get_json(store_conn *c, int64_t tenant_id, int64_t id);
/* {"id","group_id","name","sort_order","wecom_id","created_at","updated_at"}. */
json_t *tag_get_json(store_conn *c, int64_t tenant_id, int64_t id);

/* Appends up to pg->limit objects (as above) to items and fills pg->more,
 * last_sort and last_id. 0 or SIYU_EIO. */
int tag_group_list(store_conn *c, int64_t tenant_id, tag_page *pg, json_t *items);
int tag_list(store_conn *c, int64_t tenant_id, tag_page *pg, json_t *items);

typedef struct tag_bulk {
    http_auth auth; /* tenant, role and employee of the caller */
    bool untag;
    const char *tag_ids; /* JSON array text of positive integers */
    size_t ntags;
    const char *customer_ids; /* JSON array text of positive integers */
    size_t ncustomers;
    const char *actor;
    int64_t changed; /* filled: rows inserted or deleted */
    int64_t pushed;  /* filled: mark_tag calls queued for WeCom tags */
    unsigned kick;   /* filled: outbox lanes written */
    siyu_err err;
} tag_bulk;

/* Write step: checks every tag is the tenant's and every customer is the
 * tenant's and in the token's scope, then tags or untags (idempotently).
 * The first offending id fails the whole step with SIYU_ENOTFOUND and a field
 * "tag_ids[i]" or "customer_ids[i]"; nothing is changed. */
int tag_bulk_apply(store_conn *c, void *arg);

#endif
