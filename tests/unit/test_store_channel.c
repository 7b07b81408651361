/* test_store_channel.c — store/channel*.c inline against a fresh database:
 * schedule parsing and canonical form, time zones and local days, rosters
 * at injected times (time slots, daily caps that reset at local midnight,
 * backup staff, fallbacks), the roster step queueing update_contact_way only
 * on a change, contact-way answers (edit or delete while the add is
 * pending, a dead add), attribution on add (auto-tags, add_half then add
 * counted once), and statistics against hand-counted relationships. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/channel.h"
#include "store/store.h"
#include "testlib.h"

typedef struct ctx {
    char *dir;
    store *st;
} ctx;

static int exec_step(store_conn *c, void *arg) {
    return store_conn_exec(c, arg);
}

static void sql(ctx *x, const char *s) {
    assert_int_equal(store_write(x->st, exec_step, (void *)s), 0);
}

static int setup(void **state) {
    ctx *x = calloc(1, sizeof *x);
    x->dir = t_tmpdir();
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    x->st = store_open(x->dir, &o, &err);
    if (!x->st) return -1;
    *state = x;
    const char *s =
        "INSERT INTO tenant(tenant_id,name,created_at,updated_at) VALUES(1,'A',1,1),(2,'B',1,1);"
        "INSERT INTO employee(id,tenant_id,userid,created_at,updated_at) VALUES"
        " (1,1,'a',1,1),(2,1,'b',1,1),(3,1,'c',1,1),(4,1,'d',1,1),(9,2,'z',1,1);"
        "INSERT INTO tag_group(id,tenant_id,name,created_at,updated_at) VALUES (1,1,'G',1,1);"
        "INSERT INTO tag(id,tenant_id,group_id,name,created_at,updated_at) VALUES"
        " (1,1,1,'t1',1,1),(2,1,1,'t2',1,1);";
    return store_write(x->st, exec_step, (void *)s);
}

static int teardown(void **state) {
    ctx *x = *state;
    store_close(x->st);
    t_rmdir(x->dir);
    free(x);
    return 0;
}

/* Unix time of a local (UTC+8) wall-clock time. */
static int64_t sh(int y, int mo, int d, int h, int mi) {
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm) - 8 * 3600;
}

/* ---- schedules ---------------------------------------------------------------- */

static void canon(const char *in, const char *want) {
    channel_schedule s;
    siyu_err err = {0};
    int rc = channel_schedule_parse(in, "schedule", &s, &err);
    if (rc != 0) fprintf(stderr, "%s: %s\n", in, err.msg);
    assert_int_equal(rc, 0);
    char out[256];
    channel_schedule_format(&s, out, sizeof out);
    assert_string_equal(out, want);
    /* The canonical form parses to itself. */
    channel_schedule s2;
    assert_int_equal(channel_schedule_parse(out, "schedule", &s2, &err), 0);
    char out2[256];
    channel_schedule_format(&s2, out2, sizeof out2);
    assert_string_equal(out2, out);
}

