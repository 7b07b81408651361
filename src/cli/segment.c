/* segment.c — `siyu segment count|list|export EXPR`: a segment from the
 * shell, either in this process against a data directory (the store opened
 * without a writer thread, a segment service built from it; the server may
 * be running) or through a running server's API (POST /api/v1/segments/...
 * with the token's tenant and scope).
 *
 * Output: count prints the number (--json: count, elapsed_ms, expr); list
 * prints one tab-separated line per customer (id, sort value, external_userid,
 * name; --json: one JSON object per line), paging through the result up to
 * --limit; export writes the file (--out, else stdout). Exit status: 0, 1 on
 * a failure, 2 on bad usage or a bad expression (the parser's message, with
 * the caret, on stderr). */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "http/http.h"
#include "segment/export.h"
#include "segment/segsvc.h"
#include "store/audit.h"
#include "store/store.h"
#include "util/log.h"

static const char segment_usage[] =
    "usage: siyu segment count|list|export EXPR [--data DIR --tenant ID | --server URL\n"
    "                                             [--token TOKEN]] [options]\n"
    "  EXPR is a segment expression (docs/SEGMENTS.md), e.g. 'tag(\"VIP\") and spent > 1000';\n"
    "  \"\" means every customer.\n"
    "  --data DIR      work on the data directory in this process (default $SIYU_DATA or\n"
    "                  ./data; the server may be running); needs --tenant\n"
    "  --tenant ID     the tenant (with --data)\n"
    "  --server URL    ask a running server (http://host:port) instead; the token's tenant\n"
    "                  and data scope apply\n"
    "  --token TOKEN   the API token for --server; better given as SIYU_TOKEN in the\n"
    "                  environment, which keeps it out of the process list\n"
    "  --json          count and list: print JSON\n"
    "  list:   --sort id|spent|orders_total|first_added|last_active|last_message (default id)\n"
    "          --order asc|desc (default asc for id, desc otherwise)  --limit N (default 50)\n"
    "  export: --format csv|xlsx|phone_md5|phone_sha256 (default csv)  --out FILE (default\n"
    "          stdout); exports are recorded in the audit log\n"
    "  Exit status: 0 ok, 1 failed, 2 bad usage or a bad expression.\n";

typedef enum { OP_COUNT, OP_LIST, OP_EXPORT } seg_cmd;

typedef struct seg_args {
    seg_cmd cmd;
    const char *expr;
    const char *data, *server, *token, *out, *sort, *order;
    int64_t tenant;
    long limit;
    bool json;
    export_format fmt;
} seg_args;

static const char *const sort_names[] = {"id",          "spent",       "orders_total",
                                         "first_added", "last_active", "last_message"};
#define NSORT (sizeof sort_names / sizeof *sort_names)

static int usage_error(const char *fmt, const char *arg) __attribute__((format(printf, 1, 0)));
static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "siyu segment: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", segment_usage);
    return 2;
}

/* The sort as an engine_sort, or -1. */
static int sort_parse(const char *s) {
    for (size_t i = 0; i < NSORT; i++)
        if (!strcmp(sort_names[i], s)) return (int)i;
    return -1;
}

/* ---- output helpers ---- */

static int file_sink(void *arg, const void *data, size_t len) {
    return fwrite(data, 1, len, (FILE *)arg) == len ? 0 : SIYU_EIO;
}

/* The sort value as list prints it: yuan for spent, seconds for times, "-"
 * when absent; "" for sort by id. */
static void sort_text(int sort, int64_t key, char out[32]) {
    if (sort == ENGINE_SORT_ID)
        out[0] = 0;
    else if (sort == ENGINE_SORT_SPENT)
        snprintf(out, 32, "%.2f", (double)key / 100.0);
    else if (key == ENGINE_NONE)
        snprintf(out, 32, "-");
    else
        snprintf(out, 32, "%lld", (long long)key);
}

