/* channel_stats.c — per-channel statistics by day (docs/CHANNELS.md).
 *
 * Unit: one relationship (customer x employee) attributed to a channel
 * (relationship.channel_id), counted on the local day (tenant time zone) of
 * its added_at. For the adds of each day:
 *   deleted_by_customer.{1d,7d,30d,total}  status deleted_by_customer and
 *       ended_at - added_at < 1, 7, 30 days (total: at any time so far)
 *   deleted_by_employee.{...}              the same for deleted_by_employee
 *   transferred                            moved to another employee
 *                                          (inheritance; not a loss)
 *   net = adds - deleted_by_customer.total - deleted_by_employee.total
 *   retention = net / adds (null without adds)
 * Every count is a plain sum over relationships, so channels add up to their
 * group and to the tenant totals, and days add up to the period's totals.
 *
 * One grouped query (relationship_channel index for one channel,
 * relationship_added for the tenant) fills an array of counters per
 * (channel, day); JSON is built from the arrays. Ownership: everything here
 * is freed before return except the returned JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/channel_int.h"

#define DAY_S 86400

enum { M_ADDS, M_DC1, M_DC7, M_DC30, M_DC, M_DE1, M_DE7, M_DE30, M_DE, M_XFER, M_N };

typedef struct metrics {
    int64_t v[M_N];
} metrics;

static void metrics_add(metrics *a, const metrics *b) {
    for (int i = 0; i < M_N; i++)
        a->v[i] += b->v[i];
}

static json_t *metrics_json(const metrics *m) {
    int64_t net = m->v[M_ADDS] - m->v[M_DC] - m->v[M_DE];
    json_t *ret = m->v[M_ADDS] ? json_real((double)net / (double)m->v[M_ADDS]) : json_null();
    return json_pack("{s:I,s:{s:I,s:I,s:I,s:I},s:{s:I,s:I,s:I,s:I},s:I,s:I,s:o}", "adds",
                     (json_int_t)m->v[M_ADDS], "deleted_by_customer", "1d", (json_int_t)m->v[M_DC1],
                     "7d", (json_int_t)m->v[M_DC7], "30d", (json_int_t)m->v[M_DC30], "total",
                     (json_int_t)m->v[M_DC], "deleted_by_employee", "1d", (json_int_t)m->v[M_DE1],
                     "7d", (json_int_t)m->v[M_DE7], "30d", (json_int_t)m->v[M_DE30], "total",
                     (json_int_t)m->v[M_DE], "transferred", (json_int_t)m->v[M_XFER], "net",
                     (json_int_t)net, "retention", ret);
}

/* Days since 1970-01-01 → civil date (Howard Hinnant's algorithm). */
void channel__date(int64_t day, char out[16]) {
    int64_t z = day + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097, yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1), m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int64_t y = yoe + era * 400 + (m <= 2);
    if (y < 0 || y > 9999) y = y < 0 ? 0 : 9999; /* outside any plausible range */
    snprintf(out, 16, "%04d-%02d-%02d", (int)y, m % 100, d % 100);
}

bool channel_day_parse(const char *s, int64_t *day) {
    int y, m, d;
    char tail;
    if (!s || strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3) return false;
    if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31) return false;
    /* days_from_civil, then a round trip rejects 02-30 and the like. */
    int yy = y - (m <= 2);
    int64_t era = yy / 400, yoe = yy - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t v = era * 146097 + doe - 719468;
    char back[16];
    channel__date(v, back);
    if (strcmp(back, s) != 0) return false;
    *day = v;
    return true;
}

/* ---- the query ------------------------------------------------------------- */

typedef struct chan_meta {
    int64_t id, group_id; /* group_id 0 = none */
    char *name, *status, *state;
    metrics total;
    metrics *days; /* ndays */
} chan_meta;

typedef struct stats_run {
    int64_t tenant, from_day, ndays;
    int offset;
    chan_meta *ch;
    size_t nch;
    metrics *tenant_days; /* ndays, every channel */
    metrics unattributed;
} stats_run;

static int cmp_meta(const void *a, const void *b) {
    int64_t x = ((const chan_meta *)a)->id, y = ((const chan_meta *)b)->id;
    return x < y ? -1 : x > y;
}

static chan_meta *meta_find(stats_run *s, int64_t id) {
    chan_meta key = {.id = id};
    return bsearch(&key, s->ch, s->nch, sizeof *s->ch, cmp_meta);
}

static char *dup_col(sqlite3_stmt *st, int i) {
    const char *v = (const char *)sqlite3_column_text(st, i);
    return strdup(v ? v : "");
}

