/* test_channel.c — channel QR codes (F4) against the real `siyu wecom-sim`:
 * creating a channel creates the contact way (state, users, config_id
 * agree); a simulated scan attributes the customer to the channel, applies
 * its auto-tags (internal, and WeCom corp tags marked on the follow record)
 * and its remark template; employees who reach their daily cap leave the
 * code and backup staff take over (the way's user list in the simulator
 * changes), and the roster job takes a resigned backup off; a channel's
 * statistics equal the adds the simulator attributes to its state, and
 * channels add up to groups and tenant totals; bad input is a 400 naming
 * the field with nothing written; a kill -9 while add_contact_way is in
 * flight leaves one contact way (the outbox probes by state); a delete
 * removes the contact way. */
#include "flows_sim.h"

static flows F;
static char U[4][64];
static long long E[4];    /* Siyu employee ids of U[] */
static long long CH, CH2; /* the channels under test */
static char STATE[64];    /* CH's state */
static long long TAG_INT, TAG_WECOM, GROUP;
static char TAG_WECOM_ID[96];

static long long create(const char *path, const char *body) {
    json_t *j = t_call(&F.srv, "POST", path, F.admin, body, 201);
    long long id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    return id;
}

static int setup(void **state) {
    (void)state;
    const char *srv[] = {"--channel-roster-interval", "1", NULL};
    if (flows_start_srv(&F, NULL, srv) != 0) return -1;
    if (fl_sim_userids(&F, U, 4) != 4) return -1;
    for (int i = 0; i < 4; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"userid\":\"%s\",\"name\":\"Staff %d\"}", U[i], i);
        t_resp r;
        if (t_http(&F.srv, "POST", "/api/v1/employees", F.admin, body, strlen(body), NULL, &r) !=
                0 ||
            r.status != 201) {
            fprintf(stderr, "employee create: %ld %s\n", r.status, r.body ? r.body : "");
            t_resp_free(&r);
            return -1;
        }
        E[i] = json_integer_value(json_object_get(r.json, "id"));
        t_resp_free(&r);
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = flows_stop(&F);
    if (rc != 0) fprintf(stderr, "siyu serve exited with status %d\n", rc);
    return rc == 0 ? 0 : -1;
}

/* The simulator's live contact way with this state (a new reference) or NULL. */
static json_t *sim_way(const char *state) {
    json_t *d = fl_sim(&F, "GET", "/sim/dump", NULL), *w, *out = NULL;
    size_t i;
    json_array_foreach(json_object_get(d, "contact_ways"), i, w) {
        if (!out && !strcmp(json_string_value(json_object_get(w, "state")), state))
            out = json_incref(w);
    }
    json_decref(d);
    return out;
}

/* The way's users joined with ',' into out ("" when the way is absent). */
static void sim_way_users(const char *state, char *out, size_t cap) {
    out[0] = 0;
    json_t *w = sim_way(state), *u;
    size_t i, n = 0;
    json_array_foreach(json_object_get(w, "user"), i, u) {
        n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s", i ? "," : "",
                              json_string_value(u));
    }
    json_decref(w);
}

/* Waits (up to ~10 s) until the way's users are want. */
static bool wait_users(const char *state, const char *want) {
    char got[512];
    for (int i = 0; i < 400; i++) {
        sim_way_users(state, got, sizeof got);
        if (!strcmp(got, want)) return true;
        fl_sleep_ms(25);
    }
    fprintf(stderr, "way %s: users [%s], want [%s]\n", state, got, want);
    return false;
}

/* A customer scans the code and is added by userid (the user WeCom picked
 * from the way's list); waits for the attribution. Returns Siyu's customer
 * id (0 on timeout); ext receives the external_userid. */
static long long scan(const char *state, const char *userid, long long channel, char ext[128]) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"type\":\"add\",\"userid\":\"%s\",\"state\":\"%s\",\"welcome\":false}", userid,
             state);
    json_t *a = fl_sim(&F, "POST", "/sim/act", body);
    snprintf(ext, 128, "%s", json_string_value(json_object_get(a, "external_userid")));
    json_decref(a);
    long long id = T_SQL_NONE;
    for (int i = 0; i < 400 && id == T_SQL_NONE; i++) {
        id = t_sql_int(F.dir,
                       "SELECT r.customer_id FROM relationship r JOIN identity i ON "
                       "i.customer_id=r.customer_id AND i.kind='wecom_external_userid' WHERE "
                       "i.value='%s' AND r.channel_id=%lld",
                       ext, channel);
        if (id == T_SQL_NONE) fl_sleep_ms(25);
    }
    return id == T_SQL_NONE ? 0 : id;
}

