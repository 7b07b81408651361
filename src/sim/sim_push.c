/* sim_push.c — pushes the callback log to --callback-url like WeCom does.
 *
 * The log (sim.log, append-only, chunked so entries never move) is the queue.
 * --push-concurrency workers each own the entries whose shard (a hash of the
 * entity: external_userid, chat_id or tag id) falls on them, so one entity's
 * callbacks go out one after another, in log order. A worker:
 *
 *   lock mu ─ wait for entries past its cursor ─ render up to BATCH of its own
 *   entries to XML (ids are read under the lock) ─ unlock ─ for each: encrypt
 *   (wecom_callback_build), POST url?msg_signature&timestamp&nonce, retry a
 *   non-200 up to 3 times ─ mark done, count ─ lock, broadcast log_cond.
 *
 * Counters: sent = POST attempts, acked = 200 answers, failed = other answers
 * or transport errors, dropped = callbacks given up after the retries.
 * history_done turns true once every worker has finished every entry of the
 * history (the log prefix that existed when the world was built).
 *
 * Ownership: each worker owns a libcurl handle (keep-alive) and its batch of
 * rendered strings; the crypto context is immutable and shared. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim/sim_int.h"
#include "util/log.h"
#include "wecom/wecom_crypto.h"

#define BATCH 64
#define RETRIES 3

typedef struct worker {
    sim *s;
    int id;
    pthread_t th;
    size_t cursor;
    CURL *curl;
    sim_rng rng;
} worker;

typedef struct sim_push {
    wecom_crypto cr;
    int n;
    worker *w;
    size_t hist_len;
    size_t hist_checked; /* history entries known to be done (under mu) */
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

/* One POST; true on HTTP 200. */
static bool post_once(worker *w, const char *xml) {
    sim *s = w->s;
    char ts[24], nonce[24], sig[41];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    snprintf(nonce, sizeof nonce, "%llu",
             (unsigned long long)(sim_rng_next(&w->rng) % 10000000000ULL));
    char *body = NULL;
    if (wecom_callback_build(&s->push->cr, ts, nonce, NULL, xml, strlen(xml), &body, sig) !=
        WECOM_OK)
        return false;
    const char *u = s->o.callback_url;
    char *url = NULL;
    if (asprintf(&url, "%s%cmsg_signature=%s&timestamp=%s&nonce=%s", u, strchr(u, '?') ? '&' : '?',
                 sig, ts, nonce) < 0) {
        free(body);
        return false;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: text/xml");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(w->curl, CURLOPT_URL, url);
    curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    CURLcode rc = curl_easy_perform(w->curl);
    long status = 0;
    curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    free(url);
    free(body);
    atomic_fetch_add(&s->cb_sent, 1);
    bool ok = rc == CURLE_OK && status == 200;
    atomic_fetch_add(ok ? &s->cb_acked : &s->cb_failed, 1);
    return ok;
}

static void deliver(worker *w, const char *xml) {
    for (int attempt = 0; attempt <= RETRIES && !atomic_load(&w->s->stopping); attempt++) {
        if (attempt) usleep(100000u << attempt);
        if (post_once(w, xml)) return;
    }
    atomic_fetch_add(&w->s->cb_dropped, 1);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    sim *s = w->s;
    sim_push *p = s->push;
    sim_cb *mine[BATCH];
    char *xml[BATCH];
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (w->cursor == s->log_len && !atomic_load(&s->stopping))
            pthread_cond_wait(&s->log_cond, &s->mu);
        if (atomic_load(&s->stopping)) break;
        int n = 0;
        while (n < BATCH && w->cursor < s->log_len) {
            sim_cb *cb = sim_cb_at(s, w->cursor++);
            if (cb->shard % (uint32_t)p->n != (uint32_t)w->id) continue;
            mine[n] = cb;
            xml[n++] = sim_cb_render(s, cb);
        }
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < n; i++) {
            deliver(w, xml[i]);
            free(xml[i]);
            atomic_store(&mine[i]->done, true);
            atomic_fetch_add(&s->cb_done, 1);
        }
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->log_cond);
    }
    pthread_mutex_unlock(&s->mu);
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
    p->w = calloc((size_t)p->n, sizeof *p->w);
    if (!p->w) abort();
    s->push = p;
    for (int i = 0; i < p->n; i++) {
        worker *w = &p->w[i];
        w->s = s;
        w->id = i;
        sim_rng_seed(&w->rng, (uint64_t)time(NULL) * 977 + (uint64_t)i);
        w->curl = curl_easy_init();
        if (!w->curl) abort();
        curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(w->curl, CURLOPT_TIMEOUT, 15L);
        curl_easy_setopt(w->curl, CURLOPT_CONNECTTIMEOUT, 5L);
        curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(w->curl, CURLOPT_TCP_KEEPALIVE, 1L);
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
        curl_easy_cleanup(p->w[i].curl);
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
    while (p->hist_checked < p->hist_len && atomic_load(&sim_cb_at(s, p->hist_checked)->done))
        p->hist_checked++;
    return p->hist_checked == p->hist_len;
}