static void test_schedule_parse(void **state) {
    (void)state;
    canon("mon-fri 09:00-12:00,13:00-18:00; sat,sun 10:00-16:00",
          "mon-fri 09:00-12:00,13:00-18:00; sat,sun 10:00-16:00");
    canon("  MON-FRI   09:00-12:00 , 13:00-18:00 ;", "mon-fri 09:00-12:00,13:00-18:00");
    canon("Daily 00:00-24:00", "daily 00:00-24:00");
    canon("mon,tue,wed,thu,fri,sat,sun 08:00-09:00", "daily 08:00-09:00");
    canon("sat-mon 22:00-24:00", "mon,sat,sun 22:00-24:00");
    canon("tue,thu 10:00-11:00", "tue,thu 10:00-11:00");
    canon("", "");
    canon(NULL, "");
    const char *bad[] = {"mon 18:00-09:00",    "mon",
                         "funday 09:00-10:00", "mon 09:00-10:00,",
                         "mon 24:00-24:30",    "mon 09:60-10:00",
                         "mon 9:00-10:00",     "mon,,tue 09:00-10:00",
                         "mon 09:00",          "mon- 09:00-10:00"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        channel_schedule s;
        siyu_err err = {0};
        assert_int_equal(channel_schedule_parse(bad[i], "staff[2].schedule", &s, &err),
                         SIYU_EINVAL);
        assert_string_equal(err.field, "staff[2].schedule");
    }
    /* At most CHANNEL_SLOTS_MAX slots. */
    char many[CHANNEL_SCHEDULE_TEXT_MAX];
    size_t n = (size_t)snprintf(many, sizeof many, "daily ");
    for (int i = 0; i < CHANNEL_SLOTS_MAX + 1; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "%s%02d:%02d-%02d:%02d", i ? "," : "",
                              i / 2, (i % 2) * 30, i / 2, (i % 2) * 30 + 10);
    channel_schedule s;
    siyu_err err = {0};
    assert_int_equal(channel_schedule_parse(many, "schedule", &s, &err), SIYU_EINVAL);

    /* Membership: from inclusive, to exclusive, by weekday. */
    assert_int_equal(channel_schedule_parse("mon-fri 09:00-18:00", "s", &s, &err), 0);
    assert_true(channel_schedule_on(&s, 0, 9 * 60));
    assert_true(channel_schedule_on(&s, 4, 18 * 60 - 1));
    assert_false(channel_schedule_on(&s, 4, 18 * 60));
    assert_false(channel_schedule_on(&s, 0, 9 * 60 - 1));
    assert_false(channel_schedule_on(&s, 5, 12 * 60));
    assert_int_equal(channel_schedule_parse(NULL, "s", &s, &err), 0);
    assert_true(channel_schedule_on(&s, 6, 0));
}

static void test_time_zones_and_days(void **state) {
    (void)state;
    int off;
    assert_int_equal(channel_tz_offset(NULL, &off), 0);
    assert_int_equal(off, 8 * 3600);
    assert_int_equal(channel_tz_offset("Asia/Tokyo", &off), 0);
    assert_int_equal(off, 9 * 3600);
    assert_int_equal(channel_tz_offset("UTC-05:30", &off), 0);
    assert_int_equal(off, -(5 * 3600 + 1800));
    assert_int_equal(channel_tz_offset("Europe/Berlin", &off), SIYU_EINVAL);
    assert_int_equal(channel_tz_offset("UTC+15:00", &off), SIYU_EINVAL);

    /* 2026-11-23 is a Monday; 00:30 in Shanghai is still the 22nd in UTC. */
    channel_local lt;
    channel_local_of(sh(2026, 11, 23, 0, 30), 8 * 3600, &lt);
    assert_int_equal(lt.weekday, 0);
    assert_int_equal(lt.minute, 30);
    assert_int_equal(lt.day_start, sh(2026, 11, 23, 0, 0));
    channel_local_of(sh(2026, 11, 23, 0, 30), 0, &lt);
    assert_int_equal(lt.weekday, 6);
    assert_int_equal(lt.minute, 16 * 60 + 30);
    int64_t d;
    assert_true(channel_day_parse("2026-11-23", &d));
    channel_local_of(sh(2026, 11, 23, 12, 0), 8 * 3600, &lt);
    assert_int_equal(d, lt.day);
    assert_true(channel_day_parse("2024-02-29", &d));
    assert_false(channel_day_parse("2026-02-29", &d));
    assert_false(channel_day_parse("2026-13-01", &d));
    assert_false(channel_day_parse("2026-1-01", &d));
    assert_false(channel_day_parse("2026-01-01x", &d));
    assert_true(channel_day_parse("1970-01-01", &d));
    assert_int_equal(d, 0);
}

/* ---- rosters ------------------------------------------------------------------- */

static int64_t make_channel(ctx *x, const char *name, const char *type,
                            const channel_staff_input *staff, size_t n, int64_t now) {
    int64_t tags[] = {1, 2};
    channel_input in = {.tenant_id = 1,
                        .name = name,
                        .type = type,
                        .has_staff = true,
                        .staff = staff,
                        .nstaff = n,
                        .has_tags = true,
                        .tag_ids = tags,
                        .ntags = 2,
                        .now = now,
                        .actor = "test"};
    int rc = store_write(x->st, channel_create, &in);
    if (rc != 0) fprintf(stderr, "create: %s %s\n", in.err.field, in.err.msg);
    assert_int_equal(rc, 0);
    return in.id;
}

