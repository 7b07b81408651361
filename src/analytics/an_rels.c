/* an_rels.c — one tenant's analytics object: the relationship rows of every
 * customer and the per-local-day counters folded from them, plus event
 * counts per local day and type.
 *
 * Data structures (an_int.h):
 *   employees  emp_id/emp_dep/emp_sto by index, aidx id -> index
 *   channels   names by index (0 = none), aidx name -> index
 *   types      event type names by index, aidx name -> index
 *   days       aday per local day from day0: tenant counters, the change of
 *              reachable customers, lazily allocated per employee / channel
 *              counter rows and per type event counts
 *   customers  by the engine's dense id: rel1[d] inline, further rows in
 *              xv[xi[d]]
 *
 * Invariant: every counter equals what the stored rows give (analytics_
 * validate recounts): a row adds 1 to AN_ADDS on its added day (tenant,
 * employee, channel) and, once ended, 1 to its end counter on its end day;
 * a customer's rows, as half-open local-day intervals [added day, end day),
 * are merged, and each merged interval adds +1 to reach on its first day and
 * -1 on its end day. A change takes the old rows' contributions back and
 * adds the new ones.
 *
 * Ownership: the object owns everything it points to. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/an_int.h"
#include "segment/engine_int.h"

/* ---- indexes ------------------------------------------------------------------ */

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

typedef bool (*aidx_eq)(const analytics *a, uint32_t idx, const void *key);

static uint32_t aidx_find(const aidx *x, const analytics *a, uint64_t h, aidx_eq eq,
                          const void *key) {
    if (!x->cap) return UINT32_MAX;
    for (size_t s = h & (x->cap - 1);; s = (s + 1) & (x->cap - 1)) {
        if (!x->slot[s]) return UINT32_MAX;
        if (eq(a, x->slot[s] - 1, key)) return x->slot[s] - 1;
    }
}

/* Inserts idx (not present) under hash h; hashes of present entries come
 * from rehash(a, idx). false when out of memory. */
static bool aidx_put(aidx *x, const analytics *a, uint64_t h, uint32_t idx,
                     uint64_t (*rehash)(const analytics *a, uint32_t idx)) {
    if ((x->n + 1) * 2 > x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        uint32_t *slot = calloc(cap, sizeof *slot);
        if (!slot) return false;
        for (size_t i = 0; i < x->cap; i++) {
            if (!x->slot[i]) continue;
            size_t s = rehash(a, x->slot[i] - 1) & (cap - 1);
            while (slot[s])
                s = (s + 1) & (cap - 1);
            slot[s] = x->slot[i];
        }
        free(x->slot);
        x->slot = slot;
        x->cap = cap;
    }
    size_t s = h & (x->cap - 1);
    while (x->slot[s])
        s = (s + 1) & (x->cap - 1);
    x->slot[s] = idx + 1;
    x->n++;
    return true;
}

static bool emp_eq(const analytics *a, uint32_t i, const void *key) {
    return a->emp_id[i] == *(const int64_t *)key;
}
static uint64_t emp_rehash(const analytics *a, uint32_t i) {
    return mix((uint64_t)a->emp_id[i]);
}
static bool chan_eq(const analytics *a, uint32_t i, const void *key) {
    return i > 0 && strcmp(a->chan[i], key) == 0;
}
static uint64_t chan_rehash(const analytics *a, uint32_t i) {
    return str_hash(a->chan[i]);
}
static bool type_eq(const analytics *a, uint32_t i, const void *key) {
    return strcmp(a->type[i], key) == 0;
}
static uint64_t type_rehash(const analytics *a, uint32_t i) {
    return str_hash(a->type[i]);
}

uint32_t an__emp_find(const analytics *a, int64_t id) {
    return aidx_find(&a->emp_ix, a, mix((uint64_t)id), emp_eq, &id);
}

uint32_t an__type_find(const analytics *a, const char *type) {
    return aidx_find(&a->type_ix, a, str_hash(type), type_eq, type);
}

