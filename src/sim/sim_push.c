/* sim_push.c — pushes the callback log to --callback-url like WeCom does.
 *
 * The log (sim.log, append-only, chunked so entries never move) is the queue.
 * Each entry has a shard (a hash of its entity: external_userid, chat_id or
 * tag id). --push-concurrency worker threads each own the shards with
 * shard % n == id, and split them again over SLOTS keep-alive connections
 * ((shard / n) % SLOTS) driven by one curl multi handle. A slot sends its
 * items strictly one after another, so one entity's callbacks arrive in log
 * order while a worker keeps SLOTS requests in flight.
 *
 *   worker: lock mu ─ take its new entries (up to PENDING_MAX), rendering
 *   them to XML while the ids can be read ─ unlock ─ idle slots start their
 *   head item (wecom_callback_build with a fresh nonce, POST
 *   url?msg_signature&timestamp&nonce) ─ curl_multi_perform/poll ─ a 200
 *   marks the item done; anything else is retried up to 3 times (backoff
 *   200, 400, 800 ms) and then dropped ─ lock, broadcast log_cond.
 *
 * Counters: sent = POST attempts, acked = 200 answers, failed = other answers
 * or transport errors, dropped = callbacks given up after the retries.
 * sim_history_done is true once every entry of the history (the log prefix
 * that existed when pushing started) is done.
 *
 * Ownership: each worker owns its multi handle, its slots' easy handles and
 * the items it took; the crypto context is immutable and shared. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim/sim_int.h"
#include "util/log.h"
#include "wecom/wecom_crypto.h"

#define SLOTS 4          /* connections per worker, one sub-shard each */
#define PENDING_MAX 2048 /* rendered items a worker holds */
#define RETRIES 3

/* A rendered callback waiting in a slot. */
typedef struct item {
    sim_cb *cb;
    char *xml;
    struct item *next;
} item;

/* One keep-alive connection delivering one sub-shard's items in order. */
typedef struct slot {
    CURL *curl;
    item *head, *tail;
    bool busy;        /* a request is in flight */
    int attempt;      /* attempts made for head */
    int64_t ready_ms; /* earliest start of head's next attempt */
    char *url, *body; /* of the request in flight */
    struct curl_slist *hdr;
} slot;

typedef struct worker {
    sim *s;
    int id;
    pthread_t th;
    size_t cursor;
    CURLM *multi;
    slot slot[SLOTS];
    int pending; /* items in all slots */
    sim_rng rng;
} worker;

typedef struct sim_push {
    wecom_crypto cr;
    int n;
    worker *w;
    size_t hist_len;     /* entries [0, hist_len) are the history */
    bool replayed;       /* the history is queued */
    size_t hist_checked; /* history entries [hist_checked, hist_end) not known done */
    size_t hist_end;
} sim_push;

/* ---- rendering ---------------------------------------------------------- */

static void cdata(FILE *f, const char *tag, const char *v) {
    fprintf(f, "<%s><![CDATA[", tag);
    for (const char *p = v; *p; p++) {
        if (p[0] == ']' && p[1] == ']' && p[2] == '>') {
            fputs("]]]]><![CDATA[>", f);
            p += 2;
        } else {
            fputc(*p, f);
        }
    }
    fprintf(f, "]]></%s>", tag);
}

static const char *const contact_types[] = {
    [CB_ADD] = "add_external_contact",   [CB_ADD_HALF] = "add_half_external_contact",
    [CB_EDIT] = "edit_external_contact", [CB_DEL_EXTERNAL] = "del_external_contact",
    [CB_DEL_FOLLOW] = "del_follow_user", [CB_TRANSFER_FAIL] = "transfer_fail",
};

