/* test_expr.c — the segment expression language: every construct and its
 * canonical text, precedence and flattening, source positions, each error
 * kind with its exact line/column/caret, the limits on both sides of each
 * bound, invalid UTF-8, unterminated buffers, expr_validate on broken trees,
 * and a seeded random generator of valid trees that are printed, re-parsed
 * and compared (plus random byte mutations of the printed text). */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment/expr.h"
#include "util/err.h"

/* Parse s (copied into an exact-size heap buffer, so ASan catches any read
 * past the end), check validate and the round trip, return the tree. */
static expr_node *parse_len(const char *s, size_t len) {
    char *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memcpy(buf, s, len);
    expr_node *n = NULL;
    expr_err e;
    int rc = expr_parse(buf, len, &n, &e);
    free(buf);
    if (rc != 0) fail_msg("parse failed (%d) for %.200s\n%s", rc, s, e.text);
    const char *why = NULL;
    if (!expr_validate(n, &why)) fail_msg("invalid tree for %.200s: %s", s, why);
    size_t plen = 0;
    char *p = expr_print(n, &plen);
    assert_non_null(p);
    assert_int_equal(plen, strlen(p));
    expr_node *back = NULL;
    rc = expr_parse(p, plen, &back, &e);
    if (rc != 0) fail_msg("re-parse failed for %s\n%s", p, e.text);
    if (!expr_equal(n, back)) fail_msg("round trip differs: %.200s -> %s", s, p);
    char *p2 = expr_print(back, NULL);
    assert_string_equal(p, p2);
    free(p2);
    free(p);
    expr_free(back);
    return n;
}

static expr_node *parse(const char *s) {
    return parse_len(s, strlen(s));
}

/* s parses and prints as canon. */
static void canon(const char *s, const char *want) {
    expr_node *n = parse(s);
    char *p = expr_print(n, NULL);
    if (strcmp(p, want) != 0) fail_msg("%s\n  printed %s\n  want    %s", s, p, want);
    free(p);
    expr_free(n);
}

static void err_len(const char *s, size_t len, int code, unsigned line, unsigned col,
                    const char *msg_part) {
    char *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memcpy(buf, s, len);
    expr_node *n = (expr_node *)0x1;
    expr_err e;
    int rc = expr_parse(buf, len, &n, &e);
    free(buf);
    if (rc != code || e.line != line || e.col != col || !strstr(e.msg, msg_part))
        fail_msg("%.200s\n  want %d %u:%u '%s'\n  got  %d %u:%u\n%s", s, code, line, col, msg_part,
                 rc, e.line, e.col, e.text);
    assert_int_equal(e.code, rc);
    assert_null(n);
    assert_true(strncmp(e.text, "line ", 5) == 0);
}

static void err(const char *s, int code, unsigned line, unsigned col, const char *msg_part) {
    err_len(s, strlen(s), code, line, col, msg_part);
}

/* The whole error text. */
static void err_text(const char *s, const char *want) {
    expr_node *n = NULL;
    expr_err e;
    assert_true(expr_parse(s, strlen(s), &n, &e) != 0);
    if (strcmp(e.text, want) != 0) fail_msg("error text for %s:\n%s\nwant:\n%s", s, e.text, want);
}

/* ---- constructs ---------------------------------------------------------- */

static void test_issue_example(void **state) {
    (void)state;
    const char *s = "tag(\"VIP\") and not tag(\"勿扰\") and region in (\"上海\", \"北京\") and "
                    "spent > 1000 and orders(30d) >= 2 and not did(\"message\", 14d)";
    expr_node *n = parse(s);
    assert_int_equal(n->kind, EXPR_AND);
    assert_int_equal(n->nkids, 6);
    expr_node **k = n->kids;
    assert_int_equal(k[0]->kind, EXPR_SET);
    assert_int_equal(k[0]->dim, EXPR_DIM_TAG);
    assert_int_equal(k[0]->vals[0].kind, EXPR_VAL_NAME);
    assert_string_equal(k[0]->vals[0].name, "VIP");
    assert_int_equal(k[1]->kind, EXPR_NOT);
    assert_string_equal(k[1]->kids[0]->vals[0].name, "勿扰");
    assert_int_equal(k[2]->dim, EXPR_DIM_REGION);
    assert_int_equal(k[2]->nvals, 2);
    assert_string_equal(k[2]->vals[1].name, "北京");
    assert_int_equal(k[2]->vals[1].name_len, 6);
    assert_int_equal(k[3]->kind, EXPR_CMP);
    assert_int_equal(k[3]->attr, EXPR_ATTR_SPENT);
    assert_int_equal(k[3]->op, EXPR_OP_GT);
    assert_int_equal(k[3]->num, 100000);
    assert_int_equal(k[4]->kind, EXPR_COUNT);
    assert_string_equal(k[4]->event_type, "order");
    assert_int_equal(k[4]->window, 30 * 86400);
    assert_int_equal(k[4]->window_unit, EXPR_UNIT_DAY);
    assert_int_equal(k[4]->op, EXPR_OP_GE);
    assert_int_equal(k[4]->num, 2);
    assert_int_equal(k[5]->kids[0]->kind, EXPR_DID);
    assert_string_equal(k[5]->kids[0]->event_type, "message");
    assert_int_equal(k[5]->kids[0]->window, 14 * 86400);
    char *p = expr_print(n, NULL);
    assert_string_equal(p, s);
    free(p);
    expr_free(n);
}

