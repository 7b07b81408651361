/* segsvc.h — the segment service: one engine (src/segment/engine.h) per
 * tenant, built from the store at start and kept current by the writer, and
 * the operations the API and the CLI run on it.
 *
 * Currency: every write step runs with SQLite triggers on the writer's
 * connection that note what changed for the engine (customers, tags, tag
 * memberships, relationships, group members, organisation records, events).
 * After the batch commits and before any caller of store_write hears of it,
 * the notes of the steps that committed are applied to the engines under
 * their write lock. So a read that follows an acknowledged write sees it.
 *
 * Locking: readers take an engine's read lock for the length of one
 * evaluation (milliseconds); the writer takes the write lock only to apply a
 * batch's notes. Long operations (exports) evaluate once, then convert dense
 * ids to customer ids in chunks, each under a short read lock.
 *
 * Scope: every operation takes the caller's http_auth. Admin and operator
 * tokens see the whole tenant; a manager the customers with an active
 * relationship to an employee of their department or its sub-departments; an
 * employee its own active customers (auth.h). The scope is intersected with
 * the segment before anything is counted, listed or exported. */
#ifndef SIYU_SEGMENT_SEGSVC_H
#define SIYU_SEGMENT_SEGSVC_H

#include <roaring/roaring.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "http/http.h"
#include "segment/engine.h"
#include "segment/expr.h"
#include "store/store.h"
#include "util/err.h"

typedef struct segsvc segsvc;

/* Builds the engine of every tenant in st (progress in the log, and on
 * stderr when it is a terminal) and installs the writer hooks. Tenants
 * created later get an engine on their first write. 0 with *out set, or an
 * error with err filled. */
int segsvc_open(store *st, segsvc **out, siyu_err *err);

/* Removes the writer hooks and frees every engine. NULL ok. Call before
 * store_close. */
void segsvc_close(segsvc *s);

/* A parsed and evaluated segment within the caller's scope. */
typedef struct segsvc_result {
    roaring_bitmap_t *bm; /* dense ids of generation gen */
    uint64_t gen;         /* the engine generation the ids belong to */
    uint64_t count;
    int64_t eval_us; /* time spent parsing and evaluating */
} segsvc_result;

/* Parses src (len bytes) and evaluates it at now for a->tenant_id in a's
 * scope. 0 with *out filled (free with segsvc_result_free); SIYU_EINVAL or
 * SIYU_ETOOBIG with err->msg holding the parser's full message (position and
 * caret) or the unknown names; SIYU_ENOTFOUND when the tenant has no engine;
 * SIYU_ENOMEM. An empty src means every customer in scope. */
int segsvc_eval(segsvc *s, const http_auth *a, const char *src, size_t len, int64_t now,
                segsvc_result *out, siyu_err *err);
void segsvc_result_free(segsvc_result *r);

/* A page of a result in sort order (engine_page); rows carry customer ids.
 * SIYU_ECONFLICT when the engine was rebuilt since the result was made (the
 * caller evaluates again). */
int segsvc_page(segsvc *s, int64_t tenant_id, const segsvc_result *r, engine_sort sort,
                bool desc, const engine_row *after, size_t limit, engine_row *out, size_t *n,
                siyu_err *err);

/* Breakdown of a result by dim (engine_breakdown); names are copied into
 * out[i].name as malloc'd strings (free with segsvc_buckets_free). */
int segsvc_breakdown(segsvc *s, int64_t tenant_id, const segsvc_result *r, expr_dim dim,
                     size_t top, engine_bucket *out, size_t *n, siyu_err *err);
void segsvc_buckets_free(engine_bucket *b, size_t n);

/* Walks a result in dense-id order (customer ids ascending), handing the
 * customer ids to fn in chunks of at most 4096, each chunk converted under a
 * short read lock. fn returns 0 to go on or an error code, which stops the
 * walk and is returned. SIYU_ECONFLICT when the engine was rebuilt since the
 * result was made. */
int segsvc_walk(segsvc *s, int64_t tenant_id, const segsvc_result *r,
                int (*fn)(void *arg, const int64_t *ids, size_t n), void *arg, siyu_err *err);

/* Figures for /metrics and the CLI: customers, events, bytes, generation,
 * notes applied, rebuilds. false when the tenant has no engine. */
typedef struct segsvc_stats {
    uint32_t customers;
    uint64_t events, bytes, gen, applied, rebuilds;
    int64_t build_ms;
} segsvc_stats;
bool segsvc_stats_get(segsvc *s, int64_t tenant_id, segsvc_stats *out);

/* Writes the figures of every tenant as Prometheus text (siyu_segment_*). */
void segsvc_metrics(segsvc *s, FILE *f);

#endif
