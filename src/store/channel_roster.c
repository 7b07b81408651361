/* channel_roster.c — who a channel QR code routes to, and when that changes.
 *
 * Schedules are parsed from the text form in channel.h into a small array of
 * (day set, minute range) entries; the stored text is the canonical form, so
 * two spellings of one schedule compare equal. Rosters are computed from
 * channel_staff, the employees' status and the day's attributed adds
 * (relationship_channel index), at an injectable `now`.
 *
 * The roster job (channel_sched) is one thread that wakes every interval,
 * runs channel_roster_step on the writer and kicks the outbox: a change of
 * time slot, a new day (caps reset) or a resignation reaches WeCom as
 * update_contact_way within one interval. An add that reaches a cap
 * recomputes its channel at once (channel_on_add, in the callback's step).
 *
 *   channel.users ──roster differs──> users := roster ──config_id?──> update_contact_way
 *                                                     └─add pending─> dirty = 1
 *
 * Ownership: the scheduler owns its thread; ctx is borrowed. Rosters are
 * built in local arrays freed before return. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "outbox/outbox.h"
#include "store/audit.h"
#include "store/channel_int.h"
#include "store/tag_wecom.h"
#include "util/log.h"

#define DAY_S 86400
#define SHANGHAI_OFFSET (8 * 3600)

/* ---- schedules ----------------------------------------------------------- */

static const char *const day_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

static int day_index(const char *s, size_t n) {
    for (int i = 0; i < 7; i++)
        if (n == 3 && strncmp(s, day_names[i], 3) == 0) return i;
    return -1;
}

static int sched_error(siyu_err *err, const char *field, int rule, const char *what) {
    return siyu_err_set(err, SIYU_EINVAL, field,
                        "%s: rule %d: %s (expected e.g. \"mon-fri 09:00-18:00; sat 10:00-16:00\")",
                        field, rule, what);
}

/* Parses "a,b-c,..." of day names (or "daily") into a mask; -1 on error. */
static int parse_days(const char *s, size_t n) {
    if (n == 5 && strncmp(s, "daily", 5) == 0) return 0x7f;
    int mask = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != ',')
            j++;
        const char *item = s + i;
        size_t len = j - i;
        const char *dash = memchr(item, '-', len);
        if (dash) {
            int a = day_index(item, (size_t)(dash - item));
            int b = day_index(dash + 1, len - (size_t)(dash - item) - 1);
            if (a < 0 || b < 0) return -1;
            for (int d = a;; d = (d + 1) % 7) { /* a range may wrap: sat-mon */
                mask |= 1 << d;
                if (d == b) break;
            }
        } else {
            int a = day_index(item, len);
            if (a < 0) return -1;
            mask |= 1 << a;
        }
        i = j + 1;
        if (j < n && i >= n) return -1; /* trailing comma */
    }
    return mask ? mask : -1;
}

/* "HH:MM" → minutes (allow24: "24:00"); -1 on error. */
static int parse_hhmm(const char *s, size_t n, bool allow24) {
    if (n != 5 || s[2] != ':' || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
        !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
        return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && (m != 0 || !allow24))) return -1;
    return h * 60 + m;
}