static json_t *get(const char *path) {
    return t_call(&F.srv, "GET", path, F.admin, NULL, 200);
}

static long long jint(const json_t *j, const char *a, const char *b) {
    const json_t *v = json_object_get(j, a);
    if (b) v = json_object_get(v, b);
    return json_integer_value(v);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_create_makes_contact_way(void **state) {
    (void)state;
    /* Auto-tags: an internal tag and a WeCom corp tag (pushed first). */
    long long g = create("/api/v1/tag-groups", "{\"name\":\"来源\",\"tags\":[\"门店\"]}");
    TAG_INT = t_sql_int(F.dir, "SELECT id FROM tag WHERE group_id=%lld", g);
    long long wg =
        create("/api/v1/tag-groups", "{\"name\":\"渠道\",\"wecom\":true,\"tags\":[\"扫码\"]}");
    TAG_WECOM = t_sql_int(F.dir, "SELECT id FROM tag WHERE group_id=%lld", wg);
    long long n;
    FL_WAIT_INT(n, &F, 1, "SELECT wecom_id IS NOT NULL FROM tag WHERE id=%lld", TAG_WECOM);
    assert_int_equal(n, 1);
    snprintf(TAG_WECOM_ID, sizeof TAG_WECOM_ID, "%s",
             t_sql_text(F.dir, "SELECT wecom_id FROM tag WHERE id=%lld", TAG_WECOM));

    GROUP = create("/api/v1/channel-groups", "{\"name\":\"线下门店\"}");
    char body[1024];
    snprintf(body, sizeof body,
             "{\"name\":\"Store door\",\"group_id\":%lld,\"type\":\"multi\","
             "\"remark_template\":\"{channel}\",\"staff\":["
             "{\"employee_id\":%lld,\"daily_cap\":1},"
             "{\"employee_id\":%lld,\"role\":\"duty\",\"daily_cap\":1,\"schedule\":\"DAILY "
             "00:00-24:00\"},"
             "{\"employee_id\":%lld,\"role\":\"backup\"}],\"tag_ids\":[%lld,%lld]}",
             GROUP, E[0], E[1], E[2], TAG_INT, TAG_WECOM);
    json_t *ch = t_call(&F.srv, "POST", "/api/v1/channels", F.admin, body, 201);
    CH = jint(ch, "id", NULL);
    const char *st = json_string_value(json_object_get(ch, "state"));
    assert_non_null(st);
    assert_true(strlen(st) > 0 && strlen(st) <= 30);
    snprintf(STATE, sizeof STATE, "%s", st);
    assert_string_equal(json_string_value(json_object_get(ch, "wecom_status")), "pending");
    /* The schedule is stored in its canonical form. */
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(ch, "staff"), 1), "schedule")),
                        "daily 00:00-24:00");
    json_decref(ch);

    FL_WAIT_INT(n, &F, 1, "SELECT wecom_status='created' FROM channel WHERE id=%lld", CH);
    assert_int_equal(n, 1);
    json_t *w = sim_way(STATE);
    assert_non_null(w);
    char path[64];
    snprintf(path, sizeof path, "/api/v1/channels/%lld", CH);
    ch = get(path);
    assert_string_equal(json_string_value(json_object_get(w, "config_id")),
                        json_string_value(json_object_get(ch, "config_id")));
    assert_non_null(json_string_value(json_object_get(ch, "qr_code")));
    assert_int_equal(jint(w, "type", NULL), 2);
    assert_string_equal(json_string_value(json_object_get(w, "remark")), "Store door");
    json_decref(ch);
    json_decref(w);
    char users[512], want[512];
    sim_way_users(STATE, users, sizeof users);
    snprintf(want, sizeof want, "%s,%s", U[0], U[1]);
    assert_string_equal(users, want);

    /* A single-employee code in no group: one user, WeCom type 1. */
    snprintf(body, sizeof body,
             "{\"name\":\"Poster\",\"type\":\"single\",\"skip_verify\":false,\"staff\":["
             "{\"employee_id\":%lld},{\"employee_id\":%lld}]}",
             E[3], E[0]);
    ch = t_call(&F.srv, "POST", "/api/v1/channels", F.admin, body, 201);
    CH2 = jint(ch, "id", NULL);
    char state2[64];
    snprintf(state2, sizeof state2, "%s", json_string_value(json_object_get(ch, "state")));
    json_decref(ch);
    assert_string_not_equal(state2, STATE);
    FL_WAIT_INT(n, &F, 1, "SELECT wecom_status='created' FROM channel WHERE id=%lld", CH2);
    assert_int_equal(n, 1);
    w = sim_way(state2);
    assert_non_null(w);
    assert_int_equal(jint(w, "type", NULL), 1);
    json_decref(w);
    assert_true(wait_users(state2, U[3]));
}