static void answer_add(ctx *x, int64_t id, const char *config_id) {
    char ref[32];
    snprintf(ref, sizeof ref, "channel:%lld", (long long)id);
    json_t *a = json_pack("{s:i,s:s,s:s}", "errcode", 0, "config_id", config_id, "qr_code", "q");
    channel_result r = {
        .tenant_id = 1, .kind = "add_contact_way", .ref = ref, .state = "sent", .answer = a};
    assert_int_equal(store_write(x->st, channel_result_step, &r), 0);
    json_decref(a);
}

static const char *users_at(ctx *x, int64_t id, int64_t now, char rule[32]) {
    static char buf[256];
    store_conn *c = store_reader_acquire(x->st);
    json_t *u = NULL, *d = NULL;
    assert_int_equal(channel_roster(c, 1, id, now, &u, &d), 0);
    store_reader_release(x->st, c);
    char *s = json_dumps(u, JSON_COMPACT);
    snprintf(buf, sizeof buf, "%s", s);
    if (rule) snprintf(rule, 32, "%s", json_string_value(json_object_get(d, "rule")));
    free(s);
    json_decref(u);
    json_decref(d);
    return buf;
}

static void add_rel(ctx *x, int64_t channel, int64_t customer, int64_t emp, int64_t added_at) {
    char s[512];
    snprintf(s, sizeof s,
             "INSERT OR IGNORE INTO customer(id,tenant_id,created_at,updated_at) "
             "VALUES(%lld,1,1,1);"
             "INSERT INTO relationship(tenant_id,customer_id,employee_id,status,added_at,state,"
             "channel_id,updated_at) VALUES(1,%lld,%lld,'active',%lld,'s',%lld,1);",
             (long long)customer, (long long)customer, (long long)emp, (long long)added_at,
             (long long)channel);
    sql(x, s);
}

static void test_roster_schedules_caps_backups(void **state) {
    ctx *x = *state;
    int64_t mon10 = sh(2026, 11, 23, 10, 0);
    channel_staff_input staff[] = {
        {.employee_id = 1, .has_cap = true, .daily_cap = 2, .schedule = "mon-fri 09:00-18:00"},
        {.employee_id = 2, .schedule = "sat,sun 10:00-16:00"},
        {.employee_id = 3, .backup = true},
    };
    int64_t id = make_channel(x, "R", "multi", staff, 3, mon10);
    assert_string_equal(
        t_sql_text(x->dir, "SELECT users FROM channel WHERE id=%lld", (long long)id), "[\"a\"]");
    const char *body = t_sql_text(x->dir, "SELECT kind||' '||body FROM outbox ORDER BY id DESC");
    assert_int_equal(strncmp(body,
                             "add_contact_way {\"remark\":\"R\",\"skip_verify\":true,"
                             "\"state\":\"sy",
                             strlen("add_contact_way {\"remark\":\"R\",\"skip_verify\":true,"
                                    "\"state\":\"sy")),
                     0);
    assert_non_null(strstr(body, "\"user\":[\"a\"],\"type\":2,\"scene\":2}"));
    char rule[32];
    assert_string_equal(users_at(x, id, mon10, rule), "[\"a\"]");
    assert_string_equal(rule, "duty");
    assert_string_equal(users_at(x, id, sh(2026, 11, 23, 20, 0), rule), "[\"c\"]");
    assert_string_equal(rule, "backup");
    assert_string_equal(users_at(x, id, sh(2026, 11, 28, 11, 0), rule), "[\"b\"]");
    /* a reaches the cap of 2 today: the backup takes over; tomorrow a is back. */
    add_rel(x, id, 100, 1, sh(2026, 11, 23, 9, 5));
    assert_string_equal(users_at(x, id, mon10, rule), "[\"a\"]");
    add_rel(x, id, 101, 1, sh(2026, 11, 23, 9, 30));
    assert_string_equal(users_at(x, id, mon10, rule), "[\"c\"]");
    assert_string_equal(users_at(x, id, sh(2026, 11, 24, 0, 0) + 9 * 3600, rule), "[\"a\"]");
    /* An add late yesterday (local) does not count today. */
    add_rel(x, id, 102, 1, sh(2026, 11, 22, 23, 59));
    assert_string_equal(users_at(x, id, sh(2026, 11, 24, 10, 0), rule), "[\"a\"]");
    /* The backup resigns: everyone capped or off, the duty staff take it. */
    sql(x, "UPDATE employee SET status='resigned' WHERE id=3");
    assert_string_equal(users_at(x, id, mon10, rule), "[\"a\",\"b\"]");
    assert_string_equal(rule, "fallback_duty");
    sql(x, "UPDATE employee SET status='active' WHERE id=3");
    /* In UTC, 10:00 Shanghai is 02:00: a is off, the backup is on. */
    sql(x, "UPDATE tenant SET time_zone='UTC' WHERE tenant_id=1");
    assert_string_equal(users_at(x, id, sh(2026, 11, 24, 10, 0), rule), "[\"c\"]");
    sql(x, "UPDATE tenant SET time_zone=NULL WHERE tenant_id=1");
    /* A single-employee code takes the first available. */
    channel_staff_input two[] = {{.employee_id = 4}, {.employee_id = 2}};
    int64_t single = make_channel(x, "S", "single", two, 2, mon10);
    assert_string_equal(users_at(x, single, mon10, rule), "[\"d\"]");
}