int channel_schedule_parse(const char *text, const char *field, channel_schedule *out,
                           siyu_err *err) {
    memset(out, 0, sizeof *out);
    if (!text) return 0;
    size_t len = strlen(text);
    if (len > CHANNEL_SCHEDULE_TEXT_MAX)
        return siyu_err_set(err, SIYU_EINVAL, field, "%s: at most %d bytes", field,
                            CHANNEL_SCHEDULE_TEXT_MAX);
    char *buf = malloc(len + 1);
    if (!buf) return SIYU_ENOMEM;
    for (size_t i = 0; i <= len; i++)
        buf[i] = (char)tolower((unsigned char)text[i]);
    int rc = 0, rule = 0;
    char *save = NULL;
    for (char *r = strtok_r(buf, ";", &save); r && rc == 0; r = strtok_r(NULL, ";", &save)) {
        while (isspace((unsigned char)*r))
            r++;
        if (!*r) continue;
        rule++;
        char *sp = r;
        while (*sp && !isspace((unsigned char)*sp))
            sp++;
        int mask = parse_days(r, (size_t)(sp - r));
        if (mask < 0) {
            rc = sched_error(err, field, rule, "unknown day list");
            break;
        }
        /* The slots, blanks removed. */
        char slots[CHANNEL_SCHEDULE_TEXT_MAX + 1];
        size_t k = 0;
        for (char *p = sp; *p; p++)
            if (!isspace((unsigned char)*p)) slots[k++] = *p;
        slots[k] = 0;
        if (k == 0) {
            rc = sched_error(err, field, rule, "no time slot after the days");
            break;
        }
        size_t i = 0;
        while (i < k && rc == 0) {
            size_t j = i;
            while (j < k && slots[j] != ',')
                j++;
            int from = -1, to = -1;
            if (j - i == 11 && slots[i + 5] == '-') {
                from = parse_hhmm(slots + i, 5, false);
                to = parse_hhmm(slots + i + 6, 5, true);
            }
            if (from < 0 || to < 0)
                rc = sched_error(err, field, rule, "a time slot is not HH:MM-HH:MM");
            else if (from >= to)
                rc = sched_error(err, field, rule,
                                 "a time slot must end after it starts (split one that "
                                 "crosses midnight over two days)");
            else if (out->n >= CHANNEL_SLOTS_MAX)
                rc = siyu_err_set(err, SIYU_EINVAL, field, "%s: at most %d time slots", field,
                                  CHANNEL_SLOTS_MAX);
            else
                out->slot[out->n++] = (channel_slot){
                    .days = (uint8_t)mask, .from = (uint16_t)from, .to = (uint16_t)to};
            i = j + 1;
            if (rc == 0 && j < k && i >= k)
                rc = sched_error(err, field, rule, "trailing comma after the time slots");
        }
    }
    free(buf);
    return rc;
}

static size_t days_format(uint8_t mask, char *out, size_t cap) {
    if (mask == 0x7f) return (size_t)snprintf(out, cap, "daily");
    size_t n = 0;
    for (int d = 0; d < 7;) {
        if (!(mask & (1 << d))) {
            d++;
            continue;
        }
        int e = d;
        while (e + 1 < 7 && (mask & (1 << (e + 1))))
            e++;
        const char *sep = n ? "," : "";
        int w;
        if (e - d >= 2)
            w = snprintf(out + n, n < cap ? cap - n : 0, "%s%s-%s", sep, day_names[d],
                         day_names[e]);
        else if (e > d)
            w = snprintf(out + n, n < cap ? cap - n : 0, "%s%s,%s", sep, day_names[d],
                         day_names[e]);
        else
            w = snprintf(out + n, n < cap ? cap - n : 0, "%s%s", sep, day_names[d]);
        n += (size_t)w;
        d = e + 1;
    }
    return n;
}

size_t channel_schedule_format(const channel_schedule *s, char *out, size_t cap) {
    size_t n = 0;
    if (cap) out[0] = 0;
    for (int i = 0; i < s->n; i++) {
        const channel_slot *sl = &s->slot[i];
        bool same = i > 0 && s->slot[i - 1].days == sl->days;
        if (!same) {
            if (i > 0) n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "; ");
            n += days_format(sl->days, out + n, n < cap ? cap - n : 0);
            n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, " ");
        } else {
            n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, ",");
        }
        n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%02d:%02d-%02d:%02d", sl->from / 60,
                              sl->from % 60, sl->to / 60, sl->to % 60);
    }
    return n;
}

bool channel_schedule_on(const channel_schedule *s, int weekday, int minute) {
    if (s->n == 0) return true;
    for (int i = 0; i < s->n; i++)
        if ((s->slot[i].days & (1 << weekday)) && minute >= s->slot[i].from &&
            minute < s->slot[i].to)
            return true;
    return false;
}

/* ---- time zones ---------------------------------------------------------- */

static const struct {
    const char *name;
    int offset;
} zones[] = {
    {"Asia/Shanghai", 8 * 3600},
    {"Asia/Chongqing", 8 * 3600},
    {"Asia/Hong_Kong", 8 * 3600},
    {"Asia/Macau", 8 * 3600},
    {"Asia/Taipei", 8 * 3600},
    {"Asia/Singapore", 8 * 3600},
    {"Asia/Kuala_Lumpur", 8 * 3600},
    {"Asia/Manila", 8 * 3600},
    {"Asia/Tokyo", 9 * 3600},
    {"Asia/Seoul", 9 * 3600},
    {"UTC", 0},
    {"Etc/UTC", 0},
};

