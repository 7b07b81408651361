/* sim_cgi.c — the WeCom server API as the simulator answers it (spec §3).
 *
 * Request path: count the call ─ injected fault? (/sim/fault: errcode or
 * delay) ─ route ─ gettoken, or access_token from the query string only
 * (41001 missing, 40014 unknown, 42001 expired in simulated time) ─ JSON body
 * for POST (40058 when missing or malformed) ─ lock the world, run due
 * takeovers and confirmations (sim_tick), the handler, unlock.
 *
 * Every answer is {"errcode":N,"errmsg":"...",...} with HTTP 200, as WeCom
 * does. Handlers return 0 and add fields to `out`, or return an errcode and
 * the reply becomes just errcode/errmsg. Cursors are opaque strings made by
 * cursor_make from one or two integers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/sim_int.h"

#define DAY 86400
#define TZ_OFFSET (8 * 3600)

typedef struct cgi {
    sim *s;
    sim_req *r;
    json_t *b; /* body object (never NULL for POST handlers) */
    json_t *out;
    int64_t now;
} cgi;

typedef struct sim_fault {
    char path[96];
    int errcode, delay_ms, count;
    char cursor[2048]; /* next_cursor of the answer; "same": the request's */
} sim_fault;

static const struct {
    int code;
    const char *msg;
} errmsgs[] = {
    {-1, "system busy"},
    {0, "ok"},
    {40001, "invalid credential"},
    {40003, "invalid userid"},
    {40013, "invalid corpid"},
    {40014, "invalid access_token"},
    {40058, "invalid parameter"},
    {40068, "invalid tagid"},
    {40096, "invalid external userid"},
    {40097, "invalid handover userid: not resigned"},
    {40100, "user is already in transfer"},
    {40126, "corp tag count exceed limit"},
    {40128, "transfer customer too frequently"},
    {40130, "handover and takeover are the same user"},
    {40131, "handover user is not the follow user"},
    {41001, "access_token missing"},
    {41044, "invalid config_id"},
    {41048, "no customer to send"},
    {41049, "welcome_code missing"},
    {41050, "invalid welcome_code"},
    {41051, "externaluser has started chatting"},
    {41063, "msgid invalid"},
    {41064, "attachments count exceed limit"},
    {41091, "chat_id_list exceed limit"},
    {42001, "access_token expired"},
    {45009, "api freq out of limit"},
    {45033, "api concurrent out of limit"},
    {48002, "api forbidden"},
    {60111, "userid not found"},
    {81017, "too many items, use owner_filter"},
    {84061, "not external contact"},
    {90500, "the owner of this chat is not resigned"},
    {90501, "chat is not external group chat"},
    {90507, "chat transfer too frequently"},
};

static const char *errmsg_of(int code) {
    for (size_t i = 0; i < sizeof errmsgs / sizeof *errmsgs; i++)
        if (errmsgs[i].code == code) return errmsgs[i].msg;
    return "error";
}

static json_t *errbody(int code) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s, hint: [sim]", errmsg_of(code));
    return json_pack("{s:i,s:s}", "errcode", code, "errmsg", code ? msg : "ok");
}

/* ---- small JSON helpers --------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k));
}

static long long jint(const json_t *o, const char *k, long long def) {
    const json_t *v = json_object_get(o, k);
    if (json_is_integer(v)) return json_integer_value(v);
    if (json_is_string(v)) return atoll(json_string_value(v));
    return def;
}

static size_t utf8_chars(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

static int64_t day_floor(int64_t t) {
    return (t + TZ_OFFSET) / DAY * DAY - TZ_OFFSET;
}

/* Cursors: "c" + 16 hex digits of (a << 32 | b) xor a per-sim key. */
static void cursor_make(cgi *c, uint32_t a, uint32_t b, char out[24]) {
    uint64_t v = ((uint64_t)a << 32 | b) ^ c->s->id_key[ID_MSG];
    snprintf(out, 24, "c%016llx", (unsigned long long)v);
}

/* 0 with *a, *b (0, 0 for an empty cursor), or 40058 for a bad one. */
static int cursor_parse(cgi *c, const char *cur, uint32_t *a, uint32_t *b) {
    *a = *b = 0;
    if (!cur || !*cur) return 0;
    if (cur[0] != 'c' || strlen(cur) != 17) return 40058;
    char *end = NULL;
    uint64_t v = strtoull(cur + 1, &end, 16);
    if (*end) return 40058;
    v ^= c->s->id_key[ID_MSG];
    *a = (uint32_t)(v >> 32);
    *b = (uint32_t)v;
    return 0;
}

/* One row of a one-index cursor page: its JSON, or NULL to leave it out. */
typedef json_t *(*page_row_fn)(cgi *c, uint32_t i, void *ctx);

/* Answers rows [cursor, end) that row() keeps, at most limit of them, as
 * out[key] plus next_cursor (the first row kept but not sent, else "").
 * 0, or 40058 for a bad cursor. */
static int page_answer(cgi *c, const char *key, uint32_t end, long long limit, page_row_fn row,
                       void *ctx) {
    uint32_t pos, unused;
    if (cursor_parse(c, jstr(c->b, "cursor"), &pos, &unused) != 0) return 40058;
    json_t *a = json_array();
    long long n = 0;
    char next[24] = "";
    for (; pos < end; pos++) {
        json_t *o = row(c, pos, ctx);
        if (!o) continue;
        if (n == limit) {
            json_decref(o);
            cursor_make(c, pos, 0, next);
            break;
        }
        json_array_append_new(a, o);
        n++;
    }
    json_object_set_new(c->out, key, a);
    json_object_set_new(c->out, "next_cursor", json_string(next));
    return 0;
}

static json_t *tag_detail(sim *s, int t) {
    return json_pack("{s:s,s:s,s:i,s:s}", "group_name", s->tgrp[s->tag[t].group].name, "tag_name",
                     s->tag[t].name, "type", 1, "tag_id", s->tag[t].id);
}

static json_t *contact_json(sim *s, int ci) {
    sim_customer *c = &s->cust[ci];
    return json_pack("{s:s,s:s,s:i,s:i,s:s}", "external_userid", c->ext, "name", c->name, "type", 1,
                     "gender", c->gender, "avatar", "");
}

static const char *oper_of(sim *s, int ci, const sim_follow *f) {
    return f->oper_cust ? s->cust[ci].ext : s->emp[f->emp].userid;
}

/* ---- token ------------------------------------------------------------ */

static int h_gettoken(cgi *c) {
    sim *s = c->s;
    const char *corpid = sim_req_query(c->r, "corpid");
    const char *secret = sim_req_query(c->r, "corpsecret");
    if (!corpid || strcmp(corpid, s->o.corp_id) != 0) return 40013;
    if (!secret || strcmp(secret, s->o.secret) != 0) return 40001;
    SIM_PUSH(s->tok, s->ntok, s->tok_cap);
    sim_token *t = &s->tok[s->ntok];
    sim_id_make(s, ID_TOKEN, (uint32_t)s->ntok, t->token);
    t->expires = c->now + s->o.token_ttl;
    s->ntok++;
    json_object_set_new(c->out, "access_token", json_string(t->token));
    json_object_set_new(c->out, "expires_in", json_integer(s->o.token_ttl));
    return 0;
}

static int token_check(cgi *c) {
    const char *tok = sim_req_query(c->r, "access_token");
    if (!tok || !*tok) return 41001;
    int i = sim_id_index(c->s, ID_TOKEN, tok);
    if (i < 0 || i >= c->s->ntok) return 40014;
    if (c->now >= c->s->tok[i].expires) return 42001;
    return 0;
}

/* ---- customers ------------------------------------------------------------ */

static int h_follow_user_list(cgi *c) {
    json_t *a = json_array();
    for (int i = 0; i < c->s->nemp; i++)
        if (!c->s->emp[i].resigned) json_array_append_new(a, json_string(c->s->emp[i].userid));
    json_object_set_new(c->out, "follow_user", a);
    return 0;
}

