/* sync.c — the full sync of one tenant (see sync.h for the phases) and the
 * sync_run rows that report it.
 *
 * A run, driven by sync_full_run:
 *
 *   sync_run_begin() ──> running/start
 *     phase_tags() ─> phase_employees() ─> phase_unassigned() ─>
 *     phase_customers() ─> phase_groups() ─> phase_reconcile()
 *     ──> run_finish(): done | failed (error)
 *
 * Each API page becomes one write step (step_e()) that applies it and
 * updates the run's sync_run row (the heartbeat), so a 100,000-customer sync
 * is a few thousand short steps interleaved with the server's own writes.
 * The customer batches and the group details are fetched by FETCHERS
 * threads (par_run); everything else runs on the calling thread.
 *
 * Nothing is ended or dismissed unless the listing that would have named it
 * completed: a failed batch of follow users fails the run before reconcile;
 * a failed batch of resigned members' userids only keeps their relationships
 * and groups out of the reconcile (ok_users / ok_owners).
 *
 * Memory: the run holds the userids, the listed chat ids and the ids of
 * relationships seen active (8 bytes each), plus one API page per fetcher.
 * Ownership: everything in `run` is freed by run_free; API answers are
 * decref'd after their step. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/tenant.h"
#include "sync/sync_int.h"
#include "util/log.h"

#define BATCH_USERS 100 /* batch/get_by_user userid_list and groupchat/list owner_filter */
#define BATCH_LIMIT 100 /* batch/get_by_user limit */
#define CHAT_LIMIT 1000 /* groupchat/list limit */
#define CHAT_FLUSH 20   /* groupchat/get answers per write step */
#define END_CHUNK 500   /* relationships ended per write step */
#define CURSOR_MAX 1024
#define PAGES_MAX 60000 /* pages per listing (100 members x 50,000 customers / 100 a page) */
#define FETCHERS 3 /* concurrent API readers per run (spec §3.11: 2–5 per corp) */

const char *const sync_entity_names[SYNC_ENTITY_COUNT] = {
    "tag_groups",    "tags",        "employees", "customers",
    "relationships", "follow_tags", "groups",    "members"};

int64_t sync_progress_changes(const sync_progress *p) {
    int64_t s = 0;
    for (int i = 0; i < SYNC_ENTITY_COUNT; i++)
        s += p->n[i].created + p->n[i].updated + p->n[i].ended;
    return s;
}

/* ---- sync_run rows ------------------------------------------------------ */

int sync_run_begin(store_conn *c, void *arg) {
    sync_begin *b = arg;
    wecom_app app;
    int rc = tenant_wecom_app(c, b->tenant_id, &app);
    memset(&app, 0, sizeof app);
    if (rc == SIYU_ENOTFOUND)
        return siyu_err_set(&b->err, SIYU_EINVAL, "secret",
                            "the tenant has no WeCom configuration (corp id and secret)");
    if (rc == SIYU_EINVAL)
        return siyu_err_set(&b->err, SIYU_EINVAL, "secret",
                            "the tenant has no WeCom secret: set one before syncing");
    if (rc != 0) return siyu_err_set(&b->err, rc, NULL, "cannot read the tenant");
    if (b->live)
        return siyu_err_set(&b->err, SIYU_ECONFLICT, NULL,
                            "a sync of this tenant is already running");
    int64_t now = siyu_now();
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE sync_run SET state='failed', error='stale: no progress for a while', "
           "finished_at=?2 WHERE tenant_id=?1 AND state='running' AND updated_at < ?3");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, b->tenant_id);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, now - SYNC_STALE_S);
    rc = store_stmt_run(st);
    if (rc != 0) return rc;
    st = store_conn_stmt(c, "INSERT INTO sync_run(tenant_id, kind, origin, state, phase, "
                            "counts, started_at, updated_at) VALUES(?1,'full',?2,'running',"
                            "'start','{}',?3,?3)");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, b->tenant_id);
    store_bind_text(st, 2, b->origin ? b->origin : "api");
    sqlite3_bind_int64(st, 3, now);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        b->run_id = store_conn_last_id(c);
        return 0;
    }
    rc = store_rc(rc);
    if (rc == SIYU_ECONFLICT)
        siyu_err_set(&b->err, rc, NULL, "a sync of this tenant is already running");
    return rc;
}

static int interrupt_step(store_conn *c, void *arg) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE sync_run SET state='failed', error='interrupted: the process stopped', "
           "finished_at=?1 WHERE state='running'");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, siyu_now());
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    *(int *)arg = store_conn_changes(c);
    return rc == SQLITE_DONE ? 0 : store_rc(rc);
}

int sync_run_interrupt_all(store *st) {
    int n = 0;
    int rc = store_write(st, interrupt_step, &n);
    return rc ? rc : n;
}

#define RUN_COLS                                                                                   \
    "id, tenant_id, kind, origin, state, phase, done, total, calls, requests, items, counts, "     \
    "error, started_at, updated_at, finished_at"

static json_t *col_text(sqlite3_stmt *st, int i) {
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? json_string((const char *)s) : json_null();
}

