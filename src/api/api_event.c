/* api_event.c — POST /api/v1/events: batches of behaviour events from
 * server-side integrations. The handler parses and validates the whole batch
 * on the HTTP thread (events_batch_parse), so the writer only runs
 * events_batch_store; the reply comes once the batch is durable.
 *
 * Ownership: the parsed batch hangs on r->user (event_op, freed with the
 * request); its strings are bound SQLITE_STATIC by the write step, which is
 * safe because the request outlives the write. Timeline reads live elsewhere. */
#include <stdlib.h>

#include "api/api.h"
#include "ingest/events.h"

#define EVENTS_MAX_BODY (4u << 20)

typedef struct event_op {
    events_batch batch;
    char actor[32];
} event_op;

static void event_op_free(void *p) {
    event_op *op = p;
    events_batch_free(&op->batch);
    free(op);
}

static void events_done(http_req *r, http_resp *w, int rc) {
    event_op *op = r->user;
    if (rc != 0) {
        api_reply_write_error(w, rc, &op->batch.err);
        return;
    }
    atomic_fetch_add(&r->ctx->events_accepted, (long)op->batch.accepted);
    http_json(w, 200,
              json_pack("{s:I,s:I}", "accepted", (json_int_t)op->batch.accepted, "duplicates",
                        (json_int_t)op->batch.duplicates));
}

static void events_post(http_req *r, http_resp *w) {
    event_op *op = api_op_new(r, w, sizeof *op, NULL, event_op_free);
    if (!op) return;
    siyu_err err = {0};
    if (events_batch_parse(r->body, r->body_len, &op->batch, &err) != 0) {
        if (err.code == SIYU_ENOMEM)
            http_error(w, 503, "unavailable", "out of memory");
        else
            http_error_err(w, &err);
        return;
    }
    op->batch.tenant_id = r->auth.tenant_id;
    api_actor(r, op->actor);
    op->batch.actor = op->actor;
    http_write(r, w, events_batch_store, &op->batch, events_done);
}

const http_route api_event_routes[] = {
    {"POST", "/api/v1/events", events_post, ROLES_OFFICE,
     "Ingest up to 1000 behaviour events (idempotent per idempotency_key); returns "
     "accepted and duplicates",
     EVENTS_MAX_BODY},
    {NULL, NULL, NULL, 0, NULL, 0},
};