static int h_list(cgi *c) {
    sim *s = c->s;
    int e = sim_emp_find(s, sim_req_query(c->r, "userid"));
    if (e < 0) return 40003;
    json_t *a = json_array();
    for (int i = 0; i < s->emp[e].ncusts; i++) {
        int ci = s->emp[e].custs[i];
        sim_follow *f = sim_follow_of(&s->cust[ci], e);
        if (f && f->active) json_array_append_new(a, json_string(s->cust[ci].ext));
    }
    json_object_set_new(c->out, "external_userid", a);
    return 0;
}

static int h_get(cgi *c) {
    sim *s = c->s;
    const char *ext = sim_req_query(c->r, "external_userid");
    if (!ext || !*ext) return 40058;
    int ci = sim_cust_find(s, ext);
    if (ci < 0) return 40096;
    sim_customer *cu = &s->cust[ci];
    json_t *fu = json_array();
    for (int i = 0; i < cu->nf; i++) {
        sim_follow *f = &cu->f[i];
        if (!f->active) continue;
        json_t *tags = json_array();
        for (int t = 0; t < f->ntags; t++)
            json_array_append_new(tags, tag_detail(s, f->tags[t]));
        json_t *o =
            json_pack("{s:s,s:s,s:s,s:I,s:o,s:s,s:[],s:s,s:i}", "userid", s->emp[f->emp].userid,
                      "remark", f->remark, "description", f->description ? f->description : "",
                      "createtime", (json_int_t)f->createtime, "tags", tags, "remark_corp_name", "",
                      "remark_mobiles", "oper_userid", oper_of(s, ci, f), "add_way", f->add_way);
        if (f->state[0]) json_object_set_new(o, "state", json_string(f->state));
        json_array_append_new(fu, o);
    }
    if (json_array_size(fu) == 0) {
        json_decref(fu);
        return 84061;
    }
    json_object_set_new(c->out, "external_contact", contact_json(s, ci));
    json_object_set_new(c->out, "follow_user", fu);
    json_object_set_new(c->out, "next_cursor", json_string(""));
    return 0;
}

static json_t *follow_info(sim *s, int ci, const sim_follow *f) {
    json_t *tags = json_array();
    for (int t = 0; t < f->ntags; t++)
        json_array_append_new(tags, json_string(s->tag[f->tags[t]].id));
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:I,s:o,s:s,s:[],s:s,s:i}", "userid", s->emp[f->emp].userid,
                  "remark", f->remark, "description", f->description ? f->description : "",
                  "createtime", (json_int_t)f->createtime, "tag_id", tags, "remark_corp_name", "",
                  "remark_mobiles", "oper_userid", oper_of(s, ci, f), "add_way", f->add_way);
    if (f->state[0]) json_object_set_new(o, "state", json_string(f->state));
    return o;
}

static int h_batch_get_by_user(cgi *c) {
    sim *s = c->s;
    json_t *ul = json_object_get(c->b, "userid_list");
    size_t nu = json_array_size(ul);
    long long limit = jint(c->b, "limit", 50);
    if (!json_is_array(ul) || nu == 0 || nu > 100 || limit < 1 || limit > 100) return 40058;
    int emps[100];
    for (size_t i = 0; i < nu; i++)
        if ((emps[i] = sim_emp_find(s, json_string_value(json_array_get(ul, i)))) < 0) return 40003;
    uint32_t ui, pos;
    if (cursor_parse(c, jstr(c->b, "cursor"), &ui, &pos) != 0) return 40058;
    json_t *list = json_array();
    long long n = 0;
    char next[24] = "";
    for (; ui < nu; ui++, pos = 0) {
        sim_employee *em = &s->emp[emps[ui]];
        for (; pos < (uint32_t)em->ncusts; pos++) {
            int ci = em->custs[pos];
            sim_follow *f = sim_follow_of(&s->cust[ci], emps[ui]);
            if (!f || !f->active) continue;
            if (n == limit) {
                cursor_make(c, ui, pos, next);
                goto done;
            }
            json_array_append_new(list,
                                  json_pack("{s:o,s:o}", "external_contact", contact_json(s, ci),
                                            "follow_info", follow_info(s, ci, f)));
            n++;
        }
    }
done:
    json_object_set_new(c->out, "external_contact_list", list);
    json_object_set_new(c->out, "next_cursor", json_string(next));
    return 0;
}

/* Customer and active follow named by userid + external_userid. */
static int follow_named(cgi *c, int *ci, sim_follow **f) {
    int e = sim_emp_find(c->s, jstr(c->b, "userid"));
    if (e < 0) return 40003;
    *ci = sim_cust_find(c->s, jstr(c->b, "external_userid"));
    if (*ci < 0) return 40096;
    *f = sim_follow_of(&c->s->cust[*ci], e);
    if (!*f) return 40096;
    return (*f)->active ? 0 : 84061;
}

static int h_remark(cgi *c) {
    const char *remark = jstr(c->b, "remark"), *desc = jstr(c->b, "description");
    if ((!remark || !*remark) && (!desc || !*desc) && !json_object_get(c->b, "remark_mobiles") &&
        !jstr(c->b, "remark_company"))
        return 40058;
    if ((remark && utf8_chars(remark) > 20) || (desc && utf8_chars(desc) > 150)) return 40058;
    int ci;
    sim_follow *f;
    int rc = follow_named(c, &ci, &f);
    if (rc) return rc;
    if (remark) snprintf(f->remark, sizeof f->remark, "%s", remark);
    if (desc) {
        free(f->description);
        f->description = sim_xstrdup(desc);
    }
    sim_cb cb = {.kind = CB_EDIT, .cust = ci, .emp = f->emp, .welcome = -1, .ts = c->now};
    sim_emit(c->s, &cb, true);
    return 0;
}

/* ---- corp tags -------------------------------------------------------------- */

static json_t *tgrp_json(sim *s, int g, const bool *want_tag) {
    sim_tag_group *tg = &s->tgrp[g];
    json_t *tags = json_array();
    for (int i = 0; i < s->ntag; i++) {
        sim_tag *t = &s->tag[i];
        if (t->group != g || t->deleted || (want_tag && !want_tag[i])) continue;
        json_array_append_new(tags, json_pack("{s:s,s:s,s:I,s:I}", "id", t->id, "name", t->name,
                                              "create_time", (json_int_t)t->create_time, "order",
                                              (json_int_t)t->order));
    }
    return json_pack("{s:s,s:s,s:I,s:I,s:o}", "group_id", tg->id, "group_name", tg->name,
                     "create_time", (json_int_t)tg->create_time, "order", (json_int_t)tg->order,
                     "tag", tags);
}

static int h_get_corp_tag_list(cgi *c) {
    sim *s = c->s;
    json_t *tids = json_object_get(c->b, "tag_id"), *gids = json_object_get(c->b, "group_id");
    json_t *out = json_array();
    if (json_array_size(gids)) {
        size_t i;
        json_t *v;
        json_array_foreach(gids, i, v) {
            int g = sim_tgrp_find(s, json_string_value(v));
            if (g >= 0 && !s->tgrp[g].deleted) json_array_append_new(out, tgrp_json(s, g, NULL));
        }
    } else if (json_array_size(tids)) {
        bool *want = calloc((size_t)s->ntag + 1, sizeof *want);
        bool *gw = calloc((size_t)s->ntgrp + 1, sizeof *gw);
        if (!want || !gw) abort();
        size_t i;
        json_t *v;
        json_array_foreach(tids, i, v) {
            int t = sim_tag_find(s, json_string_value(v));
            if (t >= 0 && !s->tag[t].deleted) want[t] = gw[s->tag[t].group] = true;
        }
        for (int g = 0; g < s->ntgrp; g++)
            if (gw[g]) json_array_append_new(out, tgrp_json(s, g, want));
        free(want);
        free(gw);
    } else {
        for (int g = 0; g < s->ntgrp; g++)
            if (!s->tgrp[g].deleted) json_array_append_new(out, tgrp_json(s, g, NULL));
    }
    json_object_set_new(c->out, "tag_group", out);
    return 0;
}

int sim__tag_delete(sim *s, int t, int64_t ts, bool deliver);
int sim__tgrp_delete(sim *s, int g, int64_t ts, bool deliver);

