/* expr.h — the segment expression language: parser, AST, printer.
 *
 * A segment expression is text such as
 *   tag("VIP") and not tag("勿扰") and region in ("上海", "北京") and spent > 1000
 *   and orders(30d) >= 2 and not did("message", 14d)
 * expr_parse turns it into a tree of expr_node that an engine evaluates to a set
 * of customers; docs/SEGMENTS.md is the reference (grammar, predicates, limits,
 * error format).
 *
 * AST shape (checked by expr_validate):
 *   EXPR_AND / EXPR_OR  n-ary, 2..n kids, never a kid of the same kind (flattened)
 *   EXPR_NOT            exactly 1 kid
 *   EXPR_SET            dim + 1..EXPR_MAX_VALUES values (any of)
 *   EXPR_CMP            numeric attribute op number (or duration, for times)
 *   EXPR_DID            event type seen within window (window 0 = ever)
 *   EXPR_COUNT          number of events of type within window, op n
 *   EXPR_FIRST/LAST     age of the first/last event of type, op duration
 * Every node carries its source position (1-based line, column in characters,
 * byte offset). Positions are ignored by expr_equal.
 *
 * Ownership: expr_parse returns a tree the caller frees with expr_free; every
 * node, kid array, value array and string in it is a separate malloc block, so
 * a tree built by hand with malloc can be freed by expr_free too. */
#ifndef SIYU_SEGMENT_EXPR_H
#define SIYU_SEGMENT_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXPR_MAX_INPUT 16384               /* bytes of source text */
#define EXPR_MAX_DEPTH 64                  /* nesting of "(" and "not" */
#define EXPR_MAX_NODES 1000                /* AST nodes */
#define EXPR_MAX_VALUES 1000               /* values in one "in (...)" list */
#define EXPR_MAX_STRING 256                /* bytes of one string literal, decoded */
#define EXPR_MAX_EVENT_TYPE 64             /* bytes of an event type, [a-z0-9_.:-] */
#define EXPR_MAX_DURATION 315360000        /* seconds: 3650 days */
#define EXPR_MAX_NUMBER 1000000000000000LL /* ids, counts; spent in cents */

typedef enum expr_kind {
    EXPR_AND = 1,
    EXPR_OR,
    EXPR_NOT,
    EXPR_SET,
    EXPR_CMP,
    EXPR_DID,
    EXPR_COUNT,
    EXPR_FIRST,
    EXPR_LAST,
} expr_kind;

/* Set dimensions: membership of the customer in one of the values. */
typedef enum expr_dim {
    EXPR_DIM_TAG = 1,
    EXPR_DIM_CHANNEL,
    EXPR_DIM_CHANNEL_GROUP,
    EXPR_DIM_EMPLOYEE, /* active relationship with the employee */
    EXPR_DIM_DEPARTMENT,
    EXPR_DIM_STORE,
    EXPR_DIM_GROUP, /* member of the customer group chat */
    EXPR_DIM_REGION,
    EXPR_DIM_GENDER,              /* values "female" | "male" | "unknown" */
    EXPR_DIM_STAGE,               /* lifecycle stage, tenant-defined names */
    EXPR_DIM_RELATIONSHIP_STATUS, /* see expr_status_names */
    EXPR_DIM__COUNT
} expr_dim;

/* Numeric attributes for EXPR_CMP. Times compare their age (now - time). */
typedef enum expr_attr {
    EXPR_ATTR_SPENT = 1,    /* total spent, number in cents (1000.50 -> 100050) */
    EXPR_ATTR_ORDERS_TOTAL, /* order count, integer */
    EXPR_ATTR_FIRST_ADDED,  /* time: age in seconds */
    EXPR_ATTR_LAST_ACTIVE,
    EXPR_ATTR_LAST_MESSAGE,
    EXPR_ATTR__COUNT
} expr_attr;

typedef enum expr_op {
    EXPR_OP_LT = 1,
    EXPR_OP_LE,
    EXPR_OP_GT,
    EXPR_OP_GE,
    EXPR_OP_EQ,
    EXPR_OP_NE,
} expr_op;

