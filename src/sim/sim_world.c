/* sim_world.c — the simulated brand: its population, its history and the
 * actions that change it.
 *
 * sim_world_build() makes, from --seed alone (plus today's date):
 *   departments ─< stores ─< employees (store sizes and customer counts skewed)
 *   tag groups ─< tags ("客户等级", "兴趣", ...)
 *   contact ways (channels "ch0001"..., Zipf-sized)
 *   customers, each first added at a time drawn from daily weights (weekends,
 *   618, 11.11, 12.12, Spring Festival spike) and then followed by "intents":
 *   tagging, remarks, chats decaying after the add, churn both ways, a second
 *   employee; groups with members joining by invitation, link or QR and leaving.
 * Intents are sorted by (time, sequence) and applied through the same action
 * functions the live traffic uses, so the final world is exactly the history
 * replayed, and every applied action logs its callback (sim_emit).
 *
 * History ends at the last Asia/Shanghai midnight, so the same seed on the
 * same day gives the same world (same /sim/dump bytes).
 *
 * Locking: everything here runs with s->mu held (or before threads start). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim/sim_int.h"

#define DAY 86400
#define TZ_OFFSET (8 * 3600)

int64_t sim_now(sim *s) {
    return (int64_t)time(NULL) + s->clock_offset;
}

int sim_day_of(const sim *s, int64_t ts) {
    if (ts < s->hist_start) return -1;
    int64_t d = (ts - s->hist_start) / DAY;
    return d < s->ndays ? (int)d : -1;
}

sim_day_stat *sim_stat(sim *s, int emp, int64_t ts) {
    int d = sim_day_of(s, ts);
    if (d < 0 || emp < 0 || emp >= s->nemp_stat) return NULL;
    return &s->stat[(size_t)emp * (size_t)s->ndays + (size_t)d];
}

/* ---- lookups ------------------------------------------------------------ */

int sim_emp_find(const sim *s, const char *userid) {
    if (!userid) return -1;
    /* userids are name pinyin + 4 digits = index */
    size_t n = strlen(userid);
    if (n < 5) return -1;
    int idx = atoi(userid + n - 4);
    if (idx < 0 || idx >= s->nemp || strcmp(s->emp[idx].userid, userid) != 0) {
        for (int i = 0; i < s->nemp; i++) /* employees added later by name */
            if (strcmp(s->emp[i].userid, userid) == 0) return i;
        return -1;
    }
    return idx;
}

#define FIND(fn, kind, arr, n, field)                                                              \
    int fn(const sim *s, const char *id) {                                                         \
        int i = sim_id_index(s, kind, id);                                                         \
        return i >= 0 && i < s->n && strcmp(s->arr[i].field, id) == 0 ? i : -1;                    \
    }
FIND(sim_cust_find, ID_CUSTOMER, cust, ncust, ext)
FIND(sim_grp_find, ID_CHAT, grp, ngrp, chat_id)
FIND(sim_tag_find, ID_TAG, tag, ntag, id)
FIND(sim_tgrp_find, ID_TAG_GROUP, tgrp, ntgrp, id)
FIND(sim_way_find, ID_WAY, way, nway, config_id)

sim_follow *sim_follow_of(sim_customer *c, int emp) {
    for (int i = 0; i < c->nf; i++)
        if (c->f[i].emp == emp) return &c->f[i];
    return NULL;
}