static int live_tags(sim *s) {
    int n = 0;
    for (int i = 0; i < s->ntag; i++)
        n += !s->tag[i].deleted;
    return n;
}

static int h_add_corp_tag(cgi *c) {
    sim *s = c->s;
    json_t *tags = json_object_get(c->b, "tag");
    size_t nt = json_array_size(tags);
    const char *gid = jstr(c->b, "group_id"), *gname = jstr(c->b, "group_name");
    if (!nt || (!gid && (!gname || !*gname))) return 40058;
    if (gname && utf8_chars(gname) > 30) return 40058;
    size_t i;
    json_t *v;
    json_array_foreach(tags, i, v) {
        const char *n = jstr(v, "name");
        if (!n || !*n || utf8_chars(n) > 30) return 40058;
    }
    if (live_tags(s) + (int)nt > 3000) return 40126;
    int g = -1;
    if (gid && *gid) {
        g = sim_tgrp_find(s, gid);
        if (g < 0 || s->tgrp[g].deleted) return 40068;
    } else {
        for (int k = 0; k < s->ntgrp && g < 0; k++)
            if (!s->tgrp[k].deleted && !strcmp(s->tgrp[k].name, gname)) g = k;
    }
    int64_t ts = c->now;
    if (g < 0) {
        g = sim_tgrp_add(s, gname, ts, true);
        s->tgrp[g].order = (uint32_t)jint(c->b, "order", 0);
    }
    bool *made = calloc((size_t)s->ntag + nt + 1, sizeof *made);
    if (!made) abort();
    json_array_foreach(tags, i, v) {
        const char *n = jstr(v, "name");
        int found = -1;
        for (int k = 0; k < s->ntag && found < 0; k++)
            if (s->tag[k].group == g && !s->tag[k].deleted && !strcmp(s->tag[k].name, n)) found = k;
        if (found >= 0) { /* duplicate names are created once */
            made[found] = true;
            continue;
        }
        int t = sim_tag_add(s, g, n, ts, true);
        s->tag[t].order = (uint32_t)jint(v, "order", 0);
        made[t] = true;
    }
    json_object_set_new(c->out, "tag_group", tgrp_json(s, g, made));
    free(made);
    return 0;
}

static int h_edit_corp_tag(cgi *c) {
    sim *s = c->s;
    const char *id = jstr(c->b, "id"), *name = jstr(c->b, "name");
    if (!id) return 40058;
    if (name && (!*name || utf8_chars(name) > 30)) return 40058;
    int t = sim_tag_find(s, id), g = t < 0 ? sim_tgrp_find(s, id) : -1;
    if ((t < 0 || s->tag[t].deleted) && (g < 0 || s->tgrp[g].deleted)) return 40068;
    char *dst = t >= 0 ? s->tag[t].name : s->tgrp[g].name;
    if (name) snprintf(dst, SIM_NAME_MAX, "%s", name);
    if (json_object_get(c->b, "order")) {
        uint32_t o = (uint32_t)jint(c->b, "order", 0);
        if (t >= 0)
            s->tag[t].order = o;
        else
            s->tgrp[g].order = o;
    }
    sim_cb cb = {.kind = CB_TAG_UPDATE,
                 .grp = t >= 0 ? t : g,
                 .tag_is_group = t < 0,
                 .welcome = -1,
                 .ts = c->now};
    sim_emit(s, &cb, true);
    return 0;
}

static int h_del_corp_tag(cgi *c) {
    sim *s = c->s;
    json_t *tids = json_object_get(c->b, "tag_id"), *gids = json_object_get(c->b, "group_id");
    if (!json_array_size(tids) && !json_array_size(gids)) return 40058;
    size_t i;
    json_t *v;
    json_array_foreach(tids, i, v) {
        int t = sim_tag_find(s, json_string_value(v));
        if (t < 0 || s->tag[t].deleted) return 40068;
    }
    json_array_foreach(gids, i, v) {
        int g = sim_tgrp_find(s, json_string_value(v));
        if (g < 0 || s->tgrp[g].deleted) return 40068;
    }
    json_array_foreach(tids, i, v)
        sim__tag_delete(s, sim_tag_find(s, json_string_value(v)), c->now, true);
    json_array_foreach(gids, i, v)
        sim__tgrp_delete(s, sim_tgrp_find(s, json_string_value(v)), c->now, true);
    return 0;
}

static int h_mark_tag(cgi *c) {
    sim *s = c->s;
    json_t *add = json_object_get(c->b, "add_tag"), *rem = json_object_get(c->b, "remove_tag");
    if (!json_array_size(add) && !json_array_size(rem)) return 40058;
    int ci;
    sim_follow *f;
    int rc = follow_named(c, &ci, &f);
    if (rc) return rc;
    size_t i;
    json_t *v;
    for (int pass = 0; pass < 2; pass++)
        json_array_foreach(pass ? rem : add, i, v) {
            int t = sim_tag_find(s, json_string_value(v));
            if (t < 0 || s->tag[t].deleted) return 40068;
        }
    json_array_foreach(add, i, v) {
        int t = sim_tag_find(s, json_string_value(v));
        bool have = false;
        for (int j = 0; j < f->ntags; j++)
            have |= f->tags[j] == t;
        if (have) continue;
        SIM_PUSH(f->tags, f->ntags, f->tags_cap);
        f->tags[f->ntags++] = t;
    }
    json_array_foreach(rem, i, v) {
        int t = sim_tag_find(s, json_string_value(v));
        for (int j = 0; j < f->ntags; j++)
            if (f->tags[j] == t) f->tags[j--] = f->tags[--f->ntags];
    }
    sim_cb cb = {.kind = CB_EDIT, .cust = ci, .emp = f->emp, .welcome = -1, .ts = c->now};
    sim_emit(s, &cb, true);
    return 0;
}

/* ---- contact ways ------------------------------------------------------------ */

/* Validates and applies the fields of a contact way body to w. */
static int way_fields(cgi *c, sim_way *w, bool create) {
    sim *s = c->s;
    json_t *b = c->b;
    if (create || json_object_get(b, "type")) {
        long long t = jint(b, "type", 0);
        if (t != 1 && t != 2) return 40058;
        w->type = (int)t;
    }
    if (create || json_object_get(b, "scene")) {
        long long sc = jint(b, "scene", 0);
        if (sc != 1 && sc != 2) return 40058;
        w->scene = (int)sc;
    }
    const char *state = jstr(b, "state"), *remark = jstr(b, "remark");
    if (state && (utf8_chars(state) > 30 || strlen(state) >= SIM_STATE_MAX)) return 40058;
    if (remark && (utf8_chars(remark) > 30 || strlen(remark) >= SIM_NAME_MAX)) return 40058;
    json_t *users = json_object_get(b, "user"), *parties = json_object_get(b, "party");
    if (create && !json_array_size(users) && !json_array_size(parties)) return 40058;
    if (json_array_size(users) > 100) return 40058;
    if (users && w->type == 1 && json_array_size(users) != 1) return 40058;
    int *u = NULL, nu = (int)json_array_size(users);
    if (users) {
        u = sim_xrealloc(NULL, (size_t)(nu ? nu : 1) * sizeof *u);
        for (int i = 0; i < nu; i++)
            if ((u[i] = sim_emp_find(s, json_string_value(json_array_get(users, (size_t)i)))) < 0) {
                free(u);
                return 40003;
            }
        free(w->users);
        w->users = u;
        w->nusers = nu;
    }
    if (parties) {
        int np = (int)json_array_size(parties);
        free(w->parties);
        w->parties = sim_xrealloc(NULL, (size_t)(np ? np : 1) * sizeof *w->parties);
        for (int i = 0; i < np; i++)
            w->parties[i] = (int)json_integer_value(json_array_get(parties, (size_t)i));
        w->nparties = np;
    }
    if (state) snprintf(w->state, sizeof w->state, "%s", state);
    if (remark) snprintf(w->remark, sizeof w->remark, "%s", remark);
    if (json_object_get(b, "style")) w->style = (int)jint(b, "style", 0);
    if (json_object_get(b, "skip_verify"))
        w->skip_verify = json_is_true(json_object_get(b, "skip_verify"));
    if (json_object_get(b, "is_temp")) w->is_temp = json_is_true(json_object_get(b, "is_temp"));
    return 0;
}

