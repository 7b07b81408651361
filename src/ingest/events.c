/* events.c — the event batch parser (HTTP thread) and its write step (writer
 * thread). See events.h for the body format and the limits.
 *
 * The parser is a single pass over the body with a cursor (parser.p) and an
 * output pointer into one arena (parser.out). Decoded strings and compact
 * props never take more room than the input they came from (escapes only
 * shrink, whitespace is dropped, and every value is preceded by a ':' that is
 * not copied, which pays for the NUL), so an arena of len + 1 bytes is never
 * overrun: out - arena <= p - json holds throughout. Object keys are decoded
 * into the arena at `out` for comparison and then dropped (out not advanced).
 * Last, the parser hashes every idempotency key and sorts the items by key
 * and by hash, still on the HTTP thread.
 *
 * The write step does no parsing and no per-row allocation. Statements come
 * from the connection cache once per batch with the tenant bound once; every
 * customer_id of the batch is checked by one json_each statement; each
 * distinct external_userid is looked up once, in sorted order (customers
 * never seen are then created in input order); employee userids are looked up
 * per item, reusing the previous item's answer when it repeats; rows go in,
 * sorted by (customer, ts), with multi-row INSERT OR IGNORE statements (64,
 * then 8, then 1 rows), and sqlite3_changes() tells new rows from
 * duplicates. The unique index holds
 * (tenant_id, idem_hash), 8 bytes instead of the key; a chunk that stored
 * fewer rows than it had is checked row by row against the stored key, so a
 * hash collision between two different keys never drops an event (see
 * store_taken).
 *
 * Without SIYU_EVENTS_PARSER_ONLY defined the file also holds the write step;
 * the fuzz target defines it to build the parser without SQLite. */
#include "ingest/events.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parser state and errors ------------------------------------------- */

typedef struct parser {
    const char *s, *p, *end; /* input, cursor, end */
    char *out;               /* arena write position */
    siyu_err *err;
    long item;         /* index of the item being parsed, -1 outside */
    const char *field; /* field being parsed, NULL between fields */
} parser;

enum { F_IDEM, F_TYPE, F_TS, F_CUSTOMER, F_EXTERNAL, F_EMPLOYEE, F_PROPS, F_COUNT };
static const char *const field_names[F_COUNT] = {
    "idempotency_key", "type", "ts", "customer_id", "external_userid", "employee_userid", "props",
};

static void path(const parser *ps, const char *field, char *buf, size_t n) {
    if (ps->item < 0)
        snprintf(buf, n, "%s", field ? field : "");
    else if (field)
        snprintf(buf, n, "events[%ld].%s", ps->item, field);
    else
        snprintf(buf, n, "events[%ld]", ps->item);
}

static int syntax(parser *ps, const char *what) {
    char f[64];
    path(ps, ps->field, f, sizeof f);
    return siyu_err_set(ps->err, SIYU_EINVAL, f, "malformed JSON at byte %zu%s%s: %s",
                        (size_t)(ps->p - ps->s), f[0] ? " in " : "", f, what);
}

/* "events[i].<field> <what>" as a 400 naming that field. */
static int field_err(parser *ps, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int field_err(parser *ps, const char *field, const char *fmt, ...) {
    char f[64], what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    path(ps, field, f, sizeof f);
    return siyu_err_set(ps->err, SIYU_EINVAL, f, "%s%s%s", f, f[0] ? " " : "", what);
}

/* A client's field name made safe for a message: printable ASCII only, at
 * most 40 bytes. */
static void safe_name(char *dst, const char *src, size_t len) {
    size_t i = 0;
    for (; i < len && i < 40; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\') break;
        dst[i] = (char)ch;
    }
    if (i < len) {
        memcpy(dst + i, "...", 3);
        i += 3;
    }
    dst[i] = 0;
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

/* Skips whitespace; true when the next byte is ch. */
static bool peek(parser *ps, char ch) {
    skip_ws(ps);
    return ps->p < ps->end && *ps->p == ch;
}

/* ---- strings ----------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, at most U+10FFFF), or 0. */
static int utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    int n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else
        return 0;
    if (end - p < n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (int i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf) return 0;
    return n;
}

static int hex4(const unsigned char *p, const unsigned char *end, unsigned *out) {
    if (end - p < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static char *put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3f));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    return o;
}

/* Parses the \u escape at p (pointing at 'u'); returns its length from 'u'
 * (5 or 11) with the code point in *cp, or 0 with *why set. */
static int unicode_escape(const unsigned char *p, const unsigned char *end, unsigned *cp,
                          const char **why) {
    unsigned hi, lo;
    *why = "bad \\u escape";
    if (hex4(p + 1, end, &hi) != 0) return 0;
    if (hi == 0) {
        *why = "\\u0000 is not allowed in strings";
        return 0;
    }
    if (hi >= 0xdc00 && hi <= 0xdfff) {
        *why = "lone low surrogate in \\u escape";
        return 0;
    }
    if (hi < 0xd800 || hi > 0xdbff) {
        *cp = hi;
        return 5;
    }
    if (end - p < 11 || p[5] != '\\' || p[6] != 'u' || hex4(p + 7, end, &lo) != 0 || lo < 0xdc00 ||
        lo > 0xdfff) {
        *why = "high surrogate without a low surrogate in \\u escape";
        return 0;
    }
    *cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
    return 11;
}

static char simple_escape(unsigned c) {
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '/':
        return '/';
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    }
    return 0;
}

