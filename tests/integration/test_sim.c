/* test_sim.c — `siyu wecom-sim` over loopback: WeCom's rules (tokens, paging,
 * contact-way limits, welcome codes, transfers, mass-message quotas), the
 * determinism of the seeded world, and callbacks replayed into a real
 * `siyu serve` producing the simulator's customers and relationships. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

#define CORP "wwsimtest"
#define SECRET "sim-secret"
#define AES_KEY "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
#define CB_TOKEN "simtoken"

/* Small worlds keep every case fast under the sanitizers. */
#define SMALL                                                                                      \
    "--customers", "300", "--employees", "8", "--stores", "3", "--departments", "2", "--channels", \
        "5", "--groups", "6", "--tags", "12", "--history-days", "30"

/* Children still running, so that a failed test (cmocka longjmps out of it)
 * leaves no process behind: the group teardown kills what is left. */
static pid_t live[16];

static void track(pid_t pid, bool on) {
    for (size_t i = 0; i < sizeof live / sizeof *live; i++)
        if (on ? live[i] == 0 : live[i] == pid) {
            live[i] = on ? pid : 0;
            return;
        }
}

static int kill_left(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof live / sizeof *live; i++)
        if (live[i] > 0) {
            t_server s = {.pid = live[i]};
            t_server_kill(&s);
            live[i] = 0;
        }
    return 0;
}

/* t_server_stop that also forgets the child. */
static int stop(t_server *s) {
    track(s->pid, false);
    return t_server_stop(s);
}

