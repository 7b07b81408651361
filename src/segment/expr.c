/* expr.c — the segment expression language: lexer, recursive-descent parser,
 * canonical printer, validator.
 *
 * The parser reads a byte buffer of known length (never relies on a NUL) with
 * one token of lookahead. The lexer tracks line and column (in characters) as
 * it goes, so every token and node knows where it started and errors cost
 * nothing until they happen. Strings are decoded into a fixed scratch buffer
 * and copied only when a node keeps them.
 *
 * Limits (expr.h) are checked where they are crossed: input size before
 * lexing, nesting on every "(" and "not" (the recursion is bounded by it),
 * nodes on every allocation (live nodes: flattening frees), values per list,
 * decoded string length. The first error stops the parse; partial trees are
 * freed before returning.
 *
 * AND/OR are n-ary and flattened while parsing: "a and (b and c)" becomes
 * AND[a, b, c], so the printer emits parentheses only for OR under AND and
 * AND/OR under NOT, and parse(print(x)) == x. */
#include "segment/expr.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/err.h"

const char *const expr_status_names[] = {
    "active", "lost", "deleted_by_customer", "deleted_by_employee", "transferred", NULL};
const char *const expr_gender_names[] = {"female", "male", "unknown", NULL};

static const char *const dim_names[EXPR_DIM__COUNT] = {
    [EXPR_DIM_TAG] = "tag",
    [EXPR_DIM_CHANNEL] = "channel",
    [EXPR_DIM_CHANNEL_GROUP] = "channel_group",
    [EXPR_DIM_EMPLOYEE] = "employee",
    [EXPR_DIM_DEPARTMENT] = "department",
    [EXPR_DIM_STORE] = "store",
    [EXPR_DIM_GROUP] = "group",
    [EXPR_DIM_REGION] = "region",
    [EXPR_DIM_GENDER] = "gender",
    [EXPR_DIM_STAGE] = "stage",
    [EXPR_DIM_RELATIONSHIP_STATUS] = "relationship_status",
};

static const char *const attr_names[EXPR_ATTR__COUNT] = {
    [EXPR_ATTR_SPENT] = "spent",
    [EXPR_ATTR_ORDERS_TOTAL] = "orders_total",
    [EXPR_ATTR_FIRST_ADDED] = "first_added",
    [EXPR_ATTR_LAST_ACTIVE] = "last_active",
    [EXPR_ATTR_LAST_MESSAGE] = "last_message",
};

/* Behaviour predicates and keywords, for "did you mean". */
static const char *const other_names[] = {"did", "count", "orders", "first", "last", "not", NULL};

#define ORDER_EVENT "order"

const char *expr_dim_name(expr_dim d) {
    return d > 0 && d < EXPR_DIM__COUNT ? dim_names[d] : "?";
}

const char *expr_attr_name(expr_attr a) {
    return a > 0 && a < EXPR_ATTR__COUNT ? attr_names[a] : "?";
}

const char *expr_op_name(expr_op op) {
    switch (op) {
    case EXPR_OP_LT:
        return "<";
    case EXPR_OP_LE:
        return "<=";
    case EXPR_OP_GT:
        return ">";
    case EXPR_OP_GE:
        return ">=";
    case EXPR_OP_EQ:
        return "=";
    case EXPR_OP_NE:
        return "!=";
    }
    return "?";
}

int64_t expr_unit_seconds(expr_unit u) {
    switch (u) {
    case EXPR_UNIT_MINUTE:
        return 60;
    case EXPR_UNIT_HOUR:
        return 3600;
    case EXPR_UNIT_DAY:
        return 86400;
    case EXPR_UNIT_WEEK:
        return 604800;
    case EXPR_UNIT_NONE:
        break;
    }
    return 0;
}

static char unit_char(expr_unit u) {
    switch (u) {
    case EXPR_UNIT_MINUTE:
        return 'm';
    case EXPR_UNIT_HOUR:
        return 'h';
    case EXPR_UNIT_DAY:
        return 'd';
    case EXPR_UNIT_WEEK:
        return 'w';
    case EXPR_UNIT_NONE:
        break;
    }
    return '?';
}

static bool attr_is_time(expr_attr a) {
    return a == EXPR_ATTR_FIRST_ADDED || a == EXPR_ATTR_LAST_ACTIVE || a == EXPR_ATTR_LAST_MESSAGE;
}

static bool dim_takes_ids(expr_dim d) {
    return d >= EXPR_DIM_TAG && d <= EXPR_DIM_GROUP;
}

static bool in_list(const char *const *names, const char *s) {
    for (size_t i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0) return true;
    return false;
}

/* ---- UTF-8 ------------------------------------------------------------ */

/* Decode one strict UTF-8 character at s[0..n) (n >= 1). Returns its length
 * and sets *cp, or 0 if the bytes are not valid UTF-8 (overlong, surrogate,
 * above U+10FFFF, truncated). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* Terminal cells of a code point: 2 for East Asian wide/full-width. */