/* Parses the string at ps->p (a '"') into the arena at ps->out. raw keeps it
 * as JSON text (quotes and escapes verbatim, not NUL-terminated); otherwise
 * it is decoded and NUL-terminated. *out gets the text (len without NUL);
 * ps->out is NOT advanced (the caller keeps or drops the text). */
static int parse_string(parser *ps, bool raw, events_str *out) {
    const unsigned char *p = (const unsigned char *)ps->p + 1;
    const unsigned char *end = (const unsigned char *)ps->end;
    char *o = ps->out;
    if (raw) *o++ = '"';
    for (;;) {
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            *o++ = (char)*p++;
        if (p >= end) return syntax(ps, "unterminated string");
        unsigned c = *p;
        if (c == '"') break;
        ps->p = (const char *)p;
        if (c < 0x20) return syntax(ps, "control character in string");
        if (c >= 0x80) {
            int n = utf8_len(p, end);
            if (!n) return syntax(ps, "invalid UTF-8 in string");
            memcpy(o, p, (size_t)n);
            o += n;
            p += n;
            continue;
        }
        if (p + 1 >= end) return syntax(ps, "unterminated string");
        c = p[1];
        if (c == 'u') {
            unsigned cp;
            const char *why;
            int n = unicode_escape(p + 1, end, &cp, &why);
            if (!n) return syntax(ps, why);
            if (raw)
                memcpy(o, p, (size_t)n + 1), o += n + 1;
            else
                o = put_utf8(o, cp);
            p += n + 1;
            continue;
        }
        char d = simple_escape(c);
        if (!d) return syntax(ps, "bad escape in string");
        if (raw)
            *o++ = '\\', *o++ = (char)c;
        else
            *o++ = d;
        p += 2;
    }
    if (raw)
        *o++ = '"';
    else
        *o = 0;
    ps->p = (const char *)p + 1;
    out->p = ps->out;
    out->len = (uint32_t)(o - ps->out);
    return 0;
}

/* ---- numbers and literals ---------------------------------------------- */

/* Scans a JSON number at ps->p; returns its length (0 = not a number) and
 * whether it has a fraction or exponent. */
static size_t scan_number(const parser *ps, bool *real) {
    const char *p = ps->p, *e = ps->end;
    *real = false;
    if (p < e && *p == '-') p++;
    if (p >= e || *p < '0' || *p > '9') return 0;
    if (*p == '0')
        p++;
    else
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    if (p < e && *p == '.') {
        *real = true;
        if (++p >= e || *p < '0' || *p > '9') return 0;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        *real = true;
        if (++p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return 0;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    return (size_t)(p - ps->p);
}

/* Copies a number verbatim into props, refusing what jansson would refuse. */
static int copy_number(parser *ps) {
    bool real;
    size_t n = scan_number(ps, &real);
    if (!n) return syntax(ps, "invalid number");
    char tmp[128];
    if (n >= sizeof tmp) return syntax(ps, "number longer than 127 characters");
    memcpy(tmp, ps->p, n);
    tmp[n] = 0;
    errno = 0;
    if (real) {
        double d = strtod(tmp, NULL);
        if (isinf(d)) return syntax(ps, "real number overflow");
    } else {
        (void)strtoll(tmp, NULL, 10);
        if (errno == ERANGE) return syntax(ps, "integer out of the 64-bit range");
    }
    memcpy(ps->out, ps->p, n);
    ps->out += n;
    ps->p += n;
    return 0;
}

static int copy_literal(parser *ps) {
    static const char *const lits[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(lits[i]);
        if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, lits[i], n) == 0) {
            memcpy(ps->out, lits[i], n);
            ps->out += n;
            ps->p += n;
            return 0;
        }
    }
    return syntax(ps, "unexpected character");
}

/* Parses an integer field value (ts, customer_id) into *v. */
static int parse_int(parser *ps, int f, int64_t *v) {
    bool real;
    size_t n = scan_number(ps, &real);
    if (!n || real) return field_err(ps, field_names[f], "must be an integer");
    const char *p = ps->p;
    bool neg = *p == '-';
    uint64_t acc = 0;
    for (p += neg; p < ps->p + n; p++) {
        if (acc > (UINT64_C(1) << 62) / 5) return field_err(ps, field_names[f], "is out of range");
        acc = acc * 10 + (uint64_t)(*p - '0');
    }
    if (acc > (uint64_t)INT64_MAX) return field_err(ps, field_names[f], "is out of range");
    *v = neg ? -(int64_t)acc : (int64_t)acc;
    ps->p += n;
    return 0;
}

/* ---- props: validated, compact copy ------------------------------------ */

static int copy_value(parser *ps, int depth);

