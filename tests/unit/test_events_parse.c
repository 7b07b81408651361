/* test_events_parse.c — the event batch parser: valid batches (decoding,
 * compact props, nulls), every validation error with its field path, the
 * limits on both sides of each bound, and a seeded random round trip against
 * jansson. Every successful parse is checked with events_batch_validate. */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/events.h"

#define BASE "\"idempotency_key\":\"k1\",\"type\":\"page.view\",\"ts\":1700000000"

/* {"events":[{<fields>}]} in a malloc'd string. */
static char *one(const char *fields) {
    char *s = NULL;
    assert_true(asprintf(&s, "{\"events\":[{%s}]}", fields) > 0);
    return s;
}

static void parse_ok(const char *body, events_batch *b) {
    siyu_err e = {0};
    int rc = events_batch_parse(body, strlen(body), b, &e);
    if (rc != 0) fail_msg("parse failed (%d) field '%s': %s", rc, e.field, e.msg);
    const char *why = NULL;
    if (!events_batch_validate(b, &why)) fail_msg("invalid batch: %s", why);
}

static void expect_err_len(const char *body, size_t len, int code, const char *field) {
    events_batch b;
    memset(&b, 0x5a, sizeof b); /* output only: garbage in must be fine */
    siyu_err e = {0};
    int rc = events_batch_parse(body, len, &b, &e);
    if (rc != code || strcmp(e.field, field) != 0)
        fail_msg("%.200s\n  want %d '%s', got %d '%s': %s", body, code, field, rc, e.field, e.msg);
    assert_int_equal(e.code, code);
    assert_true(e.msg[0] != 0);
    assert_int_equal(b.n, 0);
    assert_null(b.items);
    assert_null(b.arena);
    events_batch_free(&b);
}

static void expect_err(const char *body, int code, const char *field) {
    expect_err_len(body, strlen(body), code, field);
}

/* One item with fields, expecting a 400 on field. */
static void item_err(const char *fields, const char *field) {
    char *s = one(fields);
    expect_err(s, SIYU_EINVAL, field);
    free(s);
}

/* ---- valid batches ------------------------------------------------------ */

static void test_minimal(void **state) {
    (void)state;
    events_batch b;
    parse_ok("{\"events\":[{" BASE ",\"customer_id\":42}]}", &b);
    assert_int_equal(b.n, 1);
    const events_item *it = &b.items[0];
    assert_string_equal(it->idem_key.p, "k1");
    assert_int_equal(it->idem_key.len, 2);
    assert_string_equal(it->type.p, "page.view");
    assert_int_equal(it->ts, 1700000000);
    assert_int_equal(it->customer_id, 42);
    assert_null(it->external_userid.p);
    assert_null(it->employee_userid.p);
    assert_null(it->props.p);
    events_batch_free(&b);
    events_batch_free(&b); /* twice is fine */
    events_batch_free(NULL);
}

static void test_all_fields_and_whitespace(void **state) {
    (void)state;
    const char *body =
        " \n{ \"events\" :\t[ { \"props\" : { \"url\" : \"/p/1\" , \"n\" : [ 1 , 2.5 , "
        "-3e2 , true , false , null , { } , [ ] ] } , \"employee_userid\" : \"zhangsan\" "
        ", \"external_userid\" : \"wmABC\" , \"ts\" : 946684800 , \"type\" : "
        "\"order:paid-v2_x\" , \"idempotency_key\" : \"o-1\" } , {" BASE
        ",\"customer_id\":7,\"props\":null,\"employee_userid\":null} ] } \r\n";
    events_batch b;
    parse_ok(body, &b);
    assert_int_equal(b.n, 2);
    const events_item *it = &b.items[0];
    assert_string_equal(it->props.p, "{\"url\":\"/p/1\",\"n\":[1,2.5,-3e2,true,false,null,{},[]]}");
    assert_int_equal(it->props.len, strlen(it->props.p));
    assert_string_equal(it->employee_userid.p, "zhangsan");
    assert_string_equal(it->external_userid.p, "wmABC");
    assert_int_equal(it->customer_id, 0);
    assert_int_equal(it->ts, EVENTS_TS_MIN);
    assert_string_equal(it->type.p, "order:paid-v2_x");
    assert_string_equal(it->idem_key.p, "o-1");
    assert_int_equal(b.items[1].customer_id, 7);
    assert_null(b.items[1].props.p);
    assert_null(b.items[1].employee_userid.p);
    events_batch_free(&b);
}