int channel_tz_offset(const char *tz, int *offset_s) {
    if (!tz || !*tz) {
        *offset_s = SHANGHAI_OFFSET;
        return 0;
    }
    for (size_t i = 0; i < sizeof zones / sizeof *zones; i++)
        if (!strcmp(zones[i].name, tz)) {
            *offset_s = zones[i].offset;
            return 0;
        }
    /* UTC+HH:MM / UTC-HH:MM */
    if (strlen(tz) == 9 && !strncmp(tz, "UTC", 3) && (tz[3] == '+' || tz[3] == '-')) {
        int m = parse_hhmm(tz + 4, 5, false);
        if (m >= 0 && m <= 14 * 60) {
            *offset_s = (tz[3] == '-' ? -1 : 1) * m * 60;
            return 0;
        }
    }
    return SIYU_EINVAL;
}

int channel_tenant_offset(store_conn *c, int64_t tenant_id, int *offset_s) {
    *offset_s = SHANGHAI_OFFSET;
    sqlite3_stmt *st = store_conn_stmt(c, "SELECT time_zone FROM tenant WHERE tenant_id=?1");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW &&
        channel_tz_offset((const char *)sqlite3_column_text(st, 0), offset_s) != 0)
        *offset_s = SHANGHAI_OFFSET;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_rc(rc);
}

void channel_local_of(int64_t ts, int offset_s, channel_local *out) {
    int64_t local = ts + offset_s;
    int64_t day = local >= 0 ? local / DAY_S : -((-local + DAY_S - 1) / DAY_S);
    out->day = day;
    out->day_start = day * DAY_S - offset_s;
    out->weekday = (int)(((day % 7) + 7 + 3) % 7); /* 1970-01-01 was a Thursday */
    out->minute = (int)((local - day * DAY_S) / 60);
}

/* ---- rosters ------------------------------------------------------------- */

typedef struct staff_row {
    int64_t employee_id;
    char userid[72];
    bool backup, active, on, capped, chosen;
    int64_t cap, adds;
} staff_row;

/* Loads the channel's staff with today's adds; *type_single, *status. */
static int staff_load(store_conn *c, int64_t tenant, int64_t id, const channel_local *lt,
                      staff_row **rows, int *n, bool *single) {
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT type='single' FROM channel WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *single = sqlite3_column_int(st, 0) != 0;
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) return SIYU_ENOTFOUND;
    if (rc != SQLITE_ROW) return store_rc(rc);
    st = store_conn_stmt(
        c, "SELECT s.employee_id, e.userid, s.role='backup', e.status='active', "
           "coalesce(s.daily_cap, ch.daily_cap), s.schedule, "
           "(SELECT count(*) FROM relationship r WHERE r.tenant_id=s.tenant_id AND "
           "r.channel_id=s.channel_id AND r.employee_id=s.employee_id AND r.added_at>=?3 AND "
           "r.added_at<?4) FROM channel_staff s JOIN employee e ON e.id=s.employee_id "
           "JOIN channel ch ON ch.id=s.channel_id WHERE s.tenant_id=?1 AND s.channel_id=?2 "
           "ORDER BY s.role='backup', s.position");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_int64(st, 3, lt->day_start);
    sqlite3_bind_int64(st, 4, lt->day_start + DAY_S);
    int cap = 0;
    rc = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            staff_row *g = realloc(*rows, (size_t)cap * sizeof **rows);
            if (!g) {
                rc = SIYU_ENOMEM;
                break;
            }
            *rows = g;
        }
        staff_row *r = &(*rows)[(*n)++];
        memset(r, 0, sizeof *r);
        r->employee_id = sqlite3_column_int64(st, 0);
        const char *u = (const char *)sqlite3_column_text(st, 1);
        snprintf(r->userid, sizeof r->userid, "%s", u ? u : "");
        r->backup = sqlite3_column_int(st, 2) != 0;
        r->active = sqlite3_column_int(st, 3) != 0;
        r->cap = sqlite3_column_int64(st, 4);
        channel_schedule sch;
        /* Stored schedules were validated; one that no longer parses counts
         * as always on rather than taking the employee off silently. */
        if (channel_schedule_parse((const char *)sqlite3_column_text(st, 5), "schedule", &sch,
                                   NULL) != 0)
            sch.n = 0;
        r->on = r->active && channel_schedule_on(&sch, lt->weekday, lt->minute);
        r->adds = sqlite3_column_int64(st, 6);
        r->capped = r->cap > 0 && r->adds >= r->cap;
    }
    if (rc == 0 && step != SQLITE_DONE) rc = store_rc(step);
    sqlite3_reset(st);
    return rc;
}