static int cp_width(uint32_t cp) {
    if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0x303E) ||
        (cp >= 0x3041 && cp <= 0x33FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
        (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xA000 && cp <= 0xA4CF) ||
        (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
        (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
        (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1F64F) ||
        (cp >= 0x1F900 && cp <= 0x1F9FF) || (cp >= 0x20000 && cp <= 0x3FFFD))
        return 2;
    return 1;
}

/* ---- errors ------------------------------------------------------------ */

typedef struct pos {
    size_t off;
    uint32_t line, col;
} pos;

/* One displayed character of the offending line. */
typedef struct dchar {
    size_t off, len; /* bytes in the source (len 0: replaced) */
    char rep;        /* replacement byte if len is 0 */
    int width;
} dchar;

#define ERR_WINDOW 40 /* characters shown either side of the column */

/* text = "line L, column C: msg\n  <line window>\n  <caret>". */
static void err_format(const char *src, size_t len, expr_err *e) {
    size_t ls = e->off > len ? len : e->off;
    while (ls > 0 && src[ls - 1] != '\n')
        ls--;
    size_t le = ls;
    while (le < len && src[le] != '\n')
        le++;
    if (le > ls && src[le - 1] == '\r') le--;

    /* Characters of the line from ERR_WINDOW before the column to
     * ERR_WINDOW after it. */
    uint32_t first = e->col > ERR_WINDOW ? e->col - ERR_WINDOW : 1;
    uint32_t last = e->col + ERR_WINDOW;
    dchar win[2 * ERR_WINDOW + 2];
    size_t nwin = 0, caret = 0;
    uint32_t col = 1;
    bool more = false;
    for (size_t i = ls; i < le;) {
        uint32_t cp = '?';
        size_t n = utf8_decode((const unsigned char *)src + i, le - i, &cp);
        dchar d = {.off = i, .len = n, .rep = 0, .width = 1};
        if (n == 0)
            d.rep = '?', n = 1;
        else if (cp < 0x20 || cp == 0x7F)
            d.len = 0, d.rep = cp == '\t' ? ' ' : '?';
        else
            d.width = cp_width(cp);
        if (col >= first && col <= last) {
            if (col == e->col) caret = nwin;
            win[nwin++] = d;
        } else if (col > last) {
            more = true;
            break;
        }
        i += n;
        col++;
    }
    if (e->col >= col && e->col <= last) caret = nwin; /* just past the end */

    char *t = e->text;
    size_t cap = sizeof e->text, k = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(t + k, cap - k, __VA_ARGS__);                                            \
        if (w_ > 0) k = (size_t)w_ < cap - k ? k + (size_t)w_ : cap - 1;                           \
    } while (0)
    PUT("line %u, column %u: %s\n  %s", e->line, e->col, e->msg, first > 1 ? "..." : "");
    for (size_t i = 0; i < nwin; i++) {
        if (win[i].len)
            PUT("%.*s", (int)win[i].len, src + win[i].off);
        else
            PUT("%c", win[i].rep);
    }
    PUT("%s\n  %s", more ? "..." : "", first > 1 ? "   " : "");
    for (size_t i = 0; i < caret && i < nwin; i++)
        PUT("%s", win[i].width == 2 ? "  " : " ");
    PUT("^");
#undef PUT
}

/* ---- lexer ------------------------------------------------------------- */

typedef enum tok_kind {
    T_EOF,
    T_IDENT,
    T_STRING,
    T_NUMBER,   /* ival (whole part), frac (cents part), nfrac digits */
    T_DURATION, /* ival units of unit */
    T_LP,
    T_RP,
    T_COMMA,
    T_OP, /* op */
} tok_kind;

typedef struct tok {
    tok_kind kind;
    pos at;
    size_t len; /* bytes of the token's text */
    int64_t ival;
    int frac, nfrac;
    expr_unit unit;
    expr_op op;
    size_t slen; /* T_STRING: decoded bytes in parser.sbuf */
} tok;

typedef struct parser {
    const char *src;
    size_t len;
    pos cur; /* lexer cursor */
    tok t;   /* lookahead */
    char sbuf[EXPR_MAX_STRING + 1];
    int depth;
    size_t nodes;
    expr_err *err;
    bool failed;
} parser;