/* Copies the object or array at ps->p ('{' or '['). */
static int copy_container(parser *ps, int depth) {
    char open = *ps->p, close = open == '{' ? '}' : ']';
    if (depth >= EVENTS_PROPS_DEPTH) return syntax(ps, "props nested too deeply");
    *ps->out++ = open;
    ps->p++;
    if (peek(ps, close)) {
        *ps->out++ = close;
        ps->p++;
        return 0;
    }
    for (;;) {
        int rc;
        if (open == '{') {
            events_str key;
            if (!peek(ps, '"')) return syntax(ps, "expected a string key");
            if ((rc = parse_string(ps, true, &key)) != 0) return rc;
            ps->out += key.len;
            if (!peek(ps, ':')) return syntax(ps, "expected ':'");
            *ps->out++ = ':';
            ps->p++;
        }
        if ((rc = copy_value(ps, depth + 1)) != 0) return rc;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            *ps->out++ = ',';
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            *ps->out++ = close;
            ps->p++;
            return 0;
        }
        return syntax(ps, open == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int copy_value(parser *ps, int depth) {
    skip_ws(ps);
    if (ps->p >= ps->end) return syntax(ps, "unexpected end of input");
    char ch = *ps->p;
    if (ch == '{' || ch == '[') return copy_container(ps, depth);
    if (ch == '"') {
        events_str s;
        int rc = parse_string(ps, true, &s);
        if (rc == 0) ps->out += s.len;
        return rc;
    }
    if (ch == '-' || (ch >= '0' && ch <= '9')) return copy_number(ps);
    return copy_literal(ps);
}

/* ---- items ------------------------------------------------------------- */

/* Decodes the key at ps->p (a '"') and consumes the ':' after it. Returns
 * the field index via *f, or -1 for an unknown key (with *name set to a safe
 * copy for the message). */
static int parse_key(parser *ps, const char *const *names, int count, int *f, char name[48]) {
    events_str k;
    int rc = parse_string(ps, false, &k);
    if (rc != 0) return rc;
    *f = -1;
    for (int i = 0; i < count; i++)
        if (strlen(names[i]) == k.len && memcmp(names[i], k.p, k.len) == 0) *f = i;
    safe_name(name, k.p, k.len);
    if (!peek(ps, ':')) return syntax(ps, "expected ':' after a field name");
    ps->p++;
    skip_ws(ps);
    if (ps->p >= ps->end) return syntax(ps, "unexpected end of input");
    return 0;
}

static bool type_char(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
           ch == ':' || ch == '-';
}

/* A string field: decoded into the arena, kept, length-checked. */
static int parse_str_field(parser *ps, int f, events_str *s, size_t max) {
    if (*ps->p != '"') return field_err(ps, field_names[f], "must be a string");
    int rc = parse_string(ps, false, s);
    if (rc != 0) return rc;
    ps->out += s->len + 1;
    if (s->len == 0) return field_err(ps, field_names[f], "must not be empty");
    if (s->len > max)
        return field_err(ps, field_names[f], "is %u bytes, the limit is %zu", (unsigned)s->len,
                         max);
    return 0;
}

static int parse_props(parser *ps, events_str *s) {
    if (*ps->p != '{') return field_err(ps, "props", "must be an object");
    char *start = ps->out;
    int rc = copy_container(ps, 0);
    if (rc != 0) return rc;
    size_t n = (size_t)(ps->out - start);
    if (n > EVENTS_PROPS_MAX)
        return field_err(ps, "props", "is %zu bytes serialized, the limit is %d", n,
                         EVENTS_PROPS_MAX);
    *ps->out++ = 0;
    s->p = start;
    s->len = (uint32_t)n;
    return 0;
}

static int parse_field(parser *ps, int f, events_item *it) {
    if (*ps->p == 'n' && f != F_IDEM && f != F_TYPE && f != F_TS) { /* optional: null = absent */
        if (ps->end - ps->p < 4 || memcmp(ps->p, "null", 4) != 0)
            return syntax(ps, "unexpected character");
        ps->p += 4;
        return 0;
    }
    switch (f) {
    case F_IDEM:
        return parse_str_field(ps, f, &it->idem_key, EVENTS_IDEM_MAX);
    case F_TYPE: {
        int rc = parse_str_field(ps, f, &it->type, EVENTS_TYPE_MAX);
        if (rc != 0) return rc;
        for (uint32_t i = 0; i < it->type.len; i++)
            if (!type_char(it->type.p[i]))
                return field_err(ps, "type", "may only hold a-z 0-9 _ . : -");
        return 0;
    }
    case F_TS: {
        int rc = parse_int(ps, f, &it->ts);
        if (rc == 0 && (it->ts < EVENTS_TS_MIN || it->ts >= EVENTS_TS_MAX))
            return field_err(ps, "ts",
                             "%lld is not epoch seconds between 2000-01-01 and 2100-01-01",
                             (long long)it->ts);
        return rc;
    }
    case F_CUSTOMER: {
        int rc = parse_int(ps, f, &it->customer_id);
        if (rc == 0 && it->customer_id <= 0)
            return field_err(ps, "customer_id", "must be a positive integer");
        return rc;
    }
    case F_EXTERNAL:
        return parse_str_field(ps, f, &it->external_userid, EVENTS_USERID_MAX);
    case F_EMPLOYEE:
        return parse_str_field(ps, f, &it->employee_userid, EVENTS_USERID_MAX);
    default:
        return parse_props(ps, &it->props);
    }
}

static int check_item(parser *ps, const events_item *it, unsigned seen) {
    if (!it->idem_key.p) return field_err(ps, "idempotency_key", "is required");
    if (!it->type.p) return field_err(ps, "type", "is required");
    if (!(seen & 1u << F_TS)) return field_err(ps, "ts", "is required");
    if (it->customer_id && it->external_userid.p)
        return field_err(ps, "external_userid", "must not be given together with customer_id");
    if (!it->customer_id && !it->external_userid.p)
        return field_err(ps, "customer_id", "or external_userid is required");
    return 0;
}

static int parse_item(parser *ps, events_item *it) {
    memset(it, 0, sizeof *it);
    if (!peek(ps, '{')) return field_err(ps, NULL, "must be an object");
    ps->p++;
    unsigned seen = 0;
    if (peek(ps, '}')) {
        ps->p++;
        return check_item(ps, it, seen);
    }
    for (;;) {
        int f, rc;
        char name[48];
        if (!peek(ps, '"')) return syntax(ps, "expected a field name");
        if ((rc = parse_key(ps, field_names, F_COUNT, &f, name)) != 0) return rc;
        if (f < 0) return field_err(ps, name, "is not a known field");
        if (seen & 1u << f) return field_err(ps, field_names[f], "is given twice");
        seen |= 1u << f;
        ps->field = field_names[f];
        if ((rc = parse_field(ps, f, it)) != 0) return rc;
        ps->field = NULL;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            return check_item(ps, it, seen);
        }
        return syntax(ps, "expected ',' or '}' after a field");
    }
}

/* ---- the batch --------------------------------------------------------- */

static int grow_items(events_batch *b, size_t *cap) {
    size_t ncap = *cap * 2;
    if (ncap > EVENTS_BATCH_MAX) ncap = EVENTS_BATCH_MAX;
    events_item *n = realloc(b->items, ncap * sizeof *n);
    if (!n) return SIYU_ENOMEM;
    b->items = n;
    *cap = ncap;
    return 0;
}

static int parse_events(parser *ps, events_batch *b, size_t cap) {
    if (*ps->p != '[') return field_err(ps, "events", "must be an array");
    ps->p++;
    if (peek(ps, ']')) return field_err(ps, "events", "must hold at least one event");
    for (;;) {
        if (b->n == EVENTS_BATCH_MAX)
            return siyu_err_set(ps->err, SIYU_ETOOBIG, "events", "more than %d events in one batch",
                                EVENTS_BATCH_MAX);
        if (b->n == cap && grow_items(b, &cap) != 0)
            return siyu_err_set(ps->err, SIYU_ENOMEM, NULL, "out of memory");
        ps->item = (long)b->n;
        int rc = parse_item(ps, &b->items[b->n]);
        if (rc != 0) return rc;
        b->n++;
        ps->item = -1;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            return 0;
        }
        ps->field = "events";
        return syntax(ps, "expected ',' or ']' after an event");
    }
}

