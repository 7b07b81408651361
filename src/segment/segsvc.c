/* segsvc.c — one segment engine per tenant, kept current by the writer (see
 * segsvc.h for the contract).
 *
 * Data structures:
 *   segsvc.slots   growable array of slot pointers, one per tenant; a slot is
 *                  never freed before segsvc_close. Guarded by segsvc.mu (the
 *                  array); slot.lock (a writer-preferring rwlock) guards
 *                  slot.e and slot.gen.
 *   segsvc.notes   what the current batch's write steps changed, in order,
 *                  appended by SQL functions called from TEMP triggers on the
 *                  writer's connection; touched only by the writing thread
 *                  (triggers and store hooks run there). Event types live in
 *                  segsvc.types, an arena of NUL-terminated strings.
 *
 * Notes carry keys, not values: after the commit the writer's connection
 * reads the current truth for each (a customer's row, its relationships, one
 * tag or group membership, a record), so notes that repeat or arrive in any
 * order still end in the committed state. Events are the exception: they are
 * appended as noted (an event row never changes). A note the engine cannot
 * apply in place (a customer deleted, a row id lower than the engine's last)
 * rebuilds that tenant's engine from the store, on the writer, before the
 * callers hear of the commit. */
#include "segment/segsvc.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "util/log.h"

/* Note kinds; the numbers appear in trigger_sql. */
enum {
    N_CUSTOMER = 1,     /* a: customer id */
    N_TAG_MEMBER = 2,   /* a: customer id, b: tag id */
    N_RELS = 3,         /* a: customer id */
    N_GROUP_MEMBER = 4, /* a: customer id, b: group id */
    N_GROUP = 5,        /* a: group id */
    N_TAG = 6,          /* a: tag id */
    N_EMPLOYEE = 7,     /* a: employee id */
    N_DEPARTMENT = 8,   /* a: department id */
    N_STORE = 9,        /* a: store id */
    N_TENANT = 10,      /* a tenant created */
    N_EVENT = 11,       /* a: customer id, ts, amount (cents), type at types + toff */
    N_REBUILD = 12,     /* something the engine cannot follow in place */
};

typedef struct note {
    int kind;
    int64_t tenant, a, b, ts, amount;
    size_t toff;      /* N_EVENT: offset of the type in types */
    size_t types_len; /* length of types before this note (for rollback) */
} note;

typedef struct slot {
    int64_t tenant_id;
    pthread_rwlock_t lock;
    engine *e;
    uint64_t gen;
    /* writer only */
    uint64_t applied, rebuilds;
    int64_t build_ms;
    bool rebuild, org_dirty;
} slot;

struct segsvc {
    store *st;
    pthread_mutex_t mu;
    slot **slots;
    size_t nslots, cap;
    /* writer only */
    note *notes;
    size_t nnotes, notes_cap;
    char *types;
    size_t types_len, types_cap;
    bool oom;       /* a note was lost: rebuild every tenant noted in the batch */
    bool installed; /* hooks and triggers in place */
};

static int64_t mono_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* ---- slots ------------------------------------------------------------------ */

static slot *slot_find(segsvc *s, int64_t tenant_id) {
    slot *found = NULL;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nslots; i++)
        if (s->slots[i]->tenant_id == tenant_id) {
            found = s->slots[i];
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return found;
}

static slot *slot_add(segsvc *s, int64_t tenant_id) {
    slot *sl = calloc(1, sizeof *sl);
    if (!sl) return NULL;
    sl->tenant_id = tenant_id;
    pthread_rwlockattr_t at;
    pthread_rwlockattr_init(&at);
    /* A writer waiting for the lock stops new readers, so a stream of
     * evaluations cannot hold a commit's acknowledgement back for long. */
    pthread_rwlockattr_setkind_np(&at, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&sl->lock, &at);
    pthread_rwlockattr_destroy(&at);
    pthread_mutex_lock(&s->mu);
    if (s->nslots == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        slot **v = realloc(s->slots, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&s->mu);
            pthread_rwlock_destroy(&sl->lock);
            free(sl);
            return NULL;
        }
        s->slots = v;
        s->cap = cap;
    }
    s->slots[s->nslots++] = sl;
    pthread_mutex_unlock(&s->mu);
    return sl;
}

/* Builds the tenant's engine from the store and swaps it in (the old one
 * stays readable while the new one builds). */
static int slot_build(segsvc *s, slot *sl, siyu_err *err) {
    int64_t t0 = mono_us();
    engine *e = NULL;
    int rc = engine_build(s->st, sl->tenant_id, &e, err);
    if (rc != 0) return rc;
    pthread_rwlock_wrlock(&sl->lock);
    engine *old = sl->e;
    sl->e = e;
    sl->gen++;
    pthread_rwlock_unlock(&sl->lock);
    engine_free(old);
    __atomic_store_n(&sl->build_ms, (mono_us() - t0) / 1000, __ATOMIC_RELAXED);
    return 0;
}

/* ---- notes (writer only) ------------------------------------------------------ */

static note *note_push(segsvc *s, int kind, int64_t tenant) {
    if (s->nnotes == s->notes_cap) {
        size_t cap = s->notes_cap ? s->notes_cap * 2 : 256;
        note *v = realloc(s->notes, cap * sizeof *v);
        if (!v) {
            s->oom = true;
            return NULL;
        }
        s->notes = v;
        s->notes_cap = cap;
    }
    note *n = &s->notes[s->nnotes++];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->tenant = tenant;
    n->types_len = s->types_len;
    return n;
}