static void test_set_predicates(void **state) {
    (void)state;
    const char *dims[] = {"tag",        "channel", "channel_group", "employee",
                          "department", "store",   "group"};
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++) {
        char in[128], want[128];
        snprintf(in, sizeof in, "%s(\"x\")", dims[i]);
        canon(in, in);
        snprintf(in, sizeof in, "%s(42)", dims[i]);
        canon(in, in);
        snprintf(in, sizeof in, "%s = \"x\"", dims[i]);
        snprintf(want, sizeof want, "%s(\"x\")", dims[i]);
        canon(in, want);
        snprintf(in, sizeof in, "%s in (\"a\",7,\"c\")", dims[i]);
        snprintf(want, sizeof want, "%s in (\"a\", 7, \"c\")", dims[i]);
        canon(in, want);
        snprintf(in, sizeof in, "%s in (\"a\")", dims[i]);
        snprintf(want, sizeof want, "%s(\"a\")", dims[i]);
        canon(in, want);
    }
    canon("region in (\"上海\",\"北京\")", "region in (\"上海\", \"北京\")");
    canon("region(\"上海\")", "region = \"上海\"");
    canon("region = \"上海\"", "region = \"上海\"");
    canon("gender = \"female\"", "gender = \"female\"");
    canon("gender in (\"male\", \"unknown\")", "gender in (\"male\", \"unknown\")");
    canon("stage in (\"lead\", \"成交\")", "stage in (\"lead\", \"成交\")");
    canon("relationship_status in (\"active\",\"lost\")",
          "relationship_status in (\"active\", \"lost\")");
    canon("relationship_status = \"deleted_by_customer\"",
          "relationship_status = \"deleted_by_customer\"");
    canon("relationship_status in (\"deleted_by_employee\", \"transferred\")",
          "relationship_status in (\"deleted_by_employee\", \"transferred\")");
    canon("tag(\"a\\\"b\\\\c\")", "tag(\"a\\\"b\\\\c\")");
    canon("tag(\"emoji 😀 and more\")", "tag(\"emoji 😀 and more\")");
}

static void test_set_ids_and_names(void **state) {
    (void)state;
    expr_node *n = parse("tag in (\"VIP\", 12, \"12\")");
    assert_int_equal(n->nvals, 3);
    assert_int_equal(n->vals[1].kind, EXPR_VAL_ID);
    assert_int_equal(n->vals[1].id, 12);
    assert_null(n->vals[1].name);
    assert_int_equal(n->vals[2].kind, EXPR_VAL_NAME);
    assert_string_equal(n->vals[2].name, "12");
    expr_free(n);
    canon("tag(000123)", "tag(123)");
    canon("tag(1000000000000000)", "tag(1000000000000000)");
}

static void test_numeric_comparisons(void **state) {
    (void)state;
    canon("spent > 1000", "spent > 1000");
    canon("spent>=99.5", "spent >= 99.50");
    canon("spent < 0.05", "spent < 0.05");
    canon("spent = 10.00", "spent = 10");
    canon("spent != 0", "spent != 0");
    canon("orders_total <= 3", "orders_total <= 3");
    canon("first_added < 90d", "first_added < 90d");
    canon("last_active > 14d", "last_active > 14d");
    canon("last_message >= 2w", "last_message >= 2w");
    canon("last_message < 36h", "last_message < 36h");
    canon("last_active > 90m", "last_active > 90m");
    expr_node *n = parse("spent >= 99.5");
    assert_int_equal(n->num, 9950);
    expr_free(n);
    n = parse("last_active > 14d");
    assert_int_equal(n->attr, EXPR_ATTR_LAST_ACTIVE);
    assert_int_equal(n->op, EXPR_OP_GT);
    assert_int_equal(n->num, 14 * 86400);
    assert_int_equal(n->unit, EXPR_UNIT_DAY);
    expr_free(n);
    n = parse("last_message >= 2w");
    assert_int_equal(n->num, 2 * 604800);
    assert_int_equal(n->unit, EXPR_UNIT_WEEK);
    expr_free(n);
}

static void test_behaviour_predicates(void **state) {
    (void)state;
    canon("did(\"message\", 14d)", "did(\"message\", 14d)");
    canon("did(\"message\")", "did(\"message\")");
    canon("did(\"page.view\",2h)", "did(\"page.view\", 2h)");
    canon("count(\"page.view\", 30d) >= 3", "count(\"page.view\", 30d) >= 3");
    canon("count(\"a:b-c_d.e\") = 0", "count(\"a:b-c_d.e\") = 0");
    canon("orders(30d) >= 2", "orders(30d) >= 2");
    canon("orders() > 0", "orders() > 0");
    canon("count(\"order\", 7d) < 1", "orders(7d) < 1");
    canon("first(\"add\") < 30d", "first(\"add\") < 30d");
    canon("last(\"message\") > 7d", "last(\"message\") > 7d");
    canon("last(\"message\") != 1w", "last(\"message\") != 1w");
    expr_node *n = parse("orders() > 0");
    assert_int_equal(n->kind, EXPR_COUNT);
    assert_int_equal(n->window, 0);
    assert_int_equal(n->window_unit, EXPR_UNIT_NONE);
    expr_free(n);
    n = parse("first(\"add\") <= 30d");
    assert_int_equal(n->kind, EXPR_FIRST);
    assert_int_equal(n->op, EXPR_OP_LE);
    assert_int_equal(n->num, 30 * 86400);
    expr_free(n);
    n = parse("last(\"x\") > 7d");
    assert_int_equal(n->kind, EXPR_LAST);
    expr_free(n);
}

