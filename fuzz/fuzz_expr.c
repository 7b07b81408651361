/* fuzz_expr.c — libFuzzer target for the segment expression parser
 * (expr_parse), which reads text from API clients and the CLI.
 *
 * Oracles, any failure aborts:
 *   - a failed parse returns SIYU_EINVAL/ETOOBIG/ENOMEM, sets the tree to
 *     NULL and fills the error: a message, a 1-based line and column inside
 *     the input, a byte offset within it, and a text that starts with
 *     "line L, column C: " and ends with a caret;
 *   - a successful parse passes expr_validate; its canonical print parses
 *     again to an expr_equal tree whose print is byte-identical (the round
 *     trip is stable).
 * Seeds: fuzz/corpus/expr/.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc
 *   fuzz/fuzz_expr.c src/segment/expr.c src/util/err.c */
#include "segment/expr.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_error(const uint8_t *data, size_t size, int rc, const expr_err *e) {
    CHECK(rc == SIYU_EINVAL || rc == SIYU_ETOOBIG || rc == SIYU_ENOMEM);
    CHECK(e->code == rc && e->msg[0] != 0);
    CHECK(e->line >= 1 && e->col >= 1);
    if (size <= EXPR_MAX_INPUT) {
        CHECK(e->off <= size);
        size_t lines = 1;
        for (size_t i = 0; i < e->off; i++)
            lines += data[i] == '\n';
        CHECK(e->line == lines);
        CHECK(e->col <= e->off + 1);
    }
    char head[64];
    snprintf(head, sizeof head, "line %u, column %u: ", e->line, e->col);
    CHECK(strncmp(e->text, head, strlen(head)) == 0);
    size_t tl = strlen(e->text);
    CHECK(tl > 0 && tl < sizeof e->text);
    CHECK(e->text[tl - 1] == '^' || tl == sizeof e->text - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    expr_node *n = (expr_node *)0x1;
    expr_err e;
    int rc = expr_parse((const char *)data, size, &n, &e);
    if (rc != 0) {
        CHECK(n == NULL);
        check_error(data, size, rc, &e);
        return 0;
    }
    const char *why = NULL;
    if (!expr_validate(n, &why)) {
        fprintf(stderr, "invalid tree: %s\n", why);
        abort();
    }
    size_t len = 0;
    char *text = expr_print(n, &len);
    CHECK(text != NULL && len == strlen(text));
    CHECK(len <= 2 * size + 16); /* canonical text is never much longer */
    expr_node *back = NULL;
    rc = expr_parse(text, len, &back, &e);
    if (rc != 0) {
        fprintf(stderr, "canonical text does not parse: %s\n%s\n", text, e.text);
        abort();
    }
    CHECK(expr_equal(n, back));
    CHECK(expr_validate(back, &why));
    char *again = expr_print(back, NULL);
    CHECK(again != NULL && strcmp(text, again) == 0);
    free(again);
    free(text);
    expr_free(back);
    expr_free(n);
    return 0;
}
