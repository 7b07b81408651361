/* test_config.c — config precedence (flags > env > file > defaults) and errors
 * that name the file, line and key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/config.h"
#include "testlib.h"

static char *write_file(const char *dir, const char *text) {
    char *p = NULL;
    assert_true(asprintf(&p, "%s/siyu.conf", dir) > 0);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static void test_defaults(void **state) {
    (void)state;
    unsetenv("SIYU_CONFIG");
    unsetenv("SIYU_LISTEN");
    unsetenv("SIYU_THREADS");
    siyu_config c;
    siyu_err e = {0};
    assert_int_equal(config_load(&c, 0, NULL, &e), 0);
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_string_equal(c.data, "./data");
    assert_int_equal(c.threads, 4);
}

static void test_precedence(void **state) {
    (void)state;
    char *dir = t_tmpdir();
    char *file = write_file(dir, "# comment\nlisten = 127.0.0.1:9001\nthreads = 3\n"
                                 "data = /var/lib/siyu\n");
    setenv("SIYU_CONFIG", file, 1);
    setenv("SIYU_THREADS", "5", 1);
    siyu_config c;
    siyu_err e = {0};
    char *argv[] = {"--listen", "127.0.0.1:9002", NULL};
    assert_int_equal(config_load(&c, 2, argv, &e), 0);
    assert_string_equal(c.listen, "127.0.0.1:9002"); /* flag beats file */
    assert_int_equal(c.threads, 5);                  /* env beats file */
    assert_string_equal(c.data, "/var/lib/siyu");    /* file beats default */
    unsetenv("SIYU_CONFIG");
    unsetenv("SIYU_THREADS");
    free(file);
    t_rmdir(dir);
}

static void test_errors_name_the_problem(void **state) {
    (void)state;
    char *dir = t_tmpdir();
    char *file = write_file(dir, "listen = 127.0.0.1:1\nthreds = 2\n");
    siyu_config c;
    siyu_err e = {0};
    char *argv1[] = {"--config", file};
    assert_int_equal(config_load(&c, 2, argv1, &e), SIYU_EINVAL);
    assert_non_null(strstr(e.msg, ":2"));
    assert_non_null(strstr(e.msg, "threds"));
    char *argv2[] = {"--threads", "0"};
    assert_int_equal(config_load(&c, 2, argv2, &e), SIYU_EINVAL);
    assert_string_equal(e.field, "threads");
    char *argv3[] = {"--no-such-flag", "1"};
    assert_int_equal(config_load(&c, 2, argv3, &e), SIYU_EINVAL);
    assert_non_null(strstr(e.msg, "--no-such-flag"));
    char *argv4[] = {"--log-level=loud"};
    assert_int_equal(config_load(&c, 1, argv4, &e), SIYU_EINVAL);
    assert_string_equal(e.field, "log_level");
    free(file);
    t_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_errors_name_the_problem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
