/* outbox_fixture.h — a `siyu serve` wired to a `siyu wecom-sim` for the outbox
 * and welcome tests (static helpers, included by test_outbox.c and
 * test_welcome.c only).
 *
 * testlib's wired fixture (t_wired_start): the server listens on a fixed
 * port (the simulator's callback URL names it, and a restarted server must be
 * found there again); tenant 1 has the simulator's corp id, callback token,
 * EncodingAESKey and secret, and an enabled default welcome text. The server
 * runs with --wecom-retries 0, so every busy answer is one outbox attempt. */
#ifndef SIYU_TEST_OUTBOX_FIXTURE_H
#define SIYU_TEST_OUTBOX_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

#define OF_CORP T_CORP
#define OF_TOKEN T_CB_TOKEN
#define OF_AES T_AES
#define OF_TEXT "Welcome to the shop!"

typedef t_wired of_fx;

/* Starts the server again on its port after t_server_kill(&f->srv), with the
 * flags of of_start. */
static __attribute__((unused)) int of_server_start(of_fx *f) {
    return t_wired_restart(f, NULL);
}

/* The simulator: a small world, no history, no live traffic. */
static __attribute__((unused)) int of_start(of_fx *f, const char *welcome_ttl,
                                            const char *max_attempts) {
    const char *sim_args[] = {"--seed",
                              "7",
                              "--stores",
                              "1",
                              "--departments",
                              "1",
                              "--employees",
                              "5",
                              "--customers",
                              "20",
                              "--channels",
                              "2",
                              "--groups",
                              "2",
                              "--tags",
                              "4",
                              "--history-days",
                              "1",
                              "--refuse-rate",
                              "0",
                              "--welcome-ttl",
                              welcome_ttl,
                              NULL};
    const char *srv_args[] = {"--wecom-retries",
                              "0",
                              "--outbox-max-attempts",
                              max_attempts,
                              "--wecom-timeout-ms",
                              "5000",
                              NULL};
    if (t_wired_start(f, sim_args, srv_args) != 0) return -1;
    t_resp r;
    if (t_api(&f->srv, "PUT", "/api/v1/welcome", f->admin, &r, "{s:s,s:b}", "text", OF_TEXT,
              "enabled", 1) != 0 ||
        r.status != 200) {
        fprintf(stderr, "fixture: PUT /api/v1/welcome: %ld %s\n", r.status, r.body);
        t_resp_free(&r);
        return -1;
    }
    t_resp_free(&r);
    return 0;
}

static __attribute__((unused)) void of_stop(of_fx *f) {
    t_wired_stop(f);
}

static __attribute__((unused)) int64_t of_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* POST to the simulator's admin API; returns its answer (caller decrefs). */
static json_t *of_sim(of_fx *f, const char *path, const char *body) {
    return t_call(&f->sim, body ? "POST" : "GET", path, NULL, body, 200);
}

/* A userid of the simulated brand. */
static char *of_employee(of_fx *f, int i) {
    json_t *d = of_sim(f, "/sim/dump", NULL);
    json_t *e = json_array_get(json_object_get(d, "employees"), (size_t)i);
    const char *u = json_string_value(json_object_get(e, "userid"));
    assert_non_null(u);
    char *s = strdup(u);
    json_decref(d);
    return s;
}

/* /sim/act add with a welcome code, delivered; returns the malloc'd code. */
static char *of_add(of_fx *f, const char *userid) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"type\":\"add\",\"userid\":\"%s\",\"state\":\"t\",\"welcome\":true,"
             "\"deliver\":true}",
             userid);
    json_t *a = of_sim(f, "/sim/act", body);
    const char *code = json_string_value(json_object_get(a, "welcome_code"));
    assert_non_null(code);
    char *s = strdup(code);
    json_decref(a);
    return s;
}

