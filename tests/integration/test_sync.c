/* test_sync.c — full sync and callback-driven refresh against the real
 * `siyu serve` and the real `siyu wecom-sim` on loopback.
 *
 * One fixture for the file (testlib's t_wired): a data directory with
 * tenant 1 (corp id, callback token, AES key and secret the simulator
 * shares), a server whose WeCom base URL is the simulator, and a simulator
 * seeded with a few thousand customers and no replayed history (Siyu learns
 * everything from the sync) that pushes its live callbacks to the server.
 * Tests run in order and build on each other: the first sync fills Siyu,
 * later ones reconcile changes.
 *
 * Comparisons take both sides as sorted lists of strings ("ext|userid",
 * "ext|userid|tag", "chat|member", ...) built from /sim/dump and from SQL on
 * the data directory, and report the first difference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mirror.h"
#include "testlib.h"

#define CUSTOMERS "3000"

static t_wired F;

static int setup(void **state) {
    (void)state;
    const char *sim_args[] = {"--seed",        "7",  "--customers", CUSTOMERS, "--employees", "60",
                              "--groups",      "80", "--tags",      "30",      "--stores",    "5",
                              "--departments", "4",  "--channels",  "20",      NULL};
    const char *srv_args[] = {"--sync-interval", "0", NULL};
    return t_wired_start(&F, sim_args, srv_args) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    t_wired_stop(&F);
    return 0;
}

/* ---- driving syncs -------------------------------------------------------- */

/* Starts a sync through the API and waits for its end; returns the final
 * run (caller decrefs). *seen_running is set when a poll saw it running. */
static json_t *sync_api(bool *seen_running) {
    json_t *run = t_call(&F.srv, "POST", "/api/v1/sync", F.admin, "{}", 202);
    assert_string_equal(json_string_value(json_object_get(run, "state")), "running");
    json_int_t id = json_integer_value(json_object_get(run, "id"));
    json_decref(run);
    double t0 = now_s();
    for (;;) {
        json_t *j = t_call(&F.srv, "GET", "/api/v1/sync", F.admin, NULL, 200);
        assert_int_equal(json_integer_value(json_object_get(j, "id")), id);
        const char *state = json_string_value(json_object_get(j, "state"));
        if (strcmp(state, "running") != 0) return j;
        if (seen_running) *seen_running = true;
        json_decref(j);
        assert_true(now_s() - t0 < 60);
        usleep(50000);
    }
}

static void expect_done(json_t *run) {
    const char *state = json_string_value(json_object_get(run, "state"));
    if (strcmp(state, "done") != 0)
        fail_msg("sync %s: %s", state, json_string_value(json_object_get(run, "error")));
    assert_string_equal(json_string_value(json_object_get(run, "phase")), "finished");
}

static long long counts_of(json_t *run, const char *entity, const char *what) {
    return json_integer_value(
        json_object_get(json_object_get(json_object_get(run, "counts"), entity), what));
}

/* ---- tests ------------------------------------------------------------------ */

static void test_full_sync_mirrors_sim(void **state) {
    (void)state;
    /* The first answer is slowed so the run is observably running. */
    json_decref(t_call(&F.sim, "POST", "/sim/fault", NULL,
                       "{\"path\":\"externalcontact/get_corp_tag_list\",\"delay_ms\":400,"
                       "\"count\":1}",
                       200));
    json_t *run = t_call(&F.srv, "POST", "/api/v1/sync", F.admin, "{}", 202);
    json_int_t id = json_integer_value(json_object_get(run, "id"));
    json_decref(run);
    t_resp r;
    assert_int_equal(t_api(&F.srv, "POST", "/api/v1/sync", F.admin, &r, "{}"), 0);
    t_expect_error(&r, 409, "conflict", NULL);
    json_t *j = t_call(&F.srv, "GET", "/api/v1/sync", F.admin, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "running");
    json_decref(j);
    double t0 = now_s();
    for (;;) {
        j = t_call(&F.srv, "GET", "/api/v1/sync", F.admin, NULL, 200);
        assert_int_equal(json_integer_value(json_object_get(j, "id")), id);
        if (strcmp(json_string_value(json_object_get(j, "state")), "running") != 0) break;
        json_decref(j);
        assert_true(now_s() - t0 < 60);
        usleep(50000);
    }
    expect_done(j);
    fprintf(stderr, "first sync: %lld calls, %lld records, %lld changes, %lld s\n",
            (long long)json_integer_value(json_object_get(j, "calls")),
            (long long)json_integer_value(json_object_get(j, "items")),
            (long long)json_integer_value(json_object_get(j, "changes")),
            (long long)json_integer_value(json_object_get(j, "elapsed_s")));
    assert_true(counts_of(j, "customers", "created") > 1000);
    assert_true(json_integer_value(json_object_get(j, "calls")) > 10);
    json_decref(j);
    mirror_expect(&F);
    json_t *runs = t_call(&F.srv, "GET", "/api/v1/sync/runs", F.admin, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(runs, "items")), 1);
    json_decref(runs);
}

