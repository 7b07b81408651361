/* an_spend.c — acquisition spend per channel and day (migration 0010) and
 * CAC = spend / adds per channel (docs/ANALYTICS.md, "CAC").
 *
 * Spend rows are few (channels x days) and read straight from the store;
 * adds per channel come from the analytics object's per-channel counters. */
#include <stdlib.h>
#include <string.h>

#include "analytics/an_int.h"
#include "store/audit.h"

#define SPEND_MAX_CENTS 10000000000000LL

int analytics_spend_put(store_conn *c, void *arg) {
    analytics_spend_put_arg *p = arg;
    int32_t day;
    size_t cl = p->channel ? strlen(p->channel) : 0;
    if (cl < 1 || cl > 64) return siyu_err_set(&p->err, SIYU_EINVAL, "channel", "1 to 64 bytes");
    if (!p->date || analytics_day_parse(p->date, &day) != 0)
        return siyu_err_set(&p->err, SIYU_EINVAL, "date", "a date YYYY-MM-DD");
    if (p->amount_cents < 0 || p->amount_cents > SPEND_MAX_CENTS)
        return siyu_err_set(&p->err, SIYU_EINVAL, "amount", "0 to 100000000000 yuan");
    sqlite3_stmt *st = store_conn_stmt(
        c, "INSERT INTO acquisition_spend(tenant_id, channel, day, amount_cents, updated_at) "
           "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(tenant_id, channel, day) DO UPDATE SET "
           "amount_cents = excluded.amount_cents, updated_at = excluded.updated_at");
    if (!st) return siyu_err_set(&p->err, SIYU_EIO, NULL, "cannot write the spend");
    sqlite3_bind_int64(st, 1, p->tenant_id);
    sqlite3_bind_text(st, 2, p->channel, (int)cl, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->date, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, p->amount_cents);
    sqlite3_bind_int64(st, 5, siyu_now());
    int rc = store_stmt_run(st);
    if (rc != 0) return siyu_err_set(&p->err, rc, NULL, "cannot write the spend");
    char detail[160];
    snprintf(detail, sizeof detail, "%s %lld cents", p->date, (long long)p->amount_cents);
    return store_audit(c, p->tenant_id, p->actor ? p->actor : "system", "spend.put", p->channel, 1,
                       detail);
}

void analytics_cac_free(analytics_cac_row *rows, size_t n) {
    for (size_t i = 0; rows && i < n; i++)
        free(rows[i].channel);
    free(rows);
}

int analytics_cac(const analytics *a, store_conn *c, int32_t d0, int32_t d1,
                  analytics_cac_row **out, size_t *n, siyu_err *err) {
    *out = NULL;
    *n = 0;
    analytics_scope all = {.all = true};
    analytics_series s;
    int rc = analytics_series_get(a, NULL, &all, d0, d1, AN_BY_CHANNEL, false, &s, err);
    if (rc) return rc;
    /* one row per channel of the series, then the spend's channels not in it */
    size_t cap = s.ngroups + 16, k = 0;
    analytics_cac_row *rows = calloc(cap, sizeof *rows);
    if (!rows) goto oom;
    for (size_t g = 0; g < s.ngroups; g++) {
        rows[k].adds = s.g[g].sum[AN_ADDS];
        if (s.g[g].name && !(rows[k].channel = strdup(s.g[g].name))) goto oom;
        k++;
    }
    char from[11], to[11];
    analytics_day_format(d0, from);
    analytics_day_format(d1, to);
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT channel, sum(amount_cents) FROM "
                                          "acquisition_spend WHERE tenant_id = ? AND day "
                                          "BETWEEN ? AND ? GROUP BY channel");
    if (!st) {
        analytics_cac_free(rows, k);
        analytics_series_free(&s);
        return siyu_err_set(err, SIYU_EIO, NULL, "cannot read the spend");
    }
    sqlite3_bind_int64(st, 1, a->tenant_id);
    sqlite3_bind_text(st, 2, from, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, to, -1, SQLITE_TRANSIENT);
    int sr;
    while ((sr = sqlite3_step(st)) == SQLITE_ROW) {
        const char *ch = (const char *)sqlite3_column_text(st, 0);
        size_t i = 0;
        while (i < k && !(rows[i].channel && !strcmp(rows[i].channel, ch)))
            i++;
        if (i == k) {
            if (k == cap) {
                analytics_cac_row *v = realloc(rows, (cap *= 2) * sizeof *v);
                if (!v) {
                    sqlite3_reset(st);
                    goto oom;
                }
                rows = v;
            }
            memset(&rows[k], 0, sizeof rows[k]);
            if (!(rows[k].channel = strdup(ch))) {
                sqlite3_reset(st);
                goto oom;
            }
            k++;
        }
        rows[i].spend_cents = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (sr != SQLITE_DONE) {
        analytics_cac_free(rows, k);
        analytics_series_free(&s);
        return siyu_err_set(err, SIYU_EIO, NULL, "cannot read the spend");
    }
    /* keep the channels with spend or adds */
    size_t w = 0;
    for (size_t i = 0; i < k; i++) {
        if (!rows[i].spend_cents && !rows[i].adds) {
            free(rows[i].channel);
            continue;
        }
        rows[i].cac_cents = rows[i].adds ? rows[i].spend_cents / rows[i].adds : -1;
        rows[w++] = rows[i];
    }
    analytics_series_free(&s);
    *out = rows;
    *n = w;
    return 0;
oom:
    analytics_cac_free(rows, k);
    analytics_series_free(&s);
    return siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
}