/* seg_note(kind, tenant_id, a, b) */
static void fn_note(sqlite3_context *ctx, int argc, sqlite3_value **v) {
    (void)argc;
    segsvc *s = sqlite3_user_data(ctx);
    note *n = note_push(s, sqlite3_value_int(v[0]), sqlite3_value_int64(v[1]));
    if (n) {
        n->a = sqlite3_value_int64(v[2]);
        n->b = sqlite3_value_int64(v[3]);
    }
    sqlite3_result_null(ctx);
}

/* seg_event(tenant_id, customer_id, type, ts, amount): amount is the order's
 * props.amount in yuan (a JSON number) or NULL, rounded to cents as the
 * engine's build does. */
static void fn_event(sqlite3_context *ctx, int argc, sqlite3_value **v) {
    (void)argc;
    segsvc *s = sqlite3_user_data(ctx);
    const char *type = (const char *)sqlite3_value_text(v[2]);
    size_t tl = type ? strlen(type) : 0;
    sqlite3_result_null(ctx);
    if (!type) return;
    if (s->types_len + tl + 1 > s->types_cap) {
        size_t cap = s->types_cap ? s->types_cap : 4096;
        while (cap < s->types_len + tl + 1)
            cap *= 2;
        char *t = realloc(s->types, cap);
        if (!t) {
            s->oom = true;
            return;
        }
        s->types = t;
        s->types_cap = cap;
    }
    note *n = note_push(s, N_EVENT, sqlite3_value_int64(v[0]));
    if (!n) return;
    n->a = sqlite3_value_int64(v[1]);
    n->ts = sqlite3_value_int64(v[3]);
    int t = sqlite3_value_type(v[4]);
    if (t == SQLITE_INTEGER || t == SQLITE_FLOAT) {
        double amount = sqlite3_value_double(v[4]);
        if (isfinite(amount) && fabs(amount) < 1e13) n->amount = llround(amount * 100);
    }
    n->toff = s->types_len;
    memcpy(s->types + s->types_len, type, tl + 1);
    s->types_len += tl + 1;
}

static size_t hook_mark(void *arg) {
    return ((segsvc *)arg)->nnotes;
}

static void hook_rollback(void *arg, size_t mark) {
    segsvc *s = arg;
    if (mark < s->nnotes) {
        s->types_len = s->notes[mark].types_len;
        s->nnotes = mark;
    }
}

/* ---- applying a batch (writer, after the commit) ---------------------------- */

typedef struct applier {
    segsvc *s;
    store_conn *c;
    slot *sl;
    siyu_err err;
} applier;

static sqlite3_stmt *q(applier *ap, const char *sql, int64_t a, int64_t b) {
    sqlite3_stmt *st = store_conn_stmt(ap->c, sql);
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, ap->sl->tenant_id);
    sqlite3_bind_int64(st, 2, a);
    sqlite3_bind_int64(st, 3, b);
    return st;
}

/* 1 when the query has a row, 0 when not, <0 on error. */
static int exists(applier *ap, const char *sql, int64_t a, int64_t b) {
    sqlite3_stmt *st = q(ap, sql, a, b);
    if (!st) return SIYU_EIO;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : SIYU_EIO;
}

static int dense_of(applier *ap, int64_t customer_id, uint32_t *d) {
    return engine_dense_id(ap->sl->e, customer_id, d) ? 0 : SIYU_EINVAL;
}

static int apply_customer(applier *ap, int64_t id) {
    sqlite3_stmt *st = q(ap,
                         "SELECT gender, first_added_at, region, stage FROM customer "
                         "WHERE tenant_id = ?1 AND id = ?2 AND ?3 = 0",
                         id, 0);
    if (!st) return SIYU_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int64_t fa =
            sqlite3_column_type(st, 1) == SQLITE_NULL ? ENGINE_NONE : sqlite3_column_int64(st, 1);
        rc = engine_customer_put(ap->sl->e, id, sqlite3_column_int(st, 0), fa,
                                 (const char *)sqlite3_column_text(st, 2),
                                 (const char *)sqlite3_column_text(st, 3), NULL, &ap->err);
    } else {
        rc = rc == SQLITE_DONE ? SIYU_EINVAL : SIYU_EIO; /* deleted: rebuild */
    }
    sqlite3_reset(st);
    return rc;
}

#define RELS_MAX 4096 /* relationships of one customer read at once */

static int apply_rels(applier *ap, int64_t id) {
    uint32_t d;
    if (dense_of(ap, id, &d) != 0) return SIYU_EINVAL;
    sqlite3_stmt *st = q(ap,
                         "SELECT employee_id, status, state FROM relationship "
                         "WHERE tenant_id = ?1 AND customer_id = ?2 AND ?3 = 0 LIMIT 4097",
                         id, 0);
    if (!st) return SIYU_EIO;
    engine_rel rels[64], *v = rels;
    char *strs[64 * 2], **sv = strs;
    size_t n = 0, cap = 64;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == RELS_MAX) {
            ret = SIYU_EINVAL; /* more than we follow in place: rebuild */
            break;
        }
        if (n == cap) {
            size_t nc = cap * 2;
            engine_rel *nv = malloc(nc * sizeof *nv);
            char **ns = malloc(nc * 2 * sizeof *ns);
            if (!nv || !ns) {
                free(nv);
                free(ns);
                ret = SIYU_ENOMEM;
                break;
            }
            memcpy(nv, v, n * sizeof *nv);
            memcpy(ns, sv, n * 2 * sizeof *ns);
            if (v != rels) free(v);
            if (sv != strs) free(sv);
            v = nv;
            sv = ns;
            cap = nc;
        }
        const unsigned char *status = sqlite3_column_text(st, 1);
        const unsigned char *state = sqlite3_column_text(st, 2);
        sv[2 * n] = status ? strdup((const char *)status) : NULL;
        sv[2 * n + 1] = state ? strdup((const char *)state) : NULL;
        v[n].employee_id = sqlite3_column_int64(st, 0);
        v[n].status = sv[2 * n] ? sv[2 * n] : "";
        v[n].state = sv[2 * n + 1];
        n++;
        if ((status && !sv[2 * n - 2]) || (state && !sv[2 * n - 1])) {
            ret = SIYU_ENOMEM;
            break;
        }
    }
    if (ret == 0 && rc != SQLITE_DONE) ret = SIYU_EIO;
    sqlite3_reset(st);
    if (ret == 0) ret = engine_customer_rels(ap->sl->e, d, v, n, &ap->err);
    for (size_t i = 0; i < 2 * n; i++)
        free(sv[i]);
    if (v != rels) free(v);
    if (sv != strs) free(sv);
    return ret;
}