static void test_string_decoding(void **state) {
    (void)state;
    /* Escapes in keys and values are decoded; props keep them verbatim. */
    const char *body = "{\"ev\\u0065nts\":[{\"idempotency_key\":\"a\\\"b\\\\c\\/d\\n\\u00e9\\u4e2d"
                       "\\ud83d\\ude00\",\"typ\\u0065\":\"x\",\"ts\":1700000000,"
                       "\"external_userid\":\"\xe5\xae\xa2\xe6\x88\xb7\",\"props\":{\"k\\u00e9\":"
                       "\"\\ud83d\\ude00 \xe4\xb8\xad\\t\"}}]}";
    events_batch b;
    parse_ok(body, &b);
    const events_item *it = &b.items[0];
    assert_string_equal(it->idem_key.p, "a\"b\\c/d\n\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80");
    assert_string_equal(it->external_userid.p, "\xe5\xae\xa2\xe6\x88\xb7");
    assert_string_equal(it->props.p, "{\"k\\u00e9\":\"\\ud83d\\ude00 \xe4\xb8\xad\\t\"}");
    json_error_t je;
    json_t *p = json_loads(it->props.p, 0, &je);
    assert_non_null(p);
    assert_string_equal(json_string_value(json_object_get(p, "k\xc3\xa9")),
                        "\xf0\x9f\x98\x80 \xe4\xb8\xad\t");
    json_decref(p);
    events_batch_free(&b);
}

