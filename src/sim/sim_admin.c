/* sim_admin.c — the simulator's admin API (loopback only, JSON, no auth):
 *   GET  /sim/stats   counts of the world, the callbacks and the API calls
 *   GET  /sim/dump    the whole world, deterministic for a seed and day
 *   POST /sim/run     {"actions":N}: N random live actions, answered once
 *                     their callbacks are delivered
 *   POST /sim/act     one chosen action (see sim_act_run), delivered likewise;
 *                     "count":N repeats it (e.g. 5,000 adds at once)
 *   POST /sim/fault   the next calls to a path answer an errcode, wait, or
 *                     carry a given next_cursor ("same": the request's)
 *   POST /sim/clock   {"advance":S}: simulated time moves on; takeovers and
 *                     confirmations that fall due run and are delivered
 *   GET  /sim/org     departments, stores and employees (for setting Siyu up)
 *   POST /sim/replay  pushes the history now (when --replay-history was not given)
 *   POST /sim/config  changes rate, refuse_rate, takeover_delay, ... while running;
 *                     {"callbacks":false} stops pushing callbacks (lost ones)
 * The dump is written with a plain string builder rather than jansson
 * objects: 100,000 customers would otherwise need millions of json_t. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_int.h"

int sim__fault_add(sim *s, const char *path, int errcode, int delay_ms, int count,
                   const char *cursor);

static void bad(sim_req *r, int status, const char *msg) {
    r->status = status;
    sim_reply_json(r, json_pack("{s:s}", "error", msg));
}

/* ---- dump --------------------------------------------------------------- */