static void test_scan_attributes_and_caps_fall_back(void **state) {
    (void)state;
    char ext[128], want[256];
    long long c1 = scan(STATE, U[0], CH, ext);
    assert_true(c1 > 0);
    /* Auto-tags, in the same step as the attribution. */
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM customer_tag WHERE customer_id=%lld AND "
                               "source='auto' AND tag_id IN (%lld,%lld)",
                               c1, TAG_INT, TAG_WECOM),
                     2);
    /* The WeCom corp tag is marked on the follow record, the remark set. */
    bool tagged = false, remarked = false;
    for (int i = 0; i < 400 && !(tagged && remarked); i++) {
        json_t *d = fl_sim(&F, "GET", "/sim/dump", NULL), *c, *fo, *t;
        size_t k, m, q;
        json_array_foreach(json_object_get(d, "customers"), k, c) {
            if (strcmp(json_string_value(json_object_get(c, "external_userid")), ext) != 0)
                continue;
            json_array_foreach(json_object_get(c, "follow"), m, fo) {
                json_array_foreach(json_object_get(fo, "tags"), q, t) {
                    if (!strcmp(json_string_value(t), TAG_WECOM_ID)) tagged = true;
                }
                const char *rm = json_string_value(json_object_get(fo, "remark"));
                if (rm && !strcmp(rm, "Store door")) remarked = true;
            }
        }
        json_decref(d);
        if (!(tagged && remarked)) fl_sleep_ms(25);
    }
    assert_true(tagged);
    assert_true(remarked);

    /* U0 reached its cap of 1: the code now routes to U1 only. */
    assert_true(wait_users(STATE, U[1]));
    char path[96];
    snprintf(path, sizeof path, "/api/v1/channels/%lld/roster", CH);
    json_t *ro = get(path);
    assert_string_equal(json_string_value(json_object_get(ro, "rule")), "duty");
    json_decref(ro);
    /* U1 too: everyone on duty is capped, the backup takes over. */
    assert_true(scan(STATE, U[1], CH, ext) > 0);
    assert_true(wait_users(STATE, U[2]));
    ro = get(path);
    assert_string_equal(json_string_value(json_object_get(ro, "rule")), "backup");
    json_decref(ro);
    assert_true(scan(STATE, U[2], CH, ext) > 0);
    /* The backup resigns: the roster job (not a request) takes them off,
     * and with nobody left under a cap the duty staff take the overflow. */
    snprintf(path, sizeof path, "/api/v1/employees/%lld/resign", E[2]);
    json_decref(t_call(&F.srv, "POST", path, F.admin, NULL, 200));
    snprintf(want, sizeof want, "%s,%s", U[0], U[1]);
    assert_true(wait_users(STATE, want));
    assert_true(t_sql_int(F.dir,
                          "SELECT count(*) FROM audit_log WHERE action='channel.roster' AND "
                          "actor='system' AND target='channel:%lld'",
                          CH) >= 1);
    /* Raising the caps brings the duty rule back (an edit pushes it). */
    char body[256];
    snprintf(body, sizeof body,
             "{\"staff\":[{\"employee_id\":%lld,\"daily_cap\":5},"
             "{\"employee_id\":%lld,\"daily_cap\":5}],\"name\":\"Store door 2\"}",
             E[0], E[1]);
    snprintf(path, sizeof path, "/api/v1/channels/%lld", CH);
    json_decref(t_call(&F.srv, "PATCH", path, F.admin, body, 200));
    json_t *w = NULL;
    for (int i = 0; i < 400; i++) {
        json_decref(w);
        w = sim_way(STATE);
        if (w && !strcmp(json_string_value(json_object_get(w, "remark")), "Store door 2")) break;
        fl_sleep_ms(25);
    }
    assert_string_equal(json_string_value(json_object_get(w, "remark")), "Store door 2");
    json_decref(w);
    assert_true(wait_users(STATE, want));
}

