/* engine.h — the in-memory segment engine: one tenant's customers as dense
 * 32-bit ids, CRoaring bitmaps per dimension value, numeric columns and
 * per-event-type timestamp columns; evaluates a segment expression
 * (src/segment/expr.h) to a bitmap of dense ids.
 *
 * Built once from the store (engine_build) and immutable afterwards: any
 * number of threads may call engine_eval on the same engine concurrently.
 * Keeping it current from the writer is not done yet (docs/SEGMENTS.md,
 * "Engine").
 *
 * Layout (per tenant):
 *   customers   ids[n]: customer row ids, strictly increasing; dense id = index
 *   dimensions  per dimension a dictionary of values {record id, name, bitmap}:
 *               tag (customer_tag), channel (relationship.state, any status),
 *               employee (active relationships), department (employees of the
 *               department and its sub-departments), store (employees of the
 *               store), group (members "in" active group chats), gender,
 *               relationship status; region, stage and channel_group are empty
 *               (the schema has no such data yet)
 *   numbers     spent (cents) and orders_total from "order" events (props
 *               $.amount in yuan); first_added (customer.first_added_at),
 *               last_active (latest event of any type), last_message (latest
 *               "message" event); ENGINE_NONE where absent
 *   events      per event type, customers with at least one event (sorted
 *               dense ids + a bitmap of them), CSR offsets, and their
 *               timestamps sorted ascending within each customer in one arena */
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

#endif
