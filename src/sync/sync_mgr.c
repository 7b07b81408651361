/* sync_mgr.c — the sync manager of `siyu serve`: full-sync threads, the
 * periodic scheduler and the callback-driven refresh workers.
 *
 * Threads:
 *   job (one per running full sync)  sync_full_run(), then marks itself
 *                                    finished; the scheduler joins it
 *   scheduler (1)                    every second: reaps finished jobs; every
 *                                    few seconds with interval_s > 0: starts
 *                                    due syncs (last start + interval, and
 *                                    not before the manager's start +
 *                                    interval) and the syncs of tenants
 *                                    flagged by a queue overflow; every
 *                                    transfer_poll_s: polls transfer_result
 *                                    for long-waiting transfers
 *   refresh workers (N)              pop a queued refresh, make its API read,
 *                                    apply it in one write step
 *
 * The refresh queue: a pool of queue_max items, a FIFO through qnext and a
 * hash of chains through hnext, both by pool index (-1 = none), all guarded
 * by mu. An item stays in the hash while queued and while a worker runs it.
 * An item equal to a queued one (tenant, kind, ids) is dropped as a
 * duplicate; equal to a running one, it marks that one to run again once
 * done (so two workers never fetch the same key at once, and the last
 * answer applied is the newest); a full queue flags the tenant for a full
 * sync instead.
 *
 * Ownership: the manager owns its jobs, items and threads; st and wc are
 * borrowed and must outlive sync_mgr_stop(). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/inherit.h"
#include "store/org.h"
#include "store/tenant.h"
#include "store/transfer.h"
#include "sync/sync_int.h"
#include "util/log.h"

#define TENANTS_MAX 4096
#define SCHEDULE_EVERY_S 5
#define CONTACT_PAGES_MAX 20
#define NOSECRET_TTL_S 10

typedef enum rf_kind { RF_CONTACT, RF_PAIR_END, RF_TAG, RF_TAG_GROUP, RF_TAG_ALL, RF_CHAT } rf_kind;

typedef struct rf_item {
    int64_t tenant;
    rf_kind kind;
    char a[160]; /* external_userid, tag/group id or chat id */
    char b[80];  /* userid */
    uint32_t hash;
    int qnext, hnext;
    bool running; /* a worker has it */
    bool rerun;   /* an equal item came while running: queue it again after */
} rf_item;

typedef struct job {
    struct sync_mgr *m;
    int64_t tenant, run_id;
    pthread_t th;
    atomic_bool finished;
    struct job *next;
} job;

struct sync_mgr {
    store *st;
    wecom_client *wc;
    sync_mgr_opts o;
    int64_t started_at;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers: an item or stopping */
    pthread_cond_t tick; /* scheduler: stopping */
    bool stopping;
    atomic_bool cancel;
    job *jobs;
    pthread_t sched;
    bool sched_started;
    pthread_t *workers;
    int nworkers;
    /* refresh queue */
    rf_item *pool;
    int *buckets;
    int nbuckets;
    int free_head, qhead, qtail, queued, inflight;
    /* tenants whose refreshes overflowed */
    int64_t flagged[64];
    int nflagged;
    /* tenants found without a WeCom secret: their callbacks queue nothing
     * until the entry expires (NOSECRET_TTL_S) */
    struct {
        int64_t tenant, until;
    } nosecret[16];
    atomic_long st_queued, st_done, st_deduped, st_dropped, st_failed, st_calls;
};

/* ---- queue -------------------------------------------------------------- */