/* Sums of one metric over a JSON array of {"totals":{...}}. */
static long long sum_totals(const json_t *arr, const char *a, const char *b) {
    long long s = 0;
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x) s += jint(json_object_get(x, "totals"), a, b);
    return s;
}

static void test_stats_match_simulator(void **state) {
    (void)state;
    char ext[128];
    /* One more add on CH2 and one deletion by the customer on CH. */
    assert_true(scan(STATE, U[0], CH, ext) > 0);
    long long del = t_sql_int(F.dir,
                              "SELECT customer_id FROM relationship WHERE channel_id=%lld "
                              "ORDER BY id LIMIT 1",
                              CH);
    char body[256];
    snprintf(body, sizeof body, "{\"type\":\"del_follow_user\",\"external_userid\":\"%s\"}",
             t_sql_text(F.dir,
                        "SELECT value FROM identity WHERE customer_id=%lld AND "
                        "kind='wecom_external_userid'",
                        del));
    json_decref(fl_sim(&F, "POST", "/sim/act", body));
    long long n;
    FL_WAIT_INT(n, &F, 1,
                "SELECT count(*) FROM relationship WHERE channel_id=%lld AND "
                "status='deleted_by_customer'",
                CH);
    assert_int_equal(n, 1);
    char state2[64];
    snprintf(state2, sizeof state2, "%s",
             t_sql_text(F.dir, "SELECT state FROM channel WHERE id=%lld", CH2));
    assert_true(scan(state2, U[3], CH2, ext) > 0);
    /* An add through no channel, for the unattributed figure. */
    assert_true(fl_sim_add(&F, U[3], ext) > 0);

    /* The channel's adds equal the simulator's count for its state. */
    json_t *w = sim_way(STATE);
    long long sim_adds = jint(w, "adds", NULL);
    json_decref(w);
    assert_int_equal(sim_adds, 4);
    char path[96];
    snprintf(path, sizeof path, "/api/v1/channels/%lld/stats", CH);
    json_t *s = get(path);
    json_t *t = json_object_get(s, "totals");
    assert_int_equal(jint(t, "adds", NULL), sim_adds);
    assert_int_equal(jint(t, "deleted_by_customer", "1d"), 1);
    assert_int_equal(jint(t, "deleted_by_customer", "total"), 1);
    assert_int_equal(jint(t, "deleted_by_employee", "total"), 0);
    assert_int_equal(jint(t, "net", NULL), 3);
    assert_true(json_real_value(json_object_get(t, "retention")) > 0.74 &&
                json_real_value(json_object_get(t, "retention")) < 0.76);
    /* Days add up to the period (dense, 30 by default). */
    assert_int_equal(json_array_size(json_object_get(s, "days")), 30);
    long long days = 0;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(s, "days"), i, d) days += jint(d, "adds", NULL);
    assert_int_equal(days, sim_adds);
    json_decref(s);

    w = sim_way(state2);
    long long sim_adds2 = jint(w, "adds", NULL);
    json_decref(w);
    /* Every channel: channels and groups add up to the tenant totals. */
    s = get("/api/v1/channels/stats");
    json_t *tot = json_object_get(s, "totals");
    assert_int_equal(jint(tot, "adds", NULL), sim_adds + sim_adds2);
    const char *keys[][2] = {{"adds", NULL},
                             {"net", NULL},
                             {"deleted_by_customer", "total"},
                             {"deleted_by_customer", "7d"},
                             {"deleted_by_employee", "total"},
                             {"transferred", NULL}};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        long long want = jint(tot, keys[k][0], keys[k][1]);
        assert_int_equal(sum_totals(json_object_get(s, "channels"), keys[k][0], keys[k][1]), want);
        assert_int_equal(sum_totals(json_object_get(s, "groups"), keys[k][0], keys[k][1]), want);
        long long dsum = 0;
        json_array_foreach(json_object_get(s, "days"), i, d) dsum +=
            jint(d, keys[k][0], keys[k][1]);
        assert_int_equal(dsum, want);
        assert_int_equal(jint(json_object_get(s, "all"), keys[k][0], keys[k][1]),
                         want + jint(json_object_get(s, "unattributed"), keys[k][0], keys[k][1]));
    }
    /* Each group's days add up to its totals. */
    json_t *g;
    size_t gi;
    json_array_foreach(json_object_get(s, "groups"), gi, g) {
        long long gsum = 0;
        json_array_foreach(json_object_get(g, "days"), i, d) gsum += jint(d, "adds", NULL);
        assert_int_equal(gsum, jint(json_object_get(g, "totals"), "adds", NULL));
    }
    /* "all" is every relationship the tenant gained in the period. */
    assert_int_equal(jint(json_object_get(s, "all"), "adds", NULL),
                     t_sql_int(F.dir, "SELECT count(*) FROM relationship"));
    assert_true(jint(json_object_get(s, "unattributed"), "adds", NULL) >= 1);
    json_decref(s);
    /* A range with no adds. */
    snprintf(path, sizeof path, "/api/v1/channels/%lld/stats?from=2020-01-01&to=2020-01-31", CH);
    s = get(path);
    assert_int_equal(jint(json_object_get(s, "totals"), "adds", NULL), 0);
    assert_true(json_is_null(json_object_get(json_object_get(s, "totals"), "retention")));
    json_decref(s);
}