static void qr_url(const sim_way *w, char *out, size_t cap) {
    snprintf(out, cap, "https://wework.qpic.cn/wwpic/sim/%s/0", w->config_id);
}

static int h_add_contact_way(cgi *c) {
    sim *s = c->s;
    sim_way w = {.skip_verify = true, .style = 1};
    int rc = way_fields(c, &w, true);
    if (rc) {
        free(w.users);
        free(w.parties);
        return rc;
    }
    SIM_PUSH(s->way, s->nway, s->way_cap);
    int i = s->nway++;
    w.create_time = c->now;
    sim_id_make(s, ID_WAY, (uint32_t)i, w.config_id);
    s->way[i] = w;
    json_object_set_new(c->out, "config_id", json_string(w.config_id));
    if (w.scene == 2) {
        char q[160];
        qr_url(&w, q, sizeof q);
        json_object_set_new(c->out, "qr_code", json_string(q));
    }
    return 0;
}

static int way_named(cgi *c) {
    const char *id = jstr(c->b, "config_id");
    if (!id || !*id) return -40058;
    int i = sim_way_find(c->s, id);
    return i < 0 || c->s->way[i].deleted ? -41044 : i;
}

static int h_get_contact_way(cgi *c) {
    sim *s = c->s;
    int i = way_named(c);
    if (i < 0) return -i;
    sim_way *w = &s->way[i];
    json_t *users = json_array(), *parties = json_array();
    for (int k = 0; k < w->nusers; k++)
        json_array_append_new(users, json_string(s->emp[w->users[k]].userid));
    for (int k = 0; k < w->nparties; k++)
        json_array_append_new(parties, json_integer(w->parties[k]));
    json_t *o = json_pack("{s:s,s:i,s:i,s:i,s:s,s:b,s:s,s:o,s:o,s:b}", "config_id", w->config_id,
                          "type", w->type, "scene", w->scene, "style", w->style, "remark",
                          w->remark, "skip_verify", w->skip_verify, "state", w->state, "user",
                          users, "party", parties, "is_temp", w->is_temp);
    if (w->scene == 2) {
        char q[160];
        qr_url(w, q, sizeof q);
        json_object_set_new(o, "qr_code", json_string(q));
    }
    json_object_set_new(c->out, "contact_way", o);
    return 0;
}

typedef struct time_range {
    long long start, end;
} time_range;

static json_t *contact_way_row(cgi *c, uint32_t i, void *ctx) {
    const time_range *t = ctx;
    sim_way *w = &c->s->way[i];
    if (w->deleted || w->is_temp || w->create_time < t->start || w->create_time > t->end)
        return NULL;
    return json_pack("{s:s}", "config_id", w->config_id);
}

static int h_list_contact_way(cgi *c) {
    time_range t = {jint(c->b, "start_time", c->now - 90LL * DAY), jint(c->b, "end_time", c->now)};
    long long limit = jint(c->b, "limit", 100);
    if (limit < 1 || limit > 1000 || t.end < t.start) return 40058;
    return page_answer(c, "contact_way", (uint32_t)c->s->nway, limit, contact_way_row, &t);
}

static int h_update_contact_way(cgi *c) {
    int i = way_named(c);
    if (i < 0) return -i;
    sim_way tmp = c->s->way[i];
    tmp.users = NULL;
    tmp.parties = NULL;
    /* validate on a copy so a failure changes nothing */
    int rc = way_fields(c, &tmp, false);
    if (rc) {
        free(tmp.users);
        free(tmp.parties);
        return rc;
    }
    sim_way *w = &c->s->way[i];
    if (tmp.users) {
        free(w->users);
    } else {
        tmp.users = w->users;
        tmp.nusers = w->nusers;
    }
    if (tmp.parties) {
        free(w->parties);
    } else {
        tmp.parties = w->parties;
        tmp.nparties = w->nparties;
    }
    *w = tmp;
    return 0;
}

static int h_del_contact_way(cgi *c) {
    int i = way_named(c);
    if (i < 0) return -i;
    c->s->way[i].deleted = true;
    return 0;
}

/* ---- welcome ------------------------------------------------------------------ */

static int h_send_welcome_msg(cgi *c) {
    sim *s = c->s;
    const char *code = jstr(c->b, "welcome_code");
    if (!code || !*code) return 41049;
    int i = sim_id_index(s, ID_WELCOME, code);
    if (i < 0 || i >= s->nwel) return 41050;
    sim_welcome *w = &s->wel[i];
    const char *text = jstr(json_object_get(c->b, "text"), "content");
    json_t *att = json_object_get(c->b, "attachments");
    int rc = 0;
    if (w->used)
        rc = 41051;
    else if (c->now - w->issued > s->o.welcome_ttl)
        rc = 41050;
    else if (json_array_size(att) > 9)
        rc = 41064;
    else if ((text && strlen(text) > 4000) || ((!text || !*text) && !json_array_size(att)))
        rc = 40058;
    if (rc == 0) w->used = true;
    SIM_PUSH(s->wlog, s->nwlog, s->wlog_cap);
    s->wlog[s->nwlog++] = (sim_welcome_log){.welcome = i,
                                            .text = sim_xstrdup(text ? text : ""),
                                            .at = c->now,
                                            .at_ms = sim_wall_ms(),
                                            .attachments = (int)json_array_size(att),
                                            .errcode = rc};
    return rc;
}

/* ---- mass messages --------------------------------------------------------------- */

static int last_follow(sim_customer *cu, int only_emp) {
    int best = -1;
    for (int j = 0; j < cu->nf; j++) {
        if (!cu->f[j].active || (only_emp >= 0 && cu->f[j].emp != only_emp)) continue;
        if (best < 0 || cu->f[j].createtime >= cu->f[best].createtime) best = j;
    }
    return best;
}

static int h_add_msg_template(cgi *c) {
    sim *s = c->s;
    const char *type = jstr(c->b, "chat_type");
    if (type && strcmp(type, "single") != 0) return 40058; /* group sends: not simulated */
    json_t *ext = json_object_get(c->b, "external_userid");
    const char *sender = jstr(c->b, "sender");
    const char *text = jstr(json_object_get(c->b, "text"), "content");
    json_t *att = json_object_get(c->b, "attachments");
    if (json_array_size(ext) > 10000) return 40058;
    if (json_array_size(att) > 9) return 41064;
    if (text && strlen(text) > 4000) return 40058;
    if ((!text || !*text) && !json_array_size(att)) return 40058;
    int se = -1;
    if (sender && (se = sim_emp_find(s, sender)) < 0) return 40003;
    if (!json_array_size(ext) && se < 0) return 40058;
    sim_recipient *r = NULL;
    int nr = 0, rcap = 0;
    json_t *fail = json_array();
    if (json_array_size(ext)) {
        size_t i;
        json_t *v;
        json_array_foreach(ext, i, v) {
            int ci = sim_cust_find(s, json_string_value(v));
            if (ci < 0) {
                json_array_append(fail, v);
                continue;
            }
            int fi = last_follow(&s->cust[ci], se);
            SIM_PUSH(r, nr, rcap);
            if (fi < 0) {
                json_array_append(fail, v);
                int e = se;
                if (e < 0 && s->cust[ci].nf) e = s->cust[ci].f[s->cust[ci].nf - 1].emp;
                if (e < 0) continue;
                r[nr++] = (sim_recipient){.cust = ci, .emp = e, .status = 2};
            } else {
                r[nr++] = (sim_recipient){.cust = ci, .emp = s->cust[ci].f[fi].emp};
            }
        }
    } else {
        sim_employee *em = &s->emp[se];
        for (int i = 0; i < em->ncusts; i++) {
            sim_follow *f = sim_follow_of(&s->cust[em->custs[i]], se);
            if (!f || !f->active) continue;
            SIM_PUSH(r, nr, rcap);
            r[nr++] = (sim_recipient){.cust = em->custs[i], .emp = se};
        }
    }
    if (nr == 0 && json_array_size(fail) == 0) {
        json_decref(fail);
        free(r);
        return 41048;
    }
    SIM_PUSH(s->msg, s->nmsg, s->msg_cap);
    int m = s->nmsg++;
    sim_msg *mg = &s->msg[m];
    memset(mg, 0, sizeof *mg);
    sim_id_make(s, ID_MSG, (uint32_t)m, mg->msgid);
    mg->creator = se;
    mg->create_time = c->now;
    mg->text = sim_xstrdup(text ? text : "");
    mg->nattach = (int)json_array_size(att);
    mg->r = r;
    mg->nr = nr;
    json_object_set_new(c->out, "fail_list", fail);
    json_object_set_new(c->out, "msgid", json_string(mg->msgid));
    return 0;
}