static uint32_t item_hash(int64_t tenant, rf_kind kind, const char *a, const char *b) {
    uint32_t h = 2166136261u;
    h = (h ^ (uint32_t)tenant) * 16777619u;
    h = (h ^ (uint32_t)kind) * 16777619u;
    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ 0xff) * 16777619u;
    for (const char *p = b; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

static bool item_eq(const rf_item *x, int64_t tenant, rf_kind kind, const char *a, const char *b) {
    return x->tenant == tenant && x->kind == kind && !strcmp(x->a, a) && !strcmp(x->b, b);
}

static void flag_tenant(sync_mgr *m, int64_t tenant) {
    for (int i = 0; i < m->nflagged; i++)
        if (m->flagged[i] == tenant) return;
    if (m->nflagged < (int)(sizeof m->flagged / sizeof *m->flagged))
        m->flagged[m->nflagged++] = tenant;
}

static void unflag_tenant(sync_mgr *m, int64_t tenant) {
    for (int i = 0; i < m->nflagged; i++)
        if (m->flagged[i] == tenant) {
            m->flagged[i] = m->flagged[--m->nflagged];
            return;
        }
}

/* Under mu: whether tenant was recently found without a secret. */
static bool nosecret_known(sync_mgr *m, int64_t tenant) {
    int64_t now = siyu_now();
    for (size_t i = 0; i < sizeof m->nosecret / sizeof *m->nosecret; i++)
        if (m->nosecret[i].tenant == tenant && m->nosecret[i].until > now) return true;
    return false;
}

static void nosecret_note(sync_mgr *m, int64_t tenant) {
    pthread_mutex_lock(&m->mu);
    size_t k = 0;
    for (size_t i = 0; i < sizeof m->nosecret / sizeof *m->nosecret; i++) {
        if (m->nosecret[i].tenant == tenant) {
            k = i;
            break;
        }
        if (m->nosecret[i].until < m->nosecret[k].until) k = i; /* the oldest */
    }
    m->nosecret[k].tenant = tenant;
    m->nosecret[k].until = siyu_now() + NOSECRET_TTL_S;
    pthread_mutex_unlock(&m->mu);
}

/* Under mu: appends pool item i to the FIFO and wakes a worker. */
static void fifo_push(sync_mgr *m, int i) {
    m->pool[i].qnext = -1;
    if (m->qtail >= 0)
        m->pool[m->qtail].qnext = i;
    else
        m->qhead = i;
    m->qtail = i;
    m->queued++;
    pthread_cond_signal(&m->wake);
}

/* Queues (tenant, kind, a, b) unless an equal item waits or runs (then it
 * runs again after). */
static void enqueue(sync_mgr *m, int64_t tenant, rf_kind kind, const char *a, const char *b) {
    if (!a) a = "";
    if (!b) b = "";
    if (strlen(a) >= sizeof m->pool[0].a || strlen(b) >= sizeof m->pool[0].b) {
        atomic_fetch_add(&m->st_dropped, 1);
        return;
    }
    uint32_t h = item_hash(tenant, kind, a, b);
    pthread_mutex_lock(&m->mu);
    if (nosecret_known(m, tenant)) {
        pthread_mutex_unlock(&m->mu);
        atomic_fetch_add(&m->st_dropped, 1);
        return;
    }
    int *bucket = &m->buckets[h % (uint32_t)m->nbuckets];
    for (int i = *bucket; i >= 0; i = m->pool[i].hnext)
        if (m->pool[i].hash == h && item_eq(&m->pool[i], tenant, kind, a, b)) {
            if (m->pool[i].running) m->pool[i].rerun = true;
            pthread_mutex_unlock(&m->mu);
            atomic_fetch_add(&m->st_deduped, 1);
            return;
        }
    if (m->stopping || m->free_head < 0) {
        if (!m->stopping) {
            flag_tenant(m, tenant);
            atomic_fetch_add(&m->st_dropped, 1);
        }
        pthread_mutex_unlock(&m->mu);
        return;
    }
    int i = m->free_head;
    rf_item *it = &m->pool[i];
    m->free_head = it->qnext;
    it->tenant = tenant;
    it->kind = kind;
    snprintf(it->a, sizeof it->a, "%s", a);
    snprintf(it->b, sizeof it->b, "%s", b);
    it->hash = h;
    it->hnext = *bucket;
    it->running = it->rerun = false;
    *bucket = i;
    fifo_push(m, i);
    pthread_mutex_unlock(&m->mu);
    atomic_fetch_add(&m->st_queued, 1);
}

/* Pops the oldest item into *out and *idx (its pool index, for
 * item_finish); false when stopping. The item stays in the hash. */
static bool dequeue(sync_mgr *m, rf_item *out, int *idx) {
    pthread_mutex_lock(&m->mu);
    while (!m->stopping && m->qhead < 0)
        pthread_cond_wait(&m->wake, &m->mu);
    if (m->stopping) {
        pthread_mutex_unlock(&m->mu);
        return false;
    }
    int i = m->qhead;
    rf_item *it = &m->pool[i];
    m->qhead = it->qnext;
    if (m->qhead < 0) m->qtail = -1;
    it->running = true;
    it->rerun = false;
    *out = *it;
    *idx = i;
    m->queued--;
    m->inflight++;
    pthread_mutex_unlock(&m->mu);
    return true;
}

/* A worker is done with pool item i: queued again when an equal item came
 * meanwhile, else out of the hash and free. */
static void item_finish(sync_mgr *m, int i) {
    pthread_mutex_lock(&m->mu);
    rf_item *it = &m->pool[i];
    m->inflight--;
    it->running = false;
    if (it->rerun && !m->stopping) {
        it->rerun = false;
        fifo_push(m, i);
        pthread_mutex_unlock(&m->mu);
        atomic_fetch_add(&m->st_queued, 1);
        return;
    }
    int *p = &m->buckets[it->hash % (uint32_t)m->nbuckets];
    while (*p != i)
        p = &m->pool[*p].hnext;
    *p = it->hnext;
    it->qnext = m->free_head;
    m->free_head = i;
    pthread_mutex_unlock(&m->mu);
}

/* ---- refresh ------------------------------------------------------------ */

void sync_chat_version(store_conn *c, int64_t tenant_id, const char *chat_id, char *buf,
                       size_t cap) {
    buf[0] = 0;
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT member_version FROM group_chat WHERE "
                                          "tenant_id=?1 AND chat_id=?2");
    if (!st || !chat_id) return;
    sqlite3_bind_int64(st, 1, tenant_id);
    store_bind_text(st, 2, chat_id);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(buf, cap, "%s", sqlite3_column_text(st, 0));
    sqlite3_reset(st);
}

