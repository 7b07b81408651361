/* test_inherit_resign.c — resignation inheritance (F3) against the real
 * server and the real `siyu wecom-sim`: an employee with 5,000 customers and
 * a group chat resigns; the tenant rule (round-robin over the store) hands
 * every customer to the store's other staff through get_unassigned_list and
 * resigned/transfer_customer, and the group through groupchat/transfer.
 * Siyu and the simulator are then compared: every customer moved exactly
 * once (none lost, none duplicated), to the takeover both agree on. */
#include "flows_sim.h"

#define N_CUST 5000

static flows F;
static char U[4][64];
static long long E[4];

static void employees_import(void) {
    assert_int_equal(fl_sim_userids(&F, U, 4), 4);
    for (int i = 0; i < 4; i++) {
        char body[320];
        snprintf(body, sizeof body, "{\"userid\":\"%s\"}", U[i]);
        json_t *j = t_call(&F.srv, "POST", "/api/v1/employees", F.admin, body, 201);
        E[i] = json_integer_value(json_object_get(j, "id"));
        json_decref(j);
    }
}

static void sync_full(void) {
    json_decref(t_call(&F.srv, "POST", "/api/v1/sync", F.admin, "{}", 202));
    for (int i = 0; i < 1200; i++) {
        json_t *j = t_call(&F.srv, "GET", "/api/v1/sync", F.admin, NULL, 200);
        bool running = !strcmp(json_string_value(json_object_get(j, "state")), "running");
        if (!running) assert_string_equal(json_string_value(json_object_get(j, "state")), "done");
        json_decref(j);
        if (!running) return;
        fl_sleep_ms(50);
    }
    fail_msg("sync did not finish");
}