static void test_bad_input(void **state) {
    (void)state;
    long long before = t_sql_int(F.dir, "SELECT count(*) FROM channel");
    long long ob = t_sql_int(F.dir, "SELECT count(*) FROM outbox");
    char body[512];
    t_resp r;
    struct {
        const char *fmt;
        const char *field;
    } cases[] = {
        {"{\"staff\":[{\"employee_id\":%lld}]}", "name"},
        {"{\"name\":\"x\"}", "staff"},
        {"{\"name\":\"x\",\"type\":\"triple\",\"staff\":[{\"employee_id\":%lld}]}", "type"},
        {"{\"name\":\"x\",\"staff\":[{\"employee_id\":%lld,\"schedule\":\"mon 18:00-09:00\"}]}",
         "staff[0].schedule"},
        {"{\"name\":\"x\",\"staff\":[{\"employee_id\":%lld,\"schedule\":\"funday 09:00-10:00\"}]}",
         "staff[0].schedule"},
        {"{\"name\":\"x\",\"staff\":[{\"employee_id\":%lld},{\"employee_id\":424242}]}",
         "staff[1].employee_id"},
        {"{\"name\":\"x\",\"staff\":[{\"employee_id\":%lld,\"role\":\"backup\"}]}", "staff"},
        {"{\"name\":\"x\",\"staff\":[{\"employee_id\":%lld,\"role\":\"boss\"}]}", "staff[0].role"},
        {"{\"name\":\"x\",\"staff\":[{\"employee_id\":%lld,\"daily_cap\":-1}]}",
         "staff[0].daily_cap"},
        {"{\"name\":\"x\",\"staff\":[{\"employee_id\":%lld,\"colour\":1}]}", "staff[0].colour"},
        {"{\"name\":\"x\",\"staff\":[{\"employee_id\":%lld}],\"tag_ids\":[424242]}", "tag_ids[0]"},
        {"{\"name\":\"x\",\"staff\":[{\"employee_id\":%lld}],\"remark_template\":\"{customer}\"}",
         "remark_template"},
        {"{\"name\":\"x\",\"staff\":[{\"employee_id\":%lld}],\"group_id\":424242}", "group_id"},
        {"{\"name\":\"x\",\"staff\":[{\"employee_id\":%lld}],\"daily_cap\":1000001}", "daily_cap"},
        /* a resigned employee */
        {"{\"name\":\"x\",\"staff\":[{\"employee_id\":%lld}]}", "staff[0].employee_id"},
    };
    size_t ncases = sizeof cases / sizeof *cases;
    for (size_t i = 0; i < ncases; i++) {
        snprintf(body, sizeof body, cases[i].fmt, i + 1 == ncases ? E[2] : E[0]);
        assert_int_equal(
            t_http(&F.srv, "POST", "/api/v1/channels", F.admin, body, strlen(body), NULL, &r), 0);
        t_expect_error(&r, 400, "invalid", cases[i].field);
    }
    /* A duplicate active name is a conflict. */
    snprintf(body, sizeof body, "{\"name\":\"Poster\",\"staff\":[{\"employee_id\":%lld}]}", E[0]);
    assert_int_equal(
        t_http(&F.srv, "POST", "/api/v1/channels", F.admin, body, strlen(body), NULL, &r), 0);
    t_expect_error(&r, 409, "conflict", "name");
    /* The type cannot change. */
    char path[96];
    snprintf(path, sizeof path, "/api/v1/channels/%lld", CH);
    assert_int_equal(t_api(&F.srv, "PATCH", path, F.admin, &r, "{s:s}", "type", "single"), 0);
    t_expect_error(&r, 400, "invalid", "type");
    snprintf(path, sizeof path, "/api/v1/channels/%lld/stats?from=2026-02-30", CH);
    assert_int_equal(t_api(&F.srv, "GET", path, F.admin, &r, NULL), 0);
    t_expect_error(&r, 400, "invalid", "from");
    assert_int_equal(t_api(&F.srv, "GET", "/api/v1/channels/stats?from=2024-01-01&to=2026-01-01",
                           F.admin, &r, NULL),
                     0);
    t_expect_error(&r, 400, "invalid", "from");
    snprintf(path, sizeof path, "/api/v1/channels/%lld/roster?at=soon", CH);
    assert_int_equal(t_api(&F.srv, "GET", path, F.admin, &r, NULL), 0);
    t_expect_error(&r, 400, "invalid", "at");
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM channel"), before);
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM outbox"), ob);
}