static void test_second_sync_changes_nothing(void **state) {
    (void)state;
    /* An internal tag on a synced customer: a sync never touches it. */
    json_t *g =
        t_call(&F.srv, "POST", "/api/v1/tag-groups", F.admin, "{\"name\":\"Internal\"}", 201);
    char body[256];
    snprintf(body, sizeof body, "{\"group_id\":%lld,\"name\":\"Mine\"}",
             (long long)json_integer_value(json_object_get(g, "id")));
    json_decref(g);
    json_t *t = t_call(&F.srv, "POST", "/api/v1/tags", F.admin, body, 201);
    long long tag = json_integer_value(json_object_get(t, "id"));
    json_decref(t);
    long long cust = t_sql_int(F.dir, "SELECT min(customer_id) FROM relationship WHERE "
                                      "status='active'");
    snprintf(body, sizeof body, "{\"action\":\"tag\",\"tag_ids\":[%lld],\"customer_ids\":[%lld]}",
             tag, cust);
    json_decref(t_call(&F.srv, "POST", "/api/v1/tags/bulk", F.admin, body, 200));
    long long before = t_sql_int(F.dir, "SELECT max(updated_at) + count(*) FROM relationship");
    long long cust_sum = t_sql_int(F.dir, "SELECT max(updated_at) + count(*) FROM customer");
    sleep(1); /* a rewrite would show as a later updated_at */
    json_t *run = sync_api(NULL);
    expect_done(run);
    if (json_integer_value(json_object_get(run, "changes")) != 0) {
        char *s = json_dumps(json_object_get(run, "counts"), JSON_COMPACT);
        fail_msg("second sync changed things: %s", s);
    }
    json_decref(run);
    assert_int_equal(t_sql_int(F.dir, "SELECT max(updated_at) + count(*) FROM relationship"),
                     before);
    assert_int_equal(t_sql_int(F.dir, "SELECT max(updated_at) + count(*) FROM customer"), cust_sum);
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM customer_tag WHERE customer_id=%lld AND "
                               "tag_id=%lld",
                               cust, tag),
                     1);
}

/* A pair of the dump: the first customer with an active follow. */
static void some_pair(char *ext, size_t en, char *uid, size_t un, int skip) {
    json_t *d = mirror_dump(&F);
    size_t i;
    json_t *c;
    ext[0] = uid[0] = 0;
    json_array_foreach(json_object_get(d, "customers"), i, c) {
        json_t *f = json_array_get(json_object_get(c, "follow"), 0);
        if (!f || skip-- > 0) continue;
        snprintf(ext, en, "%s", json_string_value(json_object_get(c, "external_userid")));
        snprintf(uid, un, "%s", json_string_value(json_object_get(f, "userid")));
        break;
    }
    json_decref(d);
    assert_true(ext[0] && uid[0]);
}