static int parse_body(parser *ps, events_batch *b, size_t cap) {
    static const char *const top[] = {"events"};
    if (!peek(ps, '{')) return field_err(ps, NULL, "request body must be a JSON object");
    ps->p++;
    bool seen = false;
    if (!peek(ps, '}')) {
        for (;;) {
            int f, rc;
            char name[48];
            if (!peek(ps, '"')) return syntax(ps, "expected a field name");
            if ((rc = parse_key(ps, top, 1, &f, name)) != 0) return rc;
            if (f < 0) return field_err(ps, name, "is not a known field");
            if (seen) return field_err(ps, "events", "is given twice");
            seen = true;
            if ((rc = parse_events(ps, b, cap)) != 0) return rc;
            if (peek(ps, ',')) {
                ps->p++;
                continue;
            }
            if (!peek(ps, '}')) return syntax(ps, "expected ',' or '}'");
            break;
        }
    }
    ps->p++;
    skip_ws(ps);
    if (ps->p != ps->end) return syntax(ps, "unexpected data after the JSON object");
    if (!seen) return field_err(ps, "events", "is required");
    return 0;
}

int64_t events_idem_hash(const char *key, size_t len) {
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3u;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb1b1fe1a85ecu;
    h ^= h >> 33;
    return (int64_t)h;
}

/* qsort_r comparator over item indices: by idem_hash, then by index. */
static int hash_cmp(const void *a, const void *b, void *ctx) {
    const events_item *items = ctx;
    uint16_t i = *(const uint16_t *)a, j = *(const uint16_t *)b;
    int64_t x = items[i].idem_hash, y = items[j].idem_hash;
    if (x != y) return x < y ? -1 : 1;
    return (i > j) - (i < j);
}

static int plan_order(events_batch *b) {
    b->hash_order = malloc(b->n * sizeof *b->hash_order);
    if (!b->hash_order) return SIYU_ENOMEM;
    for (size_t i = 0; i < b->n; i++) {
        b->hash_order[i] = (uint16_t)i;
        b->items[i].idem_hash = events_idem_hash(b->items[i].idem_key.p, b->items[i].idem_key.len);
    }
    qsort_r(b->hash_order, b->n, sizeof *b->hash_order, hash_cmp, b->items);
    return 0;
}

int events_batch_parse(const char *json, size_t len, events_batch *out, siyu_err *err) {
    memset(out, 0, sizeof *out);
    size_t cap = len / 64 + 1;
    if (cap > EVENTS_BATCH_MAX) cap = EVENTS_BATCH_MAX;
    out->items = malloc(cap * sizeof *out->items);
    out->arena = malloc(len + 1);
    if (!out->items || !out->arena) {
        events_batch_free(out);
        return siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    }
    out->arena_cap = len + 1;
    parser ps = {
        .s = json, .p = json, .end = json + len, .out = out->arena, .err = err, .item = -1};
    int rc = parse_body(&ps, out, cap);
    if (rc == 0 && plan_order(out) != 0) rc = siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    if (rc != 0) {
        events_batch_free(out);
        return rc;
    }
    out->arena_len = (size_t)(ps.out - out->arena);
    return 0;
}

void events_batch_free(events_batch *b) {
    if (!b) return;
    free(b->items);
    free(b->hash_order);
    free(b->arena);
    memset(b, 0, sizeof *b);
}

/* ---- validation -------------------------------------------------------- */

