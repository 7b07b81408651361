/* api_segment.c — what users get from segments (docs/SEGMENTS.md, "Using
 * segments"): ad-hoc operations on an expression or a saved segment, and
 * the saved segments themselves.
 *
 *   POST /api/v1/segments/count      {expr|segment_id} -> count, elapsed_ms, expr
 *   POST /api/v1/segments/list       + sort, order, limit, cursor -> items, next_cursor
 *   POST /api/v1/segments/breakdown  + by, top -> items [{id,name,count}], total
 *   POST /api/v1/segments/export     + format -> a streamed download
 *   GET/POST /api/v1/segments, GET/PATCH/DELETE /api/v1/segments/{id}
 *
 * Every operation parses the expression here first (a 400 carries the
 * parser's message with line, column and caret), then evaluates it through
 * the segment service (segment/segsvc.h), which intersects it with the
 * token's data scope: an employee token only ever counts, lists, breaks down
 * or exports its own customers.
 *
 * Exports (the state machine of one export_job):
 *
 *   handler: parse, evaluate --http_write(audit_step)--> export_start
 *   export_start: thread job_run --export_segment_write--> ring buffer
 *       MHD thread: job_read drains the ring (waits up to 20 ms, then 0)
 *       job_run ends --done--> job_read returns END (or ERROR: cut off)
 *   client gone / response over --job_free--> cancel, join, free
 *
 * The producer blocks while the ring (EXPORT_RING bytes) is full, so an
 * export holds one ring, one writer chunk and one batch of rows however big
 * the segment is. The audit record ("segment.export", count, format; never
 * the rows) commits before the first byte goes out.
 *
 * Ownership: a seg_op per request hangs on r->user (body, result, canonical
 * text). An export_job is owned by the streamed response (freed by job_free)
 * and owns its own copy of everything it uses. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "segment/export.h"
#include "segment/segsvc.h"
#include "store/audit.h"
#include "store/customer.h"
#include "store/segment.h"
#include "util/log.h"

#define LIST_DEFAULT 50
#define LIST_MAX 1000
#define BREAKDOWN_DEFAULT 10
#define BREAKDOWN_MAX 100
#define SAVED_PAGE_DEFAULT 20
#define EXPORT_RING (1u << 20)
#define CURSOR_MAX 96
#define EXPORT_MAX_RUNNING 8  /* exports at once; more get 429 */
#define JOB_WAIT_NS 20000000L /* 20 ms: longest wait of the reader for data */

/* ---- evaluation shared by every operation ---- */

/* Replies 400 with the parser's error: message with caret, line and column. */
static void reply_parse_error(http_resp *w, const expr_err *pe) {
    json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i}", "code", siyu_strerror(pe->code), "message",
                          pe->text, "reason", pe->msg, "field", "expr", "line", (int)pe->line,
                          "column", (int)pe->col);
    http_json(w, 400, json_pack("{s:o}", "error", e));
}

/* Loads a saved segment's expression; false after replying. */
static bool saved_expr(http_req *r, http_resp *w, int64_t id, char **out) {
    store_conn *c = store_reader_acquire(r->ctx->st);
    if (!c) {
        http_error(w, 503, "unavailable", "store unavailable");
        return false;
    }
    siyu_err err = {0};
    int rc = segment_expr_get(c, r->auth.tenant_id, id, out, &err);
    store_reader_release(r->ctx->st, c);
    if (rc) http_error_err(w, &err);
    return rc == 0;
}

bool api_segment_eval(http_req *r, http_resp *w, const char *src, size_t len, int64_t segment_id,
                      segsvc_result *out, char **canonical) {
    memset(out, 0, sizeof *out);
    if (canonical) *canonical = NULL;
    if (!r->ctx->seg) {
        http_error(w, 503, "unavailable", "the segment engine is not running");
        return false;
    }
    char *stored = NULL;
    if (segment_id > 0) {
        if (!saved_expr(r, w, segment_id, &stored)) return false;
        src = stored;
        len = strlen(stored);
    }
    if (!src) src = "";
    /* Parse here for the full caret message and the canonical text. */
    expr_node *n = NULL;
    expr_err pe;
    memset(&pe, 0, sizeof pe);
    bool all = true;
    for (size_t i = 0; i < len && all; i++)
        all = src[i] == ' ' || src[i] == '\t' || src[i] == '\r' || src[i] == '\n';
    if (!all && expr_parse(src, len, &n, &pe) != 0) {
        free(stored);
        reply_parse_error(w, &pe);
        return false;
    }
    if (canonical) {
        *canonical = n ? expr_print(n, NULL) : strdup("");
        if (!*canonical) {
            expr_free(n);
            free(stored);
            http_error(w, 503, "unavailable", "out of memory");
            return false;
        }
    }
    expr_free(n);
    siyu_err err = {0};
    int rc = segsvc_eval(r->ctx->seg, &r->auth, src, all ? 0 : len, siyu_now(), out, &err);
    free(stored);
    if (rc == SIYU_ENOTFOUND) {
        /* The tenant has no engine yet (nothing written): nobody matches. */
        memset(out, 0, sizeof *out);
        out->bm = roaring_bitmap_create();
        if (out->bm) return true;
        rc = SIYU_ENOMEM;
    }
    if (rc) {
        if (canonical) {
            free(*canonical);
            *canonical = NULL;
        }
        if (rc == SIYU_EINVAL || rc == SIYU_ETOOBIG) {
            /* unknown names, or a limit the service checks */
            http_json(w, 400,
                      json_pack("{s:{s:s,s:s,s:s}}", "error", "code", siyu_strerror(rc), "message",
                                err.msg[0] ? err.msg : siyu_strerror(rc), "field", "expr"));
            return false;
        }
        if (!err.code) siyu_err_set(&err, rc, NULL, "evaluating the segment failed");
        http_error_err(w, &err);
        return false;
    }
    return true;
}

