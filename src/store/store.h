/* store.h — the system of record: SQLite in WAL mode, one writer thread.
 *
 * Writes: a caller builds a store_write_fn and calls store_write(); the writer
 * thread runs queued functions in one transaction (group commit), each inside
 * its own SAVEPOINT so one failing command does not undo its neighbours,
 * commits with synchronous=FULL, and only then wakes the callers. A write that
 * store_write() reported as 0 is on disk.
 *
 * Reads: store_reader_acquire() hands out a pooled read-only connection with
 * an open read transaction (a consistent snapshot); store_reader_release()
 * ends it. Readers never block the writer (WAL).
 *
 * Ownership: the store owns every connection and cached statement. Statements
 * returned by store_conn_stmt() are owned by the connection and must not be
 * finalized by callers; they come back reset with bindings cleared. */
#ifndef SIYU_STORE_H
#define SIYU_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

typedef struct store store;
typedef struct store_conn store_conn;

typedef struct store_migration {
    int version;
    const char *name;
    const char *sql;
} store_migration;
extern const store_migration store_migrations[]; /* generated, ends with {0} */

typedef struct store_options {
    bool writer_thread; /* true for `siyu serve`; false for CLI (inline writes) */
    int batch_max;      /* max commands per transaction (default 4096) */
    int queue_max;      /* max queued commands before SIYU_EBUSY (default 20000) */
    int readers_max;    /* max pooled read connections (default 16) */
} store_options;

typedef struct store_stats {
    int64_t queue_depth;
    int64_t commits;
    int64_t commands;
    int64_t batch_hist[8]; /* batch sizes: 1, <=4, <=16, <=64, <=256, <=1024, <=4096, more */
} store_stats;

/* A write step. Runs on the writer thread inside a savepoint; returns 0 or a
 * negative SIYU_E* code (which rolls back only this step). */
typedef int (*store_write_fn)(store_conn *c, void *arg);

/* Opens (creating if needed) DIR/siyu.db, applies pending migrations and, if
 * opts->writer_thread, starts the writer. Returns NULL and fills err on failure.
 * Free with store_close(). */
store *store_open(const char *dir, const store_options *opts, siyu_err *err);

/* Drains queued writes, stops the writer, closes every connection. NULL ok. */
void store_close(store *st);

/* Runs fn durably (see above). Returns fn's result, SIYU_EBUSY when the queue
 * is full, SIYU_ECLOSED when closing, SIYU_EIO when the commit failed. */
int store_write(store *st, store_write_fn fn, void *arg);

/* Called on the writer thread after the batch holding the command committed
 * (rc as store_write would return). Must be quick and must not call
 * store_write. */
typedef void (*store_done_fn)(void *cb_arg, int rc);

/* Queues fn without waiting; done(cb_arg, rc) runs once it is durable (or
 * failed). Returns 0 when queued, else SIYU_EBUSY/SIYU_ECLOSED/SIYU_ENOMEM and
 * done is never called. Without a writer thread it runs inline and calls done
 * before returning 0. */
int store_write_async(store *st, store_write_fn fn, void *arg, store_done_fn done, void *cb_arg);

store_conn *store_reader_acquire(store *st);
void store_reader_release(store *st, store_conn *c);

/* Prepared statement for sql, cached per connection (sql is compared by
 * content). NULL on a prepare error (logged). */
sqlite3_stmt *store_conn_stmt(store_conn *c, const char *sql);
sqlite3 *store_conn_db(store_conn *c);
/* Runs sql without results. 0 or SIYU_EIO/SIYU_ECONFLICT. */
int store_conn_exec(store_conn *c, const char *sql);
/* Maps a sqlite result code to SIYU_E* (SQLITE_CONSTRAINT → SIYU_ECONFLICT). */
int store_rc(int sqlite_rc);

/* ---- statement helpers --------------------------------------------------
 * For statements from store_conn_stmt(): they come with bindings cleared, so
 * a parameter left unbound is NULL. Text is bound SQLITE_STATIC: the string
 * must stay valid until the statement has been stepped (store_stmt_run and
 * store_stmt_query_id reset it before returning). */

/* Steps st (already bound) to the end, ignoring any rows, and resets it.
 * 0 or the failing step's SIYU_E* code (store_rc). */
int store_stmt_run(sqlite3_stmt *st);

/* Steps a query whose column 0 is an id and resets it: 0 with *id set (and
 * *col2 = column 1 when col2 is not NULL), 1 when there is no row, or a
 * negative SIYU_E* code. */
int store_stmt_query_id(sqlite3_stmt *st, int64_t *id, int64_t *col2);

/* Binds s at parameter i, or NULL when s is NULL (s is not copied). */
void store_bind_text(sqlite3_stmt *st, int i, const char *s);

/* Binds v at parameter i when present, else NULL. */
void store_bind_opt_int(sqlite3_stmt *st, int i, int64_t v, bool present);

/* Rows changed by the connection's last INSERT/UPDATE/DELETE. */
int64_t store_conn_changes(store_conn *c);

/* Rowid of the connection's last successful INSERT. */
int64_t store_conn_last_id(store_conn *c);

void store_stats_get(store *st, store_stats *out);
int store_schema_version(store *st);

/* Current Unix time in seconds. */
int64_t siyu_now(void);

/* The input of a write step that creates, replaces or deletes a record
 * described by a JSON body (welcome rules, tag rules): id is the record
 * (filled on create), result the record as JSON afterwards (NULL after a
 * delete; the caller decrefs), err names the offending field. */
typedef struct store_json_input {
    int64_t tenant_id;
    int64_t id;
    const struct json_t *body;
    const char *actor;
    struct json_t *result;
    siyu_err err;
} store_json_input;

/* Write hooks, for a module that follows what commits (src/segment/segsvc.c
 * keeps its in-memory engines current with them). All run on the thread that
 * writes (the writer thread, or the caller in inline mode), never
 * concurrently:
 *   mark(arg)          before each write step; returns a position
 *   rollback(arg, m)   the step that began at position m failed and its
 *                      savepoint was rolled back
 *   commit(arg, c, ok) after the batch's COMMIT (ok) or ROLLBACK (!ok), with
 *                      the writer's connection (no transaction open), before
 *                      any caller of the batch hears of it. Must not call
 *                      store_write. */
typedef struct store_hooks {
    void *arg;
    size_t (*mark)(void *arg);
    void (*rollback)(void *arg, size_t mark);
    void (*commit)(void *arg, store_conn *c, bool ok);
} store_hooks;

/* Installs h (copied; NULL removes). Takes effect from the next batch. */
void store_set_hooks(store *st, const store_hooks *h);

#endif