/* Grows the per-day rows of kind (0 emp, 1 chan, 2 ev) from old to cap
 * entries. */
static int days_widen(analytics *a, int kind, uint32_t old, uint32_t cap) {
    size_t w = kind == 2 ? 1 : AN__NCOUNT;
    for (uint32_t i = 0; i < a->ndays; i++) {
        aday *dy = &a->days[i];
        void **p = kind == 0   ? (void **)&dy->emp
                   : kind == 1 ? (void **)&dy->chan
                               : (void **)&dy->ev;
        if (!*p) continue;
        size_t es = kind == 2 ? sizeof(uint32_t) : sizeof(int32_t);
        char *v = realloc(*p, (size_t)cap * w * es);
        if (!v) return SIYU_ENOMEM;
        memset(v + (size_t)old * w * es, 0, (size_t)(cap - old) * w * es);
        *p = v;
    }
    return 0;
}

static uint32_t emp_get(analytics *a, int64_t id) {
    uint32_t i = an__emp_find(a, id);
    if (i != UINT32_MAX) return i;
    if (a->nemp == a->emp_cap) {
        uint32_t cap = a->emp_cap ? a->emp_cap * 2 : 64;
        int64_t *v1 = realloc(a->emp_id, cap * sizeof *v1);
        if (v1) a->emp_id = v1;
        int64_t *v2 = realloc(a->emp_dep, cap * sizeof *v2);
        if (v2) a->emp_dep = v2;
        int64_t *v3 = realloc(a->emp_sto, cap * sizeof *v3);
        if (v3) a->emp_sto = v3;
        int64_t *v4 = realloc(a->emp_active, cap * sizeof *v4);
        if (v4) a->emp_active = v4;
        if (!v1 || !v2 || !v3 || !v4 || days_widen(a, 0, a->emp_cap, cap) != 0) return UINT32_MAX;
        a->emp_cap = cap;
    }
    i = a->nemp;
    a->emp_id[i] = id;
    a->emp_dep[i] = 0;
    a->emp_sto[i] = 0;
    a->emp_active[i] = 0;
    if (!aidx_put(&a->emp_ix, a, mix((uint64_t)id), i, emp_rehash)) return UINT32_MAX;
    a->nemp++;
    return i;
}

/* Index of a name in names (growing with kind's day rows), or UINT32_MAX. */
static uint32_t name_get(analytics *a, int kind, const char *name) {
    char ***names = kind == 1 ? &a->chan : &a->type;
    uint32_t *n = kind == 1 ? &a->nchan : &a->ntype;
    uint32_t *cap = kind == 1 ? &a->chan_cap : &a->type_cap;
    aidx *ix = kind == 1 ? &a->chan_ix : &a->type_ix;
    uint64_t h = str_hash(name);
    uint32_t i = aidx_find(ix, a, h, kind == 1 ? chan_eq : type_eq, name);
    if (i != UINT32_MAX) return i;
    if (*n == *cap) {
        uint32_t nc = *cap ? *cap * 2 : 16;
        char **v = realloc(*names, nc * sizeof *v);
        if (!v) return UINT32_MAX;
        *names = v;
        if (kind == 1) {
            int64_t *act = realloc(a->chan_active, nc * sizeof *act);
            if (!act) return UINT32_MAX;
            memset(act + *cap, 0, (nc - *cap) * sizeof *act);
            a->chan_active = act;
        }
        if (days_widen(a, kind, *cap, nc) != 0) return UINT32_MAX;
        *cap = nc;
    }
    i = *n;
    if (!((*names)[i] = strdup(name))) return UINT32_MAX;
    if (!aidx_put(ix, a, h, i, kind == 1 ? chan_rehash : type_rehash)) {
        free((*names)[i]);
        return UINT32_MAX;
    }
    (*n)++;
    return i;
}

/* ---- time --------------------------------------------------------------------- */

int32_t an__day_of(int32_t tz, int64_t ts) {
    int64_t t = ts + tz;
    int64_t d = t / ANALYTICS_DAY;
    if (t % ANALYTICS_DAY < 0) d--;
    return (int32_t)d;
}