static void sim_start(t_server *s, const char *const *extra) {
    const char *args[64] = {"--corp-id", CORP, "--secret", SECRET};
    int n = 4;
    for (int i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    assert_int_equal(t_sim_start(s, args), 0);
    track(s->pid, true);
}

/* GET (body NULL) or POST to s + path; asserts HTTP 200 and a JSON reply. */
static json_t *req(t_server *s, const char *path, const char *body) {
    t_resp r;
    assert_int_equal(
        t_http(s, body ? "POST" : "GET", path, NULL, body, body ? strlen(body) : 0, NULL, &r), 0);
    if (r.status != 200 || !r.json) fprintf(stderr, "%s -> %ld %s\n", path, r.status, r.body);
    assert_int_equal(r.status, 200);
    assert_non_null(r.json);
    json_t *j = json_incref(r.json);
    t_resp_free(&r);
    return j;
}

/* A /cgi-bin call with access_token tok (NULL: none) and query q ("" ok). */
static json_t *cgi(t_server *s, const char *api, const char *tok, const char *q, const char *body) {
    char path[1024];
    snprintf(path, sizeof path, "/cgi-bin/%s?%s%s%s%s", api, tok ? "access_token=" : "",
             tok ? tok : "", tok && *q ? "&" : "", q);
    return req(s, path, body);
}

static long long errcode(const json_t *j) {
    return json_integer_value(json_object_get(j, "errcode"));
}

static void expect_errcode(json_t *j, long long code) {
    if (errcode(j) != code) {
        char *d = json_dumps(j, JSON_COMPACT);
        fprintf(stderr, "want errcode %lld, got %s\n", code, d);
        free(d);
    }
    assert_int_equal(errcode(j), code);
    json_decref(j);
}

static char *token(t_server *s) {
    json_t *j = cgi(s, "gettoken", NULL, "corpid=" CORP "&corpsecret=" SECRET, NULL);
    assert_int_equal(errcode(j), 0);
    char *t = strdup(json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    return t;
}

static json_t *admin(t_server *s, const char *path, const char *body) {
    return req(s, path, body);
}

static void advance(t_server *s, int seconds) {
    char body[64];
    snprintf(body, sizeof body, "{\"advance\":%d}", seconds);
    json_decref(admin(s, "/sim/clock", body));
}

/* /sim/act add for userid (NULL: any); returns the reply (caller decrefs). */
static json_t *act_add(t_server *s, const char *userid, bool welcome) {
    char body[256];
    snprintf(body, sizeof body, "{\"type\":\"add\",%s%s%s\"welcome\":%s}",
             userid ? "\"userid\":\"" : "", userid ? userid : "", userid ? "\"," : "",
             welcome ? "true" : "false");
    json_t *j = admin(s, "/sim/act", body);
    assert_int_equal(errcode(j), 0);
    return j;
}

static char *follow_users(t_server *s, const char *tok, int i) {
    json_t *j = cgi(s, "externalcontact/get_follow_user_list", tok, "", NULL);
    assert_int_equal(errcode(j), 0);
    char *u =
        strdup(json_string_value(json_array_get(json_object_get(j, "follow_user"), (size_t)i)));
    json_decref(j);
    return u;
}

/* ---- tokens ------------------------------------------------------------- */

static void test_token_rules(void **state) {
    (void)state;
    t_server s;
    const char *extra[] = {SMALL, "--token-ttl", "100", NULL};
    sim_start(&s, extra);
    expect_errcode(cgi(&s, "gettoken", NULL, "corpid=nope&corpsecret=" SECRET, NULL), 40013);
    expect_errcode(cgi(&s, "gettoken", NULL, "corpid=" CORP "&corpsecret=bad", NULL), 40001);
    json_t *j = cgi(&s, "gettoken", NULL, "corpid=" CORP "&corpsecret=" SECRET, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "expires_in")), 100);
    char *tok = strdup(json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    expect_errcode(cgi(&s, "externalcontact/get_follow_user_list", tok, "", NULL), 0);
    expect_errcode(cgi(&s, "externalcontact/get_follow_user_list", NULL, "", NULL), 41001);
    expect_errcode(cgi(&s, "externalcontact/get_follow_user_list", "xyz", "", NULL), 40014);
    /* a token in the body does not count */
    expect_errcode(
        cgi(&s, "externalcontact/get_corp_tag_list", NULL, "", "{\"access_token\":\"x\"}"), 41001);
    advance(&s, 101);
    expect_errcode(cgi(&s, "externalcontact/get_follow_user_list", tok, "", NULL), 42001);
    char *tok2 = token(&s);
    expect_errcode(cgi(&s, "externalcontact/get_follow_user_list", tok2, "", NULL), 0);
    /* injected faults answer first, then the path behaves again */
    json_decref(admin(&s, "/sim/fault",
                      "{\"path\":\"externalcontact/get_follow_user_list\",\"errcode\":45009,"
                      "\"count\":2}"));
    expect_errcode(cgi(&s, "externalcontact/get_follow_user_list", tok2, "", NULL), 45009);
    expect_errcode(cgi(&s, "externalcontact/get_follow_user_list", tok2, "", NULL), 45009);
    expect_errcode(cgi(&s, "externalcontact/get_follow_user_list", tok2, "", NULL), 0);
    json_t *st = admin(&s, "/sim/stats", NULL);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "calls"),
                                                        "externalcontact/get_follow_user_list")),
                     8);
    json_decref(st);
    free(tok);
    free(tok2);
    assert_int_equal(stop(&s), 0);
}