/* Marks the chosen rows; returns the rule name. */
static const char *roster_choose(staff_row *rows, int n, bool single) {
    static const struct {
        const char *name;
        bool backup, need_on, need_uncapped;
    } rules[] = {
        {"duty", false, true, true},
        {"backup", true, true, true},
        {"fallback_backup", true, false, false},
        {"fallback_duty", false, false, false},
    };
    for (size_t k = 0; k < sizeof rules / sizeof *rules; k++) {
        int chosen = 0;
        for (int i = 0; i < n; i++) {
            staff_row *r = &rows[i];
            if (r->backup != rules[k].backup || !r->active) continue;
            if (rules[k].need_on && !r->on) continue;
            if (rules[k].need_uncapped && r->capped) continue;
            if (single && chosen) break;
            r->chosen = true;
            chosen++;
        }
        if (chosen) return rules[k].name;
    }
    return "none";
}

int channel_roster(store_conn *c, int64_t tenant_id, int64_t channel_id, int64_t now,
                   json_t **users, json_t **detail) {
    *users = NULL;
    if (detail) *detail = NULL;
    int off;
    int rc = channel_tenant_offset(c, tenant_id, &off);
    if (rc != 0) return rc;
    channel_local lt;
    channel_local_of(now, off, &lt);
    staff_row *rows = NULL;
    int n = 0;
    bool single = false;
    if ((rc = staff_load(c, tenant_id, channel_id, &lt, &rows, &n, &single)) != 0) {
        free(rows);
        return rc;
    }
    const char *rule = roster_choose(rows, n, single);
    json_t *u = json_array(), *staff = detail ? json_array() : NULL;
    for (int i = 0; i < n; i++) {
        staff_row *r = &rows[i];
        if (r->chosen) json_array_append_new(u, json_string(r->userid));
        if (staff)
            json_array_append_new(
                staff, json_pack("{s:I,s:s,s:s,s:b,s:b,s:I,s:I,s:b,s:b}", "employee_id",
                                 (json_int_t)r->employee_id, "userid", r->userid, "role",
                                 r->backup ? "backup" : "duty", "active", r->active, "on_schedule",
                                 r->on, "adds_today", (json_int_t)r->adds, "daily_cap",
                                 (json_int_t)r->cap, "capped", r->capped, "chosen", r->chosen));
    }
    free(rows);
    *users = u;
    if (detail)
        *detail =
            json_pack("{s:s,s:I,s:i,s:i,s:O,s:o}", "rule", rule, "at", (json_int_t)now, "weekday",
                      lt.weekday + 1, "minute", lt.minute, "users", u, "staff", staff);
    return 0;
}

/* ---- pushing roster changes ---------------------------------------------- */

typedef struct chan_row {
    bool found, active, created;
    char *users; /* malloc'd; NULL when the column is NULL */
} chan_row;

static int chan_row_load(store_conn *c, int64_t tenant, int64_t id, chan_row *r) {
    memset(r, 0, sizeof *r);
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT status='active', config_id IS NOT NULL AND wecom_status='created', users "
           "FROM channel WHERE tenant_id=?1 AND id=?2");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r->found = true;
        r->active = sqlite3_column_int(st, 0) != 0;
        r->created = sqlite3_column_int(st, 1) != 0;
        const char *u = (const char *)sqlite3_column_text(st, 2);
        if (u && !(r->users = strdup(u))) rc = SQLITE_NOMEM;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_rc(rc);
}