/* Probe of segsvc_page: the first member of res with dense id >= u (by id),
 * into *row; *found false when there is none. */
static int first_from(segsvc *s, int64_t tenant_id, const segsvc_result *res, uint32_t u,
                      engine_row *row, bool *found, siyu_err *err) {
    engine_row after = {.dense = u ? u - 1 : 0};
    size_t n = 0;
    int rc =
        segsvc_page(s, tenant_id, res, ENGINE_SORT_ID, false, u ? &after : NULL, 1, row, &n, err);
    *found = n == 1;
    return rc;
}

int api_segment_after(segsvc *s, int64_t tenant_id, const segsvc_result *res, int64_t customer_id,
                      bool *start, uint32_t *dense, siyu_err *err) {
    *start = true;
    *dense = 0;
    segsvc_stats st;
    if (res->count == 0 || !segsvc_stats_get(s, tenant_id, &st)) return 0;
    /* Smallest u in [0, N] whose first member (dense >= u) has an id above
     * customer_id; monotone in u because dense ids follow customer ids. */
    uint64_t lo = 0, hi = st.customers;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        engine_row row;
        bool found;
        int rc = first_from(s, tenant_id, res, (uint32_t)mid, &row, &found, err);
        if (rc) return rc;
        if (!found || row.customer_id > customer_id)
            hi = mid;
        else
            lo = mid + 1;
    }
    *start = lo == 0;
    *dense = lo ? (uint32_t)(lo - 1) : 0;
    return 0;
}

/* ---- request bodies ---- */

typedef struct seg_op {
    json_t *body;
    segsvc_result res;
    char *canonical;
    char actor[32];
    segment_input in;   /* saved segment writes */
    export_format fmt;  /* export */
    char detail[96];    /* export: the audit detail */
    char filename[128]; /* export */
    bool slot;          /* export: holds one of the EXPORT_MAX_RUNNING slots */
} seg_op;

/* Exports running in this process, each a thread and an EXPORT_RING buffer.
 * The bound is process-wide, like the threads it limits, hence a static
 * counter rather than request state. */
static atomic_int exports_running;

static bool export_slot_take(void) {
    if (atomic_fetch_add(&exports_running, 1) < EXPORT_MAX_RUNNING) return true;
    atomic_fetch_sub(&exports_running, 1);
    return false;
}

static void export_slot_give(void) {
    atomic_fetch_sub(&exports_running, 1);
}

static void seg_op_free(void *p) {
    seg_op *op = p;
    if (op->slot) export_slot_give();
    json_decref(op->body);
    segsvc_result_free(&op->res);
    free(op->canonical);
    free(op);
}

/* The parsed body as the request's op (fields checked); NULL after replying. */
static seg_op *op_from_body(http_req *r, http_resp *w, const json_field *fields) {
    json_t *body = http_body_object(r, w, fields);
    if (!body) return NULL;
    seg_op *op = api_op_new(r, w, sizeof *op, body, seg_op_free);
    if (!op) return NULL;
    op->body = body;
    api_actor(r, op->actor);
    return op;
}

static const char *body_str(const seg_op *op, const char *key) {
    return json_string_value(json_object_get(op->body, key));
}

/* Integer field: def when absent; false after replying 400 when outside
 * min..max. */
static bool body_int(http_resp *w, const seg_op *op, const char *key, int64_t def, int64_t min,
                     int64_t max, int64_t *out) {
    const json_t *v = json_object_get(op->body, key);
    *out = v ? json_integer_value(v) : def;
    if (*out < min || *out > max) {
        siyu_err err = {0};
        siyu_err_set(&err, SIYU_EINVAL, key, "field '%s' must be %lld..%lld", key, (long long)min,
                     (long long)max);
        http_error_err(w, &err);
        return false;
    }
    return true;
}