/* Prints one listed customer (TSV, or a JSON line). */
static void print_item(bool json, int64_t id, const char *sortv, const char *ext,
                       const char *name) {
    if (json) {
        json_t *j = json_pack("{s:I,s:s?,s:s?,s:s?}", "id", (json_int_t)id, "sort_value",
                              sortv && *sortv ? sortv : NULL, "external_userid", ext, "name", name);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(j);
        return;
    }
    printf("%lld\t%s\t%s\t%s\n", (long long)id, sortv ? sortv : "", ext ? ext : "",
           name ? name : "");
}

/* ---- in process (--data) ---- */

typedef struct local {
    store *st;
    segsvc *seg;
    http_auth auth;
} local;

/* Prints the page rows[0..n) with names from one query. */
static int local_print_page(local *l, const seg_args *a, int sort, const engine_row *rows,
                            size_t n) {
    store_conn *c = store_reader_acquire(l->st);
    if (!c) return SIYU_EIO;
    char *ids = malloc(n * 21 + 3);
    if (!ids) {
        store_reader_release(l->st, c);
        return SIYU_ENOMEM;
    }
    size_t k = 0;
    ids[k++] = '[';
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(ids + k, "%s%lld", i ? "," : "", (long long)rows[i].customer_id);
    ids[k++] = ']';
    ids[k] = 0;
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT j.value, c.external_userid, c.name FROM json_each(?2) j LEFT JOIN customer c "
           "ON c.tenant_id=?1 AND c.id=j.value ORDER BY j.key");
    int rc = st ? 0 : SIYU_EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, l->auth.tenant_id);
        sqlite3_bind_text(st, 2, ids, (int)k, SQLITE_STATIC);
        for (size_t i = 0; i < n && sqlite3_step(st) == SQLITE_ROW; i++) {
            char sv[32];
            sort_text(sort, rows[i].key, sv);
            print_item(a->json, rows[i].customer_id, sv, (const char *)sqlite3_column_text(st, 1),
                       (const char *)sqlite3_column_text(st, 2));
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    free(ids);
    store_reader_release(l->st, c);
    return rc;
}

static int local_list(local *l, const seg_args *a, const segsvc_result *res, siyu_err *err) {
    int sort = a->sort ? sort_parse(a->sort) : ENGINE_SORT_ID;
    bool desc = a->order ? !strcmp(a->order, "desc") : sort != ENGINE_SORT_ID;
    engine_row rows[1000], after;
    long left = a->limit;
    bool have_after = false;
    while (left > 0 && res->count > 0) {
        size_t n = 0, want = left < 1000 ? (size_t)left : 1000;
        int rc = segsvc_page(l->seg, l->auth.tenant_id, res, (engine_sort)sort, desc,
                             have_after ? &after : NULL, want, rows, &n, err);
        if (rc) return rc;
        if (n == 0) break;
        rc = local_print_page(l, a, sort, rows, n);
        if (rc) return siyu_err_set(err, rc, NULL, "reading the customers failed");
        after = rows[n - 1];
        have_after = true;
        left -= (long)n;
        if (n < want) break;
    }
    return 0;
}

typedef struct audit_arg {
    int64_t tenant, count;
    const char *detail;
} audit_arg;

static int audit_step(store_conn *c, void *arg) {
    audit_arg *x = arg;
    return store_audit(c, x->tenant, "cli", "segment.export", "segment:adhoc", x->count, x->detail);
}

static int local_export(local *l, const seg_args *a, const segsvc_result *res, siyu_err *err) {
    char detail[64];
    snprintf(detail, sizeof detail, "format=%s", export_format_name(a->fmt));
    audit_arg x = {l->auth.tenant_id, (int64_t)res->count, detail};
    int rc = store_write(l->st, audit_step, &x);
    if (rc) return siyu_err_set(err, rc, NULL, "cannot record the export in the audit log");
    FILE *f = a->out ? fopen(a->out, "wb") : stdout;
    if (!f) return siyu_err_set(err, SIYU_EIO, NULL, "cannot write %s", a->out);
    export_writer *w = NULL;
    rc = export_writer_create(a->fmt, file_sink, f, NULL, &w, err);
    if (!rc) rc = export_segment_write(l->seg, l->st, l->auth.tenant_id, res, w, NULL, err);
    if (!rc)
        fprintf(stderr, "siyu segment: exported %llu rows\n",
                (unsigned long long)export_writer_rows(w));
    export_writer_free(w);
    if (fflush(f) != 0 && !rc) rc = siyu_err_set(err, SIYU_EIO, NULL, "writing the export failed");
    if (a->out) {
        fclose(f);
        if (rc) unlink(a->out); /* no half file */
    }
    return rc;
}

