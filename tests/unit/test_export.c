/* test_export.c — segment export writers: CSV quoting (RFC 4180, BOM,
 * formula guard), phone normalisation and masking, the MD5 / SHA-256 digests
 * (expected values computed outside Siyu with `printf %s 13800138000 |
 * md5sum` and `| sha256sum`), .xlsx output (a zip that `unzip -l` lists with
 * its sheet), and rows read from a real store in one query per batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "segment/export.h"
#include "store/store.h"
#include "testlib.h"
#include "util/phone.h"

/* A sink collecting everything in memory; fail_after > 0 fails that call. */
typedef struct mem {
    char *buf;
    size_t len;
    int calls, fail_after;
    size_t max_piece;
} mem;

static int mem_sink(void *arg, const void *data, size_t len) {
    mem *m = arg;
    m->calls++;
    if (m->fail_after && m->calls >= m->fail_after) return SIYU_ECLOSED;
    if (len > m->max_piece) m->max_piece = len;
    m->buf = realloc(m->buf, m->len + len + 1);
    memcpy(m->buf + m->len, data, len);
    m->len += len;
    m->buf[m->len] = 0;
    return 0;
}

static char *field(const char *s) {
    static char buf[256];
    size_t n = export_csv_field(s, buf, sizeof buf - 1);
    assert_true(n < sizeof buf);
    buf[n] = 0;
    return buf;
}

static void test_csv_field(void **state) {
    (void)state;
    assert_string_equal(field("plain"), "plain");
    assert_string_equal(field(""), "");
    assert_string_equal(field(NULL), "");
    assert_string_equal(field("a,b"), "\"a,b\"");
    assert_string_equal(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_string_equal(field("two\nlines"), "\"two\nlines\"");
    assert_string_equal(field("cr\rhere"), "\"cr\rhere\"");
    assert_string_equal(field("上海"), "上海");
    /* spreadsheet formulas are neutralised */
    assert_string_equal(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    assert_string_equal(field("+1"), "'+1");
    assert_string_equal(field("-1"), "'-1");
    assert_string_equal(field("@sum"), "'@sum");
    /* the size is reported even when the buffer is short */
    char small[4];
    assert_int_equal(export_csv_field("a,b,c", small, sizeof small), 7);
}

static void test_csv_writer(void **state) {
    (void)state;
    mem m = {0};
    export_writer *w;
    siyu_err err = {0};
    assert_int_equal(export_writer_create(EXPORT_CSV, mem_sink, &m, NULL, &w, &err), 0);
    export_row a = {.id = 7,
                    .external_userid = "wmA",
                    .name = "Li, \"Lei\"",
                    .gender = 2,
                    .region = "上海",
                    .stage = "vip",
                    .first_added_at = 1700000000,
                    .tags = "VIP;新客"};
    export_row b = {.id = 9, .name = "line\nbreak", .gender = 0, .first_added_at = -1};
    assert_int_equal(export_writer_row(w, &a), 0);
    assert_int_equal(export_writer_row(w, &b), 0);
    assert_int_equal(export_writer_finish(w, &err), 0);
    assert_int_equal(export_writer_rows(w), 2);
    export_writer_free(w);
    const char want[] =
        "\xEF\xBB\xBF"
        "id,external_userid,name,gender,region,stage,first_added_at,tags\r\n"
        "7,wmA,\"Li, \"\"Lei\"\"\",female,上海,vip,2023-11-14T22:13:20Z,VIP;新客\r\n"
        "9,,\"line\nbreak\",unknown,,,,\r\n";
    assert_string_equal(m.buf, want);
    free(m.buf);

    /* An empty segment still gets the header. */
    m = (mem){0};
    assert_int_equal(export_writer_create(EXPORT_CSV, mem_sink, &m, NULL, &w, &err), 0);
    assert_int_equal(export_writer_finish(w, &err), 0);
    export_writer_free(w);
    assert_string_equal(m.buf,
                        "\xEF\xBB\xBF"
                        "id,external_userid,name,gender,region,stage,first_added_at,tags\r\n");
    free(m.buf);
}

/* Many rows go out in pieces of at most EXPORT_CHUNK, and a failing sink
 * stops the writer with its error. */
static void test_csv_chunks_and_sink_error(void **state) {
    (void)state;
    mem m = {0};
    export_writer *w;
    siyu_err err = {0};
    assert_int_equal(export_writer_create(EXPORT_CSV, mem_sink, &m, NULL, &w, &err), 0);
    char name[100];
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof name, "customer number %d", i);
        export_row r = {.id = i + 1, .name = name, .first_added_at = -1};
        assert_int_equal(export_writer_row(w, &r), 0);
    }
    assert_int_equal(export_writer_finish(w, &err), 0);
    export_writer_free(w);
    assert_true(m.calls > 5);
    assert_true(m.max_piece <= EXPORT_CHUNK);
    assert_non_null(strstr(m.buf, "\r\n20000,,customer number 19999,unknown,,,,\r\n"));
    free(m.buf);

    m = (mem){.fail_after = 2};
    assert_int_equal(export_writer_create(EXPORT_CSV, mem_sink, &m, NULL, &w, &err), 0);
    int rc = 0;
    for (int i = 0; i < 20000 && !rc; i++) {
        export_row r = {.id = i + 1, .name = "x", .first_added_at = -1};
        rc = export_writer_row(w, &r);
    }
    assert_int_equal(rc, SIYU_ECLOSED);
    export_writer_free(w);
    free(m.buf);
}