static void test_insert_order(void **state) {
    (void)state;
    /* hash_order sorts by the key's hash, stable for equal keys (the first of
     * two equal keys comes first, so it is the one stored). */
    const char *body =
        "{\"events\":["
        "{\"idempotency_key\":\"b\",\"type\":\"t\",\"ts\":1700000000,\"customer_id\":1},"
        "{\"idempotency_key\":\"ab\",\"type\":\"t\",\"ts\":1700000000,\"customer_id\":2},"
        "{\"idempotency_key\":\"b\",\"type\":\"t\",\"ts\":1700000000,\"customer_id\":3},"
        "{\"idempotency_key\":\"a\",\"type\":\"t\",\"ts\":1700000000,\"customer_id\":4},"
        "{\"idempotency_key\":\"\xc3\xa9\",\"type\":\"t\",\"ts\":1700000000,"
        "\"customer_id\":5}]}";
    events_batch b;
    parse_ok(body, &b);
    unsigned seen = 0;
    for (int i = 0; i < 5; i++) {
        uint16_t k = b.hash_order[i];
        assert_true(k < 5 && !(seen & (1u << k)));
        seen |= 1u << k;
        assert_int_equal(b.items[k].idem_hash,
                         events_idem_hash(b.items[k].idem_key.p, b.items[k].idem_key.len));
        if (i) {
            const events_item *p = &b.items[b.hash_order[i - 1]], *q = &b.items[k];
            assert_true(p->idem_hash < q->idem_hash ||
                        (p->idem_hash == q->idem_hash && b.hash_order[i - 1] < k));
        }
    }
    /* The two items with key "b" (0 and 2) are adjacent, 0 first. */
    for (int i = 0; i < 4; i++)
        if (b.hash_order[i] == 0) assert_int_equal(b.hash_order[i + 1], 2);
    /* Items themselves stay in input order. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(b.items[i].customer_id, i + 1);
    events_batch_free(&b);
}

/* ---- errors: the body ---------------------------------------------------- */

static void test_body_errors(void **state) {
    (void)state;
    expect_err("", SIYU_EINVAL, "");
    expect_err("   ", SIYU_EINVAL, "");
    expect_err("[]", SIYU_EINVAL, "");
    expect_err("null", SIYU_EINVAL, "");
    expect_err("{", SIYU_EINVAL, "");
    expect_err("{}", SIYU_EINVAL, "events");
    expect_err("{\"events\":{}}", SIYU_EINVAL, "events");
    expect_err("{\"events\":[]}", SIYU_EINVAL, "events");
    expect_err("{\"events\":null}", SIYU_EINVAL, "events");
    expect_err("{\"batch\":1}", SIYU_EINVAL, "batch");
    expect_err("{\"events\":[{" BASE ",\"customer_id\":1}],\"extra\":true}", SIYU_EINVAL, "extra");
    expect_err("{\"events\":[{" BASE ",\"customer_id\":1}],\"events\":[]}", SIYU_EINVAL, "events");
    expect_err("{\"events\":[{" BASE ",\"customer_id\":1}]} x", SIYU_EINVAL, "");
    expect_err("{\"events\":[{" BASE ",\"customer_id\":1}]}{}", SIYU_EINVAL, "");
    expect_err("{\"events\":[{" BASE ",\"customer_id\":1}", SIYU_EINVAL, "events");
    expect_err("{\"events\":[{" BASE ",\"customer_id\":1},]}", SIYU_EINVAL, "events[1]");
    expect_err("{\"events\":[{" BASE ",\"customer_id\":1} {}]}", SIYU_EINVAL, "events");
    expect_err("{\"events\":[1]}", SIYU_EINVAL, "events[0]");
    expect_err("{\"events\":[{" BASE ",\"customer_id\":1},\"x\"]}", SIYU_EINVAL, "events[1]");
    expect_err("{\"events\" [1]}", SIYU_EINVAL, "");
    expect_err("{events:[]}", SIYU_EINVAL, "");
    /* An embedded NUL ends nothing: the length is what counts. */
    expect_err_len("{\"events\":[]}\0", 14, SIYU_EINVAL, "events");
}

static void test_unknown_field_name_is_safe(void **state) {
    (void)state;
    item_err(BASE ",\"customer_id\":1,\"colour\":\"red\"", "events[0].colour");
    /* Non-ASCII and over-long names are cut, never copied raw. */
    events_batch b;
    siyu_err e = {0};
    char *s = one(BASE ",\"\xe5\xae\xa2x\":1");
    assert_int_equal(events_batch_parse(s, strlen(s), &b, &e), SIYU_EINVAL);
    assert_string_equal(e.field, "events[0]....");
    free(s);
    char longname[200], fields[300];
    memset(longname, 'a', 100);
    longname[100] = 0;
    snprintf(fields, sizeof fields, BASE ",\"%s\":1", longname);
    s = one(fields);
    assert_int_equal(events_batch_parse(s, strlen(s), &b, &e), SIYU_EINVAL);
    assert_true(strlen(e.field) < sizeof e.field);
    assert_non_null(strstr(e.field, "aaa..."));
    free(s);
}

/* ---- errors: each field ----------------------------------------------- */

static void test_item_structure_errors(void **state) {
    (void)state;
    item_err("\"type\":\"a\",\"ts\":1700000000,\"type\":\"b\",\"customer_id\":1", "events[0].type");
    item_err("\"type\":\"a\" \"ts\":1", "events[0]");
    item_err("\"type\":\"a\",", "events[0]");
    item_err("\"type\" 1", "events[0]");
    item_err("", "events[0].idempotency_key");
    item_err("\"idempotency_key\":\"k\",\"ts\":1700000000,\"customer_id\":1", "events[0].type");
    item_err("\"idempotency_key\":\"k\",\"type\":\"t\",\"customer_id\":1", "events[0].ts");
    item_err(BASE, "events[0].customer_id");
    item_err(BASE ",\"customer_id\":null,\"external_userid\":null", "events[0].customer_id");
    item_err(BASE ",\"customer_id\":1,\"external_userid\":\"wm1\"", "events[0].external_userid");
}

static void test_idempotency_key_errors(void **state) {
    (void)state;
    item_err("\"idempotency_key\":\"\",\"type\":\"t\",\"ts\":1700000000,\"customer_id\":1",
             "events[0].idempotency_key");
    item_err("\"idempotency_key\":null,\"type\":\"t\",\"ts\":1700000000,\"customer_id\":1",
             "events[0].idempotency_key");
    item_err("\"idempotency_key\":12,\"type\":\"t\",\"ts\":1700000000,\"customer_id\":1",
             "events[0].idempotency_key");
    char key[200], fields[400];
    memset(key, 'k', sizeof key);
    for (int n = 127; n <= 129; n++) {
        snprintf(fields, sizeof fields,
                 "\"idempotency_key\":\"%.*s\",\"type\":\"t\",\"ts\":1700000000,\"customer_id\":1",
                 n, key);
        char *s = one(fields);
        if (n <= EVENTS_IDEM_MAX) {
            events_batch b;
            parse_ok(s, &b);
            assert_int_equal(b.items[0].idem_key.len, n);
            events_batch_free(&b);
        } else {
            expect_err(s, SIYU_EINVAL, "events[0].idempotency_key");
        }
        free(s);
    }
}

static void test_type_errors(void **state) {
    (void)state;
    const char *bad[] = {"\"\"", "\"Page\"", "\"a b\"", "\"a/b\"",     "\"\xc3\xa9\"",
                         "1",    "null",     "[\"a\"]", "\"a\\u0000\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char fields[200];
        snprintf(fields, sizeof fields,
                 "\"idempotency_key\":\"k\",\"type\":%s,\"ts\":1700000000,\"customer_id\":1",
                 bad[i]);
        item_err(fields, "events[0].type");
    }
    char t[100], fields[300];
    memset(t, 'a', sizeof t);
    for (int n = 64; n <= 65; n++) {
        snprintf(fields, sizeof fields,
                 "\"idempotency_key\":\"k\",\"type\":\"%.*s\",\"ts\":1700000000,\"customer_id\":1",
                 n, t);
        char *s = one(fields);
        if (n == 64) {
            events_batch b;
            parse_ok(s, &b);
            events_batch_free(&b);
        } else {
            expect_err(s, SIYU_EINVAL, "events[0].type");
        }
        free(s);
    }
}

static void test_ts_errors(void **state) {
    (void)state;
    const char *bad[] = {"\"1700000000\"",
                         "1700000000.0",
                         "1.7e9",
                         "null",
                         "true",
                         "1700000000000",
                         "946684799",
                         "4102444800",
                         "-1",
                         "0",
                         "99999999999999999999",
                         "-",
                         "01",
                         "[1700000000]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char fields[200];
        snprintf(fields, sizeof fields,
                 "\"idempotency_key\":\"k\",\"type\":\"t\",\"ts\":%s,\"customer_id\":1", bad[i]);
        char *s = one(fields);
        events_batch b;
        siyu_err e = {0};
        assert_int_equal(events_batch_parse(s, strlen(s), &b, &e), SIYU_EINVAL);
        /* A number glued to garbage is a syntax error at the item level. */
        if (strcmp(bad[i], "01") != 0 && strcmp(e.field, "events[0].ts") != 0)
            fail_msg("ts %s: field '%s' (%s)", bad[i], e.field, e.msg);
        free(s);
    }
    events_batch b;
    char *s = one("\"idempotency_key\":\"k\",\"type\":\"t\",\"ts\":4102444799,\"customer_id\":1");
    parse_ok(s, &b);
    assert_int_equal(b.items[0].ts, EVENTS_TS_MAX - 1);
    events_batch_free(&b);
    free(s);
}

static void test_customer_errors(void **state) {
    (void)state;
    const char *bad_id[] = {"0", "-5", "1.5", "\"5\"", "9223372036854775808", "[]", "{}", "nul"};
    for (size_t i = 0; i < sizeof bad_id / sizeof *bad_id; i++) {
        char fields[200];
        snprintf(fields, sizeof fields, BASE ",\"customer_id\":%s", bad_id[i]);
        item_err(fields, "events[0].customer_id");
    }
    events_batch b;
    char *s = one(BASE ",\"customer_id\":9223372036854775807");
    parse_ok(s, &b);
    assert_int_equal(b.items[0].customer_id, INT64_MAX);
    events_batch_free(&b);
    free(s);

    char u[100], fields[300];
    memset(u, 'w', sizeof u);
    const char *ext_bad[] = {"\"\"", "12", "true", "{}"};
    for (size_t i = 0; i < sizeof ext_bad / sizeof *ext_bad; i++) {
        snprintf(fields, sizeof fields, BASE ",\"external_userid\":%s", ext_bad[i]);
        item_err(fields, "events[0].external_userid");
        snprintf(fields, sizeof fields, BASE ",\"customer_id\":1,\"employee_userid\":%s",
                 ext_bad[i]);
        item_err(fields, "events[0].employee_userid");
    }
    snprintf(fields, sizeof fields, BASE ",\"external_userid\":\"%.64s\"", u);
    s = one(fields);
    parse_ok(s, &b);
    assert_int_equal(b.items[0].external_userid.len, 64);
    events_batch_free(&b);
    free(s);
    snprintf(fields, sizeof fields, BASE ",\"external_userid\":\"%.65s\"", u);
    item_err(fields, "events[0].external_userid");
    snprintf(fields, sizeof fields, BASE ",\"customer_id\":1,\"employee_userid\":\"%.65s\"", u);
    item_err(fields, "events[0].employee_userid");
}

static void test_props_errors(void **state) {
    (void)state;
    const char *bad[] = {
        "[]",
        "\"x\"",
        "1",
        "true",
        "{\"a\":}",
        "{\"a\" 1}",
        "{a:1}",
        "{\"a\":1,}",
        "{\"a\":[1,]}",
        "{\"a\":[1 2]}",
        "{\"a\":tru}",
        "{\"a\":nul}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":1e}",
        "{\"a\":+1}",
        "{\"a\":\"\\u0000\"}",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\udc00\"}",
        "{\"a\":\"\\ud800\\u0041\"}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"\xff\"}",
        "{\"a\":\"\xc0\xaf\"}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xf4\x90\x80\x80\"}",
        "{\"a\":\"\xe4\xb8\"}",
        "{\"a\":\"tab\there\"}",
        "{\"a\":99999999999999999999}",
        "{\"a\":1e999}",
        "{\"a\":-1e400}",
        "{\"a\":NaN}",
        "{\"a\":Infinity}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char fields[300];
        snprintf(fields, sizeof fields, BASE ",\"customer_id\":1,\"props\":%s", bad[i]);
        item_err(fields, "events[0].props");
    }
    /* What jansson accepts, we accept. */
    const char *good[] = {"{\"a\":1e-400}",
                          "{\"a\":-0}",
                          "{\"a\":9223372036854775807}",
                          "{\"a\":\"\\uD83D\\uDE00\"}",
                          "{\"\":{\"\":[[[]]]}}",
                          "{\"a\":\"\xf4\x8f\xbf\xbf\"}"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char fields[300];
        snprintf(fields, sizeof fields, BASE ",\"customer_id\":1,\"props\":%s", good[i]);
        char *s = one(fields);
        events_batch b;
        parse_ok(s, &b);
        assert_string_equal(b.items[0].props.p, good[i]);
        json_t *j = json_loads(b.items[0].props.p, 0, NULL);
        if (!j) fail_msg("jansson refuses stored props %s", good[i]);
        json_decref(j);
        events_batch_free(&b);
        free(s);
    }
}