/* ---- paging ------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_batch_paging(void **state) {
    (void)state;
    t_server s;
    const char *extra[] = {SMALL, NULL};
    sim_start(&s, extra);
    char *tok = token(&s);
    json_t *fu = cgi(&s, "externalcontact/get_follow_user_list", tok, "", NULL);
    json_t *users = json_object_get(fu, "follow_user");
    assert_true(json_array_size(users) >= 5);
    size_t total = 0;
    for (size_t u = 0; u < json_array_size(users); u++) {
        const char *uid = json_string_value(json_array_get(users, u));
        /* the truth: externalcontact/list */
        char q[128];
        snprintf(q, sizeof q, "userid=%s", uid);
        json_t *l = cgi(&s, "externalcontact/list", tok, q, NULL);
        assert_int_equal(errcode(l), 0);
        json_t *want = json_object_get(l, "external_userid");
        size_t n = json_array_size(want);
        char **seen = calloc(n + 1, sizeof *seen);
        size_t got = 0;
        char cursor[64] = "";
        int pages = 0;
        do {
            char body[256];
            snprintf(body, sizeof body, "{\"userid_list\":[\"%s\"],\"cursor\":\"%s\",\"limit\":7}",
                     uid, cursor);
            json_t *p = cgi(&s, "externalcontact/batch/get_by_user", tok, "", body);
            assert_int_equal(errcode(p), 0);
            json_t *items = json_object_get(p, "external_contact_list");
            assert_true(json_array_size(items) <= 7);
            for (size_t i = 0; i < json_array_size(items); i++) {
                json_t *it = json_array_get(items, i);
                assert_true(got < n);
                seen[got++] = strdup(json_string_value(
                    json_object_get(json_object_get(it, "external_contact"), "external_userid")));
                assert_string_equal(json_string_value(json_object_get(
                                        json_object_get(it, "follow_info"), "userid")),
                                    uid);
            }
            snprintf(cursor, sizeof cursor, "%s",
                     json_string_value(json_object_get(p, "next_cursor")));
            json_decref(p);
            assert_true(++pages < 1000);
        } while (cursor[0]);
        assert_int_equal(got, n);
        qsort(seen, got, sizeof *seen, cmp_str);
        for (size_t i = 1; i < got; i++)
            assert_true(strcmp(seen[i - 1], seen[i]) != 0); /* exactly once */
        for (size_t i = 0; i < n; i++) {
            const char *x = json_string_value(json_array_get(want, i));
            assert_non_null(bsearch(&x, seen, got, sizeof *seen, cmp_str));
        }
        for (size_t i = 0; i < got; i++)
            free(seen[i]);
        free(seen);
        json_decref(l);
        total += n;
    }
    assert_true(total > 0);
    /* limits: more than 100 per page, no user, a bad cursor */
    expect_errcode(cgi(&s, "externalcontact/batch/get_by_user", tok, "",
                       "{\"userid_list\":[\"x\"],\"limit\":101}"),
                   40058);
    expect_errcode(cgi(&s, "externalcontact/batch/get_by_user", tok, "", "{\"userid_list\":[]}"),
                   40058);
    char body[256];
    snprintf(body, sizeof body, "{\"userid_list\":[\"%s\"],\"cursor\":\"zz\"}",
             json_string_value(json_array_get(users, 0)));
    expect_errcode(cgi(&s, "externalcontact/batch/get_by_user", tok, "", body), 40058);
    json_decref(fu);
    free(tok);
    assert_int_equal(stop(&s), 0);
}

/* ---- contact ways ----------------------------------------------------------- */

static void test_contact_way_state(void **state) {
    (void)state;
    t_server s;
    const char *extra[] = {SMALL, NULL};
    sim_start(&s, extra);
    char *tok = token(&s);
    char *u = follow_users(&s, tok, 0);
    char body[512];
    snprintf(body, sizeof body, "{\"type\":1,\"scene\":2,\"state\":\"%s\",\"user\":[\"%s\"]}",
             "0123456789012345678901234567890", u); /* 31 chars */
    expect_errcode(cgi(&s, "externalcontact/add_contact_way", tok, "", body), 40058);
    snprintf(body, sizeof body, "{\"type\":1,\"scene\":2,\"state\":\"x\"}");
    expect_errcode(cgi(&s, "externalcontact/add_contact_way", tok, "", body), 40058);
    /* 30 characters (of UTF-8 Chinese: 90 bytes) are fine */
    const char *zh = "一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十";
    snprintf(body, sizeof body, "{\"type\":1,\"scene\":2,\"state\":\"%s\",\"user\":[\"%s\"]}", zh,
             u);
    json_t *j = cgi(&s, "externalcontact/add_contact_way", tok, "", body);
    assert_int_equal(errcode(j), 0);
    assert_non_null(json_string_value(json_object_get(j, "qr_code")));
    snprintf(body, sizeof body, "{\"config_id\":\"%s\"}",
             json_string_value(json_object_get(j, "config_id")));
    json_decref(j);
    j = cgi(&s, "externalcontact/get_contact_way", tok, "", body);
    assert_int_equal(errcode(j), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "contact_way"), "state")), zh);
    json_decref(j);
    expect_errcode(cgi(&s, "externalcontact/del_contact_way", tok, "", body), 0);
    expect_errcode(cgi(&s, "externalcontact/get_contact_way", tok, "", body), 41044);
    free(u);
    free(tok);
    assert_int_equal(stop(&s), 0);
}

/* ---- welcome codes ------------------------------------------------------------ */

