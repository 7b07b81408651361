/* ingest_wecom.h — apply one decrypted, parsed WeCom callback to the store.
 *
 * The callback receiver (wecom/wecom_callback.c) verifies, decrypts and parses
 * on the HTTP thread, computes the dedupe key and the event props there, and
 * then runs ingest_wecom_step on the writer: only SQL happens in the write
 * step. Everything one callback changes (processed_callback, employees and
 * customers created on first sight, relationship, group, tag rows, the event
 * row) commits or rolls back together.
 *
 * Idempotency: the dedupe key is the hex SHA-256 of the decrypted plaintext.
 * It is inserted into processed_callback first; when it is already there the
 * callback is a retry and nothing else is written.
 *
 * Ordering: WeCom retries for up to ~15 s, so a retried add can arrive after
 * the delete that followed it. State transitions therefore only move forward
 * in CreateTime: a relationship is revived only by an add not older than its
 * ended_at, ended only by a delete not older than its added_at (the same for
 * group members). The event row is written either way.
 *
 * Audit: an accepted callback is recorded by its event row (one per callback,
 * source 'wecom'), not in audit_log, which would double the write volume of
 * the busiest path; deletions a callback causes (tags, tag groups and their
 * customer links) are audited with actor "wecom". */
#ifndef SIYU_INGEST_WECOM_H
#define SIYU_INGEST_WECOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "wecom/wecom_event.h"

typedef struct ingest_result {
    bool duplicate;      /* the dedupe key was already processed: nothing applied */
    int64_t customer_id; /* customer the event row links to, 0 = none */
    int64_t employee_id; /* employee the event row links to, 0 = none */
    int64_t event_id;    /* the event row, 0 for a duplicate */
} ingest_result;

/* The dedupe key of a decrypted message: its CreateTime as 10 decimal digits,
 * '-', then the first 192 bits of its SHA-256 in lowercase hex (59 chars +
 * NUL). Leading with the time keeps processed_callback inserts at the right
 * edge of its b-tree (one hot page instead of a random page per callback);
 * a retry carries the same CreateTime and body, hence the same key. out is ""
 * if the digest cannot be computed. */
#define INGEST_DEDUPE_KEY_SIZE 65
void ingest_wecom_dedupe_key(int64_t create_time, const char *msg, size_t len,
                             char out[INGEST_DEDUPE_KEY_SIZE]);

/* Compact JSON object of the fields of ev relevant to its kind (state,
 * source, fail_reason, welcome_code, chat_id, update_detail, scenes, member
 * ids, tag id/type, ...; Event/ChangeType/MsgType for unknown events). Never
 * includes message content. malloc'd, freed by the caller; NULL on OOM. */
char *ingest_wecom_props(const wecom_event *ev);

/* Apply ev for tenant_id on a write connection (inside a write step). props
 * is the event row's JSON (NULL = computed here with ingest_wecom_props).
 * Fills *out. Returns 0 (also for a duplicate) or a negative SIYU_E* code;
 * the caller's savepoint then undoes everything this call wrote. */
int ingest_wecom_apply(store_conn *c, int64_t tenant_id, const wecom_event *ev,
                       const char *dedupe_key, const char *props, ingest_result *out);

/* A write step around ingest_wecom_apply. The fields are borrowed; the
 * caller keeps them alive until the write is done. */
typedef struct ingest_wecom_cmd {
    int64_t tenant_id;
    const wecom_event *ev;
    const char *dedupe_key;
    const char *props;
    ingest_result result;
} ingest_wecom_cmd;
int ingest_wecom_step(store_conn *c, void *arg); /* arg: ingest_wecom_cmd* */

#endif