void sync_mgr_notify(sync_mgr *m, int64_t tenant_id, const wecom_event *ev,
                     const char *prev_mem_ver) {
    if (!m || !ev) return;
    const char *ext = sync__nz(ev->external_user_id), *uid = sync__nz(ev->user_id);
    switch (ev->kind) {
    case WECOM_EV_ADD_EXTERNAL_CONTACT:
    case WECOM_EV_ADD_HALF_EXTERNAL_CONTACT:
    case WECOM_EV_EDIT_EXTERNAL_CONTACT:
        if (ext && uid) enqueue(m, tenant_id, RF_CONTACT, ext, uid);
        return;
    case WECOM_EV_DEL_EXTERNAL_CONTACT:
    case WECOM_EV_DEL_FOLLOW_USER:
        if (ext && uid) enqueue(m, tenant_id, RF_PAIR_END, ext, uid);
        return;
    case WECOM_EV_TAG_CREATE:
    case WECOM_EV_TAG_UPDATE:
        if (sync__nz(ev->id))
            enqueue(m, tenant_id,
                    ev->tag_type && !strcmp(ev->tag_type, "tag_group") ? RF_TAG_GROUP : RF_TAG,
                    ev->id, NULL);
        return;
    case WECOM_EV_TAG_SHUFFLE:
        enqueue(m, tenant_id, RF_TAG_ALL, NULL, NULL);
        return;
    case WECOM_EV_CHAT_CREATE:
        if (sync__nz(ev->chat_id)) enqueue(m, tenant_id, RF_CHAT, ev->chat_id, NULL);
        return;
    case WECOM_EV_CHAT_UPDATE: {
        if (!sync__nz(ev->chat_id)) return;
        const char *d = ev->update_detail ? ev->update_detail : "";
        bool members = !strcmp(d, "add_member") || !strcmp(d, "del_member");
        /* The ingest applied MemChangeList and stored CurMemVer: nothing to
         * fetch when the versions chain. */
        if (members && sync__nz(ev->last_mem_ver) && prev_mem_ver &&
            !strcmp(prev_mem_ver, ev->last_mem_ver))
            return;
        enqueue(m, tenant_id, RF_CHAT, ev->chat_id, NULL);
        return;
    }
    default:
        return;
    }
}

typedef struct rf_cmd {
    const rf_item *it;
    json_t *out;          /* API answer */
    const json_t *follow; /* RF_CONTACT: the follow_user entry of it->b */
    int64_t fetched_ms;   /* sync__wall_ms() before the API read */
    sync_counts n[SYNC_ENTITY_COUNT];
} rf_cmd;