static void test_welcome_code(void **state) {
    (void)state;
    t_server s;
    const char *extra[] = {SMALL, "--welcome-ttl", "20", NULL};
    sim_start(&s, extra);
    char *tok = token(&s);
    json_t *a = act_add(&s, NULL, true);
    char body[256];
    snprintf(body, sizeof body, "{\"welcome_code\":\"%s\",\"text\":{\"content\":\"欢迎\"}}",
             json_string_value(json_object_get(a, "welcome_code")));
    json_decref(a);
    expect_errcode(cgi(&s, "externalcontact/send_welcome_msg", tok, "", body), 0);
    expect_errcode(cgi(&s, "externalcontact/send_welcome_msg", tok, "", body), 41051);
    a = act_add(&s, NULL, true);
    snprintf(body, sizeof body, "{\"welcome_code\":\"%s\",\"text\":{\"content\":\"hi\"}}",
             json_string_value(json_object_get(a, "welcome_code")));
    json_decref(a);
    advance(&s, 21);
    expect_errcode(cgi(&s, "externalcontact/send_welcome_msg", tok, "", body), 41050);
    expect_errcode(cgi(&s, "externalcontact/send_welcome_msg", tok, "", "{\"text\":{}}"), 41049);
    expect_errcode(cgi(&s, "externalcontact/send_welcome_msg", tok, "",
                       "{\"welcome_code\":\"nope\",\"text\":{\"content\":\"x\"}}"),
                   41050);
    json_t *d = admin(&s, "/sim/dump", NULL);
    json_t *w = json_object_get(d, "welcomes");
    assert_int_equal(json_array_size(w), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(w, 0), "errcode")), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(w, 0), "text")), "欢迎");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(w, 1), "errcode")), 41051);
    json_decref(d);
    free(tok);
    assert_int_equal(stop(&s), 0);
}

/* ---- transfers ------------------------------------------------------------------ */

static void transfer(t_server *s, const char *tok, const char *from, const char *to,
                     const char *ext, long long want) {
    char body[512];
    snprintf(body, sizeof body,
             "{\"handover_userid\":\"%s\",\"takeover_userid\":\"%s\",\"external_userid\":[\"%s\"]}",
             from, to, ext);
    json_t *j = cgi(s, "externalcontact/transfer_customer", tok, "", body);
    assert_int_equal(errcode(j), 0);
    json_t *c = json_array_get(json_object_get(j, "customer"), 0);
    assert_int_equal(json_integer_value(json_object_get(c, "errcode")), want);
    json_decref(j);
}

static long long transfer_status(t_server *s, const char *tok, const char *from, const char *to) {
    char body[256];
    snprintf(body, sizeof body, "{\"handover_userid\":\"%s\",\"takeover_userid\":\"%s\"}", from,
             to);
    json_t *j = cgi(s, "externalcontact/transfer_result", tok, "", body);
    json_t *list = json_object_get(j, "customer");
    long long st = json_integer_value(
        json_object_get(json_array_get(list, json_array_size(list) - 1), "status"));
    json_decref(j);
    return st;
}

static void test_transfer_limits(void **state) {
    (void)state;
    t_server s;
    const char *extra[] = {SMALL, "--refuse-rate", "0", "--takeover-delay", "100", NULL};
    sim_start(&s, extra);
    char *tok = token(&s);
    char *a = follow_users(&s, tok, 0), *b = follow_users(&s, tok, 1);
    json_t *add = act_add(&s, a, false);
    char *ext = strdup(json_string_value(json_object_get(add, "external_userid")));
    json_decref(add);
    transfer(&s, tok, a, b, ext, 0);
    assert_int_equal(transfer_status(&s, tok, a, b), 2); /* waiting */
    transfer(&s, tok, a, b, ext, 40100);                 /* already in transfer */
    advance(&s, 101);
    assert_int_equal(transfer_status(&s, tok, a, b), 1); /* taken over */
    char q[128];
    snprintf(q, sizeof q, "external_userid=%s", ext);
    json_t *g = cgi(&s, "externalcontact/get", tok, q, NULL);
    json_t *fu = json_object_get(g, "follow_user");
    assert_int_equal(json_array_size(fu), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(fu, 0), "userid")), b);
    json_decref(g);
    transfer(&s, tok, a, b, ext, 40131); /* a no longer follows the customer */
    transfer(&s, tok, b, a, ext, 0);     /* second transfer in 90 days */
    advance(&s, 101);
    assert_int_equal(transfer_status(&s, tok, b, a), 1);
    transfer(&s, tok, a, b, ext, 40128); /* third: too frequent */
    char body[256];
    snprintf(body, sizeof body,
             "{\"handover_userid\":\"%s\",\"takeover_userid\":\"%s\",\"external_userid\":[\"%s\"]}",
             a, a, ext);
    expect_errcode(cgi(&s, "externalcontact/transfer_customer", tok, "", body), 40130);
    snprintf(body, sizeof body,
             "{\"handover_userid\":\"%s\",\"takeover_userid\":\"%s\",\"external_userid\":[\"%s\"]}",
             a, b, ext);
    expect_errcode(cgi(&s, "externalcontact/resigned/transfer_customer", tok, "", body), 40097);
    free(ext);
    free(a);
    free(b);
    free(tok);
    assert_int_equal(stop(&s), 0);
}

