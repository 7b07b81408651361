/* sim_util.c — the simulator's small tools: aborting allocation for small
 * fixed-size growth, a seeded PRNG (splitmix64 + xoshiro256**, never rand()),
 * a Zipf sampler and ids that encode their array index.
 *
 * Id layout: prefix + base62 digits of scrambled idx (5 digits) + filler
 * digits derived from (key, idx) by splitmix64. Decoding reverses the first
 * part; callers compare the whole string with the stored id. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_int.h"

void *sim_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "wecom-sim: out of memory\n");
        abort();
    }
    return q;
}

char *sim_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = sim_xrealloc(NULL, n);
    memcpy(d, s, n);
    return d;
}

uint64_t sim_mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void sim_rng_seed(sim_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) {
        seed += 0x9e3779b97f4a7c15ULL;
        r->s[i] = sim_mix64(seed);
    }
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(sim_rng *r) {
    uint64_t *s = r->s;
    uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

uint32_t sim_rng_below(sim_rng *r, uint32_t n) {
    return (uint32_t)(((sim_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

double sim_rng_double(sim_rng *r) {
    return (double)(sim_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double sim_rng_exp(sim_rng *r, double mean) {
    return -mean * log(1.0 - sim_rng_double(r));
}

void sim_zipf_init(sim_zipf *z, int n, double s) {
    z->n = n > 0 ? n : 1;
    z->cdf = sim_xrealloc(NULL, (size_t)z->n * sizeof *z->cdf);
    double acc = 0;
    for (int i = 0; i < z->n; i++) {
        acc += 1.0 / pow((double)i + 1.0, s);
        z->cdf[i] = acc;
    }
    for (int i = 0; i < z->n; i++)
        z->cdf[i] /= acc;
}

int sim_zipf_draw(const sim_zipf *z, sim_rng *r) {
    double u = sim_rng_double(r);
    int lo = 0, hi = z->n - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (z->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void sim_zipf_reset(sim_zipf *z) {
    free(z->cdf);
    z->cdf = NULL;
    z->n = 0;
}

/* ---- ids ---------------------------------------------------------------- */

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static const struct {
    const char *prefix;
    int len; /* characters after the prefix */
} id_shape[ID_KIND_COUNT] = {
    [ID_CUSTOMER] = {"wm", 20},  [ID_CHAT] = {"wr", 20}, [ID_TAG] = {"et", 20},
    [ID_TAG_GROUP] = {"et", 20}, [ID_WAY] = {"", 32},    [ID_WELCOME] = {"", 32},
    [ID_TOKEN] = {"", 64},       [ID_MSG] = {"msg", 20},
};

static int b62_val(char c) {
    const char *p = c ? strchr(b62, c) : NULL;
    return p ? (int)(p - b62) : -1;
}

/* Indices are scrambled (an odd multiplier mod 2^29, then a per-kind key)
 * so that consecutive ids do not share their leading characters. */
#define ID_MASK 0x1FFFFFFFu
#define ID_MUL 0x0B5AD4EBu /* odd */

static uint32_t id_mul_inverse(void) {
    uint32_t x = ID_MUL; /* Newton: each step doubles the correct low bits */
    for (int i = 0; i < 5; i++)
        x *= 2u - ID_MUL * x;
    return x;
}

void sim_id_make(const sim *s, int kind, uint32_t idx, char *out) {
    size_t pl = strlen(id_shape[kind].prefix);
    memcpy(out, id_shape[kind].prefix, pl);
    uint64_t key = s->id_key[kind];
    uint32_t v = ((idx * ID_MUL) ^ (uint32_t)key) & ID_MASK;
    for (int i = 4; i >= 0; i--) {
        out[pl + (size_t)i] = b62[v % 62];
        v /= 62;
    }
    uint64_t h = sim_mix64(key ^ ((uint64_t)idx << 17));
    for (int i = 5; i < id_shape[kind].len; i++) {
        if (i % 10 == 0) h = sim_mix64(h);
        out[pl + (size_t)i] = b62[h % 62];
        h /= 62;
    }
    /* tag and tag group ids differ in their 6th character's case */
    if (kind == ID_TAG_GROUP) out[pl + 5] = 'G';
    if (kind == ID_TAG) out[pl + 5] = 'T';
    out[pl + (size_t)id_shape[kind].len] = 0;
}

int sim_id_index(const sim *s, int kind, const char *id) {
    if (!id) return -1;
    size_t pl = strlen(id_shape[kind].prefix);
    if (strlen(id) != pl + (size_t)id_shape[kind].len) return -1;
    if (strncmp(id, id_shape[kind].prefix, pl) != 0) return -1;
    uint32_t v = 0;
    for (int i = 0; i < 5; i++) {
        int d = b62_val(id[pl + (size_t)i]);
        if (d < 0) return -1;
        v = v * 62 + (uint32_t)d;
    }
    if (v > ID_MASK) return -1;
    uint32_t idx = ((v ^ (uint32_t)s->id_key[kind]) * id_mul_inverse()) & ID_MASK;
    char buf[80];
    sim_id_make(s, kind, idx, buf);
    return strcmp(buf, id) == 0 ? (int)idx : -1;
}