static json_t *run_row_json(sqlite3_stmt *st) {
    json_t *o = json_object();
    static const char *const names[] = {"id",   "tenant_id", "kind",  "origin",   "state", "phase",
                                        "done", "total",     "calls", "requests", "items", NULL};
    for (int i = 0; names[i]; i++)
        json_object_set_new(o, names[i],
                            sqlite3_column_type(st, i) == SQLITE_INTEGER
                                ? json_integer(sqlite3_column_int64(st, i))
                                : col_text(st, i));
    const char *counts = (const char *)sqlite3_column_text(st, 11);
    json_t *cj = counts ? json_loads(counts, 0, NULL) : NULL;
    int64_t changes = 0;
    const char *k;
    json_t *v;
    json_object_foreach(cj, k, v) {
        changes += json_integer_value(json_object_get(v, "created")) +
                   json_integer_value(json_object_get(v, "updated")) +
                   json_integer_value(json_object_get(v, "ended"));
    }
    json_object_set_new(o, "counts", cj ? cj : json_object());
    json_object_set_new(o, "changes", json_integer(changes));
    json_object_set_new(o, "error", col_text(st, 12));
    int64_t started = sqlite3_column_int64(st, 13);
    json_object_set_new(o, "started_at", json_integer(started));
    json_object_set_new(o, "updated_at", json_integer(sqlite3_column_int64(st, 14)));
    bool fin = sqlite3_column_type(st, 15) != SQLITE_NULL;
    int64_t end = fin ? sqlite3_column_int64(st, 15) : siyu_now();
    json_object_set_new(o, "finished_at", fin ? json_integer(end) : json_null());
    json_object_set_new(o, "elapsed_s", json_integer(end - started));
    return o;
}

json_t *sync_run_get_json(store_conn *c, int64_t tenant_id, int64_t run_id) {
    sqlite3_stmt *st = store_conn_stmt(
        c, run_id ? "SELECT " RUN_COLS " FROM sync_run WHERE tenant_id=?1 AND id=?2"
                  : "SELECT " RUN_COLS " FROM sync_run WHERE tenant_id=?1 ORDER BY id DESC "
                    "LIMIT 1");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    if (run_id) sqlite3_bind_int64(st, 2, run_id);
    json_t *o = sqlite3_step(st) == SQLITE_ROW ? run_row_json(st) : NULL;
    sqlite3_reset(st);
    return o;
}

json_t *sync_run_list_json(store_conn *c, int64_t tenant_id, int limit, int64_t before) {
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT " RUN_COLS " FROM sync_run WHERE tenant_id=?1 "
                                          "AND (?2 = 0 OR id < ?2) ORDER BY id DESC LIMIT ?3");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, tenant_id);
    sqlite3_bind_int64(st, 2, before);
    sqlite3_bind_int(st, 3, limit);
    json_t *a = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(a, run_row_json(st));
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        json_decref(a);
        return NULL;
    }
    return a;
}

/* ---- the run ------------------------------------------------------------ */

typedef struct ubatch {
    size_t from, to; /* users[from, to) */
    bool handover;   /* resigned members: a failure skips the batch */
} ubatch;

/* Concurrency: the customer and group-detail phases fetch with FETCHERS
 * threads. mu guards everything they share — p, seen, the ok lists, err,
 * and the observer call; write steps take it too (on the writer thread), so
 * nobody may hold mu while calling store_write. */
typedef struct run {
    pthread_mutex_t mu;
    atomic_bool failed;
    ubatch *ub;
    size_t nub;
    store *st;
    wecom_client *wc;
    wecom_app app;
    int64_t tenant, run_id;
    atomic_bool *cancel;
    sync_progress_fn fn;
    void *fn_arg;
    sync_progress p;
    int64_t t0_ms;
    siyu_err *err;
    char **users; /* follow userids [0, nfollow), then handover userids of resigned members */
    size_t nusers, nfollow, capusers;
    char **ok_users; /* sorted: userids whose customers were listed completely */
    size_t nok_users;
    char **ok_owners; /* sorted: owners whose groups were listed completely */
    size_t nok_owners;
    char **chats; /* listed chat ids, sorted after listing */
    size_t nchats, capchats;
    sync_i64v seen; /* relationship ids active in WeCom */
    int64_t cust_start, groups_start;
    bool customers_ok, groups_ok;
} run;