static void test_phone_normalize(void **state) {
    (void)state;
    char out[PHONE_DIGITS + 1];
    const char *why;
    static const char *const good[] = {"13800138000",
                                       "+8613800138000",
                                       "8613800138000",
                                       "+86 138 0013 8000",
                                       "138-0013-8000",
                                       "+86-138-0013-8000",
                                       NULL};
    for (int i = 0; good[i]; i++) {
        assert_int_equal(phone_normalize(good[i], out, &why), 0);
        assert_string_equal(out, "13800138000");
    }
    static const char *const bad[] = {"",
                                      "1380013800",
                                      "138001380001",
                                      "23800138000",
                                      "12800138000",
                                      "+8513800138000",
                                      "+86+13800138000",
                                      "138 0013 800a",
                                      " 13800138000",
                                      "13800138000 ",
                                      "1380013８000",
                                      "+1 415 555 0100",
                                      "0086138001380001",
                                      "138--0013-8000",
                                      NULL};
    for (int i = 0; bad[i]; i++) {
        why = NULL;
        assert_int_equal(phone_normalize(bad[i], out, &why), SIYU_EINVAL);
        assert_non_null(why);
        assert_null(strstr(why, "138")); /* the message never repeats the number */
    }
    assert_int_equal(phone_normalize(NULL, out, &why), SIYU_EINVAL);
    char m[PHONE_DIGITS + 1];
    phone_mask("13800138000", m);
    assert_string_equal(m, "138****8000");
    phone_mask("123", m);
    assert_string_equal(m, "****");
}

