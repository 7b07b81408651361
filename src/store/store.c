/* store.c — SQLite connections, migrations, the writer thread, the reader pool.
 *
 * Data structures:
 *   store.queue      singly linked FIFO of store_cmd living on callers' stacks;
 *                    guarded by store.mu, the writer waits on store.wake.
 *   store.readers    free list of idle read connections (guarded by store.mu).
 *   store_conn.cache open-addressed table of prepared statements by SQL text.
 * Invariants: only the writer thread (or, without a writer thread, the caller
 * holding store.wmu) touches store.wconn; a store_cmd is touched by the writer
 * until cmd.done is set under store.mu, then only by its owner. */
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util/log.h"

#define STMT_CACHE 512

struct store_conn {
    sqlite3 *db;
    struct {
        char *sql;
        sqlite3_stmt *stmt;
    } cache[STMT_CACHE];
    store_conn *next_free;
};

typedef struct store_cmd {
    store_write_fn fn;
    void *arg;
    int rc;
    bool done;
    store_done_fn cb; /* async: heap command, freed by the writer after cb */
    void *cb_arg;
    struct store_cmd *next;
} store_cmd;

struct store {
    char *path;
    store_options opts;
    store_conn *wconn;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* writer: work arrived or closing */
    pthread_cond_t done; /* callers: a batch finished */
    store_cmd *head, *tail;
    int64_t depth;
    bool closing;
    bool has_thread;
    pthread_t writer;
    /* Checkpointer: copies WAL frames into the database off the writer thread
     * so commits never pay for a checkpoint (a latency spike otherwise). */
    pthread_t ckpt;
    pthread_mutex_t ckmu;
    pthread_cond_t ckwake;
    bool ckpt_due, ckpt_stop;
    int64_t checkpoints;
    pthread_mutex_t wmu; /* inline-write mode */
    store_hooks hooks;   /* guarded by mu and wmu; the writer copies it per batch */
    store_conn *readers;
    int readers_open;
    store_stats stats;
};

int64_t siyu_now(void) {
    return (int64_t)time(NULL);
}

int store_rc(int rc) {
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return SIYU_OK;
    case SQLITE_CONSTRAINT:
        return SIYU_ECONFLICT;
    case SQLITE_NOMEM:
        return SIYU_ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return SIYU_EBUSY;
    case SQLITE_TOOBIG:
        return SIYU_ETOOBIG;
    }
    return SIYU_EIO;
}

int store_stmt_run(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_rc(rc);
}

int store_stmt_query_id(sqlite3_stmt *st, int64_t *id, int64_t *col2) {
    int rc = sqlite3_step(st);
    int ret = 1;
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        if (col2) *col2 = sqlite3_column_int64(st, 1);
        ret = 0;
    } else if (rc != SQLITE_DONE) {
        ret = store_rc(rc);
    }
    sqlite3_reset(st);
    return ret;
}

