/* customer.h — the read side of the customer domain: customer lists, the
 * customer 360 view, timelines, relationships, group chats and the audit log,
 * each built as JSON straight from a read connection.
 *
 * Every function takes the caller's token (http_auth) and filters by its
 * tenant and data scope; a record outside either is reported as absent
 * (SIYU_ENOTFOUND), never as forbidden, so ids do not leak across scopes.
 *
 * Lists are keyset-paginated: {"items":[...],"next_cursor":"..."|null}. A
 * cursor is opaque to clients (hex of "<kind>:<key>[:<key>]"); one kind per
 * list, so a cursor from one list is rejected by another.
 *
 * Ownership: returned json_t objects belong to the caller; strings in the
 * filter structs are borrowed for the duration of the call. */
#ifndef SIYU_CUSTOMER_H
#define SIYU_CUSTOMER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"
#include "store/store.h"

#define CUSTOMER_PAGE_DEFAULT 50
#define CUSTOMER_PAGE_MAX 500
#define CUSTOMER_Q_MAX 64         /* bytes of a ?q= prefix */
#define CUSTOMER_ARG_MAX 64       /* bytes of other string filters */
#define CUSTOMER_360_EVENTS 20    /* events embedded in the 360 view */
#define CUSTOMER_360_LIST_MAX 500 /* cap of each other list in the 360 view */

/* ---- query arguments ---- */

/* The paginated lists; each has its own cursor kind. */
typedef enum {
    CUSTOMER_LIST_CUSTOMERS,
    CUSTOMER_LIST_EVENTS,
    CUSTOMER_LIST_RELATIONSHIPS,
    CUSTOMER_LIST_GROUPS,
    CUSTOMER_LIST_MEMBERS,
    CUSTOMER_LIST_AUDIT,
} customer_list_kind;

/* A decoded ?limit= and ?cursor=. key[] holds the cursor's keys. */
typedef struct customer_page {
    int limit;
    bool has_cursor;
    int64_t key[2];
} customer_page;

/* Parses limit (NULL = default, else 1..CUSTOMER_PAGE_MAX) and cursor (NULL =
 * first page; else a next_cursor returned by the same list). 0 or
 * SIYU_EINVAL with err naming "limit" or "cursor". */
int customer_page_parse(const char *limit, const char *cursor, customer_list_kind kind,
                        customer_page *out, siyu_err *err);

/* Parses val as a decimal integer >= min into *out; val NULL leaves *out
 * unchanged. 0 or SIYU_EINVAL naming `name`. */
int customer_arg_int(const char *val, const char *name, int64_t min, int64_t *out, siyu_err *err);
/* Checks val (NULL ok) is 1..max bytes, and one of `allowed` (NULL-terminated)
 * when allowed is given. 0 or SIYU_EINVAL naming `name`. */
int customer_arg_str(const char *val, const char *name, size_t max, const char *const *allowed,
                     siyu_err *err);

/* ---- customers ---- */

extern const char *const customer_rel_statuses[]; /* active, deleted_by_customer, ... */

/* The cursor a list of kind would return after key (for callers that page
 * by other means, such as GET /customers?segment=): a JSON string. */
json_t *customer_cursor_json(customer_list_kind kind, const int64_t key[2]);

/* GET /customers filters; NULL / 0 / -1 mean "not given". Relationship
 * filters (employee, rel_status, added_*) apply to one and the same
 * relationship; employee without rel_status means an active relationship. */
typedef struct customer_filter {
    const char *employee;   /* employee id or WeCom userid */
    int64_t tag_id;         /* 0 = any */
    const char *status;     /* active | lost */
    const char *rel_status; /* one of customer_rel_statuses */
    int64_t added_after;    /* relationship added_at >= this; -1 = any */
    int64_t added_before;   /* relationship added_at < this; -1 = any */
    const char *q;          /* prefix of name or external_userid */
    const char *ids;        /* a JSON array of customer ids the page is limited to
                               (a segment's members, ?segment=); NULL = any */
} customer_filter;

/* Resolves an employee given by id or userid within the tenant (an all-digit
 * value is tried as an id first). 0 and *id, or SIYU_EINVAL naming `name`. */
int customer_employee_resolve(store_conn *c, int64_t tenant_id, const char *val, const char *name,
                              int64_t *id, siyu_err *err);

/* One page of customers in scope, ordered by id; an item has id,
 * external_userid, name, gender, region, stage, phone (admin and operator
 * tokens see it whole, others masked as 138****8000), status (active|lost),
 * first_added_at, created_at, active_relationships and tags [{id,name}]. 0 and *out, or
 * SIYU_EINVAL (a bad filter, named) / SIYU_EIO. */
int customer_list_json(store_conn *c, const http_auth *a, const customer_filter *f,
                       const customer_page *p, json_t **out, siyu_err *err);

