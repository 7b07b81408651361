/* mirror.h — comparing Siyu's store with the simulator's world, for the
 * integration tests that drive `siyu serve` with `siyu wecom-sim` (t_wired).
 * Both sides become sorted lists of strings ("ext|userid", "ext|userid|tag",
 * "chat|member", ...) built from /sim/dump and from SQL on the data
 * directory; a difference is reported with its first few lines. Static
 * functions: include it from one test file each. */
#ifndef SIYU_TEST_MIRROR_H
#define SIYU_TEST_MIRROR_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- sorted string lists ------------------------------------------------ */

typedef struct slist {
    char **v;
    size_t n, cap;
} slist;

static void sl_add(slist *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sl_add(slist *l, const char *fmt, ...) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        assert_non_null(l->v);
    }
    va_list ap;
    va_start(ap, fmt);
    assert_true(vasprintf(&l->v[l->n++], fmt, ap) >= 0);
    va_end(ap);
}

static int sl_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void sl_free(slist *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Asserts both lists hold the same strings; frees them. */
static void sl_expect_equal(const char *what, slist *sim, slist *siyu) {
    qsort(sim->v, sim->n, sizeof *sim->v, sl_cmp);
    qsort(siyu->v, siyu->n, sizeof *siyu->v, sl_cmp);
    size_t i = 0, j = 0;
    int diffs = 0;
    while ((i < sim->n || j < siyu->n) && diffs < 5) {
        int c = i == sim->n ? 1 : j == siyu->n ? -1 : strcmp(sim->v[i], siyu->v[j]);
        if (c == 0) {
            i++, j++;
            continue;
        }
        fprintf(stderr, "%s: %s only in %s\n", what, c < 0 ? sim->v[i] : siyu->v[j],
                c < 0 ? "the simulator" : "Siyu");
        c < 0 ? i++ : j++;
        diffs++;
    }
    fprintf(stderr, "%s: simulator %zu, Siyu %zu%s\n", what, sim->n, siyu->n,
            diffs ? " — DIFFERENT" : "");
    assert_int_equal(diffs, 0);
    sl_free(sim);
    sl_free(siyu);
}

static void sql_list(const t_wired *w, const char *sql, slist *out) {
    sqlite3 *db = t_db_open(w->dir, SQLITE_OPEN_READONLY);
    assert_non_null(db);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        sl_add(out, "%s", s ? s : "<null>");
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static json_t *mirror_dump(t_wired *w) {
    return t_call(&w->sim, "GET", "/sim/dump", NULL, NULL, 200);
}

/* ---- comparing the two sides -------------------------------------------- */

static const char SQL_PAIRS[] =
    "SELECT i.value || '|' || e.userid FROM relationship r JOIN identity i ON "
    "i.tenant_id=r.tenant_id AND i.customer_id=r.customer_id AND "
    "i.kind='wecom_external_userid' JOIN employee e ON e.id=r.employee_id WHERE "
    "r.tenant_id=1 AND r.status='active'";
static const char SQL_FOLLOW_TAGS[] =
    "SELECT i.value || '|' || e.userid || '|' || t.wecom_id FROM relationship_tag rt JOIN "
    "relationship r ON r.tenant_id=rt.tenant_id AND r.customer_id=rt.customer_id AND "
    "r.employee_id=rt.employee_id AND r.status='active' JOIN identity i ON "
    "i.tenant_id=rt.tenant_id AND i.customer_id=rt.customer_id AND "
    "i.kind='wecom_external_userid' JOIN employee e ON e.id=rt.employee_id JOIN tag t ON "
    "t.id=rt.tag_id WHERE rt.tenant_id=1";
static const char SQL_CUSTOMERS[] =
    "SELECT DISTINCT i.value || '|' || coalesce(c.name, '') || '|' || coalesce(c.gender, '') "
    "FROM relationship r JOIN customer c ON c.id=r.customer_id JOIN identity i ON "
    "i.tenant_id=c.tenant_id AND i.customer_id=c.id AND i.kind='wecom_external_userid' WHERE "
    "r.tenant_id=1 AND r.status='active'";
static const char SQL_TAGS[] =
    "SELECT g.wecom_id || '|' || g.name || '|' || t.wecom_id || '|' || t.name FROM tag t JOIN "
    "tag_group g ON g.id=t.group_id WHERE t.tenant_id=1 AND t.wecom_id IS NOT NULL";
static const char SQL_GROUPS[] =
    "SELECT chat_id || '|' || coalesce(name, '') || '|' || coalesce(owner_userid, '') FROM "
    "group_chat WHERE tenant_id=1 AND status='active'";
static const char SQL_MEMBERS[] =
    "SELECT g.chat_id || '|' || m.member_id FROM group_member m JOIN group_chat g ON "
    "g.id=m.group_id WHERE m.tenant_id=1 AND m.status='in' AND g.status='active'";

/* Compares everything a full sync mirrors. */
static void mirror_expect(t_wired *w) {
    json_t *d = mirror_dump(w);
    assert_non_null(d);
    slist a = {0}, b = {0}, fa = {0}, fb = {0}, ca = {0}, cb = {0};
    size_t i, j, k;
    json_t *c, *f, *t, *g, *m;
    json_array_foreach(json_object_get(d, "customers"), i, c) {
        const char *ext = json_string_value(json_object_get(c, "external_userid"));
        json_t *fl = json_object_get(c, "follow");
        if (json_array_size(fl))
            sl_add(&ca, "%s|%s|%lld", ext, json_string_value(json_object_get(c, "name")),
                   (long long)json_integer_value(json_object_get(c, "gender")));
        json_array_foreach(fl, j, f) {
            const char *uid = json_string_value(json_object_get(f, "userid"));
            sl_add(&a, "%s|%s", ext, uid);
            json_array_foreach(json_object_get(f, "tags"), k, t)
                sl_add(&fa, "%s|%s|%s", ext, uid, json_string_value(t));
        }
    }
    sql_list(w, SQL_PAIRS, &b);
    sl_expect_equal("active relationships", &a, &b);
    sql_list(w, SQL_FOLLOW_TAGS, &fb);
    sl_expect_equal("tags per follow record", &fa, &fb);
    sql_list(w, SQL_CUSTOMERS, &cb);
    sl_expect_equal("customers (id, name, gender)", &ca, &cb);
    json_array_foreach(json_object_get(d, "tag_groups"), i, g) {
        json_array_foreach(json_object_get(g, "tags"), j, t)
            sl_add(&a, "%s|%s|%s|%s", json_string_value(json_object_get(g, "group_id")),
                   json_string_value(json_object_get(g, "name")),
                   json_string_value(json_object_get(t, "id")),
                   json_string_value(json_object_get(t, "name")));
    }
    sql_list(w, SQL_TAGS, &b);
    sl_expect_equal("corp tags", &a, &b);
    json_array_foreach(json_object_get(d, "groups"), i, g) {
        const char *status = json_string_value(json_object_get(g, "status"));
        if (status && strcmp(status, "active") != 0) continue;
        if (json_is_true(json_object_get(g, "dismissed"))) continue;
        const char *cid = json_string_value(json_object_get(g, "chat_id"));
        sl_add(&a, "%s|%s|%s", cid, json_string_value(json_object_get(g, "name")),
               json_string_value(json_object_get(g, "owner")));
        json_array_foreach(json_object_get(g, "members"), j, m)
            sl_add(&fa, "%s|%s", cid, json_string_value(json_object_get(m, "userid")));
    }
    sql_list(w, SQL_GROUPS, &b);
    sl_expect_equal("groups", &a, &b);
    sql_list(w, SQL_MEMBERS, &fb);
    sl_expect_equal("group members", &fa, &fb);
    json_decref(d);
}

/* Waits until the server's refresh queue is empty (callbacks the simulator
 * pushed are acknowledged before /sim/act and /sim/run return, so their
 * refreshes are queued by then). */
static void mirror_wait_refresh(t_wired *w) {
    double t0 = now_s();
    for (;;) {
        json_t *j = t_call(&w->srv, "GET", "/api/v1/sync", w->admin, NULL, 200);
        json_int_t pending =
            json_integer_value(json_object_get(json_object_get(j, "refresh"), "pending"));
        json_decref(j);
        if (pending == 0) return;
        assert_true(now_s() - t0 < 20);
        usleep(50000);
    }
}

/* Waits (up to limit_s) until the simulator has replayed its history and
 * every queued callback was answered. */
static __attribute__((unused)) void mirror_wait_history(t_wired *w, double limit_s) {
    double t0 = now_s();
    for (;;) {
        json_t *st = t_call(&w->sim, "GET", "/sim/stats", NULL, NULL, 200);
        bool done =
            json_is_true(json_object_get(st, "history_done")) &&
            json_integer_value(json_object_get(json_object_get(st, "callbacks"), "queued")) == 0;
        json_decref(st);
        if (done) return;
        assert_true(now_s() - t0 < limit_s);
        usleep(100000);
    }
}

#endif