static void test_resigned_5000(void **state) {
    (void)state;
    const char *extra[] = {"--takeover-delay", "60", "--refuse-rate", "0", NULL};
    assert_int_equal(flows_start(&F, extra), 0);
    employees_import();
    /* E1, E2, E3 work in one store; E0 elsewhere */
    json_t *st = t_call(&F.srv, "POST", "/api/v1/stores", F.admin, "{\"name\":\"Store 1\"}", 201);
    long long store = json_integer_value(json_object_get(st, "id"));
    json_decref(st);
    for (int i = 1; i < 4; i++) {
        char path[64], body[64];
        snprintf(path, sizeof path, "/api/v1/employees/%lld", E[i]);
        snprintf(body, sizeof body, "{\"store_id\":%lld}", store);
        json_decref(t_call(&F.srv, "PATCH", path, F.admin, body, 200));
    }
    json_decref(t_call(&F.srv, "PUT", "/api/v1/inheritance/rule", F.admin,
                       "{\"mode\":\"store_round_robin\"}", 200));

    /* 5,000 customers of U1 (no callbacks: a full sync brings them) and a group */
    char body[256];
    snprintf(body, sizeof body,
             "{\"type\":\"add\",\"userid\":\"%s\",\"welcome\":false,\"deliver\":false,"
             "\"count\":%d}",
             U[1], N_CUST);
    json_decref(fl_sim(&F, "POST", "/sim/act", body));
    snprintf(body, sizeof body, "{\"type\":\"create_group\",\"userid\":\"%s\",\"name\":\"VIP\"}",
             U[1]);
    json_t *g = fl_sim(&F, "POST", "/sim/act", body);
    char chat[64];
    snprintf(chat, sizeof chat, "%s", json_string_value(json_object_get(g, "chat_id")));
    json_decref(g);
    sync_full();
    long long n = t_sql_int(F.dir,
                            "SELECT count(*) FROM relationship WHERE employee_id=%lld AND "
                            "status='active'",
                            E[1]);
    assert_true(n >= N_CUST);
    long long v;
    FL_WAIT_INT(v, &F, 1,
                "SELECT count(*) FROM group_chat WHERE chat_id='%s' AND owner_userid='%s'", chat,
                U[1]);
    if (v != 1)
        fail_msg("group: %s", t_sql_text(F.dir, "SELECT group_concat(chat_id||' '||coalesce("
                                                "owner_userid,'-')||' '||status) FROM group_chat"));

    /* U1 resigns in WeCom, then in Siyu */
    snprintf(body, sizeof body, "{\"type\":\"resign\",\"userid\":\"%s\"}", U[1]);
    json_decref(fl_sim(&F, "POST", "/sim/act", body));
    char path[64];
    snprintf(path, sizeof path, "/api/v1/employees/%lld/resign", E[1]);
    json_decref(t_call(&F.srv, "POST", path, F.admin, NULL, 200));
    /* the worker reads 5 pages of get_unassigned_list and writes 5,000 transfers in one
     * step: give it up to a minute on a loaded machine */
    for (int i = 0; i < 1200; i++) {
        v = t_sql_int(F.dir,
                      "SELECT count(*) FROM resignation WHERE employee_id=%lld AND state='listed'",
                      E[1]);
        if (v == 1) break;
        fl_sleep_ms(50);
    }
    if (v != 1)
        fail_msg("resignation: %s",
                 t_sql_text(F.dir,
                            "SELECT state||' '||attempts||' '||coalesce(error,'') FROM "
                            "resignation WHERE employee_id=%lld",
                            E[1]));
    assert_int_equal(
        t_sql_int(F.dir, "SELECT customers FROM resignation WHERE employee_id=%lld", E[1]), n);
    /* every customer handed over, none left pending, round-robin over E2 and E3 */
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM inherit_pending WHERE kind='customer' AND "
                               "state='pending'"),
                     0);
    assert_int_equal(
        t_sql_int(F.dir, "SELECT count(*) FROM transfer WHERE handover_employee_id=%lld", E[1]), n);
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(DISTINCT customer_id) FROM transfer WHERE "
                               "handover_employee_id=%lld AND kind='resigned'",
                               E[1]),
                     n);
    long long to2 = t_sql_int(F.dir,
                              "SELECT count(*) FROM transfer WHERE handover_employee_id=%lld AND "
                              "takeover_employee_id=%lld",
                              E[1], E[2]);
    assert_true(to2 == n / 2 || to2 == n - n / 2);
    /* WeCom takes them over */
    for (int i = 0; i < 2400; i++) {
        v = t_sql_int(F.dir,
                      "SELECT count(*) FROM transfer WHERE handover_employee_id=%lld AND "
                      "state='requested'",
                      E[1]);
        if (v == 0) break;
        fl_sleep_ms(25);
    }
    assert_int_equal(v, 0);
    json_decref(fl_sim(&F, "POST", "/sim/clock", "{\"advance\":120}"));
    for (int i = 0; i < 2400; i++) {
        v = t_sql_int(F.dir,
                      "SELECT count(*) FROM transfer WHERE handover_employee_id=%lld AND "
                      "state<>'done'",
                      E[1]);
        if (v == 0) break;
        fl_sleep_ms(25);
    }
    assert_int_equal(v, 0);

    /* Siyu and the simulator agree, customer by customer */
    json_t *d = fl_sim(&F, "GET", "/sim/dump", NULL);
    json_t *owner = json_object(); /* external_userid -> the one active follow among U1..U3 */
    size_t i, k;
    json_t *c, *fo;
    long long dup = 0;
    json_array_foreach(json_object_get(d, "customers"), i, c) {
        json_array_foreach(json_object_get(c, "follow"), k, fo) {
            const char *u = json_string_value(json_object_get(fo, "userid"));
            if (strcmp(u, U[1]) && strcmp(u, U[2]) && strcmp(u, U[3])) continue;
            const char *ext = json_string_value(json_object_get(c, "external_userid"));
            if (json_object_get(owner, ext)) dup++;
            json_object_set_new(owner, ext, json_string(u));
        }
    }
    sqlite3 *db = t_db_open(F.dir, SQLITE_OPEN_READONLY);
    sqlite3_stmt *q = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT i.value, e.userid FROM transfer t JOIN identity i "
                           "ON i.customer_id=t.customer_id AND "
                           "i.kind='wecom_external_userid' JOIN employee e ON "
                           "e.id=t.takeover_employee_id WHERE t.handover_employee_id=?1",
                           -1, &q, NULL),
        SQLITE_OK);
    sqlite3_bind_int64(q, 1, E[1]);
    long long seen = 0, agree = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        seen++;
        const char *want =
            json_string_value(json_object_get(owner, (const char *)sqlite3_column_text(q, 0)));
        agree += want && !strcmp(want, (const char *)sqlite3_column_text(q, 1));
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    assert_int_equal(seen, n);
    assert_int_equal(agree, n); /* none lost: each is the takeover's in WeCom */
    assert_int_equal(dup, 0);   /* none duplicated: one follow among U1..U3 */
    long long left = 0;
    json_array_foreach(json_object_get(d, "customers"), i, c) {
        json_array_foreach(json_object_get(c, "follow"), k, fo) {
            left += !strcmp(json_string_value(json_object_get(fo, "userid")), U[1]);
        }
    }
    assert_int_equal(left, 0);
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM relationship WHERE employee_id=%lld AND "
                               "status='active'",
                               E[1]),
                     0);

    /* the group went to a store colleague through groupchat/transfer */
    FL_WAIT_INT(v, &F, 1,
                "SELECT count(*) FROM inherit_pending WHERE kind='group' AND state='done'");
    assert_int_equal(v, 1);
    const char *new_owner =
        t_sql_text(F.dir, "SELECT e.userid FROM inherit_pending p JOIN employee e ON "
                          "e.id=p.takeover_employee_id WHERE p.kind='group'");
    char want_owner[64];
    snprintf(want_owner, sizeof want_owner, "%s", new_owner);
    json_t *grp;
    bool found = false;
    json_array_foreach(json_object_get(d, "groups"), i, grp) {
        if (strcmp(json_string_value(json_object_get(grp, "chat_id")), chat)) continue;
        found = true;
        assert_string_equal(json_string_value(json_object_get(grp, "owner")), want_owner);
    }
    assert_true(found);
    json_decref(owner);
    json_decref(d);

    /* the screen: E1 as handover, all done */
    snprintf(path, sizeof path, "/api/v1/inheritance/summary?employee_id=%lld", E[1]);
    json_t *s = t_call(&F.srv, "GET", path, F.admin, NULL, 200);
    json_t *tot = json_object_get(s, "totals");
    assert_int_equal(json_integer_value(json_object_get(tot, "done")), n);
    assert_int_equal(json_integer_value(json_object_get(tot, "total")), n);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "groups"), "done")), 1);
    json_decref(s);
    assert_int_equal(flows_stop(&F), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resigned_5000),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