static void test_props_limits(void **state) {
    (void)state;
    /* {"a":"xxx..."} is 8 + n bytes; whitespace does not count. */
    size_t n = EVENTS_PROPS_MAX - 8;
    char *x = malloc(n + 2);
    memset(x, 'x', n + 1);
    x[n + 1] = 0;
    char *fields = NULL;
    assert_true(asprintf(&fields, BASE ",\"customer_id\":1,\"props\":{  \"a\"  :  \"%.*s\"  }",
                         (int)n, x) > 0);
    char *s = one(fields);
    events_batch b;
    parse_ok(s, &b);
    assert_int_equal(b.items[0].props.len, EVENTS_PROPS_MAX);
    events_batch_free(&b);
    free(s);
    free(fields);
    assert_true(asprintf(&fields, BASE ",\"customer_id\":1,\"props\":{\"a\":\"%s\"}", x) > 0);
    item_err(fields, "events[0].props");
    free(fields);
    free(x);

    /* Depth: the props object is level 1; 32 levels pass, 33 fail. */
    for (int depth = 32; depth <= 33; depth++) {
        char deep[400] = "{";
        for (int i = 1; i < depth; i++)
            strcat(deep, "\"a\":{");
        for (int i = 0; i < depth; i++)
            strcat(deep, "}");
        char f2[600];
        snprintf(f2, sizeof f2, BASE ",\"customer_id\":1,\"props\":%s", deep);
        s = one(f2);
        if (depth == 32) {
            parse_ok(s, &b);
            events_batch_free(&b);
        } else {
            expect_err(s, SIYU_EINVAL, "events[0].props");
        }
        free(s);
    }
}