/* Evaluates the body's expr or segment_id into op->res and op->canonical. */
static bool op_eval(http_req *r, http_resp *w, seg_op *op) {
    const json_t *e = json_object_get(op->body, "expr");
    const json_t *sid = json_object_get(op->body, "segment_id");
    if (e && sid) {
        http_error(w, 400, "invalid", "give expr or segment_id, not both");
        return false;
    }
    if (sid && json_integer_value(sid) <= 0) {
        http_error(w, 400, "invalid", "field 'segment_id' must be a positive id");
        return false;
    }
    return api_segment_eval(r, w, json_string_value(e), e ? json_string_length(e) : 0,
                            sid ? json_integer_value(sid) : 0, &op->res, &op->canonical);
}

/* Fields every operation accepts. */
#define SEGMENT_FIELDS                                                                             \
    {"expr", JF_STRING, false, EXPR_MAX_INPUT, false}, {                                           \
        "segment_id", JF_INT, false, 0, false                                                      \
    }

static json_t *base_reply(const seg_op *op) {
    json_t *j =
        json_pack("{s:I,s:f,s:s}", "count", (json_int_t)op->res.count, "elapsed_ms",
                  (double)op->res.eval_us / 1000.0, "expr", op->canonical ? op->canonical : "");
    const json_t *sid = json_object_get(op->body, "segment_id");
    if (sid) json_object_set_new(j, "segment_id", json_integer(json_integer_value(sid)));
    return j;
}

/* ---- POST /segments/count ---- */

static void seg_count(http_req *r, http_resp *w) {
    static const json_field fields[] = {SEGMENT_FIELDS, {NULL, 0, false, 0, false}};
    seg_op *op = op_from_body(r, w, fields);
    if (!op || !op_eval(r, w, op)) return;
    http_json(w, 200, base_reply(op));
}

/* ---- POST /segments/list ---- */

static const char *const sort_names[] = {
    [ENGINE_SORT_ID] = "id",
    [ENGINE_SORT_SPENT] = "spent",
    [ENGINE_SORT_ORDERS_TOTAL] = "orders_total",
    [ENGINE_SORT_FIRST_ADDED] = "first_added",
    [ENGINE_SORT_LAST_ACTIVE] = "last_active",
    [ENGINE_SORT_LAST_MESSAGE] = "last_message",
};
#define NSORT (sizeof sort_names / sizeof *sort_names)

/* Opaque list cursor: hex of
 * "sl:<sort>:<desc>:<key>:<customer_id>:<dense>:<gen>", the last row of the
 * page. engine_page orders by key, then dense id (the engine's name for a
 * customer, in customer id order); a dense id only holds within the engine
 * generation it came from, so after a rebuild the customer id is turned into
 * the new generation's place (api_segment_after). */
static json_t *list_cursor(engine_sort sort, bool desc, const engine_row *row, uint64_t gen) {
    char text[CURSOR_MAX], hex[2 * CURSOR_MAX + 1];
    int n = snprintf(text, sizeof text, "sl:%d:%d:%lld:%lld:%u:%llu", (int)sort, desc ? 1 : 0,
                     (long long)row->key, (long long)row->customer_id, (unsigned)row->dense,
                     (unsigned long long)gen);
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < n; i++) {
        hex[2 * i] = d[(unsigned char)text[i] >> 4];
        hex[2 * i + 1] = d[(unsigned char)text[i] & 15];
    }
    hex[2 * n] = 0;
    return json_string(hex);
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static bool list_cursor_parse(const char *hex, engine_sort sort, bool desc, engine_row *row,
                              uint64_t *gen) {
    size_t n = strlen(hex);
    char text[CURSOR_MAX];
    if (n == 0 || n % 2 || n / 2 >= sizeof text) return false;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval((unsigned char)hex[2 * i]), lo = hexval((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        text[i] = (char)(hi * 16 + lo);
    }
    text[n / 2] = 0;
    int s, d, used = 0;
    long long key, cid;
    unsigned dense;
    unsigned long long g;
    if (sscanf(text, "sl:%d:%d:%lld:%lld:%u:%llu%n", &s, &d, &key, &cid, &dense, &g, &used) != 6 ||
        (size_t)used != n / 2 || s != (int)sort || d != (desc ? 1 : 0) || cid <= 0)
        return false;
    *row = (engine_row){.dense = dense, .customer_id = cid, .key = key};
    *gen = g;
    return true;
}

/* The sort key as the API shows it: yuan for spent, Unix seconds for times,
 * null for an absent time. */
static json_t *sort_value(engine_sort sort, int64_t key) {
    if (key == ENGINE_NONE) return json_null();
    if (sort == ENGINE_SORT_SPENT) return json_real((double)key / 100.0);
    return json_integer(key);
}

static int cmp_item_id(const void *a, const void *b) {
    int64_t x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
    int64_t y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));
    return x < y ? -1 : x > y;
}