static int fail_at(parser *p, int code, pos at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(parser *p, int code, pos at, const char *fmt, ...) {
    if (p->failed) return p->err ? p->err->code : code;
    p->failed = true;
    expr_err *e = p->err;
    if (!e) return code;
    e->code = code;
    e->line = at.line;
    e->col = at.col;
    e->off = at.off;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    err_format(p->src, p->len, e);
    return code;
}

#define FAIL(p, at, ...) fail_at((p), SIYU_EINVAL, (at), __VA_ARGS__)

/* Advance the cursor over n bytes that form one character. */
static void adv(parser *p, size_t n) {
    if (p->src[p->cur.off] == '\n') {
        p->cur.line++;
        p->cur.col = 1;
    } else {
        p->cur.col++;
    }
    p->cur.off += n;
}

static bool is_ident_start(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident(int c) {
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static int lex_string(parser *p) {
    pos start = p->cur;
    adv(p, 1);
    size_t n = 0;
    for (;;) {
        if (p->cur.off >= p->len)
            return FAIL(p, start, "unterminated string: missing closing '\"'");
        pos at = p->cur;
        const unsigned char *s = (const unsigned char *)p->src + at.off;
        uint32_t cp;
        size_t cl = utf8_decode(s, p->len - at.off, &cp);
        if (cl == 0) return FAIL(p, at, "invalid UTF-8 in a string (byte 0x%02X)", s[0]);
        if (cp == '"') {
            adv(p, 1);
            break;
        }
        if (cp == '\n')
            return FAIL(p, start, "unterminated string: missing closing '\"' on this line");
        if (cp < 0x20 || cp == 0x7F)
            return FAIL(p, at, "control character U+%04X in a string", (unsigned)cp);
        const unsigned char *bytes = s;
        if (cp == '\\') {
            if (at.off + 1 >= p->len)
                return FAIL(p, start, "unterminated string: missing closing '\"'");
            char c = p->src[at.off + 1];
            if (c != '"' && c != '\\')
                return FAIL(p, at, "unknown escape in a string: only \\\" and \\\\ are allowed");
            adv(p, 1);
            bytes = (const unsigned char *)p->src + p->cur.off;
            cl = 1;
        }
        if (n + cl > EXPR_MAX_STRING)
            return fail_at(p, SIYU_ETOOBIG, start, "string longer than %d bytes", EXPR_MAX_STRING);
        memcpy(p->sbuf + n, bytes, cl);
        n += cl;
        adv(p, cl);
    }
    p->sbuf[n] = 0;
    p->t.kind = T_STRING;
    p->t.slen = n;
    return 0;
}

static int lex_number(parser *p) {
    pos start = p->cur;
    const char *s = p->src;
    int64_t v = 0;
    while (p->cur.off < p->len && s[p->cur.off] >= '0' && s[p->cur.off] <= '9') {
        v = v * 10 + (s[p->cur.off] - '0');
        if (v > EXPR_MAX_NUMBER)
            return fail_at(p, SIYU_ETOOBIG, start, "number too large (at most %lld)",
                           (long long)EXPR_MAX_NUMBER);
        adv(p, 1);
    }
    p->t.kind = T_NUMBER;
    p->t.ival = v;
    p->t.frac = 0;
    p->t.nfrac = 0;
    if (p->cur.off < p->len && s[p->cur.off] == '.') {
        adv(p, 1);
        while (p->cur.off < p->len && s[p->cur.off] >= '0' && s[p->cur.off] <= '9') {
            if (p->t.nfrac == 2) return FAIL(p, start, "at most 2 digits after the decimal point");
            p->t.frac = p->t.frac * 10 + (s[p->cur.off] - '0');
            p->t.nfrac++;
            adv(p, 1);
        }
        if (p->t.nfrac == 0) return FAIL(p, start, "expected digits after the decimal point");
        if (p->t.nfrac == 1) p->t.frac *= 10;
    }
    if (p->cur.off < p->len && is_ident(s[p->cur.off])) {
        size_t e = p->cur.off + 1;
        char u = s[p->cur.off];
        bool one = e >= p->len || !is_ident(s[e]);
        expr_unit unit = u == 'm'   ? EXPR_UNIT_MINUTE
                         : u == 'h' ? EXPR_UNIT_HOUR
                         : u == 'd' ? EXPR_UNIT_DAY
                         : u == 'w' ? EXPR_UNIT_WEEK
                                    : EXPR_UNIT_NONE;
        if (!one || unit == EXPR_UNIT_NONE || p->t.nfrac)
            return FAIL(p, start,
                        "bad number or duration: a duration is a whole number and one unit of "
                        "m, h, d, w (e.g. 30d)");
        adv(p, 1);
        if (v == 0) return FAIL(p, start, "a duration must be at least 1%c", u);
        if (v > EXPR_MAX_DURATION / expr_unit_seconds(unit))
            return fail_at(p, SIYU_ETOOBIG, start, "duration longer than 10 years (3650d)");
        p->t.kind = T_DURATION;
        p->t.unit = unit;
    }
    return 0;
}

/* A non-ASCII character outside a string: say which, with a hint for the
 * full-width punctuation a Chinese input method types. */
static int lex_foreign(parser *p) {
    const unsigned char *s = (const unsigned char *)p->src + p->cur.off;
    uint32_t cp;
    size_t n = utf8_decode(s, p->len - p->cur.off, &cp);
    if (n == 0) return FAIL(p, p->cur, "invalid UTF-8 (byte 0x%02X)", s[0]);
    const char *hint = "";
    switch (cp) {
    case 0xFF08:
        hint = " (full-width; use ASCII \"(\")";
        break;
    case 0xFF09:
        hint = " (full-width; use ASCII \")\")";
        break;
    case 0xFF0C:
        hint = " (full-width; use ASCII \",\")";
        break;
    case 0x201C:
    case 0x201D:
        hint = " (curly quote; use ASCII '\"')";
        break;
    case 0xFF1D:
        hint = " (full-width; use ASCII \"=\")";
        break;
    }
    return FAIL(p, p->cur, "unexpected character \"%.*s\" outside a string%s", (int)n,
                (const char *)s, hint);
}

/* Read the next token into p->t. */
static int lex(parser *p) {
    const char *s = p->src;
    while (p->cur.off < p->len && (s[p->cur.off] == ' ' || s[p->cur.off] == '\t' ||
                                   s[p->cur.off] == '\n' || s[p->cur.off] == '\r'))
        adv(p, 1);
    memset(&p->t, 0, sizeof p->t);
    p->t.at = p->cur;
    if (p->cur.off >= p->len) {
        p->t.kind = T_EOF;
        return 0;
    }
    unsigned char c = (unsigned char)s[p->cur.off];
    size_t n1 = p->cur.off + 1 < p->len ? (unsigned char)s[p->cur.off + 1] : 0;
    int rc = 0;
    if (is_ident_start(c)) {
        p->t.kind = T_IDENT;
        while (p->cur.off < p->len && is_ident(s[p->cur.off]))
            adv(p, 1);
    } else if (c >= '0' && c <= '9') {
        rc = lex_number(p);
    } else if (c == '"') {
        rc = lex_string(p);
    } else if (c == '(' || c == ')' || c == ',') {
        p->t.kind = c == '(' ? T_LP : c == ')' ? T_RP : T_COMMA;
        adv(p, 1);
    } else if (c == '<' || c == '>') {
        p->t.kind = T_OP;
        bool eq = n1 == '=';
        p->t.op = c == '<' ? (eq ? EXPR_OP_LE : EXPR_OP_LT) : (eq ? EXPR_OP_GE : EXPR_OP_GT);
        adv(p, 1);
        if (eq) adv(p, 1);
    } else if (c == '=') {
        if (n1 == '=') return FAIL(p, p->cur, "unexpected \"==\": use \"=\"");
        p->t.kind = T_OP;
        p->t.op = EXPR_OP_EQ;
        adv(p, 1);
    } else if (c == '!' && n1 == '=') {
        p->t.kind = T_OP;
        p->t.op = EXPR_OP_NE;
        adv(p, 1);
        adv(p, 1);
    } else if (c == '&' || c == '|' || c == '!') {
        const char *w = c == '&' ? "and" : c == '|' ? "or" : "not";
        return FAIL(p, p->cur, "unexpected \"%c\": use \"%s\"", c, w);
    } else if (c == '\'') {
        return FAIL(p, p->cur, "strings are in double quotes (\"...\"), not single quotes");
    } else if (c >= 0x80) {
        return lex_foreign(p);
    } else if (c < 0x20 || c == 0x7F) {
        return FAIL(p, p->cur, "unexpected control character U+%04X", (unsigned)c);
    } else {
        return FAIL(p, p->cur, "unexpected character \"%c\"", c);
    }
    p->t.len = p->cur.off - p->t.at.off;
    return rc;
}

/* ---- parser helpers ------------------------------------------------------ */

static bool tok_is_word(const parser *p, const char *w) {
    return p->t.kind == T_IDENT && p->t.len == strlen(w) &&
           strncasecmp(p->src + p->t.at.off, w, p->t.len) == 0;
}

/* Human description of the lookahead token, for "found ..." (buf >= 64). */
static const char *tok_describe(const parser *p, char *buf, size_t cap) {
    switch (p->t.kind) {
    case T_EOF:
        return "the end of the expression";
    case T_STRING:
        return "a string";
    case T_NUMBER:
        return "a number";
    case T_DURATION:
        return "a duration";
    case T_LP:
        return "\"(\"";
    case T_RP:
        return "\")\"";
    case T_COMMA:
        return "\",\"";
    case T_OP:
        snprintf(buf, cap, "\"%s\"", expr_op_name(p->t.op));
        return buf;
    case T_IDENT:
        snprintf(buf, cap, "\"%.*s\"", p->t.len > 32 ? 32 : (int)p->t.len, p->src + p->t.at.off);
        return buf;
    }
    return "?";
}

static int expected(parser *p, const char *what) {
    char b[160];
    return FAIL(p, p->t.at, "expected %s, found %s", what, tok_describe(p, b, sizeof b));
}

/* Optimal string alignment distance, case-insensitive, for short words. */
static int edit_distance(const char *a, size_t na, const char *b) {
    size_t nb = strlen(b);
    if (na > 32 || nb > 32) return 99;
    int d[34][34];
    for (size_t i = 0; i <= na; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= nb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        for (size_t j = 1; j <= nb; j++) {
            int ca = a[i - 1] | 0x20, cb = b[j - 1] | 0x20;
            int v = d[i - 1][j - 1] + (ca != cb);
            if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ca == (b[j - 2] | 0x20) && (a[i - 2] | 0x20) == cb &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[na][nb];
}

static void consider(const char *w, size_t n, const char *name, const char **best, int *bd) {
    int d = edit_distance(w, n, name);
    if (d < *bd) *bd = d, *best = name;
}

/* The known name closest to the identifier w, or NULL if none is close. */
static const char *suggest(const char *w, size_t n) {
    const char *best = NULL;
    int bd = 99;
    for (int i = 1; i < EXPR_DIM__COUNT; i++)
        consider(w, n, dim_names[i], &best, &bd);
    for (int i = 1; i < EXPR_ATTR__COUNT; i++)
        consider(w, n, attr_names[i], &best, &bd);
    for (int i = 0; other_names[i]; i++)
        consider(w, n, other_names[i], &best, &bd);
    int limit = n <= 3 ? 1 : n <= 6 ? 2 : 3;
    return bd <= limit ? best : NULL;
}

/* After a condition: " (did you mean and?)" if the word looks like one. */
static const char *connective_hint(const parser *p) {
    if (p->t.kind != T_IDENT || p->t.len < 2) return "";
    const char *w = p->src + p->t.at.off;
    if (edit_distance(w, p->t.len, "and") <= 1) return " (did you mean and?)";
    if (edit_distance(w, p->t.len, "or") <= 1 && p->t.len <= 3) return " (did you mean or?)";
    return "";
}

static expr_node *node_new(parser *p, expr_kind kind, pos at) {
    if (p->nodes >= EXPR_MAX_NODES) {
        fail_at(p, SIYU_ETOOBIG, at, "expression has more than %d parts", EXPR_MAX_NODES);
        return NULL;
    }
    expr_node *n = calloc(1, sizeof *n);
    if (!n) {
        fail_at(p, SIYU_ENOMEM, at, "out of memory");
        return NULL;
    }
    p->nodes++;
    n->kind = kind;
    n->line = at.line;
    n->col = at.col;
    n->off = at.off;
    return n;
}

static void node_drop(parser *p, expr_node *n) {
    size_t c = 0;
    /* count the nodes of n to keep p->nodes the number of live nodes */
    expr_node *stack[EXPR_MAX_NODES];
    size_t sp = 0;
    if (n) stack[sp++] = n;
    while (sp) {
        expr_node *x = stack[--sp];
        c++;
        for (size_t i = 0; i < x->nkids; i++)
            if (x->kids[i] && sp < EXPR_MAX_NODES) stack[sp++] = x->kids[i];
    }
    p->nodes -= c <= p->nodes ? c : p->nodes;
    expr_free(n);
}

static char *dup_sbuf(parser *p) {
    char *s = malloc(p->t.slen + 1);
    if (!s) {
        fail_at(p, SIYU_ENOMEM, p->t.at, "out of memory");
        return NULL;
    }
    memcpy(s, p->sbuf, p->t.slen + 1);
    return s;
}

/* ---- grammar ------------------------------------------------------------- */

static expr_node *parse_or(parser *p);

/* value := string | integer */
static int parse_value(parser *p, expr_dim dim, expr_value *v) {
    const char *dn = dim_names[dim];
    if (p->t.kind == T_NUMBER && dim_takes_ids(dim)) {
        if (p->t.nfrac) return FAIL(p, p->t.at, "an id is a whole number");
        if (p->t.ival < 1) return FAIL(p, p->t.at, "an id is at least 1");
        v->kind = EXPR_VAL_ID;
        v->id = p->t.ival;
        return lex(p);
    }
    if (p->t.kind != T_STRING) {
        char b[160];
        snprintf(b, sizeof b,
                 dim_takes_ids(dim) ? "a %s name (string) or id (number)" : "a %s name (string)",
                 dn);
        return expected(p, b);
    }
    if (p->t.slen == 0) return FAIL(p, p->t.at, "empty %s name", dn);
    if (dim == EXPR_DIM_GENDER && !in_list(expr_gender_names, p->sbuf))
        return FAIL(p, p->t.at, "gender is \"female\", \"male\" or \"unknown\"");
    if (dim == EXPR_DIM_RELATIONSHIP_STATUS && !in_list(expr_status_names, p->sbuf))
        return FAIL(p, p->t.at,
                    "relationship_status is \"active\", \"lost\", \"deleted_by_customer\", "
                    "\"deleted_by_employee\" or \"transferred\"");
    v->kind = EXPR_VAL_NAME;
    v->name = dup_sbuf(p);
    if (!v->name) return SIYU_ENOMEM;
    v->name_len = p->t.slen;
    return lex(p);
}

/* dim "(" value ")" | dim "=" value | dim "in" "(" value {"," value} ")" */
static expr_node *parse_set(parser *p, expr_dim dim) {
    const char *dn = dim_names[dim];
    expr_node *n = node_new(p, EXPR_SET, p->t.at);
    if (!n) return NULL;
    n->dim = dim;
    if (lex(p)) goto fail;
    enum { ONE_PAREN, ONE_EQ, LIST } form;
    if (p->t.kind == T_LP)
        form = ONE_PAREN;
    else if (p->t.kind == T_OP && p->t.op == EXPR_OP_EQ)
        form = ONE_EQ;
    else if (tok_is_word(p, "in"))
        form = LIST;
    else if (p->t.kind == T_OP && p->t.op == EXPR_OP_NE) {
        FAIL(p, p->t.at, "use \"not %s = ...\" instead of \"%s != ...\"", dn, dn);
        goto fail;
    } else {
        char b[160];
        snprintf(b, sizeof b, "\"(\", \"=\" or \"in\" after \"%s\"", dn);
        expected(p, b);
        goto fail;
    }
    if (lex(p)) goto fail;
    if (form == LIST) {
        if (p->t.kind != T_LP) {
            char b[160];
            snprintf(b, sizeof b, "\"(\" after \"%s in\"", dn);
            expected(p, b);
            goto fail;
        }
        if (lex(p)) goto fail;
    }
    size_t cap = 0;
    for (;;) {
        if (n->nvals == EXPR_MAX_VALUES) {
            fail_at(p, SIYU_ETOOBIG, p->t.at, "more than %d values in one list", EXPR_MAX_VALUES);
            goto fail;
        }
        if (n->nvals == cap) {
            cap = cap ? cap * 2 : 1;
            if (cap > EXPR_MAX_VALUES) cap = EXPR_MAX_VALUES;
            expr_value *nv = realloc(n->vals, cap * sizeof *nv);
            if (!nv) {
                fail_at(p, SIYU_ENOMEM, p->t.at, "out of memory");
                goto fail;
            }
            n->vals = nv;
        }
        memset(&n->vals[n->nvals], 0, sizeof n->vals[0]);
        n->nvals++; /* counted before parsing so a partial name is freed */
        if (parse_value(p, dim, &n->vals[n->nvals - 1])) goto fail;
        if (form != LIST || p->t.kind != T_COMMA) break;
        if (lex(p)) goto fail;
    }
    if (form == ONE_PAREN && p->t.kind == T_COMMA) {
        FAIL(p, p->t.at, "one value in \"%s(...)\"; for any of several write %s in (..., ...)", dn,
             dn);
        goto fail;
    }
    if (form != ONE_EQ && p->t.kind != T_RP) {
        char b[160];
        snprintf(b, sizeof b,
                 form == LIST ? "\")\" after the values of \"%s in\""
                              : "\")\" after the value of \"%s(\"",
                 dn);
        expected(p, b);
        goto fail;
    }
    if (form != ONE_EQ && lex(p)) goto fail;
    return n;
fail:
    node_drop(p, n);
    return NULL;
}

static int parse_op(parser *p, const char *after) {
    if (p->t.kind != T_OP) {
        char b[160];
        snprintf(b, sizeof b, "a comparison (< <= > >= = !=) after %s", after);
        return expected(p, b);
    }
    return 0;
}

static int parse_duration(parser *p, const char *what, int64_t *secs, expr_unit *unit) {
    if (p->t.kind != T_DURATION) {
        char b[160];
        snprintf(b, sizeof b, "a duration (e.g. 30d) %s", what);
        return expected(p, b);
    }
    *secs = p->t.ival * expr_unit_seconds(p->t.unit);
    *unit = p->t.unit;
    return lex(p);
}

static int parse_count_value(parser *p, int64_t *out) {
    if (p->t.kind != T_NUMBER || p->t.nfrac) return expected(p, "a whole number");
    *out = p->t.ival;
    return lex(p);
}

/* attr op (number | duration) */
static expr_node *parse_cmp(parser *p, expr_attr attr) {
    const char *an = attr_names[attr];
    expr_node *n = node_new(p, EXPR_CMP, p->t.at);
    if (!n) return NULL;
    n->attr = attr;
    char ctx[64];
    snprintf(ctx, sizeof ctx, "\"%s\"", an);
    if (lex(p) || parse_op(p, ctx)) goto fail;
    n->op = p->t.op;
    if (lex(p)) goto fail;
    if (attr_is_time(attr)) {
        if (p->t.kind == T_NUMBER) {
            FAIL(p, p->t.at, "%s compares with a duration (how long ago, e.g. 14d), not a number",
                 an);
            goto fail;
        }
        if (parse_duration(p, "of how long ago", &n->num, &n->unit)) goto fail;
    } else if (attr == EXPR_ATTR_SPENT) {
        if (p->t.kind != T_NUMBER) {
            expected(p, "an amount (e.g. 1000 or 99.50) after \"spent\"");
            goto fail;
        }
        if (p->t.ival > (EXPR_MAX_NUMBER - p->t.frac) / 100) {
            fail_at(p, SIYU_ETOOBIG, p->t.at, "amount too large");
            goto fail;
        }
        n->num = p->t.ival * 100 + p->t.frac;
        if (lex(p)) goto fail;
    } else if (parse_count_value(p, &n->num)) {
        goto fail;
    }
    return n;
fail:
    node_drop(p, n);
    return NULL;
}

/* The event type string of did/count/first/last. */
static int parse_event_type(parser *p, expr_node *n, const char *fn) {
    if (p->t.kind != T_STRING) {
        char b[160];
        snprintf(b, sizeof b, "an event type string (e.g. \"message\") in \"%s(\"", fn);
        return expected(p, b);
    }
    if (p->t.slen == 0 || p->t.slen > EXPR_MAX_EVENT_TYPE)
        return FAIL(p, p->t.at, "an event type is 1 to %d characters", EXPR_MAX_EVENT_TYPE);
    for (size_t i = 0; i < p->t.slen; i++) {
        char c = p->sbuf[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == ':' || c == '-'))
            return FAIL(p, p->t.at, "an event type has only a-z 0-9 _ . : - (like \"page.view\")");
    }
    n->event_type = dup_sbuf(p);
    if (!n->event_type) return SIYU_ENOMEM;
    return lex(p);
}

static int expect_rp(parser *p, const char *fn) {
    if (p->t.kind != T_RP) {
        char b[160];
        snprintf(b, sizeof b, "\")\" to close \"%s(\"", fn);
        return expected(p, b);
    }
    return lex(p);
}

/* did(type[, window]) | count(type[, window]) op n | orders([window]) op n |
 * first(type) op duration | last(type) op duration */
static expr_node *parse_event(parser *p, expr_kind kind, bool orders) {
    const char *fn = orders               ? "orders"
                     : kind == EXPR_DID   ? "did"
                     : kind == EXPR_COUNT ? "count"
                     : kind == EXPR_FIRST ? "first"
                                          : "last";
    expr_node *n = node_new(p, kind, p->t.at);
    if (!n) return NULL;
    if (lex(p)) goto fail;
    if (p->t.kind != T_LP) {
        char b[160];
        snprintf(b, sizeof b, "\"(\" after \"%s\"", fn);
        expected(p, b);
        goto fail;
    }
    if (lex(p)) goto fail;
    if (orders) {
        n->event_type = strdup(ORDER_EVENT);
        if (!n->event_type) {
            fail_at(p, SIYU_ENOMEM, p->t.at, "out of memory");
            goto fail;
        }
        if (p->t.kind != T_RP &&
            parse_duration(p, "or \")\" in \"orders(\"", &n->window, &n->window_unit))
            goto fail;
    } else {
        if (parse_event_type(p, n, fn)) goto fail;
        if (kind != EXPR_FIRST && kind != EXPR_LAST && p->t.kind == T_COMMA) {
            if (lex(p)) goto fail;
            if (parse_duration(p, "for the window", &n->window, &n->window_unit)) goto fail;
        }
    }
    if (expect_rp(p, fn)) goto fail;
    if (kind == EXPR_DID) return n;
    char ctx[64];
    snprintf(ctx, sizeof ctx, "\"%s(...)\"", fn);
    if (parse_op(p, ctx)) goto fail;
    n->op = p->t.op;
    if (lex(p)) goto fail;
    if (kind == EXPR_COUNT) {
        if (parse_count_value(p, &n->num)) goto fail;
    } else if (parse_duration(p, "of how long ago", &n->num, &n->unit)) {
        goto fail;
    }
    return n;
fail:
    node_drop(p, n);
    return NULL;
}

static expr_node *parse_predicate(parser *p) {
    char b[160];
    if (p->t.kind != T_IDENT) {
        FAIL(p, p->t.at, "expected a condition (like tag(\"VIP\") or spent > 100), found %s",
             tok_describe(p, b, sizeof b));
        return NULL;
    }
    for (int i = 1; i < EXPR_DIM__COUNT; i++)
        if (tok_is_word(p, dim_names[i])) return parse_set(p, (expr_dim)i);
    for (int i = 1; i < EXPR_ATTR__COUNT; i++)
        if (tok_is_word(p, attr_names[i])) return parse_cmp(p, (expr_attr)i);
    if (tok_is_word(p, "did")) return parse_event(p, EXPR_DID, false);
    if (tok_is_word(p, "count")) return parse_event(p, EXPR_COUNT, false);
    if (tok_is_word(p, "orders")) return parse_event(p, EXPR_COUNT, true);
    if (tok_is_word(p, "first")) return parse_event(p, EXPR_FIRST, false);
    if (tok_is_word(p, "last")) return parse_event(p, EXPR_LAST, false);
    if (tok_is_word(p, "and") || tok_is_word(p, "or") || tok_is_word(p, "in")) {
        FAIL(p, p->t.at, "expected a condition before %s", tok_describe(p, b, sizeof b));
        return NULL;
    }
    const char *s = suggest(p->src + p->t.at.off, p->t.len);
    if (s)
        FAIL(p, p->t.at, "unknown name %s (did you mean %s?)", tok_describe(p, b, sizeof b), s);
    else
        FAIL(p, p->t.at, "unknown name %s", tok_describe(p, b, sizeof b));
    return NULL;
}

static int depth_enter(parser *p) {
    if (++p->depth > EXPR_MAX_DEPTH)
        return fail_at(p, SIYU_ETOOBIG, p->t.at, "nested deeper than %d levels", EXPR_MAX_DEPTH);
    return 0;
}

/* unary := "not" unary | "(" or ")" | predicate */
static expr_node *parse_unary(parser *p) {
    if (tok_is_word(p, "not")) {
        if (depth_enter(p)) return NULL;
        expr_node *n = node_new(p, EXPR_NOT, p->t.at);
        if (!n) return NULL;
        n->kids = calloc(1, sizeof *n->kids);
        if (!n->kids) {
            fail_at(p, SIYU_ENOMEM, p->t.at, "out of memory");
            node_drop(p, n);
            return NULL;
        }
        n->nkids = 1;
        if (lex(p) || !(n->kids[0] = parse_unary(p))) {
            node_drop(p, n);
            return NULL;
        }
        p->depth--;
        return n;
    }
    if (p->t.kind == T_LP) {
        if (depth_enter(p)) return NULL;
        pos open = p->t.at;
        if (lex(p)) return NULL;
        expr_node *n = parse_or(p);
        if (!n) return NULL;
        if (p->t.kind != T_RP) {
            char b[160];
            FAIL(p, p->t.at, "expected \")\" to close the \"(\" at line %u, column %u, found %s%s",
                 open.line, open.col, tok_describe(p, b, sizeof b), connective_hint(p));
            node_drop(p, n);
            return NULL;
        }
        if (lex(p)) {
            node_drop(p, n);
            return NULL;
        }
        p->depth--;
        return n;
    }
    return parse_predicate(p);
}

/* Append kid to the n-ary node n, splicing kid's kids if it has n's kind. */
static int nary_add(parser *p, expr_node *n, expr_node *kid, size_t *cap) {
    size_t add = kid->kind == n->kind ? kid->nkids : 1;
    if (n->nkids + add > *cap) {
        size_t nc = (*cap ? *cap * 2 : 4);
        while (nc < n->nkids + add)
            nc *= 2;
        expr_node **k = realloc(n->kids, nc * sizeof *k);
        if (!k) return fail_at(p, SIYU_ENOMEM, p->t.at, "out of memory");
        n->kids = k;
        *cap = nc;
    }
    if (kid->kind == n->kind) {
        memcpy(n->kids + n->nkids, kid->kids, kid->nkids * sizeof *kid->kids);
        n->nkids += kid->nkids;
        free(kid->kids);
        free(kid);
        p->nodes--;
    } else {
        n->kids[n->nkids++] = kid;
    }
    return 0;
}

/* and := unary {"and" unary};  or := and {"or" and} */
static expr_node *parse_nary(parser *p, expr_kind kind) {
    const char *word = kind == EXPR_AND ? "and" : "or";
    expr_node *first = kind == EXPR_AND ? parse_unary(p) : parse_nary(p, EXPR_AND);
    if (!first || !tok_is_word(p, word)) return first;
    pos at = {first->off, first->line, first->col};
    expr_node *n = node_new(p, kind, at);
    size_t cap = 0;
    if (!n || nary_add(p, n, first, &cap)) {
        node_drop(p, first);
        node_drop(p, n);
        return NULL;
    }
    while (tok_is_word(p, word)) {
        if (lex(p)) goto fail;
        expr_node *kid = kind == EXPR_AND ? parse_unary(p) : parse_nary(p, EXPR_AND);
        if (!kid) goto fail;
        if (nary_add(p, n, kid, &cap)) {
            node_drop(p, kid);
            goto fail;
        }
    }
    return n;
fail:
    node_drop(p, n);
    return NULL;
}

static expr_node *parse_or(parser *p) {
    return parse_nary(p, EXPR_OR);
}

int expr_parse(const char *src, size_t len, expr_node **out, expr_err *err) {
    *out = NULL;
    if (err) memset(err, 0, sizeof *err);
    parser p = {.src = src ? src : "", .len = src ? len : 0, .cur = {0, 1, 1}, .err = err};
    if (p.len > EXPR_MAX_INPUT) {
        p.len = 0; /* show no line: the text is too long to quote */
        return fail_at(&p, SIYU_ETOOBIG, p.cur, "expression is %zu bytes; the limit is %d", len,
                       EXPR_MAX_INPUT);
    }
    if (lex(&p)) return err ? err->code : SIYU_EINVAL;
    if (p.t.kind == T_EOF) return FAIL(&p, p.t.at, "empty expression");
    expr_node *n = parse_or(&p);
    if (!n) return err ? err->code : SIYU_EINVAL;
    if (p.t.kind != T_EOF) {
        char b[160];
        if (p.t.kind == T_RP)
            FAIL(&p, p.t.at, "unmatched \")\"");
        else
            FAIL(&p, p.t.at, "expected \"and\", \"or\" or the end, found %s%s",
                 tok_describe(&p, b, sizeof b), connective_hint(&p));
        expr_free(n);
        return err ? err->code : SIYU_EINVAL;
    }
    *out = n;
    return 0;
}

void expr_free(expr_node *n) {
    if (!n) return;
    for (size_t i = 0; i < n->nkids; i++)
        expr_free(n->kids[i]);
    free(n->kids);
    for (size_t i = 0; i < n->nvals; i++)
        free(n->vals[i].name);
    free(n->vals);
    free(n->event_type);
    free(n);
}

/* ---- printer --------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 128;
        while (nc < b->n + n + 1)
            nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) {
    sb_put(b, s, strlen(s));
}

static void sb_fmt(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(sbuf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (w > 0) sb_put(b, tmp, (size_t)w < sizeof tmp ? (size_t)w : sizeof tmp - 1);
}

static void sb_quoted(sbuf *b, const char *s, size_t n) {
    sb_put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            sb_put(b, s + run, i - run);
            sb_put(b, "\\", 1);
            run = i;
        }
    }
    sb_put(b, s + run, n - run);
    sb_put(b, "\"", 1);
}

static void sb_duration(sbuf *b, int64_t secs, expr_unit u) {
    int64_t us = expr_unit_seconds(u);
    sb_fmt(b, "%lld%c", (long long)(us ? secs / us : secs), unit_char(u));
}

static void print_value(sbuf *b, const expr_value *v) {
    if (v->kind == EXPR_VAL_ID)
        sb_fmt(b, "%lld", (long long)v->id);
    else
        sb_quoted(b, v->name, v->name_len);
}

static void print_node(sbuf *b, const expr_node *n);

static void print_kid(sbuf *b, const expr_node *kid, bool parens) {
    if (parens) sb_put(b, "(", 1);
    print_node(b, kid);
    if (parens) sb_put(b, ")", 1);
}

static void print_node(sbuf *b, const expr_node *n) {
    switch (n->kind) {
    case EXPR_AND:
    case EXPR_OR:
        for (size_t i = 0; i < n->nkids; i++) {
            if (i) sb_str(b, n->kind == EXPR_AND ? " and " : " or ");
            print_kid(b, n->kids[i], n->kind == EXPR_AND && n->kids[i]->kind == EXPR_OR);
        }
        break;
    case EXPR_NOT:
        sb_str(b, "not ");
        print_kid(b, n->kids[0], n->kids[0]->kind == EXPR_AND || n->kids[0]->kind == EXPR_OR);
        break;
    case EXPR_SET:
        sb_str(b, expr_dim_name(n->dim));
        if (n->nvals == 1 && dim_takes_ids(n->dim)) {
            sb_put(b, "(", 1);
            print_value(b, &n->vals[0]);
            sb_put(b, ")", 1);
        } else if (n->nvals == 1) {
            sb_str(b, " = ");
            print_value(b, &n->vals[0]);
        } else {
            sb_str(b, " in (");
            for (size_t i = 0; i < n->nvals; i++) {
                if (i) sb_str(b, ", ");
                print_value(b, &n->vals[i]);
            }
            sb_put(b, ")", 1);
        }
        break;
    case EXPR_CMP:
        sb_fmt(b, "%s %s ", expr_attr_name(n->attr), expr_op_name(n->op));
        if (attr_is_time(n->attr))
            sb_duration(b, n->num, n->unit);
        else if (n->attr == EXPR_ATTR_SPENT && n->num % 100)
            sb_fmt(b, "%lld.%02d", (long long)(n->num / 100), (int)(n->num % 100));
        else if (n->attr == EXPR_ATTR_SPENT)
            sb_fmt(b, "%lld", (long long)(n->num / 100));
        else
            sb_fmt(b, "%lld", (long long)n->num);
        break;
    case EXPR_DID:
    case EXPR_COUNT:
    case EXPR_FIRST:
    case EXPR_LAST: {
        bool orders = n->kind == EXPR_COUNT && strcmp(n->event_type, ORDER_EVENT) == 0;
        if (orders) {
            sb_str(b, "orders(");
        } else {
            sb_str(b, n->kind == EXPR_DID     ? "did("
                      : n->kind == EXPR_COUNT ? "count("
                      : n->kind == EXPR_FIRST ? "first("
                                              : "last(");
            sb_quoted(b, n->event_type, strlen(n->event_type));
        }
        if (n->window) {
            if (!orders) sb_str(b, ", ");
            sb_duration(b, n->window, n->window_unit);
        }
        sb_put(b, ")", 1);
        if (n->kind == EXPR_DID) break;
        sb_fmt(b, " %s ", expr_op_name(n->op));
        if (n->kind == EXPR_COUNT)
            sb_fmt(b, "%lld", (long long)n->num);
        else
            sb_duration(b, n->num, n->unit);
        break;
    }
    }
}

char *expr_print(const expr_node *n, size_t *len) {
    sbuf b = {0};
    if (n)
        print_node(&b, n);
    else
        sb_put(&b, "", 0);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (len) *len = b.n;
    return b.p;
}

/* ---- validate and equal ------------------------------------------------------ */

static bool valid_utf8_name(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (k == 0 || cp < 0x20 || cp == 0x7F) return false;
        i += k;
    }
    return s[n] == 0;
}

static bool valid_duration(int64_t secs, expr_unit u) {
    int64_t us = expr_unit_seconds(u);
    return us && secs >= us && secs <= EXPR_MAX_DURATION && secs % us == 0;
}

static bool valid_event_type(const char *t) {
    size_t n = t ? strlen(t) : 0;
    if (n == 0 || n > EXPR_MAX_EVENT_TYPE) return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == ':' || c == '-'))
            return false;
    }
    return true;
}