/* ---- mass messages --------------------------------------------------------------- */

static long long send_status(t_server *s, const char *tok, const char *msgid, const char *uid,
                             const char *ext) {
    char body[256];
    snprintf(body, sizeof body, "{\"msgid\":\"%s\",\"userid\":\"%s\"}", msgid, uid);
    json_t *j = cgi(s, "externalcontact/get_groupmsg_send_result", tok, "", body);
    assert_int_equal(errcode(j), 0);
    long long st = -1;
    json_t *l = json_object_get(j, "send_list");
    for (size_t i = 0; i < json_array_size(l); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(l, i), "external_userid")),
                    ext))
            st = json_integer_value(json_object_get(json_array_get(l, i), "status"));
    json_decref(j);
    return st;
}

static char *mass(t_server *s, const char *tok, const char *uid, const char *ext, const char *ext2,
                  size_t want_fail) {
    char body[512];
    snprintf(body, sizeof body,
             "{\"chat_type\":\"single\",\"sender\":\"%s\",\"external_userid\":[\"%s\",\"%s\"],"
             "\"text\":{\"content\":\"大促\"}}",
             uid, ext, ext2);
    json_t *j = cgi(s, "externalcontact/add_msg_template", tok, "", body);
    assert_int_equal(errcode(j), 0);
    assert_int_equal(json_array_size(json_object_get(j, "fail_list")), want_fail);
    char *id = strdup(json_string_value(json_object_get(j, "msgid")));
    json_decref(j);
    return id;
}

static void test_mass_message_quota(void **state) {
    (void)state;
    t_server s;
    const char *extra[] = {SMALL, "--msg-quota", "1", NULL};
    sim_start(&s, extra);
    char *tok = token(&s);
    char *u = follow_users(&s, tok, 0);
    json_t *a1 = act_add(&s, u, false), *a2 = act_add(&s, u, false);
    char *x = strdup(json_string_value(json_object_get(a1, "external_userid")));
    char *y = strdup(json_string_value(json_object_get(a2, "external_userid")));
    json_decref(a1);
    json_decref(a2);
    char body[256];
    snprintf(body, sizeof body,
             "{\"type\":\"del_follow_user\",\"userid\":\"%s\","
             "\"external_userid\":\"%s\"}",
             u, y);
    json_decref(admin(&s, "/sim/act", body)); /* y is no friend any more */
    char *m1 = mass(&s, tok, u, x, y, 1);
    assert_int_equal(send_status(&s, tok, m1, u, x), 1);
    assert_int_equal(send_status(&s, tok, m1, u, y), 2);
    char *m2 = mass(&s, tok, u, x, y, 1);
    assert_int_equal(send_status(&s, tok, m2, u, x), 3); /* quota of the day reached */
    snprintf(body, sizeof body, "{\"msgid\":\"%s\"}", m2);
    json_t *t = cgi(&s, "externalcontact/get_groupmsg_task", tok, "", body);
    assert_int_equal(errcode(t), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(t, "task_list"), 0), "userid")),
                        u);
    json_decref(t);
    free(m1);
    free(m2);
    free(x);
    free(y);
    free(u);
    free(tok);
    assert_int_equal(stop(&s), 0);
}

