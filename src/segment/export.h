/* export.h — writing a segment's customers as a file: CSV (RFC 4180, UTF-8
 * with a BOM for Excel), Excel .xlsx (libxlsxwriter in constant_memory mode)
 * and hashed phone numbers (one lowercase MD5 or SHA-256 hex digest per line
 * of the normalised 11-digit number, customers without a phone skipped).
 *
 * A writer turns rows into bytes and hands them to a sink in pieces of at
 * most EXPORT_CHUNK bytes; it never holds more than one piece of a CSV or
 * hash export. An .xlsx is built in a temporary file (libxlsxwriter writes
 * the zip at the end) which export_writer_finish streams to the sink and
 * removes; export_writer_free removes it too when the export stops early.
 *
 * Rows come from the store in batches (export_rows_write: one query per batch
 * of customer ids), so an export of any size holds one batch of rows at a
 * time. Phone numbers are personal data: nothing here logs them.
 *
 * Ownership: the writer owns its buffer and temporary file; rows and their
 * strings are borrowed for the duration of export_writer_row. */
#ifndef SIYU_SEGMENT_EXPORT_H
#define SIYU_SEGMENT_EXPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segment/segsvc.h"
#include "store/store.h"
#include "util/err.h"

#define EXPORT_CHUNK 65536       /* bytes handed to the sink at a time (at most) */
#define EXPORT_BATCH_MAX 4096    /* customer ids per export_rows_write call */
#define EXPORT_XLSX_ROWS 1048575 /* data rows per sheet (Excel's 1,048,576 - header) */

typedef enum export_format {
    EXPORT_CSV = 1,
    EXPORT_XLSX,
    EXPORT_PHONE_MD5,
    EXPORT_PHONE_SHA256,
} export_format;

/* "csv", "xlsx", "phone_md5", "phone_sha256" -> *out. 0 or SIYU_EINVAL. */
int export_format_parse(const char *s, export_format *out);
const char *export_format_name(export_format f);
/* Media type and file extension ("text/csv; charset=utf-8", "csv"). */
const char *export_content_type(export_format f);
const char *export_extension(export_format f);
/* True for the formats that carry (hashed) phone numbers. */
bool export_format_has_phones(export_format f);

/* One customer as exported. Strings may be NULL (empty cell). */
typedef struct export_row {
    int64_t id;
    const char *external_userid;
    const char *name;
    int gender; /* 2 female, 1 male, other unknown */
    const char *region;
    const char *stage;
    const char *phone;      /* as stored; only the phone formats use it */
    int64_t first_added_at; /* Unix seconds; < 0 = unknown */
    const char *tags;       /* tag names joined by ';' */
} export_row;

/* Receives the output: 0 to go on, or an error code that stops the export. */
typedef int (*export_sink)(void *arg, const void *data, size_t len);

typedef struct export_writer export_writer;

/* A writer of format f into sink. tmpdir (NULL: $TMPDIR or /tmp) holds the
 * temporary files of an .xlsx. 0 with *out set (free with
 * export_writer_free), or SIYU_EIO / SIYU_ENOMEM with err filled. */
int export_writer_create(export_format f, export_sink sink, void *arg, const char *tmpdir,
                         export_writer **out, siyu_err *err);
/* Writes one row (the header went out with the first). 0, the sink's error,
 * or SIYU_EIO / SIYU_ENOMEM. */
int export_writer_row(export_writer *w, const export_row *r);
/* Flushes what is buffered; for .xlsx closes the workbook, streams the file
 * to the sink and removes it. 0 or an error as export_writer_row. */
int export_writer_finish(export_writer *w, siyu_err *err);
/* Removes any temporary file and frees; NULL ok. */
void export_writer_free(export_writer *w);
/* Rows written so far (for the phone formats: digests written). */
uint64_t export_writer_rows(const export_writer *w);

/* Reads the customers ids[0..n) (n <= EXPORT_BATCH_MAX, ascending) of
 * tenant_id from c in one query and writes them, in id order, to w.
 * Customers gone from the store are skipped. 0, the writer's error, or
 * SIYU_EIO with err filled. */
int export_rows_write(store_conn *c, int64_t tenant_id, const int64_t *ids, size_t n,
                      export_writer *w, siyu_err *err);

/* Writes every customer of r (a result of tenant_id's engine) to w and
 * finishes w: walks r with segsvc_walk and loads each chunk's rows from a
 * pooled read connection of st, held only for that chunk. cancel (may be
 * NULL) stops the walk between chunks with SIYU_ECLOSED. A result of count 0
 * needs no engine. 0, SIYU_ECONFLICT (the engine was rebuilt meanwhile: evaluate
 * again), the sink's error, or SIYU_EIO / SIYU_ENOMEM, with err filled. */
int export_segment_write(segsvc *s, store *st, int64_t tenant_id, const segsvc_result *r,
                         export_writer *w, const atomic_bool *cancel, siyu_err *err);

/* Appends s as one CSV field to buf (cap bytes; returns the bytes it needs,
 * which may exceed cap, in which case nothing is promised about buf): quoted
 * when it holds a comma, quote, CR or LF (quotes doubled, RFC 4180); a value
 * starting with = + - @ TAB or CR gets a leading ' so spreadsheets do not
 * run it as a formula. NULL is an empty field. */
size_t export_csv_field(const char *s, char *buf, size_t cap);

/* "2026-11-23T08:00:00Z" for Unix seconds t (>= 0); "" when t < 0. */
void export_time_text(int64_t t, char out[32]);

#endif