void sim_member_version(const sim *s, int g, int ver, char out[33]) {
    uint64_t a = sim_mix64(s->o.seed ^ ((uint64_t)g << 20) ^ (uint64_t)ver);
    uint64_t b = sim_mix64(a ^ 0x5bd1e995);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

/* ---- the callback log ---------------------------------------------------- */

sim_cb *sim_cb_at(sim *s, size_t i) {
    return &s->log[i / SIM_LOG_CHUNK][i % SIM_LOG_CHUNK];
}

static uint32_t shard_of(const char *key) {
    uint32_t h = 2166136261u;
    for (; *key; key++)
        h = (h ^ (uint8_t)*key) * 16777619u;
    return h;
}

sim_cb *sim_log_append(sim *s, const sim_cb *cb) {
    if (s->log_len == s->log_chunks * SIM_LOG_CHUNK) {
        s->log = sim_xrealloc(s->log, (s->log_chunks + 1) * sizeof *s->log);
        s->log[s->log_chunks++] = sim_xrealloc(NULL, SIM_LOG_CHUNK * sizeof(sim_cb));
    }
    sim_cb *e = sim_cb_at(s, s->log_len++);
    memcpy(e, cb, sizeof *e);
    atomic_store(&e->done, false);
    pthread_cond_broadcast(&s->log_cond);
    return e;
}

sim_cb *sim_emit(sim *s, const sim_cb *cb, bool deliver) {
    if (!deliver || !s->o.callback_url || s->o.no_callbacks) return NULL;
    /* the history is logged even without --replay-history: /sim/replay */
    sim_cb *e = sim_log_append(s, cb);
    /* one shard per entity keeps its callbacks in order */
    switch (cb->kind) {
    case CB_CHAT_CREATE:
    case CB_CHAT_ADD_MEMBER:
    case CB_CHAT_DEL_MEMBER:
    case CB_CHAT_NAME:
    case CB_CHAT_OWNER:
    case CB_CHAT_DISMISS:
        e->shard = shard_of(s->grp[cb->grp].chat_id);
        break;
    case CB_TAG_CREATE:
    case CB_TAG_UPDATE:
    case CB_TAG_DELETE:
        e->shard = shard_of(cb->tag_is_group ? s->tgrp[cb->grp].id : s->tag[cb->grp].id);
        break;
    default:
        e->shard = shard_of(s->cust[cb->cust].ext);
    }
    return e;
}

static sim_cb *emit_contact(sim *s, int kind, int c, int e, int64_t ts, bool deliver) {
    sim_cb cb = {.kind = (uint8_t)kind, .cust = c, .emp = e, .welcome = -1, .ts = ts};
    return sim_emit(s, &cb, deliver);
}

/* ---- follows (relationships) -------------------------------------------- */

/* Adds (or revives) the follow (c, e). Returns 0, or 84061-ish -1 when it is
 * already active. */
int sim_follow_add(sim *s, int c, int e, int64_t ts, const char *state, int add_way,
                   bool oper_cust) {
    sim_customer *cu = &s->cust[c];
    sim_follow *f = sim_follow_of(cu, e);
    if (f && f->active) return -1;
    if (!f) {
        SIM_PUSH(cu->f, cu->nf, cu->f_cap);
        f = &cu->f[cu->nf++];
        memset(f, 0, sizeof *f);
        f->emp = e;
    }
    f->active = true;
    f->createtime = ts;
    f->ended_at = 0;
    f->add_way = add_way;
    f->oper_cust = oper_cust;
    snprintf(f->state, sizeof f->state, "%s", state ? state : "");
    f->remark[0] = 0;
    free(f->description);
    f->description = NULL;
    f->ntags = 0;
    if (!f->listed) {
        sim_employee *em = &s->emp[e];
        SIM_PUSH(em->custs, em->ncusts, em->custs_cap);
        em->custs[em->ncusts++] = c;
        f->listed = true;
    }
    s->relationships++;
    sim_day_stat *st = sim_stat(s, e, ts);
    if (st) {
        st->new_contact++;
        if (!oper_cust) st->new_apply++;
    }
    return 0;
}

void sim_follow_end(sim *s, int c, int e, int64_t ts) {
    sim_follow *f = sim_follow_of(&s->cust[c], e);
    if (!f || !f->active) return;
    f->active = false;
    f->ended_at = ts;
    s->relationships--;
}

static sim_follow *active_follow(sim *s, int c, int e) {
    sim_follow *f = sim_follow_of(&s->cust[c], e);
    return f && f->active ? f : NULL;
}

int64_t sim_wall_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int sim_welcome_mint(sim *s, int c, int e, int64_t ts) {
    SIM_PUSH(s->wel, s->nwel, s->wel_cap);
    int i = s->nwel++;
    sim_welcome *w = &s->wel[i];
    memset(w, 0, sizeof *w);
    sim_id_make(s, ID_WELCOME, (uint32_t)i, w->code);
    w->cust = c;
    w->emp = e;
    w->issued = ts;
    w->minted_ms = sim_wall_ms();
    return i;
}

static void tag_follow(sim *s, sim_follow *f, sim_rng *r, int n) {
    for (int k = 0; k < n; k++) {
        int t = (int)sim_rng_below(r, (uint32_t)s->ntag);
        if (s->tag[t].deleted) continue;
        bool have = false;
        for (int j = 0; j < f->ntags; j++)
            if (f->tags[j] == t) have = true;
        if (have) continue;
        SIM_PUSH(f->tags, f->ntags, f->tags_cap);
        f->tags[f->ntags++] = t;
    }
}

static const char *const remarks[] = {"老客户", "VIP",    "宝妈",   "学生",     "上班族",
                                      "敏感肌", "爱打折", "回头客", "朋友推荐", "高消费"};

static void chat(sim *s, int c, int e, int64_t ts, sim_rng *r) {
    sim_day_stat *st = sim_stat(s, e, ts);
    s->cust[c].chats++;
    if (!st) return;
    st->chat++;
    st->message += 1 + (int)sim_rng_below(r, 6);
    if (sim_rng_below(r, 10) < 8) {
        st->replied++;
        st->reply_minutes += 1 + (int)sim_rng_below(r, 30);
    }
}

/* ---- groups --------------------------------------------------------------- */

static int grp_member_find(const sim_group *g, int idx, bool is_emp) {
    for (int i = g->nm - 1; i >= 0; i--)
        if (g->m[i].idx == idx && g->m[i].is_emp == is_emp && !g->m[i].left_time) return i;
    return -1;
}

/* Sets up group g (g == ngrp appends one; history preallocates its groups,
 * which are created in time order, not index order). */
static int grp_create(sim *s, int g, int owner, const char *name, int64_t ts, bool deliver) {
    if (g == s->ngrp) {
        SIM_PUSH(s->grp, s->ngrp, s->grp_cap);
        s->ngrp++;
    }
    sim_group *gr = &s->grp[g];
    memset(gr, 0, sizeof *gr);
    sim_id_make(s, ID_CHAT, (uint32_t)g, gr->chat_id);
    snprintf(gr->name, sizeof gr->name, "%s", name);
    gr->owner = owner;
    gr->create_time = ts;
    gr->version = 1;
    SIM_PUSH(gr->m, gr->nm, gr->m_cap);
    gr->m[gr->nm++] =
        (sim_member){.idx = owner, .is_emp = true, .join_scene = 1, .invitor = -1, .join_time = ts};
    s->members++;
    sim_cb cb = {.kind = CB_CHAT_CREATE, .grp = g, .welcome = -1, .ts = ts};
    sim_emit(s, &cb, deliver);
    return g;
}

/* scene: groupchat/get numbering (1 direct, 2 link, 3 QR). 0 or -1 (skipped). */
static int grp_join(sim *s, int g, int idx, bool is_emp, int scene, int64_t ts, bool deliver) {
    sim_group *gr = &s->grp[g];
    if (gr->dismissed || grp_member_find(gr, idx, is_emp) >= 0) return -1;
    SIM_PUSH(gr->m, gr->nm, gr->m_cap);
    gr->m[gr->nm++] = (sim_member){.idx = idx,
                                   .is_emp = is_emp,
                                   .join_scene = scene,
                                   .invitor = scene == 3 ? -1 : gr->owner,
                                   .join_time = ts};
    gr->version++;
    s->members++;
    sim_cb cb = {.kind = CB_CHAT_ADD_MEMBER,
                 .grp = g,
                 .member = idx,
                 .member_emp = is_emp,
                 .scene = scene == 3 ? 3 : 0,
                 .last_ver = gr->version - 1,
                 .cur_ver = gr->version,
                 .welcome = -1,
                 .ts = ts};
    sim_emit(s, &cb, deliver);
    return 0;
}

static int grp_quit(sim *s, int g, int mi, int quit_scene, int64_t ts, bool deliver) {
    sim_group *gr = &s->grp[g];
    sim_member *m = &gr->m[mi];
    if (gr->dismissed || m->left_time || (m->is_emp && m->idx == gr->owner)) return -1;
    m->left_time = ts;
    m->quit_scene = quit_scene;
    gr->version++;
    s->members--;
    sim_cb cb = {.kind = CB_CHAT_DEL_MEMBER,
                 .grp = g,
                 .member = m->idx,
                 .member_emp = m->is_emp,
                 .scene = quit_scene,
                 .last_ver = gr->version - 1,
                 .cur_ver = gr->version,
                 .welcome = -1,
                 .ts = ts};
    sim_emit(s, &cb, deliver);
    return 0;
}

static int grp_dismiss(sim *s, int g, int64_t ts, bool deliver) {
    sim_group *gr = &s->grp[g];
    if (gr->dismissed) return -1;
    gr->dismissed = true;
    gr->dismiss_time = ts;
    for (int i = 0; i < gr->nm; i++)
        if (!gr->m[i].left_time) s->members--;
    sim_cb cb = {.kind = CB_CHAT_DISMISS, .grp = g, .welcome = -1, .ts = ts};
    sim_emit(s, &cb, deliver);
    return 0;
}

static void grp_rename(sim *s, int g, const char *name, int64_t ts, bool deliver) {
    sim_group *gr = &s->grp[g];
    snprintf(gr->name, sizeof gr->name, "%s", name);
    sim_cb cb = {.kind = CB_CHAT_NAME,
                 .grp = g,
                 .last_ver = gr->version,
                 .cur_ver = gr->version,
                 .welcome = -1,
                 .ts = ts};
    sim_emit(s, &cb, deliver);
}

/* ---- tags ----------------------------------------------------------------- */

int sim_tgrp_add(sim *s, const char *name, int64_t ts, bool deliver) {
    SIM_PUSH(s->tgrp, s->ntgrp, s->tgrp_cap);
    int g = s->ntgrp++;
    sim_tag_group *t = &s->tgrp[g];
    memset(t, 0, sizeof *t);
    sim_id_make(s, ID_TAG_GROUP, (uint32_t)g, t->id);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->create_time = ts;
    sim_cb cb = {.kind = CB_TAG_CREATE, .grp = g, .tag_is_group = true, .welcome = -1, .ts = ts};
    sim_emit(s, &cb, deliver);
    return g;
}

int sim_tag_add(sim *s, int g, const char *name, int64_t ts, bool deliver) {
    SIM_PUSH(s->tag, s->ntag, s->tag_cap);
    int t = s->ntag++;
    sim_tag *tg = &s->tag[t];
    memset(tg, 0, sizeof *tg);
    sim_id_make(s, ID_TAG, (uint32_t)t, tg->id);
    snprintf(tg->name, sizeof tg->name, "%s", name);
    tg->group = g;
    tg->create_time = ts;
    sim_cb cb = {.kind = CB_TAG_CREATE, .grp = t, .welcome = -1, .ts = ts};
    sim_emit(s, &cb, deliver);
    return t;
}

/* Removes tag t from every follow (WeCom sends no per-customer callback). */
static void tag_unlink(sim *s, int t) {
    for (int c = 0; c < s->ncust; c++)
        for (int i = 0; i < s->cust[c].nf; i++) {
            sim_follow *f = &s->cust[c].f[i];
            for (int j = 0; j < f->ntags; j++)
                if (f->tags[j] == t) f->tags[j--] = f->tags[--f->ntags];
        }
}

int sim__tag_delete(sim *s, int t, int64_t ts, bool deliver);
int sim__tgrp_delete(sim *s, int g, int64_t ts, bool deliver);

int sim__tag_delete(sim *s, int t, int64_t ts, bool deliver) {
    if (s->tag[t].deleted) return -1;
    s->tag[t].deleted = true;
    tag_unlink(s, t);
    sim_cb cb = {.kind = CB_TAG_DELETE, .grp = t, .welcome = -1, .ts = ts};
    sim_emit(s, &cb, deliver);
    int g = s->tag[t].group;
    for (int i = 0; i < s->ntag; i++)
        if (s->tag[i].group == g && !s->tag[i].deleted) return 0;
    /* the last tag of its group: the group goes too */
    return sim__tgrp_delete(s, g, ts, deliver);
}

int sim__tgrp_delete(sim *s, int g, int64_t ts, bool deliver) {
    if (s->tgrp[g].deleted) return -1;
    s->tgrp[g].deleted = true;
    for (int i = 0; i < s->ntag; i++)
        if (s->tag[i].group == g && !s->tag[i].deleted) {
            s->tag[i].deleted = true;
            tag_unlink(s, i);
        }
    sim_cb cb = {.kind = CB_TAG_DELETE, .grp = g, .tag_is_group = true, .welcome = -1, .ts = ts};
    sim_emit(s, &cb, deliver);
    return 0;
}

/* ---- transfers and mass messages ------------------------------------------ */

int sim_transfer_start(sim *s, int c, int handover, int takeover, bool resigned, int64_t ts) {
    SIM_PUSH(s->xfer, s->nxfer, s->xfer_cap);
    int i = s->nxfer++;
    uint64_t h = sim_mix64(s->o.seed * 31 + (uint64_t)c * 7919 + (uint64_t)i);
    s->xfer[i] = (sim_transfer){.cust = c,
                                .handover = handover,
                                .takeover = takeover,
                                .resigned = resigned,
                                .refuse = (double)(h >> 11) / 9007199254740992.0 < s->o.refuse_rate,
                                .status = 2,
                                .start = ts,
                                .takeover_time = ts + s->o.takeover_delay};
    return i;
}

static void transfer_finish(sim *s, sim_transfer *x) {
    int64_t ts = x->takeover_time;
    if (x->refuse) {
        x->status = 3;
        sim_cb cb = {
            .kind = CB_TRANSFER_FAIL, .cust = x->cust, .emp = x->takeover, .welcome = -1, .ts = ts};
        sim_emit(s, &cb, true);
        return;
    }
    x->status = 1;
    sim_follow *old = sim_follow_of(&s->cust[x->cust], x->handover);
    char state[SIM_STATE_MAX] = "";
    if (old) snprintf(state, sizeof state, "%s", old->state);
    if (old && old->active) {
        sim_follow_end(s, x->cust, x->handover, ts);
        sim_cb cb = {.kind = CB_DEL_EXTERNAL,
                     .cust = x->cust,
                     .emp = x->handover,
                     .by_transfer = true,
                     .welcome = -1,
                     .ts = ts};
        sim_emit(s, &cb, true);
    }
    if (sim_follow_add(s, x->cust, x->takeover, ts, state, 202, false) == 0)
        emit_contact(s, CB_ADD, x->cust, x->takeover, ts, true);
}

void sim_msg_confirm(sim *s, int m, int64_t ts) {
    sim_msg *mg = &s->msg[m];
    if (mg->confirmed) return;
    mg->confirmed = true;
    int day = sim_day_of(s, ts);
    for (int i = 0; i < mg->nr; i++) {
        sim_recipient *r = &mg->r[i];
        if (r->status != 0) continue;
        sim_customer *c = &s->cust[r->cust];
        if (c->quota_day != day) {
            c->quota_day = day;
            c->quota_cnt = 0;
        }
        if (c->quota_cnt >= s->o.msg_quota) {
            r->status = 3;
            continue;
        }
        c->quota_cnt++;
        r->status = 1;
        r->send_time = ts;
        /* Customers respond: some reply to the sender, a few have had enough
         * and delete them (del_follow_user). Drawn from the message and the
         * customer, so a seed replays the same responses. */
        uint64_t h = sim_mix64(s->o.seed ^ ((uint64_t)m << 32) ^ (uint64_t)r->cust);
        unsigned p = (unsigned)(h % 1000);
        sim_follow *fo = sim_follow_of(c, r->emp);
        if (!fo || !fo->active) continue;
        if (p < 150) {
            chat(s, r->cust, r->emp, ts, &s->rng);
        } else if (p < 170) {
            sim_follow_end(s, r->cust, r->emp, ts);
            emit_contact(s, CB_DEL_FOLLOW, r->cust, r->emp, ts, true);
        }
    }
}

void sim_tick(sim *s) {
    int64_t now = sim_now(s);
    for (int i = 0; i < s->nxfer; i++) /* transfers are few; a scan is fine */
        if (s->xfer[i].status == 2 && s->xfer[i].takeover_time <= now)
            transfer_finish(s, &s->xfer[i]);
    for (int i = 0; i < s->nmsg; i++)
        if (!s->msg[i].confirmed && s->msg[i].create_time + 60 <= now) sim_msg_confirm(s, i, now);
}

/* ---- names ---------------------------------------------------------------- */

static const char *const surnames[] = {"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周",
                                       "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "罗", "高"};
static const char *const surnames_py[] = {"wang", "li",  "zhang", "liu", "chen", "yang", "huang",
                                          "zhao", "wu",  "zhou",  "xu",  "sun",  "ma",   "zhu",
                                          "hu",   "guo", "he",    "lin", "luo",  "gao"};
static const char *const given[] = {"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋",
                                    "艳", "勇", "军", "杰", "娟", "涛", "明", "超", "秀",
                                    "霞", "平", "刚", "桂", "英", "华", "玉", "萍", "红",
                                    "婷", "雪", "琳", "晨", "宇", "欣", "怡", "子", "涵"};
static const char *const cities[] = {"上海", "北京", "广州", "深圳", "杭州", "南京",
                                     "成都", "武汉", "西安", "苏州", "重庆", "天津"};
static const char *const districts[] = {"中心", "万达",   "来福士", "太古里", "大悦城",
                                        "银泰", "万象城", "吾悦",   "龙湖",   "印象城"};
static const char *const regions[] = {"华东大区", "华北大区", "华南大区", "西南大区",
                                      "华中大区", "西北大区", "东北大区", "电商事业部",
                                      "会员中心", "市场部",   "品牌部",   "客服中心"};
static const struct {
    const char *group;
    const char *tags[8];
} tag_table[] = {
    {"客户等级", {"普通会员", "银卡会员", "金卡会员", "钻石会员", "黑卡会员"}},
    {"兴趣", {"护肤", "彩妆", "香水", "身体护理", "男士护理", "母婴", "健康", "美发"}},
    {"肤质", {"干性", "油性", "混合性", "敏感肌", "中性"}},
    {"年龄段", {"18岁以下", "18-24岁", "25-30岁", "31-40岁", "41-50岁", "50岁以上"}},
    {"消费能力", {"高", "中", "低"}},
    {"来源", {"门店", "直播", "小程序", "公众号", "抖音", "小红书", "朋友推荐"}},
    {"生命周期", {"新客", "活跃", "沉睡", "流失预警", "已流失"}},
    {"活动", {"618", "双11", "双12", "年货节", "会员日", "新品试用"}},
    {"门店偏好", {"到店", "到家", "自提"}},
    {"沟通偏好", {"勿扰", "仅活动", "每周一次"}},
};

static void person_name(sim_rng *r, char *out, size_t cap, int *surname) {
    int sn = (int)sim_rng_below(r, sizeof surnames / sizeof *surnames);
    const char *g1 = given[sim_rng_below(r, sizeof given / sizeof *given)];
    const char *g2 =
        sim_rng_below(r, 3) ? given[sim_rng_below(r, sizeof given / sizeof *given)] : "";
    snprintf(out, cap, "%s%s%s", surnames[sn], g1, g2);
    if (surname) *surname = sn;
}

/* ---- history --------------------------------------------------------------- */

enum intent_kind {
    I_ADD,
    I_TAG,
    I_REMARK,
    I_CHAT,
    I_DEL_FOLLOW,
    I_DEL_EXT,
    I_GRP_CREATE,
    I_GRP_JOIN,
    I_GRP_QUIT,
    I_GRP_NAME,
    I_GRP_DISMISS,
    I_TAG_DELETE,
};

typedef struct intent {
    int64_t ts;
    uint32_t seq;
    uint8_t kind;
    uint8_t flag; /* add: half; join: employee member; quit scene */
    int16_t scene;
    int a, b, c; /* customer/group/tag, employee/member, way */
} intent;

typedef struct gen {
    sim *s;
    sim_rng r;
    intent *in;
    size_t n, cap;
    int64_t *add_ts; /* first add time of each customer */
    int *first_emp;
} gen;

static void put(gen *g, int64_t ts, int kind, int a, int b, int c, int flag, int scene) {
    if (ts >= g->s->hist_end) return;
    SIM_PUSH(g->in, g->n, g->cap);
    g->in[g->n] = (intent){.ts = ts,
                           .seq = (uint32_t)g->n,
                           .kind = (uint8_t)kind,
                           .flag = (uint8_t)flag,
                           .scene = (int16_t)scene,
                           .a = a,
                           .b = b,
                           .c = c};
    g->n++;
}

static int cmp_intent(const void *x, const void *y) {
    const intent *a = x, *b = y;
    if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int cmp_i64(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* Festival weight of the day starting at ts (Shanghai time). */
static double day_weight(int64_t ts) {
    time_t t = (time_t)(ts + TZ_OFFSET);
    struct tm tm;
    gmtime_r(&t, &tm);
    double w = 1.0;
    if (tm.tm_wday == 0 || tm.tm_wday == 6) w += 0.35;
    static const struct {
        int mon, day;
        double peak;
    } fest[] = {{6, 18, 5.0}, {11, 11, 7.0}, {12, 12, 2.5}, {5, 20, 1.5}, {3, 8, 1.5}};
    for (size_t i = 0; i < sizeof fest / sizeof *fest; i++) {
        struct tm f = {.tm_year = tm.tm_year, .tm_mon = fest[i].mon - 1, .tm_mday = fest[i].day};
        int64_t fd = (int64_t)timegm(&f) / DAY, d = (int64_t)t / DAY;
        double dist = (double)llabs(d - fd);
        if (dist < 8) w += fest[i].peak * exp(-dist / 1.5);
    }
    /* Spring Festival (lunar new year) eve spikes, then a lull. */
    static const char *const spring[] = {"2025-01-29", "2026-02-17", "2027-02-06", "2028-01-26"};
    for (size_t i = 0; i < sizeof spring / sizeof *spring; i++) {
        struct tm f = {0};
        sscanf(spring[i], "%d-%d-%d", &f.tm_year, &f.tm_mon, &f.tm_mday);
        f.tm_year -= 1900;
        f.tm_mon -= 1;
        int64_t fd = (int64_t)timegm(&f) / DAY, d = (int64_t)t / DAY;
        if (d >= fd - 10 && d < fd) w += 2.0 * exp(-(double)(fd - d) / 4.0);
        if (d >= fd && d < fd + 7) w *= 0.5;
    }
    return w;
}

/* A time of day: mostly 9:00-22:00 Shanghai time. */
static int64_t time_of_day(sim_rng *r) {
    double h = 9.0 + sim_rng_double(r) * 13.0;
    if (sim_rng_below(r, 10) == 0) h = sim_rng_double(r) * 24.0;
    return (int64_t)(h * 3600.0) - TZ_OFFSET + (int64_t)sim_rng_below(r, 60);
}

static int draw_emp(gen *g, const sim_zipf *z, int64_t ts) {
    sim *s = g->s;
    for (int k = 0; k < 8; k++) {
        int e = sim_zipf_draw(z, &g->r);
        if (!s->emp[e].resigned || s->emp[e].resign_time > ts) return e;
    }
    return 0; /* employee 0 never resigns */
}

static void gen_org(gen *g) {
    sim *s = g->s;
    const sim_options *o = &s->o;
    s->ndepts = o->departments;
    s->depts = sim_xrealloc(NULL, (size_t)s->ndepts * sizeof *s->depts);
    for (int i = 0; i < s->ndepts; i++)
        if (i < (int)(sizeof regions / sizeof *regions))
            snprintf(s->depts[i], sizeof s->depts[i], "%s", regions[i]);
        else
            snprintf(s->depts[i], sizeof s->depts[i], "区域%d", i + 1);
    s->nstores = o->stores;
    s->stores = sim_xrealloc(NULL, (size_t)s->nstores * sizeof *s->stores);
    s->store_dept = sim_xrealloc(NULL, (size_t)s->nstores * sizeof *s->store_dept);
    s->store_city = sim_xrealloc(NULL, (size_t)s->nstores * sizeof *s->store_city);
    for (int i = 0; i < s->nstores; i++) {
        s->store_city[i] = cities[i % 12];
        snprintf(s->stores[i], sizeof s->stores[i], "%s%s店%d", cities[i % 12],
                 districts[(i / 12) % 10], i / 120 + 1);
        s->store_dept[i] = i % (s->ndepts < 7 ? s->ndepts : 7);
    }
    sim_zipf zs;
    sim_zipf_init(&zs, s->nstores, 0.8);
    s->emp_cap = s->nemp = o->employees;
    s->emp = sim_xrealloc(NULL, (size_t)s->nemp * sizeof *s->emp);
    for (int i = 0; i < s->nemp; i++) {
        sim_employee *e = &s->emp[i];
        memset(e, 0, sizeof *e);
        int sn = 0;
        person_name(&g->r, e->name, sizeof e->name, &sn);
        snprintf(e->userid, sizeof e->userid, "%s%04d", surnames_py[sn], i);
        e->store = s->nstores ? sim_zipf_draw(&zs, &g->r) : -1;
        e->dept = e->store >= 0 && i % 10 ? s->store_dept[e->store]
                                          : (int)sim_rng_below(&g->r, (uint32_t)s->ndepts);
        /* about 1% resign in the last ten days of the history */
        if (i > 0 && sim_rng_below(&g->r, 100) == 0) {
            e->resigned = true;
            e->resign_time = s->hist_end - (int64_t)sim_rng_below(&g->r, 10 * DAY);
        }
    }
    sim_zipf_reset(&zs);
}

static void gen_tags(gen *g) {
    sim *s = g->s;
    int want = s->o.tags, made = 0;
    int64_t ts = s->hist_start + 600;
    for (size_t gi = 0; made < want; gi++) {
        char gname[SIM_NAME_MAX];
        size_t k = gi % (sizeof tag_table / sizeof *tag_table);
        if (gi < sizeof tag_table / sizeof *tag_table)
            snprintf(gname, sizeof gname, "%s", tag_table[k].group);
        else
            snprintf(gname, sizeof gname, "%s%zu", tag_table[k].group,
                     gi / (sizeof tag_table / sizeof *tag_table) + 1);
        int tg = sim_tgrp_add(s, gname, ts++, true);
        s->tgrp[tg].order = (uint32_t)(1000 - gi);
        for (int j = 0; j < 8 && tag_table[k].tags[j] && made < want; j++, made++) {
            int t = sim_tag_add(s, tg, tag_table[k].tags[j], ts++, true);
            s->tag[t].order = (uint32_t)(100 - j);
        }
    }
}

static void gen_ways(gen *g, const sim_zipf *ze) {
    sim *s = g->s;
    s->way_cap = s->nway = s->o.channels;
    s->way = sim_xrealloc(NULL, (size_t)s->nway * sizeof *s->way);
    static const char *const kinds[] = {"门店海报", "收银台",   "直播间", "公众号菜单", "包裹卡",
                                        "小程序",   "导购名片", "活动页", "短信",       "地推"};
    for (int i = 0; i < s->nway; i++) {
        sim_way *w = &s->way[i];
        memset(w, 0, sizeof *w);
        sim_id_make(s, ID_WAY, (uint32_t)i, w->config_id);
        w->type = sim_rng_below(&g->r, 10) < 7 ? 1 : 2;
        w->scene = 2;
        w->style = 1;
        w->skip_verify = sim_rng_below(&g->r, 10) < 8;
        snprintf(w->state, sizeof w->state, "ch%04d", i + 1);
        int st = s->nstores ? (int)sim_rng_below(&g->r, (uint32_t)s->nstores) : 0;
        snprintf(w->remark, sizeof w->remark, "%s-%s", kinds[i % 10],
                 s->nstores ? s->stores[st] : "总部");
        w->nusers = w->type == 1 ? 1 : 2 + (int)sim_rng_below(&g->r, 4);
        w->users = sim_xrealloc(NULL, (size_t)w->nusers * sizeof *w->users);
        for (int u = 0; u < w->nusers; u++) {
            w->users[u] = draw_emp(g, ze, s->hist_start);
        }
        w->create_time = s->hist_start - 86400 * (1 + (int64_t)sim_rng_below(&g->r, 300));
    }
}

static void gen_customers(gen *g, const sim_zipf *ze) {
    sim *s = g->s;
    int n = s->o.customers;
    int days = s->o.history_days;
    double *cdf = sim_xrealloc(NULL, (size_t)days * sizeof *cdf), acc = 0;
    for (int d = 0; d < days; d++) {
        acc += day_weight(s->hist_start + (int64_t)d * DAY);
        cdf[d] = acc;
    }
    g->add_ts = sim_xrealloc(NULL, (size_t)(n ? n : 1) * sizeof *g->add_ts);
    for (int i = 0; i < n; i++) {
        double u = sim_rng_double(&g->r) * acc;
        int lo = 0, hi = days - 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        int64_t t = s->hist_start + (int64_t)lo * DAY + time_of_day(&g->r);
        if (t < s->hist_start) t += DAY / 2;
        if (t >= s->hist_end) t = s->hist_end - 1 - (int64_t)sim_rng_below(&g->r, 3600);
        g->add_ts[i] = t;
    }
    free(cdf);
    qsort(g->add_ts, (size_t)n, sizeof *g->add_ts, cmp_i64);
    s->cust_cap = s->ncust = n;
    s->cust = sim_xrealloc(NULL, (size_t)(n ? n : 1) * sizeof *s->cust);
    g->first_emp = sim_xrealloc(NULL, (size_t)(n ? n : 1) * sizeof *g->first_emp);
    sim_zipf zw;
    sim_zipf_init(&zw, s->nway, 1.1);
    for (int i = 0; i < n; i++) {
        sim_customer *c = &s->cust[i];
        memset(c, 0, sizeof *c);
        sim_id_make(s, ID_CUSTOMER, (uint32_t)i, c->ext);
        person_name(&g->r, c->name, sizeof c->name, NULL);
        c->gender = 1 + (int)sim_rng_below(&g->r, 2) + (sim_rng_below(&g->r, 20) == 0 ? -1 : 0);
        c->quota_day = -1;
        int64_t t = g->add_ts[i];
        int way = -1, e;
        if (s->nway && sim_rng_below(&g->r, 100) < 65) {
            way = sim_zipf_draw(&zw, &g->r);
            e = s->way[way].users[sim_rng_below(&g->r, (uint32_t)s->way[way].nusers)];
            if (s->emp[e].resigned && s->emp[e].resign_time <= t) e = draw_emp(g, ze, t);
        } else {
            e = draw_emp(g, ze, t);
        }
        g->first_emp[i] = e;
        bool half = sim_rng_below(&g->r, 100) < 12;
        put(g, t, I_ADD, i, e, way, half, 0);
        if (sim_rng_below(&g->r, 100) < 45)
            put(g, t + (int64_t)sim_rng_exp(&g->r, 7200) + 1, I_TAG, i, e, 0, 0, 0);
        if (sim_rng_below(&g->r, 100) < 20)
            put(g, t + (int64_t)sim_rng_exp(&g->r, DAY) + 1, I_REMARK, i, e, 0, 0, 0);
        int chats = (int)sim_rng_exp(&g->r, 3.0);
        for (int k = 0; k < chats; k++) /* activity decays after the add */
            put(g, t + (int64_t)sim_rng_exp(&g->r, 5.0 * DAY) + 60, I_CHAT, i, e, 0, 0, 0);
        uint32_t churn = sim_rng_below(&g->r, 1000);
        if (churn < 100)
            put(g, t + (int64_t)sim_rng_exp(&g->r, 25.0 * DAY) + 2, I_DEL_FOLLOW, i, e, 0, 0, 0);
        else if (churn < 130)
            put(g, t + (int64_t)sim_rng_exp(&g->r, 30.0 * DAY) + 2, I_DEL_EXT, i, e, 0, 0, 0);
        if (sim_rng_below(&g->r, 100) < 8) {
            int64_t t2 = t + (int64_t)sim_rng_exp(&g->r, 10.0 * DAY) + 5;
            int e2 = draw_emp(g, ze, t2);
            if (e2 != e) {
                put(g, t2, I_ADD, i, e2, -1, 0, 0);
                if (sim_rng_below(&g->r, 2)) put(g, t2 + 600, I_TAG, i, e2, 0, 0, 0);
            }
        }
    }
    sim_zipf_reset(&zw);
}

static void gen_groups(gen *g, const sim_zipf *ze) {
    sim *s = g->s;
    int ng = s->o.groups;
    s->grp_cap = s->ngrp = ng;
    s->grp = calloc((size_t)ng + 1, sizeof *s->grp);
    if (!s->grp) abort();
    /* customers per employee, in add order, for picking group members */
    int *cnt = calloc((size_t)s->nemp + 1, sizeof *cnt);
    int *start = calloc((size_t)s->nemp + 1, sizeof *start);
    int *list = sim_xrealloc(NULL, (size_t)(s->ncust ? s->ncust : 1) * sizeof *list);
    if (!cnt || !start) abort();
    for (int i = 0; i < s->ncust; i++)
        cnt[g->first_emp[i]]++;
    for (int e = 0; e < s->nemp; e++)
        start[e + 1] = start[e] + cnt[e];
    memset(cnt, 0, (size_t)s->nemp * sizeof *cnt);
    for (int i = 0; i < s->ncust; i++) {
        int e = g->first_emp[i];
        list[start[e] + cnt[e]++] = i;
    }
    int64_t span = s->hist_end - s->hist_start - DAY;
    for (int gi = 0; gi < ng; gi++) {
        int64_t t =
            s->hist_start + (int64_t)(sim_rng_double(&g->r) * (double)(span > 0 ? span : 1));
        int owner = draw_emp(g, ze, t);
        put(g, t, I_GRP_CREATE, gi, owner, (int)sim_rng_below(&g->r, 8), 0, 0);
        int members = (int)exp(sim_rng_double(&g->r) * log(180.0)) + 2;
        for (int k = 0; k < members; k++) {
            int c;
            if (cnt[owner] && sim_rng_below(&g->r, 10) < 8)
                c = list[start[owner] + (int)sim_rng_below(&g->r, (uint32_t)cnt[owner])];
            else if (s->ncust)
                c = (int)sim_rng_below(&g->r, (uint32_t)s->ncust);
            else
                break;
            int64_t jt =
                (g->add_ts[c] > t ? g->add_ts[c] : t) + (int64_t)sim_rng_exp(&g->r, 3.0 * DAY) + 1;
            uint32_t sc = sim_rng_below(&g->r, 100);
            int scene = sc < 45 ? 1 : sc < 65 ? 2 : 3;
            put(g, jt, I_GRP_JOIN, gi, c, 0, 0, scene);
            if (sim_rng_below(&g->r, 100) < 15)
                put(g, jt + (int64_t)sim_rng_exp(&g->r, 15.0 * DAY) + 1, I_GRP_QUIT, gi, c, 0, 0,
                    (int)sim_rng_below(&g->r, 2));
        }
        int staff = (int)sim_rng_below(&g->r, 3);
        for (int k = 0; k < staff; k++)
            put(g, t + 60 + k, I_GRP_JOIN, gi, draw_emp(g, ze, t), 0, 1, 1);
        if (sim_rng_below(&g->r, 100) < 5)
            put(g, t + (int64_t)sim_rng_exp(&g->r, 20.0 * DAY) + 1, I_GRP_NAME, gi, 0,
                (int)sim_rng_below(&g->r, 8), 0, 0);
        if (sim_rng_below(&g->r, 100) < 3)
            put(g, t + (int64_t)sim_rng_exp(&g->r, 40.0 * DAY) + 1, I_GRP_DISMISS, gi, 0, 0, 0, 0);
    }
    if (s->o.tags > 4) /* one tag retired mid-history */
        put(g, s->hist_start + (s->hist_end - s->hist_start) / 2, I_TAG_DELETE, s->o.tags - 1, 0, 0,
            0, 0);
    free(cnt);
    free(start);
    free(list);
}

static void apply_intent(gen *g, const intent *it) {
    sim *s = g->s;
    static const char *const gnames[] = {"会员福利群", "新品体验群", "宝妈交流群", "VIP专享群",
                                         "秒杀快讯群", "护肤交流群", "老客回馈群", "直播预告群"};
    switch (it->kind) {
    case I_ADD: {
        const char *state = it->c >= 0 ? s->way[it->c].state : "";
        static const int ways[] = {2, 3, 5, 6, 4, 10, 3, 2};
        int add_way = it->c >= 0 ? 1 : ways[sim_rng_below(&g->r, 8)];
        bool oper_cust = it->c >= 0 || add_way == 3 || add_way == 4 || add_way == 10;
        if (sim_follow_add(s, it->a, it->b, it->ts, state, add_way, oper_cust) != 0) return;
        if (it->c >= 0) s->way[it->c].adds++;
        sim_cb cb = {.kind = it->flag ? CB_ADD_HALF : CB_ADD,
                     .cust = it->a,
                     .emp = it->b,
                     .welcome = -1,
                     .ts = it->ts};
        snprintf(cb.state, sizeof cb.state, "%s", state);
        sim_emit(s, &cb, true);
        return;
    }
    case I_TAG: {
        sim_follow *f = active_follow(s, it->a, it->b);
        if (!f || !s->ntag) return;
        tag_follow(s, f, &g->r, 1 + (int)sim_rng_below(&g->r, 3));
        emit_contact(s, CB_EDIT, it->a, it->b, it->ts, true);
        return;
    }
    case I_REMARK: {
        sim_follow *f = active_follow(s, it->a, it->b);
        if (!f) return;
        snprintf(f->remark, sizeof f->remark, "%s%s", s->cust[it->a].name,
                 remarks[sim_rng_below(&g->r, 10)]);
        emit_contact(s, CB_EDIT, it->a, it->b, it->ts, true);
        return;
    }
    case I_CHAT:
        if (active_follow(s, it->a, it->b)) chat(s, it->a, it->b, it->ts, &g->r);
        return;
    case I_DEL_FOLLOW:
    case I_DEL_EXT: {
        if (!active_follow(s, it->a, it->b)) return;
        sim_follow_end(s, it->a, it->b, it->ts);
        if (it->kind == I_DEL_FOLLOW) {
            sim_day_stat *st = sim_stat(s, it->b, it->ts);
            if (st) st->negative++;
        }
        emit_contact(s, it->kind == I_DEL_FOLLOW ? CB_DEL_FOLLOW : CB_DEL_EXTERNAL, it->a, it->b,
                     it->ts, true);
        return;
    }
    case I_GRP_CREATE: {
        char name[SIM_NAME_MAX];
        snprintf(name, sizeof name, "%s%d", gnames[it->c % 8], it->a + 1);
        grp_create(s, it->a, it->b, name, it->ts, true);
        return;
    }
    case I_GRP_JOIN:
        grp_join(s, it->a, it->b, it->flag, it->scene, it->ts, true);
        return;
    case I_GRP_QUIT: {
        int mi = grp_member_find(&s->grp[it->a], it->b, false);
        if (mi >= 0) grp_quit(s, it->a, mi, it->scene, it->ts, true);
        return;
    }
    case I_GRP_NAME: {
        char name[SIM_NAME_MAX];
        snprintf(name, sizeof name, "%s%d期", gnames[it->c % 8], it->a + 1);
        if (!s->grp[it->a].dismissed) grp_rename(s, it->a, name, it->ts, true);
        return;
    }
    case I_GRP_DISMISS:
        grp_dismiss(s, it->a, it->ts, true);
        return;
    case I_TAG_DELETE:
        if (it->a < s->ntag) sim__tag_delete(s, it->a, it->ts, true);
        return;
    }
}

int sim_world_build(sim *s, siyu_err *err) {
    const sim_options *o = &s->o;
    if (o->employees < 1 || o->history_days < 1 || o->customers < 0 || o->stores < 0 ||
        o->departments < 1 || o->channels < 0 || o->groups < 0 || o->tags < 0 ||
        o->customers > 5000000 || o->employees > 100000)
        return siyu_err_set(err, SIYU_EINVAL, NULL, "population flags out of range");
    for (int k = 0; k < ID_KIND_COUNT; k++)
        s->id_key[k] = sim_mix64(o->seed * 1000003 + (uint64_t)k * 0x9e37);
    int64_t now = (int64_t)time(NULL);
    s->hist_end = (now + TZ_OFFSET) / DAY * DAY - TZ_OFFSET;
    s->hist_start = s->hist_end - (int64_t)o->history_days * DAY;
    s->ndays = o->history_days + SIM_EXTRA_DAYS;
    gen g = {.s = s};
    sim_rng_seed(&g.r, o->seed);
    sim_rng_seed(&s->rng, o->seed ^ 0x6c69766521ULL);
    s->replaying = true;
    gen_org(&g);
    s->nemp_stat = s->nemp;
    s->stat = calloc((size_t)s->nemp * (size_t)s->ndays, sizeof *s->stat);
    if (!s->stat) return siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    sim_zipf ze;
    sim_zipf_init(&ze, s->nemp, 0.9);
    gen_tags(&g);
    gen_ways(&g, &ze);
    gen_customers(&g, &ze);
    gen_groups(&g, &ze);
    sim_zipf_reset(&ze);
    if (g.n) qsort(g.in, g.n, sizeof *g.in, cmp_intent);
    for (size_t i = 0; i < g.n; i++)
        apply_intent(&g, &g.in[i]);
    for (int gi = 0; gi < s->ngrp; gi++) /* groups of resigned owners wait for inheritance */
        if (s->emp[s->grp[gi].owner].resigned) s->grp[gi].status = 1;
    free(g.in);
    free(g.add_ts);
    free(g.first_emp);
    sim_zipf_init(&s->emp_zipf, s->nemp, 0.9);
    s->replaying = false;
    return 0;
}

void sim_world_free(sim *s) {
    for (int i = 0; i < s->ncust; i++) {
        for (int j = 0; j < s->cust[i].nf; j++) {
            free(s->cust[i].f[j].tags);
            free(s->cust[i].f[j].description);
        }
        free(s->cust[i].f);
    }
    free(s->cust);
    for (int i = 0; i < s->nemp; i++)
        free(s->emp[i].custs);
    free(s->emp);
    for (int i = 0; i < s->ngrp; i++)
        free(s->grp[i].m);
    free(s->grp);
    free(s->tgrp);
    free(s->tag);
    for (int i = 0; i < s->nway; i++) {
        free(s->way[i].users);
        free(s->way[i].parties);
    }
    free(s->way);
    free(s->jw);
    free(s->wel);
    for (int i = 0; i < s->nwlog; i++)
        free(s->wlog[i].text);
    free(s->wlog);
    free(s->xfer);
    for (int i = 0; i < s->nmsg; i++) {
        free(s->msg[i].text);
        free(s->msg[i].r);
    }
    free(s->msg);
    free(s->tok);
    free(s->stat);
    free(s->depts);
    free(s->stores);
    free(s->store_dept);
    free(s->store_city);
    sim_zipf_reset(&s->emp_zipf);
    for (size_t i = 0; i < s->log_chunks; i++)
        free(s->log[i]);
    free(s->log);
}

/* ---- live actions ------------------------------------------------------- */

static int pick_active_follow(sim *s, sim_rng *r, int *c, int *e) {
    for (int k = 0; k < 20 && s->ncust; k++) {
        int ci = (int)sim_rng_below(r, (uint32_t)s->ncust);
        sim_customer *cu = &s->cust[ci];
        for (int j = 0; j < cu->nf; j++)
            if (cu->f[j].active) {
                *c = ci;
                *e = cu->f[j].emp;
                return 0;
            }
    }
    return -1;
}

static int new_customer(sim *s, sim_rng *r) {
    SIM_PUSH(s->cust, s->ncust, s->cust_cap);
    int i = s->ncust++;
    sim_customer *c = &s->cust[i];
    memset(c, 0, sizeof *c);
    sim_id_make(s, ID_CUSTOMER, (uint32_t)i, c->ext);
    person_name(r, c->name, sizeof c->name, NULL);
    c->gender = 1 + (int)sim_rng_below(r, 2);
    c->quota_day = -1;
    return i;
}

static int live_emp(sim *s, sim_rng *r) {
    for (int k = 0; k < 8; k++) {
        int e = sim_zipf_draw(&s->emp_zipf, r);
        if (!s->emp[e].resigned) return e;
    }
    return 0;
}

int sim_act_run(sim *s, sim_act *a, sim_rng *r, int64_t ts) {
    const char *t = a->type ? a->type : "";
    a->cust = a->welcome_idx = a->grp = a->tag = a->tgrp = -1;
    size_t before = s->log_len;
    int e = a->userid ? sim_emp_find(s, a->userid) : -1;
    if (a->userid && e < 0) return 60111;
    int c = a->external_userid ? sim_cust_find(s, a->external_userid) : -1;
    if (a->external_userid && c < 0) return 40096;
    int g = a->chat_id ? sim_grp_find(s, a->chat_id) : -1;
    if (a->chat_id && g < 0) return 90501;
    int rc = 0;
    if (!strcmp(t, "add")) {
        if (e < 0) e = live_emp(s, r);
        if (c < 0) c = new_customer(s, r);
        const char *state = a->state ? a->state : "";
        if (strlen(state) >= SIM_STATE_MAX) return 40058;
        for (int i = 0; i < s->nway; i++)
            if (!s->way[i].deleted && *state && !strcmp(s->way[i].state, state)) s->way[i].adds++;
        bool oper_cust = *state || sim_rng_below(r, 2);
        if (sim_follow_add(s, c, e, ts, state, *state ? 1 : oper_cust ? 3 : 2, oper_cust) != 0)
            return 84061; /* already a friend: nothing to add */
        sim_cb cb = {
            .kind = a->half ? CB_ADD_HALF : CB_ADD, .cust = c, .emp = e, .welcome = -1, .ts = ts};
        snprintf(cb.state, sizeof cb.state, "%s", state);
        if (a->welcome) cb.welcome = a->welcome_idx = sim_welcome_mint(s, c, e, ts);
        sim_emit(s, &cb, a->deliver);
        a->cust = c;
    } else if (!strcmp(t, "del_follow_user") || !strcmp(t, "del_external_contact") ||
               !strcmp(t, "edit")) {
        if (c < 0 && e < 0 && pick_active_follow(s, r, &c, &e) != 0) return 40096;
        if (c < 0) return 40096;
        if (e < 0)
            for (int j = 0; j < s->cust[c].nf && e < 0; j++)
                if (s->cust[c].f[j].active) e = s->cust[c].f[j].emp;
        sim_follow *f = e >= 0 ? active_follow(s, c, e) : NULL;
        if (!f) return 84061;
        if (!strcmp(t, "edit")) {
            if (s->ntag) tag_follow(s, f, r, 1 + (int)sim_rng_below(r, 2));
            snprintf(f->remark, sizeof f->remark, "%s%s", s->cust[c].name,
                     remarks[sim_rng_below(r, 10)]);
            emit_contact(s, CB_EDIT, c, e, ts, a->deliver);
        } else {
            bool by_cust = !strcmp(t, "del_follow_user");
            sim_follow_end(s, c, e, ts);
            sim_day_stat *st = by_cust ? sim_stat(s, e, ts) : NULL;
            if (st) st->negative++;
            emit_contact(s, by_cust ? CB_DEL_FOLLOW : CB_DEL_EXTERNAL, c, e, ts, a->deliver);
        }
        a->cust = c;
    } else if (!strcmp(t, "join_group") || !strcmp(t, "quit_group")) {
        if (g < 0) {
            for (int k = 0; k < 20 && s->ngrp && g < 0; k++) {
                g = (int)sim_rng_below(r, (uint32_t)s->ngrp);
                if (s->grp[g].dismissed) g = -1;
            }
            if (g < 0) return 90501;
        }
        if (s->grp[g].dismissed) return 90501;
        bool join = !strcmp(t, "join_group");
        if (join) {
            bool is_emp = c < 0 && e >= 0;
            if (c < 0 && e < 0) c = s->ncust ? (int)sim_rng_below(r, (uint32_t)s->ncust) : -1;
            if (c < 0 && !is_emp) return 40096;
            int scene = 1 + (int)sim_rng_below(r, 3);
            if (grp_join(s, g, is_emp ? e : c, is_emp, scene, ts, a->deliver) != 0) return 40058;
        } else {
            int mi = -1;
            sim_group *gr = &s->grp[g];
            if (c >= 0)
                mi = grp_member_find(gr, c, false);
            else if (e >= 0)
                mi = grp_member_find(gr, e, true);
            else
                for (int i = gr->nm - 1; i >= 0 && mi < 0; i--)
                    if (!gr->m[i].left_time && !gr->m[i].is_emp) mi = i;
            if (mi < 0 || grp_quit(s, g, mi, (int)sim_rng_below(r, 2), ts, a->deliver) != 0)
                return 40058;
        }
        a->grp = g;
    } else if (!strcmp(t, "scan_join_way")) {
        /* a customer (external_userid, or a random one) scans the join way
         * whose config_id is in `state`: WeCom puts them in its first chat
         * that is not full */
        int w = -1;
        for (int i = 0; i < s->njw && w < 0; i++)
            if (!s->jw[i].deleted && a->state && !strcmp(s->jw[i].config_id, a->state)) w = i;
        if (w < 0) return 40058;
        if (c < 0) c = s->ncust ? (int)sim_rng_below(r, (uint32_t)s->ncust) : -1;
        if (c < 0) return 40096;
        for (int k = 0; k < s->jw[w].nchats && g < 0; k++) {
            sim_group *gr = &s->grp[s->jw[w].chats[k]];
            int in = 0;
            for (int i = 0; i < gr->nm; i++)
                in += !gr->m[i].left_time;
            if (!gr->dismissed && in < SIM_JOIN_WAY_FULL) g = s->jw[w].chats[k];
        }
        if (g < 0) return 90501;
        if (grp_join(s, g, c, false, 3, ts, a->deliver) != 0) return 40058;
        a->grp = g;
        a->cust = c;
    } else if (!strcmp(t, "resign")) {
        /* the member leaves the corp: their customers and groups wait for
         * inheritance (get_unassigned_list, groupchat/list status 1) */
        if (e < 0 || e == 0 || s->emp[e].resigned) return 60111;
        s->emp[e].resigned = true;
        s->emp[e].resign_time = ts;
        for (int gi = 0; gi < s->ngrp; gi++)
            if (s->grp[gi].owner == e && !s->grp[gi].dismissed) s->grp[gi].status = 1;
    } else if (!strcmp(t, "create_group")) {
        if (e < 0) e = live_emp(s, r);
        char name[SIM_NAME_MAX];
        snprintf(name, sizeof name, "%s", a->name ? a->name : "新建客户群");
        a->grp = grp_create(s, s->ngrp, e, name, ts, a->deliver);
    } else if (!strcmp(t, "dismiss_group")) {
        if (g < 0) return 90501;
        if (grp_dismiss(s, g, ts, a->deliver) != 0) return 90501;
        a->grp = g;
    } else if (!strcmp(t, "create_tag")) {
        const char *gname = a->group_name ? a->group_name : "自定义";
        int tg = -1;
        for (int i = 0; i < s->ntgrp && tg < 0; i++)
            if (!s->tgrp[i].deleted && !strcmp(s->tgrp[i].name, gname)) tg = i;
        if (tg < 0) tg = sim_tgrp_add(s, gname, ts, a->deliver);
        char name[SIM_NAME_MAX];
        if (a->name)
            snprintf(name, sizeof name, "%s", a->name);
        else
            snprintf(name, sizeof name, "标签%d", s->ntag + 1);
        a->tgrp = tg;
        a->tag = sim_tag_add(s, tg, name, ts, a->deliver);
    } else if (!strcmp(t, "delete_tag")) {
        int ti = a->tag_id ? sim_tag_find(s, a->tag_id) : -1;
        int gi = a->tag_id && ti < 0 ? sim_tgrp_find(s, a->tag_id) : -1;
        if (ti >= 0)
            rc = sim__tag_delete(s, ti, ts, a->deliver);
        else if (gi >= 0)
            rc = sim__tgrp_delete(s, gi, ts, a->deliver);
        else
            return 40068;
        if (rc != 0) return 40068;
        a->tag = ti;
        a->tgrp = gi;
    } else {
        return 40058;
    }
    a->callbacks = (int)(s->log_len - before);
    return 0;
}

void sim_act_random(sim *s, sim_rng *r, int64_t ts, int *callbacks) {
    static const struct {
        const char *type;
        int weight;
    } mix[] = {
        {"add", 40},        {"edit", 15},      {"del_follow_user", 5}, {"del_external_contact", 2},
        {"join_group", 18}, {"quit_group", 6}, {"chat", 12},           {"create_group", 1},
        {"create_tag", 1}};
    int total = 0;
    for (size_t i = 0; i < sizeof mix / sizeof *mix; i++)
        total += mix[i].weight;
    int x = (int)sim_rng_below(r, (uint32_t)total);
    size_t k = 0;
    while (x >= mix[k].weight)
        x -= mix[k++].weight;
    size_t before = s->log_len;
    if (!strcmp(mix[k].type, "chat")) {
        int c, e;
        if (pick_active_follow(s, r, &c, &e) == 0) chat(s, c, e, ts, r);
    } else {
        sim_act a = {.type = mix[k].type, .deliver = true};
        if (!strcmp(a.type, "add")) {
            a.half = sim_rng_below(r, 10) == 0;
            a.welcome = sim_rng_below(r, 2) == 0;
            if (s->nway && sim_rng_below(r, 10) < 6) {
                int w = (int)sim_rng_below(r, (uint32_t)s->nway);
                if (!s->way[w].deleted && s->way[w].nusers) {
                    a.state = s->way[w].state;
                    a.userid = s->emp[s->way[w].users[0]].userid;
                }
            }
        }
        sim_act_run(s, &a, r, ts);
    }
    *callbacks = (int)(s->log_len - before);
}