static int msg_named(cgi *c) {
    int m = sim_id_index(c->s, ID_MSG, jstr(c->b, "msgid"));
    return m >= 0 && m < c->s->nmsg ? m : -1;
}

typedef struct msg_filter {
    time_range t;
    int creator; /* -1: any */
} msg_filter;

static json_t *groupmsg_row(cgi *c, uint32_t i, void *ctx) {
    const msg_filter *f = ctx;
    sim *s = c->s;
    sim_msg *mg = &s->msg[i];
    if (mg->create_time < f->t.start || mg->create_time > f->t.end ||
        (f->creator >= 0 && mg->creator != f->creator))
        return NULL;
    return json_pack("{s:s,s:s,s:I,s:i,s:{s:s},s:[]}", "msgid", mg->msgid, "creator",
                     mg->creator >= 0 ? s->emp[mg->creator].userid : "", "create_time",
                     (json_int_t)mg->create_time, "create_type", 0, "text", "content", mg->text,
                     "attachments");
}

static int h_groupmsg_list(cgi *c) {
    sim *s = c->s;
    const char *type = jstr(c->b, "chat_type");
    msg_filter f = {{jint(c->b, "start_time", -1), jint(c->b, "end_time", -1)}, -1};
    long long limit = jint(c->b, "limit", 50);
    if (!type || f.t.start < 0 || f.t.end < f.t.start || f.t.end - f.t.start > 31LL * DAY ||
        limit < 1 || limit > 100)
        return 40058;
    const char *creator = jstr(c->b, "creator");
    if (creator && (f.creator = sim_emp_find(s, creator)) < 0) return 40003;
    uint32_t end = strcmp(type, "single") == 0 ? (uint32_t)s->nmsg : 0;
    return page_answer(c, "group_msg_list", end, limit, groupmsg_row, &f);
}

/* One task per member: its first recipient. */
static json_t *groupmsg_task_row(cgi *c, uint32_t i, void *ctx) {
    const sim_msg *mg = ctx;
    for (uint32_t k = 0; k < i; k++)
        if (mg->r[k].emp == mg->r[i].emp) return NULL;
    return json_pack("{s:s,s:i,s:I}", "userid", c->s->emp[mg->r[i].emp].userid, "status", 2,
                     "send_time", (json_int_t)c->now);
}

static int h_groupmsg_task(cgi *c) {
    sim *s = c->s;
    int m = msg_named(c);
    long long limit = jint(c->b, "limit", 500);
    if (m < 0) return 41063;
    if (limit < 1 || limit > 1000) return 40058;
    sim_msg_confirm(s, m, c->now); /* queried after creation: the members have confirmed */
    sim_msg *mg = &s->msg[m];
    return page_answer(c, "task_list", (uint32_t)mg->nr, limit, groupmsg_task_row, mg);
}

typedef struct send_filter {
    const sim_msg *mg;
    int emp;
} send_filter;

static json_t *send_result_row(cgi *c, uint32_t i, void *ctx) {
    const send_filter *f = ctx;
    const sim_recipient *r = &f->mg->r[i];
    if (r->emp != f->emp) return NULL;
    return json_pack("{s:s,s:s,s:i,s:I}", "external_userid", c->s->cust[r->cust].ext, "userid",
                     c->s->emp[f->emp].userid, "status", r->status, "send_time",
                     (json_int_t)r->send_time);
}

static int h_groupmsg_send_result(cgi *c) {
    sim *s = c->s;
    int m = msg_named(c);
    if (m < 0) return 41063;
    int e = sim_emp_find(s, jstr(c->b, "userid"));
    if (e < 0) return 40003;
    long long limit = jint(c->b, "limit", 500);
    if (limit < 1 || limit > 1000) return 40058;
    sim_msg_confirm(s, m, c->now);
    send_filter f = {&s->msg[m], e};
    return page_answer(c, "send_list", (uint32_t)f.mg->nr, limit, send_result_row, &f);
}

/* ---- inheritance ---------------------------------------------------------------- */

static int transfer_common(cgi *c, bool resigned) {
    sim *s = c->s;
    int h = sim_emp_find(s, jstr(c->b, "handover_userid"));
    int t = sim_emp_find(s, jstr(c->b, "takeover_userid"));
    json_t *ext = json_object_get(c->b, "external_userid");
    size_t n = json_array_size(ext);
    if (!n || n > 100) return 40058;
    if (!resigned) {
        const char *msg = jstr(c->b, "transfer_success_msg");
        if (msg && utf8_chars(msg) > 200) return 40058;
    }
    if (h < 0 || t < 0 || s->emp[t].resigned) return 40003;
    if (h == t) return 40130;
    if (resigned != s->emp[h].resigned) return resigned ? 40097 : 40003;
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(ext, i, v) {
        int ci = sim_cust_find(s, json_string_value(v));
        int rc = 0;
        if (ci < 0) {
            rc = 40096;
        } else {
            sim_follow *f = sim_follow_of(&s->cust[ci], h);
            int recent = 0;
            bool pending = false;
            for (int k = 0; k < s->nxfer; k++) {
                sim_transfer *x = &s->xfer[k];
                if (x->cust != ci) continue;
                if (x->status == 2) pending = true;
                if (!x->resigned && x->start > c->now - 90LL * DAY) recent++;
            }
            if (!f || !f->active)
                rc = 40131;
            else if (pending)
                rc = 40100;
            else if (!resigned && recent >= 2)
                rc = 40128;
            else
                sim_transfer_start(s, ci, h, t, resigned, c->now);
        }
        json_array_append_new(out, json_pack("{s:O,s:i}", "external_userid", v, "errcode", rc));
    }
    json_object_set_new(c->out, "customer", out);
    return 0;
}

static int h_transfer_customer(cgi *c) {
    return transfer_common(c, false);
}

static int h_resigned_transfer_customer(cgi *c) {
    return transfer_common(c, true);
}

typedef struct xfer_filter {
    int handover, takeover;
    bool resigned;
} xfer_filter;

static json_t *transfer_result_row(cgi *c, uint32_t i, void *ctx) {
    const xfer_filter *f = ctx;
    const sim_transfer *x = &c->s->xfer[i];
    if (x->handover != f->handover || x->takeover != f->takeover || x->resigned != f->resigned)
        return NULL;
    return json_pack("{s:s,s:i,s:I}", "external_userid", c->s->cust[x->cust].ext, "status",
                     x->status, "takeover_time", (json_int_t)x->takeover_time);
}

static int result_common(cgi *c, bool resigned) {
    sim *s = c->s;
    int h = sim_emp_find(s, jstr(c->b, "handover_userid"));
    int t = sim_emp_find(s, jstr(c->b, "takeover_userid"));
    if (h < 0 || t < 0) return 40003;
    xfer_filter f = {h, t, resigned};
    return page_answer(c, "customer", (uint32_t)s->nxfer, 1000, transfer_result_row, &f);
}

static int h_transfer_result(cgi *c) {
    return result_common(c, false);
}

static int h_resigned_transfer_result(cgi *c) {
    return result_common(c, true);
}