static void test_phone_hashes(void **state) {
    (void)state;
    char hex[65];
    assert_int_equal(phone_hash_hex("13800138000", 11, false, hex), 0);
    assert_string_equal(hex, "7945bd83237335e5376ff44d62e4f0ae");
    assert_int_equal(phone_hash_hex("13800138000", 11, true, hex), 0);
    assert_string_equal(hex, "a6942f9771d67f34034d2f1926988ed3fad3bf1b4e7cedb9a31f31398dea43bc");

    /* The writers digest the normalised number and skip the rest. */
    for (int sha = 0; sha < 2; sha++) {
        mem m = {0};
        export_writer *w;
        siyu_err err = {0};
        assert_int_equal(export_writer_create(sha ? EXPORT_PHONE_SHA256 : EXPORT_PHONE_MD5,
                                              mem_sink, &m, NULL, &w, &err),
                         0);
        export_row rows[] = {{.id = 1, .phone = "+86 138 0013 8000"},
                             {.id = 2, .phone = NULL},
                             {.id = 3, .phone = "not a phone"},
                             {.id = 4, .phone = "15912345678"}};
        for (size_t i = 0; i < 4; i++)
            assert_int_equal(export_writer_row(w, &rows[i]), 0);
        assert_int_equal(export_writer_finish(w, &err), 0);
        assert_int_equal(export_writer_rows(w), 2);
        export_writer_free(w);
        assert_string_equal(
            m.buf, sha ? "a6942f9771d67f34034d2f1926988ed3fad3bf1b4e7cedb9a31f31398dea43bc\n"
                         "6e097f6bb36921342f3ac028015db487e450172531ef36ac7483819a52f0b1f1\n"
                       : "7945bd83237335e5376ff44d62e4f0ae\n"
                         "59ae27a8ac7ef3f74120391a3ecb185a\n");
        free(m.buf);
    }
}

/* Writes m to path. */
static void save(const char *path, const mem *m) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(m->buf, 1, m->len, f), m->len);
    fclose(f);
}