static int rf_step(store_conn *c, void *arg) {
    rf_cmd *cmd = arg;
    const rf_item *it = cmd->it;
    sync_apply a = {.c = c,
                    .tenant = it->tenant,
                    .now = siyu_now(),
                    .fetched_at = cmd->fetched_ms / 1000,
                    .fetched_ms = cmd->fetched_ms,
                    .placeholders = true,
                    .n = cmd->n};
    switch (it->kind) {
    case RF_CONTACT: {
        int64_t cust = 0;
        sync_follow f;
        json_t *own = NULL;
        if (cmd->follow) sync__follow_parse(cmd->follow, &f, &own);
        int rc = sync__customer_upsert(&a, json_object_get(cmd->out, "external_contact"),
                                       cmd->follow ? f.createtime : 0, &cust);
        if (rc == 0 && cmd->follow) rc = sync__follow_apply(&a, cust, &f, NULL);
        json_decref(own);
        return rc == SIYU_EINVAL ? 0 : rc;
    }
    case RF_PAIR_END: {
        int64_t cust, emp;
        int rc = sync__customer_find(&a, it->a, &cust);
        if (rc == 0) rc = org_employee_find(c, it->tenant, it->b, &emp);
        if (rc == SIYU_ENOTFOUND) return 0;
        return rc ? rc : sync__follow_tags_prune(&a, cust, emp);
    }
    case RF_TAG:
    case RF_TAG_GROUP:
    case RF_TAG_ALL:
        return sync__tags_apply(&a, json_object_get(cmd->out, "tag_group"), false);
    case RF_CHAT: {
        const json_t *gc = json_object_get(cmd->out, "group_chat");
        return json_is_object(gc) ? sync__chat_apply(&a, gc, true) : 0;
    }
    }
    return 0;
}

static int rf_call(sync_mgr *m, const wecom_app *app, const char *path, const char *query,
                   json_t *body, json_t **out, wecom_res *res) {
    memset(res, 0, sizeof *res);
    int rc = wecom_call(m->wc, app, path, query, body, out, res);
    json_decref(body);
    atomic_fetch_add(&m->st_calls, 1);
    return rc;
}

/* externalcontact/get, following next_cursor until it->b's follow record
 * shows up. */
static int rf_contact_fetch(sync_mgr *m, const wecom_app *app, rf_cmd *cmd, wecom_res *res) {
    char *ext = wecom_escape(cmd->it->a);
    if (!ext) return SIYU_ENOMEM;
    char cursor[512] = "";
    int rc = 0;
    for (int page = 0; page < CONTACT_PAGES_MAX; page++) {
        char *cur = wecom_escape(cursor);
        char query[2560]; /* both escaped: 159 * 3 + 511 * 3 and the names */
        if (!cur) {
            rc = SIYU_ENOMEM;
            break;
        }
        int qn = snprintf(query, sizeof query, "external_userid=%s%s%s", ext,
                          cursor[0] ? "&cursor=" : "", cur);
        free(cur);
        if (qn < 0 || (size_t)qn >= sizeof query) {
            rc = SIYU_ETOOBIG;
            break;
        }
        json_t *out = NULL;
        rc = rf_call(m, app, "externalcontact/get", query, NULL, &out, res);
        if (rc != 0) break;
        size_t i;
        const json_t *f, *found = NULL;
        json_array_foreach(json_object_get(out, "follow_user"), i, f) {
            const char *u = sync__jstr(f, "userid");
            if (u && !strcmp(u, cmd->it->b)) found = f;
        }
        const char *next = sync__jstr(out, "next_cursor");
        if (!next) next = "";
        /* a cursor that does not fit or repeats: no further page */
        bool more = next[0] && strlen(next) < sizeof cursor && strcmp(next, cursor);
        if (next[0] && !more)
            log_warn("sync refresh: tenant=%lld: externalcontact/get next_cursor %s",
                     (long long)cmd->it->tenant,
                     strlen(next) >= sizeof cursor ? "too long" : "repeats");
        snprintf(cursor, sizeof cursor, "%s", more ? next : "");
        if (found) { /* this page describes the contact and the follow record */
            json_decref(cmd->out);
            cmd->out = out;
            cmd->follow = found;
            break;
        }
        if (!cmd->out)
            cmd->out = out; /* the contact itself, from the first page */
        else
            json_decref(out);
        if (!cursor[0]) break;
    }
    free(ext);
    return rc;
}