static void strv_free(char **v, size_t n) {
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static void run_free(run *r) {
    free(r->ub);
    free(r->ok_users); /* borrowed from users */
    free(r->ok_owners);
    strv_free(r->users, r->nusers);
    strv_free(r->chats, r->nchats);
    sync__i64v_free(&r->seen);
    memset(&r->app, 0, sizeof r->app);
}

static bool cancelled(run *r) {
    return r->cancel && atomic_load(r->cancel);
}

/* One API call; counts it. On failure err says which path and errcode, and
 * *errcode (may be NULL) holds WeCom's. Thread-safe. */
static int call_e(run *r, siyu_err *err, const char *path, const char *query, const json_t *body,
                  json_t **out, int *errcode) {
    *out = NULL;
    if (errcode) *errcode = 0;
    if (cancelled(r)) return siyu_err_set(err, SIYU_ECLOSED, NULL, "cancelled");
    wecom_res res;
    memset(&res, 0, sizeof res);
    int rc = wecom_call(r->wc, &r->app, path, query, body, out, &res);
    pthread_mutex_lock(&r->mu);
    r->p.calls++;
    r->p.requests += res.attempts > 0 ? res.attempts : 1;
    pthread_mutex_unlock(&r->mu);
    if (rc != 0) {
        json_decref(*out);
        *out = NULL;
        if (errcode) *errcode = res.errcode;
        return siyu_err_set(err, rc, NULL, "%s: %s (errcode %d: %.120s)", path,
                            wecom_errcode_name(res.errcode), res.errcode, res.errmsg);
    }
    return 0;
}

static int call(run *r, const char *path, const char *query, const json_t *body, json_t **out) {
    return call_e(r, r->err, path, query, body, out, NULL);
}

static void counts_text(const sync_progress *p, char *buf, size_t cap) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "{");
    for (int i = 0; i < SYNC_ENTITY_COUNT && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o,
                              "%s\"%s\":{\"created\":%lld,\"updated\":%lld,\"ended\":%lld}",
                              i ? "," : "", sync_entity_names[i], (long long)p->n[i].created,
                              (long long)p->n[i].updated, (long long)p->n[i].ended);
    if (o < cap) snprintf(buf + o, cap - o, "}");
}

/* Updates the run's row. state NULL = keep running. */
static int progress_write(store_conn *c, run *r, const char *state, const char *error) {
    char counts[1024];
    counts_text(&r->p, counts, sizeof counts);
    sqlite3_stmt *st = store_conn_stmt(
        c, "UPDATE sync_run SET phase=?2, done=?3, total=?4, calls=?5, requests=?6, items=?7, "
           "counts=?8, updated_at=?9, state=coalesce(?10, state), error=?11, "
           "finished_at=CASE WHEN ?10 IS NULL THEN NULL ELSE ?9 END WHERE id=?1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, r->run_id);
    store_bind_text(st, 2, r->p.phase);
    sqlite3_bind_int64(st, 3, r->p.done);
    sqlite3_bind_int64(st, 4, r->p.total);
    sqlite3_bind_int64(st, 5, r->p.calls);
    sqlite3_bind_int64(st, 6, r->p.requests);
    sqlite3_bind_int64(st, 7, r->p.items);
    sqlite3_bind_text(st, 8, counts, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 9, siyu_now());
    store_bind_text(st, 10, state);
    if (error)
        sqlite3_bind_text(st, 11, error, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 11);
    return store_stmt_run(st);
}

typedef int (*apply_fn)(sync_apply *a, run *r, void *arg);

typedef struct step_cmd {
    run *r;
    apply_fn fn;
    void *arg;
    int64_t fetched_ms;
} step_cmd;

static int step_run(store_conn *c, void *arg) {
    step_cmd *s = arg;
    run *r = s->r;
    pthread_mutex_lock(&r->mu);
    sync_counts saved[SYNC_ENTITY_COUNT];
    memcpy(saved, r->p.n, sizeof saved);
    sync_apply a = {.c = c,
                    .tenant = r->tenant,
                    .now = siyu_now(),
                    .fetched_at = s->fetched_ms / 1000,
                    .fetched_ms = s->fetched_ms,
                    .revive = true,
                    .n = r->p.n};
    int rc = s->fn ? s->fn(&a, r, s->arg) : 0;
    if (rc == 0) rc = progress_write(c, r, NULL, NULL);
    if (rc != 0) memcpy(r->p.n, saved, sizeof saved); /* rolled back */
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Applies fn(arg) (data fetched at fetched_ms, sync__wall_ms) and the
 * progress in one write step, then tells the observer. fn NULL = progress
 * only. Thread-safe; never call with mu held. */
static int step_e(run *r, siyu_err *err, apply_fn fn, void *arg, int64_t fetched_ms) {
    step_cmd s = {.r = r, .fn = fn, .arg = arg, .fetched_ms = fetched_ms};
    pthread_mutex_lock(&r->mu);
    r->p.elapsed_ms = sync__now_ms() - r->t0_ms;
    pthread_mutex_unlock(&r->mu);
    int rc = store_write(r->st, step_run, &s);
    if (rc != 0) {
        if (!err->code)
            siyu_err_set(err, rc, NULL, "%s: write failed: %s", r->p.phase, siyu_strerror(rc));
        return rc;
    }
    if (r->fn) {
        pthread_mutex_lock(&r->mu);
        r->fn(r->fn_arg, &r->p);
        pthread_mutex_unlock(&r->mu);
    }
    return 0;
}

static int step(run *r, apply_fn fn, void *arg, int64_t fetched_ms) {
    return step_e(r, r->err, fn, arg, fetched_ms);
}

/* ---- parallel units ------------------------------------------------------ */

typedef int (*unit_fn)(run *r, size_t i, siyu_err *err);

typedef struct par {
    run *r;
    unit_fn fn;
    size_t n;
    atomic_size_t next;
} par;

static void *par_main(void *arg) {
    par *p = arg;
    run *r = p->r;
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n || atomic_load(&r->failed) || cancelled(r)) break;
        siyu_err e = {0};
        int rc = p->fn(r, i, &e);
        if (rc == 0) continue;
        pthread_mutex_lock(&r->mu);
        if (!atomic_load(&r->failed)) { /* the first failure is the run's */
            *r->err = e;
            if (!r->err->code) r->err->code = rc;
            atomic_store(&r->failed, true);
        }
        pthread_mutex_unlock(&r->mu);
        break;
    }
    return NULL;
}