static bool str_ok(const events_batch *b, events_str s, size_t min, size_t max) {
    if (!s.p) return min == 0;
    if (s.p < b->arena || s.p + s.len >= b->arena + b->arena_len) return false;
    return s.len >= min && s.len <= max && s.p[s.len] == 0 && memchr(s.p, 0, s.len) == NULL;
}

static bool item_ok(const events_batch *b, const events_item *it, const char **why) {
    *why = "idempotency_key out of bounds";
    if (!str_ok(b, it->idem_key, 1, EVENTS_IDEM_MAX)) return false;
    *why = "type out of bounds or with a bad character";
    if (!str_ok(b, it->type, 1, EVENTS_TYPE_MAX)) return false;
    for (uint32_t k = 0; k < it->type.len; k++)
        if (!type_char(it->type.p[k])) return false;
    *why = "ts out of range";
    if (it->ts < EVENTS_TS_MIN || it->ts >= EVENTS_TS_MAX) return false;
    *why = "not exactly one of customer_id and external_userid";
    if (it->customer_id < 0 || (it->customer_id > 0) == (it->external_userid.p != NULL))
        return false;
    *why = "external_userid or employee_userid out of bounds";
    if (!str_ok(b, it->external_userid, 0, EVENTS_USERID_MAX) ||
        !str_ok(b, it->employee_userid, 0, EVENTS_USERID_MAX) ||
        (it->external_userid.p && it->external_userid.len == 0) ||
        (it->employee_userid.p && it->employee_userid.len == 0))
        return false;
    *why = "props out of bounds or not an object";
    if (it->props.p && (!str_ok(b, it->props, 2, EVENTS_PROPS_MAX) || it->props.p[0] != '{' ||
                        it->props.p[it->props.len - 1] != '}'))
        return false;
    return true;
}

bool events_batch_validate(const events_batch *b, const char **why) {
    const char *dummy;
    if (!why) why = &dummy;
    *why = "batch size out of range";
    if (!b || !b->items || b->n < 1 || b->n > EVENTS_BATCH_MAX) return false;
    *why = "arena overrun";
    if (!b->arena || b->arena_len > b->arena_cap) return false;
    for (size_t i = 0; i < b->n; i++)
        if (!item_ok(b, &b->items[i], why)) return false;
    *why = "idem_hash is not the key's hash, or hash order is not a sorted permutation";
    if (!b->hash_order) return false;
    unsigned char seen[EVENTS_BATCH_MAX] = {0};
    for (size_t i = 0; i < b->n; i++) {
        const events_item *it = &b->items[i];
        if (it->idem_hash != events_idem_hash(it->idem_key.p, it->idem_key.len)) return false;
        if (b->hash_order[i] >= b->n || seen[b->hash_order[i]]++) return false;
        if (i && hash_cmp(&b->hash_order[i - 1], &b->hash_order[i], b->items) >= 0) return false;
    }
    *why = NULL;
    return true;
}

#ifndef SIYU_EVENTS_PARSER_ONLY
/* ---- the write step ---------------------------------------------------- */

#include "store/audit.h"
#include "store/store.h"
#include "store/tag_rule.h"

/* Rows per multi-row INSERT: one statement per 64 rows costs about a third
 * less per row than single-row statements; tails use 8 and then 1. */
static const int chunk_rows[] = {64, 8, 1};
#define NCHUNK 3
#define COLS_PER_ROW 7

typedef struct event_stmts {
    sqlite3_stmt *insert[NCHUNK], *by_external, *new_customer, *new_identity, *employee;
    sqlite3_stmt *slot, *overflow_get, *overflow_put;
} event_stmts;

/* The previous item's employee, reused when the next item repeats it. */
typedef struct event_memo {
    events_str employee_userid;
    int64_t employee;
} event_memo;

/* "INSERT ... VALUES(?1,?,?,?,?,'api',?,?,?),..." for rows rows: ?1 is the
 * tenant, row r's columns are parameters 2 + r*COLS_PER_ROW onwards. */
static void insert_sql(int rows, char *buf, size_t cap) {
    size_t n =
        (size_t)snprintf(buf, cap,
                         "INSERT OR IGNORE INTO event(tenant_id, customer_id, "
                         "type, ts, employee_id, source, idem_key, idem_hash, props) VALUES");
    for (int r = 0; r < rows && n < cap; r++)
        n += (size_t)snprintf(buf + n, cap - n, "%s(?1,?,?,?,?,'api',?,?,?)", r ? "," : "");
}

static int stmts_get(store_conn *c, int64_t tenant, event_stmts *s) {
    char sql[64 * 34 + 160];
    for (int k = 0; k < NCHUNK; k++) {
        insert_sql(chunk_rows[k], sql, sizeof sql);
        s->insert[k] = store_conn_stmt(c, sql);
    }
    s->by_external = store_conn_stmt(c, "SELECT customer_id FROM identity WHERE tenant_id=?1 AND "
                                        "kind='wecom_external_userid' AND value=?2");
    s->new_customer = store_conn_stmt(c, "INSERT INTO customer(tenant_id, external_userid, "
                                         "created_at, updated_at) VALUES(?1,?2,?3,?3)");
    s->new_identity = store_conn_stmt(c, "INSERT INTO identity(tenant_id, customer_id, kind, "
                                         "value, created_at) "
                                         "VALUES(?1,?2,'wecom_external_userid',?3,?4)");
    s->employee = store_conn_stmt(c, "SELECT id FROM employee WHERE tenant_id=?1 AND userid=?2");
    s->slot = store_conn_stmt(c, "SELECT id, idem_key FROM event WHERE tenant_id=?1 AND "
                                 "idem_hash=?2");
    s->overflow_get = store_conn_stmt(c, "SELECT event_id FROM event_idem_overflow WHERE "
                                         "tenant_id=?1 AND idem_key=?2");
    s->overflow_put = store_conn_stmt(c, "INSERT INTO event_idem_overflow(tenant_id, idem_key, "
                                         "event_id) VALUES(?1,?2,?3)");
    sqlite3_stmt *all[] = {s->insert[0],    s->insert[1],    s->insert[2], s->by_external,
                           s->new_customer, s->new_identity, s->employee,  s->slot,
                           s->overflow_get, s->overflow_put};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        if (!all[i]) return SIYU_EIO;
        sqlite3_bind_int64(all[i], 1, tenant); /* ?1 is the tenant in each */
    }
    return 0;
}