/* Duration units, as written (kept so printing gives back what was typed). */
typedef enum expr_unit {
    EXPR_UNIT_NONE = 0, /* not a duration (window: all time) */
    EXPR_UNIT_MINUTE,   /* m, 60 s */
    EXPR_UNIT_HOUR,     /* h, 3600 s */
    EXPR_UNIT_DAY,      /* d, 86400 s */
    EXPR_UNIT_WEEK,     /* w, 604800 s */
} expr_unit;

typedef enum expr_value_kind {
    EXPR_VAL_NAME = 1, /* "name": a string, matched by name */
    EXPR_VAL_ID,       /* 42: Siyu's numeric id (as the API returns it) */
} expr_value_kind;

typedef struct expr_value {
    expr_value_kind kind;
    char *name; /* EXPR_VAL_NAME: NUL-terminated valid UTF-8, no controls */
    size_t name_len;
    int64_t id; /* EXPR_VAL_ID: 1..EXPR_MAX_NUMBER */
} expr_value;

typedef struct expr_node {
    expr_kind kind;
    uint32_t line, col; /* 1-based; col counts characters */
    size_t off;         /* byte offset of the node's first token */

    /* EXPR_AND, EXPR_OR, EXPR_NOT */
    struct expr_node **kids;
    size_t nkids;

    /* EXPR_SET */
    expr_dim dim;
    expr_value *vals;
    size_t nvals;

    /* EXPR_CMP (attr), EXPR_COUNT, EXPR_FIRST, EXPR_LAST: op num.
     * num is cents (spent), a count (orders_total, count), or seconds of age
     * (times, first, last; unit says how it was written). */
    expr_attr attr;
    expr_op op;
    int64_t num;
    expr_unit unit;

    /* EXPR_DID, EXPR_COUNT, EXPR_FIRST, EXPR_LAST */
    char *event_type; /* NUL-terminated, 1..64 of [a-z0-9_.:-] */
    int64_t window;   /* seconds, 0 = all time (DID, COUNT only) */
    expr_unit window_unit;
} expr_node;

/* Parse error: what and where. text is the whole human message:
 *   line 1, column 23: expected ")" after the values of "region in"
 *     region in ("上海", "北京" and x
 *                               ^
 * (the caret is padded by display width, so it lines up under wide CJK text). */
typedef struct expr_err {
    int code;           /* SIYU_EINVAL, SIYU_ETOOBIG or SIYU_ENOMEM */
    uint32_t line, col; /* 1-based; col in characters */
    size_t off;         /* byte offset */
    char msg[256];      /* "expected ... " without the position */
    char text[1024];    /* "line L, column C: msg\n  <line>\n  <caret>" */
} expr_err;

/* Parse len bytes of src (no NUL needed). On success returns 0 and *out owns
 * the tree (free with expr_free). On failure returns SIYU_EINVAL (syntax,
 * unknown name, bad value, invalid UTF-8), SIYU_ETOOBIG (a limit) or
 * SIYU_ENOMEM, sets *out to NULL and fills err (may be NULL). */
int expr_parse(const char *src, size_t len, expr_node **out, expr_err *err);

/* Free a tree; expr_free(NULL) does nothing. */
void expr_free(expr_node *n);

/* Canonical text of a tree: lowercase keywords, single spaces, parentheses
 * only where needed; expr_parse(expr_print(x)) is expr_equal to x for every
 * tree that passes expr_validate. Returns a malloc'd NUL-terminated string the
 * caller frees (length in *len if len is not NULL), NULL if out of memory. */
char *expr_print(const expr_node *n, size_t *len);

/* Structural invariants (shape above, enum ranges, value rules, limits).
 * Returns true if they hold; otherwise false with *why (static text) set. */
bool expr_validate(const expr_node *n, const char **why);

/* Deep equality ignoring source positions. */
bool expr_equal(const expr_node *a, const expr_node *b);

/* Names, for messages and the documentation ("tag", "spent", ">=", "d"). */
const char *expr_dim_name(expr_dim d);
const char *expr_attr_name(expr_attr a);
const char *expr_op_name(expr_op op);
int64_t expr_unit_seconds(expr_unit u);

/* Values of relationship_status: "active", "lost" (deleted by either side),
 * "deleted_by_customer", "deleted_by_employee", "transferred"; NULL-ended. */
extern const char *const expr_status_names[];
/* Values of gender: "female", "male", "unknown"; NULL-ended. */
extern const char *const expr_gender_names[];

#endif