static void js(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void kv(FILE *f, const char *k, const char *v, bool comma) {
    if (comma) fputc(',', f);
    js(f, k);
    fputc(':', f);
    js(f, v);
}

static void kvi(FILE *f, const char *k, long long v, bool comma) {
    if (comma) fputc(',', f);
    js(f, k);
    fprintf(f, ":%lld", v);
}

static void dump_people(sim *s, FILE *f) {
    fputs("\"employees\":[", f);
    for (int i = 0; i < s->nemp; i++) {
        sim_employee *e = &s->emp[i];
        fputs(i ? ",{" : "{", f);
        kv(f, "userid", e->userid, false);
        kv(f, "name", e->name, true);
        kvi(f, "department", e->dept + 1, true);
        kv(f, "store", e->store >= 0 ? s->stores[e->store] : "", true);
        fprintf(f, ",\"resigned\":%s}", e->resigned ? "true" : "false");
    }
    fputs("],\"customers\":[", f);
    for (int i = 0; i < s->ncust; i++) {
        sim_customer *c = &s->cust[i];
        fputs(i ? ",{" : "{", f);
        kv(f, "external_userid", c->ext, false);
        kv(f, "name", c->name, true);
        kvi(f, "gender", c->gender, true);
        fputs(",\"follow\":[", f);
        bool first = true;
        for (int j = 0; j < c->nf; j++) {
            sim_follow *fo = &c->f[j];
            if (!fo->active) continue;
            fputs(first ? "{" : ",{", f);
            first = false;
            kv(f, "userid", s->emp[fo->emp].userid, false);
            kvi(f, "createtime", fo->createtime, true);
            kv(f, "state", fo->state, true);
            kv(f, "remark", fo->remark, true);
            kvi(f, "add_way", fo->add_way, true);
            fputs(",\"tags\":[", f);
            for (int t = 0; t < fo->ntags; t++) {
                if (t) fputc(',', f);
                js(f, s->tag[fo->tags[t]].id);
            }
            fputs("]}", f);
        }
        fputs("]}", f);
    }
    fputc(']', f);
}

static void dump_groups(sim *s, FILE *f) {
    fputs(",\"groups\":[", f);
    bool first = true;
    for (int g = 0; g < s->ngrp; g++) {
        sim_group *gr = &s->grp[g];
        if (gr->dismissed) continue;
        fputs(first ? "{" : ",{", f);
        first = false;
        char ver[33];
        sim_member_version(s, g, gr->version, ver);
        kv(f, "chat_id", gr->chat_id, false);
        kv(f, "name", gr->name, true);
        kv(f, "owner", s->emp[gr->owner].userid, true);
        kv(f, "member_version", ver, true);
        fputs(",\"members\":[", f);
        bool mf = true;
        for (int k = 0; k < gr->nm; k++) {
            sim_member *m = &gr->m[k];
            if (m->left_time) continue;
            fputs(mf ? "{" : ",{", f);
            mf = false;
            kv(f, "userid", m->is_emp ? s->emp[m->idx].userid : s->cust[m->idx].ext, false);
            kvi(f, "type", m->is_emp ? 1 : 2, true);
            kvi(f, "join_scene", m->join_scene, true);
            fputc('}', f);
        }
        fputs("]}", f);
    }
    fputs("],\"tag_groups\":[", f);
    first = true;
    for (int g = 0; g < s->ntgrp; g++) {
        if (s->tgrp[g].deleted) continue;
        fputs(first ? "{" : ",{", f);
        first = false;
        kv(f, "group_id", s->tgrp[g].id, false);
        kv(f, "name", s->tgrp[g].name, true);
        fputs(",\"tags\":[", f);
        bool tf = true;
        for (int t = 0; t < s->ntag; t++) {
            if (s->tag[t].group != g || s->tag[t].deleted) continue;
            fputs(tf ? "{" : ",{", f);
            tf = false;
            kv(f, "id", s->tag[t].id, false);
            kv(f, "name", s->tag[t].name, true);
            fputc('}', f);
        }
        fputs("]}", f);
    }
    fputc(']', f);
}

static void dump_rest(sim *s, FILE *f) {
    fputs(",\"contact_ways\":[", f);
    bool first = true;
    for (int i = 0; i < s->nway; i++) {
        sim_way *w = &s->way[i];
        if (w->deleted) continue;
        fputs(first ? "{" : ",{", f);
        first = false;
        kv(f, "config_id", w->config_id, false);
        kvi(f, "type", w->type, true);
        kvi(f, "scene", w->scene, true);
        kv(f, "state", w->state, true);
        kv(f, "remark", w->remark, true);
        kvi(f, "adds", w->adds, true);
        fputs(",\"user\":[", f);
        for (int u = 0; u < w->nusers; u++) {
            if (u) fputc(',', f);
            js(f, s->emp[w->users[u]].userid);
        }
        fputs("]}", f);
    }
    fputs("],\"welcomes\":[", f);
    for (int i = 0; i < s->nwlog; i++) {
        sim_welcome_log *l = &s->wlog[i];
        sim_welcome *w = &s->wel[l->welcome];
        fputs(i ? ",{" : "{", f);
        kv(f, "welcome_code", w->code, false);
        kv(f, "external_userid", s->cust[w->cust].ext, true);
        kv(f, "userid", s->emp[w->emp].userid, true);
        kv(f, "text", l->text, true);
        kvi(f, "sent_at", l->at, true);
        kvi(f, "minted_ms", w->minted_ms, true);
        kvi(f, "arrived_ms", l->at_ms, true);
        kvi(f, "attachments", l->attachments, true);
        kvi(f, "errcode", l->errcode, true);
        fputc('}', f);
    }
    fputs("],\"transfers\":[", f);
    for (int i = 0; i < s->nxfer; i++) {
        sim_transfer *x = &s->xfer[i];
        fputs(i ? ",{" : "{", f);
        kv(f, "external_userid", s->cust[x->cust].ext, false);
        kv(f, "handover_userid", s->emp[x->handover].userid, true);
        kv(f, "takeover_userid", s->emp[x->takeover].userid, true);
        kvi(f, "status", x->status, true);
        kvi(f, "start_time", x->start, true);
        kvi(f, "takeover_time", x->takeover_time, true);
        fprintf(f, ",\"resigned\":%s}", x->resigned ? "true" : "false");
    }
    fputs("],\"mass_messages\":[", f);
    for (int i = 0; i < s->nmsg; i++) {
        sim_msg *m = &s->msg[i];
        fputs(i ? ",{" : "{", f);
        kv(f, "msgid", m->msgid, false);
        kv(f, "creator", m->creator >= 0 ? s->emp[m->creator].userid : "", true);
        kvi(f, "create_time", m->create_time, true);
        kv(f, "text", m->text, true);
        fputs(",\"recipients\":[", f);
        for (int k = 0; k < m->nr; k++) {
            fputs(k ? ",{" : "{", f);
            kv(f, "external_userid", s->cust[m->r[k].cust].ext, false);
            kv(f, "userid", s->emp[m->r[k].emp].userid, true);
            kvi(f, "status", m->r[k].status, true);
            fputc('}', f);
        }
        fputs("]}", f);
    }
    fputc(']', f);
}

static void h_dump(sim_req *r) {
    sim *s = r->s;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) abort();
    fputc('{', f);
    pthread_mutex_lock(&s->mu);
    dump_people(s, f);
    dump_groups(s, f);
    dump_rest(s, f);
    pthread_mutex_unlock(&s->mu);
    fputc('}', f);
    fclose(f);
    free(r->reply);
    r->reply = buf;
    r->reply_len = len;
}