/* Sets the membership of customer id in record rid of dim to what the store
 * says (sql has a row when the customer is a member). */
static int apply_member(applier *ap, expr_dim dim, int64_t id, int64_t rid, const char *sql) {
    uint32_t d;
    int on = exists(ap, sql, id, rid);
    if (on < 0) return on;
    if (dense_of(ap, id, &d) != 0) return on ? SIYU_EINVAL : 0;
    if (!on && engine_members(ap->sl->e, dim, rid) == NULL) return 0; /* record gone too */
    return engine_member_set(ap->sl->e, dim, rid, d, on == 1, &ap->err);
}

#define SQL_TAG_MEMBER                                                                             \
    "SELECT 1 FROM customer_tag WHERE tenant_id = ?1 AND customer_id = ?2 AND tag_id = ?3"
#define SQL_GROUP_MEMBER                                                                           \
    "SELECT 1 FROM group_member m JOIN group_chat g ON g.id = m.group_id "                         \
    "WHERE m.tenant_id = ?1 AND m.customer_id = ?2 AND m.group_id = ?3 AND m.status = 'in' "       \
    "AND g.status = 'active'"

/* A record of dim: put (with its current name) or removed. */
static int apply_record(applier *ap, expr_dim dim, int64_t id, const char *sql) {
    sqlite3_stmt *st = q(ap, sql, id, 0);
    if (!st) return SIYU_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = engine_record_put(ap->sl->e, dim, id, (const char *)sqlite3_column_text(st, 0),
                               &ap->err);
    else if (rc == SQLITE_DONE)
        rc = engine_members(ap->sl->e, dim, id) ? engine_record_remove(ap->sl->e, dim, id, &ap->err)
                                                : 0;
    else
        rc = SIYU_EIO;
    sqlite3_reset(st);
    return rc;
}

/* A group chat changed: its record, then each member's membership. */
static int apply_group(applier *ap, int64_t gid) {
    int rc =
        apply_record(ap, EXPR_DIM_GROUP, gid,
                     "SELECT name FROM group_chat WHERE tenant_id = ?1 AND id = ?2 AND ?3 = 0");
    if (rc != 0 || !engine_members(ap->sl->e, EXPR_DIM_GROUP, gid)) return rc;
    sqlite3_stmt *st = q(ap,
                         "SELECT m.customer_id, m.status = 'in' AND g.status = 'active' "
                         "FROM group_member m JOIN group_chat g ON g.id = m.group_id "
                         "WHERE m.tenant_id = ?1 AND m.group_id = ?2 AND ?3 = 0 "
                         "AND m.customer_id IS NOT NULL",
                         gid, 0);
    if (!st) return SIYU_EIO;
    while (rc == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint32_t d;
        bool on = sqlite3_column_int(st, 1) != 0;
        /* A customer the engine does not hold yet was created later in the
         * batch: its own notes (the customer, then its member row, which
         * the foreign key orders after it) come further on. */
        if (dense_of(ap, sqlite3_column_int64(st, 0), &d) != 0)
            rc = 0;
        else
            rc = engine_member_set(ap->sl->e, EXPR_DIM_GROUP, gid, d, on, &ap->err);
    }
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc > 0)
        rc = SIYU_EIO;
    sqlite3_reset(st);
    return rc;
}

/* Every employee and department of the tenant, for engine_org_put. */
static int apply_org(applier *ap) {
    engine_emp *emps = NULL;
    engine_dep *deps = NULL;
    size_t ne = 0, nd = 0, ce = 0, cd = 0;
    int rc = 0;
    sqlite3_stmt *st = q(ap,
                         "SELECT id, coalesce(department_id, 0), coalesce(store_id, 0) FROM "
                         "employee WHERE tenant_id = ?1 AND ?2 = ?3",
                         0, 0);
    if (!st) return SIYU_EIO;
    int sr;
    while ((sr = sqlite3_step(st)) == SQLITE_ROW) {
        if (ne == ce) {
            ce = ce ? ce * 2 : 256;
            engine_emp *v = realloc(emps, ce * sizeof *v);
            if (!v) {
                rc = SIYU_ENOMEM;
                break;
            }
            emps = v;
        }
        emps[ne++] = (engine_emp){sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                                  sqlite3_column_int64(st, 2)};
    }
    if (rc == 0 && sr != SQLITE_DONE) rc = SIYU_EIO;
    sqlite3_reset(st);
    if (rc == 0) {
        st = q(ap,
               "SELECT id, coalesce(parent_id, 0) FROM department WHERE tenant_id = ?1 AND ?2 = ?3",
               0, 0);
        if (!st) rc = SIYU_EIO;
        while (rc == 0 && (sr = sqlite3_step(st)) == SQLITE_ROW) {
            if (nd == cd) {
                cd = cd ? cd * 2 : 64;
                engine_dep *v = realloc(deps, cd * sizeof *v);
                if (!v) {
                    rc = SIYU_ENOMEM;
                    break;
                }
                deps = v;
            }
            deps[nd++] = (engine_dep){sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1)};
        }
        if (rc == 0 && sr != SQLITE_DONE) rc = SIYU_EIO;
        if (st) sqlite3_reset(st);
    }
    if (rc == 0) rc = engine_org_put(ap->sl->e, emps, ne, deps, nd, &ap->err);
    free(emps);
    free(deps);
    return rc;
}