/* Runs fn(r, 0..n) on up to FETCHERS threads (this one included); stops at
 * the first failure. 0 or its code (r->err set). */
static int par_run(run *r, unit_fn fn, size_t n) {
    par p = {.r = r, .fn = fn, .n = n};
    atomic_init(&p.next, 0);
    pthread_t th[FETCHERS];
    int k = 0, want = n < FETCHERS ? (int)n : FETCHERS;
    for (; k < want - 1; k++)
        if (pthread_create(&th[k], NULL, par_main, &p) != 0) break;
    par_main(&p);
    for (int i = 0; i < k; i++)
        pthread_join(th[i], NULL);
    if (atomic_load(&r->failed)) return r->err->code ? r->err->code : SIYU_EIO;
    if (cancelled(r)) return siyu_err_set(r->err, SIYU_ECLOSED, NULL, "cancelled");
    return 0;
}

static void phase(run *r, const char *name, int64_t total) {
    r->p.phase = name;
    r->p.done = 0;
    r->p.total = total;
}

/* ---- phases ------------------------------------------------------------- */

static int apply_tags(sync_apply *a, run *r, void *arg) {
    const json_t *groups = json_object_get(arg, "tag_group");
    r->p.items += (int64_t)json_array_size(groups);
    return sync__tags_apply(a, groups, true);
}

static int phase_tags(run *r) {
    phase(r, "tags", 1);
    json_t *body = json_object(), *out = NULL;
    int64_t fetched = sync__wall_ms();
    int rc = call(r, "externalcontact/get_corp_tag_list", NULL, body, &out);
    json_decref(body);
    if (rc != 0) return rc;
    if (!json_is_array(json_object_get(out, "tag_group"))) {
        json_decref(out);
        return siyu_err_set(r->err, SIYU_EREMOTE, NULL, "get_corp_tag_list: no tag_group array");
    }
    r->p.done = 1;
    rc = step(r, apply_tags, out, fetched);
    json_decref(out);
    return rc;
}

static int apply_employees(sync_apply *a, run *r, void *arg) {
    (void)arg;
    for (size_t i = 0; i < r->nusers; i++) {
        int64_t id;
        int rc = sync__employee_ensure(a, r->users[i], &id);
        if (rc == SIYU_EINVAL) continue; /* not a valid userid: skipped */
        if (rc != 0) return rc;
    }
    return 0;
}

static int phase_employees(run *r) {
    phase(r, "employees", 1);
    json_t *out = NULL;
    int rc = call(r, "externalcontact/get_follow_user_list", NULL, NULL, &out);
    if (rc != 0) return rc;
    const json_t *list = json_object_get(out, "follow_user");
    size_t n = json_array_size(list), i;
    r->capusers = n + 16;
    r->users = calloc(r->capusers, sizeof *r->users);
    r->ok_users = calloc(r->capusers, sizeof *r->ok_users);
    r->ok_owners = calloc(r->capusers, sizeof *r->ok_owners);
    if (!r->users || !r->ok_users || !r->ok_owners) rc = SIYU_ENOMEM;
    const json_t *u;
    json_array_foreach(list, i, u) {
        if (rc != 0) break;
        const char *s = sync__nz(json_string_value(u));
        if (!s) continue;
        if (!(r->users[r->nusers] = strdup(s)))
            rc = SIYU_ENOMEM;
        else
            r->nusers++;
    }
    json_decref(out);
    if (rc != 0) return siyu_err_set(r->err, rc, NULL, "out of memory");
    r->nfollow = r->nusers;
    r->p.done = 1;
    r->p.items += (int64_t)r->nusers;
    return step(r, apply_employees, NULL, sync__wall_ms());
}

static int apply_contacts(sync_apply *a, run *r, void *arg) {
    const json_t *list = arg, *e;
    size_t i;
    json_array_foreach(list, i, e) {
        const json_t *ec = json_object_get(e, "external_contact");
        const json_t *fi = json_object_get(e, "follow_info");
        sync_follow f;
        json_t *own;
        sync__follow_parse(fi, &f, &own);
        int64_t cust = 0, rel = 0;
        int rc = sync__customer_upsert(a, ec, f.createtime, &cust);
        if (rc == 0 && sync__nz(f.userid)) rc = sync__follow_apply(a, cust, &f, &rel);
        json_decref(own);
        if (rc == SIYU_EINVAL) continue; /* a record without ids: skipped */
        if (rc != 0) return rc;
        if (rel && (rc = sync__i64v_push(&r->seen, rel)) != 0) return rc;
        r->p.items++;
    }
    return 0;
}

/* users[from, to) as a JSON array of strings (the caller json_decref's). */
static json_t *users_json(const run *r, size_t from, size_t to) {
    json_t *ul = json_array();
    for (size_t i = from; i < to; i++)
        json_array_append_new(ul, json_string(r->users[i]));
    return ul;
}