static void rf_process(sync_mgr *m, const rf_item *it) {
    wecom_app app;
    store_conn *c = store_reader_acquire(m->st);
    int rc = c ? tenant_wecom_app(c, it->tenant, &app) : SIYU_EIO;
    if (c) store_reader_release(m->st, c);
    if (rc != 0) { /* no secret: nothing to ask WeCom with */
        if (rc != SIYU_EIO) nosecret_note(m, it->tenant);
        atomic_fetch_add(&m->st_dropped, 1);
        return;
    }
    rf_cmd cmd = {.it = it, .fetched_ms = sync__wall_ms()};
    wecom_res res = {0};
    switch (it->kind) {
    case RF_CONTACT:
        rc = rf_contact_fetch(m, &app, &cmd, &res);
        break;
    case RF_PAIR_END:
        break;
    case RF_TAG:
    case RF_TAG_GROUP:
        rc = rf_call(m, &app, "externalcontact/get_corp_tag_list", NULL,
                     json_pack("{s:[s]}", it->kind == RF_TAG ? "tag_id" : "group_id", it->a),
                     &cmd.out, &res);
        break;
    case RF_TAG_ALL:
        rc = rf_call(m, &app, "externalcontact/get_corp_tag_list", NULL, json_object(), &cmd.out,
                     &res);
        break;
    case RF_CHAT:
        rc = rf_call(m, &app, "externalcontact/groupchat/get", NULL,
                     json_pack("{s:s,s:i}", "chat_id", it->a, "need_name", 1), &cmd.out, &res);
        break;
    }
    memset(&app, 0, sizeof app);
    /* WeCom no longer has it (84061 no relationship, 40096 unknown customer,
     * 90501 not a customer group, ...): the callbacks that removed it did or
     * will do the rest. */
    bool gone = rc == SIYU_EREMOTE && wecom_errcode_class(res.errcode) == WECOM_EC_REJECT;
    if (rc == 0) rc = store_write(m->st, rf_step, &cmd);
    json_decref(cmd.out);
    if (rc == 0 || gone) {
        atomic_fetch_add(&m->st_done, 1);
        return;
    }
    atomic_fetch_add(&m->st_failed, 1);
    if (rc == SIYU_EREMOTE)
        log_warn("sync refresh: tenant=%lld kind=%d: %s (errcode %d)", (long long)it->tenant,
                 (int)it->kind, wecom_errcode_name(res.errcode), res.errcode);
    else
        log_warn("sync refresh: tenant=%lld kind=%d: %s", (long long)it->tenant, (int)it->kind,
                 siyu_strerror(rc));
}

static void *worker_main(void *arg) {
    sync_mgr *m = arg;
    rf_item it;
    int idx;
    while (dequeue(m, &it, &idx)) {
        rf_process(m, &it);
        item_finish(m, idx);
    }
    return NULL;
}

/* ---- full-sync jobs ----------------------------------------------------- */

static void *job_main(void *arg) {
    job *j = arg;
    sync_mgr *m = j->m;
    siyu_err err = {0};
    int rc = sync_full_run(m->st, m->wc, j->tenant, j->run_id, &m->cancel, NULL, NULL, NULL, &err);
    if (rc == 0) {
        pthread_mutex_lock(&m->mu);
        unflag_tenant(m, j->tenant);
        pthread_mutex_unlock(&m->mu);
    }
    atomic_store(&j->finished, true);
    return NULL;
}

typedef struct fail_arg {
    int64_t run_id;
    const char *why;
} fail_arg;

static int fail_step(store_conn *c, void *arg) {
    fail_arg *f = arg;
    sqlite3_stmt *st = store_conn_stmt(c, "UPDATE sync_run SET state='failed', error=?2, "
                                          "finished_at=?3, updated_at=?3 WHERE id=?1 AND "
                                          "state='running'");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, f->run_id);
    store_bind_text(st, 2, f->why);
    sqlite3_bind_int64(st, 3, siyu_now());
    return store_stmt_run(st);
}

