/* engine_int.h — the segment engine's internal layout, shared by its files:
 *   engine.c       build from the store, free, ids, validate
 *   engine_eval.c  evaluation of an expression to a bitmap
 *   engine_live.c  mutations (keeping the engine current from the writer)
 *   engine_read.c  values, pages, breakdowns, lookups, memory
 *   engine_idx.c   the binned numeric index and the event columns (appends,
 *                  per-day bitmaps, per-customer access)
 * Nothing here is part of the engine's API (engine.h). Cross-file helpers are
 * named engine__*. */
#ifndef SIYU_SEGMENT_ENGINE_INT_H
#define SIYU_SEGMENT_ENGINE_INT_H

#include <roaring/roaring.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segment/engine.h"

/* ---- dictionaries ----------------------------------------------------------
 * One value of a dimension: a record (id and name) or a plain value (name).
 * a, b: employee department_id and store_id; department parent_id (0 none). */
typedef struct dval {
    int64_t id; /* 0 when the dimension has no record ids */
    char *name; /* may be NULL (a record without a name) */
    roaring_bitmap_t *bm;
    int64_t a, b;
} dval;

/* A string -> index hash (channel/region/stage names, event types). Keys
 * are owned copies; an index is never removed. */
typedef struct strmap {
    char **keys;
    uint32_t *vals;
    size_t cap, n;
} strmap;

typedef struct dict {
    dval *v; /* sorted by id when ids is true */
    size_t n, cap;
    bool ids;
    strmap names; /* plain dimensions only: name -> index into v */
} dict;

/* A uint32 -> uint32 hash (dense id -> slot of a side vector). */
typedef struct u32map {
    uint32_t *keys; /* key + 1; 0 = empty */
    uint32_t *vals;
    size_t cap, n;
} u32map;

/* ---- numeric columns with a binned index -----------------------------------
 * v[d] is the value of customer d (ENGINE_NONE = absent, times only). The
 * values are cut into nb bins at lower bounds lb[0] < lb[1] < ... with
 * lb[0] = INT64_MIN + 1, so that bin k = [lb[k], lb[k+1]) and ENGINE_NONE is
 * in no bin. cum[k] = { d : v[d] >= lb[k] } (cumulative bitmaps: a range of
 * values is at most two of them plus an exact test of the members of its
 * two edge bins); bin[k] = the members of bin k alone, cnt[k] their number. A value that changes
 * moves its customer between bins: cum[] of the bins in between gain or lose it. Bounds come from
 * quantiles of a sample (a value that fills several quantiles gets a bin of its own), plus, for
 * times, bins above the largest value for the times still to come; a bin that grows past a limit
 * has the column re-binned. */
#define ENGINE_NBINS 64
typedef struct nidx {
    int64_t *v;
    int nb;
    bool time;
    int64_t lb[ENGINE_NBINS];
    roaring_bitmap_t *cum[ENGINE_NBINS];
    roaring_bitmap_t *bin[ENGINE_NBINS]; /* members of bin k alone */
    uint32_t cnt[ENGINE_NBINS];
    uint32_t limit; /* re-bin when a bin holds more */
} nidx;

/* ---- events -----------------------------------------------------------------
 * Per event type: the base (built from the store: a CSR by dense id,
 * off[d] .. off[d + 1] into ts, ascending per customer), an overlay of the
 * events added since (per customer a sorted vector, found through ovmap),
 * the customers with any event of the type, and per UTC day (ts / 86400)
 * a bitmap of the customers with an event that day and the day's earliest
 * and latest time. The overlay is merged into the base when it grows past
 * half the base. */
typedef struct ovec {
    uint32_t *ts;
    uint32_t n, cap;
} ovec;

typedef struct evcol {
    char *type;
    uint32_t *off; /* [cap_off + 1] */
    uint32_t *ts;  /* [nbase] */
    uint64_t nbase;
    size_t cap_off, cap_ts;
    u32map ovmap;     /* dense -> index into ov */
    uint64_t *ovbits; /* [cap_off / 64 + 1]: customers with overlay events */
    ovec *ov;
    size_t nov_cust, cap_ov;
    uint64_t nov; /* events in the overlay */
    roaring_bitmap_t *any;
    int64_t day0; /* day of days[0] */
    uint32_t ndays;
    roaring_bitmap_t **day; /* [ndays], NULL when no event that day */
    uint32_t *dmin, *dmax;  /* [ndays] */
} evcol;

/* ---- relationships -------------------------------------------------------------
 * Per customer its relationships, as last given (build or
 * engine_customer_rels): the first inline in rel1[d], further ones in a side
 * vector found through relmap. st: an ST_* status, ST_OTHER for an unknown
 * one, REL_NONE when the slot is empty; chan: index into the channel dict or
 * UINT32_MAX. */
enum { ST_ACTIVE, ST_DEL_CUSTOMER, ST_DEL_EMPLOYEE, ST_TRANSFERRED, ST_LOST, ST__COUNT };
#define ST_OTHER 5
#define REL_NONE 0xFF
typedef struct crel {
    int64_t emp;
    uint32_t chan;
    uint8_t st;
    uint8_t more; /* rel1 only: further relationships in relmap */
} crel;

typedef struct crelv {
    crel *v;
    uint32_t n, cap;
} crelv;