/* Copies the answer's next_cursor ("" when it has none) into cursor, the
 * cursor of page *pages (counted here). A cursor that does not fit, repeats
 * the one it follows, or would start page PAGES_MAX fails the listing
 * (SIYU_EREMOTE, err says why) instead of looping or asking for a wrong
 * page. */
static int cursor_next(siyu_err *err, const char *path, const json_t *out, char cursor[CURSOR_MAX],
                       int *pages) {
    const char *next = sync__jstr(out, "next_cursor");
    if (!next) next = "";
    if (strlen(next) >= CURSOR_MAX)
        return siyu_err_set(err, SIYU_EREMOTE, NULL, "%s: next_cursor longer than %d bytes", path,
                            CURSOR_MAX - 1);
    if (next[0] && !strcmp(next, cursor))
        return siyu_err_set(err, SIYU_EREMOTE, NULL, "%s: next_cursor repeats", path);
    if (next[0] && ++*pages >= PAGES_MAX)
        return siyu_err_set(err, SIYU_EREMOTE, NULL, "%s: more than %d pages", path, PAGES_MAX);
    memcpy(cursor, next, strlen(next) + 1);
    return 0;
}

/* push(r, id) for each non-empty string `field` of the objects in the
 * answer's array `key`; stops at the first error and returns it. */
static int each_id(run *r, const json_t *out, const char *key, const char *field,
                   int (*push)(run *, const char *)) {
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(out, key), i, e) {
        const char *id = sync__nz(sync__jstr(e, field));
        int rc = id ? push(r, id) : 0;
        if (rc != 0) return rc;
    }
    return 0;
}

/* One batch of ≤100 userids through every page of batch/get_by_user. */
static int customers_batch(run *r, size_t from, size_t to, siyu_err *err) {
    json_t *ul = users_json(r, from, to);
    char cursor[CURSOR_MAX] = "";
    int rc = 0, pages = 0;
    do {
        json_t *body =
            json_pack("{s:O,s:s,s:i}", "userid_list", ul, "cursor", cursor, "limit", BATCH_LIMIT);
        json_t *out = NULL;
        int64_t fetched = sync__wall_ms();
        rc = body ? call_e(r, err, "externalcontact/batch/get_by_user", NULL, body, &out, NULL)
                  : SIYU_ENOMEM;
        json_decref(body);
        if (rc != 0) break;
        json_t *list = json_object_get(out, "external_contact_list");
        if (json_is_array(list)) rc = step_e(r, err, apply_contacts, list, fetched);
        if (rc == 0)
            rc = cursor_next(err, "externalcontact/batch/get_by_user", out, cursor, &pages);
        json_decref(out);
    } while (rc == 0 && cursor[0]);
    json_decref(ul);
    return rc;
}

static int cmp_strp(const void *x, const void *y) {
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static bool in_sorted(char *const *v, size_t n, const char *s) {
    return n && bsearch(&s, v, n, sizeof *v, cmp_strp) != NULL;
}

/* Sorts users[nfollow, nusers) and drops duplicates and userids that are
 * follow users too (follow: the follow userids, sorted). */
static void users_compact(run *r, char **follow, size_t nfollow) {
    char **v = r->users + r->nfollow;
    size_t n = r->nusers - r->nfollow, k = 0;
    if (n) qsort(v, n, sizeof *v, cmp_strp);
    for (size_t i = 0; i < n; i++) {
        if ((k && !strcmp(v[k - 1], v[i])) || in_sorted(follow, nfollow, v[i])) {
            free(v[i]);
            continue;
        }
        v[k++] = v[i];
    }
    r->nusers = r->nfollow + k;
}

/* Appends userid to users (duplicates are dropped by users_compact, run
 * here when the array is full, and by the caller at the end). */
static int users_add(run *r, const char *userid, char **follow, size_t nfollow) {
    if (r->nusers + 1 >= r->capusers) {
        users_compact(r, follow, nfollow);
        if (r->nusers * 2 + 2 >= r->capusers) {
            size_t cap = r->capusers * 2 + 16;
            char **u = realloc(r->users, cap * sizeof *u);
            if (u) r->users = u;
            char **a = u ? realloc(r->ok_users, cap * sizeof *a) : NULL;
            if (a) r->ok_users = a;
            char **b = a ? realloc(r->ok_owners, cap * sizeof *b) : NULL;
            if (b) r->ok_owners = b;
            if (!b) return SIYU_ENOMEM;
            r->capusers = cap;
        }
    }
    if (!(r->users[r->nusers] = strdup(userid))) return SIYU_ENOMEM;
    r->nusers++;
    return 0;
}

/* users_add for each non-empty handover_userid of the answer's info list. */
static int handover_add(run *r, const json_t *out, char **follow, size_t nfollow) {
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(out, "info"), i, e) {
        const char *id = sync__nz(sync__jstr(e, "handover_userid"));
        int rc = id ? users_add(r, id, follow, nfollow) : 0;
        if (rc != 0) return rc;
    }
    return 0;
}

/* Customers of resigned members wait for inheritance: their relationships
 * are still WeCom's, but get_follow_user_list no longer names them. Their
 * handover userids join the customer and group listings; a failure here only
 * means their relationships are left as they are. */
