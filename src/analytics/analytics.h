/* analytics.h — dashboards, churn, funnels, cohort retention, KPIs with
 * baselines, CAC and RFM over one tenant's customers (docs/ANALYTICS.md
 * defines every number).
 *
 * Two sources:
 *   - the segment engine (src/segment/engine.h) for everything about
 *     customers and their events: per event type the per-customer
 *     timestamps and per-day bitmaps, first_added, last_active, the
 *     employee/department/store/channel bitmaps;
 *   - an `analytics` object (one per tenant, this module) for what the
 *     engine does not hold: every relationship's added/ended time, status,
 *     employee and channel, kept as per-customer rows and folded into
 *     per-local-day counters (tenant-wide, per employee, per channel),
 *     per-local-day event counts per event type and per-local-day bitmaps
 *     of the customers with an event (exact local-day retention);
 *   - the store, for acquisition spend (CAC).
 *
 * Days are the tenant's local days: day number floor((ts + tz) / 86400)
 * with tz the tenant's UTC offset in seconds (Asia/Shanghai: +28800, no DST).
 *
 * Keeping it current: the writer calls analytics_rels_changed with a
 * customer's current relationship rows after every committed change to
 * them, and analytics_event_added for every stored event, under the same
 * lock that guards the engine (segsvc's write lock). Readers call the query
 * functions under the read lock, with the engine of the same tenant.
 * The object has no lock of its own.
 *
 * Ownership: an analytics object belongs to its creator (analytics_free).
 * Results are caller-owned (their *_free functions). */
#ifndef SIYU_ANALYTICS_ANALYTICS_H
#define SIYU_ANALYTICS_ANALYTICS_H

#include <roaring/roaring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segment/engine.h"
#include "store/store.h"
#include "util/err.h"

#define ANALYTICS_TZ_DEFAULT (8 * 3600) /* Asia/Shanghai */
#define ANALYTICS_DAY 86400LL
#define ANALYTICS_MAX_DAYS 3660   /* longest date range of one series */
#define ANALYTICS_FUNNEL_MAX 8    /* steps of a funnel */
#define ANALYTICS_COHORTS_MAX 120 /* cohorts (and periods) of a matrix */

typedef struct analytics analytics;

/* ---- lifecycle ---------------------------------------------------------------- */

/* A tenant's empty aggregates; tz is the UTC offset in seconds (|tz| <= 14 h).
 * NULL when out of memory or tz is out of range. */
analytics *analytics_create(int64_t tenant_id, int32_t tz);
void analytics_free(analytics *a);

/* Reads the tenant's employees and every relationship from c (a read
 * connection of the store) and counts every event e holds per local day and
 * type. e must be the tenant's engine built from the same snapshot (dense
 * ids come from it). 0, or SIYU_EIO / SIYU_ENOMEM with err filled. */
int analytics_build(analytics *a, store_conn *c, const engine *e, siyu_err *err);

/* One relationship row of a customer, as the store holds it. */
typedef struct analytics_rel {
    int64_t employee_id;
    const char *status; /* active | deleted_by_customer | deleted_by_employee | transferred */
    const char *state;  /* the channel (contact way state); NULL or "" = none */
    int64_t added_at;
    int64_t ended_at; /* coalesce(ended_at, added_at); ignored while active */
} analytics_rel;

/* Replaces the relationships of the customer with dense id d (the engine's,
 * after the engine applied the same change) by rows[0..n): the counters of
 * the old rows are taken back, the new ones added. 0 or SIYU_ENOMEM (the
 * caller then rebuilds). */
int analytics_rels_changed(analytics *a, uint32_t d, const analytics_rel *rows, size_t n);

/* One event stored: the customer's dense id (UINT32_MAX for an event of no
 * customer), type, Unix seconds. 0 or SIYU_ENOMEM. */
int analytics_event_added(analytics *a, uint32_t d, const char *type, int64_t ts);

/* The customers (dense ids) with an event of any type on local day `day`:
 * owned by a, NULL when none. */
const roaring_bitmap_t *analytics_day_active(const analytics *a, int32_t day);

/* An employee created or moved (department, store; 0 = none). */
int analytics_employee_put(analytics *a, int64_t id, int64_t department_id, int64_t store_id);

/* Checks the counters against the per-customer rows (every counter equal to
 * a recount). true, or false with *why set. For tests; O(relationships). */
