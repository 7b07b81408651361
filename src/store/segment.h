/* segment.h — saved segments: a tenant's named segment expressions (table
 * `segment`, migration 0008). The expression text is stored as the user
 * wrote it (the API parses it before any write, so a stored expression
 * always parsed when it was saved; names it mentions may disappear later,
 * which the live count then reports).
 *
 * Names are unique per tenant (SIYU_ECONFLICT), 1..SEGMENT_NAME_MAX bytes
 * without control characters. Every write step audits inside the step
 * (segment.create / segment.update / segment.delete, target "segment:<id>").
 *
 * Ownership: input strings are borrowed for the step; JSON results belong
 * to the caller. */
#ifndef SIYU_STORE_SEGMENT_H
#define SIYU_STORE_SEGMENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "util/err.h"

#define SEGMENT_NAME_MAX 128
#define SEGMENT_DESCRIPTION_MAX 1024
#define SEGMENT_PAGE_MAX 100

typedef struct segment_input {
    int64_t tenant_id;
    int64_t id;              /* update/delete: the segment; create: filled on success */
    const char *name;        /* update: NULL = unchanged */
    const char *expr;        /* update: NULL = unchanged */
    bool has_description;    /* update: false = unchanged */
    const char *description; /* NULL = none */
    const char *actor;
    siyu_err err;
} segment_input;

/* Checks a name (field "name"): 0 or SIYU_EINVAL. */
int segment_name_check(const char *name, siyu_err *err);

/* Write steps (arg: segment_input*). SIYU_EINVAL (a bad name or
 * description, named), SIYU_ECONFLICT (the name is taken), SIYU_ENOTFOUND
 * (update/delete: not the tenant's), SIYU_EIO. */
int segment_create(store_conn *c, void *arg);
int segment_update(store_conn *c, void *arg);
int segment_delete(store_conn *c, void *arg);

/* {id, name, expr, description, created_by, created_at, updated_at}.
 * 0 and *out, SIYU_ENOTFOUND or SIYU_EIO. */
int segment_get_json(store_conn *c, int64_t tenant_id, int64_t id, json_t **out, siyu_err *err);

/* The segments with id > after, by id, at most limit (1..SEGMENT_PAGE_MAX):
 * *items an array of segment_get_json objects, *more whether others follow.
 * 0 or SIYU_EIO. */
int segment_list_json(store_conn *c, int64_t tenant_id, int64_t after, int limit, json_t **items,
                      bool *more, siyu_err *err);

/* The stored expression of a segment, malloc'd into *expr (the caller frees).
 * 0, SIYU_ENOTFOUND, SIYU_ENOMEM or SIYU_EIO. */
int segment_expr_get(store_conn *c, int64_t tenant_id, int64_t id, char **expr, siyu_err *err);

#endif