int sync_mgr_launch(sync_mgr *m, int64_t tenant_id, int64_t run_id) {
    job *j = calloc(1, sizeof *j);
    int rc = j ? 0 : SIYU_ENOMEM;
    pthread_mutex_lock(&m->mu);
    if (rc == 0 && m->stopping) rc = SIYU_ECLOSED;
    if (rc == 0) {
        j->m = m;
        j->tenant = tenant_id;
        j->run_id = run_id;
        atomic_init(&j->finished, false);
        if (pthread_create(&j->th, NULL, job_main, j) != 0) {
            rc = SIYU_ENOMEM;
        } else {
            j->next = m->jobs;
            m->jobs = j;
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (rc != 0) {
        free(j);
        fail_arg f = {run_id, rc == SIYU_ECLOSED ? "the server is stopping" : "out of memory"};
        store_write(m->st, fail_step, &f);
    }
    return rc;
}

static bool tenant_running(sync_mgr *m, int64_t tenant) {
    for (job *j = m->jobs; j; j = j->next)
        if (j->tenant == tenant && !atomic_load(&j->finished)) return true;
    return false;
}

/* Joins finished jobs; all of them (waiting) when all. */
static void jobs_reap(sync_mgr *m, bool all) {
    pthread_mutex_lock(&m->mu);
    job **p = &m->jobs, *done = NULL;
    while (*p) {
        job *j = *p;
        if (all || atomic_load(&j->finished)) {
            *p = j->next;
            j->next = done;
            done = j;
        } else {
            p = &j->next;
        }
    }
    pthread_mutex_unlock(&m->mu);
    while (done) {
        job *j = done;
        done = j->next;
        pthread_join(j->th, NULL);
        free(j);
    }
}

/* Starts a sync of tenant (origin periodic/overflow) if it can. */
static void sched_start(sync_mgr *m, int64_t tenant, const char *origin) {
    sync_begin b = {.tenant_id = tenant, .origin = origin, .live = sync_mgr_running(m, tenant)};
    int rc = store_write(m->st, sync_run_begin, &b);
    if (rc == 0) {
        if (sync_mgr_launch(m, tenant, b.run_id) == 0 && !strcmp(origin, "overflow")) {
            pthread_mutex_lock(&m->mu);
            unflag_tenant(m, tenant);
            pthread_mutex_unlock(&m->mu);
        }
    } else if (rc != SIYU_ECONFLICT) {
        log_warn("sync: tenant=%lld cannot start a %s sync: %s", (long long)tenant, origin,
                 b.err.msg[0] ? b.err.msg : siyu_strerror(rc));
    }
}

static int64_t last_start(store_conn *c, int64_t tenant) {
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT max(started_at) FROM sync_run WHERE "
                                          "tenant_id=?1");
    int64_t t = 0;
    if (!st) return INT64_MAX / 2;
    sqlite3_bind_int64(st, 1, tenant);
    if (sqlite3_step(st) == SQLITE_ROW) t = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return t;
}

static void schedule(sync_mgr *m) {
    int64_t *ids = malloc(TENANTS_MAX * sizeof *ids);
    char *why = calloc(TENANTS_MAX, 1); /* 0 no, 1 periodic, 2 overflow */
    store_conn *c = ids && why ? store_reader_acquire(m->st) : NULL;
    int n = 0;
    if (c) {
        n = tenant_wecom_list(c, ids, TENANTS_MAX);
        if (n > TENANTS_MAX) n = TENANTS_MAX;
        int64_t now = siyu_now();
        for (int i = 0; i < n; i++) {
            int64_t base = last_start(c, ids[i]);
            if (base < m->started_at) base = m->started_at;
            if (now >= base + m->o.interval_s) why[i] = 1;
        }
        store_reader_release(m->st, c);
    }
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&m->mu);
        bool running = tenant_running(m, ids[i]), stopping = m->stopping;
        for (int k = 0; k < m->nflagged; k++)
            if (m->flagged[k] == ids[i]) why[i] = 2;
        pthread_mutex_unlock(&m->mu);
        if (stopping) break;
        if (!running && why[i]) sched_start(m, ids[i], why[i] == 2 ? "overflow" : "periodic");
    }
    free(ids);
    free(why);
}