/* ---- stats -------------------------------------------------------------- */

static void h_stats(sim_req *r) {
    sim *s = r->s;
    pthread_mutex_lock(&s->mu);
    sim_tick(s);
    int groups = 0, tags = 0, tgroups = 0, ways = 0;
    for (int i = 0; i < s->ngrp; i++)
        groups += !s->grp[i].dismissed;
    for (int i = 0; i < s->ntag; i++)
        tags += !s->tag[i].deleted;
    for (int i = 0; i < s->ntgrp; i++)
        tgroups += !s->tgrp[i].deleted;
    for (int i = 0; i < s->nway; i++)
        ways += !s->way[i].deleted;
    bool hist = sim_history_done(s);
    long long queued = (long long)(s->log_len - s->cb_skipped) - atomic_load(&s->cb_done);
    json_t *j = json_pack(
        "{s:i,s:i,s:I,s:i,s:I,s:i,s:i,s:i,s:{s:I,s:I,s:I,s:I,s:I},s:o,s:b,s:I,s:I,s:i}",
        "employees", s->nemp, "customers", s->ncust, "relationships", (json_int_t)s->relationships,
        "groups", groups, "group_members", (json_int_t)s->members, "tags", tags, "tag_groups",
        tgroups, "contact_ways", ways, "callbacks", "sent", (json_int_t)atomic_load(&s->cb_sent),
        "acked", (json_int_t)atomic_load(&s->cb_acked), "failed",
        (json_int_t)atomic_load(&s->cb_failed), "dropped", (json_int_t)atomic_load(&s->cb_dropped),
        "queued", (json_int_t)queued, "calls", sim_calls_json(s), "history_done", hist, "now",
        (json_int_t)sim_now(s), "history_end", (json_int_t)s->hist_end, "welcome_codes", s->nwel);
    pthread_mutex_unlock(&s->mu);
    sim_reply_json(r, j);
}

/* ---- run, act, fault, clock --------------------------------------------- */

static void h_run(sim_req *r) {
    sim *s = r->s;
    json_t *n = json_object_get(r->json, "actions");
    if (!json_is_integer(n) || json_integer_value(n) < 0 || json_integer_value(n) > 1000000) {
        bad(r, 400, "\"actions\" must be an integer 0..1000000");
        return;
    }
    long long want = json_integer_value(n);
    pthread_mutex_lock(&s->mu);
    sim_tick(s);
    size_t from = s->log_len;
    for (long long i = 0; i < want; i++) {
        int cbs = 0;
        sim_act_random(s, &s->rng, sim_now(s), &cbs);
    }
    size_t to = s->log_len;
    sim_push_wait(s, from, to);
    pthread_mutex_unlock(&s->mu);
    sim_reply_json(r, json_pack("{s:I,s:I}", "actions", (json_int_t)want, "callbacks",
                                (json_int_t)(to - from)));
}

static const char *opt(sim_req *r, const char *k) {
    return json_string_value(json_object_get(r->json, k));
}