static void test_missed_callbacks_reconciled(void **state) {
    (void)state;
    char ext[128], uid[128], ext2[128], uid2[128];
    some_pair(ext, sizeof ext, uid, sizeof uid, 3);
    some_pair(ext2, sizeof ext2, uid2, sizeof uid2, 10);
    /* A customer added, one deleted and one edited, no callback for any. */
    json_t *added = t_call(&F.sim, "POST", "/sim/act", NULL,
                           "{\"type\":\"add\",\"state\":\"missed\",\"deliver\":false}", 200);
    const char *new_ext = json_string_value(json_object_get(added, "external_userid"));
    assert_non_null(new_ext);
    char body[512];
    snprintf(body, sizeof body,
             "{\"type\":\"del_external_contact\",\"external_userid\":\"%s\",\"userid\":\"%s\","
             "\"deliver\":false}",
             ext, uid);
    json_decref(t_call(&F.sim, "POST", "/sim/act", NULL, body, 200));
    snprintf(body, sizeof body,
             "{\"type\":\"edit\",\"external_userid\":\"%s\",\"userid\":\"%s\","
             "\"deliver\":false}",
             ext2, uid2);
    json_decref(t_call(&F.sim, "POST", "/sim/act", NULL, body, 200));
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM identity WHERE kind='wecom_external_userid' "
                               "AND value='%s'",
                               new_ext),
                     0);
    json_t *run = sync_api(NULL);
    expect_done(run);
    assert_true(counts_of(run, "relationships", "created") >= 1);
    assert_true(counts_of(run, "relationships", "ended") >= 1);
    json_decref(run);
    assert_string_equal(t_sql_text(F.dir,
                                   "SELECT r.status || '/' || r.end_reason FROM relationship r "
                                   "JOIN identity i ON i.customer_id=r.customer_id JOIN employee "
                                   "e ON e.id=r.employee_id WHERE i.value='%s' AND e.userid='%s'",
                                   ext, uid),
                        "deleted_by_employee/sync_missing");
    assert_string_equal(t_sql_text(F.dir,
                                   "SELECT r.status || '/' || coalesce(r.state, '') FROM "
                                   "relationship r JOIN identity i ON i.customer_id=r.customer_id "
                                   "WHERE i.value='%s'",
                                   new_ext),
                        "active/missed");
    json_decref(added);
    mirror_expect(&F);
}

static void test_cli_sync(void **state) {
    (void)state;
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", F.sim.port);
    const char *args[] = {"sync", "--data", F.dir, "--tenant", "1", "--base-url", base, NULL};
    char *out = NULL;
    int rc = t_siyu(&out, args);
    if (rc != 0 || !strstr(out, "siyu sync: done") || !strstr(out, "customers") ||
        !strstr(out, "records/s") || !strstr(out, "0 changes"))
        fail_msg("siyu sync exited %d:\n%s", rc, out ? out : "");
    free(out);
    const char *jargs[] = {"sync",       "--data", F.dir,    "--tenant", "1",
                           "--base-url", base,     "--json", NULL};
    assert_int_equal(t_siyu(&out, jargs), 0);
    json_t *j = json_loads(out, 0, NULL);
    free(out);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "done");
    assert_int_equal(json_integer_value(json_object_get(j, "changes")), 0);
    assert_true(json_integer_value(json_object_get(j, "calls")) > 10);
    json_decref(j);
    json_t *runs = t_call(&F.srv, "GET", "/api/v1/sync/runs?limit=2", F.admin, NULL, 200);
    json_t *latest = json_array_get(json_object_get(runs, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(latest, "origin")), "cli");
    assert_int_equal(json_array_size(json_object_get(runs, "items")), 2);
    json_decref(runs);
    /* --server: the running server syncs, the CLI follows its progress. */
    const char *rargs[] = {"sync", "--server", F.srv.base, "--token", F.admin, NULL};
    rc = t_siyu(&out, rargs);
    if (rc != 0 || !strstr(out, "siyu sync: done") || !strstr(out, "customers"))
        fail_msg("siyu sync --server exited %d:\n%s", rc, out ? out : "");
    free(out);
    runs = t_call(&F.srv, "GET", "/api/v1/sync", F.admin, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(runs, "origin")), "api");
    assert_string_equal(json_string_value(json_object_get(runs, "state")), "done");
    json_decref(runs);
}