static int h_unassigned(cgi *c) {
    sim *s = c->s;
    long long size = jint(c->b, "page_size", 1000), page = jint(c->b, "page_id", 0);
    if (size < 1 || size > 1000 || page < 0 || page * size >= 50000) return 40058;
    uint32_t ei, pos;
    if (cursor_parse(c, jstr(c->b, "cursor"), &ei, &pos) != 0) return 40058;
    long long skip = jstr(c->b, "cursor") && *jstr(c->b, "cursor") ? 0 : page * size;
    json_t *a = json_array();
    long long n = 0;
    char next[24] = "";
    for (; ei < (uint32_t)s->nemp; ei++, pos = 0) {
        sim_employee *em = &s->emp[ei];
        if (!em->resigned) continue;
        for (; pos < (uint32_t)em->ncusts; pos++) {
            int ci = em->custs[pos];
            sim_follow *f = sim_follow_of(&s->cust[ci], (int)ei);
            if (!f || !f->active) continue;
            bool pending = false;
            for (int k = 0; k < s->nxfer && !pending; k++)
                pending = s->xfer[k].cust == ci && s->xfer[k].status == 2;
            if (pending) continue;
            if (skip > 0) {
                skip--;
                continue;
            }
            if (n == size) {
                cursor_make(c, ei, pos, next);
                goto done;
            }
            json_array_append_new(a, json_pack("{s:s,s:s,s:I}", "handover_userid", em->userid,
                                               "external_userid", s->cust[ci].ext, "dimission_time",
                                               (json_int_t)em->resign_time));
            n++;
        }
    }
done:
    json_object_set_new(c->out, "info", a);
    json_object_set_new(c->out, "is_last", json_boolean(!next[0]));
    json_object_set_new(c->out, "next_cursor", json_string(next));
    return 0;
}

/* ---- groups ------------------------------------------------------------------ */

/* Owner filter of a groupchat list/statistic body into a bitmap over
 * employees (NULL = none). 0, 40058, 40003 or 81017. */
static int owner_filter(cgi *c, bool **want) {
    sim *s = c->s;
    *want = NULL;
    json_t *ul = json_object_get(json_object_get(c->b, "owner_filter"), "userid_list");
    if (!json_array_size(ul)) return s->nemp > 1000 ? 81017 : 0;
    if (json_array_size(ul) > 100) return 40058;
    *want = calloc((size_t)s->nemp, sizeof **want);
    if (!*want) abort();
    size_t i;
    json_t *v;
    json_array_foreach(ul, i, v) {
        int e = sim_emp_find(s, json_string_value(v));
        if (e < 0) {
            free(*want);
            *want = NULL;
            return 40003;
        }
        (*want)[e] = true;
    }
    return 0;
}

typedef struct group_filter {
    const bool *owners; /* NULL: any owner */
    int status;         /* 0: any */
} group_filter;

static json_t *groupchat_row(cgi *c, uint32_t i, void *ctx) {
    const group_filter *f = ctx;
    const sim_group *g = &c->s->grp[i];
    if (g->dismissed || (f->owners && !f->owners[g->owner]) ||
        (f->status && g->status != f->status))
        return NULL;
    return json_pack("{s:s,s:i}", "chat_id", g->chat_id, "status", g->status);
}

static int h_groupchat_list(cgi *c) {
    sim *s = c->s;
    long long limit = jint(c->b, "limit", -1), status = jint(c->b, "status_filter", 0);
    if (limit < 1 || limit > 1000 || status < 0 || status > 3) return 40058;
    bool *want;
    int rc = owner_filter(c, &want);
    if (rc) return rc;
    group_filter f = {want, (int)status};
    rc = page_answer(c, "group_chat_list", (uint32_t)s->ngrp, limit, groupchat_row, &f);
    free(want);
    return rc;
}

static int h_groupchat_get(cgi *c) {
    sim *s = c->s;
    int g = sim_grp_find(s, jstr(c->b, "chat_id"));
    if (g < 0 || s->grp[g].dismissed) return 90501;
    bool need_name = jint(c->b, "need_name", 0) == 1;
    sim_group *gr = &s->grp[g];
    json_t *ml = json_array();
    for (int i = 0; i < gr->nm; i++) {
        sim_member *m = &gr->m[i];
        if (m->left_time) continue;
        json_t *o = json_pack("{s:s,s:i,s:I,s:i,s:s}", "userid",
                              m->is_emp ? s->emp[m->idx].userid : s->cust[m->idx].ext, "type",
                              m->is_emp ? 1 : 2, "join_time", (json_int_t)m->join_time,
                              "join_scene", m->join_scene, "group_nickname", "");
        if (m->invitor >= 0)
            json_object_set_new(o, "invitor",
                                json_pack("{s:s}", "userid", s->emp[m->invitor].userid));
        if (need_name)
            json_object_set_new(
                o, "name", json_string(m->is_emp ? s->emp[m->idx].name : s->cust[m->idx].name));
        json_array_append_new(ml, o);
    }
    char ver[33];
    sim_member_version(s, g, gr->version, ver);
    json_object_set_new(c->out, "group_chat",
                        json_pack("{s:s,s:s,s:s,s:I,s:s,s:o,s:[],s:s}", "chat_id", gr->chat_id,
                                  "name", gr->name, "owner", s->emp[gr->owner].userid,
                                  "create_time", (json_int_t)gr->create_time, "notice", gr->notice,
                                  "member_list", ml, "admin_list", "member_version", ver));
    return 0;
}

static int group_transfer(cgi *c, bool onjob) {
    sim *s = c->s;
    json_t *ids = json_object_get(c->b, "chat_id_list");
    size_t n = json_array_size(ids);
    if (!n || n > 100) return 40058;
    int ne = sim_emp_find(s, jstr(c->b, "new_owner"));
    if (ne < 0 || s->emp[ne].resigned) return 40003;
    json_t *failed = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        int g = sim_grp_find(s, json_string_value(v));
        int rc = 0;
        sim_group *gr = g >= 0 ? &s->grp[g] : NULL;
        if (!gr || gr->dismissed)
            rc = 90501;
        else if (!onjob && !s->emp[gr->owner].resigned)
            rc = 90500;
        else if (onjob && s->emp[gr->owner].resigned)
            rc = 90500;
        else if (onjob && gr->transfers[1] && gr->transfers[1] > c->now - 90LL * DAY)
            rc = 90507;
        if (rc) {
            json_array_append_new(failed, json_pack("{s:O,s:i,s:s}", "chat_id", v, "errcode", rc,
                                                    "errmsg", errmsg_of(rc)));
            continue;
        }
        if (onjob) {
            gr->transfers[1] = gr->transfers[0];
            gr->transfers[0] = c->now;
        }
        bool member = false;
        for (int k = 0; k < gr->nm; k++)
            member |= gr->m[k].is_emp && gr->m[k].idx == ne && !gr->m[k].left_time;
        if (!member) {
            SIM_PUSH(gr->m, gr->nm, gr->m_cap);
            gr->m[gr->nm++] = (sim_member){
                .idx = ne, .is_emp = true, .join_scene = 1, .invitor = -1, .join_time = c->now};
            gr->version++;
            s->members++;
            sim_cb cb = {.kind = CB_CHAT_ADD_MEMBER,
                         .grp = g,
                         .member = ne,
                         .member_emp = true,
                         .last_ver = gr->version - 1,
                         .cur_ver = gr->version,
                         .welcome = -1,
                         .ts = c->now};
            sim_emit(s, &cb, true);
        }
        gr->owner = ne;
        gr->status = onjob ? 0 : 3;
        sim_cb cb = {.kind = CB_CHAT_OWNER,
                     .grp = g,
                     .last_ver = gr->version,
                     .cur_ver = gr->version,
                     .welcome = -1,
                     .ts = c->now};
        sim_emit(s, &cb, true);
    }
    json_object_set_new(c->out, "failed_chat_list", failed);
    return 0;
}

static int h_groupchat_transfer(cgi *c) {
    return group_transfer(c, false);
}

static int h_groupchat_onjob_transfer(cgi *c) {
    return group_transfer(c, true);
}

/* ---- group join ways (加入群聊) ------------------------------------------------------ */