int32_t analytics_day(const analytics *a, int64_t ts) {
    return an__day_of(a->tz, ts);
}

int64_t analytics_day_start(const analytics *a, int32_t day) {
    return (int64_t)day * ANALYTICS_DAY - a->tz;
}

/* Civil date <-> days since 1970-01-01 (Howard Hinnant's algorithms). */
int32_t an__days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + (int64_t)doe - 719468);
}

void an__civil(int32_t days, int64_t *y, unsigned *m, unsigned *d) {
    int64_t z = (int64_t)days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void analytics_day_format(int32_t day, char *buf) {
    int64_t y;
    unsigned m, d;
    an__civil(day, &y, &m, &d);
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%04lld-%02u-%02u", (long long)(y % 10000), m % 100, d % 100);
    memcpy(buf, tmp, 10);
    buf[10] = 0;
}

int analytics_day_parse(const char *s, int32_t *day) {
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-') return SIYU_EINVAL;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return SIYU_EINVAL;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || y > 2105 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) return SIYU_EINVAL;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m == 2 && d == 29 && !leap) return SIYU_EINVAL;
    *day = an__days_from_civil(y, (unsigned)m, (unsigned)d);
    return 0;
}

/* ---- days ----------------------------------------------------------------------- */

const aday *an__day(const analytics *a, int32_t day) {
    if (a->ndays == 0 || day < a->day0 || (int64_t)day >= (int64_t)a->day0 + a->ndays) return NULL;
    return &a->days[day - a->day0];
}

/* The day record of `day`, growing the range (with slack) as needed. */
static aday *day_get(analytics *a, int32_t day) {
    if (a->ndays && day >= a->day0 && (int64_t)day < (int64_t)a->day0 + a->ndays)
        return &a->days[day - a->day0];
    int32_t lo = a->ndays ? (day < a->day0 ? day : a->day0) : day;
    int32_t hi =
        a->ndays ? (day > a->day0 + (int32_t)a->ndays - 1 ? day : a->day0 + (int32_t)a->ndays - 1)
                 : day;
    uint32_t slack = a->ndays / 2 + 32;
    if (a->ndays && day < a->day0) lo -= (int32_t)slack;
    if (a->ndays && day > a->day0) hi += (int32_t)slack;
    uint32_t n = (uint32_t)(hi - lo + 1);
    aday *v = calloc(n, sizeof *v);
    if (!v) return NULL;
    if (a->ndays) memcpy(v + (a->day0 - lo), a->days, a->ndays * sizeof *v);
    free(a->days);
    a->days = v;
    a->day0 = lo;
    a->ndays = n;
    return &a->days[day - lo];
}

static int32_t *day_row(aday *dy, int kind, uint32_t cap) {
    int32_t **p = kind == 0 ? &dy->emp : &dy->chan;
    if (!*p) *p = calloc((size_t)cap * AN__NCOUNT, sizeof **p);
    return *p;
}

/* ---- folding rows into counters -------------------------------------------------- */

static int count_at(analytics *a, uint32_t ts, const arel *r, int k, int sign) {
    aday *dy = day_get(a, an__day_of(a->tz, ts));
    if (!dy) return SIYU_ENOMEM;
    int32_t *er = day_row(dy, 0, a->emp_cap), *cr = day_row(dy, 1, a->chan_cap);
    if (!er || !cr) return SIYU_ENOMEM;
    dy->c[k] += sign;
    er[(size_t)r->emp * AN__NCOUNT + k] += sign;
    cr[(size_t)r->chan * AN__NCOUNT + k] += sign;
    int net = k == AN_ADDS ? sign : -sign;
    a->emp_active[r->emp] += net;
    a->chan_active[r->chan] += net;
    return 0;
}

static int rel_fold(analytics *a, const arel *r, int sign) {
    int rc = count_at(a, r->added, r, AN_ADDS, sign);
    if (rc == 0 && r->st != AN_ADDS) rc = count_at(a, r->end, r, r->st, sign);
    return rc;
}

typedef struct span {
    int32_t lo, hi; /* [lo, hi) in local days; hi INT32_MAX while active */
} span;

static int span_cmp(const void *x, const void *y) {
    const span *p = x, *q = y;
    return p->lo < q->lo ? -1 : p->lo > q->lo;
}

/* The reach contribution of a customer's rows v[0..n). */
static int reach_fold(analytics *a, const arel *v, uint32_t n, int sign) {
    span buf[16], *s = n <= 16 ? buf : malloc(n * sizeof *s);
    if (!s) return SIYU_ENOMEM;
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        int32_t lo = an__day_of(a->tz, v[i].added);
        int32_t hi = v[i].end == AN_ACTIVE_END ? INT32_MAX : an__day_of(a->tz, v[i].end);
        if (hi > lo) s[k++] = (span){lo, hi};
    }
    qsort(s, k, sizeof *s, span_cmp);
    int rc = 0;
    for (uint32_t i = 0; i < k && rc == 0;) {
        int32_t lo = s[i].lo, hi = s[i].hi;
        for (i++; i < k && s[i].lo <= hi; i++)
            if (s[i].hi > hi) hi = s[i].hi;
        aday *dy = day_get(a, lo);
        if (!dy) {
            rc = SIYU_ENOMEM;
            break;
        }
        dy->reach += sign;
        if (hi == INT32_MAX) a->reach_total += sign;
        if (hi != INT32_MAX) {
            if (!(dy = day_get(a, hi))) {
                rc = SIYU_ENOMEM;
                break;
            }
            dy->reach -= sign;
        }
    }
    if (s != buf) free(s);
    return rc;
}

