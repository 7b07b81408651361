/* test_crash.c — durability: every write the server acknowledged survives
 * `kill -9` and a restart. Writers keep posting while the server is killed;
 * afterwards each acknowledged token must still authenticate. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

#define WRITERS 6
#define MAX_ACK 4096

typedef struct {
    t_server *srv;
    const char *admin;
    char (*acked)[80];
    int nacked;
    volatile int *stop;
} writer_arg;

static void *writer(void *p) {
    writer_arg *w = p;
    while (!*w->stop && w->nacked < MAX_ACK / WRITERS) {
        t_resp r;
        if (t_api(w->srv, "POST", "/api/v1/tokens", w->admin, &r, "{s:s}", "role", "admin") != 0) {
            t_resp_free(&r);
            break; /* server gone */
        }
        if (r.status == 201) {
            const char *tok = json_string_value(json_object_get(r.json, "token"));
            if (tok) snprintf(w->acked[w->nacked++], 80, "%s", tok);
        }
        t_resp_free(&r);
    }
    return NULL;
}

static void test_kill9_keeps_acknowledged_writes(void **state) {
    (void)state;
    char *dir = t_tmpdir();
    char *platform = t_token(dir, NULL, "admin", NULL);
    assert_non_null(platform);
    t_server s;
    assert_int_equal(t_server_start(&s, dir, NULL), 0);
    t_resp r;
    assert_int_equal(t_api(&s, "POST", "/api/v1/tenants", platform, &r, "{s:s}", "name", "Crash"),
                     0);
    assert_int_equal(r.status, 201);
    char admin[80];
    snprintf(admin, sizeof admin, "%s", json_string_value(json_object_get(r.json, "admin_token")));
    json_int_t tenant = json_integer_value(json_object_get(r.json, "id"));
    t_resp_free(&r);

    static char acked[WRITERS][MAX_ACK / WRITERS][80];
    volatile int stop = 0;
    pthread_t th[WRITERS];
    writer_arg wa[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        wa[i] = (writer_arg){&s, admin, acked[i], 0, &stop};
        pthread_create(&th[i], NULL, writer, &wa[i]);
    }
    usleep(700 * 1000); /* let writes flow, then pull the plug mid-stream */
    t_server_kill(&s);
    stop = 1;
    int total = 0;
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(th[i], NULL);
        total += wa[i].nacked;
    }
    assert_true(total > 10);

    assert_int_equal(t_server_start(&s, dir, NULL), 0);
    char path[64];
    snprintf(path, sizeof path, "/api/v1/tenants/%lld", (long long)tenant);
    int lost = 0;
    for (int i = 0; i < WRITERS; i++)
        for (int k = 0; k < wa[i].nacked; k++) {
            assert_int_equal(t_api(&s, "GET", path, acked[i][k], &r, NULL), 0);
            lost += r.status != 200;
            t_resp_free(&r);
        }
    print_message("acknowledged before kill -9: %d, lost after restart: %d\n", total, lost);
    assert_int_equal(lost, 0);
    assert_int_equal(t_server_stop(&s), 0);
    free(platform);
    t_rmdir(dir);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_keeps_acknowledged_writes),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
