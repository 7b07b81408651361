/* api.h — the REST resources. Each module exports one route table; api.c
 * gathers them for the server. Shared request helpers live here too. */
#ifndef SIYU_API_H
#define SIYU_API_H

#include "app.h"
#include "http/http.h"

extern const http_route api_system_routes[];
extern const http_route api_tenant_routes[];
extern const http_route api_org_routes[];
extern const http_route api_customer_routes[];
extern const http_route api_tag_routes[];
extern const http_route api_tag_rule_routes[];
extern const http_route api_channel_routes[];
extern const http_route api_event_routes[];
extern const http_route api_group_routes[];
extern const http_route api_transfer_routes[];
extern const http_route api_inherit_routes[];
extern const http_route api_groupchat_routes[];
extern const http_route api_outbox_routes[];
extern const http_route api_welcome_routes[];
extern const http_route api_sync_routes[];
extern const http_route api_segment_routes[];
extern const http_route wecom_callback_routes[];

/* NULL-terminated list of the tables above. */
extern const http_route *const api_all_routes[];

/* "token:<id>" for the audit log. */
void api_actor(const http_req *r, char out[32]);

/* A zeroed request-scoped op of size bytes, freed with the request by
 * free_fn. NULL after replying 503 when out of memory; body (which the op
 * was to own, may be NULL) is then released. */
void *api_op_new(http_req *r, http_resp *w, size_t size, json_t *body, void (*free_fn)(void *));

/* Runs a read: acquires a reader, calls fn, releases. On acquire failure
 * replies 503. */
void api_read(http_req *r, http_resp *w, void (*fn)(http_req *, http_resp *, store_conn *));

/* Generic ending for a write whose arg carries a siyu_err at offset err_off:
 * replies with the error, or calls ok(). */
void api_reply_write_error(http_resp *w, int rc, const siyu_err *err);

/* Outbox-style paging (?limit=, ?cursor= = an id, newest first): false after
 * replying 400. api_outbox_next: the next_cursor value (null when 0). */
bool api_outbox_page(http_req *r, http_resp *w, int *limit, int64_t *before);
json_t *api_outbox_next(int64_t next);

/* Evaluates a request's segment — the expression src (len bytes; empty =
 * every customer in scope) or, when segment_id > 0, that saved segment's —
 * for the token (segment/segsvc.h applies its scope) at the current time.
 * true with *out filled (free with segsvc_result_free) and, when canonical is
 * not NULL, *canonical the malloc'd canonical text (expr_print). Otherwise
 * replies — 400 with the parser's message, line, column and caret (field
 * "expr") or the unknown names, 404 for an unknown saved segment, 503 when
 * the engine is not running — and returns false. A tenant without an engine
 * yet gives an empty result. */
struct segsvc_result;
bool api_segment_eval(http_req *r, http_resp *w, const char *src, size_t len, int64_t segment_id,
                      struct segsvc_result *out, char **canonical);

/* Where "after customer customer_id" is in res, as segsvc_page wants it:
 * engine_page places its cursor by dense id, which belongs to one engine
 * generation; this finds the dense id of res's last member with an id <=
 * customer_id (a binary search with one-row pages). *start true: no member
 * is at or before it (page from the start). 0 or segsvc_page's error. */
struct segsvc;
int api_segment_after(struct segsvc *s, int64_t tenant_id, const struct segsvc_result *res,
                      int64_t customer_id, bool *start, uint32_t *dense, siyu_err *err);

/* CRUD of records a store module writes from a JSON body (store_json_input
 * steps): the route's data points at the kind. list replies {"items": [...]},
 * get the record or 404 naming it, create 201 with the record, replace 200,
 * delete {"id", "deleted": true}. */
typedef struct api_json_kind {
    const char *noun; /* "tag rule", for messages */
    int (*list)(store_conn *c, int64_t tenant_id, json_t *items);
    json_t *(*get)(store_conn *c, int64_t tenant_id, int64_t id);
    store_write_fn create, replace, remove;
} api_json_kind;
void api_json_list(http_req *r, http_resp *w);
void api_json_get(http_req *r, http_resp *w);
void api_json_create(http_req *r, http_resp *w);
void api_json_replace(http_req *r, http_resp *w);
void api_json_delete(http_req *r, http_resp *w);

/* Builds the OpenAPI 3 document from the server's route table. */
json_t *api_openapi(http_server *s);

#endif