/* The outbox row (API view, with result) of the welcome for code, or NULL. */
static json_t *of_welcome_row(of_fx *f, const char *code) {
    json_t *page = t_call(&f->srv, "GET", "/api/v1/outbox?kind=send_welcome_msg&limit=500",
                          f->admin, NULL, 200);
    json_t *it, *found = NULL;
    size_t i;
    json_array_foreach(json_object_get(page, "items"), i, it) {
        const char *c =
            json_string_value(json_object_get(json_object_get(it, "body"), "welcome_code"));
        if (c && !strcmp(c, code)) found = json_object_get(it, "id");
    }
    json_t *row = NULL;
    if (found) {
        char path[64];
        snprintf(path, sizeof path, "/api/v1/outbox/%lld", (long long)json_integer_value(found));
        row = t_call(&f->srv, "GET", path, f->admin, NULL, 200);
    }
    json_decref(page);
    return row;
}

/* Waits up to ms for the welcome row of code to reach state; returns it or
 * fails the test. */
static json_t *of_wait_welcome(of_fx *f, const char *code, const char *state, int ms) {
    json_t *row = NULL;
    for (int64_t end = of_now_ms() + ms;;) {
        row = of_welcome_row(f, code);
        const char *s = json_string_value(json_object_get(row, "state"));
        if (s && !strcmp(s, state)) return row;
        if (of_now_ms() > end) break;
        json_decref(row);
        usleep(50000);
    }
    char *dump = row ? json_dumps(row, JSON_COMPACT) : NULL;
    fprintf(stderr, "welcome %s: want %s, row %s\n", code, state, dump ? dump : "(none)");
    free(dump);
    json_decref(row);
    fail_msg("the welcome row never reached %s", state);
    return NULL;
}

/* The simulator's welcome records for code: how many, and how many with
 * errcode 0 (*ok); *text receives the text of a successful one ("" if none). */
static __attribute__((unused)) int of_sim_welcomes(of_fx *f, const char *code, int *ok, char *text,
                                                   size_t cap) {
    json_t *d = of_sim(f, "/sim/dump", NULL);
    json_t *w;
    size_t i;
    int n = 0;
    *ok = 0;
    if (text) text[0] = 0;
    json_array_foreach(json_object_get(d, "welcomes"), i, w) {
        const char *c = json_string_value(json_object_get(w, "welcome_code"));
        if (!c || strcmp(c, code) != 0) continue;
        n++;
        if (json_integer_value(json_object_get(w, "errcode")) == 0) {
            (*ok)++;
            const char *t = json_string_value(json_object_get(w, "text"));
            if (text && t) snprintf(text, cap, "%s", t);
        }
    }
    json_decref(d);
    return n;
}

/* Calls the simulator counted for path ("externalcontact/send_welcome_msg"). */
static __attribute__((unused)) long long of_sim_calls(of_fx *f, const char *path) {
    json_t *s = of_sim(f, "/sim/stats", NULL);
    json_t *calls = json_object_get(s, "calls");
    json_t *v = json_object_get(calls, path);
    if (!v) {
        /* The simulator may key calls by the full path. */
        char full[128];
        snprintf(full, sizeof full, "/cgi-bin/%s", path);
        v = json_object_get(calls, full);
    }
    long long n = json_integer_value(v);
    json_decref(s);
    return n;
}

/* The one fixture of a test file (test_outbox, test_welcome): a simulator
 * welcome TTL of 20 seconds and at most 3 delivery attempts. */
static of_fx F;

static __attribute__((unused)) int setup(void **state) {
    (void)state;
    return of_start(&F, "20", "3");
}

static __attribute__((unused)) int teardown(void **state) {
    (void)state;
    of_stop(&F);
    return 0;
}

static __attribute__((unused)) const char *jstr(const json_t *j, const char *k) {
    const char *s = json_string_value(json_object_get(j, k));
    return s ? s : "";
}

static __attribute__((unused)) long long jint(const json_t *j, const char *k) {
    return json_integer_value(json_object_get(j, k));
}

#endif