static void test_roster_step_pushes_only_changes(void **state) {
    ctx *x = *state;
    int64_t mon10 = sh(2026, 11, 23, 10, 0);
    channel_staff_input staff[] = {
        {.employee_id = 1, .schedule = "mon-fri 09:00-18:00"},
        {.employee_id = 2, .backup = true},
    };
    int64_t id = make_channel(x, "Step", "multi", staff, 2, mon10);
    answer_add(x, id, "cfg-step");
    long long n0 = t_sql_int(x->dir,
                             "SELECT count(*) FROM outbox WHERE kind='update_contact_way'"
                             " AND ref='channel:%lld'",
                             (long long)id);
    channel_roster_run run = {.tenant_id = 1, .now = mon10};
    assert_int_equal(store_write(x->st, channel_roster_step, &run), 0);
    assert_true(run.checked >= 1);
    long long n1 = t_sql_int(x->dir,
                             "SELECT count(*) FROM outbox WHERE kind='update_contact_way'"
                             " AND ref='channel:%lld'",
                             (long long)id);
    assert_int_equal(n1, n0); /* nothing changed */
    run.now = sh(2026, 11, 23, 19, 0);
    assert_int_equal(store_write(x->st, channel_roster_step, &run), 0);
    const char *body = t_sql_text(
        x->dir,
        "SELECT body FROM outbox WHERE kind='update_contact_way' AND ref='channel:%lld' ORDER BY "
        "id DESC",
        (long long)id);
    assert_non_null(strstr(body, "\"user\":[\"b\"],\"config_id\":\"cfg-step\"}"));
    assert_int_equal(t_sql_int(x->dir,
                               "SELECT count(*) FROM outbox WHERE kind='update_contact_way' AND "
                               "ref='channel:%lld'",
                               (long long)id),
                     n1 + 1);
    assert_string_equal(
        t_sql_text(x->dir, "SELECT users FROM channel WHERE id=%lld", (long long)id), "[\"b\"]");
    /* Again at the same time: no new call. */
    assert_int_equal(store_write(x->st, channel_roster_step, &run), 0);
    assert_int_equal(t_sql_int(x->dir,
                               "SELECT count(*) FROM outbox WHERE kind='update_contact_way' AND "
                               "ref='channel:%lld'",
                               (long long)id),
                     n1 + 1);
}