static void test_precedence_and_flattening(void **state) {
    (void)state;
    expr_node *n = parse("tag(1) or tag(2) and tag(3)");
    assert_int_equal(n->kind, EXPR_OR);
    assert_int_equal(n->nkids, 2);
    assert_int_equal(n->kids[1]->kind, EXPR_AND);
    expr_free(n);

    n = parse("not tag(1) and tag(2)");
    assert_int_equal(n->kind, EXPR_AND);
    assert_int_equal(n->kids[0]->kind, EXPR_NOT);
    expr_free(n);

    n = parse("tag(1) and (tag(2) and tag(3)) and ((tag(4)))");
    assert_int_equal(n->kind, EXPR_AND);
    assert_int_equal(n->nkids, 4);
    expr_free(n);

    n = parse("(tag(1) or tag(2)) or tag(3) or (tag(4) or tag(5) and tag(6))");
    assert_int_equal(n->kind, EXPR_OR);
    assert_int_equal(n->nkids, 5);
    assert_int_equal(n->kids[4]->kind, EXPR_AND);
    expr_free(n);

    canon("(tag(1) or tag(2)) and tag(3)", "(tag(1) or tag(2)) and tag(3)");
    canon("tag(1) or (tag(2) and tag(3))", "tag(1) or tag(2) and tag(3)");
    canon("not (tag(1) and tag(2))", "not (tag(1) and tag(2))");
    canon("not (tag(1)) and tag(2)", "not tag(1) and tag(2)");
    canon("not not tag(1)", "not not tag(1)");
    canon("NOT Tag(1) AnD TAG(2) oR did(\"x\")", "not tag(1) and tag(2) or did(\"x\")");
    canon("  \n\ttag(1)\r\n  and\n spent>1  ", "tag(1) and spent > 1");
}

static void test_positions(void **state) {
    (void)state;
    expr_node *n = parse("tag(\"上海\") and\n  spent > 1 or\n\tnot did(\"x\")");
    assert_int_equal(n->kind, EXPR_OR);
    assert_int_equal(n->line, 1);
    assert_int_equal(n->col, 1);
    expr_node *a = n->kids[0];
    assert_int_equal(a->kind, EXPR_AND);
    assert_int_equal(a->kids[1]->line, 2);
    assert_int_equal(a->kids[1]->col, 3);
    assert_int_equal(a->kids[1]->off, 20);
    expr_node *nt = n->kids[1];
    assert_int_equal(nt->kind, EXPR_NOT);
    assert_int_equal(nt->line, 3);
    assert_int_equal(nt->col, 2);
    assert_int_equal(nt->kids[0]->col, 6);
    expr_free(n);
}

/* ---- errors ---------------------------------------------------------------- */

static void test_error_text(void **state) {
    (void)state;
    /* The brief's example: column 23 counts characters; the caret is padded
     * by display width (2 cells per CJK character). */
    err_text("region in (\"上海\", \"北京\" and x",
             "line 1, column 23: expected \")\" after the values of \"region in\", found \"and\"\n"
             "  region in (\"上海\", \"北京\" and x\n"
             "                            ^");
    err_text("tags(\"a\")", "line 1, column 1: unknown name \"tags\" (did you mean tag?)\n"
                            "  tags(\"a\")\n"
                            "  ^");
    err_text("tag(\"a\") and\n   regoin = \"x\"",
             "line 2, column 4: unknown name \"regoin\" (did you mean region?)\n"
             "     regoin = \"x\"\n"
             "     ^");
    err_text("tag(\"a\") and", "line 1, column 13: expected a condition (like tag(\"VIP\") or "
                               "spent > 100), found the end of the expression\n"
                               "  tag(\"a\") and\n"
                               "              ^");
    err_text("\ttag(1) x", "line 1, column 9: expected \"and\", \"or\" or the end, found \"x\"\n"
                           "   tag(1) x\n"
                           "          ^");
    err_text("", "line 1, column 1: empty expression\n  \n  ^");
}

static void test_error_long_line_window(void **state) {
    (void)state;
    char s[600];
    size_t k = 0;
    for (int i = 0; i < 30; i++)
        k += (size_t)sprintf(s + k, "tag(%d) and ", 100 + i);
    k += (size_t)sprintf(s + k, "bogus and tag(1) and tag(2) and tag(3) and tag(4) and tag(5)");
    expr_node *n = NULL;
    expr_err e;
    assert_int_equal(expr_parse(s, k, &n, &e), SIYU_EINVAL);
    assert_int_equal(e.col, 30 * 13 + 1);
    /* window: "..." + 40 characters before the column, then 40 after + "..." */
    const char *l2 = strchr(e.text, '\n') + 1;
    const char *l3 = strchr(l2, '\n') + 1;
    assert_true(strncmp(l2, "  ...", 5) == 0);
    assert_int_equal(strchr(l2, '\n') - l2, 2 + 3 + 81 + 3);
    assert_int_equal(strlen(l3), 2 + 3 + 40 + 1);
    assert_int_equal(l3[strlen(l3) - 1], '^');
    assert_int_equal(l2[2 + 3 + 40], 'b');
}

