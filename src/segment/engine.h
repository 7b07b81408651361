/* engine.h — the in-memory segment engine: one tenant's customers as dense
 * 32-bit ids, CRoaring bitmaps per dimension value, numeric columns and
 * per-event-type timestamp columns; evaluates a segment expression
 * (src/segment/expr.h) to a bitmap of dense ids.
 *
 * Built from the store (engine_build), then kept current by the single
 * writer through the mutations below (src/segment/segsvc.c calls them under
 * the engine's write lock). Readers (engine_eval, engine_page, ...) never
 * change it: any number of threads may read concurrently while no mutation
 * runs. The engine has no lock of its own.
 *
 * Layout (per tenant; engine_int.h has the details):
 *   customers   ids[n]: customer row ids, strictly increasing; dense id = index
 *   dimensions  per dimension a dictionary of values {record id, name, bitmap}:
 *               tag (customer_tag), channel (relationship.state, any status),
 *               employee (active relationships), department (employees of the
 *               department and its sub-departments), store (employees of the
 *               store), group (members "in" active group chats), gender,
 *               relationship status, region and stage (customer.region,
 *               customer.stage: plain values by name); channel_group has no
 *               data yet
 *   numbers     spent (cents) and orders_total from "order" events (props
 *               $.amount in yuan); first_added (customer.first_added_at),
 *               last_active (latest event of any type), last_message (latest
 *               "message" event); ENGINE_NONE where absent. Each column has a
 *               binned index: up to 64 bins from quantiles, a cumulative
 *               bitmap "value >= bin's lower bound" per bin
 *   events      per event type: a CSR by dense id (offsets, timestamps
 *               ascending per customer) from the build, an append overlay
 *               (per customer a sorted vector) merged into it when it grows
 *               past half of it, the customers with any event of the type,
 *               and per UTC day a bitmap of the customers with an event that
 *               day
 *   relations   per customer its relationships (employee, status, channel),
 *               the first inline, further ones in a side table, so that a
 *               change can be diffed */
#ifndef SIYU_SEGMENT_ENGINE_H
#define SIYU_SEGMENT_ENGINE_H

#include <roaring/roaring.h>
#include <stdbool.h>
#include <stdint.h>

#include "segment/expr.h"
#include "store/store.h"
#include "util/err.h"

#define ENGINE_NONE INT64_MIN /* an absent time */

typedef struct engine engine;

/* Builds the engine of tenant_id from a read snapshot of st (logs progress).
 * 0 with *out set (free with engine_free), or SIYU_EIO / SIYU_ENOMEM /
 * SIYU_ETOOBIG (more than 2^32 - 1 customers or events of one type) with err
 * filled. */
int engine_build(store *st, int64_t tenant_id, engine **out, siyu_err *err);

void engine_free(engine *e);

/* Evaluates n at time now (Unix seconds): *out is a new bitmap of dense ids
 * (free with roaring_bitmap_free). Returns 0, or SIYU_EINVAL when names in n
 * are unknown (err->msg names them, with their positions), or SIYU_ENOMEM. */
int engine_eval(const engine *e, const expr_node *n, int64_t now, roaring_bitmap_t **out,
                siyu_err *err);

/* Checks the internal invariants (sorted ids, bitmaps within range, event
 * columns consistent, derived bitmaps equal to their definitions). true, or
 * false with *why (static text) set. */
bool engine_validate(const engine *e, const char **why);

/* Number of customers (dense ids are 0 .. n-1). */
uint32_t engine_customers(const engine *e);
/* Customer row id of a dense id (dense < engine_customers). */
int64_t engine_customer_id(const engine *e, uint32_t dense);
/* Dense id of a customer row id: true with *dense set, or false. */
bool engine_dense_id(const engine *e, int64_t customer_id, uint32_t *dense);
/* Events held (all types). */
uint64_t engine_events(const engine *e);

/* ---- reading results -------------------------------------------------------
 * Readers may call these concurrently with each other (never concurrently
 * with a mutation below; src/segment/segsvc.c holds the lock). */

/* The value of a numeric attribute for one customer (cents for spent, a
 * count for orders_total, Unix seconds for times; ENGINE_NONE when a time is
 * absent). */
int64_t engine_value(const engine *e, uint32_t dense, expr_attr a);

/* Sort keys of a customer list: by customer id, or by a numeric attribute. */
typedef enum engine_sort {
    ENGINE_SORT_ID = 0,
    ENGINE_SORT_SPENT,
    ENGINE_SORT_ORDERS_TOTAL,
    ENGINE_SORT_FIRST_ADDED,
    ENGINE_SORT_LAST_ACTIVE,
    ENGINE_SORT_LAST_MESSAGE,
} engine_sort;

/* One listed customer: its dense id, row id and sort key (the attribute's
 * value; the row id for ENGINE_SORT_ID). */
typedef struct engine_row {
    uint32_t dense;
    int64_t customer_id;
    int64_t key;
} engine_row;

