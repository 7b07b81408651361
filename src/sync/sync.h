/* sync.h — full sync with WeCom and callback-driven refresh.
 *
 * Full sync (sync_full_run) reconciles one tenant's store with what WeCom
 * reports, in phases, each page of API answers applied as one write step
 * through the store's writer (so the server keeps serving):
 *
 *   tags       get_corp_tag_list → tag_group / tag rows (source 'wecom', by
 *              wecom_id); WeCom tags that disappeared are deleted with their
 *              customer links
 *   employees  get_follow_user_list → employees ensured by userid
 *   unassigned get_unassigned_list → resigned members whose customers wait
 *              for inheritance join the listings below
 *   customers  batch/get_by_user (≤100 userids, limit 100, cursor) → customers,
 *              relationships (revived when ended), follow-record tags
 *              (relationship_tag) and their union in customer_tag ('wecom')
 *   groups     groupchat/list (owner_filter ≤100, limit 1000, cursor) →
 *              groupchat/get per chat → group_chat and its members (always
 *              compared: a matching member_version only proves the callbacks
 *              chained, not that Siyu saw the members a group started with)
 *   reconcile  active relationships of listed members that WeCom no longer
 *              lists end as 'deleted_by_employee' with end_reason
 *              'sync_missing'; active groups of listed owners no longer
 *              listed are dismissed; follow-record tags of ended
 *              relationships are dropped
 *
 * A row is only written when a value differs, so a second sync with no
 * WeCom change writes nothing but its sync_run row. Changes made by
 * callbacks after the sync fetched a record win: a record whose updated_at
 * is not older than the fetch is left alone, and ending/dismissing only
 * touches rows not updated since the phase started.
 *
 * Progress lives in sync_run (migration 0004) and in sync_progress for an
 * in-process observer (`siyu sync` prints it).
 *
 * The manager (sync_mgr) owns the threads of `siyu serve`: one per running
 * sync (one at a time per tenant), a scheduler for periodic syncs, and the
 * refresh workers that turn committed callbacks into targeted API reads
 * (externalcontact/get, get_corp_tag_list, groupchat/get) through a bounded,
 * deduplicated queue; on overflow the tenant is flagged for a full sync. */
#ifndef SIYU_SYNC_H
#define SIYU_SYNC_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "util/err.h"
#include "wecom/wecom_client.h"
#include "wecom/wecom_event.h"

/* What a sync counts, per entity. */
typedef enum sync_entity {
    SYNC_TAG_GROUPS,
    SYNC_TAGS,
    SYNC_EMPLOYEES,
    SYNC_CUSTOMERS,
    SYNC_RELATIONSHIPS, /* created = inserted or revived; ended = ended by sync */
    SYNC_FOLLOW_TAGS,   /* relationship_tag links: created / ended (removed) */
    SYNC_GROUPS,        /* ended = dismissed */
    SYNC_MEMBERS,       /* created = joined, ended = left */
    SYNC_ENTITY_COUNT
} sync_entity;

typedef struct sync_counts {
    int64_t created, updated, ended;
} sync_counts;

extern const char *const sync_entity_names[SYNC_ENTITY_COUNT]; /* "customers", ... */

typedef struct sync_progress {
    int64_t run_id, tenant_id;
    const char *phase;   /* static string */
    int64_t done, total; /* phase progress: userids, chats, ... */
    int64_t calls;       /* API calls made by this run */
    int64_t requests;    /* HTTP requests (retries included) */
    int64_t items;       /* WeCom records applied */
    sync_counts n[SYNC_ENTITY_COUNT];
    int64_t elapsed_ms;
} sync_progress;

/* Sum of created + updated + ended over every entity. */
int64_t sync_progress_changes(const sync_progress *p);

/* Optional observer, called on the syncing thread after each write step. */
typedef void (*sync_progress_fn)(void *arg, const sync_progress *p);

/* ---- sync_run rows ------------------------------------------------------ */

/* A running row not updated for this long is taken over (marked failed). */
#define SYNC_STALE_S 300

/* Write step: claims a run for tenant_id (inserts a 'running' row). A
 * running row older than SYNC_STALE_S is marked failed first, unless
 * live. SIYU_ECONFLICT with err set when a fresh run is running (or live);
 * SIYU_EINVAL when the tenant has no WeCom secret (err names field
 * "secret"). */