uint32_t an__rel_count(const analytics *a, uint32_t d) {
    if (d >= a->ncust || a->rel1[d].st == AN_REL_NONE) return 0;
    return 1 + (a->xi[d] == UINT32_MAX ? 0 : a->xv[a->xi[d]].n);
}

const arel *an__rel_at(const analytics *a, uint32_t d, uint32_t i) {
    return i == 0 ? &a->rel1[d] : &a->xv[a->xi[d]].v[i - 1];
}

/* The rows of d as one contiguous array (v, or a->xv's when i > 0): copies
 * into out (n entries). */
static void rels_copy(const analytics *a, uint32_t d, arel *out, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        out[i] = *an__rel_at(a, d, i);
}

static int cust_grow(analytics *a, uint32_t need) {
    if (need <= a->ncust) return 0;
    uint32_t cap = a->ncust ? a->ncust : 1024;
    while (cap < need)
        cap = cap > UINT32_MAX / 2 ? need : cap * 2;
    arel *r = realloc(a->rel1, (size_t)cap * sizeof *r);
    if (!r) return SIYU_ENOMEM;
    a->rel1 = r;
    uint32_t *x = realloc(a->xi, (size_t)cap * sizeof *x);
    if (!x) return SIYU_ENOMEM;
    a->xi = x;
    for (uint32_t i = a->ncust; i < cap; i++) {
        a->rel1[i].st = AN_REL_NONE;
        a->xi[i] = UINT32_MAX;
    }
    a->ncust = cap;
    return 0;
}

static uint32_t clamp32(int64_t t) {
    return t < 0 ? 0 : t > (int64_t)UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)t;
}

static uint8_t status_counter(const char *s) {
    if (!s || strcmp(s, "active") == 0) return AN_ADDS;
    if (strcmp(s, "deleted_by_customer") == 0) return AN_LOST_CUSTOMER;
    if (strcmp(s, "deleted_by_employee") == 0) return AN_LOST_EMPLOYEE;
    if (strcmp(s, "transferred") == 0) return AN_TRANSFERRED;
    return AN_ENDED_OTHER;
}