char *sim_cb_render(sim *s, const sim_cb *cb) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) abort();
    fputs("<xml>", f);
    cdata(f, "ToUserName", s->o.corp_id);
    cdata(f, "FromUserName", "sys");
    fprintf(f, "<CreateTime>%lld</CreateTime>", (long long)cb->ts);
    cdata(f, "MsgType", "event");
    if (cb->kind <= CB_TRANSFER_FAIL) {
        cdata(f, "Event", "change_external_contact");
        cdata(f, "ChangeType", contact_types[cb->kind]);
        cdata(f, "UserID", s->emp[cb->emp].userid);
        cdata(f, "ExternalUserID", s->cust[cb->cust].ext);
        if ((cb->kind == CB_ADD || cb->kind == CB_ADD_HALF) && cb->state[0])
            cdata(f, "State", cb->state);
        if (cb->welcome >= 0) cdata(f, "WelcomeCode", s->wel[cb->welcome].code);
        if (cb->by_transfer) cdata(f, "Source", "DELETE_BY_TRANSFER");
        if (cb->kind == CB_TRANSFER_FAIL) cdata(f, "FailReason", "customer_refused");
    } else if (cb->kind <= CB_CHAT_DISMISS) {
        cdata(f, "Event", "change_external_chat");
        cdata(f, "ChatId", s->grp[cb->grp].chat_id);
        const char *ct = cb->kind == CB_CHAT_CREATE    ? "create"
                         : cb->kind == CB_CHAT_DISMISS ? "dismiss"
                                                       : "update";
        cdata(f, "ChangeType", ct);
        if (cb->kind != CB_CHAT_CREATE && cb->kind != CB_CHAT_DISMISS) {
            const char *detail = cb->kind == CB_CHAT_ADD_MEMBER   ? "add_member"
                                 : cb->kind == CB_CHAT_DEL_MEMBER ? "del_member"
                                 : cb->kind == CB_CHAT_NAME       ? "change_name"
                                                                  : "change_owner";
            cdata(f, "UpdateDetail", detail);
            bool mem = cb->kind == CB_CHAT_ADD_MEMBER || cb->kind == CB_CHAT_DEL_MEMBER;
            fprintf(f, "<JoinScene>%d</JoinScene><QuitScene>%d</QuitScene>",
                    cb->kind == CB_CHAT_ADD_MEMBER ? cb->scene : 0,
                    cb->kind == CB_CHAT_DEL_MEMBER ? cb->scene : 0);
            fprintf(f, "<MemChangeCnt>%d</MemChangeCnt>", mem ? 1 : 0);
            if (mem) {
                fputs("<MemChangeList>", f);
                cdata(f, "Item",
                      cb->member_emp ? s->emp[cb->member].userid : s->cust[cb->member].ext);
                fputs("</MemChangeList>", f);
            }
            char v[33];
            sim_member_version(s, cb->grp, cb->last_ver, v);
            fprintf(f, "<LastMemVer><![CDATA[%s]]></LastMemVer>", v);
            sim_member_version(s, cb->grp, cb->cur_ver, v);
            fprintf(f, "<CurMemVer><![CDATA[%s]]></CurMemVer>", v);
        }
    } else {
        cdata(f, "Event", "change_external_tag");
        cdata(f, "Id", cb->tag_is_group ? s->tgrp[cb->grp].id : s->tag[cb->grp].id);
        cdata(f, "TagType", cb->tag_is_group ? "tag_group" : "tag");
        cdata(f, "ChangeType",
              cb->kind == CB_TAG_CREATE   ? "create"
              : cb->kind == CB_TAG_UPDATE ? "update"
                                          : "delete");
    }
    fputs("</xml>", f);
    fclose(f);
    return buf;
}

/* ---- workers ------------------------------------------------------------ */