#define WHY(msg)                                                                                   \
    do {                                                                                           \
        *why = (msg);                                                                              \
        return false;                                                                              \
    } while (0)

static bool validate_leaf(const expr_node *n, const char **why) {
    if (n->kids || n->nkids) WHY("leaf with kids");
    switch (n->kind) {
    case EXPR_SET:
        if (n->dim <= 0 || n->dim >= EXPR_DIM__COUNT) WHY("set: bad dimension");
        if (n->nvals < 1 || n->nvals > EXPR_MAX_VALUES || !n->vals) WHY("set: bad value count");
        for (size_t i = 0; i < n->nvals; i++) {
            const expr_value *v = &n->vals[i];
            if (v->kind == EXPR_VAL_ID) {
                if (!dim_takes_ids(n->dim)) WHY("set: id for a dimension without ids");
                if (v->id < 1 || v->id > EXPR_MAX_NUMBER || v->name) WHY("set: bad id");
            } else if (v->kind == EXPR_VAL_NAME) {
                if (!v->name || v->name_len < 1 || v->name_len > EXPR_MAX_STRING)
                    WHY("set: bad name length");
                if (!valid_utf8_name(v->name, v->name_len)) WHY("set: name not clean UTF-8");
                if (n->dim == EXPR_DIM_GENDER && !in_list(expr_gender_names, v->name))
                    WHY("set: bad gender");
                if (n->dim == EXPR_DIM_RELATIONSHIP_STATUS && !in_list(expr_status_names, v->name))
                    WHY("set: bad relationship status");
            } else {
                WHY("set: bad value kind");
            }
        }
        break;
    case EXPR_CMP:
        if (n->attr <= 0 || n->attr >= EXPR_ATTR__COUNT) WHY("cmp: bad attribute");
        if (n->op < EXPR_OP_LT || n->op > EXPR_OP_NE) WHY("cmp: bad op");
        if (attr_is_time(n->attr)
                ? !valid_duration(n->num, n->unit)
                : (n->unit != EXPR_UNIT_NONE || n->num < 0 || n->num > EXPR_MAX_NUMBER))
            WHY("cmp: bad operand");
        if (n->event_type || n->window || n->vals) WHY("cmp: stray fields");
        break;
    default:
        if (!valid_event_type(n->event_type)) WHY("event: bad type");
        if (n->window || n->window_unit) {
            if (n->kind == EXPR_FIRST || n->kind == EXPR_LAST) WHY("first/last with a window");
            if (!valid_duration(n->window, n->window_unit)) WHY("event: bad window");
        }
        if (n->kind == EXPR_DID) {
            if (n->op || n->num || n->unit) WHY("did: stray comparison");
        } else {
            if (n->op < EXPR_OP_LT || n->op > EXPR_OP_NE) WHY("event: bad op");
            if (n->kind == EXPR_COUNT ? (n->unit || n->num < 0 || n->num > EXPR_MAX_NUMBER)
                                      : !valid_duration(n->num, n->unit))
                WHY("event: bad operand");
        }
        if (n->vals || n->nvals) WHY("event: stray values");
        break;
    }
    return true;
}