/* Stores v[0..n) as d's rows. */
static int rels_store(analytics *a, uint32_t d, const arel *v, uint32_t n) {
    if (n == 0) {
        a->rel1[d].st = AN_REL_NONE;
        if (a->xi[d] != UINT32_MAX) a->xv[a->xi[d]].n = 0;
        return 0;
    }
    a->rel1[d] = v[0];
    if (n == 1) {
        if (a->xi[d] != UINT32_MAX) a->xv[a->xi[d]].n = 0;
        return 0;
    }
    if (a->xi[d] == UINT32_MAX) {
        if (a->nxv == a->cap_xv) {
            uint32_t cap = a->cap_xv ? a->cap_xv * 2 : 256;
            arelv *x = realloc(a->xv, cap * sizeof *x);
            if (!x) return SIYU_ENOMEM;
            a->xv = x;
            a->cap_xv = cap;
        }
        a->xv[a->nxv] = (arelv){0};
        a->xi[d] = a->nxv++;
    }
    arelv *x = &a->xv[a->xi[d]];
    if (x->cap < n - 1) {
        arel *nv = realloc(x->v, (n - 1) * sizeof *nv);
        if (!nv) return SIYU_ENOMEM;
        x->v = nv;
        x->cap = n - 1;
    }
    memcpy(x->v, v + 1, (n - 1) * sizeof *v);
    x->n = n - 1;
    return 0;
}

int analytics_rels_changed(analytics *a, uint32_t d, const analytics_rel *rows, size_t n) {
    if (n > UINT32_MAX / 2) return SIYU_ENOMEM;
    int rc = cust_grow(a, d + 1);
    if (rc != 0) return rc;
    uint32_t nold = an__rel_count(a, d);
    size_t most = nold > n ? nold : n;
    arel buf[8] = {{0}}, *old = most <= 4 ? buf : malloc(most * 2 * sizeof *old);
    if (!old) return SIYU_ENOMEM;
    arel *nv = old + (most <= 4 ? 4 : most);
    rels_copy(a, d, old, nold);
    for (size_t i = 0; i < n; i++) {
        uint32_t e = emp_get(a, rows[i].employee_id);
        uint32_t ch = rows[i].state && rows[i].state[0] ? name_get(a, 1, rows[i].state) : 0;
        if (e == UINT32_MAX || ch == UINT32_MAX) {
            rc = SIYU_ENOMEM;
            goto done;
        }
        arel *r = &nv[i];
        r->emp = e;
        r->chan = ch;
        r->st = status_counter(rows[i].status);
        r->added = clamp32(rows[i].added_at);
        r->end = r->st == AN_ADDS ? AN_ACTIVE_END : clamp32(rows[i].ended_at);
        if (r->end < r->added) r->end = r->added;
    }
    for (uint32_t i = 0; i < nold && rc == 0; i++)
        rc = rel_fold(a, &old[i], -1);
    if (rc == 0) rc = reach_fold(a, old, nold, -1);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = rel_fold(a, &nv[i], +1);
    if (rc == 0) rc = reach_fold(a, nv, (uint32_t)n, +1);
    if (rc == 0) rc = rels_store(a, d, nv, (uint32_t)n);
done:
    if (old != buf) free(old);
    return rc;
}

int analytics_event_added(analytics *a, uint32_t d, const char *type, int64_t ts) {
    uint32_t t = name_get(a, 2, type);
    if (t == UINT32_MAX) return SIYU_ENOMEM;
    aday *dy = day_get(a, an__day_of(a->tz, ts));
    if (!dy) return SIYU_ENOMEM;
    if (!dy->ev && !(dy->ev = calloc(a->type_cap, sizeof *dy->ev))) return SIYU_ENOMEM;
    dy->ev[t]++;
    if (d == UINT32_MAX) return 0;
    if (!dy->act && !(dy->act = roaring_bitmap_create())) return SIYU_ENOMEM;
    roaring_bitmap_add(dy->act, d);
    return 0;
}

const roaring_bitmap_t *analytics_day_active(const analytics *a, int32_t day) {
    const aday *dy = an__day(a, day);
    return dy ? dy->act : NULL;
}