#define POLL_PAIRS_MAX 256
#define POLL_PAGES_MAX 100

/* transfer_result (or resigned/transfer_result) of one pair, page by page,
 * each page applied in one write step. */
static void transfer_poll_pair(sync_mgr *m, const wecom_app *app, int64_t tenant,
                               const transfer_pair *p) {
    const char *path = p->resigned ? "externalcontact/resigned/transfer_result"
                                   : "externalcontact/transfer_result";
    char cursor[1024] = "";
    for (int page = 0; page < POLL_PAGES_MAX; page++) {
        json_t *body = json_pack("{s:s,s:s,s:s}", "handover_userid", p->handover, "takeover_userid",
                                 p->takeover, "cursor", cursor);
        json_t *out = NULL;
        wecom_res res;
        memset(&res, 0, sizeof res);
        int rc = body ? wecom_call(m->wc, app, path, NULL, body, &out, &res) : SIYU_ENOMEM;
        json_decref(body);
        if (rc != 0) {
            json_decref(out);
            log_warn("transfer poll: tenant=%lld: %s: %s (errcode %d)", (long long)tenant, path,
                     siyu_strerror(rc), res.errcode);
            return;
        }
        transfer_poll tp = {
            .tenant_id = tenant, .pair = p, .customers = json_object_get(out, "customer")};
        rc = store_write(m->st, transfer_poll_step, &tp);
        if (rc != 0)
            log_warn("transfer poll: tenant=%lld: not recorded: %s", (long long)tenant,
                     siyu_strerror(rc));
        else if (tp.updated)
            log_info("transfer poll: tenant=%lld: %lld transfer(s) settled from %s",
                     (long long)tenant, (long long)tp.updated, path);
        const char *next = sync__jstr(out, "next_cursor");
        bool more =
            rc == 0 && next && next[0] && strlen(next) < sizeof cursor && strcmp(next, cursor) != 0;
        if (more) snprintf(cursor, sizeof cursor, "%s", next);
        json_decref(out);
        if (!more) return;
    }
}

/* Every tenant's waiting transfers older than transfer_poll_age_s. */
static void transfer_poll_all(sync_mgr *m) {
    int64_t *ids = malloc(TENANTS_MAX * sizeof *ids);
    transfer_pair *pairs = malloc(POLL_PAIRS_MAX * sizeof *pairs);
    int n = 0;
    store_conn *c = ids && pairs ? store_reader_acquire(m->st) : NULL;
    if (c) {
        n = tenant_wecom_list(c, ids, TENANTS_MAX);
        if (n > TENANTS_MAX) n = TENANTS_MAX;
        store_reader_release(m->st, c);
    }
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&m->mu);
        bool stopping = m->stopping;
        pthread_mutex_unlock(&m->mu);
        if (stopping) break;
        wecom_app app;
        c = store_reader_acquire(m->st);
        if (!c) break;
        int np = transfer_poll_pairs(c, ids[i], siyu_now() - m->o.transfer_poll_age_s, pairs,
                                     POLL_PAIRS_MAX);
        int rc = np > 0 ? tenant_wecom_app(c, ids[i], &app) : -1;
        store_reader_release(m->st, c);
        if (np <= 0 || rc != 0) continue;
        for (int k = 0; k < np; k++)
            transfer_poll_pair(m, &app, ids[i], &pairs[k]);
        memset(&app, 0, sizeof app);
    }
    free(ids);
    free(pairs);
}

static void *sched_main(void *arg) {
    sync_mgr *m = arg;
    int64_t next = 0,
            next_poll = siyu_now() + (m->o.transfer_poll_s < 60 ? m->o.transfer_poll_s : 60);
    pthread_mutex_lock(&m->mu);
    while (!m->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&m->tick, &m->mu, &ts);
        if (m->stopping) break;
        pthread_mutex_unlock(&m->mu);
        jobs_reap(m, false);
        int64_t now = siyu_now();
        if (m->o.interval_s > 0 && now >= next) {
            schedule(m);
            next = now + SCHEDULE_EVERY_S;
        }
        inherit_tick(m->st, m->wc); /* resignations waiting for their unassigned list */
        if (m->o.transfer_poll_s > 0 && now >= next_poll) {
            transfer_poll_all(m);
            next_poll = siyu_now() + m->o.transfer_poll_s;
        }
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- lifecycle ---------------------------------------------------------- */

static void mgr_free(sync_mgr *m) {
    free(m->pool);
    free(m->buckets);
    free(m->workers);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->wake);
    pthread_cond_destroy(&m->tick);
    free(m);
}