bool analytics_validate(const analytics *a, const char **why);

/* ---- time --------------------------------------------------------------------- */

/* Local day of ts, and the first second of local day `day`. */
int32_t analytics_day(const analytics *a, int64_t ts);
int64_t analytics_day_start(const analytics *a, int32_t day);
/* "YYYY-MM-DD" of a local day (buf of at least 11 bytes); parses back: 0 or
 * SIYU_EINVAL. */
void analytics_day_format(int32_t day, char *buf);
int analytics_day_parse(const char *s, int32_t *day);

/* ---- dashboards ------------------------------------------------------------------ */

/* Which relationships a caller sees: every one (all), or those of the
 * employees in emps (a manager's department tree, an employee itself). */
typedef struct analytics_scope {
    bool all;
    const int64_t *emps;
    size_t n;
    const roaring_bitmap_t *customers; /* customers in scope (events); NULL with all */
} analytics_scope;

typedef enum analytics_by {
    AN_BY_NONE = 0,
    AN_BY_EMPLOYEE,
    AN_BY_DEPARTMENT,
    AN_BY_STORE,
    AN_BY_CHANNEL,
} analytics_by;

/* Relationship counters of a day (or of a range, summed). */
enum {
    AN_ADDS = 0,
    AN_LOST_CUSTOMER, /* ended deleted_by_customer (del_follow_user) */
    AN_LOST_EMPLOYEE, /* ended deleted_by_employee */
    AN_TRANSFERRED,   /* ended transferred (handed to another employee) */
    AN_ENDED_OTHER,   /* ended with another status */
    AN__NCOUNT
};

typedef struct analytics_point {
    int32_t day;
    int64_t c[AN__NCOUNT];
    int64_t net;          /* adds - every end */
    int64_t reachable;    /* end of day: customers (tenant, AN_BY_NONE, whole scope) or
                             active relationships (a group, or a partial scope) */
    int64_t messages;     /* events of type "message" that day (AN_BY_NONE only) */
    int64_t interactions; /* events of every type that day (AN_BY_NONE only) */
} analytics_point;

typedef struct analytics_group {
    int64_t id;           /* employee / department / store id; channel: 0 */
    char *name;           /* channel name; NULL for records (the API adds names) */
    analytics_point *pts; /* [ndays] */
    int64_t sum[AN__NCOUNT], net;
} analytics_group;

typedef struct analytics_series {
    int32_t d0, d1; /* inclusive */
    size_t ndays;   /* points per group: d1 - d0 + 1, or 1 when not daily */
    size_t ngroups;
    analytics_group *g;
} analytics_series;

/* Daily series of local days d0..d1 (at most ANALYTICS_MAX_DAYS) in sc
 * (daily false: one point per group for the whole range, its day d0, its
 * reachable figure the one at the end of d1),
 * broken down by `by` (one group for AN_BY_NONE; relationships without a
 * department / store / channel in a group with id 0 and name NULL). e is
 * used for event counts in a partial scope (may be NULL with a whole
 * scope). 0 with *out filled (analytics_series_free), SIYU_EINVAL for a bad
 * range, SIYU_ENOMEM. */
int analytics_series_get(const analytics *a, const engine *e, const analytics_scope *sc, int32_t d0,
                         int32_t d1, analytics_by by, bool daily, analytics_series *out,
                         siyu_err *err);
void analytics_series_free(analytics_series *s);

/* Groups of s ordered by a key (AN_ADDS.. or AN__NCOUNT for net), desc or
 * asc, ties by id; writes up to n indexes into s->g to idx, their number to
 * *nidx. */
void analytics_series_rank(const analytics_series *s, int key, bool desc, size_t n, size_t *idx,
                           size_t *nidx);

/* Churn of each employee in sc over the `days` local days ending with day
 * `last`: customers lost by customer and by employee, the base (active
 * relationships at the start plus adds within), the rate lost / base and the
 * same for the employee's department as a team. */
typedef struct analytics_churn_row {
    int64_t employee_id, department_id;
    int64_t lost_customer, lost_employee, base;
    double rate, team_rate; /* -1 when the base is 0 */
} analytics_churn_row;
int analytics_churn(const analytics *a, const analytics_scope *sc, int32_t last, int days,
                    analytics_churn_row **out, size_t *n, siyu_err *err);