int analytics_employee_put(analytics *a, int64_t id, int64_t department_id, int64_t store_id) {
    uint32_t i = emp_get(a, id);
    if (i == UINT32_MAX) return SIYU_ENOMEM;
    a->emp_dep[i] = department_id;
    a->emp_sto[i] = store_id;
    return 0;
}

/* ---- lifecycle -------------------------------------------------------------------- */

analytics *analytics_create(int64_t tenant_id, int32_t tz) {
    if (tz < -14 * 3600 || tz > 14 * 3600) return NULL;
    analytics *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->tenant_id = tenant_id;
    a->tz = tz;
    a->chan = malloc(16 * sizeof *a->chan);
    if (!a->chan) {
        free(a);
        return NULL;
    }

    a->chan_active = calloc(16, sizeof *a->chan_active);
    if (!a->chan_active) {
        free(a->chan);
        free(a);
        return NULL;
    }
    a->chan[0] = NULL; /* index 0: no channel */
    a->nchan = 1;
    a->chan_cap = 16;
    return a;
}

void analytics_free(analytics *a) {
    if (!a) return;
    for (uint32_t i = 0; i < a->ndays; i++) {
        free(a->days[i].emp);
        free(a->days[i].chan);
        free(a->days[i].ev);
        if (a->days[i].act) roaring_bitmap_free(a->days[i].act);
    }
    free(a->days);
    for (uint32_t i = 1; i < a->nchan; i++)
        free(a->chan[i]);
    free(a->chan);
    for (uint32_t i = 0; i < a->ntype; i++)
        free(a->type[i]);
    free(a->type);
    free(a->emp_id);
    free(a->emp_dep);
    free(a->emp_sto);
    free(a->emp_active);
    free(a->chan_active);
    free(a->emp_ix.slot);
    free(a->chan_ix.slot);
    free(a->type_ix.slot);
    for (uint32_t i = 0; i < a->nxv; i++)
        free(a->xv[i].v);
    free(a->xv);
    free(a->rel1);
    free(a->xi);
    free(a);
}

/* Counts every event of e per local day and type, and sets the per-day
 * bitmaps of active customers, in one pass by customer (so each day's
 * bitmap grows by appends). */
static int ev_build(analytics *a, const engine *e) {
    size_t nt = e->nev_types;
    uint32_t *tix = malloc((nt ? nt : 1) * sizeof *tix);
    if (!tix) return SIYU_ENOMEM;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t t = 0; t < nt; t++) {
        const evcol *c = &e->ev[t];
        if ((tix[t] = name_get(a, 2, c->type)) == UINT32_MAX) {
            free(tix);
            return SIYU_ENOMEM;
        }
        if (c->ndays) {
            if (c->day0 * ANALYTICS_DAY < lo) lo = c->day0 * ANALYTICS_DAY;
            int64_t end = (c->day0 + (int64_t)c->ndays) * ANALYTICS_DAY;
            if (end > hi) hi = end;
        }
    }
    int rc = 0;
    uint32_t *last = NULL;
    if (lo <= hi) {
        /* the whole range first, so no day record moves during the pass */
        if (!day_get(a, an__day_of(a->tz, lo)) || !day_get(a, an__day_of(a->tz, hi)))
            rc = SIYU_ENOMEM;
        if (rc == 0 && !(last = calloc(a->ndays, sizeof *last))) rc = SIYU_ENOMEM;
    }
    for (uint32_t d = 0; d < e->n && rc == 0 && last; d++) {
        for (size_t t = 0; t < nt && rc == 0; t++) {
            const evcol *c = &e->ev[t];
            for (int part = 0; part < 2; part++) {
                const uint32_t *ts;
                uint32_t n;
                if (part == 0) {
                    ts = c->ts + c->off[d];
                    n = c->off[d + 1] - c->off[d];
                } else {
                    if (!(c->ovbits[d / 64] >> (d % 64) & 1)) break;
                    uint32_t sl = engine__u32map_get(&c->ovmap, d);
                    if (sl == UINT32_MAX) break;
                    ts = c->ov[sl].ts;
                    n = c->ov[sl].n;
                }
                for (uint32_t i = 0; i < n; i++) {
                    uint32_t k = (uint32_t)(an__day_of(a->tz, ts[i]) - a->day0);
                    aday *dy = &a->days[k];
                    if (!dy->ev && !(dy->ev = calloc(a->type_cap, sizeof *dy->ev))) {
                        rc = SIYU_ENOMEM;
                        break;
                    }
                    dy->ev[tix[t]]++;
                    if (last[k] == d + 1) continue;
                    last[k] = d + 1;
                    if (!dy->act && !(dy->act = roaring_bitmap_create())) {
                        rc = SIYU_ENOMEM;
                        break;
                    }
                    roaring_bitmap_add(dy->act, d);
                }
            }
        }
    }
    free(last);
    free(tix);
    return rc;
}