static int phase_unassigned(run *r) {
    phase(r, "unassigned", 0);
    char cursor[CURSOR_MAX] = "";
    /* the follow userids, sorted, to drop handover userids that are both */
    char **follow = malloc((r->nfollow + 1) * sizeof *follow);
    if (!follow) return siyu_err_set(r->err, SIYU_ENOMEM, NULL, "out of memory");
    memcpy(follow, r->users, r->nfollow * sizeof *follow);
    if (r->nfollow) qsort(follow, r->nfollow, sizeof *follow, cmp_strp);
    int rc = 0, pages = 0;
    for (int page = 0; page < 1000; page++) {
        json_t *body = json_pack("{s:i,s:s}", "page_size", 1000, "cursor", cursor), *out = NULL;
        rc = body ? call(r, "externalcontact/get_unassigned_list", NULL, body, &out) : SIYU_ENOMEM;
        json_decref(body);
        if (rc != 0) break;
        rc = handover_add(r, out, follow, r->nfollow);
        if (rc == 0)
            rc = cursor_next(r->err, "externalcontact/get_unassigned_list", out, cursor, &pages);
        bool last = json_is_true(json_object_get(out, "is_last")) || !cursor[0];
        json_decref(out);
        if (rc != 0 || last) break;
        r->p.done = page + 1;
        if ((rc = step(r, NULL, NULL, 0)) != 0) break; /* heartbeat: not stale */
    }
    users_compact(r, follow, r->nfollow);
    free(follow);
    if (rc == SIYU_ENOMEM) return siyu_err_set(r->err, rc, NULL, "out of memory");
    if (rc != 0) {
        log_warn("sync: tenant=%lld: unassigned customers not listed: %s", (long long)r->tenant,
                 r->err->msg);
        siyu_err_clear(r->err);
    }
    r->p.items += (int64_t)(r->nusers - r->nfollow);
    return step(r, NULL, NULL, 0);
}

/* Runs fn (group listing) over users in batches of BATCH_USERS (follow
 * users, then handover users, never mixed), one batch at a time. A failed batch of follow users
 * fails the phase; of handover users it is logged and skipped. Completed batches' userids go to ok
 * (sorted at the end). */
static int users_batched(run *r, int (*fn)(run *, size_t, size_t), char **ok, size_t *nok) {
    *nok = 0;
    for (int part = 0; part < 2; part++) {
        size_t from = part ? r->nfollow : 0, to = part ? r->nusers : r->nfollow;
        for (size_t b = from; b < to; b += BATCH_USERS) {
            size_t e = b + BATCH_USERS < to ? b + BATCH_USERS : to;
            int rc = fn(r, b, e);
            if (rc != 0 && (part == 0 || rc == SIYU_ENOMEM || rc == SIYU_ECLOSED ||
                            r->err->code != SIYU_EREMOTE))
                return rc;
            if (rc != 0) {
                log_warn("sync: tenant=%lld: resigned members' %s skipped: %s",
                         (long long)r->tenant, r->p.phase, r->err->msg);
                siyu_err_clear(r->err);
                continue;
            }
            for (size_t i = b; i < e; i++)
                ok[(*nok)++] = r->users[i];
            r->p.done = (int64_t)e;
        }
    }
    if (*nok) qsort(ok, *nok, sizeof *ok, cmp_strp);
    return 0;
}

