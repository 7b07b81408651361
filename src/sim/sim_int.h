/* sim_int.h — internals shared by the files of the WeCom simulator (src/sim/).
 *
 * The world is a set of flat arrays (employees, customers, groups, tags,
 * contact ways, ...) indexed by dense ints; every public id ("wm...", "wr...",
 * "et...", tokens, codes) encodes its array index, so a lookup decodes the
 * index and compares the whole string (sim_id_index) instead of hashing.
 * Entities are never removed from their arrays: they carry a deleted or
 * active flag, so indices stay valid for the life of the process.
 *
 * One mutex (sim.mu) guards the whole world and the callback log; push
 * counters are atomics. Every change to the world goes through an action
 * function in sim_world.c that appends the callback it causes to the log
 * (sim_emit); pushers in sim_push.c read the log in order. */
#ifndef SIYU_SIM_INT_H
#define SIYU_SIM_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sim/sim.h"

#define SIM_STATE_MAX 96   /* bytes of a contact-way state (30 chars of UTF-8) + NUL */
#define SIM_NAME_MAX 96    /* bytes of a tag/group/remark name (30 chars of UTF-8) + NUL */
#define SIM_EXTRA_DAYS 400 /* days of statistics kept after the history */

/* ---- small helpers ------------------------------------------------------ */

void *sim_xrealloc(void *p, size_t n); /* aborts on OOM (small, fixed-size growth) */
char *sim_xstrdup(const char *s);
#define SIM_PUSH(arr, n, cap)                                                                      \
    do {                                                                                           \
        if ((n) >= (cap)) {                                                                        \
            (cap) = (cap) ? (cap)*2 : 4;                                                           \
            (arr) = sim_xrealloc((arr), (size_t)(cap) * sizeof *(arr));                            \
        }                                                                                          \
    } while (0)