int analytics_build(analytics *a, store_conn *c, const engine *e, siyu_err *err) {
    sqlite3_stmt *st =
        store_conn_stmt(c, "SELECT id, coalesce(department_id, 0), "
                           "coalesce(store_id, 0) FROM employee WHERE tenant_id = ?");
    if (!st) return siyu_err_set(err, SIYU_EIO, NULL, "cannot read employees");
    sqlite3_bind_int64(st, 1, a->tenant_id);
    int rc = 0, s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW && rc == 0)
        rc = analytics_employee_put(a, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                                    sqlite3_column_int64(st, 2));
    sqlite3_reset(st);
    if (rc != 0) return siyu_err_set(err, rc, NULL, "out of memory");
    if (s != SQLITE_DONE) return siyu_err_set(err, SIYU_EIO, NULL, "cannot read employees");

    if (engine_customers(e) && cust_grow(a, engine_customers(e)) != 0)
        return siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    st = store_conn_stmt(c, "SELECT customer_id, employee_id, status, state, added_at, "
                            "coalesce(ended_at, added_at) FROM relationship "
                            "WHERE tenant_id = ? ORDER BY customer_id");
    if (!st) return siyu_err_set(err, SIYU_EIO, NULL, "cannot read relationships");
    sqlite3_bind_int64(st, 1, a->tenant_id);
    analytics_rel *rows = NULL;
    char **strs = NULL;
    size_t n = 0, cap = 0;
    int64_t cur = 0;
    for (;;) {
        s = sqlite3_step(st);
        bool row = s == SQLITE_ROW;
        int64_t cid = row ? sqlite3_column_int64(st, 0) : 0;
        if (n && (!row || cid != cur)) {
            uint32_t d;
            if (engine_dense_id(e, cur, &d)) rc = analytics_rels_changed(a, d, rows, n);
            for (size_t i = 0; i < 2 * n; i++)
                free(strs[i]);
            n = 0;
        }
        if (!row || rc != 0) break;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            analytics_rel *nr = realloc(rows, nc * sizeof *nr);
            if (nr) rows = nr;
            char **ns = realloc(strs, nc * 2 * sizeof *ns);
            if (ns) strs = ns;
            if (!nr || !ns) {
                rc = SIYU_ENOMEM;
                break;
            }
            cap = nc;
        }
        cur = cid;
        const char *status = (const char *)sqlite3_column_text(st, 2);
        const char *state = (const char *)sqlite3_column_text(st, 3);
        strs[2 * n] = status ? strdup(status) : NULL;
        strs[2 * n + 1] = state ? strdup(state) : NULL;
        rows[n] = (analytics_rel){.employee_id = sqlite3_column_int64(st, 1),
                                  .status = strs[2 * n],
                                  .state = strs[2 * n + 1],
                                  .added_at = sqlite3_column_int64(st, 4),
                                  .ended_at = sqlite3_column_int64(st, 5)};
        n++;
        if ((status && !strs[2 * n - 2]) || (state && !strs[2 * n - 1])) rc = SIYU_ENOMEM;
    }
    for (size_t i = 0; i < 2 * n; i++)
        free(strs[i]);
    free(rows);
    free(strs);
    sqlite3_reset(st);
    if (rc != 0) return siyu_err_set(err, rc, NULL, "out of memory");
    if (s != SQLITE_DONE) return siyu_err_set(err, SIYU_EIO, NULL, "cannot read relationships");

    if ((rc = ev_build(a, e)) != 0) return siyu_err_set(err, rc, NULL, "out of memory");
    return 0;
}