typedef struct sync_begin {
    int64_t tenant_id;
    const char *origin; /* api | periodic | cli | overflow */
    bool live;          /* a thread of this process still runs a sync of the tenant:
                           its row is not stale however old, and no run may start */
    int64_t run_id;     /* filled */
    siyu_err err;
} sync_begin;
int sync_run_begin(store_conn *c, void *arg);

/* Marks every running row failed ("interrupted"), e.g. at server start.
 * Returns the number of rows or a negative SIYU_E* code. Blocking write. */
int sync_run_interrupt_all(store *st);

/* {"id","tenant_id","kind","origin","state","phase","done","total","calls",
 * "requests","items","counts":{...},"changes","error","started_at",
 * "updated_at","finished_at","elapsed_s"}; run_id 0 = the latest run of the
 * tenant. NULL when there is none. Caller owns the result. */
json_t *sync_run_get_json(store_conn *c, int64_t tenant_id, int64_t run_id);
/* Latest first, at most limit rows, ids below before (0 = from the top).
 * Returns a JSON array (caller owns) or NULL on a query error. */
json_t *sync_run_list_json(store_conn *c, int64_t tenant_id, int limit, int64_t before);

/* ---- the full sync ------------------------------------------------------- */

/* Runs a full sync of tenant_id for the run claimed by sync_run_begin and
 * finishes its row (done or failed, with the error). cancel may be NULL; when
 * it becomes true the run stops between pages and fails with "cancelled".
 * *out (may be NULL) receives the final progress. Returns 0 or a negative
 * SIYU_E* code with err set (SIYU_EREMOTE for an API failure). */
int sync_full_run(store *st, wecom_client *wc, int64_t tenant_id, int64_t run_id,
                  atomic_bool *cancel, sync_progress_fn fn, void *fn_arg, sync_progress *out,
                  siyu_err *err);

/* ---- the manager (siyu serve) --------------------------------------------- */

typedef struct sync_mgr sync_mgr;

typedef struct sync_mgr_opts {
    int interval_s;      /* periodic full sync per tenant; 0 = off */
    int queue_max;       /* refresh queue bound; 0 = 10000 */
    int refresh_workers; /* 0 = 2 */
    /* Transfers still 'waiting' transfer_poll_age_s after their last change
     * are asked about with transfer_result every transfer_poll_s (0 = never):
     * their callbacks may have been lost (spec §3.7: poll after 24 h). */
    int transfer_poll_s, transfer_poll_age_s;
} sync_mgr_opts;

/* Starts the scheduler and refresh workers; marks running rows of a previous
 * process interrupted. NULL (err set) on failure. Stop with sync_mgr_stop. */
sync_mgr *sync_mgr_start(store *st, wecom_client *wc, const sync_mgr_opts *o, siyu_err *err);
/* Cancels running syncs, drops queued refreshes, joins every thread, frees.
 * Call before closing the store. NULL ok. */
void sync_mgr_stop(sync_mgr *m);

/* Starts the thread of a run already claimed with sync_run_begin. 0, or
 * SIYU_ENOMEM / SIYU_ECLOSED (then the row is marked failed). */
int sync_mgr_launch(sync_mgr *m, int64_t tenant_id, int64_t run_id);

/* Whether the refresh queue overflowed for tenant_id since its last sync. */
bool sync_mgr_needs_full(sync_mgr *m, int64_t tenant_id);

/* Whether a full-sync thread of m runs for tenant_id now. */
bool sync_mgr_running(sync_mgr *m, int64_t tenant_id);

/* Called by the callback receiver after ev committed (not for retries):
 * queues the targeted refresh ev calls for. prev_mem_ver is the group's
 * stored member_version before ev was applied (chat updates), or NULL.
 * Never blocks on I/O. */
void sync_mgr_notify(sync_mgr *m, int64_t tenant_id, const wecom_event *ev,
                     const char *prev_mem_ver);

/* Refresh counters since start; pending = queued now + being processed. */
typedef struct sync_mgr_stats {
    long queued, done, deduped, dropped, failed, calls, pending;
} sync_mgr_stats;
void sync_mgr_stats_get(sync_mgr *m, sync_mgr_stats *out);

/* Reads the stored member_version of a group into buf ("" when unknown).
 * For the callback receiver, before it applies a chat update. */
void sync_chat_version(store_conn *c, int64_t tenant_id, const char *chat_id, char *buf,
                       size_t cap);

#endif