/* The follow record's tags as "t1,t2" sorted, from the dump or from Siyu. */
static void dump_tags(const char *ext, const char *uid, char *out, size_t cap) {
    json_t *d = mirror_dump(&F);
    size_t i, j, k;
    json_t *c, *f, *t;
    slist l = {0};
    json_array_foreach(json_object_get(d, "customers"), i, c) {
        if (strcmp(json_string_value(json_object_get(c, "external_userid")), ext)) continue;
        json_array_foreach(json_object_get(c, "follow"), j, f) {
            if (strcmp(json_string_value(json_object_get(f, "userid")), uid)) continue;
            json_array_foreach(json_object_get(f, "tags"), k, t)
                sl_add(&l, "%s", json_string_value(t));
        }
    }
    json_decref(d);
    qsort(l.v, l.n, sizeof *l.v, sl_cmp);
    out[0] = 0;
    for (size_t x = 0; x < l.n; x++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", x ? "," : "", l.v[x]);
    sl_free(&l);
}

static void test_refresh_after_callback(void **state) {
    (void)state;
    char ext[128], uid[128], want[1024];
    some_pair(ext, sizeof ext, uid, sizeof uid, 20);
    char body[512];
    snprintf(body, sizeof body,
             "{\"type\":\"edit\",\"external_userid\":\"%s\",\"userid\":\"%s\",\"deliver\":true}",
             ext, uid);
    json_decref(t_call(&F.sim, "POST", "/sim/act", NULL, body, 200));
    dump_tags(ext, uid, want, sizeof want);
    char remark[256];
    json_t *d = mirror_dump(&F);
    remark[0] = 0;
    size_t i, j;
    json_t *c, *f;
    json_array_foreach(
        json_object_get(d, "customers"), i,
        c) if (!strcmp(json_string_value(json_object_get(c, "external_userid")), ext))
        json_array_foreach(json_object_get(c, "follow"), j,
                           f) if (!strcmp(json_string_value(json_object_get(f, "userid")), uid))
            snprintf(remark, sizeof remark, "%s", json_string_value(json_object_get(f, "remark")));
    json_decref(d);
    const char *got = "";
    double t0 = now_s();
    while (now_s() - t0 < 10) {
        got = t_sql_text(F.dir,
                         "SELECT coalesce(group_concat(w, ','), '') FROM (SELECT t.wecom_id w "
                         "FROM relationship_tag rt JOIN identity i ON i.customer_id=rt.customer_id "
                         "JOIN employee e ON e.id=rt.employee_id JOIN tag t ON t.id=rt.tag_id "
                         "WHERE i.value='%s' AND e.userid='%s' ORDER BY t.wecom_id)",
                         ext, uid);
        if (!strcmp(got, want)) break;
        usleep(100000);
    }
    assert_string_equal(got, want);
    assert_string_equal(t_sql_text(F.dir,
                                   "SELECT coalesce(r.remark, '') FROM relationship r JOIN "
                                   "identity i ON i.customer_id=r.customer_id JOIN employee e ON "
                                   "e.id=r.employee_id WHERE i.value='%s' AND e.userid='%s'",
                                   ext, uid),
                        remark);
    /* The customer's tag union follows (source 'wecom'). */
    assert_true(t_sql_int(F.dir,
                          "SELECT count(*) FROM customer_tag ct JOIN identity i ON "
                          "i.customer_id=ct.customer_id WHERE i.value='%s' AND ct.source='wecom'",
                          ext) >= (want[0] ? 1 : 0));
}

static long long sim_calls(const char *path) {
    json_t *st = t_call(&F.sim, "GET", "/sim/stats", NULL, NULL, 200);
    long long n = json_integer_value(json_object_get(json_object_get(st, "calls"), path));
    json_decref(st);
    return n;
}

/* Edits of one contact while its refresh is in flight do not start parallel
 * fetches of the same key: they run it once more after it (review finding
 * 6), and Siyu ends equal to WeCom. */
static void test_refresh_in_flight_reruns(void **state) {
    (void)state;
    char ext[128], uid[128], want[1024], body[512];
    some_pair(ext, sizeof ext, uid, sizeof uid, 30);
    mirror_wait_refresh(&F);
    long long before = sim_calls("externalcontact/get");
    json_decref(t_call(&F.sim, "POST", "/sim/fault", NULL,
                       "{\"path\":\"externalcontact/get\",\"delay_ms\":1500,\"count\":1}", 200));
    snprintf(body, sizeof body,
             "{\"type\":\"edit\",\"external_userid\":\"%s\",\"userid\":\"%s\",\"deliver\":true}",
             ext, uid);
    for (int i = 0; i < 4; i++) {
        /* a new CreateTime each, or the ingest drops them as duplicates */
        json_decref(t_call(&F.sim, "POST", "/sim/clock", NULL, "{\"advance\":1}", 200));
        json_decref(t_call(&F.sim, "POST", "/sim/act", NULL, body, 200));
        if (i == 0) usleep(200000); /* the first fetch is under way */
    }
    mirror_wait_refresh(&F);
    assert_int_equal(sim_calls("externalcontact/get") - before, 2);
    dump_tags(ext, uid, want, sizeof want);
    assert_string_equal(t_sql_text(F.dir,
                                   "SELECT coalesce(group_concat(w, ','), '') FROM (SELECT "
                                   "t.wecom_id w FROM relationship_tag rt JOIN identity i ON "
                                   "i.customer_id=rt.customer_id JOIN employee e ON "
                                   "e.id=rt.employee_id JOIN tag t ON t.id=rt.tag_id WHERE "
                                   "i.value='%s' AND e.userid='%s' ORDER BY t.wecom_id)",
                                   ext, uid),
                        want);
}

static void test_refresh_tags_and_groups(void **state) {
    (void)state;
    json_t *a = t_call(&F.sim, "POST", "/sim/act", NULL,
                       "{\"type\":\"create_tag\",\"name\":\"Refreshed\",\"group_name\":"
                       "\"Sync test\",\"deliver\":true}",
                       200);
    const char *tag = json_string_value(json_object_get(a, "tag_id"));
    assert_non_null(tag);
    mirror_wait_refresh(&F);
    assert_string_equal(t_sql_text(F.dir,
                                   "SELECT g.name || '/' || t.name FROM tag t JOIN tag_group g ON "
                                   "g.id=t.group_id WHERE t.wecom_id='%s'",
                                   tag),
                        "Sync test/Refreshed");
    json_decref(a);
    a = t_call(&F.sim, "POST", "/sim/act", NULL,
               "{\"type\":\"create_group\",\"name\":\"Refreshed group\",\"deliver\":true}", 200);
    const char *chat = json_string_value(json_object_get(a, "chat_id"));
    assert_non_null(chat);
    mirror_wait_refresh(&F);
    assert_string_equal(
        t_sql_text(F.dir, "SELECT coalesce(name, '') FROM group_chat WHERE chat_id='%s'", chat),
        "Refreshed group");
    json_decref(a);
    /* Random live traffic (adds, edits, deletes, group joins and quits, tags, ...)
     * with its callbacks: callbacks plus refreshes keep Siyu equal to WeCom
     * without a full sync. */
    json_decref(t_call(&F.sim, "POST", "/sim/run", NULL, "{\"actions\":80}", 200));
    mirror_wait_refresh(&F);
    mirror_expect(&F);
}

/* The simulator's whole history pushed as callbacks on top of the synced
 * store (as the demo does on an empty one), then a full sync: Siyu equals
 * WeCom again — including group members a group's create callback never
 * announces, which only the sync can learn. */
static void test_history_replay_then_sync(void **state) {
    (void)state;
    json_decref(t_call(&F.sim, "POST", "/sim/replay", NULL, "{}", 200));
    mirror_wait_history(&F, 60);
    mirror_wait_refresh(&F);
    /* As in a store filled by callbacks alone (the demo's): no group knows
     * its owner, while every member_version matches WeCom's. */
    assert_int_equal(t_sql_exec(F.dir, "DELETE FROM group_member WHERE employee_id IS NOT NULL"),
                     0);
    json_t *run = sync_api(NULL);
    expect_done(run);
    assert_true(counts_of(run, "members", "created") > 0);
    json_decref(run);
    mirror_expect(&F);
}

/* A run cut short by a crash is marked failed at the next start; a server
 * with a sync interval syncs on its own. */
/* A run of this server whose row looks stale (no update for longer than
 * SYNC_STALE_S) is still its own: POST /sync is a 409, not a second run
 * over the first (review finding 16); the first run ends done. */
static void test_quiet_run_not_taken_over(void **state) {
    (void)state;
    json_decref(t_call(&F.sim, "POST", "/sim/fault", NULL,
                       "{\"path\":\"externalcontact/get_corp_tag_list\",\"delay_ms\":2000,"
                       "\"count\":1}",
                       200));
    json_t *run = t_call(&F.srv, "POST", "/api/v1/sync", F.admin, "{}", 202);
    json_int_t id = json_integer_value(json_object_get(run, "id"));
    json_decref(run);
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE sync_run SET updated_at=updated_at-1000 WHERE id=%lld",
             (long long)id);
    assert_int_equal(t_sql_exec(F.dir, sql), 0);
    json_t *e = t_call(&F.srv, "POST", "/api/v1/sync", F.admin, "{}", 409);
    t_assert_error(e, "conflict", NULL);
    json_decref(e);
    double t0 = now_s();
    for (;;) {
        json_t *j = t_call(&F.srv, "GET", "/api/v1/sync", F.admin, NULL, 200);
        assert_int_equal(json_integer_value(json_object_get(j, "id")), id);
        bool running = !strcmp(json_string_value(json_object_get(j, "state")), "running");
        if (!running) expect_done(j);
        json_decref(j);
        if (!running) break;
        assert_true(now_s() - t0 < 60);
        usleep(100000);
    }
}