/* A 400 naming events[i].field, stored in b->err. */
static int item_err(events_batch *b, size_t i, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int item_err(events_batch *b, size_t i, const char *field, const char *fmt, ...) {
    char f[64], what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(f, sizeof f, "events[%zu].%s", i, field);
    return siyu_err_set(&b->err, SIYU_EINVAL, f, "%s %s", f, what);
}

static bool str_eq(events_str a, events_str b) {
    return a.p && b.p && a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

/* Runs a one-column lookup; 0 with *id (0 = no row) or a SIYU_E* code. */
static int lookup_id(sqlite3_stmt *st, int64_t *id) {
    *id = 0;
    int rc = store_stmt_query_id(st, id, NULL);
    return rc == 1 ? 0 : rc;
}

/* Checks every customer_id of the batch in one statement: the ids travel as
 * a JSON array indexed like the items (null for external_userid items) and
 * the first index whose customer is not the tenant's is the error. */
static int check_customer_ids(store_conn *c, events_batch *b) {
    size_t cap = b->n * 21 + 3, len = 0;
    bool any = false;
    char *ids = malloc(cap);
    if (!ids) return SIYU_ENOMEM;
    ids[len++] = '[';
    for (size_t i = 0; i < b->n; i++) {
        int64_t id = b->items[i].customer_id;
        any |= id != 0;
        len += id ? (size_t)snprintf(ids + len, cap - len, "%s%lld", i ? "," : "", (long long)id)
                  : (size_t)snprintf(ids + len, cap - len, "%snull", i ? "," : "");
    }
    ids[len++] = ']';
    int rc = 0;
    sqlite3_stmt *st = any ? store_conn_stmt(c, "SELECT j.key, j.value FROM json_each(?2) j "
                                                "WHERE j.value IS NOT NULL AND NOT EXISTS "
                                                "(SELECT 1 FROM customer c WHERE c.id=j.value "
                                                "AND c.tenant_id=?1) ORDER BY j.key LIMIT 1")
                           : NULL;
    if (any && !st) rc = SIYU_EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, b->tenant_id);
        sqlite3_bind_text(st, 2, ids, (int)len, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            rc = item_err(b, (size_t)sqlite3_column_int64(st, 0), "customer_id",
                          "customer %lld does not exist", (long long)sqlite3_column_int64(st, 1));
        else if (src != SQLITE_DONE)
            rc = store_rc(src);
        sqlite3_reset(st);
    }
    free(ids);
    for (size_t i = 0; rc == 0 && i < b->n; i++)
        b->items[i].customer = b->items[i].customer_id;
    return rc;
}

static int create_customer(store_conn *c, const event_stmts *s, events_batch *b, events_str ext,
                           int64_t *id) {
    int64_t now = siyu_now();
    sqlite3_bind_text(s->new_customer, 2, ext.p, (int)ext.len, SQLITE_STATIC);
    sqlite3_bind_int64(s->new_customer, 3, now);
    int rc = sqlite3_step(s->new_customer);
    sqlite3_reset(s->new_customer);
    if (rc != SQLITE_DONE) return store_rc(rc);
    *id = store_conn_last_id(c);
    sqlite3_bind_int64(s->new_identity, 2, *id);
    sqlite3_bind_text(s->new_identity, 3, ext.p, (int)ext.len, SQLITE_STATIC);
    sqlite3_bind_int64(s->new_identity, 4, now);
    rc = sqlite3_step(s->new_identity);
    sqlite3_reset(s->new_identity);
    if (rc != SQLITE_DONE) return store_rc(rc);
    b->customers_created++;
    return 0;
}

static int resolve_employee(const event_stmts *s, events_batch *b, size_t i, event_memo *m) {
    events_item *it = &b->items[i];
    if (str_eq(it->employee_userid, m->employee_userid)) return it->employee = m->employee, 0;
    sqlite3_bind_text(s->employee, 2, it->employee_userid.p, (int)it->employee_userid.len,
                      SQLITE_STATIC);
    int rc = lookup_id(s->employee, &it->employee);
    if (rc != 0) return rc;
    if (!it->employee) return item_err(b, i, "employee_userid", "names no employee of this tenant");
    m->employee_userid = it->employee_userid;
    m->employee = it->employee;
    return 0;
}

/* qsort_r comparator over item indices: by external_userid bytes, then by
 * index. */
static int external_cmp(const void *a, const void *b, void *ctx) {
    const events_item *items = ctx;
    uint16_t i = *(const uint16_t *)a, j = *(const uint16_t *)b;
    events_str x = items[i].external_userid, y = items[j].external_userid;
    int c = memcmp(x.p, y.p, x.len < y.len ? x.len : y.len);
    if (c == 0) c = x.len < y.len ? -1 : x.len > y.len;
    return c ? c : (i > j) - (i < j);
}

/* external_userid -> customer (through its identity row) for every item
 * that names one: each distinct external_userid is looked up once, in
 * sorted order (adjacent lookups touch adjacent index pages); then, in input
 * order, a customer is created for each one the tenant has never seen, and
 * given to every item naming it. */
static int resolve_externals(store_conn *c, const event_stmts *s, events_batch *b) {
    uint16_t ext[EVENTS_BATCH_MAX], pos[EVENTS_BATCH_MAX];
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].external_userid.p) ext[n++] = (uint16_t)i;
    qsort_r(ext, n, sizeof *ext, external_cmp, b->items);
    for (size_t k = 0; k < n; k++) {
        events_item *it = &b->items[ext[k]];
        pos[ext[k]] = (uint16_t)k;
        if (k && str_eq(it->external_userid, b->items[ext[k - 1]].external_userid)) {
            it->customer = b->items[ext[k - 1]].customer;
            continue;
        }
        sqlite3_bind_text(s->by_external, 2, it->external_userid.p, (int)it->external_userid.len,
                          SQLITE_STATIC);
        int rc = lookup_id(s->by_external, &it->customer);
        if (rc != 0) return rc;
    }
    for (size_t i = 0; i < b->n; i++) {
        events_item *it = &b->items[i];
        if (!it->external_userid.p || it->customer) continue;
        int64_t id = 0;
        int rc = create_customer(c, s, b, it->external_userid, &id);
        if (rc != 0) return rc;
        size_t lo = pos[i], hi = pos[i];
        while (lo > 0 && str_eq(b->items[ext[lo - 1]].external_userid, it->external_userid))
            lo--;
        while (hi + 1 < n && str_eq(b->items[ext[hi + 1]].external_userid, it->external_userid))
            hi++;
        for (size_t k = lo; k <= hi; k++)
            b->items[ext[k]].customer = id;
    }
    return 0;
}