/* Customers respond to a mass message: some reply, a few delete the sender
 * (del_follow_user); the same seed draws the same responses. */
static long long relationships(t_server *s) {
    json_t *st = req(s, "/sim/stats", NULL);
    long long n = json_integer_value(json_object_get(st, "relationships"));
    json_decref(st);
    return n;
}

static void test_mass_message_responses(void **state) {
    (void)state;
    t_server s;
    const char *extra[] = {SMALL, NULL};
    sim_start(&s, extra);
    char *tok = token(&s);
    char *u = follow_users(&s, tok, 0);
    char body[256];
    snprintf(body, sizeof body, "userid=%s", u);
    json_t *l = cgi(&s, "externalcontact/list", tok, body, NULL);
    size_t n = json_array_size(json_object_get(l, "external_userid"));
    json_decref(l);
    assert_true(n >= 50); /* the busiest employee of a Zipf-shaped team */
    long long before = relationships(&s);
    /* The sender alone selects all of the sender's customers. */
    snprintf(body, sizeof body,
             "{\"chat_type\":\"single\",\"sender\":\"%s\",\"text\":{\"content\":\"上新\"}}", u);
    json_t *j = cgi(&s, "externalcontact/add_msg_template", tok, "", body);
    assert_int_equal(errcode(j), 0);
    char *m = strdup(json_string_value(json_object_get(j, "msgid")));
    json_decref(j);
    snprintf(body, sizeof body, "{\"msgid\":\"%s\",\"userid\":\"%s\",\"limit\":1000}", m, u);
    j = cgi(&s, "externalcontact/get_groupmsg_send_result", tok, "", body); /* confirms it */
    assert_int_equal(errcode(j), 0);
    size_t sent = 0;
    json_t *it;
    size_t i;
    json_array_foreach(json_object_get(j, "send_list"), i, it)
        sent += json_integer_value(json_object_get(it, "status")) == 1;
    json_decref(j);
    assert_true(sent >= 50);
    long long after = relationships(&s);
    assert_true(after < before);               /* someone unsubscribed */
    assert_true(before - after < (long long)sent / 10); /* but only a few */
    free(m);
    free(u);
    free(tok);
    assert_int_equal(stop(&s), 0);
}

/* ---- determinism --------------------------------------------------------------------- */