/* A paging loop fails instead of looping on a repeated next_cursor or
 * asking with a cut one (review finding 17); the next sync is whole. */
static void test_bad_cursors_fail_the_run(void **state) {
    (void)state;
    json_decref(t_call(&F.sim, "POST", "/sim/fault", NULL,
                       "{\"path\":\"externalcontact/batch/get_by_user\",\"next_cursor\":"
                       "\"same\",\"count\":1}",
                       200));
    json_t *run = sync_api(NULL);
    assert_string_equal(json_string_value(json_object_get(run, "state")), "failed");
    assert_non_null(strstr(json_string_value(json_object_get(run, "error")), "repeats"));
    json_decref(run);

    char big[1600], body[1800];
    memset(big, 'c', sizeof big - 1);
    big[sizeof big - 1] = 0;
    snprintf(body, sizeof body,
             "{\"path\":\"externalcontact/batch/get_by_user\",\"next_cursor\":\"%s\","
             "\"count\":1}",
             big);
    json_decref(t_call(&F.sim, "POST", "/sim/fault", NULL, body, 200));
    run = sync_api(NULL);
    assert_string_equal(json_string_value(json_object_get(run, "state")), "failed");
    assert_non_null(strstr(json_string_value(json_object_get(run, "error")), "longer than"));
    json_decref(run);

    run = sync_api(NULL);
    expect_done(run);
    json_decref(run);
}