static size_t discard(char *p, size_t sz, size_t n, void *u) {
    (void)p;
    (void)u;
    return sz * n;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts the POST of sl->head (encrypted afresh with a new nonce). */
static void slot_start(worker *w, slot *sl) {
    sim *s = w->s;
    const char *xml = sl->head->xml;
    char ts[24], nonce[24], sig[41];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    snprintf(nonce, sizeof nonce, "%llu",
             (unsigned long long)(sim_rng_next(&w->rng) % 10000000000ULL));
    if (wecom_callback_build(&s->push->cr, ts, nonce, NULL, xml, strlen(xml), &sl->body, sig) !=
        WECOM_OK)
        abort(); /* only on OOM or an oversized message, which rendering never makes */
    const char *u = s->o.callback_url;
    if (asprintf(&sl->url, "%s%cmsg_signature=%s&timestamp=%s&nonce=%s", u,
                 strchr(u, '?') ? '&' : '?', sig, ts, nonce) < 0)
        abort();
    sl->hdr = curl_slist_append(NULL, "Content-Type: text/xml");
    sl->hdr = curl_slist_append(sl->hdr, "Expect:");
    curl_easy_setopt(sl->curl, CURLOPT_URL, sl->url);
    curl_easy_setopt(sl->curl, CURLOPT_HTTPHEADER, sl->hdr);
    curl_easy_setopt(sl->curl, CURLOPT_POSTFIELDS, sl->body);
    curl_easy_setopt(sl->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(sl->body));
    curl_multi_add_handle(w->multi, sl->curl);
    sl->busy = true;
}

static void slot_cleanup(worker *w, slot *sl) {
    if (!sl->busy) return;
    curl_multi_remove_handle(w->multi, sl->curl);
    curl_slist_free_all(sl->hdr);
    free(sl->url);
    free(sl->body);
    sl->hdr = NULL;
    sl->url = sl->body = NULL;
    sl->busy = false;
}

/* The request of sl finished (ok: HTTP 200). Returns true when the head
 * item is done (acked or dropped) and was removed. */
static bool slot_finish(worker *w, slot *sl, bool ok) {
    sim *s = w->s;
    slot_cleanup(w, sl);
    atomic_fetch_add(&s->cb_sent, 1);
    atomic_fetch_add(ok ? &s->cb_acked : &s->cb_failed, 1);
    if (!ok && ++sl->attempt <= RETRIES) {
        sl->ready_ms = now_ms() + (100 << sl->attempt);
        return false;
    }
    if (!ok) atomic_fetch_add(&s->cb_dropped, 1);
    item *it = sl->head;
    sl->head = it->next;
    if (!sl->head) sl->tail = NULL;
    atomic_store(&it->cb->done, true);
    atomic_fetch_add(&s->cb_done, 1);
    free(it->xml);
    free(it);
    sl->attempt = 0;
    sl->ready_ms = 0;
    w->pending--;
    return true;
}

/* Takes this worker's new log entries (mu held), rendering them. */
static void take_new(worker *w) {
    sim *s = w->s;
    uint32_t n = (uint32_t)s->push->n;
    while (w->pending < PENDING_MAX && w->cursor < s->log_len) {
        sim_cb *cb = sim_cb_at(s, w->cursor++);
        if (cb->shard % n != (uint32_t)w->id) continue;
        slot *sl = &w->slot[(cb->shard / n) % SLOTS];
        item *it = sim_xrealloc(NULL, sizeof *it);
        *it = (item){.cb = cb, .xml = sim_cb_render(s, cb)};
        if (sl->tail)
            sl->tail->next = it;
        else
            sl->head = it;
        sl->tail = it;
        w->pending++;
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    sim *s = w->s;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!w->pending && w->cursor == s->log_len && !atomic_load(&s->stopping))
            pthread_cond_wait(&s->log_cond, &s->mu);
        bool stop = atomic_load(&s->stopping);
        if (!stop) take_new(w);
        pthread_mutex_unlock(&s->mu);
        if (stop) break;
        int64_t now = now_ms();
        int busy = 0;
        for (int i = 0; i < SLOTS; i++) {
            slot *sl = &w->slot[i];
            if (!sl->busy && sl->head && sl->ready_ms <= now) slot_start(w, sl);
            busy += sl->busy;
        }
        int running = 0;
        curl_multi_perform(w->multi, &running);
        bool finished = false;
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(w->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            slot *sl = NULL;
            for (int i = 0; i < SLOTS && !sl; i++)
                if (w->slot[i].curl == m->easy_handle) sl = &w->slot[i];
            if (!sl) continue;
            long status = 0;
            curl_easy_getinfo(sl->curl, CURLINFO_RESPONSE_CODE, &status);
            finished |= slot_finish(w, sl, m->data.result == CURLE_OK && status == 200);
        }
        if (finished) {
            pthread_mutex_lock(&s->mu);
            pthread_cond_broadcast(&s->log_cond);
            pthread_mutex_unlock(&s->mu);
        }
        if (busy)
            curl_multi_poll(w->multi, NULL, 0, 20, NULL);
        else if (w->pending && !finished)
            usleep(10000); /* every head waits for its retry time */
    }
    for (int i = 0; i < SLOTS; i++) {
        slot *sl = &w->slot[i];
        slot_cleanup(w, sl);
        while (sl->head) {
            item *it = sl->head;
            sl->head = it->next;
            free(it->xml);
            free(it);
        }
    }
    return NULL;
}