/* The customers of rows[0..n) in row order, loaded in one query (scope
 * applied again by the store). NULL and err on failure. */
static json_t *page_items(store_conn *c, const http_auth *a, const engine_row *rows, size_t n,
                          engine_sort sort, siyu_err *err) {
    char *ids = malloc(n * 21 + 3);
    if (!ids) {
        siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    size_t k = 0;
    ids[k++] = '[';
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(ids + k, "%s%lld", i ? "," : "", (long long)rows[i].customer_id);
    ids[k++] = ']';
    ids[k] = 0;
    customer_filter f = {.added_after = -1, .added_before = -1, .ids = ids};
    customer_page p = {.limit = (int)n + 1};
    json_t *got = NULL;
    int rc = customer_list_json(c, a, &f, &p, &got, err);
    free(ids);
    if (rc) return NULL;
    json_t *loaded = json_object_get(got, "items");
    size_t m = json_array_size(loaded);
    json_t **byid = malloc((m + 1) * sizeof *byid);
    json_t *items = json_array();
    if (!byid || !items) {
        free(byid);
        json_decref(items);
        json_decref(got);
        siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < m; i++)
        byid[i] = json_array_get(loaded, i);
    qsort(byid, m, sizeof *byid, cmp_item_id); /* already by id; cheap to be sure */
    for (size_t i = 0; i < n; i++) {
        json_t *key = json_object();
        json_object_set_new(key, "id", json_integer(rows[i].customer_id));
        json_t **hit = bsearch(&key, byid, m, sizeof *byid, cmp_item_id);
        json_decref(key);
        if (!hit) continue; /* deleted since the evaluation */
        if (sort != ENGINE_SORT_ID)
            json_object_set_new(*hit, "sort_value", sort_value(sort, rows[i].key));
        json_array_append(items, *hit);
    }
    free(byid);
    json_decref(got);
    return items;
}

static void seg_list(http_req *r, http_resp *w) {
    static const json_field fields[] = {SEGMENT_FIELDS,
                                        {"sort", JF_STRING, false, 32, false},
                                        {"order", JF_STRING, false, 8, false},
                                        {"limit", JF_INT, false, 0, false},
                                        {"cursor", JF_STRING, false, 2 * CURSOR_MAX, true},
                                        {NULL, 0, false, 0, false}};
    seg_op *op = op_from_body(r, w, fields);
    if (!op) return;
    const char *sort_s = body_str(op, "sort"), *order = body_str(op, "order");
    engine_sort sort = ENGINE_SORT_ID;
    if (sort_s) {
        size_t i = 0;
        while (i < NSORT && strcmp(sort_names[i], sort_s) != 0)
            i++;
        if (i == NSORT) {
            http_error(w, 400, "invalid",
                       "field 'sort' must be one of id, spent, orders_total, first_added, "
                       "last_active, last_message");
            return;
        }
        sort = (engine_sort)i;
    }
    if (order && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
        http_error(w, 400, "invalid", "field 'order' must be asc or desc");
        return;
    }
    /* Default: ids ascending, attributes descending (the biggest spenders first). */
    bool desc = order ? strcmp(order, "desc") == 0 : sort != ENGINE_SORT_ID;
    int64_t limit;
    if (!body_int(w, op, "limit", LIST_DEFAULT, 1, LIST_MAX, &limit)) return;
    engine_row after;
    uint64_t after_gen = 0;
    const char *cursor = body_str(op, "cursor");
    if (cursor && !list_cursor_parse(cursor, sort, desc, &after, &after_gen)) {
        http_error(w, 400, "invalid",
                   "field 'cursor' is not a cursor of this list (same sort and order)");
        return;
    }
    if (!op_eval(r, w, op)) return;
    engine_row *rows = malloc(((size_t)limit + 1) * sizeof *rows);
    if (!rows) {
        http_error(w, 503, "unavailable", "out of memory");
        return;
    }
    size_t n = 0;
    siyu_err err = {0};
    int rc = 0;
    bool from_start = !cursor;
    if (cursor && after_gen != op->res.gen && op->res.count > 0) {
        /* rebuilt since the previous page: the customer id tells the place */
        rc = api_segment_after(r->ctx->seg, r->auth.tenant_id, &op->res, after.customer_id,
                               &from_start, &after.dense, &err);
        if (!rc && sort != ENGINE_SORT_ID) from_start = false; /* the key still holds */
    }
    if (!rc && op->res.count > 0)
        rc = segsvc_page(r->ctx->seg, r->auth.tenant_id, &op->res, sort, desc,
                         from_start ? NULL : &after, (size_t)limit + 1, rows, &n, &err);
    if (rc) {
        free(rows);
        if (rc == SIYU_ECONFLICT)
            siyu_err_set(&err, SIYU_EBUSY, NULL, "the engine was rebuilt; retry");
        http_error_err(w, &err);
        return;
    }
    json_t *next = json_null();
    if (n > (size_t)limit) {
        n = (size_t)limit;
        json_decref(next);
        next = list_cursor(sort, desc, &rows[n - 1], op->res.gen);
    }
    json_t *items = json_array();
    if (n) {
        store_conn *c = store_reader_acquire(r->ctx->st);
        json_decref(items);
        items = c ? page_items(c, &r->auth, rows, n, sort, &err) : NULL;
        if (c) store_reader_release(r->ctx->st, c);
        if (!c) siyu_err_set(&err, SIYU_ECLOSED, NULL, "store unavailable");
    }
    free(rows);
    if (!items) {
        json_decref(next);
        http_error_err(w, &err);
        return;
    }
    json_t *j = base_reply(op);
    json_object_set_new(j, "sort", json_string(sort_names[sort]));
    json_object_set_new(j, "order", json_string(desc ? "desc" : "asc"));
    json_object_set_new(j, "items", items);
    json_object_set_new(j, "next_cursor", next);
    http_json(w, 200, j);
}

/* ---- POST /segments/breakdown ---- */

static const struct {
    const char *name;
    expr_dim dim;
} by_names[] = {
    {"tag", EXPR_DIM_TAG},
    {"channel", EXPR_DIM_CHANNEL},
    {"channel_group", EXPR_DIM_CHANNEL_GROUP},
    {"employee", EXPR_DIM_EMPLOYEE},
    {"department", EXPR_DIM_DEPARTMENT},
    {"store", EXPR_DIM_STORE},
    {"group", EXPR_DIM_GROUP},
    {"region", EXPR_DIM_REGION},
    {"gender", EXPR_DIM_GENDER},
    {"stage", EXPR_DIM_STAGE},
    {"relationship_status", EXPR_DIM_RELATIONSHIP_STATUS},
};
#define NBY (sizeof by_names / sizeof *by_names)

static void seg_breakdown(http_req *r, http_resp *w) {
    static const json_field fields[] = {SEGMENT_FIELDS,
                                        {"by", JF_STRING, true, 32, false},
                                        {"top", JF_INT, false, 0, false},
                                        {NULL, 0, false, 0, false}};
    seg_op *op = op_from_body(r, w, fields);
    if (!op) return;
    const char *by = body_str(op, "by");
    size_t bi = 0;
    while (bi < NBY && strcmp(by_names[bi].name, by) != 0)
        bi++;
    if (bi == NBY) {
        http_error(w, 400, "invalid",
                   "field 'by' must be one of tag, channel, channel_group, employee, department, "
                   "store, group, region, gender, stage, relationship_status");
        return;
    }
    int64_t top;
    if (!body_int(w, op, "top", BREAKDOWN_DEFAULT, 1, BREAKDOWN_MAX, &top)) return;
    if (!op_eval(r, w, op)) return;
    engine_bucket b[BREAKDOWN_MAX];
    size_t n = 0;
    siyu_err err = {0};
    int rc = op->res.count == 0 ? 0
                                : segsvc_breakdown(r->ctx->seg, r->auth.tenant_id, &op->res,
                                                   by_names[bi].dim, (size_t)top, b, &n, &err);
    if (rc) {
        if (rc == SIYU_ECONFLICT)
            siyu_err_set(&err, SIYU_EBUSY, NULL, "the engine was rebuilt; retry");
        if (!err.code) siyu_err_set(&err, rc, NULL, "breakdown failed");
        http_error_err(w, &err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *name = b[i].name ? json_string(b[i].name) : NULL;
        json_array_append_new(
            items, json_pack("{s:o,s:o,s:I}", "id", b[i].id ? json_integer(b[i].id) : json_null(),
                             "name", name ? name : json_null(), "count", (json_int_t)b[i].count));
    }
    segsvc_buckets_free(b, n);
    json_t *j = base_reply(op);
    json_object_set_new(j, "by", json_string(by));
    json_object_set_new(j, "total", json_integer((json_int_t)op->res.count));
    json_object_set_new(j, "items", items);
    http_json(w, 200, j);
}

/* ---- POST /segments/export ---- */

typedef struct export_job {
    segsvc *seg;
    store *st;
    int64_t tenant_id;
    segsvc_result res;
    export_format fmt;
    pthread_t thread;
    bool started;
    atomic_bool cancel;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *ring;
    size_t head, len; /* ring[head .. head+len) (mod EXPORT_RING) is unread */
    bool done;
    int rc;
    bool slot; /* holds an export slot (export_slot_give when freed) */
} export_job;

/* Sink of the writer (producer thread): copies into the ring, waiting while
 * it is full. SIYU_ECLOSED once the response is gone. */
static int job_sink(void *arg, const void *data, size_t len) {
    export_job *j = arg;
    const char *p = data;
    pthread_mutex_lock(&j->mu);
    while (len > 0) {
        while (j->len == EXPORT_RING && !atomic_load(&j->cancel))
            pthread_cond_wait(&j->cv, &j->mu);
        if (atomic_load(&j->cancel)) break;
        size_t tail = (j->head + j->len) % EXPORT_RING;
        size_t room = EXPORT_RING - j->len;
        size_t run = tail + room > EXPORT_RING ? EXPORT_RING - tail : room;
        size_t m = len < run ? len : run;
        memcpy(j->ring + tail, p, m);
        j->len += m;
        p += m;
        len -= m;
        pthread_cond_broadcast(&j->cv);
    }
    bool gone = atomic_load(&j->cancel);
    pthread_mutex_unlock(&j->mu);
    return gone ? SIYU_ECLOSED : 0;
}

static void *job_run(void *arg) {
    export_job *j = arg;
    siyu_err err = {0};
    export_writer *wr = NULL;
    int rc = export_writer_create(j->fmt, job_sink, j, NULL, &wr, &err);
    if (!rc) rc = export_segment_write(j->seg, j->st, j->tenant_id, &j->res, wr, &j->cancel, &err);
    export_writer_free(wr);
    if (rc && rc != SIYU_ECLOSED)
        log_warn("segment export of tenant %lld stopped: %s", (long long)j->tenant_id,
                 err.msg[0] ? err.msg : siyu_strerror(rc));
    pthread_mutex_lock(&j->mu);
    j->done = true;
    j->rc = rc;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* The response's reader (an MHD thread). */
static long job_read(void *arg, char *buf, size_t max) {
    export_job *j = arg;
    pthread_mutex_lock(&j->mu);
    if (j->len == 0 && !j->done) {
        /* Wait a little for the producer, but never hold the server thread
         * (which serves other connections too) for long: 0 makes MHD call
         * again. An .xlsx is silent while it is zipped. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += JOB_WAIT_NS;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&j->cv, &j->mu, &until);
    }
    long n;
    if (j->len > 0) {
        size_t run = j->head + j->len > EXPORT_RING ? EXPORT_RING - j->head : j->len;
        size_t m = run < max ? run : max;
        memcpy(buf, j->ring + j->head, m);
        j->head = (j->head + m) % EXPORT_RING;
        j->len -= m;
        pthread_cond_broadcast(&j->cv);
        n = (long)m;
    } else if (j->done) {
        n = j->rc == 0 ? HTTP_STREAM_END : HTTP_STREAM_ERROR;
    } else {
        n = 0; /* nothing yet: called again */
    }
    pthread_mutex_unlock(&j->mu);
    return n;
}

static void job_free(void *arg) {
    export_job *j = arg;
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    atomic_store(&j->cancel, true);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (j->started) pthread_join(j->thread, NULL);
    segsvc_result_free(&j->res);
    if (j->slot) export_slot_give();
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->ring);
    free(j);
}

static int export_audit_step(store_conn *c, void *arg) {
    http_req *r = arg;
    seg_op *op = r->user;
    const json_t *sid = json_object_get(op->body, "segment_id");
    char target[40];
    if (sid)
        snprintf(target, sizeof target, "segment:%lld", (long long)json_integer_value(sid));
    else
        snprintf(target, sizeof target, "segment:adhoc");
    return store_audit(c, r->auth.tenant_id, op->actor, "segment.export", target,
                       (int64_t)op->res.count, op->detail);
}

static void export_start(http_req *r, http_resp *w, int rc) {
    seg_op *op = r->user;
    if (rc) {
        siyu_err err = {0};
        siyu_err_set(&err, rc, NULL, "the export could not be recorded in the audit log");
        http_error_err(w, &err);
        return;
    }
    export_job *j = calloc(1, sizeof *j);
    if (j) j->ring = malloc(EXPORT_RING);
    if (!j || !j->ring) {
        if (j) free(j);
        http_error(w, 503, "unavailable", "out of memory");
        return;
    }
    j->seg = r->ctx->seg;
    j->st = r->ctx->st;
    j->tenant_id = r->auth.tenant_id;
    j->fmt = op->fmt;
    j->res = op->res; /* the job takes the result and the slot over */
    memset(&op->res, 0, sizeof op->res);
    j->slot = op->slot;
    op->slot = false;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    if (pthread_create(&j->thread, NULL, job_run, j) != 0) {
        job_free(j);
        http_error(w, 503, "unavailable", "cannot start the export");
        return;
    }
    j->started = true;
    http_stream(w, 200, export_content_type(op->fmt), op->filename, job_read, j, job_free);
}

static void seg_export(http_req *r, http_resp *w) {
    static const json_field fields[] = {
        SEGMENT_FIELDS, {"format", JF_STRING, false, 32, false}, {NULL, 0, false, 0, false}};
    seg_op *op = op_from_body(r, w, fields);
    if (!op) return;
    const char *fmt = body_str(op, "format");
    if (export_format_parse(fmt ? fmt : "csv", &op->fmt) != 0) {
        http_error(w, 400, "invalid",
                   "field 'format' must be csv, xlsx, phone_md5 or phone_sha256");
        return;
    }
    if (export_format_has_phones(op->fmt) && r->auth.role != ROLE_ADMIN &&
        r->auth.role != ROLE_OPERATOR) {
        http_error(w, 403, "forbidden", "exporting phone numbers needs an admin or operator token");
        return;
    }
    if (!export_slot_take()) {
        siyu_err err = {0};
        siyu_err_set(&err, SIYU_EBUSY, NULL, "%d exports are running; retry later",
                     EXPORT_MAX_RUNNING);
        http_error_err(w, &err);
        return;
    }
    op->slot = true;
    if (!op_eval(r, w, op)) return;
    const json_t *sid = json_object_get(op->body, "segment_id");
    snprintf(op->detail, sizeof op->detail, "format=%s%s", export_format_name(op->fmt),
             sid ? " saved" : "");
    char when[32];
    time_t now = (time_t)siyu_now();
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y%m%d-%H%M%S", &tm);
    if (sid)
        snprintf(op->filename, sizeof op->filename, "segment-%lld-%s.%s",
                 (long long)json_integer_value(sid), when, export_extension(op->fmt));
    else
        snprintf(op->filename, sizeof op->filename, "segment-%s.%s", when,
                 export_extension(op->fmt));
    http_write(r, w, export_audit_step, r, export_start);
}

/* ---- saved segments ---- */

/* Adds the live count (or count null and count_error) to a segment JSON. */
static void add_live_count(http_req *r, json_t *seg) {
    const char *src = json_string_value(json_object_get(seg, "expr"));
    segsvc_result res;
    memset(&res, 0, sizeof res);
    siyu_err err = {0};
    int rc = r->ctx->seg ? segsvc_eval(r->ctx->seg, &r->auth, src ? src : "", src ? strlen(src) : 0,
                                       siyu_now(), &res, &err)
                         : SIYU_ECLOSED;
    if (rc == SIYU_ENOTFOUND) rc = 0; /* no engine yet: nobody */
    if (rc == 0) {
        json_object_set_new(seg, "count", json_integer((json_int_t)res.count));
        json_object_set_new(seg, "elapsed_ms", json_real((double)res.eval_us / 1000.0));
    } else {
        json_object_set_new(seg, "count", json_null());
        json_object_set_new(seg, "count_error",
                            json_string(rc == SIYU_ECLOSED ? "the segment engine is not running"
                                        : err.msg[0]       ? err.msg
                                                           : siyu_strerror(rc)));
    }
    segsvc_result_free(&res);
}

static void saved_list(http_req *r, http_resp *w) {
    siyu_err err = {0};
    int64_t limit = SAVED_PAGE_DEFAULT, after = 0;
    if (customer_arg_int(http_query(r, "limit"), "limit", 1, &limit, &err) ||
        limit > SEGMENT_PAGE_MAX) {
        http_error(w, 400, "invalid", "parameter 'limit' must be 1..%d", SEGMENT_PAGE_MAX);
        return;
    }
    if (customer_arg_int(http_query(r, "cursor"), "cursor", 0, &after, &err)) {
        http_error_err(w, &err);
        return;
    }
    store_conn *c = store_reader_acquire(r->ctx->st);
    if (!c) {
        http_error(w, 503, "unavailable", "store unavailable");
        return;
    }
    json_t *items = NULL;
    bool more = false;
    int rc = segment_list_json(c, r->auth.tenant_id, after, (int)limit, &items, &more, &err);
    store_reader_release(r->ctx->st, c);
    if (rc) {
        http_error_err(w, &err);
        return;
    }
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) add_live_count(r, it);
    json_t *next = json_null();
    if (more) {
        char s[24];
        snprintf(s, sizeof s, "%lld",
                 (long long)json_integer_value(
                     json_object_get(json_array_get(items, json_array_size(items) - 1), "id")));
        next = json_string(s);
    }
    http_json(w, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", next));
}

/* Replies with segment id and its live count (status 200 or 201). */
static void reply_saved(http_req *r, http_resp *w, int64_t id, int status) {
    store_conn *c = store_reader_acquire(r->ctx->st);
    if (!c) {
        http_error(w, 503, "unavailable", "store unavailable");
        return;
    }
    json_t *j = NULL;
    siyu_err err = {0};
    int rc = segment_get_json(c, r->auth.tenant_id, id, &j, &err);
    store_reader_release(r->ctx->st, c);
    if (rc) {
        http_error_err(w, &err);
        return;
    }
    add_live_count(r, j);
    http_json(w, status, j);
}

static void saved_get(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    reply_saved(r, w, id, 200);
}

/* Parses a saved segment's expr for the 400 with the caret; false after
 * replying. */
static bool expr_check(http_resp *w, const json_t *e) {
    if (!e) return true;
    expr_node *n = NULL;
    expr_err pe;
    memset(&pe, 0, sizeof pe);
    const char *s = json_string_value(e);
    size_t len = json_string_length(e);
    if (len == 0) return true; /* every customer in scope */
    if (expr_parse(s, len, &n, &pe) != 0) {
        reply_parse_error(w, &pe);
        return false;
    }
    expr_free(n);
    return true;
}

static void saved_done(http_req *r, http_resp *w, int rc) {
    seg_op *op = r->user;
    if (rc) {
        api_reply_write_error(w, rc, &op->in.err);
        return;
    }
    if (!strcmp(r->method, "DELETE")) {
        http_text(w, 204, NULL, NULL, 0);
        return;
    }
    reply_saved(r, w, op->in.id, !strcmp(r->method, "POST") ? 201 : 200);
}

static const json_field saved_fields[] = {
    {"name", JF_STRING, false, SEGMENT_NAME_MAX, false},
    {"expr", JF_STRING, false, EXPR_MAX_INPUT, false},
    {"description", JF_STRING, false, SEGMENT_DESCRIPTION_MAX, true},
    {NULL, 0, false, 0, false},
};

/* The op of a saved-segment write with its input filled from the body. */
static seg_op *saved_op(http_req *r, http_resp *w) {
    seg_op *op = op_from_body(r, w, saved_fields);
    if (!op) return NULL;
    const json_t *e = json_object_get(op->body, "expr");
    if (!expr_check(w, e)) return NULL;
    op->in = (segment_input){
        .tenant_id = r->auth.tenant_id,
        .name = body_str(op, "name"),
        .expr = json_string_value(e),
        .has_description = json_object_get(op->body, "description") != NULL,
        .description = body_str(op, "description"),
        .actor = op->actor,
    };
    return op;
}

static void saved_create(http_req *r, http_resp *w) {
    seg_op *op = saved_op(r, w);
    if (!op) return;
    if (!op->in.name || !op->in.expr) {
        http_error(w, 400, "invalid", "field '%s' is required", op->in.name ? "expr" : "name");
        return;
    }
    http_write(r, w, segment_create, &op->in, saved_done);
}

static void saved_update(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    seg_op *op = saved_op(r, w);
    if (!op) return;
    op->in.id = id;
    http_write(r, w, segment_update, &op->in, saved_done);
}

static void saved_delete(http_req *r, http_resp *w) {
    int64_t id;
    if (!http_param_id(r, w, 0, &id)) return;
    seg_op *op = api_op_new(r, w, sizeof *op, NULL, seg_op_free);
    if (!op) return;
    api_actor(r, op->actor);
    op->in = (segment_input){.tenant_id = r->auth.tenant_id, .id = id, .actor = op->actor};
    http_write(r, w, segment_delete, &op->in, saved_done);
}

const http_route api_segment_routes[] = {
    {"POST", "/api/v1/segments/count", seg_count, ROLES_TENANT,
     "Count a segment ({expr} or {segment_id}) within the token's scope: count, elapsed_ms, "
     "the canonical expr",
     0},
    {"POST", "/api/v1/segments/list", seg_list, ROLES_TENANT,
     "Customers of a segment in scope, sorted (sort: id|spent|orders_total|first_added|"
     "last_active|last_message, order: asc|desc, limit <= 1000, cursor)",
     0},
    {"POST", "/api/v1/segments/breakdown", seg_breakdown, ROLES_TENANT,
     "Top values of a segment by tag|channel|channel_group|employee|department|store|group|"
     "region|gender|stage|relationship_status (top <= 100): items [{id,name,count}], total",
     0},
    {"POST", "/api/v1/segments/export", seg_export, ROLES_TENANT,
     "Download a segment in scope (format: csv|xlsx|phone_md5|phone_sha256; phones need admin or "
     "operator); streamed, audited",
     0},
    {"GET", "/api/v1/segments", saved_list, ROLES_TENANT,
     "Saved segments with live counts in the token's scope (limit, cursor)", 0},
    {"POST", "/api/v1/segments", saved_create, ROLES_OFFICE,
     "Save a segment {name, expr, description}: the expression is parsed (400 with the "
     "position), names are unique per tenant (409)",
     0},
    {"GET", "/api/v1/segments/{id}", saved_get, ROLES_TENANT,
     "A saved segment with its live count in the token's scope", 0},
    {"PATCH", "/api/v1/segments/{id}", saved_update, ROLES_OFFICE,
     "Edit a saved segment's name, expr or description", 0},
    {"DELETE", "/api/v1/segments/{id}", saved_delete, ROLES_OFFICE, "Delete a saved segment", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