static void test_interrupted_and_periodic(void **state) {
    (void)state;
    json_decref(t_call(&F.sim, "POST", "/sim/fault", NULL,
                       "{\"path\":\"externalcontact/get_corp_tag_list\",\"delay_ms\":3000,"
                       "\"count\":1}",
                       200));
    json_t *run = t_call(&F.srv, "POST", "/api/v1/sync", F.admin, "{}", 202);
    json_int_t id = json_integer_value(json_object_get(run, "id"));
    json_decref(run);
    t_server_kill(&F.srv);
    const char *extra[] = {"--sync-interval", "1", NULL};
    assert_int_equal(t_wired_restart(&F, extra), 0);
    char path[64];
    snprintf(path, sizeof path, "/api/v1/sync/runs?before=%lld", (long long)id + 1);
    json_t *runs = t_call(&F.srv, "GET", path, F.admin, NULL, 200);
    json_t *cut = json_array_get(json_object_get(runs, "items"), 0);
    assert_int_equal(json_integer_value(json_object_get(cut, "id")), id);
    assert_string_equal(json_string_value(json_object_get(cut, "state")), "failed");
    assert_non_null(strstr(json_string_value(json_object_get(cut, "error")), "interrupted"));
    json_decref(runs);
    double t0 = now_s();
    for (;;) {
        json_t *j = t_call(&F.srv, "GET", "/api/v1/sync", F.admin, NULL, 200);
        bool done = json_integer_value(json_object_get(j, "id")) > id &&
                    !strcmp(json_string_value(json_object_get(j, "state")), "done");
        if (done) {
            assert_string_equal(json_string_value(json_object_get(j, "origin")), "periodic");
            json_decref(j);
            break;
        }
        json_decref(j);
        assert_true(now_s() - t0 < 30);
        usleep(100000);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_sync_mirrors_sim),
        cmocka_unit_test(test_second_sync_changes_nothing),
        cmocka_unit_test(test_missed_callbacks_reconciled),
        cmocka_unit_test(test_cli_sync),
        cmocka_unit_test(test_refresh_after_callback),
        cmocka_unit_test(test_refresh_in_flight_reruns),
        cmocka_unit_test(test_refresh_tags_and_groups),
        cmocka_unit_test(test_history_replay_then_sync),
        cmocka_unit_test(test_quiet_run_not_taken_over),
        cmocka_unit_test(test_bad_cursors_fail_the_run),
        cmocka_unit_test(test_interrupted_and_periodic),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