static int resolve_all(store_conn *c, const event_stmts *s, events_batch *b) {
    event_memo m = {0};
    int rc = check_customer_ids(c, b);
    if (rc == 0) rc = resolve_externals(c, s, b);
    for (size_t i = 0; rc == 0 && i < b->n; i++) {
        events_item *it = &b->items[i];
        it->employee = 0;
        if (it->employee_userid.p) rc = resolve_employee(s, b, i, &m);
    }
    return rc;
}

/* Binds item it as the row whose first column is parameter p; hashed false
 * stores a NULL idem_hash (the key is then kept in event_idem_overflow). */
static void bind_row(sqlite3_stmt *st, int p, const events_item *it, bool hashed) {
    sqlite3_bind_int64(st, p, it->customer);
    sqlite3_bind_text(st, p + 1, it->type.p, (int)it->type.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, p + 2, it->ts);
    if (it->employee)
        sqlite3_bind_int64(st, p + 3, it->employee);
    else
        sqlite3_bind_null(st, p + 3);
    sqlite3_bind_text(st, p + 4, it->idem_key.p, (int)it->idem_key.len, SQLITE_STATIC);
    if (hashed)
        sqlite3_bind_int64(st, p + 5, it->idem_hash);
    else
        sqlite3_bind_null(st, p + 5);
    if (it->props.p)
        sqlite3_bind_text(st, p + 6, it->props.p, (int)it->props.len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, p + 6);
}

/* Inserts one row with the single-row statement; *id is its rowid. */
static int insert_one(store_conn *c, const event_stmts *s, const events_item *it, bool hashed,
                      int64_t *id) {
    sqlite3_stmt *st = s->insert[NCHUNK - 1];
    bind_row(st, 2, it, hashed);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return store_rc(rc);
    if (store_conn_changes(c) != 1) return SIYU_EIO;
    *id = store_conn_last_id(c);
    return 0;
}

/* The row holding it's hash in the idempotency index: *id (0 = none) and
 * whether its key is it's key. */
static int slot_get(const event_stmts *s, const events_item *it, int64_t *id, bool *same) {
    sqlite3_bind_int64(s->slot, 2, it->idem_hash);
    int rc = sqlite3_step(s->slot);
    *id = 0;
    *same = false;
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(s->slot, 0);
        const void *k = sqlite3_column_blob(s->slot, 1);
        *same = (size_t)sqlite3_column_bytes(s->slot, 1) == it->idem_key.len &&
                (it->idem_key.len == 0 || (k && memcmp(k, it->idem_key.p, it->idem_key.len) == 0));
    }
    sqlite3_reset(s->slot);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_rc(rc);
}

/* An item whose hash is taken: by an earlier item of the batch or by a
 * stored event. Same key: a duplicate. A different key (a true hash
 * collision): the key's uniqueness is then kept by event_idem_overflow, and
 * the event is stored with a NULL hash. Events are never deleted, so the
 * holder of a hash never changes and a key that collided once always takes
 * this path again. */
static int store_taken(store_conn *c, const event_stmts *s, events_batch *b,
                       const events_item *it) {
    int64_t id;
    bool same;
    int rc = slot_get(s, it, &id, &same);
    if (rc != 0 || same) return rc;
    if (!id) { /* the hash is free after all */
        if ((rc = insert_one(c, s, it, true, &id)) == 0) b->accepted++;
        return rc;
    }
    sqlite3_bind_text(s->overflow_get, 2, it->idem_key.p, (int)it->idem_key.len, SQLITE_STATIC);
    rc = lookup_id(s->overflow_get, &id);
    if (rc != 0 || id) return rc;
    if ((rc = insert_one(c, s, it, false, &id)) != 0) return rc;
    sqlite3_bind_text(s->overflow_put, 2, it->idem_key.p, (int)it->idem_key.len, SQLITE_STATIC);
    sqlite3_bind_int64(s->overflow_put, 3, id);
    rc = sqlite3_step(s->overflow_put);
    sqlite3_reset(s->overflow_put);
    if (rc != SQLITE_DONE) return store_rc(rc);
    b->accepted++;
    return 0;
}