/* ---- batch size --------------------------------------------------------- */

static char *batch_of(int n) {
    size_t cap = (size_t)n * 96 + 32, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    len += (size_t)snprintf(s, cap, "{\"events\":[");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len,
                                "%s{\"idempotency_key\":\"k%d\",\"type\":\"t\",\"ts\":1700000000,"
                                "\"customer_id\":%d}",
                                i ? "," : "", i, i + 1);
    snprintf(s + len, cap - len, "]}");
    return s;
}

static void test_batch_limits(void **state) {
    (void)state;
    char *s = batch_of(EVENTS_BATCH_MAX);
    events_batch b;
    parse_ok(s, &b);
    assert_int_equal(b.n, EVENTS_BATCH_MAX);
    assert_int_equal(b.items[999].customer_id, 1000);
    assert_string_equal(b.items[999].idem_key.p, "k999");
    events_batch_free(&b);
    free(s);
    s = batch_of(EVENTS_BATCH_MAX + 1);
    expect_err(s, SIYU_ETOOBIG, "events");
    free(s);
    /* The error names the index of the bad item. */
    s = batch_of(600);
    const char *k517 = strstr(s, "\"k517\"");
    assert_non_null(k517);
    memcpy(s + (k517 - s), "null  ", 6);
    expect_err(s, SIYU_EINVAL, "events[517].idempotency_key");
    free(s);
}