int sim_push_start(sim *s, siyu_err *err) {
    sim_push *p = calloc(1, sizeof *p);
    if (!p) return siyu_err_set(err, SIYU_ENOMEM, NULL, "out of memory");
    if (wecom_crypto_init(&p->cr, s->o.callback_token, s->o.aes_key, s->o.corp_id) != WECOM_OK) {
        free(p);
        return siyu_err_set(err, SIYU_EINVAL, "aes-key",
                            "--callback-token/--aes-key/--corp-id are not a usable callback "
                            "configuration (the key must be 43 characters of [A-Za-z0-9])");
    }
    p->n = s->o.push_concurrency > 0 ? s->o.push_concurrency : 1;
    p->hist_len = s->log_len;
    p->replayed = s->o.replay_history;
    /* without --replay-history the history waits for /sim/replay */
    p->hist_checked = p->replayed ? 0 : p->hist_len;
    s->cb_skipped = p->replayed ? 0 : p->hist_len; /* never pushed from there */
    p->hist_end = p->hist_len;
    p->w = calloc((size_t)p->n, sizeof *p->w);
    if (!p->w) abort();
    s->push = p;
    for (int i = 0; i < p->n; i++) {
        worker *w = &p->w[i];
        w->s = s;
        w->id = i;
        w->cursor = p->replayed ? 0 : p->hist_len;
        sim_rng_seed(&w->rng, (uint64_t)time(NULL) * 977 + (uint64_t)i);
        w->multi = curl_multi_init();
        if (!w->multi) abort();
        for (int k = 0; k < SLOTS; k++) {
            CURL *c = w->slot[k].curl = curl_easy_init();
            if (!c) abort();
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
            curl_easy_setopt(c, CURLOPT_TIMEOUT, 15L);
            curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
        }
        if (pthread_create(&w->th, NULL, worker_main, w) != 0) abort();
    }
    return 0;
}

void sim_push_stop(sim *s) {
    sim_push *p = s->push;
    if (!p) return;
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->stopping, true);
    pthread_cond_broadcast(&s->log_cond);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < p->n; i++) {
        pthread_join(p->w[i].th, NULL);
        for (int k = 0; k < SLOTS; k++)
            curl_easy_cleanup(p->w[i].slot[k].curl);
        curl_multi_cleanup(p->w[i].multi);
    }
    wecom_crypto_reset(&p->cr);
    free(p->w);
    free(p);
    s->push = NULL;
}

void sim_push_wait(sim *s, size_t from, size_t to) {
    for (size_t i = from; i < to && !atomic_load(&s->stopping); i++)
        while (!atomic_load(&sim_cb_at(s, i)->done) && !atomic_load(&s->stopping))
            pthread_cond_wait(&s->log_cond, &s->mu);
}

bool sim_history_done(sim *s) {
    sim_push *p = s->push;
    if (!p) return true;
    while (p->hist_checked < p->hist_end && atomic_load(&sim_cb_at(s, p->hist_checked)->done))
        p->hist_checked++;
    return p->hist_checked == p->hist_end;
}

int sim_push_replay(sim *s) {
    sim_push *p = s->push;
    if (!p || p->replayed) return 1;
    p->replayed = true;
    p->hist_checked = s->log_len;
    for (size_t i = 0; i < p->hist_len; i++) {
        sim_cb cb = *sim_cb_at(s, i); /* appending may grow the chunk table */
        sim_log_append(s, &cb);
    }
    p->hist_end = s->log_len;
    return 0;
}