/* A page of bm in sort order: by key ascending (desc false) or descending,
 * ties by customer id ascending; customers whose key is ENGINE_NONE come
 * last in either direction. after (may be NULL) is the last row of the
 * previous page: the page starts strictly after it in that order. Writes up
 * to limit rows to out and their number to *n. 0 or SIYU_ENOMEM. The cost is
 * about the size of the page, not of bm, for a selective or sorted bm. */
int engine_page(const engine *e, const roaring_bitmap_t *bm, engine_sort sort, bool desc,
                const engine_row *after, size_t limit, engine_row *out, size_t *n);

/* One value of a breakdown: its record id (0 for plain values such as
 * region, gender), its name (owned by the engine: valid until the next
 * mutation) and how many customers of the segment have it. */
typedef struct engine_bucket {
    int64_t id;
    const char *name;
    uint64_t count;
} engine_bucket;

/* The top values of dimension dim among the customers in bm, by count
 * descending (ties by id, then name), at most top of them, only counts > 0.
 * A customer counts once per value it has (a customer with two tags counts
 * for both). 0 or SIYU_ENOMEM. */
int engine_breakdown(const engine *e, const roaring_bitmap_t *bm, expr_dim dim, size_t top,
                     engine_bucket *out, size_t *n);

/* The dimension's values (records or plain values), in dictionary order, for
 * lookups by name: the record id of a value named name, or 0 when none. */
int64_t engine_record_id(const engine *e, expr_dim dim, const char *name);

/* The bitmap of one value of a dimension by record id (tag, employee,
 * department, store, group; NULL when unknown). Owned by the engine. Used
 * for data scopes (an employee's customers, a department's customers). */
const roaring_bitmap_t *engine_members(const engine *e, expr_dim dim, int64_t id);

/* All customers (dense ids 0 .. n-1). Owned by the engine. */
const roaring_bitmap_t *engine_all(const engine *e);

/* Approximate bytes of memory the engine holds. */
uint64_t engine_bytes(const engine *e);

/* ---- keeping the engine current --------------------------------------------
 * Called by the single writer after a write committed, with no reader inside
 * the engine (segsvc holds the write lock). Each takes the new truth from the
 * store for what changed; the engine works out the difference. They return 0,
 * SIYU_ENOMEM, or SIYU_EINVAL when the change cannot be applied in place (the
 * caller then rebuilds the engine), with err filled. */

/* A customer row inserted or updated. A new customer_id must be greater than
 * every id already held (row ids only grow); it gets the next dense id.
 * gender as stored (2 female, 1 male, other unknown); first_added ENGINE_NONE
 * when NULL; region and stage NULL when unknown. *dense (may be NULL) is set. */
int engine_customer_put(engine *e, int64_t customer_id, int gender, int64_t first_added,
                        const char *region, const char *stage, uint32_t *dense, siyu_err *err);

/* One relationship row of a customer, as engine_customer_rels takes them. */
typedef struct engine_rel {
    int64_t employee_id;
    const char *status; /* active | deleted_by_customer | deleted_by_employee | transferred */
    const char *state;  /* the channel (contact way state); NULL or "" = none */
} engine_rel;

/* Replaces every relationship of the customer (employee, status and channel
 * sets, and the departments and stores that follow from the employees). */
int engine_customer_rels(engine *e, uint32_t dense, const engine_rel *rels, size_t n,
                         siyu_err *err);

/* Direct membership: tag (customer_tag row exists) or group (member "in" an
 * active group chat). An unknown record id is SIYU_EINVAL. */
int engine_member_set(engine *e, expr_dim dim, int64_t id, uint32_t dense, bool on,
                      siyu_err *err);

/* A record of tag, employee, department, store, group or channel_group
 * created or renamed (name may be NULL). */
int engine_record_put(engine *e, expr_dim dim, int64_t id, const char *name, siyu_err *err);

/* A record deleted: its value and its members are gone. */
int engine_record_remove(engine *e, expr_dim dim, int64_t id, siyu_err *err);

/* The organisation changed (an employee's department or store, a
 * department's parent): emps are every employee (id, department_id,
 * store_id; 0 = none), deps every department (id, parent_id; 0 = root).
 * Department and store sets are recomputed from the employee sets. */
typedef struct engine_emp {
    int64_t id, department_id, store_id;
} engine_emp;
typedef struct engine_dep {
    int64_t id, parent_id;
} engine_dep;
int engine_org_put(engine *e, const engine_emp *emps, size_t nemps, const engine_dep *deps,
                   size_t ndeps, siyu_err *err);

/* An event of the customer stored: type, time (Unix seconds; outside
 * 0 .. 2^32-1 it is counted as skipped, as in the build) and, for type
 * "order", amount_cents (the rounded props.amount; 0 when absent). */
int engine_event_add(engine *e, uint32_t dense, const char *type, int64_t ts,
                     int64_t amount_cents, siyu_err *err);

#endif