/* The customer 360 view: the profile with status and active_relationships,
 * identities, relationships (only those the token's relationship scope
 * shows, as customer_relationship_list_json), tags with their group, groups
 * with the member status, the latest CUSTOMER_360_EVENTS events and
 * events_next_cursor (valid for customer_events_json). Each list is capped at
 * CUSTOMER_360_LIST_MAX; "truncated" names the lists that were cut. 0 and
 * *out, SIYU_ENOTFOUND (absent, another tenant, or out of scope) or
 * SIYU_EIO. */
int customer_get_json(store_conn *c, const http_auth *a, int64_t id, json_t **out, siyu_err *err);

/* A customer's timeline, newest first; type NULL = all types. Errors as
 * customer_get_json. */
int customer_events_json(store_conn *c, const http_auth *a, int64_t id, const char *type,
                         const customer_page *p, json_t **out, siyu_err *err);

/* ---- relationships ---- */

typedef struct customer_rel_filter {
    const char *employee; /* id or userid */
    int64_t customer_id;  /* 0 = any */
    const char *status;
    const char *state;
    int64_t added_after;  /* -1 = any */
    int64_t added_before; /* -1 = any */
} customer_rel_filter;

/* Relationships in scope: employee tokens their own, managers their
 * department subtree's, admin/operator all; ordered by id. */
int customer_relationship_list_json(store_conn *c, const http_auth *a, const customer_rel_filter *f,
                                    const customer_page *p, json_t **out, siyu_err *err);

/* ---- relationship remark (a write) ---- */

#define CUSTOMER_REMARK_MAX 20       /* characters (WeCom's limit) */
#define CUSTOMER_DESCRIPTION_MAX 150 /* characters */

typedef struct customer_remark_input {
    http_auth auth; /* tenant and relationship scope of the caller */
    int64_t customer_id, employee_id;
    const char *remark;      /* NULL = unchanged; "" clears (not both: WeCom refuses) */
    const char *description; /* NULL = unchanged; "" clears (not both: WeCom refuses) */
    const char *actor;
    int64_t relationship_id; /* filled */
    unsigned kick;           /* filled: outbox lanes written (1 << lane) */
    siyu_err err;
} customer_remark_input;

/* Write step (arg: customer_remark_input*): sets the relationship's remark
 * and/or description and queues WeCom's externalcontact/remark for it in the
 * same step. SIYU_ENOTFOUND when the relationship is absent or outside the
 * token's relationship scope, SIYU_ECONFLICT when it is not active (WeCom
 * only edits live follow records), SIYU_EINVAL for the lengths. */
int customer_relationship_remark(store_conn *c, void *arg);

/* ---- customer fields (a write) ---- */

#define CUSTOMER_LABEL_MAX 64 /* bytes of region and stage */

/* PATCH /customers/{id}: region, stage and phone, each given (has_*) or
 * left unchanged; a given NULL clears. */
typedef struct customer_fields_input {
    int64_t tenant_id;
    int64_t customer_id;
    bool has_region, has_stage, has_phone;
    const char *region; /* 1..CUSTOMER_LABEL_MAX bytes, no control characters */
    const char *stage;
    const char *phone; /* as given; stored normalised (util/phone.h) */
    const char *actor;
    json_t *result; /* filled on success: {id, region, stage, phone}; the caller frees */
    siyu_err err;
} customer_fields_input;

/* Checks the fields of in (field named in err): 0 or SIYU_EINVAL. The step
 * calls it too; callers may call it first to answer before queueing. */
int customer_fields_check(customer_fields_input *in);

/* Write step (arg: customer_fields_input*): updates the customer of the
 * tenant and audits "customer.update" with the names of the changed fields
 * (never their values). SIYU_EINVAL, SIYU_ENOTFOUND, SIYU_EIO. */
int customer_fields_update(store_conn *c, void *arg);

/* ---- group chats ---- */

typedef struct customer_group_filter {
    const char *status; /* active | dismissed */
    const char *owner;  /* owner userid */
} customer_group_filter;

/* Group chats in scope (admin/operator all; manager: owner in the department
 * subtree; employee: owner or member 'in'), ordered by id. */
int customer_group_list_json(store_conn *c, const http_auth *a, const customer_group_filter *f,
                             const customer_page *p, json_t **out, siyu_err *err);
/* One group chat with the first page of its members (p) and
 * "members_next_cursor". SIYU_ENOTFOUND when absent or out of scope. */
int customer_group_get_json(store_conn *c, const http_auth *a, int64_t id, const customer_page *p,
                            json_t **out, siyu_err *err);
/* A page of a group's members. Errors as group_get_json. */
int customer_group_members_json(store_conn *c, const http_auth *a, int64_t id,
                                const customer_page *p, json_t **out, siyu_err *err);

/* ---- audit log ---- */

/* The tenant's audit log, newest first; action NULL = all, since -1 = all. */
int customer_audit_list_json(store_conn *c, int64_t tenant_id, const char *action, int64_t since,
                             const customer_page *p, json_t **out, siyu_err *err);

#endif