/* The number of live contact ways with this state in the simulator. */
static int sim_ways_with(const char *state) {
    json_t *d = fl_sim(&F, "GET", "/sim/dump", NULL), *w;
    size_t i;
    int n = 0;
    json_array_foreach(json_object_get(d, "contact_ways"), i, w) {
        if (!strcmp(json_string_value(json_object_get(w, "state")), state)) n++;
    }
    json_decref(d);
    return n;
}

/* kill -9 while add_contact_way is in flight (the simulator holds its
 * answer but creates the way): after the restart the outbox probes by
 * state, finds the way and records it — one contact way, not two. */
static void test_crash_during_add(void **state) {
    (void)state;
    json_decref(fl_sim(&F, "POST", "/sim/fault",
                       "{\"path\":\"externalcontact/add_contact_way\",\"delay_ms\":1500,"
                       "\"count\":1}"));
    char body[256];
    snprintf(body, sizeof body, "{\"name\":\"Crash\",\"staff\":[{\"employee_id\":%lld}]}", E[1]);
    json_t *ch = t_call(&F.srv, "POST", "/api/v1/channels", F.admin, body, 201);
    long long id = jint(ch, "id", NULL);
    char st[64];
    snprintf(st, sizeof st, "%s", json_string_value(json_object_get(ch, "state")));
    json_decref(ch);
    long long n;
    FL_WAIT_INT(n, &F, 1,
                "SELECT count(*) FROM outbox WHERE kind='add_contact_way' AND "
                "ref='channel:%lld' AND state='sending'",
                id);
    assert_int_equal(n, 1);
    fl_sleep_ms(300);
    t_server_kill(&F.srv);
    fl_sleep_ms(1700); /* the simulator finishes the add meanwhile */
    assert_int_equal(sim_ways_with(st), 1);
    assert_int_equal(t_wired_restart(&F, NULL), 0);
    FL_WAIT_INT(n, &F, 1, "SELECT wecom_status='created' FROM channel WHERE id=%lld", id);
    assert_int_equal(n, 1);
    assert_int_equal(sim_ways_with(st), 1);
    json_t *w = sim_way(st);
    assert_string_equal(json_string_value(json_object_get(w, "config_id")),
                        t_sql_text(F.dir, "SELECT config_id FROM channel WHERE id=%lld", id));
    json_decref(w);
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT count(*) FROM outbox WHERE kind='add_contact_way' AND "
                               "ref='channel:%lld' AND state='sent' AND result LIKE '%%probed%%'",
                               id),
                     1);
}