sync_mgr *sync_mgr_start(store *st, wecom_client *wc, const sync_mgr_opts *o, siyu_err *err) {
    sync_mgr *m = calloc(1, sizeof *m);
    if (!m) {
        siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    m->st = st;
    m->wc = wc;
    if (o) m->o = *o;
    if (m->o.queue_max <= 0) m->o.queue_max = 10000;
    if (m->o.refresh_workers <= 0) m->o.refresh_workers = 2;
    m->started_at = siyu_now();
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->wake, NULL);
    pthread_cond_init(&m->tick, NULL);
    atomic_init(&m->cancel, false);
    m->nbuckets = m->o.queue_max * 2 + 1;
    m->pool = calloc((size_t)m->o.queue_max, sizeof *m->pool);
    m->buckets = malloc((size_t)m->nbuckets * sizeof *m->buckets);
    m->workers = calloc((size_t)m->o.refresh_workers, sizeof *m->workers);
    if (!m->pool || !m->buckets || !m->workers) {
        mgr_free(m);
        siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    for (int i = 0; i < m->nbuckets; i++)
        m->buckets[i] = -1;
    for (int i = 0; i < m->o.queue_max; i++)
        m->pool[i].qnext = i + 1 < m->o.queue_max ? i + 1 : -1;
    m->free_head = 0;
    m->qhead = m->qtail = -1;
    int n = sync_run_interrupt_all(st);
    if (n > 0) log_info("sync: %d run(s) of a previous process marked interrupted", n);
    if (pthread_create(&m->sched, NULL, sched_main, m) != 0) {
        mgr_free(m);
        siyu_err_set(err, SIYU_ENOMEM, NULL, "cannot start the sync scheduler");
        return NULL;
    }
    m->sched_started = true;
    for (int i = 0; i < m->o.refresh_workers; i++) {
        if (pthread_create(&m->workers[i], NULL, worker_main, m) != 0) break;
        m->nworkers++;
    }
    log_info("sync: manager started (interval %d s, refresh queue %d, workers %d)", m->o.interval_s,
             m->o.queue_max, m->nworkers);
    return m;
}

void sync_mgr_stop(sync_mgr *m) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    atomic_store(&m->cancel, true);
    pthread_cond_broadcast(&m->wake);
    pthread_cond_broadcast(&m->tick);
    pthread_mutex_unlock(&m->mu);
    if (m->sched_started) pthread_join(m->sched, NULL);
    for (int i = 0; i < m->nworkers; i++)
        pthread_join(m->workers[i], NULL);
    jobs_reap(m, true);
    mgr_free(m);
}

bool sync_mgr_needs_full(sync_mgr *m, int64_t tenant_id) {
    if (!m) return false;
    pthread_mutex_lock(&m->mu);
    bool f = false;
    for (int i = 0; i < m->nflagged; i++)
        if (m->flagged[i] == tenant_id) f = true;
    pthread_mutex_unlock(&m->mu);
    return f;
}

bool sync_mgr_running(sync_mgr *m, int64_t tenant_id) {
    if (!m) return false;
    pthread_mutex_lock(&m->mu);
    bool r = tenant_running(m, tenant_id);
    pthread_mutex_unlock(&m->mu);
    return r;
}

void sync_mgr_stats_get(sync_mgr *m, sync_mgr_stats *out) {
    memset(out, 0, sizeof *out);
    if (!m) return;
    out->queued = atomic_load(&m->st_queued);
    out->done = atomic_load(&m->st_done);
    out->deduped = atomic_load(&m->st_deduped);
    out->dropped = atomic_load(&m->st_dropped);
    out->failed = atomic_load(&m->st_failed);
    out->calls = atomic_load(&m->st_calls);
    pthread_mutex_lock(&m->mu);
    out->pending = m->queued + m->inflight;
    pthread_mutex_unlock(&m->mu);
}