void store_bind_text(sqlite3_stmt *st, int i, const char *s) {
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

void store_bind_opt_int(sqlite3_stmt *st, int i, int64_t v, bool present) {
    if (present)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

int64_t store_conn_changes(store_conn *c) {
    return sqlite3_changes(store_conn_db(c));
}

int64_t store_conn_last_id(store_conn *c) {
    return sqlite3_last_insert_rowid(store_conn_db(c));
}

static unsigned sql_hash(const char *s) {
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

sqlite3_stmt *store_conn_stmt(store_conn *c, const char *sql) {
    unsigned h = sql_hash(sql) % STMT_CACHE;
    for (unsigned i = 0; i < STMT_CACHE; i++) {
        unsigned k = (h + i) % STMT_CACHE;
        if (c->cache[k].sql == NULL) {
            sqlite3_stmt *st = NULL;
            int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
            if (rc != SQLITE_OK) {
                log_error("prepare failed: %s", sqlite3_errmsg(c->db));
                return NULL;
            }
            c->cache[k].sql = strdup(sql);
            if (!c->cache[k].sql) {
                sqlite3_finalize(st);
                return NULL;
            }
            c->cache[k].stmt = st;
            return st;
        }
        if (strcmp(c->cache[k].sql, sql) == 0) {
            sqlite3_stmt *st = c->cache[k].stmt;
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return st;
        }
    }
    /* Cache full: prepare would leak; this is a programming error (too many
     * distinct statements), so report it loudly. */
    log_error("statement cache full");
    return NULL;
}

sqlite3 *store_conn_db(store_conn *c) {
    return c->db;
}

int store_conn_exec(store_conn *c, const char *sql) {
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        log_error("exec failed: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return store_rc(rc);
    }
    return 0;
}

static void conn_free(store_conn *c) {
    if (!c) return;
    for (int i = 0; i < STMT_CACHE; i++) {
        if (c->cache[i].sql) {
            sqlite3_finalize(c->cache[i].stmt);
            free(c->cache[i].sql);
        }
    }
    sqlite3_close(c->db);
    free(c);
}

static store_conn *conn_open(const char *path, bool readonly, siyu_err *err) {
    store_conn *c = calloc(1, sizeof *c);
    if (!c) {
        siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    flags |= SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        siyu_err_set(err, SIYU_EIO, "data", "cannot open database %s: %s", path,
                     c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        conn_free(c);
        return NULL;
    }
    sqlite3_busy_timeout(c->db, 10000);
    sqlite3_extended_result_codes(c->db, 1);
    if (!readonly &&
        store_conn_exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                           "PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=2000;") != 0) {
        siyu_err_set(err, SIYU_EIO, "data", "cannot configure database %s", path);
        conn_free(c);
        return NULL;
    }
    if (store_conn_exec(c, "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;") != 0) {
        conn_free(c);
        siyu_err_set(err, SIYU_EIO, "data", "cannot configure database %s", path);
        return NULL;
    }
    return c;
}

static int user_version(store_conn *c) {
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int migrate(store_conn *c, siyu_err *err) {
    if (store_conn_exec(c, "BEGIN IMMEDIATE") != 0)
        return siyu_err_set(err, SIYU_EIO, "data", "cannot lock database for migration");
    int cur = user_version(c);
    for (const store_migration *m = store_migrations; m->name; m++) {
        if (m->version <= cur) continue;
        char *msg = NULL;
        if (sqlite3_exec(c->db, m->sql, NULL, NULL, &msg) != SQLITE_OK) {
            siyu_err_set(err, SIYU_EIO, "migration", "migration %s failed: %s", m->name,
                         msg ? msg : "?");
            sqlite3_free(msg);
            store_conn_exec(c, "ROLLBACK");
            return SIYU_EIO;
        }
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", m->version);
        store_conn_exec(c, sql);
        log_info("applied migration %s", m->name);
    }
    if (store_conn_exec(c, "COMMIT") != 0) {
        store_conn_exec(c, "ROLLBACK");
        return siyu_err_set(err, SIYU_EIO, "data", "migration commit failed");
    }
    return 0;
}

int store_schema_version(store *st) {
    int v;
    pthread_mutex_lock(&st->wmu);
    v = user_version(st->wconn);
    pthread_mutex_unlock(&st->wmu);
    return v;
}

/* Applies one command inside a savepoint. */
/* Runs a statement-only command through the statement cache (no re-parse per
 * call, unlike sqlite3_exec). 0 or a SIYU_E* code. */
static int step_cached(store_conn *c, const char *sql) {
    sqlite3_stmt *st = store_conn_stmt(c, sql);
    if (!st) return SIYU_EIO;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) return 0;
    log_error("%s failed: %s", sql, sqlite3_errmsg(c->db));
    return store_rc(rc);
}

/* Applies one command inside a savepoint. */
static void run_cmd(store_conn *c, store_cmd *cmd, const store_hooks *h) {
    if (step_cached(c, "SAVEPOINT cmd") != 0) {
        cmd->rc = SIYU_EIO;
        return;
    }
    size_t mark = h->mark ? h->mark(h->arg) : 0;
    cmd->rc = cmd->fn(c, cmd->arg);
    if (cmd->rc < 0) {
        step_cached(c, "ROLLBACK TO cmd");
        if (h->rollback) h->rollback(h->arg, mark);
    }
    step_cached(c, "RELEASE cmd");
}

void store_set_hooks(store *st, const store_hooks *h) {
    pthread_mutex_lock(&st->wmu);
    pthread_mutex_lock(&st->mu);
    if (h)
        st->hooks = *h;
    else
        memset(&st->hooks, 0, sizeof st->hooks);
    pthread_mutex_unlock(&st->mu);
    pthread_mutex_unlock(&st->wmu);
}

static void hist_add(store_stats *s, int n) {
    int b = n <= 1      ? 0
            : n <= 4    ? 1
            : n <= 16   ? 2
            : n <= 64   ? 3
            : n <= 256  ? 4
            : n <= 1024 ? 5
            : n <= 4096 ? 6
                        : 7;
    s->batch_hist[b]++;
}

#define CKPT_PAGES 2000         /* WAL size (pages) that wakes the checkpointer */
#define CKPT_INLINE_PAGES 16000 /* WAL size at which the writer checkpoints itself */

/* Runs on the writer after each commit. The checkpointer copies frames in the
 * background, but under sustained load it never catches the WAL's end, and a
 * WAL can only restart from its beginning once every frame is copied; so when
 * the WAL grows past CKPT_INLINE_PAGES the writer finishes the job itself
 * (cheap: most frames are already copied), which bounds the WAL file. */
static int wal_hook(void *p, sqlite3 *db, const char *name, int pages) {
    store *st = p;
    if (pages >= CKPT_INLINE_PAGES) {
        int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn("checkpoint failed: %s", sqlite3_errstr(rc));
        return SQLITE_OK;
    }
    if (pages >= CKPT_PAGES) {
        pthread_mutex_lock(&st->ckmu);
        st->ckpt_due = true;
        pthread_cond_signal(&st->ckwake);
        pthread_mutex_unlock(&st->ckmu);
    }
    return SQLITE_OK;
}

static void *ckpt_main(void *p) {
    store *st = p;
    siyu_err err;
    store_conn *c = conn_open(st->path, false, &err);
    if (!c) {
        log_error("checkpointer: %s", err.msg);
        return NULL;
    }
    pthread_mutex_lock(&st->ckmu);
    for (;;) {
        while (!st->ckpt_due && !st->ckpt_stop)
            pthread_cond_wait(&st->ckwake, &st->ckmu);
        if (st->ckpt_stop) break;
        st->ckpt_due = false;
        pthread_mutex_unlock(&st->ckmu);
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn("checkpoint failed: %s", sqlite3_errstr(rc));
        pthread_mutex_lock(&st->ckmu);
        st->checkpoints++;
    }
    pthread_mutex_unlock(&st->ckmu);
    conn_free(c);
    return NULL;
}

static void *writer_main(void *p) {
    store *st = p;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (!st->head && !st->closing)
            pthread_cond_wait(&st->wake, &st->mu);
        if (!st->head && st->closing) break;
        store_cmd *batch = st->head, *last = batch;
        int n = 1;
        while (last->next && n < st->opts.batch_max) {
            last = last->next;
            n++;
        }
        st->head = last->next;
        if (!st->head) st->tail = NULL;
        last->next = NULL;
        st->depth -= n;
        store_hooks hooks = st->hooks;
        pthread_mutex_unlock(&st->mu);

        int brc = step_cached(st->wconn, "BEGIN IMMEDIATE");
        if (brc == 0) {
            for (store_cmd *c = batch; c; c = c->next)
                run_cmd(st->wconn, c, &hooks);
            brc = step_cached(st->wconn, "COMMIT");
            if (brc != 0) store_conn_exec(st->wconn, "ROLLBACK");
        }
        if (hooks.commit) hooks.commit(hooks.arg, st->wconn, brc == 0);
        /* Asynchronous callers hear first, without st->mu: their callbacks
         * take locks of their own (an HTTP connection's), which must never
         * nest inside st->mu while those callers hold them to enqueue. */
        store_cmd *waiters = NULL, **wtail = &waiters;
        for (store_cmd *c = batch; c;) {
            store_cmd *next = c->next;
            if (brc != 0) c->rc = SIYU_EIO;
            if (c->cb) {
                c->cb(c->cb_arg, c->rc);
                free(c);
            } else {
                *wtail = c;
                wtail = &c->next;
            }
            c = next;
        }
        *wtail = NULL;
        pthread_mutex_lock(&st->mu);
        for (store_cmd *c = waiters; c;) {
            store_cmd *next = c->next; /* c lives on its waiter's stack */
            c->done = true;
            c = next;
        }
        st->stats.commits++;
        st->stats.commands += n;
        hist_add(&st->stats, n);
        pthread_cond_broadcast(&st->done);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Caller holds st->mu. */
static int enqueue_locked(store *st, store_cmd *cmd) {
    if (st->closing) return SIYU_ECLOSED;
    if (st->depth >= st->opts.queue_max) return SIYU_EBUSY;
    if (st->tail)
        st->tail->next = cmd;
    else
        st->head = cmd;
    st->tail = cmd;
    st->depth++;
    pthread_cond_signal(&st->wake);
    return 0;
}

static int write_inline(store *st, store_write_fn fn, void *arg) {
    /* Inline mode (CLI): same semantics, one command per transaction. */
    pthread_mutex_lock(&st->wmu);
    store_cmd cmd = {.fn = fn, .arg = arg};
    store_hooks hooks = st->hooks;
    int rc = store_conn_exec(st->wconn, "BEGIN IMMEDIATE");
    if (rc == 0) {
        run_cmd(st->wconn, &cmd, &hooks);
        rc = store_conn_exec(st->wconn, "COMMIT");
        if (rc != 0) store_conn_exec(st->wconn, "ROLLBACK");
    }
    if (hooks.commit) hooks.commit(hooks.arg, st->wconn, rc == 0);
    pthread_mutex_unlock(&st->wmu);
    return rc != 0 ? SIYU_EIO : cmd.rc;
}

int store_write_async(store *st, store_write_fn fn, void *arg, store_done_fn done, void *cb_arg) {
    if (!st->has_thread) {
        done(cb_arg, write_inline(st, fn, arg));
        return 0;
    }
    store_cmd *cmd = calloc(1, sizeof *cmd);
    if (!cmd) return SIYU_ENOMEM;
    cmd->fn = fn;
    cmd->arg = arg;
    cmd->cb = done;
    cmd->cb_arg = cb_arg;
    pthread_mutex_lock(&st->mu);
    int rc = enqueue_locked(st, cmd);
    pthread_mutex_unlock(&st->mu);
    if (rc != 0) free(cmd);
    return rc;
}

int store_write(store *st, store_write_fn fn, void *arg) {
    if (!st->has_thread) return write_inline(st, fn, arg);
    {
        store_cmd cmd = {.fn = fn, .arg = arg};
        pthread_mutex_lock(&st->mu);
        int rc = enqueue_locked(st, &cmd);
        if (rc == 0)
            while (!cmd.done)
                pthread_cond_wait(&st->done, &st->mu);
        pthread_mutex_unlock(&st->mu);
        return rc != 0 ? rc : cmd.rc;
    }
}

store_conn *store_reader_acquire(store *st) {
    pthread_mutex_lock(&st->mu);
    store_conn *c = st->readers;
    if (c) st->readers = c->next_free;
    pthread_mutex_unlock(&st->mu);
    if (!c) {
        siyu_err err;
        c = conn_open(st->path, true, &err);
        if (!c) {
            log_error("%s", err.msg);
            return NULL;
        }
    }
    if (store_conn_exec(c, "BEGIN") != 0) {
        conn_free(c);
        return NULL;
    }
    return c;
}

void store_reader_release(store *st, store_conn *c) {
    if (!c) return;
    if (sqlite3_get_autocommit(c->db) == 0) store_conn_exec(c, "COMMIT");
    pthread_mutex_lock(&st->mu);
    int idle = 0;
    for (store_conn *r = st->readers; r; r = r->next_free)
        idle++;
    if (idle < st->opts.readers_max) {
        c->next_free = st->readers;
        st->readers = c;
        c = NULL;
    }
    pthread_mutex_unlock(&st->mu);
    conn_free(c);
}

void store_stats_get(store *st, store_stats *out) {
    pthread_mutex_lock(&st->mu);
    *out = st->stats;
    out->queue_depth = st->depth;
    pthread_mutex_unlock(&st->mu);
}

static void stop_ckpt(store *st) {
    pthread_mutex_lock(&st->ckmu);
    st->ckpt_stop = true;
    pthread_cond_signal(&st->ckwake);
    pthread_mutex_unlock(&st->ckmu);
    pthread_join(st->ckpt, NULL);
}

/* Before SQLite's first use: no global allocation statistics (each malloc
 * would otherwise take a global mutex). */
static void sqlite_setup(void) {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

store *store_open(const char *dir, const store_options *opts, siyu_err *err) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_setup);
    store *st = calloc(1, sizeof *st);
    if (!st) {
        siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    st->opts = opts ? *opts : (store_options){0};
    if (st->opts.batch_max <= 0) st->opts.batch_max = 4096;
    if (st->opts.queue_max <= 0) st->opts.queue_max = 20000;
    if (st->opts.readers_max <= 0) st->opts.readers_max = 16;
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->wmu, NULL);
    pthread_cond_init(&st->wake, NULL);
    pthread_cond_init(&st->done, NULL);
    pthread_mutex_init(&st->ckmu, NULL);
    pthread_cond_init(&st->ckwake, NULL);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        siyu_err_set(err, SIYU_EIO, "data", "cannot create data directory %s: %s", dir,
                     strerror(errno));
        goto fail;
    }
    size_t n = strlen(dir) + 16;
    st->path = malloc(n);
    if (!st->path) goto fail;
    snprintf(st->path, n, "%s/siyu.db", dir);
    st->wconn = conn_open(st->path, false, err);
    if (!st->wconn) goto fail;
    if (migrate(st->wconn, err) != 0) goto fail;
    if (st->opts.writer_thread) {
        if (pthread_create(&st->ckpt, NULL, ckpt_main, st) != 0) {
            siyu_err_set(err, SIYU_EIO, NULL, "cannot start checkpoint thread");
            goto fail;
        }
        sqlite3_wal_hook(st->wconn->db, wal_hook, st); /* replaces auto-checkpointing */
        if (pthread_create(&st->writer, NULL, writer_main, st) != 0) {
            siyu_err_set(err, SIYU_EIO, NULL, "cannot start writer thread");
            stop_ckpt(st);
            goto fail;
        }
        st->has_thread = true;
    }
    return st;
fail:
    conn_free(st->wconn);
    free(st->path);
    free(st);
    return NULL;
}

void store_close(store *st) {
    if (!st) return;
    if (st->has_thread) {
        pthread_mutex_lock(&st->mu);
        st->closing = true;
        pthread_cond_signal(&st->wake);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->writer, NULL);
        stop_ckpt(st);
        /* Fold the WAL back into the database file on a clean shutdown. */
        sqlite3_wal_checkpoint_v2(st->wconn->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    }
    while (st->readers) {
        store_conn *c = st->readers;
        st->readers = c->next_free;
        conn_free(c);
    }
    conn_free(st->wconn);
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->wmu);
    pthread_cond_destroy(&st->wake);
    pthread_cond_destroy(&st->done);
    pthread_mutex_destroy(&st->ckmu);
    pthread_cond_destroy(&st->ckwake);
    free(st->path);
    free(st);
}