static int run_local(const seg_args *a) {
    log_set_level(LOG_WARN);
    /* Parse first: a bad expression is a usage error with the caret. */
    expr_node *n = NULL;
    expr_err pe;
    size_t len = strlen(a->expr);
    char *canonical = NULL;
    if (len) {
        if (expr_parse(a->expr, len, &n, &pe) != 0) {
            fprintf(stderr, "siyu segment: %s\n", pe.text);
            return 2;
        }
        canonical = expr_print(n, NULL);
        expr_free(n);
    }
    siyu_err err = {0};
    store_options so = {.writer_thread = false};
    local l = {.auth = {.tenant_id = a->tenant, .role = ROLE_ADMIN}};
    l.st = store_open(a->data, &so, &err);
    if (!l.st) {
        fprintf(stderr, "siyu segment: %s\n", err.msg);
        free(canonical);
        return 1;
    }
    int rc = segsvc_open(l.st, &l.seg, &err);
    segsvc_result res;
    memset(&res, 0, sizeof res);
    if (!rc) rc = segsvc_eval(l.seg, &l.auth, a->expr, len, siyu_now(), &res, &err);
    if (rc == SIYU_ENOTFOUND) {
        rc = 0; /* the tenant has no engine (no customers): an empty result */
        res.bm = roaring_bitmap_create();
    }
    int status = 0;
    if (rc) {
        fprintf(stderr, "siyu segment: %s\n", err.msg[0] ? err.msg : siyu_strerror(rc));
        status = rc == SIYU_EINVAL || rc == SIYU_ETOOBIG ? 2 : 1;
    } else if (a->cmd == OP_COUNT) {
        if (a->json) {
            json_t *j = json_pack("{s:I,s:f,s:s}", "count", (json_int_t)res.count, "elapsed_ms",
                                  (double)res.eval_us / 1000.0, "expr", canonical ? canonical : "");
            char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
            printf("%s\n", s ? s : "{}");
            free(s);
            json_decref(j);
        } else
            printf("%llu\n", (unsigned long long)res.count);
    } else {
        rc = a->cmd == OP_LIST ? local_list(&l, a, &res, &err) : local_export(&l, a, &res, &err);
        if (rc) {
            fprintf(stderr, "siyu segment: %s\n", err.msg[0] ? err.msg : siyu_strerror(rc));
            status = 1;
        }
    }
    segsvc_result_free(&res);
    segsvc_close(l.seg);
    store_close(l.st);
    free(canonical);
    return status;
}

/* ---- through a server (--server) ---- */

typedef struct remote_body {
    FILE *out; /* 200 answers of an export go here */
    char *buf; /* everything else is collected */
    size_t len;
    CURL *curl;
    bool ok_stream; /* decided on the first byte */
    bool decided;
    bool failed;
} remote_body;

static size_t remote_write(char *p, size_t sz, size_t n, void *u) {
    remote_body *b = u;
    size_t len = sz * n;
    if (!b->decided) {
        long status = 0;
        curl_easy_getinfo(b->curl, CURLINFO_RESPONSE_CODE, &status);
        b->ok_stream = b->out && status == 200;
        b->decided = true;
    }
    if (b->ok_stream) {
        if (fwrite(p, 1, len, b->out) != len) {
            b->failed = true;
            return 0;
        }
        return len;
    }
    if (b->len + len > (1u << 24)) return 0; /* a JSON answer is never this big */
    char *nb = realloc(b->buf, b->len + len + 1);
    if (!nb) return 0;
    b->buf = nb;
    memcpy(b->buf + b->len, p, len);
    b->len += len;
    b->buf[b->len] = 0;
    return len;
}