static int apply_note(applier *ap, const note *n) {
    slot *sl = ap->sl;
    switch (n->kind) {
    case N_CUSTOMER:
        return apply_customer(ap, n->a);
    case N_TAG_MEMBER:
        return apply_member(ap, EXPR_DIM_TAG, n->a, n->b, SQL_TAG_MEMBER);
    case N_RELS:
        return apply_rels(ap, n->a);
    case N_GROUP_MEMBER:
        return apply_member(ap, EXPR_DIM_GROUP, n->a, n->b, SQL_GROUP_MEMBER);
    case N_GROUP:
        return apply_group(ap, n->a);
    case N_TAG:
        return apply_record(ap, EXPR_DIM_TAG, n->a,
                            "SELECT name FROM tag WHERE tenant_id = ?1 AND id = ?2 AND ?3 = 0");
    case N_EMPLOYEE:
        sl->org_dirty = true;
        return apply_record(
            ap, EXPR_DIM_EMPLOYEE, n->a,
            "SELECT name FROM employee WHERE tenant_id = ?1 AND id = ?2 AND ?3 = 0");
    case N_DEPARTMENT:
        sl->org_dirty = true;
        return apply_record(
            ap, EXPR_DIM_DEPARTMENT, n->a,
            "SELECT name FROM department WHERE tenant_id = ?1 AND id = ?2 AND ?3 = 0");
    case N_STORE:
        sl->org_dirty = true;
        return apply_record(ap, EXPR_DIM_STORE, n->a,
                            "SELECT name FROM store WHERE tenant_id = ?1 AND id = ?2 AND ?3 = 0");
    case N_TENANT:
        return 0;
    case N_EVENT: {
        uint32_t d;
        if (dense_of(ap, n->a, &d) != 0) return SIYU_EINVAL;
        return engine_event_add(sl->e, d, ap->s->types + n->toff, n->ts, n->amount, &ap->err);
    }
    default:
        return SIYU_EINVAL;
    }
}

/* Same note as the previous one (a bulk write notes the same key often). */
static bool note_same(const note *x, const note *y) {
    return x->kind != N_EVENT && x->kind == y->kind && x->tenant == y->tenant && x->a == y->a &&
           x->b == y->b;
}

/* Applies the notes of tenant sl->tenant_id, under its write lock. */
static void apply_tenant(segsvc *s, store_conn *c, slot *sl) {
    applier ap = {.s = s, .c = c, .sl = sl};
    pthread_rwlock_wrlock(&sl->lock);
    const note *prev = NULL;
    for (size_t i = 0; i < s->nnotes && !sl->rebuild; i++) {
        const note *n = &s->notes[i];
        if (n->tenant != sl->tenant_id) continue;
        if (prev && note_same(prev, n)) continue;
        prev = n;
        if (n->kind == N_REBUILD || !sl->e) {
            sl->rebuild = true;
            break;
        }
        int rc = apply_note(&ap, n);
        if (rc != 0) {
            log_warn("segments: tenant %lld: rebuilding the engine (note kind %d, keys %lld/%lld: "
                     "%s: %s)",
                     (long long)sl->tenant_id, n->kind, (long long)n->a, (long long)n->b,
                     siyu_strerror(rc),
                     ap.err.msg[0] ? ap.err.msg : "a change it cannot follow in place");
            sl->rebuild = true;
            break;
        }
        __atomic_fetch_add(&sl->applied, 1, __ATOMIC_RELAXED);
    }
    if (!sl->rebuild && sl->org_dirty) {
        int rc = apply_org(&ap);
        if (rc != 0) sl->rebuild = true;
    }
    sl->org_dirty = false;
    pthread_rwlock_unlock(&sl->lock);
}

static void hook_commit(void *arg, store_conn *c, bool ok) {
    segsvc *s = arg;
    if (ok && s->nnotes) {
        /* the tenants of the batch, in order of first note (usually one) */
        for (size_t i = 0; i < s->nnotes; i++) {
            int64_t t = s->notes[i].tenant;
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++)
                seen = s->notes[j].tenant == t;
            if (seen) continue;
            slot *sl = slot_find(s, t);
            if (!sl) {
                if (!(sl = slot_add(s, t))) {
                    log_error("segments: tenant %lld: out of memory", (long long)t);
                    continue;
                }
                sl->rebuild = true;
            } else if (s->oom) {
                sl->rebuild = true;
            } else {
                apply_tenant(s, c, sl);
            }
            if (sl->rebuild) {
                siyu_err err = {0};
                if (slot_build(s, sl, &err) == 0) {
                    __atomic_fetch_add(&sl->rebuilds, 1, __ATOMIC_RELAXED);
                    sl->rebuild = false;
                } else {
                    log_error("segments: tenant %lld: engine build failed: %s", (long long)t,
                              err.msg);
                }
            }
        }
    }
    s->nnotes = 0;
    s->types_len = 0;
    s->oom = false;
}

/* ---- triggers ------------------------------------------------------------------ */