static int customers_unit(run *r, size_t i, siyu_err *err) {
    const ubatch *b = &r->ub[i];
    int rc = customers_batch(r, b->from, b->to, err);
    if (rc != 0) {
        if (!b->handover || rc == SIYU_ENOMEM || rc == SIYU_ECLOSED || err->code != SIYU_EREMOTE)
            return rc;
        log_warn("sync: tenant=%lld: resigned members' customers skipped: %s", (long long)r->tenant,
                 err->msg);
        return 0;
    }
    pthread_mutex_lock(&r->mu);
    for (size_t k = b->from; k < b->to; k++)
        r->ok_users[r->nok_users++] = r->users[k];
    r->p.done += (int64_t)(b->to - b->from);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static int phase_customers(run *r) {
    phase(r, "customers", (int64_t)r->nusers);
    r->cust_start = siyu_now();
    r->ub = calloc(r->nusers / BATCH_USERS + 3, sizeof *r->ub);
    if (!r->ub) return siyu_err_set(r->err, SIYU_ENOMEM, NULL, "out of memory");
    for (int part = 0; part < 2; part++) {
        size_t from = part ? r->nfollow : 0, to = part ? r->nusers : r->nfollow;
        for (size_t b = from; b < to; b += BATCH_USERS)
            r->ub[r->nub++] = (ubatch){b, b + BATCH_USERS < to ? b + BATCH_USERS : to, part == 1};
    }
    int rc = par_run(r, customers_unit, r->nub);
    if (rc != 0) return rc;
    if (r->nok_users) qsort(r->ok_users, r->nok_users, sizeof *r->ok_users, cmp_strp);
    r->customers_ok = true;
    return 0;
}

static int chats_push(run *r, const char *id) {
    if (r->nchats == r->capchats) {
        size_t cap = r->capchats ? r->capchats * 2 : 256;
        char **p = realloc(r->chats, cap * sizeof *p);
        if (!p) return SIYU_ENOMEM;
        r->chats = p;
        r->capchats = cap;
    }
    if (!(r->chats[r->nchats] = strdup(id))) return SIYU_ENOMEM;
    r->nchats++;
    return 0;
}

static int chats_list(run *r, size_t from, size_t to) {
    json_t *ul = users_json(r, from, to);
    char cursor[CURSOR_MAX] = "";
    int rc = 0, pages = 0;
    do {
        json_t *body = json_pack("{s:i,s:{s:O},s:s,s:i}", "status_filter", 0, "owner_filter",
                                 "userid_list", ul, "cursor", cursor, "limit", CHAT_LIMIT);
        json_t *out = NULL;
        rc = body ? call(r, "externalcontact/groupchat/list", NULL, body, &out) : SIYU_ENOMEM;
        json_decref(body);
        if (rc != 0) break;
        rc = each_id(r, out, "group_chat_list", "chat_id", chats_push);
        if (rc == 0)
            rc = cursor_next(r->err, "externalcontact/groupchat/list", out, cursor, &pages);
        json_decref(out);
        if (rc == 0) rc = step(r, NULL, NULL, 0); /* heartbeat */
    } while (rc == 0 && cursor[0]);
    json_decref(ul);
    return rc;
}

static int apply_chats(sync_apply *a, run *r, void *arg) {
    const json_t *list = arg, *g;
    size_t i;
    json_array_foreach(list, i, g) {
        /* Members always compared: the versions chaining since a group's
         * create callback says nothing of the members it started with. */
        int rc = sync__chat_apply(a, g, true);
        if (rc == SIYU_EINVAL) continue;
        if (rc != 0) return rc;
        r->p.items++;
    }
    return 0;
}

/* groupchat/get for chats[i*CHAT_FLUSH ...], applied in one step. A chat
 * WeCom refuses (dismissed meanwhile, ...) is skipped. */
static int chats_unit(run *r, size_t i, siyu_err *err) {
    size_t from = i * CHAT_FLUSH,
           to = from + CHAT_FLUSH < r->nchats ? from + CHAT_FLUSH : r->nchats;
    json_t *pending = json_array();
    int64_t fetched = sync__wall_ms();
    int rc = 0;
    for (size_t k = from; rc == 0 && k < to; k++) {
        json_t *body = json_pack("{s:s,s:i}", "chat_id", r->chats[k], "need_name", 1), *out;
        int ec = 0;
        rc = call_e(r, err, "externalcontact/groupchat/get", NULL, body, &out, &ec);
        json_decref(body);
        if (rc == SIYU_EREMOTE && wecom_errcode_class(ec) == WECOM_EC_REJECT) {
            siyu_err_clear(err);
            rc = 0;
            continue;
        }
        json_t *gc = json_object_get(out, "group_chat");
        if (rc == 0 && json_is_object(gc)) json_array_append(pending, gc);
        json_decref(out);
    }
    if (rc == 0) {
        pthread_mutex_lock(&r->mu);
        r->p.done += (int64_t)(to - from);
        pthread_mutex_unlock(&r->mu);
        rc = step_e(r, err, apply_chats, pending, fetched);
    }
    json_decref(pending);
    return rc;
}

static int phase_groups(run *r) {
    phase(r, "groups", 0);
    r->groups_start = siyu_now();
    int rc = users_batched(r, chats_list, r->ok_owners, &r->nok_owners);
    if (rc != 0) return rc;
    r->p.done = 0;
    if (r->nchats) qsort(r->chats, r->nchats, sizeof *r->chats, cmp_strp);
    size_t k = 0; /* unique */
    for (size_t i = 0; i < r->nchats; i++) {
        if (k && !strcmp(r->chats[k - 1], r->chats[i])) {
            free(r->chats[i]);
            continue;
        }
        r->chats[k++] = r->chats[i];
    }
    r->nchats = k;
    r->p.total = (int64_t)k;
    rc = par_run(r, chats_unit, (r->nchats + CHAT_FLUSH - 1) / CHAT_FLUSH);
    if (rc == 0) r->groups_ok = true;
    return rc;
}

typedef struct end_arg {
    const int64_t *ids;
    size_t n;
} end_arg;

static int apply_end(sync_apply *a, run *r, void *arg) {
    end_arg *e = arg;
    return sync__rels_end(a, e->ids, e->n, r->cust_start);
}

static int apply_prune(sync_apply *a, run *r, void *arg) {
    (void)arg;
    int rc = sync__follow_tags_prune(a, 0, 0);
    if (rc == 0 && r->groups_ok)
        rc = sync__chats_dismiss_missing(a, r->chats, r->nchats, r->ok_owners, r->nok_owners,
                                         r->groups_start);
    return rc;
}

static int cmp_i64(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

/* Active relationships of the tenant not seen in this run (untouched since
 * the customers phase began). */
static int missing_rels(run *r, sync_i64v *out) {
    store_conn *c = store_reader_acquire(r->st);
    if (!c) return SIYU_EIO;
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT r.id, e.userid FROM relationship r JOIN employee e ON e.id=r.employee_id "
           "WHERE r.tenant_id=?1 AND r.status='active' AND r.updated_at < ?2");
    int rc = st ? 0 : SIYU_EIO, src = SQLITE_DONE;
    if (st) {
        sqlite3_bind_int64(st, 1, r->tenant);
        sqlite3_bind_int64(st, 2, r->cust_start);
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(st, 0);
            bool seen = r->seen.n && bsearch(&id, r->seen.v, r->seen.n, sizeof id, cmp_i64);
            /* Only members whose customers WeCom listed completely. */
            if (!seen &&
                !in_sorted(r->ok_users, r->nok_users, (const char *)sqlite3_column_text(st, 1)))
                seen = true;
            if (!seen && (rc = sync__i64v_push(out, id)) != 0) break;
        }
        sqlite3_reset(st);
        if (rc == 0 && src != SQLITE_DONE && src != SQLITE_ROW) rc = store_rc(src);
    }
    store_reader_release(r->st, c);
    return rc;
}