/* ---- seeded random round trip against jansson ---------------------------- */

static unsigned long rnd_state = 12345;
static unsigned rnd(void) {
    rnd_state = rnd_state * 6364136223846793005UL + 1442695040888963407UL;
    return (unsigned)(rnd_state >> 33);
}

static json_t *rnd_string(size_t max) {
    static const char *pieces[] = {"a",
                                   "Z",
                                   "0",
                                   "-",
                                   " ",
                                   "\"",
                                   "\\",
                                   "/",
                                   "\n",
                                   "\t",
                                   "\xc3\xa9",
                                   "\xe4\xb8\xad",
                                   "\xf0\x9f\x98\x80",
                                   "\x7f"};
    char buf[256];
    size_t n = 1 + rnd() % max, len = 0;
    while (len < n) {
        const char *p = pieces[rnd() % (sizeof pieces / sizeof *pieces)];
        size_t k = strlen(p);
        if (len + k > n) break;
        memcpy(buf + len, p, k);
        len += k;
    }
    if (!len) buf[len++] = 'q';
    return json_stringn(buf, len);
}

static json_t *rnd_props(int depth) {
    json_t *o = json_object();
    int n = (int)(rnd() % 5);
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%u", rnd() % 100);
        json_t *v;
        switch (rnd() % (depth < 3 ? 7 : 5)) {
        case 0:
            v = json_integer((json_int_t)rnd() - (1 << 30));
            break;
        case 1:
            v = json_real((double)rnd() / 7.0);
            break;
        case 2:
            v = rnd_string(20);
            break;
        case 3:
            v = rnd() & 1 ? json_true() : json_null();
            break;
        case 4:
            v = json_false();
            break;
        case 5:
            v = rnd_props(depth + 1);
            break;
        default:
            v = json_pack("[o,i]", rnd_props(depth + 1), (int)rnd() % 9);
        }
        json_object_set_new(o, k, v);
    }
    return o;
}