/* Customers of employee emp (active relationship) with no event of any type
 * since now - days*86400: a new bitmap of dense ids (NULL when out of
 * memory; empty for an unknown employee). */
roaring_bitmap_t *analytics_inactive(const engine *e, int64_t emp, int64_t now, int days);

/* ---- funnels ------------------------------------------------------------------------ */

/* Ordered steps: step 0 is "add" (the customer's first add, customer
 * first_added_at) or an event type; every later step an event type. A
 * customer enters at the first time t0 of step 0 within [from, to] (and in
 * `within`, when given), then reaches step k at its first step-k event at
 * or after step k-1's time and at most t0 + window. */
typedef struct analytics_funnel_def {
    const char *steps[ANALYTICS_FUNNEL_MAX];
    size_t nsteps;
    int64_t from, to, window;
    const roaring_bitmap_t *within; /* NULL: every customer */
} analytics_funnel_def;

typedef struct analytics_funnel {
    size_t nsteps;
    uint64_t count[ANALYTICS_FUNNEL_MAX];
    int64_t median_s[ANALYTICS_FUNNEL_MAX]; /* from the previous step; -1 none */
    roaring_bitmap_t *reached[ANALYTICS_FUNNEL_MAX];
} analytics_funnel;

/* 0 with *out filled (analytics_funnel_free), SIYU_EINVAL (err names the
 * parameter), SIYU_ENOMEM. An unknown event type reaches nobody. */
int analytics_funnel_run(const engine *e, const analytics_funnel_def *def, analytics_funnel *out,
                         siyu_err *err);
void analytics_funnel_free(analytics_funnel *f);
/* Customers who reached step k-1 but not step k (k >= 1): a new bitmap. */
roaring_bitmap_t *analytics_funnel_dropped(const analytics_funnel *f, size_t k);

/* ---- cohorts --------------------------------------------------------------------------- */

typedef enum analytics_period { AN_WEEK = 0, AN_MONTH, AN_DAY } analytics_period;
typedef enum analytics_retention {
    AN_RET_ACTIVE = 0, /* any event in the period */
    AN_RET_PURCHASED,  /* an "order" event in the period */
    AN_RET_CONTACT,    /* an active relationship at the end of the period */
} analytics_retention;

/* Cohorts by the local week (Monday) or month of the customers' first add,
 * the last n periods up to the one holding now; cell[c * n + k] = customers
 * of cohort c retained in period c + k (k < n - c; the rest 0). */
typedef struct analytics_cohort {
    size_t n;
    int32_t *start; /* [n] first local day of each cohort's period */
    uint64_t *size; /* [n] */
    uint64_t *cell; /* [n * n] */
} analytics_cohort;

int analytics_cohort_run(const analytics *a, const engine *e, const roaring_bitmap_t *within,
                         analytics_period per, size_t n, int64_t now, analytics_retention ret,
                         analytics_cohort *out, siyu_err *err);
void analytics_cohort_free(analytics_cohort *c);

/* ---- KPIs, baselines, alerts ------------------------------------------------------------ */

/* The seeds' KPIs that the store holds the data for (docs/ANALYTICS.md,
 * "KPIs"), per period. Rates are fractions; -1 when undefined (a zero
 * denominator). */
typedef enum analytics_kpi {
    AN_KPI_ASSETS = 0,        /* reachable at the period's end (customer assets) */
    AN_KPI_ADDS,              /* relationships added */
    AN_KPI_LOST,              /* lost by customer + by employee */
    AN_KPI_NET,               /* adds - every end */
    AN_KPI_FAN_ADD_RATE,      /* adds / reachable at the start */
    AN_KPI_FAN_DEL_RATE,      /* lost / reachable at the start */
    AN_KPI_INTERACTION_RATE,  /* customers with an interaction / reachable at the start
                                 (whole tenant only; -1 in a partial scope) */
    AN_KPI_FIRST_ADDED,       /* customers first added in the period */
    AN_KPI_SERVICE_RATE,      /* of those, share with a "message" event since their add */
    AN_KPI_MONETIZATION_RATE, /* of those, share with an "order" event since their add */
    AN_KPI__COUNT
} analytics_kpi;

extern const char *const analytics_kpi_names[AN_KPI__COUNT];