static void test_xlsx(void **state) {
    (void)state;
    char *dir = t_tmpdir();
    mem m = {0};
    export_writer *w;
    siyu_err err = {0};
    assert_int_equal(export_writer_create(EXPORT_XLSX, mem_sink, &m, dir, &w, &err), 0);
    for (int i = 0; i < 3000; i++) {
        export_row r = {.id = i + 1,
                        .name = "王小明",
                        .region = "北京",
                        .gender = 1,
                        .first_added_at = 1700000000,
                        .tags = "VIP"};
        assert_int_equal(export_writer_row(w, &r), 0);
    }
    assert_int_equal(export_writer_finish(w, &err), 0);
    assert_int_equal(export_writer_rows(w), 3000);
    export_writer_free(w);
    assert_true(m.len > 1000);
    assert_memory_equal(m.buf, "PK\x03\x04", 4);
    assert_true(m.max_piece <= EXPORT_CHUNK);
    char path[600], cmd[700];
    snprintf(path, sizeof path, "%s/out.xlsx", dir);
    save(path, &m);
    free(m.buf);
    /* unzip lists the worksheet and the shared parts */
    snprintf(cmd, sizeof cmd, "unzip -l '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char listing[8192] = "";
    size_t n = fread(listing, 1, sizeof listing - 1, p);
    listing[n] = 0;
    int st = pclose(p);
    if (strstr(listing, "not found") == NULL) { /* unzip is installed */
        assert_int_equal(st, 0);
        assert_non_null(strstr(listing, "xl/worksheets/sheet1.xml"));
        assert_non_null(strstr(listing, "xl/workbook.xml"));
    }
    /* the export left no temporary file of its own */
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c siyu-export", dir);
    p = popen(cmd, "r");
    char cnt[16] = "";
    assert_non_null(fgets(cnt, sizeof cnt, p));
    pclose(p);
    assert_string_equal(cnt, "0\n");

    /* freed before finishing (a client that went away): the file is gone too */
    m = (mem){0};
    assert_int_equal(export_writer_create(EXPORT_XLSX, mem_sink, &m, dir, &w, &err), 0);
    export_row r = {.id = 1, .name = "x", .first_added_at = -1};
    assert_int_equal(export_writer_row(w, &r), 0);
    export_writer_free(w);
    p = popen(cmd, "r");
    assert_non_null(fgets(cnt, sizeof cnt, p));
    pclose(p);
    assert_string_equal(cnt, "0\n");
    free(m.buf);
    t_rmdir(dir);
}

static int seed(store_conn *c, void *arg) {
    (void)arg;
    return store_conn_exec(
        c, "INSERT INTO tenant(tenant_id,name,created_at,updated_at) VALUES(1,'A',1,1),"
           "(2,'B',1,1);"
           "INSERT INTO customer(id,tenant_id,external_userid,name,gender,region,stage,phone,"
           "first_added_at,created_at,updated_at) VALUES"
           "(10,1,'wm10','Ten',2,'上海','vip','13800138000',1700000000,1,1),"
           "(11,1,'wm11','Eleven',1,NULL,NULL,NULL,NULL,1,1),"
           "(12,2,'wm12','Other tenant',1,NULL,NULL,'15912345678',NULL,1,1);"
           "INSERT INTO tag_group(id,tenant_id,name,created_at,updated_at) VALUES(1,1,'G',1,1);"
           "INSERT INTO tag(id,tenant_id,group_id,name,created_at,updated_at) VALUES"
           "(1,1,1,'VIP',1,1),(2,1,1,'新客',1,1);"
           "INSERT INTO customer_tag(tenant_id,customer_id,tag_id,created_at) VALUES"
           "(1,10,2,1),(1,10,1,1);");
}

static void test_rows_from_store(void **state) {
    (void)state;
    char *dir = t_tmpdir();
    siyu_err err = {0};
    store_options o = {.writer_thread = false};
    store *st = store_open(dir, &o, &err);
    assert_non_null(st);
    int rc = store_write(st, seed, NULL);
    if (rc) fprintf(stderr, "seed: %d\n", rc);
    assert_int_equal(rc, 0);
    store_conn *c = store_reader_acquire(st);
    mem m = {0};
    export_writer *w;
    assert_int_equal(export_writer_create(EXPORT_CSV, mem_sink, &m, NULL, &w, &err), 0);
    const int64_t ids[] = {10, 11, 12, 99}; /* 12 is another tenant's, 99 absent */
    assert_int_equal(export_rows_write(c, 1, ids, 4, w, &err), 0);
    assert_int_equal(export_writer_finish(w, &err), 0);
    export_writer_free(w);
    assert_string_equal(m.buf, "\xEF\xBB\xBF"
                               "id,external_userid,name,gender,region,stage,first_added_at,tags\r\n"
                               "10,wm10,Ten,female,上海,vip,2023-11-14T22:13:20Z,VIP;新客\r\n"
                               "11,wm11,Eleven,male,,,,\r\n");
    free(m.buf);
    m = (mem){0};
    assert_int_equal(export_writer_create(EXPORT_PHONE_MD5, mem_sink, &m, NULL, &w, &err), 0);
    assert_int_equal(export_rows_write(c, 1, ids, 4, w, &err), 0);
    assert_int_equal(export_writer_finish(w, &err), 0);
    export_writer_free(w);
    assert_string_equal(m.buf, "7945bd83237335e5376ff44d62e4f0ae\n");
    free(m.buf);
    store_reader_release(st, c);
    store_close(st);
    t_rmdir(dir);
}

static void test_formats(void **state) {
    (void)state;
    export_format f;
    assert_int_equal(export_format_parse("csv", &f), 0);
    assert_int_equal(f, EXPORT_CSV);
    assert_int_equal(export_format_parse("phone_sha256", &f), 0);
    assert_true(export_format_has_phones(f));
    assert_int_equal(export_format_parse("xls", &f), SIYU_EINVAL);
    assert_int_equal(export_format_parse(NULL, &f), SIYU_EINVAL);
    assert_string_equal(export_extension(EXPORT_XLSX), "xlsx");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_field),
        cmocka_unit_test(test_csv_writer),
        cmocka_unit_test(test_csv_chunks_and_sink_error),
        cmocka_unit_test(test_phone_normalize),
        cmocka_unit_test(test_phone_hashes),
        cmocka_unit_test(test_xlsx),
        cmocka_unit_test(test_rows_from_store),
        cmocka_unit_test(test_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
