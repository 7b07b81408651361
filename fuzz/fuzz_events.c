/* fuzz_events.c — libFuzzer target for the event batch parser
 * (events_batch_parse), the one parser of untrusted bodies on the ingest fast
 * path.
 *
 * Oracles, any failure aborts:
 *   - a failed parse returns EINVAL/ETOOBIG/ENOMEM with a message and leaves
 *     the batch empty;
 *   - a successful parse passes events_batch_validate, and jansson accepts
 *     the same bytes and agrees on every field of every item (the parser
 *     accepts a subset of JSON); each stored props text loads with jansson
 *     and equals the props object jansson parsed from the body.
 * Seeds: fuzz/corpus/events/.
 *
 * events.c also holds the write step, which needs SQLite; `make fuzz` links
 * only jansson, libcrypto and expat, so this file compiles events.c itself
 * with SIYU_EVENTS_PARSER_ONLY (fuzz_events.sources lists the rest).
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc
 *   fuzz/fuzz_events.c src/util/err.c $(pkg-config --cflags --libs jansson) */
#define SIYU_EVENTS_PARSER_ONLY
#include "ingest/events.c"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool fuzz_str_is(events_str s, json_t *j) {
    if (!s.p) return j == NULL || json_is_null(j);
    return json_is_string(j) && json_string_length(j) == s.len &&
           memcmp(json_string_value(j), s.p, s.len) == 0;
}

static void fuzz_check_item(const events_item *it, json_t *j) {
    CHECK(json_is_object(j));
    CHECK(fuzz_str_is(it->idem_key, json_object_get(j, "idempotency_key")));
    CHECK(fuzz_str_is(it->type, json_object_get(j, "type")));
    CHECK(fuzz_str_is(it->external_userid, json_object_get(j, "external_userid")));
    CHECK(fuzz_str_is(it->employee_userid, json_object_get(j, "employee_userid")));
    CHECK(json_integer_value(json_object_get(j, "ts")) == it->ts);
    json_t *cid = json_object_get(j, "customer_id");
    CHECK(it->customer_id ? json_integer_value(cid) == it->customer_id
                          : (!cid || json_is_null(cid)));
    json_t *props = json_object_get(j, "props");
    if (!it->props.p) {
        CHECK(!props || json_is_null(props));
        return;
    }
    json_error_t je;
    json_t *back = json_loadb(it->props.p, it->props.len, 0, &je);
    CHECK(back != NULL);
    CHECK(json_equal(back, props));
    json_decref(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    events_batch b;
    siyu_err err = {0};
    int rc = events_batch_parse((const char *)data, size, &b, &err);
    if (rc != 0) {
        CHECK(rc == SIYU_EINVAL || rc == SIYU_ETOOBIG || rc == SIYU_ENOMEM);
        CHECK(err.code == rc && err.msg[0] != 0);
        CHECK(b.n == 0 && b.items == NULL && b.arena == NULL);
        events_batch_free(&b);
        return 0;
    }
    const char *why = NULL;
    if (!events_batch_validate(&b, &why)) {
        fprintf(stderr, "invalid batch: %s\n", why);
        abort();
    }
    json_error_t je;
    json_t *doc = json_loadb((const char *)data, size, 0, &je);
    CHECK(doc != NULL);
    json_t *events = json_object_get(doc, "events");
    CHECK(json_array_size(events) == b.n);
    for (size_t i = 0; i < b.n; i++)
        fuzz_check_item(&b.items[i], json_array_get(events, i));
    json_decref(doc);
    events_batch_free(&b);
    return 0;
}