static void test_syntax_errors(void **state) {
    (void)state;
    err("   ", SIYU_EINVAL, 1, 4, "empty expression");
    err("tag", SIYU_EINVAL, 1, 4, "expected \"(\", \"=\" or \"in\" after \"tag\"");
    err("tag(", SIYU_EINVAL, 1, 5, "expected a tag name (string) or id (number)");
    err("tag(\"a\"", SIYU_EINVAL, 1, 8, "expected \")\" after the value of \"tag(\"");
    err("tag in \"a\"", SIYU_EINVAL, 1, 8, "expected \"(\" after \"tag in\"");
    err("tag in (\"a\",)", SIYU_EINVAL, 1, 13, "expected a tag name");
    err("tag != \"a\"", SIYU_EINVAL, 1, 5, "use \"not tag = ...\"");
    err("region(1)", SIYU_EINVAL, 1, 8, "expected a region name (string), found a number");
    err("gender = \"女\"", SIYU_EINVAL, 1, 10, "gender is \"female\"");
    err("relationship_status = \"gone\"", SIYU_EINVAL, 1, 23, "relationship_status is");
    err("tag(\"\")", SIYU_EINVAL, 1, 5, "empty tag name");
    err("tag(0)", SIYU_EINVAL, 1, 5, "an id is at least 1");
    err("tag(1.5)", SIYU_EINVAL, 1, 5, "an id is a whole number");
    err("spent", SIYU_EINVAL, 1, 6, "expected a comparison");
    err("spent > \"a\"", SIYU_EINVAL, 1, 9, "expected an amount");
    err("spent > 1.234", SIYU_EINVAL, 1, 9, "at most 2 digits after the decimal point");
    err("spent > 1.", SIYU_EINVAL, 1, 9, "expected digits after the decimal point");
    err("spent > 10d", SIYU_EINVAL, 1, 9, "expected an amount");
    err("orders_total >= 1.5", SIYU_EINVAL, 1, 17, "expected a whole number");
    err("last_active > 14", SIYU_EINVAL, 1, 15, "compares with a duration");
    err("last_active > 14x", SIYU_EINVAL, 1, 15, "bad number or duration");
    err("last_active > 14days", SIYU_EINVAL, 1, 15, "bad number or duration");
    err("last_active > 1.5d", SIYU_EINVAL, 1, 15, "bad number or duration");
    err("last_active > 0d", SIYU_EINVAL, 1, 15, "at least 1d");
    err("did", SIYU_EINVAL, 1, 4, "expected \"(\" after \"did\"");
    err("did(message)", SIYU_EINVAL, 1, 5, "expected an event type string");
    err("did(\"Message\")", SIYU_EINVAL, 1, 5, "an event type has only");
    err("did(\"\")", SIYU_EINVAL, 1, 5, "an event type is 1 to 64");
    err("did(\"x\", 14)", SIYU_EINVAL, 1, 10, "expected a duration (e.g. 30d) for the window");
    err("did(\"x\" 14d)", SIYU_EINVAL, 1, 9, "expected \")\" to close \"did(\"");
    err("count(\"x\", 7d)", SIYU_EINVAL, 1, 15, "expected a comparison");
    err("count(\"x\", 7d) > 1d", SIYU_EINVAL, 1, 18, "expected a whole number");
    err("orders(\"x\") > 1", SIYU_EINVAL, 1, 8, "expected a duration (e.g. 30d) or \")\"");
    err("first(\"x\", 7d) < 1d", SIYU_EINVAL, 1, 10, "expected \")\" to close \"first(\"");
    err("last(\"x\") > 3", SIYU_EINVAL, 1, 13, "expected a duration");
    err("(tag(1)", SIYU_EINVAL, 1, 8, "expected \")\" to close the \"(\" at line 1, column 1");
    err("tag(1))", SIYU_EINVAL, 1, 7, "unmatched \")\"");
    err("tag(1) tag(2)", SIYU_EINVAL, 1, 8, "expected \"and\", \"or\" or the end, found \"tag\"");
    err("tag(1) adn tag(2)", SIYU_EINVAL, 1, 8, "found \"adn\" (did you mean and?)");
    err("(tag(1) ro tag(2))", SIYU_EINVAL, 1, 9, "found \"ro\" (did you mean or?)");
    err("and tag(1)", SIYU_EINVAL, 1, 1, "expected a condition before \"and\"");
    err("tag(1) and or tag(2)", SIYU_EINVAL, 1, 12, "expected a condition before \"or\"");
    err("not", SIYU_EINVAL, 1, 4, "expected a condition");
    err("()", SIYU_EINVAL, 1, 2, "expected a condition");
    err("tag(1) && tag(2)", SIYU_EINVAL, 1, 8, "use \"and\"");
    err("tag(1) || tag(2)", SIYU_EINVAL, 1, 8, "use \"or\"");
    err("!tag(1)", SIYU_EINVAL, 1, 1, "use \"not\"");
    err("spent == 1", SIYU_EINVAL, 1, 7, "use \"=\"");
    err("tag('a')", SIYU_EINVAL, 1, 5, "double quotes");
    err("tag(\"a\") and spent # 1", SIYU_EINVAL, 1, 20, "unexpected character \"#\"");
    err("tag（\"a\"）", SIYU_EINVAL, 1, 4, "full-width");
    err("tag(“a”)", SIYU_EINVAL, 1, 5, "curly quote");
    err("上海", SIYU_EINVAL, 1, 1, "unexpected character \"上\" outside a string");
    err("tag(\"a\x01\")", SIYU_EINVAL, 1, 7, "control character U+0001");
    err_len("tag(\"a\0b\")", 10, SIYU_EINVAL, 1, 7, "control character U+0000");
    err_len("tag(1) and \0", 12, SIYU_EINVAL, 1, 12, "unexpected control character");
    err("tag(\"a\\n\")", SIYU_EINVAL, 1, 7, "unknown escape");
    err("tag(\"abc", SIYU_EINVAL, 1, 5, "unterminated string");
    err("tag(\"abc\\", SIYU_EINVAL, 1, 5, "unterminated string");
    err("tag(\"ab\nc\")", SIYU_EINVAL, 1, 5, "unterminated string");
    err("tga(1)", SIYU_EINVAL, 1, 1, "did you mean tag?");
    err("sepnt > 1", SIYU_EINVAL, 1, 1, "did you mean spent?");
    err("last_activ > 1d", SIYU_EINVAL, 1, 1, "did you mean last_active?");
    err("chanel(1)", SIYU_EINVAL, 1, 1, "did you mean channel?");
    err("xyzzy(1)", SIYU_EINVAL, 1, 1, "unknown name \"xyzzy\"");
    err("tag(1) and\n\n  ordres(7d) > 1", SIYU_EINVAL, 3, 3, "did you mean orders?");
}

