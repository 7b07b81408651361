/* events.h — behaviour events posted by server-side integrations (H5 pages,
 * mini-programs, shops) through POST /api/v1/events: the fast ingest path.
 *
 * Two halves, so the expensive work happens off the single writer thread:
 *   events_batch_parse   pure function (no SQLite, no clock): parses and
 *                        validates the whole body on the HTTP thread, decodes
 *                        strings and serializes props compactly into one arena.
 *   events_batch_store   write step: resolves customers and employees with
 *                        cached statements and inserts with INSERT OR IGNORE,
 *                        counting a repeated idempotency key as a duplicate.
 *
 * Body: {"events":[item, ...]} with 1..EVENTS_BATCH_MAX items; an item is
 *   idempotency_key  string 1..128 bytes            required
 *   type             string 1..64 of [a-z0-9_.:-]   required
 *   ts               integer epoch seconds in [EVENTS_TS_MIN, EVENTS_TS_MAX)
 *   customer_id      positive integer  } exactly one of the two; an unknown
 *   external_userid  string 1..64      } external_userid creates the customer
 *   employee_userid  string 1..64, optional (must exist in the tenant)
 *   props            object, optional, <= 8 KiB once serialized compactly
 * Optional fields may be null (= absent). Unknown fields, duplicate fields,
 * invalid UTF-8, "\u0000", lone surrogates and numbers jansson would refuse
 * (integers beyond int64, reals that overflow) are rejected, so every stored
 * props text loads again with json_loads.
 *
 * Ownership: an events_batch is caller storage; events_batch_parse fills it
 * and events_batch_free releases what the parse allocated. Every string in an
 * item points into the batch's arena and lives as long as the batch. */
#ifndef SIYU_INGEST_EVENTS_H
#define SIYU_INGEST_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define EVENTS_BATCH_MAX 1000
#define EVENTS_IDEM_MAX 128
#define EVENTS_TYPE_MAX 64
#define EVENTS_USERID_MAX 64
#define EVENTS_PROPS_MAX 8192
#define EVENTS_PROPS_DEPTH 32
#define EVENTS_TS_MIN 946684800LL  /* 2000-01-01T00:00:00Z */
#define EVENTS_TS_MAX 4102444800LL /* 2100-01-01T00:00:00Z; also catches milliseconds */

/* A decoded string: p is NUL-terminated (props: compact JSON text), or NULL
 * when the field was absent or null. */
typedef struct events_str {
    const char *p;
    uint32_t len;
} events_str;

typedef struct events_item {
    events_str idem_key;
    events_str type;
    events_str external_userid; /* set iff customer_id == 0 */
    events_str employee_userid;
    events_str props;
    int64_t ts;
    int64_t customer_id;
    int64_t idem_hash; /* events_idem_hash(idem_key), set by the parser */
    /* Filled by events_batch_store: the resolved customer and employee (0 =
     * none). The parser leaves them 0. */
    int64_t customer, employee;
} events_item;

typedef struct events_batch {
    events_item *items;
    size_t n;
    /* The items sorted by (idem_hash, index), stable, so within a batch the
     * first of two equal keys still wins: the write step finds repeated
     * hashes here. */
    uint16_t *hash_order;
    char *arena; /* all strings of all items */
    size_t arena_len, arena_cap;
    /* Inputs of events_batch_store, set by the caller. */
    int64_t tenant_id;
    const char *actor; /* for the audit log */
    /* Outputs of events_batch_store. */
    size_t accepted, duplicates, customers_created;
    siyu_err err;
} events_batch;

/* Parses and validates a whole body. On success returns 0 with *out filled
 * (out->n >= 1). On failure returns SIYU_EINVAL (err->field names the place,
 * e.g. "events[3].type"), SIYU_ETOOBIG (more than EVENTS_BATCH_MAX items,
 * field "events") or SIYU_ENOMEM, and leaves *out empty. Either way the caller
 * calls events_batch_free(out) when done. */
int events_batch_parse(const char *json, size_t len, events_batch *out, siyu_err *err);

/* The 64-bit hash of an idempotency key stored in event.idem_hash (FNV-1a,
 * then the murmur3 finaliser). It is on disk: never change it. Two different
 * keys may share a hash; the write step then checks the stored key. */
int64_t events_idem_hash(const char *key, size_t len);

/* Releases what events_batch_parse allocated and zeroes *b. NULL ok. */
void events_batch_free(events_batch *b);

/* Checks the invariants of a parsed batch (every limit above, strings inside
 * the arena and NUL-terminated). True when valid; otherwise *why says what. */
bool events_batch_validate(const events_batch *b, const char **why);

/* Write step (arg: events_batch* with tenant_id and actor set). Stores every
 * event of the batch or none: returns 0 with accepted/duplicates filled, or
 * SIYU_EINVAL with b->err naming "events[i].customer_id" (unknown customer) or
 * "events[i].employee_userid" (unknown employee), or SIYU_EIO. Audits once
 * ("event.ingest", count = accepted). */
typedef struct store_conn store_conn;
int events_batch_store(store_conn *c, void *arg);

#endif