static void test_answers_while_pending(void **state) {
    ctx *x = *state;
    int64_t mon10 = sh(2026, 11, 23, 10, 0);
    channel_staff_input staff[] = {{.employee_id = 1}, {.employee_id = 2}};
    /* Edited while the add is pending: dirty, then the answer pushes it. */
    int64_t id = make_channel(x, "P", "multi", staff, 2, mon10);
    channel_input up = {.tenant_id = 1, .id = id, .name = "P2", .actor = "test"};
    assert_int_equal(store_write(x->st, channel_update, &up), 0);
    assert_int_equal(t_sql_int(x->dir,
                               "SELECT count(*) FROM outbox WHERE kind='update_contact_way' AND "
                               "ref='channel:%lld'",
                               (long long)id),
                     0);
    assert_int_equal(t_sql_int(x->dir, "SELECT dirty FROM channel WHERE id=%lld", (long long)id),
                     1);
    answer_add(x, id, "cfg-p");
    assert_int_equal(t_sql_int(x->dir, "SELECT dirty FROM channel WHERE id=%lld", (long long)id),
                     0);
    const char *b = t_sql_text(x->dir,
                               "SELECT body FROM outbox WHERE kind='update_contact_way' AND "
                               "ref='channel:%lld'",
                               (long long)id);
    assert_non_null(strstr(b, "\"remark\":\"P2\""));
    assert_non_null(strstr(b, "\"config_id\":\"cfg-p\""));

    /* Deleted while the add is pending: the answer deletes the way. */
    int64_t id2 = make_channel(x, "Q", "multi", staff, 2, mon10);
    channel_input del = {.tenant_id = 1, .id = id2, .actor = "test"};
    assert_int_equal(store_write(x->st, channel_delete, &del), 0);
    assert_false(del.pushed);
    answer_add(x, id2, "cfg-q");
    assert_string_equal(t_sql_text(x->dir,
                                   "SELECT body FROM outbox WHERE kind='del_contact_way' AND "
                                   "ref='channel:%lld'",
                                   (long long)id2),
                        "{\"config_id\":\"cfg-q\"}");

    /* A dead add: failed, with the outbox's error. */
    int64_t id3 = make_channel(x, "D", "multi", staff, 2, mon10);
    char s[256], ref[32];
    snprintf(ref, sizeof ref, "channel:%lld", (long long)id3);
    snprintf(s, sizeof s,
             "UPDATE outbox SET state='dead', error='bad_param: invalid state' WHERE ref='%s'",
             ref);
    sql(x, s);
    channel_result r = {
        .tenant_id = 1, .kind = "add_contact_way", .ref = ref, .state = "dead", .errcode = 40058};
    assert_int_equal(store_write(x->st, channel_result_step, &r), 0);
    assert_string_equal(
        t_sql_text(x->dir, "SELECT wecom_status||' '||wecom_error FROM channel WHERE id=%lld",
                   (long long)id3),
        "failed add_contact_way: bad_param: invalid state");
    /* Another tenant's ref names nothing of ours. */
    channel_result other = {.tenant_id = 2, .kind = "del_contact_way", .ref = ref, .state = "sent"};
    assert_int_equal(store_write(x->st, channel_result_step, &other), 0);
    assert_string_equal(
        t_sql_text(x->dir, "SELECT wecom_status FROM channel WHERE id=%lld", (long long)id3),
        "failed");
}

/* ---- attribution and statistics ----------------------------------------------- */

typedef struct on_add {
    int64_t customer, employee, ts, channel;
    const char *state;
    unsigned kick;
} on_add;

static int on_add_step(store_conn *c, void *arg) {
    on_add *a = arg;
    return channel_on_add(c, 1, a->customer, a->employee, a->state, a->ts, a->ts, &a->channel,
                          &a->kick);
}