/* After a chunk inserted fewer rows than it had: each of its items whose
 * hash slot is not one of the rows just inserted (rowids last-changed+1 ..
 * last, contiguous as this is the only writer) goes through store_taken. */
static int chunk_conflicts(store_conn *c, const event_stmts *s, events_batch *b,
                           const uint16_t *items, int rows, int changed) {
    int64_t last = changed ? store_conn_last_id(c) : 0;
    for (int r = 0; r < rows; r++) {
        const events_item *it = &b->items[items[r]];
        int64_t id;
        bool same;
        int rc = slot_get(s, it, &id, &same);
        if (rc != 0) return rc;
        if (id && same && id > last - changed && id <= last) continue; /* inserted now */
        if ((rc = store_taken(c, s, b, it)) != 0) return rc;
    }
    return 0;
}

/* qsort_r comparator over item indices: by customer, ts, then index. */
static int customer_cmp(const void *a, const void *b, void *ctx) {
    const events_item *items = ctx;
    uint16_t i = *(const uint16_t *)a, j = *(const uint16_t *)b;
    const events_item *x = &items[i], *y = &items[j];
    if (x->customer != y->customer) return x->customer < y->customer ? -1 : 1;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return (i > j) - (i < j);
}

/* Inserts every item (resolved): in hash order, items whose hash repeats the
 * previous item's are set aside and checked one by one after the others;
 * the rest go in multi-row INSERT OR IGNORE chunks sorted by (customer, ts),
 * so the timeline index is filled in order, and a chunk that inserted fewer
 * rows than it had is checked row by row. Counts what was new. */
static int insert_all(store_conn *c, const event_stmts *s, events_batch *b) {
    sqlite3 *db = store_conn_db(c);
    uint16_t bulk[EVENTS_BATCH_MAX], later[EVENTS_BATCH_MAX];
    size_t nbulk = 0, nlater = 0;
    for (size_t i = 0; i < b->n; i++) {
        uint16_t k = b->hash_order[i];
        if (i && b->items[b->hash_order[i - 1]].idem_hash == b->items[k].idem_hash)
            later[nlater++] = k;
        else
            bulk[nbulk++] = k;
    }
    qsort_r(bulk, nbulk, sizeof *bulk, customer_cmp, b->items);
    for (size_t i = 0; i < nbulk;) {
        int k = 0;
        while ((size_t)chunk_rows[k] > nbulk - i)
            k++;
        sqlite3_stmt *st = s->insert[k];
        for (int r = 0; r < chunk_rows[k]; r++)
            bind_row(st, 2 + r * COLS_PER_ROW, &b->items[bulk[i + (size_t)r]], true);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) return store_rc(rc);
        int changed = sqlite3_changes(db);
        b->accepted += (size_t)changed;
        if (changed < chunk_rows[k] &&
            (rc = chunk_conflicts(c, s, b, &bulk[i], chunk_rows[k], changed)) != 0)
            return rc;
        i += (size_t)chunk_rows[k];
    }
    for (size_t i = 0; i < nlater; i++) {
        int rc = store_taken(c, s, b, &b->items[later[i]]);
        if (rc != 0) return rc;
    }
    b->duplicates = b->n - b->accepted;
    return 0;
}

/* Auto-tag rules (store/tag_rule.h) on keyword and event-count triggers:
 * loaded once per batch; a tenant without such rules pays one index probe.
 * A repeated key is evaluated again, which applies nothing new (tags are
 * never re-applied; counts read the stored events). */
static int tag_rules_apply(store_conn *c, events_batch *b) {
    tag_rule_set *rs;
    int rc = tag_rule_set_load(c, b->tenant_id, TAG_TRIGGER_KEYWORD | TAG_TRIGGER_EVENT_COUNT, &rs);
    unsigned kick = 0; /* mark_tag rows wait for the workers' next poll */
    for (size_t i = 0; rs && rc == 0 && i < b->n; i++) {
        const events_item *it = &b->items[i];
        rc = tag_rule_on_event(c, rs, it->customer, 0, it->type.p, it->props.p, it->ts, &kick);
    }
    tag_rule_set_free(rs);
    return rc;
}

int events_batch_store(store_conn *c, void *arg) {
    events_batch *b = arg;
    event_stmts s;
    b->accepted = b->duplicates = b->customers_created = 0;
    siyu_err_clear(&b->err);
    int rc = stmts_get(c, b->tenant_id, &s);
    if (rc == 0) rc = resolve_all(c, &s, b);
    if (rc == 0) rc = insert_all(c, &s, b);
    if (rc == 0) rc = tag_rules_apply(c, b);
    if (rc != 0) {
        b->accepted = b->duplicates = b->customers_created = 0;
        return rc;
    }
    char detail[96];
    snprintf(detail, sizeof detail, "accepted=%zu duplicates=%zu customers_created=%zu",
             b->accepted, b->duplicates, b->customers_created);
    return store_audit(c, b->tenant_id, b->actor, "event.ingest", NULL, (int64_t)b->accepted,
                       detail);
}
#endif