static void h_act(sim_req *r) {
    sim *s = r->s;
    if (!json_is_object(r->json) || !opt(r, "type")) {
        bad(r, 400, "a JSON object with \"type\" is required");
        return;
    }
    json_t *dv = json_object_get(r->json, "deliver");
    sim_act a = {.type = opt(r, "type"),
                 .userid = opt(r, "userid"),
                 .external_userid = opt(r, "external_userid"),
                 .state = opt(r, "state"),
                 .chat_id = opt(r, "chat_id"),
                 .tag_id = opt(r, "tag_id"),
                 .name = opt(r, "name"),
                 .group_name = opt(r, "group_name"),
                 .welcome = json_is_true(json_object_get(r->json, "welcome")),
                 .half = json_is_true(json_object_get(r->json, "half")),
                 .deliver = !json_is_false(dv)};
    /* "count": the same action repeated (1..20000), e.g. many adds at once */
    json_t *cnt = json_object_get(r->json, "count");
    long long count = cnt ? json_integer_value(cnt) : 1;
    if (count < 1 || count > 20000) {
        bad(r, 400, "count must be within 1..20000");
        return;
    }
    pthread_mutex_lock(&s->mu);
    sim_tick(s);
    size_t from = s->log_len;
    int rc = 0;
    for (long long k = 0; k < count && rc == 0; k++)
        rc = sim_act_run(s, &a, &s->rng, sim_now(s));
    size_t to = s->log_len;
    json_t *j = json_pack("{s:i,s:I}", "errcode", rc, "callbacks", (json_int_t)(to - from));
    if (a.cust >= 0) json_object_set_new(j, "external_userid", json_string(s->cust[a.cust].ext));
    if (a.welcome_idx >= 0)
        json_object_set_new(j, "welcome_code", json_string(s->wel[a.welcome_idx].code));
    if (a.grp >= 0) json_object_set_new(j, "chat_id", json_string(s->grp[a.grp].chat_id));
    if (a.tag >= 0) json_object_set_new(j, "tag_id", json_string(s->tag[a.tag].id));
    if (a.tgrp >= 0) json_object_set_new(j, "group_id", json_string(s->tgrp[a.tgrp].id));
    if (a.cust >= 0 && rc == 0) {
        const char *uid = NULL;
        for (int k = 0; k < s->cust[a.cust].nf && !uid; k++)
            if (s->cust[a.cust].f[k].active) uid = s->emp[s->cust[a.cust].f[k].emp].userid;
        if (a.userid) uid = a.userid;
        if (uid) json_object_set_new(j, "userid", json_string(uid));
    }
    sim_push_wait(s, from, to);
    pthread_mutex_unlock(&s->mu);
    if (rc) r->status = 400;
    sim_reply_json(r, j);
}

static void h_fault(sim_req *r) {
    const char *path = opt(r, "path");
    if (!path) {
        bad(r, 400, "\"path\" is required");
        return;
    }
    if (strncmp(path, "/cgi-bin/", 9) == 0) path += 9;
    if (*path == '/') path++;
    long long code = json_integer_value(json_object_get(r->json, "errcode"));
    long long delay = json_integer_value(json_object_get(r->json, "delay_ms"));
    json_t *cnt = json_object_get(r->json, "count");
    long long count = cnt ? json_integer_value(cnt) : 1;
    const char *cursor = opt(r, "next_cursor");
    if (count < 1 || delay < 0 || delay > 600000 || (!code && !delay && !cursor)) {
        bad(r, 400, "need \"errcode\", \"delay_ms\" or \"next_cursor\" and a positive \"count\"");
        return;
    }
    pthread_mutex_lock(&r->s->mu);
    int rc = sim__fault_add(r->s, path, (int)code, (int)delay, (int)count, cursor);
    pthread_mutex_unlock(&r->s->mu);
    if (rc) {
        bad(r, 400, "bad fault");
        return;
    }
    sim_reply_json(r, json_pack("{s:s,s:I,s:I,s:I}", "path", path, "errcode", (json_int_t)code,
                                "delay_ms", (json_int_t)delay, "count", (json_int_t)count));
}