/* nest = "(" and "not" levels the printed text opens around n. */
static bool validate_node(const expr_node *n, int nest, size_t *count, const char **why) {
    if (!n) WHY("null node");
    if (++*count > EXPR_MAX_NODES) WHY("too many nodes");
    if (n->line < 1 || n->col < 1) WHY("bad position");
    switch (n->kind) {
    case EXPR_AND:
    case EXPR_OR:
        if (n->nkids < 2 || !n->kids) WHY("and/or with fewer than 2 kids");
        for (size_t i = 0; i < n->nkids; i++) {
            const expr_node *k = n->kids[i];
            if (!k) WHY("null kid");
            if (k->kind == n->kind) WHY("and/or not flattened");
            int kn = nest + (n->kind == EXPR_AND && k->kind == EXPR_OR);
            if (!validate_node(k, kn, count, why)) return false;
        }
        break;
    case EXPR_NOT:
        if (n->nkids != 1 || !n->kids || !n->kids[0]) WHY("not without exactly 1 kid");
        nest++;
        if (nest > EXPR_MAX_DEPTH) WHY("nested too deep");
        if (!validate_node(n->kids[0],
                           nest + (n->kids[0]->kind == EXPR_AND || n->kids[0]->kind == EXPR_OR),
                           count, why))
            return false;
        break;
    case EXPR_SET:
    case EXPR_CMP:
    case EXPR_DID:
    case EXPR_COUNT:
    case EXPR_FIRST:
    case EXPR_LAST:
        if (!validate_leaf(n, why)) return false;
        break;
    default:
        WHY("bad node kind");
    }
    if (nest > EXPR_MAX_DEPTH) WHY("nested too deep");
    return true;
}

bool expr_validate(const expr_node *n, const char **why) {
    const char *dummy;
    if (!why) why = &dummy;
    size_t count = 0;
    return validate_node(n, 0, &count, why);
}

static bool str_eq(const char *a, const char *b) {
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

bool expr_equal(const expr_node *a, const expr_node *b) {
    if (!a || !b) return a == b;
    if (a->kind != b->kind || a->nkids != b->nkids || a->dim != b->dim || a->nvals != b->nvals ||
        a->attr != b->attr || a->op != b->op || a->num != b->num || a->unit != b->unit ||
        a->window != b->window || a->window_unit != b->window_unit ||
        !str_eq(a->event_type, b->event_type))
        return false;
    for (size_t i = 0; i < a->nvals; i++) {
        const expr_value *x = &a->vals[i], *y = &b->vals[i];
        if (x->kind != y->kind || x->id != y->id || x->name_len != y->name_len) return false;
        if (x->kind == EXPR_VAL_NAME && memcmp(x->name, y->name, x->name_len) != 0) return false;
    }
    for (size_t i = 0; i < a->nkids; i++)
        if (!expr_equal(a->kids[i], b->kids[i])) return false;
    return true;
}