static int channels_load(store_conn *c, stats_run *s, int64_t only) {
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT id, coalesce(group_id, 0), name, status, state FROM channel WHERE "
           "tenant_id=?1 AND (?2=0 OR id=?2) ORDER BY id");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, s->tenant);
    sqlite3_bind_int64(st, 2, only);
    size_t cap = 0;
    int step, rc = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (s->nch == cap) {
            cap = cap ? cap * 2 : 16;
            chan_meta *g = realloc(s->ch, cap * sizeof *s->ch);
            if (!g) {
                rc = SIYU_ENOMEM;
                break;
            }
            s->ch = g;
        }
        chan_meta *m = &s->ch[s->nch];
        memset(m, 0, sizeof *m);
        m->id = sqlite3_column_int64(st, 0);
        m->group_id = sqlite3_column_int64(st, 1);
        m->name = dup_col(st, 2);
        m->status = dup_col(st, 3);
        m->state = dup_col(st, 4);
        m->days = calloc((size_t)s->ndays, sizeof *m->days);
        s->nch++;
        if (!m->name || !m->status || !m->state || !m->days) {
            rc = SIYU_ENOMEM;
            break;
        }
    }
    if (rc == 0 && step != SQLITE_DONE) rc = store_rc(step);
    sqlite3_reset(st);
    return rc;
}

#define COUNTS_SQL(where)                                                                          \
    "SELECT r.channel_id, (r.added_at + ?4) / 86400, count(*), "                                   \
    "sum(r.status='deleted_by_customer' AND r.ended_at - r.added_at < 86400), "                    \
    "sum(r.status='deleted_by_customer' AND r.ended_at - r.added_at < 7*86400), "                  \
    "sum(r.status='deleted_by_customer' AND r.ended_at - r.added_at < 30*86400), "                 \
    "sum(r.status='deleted_by_customer'), "                                                        \
    "sum(r.status='deleted_by_employee' AND r.ended_at - r.added_at < 86400), "                    \
    "sum(r.status='deleted_by_employee' AND r.ended_at - r.added_at < 7*86400), "                  \
    "sum(r.status='deleted_by_employee' AND r.ended_at - r.added_at < 30*86400), "                 \
    "sum(r.status='deleted_by_employee'), sum(r.status='transferred') "                            \
    "FROM relationship r WHERE r.tenant_id=?1 AND r.added_at>=?2 AND r.added_at<?3 " where         \
    " GROUP BY 1, 2"

static int counts_load(store_conn *c, stats_run *s, int64_t only) {
    sqlite3_stmt *st =
        store_conn_stmt(c, only ? COUNTS_SQL("AND r.channel_id=?5") : COUNTS_SQL("AND ?5=0"));
    if (!st) return SIYU_EIO;
    int64_t start = s->from_day * DAY_S - s->offset;
    sqlite3_bind_int64(st, 1, s->tenant);
    sqlite3_bind_int64(st, 2, start);
    sqlite3_bind_int64(st, 3, start + s->ndays * DAY_S);
    sqlite3_bind_int64(st, 4, s->offset);
    sqlite3_bind_int64(st, 5, only);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        metrics m;
        for (int i = 0; i < M_N; i++)
            m.v[i] = sqlite3_column_int64(st, 2 + i);
        int64_t di = sqlite3_column_int64(st, 1) - s->from_day;
        if (di < 0 || di >= s->ndays) continue; /* cannot happen: the range filter */
        if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
            metrics_add(&s->unattributed, &m);
            continue;
        }
        chan_meta *ch = meta_find(s, sqlite3_column_int64(st, 0));
        if (!ch) continue; /* a channel of another tenant cannot be linked */
        metrics_add(&ch->days[di], &m);
        metrics_add(&ch->total, &m);
        metrics_add(&s->tenant_days[di], &m);
    }
    sqlite3_reset(st);
    return step == SQLITE_DONE ? 0 : store_rc(step);
}

/* ---- JSON ------------------------------------------------------------------ */

/* Days of arr; dense = every day of the range, else only days with adds. */
static json_t *days_json(const stats_run *s, const metrics *arr, bool dense) {
    json_t *a = json_array();
    for (int64_t i = 0; i < s->ndays; i++) {
        if (!dense && arr[i].v[M_ADDS] == 0) continue;
        char date[16];
        channel__date(s->from_day + i, date);
        json_t *d = metrics_json(&arr[i]);
        json_object_set_new(d, "date", json_string(date));
        json_array_append_new(a, d);
    }
    return a;
}