static const char *const trigger_sql =
    "CREATE TEMP TRIGGER seg_customer_ins AFTER INSERT ON main.customer BEGIN "
    "SELECT seg_note(1, NEW.tenant_id, NEW.id, 0); END;"
    "CREATE TEMP TRIGGER seg_customer_upd AFTER UPDATE OF gender, first_added_at, region, stage "
    "ON main.customer BEGIN SELECT seg_note(1, NEW.tenant_id, NEW.id, 0); END;"
    "CREATE TEMP TRIGGER seg_customer_del AFTER DELETE ON main.customer BEGIN "
    "SELECT seg_note(12, OLD.tenant_id, OLD.id, 0); END;"
    "CREATE TEMP TRIGGER seg_ctag_ins AFTER INSERT ON main.customer_tag BEGIN "
    "SELECT seg_note(2, NEW.tenant_id, NEW.customer_id, NEW.tag_id); END;"
    "CREATE TEMP TRIGGER seg_ctag_upd AFTER UPDATE OF customer_id, tag_id ON main.customer_tag "
    "BEGIN SELECT seg_note(2, OLD.tenant_id, OLD.customer_id, OLD.tag_id); "
    "SELECT seg_note(2, NEW.tenant_id, NEW.customer_id, NEW.tag_id); END;"
    "CREATE TEMP TRIGGER seg_ctag_del AFTER DELETE ON main.customer_tag BEGIN "
    "SELECT seg_note(2, OLD.tenant_id, OLD.customer_id, OLD.tag_id); END;"
    "CREATE TEMP TRIGGER seg_rel_ins AFTER INSERT ON main.relationship BEGIN "
    "SELECT seg_note(3, NEW.tenant_id, NEW.customer_id, 0); END;"
    "CREATE TEMP TRIGGER seg_rel_upd AFTER UPDATE OF customer_id, employee_id, status, state "
    "ON main.relationship BEGIN SELECT seg_note(3, OLD.tenant_id, OLD.customer_id, 0); "
    "SELECT seg_note(3, NEW.tenant_id, NEW.customer_id, 0); END;"
    "CREATE TEMP TRIGGER seg_rel_del AFTER DELETE ON main.relationship BEGIN "
    "SELECT seg_note(3, OLD.tenant_id, OLD.customer_id, 0); END;"
    "CREATE TEMP TRIGGER seg_gm_ins AFTER INSERT ON main.group_member "
    "WHEN NEW.customer_id IS NOT NULL BEGIN "
    "SELECT seg_note(4, NEW.tenant_id, NEW.customer_id, NEW.group_id); END;"
    "CREATE TEMP TRIGGER seg_gm_upd AFTER UPDATE OF customer_id, group_id, status "
    "ON main.group_member BEGIN "
    "SELECT seg_note(4, OLD.tenant_id, OLD.customer_id, OLD.group_id) "
    "WHERE OLD.customer_id IS NOT NULL; "
    "SELECT seg_note(4, NEW.tenant_id, NEW.customer_id, NEW.group_id) "
    "WHERE NEW.customer_id IS NOT NULL; END;"
    "CREATE TEMP TRIGGER seg_gm_del AFTER DELETE ON main.group_member "
    "WHEN OLD.customer_id IS NOT NULL BEGIN "
    "SELECT seg_note(4, OLD.tenant_id, OLD.customer_id, OLD.group_id); END;"
    "CREATE TEMP TRIGGER seg_gc_ins AFTER INSERT ON main.group_chat BEGIN "
    "SELECT seg_note(5, NEW.tenant_id, NEW.id, 0); END;"
    "CREATE TEMP TRIGGER seg_gc_upd AFTER UPDATE OF name, status ON main.group_chat BEGIN "
    "SELECT seg_note(5, NEW.tenant_id, NEW.id, 0); END;"
    "CREATE TEMP TRIGGER seg_gc_del AFTER DELETE ON main.group_chat BEGIN "
    "SELECT seg_note(5, OLD.tenant_id, OLD.id, 0); END;"
    "CREATE TEMP TRIGGER seg_tag_ins AFTER INSERT ON main.tag BEGIN "
    "SELECT seg_note(6, NEW.tenant_id, NEW.id, 0); END;"
    "CREATE TEMP TRIGGER seg_tag_upd AFTER UPDATE OF name ON main.tag BEGIN "
    "SELECT seg_note(6, NEW.tenant_id, NEW.id, 0); END;"
    "CREATE TEMP TRIGGER seg_tag_del AFTER DELETE ON main.tag BEGIN "
    "SELECT seg_note(6, OLD.tenant_id, OLD.id, 0); END;"
    "CREATE TEMP TRIGGER seg_emp_ins AFTER INSERT ON main.employee BEGIN "
    "SELECT seg_note(7, NEW.tenant_id, NEW.id, 0); END;"
    "CREATE TEMP TRIGGER seg_emp_upd AFTER UPDATE OF name, department_id, store_id "
    "ON main.employee BEGIN SELECT seg_note(7, NEW.tenant_id, NEW.id, 0); END;"
    "CREATE TEMP TRIGGER seg_emp_del AFTER DELETE ON main.employee BEGIN "
    "SELECT seg_note(7, OLD.tenant_id, OLD.id, 0); END;"
    "CREATE TEMP TRIGGER seg_dep_ins AFTER INSERT ON main.department BEGIN "
    "SELECT seg_note(8, NEW.tenant_id, NEW.id, 0); END;"
    "CREATE TEMP TRIGGER seg_dep_upd AFTER UPDATE OF name, parent_id ON main.department BEGIN "
    "SELECT seg_note(8, NEW.tenant_id, NEW.id, 0); END;"
    "CREATE TEMP TRIGGER seg_dep_del AFTER DELETE ON main.department BEGIN "
    "SELECT seg_note(8, OLD.tenant_id, OLD.id, 0); END;"
    "CREATE TEMP TRIGGER seg_store_ins AFTER INSERT ON main.store BEGIN "
    "SELECT seg_note(9, NEW.tenant_id, NEW.id, 0); END;"
    "CREATE TEMP TRIGGER seg_store_upd AFTER UPDATE OF name ON main.store BEGIN "
    "SELECT seg_note(9, NEW.tenant_id, NEW.id, 0); END;"
    "CREATE TEMP TRIGGER seg_store_del AFTER DELETE ON main.store BEGIN "
    "SELECT seg_note(9, OLD.tenant_id, OLD.id, 0); END;"
    "CREATE TEMP TRIGGER seg_tenant_ins AFTER INSERT ON main.tenant BEGIN "
    "SELECT seg_note(10, NEW.tenant_id, 0, 0); END;"
    "CREATE TEMP TRIGGER seg_event_ins AFTER INSERT ON main.event "
    "WHEN NEW.customer_id IS NOT NULL BEGIN "
    "SELECT seg_event(NEW.tenant_id, NEW.customer_id, NEW.type, NEW.ts, "
    "CASE WHEN NEW.type = 'order' AND json_valid(NEW.props) "
    "THEN json_extract(NEW.props, '$.amount') END); END;"
    "CREATE TEMP TRIGGER seg_event_upd AFTER UPDATE OF tenant_id, customer_id, type, ts, props "
    "ON main.event BEGIN SELECT seg_note(12, NEW.tenant_id, 0, 0); END;"
    "CREATE TEMP TRIGGER seg_event_del AFTER DELETE ON main.event "
    "WHEN OLD.customer_id IS NOT NULL BEGIN SELECT seg_note(12, OLD.tenant_id, 0, 0); END;";