typedef struct analytics_kpis {
    size_t n;
    int32_t *start;   /* [n] first local day of each period */
    double *v;        /* [n * AN_KPI__COUNT] */
    double *baseline; /* [n * AN_KPI__COUNT]: median of the trailing periods; -1 none */
    bool *alert;      /* [n * AN_KPI__COUNT]: below baseline * (1 - margin) */
} analytics_kpis;

/* KPIs of the n periods (days, Monday weeks or months, local) ending with
 * the one holding now, in sc, each with a baseline: the median of the
 * values of the `trailing` periods before it (all of them must exist and be
 * defined), and an alert when the value is below baseline * (1 - margin).
 * Counts (assets, adds, ...) alert when they fall, rates likewise; "lost"
 * and "fan deletion rate" alert when they rise above baseline * (1 +
 * margin) instead. 0 with *out filled (analytics_kpis_free), SIYU_EINVAL
 * naming the parameter, SIYU_ENOMEM. */
int analytics_kpis_run(const analytics *a, const engine *e, const analytics_scope *sc,
                       analytics_period per, size_t n, size_t trailing, double margin, int64_t now,
                       analytics_kpis *out, siyu_err *err);
void analytics_kpis_free(analytics_kpis *k);

/* ---- acquisition spend and CAC ----------------------------------------------------------- */

/* Write step (store_write): records the spend of one channel on one local day
 * (arg: analytics_spend_put_arg), replacing an earlier figure, with an audit
 * record. 0, or SIYU_EINVAL (err names channel, date or amount). */
typedef struct analytics_spend_put_arg {
    int64_t tenant_id;
    const char *channel;  /* 1..64 bytes */
    const char *date;     /* YYYY-MM-DD */
    int64_t amount_cents; /* 0 .. 10^13 */
    const char *actor;
    siyu_err err;
} analytics_spend_put_arg;
int analytics_spend_put(store_conn *c, void *arg);

/* CAC per channel over local days d0..d1: spend (from the store, read on c)
 * and adds (relationships added with the channel, from a) with
 * cac_cents = spend / adds (-1 without adds); channels with spend or adds.
 * 0 with *out (free) and *n set, SIYU_EIO, SIYU_ENOMEM. */
typedef struct analytics_cac_row {
    char *channel; /* NULL: relationships without a channel */
    int64_t spend_cents, adds, cac_cents;
} analytics_cac_row;
int analytics_cac(const analytics *a, store_conn *c, int32_t d0, int32_t d1,
                  analytics_cac_row **out, size_t *n, siyu_err *err);
void analytics_cac_free(analytics_cac_row *rows, size_t n);

/* ---- RFM and frequency x unit price ----------------------------------------------------- */

/* Over the customers of `within` (NULL: all) with at least one "order"
 * event: recency (days since the last order at now), frequency (order
 * events), monetary (spent, cents; props.amount of the orders). Each gets a
 * quintile score 1..5 (5 = most recent / most frequent / highest spend) by
 * thresholds at the 20/40/60/80th percentiles of the buyers' values (equal
 * values, equal score). Quadrants: high frequency when orders >= freq_min,
 * high unit price when spent / orders >= aov_min_cents; 0 for either
 * threshold means "the buyers' median". */
typedef struct analytics_rfm_def {
    const roaring_bitmap_t *within;
    int64_t now;
    int64_t freq_min, aov_min_cents;
} analytics_rfm_def;

enum { AN_Q_LOW_LOW = 0, AN_Q_LOW_HIGH, AN_Q_HIGH_LOW, AN_Q_HIGH_HIGH }; /* freq, aov */

typedef struct analytics_rfm {
    uint64_t buyers;
    /* thresholds: a value at or above t[k] (below, for recency days) scores
     * at least k + 2 */
    int64_t r_days[4], f[4], m_cents[4];
    uint64_t cells[5][5][5]; /* [r-1][f-1][m-1] */
    uint64_t r_count[5], f_count[5], m_count[5];
    int64_t freq_min, aov_min_cents; /* the thresholds used */
    uint64_t quad_count[4];
    roaring_bitmap_t *quad[4]; /* customers of each quadrant */
} analytics_rfm;

/* 0 with *out filled (analytics_rfm_free), SIYU_ENOMEM. */
int analytics_rfm_run(const engine *e, const analytics_rfm_def *def, analytics_rfm *out,
                      siyu_err *err);
void analytics_rfm_free(analytics_rfm *r);

#endif