/* ---- validation ------------------------------------------------------------------------- */

bool analytics_validate(const analytics *a, const char **why) {
    analytics *b = analytics_create(a->tenant_id, a->tz);
    if (!b) {
        *why = "out of memory";
        return false;
    }
    bool ok = true;
    *why = NULL;
    analytics_rel *rows = NULL;
    uint32_t cap = 0;
    for (uint32_t d = 0; d < a->ncust && ok; d++) {
        uint32_t n = an__rel_count(a, d);
        if (n > cap) {
            analytics_rel *nr = realloc(rows, n * sizeof *nr);
            if (!nr) {
                *why = "out of memory";
                ok = false;
                break;
            }
            rows = nr;
            cap = n;
        }
        for (uint32_t i = 0; i < n; i++) {
            const arel *r = an__rel_at(a, d, i);
            static const char *const st[] = {"active", "deleted_by_customer", "deleted_by_employee",
                                             "transferred", "other"};
            rows[i] = (analytics_rel){.employee_id = a->emp_id[r->emp],
                                      .status = st[r->st],
                                      .state = r->chan ? a->chan[r->chan] : NULL,
                                      .added_at = r->added,
                                      .ended_at = r->end};
        }
        if (n && analytics_rels_changed(b, d, rows, n) != 0) {
            *why = "out of memory";
            ok = false;
        }
    }
    for (uint32_t i = 0; i < b->ndays && ok; i++) {
        const aday *y = &b->days[i];
        const aday *x = an__day(a, b->day0 + (int32_t)i);
        aday zero = {0};
        if (!x) x = &zero;
        for (int k = 0; k < AN__NCOUNT; k++)
            if (x->c[k] != y->c[k]) *why = "a tenant counter differs from a recount";
        if (x->reach != y->reach) *why = "a reach change differs from a recount";
        for (uint32_t e = 0; e < b->nemp && !*why; e++) {
            uint32_t ea = an__emp_find(a, b->emp_id[e]);
            for (int k = 0; k < AN__NCOUNT; k++) {
                int32_t vb = y->emp ? y->emp[(size_t)e * AN__NCOUNT + k] : 0;
                int32_t va = x->emp && ea != UINT32_MAX ? x->emp[(size_t)ea * AN__NCOUNT + k] : 0;
                if (va != vb) *why = "an employee counter differs from a recount";
            }
        }
        int64_t sa[AN__NCOUNT] = {0}, sb[AN__NCOUNT] = {0};
        for (uint32_t ch = 0; ch < a->nchan && x->chan; ch++)
            for (int k = 0; k < AN__NCOUNT; k++)
                sa[k] += x->chan[(size_t)ch * AN__NCOUNT + k];
        for (uint32_t ch = 0; ch < b->nchan && y->chan; ch++)
            for (int k = 0; k < AN__NCOUNT; k++)
                sb[k] += y->chan[(size_t)ch * AN__NCOUNT + k];
        for (int k = 0; k < AN__NCOUNT; k++)
            if (sa[k] != sb[k] || sa[k] != x->c[k]) *why = "channel counters do not add up";
        if (*why) ok = false;
    }
    /* days a holds beyond b's range must be zero */
    for (uint32_t i = 0; i < a->ndays && ok; i++) {
        const aday *x = &a->days[i];
        if (an__day(b, a->day0 + (int32_t)i)) continue;
        for (int k = 0; k < AN__NCOUNT; k++)
            if (x->c[k]) ok = false, *why = "a counter outside the recounted days";
        if (x->reach) ok = false, *why = "a reach change outside the recounted days";
    }
    free(rows);
    analytics_free(b);
    return ok;
}
