/* flows_sim.h — a Siyu server wired to a `siyu wecom-sim` on loopback, for
 * the outbox-producer tests (test_tag_push.c, test_transfer.c). Header-only:
 * each test program includes it once.
 *
 * flows_start: testlib's wired fixture (t_wired_start: tenant 1 with the
 * simulator's corp id, callback token and key, secret; an admin token; the
 * server with --wecom-base-url naming the simulator and --sync-interval 0;
 * the simulator with --callback-url naming the server) over a tiny world.
 * flows_stop undoes it all. */
#ifndef SIYU_TEST_FLOWS_SIM_H
#define SIYU_TEST_FLOWS_SIM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testlib.h"

#define FL_CORP T_CORP
#define FL_SECRET T_SECRET

typedef t_wired flows;

/* extra_sim / extra_srv: more simulator / server flags (NULL-terminated,
 * may be NULL). */
static __attribute__((unused)) int flows_start_srv(flows *f, const char *const *extra_sim,
                                                   const char *const *extra_srv) {
    const char *sim_args[40] = {"--seed",      "7", "--stores",    "1", "--departments",  "1",
                                "--employees", "4", "--customers", "1", "--channels",     "1",
                                "--groups",    "0", "--tags",      "0", "--history-days", "1",
                                "--rate",      "0"};
    int n = 0;
    while (sim_args[n])
        n++;
    for (int i = 0; extra_sim && extra_sim[i] && n < 39; i++)
        sim_args[n++] = extra_sim[i];
    const char *srv_args[20] = {"--sync-interval", "0"};
    int k = 2;
    for (int i = 0; extra_srv && extra_srv[i] && k < 19; i++)
        srv_args[k++] = extra_srv[i];
    return t_wired_start(f, sim_args, srv_args);
}

/* extra_sim: more simulator flags (NULL-terminated, may be NULL). */
static __attribute__((unused)) int flows_start(flows *f, const char *const *extra_sim) {
    return flows_start_srv(f, extra_sim, NULL);
}

/* Returns the server's exit status (0 = clean, as ASan builds check). */
static int flows_stop(flows *f) {
    return t_wired_stop(f);
}

static void fl_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A JSON call to the simulator's admin API; returns the parsed answer
 * (caller decrefs) after asserting status 200. */
static json_t *fl_sim(flows *f, const char *method, const char *path, const char *body) {
    return t_call(&f->sim, method, path, NULL, body, 200);
}

/* The simulator's employees' userids (the first n). */
static int fl_sim_userids(flows *f, char out[][64], int n) {
    json_t *d = fl_sim(f, "GET", "/sim/dump", NULL);
    json_t *emps = json_object_get(d, "employees"), *e;
    size_t i;
    int k = 0;
    json_array_foreach(emps, i, e) {
        if (k == n) break;
        snprintf(out[k++], 64, "%s", json_string_value(json_object_get(e, "userid")));
    }
    json_decref(d);
    return k;
}

/* The sim adds a new customer to userid and delivers the callback; waits
 * until Siyu has the relationship. Returns Siyu's customer id (0 on
 * timeout); ext receives the external_userid. */
static __attribute__((unused)) long long fl_sim_add(flows *f, const char *userid, char ext[128]) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"type\":\"add\",\"userid\":\"%s\",\"welcome\":false,\"deliver\":true}", userid);
    json_t *a = fl_sim(f, "POST", "/sim/act", body);
    snprintf(ext, 128, "%s", json_string_value(json_object_get(a, "external_userid")));
    json_decref(a);
    for (int i = 0; i < 200; i++) {
        long long id = t_sql_int(f->dir,
                                 "SELECT r.customer_id FROM relationship r JOIN identity i ON "
                                 "i.customer_id=r.customer_id AND i.kind='wecom_external_userid' "
                                 "JOIN employee e ON e.id=r.employee_id WHERE i.value='%s' AND "
                                 "e.userid='%s' AND r.status='active'",
                                 ext, userid);
        if (id != T_SQL_NONE) return id;
        fl_sleep_ms(25);
    }
    return 0;
}

/* Waits (up to ~10 s) until the query's integer answer is `want`; leaves
 * the last value in var. */
#define FL_WAIT_INT(var, f, want, ...)                                                             \
    do {                                                                                           \
        for (int i_ = 0; i_ < 400; i_++) {                                                         \
            (var) = t_sql_int((f)->dir, __VA_ARGS__);                                              \
            if ((var) == (want)) break;                                                            \
            fl_sleep_ms(25);                                                                       \
        }                                                                                          \
    } while (0)

#endif