enum { G_FEMALE, G_MALE, G_UNKNOWN, G__COUNT };

struct engine {
    int64_t tenant_id;
    uint32_t n, ncap;
    int64_t *ids; /* [ncap] customer row ids */
    roaring_bitmap_t *all;
    dict dims[EXPR_DIM__COUNT];
    nidx num[EXPR_ATTR__COUNT]; /* by expr_attr */
    crel *rel1;                 /* [ncap] */
    u32map relmap;              /* dense -> index into relx */
    crelv *relx;
    size_t nrelx, cap_relx;
    evcol *ev;
    size_t nev_types;
    strmap ev_names; /* type -> index into ev */
    uint64_t events;
    uint64_t skipped; /* events with a time outside 0 .. 2^32-1 */
};

extern const char *const engine__status_names[ST__COUNT];
extern const char *const engine__gender_names[G__COUNT];

/* dictionaries */
dval *engine__dict_add(dict *d, int64_t id, const char *name);
dval *engine__dict_by_id(const dict *d, int64_t id);
dval *engine__dict_by_name(const dict *d, const char *name);
/* The plain value named name (created when absent and create is true). */
dval *engine__dict_plain(dict *d, const char *name, bool create);
void engine__dict_free(dict *d);

uint32_t engine__strmap_get(strmap *m, const char *key, uint32_t val_new);
void engine__strmap_free(strmap *m);

/* Slot value of key, or UINT32_MAX; put returns false when out of memory. */
uint32_t engine__u32map_get(const u32map *m, uint32_t key);
bool engine__u32map_put(u32map *m, uint32_t key, uint32_t val);
void engine__u32map_free(u32map *m);

/* numeric index */
int engine__nidx_build(nidx *x, uint32_t n);
void engine__nidx_free(nidx *x);
int engine__nidx_set(nidx *x, uint32_t d, int64_t v, uint32_t n);
/* { d in within (NULL: all with a value) : lo <= v[d] <= hi }; NULL when out
 * of memory. */
roaring_bitmap_t *engine__nidx_range(const nidx *x, int64_t lo, int64_t hi,
                                     const roaring_bitmap_t *within);
/* Bin of a value (-1 for ENGINE_NONE). */
int engine__nidx_bin(const nidx *x, int64_t v);
/* Members of bin k (a new bitmap) intersected with within (may be NULL). */
roaring_bitmap_t *engine__nidx_bin_members(const nidx *x, int k, const roaring_bitmap_t *within);
bool engine__nidx_validate(const nidx *x, uint32_t n, const char **why);
uint64_t engine__nidx_bytes(const nidx *x);

/* events */
evcol *engine__ev_find(const engine *e, const char *type);
evcol *engine__ev_col(engine *e, const char *type); /* finds or creates */
void engine__ev_free(evcol *c);
int engine__ev_days_build(evcol *c, uint32_t n);
/* Creates a column for ncap customers (no events). NULL when out of memory. */
int engine__ev_init(evcol *c, const char *type, uint32_t ncap);
/* Appends one event of customer d (ts within 0 .. 2^32-1). */
int engine__ev_append(evcol *c, uint32_t d, uint32_t ts, uint32_t n);
/* Events of d in [lo, hi] (lo <= hi, both within int64). */
uint32_t engine__ev_count(const evcol *c, uint32_t d, int64_t lo, int64_t hi);
uint32_t engine__ev_total(const evcol *c, uint32_t d);
/* First and last time of d's events; false when none. */
bool engine__ev_first_last(const evcol *c, uint32_t d, int64_t *first, int64_t *last);
/* Customers of within (NULL: all) with an event in [lo, hi]. */
roaring_bitmap_t *engine__ev_window(const evcol *c, int64_t lo, int64_t hi,
                                    const roaring_bitmap_t *within);
bool engine__ev_validate(const evcol *c, uint32_t n, const char **why);
uint64_t engine__ev_bytes(const evcol *c, uint32_t ncap);
/* Sets the per-customer arrays of every column to ncap customers. */
int engine__ev_resize(engine *e, uint32_t ncap);

/* Makes room for need customers in every per-customer array. */
int engine__grow(engine *e, uint32_t need);

/* relationships and organisation */
/* Appends one relationship to d's stored ones (the build). */
int engine__rel_push(engine *e, uint32_t d, const crel *r);
/* Calls fn for every (dimension, value index) d is a member of through its
 * stored relationships (duplicates possible); departments and stores only
 * when org is true. */
void engine__rel_visit(const engine *e, uint32_t d, bool org,
                       void (*fn)(void *arg, expr_dim dim, size_t idx), void *arg);
/* The relationships of d: count, and the i-th. */
uint32_t engine__rel_count(const engine *e, uint32_t d);
const crel *engine__rel_at(const engine *e, uint32_t d, uint32_t i);
/* Replaces d's stored relationships. */
int engine__rel_store(engine *e, uint32_t d, const crel *v, uint32_t n);
/* Recomputes every department and store bitmap from the employees. */
int engine__org_recompute(engine *e);
/* Adds d to (on) or removes it from (off) every bitmap its stored
 * relationships put it in: statuses, channels, employees, departments,
 * stores (departments and stores only when org is true: the build derives
 * those from the employee bitmaps at the end). */
void engine__rel_apply(engine *e, uint32_t d, bool on, bool org);

#endif
