/* an_int.h — the analytics module's internal layout, shared by its files:
 *   an_rels.c    the object: employees, channels, event types, per-customer
 *                relationship rows, per-local-day counters; build, changes,
 *                validate, time
 *   an_dash.c    daily series, rankings, churn, inactive customers
 *   an_funnel.c  funnels and cohort retention (engine reads)
 * Nothing here is part of the module's API (analytics.h). */
#ifndef SIYU_ANALYTICS_AN_INT_H
#define SIYU_ANALYTICS_AN_INT_H

#include <stdint.h>

#include "analytics/analytics.h"

/* One relationship of a customer: times as Unix seconds clamped to uint32,
 * end = UINT32_MAX while active (end >= added otherwise), emp an index into
 * the employee table, chan an index into the channel table (0 = none), st
 * the counter its end goes to (AN_LOST_CUSTOMER ..), AN_ADDS while active. */
typedef struct arel {
    uint32_t added, end;
    uint32_t emp, chan;
    uint8_t st;
} arel;

typedef struct arelv {
    arel *v;
    uint32_t n, cap;
} arelv;

/* An index over names or ids: slots hold index + 1 (0 = empty). */
typedef struct aidx {
    uint32_t *slot;
    size_t cap, n;
} aidx;

/* One local day. c: tenant-wide counters; reach: change of reachable
 * customers at its end; emp / chan: per employee / channel counters
 * [cap * AN__NCOUNT] (NULL while the day has none); ev: events per type. */
typedef struct aday {
    int64_t c[AN__NCOUNT];
    int64_t reach;
    int32_t *emp, *chan;
    uint32_t *ev;
    roaring_bitmap_t *act; /* customers with an event of any type; NULL = none */
} aday;

struct analytics {
    int64_t tenant_id;
    int32_t tz;
    /* employees: id, department, store by index */
    int64_t *emp_id, *emp_dep, *emp_sto;
    uint32_t nemp, emp_cap;
    aidx emp_ix;
    /* channels: names by index; [0] = none (NULL) */
    char **chan;
    uint32_t nchan, chan_cap;
    aidx chan_ix;
    /* event types */
    char **type;
    uint32_t ntype, type_cap;
    aidx type_ix;
    /* running totals over every day: active relationships per employee and
     * per channel, reachable customers now */
    int64_t *emp_active, *chan_active;
    int64_t reach_total;
    /* local days day0 .. day0 + ndays - 1 */
    int32_t day0;
    uint32_t ndays;
    aday *days;
    /* customers by dense id: the first relationship inline (st 0xFF = none),
     * further ones in xv[xi[d]] (UINT32_MAX = none) */
    arel *rel1;
    uint32_t *xi;
    uint32_t ncust;
    arelv *xv;
    uint32_t nxv, cap_xv;
};

#define AN_REL_NONE 0xFF
#define AN_ACTIVE_END UINT32_MAX

/* Index of an event type, or UINT32_MAX when never seen. */
uint32_t an__type_find(const analytics *a, const char *type);
/* Index of an employee id, or UINT32_MAX. */
uint32_t an__emp_find(const analytics *a, int64_t id);
/* The day record of `day`, or NULL when outside the range. */
const aday *an__day(const analytics *a, int32_t day);
/* Relationships of dense id d: count and the i-th. */
uint32_t an__rel_count(const analytics *a, uint32_t d);
const arel *an__rel_at(const analytics *a, uint32_t d, uint32_t i);
/* Days since 1970-01-01 of a civil date, and back. */
int32_t an__days_from_civil(int64_t y, unsigned m, unsigned d);
void an__civil(int32_t days, int64_t *y, unsigned *m, unsigned *d);
/* First local day of the period holding `day`, moved back by `back`
 * periods (forward when negative). */
int32_t an__period_start(analytics_period per, int32_t day, int back);
/* Local day of a timestamp given a tz. */
int32_t an__day_of(int32_t tz, int64_t ts);

#endif