static const char *const trigger_names[] = {
    "seg_customer_ins", "seg_customer_upd", "seg_customer_del", "seg_ctag_ins",
    "seg_ctag_upd",     "seg_ctag_del",     "seg_rel_ins",      "seg_rel_upd",
    "seg_rel_del",      "seg_gm_ins",       "seg_gm_upd",       "seg_gm_del",
    "seg_gc_ins",       "seg_gc_upd",       "seg_gc_del",       "seg_tag_ins",
    "seg_tag_upd",      "seg_tag_del",      "seg_emp_ins",      "seg_emp_upd",
    "seg_emp_del",      "seg_dep_ins",      "seg_dep_upd",      "seg_dep_del",
    "seg_store_ins",    "seg_store_upd",    "seg_store_del",    "seg_tenant_ins",
    "seg_event_ins",    "seg_event_upd",    "seg_event_del",    NULL};

static int install_step(store_conn *c, void *arg) {
    sqlite3 *db = store_conn_db(c);
    if (sqlite3_create_function_v2(db, "seg_note", 4, SQLITE_UTF8, arg, fn_note, NULL, NULL,
                                   NULL) != SQLITE_OK ||
        sqlite3_create_function_v2(db, "seg_event", 5, SQLITE_UTF8, arg, fn_event, NULL, NULL,
                                   NULL) != SQLITE_OK) {
        log_error("segments: cannot register functions: %s", sqlite3_errmsg(db));
        return SIYU_EIO;
    }
    return store_conn_exec(c, trigger_sql);
}

static int uninstall_step(store_conn *c, void *arg) {
    (void)arg;
    char sql[96];
    for (int i = 0; trigger_names[i]; i++) {
        snprintf(sql, sizeof sql, "DROP TRIGGER IF EXISTS temp.%s", trigger_names[i]);
        if (store_conn_exec(c, sql) != 0) return SIYU_EIO;
    }
    return 0;
}

/* ---- open / close ---------------------------------------------------------------- */