static void test_delete_removes_contact_way(void **state) {
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/api/v1/channels/%lld", CH2);
    char state2[64];
    snprintf(state2, sizeof state2, "%s",
             t_sql_text(F.dir, "SELECT state FROM channel WHERE id=%lld", CH2));
    json_t *w = sim_way(state2);
    assert_non_null(w);
    json_decref(w);
    json_t *l0 = get("/api/v1/channels");
    size_t active = json_array_size(json_object_get(l0, "items"));
    json_decref(l0);
    t_resp r;
    assert_int_equal(t_api(&F.srv, "DELETE", path, F.admin, &r, NULL), 0);
    assert_int_equal(r.status, 204);
    t_resp_free(&r);
    long long n;
    FL_WAIT_INT(n, &F, 1, "SELECT wecom_status='deleted' FROM channel WHERE id=%lld", CH2);
    assert_int_equal(n, 1);
    assert_null(sim_way(state2));
    /* Gone from the active list, still readable, its statistics kept. */
    json_t *l = get("/api/v1/channels");
    assert_int_equal(json_array_size(json_object_get(l, "items")), active - 1);
    json_decref(l);
    l = get("/api/v1/channels?status=deleted");
    assert_int_equal(json_array_size(json_object_get(l, "items")), 1);
    json_decref(l);
    snprintf(path, sizeof path, "/api/v1/channels/%lld/stats", CH2);
    l = get(path);
    assert_int_equal(jint(json_object_get(l, "totals"), "adds", NULL), 1);
    json_decref(l);
    /* Deleting again is a 404. */
    snprintf(path, sizeof path, "/api/v1/channels/%lld", CH2);
    assert_int_equal(t_api(&F.srv, "DELETE", path, F.admin, &r, NULL), 0);
    t_expect_error(&r, 404, "not_found", NULL);
    /* A deleted group ungroups its channels. */
    snprintf(path, sizeof path, "/api/v1/channel-groups/%lld", GROUP);
    assert_int_equal(t_api(&F.srv, "DELETE", path, F.admin, &r, NULL), 0);
    assert_int_equal(r.status, 204);
    t_resp_free(&r);
    assert_int_equal(t_sql_int(F.dir, "SELECT group_id IS NULL FROM channel WHERE id=%lld", CH), 1);
}

/* A customer whose add callback was lost is attributed to the channel by the
 * next full sync (the relationship it creates carries the channel's state). */
static void test_sync_attributes_missed_add(void **state) {
    (void)state;
    json_decref(fl_sim(&F, "POST", "/sim/config", "{\"callbacks\":false}"));
    char body[256];
    snprintf(body, sizeof body,
             "{\"type\":\"add\",\"userid\":\"%s\",\"state\":\"%s\",\"welcome\":false}", U[0],
             STATE);
    json_t *a = fl_sim(&F, "POST", "/sim/act", body);
    char ext[128];
    snprintf(ext, sizeof ext, "%s", json_string_value(json_object_get(a, "external_userid")));
    json_decref(a);
    assert_int_equal(t_sql_int(F.dir, "SELECT count(*) FROM identity WHERE value='%s'", ext), 0);
    json_t *run = t_call(&F.srv, "POST", "/api/v1/sync", F.admin, "{}", 202);
    json_decref(run);
    const char *st = "running";
    for (int i = 0; i < 1200 && strcmp(st, "running") == 0; i++) {
        json_t *j = t_call(&F.srv, "GET", "/api/v1/sync", F.admin, NULL, 200);
        static char buf[32];
        snprintf(buf, sizeof buf, "%s", json_string_value(json_object_get(j, "state")));
        st = buf;
        json_decref(j);
        if (strcmp(st, "running") == 0) fl_sleep_ms(50);
    }
    assert_string_equal(st, "done");
    json_decref(fl_sim(&F, "POST", "/sim/config", "{\"callbacks\":true}"));
    assert_int_equal(t_sql_int(F.dir,
                               "SELECT r.channel_id FROM relationship r JOIN identity i ON "
                               "i.customer_id=r.customer_id AND i.kind='wecom_external_userid' "
                               "WHERE i.value='%s'",
                               ext),
                     CH);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_makes_contact_way),
        cmocka_unit_test(test_scan_attributes_and_caps_fall_back),
        cmocka_unit_test(test_stats_match_simulator),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_crash_during_add),
        cmocka_unit_test(test_delete_removes_contact_way),
        cmocka_unit_test(test_sync_attributes_missed_add),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