/* Fills w's chats from the body: chat_id_list (1..5 live chats; 41091 over
 * five), scene 1|2, state ≤ 30 characters. */
static int join_way_fields(cgi *c, sim_join_way *w) {
    sim *s = c->s;
    long long scene = jint(c->b, "scene", 0);
    const char *state = jstr(c->b, "state");
    json_t *ids = json_object_get(c->b, "chat_id_list");
    size_t n = json_array_size(ids);
    if (scene != 1 && scene != 2) return 40058;
    if (!n) return 40058;
    if (n > SIM_JOIN_WAY_CHATS) return 41091;
    if (state && (utf8_chars(state) > 30 || strlen(state) >= sizeof w->state)) return 40058;
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        int g = sim_grp_find(s, json_string_value(v));
        if (g < 0 || s->grp[g].dismissed) return 90501;
        w->chats[i] = g;
    }
    w->nchats = (int)n;
    snprintf(w->state, sizeof w->state, "%s", state ? state : "");
    return 0;
}

static int join_way_find(cgi *c) {
    const char *id = jstr(c->b, "config_id");
    for (int i = 0; id && i < c->s->njw; i++)
        if (!c->s->jw[i].deleted && !strcmp(c->s->jw[i].config_id, id)) return i;
    return -1;
}

static int h_add_join_way(cgi *c) {
    sim *s = c->s;
    sim_join_way w = {0};
    int rc = join_way_fields(c, &w);
    if (rc) return rc;
    SIM_PUSH(s->jw, s->njw, s->jw_cap);
    int i = s->njw++;
    snprintf(w.config_id, sizeof w.config_id, "jw%08x%04x", (unsigned)(c->now & 0xffffffff),
             (unsigned)i);
    s->jw[i] = w;
    json_object_set_new(c->out, "config_id", json_string(w.config_id));
    return 0;
}

static int h_get_join_way(cgi *c) {
    sim *s = c->s;
    int i = join_way_find(c);
    if (i < 0) return 41044;
    sim_join_way *w = &s->jw[i];
    json_t *ids = json_array();
    for (int k = 0; k < w->nchats; k++)
        json_array_append_new(ids, json_string(s->grp[w->chats[k]].chat_id));
    json_object_set_new(c->out, "join_way",
                        json_pack("{s:s,s:i,s:o,s:s,s:i}", "config_id", w->config_id, "scene", 2,
                                  "chat_id_list", ids, "state", w->state, "updates", w->updates));
    return 0;
}

static int h_update_join_way(cgi *c) {
    int i = join_way_find(c);
    if (i < 0) return 41044;
    sim_join_way w = c->s->jw[i];
    int rc = join_way_fields(c, &w);
    if (rc) return rc;
    w.updates++;
    c->s->jw[i] = w;
    return 0;
}

static int h_del_join_way(cgi *c) {
    int i = join_way_find(c);
    if (i < 0) return 41044;
    c->s->jw[i].deleted = true;
    return 0;
}

/* ---- statistics ------------------------------------------------------------------- */

/* Day range [*d0, *d1] (day starts) from two times; 30-day span, 180 days back. */
static int day_range(cgi *c, long long start, long long end, int64_t *d0, int64_t *d1) {
    if (start < 0) return 40058;
    if (end < 0) end = start;
    *d0 = day_floor(start);
    *d1 = day_floor(end);
    if (*d1 < *d0 || *d1 - *d0 > 29LL * DAY) return 40058;
    if (*d0 < day_floor(c->now) - 180LL * DAY) return 40058;
    return 0;
}

static int h_user_behavior(cgi *c) {
    sim *s = c->s;
    json_t *users = json_object_get(c->b, "userid"), *parties = json_object_get(c->b, "partyid");
    if ((!json_array_size(users) && !json_array_size(parties)) || json_array_size(users) > 100 ||
        json_array_size(parties) > 100)
        return 40058;
    int64_t d0, d1;
    int rc = day_range(c, jint(c->b, "start_time", -1), jint(c->b, "end_time", -1), &d0, &d1);
    if (rc) return rc;
    bool *want = calloc((size_t)s->nemp, sizeof *want);
    if (!want) abort();
    size_t i;
    json_t *v;
    json_array_foreach(users, i, v) {
        int e = sim_emp_find(s, json_string_value(v));
        if (e < 0) {
            free(want);
            return 40003;
        }
        want[e] = true;
    }
    json_array_foreach(parties, i, v) {
        long long d = json_integer_value(v);
        for (int e = 0; e < s->nemp; e++)
            if (s->emp[e].dept + 1 == d) want[e] = true;
    }
    json_t *out = json_array();
    for (int64_t d = d0; d <= d1; d += DAY) {
        sim_day_stat sum = {0};
        for (int e = 0; e < s->nemp; e++) {
            sim_day_stat *st = want[e] ? sim_stat(s, e, d + DAY / 2) : NULL;
            if (!st) continue;
            sum.new_apply += st->new_apply;
            sum.new_contact += st->new_contact;
            sum.chat += st->chat;
            sum.message += st->message;
            sum.negative += st->negative;
            sum.replied += st->replied;
            sum.reply_minutes += st->reply_minutes;
        }
        json_t *o =
            json_pack("{s:I,s:i,s:i,s:i,s:i,s:i}", "stat_time", (json_int_t)d, "new_apply_cnt",
                      sum.new_apply, "new_contact_cnt", sum.new_contact, "chat_cnt", sum.chat,
                      "message_cnt", sum.message, "negative_feedback_cnt", sum.negative);
        if (sum.chat) {
            json_object_set_new(o, "reply_percentage",
                                json_real(round(1000.0 * sum.replied / sum.chat) / 10.0));
            json_object_set_new(o, "avg_reply_time",
                                json_integer(sum.replied ? sum.reply_minutes / sum.replied : 0));
        }
        json_array_append_new(out, o);
    }
    free(want);
    json_object_set_new(c->out, "behavior_data", out);
    return 0;
}

typedef struct owner_stat {
    int owner;
    long long v[7]; /* new_chat, chat_total, chat_has_msg, new_member, member_total,
                       member_has_msg, msg_total */
} owner_stat;

/* arg: int[2] = {order_by 1..4, ascending} */
static int cmp_owner_stat(const void *x, const void *y, void *arg) {
    const owner_stat *a = x, *b = y;
    const int *ord = arg;
    static const int idx[] = {0, 0, 1, 3, 4};
    long long va = a->v[idx[ord[0]]], vb = b->v[idx[ord[0]]];
    int r = (va > vb) - (va < vb);
    if (!ord[1]) r = -r;
    return r ? r : a->owner - b->owner;
}