/* POSTs body to path; JSON answers land in *reply (NULL when not JSON), an
 * export's 200 body in out. Returns the HTTP status, 0 on a transport
 * error. */
static long remote_post(const seg_args *a, const char *path, json_t *body, FILE *out,
                        json_t **reply) {
    *reply = NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    CURL *c = curl_easy_init();
    if (!text || !c) {
        free(text);
        if (c) curl_easy_cleanup(c);
        return 0;
    }
    char url[1024], auth[512];
    snprintf(url, sizeof url, "%s%s", a->server, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", a->token);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    remote_body b = {.out = out, .curl = c};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, remote_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    long status = 0;
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK && !b.failed)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        fprintf(stderr, "siyu segment: %s: %s\n", a->server,
                b.failed ? "writing the output failed" : curl_easy_strerror(cc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(text);
    if (b.buf) *reply = json_loadb(b.buf, b.len, 0, NULL);
    free(b.buf);
    return status;
}

/* Reports a non-success answer; 2 for a bad expression or request, else 1. */
static int remote_error(long status, const json_t *reply) {
    const json_t *e = json_object_get(reply, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (status)
        fprintf(stderr, "siyu segment: HTTP %ld%s%s\n", status, msg ? ": " : "", msg ? msg : "");
    return status == 400 ? 2 : 1;
}

static int remote_list(const seg_args *a, json_t *body) {
    long left = a->limit;
    int sort = a->sort ? sort_parse(a->sort) : ENGINE_SORT_ID;
    while (left > 0) {
        json_object_set_new(body, "limit", json_integer(left < 1000 ? left : 1000));
        json_t *reply;
        long st = remote_post(a, "/api/v1/segments/list", body, NULL, &reply);
        if (st != 200) {
            int rc = remote_error(st, reply);
            json_decref(reply);
            return rc;
        }
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(reply, "items"), i, it) {
            char sv[32] = "";
            const json_t *v = json_object_get(it, "sort_value");
            if (sort != ENGINE_SORT_ID)
                sort == ENGINE_SORT_SPENT ? snprintf(sv, sizeof sv, "%.2f", json_number_value(v))
                : json_is_null(v)
                    ? snprintf(sv, sizeof sv, "-")
                    : snprintf(sv, sizeof sv, "%lld", (long long)json_integer_value(v));
            print_item(a->json, json_integer_value(json_object_get(it, "id")), sv,
                       json_string_value(json_object_get(it, "external_userid")),
                       json_string_value(json_object_get(it, "name")));
            left--;
        }
        const char *next = json_string_value(json_object_get(reply, "next_cursor"));
        if (!next || left <= 0) {
            json_decref(reply);
            break;
        }
        json_object_set_new(body, "cursor", json_string(next));
        json_decref(reply);
    }
    return 0;
}

static int run_remote(const seg_args *a) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_t *body = json_pack("{s:s}", "expr", a->expr);
    int status = 0;
    if (a->cmd == OP_COUNT) {
        json_t *reply;
        long st = remote_post(a, "/api/v1/segments/count", body, NULL, &reply);
        if (st != 200)
            status = remote_error(st, reply);
        else if (a->json) {
            char *s = json_dumps(reply, JSON_COMPACT);
            printf("%s\n", s ? s : "{}");
            free(s);
        } else
            printf("%lld\n", (long long)json_integer_value(json_object_get(reply, "count")));
        json_decref(reply);
    } else if (a->cmd == OP_LIST) {
        if (a->sort) json_object_set_new(body, "sort", json_string(a->sort));
        if (a->order) json_object_set_new(body, "order", json_string(a->order));
        status = remote_list(a, body);
    } else {
        json_object_set_new(body, "format", json_string(export_format_name(a->fmt)));
        FILE *f = a->out ? fopen(a->out, "wb") : stdout;
        if (!f) {
            fprintf(stderr, "siyu segment: cannot write %s\n", a->out);
            status = 1;
        } else {
            json_t *reply;
            long st = remote_post(a, "/api/v1/segments/export", body, f, &reply);
            if (st != 200) status = remote_error(st, reply);
            json_decref(reply);
            if (fflush(f) != 0 && !status) status = 1;
            if (a->out) {
                fclose(f);
                if (status) unlink(a->out);
            }
        }
    }
    json_decref(body);
    curl_global_cleanup();
    return status;
}

/* ---- arguments ---- */

int cli_segment(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(segment_usage, stdout);
            return 0;
        }
    if (argc < 2) return usage_error("%s", argc ? "EXPR is missing" : "give count, list or export");
    seg_args a = {.limit = 50, .fmt = EXPORT_CSV, .expr = argv[1]};
    if (!strcmp(argv[0], "count"))
        a.cmd = OP_COUNT;
    else if (!strcmp(argv[0], "list"))
        a.cmd = OP_LIST;
    else if (!strcmp(argv[0], "export"))
        a.cmd = OP_EXPORT;
    else
        return usage_error("unknown subcommand '%s'", argv[0]);
    /* --json takes no value: strip it before the flag check. */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    int n = 0;
    if (!args) return 1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            a.json = true;
        else
            args[n++] = argv[i];
    }
    static const char *const allowed[] = {"data", "tenant", "server", "token", "format",
                                          "sort", "order",  "limit",  "out",   NULL};
    int ret = cli_check_flags(n, args, allowed, segment_usage);
    a.data = cli_flag(n, args, "data");
    a.server = cli_flag(n, args, "server");
    a.token = cli_flag(n, args, "token");
    a.out = cli_flag(n, args, "out");
    a.sort = cli_flag(n, args, "sort");
    a.order = cli_flag(n, args, "order");
    const char *tenant = cli_flag(n, args, "tenant"), *limit = cli_flag(n, args, "limit");
    const char *format = cli_flag(n, args, "format");
    free(args);
    if (ret) return ret;
    if (strlen(a.expr) > EXPR_MAX_INPUT)
        return usage_error("%s", "EXPR is longer than 16384 bytes");
    if (a.sort && sort_parse(a.sort) < 0) return usage_error("unknown --sort '%s'", a.sort);
    if (a.order && strcmp(a.order, "asc") && strcmp(a.order, "desc"))
        return usage_error("--order must be asc or desc, not '%s'", a.order);
    if (limit) {
        char *end;
        a.limit = strtol(limit, &end, 10);
        if (*end || a.limit < 1 || a.limit > 100000000)
            return usage_error("--limit must be 1..100000000, not '%s'", limit);
    }
    if (format && export_format_parse(format, &a.fmt) != 0)
        return usage_error("--format must be csv, xlsx, phone_md5 or phone_sha256, not '%s'",
                           format);
    if ((a.sort || a.order || limit) && a.cmd != OP_LIST)
        return usage_error("%s", "--sort, --order and --limit are for list");
    if ((format || a.out) && a.cmd != OP_EXPORT)
        return usage_error("%s", "--format and --out are for export");
    if (a.cmd == OP_EXPORT && a.fmt == EXPORT_XLSX && !a.out && isatty(STDOUT_FILENO))
        return usage_error("%s", "an .xlsx export needs --out FILE (not a terminal)");
    if (a.server) {
        if (a.data || tenant)
            return usage_error("%s", "--server works on the token's tenant: no --data or --tenant");
        if (!a.token) a.token = getenv("SIYU_TOKEN");
        if (!a.token) return usage_error("%s", "--server needs --token (or SIYU_TOKEN)");
        return run_remote(&a);
    }
    if (!a.data) a.data = getenv("SIYU_DATA") ? getenv("SIYU_DATA") : "./data";
    if (!tenant) return usage_error("%s", "--tenant ID is required with --data");
    char *end;
    a.tenant = strtoll(tenant, &end, 10);
    if (*end || a.tenant <= 0) return usage_error("--tenant must be a tenant id, not '%s'", tenant);
    return run_local(&a);
}