static void h_clock(sim_req *r) {
    sim *s = r->s;
    json_t *adv = json_object_get(r->json, "advance");
    if (!json_is_integer(adv) || json_integer_value(adv) < 0) {
        bad(r, 400, "\"advance\" must be a non-negative integer (seconds)");
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->clock_offset += json_integer_value(adv);
    size_t from = s->log_len;
    sim_tick(s);
    size_t to = s->log_len;
    sim_push_wait(s, from, to);
    json_t *j = json_pack("{s:I,s:I,s:I}", "now", (json_int_t)sim_now(s), "offset",
                          (json_int_t)s->clock_offset, "callbacks", (json_int_t)(to - from));
    pthread_mutex_unlock(&s->mu);
    sim_reply_json(r, j);
}

/* The corp's roster as WeCom's contact APIs would give it: departments
 * (ids from 1, flat), stores (each under a department) and employees. */
static void h_org(sim_req *r) {
    sim *s = r->s;
    pthread_mutex_lock(&s->mu);
    json_t *d = json_array(), *st = json_array(), *e = json_array();
    for (int i = 0; i < s->ndepts; i++)
        json_array_append_new(
            d, json_pack("{s:i,s:i,s:s}", "id", i + 1, "parentid", 0, "name", s->depts[i]));
    for (int i = 0; i < s->nstores; i++)
        json_array_append_new(st, json_pack("{s:i,s:s,s:s,s:i}", "id", i + 1, "name", s->stores[i],
                                            "city", s->store_city[i], "department",
                                            s->store_dept[i] + 1));
    for (int i = 0; i < s->nemp; i++) {
        sim_employee *em = &s->emp[i];
        json_array_append_new(e, json_pack("{s:s,s:s,s:i,s:i,s:s}", "userid", em->userid, "name",
                                           em->name, "department", em->dept + 1, "store",
                                           em->store + 1, "status",
                                           em->resigned ? "resigned" : "active"));
    }
    pthread_mutex_unlock(&s->mu);
    sim_reply_json(r, json_pack("{s:o,s:o,s:o}", "departments", d, "stores", st, "employees", e));
}

static void h_replay(sim_req *r) {
    sim *s = r->s;
    if (!s->o.callback_url) {
        bad(r, 409, "no --callback-url: there is nowhere to replay to");
        return;
    }
    pthread_mutex_lock(&s->mu);
    size_t from = s->log_len;
    int rc = sim_push_replay(s);
    size_t n = s->log_len - from;
    pthread_mutex_unlock(&s->mu);
    sim_reply_json(r, json_pack("{s:b,s:I}", "already", rc != 0, "queued", (json_int_t)n));
}

/* Changes live settings: rate, refuse_rate, takeover_delay, welcome_ttl,
 * token_ttl (new tokens), msg_quota. */
static void h_config(sim_req *r) {
    sim *s = r->s;
    json_t *j = r->json;
    json_t *rate = json_object_get(j, "rate"), *refuse = json_object_get(j, "refuse_rate");
    json_t *cbs = json_object_get(j, "callbacks");
    if (cbs && !json_is_boolean(cbs)) {
        bad(r, 400, "callbacks must be true or false");
        return;
    }
    if ((rate && (!json_is_number(rate) || json_number_value(rate) < 0)) ||
        (refuse && (!json_is_number(refuse) || json_number_value(refuse) < 0 ||
                    json_number_value(refuse) > 1))) {
        bad(r, 400, "rate must be >= 0 and refuse_rate within 0..1");
        return;
    }
    static const char *const ints[] = {"takeover_delay", "welcome_ttl", "token_ttl", "msg_quota"};
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get(j, ints[i]);
        if (v && (!json_is_integer(v) || json_integer_value(v) < (i == 2) ||
                  json_integer_value(v) > 100000000)) {
            bad(r, 400, "takeover_delay, welcome_ttl, token_ttl and msg_quota are integers");
            return;
        }
    }
    pthread_mutex_lock(&s->mu);
    if (rate) s->o.rate = json_number_value(rate);
    atomic_fetch_add(&s->config_gen, 1);
    if (refuse) s->o.refuse_rate = json_number_value(refuse);
    if (cbs) s->o.no_callbacks = !json_is_true(cbs);
    int *dst[] = {&s->o.takeover_delay, &s->o.welcome_ttl, &s->o.token_ttl, &s->o.msg_quota};
    for (size_t i = 0; i < 4; i++)
        if (json_object_get(j, ints[i]))
            *dst[i] = (int)json_integer_value(json_object_get(j, ints[i]));
    json_t *out = json_pack("{s:f,s:f,s:i,s:i,s:i,s:i,s:b}", "rate", s->o.rate, "refuse_rate",
                            s->o.refuse_rate, "takeover_delay", s->o.takeover_delay, "welcome_ttl",
                            s->o.welcome_ttl, "token_ttl", s->o.token_ttl, "msg_quota",
                            s->o.msg_quota, "callbacks", !s->o.no_callbacks);
    pthread_mutex_unlock(&s->mu);
    sim_reply_json(r, out);
}

void sim_admin_handle(sim_req *r) {
    static const struct {
        const char *path;
        const char *method;
        void (*fn)(sim_req *);
    } routes[] = {
        {"stats", "GET", h_stats}, {"dump", "GET", h_dump},      {"run", "POST", h_run},
        {"act", "POST", h_act},    {"fault", "POST", h_fault},   {"clock", "POST", h_clock},
        {"org", "GET", h_org},     {"replay", "POST", h_replay}, {"config", "POST", h_config}};
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        if (strcmp(routes[i].path, r->path) != 0) continue;
        if (strcmp(routes[i].method, r->method) != 0) {
            bad(r, 405, "method not allowed");
            return;
        }
        if (!strcmp(r->method, "POST") && !json_is_object(r->json)) {
            bad(r, 400, "a JSON object body is required");
            return;
        }
        routes[i].fn(r);
        return;
    }
    bad(r, 404, "no such admin path");
}