int segsvc_open(store *st, segsvc **out, siyu_err *err) {
    *out = NULL;
    segsvc *s = calloc(1, sizeof *s);
    if (!s) return siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    s->st = st;
    pthread_mutex_init(&s->mu, NULL);
    /* Tenants first, then their engines: each built from its own snapshot.
     * Nothing else writes yet (the server starts its writers afterwards). */
    int64_t *tenants = NULL;
    size_t nt = 0, ct = 0;
    int rc = 0;
    store_conn *c = store_reader_acquire(st);
    sqlite3_stmt *q =
        c ? store_conn_stmt(c, "SELECT tenant_id FROM tenant ORDER BY tenant_id") : NULL;
    if (!q) {
        rc = siyu_err_set(err, SIYU_EIO, NULL, "segments: cannot read the tenants");
    } else {
        int sr;
        while ((sr = sqlite3_step(q)) == SQLITE_ROW) {
            if (nt == ct) {
                ct = ct ? ct * 2 : 16;
                int64_t *v = realloc(tenants, ct * sizeof *v);
                if (!v) {
                    rc = siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
                    break;
                }
                tenants = v;
            }
            tenants[nt++] = sqlite3_column_int64(q, 0);
        }
        if (rc == 0 && sr != SQLITE_DONE)
            rc = siyu_err_set(err, SIYU_EIO, NULL, "segments: cannot read the tenants");
        sqlite3_reset(q);
    }
    if (c) store_reader_release(st, c);
    bool tty = isatty(STDERR_FILENO);
    for (size_t i = 0; rc == 0 && i < nt; i++) {
        slot *sl = slot_add(s, tenants[i]);
        if (!sl) {
            rc = siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
            break;
        }
        if (tty)
            fprintf(stderr, "segments: building tenant %lld (%zu of %zu)...\n",
                    (long long)tenants[i], i + 1, nt);
        rc = slot_build(s, sl, err);
        if (rc == 0 && tty)
            fprintf(stderr, "segments: tenant %lld ready: %u customers, %llu events, %lld ms\n",
                    (long long)tenants[i], engine_customers(sl->e),
                    (unsigned long long)engine_events(sl->e), (long long)sl->build_ms);
    }
    free(tenants);
    if (rc == 0) {
        store_hooks h = {
            .arg = s, .mark = hook_mark, .rollback = hook_rollback, .commit = hook_commit};
        store_set_hooks(st, &h);
        rc = store_write(st, install_step, s);
        s->installed = true; /* the hooks are; the triggers too unless rc */
        if (rc != 0) {
            store_set_hooks(st, NULL);
            siyu_err_set(err, rc, NULL, "segments: cannot install the change triggers");
        }
    }
    if (rc != 0) {
        segsvc_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void segsvc_close(segsvc *s) {
    if (!s) return;
    if (s->installed) {
        /* Drop the triggers (if installed), then the hooks. */
        store_write(s->st, uninstall_step, NULL);
        store_set_hooks(s->st, NULL);
    }
    for (size_t i = 0; i < s->nslots; i++) {
        engine_free(s->slots[i]->e);
        pthread_rwlock_destroy(&s->slots[i]->lock);
        free(s->slots[i]);
    }
    free(s->slots);
    free(s->notes);
    free(s->types);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- reading ---------------------------------------------------------------------- */

/* The scope of a token as a bitmap owned by the engine, or NULL for the whole
 * tenant; *none set when the token sees nobody. dept is the manager's
 * department (read before the lock). */
static const roaring_bitmap_t *scope_bm(const engine *e, const http_auth *a, int64_t dept,
                                        bool *none) {
    *none = false;
    const roaring_bitmap_t *bm = NULL;
    switch (a->role) {
    case ROLE_ADMIN:
    case ROLE_OPERATOR:
        return NULL;
    case ROLE_EMPLOYEE:
        bm = a->employee_id ? engine_members(e, EXPR_DIM_EMPLOYEE, a->employee_id) : NULL;
        break;
    case ROLE_MANAGER:
        bm = dept ? engine_members(e, EXPR_DIM_DEPARTMENT, dept) : NULL;
        break;
    }
    if (!bm) *none = true;
    return bm;
}

static bool blank(const char *src, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (src[i] != ' ' && src[i] != '\t' && src[i] != '\n' && src[i] != '\r') return false;
    return true;
}

int segsvc_eval(segsvc *s, const http_auth *a, const char *src, size_t len, int64_t now,
                segsvc_result *out, siyu_err *err) {
    memset(out, 0, sizeof *out);
    int64_t t0 = mono_us();
    if (a->role != ROLE_ADMIN && a->role != ROLE_OPERATOR && a->role != ROLE_MANAGER &&
        a->role != ROLE_EMPLOYEE)
        return siyu_err_set(err, SIYU_EDENIED, NULL, "this token sees no customers");
    slot *sl = slot_find(s, a->tenant_id);
    if (!sl) return siyu_err_set(err, SIYU_ENOTFOUND, NULL, "no such tenant");
    expr_node *n = NULL;
    if (!blank(src, len)) {
        expr_err pe;
        int rc = expr_parse(src, len, &n, &pe);
        if (rc != 0) return siyu_err_set(err, rc, "expr", "%s", pe.text);
    }
    int64_t dept = 0;
    if (a->role == ROLE_MANAGER && a->employee_id) {
        store_conn *c = store_reader_acquire(s->st);
        sqlite3_stmt *st = c ? store_conn_stmt(c, "SELECT coalesce(department_id, 0) FROM "
                                                  "employee WHERE tenant_id = ? AND id = ?")
                             : NULL;
        if (st) {
            sqlite3_bind_int64(st, 1, a->tenant_id);
            sqlite3_bind_int64(st, 2, a->employee_id);
            if (sqlite3_step(st) == SQLITE_ROW) dept = sqlite3_column_int64(st, 0);
            sqlite3_reset(st);
        }
        if (c) store_reader_release(s->st, c);
        if (!st) {
            expr_free(n);
            return siyu_err_set(err, SIYU_EIO, NULL, "cannot read the token's department");
        }
    }
    int rc = 0;
    roaring_bitmap_t *bm = NULL;
    pthread_rwlock_rdlock(&sl->lock);
    if (!sl->e) {
        rc = siyu_err_set(err, SIYU_EBUSY, NULL, "the segment engine of this tenant is not ready");
    } else {
        bool none;
        const roaring_bitmap_t *scope = scope_bm(sl->e, a, dept, &none);
        /* The expression is evaluated even for an empty scope, so unknown
         * names are reported the same to every token. */
        if (n) {
            rc = engine_eval(sl->e, n, now, &bm, err);
            if (rc == 0 && none)
                roaring_bitmap_clear(bm);
            else if (rc == 0 && scope)
                roaring_bitmap_and_inplace(bm, scope);
        } else {
            bm = none ? roaring_bitmap_create()
                      : roaring_bitmap_copy(scope ? scope : engine_all(sl->e));
        }
        if (rc == 0 && !bm) rc = siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
        out->gen = sl->gen;
    }
    pthread_rwlock_unlock(&sl->lock);
    expr_free(n);
    if (rc != 0) {
        if (bm) roaring_bitmap_free(bm);
        return rc;
    }
    out->bm = bm;
    out->count = roaring_bitmap_get_cardinality(bm);
    out->eval_us = mono_us() - t0;
    return 0;
}

void segsvc_result_free(segsvc_result *r) {
    if (r && r->bm) roaring_bitmap_free(r->bm);
    if (r) r->bm = NULL;
}

/* Read-locks the tenant's engine of generation gen: the slot, or NULL with
 * err filled (and nothing locked). */
static slot *read_gen(segsvc *s, int64_t tenant_id, uint64_t gen, siyu_err *err) {
    slot *sl = slot_find(s, tenant_id);
    if (!sl) {
        siyu_err_set(err, SIYU_ENOTFOUND, NULL, "no such tenant");
        return NULL;
    }
    pthread_rwlock_rdlock(&sl->lock);
    if (sl->e && sl->gen == gen) return sl;
    pthread_rwlock_unlock(&sl->lock);
    siyu_err_set(err, SIYU_ECONFLICT, NULL, "the segment engine was rebuilt: evaluate again");
    return NULL;
}

int segsvc_page(segsvc *s, int64_t tenant_id, const segsvc_result *r, engine_sort sort, bool desc,
                const engine_row *after, size_t limit, engine_row *out, size_t *n, siyu_err *err) {
    *n = 0;
    slot *sl = read_gen(s, tenant_id, r->gen, err);
    if (!sl) return err ? err->code : SIYU_ECONFLICT;
    int rc = engine_page(sl->e, r->bm, sort, desc, after, limit, out, n);
    pthread_rwlock_unlock(&sl->lock);
    if (rc != 0) siyu_err_set(err, rc, NULL, "out of memory");
    return rc;
}

void segsvc_buckets_free(engine_bucket *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free((char *)b[i].name);
        b[i].name = NULL;
    }
}

int segsvc_breakdown(segsvc *s, int64_t tenant_id, const segsvc_result *r, expr_dim dim, size_t top,
                     engine_bucket *out, size_t *n, siyu_err *err) {
    *n = 0;
    slot *sl = read_gen(s, tenant_id, r->gen, err);
    if (!sl) return err ? err->code : SIYU_ECONFLICT;
    int rc = engine_breakdown(sl->e, r->bm, dim, top, out, n);
    for (size_t i = 0; rc == 0 && i < *n; i++) {
        if (out[i].name && !(out[i].name = strdup(out[i].name))) {
            for (size_t j = i + 1; j < *n; j++)
                out[j].name = NULL;
            segsvc_buckets_free(out, i);
            *n = 0;
            rc = SIYU_ENOMEM;
        }
    }
    pthread_rwlock_unlock(&sl->lock);
    if (rc != 0) siyu_err_set(err, rc, NULL, "out of memory");
    return rc;
}

#define WALK_CHUNK 4096

int segsvc_walk(segsvc *s, int64_t tenant_id, const segsvc_result *r,
                int (*fn)(void *arg, const int64_t *ids, size_t n), void *arg, siyu_err *err) {
    uint32_t dense[WALK_CHUNK];
    int64_t ids[WALK_CHUNK];
    roaring_uint32_iterator_t *it = roaring_create_iterator(r->bm);
    if (!it) return siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    int rc = 0;
    for (;;) {
        uint32_t k = roaring_read_uint32_iterator(it, dense, WALK_CHUNK);
        if (k == 0) break;
        slot *sl = read_gen(s, tenant_id, r->gen, err);
        if (!sl) {
            rc = err ? err->code : SIYU_ECONFLICT;
            break;
        }
        for (uint32_t i = 0; i < k; i++)
            ids[i] = engine_customer_id(sl->e, dense[i]);
        pthread_rwlock_unlock(&sl->lock);
        if ((rc = fn(arg, ids, k)) != 0) break;
    }
    roaring_free_uint32_iterator(it);
    return rc;
}

bool segsvc_stats_get(segsvc *s, int64_t tenant_id, segsvc_stats *out) {
    memset(out, 0, sizeof *out);
    slot *sl = slot_find(s, tenant_id);
    if (!sl) return false;
    pthread_rwlock_rdlock(&sl->lock);
    bool ok = sl->e != NULL;
    if (ok) {
        out->customers = engine_customers(sl->e);
        out->events = engine_events(sl->e);
        out->bytes = engine_bytes(sl->e);
    }
    out->gen = sl->gen;
    /* written by the writer without the lock: figures, not invariants */
    out->applied = __atomic_load_n(&sl->applied, __ATOMIC_RELAXED);
    out->rebuilds = __atomic_load_n(&sl->rebuilds, __ATOMIC_RELAXED);
    out->build_ms = __atomic_load_n(&sl->build_ms, __ATOMIC_RELAXED);
    pthread_rwlock_unlock(&sl->lock);
    return ok;
}

void segsvc_metrics(segsvc *s, FILE *f) {
    static const char *const names[][2] = {
        {"siyu_segment_customers", "Customers held by the tenant's segment engine."},
        {"siyu_segment_events", "Events held by the tenant's segment engine."},
        {"siyu_segment_bytes", "Approximate memory of the tenant's segment engine."},
        {"siyu_segment_changes_applied_total", "Committed changes applied to the engine in place."},
        {"siyu_segment_rebuilds_total", "Engine rebuilds after a change it could not follow."},
        {"siyu_segment_build_ms", "Duration of the latest engine build."},
    };
    pthread_mutex_lock(&s->mu);
    size_t n = s->nslots;
    int64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    for (size_t i = 0; ids && i < n; i++)
        ids[i] = s->slots[i]->tenant_id;
    pthread_mutex_unlock(&s->mu);
    if (!ids) return;
    for (int m = 0; m < 6; m++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", names[m][0], names[m][1], names[m][0],
                m == 3 || m == 4 ? "counter" : "gauge");
        for (size_t i = 0; i < n; i++) {
            segsvc_stats st;
            if (!segsvc_stats_get(s, ids[i], &st)) continue;
            unsigned long long v[6] = {st.customers, st.events,   st.bytes,
                                       st.applied,   st.rebuilds, (unsigned long long)st.build_ms};
            fprintf(f, "%s{tenant=\"%lld\"} %llu\n", names[m][0], (long long)ids[i], v[m]);
        }
    }
    free(ids);
}