static void test_limits(void **state) {
    (void)state;
    /* input size: exactly the limit parses (spaces pad), one more byte fails */
    char *big = malloc(EXPR_MAX_INPUT + 2);
    memset(big, ' ', EXPR_MAX_INPUT + 1);
    memcpy(big, "tag(1)", 6);
    expr_free(parse_len(big, EXPR_MAX_INPUT));
    err_len(big, EXPR_MAX_INPUT + 1, SIYU_ETOOBIG, 1, 1, "the limit is 16384");
    free(big);

    /* nesting: 64 levels of "not" or "(" parse, 65 fail at the 65th */
    char s[2048];
    size_t k = 0;
    for (int i = 0; i < EXPR_MAX_DEPTH; i++)
        k += (size_t)sprintf(s + k, "not ");
    strcpy(s + k, "tag(1)");
    expr_free(parse(s));
    memmove(s + 4, s, strlen(s) + 1);
    memcpy(s, "not ", 4);
    err(s, SIYU_ETOOBIG, 1, 1 + 4 * 64, "nested deeper than 64");
    k = 0;
    for (int i = 0; i < EXPR_MAX_DEPTH; i++)
        s[k++] = '(';
    k += (size_t)sprintf(s + k, "tag(1) or tag(2)");
    for (int i = 0; i < EXPR_MAX_DEPTH; i++)
        s[k++] = ')';
    s[k] = 0;
    expr_free(parse(s));
    memmove(s + 1, s, strlen(s) + 1);
    s[0] = '(';
    strcat(s, ")");
    err(s, SIYU_ETOOBIG, 1, 65, "nested deeper than 64");
    /* mixed: 32 x "not (" = 64 levels */
    k = 0;
    for (int i = 0; i < 32; i++)
        k += (size_t)sprintf(s + k, "not (tag(%d) or ", i + 1);
    k += (size_t)sprintf(s + k, "tag(99)");
    for (int i = 0; i < 32; i++)
        s[k++] = ')';
    s[k] = 0;
    expr_free(parse(s));

    /* nodes: an AND of 999 predicates is 1000 nodes; 1000 predicates fail */
    char *m = malloc(16 * 1024);
    k = 0;
    for (int i = 0; i < 999; i++)
        k += (size_t)sprintf(m + k, "%sdid(\"e\")", i ? " and " : "");
    expr_node *n = parse(m);
    assert_int_equal(n->nkids, 999);
    expr_free(n);
    k += (size_t)sprintf(m + k, " and did(\"e\")");
    err(m, SIYU_ETOOBIG, 1, (unsigned)(k - 8 + 1), "more than 1000 parts");

    /* values: 1000 in one list parse, 1001 fail at the 1001st */
    k = (size_t)sprintf(m, "tag in (");
    for (int i = 0; i < EXPR_MAX_VALUES; i++)
        k += (size_t)sprintf(m + k, "%s%d", i ? "," : "", i + 1);
    strcpy(m + k, ")");
    n = parse(m);
    assert_int_equal(n->nvals, EXPR_MAX_VALUES);
    expr_free(n);
    size_t at = k + 1;
    strcpy(m + k, ",5)");
    err(m, SIYU_ETOOBIG, 1, (unsigned)at + 1, "more than 1000 values");
    free(m);

    /* strings: 256 bytes parse (85 x "上" = 255 + "a"), 257 fail at the quote */
    k = (size_t)sprintf(s, "tag(\"");
    for (int i = 0; i < 85; i++)
        k += (size_t)sprintf(s + k, "上");
    k += (size_t)sprintf(s + k, "a\")");
    n = parse(s);
    assert_int_equal(n->vals[0].name_len, 256);
    expr_free(n);
    k = (size_t)sprintf(s, "tag(\"");
    for (int i = 0; i < 86; i++)
        k += (size_t)sprintf(s + k, "上");
    sprintf(s + k, "\")");
    err(s, SIYU_ETOOBIG, 1, 5, "string longer than 256 bytes");
    /* escapes count decoded: 256 x \" is 256 bytes */
    k = (size_t)sprintf(s, "tag(\"");
    for (int i = 0; i < 256; i++)
        k += (size_t)sprintf(s + k, "\\\"");
    sprintf(s + k, "\")");
    expr_free(parse(s));

    /* durations: 3650d, 521w, 87600h, 5256000m parse; one more unit fails */
    canon("did(\"x\", 3650d)", "did(\"x\", 3650d)");
    canon("did(\"x\", 521w)", "did(\"x\", 521w)");
    canon("last_active < 87600h", "last_active < 87600h");
    canon("last(\"x\") < 5256000m", "last(\"x\") < 5256000m");
    err("did(\"x\", 3651d)", SIYU_ETOOBIG, 1, 10, "longer than 10 years");
    err("did(\"x\", 522w)", SIYU_ETOOBIG, 1, 10, "longer than 10 years");
    err("last_active < 87601h", SIYU_ETOOBIG, 1, 15, "longer than 10 years");
    err("first(\"x\") > 5256001m", SIYU_ETOOBIG, 1, 14, "longer than 10 years");
    err("did(\"x\", 99999999999999999d)", SIYU_ETOOBIG, 1, 10, "number too large");

    /* numbers: 10^15 is the largest */
    canon("orders_total < 1000000000000000", "orders_total < 1000000000000000");
    err("orders_total < 1000000000000001", SIYU_ETOOBIG, 1, 16, "number too large");
    canon("spent < 10000000000000", "spent < 10000000000000");
    err("spent < 10000000000000.01", SIYU_ETOOBIG, 1, 9, "amount too large");

    /* event type: 64 characters */
    k = (size_t)sprintf(s, "did(\"");
    for (int i = 0; i < 64; i++)
        s[k++] = 'a';
    strcpy(s + k, "\")");
    expr_free(parse(s));
    strcpy(s + k, "a\")");
    err(s, SIYU_EINVAL, 1, 5, "an event type is 1 to 64");
}