int channel__refresh(store_conn *c, int64_t tenant, int64_t id, int64_t now, bool force,
                     const char *actor, unsigned *kick, bool *pushed, siyu_err *err) {
    if (pushed) *pushed = false;
    chan_row cr;
    json_t *users = NULL;
    char *text = NULL;
    int rc = chan_row_load(c, tenant, id, &cr);
    if (rc != 0 || !cr.found || !cr.active) goto done;
    if ((rc = channel_roster(c, tenant, id, now, &users, NULL)) != 0) goto done;
    if (!(text = json_dumps(users, JSON_COMPACT))) {
        rc = SIYU_ENOMEM;
        goto done;
    }
    bool changed = !cr.users || strcmp(text, cr.users) != 0;
    if (json_array_size(users) == 0 || (!changed && !force)) goto done;
    sqlite3_stmt *st =
        store_conn_stmt(c, "UPDATE channel SET users=?3, dirty=CASE WHEN ?4 THEN dirty ELSE 1 END, "
                           "updated_at=?5 WHERE tenant_id=?1 AND id=?2");
    if (!st) {
        rc = SIYU_EIO;
        goto done;
    }
    sqlite3_bind_int64(st, 1, tenant);
    sqlite3_bind_int64(st, 2, id);
    store_bind_text(st, 3, text);
    sqlite3_bind_int(st, 4, cr.created);
    sqlite3_bind_int64(st, 5, siyu_now());
    if ((rc = store_stmt_run(st)) != 0) goto done;
    if (cr.created) {
        rc = channel__enqueue(c, tenant, id, "update_contact_way",
                              channel__way_body(c, tenant, id, users, false), actor, kick, err);
        if (rc != 0) goto done;
    }
    if (pushed) *pushed = true;
    if (changed) {
        char target[48], detail[64];
        snprintf(target, sizeof target, "channel:%lld", (long long)id);
        snprintf(detail, sizeof detail, "users=%zu", json_array_size(users));
        rc = store_audit(c, tenant, actor ? actor : "system", "channel.roster", target, 1, detail);
    }
done:
    free(cr.users);
    free(text);
    json_decref(users);
    return rc;
}

typedef struct id_pair {
    int64_t tenant, id;
} id_pair;

int channel_roster_step(store_conn *c, void *arg) {
    channel_roster_run *run = arg;
    run->checked = run->changed = 0;
    run->kick = 0;
    int64_t now = run->now ? run->now : siyu_now();
    sqlite3_stmt *st = store_conn_stmt(
        c, "SELECT tenant_id, id FROM channel WHERE status='active' AND (?1=0 OR tenant_id=?1) "
           "ORDER BY tenant_id, id");
    if (!st) return SIYU_EIO;
    sqlite3_bind_int64(st, 1, run->tenant_id);
    id_pair *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            id_pair *g = realloc(ids, cap * sizeof *ids);
            if (!g) {
                rc = SIYU_ENOMEM;
                break;
            }
            ids = g;
        }
        ids[n++] = (id_pair){sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1)};
    }
    if (rc == 0 && step != SQLITE_DONE) rc = store_rc(step);
    sqlite3_reset(st);
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool pushed = false;
        siyu_err err = {0};
        rc = channel__refresh(c, ids[i].tenant, ids[i].id, now, false, "system", &run->kick,
                              &pushed, &err);
        run->checked++;
        if (pushed) run->changed++;
    }
    free(ids);
    return rc;
}

/* ---- the roster job ------------------------------------------------------ */

struct channel_sched {
    siyu_ctx *ctx;
    int interval_s;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stopping;
};

static void *sched_main(void *arg) {
    channel_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += s->interval_s;
        pthread_cond_timedwait(&s->cond, &s->mu, &ts);
        if (s->stopping) break;
        pthread_mutex_unlock(&s->mu);
        channel_roster_run run = {0};
        int rc = store_write(s->ctx->st, channel_roster_step, &run);
        if (rc != 0)
            log_warn("channels: roster job failed: %s", siyu_strerror(rc));
        else if (run.changed)
            log_info("channels: roster job: %lld of %lld channel(s) changed",
                     (long long)run.changed, (long long)run.checked);
        if (rc == 0) tag_wecom_kick(s->ctx->ob, run.kick);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

channel_sched *channel_sched_start(siyu_ctx *ctx, int interval_s, siyu_err *err) {
    if (interval_s <= 0) return NULL;
    channel_sched *s = calloc(1, sizeof *s);
    if (!s) {
        siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    s->ctx = ctx;
    s->interval_s = interval_s;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (pthread_create(&s->th, NULL, sched_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cond);
        free(s);
        siyu_err_set(err, SIYU_ENOMEM, NULL, "cannot start the channel roster job");
        return NULL;
    }
    log_info("channels: roster job started (every %d s)", interval_s);
    return s;
}

void channel_sched_stop(channel_sched *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s);
}