static int h_groupchat_statistic(cgi *c) {
    sim *s = c->s;
    int64_t d0, d1;
    int rc =
        day_range(c, jint(c->b, "day_begin_time", -1), jint(c->b, "day_end_time", -1), &d0, &d1);
    if (rc) return rc;
    long long ob = jint(c->b, "order_by", 1), off = jint(c->b, "offset", 0);
    long long limit = jint(c->b, "limit", 500);
    if (ob < 1 || ob > 4 || off < 0 || limit < 1 || limit > 1000) return 40058;
    bool *want;
    if ((rc = owner_filter(c, &want)) != 0) return rc;
    owner_stat *st = calloc((size_t)s->nemp, sizeof *st);
    if (!st) abort();
    int64_t end = d1 + DAY;
    for (int e = 0; e < s->nemp; e++)
        st[e].owner = e;
    for (int g = 0; g < s->ngrp; g++) {
        sim_group *gr = &s->grp[g];
        if (want && !want[gr->owner]) continue;
        long long *v = st[gr->owner].v;
        bool alive = gr->create_time < end && (!gr->dismissed || gr->dismiss_time >= end);
        if (gr->create_time >= d0 && gr->create_time < end) v[0]++;
        if (!alive) continue;
        v[1]++;
        int members = 0;
        for (int k = 0; k < gr->nm; k++) {
            sim_member *m = &gr->m[k];
            if (m->join_time >= d0 && m->join_time < end) v[3]++;
            if (m->join_time < end && (!m->left_time || m->left_time >= end)) members++;
        }
        v[4] += members;
        uint64_t h = sim_mix64(s->o.seed ^ (uint64_t)g * 131 ^ (uint64_t)d0);
        int days = (int)((end - d0) / DAY);
        long long msgs = (long long)(h % (uint64_t)(members * days + 1));
        if (msgs) {
            v[2]++;
            v[5] += 1 + (long long)(h >> 40) % (members > 1 ? members / 2 + 1 : 1);
            v[6] += msgs;
        }
    }
    int n = 0;
    for (int e = 0; e < s->nemp; e++)
        if (want ? want[e] : st[e].v[1] > 0) st[n++] = st[e];
    int ord[2] = {(int)ob, jint(c->b, "order_asc", 0) == 1};
    qsort_r(st, (size_t)n, sizeof *st, cmp_owner_stat, ord);
    json_t *items = json_array();
    long long i = off;
    for (; i < n && i < off + limit; i++) {
        long long *v = st[i].v;
        json_array_append_new(items,
                              json_pack("{s:s,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i}}", "owner",
                                        s->emp[st[i].owner].userid, "data", "new_chat_cnt", v[0],
                                        "chat_total", v[1], "chat_has_msg", v[2], "new_member_cnt",
                                        v[3], "member_total", v[4], "member_has_msg", v[5],
                                        "msg_total", v[6], "migrate_trainee_chat_cnt", 0));
    }
    free(st);
    free(want);
    json_object_set_new(c->out, "total", json_integer(n));
    json_object_set_new(c->out, "next_offset", json_integer(i < n ? i : n));
    json_object_set_new(c->out, "items", items);
    return 0;
}

/* ---- routing ---------------------------------------------------------------------- */

static const struct route {
    const char *path;
    bool post;
    int (*fn)(cgi *c);
} routes[] = {
    {"gettoken", false, h_gettoken},
    {"externalcontact/get_follow_user_list", false, h_follow_user_list},
    {"externalcontact/list", false, h_list},
    {"externalcontact/get", false, h_get},
    {"externalcontact/batch/get_by_user", true, h_batch_get_by_user},
    {"externalcontact/remark", true, h_remark},
    {"externalcontact/get_corp_tag_list", true, h_get_corp_tag_list},
    {"externalcontact/add_corp_tag", true, h_add_corp_tag},
    {"externalcontact/edit_corp_tag", true, h_edit_corp_tag},
    {"externalcontact/del_corp_tag", true, h_del_corp_tag},
    {"externalcontact/mark_tag", true, h_mark_tag},
    {"externalcontact/add_contact_way", true, h_add_contact_way},
    {"externalcontact/get_contact_way", true, h_get_contact_way},
    {"externalcontact/list_contact_way", true, h_list_contact_way},
    {"externalcontact/update_contact_way", true, h_update_contact_way},
    {"externalcontact/del_contact_way", true, h_del_contact_way},
    {"externalcontact/send_welcome_msg", true, h_send_welcome_msg},
    {"externalcontact/add_msg_template", true, h_add_msg_template},
    {"externalcontact/get_groupmsg_list_v2", true, h_groupmsg_list},
    {"externalcontact/get_groupmsg_task", true, h_groupmsg_task},
    {"externalcontact/get_groupmsg_send_result", true, h_groupmsg_send_result},
    {"externalcontact/transfer_customer", true, h_transfer_customer},
    {"externalcontact/transfer_result", true, h_transfer_result},
    {"externalcontact/get_unassigned_list", true, h_unassigned},
    {"externalcontact/resigned/transfer_customer", true, h_resigned_transfer_customer},
    {"externalcontact/resigned/transfer_result", true, h_resigned_transfer_result},
    {"externalcontact/groupchat/list", true, h_groupchat_list},
    {"externalcontact/groupchat/get", true, h_groupchat_get},
    {"externalcontact/groupchat/transfer", true, h_groupchat_transfer},
    {"externalcontact/groupchat/onjob_transfer", true, h_groupchat_onjob_transfer},
    {"externalcontact/get_user_behavior_data", true, h_user_behavior},
    {"externalcontact/groupchat/statistic", true, h_groupchat_statistic},
    {"externalcontact/groupchat/add_join_way", true, h_add_join_way},
    {"externalcontact/groupchat/get_join_way", true, h_get_join_way},
    {"externalcontact/groupchat/update_join_way", true, h_update_join_way},
    {"externalcontact/groupchat/del_join_way", true, h_del_join_way},
};

/* Takes the next injected fault for path, if any; a "same" cursor fault
 * only for a request with a cursor (req: its JSON body). Caller holds mu. */
static bool fault_take(sim *s, const char *path, const json_t *req, sim_fault *out) {
    const char *cur = json_string_value(json_object_get(req, "cursor"));
    for (int i = 0; i < s->nfaults; i++) {
        sim_fault *f = &s->faults[i];
        if (f->count <= 0 || strcmp(f->path, path) != 0) continue;
        if (!strcmp(f->cursor, "same") && (!cur || !*cur)) continue;
        *out = *f;
        if (--f->count == 0) s->faults[i--] = s->faults[--s->nfaults];
        return true;
    }
    return false;
}

int sim__fault_add(sim *s, const char *path, int errcode, int delay_ms, int count,
                   const char *cursor) {
    if (!cursor) cursor = "";
    if (strlen(path) >= sizeof s->faults[0].path || count < 1 ||
        strlen(cursor) >= sizeof s->faults[0].cursor)
        return -1;
    SIM_PUSH(s->faults, s->nfaults, s->faults_cap);
    sim_fault *f = &s->faults[s->nfaults++];
    snprintf(f->path, sizeof f->path, "%s", path);
    f->errcode = errcode;
    f->delay_ms = delay_ms;
    f->count = count;
    snprintf(f->cursor, sizeof f->cursor, "%s", cursor);
    return 0;
}

/* A fault's next_cursor over a successful POST answer: "same" repeats the
 * request's non-empty cursor, anything else is used as is. */
static void fault_cursor(const sim_fault *f, const json_t *req, json_t *out) {
    const char *cur = json_string_value(json_object_get(req, "cursor"));
    const char *next = f->cursor;
    if (!strcmp(next, "same")) {
        if (!cur || !*cur) return;
        next = cur;
    }
    json_object_set_new(out, "next_cursor", json_string(next));
    if (json_object_get(out, "is_last")) json_object_set_new(out, "is_last", json_false());
}

void sim_cgi_handle(sim_req *r) {
    sim *s = r->s;
    const struct route *rt = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof *routes && !rt; i++)
        if (strcmp(routes[i].path, r->path) == 0) rt = &routes[i];
    sim_calls_count(s, rt ? rt->path : "(unknown)");
    if (!rt) {
        r->status = 404;
        sim_reply_json(r, json_pack("{s:i,s:s}", "errcode", 404, "errmsg", "api not found"));
        return;
    }
    sim_fault f;
    pthread_mutex_lock(&s->mu);
    bool faulted = fault_take(s, rt->path, r->json, &f);
    pthread_mutex_unlock(&s->mu);
    if (faulted && f.delay_ms > 0) usleep((useconds_t)f.delay_ms * 1000u);
    if (faulted && f.errcode) {
        sim_reply_json(r, errbody(f.errcode));
        return;
    }
    cgi c = {.s = s, .r = r, .out = json_pack("{s:i,s:s}", "errcode", 0, "errmsg", "ok")};
    pthread_mutex_lock(&s->mu);
    c.now = sim_now(s);
    int rc = rt->fn != h_gettoken ? token_check(&c) : 0;
    if (rc == 0 && rt->post) {
        if (!json_is_object(r->json)) rc = 40058;
        c.b = r->json;
    }
    if (rc == 0) {
        sim_tick(s);
        c.now = sim_now(s);
        rc = rt->fn(&c);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        json_decref(c.out);
        c.out = errbody(rc);
    } else if (faulted && f.cursor[0] && rt->post) {
        fault_cursor(&f, r->json, c.out);
    }
    sim_reply_json(r, c.out);
}