static json_t *channel_json(const stats_run *s, const chan_meta *m, bool dense) {
    json_t *j = json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)m->id, "name", m->name, "status",
                          m->status, "state", m->state);
    json_object_set_new(j, "group_id", m->group_id ? json_integer(m->group_id) : json_null());
    json_object_set_new(j, "totals", metrics_json(&m->total));
    json_object_set_new(j, "days", days_json(s, m->days, dense));
    return j;
}

/* A group's totals and days (only days with adds) over its channels;
 * gid 0 = the channels in no group. NULL when out of memory. */
static json_t *group_json(const stats_run *s, int64_t gid, const char *name) {
    metrics t = {{0}};
    metrics *days = calloc((size_t)s->ndays, sizeof *days);
    if (!days) return NULL;
    json_t *ids = json_array();
    for (size_t i = 0; i < s->nch; i++) {
        if (s->ch[i].group_id != gid) continue;
        metrics_add(&t, &s->ch[i].total);
        for (int64_t d = 0; d < s->ndays; d++)
            metrics_add(&days[d], &s->ch[i].days[d]);
        json_array_append_new(ids, json_integer(s->ch[i].id));
    }
    json_t *g = json_pack("{s:o,s:s,s:o,s:o,s:o}", "id", gid ? json_integer(gid) : json_null(),
                          "name", name, "channel_ids", ids, "totals", metrics_json(&t), "days",
                          days_json(s, days, false));
    free(days);
    return g;
}

static int groups_json(store_conn *c, const stats_run *s, json_t **out) {
    json_t *groups = json_array();
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT id, name FROM channel_group WHERE tenant_id=?1 ORDER BY sort_order, id");
    if (!st) {
        json_decref(groups);
        return SIYU_EIO;
    }
    sqlite3_bind_int64(st, 1, s->tenant);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *g =
            group_json(s, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
        if (g) json_array_append_new(groups, g);
    }
    sqlite3_reset(st);
    if (step != SQLITE_DONE) {
        json_decref(groups);
        return store_rc(step);
    }
    /* Channels in no group, so that the groups add up to the totals. */
    json_t *g = group_json(s, 0, "(ungrouped)");
    if (!g) {
        json_decref(groups);
        return SIYU_ENOMEM;
    }
    json_array_append_new(groups, g);
    *out = groups;
    return 0;
}

json_t *channel_stats_json(store_conn *c, int64_t tenant_id, int64_t channel_id, int64_t from_day,
                           int64_t to_day, int64_t now, bool *notfound) {
    (void)now;
    *notfound = false;
    stats_run s = {.tenant = tenant_id, .from_day = from_day, .ndays = to_day - from_day + 1};
    json_t *out = NULL;
    if (s.ndays < 1 || s.ndays > CHANNEL_STATS_DAYS_MAX) return NULL;
    s.tenant_days = calloc((size_t)s.ndays, sizeof *s.tenant_days);
    if (!s.tenant_days) return NULL;
    if (channel_tenant_offset(c, tenant_id, &s.offset) != 0 ||
        channels_load(c, &s, channel_id) != 0)
        goto done;
    if (channel_id && s.nch == 0) {
        *notfound = true;
        goto done;
    }
    if (counts_load(c, &s, channel_id) != 0) goto done;
    char from[16], to[16], tz[16];
    channel__date(from_day, from);
    channel__date(to_day, to);
    snprintf(tz, sizeof tz, "UTC%c%02d:%02d", s.offset < 0 ? '-' : '+', abs(s.offset) / 3600,
             abs(s.offset) % 3600 / 60);
    if (channel_id) {
        out = channel_json(&s, &s.ch[0], true);
        json_object_set_new(out, "from", json_string(from));
        json_object_set_new(out, "to", json_string(to));
        json_object_set_new(out, "utc_offset", json_string(tz));
        goto done;
    }
    json_t *groups = NULL;
    if (groups_json(c, &s, &groups) != 0) goto done;
    metrics totals = {{0}}, all;
    json_t *chans = json_array();
    for (size_t i = 0; i < s.nch; i++) {
        metrics_add(&totals, &s.ch[i].total);
        json_array_append_new(chans, channel_json(&s, &s.ch[i], false));
    }
    all = totals;
    metrics_add(&all, &s.unattributed);
    out = json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o}", "from", from, "to", to, "utc_offset",
                    tz, "totals", metrics_json(&totals), "days", days_json(&s, s.tenant_days, true),
                    "groups", groups, "channels", chans, "unattributed",
                    metrics_json(&s.unattributed), "all", metrics_json(&all));
done:
    for (size_t i = 0; i < s.nch; i++) {
        free(s.ch[i].name);
        free(s.ch[i].status);
        free(s.ch[i].state);
        free(s.ch[i].days);
    }
    free(s.ch);
    free(s.tenant_days);
    return out;
}