static void test_invalid_utf8(void **state) {
    (void)state;
    struct {
        const char *s;
        size_t len;
        unsigned col;
    } cases[] = {
        {"tag(\"\x80\")", 8, 6},              /* lone continuation */
        {"tag(\"\xC0\xAF\")", 9, 6},          /* overlong '/' */
        {"tag(\"\xC1\xBF\")", 9, 6},          /* overlong */
        {"tag(\"\xE0\x80\xAF\")", 10, 6},     /* overlong 3-byte */
        {"tag(\"\xED\xA0\x80\")", 10, 6},     /* surrogate U+D800 */
        {"tag(\"\xF4\x90\x80\x80\")", 11, 6}, /* above U+10FFFF */
        {"tag(\"\xF5\x80\x80\x80\")", 11, 6},
        {"tag(\"\xFF\")", 8, 6},
        {"tag(\"上\xE4\xB8\")", 10, 7}, /* truncated before the quote */
        {"tag(\"ab\xE4", 8, 8},         /* truncated at the end */
        {"tag(\"\xE4\xB8\xAA\xE4\")", 11, 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        err_len(cases[i].s, cases[i].len, SIYU_EINVAL, 1, cases[i].col, "invalid UTF-8");
    err_len("tag(1) \xC3", 8, SIYU_EINVAL, 1, 8, "invalid UTF-8 (byte 0xC3)");
    err_len("\xEF\xBB\xBFtag(1)", 9, SIYU_EINVAL, 1, 1, "unexpected character");
    /* the caret line still lines up: the bad byte shows as '?' */
    expr_node *n = NULL;
    expr_err e;
    assert_int_equal(expr_parse("tag(\"上\xFF\")", 11, &n, &e), SIYU_EINVAL);
    assert_string_equal(e.text, "line 1, column 7: invalid UTF-8 in a string (byte 0xFF)\n"
                                "  tag(\"上?\")\n"
                                "         ^");
}

static void test_unterminated_buffer(void **state) {
    (void)state;
    /* prefixes of a valid expression, each in an exact-size buffer */
    const char *s = "tag(\"上海\") and spent >= 99.5 or not did(\"x\", 14d)";
    size_t n = strlen(s);
    for (size_t len = 0; len <= n; len++) {
        char *b = malloc(len ? len : 1);
        memcpy(b, s, len);
        expr_node *x = NULL;
        expr_err e;
        int rc = expr_parse(b, len, &x, &e);
        if (rc == 0) {
            assert_true(expr_validate(x, NULL));
            expr_free(x);
        } else {
            assert_true(rc == SIYU_EINVAL || rc == SIYU_ETOOBIG);
            assert_true(e.msg[0] != 0);
        }
        free(b);
    }
    expr_node *x = (expr_node *)0x1;
    expr_err e;
    assert_int_equal(expr_parse(NULL, 0, &x, &e), SIYU_EINVAL);
    assert_null(x);
    assert_int_equal(expr_parse("tag(", 4, &x, NULL), SIYU_EINVAL);
}

/* ---- validate -------------------------------------------------------------- */

static void test_validate_rejects(void **state) {
    (void)state;
    const char *why = NULL;
    expr_node *n = parse("tag(1) and tag(2)");
    n->kids[1]->kind = EXPR_AND; /* and under and, and a leaf without kids */
    assert_false(expr_validate(n, &why));
    n->kids[1]->kind = EXPR_SET;
    n->kids[1]->dim = EXPR_DIM_REGION; /* ids only for tag..group */
    assert_false(expr_validate(n, &why));
    assert_string_equal(why, "set: id for a dimension without ids");
    n->kids[1]->dim = EXPR_DIM__COUNT;
    assert_false(expr_validate(n, &why));
    n->kids[1]->dim = EXPR_DIM_TAG;
    assert_true(expr_validate(n, &why));
    n->nkids = 1;
    assert_false(expr_validate(n, &why));
    n->nkids = 2;
    expr_free(n);

    n = parse("last_active > 15d");
    n->unit = EXPR_UNIT_NONE;
    assert_false(expr_validate(n, &why));
    n->unit = EXPR_UNIT_WEEK; /* 15d is not whole weeks */
    assert_false(expr_validate(n, &why));
    n->unit = EXPR_UNIT_DAY;
    n->op = 0;
    assert_false(expr_validate(n, &why));
    expr_free(n);

    n = parse("gender = \"male\"");
    n->vals[0].name[0] = 'x';
    assert_false(expr_validate(n, &why));
    assert_string_equal(why, "set: bad gender");
    expr_free(n);

    n = parse("tag(\"ab\")");
    n->vals[0].name[1] = (char)0xC3;
    assert_false(expr_validate(n, &why));
    expr_free(n);

    n = parse("did(\"x\")");
    n->event_type[0] = 'X';
    assert_false(expr_validate(n, &why));
    n->event_type[0] = 'x';
    n->op = EXPR_OP_GT;
    assert_false(expr_validate(n, &why));
    expr_free(n);

    n = parse("first(\"x\") > 1d");
    n->window = 86400;
    n->window_unit = EXPR_UNIT_DAY;
    assert_false(expr_validate(n, &why));
    expr_free(n);

    /* nesting counted as the printer would open it */
    char s[1024];
    size_t k = 0;
    for (int i = 0; i < 64; i++)
        k += (size_t)sprintf(s + k, "not ");
    strcpy(s + k, "tag(1)");
    n = parse(s);
    expr_node *inner = n;
    while (inner->kind == EXPR_NOT)
        inner = inner->kids[0];
    inner->kind = EXPR_NOT; /* one more level */
    inner->kids = calloc(1, sizeof *inner->kids);
    inner->nkids = 1;
    inner->kids[0] = parse("tag(2)");
    expr_value *v = inner->vals;
    inner->vals = NULL;
    inner->nvals = 0;
    inner->dim = 0;
    free(v[0].name);
    free(v);
    assert_false(expr_validate(n, &why));
    assert_string_equal(why, "nested too deep");
    expr_free(n);
    assert_false(expr_validate(NULL, &why));
}

/* ---- random round trip ------------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)((rng_state >> 33) % n);
}

static char *rnd_name(size_t *len) {
    static const char *const parts[] = {"a", "Z", "上海", "北京",    "勿扰", " ", "\"", "\\",
                                        "😀", "é", "VIP",  "new mom", "(",    ")", ",",  "and"};
    char buf[EXPR_MAX_STRING + 1];
    size_t n = 0, want = 1 + rnd(rnd(4) == 0 ? 120 : 6);
    for (size_t i = 0; i < want; i++) {
        const char *p = parts[rnd(sizeof parts / sizeof *parts)];
        size_t pl = strlen(p);
        if (n + pl > EXPR_MAX_STRING) break;
        memcpy(buf + n, p, pl);
        n += pl;
    }
    if (n == 0) buf[n++] = 'x';
    buf[n] = 0;
    *len = n;
    return strdup(buf);
}

static char *rnd_event_type(void) {
    static const char *const types[] = {"message", "order", "page.view", "a:b-c_d", "x"};
    return strdup(types[rnd(5)]);
}

static void rnd_duration(int64_t *secs, expr_unit *unit) {
    *unit = (expr_unit)(1 + rnd(4));
    int64_t us = expr_unit_seconds(*unit);
    int64_t max = EXPR_MAX_DURATION / us;
    int64_t v = rnd(3) == 0 ? max : 1 + (int64_t)rnd((uint32_t)(max < 100 ? max : 100));
    *secs = v * us;
}

static expr_node *rnd_leaf(void) {
    expr_node *n = calloc(1, sizeof *n);
    n->line = n->col = 1;
    uint32_t r = rnd(6);
    if (r <= 1) {
        n->kind = EXPR_SET;
        n->dim = (expr_dim)(1 + rnd(EXPR_DIM__COUNT - 1));
        n->nvals = 1 + (rnd(3) == 0 ? rnd(20) : 0);
        n->vals = calloc(n->nvals, sizeof *n->vals);
        for (size_t i = 0; i < n->nvals; i++) {
            expr_value *v = &n->vals[i];
            if (n->dim <= EXPR_DIM_GROUP && rnd(2)) {
                v->kind = EXPR_VAL_ID;
                v->id = rnd(4) ? 1 + rnd(100000) : EXPR_MAX_NUMBER;
            } else if (n->dim == EXPR_DIM_GENDER) {
                v->kind = EXPR_VAL_NAME;
                v->name = strdup(expr_gender_names[rnd(3)]);
                v->name_len = strlen(v->name);
            } else if (n->dim == EXPR_DIM_RELATIONSHIP_STATUS) {
                v->kind = EXPR_VAL_NAME;
                v->name = strdup(expr_status_names[rnd(5)]);
                v->name_len = strlen(v->name);
            } else {
                v->kind = EXPR_VAL_NAME;
                v->name = rnd_name(&v->name_len);
            }
        }
    } else if (r == 2) {
        n->kind = EXPR_CMP;
        n->attr = (expr_attr)(1 + rnd(EXPR_ATTR__COUNT - 1));
        n->op = (expr_op)(1 + rnd(6));
        if (n->attr >= EXPR_ATTR_FIRST_ADDED)
            rnd_duration(&n->num, &n->unit);
        else
            n->num = rnd(4) ? rnd(1000000) : EXPR_MAX_NUMBER;
    } else {
        n->kind = r == 3 ? EXPR_DID : r == 4 ? EXPR_COUNT : (rnd(2) ? EXPR_FIRST : EXPR_LAST);
        n->event_type = rnd_event_type();
        if (n->kind == EXPR_DID || n->kind == EXPR_COUNT) {
            if (rnd(3)) rnd_duration(&n->window, &n->window_unit);
        }
        if (n->kind != EXPR_DID) n->op = (expr_op)(1 + rnd(6));
        if (n->kind == EXPR_COUNT)
            n->num = rnd(50);
        else if (n->kind != EXPR_DID)
            rnd_duration(&n->num, &n->unit);
    }
    return n;
}

/* A random valid tree; *budget bounds its node count. parent is the kind
 * of the parent (0 at the root) so AND/OR never nest in their own kind. */
static expr_node *rnd_tree(int depth, int *budget, expr_kind parent) {
    --*budget;
    uint32_t r = depth > 0 && *budget > 4 ? rnd(4) : 3;
    if (r == 0 && parent != EXPR_NOT) {
        expr_node *n = calloc(1, sizeof *n);
        n->line = n->col = 1;
        n->kind = EXPR_NOT;
        n->nkids = 1;
        n->kids = calloc(1, sizeof *n->kids);
        n->kids[0] = rnd_tree(depth - 1, budget, EXPR_NOT);
        return n;
    }
    if (r == 1 || r == 2 || (r == 0 && parent == EXPR_NOT)) {
        expr_kind k = r == 1 ? EXPR_AND : EXPR_OR;
        if (k == parent) k = k == EXPR_AND ? EXPR_OR : EXPR_AND;
        expr_node *n = calloc(1, sizeof *n);
        n->line = n->col = 1;
        n->kind = k;
        n->nkids = 2 + rnd(4);
        n->kids = calloc(n->nkids, sizeof *n->kids);
        for (size_t i = 0; i < n->nkids; i++)
            n->kids[i] = rnd_tree(depth - 1, budget, k);
        return n;
    }
    return rnd_leaf();
}

static void test_random_round_trip(void **state) {
    (void)state;
    rng_state = 20261123;
    for (int iter = 0; iter < 3000; iter++) {
        int budget = 1 + (int)rnd(300);
        expr_node *t = rnd_tree(1 + (int)rnd(8), &budget, 0);
        const char *why = NULL;
        if (!expr_validate(t, &why)) fail_msg("generator made an invalid tree: %s", why);
        size_t len = 0;
        char *text = expr_print(t, &len);
        assert_non_null(text);
        if (len > EXPR_MAX_INPUT) {
            free(text);
            expr_free(t);
            continue;
        }
        expr_node *back = NULL;
        expr_err e;
        int rc = expr_parse(text, len, &back, &e);
        if (rc != 0) fail_msg("iteration %d: %s\n%s", iter, text, e.text);
        if (!expr_equal(t, back)) fail_msg("iteration %d: round trip differs: %s", iter, text);
        if (!expr_validate(back, &why)) fail_msg("re-parsed tree invalid: %s", why);
        char *again = expr_print(back, NULL);
        assert_string_equal(text, again);
        free(again);
        expr_free(back);

        /* mutate a few bytes: the parser must answer, and any tree it
         * returns must validate and round-trip */
        for (int m = 0; m < 4; m++) {
            char *mut = malloc(len + 1);
            memcpy(mut, text, len);
            size_t ml = len;
            for (int j = 0, nj = 1 + (int)rnd(3); j < nj && ml; j++) {
                size_t at = rnd((uint32_t)ml);
                uint32_t op = rnd(3);
                if (op == 0)
                    mut[at] = (char)rnd(256);
                else if (op == 1)
                    ml = at; /* truncate */
                else
                    mut[at] = "()\",  andornot0d"[rnd(17)];
            }
            expr_node *x = NULL;
            char *exact = malloc(ml ? ml : 1);
            memcpy(exact, mut, ml);
            rc = expr_parse(exact, ml, &x, &e);
            if (rc == 0) {
                if (!expr_validate(x, &why)) fail_msg("mutant tree invalid: %s", why);
                char *p = expr_print(x, NULL);
                expr_node *y = NULL;
                assert_int_equal(expr_parse(p, strlen(p), &y, &e), 0);
                assert_true(expr_equal(x, y));
                expr_free(y);
                free(p);
                expr_free(x);
            } else {
                assert_true(rc == SIYU_EINVAL || rc == SIYU_ETOOBIG);
                assert_true(e.line >= 1 && e.col >= 1 && e.msg[0]);
            }
            free(exact);
            free(mut);
        }
        free(text);
        expr_free(t);
    }
}

static void test_names(void **state) {
    (void)state;
    assert_string_equal(expr_dim_name(EXPR_DIM_CHANNEL_GROUP), "channel_group");
    assert_string_equal(expr_dim_name(0), "?");
    assert_string_equal(expr_attr_name(EXPR_ATTR_LAST_MESSAGE), "last_message");
    assert_string_equal(expr_op_name(EXPR_OP_NE), "!=");
    assert_int_equal(expr_unit_seconds(EXPR_UNIT_WEEK), 604800);
    expr_free(NULL);
    char *p = expr_print(NULL, NULL);
    assert_string_equal(p, "");
    free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_example),
        cmocka_unit_test(test_set_predicates),
        cmocka_unit_test(test_set_ids_and_names),
        cmocka_unit_test(test_numeric_comparisons),
        cmocka_unit_test(test_behaviour_predicates),
        cmocka_unit_test(test_precedence_and_flattening),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_error_text),
        cmocka_unit_test(test_error_long_line_window),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_unterminated_buffer),
        cmocka_unit_test(test_validate_rejects),
        cmocka_unit_test(test_random_round_trip),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