static void test_random_round_trip(void **state) {
    (void)state;
    for (int round = 0; round < 200; round++) {
        json_t *events = json_array();
        int n = 1 + (int)(rnd() % 20);
        for (int i = 0; i < n; i++) {
            json_t *it = json_object();
            json_object_set_new(it, "idempotency_key", rnd_string(EVENTS_IDEM_MAX / 4));
            json_object_set_new(it, "type", json_string(rnd() & 1 ? "page.view" : "order:paid"));
            json_object_set_new(it, "ts", json_integer(EVENTS_TS_MIN + rnd() % 1000000000));
            if (rnd() & 1)
                json_object_set_new(it, "customer_id", json_integer(1 + rnd()));
            else
                json_object_set_new(it, "external_userid", rnd_string(EVENTS_USERID_MAX / 4));
            if (rnd() % 3 == 0) json_object_set_new(it, "employee_userid", rnd_string(10));
            if (rnd() % 3) json_object_set_new(it, "props", rnd_props(0));
            json_array_append_new(events, it);
        }
        json_t *body = json_pack("{s:o}", "events", events);
        char *text = json_dumps(body, rnd() & 1 ? JSON_INDENT(2) : JSON_COMPACT);
        events_batch b;
        parse_ok(text, &b);
        assert_int_equal(b.n, (size_t)n);
        for (int i = 0; i < n; i++) {
            json_t *it = json_array_get(events, (size_t)i);
            const events_item *e = &b.items[i];
            json_t *k = json_object_get(it, "idempotency_key");
            assert_int_equal(e->idem_key.len, json_string_length(k));
            assert_memory_equal(e->idem_key.p, json_string_value(k), e->idem_key.len);
            assert_int_equal(e->ts, json_integer_value(json_object_get(it, "ts")));
            assert_int_equal(e->customer_id,
                             json_integer_value(json_object_get(it, "customer_id")));
            json_t *props = json_object_get(it, "props");
            if (!props) {
                assert_null(e->props.p);
                continue;
            }
            json_t *back = json_loads(e->props.p, 0, NULL);
            assert_non_null(back);
            assert_true(json_equal(back, props));
            char *compact = json_dumps(props, JSON_COMPACT | JSON_PRESERVE_ORDER);
            assert_int_equal(e->props.len, strlen(compact));
            free(compact);
            json_decref(back);
        }
        events_batch_free(&b);
        free(text);
        json_decref(body);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_all_fields_and_whitespace),
        cmocka_unit_test(test_string_decoding),
        cmocka_unit_test(test_insert_order),
        cmocka_unit_test(test_body_errors),
        cmocka_unit_test(test_unknown_field_name_is_safe),
        cmocka_unit_test(test_item_structure_errors),
        cmocka_unit_test(test_idempotency_key_errors),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_ts_errors),
        cmocka_unit_test(test_customer_errors),
        cmocka_unit_test(test_props_errors),
        cmocka_unit_test(test_props_limits),
        cmocka_unit_test(test_batch_limits),
        cmocka_unit_test(test_random_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