static void test_attribution_and_stats(void **state) {
    ctx *x = *state;
    int64_t day = sh(2026, 11, 23, 10, 0);
    channel_staff_input staff[] = {{.employee_id = 1}};
    int64_t id = make_channel(x, "Attr", "multi", staff, 1, day);
    char st[64];
    snprintf(st, sizeof st, "%s",
             t_sql_text(x->dir, "SELECT state FROM channel WHERE id=%lld", (long long)id));
    char s[1024];
    /* add_half at 10:00, then add at 10:05 with the same state (as ingest
     * writes the relationship first). */
    snprintf(s, sizeof s,
             "INSERT INTO customer(id,tenant_id,created_at,updated_at) VALUES(500,1,1,1);"
             "INSERT INTO relationship(tenant_id,customer_id,employee_id,status,added_at,state,"
             "updated_at) VALUES(1,500,1,'active',%lld,'%s',1);",
             (long long)day, st);
    sql(x, s);
    on_add a = {.customer = 500, .employee = 1, .ts = day, .state = st};
    assert_int_equal(store_write(x->st, on_add_step, &a), 0);
    assert_int_equal(a.channel, id);
    assert_int_equal(t_sql_int(x->dir, "SELECT channel_id FROM relationship WHERE customer_id=500"),
                     id);
    assert_int_equal(t_sql_int(x->dir, "SELECT count(*) FROM customer_tag WHERE customer_id=500 "
                                       "AND source='auto'"),
                     2);
    long long ob = t_sql_int(x->dir, "SELECT count(*) FROM outbox");
    a.ts = day + 300;
    assert_int_equal(store_write(x->st, on_add_step, &a), 0);
    assert_int_equal(a.channel, id);
    assert_int_equal(t_sql_int(x->dir, "SELECT count(*) FROM outbox"), ob);
    /* An unknown state attributes nothing. */
    on_add none = {.customer = 500, .employee = 1, .ts = day, .state = "ch0001"};
    assert_int_equal(store_write(x->st, on_add_step, &none), 0);
    assert_int_equal(none.channel, 0);

    /* Statistics: hand-made cohorts on two days. */
    int64_t d2 = sh(2026, 11, 24, 23, 30);
    snprintf(s, sizeof s,
             "INSERT INTO customer(id,tenant_id,created_at,updated_at) VALUES"
             " (501,1,1,1),(502,1,1,1),(503,1,1,1),(504,1,1,1);"
             "INSERT INTO relationship(tenant_id,customer_id,employee_id,status,added_at,ended_at,"
             "state,channel_id,updated_at) VALUES"
             " (1,501,1,'deleted_by_customer',%lld,%lld,'x',%lld,1),"
             " (1,502,1,'deleted_by_employee',%lld,%lld,'x',%lld,1),"
             " (1,503,1,'transferred',%lld,%lld,'x',%lld,1),"
             " (1,504,1,'deleted_by_customer',%lld,%lld,'x',%lld,1);",
             (long long)day, (long long)(day + 3600), (long long)id, (long long)day,
             (long long)(day + 3 * 86400), (long long)id, (long long)d2, (long long)(d2 + 60),
             (long long)id, (long long)d2, (long long)(d2 + 10 * 86400), (long long)id);
    sql(x, s);
    int64_t from, to;
    assert_true(channel_day_parse("2026-11-23", &from));
    assert_true(channel_day_parse("2026-11-25", &to));
    store_conn *c = store_reader_acquire(x->st);
    bool nf = false;
    json_t *j = channel_stats_json(c, 1, id, from, to, day, &nf);
    store_reader_release(x->st, c);
    assert_non_null(j);
    json_t *t = json_object_get(j, "totals"), *days = json_object_get(j, "days");
    assert_int_equal(json_integer_value(json_object_get(t, "adds")), 5);
    json_t *dc = json_object_get(t, "deleted_by_customer"),
           *de = json_object_get(t, "deleted_by_employee");
    assert_int_equal(json_integer_value(json_object_get(dc, "1d")), 1);
    assert_int_equal(json_integer_value(json_object_get(dc, "7d")), 1);
    assert_int_equal(json_integer_value(json_object_get(dc, "30d")), 2);
    assert_int_equal(json_integer_value(json_object_get(dc, "total")), 2);
    assert_int_equal(json_integer_value(json_object_get(de, "1d")), 0);
    assert_int_equal(json_integer_value(json_object_get(de, "7d")), 1);
    assert_int_equal(json_integer_value(json_object_get(t, "transferred")), 1);
    assert_int_equal(json_integer_value(json_object_get(t, "net")), 2);
    assert_int_equal(json_array_size(days), 3);
    /* 23:30 in Shanghai on the 24th is that local day, not the 25th. */
    assert_string_equal(json_string_value(json_object_get(json_array_get(days, 1), "date")),
                        "2026-11-24");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(days, 0), "adds")), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(days, 1), "adds")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(days, 2), "adds")), 0);
    json_decref(j);
    /* Another tenant sees no such channel. */
    c = store_reader_acquire(x->st);
    j = channel_stats_json(c, 2, id, from, to, day, &nf);
    store_reader_release(x->st, c);
    assert_null(j);
    assert_true(nf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_parse),
        cmocka_unit_test(test_time_zones_and_days),
        cmocka_unit_test(test_roster_schedules_caps_backups),
        cmocka_unit_test(test_roster_step_pushes_only_changes),
        cmocka_unit_test(test_answers_while_pending),
        cmocka_unit_test(test_attribution_and_stats),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