static void dump_hash(t_server *s, unsigned char out[32]) {
    t_resp r;
    assert_int_equal(t_http(s, "GET", "/sim/dump", NULL, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(r.len > 1000);
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(r.body, r.len, out, &n, EVP_sha256(), NULL), 1);
    t_resp_free(&r);
}

static void test_same_seed_same_dump(void **state) {
    (void)state;
    unsigned char h[3][32];
    const char *seeds[] = {"42", "42", "43"};
    for (int i = 0; i < 3; i++) {
        t_server s;
        const char *extra[] = {"--seed",   seeds[i], "--customers", "3000", "--employees", "40",
                               "--groups", "40",     "--channels",  "20",   NULL};
        sim_start(&s, extra);
        dump_hash(&s, h[i]);
        assert_int_equal(stop(&s), 0);
    }
    assert_memory_equal(h[0], h[1], 32);
    assert_memory_not_equal(h[0], h[2], 32);
}

/* ---- into a real siyu serve ------------------------------------------------------------ */

typedef struct pair {
    char *dir;
    t_server srv, sim;
} pair;

/* A data dir with a tenant whose callback config matches the simulator,
 * siyu serve on it, and the simulator pushing to it with extra flags. */
static void pair_start(pair *p, const char *const *extra) {
    p->dir = t_tmpdir();
    assert_non_null(p->dir);
    char *id = NULL;
    const char *args[] = {
        "tenant",           "create", "--data",    p->dir,  "--name",   "Sim",  "--corp-id", CORP,
        "--callback-token", CB_TOKEN, "--aes-key", AES_KEY, "--secret", SECRET, NULL};
    assert_int_equal(t_siyu(&id, args), 0);
    assert_int_equal(t_server_start(&p->srv, p->dir, NULL), 0);
    track(p->srv.pid, true);
    char url[256];
    snprintf(url, sizeof url, "%s/wecom/callback/%s", p->srv.base, id);
    free(id);
    const char *sargs[64] = {"--callback-url", url,         "--callback-token",
                             CB_TOKEN,         "--aes-key", AES_KEY};
    int n = 6;
    for (int i = 0; extra[i]; i++)
        sargs[n++] = extra[i];
    sargs[n] = NULL;
    sim_start(&p->sim, sargs);
}

static void pair_stop(pair *p) {
    assert_int_equal(stop(&p->sim), 0);
    assert_int_equal(stop(&p->srv), 0);
    t_rmdir(p->dir);
}

static void test_refusal_callback(void **state) {
    (void)state;
    pair p;
    const char *extra[] = {SMALL, "--refuse-rate", "1", "--takeover-delay", "50", NULL};
    pair_start(&p, extra);
    char *tok = token(&p.sim);
    char *a = follow_users(&p.sim, tok, 0), *b = follow_users(&p.sim, tok, 1);
    json_t *add = act_add(&p.sim, a, false); /* delivered before the reply */
    char *ext = strdup(json_string_value(json_object_get(add, "external_userid")));
    json_decref(add);
    assert_int_equal(t_sql_int(p.dir, "SELECT count(*) FROM identity WHERE value='%s'", ext), 1);
    transfer(&p.sim, tok, a, b, ext, 0);
    advance(&p.sim, 51); /* the customer refuses: transfer_fail, delivered */
    assert_int_equal(transfer_status(&p.sim, tok, a, b), 3);
    assert_int_equal(
        t_sql_int(p.dir, "SELECT count(*) FROM event WHERE type='wecom.transfer_fail'"), 1);
    assert_string_equal(
        t_sql_text(p.dir,
                   "SELECT r.status FROM relationship r JOIN identity i ON "
                   "i.customer_id=r.customer_id JOIN employee e ON e.id=r.employee_id "
                   "WHERE i.value='%s' AND e.userid='%s'",
                   ext, a),
        "active");
    free(ext);
    free(a);
    free(b);
    free(tok);
    pair_stop(&p);
}

static void test_replay_matches_siyu(void **state) {
    (void)state;
    pair p;
    const char *extra[] = {"--seed",      "5",  "--customers",      "2000",
                           "--employees", "60", "--groups",         "30",
                           "--channels",  "20", "--replay-history", "--push-concurrency",
                           "16",          NULL};
    pair_start(&p, extra);
    bool done = false;
    for (int i = 0; i < 1200 && !done; i++) { /* up to 60 s */
        json_t *st = admin(&p.sim, "/sim/stats", NULL);
        done = json_is_true(json_object_get(st, "history_done"));
        json_decref(st);
        if (!done) usleep(50000);
    }
    assert_true(done);
    json_t *st = admin(&p.sim, "/sim/stats", NULL);
    json_t *cb = json_object_get(st, "callbacks");
    assert_int_equal(json_integer_value(json_object_get(cb, "dropped")), 0);
    assert_int_equal(json_integer_value(json_object_get(st, "customers")), 2000);
    assert_int_equal(t_sql_int(p.dir, "SELECT count(*) FROM customer"), 2000);
    assert_int_equal(t_sql_int(p.dir, "SELECT count(*) FROM relationship WHERE status='active'"),
                     json_integer_value(json_object_get(st, "relationships")));
    assert_int_equal(t_sql_int(p.dir, "SELECT count(*) FROM group_chat WHERE status='active'"),
                     json_integer_value(json_object_get(st, "groups")));
    assert_int_equal(t_sql_int(p.dir, "SELECT count(*) FROM event"),
                     json_integer_value(json_object_get(cb, "acked")));
    json_decref(st);
    /* live actions and a missed callback */
    json_t *r = admin(&p.sim, "/sim/run", "{\"actions\":50}");
    assert_int_equal(json_integer_value(json_object_get(r, "actions")), 50);
    json_decref(r);
    json_t *a = admin(&p.sim, "/sim/act", "{\"type\":\"add\",\"deliver\":false}");
    assert_int_equal(errcode(a), 0);
    json_decref(a);
    st = admin(&p.sim, "/sim/stats", NULL);
    assert_int_equal(t_sql_int(p.dir, "SELECT count(*) FROM relationship WHERE status='active'") +
                         1,
                     json_integer_value(json_object_get(st, "relationships")));
    json_decref(st);
    pair_stop(&p);
}

static void wait_history(t_server *sim) {
    bool done = false;
    for (int i = 0; i < 1200 && !done; i++) { /* up to 60 s */
        json_t *st = admin(sim, "/sim/stats", NULL);
        done = json_is_true(json_object_get(st, "history_done")) &&
               json_integer_value(json_object_get(json_object_get(st, "callbacks"), "queued")) == 0;
        json_decref(st);
        if (!done) usleep(50000);
    }
    assert_true(done);
}

static void test_org_replay_config(void **state) {
    (void)state;
    pair p;
    const char *extra[] = {SMALL, NULL};
    pair_start(&p, extra);
    json_t *org = admin(&p.sim, "/sim/org", NULL);
    assert_int_equal(json_array_size(json_object_get(org, "departments")), 2);
    assert_int_equal(json_array_size(json_object_get(org, "stores")), 3);
    assert_int_equal(json_array_size(json_object_get(org, "employees")), 8);
    json_decref(org);
    /* nothing pushed until asked */
    assert_int_equal(t_sql_int(p.dir, "SELECT count(*) FROM customer"), 0);
    json_t *r = admin(&p.sim, "/sim/replay", "{}");
    assert_false(json_is_true(json_object_get(r, "already")));
    assert_true(json_integer_value(json_object_get(r, "queued")) > 300);
    json_decref(r);
    wait_history(&p.sim);
    assert_int_equal(t_sql_int(p.dir, "SELECT count(*) FROM customer"), 300);
    r = admin(&p.sim, "/sim/replay", "{}");
    assert_true(json_is_true(json_object_get(r, "already")));
    json_decref(r);
    /* live traffic switched on and off again */
    json_decref(admin(&p.sim, "/sim/config", "{\"rate\":200}"));
    usleep(300000);
    json_decref(admin(&p.sim, "/sim/config", "{\"rate\":0}"));
    wait_history(&p.sim);
    json_t *st = admin(&p.sim, "/sim/stats", NULL);
    assert_true(json_integer_value(json_object_get(st, "customers")) > 300);
    assert_int_equal(t_sql_int(p.dir, "SELECT count(*) FROM customer"),
                     json_integer_value(json_object_get(st, "customers")));
    assert_int_equal(t_sql_int(p.dir, "SELECT count(*) FROM relationship WHERE status='active'"),
                     json_integer_value(json_object_get(st, "relationships")));
    json_decref(st);
    /* callbacks switched off: the world changes, nothing is pushed */
    r = admin(&p.sim, "/sim/config", "{\"callbacks\":false}");
    assert_false(json_is_true(json_object_get(r, "callbacks")));
    json_decref(r);
    long long before = t_sql_int(p.dir, "SELECT count(*) FROM customer");
    json_t *run = admin(&p.sim, "/sim/run", "{\"actions\":20}");
    assert_int_equal(json_integer_value(json_object_get(run, "callbacks")), 0);
    json_decref(run);
    usleep(200000);
    assert_int_equal(t_sql_int(p.dir, "SELECT count(*) FROM customer"), before);
    r = admin(&p.sim, "/sim/config", "{\"callbacks\":true}");
    assert_true(json_is_true(json_object_get(r, "callbacks")));
    json_decref(r);
    json_decref(t_call(&p.sim, "POST", "/sim/config", NULL, "{\"callbacks\":1}", 400));
    pair_stop(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_rules),         cmocka_unit_test(test_batch_paging),
        cmocka_unit_test(test_contact_way_state),   cmocka_unit_test(test_welcome_code),
        cmocka_unit_test(test_transfer_limits),     cmocka_unit_test(test_mass_message_quota),
        cmocka_unit_test(test_mass_message_responses),
        cmocka_unit_test(test_same_seed_same_dump), cmocka_unit_test(test_refusal_callback),
        cmocka_unit_test(test_replay_matches_siyu), cmocka_unit_test(test_org_replay_config),
    };
    return cmocka_run_group_tests(tests, NULL, kill_left);
}
