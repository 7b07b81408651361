/* test_demo_live.c — `siyu demo` (what `make demo` runs), on a small brand:
 * it starts the simulator and the server wired together, imports the
 * organisation, replays the history as callbacks, syncs, and reports ready;
 * Siyu then holds exactly the simulator's customers, relationships and
 * groups; Ctrl-C stops both processes and frees both ports. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

/* A port nobody listens on right now. */
static int free_port(void) {
    int port = t_free_port();
    assert_true(port > 0);
    return port;
}

static bool port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void test_demo_live(void **state) {
    (void)state;
    char *dir = t_tmpdir();
    int api_port = free_port(), sim_port = free_port();
    char listen[32], sim_listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", api_port);
    snprintf(sim_listen, sizeof sim_listen, "127.0.0.1:%d", sim_port);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], STDOUT_FILENO);
        close(pfd[0]);
        close(pfd[1]);
        execl(getenv("SIYU_BIN"), "siyu", "demo", "--data", dir, "--fresh", "--listen", listen,
              "--sim-listen", sim_listen, "--customers", "3000", "--employees", "40", "--stores",
              "6", "--channels", "12", "--groups", "30", "--history-days", "30", "--rate", "0",
              (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char line[1024], token[80] = "";
    bool ready = false;
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "admin token:");
        if (p && (p = strstr(p, "sy_"))) snprintf(token, sizeof token, "%.67s", p);
        if (strstr(line, "Siyu demo is ready")) ready = true;
        if (strstr(line, "Ctrl-C stops")) break;
    }
    assert_true(ready);
    assert_int_equal(strlen(token), 67);

    t_server api = {.port = api_port}, sim = {.port = sim_port};
    snprintf(api.base, sizeof api.base, "http://%s", listen);
    snprintf(sim.base, sizeof sim.base, "http://%s", sim_listen);
    /* Let the background full sync finish, so both sides are at rest. */
    for (int i = 0; i < 600; i++) {
        json_t *sy = t_call(&api, "GET", "/api/v1/sync", token, NULL, 200);
        const char *st = json_string_value(json_object_get(sy, "state"));
        bool running = !st || !strcmp(st, "running");
        if (!running) assert_string_equal(st, "done");
        json_decref(sy);
        if (!running) break;
        usleep(100000);
    }
    t_resp r;
    assert_int_equal(t_http(&sim, "GET", "/sim/stats", NULL, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    json_int_t customers = json_integer_value(json_object_get(r.json, "customers"));
    json_int_t rels = json_integer_value(json_object_get(r.json, "relationships"));
    json_int_t groups = json_integer_value(json_object_get(r.json, "groups"));
    json_int_t employees = json_integer_value(json_object_get(r.json, "employees"));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(r.json, "callbacks"), "failed")), 0);
    t_resp_free(&r);
    assert_int_equal(customers, 3000);
    assert_int_equal(t_sql_int(dir, "SELECT count(*) FROM customer"), customers);
    assert_int_equal(t_sql_int(dir, "SELECT count(*) FROM relationship WHERE status='active'"),
                     rels);
    assert_int_equal(t_sql_int(dir, "SELECT count(*) FROM group_chat WHERE status='active'"),
                     groups);
    assert_int_equal(t_sql_int(dir, "SELECT count(*) FROM employee WHERE name IS NOT NULL"),
                     employees);
    assert_int_equal(t_sql_int(dir, "SELECT count(*) FROM store"), 6);
    /* The printed token works. */
    json_t *j = t_call(&api, "GET", "/api/v1/customers?limit=5", token, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 5);
    json_decref(j);

    kill(pid, SIGINT);
    int status = -1;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    fclose(f);
    assert_false(port_open(api_port));
    assert_false(port_open(sim_port));
    t_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_demo_live)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