static int phase_reconcile(run *r) {
    phase(r, "reconcile", 0);
    sync_i64v gone = {0};
    int rc = 0;
    if (r->customers_ok) {
        if (r->seen.n) qsort(r->seen.v, r->seen.n, sizeof *r->seen.v, cmp_i64);
        rc = missing_rels(r, &gone);
        r->p.total = (int64_t)gone.n;
        for (size_t i = 0; rc == 0 && i < gone.n; i += END_CHUNK) {
            end_arg e = {.ids = gone.v + i, .n = gone.n - i < END_CHUNK ? gone.n - i : END_CHUNK};
            r->p.done = (int64_t)(i + e.n);
            rc = step(r, apply_end, &e, sync__wall_ms());
        }
    }
    sync__i64v_free(&gone);
    if (rc == 0) rc = step(r, apply_prune, NULL, sync__wall_ms());
    return rc;
}

/* Writes the final state. */
typedef struct finish_arg {
    run *r;
    const char *state, *error;
} finish_arg;

static int finish_step(store_conn *c, void *arg) {
    finish_arg *f = arg;
    pthread_mutex_lock(&f->r->mu);
    int rc = progress_write(c, f->r, f->state, f->error);
    pthread_mutex_unlock(&f->r->mu);
    return rc;
}

static void run_finish(run *r, int rc) {
    r->p.elapsed_ms = sync__now_ms() - r->t0_ms;
    const char *phase_failed = r->p.phase;
    r->p.phase = rc == 0 ? "finished" : phase_failed;
    finish_arg f = {
        .r = r, .state = rc == 0 ? "done" : "failed", .error = rc == 0 ? NULL : r->err->msg};
    int wrc = store_write(r->st, finish_step, &f);
    if (wrc != 0)
        log_error("sync: tenant=%lld run=%lld: cannot record the end: %s", (long long)r->tenant,
                  (long long)r->run_id, siyu_strerror(wrc));
    if (r->fn) r->fn(r->fn_arg, &r->p);
}

static int load_app(run *r) {
    store_conn *c = store_reader_acquire(r->st);
    if (!c) return siyu_err_set(r->err, SIYU_EIO, NULL, "store unavailable");
    int rc = tenant_wecom_app(c, r->tenant, &r->app);
    store_reader_release(r->st, c);
    if (rc != 0)
        return siyu_err_set(r->err, rc == SIYU_EIO ? rc : SIYU_EINVAL, "secret",
                            "the tenant has no usable WeCom corp id and secret");
    return 0;
}

int sync_full_run(store *st, wecom_client *wc, int64_t tenant_id, int64_t run_id,
                  atomic_bool *cancel, sync_progress_fn fn, void *fn_arg, sync_progress *out,
                  siyu_err *err) {
    siyu_err local = {0};
    run r = {.st = st,
             .wc = wc,
             .tenant = tenant_id,
             .run_id = run_id,
             .cancel = cancel,
             .fn = fn,
             .fn_arg = fn_arg,
             .t0_ms = sync__now_ms(),
             .err = err ? err : &local};
    siyu_err_clear(r.err);
    pthread_mutex_init(&r.mu, NULL);
    atomic_init(&r.failed, false);
    r.p.run_id = run_id;
    r.p.tenant_id = tenant_id;
    r.p.phase = "start";
    log_info("sync: tenant=%lld run=%lld started", (long long)tenant_id, (long long)run_id);
    int rc = load_app(&r);
    if (rc == 0) rc = phase_tags(&r);
    if (rc == 0) rc = phase_employees(&r);
    if (rc == 0) rc = phase_unassigned(&r);
    if (rc == 0) rc = phase_customers(&r);
    if (rc == 0) rc = phase_groups(&r);
    if (rc == 0) rc = phase_reconcile(&r);
    run_finish(&r, rc);
    if (rc == 0)
        log_info("sync: tenant=%lld run=%lld done in %lld ms: calls=%lld changes=%lld",
                 (long long)tenant_id, (long long)run_id, (long long)r.p.elapsed_ms,
                 (long long)r.p.calls, (long long)sync_progress_changes(&r.p));
    else
        log_warn("sync: tenant=%lld run=%lld failed in phase %s: %s", (long long)tenant_id,
                 (long long)run_id, r.p.phase, r.err->msg);
    if (out) *out = r.p;
    run_free(&r);
    pthread_mutex_destroy(&r.mu);
    return rc;
}