/* xoshiro256** seeded by splitmix64. */
typedef struct sim_rng {
    uint64_t s[4];
} sim_rng;
void sim_rng_seed(sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(sim_rng *r);
uint32_t sim_rng_below(sim_rng *r, uint32_t n); /* [0, n), n > 0 */
double sim_rng_double(sim_rng *r);              /* [0, 1) */
double sim_rng_exp(sim_rng *r, double mean);
uint64_t sim_mix64(uint64_t x); /* splitmix64 finalizer */

/* Zipf-like sampler over n items (weight 1/(i+1)^s), O(log n) per draw. */
typedef struct sim_zipf {
    double *cdf;
    int n;
} sim_zipf;
void sim_zipf_init(sim_zipf *z, int n, double s);
int sim_zipf_draw(const sim_zipf *z, sim_rng *r);
void sim_zipf_reset(sim_zipf *z);

/* Id kinds: each has its own prefix and key. */
enum sim_id_kind {
    ID_CUSTOMER,  /* wm + 20 */
    ID_CHAT,      /* wr + 20 */
    ID_TAG,       /* et + 20 */
    ID_TAG_GROUP, /* et + 20 (other key) */
    ID_WAY,       /* 32 hex-like */
    ID_WELCOME,   /* 32 */
    ID_TOKEN,     /* 64 */
    ID_MSG,       /* msg + 20 */
    ID_KIND_COUNT
};
/* Writes the id of idx (NUL-terminated) into out (>= 72 bytes). */
void sim_id_make(const sim *s, int kind, uint32_t idx, char *out);
/* The index an id encodes, or -1 when it is not one of ours (caller still
 * compares with the stored id when the entity may have been replaced). */
int sim_id_index(const sim *s, int kind, const char *id);

/* ---- the world ---------------------------------------------------------- */

typedef struct sim_follow {
    int emp;
    bool active;
    bool listed;    /* already in employees[emp].custs */
    bool oper_cust; /* oper_userid is the customer (customer added the member) */
    int add_way;
    int64_t createtime, ended_at;
    char state[SIM_STATE_MAX];
    char remark[SIM_NAME_MAX];
    char *description; /* malloc'd or NULL */
    int *tags;
    int ntags, tags_cap;
} sim_follow;

typedef struct sim_customer {
    char ext[32];
    char name[48];
    int gender;
    sim_follow *f;
    int nf, f_cap;
    int quota_day, quota_cnt; /* mass messages received on day quota_day */
    int64_t chats;            /* chat counter */
} sim_customer;

typedef struct sim_employee {
    char userid[32];
    char name[32];
    int dept, store;
    bool resigned;
    int64_t resign_time;
    int *custs; /* customers with a follow record (ever), in first-add order */
    int ncusts, custs_cap;
} sim_employee;

typedef struct sim_member {
    int idx; /* customer or employee */
    bool is_emp;
    int join_scene; /* groupchat/get numbering: 1 direct, 2 link, 3 QR */
    int invitor;    /* employee, -1 none */
    int quit_scene;
    int64_t join_time, left_time; /* left_time 0: still in */
} sim_member;

typedef struct sim_group {
    char chat_id[32];
    char name[SIM_NAME_MAX];
    char notice[128];
    int owner;
    int status; /* groupchat/list status: 0 normal, 1 resigned owner, 2 inheriting, 3 inherited */
    bool dismissed;
    int64_t create_time, dismiss_time;
    int version;
    int64_t transfers[2]; /* times of the last two on-job transfers */
    sim_member *m;
    int nm, m_cap;
} sim_group;

/* A group join way (groupchat/add_join_way): scans join the first of its
 * chats with fewer than SIM_JOIN_WAY_FULL members (WeCom's QR limit). */
#define SIM_JOIN_WAY_CHATS 5
#define SIM_JOIN_WAY_FULL 200
typedef struct sim_join_way {
    char config_id[32];
    char state[64];
    int chats[SIM_JOIN_WAY_CHATS];
    int nchats;
    int updates;
    bool deleted;
} sim_join_way;

typedef struct sim_tag_group {
    char id[32];
    char name[SIM_NAME_MAX];
    int64_t create_time;
    uint32_t order;
    bool deleted;
} sim_tag_group;

typedef struct sim_tag {
    char id[32];
    char name[SIM_NAME_MAX];
    int group;
    int64_t create_time;
    uint32_t order;
    bool deleted;
} sim_tag;

typedef struct sim_way {
    char config_id[40];
    int type, scene, style;
    bool skip_verify, deleted, is_temp;
    char remark[SIM_NAME_MAX];
    char state[SIM_STATE_MAX];
    int *users;
    int nusers;
    int *parties;
    int nparties;
    int64_t create_time;
    int64_t adds; /* customers added through it */
} sim_way;

typedef struct sim_welcome {
    char code[40];
    int cust, emp;
    int64_t issued;
    int64_t minted_ms; /* wall clock (ms) when the add carrying it was emitted */
    bool used;
} sim_welcome;

typedef struct sim_welcome_log {
    int welcome;
    char *text; /* malloc'd */
    int64_t at;
    int64_t at_ms;   /* wall clock (ms) of the call's arrival */
    int attachments; /* how many the call carried */
    int errcode;
} sim_welcome_log;

typedef struct sim_transfer {
    int cust, handover, takeover;
    bool resigned; /* resignation inheritance */
    bool refuse;   /* decided at start */
    int status;    /* 1 done, 2 waiting, 3 refused */
    int64_t start, takeover_time;
} sim_transfer;

typedef struct sim_recipient {
    int cust, emp;
    int status; /* 0 not sent, 1 sent, 2 not a friend, 3 quota */
    int64_t send_time;
} sim_recipient;

typedef struct sim_msg {
    char msgid[40];
    int creator; /* employee or -1 (corp) */
    int64_t create_time;
    bool confirmed;
    char *text; /* malloc'd */
    int nattach;
    sim_recipient *r;
    int nr;
} sim_msg;

typedef struct sim_token {
    char token[72];
    int64_t expires;
} sim_token;

typedef struct sim_day_stat {
    int32_t new_apply, new_contact, chat, message, negative, replied, reply_minutes;
} sim_day_stat;

/* ---- callbacks ---------------------------------------------------------- */

enum sim_cb_kind {
    CB_ADD,
    CB_ADD_HALF,
    CB_EDIT,
    CB_DEL_EXTERNAL,
    CB_DEL_FOLLOW,
    CB_TRANSFER_FAIL,
    CB_CHAT_CREATE,
    CB_CHAT_ADD_MEMBER,
    CB_CHAT_DEL_MEMBER,
    CB_CHAT_NAME,
    CB_CHAT_OWNER,
    CB_CHAT_DISMISS,
    CB_TAG_CREATE,
    CB_TAG_UPDATE,
    CB_TAG_DELETE,
};

/* One callback as data; rendered to XML by the pusher. */
typedef struct sim_cb {
    uint8_t kind;
    bool by_transfer;  /* del_external_contact Source DELETE_BY_TRANSFER */
    bool tag_is_group; /* tag events: TagType tag_group */
    bool member_emp;   /* chat member events: the member is an employee */
    atomic_bool done;
    int cust, emp; /* contact events; emp also the member for chat events */
    int welcome;   /* -1 none */
    int grp;       /* chat events: group; tag events: tag or tag group */
    int member;    /* chat member events: customer or employee index */
    int scene;     /* JoinScene / QuitScene (callback numbering) */
    int last_ver, cur_ver;
    uint32_t shard;
    int64_t ts;
    char state[SIM_STATE_MAX];
} sim_cb;

#define SIM_LOG_CHUNK 65536

struct sim {
    sim_options o;
    pthread_mutex_t mu;
    uint64_t id_key[ID_KIND_COUNT];
    sim_rng rng; /* live actions */
    int64_t clock_offset;
    int64_t hist_start, hist_end; /* history window (hist_end: a day boundary) */
    int ndays;                    /* statistics days from hist_start */

    /* world */
    char (*depts)[32];
    int ndepts;
    char (*stores)[32];
    int *store_dept;
    const char **store_city; /* static strings */
    int nstores;
    sim_employee *emp;
    int nemp, emp_cap;
    sim_customer *cust;
    int ncust, cust_cap;
    sim_group *grp;
    int ngrp, grp_cap;
    sim_tag_group *tgrp;
    int ntgrp, tgrp_cap;
    sim_tag *tag;
    int ntag, tag_cap;
    sim_way *way;
    int nway, way_cap;
    sim_join_way *jw;
    int njw, jw_cap;
    sim_welcome *wel;
    int nwel, wel_cap;
    sim_welcome_log *wlog;
    int nwlog, wlog_cap;
    sim_transfer *xfer;
    int nxfer, xfer_cap;
    sim_msg *msg;
    int nmsg, msg_cap;
    sim_token *tok;
    int ntok, tok_cap;
    sim_day_stat *stat; /* nemp_stat * ndays */
    int nemp_stat;
    sim_zipf emp_zipf;     /* live draws */
    int64_t relationships; /* active follows */
    int64_t members;       /* current members of live groups */

    /* callback log (chunked, stable addresses) */
    sim_cb **log;
    size_t log_len, log_chunks;
    bool replaying;          /* generating history */
    pthread_cond_t log_cond; /* log grew / a callback finished */
    struct sim_push *push;   /* NULL without --callback-url */
    atomic_llong cb_sent, cb_acked, cb_failed, cb_dropped, cb_done;
    size_t cb_skipped; /* log entries no worker will push (history without replay) */

    /* faults and calls */
    struct sim_fault *faults;
    int nfaults, faults_cap;
    struct sim_calls *calls;

    struct sim_http *http;
    pthread_t rate_thread;
    bool rate_running;
    atomic_bool stopping;
    atomic_int config_gen; /* bumped by /sim/config: the traffic thread re-reads the rate */
};

/* sim_world.c */
int64_t sim_now(sim *s); /* simulated time: real time + offset */
int sim_world_build(sim *s, siyu_err *err);
void sim_world_free(sim *s);
sim_cb *sim_cb_at(sim *s, size_t i);
/* Appends cb to the log when callbacks are delivered (and deliver); returns
 * the log entry or NULL. Caller holds mu. */
sim_cb *sim_emit(sim *s, const sim_cb *cb, bool deliver);
/* Appends a copy of cb (shard included) to the log. Caller holds mu. */
sim_cb *sim_log_append(sim *s, const sim_cb *cb);
int sim_emp_find(const sim *s, const char *userid);
int sim_cust_find(const sim *s, const char *ext);
int sim_grp_find(const sim *s, const char *chat_id);
int sim_tag_find(const sim *s, const char *id);
int sim_tgrp_find(const sim *s, const char *id);
int sim_way_find(const sim *s, const char *id);
sim_follow *sim_follow_of(sim_customer *c, int emp); /* any record, or NULL */
void sim_member_version(const sim *s, int g, int ver, char out[33]);
sim_day_stat *sim_stat(sim *s, int emp, int64_t ts); /* NULL outside the window */
int sim_day_of(const sim *s, int64_t ts);
/* Runs due takeovers and confirms due mass messages. Caller holds mu. */
void sim_tick(sim *s);

/* Actions (caller holds mu). Each changes the world and emits its callback
 * when deliver; they return 0 or a WeCom errcode. */
typedef struct sim_act {
    const char *type;
    const char *userid, *external_userid, *state, *chat_id, *tag_id, *name, *group_name;
    bool welcome, deliver, half;
    /* results */
    int cust, welcome_idx, grp, tag, tgrp;
    int callbacks;
} sim_act;
int sim_act_run(sim *s, sim_act *a, sim_rng *r, int64_t ts);
/* One random live action; *callbacks gets how many it emitted. */
void sim_act_random(sim *s, sim_rng *r, int64_t ts, int *callbacks);
int sim_follow_add(sim *s, int c, int e, int64_t ts, const char *state, int add_way,
                   bool oper_cust);
void sim_follow_end(sim *s, int c, int e, int64_t ts);
int sim_welcome_mint(sim *s, int c, int e, int64_t ts);
int sim_transfer_start(sim *s, int c, int handover, int takeover, bool resigned, int64_t ts);
void sim_msg_confirm(sim *s, int m, int64_t ts);
/* A new corp tag group / tag (in group g) named name, with its create
 * callback; returns its index. */
int sim_tgrp_add(sim *s, const char *name, int64_t ts, bool deliver);
int sim_tag_add(sim *s, int g, const char *name, int64_t ts, bool deliver);

/* sim_push.c */
int sim_push_start(sim *s, siyu_err *err);
void sim_push_stop(sim *s);
/* Renders cb to the decrypted XML (malloc'd). */
char *sim_cb_render(sim *s, const sim_cb *cb);
/* Waits (mu held) until log entries [from, to) are done or the sim stops. */
void sim_push_wait(sim *s, size_t from, size_t to);
/* True once every history callback is done (or there is nothing to push).
 * Caller holds mu. */
bool sim_history_done(sim *s);
/* /sim/replay: queues the history (again) when it was not pushed at start.
 * 0, or 1 when it is already queued (--replay-history or an earlier call).
 * Caller holds mu. */
int sim_push_replay(sim *s);

/* sim_http.c / sim_cgi.c / sim_admin.c */
typedef struct sim_req {
    sim *s;
    const char *method;
    const char *path; /* after /cgi-bin/ or /sim/ */
    const char *body;
    size_t body_len;
    json_t *json; /* parsed body (NULL if none or invalid) */
    void *conn;   /* struct MHD_Connection */
    int status;   /* reply */
    char *reply;  /* malloc'd JSON */
    size_t reply_len;
} sim_req;
const char *sim_req_query(sim_req *r, const char *name);
void sim_reply_json(sim_req *r, json_t *j); /* steals j */
void sim_cgi_handle(sim_req *r);
void sim_admin_handle(sim_req *r);
int sim_http_start(sim *s, siyu_err *err);
void sim_http_stop(sim *s);
int sim_http_port(sim *s);
void sim_calls_count(sim *s, const char *path);
json_t *sim_calls_json(sim *s);
void sim_calls_free(sim *s);

/* Wall-clock milliseconds (CLOCK_REALTIME), for latency figures. */
int64_t sim_wall_ms(void);

#endif
